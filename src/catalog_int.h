/* SPDX-License-Identifier: MIT
 * catalog_int.h — what catalog.c (schema, connections, queries) and catalog_load.c
 * (loads) share: the connections, the prepared statements and their SQL, the helpers
 * that translate SQLite's results. Not for other modules.
 */
#ifndef TCIAFS_CATALOG_INT_H
#define TCIAFS_CATALOG_INT_H

#include "catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define CAT_VERSION 3
#define CAT_READERS 4
#define CAT_BUSY_MS 5000
/* The load table's row for the archive's release (pid holds it): not a scope of loads. */
#define CAT_RELEASE_SCOPE 4

/* Prepared statements, one set per connection. */
enum cat_stmt {
	ST_LOADED,
	ST_RECORD,
	ST_RELEASE,
	ST_DEL_RELEASE,
	ST_DEL_COLLS,
	ST_DEL_LISTED_PATIENTS,
	ST_DEL_STUDIES,
	ST_DEL_SERIES,
	ST_DEL_PAT_STUDIES,
	ST_DEL_PAT_SERIES,
	ST_ADD_COLL,
	ST_ADD_PATIENT,
	ST_ADD_STUDY,
	ST_ADD_SERIES,
	ST_ADD_SERIES_STAGED,
	ST_FULL_STUDIES,
	ST_FULL_SERIES,
	ST_DUP_COLLS,
	ST_DUP_PATIENTS,
	ST_DUP_STUDIES,
	ST_DUP_SERIES,
	ST_RENAME_COLL,
	ST_RENAME_PATIENT,
	ST_RENAME_STUDY,
	ST_RENAME_SERIES,
	ST_COLLS,
	ST_PATIENTS,
	ST_STUDIES,
	ST_SERIES,
	ST_STUDIES_NAMED,
	ST_SERIES_NAMED,
	ST_FIND_COLL,
	ST_FIND_PATIENT,
	ST_PATIENT_BY_ID,
	ST_FIND_STUDY,
	ST_FIND_PAT_STUDY,
	ST_STUDY_BY_UID,
	ST_FIND_SERIES,
	ST_SERIES_BY_UID,
	ST_COUNT,
	ST_ALL_STUDIES,
	ST_ALL_SERIES,
	ST_COLL_BY_API,
	ST_FACET_VALUES,                      /* + facet */
	ST_FACET_LINKS = ST_FACET_VALUES + 3, /* + 2 × facet + unknown */
	ST_FACET_LINK = ST_FACET_LINKS + 6,   /* + 2 × facet + unknown */
	ST_FACET_NAMES = ST_FACET_LINK + 6,   /* + 2 × facet + unknown */
	ST_TABLE = ST_FACET_NAMES + 6,        /* + table */
	ST_LICENCE = ST_TABLE + 3,
	ST_RAW_OF, /* + table */
	ST_READ_BEGIN = ST_RAW_OF + 3,
	ST_READ_END,
	ST_N
};

/* The SQL of each statement (catalog.c). */
extern const char *const cat_sql[ST_N];

struct cat_conn {
	struct catalog *cat; /* a connection to the catalog itself; NULL for a stage */
	sqlite3 *db;         /* NULL while none could be opened: its calls fail */
	sqlite3_stmt *st[ST_N];
	bool busy; /* a reader has it; protected by catalog->lock */
	/* A reader's read transaction, kept across statements (cat_read_begin): when it
	 * began, and the catalog's commit count then. */
	int64_t read_ms;
	unsigned long read_gen;
};

struct catalog {
	char *path;
	size_t cache_bytes;
	off_t check_max; /* read whole at open up to this size (catalog_opts) */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a reader connection came back */
	struct cat_conn readers[CAT_READERS];
	pthread_mutex_t wlock; /* held from a load's first write to its end */
	struct cat_conn writer;
	unsigned long loads, load_failures; /* protected by lock */
	/* The log folded back into the database on a thread of its own (cat_ckpt_main)
	 * rather than inside the commit that grew it: NLST's bulk commit waited 2–3 s
	 * for its own checkpoint before a walk could go on. */
	struct cat_conn ckpt;
	int ckpt_frames;
	pthread_t ckpt_thread;
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
	bool ckpt_started, ckpt_wanted, ckpt_stop, ckpt_failed; /* under ckpt_lock */
	/* Commits of the writer so far, and whether a reader may hold a read transaction
	 * while idle (for the checkpointer to end it): both atomic. */
	unsigned long gen;
	int lingering;
	/* A damaged page was met (cat_fail): the file is moved aside and a new one started
	 * by the next caller that finds it idle (cat_renew); renewing holds readers back
	 * meanwhile; epoch counts the new files. damaged and epoch are atomic, renewing is
	 * under lock. */
	int damaged;
	bool renewing;
	unsigned long epoch;
};

int cat_errno(int rc);
/* Logs a failure of SQLite on connection k (NULL: none) and gives its errno; a damaged
 * file is recorded for cat_renew. */
int cat_fail(struct cat_conn *k, int rc, const char *what);
/* Moves a catalog found damaged aside and starts a new one, if no one is using it now. */
void cat_renew(struct catalog *c);
void cat_conn_close(struct cat_conn *k);
int cat_exec(sqlite3 *db, const char *sql);
int cat_conn_open(struct catalog *c, struct cat_conn *k, bool create);
/* Sets a connection's page cache to kib KiB. */
int cat_cache_kib(sqlite3 *db, size_t kib);
sqlite3_stmt *cat_stmt(struct cat_conn *k, int s, int *rc);
int cat_bind_text(sqlite3_stmt *st, int i, const char *s);
int cat_bind_num(sqlite3_stmt *st, int i, int64_t v);
char *cat_col(sqlite3_stmt *st, int i);
int cat_dup_all(char **const *fields, size_t n);
struct cat_conn *cat_reader(struct catalog *c);

/* Runs a reader statement with up to three text parameters; each row goes to row()
 * (one: the first row only, -ENOENT without one). */
typedef int (*cat_row_fn)(sqlite3_stmt *st, void *arg);
int cat_query_v(struct catalog *c, int s, const char *const *params, int n, cat_row_fn row,
		void *arg, bool one);
int cat_query(struct catalog *c, int s, const char *a, const char *b, const char *d, cat_row_fn row,
	      void *arg, bool one);
/* A public callback and its argument, for a cat_row_fn that calls it. */
struct cat_cb {
	void *fn;
	void *arg;
};
/* A series row of CAT_SERIES_COLS into r (pointers into the statement's row). */
void cat_read_series(sqlite3_stmt *st, struct catalog_series *r);
void cat_reader_put(struct catalog *c, struct cat_conn *k, sqlite3_stmt *st);

#endif
