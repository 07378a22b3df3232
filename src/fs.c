/* SPDX-License-Identifier: MIT
 * fs.c — the FUSE callbacks, on libfuse's low-level API: each one makes the path of the
 * inode it is given, makes one call into the tree and replies; no HTTP, JSON or zip
 * here. The inode table is ours and compact (number → parent and name), every
 * write-type call is answered EROFS, and stored files open in FUSE passthrough where the
 * kernel and libfuse allow it: their reads then never reach us.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "inodes.h"
#include "log.h"
#include "spool.h"
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

/* Each handle the kernel holds (a file's or a folder's), listed so that those it still
 * holds when the session ends (a stop while a file is open) are freed all the same. */
struct fs_open {
	struct fs_open *prev, *next;
	bool dir;
};

/* What an open file is to us: the tree's file, and the backing it is read through in
 * passthrough (released with the last open of its inode). */
struct fs_handle {
	struct fs_open link; /* first: a handle is its link */
	struct tree_file *f;
	struct fs_backing *backing; /* NULL = read through the daemon */
};

static struct tciafs *fs_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Makes what the callbacks share before the session starts. */
int fs_setup(struct tciafs *fs)
{
	return inodes_new(&fs->inodes);
}

/* The path of ino (with "/name" after it when name is given) in buf of PATH_MAX bytes. */
static int fs_path(struct tciafs *fs, fuse_ino_t ino, const char *name, char *buf)
{
	return inodes_path(fs->inodes, ino, name, buf, PATH_MAX);
}

/* ---- handles ---------------------------------------------------------------------- */

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
	return fuse_req_interrupted(arg) != 0;
}

/* Who is calling: the walk guard counts per process; a wait can be interrupted. */
static struct caller fs_caller(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct caller who = {
		.pid = ctx->pid, .uid = ctx->uid, .interrupted = fs_interrupted, .arg = req
	};

	return who;
}

