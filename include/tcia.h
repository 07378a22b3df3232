/* SPDX-License-Identifier: MIT
 * tcia.h — the TCIA (NBIA v4) client: one function per endpoint, JSON answers parsed into
 * the records of record.h. The only module that knows endpoint paths, parameter names and the
 * service's quirks (tcia-api.md); below it, http.c moves the bytes and metacache.c keeps
 * answers. Every record also keeps its object exactly as the service sent it (raw).
 */
#ifndef TCIAFS_TCIA_H
#define TCIAFS_TCIA_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "record.h"

struct http;
struct metacache;
struct tcia;

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
int tcia_get_collections(struct tcia *t, struct record_values *out);
int tcia_get_modalities(struct tcia *t, const struct record_filter *f, struct record_values *out);
int tcia_get_body_parts(struct tcia *t, const struct record_filter *f, struct record_values *out);
int tcia_get_manufacturers(struct tcia *t, const struct record_filter *f,
			   struct record_values *out);
int tcia_get_patients(struct tcia *t, const char *collection, struct record_patients *out);
int tcia_get_patients_by_modality(struct tcia *t, const char *collection, const char *modality,
				  struct record_patients *out);
/* from_date is "MM-DD-YYYY", as v4 wants it. */
int tcia_get_new_patients(struct tcia *t, const char *collection, const char *from_date,
			  struct record_patients *out);
int tcia_get_studies(struct tcia *t, const struct record_filter *f, struct record_studies *out);
int tcia_get_new_studies(struct tcia *t, const char *collection, const char *patient_id,
			 const char *from_date, struct record_studies *out);
int tcia_get_series(struct tcia *t, const struct record_filter *f, struct record_series_list *out);
int tcia_get_updated_series(struct tcia *t, const char *from_date, struct record_series_list *out);
/* getSeriesSize: *out is filled, or -ENOENT when the service knows no such series. */
int tcia_get_series_size(struct tcia *t, const char *series_uid, struct record_series_size *out);
/* getSOPInstanceUIDs, as a value list. */
int tcia_get_sop_uids(struct tcia *t, const char *series_uid, struct record_values *out);

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
int tcia_each(struct tcia *t, enum record_kind kind, const struct record_filter *f,
	      record_each_fn each, record_restart_fn restart, void *arg);

#endif
