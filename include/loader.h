/* SPDX-License-Identifier: MIT
 * loader.h — what is looked at, loaded into the catalog, and the snapshots the tree
 * keeps of lists. A look at one patient of a collection asks the source for that
 * patient only (targeted); a walk over several patients, or a view of the whole
 * collection, loads the collection in bulk. Concurrent callers share one load; a failed
 * load leaves the catalog as it was and an older load of the scope covers for it. The
 * loader owns freshness (meta_ttl, SIGHUP, a new release) and the generation counter;
 * it asks the catalog and the source, and never the tree.
 */
#ifndef TCIAFS_LOADER_H
#define TCIAFS_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "catalog.h"

struct loader;
struct source;

struct loader_opts {
	long meta_ttl;   /* seconds a load is trusted */
	bool offline;    /* never ask the source: what the catalog holds is trusted */
	bool naming_uid; /* study and series folders named by bare UID */
	time_t mounted;  /* a folder's time when its record gives none */
};

/* Over a source (borrowed; must outlive the loader). Makes no request. Returns 0 or
 * -ENOMEM. */
int loader_new(struct source *src, const struct loader_opts *opts, struct loader **out);
void loader_free(struct loader *l);

/* The catalog loads go into (borrowed; must outlive the loader). Required before the
 * first load. */
void loader_set_catalog(struct loader *l, struct catalog *cat);

/* Everything loaded so far is stale from now on (SIGHUP, a new release): the next look
 * loads again, the old loads still covering a failed refresh. */
void loader_expire(struct loader *l);

/* A number that changes with each loader_expire: what was kept of older loads (the
 * kernel's listings, a snapshot, a place) is then stale. */
unsigned loader_generation(struct loader *l);

/* ---- freshness ---- */

/* 1 when the scope was loaded and is still trusted, 0 loaded but stale, -1 never.
 * Offline, anything loaded is trusted. */
int loader_fresh(struct loader *l, enum catalog_scope s, const char *coll, const char *pid);

/* When the scope was last loaded (ms of the wall clock), 0 if never. */
int64_t loader_when(struct loader *l, enum catalog_scope s, const char *coll, const char *pid);

/* Whether coll's patient list and bulk load are both known fresh without a query (what
 * loader_fresh found, remembered): then every name resolves from the catalog as is. */
bool loader_coll_fresh(struct loader *l, const char *coll);

/* ---- loads: each makes sure the catalog holds a fresh copy of its scope ---- */

/* The list of collections (and the source's release). 0 or -errno. */
int loader_archive(struct loader *l);
/* A collection's patient list. 0 or -errno. */
int loader_patients(struct loader *l, const char *coll);
/* A collection's studies and series, in bulk. 0 or -errno. */
int loader_collection(struct loader *l, const char *coll);
/* One patient's studies and series: targeted, or the collection in bulk when a walk is
 * seen (the third patient of one collection within a minute). 0 or -errno. */
int loader_patient(struct loader *l, const char *coll, const char *pid);
/* A patient by folder name, loading what that takes: 0 with *out, -ENOENT, -errno. */
int loader_find_patient(struct loader *l, const char *coll, const char *name,
			struct catalog_patient *out);

/* ---- snapshots of lists ---- */

/* Something the tree built from a load (the collections, a collection's value lists,
 * its facets, a manifest's resolution), shared by reference. */
struct loader_snap {
	int refs;       /* under the loader's lock */
	time_t fetched; /* when it was built */
	unsigned gen;   /* the generation it was built in: an older one is stale */
	void (*destroy)(struct loader_snap *snap);
};

/* Where a snapshot lives, and the single build in progress for it. Every field is the
 * loader's, under its lock; a zeroed slot is empty. */
struct loader_slot {
	struct loader_snap *snap;
	bool loading;
	unsigned done; /* builds finished */
	int last_rc;
	int64_t failed_ms; /* monotonic ms of the last slow failure */
	char *why;         /* the last failure's reason, or NULL */
};

/* Builds a new snapshot (refs and gen are set by the loader). 0 or -errno. */
typedef int (*loader_build_fn)(void *arg, struct loader_snap **out);

/* A referenced snapshot from slot (release with loader_snap_put), built when there is
 * none or it is stale. Concurrent callers share one build and its result; a failed
 * build is covered by the old snapshot when there is one (stale-if-error). Never calls
 * build under the loader's lock. 0 with *out, or -errno. */
int loader_slot_get(struct loader *l, struct loader_slot *slot, loader_build_fn build, void *arg,
		    struct loader_snap **out);

/* The slot's snapshot, referenced, if it is there and fresh (nothing built), else NULL. */
struct loader_snap *loader_slot_peek(struct loader *l, struct loader_slot *slot);

/* Accepts NULL. */
void loader_snap_put(struct loader *l, struct loader_snap *s);

/* Drops a slot's snapshot (its owner goes away). */
void loader_slot_clear(struct loader *l, struct loader_slot *slot);

#endif
