/* SPDX-License-Identifier: MIT
 * idc.h — NCI's Imaging Data Commons (idc-api.md): its API v3 (/version, /collections,
 * SQL over the `index` table) and its public buckets (S3 listings, objects). The only
 * module that knows IDC's request shapes and answer formats; rows become the records of
 * tcia.h, so that what is above does not care which source filled it.
 */
#ifndef TCIAFS_IDC_H
#define TCIAFS_IDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct http;
struct idc;

/* Where IDC lives: the API's base (…/v3) and the buckets' URL with a {bucket}
 * placeholder (https://{bucket}.s3.amazonaws.com); both copied. */
struct idc_opts {
	const char *api;
	const char *files;
	int streams; /* object GETs at once; 0 = IDC_STREAMS_DEFAULT */
};

#define IDC_STREAMS_DEFAULT 16

#define IDC_API_DEFAULT "https://api.imaging.datacommons.cancer.gov/v3"
#define IDC_FILES_DEFAULT "https://{bucket}.s3.amazonaws.com"

/* Creates a client (http borrowed, must outlive it). Returns 0, -EINVAL when files has no
 * {bucket}, or -ENOMEM. */
int idc_new(struct http *http, const struct idc_opts *opts, struct idc **out);
void idc_free(struct idc *t);

/* ---- SQL: every value is a literal made here, never pasted ------------------------- */

/* s as an SQL string literal: quoted, each ' doubled. A new string, or NULL (out of
 * memory). */
char *idc_sql_quote(const char *s);

/* A page's key: PatientID, then StudyInstanceUID, then SeriesInstanceUID (as many as the
 * kind has). */
#define IDC_KEYS_MAX 3

/* Which series to ask for: a collection's, a patient's of it, or one by UID; keyset
 * paging after the key `after` (the last row's, after[0] NULL: from the start), at most
 * limit rows. */
struct idc_query {
	const char *collection_id;
	const char *patient_id;
	const char *series_uid;
	const char *after[IDC_KEYS_MAX];
	unsigned limit;
};

/* The SELECT for q, as one string (caller frees): the series, or the patients or studies
 * derived from them (grouped by IDC), in patients' order: keyed for paging by PatientID,
 * then StudyInstanceUID, then SeriesInstanceUID. Returns 0, -EINVAL when q names nothing,
 * or -ENOMEM. */
int idc_each_sql(enum record_kind kind, const struct idc_query *q, char **sql);
int idc_series_sql(const struct idc_query *q, char **sql);

/* A series row, as the records above take it: s (its strings may be taken, leaving
 * NULL), and where its files are. Returns 0, or -errno to stop. */
typedef int (*idc_series_fn)(void *arg, struct record_series *s, const char *bucket,
			     const char *uuid);

/* The answer of /sql parsed as it arrives, row by row (memory holds one row whatever
 * its size). Feed the body in pieces, then end; *rows and *truncated say what came. */
struct idc_answer;
int idc_answer_new(idc_series_fn each, void *arg, struct idc_answer **out);
int idc_answer_feed(struct idc_answer *a, const char *data, size_t len);
int idc_answer_end(struct idc_answer *a, size_t *rows, bool *truncated);
void idc_answer_reset(struct idc_answer *a);
void idc_answer_free(struct idc_answer *a);

/* Asks for the series of q, page by page (keyset, pages of limit rows; 0 = 10,000, IDC's
 * most) until the last, handing on each row. Returns 0, or -errno (-EBADMSG for an answer
 * that is not IDC's). */
int idc_series(struct idc *t, const struct idc_query *q, idc_series_fn each, void *arg);

/* As tcia_each: the records of q of one kind (struct record_patient, record_study or
 * record_series, each keeping the seed's names and the row as sent under "idc"), page by
 * page; each() may take a record's strings. A retry hands a page's rows on again. */
int idc_each(struct idc *t, enum record_kind kind, const struct idc_query *q, record_each_fn each,
	     void *arg);

