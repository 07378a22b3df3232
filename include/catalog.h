/* SPDX-License-Identifier: MIT
 * catalog.h — the metadata catalog: every collection, patient, study and series the
 * archive has told this host about, in one SQLite database under the cache folder, with a
 * record of what was loaded and when. The only module that speaks SQL. Rows keep each
 * object exactly as the API sent it (raw JSON) beside indexed columns for lookups.
 */
#ifndef TCIAFS_CATALOG_H
#define TCIAFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct catalog;
struct catalog_load;

/* What a load covered. A bulk load of a collection (CATALOG_COLLECTION) brings its
 * studies and series (and adds the patients they name); a targeted one (CATALOG_PATIENT) one
 * patient's studies and series; CATALOG_PATIENTS a collection's patient list; CATALOG_ARCHIVE the
 * list of collections. */
enum catalog_scope {
	CATALOG_ARCHIVE = 0,
	CATALOG_PATIENTS = 1,
	CATALOG_COLLECTION = 2,
	CATALOG_PATIENT = 3,
};

/* Rows. For queries, strings point into the database's answer and are valid during the
 * callback only; for _find functions they are the caller's copies (free with _clear).
 * For catalog_add_*, they are read and copied. Unknown numbers are -1, unknown strings
 * NULL. coll is always the collection's name as the API sends it. */
struct catalog_coll {
	char *api;  /* as the API sent it */
	char *name; /* the folder */
};

struct catalog_patient {
	char *coll, *pid;
	char *name; /* the folder */
	char *raw;  /* the getPatient object; NULL when known from its studies only */
};

struct catalog_study {
	char *coll, *pid, *uid;
	char *name; /* the folder */
	char *full; /* the folder's name with the whole UID, used on a collision */
	char *raw;
	int64_t mtime;
};

struct catalog_series {
	char *coll, *pid, *study, *uid;
	char *name, *full, *raw;
	char *facet[3]; /* Modality, BodyPartExamined, Manufacturer */
	int64_t mtime, images, bytes;
};

struct catalog_opts {
	const char *dir;  /* where the database lives (created 0700) */
	const char *host; /* its file is catalog-<host>.sqlite; NULL = this host's name */
	/* SQLite's page cache of the writer; each of the readers has half (their queries
	 * stream, and four of them fill their caches in turn); 0 = 2 MiB. */
	size_t cache_bytes;
	/* A catalog file up to this size is read whole (PRAGMA quick_check) at each open;
	 * a bigger one only when it was found damaged while in use; 0 = 64 MiB. */
	off_t check_max;
	/* Frames in the log after a commit from which a thread of the catalog's own folds
	 * it back into the database (the commit does not wait for that); 0 = 1000. */
	int ckpt_frames;
};

/* Opens (or creates) the catalog. A file that is not a database, is corrupt, has another
 * schema version or is not a file at all is moved aside (".broken-<time>") and a new one
 * made, with one log line. Returns 0, or -errno when no database can be made there. */
int catalog_open(const struct catalog_opts *opts, struct catalog **out);
void catalog_free(struct catalog *c);

/* The database file's path. */
const char *catalog_path(const struct catalog *c);

/* How many times the catalog was found damaged in use and started anew: what a caller
 * remembers of its loads (their times) is void once this changes. */
unsigned long catalog_epoch(const struct catalog *c);

/* Whether a damaged page was met and the catalog is yet to be started anew: what it
 * holds now is no cover for a failed load. */
bool catalog_damaged(const struct catalog *c);

/* When the scope (coll and pid as the API sends them; NULL where they do not apply) was
 * last loaded (milliseconds since the epoch), and how many rows it brought: 0, or
 * -ENOENT if never. */
int catalog_loaded(struct catalog *c, enum catalog_scope s, const char *coll, const char *pid,
		   int64_t *when_ms, int64_t *rows);

/* A load: one write transaction that replaces what the scope held with what is added,
 * then records the scope as loaded at commit. Readers keep seeing the catalog as it was
 * until the commit; an abort (or a crash) leaves it so. One load at a time per catalog:
 * begin waits for the one in progress. Returns 0 or -errno (-EIO with a log line for a
 * database error, -ENOSPC for a full disk, -EBUSY when another process holds the
 * database for too long). */
int catalog_load_begin(struct catalog *c, enum catalog_scope s, const char *coll, const char *pid,
		       struct catalog_load **out);
int catalog_add_coll(struct catalog_load *l, const struct catalog_coll *r);
int catalog_add_patient(struct catalog_load *l, const struct catalog_patient *r);
int catalog_add_study(struct catalog_load *l, const struct catalog_study *r);
int catalog_add_series(struct catalog_load *l, const struct catalog_series *r);
/* The release of the archive (IDC's idc_version) to record with the load, at its commit,
 * in place of the one recorded before. */
int catalog_set_release(struct catalog_load *l, const char *release);
/* The release last recorded: 0 with a new string in *out, or NULL when none was. */
int catalog_release(struct catalog *c, char **out);
/* Gives colliding folder names their full forms (then "~N"), records the scope and
 * commits. Frees l whatever the result. */
int catalog_load_commit(struct catalog_load *l);
/* Rolls back; frees l. Accepts NULL. */
void catalog_load_abort(struct catalog_load *l);

/* Listings, sorted by folder name. fn returns nonzero to stop (that value is returned).
 * Otherwise 0, or -errno. */
typedef int (*catalog_coll_fn)(void *arg, const struct catalog_coll *r);
typedef int (*catalog_patient_fn)(void *arg, const struct catalog_patient *r);
typedef int (*catalog_study_fn)(void *arg, const struct catalog_study *r);
typedef int (*catalog_series_fn)(void *arg, const struct catalog_series *r);

