/* SPDX-License-Identifier: MIT
 * tcia.h — the TCIA (NBIA v4) API: one function per endpoint, JSON answers parsed into
 * typed records. The only module that knows endpoint paths, parameter names and the
 * service's quirks (tcia-api.md); below it, http.c moves the bytes and metacache.c keeps
 * answers. Every record also keeps its object exactly as the service sent it (raw).
 */
#ifndef TCIAFS_TCIA_H
#define TCIAFS_TCIA_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct http;
struct metacache;
struct tcia;

/* Unknown integers (the attribute was missing or unreadable) are -1. Unknown strings are
 * NULL. `raw` is the object as returned, compact JSON text with the service's key order;
 * all strings are owned by the record and freed by the list's _clear function. */

struct tcia_value { /* getCollectionValues, getModalityValues, … */
	char *value;
	char *raw;
};

struct tcia_patient {     /* getPatient, NewPatientsInCollection, … */
	char *patient_id; /* "PatientId" (since 2023) or "PatientID" (older) */
	char *collection;
	char *raw;
};

struct tcia_study { /* getPatientStudy, NewStudiesInPatientCollection */
	char *study_uid;
	char *patient_id;
	char *collection;
	char *date; /* "YYYY-MM-DD HH:MM:SS.f" as sent */
	char *description;
	int64_t series_count;
	char *raw;
};

