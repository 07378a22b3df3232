/* SPDX-License-Identifier: MIT
 * tree_view.c — the views beyond the archive's own tree: facet folders and manifest
 * folders of symbolic links to canonical series folders, the CSV tables and CITATION.txt.
 * All derived from the snapshots tree.c loads; the text formats are view.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tree_int.h"

/* ---- facets ---------------------------------------------------------------------- */

/* Each collection's facet folders, in the order of tree_ser.facet[]. Hidden, so that a
 * walk of the main tree does not meet every series twice; their entries are symbolic
 * links to the canonical folders, so nothing is copied or fetched twice. */
const char *const tree_facet_dirs[3] = { ".by-modality", ".by-bodypart", ".by-manufacturer" };
#define TREE_UNKNOWN "_unknown"

struct tree_fval {
	char *name;		/* the folder name */
	const char *api;	/* the value it stands for; NULL for _unknown */
};

struct tree_link {
	char *name;
	uint32_t val;		/* the facet value it is filed under */
	const char *pat, *stud;	/* folder names, in the snapshots the view holds */
	const struct tree_ser *ser;
};

struct tree_facet {
	size_t nvals, nlinks;
	struct tree_fval *vals;		/* sorted by name */
	uint32_t *by_api;		/* indices into vals, sorted by api */
	struct tree_link *links;	/* sorted by (val, name) */
};

struct tree_facets {
	struct tree_snap hdr;
	struct tree *t;
	struct tree_pats *pats;
	struct tree_studs *studs;
	struct tree_sers *sers;
	struct tree_facet f[3];
};

static void tree_facets_destroy(struct tree_snap *s)
{
	struct tree_facets *fs = (struct tree_facets *)s;
	size_t k, i;

	for (k = 0; k < 3; k++) {
		struct tree_facet *f = &fs->f[k];

		for (i = 0; i < f->nvals; i++)
			free(f->vals[i].name);
		for (i = 0; i < f->nlinks; i++)
			free(f->links[i].name);
		free(f->vals);
		free(f->by_api);
		free(f->links);
	}
	tree_snap_put(fs->t, fs->sers ? &fs->sers->hdr : NULL);
	tree_snap_put(fs->t, fs->studs ? &fs->studs->hdr : NULL);
	tree_snap_put(fs->t, fs->pats ? &fs->pats->hdr : NULL);
	free(fs);
}

static int tree_cmp_fval(const void *a, const void *b)
{
	return strcmp(((const struct tree_fval *)a)->name, ((const struct tree_fval *)b)->name);
}

static int tree_cmp_link(const void *a, const void *b)
{
	const struct tree_link *x = a, *y = b;

	if (x->val != y->val)
		return x->val < y->val ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int tree_cmp_opt_str(const void *a, const void *b)
{
	return tree_cmp_str(*(const char *const *)a, *(const char *const *)b);
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
	keep = tree_utf8_cut(s, TREE_NAME_MAX - strlen(tail));
	memmove(s + keep, tail, strlen(tail) + 1);
	return s;
}

/* Gives each run of equal-valued links unique names. Links are sorted on return. */
static int tree_links_uniquify(struct tree_link *links, size_t n)
{
	size_t i, j;

	qsort(links, n, sizeof(*links), tree_cmp_link);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && links[j].val == links[i].val; j++)
			;
		if (tree_uniquify((char *)&links[i], j - i, sizeof(*links),
				  offsetof(struct tree_link, name)) < 0)
			return -ENOMEM;
	}
	qsort(links, n, sizeof(*links), tree_cmp_link);
	return 0;
}

