/* SPDX-License-Identifier: MIT
 * tcia-query — calls one tcia.c endpoint function and prints the typed records as JSON,
 * so integration tests (and developers) can drive the client against the fake server.
 * Exit status: 0, or the errno the call returned (e.g. 5 EIO, 74 EBADMSG, 110 ETIMEDOUT).
 *
 *   tcia-query [-a TOKEN_FILE] [-n REPEAT [-w MS]] [-c CACHE_DIR] [-t TTL] [-T TIMEOUT]
 *              [-r RETRIES] [-j THREADS] [-o] URL ENDPOINT [Name=value ...]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "metacache.h"
#include "tcia.h"

struct query {
	struct tcia *tcia;
	const char *endpoint;
	int argc;
	char **argv;
	int rc;
	json_t *out;
};

static const char *arg(const struct query *q, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < q->argc; i++)
		if (strncmp(q->argv[i], name, n) == 0 && q->argv[i][n] == '=')
			return q->argv[i] + n + 1;
	return NULL;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *raw_json(const char *raw)
{
	json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);

	return v ? v : json_string("<unparseable raw>");
}

static json_t *values_json(const struct record_values *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->count; i++)
		json_array_append_new(a, json_pack("{s:s,s:o}", "value", l->v[i].value, "raw",
						   raw_json(l->v[i].raw)));
	return a;
}

static json_t *patients_json(const struct record_patients *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->count; i++)
		json_array_append_new(a, json_pack("{s:o,s:o,s:o}", "patient_id",
						   str_or_null(l->v[i].patient_id), "collection",
						   str_or_null(l->v[i].collection), "raw",
						   raw_json(l->v[i].raw)));
	return a;
}

static json_t *studies_json(const struct record_studies *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->count; i++) {
		const struct record_study *s = &l->v[i];

		json_array_append_new(
			a, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o}", "study_uid",
				     str_or_null(s->study_uid), "patient_id",
				     str_or_null(s->patient_id), "collection",
				     str_or_null(s->collection), "date", str_or_null(s->date),
				     "description", str_or_null(s->description), "series_count",
				     (json_int_t)s->series_count, "raw", raw_json(s->raw)));
	}
	return a;
}

static json_t *series_json(const struct record_series_list *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->count; i++) {
		const struct record_series *s = &l->v[i];
		json_t *o = json_object();

		json_object_set_new(o, "series_uid", str_or_null(s->series_uid));
		json_object_set_new(o, "study_uid", str_or_null(s->study_uid));
		json_object_set_new(o, "patient_id", str_or_null(s->patient_id));
		json_object_set_new(o, "collection", str_or_null(s->collection));
		json_object_set_new(o, "modality", str_or_null(s->modality));
		json_object_set_new(o, "description", str_or_null(s->description));
		json_object_set_new(o, "number", str_or_null(s->number));
		json_object_set_new(o, "date", str_or_null(s->date));
		json_object_set_new(o, "timestamp", str_or_null(s->timestamp));
		json_object_set_new(o, "image_count", json_integer(s->image_count));
		json_object_set_new(o, "file_size", json_integer(s->file_size));
		json_object_set_new(o, "raw", raw_json(s->raw));
		json_array_append_new(a, o);
	}
	return a;
}

static void filter_from_args(const struct query *q, struct record_filter *f)
{
	f->collection = arg(q, "Collection");
	f->patient_id = arg(q, "PatientID");
	f->study_uid = arg(q, "StudyInstanceUID");
	f->series_uid = arg(q, "SeriesInstanceUID");
	f->modality = arg(q, "Modality");
	f->body_part = arg(q, "BodyPartExamined");
	f->manufacturer = arg(q, "Manufacturer");
	f->model = arg(q, "ManufacturerModelName");
}

static uint64_t progress(void *a, uint64_t done, uint64_t total)
{
	uint64_t *last = a;

	*last = done;
	(void)total;
	return 0;
}

/* Downloads into OUT.part and renames it to OUT only when the whole body arrived. */
static int download(struct query *q, bool single)
{
	const char *out = arg(q, "out");
	const char *uid = arg(q, "SeriesInstanceUID");
	char part[4096];
	uint64_t bytes = 0, last = 0;
	int fd, rc;

	if (!out || !uid)
		return -EINVAL;
	snprintf(part, sizeof(part), "%s.part", out);
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	if (single)
		rc = tcia_get_single_image(q->tcia, uid, arg(q, "SOPInstanceUID"), fd, &bytes);
	else
		rc = tcia_get_image(q->tcia, uid, false, fd, 0, 0, progress, &last, &bytes);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(part, out) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(part);
		return rc;
	}
	q->out = json_pack("{s:I,s:I}", "bytes", (json_int_t)bytes, "progress_last",
			   (json_int_t)last);
	return 0;
}

