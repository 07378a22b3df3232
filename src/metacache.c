/* SPDX-License-Identifier: MIT
 * metacache.c — keyed answers with a TTL, in memory (LRU, bounded by bytes) and on disk
 * (one file per key, written to a temporary name and renamed into place, so a reader
 * never sees half a file). One mutex guards the table; it is never held across a fetch
 * or a disk read: an entry marked `busy` makes later askers wait on the condition.
 */
#include "metacache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

#define MC_BUCKETS 4096
#define MC_MAGIC "tciafs-meta 1\n"

struct mc_entry {
	char *key;
	uint64_t hash;
	struct mc_entry *next;     /* hash chain */
	struct mc_entry *lru_prev; /* LRU list of entries holding a body */
	struct mc_entry *lru_next;
	char *body; /* NULL when not in memory */
	size_t len;
	time_t fetched;    /* when body was fetched; 0 = none */
	unsigned gen;      /* mc->gen when fetched; older = expired */
	bool busy;         /* a thread is loading or fetching it */
	bool disk_checked; /* the disk copy was looked at already */
	unsigned done;     /* bumped each time a load/fetch finishes */
	int last_rc;       /* result of the last load/fetch */
	char *why;         /* the last failed fetch's reason, or NULL */
};

struct metacache {
	char *dir;
	long ttl;
	size_t mem_max;
	size_t disk_max;
	size_t disk_bytes;         /* __atomic; an estimate, made exact by each trim */
	pthread_mutex_t trim_lock; /* one trim at a time */
	bool offline;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Everything below is protected by lock. */
	struct mc_entry *buckets[MC_BUCKETS];
	struct mc_entry *lru_head, *lru_tail; /* head = most recently used */
	size_t mem_bytes;
	unsigned gen;
	time_t expired_at; /* disk copies fetched before this are stale */
	struct metacache_stats stats;
};

static uint64_t mc_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static int mc_mkdirs(const char *path)
{
	char *buf = strdup(path);
	char *p;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(buf);
	return rc;
}

/* ---- the disk cap ------------------------------------------------------------------- */

struct mc_file {
	char name[24];
	struct timespec mtime;
	size_t size;
};

