/* SPDX-License-Identifier: MIT
 * tree.c — the namespace: which paths exist, what they list and what generated files
 * hold. What the API says is kept as immutable, reference-counted snapshots: the list of
 * collections, and per collection its patients, its studies, its series and its value
 * lists, each loaded by one request for the whole collection and trusted for meta_ttl.
 * One mutex guards the slots that hold them; it is never held across a request. The
 * views (facets, manifests, tables, citations) are in tree_view.c.
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

#include "failures.h"
#include "log.h"
#include "tree_int.h"
#include "utf8.h"

/* ---- snapshots ------------------------------------------------------------------- */


/* Milliseconds on the monotonic clock: whole seconds from time() would call a 10 ms
 * failure that happens to straddle a second boundary "slow". */
static int64_t tree_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
size_t tree_utf8_cut(const char *s, size_t max)
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
	size_t n, i, j;
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
	for (i = 0, j = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		size_t bidi = utf8_bidi_len(out + i, n - i);

		if (bidi) {
			/* A bidi control makes "evil\u202Egpj.exe" show as "evilexe.jpg". */
			out[j++] = '_';
			i += bidi - 1;
		} else {
			out[j++] = (c == '/' || c < 0x20 || c == 0x7F) ? '_' : (char)c;
		}
	}
	out[j] = '\0';
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
time_t tree_parse_time(const char *s, time_t fallback)
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

int tree_new(struct tcia *tcia, const struct tree_opts *opts, struct tree **out)
{
	struct tree *t;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tcia = tcia;
	t->offline = opts->offline;
	t->store = opts->store;
	t->status = opts->status;
	t->status_arg = opts->status_arg;
	t->failures = opts->failures;
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

void tree_set_catalog(struct tree *tree, struct catalog *cat)
{
	tree->cat = cat;
}

void tree_snap_put(struct tree *t, struct tree_snap *s)
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
	tree_slot_clear(tree, &tree->colls);
	for (i = 0; i < tree->nmans; i++) {
		tree_slot_clear(tree, &tree->mans[i].res);
		free(tree->mans[i].name);
		view_manifest_clear(&tree->mans[i].m);
	}
	free(tree->mans);
	tree_flights_free(tree);
	tree_memos_free(tree);
	tree_tables_free(tree);
	free(tree->mountpoint);
	pthread_cond_destroy(&tree->cond);
	pthread_mutex_destroy(&tree->lock);
	free(tree->readme);
	free(tree->cache_dir);
	free(tree);
}

void tree_expire(struct tree *tree)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&tree->lock);
	tree->gen++;
	tree->expired_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_unlock(&tree->lock);
}

/* Returns a referenced snapshot from slot (release with tree_snap_put), loading it when
 * there is none or it has expired. Concurrent callers share one load and its result; a
 * failed load is covered by the old snapshot when there is one (stale-if-error). */
int tree_slot_get(struct tree *t, struct tree_slot *slot, tree_load_fn load, void *arg,
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
			log_adopt_reason(slot->why);
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
			log_adopt_reason(slot->why);
			pthread_mutex_unlock(&t->lock);
			return rc;
		}
		if (slot->snap)
			goto out_ref_any;
	}
	slot->loading = true;
	pthread_mutex_unlock(&t->lock);

	started = tree_now_ms();
	log_clear_reason();
	rc = load(t, arg, &fresh);
	/* Parsing a big answer leaves megabytes of freed heap behind (a 10,000-series
	 * getSeries is ~8 MB of JSON): give them back rather than sit on them. */
	malloc_trim(0);

	pthread_mutex_lock(&t->lock);
	slot->loading = false;
	slot->done++;
	slot->last_rc = rc;
	slot->failed_ms = 0;
	free(slot->why);
	slot->why = rc < 0 ? strdup(log_reason()) : NULL;	/* for the callers who waited */
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
void tree_slot_clear(struct tree *t, struct tree_slot *slot)
{
	struct tree_snap *s = slot->snap;

	slot->snap = NULL;
	free(slot->why);
	slot->why = NULL;
	tree_snap_put(t, s);
}

int tree_cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

int tree_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two different API names can sanitise to the same text ("a/b" and "a_b"): later ones
 * get a "~N" suffix so that every object stays reachable. names are sorted; ptrs point
 * at each element's name field, stride bytes apart. */
