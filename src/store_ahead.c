/* SPDX-License-Identifier: MIT
 * store_ahead.c — a series whose files come one by one (IDC) fetched ahead of its reader:
 * the first open of a file not yet stored fetches it at once and starts the files after
 * it in name order (the order a viewer or a converter reads them) downloading too, many
 * at once (the source's fleet). A file someone opens jumps the queue; past readahead_max
 * bytes beyond the furthest file opened the rest waits for the reader. Each file goes to
 * tmp/, is checked (its length, and its MD5 where the listing gave one) and renamed into
 * the series' folder whole. Part of the store module (src/store_int.h).
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
#include "log.h"
#include "source.h"

/* A read-ahead nobody has opened a file of for this long, with nothing in flight, goes
 * (a reader that comes back starts a new one from where it is). */
#define STORE_AHEAD_IDLE_MS 30000
/* How long the end of the whole read-ahead waits for the source's fetches at shutdown. */
#define STORE_AHEAD_DRAIN_MS 10000

enum { SA_ABSENT, SA_QUEUED, SA_HELD, SA_FAILED };

struct store_ahead_file {
	unsigned char state;
	int rc; /* SA_FAILED's errno */
	time_t failed;
	uint64_t job; /* SA_QUEUED: the source's name for the fetch */
	char *why;
};

struct store_ahead {
	struct store_series *ss;    /* a reference */
	struct store_ahead_file *f; /* by file index */
	size_t *pos;                /* each file's place in name order */
	uint64_t *before;           /* bytes of the files before each place (count + 1) */
	size_t cursor;              /* the next place to read ahead */
	size_t reader;              /* the furthest place opened */
	bool ahead;                 /* read ahead at all (no walk held back, no failure) */
	unsigned out;               /* fetches out with the source */
	unsigned waiters;
	bool holding;                   /* ss held open for the fetches (no eviction) */
	size_t held;                    /* files on disk */
	uint64_t bytes_held, bytes_got; /* bytes_got: those fetched by this read-ahead */
	int64_t t0, last;               /* ms: its start, the last open */
	struct store_ahead *next;
};

struct store_ahead_job {
	struct store *s;
	struct store_ahead *a;
	size_t i;
	int fd;
	char tmp[PATH_MAX];
};

static void store_ahead_free(struct store_ahead *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; a->f && i < a->ss->count; i++)
		free(a->f[i].why);
	free(a->f);
	free(a->pos);
	free(a->before);
	free(a);
}

/* A new read-ahead of ss from file i, with what is on disk already: made without the
 * lock (a stat per file). NULL when out of memory. */
static struct store_ahead *store_ahead_new(struct store *s, struct store_series *ss, size_t i)
{
	struct store_ahead *a = calloc(1, sizeof(*a));
	char dir[PATH_MAX];
	struct stat st;
	size_t p, k;
	int dir_fd;

	if (!a)
		return NULL;
	a->ss = ss;
	a->f = calloc(ss->count + 1, sizeof(*a->f));
	a->pos = calloc(ss->count + 1, sizeof(*a->pos));
	a->before = calloc(ss->count + 1, sizeof(*a->before));
	if (!a->f || !a->pos || !a->before) {
		store_ahead_free(a);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s/%s", s->series_dir, ss->uid);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (p = 0; p < ss->count; p++) {
		k = ss->by_name[p];
		a->pos[k] = p;
		a->before[p + 1] = a->before[p] + ss->files[k].size;
		if (k != i && dir_fd >= 0 &&
		    fstatat(dir_fd, ss->files[k].name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (uint64_t)st.st_size == ss->files[k].size) {
			a->f[k].state = SA_HELD;
			a->held++;
			a->bytes_held += ss->files[k].size;
		}
	}
	if (dir_fd >= 0)
		close(dir_fd);
	a->reader = a->pos[i];
	a->cursor = a->pos[i] + 1;
	a->t0 = a->last = clock_mono_ms();
	return a;
}

static struct store_ahead *store_ahead_find(struct store *s, const struct store_series *ss)
{
	struct store_ahead *a;

