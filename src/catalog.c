/* SPDX-License-Identifier: MIT
 * catalog.c — the metadata catalog on SQLite: schema, recovery from a broken file, what was
 * loaded (loads are in catalog_load.c, the tree's reads in catalog_query.c; every SQL
 * statement of tciafs is here or in catalog_load.c). Readers take a connection from a small
 * pool (WAL lets them run beside the one writer) and keep its read transaction for a
 * moment; a thread of the catalog's own folds the log back. Each connection's page cache
 * is capped, so memory stays flat however big the catalog grows.
 */
#include "catalog_int.h"

#include <sys/resource.h>

#include "clock.h"

static const char cat_schema[] =
	"CREATE TABLE IF NOT EXISTS collection("
	" api TEXT PRIMARY KEY, name TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS patient("
	" coll TEXT NOT NULL, pid TEXT NOT NULL, name TEXT NOT NULL, raw TEXT,"
	" PRIMARY KEY(coll, pid));"
	"CREATE INDEX IF NOT EXISTS patient_name ON patient(coll, name, pid);"
	"CREATE TABLE IF NOT EXISTS study("
	" coll TEXT NOT NULL, pid TEXT NOT NULL, uid TEXT NOT NULL, name TEXT NOT NULL,"
	" full TEXT NOT NULL, mtime INTEGER, raw TEXT NOT NULL, PRIMARY KEY(coll, uid));"
	/* A folder's listing reads an index alone: names with what a listing shows. */
	"CREATE INDEX IF NOT EXISTS study_name ON study(coll, pid, name, mtime, uid);"
	"CREATE TABLE IF NOT EXISTS series("
	" coll TEXT NOT NULL, pid TEXT NOT NULL, study TEXT NOT NULL, uid TEXT NOT NULL,"
	" name TEXT NOT NULL, full TEXT NOT NULL, mtime INTEGER, images INTEGER,"
	" bytes INTEGER, modality TEXT, body_part TEXT, manufacturer TEXT, raw TEXT NOT NULL,"
	" PRIMARY KEY(uid, coll));"
	/* Few indices on the big table: each costs a bulk load 200,000 inserts. A UID finds
	 * its series through the key (random inserts); a facet is a scan of one collection.
	 * Series by folder name go by patient first: a load copies them in patients' order
	 * and a walk reads them in it, so both meet this index's pages one after another
	 * (by study UID first, its pages were met at random: a walk read 290,000 pages).
	 * It holds what a study's listing and a facet's names need, so that neither reads
	 * the table (a series' row is mostly its object as sent: 200 MB at NLST size). */
	"CREATE INDEX IF NOT EXISTS series_name ON series(coll, pid, study, name, mtime, uid,"
	" modality, body_part, manufacturer);"
	"CREATE TABLE IF NOT EXISTS load("
	" scope INTEGER NOT NULL, coll TEXT NOT NULL, pid TEXT NOT NULL,"
	" fetched INTEGER NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY(scope, coll, pid));";

#define CAT_STUDY_COLS "coll, pid, uid, name, full, raw, mtime"
#define CAT_SERIES_COLS                                                                      \
	"coll, pid, study, uid, name, full, raw, modality, body_part, manufacturer, mtime, " \
	"images, bytes"

