/* SPDX-License-Identifier: MIT
 * Unit tests for catalog.c on a real SQLite file: loads and queries, folder names that
 * collide, aborts and scopes, the record of loads, and recovery from a catalog that is
 * not a database, of another version, or a directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog.h"
#include "../../src/catalog_int.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/tciafs-cat-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/catalog-testhost.sqlite", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct catalog *open_cat(void)
{
	struct catalog_opts o = { .dir = dir, .host = "testhost" };
	struct catalog *c;

	assert_int_equal(catalog_open(&o, &c), 0);
	assert_string_equal(catalog_path(c), path);
	return c;
}

static void add_study(struct catalog_load *l, const char *pid, const char *uid, const char *name,
		      const char *full)
{
	struct catalog_study s = { .coll = "C",
				   .pid = (char *)pid,
				   .uid = (char *)uid,
				   .name = (char *)name,
				   .full = (char *)full,
				   .raw = "{}",
				   .mtime = 5 };

	assert_int_equal(catalog_add_study(l, &s), 0);
}

static void add_series(struct catalog_load *l, const char *pid, const char *study, const char *uid,
		       const char *name, const char *full, const char *mod)
{
	struct catalog_series s = { .coll = "C",
				    .pid = (char *)pid,
				    .study = (char *)study,
				    .uid = (char *)uid,
				    .name = (char *)name,
				    .full = (char *)full,
				    .raw = "{\"x\":1}",
				    .facet = { (char *)mod, NULL, "ACME" },
				    .mtime = 7,
				    .images = 3,
				    .bytes = -1 };

	assert_int_equal(catalog_add_series(l, &s), 0);
}

static void add_patient(struct catalog_load *l, const char *pid, const char *name, const char *raw)
{
	struct catalog_patient p = {
		.coll = "C", .pid = (char *)pid, .name = (char *)name, .raw = (char *)raw
	};

	assert_int_equal(catalog_add_patient(l, &p), 0);
}

/* One collection loaded in bulk: P1 with two studies whose readable names collide. */
static void load_bulk(struct catalog *c)
{
	struct catalog_load *l;

	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P2", "P2", "{\"PatientId\":\"P2\"}");
	add_patient(l, "P1", "P1", "{\"PatientId\":\"P1\"}");
	add_patient(l, "a/b", "a_b", "{}");
	add_patient(l, "a_b", "a_b", "{}");
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	add_study(l, "P1", "1.2.3.44444", "2001-01-01 CT-44444", "2001-01-01 CT-1.2.3.44444");
	add_study(l, "P1", "1.2.9.44444", "2001-01-01 CT-44444", "2001-01-01 CT-1.2.9.44444");
	add_study(l, "P1", "1.5", "2002-02-02 MR-1.5", "2002-02-02 MR-1.5");
	add_series(l, "P1", "1.5", "1.5.1", "1 CT-5.1", "1 CT-1.5.1", "CT");
	add_series(l, "P1", "1.5", "1.5.2", "2 MR-5.2", "2 MR-1.5.2", "MR");
	/* Same full name twice (truncated UIDs): the second gets "~2". */
	add_series(l, "P1", "1.5", "1.5.3", "3 X-same", "3 X-same", NULL);
	add_series(l, "P1", "1.5", "1.5.4", "3 X-same", "3 X-same", NULL);
	assert_int_equal(catalog_load_commit(l), 0);
}

static int collect_study(void *arg, const struct catalog_study *r)
{
	char *buf = arg;

	strcat(buf, r->name);
	strcat(buf, "|");
	return 0;
}

static int collect_series(void *arg, const struct catalog_series *r)
{
	char *buf = arg;

	strcat(buf, r->name);
	strcat(buf, "|");
	return 0;
}

static int collect_patient(void *arg, const struct catalog_patient *r)
{
	char *buf = arg;

	strcat(buf, r->name);
	strcat(buf, "|");
	return 0;
}

static int stop_at_first(void *arg, const struct catalog_patient *r)
{
	(void)r;
	++*(int *)arg;
	return 42;
}

