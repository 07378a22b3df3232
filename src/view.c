/* SPDX-License-Identifier: MIT
 * view.c — manifests in, CSV tables and citations out. Pure text work, unit-tested and
 * fuzzed on its own; tree.c places the results in the namespace.
 */
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A manifest is a list of UIDs: anything bigger than this is not one. */
#define VIEW_MANIFEST_MAX (64u << 20)
#define VIEW_UID_MAX 64

/* ---- a growing text buffer ----------------------------------------------------------- */

struct view_buf {
	char *data;
	size_t len, cap;
	bool failed;
};

static void view_put(struct view_buf *b, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (b->failed)
		return;
	if (n + 1 > b->cap - b->len || !b->data) {
		cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->failed = true;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->data, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void view_puts(struct view_buf *b, const char *s)
{
	view_put(b, s, strlen(s));
}

/* ---- manifests ----------------------------------------------------------------------- */

void view_manifest_clear(struct view_manifest *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->count; i++)
		free(m->uids[i]);
	free(m->uids);
	free(m->name);
	memset(m, 0, sizeof(*m));
}

/* A DICOM UID: digits in dot-separated components, at most 64 characters. */
static bool view_is_uid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > VIEW_UID_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
		if (s[i] != '.' && (s[i] < '0' || s[i] > '9'))
			return false;
	}
	return true;
}

static bool view_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The UIDs seen so far, as an open-addressed hash set of indices into m->uids, so that
 * dropping duplicates costs the same for the millionth UID as for the first. */
struct view_seen {
	size_t *slot; /* index + 1, 0 = empty */
	size_t cap;   /* a power of two, kept at least twice the count */
};

static uint64_t view_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (n--)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int view_seen_grow(struct view_seen *seen, const struct view_manifest *m)
{
	size_t cap = seen->cap ? seen->cap * 2 : 256, i, j;
	size_t *slot = calloc(cap, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	for (i = 0; i < m->count; i++) {
		j = (size_t)view_hash(m->uids[i], strlen(m->uids[i])) & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = i + 1;
	}
	free(seen->slot);
	seen->slot = slot;
	seen->cap = cap;
	return 0;
}

static int view_manifest_add(struct view_manifest *m, struct view_seen *seen, const char *s,
			     size_t n, size_t *cap)
{
	size_t j;
	char **p;

	if ((m->count + 1) * 2 > seen->cap && view_seen_grow(seen, m) < 0)
		return -ENOMEM;
	j = (size_t)view_hash(s, n) & (seen->cap - 1);
	for (; seen->slot[j]; j = (j + 1) & (seen->cap - 1)) {
		const char *u = m->uids[seen->slot[j] - 1];

		if (strlen(u) == n && memcmp(u, s, n) == 0)
			return 0;
	}
	if (m->count == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		p = realloc(m->uids, *cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		m->uids = p;
	}
	m->uids[m->count] = strndup(s, n);
	if (!m->uids[m->count])
		return -ENOMEM;
	seen->slot[j] = ++m->count;
	return 0;
}

/* A header line of a .tcia file: key=value with a key of letters, digits, '_' or '.'. */
static bool view_is_header(const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);
	const char *k;

	if (!eq || eq == s)
		return false;
	for (k = s; k < eq; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '.' || *k == '-'))
			return false;
	return true;
}

int view_manifest_parse(const char *text, size_t len, struct view_manifest *out, size_t *line,
			const char **why)
{
	static const char list_key[] = "ListOfSeriesToDownload=";
	struct view_seen seen = { NULL, 0 };
	size_t pos = 0, no = 0, cap = 0;
	bool tcia = false, in_list = false, decided = false;
	int rc;

	memset(out, 0, sizeof(*out));
	*line = 0;
	*why = NULL;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + (nl ? 1 : 0);
		no++;
		if (memchr(s, '\0', n)) {
			*why = "a NUL byte: this is not a text file";
			goto out_invalid;
		}
		while (n && view_is_blank(s[n - 1]))
			n--;
		while (n && view_is_blank(s[0])) {
			s++;
			n--;
		}
		if (n == 0 || s[0] == '#')
			continue;
		if (!decided) {
			decided = true;
			tcia = memchr(s, '=', n) != NULL;
		}
		if (tcia && !in_list) {
			if (n == sizeof(list_key) - 1 && memcmp(s, list_key, n) == 0) {
				in_list = true;
				continue;
			}
			if (!view_is_header(s, n)) {
				*why = "expected a key=value header line or ListOfSeriesToDownload=";
				goto out_invalid;
			}
			continue;
		}
		if (!view_is_uid(s, n)) {
			*why = "not a SeriesInstanceUID (digits and dots, at most 64 characters)";
			goto out_invalid;
		}
		rc = view_manifest_add(out, &seen, s, n, &cap);
		if (rc < 0) {
			free(seen.slot);
			view_manifest_clear(out);
			return rc;
		}
	}
	free(seen.slot);
	if (tcia && !in_list) {
		*why = "no ListOfSeriesToDownload= line";
		goto out_invalid;
	}
	return 0;

