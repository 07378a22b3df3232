/* SPDX-License-Identifier: MIT
 * Unit tests for unzip.c over the hostile corpus in tests/hostile/zips (made by
 * make_zips.py): good zips extract exactly; every bad one is refused with an errno and
 * leaves its folder empty and nothing outside it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "unzip.h"

struct zcase {
	const char *file;
	int64_t expect_count;
	int64_t expect_bytes;
	int threads;
	int want_rc;
	size_t want_files; /* entries extracted, LICENSE included */
};

static const struct zcase cases[] = {
	{ "ok-flat.zip", 3, 6000, 1, 0, 4 },
	{ "ok-flat.zip", -1, -1, 2, 0, 4 },
	{ "ok-many.zip", 40, 200000, 2, 0, 41 },
	{ "ok-many.zip", 40, 200000, 4, 0, 41 },
	{ "ok-stored.zip", 1, 2000, 1, 0, 2 },
	/* Metadata that disagrees with the zip. */
	{ "ok-flat.zip", 4, -1, 1, -EIO, 0 },
	{ "ok-flat.zip", -1, 5999, 1, -EIO, 0 },
	{ "bad-empty.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-license-only.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-dotdot.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-absolute.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-subdir.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-dir-entry.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-symlink.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-device.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-fifo.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-duplicate.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-dotfile.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-backslash.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-control.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-series-json.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-crc.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-crc.zip", -1, -1, 3, -EIO, 0 },
	{ "bad-truncated.zip", -1, -1, 1, -EIO, 0 },
	{ "bad-notzip.zip", -1, -1, 1, -EIO, 0 },
	/* A bomb: refused before a byte is written, by the metadata or by the ratio. */
	{ "bad-bomb.zip", 1, 4096, 1, -EIO, 0 },
	{ "bad-bomb.zip", -1, -1, 1, -EIO, 0 },
	/* A liar: stopped at the declared size. */
	{ "bad-lying-size.zip", -1, -1, 1, -EIO, 0 },
};

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Zips as getImageWithMD5Hash sends them, extracted with their list checked. */
struct md5case {
	const char *file;
	int threads;
	int want_rc;
	size_t want_files; /* extracted: the list itself is not */
	size_t want_verified;
};

static const struct md5case md5_cases[] = {
	{ "md5-ok.zip", 1, 0, 4, 3 },
	{ "md5-ok.zip", 3, 0, 4, 3 },
	{ "md5-ok-quoted.zip", 2, 0, 4, 3 },
	{ "md5-bad-mismatch.zip", 1, -EIO, 0, 0 },
	{ "md5-bad-mismatch.zip", 3, -EIO, 0, 0 },
	{ "md5-bad-missing.zip", 1, -EIO, 0, 0 },
	{ "md5-bad-extra.zip", 1, -EIO, 0, 0 },
	{ "md5-bad-twice.zip", 1, -EIO, 0, 0 },
	{ "md5-bad-garbage.zip", 1, -EIO, 0, 0 },
	{ "md5-bad-short.zip", 1, -EIO, 0, 0 },
	/* No list at all, where one is expected. */
	{ "ok-flat.zip", 1, -EIO, 0, 0 },
	/* The hostile names are refused before any list is read. */
	{ "bad-dotdot.zip", 1, -EIO, 0, 0 },
};

static void run_with(const struct zcase *c, const char *md5_list, size_t want_verified);

static void run_case(const struct zcase *c)
{
	run_with(c, NULL, 0);
}

static void run_with(const struct zcase *c, const char *md5_list, size_t want_verified)
{
	struct unzip_limits lim = { c->expect_count, c->expect_bytes, 0, c->threads, md5_list };
	char root[64], out[96], zip[256], cmd[160];
	struct unzip_result r;
	struct stat st;
	size_t i;
	int fd, rc;

	snprintf(root, sizeof(root), "/tmp/tciafs-unzip-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(out, sizeof(out), "%s/out", root);
	assert_int_equal(mkdir(out, 0700), 0);
	snprintf(zip, sizeof(zip), "tests/hostile/zips/%s", c->file);
	fd = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	rc = unzip_extract(zip, fd, &lim, c->file, &r);
	if (rc != c->want_rc)
		fail_msg("%s (threads %d): got %d, want %d", c->file, c->threads, rc, c->want_rc);
	assert_int_equal(count_dir(out), c->want_files);
	assert_int_equal(count_dir(root), 1); /* nothing beside the folder */
	if (rc == 0) {
		assert_int_equal(r.count, c->want_files);
		assert_int_equal(r.verified, want_verified);
		for (i = 0; i < r.count; i++) {
			assert_true(!md5_list || strcmp(r.v[i].name, md5_list) != 0);
			assert_int_equal(fstatat(fd, r.v[i].name, &st, AT_SYMLINK_NOFOLLOW), 0);
			assert_true(S_ISREG(st.st_mode));
			assert_int_equal((uint64_t)st.st_size, r.v[i].size);
		}
		unzip_result_clear(&r);
	} else {
		assert_int_equal(r.count, 0);
		assert_null(r.v);
	}
	close(fd);
	assert_int_equal(access("/tmp/tciafs-evil.dcm", F_OK), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

static void test_corpus(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

static void test_md5_lists(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(md5_cases) / sizeof(md5_cases[0]); i++) {
		const struct md5case *m = &md5_cases[i];
		struct zcase c = { m->file, -1, -1, m->threads, m->want_rc, m->want_files };

		run_with(&c, "md5hashes.csv", m->want_verified);
	}
}

static void test_names(void **state)
{
	(void)state;
	assert_true(unzip_name_ok("1-001.dcm"));
	assert_true(unzip_name_ok("LICENSE"));
	assert_true(unzip_name_ok("1.3.6.1.4.1.9328.50.4.0001.dcm"));
	assert_false(unzip_name_ok(""));
	assert_false(unzip_name_ok("."));
	assert_false(unzip_name_ok(".."));
	assert_false(unzip_name_ok("../x"));
	assert_false(unzip_name_ok("/etc/passwd"));
	assert_false(unzip_name_ok("a/b"));
	assert_false(unzip_name_ok("a\\b"));
	assert_false(unzip_name_ok(".hidden"));
	assert_false(unzip_name_ok("a\nb"));
	assert_false(unzip_name_ok("series.json"));
}

static void test_disk_full(void **state)
{
	struct unzip_limits lim = { -1, -1, 0, 2, NULL };
	struct unzip_result r;
	int fd;

	(void)state;
	/* /dev/full is not a folder; a real ENOSPC is shown through the mount instead.
	 * Here: a folder we cannot write to gives the system's errno, not a crash. */
	fd = open("/proc", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_true(unzip_extract("tests/hostile/zips/ok-flat.zip", fd, &lim, "proc", &r) < 0);
	assert_int_equal(r.count, 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_md5_lists),
		cmocka_unit_test(test_disk_full),
	};

	return cmocka_run_group_tests_name("unzip", tests, NULL, NULL);
}
