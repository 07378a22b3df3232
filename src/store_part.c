/* SPDX-License-Identifier: MIT
 * store_part.c — a big object (IDC's slide microscopy: hundreds of MB to GB in one file)
 * read by range instead of downloaded whole: its bytes go into a sparse <name>.part in
 * the series' folder in aligned blocks, each fetched with a Range GET when first read
 * (one flight per block, in this process and across the processes sharing the cache),
 * a sequential reader's read-ahead doubling as it goes. <name>.blocks records the blocks
 * held, one byte each, written only after the block's data is durable; the last block
 * renames the .part into place, a stored file like any other. Part of the store module.
 */
#include "store.h"
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "log.h"
#include "md5.h"
#include "source.h"

/* The .blocks file: this header, then one byte per block (1 = held, on disk). */
#define PART_MAGIC "TCIAFSB1"
#define PART_HDR 24 /* magic, then size and block size as little-endian u64 */
/* How far a sequential reader is read ahead at most, in bytes (and never more blocks
 * than twice the source's streams). */
#define PART_AHEAD_MAX ((uint64_t)64 << 20)
/* How far from where a sequential reader stopped its next read may fall. */
#define PART_SEQ_SLACK ((uint64_t)1 << 20)
/* A block another process fetches is looked at this often... */
#define PART_FOREIGN_TICK_MS 20
/* ... and a read gives up when no block it waits for has moved for this long (every
 * fetch of ours is bounded by the HTTP timeouts; this bounds a wait on another's). */
#define PART_STALL_MS 120000
#define PART_MD5_BUF (1 << 20)
/* Bytes made durable between two looks at the cache cap. */
#define PART_EVICT_EVERY ((uint64_t)256 << 20)

enum {
	PB_ABSENT,
	PB_QUEUED,  /* our fetch is out (its byte locked in .blocks) */
	PB_LANDED,  /* on disk, readable here, not yet durable nor recorded (locked) */
	PB_HELD,    /* recorded */
	PB_FOREIGN, /* another process holds its lock: it fetches it */
	PB_FAILED,
};

/* One big file open (or being fetched) in this process, shared by its opens. Under the
 * store's lock. */
struct store_big {
	struct store_series *ss; /* a reference, and held open (no eviction) */
	size_t i;
	int fd, map_fd; /* the .part and the .blocks, read-write */
	int hold_fd;    /* -1, or the series' lock fd given back at the end */
	uint64_t size, block;
	size_t n, held, landed;
	unsigned char *st; /* PB_ by block */
	bool *urgent;
	uint64_t *job; /* PB_QUEUED: the source's name for the fetch */
	int *rc;       /* PB_FAILED: its errno, since when, why */
	time_t *failed;
	char **why;
	unsigned out;     /* fetches out */
	int opens, users; /* users: the recorder, a waiting reader */
	bool complete;    /* renamed into place */
	time_t refused;   /* whole but not its MD5: kept a while to say so */
	bool warned_offline;
	uint64_t bytes_got, since_evict;
	struct store_big *next;
};

/* An open of a big file: its reader's place, for the read-ahead. */
struct store_part {
	struct store_big *big;
	uint64_t next; /* where a sequential reader reads next */
	size_t last;   /* the last block it read */
	size_t ahead;  /* blocks read ahead of it; 0 for a reader that seeks */
	bool alone;    /* never read ahead: the walk guard holds its process back */
};

struct store_block_job {
	struct store *s;
	struct store_big *big;
	size_t k;
};

