/* SPDX-License-Identifier: MIT
 * Unit tests for tcia.c's parsers on answers shaped like tcia-api.md's samples and quirks:
 * empty bodies, [] and null for no results, elements lacking the key, numbers for strings,
 * HTML pages and truncated JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tcia.h"

static int parse(const char *body, const char *key, struct tcia_values *v)
{
	return tcia_parse_values(body, strlen(body), key, v);
}

static void test_collections(void **state)
{
	struct tcia_values v;

	(void)state;
	assert_int_equal(parse("[{\"Collection\":\"4D-Lung\"},{\"Collection\":\"CT COLONOGRAPHY\"}]",
			       "Collection", &v),
			 0);
	assert_int_equal(v.count, 2);
	assert_string_equal(v.v[0].value, "4D-Lung");
	assert_string_equal(v.v[1].value, "CT COLONOGRAPHY");
	tcia_values_clear(&v);
	assert_int_equal(v.count, 0);
}

static void test_no_results(void **state)
{
	static const char *const empties[] = { "", "  \r\n", "[]", "null", " [ ] " };
	struct tcia_values v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		assert_int_equal(parse(empties[i], "Collection", &v), 0);
		assert_int_equal(v.count, 0);
		tcia_values_clear(&v);
	}
}

static void test_missing_key_and_types(void **state)
{
	struct tcia_values v;

	(void)state;
	/* getBodyPartValues: some elements lack the key; a null is skipped; a number is
	 * kept as the text the service sent; unknown extra fields are ignored. */
	assert_int_equal(parse("[{\"BodyPartExamined\":\"CHEST\"},{},{\"BodyPartExamined\":null},"
			       "{\"BodyPartExamined\":7,\"Extra\":[1,2]},{\"BodyPartExamined\":2.5}]",
			       "BodyPartExamined", &v),
			 0);
	assert_int_equal(v.count, 3);
	assert_string_equal(v.v[0].value, "CHEST");
	assert_string_equal(v.v[1].value, "7");
	assert_string_equal(v.v[2].value, "2.5");
	tcia_values_clear(&v);
}

static void test_non_ascii(void **state)
{
	struct tcia_values v;

	(void)state;
	assert_int_equal(parse("[{\"Collection\":\"Odd/Names\\u0007\\u00dc\"}]", "Collection", &v), 0);
	assert_int_equal(v.count, 1);
	assert_string_equal(v.v[0].value, "Odd/Names\x07\xc3\x9c");
	tcia_values_clear(&v);
}

static void test_bad_answers(void **state)
{
	static const char *const bad[] = {
		"<!doctype html><html><body><h1>HTTP Status 500</h1></body></html>",
		"[{\"Collection\":\"4D-Lung\"},{\"Collect",
		"{\"Collection\":\"4D-Lung\"}",
		"[\"4D-Lung\"]",
		"[1,2]",
		"\"text\"",
		"[{\"Collection\":\"a\",\"Collection\":\"b\"}]",
	};
	struct tcia_values v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], "Collection", &v), -EBADMSG);
		assert_int_equal(v.count, 0);
		assert_null(v.v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collections),
		cmocka_unit_test(test_no_results),
		cmocka_unit_test(test_missing_key_and_types),
		cmocka_unit_test(test_non_ascii),
		cmocka_unit_test(test_bad_answers),
	};

	return cmocka_run_group_tests_name("tcia", tests, NULL, NULL);
}
