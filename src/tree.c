/* SPDX-License-Identifier: MIT
 * tree.c — the namespace: which paths exist, what they list and what generated files
 * hold. What the API says is kept as immutable, reference-counted snapshots: the list of
 * collections, and per collection its patients, its studies, its series and its value
 * lists, each loaded by one request for the whole collection and trusted for meta_ttl.
 * One mutex guards the slots that hold them; it is never held across a request.
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tcia.h"
#include "view.h"

#define TREE_NAME_MAX 255
#define TREE_DEPTH_MAX 6

/* ---- snapshots --------------------------------------------------------------------- */

struct tree_snap {
	int refs;		/* protected by tree->lock */
	time_t fetched;
	unsigned gen;		/* tree->gen when loaded; an older one is expired */
	void (*destroy)(struct tree_snap *snap);
};

/* Where a snapshot lives, and the single load in progress for it. */
struct tree_slot {
	struct tree_snap *snap;	/* protected by tree->lock */
	bool loading;		/* protected by tree->lock */
	unsigned done;		/* loads finished; protected by tree->lock */
	int last_rc;		/* protected by tree->lock */
	int64_t failed_ms;	/* monotonic ms of the last slow failure; protected by tree->lock */
};

/* A slow failed load (a silent server: it took a second or more) answers the callers
 * right behind it for this long instead of each starting another: sixteen callers
 * would otherwise queue up one timeout after another. Quick failures are retried. */
#define TREE_FAIL_MEMORY_MS 3000
#define TREE_SLOW_FAILURE_MS 1000

/* Milliseconds on the monotonic clock: whole seconds from time() would call a 10 ms
 * failure that happens to straddle a second boundary "slow". */
static int64_t tree_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct tree_coll {
	char *name;		/* sanitised, unique among collections */
	char *api;		/* as the API sent it */
	struct tree_slot pats, studs, sers, vals;
	struct tree_slot facets;	/* derived from pats, studs and sers: no request */
};

struct tree_colls {
	struct tree_snap hdr;
	size_t count;
	struct tree_coll *v;	/* sorted by name */
};

struct tree_pat {
	char *name;
	char *id;		/* PatientId as sent */
	char *raw;
};

struct tree_pats {
	struct tree_snap hdr;
	size_t count;
	struct tree_pat *v;	/* sorted by name */
	uint32_t *by_id;	/* indices into v, sorted by id */
};

struct tree_stud {
	char *name;
	char *uid;
	char *pid;
	char *raw;
	time_t mtime;
};

struct tree_studs {
	struct tree_snap hdr;
	size_t count;
	struct tree_stud *v;	/* sorted by (pid, name) */
	uint32_t *by_uid;	/* indices into v, sorted by uid */
};

struct tree_ser {
	char *name;
	char *uid;
	char *study_uid;
	char *raw;
	char *facet[3];		/* Modality, BodyPartExamined, Manufacturer; NULL unknown */
	time_t mtime;
	int64_t image_count;	/* -1 unknown */
	int64_t file_size;	/* -1 unknown */
};

struct tree_sers {
	struct tree_snap hdr;
	size_t count;
	struct tree_ser *v;	/* sorted by (study_uid, name) */
	uint32_t *by_uid;	/* indices into v, sorted by uid */
	json_t *licence;	/* LicenseName, LicenseURI, CollectionURI seen in the series */
};

struct tree_vals {
	struct tree_snap hdr;
	struct tcia_values mods, parts, manus;
};

/* A manifest given at mount (-o manifest=FILE), shown as /manifests/<name>/. */
struct tree_man {
	char *name;		/* sanitised, unique among manifests */
	struct view_manifest m;
	struct tree_slot res;
};

struct tree {
	struct tcia *tcia;	/* borrowed */
	struct store *store;	/* borrowed, may be NULL */
	char *(*status)(void *arg);
	void *status_arg;
	char *cache_dir;
	long meta_ttl;
	bool naming_uid;
	time_t mounted;
	uid_t uid;
	gid_t gid;
	char *readme;
	size_t readme_len;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a load finished */
	unsigned gen;		/* bumped by tree_expire; protected by lock */
	struct tree_slot colls;
	char *mountpoint;	/* for the Path column of the tables; "" if unknown */
	size_t nmans;
	struct tree_man *mans;	/* sorted by name */
};

struct tree_file {
	char *data;		/* generated content, or NULL */
	size_t len;
	int fd;			/* a stored file, or -1 */
	struct store *store;
	struct store_series *ss;	/* the reference that keeps fd's series in use */
	bool live;
};

/* A resolved path. Holds references on the snapshots its pointers point into. */
enum tree_kind {
	TK_ROOT,
	TK_README,
	TK_COLL,
	TK_COLL_JSON,
	TK_PAT,
	TK_PAT_JSON,
	TK_STUDY,
	TK_STUDY_JSON,
	TK_SERIES,
	TK_SERIES_JSON,
	TK_SERIES_FILE,
	TK_TCIAFS_DIR,
	TK_UID_DIR,
	TK_STATUS,
	TK_FACET_ROOT,		/* /<Collection>/.by-modality */
	TK_FACET_VAL,		/* /<Collection>/.by-modality/CT */
	TK_LINK,		/* a symbolic link to a series folder */
	TK_TABLE,		/* /<Collection>/{patients,studies,series}.csv */
	TK_CITATION,		/* /<Collection>/CITATION.txt */
	TK_MANIFESTS,		/* /manifests */
	TK_MANIFEST,		/* /manifests/<name> */
	TK_MISSING,		/* /manifests/<name>/missing.txt */
};

struct tree_node {
	enum tree_kind kind;
	struct tree_colls *colls;
	struct tree_coll *coll;
	struct tree_pats *pats;
	const struct tree_pat *pat;
	struct tree_studs *studs;
	const struct tree_stud *stud;
	struct tree_sers *sers;
	const struct tree_ser *ser;
	struct store_series *ss;	/* TK_SERIES_FILE: the stored series, referenced */
	size_t file;			/* and the file's index in it */
	struct tree_snap *view;		/* a referenced tree_facets or tree_mres */
	unsigned facet;			/* facet or table: which one */
	long val;			/* TK_FACET_VAL: index in the facet, -1 if empty */
	const struct tree_link *link;	/* TK_LINK in a facet */
	const struct tree_mlink *mlink;	/* TK_LINK in a manifest */
	struct tree_man *man;
};

static const char *const tree_probe_names[] = {
	"desktop.ini", "Desktop.ini", "autorun.inf", "AUTORUN.INF", "Thumbs.db",
	"folder.jpg", "folder.gif", "AlbumArtSmall.jpg",
};

bool tree_is_probe_name(const char *name)
{
	size_t i;

	/* Nothing TCIA names starts with a dot once sanitised; dot names are hidden-file,
	 * VCS and desktop probes (.hidden, .directory, .DS_Store, .git, .Trash-0). */
	if (name[0] == '.')
		return true;
	for (i = 0; i < sizeof(tree_probe_names) / sizeof(tree_probe_names[0]); i++)
		if (strcmp(name, tree_probe_names[i]) == 0)
			return true;
	return false;
}

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t tree_utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	/* A UTF-8 sequence is at most 4 bytes: back off at most 3. Longer runs of
	 * continuation bytes are not UTF-8 at all, and are cut where they stand. */
	while (n > 0 && max - n < 3 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	if (((unsigned char)s[n] & 0xC0) == 0x80)
		n = max;
	return n;
}

char *tree_sanitize_name(const char *name)
{
	size_t n, i;
	char *out;

	if (name[0] == '\0')
		return strdup("_empty_");
	if (strcmp(name, ".") == 0)
		return strdup("_dot_");
	if (strcmp(name, "..") == 0)
		return strdup("_dotdot_");
	n = tree_utf8_cut(name, TREE_NAME_MAX);
	out = strndup(name, n);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '/' || c < 0x20 || c == 0x7F)
			out[i] = '_';
	}
	/* A leading dot would hide the entry and look like a probe name. */
	if (out[0] == '.')
		out[0] = '_';
	return out;
}

/* Joins the non-empty parts with spaces, sanitises, and appends "-<uid tail>" within
 * 255 bytes. Returns a new string or NULL. */
static char *tree_readable_name(const char *const *parts, size_t nparts, const char *uid,
				bool full)
{
	char base[1024], *clean, *out;
	const char *tail = uid ? uid : "";
	size_t len = 0, i, cut, tlen;

	base[0] = '\0';
	for (i = 0; i < nparts; i++) {
		if (!parts[i] || !parts[i][0])
			continue;
		len += (size_t)snprintf(base + len, sizeof(base) - len, "%s%s", len ? " " : "",
					parts[i]);
		if (len >= sizeof(base) - 1) {
			len = tree_utf8_cut(base, sizeof(base) - 2);
			base[len] = '\0';
			break;
		}
	}
	if (!full && strlen(tail) > 5)
		tail += strlen(tail) - 5;
	if (len == 0)
		return tree_sanitize_name(tail[0] ? tail : "");
	clean = tree_sanitize_name(base);
	if (!clean)
		return NULL;
	tlen = strlen(tail);
	/* Keep the UID tail whole: it is what makes the name unique. */
	cut = tree_utf8_cut(clean, tlen + 1 < TREE_NAME_MAX ? TREE_NAME_MAX - tlen - 1 : 0);
	out = malloc(cut + tlen + 2);
	if (out) {
		memcpy(out, clean, cut);
		out[cut] = '-';
		memcpy(out + cut + 1, tail, tlen + 1);
	}
	free(clean);
	if (out && strlen(out) > TREE_NAME_MAX)
		out[tree_utf8_cut(out, TREE_NAME_MAX)] = '\0';
	if (out)
		for (i = 0; out[i]; i++)
			if (out[i] == '/' || (unsigned char)out[i] < 0x20)
				out[i] = '_';
	return out;
}

/* "2003-12-12 00:00:00.0" → "2003-12-12"; anything else as it is. */
static void tree_date_part(const char *date, char *out, size_t size)
{
	size_t n = date ? strlen(date) : 0;

	if (n >= 10 && date[4] == '-' && date[7] == '-')
		n = 10;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(out, date, n);
	out[n] = '\0';
}

char *tree_study_name(const char *date, const char *description, const char *uid, bool full)
{
	char day[64];
	const char *parts[2];

	tree_date_part(date, day, sizeof(day));
	parts[0] = day;
	parts[1] = description;
	return tree_readable_name(parts, 2, uid, full);
}

char *tree_series_name(const char *number, const char *modality, const char *description,
		       const char *uid, bool full)
{
	const char *parts[3] = { number, modality, description };

	return tree_readable_name(parts, 3, uid, full);
}

/* "YYYY-MM-DD[ HH:MM:SS…]" as UTC seconds, or fallback. */
static time_t tree_parse_time(const char *s, time_t fallback)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;

	if (!s || sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) < 3)
		return fallback;
	if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > 31)
		return fallback;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return timegm(&tm);
}

/* ---- README ------------------------------------------------------------------------ */

static int tree_make_readme(struct tree *t)
{
	static const char fmt[] =
		"tciafs: The Cancer Imaging Archive (TCIA) as a read-only filesystem.\n"
		"\n"
		"API:    %s\n"
		"Cache:  %s\n"
		"\n"
		"Layout\n"
		"  /<Collection>/collection.json      the collection: its modalities, body\n"
		"                                     parts, manufacturers, licence and DOI\n"
		"  /<Collection>/<PatientID>/patient.json\n"
		"  .../<StudyDate> <StudyDescription>-<last 5 digits of the UID>/study.json\n"
		"  .../<SeriesNumber> <Modality> <SeriesDescription>-<UID tail>/series.json\n"
		"  .../<series folder>/*.dcm, LICENSE the series' DICOM files\n"
		"  /<Collection>/CITATION.txt         DOI, licence, how to cite\n"
		"  /<Collection>/patients.csv, studies.csv, series.csv\n"
		"                                     one row per object, every attribute\n"
		"  /<Collection>/.by-modality/<value>/, .by-bodypart/, .by-manufacturer/\n"
		"                                     links to the matching series (hidden)\n"
		"  /manifests/<name>/                 with -o manifest=FILE: links, missing.txt\n"
		"  /.tciafs/status                    downloads in flight, cache use, counters\n"
		"\n"
		"The JSON files hold every attribute TCIA returns for the object, as it\n"
		"returned them. Folder names are made safe ('/' and control characters\n"
		"become '_'); a study or series folder can also be reached by its bare UID.\n"
		"Every object's identifiers are in its user.tcia.* extended attributes\n"
		"(getfattr -d). Everything here is read-only.\n"
		"\n"
		"A series' DICOM files are downloaded the first time its folder is opened,\n"
		"then read from the cache. A process that opens many series folders in a\n"
		"short time (find, du, an indexer) is held back after a few downloads:\n"
		"see -o walk_budget in tciafs --help.\n"
		"\n"
		"Unmount with:  fusermount3 -u <mountpoint>\n";
	const char *api = tcia_base_url(t->tcia);
	int n = snprintf(NULL, 0, fmt, api, t->cache_dir);

	if (n < 0)
		return -EINVAL;
	t->readme = malloc((size_t)n + 1);
	if (!t->readme)
		return -ENOMEM;
	snprintf(t->readme, (size_t)n + 1, fmt, api, t->cache_dir);
	t->readme_len = (size_t)n;
	return 0;
}

