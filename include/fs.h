/* SPDX-License-Identifier: MIT
 * fs.h — the FUSE side of tciafs: the mount's context and the callback table. Only
 * main.c and fs.c include this header (and FUSE); everything below them is plain C.
 */
#ifndef TCIAFS_FS_H
#define TCIAFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

struct tree;

/* Everything a callback needs, reached through fuse_get_context()->private_data.
 * Set up by main() before mounting and read-only while mounted. */
struct tciafs {
	struct tree *tree;
	double entry_timeout;	/* seconds the kernel may keep names and attributes */
	double negative_timeout;	/* seconds the kernel may remember a missing name */
};

/* The callback table for fuse_new(). */
const struct fuse_operations *fs_operations(void);

#endif