static int part_path(char *buf, size_t len, const struct store *s, const struct store_series *ss,
		     size_t i, const char *suffix)
{
	if (snprintf(buf, len, "%s/%s/%s%s", s->series_dir, ss->uid, ss->files[i].name, suffix) >=
	    (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Takes (or gives back) the byte of block k in .blocks, for other processes: F_OFD
 * locks belong to the open file, not the process, and go when it is closed (a process
 * killed lets go of every block it was fetching). True when taken. */
static bool part_lock(struct store_big *b, size_t k, bool take)
{
	struct flock fl = { .l_type = take ? F_WRLCK : F_UNLCK,
			    .l_whence = SEEK_SET,
			    .l_start = (off_t)(PART_HDR + k),
			    .l_len = 1 };

	return fcntl(b->map_fd, F_OFD_SETLK, &fl) == 0;
}

/* Is block k recorded on disk (by us or another process)? */
static bool part_recorded(struct store_big *b, size_t k)
{
	unsigned char c = 0;

	return pread(b->map_fd, &c, 1, (off_t)(PART_HDR + k)) == 1 && c == 1;
}

static void part_put_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t part_get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Makes <name>.blocks whole in tmp/ and links it into place, so that nobody ever sees
 * one without its header. 0, or -errno (logged); someone else's in place is 0 too. */
static int part_make_map(struct store *s, const struct store_big *b, const char *path)
{
	unsigned char hdr[PART_HDR];
	char tmp[PATH_MAX];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s/%s.%s.%d.%zu.b", s->tmp_dir, b->ss->uid, s->host,
		 (int)getpid(), b->i);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out_log;
	}
	memcpy(hdr, PART_MAGIC, 8);
	part_put_u64(hdr + 8, b->size);
	part_put_u64(hdr + 16, b->block);
	rc = fileio_pwrite_all(fd, hdr, PART_HDR, 0);
	if (rc == 0 && ftruncate(fd, (off_t)(PART_HDR + b->n)) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST)
		rc = -errno;
	unlink(tmp);
out_log:
	if (rc < 0)
		log_err("series %s: %s: cannot record its blocks in %s: %s", b->ss->uid,
			b->ss->files[b->i].name, path, strerror(-rc));
	return rc;
}

/* Is the .blocks file at map_fd for this object in this block size? */
static bool part_map_ok(const struct store_big *b)
{
	unsigned char hdr[PART_HDR];
	struct stat st;

	return pread(b->map_fd, hdr, PART_HDR, 0) == PART_HDR && memcmp(hdr, PART_MAGIC, 8) == 0 &&
	       part_get_u64(hdr + 8) == b->size && part_get_u64(hdr + 16) == b->block &&
	       fstat(b->map_fd, &st) == 0 && (uint64_t)st.st_size == PART_HDR + b->n;
}

static void part_big_free(struct store_big *b)
{
	size_t k;

	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	if (b->map_fd >= 0)
		close(b->map_fd); /* lets go of every block lock */
	for (k = 0; b->why && k < b->n; k++)
		free(b->why[k]);
	free(b->why);
	free(b->st);
	free(b->urgent);
	free(b->job);
	free(b->rc);
	free(b->failed);
	free(b);
}

/* The pair of files for big file i, opened (made when absent), and what they hold:
 * 0, 1 when the file is in place whole after all (*out NULL), or -errno (logged). Made
 * without the store's lock. */
static int part_big_new(struct store *s, struct store_series *ss, size_t i, struct store_big **out)
{
	char final[PATH_MAX], part[PATH_MAX], map[PATH_MAX];
	struct store_big *b;
	bool made = false;
	int rc, tries = 0;
	size_t k;

	*out = NULL;
	if ((rc = part_path(final, sizeof(final), s, ss, i, "")) < 0 ||
	    (rc = part_path(part, sizeof(part), s, ss, i, ".part")) < 0 ||
	    (rc = part_path(map, sizeof(map), s, ss, i, ".blocks")) < 0)
		return rc;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = b->map_fd = b->hold_fd = -1;
	b->ss = ss;
	b->i = i;
	b->size = ss->files[i].size;
	b->block = s->opts.range_block;
	b->n = (size_t)((b->size + b->block - 1) / b->block);
	b->st = calloc(b->n, 1);
	b->urgent = calloc(b->n, sizeof(*b->urgent));
	b->job = calloc(b->n, sizeof(*b->job));
	b->rc = calloc(b->n, sizeof(*b->rc));
	b->failed = calloc(b->n, sizeof(*b->failed));
	b->why = calloc(b->n, sizeof(*b->why));
	rc = -ENOMEM;
	if (!b->st || !b->urgent || !b->job || !b->rc || !b->failed || !b->why)
		goto out_free;
again:
	if (access(final, F_OK) == 0) {
		rc = 1;
		goto out_free;
	}
	b->map_fd = open(map, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (b->map_fd < 0 && errno == ENOENT && s->opts.offline) {
		log_err("offline: series %s: no block of %s is in the cache", ss->uid,
			ss->files[i].name);
		rc = -EIO;
		goto out_free;
	}
	if (b->map_fd < 0 && errno == ENOENT) {
		rc = part_make_map(s, b, map);
		if (rc < 0)
			goto out_free;
		b->map_fd = open(map, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (b->map_fd < 0) {
		rc = -errno;
		if (rc == -ENOENT && tries++ < 3)
			goto again; /* completed and cleaned up meanwhile */
		log_err("series %s: %s: cannot open %s: %s", ss->uid, ss->files[i].name, map,
			strerror(-rc));
		goto out_free;
	}
	if (!part_map_ok(b)) {
		/* Left by another block size, or by an object since revised: start again. */
		log_warn("series %s: %s: its block record is not for this object: fetched anew",
			 ss->uid, ss->files[i].name);
		close(b->map_fd);
		b->map_fd = -1;
		unlink(map);
		unlink(part);
		if (tries++ < 3)
			goto again;
		rc = -EIO;
		goto out_free;
	}
	b->fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (b->fd >= 0)
		made = true;
	else if (errno == EEXIST)
		b->fd = open(part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (b->fd < 0 || ftruncate(b->fd, (off_t)b->size) < 0) {
		rc = -errno;
		log_err("series %s: %s: cannot make %s: %s", ss->uid, ss->files[i].name, part,
			strerror(-rc));
		goto out_free;
	}
	if (made) {
		/* A record whose .part is gone holds nothing (only a refetch can follow). */
		unsigned char zero[4096] = { 0 };

		for (k = 0; k < b->n; k += sizeof(zero))
			if (fileio_pwrite_all(b->map_fd, zero,
					      b->n - k < sizeof(zero) ? b->n - k : sizeof(zero),
					      (off_t)(PART_HDR + k)) < 0)
				break;
	}
	for (k = 0; k < b->n; k++)
		if (part_recorded(b, k)) {
			b->st[k] = PB_HELD;
			b->held++;
		}
	*out = b;
	return 0;

out_free:
	part_big_free(b);
	return rc;
}

static struct store_big *part_find(struct store *s, const struct store_series *ss, size_t i)
{
	struct store_big *b;

	for (b = s->bigs; b; b = b->next)
		if (b->i == i && strcmp(b->ss->uid, ss->uid) == 0 && !b->ss->gone)
			return b;
	return NULL;
}

/* Takes b out of the table once nobody needs it: nothing open, out, to record or
 * waiting. Lock held; true when the caller is to call part_big_drop after unlocking. */
static bool part_big_done_locked(struct store *s, struct store_big *b)
{
	struct store_big **p;

	if (b->opens > 0 || b->out > 0 || b->landed > 0 || b->users > 0 ||
	    (b->refused && time(NULL) - b->refused < STORE_FAIL_MEMORY))
		return false;
	for (p = &s->bigs; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	b->hold_fd = store_release_locked(s, b->ss);
	if (!store_put_locked(b->ss))
		b->ss = NULL; /* others still have it */
	return true;
}

static void part_big_drop(struct store_big *b)
{
	if (b->hold_fd >= 0)
		close(b->hold_fd);
	if (b->ss)
		store_series_free(b->ss);
	part_big_free(b);
}

/* Takes out the refused files nobody needs any more (part_big_done_locked); returns them
 * chained for part_big_drop. Lock held. */
static struct store_big *part_sweep_locked(struct store *s)
{
	struct store_big *b, *next, *gone = NULL;

	for (b = s->bigs; b; b = next) {
		next = b->next;
		if (b->refused && part_big_done_locked(s, b)) {
			b->next = gone;
			gone = b;
		}
	}
	return gone;
}

static void part_drop_all(struct store_big *gone)
{
	struct store_big *b;

	while ((b = gone)) {
		gone = b->next;
		part_big_drop(b);
	}
}

/* The recorder thread: blocks landed are made durable (one fdatasync for all of a
 * file's), then recorded; a file whose every block is recorded is renamed into place. */
static void *part_recorder(void *arg);

static int part_start_recorder(struct store *s)
{
	int rc;

	if (s->recorder_on)
		return 0;
	rc = pthread_create(&s->recorder, NULL, part_recorder, s);
	if (rc != 0) {
		log_err("store: cannot start the block recorder: %s", strerror(rc));
		return -rc;
	}
	s->recorder_on = true;
	return 0;
}

int store_part_open(struct store *s, struct store_series *ss, size_t i, const struct caller *who,
		    struct store_part **out, int *fd)
{
	struct store_big *b, *made = NULL, *gone;
	struct store_part *p;
	int rc;

	*out = NULL;
	*fd = -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	/* A walk held back gets the blocks it reads, no more (as a series' files). */
	p->alone = store_walk_held_back(s, caller_pid(who));
	gone = part_sweep_locked(s);
	b = part_find(s, ss, i);
	if (!b) {
		pthread_mutex_unlock(&s->lock);
		part_drop_all(gone);
		gone = NULL;
		rc = part_big_new(s, ss, i, &made);
		if (rc != 0) {
			free(p);
			return rc; /* 1: in place whole */
		}
		pthread_mutex_lock(&s->lock);
		b = part_find(s, ss, i);
		if (!b) {
			rc = part_start_recorder(s);
			if (rc == 0)
				rc = store_hold_locked(s, ss);
			if (rc < 0) {
				pthread_mutex_unlock(&s->lock);
				part_big_free(made);
				free(p);
				return rc;
			}
			b = made;
			made = NULL;
			ss->refs++;
			b->next = s->bigs;
			s->bigs = b;
			if (b->held == b->n)
				pthread_cond_signal(&s->record); /* whole: to finish */
		}
	}
	b->opens++;
	*fd = dup(b->fd);
	rc = *fd < 0 ? -errno : 0;
	if (rc < 0)
		b->opens--;
	pthread_mutex_unlock(&s->lock);
	part_drop_all(gone);
	part_big_free(made);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->big = b;
	*out = p;
	return 0;
}

void store_part_close(struct store *s, struct store_part *p)
{
	struct store_big *b;
	bool drop;

	if (!p)
		return;
	b = p->big;
	pthread_mutex_lock(&s->lock);
	b->opens--;
	drop = part_big_done_locked(s, b);
	pthread_mutex_unlock(&s->lock);
	if (drop)
		part_big_drop(b);
	free(p);
}

static void part_block_done(void *arg, int rc);

/* Makes sure block k is held, on its way, or being fetched by another process; urgent:
 * a reader waits for it. Lock held. 0, or -errno for a block that cannot come. */
static int part_want(struct store *s, struct store_big *b, size_t k, bool urgent)
{
	struct store_block_job *job;
	struct source_fetch fe;
	uint64_t off = (uint64_t)k * b->block, id;
	int rc;

	if (b->st[k] == PB_FAILED) {
		if (time(NULL) - b->failed[k] < STORE_FAIL_MEMORY || !urgent)
			return b->rc[k];
		b->st[k] = PB_ABSENT;
	}
	if (b->st[k] == PB_QUEUED && urgent && !b->urgent[k]) {
		b->urgent[k] = true;
		source_hurry(s->src, b->job[k]);
	}
	if (b->st[k] != PB_ABSENT && b->st[k] != PB_FOREIGN)
		return 0;
	/* Absent, or another process's: recorded since? */
	if (part_recorded(b, k)) {
		b->st[k] = PB_HELD;
		b->held++;
		return 0;
	}
	if (s->opts.offline) {
		if (urgent && !b->warned_offline) {
			b->warned_offline = true;
			log_err("offline: series %s: %s: block %zu is not in the cache", b->ss->uid,
				b->ss->files[b->i].name, k);
		}
		return -EIO;
	}
	if (!part_lock(b, k, true)) {
		b->st[k] = PB_FOREIGN; /* another process fetches it: waited for */
		return 0;
	}
	/* Ours now; its last fetcher may have recorded it just before letting go. */
	if (part_recorded(b, k)) {
		part_lock(b, k, false);
		b->st[k] = PB_HELD;
		b->held++;
		return 0;
	}
	if (s->stopping) {
		part_lock(b, k, false);
		return -ECANCELED;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		part_lock(b, k, false);
		return -ENOMEM;
	}
	*job = (struct store_block_job){ s, b, k };
	fe = (struct source_fetch){ b->ss->where,
				    b->ss->files[b->i].name,
				    b->size,
				    off,
				    b->size - off < b->block ? b->size - off : b->block,
				    NULL,
				    b->fd,
				    urgent,
				    part_block_done,
				    job };
	rc = source_fetch_file(s->src, &fe, &id);
	if (rc < 0) {
		if (rc != -ECANCELED)
			log_err("series %s: %s: cannot start fetching block %zu: %s", b->ss->uid,
				b->ss->files[b->i].name, k, strerror(-rc));
		part_lock(b, k, false);
		free(job);
		return rc;
	}
	b->st[k] = PB_QUEUED;
	b->urgent[k] = urgent;
	b->job[k] = id;
	b->out++;
	s->ahead_jobs++;
	return 0;
}

/* The source is done with a block (on its thread). */
static void part_block_done(void *arg, int rc)
{
	struct store_block_job *job = arg;
	struct store *s = job->s;
	struct store_big *b = job->big;
	size_t k = job->k;
	char *why = rc < 0 ? strdup(log_reason()) : NULL;
	bool drop;

	pthread_mutex_lock(&s->lock);
	b->out--;
	s->ahead_jobs--;
	if (rc == 0) {
		b->st[k] = PB_LANDED; /* the recorder makes it durable, then records it */
		b->landed++;
		b->bytes_got += k + 1 < b->n ? b->block : b->size - (uint64_t)k * b->block;
		pthread_cond_signal(&s->record);
	} else {
		b->st[k] = PB_FAILED;
		b->rc[k] = rc;
		b->failed[k] = time(NULL);
		free(b->why[k]);
		b->why[k] = why;
		why = NULL;
		part_lock(b, k, false);
		if (rc != -ECANCELED)
			s->n_file_errors++;
	}
	pthread_cond_broadcast(&s->done);
	drop = part_big_done_locked(s, b);
	pthread_mutex_unlock(&s->lock);
	if (drop)
		part_big_drop(b);
	free(why);
	free(job);
}

/* The MD5 of b's .part, against the one listed. 0, or -EIO (logged) or -errno. Without
 * the lock. */
static int part_md5_check(struct store_big *b)
{
	const char *want = b->ss->files[b->i].md5;
	char hex[MD5_HEX_LEN + 1];
	struct md5 *ctx = NULL;
	uint64_t off = 0;
	char *buf = malloc(PART_MD5_BUF);
	int rc = -ENOMEM;

	if (!buf || md5_new(&ctx) < 0)
		goto out_free;
	while (off < b->size) {
		ssize_t got = pread(b->fd, buf, PART_MD5_BUF, (off_t)off);

		if (got <= 0) {
			rc = got < 0 ? -errno : -EIO;
			log_err("series %s: %s: cannot read it back to check it: %s", b->ss->uid,
				b->ss->files[b->i].name, strerror(-rc));
			goto out_free;
		}
		if (md5_update(ctx, buf, (size_t)got) < 0)
			goto out_free;
		off += (uint64_t)got;
	}
	if (md5_final_hex(ctx, hex) < 0)
		goto out_free;
	rc = 0;
	if (strcmp(hex, want) != 0) {
		log_err("series %s: %s: its MD5 is %s, its ETag says %s: refused, its blocks "
			"fetched again when read",
			b->ss->uid, b->ss->files[b->i].name, hex, want);
		rc = -EIO;
	}
out_free:
	free(buf);
	md5_free(ctx);
	return rc;
}

/* b whole, but not the bytes listed: nothing of it is kept (its records zeroed, its
 * data dropped), and each block answers rc with the reason for a while, then is
 * fetched anew when read. Lock held. */
static void part_refuse(struct store_big *b, int rc)
{
	unsigned char zero[4096] = { 0 };
	time_t now = time(NULL);
	size_t k;

	for (k = 0; k < b->n; k += sizeof(zero))
		if (fileio_pwrite_all(b->map_fd, zero,
				      b->n - k < sizeof(zero) ? b->n - k : sizeof(zero),
				      (off_t)(PART_HDR + k)) < 0)
			break;
	if (fdatasync(b->map_fd) < 0 || ftruncate(b->fd, 0) < 0 ||
	    ftruncate(b->fd, (off_t)b->size) < 0)
		log_warn("series %s: %s: dropping its blocks: %s", b->ss->uid,
			 b->ss->files[b->i].name, strerror(errno));
	for (k = 0; k < b->n; k++) {
		b->st[k] = PB_FAILED;
		b->rc[k] = rc;
		b->failed[k] = now;
		free(b->why[k]);
		b->why[k] = strdup(log_reason());
	}
	b->held = 0;
	b->complete = false;
	b->refused = now;
}

/* Every block held: checked against its MD5 where listed, the .part becomes the file
 * (another process sharing the cache may have done it first). Lock held (dropped for
 * the check and the rename). */
static void part_finish(struct store *s, struct store_big *b)
{
	char final[PATH_MAX], part[PATH_MAX], map[PATH_MAX];
	int rc = 0;

	if (part_path(final, sizeof(final), s, b->ss, b->i, "") < 0 ||
	    part_path(part, sizeof(part), s, b->ss, b->i, ".part") < 0 ||
	    part_path(map, sizeof(map), s, b->ss, b->i, ".blocks") < 0)
		return;
	b->complete = true; /* reads need nothing more; no second finish */
	b->users++;
	pthread_mutex_unlock(&s->lock);
	log_clear_reason();
	if (b->ss->files[b->i].md5[0])
		rc = part_md5_check(b);
	if (rc == 0 && rename(part, final) < 0 && errno != ENOENT) {
		/* Kept as it is: every block stays served from the .part. */
		log_err("series %s: %s: cannot store it whole: %s", b->ss->uid,
			b->ss->files[b->i].name, strerror(errno));
	} else if (rc == 0) {
		unlink(map);
		log_info("series %s: %s stored whole, by range (%zu blocks)", b->ss->uid,
			 b->ss->files[b->i].name, b->n);
	}
	pthread_mutex_lock(&s->lock);
	b->users--;
	if (rc < 0) {
		part_refuse(b, rc);
		s->n_file_errors++;
	} else {
		s->n_files_fetched++;
	}
}

/* Blocks other processes sharing the cache recorded since we looked. Lock held. */
static void part_refresh(struct store_big *b)
{
	unsigned char buf[4096];
	size_t k, j, n;

	for (k = 0; k < b->n && b->held < b->n; k += n) {
		n = b->n - k < sizeof(buf) ? b->n - k : sizeof(buf);
		if (pread(b->map_fd, buf, n, (off_t)(PART_HDR + k)) != (ssize_t)n)
			return;
		for (j = 0; j < n; j++)
			if (buf[j] == 1 &&
			    (b->st[k + j] == PB_ABSENT || b->st[k + j] == PB_FOREIGN)) {
				b->st[k + j] = PB_HELD;
				b->held++;
			}
	}
}

/* Records what landed of b: one fdatasync, then a byte per block. Lock held (dropped for
 * the disk's work). True when the cache cap is to be looked at. */
static bool part_record(struct store *s, struct store_big *b)
{
	size_t *ks, n = 0, k, j;
	const char one = 1;
	bool evict = false;
	int rc = 0;

	if (b->landed == 0)
		goto out_finish;
	ks = malloc(b->landed * sizeof(*ks));
	if (!ks)
		return false;
	for (k = 0; k < b->n && n < b->landed; k++)
		if (b->st[k] == PB_LANDED)
			ks[n++] = k;
	b->users++;
	pthread_mutex_unlock(&s->lock);
	/* The data first, the record after: a crash between them loses a block, never
	 * records one that is not there. */
	if (fdatasync(b->fd) < 0) {
		rc = -errno;
		log_err("series %s: %s: cannot make %zu blocks durable: %s", b->ss->uid,
			b->ss->files[b->i].name, n, strerror(-rc));
	}
	for (j = 0; rc == 0 && j < n; j++)
		rc = fileio_pwrite_all(b->map_fd, &one, 1, (off_t)(PART_HDR + ks[j]));
	if (rc < 0 && j > 0)
		log_err("series %s: %s: cannot record its blocks: %s", b->ss->uid,
			b->ss->files[b->i].name, strerror(-rc));
	pthread_mutex_lock(&s->lock);
	b->users--;
	for (j = 0; j < n; j++) {
		k = ks[j];
		b->landed--;
		if (rc == 0) {
			b->st[k] = PB_HELD;
			b->held++;
			b->since_evict += b->block;
		} else {
			/* Read here already, maybe: it is fetched again when next wanted. */
			b->st[k] = PB_FAILED;
			b->rc[k] = rc;
			b->failed[k] = time(NULL);
		}
		part_lock(b, k, false);
	}
	free(ks);
out_finish:
	part_refresh(b);
	if (b->held == b->n && !b->complete) {
		part_finish(s, b);
		evict = true;
	}
	if (b->since_evict >= PART_EVICT_EVERY) {
		b->since_evict = 0;
		evict = true;
	}
	pthread_cond_broadcast(&s->done);
	return evict;
}

static void *part_recorder(void *arg)
{
	struct store *s = arg;
	struct store_big *b, *drop;
	char uid[128];
	bool evict;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		for (b = s->bigs; b && b->landed == 0 && (b->held < b->n || b->complete);
		     b = b->next)
			;
		if (!b) {
			if (s->recorder_stop)
				break;
			pthread_cond_wait(&s->record, &s->lock);
			continue;
		}
		evict = part_record(s, b);
		snprintf(uid, sizeof(uid), "%s", b->ss->uid);
		drop = part_big_done_locked(s, b) ? b : NULL;
		pthread_mutex_unlock(&s->lock);
		if (drop)
			part_big_drop(drop);
		if (evict)
			store_evict(s, uid);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int store_part_need(struct store *s, struct store_part *p, uint64_t off, uint64_t len,
		    const struct caller *who)
{
	struct store_big *b = p->big;
	size_t first, last, k, most, moved;
	int64_t since = clock_mono_ms();
	int rc = 0;

	if (off >= b->size || len == 0)
		return 0;
	if (len > b->size - off)
		len = b->size - off;
	first = (size_t)(off / b->block);
	last = (size_t)((off + len - 1) / b->block);
	most = (size_t)(PART_AHEAD_MAX / b->block);
	if (most > 2 * (size_t)s->opts.streams)
		most = 2 * (size_t)s->opts.streams;
	if (most < 1)
		most = 1;
	pthread_mutex_lock(&s->lock); /* a handle's reads may come at once */
	/* mountpoint-s3's prefetcher: a reader that carries on where it stopped is read
	 * ahead, twice as far each time it enters a new block; one that seeks is not.
	 * "Where it stopped" within PART_SEQ_SLACK: the kernel sends a handle's reads
	 * several at once, and they come in any order. */
	if (off > 0 && off + PART_SEQ_SLACK >= p->next && off <= p->next + PART_SEQ_SLACK) {
		if (p->ahead == 0)
			p->ahead = 1;
		else if (last > p->last && p->ahead < most)
			p->ahead = p->ahead * 2 < most ? p->ahead * 2 : most;
		if (off + len > p->next)
			p->next = off + len;
		if (last > p->last)
			p->last = last;
	} else {
		p->ahead = 0;
		p->next = off + len;
		p->last = last;
	}
	if (b->complete)
		goto out_unlock;
	for (k = first; rc == 0 && k <= last; k++)
		rc = part_want(s, b, k, true);
	/* ... once it is past the middle of its block: a read that stays near a block's
	 * start (a viewer's tile, a range read again after a remount) costs no more. */
	if (!p->alone && off + len - (uint64_t)last * b->block >= b->block / 2)
		for (k = last + 1; rc == 0 && k <= last + p->ahead && k < b->n; k++)
			if (part_want(s, b, k, false) < 0)
				break; /* ahead: tried again when read */
	b->users++;
	while (rc == 0) {
		moved = 0;
		for (k = first; rc == 0 && k <= last; k++) {
			unsigned char was = b->st[k];

			if (was == PB_FOREIGN || was == PB_ABSENT)
				rc = part_want(s, b, k, true);
			if (rc == 0 && b->st[k] == PB_FAILED) {
				rc = b->rc[k];
				log_adopt_reason(b->why[k]);
			}
			if (b->st[k] == PB_QUEUED || b->st[k] == PB_FOREIGN)
				moved++;
		}
		if (rc < 0 || moved == 0)
			break;
		if (s->stopping) {
			rc = -ECANCELED;
			break;
		}
		if (caller_interrupted(who)) {
			rc = -EINTR; /* the fetches carry on without us */
			break;
		}
		if (clock_mono_ms() - since > PART_STALL_MS) {
			log_err("series %s: %s: no block came for %d s: given up", b->ss->uid,
				b->ss->files[b->i].name, PART_STALL_MS / 1000);
			rc = -ETIMEDOUT;
			break;
		}
		for (k = first; k <= last && b->st[k] != PB_FOREIGN; k++)
			;
		if (k <= last) {
			struct timespec tick = { 0, PART_FOREIGN_TICK_MS * 1000000L };

			pthread_mutex_unlock(&s->lock);
			nanosleep(&tick, NULL);
			pthread_mutex_lock(&s->lock);
		} else {
			store_ms_wait(s);
		}
	}
	b->users--;
out_unlock:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int store_part_stats_locked(struct store *s, struct store_stats *out)
{
	struct store_big *b;
	size_t n = 0;

	for (b = s->bigs; b; b = b->next)
		n++;
	out->bigs = n ? calloc(n, sizeof(*out->bigs)) : NULL;
	if (n && !out->bigs)
		return -ENOMEM;
	for (b = s->bigs; b; b = b->next) {
		struct store_big_stat *st = &out->bigs[out->nbigs];
		size_t have = b->held + b->landed;
		uint64_t bytes = (uint64_t)have * b->block;

		/* The last block is short. */
		if (have && (b->st[b->n - 1] == PB_HELD || b->st[b->n - 1] == PB_LANDED))
			bytes -= (uint64_t)b->n * b->block - b->size;
		st->uid = strdup(b->ss->uid);
		st->file = strdup(b->ss->files[b->i].name);
		out->nbigs++;
		if (!st->uid || !st->file)
			return -ENOMEM;
		st->size = b->size;
		st->block_size = b->block;
		st->blocks = b->n;
		st->blocks_held = have;
		st->blocks_recorded = b->held;
		st->bytes_held = bytes;
		st->in_flight = b->out;
		st->opens = b->opens;
		st->complete = b->complete;
	}
	return 0;
}

void store_part_free_all(struct store *s)
{
	struct store_big *b;

	pthread_mutex_lock(&s->lock);
	s->recorder_stop = true;
	pthread_cond_signal(&s->record);
	pthread_mutex_unlock(&s->lock);
	if (s->recorder_on)
		pthread_join(s->recorder, NULL); /* after recording what landed */
	s->recorder_on = false;
	while ((b = s->bigs)) {
		s->bigs = b->next;
		/* Opens the session never released: the series table goes with the store. */
		if (b->ss && b->ss->gone && --b->ss->refs == 0)
			store_series_free(b->ss);
		part_big_free(b);
	}
}