static int tree_take_manifests(struct tree *t, struct view_manifest *m, size_t n);
static void tree_slot_clear(struct tree *t, struct tree_slot *slot);

int tree_new(struct tcia *tcia, const struct tree_opts *opts, struct tree **out)
{
	struct tree *t;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tcia = tcia;
	t->store = opts->store;
	t->status = opts->status;
	t->status_arg = opts->status_arg;
	t->meta_ttl = opts->meta_ttl;
	t->naming_uid = opts->naming_uid;
	t->mounted = time(NULL);
	t->uid = getuid();
	t->gid = getgid();
	t->cache_dir = strdup(opts->cache_dir ? opts->cache_dir : "");
	t->mountpoint = strdup(opts->mountpoint ? opts->mountpoint : "");
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (!t->cache_dir || !t->mountpoint || tree_make_readme(t) < 0 ||
	    tree_take_manifests(t, opts->manifests, opts->nmanifests) < 0) {
		tree_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

static void tree_snap_put(struct tree *t, struct tree_snap *s)
{
	bool last;

	if (!s)
		return;
	pthread_mutex_lock(&t->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&t->lock);
	if (last)
		s->destroy(s);
}

void tree_free(struct tree *tree)
{
	size_t i;

	if (!tree)
		return;
	if (tree->colls.snap)
		tree_snap_put(tree, tree->colls.snap);
	for (i = 0; i < tree->nmans; i++) {
		tree_slot_clear(tree, &tree->mans[i].res);
		free(tree->mans[i].name);
		view_manifest_clear(&tree->mans[i].m);
	}
	free(tree->mans);
	free(tree->mountpoint);
	pthread_cond_destroy(&tree->cond);
	pthread_mutex_destroy(&tree->lock);
	free(tree->readme);
	free(tree->cache_dir);
	free(tree);
}

void tree_expire(struct tree *tree)
{
	pthread_mutex_lock(&tree->lock);
	tree->gen++;
	pthread_mutex_unlock(&tree->lock);
}

typedef int (*tree_load_fn)(struct tree *t, void *arg, struct tree_snap **out);

/* Returns a referenced snapshot from slot (release with tree_snap_put), loading it when
 * there is none or it has expired. Concurrent callers share one load and its result; a
 * failed load is covered by the old snapshot when there is one (stale-if-error). */
static int tree_slot_get(struct tree *t, struct tree_slot *slot, tree_load_fn load, void *arg,
			 struct tree_snap **out)
{
	struct tree_snap *s, *fresh = NULL, *old = NULL;
	int64_t started;
	unsigned seen;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		s = slot->snap;
		if (s && s->gen == t->gen && time(NULL) - s->fetched < t->meta_ttl)
			goto out_ref;
		if (!slot->loading && !s && slot->last_rc < 0 && slot->failed_ms &&
		    tree_now_ms() - slot->failed_ms < TREE_FAIL_MEMORY_MS) {
			rc = slot->last_rc;
			pthread_mutex_unlock(&t->lock);
			return rc;
		}
		if (!slot->loading)
			break;
		seen = slot->done;
		while (slot->loading && slot->done == seen)
			pthread_cond_wait(&t->cond, &t->lock);
		if (slot->last_rc < 0) {
			/* The load we waited for failed: share its outcome, do not retry. */
			s = slot->snap;
			if (s)
				goto out_ref;
			rc = slot->last_rc;
			pthread_mutex_unlock(&t->lock);
			return rc;
		}
		if (slot->snap)
			goto out_ref_any;
	}
	slot->loading = true;
	pthread_mutex_unlock(&t->lock);

	started = tree_now_ms();
	rc = load(t, arg, &fresh);
	/* Parsing a big answer leaves megabytes of freed heap behind (a 10,000-series
	 * getSeries is ~8 MB of JSON): give them back rather than sit on them. */
	malloc_trim(0);

	pthread_mutex_lock(&t->lock);
	slot->loading = false;
	slot->done++;
	slot->last_rc = rc;
	slot->failed_ms = 0;
	if (rc < 0 && tree_now_ms() - started >= TREE_SLOW_FAILURE_MS)
		slot->failed_ms = tree_now_ms();
	pthread_cond_broadcast(&t->cond);
	if (rc == 0) {
		fresh->refs = 2;	/* the slot's and the caller's */
		fresh->gen = t->gen;
		old = slot->snap;
		slot->snap = fresh;
		*out = fresh;
	} else if (slot->snap) {
		log_warn("serving what was listed %lds ago: %s",
			 (long)(time(NULL) - slot->snap->fetched), strerror(-rc));
		slot->snap->refs++;
		*out = slot->snap;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	tree_snap_put(t, old);
	return rc;

out_ref_any:
	s = slot->snap;
out_ref:
	s->refs++;
	pthread_mutex_unlock(&t->lock);
	*out = s;
	return 0;
}

/* Drops a slot's snapshot; used when the owning collection goes away. */
static void tree_slot_clear(struct tree *t, struct tree_slot *slot)
{
	struct tree_snap *s = slot->snap;

	slot->snap = NULL;
	tree_snap_put(t, s);
}

static int tree_cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int tree_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two different API names can sanitise to the same text ("a/b" and "a_b"): later ones
 * get a "~N" suffix so that every object stays reachable. names are sorted; ptrs point
 * at each element's name field, stride bytes apart. */
static int tree_uniquify(char *base, size_t count, size_t stride, size_t name_off)
{
	size_t i, run = 0;

	for (i = 1; i < count; i++) {
		char **prev = (char **)(base + (i - 1) * stride + name_off);
		char **cur = (char **)(base + i * stride + name_off);
		char *fixed;
		size_t len;

		if (strcmp(*cur, *prev) != 0) {
			run = 0;
			continue;
		}
		run++;
		len = strlen(*cur) + 24;
		fixed = malloc(len);
		if (!fixed)
			return -ENOMEM;
		snprintf(fixed, len, "%.*s~%zu", (int)tree_utf8_cut(*cur, TREE_NAME_MAX - 22), *cur,
			 run + 1);
		free(*cur);
		*cur = fixed;
	}
	return 0;
}

/* Secondary indices: element numbers sorted by a string field, for lookups by UID or ID
 * in arrays that are sorted by folder name. */
struct tree_index_key {
	const char *base;
	size_t stride, off;
};

static const char *tree_index_field(const struct tree_index_key *k, uint32_t i)
{
	return *(char *const *)(k->base + (size_t)i * k->stride + k->off);
}

static int tree_index_cmp(const void *a, const void *b, void *arg)
{
	return tree_cmp_str(tree_index_field(arg, *(const uint32_t *)a),
			    tree_index_field(arg, *(const uint32_t *)b));
}

/* Builds the index of count elements by the string at offset off. NULL if out of memory. */
static uint32_t *tree_index_build(const void *base, size_t count, size_t stride, size_t off)
{
	struct tree_index_key k = { base, stride, off };
	uint32_t *idx = malloc((count ? count : 1) * sizeof(*idx));
	size_t i;

	if (!idx)
		return NULL;
	for (i = 0; i < count; i++)
		idx[i] = (uint32_t)i;
	qsort_r(idx, count, sizeof(*idx), tree_index_cmp, &k);
	return idx;
}

/* The element whose field equals key, or -1. */
static long tree_index_find(const void *base, const uint32_t *idx, size_t count, size_t stride,
			    size_t off, const char *key)
{
	struct tree_index_key k = { base, stride, off };
	size_t lo = 0, hi = count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = tree_cmp_str(tree_index_field(&k, idx[mid]), key);

		if (c == 0)
			return (long)idx[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- the collections --------------------------------------------------------------- */

/* Folder names that a collection or patient must not take from the API. */
static const char *const tree_root_reserved[] = { "README.txt", "manifests" };
static const char *const tree_coll_reserved[] = { "collection.json", "patients.csv",
						  "studies.csv", "series.csv", "CITATION.txt" };

/* A name the API gave that would hide one of ours gets a leading '_', and one ending in
 * ".json" a trailing '_' (such names are answered ENOENT without a request unless they
 * are ours); uniquified with the others after. Returns 0 or -ENOMEM. */
static int tree_unreserve(char **name, const char *const *reserved, size_t n)
{
	size_t i, len = strlen(*name);
	bool json = len >= 5 && strcmp(*name + len - 5, ".json") == 0;
	char *p;

	for (i = 0; i < n && !json; i++)
		if (strcmp(*name, reserved[i]) == 0)
			break;
	if (i == n)
		return 0;
	len = tree_utf8_cut(*name, TREE_NAME_MAX - 1);
	p = malloc(len + 2);
	if (!p)
		return -ENOMEM;
	if (json) {
		memcpy(p, *name, len);
		p[len] = '_';
	} else {
		p[0] = '_';
		memcpy(p + 1, *name, len);
	}
	p[len + 1] = '\0';
	free(*name);
	*name = p;
	return 0;
}


static void tree_colls_destroy_with(struct tree *t, struct tree_colls *c)
{
	size_t i;

	for (i = 0; i < c->count; i++) {
		tree_slot_clear(t, &c->v[i].pats);
		tree_slot_clear(t, &c->v[i].studs);
		tree_slot_clear(t, &c->v[i].sers);
		tree_slot_clear(t, &c->v[i].vals);
		tree_slot_clear(t, &c->v[i].facets);
		free(c->v[i].name);
		free(c->v[i].api);
	}
	free(c->v);
	free(c);
}

static int tree_cmp_coll(const void *a, const void *b)
{
	return strcmp(((const struct tree_coll *)a)->name, ((const struct tree_coll *)b)->name);
}

struct tree_colls_snap {
	struct tree_colls colls;
	struct tree *tree;	/* to release the per-collection slots on destroy */
};

static void tree_colls_destroy(struct tree_snap *s)
{
	struct tree_colls_snap *cs = (struct tree_colls_snap *)s;

	tree_colls_destroy_with(cs->tree, &cs->colls);
}

static int tree_load_colls(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_colls_snap *cs;
	struct tcia_values v;
	size_t i;
	int rc;

	(void)arg;
	rc = tcia_get_collections(t->tcia, &v);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		goto out_clear;
	cs->tree = t;
	cs->colls.hdr.destroy = tree_colls_destroy;
	cs->colls.hdr.fetched = time(NULL);
	cs->colls.v = calloc(v.count ? v.count : 1, sizeof(struct tree_coll));
	if (!cs->colls.v)
		goto out_free;
	for (i = 0; i < v.count; i++) {
		struct tree_coll *c = &cs->colls.v[cs->colls.count];

		c->api = strdup(v.v[i].value);
		c->name = tree_sanitize_name(v.v[i].value);
		cs->colls.count++;
		if (!c->api || !c->name ||
		    tree_unreserve(&c->name, tree_root_reserved, 2) < 0)
			goto out_free;
	}
	qsort(cs->colls.v, cs->colls.count, sizeof(struct tree_coll), tree_cmp_coll);
	if (tree_uniquify((char *)cs->colls.v, cs->colls.count, sizeof(struct tree_coll),
			  offsetof(struct tree_coll, name)) < 0)
		goto out_free;
	qsort(cs->colls.v, cs->colls.count, sizeof(struct tree_coll), tree_cmp_coll);
	*out = &cs->colls.hdr;
	rc = 0;
	goto out_clear;

out_free:
	tree_colls_destroy_with(t, &cs->colls);
out_clear:
	tcia_values_clear(&v);
	return rc;
}

/* ---- a collection's patients ------------------------------------------------------- */

static void tree_pats_destroy(struct tree_snap *s)
{
	struct tree_pats *p = (struct tree_pats *)s;
	size_t i;

	for (i = 0; i < p->count; i++) {
		free(p->v[i].name);
		free(p->v[i].id);
		free(p->v[i].raw);
	}
	free(p->v);
	free(p->by_id);
	free(p);
}

static int tree_cmp_pat(const void *a, const void *b)
{
	return strcmp(((const struct tree_pat *)a)->name, ((const struct tree_pat *)b)->name);
}

static int tree_load_pats(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tcia_patients l;
	struct tree_pats *p;
	size_t i;
	int rc;

	rc = tcia_get_patients(t->tcia, c->api, &l);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out_clear;
	p->hdr.destroy = tree_pats_destroy;
	p->hdr.fetched = time(NULL);
	p->v = calloc(l.count ? l.count : 1, sizeof(*p->v));
	if (!p->v)
		goto out_free;
	for (i = 0; i < l.count; i++) {
		struct tree_pat *e = &p->v[p->count++];

		/* Steal the strings: the list is cleared below. */
		e->id = l.v[i].patient_id;
		e->raw = l.v[i].raw;
		l.v[i].patient_id = l.v[i].raw = NULL;
		e->name = tree_sanitize_name(e->id);
		if (!e->name || tree_unreserve(&e->name, tree_coll_reserved, 5) < 0)
			goto out_free;
	}
	qsort(p->v, p->count, sizeof(*p->v), tree_cmp_pat);
	if (tree_uniquify((char *)p->v, p->count, sizeof(*p->v), offsetof(struct tree_pat, name)))
		goto out_free;
	qsort(p->v, p->count, sizeof(*p->v), tree_cmp_pat);
	p->by_id = tree_index_build(p->v, p->count, sizeof(*p->v), offsetof(struct tree_pat, id));
	if (!p->by_id)
		goto out_free;
	*out = &p->hdr;
	rc = 0;
	goto out_clear;

out_free:
	tree_pats_destroy(&p->hdr);
out_clear:
	tcia_patients_clear(&l);
	return rc;
}

/* ---- a collection's studies -------------------------------------------------------- */

static void tree_studs_destroy(struct tree_snap *s)
{
	struct tree_studs *p = (struct tree_studs *)s;
	size_t i;

	for (i = 0; i < p->count; i++) {
		free(p->v[i].name);
		free(p->v[i].uid);
		free(p->v[i].pid);
		free(p->v[i].raw);
	}
	free(p->v);
	free(p->by_uid);
	free(p);
}

static int tree_cmp_stud_pid(const void *a, const void *b)
{
	return tree_cmp_str(((const struct tree_stud *)a)->pid, ((const struct tree_stud *)b)->pid);
}

static int tree_cmp_stud(const void *a, const void *b)
{
	const struct tree_stud *x = a, *y = b;
	int c = tree_cmp_str(x->pid, y->pid);

	return c ? c : strcmp(x->name, y->name);
}

/* Names the folders of one group of siblings: readable names, and for any that collide
 * the full UID instead of its tail; whatever still collides gets "~N". name_fn builds
 * one name. Sorts the group by name. */
typedef char *(*tree_name_fn)(const void *rec, bool full, bool uid_only);

static int tree_name_group(struct tree *t, char *base, size_t count, size_t stride,
			   size_t name_off, tree_name_fn name_fn,
			   int (*cmp)(const void *, const void *))
{
	size_t i, j;

	for (i = 0; i < count; i++) {
		char **name = (char **)(base + i * stride + name_off);

		*name = name_fn(base + i * stride, false, t->naming_uid);
		if (!*name)
			return -ENOMEM;
	}
	qsort(base, count, stride, cmp);
	for (i = 0; i < count; i = j) {
		char **first = (char **)(base + i * stride + name_off);

		for (j = i + 1; j < count; j++)
			if (strcmp(*(char **)(base + j * stride + name_off), *first) != 0)
				break;
		if (j - i < 2 || t->naming_uid)
			continue;
		for (; i < j; i++) {
			char **name = (char **)(base + i * stride + name_off);

			free(*name);
			*name = name_fn(base + i * stride, true, false);
			if (!*name)
				return -ENOMEM;
		}
	}
	qsort(base, count, stride, cmp);
	if (tree_uniquify(base, count, stride, name_off) < 0)
		return -ENOMEM;
	qsort(base, count, stride, cmp);
	return 0;
}

/* The studs being built keep their API date and description in raw-derived strings
 * until named; this carries them. */
struct tree_stud_build {
	struct tree_stud s;
	const struct tcia_study *rec;
};

static char *tree_stud_name_fn(const void *p, bool full, bool uid_only)
{
	const struct tree_stud_build *b = p;

	if (uid_only)
		return tree_sanitize_name(b->rec->study_uid);
	return tree_study_name(b->rec->date, b->rec->description, b->rec->study_uid, full);
}

static int tree_cmp_stud_build(const void *a, const void *b)
{
	return tree_cmp_stud(&((const struct tree_stud_build *)a)->s,
			     &((const struct tree_stud_build *)b)->s);
}

static int tree_cmp_stud_build_pid(const void *a, const void *b)
{
	return tree_cmp_stud_pid(&((const struct tree_stud_build *)a)->s,
				 &((const struct tree_stud_build *)b)->s);
}

static int tree_load_studs(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_stud_build *b = NULL;
	struct tcia_filter f = { .collection = c->api };
	struct tcia_studies l;
	struct tree_studs *p;
	size_t i, j, n = 0;
	int rc;

	rc = tcia_get_studies(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out_clear;
	p->hdr.destroy = tree_studs_destroy;
	p->hdr.fetched = time(NULL);
	b = calloc(l.count ? l.count : 1, sizeof(*b));
	p->v = calloc(l.count ? l.count : 1, sizeof(*p->v));
	if (!b || !p->v)
		goto out_free;
	for (i = 0; i < l.count; i++) {
		b[n].rec = &l.v[i];
		b[n].s.uid = l.v[i].study_uid;
		b[n].s.pid = l.v[i].patient_id;
		b[n].s.mtime = tree_parse_time(l.v[i].date, t->mounted);
		b[n].s.name = NULL;
		n++;
	}
	/* Name each patient's studies as one group of siblings. */
	qsort(b, n, sizeof(*b), tree_cmp_stud_build_pid);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && tree_cmp_str(b[j].s.pid, b[i].s.pid) == 0; j++)
			;
		rc = tree_name_group(t, (char *)&b[i], j - i, sizeof(*b),
				     offsetof(struct tree_stud_build, s.name), tree_stud_name_fn,
				     tree_cmp_stud_build);
		if (rc < 0)
			goto out_free;
	}
	qsort(b, n, sizeof(*b), tree_cmp_stud_build);
	for (i = 0; i < n; i++) {
		struct tcia_study *r = (struct tcia_study *)b[i].rec;

		p->v[i] = b[i].s;
		p->v[i].raw = r->raw;
		/* Stolen into the snapshot; the list is cleared below. */
		r->raw = NULL;
		r->study_uid = NULL;
		r->patient_id = NULL;
		b[i].s.name = NULL;
		p->count++;
	}
	p->by_uid = tree_index_build(p->v, p->count, sizeof(*p->v),
				     offsetof(struct tree_stud, uid));
	if (!p->by_uid)
		goto out_free;
	*out = &p->hdr;
	rc = 0;
	goto out_free_build;

out_free:
	for (i = 0; i < n; i++)
		free(b[i].s.name);
	tree_studs_destroy(&p->hdr);
out_free_build:
	free(b);
out_clear:
	tcia_studies_clear(&l);
	return rc;
}

/* ---- a collection's series --------------------------------------------------------- */

static void tree_sers_destroy(struct tree_snap *s)
{
	struct tree_sers *p = (struct tree_sers *)s;
	size_t i, k;

	for (i = 0; i < p->count; i++) {
		free(p->v[i].name);
		free(p->v[i].uid);
		free(p->v[i].study_uid);
		free(p->v[i].raw);
		for (k = 0; k < 3; k++)
			free(p->v[i].facet[k]);
	}
	json_decref(p->licence);
	free(p->v);
	free(p->by_uid);
	free(p);
}

struct tree_ser_build {
	struct tree_ser s;
	const struct tcia_series *rec;
};

static char *tree_ser_name_fn(const void *p, bool full, bool uid_only)
{
	const struct tree_ser_build *b = p;

	if (uid_only)
		return tree_sanitize_name(b->rec->series_uid);
	return tree_series_name(b->rec->number, b->rec->modality, b->rec->description,
				b->rec->series_uid, full);
}

static int tree_cmp_ser_build(const void *a, const void *b)
{
	const struct tree_ser *x = &((const struct tree_ser_build *)a)->s;
	const struct tree_ser *y = &((const struct tree_ser_build *)b)->s;
	int c = tree_cmp_str(x->study_uid, y->study_uid);

	return c ? c : tree_cmp_str(x->name, y->name);
}

static int tree_cmp_ser_build_study(const void *a, const void *b)
{
	return tree_cmp_str(((const struct tree_ser_build *)a)->s.study_uid,
			    ((const struct tree_ser_build *)b)->s.study_uid);
}

/* Adds value to the set of distinct values kept under key in obj (a string while there
 * is one, an array once they differ). */
static int tree_licence_add(json_t *obj, const char *key, const char *value)
{
	json_t *cur = json_object_get(obj, key), *arr;
	size_t i;

	if (!value)
		return 0;
	if (!cur)
		return json_object_set_new(obj, key, json_string(value)) ? -ENOMEM : 0;
	if (json_is_string(cur)) {
		if (strcmp(json_string_value(cur), value) == 0)
			return 0;
		arr = json_array();
		if (!arr || json_array_append(arr, cur) || json_object_set_new(obj, key, arr))
			return -ENOMEM;
		cur = arr;
	}
	for (i = 0; i < json_array_size(cur); i++)
		if (strcmp(json_string_value(json_array_get(cur, i)), value) == 0)
			return 0;
	return json_array_append_new(cur, json_string(value)) ? -ENOMEM : 0;
}

static int tree_load_sers(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_ser_build *b = NULL;
	struct tcia_filter f = { .collection = c->api };
	struct tcia_series_list l;
	struct tree_sers *p;
	size_t i, j, n = 0;
	int rc;

	rc = tcia_get_series(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out_clear;
	p->hdr.destroy = tree_sers_destroy;
	p->hdr.fetched = time(NULL);
	p->licence = json_object();
	b = calloc(l.count ? l.count : 1, sizeof(*b));
	p->v = calloc(l.count ? l.count : 1, sizeof(*p->v));
	if (!b || !p->v || !p->licence)
		goto out_free;
	for (i = 0; i < l.count; i++) {
		const struct tcia_series *r = &l.v[i];

		if (tree_licence_add(p->licence, "LicenseName", r->license_name) < 0 ||
		    tree_licence_add(p->licence, "LicenseURI", r->license_uri) < 0 ||
		    tree_licence_add(p->licence, "CollectionURI", r->collection_uri) < 0)
			goto out_free;
		b[n].rec = r;
		b[n].s.uid = r->series_uid;
		b[n].s.study_uid = r->study_uid;
		b[n].s.mtime = tree_parse_time(r->timestamp,
					       tree_parse_time(r->date, t->mounted));
		b[n].s.image_count = r->image_count;
		b[n].s.file_size = r->file_size;
		n++;
	}
	qsort(b, n, sizeof(*b), tree_cmp_ser_build_study);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && tree_cmp_str(b[j].s.study_uid, b[i].s.study_uid) == 0; j++)
			;
		rc = tree_name_group(t, (char *)&b[i], j - i, sizeof(*b),
				     offsetof(struct tree_ser_build, s.name), tree_ser_name_fn,
				     tree_cmp_ser_build);
		if (rc < 0)
			goto out_free;
	}
	qsort(b, n, sizeof(*b), tree_cmp_ser_build);
	for (i = 0; i < n; i++) {
		struct tcia_series *r = (struct tcia_series *)b[i].rec;

		p->v[i] = b[i].s;
		p->v[i].raw = r->raw;
		p->v[i].facet[0] = r->modality;
		p->v[i].facet[1] = r->body_part;
		p->v[i].facet[2] = r->manufacturer;
		r->raw = NULL;
		r->series_uid = NULL;
		r->study_uid = NULL;
		r->modality = r->body_part = r->manufacturer = NULL;
		b[i].s.name = NULL;
		p->count++;
	}
	p->by_uid = tree_index_build(p->v, p->count, sizeof(*p->v),
				     offsetof(struct tree_ser, uid));
	if (!p->by_uid)
		goto out_free;
	*out = &p->hdr;
	rc = 0;
	goto out_free_build;

out_free:
	for (i = 0; i < n; i++)
		free(b[i].s.name);
	tree_sers_destroy(&p->hdr);
out_free_build:
	free(b);
out_clear:
	tcia_series_list_clear(&l);
	return rc;
}

/* ---- a collection's value lists (for collection.json) -------------------------------- */

static void tree_vals_destroy(struct tree_snap *s)
{
	struct tree_vals *v = (struct tree_vals *)s;

	tcia_values_clear(&v->mods);
	tcia_values_clear(&v->parts);
	tcia_values_clear(&v->manus);
	free(v);
}

static int tree_load_vals(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tcia_filter f = { .collection = c->api };
	struct tree_vals *v = calloc(1, sizeof(*v));
	int rc;

	if (!v)
		return -ENOMEM;
	v->hdr.destroy = tree_vals_destroy;
	v->hdr.fetched = time(NULL);
	rc = tcia_get_modalities(t->tcia, &f, &v->mods);
	if (rc == 0)
		rc = tcia_get_body_parts(t->tcia, &f, &v->parts);
	if (rc == 0)
		rc = tcia_get_manufacturers(t->tcia, &f, &v->manus);
	if (rc < 0) {
		tree_vals_destroy(&v->hdr);
		return rc;
	}
	*out = &v->hdr;
	return 0;
}

/* ---- resolving paths --------------------------------------------------------------- */

static void tree_node_put(struct tree *t, struct tree_node *n)
{
	if (n->ss)
		store_series_put(t->store, n->ss);
	tree_snap_put(t, n->view);
	tree_snap_put(t, n->sers ? &n->sers->hdr : NULL);
	tree_snap_put(t, n->studs ? &n->studs->hdr : NULL);
	tree_snap_put(t, n->pats ? &n->pats->hdr : NULL);
	tree_snap_put(t, n->colls ? &n->colls->hdr : NULL);
	memset(n, 0, sizeof(*n));
}

static int tree_get_colls(struct tree *t, struct tree_colls **out)
{
	struct tree_snap *s;
	int rc = tree_slot_get(t, &t->colls, tree_load_colls, NULL, &s);

	*out = rc == 0 ? (struct tree_colls *)s : NULL;
	return rc;
}

/* Loads (or finds) one of a collection's snapshots; *out is the snapshot's outer type. */
static int tree_coll_get(struct tree *t, struct tree_coll *c, struct tree_slot *slot,
			 tree_load_fn load, void *out)
{
	struct tree_snap *s;
	int rc = tree_slot_get(t, slot, load, c, &s);

	/* out points at a pointer to the outer type: store through memcpy, which may alias
	 * it, not through a struct tree_snap ** the optimiser may assume it cannot. */
	if (rc < 0)
		s = NULL;
	memcpy(out, &s, sizeof(s));
	return rc;
}

/* A slot's snapshot if it is already loaded and fresh (no request), else NULL. */
static struct tree_snap *tree_peek(struct tree *t, struct tree_slot *slot)
{
	struct tree_snap *s;

	pthread_mutex_lock(&t->lock);
	s = slot->snap;
	if (s && s->gen == t->gen && time(NULL) - s->fetched < t->meta_ttl)
		s->refs++;
	else
		s = NULL;
	pthread_mutex_unlock(&t->lock);
	return s;
}

static struct tree_coll *tree_find_coll(struct tree_colls *cs, const char *name)
{
	struct tree_coll key = { .name = (char *)name };

	return bsearch(&key, cs->v, cs->count, sizeof(*cs->v), tree_cmp_coll);
}

static const struct tree_pat *tree_find_pat(const struct tree_pats *p, const char *name)
{
	struct tree_pat key = { .name = (char *)name };

	return bsearch(&key, p->v, p->count, sizeof(*p->v), tree_cmp_pat);
}

/* Studies and series are kept sorted by the folder they belong in (patient, study), then
 * by name; one set of helpers finds a parent's run, and a member in it, in either. */
struct tree_layout {
	size_t stride, name, uid, parent;	/* element size, then field offsets */
};

static const struct tree_layout tree_stud_layout = {
	sizeof(struct tree_stud), offsetof(struct tree_stud, name),
	offsetof(struct tree_stud, uid), offsetof(struct tree_stud, pid),
};

static const struct tree_layout tree_ser_layout = {
	sizeof(struct tree_ser), offsetof(struct tree_ser, name),
	offsetof(struct tree_ser, uid), offsetof(struct tree_ser, study_uid),
};

static const char *tree_field(const void *base, const struct tree_layout *lay, size_t i,
			      size_t off)
{
	return *(char *const *)((const char *)base + i * lay->stride + off);
}

/* The first element whose parent is parent. */
static size_t tree_run_start(const void *base, size_t count, const struct tree_layout *lay,
			     const char *parent)
{
	size_t lo = 0, hi = count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (tree_cmp_str(tree_field(base, lay, mid, lay->parent), parent) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool tree_in_run(const void *base, size_t count, const struct tree_layout *lay,
			size_t i, const char *parent)
{
	return i < count && tree_cmp_str(tree_field(base, lay, i, lay->parent), parent) == 0;
}

/* parent's member by folder name, else by bare UID. Returns its index or -1. */
static long tree_run_find(const void *base, size_t count, const struct tree_layout *lay,
			  const char *parent, const char *name)
{
	size_t first = tree_run_start(base, count, lay, parent), i;

	for (i = first; tree_in_run(base, count, lay, i, parent); i++)
		if (strcmp(tree_field(base, lay, i, lay->name), name) == 0)
			return (long)i;
	for (i = first; tree_in_run(base, count, lay, i, parent); i++)
		if (tree_cmp_str(tree_field(base, lay, i, lay->uid), name) == 0)
			return (long)i;
	return -1;
}

static const struct tree_stud *tree_find_stud(const struct tree_studs *p, const char *pid,
					      const char *name)
{
	long i = tree_run_find(p->v, p->count, &tree_stud_layout, pid, name);

	return i < 0 ? NULL : &p->v[i];
}

static const struct tree_ser *tree_find_ser(const struct tree_sers *p, const char *study_uid,
					    const char *name)
{
	long i = tree_run_find(p->v, p->count, &tree_ser_layout, study_uid, name);

	return i < 0 ? NULL : &p->v[i];
}

static bool tree_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Splits path into components. Returns their count, or -ENAMETOOLONG / -ENOENT. */
static int tree_split(const char *path, char comps[][TREE_NAME_MAX + 1])
{
	const char *p = path;
	int n = 0;

	while (*p) {
		const char *end;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len > TREE_NAME_MAX)
			return -ENAMETOOLONG;
		if (n == TREE_DEPTH_MAX)
			return -ENOENT;
		memcpy(comps[n], p, len);
		comps[n][len] = '\0';
		n++;
		p = end;
	}
	return n;
}

/* The series in the store: at hand if it is there, else fetched (when fetch is set). */
static int tree_series_files(struct tree *t, const struct tree_ser *ser, bool fetch,
			     const struct store_caller *who, struct store_series **out)
{
	struct store_expect exp = { ser->image_count, ser->file_size };
	int rc;

	*out = NULL;
	if (!t->store || !ser->uid)
		return -ENOENT;
	rc = store_peek(t->store, ser->uid, out);
	if (rc == 0 || !fetch)
		return rc;
	return store_get(t->store, ser->uid, &exp, who, out);
}

/* ---- views: facets and manifests ----------------------------------------------------- */

/* Each collection's facet folders, in the order of tree_ser.facet[]. Hidden, so that a
 * walk of the main tree does not meet every series twice; their entries are symbolic
 * links to the canonical folders, so nothing is copied or fetched twice. */
static const char *const tree_facet_dirs[3] = { ".by-modality", ".by-bodypart",
						".by-manufacturer" };
#define TREE_UNKNOWN "_unknown"

struct tree_fval {
	char *name;		/* the folder name */
	const char *api;	/* the value it stands for; NULL for _unknown */
};

struct tree_link {
	char *name;
	uint32_t val;		/* the facet value it is filed under */
	const char *pat, *stud;	/* folder names, in the snapshots the view holds */
	const struct tree_ser *ser;
};

struct tree_facet {
	size_t nvals, nlinks;
	struct tree_fval *vals;		/* sorted by name */
	uint32_t *by_api;		/* indices into vals, sorted by api */
	struct tree_link *links;	/* sorted by (val, name) */
};

struct tree_facets {
	struct tree_snap hdr;
	struct tree *t;
	struct tree_pats *pats;
	struct tree_studs *studs;
	struct tree_sers *sers;
	struct tree_facet f[3];
};

static void tree_facets_destroy(struct tree_snap *s)
{
	struct tree_facets *fs = (struct tree_facets *)s;
	size_t k, i;

	for (k = 0; k < 3; k++) {
		struct tree_facet *f = &fs->f[k];

		for (i = 0; i < f->nvals; i++)
			free(f->vals[i].name);
		for (i = 0; i < f->nlinks; i++)
			free(f->links[i].name);
		free(f->vals);
		free(f->by_api);
		free(f->links);
	}
	tree_snap_put(fs->t, fs->sers ? &fs->sers->hdr : NULL);
	tree_snap_put(fs->t, fs->studs ? &fs->studs->hdr : NULL);
	tree_snap_put(fs->t, fs->pats ? &fs->pats->hdr : NULL);
	free(fs);
}

static int tree_cmp_fval(const void *a, const void *b)
{
	return strcmp(((const struct tree_fval *)a)->name, ((const struct tree_fval *)b)->name);
}

static int tree_cmp_link(const void *a, const void *b)
{
	const struct tree_link *x = a, *y = b;

	if (x->val != y->val)
		return x->val < y->val ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int tree_cmp_opt_str(const void *a, const void *b)
{
	return tree_cmp_str(*(const char *const *)a, *(const char *const *)b);
}

/* The name of a link to a series from outside its patient: "<patient>_<series folder>",
 * within 255 bytes; a name too long loses text before the series' UID tail, which
 * keeps it telling apart. NULL if out of memory. */
static char *tree_link_name(const char *pat, const char *ser)
{
	size_t n = strlen(pat) + 1 + strlen(ser), keep;
	const char *tail = strrchr(ser, '-');
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	snprintf(s, n + 1, "%s_%s", pat, ser);
	if (n <= TREE_NAME_MAX)
		return s;
	if (!tail || strlen(tail) > 80)
		tail = "";
	keep = tree_utf8_cut(s, TREE_NAME_MAX - strlen(tail));
	memmove(s + keep, tail, strlen(tail) + 1);
	return s;
}

/* Where a series sits: its study and patient folders, or -ENOENT when the API's lists
 * disagree (a series whose study or patient is not listed). */
static int tree_ser_place(const struct tree_pats *pats, const struct tree_studs *studs,
			  const struct tree_ser *ser, const struct tree_pat **pat,
			  const struct tree_stud **stud)
{
	long si = tree_index_find(studs->v, studs->by_uid, studs->count, sizeof(*studs->v),
				  offsetof(struct tree_stud, uid), ser->study_uid);
	long pi;

	if (si < 0)
		return -ENOENT;
	*stud = &studs->v[si];
	pi = tree_index_find(pats->v, pats->by_id, pats->count, sizeof(*pats->v),
			     offsetof(struct tree_pat, id), (*stud)->pid);
	if (pi < 0)
		return -ENOENT;
	*pat = &pats->v[pi];
	return 0;
}

/* Gives each run of equal-valued links unique names. Links are sorted on return. */
static int tree_links_uniquify(struct tree_link *links, size_t n)
{
	size_t i, j;

	qsort(links, n, sizeof(*links), tree_cmp_link);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && links[j].val == links[i].val; j++)
			;
		if (tree_uniquify((char *)&links[i], j - i, sizeof(*links),
				  offsetof(struct tree_link, name)) < 0)
			return -ENOMEM;
	}
	qsort(links, n, sizeof(*links), tree_cmp_link);
	return 0;
}

/* Files every series under its value of facet k. */
static int tree_facet_build(struct tree_facets *fs, unsigned k)
{
	struct tree_facet *f = &fs->f[k];
	const struct tree_sers *sers = fs->sers;
	const char **seen;
	size_t i, n = 0;
	int rc = -ENOMEM;

	seen = calloc(sers->count ? sers->count : 1, sizeof(*seen));
	f->vals = calloc(sers->count ? sers->count : 1, sizeof(*f->vals));
	f->links = calloc(sers->count ? sers->count : 1, sizeof(*f->links));
	if (!seen || !f->vals || !f->links)
		goto out_free;
	for (i = 0; i < sers->count; i++) {
		const char *v = sers->v[i].facet[k];

		seen[i] = v && *v ? v : NULL;
	}
	qsort(seen, sers->count, sizeof(*seen), tree_cmp_opt_str);
	for (i = 0; i < sers->count; i++) {
		if (n > 0 && tree_cmp_str(seen[i], f->vals[n - 1].api) == 0 &&
		    !seen[i] == !f->vals[n - 1].api)
			continue;
		f->vals[n].api = seen[i];
		f->vals[n].name = seen[i] ? tree_sanitize_name(seen[i]) : strdup(TREE_UNKNOWN);
		if (!f->vals[n++].name)
			goto out_free;
	}
	f->nvals = n;
	qsort(f->vals, n, sizeof(*f->vals), tree_cmp_fval);
	if (tree_uniquify((char *)f->vals, n, sizeof(*f->vals), offsetof(struct tree_fval, name)))
		goto out_free;
	qsort(f->vals, n, sizeof(*f->vals), tree_cmp_fval);
	f->by_api = tree_index_build(f->vals, n, sizeof(*f->vals), offsetof(struct tree_fval, api));
	if (!f->by_api)
		goto out_free;
	for (i = 0; i < sers->count; i++) {
		const struct tree_ser *ser = &sers->v[i];
		const struct tree_stud *stud;
		const struct tree_pat *pat;
		struct tree_link *l = &f->links[f->nlinks];
		const char *v = ser->facet[k] && *ser->facet[k] ? ser->facet[k] : NULL;

		if (tree_ser_place(fs->pats, fs->studs, ser, &pat, &stud) < 0)
			continue;
		l->val = (uint32_t)tree_index_find(f->vals, f->by_api, n, sizeof(*f->vals),
						   offsetof(struct tree_fval, api), v);
		l->pat = pat->name;
		l->stud = stud->name;
		l->ser = ser;
		l->name = tree_link_name(pat->name, ser->name);
		if (!l->name)
			goto out_free;
		f->nlinks++;
	}
	rc = tree_links_uniquify(f->links, f->nlinks);
out_free:
	free(seen);
	return rc;
}

static time_t tree_min_time(time_t a, time_t b)
{
	return a < b ? a : b;
}

/* Derived from the collection's patients, studies and series (loading them if need be):
 * trusted for as long as the oldest of them. */
static int tree_load_facets(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_facets *fs = calloc(1, sizeof(*fs));
	unsigned k;
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->t = t;
	fs->hdr.destroy = tree_facets_destroy;
	rc = tree_coll_get(t, c, &c->pats, tree_load_pats, &fs->pats);
	if (rc == 0)
		rc = tree_coll_get(t, c, &c->studs, tree_load_studs, &fs->studs);
	if (rc == 0)
		rc = tree_coll_get(t, c, &c->sers, tree_load_sers, &fs->sers);
	for (k = 0; rc == 0 && k < 3; k++)
		rc = tree_facet_build(fs, k);
	if (rc < 0) {
		tree_facets_destroy(&fs->hdr);
		return rc;
	}
	fs->hdr.fetched = tree_min_time(fs->pats->hdr.fetched,
					tree_min_time(fs->studs->hdr.fetched, fs->sers->hdr.fetched));
	*out = &fs->hdr;
	return 0;
}

static long tree_facet_find_val(const struct tree_facet *f, const char *name)
{
	struct tree_fval key = { .name = (char *)name };
	const struct tree_fval *v = bsearch(&key, f->vals, f->nvals, sizeof(*f->vals),
					    tree_cmp_fval);

	return v ? v - f->vals : -1;
}

static const struct tree_link *tree_facet_find_link(const struct tree_facet *f, size_t val,
						    const char *name)
{
	struct tree_link key = { .name = (char *)name, .val = (uint32_t)val };

	return bsearch(&key, f->links, f->nlinks, sizeof(*f->links), tree_cmp_link);
}

/* The values the collection's value list names for facet k that no series carries:
 * sanitised, sorted, as new strings in *out. Costs the value-list requests. */
static int tree_facet_extra(struct tree *t, struct tree_coll *c, const struct tree_facet *f,
			    unsigned k, char ***out, size_t *count)
{
	struct tree_vals *v = NULL;
	const struct tcia_values *list;
	size_t i, n = 0;
	char **names;
	int rc;

	*out = NULL;
	*count = 0;
	rc = tree_coll_get(t, c, &c->vals, tree_load_vals, &v);
	if (rc < 0)
		return rc;
	list = k == 0 ? &v->mods : k == 1 ? &v->parts : &v->manus;
	names = calloc(list->count ? list->count : 1, sizeof(*names));
	rc = -ENOMEM;
	if (!names)
		goto out_put;
	for (i = 0; i < list->count; i++) {
		const char *api = list->v[i].value;

		if (!api || !*api || tree_index_find(f->vals, f->by_api, f->nvals,
						     sizeof(*f->vals),
						     offsetof(struct tree_fval, api), api) >= 0)
			continue;
		names[n] = tree_sanitize_name(api);
		if (!names[n])
			goto out_free;
		if (tree_facet_find_val(f, names[n]) >= 0) {
			free(names[n]);
			continue;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), tree_cmp_names);
	*out = names;
	*count = n;
	rc = 0;
	goto out_put;
out_free:
	while (n)
		free(names[--n]);
	free(names);
out_put:
	tree_snap_put(t, &v->hdr);
	return rc;
}

static void tree_free_names(char **names, size_t n)
{
	while (n)
		free(names[--n]);
	free(names);
}

struct tree_mlink {
	char *name;
	char *target;		/* relative to /manifests/<name>/ */
	time_t mtime;
};

/* A manifest resolved against the archive. */
struct tree_mres {
	struct tree_snap hdr;
	size_t nlinks;
	struct tree_mlink *links;	/* sorted by name */
	char *missing;			/* missing.txt: one unknown UID per line */
	size_t missing_len;
};

static void tree_mres_destroy(struct tree_snap *s)
{
	struct tree_mres *r = (struct tree_mres *)s;
	size_t i;

	for (i = 0; i < r->nlinks; i++) {
		free(r->links[i].name);
		free(r->links[i].target);
	}
	free(r->links);
	free(r->missing);
	free(r);
}

static int tree_cmp_mlink(const void *a, const void *b)
{
	return strcmp(((const struct tree_mlink *)a)->name, ((const struct tree_mlink *)b)->name);
}

/* What a manifest resolution holds per collection while it works. */
struct tree_mcoll {
	struct tree_pats *pats;
	struct tree_studs *studs;
	struct tree_sers *sers;
	bool probed;		/* sers was loaded because a UID's getSeries named it */
};

static const struct tree_ser *tree_mcoll_find(const struct tree_mcoll *mc, const char *uid)
{
	long i;

	if (!mc->sers)
		return NULL;
	i = tree_index_find(mc->sers->v, mc->sers->by_uid, mc->sers->count,
			    sizeof(*mc->sers->v), offsetof(struct tree_ser, uid), uid);
	return i < 0 ? NULL : &mc->sers->v[i];
}

/* Finds uid's series: in a collection already at hand, else by one getSeries for the
 * UID, which names the collection to load in bulk (so a manifest of one collection costs
 * a handful of requests, not one per UID). Returns 0 with *ci and *ser (NULL when the
 * archive does not know the UID), or -errno. */
static int tree_man_locate(struct tree *t, struct tree_colls *cs, struct tree_mcoll *mcs,
			   const char *uid, size_t *ci, const struct tree_ser **ser)
{
	struct tcia_filter f = { .series_uid = uid };
	struct tcia_series_list l;
	size_t i;
	int rc;

	*ser = NULL;
	for (i = 0; i < cs->count; i++)
		if ((*ser = tree_mcoll_find(&mcs[i], uid))) {
			*ci = i;
			return 0;
		}
	rc = tcia_get_series(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	for (i = 0; l.count == 1 && l.v[0].collection && i < cs->count; i++)
		if (strcmp(cs->v[i].api, l.v[0].collection) == 0)
			break;
	if (l.count == 1 && i < cs->count && !mcs[i].probed) {
		mcs[i].probed = true;
		tree_snap_put(t, mcs[i].sers ? &mcs[i].sers->hdr : NULL);
		mcs[i].sers = NULL;
		rc = tree_coll_get(t, &cs->v[i], &cs->v[i].sers, tree_load_sers, &mcs[i].sers);
		if (rc == 0) {
			*ci = i;
			*ser = tree_mcoll_find(&mcs[i], uid);
		}
	}
	tcia_series_list_clear(&l);
	return rc;
}

/* The link for a located series: its folders' names, loading the collection's
 * patients and studies if need be. Returns 0, 1 when the API's lists disagree (the
 * series counts as missing), or -errno. */
static int tree_man_link(struct tree *t, struct tree_coll *c, struct tree_mcoll *mc,
			 const struct tree_ser *ser, struct tree_mlink *out)
{
	const struct tree_stud *stud;
	const struct tree_pat *pat;
	int rc = 0;

	if (!mc->pats)
		rc = tree_coll_get(t, c, &c->pats, tree_load_pats, &mc->pats);
	if (rc == 0 && !mc->studs)
		rc = tree_coll_get(t, c, &c->studs, tree_load_studs, &mc->studs);
	if (rc < 0)
		return rc;
	if (tree_ser_place(mc->pats, mc->studs, ser, &pat, &stud) < 0)
		return 1;
	out->name = tree_link_name(pat->name, ser->name);
	if (asprintf(&out->target, "../../%s/%s/%s/%s", c->name, pat->name, stud->name,
		     ser->name) < 0)
		out->target = NULL;
	out->mtime = ser->mtime;
	return out->name && out->target ? 0 : -ENOMEM;
}

static int tree_load_mres(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_man *man = arg;
	struct tree_colls *cs = NULL;
	struct tree_mcoll *mcs = NULL;
	struct tree_mres *r;
	size_t i, ci = 0, len;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->hdr.destroy = tree_mres_destroy;
	r->hdr.fetched = time(NULL);
	rc = -ENOMEM;
	r->links = calloc(man->m.count ? man->m.count : 1, sizeof(*r->links));
	r->missing = calloc(1, 1);
	if (!r->links || !r->missing)
		goto out_free;
	rc = tree_get_colls(t, &cs);
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	mcs = calloc(cs->count ? cs->count : 1, sizeof(*mcs));
	if (!mcs)
		goto out_free;
	for (i = 0; i < cs->count; i++)
		mcs[i].sers = (struct tree_sers *)tree_peek(t, &cs->v[i].sers);
	for (i = 0; i < man->m.count; i++) {
		const char *uid = man->m.uids[i];
		const struct tree_ser *ser;
		char *p;

		rc = tree_man_locate(t, cs, mcs, uid, &ci, &ser);
		if (rc == 0 && ser)
			rc = tree_man_link(t, &cs->v[ci], &mcs[ci], ser, &r->links[r->nlinks]);
		if (rc < 0) {
			free(r->links[r->nlinks].name);
			free(r->links[r->nlinks].target);
			memset(&r->links[r->nlinks], 0, sizeof(r->links[0]));
			goto out_free;
		}
		if (ser && rc == 0) {
			r->nlinks++;
			continue;
		}
		len = strlen(uid);
		p = realloc(r->missing, r->missing_len + len + 2);
		if (!p) {
			rc = -ENOMEM;
			goto out_free;
		}
		r->missing = p;
		memcpy(r->missing + r->missing_len, uid, len);
		r->missing_len += len;
		r->missing[r->missing_len++] = '\n';
		r->missing[r->missing_len] = '\0';
	}
	qsort(r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
	rc = -ENOMEM;
	if (tree_uniquify((char *)r->links, r->nlinks, sizeof(*r->links),
			  offsetof(struct tree_mlink, name)) < 0)
		goto out_free;
	qsort(r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
	*out = &r->hdr;
	r = NULL;
	rc = 0;
out_free:
	if (r)
		tree_mres_destroy(&r->hdr);
	for (i = 0; mcs && i < cs->count; i++) {
		tree_snap_put(t, mcs[i].sers ? &mcs[i].sers->hdr : NULL);
		tree_snap_put(t, mcs[i].studs ? &mcs[i].studs->hdr : NULL);
		tree_snap_put(t, mcs[i].pats ? &mcs[i].pats->hdr : NULL);
	}
	free(mcs);
	tree_snap_put(t, cs ? &cs->hdr : NULL);
	return rc;
}

static int tree_cmp_man(const void *a, const void *b)
{
	return strcmp(((const struct tree_man *)a)->name, ((const struct tree_man *)b)->name);
}

/* Takes the manifests over (each is left cleared) and names their folders. */
static int tree_take_manifests(struct tree *t, struct view_manifest *m, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	t->mans = calloc(n, sizeof(*t->mans));
	if (!t->mans)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct tree_man *man = &t->mans[t->nmans++];

		man->m = m[i];
		memset(&m[i], 0, sizeof(m[i]));
		man->name = tree_sanitize_name(man->m.name ? man->m.name : "manifest");
		if (!man->name)
			return -ENOMEM;
	}
	qsort(t->mans, t->nmans, sizeof(*t->mans), tree_cmp_man);
	if (tree_uniquify((char *)t->mans, t->nmans, sizeof(*t->mans),
			  offsetof(struct tree_man, name)) < 0)
		return -ENOMEM;
	qsort(t->mans, t->nmans, sizeof(*t->mans), tree_cmp_man);
	return 0;
}

static const struct tree_mlink *tree_mres_find(const struct tree_mres *r, const char *name)
{
	struct tree_mlink key = { .name = (char *)name };

	return bsearch(&key, r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
}

static struct tree_man *tree_find_man(struct tree *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->nmans; i++)
		if (strcmp(t->mans[i].name, name) == 0)
			return &t->mans[i];
	return NULL;
}

static int tree_resolve(struct tree *t, const char *path, const struct store_caller *who,
			struct tree_node *n);

static const char *const tree_table_names[3] = { "patients.csv", "studies.csv", "series.csv" };

static int tree_facet_index(const char *name)
{
	int k;

	for (k = 0; k < 3; k++)
		if (strcmp(name, tree_facet_dirs[k]) == 0)
			return k;
	return -1;
}

/* /<Collection>/.by-<facet>[/<value>[/<link>]], with n already at the collection. */
static int tree_resolve_facet(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			      unsigned k, struct tree_node *n)
{
	struct tree_facets *fs;
	char **extra;
	size_t nextra, i;
	int rc;

	n->kind = TK_FACET_ROOT;
	n->facet = k;
	if (depth == 2)
		return 0;
	if (depth > 4)
		return -ENOENT;
	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_facets, &fs);
	if (rc < 0)
		return rc;
	n->view = &fs->hdr;
	n->kind = TK_FACET_VAL;
	n->val = tree_facet_find_val(&fs->f[k], comps[2]);
	if (n->val < 0) {
		/* Perhaps a value the value list names but no series carries: empty. */
		if (depth == 4)
			return -ENOENT;
		rc = tree_facet_extra(t, n->coll, &fs->f[k], k, &extra, &nextra);
		if (rc < 0)
			return rc;
		for (i = 0; i < nextra && strcmp(extra[i], comps[2]) != 0; i++)
			;
		tree_free_names(extra, nextra);
		return i < nextra ? 0 : -ENOENT;
	}
	if (depth == 3)
		return 0;
	n->link = tree_facet_find_link(&fs->f[k], (size_t)n->val, comps[3]);
	if (!n->link)
		return -ENOENT;
	n->ser = n->link->ser;
	n->kind = TK_LINK;
	return 0;
}

/* /manifests[/<name>[/<link> | /missing.txt]]. */
static int tree_resolve_man(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			    struct tree_node *n)
{
	struct tree_snap *s;
	int rc;

	n->kind = TK_MANIFESTS;
	if (depth == 1)
		return 0;
	n->man = tree_find_man(t, comps[1]);
	if (depth > 3 || !n->man)
		return -ENOENT;
	n->kind = TK_MANIFEST;
	if (depth == 2)
		return 0;
	rc = tree_slot_get(t, &n->man->res, tree_load_mres, n->man, &s);
	if (rc < 0)
		return rc;
	n->view = s;
	if (strcmp(comps[2], "missing.txt") == 0) {
		n->kind = TK_MISSING;
		return 0;
	}
	n->mlink = tree_mres_find((struct tree_mres *)s, comps[2]);
	if (!n->mlink)
		return -ENOENT;
	n->kind = TK_LINK;
	return 0;
}

/* /.tciafs/series/<SeriesInstanceUID>[/name]: the series wherever it is in the tree, for
 * tools holding UIDs (tciafs-prefetch --uids). One getSeries by UID says where; the rest
 * is the normal resolution of its folder by bare UIDs. */
static int tree_resolve_uid(struct tree *t, const char *uid, const char *name,
			    const struct store_caller *who, struct tree_node *n)
{
	struct tcia_filter f = { .series_uid = uid };
	struct tcia_series_list l;
	struct tree_colls *cs = NULL;
	struct tree_pats *ps = NULL;
	const char *coll = NULL, *pat = NULL;
	char path[PATH_MAX];
	size_t i;
	int rc;

	if (tree_is_probe_name(uid) || (name && tree_is_probe_name(name)))
		return -ENOENT;
	rc = tcia_get_series(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	if (l.count != 1 || !l.v[0].collection || !l.v[0].patient_id || !l.v[0].study_uid)
		goto out_clear;
	rc = tree_get_colls(t, &cs);
	if (rc < 0)
		goto out_clear;
	rc = -ENOENT;
	for (i = 0; i < cs->count; i++)
		if (strcmp(cs->v[i].api, l.v[0].collection) == 0)
			coll = cs->v[i].name;
	if (!coll)
		goto out_put;
	for (i = 0; i < cs->count; i++)
		if (strcmp(cs->v[i].name, coll) == 0)
			break;
	rc = tree_coll_get(t, &cs->v[i], &cs->v[i].pats, tree_load_pats, &ps);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	for (i = 0; i < ps->count; i++)
		if (strcmp(ps->v[i].id, l.v[0].patient_id) == 0)
			pat = ps->v[i].name;
	if (pat && snprintf(path, sizeof(path), "/%s/%s/%s/%s%s%s", coll, pat, l.v[0].study_uid,
			    uid, name ? "/" : "", name ? name : "") < (int)sizeof(path))
		rc = tree_resolve(t, path, who, n);
out_put:
	tree_snap_put(t, ps ? &ps->hdr : NULL);
	tree_snap_put(t, &cs->hdr);
out_clear:
	tcia_series_list_clear(&l);
	return rc;
}

/* Resolves path into *n (release with tree_node_put). Names that cannot exist are
 * answered before anything is loaded, so they never cost a request. A name inside a
 * series folder (other than series.json) fetches the series. */
static int tree_resolve(struct tree *t, const char *path, const struct store_caller *who,
			struct tree_node *n)
{
	char comps[TREE_DEPTH_MAX][TREE_NAME_MAX + 1];
	int depth, i, rc;
	long found;

	memset(n, 0, sizeof(*n));
	depth = tree_split(path, comps);
	if (depth < 0)
		return depth;
	if (depth == 0) {
		n->kind = TK_ROOT;
		return 0;
	}
	if (depth == 1 && strcmp(comps[0], "README.txt") == 0) {
		n->kind = TK_README;
		return 0;
	}
	if (strcmp(comps[0], ".tciafs") == 0) {
		if (depth == 1) {
			n->kind = TK_TCIAFS_DIR;
			return 0;
		}
		if (depth == 2 && strcmp(comps[1], "status") == 0) {
			n->kind = TK_STATUS;
			return 0;
		}
		if (depth == 2 && strcmp(comps[1], "series") == 0) {
			n->kind = TK_UID_DIR;	/* lookups only: nothing is listed */
			return 0;
		}
		if (depth >= 3 && strcmp(comps[1], "series") == 0)
			return tree_resolve_uid(t, comps[2], depth > 3 ? comps[3] : NULL, who, n);
		return -ENOENT;
	}
	for (i = 0; i < depth; i++)
		if (tree_is_probe_name(comps[i]) && !(i == 1 && tree_facet_index(comps[1]) >= 0))
			return -ENOENT;
	/* Our JSON files have fixed names and places; any other *.json cannot exist. */
	static const char *const json_at[] = { "", "collection.json", "patient.json",
					       "study.json", "series.json" };
	for (i = 0; i < depth; i++)
		if (tree_ends_with(comps[i], ".json") &&
		    (i + 1 != depth || i > 4 || strcmp(comps[i], json_at[i]) != 0))
			return -ENOENT;
	if (depth > 5)
		return -ENOENT;
	if (strcmp(comps[0], "manifests") == 0 && t->nmans > 0) {
		rc = tree_resolve_man(t, comps, depth, n);
		if (rc < 0)
			tree_node_put(t, n);
		return rc;
	}

	rc = tree_get_colls(t, &n->colls);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	n->coll = tree_find_coll(n->colls, comps[0]);
	if (!n->coll)
		goto out_put;
	n->kind = TK_COLL;
	if (depth == 1)
		return 0;
	if (depth == 2 && strcmp(comps[1], "collection.json") == 0) {
		n->kind = TK_COLL_JSON;
		return 0;
	}
	for (i = 0; depth == 2 && i < 3; i++)
		if (strcmp(comps[1], tree_table_names[i]) == 0) {
			n->kind = TK_TABLE;
			n->facet = (unsigned)i;
			return 0;
		}
	if (depth == 2 && strcmp(comps[1], "CITATION.txt") == 0) {
		n->kind = TK_CITATION;
		return 0;
	}
	if (tree_facet_index(comps[1]) >= 0) {
		rc = tree_resolve_facet(t, comps, depth, (unsigned)tree_facet_index(comps[1]), n);
		if (rc < 0)
			goto out_put;
		return 0;
	}
	rc = tree_coll_get(t, n->coll, &n->coll->pats, tree_load_pats, &n->pats);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	n->pat = tree_find_pat(n->pats, comps[1]);
	if (!n->pat)
		goto out_put;
	n->kind = TK_PAT;
	if (depth == 2)
		return 0;
	if (depth == 3 && strcmp(comps[2], "patient.json") == 0) {
		n->kind = TK_PAT_JSON;
		return 0;
	}
	rc = tree_coll_get(t, n->coll, &n->coll->studs, tree_load_studs, &n->studs);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	n->stud = tree_find_stud(n->studs, n->pat->id, comps[2]);
	if (!n->stud)
		goto out_put;
	n->kind = TK_STUDY;
	if (depth == 3)
		return 0;
	if (depth == 4 && strcmp(comps[3], "study.json") == 0) {
		n->kind = TK_STUDY_JSON;
		return 0;
	}
	rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &n->sers);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	n->ser = tree_find_ser(n->sers, n->stud->uid, comps[3]);
	if (!n->ser)
		goto out_put;
	n->kind = TK_SERIES;
	if (depth == 4)
		return 0;
	if (strcmp(comps[4], "series.json") == 0) {
		n->kind = TK_SERIES_JSON;
		return 0;
	}
	rc = tree_series_files(t, n->ser, true, who, &n->ss);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	found = store_series_find(n->ss, comps[4]);
	if (found < 0)
		goto out_put;
	n->file = (size_t)found;
	n->kind = TK_SERIES_FILE;
	return 0;
out_put:
	tree_node_put(t, n);
	return rc;
}

/* ---- rendering the JSON files ------------------------------------------------------- */

/* Pretty-prints obj (2-space indent, trailing newline) into a new buffer. */
static int tree_render_obj(json_t *obj, char **out, size_t *len)
{
	char *s = json_dumps(obj, JSON_INDENT(2) | JSON_ENCODE_ANY);
	size_t n;

	if (!s)
		return -ENOMEM;
	n = strlen(s);
	*out = malloc(n + 2);
	if (!*out) {
		free(s);
		return -ENOMEM;
	}
	memcpy(*out, s, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*len = n + 1;
	free(s);
	return 0;
}

static int tree_render_raw(const char *raw, json_t *extra, char **out, size_t *len)
{
	json_t *obj = json_loads(raw, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	int rc;

	if (!obj)
		return -ENOMEM;	/* raw was produced by json_dumps: only memory can fail */
	if (extra && json_is_object(obj))
		json_object_update(obj, extra);
	rc = tree_render_obj(obj, out, len);
	json_decref(obj);
	return rc;
}

static json_t *tree_values_array(const struct tcia_values *v)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < v->count; i++)
		if (json_array_append_new(a, json_string(v->v[i].value))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static int tree_render_coll(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct tree_vals *v = NULL;
	struct tree_sers *s = NULL;
	json_t *obj;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->vals, tree_load_vals, &v);
	if (rc == 0)
		rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &s);
	if (rc < 0)
		goto out_put;
	rc = -ENOMEM;
	obj = json_object();
	if (!obj || json_object_set_new(obj, "Collection", json_string(n->coll->api)) ||
	    json_object_set_new(obj, "Modality", tree_values_array(&v->mods)) ||
	    json_object_set_new(obj, "BodyPartExamined", tree_values_array(&v->parts)) ||
	    json_object_set_new(obj, "Manufacturer", tree_values_array(&v->manus)) ||
	    json_object_update(obj, s->licence))
		goto out_decref;
	rc = tree_render_obj(obj, out, len);
out_decref:
	json_decref(obj);
out_put:
	tree_snap_put(t, v ? &v->hdr : NULL);
	tree_snap_put(t, s ? &s->hdr : NULL);
	return rc;
}

static int tree_render_series(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct tcia_series_size size;
	json_t *extra = NULL;
	int rc;

	/* SeriesSize is slow and per series: asked only here, when series.json is looked at. */
	rc = tcia_get_series_size(t->tcia, n->ser->uid, &size);
	if (rc == -ENOENT)
		return tree_render_raw(n->ser->raw, NULL, out, len);
	if (rc < 0)
		return rc;
	extra = json_loads(size.raw, JSON_DECODE_ANY, NULL);
	tcia_series_size_clear(&size);
	if (!extra)
		return -ENOMEM;
	rc = tree_render_raw(n->ser->raw, extra, out, len);
	json_decref(extra);
	return rc;
}

static int tree_render_status(struct tree *t, char **out, size_t *len)
{
	char *text = t->status ? t->status(t->status_arg) : strdup("{}");
	size_t n;

	if (!text)
		return -ENOMEM;
	n = strlen(text);
	*out = malloc(n + 2);
	if (!*out) {
		free(text);
		return -ENOMEM;
	}
	memcpy(*out, text, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*len = n + 1;
	free(text);
	return 0;
}

/* The absolute path of a folder for the tables' Path column. NULL if out of memory. */
static char *tree_table_path(const struct tree *t, const char *coll, const char *pat,
			     const char *stud, const char *ser)
{
	char *p;

	if (asprintf(&p, "%s/%s/%s%s%s%s%s", t->mountpoint, coll, pat, stud ? "/" : "",
		     stud ? stud : "", ser ? "/" : "", ser ? ser : "") < 0)
		return NULL;
	return p;
}

/* One row source of a table: the object as the API sent it, and where it is shown. */
struct tree_row {
	const char *raw;
	char *path;
};

static int tree_cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct tree_row *)a)->path, ((const struct tree_row *)b)->path);
}

