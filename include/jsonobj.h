/* SPDX-License-Identifier: MIT
 * jsonobj.h — the members of one JSON object's text, read in place: the catalog keeps
 * each object as the API sent it, and a table of 200,000 rows reads every member of
 * every one. No tree is built; only strings with escapes are copied.
 */
#ifndef TCIAFS_JSONOBJ_H
#define TCIAFS_JSONOBJ_H

#include <stddef.h>

enum jsonobj_type {
	JSONOBJ_NULL,
	JSONOBJ_TRUE,
	JSONOBJ_FALSE,
	JSONOBJ_NUMBER, /* text: the number as sent */
	JSONOBJ_STRING, /* text: decoded (may hold NUL bytes: \u0000) */
	JSONOBJ_ARRAY,  /* text: the value with the whitespace between tokens left out */
	JSONOBJ_OBJECT,
};

struct jsonobj_member {
	const char *key; /* decoded, len klen */
	size_t klen;
	enum jsonobj_type type;
	const char *text; /* NULL for null, true and false */
	size_t len;
};

/* A reader of one object's text; the text must outlive it. */
struct jsonobj {
	const char *p, *end;
	int state;
	char *scratch; /* decoded strings and compacted values */
	size_t cap;
};

/* Starts reading the object in text[0..len). */
void jsonobj_start(struct jsonobj *o, const char *text, size_t len);

/* The next member into *m (valid until the next call): 1, 0 after the last one, or
 * -EBADMSG when the text is not one well-formed JSON object (what was handed out before
 * is then not to be trusted), -ENOMEM. Strings must be valid UTF-8 and their \u escapes
 * whole: what jansson accepts, this accepts. */
int jsonobj_next(struct jsonobj *o, struct jsonobj_member *m);

/* Frees what the reader holds; it may be started again. */
void jsonobj_release(struct jsonobj *o);

/* Where the plain run of a string's text from p ends: at the first quote, backslash or
 * control character, else at end (for the parsers that delimit streamed lists). */
const char *jsonobj_plain(const char *p, const char *end);

#endif
