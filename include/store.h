/* SPDX-License-Identifier: MIT
 * store.h — the on-disk series store (design.md §3): series/<SeriesInstanceUID>/ holds a
 * series' extracted files and a manifest; tmp/ holds work in progress; locks/ one lock
 * file per series. A series is fetched (getImage), verified and extracted by worker
 * threads and renamed into place whole, or not at all. Several processes may share one
 * store: the per-series lock lets one download while the others wait, and keeps a
 * series with open files from being evicted. Knows nothing of FUSE or of paths in the
 * mount.
 */
#ifndef TCIAFS_STORE_H
#define TCIAFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "caller.h"

struct store;
struct store_series;
struct store_part;
struct source;

struct store_opts {
	const char *dir;     /* the cache folder (series/, tmp/, locks/ go inside) */
	uint64_t cap;        /* bytes of series kept before least-recently-used go */
	int max_fetches;     /* downloads at once */
	int walk_budget;     /* fetches a process may start within walk_window; 0 = no guard */
	int walk_window;     /* seconds */
	int unzip_threads;   /* extraction threads per series */
	bool offline;        /* never fetch */
	uint64_t max_series; /* longest zip accepted when the metadata gives no size;
			      * 0 = 64 GiB */
	/* A source of single files (IDC): how far ahead of its reader a series is fetched
	 * (bytes; 0 = 2 GiB), and the source's GETs at once (0 = 16), of which a series
	 * keeps twice as many queued. */
	uint64_t readahead_max;
	int streams;
	/* Files above range_min bytes from such a source are read by range, in blocks of
	 * range_block bytes (0: 64 MiB and 4 MiB). */
	uint64_t range_min, range_block;
	/* Zips come with every file's MD5 (NBIA's getImageWithMD5Hash) and each file is
	 * checked against it before the series is stored. */
	bool verify_md5;
};

/* What the metadata says a series holds; -1 where unknown. */
struct store_expect {
	int64_t count; /* DICOM files (ImageCount) */
	int64_t bytes; /* their total size (FileSize) */
	/* Its record as the catalog keeps it (the source's raw JSON), from which the
	 * store asks its source where the files are (source_where); NULL when not at
	 * hand. Read during the call only. */
	const char *record;
};

/* Makes the folders and removes what dead processes left in tmp/. src is borrowed.
 * Returns 0 or -errno (logged). A source that serves files one by one (IDC) has a
 * series "fetched" when its files are listed (names and exact sizes, nothing
 * downloaded); each file is then fetched alone the first time it is opened. */
int store_new(const struct store_opts *opts, struct source *src, struct store **out);

/* Starts the fetch workers. Separate from store_new because a daemon forks after setting
 * up, and threads do not survive fork(): call it in the process that will serve. */
int store_start(struct store *s);

/* Starts stopping, from any thread: callers waiting for a download are answered
 * -ECANCELED at once and no queued download starts. Downloads in flight end when their
 * transfer does (http_abort ends it) and leave tmp/ clean. */
void store_stop(struct store *s);

/* Stops the workers (a download in progress is abandoned and cleaned) and frees. */
void store_free(struct store *s);

/* The series, fetching it if it is not in the store. Concurrent callers, in this process
 * or others sharing the store, share one download. Returns 0 with a reference in *out
 * (release with store_series_put), or -errno: -EINTR when the caller was interrupted
 * (the download carries on), -EAGAIN when the walk guard held the fetch back, -EIO when
 * offline and absent, or the fetch's own error (logged once). */
int store_get(struct store *s, const char *uid, const struct store_expect *exp,
	      const struct caller *who, struct store_series **out);

/* Starts fetching uid at once, before its metadata is known (an open by UID: the
 * download and the metadata requests then run side by side). The series is committed
 * only once a store_get for it has brought the metadata, and checked against it;
 * store_abandon (or no metadata within STORE_EXPECT_WAIT seconds) discards it. Does
 * nothing when the series is stored or being fetched. Returns 0, -EAGAIN (walk guard),
 * -EIO (offline) or -ENOMEM. */
int store_prefetch(struct store *s, const char *uid, const struct caller *who);

