/* SPDX-License-Identifier: MIT
 * Unit tests for idc.c: SQL literals and statements (run on a real SQLite `index` table:
 * a hostile patient ID finds nothing and changes nothing), the /sql answer parsed row by
 * row in pieces of any size, S3 listings through expat (pages, bad sizes, XML bombs,
 * error documents), collections, object URLs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "idc.h"
#include "record.h"
#include "../../src/idc_int.h"

static void quote_is(const char *in, const char *want)
{
	char *q = idc_sql_quote(in);

	assert_non_null(q);
	assert_string_equal(q, want);
	free(q);
}

static void test_sql_quote(void **state)
{
	(void)state;
	quote_is("", "''");
	quote_is("TCGA-05-4244", "'TCGA-05-4244'");
	quote_is("QA-O'NEIL--01", "'QA-O''NEIL--01'");
	quote_is("''", "''''''");
	quote_is("x' OR '1'='1", "'x'' OR ''1''=''1'");
}

static void test_series_sql_shape(void **state)
{
	struct idc_query q = { .collection_id = "nlst", .patient_id = "O'Brien", .limit = 50 };
	char *sql;

	(void)state;
	assert_int_equal(idc_series_sql(&q, &sql), 0);
	assert_non_null(strstr(sql, " FROM \"index\" WHERE true AND collection_id = 'nlst' AND "
				    "PatientID = 'O''Brien' ORDER BY PatientID, StudyInstanceUID, "
				    "SeriesInstanceUID LIMIT 50"));
	assert_non_null(strstr(sql, "SELECT collection_id, PatientID,"));
	free(sql);
	/* Keyset paging in patients' order, without row values; IDC's most per page,
	 * whatever is asked. */
	q = (struct idc_query){ .collection_id = "nlst",
				.after = { "P'1", "1.2", "1.2.3" },
				.limit = 50000 };
	assert_int_equal(idc_series_sql(&q, &sql), 0);
	assert_non_null(strstr(sql, "AND (PatientID > 'P''1' OR (PatientID = 'P''1' AND "
				    "(StudyInstanceUID > '1.2' OR (StudyInstanceUID = '1.2' AND "
				    "SeriesInstanceUID > '1.2.3')))) ORDER BY PatientID, "
				    "StudyInstanceUID, SeriesInstanceUID LIMIT 10000"));
	free(sql);
	/* A key short of its parts is no key. */
	q = (struct idc_query){ .collection_id = "nlst", .after = { "P1", "1.2" } };
	assert_int_equal(idc_series_sql(&q, &sql), -EINVAL);
	assert_null(sql);
	q = (struct idc_query){ .series_uid = "1.2.3" };
	assert_int_equal(idc_series_sql(&q, &sql), 0);
	assert_non_null(strstr(sql, "SeriesInstanceUID = '1.2.3'"));
	assert_non_null(strstr(sql, "LIMIT 10000"));
	free(sql);
	q = (struct idc_query){ .patient_id = "x" };
	assert_int_equal(idc_series_sql(&q, &sql), -EINVAL);
	assert_null(sql);
}

static int count_rows(void *arg, int n, char **vals, char **cols)
{
	(void)n, (void)vals, (void)cols;
	(*(int *)arg)++;
	return 0;
}

/* The statements run on SQLite, as IDC's fake does: a value from a path cannot change
 * what is asked, whatever quotes and comments it holds. */
