/* SPDX-License-Identifier: MIT
 * test_store.c — the series store over a fake source: the store's calls into source.c
 * are wrapped at link time (-Wl,--wrap, see the Makefile), so each series' zip is a file
 * of the hostile corpus served as NBIA would serve it, and the test counts the
 * downloads. Single flight (threads of one store, and two stores sharing one folder as
 * two processes would), LRU eviction under the cap, a refused zip that leaves nothing,
 * and the cleanup of what a dead process left in tmp/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "source.h"
#include "store.h"

#define ZIPS "tests/hostile/zips/"

/* ---- the fake source ------------------------------------------------------------------ */

/* What each series UID is served as, and how many times it was asked for. */
struct fake_series {
	const char *uid;
	const char *zip;
	unsigned delay_ms; /* before the body: downloads then overlap */
	unsigned gets;     /* atomic */
};

static struct fake_series fake[] = {
	{ "1.2.3.1", ZIPS "ok-many.zip", 300, 0 }, { "1.2.3.2", ZIPS "ok-many.zip", 0, 0 },
	{ "1.2.3.3", ZIPS "ok-many.zip", 0, 0 },   { "1.2.3.4", ZIPS "bad-crc.zip", 0, 0 },
	{ "1.2.3.5", ZIPS "ok-flat.zip", 300, 0 },
};

static struct fake_series *fake_find(const char *uid)
{
	size_t i;

	for (i = 0; i < sizeof(fake) / sizeof(fake[0]); i++)
		if (strcmp(fake[i].uid, uid) == 0)
			return &fake[i];
	return NULL;
}

static unsigned fake_gets(const char *uid)
{
	return __atomic_load_n(&fake_find(uid)->gets, __ATOMIC_SEQ_CST);
}

int __wrap_source_get_zip(struct source *src, const char *uid, bool md5, int fd, uint64_t expected,
			  uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes);
int __wrap_source_get_zip(struct source *src, const char *uid, bool md5, int fd, uint64_t expected,
			  uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes)
{
	struct fake_series *f = fake_find(uid);
	char buf[65536];
	ssize_t n;
	int in;

	(void)src, (void)md5, (void)expected, (void)max;
	*bytes = 0;
	if (!f)
		return -ENOENT;
	__atomic_add_fetch(&f->gets, 1, __ATOMIC_SEQ_CST);
	usleep(f->delay_ms * 1000);
	in = open(f->zip, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(fd, buf, (size_t)n) != n) {
			close(in);
			return -EIO;
		}
		*bytes += (uint64_t)n;
		if (progress)
			progress(arg, *bytes, 0);
	}
	close(in);
	return n < 0 ? -EIO : 0;
}

/* A series comes whole, as a zip; the archive gives no size apart from its record. */
bool __wrap_source_files_one_by_one(const struct source *src);
bool __wrap_source_files_one_by_one(const struct source *src)
{
	(void)src;
	return false;
}

int __wrap_source_series_bytes(struct source *src, const char *uid, int64_t *bytes);
int __wrap_source_series_bytes(struct source *src, const char *uid, int64_t *bytes)
{
	(void)src, (void)uid, (void)bytes;
	return -ENOENT;
}

char *__wrap_source_where(const struct source *src, const char *raw);
char *__wrap_source_where(const struct source *src, const char *raw)
{
	(void)src, (void)raw;
	return NULL;
}

void __wrap_source_cancel_fetches(struct source *src);
void __wrap_source_cancel_fetches(struct source *src)
{
	(void)src;
}

/* Never dereferenced: every call the store makes with it is wrapped above. */
static struct source *const fake_src = (struct source *)&fake;

/* ---- helpers -------------------------------------------------------------------------- */

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t i;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	for (i = 0; i < sizeof(fake) / sizeof(fake[0]); i++)
		fake[i].gets = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct store *open_store(const char *dir, uint64_t cap)
{
	struct store_opts o = { .dir = dir, .cap = cap, .max_fetches = 4, .unzip_threads = 2 };
	struct store *s;

	assert_int_equal(store_new(&o, fake_src, &s), 0);
	assert_int_equal(store_start(s), 0);
	return s;
}

/* Entries in dir/sub, "." and ".." aside. */
static size_t count_in(const char *dir, const char *sub)
{
	char path[256];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static bool stored(const char *dir, const char *uid)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/series/%s", dir, uid);
	return access(path, F_OK) == 0;
}

/* ---- single flight -------------------------------------------------------------------- */

struct getter {
	struct store *s;
	const char *uid;
	int rc;
	size_t count;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	struct store_series *ss;

	g->rc = store_get(g->s, g->uid, NULL, NULL, &ss);
	if (g->rc == 0) {
		g->count = store_series_count(ss);
		store_series_put(g->s, ss);
	}
	return NULL;
}

/* Eight threads ask for one series at once: one download, eight answers. */
static void test_one_download_for_many_callers(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, (uint64_t)1 << 30);
	struct getter g[8];
	pthread_t th[8];
	size_t i;

	for (i = 0; i < 8; i++) {
		g[i] = (struct getter){ s, "1.2.3.1", -1, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, getter_main, &g[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].rc, 0);
		assert_int_equal(g[i].count, 41); /* LICENSE too */
	}
	assert_int_equal(fake_gets("1.2.3.1"), 1);
	/* Stored: the next look costs nothing. */
	g[0] = (struct getter){ s, "1.2.3.1", -1, 0 };
	getter_main(&g[0]);
	assert_int_equal(g[0].rc, 0);
	assert_int_equal(fake_gets("1.2.3.1"), 1);
	assert_int_equal(count_in(f->dir, "tmp"), 0);
	store_free(s);
}

