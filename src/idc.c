/* SPDX-License-Identifier: MIT
 * idc.c — NCI's Imaging Data Commons: the SQL tciafs sends to its API v3 (every value a
 * literal made here) and the requests that page through it; idc_answer.c parses the
 * answers row by row as they arrive, idc_bucket.c has the public buckets. The request shapes of
 * idc-api.md live in these two only: the API is a beta, and its next change should be one edit.
 */
#include "idc.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "http.h"
#include "idc_int.h"
#include "jsonobj.h"
#include "jsonpick.h"
#include "log.h"

/* IDC's most rows per /sql answer: pages of a walk ask for this many. */
#define IDC_PAGE_MAX 10000u
/* The most a whole answer may bring (rows and values: idc_int.h). */
#define IDC_ANSWER_MAX ((uint64_t)512 << 20)
/* Series rows of one patient held to derive its studies from: far more than any has. */
#define IDC_PATIENT_MAX 100000u

int idc_new(struct http *http, const struct idc_opts *opts, struct idc **out)
{
	struct idc *t;
	size_t n;

	*out = NULL;
	if (!opts->files || !strstr(opts->files, "{bucket}"))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->http = http;
	t->api = strdup(opts->api ? opts->api : IDC_API_DEFAULT);
	t->files = strdup(opts->files);
	if (!t->api || !t->files ||
	    http_fleet_new(http, opts->streams > 0 ? opts->streams : IDC_STREAMS_DEFAULT,
			   &t->fleet) < 0) {
		idc_free(t);
		return -ENOMEM;
	}
	n = strlen(t->api);
	if (n && t->api[n - 1] == '/')
		t->api[n - 1] = '\0';
	*out = t;
	return 0;
}

void idc_free(struct idc *t)
{
	if (!t)
		return;
	http_fleet_free(t->fleet);
	free(t->api);
	free(t->files);
	free(t);
}

/* ---- SQL ------------------------------------------------------------------------------ */

