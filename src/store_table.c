/* SPDX-License-Identifier: MIT
 * store_table.c — the store's ground floor: the in-memory table of stored series and
 * their manifests on disk, the walk guard, LRU eviction under the byte cap (big files
 * counted by what they hold), and the small helpers every store file uses. It calls no
 * other file of the store.
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

/* ---- small helpers ------------------------------------------------------------------ */

int store_parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!text || !*text)
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] != '\0' && !(end[1] == 'B' && end[2] == '\0') &&
	    !(end[1] == 'i' && end[2] == 'B' && end[3] == '\0'))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* DICOM UIDs are digits and dots; anything else from the API is refused here rather than
 * turned into a path. */
bool store_uid_ok(const char *uid)
{
	size_t n = strlen(uid), i;

	if (n == 0 || n > 64 || uid[0] == '.')
		return false;
	for (i = 0; i < n; i++)
		if (!((uid[i] >= '0' && uid[i] <= '9') || uid[i] == '.'))
			return false;
	return true;
}

char *store_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

int store_mkdir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* rm -rf of a folder holding only plain files (what tmp/ and series/ hold). */
void store_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno == EISDIR) {
			char *sub = store_join(path, de->d_name);

			if (sub)
				store_rmtree(sub);
			free(sub);
		}
	}
	closedir(d);
	rmdir(path);
}

/* Files' indices by name, then by index (qsort_r's context: the files). */
static int store_cmp_index(const void *a, const void *b, void *files)
{
	const struct store_file *f = files;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(f[i].name, f[j].name);

	return c ? c : (i > j) - (i < j);
}

void store_series_free(struct store_series *ss)
{
	size_t i;

	if (!ss)
		return;
	for (i = 0; i < ss->count; i++)
		free(ss->files[i].name);
	free(ss->files);
	free(ss->by_name);
	free(ss->uid);
	free(ss->where);
	if (ss->lock_fd >= 0)
		close(ss->lock_fd);
	free(ss);
}

/* ---- manifests ---------------------------------------------------------------------- */

