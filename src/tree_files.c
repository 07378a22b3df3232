/* SPDX-License-Identifier: MIT
 * tree_files.c — the files of the namespace: README.txt and the .json files, rendered
 * from the catalog at each open, and opened files (generated, or stored in the series
 * store under the shared lock that keeps them from eviction).
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "failures.h"
#include "log.h"
#include "tree_int.h"
#include "utf8.h"

/* An open file: rendered text in memory, or a descriptor of a stored or rendered file. */
struct tree_file {
	char *data; /* generated content, or NULL */
	size_t len;
	int fd; /* a stored file, or -1 */
	struct store *store;
	struct store_series *ss; /* the reference that keeps fd's series in use */
	struct store_part *part; /* a big file read by range: fd is its sparse file */
	bool live;
};

int tree_make_readme(struct tree *t)
{
	static const char fmt[] =
		"tciafs: The Cancer Imaging Archive (TCIA) as a read-only filesystem.\n"
		"\n"
		"API:    %s (%s)\n"
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
	const char *api = source_url(t->src), *src = source_name(t->src);
	int n = snprintf(NULL, 0, fmt, api, src, t->cache_dir);

	if (n < 0)
		return -EINVAL;
	t->readme = malloc((size_t)n + 1);
	if (!t->readme)
		return -ENOMEM;
	snprintf(t->readme, (size_t)n + 1, fmt, api, src, t->cache_dir);
	t->readme_len = (size_t)n;
	return 0;
}

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
		return -ENOMEM; /* raw was produced by json_dumps: only memory can fail */
	if (extra && json_is_object(obj))
		json_object_update(obj, extra);
	rc = tree_render_obj(obj, out, len);
	json_decref(obj);
	return rc;
}

static json_t *tree_values_array(const struct record_values *v)
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
	loader_snap_put(t->ld, v ? &v->hdr : NULL);
	return rc;
}

static int tree_render_series(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	json_t *extra = NULL;
	char *raw;
	int rc;

	/* SeriesSize is slow and per series: asked only here, when series.json is looked at. */
	rc = source_series_extra(t->src, n->cser.uid, &raw);
	if (rc == -ENOENT)
		return tree_render_raw(n->cser.raw, NULL, out, len);
	if (rc < 0)
		return rc;
	extra = json_loads(raw, JSON_DECODE_ANY, NULL);
	free(raw);
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
	rc = loader_patients(t->ld, n->coll->api);
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

/* A study found by a walk's lookup has no object as sent with it: read by its UID. */
static int tree_render_study(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct catalog_study s;
	int rc;

	if (n->cstud.raw)
		return tree_render_raw(n->cstud.raw, NULL, out, len);
	rc = catalog_study_by_uid(t->cat, n->coll->api, n->cstud.uid, &s);
	if (rc == 0)
		rc = tree_render_raw(s.raw, NULL, out, len);
	catalog_study_clear(&s);
	return rc;
}

/* Renders the generated file the node is. Returns 0 with a new buffer, or -errno. */
int tree_render(struct tree *t, struct tree_node *n, char **out, size_t *len)
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
		return tree_render_study(t, n, out, len);
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

/* How long an open waits for another process that holds a series exclusively (it is
 * evicting it, or fetching it anew), and how often it looks. */
#define TREE_BUSY_WAIT_MS 5000
#define TREE_BUSY_STEP_MS 20
/* Opens a stored file under the shared lock that keeps its series from eviction. When
 * someone holds the series exclusively, waits a bounded while (interruptibly) and asks
 * for the path to be resolved again (TREE_AGAIN): if the series went away meanwhile,
 * that fetches it anew. */
static int tree_open_stored(struct tree *t, const struct caller *who, struct tree_node *n,
			    struct tree_open_try *try, int *fd, struct store_part **part)
{
	struct timespec step = { 0, TREE_BUSY_STEP_MS * 1000000L };
	int rc;

	rc = store_open(t->store, n->ss, n->file, who, fd, part);
	if (rc == -ENOENT && try->gone++ == 0)
		; /* evicted between the lookup and now: look again, once */
	else if (rc != -EBUSY || try->waited >= TREE_BUSY_WAIT_MS)
		return rc;
	if (caller_interrupted(who))
		return -EINTR;
	if (rc == -EBUSY) {
		nanosleep(&step, NULL);
		try->waited += TREE_BUSY_STEP_MS;
	}
	return TREE_AGAIN;
}

/* ---- places: opens of a series' files without the catalog ----------------------------
 *
 * Reading a stored series opens each of its files: resolving each path in the catalog
 * (collection, patient, study, series, and whether their load holds) was the larger
 * part of the daemon's work per open, which every reader waits for. The folder's series
 * is kept from the first open until its load would be stale (meta_ttl, SIGHUP), so an
 * open of a stored file then costs the store's lookup only; anything else (a file not
 * stored, a series evicted) resolves the path as before. */

void tree_places_free(struct tree *t)
{
	size_t i;

	for (i = 0; i < TREE_PLACES; i++) {
		free(t->places[i].dir);
		free(t->places[i].uid);
	}
	memset(t->places, 0, sizeof(t->places));
}

/* The folder part of path (up to its last '/'), or 0 when there is none. */
static size_t tree_place_dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash != path ? (size_t)(slash - path) : 0;
}

/* Under t->lock: the live entry of the folder of path, or NULL. */
static struct tree_place *tree_place_find(struct tree *t, const char *path, size_t len)
{
	int64_t now = clock_wall_ms();
	size_t i;

	for (i = 0; i < TREE_PLACES; i++) {
		struct tree_place *p = &t->places[i];

		if (p->dir && strncmp(p->dir, path, len) == 0 && p->dir[len] == '\0' &&
		    p->gen == loader_generation(t->ld) && now < p->until_ms)
			return p;
	}
	return NULL;
}

