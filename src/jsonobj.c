/* SPDX-License-Identifier: MIT
 * jsonobj.c — the members of one JSON object's text, read in place. SQLite's json_each
 * made a table of 210,000 series cost 5 s of the daemon's time, most of it copying each
 * value twice; this reads the same text at memory speed.
 */
#include "jsonobj.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum { JO_OPEN, JO_FIRST, JO_NEXT, JO_DONE, JO_BAD };

/* How deep arrays and objects may nest in a member's value (jansson's own bound). */
#define JSONOBJ_DEPTH 2048

void jsonobj_start(struct jsonobj *o, const char *text, size_t len)
{
	o->p = text;
	o->end = text + len;
	o->state = JO_OPEN;
}

void jsonobj_release(struct jsonobj *o)
{
	free(o->scratch);
	o->scratch = NULL;
	o->cap = 0;
}

static void jsonobj_space(struct jsonobj *o)
{
	while (o->p < o->end && (*o->p == ' ' || *o->p == '\t' || *o->p == '\n' || *o->p == '\r'))
		o->p++;
}

/* Room for need bytes in the scratch buffer. */
static int jsonobj_room(struct jsonobj *o, size_t need)
{
	char *grown;
	size_t cap = o->cap ? o->cap : 256;

	if (need <= o->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	grown = realloc(o->scratch, cap);
	if (!grown)
		return -ENOMEM;
	o->scratch = grown;
	o->cap = cap;
	return 0;
}

static int jsonobj_hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (end - p < 4)
		return -EBADMSG;
	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EBADMSG;
	}
	*out = v;
	return 0;
}

/* The escape after a backslash at *pp (which moves past it), as UTF-8 into out (room
 * for 4 bytes); its length, or -EBADMSG. */
static int jsonobj_escape(const char **pp, const char *end, char *out)
{
	const char *p = *pp;
	unsigned c, lo;

	if (p >= end)
		return -EBADMSG;
	switch (*p++) {
	case '"':
		c = '"';
		break;
	case '\\':
		c = '\\';
		break;
	case '/':
		c = '/';
		break;
	case 'b':
		c = '\b';
		break;
	case 'f':
		c = '\f';
		break;
	case 'n':
		c = '\n';
		break;
	case 'r':
		c = '\r';
		break;
	case 't':
		c = '\t';
		break;
	case 'u':
		if (jsonobj_hex4(p, end, &c) < 0)
			return -EBADMSG;
		p += 4;
		if (c >= 0xDC00 && c <= 0xDFFF)
			return -EBADMSG; /* a low surrogate alone */
		if (c >= 0xD800 && c <= 0xDBFF) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    jsonobj_hex4(p + 2, end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
				return -EBADMSG;
			p += 6;
			c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
		}
		break;
	default:
		return -EBADMSG;
	}
	*pp = p;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* The first byte from p that ends a string's plain run: a quote, a backslash or a
 * control character (not allowed in JSON text), else end. Sixteen bytes a step where
 * SSE2 is (every x86-64), else eight: strings are most of an object's text. */
const char *jsonobj_plain(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x1f);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* A byte at or under 0x1f is its own minimum with 0x1f. */
		__m128i hit = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
			_mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);

		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		uint64_t v, q, b;

		memcpy(&v, p, 8);
		q = v ^ (ones * '"');
		b = v ^ (ones * '\\');
		/* A byte of zero in q or b, or one under 0x20 in v, sets its high bit. */
		if (((q - ones) & ~q & highs) | ((b - ones) & ~b & highs) |
		    ((v - ones * 0x20) & ~v & highs))
			break;
		p += 8;
	}
	while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
		p++;
	return p;
}

/* The string at o->p (its opening quote), decoded: in place when it has no escapes, else
 * into the scratch buffer from offset at (*used moves past it). */
