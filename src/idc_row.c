/* SPDX-License-Identifier: MIT
 * idc_row.c — one row of an IDC /sql answer made into a record of tcia.h: its columns read
 * from the members picked in place or from jansson's object, the record as sent printed
 * as jansson would print it (the seed's names where IDC has them, the row under "idc").
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idc_int.h"
#include "jsonpick.h"
#include "record.h"

const char *const idc_series_cols[] = {
	"instanceCount",
	"series_size_MB",
	"SeriesInstanceUID",
	"StudyInstanceUID",
	"PatientID",
	"collection_id",
	"Modality",
	"BodyPartExamined",
	"Manufacturer",
	"SeriesDescription",
	"SeriesNumber",
	"SeriesDate",
	"license_short_name",
	"source_DOI",
	"aws_bucket",
	"crdc_series_uuid",
	"StudyDescription",
	"StudyDate",
	"ManufacturerModelName",
	NULL,
};

/* A picked column's value; absent when the picker does not read it. */
static const struct jsonpick_value *idc_picked(const struct idc_row *row, const char *key)
{
	static const struct jsonpick_value absent = { .type = JP_ABSENT };
	const struct jsonpick_value *v = jsonpick_find(row->pick, key);

	return v ? v : &absent;
}

int idc_get_str(const struct idc_row *row, const char *key, char **out)
{
	const struct jsonpick_value *pv;
	json_t *v;

	*out = NULL;
	if (row->pick) {
		pv = idc_picked(row, key);
		if (pv->type == JP_ABSENT || pv->type == JP_NULL)
			return 0;
		if (pv->type != JP_STRING)
			return -EBADMSG;
		*out = strndup(pv->text, pv->len); /* no NUL in it: jsonpick refused one */
		return *out ? 0 : -ENOMEM;
	}
	v = json_object_get(row->obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EBADMSG;
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

int64_t idc_get_int(const struct idc_row *row, const char *key)
{
	const struct jsonpick_value *pv;
	json_t *v;

	if (row->pick) {
		pv = idc_picked(row, key);
		return pv->type == JP_INTEGER ? pv->i : -1;
	}
	v = json_object_get(row->obj, key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* Whether a column is a number (integer or real), and its value as jansson gives it. */
static bool idc_get_number(const struct idc_row *row, const char *key, double *d)
{
	const struct jsonpick_value *pv;
	json_t *v;

	if (row->pick) {
		pv = idc_picked(row, key);
		*d = pv->type == JP_INTEGER ? (double)pv->i : pv->d;
		return pv->type == JP_INTEGER || pv->type == JP_REAL;
	}
	v = json_object_get(row->obj, key);
	*d = json_number_value(v);
	return json_is_number(v);
}

/* A column as jansson's value (a new reference), or NULL when missing or null. */
static json_t *idc_get_json(const struct idc_row *row, const char *key)
{
	const struct jsonpick_value *pv;
	json_t *v;

	if (!row->pick) {
		v = json_object_get(row->obj, key);
		return v && !json_is_null(v) ? json_incref(v) : NULL;
	}
	pv = idc_picked(row, key);
	switch (pv->type) {
	case JP_STRING:
		return json_stringn(pv->text, pv->len);
	case JP_INTEGER:
		return json_integer(pv->i);
	case JP_REAL:
		return json_real(pv->d);
	case JP_BOOL:
		return json_boolean(pv->i);
	default:
		return NULL;
	}
}

/* Makes room for n more bytes and a NUL in a string being made (*out, *len of *cap). */
static bool idc_room(char **out, size_t len, size_t *cap, size_t n)
{
	size_t c = *cap ? *cap : 1024;
	char *grown;

	if (len + n + 1 <= *cap)
		return true;
	while (c < len + n + 1)
		c *= 2;
	grown = realloc(*out, c);
	if (!grown)
		return false;
	*out = grown;
	*cap = c;
	return true;
}

bool idc_cat(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (!idc_room(out, *len, cap, n))
		return false;
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return true;
}

/* Whether jansson prints s as it is between quotes: nothing to escape. */
static bool idc_plain(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20)
			return false;
	return true;
}

/* Appends v printed compact, as jansson prints it: strings with nothing to escape and
 * integers (most of a row) printed here, the rest by jansson (a fifth of a page's time
 * when it printed them all). */
static bool idc_cat_json(char **out, size_t *len, size_t *cap, const json_t *v)
{
	size_t n;
	char num[32];

	if (json_is_string(v) && idc_plain(json_string_value(v), json_string_length(v)))
		return idc_cat(out, len, cap, "\"", 1) &&
		       idc_cat(out, len, cap, json_string_value(v), json_string_length(v)) &&
		       idc_cat(out, len, cap, "\"", 1);
	if (json_is_integer(v)) {
		n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				     json_integer_value(v));
		return idc_cat(out, len, cap, num, n);
	}
	n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);

	if (n == 0 || !idc_room(out, *len, cap, n))
		return false;
	json_dumpb(v, *out + *len, n, JSON_COMPACT | JSON_ENCODE_ANY);
	*len += n;
	(*out)[*len] = '\0';
	return true;
}

/* Appends a column's value printed as jansson prints it: plain strings and integers (most
 * of a row) printed here, the rest by jansson. Absent or null: nothing, and *had false. */
static bool idc_cat_col(char **out, size_t *len, size_t *cap, const struct idc_row *row,
			const char *key, bool *had)
{
	const struct jsonpick_value *pv;
	json_t *v;
	bool ok;

	*had = false;
	if (row->pick) {
		pv = idc_picked(row, key);
		if (pv->type == JP_ABSENT || pv->type == JP_NULL)
			return true;
		*had = true;
		if (pv->type == JP_STRING && idc_plain(pv->text, pv->len))
			return idc_cat(out, len, cap, "\"", 1) &&
			       idc_cat(out, len, cap, pv->text, pv->len) &&
			       idc_cat(out, len, cap, "\"", 1);
		if (pv->type == JP_INTEGER)
			return idc_cat(out, len, cap, pv->text, pv->len);
	}
	v = idc_get_json(row, key);
	if (!v)
		return !(*had); /* a value jansson could not make: out of memory */
	*had = true;
	ok = idc_cat_json(out, len, cap, v);
	json_decref(v);
	return ok;
}

char *idc_raw(const struct idc_row *row, const char *const *names, int64_t bytes, const char *text,
	      size_t len)
{
	char *out = NULL, num[32];
	size_t n = 0, cap = 0, mark;
	bool ok = idc_cat(&out, &n, &cap, "{", 1), had;

	for (; ok && names[0]; names += 2) {
		mark = n;
		ok = idc_cat(&out, &n, &cap, "\"", 1) &&
		     idc_cat(&out, &n, &cap, names[0], strlen(names[0])) &&
		     idc_cat(&out, &n, &cap, "\":", 2) &&
		     idc_cat_col(&out, &n, &cap, row, names[1], &had);
		if (ok && !had)
			n = mark; /* missing or null: no member */
		else
			ok = ok && idc_cat(&out, &n, &cap, ",", 1);
	}
	if (ok && bytes >= 0) {
		snprintf(num, sizeof(num), "\"FileSize\":%lld,", (long long)bytes);
		ok = idc_cat(&out, &n, &cap, num, strlen(num));
	}
	ok = ok && idc_cat(&out, &n, &cap, "\"idc\":", 6);
	if (ok && text)
		ok = idc_cat(&out, &n, &cap, text, len);
	else if (ok)
		ok = idc_cat_json(&out, &n, &cap, row->obj);
	ok = ok && idc_cat(&out, &n, &cap, "}", 1);
	if (!ok) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

static const char *const idc_series_names[] = {
	"Collection",
	"collection_id",
	"PatientID",
	"PatientID",
	"StudyInstanceUID",
	"StudyInstanceUID",
	"StudyDescription",
	"StudyDescription",
	"StudyDate",
	"StudyDate",
	"SeriesInstanceUID",
	"SeriesInstanceUID",
	"Modality",
	"Modality",
	"BodyPartExamined",
	"BodyPartExamined",
	"Manufacturer",
	"Manufacturer",
	"ManufacturerModelName",
	"ManufacturerModelName",
	"SeriesDescription",
	"SeriesDescription",
	"SeriesNumber",
	"SeriesNumber",
	"SeriesDate",
	"SeriesDate",
	"ImageCount",
	"instanceCount",
	"LicenseName",
	"license_short_name",
	"CollectionURI",
	"source_DOI",
	NULL,
};

int idc_row_series(const struct idc_row *row, const char *text, size_t len, struct record_series *s,
		   char **bucket, char **uuid)
{
	double mb;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->image_count = idc_get_int(row, "instanceCount");
	/* Decimal megabytes, rounded by IDC: the listing has the exact sizes. Past 9e9 MB
	 * (9e15 bytes, as tcia.c bounds a size) it is no size: unknown. */
	s->file_size = idc_get_number(row, "series_size_MB", &mb) && mb >= 0 && mb <= 9.0e9
			       ? (int64_t)(mb * 1e6 + 0.5)
			       : -1;
	rc = rc ? rc : idc_get_str(row, "SeriesInstanceUID", &s->series_uid);
	rc = rc ? rc : idc_get_str(row, "StudyInstanceUID", &s->study_uid);
	rc = rc ? rc : idc_get_str(row, "PatientID", &s->patient_id);
	rc = rc ? rc : idc_get_str(row, "collection_id", &s->collection);
	rc = rc ? rc : idc_get_str(row, "Modality", &s->modality);
	rc = rc ? rc : idc_get_str(row, "BodyPartExamined", &s->body_part);
	rc = rc ? rc : idc_get_str(row, "Manufacturer", &s->manufacturer);
	rc = rc ? rc : idc_get_str(row, "SeriesDescription", &s->description);
	rc = rc ? rc : idc_get_str(row, "SeriesNumber", &s->number);
	rc = rc ? rc : idc_get_str(row, "SeriesDate", &s->date);
	rc = rc ? rc : idc_get_str(row, "license_short_name", &s->license_name);
	rc = rc ? rc : idc_get_str(row, "source_DOI", &s->collection_uri);
	rc = rc ? rc : idc_get_str(row, "aws_bucket", bucket);
	rc = rc ? rc : idc_get_str(row, "crdc_series_uuid", uuid);
	if (rc < 0)
		return rc;
	/* A place is a bucket and a folder, both named: an empty one is no place. */
	if (!s->series_uid || !s->study_uid || !s->patient_id || !s->collection || !*bucket ||
	    !**bucket || !*uuid || !**uuid)
		return -EBADMSG;
	s->raw = idc_raw(row, idc_series_names, s->file_size, text, len);
	return s->raw ? 0 : -ENOMEM;
}

int idc_series_row(const char *text, size_t len, bool picked, struct record_series *s,
		   char **bucket, char **uuid)
{
	struct jsonpick *pick = NULL;
	struct idc_row row = { 0 };
	int rc;

	memset(s, 0, sizeof(*s));
	*bucket = *uuid = NULL;
	if (picked) {
		rc = jsonpick_new(idc_series_cols, 0, &pick);
		rc = rc ? rc : jsonpick_read(pick, text, len);
		row.pick = pick;
	} else {
		row.obj = json_loadb(text, len, 0, NULL);
		rc = json_is_object(row.obj) ? 0 : -EBADMSG;
	}
	if (rc == 0)
		rc = idc_row_series(&row, text, len, s, bucket, uuid);
	jsonpick_free(pick);
	json_decref(row.obj);
	return rc;
}
