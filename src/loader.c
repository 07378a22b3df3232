/* SPDX-License-Identifier: MIT
 * loader.c — loading what is looked at into the catalog (loader.h), and the snapshots
 * of lists built from it. One lock over the loader's own state: the loads in flight,
 * what it remembers of fresh loads (memos), the walks it counts, the snapshot slots and
 * the generation. Loads and builds run outside it.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"

#include "clock.h"
#include "log.h"
#include "names.h"
#include "record.h"
#include "source.h"

/* A walk: LOADER_WALK_PATIENTS patients of one collection loaded one by one within the
 * window, and the next look loads the collection in bulk. */
#define LOADER_WALK_PATIENTS 2
#define LOADER_WALK_WINDOW_MS 60000

/* A slow failed load (a silent server: it took a second or more) answers the callers
 * right behind it for this long instead of each starting another: sixteen callers
 * would otherwise queue up one timeout after another. Quick failures are retried. */
#define LOADER_FAIL_MEMORY_MS 3000
#define LOADER_SLOW_FAILURE_MS 1000

struct loader_flight;
struct loader_memo;

/* Targeted loads of one collection's patients, counted to see a walk coming. */
struct loader_walk {
	char *coll;
	int64_t start_ms;
	unsigned n;
	char *pids[LOADER_WALK_PATIENTS]; /* the patients counted in n, so none counts twice */
	struct loader_walk *next;
};

struct loader {
	struct source *src;  /* borrowed */
	struct catalog *cat; /* borrowed */
	struct loader_opts o;
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* a load or a build finished */
	unsigned gen;                  /* bumped by loader_expire; under lock, read atomically */
	int64_t expired_ms;            /* loads before this are stale (SIGHUP); under lock */
	struct loader_flight *flights; /* loads in progress; under lock */
	struct loader_walk *walks;     /* under lock */
	struct loader_memo *memos;     /* under lock */
	unsigned long memo_epoch;      /* the catalog's epoch they are of; under lock */
};

/* ---- life cycle ---------------------------------------------------------------------- */

static void loader_flights_free(struct loader *l);
static void loader_memos_free(struct loader *l);

int loader_new(struct source *src, const struct loader_opts *opts, struct loader **out)
{
	struct loader *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->src = src;
	l->o = *opts;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	*out = l;
	return 0;
}