const char *const cat_sql[ST_N] = {
	[ST_LOADED] = "SELECT fetched, rows FROM load WHERE scope=?1 AND coll=?2 AND pid=?3",
	[ST_READ_BEGIN] = "BEGIN",
	[ST_READ_END] = "COMMIT",
	[ST_RECORD] = "INSERT OR REPLACE INTO load(scope, coll, pid, fetched, rows)"
		      " VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_RELEASE] = "SELECT pid FROM load WHERE scope=4 AND coll=''",
	[ST_DEL_RELEASE] = "DELETE FROM load WHERE scope=4",
	[ST_DEL_COLLS] = "DELETE FROM collection",
	/* A new patient list replaces the old one; patients known only from a targeted
	 * look (no raw object) stay. */
	[ST_DEL_LISTED_PATIENTS] = "DELETE FROM patient WHERE coll=?1 AND raw IS NOT NULL",
	[ST_DEL_STUDIES] = "DELETE FROM study WHERE coll=?1",
	[ST_DEL_SERIES] = "DELETE FROM series WHERE coll=?1",
	[ST_DEL_PAT_STUDIES] = "DELETE FROM study WHERE coll=?1 AND pid=?2",
	[ST_DEL_PAT_SERIES] = "DELETE FROM series WHERE coll=?1 AND pid=?2",
	[ST_ADD_COLL] = "INSERT OR REPLACE INTO collection(api, name) VALUES(?1, ?2)",
	/* A patient seen first in its studies gets its raw object when the list comes; a
	 * targeted look never drops one the list gave. */
	[ST_ADD_PATIENT] = "INSERT INTO patient(coll, pid, name, raw) VALUES(?1, ?2, ?3, ?4)"
			   " ON CONFLICT(coll, pid) DO UPDATE SET"
			   " raw=coalesce(excluded.raw, patient.raw)",
	[ST_ADD_STUDY] = "INSERT OR REPLACE INTO study(" CAT_STUDY_COLS ")"
			 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	/* A series belongs where its study is, whatever PatientID its record gives: the
	 * folder-name index goes by the study's patient. A staged load (no keys to look a
	 * study up by) takes the study's at its copy (catalog_load.c). */
	[ST_ADD_SERIES] = "INSERT OR REPLACE INTO series(" CAT_SERIES_COLS ")"
			  " VALUES(?1, coalesce((SELECT pid FROM study WHERE coll=?1 AND uid=?3),"
			  " ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_ADD_SERIES_STAGED] = "INSERT INTO series(" CAT_SERIES_COLS ")"
				 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	/* Siblings whose readable names collide take their full names. The IN list is
	 * computed before any row changes. */
	[ST_FULL_STUDIES] = "UPDATE study SET name=full WHERE rowid IN ("
			    " SELECT s.rowid FROM study s JOIN ("
			    "  SELECT pid, name FROM study WHERE coll=?1 AND (?2 IS NULL OR pid=?2)"
			    "  GROUP BY pid, name HAVING count(*) > 1) d"
			    " ON s.coll=?1 AND s.pid=d.pid AND s.name=d.name)",
	[ST_FULL_SERIES] =
		"UPDATE series SET name=full WHERE rowid IN ("
		" SELECT s.rowid FROM ("
		"  SELECT pid, study, name FROM series WHERE coll=?1"
		"  AND (?2 IS NULL OR pid=?2) GROUP BY pid, study, name HAVING count(*) > 1) d"
		" CROSS JOIN series s"
		" ON s.coll=?1 AND s.pid=d.pid AND s.study=d.study AND s.name=d.name)",
	/* What still collides, in a stable order: all but the first get "~N". */
	[ST_DUP_COLLS] = "SELECT c.rowid, c.name, '' FROM collection c JOIN ("
			 " SELECT name FROM collection GROUP BY name HAVING count(*) > 1) d"
			 " USING(name) ORDER BY c.name, c.api",
	[ST_DUP_PATIENTS] = "SELECT p.rowid, p.name, '' FROM patient p JOIN ("
			    " SELECT name FROM patient WHERE coll=?1 GROUP BY name"
			    " HAVING count(*) > 1) d ON p.coll=?1 AND p.name=d.name"
			    " ORDER BY p.name, p.pid",
	[ST_DUP_STUDIES] = "SELECT s.rowid, s.name, s.pid FROM study s JOIN ("
			   " SELECT pid, name FROM study WHERE coll=?1 AND (?2 IS NULL OR pid=?2)"
			   " GROUP BY pid, name HAVING count(*) > 1) d"
			   " ON s.coll=?1 AND s.pid=d.pid AND s.name=d.name"
			   " ORDER BY s.pid, s.name, s.uid",
	[ST_DUP_SERIES] =
		"SELECT s.rowid, s.name, s.study FROM ("
		" SELECT pid, study, name FROM series WHERE coll=?1"
		" AND (?2 IS NULL OR pid=?2) GROUP BY pid, study, name HAVING count(*) > 1) d"
		" CROSS JOIN series s"
		" ON s.coll=?1 AND s.pid=d.pid AND s.study=d.study AND s.name=d.name"
		" ORDER BY s.pid, s.study, s.name, s.uid",
	[ST_RENAME_COLL] = "UPDATE collection SET name=?2 WHERE rowid=?1",
	[ST_RENAME_PATIENT] = "UPDATE patient SET name=?2 WHERE rowid=?1",
	[ST_RENAME_STUDY] = "UPDATE study SET name=?2 WHERE rowid=?1",
	[ST_RENAME_SERIES] = "UPDATE series SET name=?2 WHERE rowid=?1",
	[ST_COLLS] = "SELECT api, name FROM collection ORDER BY name",
	[ST_PATIENTS] = "SELECT coll, pid, name, raw FROM patient WHERE coll=?1 ORDER BY name",
	/* Listings: what the index holds (CAT_STUDY_COLS' places, full and raw NULL). */
	[ST_STUDIES] = "SELECT coll, pid, uid, name, NULL, NULL, mtime FROM study"
		       " WHERE coll=?1 AND pid=?2 ORDER BY name",
	[ST_SERIES] = "SELECT coll, pid, study, uid, name, NULL, NULL, modality, body_part,"
		      " manufacturer, mtime, NULL, NULL FROM series WHERE coll=?1 AND pid=?3"
		      " AND study=?2 ORDER BY name",
	/* The same by folder names, the patient (and study) found in a subquery: a walk's
	 * listing in one statement, in the index's order (a join's ORDER BY would sort). */
	[ST_STUDIES_NAMED] = "SELECT coll, pid, uid, name, NULL, NULL, mtime FROM study"
			     " WHERE coll=?1 AND pid=(SELECT pid FROM patient WHERE coll=?1"
			     " AND name=?2) ORDER BY name",
	[ST_SERIES_NAMED] =
		"SELECT coll, pid, study, uid, name, NULL, NULL, modality, body_part,"
		" manufacturer, mtime, NULL, NULL FROM series WHERE coll=?1 AND"
		" (pid, study)=(SELECT st.pid, st.uid FROM patient p CROSS JOIN study st"
		" ON st.coll=p.coll AND st.pid=p.pid AND st.name=?3"
		" WHERE p.coll=?1 AND p.name=?2) ORDER BY name",
	[ST_FIND_COLL] = "SELECT api, name FROM collection WHERE name=?1",
	[ST_FIND_PATIENT] = "SELECT coll, pid, name, raw FROM patient WHERE coll=?1 AND name=?2",
	[ST_PATIENT_BY_ID] = "SELECT coll, pid, name, raw FROM patient WHERE coll=?1 AND pid=?2",
	[ST_FIND_STUDY] = "SELECT " CAT_STUDY_COLS " FROM study WHERE coll=?1 AND pid=?2"
			  " AND name=?3 UNION ALL SELECT " CAT_STUDY_COLS " FROM study"
			  " WHERE coll=?1 AND uid=?3 AND pid=?2 LIMIT 1",
	/* A patient and one of its studies by their folder names, in one statement and from
	 * the indices alone (no objects as sent: study.json reads its own): a walk resolves
	 * a study's folder for each of its listings. */
	[ST_FIND_PAT_STUDY] = "SELECT p.coll, p.pid, p.name, NULL, st.coll, st.pid, st.uid,"
			      " st.name, NULL, NULL, st.mtime FROM patient p CROSS JOIN study st"
			      " ON st.coll=p.coll AND st.pid=p.pid AND st.name=?3"
			      " WHERE p.coll=?1 AND p.name=?2",
	[ST_STUDY_BY_UID] = "SELECT " CAT_STUDY_COLS " FROM study WHERE coll=?1 AND uid=?2",
	[ST_FIND_SERIES] =
		"SELECT " CAT_SERIES_COLS " FROM series WHERE coll=?1 AND pid=?4"
		" AND study=?2 AND name=?3 UNION ALL SELECT " CAT_SERIES_COLS " FROM series"
		" WHERE coll=?1 AND uid=?3 AND study=?2 LIMIT 1",
	[ST_SERIES_BY_UID] = "SELECT " CAT_SERIES_COLS " FROM series WHERE uid=?1"
			     " ORDER BY uid, coll LIMIT 1",
	[ST_ALL_STUDIES] = "SELECT " CAT_STUDY_COLS " FROM study WHERE coll=?1 ORDER BY pid, name",
	[ST_ALL_SERIES] = "SELECT " CAT_SERIES_COLS " FROM series WHERE coll=?1"
			  " ORDER BY pid, study, name",
	[ST_COLL_BY_API] = "SELECT api, name FROM collection WHERE api=?1",
/* The views. A facet's value is the column's; NULL and "" are both "unknown". */
#define CAT_FACET_VALUES(col) "SELECT DISTINCT nullif(" col ", '') FROM series WHERE coll=?1"
	[ST_FACET_VALUES + 0] = CAT_FACET_VALUES("modality"),
	[ST_FACET_VALUES + 1] = CAT_FACET_VALUES("body_part"),
	[ST_FACET_VALUES + 2] = CAT_FACET_VALUES("manufacturer"),
#define CAT_LINK_COLS                                                                     \
	"s.coll, s.pid, s.study, s.uid, s.name, s.full, s.raw, s.modality, s.body_part, " \
	"s.manufacturer, s.mtime, s.images, s.bytes, p.name, st.name"
/* Patient, then its studies, then their series, each through an index (CROSS JOIN fixes
 * that order: without statistics SQLite would scan the collection's series and look up
 * each one's study and patient). Rows then come in patient order, so the sort is only
 * ever of one patient's series, and the first rows come before the last is read. */
#define CAT_FACET_FROM                                                               \
	" FROM patient p CROSS JOIN study st ON st.coll=p.coll AND st.pid=p.pid"     \
	" CROSS JOIN series s ON s.coll=st.coll AND s.pid=st.pid AND s.study=st.uid" \
	" WHERE p.coll=?1"
#define CAT_LINKS(cond) \
	"SELECT " CAT_LINK_COLS CAT_FACET_FROM " AND " cond " ORDER BY p.name, s.name, s.uid"
#define CAT_KNOWN(col) "s." col "=?2"
#define CAT_UNKNOWN(col) "?2 IS NULL AND (s." col " IS NULL OR s." col "='')"
	[ST_FACET_LINKS + 0] = CAT_LINKS(CAT_KNOWN("modality")),
	[ST_FACET_LINKS + 1] = CAT_LINKS(CAT_UNKNOWN("modality")),
	[ST_FACET_LINKS + 2] = CAT_LINKS(CAT_KNOWN("body_part")),
	[ST_FACET_LINKS + 3] = CAT_LINKS(CAT_UNKNOWN("body_part")),
	[ST_FACET_LINKS + 4] = CAT_LINKS(CAT_KNOWN("manufacturer")),
	[ST_FACET_LINKS + 5] = CAT_LINKS(CAT_UNKNOWN("manufacturer")),
/* The same, only what a listing shows: the sort then carries a few names per row,
 * not every series as sent (210,000 of them: 170 MB through the sorter). */
#define CAT_NAMES(cond)                                                       \
	"SELECT s.name, s.mtime, p.name, st.name" CAT_FACET_FROM " AND " cond \
	" ORDER BY p.name, s.name, s.uid"
	[ST_FACET_NAMES + 0] = CAT_NAMES(CAT_KNOWN("modality")),
	[ST_FACET_NAMES + 1] = CAT_NAMES(CAT_UNKNOWN("modality")),
	[ST_FACET_NAMES + 2] = CAT_NAMES(CAT_KNOWN("body_part")),
	[ST_FACET_NAMES + 3] = CAT_NAMES(CAT_UNKNOWN("body_part")),
	[ST_FACET_NAMES + 4] = CAT_NAMES(CAT_KNOWN("manufacturer")),
	[ST_FACET_NAMES + 5] = CAT_NAMES(CAT_UNKNOWN("manufacturer")),
/* One link by its patient's and series' folder names: a handful of rows through
 * indices (CAT_FACET_FROM), never a scan of the collection. */
#define CAT_LINK(cond)                                                                  \
	"SELECT " CAT_LINK_COLS CAT_FACET_FROM " AND p.name=?3 AND s.name=?4 AND " cond \
	" ORDER BY s.uid"
	[ST_FACET_LINK + 0] = CAT_LINK(CAT_KNOWN("modality")),
	[ST_FACET_LINK + 1] = CAT_LINK(CAT_UNKNOWN("modality")),
	[ST_FACET_LINK + 2] = CAT_LINK(CAT_KNOWN("body_part")),
	[ST_FACET_LINK + 3] = CAT_LINK(CAT_UNKNOWN("body_part")),
	[ST_FACET_LINK + 4] = CAT_LINK(CAT_KNOWN("manufacturer")),
	[ST_FACET_LINK + 5] = CAT_LINK(CAT_UNKNOWN("manufacturer")),
	/* The tables: each object's row and its folders' names, in path order; only what
	 * the tree shows (a study under a listed patient, a series under such a study). The
	 * objects are read by rowid once sorted (ST_RAW_OF): the sort carries names, not
	 * 170 MB of objects as sent. Patients first, through indices (half the time of the
	 * series first, each looking up its study and patient). */
	[ST_TABLE + 0] = "SELECT rowid, name, NULL, NULL FROM patient WHERE coll=?1 AND"
			 " raw IS NOT NULL ORDER BY name",
	[ST_TABLE + 1] = "SELECT st.rowid, p.name, st.name, NULL FROM patient p CROSS JOIN study st"
			 " ON st.coll=p.coll AND st.pid=p.pid WHERE p.coll=?1 AND p.raw IS NOT NULL"
			 " ORDER BY p.name || '/' || st.name",
	[ST_TABLE + 2] =
		"SELECT s.rowid, p.name, st.name, s.name" CAT_FACET_FROM
		" AND p.raw IS NOT NULL ORDER BY p.name || '/' || st.name || '/' || s.name",
	/* An object as sent, by rowid: read once the table's rows are sorted. */
	[ST_RAW_OF + 0] = "SELECT raw FROM patient WHERE rowid=?1",
	[ST_RAW_OF + 1] = "SELECT raw FROM study WHERE rowid=?1",
	[ST_RAW_OF + 2] = "SELECT raw FROM series WHERE rowid=?1",
	/* The distinct text values of LicenseName, LicenseURI and CollectionURI over a
	 * collection's series, first seen first: one pass (each raw parsed once, SQLite
	 * caching the parse for the six calls), not one per member. */
	[ST_LICENCE] = "WITH v AS MATERIALIZED (SELECT rowid r,"
		       " CASE WHEN json_type(raw, '$.LicenseName')='text'"
		       "  THEN json_extract(raw, '$.LicenseName') END a,"
		       " CASE WHEN json_type(raw, '$.LicenseURI')='text'"
		       "  THEN json_extract(raw, '$.LicenseURI') END b,"
		       " CASE WHEN json_type(raw, '$.CollectionURI')='text'"
		       "  THEN json_extract(raw, '$.CollectionURI') END c"
		       " FROM series WHERE coll=?1)"
		       " SELECT 0, a, min(r) FROM v WHERE a IS NOT NULL GROUP BY a UNION ALL"
		       " SELECT 1, b, min(r) FROM v WHERE b IS NOT NULL GROUP BY b UNION ALL"
		       " SELECT 2, c, min(r) FROM v WHERE c IS NOT NULL GROUP BY c ORDER BY 1, 3",
	[ST_COUNT] = "SELECT (SELECT count(*) FROM collection), (SELECT count(*) FROM patient),"
		     " (SELECT count(*) FROM study), (SELECT count(*) FROM series)",
};