/* Files every series under its value of facet k. */
static int tree_facet_build(struct tree_facets *fs, unsigned k)
{
	struct tree_facet *f = &fs->f[k];
	const struct tree_sers *sers = fs->sers;
	const char **seen;
	size_t i, n = 0;
	int rc = -ENOMEM;

	seen = calloc(sers->count ? sers->count : 1, sizeof(*seen));
	f->vals = calloc(sers->count ? sers->count : 1, sizeof(*f->vals));
	f->links = calloc(sers->count ? sers->count : 1, sizeof(*f->links));
	if (!seen || !f->vals || !f->links)
		goto out_free;
	for (i = 0; i < sers->count; i++) {
		const char *v = sers->v[i].facet[k];

		seen[i] = v && *v ? v : NULL;
	}
	qsort(seen, sers->count, sizeof(*seen), tree_cmp_opt_str);
	for (i = 0; i < sers->count; i++) {
		/* "" became NULL above, so equal here means the same value or both unknown. */
		if (n > 0 && tree_cmp_str(seen[i], f->vals[n - 1].api) == 0)
			continue;
		f->vals[n].api = seen[i];
		f->vals[n].name = seen[i] ? tree_sanitize_name(seen[i]) : strdup(TREE_UNKNOWN);
		if (!f->vals[n++].name)
			goto out_free;
	}
	f->nvals = n;
	qsort(f->vals, n, sizeof(*f->vals), tree_cmp_fval);
	if (tree_uniquify((char *)f->vals, n, sizeof(*f->vals), offsetof(struct tree_fval, name)))
		goto out_free;
	qsort(f->vals, n, sizeof(*f->vals), tree_cmp_fval);
	f->by_api = tree_index_build(f->vals, n, sizeof(*f->vals), offsetof(struct tree_fval, api));
	if (!f->by_api)
		goto out_free;
	for (i = 0; i < sers->count; i++) {
		const struct tree_ser *ser = &sers->v[i];
		const struct tree_stud *stud;
		const struct tree_pat *pat;
		struct tree_link *l = &f->links[f->nlinks];
		const char *v = ser->facet[k] && *ser->facet[k] ? ser->facet[k] : NULL;

		if (tree_ser_place(fs->pats, fs->studs, ser, &pat, &stud) < 0)
			continue;
		l->val = (uint32_t)tree_index_find(f->vals, f->by_api, n, sizeof(*f->vals),
						   offsetof(struct tree_fval, api), v);
		l->pat = pat->name;
		l->stud = stud->name;
		l->ser = ser;
		l->name = tree_link_name(pat->name, ser->name);
		if (!l->name)
			goto out_free;
		f->nlinks++;
	}
	rc = tree_links_uniquify(f->links, f->nlinks);
out_free:
	free(seen);
	return rc;
}

static time_t tree_min_time(time_t a, time_t b)
{
	return a < b ? a : b;
}

/* Derived from the collection's patients, studies and series (loading them if need be):
 * trusted for as long as the oldest of them. */
static int tree_load_facets(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_facets *fs = calloc(1, sizeof(*fs));
	unsigned k;
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->t = t;
	fs->hdr.destroy = tree_facets_destroy;
	rc = tree_coll_get(t, c, &c->pats, tree_load_pats, &fs->pats);
	if (rc == 0)
		rc = tree_coll_get(t, c, &c->studs, tree_load_studs, &fs->studs);
	if (rc == 0)
		rc = tree_coll_get(t, c, &c->sers, tree_load_sers, &fs->sers);
	for (k = 0; rc == 0 && k < 3; k++)
		rc = tree_facet_build(fs, k);
	if (rc < 0) {
		tree_facets_destroy(&fs->hdr);
		return rc;
	}
	fs->hdr.fetched = tree_min_time(fs->pats->hdr.fetched,
					tree_min_time(fs->studs->hdr.fetched, fs->sers->hdr.fetched));
	*out = &fs->hdr;
	return 0;
}

static long tree_facet_find_val(const struct tree_facet *f, const char *name)
{
	struct tree_fval key = { .name = (char *)name };
	const struct tree_fval *v = bsearch(&key, f->vals, f->nvals, sizeof(*f->vals),
					    tree_cmp_fval);

	return v ? v - f->vals : -1;
}

static const struct tree_link *tree_facet_find_link(const struct tree_facet *f, size_t val,
						    const char *name)
{
	struct tree_link key = { .name = (char *)name, .val = (uint32_t)val };

	return bsearch(&key, f->links, f->nlinks, sizeof(*f->links), tree_cmp_link);
}

/* The values the collection's value list names for facet k that no series carries:
 * sanitised, sorted, as new strings in *out. Costs the value-list requests. */
