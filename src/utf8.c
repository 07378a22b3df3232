/* SPDX-License-Identifier: MIT
 * utf8.c — recognising the UTF-8 sequences that must not reach a user's screen as they
 * are. Pure functions, no allocation.
 */
#include "utf8.h"

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
