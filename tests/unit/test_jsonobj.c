/* SPDX-License-Identifier: MIT
 * Unit tests for jsonobj.c: members read in place agree with jansson's reading of the same
 * text (every fixture element, printed plain, indented and with every character escaped),
 * escapes and surrogate pairs, NULs, nested values, numbers as sent, and each way of
 * being malformed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "jsonobj.h"

/* Every member jsonobj reads from text is the member jansson reads, in the same order:
 * strings byte for byte, the rest as JSON that loads equal. */
static void assert_agrees(const char *text, size_t len)
{
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	struct jsonobj o = { 0 };
	struct jsonobj_member m;
	const char *key;
	json_t *value;
	int more;

	assert_true(json_is_object(root));
	jsonobj_start(&o, text, len);
	json_object_foreach(root, key, value)
	{
		assert_int_equal(jsonobj_next(&o, &m), 1);
		assert_int_equal(m.klen, strlen(key));
		assert_memory_equal(m.key, key, m.klen);
		switch (json_typeof(value)) {
		case JSON_NULL:
			assert_int_equal(m.type, JSONOBJ_NULL);
			assert_null(m.text);
			break;
		case JSON_TRUE:
			assert_int_equal(m.type, JSONOBJ_TRUE);
			break;
		case JSON_FALSE:
			assert_int_equal(m.type, JSONOBJ_FALSE);
			break;
		case JSON_STRING:
			assert_int_equal(m.type, JSONOBJ_STRING);
			assert_int_equal(m.len, json_string_length(value));
			assert_memory_equal(m.text, json_string_value(value), m.len);
			break;
		default: {
			json_t *again =
				json_loadb(m.text, m.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

			assert_non_null(again);
			assert_true(json_equal(again, value));
			assert_int_equal(m.type, json_is_array(value)    ? JSONOBJ_ARRAY
						 : json_is_object(value) ? JSONOBJ_OBJECT
									 : JSONOBJ_NUMBER);
			json_decref(again);
		}
		}
	}
	more = jsonobj_next(&o, &m);
	assert_int_equal(more, 0);
	assert_int_equal(jsonobj_next(&o, &m), 0);
	jsonobj_release(&o);
	json_decref(root);
}

static void test_fixtures_agree(void **state)
{
	static const char *const names[] = { "patients.json",      "studies.json",
					     "series-sample.json", "series-quirks.json",
					     "size.json",          "size-quirks.json" };
	static const size_t flags[] = { JSON_COMPACT, JSON_INDENT(3), JSON_ENSURE_ASCII,
					JSON_INDENT(1) | JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH };
	size_t i, j, f, objects = 0;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256];
		json_t *list, *el;

		snprintf(path, sizeof(path), "tests/fixtures/tcia/%s", names[i]);
		list = json_load_file(path, JSON_ALLOW_NUL, NULL);
		assert_true(json_is_array(list));
		json_array_foreach(list, j, el)
		{
			if (!json_is_object(el))
				continue;
			for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
				char *text = json_dumps(el, flags[f] | JSON_PRESERVE_ORDER);

				assert_non_null(text);
				assert_agrees(text, strlen(text));
				free(text);
			}
			objects++;
		}
		json_decref(list);
	}
	assert_true(objects >= 10);
}