out_invalid:
	free(seen.slot);
	*line = no;
	view_manifest_clear(out);
	return -EINVAL;
}

/* The manifest's name: the file's base name without a .tcia or .txt ending. */
static char *view_manifest_name(const char *file)
{
	const char *base = strrchr(file, '/');
	size_t n;

	base = base ? base + 1 : file;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".tcia") == 0)
		n -= 5;
	else if (n > 4 && strcmp(base + n - 4, ".txt") == 0)
		n -= 4;
	return strndup(base, n);
}

int view_manifest_load(const char *file, struct view_manifest *out, char *err, size_t errsize)
{
	struct stat st;
	const char *why;
	size_t line, got = 0;
	char *text = NULL;
	ssize_t r;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	/* O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it. */
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errsize, "manifest %s: %s", file, strerror(-rc));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > VIEW_MANIFEST_MAX) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EFBIG;
		snprintf(err, errsize, "manifest %s: %s", file,
			 S_ISREG(st.st_mode) ? "larger than 64 MiB: not a manifest"
					     : "not a regular file");
		goto out_close;
	}
	rc = -ENOMEM;
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		goto out_close;
	while (got < (size_t)st.st_size) {
		r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			snprintf(err, errsize, "manifest %s: %s", file, strerror(-rc));
			goto out_free;
		}
		got += (size_t)r;
	}
	rc = view_manifest_parse(text, got, out, &line, &why);
	if (rc == -EINVAL)
		snprintf(err, errsize, "manifest %s:%zu: %s", file, line, why);
	else if (rc == 0 && !(out->name = view_manifest_name(file))) {
		view_manifest_clear(out);
		rc = -ENOMEM;
	}
out_free:
	free(text);
out_close:
	if (fd >= 0)
		close(fd);
	if (rc == -ENOMEM)
		snprintf(err, errsize, "manifest %s: %s", file, strerror(ENOMEM));
	return rc;
}

/* ---- CSV tables ---------------------------------------------------------------------- */

struct view_table {
	json_t *index; /* key → its column number */
	char **cols;   /* column names in first-seen order */
	size_t ncols, capcols;
	const struct view_cell **slot; /* per column: the row's cell, or NULL */
	struct view_buf out;
	bool header_done;
};

