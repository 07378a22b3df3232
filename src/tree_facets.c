/* SPDX-License-Identifier: MIT
 * tree_facets.c — the facet folders of a collection (.by-modality, .by-bodypart,
 * .by-manufacturer): one folder per value, of symbolic links to canonical series
 * folders, each a catalog query over the collection loaded in bulk, read row by row.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "tree_int.h"
#include "utf8.h"

/* ---- facets ---------------------------------------------------------------------- */

/* Each collection's facet folders, in catalog facet order. Hidden, so that a walk of the
 * main tree does not meet every series twice; their entries are symbolic links to the
 * canonical folders, so nothing is copied or fetched twice. */
#define TREE_UNKNOWN "_unknown"

struct tree_fval {
	char *name; /* the folder name */
	char *api;  /* the value it stands for; NULL for _unknown */
};

/* A collection's facet values (a few dozen at most): kept, unlike the links. */
struct tree_fvals {
	struct loader_snap hdr;
	size_t n[3];
	struct tree_fval *v[3]; /* sorted by name */
};

static void tree_fvals_destroy(struct loader_snap *s)
{
	struct tree_fvals *fv = (struct tree_fvals *)s;
	size_t k, i;

	for (k = 0; k < 3; k++) {
		for (i = 0; i < fv->n[k]; i++) {
			free(fv->v[k][i].name);
			free(fv->v[k][i].api);
		}
		free(fv->v[k]);
	}
	free(fv);
}

static int tree_cmp_fval(const void *a, const void *b)
{
	return strcmp(((const struct tree_fval *)a)->name, ((const struct tree_fval *)b)->name);
}

struct tree_fval_build {
	struct tree_fvals *fv;
	unsigned k;
	size_t cap;
};