static int mc_cmp_file(const void *a, const void *b)
{
	const struct mc_file *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return (x->mtime.tv_sec > y->mtime.tv_sec) - (x->mtime.tv_sec < y->mtime.tv_sec);
	return (x->mtime.tv_nsec > y->mtime.tv_nsec) - (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* Sums the answers on disk (other mounts sharing the folder add to it too) and, while
 * they pass the cap, removes the oldest down to three quarters of it. */
static void mc_disk_trim(struct metacache *mc)
{
	struct mc_file *v = NULL, *nv;
	size_t n = 0, cap = 0, total = 0, i;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (pthread_mutex_trylock(&mc->trim_lock) != 0)
		return; /* another thread is at it */
	d = opendir(mc->dir);
	if (!d)
		goto out_unlock;
	while ((de = readdir(d))) {
		/* Answers are named by 16 hex digits; temporaries carry a suffix. */
		if (strlen(de->d_name) != 16 || strspn(de->d_name, "0123456789abcdef") != 16)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		memcpy(v[n].name, de->d_name, 17);
		v[n].mtime = st.st_mtim;
		v[n].size = (size_t)st.st_size;
		total += v[n].size;
		n++;
	}
	if (total > mc->disk_max) {
		qsort(v, n, sizeof(*v), mc_cmp_file);
		for (i = 0; i < n && total > mc->disk_max / 4 * 3; i++)
			if (unlinkat(dirfd(d), v[i].name, 0) == 0)
				total -= v[i].size;
		log_info("metadata cache: over its %zu kB on disk; the oldest answers removed",
			 mc->disk_max >> 10);
	}
	closedir(d);
	__atomic_store_n(&mc->disk_bytes, total, __ATOMIC_RELAXED);
out_unlock:
	pthread_mutex_unlock(&mc->trim_lock);
	free(v);
}

int metacache_new(const struct metacache_opts *opts, struct metacache **out)
{
	struct metacache *mc;
	int rc;

	*out = NULL;
	mc = calloc(1, sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	mc->ttl = opts->ttl;
	mc->mem_max = opts->mem_max ? opts->mem_max : (size_t)32 << 20;
	mc->disk_max = opts->disk_max ? opts->disk_max : (size_t)1 << 30;
	mc->offline = opts->offline;
	if (opts->dir) {
		mc->dir = strdup(opts->dir);
		if (!mc->dir) {
			free(mc);
			return -ENOMEM;
		}
		rc = mc_mkdirs(mc->dir);
		if (rc < 0) {
			log_err("metadata cache %s: %s", mc->dir, strerror(-rc));
			free(mc->dir);
			free(mc);
			return rc;
		}
	}
	pthread_mutex_init(&mc->lock, NULL);
	pthread_cond_init(&mc->cond, NULL);
	pthread_mutex_init(&mc->trim_lock, NULL);
	/* Unknown until the first store, which then scans (and trims): mounting stays free
	 * of a walk over meta/. */
	mc->disk_bytes = mc->disk_max;
	*out = mc;
	return 0;
}

void metacache_free(struct metacache *mc)
{
	size_t i;

	if (!mc)
		return;
	for (i = 0; i < MC_BUCKETS; i++) {
		struct mc_entry *e = mc->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e->body);
			free(e->key);
			free(e->why);
			free(e);
		}
	}
	pthread_cond_destroy(&mc->cond);
	pthread_mutex_destroy(&mc->lock);
	pthread_mutex_destroy(&mc->trim_lock);
	free(mc->dir);
	free(mc);
}

/* ---- memory (all under mc->lock) ------------------------------------------------------ */

static struct mc_entry *mc_find(struct metacache *mc, const char *key, bool create)
{
	uint64_t h = mc_hash(key);
	struct mc_entry **b = &mc->buckets[h % MC_BUCKETS], *e;

	for (e = *b; e; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	if (!create)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return NULL;
	}
	e->hash = h;
	e->next = *b;
	*b = e;
	return e;
}

static void mc_lru_unlink(struct metacache *mc, struct mc_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else if (mc->lru_head == e)
		mc->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else if (mc->lru_tail == e)
		mc->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void mc_lru_push(struct metacache *mc, struct mc_entry *e)
{
	e->lru_next = mc->lru_head;
	e->lru_prev = NULL;
	if (mc->lru_head)
		mc->lru_head->lru_prev = e;
	mc->lru_head = e;
	if (!mc->lru_tail)
		mc->lru_tail = e;
}

static void mc_drop_body(struct metacache *mc, struct mc_entry *e)
{
	if (!e->body)
		return;
	mc_lru_unlink(mc, e);
	mc->mem_bytes -= e->len;
	free(e->body);
	e->body = NULL;
	e->len = 0;
}

/* Takes ownership of body. Answers too big to be worth memory stay on disk only; the
 * least recently used bodies make room for the new one. */
static void mc_install(struct metacache *mc, struct mc_entry *e, char *body, size_t len,
		       time_t fetched, unsigned gen, bool on_disk)
{
	mc_drop_body(mc, e);
	e->fetched = fetched;
	e->gen = gen;
	if (len > mc->mem_max / 4 && on_disk) {
		free(body);
		return;
	}
	e->body = body;
	e->len = len;
	mc->mem_bytes += len;
	mc_lru_push(mc, e);
	while (mc->mem_bytes > mc->mem_max && mc->lru_tail && mc->lru_tail != e)
		mc_drop_body(mc, mc->lru_tail);
}

static bool mc_fresh(const struct metacache *mc, const struct mc_entry *e, time_t now)
{
	return e->fetched && e->gen == mc->gen && now - e->fetched < mc->ttl;
}

static int mc_copy(const char *body, size_t len, char **out, size_t *out_len)
{
	char *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, body, len);
	p[len] = '\0';
	*out = p;
	*out_len = len;
	return 0;
}

/* ---- disk (no lock held) ----------------------------------------------------------- */

static int mc_path(const struct metacache *mc, uint64_t hash, const char *suffix, char *buf,
		   size_t size)
{
	int n = snprintf(buf, size, "%s/%016" PRIx64 "%s", mc->dir, hash, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int mc_read_all(int fd, char **out, size_t *out_len)
{
	struct stat st;
	char *buf;
	size_t done = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	buf[done] = '\0';
	*out = buf;
	*out_len = done;
	return 0;
}

/* Loads the disk copy of key. Returns 0 with a new *body, -ENOENT if there is none, or
 * another -errno for an unreadable or damaged file (which is then ignored). */
static int mc_disk_load(const struct metacache *mc, const char *key, uint64_t hash, char **body,
			size_t *len, time_t *fetched)
{
	char path[4096], *data = NULL, *p, *end;
	unsigned long long when, klen, blen;
	size_t n = 0;
	int fd, rc;

	if (!mc->dir)
		return -ENOENT;
	rc = mc_path(mc, hash, "", path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = mc_read_all(fd, &data, &n);
	close(fd);
	if (rc < 0)
		return rc;
	rc = -EBADMSG;
	if (n < sizeof(MC_MAGIC) - 1 || memcmp(data, MC_MAGIC, sizeof(MC_MAGIC) - 1) != 0)
		goto out_bad;
	p = data + sizeof(MC_MAGIC) - 1;
	errno = 0;
	when = strtoull(p, &end, 10);
	if (errno || *end != '\n')
		goto out_bad;
	klen = strtoull(end + 1, &end, 10);
	if (errno || *end != '\n')
		goto out_bad;
	blen = strtoull(end + 1, &end, 10);
	if (errno || *end != '\n')
		goto out_bad;
	p = end + 1;
	if (klen != strlen(key) || (size_t)(data + n - p) != klen + 1 + blen ||
	    memcmp(p, key, klen) != 0 || p[klen] != '\n')
		goto out_bad;
	p += klen + 1;
	memmove(data, p, blen);
	data[blen] = '\0';
	*body = data;
	*len = blen;
	*fetched = (time_t)when;
	return 0;

out_bad:
	log_warn("metadata cache: ignoring damaged %s", path);
	free(data);
	return rc;
}

/* Stores the answer for key: written beside its final name, then renamed over it. */
static int mc_disk_store(struct metacache *mc, const char *key, uint64_t hash, const char *body,
			 size_t len, time_t fetched)
{
	char path[4096], tmp[4096], head[128], suffix[64];
	size_t size;
	int fd, rc, n;

	if (!mc->dir)
		return 0;
	size = len + strlen(key) + 64;
	if (size > mc->disk_max / 2) {
		log_warn("metadata cache: an answer of %zu kB is kept in memory only (over half "
			 "of the %zu kB allowed on disk)",
			 len >> 10, mc->disk_max >> 10);
		return -EFBIG;
	}
	snprintf(suffix, sizeof(suffix), ".tmp.%ld", (long)gettid());
	rc = mc_path(mc, hash, "", path, sizeof(path));
	if (rc == 0)
		rc = mc_path(mc, hash, suffix, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	n = snprintf(head, sizeof(head), MC_MAGIC "%lld\n%zu\n%zu\n", (long long)fetched,
		     strlen(key), len);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = fileio_write_all(fd, head, (size_t)n);
	if (rc == 0)
		rc = fileio_write_all(fd, key, strlen(key));
	if (rc == 0)
		rc = fileio_write_all(fd, "\n", 1);
	if (rc == 0)
		rc = fileio_write_all(fd, body, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		log_warn("metadata cache: cannot store %s: %s", path, strerror(-rc));
		unlink(tmp);
		return rc;
	}
	if (__atomic_add_fetch(&mc->disk_bytes, size, __ATOMIC_RELAXED) > mc->disk_max) {
		mc_disk_trim(mc);
		/* The newest go last, but another mount's trim may have taken it: then the
		 * caller keeps the answer in memory. */
		if (access(path, F_OK) < 0)
			return -ENOENT;
	}
	return 0;
}

static void mc_disk_remove(const struct metacache *mc, uint64_t hash)
{
	char path[4096];

	if (mc->dir && mc_path(mc, hash, "", path, sizeof(path)) == 0)
		unlink(path);
}

/* ---- the protocol ------------------------------------------------------------------ */

/* Loads the disk copy (once per entry) and installs it. Called with the entry busy and
 * the lock dropped. */
static void mc_load_from_disk(struct metacache *mc, struct mc_entry *e)
{
	char *body = NULL;
	size_t len = 0;
	time_t fetched = 0;
	unsigned gen;

	if (mc_disk_load(mc, e->key, e->hash, &body, &len, &fetched) < 0)
		return;
	pthread_mutex_lock(&mc->lock);
	/* A copy older than the last SIGHUP counts as expired. */
	gen = fetched >= mc->expired_at ? mc->gen : mc->gen - 1;
	mc_install(mc, e, body, len, fetched, gen, true);
	pthread_mutex_unlock(&mc->lock);
}

/* Fetches, stores and installs. Called with the entry busy and the lock dropped. Returns
 * the fetch result. */
static int mc_refresh(struct metacache *mc, struct mc_entry *e, metacache_fetch_fn fetch, void *arg)
{
	char *body = NULL;
	size_t len = 0;
	bool stored;
	time_t now;
	int rc;

	rc = fetch(arg, &body, &len);
	pthread_mutex_lock(&mc->lock);
	mc->stats.fetches++;
	if (rc < 0)
		mc->stats.fetch_errors++;
	free(e->why);
	e->why = rc < 0 ? strdup(log_reason()) : NULL; /* for the callers who waited */
	pthread_mutex_unlock(&mc->lock);
	if (rc < 0)
		return rc;
	now = time(NULL);
	stored = mc->dir && mc_disk_store(mc, e->key, e->hash, body, len, now) == 0;
	pthread_mutex_lock(&mc->lock);
	mc_install(mc, e, body, len, now, mc->gen, stored);
	pthread_mutex_unlock(&mc->lock);
	return 0;
}

/* Copies out the entry's answer (memory, else its disk copy). Lock held on entry and exit;
 * dropped around the disk read. */
static int mc_serve(struct metacache *mc, struct mc_entry *e, char **body, size_t *len)
{
	char *disk = NULL;
	size_t dlen = 0;
	time_t fetched;
	int rc;

	if (e->body) {
		mc_lru_unlink(mc, e);
		mc_lru_push(mc, e);
		return mc_copy(e->body, e->len, body, len);
	}
	/* Too big for memory: it lives on disk only. */
	pthread_mutex_unlock(&mc->lock);
	rc = mc_disk_load(mc, e->key, e->hash, &disk, &dlen, &fetched);
	pthread_mutex_lock(&mc->lock);
	if (rc < 0)
		return rc;
	*body = disk;
	*len = dlen;
	return 0;
}

int metacache_get(struct metacache *mc, const char *key, metacache_fetch_fn fetch, void *arg,
		  char **body, size_t *len)
{
	struct mc_entry *e;
	unsigned seen;
	int rc;

	*body = NULL;
	*len = 0;
	pthread_mutex_lock(&mc->lock);
	e = mc_find(mc, key, true);
	if (!e) {
		pthread_mutex_unlock(&mc->lock);
		return -ENOMEM;
	}
	for (;;) {
		if (e->fetched && (mc->offline || mc_fresh(mc, e, time(NULL)))) {
			rc = mc_serve(mc, e, body, len);
			if (rc != -ENOENT) {
				mc->stats.hits++;
				goto out_unlock;
			}
			e->fetched = 0; /* the disk copy vanished */
		}
		if (!e->busy)
			break;
		/* Someone is loading or fetching it: wait for their result. */
		seen = e->done;
		while (e->busy && e->done == seen)
			pthread_cond_wait(&mc->cond, &mc->lock);
		if (e->last_rc < 0 && !e->fetched) {
			rc = e->last_rc;
			log_adopt_reason(e->why);
			goto out_unlock;
		}
		if (e->last_rc < 0 || !mc_fresh(mc, e, time(NULL))) {
			/* Their fetch failed but an older answer exists: serve it. */
			rc = mc_serve(mc, e, body, len);
			if (rc == 0 && e->last_rc < 0)
				mc->stats.stale_served++;
			else if (rc == 0)
				mc->stats.hits++;
			goto out_unlock;
		}
	}
	e->busy = true;
	mc->stats.misses++;
	pthread_mutex_unlock(&mc->lock);

	rc = 0;
	if (!e->disk_checked) {
		e->disk_checked = true; /* only the busy holder touches it */
		mc_load_from_disk(mc, e);
	}
	pthread_mutex_lock(&mc->lock);
	if (e->fetched && (mc->offline || mc_fresh(mc, e, time(NULL))))
		goto out_done;
	pthread_mutex_unlock(&mc->lock);
	if (mc->offline) {
		log_err("offline: no cached answer for %s", key);
		rc = -EIO;
	} else {
		rc = mc_refresh(mc, e, fetch, arg);
	}
	pthread_mutex_lock(&mc->lock);
	if (rc < 0 && e->fetched) {
		log_warn("serving an answer from %lds ago for %s: %s",
			 (long)(time(NULL) - e->fetched), key, strerror(-rc));
		mc->stats.stale_served++;
	}
out_done:
	e->busy = false;
	e->last_rc = rc;
	e->done++;
	pthread_cond_broadcast(&mc->cond);
	if (e->fetched)
		rc = mc_serve(mc, e, body, len);
out_unlock:
	pthread_mutex_unlock(&mc->lock);
	return rc;
}

void metacache_forget(struct metacache *mc, const char *key)
{
	struct mc_entry *e;

	pthread_mutex_lock(&mc->lock);
	e = mc_find(mc, key, false);
	if (e) {
		mc_drop_body(mc, e);
		e->fetched = 0;
	}
	pthread_mutex_unlock(&mc->lock);
	mc_disk_remove(mc, mc_hash(key));
}

void metacache_expire_all(struct metacache *mc)
{
	pthread_mutex_lock(&mc->lock);
	mc->gen++;
	mc->expired_at = time(NULL) + 1;
	pthread_mutex_unlock(&mc->lock);
}

void metacache_stats(struct metacache *mc, struct metacache_stats *st)
{
	pthread_mutex_lock(&mc->lock);
	*st = mc->stats;
	st->mem_bytes = mc->mem_bytes;
	pthread_mutex_unlock(&mc->lock);
}
