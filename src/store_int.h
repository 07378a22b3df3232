/* SPDX-License-Identifier: MIT
 * store_int.h — what store.c (the table, the walk guard, eviction, reading, life cycle)
 * and store_fetch.c (fetching) share: the store's structures and a few helpers. Not for
 * other modules.
 */
#ifndef TCIAFS_STORE_INT_H
#define TCIAFS_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store.h"
#include "unzip.h"

#define STORE_MANIFEST ".manifest"
#define STORE_TOUCH_EVERY 60 /* seconds between LRU time updates of one series */
#define STORE_WAIT_TICK_MS 100
#define STORE_MAX_WORKERS 32
#define STORE_MAX_PIDS 256
/* A failed fetch answers later callers for this long before a new attempt: one `ls -l`
 * makes several calls, and a broken series must not be downloaded for each. */
#define STORE_FAIL_MEMORY 3
#define STORE_REFETCH_ROUNDS 4 /* fetches of one series for one caller, at most */
#define STORE_ZIP_SLACK ((uint64_t)16 << 20)
/* How long a download started before its metadata waits for it once complete. */
#define STORE_EXPECT_WAIT 120

struct store_file {
	char *name;
	uint64_t size;
	char md5[33]; /* what its bytes must hash to, as listed; "" when unknown */
};

struct store_series {
	char *uid;
	char *where; /* files fetched one by one from here; NULL: stored whole */
	size_t count;
	struct store_file *files;
	size_t *by_name; /* files' indices in name order: an open finds its file in log n */
	uint64_t bytes;
	time_t fetched;
	int refs;       /* protected by store->lock */
	int open_files; /* protected by store->lock */
	int lock_fd;    /* holds LOCK_SH while open_files > 0; protected by lock */
	time_t touched; /* protected by store->lock */
	bool gone;      /* evicted or vanished: no longer in the table */
	struct store_series *next;
};

/* Where a download's cap comes from. */
enum store_cap {
	STORE_CAP_PENDING, /* its metadata is still to come: STORE_ZIP_SLACK until then */
	STORE_CAP_META,    /* FileSize x 2 + STORE_ZIP_SLACK */
	STORE_CAP_SIZE,    /* getSeriesSize's total x 2 + STORE_ZIP_SLACK */
	STORE_CAP_MAX,     /* max_series: nothing gives a size */
};

/* One download, shared by everyone who asks for the series meanwhile. */
struct store_fetch {
	char *uid;
	struct store_expect exp; /* exp.record is NULL: the record is the caller's */
	char *where;             /* where its files are (source_where), if the source says */
	bool started;
	bool done;
	int rc;
	time_t finished;
	int waiters;
	bool exp_pending;    /* started by store_prefetch: exp not known yet; under lock */
	bool exp_failed;     /* ... and it will not come (store_abandon); under lock */
	char *why;           /* why it failed, as the worker's log line said; under lock */
	uint64_t bytes_done; /* written by the worker, read for status; under lock */
	uint64_t bytes_expected;
	/* The longest zip accepted now (atomic): tightened the moment the metadata or the
	 * series' size arrives, and what set it (enum store_cap; under lock). */
	uint64_t cap;
	int cap_from;
	bool size_asked;
	bool no_room;     /* cut off: the cache cap left it no room (worker only) */
	uint64_t room_at; /* bytes done at its last look at the cap (worker only) */
	struct store *s;
	struct store_fetch *next;
};

/* Recent fetch starts of one process, for the walk guard. */
struct store_pid {
	pid_t pid;
	unsigned long long start; /* process start time: tells a reused pid apart */
	time_t times[64];         /* ring of recent fetch starts */
	int n;
	bool blocked;
	char comm[32];
};

