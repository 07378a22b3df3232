/* SPDX-License-Identifier: MIT
 * fs_int.h — what fs.c (files, attributes, passthrough) and fs_dir.c (folder
 * listings) share: the context behind struct tciafs, the handles the kernel holds, and
 * the few helpers both call (inline here, so that fs_dir.c calls nothing of fs.c). Nothing outside
 * those two files includes it.
 */
#ifndef TCIAFS_FS_INT_H
#define TCIAFS_FS_INT_H

#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "caller.h"
#include "fs.h"
#include "inodes.h"

struct fs_backing;
struct fs_dir;
struct inodes;

/* How reads of stored DICOM files are served. */
enum fs_read_path {
	FS_READ_UNKNOWN,        /* not mounted yet */
	FS_READ_PASSTHROUGH,    /* the kernel reads the cache file itself (FUSE passthrough) */
	FS_READ_DAEMON_OFF,     /* through the daemon: -o passthrough=off */
	FS_READ_DAEMON_LIBFUSE, /* through the daemon: built with a libfuse before 3.16 */
	FS_READ_DAEMON_KERNEL,  /* through the daemon: the kernel offers no passthrough */
	FS_READ_DAEMON_PRIV,    /* through the daemon: passthrough refused (needs CAP_SYS_ADMIN) */
};

/* Each handle the kernel holds (a file's or a folder's), listed so that those it still
 * holds when the session ends (a stop while a file is open) are freed all the same. */
struct fs_open {
	struct fs_open *prev, *next;
	bool dir;
};

/* read_path is decided at mount (and may fall back once, at the first refused open), so
 * it is read and written atomically, as are the counters. */
struct tciafs {
	struct fs_opts o;
	struct fuse_session *se;
	bool no_opendir; /* decided at mount: the kernel keeps listings without opendir */
	int read_path;   /* enum fs_read_path; __atomic */
	unsigned long stored_reads;      /* __atomic */
	unsigned long passthrough_opens; /* __atomic */
	unsigned long listings_made;     /* __atomic */
	/* The kernel's inodes: number → parent and name, so that a path can be made for the
	 * tree, and the listing of each folder the kernel keeps. */
	struct inodes *inodes;
	/* The kernel allows one backing file per inode: opens of one inode share it. */
	pthread_mutex_t backing_lock;
	struct fs_backing *backings; /* under backing_lock */
	/* What the kernel holds open, files and folders: freed by fs_free when the
	 * session ended before their release. */
	pthread_mutex_t open_lock;
	struct fs_open *opens;  /* under open_lock */
	struct fs_dir *reading; /* listings being read without opendir; open_lock */
};

static inline struct tciafs *fs_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- helpers of both ---------------------------------------------------------------- */

/* The path of ino (with "/name" after it when name is given) in buf of PATH_MAX bytes. */
static inline int fs_path(struct tciafs *fs, fuse_ino_t ino, const char *name, char *buf)
{
	return inodes_path(fs->inodes, ino, name, buf, PATH_MAX);
}

/* Each handle the kernel is given is listed until its release (fs_free frees the rest). */
static inline void fs_open_track(struct tciafs *fs, struct fs_open *o, bool dir)
{
	o->dir = dir;
	o->prev = NULL;
	pthread_mutex_lock(&fs->open_lock);
	o->next = fs->opens;
	if (fs->opens)
		fs->opens->prev = o;
	fs->opens = o;
	pthread_mutex_unlock(&fs->open_lock);
}

static inline void fs_open_untrack(struct tciafs *fs, struct fs_open *o)
{
	pthread_mutex_lock(&fs->open_lock);
	if (o->prev)
		o->prev->next = o->next;
	else
		fs->opens = o->next;
	if (o->next)
		o->next->prev = o->prev;
	pthread_mutex_unlock(&fs->open_lock);
}

static inline bool fs_interrupted(void *arg)
{
	return fuse_req_interrupted(arg) != 0;
}

/* Who is calling: the walk guard counts per process; a wait can be interrupted. */
static inline struct caller fs_caller(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct caller who = {
		.pid = ctx->pid, .uid = ctx->uid, .interrupted = fs_interrupted, .arg = req
	};

	return who;
}

/* A folder's attributes time out with the listing the kernel keeps: their next GETATTR
 * is when fs_listing_check looks at it again. A rendered file's (collection.json, a
 * table, …) time out with the load it comes from, so that a refresh shows its size. */
static inline double fs_attr_timeout(const struct tciafs *fs, const struct stat *st, bool rendered)
{
	if (fs->no_opendir && S_ISDIR(st->st_mode))
		return fs->o.listing_timeout;
	return rendered ? fs->o.listing_timeout : fs->o.entry_timeout;
}

/* The archive is immutable between refreshes: the kernel keeps names and attributes. */
static inline void fs_entry(struct tciafs *fs, fuse_ino_t ino, const struct stat *st, bool rendered,
			    struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->attr = *st;
	e->attr.st_ino = e->ino;
	e->attr_timeout = fs_attr_timeout(fs, st, rendered);
	e->entry_timeout = fs->o.entry_timeout;
}

/* ---- fs_dir.c ---------------------------------------------------------------------- */

void fs_dir_free(struct fs_dir *d);

/* Frees the listings being read without opendir (at the session's end). */
void fs_dir_free_reading(struct tciafs *fs);

/* Whether the kernel's listing of a folder still holds, checked when its attributes
 * time out: a changed one is dropped. */
void fs_listing_check(struct tciafs *fs, fuse_ino_t ino, const char *path);

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
