/* SPDX-License-Identifier: MIT
 * tree_int.h — inside the tree module: the dispatcher (tree.c), its subtrees
 * (tree_tciafs.c, tree_facets.c, tree_mans.c, tree_citation.c, tree_files.c,
 * tree_table.c, tree_xattr.c) and the floor below them (tree_node.c, tree_colls.c).
 * Sections follow that order; a file calls only the sections below its own. Not for
 * other modules: they see include/tree.h only.
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
#include "loader.h"
#include "store.h"
#include "source.h"
#include "record.h"
#include "tree.h"
#include "view.h"

#define TREE_NAME_MAX NAMES_MAX
#define TREE_DEPTH_MAX 6

struct tree_coll {
	char *name;                /* sanitised, unique among collections */
	char *api;                 /* as the API sent it */
	struct loader_slot vals;   /* the value lists, for collection.json */
	struct loader_slot facets; /* the facets' values, from the catalog */
};

struct tree_colls {
	struct loader_snap hdr;
	size_t count;
	struct tree_coll *v; /* sorted by name */
};

struct tree_vals {
	struct loader_snap hdr;
	struct record_values mods, parts, manus;
};

/* A link of a manifest's folder. */
struct tree_mlink {
	char *name;
	char *target; /* relative to /manifests/<name>/ */
	time_t mtime;
};

/* A manifest given at mount (-o manifest=FILE), shown as /manifests/<name>/. */
struct tree_man {
	char *name; /* sanitised, unique among manifests */
	struct view_manifest m;
	struct loader_slot res;
};

struct tree_lic;
struct tree_table;

/* A series folder recently opened into, and the series it names while its load holds:
 * the next open of one of its files skips resolving the path in the catalog. */
#define TREE_PLACES 64
struct tree_place {
	char *dir; /* the folder's path; NULL: a free entry */
	char *uid;
	int64_t until_ms; /* wall clock: the load it came from is stale then */
	unsigned gen;
};

/* The tree's lock guards its own caches only (tables, licences, places): loads, their
 * freshness, snapshot slots and the generation are the loader's, under its lock. The
 * tree reads the generation (atomic) under its lock and holds it across no other loader
 * call; the loader never calls the tree. */
