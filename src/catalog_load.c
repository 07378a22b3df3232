/* SPDX-License-Identifier: MIT
 * catalog_load.c — loads into the catalog: rows queued and written in batches, a big load
 * streamed into a staging database of its own and copied in at commit, so that the
 * catalog changes all at once or not at all and its write lock is never held across the
 * network.
 */
#include "catalog_int.h"
#include "clock.h"
#include "utf8.h"

/* A load's staging database: the tables a load writes, with only the keys its inserts
 * need; written without a journal (a crash loses nothing of the catalog's). */
static const char cat_stage_schema[] =
	"PRAGMA page_size=16384; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
	"CREATE TABLE collection(api TEXT PRIMARY KEY, name TEXT NOT NULL);"
	"CREATE TABLE patient(coll TEXT NOT NULL, pid TEXT NOT NULL, name TEXT NOT NULL,"
	" raw TEXT, PRIMARY KEY(coll, pid));"
	/* Appended to, no keys: duplicates resolve when copied into the catalog. */
	"CREATE TABLE study(coll TEXT NOT NULL, pid TEXT NOT NULL, uid TEXT NOT NULL,"
	" name TEXT NOT NULL, full TEXT NOT NULL, mtime INTEGER, raw TEXT NOT NULL);"
	"CREATE TABLE series(coll TEXT NOT NULL, pid TEXT NOT NULL, study TEXT NOT NULL,"
	" uid TEXT NOT NULL, name TEXT NOT NULL, full TEXT NOT NULL, mtime INTEGER,"
	" images INTEGER, bytes INTEGER, modality TEXT, body_part TEXT, manufacturer TEXT,"
	" raw TEXT NOT NULL);";

/* The writer's page cache while a staged load is copied in: the copy inserts 200,000
 * rows into indices in no order of theirs, and a page that leaves a small cache in the
 * middle of the transaction is written to the WAL again each time it changes (NLST's
 * copy: 3.1 s with 2 MiB, 2.2 s with 16 MiB, 1.6 s with 32 MiB but a peak RSS near
 * the 64 MiB the daemon keeps under). Only for the copy, then given back. */
#define CAT_COPY_CACHE ((size_t)16 << 20)

enum cat_order { CAT_ORDER_STUDY, CAT_ORDER_SERIES, CAT_ORDERS };

/* What a staged load brings into the catalog, inside the commit's transaction. Studies
 * and series go in their patients' order (cat_stage_order): rows that are read
 * together then share pages. */
static const struct {
	const char *sql;
	int order; /* an enum cat_order, or -1 */
} cat_stage_copy[] = {
	{ "INSERT OR REPLACE INTO main.collection SELECT * FROM stage.collection", -1 },
	{ "INSERT INTO main.patient(coll, pid, name, raw)"
	  " SELECT coll, pid, name, raw FROM stage.patient WHERE true"
	  " ON CONFLICT(coll, pid) DO UPDATE SET raw=coalesce(excluded.raw, patient.raw)",
	  -1 },
	{ "INSERT OR REPLACE INTO main.study(coll, pid, uid, name, full, mtime, raw)"
	  " SELECT coll, pid, uid, name, full, mtime, raw FROM stage.study",
	  CAT_ORDER_STUDY },
	/* A series goes where its study is, as ST_ADD_SERIES puts it. */
	{ "INSERT OR REPLACE INTO main.series(coll, pid, study, uid, name, full, mtime, images,"
	  " bytes, modality, body_part, manufacturer, raw) SELECT coll, coalesce((SELECT pid"
	  " FROM main.study m WHERE m.coll=s.coll AND m.uid=s.study), pid), study, uid, name,"
	  " full, mtime, images, bytes, modality, body_part, manufacturer, raw"
	  " FROM stage.series s",
	  CAT_ORDER_SERIES },
};