/* ---- errors ------------------------------------------------------------------------ */

/* SQLite's result codes as errno, in one place. */
int cat_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* A catalog bigger than this is not read whole at each open (quick_check reads every
 * page: 0.15 s for an NLST-size catalog of 300 MB in the page cache, 1.4 s from disk,
 * and a catalog grows with what was browsed); only its schema is. A damaged page found
 * later is recorded beside it ("<catalog>.damaged"), and the next open reads it whole. */
#define CAT_CHECK_MAX ((off_t)64 << 20)

static const char cat_damaged_suffix[] = ".damaged";

/* Records that db's file (the catalog, not a load's staging database) is damaged. */
static void cat_mark_damaged(sqlite3 *db)
{
	const char *path = sqlite3_db_filename(db, "main");
	char mark[PATH_MAX];
	int fd;

	if (!path || !*path || strstr(path, ".load-") ||
	    snprintf(mark, sizeof(mark), "%s%s", path, cat_damaged_suffix) >= (int)sizeof(mark))
		return;
	fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

int cat_fail(struct cat_conn *k, int rc, const char *what)
{
	sqlite3 *db = k ? k->db : NULL;
	bool damaged = ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) && db;

	log_err("catalog: %s: %s%s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
		damaged ? " (the catalog is damaged: it is moved aside and a new one started as "
			  "soon as nothing is using it)"
			: "");
	if (damaged) {
		/* Also on disk, for the next mount if this one ends first. */
		cat_mark_damaged(db);
		if (k->cat)
			__atomic_store_n(&k->cat->damaged, 1, __ATOMIC_RELEASE);
	}
	return cat_errno(rc);
}

