/* SPDX-License-Identifier: MIT
 * tcia_int.h — inside the tcia module: tcia_parse.c's parsing of answers and elements,
 * which tcia.c (whole answers) and tcia_stream.c (answers parsed as they arrive) share, and
 * the stream itself. The unit tests and fuzzers use them too; other modules do not.
 */
#ifndef TCIAFS_TCIA_INT_H
#define TCIAFS_TCIA_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tcia.h"

struct tcia_stream;

/* Any list of record.h, as the parsers and tcia.c's requests fill them. */
struct tcia_any_list {
	size_t count;
	void *v;
};

/* The text of an element as it came, for records parsed from a stream (the one_fn arg):
 * kept as sent rather than printed again. */
struct tcia_as_sent {
	const char *text;
	size_t len;
};

/* TCIA's picker (jsonpick): the members a patient, study or series record reads, from an
 * element's text in place (tcia_pick.c). */
struct jsonpick;
int tcia_picked_new(struct jsonpick **out);
/* A picked member as tcia.c's tcia_text and tcia_int give a jansson object's. */
int tcia_pick_text(const struct jsonpick *p, const char *key, char **out);
int64_t tcia_pick_int(const struct jsonpick *p, const char *key);

/* An element a record is made of: jansson's object, or the members picked from it. */
struct tcia_src {
	const json_t *obj;
	const struct jsonpick *picked;
};

/* Makes the record item of one element (arg: a struct tcia_as_sent, or NULL). */
typedef int (*tcia_one_fn)(const struct tcia_src *src, void *item, const void *arg);

/* A copy of a string with each embedded NUL as U+FFFD. */
char *tcia_strdup_nul(const char *s, size_t n);
/* An integer from a real, or from a string such as "25273786.0": -1 when negative,
 * fractional, too big or unreadable. */
int64_t tcia_int_of_real(double d);
int64_t tcia_int_of_string(const char *s, size_t len);

/* An answer that should be a JSON array: *out a new reference, NULL for "no results";
 * 0, -ENOMEM or -EBADMSG. */
int tcia_load_array(const char *body, size_t len, json_t **out);
/* The extent [*start, *end) of the element at *pos: 1, 0 at the list's closing ']',
 * -EBADMSG when the text ends first. */
int tcia_next_element(const char *b, size_t len, size_t *pos, size_t *start, size_t *end);
/* One element's text loaded as JSON (index names it in the error line). */
int tcia_parse_one(const char *text, size_t n, size_t index, json_t **out);
/* One element as a typed record (item: a struct record_patient, _study or _series). */
int tcia_one_patient(const struct tcia_src *src, void *item, const void *arg);
int tcia_one_study(const struct tcia_src *src, void *item, const void *arg);
int tcia_one_series(const struct tcia_src *src, void *item, const void *arg);
/* One log line for the n elements of an answer that one_fn left out (returned 1). */
void tcia_log_left_out(tcia_one_fn one_fn, size_t n);
/* How long a streamed list of kind may go on (then -EFBIG). */
uint64_t tcia_stream_limit(enum record_kind kind);
/* The first error of the parser or of its consumer, else 0. */
int tcia_stream_error(const struct tcia_stream *s);

/* The streaming parser underneath, for the unit tests and fuzzers: feed the body in
 * pieces of any size, then end. Each returns 0 or the first error (sticky). */
struct tcia_stream;
int tcia_stream_new(enum record_kind kind, record_each_fn each, void *arg,
		    struct tcia_stream **out);
int tcia_stream_feed(struct tcia_stream *s, const char *data, size_t len);
int tcia_stream_end(struct tcia_stream *s);
void tcia_stream_reset(struct tcia_stream *s);
void tcia_stream_free(struct tcia_stream *s);

/* Parsers, exposed for the unit tests and fuzzers. body need not be NUL-terminated. An
 * empty or blank body, `[]` and `null` are "no results". */
int tcia_parse_values(const char *body, size_t len, const char *key, struct record_values *out);
int tcia_parse_patients(const char *body, size_t len, struct record_patients *out);
int tcia_parse_studies(const char *body, size_t len, struct record_studies *out);
int tcia_parse_series(const char *body, size_t len, struct record_series_list *out);
int tcia_parse_sizes(const char *body, size_t len, struct record_sizes *out);

#endif