static int jsonobj_string(struct jsonobj *o, size_t *used, const char **text, size_t *len)
{
	const char *start = ++o->p, *p;
	size_t at = *used, n;
	int rc;

	p = jsonobj_plain(start, o->end);
	if (p >= o->end || (unsigned char)*p < 0x20)
		return -EBADMSG;
	if (*p == '"') {
		*text = start;
		*len = (size_t)(p - start);
		o->p = p + 1;
		return 0;
	}
	/* Escapes: decoded text is never longer than the text it comes from. */
	for (n = (size_t)(p - start); p < o->end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	if (p >= o->end)
		return -EBADMSG;
	rc = jsonobj_room(o, at + (size_t)(p - start) + 1);
	if (rc < 0)
		return rc;
	memcpy(o->scratch + at, start, n);
	for (p = start + n; *p != '"';) {
		if (*p == '\\') {
			p++;
			rc = jsonobj_escape(&p, o->end, o->scratch + at + n);
			if (rc < 0)
				return rc;
			n += (size_t)rc;
		} else if ((unsigned char)*p < 0x20) {
			return -EBADMSG;
		} else {
			o->scratch[at + n++] = *p++;
		}
	}
	o->p = p + 1;
	*used = at + n;
	/* The pointer last: the buffer may have moved while this string was decoded. */
	*text = o->scratch + at;
	*len = n;
	return 0;
}

/* jansson lets one NUL byte pass right after a number or a literal (its reader takes a
 * NUL in its buffer for "refill", and one is left there when it puts back the byte that
 * ended the token). The catalog holds what jansson took: read it alike. */
static void jsonobj_nul(struct jsonobj *o)
{
	if (o->p < o->end && *o->p == '\0')
		o->p++;
}

static bool jsonobj_digits(const char **pp, const char *end)
{
	const char *p = *pp;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == *pp)
		return false;
	*pp = p;
	return true;
}

/* A number at o->p, as sent: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jsonobj_number(struct jsonobj *o, const char **text, size_t *len)
{
	const char *p = o->p;

	if (p < o->end && *p == '-')
		p++;
	if (p < o->end && *p == '0')
		p++;
	else if (p >= o->end || *p < '1' || *p > '9' || !jsonobj_digits(&p, o->end))
		return -EBADMSG;
	if (p < o->end && *p == '.') {
		p++;
		if (!jsonobj_digits(&p, o->end))
			return -EBADMSG;
	}
	if (p < o->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < o->end && (*p == '+' || *p == '-'))
			p++;
		if (!jsonobj_digits(&p, o->end))
			return -EBADMSG;
	}
	*text = o->p;
	*len = (size_t)(p - o->p);
	o->p = p;
	jsonobj_nul(o);
	return 0;
}

static bool jsonobj_word(struct jsonobj *o, const char *word, size_t n)
{
	if ((size_t)(o->end - o->p) < n || memcmp(o->p, word, n) != 0)
		return false;
	o->p += n;
	jsonobj_nul(o);
	return true;
}

/* An array or an object at o->p, copied without the whitespace between its tokens into
 * the scratch buffer from *used. Its brackets are matched and its strings kept whole;
 * the rest of its grammar is not checked (jansson checked it when the text came). */