/* ---- connections ------------------------------------------------------------------- */

void cat_conn_close(struct cat_conn *k)
{
	size_t i;

	for (i = 0; i < ST_N; i++)
		sqlite3_finalize(k->st[i]);
	sqlite3_close(k->db);
	memset(k, 0, sizeof(*k));
}

int cat_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int cat_cache_kib(sqlite3 *db, size_t kib)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%zu", kib);
	return cat_exec(db, sql);
}

int cat_conn_open(struct catalog *c, struct cat_conn *k, bool create)
{
	char pragmas[160];
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	int rc;

	memset(k, 0, sizeof(*k));
	k->cat = c;
	rc = sqlite3_open_v2(c->path, &k->db, flags, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	sqlite3_busy_timeout(k->db, CAT_BUSY_MS);
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA cache_size=-%zu; PRAGMA mmap_size=0; PRAGMA temp_store=FILE;"
		 " PRAGMA synchronous=NORMAL;",
		 (create ? c->cache_bytes : c->cache_bytes / 2) / 1024);
	rc = cat_exec(k->db, pragmas);
	if (rc != SQLITE_OK)
		goto out_close;
	return 0;
out_close:
	cat_conn_close(k);
	return rc;
}

sqlite3_stmt *cat_stmt(struct cat_conn *k, int s, int *rc)
{
	if (!k->db) {
		*rc = SQLITE_CANTOPEN;
		return NULL;
	}
	if (!k->st[s]) {
		*rc = sqlite3_prepare_v3(k->db, cat_sql[s], -1, SQLITE_PREPARE_PERSISTENT,
					 &k->st[s], NULL);
		if (*rc != SQLITE_OK)
			return NULL;
	}
	sqlite3_reset(k->st[s]);
	sqlite3_clear_bindings(k->st[s]);
	*rc = SQLITE_OK;
	return k->st[s];
}

