/* SPDX-License-Identifier: MIT
 * tree_int.h — inside the tree module, shared by its two files: tree.c (the archive's
 * own tree: snapshots, names, resolution, listings, files, xattrs) and tree_view.c (the
 * views: facet and manifest folders of links, tables, citations). Not for other modules:
 * they see include/tree.h only.
 */
#ifndef TCIAFS_TREE_INT_H
#define TCIAFS_TREE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "catalog.h"
#include "store.h"
#include "source.h"
#include "record.h"
#include "tree.h"
#include "view.h"

#define TREE_NAME_MAX NAMES_MAX
#define TREE_DEPTH_MAX 6

/* A slow failed load (a silent server: it took a second or more) answers the callers
 * right behind it for this long instead of each starting another: sixteen callers
 * would otherwise queue up one timeout after another. Quick failures are retried. */
#define TREE_FAIL_MEMORY_MS 3000
#define TREE_SLOW_FAILURE_MS 1000

/* ---- snapshots --------------------------------------------------------------------- */

struct tree_snap {
	int refs; /* protected by tree->lock */
	time_t fetched;
	unsigned gen; /* tree->gen when loaded; an older one is expired */
	void (*destroy)(struct tree_snap *snap);
};

/* Where a snapshot lives, and the single load in progress for it. */
struct tree_slot {
	struct tree_snap *snap; /* protected by tree->lock */
	bool loading;           /* protected by tree->lock */
	unsigned done;          /* loads finished; protected by tree->lock */
	int last_rc;            /* protected by tree->lock */
	int64_t failed_ms;      /* monotonic ms of the last slow failure; protected by tree->lock */
	char *why;              /* the last failure's reason, or NULL; protected by tree->lock */
};

struct tree_coll {
	char *name;              /* sanitised, unique among collections */
	char *api;               /* as the API sent it */
	struct tree_slot vals;   /* the value lists, for collection.json */
	struct tree_slot facets; /* the facets' values, from the catalog */
};

struct tree_colls {
	struct tree_snap hdr;
	size_t count;
	struct tree_coll *v; /* sorted by name */
};

struct tree_vals {
	struct tree_snap hdr;
	struct record_values mods, parts, manus;
};

/* A manifest given at mount (-o manifest=FILE), shown as /manifests/<name>/. */
struct tree_man {
	char *name; /* sanitised, unique among manifests */
	struct view_manifest m;
	struct tree_slot res;
};

/* Targeted loads of one collection's patients, counted to see a walk coming. */
#define TREE_WALK_PATIENTS 2
struct tree_walk {
	char *coll;
	int64_t start_ms;
	unsigned n;
	char *pids[2]; /* the patients counted in n, so none counts twice */
	struct tree_walk *next;
};

struct tree_flight;
struct tree_memo;
struct tree_lic;

/* A series folder recently opened into, and the series it names while its load holds:
 * the next open of one of its files skips resolving the path in the catalog. */
#define TREE_PLACES 64
struct tree_place {
	char *dir; /* the folder's path; NULL: a free entry */
	char *uid;
	int64_t until_ms; /* wall clock: the load it came from is stale then */
	unsigned gen;
};

struct tree {
	struct source *src;  /* borrowed */
	struct catalog *cat; /* borrowed */
	bool offline;
	int64_t expired_ms;          /* loads before this are stale (SIGHUP); protected by lock */
	struct tree_flight *flights; /* loads in progress; protected by lock */
	struct tree_table *tables;   /* rendered tables; protected by lock */
	struct tree_walk *walks;     /* protected by lock */
	struct tree_memo *memos;     /* protected by lock */
	unsigned long memo_epoch;    /* the catalog's epoch they are of; under lock */
	struct tree_lic *lics;       /* licences of bulk loads; protected by lock */
	struct tree_place places[TREE_PLACES]; /* protected by lock */
	unsigned place_next;                   /* the entry to reuse next; protected by lock */
	unsigned long placed_opens;            /* opens served by places (atomic) */
	struct store *store;                   /* borrowed, may be NULL */
	char *(*status)(void *arg);
	void *status_arg;
	struct failures *failures; /* borrowed, may be NULL */
	char *cache_dir;
	long meta_ttl;
	bool naming_uid;
	time_t mounted;
	uid_t uid;
	gid_t gid;
	char *readme;
	size_t readme_len;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a load finished */
	unsigned gen;        /* bumped by tree_expire; protected by lock */
	struct tree_slot colls;
	char *mountpoint; /* for the Path column of the tables; "" if unknown */
	size_t nmans;
	struct tree_man *mans; /* sorted by name */
};

