/* SPDX-License-Identifier: MIT
 * http.h — every network request tciafs makes goes through here (libcurl underneath).
 * Bounded waits, retries with backoff, shared connections, and the one place where HTTP
 * statuses and curl errors become errno values. Knows nothing of TCIA or FUSE.
 */
#ifndef TCIAFS_HTTP_H
#define TCIAFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;

struct http_opts {
	const char *user_agent; /* copied; NULL = "tciafs/<version>" */
	long connect_timeout;   /* seconds to establish a connection */
	long stall_timeout;     /* seconds a transfer may make no progress */
	int retries;            /* extra attempts on connection errors, 5xx and 429 */
	size_t max_body;        /* largest in-memory answer accepted; 0 = 256 MiB */
	size_t max_body_total;  /* all in-memory answers in flight together; 0 = 2 x max_body */
};

/* Creates a client. Call curl_global_init() (via http_global_init) first, once, before
 * threads start. Returns 0 and sets *out, or -ENOMEM / -EIO. */
int http_global_init(void);
void http_global_cleanup(void);
int http_new(const struct http_opts *opts, struct http **out);

/* Frees the client and its pooled connections. Accepts NULL. */
void http_free(struct http *http);

/* GETs url and returns the whole body in *body (NUL-terminated for convenience; caller
 * frees with free()) and its length in *len. Retries transient failures as configured.
 * Returns 0 on a 2xx answer, else -errno (see http_status_errno) with one log line. */
int http_get(struct http *http, const char *url, char **body, size_t *len);

/* A credentials provider (auth.c) for services that want a bearer token. token() returns
 * a new string (caller frees) or -errno; rejected() is called when the service answered
 * 401, after which the request is tried once more with a fresh token. */
struct http_auth {
	int (*token)(void *arg, char **token);
	void (*rejected)(void *arg);
	void *arg;
};

/* Installs a credentials provider for http_get and http_download (not http_post_form).
 * Call before threads use the client. */
void http_set_auth(struct http *http, const struct http_auth *auth);

/* POSTs an application/x-www-form-urlencoded body (e.g. a token request) and returns the
 * answer as http_get does; the form is never logged. */
int http_post_form(struct http *http, const char *url, const char *form, char **body, size_t *len);

/* Called as a download proceeds, before each piece of the body is written: the bytes
 * the body reaches with it, and the total the server announced (0 if it did not).
 * Returns the longest body the caller accepts now (0: no other bound than the one it
 * began with): a bound may tighten during the transfer, never loosen, and a body past
 * it is refused (-EFBIG) there. It may wait, briefly, to know. */
typedef uint64_t (*http_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* GETs url and streams a 2xx body into fd from its current offset, with bounded memory
 * whatever the size. A failed attempt is truncated away before a retry when fd can seek;
 * otherwise it is not retried. A body longer than max_bytes (0 = no limit), or than
 * progress says, is cut off there and refused with -EFBIG, without a retry. Returns 0 with *bytes
 * the body's length, or -errno (the write's own errno, e.g. -ENOSPC, when fd refused data); fd may
 * then hold a partial body, which the caller discards. progress may be NULL. */
int http_download(struct http *http, const char *url, int fd, uint64_t max_bytes,
		  http_progress_fn progress, void *arg, uint64_t *bytes);

/* http_stream's consumer: each piece of a 2xx body in order (0, or -errno to stop the
 * transfer with that error, not retried); and, before an attempt that follows one that
 * had delivered data, a call to start over (0, or -errno to give up). */
typedef int (*http_chunk_fn)(void *arg, const char *data, size_t len);
typedef int (*http_restart_fn)(void *arg);

/* GETs url and hands the body to chunk as it arrives, with bounded memory whatever its
 * size: for answers too big to hold. Bounded like http_get (the stall limit, and one
 * deadline across all attempts) and by max_bytes (0 = none; past it, -EFBIG without a
 * retry). Returns 0 with *bytes (may
 * be NULL) the body's length, or -errno. */
