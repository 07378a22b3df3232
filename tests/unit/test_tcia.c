/* SPDX-License-Identifier: MIT
 * Unit tests for tcia.c's parsers on answers shaped like tcia-api.md's samples and quirks:
 * empty bodies, [] and null for no results, elements lacking the key, numbers for strings,
 * HTML pages and truncated JSON. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "log.h"
#include "tcia.h"
#include "../../src/tcia_int.h"

/* ---- allocation failure injection ----------------------------------------------------
 * The test binary is linked with -Wl,--wrap for these, so tcia.c's own allocations go
 * through a counter that can fail the Nth. jansson's are left alone: jansson 2.14's lexer
 * ignores a failed string-buffer append and returns damaged text as success (seen here:
 * "SeriesInstanceUID" parsed as "SeriesInstanceID"), so failing them tests jansson, not
 * us. */
static long alloc_countdown = -1; /* -1: never fail */
static long alloc_calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* Atomic: a long answer's elements are made on a helper thread too (ahead.c). */
static bool alloc_fails(void)
{
	__atomic_add_fetch(&alloc_calls, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&alloc_countdown, __ATOMIC_RELAXED) < 0)
		return false;
	return __atomic_fetch_sub(&alloc_countdown, 1, __ATOMIC_RELAXED) == 0;
}

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return alloc_fails() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return alloc_fails() ? NULL : __real_strndup(s, n);
}

/* Reads tests/fixtures/tcia/<name> (make runs tests from the project root). Returns a
 * new buffer; the test fails if the file is missing. */
static char *fixture(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "tests/fixtures/tcia/%s", name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = __real_malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* raw must be the same JSON as the fixture's element i, with the same key order. */
static void assert_raw_is_element(const char *raw, const char *body, size_t len, size_t i)
{
	json_t *all = json_loadb(body, len, 0, NULL), *mine = json_loads(raw, 0, NULL);
	char *a, *b;

	assert_non_null(all);
	assert_non_null(mine);
	a = json_dumps(json_array_get(all, i), JSON_COMPACT);
	b = json_dumps(mine, JSON_COMPACT);
	assert_string_equal(a, b);
	free(a);
	free(b);
	json_decref(all);
	json_decref(mine);
}

static int parse(const char *body, const char *key, struct record_values *v)
{
	return tcia_parse_values(body, strlen(body), key, v);
}

static void test_collections(void **state)
{
	struct record_values v;

	(void)state;
	assert_int_equal(
		parse("[{\"Collection\":\"4D-Lung\"},{\"Collection\":\"CT COLONOGRAPHY\"}]",
		      "Collection", &v),
		0);
	assert_int_equal(v.count, 2);
	assert_string_equal(v.v[0].value, "4D-Lung");
	assert_string_equal(v.v[1].value, "CT COLONOGRAPHY");
	record_values_clear(&v);
	assert_int_equal(v.count, 0);
}

/* The list is split into elements before each is parsed: brackets, braces, commas and
 * quotes inside strings, and nesting inside elements, must not confuse the split. */
static void test_element_split(void **state)
{
	struct record_values v;

	(void)state;
	assert_int_equal(parse("[ {\"Collection\":\"a],{\\\"b\", \"x\":[1,{\"y\":[]}]} ,\n"
			       "{\"Collection\":\"c\\\\\"}\t]\n",
			       "Collection", &v),
			 0);
	assert_int_equal(v.count, 2);
	assert_string_equal(v.v[0].value, "a],{\"b");
	assert_string_equal(v.v[1].value, "c\\");
	record_values_clear(&v);
}

static void test_no_results(void **state)
{
	static const char *const empties[] = { "", "  \r\n", "[]", "null", " [ ] " };
	struct record_values v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		assert_int_equal(parse(empties[i], "Collection", &v), 0);
		assert_int_equal(v.count, 0);
		record_values_clear(&v);
	}
}

