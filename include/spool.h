/* SPDX-License-Identifier: MIT
 * spool.h — records written once, front to back, then read at any offset: in memory
 * while small, past a bound in an unlinked file, so that a listing of 200,000 entries
 * costs no more memory than a small one. Not thread-safe: its owner locks.
 */
#ifndef TCIAFS_SPOOL_H
#define TCIAFS_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

struct spool {
	char *buf;       /* the records (fd < 0), or the write/read window (fd >= 0) */
	size_t cap;      /* its size: grows to mem */
	size_t len;      /* bytes in buf */
	size_t mem;      /* the most held in memory */
	int fd;          /* the spool file, -1 while in memory */
	off_t size;      /* bytes written (in the file, once finished) */
	off_t win;       /* file offset of buf when used as a read window */
	const char *dir; /* where the file is made (O_TMPFILE) */
};

/* An empty spool: first bytes of memory to start with, up to mem. 0 or -ENOMEM. */
int spool_init(struct spool *s, const char *dir, size_t first, size_t mem);
void spool_clear(struct spool *s);

/* Room for n more bytes at the end (zeroed), or NULL with *rc (-ENOMEM, a write error). */
void *spool_append(struct spool *s, size_t n, int *rc);

/* Done writing: what follows is reading. 0 or -errno. */
int spool_finish(struct spool *s);

/* The bytes at off, at least need of them in one piece (need ≤ mem); NULL at the end,
 * or on a read error with *rc set. Valid until the next call. */
const void *spool_at(struct spool *s, off_t off, size_t need, int *rc);

/* Bytes written. */
off_t spool_size(const struct spool *s);

#endif
