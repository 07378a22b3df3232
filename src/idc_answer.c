/* SPDX-License-Identifier: MIT
 * idc_answer.c — IDC's /sql answers parsed row by row as they arrive: the answer's
 * members delimited by a small state machine (only string state is tracked), each row
 * picked in place or handed to jansson, built into a record (idc_row.c) and handed on
 * in order, a long page's rows parsed on a helper thread (ahead.c).
 */
#include "idc.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "idc_int.h"
#include "jsonobj.h"
#include "jsonpick.h"
#include "log.h"

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

int idc_series_hand(struct idc_answer *a, struct record_series *s, const char *bucket,
		    const char *uuid)
{
	return a->each ? a->each(a->arg, s, bucket, uuid) : a->each_record(a->arg, s);
}

int idc_row_patient(struct idc_answer *a, const struct idc_row *row)
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

int idc_row_study(struct idc_answer *a, const struct idc_row *row)
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

/* The columns each kind's pages are keyed by, in their ORDER BY (idc.c's SQL). */
static const struct {
	unsigned keys;
	const char *key[IDC_KEYS_MAX];
} idc_keys[] = {
	[RECORD_PATIENTS] = { 1, { "PatientID" } },
	[RECORD_STUDIES] = { 2, { "PatientID", "StudyInstanceUID" } },
	[RECORD_SERIES] = { 3, { "PatientID", "StudyInstanceUID", "SeriesInstanceUID" } },
};

unsigned idc_kind_keys(enum record_kind kind, const char *const **cols)
{
	if (cols)
		*cols = idc_keys[kind].key;
	return idc_keys[kind].keys;
}

/* Compares two keys of n parts. */
int idc_key_cmp(char *const *a, char *const *b, unsigned n)
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
	unsigned i, n = idc_kind_keys(a->kind, NULL);
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
		/* A series' key, in idc_kind_keys(RECORD_SERIES)'s order. */
		key[0] = p->s.patient_id;
		key[1] = p->s.study_uid;
		key[2] = p->s.series_uid;
	} else {
		const char *const *cols;
		unsigned n = idc_kind_keys(a->kind, &cols);

		for (i = 0; i < n; i++)
			key[i] = json_string_value(json_object_get(p->row, cols[i]));
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