	for (a = s->aheads; a; a = a->next)
		if (a->ss == ss)
			return a;
	return NULL;
}

/* Takes out the read-aheads that are over (nothing out, nobody waiting, and every file
 * held, or idle, or their series gone); returns them for store_ahead_drop. Lock held. */
static struct store_ahead *store_ahead_reap(struct store *s, bool all)
{
	struct store_ahead **p = &s->aheads, *a, *gone = NULL;
	int64_t now = clock_mono_ms();

	while ((a = *p)) {
		if (a->out == 0 && a->waiters == 0 &&
		    (all || a->held == a->ss->count || a->ss->gone ||
		     now - a->last > STORE_AHEAD_IDLE_MS)) {
			*p = a->next;
			a->next = gone;
			gone = a;
			continue;
		}
		p = &a->next;
	}
	return gone;
}

/* Frees reaped read-aheads and their references. Lock held (dropped for the frees). */
static void store_ahead_drop(struct store *s, struct store_ahead *gone)
{
	struct store_ahead *a;

	while ((a = gone)) {
		gone = a->next;
		if (store_put_locked(a->ss)) {
			pthread_mutex_unlock(&s->lock);
			store_series_free(a->ss);
			pthread_mutex_lock(&s->lock);
		}
		store_ahead_free(a);
	}
}

static void store_ahead_done(void *arg, int rc);

/* Hands file i of a's series to the source. Lock held. Returns 0 or -errno (logged). */
static int store_ahead_submit(struct store *s, struct store_ahead *a, size_t i, bool urgent)
{
	struct store_file *file = &a->ss->files[i];
	struct store_ahead_job *job;
	struct source_fetch fe;
	char final[PATH_MAX];
	uint64_t id;
	int rc;

	snprintf(final, sizeof(final), "%s/%s/%s", s->series_dir, a->ss->uid, file->name);
	/* Another process sharing the cache may have put it there. */
	if (access(final, F_OK) == 0) {
		a->f[i].state = SA_HELD;
		a->held++;
		a->bytes_held += file->size;
		return 0;
	}
	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->s = s;
	job->a = a;
	job->i = i;
	snprintf(job->tmp, sizeof(job->tmp), "%s/%s.%s.%d.%zu.f", s->tmp_dir, a->ss->uid, s->host,
		 (int)getpid(), i);
	job->fd = open(job->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (job->fd < 0) {
		rc = -errno;
		log_err("series %s: %s: cannot create %s: %s", a->ss->uid, file->name, job->tmp,
			strerror(-rc));
		free(job);
		return rc;
	}
	if (!a->holding) {
		rc = store_hold_locked(s, a->ss);
		if (rc < 0) {
			log_err("series %s: cannot hold it for its read-ahead: %s", a->ss->uid,
				strerror(-rc));
			goto out_unlink;
		}
		a->holding = true;
	}
	if (file->size == 0) {
		/* Nothing to fetch: the empty file is what is listed. */
		rc = rename(job->tmp, final) < 0 ? -errno : 0;
		close(job->fd);
		free(job);
		if (rc == 0) {
			a->f[i].state = SA_HELD;
			a->held++;
		}
		return rc;
	}
	fe = (struct source_fetch){ a->ss->where,     file->name,
				    file->size,       0,
				    file->size,       file->md5[0] ? file->md5 : NULL,
				    job->fd,          urgent,
				    store_ahead_done, job };
	rc = source_fetch_file(s->src, &fe, &id);
	if (rc < 0) {
		if (rc != -ECANCELED)
			log_err("series %s: %s: cannot start its fetch: %s", a->ss->uid, file->name,
				strerror(-rc));
		goto out_unlink;
	}
	a->f[i].state = SA_QUEUED;
	a->f[i].job = id;
	a->out++;
	s->ahead_jobs++;
	return 0;

out_unlink:
	close(job->fd);
	unlink(job->tmp);
	free(job);
	return rc;
}

/* Keeps up to twice the source's streams of a's files queued, in name order, within
 * readahead_max bytes of the furthest file opened. Lock held. */
static void store_ahead_top_up(struct store *s, struct store_ahead *a)
{
	size_t count = a->ss->count, i;

	while (a->ahead && !s->stopping && a->cursor < count &&
	       a->out < 2 * (unsigned)s->opts.streams) {
		if (a->cursor > a->reader &&
		    a->before[a->cursor] - a->before[a->reader] >= s->opts.readahead_max)
			break;
		i = a->ss->by_name[a->cursor++];
		/* A big file is read by range, as its reader asks (store_part.c). */
		if (a->f[i].state != SA_ABSENT || store_part_wanted(s, a->ss, i))
			continue;
		if (store_ahead_submit(s, a, i, false) < 0) {
			a->ahead = false; /* the file is fetched when opened, alone */
			break;
		}
	}
}

/* The source is done with a job (on its thread): the file into place, or not. */
static void store_ahead_done(void *arg, int rc)
{
	struct store_ahead_job *job = arg;
	struct store *s = job->s;
	struct store_ahead *a = job->a;
	struct store_file *file = &a->ss->files[job->i];
	struct store_ahead_file *f = &a->f[job->i];
	char final[PATH_MAX], *why = NULL;
	int lock_fd = -1;
	struct stat st;

	/* Checked again on disk: only a whole file is ever renamed into place. */
	if (rc == 0 && (fstat(job->fd, &st) < 0 || (uint64_t)st.st_size != file->size)) {
		log_err("series %s: %s: not the %llu bytes listed once written: refused",
			a->ss->uid, file->name, (unsigned long long)file->size);
		rc = -EIO;
	}
	if (close(job->fd) < 0 && rc == 0)
		rc = -errno;
	snprintf(final, sizeof(final), "%s/%s/%s", s->series_dir, a->ss->uid, file->name);
	if (rc == 0 && rename(job->tmp, final) < 0) {
		rc = -errno;
		log_err("series %s: %s: cannot store it: %s", a->ss->uid, file->name,
			strerror(-rc));
	}
	if (rc < 0) {
		unlink(job->tmp);
		why = strdup(log_reason());
	}
	pthread_mutex_lock(&s->lock);
	a->out--;
	s->ahead_jobs--;
	f->job = 0;
	if (rc == 0) {
		f->state = SA_HELD;
		a->held++;
		a->bytes_held += file->size;
		a->bytes_got += file->size;
		s->n_files_fetched++;
	} else {
		f->state = SA_FAILED;
		f->rc = rc;
		f->failed = time(NULL);
		free(f->why);
		f->why = why;
		why = NULL;
		if (rc != -ECANCELED)
			s->n_file_errors++;
		/* A series that fails once is not read further ahead: each of its files is
		 * fetched when opened, and says why then. */
		a->ahead = false;
	}
	store_ahead_top_up(s, a);
	if (a->out == 0 && a->holding) {
		a->holding = false;
		lock_fd = store_release_locked(s, a->ss);
	}
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	if (lock_fd >= 0)
		close(lock_fd);
	free(why);
	free(job);
}

/* The reader opened file i: the window moves to the furthest file opened, and a reader
 * that jumped past what was read ahead is not followed by the files it skipped. True
 * when it moved. Lock held. */
static bool store_ahead_moved(struct store_ahead *a, size_t i)
{
	a->last = clock_mono_ms();
	if (a->pos[i] <= a->reader)
		return false;
	a->reader = a->pos[i];
	if (a->cursor <= a->reader)
		a->cursor = a->reader + 1;
	return true;
}

int store_ahead_fetch(struct store *s, struct store_series *ss, size_t i, const struct caller *who)
{
	struct store_ahead *a, *made = NULL, *gone;
	struct store_ahead_file *f;
	int rc = 0;

	if (s->opts.offline) {
		log_err("offline: series %s: %s is not in the cache", ss->uid, ss->files[i].name);
		return -EIO;
	}
	pthread_mutex_lock(&s->lock);
	a = store_ahead_find(s, ss);
	if (!a) {
		pthread_mutex_unlock(&s->lock);
		made = store_ahead_new(s, ss, i);
		if (!made)
			return -ENOMEM;
		pthread_mutex_lock(&s->lock);
		a = store_ahead_find(s, ss);
		if (!a) {
			a = made;
			made = NULL;
			ss->refs++;
			/* A process the walk guard holds back gets the file it opens, alone. */
			a->ahead = !store_walk_held_back(s, caller_pid(who));
			a->next = s->aheads;
			s->aheads = a;
		}
	}
	f = &a->f[i];
	store_ahead_moved(a, i);
	/* A failure moments ago answers this opener too (a viewer opens a file several
	 * times; a bad object is not fetched for each); an older one is tried again. */
	if (f->state == SA_FAILED && time(NULL) - f->failed >= STORE_FAIL_MEMORY &&
	    f->rc != -ECANCELED)
		f->state = SA_ABSENT;
	if (f->state == SA_HELD) {
		f->state = SA_ABSENT; /* it was, and is not: fetched again */
		a->held--;
		a->bytes_held -= ss->files[i].size;
	}
	if (f->state == SA_ABSENT)
		rc = store_ahead_submit(s, a, i, true);
	else if (f->state == SA_QUEUED)
		source_hurry(s->src, f->job);
	store_ahead_top_up(s, a);
	a->waiters++;
	while (rc == 0 && f->state == SA_QUEUED && !s->stopping) {
		if (caller_interrupted(who)) {
			rc = -EINTR; /* the fetch carries on without us */
			break;
		}
		store_ms_wait(s);
	}
	if (rc == 0 && f->state == SA_FAILED) {
		rc = f->rc;
		log_adopt_reason(f->why);
	} else if (rc == 0 && f->state != SA_HELD) {
		rc = -ECANCELED; /* tciafs is stopping */
	}
	a->waiters--;
	gone = store_ahead_reap(s, false);
	store_ahead_drop(s, gone);
	pthread_mutex_unlock(&s->lock);
	store_ahead_free(made);
	return rc;
}

void store_ahead_saw(struct store *s, struct store_series *ss, size_t i)
{
	struct store_ahead *a;

	pthread_mutex_lock(&s->lock);
	a = s->aheads ? store_ahead_find(s, ss) : NULL;
	if (a && store_ahead_moved(a, i))
		store_ahead_top_up(s, a);
	pthread_mutex_unlock(&s->lock);
}

int store_ahead_stats_locked(struct store *s, struct store_stats *out)
{
	struct store_ahead *a;
	int64_t now = clock_mono_ms();
	size_t n = 0;

	for (a = s->aheads; a; a = a->next)
		n++;
	out->aheads = n ? calloc(n, sizeof(*out->aheads)) : NULL;
	if (n && !out->aheads)
		return -ENOMEM;
	for (a = s->aheads; a; a = a->next) {
		struct store_ahead_stat *st = &out->aheads[out->naheads];
		double secs = (double)(now - a->t0) / 1000.0;

		st->uid = strdup(a->ss->uid);
		if (!st->uid)
			return -ENOMEM;
		out->naheads++;
		st->files = a->ss->count;
		st->files_held = a->held;
		st->bytes = a->ss->bytes;
		st->bytes_held = a->bytes_held;
		st->in_flight = a->out;
		st->bytes_per_second = secs > 0 ? (uint64_t)((double)a->bytes_got / secs) : 0;
		st->reading_ahead = a->ahead && a->cursor < a->ss->count;
	}
	return 0;
}

void store_ahead_free_all(struct store *s)
{
	int64_t until = clock_mono_ms() + STORE_AHEAD_DRAIN_MS;
	struct store_ahead *gone;

	source_cancel_fetches(s->src);
	pthread_mutex_lock(&s->lock);
	while (s->ahead_jobs > 0 && clock_mono_ms() < until)
		store_ms_wait(s);
	if (s->ahead_jobs > 0) {
		/* Their callbacks would find freed memory: leak them rather. */
		log_err("store: %u fetches did not end within %d s of the stop", s->ahead_jobs,
			STORE_AHEAD_DRAIN_MS / 1000);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	gone = store_ahead_reap(s, true);
	store_ahead_drop(s, gone);
	pthread_mutex_unlock(&s->lock);
}
