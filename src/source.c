/* SPDX-License-Identifier: MIT
 * source.c — one face for the two archives: each call goes to tcia.c (NBIA) or idc.c
 * (IDC), and what IDC needs that NBIA does not (collection ids, where a series' objects
 * are) is settled here, so that the tree and the store never ask which source it is.
 */
#include "source.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idc.h"
#include "log.h"

struct source {
	enum source_kind kind;
	struct tcia *tcia;
	struct idc *idc;
};

static int source_new(enum source_kind kind, struct tcia *tcia, struct idc *idc,
		      struct source **out)
{
	struct source *src = calloc(1, sizeof(*src));

	*out = src;
	if (!src)
		return -ENOMEM;
	src->kind = kind;
	src->tcia = tcia;
	src->idc = idc;
	return 0;
}

int source_new_nbia(struct tcia *tcia, struct source **out)
{
	return source_new(SOURCE_NBIA, tcia, NULL, out);
}

int source_new_idc(struct idc *idc, struct source **out)
{
	return source_new(SOURCE_IDC, NULL, idc, out);
}

void source_free(struct source *src)
{
	free(src);
}

enum source_kind source_kind(const struct source *src)
{
	return src->kind;
}

const char *source_url(const struct source *src)
{
	return src->kind == SOURCE_IDC ? idc_api_url(src->idc) : tcia_base_url(src->tcia);
}

const char *source_name(const struct source *src)
{
	return src->kind == SOURCE_IDC ? "IDC" : "NBIA";
}

/* ---- metadata ------------------------------------------------------------------------ */

void source_colls_clear(struct source_colls *c)
{
	size_t i;

	for (i = 0; c->v && i < c->count; i++) {
		free(c->v[i].api);
		free(c->v[i].name);
	}
	free(c->v);
	c->v = NULL;
	c->count = 0;
}

int source_collections(struct source *src, struct source_colls *out)
{
	struct idc_collections ic = { { 0, NULL }, NULL };
	struct record_values *names = &ic.names;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = src->kind == SOURCE_IDC ? idc_collections(src->idc, &ic)
				     : tcia_get_collections(src->tcia, names);
	if (rc < 0)
		return rc;
	out->v = calloc(names->count + 1, sizeof(*out->v));
	if (!out->v)
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < names->count; i++) {
		struct source_coll *c = &out->v[out->count++];

		/* NBIA calls a collection by its name; IDC by an id, shown by its name. */
		c->api = ic.ids ? ic.ids[i] : names->v[i].value;
		c->name = strdup(names->v[i].value);
		if (ic.ids)
			ic.ids[i] = NULL;
		else
			names->v[i].value = NULL;
		if (!c->api || !c->name)
			rc = -ENOMEM;
	}
	idc_collections_clear(&ic);
	if (rc < 0)
		source_colls_clear(out);
	return rc;
}

int source_release(struct source *src, char **out)
{
	*out = NULL;
	return src->kind == SOURCE_IDC ? idc_version(src->idc, out) : 0;
}

int source_facet(struct source *src, const char *coll, unsigned facet, struct record_values *out)
{
	struct record_filter f = { .collection = coll };

	if (src->kind == SOURCE_IDC)
		return idc_values(src->idc, coll, facet, out);
	switch (facet) {
	case 0:
		return tcia_get_modalities(src->tcia, &f, out);
	case 1:
		return tcia_get_body_parts(src->tcia, &f, out);
	case 2:
		return tcia_get_manufacturers(src->tcia, &f, out);
	}
	return -EINVAL;
}

bool source_facets_from_series(const struct source *src)
{
	return src->kind == SOURCE_IDC;
}

/* A filter as IDC's query: IDC lists by collection, patient or series only. */
static int source_idc_query(const struct record_filter *f, struct idc_query *q)
{
	memset(q, 0, sizeof(*q));
	if (f->study_uid || f->modality || f->body_part || f->manufacturer || f->model)
		return -EINVAL;
	q->collection_id = f->collection;
	q->patient_id = f->patient_id;
	q->series_uid = f->series_uid;
	return 0;
}

int source_each(struct source *src, enum record_kind kind, const struct record_filter *f,
		record_each_fn each, record_restart_fn restart, void *arg)
{
	struct idc_query q;
	int rc;

	if (src->kind == SOURCE_NBIA)
		return tcia_each(src->tcia, kind, f, each, restart, arg);
	rc = source_idc_query(f, &q);
	/* IDC's pages are asked one by one, and a retried page hands its rows on again:
	 * consumers replace by key, so nothing needs starting over. */
	return rc < 0 ? rc : idc_each(src->idc, kind, &q, each, arg);
}

/* Two answers streamed at once into one caller's callbacks (source_each_studies_series):
 * the studies on a thread of their own, the series on the caller's. */