/* patients.csv, studies.csv, series.csv: one row per object in path order, every
 * attribute a column, the folder's absolute path last. */
static int tree_render_table(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct tree_pats *pats = NULL;
	struct tree_studs *studs = NULL;
	struct tree_sers *sers = NULL;
	struct view_table *tab = NULL;
	struct tree_row *rows = NULL;
	size_t i, count = 0, nrows = 0;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->pats, tree_load_pats, &pats);
	if (rc == 0 && n->facet >= 1)
		rc = tree_coll_get(t, n->coll, &n->coll->studs, tree_load_studs, &studs);
	if (rc == 0 && n->facet == 2)
		rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &sers);
	if (rc < 0)
		goto out_put;
	count = n->facet == 0 ? pats->count : n->facet == 1 ? studs->count : sers->count;
	rc = -ENOMEM;
	rows = calloc(count ? count : 1, sizeof(*rows));
	if (!rows || view_table_new(&tab) < 0)
		goto out_free;
	for (i = 0; i < count; i++) {
		struct tree_row *r = &rows[nrows];
		const struct tree_stud *stud;
		const struct tree_pat *pat;
		long pi;

		if (n->facet == 0) {
			r->raw = pats->v[i].raw;
			r->path = tree_table_path(t, n->coll->name, pats->v[i].name, NULL, NULL);
		} else if (n->facet == 1) {
			stud = &studs->v[i];
			pi = tree_index_find(pats->v, pats->by_id, pats->count, sizeof(*pats->v),
					     offsetof(struct tree_pat, id), stud->pid);
			if (pi < 0)
				continue;	/* not shown in the tree either */
			r->raw = stud->raw;
			r->path = tree_table_path(t, n->coll->name, pats->v[pi].name, stud->name,
						  NULL);
		} else {
			if (tree_ser_place(pats, studs, &sers->v[i], &pat, &stud) < 0)
				continue;
			r->raw = sers->v[i].raw;
			r->path = tree_table_path(t, n->coll->name, pat->name, stud->name,
						  sers->v[i].name);
		}
		if (!r->path)
			goto out_free;
		nrows++;
	}
	qsort(rows, nrows, sizeof(*rows), tree_cmp_row);
	for (i = 0, rc = 0; rc == 0 && i < nrows; i++)
		rc = view_table_scan(tab, rows[i].raw);
	for (i = 0; rc == 0 && i < nrows; i++)
		rc = view_table_row(tab, rows[i].raw, rows[i].path);
	if (rc == 0)
		rc = view_table_finish(tab, out, len);