static void test_missing_key_and_types(void **state)
{
	struct record_values v;

	(void)state;
	/* getBodyPartValues: some elements lack the key; a null is skipped; a number is
	 * kept as the text the service sent; unknown extra fields are ignored. */
	assert_int_equal(
		parse("[{\"BodyPartExamined\":\"CHEST\"},{},{\"BodyPartExamined\":null},"
		      "{\"BodyPartExamined\":7,\"Extra\":[1,2]},{\"BodyPartExamined\":2.5}]",
		      "BodyPartExamined", &v),
		0);
	assert_int_equal(v.count, 3);
	assert_string_equal(v.v[0].value, "CHEST");
	assert_string_equal(v.v[1].value, "7");
	assert_string_equal(v.v[2].value, "2.5");
	record_values_clear(&v);
}

static void test_non_ascii(void **state)
{
	struct record_values v;

	(void)state;
	assert_int_equal(parse("[{\"Collection\":\"Odd/Names\\u0007\\u00dc\"}]", "Collection", &v),
			 0);
	assert_int_equal(v.count, 1);
	assert_string_equal(v.v[0].value, "Odd/Names\x07\xc3\x9c");
	record_values_clear(&v);
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
		"[{\"Collection\":\"a\"},]",
		"[{\"Collection\":\"a\"}] x",
		"[{\"Collection\":\"a\"}",
		"[{\"Collection\":\"a]",
		"[,{\"Collection\":\"a\"}]",
		"[{\"Collection\":\"a\"} {\"Collection\":\"b\"}]",
	};
	struct record_values v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], "Collection", &v), -EBADMSG);
		assert_int_equal(v.count, 0);
		assert_null(v.v);
	}
}

/* Streaming: records arrive one by one whatever the pieces' sizes, and match what the
 * whole-body parser builds; malformed lists fail as the whole-body parser does. */
struct seen {
	char text[8192];
	size_t n;
};

/* A streamed record keeps its element's text as sent; the whole-body parser prints the
 * object again: compared as JSON, printed the same way. */
static int seen_series(void *arg, void *rec)
{
	struct seen *s = arg;
	struct record_series *r = rec;
	json_t *obj = json_loads(r->raw, JSON_ALLOW_NUL, NULL);
	char *raw;

	assert_non_null(obj);
	raw = json_dumps(obj, JSON_COMPACT);
	assert_non_null(raw);
	snprintf(s->text + strlen(s->text), sizeof(s->text) - strlen(s->text), "%s|%s|%s;",
		 r->series_uid, r->modality ? r->modality : "-", raw);
	free(raw);
	json_decref(obj);
	s->n++;
	return 0;
}

static int stream_each(enum record_kind kind, const char *body, size_t len, size_t piece,
		       record_each_fn each, struct seen *out)
{
	struct tcia_stream *st;
	size_t off;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	assert_int_equal(tcia_stream_new(kind, each, out, &st), 0);
	for (off = 0; off < len && rc == 0; off += piece)
		rc = tcia_stream_feed(st, body + off, len - off < piece ? len - off : piece);
	if (rc == 0)
		rc = tcia_stream_end(st);
	tcia_stream_free(st);
	return rc;
}

static int stream_in_pieces(enum record_kind kind, const char *body, size_t len, size_t piece,
			    struct seen *out)
{
	return stream_each(kind, body, len, piece, seen_series, out);
}