static void test_load_and_query(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_series ser;
	struct catalog_study st;
	struct catalog_patient p;
	struct catalog_stats stats;
	char buf[512] = "";
	int64_t rows, when;
	int n = 0;

	(void)state;
	assert_int_equal(catalog_loaded(c, CATALOG_COLLECTION, "C", NULL, &when, &rows), -ENOENT);
	load_bulk(c);
	assert_int_equal(catalog_loaded(c, CATALOG_COLLECTION, "C", NULL, &when, &rows), 0);
	assert_int_equal(rows, 7);
	assert_true(time(NULL) - when / 1000 < 5);

	assert_int_equal(catalog_patients(c, "C", collect_patient, buf), 0);
	assert_string_equal(buf, "P1|P2|a_b|a_b~2|");
	assert_int_equal(catalog_patients(c, "C", stop_at_first, &n), 42);
	assert_int_equal(n, 1);

	buf[0] = '\0';
	assert_int_equal(catalog_studies(c, "C", "P1", collect_study, buf), 0);
	assert_string_equal(buf, "2001-01-01 CT-1.2.3.44444|2001-01-01 CT-1.2.9.44444|"
				 "2002-02-02 MR-1.5|");
	buf[0] = '\0';
	assert_int_equal(catalog_series(c, "C", "P1", "1.5", collect_series, buf), 0);
	assert_string_equal(buf, "1 CT-5.1|2 MR-5.2|3 X-same|3 X-same~2|");
	/* The same by folder names; a name not there, or a patient's "~2", finds nothing. */
	buf[0] = '\0';
	assert_int_equal(catalog_studies_named(c, "C", "P1", collect_study, buf), 0);
	assert_string_equal(buf, "2001-01-01 CT-1.2.3.44444|2001-01-01 CT-1.2.9.44444|"
				 "2002-02-02 MR-1.5|");
	buf[0] = '\0';
	assert_int_equal(
		catalog_series_named(c, "C", "P1", "2002-02-02 MR-1.5", collect_series, buf), 0);
	assert_string_equal(buf, "1 CT-5.1|2 MR-5.2|3 X-same|3 X-same~2|");
	buf[0] = '\0';
	assert_int_equal(catalog_studies_named(c, "C", "a_b~2", collect_study, buf), 0);
	assert_int_equal(catalog_studies_named(c, "C", "P9", collect_study, buf), 0);
	assert_int_equal(
		catalog_series_named(c, "C", "P1", "2001-01-01 CT-44444", collect_series, buf), 0);
	assert_int_equal(
		catalog_series_named(c, "C", "P2", "2002-02-02 MR-1.5", collect_series, buf), 0);
	assert_string_equal(buf, "");

	assert_int_equal(catalog_find_patient(c, "C", "P1", &p), 0);
	assert_string_equal(p.raw, "{\"PatientId\":\"P1\"}");
	catalog_patient_clear(&p);
	assert_int_equal(catalog_find_patient(c, "C", "nobody", &p), -ENOENT);
	assert_int_equal(catalog_patient_by_id(c, "C", "a/b", &p), 0);
	assert_string_equal(p.name, "a_b");
	catalog_patient_clear(&p);

	/* By folder name, and by bare UID. */
	assert_int_equal(catalog_find_study(c, "C", "P1", "2002-02-02 MR-1.5", &st), 0);
	assert_string_equal(st.uid, "1.5");
	assert_int_equal(st.mtime, 5);
	catalog_study_clear(&st);
	assert_int_equal(catalog_find_study(c, "C", "P1", "1.2.9.44444", &st), 0);
	assert_string_equal(st.name, "2001-01-01 CT-1.2.9.44444");
	catalog_study_clear(&st);
	assert_int_equal(catalog_find_study(c, "C", "P2", "1.5", &st), -ENOENT);

	assert_int_equal(catalog_find_series(c, "C", "P1", "1.5", "2 MR-5.2", &ser), 0);
	assert_string_equal(ser.uid, "1.5.2");
	assert_string_equal(ser.facet[0], "MR");
	assert_null(ser.facet[1]);
	assert_int_equal(ser.images, 3);
	assert_int_equal(ser.bytes, -1);
	assert_string_equal(ser.raw, "{\"x\":1}");
	catalog_series_clear(&ser);
	assert_int_equal(catalog_series_by_uid(c, "1.5.4", &ser), 0);
	assert_string_equal(ser.name, "3 X-same~2");
	assert_string_equal(ser.pid, "P1");
	catalog_series_clear(&ser);
	assert_int_equal(catalog_series_by_uid(c, "9.9", &ser), -ENOENT);

	catalog_stats(c, &stats);
	assert_int_equal(stats.series, 4);
	assert_int_equal(stats.patients, 4);
	assert_true(stats.file_bytes > 0);
	assert_int_equal(stats.loads, 2);
	catalog_free(c);

	/* Persistent: a new instance sees it all without loading. */
	c = open_cat();
	assert_int_equal(catalog_series_by_uid(c, "1.5.1", &ser), 0);
	catalog_series_clear(&ser);
	catalog_free(c);
}

