/* SPDX-License-Identifier: MIT
 * jsonpick.h — the members a record takes from one flat JSON object, read in place
 * (jsonobj) instead of built into a jansson tree of every member: most of a bulk load's
 * parsing. Whatever this cannot read exactly as jansson would is refused with -EAGAIN,
 * for the caller to leave to jansson (which also says what is wrong with it).
 */
#ifndef TCIAFS_JSONPICK_H
#define TCIAFS_JSONPICK_H

#include <stddef.h>
#include <stdint.h>

enum jsonpick_type { JP_ABSENT, JP_NULL, JP_STRING, JP_INTEGER, JP_REAL, JP_BOOL };

struct jsonpick_value {
	enum jsonpick_type type;
	const char *text; /* a string as decoded, a number as jansson prints it; else NULL */
	size_t len;       /* a string may hold NUL bytes (only with JSONPICK_NUL) */
	int64_t i;        /* JP_INTEGER; JP_BOOL: 1 for true */
	double d;         /* JP_REAL */
};

/* \u0000 allowed in strings, as jansson's JSON_ALLOW_NUL; without it, -EAGAIN. */
#define JSONPICK_NUL 1u

struct jsonpick;

/* A picker of the members named in keys (NULL-ended; the array must outlive it). */
int jsonpick_new(const char *const *keys, unsigned flags, struct jsonpick **out);
void jsonpick_free(struct jsonpick *p);

/* Reads the object in text[0..len): 0, -EAGAIN when jansson is to read it (what
 * jansson refuses, and what it might read otherwise: a repeated key, a nested value, a
 * number out of range, more than 64 members), -ENOMEM. */
int jsonpick_read(struct jsonpick *p, const char *text, size_t len);

/* The value of key in the object last read (valid until the next read); NULL when key
 * is not one of the picker's keys. */
const struct jsonpick_value *jsonpick_find(const struct jsonpick *p, const char *key);

#endif
