/* SPDX-License-Identifier: MIT
 * unzip.h — safe extraction of a series zip with libzip: flat names only, no links or
 * devices, no duplicates, CRCs checked, and the bytes written capped whatever the zip
 * claims, so a hostile or broken archive fails cleanly instead of escaping or filling
 * the disk. Knows nothing of TCIA beyond "DICOM files plus a LICENSE".
 */
#ifndef TCIAFS_UNZIP_H
#define TCIAFS_UNZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md5.h"

struct unzip_limits {
	int64_t expect_count; /* DICOM entries expected (all but LICENSE); -1 unknown */
	int64_t expect_bytes; /* their total size; -1 unknown */
	uint64_t max_bytes;   /* hard cap on everything written; 0 = derive from the above */
	int threads;          /* extraction threads; 0 or 1 = one */
	/* The name of an entry that lists every other entry's MD5 (a header line, then
	 * "<name>,<32 hex digits>" per file, fields optionally in double quotes): then
	 * every DICOM entry must be listed and match, and the list itself is not
	 * extracted. NULL: none is expected, and an entry of any name is a file. */
	const char *md5_list;
};

struct unzip_entry {
	char *name;
	uint64_t size;
	char md5[MD5_HEX_LEN + 1]; /* as md5_list gave it; "" when not listed */
};

struct unzip_result {
	size_t count;
	struct unzip_entry *v; /* in the zip's order */
	size_t dicom_count;
	uint64_t dicom_bytes;
	size_t verified; /* entries whose bytes matched their listed MD5 */
};

/* Checks the zip at zip_path (libzip's consistency check) and extracts every entry into
 * the directory dir_fd, which must be empty. Returns 0 and fills *out (clear it with
 * unzip_result_clear), or -errno with one log line naming `what` and the reason: -EIO for
 * a damaged, empty, hostile or mismatching zip or one that expands past the cap (or,
 * with md5_list, a file its list does not vouch for: "refused: …"), -ENOSPC
 * and others from the disk ("cannot store the series: …"), -ENOMEM. On failure nothing it created
 * is left in dir_fd. */
int unzip_extract(const char *zip_path, int dir_fd, const struct unzip_limits *lim,
		  const char *what, struct unzip_result *out);

void unzip_result_clear(struct unzip_result *r);

/* True for a name that may be created as one file in a folder: not empty, no '/' or '\',
 * no control characters, not "." or "..", no leading dot, at most 255 bytes, and not one
 * of the names tciafs itself puts beside the files (series.json, .manifest). */
bool unzip_name_ok(const char *name);

#endif
