/* SPDX-License-Identifier: MIT
 * tree_archive.c — the archive's own levels: the root's collections, a collection's
 * patients, a patient's studies, a study's series and a series' files, resolved and
 * listed from the catalog (loaded by the loader as they are looked at), read row by row.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tree_int.h"

/* ---- resolving ------------------------------------------------------------------------ */

/* The patient level and below of comps (depth >= 2), with n already at the collection. */
int tree_resolve_archive(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			 const struct caller *who, struct tree_node *n)
{
	int rc;

	/* A study's folder where every name resolves from the catalog as is (a walk's
	 * case): its patient and study in one query; anything else the long way. */
	if (depth >= 3 && strcmp(comps[2], "patient.json") != 0 &&
	    loader_coll_fresh(t->ld, n->coll->api) &&
	    catalog_find_patient_study(t->cat, n->coll->api, comps[1], comps[2], &n->cpat,
				       &n->cstud) == 0)
		goto study_found;
	rc = loader_find_patient(t->ld, n->coll->api, comps[1], &n->cpat);
	if (rc < 0)
		return rc;
	n->kind = TK_PAT;
	if (depth == 2)
		return 0;
	if (depth == 3 && strcmp(comps[2], "patient.json") == 0) {
		n->kind = TK_PAT_JSON;
		return 0;
	}
	rc = loader_patient(t->ld, n->coll->api, n->cpat.pid);
	if (rc == 0)
		rc = catalog_find_study(t->cat, n->coll->api, n->cpat.pid, comps[2], &n->cstud);
	if (rc < 0)
		return rc;
study_found:
	n->kind = TK_STUDY;
	if (depth == 3)
		return 0;
	if (depth == 4 && strcmp(comps[3], "study.json") == 0) {
		n->kind = TK_STUDY_JSON;
		return 0;
	}
	rc = catalog_find_series(t->cat, n->coll->api, n->cstud.pid, n->cstud.uid, comps[3],
				 &n->cser);
	if (rc < 0)
		return rc;
	n->kind = TK_SERIES;
	if (depth == 4)
		return 0;
	return tree_resolve_in_series(t, n, comps[4], who);
}

/* ---- listings ------------------------------------------------------------------------ */

int tree_list_root(struct tree *t, struct tree_lister *l)
{
	struct tree_colls *cs;
	struct stat st;
	size_t i;
	int rc = tree_get_colls(t, &cs);

	if (rc < 0)
		return rc;
	tree_fill_file(t, t->readme_len, t->mounted, &st);
	tree_hold(l, "README.txt", &st, true);
	tree_fill_dir(t, t->mounted, &st);
	if (t->nmans > 0)
		tree_hold(l, "manifests", &st, true);
	for (i = 0; i < cs->count; i++)
		if (tree_emit(l, cs->v[i].name, &st, true))
			break;
	tree_emit_pending(l);
	loader_snap_put(t->ld, &cs->hdr);
	return 0;
}

/* Listing rows straight from the catalog: one at a time, nothing kept. */
struct tree_emit_arg {
	struct tree *t;
	struct tree_lister *l;
	struct stat st;
	size_t rows;
};

