/* SPDX-License-Identifier: MIT
 * idc_int.h — what idc.c (the SQL API), idc_row.c (a row made a record) and idc_bucket.c
 * (the public buckets) share: the handle, a row's columns; and for the tests, one row's
 * record. Not for other modules.
 */
#ifndef TCIAFS_IDC_INT_H
#define TCIAFS_IDC_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

struct idc {
	struct http *http;
	char *api;
	char *files;              /* with {bucket} */
	struct http_fleet *fleet; /* objects fetched many at once */
};

#endif
