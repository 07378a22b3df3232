/* SPDX-License-Identifier: MIT
 * idc_int.h — what idc.c (the SQL API) and idc_bucket.c (the public buckets) share: the
 * handle; and for the tests, one row's record. Not for other modules.
 */
#ifndef TCIAFS_IDC_INT_H
#define TCIAFS_IDC_INT_H

#include <stdbool.h>
#include <stddef.h>

struct http;
struct tcia_series;

/* One series row's record, built from its columns picked in place (picked) or from
 * jansson's object, for the tests that hold the two to one record: 0, -EAGAIN when the
 * picker leaves the row to jansson, -EBADMSG, -ENOMEM. The caller clears s (zeroed
 * first) and frees *bucket and *uuid whatever the answer. */
int idc_series_row(const char *text, size_t len, bool picked, struct tcia_series *s,
		   char **bucket, char **uuid);

struct idc {
	struct http *http;
	char *api;
	char *files;		/* with {bucket} */
};

#endif