void loader_free(struct loader *l)
{
	if (!l)
		return;
	loader_flights_free(l);
	loader_memos_free(l);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

void loader_set_catalog(struct loader *l, struct catalog *cat)
{
	l->cat = cat;
}

void loader_expire(struct loader *l)
{
	int64_t now = clock_wall_ms();

	pthread_mutex_lock(&l->lock);
	__atomic_add_fetch(&l->gen, 1, __ATOMIC_RELAXED);
	l->expired_ms = now;
	pthread_mutex_unlock(&l->lock);
}

unsigned loader_generation(struct loader *l)
{
	return __atomic_load_n(&l->gen, __ATOMIC_RELAXED);
}

/* ---- freshness --------------------------------------------------------------------- */

/* What this mount knows of the loads of a collection-wide scope (the list of
 * collections, a patient list, a bulk load): its time, remembered so that the looks
 * inside a collection loaded in bulk ask the catalog nothing to know it is fresh. */
struct loader_memo {
	enum catalog_scope scope;
	char *coll;
	int64_t when;
	struct loader_memo *next;
};

static void loader_memos_free(struct loader *l)
{
	while (l->memos) {
		struct loader_memo *m = l->memos;

		l->memos = m->next;
		free(m->coll);
		free(m);
	}
}

static bool loader_is_fresh(struct loader *l, int64_t when)
{
	return l->o.offline ||
	       (when > l->expired_ms && clock_wall_ms() - when < (int64_t)l->o.meta_ttl * 1000);
}

/* The memo of the scope, or NULL. Under l->lock. */
static struct loader_memo *loader_memo_find(struct loader *l, enum catalog_scope s,
					    const char *coll)
{
	struct loader_memo *m;

	for (m = l->memos; m; m = m->next)
		if (m->scope == s && strcmp(m->coll, coll ? coll : "") == 0)
			return m;
	return NULL;
}

/* A fresh remembered load of a collection-wide scope: its time, else 0. */
static int64_t loader_memo_fresh(struct loader *l, enum catalog_scope s, const char *coll)
{
	struct loader_memo *m;
	int64_t when = 0;

	if (s == CATALOG_PATIENT)
		return 0; /* too many to remember */
	pthread_mutex_lock(&l->lock);
	/* A catalog started anew (it was damaged) holds none of the loads remembered. */
	if (l->memo_epoch != catalog_epoch(l->cat)) {
		loader_memos_free(l);
		l->memo_epoch = catalog_epoch(l->cat);
	}
	m = loader_memo_find(l, s, coll);
	if (m && loader_is_fresh(l, m->when))
		when = m->when;
	pthread_mutex_unlock(&l->lock);
	return when;
}

/* Under l->lock. */
static void loader_memo_set(struct loader *l, enum catalog_scope s, const char *coll, int64_t when)
{
	struct loader_memo *m = loader_memo_find(l, s, coll);

	if (!m && (m = calloc(1, sizeof(*m))) != NULL) {
		m->scope = s;
		m->coll = strdup(coll ? coll : "");
		if (!m->coll) {
			free(m);
			return;
		}
		m->next = l->memos;
		l->memos = m;
	}
	if (m)
		m->when = when;
}

/* 1 when the scope was loaded and is still trusted, 0 when it was loaded but is stale, -1
 * when never. Offline, anything loaded is trusted. */
int loader_fresh(struct loader *l, enum catalog_scope s, const char *coll, const char *pid)
{
	unsigned long epoch;
	int64_t when;
	int fresh;

	if (loader_memo_fresh(l, s, coll))
		return 1;
	epoch = catalog_epoch(l->cat);
	if (catalog_loaded(l->cat, s, coll, pid, &when, NULL) < 0)
		return -1;
	pthread_mutex_lock(&l->lock);
	fresh = loader_is_fresh(l, when) ? 1 : 0;
	/* Not when the catalog it came from has since been set aside. */
	if (fresh && s != CATALOG_PATIENT && epoch == l->memo_epoch &&
	    epoch == catalog_epoch(l->cat))
		loader_memo_set(l, s, coll, when);
	pthread_mutex_unlock(&l->lock);
	return fresh;
}

bool loader_coll_fresh(struct loader *l, const char *coll)
{
	return loader_memo_fresh(l, CATALOG_PATIENTS, coll) != 0 &&
	       loader_memo_fresh(l, CATALOG_COLLECTION, coll) != 0;
}

int64_t loader_when(struct loader *l, enum catalog_scope s, const char *coll, const char *pid)
{
	int64_t when = loader_memo_fresh(l, s, coll);

	if (when == 0 && catalog_loaded(l->cat, s, coll, pid, &when, NULL) < 0)
		return 0;
	return when;
}

/* ---- one load at a time per scope -------------------------------------------------- */

struct loader_flight {
	char *key;
	bool done;
	int rc;
	char *why;
	int64_t failed_ms; /* a slow failure, remembered for a moment */
	int users;
	struct loader_flight *next;
};

static void loader_flights_free(struct loader *l)
{
	struct loader_flight *f, *next;

	for (f = l->flights; f; f = next) {
		next = f->next;
		free(f->key);
		free(f->why);
		free(f);
	}
	l->flights = NULL;
	while (l->walks) {
		struct loader_walk *w = l->walks;

		l->walks = w->next;
		while (w->n)
			free(w->pids[--w->n]);
		free(w->coll);
		free(w);
	}
}

static void loader_flight_unlink(struct loader *l, struct loader_flight *f)
{
	struct loader_flight **p;

	for (p = &l->flights; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	free(f->key);
	free(f->why);
	free(f);
}

typedef int (*loader_load_fn)(struct loader *l, const char *coll, const char *pid);

/* Whether an older load can stand in for a failed one (stale-if-error): not when the
 * catalog it is in was found damaged, or was set aside since `epoch` (it is gone). */
static bool loader_covered(struct loader *l, int state, unsigned long epoch)
{
	return state == 0 && !catalog_damaged(l->cat) && catalog_epoch(l->cat) == epoch;
}

/* Runs load for the scope unless it is fresh, once however many threads ask. A failure
 * is covered by an older load of the scope, with a warning. */
static int loader_ensure(struct loader *l, enum catalog_scope s, const char *coll, const char *pid,
			 loader_load_fn load)
{
	struct loader_flight *f;
	int64_t started;
	unsigned long epoch = catalog_epoch(l->cat);
	char key[1024];
	int state, rc;

	state = loader_fresh(l, s, coll, pid);
	if (state == 1)
		return 0;
	if (l->o.offline) {
		log_err("offline: %s%s%s%s is not in the catalog",
			s == CATALOG_ARCHIVE ? "the list of collections" : coll,
			pid ? " patient " : "", pid ? pid : "",
			s == CATALOG_PATIENTS ? " (patients)" : "");
		return -EIO;
	}
	snprintf(key, sizeof(key), "%d\x1f%s\x1f%s", (int)s, coll ? coll : "", pid ? pid : "");
	pthread_mutex_lock(&l->lock);
	for (f = l->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			break;
	if (f && f->done && f->failed_ms &&
	    clock_mono_ms() - f->failed_ms >= LOADER_FAIL_MEMORY_MS && f->users == 0) {
		loader_flight_unlink(l, f);
		f = NULL;
	}
	if (f) {
		/* Another thread is loading it (or failed slowly a moment ago): its answer. */
		f->users++;
		while (!f->done)
			pthread_cond_wait(&l->cond, &l->lock);
		rc = f->rc;
		log_adopt_reason(rc < 0 ? f->why : NULL);
		if (--f->users == 0 && !f->failed_ms)
			loader_flight_unlink(l, f);
		pthread_mutex_unlock(&l->lock);
		return rc < 0 && loader_covered(l, state, epoch) ? 0 : rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key))) {
		free(f);
		pthread_mutex_unlock(&l->lock);
		return -ENOMEM;
	}
	f->users = 1;
	f->next = l->flights;
	l->flights = f;
	pthread_mutex_unlock(&l->lock);

	started = clock_mono_ms();
	rc = load(l, coll, pid);
	if (rc < 0 && loader_covered(l, state, epoch) && rc != -ECANCELED) {
		log_warn("%s%s%s: the refresh failed (%s); serving what the catalog has",
			 coll ? coll : "the list of collections", pid ? " patient " : "",
			 pid ? pid : "", strerror(-rc));
	}

	pthread_mutex_lock(&l->lock);
	f->done = true;
	f->rc = rc;
	if (rc < 0) {
		f->why = strdup(log_reason());
		if (clock_mono_ms() - started >= LOADER_SLOW_FAILURE_MS)
			f->failed_ms = clock_mono_ms();
	}
	pthread_cond_broadcast(&l->cond);
	if (--f->users == 0 && !f->failed_ms)
		loader_flight_unlink(l, f);
	pthread_mutex_unlock(&l->lock);
	return rc < 0 && loader_covered(l, state, epoch) ? 0 : rc;
}

/* ---- the loads --------------------------------------------------------------------- */

/* Whether now (the source's release; NULL for a source without releases) is another
 * than the catalog recorded. If so, everything loaded so far is stale from this moment
 * and loads again as it is looked at. coll: the collection whose bulk load found it, or
 * NULL for the list of collections. */
static void loader_release_check(struct loader *l, const char *now, const char *coll)
{
	char *known = NULL;

	if (now && catalog_release(l->cat, &known) == 0 && known && strcmp(now, known) != 0) {
		if (coll)
			log_info("%s: %s published a new release, %s (was %s), while it was "
				 "loaded: it is loaded again at the next look",
				 coll, source_name(l->src), now, known);
		else
			log_info("%s serves a new release, %s (was %s): what was loaded is "
				 "refreshed as it is looked at",
				 source_name(l->src), now, known);
		loader_expire(l);
	}
	free(known);
}

static int loader_load_archive(struct loader *l, const char *coll, const char *pid)
{
	struct catalog_load *cl;
	struct source_colls v;
	char *release = NULL;
	size_t i;
	int rc;

	(void)coll;
	(void)pid;
	rc = source_release(l->src, &release);
	if (rc < 0)
		return rc;
	rc = source_collections(l->src, &v);
	if (rc < 0) {
		free(release);
		return rc;
	}
	rc = catalog_load_begin(l->cat, CATALOG_ARCHIVE, NULL, NULL, &cl);
	if (rc == 0 && release)
		rc = catalog_set_release(cl, release);
	for (i = 0; rc == 0 && i < v.count; i++) {
		struct catalog_coll r = { v.v[i].api, names_sanitize(v.v[i].name) };

		rc = r.name ? names_unreserve(&r.name, names_root_reserved, 2) : -ENOMEM;
		if (rc == 0)
			rc = catalog_add_coll(cl, &r);
		free(r.name);
	}
	/* Before the commit: this load, committed after the expiry, is not stale. */
	if (rc == 0)
		loader_release_check(l, release, NULL);
	if (rc == 0)
		rc = catalog_load_commit(cl);
	else
		catalog_load_abort(cl);
	source_colls_clear(&v);
	free(release);
	return rc;
}

/* What a streamed load is adding to. */
struct loader_sink {
	struct loader *ld;
	struct catalog_load *l;
	const char *coll;
	const char *pid; /* a targeted load: only this patient's rows */
	int64_t rows;
};

/* A retried request starts its answer over; the rows it already gave stay in the load
 * (they are replaced row by row as they come again). */
static int loader_sink_restart(void *arg)
{
	(void)arg;
	return 0;
}

static char *loader_patient_name(const char *pid)
{
	char *name = names_sanitize(pid);

	if (name && names_unreserve(&name, names_coll_reserved, 5) < 0) {
		free(name);
		name = NULL;
	}
	return name;
}

static int loader_sink_patient(void *arg, void *rec)
{
	struct loader_sink *k = arg;
	struct record_patient *p = rec;
	struct catalog_patient r = { (char *)k->coll, p->patient_id,
				     loader_patient_name(p->patient_id), p->raw };
	int rc = r.name ? catalog_add_patient(k->l, &r) : -ENOMEM;

	free(r.name);
	k->rows++;
	return rc;
}

/* A study's patient is added too (without its raw object, which the patient list
 * brings): a patient seen in a targeted or bulk load exists. */
static int loader_sink_study(void *arg, void *rec)
{
	struct loader_sink *k = arg;
	struct record_study *s = rec;
	struct catalog_patient p = { (char *)k->coll, s->patient_id, NULL, NULL };
	struct catalog_study r = {
		(char *)k->coll, s->patient_id, s->study_uid, NULL, NULL, s->raw, -1
	};
	int rc;

	if (!s->patient_id || (k->pid && strcmp(s->patient_id, k->pid) != 0))
		return 0;
	p.name = loader_patient_name(s->patient_id);
	if (k->ld->o.naming_uid) {
		r.name = names_sanitize(s->study_uid);
		r.full = r.name ? strdup(r.name) : NULL;
	} else {
		r.name = names_study(s->date, s->description, s->study_uid, false);
		r.full = names_study(s->date, s->description, s->study_uid, true);
	}
	r.mtime = names_parse_time(s->date, k->ld->o.mounted);
	rc = p.name && r.name && r.full ? catalog_add_patient(k->l, &p) : -ENOMEM;
	if (rc == 0)
		rc = catalog_add_study(k->l, &r);
	free(p.name);
	free(r.name);
	free(r.full);
	k->rows++;
	return rc;
}

static int loader_sink_series(void *arg, void *rec)
{
	struct loader_sink *k = arg;
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
		names_parse_time(s->timestamp, names_parse_time(s->date, k->ld->o.mounted)),
		s->image_count,
		s->file_size,
	};
	int rc;

	/* A series belongs where its study is: a targeted answer is the patient asked
	 * for, whatever its records say of themselves. */
	if (!s->study_uid)
		return 0;
	r.pid = (char *)(k->pid ? k->pid : s->patient_id ? s->patient_id : "");
	if (k->ld->o.naming_uid) {
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

static int loader_load_patients(struct loader *l, const char *coll, const char *pid)
{
	struct record_filter f = { .collection = coll };
	struct loader_sink k = { l, NULL, coll, NULL, 0 };
	int rc;

	(void)pid;
	rc = catalog_load_begin(l->cat, CATALOG_PATIENTS, coll, NULL, &k.l);
	if (rc < 0)
		return rc;
	rc = source_each(l->src, RECORD_PATIENTS, &f, loader_sink_patient, loader_sink_restart, &k);
	if (rc < 0) {
		catalog_load_abort(k.l);
		return rc;
	}
	return catalog_load_commit(k.l);
}

/* After a bulk load, which takes many pages: a release published meanwhile (or since
 * the collections were listed) may have mixed two in it. A failed check changes nothing
 * (the next refresh checks again). */
static void loader_check_release(struct loader *l, const char *coll)
{
	char *now = NULL;

	if (source_release(l->src, &now) == 0)
		loader_release_check(l, now, coll);
	free(now);
}

/* A collection's studies and series (bulk, pid NULL) or one patient's (targeted). */
static int loader_load_studies_series(struct loader *l, const char *coll, const char *pid)
{
	struct record_filter f = { .collection = coll, .patient_id = pid };
	struct loader_sink k = { l, NULL, coll, pid, 0 };
	int64_t t0 = clock_mono_ms(), t1, t2;
	int rc;

	rc = catalog_load_begin(l->cat, pid ? CATALOG_PATIENT : CATALOG_COLLECTION, coll, pid,
				&k.l);
	if (rc < 0)
		return rc;
	rc = source_each_studies_series(l->src, &f, loader_sink_study, loader_sink_series,
					loader_sink_restart, &k);
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
		loader_check_release(l, coll);
	return rc;
}

/* ---- what the tree asks ------------------------------------------------------------ */

int loader_archive(struct loader *l)
{
	return loader_ensure(l, CATALOG_ARCHIVE, NULL, NULL, loader_load_archive);
}

int loader_patients(struct loader *l, const char *coll)
{
	if (loader_fresh(l, CATALOG_PATIENTS, coll, NULL) == 1)
		return 0;
	return loader_ensure(l, CATALOG_PATIENTS, coll, NULL, loader_load_patients);
}

int loader_collection(struct loader *l, const char *coll)
{
	return loader_ensure(l, CATALOG_COLLECTION, coll, NULL, loader_load_studies_series);
}

/* Counts a targeted load of a patient of coll; true when it makes a walk (the third
 * patient within the window: the collection should be loaded in bulk instead). */
static bool loader_walking(struct loader *l, const char *coll, const char *pid)
{
	struct loader_walk *w;
	int64_t now = clock_mono_ms();
	bool walk = false;

	pthread_mutex_lock(&l->lock);
	for (w = l->walks; w; w = w->next)
		if (strcmp(w->coll, coll) == 0)
			break;
	if (!w && (w = calloc(1, sizeof(*w))) != NULL) {
		w->coll = strdup(coll);
		if (!w->coll) {
			free(w);
			w = NULL;
		} else {
			w->next = l->walks;
			l->walks = w;
		}
	}
	if (w) {
		unsigned i;

		if (now - w->start_ms > LOADER_WALK_WINDOW_MS) {
			w->start_ms = now;
			while (w->n)
				free(w->pids[--w->n]);
		}
		for (i = 0; i < w->n; i++)
			if (strcmp(w->pids[i], pid) == 0)
				break;
		walk = i == w->n && w->n >= LOADER_WALK_PATIENTS;
		if (i == w->n && !walk && (w->pids[w->n] = strdup(pid)) != NULL)
			w->n++;
	}
	pthread_mutex_unlock(&l->lock);
	return walk;
}

int loader_patient(struct loader *l, const char *coll, const char *pid)
{
	int rc;

	if (loader_fresh(l, CATALOG_COLLECTION, coll, NULL) == 1 ||
	    loader_fresh(l, CATALOG_PATIENT, coll, pid) == 1)
		return 0;
	if (!l->o.offline && loader_walking(l, coll, pid)) {
		rc = loader_collection(l, coll);
		/* A failed bulk load does not fail the look at one patient. */
		if (rc == 0 || rc == -ECANCELED)
			return rc;
	}
	if (l->o.offline && loader_fresh(l, CATALOG_COLLECTION, coll, NULL) >= 0)
		return 0;
	return loader_ensure(l, CATALOG_PATIENT, coll, pid, loader_load_studies_series);
}

/* Whether a folder name can be taken for the patient ID it shows: it names the patient
 * whose ID it is when sanitising left that ID alone. */
static bool loader_name_is_id(const char *name)
{
	char *s = loader_patient_name(name);
	bool same = s && strcmp(s, name) == 0;

	free(s);
	return same;
}

int loader_find_patient(struct loader *l, const char *coll, const char *name,
			struct catalog_patient *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (loader_fresh(l, CATALOG_PATIENTS, coll, NULL) == 1)
		return catalog_find_patient(l->cat, coll, name, out);
	if (l->o.offline) {
		/* Whatever the catalog has; a name it lacks is unknown only if the list was
		 * loaded, else offline cannot tell (EIO, said once by loader_patients). */
		rc = catalog_find_patient(l->cat, coll, name, out);
		if (rc == -ENOENT && loader_fresh(l, CATALOG_PATIENTS, coll, NULL) < 0)
			rc = loader_patients(l, coll);
		return rc < 0 ? rc : out->pid ? 0 : -ENOENT;
	}
	if (!loader_name_is_id(name)) {
		rc = loader_patients(l, coll);
		return rc < 0 ? rc : catalog_find_patient(l->cat, coll, name, out);
	}
	/* Without the patient list: ask for that patient alone. */
	rc = loader_patient(l, coll, name);
	if (rc < 0)
		return rc;
	return catalog_find_patient(l->cat, coll, name, out);
}

/* ---- snapshots of lists (collections, value lists) ----------------------------------- */

void loader_snap_put(struct loader *l, struct loader_snap *s)
{
	bool last;

	if (!s)
		return;
	pthread_mutex_lock(&l->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&l->lock);
	if (last)
		s->destroy(s);
}

/* Returns a referenced snapshot from slot (release with loader_snap_put), loading it when
 * there is none or it has expired. Concurrent callers share one load and its result; a
 * failed load is covered by the old snapshot when there is one (stale-if-error). */
int loader_slot_get(struct loader *l, struct loader_slot *slot, loader_build_fn build, void *arg,
		    struct loader_snap **out)
{
	struct loader_snap *s, *fresh = NULL, *old = NULL;
	int64_t started;
	unsigned seen;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		s = slot->snap;
		if (s && s->gen == l->gen && time(NULL) - s->fetched < l->o.meta_ttl)
			goto out_ref;
		if (!slot->loading && !s && slot->last_rc < 0 && slot->failed_ms &&
		    clock_mono_ms() - slot->failed_ms < LOADER_FAIL_MEMORY_MS) {
			rc = slot->last_rc;
			log_adopt_reason(slot->why);
			pthread_mutex_unlock(&l->lock);
			return rc;
		}
		if (!slot->loading)
			break;
		seen = slot->done;
		while (slot->loading && slot->done == seen)
			pthread_cond_wait(&l->cond, &l->lock);
		if (slot->last_rc < 0) {
			/* The load we waited for failed: share its outcome, do not retry. */
			s = slot->snap;
			if (s)
				goto out_ref;
			rc = slot->last_rc;
			log_adopt_reason(slot->why);
			pthread_mutex_unlock(&l->lock);
			return rc;
		}
		if (slot->snap)
			goto out_ref_any;
	}
	slot->loading = true;
	pthread_mutex_unlock(&l->lock);

	started = clock_mono_ms();
	log_clear_reason();
	rc = build(arg, &fresh);
	/* Parsing a big answer leaves megabytes of freed heap behind (a 10,000-series
	 * getSeries is ~8 MB of JSON): give them back rather than sit on them. */
	malloc_trim(0);

	pthread_mutex_lock(&l->lock);
	slot->loading = false;
	slot->done++;
	slot->last_rc = rc;
	slot->failed_ms = 0;
	free(slot->why);
	slot->why = rc < 0 ? strdup(log_reason()) : NULL; /* for the callers who waited */
	if (rc < 0 && clock_mono_ms() - started >= LOADER_SLOW_FAILURE_MS)
		slot->failed_ms = clock_mono_ms();
	pthread_cond_broadcast(&l->cond);
	if (rc == 0) {
		fresh->refs = 2; /* the slot's and the caller's */
		fresh->gen = l->gen;
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
	pthread_mutex_unlock(&l->lock);
	loader_snap_put(l, old);
	return rc;

out_ref_any:
	s = slot->snap;
out_ref:
	s->refs++;
	pthread_mutex_unlock(&l->lock);
	*out = s;
	return 0;
}

/* Drops a slot's snapshot; used when the owning collection goes away. */
struct loader_snap *loader_slot_peek(struct loader *l, struct loader_slot *slot)
{
	struct loader_snap *s;

	pthread_mutex_lock(&l->lock);
	s = slot->snap;
	if (s && s->gen == l->gen && time(NULL) - s->fetched < l->o.meta_ttl)
		s->refs++;
	else
		s = NULL;
	pthread_mutex_unlock(&l->lock);
	return s;
}

void loader_slot_clear(struct loader *l, struct loader_slot *slot)
{
	struct loader_snap *s = slot->snap;

	slot->snap = NULL;
	free(slot->why);
	slot->why = NULL;
	loader_snap_put(l, s);
}
