/* SPDX-License-Identifier: MIT
 * tree_table.c — patients.csv, studies.csv and series.csv: a collection's objects as
 * tables, rendered once per load into an unlinked file under the cache folder. The
 * catalog is read on one thread, and each object's members read (jsonobj.c) and the text
 * made and written on another, so that a table of 200,000 rows is ready in the time of
 * the slower of the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "jsonobj.h"
#include "log.h"
#include "tree_int.h"

/* A table rendered for a collection, as it stood at a load: an unlinked file. */
struct tree_table {
	char *coll;
	unsigned which;
	int64_t stamp; /* the newest load it was rendered from */
	int fd;
	off_t size;
	struct tree_table *next;
};

void tree_tables_free(struct tree *t)
{
	while (t->tables) {
		struct tree_table *tab = t->tables;

		t->tables = tab->next;
		close(tab->fd);
		free(tab->coll);
		free(tab);
	}
}

/* What a rendering streams through: the table's text, written out every few rows. */
struct tree_table_out {
	struct tree *t;
	const char *coll; /* the folder's name */
	struct view_table *tab;
	unsigned which;
	int fd;
	size_t rows;
	bool again; /* a column came after rows were written: render again */
	struct view_cell *cells;
	size_t ncells;
	struct jsonobj jo;
	char *mbuf; /* the row's keys and values, each NUL-terminated */
	size_t mcap;
	char path[PATH_MAX + 4 * 256];
	size_t base; /* the length of "<mountpoint>/<collection>/" in path */
};

static int tree_table_drain(struct tree_table_out *o)
{
	char *text;
	size_t len;
	int rc = view_table_finish(o->tab, &text, &len);

	if (rc < 0)
		return rc;
	rc = len ? fileio_write_all(o->fd, text, len) : 0;
	free(text);
	return rc;
}

/* Grows the array *v of *cap elements of size bytes to hold need of them. */
static bool tree_table_grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 64;
	void *grown;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	grown = realloc(*v, n * size);
	if (!grown)
		return false;
	*v = grown;
	*cap = n;
	return true;
}

/* Appends s (n bytes) and a NUL to the text buf[0..*len) of capacity *cap; *at is
 * where it starts. */
static int tree_table_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n,
			     size_t *at)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 4096;
		char *grown;

		while (c < *len + n + 1)
			c *= 2;
		if (!(grown = realloc(*buf, c)))
			return -ENOMEM;
		*buf = grown;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	(*buf)[*len + n] = '\0';
	*at = *len;
	*len += n + 1;
	return 0;
}

/* An object's members as the row's cells (*n of them): keys and values copied out, as
 * the reader hands each member over only until the next one. true and false are words,
 * null no text. */
static int tree_table_members(struct tree_table_out *o, const char *raw, size_t len, size_t *n)
{
	struct jsonobj_member m;
	size_t used = 0, i, key, text;
	int more = 0, rc = 0;

	*n = 0;
	jsonobj_start(&o->jo, raw, len);
	while (rc == 0 && (more = jsonobj_next(&o->jo, &m)) > 0) {
		if (!tree_table_grow((void **)&o->cells, &o->ncells, *n + 1, sizeof(*o->cells)))
			return -ENOMEM;
		if (m.type == JSONOBJ_TRUE) {
			m.text = "true";
			m.len = 4;
		} else if (m.type == JSONOBJ_FALSE) {
			m.text = "false";
			m.len = 5;
		}
		rc = tree_table_append(&o->mbuf, &used, &o->mcap, m.key, m.klen, &key);
		text = SIZE_MAX;
		if (rc == 0 && m.type != JSONOBJ_NULL)
			rc = tree_table_append(&o->mbuf, &used, &o->mcap, m.text ? m.text : "",
					       m.len, &text);
		/* Offsets for now: the buffer may move while the row is read. */
		o->cells[*n] = (struct view_cell){ (const char *)(uintptr_t)key,
						   (const char *)(uintptr_t)text, m.len };
		(*n)++;
	}
	if (rc == 0 && more < 0) {
		if (more == -EBADMSG)
			log_err("%s/%s: an object in the catalog is not JSON; the catalog may be "
				"damaged",
				o->coll, names_table_files[o->which]);
		return more == -EBADMSG ? -EIO : more;
	}
	for (i = 0; rc == 0 && i < *n; i++) {
		o->cells[i].key = o->mbuf + (uintptr_t)o->cells[i].key;
		if ((uintptr_t)o->cells[i].text == SIZE_MAX)
			o->cells[i].text = NULL;
		else
			o->cells[i].text = o->mbuf + (uintptr_t)o->cells[i].text;
	}
	return rc;
}

