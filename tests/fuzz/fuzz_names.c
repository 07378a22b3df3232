/* SPDX-License-Identifier: MIT
 * libFuzzer target: the name sanitiser and folder-name builders. Whatever goes in, what
 * comes out is one safe path component of at most 255 bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "unzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(char *s)
{
	size_t n, i;

	if (!s)
		return;
	n = strlen(s);
	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || s[0] == '.')
		abort();
	for (i = 0; i < n; i++)
		if (s[i] == '/' || (unsigned char)s[i] < 0x20)
			abort();
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *a, *b;
	size_t third;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	third = strlen(s) / 3;
	check(names_sanitize(s));
	a = strndup(s, third);
	b = strndup(s + third, third);
	if (a && b) {
		check(names_study(a, b, s + 2 * third, false));
		check(names_series(a, b, s, s + 2 * third, true));
	}
	(void)unzip_name_ok(s);
	free(a);
	free(b);
	free(s);
	return 0;
}
