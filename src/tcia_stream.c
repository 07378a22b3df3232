/* SPDX-License-Identifier: MIT
 * tcia_stream.c — list answers parsed as they arrive (patients, studies, series): each
 * element gathered and handed on as a typed record that keeps its text as sent, so that
 * memory holds one element whatever the answer's size. Part of the tcia module.
 */
#include "tcia.h"
#include "tcia_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "jsonpick.h"
#include "jsonobj.h"
#include "log.h"

/* ---- streamed lists ------------------------------------------------------------------- */

/* A list answer parsed as it arrives: the bytes of one element are gathered (the same
 * delimiting as tcia_next_element, kept across pieces), then loaded and handed on, so
 * memory holds one element whatever the answer's size. A body that is not a list is
 * kept (up to a bound) for tcia_load_array to judge at the end. */
#define TCIA_ELEMENT_MAX ((size_t)1 << 20)
#define TCIA_NOTLIST_MAX ((size_t)1 << 16)
/* How long a streamed list may go on, by kind: ten times and more what NLST, the
 * biggest collection, sends (patients ~15 MB, studies ~35 MB, series 167 MB). An
 * endless or gigantic answer stops there with -EFBIG. */
static const uint64_t tcia_stream_max[] = {
	(uint64_t)64 << 20,  /* RECORD_PATIENTS */
	(uint64_t)512 << 20, /* RECORD_STUDIES */
	(uint64_t)2 << 30,   /* RECORD_SERIES */
};

enum tcia_stream_state {
	TS_START,    /* before the '[' */
	TS_NOT_LIST, /* the body does not start with '[' */
	TS_NEXT,     /* after '[' or ',': an element, or (first only) the ']' */
	TS_ELEMENT,  /* inside an element */
	TS_END,      /* after the ']' */
};

/* One element's record, whatever the kind. */
union tcia_stream_item {
	struct record_patient p;
	struct record_study s;
	struct record_series r;
};

struct tcia_stream {
	enum tcia_stream_state state;
	tcia_one_fn one_fn;
	void (*clear_one)(void *item);
	record_each_fn each;
	void *arg;
	/* Elements are parsed on a helper thread once the answer is long (ahead.c) and
	 * handed on here in order. */
	struct ahead *ahead;
	/* Members picked in place, on the helper and here (jansson reads the rest). */
	struct jsonpick *pick_ahead, *pick_here;
	char *buf;
	size_t len, cap;
	size_t depth;
	size_t index;    /* elements gathered */
	size_t handed;   /* elements handed on (tcia_stream_done) */
	size_t left_out; /* of those, left out (one log line at the end) */
	bool in_string, escape;
	int rc;
};

/* Room in buf for n more bytes and a NUL: 0 or -ENOMEM. */
static int tcia_stream_room(struct tcia_stream *s, size_t n)
{
	size_t cap;
	char *p;

	if (s->len + n + 1 <= s->cap)
		return 0;
	for (cap = s->cap ? s->cap * 2 : 1024; cap < s->len + n + 1; cap *= 2)
		;
	p = realloc(s->buf, cap);
	if (!p)
		return -ENOMEM;
	s->buf = p;
	s->cap = cap;
	return 0;
}

static int tcia_stream_keep(struct tcia_stream *s, char c, size_t max)
{
	if (s->len + 1 >= max) {
		log_err("bad answer from TCIA: element %zu is longer than %zu bytes", s->index,
			max);
		return -EBADMSG;
	}
	if (tcia_stream_room(s, 1) < 0)
		return -ENOMEM;
	s->buf[s->len++] = c;
	return 0;
}

/* An element's record from its members picked in place: -EAGAIN when it is jansson's to
 * read. */
static int tcia_stream_pick(struct tcia_stream *s, struct jsonpick *pick, const char *text,
			    size_t len, void *item)
{
	struct tcia_as_sent as = { text, len };
	int rc = jsonpick_read(pick, text, len);

	return rc < 0 ? rc : s->one_fn(&(struct tcia_src){ NULL, pick }, item, &as);
}

/* On the helper: an element parsed and built, or not (the caller then does it again and
 * says what is wrong with it). */
static int tcia_stream_work(void *ctx, const char *text, size_t len, void *item)
{
	struct tcia_stream *s = ctx;
	struct tcia_as_sent as = { text, len };
	json_t *el;
	int rc = tcia_stream_pick(s, s->pick_ahead, text, len, item);

	if (rc != -EAGAIN)
		return rc;
	el = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	rc = -EBADMSG;
	if (json_is_object(el))
		rc = s->one_fn(&(struct tcia_src){ el, NULL }, item, &as);
	json_decref(el);
	return rc;
}

/* An element's turn: its record (built by the helper, or here) handed on, then freed. */
static int tcia_stream_done(void *ctx, const char *text, size_t len, void *item, bool made)
{
	struct tcia_stream *s = ctx;
	struct tcia_as_sent as = { text, len };
	json_t *el;
	int rc = 0;

	if (!made)
		rc = tcia_stream_pick(s, s->pick_here, text, len, item);
	if (!made && rc == -EAGAIN) {
		rc = tcia_parse_one(text, len, s->handed, &el);
		if (rc == 0) {
			rc = s->one_fn(&(struct tcia_src){ el, NULL }, item, &as);
			json_decref(el);
		}
	}
	if (rc == 0)
		rc = s->each(s->arg, item);
	else if (rc > 0) {
		rc = 0; /* left out: counted, told at the end */
		s->left_out++;
	}
	s->clear_one(item);
	s->handed++;
	return rc;
}