/* After path resolved (the slow way) to a stored file in n: keeps its folder's series
 * until the load that named it is stale. Only the collection's own folders: a by-UID
 * folder or a manifest's link resolves by other loads. */
void tree_place_keep(struct tree *t, const char *path, const struct tree_node *n)
{
	size_t len = tree_place_dir_len(path);
	int64_t when, until, colls_until;
	struct tree_place *p;
	char *dir, *uid;
	unsigned gen;

	if (!len || !n->coll || !n->colls || !n->cpat.pid || !n->cser.uid ||
	    strncmp(path, "/.tciafs/", 9) == 0 || strncmp(path, "/manifests/", 11) == 0)
		return;
	/* The generation first: a SIGHUP after it leaves the entry dead, never a stamp from
	 * before the SIGHUP kept under the new generation. */
	gen = loader_generation(t->ld);
	if (loader_fresh(t->ld, CATALOG_COLLECTION, n->coll->api, NULL) == 1)
		when = loader_when(t->ld, CATALOG_COLLECTION, n->coll->api, NULL);
	else
		when = loader_when(t->ld, CATALOG_PATIENT, n->coll->api, n->cpat.pid);
	if (when == 0)
		return;
	/* The list of collections is looked at on every resolve too: its age counts. */
	until = when + (int64_t)t->meta_ttl * 1000;
	colls_until = (int64_t)n->colls->hdr.fetched * 1000 + (int64_t)t->meta_ttl * 1000;
	if (colls_until < until)
		until = colls_until;
	if (t->offline)
		until = INT64_MAX;
	dir = strndup(path, len);
	uid = strdup(n->cser.uid);
	if (!dir || !uid)
		goto out_free;
	pthread_mutex_lock(&t->lock);
	p = tree_place_find(t, path, len);
	if (!p) {
		p = &t->places[t->place_next];
		t->place_next = (t->place_next + 1) % TREE_PLACES;
	}
	free(p->dir);
	free(p->uid);
	p->dir = dir;
	p->uid = uid;
	p->until_ms = until;
	p->gen = gen;
	pthread_mutex_unlock(&t->lock);
	return;
out_free:
	free(dir);
	free(uid);
}

/* A stored file of a kept folder into n (kind TK_SERIES_FILE, the series referenced):
 * 0, or 1 when it is not at hand that way (resolve the path). */
int tree_place_open(struct tree *t, const char *path, struct tree_node *n)
{
	size_t len = tree_place_dir_len(path);
	const char *name = path + len + 1;
	struct store_series *ss;
	struct tree_place *p;
	char *uid = NULL;
	long found;

	if (!len || !t->store || names_is_probe(name) || strcmp(name, "series.json") == 0)
		return 1;
	pthread_mutex_lock(&t->lock);
	p = tree_place_find(t, path, len);
	if (p)
		uid = strdup(p->uid);
	pthread_mutex_unlock(&t->lock);
	if (!uid)
		return 1;
	if (store_peek(t->store, uid, &ss) < 0) {
		free(uid);
		return 1;
	}
	free(uid);
	found = store_series_find(ss, name);
	if (found < 0) {
		store_series_put(t->store, ss);
		return 1;
	}
	memset(n, 0, sizeof(*n));
	n->kind = TK_SERIES_FILE;
	n->ss = ss;
	n->file = (size_t)found;
	__atomic_add_fetch(&t->placed_opens, 1, __ATOMIC_RELAXED);
	return 0;
}

unsigned long tree_placed_opens(struct tree *t)
{
	return __atomic_load_n(&t->placed_opens, __ATOMIC_RELAXED);
}

int tree_file_open(struct tree *tree, struct tree_node *n, const struct caller *who,
		   struct tree_open_try *try, struct tree_file **out)
{
	struct tree_file *f;
	int rc;

	*out = NULL;
	if (tree_is_dir(n->kind))
		return -EISDIR;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	if (n->kind == TK_SERIES_FILE) {
		rc = tree_open_stored(tree, who, n, try, &f->fd, &f->part);
		if (rc == 0) {
			/* The file keeps the node's reference on its series. */
			f->store = tree->store;
			f->ss = n->ss;
			n->ss = NULL;
		}
	} else if (n->kind == TK_TABLE) {
		off_t size;

		/* Rendered into a file under the cache folder: read from there. */
		rc = tree_table_file(tree, n->coll, n->facet, &f->fd, &size);
	} else {
		f->live = n->kind == TK_STATUS;
		rc = tree_render(tree, n, &f->data, &f->len);
	}
	if (rc != 0) {
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int tree_file_fd(const struct tree_file *f)
{
	return f->fd;
}

bool tree_file_live(const struct tree_file *f)
{
	return f->live;
}

bool tree_file_stored(const struct tree_file *f)
{
	return f->ss != NULL;
}

bool tree_file_partial(const struct tree_file *f)
{
	return f->part != NULL;
}

int tree_need(struct tree_file *f, off_t off, size_t size, const struct caller *who)
{
	if (off < 0)
		return -EINVAL;
	return f->part ? store_part_need(f->store, f->part, (uint64_t)off, size, who) : 0;
}

ssize_t tree_read(struct tree_file *f, char *buf, size_t size, off_t off)
{
	ssize_t got;
	size_t n;

	if (off < 0)
		return -EINVAL;
	if (f->fd >= 0) {
		int rc = tree_need(f, off, size, NULL);

		if (rc < 0)
			return rc;
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
		store_close(f->store, f->ss, f->fd, f->part);
		store_series_put(f->store, f->ss);
	} else if (f->fd >= 0) {
		close(f->fd); /* a rendered table's */
	}
	free(f->data);
	free(f);
}
