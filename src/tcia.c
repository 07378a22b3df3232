/* SPDX-License-Identifier: MIT
 * tcia.c — endpoint URLs and JSON parsing for the TCIA (NBIA v4) API. Tolerates what the
 * real service does (tcia-api.md §2, §4): empty bodies for no results, missing keys and
 * nulls, numbers as strings and strings as numbers, unknown extra fields. jansson errors
 * become -EBADMSG here only. Answers go through the metacache when there is one.
 */
#include "tcia.h"
#include "tcia_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "metacache.h"

struct tcia {
	struct http *http;       /* borrowed */
	struct metacache *cache; /* borrowed, may be NULL */
	char *base;
	char *shown; /* base without user info, for README.txt and logs */
};

int tcia_new(struct http *http, struct metacache *cache, const char *base_url, struct tcia **out)
{
	struct tcia *t;
	size_t n;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->http = http;
	t->cache = cache;
	t->base = strdup(base_url);
	if (!t->base) {
		free(t);
		return -ENOMEM;
	}
	n = strlen(t->base);
	while (n > 0 && t->base[n - 1] == '/')
		t->base[--n] = '\0';
	t->shown = http_redact_url(t->base);
	if (!t->shown) {
		free(t->base);
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void tcia_free(struct tcia *tcia)
{
	if (!tcia)
		return;
	free(tcia->base);
	free(tcia->shown);
	free(tcia);
}

const char *tcia_base_url(const struct tcia *tcia)
{
	return tcia->shown;
}

/* ---- clearing ------------------------------------------------------------------------ */

void tcia_values_clear(struct tcia_values *l)
{
	size_t i;

	for (i = 0; i < l->count; i++) {
		free(l->v[i].value);
		free(l->v[i].raw);
	}
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void tcia_patient_clear(struct tcia_patient *p)
{
	free(p->patient_id);
	free(p->collection);
	free(p->raw);
}

void tcia_patients_clear(struct tcia_patients *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		tcia_patient_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void tcia_study_clear(struct tcia_study *s)
{
	free(s->study_uid);
	free(s->patient_id);
	free(s->collection);
	free(s->date);
	free(s->description);
	free(s->raw);
}

void tcia_studies_clear(struct tcia_studies *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		tcia_study_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void tcia_one_series_clear(struct tcia_series *s)
{
	free(s->series_uid);
	free(s->study_uid);
	free(s->patient_id);
	free(s->collection);
	free(s->modality);
	free(s->body_part);
	free(s->manufacturer);
	free(s->description);
	free(s->number);
	free(s->date);
	free(s->timestamp);
	free(s->license_name);
	free(s->license_uri);
	free(s->collection_uri);
	free(s->raw);
}

void tcia_series_list_clear(struct tcia_series_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		tcia_one_series_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void tcia_series_size_clear(struct tcia_series_size *s)
{
	free(s->raw);
	s->raw = NULL;
}

void tcia_sizes_clear(struct tcia_sizes *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		tcia_series_size_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

/* ---- JSON helpers --------------------------------------------------------------------- */

static bool tcia_blank(const char *body, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			return false;
	return true;
}

/* Loads an answer that should be a JSON array. *out is a new reference, or NULL for "no
 * results". Returns 0, -ENOMEM or -EBADMSG (with a log line giving jansson's reason). */
int tcia_load_array(const char *body, size_t len, json_t **out)
{
	json_error_t err;
	json_t *root;

	*out = NULL;
	if (tcia_blank(body, len))
		return 0;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
			  &err);
	if (!root) {
		/* jansson leaves the error blank when its very first allocation fails. */
		if (json_error_code(&err) == json_error_out_of_memory || err.text[0] == '\0')
			return -ENOMEM;
		log_err("bad answer from TCIA: %s at line %d column %d", err.text, err.line,
			err.column);
		return -EBADMSG;
	}
	if (json_is_null(root)) {
		json_decref(root);
		return 0;
	}
	if (!json_is_array(root)) {
		log_err("bad answer from TCIA: expected a list, got %s",
			json_is_object(root) ? "an object" : "a scalar");
		json_decref(root);
		return -EBADMSG;
	}
	*out = root;
	return 0;
}

/* A new copy of a JSON string with each embedded NUL as U+FFFD: cut at the NUL, "1.2.3\0"
 * "4" would become another series' UID "1.2.3"; with U+FFFD it is a UID no one has, which
 * the store refuses. */
char *tcia_strdup_nul(const char *s, size_t n)
{
	size_t nuls = 0, i, j = 0;
	char *out;

	for (i = 0; i < n; i++)
		nuls += s[i] == '\0';
	if (nuls == 0)
		return strndup(s, n);
	if (nuls > (SIZE_MAX - n - 1) / 2)
		return NULL;
	out = malloc(n + nuls * 2 + 1);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '\0') {
			memcpy(out + j, "\xEF\xBF\xBD", 3);
			j += 3;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

/* The text of a scalar member as the service sent it: strings as they are (an embedded
 * NUL as U+FFFD), numbers printed. Returns 0 with *out a new string or NULL (missing,
 * null, or not a scalar), or -ENOMEM. */
static int tcia_text(const struct tcia_src *src, const char *key, char **out)
{
	const json_t *v;
	char num[64];

	if (src->picked)
		return tcia_pick_text(src->picked, key, out);
	v = json_object_get(src->obj, key);
	*out = NULL;
	if (json_is_string(v)) {
		*out = tcia_strdup_nul(json_string_value(v), json_string_length(v));
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		*out = strdup(num);
	} else if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		*out = strdup(num);
	} else {
		return 0;
	}
	return *out ? 0 : -ENOMEM;
}

int64_t tcia_int_of_real(double d)
{
	if (!isfinite(d) || d < 0 || d > 9.0e15 || d != floor(d))
		return -1;
	return (int64_t)d;
}

int64_t tcia_int_of_string(const char *s, size_t len)
{
	double d;
	char *end;

	if (len == 0 || strlen(s) != len)
		return -1;
	errno = 0;
	d = strtod(s, &end);
	if (errno || *end != '\0')
		return -1;
	return tcia_int_of_real(d);
}

/* An integer member, sent as a JSON integer, a real, or a string such as "25273786.0".
 * Returns the value, or -1 when missing, negative, fractional or unreadable. */
static int64_t tcia_int(const struct tcia_src *src, const char *key)
{
	const json_t *v;

	if (src->picked)
		return tcia_pick_int(src->picked, key);
	v = json_object_get(src->obj, key);
	if (json_is_integer(v))
		return json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
	if (json_is_real(v))
		return tcia_int_of_real(json_real_value(v));
	if (json_is_string(v))
		return tcia_int_of_string(json_string_value(v), json_string_length(v));
	return -1;
}

/* Chains tcia_text calls: stops at the first failure and remembers it. */
struct tcia_fields {
	const struct tcia_src *src;
	int rc;
};

static char *tcia_field(struct tcia_fields *f, const char *key)
{
	char *s = NULL;

	if (f->rc == 0)
		f->rc = tcia_text(f->src, key, &s);
	return s;
}

static int tcia_raw(const json_t *obj, char **out)
{
	*out = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
	return *out ? 0 : -ENOMEM;
}

/* raw for a record: the element's text as sent when parsing a stream (arg), else the
 * object printed compact. */
static int tcia_raw_of(const struct tcia_src *src, const void *arg, char **out)
{
	const struct tcia_as_sent *as = arg;

	if (!as)
		return src->obj ? tcia_raw(src->obj, out) : -EINVAL;
	*out = tcia_strdup_nul(as->text, as->len);
	return *out ? 0 : -ENOMEM;
}

/* Finds the extent of the element starting at *pos (after the '[' or a ','): on return
 * [*start, *end) is its text and *pos is at the ',' or ']' after it. Only delimits: the
 * element's own syntax is jansson's to check. Returns 1 for an element, 0 at the ']'
 * that closes the list, -EBADMSG when the text ends first. */
int tcia_next_element(const char *b, size_t len, size_t *pos, size_t *start, size_t *end)
{
	size_t i = *pos, depth = 0;
	bool in_string = false;

	while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
		i++;
	if (i < len && b[i] == ']') {
		*pos = i;
		return 0;
	}
	*start = i;
	for (; i < len; i++) {
		char c = b[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		} else if ((c == ',' || c == ']') && depth == 0) {
			*end = i;
			*pos = i;
			return 1;
		}
	}
	log_err("bad answer from TCIA: the list ends in the middle of element text");
	return -EBADMSG;
}

/* Parses a list answer element by element with one_fn into an array of item_size
 * records. Each element is loaded on its own, so memory peaks at one element's JSON tree
 * rather than the whole answer's (a 10,000-series getSeries is ~8 MB of text and several
 * times that as a tree). On failure everything built so far is released with clear_fn. */
typedef void (*tcia_clear_fn)(void *list);

struct tcia_any_list {
	size_t count;
	void *v;
};

/* Makes room for one more item. Returns 0 or -ENOMEM. */
static int tcia_list_grow(struct tcia_any_list *l, size_t *cap, size_t item_size)
{
	size_t ncap;
	void *p;

	if (l->count < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / item_size)
		return -ENOMEM;
	p = realloc(l->v, ncap * item_size);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * item_size, 0, (ncap - *cap) * item_size);
	l->v = p;
	*cap = ncap;
	return 0;
}

int tcia_parse_one(const char *text, size_t n, size_t index, json_t **out)
{
	json_error_t err;

	*out = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (*out) {
		if (json_is_object(*out))
			return 0;
		json_decref(*out);
		*out = NULL;
		log_err("bad answer from TCIA: element %zu is not an object", index);
		return -EBADMSG;
	}
	if (json_error_code(&err) == json_error_out_of_memory || err.text[0] == '\0')
		return -ENOMEM;
	log_err("bad answer from TCIA: element %zu: %s at column %d", index, err.text, err.column);
	return -EBADMSG;
}

/* Elements without their key are left out; one line per answer says how many, however
 * many there are (an answer of a million such elements is one line, not a million). The
 * values' lists lack keys by design (getBodyPartValues) and say nothing. */
void tcia_log_left_out(tcia_one_fn one_fn, size_t n)
{
	static const struct {
		tcia_one_fn fn;
		const char *one, *many, *key;
	} kinds[] = {
		{ tcia_one_patient, "patient", "patients", "PatientId" },
		{ tcia_one_study, "study", "studies", "StudyInstanceUID" },
		{ tcia_one_series, "series", "series", "SeriesInstanceUID" },
	};
	size_t i;

	for (i = 0; n > 0 && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].fn == one_fn)
			log_warn("TCIA answer: %zu %s without %s left out", n,
				 n == 1 ? kinds[i].one : kinds[i].many, kinds[i].key);
}

static int tcia_parse_list(const char *body, size_t len, size_t item_size, tcia_one_fn one_fn,
			   const void *arg, tcia_clear_fn clear_fn, void *list)
{
	struct tcia_any_list *l = list;
	size_t pos = 0, start = 0, end = 0, cap = 0, index = 0, left_out = 0;
	json_t *root = NULL, *el;
	int rc, more;

	l->count = 0;
	l->v = NULL;
	while (pos < len &&
	       (body[pos] == ' ' || body[pos] == '\t' || body[pos] == '\r' || body[pos] == '\n'))
		pos++;
	if (pos == len || body[pos] != '[') {
		/* Not a list: let jansson say what it is (empty, null, an object, HTML). */
		rc = tcia_load_array(body, len, &root);
		json_decref(root);
		if (rc == 0 && root) {
			log_err("bad answer from TCIA: a list that does not start with '['");
			rc = -EBADMSG;
		}
		return rc;
	}
	pos++;
	for (;;) {
		more = tcia_next_element(body, len, &pos, &start, &end);
		if (more <= 0) {
			rc = more;
			if (more == 0 && index > 0) {
				log_err("bad answer from TCIA: a ',' before the closing ']'");
				rc = -EBADMSG;
			}
			break;
		}
		rc = tcia_list_grow(l, &cap, item_size);
		if (rc == 0)
			rc = tcia_parse_one(body + start, end - start, index, &el);
		if (rc < 0)
			break;
		rc = one_fn(&(struct tcia_src){ el, NULL }, (char *)l->v + l->count * item_size,
			    arg);
		json_decref(el);
		if (rc < 0) {
			/* The item being built may hold part of its fields: free it too. */
			l->count++;
			break;
		}
		if (rc == 0)
			l->count++;
		else
			left_out++;
		index++;
		if (body[pos] == ']') {
			rc = 0;
			break;
		}
		pos++; /* past the ',' */
	}
	if (rc == 0) {
		/* Only whitespace may follow the list. */
		for (pos++; pos < len; pos++)
			if (body[pos] != ' ' && body[pos] != '\t' && body[pos] != '\r' &&
			    body[pos] != '\n') {
				log_err("bad answer from TCIA: text after the list");
				rc = -EBADMSG;
				break;
			}
	}
	if (rc < 0)
		clear_fn(list);
	else
		tcia_log_left_out(one_fn, left_out);
	return rc;
}

/* ---- one record each ------------------------------------------------------------------ */

static int tcia_one_value(const struct tcia_src *src, void *item, const void *arg)
{
	struct tcia_value *v = item;
	int rc;

	rc = tcia_text(src, arg, &v->value);
	if (rc < 0)
		return rc;
	if (!v->value)
		return 1; /* some elements lack the key (getBodyPartValues) */
	return tcia_raw(src->obj, &v->raw);
}

int tcia_parse_values(const char *body, size_t len, const char *key, struct tcia_values *out)
{
	return tcia_parse_list(body, len, sizeof(struct tcia_value), tcia_one_value, key,
			       (tcia_clear_fn)tcia_values_clear, out);
}

int tcia_one_patient(const struct tcia_src *src, void *item, const void *arg)
{
	struct tcia_patient *p = item;
	struct tcia_fields f = { src, 0 };

	/* Clients since 2023 read PatientId; older ones PatientID: accept both. */
	p->patient_id = tcia_field(&f, "PatientId");
	if (f.rc == 0 && !p->patient_id)
		p->patient_id = tcia_field(&f, "PatientID");
	p->collection = tcia_field(&f, "Collection");
	if (f.rc < 0)
		return f.rc;
	if (!p->patient_id) {
		free(p->collection);
		p->collection = NULL;
		return 1;
	}
	return tcia_raw_of(src, arg, &p->raw);
}

int tcia_parse_patients(const char *body, size_t len, struct tcia_patients *out)
{
	return tcia_parse_list(body, len, sizeof(struct tcia_patient), tcia_one_patient, NULL,
			       (tcia_clear_fn)tcia_patients_clear, out);
}

int tcia_one_study(const struct tcia_src *src, void *item, const void *arg)
{
	struct tcia_study *s = item;
	struct tcia_fields f = { src, 0 };

	s->study_uid = tcia_field(&f, "StudyInstanceUID");
	s->patient_id = tcia_field(&f, "PatientID");
	s->collection = tcia_field(&f, "Collection");
	s->date = tcia_field(&f, "StudyDate");
	s->description = tcia_field(&f, "StudyDescription");
	s->series_count = tcia_int(src, "SeriesCount");
	if (f.rc == 0 && !s->study_uid) {
		tcia_study_clear(s);
		memset(s, 0, sizeof(*s));
		return 1;
	}
	if (f.rc == 0)
		f.rc = tcia_raw_of(src, arg, &s->raw);
	return f.rc;
}

int tcia_parse_studies(const char *body, size_t len, struct tcia_studies *out)
{
	return tcia_parse_list(body, len, sizeof(struct tcia_study), tcia_one_study, NULL,
			       (tcia_clear_fn)tcia_studies_clear, out);
}

int tcia_one_series(const struct tcia_src *src, void *item, const void *arg)
{
	struct tcia_series *s = item;
	struct tcia_fields f = { src, 0 };

	s->series_uid = tcia_field(&f, "SeriesInstanceUID");
	s->study_uid = tcia_field(&f, "StudyInstanceUID");
	s->patient_id = tcia_field(&f, "PatientID");
	s->collection = tcia_field(&f, "Collection");
	s->modality = tcia_field(&f, "Modality");
	s->body_part = tcia_field(&f, "BodyPartExamined");
	s->manufacturer = tcia_field(&f, "Manufacturer");
	s->description = tcia_field(&f, "SeriesDescription");
	s->number = tcia_field(&f, "SeriesNumber");
	s->date = tcia_field(&f, "SeriesDate");
	s->timestamp = tcia_field(&f, "TimeStamp");
	if (f.rc == 0 && !s->timestamp)
		s->timestamp = tcia_field(&f, "DateReleased");
	s->license_name = tcia_field(&f, "LicenseName");
	s->license_uri = tcia_field(&f, "LicenseURI");
	s->collection_uri = tcia_field(&f, "CollectionURI");
	s->image_count = tcia_int(src, "ImageCount");
	s->file_size = tcia_int(src, "FileSize");
	if (f.rc == 0 && !s->series_uid) {
		tcia_one_series_clear(s);
		memset(s, 0, sizeof(*s));
		return 1;
	}
	if (f.rc == 0)
		f.rc = tcia_raw_of(src, arg, &s->raw);
	return f.rc;
}

int tcia_parse_series(const char *body, size_t len, struct tcia_series_list *out)
{
	return tcia_parse_list(body, len, sizeof(struct tcia_series), tcia_one_series, NULL,
			       (tcia_clear_fn)tcia_series_list_clear, out);
}

static int tcia_one_size(const struct tcia_src *src, void *item, const void *arg)
{
	struct tcia_series_size *s = item;

	(void)arg;
	s->total_bytes = tcia_int(src, "TotalSizeInBytes");
	s->object_count = tcia_int(src, "ObjectCount");
	return tcia_raw(src->obj, &s->raw);
}

int tcia_parse_sizes(const char *body, size_t len, struct tcia_sizes *out)
{
	return tcia_parse_list(body, len, sizeof(struct tcia_series_size), tcia_one_size, NULL,
			       (tcia_clear_fn)tcia_sizes_clear, out);
}

/* ---- requests ------------------------------------------------------------------------- */

/* A query under construction: "?A=x&B=y" with every value escaped. */
struct tcia_query {
	char *s;
	size_t len;
	int rc;
};

static void tcia_query_add(struct tcia_query *q, const char *name, const char *value)
{
	size_t need;
	char *esc, *p;

	if (q->rc < 0 || !value)
		return;
	esc = http_escape(value);
	if (!esc) {
		q->rc = -ENOMEM;
		return;
	}
	need = q->len + strlen(name) + strlen(esc) + 3;
	p = realloc(q->s, need);
	if (!p) {
		free(esc);
		q->rc = -ENOMEM;
		return;
	}
	q->s = p;
	q->len += (size_t)snprintf(q->s + q->len, need - q->len, "%c%s=%s", q->len ? '&' : '?',
				   name, esc);
	free(esc);
}

static void tcia_query_filter(struct tcia_query *q, const struct tcia_filter *f)
{
	if (!f)
		return;
	tcia_query_add(q, "Collection", f->collection);
	tcia_query_add(q, "PatientID", f->patient_id);
	tcia_query_add(q, "StudyInstanceUID", f->study_uid);
	tcia_query_add(q, "SeriesInstanceUID", f->series_uid);
	tcia_query_add(q, "Modality", f->modality);
	tcia_query_add(q, "BodyPartExamined", f->body_part);
	tcia_query_add(q, "Manufacturer", f->manufacturer);
	tcia_query_add(q, "ManufacturerModelName", f->model);
}

/* Returns a new URL string "<base>/<endpoint><query>", or NULL when out of memory. */
static char *tcia_url(const struct tcia *t, const char *endpoint, const struct tcia_query *q)
{
	size_t n = strlen(t->base) + strlen(endpoint) + (q->s ? q->len : 0) + 2;
	char *url = malloc(n);

	if (url)
		snprintf(url, n, "%s/%s%s", t->base, endpoint, q->s ? q->s : "");
	return url;
}

struct tcia_fetch_arg {
	struct tcia *t;
	const char *url;
};

static int tcia_fetch_cb(void *arg, char **body, size_t *len)
{
	struct tcia_fetch_arg *a = arg;

	return http_get(a->t->http, a->url, body, len);
}

typedef int (*tcia_parse_fn)(const char *body, size_t len, const void *arg, void *out);

/* GETs endpoint with query q (consumed), through the cache if any, and parses the answer.
 * An answer that does not parse is dropped from the cache so the next call asks again. */
static int tcia_call(struct tcia *t, const char *endpoint, struct tcia_query *q,
		     tcia_parse_fn parse, const void *parse_arg, void *out)
{
	struct tcia_fetch_arg fa = { t, NULL };
	struct tcia_any_list *l = out;
	char *url = NULL, *body = NULL;
	size_t len = 0;
	int rc = q->rc;

	/* Every out is a list: empty until parsed, so callers may always clear it. */
	l->count = 0;
	l->v = NULL;
	if (rc < 0)
		goto out_free_query;
	url = tcia_url(t, endpoint, q);
	rc = -ENOMEM;
	if (!url)
		goto out_free_query;
	fa.url = url;
	if (t->cache)
		rc = metacache_get(t->cache, url, tcia_fetch_cb, &fa, &body, &len);
	else
		rc = http_get(t->http, url, &body, &len);
	if (rc < 0)
		goto out_free_url;
	rc = parse(body, len, parse_arg, out);
	if (rc == -EBADMSG) {
		log_err("%s%s: the answer is not what the API documents", t->shown,
			url + strlen(t->base));
		if (t->cache)
			metacache_forget(t->cache, url);
	}
	free(body);
out_free_url:
	free(url);
out_free_query:
	free(q->s);
	return rc;
}

static int tcia_parse_values_cb(const char *b, size_t n, const void *key, void *out)
{
	return tcia_parse_values(b, n, key, out);
}

static int tcia_parse_patients_cb(const char *b, size_t n, const void *arg, void *out)
{
	(void)arg;
	return tcia_parse_patients(b, n, out);
}

static int tcia_parse_studies_cb(const char *b, size_t n, const void *arg, void *out)
{
	(void)arg;
	return tcia_parse_studies(b, n, out);
}

static int tcia_parse_series_cb(const char *b, size_t n, const void *arg, void *out)
{
	(void)arg;
	return tcia_parse_series(b, n, out);
}

static int tcia_parse_sizes_cb(const char *b, size_t n, const void *arg, void *out)
{
	(void)arg;
	return tcia_parse_sizes(b, n, out);
}

struct tcia_each_arg {
	struct tcia_stream *s;
	tcia_restart_fn restart;
	void *arg;
};

static int tcia_each_chunk(void *arg, const char *data, size_t len)
{
	struct tcia_each_arg *a = arg;

	return tcia_stream_feed(a->s, data, len);
}

static int tcia_each_restart(void *arg)
{
	struct tcia_each_arg *a = arg;

	tcia_stream_reset(a->s);
	return a->restart ? a->restart(a->arg) : -EIO;
}

int tcia_each(struct tcia *t, enum tcia_kind kind, const struct tcia_filter *f, tcia_each_fn each,
	      tcia_restart_fn restart, void *arg)
{
	static const char *const endpoints[] = { "getPatient", "getPatientStudy", "getSeries" };
	struct tcia_each_arg a = { NULL, restart, arg };
	struct tcia_query q = { 0 };
	char *url = NULL;
	int rc;

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	if (kind != TCIA_PATIENTS) {
		tcia_query_add(&q, "PatientID", f ? f->patient_id : NULL);
		tcia_query_add(&q, "StudyInstanceUID", f ? f->study_uid : NULL);
	}
	if (kind == TCIA_SERIES)
		tcia_query_add(&q, "SeriesInstanceUID", f ? f->series_uid : NULL);
	rc = q.rc;
	if (rc < 0)
		goto out_free_query;
	rc = -ENOMEM;
	url = tcia_url(t, endpoints[kind], &q);
	if (!url)
		goto out_free_query;
	rc = tcia_stream_new(kind, each, arg, &a.s);
	if (rc < 0)
		goto out_free_url;
	rc = http_stream(t->http, url, tcia_stream_limit(kind), tcia_each_chunk, tcia_each_restart,
			 &a, NULL);
	if (rc == 0)
		rc = tcia_stream_end(a.s);
	else if (tcia_stream_error(a.s) < 0)
		rc = tcia_stream_error(
			a.s); /* the parser's or the consumer's own, not the network's */
	if (rc == -EBADMSG)
		log_err("%s%s: the answer is not what the API documents", t->shown,
			url + strlen(t->base));
	tcia_stream_free(a.s);
out_free_url:
	free(url);
out_free_query:
	free(q.s);
	return rc;
}

int tcia_get_collections(struct tcia *t, struct tcia_values *out)
{
	struct tcia_query q = { 0 };

	return tcia_call(t, "getCollectionValues", &q, tcia_parse_values_cb, "Collection", out);
}

int tcia_get_modalities(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "BodyPartExamined", f ? f->body_part : NULL);
	return tcia_call(t, "getModalityValues", &q, tcia_parse_values_cb, "Modality", out);
}

int tcia_get_body_parts(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "Modality", f ? f->modality : NULL);
	return tcia_call(t, "getBodyPartValues", &q, tcia_parse_values_cb, "BodyPartExamined", out);
}

int tcia_get_manufacturers(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "Modality", f ? f->modality : NULL);
	tcia_query_add(&q, "BodyPartExamined", f ? f->body_part : NULL);
	return tcia_call(t, "getManufacturerValues", &q, tcia_parse_values_cb, "Manufacturer", out);
}

int tcia_get_patients(struct tcia *t, const char *collection, struct tcia_patients *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", collection);
	return tcia_call(t, "getPatient", &q, tcia_parse_patients_cb, NULL, out);
}

int tcia_get_patients_by_modality(struct tcia *t, const char *collection, const char *modality,
				  struct tcia_patients *out)
{
	struct tcia_query q = { 0 };

	out->count = 0;
	out->v = NULL;
	if (!collection || !modality)
		return -EINVAL;
	tcia_query_add(&q, "Collection", collection);
	tcia_query_add(&q, "Modality", modality);
	return tcia_call(t, "getPatientByCollectionAndModality", &q, tcia_parse_patients_cb, NULL,
			 out);
}

int tcia_get_new_patients(struct tcia *t, const char *collection, const char *from_date,
			  struct tcia_patients *out)
{
	struct tcia_query q = { 0 };

	out->count = 0;
	out->v = NULL;
	if (!collection || !from_date)
		return -EINVAL;
	tcia_query_add(&q, "Collection", collection);
	tcia_query_add(&q, "fromDate", from_date);
	return tcia_call(t, "NewPatientsInCollection", &q, tcia_parse_patients_cb, NULL, out);
}

int tcia_get_studies(struct tcia *t, const struct tcia_filter *f, struct tcia_studies *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "PatientID", f ? f->patient_id : NULL);
	tcia_query_add(&q, "StudyInstanceUID", f ? f->study_uid : NULL);
	return tcia_call(t, "getPatientStudy", &q, tcia_parse_studies_cb, NULL, out);
}

