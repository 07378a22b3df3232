/* SPDX-License-Identifier: MIT
 * libFuzzer target: the manifest parser and the table writer. A manifest either parses
 * into UIDs of digits and dots (at most 64 characters, no duplicates) or names a line
 * inside the input; a table row either is refused or renders and quotes its fields. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_manifest(const char *text, size_t size)
{
	struct view_manifest m;
	const char *why;
	size_t line, i, j, lines = 1;
	int rc = view_manifest_parse(text, size, &m, &line, &why);

	for (i = 0; i < size; i++)
		lines += text[i] == '\n';
	if (rc == -EINVAL) {
		if (line < 1 || line > lines || !why || m.uids)
			abort();
		return;
	}
	if (rc != 0)
		abort();
	for (i = 0; i < m.count; i++) {
		size_t n = strlen(m.uids[i]);

		if (n == 0 || n > 64 || strspn(m.uids[i], "0123456789.") != n)
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(m.uids[i], m.uids[j]) == 0)
				abort();
	}
	view_manifest_clear(&m);
}

static void check_table(const char *text)
{
	struct view_table *t;
	char *out;
	size_t len;

	if (view_table_new(&t) < 0)
		return;
	if (view_table_scan(t, text) == 0 && view_table_row(t, text, "/p,\"q\"") == 0 &&
	    view_table_finish(t, &out, &len) == 0) {
		/* A header and one row, each ending in CRLF; the path is quoted. */
		if (len < 4 || strcmp(out + len - 2, "\r\n") != 0 || !strstr(out, "\"/p,\"\"q\"\"\""))
			abort();
		free(out);
	}
	view_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_manifest(s, size);
	check_table(s);
	free(s);
	return 0;
}
