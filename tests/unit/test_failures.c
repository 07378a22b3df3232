/* SPDX-License-Identifier: MIT
 * test_failures.c — the failure ring: found by folder, by a child, by series; newest
 * first; bounded; as getxattr wants sizes; and as JSON.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "failures.h"

static void test_find(void **state)
{
	struct failures *f;
	char buf[512];
	long n;

	(void)state;
	assert_int_equal(failures_new(&f), 0);
	assert_int_equal(failures_find(f, "/C", NULL, buf, sizeof(buf)), -ENODATA);
	failures_add(f, "/C/P/S/X", "1.2.3", EIO, "series 1.2.3: bad zip: why");
	failures_add(f, "/C", NULL, EIO, "GET x failed: HTTP 503");
	/* The folder itself. */
	n = failures_find(f, "/C", NULL, buf, sizeof(buf));
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Input/output error: GET x failed: HTTP 503"));
	assert_true(buf[4] == '-' && strchr(buf, 'Z'));
	/* Something directly in it, but not deeper. */
	assert_true(failures_find(f, "/C/P/S", NULL, buf, sizeof(buf)) > 0);
	assert_int_equal(failures_find(f, "/C/P", NULL, buf, sizeof(buf)), -ENODATA);
	assert_int_equal(failures_find(f, "/C/P/S/X2", NULL, buf, sizeof(buf)), -ENODATA);
	/* The series from anywhere. */
	n = failures_find(f, "/.tciafs/series/1.2.3", "1.2.3", buf, sizeof(buf));
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "bad zip: why"));
	/* getxattr's sizes. */
	n = failures_find(f, "/C", NULL, buf, sizeof(buf));
	assert_int_equal(failures_find(f, "/C", NULL, NULL, 0), n);
	assert_int_equal(failures_find(f, "/C", NULL, buf, 5), -ERANGE);
	failures_free(f);
}

static void test_bounded_and_json(void **state)
{
	struct failures *f;
	json_t *arr;
	char path[32];
	int i;

	(void)state;
	assert_int_equal(failures_new(&f), 0);
	for (i = 0; i < FAILURES_KEEP + 10; i++) {
		snprintf(path, sizeof(path), "/c%d", i);
		failures_add(f, path, NULL, EAGAIN, "walk guard");
	}
	assert_int_equal(failures_find(f, "/c5", NULL, NULL, 0), -ENODATA); /* gone */
	assert_true(failures_find(f, "/c20", NULL, NULL, 0) > 0);
	arr = failures_json(f, 3);
	assert_int_equal(json_array_size(arr), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "path")),
			    "/c265");
	assert_true(json_is_null(json_object_get(json_array_get(arr, 0), "series")) ||
		    !json_object_get(json_array_get(arr, 0), "series"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "error")),
			    "Resource temporarily unavailable");
	json_decref(arr);
	failures_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_bounded_and_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
