/* SPDX-License-Identifier: MIT
 * store.c — the series store's face: its life cycle, the cleanup of what crashed
 * processes left, opening stored files (handing a file not yet held to the read-ahead,
 * store_ahead.c, or a big one to store_part.c) and status. The table of stored series,
 * the walk guard and eviction are in store_table.c, fetching in store_fetch.c. One
 * mutex guards the in-memory tables; no lock is held across a download, an extraction
 * or a flock wait.
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

#include "fileio.h"
#include "log.h"
#include "record.h"
#include "unzip.h"

/* ---- reading ------------------------------------------------------------------------ */

int store_open(struct store *s, struct store_series *ss, size_t i, const struct caller *who,
	       int *fd, struct store_part **part)
{
	char path[PATH_MAX];
	int rc;

	*fd = -1;
	*part = NULL;
	if (i >= ss->count)
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	rc = store_hold_locked(s, ss);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s/%s", s->series_dir, ss->uid, ss->files[i].name);
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	/* Listed, not yet fetched: under the shared lock now, so no eviction meanwhile. */
	if (*fd < 0 && errno == ENOENT && store_part_wanted(s, ss, i)) {
		rc = store_part_open(s, ss, i, who, part, fd);
		if (rc == 1) /* completed meanwhile */
			*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		else if (rc < 0)
			errno = -rc;
	} else if (*fd < 0 && errno == ENOENT && ss->where) {
		rc = store_ahead_fetch(s, ss, i, who);
		if (rc == 0)
			*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		else
			errno = -rc;
	} else if (*fd >= 0 && ss->where) {
		store_ahead_saw(s, ss, i);
	}
	if (*fd < 0) {
		rc = -errno;
		store_close(s, ss, -1, NULL);
		return rc;
	}
	return 0;
}

void store_close(struct store *s, struct store_series *ss, int fd, struct store_part *part)
{
	int lock_fd;

	if (fd >= 0)
		close(fd);
	store_part_close(s, part);
	pthread_mutex_lock(&s->lock);
	lock_fd = store_release_locked(s, ss);
	pthread_mutex_unlock(&s->lock);
	if (lock_fd >= 0)
		close(lock_fd); /* drops the shared lock */
}

/* ---- status ------------------------------------------------------------------------- */

void store_stats_clear(struct store_stats *st)
{
	size_t i;

	for (i = 0; i < st->nfetches; i++)
		free(st->fetches[i].uid);
	for (i = 0; i < st->naheads; i++)
		free(st->aheads[i].uid);
	for (i = 0; i < st->nbigs; i++) {
		free(st->bigs[i].uid);
		free(st->bigs[i].file);
	}
	free(st->fetches);
	free(st->aheads);
	free(st->bigs);
	free(st->held_back);
	memset(st, 0, sizeof(*st));
}

/* The downloads under way and the processes held back, into out. Lock held. */
static int store_fetch_stats_locked(struct store *s, struct store_stats *out)
{
	struct store_fetch *f;
	size_t n = 0, i;

	for (f = s->fetches; f; f = f->next)
		n += !f->done && f->started;
	out->fetches = n ? calloc(n, sizeof(*out->fetches)) : NULL;
	out->held_back = calloc(STORE_MAX_PIDS, sizeof(*out->held_back));
	if ((n && !out->fetches) || !out->held_back)
		return -ENOMEM;
	for (f = s->fetches; f; f = f->next) {
		struct store_fetch_stat *st = &out->fetches[out->nfetches];

		if (f->done)
			continue;
		if (!f->started) {
			out->queued++;
			continue;
		}
		st->uid = strdup(f->uid);
		if (!st->uid)
			return -ENOMEM;
		out->nfetches++;
		st->bytes_done = __atomic_load_n(&f->bytes_done, __ATOMIC_RELAXED);
		st->bytes_expected = __atomic_load_n(&f->bytes_expected, __ATOMIC_RELAXED);
		st->waiting = f->waiters;
	}
	for (i = 0; i < STORE_MAX_PIDS; i++)
		if (s->pids[i].pid && s->pids[i].blocked) {
			struct store_held_back *h = &out->held_back[out->nheld_back++];

			h->pid = s->pids[i].pid;
			snprintf(h->command, sizeof(h->command), "%s", s->pids[i].comm);
		}
	return 0;
}

int store_stats(struct store *s, struct store_stats *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	rc = store_fetch_stats_locked(s, out);
	if (rc == 0)
		rc = store_ahead_stats_locked(s, out);
	if (rc == 0)
		rc = store_part_stats_locked(s, out);
	out->dir = s->dir;
	out->bytes = s->used;
	out->cap = s->opts.cap;
	out->series = s->used_series;
	out->verify_md5 = s->opts.verify_md5;
	out->fetched = s->n_fetched;
	out->fetch_errors = s->n_fetch_errors;
	out->evictions = s->n_evicted;
	out->walk_refusals = s->n_refused;
	out->cache_hits = s->n_hits;
	out->files_fetched = s->n_files_fetched;
	out->file_fetch_errors = s->n_file_errors;
	out->files_verified = s->n_verified;
	out->walk_budget = s->opts.walk_budget;
	out->walk_window = s->opts.walk_window;
	pthread_mutex_unlock(&s->lock);
	if (rc < 0)
		store_stats_clear(out);
	return rc;
}

