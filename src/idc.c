/* SPDX-License-Identifier: MIT
 * idc.c — NCI's Imaging Data Commons: the SQL tciafs sends to its API v3 (every value a
 * literal made here) and its answers parsed row by row as they arrive; idc_bucket.c has
 * the public buckets. The request shapes of idc-api.md live in these two only: the API
 * is a beta, and its next change should be one edit.
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
/* Bounds on what IDC sends: one row, a value other than the rows, a whole answer. Past
 * them an answer is refused, never held. */
#define IDC_ROW_MAX ((size_t)1 << 20)
#define IDC_VALUE_MAX ((size_t)64 << 10)
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

/* What each kind asks, and the columns its pages are keyed by, in their ORDER BY: the
 * patients' order, in which the catalog keeps rows (a bulk load's copy then sorts none).
 * Every column not aggregated is grouped: IDC runs the SQL on DuckDB, which refuses a
 * bare one (SQLite, the fake's engine, would take it). */
static const struct {
	const char *select, *group, *order;
	unsigned keys;
	const char *key[IDC_KEYS_MAX];
} idc_kinds[] = {
	[RECORD_PATIENTS] = { "PatientID, collection_id, min(PatientAge) AS PatientAge,"
			      " min(PatientSex) AS PatientSex,"
			      " count(DISTINCT StudyInstanceUID) AS studies",
			      " GROUP BY PatientID, collection_id",
			      "PatientID",
			      1,
			      { "PatientID" } },
	[RECORD_STUDIES] = { "StudyInstanceUID, PatientID, collection_id, min(StudyDate) AS"
			     " StudyDate, min(StudyDescription) AS StudyDescription, count(*) AS"
			     " series",
			     " GROUP BY StudyInstanceUID, PatientID, collection_id",
			     "PatientID, StudyInstanceUID",
			     2,
			     { "PatientID", "StudyInstanceUID" } },
	[RECORD_SERIES] = { idc_columns,
			    "",
			    "PatientID, StudyInstanceUID, SeriesInstanceUID",
			    3,
			    { "PatientID", "StudyInstanceUID", "SeriesInstanceUID" } },
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
	unsigned limit = q->limit && q->limit < IDC_PAGE_MAX ? q->limit : IDC_PAGE_MAX, i;
	char *next;
	int rc;

	*sql = NULL;
	if ((unsigned)kind > RECORD_SERIES || (!q->collection_id && !q->series_uid))
		return -EINVAL;
	for (i = 0; q->after[0] && i < idc_kinds[kind].keys; i++)
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
		rc = idc_where_after(sql, idc_kinds[kind].key, q->after, idc_kinds[kind].keys);
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

/* ---- the /sql answer, row by row --------------------------------------------------------
 *
 * {"columns":[…],"rows":[{…},…],"row_count":n,"truncated":b,"max_rows":m}: the rows are
 * gathered one at a time and handed on; the other members (small) are gathered whole and
 * read at their end. Only string state is tracked, so any valid JSON is delimited right;
 * jansson judges each piece. */
enum idc_answer_state {
	IA_TOP,      /* before the '{' */
	IA_KEY_WAIT, /* after the '{': a key or the '}' */
	IA_KEY_NEXT, /* after a ',': a key */
	IA_KEY,      /* in a key's string */
	IA_COLON,
	IA_VALUE_START,
	IA_VALUE, /* a member other than rows */
	IA_AFTER_VALUE,
	IA_ROWS, /* in the rows array, between rows */
	IA_ROW,  /* in a row */
	IA_END,
};

struct idc_answer;
/* Builds a record from a row (patients' and studies' pages) and hands it on. */
typedef int (*idc_row_fn)(struct idc_answer *a, const struct idc_row *row);

struct idc_answer {
	enum idc_answer_state state;
	enum record_kind kind;
	idc_row_fn row;             /* NULL: series rows, built as they are parsed */
	idc_series_fn each;         /* RECORD_SERIES through idc_answer_new */
	record_each_fn each_record; /* any kind, through idc_each */
	void *arg;
	char key[32];
	size_t keylen;
	char *buf;
	size_t len, cap;
	size_t depth;
	bool in_string, escape;
	size_t rows;
	bool truncated, saw_rows;
	char *last[IDC_KEYS_MAX]; /* the page's greatest row key: where the next starts */
	int rc;
	/* Rows are parsed on a helper thread once a page is long (ahead.c), and built and
	 * handed on here, in order; each thread picks series rows with a picker of its own. */
	struct ahead *ahead;
	struct jsonpick *pick_ahead, *pick_here;
};

/* A row parsed, as jansson's object, or a series row built. */
struct idc_parsed {
	json_t *row;
	bool built;
	struct record_series s;
	char *bucket, *uuid;
};

static void idc_row_unparse(void *item)
{
	struct idc_parsed *p = item;

	json_decref(p->row);
	if (p->built) {
		record_series_clear(&p->s);
		free(p->bucket);
		free(p->uuid);
	}
	memset(p, 0, sizeof(*p));
}

/* Parses a row's text into p: a series row is built into its record, from the columns
 * picked in place, or from jansson's object when the picker leaves the row to jansson. */
static int idc_row_make(struct idc_answer *a, struct jsonpick *pick, const char *text, size_t len,
			struct idc_parsed *p)
{
	struct idc_row row = { .pick = pick };
	int rc = !a->row ? jsonpick_read(pick, text, len) : -EAGAIN;

	if (rc == -EAGAIN) {
		p->row = json_loadb(text, len, 0, NULL);
		if (!p->row)
			return -EBADMSG;
		if (a->row)
			return 0;
		row = (struct idc_row){ .obj = p->row };
		rc = json_is_object(p->row) ? 0 : -EBADMSG;
	}
	if (rc == 0) {
		p->built = true;
		rc = idc_row_series(&row, text, len, &p->s, &p->bucket, &p->uuid);
	}
	if (rc < 0)
		idc_row_unparse(p);
	return rc;
}

/* On the helper. */
static int idc_row_parse(void *ctx, const char *text, size_t len, void *item)
{
	struct idc_answer *a = ctx;

	return idc_row_make(a, a->pick_ahead, text, len, item);
}

static int idc_row_done(void *ctx, const char *text, size_t len, void *item, bool made);

int idc_answer_new(idc_series_fn each, void *arg, struct idc_answer **out)
{
	struct idc_answer *a = calloc(1, sizeof(*a));

	*out = a;
	if (!a)
		return -ENOMEM;
	a->kind = RECORD_SERIES;
	a->each = each;
	a->arg = arg;
	if (jsonpick_new(idc_series_cols, 0, &a->pick_ahead) < 0 ||
	    jsonpick_new(idc_series_cols, 0, &a->pick_here) < 0 ||
	    ahead_new(sizeof(struct idc_parsed), idc_row_parse, idc_row_done, idc_row_unparse, a,
		      &a->ahead) < 0) {
		idc_answer_free(a);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void idc_last_clear(struct idc_answer *a)
{
	unsigned i;

	for (i = 0; i < IDC_KEYS_MAX; i++) {
		free(a->last[i]);
		a->last[i] = NULL;
	}
}

void idc_answer_reset(struct idc_answer *a)
{
	ahead_reset(a->ahead);
	free(a->buf);
	idc_last_clear(a);
	a->state = IA_TOP;
	a->keylen = 0;
	a->buf = NULL;
	a->len = a->cap = a->depth = a->rows = 0;
	a->in_string = a->escape = a->truncated = a->saw_rows = false;
	a->rc = 0;
}

void idc_answer_free(struct idc_answer *a)
{
	if (!a)
		return;
	ahead_free(a->ahead);
	jsonpick_free(a->pick_ahead);
	jsonpick_free(a->pick_here);
	free(a->buf);
	idc_last_clear(a);
	free(a);
}

static int idc_keep(struct idc_answer *a, char c, size_t max)
{
	if (a->len + 1 >= max)
		return -EBADMSG;
	if (a->len + 1 >= a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		char *p = realloc(a->buf, cap);

		if (!p)
			return -ENOMEM;
		a->buf = p;
		a->cap = cap;
	}
	a->buf[a->len++] = c;
	return 0;
}

static int idc_series_hand(struct idc_answer *a, struct record_series *s, const char *bucket,
			   const char *uuid)
{
	return a->each ? a->each(a->arg, s, bucket, uuid) : a->each_record(a->arg, s);
}

static int idc_row_patient(struct idc_answer *a, const struct idc_row *row)
{
	static const char *const names[] = { "PatientId",     "PatientID",  "Collection",
					     "collection_id", "PatientSex", "PatientSex",
					     "PatientAge",    "PatientAge", NULL };
	struct record_patient p = { 0 };
	int rc = idc_get_str(row, "PatientID", &p.patient_id);

	rc = rc ? rc : idc_get_str(row, "collection_id", &p.collection);
	if (rc == 0 && (!p.patient_id || !p.collection))
		rc = -EBADMSG;
	if (rc == 0 && !(p.raw = idc_raw(row, names, -1, NULL, 0)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = a->each_record(a->arg, &p);
	record_patient_clear(&p);
	return rc;
}

static int idc_row_study(struct idc_answer *a, const struct idc_row *row)
{
	static const char *const names[] = { "StudyInstanceUID",
					     "StudyInstanceUID",
					     "PatientID",
					     "PatientID",
					     "Collection",
					     "collection_id",
					     "StudyDate",
					     "StudyDate",
					     "StudyDescription",
					     "StudyDescription",
					     "SeriesCount",
					     "series",
					     NULL };
	struct record_study st = { .series_count = -1 };
	int rc = idc_get_str(row, "StudyInstanceUID", &st.study_uid);

	rc = rc ? rc : idc_get_str(row, "PatientID", &st.patient_id);
	rc = rc ? rc : idc_get_str(row, "collection_id", &st.collection);
	rc = rc ? rc : idc_get_str(row, "StudyDate", &st.date);
	rc = rc ? rc : idc_get_str(row, "StudyDescription", &st.description);
	if (rc == 0 && (!st.study_uid || !st.patient_id || !st.collection))
		rc = -EBADMSG;
	st.series_count = idc_get_int(row, "series");
	if (rc == 0 && !(st.raw = idc_raw(row, names, -1, NULL, 0)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = a->each_record(a->arg, &st);
	record_study_clear(&st);
	return rc;
}

/* A whole row, on its way: parsed (on the helper, or in idc_row_done). */
static int idc_answer_row(struct idc_answer *a)
{
	int rc = ahead_put(a->ahead, a->buf, a->len);

	a->len = 0;
	return rc;
}

/* Compares two keys of n parts. */
static int idc_key_cmp(char *const *a, char *const *b, unsigned n)
{
	unsigned i;
	int cmp = 0;

	for (i = 0; i < n && cmp == 0; i++)
		cmp = strcmp(a[i], b[i]);
	return cmp;
}

/* Keeps a row's key (v, its columns' values: NULL for one not a string) when it is past
 * the greatest so far. Rows come in key order; should IDC's wrapping of the query (a
 * subquery, for its row cap) lose it, the greatest still says where the next page
 * starts. -EBADMSG for a row with a key column not a string. */
static int idc_note_key(struct idc_answer *a, const char *const *v)
{
	unsigned i, n = idc_kinds[a->kind].keys;
	int cmp = a->last[0] ? 0 : 1;

	for (i = 0; i < n; i++)
		if (!v[i])
			return -EBADMSG;
	if (cmp == 0)
		cmp = idc_key_cmp((char *const *)v, a->last, n);
	for (i = 0; i < n && cmp > 0; i++) {
		char *d = strdup(v[i]);

		if (!d)
			return -ENOMEM;
		free(a->last[i]);
		a->last[i] = d;
	}
	return 0;
}

/* A row's turn: its key kept for the next page, built, handed on. */
static int idc_row_done(void *ctx, const char *text, size_t len, void *item, bool made)
{
	struct idc_answer *a = ctx;
	struct idc_parsed *p = item;
	const char *key[IDC_KEYS_MAX];
	unsigned i;
	int rc = made ? 0 : idc_row_make(a, a->pick_here, text, len, p);

	if (rc < 0)
		return rc;
	if (p->built) {
		/* A series' key, in idc_kinds[RECORD_SERIES].key's order. */
		key[0] = p->s.patient_id;
		key[1] = p->s.study_uid;
		key[2] = p->s.series_uid;
	} else {
		for (i = 0; i < idc_kinds[a->kind].keys; i++)
			key[i] = json_string_value(
				json_object_get(p->row, idc_kinds[a->kind].key[i]));
	}
	rc = json_is_object(p->row) || p->built ? idc_note_key(a, key) : -EBADMSG;
	if (rc == 0) {
		a->rows++;
		rc = p->built ? idc_series_hand(a, &p->s, p->bucket, p->uuid)
			      : a->row(a, &(struct idc_row){ .obj = p->row });
	}
	idc_row_unparse(p); /* the row with it */
	return rc;
}

/* A member other than rows, whole: truncated is the one read. */
static int idc_answer_value(struct idc_answer *a)
{
	json_t *v = json_loadb(a->buf, a->len, JSON_DECODE_ANY, NULL);

	a->len = 0;
	if (!v)
		return -EBADMSG;
	if (strcmp(a->key, "truncated") == 0) {
		if (!json_is_boolean(v)) {
			json_decref(v);
			return -EBADMSG;
		}
		a->truncated = json_is_true(v);
	}
	json_decref(v);
	return 0;
}

/* Tracks strings in a, for the delimiting of values and rows. Returns true while c is
 * inside a string (its quotes included). */
static bool idc_in_string(struct idc_answer *a, char c)
{
	if (a->in_string) {
		if (a->escape)
			a->escape = false;
		else if (c == '\\')
			a->escape = true;
		else if (c == '"')
			a->in_string = false;
		return true;
	}
	if (c == '"') {
		a->in_string = true;
		return true;
	}
	return false;
}

static bool idc_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int idc_answer_char(struct idc_answer *a, char c)
{
	switch (a->state) {
	case IA_TOP:
	case IA_END:
		if (idc_space(c))
			return 0;
		if (a->state == IA_END || c != '{')
			return -EBADMSG;
		a->state = IA_KEY_WAIT;
		return 0;
	case IA_KEY_WAIT:
	case IA_KEY_NEXT:
		if (idc_space(c))
			return 0;
		if (c == '}' && a->state == IA_KEY_WAIT) {
			a->state = IA_END;
			return 0;
		}
		if (c != '"')
			return -EBADMSG;
		a->keylen = 0;
		a->escape = false;
		a->state = IA_KEY;
		return 0;
	case IA_KEY:
		if (a->escape || c == '\\') {
			a->escape = !a->escape; /* keys of IDC's are plain words */
		} else if (c == '"') {
			a->key[a->keylen] = '\0';
			a->state = IA_COLON;
			return 0;
		}
		if (a->keylen + 1 < sizeof(a->key))
			a->key[a->keylen++] = c;
		return 0;
	case IA_COLON:
		if (idc_space(c))
			return 0;
		if (c != ':')
			return -EBADMSG;
		a->state = IA_VALUE_START;
		return 0;
	case IA_VALUE_START:
		if (idc_space(c))
			return 0;
		if (strcmp(a->key, "rows") == 0) {
			if (c != '[' || a->saw_rows)
				return -EBADMSG;
			a->saw_rows = true;
			a->state = IA_ROWS;
			return 0;
		}
		a->state = IA_VALUE;
		a->depth = 0;
		a->len = 0;
		__attribute__((fallthrough)); /* c is the value's first character */
	case IA_VALUE:
		if (!idc_in_string(a, c)) {
			if ((c == ',' || c == '}') && a->depth == 0) {
				int rc = idc_answer_value(a);

				a->state = c == '}' ? IA_END : IA_KEY_NEXT;
				return rc;
			}
			if (c == '{' || c == '[')
				a->depth++;
			else if ((c == '}' || c == ']') && a->depth-- == 0)
				return -EBADMSG;
		}
		return idc_keep(a, c, IDC_VALUE_MAX);
	case IA_AFTER_VALUE:
		if (idc_space(c))
			return 0;
		if (c == ',') {
			a->state = IA_KEY_NEXT;
			return 0;
		}
		if (c == '}') {
			a->state = IA_END;
			return 0;
		}
		return -EBADMSG;
	case IA_ROWS:
		if (idc_space(c) || c == ',')
			return 0;
		if (c == ']') {
			a->state = IA_AFTER_VALUE;
			return 0;
		}
		if (c != '{')
			return -EBADMSG;
		a->state = IA_ROW;
		a->depth = 1;
		a->len = 0;
		return idc_keep(a, c, IDC_ROW_MAX);
	case IA_ROW: {
		int rc;

		if (!idc_in_string(a, c)) {
			if (c == '{' || c == '[')
				a->depth++;
			else if (c == '}' || c == ']')
				a->depth--;
		}
		rc = idc_keep(a, c, IDC_ROW_MAX);
		if (rc == 0 && a->depth == 0) {
			a->state = IA_ROWS;
			rc = idc_answer_row(a);
		}
		return rc;
	}
	}
	return -EBADMSG;
}

/* Inside a string of a row, everything up to the next quote or backslash is kept as one
 * run rather than stepped through character by character (most of a page's bytes). */
static size_t idc_answer_run(struct idc_answer *a, const char *data, size_t len)
{
	size_t n = (size_t)(jsonobj_plain(data, data + len) - data);

	if (n == 0 || a->len + n + 1 >= IDC_ROW_MAX)
		return 0; /* let the step say it is too long */
	if (!idc_cat(&a->buf, &a->len, &a->cap, data, n)) {
		a->rc = -ENOMEM;
		return 0;
	}
	return n;
}

int idc_answer_feed(struct idc_answer *a, const char *data, size_t len)
{
	size_t i = 0, n;

	while (i < len && a->rc == 0) {
		if (a->state == IA_ROW && a->in_string && !a->escape) {
			n = idc_answer_run(a, data + i, len - i);
			i += n;
			if (n || i == len || a->rc)
				continue;
		}
		a->rc = idc_answer_char(a, data[i++]);
	}
	return a->rc;
}

int idc_answer_end(struct idc_answer *a, size_t *rows, bool *truncated)
{
	if (a->rc == 0)
		a->rc = ahead_end(a->ahead); /* the rows still on their way */
	/* An error object, or anything else without rows, is not an answer. */
	if (a->rc == 0 && (a->state != IA_END || !a->saw_rows))
		a->rc = -EBADMSG;
	*rows = a->rows;
	*truncated = a->truncated;
	return a->rc;
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
		if (after[0] && idc_key_cmp(a->last, after, idc_kinds[a->kind].keys) <= 0) {
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
