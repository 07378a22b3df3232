/* SPDX-License-Identifier: MIT
 * idc_int.h — what idc.c (the SQL API) and idc_bucket.c (the public buckets) share: the
 * handle. Not for other modules.
 */
#ifndef TCIAFS_IDC_INT_H
#define TCIAFS_IDC_INT_H

struct http;

struct idc {
	struct http *http;
	char *api;
	char *files;		/* with {bucket} */
};

#endif