struct source_pair {
	struct source *src;
	const struct record_filter *f;
	pthread_mutex_t lock; /* one callback at a time */
	record_restart_fn restart;
	void *arg;
	int failed; /* the first failure: the other answer stops at its next row */
	struct source_half {
		struct source_pair *p;
		record_each_fn each;
		int rc;
		char *why; /* its failure's reason, taken from its thread */
	} half[2];
};

static int source_half_each(void *arg, void *rec)
{
	struct source_half *h = arg;
	struct source_pair *p = h->p;
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = p->failed ? -ECANCELED : h->each(p->arg, rec);
	if (rc < 0 && !p->failed)
		p->failed = rc;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int source_half_restart(void *arg)
{
	struct source_half *h = arg;
	struct source_pair *p = h->p;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	if (p->restart)
		rc = p->restart(p->arg);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static void source_half_run(struct source_half *h, enum record_kind kind)
{
	struct source_pair *p = h->p;

	h->rc = source_each(p->src, kind, p->f, source_half_each, source_half_restart, h);
	if (h->rc < 0) {
		pthread_mutex_lock(&p->lock);
		if (!p->failed)
			p->failed = h->rc;
		pthread_mutex_unlock(&p->lock);
		h->why = strdup(log_reason());
	}
}

static void *source_studies_main(void *arg)
{
	log_clear_reason();
	source_half_run(arg, RECORD_STUDIES);
	return NULL;
}

int source_each_studies_series(struct source *src, const struct record_filter *f,
			       record_each_fn study, record_each_fn series,
			       record_restart_fn restart, void *arg)
{
	struct source_pair p = { .src = src, .f = f, .restart = restart, .arg = arg };
	struct idc_query q;
	pthread_t thread;
	bool threaded;
	int rc, i;

	if (src->kind == SOURCE_IDC && f->patient_id) {
		rc = source_idc_query(f, &q);
		return rc < 0 ? rc : idc_each_patient(src->idc, &q, study, series, arg);
	}
	/* NBIA: a collection's answers one after the other: both are long, and parsing
	 * them at once on two cores made NLST's bulk load slower (6.6 s to 9.2 s,
	 * loopback). IDC's come in pages, each a round trip and a query of its own, one
	 * after another: its studies' pages go at once with the series' pages. */
	if (!f->patient_id && src->kind == SOURCE_NBIA) {
		rc = source_each(src, RECORD_STUDIES, f, study, restart, arg);
		return rc < 0 ? rc : source_each(src, RECORD_SERIES, f, series, restart, arg);
	}
	pthread_mutex_init(&p.lock, NULL);
	p.half[0] = (struct source_half){ &p, study, 0, NULL };
	p.half[1] = (struct source_half){ &p, series, 0, NULL };
	threaded = pthread_create(&thread, NULL, source_studies_main, &p.half[0]) == 0;
	if (!threaded)
		source_half_run(&p.half[0], RECORD_STUDIES); /* one after the other, then */
	pthread_mutex_lock(&p.lock);
	rc = p.failed;
	pthread_mutex_unlock(&p.lock);
	if (rc == 0)
		source_half_run(&p.half[1], RECORD_SERIES);
	if (threaded)
		pthread_join(thread, NULL);
	/* The failure that stopped the other answer is the one to tell. */
	rc = 0;
	for (i = 0; i < 2 && rc == 0 && p.failed; i++)
		if (p.half[i].rc == p.failed) {
			rc = p.failed;
			log_adopt_reason(p.half[i].why);
		}
	if (rc == 0)
		rc = p.failed;
	for (i = 0; i < 2; i++)
		free(p.half[i].why);
	pthread_mutex_destroy(&p.lock);
	return rc;
}

/* Takes a series record's strings into a list. */
static int source_collect(void *arg, void *rec)
{
	struct record_series_list *l = arg;
	struct record_series *grown = realloc(l->v, (l->count + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	l->v = grown;
	l->v[l->count++] = *(struct record_series *)rec;
	memset(rec, 0, sizeof(struct record_series));
	return 0;
}

int source_get_series(struct source *src, const struct record_filter *f,
		      struct record_series_list *out)
{
	int rc;

	if (src->kind == SOURCE_NBIA)
		return tcia_get_series(src->tcia, f, out);
	memset(out, 0, sizeof(*out));
	rc = source_each(src, RECORD_SERIES, f, source_collect, NULL, out);
	if (rc < 0)
		record_series_list_clear(out);
	return rc;
}

int source_series_extra(struct source *src, const char *uid, char **raw)
{
	struct record_series_size size;
	int rc;

	*raw = NULL;
	/* IDC's record already has everything its row says, FileSize included. */
	if (src->kind == SOURCE_IDC)
		return -ENOENT;
	rc = tcia_get_series_size(src->tcia, uid, &size);
	if (rc < 0)
		return rc;
	*raw = size.raw;
	size.raw = NULL;
	record_series_size_clear(&size);
	return 0;
}

int source_series_bytes(struct source *src, const char *uid, int64_t *bytes)
{
	struct record_series_size size;
	int rc;

	*bytes = -1;
	if (src->kind == SOURCE_IDC)
		return -ENOTSUP;
	rc = tcia_get_series_size(src->tcia, uid, &size);
	if (rc < 0)
		return rc;
	*bytes = size.total_bytes;
	record_series_size_clear(&size);
	return *bytes > 0 ? 0 : -ENOENT;
}

/* ---- files --------------------------------------------------------------------------- */

bool source_files_one_by_one(const struct source *src)
{
	return src->kind == SOURCE_IDC;
}

/* Names from IDC go into URLs and paths: only what its ids are made of. */
static bool source_safe(const char *s, const char *extra)
{
	size_t i;

	if (!s || !*s || strlen(s) > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
			return false;
	return true;
}

char *source_where(const struct source *src, const char *raw)
{
	json_t *o, *row;
	const char *bucket, *uuid;
	char *where = NULL;

	if (src->kind != SOURCE_IDC || !raw)
		return NULL;
	o = json_loads(raw, 0, NULL);
	row = json_object_get(o, "idc");
	bucket = json_string_value(json_object_get(row, "aws_bucket"));
	uuid = json_string_value(json_object_get(row, "crdc_series_uuid"));
	if (!source_safe(bucket, ".-") || !source_safe(uuid, "-"))
		log_err("IDC: a series record gives no usable place for its files "
			"(aws_bucket, crdc_series_uuid)");
	else if (asprintf(&where, "%s/%s", bucket, uuid) < 0)
		where = NULL;
	json_decref(o);
	return where;
}

int source_get_zip(struct source *src, const char *uid, bool md5, int fd, uint64_t expected,
		   uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes)
{
	if (src->kind != SOURCE_NBIA)
		return -ENOTSUP;
	return tcia_get_image(src->tcia, uid, md5, fd, expected, max, progress, arg, bytes);
}

void source_files_clear(struct source_files *l)
{
	size_t i;

	for (i = 0; l->v && i < l->count; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Splits where ("bucket/uuid") into its parts, checked again: it comes from a manifest
 * on disk too. */
static int source_split(const char *where, char *bucket, size_t bsize, const char **uuid)
{
	const char *slash = where ? strchr(where, '/') : NULL;
	size_t n = slash ? (size_t)(slash - where) : 0;

	if (!slash || n == 0 || n >= bsize)
		return -EINVAL;
	memcpy(bucket, where, n);
	bucket[n] = '\0';
	*uuid = slash + 1;
	return source_safe(bucket, ".-") && source_safe(*uuid, "-") ? 0 : -EINVAL;
}

int source_list_files(struct source *src, const char *where, struct source_files *out)
{
	struct idc_listing l;
	char bucket[160];
	const char *uuid;
	size_t i, p;
	int rc;

	memset(out, 0, sizeof(*out));
	if (src->kind != SOURCE_IDC)
		return -ENOTSUP;
	rc = source_split(where, bucket, sizeof(bucket), &uuid);
	if (rc < 0)
		return rc;
	rc = idc_list_series(src->idc, bucket, uuid, &l, &out->strays);
	if (rc < 0)
		return rc;
	p = strlen(uuid) + 1;
	out->v = calloc(l.count + 1, sizeof(*out->v));
	if (!out->v)
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < l.count; i++) {
		const char *name = l.v[i].key + p; /* idc_list_series kept "<uuid>/<name>" */

		if (!source_safe(name, ".-_")) {
			out->strays++;
			continue;
		}
		out->v[out->count].name = strdup(name);
		out->v[out->count].size = l.v[i].size;
		memcpy(out->v[out->count].md5, l.v[i].md5, sizeof(l.v[i].md5));
		if (!out->v[out->count++].name)
			rc = -ENOMEM;
	}
	idc_listing_clear(&l);
	if (rc < 0)
		source_files_clear(out);
	return rc;
}

int source_fetch_file(struct source *src, const struct source_fetch *fe, uint64_t *id)
{
	struct idc_fetch ife = { NULL,    NULL,   fe->size,   fe->offset, fe->length,
				 fe->md5, fe->fd, fe->urgent, fe->done,   fe->arg };
	char bucket[160], *key = NULL;
	const char *uuid;
	int rc;

	if (src->kind != SOURCE_IDC)
		return -ENOTSUP;
	rc = source_split(fe->where, bucket, sizeof(bucket), &uuid);
	if (rc < 0 || !source_safe(fe->name, ".-_"))
		return -EINVAL;
	if (asprintf(&key, "%s/%s", uuid, fe->name) < 0)
		return -ENOMEM;
	ife.bucket = bucket;
	ife.key = key;
	rc = idc_fetch_object(src->idc, &ife, id);
	free(key);
	return rc;
}

void source_hurry(struct source *src, uint64_t id)
{
	if (src->kind == SOURCE_IDC)
		idc_hurry(src->idc, id);
}

void source_cancel_fetches(struct source *src)
{
	if (src->kind == SOURCE_IDC)
		idc_cancel_fetches(src->idc);
}