static int tree_facet_extra(struct tree *t, struct tree_coll *c, const struct tree_facet *f,
			    unsigned k, char ***out, size_t *count)
{
	struct tree_vals *v = NULL;
	const struct tcia_values *list;
	size_t i, n = 0;
	char **names;
	int rc;

	*out = NULL;
	*count = 0;
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

		if (!api || !*api || tree_index_find(f->vals, f->by_api, f->nvals,
						     sizeof(*f->vals),
						     offsetof(struct tree_fval, api), api) >= 0)
			continue;
		names[n] = tree_sanitize_name(api);
		if (!names[n])
			goto out_free;
		if (tree_facet_find_val(f, names[n]) >= 0) {
			free(names[n]);
			continue;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), tree_cmp_names);
	*out = names;
	*count = n;
	rc = 0;
	goto out_put;
out_free:
	while (n)
		free(names[--n]);
	free(names);
out_put:
	tree_snap_put(t, &v->hdr);
	return rc;
}

static void tree_free_names(char **names, size_t n)
{
	while (n)
		free(names[--n]);
	free(names);
}

/* ---- manifests ------------------------------------------------------------------- */

struct tree_mlink {
	char *name;
	char *target;		/* relative to /manifests/<name>/ */
	time_t mtime;
};

/* A manifest resolved against the archive. */
struct tree_mres {
	struct tree_snap hdr;
	size_t nlinks;
	struct tree_mlink *links;	/* sorted by name */
	char *missing;			/* missing.txt: one unknown UID per line */
	size_t missing_len;
};

static void tree_mres_destroy(struct tree_snap *s)
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

/* What a manifest resolution holds per collection while it works. */
struct tree_mcoll {
	struct tree_pats *pats;
	struct tree_studs *studs;
	struct tree_sers *sers;
	bool probed;		/* sers was loaded because a UID's getSeries named it */
};

static const struct tree_ser *tree_mcoll_find(const struct tree_mcoll *mc, const char *uid)
{
	long i;

	if (!mc->sers)
		return NULL;
	i = tree_index_find(mc->sers->v, mc->sers->by_uid, mc->sers->count,
			    sizeof(*mc->sers->v), offsetof(struct tree_ser, uid), uid);
	return i < 0 ? NULL : &mc->sers->v[i];
}

/* Finds uid's series: in a collection already at hand, else by one getSeries for the
 * UID, which names the collection to load in bulk (so a manifest of one collection costs
 * a handful of requests, not one per UID). Returns 0 with *ci and *ser (NULL when the
 * archive does not know the UID), or -errno. */
static int tree_man_locate(struct tree *t, struct tree_colls *cs, struct tree_mcoll *mcs,
			   const char *uid, size_t *ci, const struct tree_ser **ser)
{
	struct tcia_filter f = { .series_uid = uid };
	struct tcia_series_list l;
	size_t i;
	int rc;

	*ser = NULL;
	for (i = 0; i < cs->count; i++)
		if ((*ser = tree_mcoll_find(&mcs[i], uid))) {
			*ci = i;
			return 0;
		}
	rc = tcia_get_series(t->tcia, &f, &l);
	if (rc < 0)
		return rc;
	for (i = 0; l.count == 1 && l.v[0].collection && i < cs->count; i++)
		if (strcmp(cs->v[i].api, l.v[0].collection) == 0)
			break;
	if (l.count == 1 && i < cs->count && !mcs[i].probed) {
		mcs[i].probed = true;
		tree_snap_put(t, mcs[i].sers ? &mcs[i].sers->hdr : NULL);
		mcs[i].sers = NULL;
		rc = tree_coll_get(t, &cs->v[i], &cs->v[i].sers, tree_load_sers, &mcs[i].sers);
		if (rc == 0) {
			*ci = i;
			*ser = tree_mcoll_find(&mcs[i], uid);
		}
	}
	tcia_series_list_clear(&l);
	return rc;
}

/* The link for a located series: its folders' names, loading the collection's
 * patients and studies if need be. Returns 0, 1 when the API's lists disagree (the
 * series counts as missing), or -errno. */