static void test_abort_and_scopes(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *l;
	struct catalog_patient p;
	struct catalog_series ser;
	char buf[512] = "";

	(void)state;
	load_bulk(c);
	/* An aborted reload leaves the catalog as it was. */
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P9", "P9", "{}");
	catalog_load_abort(l);
	assert_int_equal(catalog_patients(c, "C", collect_patient, buf), 0);
	assert_string_equal(buf, "P1|P2|a_b|a_b~2|");

	/* A targeted load replaces one patient's studies and series, keeps its raw. */
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENT, "C", "P1", &l), 0);
	add_patient(l, "P1", "P1", NULL);
	add_study(l, "P1", "1.5", "2002-02-02 MR-1.5", "2002-02-02 MR-1.5");
	add_series(l, "P1", "1.5", "1.5.9", "9 PT-5.9", "9 PT-1.5.9", "PT");
	assert_int_equal(catalog_load_commit(l), 0);
	buf[0] = '\0';
	assert_int_equal(catalog_studies(c, "C", "P1", collect_study, buf), 0);
	assert_string_equal(buf, "2002-02-02 MR-1.5|");
	buf[0] = '\0';
	assert_int_equal(catalog_series(c, "C", "P1", "1.5", collect_series, buf), 0);
	assert_string_equal(buf, "9 PT-5.9|");
	assert_int_equal(catalog_find_patient(c, "C", "P1", &p), 0);
	assert_string_equal(p.raw, "{\"PatientId\":\"P1\"}");
	catalog_patient_clear(&p);
	assert_int_equal(catalog_loaded(c, CATALOG_PATIENT, "C", "P1", NULL, NULL), 0);
	assert_int_equal(catalog_loaded(c, CATALOG_PATIENT, "C", "P2", NULL, NULL), -ENOENT);

	/* A new patient list drops listed patients it no longer has, keeps targeted ones. */
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENT, "C", "T1", &l), 0);
	add_patient(l, "T1", "T1", NULL);
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P2", "P2", "{}");
	assert_int_equal(catalog_load_commit(l), 0);
	buf[0] = '\0';
	assert_int_equal(catalog_patients(c, "C", collect_patient, buf), 0);
	assert_string_equal(buf, "P2|T1|");

	/* A failed add fails the commit, which leaves everything as it was. */
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	{
		struct catalog_patient bad = { .coll = "C", .pid = NULL, .name = "x" };

		assert_int_not_equal(catalog_add_patient(l, &bad), 0);
	}
	assert_int_not_equal(catalog_load_commit(l), 0);
	buf[0] = '\0';
	assert_int_equal(catalog_patients(c, "C", collect_patient, buf), 0);
	assert_string_equal(buf, "P2|T1|");
	assert_int_equal(catalog_series_by_uid(c, "1.5.9", &ser), 0);
	catalog_series_clear(&ser);
	catalog_free(c);
}

static void write_file(const char *p, const char *text);

static int count_files(const char *pattern)
{
	char cmd[192];
	FILE *f;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c -- '%s'", dir, pattern);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fscanf(f, "%d", &n) != 1)
		n = 0;
	pclose(f);
	return n;
}

static int count_series(void *arg, const struct catalog_series *r)
{
	(void)r;
	++*(int *)arg;
	return 0;
}

/* A series whose record names another patient than its study's is listed, found and
 * counted where its study is (a load small enough to go in directly). */
