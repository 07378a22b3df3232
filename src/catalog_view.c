/* SPDX-License-Identifier: MIT
 * catalog_view.c — the catalog's answers for the views: facet values and links, a
 * table's objects as sent in path order, and a collection's licences. The SQL is
 * catalog.c's, with every other statement.
 */
#include "catalog_int.h"

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

int catalog_facet_values(struct catalog *c, const char *coll, unsigned facet, catalog_cols_fn fn,
			 void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_FACET_VALUES + (int)facet, coll, NULL, NULL, cat_each_cols, &cb,
			 false);
}

int catalog_facet_links(struct catalog *c, const char *coll, unsigned facet, const char *value,
			catalog_link_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_FACET_LINKS + 2 * (int)facet + !value, coll, value, NULL,
			 cat_each_link, &cb, false);
}

int catalog_facet_names(struct catalog *c, const char *coll, unsigned facet, const char *value,
			catalog_cols_fn fn, void *arg)
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

int catalog_table(struct catalog *c, const char *coll, unsigned table, catalog_raw_fn fn, void *arg)
{
	struct cat_conn *k = cat_reader(c);
	sqlite3_stmt *st, *raw;
	int rc, ret = 0;

	st = cat_stmt(k, ST_TABLE + (int)table, &rc);
	raw = st ? cat_stmt(k, ST_RAW_OF + (int)table, &rc) : NULL;
	if (!raw) {
		ret = cat_fail(k, rc, "query");
		goto out_put;
	}
	cat_bind_text(st, 1, coll);
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *names[3] = { cat_col(st, 1), cat_col(st, 2), cat_col(st, 3) };

		/* The sort carries names only; each object is read by rowid once sorted. */
		sqlite3_bind_int64(raw, 1, sqlite3_column_int64(st, 0));
		rc = sqlite3_step(raw);
		if (rc == SQLITE_ROW)
			ret = fn(arg, names, (const char *)sqlite3_column_text(raw, 0),
				 (size_t)sqlite3_column_bytes(raw, 0));
		else if (rc != SQLITE_DONE)
			ret = cat_fail(k, rc, "reading an object as sent");
		sqlite3_reset(raw);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = cat_fail(k, rc, "query");
out_put:
	cat_reader_put(c, k, st);
	return ret;
}

int catalog_licence(struct catalog *c, const char *coll, catalog_cols_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_LICENCE, coll, NULL, NULL, cat_each_cols, &cb, false);
}