static int tree_man_link(struct tree *t, struct tree_coll *c, struct tree_mcoll *mc,
			 const struct tree_ser *ser, struct tree_mlink *out)
{
	const struct tree_stud *stud;
	const struct tree_pat *pat;
	int rc = 0;

	if (!mc->pats)
		rc = tree_coll_get(t, c, &c->pats, tree_load_pats, &mc->pats);
	if (rc == 0 && !mc->studs)
		rc = tree_coll_get(t, c, &c->studs, tree_load_studs, &mc->studs);
	if (rc < 0)
		return rc;
	if (tree_ser_place(mc->pats, mc->studs, ser, &pat, &stud) < 0)
		return 1;
	out->name = tree_link_name(pat->name, ser->name);
	if (asprintf(&out->target, "../../%s/%s/%s/%s", c->name, pat->name, stud->name,
		     ser->name) < 0)
		out->target = NULL;
	out->mtime = ser->mtime;
	return out->name && out->target ? 0 : -ENOMEM;
}

static int tree_load_mres(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_man *man = arg;
	struct tree_colls *cs = NULL;
	struct tree_mcoll *mcs = NULL;
	struct tree_mres *r;
	size_t i, ci = 0, len;
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
	rc = -ENOMEM;
	mcs = calloc(cs->count ? cs->count : 1, sizeof(*mcs));
	if (!mcs)
		goto out_free;
	for (i = 0; i < cs->count; i++)
		mcs[i].sers = (struct tree_sers *)tree_peek(t, &cs->v[i].sers);
	for (i = 0; i < man->m.count; i++) {
		const char *uid = man->m.uids[i];
		const struct tree_ser *ser;
		char *p;

		rc = tree_man_locate(t, cs, mcs, uid, &ci, &ser);
		if (rc == 0 && ser)
			rc = tree_man_link(t, &cs->v[ci], &mcs[ci], ser, &r->links[r->nlinks]);
		if (rc < 0) {
			free(r->links[r->nlinks].name);
			free(r->links[r->nlinks].target);
			memset(&r->links[r->nlinks], 0, sizeof(r->links[0]));
			goto out_free;
		}
		if (ser && rc == 0) {
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
	if (tree_uniquify((char *)r->links, r->nlinks, sizeof(*r->links),
			  offsetof(struct tree_mlink, name)) < 0)
		goto out_free;
	qsort(r->links, r->nlinks, sizeof(*r->links), tree_cmp_mlink);
	*out = &r->hdr;
	r = NULL;
	rc = 0;
out_free:
	if (r)
		tree_mres_destroy(&r->hdr);
	for (i = 0; mcs && i < cs->count; i++) {
		tree_snap_put(t, mcs[i].sers ? &mcs[i].sers->hdr : NULL);
		tree_snap_put(t, mcs[i].studs ? &mcs[i].studs->hdr : NULL);
		tree_snap_put(t, mcs[i].pats ? &mcs[i].pats->hdr : NULL);
	}
	free(mcs);
	tree_snap_put(t, cs ? &cs->hdr : NULL);
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
		man->name = tree_sanitize_name(man->m.name ? man->m.name : "manifest");
		if (!man->name)
			return -ENOMEM;
	}
	qsort(t->mans, t->nmans, sizeof(*t->mans), tree_cmp_man);
	if (tree_uniquify((char *)t->mans, t->nmans, sizeof(*t->mans),
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

const char *const tree_table_names[3] = { "patients.csv", "studies.csv", "series.csv" };

int tree_facet_index(const char *name)
{
	int k;

	for (k = 0; k < 3; k++)
		if (strcmp(name, tree_facet_dirs[k]) == 0)
			return k;
	return -1;
}

/* /<Collection>/.by-<facet>[/<value>[/<link>]], with n already at the collection. */
int tree_resolve_facet(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		       unsigned k, struct tree_node *n)
{
	struct tree_facets *fs;
	char **extra;
	size_t nextra, i;
	int rc;

	n->kind = TK_FACET_ROOT;
	n->facet = k;
	if (depth == 2)
		return 0;
	if (depth > 4)
		return -ENOENT;
	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_facets, &fs);
	if (rc < 0)
		return rc;
	n->view = &fs->hdr;
	n->kind = TK_FACET_VAL;
	n->val = tree_facet_find_val(&fs->f[k], comps[2]);
	if (n->val < 0) {
		/* Perhaps a value the value list names but no series carries: empty. */
		if (depth == 4)
			return -ENOENT;
		rc = tree_facet_extra(t, n->coll, &fs->f[k], k, &extra, &nextra);
		if (rc < 0)
			return rc;
		for (i = 0; i < nextra && strcmp(extra[i], comps[2]) != 0; i++)
			;
		tree_free_names(extra, nextra);
		return i < nextra ? 0 : -ENOENT;
	}
	if (depth == 3)
		return 0;
	n->link = tree_facet_find_link(&fs->f[k], (size_t)n->val, comps[3]);
	if (!n->link)
		return -ENOENT;
	n->ser = n->link->ser;
	n->kind = TK_LINK;
	return 0;
}

/* /manifests[/<name>[/<link> | /missing.txt]]. */
int tree_resolve_man(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
		     struct tree_node *n)
{
	struct tree_snap *s;
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


/* ---- tables, citations, links ---------------------------------------------------- */

/* The absolute path of a folder for the tables' Path column. NULL if out of memory. */
static char *tree_table_path(const struct tree *t, const char *coll, const char *pat,
			     const char *stud, const char *ser)
{
	char *p;

	if (asprintf(&p, "%s/%s/%s%s%s%s%s", t->mountpoint, coll, pat, stud ? "/" : "",
		     stud ? stud : "", ser ? "/" : "", ser ? ser : "") < 0)
		return NULL;
	return p;
}

/* One row source of a table: the object as the API sent it, and where it is shown. */
struct tree_row {
	const char *raw;
	char *path;
};

static int tree_cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct tree_row *)a)->path, ((const struct tree_row *)b)->path);
}

