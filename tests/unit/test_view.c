/* SPDX-License-Identifier: MIT
 * Unit tests for view.c: manifests (both formats, CRLF, BOM, duplicates, each way of
 * being malformed and the line it is reported at), CSV quoting and column order, and the
 * citation text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "view.h"

static void parse_ok(const char *text, size_t want_count, const char *const *want)
{
	struct view_manifest m;
	const char *why;
	size_t line, i;

	assert_int_equal(view_manifest_parse(text, strlen(text), &m, &line, &why), 0);
	assert_int_equal(m.count, want_count);
	for (i = 0; i < want_count; i++)
		assert_string_equal(m.uids[i], want[i]);
	view_manifest_clear(&m);
}

static void parse_bad(const char *text, size_t len, size_t want_line)
{
	struct view_manifest m;
	const char *why;
	size_t line;

	assert_int_equal(view_manifest_parse(text, len, &m, &line, &why), -EINVAL);
	assert_int_equal(line, want_line);
	assert_non_null(why);
	assert_null(m.uids);
}

static void test_manifest_tcia(void **state)
{
	static const char *const want[] = { "1.2.3.4", "1.2.3.5" };

	(void)state;
	parse_ok(
		"\xEF\xBB\xBF"
		"downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet\r\n"
		"includeAnnotation=true\r\n"
		"noOfrRetry=4\r\n"
		"databasketId=manifest-1600709154662.tcia\r\n"
		"manifestVersion=3.0\r\n"
		"ListOfSeriesToDownload=\r\n"
		"1.2.3.4\r\n"
		"1.2.3.5\r\n"
		"1.2.3.4\r\n"
		"\r\n",
		2, want);
}

static void test_manifest_plain(void **state)
{
	static const char *const want[] = { "1.2.3", "4.5.6" };

	(void)state;
	parse_ok("# my series\n1.2.3\n\n  4.5.6  \n1.2.3", 2, want);
	parse_ok("", 0, NULL);
	parse_ok("ListOfSeriesToDownload=\n", 0, NULL);
}

static void test_manifest_malformed(void **state)
{
	(void)state;
	parse_bad("1.2.3\n1.2.x\n", 12, 2);
	parse_bad("a=b\nnot a header\nListOfSeriesToDownload=\n1.2\n", 44, 2);
	parse_bad("a=b\nc=d\n", 8, 2);
	parse_bad("a=b\nListOfSeriesToDownload=\n1.2\n..3\n", 35, 4);
	parse_bad("1.2.\n", 5, 1);
	parse_bad("1.2\n1\0.3\n", 9, 2);
	parse_bad("1.2345678901234567890123456789012345678901234567890123456789012345\n", 68, 1);
}

static void test_manifest_load(void **state)
{
	char dir[] = "/tmp/test_view.XXXXXX", path[64], err[256];
	struct view_manifest m;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/basket.tcia", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("manifestVersion=3.0\nListOfSeriesToDownload=\n1.2.3\nnope\n", f);
	fclose(f);
	assert_int_equal(view_manifest_load(path, &m, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "basket.tcia:4:"));
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("manifestVersion=3.0\nListOfSeriesToDownload=\n1.2.3\n", f);
	fclose(f);
	assert_int_equal(view_manifest_load(path, &m, err, sizeof(err)), 0);
	assert_string_equal(m.name, "basket");
	assert_int_equal(m.count, 1);
	view_manifest_clear(&m);
	unlink(path);
	assert_int_equal(view_manifest_load(path, &m, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "basket.tcia"));
	assert_int_equal(view_manifest_load(dir, &m, err, sizeof(err)), -EISDIR);
	rmdir(dir);
}

static void test_table(void **state)
{
	static const struct view_cell r0[] = { { "A", "x", 1 }, { "B", "1", 1 } };
	static const struct view_cell r1[] = {
		{ "B", "2.5", 3 },  { "C", "say \"hi\", then\nbye", 18 },
		{ "D", NULL, 0 },   { "E", "[1,2]", 5 },
		{ "F", "true", 4 },
	};
	static const struct view_cell r2[] = { { "A", "", 0 } };
	static const struct view_cell nul[] = { { "A", "a\0b", 3 } };
	struct view_table *t;
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(view_table_new(&t), 0);
	assert_int_equal(view_table_learn(t, r0, 2), 1);
	assert_int_equal(view_table_learn(t, r1, 5), 1);
	assert_int_equal(view_table_learn(t, r2, 1), 0); /* nothing new */
	assert_int_equal(view_table_row(t, r0, 2, "/p"), 0);
	assert_int_equal(view_table_row(t, r1, 5, "/a,b"), 0);
	assert_int_equal(view_table_row(t, r2, 1, "/p"), 0);
	assert_int_equal(view_table_finish(t, &out, &len), 0);
	assert_string_equal(out, "A,B,C,D,E,F,Path\r\n"
				 "x,1,,,,,/p\r\n"
				 ",2.5,\"say \"\"hi\"\", then\nbye\",,\"[1,2]\",true,\"/a,b\"\r\n"
				 ",,,,,,/p\r\n");
	assert_int_equal(len, strlen(out));
	free(out);
	/* A column not learnt is refused; a restart forgets the text, not the columns. */
	assert_int_equal(view_table_row(t, (const struct view_cell[]){ { "G", "1", 1 } }, 1, "/p"),
			 -EINVAL);
	view_table_restart(t);
	assert_int_equal(view_table_row(t, nul, 1, "/q"), 0);
	assert_int_equal(view_table_finish(t, &out, &len), 0);
	assert_int_equal(len, strlen("A,B,C,D,E,F,Path\r\n") + 3 + 6 + 4);
	assert_memory_equal(out, "A,B,C,D,E,F,Path\r\na\0b,,,,,,/q\r\n", len);
	free(out);
	view_table_free(t);

	/* No rows: a header of its own. */
	assert_int_equal(view_table_new(&t), 0);
	assert_int_equal(view_table_finish(t, &out, &len), 0);
	assert_string_equal(out, "Path\r\n");
	free(out);
	view_table_free(t);
}

static void test_citation(void **state)
{
	static const char *const dois[] = { "https://doi.org/10.7937/K9/TCIA.2015.7GO2GSKS" };
	static const char *const names[] = { "CC BY 3.0", "CC BY 4.0" };
	struct view_citation c = { "Soft-tissue-Sarcoma", dois, 1, names, 2, NULL, 0 };
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(view_citation_render(&c, &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_non_null(strstr(out, "Collection: Soft-tissue-Sarcoma\n"));
	assert_non_null(strstr(out, "DOI: https://doi.org/10.7937/K9/TCIA.2015.7GO2GSKS\n"));
	assert_non_null(strstr(out, "Licences:\n  CC BY 3.0\n  CC BY 4.0\n"));
	assert_non_null(strstr(out, "Licence URI: (the archive does not say)\n"));
	assert_non_null(strstr(out, "10.1007/s10278-013-9622-7"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_tcia),
		cmocka_unit_test(test_manifest_plain),
		cmocka_unit_test(test_manifest_malformed),
		cmocka_unit_test(test_manifest_load),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_citation),
	};

	return cmocka_run_group_tests_name("view", tests, NULL, NULL);
}
