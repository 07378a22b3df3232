/* SPDX-License-Identifier: MIT
 * idc_int.h — what idc.c (the SQL API), idc_answer.c (its answers, row by row),
 * idc_row.c (a row made a record) and idc_bucket.c (the public buckets) share: the
 * handle, an answer's state, a row's columns; and for the tests, one row's record. Not
 * for other modules.
 */
#ifndef TCIAFS_IDC_INT_H
#define TCIAFS_IDC_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idc.h"
#include "record.h"

struct http;
struct jsonpick;
struct record_series;

/* A row: jansson's object, or the members picked from its text in place (jsonpick; a
 * series page's rows, where a jansson tree of every column was most of a load's time). */
struct idc_row {
	json_t *obj;
	const struct jsonpick *pick;
};

/* Every column a series row's record reads, NULL-ended: what its picker picks. */
extern const char *const idc_series_cols[];

/* A string column, or NULL when missing or null; -EBADMSG when it is another type. */
int idc_get_str(const struct idc_row *row, const char *key, char **out);
/* An integer column's value, or -1 when it is not an integer. */
int64_t idc_get_int(const struct idc_row *row, const char *key);
/* Appends n bytes of s to the string being made (*out, *len of *cap); false when out of
 * memory. */
bool idc_cat(char **out, size_t *len, size_t *cap, const char *s, size_t n);
/* A record as sent: the seed's attribute names where IDC has them (names: pairs of seed
 * name and IDC column, NULL-ended), FileSize when known (bytes >= 0), then the row under
 * "idc", as IDC sent it (text, len) or printed again when that is not at hand (text
 * NULL). Made as text, not as an object printed whole: that was a fifth of a page's
 * time. A new string, or NULL. */
char *idc_raw(const struct idc_row *row, const char *const *names, int64_t bytes, const char *text,
	      size_t len);
/* Builds s from a series row (text, len: the row as sent, or NULL). 0, -EBADMSG (a
 * required column missing or of the wrong type) or -ENOMEM; s is then cleared by the
 * caller. */
int idc_row_series(const struct idc_row *row, const char *text, size_t len, struct record_series *s,
		   char **bucket, char **uuid);

/* One series row's record, built from its columns picked in place (picked) or from
 * jansson's object, for the tests that hold the two to one record: 0, -EAGAIN when the
 * picker leaves the row to jansson, -EBADMSG, -ENOMEM. The caller clears s (zeroed
 * first) and frees *bucket and *uuid whatever the answer. */
int idc_series_row(const char *text, size_t len, bool picked, struct record_series *s,
		   char **bucket, char **uuid);

/* Bounds on what IDC sends: one row, a value other than the rows. Past them an answer
 * is refused, never held. */
#define IDC_ROW_MAX ((size_t)1 << 20)
#define IDC_VALUE_MAX ((size_t)64 << 10)

/* ---- the /sql answer, row by row (idc_answer.c) ----
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

/* A page's rows made records and handed on (to each or each_record). */
int idc_series_hand(struct idc_answer *a, struct record_series *s, const char *bucket,
		    const char *uuid);
int idc_row_patient(struct idc_answer *a, const struct idc_row *row);
int idc_row_study(struct idc_answer *a, const struct idc_row *row);
/* The columns that order a kind's rows (its keyset pages' key), in *cols when given:
 * how many. */
unsigned idc_kind_keys(enum record_kind kind, const char *const **cols);
/* Compares two row keys of n parts (keyset pages). */
int idc_key_cmp(char *const *a, char *const *b, unsigned n);

struct idc {
	struct http *http;
	char *api;
	char *files;              /* with {bucket} */
	struct http_fleet *fleet; /* objects fetched many at once */
};

#endif
