/* SPDX-License-Identifier: MIT
 * tcia.c — endpoint URLs and JSON parsing for the TCIA (NBIA v4) API. Tolerates what the
 * real service does (tcia-api.md §2, §4): empty bodies for no results, missing keys,
 * numbers as strings and strings as numbers. jansson errors become -EBADMSG here only.
 */
#include "tcia.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

struct tcia {
	struct http *http;	/* borrowed */
	char *base;
};

int tcia_new(struct http *http, const char *base_url, struct tcia **out)
{
	struct tcia *t;
	size_t n;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->http = http;
	t->base = strdup(base_url);
	if (!t->base) {
		free(t);
		return -ENOMEM;
	}
	n = strlen(t->base);
	while (n > 0 && t->base[n - 1] == '/')
		t->base[--n] = '\0';
	*out = t;
	return 0;
}

void tcia_free(struct tcia *tcia)
{
	if (!tcia)
		return;
	free(tcia->base);
	free(tcia);
}

const char *tcia_base_url(const struct tcia *tcia)
{
	return tcia->base;
}

void tcia_values_clear(struct tcia_values *v)
{
	size_t i;

	for (i = 0; i < v->count; i++)
		free(v->values[i]);
	free(v->values);
	v->values = NULL;
	v->count = 0;
}

static bool tcia_blank(const char *body, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			return false;
	return true;
}

/* Loads an answer that should be a JSON array. *out is a new reference or NULL for "no
 * results". Returns 0, -ENOMEM or -EBADMSG. */
static int tcia_load_array(const char *body, size_t len, json_t **out)
{
	json_error_t err;
	json_t *root;

	*out = NULL;
	if (tcia_blank(body, len))
		return 0;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (!root) {
		if (json_error_code(&err) == json_error_out_of_memory)
			return -ENOMEM;
		log_err("bad answer from TCIA: %s at line %d column %d", err.text, err.line,
			err.column);
		return -EBADMSG;
	}
	if (json_is_null(root)) {
		json_decref(root);
		return 0;
	}
	if (!json_is_array(root)) {
		log_err("bad answer from TCIA: expected a list, got %s",
			json_is_object(root) ? "an object" : "a scalar");
		json_decref(root);
		return -EBADMSG;
	}
	*out = root;
	return 0;
}

/* The text of a scalar as the service sent it: strings as they are, numbers printed.
 * Returns a new string, NULL for null/missing/other types, or sets *oom. */
static char *tcia_scalar_text(const json_t *v, bool *oom)
{
	char num[64];
	char *s = NULL;

	if (json_is_string(v))
		s = strndup(json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
	else
		return NULL;
	if (!json_is_string(v))
		s = strdup(num);
	if (!s)
		*oom = true;
	return s;
}

int tcia_parse_values(const char *body, size_t len, const char *key, struct tcia_values *out)
{
	json_t *root = NULL, *el;
	bool oom = false;
	size_t i;
	int rc;

	out->count = 0;
	out->values = NULL;
	rc = tcia_load_array(body, len, &root);
	if (rc < 0 || !root)
		return rc;
	rc = -ENOMEM;
	if (json_array_size(root) > 0) {
		out->values = calloc(json_array_size(root), sizeof(char *));
		if (!out->values)
			goto out_decref;
	}
	json_array_foreach(root, i, el) {
		char *s;

		if (!json_is_object(el)) {
			log_err("bad answer from TCIA: element %zu is not an object", i);
			rc = -EBADMSG;
			goto out_clear;
		}
		s = tcia_scalar_text(json_object_get(el, key), &oom);
		if (oom)
			goto out_clear;
		if (s)
			out->values[out->count++] = s;
	}
	rc = 0;
	goto out_decref;

out_clear:
	tcia_values_clear(out);
out_decref:
	json_decref(root);
	return rc;
}

/* GETs <base>/<endpoint> (with an optional query already escaped). */
static int tcia_fetch(struct tcia *t, const char *endpoint, const char *query, char **body,
		      size_t *len)
{
	size_t n = strlen(t->base) + strlen(endpoint) + (query ? strlen(query) : 0) + 3;
	char *url = malloc(n);
	int rc;

	if (!url)
		return -ENOMEM;
	snprintf(url, n, "%s/%s%s%s", t->base, endpoint, query ? "?" : "", query ? query : "");
	rc = http_get(t->http, url, body, len);
	free(url);
	return rc;
}

int tcia_get_collections(struct tcia *tcia, struct tcia_values *out)
{
	char *body = NULL;
	size_t len = 0;
	int rc;

	out->count = 0;
	out->values = NULL;
	rc = tcia_fetch(tcia, "getCollectionValues", NULL, &body, &len);
	if (rc < 0)
		return rc;
	rc = tcia_parse_values(body, len, "Collection", out);
	free(body);
	return rc;
}