int view_table_new(struct view_table **out)
{
	struct view_table *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->index = json_object();
	if (!t->index) {
		view_table_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void view_table_free(struct view_table *t)
{
	size_t i;

	if (!t)
		return;
	json_decref(t->index);
	for (i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t->slot);
	free(t->out.data);
	free(t);
}

/* The column of key, or -1. Objects of one kind mostly send their keys in one order:
 * the cell's own position is tried first. */
static long view_column(const struct view_table *t, const char *key, size_t pos)
{
	json_t *v;

	if (pos < t->ncols && strcmp(t->cols[pos], key) == 0)
		return (long)pos;
	v = json_object_get(t->index, key);
	return v ? (long)json_integer_value(v) : -1;
}

int view_table_learn(struct view_table *t, const struct view_cell *c, size_t n)
{
	size_t i;
	int grew = 0;

	for (i = 0; i < n; i++) {
		if (view_column(t, c[i].key, i) >= 0)
			continue;
		if (t->ncols == t->capcols) {
			size_t cap = t->capcols ? 2 * t->capcols : 32;
			char **nc = realloc(t->cols, cap * sizeof(*nc));
			const struct view_cell **ns;

			if (!nc)
				return -ENOMEM;
			t->cols = nc;
			ns = realloc(t->slot, cap * sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			t->slot = ns;
			t->capcols = cap;
		}
		if (!(t->cols[t->ncols] = strdup(c[i].key)))
			return -ENOMEM;
		if (json_object_set_new(t->index, c[i].key, json_integer((json_int_t)t->ncols))) {
			free(t->cols[t->ncols]);
			return -ENOMEM;
		}
		t->ncols++;
		grew = 1;
	}
	return grew;
}

/* One field, quoted when it must be (RFC 4180 §2.6-2.7). */
static void view_field(struct view_buf *b, const char *s, size_t n, bool first)
{
	size_t i, from = 0;

	/* The bytes that make a field quoted: a table of them, as each byte of a table of
	 * 200,000 rows passes here. */
	static const bool special[256] = {
		[','] = true, ['"'] = true, ['\r'] = true, ['\n'] = true
	};

	if (!first)
		view_put(b, ",", 1);
	for (i = 0; i < n; i++)
		if (special[(unsigned char)s[i]])
			break;
	if (i == n) {
		view_put(b, s, n);
		return;
	}
	view_put(b, "\"", 1);
	for (i = 0; i < n; i++)
		if (s[i] == '"') {
			view_put(b, s + from, i + 1 - from);
			view_put(b, "\"", 1);
			from = i + 1;
		}
	view_put(b, s + from, n - from);
	view_put(b, "\"", 1);
}

static void view_table_header(struct view_table *t)
{
	size_t i;

	for (i = 0; i < t->ncols; i++)
		view_field(&t->out, t->cols[i], strlen(t->cols[i]), i == 0);
	view_field(&t->out, "Path", 4, t->ncols == 0);
	view_put(&t->out, "\r\n", 2);
	t->header_done = true;
}

int view_table_row(struct view_table *t, const struct view_cell *c, size_t n, const char *path)
{
	size_t i;
	long col;

	if (!t->header_done)
		view_table_header(t);
	for (i = 0; i < t->ncols; i++)
		t->slot[i] = NULL;
	for (i = 0; i < n; i++) {
		col = view_column(t, c[i].key, i);
		if (col < 0)
			return -EINVAL; /* not learnt */
		t->slot[col] = &c[i];   /* a key sent twice: the last wins */
	}
	for (i = 0; i < t->ncols; i++) {
		const struct view_cell *v = t->slot[i];

		view_field(&t->out, v && v->text ? v->text : "", v && v->text ? v->len : 0, i == 0);
	}
	view_field(&t->out, path, strlen(path), t->ncols == 0);
	view_put(&t->out, "\r\n", 2);
	return t->out.failed ? -ENOMEM : 0;
}

int view_table_finish(struct view_table *t, char **out, size_t *len)
{
	if (!t->header_done)
		view_table_header(t);
	if (t->out.failed)
		return -ENOMEM;
	*out = t->out.data;
	*len = t->out.len;
	memset(&t->out, 0, sizeof(t->out));
	return 0;
}

void view_table_restart(struct view_table *t)
{
	free(t->out.data);
	memset(&t->out, 0, sizeof(t->out));
	t->header_done = false;
}

/* ---- citations ----------------------------------------------------------------------- */

/* Appends s on one line: the API's values may hold line breaks and control characters,
 * which would add lines of their own to a text users read and scripts parse. */
static void view_put_line(struct view_buf *b, const char *s)
{
	size_t n;

	while (*s) {
		n = 0;
		while (s[n] && (unsigned char)s[n] >= 0x20 && s[n] != 0x7f)
			n++;
		view_put(b, s, n);
		s += n;
		if (*s) {
			view_put(b, " ", 1);
			s++;
		}
	}
}

static void view_list(struct view_buf *b, const char *label, const char *const *v, size_t n)
{
	size_t i;

	view_puts(b, label);
	if (n == 0)
		view_puts(b, " (the archive does not say)\n");
	else if (n == 1)
		view_puts(b, " ");
	else
		view_puts(b, "\n");
	for (i = 0; i < n; i++) {
		view_puts(b, n > 1 ? "  " : "");
		view_put_line(b, v[i]);
		view_puts(b, "\n");
	}
}

int view_citation_render(const struct view_citation *c, char **out, size_t *len)
{
	struct view_buf b = { 0 };

	view_puts(&b, "Collection: ");
	view_put_line(&b, c->collection);
	view_puts(&b, "\n\n");
	view_list(&b, c->ndois > 1 ? "DOIs:" : "DOI:", c->dois, c->ndois);
	view_list(&b, c->nnames > 1 ? "Licences:" : "Licence:", c->licence_names, c->nnames);
	view_list(&b, c->nuris > 1 ? "Licence URIs:" : "Licence URI:", c->licence_uris, c->nuris);
	view_puts(&b, "\nHow to cite: TCIA asks that work using this collection cite the data by "
		      "its DOI above\n(the collection's page there gives the full data citation), "
		      "respect its licence, and\nalso cite the publication describing TCIA:\n\n  ");
	view_puts(&b, VIEW_TCIA_CITATION);
	view_puts(&b, "\n\nThe DOI and licence come from the series records of this collection "
		      "(CollectionURI,\nLicenseName, LicenseURI); collection.json carries the "
		      "same fields.\n");
	if (b.failed) {
		free(b.data);
		return -ENOMEM;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}
