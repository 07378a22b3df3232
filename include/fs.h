/* SPDX-License-Identifier: MIT
 * fs.h — the FUSE side of tciafs: the mount's context and the callback table. Only
 * main.c and fs.c include this header (and FUSE); everything below them is plain C.
 */
#ifndef TCIAFS_FS_H
#define TCIAFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdbool.h>

struct tree;
struct fs_backing;
struct fs_open;
struct inodes;
struct fs_dir;

/* How reads of stored DICOM files are served. */
enum fs_read_path {
	FS_READ_UNKNOWN,        /* not mounted yet */
	FS_READ_PASSTHROUGH,    /* the kernel reads the cache file itself (FUSE passthrough) */
	FS_READ_DAEMON_OFF,     /* through the daemon: -o passthrough=off */
	FS_READ_DAEMON_LIBFUSE, /* through the daemon: built with a libfuse before 3.16 */
	FS_READ_DAEMON_KERNEL,  /* through the daemon: the kernel offers no passthrough */
	FS_READ_DAEMON_PRIV,    /* through the daemon: passthrough refused (needs CAP_SYS_ADMIN) */
};

/* Everything a callback needs, reached through fuse_req_userdata(). Set up by main()
 * before mounting (se once the session exists); read_path is decided at mount (and may
 * fall back once, at the first refused open), so it is read and written atomically. */
struct tciafs {
	struct tree *tree;
	struct fuse_session *se;
	const char *spool_dir;   /* where big folder listings are spooled (the cache folder) */
	double entry_timeout;    /* seconds the kernel may keep names and attributes */
	double negative_timeout; /* seconds the kernel may remember a missing name */
	/* Seconds the kernel may keep a folder's listing without asking whether it still
	 * holds (the folder's attribute timeout, bounded by meta_ttl). */
	double listing_timeout;
	bool keep_listings; /* the kernel may keep listings (not with meta_ttl=0) */
	bool no_opendir;    /* decided at mount: the kernel keeps listings without opendir */
	bool passthrough;   /* -o passthrough=on (the default) */
	bool acl_cache;     /* kernel-kept ACLs: only the mounting user looks (no allow_other) */
	int read_path;      /* enum fs_read_path; __atomic */
	unsigned long stored_reads;      /* reads of stored files we served; __atomic */
	unsigned long passthrough_opens; /* opens handed to the kernel; __atomic */
	unsigned long listings_made;     /* folder listings made for the kernel; __atomic */
	/* The kernel's inodes: number → parent and name, so that a path can be made for the
	 * tree, and the listing of each folder the kernel keeps (made by fs_setup). */
	struct inodes *inodes;
	/* The kernel allows one backing file per inode: opens of one inode share it. */
	pthread_mutex_t backing_lock;
	struct fs_backing *backings; /* under backing_lock */
	/* What the kernel holds open, files and folders: freed by fs_cleanup when the
	 * session ended before their release. */
	pthread_mutex_t open_lock;
	struct fs_open *opens;  /* under open_lock */
	struct fs_dir *reading; /* listings being read without opendir; open_lock */
};

/* Makes what the callbacks share (the inode table), before the session starts.
 * Returns 0 or -ENOMEM. */
int fs_setup(struct tciafs *fs);

/* Frees what the callbacks made, and what the kernel still held open, after the session
 * ended. */
void fs_cleanup(struct tciafs *fs);

/* The callback table for fuse_session_new() (the low-level API: inode numbers are ours,
 * each made into a path for the tree). */
const struct fuse_lowlevel_ops *fs_operations(void);

/* Makes the kernel drop every folder listing it keeps and its copy of every file
 * rendered from metadata (SIGHUP, a new release): the next look at each lists or
 * renders it again. */
void fs_forget_loaded(struct tciafs *fs);

/* What the kernel holds now: inodes (each a node of ours, the root aside) and folder
 * listings. */
void fs_held(struct tciafs *fs, unsigned long *inodes, unsigned long *listings);

/* Which read path a mount uses, as a word for status ("passthrough" or "daemon"), and
 * why in a few words. */
const char *fs_read_path_name(const struct tciafs *fs, const char **why);

#endif
