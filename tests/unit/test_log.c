/* SPDX-License-Identifier: MIT
 * test_log.c — log_escape: what the network sends can neither break a log line in two nor
 * reorder what a terminal shows, and a cut never splits an escape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "log.h"

static void test_controls_and_backslashes(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(log_escape("a\nb\r\tc\x7f\\", out, sizeof(out)), 21);
	assert_string_equal(out, "a\\x0ab\\x0d\\x09c\\x7f\\\\");
	log_escape("plain UTF-8 é ✓", out, sizeof(out));
	assert_string_equal(out, "plain UTF-8 é ✓");
}

static void test_bidi_controls(void **state)
{
	char out[128];

	(void)state;
	log_escape("evil\u202emcd.exe \u2066x\u2069 \u200e \u061c", out, sizeof(out));
	assert_string_equal(out, "evil\\u202emcd.exe \\u2066x\\u2069 \\u200e \\u061c");
}

static void test_cut_never_splits_an_escape(void **state)
{
	char out[6];

	(void)state;
	assert_int_equal(log_escape("ab\ncd", out, sizeof(out)), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(log_escape("abcdefgh", out, sizeof(out)), 5);
	assert_string_equal(out, "abcde");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls_and_backslashes),
		cmocka_unit_test(test_bidi_controls),
		cmocka_unit_test(test_cut_never_splits_an_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
