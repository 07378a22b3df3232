/* SPDX-License-Identifier: MIT
 * libFuzzer target: IDC's answers. The first byte picks the parser: an /sql answer fed in
 * pieces of a size taken from the input (every row handed on has a series UID, a bucket
 * and a folder; the same input in one piece gives the same rows and the same verdict),
 * or an S3 listing
 * (every object has a key; a truncated page has a token). A row's record as sent is JSON.
 * Or one series row built twice, from its columns picked in place and from jansson's
 * object: whatever the picker reads gives the same record, or the same refusal.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "idc.h"
#include "record.h"
#include "../../src/idc_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_row(void *arg, struct record_series *s, const char *bucket, const char *uuid)
{
	json_t *raw;

	if (!s->series_uid || !s->raw || !bucket || !*bucket || !uuid || !*uuid)
		abort();
	/* The record as sent is JSON: every value printed into it escaped as it must be. */
	raw = json_loads(s->raw, 0, NULL);
	if (!json_is_object(raw))
		abort();
	json_decref(raw);
	(*(size_t *)arg)++;
	return 0;
}

static int answer(const char *text, size_t size, size_t piece, size_t *seen, size_t *rows)
{
	struct idc_answer *a;
	bool truncated;
	size_t off;
	int rc = 0;

	if (idc_answer_new(on_row, seen, &a) < 0)
		return -ENOMEM;
	for (off = 0; off < size && rc == 0; off += piece)
		rc = idc_answer_feed(a, text + off, size - off < piece ? size - off : piece);
	rc = idc_answer_end(a, rows, &truncated);
	idc_answer_free(a);
	return rc;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void one_row(const char *text, size_t size)
{
	struct record_series p, j;
	char *pb, *pu, *jb, *ju;
	int rp = idc_series_row(text, size, true, &p, &pb, &pu);
	int rj = idc_series_row(text, size, false, &j, &jb, &ju);

	if (rp != -EAGAIN && rp != rj)
		abort();
	if (rp == 0 &&
	    (!same(p.series_uid, j.series_uid) || !same(p.study_uid, j.study_uid) ||
	     !same(p.patient_id, j.patient_id) || !same(p.collection, j.collection) ||
	     !same(p.modality, j.modality) || !same(p.body_part, j.body_part) ||
	     !same(p.manufacturer, j.manufacturer) || !same(p.description, j.description) ||
	     !same(p.number, j.number) || !same(p.date, j.date) ||
	     !same(p.license_name, j.license_name) || !same(p.collection_uri, j.collection_uri) ||
	     !same(p.raw, j.raw) || p.image_count != j.image_count || p.file_size != j.file_size ||
	     !same(pb, jb) || !same(pu, ju)))
		abort();
	record_series_clear(&p);
	record_series_clear(&j);
	free(pb);
	free(pu);
	free(jb);
	free(ju);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	size_t i;

	if (size < 2)
		return 0;
	size--;
	if (data[0] & 1) {
		size_t seen1 = 0, seen2 = 0, rows1 = 0, rows2 = 0;
		int rc1 = answer(text, size, 1 + data[0] / 2, &seen1, &rows1);
		int rc2 = answer(text, size, size, &seen2, &rows2);

		/* An answer taken whole hands on each row it counts; a refused one may have
		 * counted the row it refused. */
		if (rc1 != rc2 || seen1 != seen2 || (rc1 == 0 && rows1 != seen1) ||
		    (rc1 && rc1 != -EBADMSG))
			abort();
	} else if (data[0] & 2) {
		one_row(text, size);
	} else {
		struct idc_listing l;
		int rc = idc_parse_listing(text, size, &l);

		if (rc == 0) {
			for (i = 0; i < l.count; i++)
				if (!l.v[i].key || !*l.v[i].key)
					abort();
			if (l.truncated && (!l.next || !*l.next))
				abort();
			idc_listing_clear(&l);
		} else if (rc != -EBADMSG || l.count || l.v) {
			abort();
		}
	}
	return 0;
}
