/* SPDX-License-Identifier: MIT
 * tree_table.c — patients.csv, studies.csv and series.csv: a collection's objects as
 * tables, rendered once per load into an unlinked file under the cache folder. The
 * catalog is read on one thread and the text made and written on another, so that a
 * table of 200,000 rows is ready in the time of the slower of the two.
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
#include "log.h"
#include "tree_int.h"

/* A table rendered for a collection, as it stood at a load: an unlinked file. */
struct tree_table {
	char *coll;
	unsigned which;
	int64_t stamp;		/* the newest load it was rendered from */
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
	const char *coll;	/* the folder's name */
	struct view_table *tab;
	int fd;
	size_t rows;
	bool again;		/* a column came after rows were written: render again */
	struct view_cell *cells;
	size_t ncells;
	char path[PATH_MAX + 4 * 256];
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

static int tree_table_row(void *arg, const char *const *names, const struct catalog_member *m,
			  size_t n)
{
	struct tree_table_out *o = arg;
	size_t i;
	int rc, len;

	if (n > o->ncells) {
		struct view_cell *c = realloc(o->cells, n * sizeof(*c));

		if (!c)
			return -ENOMEM;
		o->cells = c;
		o->ncells = n;
	}
	for (i = 0; i < n; i++)
		o->cells[i] = (struct view_cell){ m[i].key, m[i].text, m[i].len };
	rc = view_table_learn(o->tab, o->cells, n);
	if (rc < 0)
		return rc;
	if (rc > 0 && o->rows > 0)
		o->again = true;	/* the header is out already */
	if (o->again)
		return 0;		/* only learning now */
	/* The row's folder: a buffer kept across rows (names are at most 255 bytes). */
	len = snprintf(o->path, sizeof(o->path), "%s/%s/%s%s%s%s%s", o->t->mountpoint, o->coll,
		       names[0], names[1] ? "/" : "", names[1] ? names[1] : "",
		       names[2] ? "/" : "", names[2] ? names[2] : "");
	if (len < 0 || (size_t)len >= sizeof(o->path))
		return -ENAMETOOLONG;
	rc = view_table_row(o->tab, o->cells, n, o->path);
	if (rc == 0 && ++o->rows % 1024 == 0)
		rc = tree_table_drain(o);
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
	struct tree_table_out o = { .t = t, .coll = c->name, .fd = -1 };
	int rc;

	rc = view_table_new(&o.tab);
	if (rc < 0)
		return rc;
	o.fd = tree_table_tmpfile(t);
	if (o.fd < 0) {
		rc = o.fd;
		log_err("%s/%s: cannot make a file to render it in %s: %s", c->name,
			tree_table_names[which], t->cache_dir, strerror(-rc));
		goto out_free;
	}
	/* One pass when every object sends the same keys, as they do; else a second one,
	 * with every column known. */
	rc = catalog_table(t->cat, c->api, which, tree_table_row, &o);
	if (rc == 0 && o.again) {
		view_table_restart(o.tab);
		o.again = false;
		o.rows = 0;
		if (ftruncate(o.fd, 0) < 0 || lseek(o.fd, 0, SEEK_SET) < 0)
			rc = -errno;
		if (rc == 0)
			rc = catalog_table(t->cat, c->api, which, tree_table_row, &o);
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


	rc = tree_cat_patients(t, c->api);
	if (rc == 0 && which > 0)
		rc = tree_cat_collection(t, c->api);
	if (rc < 0)
		return rc;
	if (catalog_loaded(t->cat, CATALOG_PATIENTS, c->api, NULL, &when, NULL) == 0)
		stamp = when;
	if (which > 0 && catalog_loaded(t->cat, CATALOG_COLLECTION, c->api, NULL, &when,
					NULL) == 0 && when > stamp)
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

