/* SPDX-License-Identifier: MIT
 * Unit tests for tree.c: name sanitising, probe names, and the nodes that exist without
 * any request (root, README.txt). The API URL points at a closed port, so anything that
 * did make a request would fail with EIO instead of the expected answer. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "tcia.h"
#include "tree.h"

static void check_name(const char *in, const char *want)
{
	char *s = tree_sanitize_name(in);

	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void test_sanitize(void **state)
{
	(void)state;
	check_name("LIDC-IDRI", "LIDC-IDRI");
	check_name("CT COLONOGRAPHY", "CT COLONOGRAPHY");
	check_name("Axial FSE/T2 FS", "Axial FSE_T2 FS");
	check_name("Odd/Names\x07\tX\x7f", "Odd_Names__X_");
	check_name("", "_empty_");
	check_name(".", "_dot_");
	check_name("..", "_dotdot_");
	check_name(".hidden", "_hidden");
	check_name("Séquence 脚", "Séquence 脚");
}

static void test_sanitize_long(void **state)
{
	char in[400], *s;
	size_t i;

	(void)state;
	/* 127 two-byte characters then more: a cut at 255 would split the 128th. */
	for (i = 0; i + 1 < 300; i += 2) {
		in[i] = (char)0xC3;
		in[i + 1] = (char)0x9C;
	}
	in[300] = '\0';
	s = tree_sanitize_name(in);
	assert_non_null(s);
	assert_int_equal(strlen(s), 254);
	assert_int_equal((unsigned char)s[253], 0x9C);
	free(s);

	memset(in, 'a', 399);
	in[399] = '\0';
	s = tree_sanitize_name(in);
	assert_int_equal(strlen(s), 255);
	free(s);
}

static void test_probe_names(void **state)
{
	(void)state;
	assert_true(tree_is_probe_name(".hidden"));
	assert_true(tree_is_probe_name(".directory"));
	assert_true(tree_is_probe_name(".DS_Store"));
	assert_true(tree_is_probe_name(".git"));
	assert_true(tree_is_probe_name("desktop.ini"));
	assert_true(tree_is_probe_name("autorun.inf"));
	assert_true(tree_is_probe_name("Thumbs.db"));
	assert_false(tree_is_probe_name("LIDC-IDRI"));
	assert_false(tree_is_probe_name("README.txt"));
}

struct fixture {
	struct http *http;
	struct tcia *tcia;
	struct tree *tree;
};

static int setup(void **state)
{
	struct http_opts ho = { .connect_timeout = 1, .stall_timeout = 1, .retries = 0 };
	struct tree_opts to = { .cache_dir = "/nonexistent/cache", .meta_ttl = 60 };
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(http_new(&ho, &f->http), 0);
	assert_int_equal(tcia_new(f->http, NULL, "http://127.0.0.1:1/nbia-api/services/v4/", &f->tcia), 0);
	assert_int_equal(tree_new(f->tcia, &to, &f->tree), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tree_free(f->tree);
	tcia_free(f->tcia);
	http_free(f->http);
	free(f);
	return 0;
}

static void test_offline_nodes(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char buf[4096];
	ssize_t n;

	assert_int_equal(tree_stat(f->tree, "/", &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0555);
	assert_int_equal(tree_stat(f->tree, "/README.txt", &st), 0);
	assert_true(S_ISREG(st.st_mode));
	n = tree_read(f->tree, "/README.txt", buf, sizeof(buf) - 1, 0);
	assert_int_equal(n, st.st_size);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "/nonexistent/cache"));
	assert_non_null(strstr(buf, "http://127.0.0.1:1/nbia-api/services/v4\n"));
	assert_int_equal(tree_read(f->tree, "/README.txt", buf, 10, st.st_size), 0);
	assert_int_equal(tree_read(f->tree, "/README.txt", buf, 4, 2), 4);
	assert_memory_equal(buf, "iafs", 4);
	/* Probe names never reach the network: ENOENT, not EIO. */
	assert_int_equal(tree_stat(f->tree, "/.hidden", &st), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/desktop.ini", &st), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/X/.git", &st), -ENOENT);
	assert_int_equal(tree_open(f->tree, "/README.txt", O_RDONLY), 0);
	assert_int_equal(tree_open(f->tree, "/README.txt", O_WRONLY), -EROFS);
	assert_int_equal(tree_open(f->tree, "/README.txt", O_RDWR), -EROFS);
	assert_int_equal(tree_open(f->tree, "/", O_RDONLY), -EISDIR);
}

static void test_api_down(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	/* A collection needs the list: the API is unreachable, so the errno comes back. */
	assert_int_equal(tree_stat(f->tree, "/LIDC-IDRI", &st), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_sanitize_long),
		cmocka_unit_test(test_probe_names),
		cmocka_unit_test_setup_teardown(test_offline_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_down, setup, teardown),
	};
	int rc;

	if (http_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("tree", tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