int catalog_colls(struct catalog *c, catalog_coll_fn fn, void *arg);
int catalog_patients(struct catalog *c, const char *coll, catalog_patient_fn fn, void *arg);
/* A patient's studies and a study's series as a folder lists them, from an index alone:
 * identifiers, name, mtime (and a series' facets); full, raw, images and bytes are
 * NULL or -1. */
int catalog_studies(struct catalog *c, const char *coll, const char *pid, catalog_study_fn fn,
		    void *arg);
int catalog_series(struct catalog *c, const char *coll, const char *pid, const char *study,
		   catalog_series_fn fn, void *arg);
/* The same by folder names (a patient's, a study's), found in the same query. No row is
 * either no such folder or an empty one: the caller finds out the long way. */
int catalog_studies_named(struct catalog *c, const char *coll, const char *patient,
			  catalog_study_fn fn, void *arg);
int catalog_series_named(struct catalog *c, const char *coll, const char *patient,
			 const char *study, catalog_series_fn fn, void *arg);

/* Every study (by patient, then name) or series (by patient, study, then name) of a
 * collection. */
int catalog_all_studies(struct catalog *c, const char *coll, catalog_study_fn fn, void *arg);
int catalog_all_series(struct catalog *c, const char *coll, catalog_series_fn fn, void *arg);

/* One row by folder name (a study or series also by bare UID): 0 with *out, -ENOENT, or
 * -errno. */
int catalog_find_coll(struct catalog *c, const char *name, struct catalog_coll *out);
int catalog_find_patient(struct catalog *c, const char *coll, const char *name,
			 struct catalog_patient *out);
int catalog_find_study(struct catalog *c, const char *coll, const char *pid, const char *name,
		       struct catalog_study *out);
/* A patient and one of its studies by folder names (not a bare UID), in one query that
 * reads the indices only: their raw (and the study's full name) are left NULL. */
int catalog_find_patient_study(struct catalog *c, const char *coll, const char *patient,
			       const char *study, struct catalog_patient *p,
			       struct catalog_study *s);
int catalog_find_series(struct catalog *c, const char *coll, const char *pid, const char *study,
			const char *name, struct catalog_series *out);
/* A collection by its name as the API sends it. */
int catalog_coll_by_api(struct catalog *c, const char *api, struct catalog_coll *out);
/* A patient by its ID. */
int catalog_patient_by_id(struct catalog *c, const char *coll, const char *pid,
			  struct catalog_patient *out);
/* A series by UID, anywhere in the archive (the first collection by name that has it). */
int catalog_series_by_uid(struct catalog *c, const char *uid, struct catalog_series *out);
/* A study by its UID in a collection. */
int catalog_study_by_uid(struct catalog *c, const char *coll, const char *uid,
			 struct catalog_study *out);

/* The views. Columns of a row as text (NULL for SQL NULL), valid during the callback. */
typedef int (*catalog_cols_fn)(void *arg, const char *const *cols, size_t n);
/* A series with its patient's and study's folder names. */
typedef int (*catalog_link_fn)(void *arg, const struct catalog_series *s, const char *patient,
			       const char *study);

/* The distinct values of facet (0 Modality, 1 BodyPartExamined, 2 Manufacturer) among a
 * collection's series: cols[0], NULL for "unknown" (missing or empty). */
int catalog_facet_values(struct catalog *c, const char *coll, unsigned facet, catalog_cols_fn fn,
			 void *arg);
/* The series (placed in the tree) whose facet is value (NULL: unknown), by patient
 * folder, then series folder, then UID. */
int catalog_facet_links(struct catalog *c, const char *coll, unsigned facet, const char *value,
			catalog_link_fn fn, void *arg);
/* The same links' names only, in the same order: cols[0] the series' folder name,
 * cols[1] its time (seconds, as text), cols[2] and cols[3] its patient's and study's. */
int catalog_facet_names(struct catalog *c, const char *coll, unsigned facet, const char *value,
			catalog_cols_fn fn, void *arg);
/* Those of them with the given patient and series folder names, by UID. */
int catalog_facet_link(struct catalog *c, const char *coll, unsigned facet, const char *value,
		       const char *patient, const char *series, catalog_link_fn fn, void *arg);
/* names[0..2]: the object's patient's, study's and series' folder names (NULL above
 * it); raw: the object as sent, JSON text of len bytes (not NUL-terminated); all valid
 * during the callback. */
typedef int (*catalog_raw_fn)(void *arg, const char *const *names, const char *raw, size_t len);
/* A table's rows (0 patients, 1 studies, 2 series) in path order, each object as sent
 * (its members read by the caller: SQLite's json_each cost five times jsonobj.c). */
int catalog_table(struct catalog *c, const char *coll, unsigned table, catalog_raw_fn fn,
		  void *arg);
/* The distinct text values of the series' LicenseName (0), LicenseURI (1) and
 * CollectionURI (2), first seen first: fn gets (member number, value, first rowid). */
int catalog_licence(struct catalog *c, const char *coll, catalog_cols_fn fn, void *arg);

void catalog_coll_clear(struct catalog_coll *r);
void catalog_patient_clear(struct catalog_patient *r);
void catalog_study_clear(struct catalog_study *r);
void catalog_series_clear(struct catalog_series *r);

struct catalog_stats {
	int64_t file_bytes; /* the database and its write-ahead log */
	int64_t colls, patients, studies, series;
	unsigned long loads; /* loads committed by this process */
	unsigned long load_failures;
};
void catalog_stats(struct catalog *c, struct catalog_stats *st);

#endif