out_free:
	for (i = 0; i < nrows; i++)
		free(rows[i].path);
	free(rows);
	view_table_free(tab);
out_put:
	tree_snap_put(t, sers ? &sers->hdr : NULL);
	tree_snap_put(t, studs ? &studs->hdr : NULL);
	tree_snap_put(t, pats ? &pats->hdr : NULL);
	return rc;
}

/* The licence object's member key as a list of strings (a string or an array of them). */
static size_t tree_licence_list(const json_t *lic, const char *key, const char **out,
				size_t max)
{
	const json_t *v = json_object_get(lic, key);
	size_t i, n = 0;

	if (json_is_string(v) && max > 0)
		out[n++] = json_string_value(v);
	for (i = 0; json_is_array(v) && i < json_array_size(v) && n < max; i++)
		out[n++] = json_string_value(json_array_get(v, i));
	return n;
}

#define TREE_CITATION_MAX 64

static int tree_render_citation(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	const char *dois[TREE_CITATION_MAX], *names[TREE_CITATION_MAX], *uris[TREE_CITATION_MAX];
	struct view_citation c = { .collection = n->coll->api, .dois = dois,
				   .licence_names = names, .licence_uris = uris };
	struct tree_sers *s = NULL;
	int rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &s);

	if (rc < 0)
		return rc;
	c.ndois = tree_licence_list(s->licence, "CollectionURI", dois, TREE_CITATION_MAX);
	c.nnames = tree_licence_list(s->licence, "LicenseName", names, TREE_CITATION_MAX);
	c.nuris = tree_licence_list(s->licence, "LicenseURI", uris, TREE_CITATION_MAX);
	rc = view_citation_render(&c, out, len);
	tree_snap_put(t, &s->hdr);
	return rc;
}