static int tree_table_row(void *arg, const char *const *names, const char *raw, size_t len)
{
	struct tree_table_out *o = arg;
	size_t n, i, plen;
	int rc;

	rc = tree_table_members(o, raw, len, &n);
	if (rc < 0)
		return rc;
	rc = view_table_learn(o->tab, o->cells, n);
	if (rc < 0)
		return rc;
	if (rc > 0 && o->rows > 0)
		o->again = true; /* the header is out already */
	if (o->again)
		return 0; /* only learning now */
	/* The row's folder: after the collection's part, kept across rows (made at the
	 * first), its names joined (each at most 255 bytes). */
	if (!o->base) {
		int b = snprintf(o->path, sizeof(o->path), "%s/%s/", o->t->mountpoint, o->coll);

		if (b < 0 || (size_t)b >= sizeof(o->path) - 3 * 256)
			return -ENAMETOOLONG;
		o->base = (size_t)b;
	}
	plen = o->base;
	for (i = 0; i < 3 && names[i]; i++) {
		size_t k = strlen(names[i]);

		if (plen + k + 2 > sizeof(o->path))
			return -ENAMETOOLONG;
		if (i > 0)
			o->path[plen++] = '/';
		memcpy(o->path + plen, names[i], k);
		plen += k;
	}
	o->path[plen] = '\0';
	rc = view_table_row(o->tab, o->cells, n, o->path);
	if (rc == 0 && ++o->rows % 1024 == 0)
		rc = tree_table_drain(o);
	return rc;
}

/* ---- the reader and the writer --------------------------------------------------------
 *
 * The catalog's rows (valid during its callback only) are copied into batches and handed
 * to a writer thread, which reads their members and makes the text and writes it:
 * reading the catalog (SQLite's sort and lookups) and the rest cost about the same, and a
 * machine has two cores at least. A few batches in flight bound the memory. */
#define TREE_TABLE_BATCH 512
#define TREE_TABLE_QUEUE 4
#define TREE_TABLE_NONE SIZE_MAX /* an offset that stands for NULL */

struct tree_table_rec {
	size_t names[3];
	size_t raw, len; /* the object as sent */
};

struct tree_table_batch {
	char *buf; /* every string, NUL-terminated, one after another */
	size_t len, cap;
	struct tree_table_rec *r;
	size_t nr, rcap;
	struct tree_table_batch *next;
};

struct tree_table_pipe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tree_table_batch *head, *tail; /* queued for the writer */
	struct tree_table_batch *spare;       /* written, for the reader to fill again */
	size_t queued;
	bool done;                    /* the reader is through */
	int rc;                       /* the first failure of either side */
	struct tree_table_batch *cur; /* the reader's */
	struct tree_table_out *o;
};

static void tree_table_batch_free(struct tree_table_batch *b)
{
	while (b) {
		struct tree_table_batch *next = b->next;

		free(b->buf);
		free(b->r);
		free(b);
		b = next;
	}
}

/* Copies s (n bytes) into b's strings; its offset, or TREE_TABLE_NONE for NULL. */
static size_t tree_table_keep(struct tree_table_batch *b, const char *s, size_t n, bool *oom)
{
	size_t at;

	if (!s)
		return TREE_TABLE_NONE;
	if (tree_table_append(&b->buf, &b->len, &b->cap, s, n, &at) < 0) {
		*oom = true;
		return TREE_TABLE_NONE;
	}
	return at;
}

/* Hands the reader's batch to the writer, waiting while too many are in flight. Lock
 * held. */
