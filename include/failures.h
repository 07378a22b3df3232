/* SPDX-License-Identifier: MIT
 * failures.h — the last failures users met, kept so that they can read why where they
 * look (an extended attribute on the folder, .tciafs/status) and not only in a log.
 * Bounded: the newest FAILURES_KEEP are kept. Knows nothing of FUSE or TCIA.
 */
#ifndef TCIAFS_FAILURES_H
#define TCIAFS_FAILURES_H

#include <jansson.h>
#include <stddef.h>

#define FAILURES_KEEP 256

struct failures;

int failures_new(struct failures **out);
void failures_free(struct failures *f);

/* Records that an operation on path (a path in the mount, "/…") failed with errno err
 * for reason why (one line; "" when nobody said). uid names the series involved, or NULL.
 * Safe from any thread. */
void failures_add(struct failures *f, const char *path, const char *uid, int err, const char *why);

/* The newest failure on folder: of the folder itself, of something directly in it, or
 * (uid not NULL) of its series wherever it was reached from, as one line
 * "<time> <error>: <reason>" into buf. Returns its length (as getxattr: with size 0 the
 * length needed; -ERANGE when buf is too small), or -ENODATA when there is none. */
long failures_find(struct failures *f, const char *folder, const char *uid, char *buf, size_t size);

/* The newest n failures, newest first, as a JSON array of objects (time, path, series,
 * error, reason). Returns a new reference, or NULL when out of memory. */
json_t *failures_json(struct failures *f, size_t n);

#endif