/* A reader keeps its read transaction across statements for a moment: beginning and
 * ending one around each statement (a lock of a read mark of the log, a look at its
 * header) was a fifth of the daemon's time in a walk, where statements come every
 * 100 µs. A snapshot lives CAT_LINGER_MS at most, and not past this process's next
 * commit; one left idle is ended by the checkpointer's thread. So another mount's
 * commit is seen within CAT_LINGER_MS or so, this mount's own at once. */
#define CAT_LINGER_MS 50

/* Runs BEGIN or COMMIT on k: SQLITE_OK or the error. */
static int cat_read_step(struct cat_conn *k, int s)
{
	sqlite3_stmt *st;
	int rc;

	st = cat_stmt(k, s, &rc);
	if (!st)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void cat_read_end(struct cat_conn *k)
{
	if (k->db && !sqlite3_get_autocommit(k->db) && cat_read_step(k, ST_READ_END) != SQLITE_OK)
		cat_exec(k->db, "ROLLBACK");
}

/* The reader k (in the caller's hands) in a read transaction that is recent enough:
 * kept, or ended and begun again. Without one (BEGIN failed) its statements run each in
 * a transaction of their own, as before. */
static void cat_read_begin(struct catalog *c, struct cat_conn *k)
{
	unsigned long gen = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
	int64_t now = clock_mono_ms();

	if (!k->db)
		return;
	if (!sqlite3_get_autocommit(k->db)) {
		if (k->read_gen == gen && now - k->read_ms < CAT_LINGER_MS)
			return;
		cat_read_end(k);
	}
	if (cat_read_step(k, ST_READ_BEGIN) == SQLITE_OK) {
		k->read_gen = gen;
		k->read_ms = now;
	}
}

/* Ends the read transactions of idle readers: all of them (all), or those past their
 * time; lingering says whether one is left (a reader in use may hold one). */
static void cat_read_end_idle(struct catalog *c, bool all)
{
	int64_t now = clock_mono_ms();
	bool left = false;
	size_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < CAT_READERS; i++) {
		struct cat_conn *k = &c->readers[i];

		if (!k->db || sqlite3_get_autocommit(k->db))
			continue;
		if (!k->busy && (all || now - k->read_ms >= CAT_LINGER_MS))
			cat_read_end(k);
		else
			left = true;
	}
	__atomic_store_n(&c->lingering, left, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&c->lock);
}

struct cat_conn *cat_reader(struct catalog *c)
{
	struct cat_conn *k = NULL;
	size_t i;