static void tree_table_push(struct tree_table_pipe *p)
{
	while (p->queued >= TREE_TABLE_QUEUE && !p->rc)
		pthread_cond_wait(&p->cond, &p->lock);
	p->cur->next = NULL;
	if (p->tail)
		p->tail->next = p->cur;
	else
		p->head = p->cur;
	p->tail = p->cur;
	p->queued++;
	p->cur = NULL;
	pthread_cond_broadcast(&p->cond);
}

/* The catalog's callback, on the reader's thread: the row, copied into a batch. */
static int tree_table_copy(void *arg, const char *const *names, const char *raw, size_t len)
{
	struct tree_table_pipe *p = arg;
	struct tree_table_batch *b;
	struct tree_table_rec *r;
	bool oom = false;
	size_t i;
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = p->rc;
	if (!rc && !p->cur) {
		p->cur = p->spare;
		if (p->cur)
			p->spare = p->cur->next;
		else
			p->cur = calloc(1, sizeof(*p->cur));
		if (p->cur)
			p->cur->len = p->cur->nr = 0;
		else
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc)
		return rc;
	b = p->cur;
	if (!tree_table_grow((void **)&b->r, &b->rcap, b->nr + 1, sizeof(*b->r)))
		return -ENOMEM;
	r = &b->r[b->nr];
	for (i = 0; i < 3; i++)
		r->names[i] = tree_table_keep(b, names[i], names[i] ? strlen(names[i]) : 0, &oom);
	r->raw = tree_table_keep(b, raw ? raw : "", len, &oom);
	r->len = len;
	if (oom)
		return -ENOMEM;
	if (++b->nr == TREE_TABLE_BATCH) {
		pthread_mutex_lock(&p->lock);
		tree_table_push(p);
		rc = p->rc;
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

/* Makes the text of one batch's rows, on the writer's thread. */
static int tree_table_write(struct tree_table_pipe *p, struct tree_table_batch *b)
{
	size_t i, j;
	int rc = 0;

	for (i = 0; rc == 0 && i < b->nr; i++) {
		struct tree_table_rec *r = &b->r[i];
		const char *names[3];

		for (j = 0; j < 3; j++)
			names[j] = r->names[j] == TREE_TABLE_NONE ? NULL : b->buf + r->names[j];
		rc = tree_table_row(p->o, names, b->buf + r->raw, r->len);
	}
	return rc;
}

static void *tree_table_writer(void *arg)
{
	struct tree_table_pipe *p = arg;
	struct tree_table_batch *b;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->done)
			pthread_cond_wait(&p->cond, &p->lock);
		b = p->head;
		if (!b)
			break;
		p->head = b->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		/* After a failure the rest is only drained, for the reader to stop. */
		if (!rc)
			rc = tree_table_write(p, b);
		pthread_mutex_lock(&p->lock);
		if (rc && !p->rc)
			p->rc = rc;
		b->next = p->spare;
		p->spare = b;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* One pass over the catalog's rows into o: the reader here, the writer on a thread of
 * its own (or here too, when no thread can be made). */
static int tree_table_pass(struct tree *t, struct tree_coll *c, unsigned which,
			   struct tree_table_out *o)
{
	struct tree_table_pipe p = { .lock = PTHREAD_MUTEX_INITIALIZER,
				     .cond = PTHREAD_COND_INITIALIZER,
				     .o = o };
	pthread_t writer;
	int rc;

	if (pthread_create(&writer, NULL, tree_table_writer, &p) != 0)
		return catalog_table(t->cat, c->api, which, tree_table_row, o);
	rc = catalog_table(t->cat, c->api, which, tree_table_copy, &p);
	pthread_mutex_lock(&p.lock);
	if (p.cur && p.cur->nr)
		tree_table_push(&p);
	p.done = true;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.lock);
	pthread_join(writer, NULL);
	if (rc == 0 || rc == p.rc)
		rc = p.rc;
	tree_table_batch_free(p.cur);
	tree_table_batch_free(p.head);
	tree_table_batch_free(p.spare);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return rc;
}

/* A new unlinked file under the cache folder for a rendering. */
static int tree_table_tmpfile(struct tree *t)
{
	char tmpl[4096];
	int fd = open(t->cache_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	/* A filesystem without O_TMPFILE: a named file, unlinked at once. */
	if (snprintf(tmpl, sizeof(tmpl), "%s/.table-XXXXXX", t->cache_dir) >= (int)sizeof(tmpl))
		return -ENAMETOOLONG;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

static int tree_table_render(struct tree *t, struct tree_coll *c, unsigned which, int *fd,
			     off_t *size)
{
	struct tree_table_out o = { .t = t, .coll = c->name, .which = which, .fd = -1 };
	int rc;

	rc = view_table_new(&o.tab);
	if (rc < 0)
		return rc;
	o.fd = tree_table_tmpfile(t);
	if (o.fd < 0) {
		rc = o.fd;
		log_err("%s/%s: cannot make a file to render it in %s: %s", c->name,
			names_table_files[which], t->cache_dir, strerror(-rc));
		goto out_free;
	}
	/* One pass when every object sends the same keys, as they do; else a second one,
	 * with every column known. */
	rc = tree_table_pass(t, c, which, &o);
	if (rc == 0 && o.again) {
		view_table_restart(o.tab);
		o.again = false;
		o.rows = 0;
		if (ftruncate(o.fd, 0) < 0 || lseek(o.fd, 0, SEEK_SET) < 0)
			rc = -errno;
		if (rc == 0)
			rc = tree_table_pass(t, c, which, &o);
	}
	if (rc == 0)
		rc = tree_table_drain(&o);
	if (rc == 0) {
		*size = lseek(o.fd, 0, SEEK_END);
		*fd = o.fd;
		o.fd = -1;
	}
	if (o.fd >= 0)
		close(o.fd);
out_free:
	jsonobj_release(&o.jo);
	free(o.mbuf);
	free(o.cells);
	view_table_free(o.tab);
	return rc;
}

/* patients.csv, studies.csv, series.csv: one row per object in path order, every
 * attribute a column, the folder's absolute path last. Rendered once per load of the
 * collection; *fd is a new descriptor of it (for an open; NULL for a stat). */
int tree_table_file(struct tree *t, struct tree_coll *c, unsigned which, int *fd, off_t *size)
{
	struct tree_table *tab;
	int64_t stamp = 0, when;
	int rfd = -1, rc;
	off_t rsize = 0;

	rc = loader_patients(t->ld, c->api);
	if (rc == 0 && which > 0)
		rc = loader_collection(t->ld, c->api);
	if (rc < 0)
		return rc;
	if (catalog_loaded(t->cat, CATALOG_PATIENTS, c->api, NULL, &when, NULL) == 0)
		stamp = when;
	if (which > 0 &&
	    catalog_loaded(t->cat, CATALOG_COLLECTION, c->api, NULL, &when, NULL) == 0 &&
	    when > stamp)
		stamp = when;
	pthread_mutex_lock(&t->lock);
	for (tab = t->tables; tab; tab = tab->next)
		if (tab->which == which && strcmp(tab->coll, c->api) == 0)
			break;
	if (tab && tab->stamp == stamp)
		goto out_answer;
	pthread_mutex_unlock(&t->lock);
	rc = tree_table_render(t, c, which, &rfd, &rsize);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->lock);
	for (tab = t->tables; tab; tab = tab->next)
		if (tab->which == which && strcmp(tab->coll, c->api) == 0)
			break;
	if (!tab && (tab = calloc(1, sizeof(*tab))) != NULL) {
		tab->coll = strdup(c->api);
		tab->which = which;
		tab->fd = -1;
		if (!tab->coll) {
			free(tab);
			tab = NULL;
		} else {
			tab->next = t->tables;
			t->tables = tab;
		}
	}
	if (!tab) {
		pthread_mutex_unlock(&t->lock);
		close(rfd);
		return -ENOMEM;
	}
	/* Another thread's rendering of the same load is as good: the first one kept. */
	if (tab->stamp != stamp || tab->fd < 0) {
		if (tab->fd >= 0)
			close(tab->fd);
		tab->fd = rfd;
		tab->size = rsize;
		tab->stamp = stamp;
		rfd = -1;
	}
out_answer:
	*size = tab->size;
	rc = 0;
	if (fd && (*fd = dup(tab->fd)) < 0)
		rc = -errno;
	pthread_mutex_unlock(&t->lock);
	if (rfd >= 0)
		close(rfd);
	return rc;
}