struct store {
	char *dir;
	char *series_dir;
	char *tmp_dir;
	char *locks_dir;
	struct store_opts opts;
	struct source *src; /* borrowed */
	char host[64];
	pthread_mutex_t lock;
	pthread_cond_t work; /* a fetch was queued, or stopping */
	pthread_cond_t done; /* a fetch finished */
	/* Protected by lock: */
	struct store_series *series;
	struct store_fetch *fetches; /* queued and running */
	struct store_pid pids[STORE_MAX_PIDS];
	bool stopping;
	unsigned long n_fetched, n_fetch_errors, n_evicted, n_refused, n_hits;
	unsigned long n_verified;                     /* files checked against their listed MD5 */
	unsigned long n_files_fetched, n_file_errors; /* files fetched one by one */
	struct store_ahead *aheads;                   /* series being read ahead (store_ahead.c) */
	unsigned ahead_jobs;                          /* their fetches out with the source */
	unsigned size_askers;   /* threads asking a series' size for its cap */
	struct store_big *bigs; /* big files read by range (store_part.c) */
	pthread_t recorder;     /* ... and the thread that records their blocks */
	pthread_cond_t record;  /* a block landed, or stopping */
	bool recorder_on, recorder_stop;
	uint64_t used; /* bytes in series/, as of the last scan */
	size_t used_series;
	int nworkers;
	pthread_t workers[STORE_MAX_WORKERS];
};

bool store_uid_ok(const char *uid);
void store_rmtree(const char *path);
/* md5: NULL, or each file's MD5 as listed ("" when none). */
int store_write_manifest(int dir_fd, const char *uid, const struct unzip_entry *v, size_t n,
			 uint64_t zip_bytes, time_t when, const char *where,
			 const char *const *md5);
int store_lookup(struct store *s, const char *uid, struct store_series **out);
/* Waits on s->done for at most STORE_WAIT_TICK_MS (so that a waiter notices an
 * interrupt soon). Lock held. True when woken. */
bool store_ms_wait(struct store *s);
/* a/b, a new string (NULL when out of memory); mkdir, a folder already there made. */
char *store_join(const char *a, const char *b);
int store_mkdir(const char *path);
/* At the end: the threads asking series' sizes for their caps, waited for (bounded:
 * false when some are still out). */
bool store_size_askers_wait(struct store *s);
bool store_walk_allows(struct store *s, pid_t pid);
/* Has the walk guard held pid back (without counting a fetch)? Lock held. */
bool store_walk_held_back(struct store *s, pid_t pid);
/* Holds ss open (its shared lock: no eviction, in any process) once more, or lets go
 * once; the last let-go gives back the lock's fd for the caller to close outside the
 * lock (-1 otherwise). Lock held. */
int store_hold_locked(struct store *s, struct store_series *ss);
int store_release_locked(struct store *s, struct store_series *ss);
/* Drops a reference under the lock: true when the caller is to free ss after it. */
bool store_put_locked(struct store_series *ss);
void store_series_free(struct store_series *ss);

/* ---- read-ahead (store_ahead.c) ---- */
/* File i of ss is not on disk: fetches it, with the rest of the series read ahead from
 * it (unless the walk guard holds who back), and waits for it. 0 when it is in place,
 * or -errno (its reason adopted). */
int store_ahead_fetch(struct store *s, struct store_series *ss, size_t i, const struct caller *who);
/* File i of ss was opened from disk: a read-ahead of ss moves its window on. */
void store_ahead_saw(struct store *s, struct store_series *ss, size_t i);
/* The read-aheads for status, into out. Lock held. Returns 0 or -ENOMEM. */
int store_ahead_stats_locked(struct store *s, struct store_stats *out);
/* At the end: every fetch cancelled and waited for, every read-ahead freed. */
void store_ahead_free_all(struct store *s);
void store_evict(struct store *s, const char *keep);
/* ... until the series and reserve more bytes (downloads in tmp/) fit under the cap. */
void store_evict_reserve(struct store *s, const char *keep, uint64_t reserve);

/* ---- big files read by range (store_part.c) ---- */
/* Is file i of ss read by range (a source of single files, above range_min)? */
bool store_part_wanted(const struct store *s, const struct store_series *ss, size_t i);
/* Opens big file i of ss for reading by range: 0 with *out and a new fd on its .part,
 * 1 when it is in place whole after all (nothing opened), or -errno (logged). */
int store_part_open(struct store *s, struct store_series *ss, size_t i, const struct caller *who,
		    struct store_part **out, int *fd);
void store_part_close(struct store *s, struct store_part *p);
/* The bytes ss takes on disk, its big files counted by what they hold; dir_fd is its
 * folder. */
uint64_t store_part_bytes(const struct store *s, const struct store_series *ss, int dir_fd);
/* The big files open, for status, into out. Lock held. Returns 0 or -ENOMEM. */
int store_part_stats_locked(struct store *s, struct store_stats *out);
/* At the end, once no fetch is out: what landed recorded, everything freed. */
void store_part_free_all(struct store *s);
void *store_worker(void *arg);

#endif
