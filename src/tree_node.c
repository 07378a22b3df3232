/* SPDX-License-Identifier: MIT
 * tree_node.c — what every subtree of the namespace shares, one floor below them: a
 * node's references, the collections, where a series sits and its files in the store,
 * the attributes of folders, files and links, and a listing's sorted emission. It calls
 * the loader, the catalog and the store, never a subtree or the dispatcher.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_int.h"

void tree_node_put(struct tree *t, struct tree_node *n)
{
	if (n->ss)
		store_series_put(t->store, n->ss);
	catalog_patient_clear(&n->cpat);
	catalog_study_clear(&n->cstud);
	catalog_series_clear(&n->cser);
	loader_snap_put(t->ld, n->view);
	free(n->fval);
	free(n->lpat);
	free(n->lstud);
	loader_snap_put(t->ld, n->colls ? &n->colls->hdr : NULL);
	memset(n, 0, sizeof(*n));
}

int tree_get_colls(struct tree *t, struct tree_colls **out)
{
	struct loader_snap *s;
	int rc = tree_slot_get(t, &t->colls, tree_load_colls, NULL, &s);

	*out = rc == 0 ? (struct tree_colls *)s : NULL;
	return rc;
}

/* Loads (or finds) one of a collection's snapshots; *out is the snapshot's outer type. */
int tree_coll_get(struct tree *t, struct tree_coll *c, struct loader_slot *slot, tree_load_fn load,
		  void *out)
{
	struct loader_snap *s;
	int rc = tree_slot_get(t, slot, load, c, &s);

	/* out points at a pointer to the outer type: store through memcpy, which may alias
	 * it, not through a struct loader_snap ** the optimiser may assume it cannot. */
	if (rc < 0)
		s = NULL;
	memcpy(out, &s, sizeof(s));
	return rc;
}

struct tree_coll *tree_find_coll(struct tree_colls *cs, const char *name)
{
	struct tree_coll key = { .name = (char *)name };

	/* An empty list has no array: bsearch may not be given NULL, even for none. */
	if (cs->count == 0)
		return NULL;
	return bsearch(&key, cs->v, cs->count, sizeof(*cs->v), tree_cmp_coll);
}

/* The series in the store: at hand if it is there, else fetched (when fetch is set). */
int tree_series_files(struct tree *t, const struct catalog_series *ser, bool fetch,
		      const struct caller *who, struct store_series **out)
{
	struct store_expect exp = { ser->images, ser->bytes, ser->raw };
	int rc;

	*out = NULL;
	if (!t->store || !ser->uid)
		return -ENOENT;
	rc = store_peek(t->store, ser->uid, out);
	if (rc == 0 || !fetch)
		return rc;
	return store_get(t->store, ser->uid, &exp, who, out);
}

/* The folder path of a series whose place the catalog holds fresh (the patient's or the
 * collection's load still trusted, the folders named): no request. Returns 0 with
 * path, or -ENOENT. */
int tree_series_place(struct tree *t, const struct catalog_series *ser, char **coll, char **pat,
		      char **stud)
{
	struct catalog_coll c;
	struct catalog_patient p;
	struct catalog_study st;
	int rc;

	*coll = *pat = *stud = NULL;
	rc = catalog_coll_by_api(t->cat, ser->coll, &c);
	if (rc < 0)
		return rc;
	/* A series is where its study is, and a study under its patient. */
	rc = catalog_study_by_uid(t->cat, ser->coll, ser->study, &st);
	if (rc == 0) {
		rc = catalog_patient_by_id(t->cat, ser->coll, st.pid, &p);
		if (rc == 0) {
			*coll = c.name;
			*pat = p.name;
			*stud = st.name;
			c.name = p.name = st.name = NULL;
			catalog_patient_clear(&p);
		}
		catalog_study_clear(&st);
	}
	catalog_coll_clear(&c);
	return rc;
}

int tree_resolve_in_series(struct tree *t, struct tree_node *n, const char *name,
			   const struct caller *who)
{
	long found;
	int rc;

	if (strcmp(name, "series.json") == 0) {
		n->kind = TK_SERIES_JSON;
		return 0;
	}
	rc = tree_series_files(t, &n->cser, true, who, &n->ss);
	if (rc < 0)
		return rc;
	found = store_series_find(n->ss, name);
	if (found < 0)
		return -ENOENT;
	n->file = (size_t)found;
	n->kind = TK_SERIES_FILE;
	return 0;
}

void tree_fill_dir(const struct tree *t, time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

void tree_fill_file(const struct tree *t, size_t size, time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

void tree_fill_link(const struct tree *t, size_t size, time_t mtime, struct stat *st)
{
	tree_fill_file(t, size, mtime, st);
	st->st_mode = S_IFLNK | 0777;
}

bool tree_is_dir(enum tree_kind k)
{
	return k == TK_ROOT || k == TK_COLL || k == TK_PAT || k == TK_STUDY || k == TK_SERIES ||
	       k == TK_TCIAFS_DIR || k == TK_UID_DIR || k == TK_FACET_ROOT || k == TK_FACET_VAL ||
	       k == TK_MANIFESTS || k == TK_MANIFEST;
}

static void tree_emit_one(struct tree_lister *l, const struct tree_pending *p)
{
	if (!l->stopped)
		l->stopped = l->fill(l->ctx, p->name, &p->st, p->complete) != 0;
}

/* Emits every held entry that sorts before name (all of them when name is NULL). */
static void tree_emit_held(struct tree_lister *l, const char *name)
{
	while (l->next < l->npend && (!name || strcmp(l->pend[l->next].name, name) < 0))
		tree_emit_one(l, &l->pend[l->next++]);
}

void tree_emit_pending(struct tree_lister *l)
{
	tree_emit_held(l, NULL);
}

/* Holds an entry for its place; name must outlive the listing. */
void tree_hold(struct tree_lister *l, const char *name, const struct stat *st, bool complete)
{
	size_t i = l->npend;

	if (l->npend == TREE_PENDING_MAX)
		return;
	for (; i > 0 && strcmp(l->pend[i - 1].name, name) > 0; i--)
		l->pend[i] = l->pend[i - 1];
	l->pend[i] = (struct tree_pending){ name, *st, complete };
	l->npend++;
}

/* Returns nonzero once the caller's buffer is full. */
int tree_emit(struct tree_lister *l, const char *name, const struct stat *st, bool complete)
{
	tree_emit_held(l, name);
	if (!l->stopped)
		l->stopped = l->fill(l->ctx, name, st, complete) != 0;
	return l->stopped;
}

/* ---- links ---------------------------------------------------------------------------- */

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

void tree_free_names(char **names, size_t n)
{
	while (n)
		free(names[--n]);
	free(names);
}

bool tree_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}