/* patients.csv, studies.csv, series.csv: one row per object in path order, every
 * attribute a column, the folder's absolute path last. */
int tree_render_table(struct tree *t, struct tree_node *n, char **out, size_t *len)
{
	struct tree_pats *pats = NULL;
	struct tree_studs *studs = NULL;
	struct tree_sers *sers = NULL;
	struct view_table *tab = NULL;
	struct tree_row *rows = NULL;
	size_t i, count = 0, nrows = 0;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->pats, tree_load_pats, &pats);
	if (rc == 0 && n->facet >= 1)
		rc = tree_coll_get(t, n->coll, &n->coll->studs, tree_load_studs, &studs);
	if (rc == 0 && n->facet == 2)
		rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &sers);
	if (rc < 0)
		goto out_put;
	count = n->facet == 0 ? pats->count : n->facet == 1 ? studs->count : sers->count;
	rc = -ENOMEM;
	rows = calloc(count ? count : 1, sizeof(*rows));
	if (!rows || view_table_new(&tab) < 0)
		goto out_free;
	for (i = 0; i < count; i++) {
		struct tree_row *r = &rows[nrows];
		const struct tree_stud *stud;
		const struct tree_pat *pat;
		long pi;

		if (n->facet == 0) {
			r->raw = pats->v[i].raw;
			r->path = tree_table_path(t, n->coll->name, pats->v[i].name, NULL, NULL);
		} else if (n->facet == 1) {
			stud = &studs->v[i];
			pi = tree_index_find(pats->v, pats->by_id, pats->count, sizeof(*pats->v),
					     offsetof(struct tree_pat, id), stud->pid);
			if (pi < 0)
				continue;	/* not shown in the tree either */
			r->raw = stud->raw;
			r->path = tree_table_path(t, n->coll->name, pats->v[pi].name, stud->name,
						  NULL);
		} else {
			if (tree_ser_place(pats, studs, &sers->v[i], &pat, &stud) < 0)
				continue;
			r->raw = sers->v[i].raw;
			r->path = tree_table_path(t, n->coll->name, pat->name, stud->name,
						  sers->v[i].name);
		}
		if (!r->path)
			goto out_free;
		nrows++;
	}
	qsort(rows, nrows, sizeof(*rows), tree_cmp_row);
	for (i = 0, rc = 0; rc == 0 && i < nrows; i++)
		rc = view_table_scan(tab, rows[i].raw);
	for (i = 0; rc == 0 && i < nrows; i++)
		rc = view_table_row(tab, rows[i].raw, rows[i].path);
	if (rc == 0)
		rc = view_table_finish(tab, out, len);
