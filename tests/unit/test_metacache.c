/* SPDX-License-Identifier: MIT
 * Unit tests for metacache.c with a scripted fetch function: TTL, single-flight across
 * threads, stale-if-error, the disk copy across instances, offline, forget, damaged files,
 * SIGHUP-style expiry and the memory bound. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "metacache.h"

struct script {
	pthread_mutex_t lock;
	int calls;
	int fail; /* -errno to return instead of an answer */
	long sleep_ms;
	const char *answer;
	size_t answer_len; /* 0 = strlen(answer) */
};

static int fetch(void *arg, char **body, size_t *len)
{
	struct script *s = arg;
	struct timespec ts = { s->sleep_ms / 1000, (s->sleep_ms % 1000) * 1000000L };
	size_t n = s->answer_len ? s->answer_len : strlen(s->answer);

	pthread_mutex_lock(&s->lock);
	s->calls++;
	pthread_mutex_unlock(&s->lock);
	if (s->sleep_ms)
		nanosleep(&ts, NULL);
	if (s->fail)
		return s->fail;
	*body = malloc(n + 1);
	assert_non_null(*body);
	memcpy(*body, s->answer, n);
	(*body)[n] = '\0';
	*len = n;
	return 0;
}

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/tciafs-mc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct metacache *mc_open(long ttl, bool offline, size_t mem_max)
{
	struct metacache_opts o = {
		.dir = dir, .ttl = ttl, .offline = offline, .mem_max = mem_max
	};
	struct metacache *mc;

	assert_int_equal(metacache_new(&o, &mc), 0);
	return mc;
}

static void get_expect(struct metacache *mc, const char *key, struct script *s, int want_rc,
		       const char *want)
{
	char *body;
	size_t len;

	assert_int_equal(metacache_get(mc, key, fetch, s, &body, &len), want_rc);
	if (want_rc == 0) {
		assert_int_equal(len, strlen(want));
		assert_string_equal(body, want);
		free(body);
	} else {
		assert_null(body);
	}
}

static void test_ttl(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "[1]", 0 };
	struct metacache *mc = mc_open(3600, false, 0);

	(void)state;
	get_expect(mc, "k", &s, 0, "[1]");
	get_expect(mc, "k", &s, 0, "[1]");
	assert_int_equal(s.calls, 1);
	metacache_free(mc);

	/* TTL 0: every get asks again. */
	mc = mc_open(0, false, 0);
	get_expect(mc, "k2", &s, 0, "[1]");
	get_expect(mc, "k2", &s, 0, "[1]");
	assert_int_equal(s.calls, 3);
	metacache_free(mc);
}

struct getter {
	struct metacache *mc;
	struct script *s;
	int rc;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	char *body = NULL;
	size_t len;

	g->rc = metacache_get(g->mc, "same", fetch, g->s, &body, &len);
	if (g->rc == 0 && strcmp(body, "[\"shared\"]") != 0)
		g->rc = -EBADMSG;
	free(body);
	return NULL;
}

static void test_single_flight(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 300, "[\"shared\"]", 0 };
	struct metacache *mc = mc_open(3600, false, 0);
	struct getter g[16];
	pthread_t t[16];
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		g[i] = (struct getter){ mc, &s, -1 };
		assert_int_equal(pthread_create(&t[i], NULL, getter_main, &g[i]), 0);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(g[i].rc, 0);
	}
	assert_int_equal(s.calls, 1);
	metacache_free(mc);
}

static void test_single_flight_failure(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, -EIO, 300, "x", 0 };
	struct metacache *mc = mc_open(3600, false, 0);
	struct getter g[8];
	pthread_t t[8];
	int i;

	(void)state;
	for (i = 0; i < 8; i++) {
		g[i] = (struct getter){ mc, &s, 0 };
		pthread_create(&t[i], NULL, getter_main, &g[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(g[i].rc, -EIO);
	}
	/* Waiters share the failure instead of each retrying. */
	assert_true(s.calls < 8);
	metacache_free(mc);
}

static void test_stale_if_error(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "[\"old\"]", 0 };
	struct metacache *mc = mc_open(3600, false, 0);
	struct metacache_stats st;

	(void)state;
	get_expect(mc, "k", &s, 0, "[\"old\"]");
	metacache_expire_all(mc); /* SIGHUP */
	s.fail = -ETIMEDOUT;
	get_expect(mc, "k", &s, 0, "[\"old\"]");
	assert_int_equal(s.calls, 2);
	metacache_stats(mc, &st);
	assert_int_equal(st.stale_served, 1);
	assert_int_equal(st.fetch_errors, 1);
	/* Never fetched and failing: the error comes back. */
	get_expect(mc, "other", &s, -ETIMEDOUT, NULL);
	/* The refresh works again: the new answer replaces the old. */
	s.fail = 0;
	s.answer = "[\"new\"]";
	get_expect(mc, "k", &s, 0, "[\"new\"]");
	metacache_free(mc);
}