static void test_stream(void **state)
{
	static const char *const bad[] = {
		"<!doctype html><html><body><h1>HTTP Status 500</h1></body></html>",
		"[{\"SeriesInstanceUID\":\"1\"},{\"Series",
		"{\"SeriesInstanceUID\":\"1\"}",
		"[1,2]",
		"[{\"SeriesInstanceUID\":\"1\"},]",
		"[{\"SeriesInstanceUID\":\"1\"}] x",
		"[{\"SeriesInstanceUID\":\"1\"}",
		"[{\"SeriesInstanceUID\":\"1]",
		"[,{\"SeriesInstanceUID\":\"1\"}]",
	};
	struct record_series_list l;
	struct seen whole, part;
	size_t len, i, piece;
	char *body = fixture("series-quirks.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_series(body, len, &l), 0);
	memset(&whole, 0, sizeof(whole));
	for (i = 0; i < l.count; i++)
		seen_series(&whole, &l.v[i]);
	record_series_list_clear(&l);
	assert_true(whole.n > 1);
	for (piece = 1; piece <= len; piece += piece < 64 ? 1 : 97) {
		assert_int_equal(stream_in_pieces(RECORD_SERIES, body, len, piece, &part), 0);
		assert_int_equal(part.n, whole.n);
		assert_string_equal(part.text, whole.text);
	}
	free(body);
	/* No results: empty, blank, null, []. */
	assert_int_equal(stream_in_pieces(RECORD_SERIES, "", 0, 1, &part), 0);
	assert_int_equal(stream_in_pieces(RECORD_SERIES, " \n", 2, 1, &part), 0);
	assert_int_equal(stream_in_pieces(RECORD_SERIES, "null", 4, 1, &part), 0);
	assert_int_equal(stream_in_pieces(RECORD_SERIES, "[ ]", 3, 1, &part), 0);
	assert_int_equal(part.n, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (piece = 1; piece <= 7; piece += 3)
			assert_int_equal(stream_in_pieces(RECORD_SERIES, bad[i], strlen(bad[i]),
							  piece, &part),
					 -EBADMSG);
	}
}

/* A long answer (its elements parsed on a helper thread): every record in order, those
 * without their UID left out in their place (one log line for all of them), and a
 * broken element still fails the answer, named by its number. */
static int count_in_order(void *arg, void *rec)
{
	long *next = arg;
	struct record_series *r = rec;
	char want[32];

	snprintf(want, sizeof(want), "1.%ld", *next);
	assert_string_equal(r->series_uid, want);
	assert_non_null(r->raw);
	++*next;
	if (*next % 1000 == 700)
		++*next; /* an element left out */
	return 0;
}

static char *long_series_list(long n, long broken)
{
	size_t cap = (size_t)n * 96 + 16, len = 0;
	char *body = malloc(cap);
	long i;

	assert_non_null(body);
	body[len++] = '[';
	for (i = 0; i < n; i++) {
		if (i % 1000 == 700)
			len += (size_t)snprintf(body + len, cap - len, "%s{\"Modality\":\"CT\"}",
						i ? "," : "");
		else if (i == broken)
			len += (size_t)snprintf(body + len, cap - len, ",{\"SeriesInstanceUID\":}");
		else
			len += (size_t)snprintf(
				body + len, cap - len,
				"%s{\"SeriesInstanceUID\":\"1.%ld\",\"Modality\":\"CT\"}",
				i ? "," : "", i);
	}
	body[len++] = ']';
	body[len] = '\0';
	return body;
}

static void test_long_stream(void **state)
{
	struct tcia_stream *st;
	char *body;
	long next = 0;
	int rc;

	(void)state;
	body = long_series_list(5000, -1);
	log_clear_reason();
	assert_int_equal(tcia_stream_new(RECORD_SERIES, count_in_order, &next, &st), 0);
	assert_int_equal(tcia_stream_feed(st, body, strlen(body)), 0);
	assert_int_equal(tcia_stream_end(st), 0);
	assert_int_equal(next, 5000);
	assert_string_equal(log_reason(),
			    "TCIA answer: 5 series without SeriesInstanceUID left out");
	/* Again after a restart in the middle (a retried request). */
	tcia_stream_reset(st);
	next = 0;
	assert_int_equal(tcia_stream_feed(st, body, strlen(body) / 2), 0);
	tcia_stream_reset(st);
	next = 0;
	assert_int_equal(tcia_stream_feed(st, body, strlen(body)), 0);
	assert_int_equal(tcia_stream_end(st), 0);
	assert_int_equal(next, 5000);
	tcia_stream_free(st);
	free(body);

	body = long_series_list(5000, 4000);
	next = 0;
	log_clear_reason();
	assert_int_equal(tcia_stream_new(RECORD_SERIES, count_in_order, &next, &st), 0);
	rc = tcia_stream_feed(st, body, strlen(body));
	assert_int_equal(rc ? rc : tcia_stream_end(st), -EBADMSG);
	assert_int_equal(next, 4000);
	assert_non_null(strstr(log_reason(), "element 4000"));
	tcia_stream_free(st);
	free(body);
}

/* Every field of a series record, raw compared as JSON (the stream keeps it as sent). */
static int every_field(void *arg, void *rec)
{
	struct seen *s = arg;
	struct record_series *r = rec;
	const char *const f[] = { r->series_uid,   r->study_uid,     r->patient_id,
				  r->collection,   r->modality,      r->body_part,
				  r->manufacturer, r->description,   r->number,
				  r->date,         r->timestamp,     r->license_name,
				  r->license_uri,  r->collection_uri };
	json_t *obj = json_loads(r->raw, JSON_ALLOW_NUL, NULL);
	char *raw;
	size_t i;

	assert_non_null(obj);
	raw = json_dumps(obj, JSON_COMPACT);
	assert_non_null(raw);
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		snprintf(s->text + strlen(s->text), sizeof(s->text) - strlen(s->text), "%s|",
			 f[i] ? f[i] : "(none)");
	snprintf(s->text + strlen(s->text), sizeof(s->text) - strlen(s->text),
		 "%" PRId64 "|%" PRId64 "|%s;", r->image_count, r->file_size, raw);
	free(raw);
	json_decref(obj);
	s->n++;
	return 0;
}

/* A list of one element n times, then tail (NULL: none), as one answer. */
static char *repeated(const char *el, size_t n, const char *tail)
{
	size_t len = 1, cap = (strlen(el) + 1) * (n + 1) + (tail ? strlen(tail) : 0) + 3;
	char *body = malloc(cap);
	size_t i;

	assert_non_null(body);
	body[0] = '[';
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", el);
	if (tail)
		len += (size_t)snprintf(body + len, cap - len, "%s%s", n ? "," : "", tail);
	snprintf(body + len, cap - len, "]");
	return body;
}

/* Streamed elements have their members read in place (tcia_pick.c), not by jansson: the
 * records must be what jansson's reading makes, field for field, and what jansson
 * refuses must still be refused, whether an element is read on the helper thread (a long
 * answer) or not. */
static void test_stream_reads_members_as_jansson_does(void **state)
{
	static const char *const same[] = {
		"{\"SeriesInstanceUID\":\"1.1\",\"SeriesNumber\":4.0,\"ImageCount\":\"12.0\","
		"\"FileSize\":1e3,\"Modality\":\"C\\u0054\",\"BodyPartExamined\":null,"
		"\"Manufacturer\":true,\"SeriesDescription\":\"a\\u0000b\",\"TimeStamp\":null,"
		"\"DateReleased\":\"2020-01-01\",\"StudyInstanceUID\":\"2.1\",\"PatientID\":-0}",
		"{\"SeriesInstanceUID\":\"1.2\",\"SeriesNumber\":-7,\"ImageCount\":-3,"
		"\"FileSize\":\"12.5\",\"Extra\":{\"a\":[1,{\"b\":2}]}}",
		"{\"SeriesInstanceUID\":\"1.3\",\"SeriesNumber\":12345678901234567890123.5e-3,"
		"\"ImageCount\":1.5,\"FileSize\":\" 1\",\"LicenseURI\":1E2,\"SeriesDate\":false}",
		"{ \"SeriesInstanceUID\" : \"1.4\" , \"Modality\":\"\\u00e9\\ud83d\\ude00 \xc3\xa9\" }",
		"{\"Modality\":\"CT\"}",
		"{\"Series\\u0049nstanceUID\":\"1.5\",\"TimeStamp\":\"t\",\"DateReleased\":\"d\"}",
		"{\"SeriesInstanceUID\":\"1.6\",\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,"
		"\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":0,\"k11\":1,\"k12\":2,\"k13\":3,"
		"\"k14\":4,\"k15\":5,\"k16\":6,\"k17\":7,\"k18\":8,\"k19\":9,\"k20\":0,\"k21\":1,"
		"\"k22\":2,\"k23\":3,\"k24\":4,\"k25\":5,\"k26\":6,\"k27\":7,\"k28\":8,\"k29\":9,"
		"\"k30\":0,\"k31\":1,\"k32\":2,\"k33\":3,\"k34\":4,\"k35\":5,\"k36\":6,\"k37\":7,"
		"\"k38\":8,\"k39\":9,\"k40\":0,\"k41\":1,\"k42\":2,\"k43\":3,\"k44\":4,\"k45\":5,"
		"\"k46\":6,\"k47\":7,\"k48\":8,\"k49\":9,\"k50\":0,\"k51\":1,\"k52\":2,\"k53\":3,"
		"\"k54\":4,\"k55\":5,\"k56\":6,\"k57\":7,\"k58\":8,\"k59\":9,\"k60\":0,\"k61\":1,"
		"\"k62\":2,\"k63\":3,\"k64\":4,\"Modality\":\"MR\"}",
	};
	static const char *const refused[] = {
		"{\"SeriesInstanceUID\":\"1\",\"SeriesInstanceUID\":\"2\"}",
		"{\"SeriesInstanceUID\":\"1\",\"x\":1,\"x\":1}",
		"{\"SeriesInstanceUID\":\"1\",\"x\":99999999999999999999}",
		"{\"SeriesInstanceUID\":\"1\",\"x\":-1e999}",
		"{\"SeriesInstanceUID\":\"1\",\"x\\u0000\":1}",
		"{\"SeriesInstanceUID\":\"\xc0\xaf\"}",
		"{\"SeriesInstanceUID\":\"\xed\xa0\x80\"}",
		"{\"SeriesInstanceUID\":\"1\",\"x\":\"\xf4\x90\x80\x80\"}",
		"{\"SeriesInstanceUID\":\"1\"} x",
		"{\"SeriesInstanceUID\":\"1\",\"x\":{\"y\":1,\"y\":2}}",
		"{\"SeriesInstanceUID\":\"1\",\"x\":01}",
	};
	struct record_series_list l;
	struct seen whole, part;
	size_t i, j, n;
	char *body;

	(void)state;
	for (n = 1; n <= 600; n += 599) { /* 600: past a batch (ahead.c) */
		for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
			body = repeated(same[i], n, NULL);
			assert_int_equal(tcia_parse_series(body, strlen(body), &l), 0);
			memset(&whole, 0, sizeof(whole));
			for (j = 0; j < l.count && j < 3; j++)
				every_field(&whole, &l.v[j]);
			record_series_list_clear(&l);
			assert_int_equal(stream_each(RECORD_SERIES, body, strlen(body), 4096,
						     every_field, &part),
					 0);
			/* The first three records of each (the buffer holds no more). */
			part.text[strlen(whole.text)] = '\0';
			assert_string_equal(part.text, whole.text);
			free(body);
		}
		for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			body = repeated(same[0], n - 1, refused[i]);
			assert_int_equal(tcia_parse_series(body, strlen(body), &l), -EBADMSG);
			assert_int_equal(
				stream_in_pieces(RECORD_SERIES, body, strlen(body), 4096, &part),
				-EBADMSG);
			free(body);
		}
	}
}

