/* SPDX-License-Identifier: MIT
 * fs_dir.c — folder listings for the kernel: each made by one tree_list, spooled and
 * served from byte offsets, kept by the kernel (without opendir, or with cache_readdir)
 * and dropped when the load it came from changes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "inodes.h"
#include "log.h"
#include "spool.h"
#include "tree.h"

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

void fs_dir_free(struct fs_dir *d)
{
	if (!d)
		return;
	spool_clear(&d->sp);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fs_dir_free_reading(struct tciafs *fs)
{
	while (fs->reading) {
		struct fs_dir *d = fs->reading;

		fs->reading = d->next;
		fs_dir_free(d);
	}
}

/* Starts small: most folders hold a few entries, and a walk lists tens of thousands. */
static struct fs_dir *fs_dir_new(struct tciafs *fs)
{
	struct fs_dir *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (spool_init(&d->sp, fs->o.spool_dir ? fs->o.spool_dir : "/tmp", 4096, FS_DIR_MEM) < 0) {
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
	if (inodes_rendered(fs->inodes, &inos, &n) < 0)
		log_warn("SIGHUP: out of memory: files kept by the kernel stay until their "
			 "timeout");
	else
		fs_drop_each(fs, inos, n);
}

/* Whether the kernel's listing of a folder still holds, checked when its attributes
 * time out (listing_timeout): its load may have been refreshed, or not be fresh. A
 * listing without stamp (a series, a facet root) is listed again. */
void fs_listing_check(struct tciafs *fs, fuse_ino_t ino, const char *path)
{
	uint64_t was, now;
	bool kept, stamped;

	inodes_listing(fs->inodes, ino, &kept, &stamped, &was);
	if (!kept || (stamped && tree_listing_stamp(fs->o.tree, path, &now) == 0 && now == was))
		return;
	inodes_keep(fs->inodes, ino, false, false, 0);
	fs_listing_drop(fs, ino);
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
	rc = tree_list(fs->o.tree, path, &who, fs_dir_add, d);
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
	/* Rendered files are listed incomplete (tree.h): what is given here never is one. */
	if (ino) {
		fs_entry(fs, ino, &e->st, false, &ep);
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
	st = tree_listing_stamp(fs->o.tree, path, &stamp);
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

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	fs_readdir_any(req, ino, size, off, fi, false);
}

/* Hands back full attributes so ls -l and find need no stat each. */
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fs_readdir_any(req, ino, size, off, fi, true);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		rc = tree_opendir(fs->o.tree, path, &who);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* A load that fails here fails the opendir: the listing would only ask again. */
	st = tree_listing_stamp(fs->o.tree, path, &stamp);
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

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	(void)ino;
	fs_open_untrack(fs_ctx(req), &d->link);
	fs_dir_free(d);
	fuse_reply_err(req, 0);
}