out_free:
	for (i = 0; i < nrows; i++)
		free(rows[i].path);
	free(rows);
	view_table_free(tab);
out_put:
	tree_snap_put(t, sers ? &sers->hdr : NULL);
	tree_snap_put(t, studs ? &studs->hdr : NULL);
	tree_snap_put(t, pats ? &pats->hdr : NULL);
	return rc;
}

/* The licence object's member key as a list of strings (a string or an array of them). */
static size_t tree_licence_list(const json_t *lic, const char *key, const char **out,
				size_t max)
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
	struct view_citation c = { .collection = n->coll->api, .dois = dois,
				   .licence_names = names, .licence_uris = uris };
	struct tree_sers *s = NULL;
	int rc = tree_coll_get(t, n->coll, &n->coll->sers, tree_load_sers, &s);

	if (rc < 0)
		return rc;
	c.ndois = tree_licence_list(s->licence, "CollectionURI", dois, TREE_CITATION_MAX);
	c.nnames = tree_licence_list(s->licence, "LicenseName", names, TREE_CITATION_MAX);
	c.nuris = tree_licence_list(s->licence, "LicenseURI", uris, TREE_CITATION_MAX);
	rc = view_citation_render(&c, out, len);
	tree_snap_put(t, &s->hdr);
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
		len = snprintf(buf, size, "../../%s/%s/%s", n->link->pat, n->link->stud,
			       n->link->ser->name);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : len;
}


/* ---- listing views --------------------------------------------------------------- */

int tree_list_facet_root(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	const struct tree_facet *f;
	struct tree_facets *fs;
	const char **names;
	char **extra;
	size_t nextra, i, count;
	struct stat st;
	int rc;

	rc = tree_coll_get(t, n->coll, &n->coll->facets, tree_load_facets, &fs);
	if (rc < 0)
		return rc;
	n->view = &fs->hdr;
	f = &fs->f[n->facet];
	rc = tree_facet_extra(t, n->coll, f, n->facet, &extra, &nextra);
	if (rc < 0)
		return rc;
	names = calloc(f->nvals + nextra + 1, sizeof(*names));
	if (!names) {
		tree_free_names(extra, nextra);
		return -ENOMEM;
	}
	for (i = 0; i < f->nvals; i++)
		names[i] = f->vals[i].name;
	for (i = 0; i < nextra; i++)
		names[f->nvals + i] = extra[i];
	count = f->nvals + nextra;
	qsort(names, count, sizeof(*names), tree_cmp_names);
	tree_fill_dir(t, t->mounted, &st);
	for (i = 0; i < count; i++)
		if (tree_emit(l, names[i], &st, true))
			break;
	free(names);
	tree_free_names(extra, nextra);
	return 0;
}

int tree_list_facet_val(struct tree *t, struct tree_node *n, struct tree_lister *l)
{
	const struct tree_facet *f = &((struct tree_facets *)n->view)->f[n->facet];
	struct tree_node ln = *n;
	size_t lo = 0, hi = f->nlinks;
	struct stat st;

	if (n->val < 0)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->links[mid].val < (uint32_t)n->val)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < f->nlinks && f->links[lo].val == (uint32_t)n->val; lo++) {
		ln.link = &f->links[lo];
		ln.ser = ln.link->ser;
		ln.kind = TK_LINK;
		if (tree_node_stat(t, &ln, &st) == 0 && tree_emit(l, ln.link->name, &st, true))
			break;
	}
	return 0;
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
	struct tree_snap *s;
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
		if (tree_node_stat(t, &ln, &st) == 0 && tree_emit(l, ln.mlink->name, &st, true))
			break;
	}
	tree_emit_pending(l);
	return 0;
}

time_t tree_link_mtime(const struct tree_node *n)
{
	return n->mlink ? n->mlink->mtime : n->ser->mtime;
}
