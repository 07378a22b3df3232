/* SPDX-License-Identifier: MIT
 * tcia_pick.c — the members a record takes, read from an element's text in place
 * (jsonobj) for the long streamed lists: jansson built a tree of every member of 250,000
 * elements for the records to take a few, most of a bulk load's parsing. Part of the tcia
 * module; whatever this cannot answer exactly as jansson would is left to jansson.
 */
#include "tcia.h"
#include "tcia_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonobj.h"
#include "utf8.h"

/* Every member a patient, study or series record reads (tcia.c's one_fns). */
#define K(name) { name, sizeof(name) - 1 }
static const struct {
	const char *name;
	size_t len;
} tcia_pick_keys[] = {
	K("Collection"), K("PatientId"), K("PatientID"), K("StudyInstanceUID"),
	K("StudyDate"), K("StudyDescription"), K("SeriesCount"), K("SeriesInstanceUID"),
	K("Modality"), K("BodyPartExamined"), K("Manufacturer"), K("SeriesDescription"),
	K("SeriesNumber"), K("SeriesDate"), K("TimeStamp"), K("DateReleased"),
	K("LicenseName"), K("LicenseURI"), K("CollectionURI"), K("ImageCount"), K("FileSize"),
};
#undef K
#define TCIA_PICK_KEYS (sizeof(tcia_pick_keys) / sizeof(tcia_pick_keys[0]))
/* Members an element may have and still be read here (TCIA's have about twenty). */
#define TCIA_PICK_MEMBERS 64
/* The longest number read here; a longer one is jansson's to read. */
#define TCIA_PICK_NUMBER 64

enum tcia_pick_type { TP_ABSENT, TP_STRING, TP_INTEGER, TP_REAL, TP_OTHER };

struct tcia_picked {
	struct jsonobj reader;
	struct {
		enum tcia_pick_type type;
		size_t off, len;	/* in arena: a string as decoded, a number as printed */
		int64_t i;
		double d;
	} v[TCIA_PICK_KEYS];
	char *arena;
	size_t used, cap;
};