static void test_series_sql_resists_injection(void **state)
{
	static const char *const hostile[] = {
		"x' OR '1'='1",  "x' OR 1=1 --", "'; DROP TABLE \"index\"; --",
		"x'/*",          "--",           "QA-O'NEIL--01' UNION SELECT * FROM \"index\" --",
		"\\' OR 1=1 --",
	};
	sqlite3 *db;
	char *sql, *err = NULL;
	size_t i;
	int n;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(
			db,
			"CREATE TABLE \"index\"(collection_id, PatientID, PatientAge, PatientSex,"
			" StudyInstanceUID, StudyDescription, StudyDate, SeriesInstanceUID, Modality,"
			" BodyPartExamined, Manufacturer, ManufacturerModelName, SeriesDescription,"
			" SeriesNumber, SeriesDate, instanceCount, series_size_MB, license_short_name,"
			" source_DOI, aws_bucket, crdc_series_uuid);"
			"INSERT INTO \"index\"(collection_id, PatientID, SeriesInstanceUID) VALUES"
			" ('c', 'QA-O''NEIL--01', '1.1'), ('c', 'other', '1.2'), ('d', 'x', '1.3');",
			NULL, NULL, &err),
		SQLITE_OK);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct idc_query q = { .collection_id = "c", .patient_id = hostile[i] };

		assert_int_equal(idc_series_sql(&q, &sql), 0);
		n = 0;
		assert_int_equal(sqlite3_exec(db, sql, count_rows, &n, &err), SQLITE_OK);
		assert_int_equal(n, 0);
		free(sql);
	}
	/* The real ID, with its quote and dashes, finds its row and only it. */
	{
		struct idc_query q = { .collection_id = "c", .patient_id = "QA-O'NEIL--01" };

		assert_int_equal(idc_series_sql(&q, &sql), 0);
		n = 0;
		assert_int_equal(sqlite3_exec(db, sql, count_rows, &n, &err), SQLITE_OK);
		assert_int_equal(n, 1);
		free(sql);
	}
	/* The patients and studies derived from the rows run, and resist the same. */
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct idc_query q = { .collection_id = hostile[i],
				       .after = { hostile[i], hostile[i], hostile[i] } };

		assert_int_equal(idc_each_sql(RECORD_PATIENTS, &q, &sql), 0);
		n = 0;
		assert_int_equal(sqlite3_exec(db, sql, count_rows, &n, &err), SQLITE_OK);
		assert_int_equal(n, 0);
		free(sql);
		assert_int_equal(idc_each_sql(RECORD_STUDIES, &q, &sql), 0);
		assert_int_equal(sqlite3_exec(db, sql, count_rows, &n, &err), SQLITE_OK);
		assert_int_equal(n, 0);
		free(sql);
	}
	{
		struct idc_query q = { .collection_id = "c" };

		assert_int_equal(idc_each_sql(RECORD_PATIENTS, &q, &sql), 0);
		n = 0;
		assert_int_equal(sqlite3_exec(db, sql, count_rows, &n, &err), SQLITE_OK);
		assert_int_equal(n, 2);
		assert_non_null(strstr(sql, "GROUP BY PatientID, collection_id ORDER BY PatientID "
					    "LIMIT 10000"));
		free(sql);
	}
	n = 0;
	assert_int_equal(sqlite3_exec(db, "SELECT * FROM \"index\"", count_rows, &n, &err),
			 SQLITE_OK);
	assert_int_equal(n, 3);
	sqlite3_close(db);
}

/* ---- the /sql answer ---------------------------------------------------------------- */

struct seen {
	int rows;
	char uids[4][64];
	char buckets[4][32];
	int64_t images[4], bytes[4];
	bool body_part_null[4];
	char *raw0;
	int stop_at; /* 0 = never */
};

static int on_series(void *arg, struct record_series *s, const char *bucket, const char *uuid)
{
	struct seen *z = arg;

	assert_non_null(uuid);
	if (z->rows < 4) {
		snprintf(z->uids[z->rows], sizeof(z->uids[0]), "%s", s->series_uid);
		snprintf(z->buckets[z->rows], sizeof(z->buckets[0]), "%s", bucket);
		z->images[z->rows] = s->image_count;
		z->bytes[z->rows] = s->file_size;
		z->body_part_null[z->rows] = s->body_part == NULL;
	}
	if (z->rows == 0) {
		z->raw0 = s->raw; /* taken: the parser frees what is left */
		s->raw = NULL;
	}
	z->rows++;
	return z->stop_at && z->rows == z->stop_at ? -ECANCELED : 0;
}

#define ROW(uid, part)                                                                       \
	"{\"collection_id\":\"nlst\",\"PatientID\":\"100002\",\"StudyInstanceUID\":\"1.2\"," \
	"\"StudyDescription\":\"a {b} \\\"c\\\" [d]\",\"SeriesInstanceUID\":\"" uid "\","    \
	"\"Modality\":\"CT\",\"BodyPartExamined\":" part ",\"Manufacturer\":null,"           \
	"\"SeriesNumber\":\"3\",\"instanceCount\":1500,\"series_size_MB\":2.0191,"           \
	"\"license_short_name\":\"CC BY 4.0\",\"source_DOI\":\"10.7937/x\","                 \
	"\"aws_bucket\":\"idc-open-data-two\",\"crdc_series_uuid\":\"u-" uid "\"}"

