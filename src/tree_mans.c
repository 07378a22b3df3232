/* SPDX-License-Identifier: MIT
 * tree_mans.c — /manifests/<name>/: a TCIA manifest given at mount (-o manifest=)
 * resolved against the archive into links to canonical series folders, and
 * missing.txt for the UIDs the archive does not know.
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

/* ---- manifests ------------------------------------------------------------------- */

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
	out->name = names_link(pat, ser->name);
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

int tree_render_missing(struct tree_node *n, char **out, size_t *len)
{
	const struct tree_mres *r = (const struct tree_mres *)n->view;

	*out = strdup(r->missing);
	*len = r->missing_len;
	return *out ? 0 : -ENOMEM;
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
