/* SPDX-License-Identifier: MIT
 * idc_bucket.c — IDC's public buckets: a series' S3 listing (XML, parsed with expat, page
 * by page, every key and size checked) and the GET of one object into a file. A bucket
 * or key from the catalog never leaves the bucket or the URL.
 */
#include "idc.h"

#include <errno.h>
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "idc_int.h"
#include "log.h"

/* A listing's pages of one series: past this many it is refused, never held. */
#define IDC_LIST_PAGES_MAX 10000

/* Where the parser is: the element whose text is wanted, and what it holds so far. */
enum idc_elem { IE_NONE, IE_KEY, IE_SIZE, IE_ETAG, IE_TRUNCATED, IE_NEXT };

struct idc_xml {
	XML_Parser p;
	struct idc_listing *out;
	int depth;
	bool root_ok, in_contents, have_key, have_size;
	enum idc_elem elem;
	char text[1024];
	size_t len;
	char *key;
	uint64_t size;
	char md5[33];
	size_t cap;
	int rc;
};

static void idc_xml_fail(struct idc_xml *x, int rc)
{
	if (x->rc == 0)
		x->rc = rc;
	XML_StopParser(x->p, XML_FALSE);
}

/* The local name of an element ("Key" of "{ns}Key", with namespaces on). */
static const char *idc_local(const char *name)
{
	const char *sep = strrchr(name, '|');

	return sep ? sep + 1 : name;
}

static void XMLCALL idc_xml_start(void *u, const XML_Char *name, const XML_Char **attrs)
{
	struct idc_xml *x = u;
	const char *n = idc_local(name);

	(void)attrs;
	x->depth++;
	x->elem = IE_NONE;
	x->len = 0;
	if (x->depth == 1) {
		if (strcmp(n, "ListBucketResult") != 0)
			idc_xml_fail(x, -EBADMSG);
		x->root_ok = true;
	} else if (x->depth == 2 && strcmp(n, "Contents") == 0) {
		x->in_contents = true;
		x->have_key = x->have_size = false;
		x->md5[0] = '\0';
	} else if (x->depth == 3 && x->in_contents && strcmp(n, "Key") == 0) {
		x->elem = IE_KEY;
	} else if (x->depth == 3 && x->in_contents && strcmp(n, "Size") == 0) {
		x->elem = IE_SIZE;
	} else if (x->depth == 3 && x->in_contents && strcmp(n, "ETag") == 0) {
		x->elem = IE_ETAG;
	} else if (x->depth == 2 && strcmp(n, "IsTruncated") == 0) {
		x->elem = IE_TRUNCATED;
	} else if (x->depth == 2 && strcmp(n, "NextContinuationToken") == 0) {
		x->elem = IE_NEXT;
	}
}

static void XMLCALL idc_xml_text(void *u, const XML_Char *s, int len)
{
	struct idc_xml *x = u;

	if (x->elem == IE_NONE)
		return;
	if (x->len + (size_t)len >= sizeof(x->text)) {
		idc_xml_fail(x, -EBADMSG);
		return;
	}
	memcpy(x->text + x->len, s, (size_t)len);
	x->len += (size_t)len;
}

