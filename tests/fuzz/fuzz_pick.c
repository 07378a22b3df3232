/* SPDX-License-Identifier: MIT
 * libFuzzer target: records made from members picked in place (tcia_pick.c) against
 * records made by jansson. Whatever tcia_pick reads, jansson loads as an object, and the
 * patient, study and series records of both are field for field the same. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../src/tcia_int.h"
#include "jsonpick.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_text(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
		abort();
}

static void same_series(const struct record_series *a, const struct record_series *b)
{
	same_text(a->series_uid, b->series_uid);
	same_text(a->study_uid, b->study_uid);
	same_text(a->patient_id, b->patient_id);
	same_text(a->collection, b->collection);
	same_text(a->modality, b->modality);
	same_text(a->body_part, b->body_part);
	same_text(a->manufacturer, b->manufacturer);
	same_text(a->description, b->description);
	same_text(a->number, b->number);
	same_text(a->date, b->date);
	same_text(a->timestamp, b->timestamp);
	same_text(a->license_name, b->license_name);
	same_text(a->license_uri, b->license_uri);
	same_text(a->collection_uri, b->collection_uri);
	same_text(a->raw, b->raw);
	if (a->image_count != b->image_count || a->file_size != b->file_size)
		abort();
}

static void same_study(const struct record_study *a, const struct record_study *b)
{
	same_text(a->study_uid, b->study_uid);
	same_text(a->patient_id, b->patient_id);
	same_text(a->collection, b->collection);
	same_text(a->date, b->date);
	same_text(a->description, b->description);
	same_text(a->raw, b->raw);
	if (a->series_count != b->series_count)
		abort();
}

static void same_patient(const struct record_patient *a, const struct record_patient *b)
{
	same_text(a->patient_id, b->patient_id);
	same_text(a->collection, b->collection);
	same_text(a->raw, b->raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct tcia_as_sent as = { text, size };
	struct record_series se[2] = { 0 };
	struct record_study st[2] = { 0 };
	struct record_patient pa[2] = { 0 };
	struct jsonpick *p;
	json_t *obj;
	int rc;

	if (tcia_picked_new(&p) < 0)
		return 0;
	rc = jsonpick_read(p, text, size);
	if (rc == -EAGAIN || rc == -ENOMEM)
		goto out_picked;
	obj = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if (rc != 0 || !json_is_object(obj))
		abort(); /* read here, refused by jansson */
	if (tcia_one_series(&(struct tcia_src){ NULL, p }, &se[0], &as) !=
		    tcia_one_series(&(struct tcia_src){ obj, NULL }, &se[1], &as) ||
	    tcia_one_study(&(struct tcia_src){ NULL, p }, &st[0], &as) !=
		    tcia_one_study(&(struct tcia_src){ obj, NULL }, &st[1], &as) ||
	    tcia_one_patient(&(struct tcia_src){ NULL, p }, &pa[0], &as) !=
		    tcia_one_patient(&(struct tcia_src){ obj, NULL }, &pa[1], &as))
		abort();
	same_series(&se[0], &se[1]);
	same_study(&st[0], &st[1]);
	same_patient(&pa[0], &pa[1]);
	for (rc = 0; rc < 2; rc++) {
		record_series_clear(&se[rc]);
		record_study_clear(&st[rc]);
		record_patient_clear(&pa[rc]);
	}
	json_decref(obj);
out_picked:
	jsonpick_free(p);
	return 0;
}
