/* SPDX-License-Identifier: MIT
 * inodes.c — the kernel's inodes of a mount, compact: a number is the address of its
 * node (the root's is INODES_ROOT), ~70 bytes and the name each, where libfuse's
 * high-level API kept some 250 for every name the kernel remembers. A node lives while
 * the kernel has looked it up or while it is the parent of a node that lives.
 */
#include "inodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct inodes_node {
	struct inodes_node *parent; /* NULL for the root */
	struct inodes_node *next;   /* in its hash bucket */
	uint64_t nlookup;
	uint64_t children; /* nodes whose parent this is */
	uint64_t stamp;    /* of the listing the kernel keeps, if stamped */
	uint32_t hash;
	bool stamped;  /* stamp is the listing's (else it is listed afresh) */
	bool kept;     /* the kernel keeps a listing of this folder */
	bool rendered; /* a file rendered from loaded metadata */
	char name[];
};

struct inodes {
	pthread_mutex_t lock;
	struct inodes_node **b;
	size_t nb, count;
	unsigned long kept; /* nodes with kept set */
	struct inodes_node *root;
};

#define INODES_BUCKETS_MIN 4096

static uint32_t inodes_hash(const struct inodes_node *parent, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)((uintptr_t)parent >> 4);

	while (*name)
		h = (h ^ (unsigned char)*name++) * 16777619u;
	return h;
}