static int run_query(struct query *q)
{
	struct record_filter f = { 0 };
	const char *ep = q->endpoint;
	int rc;

	filter_from_args(q, &f);
	if (!strcmp(ep, "collections") || !strcmp(ep, "modalities") || !strcmp(ep, "bodyparts") ||
	    !strcmp(ep, "manufacturers") || !strcmp(ep, "sops")) {
		struct record_values l;

		if (!strcmp(ep, "collections"))
			rc = tcia_get_collections(q->tcia, &l);
		else if (!strcmp(ep, "modalities"))
			rc = tcia_get_modalities(q->tcia, &f, &l);
		else if (!strcmp(ep, "bodyparts"))
			rc = tcia_get_body_parts(q->tcia, &f, &l);
		else if (!strcmp(ep, "manufacturers"))
			rc = tcia_get_manufacturers(q->tcia, &f, &l);
		else
			rc = tcia_get_sop_uids(q->tcia, f.series_uid, &l);
		if (rc == 0)
			q->out = values_json(&l);
		record_values_clear(&l);
		return rc;
	}
	if (!strcmp(ep, "patients") || !strcmp(ep, "newpatients") ||
	    !strcmp(ep, "patientsbymodality")) {
		struct record_patients l;

		if (!strcmp(ep, "patients"))
			rc = tcia_get_patients(q->tcia, f.collection, &l);
		else if (!strcmp(ep, "newpatients"))
			rc = tcia_get_new_patients(q->tcia, f.collection, arg(q, "fromDate"), &l);
		else
			rc = tcia_get_patients_by_modality(q->tcia, f.collection, f.modality, &l);
		if (rc == 0)
			q->out = patients_json(&l);
		record_patients_clear(&l);
		return rc;
	}
	if (!strcmp(ep, "studies") || !strcmp(ep, "newstudies")) {
		struct record_studies l;

		if (!strcmp(ep, "studies"))
			rc = tcia_get_studies(q->tcia, &f, &l);
		else
			rc = tcia_get_new_studies(q->tcia, f.collection, f.patient_id,
						  arg(q, "fromDate"), &l);
		if (rc == 0)
			q->out = studies_json(&l);
		record_studies_clear(&l);
		return rc;
	}
	if (!strcmp(ep, "series") || !strcmp(ep, "updated")) {
		struct record_series_list l;

		if (!strcmp(ep, "series"))
			rc = tcia_get_series(q->tcia, &f, &l);
		else
			rc = tcia_get_updated_series(q->tcia, arg(q, "fromDate"), &l);
		if (rc == 0)
			q->out = series_json(&l);
		record_series_list_clear(&l);
		return rc;
	}
	if (!strcmp(ep, "size")) {
		struct record_series_size s;

		rc = tcia_get_series_size(q->tcia, f.series_uid, &s);
		if (rc == 0)
			q->out = json_pack("{s:I,s:I,s:o}", "total_bytes",
					   (json_int_t)s.total_bytes, "object_count",
					   (json_int_t)s.object_count, "raw", raw_json(s.raw));
		record_series_size_clear(&s);
		return rc;
	}
	if (!strcmp(ep, "image"))
		return download(q, false);
	if (!strcmp(ep, "single"))
		return download(q, true);
	fprintf(stderr, "tcia-query: unknown endpoint %s\n", ep);
	return -EINVAL;
}

