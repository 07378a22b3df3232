/* SPDX-License-Identifier: MIT
 * tree_view.c — the views beyond the archive's own tree: facet folders and manifest
 * folders of symbolic links to canonical series folders, and CITATION.txt (the tables
 * are tree_table.c's). Each is a catalog query over a collection loaded in bulk, read
 * row by row, so no view holds a collection in memory. The text formats are view.c's.
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

/* The name of a link to a series from outside its patient: "<patient>_<series folder>",
 * within 255 bytes; a name too long loses text before the series' UID tail, which
 * keeps it telling apart. NULL if out of memory. */
static char *tree_link_name(const char *pat, const char *ser)
{
	size_t n = strlen(pat) + 1 + strlen(ser), keep;
	const char *tail = strrchr(ser, '-');
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	snprintf(s, n + 1, "%s_%s", pat, ser);
	if (n <= TREE_NAME_MAX)
		return s;
	if (!tail || strlen(tail) > 80)
		tail = "";
	keep = utf8_cut(s, TREE_NAME_MAX - strlen(tail));
	memmove(s + keep, tail, strlen(tail) + 1);
	return s;
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

static void tree_free_names(char **names, size_t n)
{
	while (n)
		free(names[--n]);
	free(names);
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
	char *name = tree_link_name(pat, s->name), *shown;
	int rc = 0;

	if (!name)
		return -ENOMEM;
	if (lf->prev_name && strcmp(lf->prev_name, name) == 0) {
		lf->run++;
		shown = utf8_twin(name, lf->run + 1);
	} else {
		lf->run = 0;
		shown = strdup(name);
	}
	free(lf->prev_name);
	lf->prev_name = name;
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

/* ---- manifests ------------------------------------------------------------------- */

struct tree_mlink {
	char *name;
	char *target; /* relative to /manifests/<name>/ */
	time_t mtime;
};

/* A manifest resolved against the archive: its links (not the series behind them). */
struct tree_mres {
	struct loader_snap hdr;
	size_t nlinks;
	struct tree_mlink *links; /* sorted by name */
	char *missing;            /* missing.txt: one unknown UID per line */
	size_t missing_len;
};

static void tree_mres_destroy(struct loader_snap *s)
{
	struct tree_mres *r = (struct tree_mres *)s;
	size_t i;

	for (i = 0; i < r->nlinks; i++) {
		free(r->links[i].name);
		free(r->links[i].target);
	}
	free(r->links);
	free(r->missing);
	free(r);
}

static int tree_cmp_mlink(const void *a, const void *b)
{
	return strcmp(((const struct tree_mlink *)a)->name, ((const struct tree_mlink *)b)->name);
}

/* The collections a manifest's resolution loaded in bulk already (by API name). */
struct tree_probed {
	char **colls;
	size_t n;
};

static bool tree_probed_has(const struct tree_probed *p, const char *coll)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->colls[i], coll) == 0)
			return true;
	return false;
}

/* The series of uid, placed in the tree: from the catalog when its load is trusted,
 * else one getSeries for the UID names the collection to load in bulk (so a manifest
 * of one collection costs a handful of requests, not one per UID). Returns 0 with
 * *out filled (its uid NULL when the archive does not know the UID), or -errno. */
static int tree_man_locate(struct tree *t, struct tree_probed *probed, const char *uid,
			   struct catalog_series *out)
{
	struct record_filter f = { .series_uid = uid };
	struct record_series_list l;
	char **grown;
	int rc;

	rc = catalog_series_by_uid(t->cat, uid, out);
	if (rc == 0 &&
	    (t->offline || loader_fresh(t->ld, CATALOG_COLLECTION, out->coll, NULL) == 1 ||
	     loader_fresh(t->ld, CATALOG_PATIENT, out->coll, out->pid) == 1))
		return 0;
	catalog_series_clear(out);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (t->offline)
		return 0;
	rc = source_get_series(t->src, &f, &l);
	if (rc < 0)
		return rc;
	if (l.count == 1 && l.v[0].collection && !tree_probed_has(probed, l.v[0].collection)) {
		grown = realloc(probed->colls, (probed->n + 1) * sizeof(*grown));
		rc = -ENOMEM;
		if (grown) {
			probed->colls = grown;
			grown[probed->n] = strdup(l.v[0].collection);
			if (grown[probed->n])
				probed->n++;
			rc = grown[probed->n - 1] ? loader_collection(t->ld, l.v[0].collection)
						  : -ENOMEM;
		}
		if (rc == 0 && catalog_series_by_uid(t->cat, uid, out) < 0)
			catalog_series_clear(out);
	}
	record_series_list_clear(&l);
	return rc;
}