struct tree_file {
	char *data; /* generated content, or NULL */
	size_t len;
	int fd; /* a stored file, or -1 */
	struct store *store;
	struct store_series *ss; /* the reference that keeps fd's series in use */
	struct store_part *part; /* a big file read by range: fd is its sparse file */
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
	TK_FACET_ROOT, /* /<Collection>/.by-modality */
	TK_FACET_VAL,  /* /<Collection>/.by-modality/CT */
	TK_LINK,       /* a symbolic link to a series folder */
	TK_TABLE,      /* /<Collection>/{patients,studies,series}.csv */
	TK_CITATION,   /* /<Collection>/CITATION.txt */
	TK_MANIFESTS,  /* /manifests */
	TK_MANIFEST,   /* /manifests/<name> */
	TK_MISSING,    /* /manifests/<name>/missing.txt */
};

struct tree_node {
	enum tree_kind kind;
	struct tree_colls *colls;
	struct tree_coll *coll;
	struct catalog_patient cpat; /* TK_PAT and below: owned copies */
	struct catalog_study cstud;
	struct catalog_series cser;     /* also a facet's TK_LINK */
	struct store_series *ss;        /* TK_SERIES_FILE: the stored series, referenced */
	size_t file;                    /* and the file's index in it */
	struct tree_snap *view;         /* a referenced tree_fvals or tree_mres */
	unsigned facet;                 /* facet or table: which one */
	char *fval;                     /* TK_FACET_VAL and its links: the value; NULL unknown */
	bool fempty;                    /* TK_FACET_VAL only the value list names */
	char *lpat, *lstud;             /* a facet's TK_LINK: its patient and study folders */
	const struct tree_mlink *mlink; /* TK_LINK in a manifest */
	struct tree_man *man;
};

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
	size_t npend, next; /* held, and already emitted of those */
	bool stopped;
};

typedef int (*tree_load_fn)(struct tree *t, void *arg, struct tree_snap **out);

/* ---- tree_load.c ----------------------------------------------------------------- */
/* Whether coll's patient list and bulk load are both known fresh without a query (what
 * tree_scope_fresh found, remembered): then every name resolves from the catalog as is. */
bool tree_coll_loaded_fresh(struct tree *t, const char *coll);

/* Each makes sure the catalog holds a fresh copy of its scope, loading it if not:
 * 0 or -errno. */
int tree_cat_archive(struct tree *t);
int tree_cat_patients(struct tree *t, const char *coll);
int tree_cat_collection(struct tree *t, const char *coll);
/* One patient's studies and series: targeted, or the collection in bulk when a walk
 * is seen. */
int tree_cat_patient(struct tree *t, const char *coll, const char *pid);
/* A patient by folder name, loading what that takes: 0 with *out, -ENOENT, -errno. */
int tree_cat_find_patient(struct tree *t, const char *coll, const char *name,
			  struct catalog_patient *out);
void tree_flights_free(struct tree *t);
/* 1 when the scope was loaded and is still trusted, 0 loaded but stale, -1 never. */
int tree_scope_fresh(struct tree *t, enum catalog_scope s, const char *coll, const char *pid);
/* When the scope was last loaded (ms), 0 if never. */
int64_t tree_scope_when(struct tree *t, enum catalog_scope s, const char *coll, const char *pid);
void tree_memos_free(struct tree *t);
void tree_lics_free(struct tree *t);
void tree_places_free(struct tree *t);
/* Snapshots of lists: a slot holds the current one; a stale or empty slot is loaded
 * (one load at a time per slot, never under the tree's lock). */