	cat_renew(c);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (i = 0; i < CAT_READERS && !k && !c->renewing; i++)
			if (!c->readers[i].busy)
				k = &c->readers[i];
		if (k)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	k->busy = true;
	pthread_mutex_unlock(&c->lock);
	cat_read_begin(c, k);
	return k;
}

void cat_reader_put(struct catalog *c, struct cat_conn *k, sqlite3_stmt *st)
{
	bool wake;

	if (st)
		sqlite3_reset(st);
	pthread_mutex_lock(&c->lock);
	k->busy = false;
	pthread_cond_signal(&c->cond);
	wake = k->db && !sqlite3_get_autocommit(k->db) &&
	       !__atomic_load_n(&c->lingering, __ATOMIC_ACQUIRE);
	if (wake)
		__atomic_store_n(&c->lingering, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&c->lock);
	if (wake && c->ckpt_started) {
		/* The checkpointer ends it if no one uses it in time. */
		pthread_mutex_lock(&c->ckpt_lock);
		pthread_cond_signal(&c->ckpt_cond);
		pthread_mutex_unlock(&c->ckpt_lock);
	}
}

/* ---- opening ----------------------------------------------------------------------- */

/* Moves a catalog that cannot be used out of the way, with the one line that says why. */
static int cat_move_aside(const char *path, const char *why)
{
	char aside[PATH_MAX], side[PATH_MAX];
	static const char *const sfx[] = { "-wal", "-shm" };
	size_t i;

	struct stat sb;
	int n = 0;

	/* Never over an older one: each is evidence. */
	do {
		if (snprintf(aside, sizeof(aside), "%s.broken-%lld%s%.0d", path,
			     (long long)time(NULL), n ? "." : "", n) >= (int)sizeof(aside))
			return -ENAMETOOLONG;
	} while (lstat(aside, &sb) == 0 && ++n < 1000);
	if (rename(path, aside) < 0 && errno != ENOENT) {
		log_err("catalog: %s is %s and cannot be moved aside: %s", path, why,
			strerror(errno));
		return -errno;
	}
	for (i = 0; i < 2; i++) {
		snprintf(side, sizeof(side), "%s%s", path, sfx[i]);
		unlink(side);
	}
	log_warn("catalog: %s was %s; moved aside to %s, starting a new one", path, why, aside);
	return 0;
}

/* Whether the catalog is to be read whole now: small, or recorded as damaged (the record
 * goes: the check that follows settles it). */
static bool cat_check_whole(struct catalog *c)
{
	char mark[PATH_MAX];
	struct stat sb;
	bool damaged;

	snprintf(mark, sizeof(mark), "%s%s", c->path, cat_damaged_suffix);
	damaged = unlink(mark) == 0;
	if (damaged)
		log_warn("catalog: %s was found damaged while in use: reading it whole", c->path);
	return damaged || stat(c->path, &sb) < 0 || sb.st_size <= c->check_max;
}

/* Opens the writer, checks the file is a catalog of our version, makes the schema in a
 * new one. Returns 0, a positive reason code (1 not a database or corrupt, 2 another
 * version) for a file to move aside, or -errno. */