/* The link for a located series. Returns 0, 1 when the catalog cannot place it (the
 * API's lists disagree: the series counts as missing), or -errno. */
static int tree_man_link(struct tree *t, const struct catalog_series *ser, struct tree_mlink *out)
{
	char *coll, *pat, *stud;
	int rc;

	rc = tree_series_place(t, ser, &coll, &pat, &stud);
	if (rc < 0)
		return rc == -ENOENT ? 1 : rc;
	out->name = tree_link_name(pat, ser->name);
	if (asprintf(&out->target, "../../%s/%s/%s/%s", coll, pat, stud, ser->name) < 0)
		out->target = NULL;
	out->mtime = (time_t)ser->mtime;
	free(coll);
	free(pat);
	free(stud);
	return out->name && out->target ? 0 : -ENOMEM;
}

static int tree_load_mres(struct tree *t, void *arg, struct loader_snap **out)
{
	struct tree_man *man = arg;
	struct tree_probed probed = { NULL, 0 };
	struct tree_colls *cs = NULL;
	struct tree_mres *r;
	size_t i, len;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->hdr.destroy = tree_mres_destroy;
	r->hdr.fetched = time(NULL);
	rc = -ENOMEM;
	r->links = calloc(man->m.count ? man->m.count : 1, sizeof(*r->links));
	r->missing = calloc(1, 1);
	if (!r->links || !r->missing)
		goto out_free;
	rc = tree_get_colls(t, &cs);
	if (rc < 0)
		goto out_free;
	for (i = 0; i < man->m.count; i++) {
		const char *uid = man->m.uids[i];
		struct catalog_series ser;
		char *p;

		rc = tree_man_locate(t, &probed, uid, &ser);
		if (rc == 0 && ser.uid)
			rc = tree_man_link(t, &ser, &r->links[r->nlinks]);
		else if (rc == 0)
			rc = 1;
		catalog_series_clear(&ser);
		if (rc < 0) {
			free(r->links[r->nlinks].name);
			free(r->links[r->nlinks].target);
			memset(&r->links[r->nlinks], 0, sizeof(r->links[0]));
			goto out_free;
		}
		if (rc == 0) {
			r->nlinks++;
			continue;
		}
		len = strlen(uid);
		p = realloc(r->missing, r->missing_len + len + 2);
		if (!p) {
			rc = -ENOMEM;
			goto out_free;
		}
		r->missing = p;
		memcpy(r->missing + r->missing_len, uid, len);
		r->missing_len += len;
		r->missing[r->missing_len++] = '\n';
		r->missing[r->missing_len] = '\0';
	}
	qsort(r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
	rc = -ENOMEM;
	if (names_uniquify((char *)r->links, r->nlinks, sizeof(*r->links),
			   offsetof(struct tree_mlink, name)) < 0)
		goto out_free;
	qsort(r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
	*out = &r->hdr;
	r = NULL;
	rc = 0;
out_free:
	if (r)
		tree_mres_destroy(&r->hdr);
	tree_free_names(probed.colls, probed.n);
	loader_snap_put(t->ld, cs ? &cs->hdr : NULL);
	return rc;
}

static int tree_cmp_man(const void *a, const void *b)
{
	return strcmp(((const struct tree_man *)a)->name, ((const struct tree_man *)b)->name);
}

/* Takes the manifests over (each is left cleared) and names their folders. */
int tree_take_manifests(struct tree *t, struct view_manifest *m, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	t->mans = calloc(n, sizeof(*t->mans));
	if (!t->mans)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct tree_man *man = &t->mans[t->nmans++];

		man->m = m[i];
		memset(&m[i], 0, sizeof(m[i]));
		man->name = names_sanitize(man->m.name ? man->m.name : "manifest");
		if (!man->name)
			return -ENOMEM;
	}
	qsort(t->mans, t->nmans, sizeof(*t->mans), tree_cmp_man);
	if (names_uniquify((char *)t->mans, t->nmans, sizeof(*t->mans),
			   offsetof(struct tree_man, name)) < 0)
		return -ENOMEM;
	qsort(t->mans, t->nmans, sizeof(*t->mans), tree_cmp_man);
	return 0;
}

static const struct tree_mlink *tree_mres_find(const struct tree_mres *r, const char *name)
{
	struct tree_mlink key = { .name = (char *)name };

	return bsearch(&key, r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
}

static struct tree_man *tree_find_man(struct tree *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->nmans; i++)
		if (strcmp(t->mans[i].name, name) == 0)
			return &t->mans[i];
	return NULL;
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

/* /manifests[/<name>[/<link> | /missing.txt]]. */
int tree_resolve_man(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		     struct tree_node *n)
{
	struct loader_snap *s;
	int rc;

	n->kind = TK_MANIFESTS;
	if (depth == 1)
		return 0;
	n->man = tree_find_man(t, comps[1]);
	if (depth > 3 || !n->man)
		return -ENOENT;
	n->kind = TK_MANIFEST;
	if (depth == 2)
		return 0;
	rc = tree_slot_get(t, &n->man->res, tree_load_mres, n->man, &s);
	if (rc < 0)
		return rc;
	n->view = s;
	if (strcmp(comps[2], "missing.txt") == 0) {
		n->kind = TK_MISSING;
		return 0;
	}
	n->mlink = tree_mres_find((struct tree_mres *)s, comps[2]);
	if (!n->mlink)
		return -ENOENT;
	n->kind = TK_LINK;
	return 0;
}

/* ---- licences and citations --------------------------------------------------------- */

/* A collection's licence costs a pass over all its series (0.7 s at NLST's size), and
 * collection.json and CITATION.txt each need it at every stat and open: it is kept per
 * collection for the bulk load it came from, and made again when that load changes
 * (a refresh, another mount's, SIGHUP). */
struct tree_lic {
	char *coll;
	int64_t when; /* the collection's bulk load */
	unsigned gen;
	json_t *obj;
	struct tree_lic *next;
};

void tree_lics_free(struct tree *t)
{
	while (t->lics) {
		struct tree_lic *l = t->lics;

		t->lics = l->next;
		free(l->coll);
		json_decref(l->obj);
		free(l);
	}
}

/* Under t->lock: the entry of coll, or NULL. */
static struct tree_lic *tree_lic_find(struct tree *t, const char *coll)
{
	struct tree_lic *l;

	for (l = t->lics; l; l = l->next)
		if (strcmp(l->coll, coll) == 0)
			return l;
	return NULL;
}

/* A copy of the kept licence of coll's load `when`, or NULL. */
static json_t *tree_lic_kept(struct tree *t, const char *coll, int64_t when)
{
	struct tree_lic *l;
	json_t *obj = NULL;

	pthread_mutex_lock(&t->lock);
	l = tree_lic_find(t, coll);
	if (l && l->when == when && l->gen == loader_generation(t->ld))
		obj = json_deep_copy(l->obj);
	pthread_mutex_unlock(&t->lock);
	return obj;
}

/* Keeps a copy of obj for coll's load `when` (nothing kept when out of memory). */
static void tree_lic_keep(struct tree *t, const char *coll, int64_t when, unsigned gen,
			  const json_t *obj)
{
	json_t *copy = json_deep_copy(obj);
	struct tree_lic *l;

	if (!copy)
		return;
	pthread_mutex_lock(&t->lock);
	l = tree_lic_find(t, coll);
	if (!l && (l = calloc(1, sizeof(*l))) != NULL) {
		l->coll = strdup(coll);
		if (!l->coll) {
			free(l);
			l = NULL;
		} else {
			l->next = t->lics;
			t->lics = l;
		}
	}
	if (l) {
		json_decref(l->obj);
		l->obj = copy;
		l->when = when;
		l->gen = gen;
		copy = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	json_decref(copy);
}

static int tree_licence_one(void *arg, const char *const *cols, size_t n)
{
	json_t **arrs = arg;
	unsigned k = (unsigned)atoi(cols[0]);

	if (n < 2 || k > 2 || !cols[1])
		return 0;
	return json_array_append_new(arrs[k], json_string(cols[1])) ? -ENOMEM : 0;
}

/* What the collection's series say of their licence and DOI: an object with LicenseName,
 * LicenseURI and CollectionURI, each a string when there is one value, an array when
 * they differ, absent when none (the collection loaded in bulk). */
int tree_licence(struct tree *t, struct tree_coll *c, json_t **out)
{
	static const char *const keys[] = { "LicenseName", "LicenseURI", "CollectionURI" };
	json_t *obj, *arrs[3] = { json_array(), json_array(), json_array() };
	int64_t when;
	unsigned gen;
	size_t k;
	int rc;

	*out = NULL;
	rc = loader_collection(t->ld, c->api);
	if (rc < 0)
		goto out_arrs;
	gen = loader_generation(t->ld);
	when = loader_when(t->ld, CATALOG_COLLECTION, c->api, NULL);
	if ((*out = tree_lic_kept(t, c->api, when)) != NULL)
		goto out_arrs;
	rc = -ENOMEM;
	obj = json_object();
	if (!obj || !arrs[0] || !arrs[1] || !arrs[2])
		goto out_obj;
	rc = catalog_licence(t->cat, c->api, tree_licence_one, arrs);
	for (k = 0; k < 3 && rc == 0; k++) {
		if (json_array_size(arrs[k]) == 1)
			rc = json_object_set(obj, keys[k], json_array_get(arrs[k], 0)) ? -ENOMEM
										       : 0;
		else if (json_array_size(arrs[k]) > 1)
			rc = json_object_set(obj, keys[k], arrs[k]) ? -ENOMEM : 0;
	}
	if (rc < 0)
		goto out_obj;
	if (when)
		tree_lic_keep(t, c->api, when, gen, obj);
	*out = obj;
	goto out_arrs;
out_obj:
	json_decref(obj);
out_arrs:
	for (k = 0; k < 3; k++)
		json_decref(arrs[k]);
	return rc;
}

/* The licence object's member key as a list of strings (a string or an array of them). */
static size_t tree_licence_list(const json_t *lic, const char *key, const char **out, size_t max)
{
	const json_t *v = json_object_get(lic, key);
	size_t i, n = 0;

	if (json_is_string(v) && max > 0)
		out[n++] = json_string_value(v);
	for (i = 0; json_is_array(v) && i < json_array_size(v) && n < max; i++)
		out[n++] = json_string_value(json_array_get(v, i));
	return n;
}

#define TREE_CITATION_MAX 64

int tree_render_citation(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	const char *dois[TREE_CITATION_MAX], *names[TREE_CITATION_MAX], *uris[TREE_CITATION_MAX];
	struct view_citation c = { .collection = n->coll->api,
				   .dois = dois,
				   .licence_names = names,
				   .licence_uris = uris };
	json_t *lic;
	int rc = tree_licence(t, n->coll, &lic);

	if (rc < 0)
		return rc;
	c.ndois = tree_licence_list(lic, "CollectionURI", dois, TREE_CITATION_MAX);
	c.nnames = tree_licence_list(lic, "LicenseName", names, TREE_CITATION_MAX);
	c.nuris = tree_licence_list(lic, "LicenseURI", uris, TREE_CITATION_MAX);
	rc = view_citation_render(&c, out, len);
	json_decref(lic);
	return rc;
}

int tree_render_missing(struct tree_node *n, char **out, size_t *len)
{
	const struct tree_mres *r = (const struct tree_mres *)n->view;

	*out = strdup(r->missing);
	*len = r->missing_len;
	return *out ? 0 : -ENOMEM;
}

/* Where a link points, relative to the folder it is in. Returns its length, or
 * -ENAMETOOLONG when it does not fit in size. */
int tree_link_target(const struct tree_node *n, char *buf, size_t size)
{
	int len;

	if (n->mlink)
		len = snprintf(buf, size, "%s", n->mlink->target);
	else
		len = snprintf(buf, size, "../../%s/%s/%s", n->lpat, n->lstud, n->cser.name);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : len;
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
	char *name, *shown;
	struct stat st;
	int len, stop;

	if (n < 4 || !series || !pat || !stud)
		return -EIO;
	name = tree_link_name(pat, series);
	if (!name)
		return -ENOMEM;
	if (ll->prev && strcmp(ll->prev, name) == 0) {
		ll->run++;
		shown = utf8_twin(name, ll->run + 1);
	} else {
		ll->run = 0;
		shown = strdup(name);
	}
	free(ll->prev);
	ll->prev = name;
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

int tree_list_mans(struct tree *t, struct tree_lister *l)
{
	struct stat st;
	size_t i;

	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < t->nmans; i++)
		if (tree_emit(l, t->mans[i].name, &st, true))
			break;
	return 0;
}

int tree_list_man(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	struct tree_mres *r;
	struct tree_node ln = *n;
	struct loader_snap *s;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_slot_get(t, &n->man->res, tree_load_mres, n->man, &s);
	if (rc < 0)
		return rc;
	n->view = s;
	r = (struct tree_mres *)s;
	tree_fill_file(t, r->missing_len, r->hdr.fetched, &st);
	tree_hold(l, "missing.txt", &st, true);
	for (i = 0; i < r->nlinks; i++) {
		ln.mlink = &r->links[i];
		ln.kind = TK_LINK;
		if (tree_link_stat(t, &ln, &st) == 0 && tree_emit(l, ln.mlink->name, &st, true))
			break;
	}
	tree_emit_pending(l);
	return 0;
}

static time_t tree_link_mtime(const struct tree_node *n)
{
	return n->mlink ? n->mlink->mtime : (time_t)n->cser.mtime;
}

int tree_link_stat(struct tree *t, const struct tree_node *n, struct stat *st)
{
	char target[PATH_MAX];
	int rc = tree_link_target(n, target, sizeof(target));

	if (rc < 0)
		return rc;
	tree_fill_link(t, (size_t)rc, tree_link_mtime(n), st);
	return 0;
}
