/* SPDX-License-Identifier: MIT
 * fs.c — the FUSE callbacks, on libfuse's low-level API: each one makes the path of the
 * inode it is given, makes one call into the tree and replies; no HTTP, JSON or zip
 * here. The inode table is ours and compact (number → parent and name), every
 * write-type call is answered EROFS, and stored files open in FUSE passthrough where the
 * kernel and libfuse allow it: their reads then never reach us.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_int.h"
#include "inodes.h"
#include "log.h"
#include "tree.h"

/* The passthrough ioctls on /dev/fuse (Linux 6.9, <linux/fuse.h>; Debian 12's kernel
 * headers predate them). libfuse 3.17 wraps them too; this works with any libfuse that
 * passes backing_id on. */
struct fs_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FS_IOC_BACKING_OPEN _IOW(229, 1, struct fs_backing_map)
#define FS_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* A backing file the kernel holds for one inode, shared by every open of it (the kernel
 * refuses a second, different backing file for an inode in use). */
struct fs_backing {
	fuse_ino_t ino;
	int id;
	unsigned refs;
	struct fs_backing *next;
};

/* What an open file is to us: the tree's file, and the backing it is read through in
 * passthrough (released with the last open of its inode). */
struct fs_handle {
	struct fs_open link; /* first: a handle is its link */
	struct tree_file *f;
	struct fs_backing *backing; /* NULL = read through the daemon */
};

/* ---- handles ---------------------------------------------------------------------- */

static const char *fs_read_path_name(const struct tciafs *fs, const char **why)
{
	static const char *const whys[] = {
		[FS_READ_UNKNOWN] = "not mounted yet",
		[FS_READ_PASSTHROUGH] = "FUSE passthrough: the kernel reads the cache directly",
		[FS_READ_DAEMON_OFF] = "-o passthrough=off",
		[FS_READ_DAEMON_LIBFUSE] = "built with a libfuse without passthrough (before 3.16)",
		[FS_READ_DAEMON_KERNEL] =
			"the kernel offers no FUSE passthrough (Linux 6.9 or later "
			"has it)",
		[FS_READ_DAEMON_PRIV] =
			"passthrough refused: it needs CAP_SYS_ADMIN (mount as root)",
	};
	int p = __atomic_load_n(&fs->read_path, __ATOMIC_RELAXED);

	if (p < 0 || p > FS_READ_DAEMON_PRIV)
		p = FS_READ_UNKNOWN;
	*why = whys[p];
	return p == FS_READ_PASSTHROUGH ? "passthrough" : "daemon";
}

static void fs_set_read_path(struct tciafs *fs, enum fs_read_path p)
{
	const char *why, *name;

	__atomic_store_n(&fs->read_path, p, __ATOMIC_RELAXED);
	name = fs_read_path_name(fs, &why);
	log_info("reads of stored files: %s (%s)", name, why);
}

/* Asks for passthrough when the kernel offers it; whether it is granted shows at the
 * first open (the ioctl needs CAP_SYS_ADMIN). */
static void fs_init_passthrough(struct tciafs *fs, struct fuse_conn_info *conn)
{
#ifdef FUSE_CAP_PASSTHROUGH
	if (!fs->o.passthrough) {
		fs_set_read_path(fs, FS_READ_DAEMON_OFF);
	} else if (!(conn->capable & FUSE_CAP_PASSTHROUGH)) {
		fs_set_read_path(fs, FS_READ_DAEMON_KERNEL);
	} else {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		/* Backing files on a plain disk; another stacked fs may sit over us. */
		conn->max_backing_stack_depth = FUSE_BACKING_STACKED_UNDER;
		fs_set_read_path(fs, FS_READ_PASSTHROUGH);
	}
#else
	(void)conn;
	fs_set_read_path(fs, fs->o.passthrough ? FS_READ_DAEMON_LIBFUSE : FS_READ_DAEMON_OFF);
#endif
}

#ifdef FUSE_CAP_PASSTHROUGH
/* Hands a stored file's fd to the kernel as a backing file. Returns the backing id, or
 * 0 when files are to be read through the daemon. */