static int tree_fval_add(void *arg, const char *const *cols, size_t n)
{
	struct tree_fval_build *b = arg;
	struct tree_fval *v;
	size_t *count = &b->fv->n[b->k];

	(void)n;
	if (*count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		v = realloc(b->fv->v[b->k], b->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->fv->v[b->k] = v;
	}
	v = &b->fv->v[b->k][(*count)++];
	v->api = cols[0] ? strdup(cols[0]) : NULL;
	v->name = cols[0] ? names_sanitize(cols[0]) : strdup(TREE_UNKNOWN);
	return v->name && (v->api || !cols[0]) ? 0 : -ENOMEM;
}

/* The values of the three facets: the collection loaded in bulk, one query each. */
static int tree_load_fvals(struct tree *t, void *arg, struct loader_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_fvals *fv;
	unsigned k;
	int rc;

	rc = loader_collection(t->ld, c->api);
	if (rc < 0)
		return rc;
	fv = calloc(1, sizeof(*fv));
	if (!fv)
		return -ENOMEM;
	fv->hdr.destroy = tree_fvals_destroy;
	fv->hdr.fetched = time(NULL);
	for (k = 0; rc == 0 && k < 3; k++) {
		struct tree_fval_build b = { fv, k, 0 };

		rc = catalog_facet_values(t->cat, c->api, k, tree_fval_add, &b);
		if (rc < 0)
			break;
		if (fv->n[k] < 2)
			continue; /* none has no array, and qsort may not be given NULL */
		qsort(fv->v[k], fv->n[k], sizeof(*fv->v[k]), tree_cmp_fval);
		rc = names_uniquify((char *)fv->v[k], fv->n[k], sizeof(*fv->v[k]),
				    offsetof(struct tree_fval, name));
		qsort(fv->v[k], fv->n[k], sizeof(*fv->v[k]), tree_cmp_fval);
	}
	if (rc < 0) {
		tree_fvals_destroy(&fv->hdr);
		return rc;
	}
	*out = &fv->hdr;
	return 0;
}

static const struct tree_fval *tree_fval_find(const struct tree_fvals *fv, unsigned k,
					      const char *name)
{
	struct tree_fval key = { .name = (char *)name };

	if (fv->n[k] == 0)
		return NULL; /* no array to search */
	return bsearch(&key, fv->v[k], fv->n[k], sizeof(*fv->v[k]), tree_cmp_fval);
}

/* The values the collection's value list names for facet k that no series carries:
 * sanitised, sorted, as new strings in *out. Costs the value-list requests. */
static int tree_facet_extra(struct tree *t, struct tree_coll *c, const struct tree_fvals *fv,
			    unsigned k, char ***out, size_t *count)
{
	struct tree_vals *v = NULL;
	const struct record_values *list;
	size_t i, j, n = 0;
	char **names;
	int rc;

	*out = NULL;
	*count = 0;
	if (source_facets_from_series(t->src))
		return 0; /* the values the series carry are all there are */
	rc = tree_coll_get(t, c, &c->vals, tree_load_vals, &v);
	if (rc < 0)
		return rc;
	list = k == 0 ? &v->mods : k == 1 ? &v->parts : &v->manus;
	names = calloc(list->count ? list->count : 1, sizeof(*names));
	rc = -ENOMEM;
	if (!names)
		goto out_put;
	for (i = 0; i < list->count; i++) {
		const char *api = list->v[i].value;

		if (!api || !*api)
			continue;
		for (j = 0; j < fv->n[k]; j++)
			if (fv->v[k][j].api && strcmp(fv->v[k][j].api, api) == 0)
				break;
		if (j < fv->n[k])
			continue;
		names[n] = names_sanitize(api);
		if (!names[n])
			goto out_free;
		if (tree_fval_find(fv, k, names[n])) {
			free(names[n]);
			continue;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), names_cmp_ptrs);
	*out = names;
	*count = n;
	rc = 0;
	goto out_put;
out_free:
	while (n)
		free(names[--n]);
	free(names);
out_put:
	loader_snap_put(t->ld, &v->hdr);
	return rc;
}

/* One facet link found: the series and its folders' names, copied into the node. */
struct tree_link_find {
	struct tree_node *n;
	size_t skip;      /* rows to pass over first (a "~N" twin) */
	const char *want; /* the whole link name, when looking by listing */
	const char *prev;
	char *prev_name;
	size_t run;
	bool found;
};

/* A sorted run of links to the series of pat: the shown name of the next one (name, or
 * name~N for the N-th that would share it, as utf8_twin says), a new string or NULL.
 * *prev and *run carry the run from one row to the next (*prev is freed here). */
static char *tree_link_shown(char **prev, size_t *run, const char *pat, const char *series)
{
	char *name = names_link(pat, series), *shown;

	if (!name)
		return NULL;
	if (*prev && strcmp(*prev, name) == 0) {
		(*run)++;
		shown = utf8_twin(name, *run + 1);
	} else {
		*run = 0;
		shown = strdup(name);
	}
	free(*prev);
	*prev = name;
	return shown;
}

static int tree_link_take(struct tree_link_find *lf, const struct catalog_series *s,
			  const char *pat, const char *stud)
{
	struct catalog_series *d = &lf->n->cser;
	char **f[] = { &d->coll, &d->pid, &d->study,    &d->uid,      &d->name,
		       &d->full, &d->raw, &d->facet[0], &d->facet[1], &d->facet[2] };
	size_t i;

	*d = *s;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (*f[i] && !(*f[i] = strdup(*f[i]))) {
			while (++i < sizeof(f) / sizeof(f[0]))
				*f[i] = NULL;
			return -ENOMEM;
		}
	lf->n->lpat = strdup(pat);
	lf->n->lstud = strdup(stud);
	lf->found = true;
	return lf->n->lpat && lf->n->lstud ? 1 : -ENOMEM;
}

static int tree_link_by_parts(void *arg, const struct catalog_series *s, const char *pat,
			      const char *stud)
{
	struct tree_link_find *lf = arg;

	if (lf->skip > 0) {
		lf->skip--;
		return 0;
	}
	return tree_link_take(lf, s, pat, stud);
}

/* The slow way, for names cut to 255 bytes: every link of the value, named as listed. */
static int tree_link_by_listing(void *arg, const struct catalog_series *s, const char *pat,
				const char *stud)
{
	struct tree_link_find *lf = arg;
	char *shown = tree_link_shown(&lf->prev_name, &lf->run, pat, s->name);
	int rc = 0;

	if (!shown)
		return -ENOMEM;
	if (strcmp(shown, lf->want) == 0)
		rc = tree_link_take(lf, s, pat, stud);
	free(shown);
	return rc;
}

/* Finds link name among value's links: "<patient>_<series>" split at each '_' and
 * looked up through the catalog's indices (a "~N" twin is the N-th such series). */
static int tree_link_find(struct tree *t, struct tree_node *n, const char *value, const char *name)
{
	struct tree_link_find lf = { .n = n };
	char buf[TREE_NAME_MAX + 1], *tilde;
	size_t len, i, nth = 0;
	int rc;

	snprintf(buf, sizeof(buf), "%s", name);
	len = strlen(buf);
	tilde = strrchr(buf, '~');
	for (int pass = 0; pass < 2 && !lf.found; pass++) {
		if (pass == 1) {
			char *end;

			if (!tilde || tilde[1] == '\0')
				break;
			nth = strtoul(tilde + 1, &end, 10);
			if (*end || nth < 2)
				break;
			*tilde = '\0';
			len = strlen(buf);
		}
		for (i = 1; i + 1 < len && !lf.found; i++) {
			if (buf[i] != '_')
				continue;
			buf[i] = '\0';
			lf.skip = nth ? nth - 1 : 0;
			rc = catalog_facet_link(t->cat, n->coll->api, n->facet, value, buf,
						buf + i + 1, tree_link_by_parts, &lf);
			buf[i] = '_';
			if (rc < 0)
				return rc;
		}
	}
	if (!lf.found && strlen(name) >= TREE_NAME_MAX - 24) {
		lf.want = name;
		rc = catalog_facet_links(t->cat, n->coll->api, n->facet, value,
					 tree_link_by_listing, &lf);
		free(lf.prev_name);
		if (rc < 0)
			return rc;
	}
	return lf.found ? 0 : -ENOENT;
}

/* ---- resolving view paths -------------------------------------------------------- */

int tree_facet_index(const char *name)
{
	int k;

	for (k = 0; k < 3; k++)
		if (strcmp(name, names_facet_dirs[k]) == 0)
			return k;
	return -1;
}

/* /<Collection>/.by-<facet>[/<value>[/<link>]], with n already at the collection. */
int tree_resolve_facet(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth, unsigned k,
		       struct tree_node *n)
{
	const struct tree_fval *v;
	struct tree_fvals *fv;
	char **extra;
	size_t nextra, i;
	int rc;

	n->kind = TK_FACET_ROOT;
	n->facet = k;
	if (depth == 2)
		return 0;
	if (depth > 4)
		return -ENOENT;
	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_fvals, &fv);
	if (rc < 0)
		return rc;
	n->view = &fv->hdr;
	n->kind = TK_FACET_VAL;
	v = tree_fval_find(fv, k, comps[2]);
	if (!v) {
		/* Perhaps a value the value list names but no series carries: empty. */
		if (depth == 4)
			return -ENOENT;
		rc = tree_facet_extra(t, n->coll, fv, k, &extra, &nextra);
		if (rc < 0)
			return rc;
		for (i = 0; i < nextra && strcmp(extra[i], comps[2]) != 0; i++)
			;
		tree_free_names(extra, nextra);
		n->fempty = true;
		return i < nextra ? 0 : -ENOENT;
	}
	if (v->api && !(n->fval = strdup(v->api)))
		return -ENOMEM;
	if (depth == 3)
		return 0;
	rc = tree_link_find(t, n, n->fval, comps[3]);
	if (rc < 0)
		return rc;
	n->kind = TK_LINK;
	return 0;
}