static void *thread_main(void *a)
{
	struct query *q = a;

	q->rc = run_query(q);
	return NULL;
}

int main(int argc, char **argv)
{
	struct http_opts ho = { .connect_timeout = 10, .stall_timeout = 10, .retries = 2 };
	struct metacache_opts mo = { .ttl = 3600 };
	struct metacache *mc = NULL;
	struct auth *auth = NULL;
	const char *token_file = NULL;
	int repeat = 1, round;
	long wait_ms = 0;
	struct http *http = NULL;
	struct tcia *tcia = NULL;
	struct query *qs;
	int threads = 1, opt, i, rc, ok = 0;
	bool use_cache = false;

	while ((opt = getopt(argc, argv, "a:n:w:c:t:T:r:j:o")) != -1) {
		switch (opt) {
		case 'a':
			token_file = optarg;
			break;
		case 'n':
			repeat = atoi(optarg);
			break;
		case 'w':
			wait_ms = atol(optarg);
			break;
		case 'c':
			mo.dir = optarg;
			use_cache = true;
			break;
		case 't':
			mo.ttl = atol(optarg);
			use_cache = true;
			break;
		case 'T':
			ho.connect_timeout = ho.stall_timeout = atol(optarg);
			break;
		case 'r':
			ho.retries = atoi(optarg);
			break;
		case 'j':
			threads = atoi(optarg);
			use_cache = true;
			break;
		case 'o':
			mo.offline = true;
			use_cache = true;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 2 || threads < 1) {
		fprintf(stderr, "usage: tcia-query [-c DIR] [-t TTL] [-T TIMEOUT] [-r RETRIES] "
				"[-j THREADS] [-o] URL ENDPOINT [Name=value ...]\n");
		return 2;
	}
	log_init(LOG_LEVEL_INFO, false);
	if (http_global_init() < 0 || http_new(&ho, &http) < 0)
		return ENOMEM;
	if (token_file) {
		rc = auth_new_from_file(http, token_file, &auth);
		if (rc < 0)
			return -rc;
		auth_attach(auth, http);
	}
	if (use_cache && metacache_new(&mo, &mc) < 0)
		return EIO;
	if (tcia_new(http, mc, argv[optind], &tcia) < 0)
		return ENOMEM;
	qs = calloc((size_t)threads, sizeof(*qs));
	if (!qs)
		return ENOMEM;
	for (i = 0; i < threads; i++)
		qs[i] = (struct query){
			tcia, argv[optind + 1], argc - optind - 2, argv + optind + 2, 0, NULL
		};
	if (threads == 1) {
		for (round = 0; round < repeat; round++) {
			if (round > 0 && wait_ms > 0)
				usleep((useconds_t)wait_ms * 1000);
			json_decref(qs[0].out);
			qs[0].out = NULL;
			thread_main(&qs[0]);
			if (qs[0].rc < 0)
				break;
		}
	} else {
		pthread_t *t = calloc((size_t)threads, sizeof(*t));

		for (i = 0; t && i < threads; i++)
			pthread_create(&t[i], NULL, thread_main, &qs[i]);
		for (i = 0; t && i < threads; i++)
			pthread_join(t[i], NULL);
		free(t);
	}
	rc = qs[0].rc;
	for (i = 0; i < threads; i++) {
		if (qs[i].rc == 0)
			ok++;
		else
			rc = qs[i].rc;
	}
	if (rc == 0) {
		json_t *res = json_pack("{s:i,s:I,s:o}", "ok_threads", ok, "token_requests",
					(json_int_t)(auth ? auth_token_requests(auth) : 0),
					"result", qs[0].out);

		json_dumpf(res, stdout, JSON_INDENT(1) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(res);
		qs[0].out = NULL;
	} else {
		fprintf(stderr, "tcia-query: %s: %s\n", argv[optind + 1], strerror(-rc));
	}
	for (i = 0; i < threads; i++)
		json_decref(qs[i].out);
	free(qs);
	tcia_free(tcia);
	metacache_free(mc);
	http_free(http);
	auth_free(auth);
	http_global_cleanup();
	return rc < 0 ? -rc : 0;
}