/* The metadata for a store_prefetch of uid, once known. */
void store_expect(struct store *s, const char *uid, const struct store_expect *exp);

/* The metadata for a store_prefetch will not come (the UID is unknown, or the lookup
 * failed): its download is discarded. */
void store_abandon(struct store *s, const char *uid);

/* The series if it is in the store already; never fetches. -ENOENT otherwise. */
int store_peek(struct store *s, const char *uid, struct store_series **out);

void store_series_put(struct store *s, struct store_series *ss);

/* The series' files, in the zip's order. Borrowed: valid while the reference is held. */
size_t store_series_count(const struct store_series *ss);
const char *store_series_name(const struct store_series *ss, size_t i);
uint64_t store_series_size(const struct store_series *ss, size_t i);
time_t store_series_time(const struct store_series *ss);
/* The index of name, or -1. */
long store_series_find(const struct store_series *ss, const char *name);

/* Opens file i for reading and marks the series in use (never evicted while any of its
 * files is open, in any process). A file listed but not yet stored is fetched first,
 * and the series' files after it in name order with it, many at once (the read-ahead;
 * not for a process the walk guard holds back): concurrent openers share one download,
 * checked against its listed size and MD5, renamed into place whole. A big file (above
 * range_min, from a source of single files) is not: *part is set, fd is its sparse
 * cache file, and each read goes through store_part_need first. who may be NULL.
 * Returns 0 with *fd, or -errno. */
int store_open(struct store *s, struct store_series *ss, size_t i, const struct caller *who,
	       int *fd, struct store_part **part);
/* Makes bytes off..off+len of a big file readable from its fd: the blocks they fall in
 * are fetched (Range GETs, one flight per block across every process sharing the
 * cache) and waited for; a sequential reader's next blocks are fetched ahead. 0, or
 * -errno: -EIO offline for a block not held, -EINTR when the caller was interrupted,
 * or the fetch's own error (logged). */
int store_part_need(struct store *s, struct store_part *p, uint64_t off, uint64_t len,
		    const struct caller *who);
void store_close(struct store *s, struct store_series *ss, int fd, struct store_part *part);

/* A download under way. */
struct store_fetch_stat {
	char *uid;
	uint64_t bytes_done, bytes_expected;
	int waiting; /* callers waiting for it */
};

/* A series whose files are fetched one by one, read ahead of its reader. */
struct store_ahead_stat {
	char *uid;
	size_t files, files_held;
	uint64_t bytes, bytes_held, bytes_per_second;
	unsigned in_flight;
	bool reading_ahead;
};

/* A big file read by range: its blocks held of all. */
struct store_big_stat {
	char *uid, *file;
	uint64_t size, block_size, bytes_held;
	size_t blocks, blocks_held, blocks_recorded;
	unsigned in_flight;
	int opens;
	bool complete;
};

/* A process the walk guard holds back. */
struct store_held_back {
	pid_t pid;
	char command[32];
};

/* What /.tciafs/status says of the store, taken at one moment (store_stats). */
struct store_stats {
	struct store_fetch_stat *fetches; /* started and not done */
	size_t nfetches, queued;
	struct store_ahead_stat *aheads;
	size_t naheads;
	struct store_big_stat *bigs;
	size_t nbigs;
	struct store_held_back *held_back;
	size_t nheld_back;
	const char *dir;     /* the store's; valid while the store is */
	uint64_t bytes, cap; /* bytes in series/ and the cap on them */
	size_t series;       /* series in series/ */
	bool verify_md5;
	unsigned long fetched, fetch_errors, evictions, walk_refusals, cache_hits;
	unsigned long files_fetched, file_fetch_errors, files_verified;
	int walk_budget, walk_window;
};

/* Fills *out (free with store_stats_clear). Returns 0 or -ENOMEM (*out cleared). */
int store_stats(struct store *s, struct store_stats *out);
void store_stats_clear(struct store_stats *st);

/* Parses "20G", "512M", "1T", "1000" (bytes). Returns 0 or -EINVAL. */
int store_parse_size(const char *text, uint64_t *out);

#endif