static int fs_backing_new(struct tciafs *fs, int fd)
{
	struct fs_backing_map map = { .fd = fd };
	int id;

	id = ioctl(fuse_session_fd(fs->se), FS_IOC_BACKING_OPEN, &map);
	if (id > 0)
		return id;
	if (errno == EPERM) {
		int expect = FS_READ_PASSTHROUGH;

		/* Said once, by whichever open saw it first. */
		if (__atomic_compare_exchange_n(&fs->read_path, &expect, FS_READ_DAEMON_PRIV, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			fs_set_read_path(fs, FS_READ_DAEMON_PRIV);
	} else {
		log_warn("passthrough for a stored file failed (%s): it is read through the "
			 "daemon",
			 strerror(errno));
	}
	return 0;
}

static struct fs_backing *fs_backing_find(struct tciafs *fs, fuse_ino_t ino)
{
	struct fs_backing *b;

	for (b = fs->backings; b; b = b->next)
		if (b->ino == ino)
			return b;
	return NULL;
}
#endif

static void fs_backing_close(struct tciafs *fs, int id)
{
	uint32_t arg = (uint32_t)id;

	if (ioctl(fuse_session_fd(fs->se), FS_IOC_BACKING_CLOSE, &arg) < 0)
		log_warn("releasing a passthrough backing file: %s", strerror(errno));
}

/* The backing for an open of ino whose stored file is fd: the one its other opens use,
 * else a new one. NULL when the file is read through the daemon. */
static struct fs_backing *fs_backing_get(struct tciafs *fs, fuse_ino_t ino, int fd)
{
#ifdef FUSE_CAP_PASSTHROUGH
	struct fs_backing *b, *nb;
	int id;

	if (fd < 0 || __atomic_load_n(&fs->read_path, __ATOMIC_RELAXED) != FS_READ_PASSTHROUGH)
		return NULL;
	pthread_mutex_lock(&fs->backing_lock);
	b = fs_backing_find(fs, ino);
	if (b)
		b->refs++;
	pthread_mutex_unlock(&fs->backing_lock);
	if (b)
		return b;
	id = fs_backing_new(fs, fd); /* an ioctl: not under the lock */
	if (id <= 0)
		return NULL;
	nb = calloc(1, sizeof(*nb));
	if (!nb) {
		fs_backing_close(fs, id);
		return NULL;
	}
	nb->ino = ino;
	nb->id = id;
	nb->refs = 1;
	pthread_mutex_lock(&fs->backing_lock);
	b = fs_backing_find(fs, ino); /* another open of it may have won */
	if (b) {
		b->refs++;
	} else {
		nb->next = fs->backings;
		fs->backings = nb;
	}
	pthread_mutex_unlock(&fs->backing_lock);
	if (b) {
		fs_backing_close(fs, id);
		free(nb);
		return b;
	}
	return nb;
#else
	(void)fs;
	(void)ino;
	(void)fd;
	return NULL;
#endif
}

static void fs_backing_put(struct tciafs *fs, struct fs_backing *b)
{
	struct fs_backing **p;
	bool last;

	if (!b)
		return;
	pthread_mutex_lock(&fs->backing_lock);
	last = --b->refs == 0;
	if (last)
		for (p = &fs->backings; *p; p = &(*p)->next)
			if (*p == b) {
				*p = b->next;
				break;
			}
	pthread_mutex_unlock(&fs->backing_lock);
	if (!last)
		return;
	fs_backing_close(fs, b->id);
	free(b);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tciafs *fs = userdata;

	/* Big reads and readahead: DICOM files are read whole, front to back. */
	conn->max_readahead = 4 << 20;
	/* Replies from stored files go fd → pipe → /dev/fuse with splice, never through a
	 * buffer of ours (SPLICE_WRITE is the reply direction in libfuse's terms). */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* Always READDIRPLUS, never a switch to READDIR half way through a folder: every
	 * listing carries full attributes anyway. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Lookups and listings in one folder at once: an open by UID waits for the archive,
	 * and must not hold up the next one (the kernel serializes them otherwise; the
	 * high-level API asked for this itself). */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* ls -l asks every file for its ACLs: with POSIX ACLs on (the mount has
	 * default_permissions already), the kernel keeps each inode's answer (none) instead
	 * of asking us again on every listing (a warm ls -l: one request a file, not three).
	 * Not on a mount others may use: for them the kernel would then ask for a folder's
	 * ACL before it lets them in, one more request per folder of a cold walk. */
	if (fs->o.acl_cache && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* Every listing kept by the kernel, and no opendir or releasedir at all (a warm walk
	 * asks us nothing): the first opendir answers ENOSYS. The kernel checks a kept
	 * listing when the folder's attributes time out (auto_inval_data makes it look);
	 * fs_listing_check then drops it if its load changed. */
	if (fs->o.keep_listings && (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
	    (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;
		fs->no_opendir = true;
	}
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
	/* A big file read by range opens with direct I/O; a reader that maps it (numpy's
	 * memmap, a slide library) may still: its pages then come through fs_read. */
	if (conn->capable & FUSE_CAP_DIRECT_IO_ALLOW_MMAP)
		conn->want |= FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
#endif
	fs_init_passthrough(fs, conn);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	struct fuse_entry_param e;
	char path[PATH_MAX];
	bool rendered = false;
	fuse_ino_t ino;
	struct stat st;
	int rc;

	rc = fs_path(fs, parent, name, path);
	if (rc == 0)
		rc = tree_stat(fs->o.tree, path, &who, &st, &rendered);
	/* Without opendir, a by-UID folder's UID is checked here: a readdir's ENOENT would
	 * look like an empty folder (glibc hides it). */
	if (rc == 0 && fs->no_opendir && S_ISDIR(st.st_mode))
		rc = tree_opendir(fs->o.tree, path, &who);
	if (rc == -ENOENT && fs->o.negative_timeout > 0) {
		/* Remembered by the kernel for a while: probes of missing names are many. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->o.negative_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	ino = inodes_get(fs->inodes, parent, name);
	if (!ino) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (rendered)
		inodes_set_rendered(fs->inodes, ino);
	fs_entry(fs, ino, &st, rendered, &e);
	fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inodes_put(fs_ctx(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		inodes_put(fs_ctx(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	char path[PATH_MAX];
	bool rendered = false;
	struct stat st;
	int rc;

	(void)fi;
	rc = fs_path(fs, ino, NULL, path);
	if (rc == 0)
		rc = tree_stat(fs->o.tree, path, &who, &st, &rendered);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->no_opendir && S_ISDIR(st.st_mode))
		fs_listing_check(fs, ino, path);
	st.st_ino = ino;
	fuse_reply_attr(req, &st, fs_attr_timeout(fs, &st, rendered));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t rc;

	rc = fs_path(fs_ctx(req), ino, NULL, path);
	if (rc == 0)
		rc = tree_readlink(fs_ctx(req)->o.tree, path, target, sizeof(target));
	if (rc < 0)
		fuse_reply_err(req, (int)-rc);
	else
		fuse_reply_readlink(req, target);
}

static void fs_handle_free(struct tciafs *fs, struct fs_handle *h)
{
	fs_open_untrack(fs, &h->link);
	fs_backing_put(fs, h->backing);
	tree_close(h->f); /* the series may be evicted from now on */
	free(h);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	struct fs_handle *h = calloc(1, sizeof(*h));
	char path[PATH_MAX];
	int rc;

	rc = h ? fs_path(fs, ino, NULL, path) : -ENOMEM;
	if (rc == 0)
		rc = tree_open(fs->o.tree, path, fi->flags, &who, &h->f);
	if (rc < 0) {
		free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	fs_open_track(fs, &h->link, false);
	if (tree_file_live(h->f)) {
		fi->direct_io = 1; /* made fresh on each open: never from the page cache */
	} else if (tree_file_partial(h->f)) {
		/* Read by range through the daemon: its cache file is not whole yet. Not
		 * through the page cache either: an inode's cached opens and passthrough
		 * opens exclude each other (the kernel fails the second with EIO), and
		 * other opens of it pass through once it is whole. */
		fi->direct_io = 1;
	} else {
		/* The kernel reads a stored file itself; its pages are the cache file's. */
		h->backing = fs_backing_get(fs, ino, tree_file_fd(h->f));
		if (h->backing) {
#ifdef FUSE_CAP_PASSTHROUGH
			fi->backing_id = h->backing->id;
#endif
			__atomic_add_fetch(&fs->passthrough_opens, 1, __ATOMIC_RELAXED);
		} else {
			/* A stored file does not change: keep its pages across opens (not
			 * with passthrough: the kernel refuses it there). A rendered one may
			 * with each load: its pages go at each open (it is rendered then). */
			fi->keep_cache = tree_file_stored(h->f);
		}
	}
	/* -ENOENT: the caller was interrupted and is gone; no release will come. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		fs_handle_free(fs, h);
}

/* Stored files are handed over as a file descriptor, so libfuse can splice them to the
 * kernel instead of copying through a buffer. */
static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct tree_file *f = ((struct fs_handle *)(uintptr_t)fi->fh)->f;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	ssize_t n;
	char *mem;

	(void)ino;
	if (tree_file_partial(f)) {
		struct caller who = fs_caller(req);
		int rc = tree_need(f, off, size, &who);

		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	if (tree_file_fd(f) >= 0) {
		__atomic_add_fetch(&fs_ctx(req)->stored_reads, 1, __ATOMIC_RELAXED);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = tree_file_fd(f);
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	mem = malloc(size ? size : 1);
	if (!mem) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = tree_read(f, mem, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, mem, (size_t)n);
	free(mem);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fs_handle_free(fs_ctx(req), (struct fs_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* getxattr and listxattr: size 0 asks for the size needed. */
static void fs_xattr_reply(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tciafs *fs = fs_ctx(req);
	char path[PATH_MAX], *buf = NULL;
	ssize_t rc;

	rc = fs_path(fs, ino, NULL, path);
	if (rc == 0 && size && !(buf = malloc(size)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = name ? tree_getxattr(fs->o.tree, path, name, buf, size)
			  : tree_listxattr(fs->o.tree, path, buf, size);
	if (rc < 0)
		fuse_reply_err(req, (int)-rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fs_xattr_reply(req, ino, name, size);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	fs_xattr_reply(req, ino, NULL, size);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {
		.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255, .f_flag = ST_RDONLY
	};

	(void)ino;
	fuse_reply_statfs(req, &sv);
}

/* ---- life cycle and statistics ------------------------------------------------------ */

int fs_new(const struct fs_opts *opts, struct tciafs **out)
{
	struct tciafs *fs = calloc(1, sizeof(*fs));

	*out = NULL;
	if (!fs)
		return -ENOMEM;
	if (inodes_new(&fs->inodes) < 0) {
		free(fs);
		return -ENOMEM;
	}
	fs->o = *opts;
	pthread_mutex_init(&fs->backing_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	*out = fs;
	return 0;
}

void fs_set_session(struct tciafs *fs, struct fuse_session *se)
{
	fs->se = se;
}

void fs_free(struct tciafs *fs)
{
	struct fs_backing *b;

	if (!fs)
		return;

	/* The kernel let go of its backing files with the session; ours are just memory. */
	while ((b = fs->backings) != NULL) {
		fs->backings = b->next;
		free(b);
	}
	while (fs->opens) {
		struct fs_open *o = fs->opens;

		fs->opens = o->next;
		if (o->dir) {
			fs_dir_free((struct fs_dir *)o);
		} else {
			tree_close(((struct fs_handle *)o)->f);
			free(o);
		}
	}
	fs_dir_free_reading(fs);
	inodes_free(fs->inodes);
	pthread_mutex_destroy(&fs->backing_lock);
	pthread_mutex_destroy(&fs->open_lock);
	free(fs);
}

void fs_stats(struct tciafs *fs, struct fs_stats *out)
{
	out->listings_made = __atomic_load_n(&fs->listings_made, __ATOMIC_RELAXED);
	out->passthrough_opens = __atomic_load_n(&fs->passthrough_opens, __ATOMIC_RELAXED);
	out->stored_reads = __atomic_load_n(&fs->stored_reads, __ATOMIC_RELAXED);
	inodes_held(fs->inodes, &out->inodes_held, &out->listings_held);
	out->read_path = fs_read_path_name(fs, &out->read_why);
}

/* ---- the archive is read-only -------------------------------------------------------
 * The mount is read-only too (-o ro), so the kernel refuses these itself; answered all
 * the same in case it is ever remounted read-write. */
static void fs_erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void fs_erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			     struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fs_erofs(req);
}

static void fs_erofs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fs_erofs(req);
}

static void fs_erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fs_erofs(req);
}

static void fs_erofs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fs_erofs(req);
}

static void fs_erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	fs_erofs(req);
}

static void fs_erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			    fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fs_erofs(req);
}

static void fs_erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fs_erofs(req);
}

static void fs_erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	fs_erofs(req);
}

static void fs_erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			    struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fs_erofs(req);
}

static void fs_erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			      size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fs_erofs(req);
}

static void fs_erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fs_erofs(req);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.statfs = fs_statfs,
	.setattr = fs_erofs_setattr,
	.mknod = fs_erofs_mknod,
	.mkdir = fs_erofs_mkdir,
	.unlink = fs_erofs_unlink,
	.rmdir = fs_erofs_unlink,
	.symlink = fs_erofs_symlink,
	.rename = fs_erofs_rename,
	.link = fs_erofs_link,
	.write = fs_erofs_write,
	.create = fs_erofs_create,
	.setxattr = fs_erofs_setxattr,
	.removexattr = fs_erofs_removexattr,
};

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &fs_ops;
}