/* ---- life cycle --------------------------------------------------------------------- */

/* Removes what dead processes left in tmp/: names end in .<host>.<pid>.<tid>.zip or .d,
 * or are evict.<uid>.<host>.<pid>. Work of live processes (this host) and recent work
 * of other hosts (a shared store) is left alone. */
static void store_clean_tmp(struct store *s)
{
	time_t now = time(NULL);
	struct dirent *de;
	DIR *d = opendir(s->tmp_dir);
	int removed = 0;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *path;
		const char *p;
		struct stat st;
		int pid = 0;
		bool mine = false, dead = false;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = strstr(de->d_name, s->host);
		if (p && p[strlen(s->host)] == '.' && (p == de->d_name || p[-1] == '.')) {
			mine = true;
			pid = atoi(p + strlen(s->host) + 1);
			dead = pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!(mine ? dead : now - st.st_mtime > 24 * 3600))
			continue;
		path = store_join(s->tmp_dir, de->d_name);
		if (path) {
			store_rmtree(path);
			removed++;
		}
		free(path);
	}
	closedir(d);
	if (removed)
		log_info("store: removed %d leftovers of interrupted fetches from %s", removed,
			 s->tmp_dir);
}

int store_new(const struct store_opts *opts, struct source *src, struct store **out)
{
	struct store *s;
	int rc = -ENOMEM, i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	if (s->opts.max_fetches < 1)
		s->opts.max_fetches = 1;
	if (s->opts.max_fetches > STORE_MAX_WORKERS)
		s->opts.max_fetches = STORE_MAX_WORKERS;
	if (s->opts.walk_window < 1)
		s->opts.walk_window = 60;
	if (s->opts.max_series == 0)
		s->opts.max_series = (uint64_t)64 << 30;
	if (s->opts.readahead_max == 0)
		s->opts.readahead_max = (uint64_t)2 << 30;
	if (s->opts.streams <= 0)
		s->opts.streams = 16;
	if (s->opts.range_min == 0)
		s->opts.range_min = (uint64_t)64 << 20;
	if (s->opts.range_block == 0)
		s->opts.range_block = (uint64_t)4 << 20;
	s->src = src;
	if (gethostname(s->host, sizeof(s->host) - 1) < 0 || !s->host[0])
		snprintf(s->host, sizeof(s->host), "localhost");
	for (i = 0; s->host[i]; i++)
		if (s->host[i] == '.' || s->host[i] == '/')
			s->host[i] = '_';
	s->dir = strdup(opts->dir);
	s->series_dir = store_join(opts->dir, "series");
	s->tmp_dir = store_join(opts->dir, "tmp");
	s->locks_dir = store_join(opts->dir, "locks");
	if (!s->dir || !s->series_dir || !s->tmp_dir || !s->locks_dir)
		goto out_free;
	if ((rc = store_mkdir(s->series_dir)) < 0 || (rc = store_mkdir(s->tmp_dir)) < 0 ||
	    (rc = store_mkdir(s->locks_dir)) < 0) {
		log_err("store %s: %s", s->dir, strerror(-rc));
		goto out_free;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	pthread_cond_init(&s->record, NULL);
	store_clean_tmp(s);
	store_evict(s, NULL);
	*out = s;
	return 0;

out_free:
	free(s->dir);
	free(s->series_dir);
	free(s->tmp_dir);
	free(s->locks_dir);
	free(s);
	return rc;
}

int store_start(struct store *s)
{
	int i;

	for (i = 0; i < s->opts.max_fetches && !s->opts.offline; i++) {
		if (pthread_create(&s->workers[i], NULL, store_worker, s) != 0)
			break;
		s->nworkers++;
	}
	if (s->nworkers == 0 && !s->opts.offline) {
		log_err("store: cannot start any fetch worker");
		return -EAGAIN;
	}
	return 0;
}

void store_stop(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

void store_free(struct store *s)
{
	struct store_series *ss, *next;
	struct store_fetch *f, *fn;
	int i;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	/* A worker in a download finishes it first (bounded by the HTTP timeouts). */
	for (i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (!store_size_askers_wait(s)) {
		/* Their threads would find freed memory: leak the store rather. */
		log_err("store: a series' size was still being asked 10 s after the stop");
		return;
	}
	store_ahead_free_all(s);
	store_part_free_all(s);
	for (f = s->fetches; f; f = fn) {
		fn = f->next;
		free(f->uid);
		free(f->where);
		free(f->why);
		free(f);
	}
	for (ss = s->series; ss; ss = next) {
		next = ss->next;
		store_series_free(ss);
	}
	pthread_cond_destroy(&s->record);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s->series_dir);
	free(s->tmp_dir);
	free(s->locks_dir);
	free(s);
}
