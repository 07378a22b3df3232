/* SPDX-License-Identifier: MIT
 * tcia.h — the TCIA (NBIA v4) API: one function per endpoint, JSON answers parsed into
 * plain records. The only module that knows endpoint paths, parameter names and the
 * service's quirks (tcia-api.md); below it, http.c moves the bytes.
 */
#ifndef TCIAFS_TCIA_H
#define TCIAFS_TCIA_H

#include <stddef.h>

struct http;
struct tcia;

/* The distinct values of one attribute, in the order the service sent them. */
struct tcia_values {
	size_t count;
	char **values;	/* owned; freed by tcia_values_clear() */
};

/* Creates a client for the API at base_url (copied; no trailing slash needed). The http
 * client is borrowed and must outlive it. Returns 0 or -ENOMEM. */
int tcia_new(struct http *http, const char *base_url, struct tcia **out);
void tcia_free(struct tcia *tcia);

/* Borrowed: the base URL in use, valid until tcia_free(). */
const char *tcia_base_url(const struct tcia *tcia);

/* getCollectionValues: the names of every collection the service shows.
 * Returns 0 and fills *out (caller clears), or -errno from the request or -EBADMSG. */
int tcia_get_collections(struct tcia *tcia, struct tcia_values *out);

/* Parses an answer shaped [{"<key>": value}, …]. An empty or blank body, `[]` and `null`
 * are "no results". Elements lacking the key, or holding null, are skipped; numbers are
 * kept as the text the service sent. Returns 0, -ENOMEM, or -EBADMSG for anything that
 * is not such a list (an HTML page, truncated JSON), with a log line saying why. */
int tcia_parse_values(const char *body, size_t len, const char *key, struct tcia_values *out);

void tcia_values_clear(struct tcia_values *v);

#endif