static int tree_render_missing(struct tree_node *n, char **out, size_t *len)
{
	const struct tree_mres *r = (const struct tree_mres *)n->view;

	*out = strdup(r->missing);
	*len = r->missing_len;
	return *out ? 0 : -ENOMEM;
}

/* Where a link points, relative to the folder it is in. Returns its length, or
 * -ENAMETOOLONG when it does not fit in size. */
static int tree_link_target(const struct tree_node *n, char *buf, size_t size)
{
	int len;

	if (n->mlink)
		len = snprintf(buf, size, "%s", n->mlink->target);
	else
		len = snprintf(buf, size, "../../%s/%s/%s", n->link->pat, n->link->stud,
			       n->link->ser->name);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : len;
}

/* Renders the generated file the node is. Returns 0 with a new buffer, or -errno. */
static int tree_render(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	switch (n->kind) {
	case TK_README:
		*out = strdup(t->readme);
		*len = t->readme_len;
		return *out ? 0 : -ENOMEM;
	case TK_COLL_JSON:
		return tree_render_coll(t, n, out, len);
	case TK_PAT_JSON:
		return tree_render_raw(n->pat->raw, NULL, out, len);
	case TK_STUDY_JSON:
		return tree_render_raw(n->stud->raw, NULL, out, len);
	case TK_SERIES_JSON:
		return tree_render_series(t, n, out, len);
	case TK_STATUS:
		return tree_render_status(t, out, len);
	case TK_TABLE:
		return tree_render_table(t, n, out, len);
	case TK_CITATION:
		return tree_render_citation(t, n, out, len);
	case TK_MISSING:
		return tree_render_missing(n, out, len);
	default:
		return -EISDIR;
	}
}