int tcia_get_new_studies(struct tcia *t, const char *collection, const char *patient_id,
			 const char *from_date, struct tcia_studies *out)
{
	struct tcia_query q = { 0 };

	out->count = 0;
	out->v = NULL;
	if (!collection || !from_date)
		return -EINVAL;
	tcia_query_add(&q, "Collection", collection);
	tcia_query_add(&q, "PatientID", patient_id);
	tcia_query_add(&q, "fromDate", from_date);
	return tcia_call(t, "NewStudiesInPatientCollection", &q, tcia_parse_studies_cb, NULL, out);
}

int tcia_get_series(struct tcia *t, const struct tcia_filter *f, struct tcia_series_list *out)
{
	struct tcia_query q = { 0 };

	tcia_query_filter(&q, f);
	return tcia_call(t, "getSeries", &q, tcia_parse_series_cb, NULL, out);
}

int tcia_get_updated_series(struct tcia *t, const char *from_date, struct tcia_series_list *out)
{
	struct tcia_query q = { 0 };

	out->count = 0;
	out->v = NULL;
	if (!from_date)
		return -EINVAL;
	tcia_query_add(&q, "fromDate", from_date);
	return tcia_call(t, "getUpdatedSeries", &q, tcia_parse_series_cb, NULL, out);
}

