/* SPDX-License-Identifier: MIT
 * test_source.c — the source's own decisions, made before any request: what each
 * source does and refuses, and where an IDC series' objects are, from its record, with
 * every hostile place refused before it reaches a URL or a path. The clients are made
 * without an HTTP client: a request would crash the test, so none is made.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idc.h"
#include "source.h"
#include "tcia.h"

struct fixture {
	struct idc *idc;
	struct tcia *tcia;
	struct source *idc_src, *nbia_src;
};

static int setup(void **state)
{
	struct idc_opts o = { .api = "http://127.0.0.1:1/v3",
			      .files = "http://127.0.0.1:1/{bucket}" };
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || idc_new(NULL, &o, &f->idc) < 0 ||
	    tcia_new(NULL, NULL, "http://127.0.0.1:1/api", &f->tcia) < 0 ||
	    source_new_idc(f->idc, &f->idc_src) < 0 || source_new_nbia(f->tcia, &f->nbia_src) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	source_free(f->idc_src);
	source_free(f->nbia_src);
	idc_free(f->idc);
	tcia_free(f->tcia);
	free(f);
	return 0;
}

/* What each source is, and what it declines without asking anything. */
static void test_kinds_and_what_each_declines(void **state)
{
	struct fixture *f = *state;
	struct source_files l;
	char *raw = (char *)"x";
	int64_t bytes;
	uint64_t got;

	assert_int_equal(source_kind(f->idc_src), SOURCE_IDC);
	assert_int_equal(source_kind(f->nbia_src), SOURCE_NBIA);
	assert_string_equal(source_name(f->idc_src), "IDC");
	assert_string_equal(source_name(f->nbia_src), "NBIA");
	assert_true(source_files_one_by_one(f->idc_src));
	assert_false(source_files_one_by_one(f->nbia_src));
	assert_true(source_facets_from_series(f->idc_src));
	assert_false(source_facets_from_series(f->nbia_src));
	/* A series is a zip from NBIA only; listed files from IDC only. */
	assert_int_equal(source_get_zip(f->idc_src, "1.2", false, -1, 0, 0, NULL, NULL, &got),
			 -ENOTSUP);
	assert_int_equal(source_list_files(f->nbia_src, "b/u", &l), -ENOTSUP);
	assert_int_equal(l.count, 0);
	/* IDC's record has its size and everything series.json would add. */
	assert_int_equal(source_series_bytes(f->idc_src, "1.2", &bytes), -ENOTSUP);
	assert_int_equal(source_series_extra(f->idc_src, "1.2", &raw), -ENOENT);
	assert_null(raw);
}

/* Where an IDC series' objects are: its bucket and CRDC UUID, from the row under "idc". */
static void test_where_from_a_record(void **state)
{
	struct fixture *f = *state;
	char *w;

	w = source_where(f->idc_src, "{\"SeriesInstanceUID\":\"1.2\",\"idc\":{\"aws_bucket\":"
				     "\"idc-open-data\",\"crdc_series_uuid\":\"0a1b-2c3d\"}}");
	assert_string_equal(w, "idc-open-data/0a1b-2c3d");
	free(w);
	/* NBIA needs none; a record not at hand says nothing. */
	assert_null(source_where(f->nbia_src, "{\"idc\":{\"aws_bucket\":\"b\","
					      "\"crdc_series_uuid\":\"u\"}}"));
	assert_null(source_where(f->idc_src, NULL));
}

/* A place that could leave the bucket, or the cache folder, is no place. */
static void test_hostile_places_are_refused(void **state)
{
	static const char *const records[] = {
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"../x\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"a/b\"}}",
		"{\"idc\":{\"aws_bucket\":\"..\",\"crdc_series_uuid\":\"u\"}}",
		"{\"idc\":{\"aws_bucket\":\"b/c\",\"crdc_series_uuid\":\"u\"}}",
		"{\"idc\":{\"aws_bucket\":\"-b\",\"crdc_series_uuid\":\"u\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\".u\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"u\\u0000v\"}}",
		"{\"idc\":{\"aws_bucket\":\"b?x=1\",\"crdc_series_uuid\":\"u\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"u%2f\"}}",
		"{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":7}}",
		"{\"idc\":{\"crdc_series_uuid\":\"u\"}}",
		"{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"u\"}",
		"not json",
	};
	struct fixture *f = *state;
	char long_uuid[200];
	size_t i;

	for (i = 0; i < sizeof(records) / sizeof(records[0]); i++)
		assert_null(source_where(f->idc_src, records[i]));
	memset(long_uuid, 'a', sizeof(long_uuid) - 1);
	long_uuid[sizeof(long_uuid) - 1] = '\0';
	{
		char rec[400];

		snprintf(rec, sizeof(rec),
			 "{\"idc\":{\"aws_bucket\":\"b\",\"crdc_series_uuid\":\"%s\"}}", long_uuid);
		assert_null(source_where(f->idc_src, rec));
	}
}

static void fetch_done(void *arg, int rc)
{
	(void)arg, (void)rc;
	fail_msg("a refused fetch must not call back");
}

/* A where or a file name that comes back from a manifest on disk is checked again:
 * refused with EINVAL, and no request made (there is no HTTP client to make one). */
static void test_places_from_disk_are_checked_again(void **state)
{
	static const char *const wheres[] = { "b", "/u", "b/", "../b/u", "b/../u", "b/u/v", "" };
	static const char *const names[] = { "../x.dcm", "a/b.dcm", ".hidden", "", "x y.dcm" };
	struct fixture *f = *state;
	struct source_fetch fe = { .where = "b/u",
				   .name = "x.dcm",
				   .size = 10,
				   .length = 10,
				   .fd = -1,
				   .done = fetch_done };
	struct source_files l;
	uint64_t id;
	size_t i;

	for (i = 0; i < sizeof(wheres) / sizeof(wheres[0]); i++) {
		assert_int_equal(source_list_files(f->idc_src, wheres[i], &l), -EINVAL);
		fe.where = wheres[i];
		assert_int_equal(source_fetch_file(f->idc_src, &fe, &id), -EINVAL);
	}
	assert_int_equal(source_list_files(f->idc_src, NULL, &l), -EINVAL);
	fe.where = "b/u";
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fe.name = names[i];
		assert_int_equal(source_fetch_file(f->idc_src, &fe, &id), -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kinds_and_what_each_declines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_where_from_a_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_places_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_places_from_disk_are_checked_again, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