static void test_series_go_where_their_study_is(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *l;
	struct catalog_series ser;
	char buf[256] = "";

	(void)state;
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	add_study(l, "P1", "1.5", "S", "S");
	add_series(l, "P1", "1.5", "1.5.1", "A", "A", "CT");
	add_series(l, "", "1.5", "1.5.2", "B", "B", "CT");
	add_series(l, "P7", "1.5", "1.5.3", "C", "C", "CT");
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_series(c, "C", "P1", "1.5", collect_series, buf), 0);
	assert_string_equal(buf, "A|B|C|");
	assert_int_equal(catalog_find_series(c, "C", "P1", "1.5", "C", &ser), 0);
	assert_string_equal(ser.pid, "P1");
	catalog_series_clear(&ser);
	catalog_free(c);
}

/* Study 1.5 of patient P1 with 10,000 CT series: a load past its first batch. */
static void add_big_study(struct catalog_load *l)
{
	char uid[32], name[32];
	int i;

	add_study(l, "P1", "1.5", "S", "S");
	for (i = 0; i < 10000; i++) {
		snprintf(uid, sizeof(uid), "1.5.%d", i);
		snprintf(name, sizeof(name), "%d CT-%d", i, i);
		add_series(l, "P1", "1.5", uid, name, name, "CT");
	}
}

/* A load of more rows than a batch goes through a staging file: while it streams, other
 * loads commit (the catalog's write lock is not held); it lands whole at commit, or not
 * at all on abort, and its staging file goes either way. */
static void test_big_load_is_staged(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *big, *small;
	int n = 0;

	(void)state;
	for (int round = 0; round < 2; round++) {
		assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &big), 0);
		add_big_study(big);
		assert_int_equal(count_files(".load-"), 1);
		/* Another load commits meanwhile: no wait on the big one. */
		assert_int_equal(catalog_load_begin(c, CATALOG_PATIENT, "C", "P7", &small), 0);
		add_study(small, "P7", "7.1", "T", "T");
		assert_int_equal(catalog_load_commit(small), 0);
		if (round == 0) {
			catalog_load_abort(big);
			n = 0;
			assert_int_equal(catalog_series(c, "C", "P1", "1.5", count_series, &n), 0);
			assert_int_equal(n, 0);
		} else {
			assert_int_equal(catalog_load_commit(big), 0);
			n = 0;
			assert_int_equal(catalog_series(c, "C", "P1", "1.5", count_series, &n), 0);
			assert_int_equal(n, 10000);
		}
		assert_int_equal(count_files(".load-"), 0);
	}
	catalog_free(c);
	/* One left by a process that is gone is removed at the next open. */
	{
		char junk[192];

		snprintf(junk, sizeof(junk), "%s.load-999999999-1", path);
		write_file(junk, "junk");
	}
	c = open_cat();
	assert_int_equal(count_files(".load-"), 0);
	catalog_free(c);
}

/* A staged load whose staging file cannot grow (a file size limit standing in for a
 * full disk) fails on the thread that writes the stage: the failure reaches the adds or
 * the commit, the catalog keeps what it had, and the staging file goes. */
