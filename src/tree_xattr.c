/* SPDX-License-Identifier: MIT
 * tree_xattr.c — the extended attributes of the namespace: each object's identifiers
 * (user.tcia.*, for scripts that want the UIDs behind a folder name) and why the last
 * operation on a path failed (user.tciafs.error, from failures.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "failures.h"
#include "tree_int.h"

/* Why the last operation on a folder failed: "<time> <error>: <reason>". */
#define TREE_XATTR_ERROR "user.tciafs.error"

struct tree_xattr {
	const char *name;
	const char *value;
	char num[24]; /* for values that are numbers */
};

/* The node's identifiers, outermost first. Returns how many. */
static size_t tree_xattrs(const struct tree_node *n, struct tree_xattr out[6])
{
	size_t k = 0;

	if (n->coll)
		out[k++] = (struct tree_xattr){ "user.tcia.collection", n->coll->api, "" };
	const char *ser_uid = n->cser.uid;
	int64_t bytes = n->cser.bytes, images = n->cser.images;

	if (n->cpat.pid)
		out[k++] = (struct tree_xattr){ "user.tcia.patient_id", n->cpat.pid, "" };
	if (n->cstud.uid)
		out[k++] = (struct tree_xattr){ "user.tcia.study_uid", n->cstud.uid, "" };
	if (ser_uid)
		out[k++] = (struct tree_xattr){ "user.tcia.series_uid", ser_uid, "" };
	/* What the metadata says a series holds, so tools can size work before fetching. */
	if (ser_uid && bytes >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.file_size", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)bytes);
		k++;
	}
	if (ser_uid && images >= 0) {
		out[k] = (struct tree_xattr){ "user.tcia.image_count", NULL, "" };
		snprintf(out[k].num, sizeof(out[k].num), "%lld", (long long)images);
		k++;
	}
	for (size_t i = 0; i < k; i++)
		if (!out[i].value)
			out[i].value = out[i].num;
	return k;
}

/* user.tciafs.error of the node at path: its newest failure, or one of its series. */
static ssize_t tree_failure(struct tree *t, const char *path, const struct tree_node *n, char *buf,
			    size_t size)
{
	if (!t->failures)
		return -ENODATA;
	return failures_find(t->failures, path, n->cser.uid, buf, size);
}

bool tree_xattr_ours(const char *name)
{
	return strncmp(name, "user.tcia.", 10) == 0 || strcmp(name, TREE_XATTR_ERROR) == 0;
}

ssize_t tree_xattr_get(struct tree *tree, const char *path, const struct tree_node *n,
		       const char *name, char *buf, size_t size)
{
	struct tree_xattr x[6];
	ssize_t rc;
	size_t i, k, len;

	if (strcmp(name, TREE_XATTR_ERROR) == 0)
		return tree_failure(tree, path, n, buf, size);
	rc = -ENODATA;
	k = tree_xattrs(n, x);
	for (i = 0; i < k; i++) {
		if (strcmp(x[i].name, name) != 0)
			continue;
		len = strlen(x[i].value);
		if (size == 0)
			rc = (ssize_t)len;
		else if (size < len)
			rc = -ERANGE;
		else {
			memcpy(buf, x[i].value, len);
			rc = (ssize_t)len;
		}
		break;
	}
	return rc;
}

ssize_t tree_xattr_list(struct tree *tree, const char *path, const struct tree_node *n, char *buf,
			size_t size)
{
	struct tree_xattr x[6];
	size_t i, k, need = 0;
	bool has_error;
	ssize_t rc;

	k = tree_xattrs(n, x);
	for (i = 0; i < k; i++)
		need += strlen(x[i].name) + 1;
	has_error = tree_failure(tree, path, n, NULL, 0) > 0;
	if (has_error)
		need += sizeof(TREE_XATTR_ERROR);
	rc = (ssize_t)need;
	if (size > 0 && size < need) {
		rc = -ERANGE;
	} else if (size > 0) {
		char *p = buf;

		for (i = 0; i < k; i++) {
			size_t len = strlen(x[i].name) + 1;

			memcpy(p, x[i].name, len);
			p += len;
		}
		if (has_error)
			memcpy(p, TREE_XATTR_ERROR, sizeof(TREE_XATTR_ERROR));
	}
	return rc;
}