struct tree {
	struct source *src;  /* borrowed */
	struct catalog *cat; /* borrowed */
	struct loader *ld;   /* owned */
	bool offline;
	struct tree_table *tables;             /* rendered tables; protected by lock */
	struct tree_lic *lics;                 /* licences of bulk loads; protected by lock */
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
	struct loader_slot colls;
	char *mountpoint; /* for the Path column of the tables; "" if unknown */
	size_t nmans;
	struct tree_man *mans; /* sorted by name */
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
	struct loader_snap *view;       /* a referenced tree_fvals or tree_mres */
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

typedef int (*tree_load_fn)(struct tree *t, void *arg, struct loader_snap **out);

/* ---- tree_archive.c --------------------------------------------------------------- */

/* The patient level and below of comps (depth >= 2), with n already at the collection
 * (n left for the caller to put on failure). */
int tree_resolve_archive(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			 const struct caller *who, struct tree_node *n);
int tree_list_root(struct tree *t, struct tree_lister *l);
int tree_list_coll(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_list_pat(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_list_study(struct tree *t, struct tree_node *n, struct tree_lister *l);
/* Opening a series folder is what fetches the series. */
int tree_list_series(struct tree *t, struct tree_node *n, const struct caller *who,
		     struct tree_lister *l);
/* A walk's listing of a patient's or a study's folder (comps of depth 2 or 3) in a
 * collection loaded in bulk: one query by the folder names. 1 when it is not such a
 * folder or nothing is found (the long way tells which), with l as it was. */
int tree_list_named(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		    struct tree_lister *l);

/* ---- tree_tciafs.c --------------------------------------------------------------- */

/* /.tciafs/ and below (comps[0] is ".tciafs"): status, and a series by UID. */
int tree_resolve_tciafs(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			const struct caller *who, bool files, struct tree_node *n);
/* Is path a by-UID series folder whose series the catalog cannot place now? Its stat is
 * then answered at once, without a request: the lookup that precedes every listing must
 * not delay the download the listing starts (an unknown UID shows as ENOENT when
 * listed, or when its metadata is asked for). */
bool tree_uid_dir_unresolved(struct tree *t, const char *path);
int tree_list_tciafs(struct tree *t, struct tree_lister *l);

/* ---- tree_facets.c ---------------------------------------------------------------- */

/* Which facet folder name is (0 modality, 1 body part, 2 manufacturer), or -1. */
int tree_facet_index(const char *name);
/* /<Collection>/.by-<facet>[/<value>[/<link>]], with n already at the collection. */
int tree_resolve_facet(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth, unsigned k,
		       struct tree_node *n);
int tree_list_facet_root(struct tree *t, struct tree_node *n, struct tree_lister *l);
int tree_list_facet_val(struct tree *t, struct tree_node *n, struct tree_lister *l);

/* ---- tree_mans.c ------------------------------------------------------------------- */

/* /manifests[/<name>[/<link> | /missing.txt]]. */
int tree_resolve_man(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		     struct tree_node *n);
int tree_render_missing(struct tree_node *n, char **out, size_t *len);
int tree_list_mans(struct tree *t, struct tree_lister *l);
int tree_list_man(struct tree *t, struct tree_node *n, struct tree_lister *l);
/* The manifests given at mount, named and sorted (each taken over: left cleared). */
int tree_take_manifests(struct tree *t, struct view_manifest *m, size_t n);

/* ---- tree_citation.c --------------------------------------------------------------- */

void tree_lics_free(struct tree *t);
/* LicenseName, LicenseURI and CollectionURI over a collection's series (new object). */
int tree_licence(struct tree *t, struct tree_coll *c, json_t **out);
int tree_render_citation(struct tree *t, struct tree_node *n, char **out, size_t *len);

/* ---- tree_files.c ---------------------------------------------------------------- */

int tree_make_readme(struct tree *t);
/* The text of a generated file (README.txt, a .json file); *out is the caller's. */
int tree_render(struct tree *t, struct tree_node *n, char **out, size_t *len);
/* What an open of a stored file has waited so far, across its resolutions. */
struct tree_open_try {
	int waited; /* ms, for a series another process holds */
	int gone;   /* times its series was found evicted */
};
/* tree_file_open's answer when the path is to be resolved again and the open retried. */
#define TREE_AGAIN 1
/* Opens the file n is: 0 with *out, TREE_AGAIN, -EISDIR, or -errno. A stored file takes
 * over n's reference on its series. */
int tree_file_open(struct tree *tree, struct tree_node *n, const struct caller *who,
		   struct tree_open_try *try, struct tree_file **out);
/* A stored file of a kept folder into n (kind TK_SERIES_FILE, the series referenced):
 * 0, or 1 when it is not at hand that way (resolve the path). */
int tree_place_open(struct tree *t, const char *path, struct tree_node *n);
/* After path resolved (the slow way) to a stored file in n: keeps its folder's series
 * until the load that named it is stale. */
void tree_place_keep(struct tree *t, const char *path, const struct tree_node *n);
void tree_places_free(struct tree *t);

/* ---- tree_table.c ------------------------------------------------------------------ */

/* A table (0 patients, 1 studies, 2 series) rendered from the catalog into a file: its
 * size, and a new descriptor of it when fd is not NULL. 0 or -errno. */
int tree_table_file(struct tree *t, struct tree_coll *c, unsigned which, int *fd, off_t *size);
void tree_tables_free(struct tree *t);

/* ---- tree_xattr.c ---------------------------------------------------------------- */

/* Whether name is one of ours (user.tcia.*, user.tciafs.error): others are answered
 * ENODATA without resolving the path. */
bool tree_xattr_ours(const char *name);
/* As getxattr(2) and listxattr(2), for the node path resolved to. */
ssize_t tree_xattr_get(struct tree *tree, const char *path, const struct tree_node *n,
		       const char *name, char *buf, size_t size);
ssize_t tree_xattr_list(struct tree *tree, const char *path, const struct tree_node *n, char *buf,
			size_t size);

/* ---- tree_node.c: one floor below every subtree, calling none of them -------------- */

void tree_node_put(struct tree *t, struct tree_node *n);
int tree_get_colls(struct tree *t, struct tree_colls **out);
int tree_coll_get(struct tree *t, struct tree_coll *c, struct loader_slot *slot, tree_load_fn load,
		  void *out);
struct tree_coll *tree_find_coll(struct tree_colls *cs, const char *name);
/* The series in the store: at hand if it is there, else fetched (when fetch is set). */
int tree_series_files(struct tree *t, const struct catalog_series *ser, bool fetch,
		      const struct caller *who, struct store_series **out);
/* Where a series sits: its collection's, patient's and study's folder names (new
 * strings), or -ENOENT when the catalog cannot place it (a series whose study or
 * patient is not listed). */
int tree_series_place(struct tree *t, const struct catalog_series *ser, char **coll, char **pat,
		      char **stud);
/* The rest of a path below a series folder (n, TK_SERIES): series.json, or a file of
 * the series (fetched when not stored). 0, or -errno (n left for the caller to put). */
int tree_resolve_in_series(struct tree *t, struct tree_node *n, const char *name,
			   const struct caller *who);
bool tree_is_dir(enum tree_kind k);
void tree_fill_dir(const struct tree *t, time_t mtime, struct stat *st);
void tree_fill_file(const struct tree *t, size_t size, time_t mtime, struct stat *st);
void tree_fill_link(const struct tree *t, size_t size, time_t mtime, struct stat *st);
int tree_emit(struct tree_lister *l, const char *name, const struct stat *st, bool complete);
void tree_hold(struct tree_lister *l, const char *name, const struct stat *st, bool complete);
void tree_emit_pending(struct tree_lister *l);
/* Where a link (a facet's or a manifest's entry) points, relative to its folder: its
 * length, or -ENAMETOOLONG when it does not fit in size. And its attributes. */
int tree_link_target(const struct tree_node *n, char *buf, size_t size);
int tree_link_stat(struct tree *t, const struct tree_node *n, struct stat *st);
/* Frees n strings and their array. */
void tree_free_names(char **names, size_t n);
bool tree_ends_with(const char *s, const char *suffix);

/* ---- tree_colls.c ---------------------------------------------------------------- */

/* A slot's snapshot through the loader (loader_slot_get), built by load. */
int tree_slot_get(struct tree *t, struct loader_slot *slot, tree_load_fn load, void *arg,
		  struct loader_snap **out);
int tree_load_colls(struct tree *t, void *arg, struct loader_snap **out);
int tree_load_vals(struct tree *t, void *arg, struct loader_snap **out);
int tree_cmp_coll(const void *a, const void *b);

#endif