int inodes_new(struct inodes **out)
{
	struct inodes *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->b = calloc(INODES_BUCKETS_MIN, sizeof(*t->b));
	t->root = calloc(1, sizeof(*t->root) + 1);
	if (!t->b || !t->root) {
		free(t->b);
		free(t->root);
		free(t);
		return -ENOMEM;
	}
	t->nb = INODES_BUCKETS_MIN;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void inodes_free(struct inodes *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nb; i++)
		while (t->b[i]) {
			struct inodes_node *n = t->b[i];

			t->b[i] = n->next;
			free(n);
		}
	free(t->b);
	free(t->root);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct inodes_node *inodes_node(struct inodes *t, uint64_t ino)
{
	return ino == INODES_ROOT ? t->root : (struct inodes_node *)(uintptr_t)ino;
}

static uint64_t inodes_ino(struct inodes *t, struct inodes_node *n)
{
	return n == t->root ? INODES_ROOT : (uint64_t)(uintptr_t)n;
}

/* Doubles the buckets when the table is full; a failure only makes chains longer.
 * Under t->lock. */
static void inodes_grow(struct inodes *t)
{
	size_t nb = t->nb * 2, i;
	struct inodes_node **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (i = 0; i < t->nb; i++)
		while (t->b[i]) {
			struct inodes_node *n = t->b[i];

			t->b[i] = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

uint64_t inodes_get(struct inodes *t, uint64_t parent, const char *name)
{
	struct inodes_node *p, *n;
	size_t len = strlen(name) + 1;
	uint32_t h;

	pthread_mutex_lock(&t->lock);
	p = inodes_node(t, parent);
	h = inodes_hash(p, name);
	for (n = t->b[h & (t->nb - 1)]; n; n = n->next)
		if (n->hash == h && n->parent == p && strcmp(n->name, name) == 0)
			break;
	if (n) {
		n->nlookup++;
	} else if ((n = malloc(sizeof(*n) + len)) != NULL) {
		*n = (struct inodes_node){ .parent = p, .nlookup = 1, .hash = h };
		memcpy(n->name, name, len);
		if (t->count >= t->nb)
			inodes_grow(t);
		n->next = t->b[h & (t->nb - 1)];
		t->b[h & (t->nb - 1)] = n;
		t->count++;
		p->children++;
	}
	pthread_mutex_unlock(&t->lock);
	return n ? inodes_ino(t, n) : 0;
}

void inodes_put(struct inodes *t, uint64_t ino, uint64_t count)
{
	struct inodes_node *n;

	pthread_mutex_lock(&t->lock);
	n = inodes_node(t, ino);
	n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
	while (n != t->root && n->nlookup == 0 && n->children == 0) {
		struct inodes_node **p = &t->b[n->hash & (t->nb - 1)], *parent = n->parent;

		while (*p != n)
			p = &(*p)->next;
		*p = n->next;
		t->count--;
		t->kept -= n->kept;
		free(n);
		parent->children--;
		n = parent;
	}
	pthread_mutex_unlock(&t->lock);
}

int inodes_path(struct inodes *t, uint64_t ino, const char *name, char *buf, size_t size)
{
	size_t end = size - 1, len;
	struct inodes_node *n;
	int rc = 0;

	if (size < 2)
		return -ENAMETOOLONG;
	buf[end] = '\0';
	if (name) {
		len = strlen(name);
		if (len + 1 > end)
			return -ENAMETOOLONG;
		end -= len;
		memcpy(buf + end, name, len);
		buf[--end] = '/';
	}
	pthread_mutex_lock(&t->lock);
	for (n = inodes_node(t, ino); n->parent; n = n->parent) {
		len = strlen(n->name);
		if (len + 1 > end) {
			rc = -ENAMETOOLONG;
			break;
		}
		end -= len;
		memcpy(buf + end, n->name, len);
		buf[--end] = '/';
	}
	pthread_mutex_unlock(&t->lock);
	if (rc < 0)
		return rc;
	if (end == size - 1)
		buf[--end] = '/'; /* the root */
	memmove(buf, buf + end, size - end);
	return 0;
}

/* Under t->lock. */
static void inodes_keep_locked(struct inodes *t, struct inodes_node *n, bool kept, bool stamped,
			       uint64_t stamp)
{
	t->kept += (unsigned long)kept - (unsigned long)n->kept;
	n->kept = kept;
	n->stamped = kept && stamped;
	n->stamp = stamp;
}

void inodes_keep(struct inodes *t, uint64_t ino, bool kept, bool stamped, uint64_t stamp)
{
	pthread_mutex_lock(&t->lock);
	inodes_keep_locked(t, inodes_node(t, ino), kept, stamped, stamp);
	pthread_mutex_unlock(&t->lock);
}

void inodes_listing(struct inodes *t, uint64_t ino, bool *kept, bool *stamped, uint64_t *stamp)
{
	struct inodes_node *n;

	pthread_mutex_lock(&t->lock);
	n = inodes_node(t, ino);
	*kept = n->kept;
	*stamped = n->stamped;
	*stamp = n->stamp;
	pthread_mutex_unlock(&t->lock);
}

int inodes_take_kept(struct inodes *t, uint64_t **inos, size_t *n)
{
	struct inodes_node *e;
	size_t i;

	*n = 0;
	pthread_mutex_lock(&t->lock);
	*inos = malloc((t->kept + 1) * sizeof(**inos));
	if (!*inos) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	if (t->root->kept)
		(*inos)[(*n)++] = INODES_ROOT;
	inodes_keep_locked(t, t->root, false, false, 0);
	for (i = 0; i < t->nb; i++)
		for (e = t->b[i]; e; e = e->next) {
			if (e->kept)
				(*inos)[(*n)++] = (uint64_t)(uintptr_t)e;
			inodes_keep_locked(t, e, false, false, 0);
		}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void inodes_set_rendered(struct inodes *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	inodes_node(t, ino)->rendered = true;
	pthread_mutex_unlock(&t->lock);
}

int inodes_rendered(struct inodes *t, uint64_t **inos, size_t *n)
{
	struct inodes_node *e;
	size_t i, cap = 64;

	*n = 0;
	*inos = malloc(cap * sizeof(**inos));
	if (!*inos)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nb; i++)
		for (e = t->b[i]; e; e = e->next) {
			uint64_t *more;

			if (!e->rendered)
				continue;
			if (*n == cap) {
				more = realloc(*inos, 2 * cap * sizeof(**inos));
				if (!more) {
					pthread_mutex_unlock(&t->lock);
					free(*inos);
					*inos = NULL;
					*n = 0;
					return -ENOMEM;
				}
				*inos = more;
				cap *= 2;
			}
			(*inos)[(*n)++] = (uint64_t)(uintptr_t)e;
		}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void inodes_held(struct inodes *t, unsigned long *inodes, unsigned long *listings)
{
	pthread_mutex_lock(&t->lock);
	*inodes = t->count;
	*listings = t->kept;
	pthread_mutex_unlock(&t->lock);
}