/* clang-format off */
static const char answer[] =
	"{\"columns\":[\"collection_id\",\"PatientID\"],\n \"rows\": [" ROW("1.2.3", "\"CHEST\"")
	", " ROW("1.2.4", "null") "],\"row_count\":2,\"truncated\":true,\"max_rows\":2}";
/* clang-format on */

static int parse_answer(const char *body, size_t len, size_t piece, struct seen *z, size_t *rows,
			bool *truncated)
{
	struct idc_answer *a;
	size_t off;
	int rc = 0;

	assert_int_equal(idc_answer_new(on_series, z, &a), 0);
	for (off = 0; off < len && rc == 0; off += piece)
		rc = idc_answer_feed(a, body + off, len - off < piece ? len - off : piece);
	rc = idc_answer_end(a, rows, truncated);
	idc_answer_free(a);
	return rc;
}

static void test_answer_rows(void **state)
{
	static const size_t pieces[] = { 1, 2, 7, 64, 100000 };
	size_t i, rows;
	bool truncated;
	json_t *raw;

	(void)state;
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct seen z = { 0 };

		assert_int_equal(
			parse_answer(answer, strlen(answer), pieces[i], &z, &rows, &truncated), 0);
		assert_int_equal(rows, 2);
		assert_true(truncated);
		assert_int_equal(z.rows, 2);
		assert_string_equal(z.uids[0], "1.2.3");
		assert_string_equal(z.uids[1], "1.2.4");
		assert_string_equal(z.buckets[1], "idc-open-data-two");
		assert_int_equal(z.images[0], 1500);
		assert_int_equal(z.bytes[0], 2019100); /* decimal MB, rounded by IDC */
		assert_false(z.body_part_null[0]);
		assert_true(z.body_part_null[1]);
		/* The seed's names where IDC has them, and the row as sent. */
		assert_non_null(strstr(z.raw0, "\"Collection\":\"nlst\""));
		assert_non_null(strstr(z.raw0, "\"ImageCount\":1500"));
		assert_non_null(strstr(z.raw0, "\"FileSize\":2019100"));
		/* A null is not given a seed name; the row keeps it. */
		assert_true(strstr(z.raw0, "\"Manufacturer\"") > strstr(z.raw0, "\"idc\":"));
		assert_non_null(strstr(z.raw0, "\"idc\":{\"collection_id\":\"nlst\""));
		/* Values printed as jansson prints them: escaped where they must be. */
		assert_non_null(strstr(z.raw0, "\"StudyDescription\":\"a {b} \\\"c\\\" [d]\","));
		assert_non_null(strstr(z.raw0, "\"SeriesNumber\":\"3\","));
		raw = json_loads(z.raw0, 0, NULL);
		assert_non_null(raw);
		assert_string_equal(json_string_value(json_object_get(raw, "StudyDescription")),
				    "a {b} \"c\" [d]");
		json_decref(raw);
		free(z.raw0);
	}
}

static void answer_bad(const char *body)
{
	struct seen z = { 0 };
	size_t rows;
	bool truncated;

	if (parse_answer(body, strlen(body), 3, &z, &rows, &truncated) != -EBADMSG)
		fail_msg("accepted: %s", body);
	free(z.raw0);
}

static void test_answer_bad(void **state)
{
	struct seen z = { .stop_at = 1 };
	size_t rows;
	bool truncated;

	(void)state;
	answer_bad("");
	answer_bad("[]");
	answer_bad("{\"rows\":[");
	answer_bad("{\"rows\":{}}");
	answer_bad("{\"rows\":[1]}");
	answer_bad("{\"rows\":[{\"a\":1}]}"); /* no series UID, no bucket */
	answer_bad("{\"rows\":[],\"truncated\":\"yes\"}");
	answer_bad("{\"rows\":[]} x");
	answer_bad("{\"rows\":[" ROW("1", "1") "]}"); /* a body part that is a number */
	answer_bad("{\"error\":{\"code\":\"invalid_query\"},}");
	answer_bad("{\"error\":{\"code\":\"invalid_query\"}}");
	answer_bad("{\"rows\":[],}");
	answer_bad("{\"rows\":[],\"rows\":[]}");
	/* Fine: no rows, other members in another order. */
	assert_int_equal(
		parse_answer("{\"truncated\":false,\"rows\":[]}", 29, 5, &z, &rows, &truncated), 0);
	assert_int_equal(rows, 0);
	/* The consumer's error stops the parse and is what comes back. */
	assert_int_equal(parse_answer(answer, strlen(answer), 9, &z, &rows, &truncated),
			 -ECANCELED);
	assert_int_equal(z.rows, 1);
	free(z.raw0);
}

