/* SPDX-License-Identifier: MIT
 * Unit tests for inodes.c: numbers stay the same while looked up, nodes go with the
 * kernel's last FORGET and take with them parents nobody else keeps, paths are made
 * back from numbers (and refused when too long), kept listings are counted and taken. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inodes.h"

static void held_is(struct inodes *t, unsigned long want_inodes, unsigned long want_kept)
{
	unsigned long n, k;

	inodes_held(t, &n, &k);
	assert_int_equal(n, want_inodes);
	assert_int_equal(k, want_kept);
}

static void path_is(struct inodes *t, uint64_t ino, const char *name, const char *want)
{
	char buf[256];

	assert_int_equal(inodes_path(t, ino, name, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void test_lookups_and_forgets(void **state)
{
	struct inodes *t;
	uint64_t a, b, c, a2, other;

	(void)state;
	assert_int_equal(inodes_new(&t), 0);
	a = inodes_get(t, INODES_ROOT, "TCGA-LUAD");
	b = inodes_get(t, a, "TCGA-05-4244");
	c = inodes_get(t, b, "1 CT-12345");
	assert_true(a && b && c && a != b && b != c && a != INODES_ROOT);
	/* The same name in the same folder is the same inode, looked up once more. */
	a2 = inodes_get(t, INODES_ROOT, "TCGA-LUAD");
	assert_true(a2 == a);
	other = inodes_get(t, b, "TCGA-LUAD"); /* the same name elsewhere */
	assert_true(other != a);
	held_is(t, 4, 0);
	path_is(t, INODES_ROOT, NULL, "/");
	path_is(t, INODES_ROOT, "x", "/x");
	path_is(t, c, NULL, "/TCGA-LUAD/TCGA-05-4244/1 CT-12345");
	path_is(t, b, "patient.json", "/TCGA-LUAD/TCGA-05-4244/patient.json");
	/* A folder the kernel forgot stays while its children are held. */
	inodes_put(t, a, 2);
	inodes_put(t, b, 1);
	held_is(t, 4, 0);
	path_is(t, c, NULL, "/TCGA-LUAD/TCGA-05-4244/1 CT-12345");
	inodes_put(t, other, 1);
	held_is(t, 3, 0);
	/* The last child gone, the chain goes with it. */
	inodes_put(t, c, 1);
	held_is(t, 0, 0);
	/* Forgetting more than was looked up frees, and never goes below nothing. */
	a = inodes_get(t, INODES_ROOT, "x");
	inodes_put(t, a, 99);
	held_is(t, 0, 0);
	inodes_put(t, INODES_ROOT, 1); /* the root stays */
	path_is(t, INODES_ROOT, NULL, "/");
	inodes_free(t);
}

static void test_paths_too_long(void **state)
{
	struct inodes *t;
	char buf[16], name[300];
	uint64_t a;

	(void)state;
	assert_int_equal(inodes_new(&t), 0);
	a = inodes_get(t, INODES_ROOT, "abcdefgh");
	assert_int_equal(inodes_path(t, a, NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/abcdefgh");
	/* "/abcdefgh/12345" and its NUL fill the 16 bytes exactly; one more is too many. */
	assert_int_equal(inodes_path(t, a, "123456", buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(inodes_path(t, a, "12345", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/abcdefgh/12345");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(inodes_path(t, INODES_ROOT, name, buf, sizeof(buf)), -ENAMETOOLONG);
	inodes_put(t, a, 1);
	inodes_free(t);
}

static void test_kept_listings(void **state)
{
	struct inodes *t;
	uint64_t a, b, *inos, stamp;
	bool kept, stamped;
	size_t n;

	(void)state;
	assert_int_equal(inodes_new(&t), 0);
	a = inodes_get(t, INODES_ROOT, "a");
	b = inodes_get(t, a, "b");
	inodes_keep(t, INODES_ROOT, true, true, 7);
	inodes_keep(t, a, true, false, 0);
	inodes_keep(t, b, true, true, 9);
	held_is(t, 2, 3);
	inodes_listing(t, b, &kept, &stamped, &stamp);
	assert_true(kept && stamped && stamp == 9);
	inodes_listing(t, a, &kept, &stamped, &stamp);
	assert_true(kept && !stamped);
	inodes_keep(t, a, false, false, 0);
	held_is(t, 2, 2);
	/* A forgotten folder takes its kept listing with it. */
	inodes_put(t, b, 1);
	held_is(t, 1, 1);
	inodes_keep(t, a, true, true, 3);
	assert_int_equal(inodes_take_kept(t, &inos, &n), 0);
	assert_int_equal(n, 2);
	assert_true((inos[0] == INODES_ROOT && inos[1] == a) ||
		    (inos[1] == INODES_ROOT && inos[0] == a));
	free(inos);
	held_is(t, 1, 0);
	inodes_listing(t, INODES_ROOT, &kept, &stamped, &stamp);
	assert_false(kept);
	inodes_put(t, a, 1);
	inodes_free(t);
}

/* Every number marked rendered, past the first array's room (64), and no other. */
static void test_rendered(void **state)
{
	uint64_t *inos, dir, want[100];
	struct inodes *t;
	char name[32];
	size_t i, j, n;

	(void)state;
	assert_int_equal(inodes_new(&t), 0);
	dir = inodes_get(t, INODES_ROOT, "coll");
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "p%zu", i);
		want[i] = inodes_get(t, inodes_get(t, dir, name), "patient.json");
		inodes_set_rendered(t, want[i]);
	}
	inodes_get(t, dir, "series.csv");
	assert_int_equal(inodes_rendered(t, &inos, &n), 0);
	assert_int_equal(n, 100);
	for (i = 0; i < 100; i++) {
		for (j = 0; j < n && inos[j] != want[i]; j++)
			;
		assert_true(j < n);
	}
	free(inos);
	inodes_free(t);
}

/* Many names: the table grows, and every number still leads back to its path. */
static void test_many(void **state)
{
	enum { N = 20000 };
	uint64_t *ino = calloc(N, sizeof(*ino)), dir;
	struct inodes *t;
	char want[64];
	size_t i;

	(void)state;
	assert_non_null(ino);
	assert_int_equal(inodes_new(&t), 0);
	dir = inodes_get(t, INODES_ROOT, "Scale-Test");
	for (i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "SCALE-%05zu", i);
		ino[i] = inodes_get(t, dir, want);
		assert_true(ino[i] != 0);
	}
	held_is(t, N + 1, 0);
	for (i = 0; i < N; i += 997) {
		char got[64];

		snprintf(want, sizeof(want), "/Scale-Test/SCALE-%05zu", i);
		assert_int_equal(inodes_path(t, ino[i], NULL, got, sizeof(got)), 0);
		assert_string_equal(got, want);
	}
	inodes_put(t, dir, 1);
	for (i = 0; i < N; i++)
		inodes_put(t, ino[i], 1);
	held_is(t, 0, 0);
	inodes_free(t);
	free(ino);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookups_and_forgets),
		cmocka_unit_test(test_paths_too_long),
		cmocka_unit_test(test_kept_listings),
		cmocka_unit_test(test_rendered),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
