/* SPDX-License-Identifier: MIT
 * store_fetch.c — fetching a series into the store: worker threads with single-flight
 * per series, the fetch protocol (lock, download to tmp/, check against the metadata,
 * verify and extract, manifest, sync, rename into series/), failures remembered a moment,
 * and store_get, which waits for it. Part of the store module (src/store_int.h).
 */
#include "store.h"
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "log.h"
#include "source.h"
#include "unzip.h"

/* ---- fetching ----------------------------------------------------------------------- */

/* How long a download that reached STORE_ZIP_SLACK before its metadata waits for it
 * (under curl's stall timeout), rather than write on unchecked. */
#define STORE_CAP_WAIT_MS 10000

/* The longest zip accepted for a series: a generous margin over what its metadata says
 * (a zip is rarely larger than its files; never twice as large), else max_series. A
 * server streaming without end is cut off there, before it fills the disk. */
static uint64_t store_zip_max(const struct store *s, const struct store_expect *exp)
{
	if (exp->bytes > 0 && (uint64_t)exp->bytes < s->opts.max_series / 2)
		return (uint64_t)exp->bytes * 2 + STORE_ZIP_SLACK;
	return s->opts.max_series;
}

/* Sets f's cap from what is known now: its metadata's FileSize, else the series' size
 * (getSeriesSize), else max_series. Lock held. */
static void store_cap_locked(struct store *s, struct store_fetch *f, int64_t size)
{
	struct store_expect by_size = { -1, size, NULL };
	uint64_t cap;
	int from;

	if (f->exp_pending) {
		cap = s->opts.max_series;
		from = STORE_CAP_PENDING;
	} else if (f->exp.bytes > 0 && (uint64_t)f->exp.bytes < s->opts.max_series / 2) {
		cap = store_zip_max(s, &f->exp);
		from = STORE_CAP_META;
	} else if (size > 0 && (uint64_t)size < s->opts.max_series / 2) {
		cap = store_zip_max(s, &by_size);
		from = STORE_CAP_SIZE;
	} else if (f->cap_from == STORE_CAP_SIZE) {
		return; /* kept: the size came before a metadata without one */
	} else {
		cap = s->opts.max_series;
		from = STORE_CAP_MAX;
	}
	__atomic_store_n(&f->cap, cap, __ATOMIC_RELEASE);
	__atomic_store_n(&f->cap_from, from, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->done);
}

static const char *store_cap_why(int from)
{
	switch (from) {
	case STORE_CAP_META:
		return "its metadata allows (FileSize x 2 + 16 MiB)";
	case STORE_CAP_SIZE:
		return "its size allows (getSeriesSize's TotalSizeInBytes x 2 + 16 MiB; the "
		       "metadata gives no FileSize)";
	case STORE_CAP_PENDING:
		return "may be written before its metadata comes to check it against";
	default:
		return "max_series allows (the metadata gives no size)";
	}
}

/* Downloads in tmp/ count against cache_size: every STORE_ROOM_STEP of one, the store
 * and the downloads under way are held to the cap, evicting first. */
#define STORE_ROOM_STEP STORE_ZIP_SLACK

/* Is there room under the cap for the series stored and the downloads under way? Evicts
 * least recently used series to make it. Without the lock. */
static bool store_room(struct store *s, struct store_fetch *f)
{
	struct store_fetch *g;
	uint64_t tmp = 0, used;

	pthread_mutex_lock(&s->lock);
	for (g = s->fetches; g; g = g->next)
		if (g->started && !g->done)
			tmp += __atomic_load_n(&g->bytes_done, __ATOMIC_RELAXED);
	used = s->used;
	pthread_mutex_unlock(&s->lock);
	if (used + tmp <= s->opts.cap)
		return true;
	store_evict_reserve(s, f->uid, tmp);
	pthread_mutex_lock(&s->lock);
	used = s->used;
	pthread_mutex_unlock(&s->lock);
	return used + tmp <= s->opts.cap;
}

