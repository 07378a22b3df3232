/* SPDX-License-Identifier: MIT
 * fs.h — the FUSE side of tciafs: the mount's context and the callback table. Only
 * main.c and the fs files (fs.c, fs_dir.c) include this header and FUSE; everything
 * below them is plain C.
 */
#ifndef TCIAFS_FS_H
#define TCIAFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <stdbool.h>

struct tree;
struct tciafs;

/* How the mount answers the kernel; set by main from the options. */
struct fs_opts {
	struct tree *tree;       /* borrowed; outlives the context */
	const char *spool_dir;   /* where big folder listings are spooled; borrowed */
	double entry_timeout;    /* seconds the kernel may keep names and attributes */
	double negative_timeout; /* seconds the kernel may remember a missing name */
	/* Seconds the kernel may keep a folder's listing without asking whether it still
	 * holds (the folder's attribute timeout, bounded by meta_ttl). */
	double listing_timeout;
	bool keep_listings; /* the kernel may keep listings (not with meta_ttl=0) */
	bool passthrough;   /* -o passthrough=on (the default) */
	bool acl_cache;     /* kernel-kept ACLs: only the mounting user looks (no allow_other) */
};

/* Makes the context every callback reaches through fuse_req_userdata(), before the
 * session starts. Returns 0 or -ENOMEM. */
int fs_new(const struct fs_opts *opts, struct tciafs **out);

/* The session the context answers for (the kernel's notifications go through it):
 * given once fuse_session_new() has made it, before it is mounted. */
void fs_set_session(struct tciafs *fs, struct fuse_session *se);

/* Frees the context and what the kernel still held open, after the session ended.
 * Accepts NULL. */
void fs_free(struct tciafs *fs);

/* The callback table for fuse_session_new() (the low-level API: inode numbers are ours,
 * each made into a path for the tree). */
const struct fuse_lowlevel_ops *fs_operations(void);

/* Makes the kernel drop every folder listing it keeps and its copy of every file
 * rendered from metadata (SIGHUP, a new release): the next look at each lists or
 * renders it again. */
void fs_forget_loaded(struct tciafs *fs);

/* What /.tciafs/status says of the FUSE side. */
struct fs_stats {
	unsigned long listings_made;     /* folder listings made for the kernel */
	unsigned long passthrough_opens; /* opens of stored files handed to the kernel */
	unsigned long stored_reads;      /* reads of stored files served by the daemon */
	unsigned long inodes_held;       /* inodes the kernel holds (the root aside) */
	unsigned long listings_held;     /* folder listings the kernel keeps */
	const char *read_path;           /* "passthrough" or "daemon" */
	const char *read_why;            /* why, in a few words */
};

void fs_stats(struct tciafs *fs, struct fs_stats *out);

#endif
