/* SPDX-License-Identifier: MIT
 * Unit tests for http.c: the errno mapping (the one place it happens), query escaping,
 * and a bounded failure against a port nobody listens on. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"

static void test_status_errno(void **state)
{
	(void)state;
	assert_int_equal(http_status_errno(200), 0);
	assert_int_equal(http_status_errno(204), 0);
	assert_int_equal(http_status_errno(404), ENOENT);
	assert_int_equal(http_status_errno(401), EACCES);
	assert_int_equal(http_status_errno(403), EACCES);
	assert_int_equal(http_status_errno(504), ETIMEDOUT);
	assert_int_equal(http_status_errno(500), EIO);
	assert_int_equal(http_status_errno(429), EIO);
	assert_int_equal(http_status_errno(302), EIO);
}

static void test_curl_errno(void **state)
{
	(void)state;
	assert_int_equal(http_curl_errno(CURLE_OK), 0);
	assert_int_equal(http_curl_errno(CURLE_OPERATION_TIMEDOUT), ETIMEDOUT);
	assert_int_equal(http_curl_errno(CURLE_OUT_OF_MEMORY), ENOMEM);
	assert_int_equal(http_curl_errno(CURLE_COULDNT_CONNECT), EIO);
}

static void test_escape(void **state)
{
	char *s;

	(void)state;
	s = http_escape("CT COLONOGRAPHY");
	assert_string_equal(s, "CT%20COLONOGRAPHY");
	free(s);
	s = http_escape("Odd/Names\x07&x=1");
	assert_string_equal(s, "Odd%2FNames%07%26x%3D1");
	free(s);
	s = http_escape("Ü.-_~");
	assert_string_equal(s, "%C3%9C.-_~");
	free(s);
	s = http_escape("");
	assert_string_equal(s, "");
	free(s);
}

static void test_refused_is_bounded(void **state)
{
	struct http_opts o = { .connect_timeout = 2, .stall_timeout = 2, .retries = 1 };
	struct http *http;
	char *body = (char *)1;
	size_t len = 7;
	time_t t0 = time(NULL);

	(void)state;
	assert_int_equal(http_new(&o, &http), 0);
	/* Port 1 on loopback: connection refused at once, retried once, then EIO. */
	assert_int_equal(http_get(http, "http://127.0.0.1:1/x", &body, &len), -EIO);
	assert_null(body);
	assert_int_equal(len, 0);
	assert_true(time(NULL) - t0 <= 2 * o.connect_timeout + 2);
	http_free(http);
	http_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_errno),
		cmocka_unit_test(test_curl_errno),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_refused_is_bounded),
	};
	int rc;

	if (http_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("http", tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
