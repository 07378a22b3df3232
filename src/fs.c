/* SPDX-License-Identifier: MIT
 * fs.c — the FUSE callbacks. Each one unpacks its arguments, makes one call into the
 * tree, and returns 0 or -errno; no HTTP, JSON or zip here. Every write-type call is
 * answered EROFS: the archive is read-only.
 */
#include "fs.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/statvfs.h>

#include "tree.h"

static struct tciafs *fs_ctx(void)
{
	return fuse_get_context()->private_data;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct tciafs *fs = fs_ctx();

	(void)conn;
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
	(void)fi;
	return tree_stat(fs_ctx()->tree, path, st);
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

	(void)off;
	(void)fi;
	/* Hand back full attributes (readdirplus) so ls -l and find need no stat each. */
	if (flags & FUSE_READDIR_PLUS)
		f.flags = FUSE_FILL_DIR_PLUS;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	return tree_list(fs_ctx()->tree, path, fs_fill_one, &f);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct tree_file *f;
	int rc = tree_open(fs_ctx()->tree, path, fi->flags, &f);

	if (rc < 0)
		return rc;
	fi->fh = (uintptr_t)f;
	/* The content is fixed until the metadata is refreshed: keep pages across opens. */
	fi->keep_cache = 1;
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
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
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
