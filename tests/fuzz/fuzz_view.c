/* SPDX-License-Identifier: MIT
 * libFuzzer target: the manifest parser and the table writer. A manifest either parses
 * into UIDs of digits and dots (at most 64 characters, no duplicates) or names a line
 * inside the input; a table row of members read from the input renders and quotes its
 * fields. */
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

/* The input as an object's members: fields separated by 0x1e, alternately key and
 * value; a value of 0x1f alone is null. Keys may repeat; values hold anything. */
static size_t table_cells(char *text, struct view_cell *c, size_t max)
{
	size_t n = 0;
	char *p = text;

	while (n < max && p) {
		char *key = p, *val = strchr(p, 0x1e);

		if (!val)
			break;
		*val++ = '\0';
		p = strchr(val, 0x1e);
		if (p)
			*p++ = '\0';
		c[n].key = key;
		c[n].text = strcmp(val, "\x1f") == 0 ? NULL : val;
		c[n].len = c[n].text ? strlen(val) : 0;
		n++;
	}
	return n;
}

static void check_table(const char *text)
{
	struct view_cell c[64];
	struct view_table *t;
	char *copy = strdup(text), *out;
	size_t len, n;

	if (!copy || view_table_new(&t) < 0) {
		free(copy);
		return;
	}
	n = table_cells(copy, c, 64);
	if (view_table_learn(t, c, n) >= 0) {
		/* Every key was learnt: the row cannot be refused. */
		if (view_table_row(t, c, n, "/p,\"q\"") != 0 || view_table_learn(t, c, n) != 0)
			abort();
		if (view_table_finish(t, &out, &len) == 0) {
			/* A header and one row, each ending in CRLF; the path is quoted. */
			if (len < 4 || memcmp(out + len - 2, "\r\n", 2) != 0 ||
			    !strstr(out, "\"/p,\"\"q\"\"\""))
				abort();
			free(out);
		}
	}
	view_table_free(t);
	free(copy);
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
