/* SPDX-License-Identifier: MIT
 * names.c — the names of the namespace: folder names made from what the API says
 * (readable, sanitized, cut at UTF-8 boundaries), names kept from clashing with each
 * other and with the files the tree adds, and the probes of desktop tools.
 */
#include "names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---- our own names ------------------------------------------------------------------ */

/* The files and folders the tree makes itself, and the names the API must therefore not
 * take: a collection at the root, a patient in a collection (names_unreserve). */
const char *const names_facet_dirs[3] = { ".by-modality", ".by-bodypart", ".by-manufacturer" };
const char *const names_table_files[3] = { "patients.csv", "studies.csv", "series.csv" };
const char *const names_root_reserved[2] = { "README.txt", "manifests" };
const char *const names_coll_reserved[5] = { "collection.json", "patients.csv", "studies.csv",
					     "series.csv", "CITATION.txt" };

static const char *const names_probes[] = {
	"desktop.ini", "Desktop.ini", "autorun.inf", "AUTORUN.INF",
	"Thumbs.db",   "folder.jpg",  "folder.gif",  "AlbumArtSmall.jpg",
};

bool names_is_probe(const char *name)
{
	size_t i;

	/* Nothing TCIA names starts with a dot once sanitised; dot names are hidden-file,
	 * VCS and desktop probes (.hidden, .directory, .DS_Store, .git, .Trash-0). */
	if (name[0] == '.')
		return true;
	for (i = 0; i < sizeof(names_probes) / sizeof(names_probes[0]); i++)
		if (strcmp(name, names_probes[i]) == 0)
			return true;
	return false;
}

char *names_sanitize(const char *name)
{
	size_t n, i, j;
	char *out;

	if (name[0] == '\0')
		return strdup("_empty_");
	if (strcmp(name, ".") == 0)
		return strdup("_dot_");
	if (strcmp(name, "..") == 0)
		return strdup("_dotdot_");
	n = utf8_cut(name, NAMES_MAX);
	out = strndup(name, n);
	if (!out)
		return NULL;
	for (i = 0, j = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		size_t bidi = utf8_bidi_len(out + i, n - i);

		if (bidi) {
			/* A bidi control makes "evil\u202Egpj.exe" show as "evilexe.jpg". */
			out[j++] = '_';
			i += bidi - 1;
		} else {
			out[j++] = (c == '/' || c < 0x20 || c == 0x7F) ? '_' : (char)c;
		}
	}
	out[j] = '\0';
	/* A leading dot would hide the entry and look like a probe name. */
	if (out[0] == '.')
		out[0] = '_';
	return out;
}

/* Joins the non-empty parts with spaces, sanitises, and appends "-<uid tail>" within
 * 255 bytes. Returns a new string or NULL. */
static char *names_readable(const char *const *parts, size_t nparts, const char *uid, bool full)
{
	char base[1024], *clean, *out;
	const char *tail = uid ? uid : "";
	size_t len = 0, i, cut, tlen;

	base[0] = '\0';
	for (i = 0; i < nparts; i++) {
		if (!parts[i] || !parts[i][0])
			continue;
		len += (size_t)snprintf(base + len, sizeof(base) - len, "%s%s", len ? " " : "",
					parts[i]);
		if (len >= sizeof(base) - 1) {
			len = utf8_cut(base, sizeof(base) - 2);
			base[len] = '\0';
			break;
		}
	}
	if (!full && strlen(tail) > 5)
		tail += strlen(tail) - 5;
	if (len == 0)
		return names_sanitize(tail[0] ? tail : "");
	clean = names_sanitize(base);
	if (!clean)
		return NULL;
	tlen = strlen(tail);
	/* Keep the UID tail whole: it is what makes the name unique. */
	cut = utf8_cut(clean, tlen + 1 < NAMES_MAX ? NAMES_MAX - tlen - 1 : 0);
	out = malloc(cut + tlen + 2);
	if (out) {
		memcpy(out, clean, cut);
		out[cut] = '-';
		memcpy(out + cut + 1, tail, tlen + 1);
	}
	free(clean);
	if (out && strlen(out) > NAMES_MAX)
		out[utf8_cut(out, NAMES_MAX)] = '\0';
	if (out)
		for (i = 0; out[i]; i++)
			if (out[i] == '/' || (unsigned char)out[i] < 0x20)
				out[i] = '_';
	return out;
}

