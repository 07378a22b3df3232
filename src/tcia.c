/* SPDX-License-Identifier: MIT
 * tcia.c — the TCIA (NBIA v4) client: endpoint URLs, queries and requests, whole answers
 * through the metacache when there is one, long lists streamed (tcia_stream.c) and series
 * zips into a file. What an answer means is tcia_parse.c's.
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

static void tcia_query_filter(struct tcia_query *q, const struct record_filter *f)
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
	record_restart_fn restart;
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

int tcia_each(struct tcia *t, enum record_kind kind, const struct record_filter *f,
	      record_each_fn each, record_restart_fn restart, void *arg)
{
	static const char *const endpoints[] = { "getPatient", "getPatientStudy", "getSeries" };
	struct tcia_each_arg a = { NULL, restart, arg };
	struct tcia_query q = { 0 };
	char *url = NULL;
	int rc;

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	if (kind != RECORD_PATIENTS) {
		tcia_query_add(&q, "PatientID", f ? f->patient_id : NULL);
		tcia_query_add(&q, "StudyInstanceUID", f ? f->study_uid : NULL);
	}
	if (kind == RECORD_SERIES)
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

int tcia_get_collections(struct tcia *t, struct record_values *out)
{
	struct tcia_query q = { 0 };

	return tcia_call(t, "getCollectionValues", &q, tcia_parse_values_cb, "Collection", out);
}

int tcia_get_modalities(struct tcia *t, const struct record_filter *f, struct record_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "BodyPartExamined", f ? f->body_part : NULL);
	return tcia_call(t, "getModalityValues", &q, tcia_parse_values_cb, "Modality", out);
}

int tcia_get_body_parts(struct tcia *t, const struct record_filter *f, struct record_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "Modality", f ? f->modality : NULL);
	return tcia_call(t, "getBodyPartValues", &q, tcia_parse_values_cb, "BodyPartExamined", out);
}

int tcia_get_manufacturers(struct tcia *t, const struct record_filter *f, struct record_values *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "Modality", f ? f->modality : NULL);
	tcia_query_add(&q, "BodyPartExamined", f ? f->body_part : NULL);
	return tcia_call(t, "getManufacturerValues", &q, tcia_parse_values_cb, "Manufacturer", out);
}

int tcia_get_patients(struct tcia *t, const char *collection, struct record_patients *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", collection);
	return tcia_call(t, "getPatient", &q, tcia_parse_patients_cb, NULL, out);
}

int tcia_get_patients_by_modality(struct tcia *t, const char *collection, const char *modality,
				  struct record_patients *out)
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
			  struct record_patients *out)
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

int tcia_get_studies(struct tcia *t, const struct record_filter *f, struct record_studies *out)
{
	struct tcia_query q = { 0 };

	tcia_query_add(&q, "Collection", f ? f->collection : NULL);
	tcia_query_add(&q, "PatientID", f ? f->patient_id : NULL);
	tcia_query_add(&q, "StudyInstanceUID", f ? f->study_uid : NULL);
	return tcia_call(t, "getPatientStudy", &q, tcia_parse_studies_cb, NULL, out);
}

int tcia_get_new_studies(struct tcia *t, const char *collection, const char *patient_id,
			 const char *from_date, struct record_studies *out)
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

int tcia_get_series(struct tcia *t, const struct record_filter *f, struct record_series_list *out)
{
	struct tcia_query q = { 0 };

	tcia_query_filter(&q, f);
	return tcia_call(t, "getSeries", &q, tcia_parse_series_cb, NULL, out);
}

int tcia_get_updated_series(struct tcia *t, const char *from_date, struct record_series_list *out)
{
	struct tcia_query q = { 0 };

	out->count = 0;
	out->v = NULL;
	if (!from_date)
		return -EINVAL;
	tcia_query_add(&q, "fromDate", from_date);
	return tcia_call(t, "getUpdatedSeries", &q, tcia_parse_series_cb, NULL, out);
}

int tcia_get_series_size(struct tcia *t, const char *series_uid, struct record_series_size *out)
{
	struct tcia_query q = { 0 };
	struct record_sizes l;
	int rc;

	memset(out, 0, sizeof(*out));
	out->total_bytes = out->object_count = -1;
	tcia_query_add(&q, "SeriesInstanceUID", series_uid);
	rc = tcia_call(t, "getSeriesSize", &q, tcia_parse_sizes_cb, NULL, &l);
	if (rc < 0)
		return rc;
	if (l.count == 0) {
		record_sizes_clear(&l);
		return -ENOENT;
	}
	*out = l.v[0];
	l.v[0].raw = NULL;
	record_sizes_clear(&l);
	return 0;
}

int tcia_get_sop_uids(struct tcia *t, const char *series_uid, struct record_values *out)
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