int tcia_picked_new(struct tcia_picked **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void tcia_picked_free(struct tcia_picked *p)
{
	if (!p)
		return;
	jsonobj_release(&p->reader);
	free(p->arena);
	free(p);
}

static size_t tcia_pick_key(const char *key, size_t klen)
{
	size_t k;

	for (k = 0; k < TCIA_PICK_KEYS; k++)
		if (tcia_pick_keys[k].len == klen && memcmp(tcia_pick_keys[k].name, key, klen) == 0)
			return k;
	return TCIA_PICK_KEYS;
}

/* Copies n bytes and a NUL into the arena; *off says where. */
static int tcia_pick_copy(struct tcia_picked *p, const char *s, size_t n, size_t *off)
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
 * an integer or a real out of range fails the whole element there. -EAGAIN for what
 * jansson would refuse (or is too long to read here). */
static int tcia_pick_number(const char *text, size_t len, enum tcia_pick_type *type,
			    int64_t *i, double *d)
{
	char buf[TCIA_PICK_NUMBER];

	if (len >= sizeof(buf))
		return -EAGAIN;
	memcpy(buf, text, len);
	buf[len] = '\0';
	errno = 0;
	if (strpbrk(buf, ".eE")) {
		*type = TP_REAL;
		*d = strtod(buf, NULL);
		if (errno == ERANGE && (*d == HUGE_VAL || *d == -HUGE_VAL))
			return -EAGAIN;
	} else {
		*type = TP_INTEGER;
		*i = strtoll(buf, NULL, 10);
		if (errno == ERANGE)
			return -EAGAIN;
	}
	return 0;
}

/* FNV-1a: to tell members' keys apart without keeping them. */
static uint64_t tcia_pick_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* One member: checked as jansson would check it, kept when a record reads it. */
static int tcia_pick_member(struct tcia_picked *p, const struct jsonobj_member *m)
{
	size_t k = tcia_pick_key(m->key, m->klen);
	enum tcia_pick_type type = m->type == JSONOBJ_STRING ? TP_STRING : TP_OTHER;
	char num[TCIA_PICK_NUMBER];
	int64_t i = 0;
	double d = 0;
	int n, rc;

	/* jansson refuses a NUL in a key; a nested value may repeat a key deeper down. */
	if (memchr(m->key, '\0', m->klen) || m->type == JSONOBJ_ARRAY ||
	    m->type == JSONOBJ_OBJECT)
		return -EAGAIN;
	if (m->type == JSONOBJ_NUMBER) {
		rc = tcia_pick_number(m->text, m->len, &type, &i, &d);
		if (rc < 0)
			return rc;
	}
	if (k == TCIA_PICK_KEYS)
		return 0;
	p->v[k].type = type;
	p->v[k].i = i;
	p->v[k].d = d;
	p->v[k].len = m->len;
	if (type == TP_STRING)
		return tcia_pick_copy(p, m->text, m->len, &p->v[k].off);
	if (type == TP_OTHER)
		return 0;	/* null, true, false: no text */
	n = type == TP_INTEGER ? snprintf(num, sizeof(num), "%" PRId64, i) :
				 snprintf(num, sizeof(num), "%.17g", d);
	return tcia_pick_copy(p, num, (size_t)n, &p->v[k].off);
}

int tcia_pick(struct tcia_picked *p, const char *text, size_t len)
{
	uint64_t seen[TCIA_PICK_MEMBERS];
	struct jsonobj_member m;
	size_t n = 0, i, k;
	int rc;

	for (k = 0; k < TCIA_PICK_KEYS; k++)
		p->v[k].type = TP_ABSENT;
	p->used = 0;
	/* jansson checks every byte of its input is UTF-8, inside strings or not. */
	if (!utf8_valid(text, len))
		return -EAGAIN;
	jsonobj_start(&p->reader, text, len);
	while ((rc = jsonobj_next(&p->reader, &m)) == 1) {
		/* A repeated key is refused by jansson (JSON_REJECT_DUPLICATES); two keys
		 * of one hash are left to it to tell apart. */
		seen[n] = tcia_pick_hash(m.key, m.klen);
		for (i = 0; i < n; i++)
			if (seen[i] == seen[n])
				return -EAGAIN;
		if (++n == TCIA_PICK_MEMBERS)
			return -EAGAIN;
		rc = tcia_pick_member(p, &m);
		if (rc < 0)
			return rc;
	}
	return rc == -ENOMEM ? rc : rc < 0 ? -EAGAIN : 0;
}

static size_t tcia_pick_find(const char *key)
{
	size_t k;

	for (k = 0; k < TCIA_PICK_KEYS; k++)
		if (strcmp(tcia_pick_keys[k].name, key) == 0)
			return k;
	return TCIA_PICK_KEYS;
}

int tcia_pick_text(const struct tcia_picked *p, const char *key, char **out)
{
	size_t k = tcia_pick_find(key);

	*out = NULL;
	if (k == TCIA_PICK_KEYS)
		return 0;
	switch (p->v[k].type) {
	case TP_STRING:
		*out = tcia_strdup_nul(p->arena + p->v[k].off, p->v[k].len);
		break;
	case TP_INTEGER:
	case TP_REAL:
		*out = strdup(p->arena + p->v[k].off);
		break;
	default:
		return 0;
	}
	return *out ? 0 : -ENOMEM;
}

int64_t tcia_pick_int(const struct tcia_picked *p, const char *key)
{
	size_t k = tcia_pick_find(key);

	if (k == TCIA_PICK_KEYS)
		return -1;
	switch (p->v[k].type) {
	case TP_INTEGER:
		return p->v[k].i >= 0 ? p->v[k].i : -1;
	case TP_REAL:
		return tcia_int_of_real(p->v[k].d);
	case TP_STRING:
		return tcia_int_of_string(p->arena + p->v[k].off, p->v[k].len);
	default:
		return -1;
	}
}