/* A long page (rows parsed on a helper thread): every row handed on in order, and a
 * broken row still fails the page after the rows before it. */
static char *long_raw0; /* the first row's record as sent, made on the helper */

static int in_order(void *arg, struct record_series *s, const char *bucket, const char *uuid)
{
	int *next = arg;
	char want[32];

	(void)bucket;
	(void)uuid;
	snprintf(want, sizeof(want), "1.%05d", *next);
	assert_string_equal(s->series_uid, want);
	if (*next == 0 && !long_raw0) {
		long_raw0 = s->raw;
		s->raw = NULL;
	}
	++*next;
	return 0;
}

static char *long_page(int n, int broken)
{
	size_t cap = (size_t)n * 600 + 64, len = 0;
	char *body = malloc(cap), uid[16];
	int i;

	assert_non_null(body);
	len += (size_t)snprintf(body, cap, "{\"rows\":[");
	for (i = 0; i < n; i++) {
		snprintf(uid, sizeof(uid), "1.%05d", i);
		if (i == broken)
			len += (size_t)snprintf(body + len, cap - len, ",{\"SeriesInstanceUID\":}");
		else
			len += (size_t)snprintf(body + len, cap - len, "%s" ROW("%s", "null"),
						i ? "," : "", uid, uid);
	}
	len += (size_t)snprintf(body + len, cap - len, "],\"truncated\":false}");
	return body;
}

static void test_answer_long(void **state)
{
	struct idc_answer *a;
	size_t rows;
	bool truncated;
	int next = 0, b;
	char *body;

	(void)state;
	for (b = 0; b < 2; b++) {
		body = long_page(3000, b ? 2500 : -1);
		next = 0;
		assert_int_equal(idc_answer_new(in_order, &next, &a), 0);
		idc_answer_feed(a, body, strlen(body));
		assert_int_equal(idc_answer_end(a, &rows, &truncated), b ? -EBADMSG : 0);
		assert_int_equal(next, b ? 2500 : 3000);
		if (!b)
			assert_int_equal(rows, 3000);
		idc_answer_free(a);
		free(body);
	}
	/* The record made on the helper (the row as sent under "idc") is the one made from
	 * a short answer (the row printed again): the same JSON. */
	{
		static const char one[] = "{\"rows\":[" ROW("1.00000", "null") "]}";
		struct seen z = { 0 };
		json_t *fast = json_loads(long_raw0, 0, NULL), *slow;

		assert_int_equal(parse_answer(one, strlen(one), 100000, &z, &rows, &truncated), 0);
		slow = json_loads(z.raw0, 0, NULL);
		assert_non_null(fast);
		assert_non_null(slow);
		assert_true(json_equal(fast, slow));
		assert_non_null(
			strstr(long_raw0, "\"FileSize\":2019100,\"idc\":{\"collection_id\""));
		json_decref(fast);
		json_decref(slow);
		free(z.raw0);
		free(long_raw0);
		long_raw0 = NULL;
	}
}

/* A series row is built from its columns picked in place when the picker can read it as
 * jansson would, and from jansson's object otherwise: both give the same record. */
static void row_both_ways(const char *row, bool must_pick)
{
	struct record_series p, j;
	char *pb, *pu, *jb, *ju;
	int rp = idc_series_row(row, strlen(row), true, &p, &pb, &pu);
	int rj = idc_series_row(row, strlen(row), false, &j, &jb, &ju);

	if (must_pick)
		assert_int_equal(rp, 0);
	if (rp != -EAGAIN) {
		assert_int_equal(rp, rj);
	}
	if (rp == 0) {
		assert_string_equal(p.series_uid, j.series_uid);
		assert_string_equal(p.patient_id, j.patient_id);
		assert_string_equal(p.raw, j.raw);
		assert_int_equal(p.image_count, j.image_count);
		assert_int_equal(p.file_size, j.file_size);
		assert_string_equal(pb, jb);
		assert_string_equal(pu, ju);
		assert_true((p.body_part == NULL) == (j.body_part == NULL));
	}
	record_series_clear(&p);
	record_series_clear(&j);
	free(pb);
	free(pu);
	free(jb);
	free(ju);
}