/* Two stores over one folder (two mounts sharing a cache): the per-series lock lets one
 * download while the other waits, and the other finds it stored. */
static void test_two_stores_share_one_download(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_store(f->dir, (uint64_t)1 << 30);
	struct store *b = open_store(f->dir, (uint64_t)1 << 30);
	struct getter g[2] = { { a, "1.2.3.5", -1, 0 }, { b, "1.2.3.5", -1, 0 } };
	pthread_t th[2];
	size_t i;

	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, getter_main, &g[i]), 0);
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].rc, 0);
		assert_int_equal(g[i].count, 4); /* LICENSE too */
	}
	assert_int_equal(fake_gets("1.2.3.5"), 1);
	store_free(a);
	store_free(b);
}

/* ---- eviction ------------------------------------------------------------------------- */

/* Sets a series folder's mtime, which orders eviction, to ago seconds back. */
static void age(const char *dir, const char *uid, int ago)
{
	struct timespec t[2];
	char path[256];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= ago;
	t[1] = t[0];
	snprintf(path, sizeof(path), "%s/series/%s", dir, uid);
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* Room for two series of ~200 kB: the third evicts the least recently used one, and a
 * series with a file open is never the one evicted, however old. */
static void test_eviction_is_least_recently_used(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, 450000);
	struct store_series *one, *ss;
	struct store_part *part = NULL;
	struct store_stats st;
	int fd;

	assert_int_equal(store_get(s, "1.2.3.1", NULL, NULL, &one), 0);
	assert_int_equal(store_get(s, "1.2.3.2", NULL, NULL, &ss), 0);
	store_series_put(s, ss);
	age(f->dir, "1.2.3.1", 50);
	age(f->dir, "1.2.3.2", 100); /* fetched later, used longer ago */
	assert_int_equal(store_get(s, "1.2.3.3", NULL, NULL, &ss), 0);
	store_series_put(s, ss);
	assert_true(stored(f->dir, "1.2.3.1"));
	assert_false(stored(f->dir, "1.2.3.2"));
	assert_true(stored(f->dir, "1.2.3.3"));
	assert_int_equal(store_peek(s, "1.2.3.2", &ss), -ENOENT);
	/* The oldest now, but open: the next fetch evicts the other one. */
	assert_int_equal(store_open(s, one, 0, NULL, &fd, &part), 0);
	age(f->dir, "1.2.3.1", 200);
	assert_int_equal(store_get(s, "1.2.3.2", NULL, NULL, &ss), 0);
	store_series_put(s, ss);
	assert_true(stored(f->dir, "1.2.3.1"));
	assert_false(stored(f->dir, "1.2.3.3"));
	store_close(s, one, fd, part);
	store_series_put(s, one);
	assert_int_equal(store_stats(s, &st), 0);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.fetched, 4);
	assert_true(st.bytes <= 450000);
	store_stats_clear(&st);
	store_free(s);
}

/* ---- failures ------------------------------------------------------------------------- */

/* A zip that fails its CRC: -EIO, nothing in series/ or tmp/, and a caller right after is
 * answered with that failure rather than a second download. */
static void test_a_refused_zip_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, (uint64_t)1 << 30);
	struct store_series *ss;
	struct store_stats st;

	assert_int_equal(store_get(s, "1.2.3.4", NULL, NULL, &ss), -EIO);
	assert_false(stored(f->dir, "1.2.3.4"));
	assert_int_equal(count_in(f->dir, "series"), 0);
	assert_int_equal(count_in(f->dir, "tmp"), 0);
	assert_int_equal(store_get(s, "1.2.3.4", NULL, NULL, &ss), -EIO);
	assert_int_equal(fake_gets("1.2.3.4"), 1);
	assert_int_equal(store_stats(s, &st), 0);
	assert_int_equal(st.fetch_errors, 1);
	store_stats_clear(&st);
	/* Not a DICOM UID: refused before anything is asked. */
	assert_int_equal(store_get(s, "../etc", NULL, NULL, &ss), -EIO);
	store_free(s);
}

/* ---- cleanup after a crash ------------------------------------------------------------ */

/* What a dead process of this host left in tmp/ goes when a store opens; a live one's
 * work stays. */
static void test_a_dead_process_leftovers_are_removed(void **state)
{
	struct fixture *f = *state;
	char host[256], path[512], live[512];
	struct store *s;
	pid_t dead;
	int i, fd;

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	for (i = 0; host[i]; i++)
		if (host[i] == '.' || host[i] == '/')
			host[i] = '_';
	dead = fork();
	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	snprintf(path, sizeof(path), "%s/tmp", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tmp/1.2.3.9.%s.%d.1.zip", f->dir, host, (int)dead);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/tmp/1.2.3.9.%s.%d.1.d", f->dir, host, (int)dead);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(live, sizeof(live), "%s/tmp/1.2.3.8.%s.%d.1.zip", f->dir, host, (int)getpid());
	fd = open(live, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	s = open_store(f->dir, (uint64_t)1 << 30);
	assert_int_equal(count_in(f->dir, "tmp"), 1);
	assert_int_equal(access(live, F_OK), 0);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_download_for_many_callers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_two_stores_share_one_download, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eviction_is_least_recently_used, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_refused_zip_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_dead_process_leftovers_are_removed, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
