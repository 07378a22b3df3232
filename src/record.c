/* SPDX-License-Identifier: MIT
 * record.c — freeing the records every source builds (NBIA's parser, IDC's rows) and the
 * catalog and tree read.
 */
#include "record.h"

#include <stdlib.h>

void record_values_clear(struct record_values *l)
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

void record_patient_clear(struct record_patient *p)
{
	free(p->patient_id);
	free(p->collection);
	free(p->raw);
}

void record_patients_clear(struct record_patients *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		record_patient_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void record_study_clear(struct record_study *s)
{
	free(s->study_uid);
	free(s->patient_id);
	free(s->collection);
	free(s->date);
	free(s->description);
	free(s->raw);
}

void record_studies_clear(struct record_studies *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		record_study_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void record_series_clear(struct record_series *s)
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

void record_series_list_clear(struct record_series_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		record_series_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

void record_series_size_clear(struct record_series_size *s)
{
	free(s->raw);
	s->raw = NULL;
}

void record_sizes_clear(struct record_sizes *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		record_series_size_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}
