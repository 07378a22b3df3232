/* SPDX-License-Identifier: MIT
 * source.h — where the archive comes from: NBIA (tcia.c; a series is one zip) or IDC
 * (idc.c; one object per DICOM file, listed with exact sizes). The tree and the store ask
 * here and do not care which one answers; records are those of tcia.h either way.
 */
#ifndef TCIAFS_SOURCE_H
#define TCIAFS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcia.h"

struct idc;
struct source;

enum source_kind {
	SOURCE_NBIA = 0,
	SOURCE_IDC = 1,
};

/* Over a client (borrowed: it must outlive the source). Return 0 or -ENOMEM. */
int source_new_nbia(struct tcia *tcia, struct source **out);
int source_new_idc(struct idc *idc, struct source **out);
void source_free(struct source *src);

enum source_kind source_kind(const struct source *src);
/* The metadata service's URL as it may be shown, and the source's name ("NBIA", "IDC"). */
const char *source_url(const struct source *src);
const char *source_name(const struct source *src);

/* ---- metadata ------------------------------------------------------------------------ */

/* A collection: api is what requests and records call it (NBIA's name, IDC's
 * collection_id), name what users know it by (its folder, before sanitising). */
struct source_coll {
	char *api;
	char *name;
};
struct source_colls {
	size_t count;
	struct source_coll *v;
};
int source_collections(struct source *src, struct source_colls *out);
void source_colls_clear(struct source_colls *c);

/* The release the source serves (IDC's idc_version, "v25"): a new string in *out, or
 * NULL for a source without releases (NBIA). A new release means what was loaded from
 * the old one is to be loaded again. */
int source_release(struct source *src, char **out);

/* The distinct values of a collection's facet (0 Modality, 1 BodyPartExamined,
 * 2 Manufacturer), as tcia_get_modalities & co. */
int source_facet(struct source *src, const char *coll, unsigned facet, struct record_values *out);

/* True when a collection's facet values are exactly those its series carry (IDC's come
 * from the same rows), so that a collection loaded in bulk knows them without asking;
 * NBIA's value lists may name values no series of the collection carries. */
bool source_facets_from_series(const struct source *src);

/* As tcia_each: patients, studies or series of a collection (or a patient of it, or a
 * series by UID), streamed. */
int source_each(struct source *src, enum record_kind kind, const struct record_filter *f,
		record_each_fn each, record_restart_fn restart, void *arg);

/* A collection's studies and series (bulk), or one patient's (f names it): each study
 * to study(), each series to series(), one call at a time. A patient's two NBIA answers
 * are asked for at once (a first look waits for one round trip, not two), so its studies
 * and series arrive in no order between them; a collection's come studies first. IDC
 * asks for a patient's series only and derives its studies from them. The first failure
 * stops the other answer and is what returns (its reason this thread's, log_reason). */
int source_each_studies_series(struct source *src, const struct record_filter *f,
			       record_each_fn study, record_each_fn series,
			       record_restart_fn restart, void *arg);

/* The series matching f (a series UID, in practice), in a list. */
int source_get_series(struct source *src, const struct record_filter *f,
		      struct record_series_list *out);

/* What series.json adds to the series' record (NBIA's getSeriesSize, as sent): a new
 * JSON object text in *raw, or -ENOENT when there is nothing to add. */
int source_series_extra(struct source *src, const char *uid, char **raw);

/* The series' total size as the archive reports it apart from its record (NBIA's
 * getSeriesSize, cached as series.json's is): 0 with *bytes, -ENOENT when it gives
 * none, -ENOTSUP where a record always has one (IDC), or -errno. */
int source_series_bytes(struct source *src, const char *uid, int64_t *bytes);

/* ---- files --------------------------------------------------------------------------- */

/* True when the source lists a series' files with exact sizes and serves them one by
 * one (IDC); false when a series comes whole, as a zip (NBIA). */
bool source_files_one_by_one(const struct source *src);

/* Where a series' files are, from its record as the catalog keeps it (raw): a new
 * string the store keeps in its manifest, NULL when the source needs none (NBIA) or the
 * record does not say (or says something unsafe: logged). */
char *source_where(const struct source *src, const char *raw);

/* The series as a zip (NBIA), as tcia_get_image; with md5 it holds TCIA_MD5_LIST. */
int source_get_zip(struct source *src, const char *uid, bool md5, int fd, uint64_t expected,
		   uint64_t max, tcia_progress_fn progress, void *arg, uint64_t *bytes);

struct source_file {
	char *name; /* a plain file name, safe as one path component */
	uint64_t size;
	char md5[33]; /* its MD5 when the source lists one (32 hex digits), else "" */
};
struct source_files {
	size_t count;
	struct source_file *v;
	size_t strays; /* objects that are not DICOM files, left out */
};
/* The DICOM files of the series at where, in name order. -ENOTSUP for NBIA. */
int source_list_files(struct source *src, const char *where, struct source_files *out);
void source_files_clear(struct source_files *l);

/* One file of the series at where, or a range of it, fetched in the background with many
 * others at once (IDC: up to idc_streams GETs in flight over shared connections): length
 * bytes at offset (offset 0 and length size: the whole file, checked against md5 when it
 * is given), written into fd at offset. done(arg, rc) is called once, on the fetching
 * thread: 0, or -errno with its log line (log_reason() there); -ECANCELED once
 * source_cancel_fetches was called. urgent: someone waits for it. *id names it for
 * source_hurry. Returns 0, or -errno (done is then not called; -ENOTSUP for NBIA). */
struct source_fetch {
	const char *where, *name;
	uint64_t size;
	uint64_t offset, length;
	const char *md5;
	int fd;
	bool urgent;
	void (*done)(void *arg, int rc);
	void *arg;
};
int source_fetch_file(struct source *src, const struct source_fetch *fe, uint64_t *id);
/* A queued fetch someone now waits for goes first. */
void source_hurry(struct source *src, uint64_t id);
/* Ends every background fetch with -ECANCELED, and every one asked for later. */
void source_cancel_fetches(struct source *src);

#endif