int tree_uniquify(char *base, size_t count, size_t stride, size_t name_off)
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

/* ---- the collections --------------------------------------------------------------- */

/* Folder names that a collection or patient must not take from the API. */
const char *const tree_root_reserved[2] = { "README.txt", "manifests" };
const char *const tree_coll_reserved[5] = { "collection.json", "patients.csv",
						  "studies.csv", "series.csv", "CITATION.txt" };

/* A name the API gave that would hide one of ours gets a leading '_', and one ending in
 * ".json" a trailing '_' (such names are answered ENOENT without a request unless they
 * are ours); uniquified with the others after. Returns 0 or -ENOMEM. */
int tree_unreserve(char **name, const char *const *reserved, size_t n)
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

struct tree_colls_build {
	struct tree_colls *colls;
	size_t cap;
};

static int tree_colls_add(void *arg, const struct catalog_coll *r)
{
	struct tree_colls_build *b = arg;
	struct tree_coll *v;

	if (b->colls->count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		v = realloc(b->colls->v, b->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->colls->v = v;
	}
	v = &b->colls->v[b->colls->count];
	memset(v, 0, sizeof(*v));
	v->api = strdup(r->api);
	v->name = strdup(r->name);
	b->colls->count++;
	return v->api && v->name ? 0 : -ENOMEM;
}

/* The collections, from the catalog (loaded into it when stale). */
static int tree_load_colls(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_colls_snap *cs;
	struct tree_colls_build b = { NULL, 0 };
	int rc;

	(void)arg;
	rc = tree_cat_archive(t);
	if (rc < 0)
		return rc;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->tree = t;
	cs->colls.hdr.destroy = tree_colls_destroy;
	cs->colls.hdr.fetched = time(NULL);
	b.colls = &cs->colls;
	rc = catalog_colls(t->cat, tree_colls_add, &b);
	if (rc < 0) {
		tree_colls_destroy_with(t, &cs->colls);
		return rc;
	}
	*out = &cs->colls.hdr;
	return 0;
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

int tree_load_vals(struct tree *t, void *arg, struct tree_snap **out)
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

void tree_node_put(struct tree *t, struct tree_node *n)
{
	if (n->ss)
		store_series_put(t->store, n->ss);
	catalog_patient_clear(&n->cpat);
	catalog_study_clear(&n->cstud);
	catalog_series_clear(&n->cser);
	tree_snap_put(t, n->view);
	free(n->fval);
	free(n->lpat);
	free(n->lstud);
	tree_snap_put(t, n->colls ? &n->colls->hdr : NULL);
	memset(n, 0, sizeof(*n));
}

int tree_get_colls(struct tree *t, struct tree_colls **out)
{
	struct tree_snap *s;
	int rc = tree_slot_get(t, &t->colls, tree_load_colls, NULL, &s);

	*out = rc == 0 ? (struct tree_colls *)s : NULL;
	return rc;
}

/* Loads (or finds) one of a collection's snapshots; *out is the snapshot's outer type. */
int tree_coll_get(struct tree *t, struct tree_coll *c, struct tree_slot *slot,
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
struct tree_snap *tree_peek(struct tree *t, struct tree_slot *slot)
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
static int tree_series_files(struct tree *t, const struct catalog_series *ser, bool fetch,
			     const struct store_caller *who, struct store_series **out)
{
	struct store_expect exp = { ser->images, ser->bytes };
	int rc;

	*out = NULL;
	if (!t->store || !ser->uid)
		return -ENOENT;
	rc = store_peek(t->store, ser->uid, out);
	if (rc == 0 || !fetch)
		return rc;
	return store_get(t->store, ser->uid, &exp, who, out);
}

static int tree_resolve(struct tree *t, const char *path, const struct store_caller *who,
			struct tree_node *n);

/* The folder path of a series whose place the catalog holds fresh (the patient's or the
 * collection's load still trusted, the folders named): no request. Returns 0 with
 * path, or -ENOENT. */
int tree_series_place(struct tree *t, const struct catalog_series *ser, char **coll,
		      char **pat, char **stud)
{
	struct catalog_coll c;
	struct catalog_patient p;
	struct catalog_study st;
	int rc;

	*coll = *pat = *stud = NULL;
	rc = catalog_coll_by_api(t->cat, ser->coll, &c);
	if (rc < 0)
		return rc;
	/* A series is where its study is, and a study under its patient. */
	rc = catalog_study_by_uid(t->cat, ser->coll, ser->study, &st);
	if (rc == 0) {
		rc = catalog_patient_by_id(t->cat, ser->coll, st.pid, &p);
		if (rc == 0) {
			*coll = c.name;
			*pat = p.name;
			*stud = st.name;
			c.name = p.name = st.name = NULL;
			catalog_patient_clear(&p);
		}
		catalog_study_clear(&st);
	}
	catalog_coll_clear(&c);
	return rc;
}

static int tree_uid_path(struct tree *t, const struct catalog_series *ser, char *path,
			 size_t size)
{
	char *coll, *pat, *stud;
	int rc = tree_series_place(t, ser, &coll, &pat, &stud);

	if (rc == 0 && snprintf(path, size, "/%s/%s/%s/%s", coll, pat, stud, ser->name) >=
			       (int)size)
		rc = -ENAMETOOLONG;
	free(coll);
	free(pat);
	free(stud);
	return rc;
}

static int tree_uid_at_hand(struct tree *t, const char *uid, char *path, size_t size)
{
	struct catalog_series ser;
	int rc;

	rc = catalog_series_by_uid(t->cat, uid, &ser);
	if (rc < 0)
		return -ENOENT;
	if (!t->offline && tree_scope_fresh(t, CATALOG_COLLECTION, ser.coll, NULL) != 1 &&
	    tree_scope_fresh(t, CATALOG_PATIENT, ser.coll, ser.pid) != 1)
		rc = -ENOENT;
	if (rc == 0)
		rc = tree_uid_path(t, &ser, path, size) < 0 ? -ENOENT : 0;
	catalog_series_clear(&ser);
	return rc;
}

static int tree_resolve_uid_by_request(struct tree *t, const char *uid, const char *name,
				       const struct store_caller *who, struct tree_node *n);

/* /.tciafs/series/<SeriesInstanceUID>[/name]: the series wherever it is in the tree, for
 * tools holding UIDs (tciafs-prefetch --uids). A collection at hand says where at no
 * cost; otherwise one getSeries by UID does, and the rest is the normal resolution of
 * its folder by bare UIDs. When the caller wants the files, their download starts at
 * once, side by side with those requests, and is checked against the metadata they
 * bring before anything is stored. */
static int tree_resolve_uid(struct tree *t, const char *uid, const char *name,
			    const struct store_caller *who, struct tree_node *n)
{
	char path[PATH_MAX];
	bool early;
	int rc;

	if (tree_is_probe_name(uid) || (name && tree_is_probe_name(name)))
		return -ENOENT;
	if (tree_uid_at_hand(t, uid, path, sizeof(path) - (name ? strlen(name) + 1 : 0)) == 0) {
		if (name) {
			strcat(path, "/");
			strcat(path, name);
		}
		return tree_resolve(t, path, who, n);
	}
	/* A listing of the folder, or a look at a file in it other than series.json. */
	early = t->store && who && (name ? strcmp(name, "series.json") != 0 : who->wants_files);
	if (early && store_prefetch(t->store, uid, who) < 0)
		early = false;
	rc = tree_resolve_uid_by_request(t, uid, name, who, n);
	if (early && rc == 0 && n->cser.uid) {
		struct store_expect exp = { n->cser.images, n->cser.bytes };

		store_expect(t->store, uid, &exp);
	} else if (early) {
		store_abandon(t->store, uid);
	}
	return rc;
}

/* tree_resolve_uid's way when the catalog does not know uid: getSeries by UID says
 * where it is, and that patient is loaded (targeted) to name its folders. */
static int tree_resolve_uid_by_request(struct tree *t, const char *uid, const char *name,
				       const struct store_caller *who, struct tree_node *n)
{
	struct tcia_filter f = { .series_uid = uid };
	struct tcia_series_list l;
	struct catalog_series ser;
	struct tree_colls *cs = NULL;
	char path[PATH_MAX];
	int rc;

	rc = tcia_get_series(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	if (l.count != 1 || !l.v[0].collection || !l.v[0].patient_id || !l.v[0].study_uid)
		goto out_clear;
	rc = tree_get_colls(t, &cs);
	if (rc == 0)
		rc = tree_cat_patient(t, l.v[0].collection, l.v[0].patient_id);
	if (rc < 0)
		goto out_put;
	rc = catalog_series_by_uid(t->cat, uid, &ser);
	if (rc < 0)
		goto out_put;
	rc = tree_uid_path(t, &ser, path, sizeof(path) - (name ? strlen(name) + 1 : 0));
	catalog_series_clear(&ser);
	if (rc == 0 && name) {
		strcat(path, "/");
		strcat(path, name);
	}
	if (rc == 0)
		rc = tree_resolve(t, path, who, n);
	else
		rc = -ENOENT;
out_put:
	tree_snap_put(t, cs ? &cs->hdr : NULL);
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
	rc = tree_cat_find_patient(t, n->coll->api, comps[1], &n->cpat);
	if (rc < 0)
		goto out_put;
	n->kind = TK_PAT;
	if (depth == 2)
		return 0;
	if (depth == 3 && strcmp(comps[2], "patient.json") == 0) {
		n->kind = TK_PAT_JSON;
		return 0;
	}
	rc = tree_cat_patient(t, n->coll->api, n->cpat.pid);
	if (rc == 0)
		rc = catalog_find_study(t->cat, n->coll->api, n->cpat.pid, comps[2], &n->cstud);
	if (rc < 0)
		goto out_put;
	n->kind = TK_STUDY;
	if (depth == 3)
		return 0;
	if (depth == 4 && strcmp(comps[3], "study.json") == 0) {
		n->kind = TK_STUDY_JSON;
		return 0;
	}
	rc = catalog_find_series(t->cat, n->coll->api, n->cstud.uid, comps[3], &n->cser);
	if (rc < 0)
		goto out_put;
	n->kind = TK_SERIES;
	if (depth == 4)
		return 0;
	if (strcmp(comps[4], "series.json") == 0) {
		n->kind = TK_SERIES_JSON;
		return 0;
	}
	rc = tree_series_files(t, &n->cser, true, who, &n->ss);
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
	json_t *obj, *lic = NULL;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->vals, tree_load_vals, &v);
	if (rc == 0)
		rc = tree_licence(t, n->coll, &lic);
	if (rc < 0)
		goto out_put;
	rc = -ENOMEM;
	obj = json_object();
	if (!obj || json_object_set_new(obj, "Collection", json_string(n->coll->api)) ||
	    json_object_set_new(obj, "Modality", tree_values_array(&v->mods)) ||
	    json_object_set_new(obj, "BodyPartExamined", tree_values_array(&v->parts)) ||
	    json_object_set_new(obj, "Manufacturer", tree_values_array(&v->manus)) ||
	    json_object_update(obj, lic))
		goto out_decref;
	rc = tree_render_obj(obj, out, len);
out_decref:
	json_decref(obj);
out_put:
	json_decref(lic);
	tree_snap_put(t, v ? &v->hdr : NULL);
	return rc;
}

static int tree_render_series(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct tcia_series_size size;
	json_t *extra = NULL;
	int rc;

	/* SeriesSize is slow and per series: asked only here, when series.json is looked at. */
	rc = tcia_get_series_size(t->tcia, n->cser.uid, &size);
	if (rc == -ENOENT)
		return tree_render_raw(n->cser.raw, NULL, out, len);
	if (rc < 0)
		return rc;
	extra = json_loads(size.raw, JSON_DECODE_ANY, NULL);
	tcia_series_size_clear(&size);
	if (!extra)
		return -ENOMEM;
	rc = tree_render_raw(n->cser.raw, extra, out, len);
	json_decref(extra);
	return rc;
}

/* patient.json is the patient list's object: a patient known from its studies alone
 * (a targeted look) gets it from the list now. One the list lacks shows its IDs. */
static int tree_render_patient(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct catalog_patient p;
	json_t *obj;
	int rc;

	if (n->cpat.raw)
		return tree_render_raw(n->cpat.raw, NULL, out, len);
	rc = tree_cat_patients(t, n->coll->api);
	if (rc < 0)
		return rc;
	rc = catalog_patient_by_id(t->cat, n->coll->api, n->cpat.pid, &p);
	if (rc == 0 && p.raw) {
		rc = tree_render_raw(p.raw, NULL, out, len);
		catalog_patient_clear(&p);
		return rc;
	}
	catalog_patient_clear(&p);
	obj = json_pack("{s:s, s:s}", "PatientId", n->cpat.pid, "Collection", n->coll->api);
	if (!obj)
		return -ENOMEM;
	rc = tree_render_obj(obj, out, len);
	json_decref(obj);
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
		return tree_render_patient(t, n, out, len);
	case TK_STUDY_JSON:
		return tree_render_raw(n->cstud.raw, NULL, out, len);
	case TK_SERIES_JSON:
		return tree_render_series(t, n, out, len);
	case TK_STATUS:
		return tree_render_status(t, out, len);
	case TK_CITATION:
		return tree_render_citation(t, n, out, len);
	case TK_MISSING:
		return tree_render_missing(n, out, len);
	default:
		return -EISDIR;
	}
}

/* ---- attributes -------------------------------------------------------------------- */

void tree_fill_dir(const struct tree *t, time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

void tree_fill_file(const struct tree *t, size_t size, time_t mtime, struct stat *st)
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

void tree_fill_link(const struct tree *t, size_t size, time_t mtime, struct stat *st)
{
	tree_fill_file(t, size, mtime, st);
	st->st_mode = S_IFLNK | 0777;
}

static time_t tree_node_mtime(const struct tree *t, const struct tree_node *n)
{
	if (n->cser.uid)
		return (time_t)n->cser.mtime;
	if (n->cstud.uid)
		return (time_t)n->cstud.mtime;
	return t->mounted;
}

static bool tree_is_dir(enum tree_kind k)
{
	return k == TK_ROOT || k == TK_COLL || k == TK_PAT || k == TK_STUDY || k == TK_SERIES ||
	       k == TK_TCIAFS_DIR || k == TK_UID_DIR || k == TK_FACET_ROOT || k == TK_FACET_VAL ||
	       k == TK_MANIFESTS || k == TK_MANIFEST;
}

int tree_node_stat(struct tree *t, struct tree_node *n, struct stat *st)
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
		tree_fill_file(t, store_series_size(n->ss, n->file), (time_t)n->cser.mtime, st);
		return 0;
	}
	if (n->kind == TK_TABLE) {
		off_t size;

		rc = tree_table_file(t, n->coll, n->facet, NULL, &size);
		if (rc == 0)
			tree_fill_file(t, (size_t)size, t->mounted, st);
		return rc;
	}
	if (n->kind == TK_LINK) {
		char target[PATH_MAX];

		rc = tree_link_target(n, target, sizeof(target));
		if (rc < 0)
			return rc;
		tree_fill_link(t, (size_t)rc, tree_link_mtime(n), st);
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

/* Is path a by-UID series folder, "/.tciafs/series/<digits and dots>", whose collection
 * is not at hand? Its stat is then answered at once, without a request: the lookup
 * that precedes every listing must not delay the download the listing starts (an
 * unknown UID shows as ENOENT when listed, or when its metadata is asked for). */
static bool tree_uid_dir_unresolved(struct tree *t, const char *path)
{
	static const char prefix[] = "/.tciafs/series/";
	const char *uid = path + sizeof(prefix) - 1;
	char where[PATH_MAX];
	size_t n;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return false;
	n = strspn(uid, "0123456789.");
	if (n == 0 || n > 64 || uid[n] != '\0' || uid[0] == '.')
		return false;
	return tree_uid_at_hand(t, uid, where, sizeof(where)) < 0;
}

static int tree_stat_do(struct tree *tree, const char *path, const struct store_caller *who,
			struct stat *st)
{
	struct tree_node n;
	int rc;

	if (who && tree_uid_dir_unresolved(tree, path)) {
		tree_fill_dir(tree, tree->mounted, st);
		return 0;
	}
	rc = tree_resolve(tree, path, who, &n);

	if (rc < 0)
		return rc;
	rc = tree_node_stat(tree, &n, st);
	tree_node_put(tree, &n);
	return rc;
}

/* ---- listings ---------------------------------------------------------------------- */

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

void tree_emit_pending(struct tree_lister *l)
{
	tree_emit_held(l, NULL);
}

/* Holds an entry for its place; name must outlive the listing. */
void tree_hold(struct tree_lister *l, const char *name, const struct stat *st,
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
int tree_emit(struct tree_lister *l, const char *name, const struct stat *st,
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

/* Listing rows straight from the catalog: one at a time, nothing kept. */
struct tree_emit_arg {
	struct tree *t;
	struct tree_lister *l;
	struct stat st;
};

static int tree_emit_patient(void *arg, const struct catalog_patient *r)
{
	struct tree_emit_arg *a = arg;

	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

static int tree_emit_study(void *arg, const struct catalog_study *r)
{
	struct tree_emit_arg *a = arg;

	tree_fill_dir(a->t, (time_t)r->mtime, &a->st);
	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

static int tree_emit_series(void *arg, const struct catalog_series *r)
{
	struct tree_emit_arg *a = arg;

	tree_fill_dir(a->t, (time_t)r->mtime, &a->st);
	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

static int tree_list_coll(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_emit_arg ea;
	struct tree_snap *v;
	struct stat st;
	bool bulk;
	size_t i;
	int rc;

	rc = tree_cat_patients(t, n->coll->api);
	if (rc < 0)
		return rc;
	/* collection.json costs four requests to size: give its attributes only when they
	 * are at hand, so that `find` walking past it asks for nothing. */
	v = tree_peek(t, &n->coll->vals);
	bulk = tree_scope_fresh(t, CATALOG_COLLECTION, n->coll->api, NULL) == 1;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	if (v && bulk) {
		struct tree_node jn = *n;

		jn.kind = TK_COLL_JSON;
		rc = tree_node_stat(t, &jn, &st);
	}
	tree_snap_put(t, v);
	tree_hold(l, "collection.json", &st, v && bulk && rc == 0);
	/* The tables and the citation cost a rendering to size: left to a stat. */
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	for (i = 0; i < 3; i++)
		tree_hold(l, tree_table_names[i], &st, false);
	tree_hold(l, "CITATION.txt", &st, false);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < 3; i++)
		tree_hold(l, tree_facet_dirs[i], &st, true);
	ea = (struct tree_emit_arg){ t, l, st };
	rc = catalog_patients(t->cat, n->coll->api, tree_emit_patient, &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
}

/* A patient's folder: patient.json, then its studies. patient.json is sized only when
 * its object is at hand (a patient known from a targeted look waits for the list). */
static int tree_list_pat(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_node jn = *n;
	struct tree_emit_arg ea = { t, l, { 0 } };
	struct stat st;
	int rc;

	rc = tree_cat_patient(t, n->coll->api, n->cpat.pid);
	if (rc < 0)
		return rc;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	jn.kind = TK_PAT_JSON;
	if (n->cpat.raw && tree_node_stat(t, &jn, &st) < 0)
		return -EIO;
	tree_hold(l, "patient.json", &st, n->cpat.raw != NULL);
	rc = catalog_studies(t->cat, n->coll->api, n->cpat.pid, tree_emit_study, &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
}

static int tree_list_study(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_node jn = *n;
	struct tree_emit_arg ea = { t, l, { 0 } };
	struct stat st;
	int rc;

	jn.kind = TK_STUDY_JSON;
	rc = tree_node_stat(t, &jn, &st);
	if (rc < 0)
		return rc;
	tree_hold(l, "study.json", &st, true);
	rc = catalog_series(t->cat, n->coll->api, n->cstud.uid, tree_emit_series, &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
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

	rc = tree_series_files(t, &n->cser, true, who, &ss);
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
	tree_fill_file(t, 0, (time_t)n->cser.mtime, &st);
	tree_hold(l, "series.json", &st, false);
	for (i = 0; i < count; i++) {
		uint64_t size = store_series_size(ss, (size_t)store_series_find(ss, names[i]));

		tree_fill_file(t, size, (time_t)n->cser.mtime, &st);
		if (tree_emit(l, names[i], &st, true))
			break;
	}
	tree_emit_pending(l);
	free(names);
	store_series_put(t->store, ss);
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

static int tree_list_do(struct tree *tree, const char *path, const struct store_caller *who,
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

static int tree_open_do(struct tree *tree, const char *path, int flags,
			const struct store_caller *who, struct tree_file **out)
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
	} else if (n.kind == TK_TABLE) {
		off_t size;

		/* Rendered into a file under the cache folder: read from there. */
		rc = tree_table_file(tree, n.coll, n.facet, &f->fd, &size);
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
	} else if (f->fd >= 0) {
		close(f->fd);	/* a rendered table's */
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
	const char *ser_uid = n->cser.uid;
	int64_t bytes = n->cser.bytes, images = n->cser.images;

	if (n->cpat.pid)
		out[k++] = (struct tree_xattr){ "user.tcia.patient_id", n->cpat.pid, "" };
	if (n->cstud.uid)
		out[k++] = (struct tree_xattr){ "user.tcia.study_uid", n->cstud.uid, "" };
	if (ser_uid)
		out[k++] = (struct tree_xattr){ "user.tcia.series_uid", ser_uid, "" };
	/* What the metadata says a series holds, so tools can size work before fetching. */
	if (ser_uid && bytes >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.file_size", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)bytes);
		k++;
	}
	if (ser_uid && images >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.image_count", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)images);
		k++;
	}
	for (size_t i = 0; i < k; i++)
		if (!out[i].value)
			out[i].value = out[i].num;
	return k;
}

/* ---- failures, where users can read them ---------------------------------------- */

/* Why the last operation on a folder failed: "<time> <error>: <reason>". */
#define TREE_XATTR_ERROR "user.tciafs.error"

/* Errors that are answers rather than failures: nothing to explain. */
static bool tree_is_failure(int rc)
{
	switch (-rc) {
	case 0:
	case ENOENT:
	case ENOTDIR:
	case EISDIR:
	case EROFS:
	case EINTR:
	case ENODATA:
	case ERANGE:
	case ENAMETOOLONG:
		return false;
	default:
		return true;
	}
}

/* Records a failed operation on path with this thread's reason (the log line it wrote,
 * or the one it adopted from the download or load it waited for). */
static void tree_note(struct tree *t, const char *path, int rc)
{
	const char *why = log_reason(), *p;
	char uid[72] = "";
	size_t n;

	if (!t->failures || !tree_is_failure(rc))
		return;
	/* The store's lines name the series first ("series <UID>: …"), a download's the
	 * request ("…?SeriesInstanceUID=<UID>&…"), so that the failure can be found again
	 * from any path that leads to the series. */
	if (strncmp(why, "series ", 7) == 0)
		p = why + 7;
	else if ((p = strstr(why, "SeriesInstanceUID=")))
		p += strlen("SeriesInstanceUID=");
	if (p) {
		n = strspn(p, "0123456789.");
		if (n > 0 && n < sizeof(uid) && (p[n] == ':' || p[n] == '&' || p[n] == ' ' ||
						 p[n] == '\0')) {
			memcpy(uid, p, n);
			uid[n] = '\0';
		}
	}
	failures_add(t->failures, path, uid[0] ? uid : NULL, -rc, why);
}

/* user.tciafs.error of the node at path: its newest failure, or one of its series. */
static ssize_t tree_failure(struct tree *t, const char *path, const struct tree_node *n,
			    char *buf, size_t size)
{
	if (!t->failures)
		return -ENODATA;
	return failures_find(t->failures, path, n->cser.uid, buf, size);
}

int tree_stat(struct tree *tree, const char *path, const struct store_caller *who,
	      struct stat *st)
{
	int rc;

	log_clear_reason();
	rc = tree_stat_do(tree, path, who, st);
	tree_note(tree, path, rc);
	return rc;
}

/* A copy of who that says the caller wants the files it names (a listing, an open). */
static const struct store_caller *tree_wants_files(const struct store_caller *who,
						   struct store_caller *copy)
{
	if (!who)
		return NULL;
	*copy = *who;
	copy->wants_files = true;
	return copy;
}

int tree_list(struct tree *tree, const char *path, const struct store_caller *who,
	      tree_fill_fn fill, void *ctx)
{
	struct store_caller w;
	int rc;

	log_clear_reason();
	rc = tree_list_do(tree, path, tree_wants_files(who, &w), fill, ctx);
	tree_note(tree, path, rc);
	return rc;
}

int tree_opendir(struct tree *tree, const char *path, const struct store_caller *who)
{
	struct store_caller w;
	struct tree_node n;
	int rc;

	/* Only a by-UID folder, whose stat said nothing yet, has anything to check: an
	 * unknown UID must fail here, as readdir's ENOENT would look like an empty folder
	 * (glibc hides it). Its download starts now, beside the lookup. */
	if (!tree_uid_dir_unresolved(tree, path))
		return 0;
	log_clear_reason();
	rc = tree_resolve(tree, path, tree_wants_files(who, &w), &n);
	if (rc == 0)
		tree_node_put(tree, &n);
	tree_note(tree, path, rc);
	return rc;
}

int tree_listing_stamp(struct tree *tree, const char *path, uint64_t *stamp)
{
	struct tree_node n;
	int64_t when = 0, bulk;
	unsigned gen;
	int rc;

	/* meta_ttl=0: every look asks again, so nothing may be kept. */
	if (tree_uid_dir_unresolved(tree, path) || (tree->meta_ttl == 0 && !tree->offline))
		return -EINVAL;
	log_clear_reason();
	rc = tree_resolve(tree, path, NULL, &n);
	if (rc < 0)
		return rc;
	switch (n.kind) {
	case TK_ROOT: {
		struct tree_colls *cs;

		rc = tree_get_colls(tree, &cs);	/* a stale list is loaded again here */
		if (rc == 0)
			tree_snap_put(tree, &cs->hdr);
		when = tree_scope_when(tree, CATALOG_ARCHIVE, NULL, NULL);
		break;
	}
	case TK_COLL:
		rc = tree_cat_patients(tree, n.coll->api);
		when = tree_scope_when(tree, CATALOG_PATIENTS, n.coll->api, NULL);
		break;
	case TK_PAT:
	case TK_STUDY:
		/* Looking is what refreshes a stale load: done here, so that a new load
		 * gives a new stamp. */
		rc = tree_cat_patient(tree, n.coll->api, n.cpat.pid);
		bulk = tree_scope_fresh(tree, CATALOG_COLLECTION, n.coll->api, NULL) == 1 ?
			tree_scope_when(tree, CATALOG_COLLECTION, n.coll->api, NULL) : 0;
		when = bulk ? bulk : tree_scope_when(tree, CATALOG_PATIENT, n.coll->api,
						     n.cpat.pid);
		break;
	case TK_FACET_VAL:
		when = tree_scope_when(tree, CATALOG_COLLECTION, n.coll->api, NULL);
		break;
	default:
		rc = -EINVAL;	/* listed afresh each time */
		break;
	}
	tree_node_put(tree, &n);
	if (rc < 0)
		tree_note(tree, path, rc);
	if (rc == 0 && when == 0)
		rc = -EINVAL;
	pthread_mutex_lock(&tree->lock);
	gen = tree->gen;
	pthread_mutex_unlock(&tree->lock);
	*stamp = (uint64_t)when << 16 ^ (uint64_t)(gen & 0xffff);
	return rc;
}

int tree_open(struct tree *tree, const char *path, int flags, const struct store_caller *who,
	      struct tree_file **out)
{
	struct store_caller w;
	int rc;

	log_clear_reason();
	rc = tree_open_do(tree, path, flags, tree_wants_files(who, &w), out);
	tree_note(tree, path, rc);
	return rc;
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
	if (strncmp(name, "user.tcia.", 10) != 0 && strcmp(name, TREE_XATTR_ERROR) != 0)
		return -ENODATA;
	rc = tree_resolve(tree, path, NULL, &n);
	if (rc < 0)
		return rc;
	if (strcmp(name, TREE_XATTR_ERROR) == 0) {
		rc = tree_failure(tree, path, &n, buf, size);
		tree_node_put(tree, &n);
		return rc;
	}
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
	bool has_error;
	ssize_t rc;

	rc = tree_resolve(tree, path, NULL, &n);
	if (rc < 0)
		return rc;
	k = tree_xattrs(&n, x);
	for (i = 0; i < k; i++)
		need += strlen(x[i].name) + 1;
	has_error = tree_failure(tree, path, &n, NULL, 0) > 0;
	if (has_error)
		need += sizeof(TREE_XATTR_ERROR);
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
		if (has_error)
			memcpy(p, TREE_XATTR_ERROR, sizeof(TREE_XATTR_ERROR));
	}
	tree_node_put(tree, &n);
	return rc;
}