static int cat_check(struct catalog *c)
{
	sqlite3_stmt *st = NULL;
	int rc, version = -1;
	bool ok = false;

	rc = cat_conn_open(c, &c->writer, true);
	if (rc != SQLITE_OK)
		return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? 1 : cat_fail(NULL, rc, "open");
	/* Big pages: a bulk load writes and reads them in fewer calls (a new file only). */
	rc = cat_exec(c->writer.db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL");
	if (rc != SQLITE_OK)
		goto out_rc;
	rc = sqlite3_prepare_v2(c->writer.db,
				cat_check_whole(c)
					? "PRAGMA quick_check(1)"
					: "SELECT 'ok' FROM sqlite_schema UNION ALL SELECT 'ok'",
				-1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	rc = sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto out_rc;
	if (!ok)
		return 1;
	/* Two mounts may make a new catalog at once: one of them makes the schema. */
	rc = cat_exec(c->writer.db, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		goto out_rc;
	rc = sqlite3_prepare_v2(c->writer.db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version == 0) {
		char sql[sizeof(cat_schema) + 64];

		snprintf(sql, sizeof(sql), "%s PRAGMA user_version=%d;", cat_schema, CAT_VERSION);
		rc = cat_exec(c->writer.db, sql);
		if (rc != SQLITE_OK) {
			cat_exec(c->writer.db, "ROLLBACK");
			goto out_rc;
		}
		version = CAT_VERSION;
	}
	rc = cat_exec(c->writer.db, version == CAT_VERSION ? "COMMIT" : "ROLLBACK");
	if (rc != SQLITE_OK)
		goto out_rc;
	return version == CAT_VERSION ? 0 : 2;
out_rc:
	if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
		return 1;
	return cat_fail(&c->writer, rc, "open");
}

/* Staging databases left by a process that died in a load ("<catalog>.load-<pid>-<n>";
 * the catalog's name has the host in it, so the pid is this host's): removed. */
static void cat_sweep_stages(const char *path)
{
	char pattern[PATH_MAX];
	glob_t g;
	size_t i;

	if (snprintf(pattern, sizeof(pattern), "%s.load-*", path) >= (int)sizeof(pattern) ||
	    glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		long pid = strtol(g.gl_pathv[i] + strlen(path) + strlen(".load-"), NULL, 10);

		if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			log_info("catalog: removing %s, left by a load that did not finish",
				 g.gl_pathv[i]);
			unlink(g.gl_pathv[i]);
		}
	}
	globfree(&g);
}

static int cat_mkdir(const char *dir)
{
	char *buf = strdup(dir), *p;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (p = buf + 1; *p && rc == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		*p = '/';
	}
	if (rc == 0 && mkdir(buf, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	free(buf);
	return rc;
}

/* SQLite counts every allocation under one process-wide mutex unless told not to; our
 * connections are each used by one thread at a time and want no such lock. Before
 * SQLite is first used (later, sqlite3_config refuses, harmlessly). */
static void cat_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* ---- the log folded back in the background ------------------------------------------ */

/* Frames in the log after a commit from which it is folded back (SQLite's own default). */
#define CAT_CKPT_FRAMES 1000

/* After each commit of the writer, instead of SQLite's checkpoint inside it: readers
 * take a new snapshot from now on (cat_read_begin). */
static int cat_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct catalog *c = arg;

	__atomic_add_fetch(&c->gen, 1, __ATOMIC_RELEASE);
	if (!c->ckpt_started) {
		if (frames >= c->ckpt_frames)
			sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	if (frames >= c->ckpt_frames) {
		pthread_mutex_lock(&c->ckpt_lock);
		c->ckpt_wanted = true;
		pthread_cond_signal(&c->ckpt_cond);
		pthread_mutex_unlock(&c->ckpt_lock);
	}
	return SQLITE_OK;
}

/* A passive checkpoint waits for no one: pages a reader still needs stay in the log for
 * the next one. A failure (a full disk) is told once until one succeeds again. */
static void *cat_ckpt_main(void *arg)
{
	struct catalog *c = arg;
	struct timespec until;
	bool wanted;
	int rc;

	/* Behind every request on a busy machine: the walk that asked for a bulk load goes
	 * on while the load's log is folded back (Linux: a thread's own niceness). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	pthread_mutex_lock(&c->ckpt_lock);
	for (;;) {
		/* Readers' transactions left idle are looked at every CAT_LINGER_MS. */
		while (!c->ckpt_stop && !c->ckpt_wanted &&
		       !__atomic_load_n(&c->lingering, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&c->ckpt_cond, &c->ckpt_lock);
		if (!c->ckpt_stop && !c->ckpt_wanted) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += CAT_LINGER_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&c->ckpt_cond, &c->ckpt_lock, &until);
		}
		if (c->ckpt_stop)
			break;
		wanted = c->ckpt_wanted;
		c->ckpt_wanted = false;
		pthread_mutex_unlock(&c->ckpt_lock);
		/* Before a checkpoint, every idle snapshot goes: one would hold it back. */
		cat_read_end_idle(c, wanted);
		if (!wanted) {
			pthread_mutex_lock(&c->ckpt_lock);
			continue;
		}
		rc = sqlite3_wal_checkpoint_v2(c->ckpt.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
					       NULL);
		pthread_mutex_lock(&c->ckpt_lock);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !c->ckpt_failed)
			log_warn("catalog: cannot fold the log back into %s: %s (tried again after "
				 "the next load)",
				 c->path, sqlite3_errstr(rc));
		c->ckpt_failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
	}
	pthread_mutex_unlock(&c->ckpt_lock);
	return NULL;
}

/* Without the thread (it could not start), the writer checkpoints inside commits as SQLite
 * does by default. */
static int cat_ckpt_start(struct catalog *c)
{
	int rc = cat_conn_open(c, &c->ckpt, false);

	c->ckpt_stop = false;
	if (rc != SQLITE_OK)
		return rc;
	cat_cache_kib(c->ckpt.db, 64);
	c->ckpt_started = pthread_create(&c->ckpt_thread, NULL, cat_ckpt_main, c) == 0;
	if (!c->ckpt_started)
		cat_conn_close(&c->ckpt);
	sqlite3_wal_hook(c->writer.db, cat_wal_hook, c);
	return SQLITE_OK;
}

static void cat_ckpt_stop(struct catalog *c)
{
	if (c->writer.db)
		sqlite3_wal_hook(c->writer.db, NULL, NULL);
	if (c->ckpt_started) {
		pthread_mutex_lock(&c->ckpt_lock);
		c->ckpt_stop = true;
		pthread_cond_signal(&c->ckpt_cond);
		pthread_mutex_unlock(&c->ckpt_lock);
		pthread_join(c->ckpt_thread, NULL);
		c->ckpt_started = false;
	}
	cat_conn_close(&c->ckpt);
}

/* Opens the readers and the checkpointer on the catalog at c->path (the writer is open):
 * 0 or an SQLite error. */
static int cat_open_rest(struct catalog *c)
{
	size_t i;
	int rc;

	for (i = 0; i < CAT_READERS; i++) {
		rc = cat_conn_open(c, &c->readers[i], false);
		if (rc != SQLITE_OK)
			return rc;
	}
	return cat_ckpt_start(c);
}

static void cat_close_all(struct catalog *c)
{
	size_t i;

	cat_ckpt_stop(c);
	for (i = 0; i < CAT_READERS; i++)
		cat_conn_close(&c->readers[i]);
	cat_conn_close(&c->writer);
}

/* The damaged catalog goes aside and a new, empty one takes its place: what it held is
 * asked of the archive again when it is needed (the loads' records went with it), rather
 * than failing until the next mount. Only while no reader and no load is using it: the
 * connections are all closed and opened again. A caller holding a reader (a query
 * inside a query's callback) just finds it busy, and a later caller does it. */
void cat_renew(struct catalog *c)
{
	char mark[PATH_MAX];
	bool busy = false;
	size_t i;
	int rc;

	if (!__atomic_load_n(&c->damaged, __ATOMIC_ACQUIRE) || pthread_mutex_trylock(&c->wlock))
		return;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < CAT_READERS; i++)
		busy = busy || c->readers[i].busy;
	if (busy || c->renewing || !__atomic_load_n(&c->damaged, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->wlock);
		return;
	}
	c->renewing = true;
	pthread_mutex_unlock(&c->lock);

	cat_close_all(c);
	snprintf(mark, sizeof(mark), "%s%s", c->path, cat_damaged_suffix);
	unlink(mark);
	rc = cat_move_aside(c->path, "found damaged while in use");
	if (rc == 0)
		rc = cat_check(c);
	if (rc == 0)
		rc = cat_open_rest(c) == SQLITE_OK ? 0 : -EIO;
	if (rc != 0) {
		/* Whatever can be opened at the path serves; the rest fails each call. */
		log_err("catalog: cannot start a new one in place of the damaged %s: what needs "
			"it fails until the next mount",
			c->path);
		cat_close_all(c);
		if (cat_conn_open(c, &c->writer, true) == SQLITE_OK)
			cat_open_rest(c);
	}
	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->damaged, 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&c->epoch, 1, __ATOMIC_RELEASE);
	c->renewing = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->wlock);
}