/* The element gathered in buf, on its way. */
static int tcia_stream_element(struct tcia_stream *s)
{
	int rc = ahead_put(s->ahead, s->buf, s->len);

	s->len = 0;
	s->index++;
	return rc;
}

static int tcia_stream_step(struct tcia_stream *s, char c)
{
	bool ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';

	switch (s->state) {
	case TS_START:
		if (ws)
			return 0;
		if (c == '[') {
			s->state = TS_NEXT;
			return 0;
		}
		s->state = TS_NOT_LIST;
		/* fall through */
	case TS_NOT_LIST:
		return tcia_stream_keep(s, c, TCIA_NOTLIST_MAX);
	case TS_NEXT:
		if (ws)
			return 0;
		if (c == ']') {
			if (s->index > 0) {
				log_err("bad answer from TCIA: a ',' before the closing ']'");
				return -EBADMSG;
			}
			s->state = TS_END;
			return 0;
		}
		s->state = TS_ELEMENT;
		s->depth = 0;
		s->in_string = s->escape = false;
		/* fall through */
	case TS_ELEMENT:
		if (s->in_string) {
			if (s->escape)
				s->escape = false;
			else if (c == '\\')
				s->escape = true;
			else if (c == '"')
				s->in_string = false;
		} else if (c == '"') {
			s->in_string = true;
		} else if (c == '{' || c == '[') {
			s->depth++;
		} else if ((c == '}' || c == ']') && s->depth > 0) {
			s->depth--;
		} else if ((c == ',' || c == ']') && s->depth == 0) {
			s->state = c == ',' ? TS_NEXT : TS_END;
			return tcia_stream_element(s);
		}
		return tcia_stream_keep(s, c, TCIA_ELEMENT_MAX);
	case TS_END:
		if (ws)
			return 0;
		log_err("bad answer from TCIA: text after the list");
		return -EBADMSG;
	}
	return -EINVAL;
}

/* Inside a string of an element, everything up to the next quote or backslash is just
 * kept: copied as one run rather than stepped through character by character. */
static size_t tcia_stream_run(struct tcia_stream *s, const char *data, size_t len)
{
	size_t n = (size_t)(jsonobj_plain(data, data + len) - data);

	if (n == 0 || s->len + n + 1 >= TCIA_ELEMENT_MAX)
		return 0; /* let the step say it is too long */
	if (tcia_stream_room(s, n) < 0) {
		s->rc = -ENOMEM;
		return 0;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

int tcia_stream_feed(struct tcia_stream *s, const char *data, size_t len)
{
	size_t i = 0;

	while (i < len && s->rc == 0) {
		if (s->state == TS_ELEMENT && s->in_string && !s->escape) {
			size_t n = tcia_stream_run(s, data + i, len - i);

			i += n;
			if (n || i == len || s->rc)
				continue;
		}
		s->rc = tcia_stream_step(s, data[i++]);
	}
	return s->rc;
}

int tcia_stream_end(struct tcia_stream *s)
{
	json_t *root = NULL;

	if (s->rc < 0)
		return s->rc;
	s->rc = ahead_end(s->ahead); /* the elements still on their way */
	if (s->rc < 0)
		return s->rc;
	tcia_log_left_out(s->one_fn, s->left_out);
	switch (s->state) {
	case TS_START:
	case TS_END:
		return 0;
	case TS_NOT_LIST:
		/* Not a list: let jansson say what it is (null, an object, HTML). */
		s->rc = tcia_load_array(s->buf, s->len, &root);
		json_decref(root);
		if (s->rc == 0 && root) {
			log_err("bad answer from TCIA: a list that does not start with '['");
			s->rc = -EBADMSG;
		}
		return s->rc;
	default:
		log_err("bad answer from TCIA: the list ends in the middle of element text");
		return s->rc = -EBADMSG;
	}
}

/* Starts over, for a retried request: what was handed on already is the consumer's to
 * take back. */
void tcia_stream_reset(struct tcia_stream *s)
{
	ahead_reset(s->ahead);
	s->state = TS_START;
	s->len = 0;
	s->index = s->handed = s->left_out = 0;
	s->rc = 0;
}

void tcia_stream_free(struct tcia_stream *s)
{
	if (!s)
		return;
	ahead_free(s->ahead);
	jsonpick_free(s->pick_ahead);
	jsonpick_free(s->pick_here);
	free(s->buf);
	free(s);
}

static void tcia_patient_clear_one(void *item)
{
	record_patient_clear(item);
}

static void tcia_study_clear_one(void *item)
{
	record_study_clear(item);
}

static void tcia_series_clear_one(void *item)
{
	record_series_clear(item);
}

int tcia_stream_new(enum record_kind kind, record_each_fn each, void *arg, struct tcia_stream **out)
{
	struct tcia_stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	switch (kind) {
	case RECORD_PATIENTS:
		s->one_fn = tcia_one_patient;
		s->clear_one = tcia_patient_clear_one;
		break;
	case RECORD_STUDIES:
		s->one_fn = tcia_one_study;
		s->clear_one = tcia_study_clear_one;
		break;
	case RECORD_SERIES:
		s->one_fn = tcia_one_series;
		s->clear_one = tcia_series_clear_one;
		break;
	}
	s->each = each;
	s->arg = arg;
	if (tcia_picked_new(&s->pick_ahead) < 0 || tcia_picked_new(&s->pick_here) < 0 ||
	    ahead_new(sizeof(union tcia_stream_item), tcia_stream_work, tcia_stream_done,
		      s->clear_one, s, &s->ahead) < 0) {
		tcia_stream_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

uint64_t tcia_stream_limit(enum record_kind kind)
{
	return tcia_stream_max[kind];
}

int tcia_stream_error(const struct tcia_stream *s)
{
	return s->rc;
}