/* A size as S3 sends it: plain decimal digits, no sign, no overflow. */
static int idc_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EBADMSG;
	for (; *s; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*s < '0' || *s > '9' || v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* An ETag ("\"<32 hex>\"", as S3 sends it) as the MD5 it is, lower case; "" for any
 * other (a multipart upload's "<hex>-<parts>" is no digest of the content). */
static void idc_etag_md5(const char *etag, char md5[33])
{
	size_t n = strlen(etag), i;

	md5[0] = '\0';
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	if (n != 32)
		return;
	for (i = 0; i < 32; i++) {
		char c = etag[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			md5[0] = '\0';
			return;
		}
		md5[i] = c;
	}
	md5[32] = '\0';
}

static void idc_xml_contents_end(struct idc_xml *x)
{
	struct idc_listing *l = x->out;

	if (!x->have_key || !x->have_size) {
		idc_xml_fail(x, -EBADMSG);
		return;
	}
	if (l->count == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct idc_object *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			idc_xml_fail(x, -ENOMEM);
			return;
		}
		l->v = v;
		x->cap = cap;
	}
	l->v[l->count].key = x->key;
	l->v[l->count].size = x->size;
	memcpy(l->v[l->count].md5, x->md5, sizeof(x->md5));
	l->count++;
	x->key = NULL;
}

static void XMLCALL idc_xml_end(void *u, const XML_Char *name)
{
	struct idc_xml *x = u;
	const char *n = idc_local(name);

	x->text[x->len] = '\0';
	switch (x->elem) {
	case IE_KEY:
		free(x->key);
		x->key = x->len ? strdup(x->text) : NULL;
		if (!x->key)
			idc_xml_fail(x, x->len ? -ENOMEM : -EBADMSG);
		x->have_key = true;
		break;
	case IE_SIZE:
		if (idc_size(x->text, &x->size) < 0)
			idc_xml_fail(x, -EBADMSG);
		x->have_size = true;
		break;
	case IE_ETAG:
		idc_etag_md5(x->text, x->md5);
		break;
	case IE_TRUNCATED:
		if (strcmp(x->text, "true") && strcmp(x->text, "false"))
			idc_xml_fail(x, -EBADMSG);
		x->out->truncated = strcmp(x->text, "true") == 0;
		break;
	case IE_NEXT:
		free(x->out->next);
		x->out->next = strdup(x->text);
		if (!x->out->next)
			idc_xml_fail(x, -ENOMEM);
		break;
	case IE_NONE:
		if (x->depth == 2 && x->in_contents && strcmp(n, "Contents") == 0) {
			x->in_contents = false;
			idc_xml_contents_end(x);
		}
		break;
	}
	x->elem = IE_NONE;
	x->len = 0;
	x->depth--;
}

/* No DTD may declare entities: that is how XML bombs are made. */
static void XMLCALL idc_xml_entity(void *u, const XML_Char *name, int param, const XML_Char *value,
				   int value_len, const XML_Char *base, const XML_Char *system_id,
				   const XML_Char *public_id, const XML_Char *notation)
{
	(void)name, (void)param, (void)value, (void)value_len, (void)base, (void)system_id,
		(void)public_id, (void)notation;
	idc_xml_fail(u, -EBADMSG);
}

void idc_listing_clear(struct idc_listing *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next);
	memset(l, 0, sizeof(*l));
}

int idc_parse_listing(const char *body, size_t len, struct idc_listing *out)
{
	struct idc_xml x = { 0 };
	int ok;

	memset(out, 0, sizeof(*out));
	if (len > INT32_MAX)
		return -EBADMSG;
	x.p = XML_ParserCreateNS(NULL, '|');
	if (!x.p)
		return -ENOMEM;
	x.out = out;
	XML_SetUserData(x.p, &x);
	XML_SetElementHandler(x.p, idc_xml_start, idc_xml_end);
	XML_SetCharacterDataHandler(x.p, idc_xml_text);
	XML_SetEntityDeclHandler(x.p, idc_xml_entity);
	ok = XML_Parse(x.p, body, (int)len, XML_TRUE) == XML_STATUS_OK;
	if (!ok && x.rc == 0)
		x.rc = XML_GetErrorCode(x.p) == XML_ERROR_NO_MEMORY ? -ENOMEM : -EBADMSG;
	if (x.rc == 0 && !x.root_ok)
		x.rc = -EBADMSG;
	if (x.rc == 0 && out->truncated && (!out->next || !*out->next))
		x.rc = -EBADMSG; /* more to come, and no way to ask for it */
	XML_ParserFree(x.p);
	free(x.key);
	if (x.rc < 0)
		idc_listing_clear(out);
	return x.rc;
}

/* The bucket's base URL: files with {bucket} replaced. */
static char *idc_bucket_url(const struct idc *t, const char *bucket)
{
	const char *at = strstr(t->files, "{bucket}");
	char *out;

	if (asprintf(&out, "%.*s%s%s", (int)(at - t->files), t->files, bucket,
		     at + strlen("{bucket}")) < 0)
		return NULL;
	return out;
}

char *idc_object_url(const struct idc *t, const char *bucket, const char *key)
{
	char *base = idc_bucket_url(t, bucket), *path = NULL, *out = NULL;
	size_t n = 0, i;

	if (!base)
		return NULL;
	/* Each byte that is not plain in a path is percent-encoded, the slashes kept. */
	path = malloc(strlen(key) * 3 + 1);
	if (path) {
		for (i = 0; key[i]; i++) {
			unsigned char c = (unsigned char)key[i];

			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("-._~/", c))
				path[n++] = (char)c;
			else
				n += (size_t)sprintf(path + n, "%%%02X", c);
		}
		path[n] = '\0';
		if (asprintf(&out, "%s/%s", base, path) < 0)
			out = NULL;
	}
	free(path);
	free(base);
	return out;
}

int idc_get_object(struct idc *t, const char *bucket, const char *key, uint64_t size, int fd,
		   uint64_t (*progress)(void *arg, uint64_t done, uint64_t total), void *arg)
{
	char *url = idc_object_url(t, bucket, key);
	uint64_t got = 0;
	int rc;

	if (!url)
		return -ENOMEM;
	/* One byte over what was listed is enough to know it lies. */
	rc = http_download(t->http, url, fd, size + 1, progress, arg, &got);
	if (rc == -EFBIG)
		log_err("IDC's bucket %s: %s is longer than the %llu bytes its listing gave: "
			"refused",
			bucket, key, (unsigned long long)size);
	else if (rc == 0 && got != size) {
		log_err("IDC's bucket %s: %s has %llu bytes, its listing gave %llu: refused",
			bucket, key, (unsigned long long)got, (unsigned long long)size);
		rc = -EIO;
	}
	free(url);
	return rc;
}