static int tree_emit_patient(void *arg, const struct catalog_patient *r)
{
	struct tree_emit_arg *a = arg;

	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

static int tree_emit_study(void *arg, const struct catalog_study *r)
{
	struct tree_emit_arg *a = arg;

	a->rows++;
	tree_fill_dir(a->t, (time_t)r->mtime, &a->st);
	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

static int tree_emit_series(void *arg, const struct catalog_series *r)
{
	struct tree_emit_arg *a = arg;

	a->rows++;
	tree_fill_dir(a->t, (time_t)r->mtime, &a->st);
	return tree_emit(a->l, r->name, &a->st, true) ? 1 : 0;
}

int tree_list_coll(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_emit_arg ea;
	struct stat st;
	size_t i;
	int rc;

	rc = loader_patients(t->ld, n->coll->api);
	if (rc < 0)
		return rc;
	/* collection.json, the tables and the citation cost a rendering to size (for
	 * collection.json up to four requests, or a pass over every series of the
	 * collection for its licence): left to a stat, so that `find` walking past them,
	 * and every listing made again, asks for nothing and reads no series. */
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	tree_hold(l, "collection.json", &st, false);
	for (i = 0; i < 3; i++)
		tree_hold(l, names_table_files[i], &st, false);
	tree_hold(l, "CITATION.txt", &st, false);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < 3; i++)
		tree_hold(l, names_facet_dirs[i], &st, true);
	ea = (struct tree_emit_arg){ t, l, st, 0 };
	rc = catalog_patients(t->cat, n->coll->api, tree_emit_patient, &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
}

/* A folder's .json file goes out with its type only: its size is its rendering (parse
 * the object, print it), a sixth of a walk's time when every listing did it, for a file
 * a walk never reads. Whoever stats it asks for it (one lookup), and gets the size. */
static void tree_hold_json(struct tree_lister *l, const char *name)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0444;
	tree_hold(l, name, &st, false);
}

/* A patient's folder: patient.json, then its studies. */
int tree_list_pat(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_emit_arg ea = { t, l, { 0 }, 0 };
	int rc;

	rc = loader_patient(t->ld, n->coll->api, n->cpat.pid);
	if (rc < 0)
		return rc;
	tree_hold_json(l, "patient.json");
	rc = catalog_studies(t->cat, n->coll->api, n->cpat.pid, tree_emit_study, &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
}

int tree_list_study(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_emit_arg ea = { t, l, { 0 }, 0 };
	int rc;

	tree_hold_json(l, "study.json");
	rc = catalog_series(t->cat, n->coll->api, n->cstud.pid, n->cstud.uid, tree_emit_series,
			    &ea);
	tree_emit_pending(l);
	return rc < 0 ? rc : 0;
}

/* Opening a series folder is what fetches the series: its files are listed with their
 * sizes, beside series.json. */
int tree_list_series(struct tree *t, struct tree_node *n, const struct caller *who,
		     struct tree_lister *l)
{
	struct store_series *ss;
	char **names;
	struct stat st;
	size_t i, count;
	int rc;

	rc = tree_series_files(t, &n->cser, true, who, &ss);
	if (rc < 0)
		return rc;
	count = store_series_count(ss);
	names = calloc(count ? count : 1, sizeof(*names));
	if (!names) {
		store_series_put(t->store, ss);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++)
		names[i] = (char *)store_series_name(ss, i);
	qsort(names, count, sizeof(*names), names_cmp_ptrs);
	/* series.json's size needs getSeriesSize (slow): left to a stat of its own. */
	tree_fill_file(t, 0, (time_t)n->cser.mtime, &st);
	tree_hold(l, "series.json", &st, false);
	for (i = 0; i < count; i++) {
		uint64_t size = store_series_size(ss, (size_t)store_series_find(ss, names[i]));

		tree_fill_file(t, size, (time_t)n->cser.mtime, &st);
		if (tree_emit(l, names[i], &st, true))
			break;
	}
	tree_emit_pending(l);
	free(names);
	store_series_put(t->store, ss);
	return 0;
}

/* A walk's listing of a patient's or a study's folder in a collection loaded in bulk:
 * one query by the folder names, where resolving the path first, then listing, made two.
 * 1 when path is not such a folder or nothing is found (no such folder, or an empty
 * one: the long way tells which), with l as it was. */
int tree_list_named(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		    struct tree_lister *l)
{
	struct tree_emit_arg ea = { t, l, { 0 }, 0 };
	int i, rc = 1;
	struct tree_colls *cs;
	struct tree_coll *c;

	if (depth != 2 && depth != 3)
		return 1;
	/* Whatever tree_resolve takes for something other than a patient or a study. */
	if (strcmp(comps[0], ".tciafs") == 0 || strcmp(comps[0], "manifests") == 0 ||
	    tree_facet_index(comps[1]) >= 0 || strcmp(comps[1], "CITATION.txt") == 0)
		return 1;
	for (i = 0; i < 3; i++)
		if (strcmp(comps[1], names_table_files[i]) == 0)
			return 1;
	for (i = 0; i < depth; i++)
		if (names_is_probe(comps[i]) || tree_ends_with(comps[i], ".json"))
			return 1;
	if (tree_get_colls(t, &cs) < 0)
		return 1;
	c = tree_find_coll(cs, comps[0]);
	if (c && loader_coll_fresh(t->ld, c->api)) {
		tree_hold_json(l, depth == 2 ? "patient.json" : "study.json");
		if (depth == 2)
			rc = catalog_studies_named(t->cat, c->api, comps[1], tree_emit_study, &ea);
		else
			rc = catalog_series_named(t->cat, c->api, comps[1], comps[2],
						  tree_emit_series, &ea);
		if (rc >= 0 && ea.rows == 0) {
			l->npend = l->next = 0; /* held, never emitted */
			rc = 1;
		} else if (rc >= 0) {
			tree_emit_pending(l); /* (a stop, rc 1: the caller's buffer is full) */
			rc = 0;
		}
	}
	loader_snap_put(t->ld, &cs->hdr);
	return rc;
}
