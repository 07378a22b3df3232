/* SPDX-License-Identifier: MIT
 * fs.h — the FUSE side of tciafs: the mount's context and the callback table. Only
 * main.c and fs.c include this header (and FUSE); everything below them is plain C.
 */
#ifndef TCIAFS_FS_H
#define TCIAFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include <pthread.h>
#include <stdbool.h>

struct tree;
struct fs_backing;
struct fs_stamps;
struct fs_open;

/* How reads of stored DICOM files are served. */
enum fs_read_path {
	FS_READ_UNKNOWN,	/* not mounted yet */
	FS_READ_PASSTHROUGH,	/* the kernel reads the cache file itself (FUSE passthrough) */
	FS_READ_DAEMON_OFF,	/* through the daemon: -o passthrough=off */
	FS_READ_DAEMON_LIBFUSE,	/* through the daemon: built with a libfuse before 3.16 */
	FS_READ_DAEMON_KERNEL,	/* through the daemon: the kernel offers no passthrough */
	FS_READ_DAEMON_PRIV,	/* through the daemon: passthrough refused (needs CAP_SYS_ADMIN) */
};

/* Everything a callback needs, reached through fuse_get_context()->private_data.
 * Set up by main() before mounting; read_path is decided at mount (and may fall back
 * once, at the first refused open), so it is read and written atomically. */
struct tciafs {
	struct tree *tree;
	const char *spool_dir;	/* where big folder listings are spooled (the cache folder) */
	double entry_timeout;	/* seconds the kernel may keep names and attributes */
	double negative_timeout;	/* seconds the kernel may remember a missing name */
	bool passthrough;	/* -o passthrough=on (the default) */
	int read_path;		/* enum fs_read_path; __atomic */
	unsigned long stored_reads;	/* reads of stored files we served; __atomic */
	unsigned long passthrough_opens;	/* opens handed to the kernel; __atomic */
	unsigned long listings_made;	/* folder listings made for the kernel; __atomic */
	unsigned long listings_kept;	/* opendirs told to keep the kernel's; __atomic */
	/* The kernel allows one backing file per inode: opens of one path share it. */
	pthread_mutex_t backing_lock;
	struct fs_backing *backings;	/* under backing_lock */
	/* Which listing the kernel was last given for each folder it may keep; made in
	 * fs_init, before any request (NULL: nothing is kept). */
	struct fs_stamps *stamps;
	/* What the kernel holds open, files and folders: freed by fs_cleanup when the
	 * session ended before their release. */
	pthread_mutex_t open_lock;
	struct fs_open *opens;		/* under open_lock */
};

/* Frees what the callbacks made, and what the kernel still held open, after the session
 * ended. */
void fs_cleanup(struct tciafs *fs);

/* The callback table for fuse_new(). */
const struct fuse_operations *fs_operations(void);

/* Which read path a mount uses, as a word for status ("passthrough" or "daemon"), and
 * why in a few words. */
const char *fs_read_path_name(const struct tciafs *fs, const char **why);

#endif
