/* SPDX-License-Identifier: MIT
 * tree_load.c — loading what is looked at into the catalog. A look at one patient of a
 * collection asks for that patient only (targeted); a walk over several patients, or a
 * view of the whole collection, loads the collection in bulk, streamed from the HTTP
 * body into one catalog transaction. Concurrent callers share one load; a failed load
 * leaves the catalog as it was and an older load of the scope covers for it.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "clock.h"
#include "log.h"
#include "tree_int.h"

/* A walk: TREE_WALK_PATIENTS patients of one collection loaded one by one within the
 * window, and the next look loads the collection in bulk. */
#define TREE_WALK_WINDOW_MS 60000

/* ---- freshness --------------------------------------------------------------------- */

/* What this mount knows of the loads of a collection-wide scope (the list of
 * collections, a patient list, a bulk load): its time, remembered so that the looks
 * inside a collection loaded in bulk ask the catalog nothing to know it is fresh. */
struct tree_memo {
	enum catalog_scope scope;
	char *coll;
	int64_t when;
	struct tree_memo *next;
};

void tree_memos_free(struct tree *t)
{
	while (t->memos) {
		struct tree_memo *m = t->memos;

		t->memos = m->next;
		free(m->coll);
		free(m);
	}
}

static bool tree_is_fresh(struct tree *t, int64_t when)
{
	return t->offline ||
	       (when > t->expired_ms && clock_wall_ms() - when < (int64_t)t->meta_ttl * 1000);
}

/* The memo of the scope, or NULL. Under t->lock. */
static struct tree_memo *tree_memo_find(struct tree *t, enum catalog_scope s, const char *coll)
{
	struct tree_memo *m;

	for (m = t->memos; m; m = m->next)
		if (m->scope == s && strcmp(m->coll, coll ? coll : "") == 0)
			return m;
	return NULL;
}

/* A fresh remembered load of a collection-wide scope: its time, else 0. */
static int64_t tree_memo_fresh(struct tree *t, enum catalog_scope s, const char *coll)
{
	struct tree_memo *m;
	int64_t when = 0;

	if (s == CATALOG_PATIENT)
		return 0; /* too many to remember */
	pthread_mutex_lock(&t->lock);
	/* A catalog started anew (it was damaged) holds none of the loads remembered. */
	if (t->memo_epoch != catalog_epoch(t->cat)) {
		tree_memos_free(t);
		t->memo_epoch = catalog_epoch(t->cat);
	}
	m = tree_memo_find(t, s, coll);
	if (m && tree_is_fresh(t, m->when))
		when = m->when;
	pthread_mutex_unlock(&t->lock);
	return when;
}

/* Under t->lock. */
static void tree_memo_set(struct tree *t, enum catalog_scope s, const char *coll, int64_t when)
{
	struct tree_memo *m = tree_memo_find(t, s, coll);

	if (!m && (m = calloc(1, sizeof(*m))) != NULL) {
		m->scope = s;
		m->coll = strdup(coll ? coll : "");
		if (!m->coll) {
			free(m);
			return;
		}
		m->next = t->memos;
		t->memos = m;
	}
	if (m)
		m->when = when;
}

/* 1 when the scope was loaded and is still trusted, 0 when it was loaded but is stale, -1
 * when never. Offline, anything loaded is trusted. */