/* ---- attributes -------------------------------------------------------------------- */

static void tree_fill_dir(const struct tree *t, time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

static void tree_fill_file(const struct tree *t, size_t size, time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

static void tree_fill_link(const struct tree *t, size_t size, time_t mtime, struct stat *st)
{
	tree_fill_file(t, size, mtime, st);
	st->st_mode = S_IFLNK | 0777;
}

static time_t tree_node_mtime(const struct tree *t, const struct tree_node *n)
{
	if (n->ser)
		return n->ser->mtime;
	if (n->stud)
		return n->stud->mtime;
	return t->mounted;
}

static bool tree_is_dir(enum tree_kind k)
{
	return k == TK_ROOT || k == TK_COLL || k == TK_PAT || k == TK_STUDY || k == TK_SERIES ||
	       k == TK_TCIAFS_DIR || k == TK_UID_DIR || k == TK_FACET_ROOT || k == TK_FACET_VAL ||
	       k == TK_MANIFESTS || k == TK_MANIFEST;
}

static int tree_node_stat(struct tree *t, struct tree_node *n, struct stat *st)
{
	char *data;
	size_t len;
	int rc;

	if (tree_is_dir(n->kind)) {
		tree_fill_dir(t, tree_node_mtime(t, n), st);
		return 0;
	}
	if (n->kind == TK_README) {
		tree_fill_file(t, t->readme_len, t->mounted, st);
		return 0;
	}
	if (n->kind == TK_SERIES_FILE) {
		tree_fill_file(t, store_series_size(n->ss, n->file), n->ser->mtime, st);
		return 0;
	}
	if (n->kind == TK_LINK) {
		char target[PATH_MAX];

		rc = tree_link_target(n, target, sizeof(target));
		if (rc < 0)
			return rc;
		tree_fill_link(t, (size_t)rc, n->mlink ? n->mlink->mtime : n->ser->mtime, st);
		return 0;
	}
	/* Sizes must be exact at stat time: render to know. */
	rc = tree_render(t, n, &data, &len);
	if (rc < 0)
		return rc;
	free(data);
	tree_fill_file(t, len, tree_node_mtime(t, n), st);
	return 0;
}

int tree_stat(struct tree *tree, const char *path, const struct store_caller *who,
	      struct stat *st)
{
	struct tree_node n;
	int rc = tree_resolve(tree, path, who, &n);

	if (rc < 0)
		return rc;
	rc = tree_node_stat(tree, &n, st);
	tree_node_put(tree, &n);
	return rc;
}

/* ---- listings ---------------------------------------------------------------------- */

/* Emits a listing in sorted order: the folder's generated entries (README.txt, *.json,
 * the tables, the facet folders) are held back until their places among the children
 * come. */
#define TREE_PENDING_MAX 12

struct tree_pending {
	const char *name;
	struct stat st;
	bool complete;
};

struct tree_lister {
	tree_fill_fn fill;
	void *ctx;
	struct tree_pending pend[TREE_PENDING_MAX];
	size_t npend, next;	/* held, and already emitted of those */
	bool stopped;
};

static void tree_emit_one(struct tree_lister *l, const struct tree_pending *p)
{
	if (!l->stopped)
		l->stopped = l->fill(l->ctx, p->name, &p->st, p->complete) != 0;
}

/* Emits every held entry that sorts before name (all of them when name is NULL). */
static void tree_emit_held(struct tree_lister *l, const char *name)
{
	while (l->next < l->npend && (!name || strcmp(l->pend[l->next].name, name) < 0))
		tree_emit_one(l, &l->pend[l->next++]);
}

static void tree_emit_pending(struct tree_lister *l)
{
	tree_emit_held(l, NULL);
}

/* Holds an entry for its place; name must outlive the listing. */
static void tree_hold(struct tree_lister *l, const char *name, const struct stat *st,
		      bool complete)
{
	size_t i = l->npend;

	if (l->npend == TREE_PENDING_MAX)
		return;
	for (; i > 0 && strcmp(l->pend[i - 1].name, name) > 0; i--)
		l->pend[i] = l->pend[i - 1];
	l->pend[i] = (struct tree_pending){ name, *st, complete };
	l->npend++;
}

/* Returns nonzero once the caller's buffer is full. */
static int tree_emit(struct tree_lister *l, const char *name, const struct stat *st,
		     bool complete)
{
	tree_emit_held(l, name);
	if (!l->stopped)
		l->stopped = l->fill(l->ctx, name, st, complete) != 0;
	return l->stopped;
}

static int tree_list_root(struct tree *t, struct tree_lister *l)
{
	struct tree_colls *cs;
	struct stat st;
	size_t i;
	int rc = tree_get_colls(t, &cs);

	if (rc < 0)
		return rc;
	tree_fill_file(t, t->readme_len, t->mounted, &st);
	tree_hold(l, "README.txt", &st, true);
	tree_fill_dir(t, t->mounted, &st);
	if (t->nmans > 0)
		tree_hold(l, "manifests", &st, true);
	for (i = 0; i < cs->count; i++)
		if (tree_emit(l, cs->v[i].name, &st, true))
			break;
	tree_emit_pending(l);
	tree_snap_put(t, &cs->hdr);
	return 0;
}

static int tree_list_coll(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_snap *v, *s;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->pats, tree_load_pats, &n->pats);
	if (rc < 0)
		return rc;
	/* collection.json costs four requests to size: give its attributes only when they
	 * are at hand, so that `find` walking past it asks for nothing. */
	v = tree_peek(t, &n->coll->vals);
	s = tree_peek(t, &n->coll->sers);
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	if (v && s) {
		struct tree_node jn = *n;

		jn.kind = TK_COLL_JSON;
		rc = tree_node_stat(t, &jn, &st);
	}
	tree_snap_put(t, v);
	tree_snap_put(t, s);
	tree_hold(l, "collection.json", &st, v && s && rc == 0);
	/* The tables and the citation cost a rendering to size: left to a stat. */
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	for (i = 0; i < 3; i++)
		tree_hold(l, tree_table_names[i], &st, false);
	tree_hold(l, "CITATION.txt", &st, false);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < 3; i++)
		tree_hold(l, tree_facet_dirs[i], &st, true);
	for (i = 0; i < n->pats->count; i++)
		if (tree_emit(l, n->pats->v[i].name, &st, true))
			break;
	tree_emit_pending(l);
	return 0;
}

