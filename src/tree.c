/* SPDX-License-Identifier: MIT
 * tree.c — the dispatcher of the namespace: each public call resolves its path once
 * (the root and a collection's own entries here, every subtree entered by one call) and
 * hands the node to the file that answers; failures are recorded where users look. What
 * is looked at is loaded by loader.c; the subtrees call tree_node.c below them and never
 * back here.
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "failures.h"
#include "log.h"
#include "tree_int.h"
#include "utf8.h"

/* ---- life cycle -------------------------------------------------------------------- */

int tree_new(struct source *src, const struct tree_opts *opts, struct tree **out)
{
	struct loader_opts lopts;
	struct tree *t;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->src = src;
	t->offline = opts->offline;
	t->store = opts->store;
	t->status = opts->status;
	t->status_arg = opts->status_arg;
	t->failures = opts->failures;
	t->meta_ttl = opts->meta_ttl;
	t->naming_uid = opts->naming_uid;
	t->mounted = time(NULL);
	t->uid = getuid();
	t->gid = getgid();
	t->cache_dir = strdup(opts->cache_dir ? opts->cache_dir : "");
	t->mountpoint = strdup(opts->mountpoint ? opts->mountpoint : "");
	pthread_mutex_init(&t->lock, NULL);
	lopts = (struct loader_opts){ t->meta_ttl, t->offline, t->naming_uid, t->mounted };
	if (loader_new(src, &lopts, &t->ld) < 0 || !t->cache_dir || !t->mountpoint ||
	    tree_make_readme(t) < 0 ||
	    tree_take_manifests(t, opts->manifests, opts->nmanifests) < 0) {
		tree_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void tree_set_catalog(struct tree *tree, struct catalog *cat)
{
	tree->cat = cat;
	loader_set_catalog(tree->ld, cat);
}

void tree_free(struct tree *tree)
{
	size_t i;

	if (!tree)
		return;
	if (tree->ld)
		loader_slot_clear(tree->ld, &tree->colls);
	for (i = 0; i < tree->nmans; i++) {
		if (tree->ld)
			loader_slot_clear(tree->ld, &tree->mans[i].res);
		free(tree->mans[i].name);
		view_manifest_clear(&tree->mans[i].m);
	}
	free(tree->mans);
	tree_lics_free(tree);
	tree_places_free(tree);
	tree_tables_free(tree);
	free(tree->mountpoint);
	loader_free(tree->ld);
	pthread_mutex_destroy(&tree->lock);
	free(tree->readme);
	free(tree->cache_dir);
	free(tree);
}

void tree_expire(struct tree *tree)
{
	loader_expire(tree->ld);
}

unsigned tree_generation(struct tree *tree)
{
	return loader_generation(tree->ld);
}

/* ---- resolving paths --------------------------------------------------------------- */

/* Splits path into components. Returns their count, or -ENAMETOOLONG / -ENOENT. */
static int tree_split(const char *path, char comps[][TREE_NAME_MAX + 1])
{
	const char *p = path;
	int n = 0;

	while (*p) {
		const char *end;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len > TREE_NAME_MAX)
			return -ENAMETOOLONG;
		if (n == TREE_DEPTH_MAX)
			return -ENOENT;
		memcpy(comps[n], p, len);
		comps[n][len] = '\0';
		n++;
		p = end;
	}
	return n;
}

/* Resolves path into *n (release with tree_node_put). Names that cannot exist are
 * answered before anything is loaded, so they never cost a request. A name inside a
 * series folder (other than series.json) fetches the series. */
/* files: the caller will need the series' files the path names (a listing, an open),
 * so a by-UID download may start before its metadata is at hand (store_prefetch). */
static int tree_resolve(struct tree *t, const char *path, const struct caller *who, bool files,
			struct tree_node *n)
{
	char comps[TREE_DEPTH_MAX][TREE_NAME_MAX + 1];
	int depth, i, rc;

	memset(n, 0, sizeof(*n));
	depth = tree_split(path, comps);
	if (depth < 0)
		return depth;
	if (depth == 0) {
		n->kind = TK_ROOT;
		return 0;
	}
	if (depth == 1 && strcmp(comps[0], "README.txt") == 0) {
		n->kind = TK_README;
		return 0;
	}
	if (strcmp(comps[0], ".tciafs") == 0)
		return tree_resolve_tciafs(t, comps, depth, who, files, n);
	for (i = 0; i < depth; i++)
		if (names_is_probe(comps[i]) && !(i == 1 && tree_facet_index(comps[1]) >= 0))
			return -ENOENT;
	/* Our JSON files have fixed names and places; any other *.json cannot exist. */
	static const char *const json_at[] = { "", "collection.json", "patient.json", "study.json",
					       "series.json" };
	for (i = 0; i < depth; i++)
		if (tree_ends_with(comps[i], ".json") &&
		    (i + 1 != depth || i > 4 || strcmp(comps[i], json_at[i]) != 0))
			return -ENOENT;
	if (depth > 5)
		return -ENOENT;
	if (strcmp(comps[0], "manifests") == 0 && t->nmans > 0) {
		rc = tree_resolve_man(t, comps, depth, n);
		if (rc < 0)
			tree_node_put(t, n);
		return rc;
	}

	rc = tree_get_colls(t, &n->colls);
	if (rc < 0)
		goto out_put;
	rc = -ENOENT;
	n->coll = tree_find_coll(n->colls, comps[0]);
	if (!n->coll)
		goto out_put;
	n->kind = TK_COLL;
	if (depth == 1)
		return 0;
	if (depth == 2 && strcmp(comps[1], "collection.json") == 0) {
		n->kind = TK_COLL_JSON;
		return 0;
	}
	for (i = 0; depth == 2 && i < 3; i++)
		if (strcmp(comps[1], names_table_files[i]) == 0) {
			n->kind = TK_TABLE;
			n->facet = (unsigned)i;
			return 0;
		}
	if (depth == 2 && strcmp(comps[1], "CITATION.txt") == 0) {
		n->kind = TK_CITATION;
		return 0;
	}
	if (tree_facet_index(comps[1]) >= 0) {
		rc = tree_resolve_facet(t, comps, depth, (unsigned)tree_facet_index(comps[1]), n);
		if (rc < 0)
			goto out_put;
		return 0;
	}
	rc = tree_resolve_archive(t, comps, depth, who, n);
	if (rc == 0)
		return 0;
out_put:
	tree_node_put(t, n);
	return rc;
}

/* ---- attributes -------------------------------------------------------------------- */

static time_t tree_node_mtime(const struct tree *t, const struct tree_node *n)
{
	if (n->cser.uid)
		return (time_t)n->cser.mtime;
	if (n->cstud.uid)
		return (time_t)n->cstud.mtime;
	return t->mounted;
}

static int tree_node_stat(struct tree *t, struct tree_node *n, struct stat *st)
{
	char *data;
	size_t len;
	int rc;

	if (tree_is_dir(n->kind)) {
		tree_fill_dir(t, tree_node_mtime(t, n), st);
		return 0;
	}
	if (n->kind == TK_README) {
		tree_fill_file(t, t->readme_len, t->mounted, st);
		return 0;
	}
	if (n->kind == TK_SERIES_FILE) {
		tree_fill_file(t, store_series_size(n->ss, n->file), (time_t)n->cser.mtime, st);
		return 0;
	}
	if (n->kind == TK_TABLE) {
		off_t size;

		rc = tree_table_file(t, n->coll, n->facet, NULL, &size);
		if (rc == 0)
			tree_fill_file(t, (size_t)size, t->mounted, st);
		return rc;
	}
	if (n->kind == TK_LINK)
		return tree_link_stat(t, n, st);
	/* Sizes must be exact at stat time: render to know. */
	rc = tree_render(t, n, &data, &len);
	if (rc < 0)
		return rc;
	free(data);
	tree_fill_file(t, len, tree_node_mtime(t, n), st);
	return 0;
}

/* Files rendered from loaded metadata: a new load may change what the kernel keeps. */
static bool tree_kind_rendered(enum tree_kind k)
{
	return k == TK_COLL_JSON || k == TK_PAT_JSON || k == TK_STUDY_JSON || k == TK_SERIES_JSON ||
	       k == TK_TABLE || k == TK_CITATION;
}

static int tree_stat_do(struct tree *tree, const char *path, const struct caller *who,
			struct stat *st, bool *rendered)
{
	struct tree_node n;
	int rc;

	if (who && tree_uid_dir_unresolved(tree, path)) {
		tree_fill_dir(tree, tree->mounted, st);
		return 0;
	}
	rc = tree_resolve(tree, path, who, false, &n);

	if (rc < 0)
		return rc;
	rc = tree_node_stat(tree, &n, st);
	if (rendered)
		*rendered = tree_kind_rendered(n.kind);
	tree_node_put(tree, &n);
	return rc;
}

/* ---- listings ---------------------------------------------------------------------- */

static int tree_list_do(struct tree *tree, const char *path, const struct caller *who,
			tree_fill_fn fill, void *ctx)
{
	char comps[TREE_DEPTH_MAX][TREE_NAME_MAX + 1];
	struct tree_lister l = { .fill = fill, .ctx = ctx };
	struct tree_node n;
	int rc = tree_list_named(tree, comps, tree_split(path, comps), &l);

	if (rc <= 0)
		return rc;
	rc = tree_resolve(tree, path, who, true, &n);
	if (rc < 0)
		return rc;
	switch (n.kind) {
	case TK_ROOT:
		rc = tree_list_root(tree, &l);
		break;
	case TK_COLL:
		rc = tree_list_coll(tree, &n, &l);
		break;
	case TK_PAT:
		rc = tree_list_pat(tree, &n, &l);
		break;
	case TK_STUDY:
		rc = tree_list_study(tree, &n, &l);
		break;
	case TK_SERIES:
		rc = tree_list_series(tree, &n, who, &l);
		break;
	case TK_TCIAFS_DIR:
		rc = tree_list_tciafs(tree, &l);
		break;
	case TK_UID_DIR:
		rc = 0;
		break;
	case TK_FACET_ROOT:
		rc = tree_list_facet_root(tree, &n, &l);
		break;
	case TK_FACET_VAL:
		rc = tree_list_facet_val(tree, &n, &l);
		break;
	case TK_MANIFESTS:
		rc = tree_list_mans(tree, &l);
		break;
	case TK_MANIFEST:
		rc = tree_list_man(tree, &n, &l);
		break;
	default:
		rc = -ENOTDIR;
	}
	tree_node_put(tree, &n);
	return rc;
}

/* ---- failures, where users can read them ---------------------------------------- */

/* Errors that are answers rather than failures: nothing to explain. */
static bool tree_is_failure(int rc)
{
	switch (-rc) {
	case 0:
	case ENOENT:
	case ENOTDIR:
	case EISDIR:
	case EROFS:
	case EINTR:
	case ENODATA:
	case ERANGE:
	case ENAMETOOLONG:
		return false;
	default:
		return true;
	}
}

/* Records a failed operation on path with this thread's reason (the log line it wrote,
 * or the one it adopted from the download or load it waited for). */
static void tree_note(struct tree *t, const char *path, int rc)
{
	const char *why = log_reason(), *p;
	char uid[72] = "";
	size_t n;

	if (!t->failures || !tree_is_failure(rc))
		return;
	/* The store's lines name the series first ("series <UID>: …"), a download's the
	 * request ("…?SeriesInstanceUID=<UID>&…"), so that the failure can be found again
	 * from any path that leads to the series. */
	if (strncmp(why, "series ", 7) == 0)
		p = why + 7;
	else if ((p = strstr(why, "SeriesInstanceUID=")))
		p += strlen("SeriesInstanceUID=");
	if (p) {
		n = strspn(p, "0123456789.");
		if (n > 0 && n < sizeof(uid) &&
		    (p[n] == ':' || p[n] == '&' || p[n] == ' ' || p[n] == '\0')) {
			memcpy(uid, p, n);
			uid[n] = '\0';
		}
	}
	failures_add(t->failures, path, uid[0] ? uid : NULL, -rc, why);
}

int tree_stat(struct tree *tree, const char *path, const struct caller *who, struct stat *st,
	      bool *rendered)
{
	int rc;

	if (rendered)
		*rendered = false;
	log_clear_reason();
	rc = tree_stat_do(tree, path, who, st, rendered);
	tree_note(tree, path, rc);
	return rc;
}

int tree_list(struct tree *tree, const char *path, const struct caller *who, tree_fill_fn fill,
	      void *ctx)
{
	int rc;

	log_clear_reason();
	rc = tree_list_do(tree, path, who, fill, ctx);
	tree_note(tree, path, rc);
	return rc;
}

int tree_opendir(struct tree *tree, const char *path, const struct caller *who)
{
	struct tree_node n;
	int rc;

	/* Only a by-UID folder, whose stat said nothing yet, has anything to check: an
	 * unknown UID must fail here, as readdir's ENOENT would look like an empty folder
	 * (glibc hides it). Its download starts now, beside the lookup. */
	if (!tree_uid_dir_unresolved(tree, path))
		return 0;
	log_clear_reason();
	rc = tree_resolve(tree, path, who, true, &n);
	if (rc == 0)
		tree_node_put(tree, &n);
	tree_note(tree, path, rc);
	return rc;
}

/* A patient's, a study's or a facet value's folder in a collection whose bulk load is
 * fresh lists what that load brought: its stamp is the load's, known without resolving
 * the path (the kernel looked the folder up before it opens it), so that each opendir
 * of a warm walk asks the catalog nothing. 0 with *when; 1 when the path is not such a
 * folder or the load is not fresh (then resolve it); -EINVAL for a facet root. */
static int tree_stamp_in_bulk(struct tree *t, const char *path, int64_t *when)
{
	char comps[TREE_DEPTH_MAX][TREE_NAME_MAX + 1];
	struct tree_colls *cs;
	struct tree_coll *c;
	int depth = tree_split(path, comps), facet, rc = 1;

	if (depth != 2 && depth != 3)
		return 1;
	facet = tree_facet_index(comps[1]);
	if (depth == 2 && facet >= 0)
		return -EINVAL;
	if (strcmp(comps[0], ".tciafs") == 0 || strcmp(comps[0], "manifests") == 0 ||
	    tree_get_colls(t, &cs) < 0)
		return 1;
	c = tree_find_coll(cs, comps[0]);
	if (c && loader_fresh(t->ld, CATALOG_COLLECTION, c->api, NULL) == 1) {
		*when = loader_when(t->ld, CATALOG_COLLECTION, c->api, NULL);
		rc = *when ? 0 : 1;
	}
	loader_snap_put(t->ld, &cs->hdr);
	return rc;
}

int tree_listing_stamp(struct tree *tree, const char *path, uint64_t *stamp)
{
	struct tree_node n;
	int64_t when = 0, bulk;
	bool afresh = false;
	unsigned gen;
	int rc;

	/* meta_ttl=0: every look asks again, so nothing may be kept. */
	if (tree_uid_dir_unresolved(tree, path) || (tree->meta_ttl == 0 && !tree->offline))
		return -EINVAL;
	rc = tree_stamp_in_bulk(tree, path, &when);
	if (rc <= 0)
		goto out_stamp;
	log_clear_reason();
	rc = tree_resolve(tree, path, NULL, false, &n);
	if (rc < 0)
		return rc;
	switch (n.kind) {
	case TK_ROOT: {
		struct tree_colls *cs;

		rc = tree_get_colls(tree, &cs); /* a stale list is loaded again here */
		if (rc == 0)
			loader_snap_put(tree->ld, &cs->hdr);
		when = loader_when(tree->ld, CATALOG_ARCHIVE, NULL, NULL);
		break;
	}
	case TK_COLL:
		rc = loader_patients(tree->ld, n.coll->api);
		when = loader_when(tree->ld, CATALOG_PATIENTS, n.coll->api, NULL);
		break;
	case TK_PAT:
	case TK_STUDY:
		/* Looking is what refreshes a stale load: done here, so that a new load
		 * gives a new stamp. */
		rc = loader_patient(tree->ld, n.coll->api, n.cpat.pid);
		bulk = loader_fresh(tree->ld, CATALOG_COLLECTION, n.coll->api, NULL) == 1
			       ? loader_when(tree->ld, CATALOG_COLLECTION, n.coll->api, NULL)
			       : 0;
		when = bulk ? bulk
			    : loader_when(tree->ld, CATALOG_PATIENT, n.coll->api, n.cpat.pid);
		break;
	case TK_FACET_VAL:
		when = loader_when(tree->ld, CATALOG_COLLECTION, n.coll->api, NULL);
		break;
	default:
		rc = -EINVAL; /* listed afresh each time: an answer, not a failure */
		afresh = true;
		break;
	}
	tree_node_put(tree, &n);
	if (rc < 0 && !afresh)
		tree_note(tree, path, rc);
out_stamp:
	if (rc == 0 && when == 0)
		rc = -EINVAL;
	gen = loader_generation(tree->ld);
	*stamp = (uint64_t)when << 16 ^ (uint64_t)(gen & 0xffff);
	return rc;
}

/* ---- files --------------------------------------------------------------------------- */

/* Resolves path (a kept folder's series first, without the catalog) and opens its node;
 * a stored file whose series went away or is held by another process is resolved again
 * (tree_file_open says when, and how long it has waited). */
static int tree_open_do(struct tree *tree, const char *path, int flags, const struct caller *who,
			struct tree_file **out)
{
	struct tree_open_try try = { 0, 0 };
	struct tree_node n;
	int rc;

	*out = NULL;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	rc = tree_place_open(tree, path, &n);
	if (rc == 1) {
		rc = tree_resolve(tree, path, who, true, &n);
		if (rc == 0 && n.kind == TK_SERIES_FILE)
			tree_place_keep(tree, path, &n);
	}
	if (rc < 0)
		return rc;
	while ((rc = tree_file_open(tree, &n, who, &try, out)) == TREE_AGAIN) {
		tree_node_put(tree, &n);
		rc = tree_resolve(tree, path, who, true, &n);
		if (rc < 0)
			return rc;
		if (n.kind != TK_SERIES_FILE) {
			rc = -ENOENT;
			break;
		}
	}
	tree_node_put(tree, &n);
	return rc;
}

ssize_t tree_readlink(struct tree *tree, const char *path, char *buf, size_t size)
{
	struct tree_node n;
	int rc = tree_resolve(tree, path, NULL, false, &n);

	if (rc < 0)
		return rc;
	rc = n.kind == TK_LINK ? tree_link_target(&n, buf, size) : -EINVAL;
	tree_node_put(tree, &n);
	return rc;
}

ssize_t tree_getxattr(struct tree *tree, const char *path, const char *name, char *buf, size_t size)
{
	struct tree_node n;
	ssize_t rc;

	/* ls -l asks every file for security.selinux and system.posix_acl_*: answer those
	 * before resolving anything (the kernel has looked the path up already). */
	if (!tree_xattr_ours(name))
		return -ENODATA;
	rc = tree_resolve(tree, path, NULL, false, &n);
	if (rc < 0)
		return rc;
	rc = tree_xattr_get(tree, path, &n, name, buf, size);
	tree_node_put(tree, &n);
	return rc;
}

ssize_t tree_listxattr(struct tree *tree, const char *path, char *buf, size_t size)
{
	struct tree_node n;
	ssize_t rc;

	rc = tree_resolve(tree, path, NULL, false, &n);
	if (rc < 0)
		return rc;
	rc = tree_xattr_list(tree, path, &n, buf, size);
	tree_node_put(tree, &n);
	return rc;
}

int tree_open(struct tree *tree, const char *path, int flags, const struct caller *who,
	      struct tree_file **out)
{
	int rc;

	log_clear_reason();
	rc = tree_open_do(tree, path, flags, who, out);
	tree_note(tree, path, rc);
	return rc;
}