static void test_a_failed_stage_write_fails_the_load(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *l;
	struct rlimit old, lim;
	char raw[2048], uid[32];
	int i, rc = 0, n = 0;

	(void)state;
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	add_study(l, "P1", "1.5", "S", "S");
	add_series(l, "P1", "1.5", "1.5.1", "A", "A", "CT");
	assert_int_equal(catalog_load_commit(l), 0);
	memset(raw, 'x', sizeof(raw) - 1);
	raw[0] = '"';
	raw[sizeof(raw) - 2] = '"';
	raw[sizeof(raw) - 1] = '\0';
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4 << 20;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	/* 20,000 series of 2 KB each: some 40 MB to stage, ten times the limit. */
	for (i = 0; i < 20000 && rc == 0; i++) {
		struct catalog_series s = { .coll = "C",
					    .pid = "P1",
					    .study = "1.5",
					    .uid = uid,
					    .name = uid,
					    .full = uid,
					    .raw = raw,
					    .facet = { "MR", NULL, NULL },
					    .mtime = 7 };

		snprintf(uid, sizeof(uid), "1.5.%d", i + 100);
		rc = catalog_add_series(l, &s);
	}
	assert_true(rc < 0 || i == 20000);
	assert_true(catalog_load_commit(l) < 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(catalog_series(c, "C", "P1", "1.5", count_series, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count_files(".load-"), 0);
	catalog_free(c);
}

/* The log is folded back into the database by the catalog's own thread after a commit
 * that grew it, while the catalog stays open (not only when it is closed). */
static void test_log_folded_back_in_background(void **state)
{
	struct catalog_opts o = { .dir = dir, .host = "testhost", .ckpt_frames = 8 };
	struct catalog_load *l;
	struct catalog *c;
	struct stat sb;
	int n = 0, waited;

	(void)state;
	assert_int_equal(catalog_open(&o, &c), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size < 256 * 1024);
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	add_big_study(l);
	assert_int_equal(catalog_load_commit(l), 0);
	for (waited = 0; waited < 200; waited++) {
		assert_int_equal(stat(path, &sb), 0);
		if (sb.st_size >= 256 * 1024)
			break;
		usleep(50 * 1000);
	}
	assert_true(sb.st_size >= 256 * 1024);
	assert_int_equal(catalog_series(c, "C", "P1", "1.5", count_series, &n), 0);
	assert_int_equal(n, 10000);
	catalog_free(c);
}

static int count_patients(void *arg, const struct catalog_patient *r)
{
	(void)r;
	++*(int *)arg;
	return 0;
}

/* Readers keep a read transaction across statements for a moment: another mount's commit
 * is still seen within a fraction of a second, and a reader left idle lets go of its
 * snapshot, so that the log can be folded back whole. */
static void test_readers_see_other_mounts_soon(void **state)
{
	struct catalog *a = open_cat(), *b = open_cat();
	struct catalog_load *l;
	sqlite3_stmt *st;
	sqlite3 *db;
	int n = 0, waited, busy = -1;

	(void)state;
	assert_int_equal(catalog_patients(a, "C", count_patients, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(catalog_load_begin(b, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P1", "P1", "{}");
	assert_int_equal(catalog_load_commit(l), 0);
	/* b's own readers see it at once. */
	assert_int_equal(catalog_patients(b, "C", count_patients, &n), 0);
	assert_int_equal(n, 1);
	for (waited = 0; waited < 100; waited++) {
		n = 0;
		assert_int_equal(catalog_patients(a, "C", count_patients, &n), 0);
		if (n == 1)
			break;
		usleep(10 * 1000);
	}
	assert_int_equal(n, 1);
	assert_true(waited <= 20); /* within 200 ms */
	/* Idle, a's reader ends its transaction: a checkpoint that waits for every reader
	 * finds none in its way. */
	usleep(300 * 1000);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	busy = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(busy, 0);
	catalog_free(b);
	catalog_free(a);
}

/* The rowids of a table's rows in key order are increasing: the rows lie in that order. */
static bool rows_in_order(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	sqlite3_int64 last = 0;
	bool ok = true;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) < last)
			ok = false;
		last = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return ok;
}

/* A big load whose rows come by UID, patients all mixed (as IDC sends them), lies in
 * the catalog patient by patient and study by study; the same rows in that order stay as
 * they came. */
static void test_big_load_lies_in_patient_order(void **state)
{
	static const char *const by_patient[] = {
		"SELECT rowid FROM series ORDER BY coll, pid, study, rowid",
		"SELECT rowid FROM study ORDER BY coll, pid, rowid",
	};
	struct catalog *c = open_cat();
	struct catalog_load *l;
	char pid[16], study[32], uid[32], buf[256] = "";
	sqlite3 *db;
	int i, k;

	(void)state;
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	for (i = 0; i < 6000; i++) {
		/* UIDs in order; their 1,200 studies of 600 patients scattered. */
		int j = (i * 7919) % 1200;

		snprintf(pid, sizeof(pid), "P%03d", j / 2);
		snprintf(study, sizeof(study), "2.%d", j);
		snprintf(uid, sizeof(uid), "1.%05d", i);
		if (i < 1200)
			add_study(l, pid, study, study, study);
		add_series(l, pid, study, uid, uid, uid, "CT");
	}
	/* A record that names another patient than its study's goes where its study is. */
	add_series(l, "LIAR", "2.0", "1.99999", "1.99999", "1.99999", "CT");
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_series(c, "C", "P000", "2.0", collect_series, buf), 0);
	assert_non_null(strstr(buf, "1.99999|"));
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (k = 0; k < 2; k++)
		assert_true(rows_in_order(db, by_patient[k]));
	/* The UIDs themselves no longer come in rowid order: the rows were moved. */
	assert_false(rows_in_order(db, "SELECT rowid FROM series ORDER BY uid"));
	sqlite3_close(db);

	/* Rows that come in their patients' order keep the order they came in. */
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	for (i = 0; i < 6000; i++) {
		snprintf(pid, sizeof(pid), "P%03d", i / 10);
		snprintf(study, sizeof(study), "2.%04d", i / 5);
		snprintf(uid, sizeof(uid), "1.%05d", 6000 - i);
		add_series(l, pid, study, uid, uid, uid, "CT");
	}
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_true(rows_in_order(db, "SELECT rowid FROM series ORDER BY uid DESC"));
	sqlite3_close(db);
	catalog_free(c);
}

static int count_aside(void)
{
	char cmd[160];
	FILE *f;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c broken", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fscanf(f, "%d", &n) != 1)
		n = 0;
	pclose(f);
	return n;
}

static void write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int collect_raw(void *arg, const char *const *names, const char *raw, size_t len)
{
	char *buf = arg;

	strcat(buf, names[0]);
	strcat(buf, "|");
	strncat(buf, raw, len);
	strcat(buf, "\n");
	return 0;
}

#define P1_RAW                                                                       \
	"{\"PatientId\":\"P1\",\"Age\":61,\"W\":72.5,\"Alive\":true,\"Dead\":false," \
	"\"N\":null,\"L\":[1, \"a\"],\"O\":{\"k\": \"v\"},\"S\":\"a,\\\"b\\\"\\u00e9\"}"

/* A table's objects come back as sent, in path order. */
static void test_table_objects_as_sent(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *l;
	char buf[1024] = "";

	(void)state;
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P2", "P2", "{}");
	add_patient(l, "P1", "P1", P1_RAW);
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_table(c, "C", 0, collect_raw, buf), 0);
	assert_string_equal(buf, "P1|" P1_RAW "\nP2|{}\n");
	catalog_free(c);
}

/* What SQLite plans for a statement, one detail line each, joined by '|'. */
static void plan_of(sqlite3 *db, int s, char *out, size_t size)
{
	sqlite3_stmt *st;
	char *sql;
	size_t used = 0;

	assert_true(asprintf(&sql, "EXPLAIN QUERY PLAN %s", cat_sql[s]) > 0);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	out[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW)
		used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s|",
					 (const char *)sqlite3_column_text(st, 3));
	assert_true(used < size);
	sqlite3_finalize(st);
	free(sql);
}

/* A lookup by name or UID reads a few rows through an index, whatever the collection's
 * size: no scan, and never a search of the series by collection alone (at NLST size that
 * is 210,000 rows per stat of a facet link). A facet listing or a table starts from the
 * patients and goes down through indices. SQLite's planner has no statistics here, as in a catalog
 * a mount made. */
static void test_lookups_use_indices(void **state)
{
	static const int lookups[] = {
		ST_FIND_PATIENT,   ST_PATIENT_BY_ID,  ST_FIND_STUDY,     ST_STUDY_BY_UID,
		ST_FIND_SERIES,    ST_SERIES_BY_UID,  ST_COLL_BY_API,    ST_SERIES,
		ST_STUDIES,        ST_PATIENTS,       ST_STUDIES_NAMED,  ST_SERIES_NAMED,
		ST_FACET_LINK + 0, ST_FACET_LINK + 1, ST_FACET_LINK + 2, ST_FACET_LINK + 3,
		ST_FACET_LINK + 4, ST_FACET_LINK + 5,
	};
	static const char first[] = "SEARCH p USING COVERING INDEX patient_name (coll=?)|";
	struct catalog *c = open_cat();
	char plan[2048];
	sqlite3 *db;
	size_t i;
	int s;

	(void)state;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		plan_of(db, lookups[i], plan, sizeof(plan));
		if (strstr(plan, "SCAN ") || strstr(plan, "series_name (coll=?)"))
			fail_msg("statement %d reads the whole collection: %s", lookups[i], plan);
	}
	/* A study's series go through the index that is in patients' order. */
	plan_of(db, ST_SERIES, plan, sizeof(plan));
	assert_non_null(strstr(plan, "COVERING INDEX series_name (coll=? AND pid=? AND study=?)"));
	plan_of(db, ST_STUDIES, plan, sizeof(plan));
	assert_non_null(strstr(plan, "COVERING INDEX study_name (coll=? AND pid=?)"));
	/* A walk's resolving of a study folder reads no row, the indices only. */
	plan_of(db, ST_FIND_PAT_STUDY, plan, sizeof(plan));
	if (!strstr(plan, "COVERING INDEX patient_name (coll=? AND name=?)") ||
	    !strstr(plan, "COVERING INDEX study_name (coll=? AND pid=? AND name=?)"))
		fail_msg("a walk's study lookup reads rows: %s", plan);
	/* A walk's listing by folder names: indices only, in their order (no sort). */
	plan_of(db, ST_STUDIES_NAMED, plan, sizeof(plan));
	if (!strstr(plan, "COVERING INDEX study_name (coll=? AND pid=?)") ||
	    !strstr(plan, "COVERING INDEX patient_name (coll=? AND name=?)") ||
	    strstr(plan, "TEMP B-TREE"))
		fail_msg("a walk's patient listing reads rows or sorts: %s", plan);
	plan_of(db, ST_SERIES_NAMED, plan, sizeof(plan));
	if (!strstr(plan, "COVERING INDEX series_name (coll=? AND pid=? AND study=?)") ||
	    !strstr(plan, "COVERING INDEX study_name (coll=? AND pid=? AND name=?)") ||
	    strstr(plan, "TEMP B-TREE"))
		fail_msg("a walk's study listing reads rows or sorts: %s", plan);
	plan_of(db, ST_FIND_SERIES, plan, sizeof(plan));
	assert_non_null(strstr(plan, "series_name (coll=? AND pid=? AND study=? AND name=?)"));
	for (s = ST_FACET_LINKS; s < ST_FACET_NAMES + 6; s++) {
		if (s == ST_FACET_LINK)
			s = ST_FACET_NAMES; /* the single links are lookups, above */
		plan_of(db, s, plan, sizeof(plan));
		if (strncmp(plan, first, strlen(first)) != 0 ||
		    !strstr(plan, "RIGHT PART OF ORDER BY"))
			fail_msg("facet statement %d does not go patient by patient: %s", s, plan);
		/* A facet's names come from the indices alone, not 200 MB of rows. */
		if (s >= ST_FACET_NAMES && !strstr(plan, "COVERING INDEX series_name"))
			fail_msg("facet statement %d reads the series' rows: %s", s, plan);
	}
	for (s = ST_TABLE + 1; s <= ST_TABLE + 2; s++) {
		plan_of(db, s, plan, sizeof(plan));
		if (strncmp(plan, "SEARCH p ", 9) != 0 || strstr(plan, "SCAN "))
			fail_msg("table statement %d does not start from the patients: %s", s,
				 plan);
	}
	sqlite3_close(db);
	catalog_free(c);
}