static void test_row_picked(void **state)
{
	(void)state;
	row_both_ways(ROW("1.2.3", "\"CHEST\""), true);
	row_both_ways(ROW("1.2.4", "null"), true);
	/* What the picker leaves to jansson: a nested value, a repeated key. */
	row_both_ways("{\"SeriesInstanceUID\":\"1\",\"aws_bucket\":\"b\","
		      "\"crdc_series_uuid\":\"u\",\"Manufacturer\":{\"a\":1}}",
		      false);
	row_both_ways("{\"SeriesInstanceUID\":\"1\",\"aws_bucket\":\"b\","
		      "\"crdc_series_uuid\":\"u\",\"Modality\":\"CT\",\"Modality\":\"MR\"}",
		      false);
	row_both_ways(ROW("1.2.5", "1"), false); /* refused both ways */
}

/* ---- listings ------------------------------------------------------------------------- */

#define S3_HEAD                                                                \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                         \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" \
	"<Name>idc-open-data</Name><Prefix>u/</Prefix>"
#define S3_ITEM(k, n)                                                      \
	"<Contents><Key>" k "</Key><LastModified>2024-05-01T12:00:00.000Z" \
	"</LastModified><ETag>&quot;abc&quot;</ETag><Size>" n "</Size></Contents>"

