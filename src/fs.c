/* SPDX-License-Identifier: MIT
 * fs.c — the FUSE callbacks. Each one unpacks its arguments, makes one call into the
 * tree, and returns 0 or -errno; no HTTP, JSON or zip here. Every write-type call is
 * answered EROFS: the archive is read-only.
 */
#include "fs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "tree.h"

static struct tciafs *fs_ctx(void)
{
	return fuse_get_context()->private_data;
}

static bool fs_interrupted(void *arg)
{
	(void)arg;
	return fuse_interrupted() != 0;
}

/* Who is calling: the walk guard counts per process; a wait can be interrupted. */
static struct store_caller fs_caller(void)
{
	struct store_caller who = { fuse_get_context()->pid, fs_interrupted, NULL };

	return who;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct tciafs *fs = fs_ctx();

	/* Big reads and readahead: DICOM files are read whole, front to back. */
	conn->max_readahead = 4 << 20;
	/* Replies from stored files go fd → pipe → /dev/fuse with splice, never through a
	 * buffer of ours (SPLICE_WRITE is the reply direction in libfuse's terms). */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* The archive is immutable between refreshes: let the kernel cache names,
	 * attributes and file pages, and remember misses for a little while. */
	cfg->entry_timeout = fs->entry_timeout;
	cfg->attr_timeout = fs->entry_timeout;
	cfg->negative_timeout = fs->negative_timeout;
	cfg->kernel_cache = 1;
	return fs;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct store_caller who = fs_caller();

	(void)fi;
	return tree_stat(fs_ctx()->tree, path, &who, st);
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	ssize_t rc = tree_readlink(fs_ctx()->tree, path, buf, size);

	return rc < 0 ? (int)rc : 0;
}

struct fs_fill {
	void *buf;
	fuse_fill_dir_t filler;
	enum fuse_fill_dir_flags flags;
};

static int fs_fill_one(void *ctx, const char *name, const struct stat *st, bool complete)
{
	struct fs_fill *f = ctx;

	/* Without complete attributes, only the type goes out; the kernel asks later. */
	return f->filler(f->buf, name, st, 0, complete ? f->flags : 0);
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fs_fill f = { buf, filler, 0 };
	struct store_caller who = fs_caller();

	(void)off;
	(void)fi;
	/* Hand back full attributes (readdirplus) so ls -l and find need no stat each. */
	if (flags & FUSE_READDIR_PLUS)
		f.flags = FUSE_FILL_DIR_PLUS;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	return tree_list(fs_ctx()->tree, path, &who, fs_fill_one, &f);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct store_caller who = fs_caller();
	struct tree_file *f;
	int rc = tree_open(fs_ctx()->tree, path, fi->flags, &who, &f);

	if (rc < 0)
		return rc;
	fi->fh = (uintptr_t)f;
	if (tree_file_live(f)) {
		fi->direct_io = 1;	/* made fresh on each open: never from the page cache */
	} else {
		/* Stored and generated files do not change: keep pages across opens. */
		fi->keep_cache = 1;
	}
	return 0;
}

/* Stored files are handed over as a file descriptor, so libfuse can splice them to the
 * kernel instead of copying through a buffer. */
static int fs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct tree_file *f = (struct tree_file *)(uintptr_t)fi->fh;
	struct fuse_bufvec *bv;
	ssize_t n;
	char *mem;

	(void)path;
	bv = malloc(sizeof(*bv));
	if (!bv)
		return -ENOMEM;
	if (tree_file_fd(f) >= 0) {
		*bv = FUSE_BUFVEC_INIT(size);
		bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv->buf[0].fd = tree_file_fd(f);
		bv->buf[0].pos = off;
		*bufp = bv;
		return 0;
	}
	mem = malloc(size ? size : 1);
	if (!mem) {
		free(bv);
		return -ENOMEM;
	}
	n = tree_read(f, mem, size, off);
	if (n < 0) {
		free(mem);
		free(bv);
		return (int)n;
	}
	*bv = FUSE_BUFVEC_INIT((size_t)n);
	bv->buf[0].mem = mem;
	*bufp = bv;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)path;
	return (int)tree_read((struct tree_file *)(uintptr_t)fi->fh, buf, size, off);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	tree_close((struct tree_file *)(uintptr_t)fi->fh);
	return 0;
}

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	return (int)tree_getxattr(fs_ctx()->tree, path, name, value, size);
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	return (int)tree_listxattr(fs_ctx()->tree, path, list, size);
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY;
	return 0;
}

static int fs_erofs_path(const char *path)
{
	(void)path;
	return -EROFS;
}

static int fs_erofs_mode(const char *path, mode_t mode)
{
	(void)path;
	(void)mode;
	return -EROFS;
}

static int fs_erofs_two(const char *from, const char *to)
{
	(void)from;
	(void)to;
	return -EROFS;
}

static int fs_erofs_rename(const char *from, const char *to, unsigned int flags)
{
	(void)flags;
	return fs_erofs_two(from, to);
}

static int fs_erofs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	return fs_erofs_mode(path, mode);
}

static int fs_erofs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	(void)uid;
	(void)gid;
	(void)fi;
	return fs_erofs_path(path);
}

static int fs_erofs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)size;
	(void)fi;
	return fs_erofs_path(path);
}

static int fs_erofs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	return fs_erofs_mode(path, mode);
}

static int fs_erofs_mknod(const char *path, mode_t mode, dev_t dev)
{
	(void)dev;
	return fs_erofs_mode(path, mode);
}

static int fs_erofs_write(const char *path, const char *buf, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)buf;
	(void)size;
	(void)off;
	(void)fi;
	return fs_erofs_path(path);
}

static int fs_erofs_utimens(const char *path, const struct timespec tv[2],
			    struct fuse_file_info *fi)
{
	(void)tv;
	(void)fi;
	return fs_erofs_path(path);
}

static int fs_erofs_setxattr(const char *path, const char *name, const char *value,
			     size_t size, int flags)
{
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	return fs_erofs_path(path);
}

static int fs_erofs_removexattr(const char *path, const char *name)
{
	(void)name;
	return fs_erofs_path(path);
}

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.read_buf = fs_read_buf,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.statfs = fs_statfs,
	.mknod = fs_erofs_mknod,
	.mkdir = fs_erofs_mode,
	.unlink = fs_erofs_path,
	.rmdir = fs_erofs_path,
	.symlink = fs_erofs_two,
	.rename = fs_erofs_rename,
	.link = fs_erofs_two,
	.chmod = fs_erofs_chmod,
	.chown = fs_erofs_chown,
	.truncate = fs_erofs_truncate,
	.write = fs_erofs_write,
	.create = fs_erofs_create,
	.utimens = fs_erofs_utimens,
	.setxattr = fs_erofs_setxattr,
	.removexattr = fs_erofs_removexattr,
};

const struct fuse_operations *fs_operations(void)
{
	return &fs_ops;
}