/* A patient's studies and series from one query (q names the collection and the
 * patient): its series rows, the studies derived from them as idc_each's grouped query
 * would send them, then each() for every study, then for every series. Returns as
 * idc_each; -EINVAL when q names no patient. */
int idc_each_patient(struct idc *t, const struct idc_query *q, record_each_fn study,
		     record_each_fn series, void *arg);

/* ---- the service ------------------------------------------------------------------- */

/* The release IDC serves ("v25"): a new one means the catalog is to be refreshed. A new
 * string in *version. */
int idc_version(struct idc *t, char **version);

/* The collections: value is collection_name (the folder's name), raw the record as
 * sent; the id (collection_id) is in ids, in the same order. */
struct idc_collections {
	struct record_values names;
	char **ids;
};
int idc_collections(struct idc *t, struct idc_collections *out);
int idc_parse_collections(const char *body, size_t len, struct idc_collections *out);
void idc_collections_clear(struct idc_collections *c);

/* The distinct values of a collection's facet (0 Modality, 1 BodyPartExamined,
 * 2 Manufacturer), sorted, NULL and empty left out; each raw is {"<facet>": value}, as
 * NBIA sends them. idc_values_sql is its statement (caller frees). */
int idc_values(struct idc *t, const char *collection_id, unsigned facet, struct record_values *out);
int idc_values_sql(const char *collection_id, unsigned facet, char **sql);

/* The API's base URL, as given. */
const char *idc_api_url(const struct idc *t);

/* ---- the buckets ------------------------------------------------------------------- */

struct idc_object {
	char *key;
	uint64_t size;
	/* The ETag when it is a plain upload's MD5 (32 hex digits, lower case), else "": a
	 * multipart upload's ("<hex>-<parts>") is no digest of the content. */
	char md5[33];
};

/* One page of an S3 list-type=2 listing. */
struct idc_listing {
	size_t count;
	struct idc_object *v;
	bool truncated;
	char *next; /* NextContinuationToken, when truncated */
};

/* Parses a page with a real XML parser (expat); entity declarations are refused (no
 * XML bombs), sizes must be plain decimal numbers. Returns 0, -EBADMSG or -ENOMEM. */
int idc_parse_listing(const char *body, size_t len, struct idc_listing *out);
void idc_listing_clear(struct idc_listing *l);

/* Every DICOM object of a series folder (bucket, crdc_series_uuid), page after page, in
 * key order; objects that are not .dcm are left out and counted in *strays. */
int idc_list_series(struct idc *t, const char *bucket, const char *uuid, struct idc_listing *out,
		    size_t *strays);

/* The URL of an object (caller frees), or NULL. */
char *idc_object_url(const struct idc *t, const char *bucket, const char *key);

/* Fetches one object into fd (at its current offset): exactly size bytes, the size its
 * listing gave. Longer is cut off and refused (-EFBIG), shorter refused (-EIO), each
 * with a log line; fd may then hold part of it, which the caller discards. progress may
 * be NULL. */
int idc_get_object(struct idc *t, const char *bucket, const char *key, uint64_t size, int fd,
		   uint64_t (*progress)(void *arg, uint64_t done, uint64_t total), void *arg);

/* One object, or one range of it (length bytes at offset; length == size with offset 0
 * for the whole), fetched in the background with many others at once (the client's
 * fleet): written into fd at offset, checked against its length, a range against its
 * Content-Range, a whole object against md5 when given ("" or NULL: none). done(arg, rc)
 * is called once, on the fleet's thread (see http_job). *id names it for idc_hurry.
 * Returns 0, or -errno and done is not called. */
struct idc_fetch {
	const char *bucket, *key;
	uint64_t size; /* the object's, as listed */
	uint64_t offset, length;
	const char *md5;
	int fd;
	bool urgent;
	void (*done)(void *arg, int rc);
	void *arg;
};
int idc_fetch_object(struct idc *t, const struct idc_fetch *fe, uint64_t *id);
void idc_hurry(struct idc *t, uint64_t id);
/* Ends every background fetch with -ECANCELED (for shutting down). */
void idc_cancel_fetches(struct idc *t);

#endif