/* Rows that came out of their patients' order are copied in it, through an index made
 * on the staging database first (IDC sends series by UID: a study's series were then
 * on as many pages as it has series, and a facet's listing read every page of the
 * collection at random: 1.1 s at NLST size, 0.5 s once in order). */
static const struct {
	const char *index, *order;
} cat_stage_order[] = {
	[CAT_ORDER_STUDY] = { "CREATE INDEX study_order ON study(coll, pid)",
			      " ORDER BY coll, pid" },
	[CAT_ORDER_SERIES] = { "CREATE INDEX series_order ON series(coll, pid, study)",
			       " ORDER BY coll, pid, study" },
};

/* Rows wait here until there are CAT_BATCH of them or the load commits: a small load
 * (a patient, a patient list) takes the write lock only for its commit, never across
 * the network waits of its requests; a big one holds it from its first batch. */
#define CAT_BATCH 4096

enum cat_kind { CK_COLL, CK_PATIENT, CK_STUDY, CK_SERIES };

struct cat_row {
	enum cat_kind kind;
	union {
		struct catalog_coll coll;
		struct catalog_patient patient;
		struct catalog_study study;
		struct catalog_series series;
	} u;
};

struct catalog_load {
	struct catalog *c;
	enum catalog_scope scope;
	char *coll, *pid;
	int64_t rows;
	int rc;     /* the first failure of an add, kept for commit */
	bool begun; /* the write transaction is open (and wlock held) */
	struct cat_row *q;
	size_t nq;
	/* A load bigger than a batch (a collection in bulk) streams into a private staging
	 * database of its own, copied into the catalog in one short transaction at commit:
	 * the catalog's write lock is never held across the network. */
	struct cat_conn stage;
	char *stage_path;
	char *release; /* recorded at commit (catalog_set_release) */
	/* The last study's and series' keys ("coll\0pid\0study\0"), and whether a row
	 * came before the one put ahead of it (cat_stage_order). */
	struct cat_last {
		char *key;
		size_t cap;
		bool scattered;
	} last[CAT_ORDERS];
	/* A staged load's full batches are written by a thread of their own while the
	 * next one is gathered: parsing and naming on one core, SQLite on the other (the
	 * NLST load's thread spent some 40% of its time in the stage's inserts). Once it
	 * has started, only that thread touches the stage and last[] until it is stopped. */
	struct cat_writer {
		pthread_t thread;
		bool started, busy, stop;
		pthread_mutex_t lock;
		pthread_cond_t cond;
		struct cat_row *q; /* the batch being written, while busy */
		size_t nq;
		int rc; /* its first failure */
	} w;
};

static struct cat_conn *cat_load_conn(struct catalog_load *l)
{
	return l->stage.db ? &l->stage : &l->c->writer;
}

/* ---- loads ------------------------------------------------------------------------- */