int idc_fetch_object(struct idc *t, const struct idc_fetch *fe, uint64_t *id)
{
	char *url = idc_object_url(t, fe->bucket, fe->key);
	bool whole = fe->offset == 0 && fe->length == fe->size;
	struct http_job job = {
		.url = url,
		.fd = fe->fd,
		.offset = fe->offset,
		.length = fe->length,
		.ranged = !whole,
		.total = fe->size,
		.md5 = whole && fe->md5 && fe->md5[0] ? fe->md5 : NULL,
		.urgent = fe->urgent,
		.done = fe->done,
		.arg = fe->arg,
	};
	int rc;

	if (!url)
		return -ENOMEM;
	if (fe->length == 0 || fe->offset + fe->length > fe->size)
		rc = -EINVAL;
	else
		rc = http_fleet_add(t->fleet, &job, id);
	free(url);
	return rc;
}

void idc_hurry(struct idc *t, uint64_t id)
{
	http_fleet_hurry(t->fleet, id);
}

void idc_cancel_fetches(struct idc *t)
{
	http_fleet_cancel(t->fleet);
}

static bool idc_is_dicom(const char *key, const char *prefix)
{
	size_t n = strlen(key), p = strlen(prefix);

	return n > p + 4 && strncmp(key, prefix, p) == 0 && !strchr(key + p, '/') &&
	       strcmp(key + n - 4, ".dcm") == 0;
}

/* Moves the DICOM objects of page into out (the rest counted in *strays). */
static int idc_take_page(struct idc_listing *out, struct idc_listing *page, const char *prefix,
			 size_t *strays)
{
	struct idc_object *v;
	size_t i;

	v = realloc(out->v, (out->count + page->count + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	out->v = v;
	for (i = 0; i < page->count; i++) {
		if (idc_is_dicom(page->v[i].key, prefix)) {
			out->v[out->count++] = page->v[i];
			page->v[i].key = NULL;
		} else {
			(*strays)++;
		}
	}
	return 0;
}

int idc_list_series(struct idc *t, const char *bucket, const char *uuid, struct idc_listing *out,
		    size_t *strays)
{
	char *base = idc_bucket_url(t, bucket), *prefix = NULL, *eprefix = NULL, *token = NULL;
	int rc = 0, pages = 0;

	memset(out, 0, sizeof(*out));
	*strays = 0;
	if (!base || asprintf(&prefix, "%s/", uuid) < 0 || !(eprefix = http_escape(prefix))) {
		rc = -ENOMEM;
		goto out_free;
	}
	do {
		struct idc_listing page;
		char *url = NULL, *etoken = NULL, *body = NULL;
		size_t len;

		if (token && !(etoken = http_escape(token))) {
			rc = -ENOMEM;
			break;
		}
		if (asprintf(&url, "%s/?list-type=2&prefix=%s%s%s", base, eprefix,
			     etoken ? "&continuation-token=" : "", etoken ? etoken : "") < 0)
			url = NULL;
		free(etoken);
		rc = url ? http_get(t->http, url, &body, &len) : -ENOMEM;
		free(url);
		if (rc < 0)
			break;
		rc = idc_parse_listing(body, len, &page);
		free(body);
		if (rc == -EBADMSG)
			log_err("bad answer from IDC's bucket %s: the listing of %s is not an S3 "
				"listing",
				bucket, prefix);
		if (rc < 0)
			break;
		rc = idc_take_page(out, &page, prefix, strays);
		/* A token that does not move on would list the same page for ever. */
		if (rc == 0 && page.truncated && token && strcmp(token, page.next) == 0) {
			log_err("bad answer from IDC's bucket %s: the listing of %s repeats its "
				"continuation token",
				bucket, prefix);
			rc = -EBADMSG;
		}
		free(token);
		token = page.truncated ? page.next : NULL;
		page.next = NULL;
		idc_listing_clear(&page);
		if (rc == 0 && token && ++pages >= IDC_LIST_PAGES_MAX) {
			log_err("IDC's bucket %s: the listing of %s goes on past %d pages", bucket,
				prefix, IDC_LIST_PAGES_MAX);
			rc = -EFBIG;
		}
	} while (rc == 0 && token);
out_free:
	free(token);
	free(eprefix);
	free(prefix);
	free(base);
	if (rc < 0)
		idc_listing_clear(out);
	return rc;
}