int tree_scope_fresh(struct tree *t, enum catalog_scope s, const char *coll, const char *pid)
{
	unsigned long epoch;
	int64_t when;
	int fresh;

	if (tree_memo_fresh(t, s, coll))
		return 1;
	epoch = catalog_epoch(t->cat);
	if (catalog_loaded(t->cat, s, coll, pid, &when, NULL) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	fresh = tree_is_fresh(t, when) ? 1 : 0;
	/* Not when the catalog it came from has since been set aside. */
	if (fresh && s != CATALOG_PATIENT && epoch == t->memo_epoch &&
	    epoch == catalog_epoch(t->cat))
		tree_memo_set(t, s, coll, when);
	pthread_mutex_unlock(&t->lock);
	return fresh;
}

bool tree_coll_loaded_fresh(struct tree *t, const char *coll)
{
	return tree_memo_fresh(t, CATALOG_PATIENTS, coll) != 0 &&
	       tree_memo_fresh(t, CATALOG_COLLECTION, coll) != 0;
}

int64_t tree_scope_when(struct tree *t, enum catalog_scope s, const char *coll, const char *pid)
{
	int64_t when = tree_memo_fresh(t, s, coll);

	if (when == 0 && catalog_loaded(t->cat, s, coll, pid, &when, NULL) < 0)
		return 0;
	return when;
}

/* ---- one load at a time per scope -------------------------------------------------- */

struct tree_flight {
	char *key;
	bool done;
	int rc;
	char *why;
	int64_t failed_ms; /* a slow failure, remembered for a moment */
	int users;
	struct tree_flight *next;
};

void tree_flights_free(struct tree *t)
{
	struct tree_flight *f, *next;

	for (f = t->flights; f; f = next) {
		next = f->next;
		free(f->key);
		free(f->why);
		free(f);
	}
	t->flights = NULL;
	while (t->walks) {
		struct tree_walk *w = t->walks;

		t->walks = w->next;
		while (w->n)
			free(w->pids[--w->n]);
		free(w->coll);
		free(w);
	}
}

static void tree_flight_unlink(struct tree *t, struct tree_flight *f)
{
	struct tree_flight **p;

	for (p = &t->flights; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	free(f->key);
	free(f->why);
	free(f);
}

typedef int (*tree_loader_fn)(struct tree *t, const char *coll, const char *pid);

/* Whether an older load can stand in for a failed one (stale-if-error): not when the
 * catalog it is in was found damaged, or was set aside since `epoch` (it is gone). */
static bool tree_covered(struct tree *t, int state, unsigned long epoch)
{
	return state == 0 && !catalog_damaged(t->cat) && catalog_epoch(t->cat) == epoch;
}

/* Runs load for the scope unless it is fresh, once however many threads ask. A failure
 * is covered by an older load of the scope, with a warning. */
static int tree_ensure(struct tree *t, enum catalog_scope s, const char *coll, const char *pid,
		       tree_loader_fn load)
{
	struct tree_flight *f;
	int64_t started;
	unsigned long epoch = catalog_epoch(t->cat);
	char key[1024];
	int state, rc;

	state = tree_scope_fresh(t, s, coll, pid);
	if (state == 1)
		return 0;
	if (t->offline) {
		log_err("offline: %s%s%s%s is not in the catalog",
			s == CATALOG_ARCHIVE ? "the list of collections" : coll,
			pid ? " patient " : "", pid ? pid : "",
			s == CATALOG_PATIENTS ? " (patients)" : "");
		return -EIO;
	}
	snprintf(key, sizeof(key), "%d\x1f%s\x1f%s", (int)s, coll ? coll : "", pid ? pid : "");
	pthread_mutex_lock(&t->lock);
	for (f = t->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			break;
	if (f && f->done && f->failed_ms && clock_mono_ms() - f->failed_ms >= TREE_FAIL_MEMORY_MS &&
	    f->users == 0) {
		tree_flight_unlink(t, f);
		f = NULL;
	}
	if (f) {
		/* Another thread is loading it (or failed slowly a moment ago): its answer. */
		f->users++;
		while (!f->done)
			pthread_cond_wait(&t->cond, &t->lock);
		rc = f->rc;
		log_adopt_reason(rc < 0 ? f->why : NULL);
		if (--f->users == 0 && !f->failed_ms)
			tree_flight_unlink(t, f);
		pthread_mutex_unlock(&t->lock);
		return rc < 0 && tree_covered(t, state, epoch) ? 0 : rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key))) {
		free(f);
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	f->users = 1;
	f->next = t->flights;
	t->flights = f;
	pthread_mutex_unlock(&t->lock);

	started = clock_mono_ms();
	rc = load(t, coll, pid);
	if (rc < 0 && tree_covered(t, state, epoch) && rc != -ECANCELED) {
		log_warn("%s%s%s: the refresh failed (%s); serving what the catalog has",
			 coll ? coll : "the list of collections", pid ? " patient " : "",
			 pid ? pid : "", strerror(-rc));
	}

	pthread_mutex_lock(&t->lock);
	f->done = true;
	f->rc = rc;
	if (rc < 0) {
		f->why = strdup(log_reason());
		if (clock_mono_ms() - started >= TREE_SLOW_FAILURE_MS)
			f->failed_ms = clock_mono_ms();
	}
	pthread_cond_broadcast(&t->cond);
	if (--f->users == 0 && !f->failed_ms)
		tree_flight_unlink(t, f);
	pthread_mutex_unlock(&t->lock);
	return rc < 0 && tree_covered(t, state, epoch) ? 0 : rc;
}

/* ---- the loads --------------------------------------------------------------------- */

/* Whether now (the source's release; NULL for a source without releases) is another
 * than the catalog recorded. If so, everything loaded so far is stale from this moment
 * and loads again as it is looked at. coll: the collection whose bulk load found it, or
 * NULL for the list of collections. */
static void tree_release_check(struct tree *t, const char *now, const char *coll)
{
	char *known = NULL;

	if (now && catalog_release(t->cat, &known) == 0 && known && strcmp(now, known) != 0) {
		if (coll)
			log_info("%s: %s published a new release, %s (was %s), while it was "
				 "loaded: it is loaded again at the next look",
				 coll, source_name(t->src), now, known);
		else
			log_info("%s serves a new release, %s (was %s): what was loaded is "
				 "refreshed as it is looked at",
				 source_name(t->src), now, known);
		tree_expire(t);
	}
	free(known);
}

static int tree_load_archive(struct tree *t, const char *coll, const char *pid)
{
	struct catalog_load *l;
	struct source_colls v;
	char *release = NULL;
	size_t i;
	int rc;

	(void)coll;
	(void)pid;
	rc = source_release(t->src, &release);
	if (rc < 0)
		return rc;
	rc = source_collections(t->src, &v);
	if (rc < 0) {
		free(release);
		return rc;
	}
	rc = catalog_load_begin(t->cat, CATALOG_ARCHIVE, NULL, NULL, &l);
	if (rc == 0 && release)
		rc = catalog_set_release(l, release);
	for (i = 0; rc == 0 && i < v.count; i++) {
		struct catalog_coll r = { v.v[i].api, names_sanitize(v.v[i].name) };

		rc = r.name ? names_unreserve(&r.name, names_root_reserved, 2) : -ENOMEM;
		if (rc == 0)
			rc = catalog_add_coll(l, &r);
		free(r.name);
	}
	/* Before the commit: this load, committed after the expiry, is not stale. */
	if (rc == 0)
		tree_release_check(t, release, NULL);
	if (rc == 0)
		rc = catalog_load_commit(l);
	else
		catalog_load_abort(l);
	source_colls_clear(&v);
	free(release);
	return rc;
}

/* What a streamed load is adding to. */
struct tree_sink {
	struct tree *t;
	struct catalog_load *l;
	const char *coll;
	const char *pid; /* a targeted load: only this patient's rows */
	int64_t rows;
};

/* A retried request starts its answer over; the rows it already gave stay in the load
 * (they are replaced row by row as they come again). */
static int tree_sink_restart(void *arg)
{
	(void)arg;
	return 0;
}

static char *tree_patient_name(const char *pid)
{
	char *name = names_sanitize(pid);

	if (name && names_unreserve(&name, names_coll_reserved, 5) < 0) {
		free(name);
		name = NULL;
	}
	return name;
}

static int tree_sink_patient(void *arg, void *rec)
{
	struct tree_sink *k = arg;
	struct record_patient *p = rec;
	struct catalog_patient r = { (char *)k->coll, p->patient_id,
				     tree_patient_name(p->patient_id), p->raw };
	int rc = r.name ? catalog_add_patient(k->l, &r) : -ENOMEM;

	free(r.name);
	k->rows++;
	return rc;
}

/* A study's patient is added too (without its raw object, which the patient list
 * brings): a patient seen in a targeted or bulk load exists. */
static int tree_sink_study(void *arg, void *rec)
{
	struct tree_sink *k = arg;
	struct record_study *s = rec;
	struct catalog_patient p = { (char *)k->coll, s->patient_id, NULL, NULL };
	struct catalog_study r = {
		(char *)k->coll, s->patient_id, s->study_uid, NULL, NULL, s->raw, -1
	};
	int rc;

	if (!s->patient_id || (k->pid && strcmp(s->patient_id, k->pid) != 0))
		return 0;
	p.name = tree_patient_name(s->patient_id);
	if (k->t->naming_uid) {
		r.name = names_sanitize(s->study_uid);
		r.full = r.name ? strdup(r.name) : NULL;
	} else {
		r.name = names_study(s->date, s->description, s->study_uid, false);
		r.full = names_study(s->date, s->description, s->study_uid, true);
	}
	r.mtime = names_parse_time(s->date, k->t->mounted);
	rc = p.name && r.name && r.full ? catalog_add_patient(k->l, &p) : -ENOMEM;
	if (rc == 0)
		rc = catalog_add_study(k->l, &r);
	free(p.name);
	free(r.name);
	free(r.full);
	k->rows++;
	return rc;
}

static int tree_sink_series(void *arg, void *rec)
{
	struct tree_sink *k = arg;
	struct record_series *s = rec;
	struct catalog_series r = {
		(char *)k->coll,
		s->patient_id,
		s->study_uid,
		s->series_uid,
		NULL,
		NULL,
		s->raw,
		{ s->modality, s->body_part, s->manufacturer },
		names_parse_time(s->timestamp, names_parse_time(s->date, k->t->mounted)),
		s->image_count,
		s->file_size,
	};
	int rc;

	/* A series belongs where its study is: a targeted answer is the patient asked
	 * for, whatever its records say of themselves. */
	if (!s->study_uid)
		return 0;
	r.pid = (char *)(k->pid ? k->pid : s->patient_id ? s->patient_id : "");
	if (k->t->naming_uid) {
		r.name = names_sanitize(s->series_uid);
		r.full = r.name ? strdup(r.name) : NULL;
	} else {
		r.name = names_series(s->number, s->modality, s->description, s->series_uid, false);
		r.full = names_series(s->number, s->modality, s->description, s->series_uid, true);
	}
	rc = r.name && r.full ? catalog_add_series(k->l, &r) : -ENOMEM;
	free(r.name);
	free(r.full);
	k->rows++;
	return rc;
}

static int tree_load_patients(struct tree *t, const char *coll, const char *pid)
{
	struct record_filter f = { .collection = coll };
	struct tree_sink k = { t, NULL, coll, NULL, 0 };
	int rc;

	(void)pid;
	rc = catalog_load_begin(t->cat, CATALOG_PATIENTS, coll, NULL, &k.l);
	if (rc < 0)
		return rc;
	rc = source_each(t->src, RECORD_PATIENTS, &f, tree_sink_patient, tree_sink_restart, &k);
	if (rc < 0) {
		catalog_load_abort(k.l);
		return rc;
	}
	return catalog_load_commit(k.l);
}

/* After a bulk load, which takes many pages: a release published meanwhile (or since
 * the collections were listed) may have mixed two in it. A failed check changes nothing
 * (the next refresh checks again). */
static void tree_check_release(struct tree *t, const char *coll)
{
	char *now = NULL;

	if (source_release(t->src, &now) == 0)
		tree_release_check(t, now, coll);
	free(now);
}

/* A collection's studies and series (bulk, pid NULL) or one patient's (targeted). */
static int tree_load_studies_series(struct tree *t, const char *coll, const char *pid)
{
	struct record_filter f = { .collection = coll, .patient_id = pid };
	struct tree_sink k = { t, NULL, coll, pid, 0 };
	int64_t t0 = clock_mono_ms(), t1, t2;
	int rc;

	rc = catalog_load_begin(t->cat, pid ? CATALOG_PATIENT : CATALOG_COLLECTION, coll, pid,
				&k.l);
	if (rc < 0)
		return rc;
	rc = source_each_studies_series(t->src, &f, tree_sink_study, tree_sink_series,
					tree_sink_restart, &k);
	if (rc < 0) {
		catalog_load_abort(k.l);
		return rc;
	}
	t1 = clock_mono_ms();
	rc = catalog_load_commit(k.l);
	t2 = clock_mono_ms();
	if (rc == 0 && pid)
		log_debug("%s patient %s: %lld studies and series loaded", coll, pid,
			  (long long)k.rows);
	else if (rc == 0)
		/* Said once it is in: a big commit (a copy of the staged rows) takes seconds. */
		log_info("%s: %lld studies and series loaded in bulk in %.1f s (%.1f s of it "
			 "to commit)",
			 coll, (long long)k.rows, (double)(t2 - t0) / 1e3, (double)(t2 - t1) / 1e3);
	if (rc == 0 && !pid)
		tree_check_release(t, coll);
	return rc;
}

/* ---- what the tree asks ------------------------------------------------------------ */

int tree_cat_archive(struct tree *t)
{
	return tree_ensure(t, CATALOG_ARCHIVE, NULL, NULL, tree_load_archive);
}

int tree_cat_patients(struct tree *t, const char *coll)
{
	if (tree_scope_fresh(t, CATALOG_PATIENTS, coll, NULL) == 1)
		return 0;
	return tree_ensure(t, CATALOG_PATIENTS, coll, NULL, tree_load_patients);
}

int tree_cat_collection(struct tree *t, const char *coll)
{
	return tree_ensure(t, CATALOG_COLLECTION, coll, NULL, tree_load_studies_series);
}

/* Counts a targeted load of a patient of coll; true when it makes a walk (the third
 * patient within the window: the collection should be loaded in bulk instead). */
static bool tree_walking(struct tree *t, const char *coll, const char *pid)
{
	struct tree_walk *w;
	int64_t now = clock_mono_ms();
	bool walk = false;

	pthread_mutex_lock(&t->lock);
	for (w = t->walks; w; w = w->next)
		if (strcmp(w->coll, coll) == 0)
			break;
	if (!w && (w = calloc(1, sizeof(*w))) != NULL) {
		w->coll = strdup(coll);
		if (!w->coll) {
			free(w);
			w = NULL;
		} else {
			w->next = t->walks;
			t->walks = w;
		}
	}
	if (w) {
		unsigned i;

		if (now - w->start_ms > TREE_WALK_WINDOW_MS) {
			w->start_ms = now;
			while (w->n)
				free(w->pids[--w->n]);
		}
		for (i = 0; i < w->n; i++)
			if (strcmp(w->pids[i], pid) == 0)
				break;
		walk = i == w->n && w->n >= TREE_WALK_PATIENTS;
		if (i == w->n && !walk && (w->pids[w->n] = strdup(pid)) != NULL)
			w->n++;
	}
	pthread_mutex_unlock(&t->lock);
	return walk;
}

int tree_cat_patient(struct tree *t, const char *coll, const char *pid)
{
	int rc;

	if (tree_scope_fresh(t, CATALOG_COLLECTION, coll, NULL) == 1 ||
	    tree_scope_fresh(t, CATALOG_PATIENT, coll, pid) == 1)
		return 0;
	if (!t->offline && tree_walking(t, coll, pid)) {
		rc = tree_cat_collection(t, coll);
		/* A failed bulk load does not fail the look at one patient. */
		if (rc == 0 || rc == -ECANCELED)
			return rc;
	}
	if (t->offline && tree_scope_fresh(t, CATALOG_COLLECTION, coll, NULL) >= 0)
		return 0;
	return tree_ensure(t, CATALOG_PATIENT, coll, pid, tree_load_studies_series);
}

/* Whether a folder name can be taken for the patient ID it shows: it names the patient
 * whose ID it is when sanitising left that ID alone. */
static bool tree_name_is_id(const char *name)
{
	char *s = tree_patient_name(name);
	bool same = s && strcmp(s, name) == 0;

	free(s);
	return same;
}

int tree_cat_find_patient(struct tree *t, const char *coll, const char *name,
			  struct catalog_patient *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (tree_scope_fresh(t, CATALOG_PATIENTS, coll, NULL) == 1)
		return catalog_find_patient(t->cat, coll, name, out);
	if (t->offline) {
		/* Whatever the catalog has; a name it lacks is unknown only if the list was
		 * loaded, else offline cannot tell (EIO, said once by tree_cat_patients). */
		rc = catalog_find_patient(t->cat, coll, name, out);
		if (rc == -ENOENT && tree_scope_fresh(t, CATALOG_PATIENTS, coll, NULL) < 0)
			rc = tree_cat_patients(t, coll);
		return rc < 0 ? rc : out->pid ? 0 : -ENOENT;
	}
	if (!tree_name_is_id(name)) {
		rc = tree_cat_patients(t, coll);
		return rc < 0 ? rc : catalog_find_patient(t->cat, coll, name, out);
	}
	/* Without the patient list: ask for that patient alone. */
	rc = tree_cat_patient(t, coll, name);
	if (rc < 0)
		return rc;
	return catalog_find_patient(t->cat, coll, name, out);
}

/* ---- snapshots of lists (collections, value lists) ----------------------------------- */

void tree_snap_put(struct tree *t, struct tree_snap *s)
{
	bool last;

	if (!s)
		return;
	pthread_mutex_lock(&t->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&t->lock);
	if (last)
		s->destroy(s);
}

/* Returns a referenced snapshot from slot (release with tree_snap_put), loading it when
 * there is none or it has expired. Concurrent callers share one load and its result; a
 * failed load is covered by the old snapshot when there is one (stale-if-error). */
int tree_slot_get(struct tree *t, struct tree_slot *slot, tree_load_fn load, void *arg,
		  struct tree_snap **out)
{
	struct tree_snap *s, *fresh = NULL, *old = NULL;
	int64_t started;
	unsigned seen;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		s = slot->snap;
		if (s && s->gen == t->gen && time(NULL) - s->fetched < t->meta_ttl)
			goto out_ref;
		if (!slot->loading && !s && slot->last_rc < 0 && slot->failed_ms &&
		    clock_mono_ms() - slot->failed_ms < TREE_FAIL_MEMORY_MS) {
			rc = slot->last_rc;
			log_adopt_reason(slot->why);
			pthread_mutex_unlock(&t->lock);
			return rc;
		}
		if (!slot->loading)
			break;
		seen = slot->done;
		while (slot->loading && slot->done == seen)
			pthread_cond_wait(&t->cond, &t->lock);
		if (slot->last_rc < 0) {
			/* The load we waited for failed: share its outcome, do not retry. */
			s = slot->snap;
			if (s)
				goto out_ref;
			rc = slot->last_rc;
			log_adopt_reason(slot->why);
			pthread_mutex_unlock(&t->lock);
			return rc;
		}
		if (slot->snap)
			goto out_ref_any;
	}
	slot->loading = true;
	pthread_mutex_unlock(&t->lock);

	started = clock_mono_ms();
	log_clear_reason();
	rc = load(t, arg, &fresh);
	/* Parsing a big answer leaves megabytes of freed heap behind (a 10,000-series
	 * getSeries is ~8 MB of JSON): give them back rather than sit on them. */
	malloc_trim(0);

	pthread_mutex_lock(&t->lock);
	slot->loading = false;
	slot->done++;
	slot->last_rc = rc;
	slot->failed_ms = 0;
	free(slot->why);
	slot->why = rc < 0 ? strdup(log_reason()) : NULL; /* for the callers who waited */
	if (rc < 0 && clock_mono_ms() - started >= TREE_SLOW_FAILURE_MS)
		slot->failed_ms = clock_mono_ms();
	pthread_cond_broadcast(&t->cond);
	if (rc == 0) {
		fresh->refs = 2; /* the slot's and the caller's */
		fresh->gen = t->gen;
		old = slot->snap;
		slot->snap = fresh;
		*out = fresh;
	} else if (slot->snap) {
		log_warn("serving what was listed %lds ago: %s",
			 (long)(time(NULL) - slot->snap->fetched), strerror(-rc));
		slot->snap->refs++;
		*out = slot->snap;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	tree_snap_put(t, old);
	return rc;

out_ref_any:
	s = slot->snap;
out_ref:
	s->refs++;
	pthread_mutex_unlock(&t->lock);
	*out = s;
	return 0;
}

/* Drops a slot's snapshot; used when the owning collection goes away. */
void tree_slot_clear(struct tree *t, struct tree_slot *slot)
{
	struct tree_snap *s = slot->snap;

	slot->snap = NULL;
	free(slot->why);
	slot->why = NULL;
	tree_snap_put(t, s);
}

static void tree_colls_destroy_with(struct tree *t, struct tree_colls *c)
{
	size_t i;

	for (i = 0; i < c->count; i++) {
		tree_slot_clear(t, &c->v[i].vals);
		tree_slot_clear(t, &c->v[i].facets);
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

static void tree_colls_destroy(struct tree_snap *s)
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
int tree_load_colls(struct tree *t, void *arg, struct tree_snap **out)
{
	struct tree_colls_snap *cs;
	struct tree_colls_build b = { NULL, 0 };
	int rc;

	(void)arg;
	rc = tree_cat_archive(t);
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

static void tree_vals_destroy(struct tree_snap *s)
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
int tree_load_vals(struct tree *t, void *arg, struct tree_snap **out)
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
