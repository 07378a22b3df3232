/* SPDX-License-Identifier: MIT
 * fs.c — the FUSE callbacks. Each one unpacks its arguments, makes one call into the
 * tree, and returns 0 or -errno; no HTTP, JSON or zip here. Every write-type call is
 * answered EROFS: the archive is read-only. Stored files open in FUSE passthrough where
 * the kernel and libfuse allow it: their reads then never reach us.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "log.h"
#include "tree.h"

/* The passthrough ioctls on /dev/fuse (Linux 6.9, <linux/fuse.h>; Debian 12's kernel
 * headers predate them). libfuse 3.17 wraps them for the low-level API only, which
 * hands out the request; the high-level API has the session's fd. */
struct fs_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FS_IOC_BACKING_OPEN _IOW(229, 1, struct fs_backing_map)
#define FS_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* A backing file the kernel holds for one path, shared by every open of that path
 * (the kernel refuses a second, different backing file for an inode in use). */
struct fs_backing {
	char *path;
	int id;
	unsigned refs;
	struct fs_backing *next;
};

/* Each handle the kernel holds (a file's or a folder's), listed so that those it still
 * holds when the session ends (a stop while a file is open) are freed all the same. */
struct fs_open {
	struct fs_open *prev, *next;
	bool dir;
};

/* What an open file is to us: the tree's file, and the backing it is read through in
 * passthrough (released with the last open of its path). */
struct fs_handle {
	struct fs_open link;	/* first: a handle is its link */
	struct tree_file *f;
	struct fs_backing *backing;	/* NULL = read through the daemon */
};

static struct tciafs *fs_ctx(void)
{
	return fuse_get_context()->private_data;
}

static void fs_open_track(struct tciafs *fs, struct fs_open *o, bool dir)
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

static void fs_open_untrack(struct tciafs *fs, struct fs_open *o)
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

static bool fs_interrupted(void *arg)
{
	(void)arg;
	return fuse_interrupted() != 0;
}

/* Who is calling: the walk guard counts per process; a wait can be interrupted. */
static struct store_caller fs_caller(void)
{
	struct store_caller who = { .pid = fuse_get_context()->pid, .interrupted = fs_interrupted };

	return who;
}