static void test_escapes_and_nesting(void **state)
{
	/* Keys and values with escapes; a value long enough to move the buffer that holds
	 * the key decoded before it. */
	static const char text[] =
		"{ \"k\\u00e9y\" : \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\","
		"\"nul\":\"x\\u0000y\", \"\\n\":\""
		"\\u0041aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		"\"arr\" : [ 1 , { \"b\" : \"x y\" , \"c\" : [ ] } , \"]\\\"}\" ],\n\t\"obj\":{},"
		"\"n\":-0, \"r\":2.5e7, \"e\":1E+2,"
		"\"t\":true,\"f\":false,\"z\":null}\n";
	struct jsonobj o = { 0 };
	struct jsonobj_member m;

	(void)state;
	assert_agrees(text, sizeof(text) - 1);
	jsonobj_start(&o, text, sizeof(text) - 1);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.klen, 4);
	assert_memory_equal(m.key, "k\xc3\xa9y", 4);
	assert_int_equal(m.len, 21);
	assert_memory_equal(m.text, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 21);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.len, 3);
	assert_memory_equal(m.text, "x\0y", 3);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.klen, 1);
	assert_memory_equal(m.key, "\n", 1);
	assert_true(m.len > 256 && m.text[0] == 'A' && m.text[m.len - 1] == 'a');
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.type, JSONOBJ_ARRAY);
	assert_int_equal(m.len, strlen("[1,{\"b\":\"x y\",\"c\":[]},\"]\\\"}\"]"));
	assert_memory_equal(m.text, "[1,{\"b\":\"x y\",\"c\":[]},\"]\\\"}\"]", m.len);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.type, JSONOBJ_OBJECT);
	assert_memory_equal(m.text, "{}", 2);
	/* Numbers keep the text they came in. */
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_memory_equal(m.text, "-0", m.len);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_memory_equal(m.text, "2.5e7", m.len);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_memory_equal(m.text, "1E+2", m.len);
	jsonobj_release(&o);
	/* Past what jansson takes for an integer: still read, as sent. */
	jsonobj_start(&o, "{\"big\":123456789012345678901234567890}", 38);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.type, JSONOBJ_NUMBER);
	assert_int_equal(m.len, 30);

	/* A NUL byte right after a number or a literal: jansson takes it, and so this. */
	assert_agrees("{\"f\":false\0, \"n\":1\0,\"a\":[1\0,null\0]}", 35);
	jsonobj_start(&o, "{}", 2);
	assert_int_equal(jsonobj_next(&o, &m), 0);
	jsonobj_start(&o, " {\"\":\"\"} ", 9);
	assert_int_equal(jsonobj_next(&o, &m), 1);
	assert_int_equal(m.klen, 0);
	assert_int_equal(m.len, 0);
	assert_int_equal(jsonobj_next(&o, &m), 0);
	jsonobj_release(&o);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		" ",
		"[]",
		"null",
		"{",
		"{\"a\"}",
		"{\"a\":}",
		"{\"a\":1,}",
		"{,}",
		"{\"a\":1} x",
		"{\"a\":1}}",
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":.5}",
		"{\"a\":-}",
		"{\"a\":1e}",
		"{\"a\":+1}",
		"{\"a\":tru}",
		"{\"a\":nul}",
		"{\"a\":falsey}",
		"{\"a\":\"\\ud800\"}",
		"{\"a\":\"\\udc00\"}",
		"{\"a\":\"\\ud800\\u0041\"}",
		"{\"a\":\"\\u12\"}",
		"{\"a\":\"\\x\"}",
		"{\"a\":\"x\ny\"}",
		"{\"a\":\"x",
		"{\"a\":\"x\\",
		"{\"a\":[1}",
		"{\"a\":{]}",
		"{\"a\":[[]}",
		"{\"a\":[\"]\"}",
		"{\"a\":1 \"b\":2}",
		"{\"a\" 1}",
		"{a:1}",
		"{\"a\":1}\0",
	};
	struct jsonobj o = { 0 };
	struct jsonobj_member m;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]) + (strcmp(bad[i], "{\"a\":1}") == 0);

		jsonobj_start(&o, bad[i], len);
		while ((rc = jsonobj_next(&o, &m)) == 1)
			;
		if (rc != -EBADMSG)
			fail_msg("%s: %d", bad[i], rc);
		/* And it stays so. */
		assert_int_equal(jsonobj_next(&o, &m), -EBADMSG);
	}
	jsonobj_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures_agree),
		cmocka_unit_test(test_escapes_and_nesting),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
