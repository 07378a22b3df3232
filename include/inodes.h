/* SPDX-License-Identifier: MIT
 * inodes.h — the inodes the kernel holds of a mount, as fs.c numbers them: number →
 * parent and name (so that a path can be made for the tree), how many lookups the kernel
 * owes back, and which listing of a folder the kernel keeps. Thread-safe; plain C (the
 * numbers are FUSE's, the types are not), so that the unit tests drive it directly.
 */
#ifndef TCIAFS_INODES_H
#define TCIAFS_INODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct inodes;

/* The root's number (FUSE_ROOT_ID); it is always there. */
#define INODES_ROOT 1

/* Returns 0 or -ENOMEM. */
int inodes_new(struct inodes **out);
void inodes_free(struct inodes *t);

/* One more lookup of name in the folder parent (a number the kernel holds): the name's
 * number, made if new; 0 when out of memory. */
uint64_t inodes_get(struct inodes *t, uint64_t parent, const char *name);

/* The kernel forgot count lookups of ino: freed (and parents it alone kept) at none. */
void inodes_put(struct inodes *t, uint64_t ino, uint64_t count);

/* The path of ino ("/" or "/a/b"), with "/name" after it when name is given, in buf.
 * Returns 0 or -ENAMETOOLONG. */
int inodes_path(struct inodes *t, uint64_t ino, const char *name, char *buf, size_t size);

/* The listing of a folder the kernel keeps: whether it keeps one, and the stamp of the
 * load it came from when it has one. inodes_keep records it (kept false: no longer). */
void inodes_keep(struct inodes *t, uint64_t ino, bool kept, bool stamped, uint64_t stamp);
void inodes_listing(struct inodes *t, uint64_t ino, bool *kept, bool *stamped, uint64_t *stamp);

/* Every folder whose listing the kernel keeps, now marked as not kept: a new array in
 * *inos (caller frees) of *n numbers. Returns 0 or -ENOMEM (nothing changed). */
int inodes_take_kept(struct inodes *t, uint64_t **inos, size_t *n);

/* Marks ino (a number the kernel holds) as a file rendered from loaded metadata, whose
 * copy in the kernel a new load makes stale. */
void inodes_set_rendered(struct inodes *t, uint64_t ino);

/* Every inode marked rendered: a new array in *inos (caller frees) of *n numbers.
 * Returns 0 or -ENOMEM. */
int inodes_rendered(struct inodes *t, uint64_t **inos, size_t *n);

/* How many inodes (the root aside) and kept listings there are. */
void inodes_held(struct inodes *t, unsigned long *inodes, unsigned long *listings);

#endif