const char *fs_read_path_name(const struct tciafs *fs, const char **why)
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
	if (fs->acl_cache && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* Every listing kept by the kernel, and no opendir or releasedir at all (a warm walk
	 * asks us nothing): the first opendir answers ENOSYS. The kernel checks a kept
	 * listing when the folder's attributes time out (auto_inval_data makes it look);
	 * fs_listing_check then drops it if its load changed. */
	if (fs->keep_listings && (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
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

static void fs_listing_check(struct tciafs *fs, fuse_ino_t ino, const char *path);

/* A folder's attributes time out with the listing the kernel keeps: their next GETATTR
 * is when fs_listing_check looks at it again. A rendered file's (collection.json, a
 * table, …) time out with the load it comes from, so that a refresh shows its size. */
static double fs_attr_timeout(const struct tciafs *fs, const struct stat *st, const char *name)
{
	if (fs->no_opendir && S_ISDIR(st->st_mode))
		return fs->listing_timeout;
	return tree_is_rendered_name(name) ? fs->listing_timeout : fs->entry_timeout;
}

/* The archive is immutable between refreshes: the kernel keeps names and attributes. */
static void fs_entry(struct tciafs *fs, fuse_ino_t ino, const char *name, const struct stat *st,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->attr = *st;
	e->attr.st_ino = e->ino;
	e->attr_timeout = fs_attr_timeout(fs, st, name);
	e->entry_timeout = fs->entry_timeout;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	struct fuse_entry_param e;
	char path[PATH_MAX];
	fuse_ino_t ino;
	struct stat st;
	int rc;

	rc = fs_path(fs, parent, name, path);
	if (rc == 0)
		rc = tree_stat(fs->tree, path, &who, &st);
	/* Without opendir, a by-UID folder's UID is checked here: a readdir's ENOENT would
	 * look like an empty folder (glibc hides it). */
	if (rc == 0 && fs->no_opendir && S_ISDIR(st.st_mode))
		rc = tree_opendir(fs->tree, path, &who);
	if (rc == -ENOENT && fs->negative_timeout > 0) {
		/* Remembered by the kernel for a while: probes of missing names are many. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->negative_timeout;
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
	fs_entry(fs, ino, name, &st, &e);
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
	struct stat st;
	int rc;

	(void)fi;
	rc = fs_path(fs, ino, NULL, path);
	if (rc == 0)
		rc = tree_stat(fs->tree, path, &who, &st);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->no_opendir && S_ISDIR(st.st_mode))
		fs_listing_check(fs, ino, path);
	st.st_ino = ino;
	fuse_reply_attr(req, &st, fs_attr_timeout(fs, &st, strrchr(path, '/') + 1));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t rc;

	rc = fs_path(fs_ctx(req), ino, NULL, path);
	if (rc == 0)
		rc = tree_readlink(fs_ctx(req)->tree, path, target, sizeof(target));
	if (rc < 0)
		fuse_reply_err(req, (int)-rc);
	else
		fuse_reply_readlink(req, target);
}

/* An open folder's listing, made at its first read and spooled (spool.c): in memory
 * while small, past FS_DIR_MEM in an unlinked file under the cache folder, so that a
 * folder of 200,000 entries costs the daemon no more memory than a small one, and each
 * readdir call resumes at its offset (the byte offset of the next record). */
#define FS_DIR_MEM ((size_t)256 * 1024)
/* Entries given with their attributes (readdirplus) per listing: each is an inode the
 * kernel then holds, and we a node for it. Past this many, entries go out with their
 * type only; a stat asks for the rest. */
#define FS_DIR_PLUS_MAX 4096
/* Folders, though, are what a walk goes into next, each with a LOOKUP of its own if
 * not given here: a collection's patients (26,000 in NLST) go out whole. */
#define FS_DIR_PLUS_DIRS 32768

struct fs_dirent {     /* a record's head; the name and its NUL follow */
	uint32_t size; /* the whole record, padded to 8 bytes */
	uint8_t complete;
	struct stat st;
};

struct fs_dir {
	struct fs_open link;  /* first: a listing of an opendir is its link */
	pthread_mutex_t lock; /* over reading (the window moves) */
	bool listed;
	bool kept;    /* the kernel keeps this listing: record it once listed */
	bool stamped; /* with this stamp */
	uint64_t stamp;
	/* Without opendir: listings being read, by inode, until their end is read. */
	fuse_ino_t ino;
	unsigned refs; /* the reading list's, and each readdir's using it */
	bool reading;  /* in the reading list */
	struct fs_dir *next;
	size_t count, dirs; /* entries and folders given with attributes */
	struct spool sp;    /* the records */
	int rc;             /* a spooling failure */
};

static void fs_dir_free(struct fs_dir *d)
{
	if (!d)
		return;
	spool_clear(&d->sp);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* Starts small: most folders hold a few entries, and a walk lists tens of thousands. */
static struct fs_dir *fs_dir_new(struct tciafs *fs)
{
	struct fs_dir *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (spool_init(&d->sp, fs->spool_dir ? fs->spool_dir : "/tmp", 4096, FS_DIR_MEM) < 0) {
		spool_clear(&d->sp);
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

static int fs_dir_add(void *ctx, const char *name, const struct stat *st, bool complete)
{
	struct fs_dir *d = ctx;
	size_t n = strlen(name) + 1, rec = (sizeof(struct fs_dirent) + n + 7) & ~(size_t)7;
	struct fs_dirent *e;

	if (d->rc)
		return 1;
	e = spool_append(&d->sp, rec, &d->rc);
	if (!e)
		return 1;
	e->size = (uint32_t)rec;
	e->complete = complete && (S_ISDIR(st->st_mode) ? ++d->dirs <= FS_DIR_PLUS_DIRS
							: ++d->count <= FS_DIR_PLUS_MAX);
	e->st = *st;
	memcpy((char *)(e + 1), name, n);
	return 0;
}

/* ---- listings the kernel keeps ------------------------------------------------------
 *
 * inodes.c records, per folder, whether the kernel keeps a listing and the stamp of the
 * load it came from (the kernel's copy lives and dies with its inode). Without opendir
 * (the usual way) the kernel keeps every listing; fs_listing_check looks at the stamp
 * when the folder's attributes time out and drops a changed copy. With opendir
 * (meta_ttl=0) only stamped folders are kept (cache_readdir), each opendir comparing the
 * stamps: the same, and the kernel keeps its copy (keep_cache); changed, it lists again. */

/* Whether the kernel's listing of ino (if it has one) is the one stamped. */
static bool fs_stamp_same(struct tciafs *fs, fuse_ino_t ino, uint64_t stamp)
{
	bool kept, stamped;
	uint64_t was;

	inodes_listing(fs->inodes, ino, &kept, &stamped, &was);
	return kept && stamped && was == stamp;
}

void fs_held(struct tciafs *fs, unsigned long *inodes, unsigned long *listings)
{
	inodes_held(fs->inodes, inodes, listings);
}

/* Tells the kernel to drop its listing of ino, or its pages of a file, and its
 * attributes. Never under a lock:
 * the kernel may need requests of ours answered meanwhile. */
static void fs_listing_drop(struct tciafs *fs, fuse_ino_t ino)
{
	int rc = fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);

	if (rc < 0 && rc != -ENOENT)
		log_warn("telling the kernel to drop a folder listing: %s", strerror(-rc));
}

/* Drops the kernel's copy of each of n inodes (the array is freed). A node freed
 * meanwhile: the kernel no longer knows its number, or the number is another's now,
 * which only lists or reads again. */
static void fs_drop_each(struct tciafs *fs, uint64_t *inos, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fs_listing_drop(fs, inos[i]);
	free(inos);
}

void fs_forget_loaded(struct tciafs *fs)
{
	uint64_t *inos;
	size_t n;

	if (inodes_take_kept(fs->inodes, &inos, &n) < 0)
		log_warn("SIGHUP: out of memory: folder listings kept by the kernel stay until "
			 "their timeout");
	else
		fs_drop_each(fs, inos, n);
	/* The kernel keeps the attributes (an hour) and pages (keep_cache) of rendered
	 * files too: a licence or a table changed by the new load would not show. */
	if (inodes_named(fs->inodes, tree_is_rendered_name, &inos, &n) < 0)
		log_warn("SIGHUP: out of memory: files kept by the kernel stay until their "
			 "timeout");
	else
		fs_drop_each(fs, inos, n);
}

/* Whether the kernel's listing of a folder still holds, checked when its attributes
 * time out (listing_timeout): its load may have been refreshed, or not be fresh. A
 * listing without stamp (a series, a facet root) is listed again. */
static void fs_listing_check(struct tciafs *fs, fuse_ino_t ino, const char *path)
{
	uint64_t was, now;
	bool kept, stamped;

	inodes_listing(fs->inodes, ino, &kept, &stamped, &was);
	if (!kept || (stamped && tree_listing_stamp(fs->tree, path, &now) == 0 && now == was))
		return;
	inodes_keep(fs->inodes, ino, false, false, 0);
	fs_listing_drop(fs, ino);
}

void fs_cleanup(struct tciafs *fs)
{
	struct fs_backing *b;

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
	while (fs->reading) {
		struct fs_dir *d = fs->reading;

		fs->reading = d->next;
		fs_dir_free(d);
	}
	inodes_free(fs->inodes);
	fs->inodes = NULL;
}

/* Makes the listing of ino: ".", "..", then the tree's entries. */
static int fs_dir_list(fuse_req_t req, struct fs_dir *d, fuse_ino_t ino)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	struct stat dot = { .st_mode = S_IFDIR };
	char path[PATH_MAX];
	int rc;

	rc = fs_path(fs, ino, NULL, path);
	if (rc < 0)
		return rc;
	fs_dir_add(d, ".", &dot, false);
	fs_dir_add(d, "..", &dot, false);
	__atomic_add_fetch(&fs->listings_made, 1, __ATOMIC_RELAXED);
	rc = tree_list(fs->tree, path, &who, fs_dir_add, d);
	if (rc == 0)
		rc = d->rc;
	if (rc == 0)
		rc = spool_finish(&d->sp);
	if (rc < 0)
		return rc;
	d->listed = true;
	if (d->kept)
		inodes_keep(fs->inodes, ino, true, d->stamped, d->stamp);
	return 0;
}

/* The record at off, or NULL at the end (or on a read error, *rc set). */
static const struct fs_dirent *fs_dir_at(struct fs_dir *d, off_t off, int *rc)
{
	const struct fs_dirent *e = spool_at(&d->sp, off, sizeof(*e), rc);

	return e ? spool_at(&d->sp, off, e->size, rc) : NULL;
}

/* One entry into a readdirplus reply: with its attributes (the kernel then holds its
 * inode, one lookup) when complete, else with its type only. Returns the bytes used, or
 * 0 when it does not fit. */
static size_t fs_dir_plus(fuse_req_t req, char *p, size_t room, fuse_ino_t dir,
			  const struct fs_dirent *e, off_t next)
{
	struct tciafs *fs = fs_ctx(req);
	const char *name = (const char *)(e + 1);
	struct fuse_entry_param ep;
	fuse_ino_t ino = 0;
	size_t used;

	if (e->complete && strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
		ino = inodes_get(fs->inodes, dir, name);
	if (ino) {
		fs_entry(fs, ino, name, &e->st, &ep);
	} else {
		memset(&ep, 0, sizeof(ep));
		ep.attr.st_mode = e->st.st_mode & S_IFMT;
		ep.attr.st_ino = 0xffffffff; /* "unknown", as libfuse's high-level API says it */
	}
	used = fuse_add_direntry_plus(req, p, room, name, &ep, next);
	if (used <= room)
		return used;
	if (ino)
		inodes_put(fs->inodes, ino, 1);
	return 0;
}

/* ---- listings without opendir ------------------------------------------------------
 *
 * When the kernel keeps every listing by itself (no_opendir), a readdir comes with no
 * handle: the listing is made at offset 0 and kept by inode until its end is read, for
 * the readdirs that follow. A few are kept at most; one dropped half way is made again
 * and resumed at the first record from its offset. */
#define FS_READING_MAX 16

/* Under open_lock: takes d out of the reading list. Returns true when d is to be freed. */
static bool fs_reading_unlist(struct tciafs *fs, struct fs_dir *d)
{
	struct fs_dir **p;

	for (p = &fs->reading; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	d->reading = false;
	return --d->refs == 0;
}

/* Under open_lock: adds d (one reference for the list, one for the caller), replacing an
 * older listing of its inode, and lets go of the oldest unused past FS_READING_MAX.
 * Returns what the caller frees, outside the lock. */
static struct fs_dir *fs_reading_list(struct tciafs *fs, struct fs_dir *d)
{
	struct fs_dir *e, *unused = NULL, *gone = NULL;
	unsigned n = 0;

	for (e = fs->reading; e; e = e->next)
		if (e->ino == d->ino)
			break;
	if (e && fs_reading_unlist(fs, e))
		gone = e;
	d->refs = 2;
	d->reading = true;
	d->next = fs->reading;
	fs->reading = d;
	for (e = fs->reading; e; e = e->next, n++)
		if (e->refs == 1)
			unused = e;
	if (n > FS_READING_MAX && unused && !gone && fs_reading_unlist(fs, unused))
		gone = unused;
	return gone;
}

/* The listing of ino for a readdir at *off: the one being read, else a new one (*off
 * moved to a record's start). */
static int fs_reading_get(fuse_req_t req, fuse_ino_t ino, off_t *off, struct fs_dir **out)
{
	struct tciafs *fs = fs_ctx(req);
	struct fs_dir *d, *gone;
	char path[PATH_MAX];
	uint64_t stamp = 0;
	int rc, st;

	pthread_mutex_lock(&fs->open_lock);
	for (d = fs->reading; d; d = d->next)
		if (d->ino == ino && *off != 0)
			break;
	if (d)
		d->refs++;
	pthread_mutex_unlock(&fs->open_lock);
	if (d) {
		*out = d;
		return 0;
	}
	rc = fs_path(fs, ino, NULL, path);
	if (rc < 0)
		return rc;
	/* Looking refreshes a stale load; one that fails fails the listing. */
	st = tree_listing_stamp(fs->tree, path, &stamp);
	if (st < 0 && st != -EINVAL)
		return st;
	d = fs_dir_new(fs);
	if (!d)
		return -ENOMEM;
	d->ino = ino;
	d->kept = true;
	d->stamped = st == 0;
	d->stamp = stamp;
	rc = fs_dir_list(req, d, ino);
	if (rc < 0) {
		fs_dir_free(d);
		return rc;
	}
	if (*off != 0) {
		const struct fs_dirent *e;
		off_t o = 0;

		while (o < *off && (e = fs_dir_at(d, o, &rc)) != NULL)
			o += e->size;
		*off = o;
	}
	pthread_mutex_lock(&fs->open_lock);
	gone = fs_reading_list(fs, d);
	pthread_mutex_unlock(&fs->open_lock);
	fs_dir_free(gone);
	*out = d;
	return 0;
}

/* Done with a listing; at its end (an empty reply), the list lets go of it too. */
static void fs_reading_put(struct tciafs *fs, struct fs_dir *d, bool end)
{
	bool last;

	pthread_mutex_lock(&fs->open_lock);
	if (end && d->reading)
		fs_reading_unlist(fs, d);
	last = --d->refs == 0;
	pthread_mutex_unlock(&fs->open_lock);
	if (last)
		fs_dir_free(d);
}

static void fs_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	struct tciafs *fs = fs_ctx(req); /* req is gone once answered */
	const struct fs_dirent *e;
	bool reading = !d;
	char *buf, *p;
	size_t room = size, used;
	int rc = 0;

	if (reading)
		rc = fs_reading_get(req, ino, &off, &d);
	else if (!d->listed)
		rc = fs_dir_list(req, d, ino);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	p = buf = malloc(size ? size : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_put;
	}
	pthread_mutex_lock(&d->lock);
	while ((e = fs_dir_at(d, off, &rc)) != NULL) {
		off_t next = off + e->size;

		if (plus) {
			used = fs_dir_plus(req, p, room, ino, e, next);
		} else {
			used = fuse_add_direntry(req, p, room, (const char *)(e + 1), &e->st, next);
			if (used > room)
				used = 0;
		}
		if (!used)
			break;
		p += used;
		room -= used;
		off = next;
	}
	pthread_mutex_unlock(&d->lock);
out_put:
	if (rc < 0 && p == buf)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, size - room);
	if (reading)
		fs_reading_put(fs, d, rc == 0 && p == buf);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	fs_readdir_any(req, ino, size, off, fi, false);
}

/* Hands back full attributes so ls -l and find need no stat each. */
static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	fs_readdir_any(req, ino, size, off, fi, true);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tciafs *fs = fs_ctx(req);
	struct caller who = fs_caller(req);
	char path[PATH_MAX];
	struct fs_dir *d;
	uint64_t stamp;
	int rc, st;

	if (fs->no_opendir) {
		/* The kernel keeps each listing from now on, and asks no more opendirs. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = fs_path(fs, ino, NULL, path);
	if (rc == 0)
		rc = tree_opendir(fs->tree, path, &who);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* A load that fails here fails the opendir: the listing would only ask again. */
	st = tree_listing_stamp(fs->tree, path, &stamp);
	if (st < 0 && st != -EINVAL) {
		fuse_reply_err(req, -st);
		return;
	}
	d = fs_dir_new(fs);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (st == 0) {
		d->kept = d->stamped = true;
		d->stamp = stamp;
		fi->cache_readdir = 1;
		fi->keep_cache = fs_stamp_same(fs, ino, d->stamp);
	}
	fs_open_track(fs, &d->link, true);
	/* -ENOENT: the caller was interrupted and is gone; no release will come. */
	if (fuse_reply_open(req, fi) == -ENOENT) {
		fs_open_untrack(fs, &d->link);
		fs_dir_free(d);
	}
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	(void)ino;
	fs_open_untrack(fs_ctx(req), &d->link);
	fs_dir_free(d);
	fuse_reply_err(req, 0);
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
		rc = tree_open(fs->tree, path, fi->flags, &who, &h->f);
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
		rc = name ? tree_getxattr(fs->tree, path, name, buf, size)
			  : tree_listxattr(fs->tree, path, buf, size);
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
