/* SPDX-License-Identifier: MIT
 * spool.c — records in memory while small, then in an unlinked file (O_TMPFILE) read back
 * through a window: for folder listings too big to hold (fs.c).
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int spool_init(struct spool *s, const char *dir, size_t first, size_t mem)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->cap = first < mem ? first : mem;
	s->mem = mem;
	s->dir = dir;
	s->buf = malloc(s->cap);
	return s->buf ? 0 : -ENOMEM;
}

void spool_clear(struct spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

/* The memory so far, out to the file (made at the first spill). */
static int spool_spill(struct spool *s)
{
	if (s->fd < 0) {
		s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (s->fd < 0)
			return -errno;
	}
	if (pwrite(s->fd, s->buf, s->len, s->size) != (ssize_t)s->len)
		return errno ? -errno : -EIO;
	s->size += (off_t)s->len;
	s->len = 0;
	return 0;
}

void *spool_append(struct spool *s, size_t n, int *rc)
{
	char *p;

	if (s->len + n > s->cap && s->cap < s->mem) {
		char *nb = realloc(s->buf, s->mem);

		if (!nb) {
			*rc = -ENOMEM;
			return NULL;
		}
		s->buf = nb;
		s->cap = s->mem;
	}
	if (s->len + n > s->cap && (*rc = spool_spill(s)) < 0)
		return NULL;
	if (n > s->cap) {
		*rc = -E2BIG;
		return NULL;
	}
	p = s->buf + s->len;
	memset(p, 0, n);
	s->len += n;
	return p;
}

int spool_finish(struct spool *s)
{
	int rc = 0;

	if (s->fd >= 0) {
		rc = spool_spill(s);
		s->len = 0; /* buf is a read window from now on */
	} else {
		s->size = (off_t)s->len;
	}
	s->win = -1;
	return rc;
}

const void *spool_at(struct spool *s, off_t off, size_t need, int *rc)
{
	ssize_t got;

	if (off >= s->size)
		return NULL;
	if (s->fd < 0)
		return s->buf + off;
	if (s->win < 0 || off < s->win || off + (off_t)need > s->win + (off_t)s->len) {
		got = pread(s->fd, s->buf, s->mem, off);
		if (got < 0 || (size_t)got < need) {
			*rc = got < 0 ? -errno : -EIO;
			return NULL;
		}
		s->win = off;
		s->len = (size_t)got;
	}
	return s->buf + (off - s->win);
}

off_t spool_size(const struct spool *s)
{
	return s->size;
}