int tcia_get_series_size(struct tcia *t, const char *series_uid, struct tcia_series_size *out)
{
	struct tcia_query q = { 0 };
	struct tcia_sizes l;
	int rc;

	memset(out, 0, sizeof(*out));
	out->total_bytes = out->object_count = -1;
	tcia_query_add(&q, "SeriesInstanceUID", series_uid);
	rc = tcia_call(t, "getSeriesSize", &q, tcia_parse_sizes_cb, NULL, &l);
	if (rc < 0)
		return rc;
	if (l.count == 0) {
		tcia_sizes_clear(&l);
		return -ENOENT;
	}
	*out = l.v[0];
	l.v[0].raw = NULL;
	tcia_sizes_clear(&l);
	return 0;
}

int tcia_get_sop_uids(struct tcia *t, const char *series_uid, struct tcia_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "SeriesInstanceUID", series_uid);
	return tcia_call(t, "getSOPInstanceUIDs", &q, tcia_parse_values_cb, "SOPInstanceUID", out);
}

struct tcia_progress {
	tcia_progress_fn fn;
	void *arg;
	uint64_t expected;
};

static uint64_t tcia_progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct tcia_progress *p = arg;

	/* The zip is made on the fly: a Content-Length, if any, cannot be trusted. */
	(void)total;
	return p->fn ? p->fn(p->arg, done, p->expected) : 0;
}

