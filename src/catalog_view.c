/* SPDX-License-Identifier: MIT
 * catalog_view.c — the catalog's answers for the views: facet values and links, the
 * members of a table's objects (read from their text as sent, jsonobj.c), and a
 * collection's licences. The SQL is catalog.c's, with every other statement.
 */
#include "catalog_int.h"
#include "jsonobj.h"

static int cat_each_cols(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	const char *cols[4] = { NULL, NULL, NULL, NULL };
	int i, n = sqlite3_column_count(st);

	for (i = 0; i < n && i < 4; i++)
		cols[i] = cat_col(st, i);
	return ((catalog_cols_fn)cb->fn)(cb->arg, cols, (size_t)i);
}

static int cat_each_link(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	struct catalog_series r;

	cat_read_series(st, &r);
	return ((catalog_link_fn)cb->fn)(cb->arg, &r, cat_col(st, 13), cat_col(st, 14));
}

int catalog_facet_values(struct catalog *c, const char *coll, unsigned facet,
			 catalog_cols_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_FACET_VALUES + (int)facet, coll, NULL, NULL, cat_each_cols, &cb,
			 false);
}

int catalog_facet_links(struct catalog *c, const char *coll, unsigned facet,
			const char *value, catalog_link_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_FACET_LINKS + 2 * (int)facet + !value, coll, value, NULL,
			 cat_each_link, &cb, false);
}

int catalog_facet_names(struct catalog *c, const char *coll, unsigned facet,
			const char *value, catalog_cols_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_FACET_NAMES + 2 * (int)facet + !value, coll, value, NULL,
			 cat_each_cols, &cb, false);
}

int catalog_facet_link(struct catalog *c, const char *coll, unsigned facet, const char *value,
		       const char *patient, const char *series, catalog_link_fn fn, void *arg)
{
	const char *params[4] = { coll, value, patient, series };
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query_v(c, ST_FACET_LINK + 2 * (int)facet + !value, params, 4, cat_each_link,
			   &cb, false);
}

/* One row's members: their text copied out as they are read (the reader's buffer and
 * SQLite's row are overwritten by the next), then handed over together. */
struct cat_members {
	char *buf;
	size_t cap;
	struct catalog_member *m;
	size_t mcap;
	struct jsonobj jo;
};

static int cat_members_add(struct cat_members *cm, size_t *used, size_t n, const char *key,
			   size_t klen, const char *text, size_t len)
{
	size_t need = *used + klen + 1 + (text ? len + 1 : 0);

	if (need > cm->cap) {
		size_t cap = cm->cap ? cm->cap : 4096;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (!(nb = realloc(cm->buf, cap)))
			return -ENOMEM;
		cm->buf = nb;
		cm->cap = cap;
	}
	if (n >= cm->mcap) {
		size_t mcap = cm->mcap ? 2 * cm->mcap : 32;
		struct catalog_member *nm = realloc(cm->m, mcap * sizeof(*nm));

		if (!nm)
			return -ENOMEM;
		cm->m = nm;
		cm->mcap = mcap;
	}
	/* Offsets for now: buf may move while the row is read. */
	cm->m[n].key = (const char *)(uintptr_t)*used;
	memcpy(cm->buf + *used, key, klen);
	cm->buf[*used + klen] = '\0';
	*used += klen + 1;
	cm->m[n].len = len;
	cm->m[n].text = NULL;
	if (text) {
		cm->m[n].text = (const char *)(uintptr_t)(*used + 1);	/* 0 stays NULL */
		memcpy(cm->buf + *used, text, len);
		cm->buf[*used + len] = '\0';
		*used += len + 1;
	}
	return 0;
}

/* Offsets to pointers, once every member of the row is in cm->buf. */
static void cat_members_fix(struct cat_members *cm, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		cm->m[i].key = cm->buf + (uintptr_t)cm->m[i].key;
		if (cm->m[i].text)
			cm->m[i].text = cm->buf + ((uintptr_t)cm->m[i].text - 1);
	}
}

/* The members of the object in row rowid of table, through SQLite's json_each: for text
 * jsonobj.c will not read (it never was, so far). */