/* As the zip arrives: its progress, for status, and the cap it runs under now, which
 * tightens the moment the metadata (or the series' size) arrives. Past STORE_ZIP_SLACK
 * (the least any cap allows) with the metadata still to come, it waits for it. */
static uint64_t store_progress(void *arg, uint64_t done, uint64_t total)
{
	struct store_fetch *f = arg;
	struct store *s = f->s;
	int64_t until;
	uint64_t cap;

	/* Read under the lock by status; a torn read of a counter is harmless, but keep
	 * the writes simple and atomic-sized. */
	__atomic_store_n(&f->bytes_done, done, __ATOMIC_RELAXED);
	if (total)
		__atomic_store_n(&f->bytes_expected, total, __ATOMIC_RELAXED);
	if (done >= f->room_at + STORE_ROOM_STEP) {
		f->room_at = done;
		if (!store_room(s, f)) {
			f->no_room = true;
			return 1; /* cut off here */
		}
	}
	/* While the metadata is pending, cap is the loosest (max_series: a cap handed to
	 * the client only tightens, and the metadata may allow more than the slack); past
	 * the slack it is waited for, not trusted. */
	cap = __atomic_load_n(&f->cap, __ATOMIC_ACQUIRE);
	if (done <= STORE_ZIP_SLACK ||
	    (done <= cap && __atomic_load_n(&f->cap_from, __ATOMIC_ACQUIRE) != STORE_CAP_PENDING))
		return cap;
	pthread_mutex_lock(&s->lock);
	until = clock_mono_ms() + STORE_CAP_WAIT_MS;
	while (f->cap_from == STORE_CAP_PENDING && !f->exp_failed && !s->stopping &&
	       clock_mono_ms() < until)
		store_ms_wait(s);
	cap = f->cap_from == STORE_CAP_PENDING ? STORE_ZIP_SLACK : f->cap;
	pthread_mutex_unlock(&s->lock);
	return cap;
}

struct store_asker {
	struct store *s;
	char *uid;
};

/* Asks the series' size beside its download, for a cap when the metadata gives none. */
static void *store_size_asker(void *arg)
{
	struct store_asker *a = arg;
	struct store *s = a->s;
	struct store_fetch *f;
	int64_t bytes = -1;
	int rc;

	rc = source_series_bytes(s->src, a->uid, &bytes);
	pthread_mutex_lock(&s->lock);
	for (f = s->fetches; rc == 0 && f; f = f->next)
		if (!f->done && f->started && strcmp(f->uid, a->uid) == 0)
			store_cap_locked(s, f, bytes);
	s->size_askers--;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	free(a->uid);
	free(a);
	return NULL;
}

/* f's metadata gives no size: its size is asked once, on a thread of its own (the
 * download does not wait for it). Lock held. */
static void store_ask_size_locked(struct store *s, struct store_fetch *f)
{
	struct store_asker *a;
	pthread_attr_t attr;
	pthread_t t;

	if (f->size_asked || f->exp_pending || f->exp.bytes > 0 || s->stopping ||
	    source_files_one_by_one(s->src))
		return;
	f->size_asked = true;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->uid = strdup(f->uid))) {
		free(a);
		return;
	}
	a->s = s;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, store_size_asker, a) == 0) {
		s->size_askers++;
	} else {
		free(a->uid);
		free(a);
	}
	pthread_attr_destroy(&attr);
}

bool store_size_askers_wait(struct store *s)
{
	int64_t until = clock_mono_ms() + 10000;
	bool done;

	pthread_mutex_lock(&s->lock);
	while (s->size_askers > 0 && clock_mono_ms() < until)
		store_ms_wait(s);
	done = s->size_askers == 0;
	pthread_mutex_unlock(&s->lock);
	return done;
}

/* Waits (bounded) for the metadata of a fetch that store_prefetch started before it was
 * known. Returns 0 with *exp, or -errno with one log line. */