static int jsonobj_nested(struct jsonobj *o, size_t *used, const char **text, size_t *len)
{
	const char *p = o->p;
	size_t at = *used, n = 0, depth = 0;
	uint8_t kinds[JSONOBJ_DEPTH / 8] = { 0 }; /* one bit a level: 1 = object */
	int rc = jsonobj_room(o, at + (size_t)(o->end - p) + 1);

	if (rc < 0)
		return rc;
	for (; p < o->end; p++) {
		char c = *p;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0')
			continue; /* (a NUL: as above, jansson took it) */
		o->scratch[at + n++] = c;
		if (c == '"') {
			for (p++; p < o->end && *p != '"'; p++) {
				if ((unsigned char)*p < 0x20)
					return -EBADMSG;
				o->scratch[at + n++] = *p;
				if (*p == '\\' && p + 1 < o->end)
					o->scratch[at + n++] = *++p;
			}
			if (p >= o->end)
				return -EBADMSG;
			o->scratch[at + n++] = '"';
		} else if (c == '[' || c == '{') {
			if (depth == JSONOBJ_DEPTH)
				return -EBADMSG;
			if (c == '{')
				kinds[depth / 8] |= (uint8_t)(1u << (depth % 8));
			else
				kinds[depth / 8] &= (uint8_t) ~(1u << (depth % 8));
			depth++;
		} else if (c == ']' || c == '}') {
			if (depth == 0 ||
			    !!(kinds[(depth - 1) / 8] & (1u << ((depth - 1) % 8))) != (c == '}'))
				return -EBADMSG;
			if (--depth == 0) {
				o->p = p + 1;
				*used = at + n;
				*text = o->scratch + at;
				*len = n;
				return 0;
			}
		}
	}
	return -EBADMSG;
}

static int jsonobj_value(struct jsonobj *o, size_t *used, struct jsonobj_member *m)
{
	m->text = NULL;
	m->len = 0;
	if (o->p >= o->end)
		return -EBADMSG;
	switch (*o->p) {
	case '"':
		m->type = JSONOBJ_STRING;
		return jsonobj_string(o, used, &m->text, &m->len);
	case '[':
	case '{':
		m->type = *o->p == '[' ? JSONOBJ_ARRAY : JSONOBJ_OBJECT;
		return jsonobj_nested(o, used, &m->text, &m->len);
	case 't':
		m->type = JSONOBJ_TRUE;
		return jsonobj_word(o, "true", 4) ? 0 : -EBADMSG;
	case 'f':
		m->type = JSONOBJ_FALSE;
		return jsonobj_word(o, "false", 5) ? 0 : -EBADMSG;
	case 'n':
		m->type = JSONOBJ_NULL;
		return jsonobj_word(o, "null", 4) ? 0 : -EBADMSG;
	default:
		m->type = JSONOBJ_NUMBER;
		return jsonobj_number(o, &m->text, &m->len);
	}
}

static int jsonobj_member(struct jsonobj *o, struct jsonobj_member *m)
{
	size_t used = 0;
	bool decoded;
	int rc;

	if (o->p >= o->end || *o->p != '"')
		return -EBADMSG;
	rc = jsonobj_string(o, &used, &m->key, &m->klen);
	if (rc < 0)
		return rc;
	decoded = used > 0; /* then at the scratch buffer's start, which may move */
	jsonobj_space(o);
	if (o->p >= o->end || *o->p != ':')
		return -EBADMSG;
	o->p++;
	jsonobj_space(o);
	rc = jsonobj_value(o, &used, m);
	if (decoded)
		m->key = o->scratch;
	return rc;
}

int jsonobj_next(struct jsonobj *o, struct jsonobj_member *m)
{
	int rc;

	switch (o->state) {
	case JO_DONE:
		return 0;
	case JO_BAD:
		return -EBADMSG;
	case JO_OPEN:
		jsonobj_space(o);
		if (o->p >= o->end || *o->p != '{')
			goto bad;
		o->p++;
		o->state = JO_FIRST;
		/* fall through */
	case JO_FIRST:
	case JO_NEXT:
		jsonobj_space(o);
		if (o->p < o->end && *o->p == '}') {
			o->p++;
			jsonobj_space(o);
			if (o->p != o->end)
				goto bad; /* text after the object */
			o->state = JO_DONE;
			return 0;
		}
		if (o->state == JO_NEXT) {
			if (o->p >= o->end || *o->p != ',')
				goto bad;
			o->p++;
			jsonobj_space(o);
		}
		rc = jsonobj_member(o, m);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			goto bad;
		o->state = JO_NEXT;
		return 1;
	}
bad:
	o->state = JO_BAD;
	return -EBADMSG;
}
