/* SPDX-License-Identifier: MIT
 * catalog_query.c — the catalog's rows read for the tree: parameters bound, columns copied
 * into the records of catalog.h (or handed on one row at a time, never a whole listing
 * held), lookups by name, ID and UID, what was loaded when (and the release), and the
 * counts for status. The SQL is catalog.c's, with every other statement.
 */
#include "catalog_int.h"

/* ---- binding and reading rows ------------------------------------------------------ */

int cat_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int cat_bind_num(sqlite3_stmt *st, int i, int64_t v)
{
	return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

char *cat_col(sqlite3_stmt *st, int i)
{
	return (char *)sqlite3_column_text(st, i);
}

static int64_t cat_num(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static void cat_read_coll(sqlite3_stmt *st, struct catalog_coll *r)
{
	r->api = cat_col(st, 0);
	r->name = cat_col(st, 1);
}

static void cat_read_patient(sqlite3_stmt *st, struct catalog_patient *r)
{
	r->coll = cat_col(st, 0);
	r->pid = cat_col(st, 1);
	r->name = cat_col(st, 2);
	r->raw = cat_col(st, 3);
}

/* A study from the row's columns at, at + 1, … (CAT_STUDY_COLS' order). */
static void cat_read_study_at(sqlite3_stmt *st, int at, struct catalog_study *r)
{
	r->coll = cat_col(st, at);
	r->pid = cat_col(st, at + 1);
	r->uid = cat_col(st, at + 2);
	r->name = cat_col(st, at + 3);
	r->full = cat_col(st, at + 4);
	r->raw = cat_col(st, at + 5);
	r->mtime = cat_num(st, at + 6);
}

static void cat_read_study(sqlite3_stmt *st, struct catalog_study *r)
{
	cat_read_study_at(st, 0, r);
}

void cat_read_series(sqlite3_stmt *st, struct catalog_series *r)
{
	int k;

	r->coll = cat_col(st, 0);
	r->pid = cat_col(st, 1);
	r->study = cat_col(st, 2);
	r->uid = cat_col(st, 3);
	r->name = cat_col(st, 4);
	r->full = cat_col(st, 5);
	r->raw = cat_col(st, 6);
	for (k = 0; k < 3; k++)
		r->facet[k] = cat_col(st, 7 + k);
	r->mtime = cat_num(st, 10);
	r->images = cat_num(st, 11);
	r->bytes = cat_num(st, 12);
}

/* Copies of a row's strings, for the _find functions. */
static int cat_dup(char **s)
{
	if (*s && !(*s = strdup(*s)))
		return -ENOMEM;
	return 0;
}

int cat_dup_all(char **const *fields, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++)
		if (rc == 0)
			rc = cat_dup(fields[i]);
		else
			*fields[i] = NULL;
	return rc;
}

void catalog_coll_clear(struct catalog_coll *r)
{
	free(r->api);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

void catalog_patient_clear(struct catalog_patient *r)
{
	free(r->coll);
	free(r->pid);
	free(r->name);
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

void catalog_study_clear(struct catalog_study *r)
{
	free(r->coll);
	free(r->pid);
	free(r->uid);
	free(r->name);
	free(r->full);
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

void catalog_series_clear(struct catalog_series *r)
{
	int k;

	free(r->coll);
	free(r->pid);
	free(r->study);
	free(r->uid);
	free(r->name);
	free(r->full);
	free(r->raw);
	for (k = 0; k < 3; k++)
		free(r->facet[k]);
	memset(r, 0, sizeof(*r));
}

static int cat_copy_coll(sqlite3_stmt *st, void *out)
{
	struct catalog_coll *r = out;
	char **f[] = { &r->api, &r->name };
	int rc;

	cat_read_coll(st, r);
	rc = cat_dup_all(f, 2);
	if (rc < 0)
		catalog_coll_clear(r);
	return rc;
}

static int cat_copy_patient(sqlite3_stmt *st, void *out)
{
	struct catalog_patient *r = out;
	char **f[] = { &r->coll, &r->pid, &r->name, &r->raw };
	int rc;

	cat_read_patient(st, r);
	rc = cat_dup_all(f, 4);
	if (rc < 0)
		catalog_patient_clear(r);
	return rc;
}

/* A patient and its study from one row (ST_FIND_PAT_STUDY). */
struct cat_pat_study {
	struct catalog_patient *p;
	struct catalog_study *s;
};

static int cat_copy_pat_study(sqlite3_stmt *st, void *out)
{
	struct cat_pat_study *ps = out;
	struct catalog_patient *p = ps->p;
	struct catalog_study *r = ps->s;
	char **f[] = { &p->coll, &p->pid, &p->name, &p->raw,  &r->coll,
		       &r->pid,  &r->uid, &r->name, &r->full, &r->raw };
	int rc;

	cat_read_patient(st, p);
	cat_read_study_at(st, 4, r);
	rc = cat_dup_all(f, 10);
	if (rc < 0) {
		catalog_patient_clear(p);
		catalog_study_clear(r);
	}
	return rc;
}

static int cat_copy_study(sqlite3_stmt *st, void *out)
{
	struct catalog_study *r = out;
	char **f[] = { &r->coll, &r->pid, &r->uid, &r->name, &r->full, &r->raw };
	int rc;

	cat_read_study(st, r);
	rc = cat_dup_all(f, 6);
	if (rc < 0)
		catalog_study_clear(r);
	return rc;
}

static int cat_copy_series(sqlite3_stmt *st, void *out)
{
	struct catalog_series *r = out;
	char **f[] = { &r->coll, &r->pid, &r->study,    &r->uid,      &r->name,
		       &r->full, &r->raw, &r->facet[0], &r->facet[1], &r->facet[2] };
	int rc;

	cat_read_series(st, r);
	rc = cat_dup_all(f, 10);
	if (rc < 0)
		catalog_series_clear(r);
	return rc;
}

/* ---- queries ----------------------------------------------------------------------- */

int cat_query_v(struct catalog *c, int s, const char *const *params, int n, cat_row_fn row,
		void *arg, bool one)
{
	struct cat_conn *k = cat_reader(c);
	sqlite3_stmt *st;
	int rc, i, ret = one ? -ENOENT : 0;

	st = cat_stmt(k, s, &rc);
	if (!st) {
		ret = cat_fail(k, rc, "query");
		goto out_put;
	}
	for (i = 0; i < sqlite3_bind_parameter_count(st) && i < n; i++)
		cat_bind_text(st, i + 1, params[i]);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = row(st, arg);
		if (ret != 0 || one)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = cat_fail(k, rc, "query");
out_put:
	cat_reader_put(c, k, st);
	return ret;
}

int cat_query(struct catalog *c, int s, const char *a, const char *b, const char *d, cat_row_fn row,
	      void *arg, bool one)
{
	const char *params[3] = { a, b, d };

	return cat_query_v(c, s, params, 3, row, arg, one);
}

static int cat_each_coll(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	struct catalog_coll r;

	cat_read_coll(st, &r);
	return ((catalog_coll_fn)cb->fn)(cb->arg, &r);
}

static int cat_each_patient(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	struct catalog_patient r;

	cat_read_patient(st, &r);
	return ((catalog_patient_fn)cb->fn)(cb->arg, &r);
}

static int cat_each_study(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	struct catalog_study r;

	cat_read_study(st, &r);
	return ((catalog_study_fn)cb->fn)(cb->arg, &r);
}

static int cat_each_series(sqlite3_stmt *st, void *arg)
{
	struct cat_cb *cb = arg;
	struct catalog_series r;

	cat_read_series(st, &r);
	return ((catalog_series_fn)cb->fn)(cb->arg, &r);
}

int catalog_colls(struct catalog *c, catalog_coll_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_COLLS, NULL, NULL, NULL, cat_each_coll, &cb, false);
}

int catalog_patients(struct catalog *c, const char *coll, catalog_patient_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_PATIENTS, coll, NULL, NULL, cat_each_patient, &cb, false);
}

int catalog_studies(struct catalog *c, const char *coll, const char *pid, catalog_study_fn fn,
		    void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_STUDIES, coll, pid, NULL, cat_each_study, &cb, false);
}

int catalog_series(struct catalog *c, const char *coll, const char *pid, const char *study,
		   catalog_series_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_SERIES, coll, study, pid, cat_each_series, &cb, false);
}