static void test_series_sample(void **state)
{
	struct record_series_list l;
	struct record_series *r;
	size_t len;
	char *body = fixture("series-sample.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_series(body, len, &l), 0);
	assert_int_equal(l.count, 1);
	r = &l.v[0];
	assert_string_equal(r->series_uid,
			    "1.3.6.1.4.1.14519.5.2.1.5168.1900.104193299251798317056218297018");
	assert_string_equal(r->study_uid,
			    "1.3.6.1.4.1.14519.5.2.1.5168.1900.154535988064062152660648619556");
	assert_string_equal(r->patient_id, "STS_010");
	assert_string_equal(r->collection, "Soft-tissue-Sarcoma");
	assert_string_equal(r->modality, "MR");
	assert_string_equal(r->description, "2. AXIAL T1 BOTH LEGS - RESEARCH");
	assert_string_equal(r->number, "2");
	assert_string_equal(r->date, "2003-12-12 00:00:00.0");
	assert_string_equal(r->timestamp, "2015-05-27 17:12:21.0");
	assert_int_equal(r->image_count, 48);
	assert_int_equal(r->file_size, 25273786);
	assert_raw_is_element(r->raw, body, len, 0);
	record_series_list_clear(&l);
	free(body);
}

static void test_series_quirks(void **state)
{
	struct record_series_list l;
	size_t len;
	char *body = fixture("series-quirks.json", &len);

	(void)state;
	log_clear_reason();
	assert_int_equal(tcia_parse_series(body, len, &l), 0);
	/* The element without a SeriesInstanceUID is left out, and said so. */
	assert_int_equal(l.count, 4);
	assert_string_equal(log_reason(),
			    "TCIA answer: 1 series without SeriesInstanceUID left out");
	assert_string_equal(l.v[0].number, "7470024");
	assert_int_equal(l.v[0].image_count, 48);                       /* "48" */
	assert_int_equal(l.v[0].file_size, 25273786);                   /* "25273786.0" */
	assert_null(l.v[0].modality);                                   /* null */
	assert_string_equal(l.v[0].timestamp, "2020-01-02 03:04:05.0"); /* DateReleased */
	assert_raw_is_element(l.v[0].raw, body, len, 0);                /* unknown fields kept */
	assert_string_equal(l.v[1].number, "2");
	assert_int_equal(l.v[1].image_count, 4);      /* 4.0 */
	assert_int_equal(l.v[1].file_size, 25000000); /* 2.5e7 */
	assert_int_equal(l.v[2].image_count, -1);     /* negative */
	assert_int_equal(l.v[2].file_size, -1);       /* "lots" */
	assert_string_equal(l.v[2].number, "1.5");
	assert_string_equal(l.v[3].series_uid, "12345"); /* a number where text is due */
	assert_int_equal(l.v[3].file_size, -1);          /* true */
	assert_int_equal(l.v[3].image_count, -1);        /* [1] */
	record_series_list_clear(&l);
	free(body);
}

static void test_patients(void **state)
{
	struct record_patients l;
	size_t len;
	char *body = fixture("patients.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_patients(body, len, &l), 0);
	assert_int_equal(l.count, 3);
	assert_string_equal(l.v[0].patient_id, "STS_001"); /* PatientId, since 2023 */
	assert_string_equal(l.v[0].collection, "Soft-tissue-Sarcoma");
	assert_string_equal(l.v[1].patient_id, "OLD-01"); /* PatientID, before */
	assert_string_equal(l.v[2].patient_id, "BOTH");   /* PatientId wins */
	assert_raw_is_element(l.v[0].raw, body, len, 0);
	assert_raw_is_element(l.v[2].raw, body, len, 3);
	record_patients_clear(&l);
	free(body);
}

static void test_studies(void **state)
{
	struct record_studies l;
	size_t len;
	char *body = fixture("studies.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_studies(body, len, &l), 0);
	assert_int_equal(l.count, 2);
	assert_string_equal(l.v[0].study_uid, "1.2.840.1");
	assert_string_equal(l.v[0].description, "MRI LT LEG +C");
	assert_string_equal(l.v[0].date, "2003-12-12 00:00:00.0");
	assert_int_equal(l.v[0].series_count, 3);
	assert_int_equal(l.v[1].series_count, 5); /* "5" */
	assert_null(l.v[1].description);
	assert_raw_is_element(l.v[0].raw, body, len, 0);
	record_studies_clear(&l);
	free(body);
}

static void test_sizes(void **state)
{
	struct record_sizes l;
	size_t len;
	char *body = fixture("size.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_sizes(body, len, &l), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.v[0].total_bytes, 25273786);
	assert_int_equal(l.v[0].object_count, 48);
	assert_string_equal(l.v[0].raw, "{\"TotalSizeInBytes\":\"25273786.0\",\"ObjectCount\":48}");
	record_sizes_clear(&l);
	free(body);
	body = fixture("size-quirks.json", &len);
	assert_int_equal(tcia_parse_sizes(body, len, &l), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.v[0].total_bytes, 25273786);
	assert_int_equal(l.v[0].object_count, 48);
	assert_int_equal(l.v[1].total_bytes, -1);
	assert_int_equal(l.v[1].object_count, -1);
	assert_int_equal(l.v[2].total_bytes, -1);
	record_sizes_clear(&l);
	free(body);
}

static void test_body_parts_fixture(void **state)
{
	struct record_values l;
	size_t len;
	char *body = fixture("body-parts.json", &len);

	(void)state;
	assert_int_equal(tcia_parse_values(body, len, "BodyPartExamined", &l), 0);
	assert_int_equal(l.count, 2);
	assert_string_equal(l.v[1].value, "EXTREMITY");
	assert_string_equal(l.v[1].raw, "{\"BodyPartExamined\":\"EXTREMITY\"}");
	record_values_clear(&l);
	free(body);
}

/* Fails the 1st, 2nd, 3rd … allocation in turn: each run must end in -ENOMEM with an
 * empty list (valgrind and ASan check nothing leaked), until one run needs no failure. */
typedef int (*parse_fn)(const char *body, size_t len, void *out);
typedef void (*clear_fn)(void *list);

static void alloc_loop(const char *name, parse_fn parse_list, clear_fn clear)
{
	struct {
		size_t count;
		void *v;
	} list;
	size_t len;
	char *body = fixture(name, &len);
	long n;
	int rc;

	for (n = 0;; n++) {
		alloc_countdown = n;
		alloc_calls = 0;
		rc = parse_list(body, len, &list);
		alloc_countdown = -1;
		if (rc == 0) {
			if (list.count == 0)
				fail_msg("%s: success with no records when allocation %ld failed",
					 name, n);
			clear(&list);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(list.count, 0);
		assert_null(list.v);
		assert_true(n < 100000);
	}
	assert_true(n >= 1); /* the loop did fail at least one allocation */
	free(body);
}

static int parse_series_any(const char *b, size_t n, void *out)
{
	return tcia_parse_series(b, n, out);
}

static int parse_patients_any(const char *b, size_t n, void *out)
{
	return tcia_parse_patients(b, n, out);
}

static int parse_studies_any(const char *b, size_t n, void *out)
{
	return tcia_parse_studies(b, n, out);
}

static int parse_sizes_any(const char *b, size_t n, void *out)
{
	return tcia_parse_sizes(b, n, out);
}

static int parse_bodyparts_any(const char *b, size_t n, void *out)
{
	return tcia_parse_values(b, n, "BodyPartExamined", out);
}

static void test_allocation_failures(void **state)
{
	(void)state;
	alloc_loop("series-sample.json", parse_series_any, (clear_fn)record_series_list_clear);
	alloc_loop("series-quirks.json", parse_series_any, (clear_fn)record_series_list_clear);
	alloc_loop("patients.json", parse_patients_any, (clear_fn)record_patients_clear);
	alloc_loop("studies.json", parse_studies_any, (clear_fn)record_studies_clear);
	alloc_loop("size-quirks.json", parse_sizes_any, (clear_fn)record_sizes_clear);
	alloc_loop("body-parts.json", parse_bodyparts_any, (clear_fn)record_values_clear);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_series_sample),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_long_stream),
		cmocka_unit_test(test_stream_reads_members_as_jansson_does),
		cmocka_unit_test(test_series_quirks),
		cmocka_unit_test(test_patients),
		cmocka_unit_test(test_studies),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_body_parts_fixture),
		cmocka_unit_test(test_allocation_failures),
		cmocka_unit_test(test_collections),
		cmocka_unit_test(test_no_results),
		cmocka_unit_test(test_element_split),
		cmocka_unit_test(test_missing_key_and_types),
		cmocka_unit_test(test_non_ascii),
		cmocka_unit_test(test_bad_answers),
	};

	return cmocka_run_group_tests_name("tcia", tests, NULL, NULL);
}
