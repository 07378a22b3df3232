/* SPDX-License-Identifier: MIT
 * view.h — the formats behind the views beyond the archive's own tree: TCIA manifests
 * read in, CSV tables and citations written out. Knows nothing of paths, FUSE or the
 * API; tree.c decides where these appear.
 */
#ifndef TCIAFS_VIEW_H
#define TCIAFS_VIEW_H

#include <stddef.h>

/* A list of series to show, as the TCIA portal and NBIA Data Retriever write it. */
struct view_manifest {
	char *name; /* the file's base name without .tcia/.txt, unsanitised */
	size_t count;
	char **uids; /* SeriesInstanceUIDs in file order, duplicates dropped */
};

/* Parses a manifest: either a .tcia file (key=value header lines, then
 * "ListOfSeriesToDownload=" and one SeriesInstanceUID per line) or a plain list of UIDs
 * (blank lines and lines starting with '#' ignored). CRLF line ends and a UTF-8 BOM are
 * accepted. Returns 0, -ENOMEM, or -EINVAL with *line (1-based) and *why (static text)
 * saying what is wrong where. out->name is left NULL. */
int view_manifest_parse(const char *text, size_t len, struct view_manifest *out, size_t *line,
			const char **why);

/* Reads and parses the manifest in file and names it after the file. On failure writes
 * one line saying which file, which line and why into err. Returns 0 or -errno. */
int view_manifest_load(const char *file, struct view_manifest *out, char *err, size_t errsize);

/* Accepts a zeroed or cleared manifest. */
void view_manifest_clear(struct view_manifest *m);

/* A CSV table (RFC 4180: CRLF line ends, fields quoted when they hold a comma, a quote
 * or a line end) made of objects as the API sent them: one row per object, one column
 * per key in the order keys are first seen, and a last column "Path". The columns must
 * be known before the first row: view_table_learn each object's cells first; a table
 * that learns a new column after rows were written is restarted (view_table_restart)
 * and its rows written again. */
struct view_table;

/* One member of an object: its key and its value as text (a string's contents, a
 * number, true or false, an array or object as compact JSON), text NULL for null. */
struct view_cell {
	const char *key;
	const char *text;
	size_t len;
};

int view_table_new(struct view_table **out);
void view_table_free(struct view_table *t);

/* Learns the columns of one object: 1 when it added any, 0 when none, or -ENOMEM. */
int view_table_learn(struct view_table *t, const struct view_cell *c, size_t n);

/* Appends one row (the header first). Returns 0, -EINVAL for a column not learnt, or
 * -ENOMEM. */
int view_table_row(struct view_table *t, const struct view_cell *c, size_t n, const char *path);

/* Hands over the text so far (header included; caller frees). Returns 0 or -ENOMEM. */
int view_table_finish(struct view_table *t, char **out, size_t *len);

/* Forgets the text written (header included), keeps the columns learnt. */
void view_table_restart(struct view_table *t);

/* What the series records of a collection say about citing it. */
struct view_citation {
	const char *collection;  /* as the API names it */
	const char *const *dois; /* CollectionURI values */
	size_t ndois;
	const char *const *licence_names;
	size_t nnames;
	const char *const *licence_uris;
	size_t nuris;
};

/* Renders CITATION.txt. Returns 0 with a new NUL-terminated text, or -ENOMEM. */
int view_citation_render(const struct view_citation *c, char **out, size_t *len);

/* The publication TCIA asks every user of its data to cite, besides the data's DOI. */
#define VIEW_TCIA_CITATION                                                                \
	"Clark K, Vendt B, Smith K, Freymann J, Kirby J, Koppel P, Moore S, Phillips S, " \
	"Maffitt D, Pringle M, Tarbox L, Prior F. The Cancer Imaging Archive (TCIA): "    \
	"Maintaining and Operating a Public Information Repository. Journal of Digital "  \
	"Imaging. 2013; 26(6): 1045-1057. https://doi.org/10.1007/s10278-013-9622-7"

#endif