int http_stream(struct http *http, const char *url, uint64_t max_bytes, http_chunk_fn chunk,
		http_restart_fn restart, void *arg, uint64_t *bytes);

/* http_stream for a POST of a JSON body (a read-only query, such as IDC's /sql): retried
 * like a GET. */
int http_stream_post_json(struct http *http, const char *url, const char *json, uint64_t max_bytes,
			  http_chunk_fn chunk, http_restart_fn restart, void *arg, uint64_t *bytes);

/* Stops the client for good, from any thread: transfers in flight end within a second
 * (curl's progress tick), waits between retries at once, and every call from now on
 * fails with -ECANCELED (logged as a cancellation, not a failure). For shutting down. */
void http_abort(struct http *http);

/* Counters since http_new: requests sent (every attempt), retries among them, and
 * requests that failed in the end. */
struct http_stats {
	unsigned long requests, retries, failures;
};
void http_stats(struct http *http, struct http_stats *out);

/* Percent-encodes s for use as a query value. Returns a new string (caller frees with
 * free()), or NULL when out of memory. */
char *http_escape(const char *s);

/* url as it may be shown (logs, README.txt, status): without user info ("user:pw@").
 * Returns a new string (caller frees with free()), or NULL when out of memory. */
char *http_redact_url(const char *url);

/* The errno for a final HTTP status (0 for 2xx): 404→ENOENT, 401/403→EACCES,
 * 408/504→ETIMEDOUT, anything else→EIO. */
int http_status_errno(long status);

/* The errno for a libcurl result code (0 for CURLE_OK). */
int http_curl_errno(int code);

/* ---- many GETs at once ---------------------------------------------------------------
 *
 * A fleet runs many GETs at once on one thread of its own, over libcurl's multi
 * interface and the client's shared connections (HTTP/2 multiplexed where the server
 * offers it): what a series of hundreds of objects, or a big object read by range,
 * needs on a link where each GET waits a round trip before its first byte. Each body
 * goes into a file at a given offset, checked as it arrives: its exact length, for a
 * range the 206 and its Content-Range, and an MD5 when one is given. Failed attempts are
 * retried as http_get's are. */
struct http_fleet;

struct http_job {
	const char *url; /* copied */
	int fd;          /* the body is written here (pwrite), at offset */
	uint64_t offset; /* where in fd, and for a range where in the object */
	uint64_t length; /* the exact length expected */
	bool ranged;     /* GET bytes offset..offset+length-1 only (206, Content-Range) */
	uint64_t total;  /* for a range: the object's size Content-Range must give */
	const char *md5; /* 32 hex digits the body must hash to, or NULL */
	bool urgent;     /* someone waits for it: ahead of the queue, past the cap */
	/* Called once, on the fleet's thread, with 0 or -errno: -EIO for a body that is
	 * not what was expected (its log line said why: log_reason() there), -ECANCELED
	 * when the fleet stopped first. It must not call back into the fleet's free. */
	void (*done)(void *arg, int rc);
	void *arg;
};

/* A fleet of at most streams GETs at once (urgent ones go past it) over http (borrowed:
 * it must outlive the fleet). Its thread starts with the first job, in the process that
 * adds it (a daemon forks after setting up). Returns 0 or -ENOMEM. */
int http_fleet_new(struct http *http, int streams, struct http_fleet **out);

/* Queues job; *id names it for http_fleet_hurry. Returns 0, or -errno (done is then not
 * called): -ECANCELED once the fleet or the client stopped. */
int http_fleet_add(struct http_fleet *f, const struct http_job *job, uint64_t *id);

/* A queued job someone now waits for goes first, past the cap. Nothing if it is out. */
void http_fleet_hurry(struct http_fleet *f, uint64_t id);

/* Ends every job, queued or running, with -ECANCELED, and every later add. */
void http_fleet_cancel(struct http_fleet *f);

/* GETs running and queued, for status. */
void http_fleet_counts(struct http_fleet *f, unsigned *running, unsigned *queued);

/* Cancels what is left, stops the thread and frees. Accepts NULL. */
void http_fleet_free(struct http_fleet *f);

#endif
