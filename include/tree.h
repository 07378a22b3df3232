/* SPDX-License-Identifier: MIT
 * tree.h — the namespace tciafs shows: path → node, names, listings, generated files.
 *
 *   /README.txt
 *   /<Collection>/collection.json
 *   /<Collection>/<PatientID>/patient.json
 *   /<Collection>/<PatientID>/<Study>/study.json
 *   /<Collection>/<PatientID>/<Study>/<Series>/series.json
 *   /<Collection>/{patients,studies,series}.csv, CITATION.txt
 *   /<Collection>/.by-{modality,bodypart,manufacturer}/<value>/<link to a series>
 *   /manifests/<name>/<link to a series>, missing.txt
 *
 * Plain C types only (no FUSE): fs.c translates, and the unit tests call it directly.
 * A collection's patients, studies and series are each loaded in one request for the
 * whole collection, so walking it costs a constant number of requests.
 */
#ifndef TCIAFS_TREE_H
#define TCIAFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "caller.h"
#include "names.h"

struct source;
struct store;
struct tree;
struct tree_file;
struct failures;
struct catalog;

struct view_manifest;

struct tree_opts {
	const char *cache_dir;  /* shown in README.txt; copied */
	const char *mountpoint; /* absolute; the tables' Path column; copied; NULL = "" */
	/* Shown as /manifests/<name>/: taken over by tree_new (each is left cleared). */
	struct view_manifest *manifests;
	size_t nmanifests;
	long meta_ttl;       /* seconds an API answer is trusted */
	bool naming_uid;     /* study and series folders named by bare UID */
	struct store *store; /* where series' files come from; borrowed; NULL = none */
	/* Renders /.tciafs/status: a new NUL-terminated string, or NULL. */
	char *(*status)(void *arg);
	void *status_arg;
	/* Where failures are recorded, and read back as user.tciafs.error; borrowed;
	 * NULL = not recorded. */
	struct failures *failures;
	bool offline; /* never ask the API: serve what the catalog holds */
};

/* Creates the tree over a source (borrowed; must outlive the tree). Makes no
 * request. Returns 0 or -ENOMEM. */
int tree_new(struct source *src, const struct tree_opts *opts, struct tree **out);
void tree_free(struct tree *tree);

/* Gives the tree the metadata catalog, where what the API says is kept (borrowed; must
 * outlive the tree). Required before the first call below. */
void tree_set_catalog(struct tree *tree, struct catalog *cat);

/* Forgets what the tree knows of the archive (SIGHUP): the next look asks again, but
 * the old answers still cover a failed refresh. */
void tree_expire(struct tree *tree);

/* A number that changes whenever the tree forgets (tree_expire, or a new release of
 * the archive found on a refresh): what the kernel keeps of the tree is then stale. */
unsigned tree_generation(struct tree *tree);

/* Fills *st for path ("/" or "/a/b"), and *rendered (when given) with whether it is a
 * file rendered from loaded metadata (collection.json, the tables, CITATION.txt, …): a
 * new load may change it under the kernel's copy. A name inside a series folder fetches
 * the series (who is asked about: the walk guard, interruption; NULL = nobody in
 * particular). Returns 0, -ENOENT, or -errno from the API or the store. */
int tree_stat(struct tree *tree, const char *path, const struct caller *who, struct stat *st,
	      bool *rendered);

/* Called once per entry of a listing, "." and ".." excluded. complete is false when the
 * entry's attributes would cost a request, and always for a rendered file: then only
 * st's file type is meaningful and the caller leaves the rest to a later stat. Returns
 * nonzero to stop. */
typedef int (*tree_fill_fn)(void *ctx, const char *name, const struct stat *st, bool complete);

/* Lists a directory in sorted order; listing a series folder fetches the series. Returns
 * 0, -ENOTDIR, -ENOENT, or -errno. */
int tree_list(struct tree *tree, const char *path, const struct caller *who, tree_fill_fn fill,
	      void *ctx);

/* Opening a folder: 0, or -errno for a by-UID folder (/.tciafs/series/<UID>) whose UID
 * the archive does not know (its download starts here, while it is looked up). */
int tree_opendir(struct tree *tree, const char *path, const struct caller *who);

/* Whether the kernel may keep a folder's listing, and until when: for folders whose
 * listing comes from one load of the catalog (the root, collections, patients,
 * studies, a facet's values), a stamp that changes with that load or a SIGHUP. Looking
 * refreshes a stale load first, as a listing would. Returns 0 with *stamp, -EINVAL for
 * folders listed afresh each time (series, manifests, .tciafs, facet roots), or -errno. */
int tree_listing_stamp(struct tree *tree, const char *path, uint64_t *stamp);

/* Opens a file for reading: generated files are rendered once, here; DICOM files are
 * opened in the store. Returns 0 with *out (release with tree_close), -EROFS for any
 * write access, -EISDIR, or -errno. */
int tree_open(struct tree *tree, const char *path, int flags, const struct caller *who,
	      struct tree_file **out);

/* The target of a symbolic link (a facet's or a manifest's entry), relative to its
 * folder, NUL-terminated in buf. Returns its length, -EINVAL when path is not a link,
 * -ENAMETOOLONG when size is too small, or -errno. */
ssize_t tree_readlink(struct tree *tree, const char *path, char *buf, size_t size);

/* The file descriptor behind an open file (a stored DICOM file, a rendered table), or
 * -1 for content in memory; lets fs.c hand reads to the kernel without copying. */
int tree_file_fd(const struct tree_file *f);

/* True for content made fresh on each open (/.tciafs/status): no page caching. */
bool tree_file_live(const struct tree_file *f);

/* True for a stored DICOM file: the same bytes for as long as the name exists, so its
 * pages may be kept across opens (rendered files change with each load). */
bool tree_file_stored(const struct tree_file *f);

/* True for a big file read by range: reads go through tree_need first, and through the
 * daemon (its cache file is not whole). */
bool tree_file_partial(const struct tree_file *f);

/* Makes size bytes at off of a partial file readable from its fd (fetching what is not
 * held, and what a sequential reader will want next). 0, or -errno. */
int tree_need(struct tree_file *f, off_t off, size_t size, const struct caller *who);

/* How many opens found their series folder kept from an earlier open (no catalog). */
unsigned long tree_placed_opens(struct tree *t);

/* Copies up to size bytes at off. Returns the count (0 at the end) or -errno. */
ssize_t tree_read(struct tree_file *f, char *buf, size_t size, off_t off);

/* Accepts NULL. */
void tree_close(struct tree_file *f);

/* Extended attributes user.tcia.collection, user.tcia.patient_id, user.tcia.study_uid
 * and user.tcia.series_uid, where they apply: the identifiers as the API sent them.
 * As getxattr(2)/listxattr(2): with size 0 returns the size needed; -ERANGE when buf is
 * too small; -ENODATA for a name that does not apply. */
ssize_t tree_getxattr(struct tree *tree, const char *path, const char *name, char *buf,
		      size_t size);
ssize_t tree_listxattr(struct tree *tree, const char *path, char *buf, size_t size);

#endif
