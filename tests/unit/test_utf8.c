/* SPDX-License-Identifier: MIT
 * test_utf8.c — cutting names on a UTF-8 boundary and the one "~N" rule for names that
 * would be the same: a cut never splits a sequence, and a twin always fits 255 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static void test_cut_keeps_sequences_whole(void **state)
{
	(void)state;
	assert_int_equal(utf8_cut("abc", 10), 3);
	assert_int_equal(utf8_cut("abcdef", 4), 4);
	/* "é" is 2 bytes at 1..2: a cut at 2 would split it. */
	assert_int_equal(utf8_cut("aéb", 2), 1);
	assert_int_equal(utf8_cut("aéb", 3), 3);
	/* "✓" is 3 bytes, "😀" 4: cuts inside them back off to their start. */
	assert_int_equal(utf8_cut("x✓", 2), 1);
	assert_int_equal(utf8_cut("x✓", 3), 1);
	assert_int_equal(utf8_cut("x😀y", 4), 1);
	assert_int_equal(utf8_cut("x😀y", 5), 5);
	/* Continuation bytes that are not UTF-8 at all are cut where they stand. */
	assert_int_equal(utf8_cut("a\x80\x80\x80\x80\x80", 4), 4);
}

static void test_twins_fit_a_name(void **state)
{
	char long_name[300];
	char *s;
	size_t i;

	(void)state;
	s = utf8_twin("a_b", 2);
	assert_string_equal(s, "a_b~2");
	free(s);
	/* 299 bytes of "é…": cut to at most UTF8_TWIN_KEEP on a boundary, then the suffix,
	 * however big n is. */
	for (i = 0; i + 2 < sizeof(long_name); i += 2)
		memcpy(long_name + i, "é", 2);
	long_name[i] = 'z';
	long_name[i + 1] = '\0';
	s = utf8_twin(long_name, (size_t)-1);
	assert_non_null(s);
	assert_true(strlen(s) <= 255);
	assert_int_equal(strchr(s, '~') - s, UTF8_TWIN_KEEP);
	assert_int_equal(strncmp(s, long_name, UTF8_TWIN_KEEP), 0);
	free(s);
	/* Shifted by one byte, the cut at UTF8_TWIN_KEEP falls inside a sequence: it backs
	 * off one byte. */
	s = utf8_twin(long_name + 1, 3);
	assert_int_equal(strchr(s, '~') - s, UTF8_TWIN_KEEP - 1);
	assert_string_equal(strchr(s, '~'), "~3");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_keeps_sequences_whole),
		cmocka_unit_test(test_twins_fit_a_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