int catalog_studies_named(struct catalog *c, const char *coll, const char *patient,
			  catalog_study_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_STUDIES_NAMED, coll, patient, NULL, cat_each_study, &cb, false);
}

int catalog_series_named(struct catalog *c, const char *coll, const char *patient,
			 const char *study, catalog_series_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_SERIES_NAMED, coll, patient, study, cat_each_series, &cb, false);
}

int catalog_all_studies(struct catalog *c, const char *coll, catalog_study_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_ALL_STUDIES, coll, NULL, NULL, cat_each_study, &cb, false);
}

int catalog_all_series(struct catalog *c, const char *coll, catalog_series_fn fn, void *arg)
{
	struct cat_cb cb = { (void *)fn, arg };

	return cat_query(c, ST_ALL_SERIES, coll, NULL, NULL, cat_each_series, &cb, false);
}

int catalog_coll_by_api(struct catalog *c, const char *api, struct catalog_coll *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_COLL_BY_API, api, NULL, NULL, cat_copy_coll, out, true);
}

int catalog_find_coll(struct catalog *c, const char *name, struct catalog_coll *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_FIND_COLL, name, NULL, NULL, cat_copy_coll, out, true);
}

int catalog_find_patient(struct catalog *c, const char *coll, const char *name,
			 struct catalog_patient *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_FIND_PATIENT, coll, name, NULL, cat_copy_patient, out, true);
}

