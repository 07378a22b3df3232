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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "http.h"
#include "tcia.h"
#include "source.h"
#include "tree.h"

static void check_name(const char *in, const char *want)
{
	char *s = names_sanitize(in);

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
	/* Bidi controls become '_' (issue 14 #12): no name may reorder what is shown. */
	check_name("evil\u202egpj.exe", "evil_gpj.exe");
	check_name("\u2066a\u2069\u200e\u200f\u061c\u202a", "_a_____");
	check_name("\u2028 stays", "\u2028 stays");
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
	s = names_sanitize(in);
	assert_non_null(s);
	assert_int_equal(strlen(s), 254);
	assert_int_equal((unsigned char)s[253], 0x9C);
	free(s);

	memset(in, 'a', 399);
	in[399] = '\0';
	s = names_sanitize(in);
	assert_int_equal(strlen(s), 255);
	free(s);

	/* Found by fuzz_names: a dot and then only continuation bytes (not UTF-8) once
	 * backed off to an empty name. */
	in[0] = '.';
	memset(in + 1, 0xA1, 350);
	in[351] = '\0';
	s = names_sanitize(in);
	assert_int_equal(strlen(s), 255);
	assert_int_equal(s[0], '_');
	free(s);
}

static void test_probe_names(void **state)
{
	(void)state;
	assert_true(names_is_probe(".hidden"));
	assert_true(names_is_probe(".directory"));
	assert_true(names_is_probe(".DS_Store"));
	assert_true(names_is_probe(".git"));
	assert_true(names_is_probe("desktop.ini"));
	assert_true(names_is_probe("autorun.inf"));
	assert_true(names_is_probe("Thumbs.db"));
	assert_false(names_is_probe("LIDC-IDRI"));
	assert_false(names_is_probe("README.txt"));
}

struct fixture {
	struct http *http;
	struct tcia *tcia;
	struct source *src;
	struct catalog *cat;
	struct tree *tree;
	char dir[64];
};

static int setup(void **state)
{
	struct http_opts ho = { .connect_timeout = 1, .stall_timeout = 1, .retries = 0 };
	struct tree_opts to = { .cache_dir = "/nonexistent/cache",
				.meta_ttl = 60,
				.naming_uid = false };
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(http_new(&ho, &f->http), 0);
	assert_int_equal(
		tcia_new(f->http, NULL, "http://127.0.0.1:1/nbia-api/services/v4/", &f->tcia), 0);
	assert_int_equal(source_new_nbia(f->tcia, &f->src), 0);
	assert_int_equal(tree_new(f->src, &to, &f->tree), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/tciafs-tree-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	{
		struct catalog_opts co = { .dir = f->dir, .host = "test" };

		assert_int_equal(catalog_open(&co, &f->cat), 0);
	}
	tree_set_catalog(f->tree, f->cat);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	char cmd[96];

	tree_free(f->tree);
	catalog_free(f->cat);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	source_free(f->src);
	tcia_free(f->tcia);
	http_free(f->http);
	free(f);
	return 0;
}

static void test_offline_nodes(void **state)
{
	struct fixture *f = *state;
	struct tree_file *fh;
	struct stat st;
	char buf[4096];
	ssize_t n;

	assert_int_equal(tree_stat(f->tree, "/", NULL, &st, NULL), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0555);
	assert_int_equal(tree_stat(f->tree, "/README.txt", NULL, &st, NULL), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(tree_open(f->tree, "/README.txt", O_RDONLY, NULL, &fh), 0);
	n = tree_read(fh, buf, sizeof(buf) - 1, 0);
	assert_int_equal(n, st.st_size);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "/nonexistent/cache"));
	assert_non_null(strstr(buf, "http://127.0.0.1:1/nbia-api/services/v4 (NBIA)\n"));
	assert_int_equal(tree_read(fh, buf, 10, st.st_size), 0);
	assert_int_equal(tree_read(fh, buf, 4, 2), 4);
	assert_memory_equal(buf, "iafs", 4);
	tree_close(fh);
	/* Probe names never reach the network: ENOENT, not EIO. */
	assert_int_equal(tree_stat(f->tree, "/.hidden", NULL, &st, NULL), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/desktop.ini", NULL, &st, NULL), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/X/.git", NULL, &st, NULL), -ENOENT);
	/* *.json that is not ours, anywhere: no request either. */
	assert_int_equal(tree_stat(f->tree, "/x.json", NULL, &st, NULL), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/C/patient.json", NULL, &st, NULL), -ENOENT);
	assert_int_equal(tree_stat(f->tree, "/C/P/collection.json", NULL, &st, NULL), -ENOENT);
	assert_int_equal(tree_open(f->tree, "/README.txt", O_WRONLY, NULL, &fh), -EROFS);
	assert_int_equal(tree_open(f->tree, "/README.txt", O_RDWR, NULL, &fh), -EROFS);
	assert_int_equal(tree_open(f->tree, "/", O_RDONLY, NULL, &fh), -EISDIR);
	assert_null(fh);
}

