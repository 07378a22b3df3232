/* SPDX-License-Identifier: MIT
 * http_int.h — what http.c (one request at a time, on the caller's thread) and
 * http_fleet.c (many GETs at once on a thread of their own) share: the client and the
 * pieces of a request's setup and retry policy. Not for other modules.
 */
#ifndef TCIAFS_HTTP_INT_H
#define TCIAFS_HTTP_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"

#define HTTP_POOL_MAX 16
#define HTTP_BACKOFF_BASE_MS 250
#define HTTP_BACKOFF_MAX_MS 8000

struct http {
	struct http_opts opts;
	char *user_agent;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[HTTP_POOL_MAX]; /* idle handles; protected by pool_lock */
	int pool_len;              /* protected by pool_lock */
	struct http_auth auth;     /* set before threads start; fn NULL = none */
	unsigned long n_requests, n_retries, n_failures; /* __atomic counters */
	int aborted;                                     /* __atomic; set once by http_abort */
	size_t mem_in_flight; /* __atomic: bytes held by answers being received */
};

bool http_aborted(struct http *http);

/* The options every request has: URL, shared caches, timeouts (a download is bounded by
 * the stall limit alone, other answers also by timeout_ms), redirects, protocols.
 * Returns 0 or -EIO. */
int http_setup(struct http *http, CURL *h, const char *url, char *errbuf, bool download,
	       bool credentials, long timeout_ms);

/* Worth another attempt: a connection error, a 5xx or a 429. */
bool http_transient(CURLcode cc, long status);

/* Milliseconds to wait before retry number attempt (1-based). */
long http_backoff_ms(int attempt, long retry_after_s, long cap_s, unsigned *seed);

#endif