struct tcia_series { /* getSeries, getUpdatedSeries */
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

struct tcia_series_size {    /* getSeriesSize */
	int64_t total_bytes; /* sent as a string with a decimal point: "25273786.0" */
	int64_t object_count;
	char *raw;
};

/* A list of records of one kind, in the order the service sent them. */
#define TCIA_LIST(name, type)   \
	struct name {           \
		size_t count;   \
		struct type *v; \
	}
TCIA_LIST(tcia_values, tcia_value);
TCIA_LIST(tcia_patients, tcia_patient);
TCIA_LIST(tcia_studies, tcia_study);
TCIA_LIST(tcia_series_list, tcia_series);
TCIA_LIST(tcia_sizes, tcia_series_size);
#undef TCIA_LIST

void tcia_values_clear(struct tcia_values *l);
void tcia_patients_clear(struct tcia_patients *l);
void tcia_studies_clear(struct tcia_studies *l);
void tcia_series_list_clear(struct tcia_series_list *l);
/* Free one record's strings (another source, idc.c, builds these records too). */
void tcia_one_series_clear(struct tcia_series *s);
void tcia_patient_clear(struct tcia_patient *p);
void tcia_study_clear(struct tcia_study *s);
void tcia_sizes_clear(struct tcia_sizes *l);

/* Query filters: NULL means "not given". */
struct tcia_filter {
	const char *collection;
	const char *patient_id;
	const char *study_uid;
	const char *series_uid;
	const char *modality;
	const char *body_part;
	const char *manufacturer;
	const char *model;
};

/* Creates a client for the API at base_url (copied; a trailing slash is dropped). http is
 * borrowed and must outlive it; cache may be NULL (every call asks the service) and is
 * borrowed too. Returns 0 or -ENOMEM. */
int tcia_new(struct http *http, struct metacache *cache, const char *base_url, struct tcia **out);
void tcia_free(struct tcia *tcia);

/* Borrowed: the base URL in use as it may be shown (no user info), valid until
 * tcia_free(). */
const char *tcia_base_url(const struct tcia *tcia);

/* The endpoints. Each returns 0 and fills *out (the caller clears it; it is empty when
 * the service had no results), or -errno: from the request (see http.h), -EBADMSG for an
 * answer that is not the expected JSON, -ENOMEM, -EINVAL for a missing required filter. */
int tcia_get_collections(struct tcia *t, struct tcia_values *out);
int tcia_get_modalities(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out);
int tcia_get_body_parts(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out);
int tcia_get_manufacturers(struct tcia *t, const struct tcia_filter *f, struct tcia_values *out);
int tcia_get_patients(struct tcia *t, const char *collection, struct tcia_patients *out);
int tcia_get_patients_by_modality(struct tcia *t, const char *collection, const char *modality,
				  struct tcia_patients *out);
/* from_date is "MM-DD-YYYY", as v4 wants it. */
int tcia_get_new_patients(struct tcia *t, const char *collection, const char *from_date,
			  struct tcia_patients *out);
int tcia_get_studies(struct tcia *t, const struct tcia_filter *f, struct tcia_studies *out);
int tcia_get_new_studies(struct tcia *t, const char *collection, const char *patient_id,
			 const char *from_date, struct tcia_studies *out);
int tcia_get_series(struct tcia *t, const struct tcia_filter *f, struct tcia_series_list *out);
int tcia_get_updated_series(struct tcia *t, const char *from_date, struct tcia_series_list *out);
/* getSeriesSize: *out is filled, or -ENOENT when the service knows no such series. */
int tcia_get_series_size(struct tcia *t, const char *series_uid, struct tcia_series_size *out);
void tcia_series_size_clear(struct tcia_series_size *s);
/* getSOPInstanceUIDs, as a value list. */
int tcia_get_sop_uids(struct tcia *t, const char *series_uid, struct tcia_values *out);

/* Progress of a download: bytes so far, and the total when known (else 0); returns the
 * longest zip accepted now, as http_progress_fn. */
typedef uint64_t (*tcia_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* The entry of a getImageWithMD5Hash zip that lists its files' MD5s. */
#define TCIA_MD5_LIST "md5hashes.csv"

/* getImage, or with md5 getImageWithMD5Hash (the same zip plus TCIA_MD5_LIST): streams
 * the series zip into fd (appending at its current offset) with bounded memory; never
 * cached. Both name the files as NBIA numbers them while zipping (00000001.dcm, …):
 * NewFileNames=Yes is not asked, because getImageWithMD5Hash cannot give those names and
 * a series must be named alike either way. expected is the size to report as the total
 * (e.g. FileSize), 0 if unknown; a zip longer than max (0 = no limit) is cut off with
 * -EFBIG. Returns 0 with *bytes written, or -errno; on error fd may hold a partial body,
 * which the caller discards. */
int tcia_get_image(struct tcia *t, const char *series_uid, bool md5, int fd, uint64_t expected,
		   uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes);
/* getSingleImage: one DICOM file into fd, as tcia_get_image. */
int tcia_get_single_image(struct tcia *t, const char *series_uid, const char *sop_uid, int fd,
			  uint64_t *bytes);

/* Lists too big to hold (a whole collection's series), streamed: each record is built
 * as its element arrives and handed to each() (which may take its strings, leaving NULL;
 * the rest are freed after), so memory holds one element whatever the answer's size.
 * each() returns 0, or -errno to stop. restart() is called when a retry starts the
 * answer over: the consumer forgets what it was handed (0), or gives up (-errno). Never
 * cached. Returns 0, -errno from the request, -EBADMSG for an answer that is not the
 * expected JSON (records already handed on stay handed on), or each()'s error. */
enum tcia_kind {
	TCIA_PATIENTS = 0, /* getPatient: Collection */
	TCIA_STUDIES = 1,  /* getPatientStudy: Collection, PatientID, StudyInstanceUID */
	TCIA_SERIES = 2,   /* getSeries: those and SeriesInstanceUID */
};
typedef int (*tcia_each_fn)(void *arg, void *record);
typedef int (*tcia_restart_fn)(void *arg);
int tcia_each(struct tcia *t, enum tcia_kind kind, const struct tcia_filter *f, tcia_each_fn each,
	      tcia_restart_fn restart, void *arg);

/* The streaming parser underneath, for the unit tests and fuzzers: feed the body in
 * pieces of any size, then end. Each returns 0 or the first error (sticky). */
struct tcia_stream;
int tcia_stream_new(enum tcia_kind kind, tcia_each_fn each, void *arg, struct tcia_stream **out);
int tcia_stream_feed(struct tcia_stream *s, const char *data, size_t len);
int tcia_stream_end(struct tcia_stream *s);
void tcia_stream_reset(struct tcia_stream *s);
void tcia_stream_free(struct tcia_stream *s);

/* Parsers, exposed for the unit tests and fuzzers. body need not be NUL-terminated. An
 * empty or blank body, `[]` and `null` are "no results". */
int tcia_parse_values(const char *body, size_t len, const char *key, struct tcia_values *out);
int tcia_parse_patients(const char *body, size_t len, struct tcia_patients *out);
int tcia_parse_studies(const char *body, size_t len, struct tcia_studies *out);
int tcia_parse_series(const char *body, size_t len, struct tcia_series_list *out);
int tcia_parse_sizes(const char *body, size_t len, struct tcia_sizes *out);

#endif
