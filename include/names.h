/* SPDX-License-Identifier: MIT
 * names.h — the names tciafs shows: folder names made from what the archive says
 * (readable, sanitized, cut at UTF-8 boundaries, unique among siblings), the names the
 * tree makes itself and keeps from the archive, the probes of desktop tools, and a
 * folder's time from a DICOM date. Pure functions over strings; the loader names what it
 * writes into the catalog with them, the tree what it shows.
 */
#ifndef TCIAFS_NAMES_H
#define TCIAFS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The longest name of one path component, in bytes. */
#define NAMES_MAX 255

/* The facet folders, in the catalog's facet order, and the table files. */
extern const char *const names_facet_dirs[3];
extern const char *const names_table_files[3];
/* Names the archive may not take: a collection's at the root, a patient's in a
 * collection (they are the tree's own files and folders). */
extern const char *const names_root_reserved[2];
extern const char *const names_coll_reserved[5];

/* Makes a name from the API safe as one path component: '/' and control characters
 * become '_', "." / ".." / "" become visible placeholders, a leading dot becomes '_', and
 * the result is cut to 255 bytes on a UTF-8 boundary. Returns a new string (caller
 * frees), NULL if out of memory. */
char *names_sanitize(const char *name);

/* The folder name of a study ("<date> <description>") or series ("<number> <modality>
 * <description>"): the parts that exist, sanitised, then "-" and the last five
 * characters of uid (the whole uid when full is set), within 255 bytes. Returns a new
 * string or NULL when out of memory. */
char *names_study(const char *date, const char *description, const char *uid, bool full);
char *names_series(const char *number, const char *modality, const char *description,
		   const char *uid, bool full);

/* True for names that file managers and indexers probe for and that can never exist
 * here (".hidden", "desktop.ini", …): they are answered without any request. */
bool names_is_probe(const char *name);

/* A name equal to one of the n reserved, or ending in ".json", gets a leading '_' (or a
 * trailing one after ".json"). Returns 0 or -ENOMEM (*name unchanged). */
int names_unreserve(char **name, const char *const *reserved, size_t n);

/* Two different API names can sanitise to the same text ("a/b" and "a_b"): later ones
 * in a sorted array get a "~N" suffix (utf8_twin) so that every object stays reachable.
 * The array holds count elements stride bytes apart, each with a char * name at
 * name_off. Returns 0 or -ENOMEM. */
int names_uniquify(char *base, size_t count, size_t stride, size_t name_off);

/* The name of a link to a series from outside its patient's folder (a facet's, a
 * manifest's): "<patient>_<series folder>", within 255 bytes; a name too long loses text
 * before the series' UID tail, which keeps it telling apart. NULL if out of memory. */
char *names_link(const char *pat, const char *ser);

/* "YYYY-MM-DD[ HH:MM:SS…]" as UTC seconds, or fallback. */
time_t names_parse_time(const char *s, time_t fallback);

/* strcmp with NULL as "", and strcmp over two char * elements (for qsort). */
int names_cmp(const char *a, const char *b);
int names_cmp_ptrs(const void *a, const void *b);

#endif