bool catalog_damaged(const struct catalog *c)
{
	return __atomic_load_n(&c->damaged, __ATOMIC_ACQUIRE) != 0;
}

unsigned long catalog_epoch(const struct catalog *c)
{
	return __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE);
}

int catalog_open(const struct catalog_opts *opts, struct catalog **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	char host[HOST_NAME_MAX + 1] = "localhost";
	struct catalog *c;
	struct stat sb;
	size_t i;
	int rc, tries;

	*out = NULL;
	pthread_once(&once, cat_configure);
	rc = cat_mkdir(opts->dir);
	if (rc < 0) {
		log_err("catalog: cannot make %s: %s", opts->dir, strerror(-rc));
		return rc;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cache_bytes = opts->cache_bytes ? opts->cache_bytes : 2u << 20;
	c->check_max = opts->check_max ? opts->check_max : CAT_CHECK_MAX;
	c->ckpt_frames = opts->ckpt_frames > 0 ? opts->ckpt_frames : CAT_CKPT_FRAMES;
	if (opts->host)
		snprintf(host, sizeof(host), "%s", opts->host);
	else
		gethostname(host, sizeof(host) - 1);
	/* One file per host: SQLite's locks do not hold across hosts on a network
	 * filesystem. A host name is one path component. */
	for (i = 0; host[i]; i++)
		if (host[i] == '/')
			host[i] = '_';
	if (asprintf(&c->path, "%s/catalog-%s.sqlite", opts->dir, host) < 0) {
		c->path = NULL;
		rc = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->ckpt_lock, NULL);
	pthread_cond_init(&c->ckpt_cond, NULL);
	for (tries = 0;; tries++) {
		if (lstat(c->path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
			rc = cat_move_aside(c->path, "not a file");
			if (rc < 0)
				goto out_free;
		}
		rc = cat_check(c);
		if (rc <= 0 || tries > 0)
			break;
		cat_conn_close(&c->writer);
		rc = cat_move_aside(c->path, rc == 1 ? "not a database or corrupt"
						     : "of another schema version");
		if (rc < 0)
			goto out_free;
	}
	if (rc != 0) {
		rc = rc < 0 ? rc : -EIO;
		goto out_free;
	}
	cat_sweep_stages(c->path);
	rc = cat_open_rest(c);
	if (rc != SQLITE_OK) {
		rc = cat_fail(NULL, rc, "open");
		goto out_free;
	}
	*out = c;
	return 0;
out_free:
	catalog_free(c);
	return rc;
}

void catalog_free(struct catalog *c)
{
	size_t i;

	if (!c)
		return;
	cat_ckpt_stop(c);
	for (i = 0; i < CAT_READERS; i++)
		cat_conn_close(&c->readers[i]);
	if (c->writer.db) {
		/* Folds the log back into the database so that the next open reads one file. */
		sqlite3_wal_checkpoint_v2(c->writer.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
					  NULL);
		cat_conn_close(&c->writer);
	}
	if (c->path) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->wlock);
		pthread_mutex_destroy(&c->ckpt_lock);
		pthread_cond_destroy(&c->ckpt_cond);
	}
	free(c->path);
	free(c);
}

const char *catalog_path(const struct catalog *c)
{
	return c->path;
}

/* ---- what was loaded, and how much ------------------------------------------------ */
