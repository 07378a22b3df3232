/* SPDX-License-Identifier: MIT
 * metacache.h — API answers kept in memory and on disk, each trusted for a TTL.
 * Identical concurrent requests share one fetch (single-flight); when a refresh fails an
 * older answer is served (stale-if-error); the disk copy lets a remount, or an offline
 * mount, browse without the network. Knows nothing of TCIA: keys are opaque strings
 * (request URLs) and answers opaque bytes.
 */
#ifndef TCIAFS_METACACHE_H
#define TCIAFS_METACACHE_H

#include <stdbool.h>
#include <stddef.h>

struct metacache;

struct metacache_opts {
	const char *dir; /* folder for the disk copies (created 0700); NULL = memory only */
	long ttl;        /* seconds an answer is fresh */
	size_t mem_max;  /* bytes of answers kept in memory; 0 = 32 MiB */
	size_t disk_max; /* bytes of answers kept on disk; 0 = 1 GiB. The oldest go
			  * first; an answer over half of it is kept in memory only */
	bool offline;    /* never fetch: serve what is held, whatever its age */
};

/* Fetches the answer for a key: 0 with *body (malloc'd, caller frees) and *len, or -errno. */
typedef int (*metacache_fetch_fn)(void *arg, char **body, size_t *len);

/* Returns 0 and sets *out, or -errno (the folder could not be made, or -ENOMEM). */
int metacache_new(const struct metacache_opts *opts, struct metacache **out);
void metacache_free(struct metacache *mc);

/* The answer for key: from memory or disk while fresh; otherwise fetch() is called once
 * however many threads ask at the same time, and the others wait for its result. If the
 * fetch fails and an older answer exists, that one is returned with a warning. Offline,
 * a missing answer is -EIO (logged). Returns 0 with *body (a new copy, NUL-terminated; the
 * caller frees it) and *len, or -errno. */
int metacache_get(struct metacache *mc, const char *key, metacache_fetch_fn fetch, void *arg,
		  char **body, size_t *len);

/* Drops one answer (memory and disk), e.g. because it did not parse. */
void metacache_forget(struct metacache *mc, const char *key);

/* Marks every answer stale (SIGHUP): the next get of each asks again, but an old answer
 * still covers a failed refresh. */
void metacache_expire_all(struct metacache *mc);

/* Counters for status reporting. */
struct metacache_stats {
	unsigned long hits, misses, fetches, stale_served, fetch_errors;
	size_t mem_bytes;
};
void metacache_stats(struct metacache *mc, struct metacache_stats *st);

#endif