static int tcia_download(struct tcia *t, const char *endpoint, struct tcia_query *q, int fd,
			 uint64_t max, struct tcia_progress *p, uint64_t *bytes)
{
	char *url;
	int rc = q->rc;

	*bytes = 0;
	if (rc < 0)
		goto out_free_query;
	rc = -ENOMEM;
	url = tcia_url(t, endpoint, q);
	if (!url)
		goto out_free_query;
	rc = http_download(t->http, url, fd, max, tcia_progress_cb, p, bytes);
	free(url);
out_free_query:
	free(q->s);
	return rc;
}

int tcia_get_image(struct tcia *t, const char *series_uid, bool md5, int fd, uint64_t expected,
		   uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes)
{
	struct tcia_progress p = { progress, arg, expected };
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "SeriesInstanceUID", series_uid);
	return tcia_download(t, md5 ? "getImageWithMD5Hash" : "getImage", &q, fd, max, &p, bytes);
}

int tcia_get_single_image(struct tcia *t, const char *series_uid, const char *sop_uid, int fd,
			  uint64_t *bytes)
{
	struct tcia_progress p = { NULL, NULL, 0 };
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "SeriesInstanceUID", series_uid);
	tcia_query_add(&q, "SOPInstanceUID", sop_uid);
	return tcia_download(t, "getSingleImage", &q, fd, 0, &p, bytes);
}
