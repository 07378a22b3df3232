/* SPDX-License-Identifier: MIT
 * tcia_parse.c — what TCIA's JSON answers mean, as records. Tolerates what the real service
 * does (tcia-api.md §2, §4): empty bodies for no results, missing keys and nulls, numbers
 * as strings and strings as numbers, unknown extra fields. jansson errors become -EBADMSG
 * here only. An element comes as a jansson object or as the members jsonpick picked from
 * its text in place (the stream's fast path); whatever jsonpick cannot read exactly as
 * jansson would is left to jansson. Called by tcia.c and tcia_stream.c; calls neither.
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

#include "jsonpick.h"
#include "log.h"

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
	struct record_value *v = item;
	int rc;

	rc = tcia_text(src, arg, &v->value);
	if (rc < 0)
		return rc;
	if (!v->value)
		return 1; /* some elements lack the key (getBodyPartValues) */
	return tcia_raw(src->obj, &v->raw);
}

int tcia_parse_values(const char *body, size_t len, const char *key, struct record_values *out)
{
	return tcia_parse_list(body, len, sizeof(struct record_value), tcia_one_value, key,
			       (tcia_clear_fn)record_values_clear, out);
}

int tcia_one_patient(const struct tcia_src *src, void *item, const void *arg)
{
	struct record_patient *p = item;
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

int tcia_parse_patients(const char *body, size_t len, struct record_patients *out)
{
	return tcia_parse_list(body, len, sizeof(struct record_patient), tcia_one_patient, NULL,
			       (tcia_clear_fn)record_patients_clear, out);
}

int tcia_one_study(const struct tcia_src *src, void *item, const void *arg)
{
	struct record_study *s = item;
	struct tcia_fields f = { src, 0 };

	s->study_uid = tcia_field(&f, "StudyInstanceUID");
	s->patient_id = tcia_field(&f, "PatientID");
	s->collection = tcia_field(&f, "Collection");
	s->date = tcia_field(&f, "StudyDate");
	s->description = tcia_field(&f, "StudyDescription");
	s->series_count = tcia_int(src, "SeriesCount");
	if (f.rc == 0 && !s->study_uid) {
		record_study_clear(s);
		memset(s, 0, sizeof(*s));
		return 1;
	}
	if (f.rc == 0)
		f.rc = tcia_raw_of(src, arg, &s->raw);
	return f.rc;
}

int tcia_parse_studies(const char *body, size_t len, struct record_studies *out)
{
	return tcia_parse_list(body, len, sizeof(struct record_study), tcia_one_study, NULL,
			       (tcia_clear_fn)record_studies_clear, out);
}

int tcia_one_series(const struct tcia_src *src, void *item, const void *arg)
{
	struct record_series *s = item;
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
		record_series_clear(s);
		memset(s, 0, sizeof(*s));
		return 1;
	}
	if (f.rc == 0)
		f.rc = tcia_raw_of(src, arg, &s->raw);
	return f.rc;
}

int tcia_parse_series(const char *body, size_t len, struct record_series_list *out)
{
	return tcia_parse_list(body, len, sizeof(struct record_series), tcia_one_series, NULL,
			       (tcia_clear_fn)record_series_list_clear, out);
}

static int tcia_one_size(const struct tcia_src *src, void *item, const void *arg)
{
	struct record_series_size *s = item;

	(void)arg;
	s->total_bytes = tcia_int(src, "TotalSizeInBytes");
	s->object_count = tcia_int(src, "ObjectCount");
	return tcia_raw(src->obj, &s->raw);
}

int tcia_parse_sizes(const char *body, size_t len, struct record_sizes *out)
{
	return tcia_parse_list(body, len, sizeof(struct record_series_size), tcia_one_size, NULL,
			       (tcia_clear_fn)record_sizes_clear, out);
}

/* ---- picked members ------------------------------------------------------------------ */

/* Every member a patient, study or series record reads (tcia.c's one_fns). */
static const char *const tcia_pick_keys[] = {
	"Collection",    "PatientId",
	"PatientID",     "StudyInstanceUID",
	"StudyDate",     "StudyDescription",
	"SeriesCount",   "SeriesInstanceUID",
	"Modality",      "BodyPartExamined",
	"Manufacturer",  "SeriesDescription",
	"SeriesNumber",  "SeriesDate",
	"TimeStamp",     "DateReleased",
	"LicenseName",   "LicenseURI",
	"CollectionURI", "ImageCount",
	"FileSize",      NULL,
};

int tcia_picked_new(struct jsonpick **out)
{
	/* TCIA's elements are read with JSON_ALLOW_NUL (tcia.c). */
	return jsonpick_new(tcia_pick_keys, JSONPICK_NUL, out);
}

int tcia_pick_text(const struct jsonpick *p, const char *key, char **out)
{
	const struct jsonpick_value *v = jsonpick_find(p, key);

	*out = NULL;
	if (!v)
		return 0;
	switch (v->type) {
	case JP_STRING:
		*out = tcia_strdup_nul(v->text, v->len);
		break;
	case JP_INTEGER:
	case JP_REAL:
		*out = strdup(v->text);
		break;
	default:
		return 0;
	}
	return *out ? 0 : -ENOMEM;
}

int64_t tcia_pick_int(const struct jsonpick *p, const char *key)
{
	const struct jsonpick_value *v = jsonpick_find(p, key);

	if (!v)
		return -1;
	switch (v->type) {
	case JP_INTEGER:
		return v->i >= 0 ? v->i : -1;
	case JP_REAL:
		return tcia_int_of_real(v->d);
	case JP_STRING:
		return tcia_int_of_string(v->text, v->len);
	default:
		return -1;
	}
}