static int tree_list_pat(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_node jn = *n;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->studs, tree_load_studs, &n->studs);
	if (rc < 0)
		return rc;
	jn.kind = TK_PAT_JSON;
	rc = tree_node_stat(t, &jn, &st);
	if (rc < 0)
		return rc;
	tree_hold(l, "patient.json", &st, true);
	for (i = tree_run_start(n->studs->v, n->studs->count, &tree_stud_layout, n->pat->id);
	     tree_in_run(n->studs->v, n->studs->count, &tree_stud_layout, i, n->pat->id); i++) {
		tree_fill_dir(t, n->studs->v[i].mtime, &st);
		if (tree_emit(l, n->studs->v[i].name, &st, true))
			break;
	}
	tree_emit_pending(l);
	return 0;
}

static int tree_list_study(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_node jn = *n;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &n->sers);
	if (rc < 0)
		return rc;
	jn.kind = TK_STUDY_JSON;
	rc = tree_node_stat(t, &jn, &st);
	if (rc < 0)
		return rc;
	tree_hold(l, "study.json", &st, true);
	for (i = tree_run_start(n->sers->v, n->sers->count, &tree_ser_layout, n->stud->uid);
	     tree_in_run(n->sers->v, n->sers->count, &tree_ser_layout, i, n->stud->uid); i++) {
		tree_fill_dir(t, n->sers->v[i].mtime, &st);
		if (tree_emit(l, n->sers->v[i].name, &st, true))
			break;
	}
	tree_emit_pending(l);
	return 0;
}