static void test_disk_and_offline(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "[\"disk\"]", 0 };
	struct metacache *mc = mc_open(3600, false, 0);

	(void)state;
	get_expect(mc, "http://x/getPatient?Collection=A", &s, 0, "[\"disk\"]");
	metacache_free(mc);
	/* A new instance (a remount) reads the disk copy: no fetch. */
	mc = mc_open(3600, false, 0);
	get_expect(mc, "http://x/getPatient?Collection=A", &s, 0, "[\"disk\"]");
	assert_int_equal(s.calls, 1);
	metacache_free(mc);
	/* Offline: served whatever its age; a missing key is EIO without a fetch. */
	mc = mc_open(0, true, 0);
	get_expect(mc, "http://x/getPatient?Collection=A", &s, 0, "[\"disk\"]");
	get_expect(mc, "http://x/getPatient?Collection=B", &s, -EIO, NULL);
	assert_int_equal(s.calls, 1);
	metacache_free(mc);
}

static void test_empty_answer_and_binary(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "", 0 };
	struct metacache *mc = mc_open(3600, false, 0);

	(void)state;
	get_expect(mc, "empty", &s, 0, "");
	metacache_free(mc);
	mc = mc_open(3600, false, 0);
	get_expect(mc, "empty", &s, 0, "");
	assert_int_equal(s.calls, 1);
	metacache_free(mc);
}

static void test_forget_and_damage(void **state)
{
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "[2]", 0 };
	struct metacache *mc = mc_open(3600, false, 0);
	struct dirent *de;
	char path[600];
	DIR *d;
	FILE *f;
	int files = 0;

	(void)state;
	get_expect(mc, "k", &s, 0, "[2]");
	metacache_forget(mc, "k");
	get_expect(mc, "k", &s, 0, "[2]");
	assert_int_equal(s.calls, 2);
	metacache_free(mc);
	/* Damage the disk copy: it is ignored (with a warning) and fetched again. */
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		files++;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "r+");
		assert_non_null(f);
		assert_int_equal(ftruncate(fileno(f), 20), 0);
		fclose(f);
	}
	closedir(d);
	assert_int_equal(files, 1);
	mc = mc_open(3600, false, 0);
	get_expect(mc, "k", &s, 0, "[2]");
	assert_int_equal(s.calls, 3);
	metacache_free(mc);
}

static void test_memory_bound(void **state)
{
	static char big[40000];
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, big, 0 };
	struct metacache *mc = mc_open(3600, false, 64 * 1024);
	struct metacache_stats st;
	char key[32];
	int i;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	/* Answers over a quarter of the budget live on disk only; still served. */
	get_expect(mc, "big", &s, 0, big);
	get_expect(mc, "big", &s, 0, big);
	assert_int_equal(s.calls, 1);
	metacache_stats(mc, &st);
	assert_int_equal(st.mem_bytes, 0);
	big[10000] = '\0';
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		get_expect(mc, key, &s, 0, big);
		metacache_stats(mc, &st);
		assert_true(st.mem_bytes <= 64 * 1024);
	}
	/* Evicted from memory, still answered from disk without a fetch. */
	get_expect(mc, "k0", &s, 0, big);
	assert_int_equal(s.calls, 21);
	metacache_free(mc);
}

/* The bytes of answers on disk (files named by 16 hex digits). */
static size_t disk_bytes(void)
{
	struct dirent *de;
	char path[512];
	size_t total = 0;
	FILE *f;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 16)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		total += (size_t)ftell(f);
		fclose(f);
	}
	closedir(d);
	return total;
}

/* Issue 14 #7: what is kept on disk has a cap; the oldest go first, and an answer over
 * half of it is never written (one hostile answer once stored 195 MB). */
static void test_disk_bound(void **state)
{
	struct metacache_opts o = {
		.dir = dir, .ttl = 3600, .mem_max = 1024, .disk_max = 64 * 1024
	};
	static char body[40 * 1024];
	struct script s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, body, 0 };
	struct metacache *mc;
	char key[32];
	int i;

	(void)state;
	assert_int_equal(metacache_new(&o, &mc), 0);
	memset(body, 'b', sizeof(body) - 1);
	get_expect(mc, "huge", &s, 0, body); /* 40 kB: over half the cap */
	assert_int_equal(disk_bytes(), 0);
	body[4000] = '\0';
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		get_expect(mc, key, &s, 0, body);
		assert_true(disk_bytes() <= 64 * 1024);
	}
	assert_true(disk_bytes() >= 32 * 1024); /* trimmed to 3/4, not emptied */
	/* The newest is still on disk: a new instance serves it without a fetch. */
	metacache_free(mc);
	assert_int_equal(metacache_new(&o, &mc), 0);
	get_expect(mc, "k39", &s, 0, body);
	assert_int_equal(s.calls, 41);
	metacache_free(mc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_flight_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_if_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_and_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_answer_and_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_and_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_bound, setup, teardown),
	};

	return cmocka_run_group_tests_name("metacache", tests, NULL, NULL);
}