static void test_listing(void **state)
{
	/* clang-format off */
	static const char page[] = S3_HEAD "<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
		"<IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1"
		"</NextContinuationToken>" S3_ITEM("u/a.dcm", "1346")
		S3_ITEM("u/b &amp; c.dcm", "18446744073709551615") "</ListBucketResult>";
	static const char last[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
		S3_ITEM("u/notes.txt", "17") "</ListBucketResult>";
	/* clang-format on */
	struct idc_listing l;

	(void)state;
	assert_int_equal(idc_parse_listing(page, strlen(page), &l), 0);
	assert_int_equal(l.count, 2);
	assert_string_equal(l.v[0].key, "u/a.dcm");
	assert_int_equal(l.v[0].size, 1346);
	assert_string_equal(l.v[1].key, "u/b & c.dcm");
	assert_true(l.v[1].size == UINT64_MAX);
	assert_true(l.truncated);
	assert_string_equal(l.next, "t&1");
	idc_listing_clear(&l);
	assert_int_equal(idc_parse_listing(last, strlen(last), &l), 0);
	assert_int_equal(l.count, 1);
	assert_false(l.truncated);
	assert_null(l.next);
	idc_listing_clear(&l);
}

/* An ETag is an MD5 to check only when it is a plain upload's: 32 hex digits. */
static void test_listing_etags(void **state)
{
/* clang-format off */
#define S3_TAGGED(k, tag) "<Contents><Key>" k "</Key><ETag>" tag "</ETag><Size>1</Size>" \
	"</Contents>"
	static const char page[] = S3_HEAD
		S3_TAGGED("u/a.dcm", "&quot;0123456789ABCDEFabcdef0123456789&quot;")
		S3_TAGGED("u/b.dcm", "&quot;312095fcddfb92f38977738ee8279fc2-65&quot;")
		S3_TAGGED("u/c.dcm", "0123456789abcdef0123456789abcdef")
		S3_TAGGED("u/d.dcm", "&quot;0123456789abcdef0123456789abcdeg&quot;")
		S3_TAGGED("u/e.dcm", "&quot;0123456789abcdef0123456789abcde&quot;")
		"<Contents><Key>u/f.dcm</Key><Size>1</Size></Contents></ListBucketResult>";
#undef S3_TAGGED
	/* clang-format on */
	struct idc_listing l;

	(void)state;
	assert_int_equal(idc_parse_listing(page, strlen(page), &l), 0);
	assert_int_equal(l.count, 6);
	assert_string_equal(l.v[0].md5, "0123456789abcdefabcdef0123456789");
	assert_string_equal(l.v[1].md5, ""); /* multipart: no digest of the content */
	assert_string_equal(l.v[2].md5, "0123456789abcdef0123456789abcdef");
	assert_string_equal(l.v[3].md5, ""); /* not hex */
	assert_string_equal(l.v[4].md5, ""); /* too short */
	assert_string_equal(l.v[5].md5, ""); /* none */
	idc_listing_clear(&l);
}

static void listing_bad(const char *xml)
{
	struct idc_listing l;

	assert_int_equal(idc_parse_listing(xml, strlen(xml), &l), -EBADMSG);
	assert_int_equal(l.count, 0);
	assert_null(l.v);
}

static void test_listing_bad(void **state)
{
	(void)state;
	listing_bad("");
	listing_bad("not xml");
	listing_bad("<Error><Code>NoSuchBucket</Code></Error>");
	listing_bad(S3_HEAD S3_ITEM("u/a.dcm", "12a") "</ListBucketResult>");
	listing_bad(S3_HEAD S3_ITEM("u/a.dcm", "-1") "</ListBucketResult>");
	listing_bad(S3_HEAD S3_ITEM("u/a.dcm", "") "</ListBucketResult>");
	listing_bad(S3_HEAD S3_ITEM("u/a.dcm", "18446744073709551616") "</ListBucketResult>");
	listing_bad(S3_HEAD "<Contents><Key>u/a.dcm</Key></Contents></ListBucketResult>");
	listing_bad(S3_HEAD S3_ITEM("", "1") "</ListBucketResult>");
	listing_bad(S3_HEAD "<IsTruncated>true</IsTruncated></ListBucketResult>");
	listing_bad(S3_HEAD "<IsTruncated>maybe</IsTruncated></ListBucketResult>");
	listing_bad(S3_HEAD S3_ITEM("u/a.dcm", "1")); /* cut short */
	/* A billion laughs: refused at the first entity declared. */
	listing_bad("<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
		    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
		    "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
		    "<ListBucketResult><Contents><Key>&c;</Key><Size>1</Size></Contents>"
		    "</ListBucketResult>");
	listing_bad("<!DOCTYPE l SYSTEM \"file:///etc/passwd\"><ListBucketResult>"
		    "<Contents><Key>&x;</Key><Size>1</Size></Contents></ListBucketResult>");
}

static void test_collections(void **state)
{
	static const char body[] = "[{\"collection_id\":\"tcga_luad\",\"collection_name\":"
				   "\"TCGA-LUAD\",\"subjects\":4},{\"collection_id\":\"nlst\"}]";
	struct idc_collections c;

	(void)state;
	assert_int_equal(idc_parse_collections(body, strlen(body), &c), 0);
	assert_int_equal(c.names.count, 2);
	assert_string_equal(c.names.v[0].value, "TCGA-LUAD");
	assert_string_equal(c.ids[0], "tcga_luad");
	assert_string_equal(c.names.v[1].value, "nlst"); /* no name: its id */
	assert_non_null(strstr(c.names.v[0].raw, "\"subjects\":4"));
	idc_collections_clear(&c);
	assert_int_equal(idc_parse_collections("{}", 2, &c), -EBADMSG);
	assert_int_equal(idc_parse_collections("[{\"collection_name\":\"x\"}]", 25, &c), -EBADMSG);
	assert_int_equal(idc_parse_collections("[1]", 3, &c), -EBADMSG);
}

static void test_object_url(void **state)
{
	struct idc_opts o = { .api = "http://127.0.0.1:1/v3/",
			      .files = "http://127.0.0.1:1/{bucket}" };
	struct idc *t;
	char *url;

	(void)state;
	assert_int_equal(idc_new(NULL, &o, &t), 0);
	url = idc_object_url(t, "idc-open-data", "u-1/a b%?.dcm");
	assert_string_equal(url, "http://127.0.0.1:1/idc-open-data/u-1/a%20b%25%3F.dcm");
	free(url);
	idc_free(t);
	o.files = "https://{bucket}.s3.amazonaws.com";
	assert_int_equal(idc_new(NULL, &o, &t), 0);
	url = idc_object_url(t, "idc-open-data-cr", "u/x.dcm");
	assert_string_equal(url, "https://idc-open-data-cr.s3.amazonaws.com/u/x.dcm");
	free(url);
	idc_free(t);
	o.files = "https://example.org/no-bucket";
	assert_int_equal(idc_new(NULL, &o, &t), -EINVAL);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_quote),
		cmocka_unit_test(test_series_sql_shape),
		cmocka_unit_test(test_series_sql_resists_injection),
		cmocka_unit_test(test_answer_rows),
		cmocka_unit_test(test_answer_bad),
		cmocka_unit_test(test_answer_long),
		cmocka_unit_test(test_row_picked),
		cmocka_unit_test(test_listing),
		cmocka_unit_test(test_listing_bad),
		cmocka_unit_test(test_listing_etags),
		cmocka_unit_test(test_collections),
		cmocka_unit_test(test_object_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