/* The archive's release is kept with the list of collections: replaced by the next one
 * recorded, left as it was by a load that is aborted or records none. */
static void test_release(void **state)
{
	struct catalog *c = open_cat();
	struct catalog_load *l;
	char *r;

	(void)state;
	assert_int_equal(catalog_release(c, &r), 0);
	assert_null(r);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(catalog_load_begin(c, CATALOG_ARCHIVE, NULL, NULL, &l), 0);
		if (i != 2)
			assert_int_equal(catalog_set_release(l, i ? "v26" : "v25"), 0);
		if (i == 1) {
			catalog_load_abort(l);
		} else {
			assert_int_equal(catalog_load_commit(l), 0);
		}
		assert_int_equal(catalog_release(c, &r), 0);
		assert_string_equal(r, i < 3 ? "v25" : "v26");
		free(r);
	}
	catalog_free(c);
}

static void test_recovery(void **state)
{
	struct catalog *c;
	struct catalog_series ser;
	sqlite3 *db;

	(void)state;
	/* Not a database. */
	write_file(path, "this is not a database, just text that is long enough to matter\n");
	c = open_cat();
	load_bulk(c);
	catalog_free(c);
	assert_int_equal(count_aside(), 1);

	/* Another schema version. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	c = open_cat();
	assert_int_equal(catalog_series_by_uid(c, "1.5.1", &ser), -ENOENT);
	catalog_free(c);
	assert_int_equal(count_aside(), 2);

	/* A directory where the file should be. */
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	c = open_cat();
	load_bulk(c);
	catalog_free(c);
	assert_int_equal(count_aside(), 3);

	/* Corrupt pages: garbage over everything past the header. */
	{
		FILE *f = fopen(path, "r+");
		char junk[4096];

		assert_non_null(f);
		memset(junk, 0xA5, sizeof(junk));
		fseek(f, 100, SEEK_SET);
		fwrite(junk, 1, sizeof(junk) - 100, f);
		fwrite(junk, 1, sizeof(junk), f);
		fclose(f);
	}
	c = open_cat();
	assert_int_equal(catalog_series_by_uid(c, "1.5.1", &ser), -ENOENT);
	load_bulk(c);
	assert_int_equal(catalog_series_by_uid(c, "1.5.1", &ser), 0);
	catalog_series_clear(&ser);
	catalog_free(c);
	assert_int_equal(count_aside(), 4);
}

