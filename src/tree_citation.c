/* SPDX-License-Identifier: MIT
 * tree_citation.c — a collection's licences (for collection.json) and CITATION.txt,
 * from a pass over its series kept per bulk load. The text format is view.c's.
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