/* Runs a writer statement: binds up to two text parameters, steps it to the end. */
static int cat_write(struct catalog_load *l, enum cat_stmt s, const char *a, const char *b)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(&l->c->writer, s, &rc);
	if (!st)
		return rc;
	if (sqlite3_bind_parameter_count(st) >= 1)
		cat_bind_text(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		cat_bind_text(st, 2, b);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void cat_row_clear(struct cat_row *r)
{
	switch (r->kind) {
	case CK_COLL:
		catalog_coll_clear(&r->u.coll);
		break;
	case CK_PATIENT:
		catalog_patient_clear(&r->u.patient);
		break;
	case CK_STUDY:
		catalog_study_clear(&r->u.study);
		break;
	case CK_SERIES:
		catalog_series_clear(&r->u.series);
		break;
	}
}

static void cat_load_free(struct catalog_load *l)
{
	size_t i;

	for (i = 0; i < l->nq; i++)
		cat_row_clear(&l->q[i]);
	free(l->q);
	free(l->w.q);
	pthread_mutex_destroy(&l->w.lock);
	pthread_cond_destroy(&l->w.cond);
	free(l->coll);
	free(l->pid);
	free(l->release);
	free(l->last[CAT_ORDER_STUDY].key);
	free(l->last[CAT_ORDER_SERIES].key);
	free(l);
}

int catalog_load_begin(struct catalog *c, enum catalog_scope s, const char *coll, const char *pid,
		       struct catalog_load **out)
{
	struct catalog_load *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->c = c;
	l->scope = s;
	pthread_mutex_init(&l->w.lock, NULL);
	pthread_cond_init(&l->w.cond, NULL);
	l->coll = strdup(coll ? coll : "");
	l->pid = strdup(pid ? pid : "");
	l->q = calloc(CAT_BATCH, sizeof(*l->q));
	if (!l->coll || !l->pid || !l->q) {
		cat_load_free(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

/* Opens the write transaction and clears what the scope held; wlock is held. Returns 0
 * or -errno (then no transaction is open). */
static int cat_load_open_locked(struct catalog_load *l)
{
	struct catalog *c = l->c;
	int rc;

	if (!c->writer.db)
		return cat_fail(NULL, SQLITE_CANTOPEN, "cannot start a load");
	rc = cat_exec(c->writer.db, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		goto out_fail;
	switch (l->scope) {
	case CATALOG_ARCHIVE:
		rc = cat_write(l, ST_DEL_COLLS, NULL, NULL);
		break;
	case CATALOG_PATIENTS:
		rc = cat_write(l, ST_DEL_LISTED_PATIENTS, l->coll, NULL);
		break;
	case CATALOG_COLLECTION:
		/* Patients are the patient list's (CATALOG_PATIENTS): those seen here in
		 * studies are added to it, none taken away. */
		rc = cat_write(l, ST_DEL_STUDIES, l->coll, NULL);
		if (rc == SQLITE_OK)
			rc = cat_write(l, ST_DEL_SERIES, l->coll, NULL);
		break;
	case CATALOG_PATIENT:
		rc = cat_write(l, ST_DEL_PAT_STUDIES, l->coll, l->pid);
		if (rc == SQLITE_OK)
			rc = cat_write(l, ST_DEL_PAT_SERIES, l->coll, l->pid);
		break;
	}
	if (rc != SQLITE_OK) {
		int ret = cat_fail(&c->writer, rc, "cannot start a load");

		cat_exec(c->writer.db, "ROLLBACK");
		return ret;
	}
	l->begun = true;
	return 0;
out_fail:
	return cat_fail(&c->writer, rc, "cannot start a load");
}

static int cat_load_open(struct catalog_load *l)
{
	int rc;

	cat_renew(l->c);
	pthread_mutex_lock(&l->c->wlock);
	rc = cat_load_open_locked(l);
	if (rc < 0)
		pthread_mutex_unlock(&l->c->wlock);
	return rc;
}

/* A row's insert: 0, or -errno with its one log line. */
static int cat_add_done(struct catalog_load *l, int rc)
{
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return cat_fail(cat_load_conn(l), rc, "cannot store a row");
	return 0;
}

static int cat_put_coll(struct catalog_load *l, const struct catalog_coll *r)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(cat_load_conn(l), ST_ADD_COLL, &rc);
	if (st) {
		cat_bind_text(st, 1, r->api);
		cat_bind_text(st, 2, r->name);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
	}
	return cat_add_done(l, rc);
}

static int cat_put_patient(struct catalog_load *l, const struct catalog_patient *r)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(cat_load_conn(l), ST_ADD_PATIENT, &rc);
	if (st) {
		cat_bind_text(st, 1, r->coll);
		cat_bind_text(st, 2, r->pid);
		cat_bind_text(st, 3, r->name);
		cat_bind_text(st, 4, r->raw);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
	}
	return cat_add_done(l, rc);
}

/* Notes whether a row's key (n parts) comes before the last one's. */
static int cat_note_order(struct catalog_load *l, enum cat_order o, const char *const *part,
			  size_t n)
{
	struct cat_last *last = &l->last[o];
	size_t len = 0, i, at;
	int cmp = 0;

	for (i = 0; i < n; i++)
		len += strlen(part[i]) + 1;
	for (i = 0, at = 0; i < n && last->key && cmp == 0; i++) {
		cmp = strcmp(part[i], last->key + at);
		at += strlen(last->key + at) + 1;
	}
	if (cmp < 0)
		last->scattered = true;
	if (len > last->cap) {
		char *grown = realloc(last->key, len);

		if (!grown)
			return -ENOMEM;
		last->key = grown;
		last->cap = len;
	}
	for (i = 0, at = 0; i < n; i++) {
		size_t k = strlen(part[i]) + 1;

		memcpy(last->key + at, part[i], k);
		at += k;
	}
	return 0;
}

static int cat_put_study(struct catalog_load *l, const struct catalog_study *r)
{
	sqlite3_stmt *st;
	int rc;

	if (cat_note_order(l, CAT_ORDER_STUDY, (const char *[]){ r->coll, r->pid }, 2) < 0)
		return -ENOMEM;
	st = cat_stmt(cat_load_conn(l), ST_ADD_STUDY, &rc);
	if (st) {
		cat_bind_text(st, 1, r->coll);
		cat_bind_text(st, 2, r->pid);
		cat_bind_text(st, 3, r->uid);
		cat_bind_text(st, 4, r->name);
		cat_bind_text(st, 5, r->full);
		cat_bind_text(st, 6, r->raw);
		cat_bind_num(st, 7, r->mtime);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
	}
	return cat_add_done(l, rc);
}

static int cat_put_series(struct catalog_load *l, const struct catalog_series *r)
{
	sqlite3_stmt *st;
	int rc, k;

	if (cat_note_order(l, CAT_ORDER_SERIES, (const char *[]){ r->coll, r->pid, r->study }, 3) <
	    0)
		return -ENOMEM;
	st = cat_stmt(cat_load_conn(l), l->stage.db ? ST_ADD_SERIES_STAGED : ST_ADD_SERIES, &rc);
	if (st) {
		cat_bind_text(st, 1, r->coll);
		cat_bind_text(st, 2, r->pid);
		cat_bind_text(st, 3, r->study);
		cat_bind_text(st, 4, r->uid);
		cat_bind_text(st, 5, r->name);
		cat_bind_text(st, 6, r->full);
		cat_bind_text(st, 7, r->raw);
		for (k = 0; k < 3; k++)
			cat_bind_text(st, 8 + k, r->facet[k]);
		cat_bind_num(st, 11, r->mtime);
		cat_bind_num(st, 12, r->images);
		cat_bind_num(st, 13, r->bytes);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
	}
	return cat_add_done(l, rc);
}

/* Writes n rows (rc 0) or only clears them (a failure before), and returns the first
 * failure. */
static int cat_put_rows(struct catalog_load *l, struct cat_row *q, size_t n, int rc)
{
	size_t i, pass;

	/* Series last: a series goes where its study is (ST_ADD_SERIES looks the study up),
	 * and a load's studies and series arrive side by side (source.h). */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n && rc == 0; i++) {
			struct cat_row *r = &q[i];

			if ((r->kind == CK_SERIES) != (pass == 1))
				continue;
			switch (r->kind) {
			case CK_COLL:
				rc = cat_put_coll(l, &r->u.coll);
				break;
			case CK_PATIENT:
				rc = cat_put_patient(l, &r->u.patient);
				break;
			case CK_STUDY:
				rc = cat_put_study(l, &r->u.study);
				break;
			case CK_SERIES:
				rc = cat_put_series(l, &r->u.series);
				break;
			}
		}
	}
	for (i = 0; i < n; i++)
		cat_row_clear(&q[i]);
	return rc;
}

/* Writes the waiting rows here, opening the transaction first if need be. */
static int cat_flush(struct catalog_load *l)
{
	int rc = l->rc;

	if (rc == 0 && !l->begun && !l->stage.db)
		rc = l->rc = cat_load_open(l);
	rc = cat_put_rows(l, l->q, l->nq, rc);
	if (rc < 0 && l->rc == 0)
		l->rc = rc;
	l->nq = 0;
	return rc;
}

/* ---- the stage's writer thread ----------------------------------------------------- */

static void *cat_writer_main(void *arg)
{
	struct catalog_load *l = arg;
	struct cat_writer *w = &l->w;
	int rc;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->busy && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->busy)
			break;
		rc = w->rc; /* after a failure, batches are only cleared */
		pthread_mutex_unlock(&w->lock);
		rc = cat_put_rows(l, w->q, w->nq, rc);
		pthread_mutex_lock(&w->lock);
		if (rc < 0 && w->rc == 0)
			w->rc = rc;
		w->nq = 0;
		w->busy = false;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Hands the full batch to the writer once it is through with the last one. Returns 0
 * or the writer's first failure; without a thread (it could not start), writes here. */
static int cat_hand(struct catalog_load *l)
{
	struct cat_writer *w = &l->w;
	struct cat_row *q;

	if (!w->started) {
		if (w->stop)
			return cat_flush(l); /* the thread could not start: all here */
		w->q = calloc(CAT_BATCH, sizeof(*w->q));
		if (w->q && pthread_create(&w->thread, NULL, cat_writer_main, l) == 0) {
			w->started = true;
		} else {
			w->stop = true;
			return cat_flush(l);
		}
	}
	pthread_mutex_lock(&w->lock);
	while (w->busy)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->rc && l->rc == 0)
		l->rc = w->rc;
	q = w->q;
	w->q = l->q;
	w->nq = l->nq;
	w->busy = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	l->q = q;
	l->nq = 0;
	return l->rc;
}

