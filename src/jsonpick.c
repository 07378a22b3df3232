/* SPDX-License-Identifier: MIT
 * jsonpick.c — a flat object's wanted members, read in place and checked as jansson would
 * check them: for the long streamed lists (TCIA's getSeries, IDC's /sql pages), where a
 * jansson tree of every member of 200,000 objects was most of a load's parsing.
 */
#include "jsonpick.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonobj.h"
#include "utf8.h"

/* Members an object may have and still be read here (the APIs' have about twenty). */
#define JSONPICK_MEMBERS 64
/* The longest number read here; a longer one is jansson's to read. */
#define JSONPICK_NUMBER 64

struct jsonpick {
	const char *const *keys;
	size_t *klen;
	size_t n;
	unsigned flags;
	struct jsonobj reader;
	struct jsonpick_value *v;
	size_t *off; /* each value's text in arena */
	char *arena;
	size_t used, cap;
};

int jsonpick_new(const char *const *keys, unsigned flags, struct jsonpick **out)
{
	struct jsonpick *p = calloc(1, sizeof(*p));
	size_t k;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	while (keys[p->n])
		p->n++;
	p->keys = keys;
	p->flags = flags;
	p->klen = calloc(p->n + 1, sizeof(*p->klen));
	p->off = calloc(p->n + 1, sizeof(*p->off));
	p->v = calloc(p->n + 1, sizeof(*p->v));
	if (!p->klen || !p->off || !p->v) {
		jsonpick_free(p);
		return -ENOMEM;
	}
	for (k = 0; k < p->n; k++)
		p->klen[k] = strlen(keys[k]);
	*out = p;
	return 0;
}

void jsonpick_free(struct jsonpick *p)
{
	if (!p)
		return;
	jsonobj_release(&p->reader);
	free(p->klen);
	free(p->off);
	free(p->v);
	free(p->arena);
	free(p);
}

static size_t jsonpick_key(const struct jsonpick *p, const char *key, size_t klen)
{
	size_t k;

	for (k = 0; k < p->n; k++)
		if (p->klen[k] == klen && memcmp(p->keys[k], key, klen) == 0)
			return k;
	return p->n;
}

/* Copies n bytes and a NUL into the arena; *off says where. */
static int jsonpick_copy(struct jsonpick *p, const char *s, size_t n, size_t *off)
{
	char *a;
	size_t cap;

	if (p->used + n + 1 > p->cap) {
		for (cap = p->cap ? p->cap : 1024; cap < p->used + n + 1; cap *= 2)
			;
		a = realloc(p->arena, cap);
		if (!a)
			return -ENOMEM;
		p->arena = a;
		p->cap = cap;
	}
	*off = p->used;
	memcpy(p->arena + p->used, s, n);
	p->arena[p->used + n] = '\0';
	p->used += n + 1;
	return 0;
}

/* A number as jansson reads it: an integer unless it has a fraction or an exponent, and
 * an integer or a real out of range fails the whole object there. -EAGAIN for what
 * jansson would refuse (or is too long to read here). */
static int jsonpick_number(const char *text, size_t len, struct jsonpick_value *v)
{
	char buf[JSONPICK_NUMBER];

	if (len >= sizeof(buf))
		return -EAGAIN;
	memcpy(buf, text, len);
	buf[len] = '\0';
	errno = 0;
	if (strpbrk(buf, ".eE")) {
		v->type = JP_REAL;
		v->d = strtod(buf, NULL);
		if (errno == ERANGE && (v->d == HUGE_VAL || v->d == -HUGE_VAL))
			return -EAGAIN;
	} else {
		v->type = JP_INTEGER;
		v->i = strtoll(buf, NULL, 10);
		if (errno == ERANGE)
			return -EAGAIN;
	}
	return 0;
}

/* FNV-1a: to tell members' keys apart without keeping them. */
static uint64_t jsonpick_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* One member: checked as jansson would check it, kept when it is wanted. */
static int jsonpick_member(struct jsonpick *p, const struct jsonobj_member *m)
{
	struct jsonpick_value v = { .type = JP_BOOL };
	char num[JSONPICK_NUMBER];
	size_t k;
	int n, rc;

	/* jansson refuses a NUL in a key; a nested value may repeat a key deeper down. */
	if (memchr(m->key, '\0', m->klen) || m->type == JSONOBJ_ARRAY || m->type == JSONOBJ_OBJECT)
		return -EAGAIN;
	switch (m->type) {
	case JSONOBJ_NUMBER:
		rc = jsonpick_number(m->text, m->len, &v);
		if (rc < 0)
			return rc;
		break;
	case JSONOBJ_STRING:
		if (!(p->flags & JSONPICK_NUL) && memchr(m->text, '\0', m->len))
			return -EAGAIN;
		v.type = JP_STRING;
		break;
	case JSONOBJ_NULL:
		v.type = JP_NULL;
		break;
	default:
		v.i = m->type == JSONOBJ_TRUE;
		break;
	}
	k = jsonpick_key(p, m->key, m->klen);
	if (k == p->n)
		return 0;
	p->v[k] = v;
	p->v[k].len = m->len;
	if (v.type == JP_STRING)
		return jsonpick_copy(p, m->text, m->len, &p->off[k]);
	if (v.type != JP_INTEGER && v.type != JP_REAL)
		return 0;
	n = v.type == JP_INTEGER ? snprintf(num, sizeof(num), "%" PRId64, v.i)
				 : snprintf(num, sizeof(num), "%.17g", v.d);
	p->v[k].len = (size_t)n;
	return jsonpick_copy(p, num, (size_t)n, &p->off[k]);
}

int jsonpick_read(struct jsonpick *p, const char *text, size_t len)
{
	uint64_t seen[JSONPICK_MEMBERS];
	struct jsonobj_member m;
	size_t n = 0, i, k;
	int rc;

	for (k = 0; k < p->n; k++)
		memset(&p->v[k], 0, sizeof(p->v[k])); /* JP_ABSENT */
	p->used = 0;
	/* jansson checks every byte of its input is UTF-8, inside strings or not. */
	if (!utf8_valid(text, len))
		return -EAGAIN;
	jsonobj_start(&p->reader, text, len);
	while ((rc = jsonobj_next(&p->reader, &m)) == 1) {
		/* A repeated key is refused by jansson (JSON_REJECT_DUPLICATES) or read as
		 * its last value; two keys of one hash are left to it to tell apart. */
		seen[n] = jsonpick_hash(m.key, m.klen);
		for (i = 0; i < n; i++)
			if (seen[i] == seen[n])
				return -EAGAIN;
		if (++n == JSONPICK_MEMBERS)
			return -EAGAIN;
		rc = jsonpick_member(p, &m);
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EAGAIN;
	for (k = 0; k < p->n; k++)
		if (p->v[k].type == JP_STRING || p->v[k].type == JP_INTEGER ||
		    p->v[k].type == JP_REAL)
			p->v[k].text = p->arena + p->off[k];
	return 0;
}

const struct jsonpick_value *jsonpick_find(const struct jsonpick *p, const char *key)
{
	size_t k = jsonpick_key(p, key, strlen(key));

	return k < p->n ? &p->v[k] : NULL;
}
