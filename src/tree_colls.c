/* SPDX-License-Identifier: MIT
 * tree_colls.c — the snapshots the tree builds from what the loader loaded: the list of
 * collections (from the catalog) and a collection's value lists (from the source, three
 * at once), each kept in a loader slot.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "tree_int.h"

/* What a slot's build is given: the tree, and the tree's own build with its argument. */
struct tree_build {
	struct tree *t;
	tree_load_fn load;
	void *arg;
};

static int tree_build(void *arg, struct loader_snap **out)
{
	struct tree_build *b = arg;

	return b->load(b->t, b->arg, out);
}

int tree_slot_get(struct tree *t, struct loader_slot *slot, tree_load_fn load, void *arg,
		  struct loader_snap **out)
{
	struct tree_build b = { t, load, arg };

	return loader_slot_get(t->ld, slot, tree_build, &b, out);
}

static void tree_colls_destroy_with(struct tree *t, struct tree_colls *c)
{
	size_t i;

	for (i = 0; i < c->count; i++) {
		loader_slot_clear(t->ld, &c->v[i].vals);
		loader_slot_clear(t->ld, &c->v[i].facets);
		free(c->v[i].name);
		free(c->v[i].api);
	}
	free(c->v);
	free(c);
}

int tree_cmp_coll(const void *a, const void *b)
{
	return strcmp(((const struct tree_coll *)a)->name, ((const struct tree_coll *)b)->name);
}

struct tree_colls_snap {
	struct tree_colls colls;
	struct tree *tree; /* to release the per-collection slots on destroy */
};

static void tree_colls_destroy(struct loader_snap *s)
{
	struct tree_colls_snap *cs = (struct tree_colls_snap *)s;

	tree_colls_destroy_with(cs->tree, &cs->colls);
}

struct tree_colls_build {
	struct tree_colls *colls;
	size_t cap;
};

static int tree_colls_add(void *arg, const struct catalog_coll *r)
{
	struct tree_colls_build *b = arg;
	struct tree_coll *v;

	if (b->colls->count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		v = realloc(b->colls->v, b->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->colls->v = v;
	}
	v = &b->colls->v[b->colls->count];
	memset(v, 0, sizeof(*v));
	v->api = strdup(r->api);
	v->name = strdup(r->name);
	b->colls->count++;
	return v->api && v->name ? 0 : -ENOMEM;
}

/* The collections, from the catalog (loaded into it when stale). */
int tree_load_colls(struct tree *t, void *arg, struct loader_snap **out)
{
	struct tree_colls_snap *cs;
	struct tree_colls_build b = { NULL, 0 };
	int rc;

	(void)arg;
	rc = loader_archive(t->ld);
	if (rc < 0)
		return rc;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->tree = t;
	cs->colls.hdr.destroy = tree_colls_destroy;
	cs->colls.hdr.fetched = time(NULL);
	b.colls = &cs->colls;
	rc = catalog_colls(t->cat, tree_colls_add, &b);
	if (rc < 0) {
		tree_colls_destroy_with(t, &cs->colls);
		return rc;
	}
	*out = &cs->colls.hdr;
	return 0;
}

static void tree_vals_destroy(struct loader_snap *s)
{
	struct tree_vals *v = (struct tree_vals *)s;

	record_values_clear(&v->mods);
	record_values_clear(&v->parts);
	record_values_clear(&v->manus);
	free(v);
}

/* One facet's value list, on a thread of its own (tree_load_vals). */
struct tree_vals_job {
	struct tree *t;
	const char *coll;
	unsigned facet;
	struct record_values *out;
	int rc;
	char *why; /* a failure's reason, taken from its thread */
};

static void tree_vals_run(struct tree_vals_job *j)
{
	j->rc = source_facet(j->t->src, j->coll, j->facet, j->out);
	if (j->rc < 0)
		j->why = strdup(log_reason());
}

static void *tree_vals_main(void *arg)
{
	log_clear_reason();
	tree_vals_run(arg);
	return NULL;
}

/* The three value lists are asked for at once: one round trip, not three. */
int tree_load_vals(struct tree *t, void *arg, struct loader_snap **out)
{
	struct tree_coll *c = arg;
	struct tree_vals *v = calloc(1, sizeof(*v));
	struct tree_vals_job j[3];
	pthread_t thread[3];
	bool threaded[3] = { false, false, false };
	unsigned k;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	v->hdr.destroy = tree_vals_destroy;
	v->hdr.fetched = time(NULL);
	for (k = 0; k < 3; k++)
		j[k] = (struct tree_vals_job){
			t, c->api, k, k == 0 ? &v->mods : k == 1 ? &v->parts : &v->manus, 0, NULL
		};
	for (k = 1; k < 3; k++)
		threaded[k] = pthread_create(&thread[k], NULL, tree_vals_main, &j[k]) == 0;
	for (k = 0; k < 3; k++)
		if (!threaded[k])
			tree_vals_run(&j[k]);
	for (k = 1; k < 3; k++)
		if (threaded[k])
			pthread_join(thread[k], NULL);
	for (k = 0; k < 3; k++) {
		if (rc == 0 && j[k].rc < 0) {
			rc = j[k].rc;
			log_adopt_reason(j[k].why);
		}
		free(j[k].why);
	}
	if (rc < 0) {
		tree_vals_destroy(&v->hdr);
		return rc;
	}
	*out = &v->hdr;
	return 0;
}