/* Waits for the writer's last batch and ends the thread; its failure becomes the
 * load's. */
static void cat_writer_stop(struct catalog_load *l)
{
	struct cat_writer *w = &l->w;

	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->started = false;
	if (w->rc && l->rc == 0)
		l->rc = w->rc;
}

/* Starts the load's staging database beside the catalog: "<catalog>.load-<pid>-<n>",
 * so that one left by a crash is known for what it is and removed (catalog_open). */
static int cat_stage_open(struct catalog_load *l)
{
	static unsigned long seq;
	int rc;

	if (asprintf(&l->stage_path, "%s.load-%ld-%lu", l->c->path, (long)getpid(),
		     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED)) < 0) {
		l->stage_path = NULL;
		return l->rc = -ENOMEM;
	}
	rc = sqlite3_open_v2(l->stage_path, &l->stage.db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK)
		rc = cat_exec(l->stage.db, "PRAGMA cache_size=-2048;");
	if (rc == SQLITE_OK)
		rc = cat_exec(l->stage.db, cat_stage_schema);
	if (rc == SQLITE_OK)
		rc = cat_exec(l->stage.db, "BEGIN");
	if (rc != SQLITE_OK)
		l->rc = cat_fail(&l->stage, rc, "cannot stage a load");
	return l->rc;
}

