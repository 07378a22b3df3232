/* SPDX-License-Identifier: MIT
 * record.h — the records every source gives (NBIA's answers parsed by tcia.c, IDC's rows
 * by idc_row.c) and the catalog, the loads and the tree read: collections' value lists,
 * patients, studies, series and series sizes, with the filters that ask for them and the
 * callbacks that receive them one at a time. No module's client or lock is here.
 */
#ifndef TCIAFS_RECORD_H
#define TCIAFS_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* Unknown integers (the attribute was missing or unreadable) are -1. Unknown strings are
 * NULL. `raw` is the object as returned, compact JSON text with the service's key order;
 * all strings are owned by the record and freed by the list's _clear function. */

struct record_value { /* getCollectionValues, getModalityValues, … */
	char *value;
	char *raw;
};

struct record_patient {   /* getPatient, NewPatientsInCollection, … */
	char *patient_id; /* "PatientId" (since 2023) or "PatientID" (older) */
	char *collection;
	char *raw;
};

struct record_study { /* getPatientStudy, NewStudiesInPatientCollection */
	char *study_uid;
	char *patient_id;
	char *collection;
	char *date; /* "YYYY-MM-DD HH:MM:SS.f" as sent */
	char *description;
	int64_t series_count;
	char *raw;
};

struct record_series { /* getSeries, getUpdatedSeries */
	char *series_uid;
	char *study_uid;
	char *patient_id;
	char *collection;
	char *modality;
	char *body_part; /* BodyPartExamined */
	char *manufacturer;
	char *description;
	char *number;    /* SeriesNumber as text: an integer in practice, kept as sent */
	char *date;      /* SeriesDate */
	char *timestamp; /* TimeStamp, else DateReleased */
	int64_t image_count;
	int64_t file_size; /* sum of the DICOM files' sizes */
	char *license_name;
	char *license_uri;
	char *collection_uri; /* the collection's DOI */
	char *raw;
};

struct record_series_size {  /* getSeriesSize */
	int64_t total_bytes; /* sent as a string with a decimal point: "25273786.0" */
	int64_t object_count;
	char *raw;
};

/* A list of records of one kind, in the order the service sent them. */
#define RECORD_LIST(name, type) \
	struct name {           \
		size_t count;   \
		struct type *v; \
	}
RECORD_LIST(record_values, record_value);
RECORD_LIST(record_patients, record_patient);
RECORD_LIST(record_studies, record_study);
RECORD_LIST(record_series_list, record_series);
RECORD_LIST(record_sizes, record_series_size);
#undef RECORD_LIST

void record_values_clear(struct record_values *l);
void record_patients_clear(struct record_patients *l);
void record_studies_clear(struct record_studies *l);
void record_series_list_clear(struct record_series_list *l);
/* Free one record's strings (another source, idc.c, builds these records too). */
void record_series_clear(struct record_series *s);
void record_patient_clear(struct record_patient *p);
void record_study_clear(struct record_study *s);
void record_sizes_clear(struct record_sizes *l);
void record_series_size_clear(struct record_series_size *s);

/* Query filters: NULL means "not given". */
struct record_filter {
	const char *collection;
	const char *patient_id;
	const char *study_uid;
	const char *series_uid;
	const char *modality;
	const char *body_part;
	const char *manufacturer;
	const char *model;
};

/* Which records a streamed list gives, and what its filter must name. */
enum record_kind {
	RECORD_PATIENTS = 0, /* getPatient: Collection */
	RECORD_STUDIES = 1,  /* getPatientStudy: Collection, PatientID, StudyInstanceUID */
	RECORD_SERIES = 2,   /* getSeries: those and SeriesInstanceUID */
};
/* A streamed list hands each record (a struct record_patient, _study or _series, by kind)
 * to each(), which may take its strings; restart() says a retry starts the list over. */
typedef int (*record_each_fn)(void *arg, void *record);
typedef int (*record_restart_fn)(void *arg);

#endif