/* "2003-12-12 00:00:00.0" → "2003-12-12"; anything else as it is. */
static void names_date_part(const char *date, char *out, size_t size)
{
	size_t n = date ? strlen(date) : 0;

	if (n >= 10 && date[4] == '-' && date[7] == '-')
		n = 10;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(out, date, n);
	out[n] = '\0';
}

char *names_study(const char *date, const char *description, const char *uid, bool full)
{
	char day[64];
	const char *parts[2];

	names_date_part(date, day, sizeof(day));
	parts[0] = day;
	parts[1] = description;
	return names_readable(parts, 2, uid, full);
}

char *names_series(const char *number, const char *modality, const char *description,
		   const char *uid, bool full)
{
	const char *parts[3] = { number, modality, description };

	return names_readable(parts, 3, uid, full);
}

/* "YYYY-MM-DD[ HH:MM:SS…]" as UTC seconds, or fallback. */
time_t names_parse_time(const char *s, time_t fallback)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;

	if (!s || sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) < 3)
		return fallback;
	if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > 31)
		return fallback;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return timegm(&tm);
}

int names_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

int names_cmp_ptrs(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two different API names can sanitise to the same text ("a/b" and "a_b"): later ones
 * get a "~N" suffix so that every object stays reachable. names are sorted; ptrs point
 * at each element's name field, stride bytes apart. */
int names_uniquify(char *base, size_t count, size_t stride, size_t name_off)
{
	size_t i, run = 0;

	for (i = 1; i < count; i++) {
		char **prev = (char **)(base + (i - 1) * stride + name_off);
		char **cur = (char **)(base + i * stride + name_off);
		char *fixed;

		if (strcmp(*cur, *prev) != 0) {
			run = 0;
			continue;
		}
		run++;
		fixed = utf8_twin(*cur, run + 1);
		if (!fixed)
			return -ENOMEM;
		free(*cur);
		*cur = fixed;
	}
	return 0;
}

/* A name the API gave that would hide one of ours gets a leading '_', and one ending in
 * ".json" a trailing '_' (such names are answered ENOENT without a request unless they
 * are ours); uniquified with the others after. Returns 0 or -ENOMEM. */
int names_unreserve(char **name, const char *const *reserved, size_t n)
{
	size_t i, len = strlen(*name);
	bool json = len >= 5 && strcmp(*name + len - 5, ".json") == 0;
	char *p;

	for (i = 0; i < n && !json; i++)
		if (strcmp(*name, reserved[i]) == 0)
			break;
	if (i == n)
		return 0;
	len = utf8_cut(*name, NAMES_MAX - 1);
	p = malloc(len + 2);
	if (!p)
		return -ENOMEM;
	if (json) {
		memcpy(p, *name, len);
		p[len] = '_';
	} else {
		p[0] = '_';
		memcpy(p + 1, *name, len);
	}
	p[len + 1] = '\0';
	free(*name);
	*name = p;
	return 0;
}

char *names_link(const char *pat, const char *ser)
{
	size_t n = strlen(pat) + 1 + strlen(ser), keep;
	const char *tail = strrchr(ser, '-');
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	snprintf(s, n + 1, "%s_%s", pat, ser);
	if (n <= NAMES_MAX)
		return s;
	if (!tail || strlen(tail) > 80)
		tail = "";
	keep = utf8_cut(s, NAMES_MAX - strlen(tail));
	memmove(s + keep, tail, strlen(tail) + 1);
	return s;
}