static void cat_stage_close(struct catalog_load *l)
{
	if (l->stage.db)
		cat_conn_close(&l->stage);
	if (l->stage_path) {
		unlink(l->stage_path);
		free(l->stage_path);
		l->stage_path = NULL;
	}
}

static struct cat_row *cat_queue(struct catalog_load *l, enum cat_kind kind)
{
	struct cat_row *r;

	if (l->nq == CAT_BATCH && !l->stage.db && cat_stage_open(l) < 0)
		return NULL;
	if (l->nq == CAT_BATCH && cat_hand(l) < 0)
		return NULL;
	r = &l->q[l->nq++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	l->rows++;
	return r;
}

/* A row missing what the schema requires is refused at once, with one line. */
static int cat_refuse(struct catalog_load *l, const char *what)
{
	log_err("catalog: cannot store a %s without its identifiers", what);
	if (l->rc == 0)
		l->rc = -EINVAL;
	return l->rc;
}

int catalog_add_coll(struct catalog_load *l, const struct catalog_coll *r)
{
	struct cat_row *q;
	char **f[2];

	if (l->rc)
		return l->rc;
	if (!r->api || !r->name)
		return cat_refuse(l, "collection");
	q = cat_queue(l, CK_COLL);
	if (!q)
		return l->rc;
	q->u.coll = *r;
	f[0] = &q->u.coll.api;
	f[1] = &q->u.coll.name;
	return cat_dup_all(f, 2) < 0 ? (l->rc = -ENOMEM) : 0;
}

int catalog_add_patient(struct catalog_load *l, const struct catalog_patient *r)
{
	struct cat_row *q;

	if (l->rc)
		return l->rc;
	if (!r->coll || !r->pid || !r->name)
		return cat_refuse(l, "patient");
	q = cat_queue(l, CK_PATIENT);
	if (!q)
		return l->rc;
	q->u.patient = *r;
	char **f[] = { &q->u.patient.coll, &q->u.patient.pid, &q->u.patient.name,
		       &q->u.patient.raw };
	return cat_dup_all(f, 4) < 0 ? (l->rc = -ENOMEM) : 0;
}

int catalog_add_study(struct catalog_load *l, const struct catalog_study *r)
{
	struct cat_row *q;

	if (l->rc)
		return l->rc;
	if (!r->coll || !r->pid || !r->uid || !r->name || !r->full || !r->raw)
		return cat_refuse(l, "study");
	q = cat_queue(l, CK_STUDY);
	if (!q)
		return l->rc;
	q->u.study = *r;
	char **f[] = { &q->u.study.coll, &q->u.study.pid,  &q->u.study.uid,
		       &q->u.study.name, &q->u.study.full, &q->u.study.raw };
	return cat_dup_all(f, 6) < 0 ? (l->rc = -ENOMEM) : 0;
}

int catalog_add_series(struct catalog_load *l, const struct catalog_series *r)
{
	struct cat_row *q;

	if (l->rc)
		return l->rc;
	if (!r->coll || !r->pid || !r->study || !r->uid || !r->name || !r->full || !r->raw)
		return cat_refuse(l, "series");
	q = cat_queue(l, CK_SERIES);
	if (!q)
		return l->rc;
	q->u.series = *r;
	char **f[] = { &q->u.series.coll,    &q->u.series.pid,      &q->u.series.study,
		       &q->u.series.uid,     &q->u.series.name,     &q->u.series.full,
		       &q->u.series.raw,     &q->u.series.facet[0], &q->u.series.facet[1],
		       &q->u.series.facet[2] };
	return cat_dup_all(f, 10) < 0 ? (l->rc = -ENOMEM) : 0;
}

struct cat_rename {
	int64_t rowid;
	char *name;
};

/* Names that still collide among siblings (the dup statement's rows: rowid, name,
 * parent, sorted) become "name~N" for all but the first of each group. */
static int cat_suffix_dups(struct catalog_load *l, enum cat_stmt dup, enum cat_stmt ren)
{
	struct cat_conn *k = &l->c->writer;
	struct cat_rename *v = NULL, *nv;
	char *prev_name = NULL, *prev_parent = NULL;
	size_t n = 0, cap = 0, i, run = 0;
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(k, dup, &rc);
	if (!st)
		return rc;
	if (sqlite3_bind_parameter_count(st) >= 1)
		cat_bind_text(st, 1, l->coll);
	if (sqlite3_bind_parameter_count(st) >= 2)
		cat_bind_text(st, 2, l->scope == CATALOG_PATIENT ? l->pid : NULL);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = cat_col(st, 1), *parent = cat_col(st, 2);

		if (prev_name && strcmp(prev_name, name) == 0 && strcmp(prev_parent, parent) == 0) {
			run++;
		} else {
			run = 0;
			free(prev_name);
			free(prev_parent);
			prev_name = strdup(name);
			prev_parent = strdup(parent);
			if (!prev_name || !prev_parent) {
				rc = SQLITE_NOMEM;
				break;
			}
		}
		if (run == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[n].name = utf8_twin(name, run + 1);
		if (!v[n].name) {
			rc = SQLITE_NOMEM;
			break;
		}
		v[n++].rowid = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	free(prev_name);
	free(prev_parent);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	for (i = 0; i < n; i++) {
		if (rc == SQLITE_OK && (st = cat_stmt(k, ren, &rc)) != NULL) {
			sqlite3_bind_int64(st, 1, v[i].rowid);
			cat_bind_text(st, 2, v[i].name);
			rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
		free(v[i].name);
	}
	free(v);
	return rc;
}

/* Names the scope's folders for good: full names where readable ones collide, then
 * "~N" where even those do. */
static int cat_fix_names(struct catalog_load *l)
{
	const char *pid = l->scope == CATALOG_PATIENT ? l->pid : NULL;
	int rc = SQLITE_OK;

	switch (l->scope) {
	case CATALOG_ARCHIVE:
		return cat_suffix_dups(l, ST_DUP_COLLS, ST_RENAME_COLL);
	case CATALOG_PATIENTS:
		return cat_suffix_dups(l, ST_DUP_PATIENTS, ST_RENAME_PATIENT);
	case CATALOG_COLLECTION:
		/* fall through */
	case CATALOG_PATIENT:
		if (rc == SQLITE_OK)
			rc = cat_write(l, ST_FULL_STUDIES, l->coll, pid);
		if (rc == SQLITE_OK)
			rc = cat_write(l, ST_FULL_SERIES, l->coll, pid);
		if (rc == SQLITE_OK)
			rc = cat_suffix_dups(l, ST_DUP_STUDIES, ST_RENAME_STUDY);
		if (rc == SQLITE_OK)
			rc = cat_suffix_dups(l, ST_DUP_SERIES, ST_RENAME_SERIES);
		break;
	}
	return rc;
}

static int cat_record(struct catalog_load *l, enum catalog_scope s)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(&l->c->writer, ST_RECORD, &rc);
	if (!st)
		return rc;
	sqlite3_bind_int(st, 1, (int)s);
	cat_bind_text(st, 2, l->coll);
	cat_bind_text(st, 3, l->pid);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	sqlite3_bind_int64(st, 5, l->rows);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int catalog_set_release(struct catalog_load *l, const char *release)
{
	free(l->release);
	l->release = strdup(release);
	return l->release ? 0 : -ENOMEM;
}

/* The archive's release, in place of the one recorded before. */
static int cat_record_release(struct catalog_load *l)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(&l->c->writer, ST_DEL_RELEASE, &rc);
	if (!st)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	st = cat_stmt(&l->c->writer, ST_RECORD, &rc);
	if (!st)
		return rc;
	sqlite3_bind_int(st, 1, CAT_RELEASE_SCOPE);
	cat_bind_text(st, 2, "");
	cat_bind_text(st, 3, l->release);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	sqlite3_bind_int64(st, 5, 0);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A staged load's rows, into the catalog: the staging database is attached to the
 * writer and copied inside the load's transaction (opened here). */
static int cat_stage_commit(struct catalog_load *l)
{
	struct catalog *c = l->c;
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc = SQLITE_OK;

	for (i = 0; i < CAT_ORDERS && rc == SQLITE_OK; i++)
		if (l->last[i].scattered)
			rc = cat_exec(l->stage.db, cat_stage_order[i].index);
	if (rc == SQLITE_OK)
		rc = cat_exec(l->stage.db, "COMMIT");
	if (rc != SQLITE_OK)
		return l->rc = cat_fail(&l->stage, rc, "cannot stage a load");
	cat_conn_close(&l->stage);
	pthread_mutex_lock(&c->wlock);
	rc = sqlite3_prepare_v2(c->writer.db, "ATTACH ?1 AS stage", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, l->stage_path, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		l->rc = cat_fail(&c->writer, rc, "cannot attach a staged load");
		pthread_mutex_unlock(&c->wlock);
		return l->rc;
	}
	l->rc = cat_load_open_locked(l);
	if (l->rc < 0) {
		cat_exec(c->writer.db, "DETACH stage");
		pthread_mutex_unlock(&c->wlock);
		return l->rc;
	}
	cat_cache_kib(c->writer.db, CAT_COPY_CACHE >> 10);
	for (i = 0; i < sizeof(cat_stage_copy) / sizeof(cat_stage_copy[0]) && rc == SQLITE_OK;
	     i++) {
		int o = cat_stage_copy[i].order;
		char *sql = NULL;

		if (o >= 0 && l->last[o].scattered &&
		    asprintf(&sql, "%s%s", cat_stage_copy[i].sql, cat_stage_order[o].order) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		rc = cat_exec(c->writer.db, sql ? sql : cat_stage_copy[i].sql);
		free(sql);
	}
	if (rc != SQLITE_OK)
		l->rc = cat_fail(&c->writer, rc, "cannot copy a staged load");
	return l->rc;
}

/* After the load's transaction ended: the staging database goes, and the writer's page
 * cache is its usual size again, its memory given back. */
static void cat_stage_end(struct catalog_load *l)
{
	if (!l->stage_path)
		return;
	cat_exec(l->c->writer.db, "DETACH stage");
	cat_cache_kib(l->c->writer.db, l->c->cache_bytes >> 10);
	sqlite3_db_release_memory(l->c->writer.db);
	cat_stage_close(l);
}

int catalog_load_commit(struct catalog_load *l)
{
	struct catalog *c = l->c;
	int rc = SQLITE_OK, ret;

	cat_writer_stop(l);
	ret = cat_flush(l);
	if (ret == 0 && l->stage.db)
		ret = cat_stage_commit(l);
	if (ret == 0) {
		rc = cat_fix_names(l);
		if (rc == SQLITE_OK)
			rc = cat_record(l, l->scope);
		if (rc == SQLITE_OK && l->release)
			rc = cat_record_release(l);
		if (rc == SQLITE_OK)
			rc = cat_exec(c->writer.db, "COMMIT");
		if (rc != SQLITE_OK)
			ret = cat_fail(&c->writer, rc, "cannot commit a load");
	}
	if (l->begun) {
		if (ret != 0 && !sqlite3_get_autocommit(c->writer.db))
			cat_exec(c->writer.db, "ROLLBACK");
		cat_stage_end(l);
		pthread_mutex_unlock(&c->wlock);
	}
	cat_stage_close(l);
	pthread_mutex_lock(&c->lock);
	if (ret == 0)
		c->loads++;
	else
		c->load_failures++;
	pthread_mutex_unlock(&c->lock);
	cat_load_free(l);
	return ret;
}

void catalog_load_abort(struct catalog_load *l)
{
	struct catalog *c;

	if (!l)
		return;
	c = l->c;
	cat_writer_stop(l);
	if (l->begun) {
		if (!sqlite3_get_autocommit(c->writer.db))
			cat_exec(c->writer.db, "ROLLBACK");
		cat_stage_end(l);
		pthread_mutex_unlock(&c->wlock);
	}
	cat_stage_close(l);
	pthread_mutex_lock(&c->lock);
	c->load_failures++;
	pthread_mutex_unlock(&c->lock);
	cat_load_free(l);
}