/* ---- listing views --------------------------------------------------------------- */

int tree_list_facet_root(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_fvals *fv;
	const char **names;
	char **extra;
	size_t nextra, i, count, k = n->facet;
	struct stat st;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_fvals, &fv);
	if (rc < 0)
		return rc;
	n->view = &fv->hdr;
	rc = tree_facet_extra(t, n->coll, fv, n->facet, &extra, &nextra);
	if (rc < 0)
		return rc;
	names = calloc(fv->n[k] + nextra + 1, sizeof(*names));
	if (!names) {
		tree_free_names(extra, nextra);
		return -ENOMEM;
	}
	for (i = 0; i < fv->n[k]; i++)
		names[i] = fv->v[k][i].name;
	for (i = 0; i < nextra; i++)
		names[fv->n[k] + i] = extra[i];
	count = fv->n[k] + nextra;
	qsort(names, count, sizeof(*names), names_cmp_ptrs);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < count; i++)
		if (tree_emit(l, names[i], &st, true))
			break;
	free(names);
	tree_free_names(extra, nextra);
	return 0;
}

/* A facet value's links, straight from the catalog: one row at a time. */
struct tree_link_list {
	struct tree *t;
	struct tree_lister *l;
	char *prev;
	size_t run;
};

static int tree_list_link(void *arg, const char *const *cols, size_t n)
{
	struct tree_link_list *ll = arg;
	const char *series = cols[0], *pat = cols[2], *stud = cols[3];
	char *shown;
	struct stat st;
	int len, stop;

	if (n < 4 || !series || !pat || !stud)
		return -EIO;
	shown = tree_link_shown(&ll->prev, &ll->run, pat, series);
	if (!shown)
		return -ENOMEM;
	len = snprintf(NULL, 0, "../../%s/%s/%s", pat, stud, series);
	tree_fill_link(ll->t, len > 0 ? (size_t)len : 0,
		       cols[1] ? (time_t)strtoll(cols[1], NULL, 10) : 0, &st);
	stop = tree_emit(ll->l, shown, &st, true);
	free(shown);
	return stop ? 1 : 0;
}

int tree_list_facet_val(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_link_list ll = { t, l, NULL, 0 };
	int rc;

	if (n->fempty)
		return 0;
	rc = catalog_facet_names(t->cat, n->coll->api, n->facet, n->fval, tree_list_link, &ll);
	free(ll.prev);
	return rc < 0 ? rc : 0;
}