static int store_await_expect(struct store *s, struct store_fetch *f, const char *what,
			      struct store_expect *exp)
{
	time_t until = time(NULL) + STORE_EXPECT_WAIT;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	while (f->exp_pending && !f->exp_failed && !s->stopping && time(NULL) < until)
		store_ms_wait(s);
	if (s->stopping) {
		rc = -ECANCELED;
	} else if (f->exp_failed) {
		log_err("%s: not in the archive's metadata: the download is discarded", what);
		rc = -ENOENT;
	} else if (f->exp_pending) {
		log_err("%s: its metadata did not come within %d s to check the zip against: "
			"the download is discarded",
			what, STORE_EXPECT_WAIT);
		rc = -EIO;
	}
	*exp = f->exp;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* A series whose files come one by one: its folder holds the listing (names, exact
 * sizes) and no file yet. Under the series' lock, as a download. */
static int store_list_series(struct store *s, struct store_fetch *f, const char *what,
			     const char *work, const char *final)
{
	struct store_expect exp;
	struct source_files l;
	struct unzip_entry *v = NULL;
	const char **md5 = NULL;
	size_t i;
	int dir_fd = -1, rc;

	rc = store_await_expect(s, f, what, &exp);
	if (rc < 0)
		return rc;
	if (!f->where) {
		log_err("%s: its metadata does not say where its files are", what);
		return -EIO;
	}
	log_info("%s: listing its files", what);
	rc = source_list_files(s->src, f->where, &l);
	if (rc < 0) {
		log_err("%s: listing its files failed: %s", what, strerror(-rc));
		return rc;
	}
	if (l.strays)
		log_info("%s: %zu objects that are not DICOM files left out", what, l.strays);
	if (exp.count >= 0 && (int64_t)l.count != exp.count)
		log_warn("%s: %zu files listed where its metadata says %lld", what, l.count,
			 (long long)exp.count);
	rc = -EIO;
	if (l.count == 0) {
		log_err("%s: its folder lists no DICOM file", what);
		goto out_clear;
	}
	v = calloc(l.count, sizeof(*v));
	md5 = calloc(l.count, sizeof(*md5));
	rc = v && md5 ? 0 : -ENOMEM;
	for (i = 0; rc == 0 && i < l.count; i++) {
		v[i].name = l.v[i].name; /* borrowed */
		v[i].size = l.v[i].size;
		md5[i] = l.v[i].md5;
		if (!unzip_name_ok(v[i].name))
			rc = -EIO;
	}
	if (rc == 0 && mkdir(work, 0755) < 0)
		rc = -errno;
	if (rc < 0)
		goto out_clear;
	dir_fd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dir_fd < 0 ? -errno
			: store_write_manifest(dir_fd, f->uid, v, l.count, 0, time(NULL), f->where,
					       md5);
	if (rc == 0 && fsync(dir_fd) < 0)
		rc = -errno;
	if (rc == 0 && rename(work, final) < 0)
		rc = -errno;
	if (rc < 0) {
		log_err("%s: cannot store its listing: %s", what, strerror(-rc));
		store_rmtree(work);
	} else {
		log_info("%s: %zu files listed", what, l.count);
	}
	if (dir_fd >= 0)
		close(dir_fd);
out_clear:
	free(v);
	free(md5);
	source_files_clear(&l);
	return rc;
}

/* Puts a series' files, its manifest and its folder on disk. Its own files only, not
 * the whole filesystem's: syncfs also wrote whatever else was being written there (the
 * 500 MB fetch: 0.55x curl + unzip this way, 0.70-0.96x with syncfs). Their writeback
 * began as each was unpacked, so the first sync commits the journal for all, and the
 * others find little left to do. */
static int store_sync_series(int dir_fd, const struct unzip_result *r)
{
	size_t i;
	int fd, rc = 0;

	for (i = 0; rc == 0 && i <= r->count; i++) {
		fd = openat(dir_fd, i < r->count ? r->v[i].name : STORE_MANIFEST,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fdatasync(fd) < 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0 && fsync(dir_fd) < 0)
		rc = -errno;
	return rc;
}

/* The fetch protocol for one series. Called by a worker with no lock held. */
static int store_fetch_series(struct store *s, struct store_fetch *f)
{
	char lock_path[PATH_MAX], zip_path[PATH_MAX], work[PATH_MAX], final[PATH_MAX];
	struct unzip_limits lim = { -1, -1, 0, s->opts.unzip_threads,
				    s->opts.verify_md5 ? TCIA_MD5_LIST : NULL };
	struct store_expect exp;
	struct unzip_result r;
	uint64_t zip_bytes = 0, max, cap;
	int lock_fd, zip_fd = -1, dir_fd = -1, rc, cap_from;
	char what[128];

	snprintf(what, sizeof(what), "series %s", f->uid);
	snprintf(lock_path, sizeof(lock_path), "%s/%s.lock", s->locks_dir, f->uid);
	snprintf(zip_path, sizeof(zip_path), "%s/%s.%s.%d.%lu.zip", s->tmp_dir, f->uid, s->host,
		 (int)getpid(), (unsigned long)pthread_self());
	snprintf(work, sizeof(work), "%s/%s.%s.%d.%lu.d", s->tmp_dir, f->uid, s->host,
		 (int)getpid(), (unsigned long)pthread_self());
	snprintf(final, sizeof(final), "%s/%s", s->series_dir, f->uid);

	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0)
		return -errno;
	/* Another process may be fetching it: wait for it, then find it done. */
	while (flock(lock_fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			rc = -errno;
			goto out_close_lock;
		}
	rc = 0;
	if (access(final, F_OK) == 0)
		goto out_unlock;
	if (source_files_one_by_one(s->src)) {
		rc = store_list_series(s, f, what, work, final);
		goto out_unlock;
	}

	log_info("%s: downloading", what);
	zip_fd = open(zip_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (zip_fd < 0) {
		rc = -errno;
		log_err("%s: cannot create %s: %s", what, zip_path, strerror(-rc));
		goto out_unlock;
	}
	/* What the metadata says, if known yet (a store_prefetch learns it later); the
	 * series' size asked beside the download when it says none. */
	pthread_mutex_lock(&s->lock);
	exp = f->exp;
	f->s = s;
	store_ask_size_locked(s, f);
	pthread_mutex_unlock(&s->lock);
	max = store_zip_max(s, &exp);
	rc = source_get_zip(s->src, f->uid, s->opts.verify_md5, zip_fd,
			    exp.bytes > 0 ? (uint64_t)exp.bytes : 0, max, store_progress, f,
			    &zip_bytes);
	close(zip_fd);
	if (rc < 0 && rc != -EFBIG) {
		log_err("%s: download failed: %s", what, strerror(-rc));
		goto out_rm_zip;
	}
	/* Nothing is committed unchecked: a download that started before its metadata
	 * waits for it here. */
	if (rc == 0)
		rc = store_await_expect(s, f, what, &exp);
	pthread_mutex_lock(&s->lock);
	cap = f->cap_from == STORE_CAP_PENDING ? STORE_ZIP_SLACK : f->cap;
	cap_from = f->cap_from;
	pthread_mutex_unlock(&s->lock);
	if (rc == -EFBIG && f->no_room) {
		log_clear_reason();
		log_err("%s: no room: with it the cache would pass cache_size (%" PRIu64
			" bytes), and nothing more can be evicted (in use, or being fetched)",
			what, s->opts.cap);
		rc = -ENOSPC;
	} else if (rc == -EFBIG || (rc == 0 && zip_bytes > cap)) {
		/* The reason is this line, not the client's "File too large" before it. */
		log_clear_reason();
		log_err("%s: refused: the zip goes on past %" PRIu64 " bytes, more than %s", what,
			cap, store_cap_why(cap_from));
		rc = -EIO;
	}
	if (rc < 0)
		goto out_rm_zip;
	lim.expect_count = exp.count;
	lim.expect_bytes = exp.bytes;
	if (mkdir(work, 0755) < 0) {
		rc = -errno;
		goto out_rm_zip;
	}
	dir_fd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		rc = -errno;
		goto out_rm_work;
	}
	rc = unzip_extract(zip_path, dir_fd, &lim, what, &r);
	/* Gone before the sync below: the zip's pages are then dropped, never written. */
	unlink(zip_path);
	if (rc < 0)
		goto out_rm_work;
	pthread_mutex_lock(&s->lock);
	s->n_verified += r.verified;
	pthread_mutex_unlock(&s->lock);
	rc = store_write_manifest(dir_fd, f->uid, r.v, r.count, zip_bytes, time(NULL), NULL, NULL);
	/* Everything on disk before the rename makes it visible: whole or absent. */
	if (rc == 0)
		rc = store_sync_series(dir_fd, &r);
	unzip_result_clear(&r);
	if (rc == 0 && rename(work, final) < 0)
		rc = -errno;
	if (rc < 0) {
		log_err("%s: cannot store it: %s", what, strerror(-rc));
		goto out_rm_work;
	}
	close(dir_fd);
	dir_fd = open(s->series_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd >= 0)
		fsync(dir_fd);
	log_info("%s: stored (%" PRIu64 " bytes downloaded)", what, zip_bytes);
	goto out_rm_zip;

out_rm_work:
	store_rmtree(work);
out_rm_zip:
	if (dir_fd >= 0)
		close(dir_fd);
	unlink(zip_path);
out_unlock:
	flock(lock_fd, LOCK_UN);
out_close_lock:
	close(lock_fd);
	return rc;
}

static void store_fetch_drop(struct store *s, struct store_fetch *f)
{
	struct store_fetch **p;

	for (p = &s->fetches; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	free(f->uid);
	free(f->where);
	free(f->why);
	free(f);
}

void *store_worker(void *arg)
{
	struct store *s = arg;
	struct store_fetch *f;
	int rc;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		for (f = s->fetches; f && f->started; f = f->next)
			;
		if (s->stopping)
			break;
		if (!f) {
			pthread_cond_wait(&s->work, &s->lock);
			continue;
		}
		f->started = true;
		pthread_mutex_unlock(&s->lock);
		log_clear_reason();
		rc = store_fetch_series(s, f);
		if (rc == 0)
			store_evict(s, f->uid);
		pthread_mutex_lock(&s->lock);
		f->rc = rc;
		f->done = true;
		if (rc < 0)
			f->why = strdup(log_reason()); /* for the callers waiting on it */
		if (rc == 0)
			s->n_fetched++;
		else
			s->n_fetch_errors++;
		f->finished = time(NULL);
		pthread_cond_broadcast(&s->done);
		/* Everyone who waited gave up (interrupted): nobody else will drop it. A
		 * failure stays a little while, to answer the callers right behind. */
		if (f->waiters == 0 && rc == 0)
			store_fetch_drop(s, f);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Drops failed fetches older than STORE_FAIL_MEMORY that nobody waits on. Lock held. */
static void store_forget_failures(struct store *s)
{
	struct store_fetch *f, *next;
	time_t now = time(NULL);

	for (f = s->fetches; f; f = next) {
		next = f->next;
		if (f->done && f->waiters == 0 && now - f->finished >= STORE_FAIL_MEMORY)
			store_fetch_drop(s, f);
	}
}

/* Where the files of a series whose metadata is exp are, as the source reads its
 * record: a new string, or NULL. Asked outside the lock (it parses the record). */
static char *store_where(struct store *s, const struct store_expect *exp)
{
	return exp && exp->record ? source_where(s->src, exp->record) : NULL;
}

/* Queues a fetch of uid for the workers, with what its metadata says (where: from
 * store_where, copied), or (exp NULL) with that still to come (store_prefetch). Lock
 * held. Returns it, or NULL. */
static struct store_fetch *store_fetch_add(struct store *s, const char *uid,
					   const struct store_expect *exp, const char *where)
{
	struct store_fetch *f = calloc(1, sizeof(*f)), **tail;

	if (f) {
		f->uid = strdup(uid);
		f->where = where ? strdup(where) : NULL;
	}
	if (!f || !f->uid || (where && !f->where)) {
		if (f) {
			free(f->uid);
			free(f->where);
		}
		free(f);
		return NULL;
	}
	f->exp = exp ? *exp : (struct store_expect){ -1, -1, NULL };
	f->exp.record = NULL;
	f->exp_pending = !exp;
	f->bytes_expected = f->exp.bytes > 0 ? (uint64_t)f->exp.bytes : 0;
	f->s = s;
	store_cap_locked(s, f, -1);
	/* Appended: the workers take fetches in the order they were asked for. */
	for (tail = &s->fetches; *tail; tail = &(*tail)->next)
		;
	*tail = f;
	pthread_cond_signal(&s->work);
	return f;
}

/* A fetch started before its metadata (store_prefetch) learns it (where: from
 * store_where, copied). Lock held. */
static void store_expect_locked(struct store *s, struct store_fetch *f,
				const struct store_expect *exp, const char *where)
{
	free(f->where);
	f->exp = *exp;
	f->exp.record = NULL;
	f->where = where ? strdup(where) : NULL;
	f->exp_pending = false;
	if (exp->bytes > 0)
		__atomic_store_n(&f->bytes_expected, (uint64_t)exp->bytes, __ATOMIC_RELAXED);
	store_cap_locked(s, f, -1); /* a download past it stops now */
	if (f->started)
		store_ask_size_locked(s, f);
	pthread_cond_broadcast(&s->done);
}

int store_prefetch(struct store *s, const char *uid, const struct caller *who)
{
	char final[PATH_MAX];
	struct store_fetch *f;

	if (!store_uid_ok(uid) || s->opts.offline)
		return 0; /* store_get will say why */
	snprintf(final, sizeof(final), "%s/%s", s->series_dir, uid);
	if (access(final, F_OK) == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	store_forget_failures(s);
	/* One under way, or one that failed a moment ago (what is left of failures after
	 * the line above): store_get answers with its failure; no second download. */
	for (f = s->fetches; f; f = f->next)
		if (strcmp(f->uid, uid) == 0 && (!f->done || f->rc < 0))
			break;
	if (f || s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (!store_walk_allows(s, caller_pid(who))) {
		pthread_mutex_unlock(&s->lock);
		return -EAGAIN; /* store_get refuses it again, and says why */
	}
	f = store_fetch_add(s, uid, NULL, NULL);
	pthread_mutex_unlock(&s->lock);
	return f ? 0 : -ENOMEM;
}

void store_expect(struct store *s, const char *uid, const struct store_expect *exp)
{
	char *where = store_where(s, exp);
	struct store_fetch *f;

	pthread_mutex_lock(&s->lock);
	for (f = s->fetches; f; f = f->next)
		if (strcmp(f->uid, uid) == 0 && f->exp_pending)
			store_expect_locked(s, f, exp, where);
	pthread_mutex_unlock(&s->lock);
	free(where);
}

void store_abandon(struct store *s, const char *uid)
{
	struct store_fetch *f;

	pthread_mutex_lock(&s->lock);
	for (f = s->fetches; f; f = f->next)
		if (strcmp(f->uid, uid) == 0 && f->exp_pending && !f->exp_failed) {
			f->exp_failed = true;
			pthread_cond_broadcast(&s->done);
		}
	pthread_mutex_unlock(&s->lock);
}

int store_peek(struct store *s, const char *uid, struct store_series **out)
{
	*out = NULL;
	if (!store_uid_ok(uid))
		return -ENOENT;
	return store_lookup(s, uid, out);
}

/* store_get, with where its files are asked of the source once, into *where (the
 * caller frees), when a fetch is to be queued or told. */
static int store_get_where(struct store *s, const char *uid, const struct store_expect *exp,
			   const struct caller *who, struct store_series **out, char **where)
{
	static const struct store_expect unknown = { -1, -1, NULL };
	struct store_fetch *f;
	bool asked = false;
	int rc, round;

	*out = NULL;
	if (!store_uid_ok(uid)) {
		log_err("store: refusing series UID \"%.80s\": not a DICOM UID", uid);
		return -EIO;
	}
	for (round = 0; round <= STORE_REFETCH_ROUNDS; round++) {
		rc = store_lookup(s, uid, out);
		if (rc != -ENOENT) {
			if (rc == 0) {
				pthread_mutex_lock(&s->lock);
				s->n_hits++;
				pthread_mutex_unlock(&s->lock);
			}
			return rc;
		}
		/* Fetched, yet gone: another mount sharing the cache evicted it before we
		 * looked (this mount's own evictions wait for us). Fetch it again. */
		if (round > 0)
			log_info("series %s: evicted by another process before it could be "
				 "opened; fetching it again",
				 uid);
		if (round == STORE_REFETCH_ROUNDS)
			break;
		if (s->opts.offline) {
			log_err("offline: series %s is not in the cache", uid);
			return -EIO;
		}
		if (!asked) {
			*where = store_where(s, exp);
			asked = true;
		}
		pthread_mutex_lock(&s->lock);
		store_forget_failures(s);
		/* A fetch that succeeded but whose series we did not find is history (its
		 * own waiters may still hold it): this caller needs a new one. */
		for (f = s->fetches; f; f = f->next)
			if (strcmp(f->uid, uid) == 0 && !(f->done && f->rc == 0))
				break;
		if (f && f->done) {
			/* It failed moments ago: say so again rather than fetch again. */
			rc = f->rc;
			log_adopt_reason(f->why);
			pthread_mutex_unlock(&s->lock);
			return rc;
		}
		if (f && f->exp_pending && exp)
			store_expect_locked(s, f, exp, *where);
		if (!f) {
			if (!store_walk_allows(s, caller_pid(who))) {
				s->n_refused++;
				pthread_mutex_unlock(&s->lock);
				/* Logged once per process; every refusal says why. */
				if (!log_reason()[0])
					log_adopt_reason(
						"walk guard: this process started too many "
						"series downloads within a minute (see -o "
						"walk_budget)");
				return -EAGAIN;
			}
			f = store_fetch_add(s, uid, exp ? exp : &unknown, *where);
			if (!f) {
				pthread_mutex_unlock(&s->lock);
				return -ENOMEM;
			}
		}
		f->waiters++;
		rc = 0;
		while (!f->done) {
			if (s->stopping) {
				rc = -ECANCELED; /* tciafs is stopping: answer now */
				break;
			}
			store_ms_wait(s);
			if (!f->done && caller_interrupted(who)) {
				rc = -EINTR; /* the download carries on without us */
				break;
			}
		}
		if (rc == 0)
			rc = f->rc;
		if (rc < 0 && f->done)
			log_adopt_reason(f->why);
		pthread_mutex_unlock(&s->lock);
		/* Still counted as a waiter while we look it up: our own evictions skip it. */
		if (rc == 0)
			rc = store_lookup(s, uid, out);
		pthread_mutex_lock(&s->lock);
		f->waiters--;
		if (f->done && f->waiters == 0 && f->rc == 0)
			store_fetch_drop(s, f);
		pthread_mutex_unlock(&s->lock);
		if (rc != -ENOENT)
			return rc;
	}
	log_err("series %s: evicted %d times before it could be opened: the cache (cache_size)"
		" is too small for what is being read at once",
		uid, STORE_REFETCH_ROUNDS);
	return -EIO;
}

int store_get(struct store *s, const char *uid, const struct store_expect *exp,
	      const struct caller *who, struct store_series **out)
{
	char *where = NULL;
	int rc = store_get_where(s, uid, exp, who, out, &where);

	free(where);
	return rc;
}