void tree_snap_put(struct tree *t, struct tree_snap *s);
int tree_slot_get(struct tree *t, struct tree_slot *slot, tree_load_fn load, void *arg,
		  struct tree_snap **out);
void tree_slot_clear(struct tree *t, struct tree_slot *slot);
int tree_load_colls(struct tree *t, void *arg, struct tree_snap **out);
int tree_load_vals(struct tree *t, void *arg, struct tree_snap **out);
int tree_cmp_coll(const void *a, const void *b);

/* ---- tree_files.c ---------------------------------------------------------------- */

int tree_make_readme(struct tree *t);
/* The text of a generated file (README.txt, a .json file); *out is the caller's. */
int tree_render(struct tree *t, struct tree_node *n, char **out, size_t *len);
int tree_open_do(struct tree *tree, const char *path, int flags, const struct caller *who,
		 struct tree_file **out);

/* ---- tree.c ---------------------------------------------------------------------- */

/* files: the caller will need the series' files the path names (a listing, an open),
 * so a by-UID download may start before its metadata is at hand (store_prefetch). */
int tree_resolve(struct tree *t, const char *path, const struct caller *who, bool files,
		 struct tree_node *n);
bool tree_is_dir(enum tree_kind k);
void tree_node_put(struct tree *t, struct tree_node *n);
int tree_get_colls(struct tree *t, struct tree_colls **out);

/* Where a series sits: its collection's, patient's and study's folder names (new
 * strings), or -ENOENT when the catalog cannot place it (a series whose study or
 * patient is not listed). */
int tree_series_place(struct tree *t, const struct catalog_series *ser, char **coll, char **pat,
		      char **stud);
int tree_coll_get(struct tree *t, struct tree_coll *c, struct tree_slot *slot, tree_load_fn load,
		  void *out);
struct tree_snap *tree_peek(struct tree *t, struct tree_slot *slot);
void tree_fill_dir(const struct tree *t, time_t mtime, struct stat *st);
void tree_fill_file(const struct tree *t, size_t size, time_t mtime, struct stat *st);
void tree_fill_link(const struct tree *t, size_t size, time_t mtime, struct stat *st);
int tree_node_stat(struct tree *t, struct tree_node *n, struct stat *st);
int tree_emit(struct tree_lister *l, const char *name, const struct stat *st, bool complete);
void tree_hold(struct tree_lister *l, const char *name, const struct stat *st, bool complete);
void tree_emit_pending(struct tree_lister *l);

/* ---- tree_view.c ----------------------------------------------------------------- */

int tree_facet_index(const char *name);
int tree_resolve_facet(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth, unsigned k,
		       struct tree_node *n);
int tree_resolve_man(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		     struct tree_node *n);
/* A table (0 patients, 1 studies, 2 series) rendered from the catalog into a file: its
 * size, and a new descriptor of it when fd is not NULL. 0 or -errno. */
int tree_table_file(struct tree *t, struct tree_coll *c, unsigned which, int *fd, off_t *size);
void tree_tables_free(struct tree *t);
/* LicenseName, LicenseURI and CollectionURI over a collection's series (new object). */
int tree_licence(struct tree *t, struct tree_coll *c, json_t **out);
int tree_render_citation(struct tree *t, struct tree_node *n, char **out, size_t *len);
int tree_render_missing(struct tree_node *n, char **out, size_t *len);
int tree_link_target(const struct tree_node *n, char *buf, size_t size);
int tree_list_facet_root(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_list_facet_val(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_list_mans(struct tree *t, struct tree_lister *l);
int tree_list_man(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_take_manifests(struct tree *t, struct view_manifest *m, size_t n);
time_t tree_link_mtime(const struct tree_node *n);

#endif
