/* SPDX-License-Identifier: MIT
 * utf8.c — recognising the UTF-8 sequences that must not reach a user's screen as they
 * are, checking text is UTF-8 at all, and cutting names on a UTF-8 boundary (with the
 * "~N" rule for names that would be the same). Pure functions.
 */
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	/* A UTF-8 sequence is at most 4 bytes: back off at most 3. Longer runs of
	 * continuation bytes are not UTF-8 at all, and are cut where they stand. */
	while (n > 0 && max - n < 3 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	if (((unsigned char)s[n] & 0xC0) == 0x80)
		n = max;
	return n;
}

char *utf8_twin(const char *name, size_t n)
{
	char *s;

	if (asprintf(&s, "%.*s~%zu", (int)utf8_cut(name, UTF8_TWIN_KEEP), name, n) < 0)
		return NULL;
	return s;
}

size_t utf8_bidi_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 &&
	    ((s[2] >= 0xaa && s[2] <= 0xae) || s[2] == 0x8e || s[2] == 0x8f))
		return 3;
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)
		return 3;
	if (n >= 2 && s[0] == 0xd8 && s[1] == 0x9c)
		return 2;
	return 0;
}

bool utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + n;
	uint64_t w;
	size_t len, i;
	unsigned v;

	while (s < end) {
		/* Eight ASCII bytes a step: lists from TCIA are nearly all ASCII. */
		if (end - s >= 8) {
			memcpy(&w, s, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				s += 8;
				continue;
			}
		}
		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf)
			len = 2, v = *s & 0x1f;
		else if (*s >= 0xe0 && *s <= 0xef)
			len = 3, v = *s & 0x0f;
		else if (*s >= 0xf0 && *s <= 0xf4)
			len = 4, v = *s & 0x07;
		else
			return false;
		if ((size_t)(end - s) < len)
			return false;
		for (i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			v = v << 6 | (s[i] & 0x3f);
		}
		if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10ffff ||
		    (v >= 0xd800 && v <= 0xdfff))
			return false;
		s += len;
	}
	return true;
}