int store_write_manifest(int dir_fd, const char *uid, const struct unzip_entry *v, size_t n,
			 uint64_t zip_bytes, time_t when, const char *where, const char *const *md5)
{
	json_t *root, *files;
	char *text = NULL;
	size_t i;
	int fd, rc = -ENOMEM;

	root = json_pack("{s:s,s:I,s:I,s:[]}", "series", uid, "fetched", (json_int_t)when,
			 "zip_bytes", (json_int_t)zip_bytes, "files");
	if (!root)
		return -ENOMEM;
	if (where && json_object_set_new(root, "where", json_string(where)))
		goto out;
	files = json_object_get(root, "files");
	for (i = 0; i < n; i++) {
		json_t *f =
			json_pack("{s:s,s:I}", "name", v[i].name, "size", (json_int_t)v[i].size);

		if (f && md5 && md5[i][0] && json_object_set_new(f, "md5", json_string(md5[i]))) {
			json_decref(f);
			f = NULL;
		}
		if (json_array_append_new(files, f))
			goto out;
	}
	text = json_dumps(root, JSON_COMPACT);
	if (!text)
		goto out;
	fd = openat(dir_fd, STORE_MANIFEST, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = fileio_write_all(fd, text, strlen(text));
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
out:
	free(text);
	json_decref(root);
	return rc;
}

/* Loads series/<uid>/.manifest. Returns 0 with a new series, -ENOENT when the series is
 * not in the store, or -EIO for a damaged manifest (logged). */
static int store_load(struct store *s, const char *uid, struct store_series **out)
{
	char path[PATH_MAX];
	struct store_series *ss;
	json_error_t err;
	json_t *root, *files, *f;
	size_t i;
	int rc = -ENOMEM, fd;

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/%s/%s", s->series_dir, uid, STORE_MANIFEST) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	/* Opened first: a series evicted (renamed away) meanwhile is simply not there. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
	root = json_loadfd(fd, 0, &err);
	close(fd);
	if (!root) {
		log_err("store: damaged manifest %s: %s", path, err.text);
		return -EIO;
	}
	files = json_object_get(root, "files");
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		goto out_decref;
	ss->lock_fd = -1;
	ss->uid = strdup(uid);
	ss->files = calloc(json_array_size(files) + 1, sizeof(*ss->files));
	if (!ss->uid || !ss->files)
		goto out_free;
	ss->fetched = (time_t)json_integer_value(json_object_get(root, "fetched"));
	if (json_is_string(json_object_get(root, "where")) &&
	    !(ss->where = strdup(json_string_value(json_object_get(root, "where")))))
		goto out_free;
	json_array_foreach(files, i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		json_int_t size = json_integer_value(json_object_get(f, "size"));
		const char *md5 = json_string_value(json_object_get(f, "md5"));

		if (!name || !unzip_name_ok(name) || size < 0 ||
		    (md5 && strspn(md5, "0123456789abcdef") != 32) || (md5 && md5[32])) {
			log_err("store: damaged manifest %s: bad file entry %zu", path, i);
			rc = -EIO;
			goto out_free;
		}
		ss->files[ss->count].name = strdup(name);
		if (!ss->files[ss->count].name)
			goto out_free;
		ss->files[ss->count].size = (uint64_t)size;
		if (md5)
			memcpy(ss->files[ss->count].md5, md5, 33);
		ss->bytes += (uint64_t)size;
		ss->count++;
	}
	ss->by_name = calloc(ss->count + 1, sizeof(*ss->by_name));
	if (!ss->by_name)
		goto out_free;
	for (i = 0; i < ss->count; i++)
		ss->by_name[i] = i;
	qsort_r(ss->by_name, ss->count, sizeof(*ss->by_name), store_cmp_index, ss->files);
	*out = ss;
	rc = 0;
	goto out_decref;

out_free:
	store_series_free(ss);
out_decref:
	json_decref(root);
	return rc;
}

/* ---- the in-memory table (under s->lock) ---------------------------------------------- */

static struct store_series *store_find(struct store *s, const char *uid)
{
	struct store_series *ss;

	for (ss = s->series; ss; ss = ss->next)
		if (strcmp(ss->uid, uid) == 0)
			return ss;
	return NULL;
}

static void store_unlink_series(struct store *s, struct store_series *ss)
{
	struct store_series **p;

	for (p = &s->series; *p; p = &(*p)->next)
		if (*p == ss) {
			*p = ss->next;
			ss->gone = true;
			return;
		}
}

bool store_put_locked(struct store_series *ss)
{
	return --ss->refs == 0 && ss->gone;
}

void store_series_put(struct store *s, struct store_series *ss)
{
	bool last;

	if (!ss)
		return;
	pthread_mutex_lock(&s->lock);
	last = --ss->refs == 0 && ss->gone;
	pthread_mutex_unlock(&s->lock);
	if (last)
		store_series_free(ss);
}

/* Updates the series folder's mtime, which orders eviction (least recently used first). */
static void store_touch(struct store *s, struct store_series *ss)
{
	char path[PATH_MAX];
	time_t now = time(NULL);
	bool due;

	pthread_mutex_lock(&s->lock);
	due = now - ss->touched >= STORE_TOUCH_EVERY;
	if (due)
		ss->touched = now;
	pthread_mutex_unlock(&s->lock);
	if (due &&
	    snprintf(path, sizeof(path), "%s/%s", s->series_dir, ss->uid) < (int)sizeof(path))
		utimensat(AT_FDCWD, path, NULL, 0);
}

/* The series from the table, or from its manifest on disk; checks it is still there
 * (another process may have evicted it). Returns 0 with a reference, or -ENOENT. */
int store_lookup(struct store *s, const char *uid, struct store_series **out)
{
	char path[PATH_MAX];
	struct store_series *ss, *loaded = NULL;
	int rc;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/%s/%s", s->series_dir, uid, STORE_MANIFEST);
	pthread_mutex_lock(&s->lock);
	ss = store_find(s, uid);
	if (ss && access(path, F_OK) < 0) {
		store_unlink_series(s, ss);
		if (ss->refs == 0) {
			pthread_mutex_unlock(&s->lock);
			store_series_free(ss);
			pthread_mutex_lock(&s->lock);
		}
		ss = NULL;
	}
	if (ss) {
		ss->refs++;
		pthread_mutex_unlock(&s->lock);
		*out = ss;
		store_touch(s, ss);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	rc = store_load(s, uid, &loaded);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	ss = store_find(s, uid);
	if (!ss) {
		ss = loaded;
		ss->next = s->series;
		s->series = ss;
		loaded = NULL;
	}
	ss->refs++;
	pthread_mutex_unlock(&s->lock);
	store_series_free(loaded);
	*out = ss;
	store_touch(s, ss);
	return 0;
}

/* ---- the walk guard (under s->lock) --------------------------------------------------- */

static unsigned long long store_proc_start(pid_t pid, char *comm, size_t comm_size)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	FILE *f;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strchr(buf, '(');
	if (p && strrchr(buf, ')')) {
		size_t n = (size_t)(strrchr(buf, ')') - p - 1);

		if (n >= comm_size)
			n = comm_size - 1;
		memcpy(comm, p + 1, n);
		comm[n] = '\0';
		p = strrchr(buf, ')') + 2;
		/* Field 3 is the state; the start time is field 22. */
		for (field = 3; p && field < 22; field++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (p)
			start = strtoull(p, NULL, 10);
	}
	return start;
}

/* May pid start one more fetch? A process that starts more than walk_budget within
 * walk_window seconds is taken for a recursive walk (find, du, an indexer) and refused
 * for the rest of its life. */
bool store_walk_allows(struct store *s, pid_t pid)
{
	char comm[32] = "?";
	unsigned long long start;
	struct store_pid *p = NULL, *oldest = NULL;
	time_t now = time(NULL);
	int i, recent = 0;

	if (s->opts.walk_budget <= 0 || pid <= 0)
		return true;
	start = store_proc_start(pid, comm, sizeof(comm));
	for (i = 0; i < STORE_MAX_PIDS; i++) {
		struct store_pid *q = &s->pids[i];

		if (q->pid == pid && q->start == start) {
			p = q;
			break;
		}
		/* Reuse a free slot, else the one whose last fetch is oldest. */
		if (!oldest || (oldest->pid != 0 &&
				(q->pid == 0 || q->times[(q->n + 63) % 64] <
							oldest->times[(oldest->n + 63) % 64])))
			oldest = q;
	}
	if (!p) {
		p = oldest;
		memset(p, 0, sizeof(*p));
		p->pid = pid;
		p->start = start;
		snprintf(p->comm, sizeof(p->comm), "%s", comm);
	}
	/* tciafs-prefetch asks for many series on purpose: that is its job. */
	if (strcmp(p->comm, "tciafs-prefetch") == 0)
		return true;
	if (p->blocked)
		return false;
	for (i = 0; i < p->n && i < 64; i++)
		if (now - p->times[i] < s->opts.walk_window)
			recent++;
	if (recent >= s->opts.walk_budget) {
		p->blocked = true;
		log_warn("walk guard: %s (pid %d) started %d series downloads within %ds; "
			 "holding back its further ones (raise -o walk_budget, or 0 to turn "
			 "the guard off)",
			 p->comm, (int)pid, recent, s->opts.walk_window);
		return false;
	}
	p->times[p->n % 64] = now;
	p->n++;
	return true;
}

bool store_walk_held_back(struct store *s, pid_t pid)
{
	char comm[32];
	int i;

	if (s->opts.walk_budget <= 0 || pid <= 0)
		return false;
	for (i = 0; i < STORE_MAX_PIDS; i++)
		if (s->pids[i].pid == pid && s->pids[i].blocked)
			return store_proc_start(pid, comm, sizeof(comm)) == s->pids[i].start;
	return false;
}

/* ---- eviction ----------------------------------------------------------------------- */

struct store_victim {
	char uid[72];
	time_t used;
	uint64_t bytes;
};

static int store_cmp_victim(const void *a, const void *b)
{
	const struct store_victim *x = a, *y = b;

	return (x->used > y->used) - (x->used < y->used);
}

/* Evicts series/<uid> if no process has it open or is fetching it. Returns true if it
 * went. */
static bool store_evict_one(struct store *s, const char *uid)
{
	char lock_path[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct store_series *ss;
	bool gone = false;
	int fd;

	snprintf(lock_path, sizeof(lock_path), "%s/%s.lock", s->locks_dir, uid);
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		snprintf(from, sizeof(from), "%s/%s", s->series_dir, uid);
		snprintf(to, sizeof(to), "%s/evict.%s.%s.%d", s->tmp_dir, uid, s->host,
			 (int)getpid());
		/* One rename takes the whole series away; deleting it is then private. */
		if (rename(from, to) == 0) {
			store_rmtree(to);
			gone = true;
		}
		flock(fd, LOCK_UN);
	}
	close(fd);
	if (gone) {
		pthread_mutex_lock(&s->lock);
		ss = store_find(s, uid);
		if (ss) {
			store_unlink_series(s, ss);
			if (ss->refs == 0) {
				pthread_mutex_unlock(&s->lock);
				store_series_free(ss);
				pthread_mutex_lock(&s->lock);
			}
		}
		s->n_evicted++;
		pthread_mutex_unlock(&s->lock);
		log_info("store: evicted series %s (least recently used)", uid);
	}
	return gone;
}

/* Is uid being fetched, or just fetched for callers who have not yet looked it up?
 * Evicting it then would send them back to fetch it again (with a tiny cache, over and
 * over). */
static bool store_awaited(struct store *s, const char *uid)
{
	struct store_fetch *f;
	bool awaited = false;

	pthread_mutex_lock(&s->lock);
	for (f = s->fetches; f; f = f->next)
		if (f->started && f->rc == 0 && (f->waiters > 0 || !f->done) &&
		    strcmp(f->uid, uid) == 0)
			awaited = true;
	pthread_mutex_unlock(&s->lock);
	return awaited;
}

/* Scans series/ (other processes add to it too), and while the total is over the cap
 * evicts the least recently used series that nobody has open. keep is not evicted
 * unless it alone is over the cap (a series bigger than the cap is still served once). */
void store_evict(struct store *s, const char *keep)
{
	store_evict_reserve(s, keep, 0);
}

void store_evict_reserve(struct store *s, const char *keep, uint64_t reserve)
{
	struct store_victim *v = NULL, *nv;
	size_t n = 0, cap = 0, i;
	uint64_t used = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(s->series_dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct store_series *ss;
		struct stat st;

		if (de->d_name[0] == '.' || !store_uid_ok(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (store_load(s, de->d_name, &ss) < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				store_series_free(ss);
				break;
			}
			v = nv;
		}
		snprintf(v[n].uid, sizeof(v[n].uid), "%.64s", de->d_name);
		v[n].used = st.st_mtime;
		v[n].bytes = ss->bytes;
		if (ss->where) {
			int dir_fd =
				openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (dir_fd >= 0) {
				v[n].bytes = store_part_bytes(s, ss, dir_fd);
				close(dir_fd);
			}
		}
		used += v[n].bytes;
		n++;
		store_series_free(ss);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), store_cmp_victim);
	for (i = 0; i < n && used + reserve > s->opts.cap; i++) {
		if ((keep && strcmp(v[i].uid, keep) == 0) || store_awaited(s, v[i].uid))
			continue;
		if (store_evict_one(s, v[i].uid))
			used -= v[i].bytes;
	}
	pthread_mutex_lock(&s->lock);
	s->used = used;
	s->used_series = n;
	pthread_mutex_unlock(&s->lock);
	free(v);
}

/* ---- reading ------------------------------------------------------------------------ */

size_t store_series_count(const struct store_series *ss)
{
	return ss->count;
}

const char *store_series_name(const struct store_series *ss, size_t i)
{
	return ss->files[i].name;
}

uint64_t store_series_size(const struct store_series *ss, size_t i)
{
	return ss->files[i].size;
}

time_t store_series_time(const struct store_series *ss)
{
	return ss->fetched;
}

/* The first of the files named name (a manifest never names one twice). */
long store_series_find(const struct store_series *ss, const char *name)
{
	size_t lo = 0, hi = ss->count, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(ss->files[ss->by_name[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ss->count && strcmp(ss->files[ss->by_name[lo]].name, name) == 0)
		return (long)ss->by_name[lo];
	return -1;
}

int store_hold_locked(struct store *s, struct store_series *ss)
{
	char path[PATH_MAX];
	int lock_fd, rc = 0;

	if (ss->open_files == 0) {
		/* A shared lock for as long as any file is open: evictors skip the series. */
		snprintf(path, sizeof(path), "%s/%s.lock", s->locks_dir, ss->uid);
		lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lock_fd < 0 || flock(lock_fd, LOCK_SH | LOCK_NB) < 0) {
			rc = -errno;
			if (lock_fd >= 0)
				close(lock_fd);
		} else {
			ss->lock_fd = lock_fd;
		}
	}
	if (rc == 0)
		ss->open_files++;
	return rc == -EWOULDBLOCK ? -EBUSY : rc; /* EBUSY: being evicted or refetched */
}

int store_release_locked(struct store *s, struct store_series *ss)
{
	int lock_fd = -1;

	(void)s;
	if (--ss->open_files == 0) {
		lock_fd = ss->lock_fd;
		ss->lock_fd = -1;
	}
	return lock_fd;
}

/* ---- waits and big files -------------------------------------------------------------- */

bool store_ms_wait(struct store *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += STORE_WAIT_TICK_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(&s->done, &s->lock, &ts) == 0;
}

bool store_part_wanted(const struct store *s, const struct store_series *ss, size_t i)
{
	return ss->where && ss->files[i].size > s->opts.range_min;
}

uint64_t store_part_bytes(const struct store *s, const struct store_series *ss, int dir_fd)
{
	uint64_t bytes = ss->bytes;
	char name[PATH_MAX];
	struct stat st;
	size_t i;

	if (!ss->where)
		return bytes;
	/* A big file counts what it holds on disk, not what it will. */
	for (i = 0; i < ss->count; i++) {
		if (!store_part_wanted(s, ss, i))
			continue;
		bytes -= ss->files[i].size;
		if (fstatat(dir_fd, ss->files[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			bytes += (uint64_t)st.st_size;
			continue;
		}
		snprintf(name, sizeof(name), "%s.part", ss->files[i].name);
		if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			bytes += (uint64_t)st.st_blocks * 512;
	}
	return bytes;
}