/* Opening a series folder is what fetches the series: its files are listed with their
 * sizes, beside series.json. */
static int tree_list_series(struct tree *t, struct tree_node *n, const struct store_caller *who,
			    struct tree_lister *l)
{
	struct store_series *ss;
	char **names;
	struct stat st;
	size_t i, count;
	int rc;

	rc = tree_series_files(t, n->ser, true, who, &ss);
	if (rc < 0)
		return rc;
	count = store_series_count(ss);
	names = calloc(count ? count : 1, sizeof(*names));
	if (!names) {
		store_series_put(t->store, ss);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++)
		names[i] = (char *)store_series_name(ss, i);
	qsort(names, count, sizeof(*names), tree_cmp_names);
	/* series.json's size needs getSeriesSize (slow): left to a stat of its own. */
	tree_fill_file(t, 0, n->ser->mtime, &st);
	tree_hold(l, "series.json", &st, false);
	for (i = 0; i < count; i++) {
		uint64_t size = store_series_size(ss, (size_t)store_series_find(ss, names[i]));

		tree_fill_file(t, size, n->ser->mtime, &st);
		if (tree_emit(l, names[i], &st, true))
			break;
	}
	tree_emit_pending(l);
	free(names);
	store_series_put(t->store, ss);
	return 0;
}

static int tree_list_facet_root(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	const struct tree_facet *f;
	struct tree_facets *fs;
	const char **names;
	char **extra;
	size_t nextra, i, count;
	struct stat st;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_facets, &fs);
	if (rc < 0)
		return rc;
	n->view = &fs->hdr;
	f = &fs->f[n->facet];
	rc = tree_facet_extra(t, n->coll, f, n->facet, &extra, &nextra);
	if (rc < 0)
		return rc;
	names = calloc(f->nvals + nextra + 1, sizeof(*names));
	if (!names) {
		tree_free_names(extra, nextra);
		return -ENOMEM;
	}
	for (i = 0; i < f->nvals; i++)
		names[i] = f->vals[i].name;
	for (i = 0; i < nextra; i++)
		names[f->nvals + i] = extra[i];
	count = f->nvals + nextra;
	qsort(names, count, sizeof(*names), tree_cmp_names);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < count; i++)
		if (tree_emit(l, names[i], &st, true))
			break;
	free(names);
	tree_free_names(extra, nextra);
	return 0;
}

static int tree_list_facet_val(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	const struct tree_facet *f = &((struct tree_facets *)n->view)->f[n->facet];
	struct tree_node ln = *n;
	size_t lo = 0, hi = f->nlinks;
	struct stat st;

	if (n->val < 0)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->links[mid].val < (uint32_t)n->val)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < f->nlinks && f->links[lo].val == (uint32_t)n->val; lo++) {
		ln.link = &f->links[lo];
		ln.ser = ln.link->ser;
		ln.kind = TK_LINK;
		if (tree_node_stat(t, &ln, &st) == 0 && tree_emit(l, ln.link->name, &st, true))
			break;
	}
	return 0;
}

static int tree_list_mans(struct tree *t, struct tree_lister *l)
{
	struct stat st;
	size_t i;

	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < t->nmans; i++)
		if (tree_emit(l, t->mans[i].name, &st, true))
			break;
	return 0;
}

static int tree_list_man(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_mres *r;
	struct tree_node ln = *n;
	struct tree_snap *s;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_slot_get(t, &n->man->res, tree_load_mres, n->man, &s);
	if (rc < 0)
		return rc;
	n->view = s;
	r = (struct tree_mres *)s;
	tree_fill_file(t, r->missing_len, r->hdr.fetched, &st);
	tree_hold(l, "missing.txt", &st, true);
	for (i = 0; i < r->nlinks; i++) {
		ln.mlink = &r->links[i];
		ln.kind = TK_LINK;
		if (tree_node_stat(t, &ln, &st) == 0 && tree_emit(l, ln.mlink->name, &st, true))
			break;
	}
	tree_emit_pending(l);
	return 0;
}

static int tree_list_tciafs(struct tree *t, struct tree_lister *l)
{
	struct stat st;

	tree_fill_dir(t, t->mounted, &st);
	tree_emit(l, "series", &st, true);
	tree_fill_file(t, 0, time(NULL), &st);
	tree_emit(l, "status", &st, false);
	return 0;
}

int tree_list(struct tree *tree, const char *path, const struct store_caller *who,
	      tree_fill_fn fill, void *ctx)
{
	struct tree_lister l = { .fill = fill, .ctx = ctx };
	struct tree_node n;
	int rc = tree_resolve(tree, path, who, &n);

	if (rc < 0)
		return rc;
	switch (n.kind) {
	case TK_ROOT:
		rc = tree_list_root(tree, &l);
		break;
	case TK_COLL:
		rc = tree_list_coll(tree, &n, &l);
		break;
	case TK_PAT:
		rc = tree_list_pat(tree, &n, &l);
		break;
	case TK_STUDY:
		rc = tree_list_study(tree, &n, &l);
		break;
	case TK_SERIES:
		rc = tree_list_series(tree, &n, who, &l);
		break;
	case TK_TCIAFS_DIR:
		rc = tree_list_tciafs(tree, &l);
		break;
	case TK_UID_DIR:
		rc = 0;
		break;
	case TK_FACET_ROOT:
		rc = tree_list_facet_root(tree, &n, &l);
		break;
	case TK_FACET_VAL:
		rc = tree_list_facet_val(tree, &n, &l);
		break;
	case TK_MANIFESTS:
		rc = tree_list_mans(tree, &l);
		break;
	case TK_MANIFEST:
		rc = tree_list_man(tree, &n, &l);
		break;
	default:
		rc = -ENOTDIR;
	}
	tree_node_put(tree, &n);
	return rc;
}

/* ---- files ------------------------------------------------------------------------- */

/* How long an open waits for another process that holds a series exclusively (it is
 * evicting it, or fetching it anew), and how often it looks. */
#define TREE_BUSY_WAIT_MS 5000
#define TREE_BUSY_STEP_MS 20

/* Opens a stored file under the shared lock that keeps its series from eviction. When
 * someone holds the series exclusively, waits a bounded while (interruptibly) and
 * resolves the path again: if the series went away meanwhile, that fetches it anew. */
static int tree_open_stored(struct tree *t, const char *path, const struct store_caller *who,
			    struct tree_node *n, int *fd)
{
	struct timespec step = { 0, TREE_BUSY_STEP_MS * 1000000L };
	int waited = 0, gone = 0, rc;

	for (;;) {
		rc = store_open(t->store, n->ss, n->file, fd);
		if (rc == -ENOENT && gone++ == 0)
			;	/* evicted between the lookup and now: look again, once */
		else if (rc != -EBUSY || waited >= TREE_BUSY_WAIT_MS)
			return rc;
		if (who && who->interrupted && who->interrupted(who->arg))
			return -EINTR;
		if (rc == -EBUSY) {
			nanosleep(&step, NULL);
			waited += TREE_BUSY_STEP_MS;
		}
		tree_node_put(t, n);
		rc = tree_resolve(t, path, who, n);
		if (rc < 0)
			return rc;
		if (n->kind != TK_SERIES_FILE)
			return -ENOENT;
	}
}

int tree_open(struct tree *tree, const char *path, int flags, const struct store_caller *who,
	      struct tree_file **out)
{
	struct tree_file *f;
	struct tree_node n;
	int rc;

	*out = NULL;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	rc = tree_resolve(tree, path, who, &n);
	if (rc < 0)
		return rc;
	rc = -EISDIR;
	if (tree_is_dir(n.kind))
		goto out_put;
	rc = -ENOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out_put;
	f->fd = -1;
	if (n.kind == TK_SERIES_FILE) {
		rc = tree_open_stored(tree, path, who, &n, &f->fd);
		if (rc == 0) {
			/* The file keeps the node's reference on its series. */
			f->store = tree->store;
			f->ss = n.ss;
			n.ss = NULL;
		}
	} else {
		f->live = n.kind == TK_STATUS;
		rc = tree_render(tree, &n, &f->data, &f->len);
	}
	if (rc < 0) {
		free(f);
		goto out_put;
	}
	*out = f;
out_put:
	tree_node_put(tree, &n);
	return rc;
}

ssize_t tree_readlink(struct tree *tree, const char *path, char *buf, size_t size)
{
	struct tree_node n;
	int rc = tree_resolve(tree, path, NULL, &n);

	if (rc < 0)
		return rc;
	rc = n.kind == TK_LINK ? tree_link_target(&n, buf, size) : -EINVAL;
	tree_node_put(tree, &n);
	return rc;
}

int tree_file_fd(const struct tree_file *f)
{
	return f->fd;
}

bool tree_file_live(const struct tree_file *f)
{
	return f->live;
}

ssize_t tree_read(struct tree_file *f, char *buf, size_t size, off_t off)
{
	ssize_t got;
	size_t n;

	if (off < 0)
		return -EINVAL;
	if (f->fd >= 0) {
		got = pread(f->fd, buf, size, off);
		return got < 0 ? -errno : got;
	}
	if ((size_t)off >= f->len)
		return 0;
	n = f->len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, f->data + off, n);
	return (ssize_t)n;
}

void tree_close(struct tree_file *f)
{
	if (!f)
		return;
	if (f->ss) {
		store_close(f->store, f->ss, f->fd);
		store_series_put(f->store, f->ss);
	}
	free(f->data);
	free(f);
}

/* ---- extended attributes ----------------------------------------------------------- */

struct tree_xattr {
	const char *name;
	const char *value;
	char num[24];		/* for values that are numbers */
};

/* The node's identifiers, outermost first. Returns how many. */
static size_t tree_xattrs(const struct tree_node *n, struct tree_xattr out[6])
{
	size_t k = 0;

	if (n->coll)
		out[k++] = (struct tree_xattr){ "user.tcia.collection", n->coll->api, "" };
	if (n->pat)
		out[k++] = (struct tree_xattr){ "user.tcia.patient_id", n->pat->id, "" };
	if (n->stud && n->stud->uid)
		out[k++] = (struct tree_xattr){ "user.tcia.study_uid", n->stud->uid, "" };
	if (n->ser && n->ser->uid)
		out[k++] = (struct tree_xattr){ "user.tcia.series_uid", n->ser->uid, "" };
	/* What the metadata says a series holds, so tools can size work before fetching. */
	if (n->ser && n->ser->file_size >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.file_size", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)n->ser->file_size);
		k++;
	}
	if (n->ser && n->ser->image_count >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.image_count", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)n->ser->image_count);
		k++;
	}
	for (size_t i = 0; i < k; i++)
		if (!out[i].value)
			out[i].value = out[i].num;
	return k;
}

ssize_t tree_getxattr(struct tree *tree, const char *path, const char *name, char *buf,
		      size_t size)
{
	struct tree_xattr x[6];
	struct tree_node n;
	ssize_t rc;
	size_t i, k, len;

	/* ls -l asks every file for security.selinux and system.posix_acl_*: answer those
	 * before resolving anything (the kernel has looked the path up already). */
	if (strncmp(name, "user.tcia.", 10) != 0)
		return -ENODATA;
	rc = tree_resolve(tree, path, NULL, &n);
	if (rc < 0)
		return rc;
	rc = -ENODATA;
	k = tree_xattrs(&n, x);
	for (i = 0; i < k; i++) {
		if (strcmp(x[i].name, name) != 0)
			continue;
		len = strlen(x[i].value);
		if (size == 0)
			rc = (ssize_t)len;
		else if (size < len)
			rc = -ERANGE;
		else {
			memcpy(buf, x[i].value, len);
			rc = (ssize_t)len;
		}
		break;
	}
	tree_node_put(tree, &n);
	return rc;
}

ssize_t tree_listxattr(struct tree *tree, const char *path, char *buf, size_t size)
{
	struct tree_xattr x[6];
	struct tree_node n;
	size_t i, k, need = 0;
	ssize_t rc;

	rc = tree_resolve(tree, path, NULL, &n);
	if (rc < 0)
		return rc;
	k = tree_xattrs(&n, x);
	for (i = 0; i < k; i++)
		need += strlen(x[i].name) + 1;
	rc = (ssize_t)need;
	if (size > 0 && size < need) {
		rc = -ERANGE;
	} else if (size > 0) {
		char *p = buf;

		for (i = 0; i < k; i++) {
			size_t len = strlen(x[i].name) + 1;

			memcpy(p, x[i].name, len);
			p += len;
		}
	}
	tree_node_put(tree, &n);
	return rc;
}
