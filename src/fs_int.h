/* SPDX-License-Identifier: MIT
 * fs_int.h — what fs.c (files, attributes, passthrough) and fs_dir.c (folder
 * listings) share: the context behind struct tciafs, the handles the kernel holds, and
 * the few helpers both call. Nothing outside those two files includes it.
 */
#ifndef TCIAFS_FS_INT_H
#define TCIAFS_FS_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "caller.h"
#include "fs.h"

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

/* ---- fs.c -------------------------------------------------------------------------- */

/* The path of ino (with "/name" after it when name is given) in buf of PATH_MAX bytes. */
int fs_path(struct tciafs *fs, fuse_ino_t ino, const char *name, char *buf);

/* Who is calling: the walk guard counts per process; a wait can be interrupted. */
struct caller fs_caller(fuse_req_t req);

void fs_open_track(struct tciafs *fs, struct fs_open *o, bool dir);
void fs_open_untrack(struct tciafs *fs, struct fs_open *o);

/* An entry for the kernel: st as ino's attributes, timed out as a rendered file's when
 * rendered is set (see fs_attr_timeout). */
void fs_entry(struct tciafs *fs, fuse_ino_t ino, const struct stat *st, bool rendered,
	      struct fuse_entry_param *e);

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