static int count_rows(void *arg, const char *const *names, const char *raw, size_t len)
{
	(void)names;
	(void)raw;
	(void)len;
	++*(int *)arg;
	return 0;
}

static bool file_exists(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0;
}

/* A catalog too big to be read whole at each open (check_max) opens on its schema alone;
 * a damaged page met in use is an error and a record beside it, and the next open reads
 * it whole, finds the damage and moves it aside. A small one is read whole at once. */
static void test_damage_found_in_use(void **state)
{
	struct catalog_opts o = { .dir = dir, .host = "testhost", .check_max = 1 };
	char uid[32], mark[160];
	struct catalog_load *l;
	struct catalog *c;
	struct stat sb;
	int i, n = 0, rc;

	(void)state;
	snprintf(mark, sizeof(mark), "%s.damaged", path);
	assert_int_equal(catalog_open(&o, &c), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_PATIENTS, "C", NULL, &l), 0);
	add_patient(l, "P1", "P1", "{}");
	assert_int_equal(catalog_load_commit(l), 0);
	assert_int_equal(catalog_load_begin(c, CATALOG_COLLECTION, "C", NULL, &l), 0);
	add_study(l, "P1", "1.5", "S", "S");
	for (i = 0; i < 20000; i++) {
		snprintf(uid, sizeof(uid), "1.5.%05d", i);
		add_series(l, "P1", "1.5", uid, uid, uid, "CT");
	}
	assert_int_equal(catalog_load_commit(l), 0);
	catalog_free(c);
	/* Garbage over a page in the middle of the series. */
	assert_int_equal(stat(path, &sb), 0);
	{
		FILE *f = fopen(path, "r+");
		char junk[16384];

		assert_non_null(f);
		memset(junk, 0xA5, sizeof(junk));
		fseek(f, (long)(sb.st_size / 2 / 16384 * 16384), SEEK_SET);
		fwrite(junk, 1, sizeof(junk), f);
		fclose(f);
	}
	assert_int_equal(catalog_open(&o, &c), 0);
	assert_int_equal(count_aside(), 0);
	rc = catalog_table(c, "C", 2, count_rows, &n);
	assert_int_equal(rc, -EIO);
	assert_true(file_exists(mark));
	catalog_free(c);
	assert_int_equal(catalog_open(&o, &c), 0);
	assert_int_equal(count_aside(), 1);
	assert_false(file_exists(mark));
	n = 0;
	assert_int_equal(catalog_table(c, "C", 2, count_rows, &n), 0);
	assert_int_equal(n, 0);
	catalog_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_and_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_scopes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_found_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_objects_as_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_load_is_staged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_stage_write_fails_the_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_log_folded_back_in_background, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_readers_see_other_mounts_soon, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_big_load_lies_in_patient_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lookups_use_indices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_series_go_where_their_study_is, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