static int cat_members_each(struct cat_conn *k, struct cat_members *cm, unsigned table,
			    int64_t rowid, size_t *n)
{
	sqlite3_stmt *st = cat_stmt(k, ST_MEMBERS_OF + (int)table, &(int){ 0 });
	size_t used = 0;
	int rc = 0, step;

	*n = 0;
	if (!st)
		return cat_fail(k->db, sqlite3_errcode(k->db), "query");
	sqlite3_bind_int64(st, 1, rowid);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const char *type = (const char *)sqlite3_column_text(st, 1);
		const char *text = NULL;
		size_t klen = (size_t)sqlite3_column_bytes(st, 0), len = 0;

		if (!key || !type)
			continue;	/* not an object's member */
		/* The types: null, true, false, integer, real, text, array, object. */
		if (type[0] == 't' && type[1] == 'r') {
			text = "true";	/* json_each gives 1 and 0 */
			len = 4;
		} else if (type[0] == 'f') {
			text = "false";
			len = 5;
		} else if (type[0] != 'n') {
			text = (const char *)sqlite3_column_text(st, 2);
			len = (size_t)sqlite3_column_bytes(st, 2);
			if (!text)
				text = "";
		}
		rc = cat_members_add(cm, &used, *n, key, klen, text, len);
		if (rc == 0)
			(*n)++;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = cat_fail(k->db, step, "reading an object as sent");
	sqlite3_reset(st);
	cat_members_fix(cm, *n);
	return rc;
}

/* The members of the object in row rowid of table into cm; *n set. Numbers keep the
 * text they were sent in; true and false are words, null no text. */
static int cat_members_read(struct cat_conn *k, struct cat_members *cm, unsigned table,
			    int64_t rowid, size_t *n)
{
	sqlite3_stmt *st = cat_stmt(k, ST_RAW_OF + (int)table, &(int){ 0 });
	struct jsonobj_member m;
	size_t used = 0;
	int rc = 0, step, more = 0;

	*n = 0;
	if (!st)
		return cat_fail(k->db, sqlite3_errcode(k->db), "query");
	sqlite3_bind_int64(st, 1, rowid);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		jsonobj_start(&cm->jo, (const char *)sqlite3_column_text(st, 0),
			      (size_t)sqlite3_column_bytes(st, 0));
		while (rc == 0 && (more = jsonobj_next(&cm->jo, &m)) > 0) {
			const char *text = m.type == JSONOBJ_TRUE ? "true"
					   : m.type == JSONOBJ_FALSE ? "false" : m.text;
			size_t len = m.type == JSONOBJ_TRUE ? 4 : m.type == JSONOBJ_FALSE ? 5
				     : m.len;

			if (m.type != JSONOBJ_NULL && !text)
				text = "";
			rc = cat_members_add(cm, &used, *n, m.key, m.klen, text, len);
			if (rc == 0)
				(*n)++;
		}
		step = sqlite3_step(st);
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = cat_fail(k->db, step, "reading an object as sent");
	sqlite3_reset(st);
	if (rc == 0 && more == -ENOMEM)
		rc = -ENOMEM;
	if (rc == 0 && more == -EBADMSG)
		return cat_members_each(k, cm, table, rowid, n);
	cat_members_fix(cm, *n);
	return rc;
}

int catalog_table(struct catalog *c, const char *coll, unsigned table, catalog_members_fn fn,
		  void *arg)
{
	struct cat_conn *k = cat_reader(c);
	struct cat_members cm = { 0 };
	sqlite3_stmt *st;
	size_t n;
	int rc, ret = 0;

	st = cat_stmt(k, ST_TABLE + (int)table, &rc);
	if (!st) {
		ret = cat_fail(k->db, rc, "query");
		goto out_put;
	}
	cat_bind_text(st, 1, coll);
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *names[3] = { cat_col(st, 1), cat_col(st, 2), cat_col(st, 3) };

		ret = cat_members_read(k, &cm, table, sqlite3_column_int64(st, 0), &n);
		if (ret == 0)
			ret = fn(arg, names, cm.m, n);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = cat_fail(k->db, rc, "query");
out_put:
	cat_reader_put(c, k, st);
	jsonobj_release(&cm.jo);
	free(cm.buf);
	free(cm.m);
	return ret;
}

int catalog_licence(struct catalog *c, const char *coll, catalog_cols_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_LICENCE, coll, NULL, NULL, cat_each_cols, &cb, false);
}