char *idc_sql_quote(const char *s)
{
	size_t n = 2, i;
	char *out, *o;

	for (i = 0; s[i]; i++)
		n += s[i] == '\'' ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	o = out;
	*o++ = '\'';
	for (i = 0; s[i]; i++) {
		if (s[i] == '\'')
			*o++ = '\'';
		*o++ = s[i];
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

/* The columns of `index` that carry the seed's objects (idc-api.md §1). */
static const char idc_columns[] =
	"collection_id, PatientID, PatientAge, PatientSex, StudyInstanceUID, StudyDescription,"
	" StudyDate, SeriesInstanceUID, Modality, BodyPartExamined, Manufacturer,"
	" ManufacturerModelName, SeriesDescription, SeriesNumber, SeriesDate, instanceCount,"
	" series_size_MB, license_short_name, source_DOI, aws_bucket, crdc_series_uuid";

/* Appends " AND <column> <op> <literal of value>" when value is given. */
static int idc_where(char **sql, const char *column, const char *op, const char *value)
{
	char *lit, *next;
	int n;

	if (!value)
		return 0;
	lit = idc_sql_quote(value);
	if (!lit)
		return -ENOMEM;
	n = asprintf(&next, "%s AND %s %s %s", *sql, column, op, lit);
	free(lit);
	if (n < 0)
		return -ENOMEM;
	free(*sql);
	*sql = next;
	return 0;
}

/* What each kind asks, in the ORDER BY of the columns its pages are keyed by
 * (idc_kind_keys): the patients' order, in which the catalog keeps rows (a bulk load's
 * copy then sorts none). Every column not aggregated is grouped: IDC runs the SQL on
 * DuckDB, which refuses a bare one (SQLite, the fake's engine, would take it). */
static const struct {
	const char *select, *group, *order;
} idc_kinds[] = {
	[RECORD_PATIENTS] = { "PatientID, collection_id, min(PatientAge) AS PatientAge,"
			      " min(PatientSex) AS PatientSex,"
			      " count(DISTINCT StudyInstanceUID) AS studies",
			      " GROUP BY PatientID, collection_id", "PatientID" },
	[RECORD_STUDIES] = { "StudyInstanceUID, PatientID, collection_id, min(StudyDate) AS"
			     " StudyDate, min(StudyDescription) AS StudyDescription, count(*) AS"
			     " series",
			     " GROUP BY StudyInstanceUID, PatientID, collection_id",
			     "PatientID, StudyInstanceUID" },
	[RECORD_SERIES] = { idc_columns, "", "PatientID, StudyInstanceUID, SeriesInstanceUID" },
};

/* Appends " AND " the rows after the key `after` (n columns): IDC's SQL compares no row
 * values, so (a, b) > (x, y) is written (a > x OR (a = x AND b > y)). */
static int idc_where_after(char **sql, const char *const *key, const char *const *after, unsigned n)
{
	char *cond = NULL, *lit, *next;
	unsigned i = n;
	int len;

	while (i-- > 0) {
		lit = idc_sql_quote(after[i]);
		len = -1;
		if (lit && !cond)
			len = asprintf(&next, "%s > %s", key[i], lit);
		else if (lit)
			len = asprintf(&next, "(%s > %s OR (%s = %s AND %s))", key[i], lit, key[i],
				       lit, cond);
		free(lit);
		free(cond);
		if (len < 0)
			return -ENOMEM;
		cond = next;
	}
	len = asprintf(&next, "%s AND %s", *sql, cond);
	free(cond);
	if (len < 0)
		return -ENOMEM;
	free(*sql);
	*sql = next;
	return 0;
}

int idc_each_sql(enum record_kind kind, const struct idc_query *q, char **sql)
{
	unsigned limit = q->limit && q->limit < IDC_PAGE_MAX ? q->limit : IDC_PAGE_MAX, i, keys;
	const char *const *key;
	char *next;
	int rc;

	*sql = NULL;
	if ((unsigned)kind > RECORD_SERIES || (!q->collection_id && !q->series_uid))
		return -EINVAL;
	keys = idc_kind_keys(kind, &key);
	for (i = 0; q->after[0] && i < keys; i++)
		if (!q->after[i])
			return -EINVAL;
	if (asprintf(sql, "SELECT %s FROM \"index\" WHERE true", idc_kinds[kind].select) < 0) {
		*sql = NULL;
		return -ENOMEM;
	}
	rc = idc_where(sql, "collection_id", "=", q->collection_id);
	if (rc == 0)
		rc = idc_where(sql, "PatientID", "=", q->patient_id);
	if (rc == 0)
		rc = idc_where(sql, "SeriesInstanceUID", "=", q->series_uid);
	if (rc == 0 && q->after[0])
		rc = idc_where_after(sql, key, q->after, keys);
	if (rc == 0 && asprintf(&next, "%s%s ORDER BY %s LIMIT %u", *sql, idc_kinds[kind].group,
				idc_kinds[kind].order, limit) < 0)
		rc = -ENOMEM;
	if (rc < 0) {
		free(*sql);
		*sql = NULL;
		return rc;
	}
	free(*sql);
	*sql = next;
	return 0;
}

int idc_series_sql(const struct idc_query *q, char **sql)
{
	return idc_each_sql(RECORD_SERIES, q, sql);
}

/* ---- the service ------------------------------------------------------------------------ */

static int idc_chunk(void *arg, const char *data, size_t len)
{
	return idc_answer_feed(arg, data, len);
}

/* A retry starts the page over: its rows are handed on again (loads replace by key). */
static int idc_restart(void *arg)
{
	idc_answer_reset(arg);
	return 0;
}

/* POST /sql: the one place that knows the request's shape ({"sql", "max_rows"}); the
 * answer goes to chunk as it arrives (at most max_bytes). */
static int idc_post_sql(struct idc *t, const char *sql, unsigned max_rows, uint64_t max_bytes,
			http_chunk_fn chunk, http_restart_fn restart, void *arg)
{
	json_t *req = json_pack("{s:s,s:i}", "sql", sql, "max_rows", (int)max_rows);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL, *url = NULL;
	int rc = -ENOMEM;

	json_decref(req);
	if (body && asprintf(&url, "%s/sql", t->api) >= 0) {
		rc = http_stream_post_json(t->http, url, body, max_bytes, chunk, restart, arg,
					   NULL);
		free(url);
	}
	free(body);
	return rc;
}

/* Asks for the rows of a's kind, page by page, handing each to a. */
static int idc_pages(struct idc *t, const struct idc_query *q, struct idc_answer *a)
{
	unsigned limit = q->limit && q->limit < IDC_PAGE_MAX ? q->limit : IDC_PAGE_MAX, i;
	struct idc_query page = *q;
	char *after[IDC_KEYS_MAX] = { NULL };
	int rc = 0;

	page.limit = limit;
	while (rc == 0) {
		char *sql = NULL;
		size_t rows = 0;
		bool truncated = false;

		for (i = 0; i < IDC_KEYS_MAX; i++)
			page.after[i] = after[i];
		rc = idc_each_sql(a->kind, &page, &sql);
		if (rc < 0)
			break;
		idc_answer_reset(a);
		rc = idc_post_sql(t, sql, limit, IDC_ANSWER_MAX, idc_chunk, idc_restart, a);
		free(sql);
		if (rc == 0)
			rc = idc_answer_end(a, &rows, &truncated);
		if (rc == -EBADMSG)
			log_err("bad answer from IDC: %s/sql sent what is not an SQL answer",
				t->api);
		/* A full page (or one IDC cut short) may have more after it. */
		if (rc < 0 || (rows < limit && !truncated) || !a->last[0])
			break;
		/* A page must move on: one that ends where the last did would be asked again,
		 * and again. */
		if (after[0] && idc_key_cmp(a->last, after, idc_kind_keys(a->kind, NULL)) <= 0) {
			log_err("bad answer from IDC: %s/sql sent a page that ends where the one "
				"before it did",
				t->api);
			rc = -EBADMSG;
			break;
		}
		for (i = 0; i < IDC_KEYS_MAX; i++) {
			free(after[i]);
			after[i] = a->last[i]; /* taken: the next reset would free it */
			a->last[i] = NULL;
		}
	}
	for (i = 0; i < IDC_KEYS_MAX; i++)
		free(after[i]);
	return rc;
}

int idc_series(struct idc *t, const struct idc_query *q, idc_series_fn each, void *arg)
{
	struct idc_answer *a;
	int rc = idc_answer_new(each, arg, &a);

	if (rc == 0)
		rc = idc_pages(t, q, a);
	idc_answer_free(a);
	return rc;
}

int idc_each(struct idc *t, enum record_kind kind, const struct idc_query *q, record_each_fn each,
	     void *arg)
{
	static const idc_row_fn rows[] = {
		[RECORD_PATIENTS] = idc_row_patient,
		[RECORD_STUDIES] = idc_row_study,
		[RECORD_SERIES] = NULL, /* built as they are parsed */
	};
	struct idc_answer *a;
	int rc;

	if ((unsigned)kind > RECORD_SERIES)
		return -EINVAL;
	rc = idc_answer_new(NULL, arg, &a);
	if (rc < 0)
		return rc;
	a->kind = kind;
	a->row = rows[kind];
	a->each_record = each;
	rc = idc_pages(t, q, a);
	idc_answer_free(a);
	return rc;
}

/* A small answer gathered whole (a facet's values): bounded like a value. */
struct idc_body {
	char *buf;
	size_t len;
};

static int idc_body_chunk(void *arg, const char *data, size_t len)
{
	struct idc_body *b = arg;
	char *grown;

	if (b->len + len > IDC_ROW_MAX)
		return -EFBIG;
	grown = realloc(b->buf, b->len + len + 1);
	if (!grown)
		return -ENOMEM;
	memcpy(grown + b->len, data, len);
	b->buf = grown;
	b->len += len;
	return 0;
}

static int idc_body_restart(void *arg)
{
	((struct idc_body *)arg)->len = 0;
	return 0;
}

int idc_values_sql(const char *collection_id, unsigned facet, char **sql)
{
	static const char *const columns[] = { "Modality", "BodyPartExamined", "Manufacturer" };
	char *lit;
	int n;

	if (facet > 2 || !collection_id)
		return -EINVAL;
	lit = idc_sql_quote(collection_id);
	if (!lit)
		return -ENOMEM;
	n = asprintf(sql,
		     "SELECT DISTINCT %s AS value FROM \"index\" WHERE collection_id = %s AND"
		     " %s IS NOT NULL AND %s <> '' ORDER BY 1",
		     columns[facet], lit, columns[facet], columns[facet]);
	free(lit);
	return n < 0 ? -ENOMEM : 0;
}

int idc_values(struct idc *t, const char *collection_id, unsigned facet, struct record_values *out)
{
	static const char *const names[] = { "Modality", "BodyPartExamined", "Manufacturer" };
	struct idc_body b = { NULL, 0 };
	char *sql = NULL;
	json_t *ans = NULL, *rows, *row;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = idc_values_sql(collection_id, facet, &sql);
	if (rc < 0)
		return rc;
	rc = idc_post_sql(t, sql, IDC_PAGE_MAX, IDC_ROW_MAX, idc_body_chunk, idc_body_restart, &b);
	free(sql);
	if (rc == 0) {
		ans = json_loadb(b.buf ? b.buf : "", b.len, 0, NULL);
		rows = json_object_get(ans, "rows");
		rc = json_is_array(rows) ? 0 : -EBADMSG;
		out->v = rc == 0 ? calloc(json_array_size(rows) + 1, sizeof(*out->v)) : NULL;
		if (rc == 0 && !out->v)
			rc = -ENOMEM;
		json_array_foreach(rows, i, row)
		{
			const char *v = json_string_value(json_object_get(row, "value"));
			struct record_value *o = &out->v[out->count];
			json_t *one;

			if (rc < 0)
				break;
			if (!v)
				continue; /* NULL is "unknown": not a value */
			one = json_pack("{s:s}", names[facet], v);

			o->value = strdup(v);
			o->raw = one ? json_dumps(one, JSON_COMPACT) : NULL;
			json_decref(one);
			out->count++;
			if (!o->value || !o->raw)
				rc = -ENOMEM;
		}
	}
	if (rc == -EBADMSG)
		log_err("bad answer from IDC: %s/sql sent what is not an SQL answer", t->api);
	json_decref(ans);
	free(b.buf);
	if (rc < 0)
		record_values_clear(out);
	return rc;
}

const char *idc_api_url(const struct idc *t)
{
	return t->api;
}

/* A patient's series rows, kept by UID (a retried page gives its rows again). */
static int idc_row_keep(struct idc_answer *a, const struct idc_row *row)
{
	json_t *kept = a->arg;
	const char *uid = json_string_value(json_object_get(row->obj, "SeriesInstanceUID"));

	if (json_object_size(kept) >= IDC_PATIENT_MAX)
		return -EFBIG;
	return json_object_set(kept, uid, row->obj) ? -ENOMEM : 0;
}

/* A series row of jansson's: built and handed on. */
static int idc_row_series_each(struct idc_answer *a, const struct idc_row *row)
{
	struct record_series s;
	char *bucket = NULL, *uuid = NULL;
	int rc = idc_row_series(row, NULL, 0, &s, &bucket, &uuid);

	if (rc == 0)
		rc = idc_series_hand(a, &s, bucket, uuid);
	record_series_clear(&s);
	free(bucket);
	free(uuid);
	return rc;
}

/* What min() of SQL keeps of two values of a column: the smaller string, NULL ignored. */
static void idc_min(json_t *group, const char *key, json_t *row)
{
	const char *have = json_string_value(json_object_get(group, key));
	const char *v = json_string_value(json_object_get(row, key));

	if (v && (!have || strcmp(v, have) < 0))
		json_object_set_new(group, key, json_string(v));
}

/* The studies of a patient's series rows, as the grouped query of idc_each would send
 * them (same columns, same order), in the order of their first series. */
static json_t *idc_group_studies(json_t *rows)
{
	json_t *studies = json_object(), *row;
	const char *uid;

	json_object_foreach(rows, uid, row)
	{
		const char *st = json_string_value(json_object_get(row, "StudyInstanceUID"));
		json_t *g;

		if (!st || !studies)
			continue; /* idc_row_series refuses it below */
		g = json_object_get(studies, st);
		if (!g) {
			g = json_pack("{s:s,s:O?,s:O?,s:n,s:n,s:I}", "StudyInstanceUID", st,
				      "PatientID", json_object_get(row, "PatientID"),
				      "collection_id", json_object_get(row, "collection_id"),
				      "StudyDate", "StudyDescription", "series", (json_int_t)0);
			if (!g || json_object_set_new(studies, st, g)) {
				json_decref(studies);
				return NULL;
			}
		}
		idc_min(g, "StudyDate", row);
		idc_min(g, "StudyDescription", row);
		json_object_set_new(
			g, "series",
			json_integer(json_integer_value(json_object_get(g, "series")) + 1));
	}
	return studies;
}

int idc_each_patient(struct idc *t, const struct idc_query *q, record_each_fn study,
		     record_each_fn series, void *arg)
{
	json_t *rows = json_object(), *studies = NULL, *row;
	struct idc_answer *a = NULL;
	const char *key;
	int rc;

	if (!q->collection_id || !q->patient_id)
		return -EINVAL;
	rc = rows ? idc_answer_new(NULL, rows, &a) : -ENOMEM;
	if (rc == 0) {
		a->kind = RECORD_SERIES;
		a->row = idc_row_keep;
		rc = idc_pages(t, q, a);
	}
	if (rc == 0 && !(studies = idc_group_studies(rows)))
		rc = -ENOMEM;
	if (rc == 0) {
		a->arg = arg;
		a->each_record = study;
		json_object_foreach(studies, key, row) if (rc == 0) rc =
			idc_row_study(a, &(struct idc_row){ .obj = row });
		a->each_record = series;
		json_object_foreach(rows, key, row) if (rc == 0) rc =
			idc_row_series_each(a, &(struct idc_row){ .obj = row });
	}
	json_decref(studies);
	json_decref(rows);
	idc_answer_free(a);
	return rc;
}

int idc_version(struct idc *t, char **version)
{
	char *url = NULL, *body = NULL;
	json_t *v;
	size_t len;
	int rc;

	*version = NULL;
	if (asprintf(&url, "%s/version", t->api) < 0)
		return -ENOMEM;
	rc = http_get(t->http, url, &body, &len);
	free(url);
	if (rc < 0)
		return rc;
	v = json_loadb(body, len, 0, NULL);
	free(body);
	rc = idc_get_str(&(struct idc_row){ .obj = v }, "idc_version", version);
	if (rc == 0 && !*version)
		rc = -EBADMSG;
	json_decref(v);
	if (rc == -EBADMSG)
		log_err("bad answer from IDC: %s/version has no idc_version", t->api);
	return rc;
}

void idc_collections_clear(struct idc_collections *c)
{
	size_t i;

	for (i = 0; c->ids && i < c->names.count; i++)
		free(c->ids[i]);
	free(c->ids);
	c->ids = NULL;
	record_values_clear(&c->names);
}

int idc_parse_collections(const char *body, size_t len, struct idc_collections *out)
{
	json_t *arr = json_loadb(body, len, 0, NULL), *o;
	size_t i, n;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_array(arr)) {
		json_decref(arr);
		return -EBADMSG;
	}
	n = json_array_size(arr);
	out->names.v = calloc(n ? n : 1, sizeof(*out->names.v));
	out->ids = calloc(n ? n : 1, sizeof(*out->ids));
	if (!out->names.v || !out->ids)
		rc = -ENOMEM;
	json_array_foreach(arr, i, o)
	{
		struct record_value *v = &out->names.v[out->names.count];
		const char *id = json_string_value(json_object_get(o, "collection_id"));
		const char *name = json_string_value(json_object_get(o, "collection_name"));

		if (rc < 0)
			break;
		if (!id || !*id) {
			rc = -EBADMSG;
			break;
		}
		v->value = strdup(name && *name ? name : id);
		v->raw = json_dumps(o, JSON_COMPACT);
		out->ids[out->names.count] = strdup(id);
		out->names.count++;
		if (!v->value || !v->raw || !out->ids[out->names.count - 1])
			rc = -ENOMEM;
	}
	json_decref(arr);
	if (rc < 0)
		idc_collections_clear(out);
	return rc;
}

int idc_collections(struct idc *t, struct idc_collections *out)
{
	char *url = NULL, *body = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (asprintf(&url, "%s/collections", t->api) < 0)
		return -ENOMEM;
	rc = http_get(t->http, url, &body, &len);
	free(url);
	if (rc < 0)
		return rc;
	rc = idc_parse_collections(body, len, out);
	free(body);
	if (rc == -EBADMSG)
		log_err("bad answer from IDC: %s/collections is not a list of collections", t->api);
	return rc;
}