int catalog_patient_by_id(struct catalog *c, const char *coll, const char *pid,
			  struct catalog_patient *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_PATIENT_BY_ID, coll, pid, NULL, cat_copy_patient, out, true);
}

int catalog_find_study(struct catalog *c, const char *coll, const char *pid, const char *name,
		       struct catalog_study *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_FIND_STUDY, coll, pid, name, cat_copy_study, out, true);
}

int catalog_find_patient_study(struct catalog *c, const char *coll, const char *patient,
			       const char *study, struct catalog_patient *p,
			       struct catalog_study *s)
{
	struct cat_pat_study ps = { p, s };

	memset(p, 0, sizeof(*p));
	memset(s, 0, sizeof(*s));
	return cat_query(c, ST_FIND_PAT_STUDY, coll, patient, study, cat_copy_pat_study, &ps, true);
}

int catalog_study_by_uid(struct catalog *c, const char *coll, const char *uid,
			 struct catalog_study *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_STUDY_BY_UID, coll, uid, NULL, cat_copy_study, out, true);
}

int catalog_find_series(struct catalog *c, const char *coll, const char *pid, const char *study,
			const char *name, struct catalog_series *out)
{
	const char *params[4] = { coll, study, name, pid };

	memset(out, 0, sizeof(*out));
	return cat_query_v(c, ST_FIND_SERIES, params, 4, cat_copy_series, out, true);
}

int catalog_series_by_uid(struct catalog *c, const char *uid, struct catalog_series *out)
{
	memset(out, 0, sizeof(*out));
	return cat_query(c, ST_SERIES_BY_UID, uid, NULL, NULL, cat_copy_series, out, true);
}

/* ---- what was loaded, and counts ------------------------------------------------ */

static int cat_read_loaded(sqlite3_stmt *st, void *arg)
{
	int64_t *v = arg;

	v[0] = sqlite3_column_int64(st, 0);
	v[1] = sqlite3_column_int64(st, 1);
	return 0;
}

int catalog_loaded(struct catalog *c, enum catalog_scope s, const char *coll, const char *pid,
		   int64_t *when_ms, int64_t *rows)
{
	struct cat_conn *k = cat_reader(c);
	int64_t v[2] = { 0, 0 };
	sqlite3_stmt *st;
	int rc, ret = -ENOENT;

	st = cat_stmt(k, ST_LOADED, &rc);
	if (!st) {
		ret = cat_fail(k, rc, "query");
		goto out_put;
	}
	sqlite3_bind_int(st, 1, (int)s);
	cat_bind_text(st, 2, coll ? coll : "");
	cat_bind_text(st, 3, pid ? pid : "");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = cat_read_loaded(st, v);
	else if (rc != SQLITE_DONE)
		ret = cat_fail(k, rc, "query");
out_put:
	cat_reader_put(c, k, st);
	if (when_ms)
		*when_ms = v[0];
	if (rows)
		*rows = v[1];
	return ret;
}

int catalog_release(struct catalog *c, char **out)
{
	struct cat_conn *k = cat_reader(c);
	sqlite3_stmt *st;
	int rc, ret = 0;

	*out = NULL;
	st = cat_stmt(k, ST_RELEASE, &rc);
	if (!st) {
		ret = cat_fail(k, rc, "query");
		goto out_put;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
	    !(*out = strdup((const char *)sqlite3_column_text(st, 0))))
		ret = -ENOMEM;
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = cat_fail(k, rc, "query");
out_put:
	cat_reader_put(c, k, st);
	return ret;
}

static int cat_read_counts(sqlite3_stmt *st, void *arg)
{
	struct catalog_stats *s = arg;

	s->colls = sqlite3_column_int64(st, 0);
	s->patients = sqlite3_column_int64(st, 1);
	s->studies = sqlite3_column_int64(st, 2);
	s->series = sqlite3_column_int64(st, 3);
	return 0;
}

void catalog_stats(struct catalog *c, struct catalog_stats *st)
{
	char side[PATH_MAX];
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (stat(c->path, &sb) == 0)
		st->file_bytes += sb.st_size;
	snprintf(side, sizeof(side), "%s-wal", c->path);
	if (stat(side, &sb) == 0)
		st->file_bytes += sb.st_size;
	cat_query(c, ST_COUNT, NULL, NULL, NULL, cat_read_counts, st, true);
	pthread_mutex_lock(&c->lock);
	st->loads = c->loads;
	st->load_failures = c->load_failures;
	pthread_mutex_unlock(&c->lock);
}