static void test_api_down(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	/* A collection needs the list: the API is unreachable, so the errno comes back. */
	assert_int_equal(tree_stat(f->tree, "/LIDC-IDRI", NULL, &st, NULL), -EIO);
}

static void check_study(const char *date, const char *desc, const char *uid, bool full,
			const char *want)
{
	char *s = names_study(date, desc, uid, full);

	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void test_folder_names(void **state)
{
	char desc[400], *s;

	(void)state;
	check_study("2000-01-01 00:00:00.0", "CT CHEST", "1.2.3.30178", false,
		    "2000-01-01 CT CHEST-30178");
	check_study("2000-01-01 00:00:00.0", "CT CHEST", "1.2.3.30178", true,
		    "2000-01-01 CT CHEST-1.2.3.30178");
	check_study(NULL, "CT/CHEST", "1.2.3.30178", false, "CT_CHEST-30178");
	check_study("2000-01-01", NULL, "7", false, "2000-01-01-7");
	check_study(NULL, NULL, "1.2.3.30178", false, "30178");
	s = names_series("3000566", "CT", "Recon 2", "1.2.61228", false);
	assert_string_equal(s, "3000566 CT Recon 2-61228");
	free(s);
	s = names_series("2", "MR", "Axial FSE/T2\x01", "9.99999", false);
	assert_string_equal(s, "2 MR Axial FSE_T2_-99999");
	free(s);
	/* Over-long: the description is cut on a UTF-8 boundary, the UID tail kept whole. */
	memset(desc, 0, sizeof(desc));
	for (size_t i = 0; i + 1 < 380; i += 2) {
		desc[i] = (char)0xC3;
		desc[i + 1] = (char)0x9C;
	}
	s = names_series("1", "CT", desc, "1.2.3.4.56789", false);
	assert_true(strlen(s) <= 255);
	assert_string_equal(s + strlen(s) - 6, "-56789");
	assert_true(((unsigned char)s[strlen(s) - 7] & 0xC0) != 0xC0);
	free(s);
}

/* A collection in the catalog as a bulk load leaves it: patients whose objects differ
 * in their keys, so that a column first appears after rows are written. */
static void load_table_fixture(struct catalog *c)
{
	struct catalog_coll coll = { "C", "C" };
	struct catalog_patient p1 = { "C", "P1", "P1", "{\"PatientId\":\"P1\"}" };
	struct catalog_patient p2 = { "C", "P2", "P2",
				      "{\"PatientId\":\"P2\",\"PatientSex\":\"F\",\"N\":1.5}" };
	struct catalog_load *l;

	assert_int_equal(catalog_load_begin(c, CATALOG_ARCHIVE, NULL, NULL, &l), 0);
	assert_int_equal(catalog_add_coll(l, &coll), 0);
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	assert_int_equal(catalog_add_patient(l, &p2), 0);
	assert_int_equal(catalog_add_patient(l, &p1), 0);
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	assert_int_equal(catalog_load_commit(l), 0);
}

/* patients.csv: the column P2 brings comes after P1's row was written, so the table is
 * rendered again with every column; nothing is asked of the (unreachable) API. */
static void test_table_learns_late_columns(void **state)
{
	struct fixture *f = *state;
	struct tree_opts to = { .cache_dir = f->dir, .mountpoint = "/mnt", .meta_ttl = 60 };
	struct tree *tree;
	struct tree_file *fh;
	char buf[512];
	ssize_t n;

	assert_int_equal(tree_new(f->src, &to, &tree), 0);
	tree_set_catalog(tree, f->cat);
	load_table_fixture(f->cat);
	assert_int_equal(tree_open(tree, "/C/patients.csv", O_RDONLY, NULL, &fh), 0);
	n = tree_read(fh, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "PatientId,PatientSex,N,Path\r\n"
				 "P1,,,/mnt/C/P1\r\n"
				 "P2,F,1.5,/mnt/C/P2\r\n");
	tree_close(fh);
	tree_free(tree);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_sanitize_long),
		cmocka_unit_test(test_probe_names),
		cmocka_unit_test(test_folder_names),
		cmocka_unit_test_setup_teardown(test_offline_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_learns_late_columns, setup, teardown),
	};
	int rc;

	if (http_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("tree", tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
