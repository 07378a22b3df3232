/* SPDX-License-Identifier: MIT
 * tree_tciafs.c — the /.tciafs/ subtree: status, and series/<SeriesInstanceUID>, a
 * series wherever it is in the archive, for tools holding UIDs (tciafs-prefetch
 * --uids). A UID resolves straight to the series' node through the catalog; its
 * download may start before its metadata is at hand.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tree_int.h"

/* The node of ser (taken over: cleared), placed where the catalog says it is: its
 * collection, patient and study. -ENOENT when the catalog cannot place it (a series
 * whose study or patient is not listed). */
static int tree_uid_node(struct tree *t, struct catalog_series *ser, struct tree_node *n)
{
	struct catalog_coll c;
	int rc;

	rc = tree_get_colls(t, &n->colls);
	if (rc < 0)
		return rc;
	rc = catalog_coll_by_api(t->cat, ser->coll, &c);
	if (rc < 0)
		return -ENOENT;
	n->coll = tree_find_coll(n->colls, c.name);
	catalog_coll_clear(&c);
	/* A series is where its study is, and a study under its patient. */
	if (!n->coll || catalog_study_by_uid(t->cat, ser->coll, ser->study, &n->cstud) < 0 ||
	    catalog_patient_by_id(t->cat, ser->coll, n->cstud.pid, &n->cpat) < 0)
		return -ENOENT;
	n->cser = *ser;
	memset(ser, 0, sizeof(*ser));
	n->kind = TK_SERIES;
	return 0;
}

/* The series of uid when the catalog holds it fresh (its collection's or its patient's
 * load still trusted; offline, whatever it holds), in *out when given. 0 or -ENOENT. */
static int tree_uid_at_hand(struct tree *t, const char *uid, struct catalog_series *out)
{
	struct catalog_series ser;
	char *coll, *pat, *stud;
	int rc;

	rc = catalog_series_by_uid(t->cat, uid, &ser);
	if (rc < 0)
		return -ENOENT;
	if (!t->offline && loader_fresh(t->ld, CATALOG_COLLECTION, ser.coll, NULL) != 1 &&
	    loader_fresh(t->ld, CATALOG_PATIENT, ser.coll, ser.pid) != 1)
		rc = -ENOENT;
	if (rc == 0 && !out) {
		rc = tree_series_place(t, &ser, &coll, &pat, &stud) < 0 ? -ENOENT : 0;
		free(coll);
		free(pat);
		free(stud);
	}
	if (rc == 0 && out)
		*out = ser;
	else
		catalog_series_clear(&ser);
	return rc;
}

/* The node of a series the catalog holds, and of name in its folder when given. */
static int tree_uid_resolve_at(struct tree *t, struct catalog_series *ser, const char *name,
			       const struct caller *who, struct tree_node *n)
{
	int rc = tree_uid_node(t, ser, n);

	if (rc == 0 && name)
		rc = tree_resolve_in_series(t, n, name, who);
	if (rc < 0)
		tree_node_put(t, n);
	return rc;
}

/* tree_resolve_uid's way when the catalog does not know uid: getSeries by UID says
 * where it is, and that patient is loaded (targeted) to name its folders. */
static int tree_resolve_uid_by_request(struct tree *t, const char *uid, const char *name,
				       const struct caller *who, struct tree_node *n)
{
	struct record_filter f = { .series_uid = uid };
	struct record_series_list l;
	struct catalog_series ser;
	int rc;

	rc = source_get_series(t->src, &f, &l);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	if (l.count != 1 || !l.v[0].collection || !l.v[0].patient_id || !l.v[0].study_uid)
		goto out_clear;
	rc = loader_archive(t->ld);
	if (rc == 0)
		rc = loader_patient(t->ld, l.v[0].collection, l.v[0].patient_id);
	if (rc < 0)
		goto out_clear;
	rc = catalog_series_by_uid(t->cat, uid, &ser);
	if (rc < 0) {
		rc = -ENOENT;
		goto out_clear;
	}
	rc = tree_uid_resolve_at(t, &ser, name, who, n);
	catalog_series_clear(&ser);
out_clear:
	record_series_list_clear(&l);
	return rc;
}

/* /.tciafs/series/<SeriesInstanceUID>[/name]. A collection at hand says where at no
 * cost; otherwise one getSeries by UID does. When the caller wants the files, their
 * download starts at once, side by side with those requests, and is checked against the
 * metadata they bring before anything is stored. */
static int tree_resolve_uid(struct tree *t, const char *uid, const char *name,
			    const struct caller *who, bool files, struct tree_node *n)
{
	struct catalog_series ser;
	size_t len = name ? strlen(name) : 0;
	bool early;
	int rc;

	if (names_is_probe(uid) || (name && names_is_probe(name)))
		return -ENOENT;
	/* Only series.json is ours; no DICOM file is named *.json. */
	if (name && len >= 5 && strcmp(name + len - 5, ".json") == 0 &&
	    strcmp(name, "series.json") != 0)
		return -ENOENT;
	if (tree_uid_at_hand(t, uid, &ser) == 0) {
		rc = tree_uid_resolve_at(t, &ser, name, who, n);
		catalog_series_clear(&ser);
		return rc;
	}
	/* A listing of the folder, or a look at a file in it other than series.json. */
	early = t->store && who && (name ? strcmp(name, "series.json") != 0 : files);
	if (early && store_prefetch(t->store, uid, who) < 0)
		early = false;
	rc = tree_resolve_uid_by_request(t, uid, name, who, n);
	if (early && rc == 0 && n->cser.uid) {
		struct store_expect exp = { n->cser.images, n->cser.bytes, n->cser.raw };

		store_expect(t->store, uid, &exp);
	} else if (early) {
		store_abandon(t->store, uid);
	}
	return rc;
}

int tree_resolve_tciafs(struct tree *t, char comps[][TREE_NAME_MAX + 1], int depth,
			const struct caller *who, bool files, struct tree_node *n)
{
	if (depth == 1) {
		n->kind = TK_TCIAFS_DIR;
		return 0;
	}
	if (depth == 2 && strcmp(comps[1], "status") == 0) {
		n->kind = TK_STATUS;
		return 0;
	}
	if (depth == 2 && strcmp(comps[1], "series") == 0) {
		n->kind = TK_UID_DIR; /* lookups only: nothing is listed */
		return 0;
	}
	if (depth >= 3 && depth <= 4 && strcmp(comps[1], "series") == 0)
		return tree_resolve_uid(t, comps[2], depth > 3 ? comps[3] : NULL, who, files, n);
	return -ENOENT;
}

bool tree_uid_dir_unresolved(struct tree *t, const char *path)
{
	static const char prefix[] = "/.tciafs/series/";
	const char *uid = path + sizeof(prefix) - 1;
	size_t n;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return false;
	n = strspn(uid, "0123456789.");
	if (n == 0 || n > 64 || uid[n] != '\0' || uid[0] == '.')
		return false;
	return tree_uid_at_hand(t, uid, NULL) < 0;
}

int tree_list_tciafs(struct tree *t, struct tree_lister *l)
{
	struct stat st;

	tree_fill_dir(t, t->mounted, &st);
	tree_emit(l, "series", &st, true);
	tree_fill_file(t, 0, time(NULL), &st);
	tree_emit(l, "status", &st, false);
	return 0;
}