const char *fs_read_path_name(const struct tciafs *fs, const char **why)
{
	static const char *const whys[] = {
		[FS_READ_UNKNOWN] = "not mounted yet",
		[FS_READ_PASSTHROUGH] = "FUSE passthrough: the kernel reads the cache directly",
		[FS_READ_DAEMON_OFF] = "-o passthrough=off",
		[FS_READ_DAEMON_LIBFUSE] = "built with a libfuse without passthrough (before 3.16)",
		[FS_READ_DAEMON_KERNEL] = "the kernel offers no FUSE passthrough (Linux 6.9 or later "
					  "has it)",
		[FS_READ_DAEMON_PRIV] = "passthrough refused: it needs CAP_SYS_ADMIN (mount as root)",
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
	if (!fs->passthrough) {
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
	fs_set_read_path(fs, fs->passthrough ? FS_READ_DAEMON_LIBFUSE : FS_READ_DAEMON_OFF);
#endif
}

#ifdef FUSE_CAP_PASSTHROUGH
/* Hands a stored file's fd to the kernel as a backing file. Returns the backing id, or
 * 0 when files are to be read through the daemon. */
static int fs_backing_new(struct tciafs *fs, int fd)
{
	struct fs_backing_map map = { .fd = fd };
	int id;

	id = ioctl(fuse_session_fd(fuse_get_session(fuse_get_context()->fuse)),
		   FS_IOC_BACKING_OPEN, &map);
	if (id > 0)
		return id;
	if (errno == EPERM) {
		int expect = FS_READ_PASSTHROUGH;

		/* Said once, by whichever open saw it first. */
		if (__atomic_compare_exchange_n(&fs->read_path, &expect, FS_READ_DAEMON_PRIV,
						false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			fs_set_read_path(fs, FS_READ_DAEMON_PRIV);
	} else {
		log_warn("passthrough for a stored file failed (%s): it is read through the "
			 "daemon", strerror(errno));
	}
	return 0;
}
#endif

static void fs_backing_close(int id)
{
	uint32_t arg = (uint32_t)id;

	if (ioctl(fuse_session_fd(fuse_get_session(fuse_get_context()->fuse)),
		  FS_IOC_BACKING_CLOSE, &arg) < 0)
		log_warn("releasing a passthrough backing file: %s", strerror(errno));
}

#ifdef FUSE_CAP_PASSTHROUGH
static struct fs_backing *fs_backing_find(struct tciafs *fs, const char *path)
{
	struct fs_backing *b;

	for (b = fs->backings; b; b = b->next)
		if (strcmp(b->path, path) == 0)
			return b;
	return NULL;
}
#endif

/* The backing for an open of path whose stored file is fd: the one its other opens
 * use, else a new one. NULL when the file is read through the daemon. */
static struct fs_backing *fs_backing_get(struct tciafs *fs, const char *path, int fd)
{
#ifdef FUSE_CAP_PASSTHROUGH
	struct fs_backing *b, *nb;
	int id;

	if (fd < 0 || __atomic_load_n(&fs->read_path, __ATOMIC_RELAXED) != FS_READ_PASSTHROUGH)
		return NULL;
	pthread_mutex_lock(&fs->backing_lock);
	b = fs_backing_find(fs, path);
	if (b)
		b->refs++;
	pthread_mutex_unlock(&fs->backing_lock);
	if (b)
		return b;
	id = fs_backing_new(fs, fd);	/* an ioctl: not under the lock */
	if (id <= 0)
		return NULL;
	nb = calloc(1, sizeof(*nb));
	if (nb)
		nb->path = strdup(path);
	if (!nb || !nb->path) {
		free(nb);
		fs_backing_close(id);
		return NULL;
	}
	nb->id = id;
	nb->refs = 1;
	pthread_mutex_lock(&fs->backing_lock);
	b = fs_backing_find(fs, path);	/* another open of it may have won */
	if (b) {
		b->refs++;
	} else {
		nb->next = fs->backings;
		fs->backings = nb;
	}
	pthread_mutex_unlock(&fs->backing_lock);
	if (b) {
		fs_backing_close(id);
		free(nb->path);
		free(nb);
		return b;
	}
	return nb;
#else
	(void)fs;
	(void)path;
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
	fs_backing_close(b->id);
	free(b->path);
	free(b);
}

static struct fs_stamps *fs_stamps_new(void);

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
	/* Always READDIRPLUS, never a switch to READDIR half way through a folder: every
	 * listing carries full attributes anyway, and libfuse 3.17's buffered listings lose
	 * entries when the kernel changes between the two (a 1,000-link folder listed 169). */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* The archive is immutable between refreshes: let the kernel cache names,
	 * attributes and file pages, and remember misses for a little while. */
	cfg->entry_timeout = fs->entry_timeout;
	cfg->attr_timeout = fs->entry_timeout;
	cfg->negative_timeout = fs->negative_timeout;
	/* Not cfg->kernel_cache: it would add keep_cache to every open, and the kernel
	 * refuses a passthrough open that has it. fs_open sets it file by file. */
	/* A caller's Ctrl-C must reach a wait for a download (fuse_interrupted); libfuse
	 * 3.17's high-level API ignores FUSE_INTERRUPT unless asked (earlier ones pass it
	 * on without being asked, and without signalling our threads). */
#if FUSE_MAJOR_VERSION > 3 || (FUSE_MAJOR_VERSION == 3 && FUSE_MINOR_VERSION >= 17)
	cfg->intr = 1;
#endif
	/* The stamps of the listings the kernel keeps: made here, before any request, so
	 * the callbacks share it without care. Without it nothing is kept. */
	fs->stamps = fs_stamps_new();
	fs_init_passthrough(fs, conn);
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

/* An open folder's listing, made at its first read and spooled: in memory while small,
 * past FS_DIR_MEM in an unlinked file under the cache folder, so that a folder of
 * 200,000 entries costs the daemon no more memory than a small one, and each readdir
 * call resumes at its offset (the byte offset of the next record). */
#define FS_DIR_MEM ((size_t)256 * 1024)
/* Entries given with their attributes (readdirplus) per listing: libfuse keeps a node for
 * each until the kernel forgets it, so a folder of 200,000 links would cost some 30 MB of
 * them. Past this many, entries go out with their type only; a stat asks for the rest. */
#define FS_DIR_PLUS_MAX 4096

struct fs_dirent {		/* a record's head; the name and its NUL follow */
	uint32_t size;		/* the whole record, padded to 8 bytes */
	uint8_t complete;
	struct stat st;
};

struct fs_dir {
	struct fs_open link;	/* first: a listing is its link */
	bool listed;
	bool stamped;		/* stamp applies: record it once listed */
	uint64_t stamp;
	size_t count;		/* entries added */
	char *buf;		/* the records (fd < 0), or the write/read window (fd >= 0) */
	size_t len;		/* bytes in buf */
	int fd;			/* the spool file, -1 while in memory */
	off_t size;		/* bytes in the spool file */
	off_t win;		/* file offset of buf when used as a read window */
	int rc;			/* a spooling failure */
};

static void fs_dir_free(struct fs_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d->buf);
	free(d);
}

static int fs_dir_spill(struct fs_dir *d)
{
	const char *dir = fs_ctx()->spool_dir ? fs_ctx()->spool_dir : "/tmp";

	if (d->fd < 0) {
		d->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (d->fd < 0)
			return -errno;
	}
	if (pwrite(d->fd, d->buf, d->len, d->size) != (ssize_t)d->len)
		return errno ? -errno : -EIO;
	d->size += (off_t)d->len;
	d->len = 0;
	return 0;
}

static int fs_dir_add(void *ctx, const char *name, const struct stat *st, bool complete)
{
	struct fs_dir *d = ctx;
	size_t n = strlen(name) + 1, rec = (sizeof(struct fs_dirent) + n + 7) & ~(size_t)7;
	struct fs_dirent *e;

	if (d->rc)
		return 1;
	if (d->len + rec > FS_DIR_MEM && (d->rc = fs_dir_spill(d)) < 0)
		return 1;
	e = (struct fs_dirent *)(d->buf + d->len);
	memset(e, 0, rec);
	e->size = (uint32_t)rec;
	e->complete = complete && ++d->count <= FS_DIR_PLUS_MAX;
	e->st = *st;
	memcpy((char *)(e + 1), name, n);
	d->len += rec;
	return 0;
}

/* ---- listings the kernel keeps ------------------------------------------------------
 *
 * A folder whose listing comes from one catalog load is opened with cache_readdir: the
 * kernel keeps its listing and a warm walk reads it without asking. Each opendir (which
 * does reach us) compares the folder's stamp now with the stamp of the listing the
 * kernel was last given: the same, and the kernel keeps its copy (keep_cache); changed
 * (a new load, a SIGHUP), and it drops it and reads the folder again. */
#define FS_STAMP_BUCKETS 65536

struct fs_stamp {
	struct fs_stamp *next;
	uint64_t stamp;
	char path[];
};

struct fs_stamps {
	pthread_mutex_t lock;
	struct fs_stamp *b[FS_STAMP_BUCKETS];
};

static uint32_t fs_path_hash(const char *p)
{
	uint32_t h = 2166136261u;

	while (*p)
		h = (h ^ (unsigned char)*p++) * 16777619u;
	return h % FS_STAMP_BUCKETS;
}

static struct fs_stamps *fs_stamps_new(void)
{
	struct fs_stamps *st = calloc(1, sizeof(*st));

	if (st)
		pthread_mutex_init(&st->lock, NULL);
	return st;
}

/* The entry of path, or NULL. Under st->lock. */
static struct fs_stamp *fs_stamp_find(struct fs_stamps *st, const char *path, uint32_t h)
{
	struct fs_stamp *e;

	for (e = st->b[h]; e; e = e->next)
		if (strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

/* Whether the kernel's listing of path (if it has one) is the one stamped. */
static bool fs_stamp_same(struct fs_stamps *st, const char *path, uint64_t stamp)
{
	struct fs_stamp *e;
	bool same;

	pthread_mutex_lock(&st->lock);
	e = fs_stamp_find(st, path, fs_path_hash(path));
	same = e && e->stamp == stamp;
	pthread_mutex_unlock(&st->lock);
	return same;
}

static void fs_stamp_set(struct fs_stamps *st, const char *path, uint64_t stamp)
{
	uint32_t h = fs_path_hash(path);
	struct fs_stamp *e;
	size_t n = strlen(path) + 1;

	pthread_mutex_lock(&st->lock);
	e = fs_stamp_find(st, path, h);
	if (!e && (e = malloc(sizeof(*e) + n)) != NULL) {
		memcpy(e->path, path, n);
		e->next = st->b[h];
		st->b[h] = e;
	}
	if (e)
		e->stamp = stamp;
	pthread_mutex_unlock(&st->lock);
}

void fs_cleanup(struct tciafs *fs)
{
	struct fs_stamps *st = fs->stamps;
	struct fs_stamp *e, *next;
	struct fs_backing *b;
	size_t i;

	/* The kernel let go of its backing files with the session; ours are just memory. */
	while ((b = fs->backings) != NULL) {
		fs->backings = b->next;
		free(b->path);
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
	if (!st)
		return;
	for (i = 0; i < FS_STAMP_BUCKETS; i++)
		for (e = st->b[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&st->lock);
	free(st);
	fs->stamps = NULL;
}

/* Makes the listing: ".", "..", then the tree's entries. */
static int fs_dir_list(struct fs_dir *d, const char *path)
{
	struct store_caller who = fs_caller();
	struct stat dot = { .st_mode = S_IFDIR };
	int rc;

	fs_dir_add(d, ".", &dot, false);
	fs_dir_add(d, "..", &dot, false);
	__atomic_add_fetch(&fs_ctx()->listings_made, 1, __ATOMIC_RELAXED);
	rc = tree_list(fs_ctx()->tree, path, &who, fs_dir_add, d);
	if (rc == 0)
		rc = d->rc;
	if (rc == 0 && d->fd >= 0)
		rc = fs_dir_spill(d);
	if (rc < 0)
		return rc;
	if (d->fd < 0)
		d->size = (off_t)d->len;
	else
		d->len = 0;	/* buf is a read window from now on */
	d->win = -1;
	d->listed = true;
	if (d->stamped)
		fs_stamp_set(fs_ctx()->stamps, path, d->stamp);
	return 0;
}

/* The record at off, or NULL at the end (or on a read error, *rc set). */
static const struct fs_dirent *fs_dir_at(struct fs_dir *d, off_t off, int *rc)
{
	const struct fs_dirent *e;
	ssize_t got;

	if (off >= d->size)
		return NULL;
	if (d->fd < 0)
		return (const struct fs_dirent *)(d->buf + off);
	if (d->win < 0 || off < d->win || off + (off_t)sizeof(*e) > d->win + (off_t)d->len ||
	    off + (off_t)((const struct fs_dirent *)(d->buf + (off - d->win)))->size >
		    d->win + (off_t)d->len) {
		got = pread(d->fd, d->buf, FS_DIR_MEM, off);
		if (got < (ssize_t)sizeof(*e)) {
			*rc = got < 0 ? -errno : -EIO;
			return NULL;
		}
		d->win = off;
		d->len = (size_t)got;
	}
	return (const struct fs_dirent *)(d->buf + (off - d->win));
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	/* Hand back full attributes (readdirplus) so ls -l and find need no stat each. */
	enum fuse_fill_dir_flags plus = flags & FUSE_READDIR_PLUS ? FUSE_FILL_DIR_PLUS : 0;
	const struct fs_dirent *e;
	int rc = 0;

	if (!d->listed) {
		rc = fs_dir_list(d, path);
		if (rc < 0)
			return rc;
	}
	while ((e = fs_dir_at(d, off, &rc)) != NULL) {
		off_t next = off + e->size;
		const char *name = (const char *)(e + 1);

		/* Without complete attributes only the type goes out; the kernel asks later. */
		if (filler(buf, name, &e->st, next, e->complete ? plus : 0))
			break;
		off = next;
	}
	return rc;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct store_caller who = fs_caller();
	struct fs_stamps *stamps;
	struct fs_dir *d;
	uint64_t stamp;
	int rc, st;

	rc = tree_opendir(fs_ctx()->tree, path, &who);
	if (rc < 0)
		return rc;
	/* A load that fails here fails the opendir: the listing would only ask again. */
	st = tree_listing_stamp(fs_ctx()->tree, path, &stamp);
	if (st < 0 && st != -EINVAL)
		return st;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->buf = malloc(FS_DIR_MEM))) {
		free(d);
		return -ENOMEM;
	}
	d->fd = -1;
	fi->fh = (uintptr_t)d;
	fs_open_track(fs_ctx(), &d->link, true);
	if (st == 0 && (stamps = fs_ctx()->stamps) != NULL) {
		d->stamped = true;
		d->stamp = stamp;
		fi->cache_readdir = 1;
		fi->keep_cache = fs_stamp_same(stamps, path, d->stamp);
		if (fi->keep_cache)
			__atomic_add_fetch(&fs_ctx()->listings_kept, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	(void)path;
	fs_open_untrack(fs_ctx(), &d->link);
	fs_dir_free(d);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct store_caller who = fs_caller();
	struct fs_handle *h = calloc(1, sizeof(*h));
	int rc;

	if (!h)
		return -ENOMEM;
	rc = tree_open(fs_ctx()->tree, path, fi->flags, &who, &h->f);
	if (rc < 0) {
		free(h);
		return rc;
	}
	fi->fh = (uintptr_t)h;
	fs_open_track(fs_ctx(), &h->link, false);
	if (tree_file_live(h->f)) {
		fi->direct_io = 1;	/* made fresh on each open: never from the page cache */
		return 0;
	}
	/* The kernel reads a stored file itself; its pages are the cache file's. */
	h->backing = fs_backing_get(fs_ctx(), path, tree_file_fd(h->f));
	if (h->backing) {
#ifdef FUSE_CAP_PASSTHROUGH
		fi->backing_id = h->backing->id;
#endif
		__atomic_add_fetch(&fs_ctx()->passthrough_opens, 1, __ATOMIC_RELAXED);
		return 0;
	}
	/* Stored and generated files do not change: keep pages across opens. */
	fi->keep_cache = 1;
	return 0;
}

static struct tree_file *fs_file(const struct fuse_file_info *fi)
{
	return ((struct fs_handle *)(uintptr_t)fi->fh)->f;
}

/* Stored files are handed over as a file descriptor, so libfuse can splice them to the
 * kernel instead of copying through a buffer. */
static int fs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct tree_file *f = fs_file(fi);
	struct fuse_bufvec *bv;
	ssize_t n;
	char *mem;

	(void)path;
	bv = malloc(sizeof(*bv));
	if (!bv)
		return -ENOMEM;
	if (tree_file_fd(f) >= 0) {
		__atomic_add_fetch(&fs_ctx()->stored_reads, 1, __ATOMIC_RELAXED);
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
	return (int)tree_read(fs_file(fi), buf, size, off);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;

	(void)path;
	fs_open_untrack(fs_ctx(), &h->link);
	fs_backing_put(fs_ctx(), h->backing);
	tree_close(h->f);	/* the series may be evicted from now on */
	free(h);
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
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
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
