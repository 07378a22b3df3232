/* SPDX-License-Identifier: MIT
 * idc-query — drives idc.c against an IDC (the fake one in tests) and prints what it got
 * as JSON, so that integration tests hold the client to the service over real HTTP.
 * Exit status: 0, or the errno the call returned.
 *
 *   idc-query [-r RETRIES] API FILES version | collections
 *   idc-query [-r RETRIES] API FILES series [collection=ID] [patient=ID] [uid=UID] [limit=N]
 *   idc-query [-r RETRIES] API FILES patients|studies collection=ID [patient=ID] [limit=N]
 *   idc-query [-r RETRIES] API FILES list BUCKET CRDC_SERIES_UUID
 *   idc-query [-r RETRIES] API FILES get BUCKET KEY SIZE OUTFILE
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "idc.h"
#include "log.h"

static const char *arg(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < argc; i++)
		if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

static int on_series(void *arg, struct record_series *s, const char *bucket, const char *uuid)
{
	json_t *rows = arg;
	json_t *raw = json_loads(s->raw, 0, NULL);

	json_array_append_new(rows,
			      json_pack("{s:s,s:s,s:s,s:s,s:s?,s:I,s:I,s:s,s:s,s:o}", "series_uid",
					s->series_uid, "study_uid", s->study_uid, "patient_id",
					s->patient_id, "collection", s->collection, "body_part",
					s->body_part, "image_count", (json_int_t)s->image_count,
					"file_size", (json_int_t)s->file_size, "bucket", bucket,
					"uuid", uuid, "raw", raw ? raw : json_null()));
	return 0;
}

struct records {
	json_t *rows;
	enum record_kind kind;
};

/* A patient's or a study's record, with its raw (the seed's names, the row as sent). */
static int on_record(void *arg, void *record)
{
	struct records *r = arg;

	if (r->kind == RECORD_PATIENTS) {
		struct record_patient *p = record;

		json_array_append_new(r->rows, json_pack("{s:s,s:s,s:o}", "patient_id",
							 p->patient_id, "collection", p->collection,
							 "raw", json_loads(p->raw, 0, NULL)));
	} else {
		struct record_study *st = record;

		json_array_append_new(r->rows,
				      json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I,s:o}", "study_uid",
						st->study_uid, "patient_id", st->patient_id,
						"collection", st->collection, "date", st->date,
						"description", st->description, "series_count",
						(json_int_t)st->series_count, "raw",
						json_loads(st->raw, 0, NULL)));
	}
	return 0;
}

static int run(struct idc *t, const char *what, int argc, char **argv, json_t **out)
{
	int rc = -EINVAL;

	if (strcmp(what, "version") == 0) {
		char *v;

		rc = idc_version(t, &v);
		if (rc == 0)
			*out = json_string(v);
		free(v);
	} else if (strcmp(what, "collections") == 0) {
		struct idc_collections c;
		size_t i;

		rc = idc_collections(t, &c);
		if (rc == 0) {
			*out = json_array();
			for (i = 0; i < c.names.count; i++)
				json_array_append_new(*out, json_pack("{s:s,s:s}", "id", c.ids[i],
								      "name", c.names.v[i].value));
			idc_collections_clear(&c);
		}
	} else if (strcmp(what, "series") == 0) {
		const char *limit = arg(argc, argv, "limit");
		struct idc_query q = { .collection_id = arg(argc, argv, "collection"),
				       .patient_id = arg(argc, argv, "patient"),
				       .series_uid = arg(argc, argv, "uid"),
				       .limit = limit ? (unsigned)atoi(limit) : 0 };

		*out = json_array();
		rc = idc_series(t, &q, on_series, *out);
	} else if (strcmp(what, "patients") == 0 || strcmp(what, "studies") == 0) {
		const char *limit = arg(argc, argv, "limit");
		struct idc_query q = { .collection_id = arg(argc, argv, "collection"),
				       .patient_id = arg(argc, argv, "patient"),
				       .limit = limit ? (unsigned)atoi(limit) : 0 };

		struct records r = { json_array(),
				     what[0] == 'p' ? RECORD_PATIENTS : RECORD_STUDIES };

		*out = r.rows;
		rc = idc_each(t, r.kind, &q, on_record, &r);
	} else if (strcmp(what, "get") == 0 && argc == 4) {
		int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		rc = fd < 0 ? -errno
			    : idc_get_object(t, argv[0], argv[1], strtoull(argv[2], NULL, 10), fd,
					     NULL, NULL);
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			*out = json_string(argv[3]);
	} else if (strcmp(what, "list") == 0 && argc == 2) {
		struct idc_listing l;
		size_t strays, i;

		rc = idc_list_series(t, argv[0], argv[1], &l, &strays);
		if (rc == 0) {
			json_t *objs = json_array();

			for (i = 0; i < l.count; i++)
				json_array_append_new(objs,
						      json_pack("{s:s,s:I}", "key", l.v[i].key,
								"size", (json_int_t)l.v[i].size));
			*out = json_pack("{s:o,s:I}", "objects", objs, "strays",
					 (json_int_t)strays);
			idc_listing_clear(&l);
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct http_opts ho = { .connect_timeout = 5, .stall_timeout = 10, .retries = 2 };
	struct idc_opts io;
	struct http *http = NULL;
	struct idc *t = NULL;
	json_t *out = NULL;
	int opt, rc;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r')
			return EINVAL;
		ho.retries = atoi(optarg);
	}
	if (argc - optind < 3) {
		fprintf(stderr, "usage: idc-query [-r RETRIES] API FILES version|collections|"
				"series [k=v...]|list BUCKET UUID\n");
		return EINVAL;
	}
	io.api = argv[optind];
	io.files = argv[optind + 1];
	log_init(LOG_LEVEL_INFO, false);
	if (http_global_init() < 0 || http_new(&ho, &http) < 0)
		return EIO;
	rc = idc_new(http, &io, &t);
	if (rc == 0)
		rc = run(t, argv[optind + 2], argc - optind - 3, argv + optind + 3, &out);
	if (rc == 0 && out) {
		char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);

		puts(text ? text : "null");
		free(text);
	}
	json_decref(out);
	idc_free(t);
	http_free(http);
	http_global_cleanup();
	return rc < 0 ? -rc : 0;
}
