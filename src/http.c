/* SPDX-License-Identifier: MIT
 * http.c — libcurl behind a small API: a pool of easy handles that share connections,
 * DNS and TLS sessions; bounded connect and stall timeouts; retries with exponential
 * backoff and jitter honouring Retry-After. HTTP and curl errors become errno here only.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "http_int.h"
#include "log.h"

#ifndef TCIAFS_VERSION
#define TCIAFS_VERSION "0"
#endif

void http_abort(struct http *http)
{
	__atomic_store_n(&http->aborted, 1, __ATOMIC_RELEASE);
}

bool http_aborted(struct http *http)
{
	return __atomic_load_n(&http->aborted, __ATOMIC_ACQUIRE) != 0;
}

void http_stats(struct http *http, struct http_stats *out)
{
	out->requests = __atomic_load_n(&http->n_requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&http->n_retries, __ATOMIC_RELAXED);
	out->failures = __atomic_load_n(&http->n_failures, __ATOMIC_RELAXED);
}

struct http_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
	bool too_big;
	bool over_total;   /* the answers in flight together hold too much */
	struct http *http; /* whose budget cap comes out of */
};

/* Takes n bytes from the budget shared by every answer in flight, so that many large
 * answers at once (a dozen gzip bombs) cannot add up to gigabytes. */
static bool http_budget_take(struct http *http, size_t n)
{
	size_t old = __atomic_load_n(&http->mem_in_flight, __ATOMIC_RELAXED);

	do {
		if (n > http->opts.max_body_total - old)
			return false;
	} while (!__atomic_compare_exchange_n(&http->mem_in_flight, &old, old + n, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
}

static void http_budget_give(struct http *http, size_t n)
{
	__atomic_sub_fetch(&http->mem_in_flight, n, __ATOMIC_RELAXED);
}

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 404:
	case 410:
		return ENOENT;
	case 401:
	case 403:
		return EACCES;
	case 408:
	case 504:
		return ETIMEDOUT;
	default:
		return EIO;
	}
}

int http_curl_errno(int code)
{
	switch (code) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	case CURLE_WRITE_ERROR:
		return EIO;
	default:
		return EIO;
	}
}

static void http_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
	struct http *http = u;

	(void)h;
	(void)access;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&http->share_locks[data]);
}

static void http_share_unlock(CURL *h, curl_lock_data data, void *u)
{
	struct http *http = u;

	(void)h;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&http->share_locks[data]);
}

int http_new(const struct http_opts *opts, struct http **out)
{
	struct http *http;
	int i;

	*out = NULL;
	http = calloc(1, sizeof(*http));
	if (!http)
		return -ENOMEM;
	http->opts = *opts;
	if (http->opts.max_body == 0)
		http->opts.max_body = (size_t)256 << 20;
	if (http->opts.max_body_total == 0)
		http->opts.max_body_total = http->opts.max_body * 2;
	http->user_agent = strdup(opts->user_agent ? opts->user_agent : "tciafs/" TCIAFS_VERSION);
	if (!http->user_agent)
		goto out_free_http;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http->share_locks[i], NULL);
	pthread_mutex_init(&http->pool_lock, NULL);
	http->share = curl_share_init();
	if (!http->share)
		goto out_free_locks;
	if (curl_share_setopt(http->share, CURLSHOPT_LOCKFUNC, http_share_lock) ||
	    curl_share_setopt(http->share, CURLSHOPT_UNLOCKFUNC, http_share_unlock) ||
	    curl_share_setopt(http->share, CURLSHOPT_USERDATA, http) ||
	    curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) ||
	    curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT))
		goto out_free_share;
	*out = http;
	return 0;

out_free_share:
	curl_share_cleanup(http->share);
out_free_locks:
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&http->share_locks[i]);
	pthread_mutex_destroy(&http->pool_lock);
	free(http->user_agent);
out_free_http:
	free(http);
	return -ENOMEM;
}

void http_free(struct http *http)
{
	int i;

	if (!http)
		return;
	for (i = 0; i < http->pool_len; i++)
		curl_easy_cleanup(http->pool[i]);
	curl_share_cleanup(http->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&http->share_locks[i]);
	pthread_mutex_destroy(&http->pool_lock);
	free(http->user_agent);
	free(http);
}

static CURL *http_take(struct http *http)
{
	CURL *h = NULL;

	pthread_mutex_lock(&http->pool_lock);
	if (http->pool_len > 0)
		h = http->pool[--http->pool_len];
	pthread_mutex_unlock(&http->pool_lock);
	if (h) {
		curl_easy_reset(h);
		return h;
	}
	return curl_easy_init();
}

static void http_give(struct http *http, CURL *h)
{
	pthread_mutex_lock(&http->pool_lock);
	if (http->pool_len < HTTP_POOL_MAX) {
		http->pool[http->pool_len++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&http->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static size_t http_buf_write(char *ptr, size_t size, size_t nmemb, void *u)
{
	struct http_buf *b = u;
	size_t n = size * nmemb;
	size_t need, cap;
	char *p;

	if (n > b->max - b->len) {
		b->too_big = true;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	need = b->len + n + 1;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (b->http && !http_budget_take(b->http, cap - b->cap)) {
			b->over_total = true;
			return 0;
		}
		p = realloc(b->data, cap);
		if (!p) {
			if (b->http)
				http_budget_give(b->http, cap - b->cap);
			return 0;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

int http_setup(struct http *http, CURL *h, const char *url, char *errbuf, bool download,
	       bool credentials, long timeout_ms)
{
	bool tls = strncasecmp(url, "https:", 6) == 0;
	CURLcode rc = CURLE_OK;

#define HTTP_SET(opt, val)                                  \
	do {                                                \
		if (rc == CURLE_OK)                         \
			rc = curl_easy_setopt(h, opt, val); \
	} while (0)
	HTTP_SET(CURLOPT_URL, url);
	HTTP_SET(CURLOPT_SHARE, http->share);
	HTTP_SET(CURLOPT_ERRORBUFFER, errbuf);
	HTTP_SET(CURLOPT_NOSIGNAL, 1L);
	HTTP_SET(CURLOPT_USERAGENT, http->user_agent);
	HTTP_SET(CURLOPT_ACCEPT_ENCODING, "");
	/* A request that carries credentials in its body (a password grant) never follows a
	 * redirect: the form would be sent again to wherever the answer points. Others follow,
	 * but never from https down to http (curl drops our Authorization header itself
	 * when a redirect leaves the origin). */
	HTTP_SET(CURLOPT_FOLLOWLOCATION, credentials ? 0L : 1L);
	HTTP_SET(CURLOPT_MAXREDIRS, 5L);
	HTTP_SET(CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SET(CURLOPT_REDIR_PROTOCOLS_STR, tls ? "https" : "http,https");
	HTTP_SET(CURLOPT_CONNECTTIMEOUT, http->opts.connect_timeout);
	/* A transfer slower than 100 bytes/s for stall_timeout seconds is dead. */
	HTTP_SET(CURLOPT_LOW_SPEED_LIMIT, 100L);
	HTTP_SET(CURLOPT_LOW_SPEED_TIME, http->opts.stall_timeout);
	/* Answers held in memory also get an overall deadline across all their attempts, so
	 * that a trickle cannot hold a caller for ever; downloads are bounded by the stall
	 * limit alone (they may be big). */
	if (!download)
		HTTP_SET(CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
#undef HTTP_SET
	return rc == CURLE_OK ? 0 : -EIO;
}

bool http_transient(CURLcode cc, long status)
{
	if (cc == CURLE_OK)
		return status == 429 || (status >= 500 && status <= 599);
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return true;
	default:
		return false;
	}
}

/* Milliseconds to wait before attempt number `attempt` (1-based retry count): full
 * jitter over an exponential window, unless the server said when to come back. */
long http_backoff_ms(int attempt, long retry_after_s, long cap_s, unsigned *seed)
{
	long window = HTTP_BACKOFF_BASE_MS << (attempt < 6 ? attempt - 1 : 5);

	if (retry_after_s > 0) {
		/* Honour Retry-After, but never past what the caller was promised. */
		if (retry_after_s > cap_s)
			retry_after_s = cap_s;
		return retry_after_s * 1000;
	}
	if (window > HTTP_BACKOFF_MAX_MS)
		window = HTTP_BACKOFF_MAX_MS;
	return window / 2 + (long)(rand_r(seed) % (unsigned)(window / 2 + 1));
}

/* Sleeps ms, in slices, so that a stop (http_abort) ends the wait within 50 ms. */
static void http_sleep_ms(struct http *http, long ms)
{
	while (ms > 0 && !http_aborted(http)) {
		long slice = ms < 50 ? ms : 50;
		struct timespec ts = { 0, slice * 1000000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		ms -= slice;
	}
}

/* Every transfer reports progress here (curl calls it at least once a second, even when
 * nothing moves): a stop ends it at once, then the caller's own progress, if any. */
struct http_xfer {
	struct http *http;
	curl_xferinfo_callback fn;
	void *data;
};

static int http_xferinfo(void *u, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	struct http_xfer *x = u;

	if (http_aborted(x->http))
		return 1; /* CURLE_ABORTED_BY_CALLBACK */
	return x->fn ? x->fn(x->data, dltotal, dlnow, ultotal, ulnow) : 0;
}

/* Where a response body goes. reset() is called before every attempt and returns 0, or
 * -errno when the sink cannot start over (a stream already partly written). */
struct http_sink {
	curl_write_callback write;
	void *data;
	int (*reset)(struct http_sink *sink);
	bool failed_write; /* the sink refused data: do not blame the network */
	int write_errno;
	long buffer_size;      /* curl's receive buffer; 0 = its default */
	CURL *h;               /* the handle of the attempt in progress */
	const char *write_why; /* why, when strerror(write_errno) would not say */
};

static int http_buf_reset(struct http_sink *sink)
{
	struct http_buf *b = sink->data;

	b->len = 0;
	b->too_big = false;
	b->over_total = false;
	return 0;
}

/* Runs one GET with retries; the body goes to sink. Returns 0 or -errno, logging one
 * line per failed attempt and one for the final failure. */
void http_set_auth(struct http *http, const struct http_auth *auth)
{
	http->auth = *auth;
}

/* Adds "Authorization: Bearer …" for this attempt. The token is never logged. Returns 0
 * (with *headers set, or NULL without auth) or -errno from the credentials provider. */
static int http_auth_headers(struct http *http, CURL *h, struct curl_slist **headers)
{
	char *token = NULL, *line;
	size_t n;
	int rc;

	*headers = NULL;
	if (!http->auth.token)
		return 0;
	rc = http->auth.token(http->auth.arg, &token);
	if (rc < 0)
		return rc;
	n = strlen(token) + sizeof("Authorization: Bearer ");
	line = malloc(n);
	if (!line) {
		free(token);
		return -ENOMEM;
	}
	snprintf(line, n, "Authorization: Bearer %s", token);
	explicit_bzero(token, strlen(token));
	free(token);
	*headers = curl_slist_append(NULL, line);
	explicit_bzero(line, n);
	free(line);
	if (!*headers)
		return -ENOMEM;
	if (curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers) != CURLE_OK) {
		curl_slist_free_all(*headers);
		*headers = NULL;
		return -EIO;
	}
	return 0;
}

/* Adds a Content-Type header to those of the request (set on h). */
static int http_content_type(CURL *h, const char *ctype, struct curl_slist **headers)
{
	char line[128];
	struct curl_slist *l;

	snprintf(line, sizeof(line), "Content-Type: %s", ctype);
	l = curl_slist_append(*headers, line);
	if (!l)
		return -ENOMEM;
	*headers = l;
	return curl_easy_setopt(h, CURLOPT_HTTPHEADER, l) == CURLE_OK ? 0 : -EIO;
}

static bool http_uses_auth(bool use_auth, const struct http *http)
{
	return use_auth && http->auth.token && http->auth.rejected;
}

/* One request, retried as configured. form: a POST body (NULL for a GET), sent as ctype
 * (NULL: a form, curl's default). */
static int http_perform(struct http *http, const char *url, const char *form, const char *ctype,
			bool use_auth, struct http_sink *sink, curl_xferinfo_callback xferinfo,
			void *xferdata)
{
	struct curl_slist *headers = NULL;
	bool reauthed = false;
	char errbuf[CURL_ERROR_SIZE], cause[CURL_ERROR_SIZE + 128] = "";
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&errbuf;
	struct http_xfer xfer = { http, xferinfo, xferdata };
	const char *method = form ? "POST" : "GET";
	bool download = sink->buffer_size != 0;
	/* One deadline for the whole call, retries and their waits included. */
	int64_t deadline = clock_mono_ms() + (int64_t)http->opts.stall_timeout * 10 * 1000;
	long left_ms = 0, wait_ms;
	char *shown = http_redact_url(url);
	int attempts = http->opts.retries + 1;
	CURLcode cc = CURLE_OK;
	long status = 0, retry_after = 0;
	int attempt, rc = -EIO;
	CURL *h;

	h = http_take(http);
	if (!h || !shown) {
		if (h)
			http_give(http, h);
		free(shown);
		return -ENOMEM;
	}
	for (attempt = 1; attempt <= attempts; attempt++) {
		errbuf[0] = '\0';
		status = 0;
		sink->failed_write = false;
		sink->write_why = NULL;
		rc = sink->reset(sink);
		if (rc < 0)
			break;
		if (http_aborted(http)) {
			rc = -ECANCELED;
			break;
		}
		left_ms = (long)(deadline - clock_mono_ms());
		if (!download && left_ms <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		curl_easy_reset(h);
		rc = http_setup(http, h, url, errbuf, download, form != NULL, left_ms);
		if (rc == 0 &&
		    (curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink->write) != CURLE_OK ||
		     curl_easy_setopt(h, CURLOPT_WRITEDATA, sink) != CURLE_OK))
			rc = -EIO;
		if (rc == 0 && form && curl_easy_setopt(h, CURLOPT_POSTFIELDS, form) != CURLE_OK)
			rc = -EIO;
		if (rc == 0 && use_auth)
			rc = http_auth_headers(http, h, &headers);
		if (rc == 0 && ctype)
			rc = http_content_type(h, ctype, &headers);
		if (rc == 0 && sink->buffer_size &&
		    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, sink->buffer_size) != CURLE_OK)
			rc = -EIO;
		if (rc == 0 &&
		    (curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, http_xferinfo) != CURLE_OK ||
		     curl_easy_setopt(h, CURLOPT_XFERINFODATA, &xfer) != CURLE_OK ||
		     curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK))
			rc = -EIO;
		if (rc < 0) {
			curl_slist_free_all(headers);
			break;
		}
		log_debug("%s %s (attempt %d/%d)", method, shown, attempt, attempts);
		sink->h = h;
		__atomic_add_fetch(&http->n_requests, 1, __ATOMIC_RELAXED);
		if (attempt > 1)
			__atomic_add_fetch(&http->n_retries, 1, __ATOMIC_RELAXED);
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_slist_free_all(headers);
		headers = NULL;
		if (cc == CURLE_OK && status == 401 && http_uses_auth(use_auth, http) &&
		    !reauthed) {
			/* The token was refused (expired, revoked): get a new one, try again once.
			 */
			log_info("GET %s: HTTP 401, renewing the access token", shown);
			http->auth.rejected(http->auth.arg);
			reauthed = true;
			attempt--;
			continue;
		}
		if (cc == CURLE_ABORTED_BY_CALLBACK && http_aborted(http)) {
			rc = -ECANCELED;
			break;
		}
		if (sink->failed_write)
			rc = -sink->write_errno;
		else if (cc == CURLE_OK)
			rc = -http_status_errno(status);
		else
			rc = -http_curl_errno(cc);
		if (rc == 0)
			break;
		if (sink->failed_write)
			snprintf(cause, sizeof(cause), "%s",
				 sink->write_why ? sink->write_why : strerror(-rc));
		else if (cc == CURLE_OK && form && status >= 300 && status < 400)
			snprintf(cause, sizeof(cause),
				 "HTTP %ld redirect not followed: credentials "
				 "go only to the URL given",
				 status);
		else if (cc == CURLE_OK)
			snprintf(cause, sizeof(cause), "HTTP %ld", status);
		else
			snprintf(cause, sizeof(cause), "%s",
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		log_warn("%s %s: %s (attempt %d/%d)", method, shown, cause, attempt, attempts);
		if (sink->failed_write || !http_transient(cc, status) || attempt == attempts)
			break;
		retry_after = 0;
		if (cc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
		wait_ms = http_backoff_ms(attempt, retry_after, http->opts.stall_timeout, &seed);
		if (!download && wait_ms >= (long)(deadline - clock_mono_ms())) {
			snprintf(cause, sizeof(cause),
				 "%s; no time left for another attempt "
				 "within %ld s",
				 strerror(ETIMEDOUT), http->opts.stall_timeout * 10);
			rc = -ETIMEDOUT;
			break;
		}
		http_sleep_ms(http, wait_ms);
	}
	http_give(http, h);
	if (rc == -ECANCELED) {
		log_info("%s %s: cancelled: tciafs is stopping", method, shown);
	} else if (rc < 0) {
		__atomic_add_fetch(&http->n_failures, 1, __ATOMIC_RELAXED);
		/* The last attempt's cause, so that the line users are shown says why. */
		log_err("%s %s failed: %s", method, shown, cause[0] ? cause : strerror(-rc));
	}
	free(shown);
	return rc;
}

static size_t http_buf_sink_write(char *ptr, size_t size, size_t nmemb, void *u)
{
	struct http_sink *sink = u;
	struct http_buf *b = sink->data;
	size_t n = http_buf_write(ptr, size, nmemb, b);

	if (n != size * nmemb) {
		sink->failed_write = true;
		sink->write_errno = b->too_big || b->over_total ? EFBIG : ENOMEM;
	}
	return n;
}

/* Frees what an answer held and gives it back to the budget. */
static void http_buf_release(struct http_buf *b)
{
	if (b->http && b->cap)
		http_budget_give(b->http, b->cap);
	b->cap = 0;
	free(b->data);
	b->data = NULL;
}

int http_get(struct http *http, const char *url, char **body, size_t *len)
{
	struct http_buf buf = { .max = http->opts.max_body, .http = http };
	struct http_sink sink = {
		http_buf_sink_write, &buf, http_buf_reset, false, 0, 0, NULL, NULL
	};
	int rc;

	*body = NULL;
	*len = 0;
	rc = http_perform(http, url, NULL, NULL, true, &sink, NULL, NULL);
	if (rc < 0) {
		http_buf_release(&buf);
		return rc;
	}
	/* Received: the caller owns it now, and it no longer counts as in flight. */
	if (buf.cap)
		http_budget_give(http, buf.cap);
	if (!buf.data) {
		/* An empty body is a valid answer (no results); give callers a string. */
		buf.data = strdup("");
		if (!buf.data)
			return -ENOMEM;
	}
	*body = buf.data;
	*len = buf.len;
	return 0;
}

int http_post_form(struct http *http, const char *url, const char *form, char **body, size_t *len)
{
	struct http_buf buf = { .max = (size_t)1 << 20 };
	struct http_sink sink = {
		http_buf_sink_write, &buf, http_buf_reset, false, 0, 0, NULL, NULL
	};
	int rc;

	*body = NULL;
	*len = 0;
	rc = http_perform(http, url, form, NULL, false, &sink, NULL, NULL);
	if (rc < 0) {
		free(buf.data);
		return rc;
	}
	*body = buf.data ? buf.data : strdup("");
	*len = buf.len;
	return *body ? 0 : -ENOMEM;
}

struct http_fd {
	int fd;
	off_t start;  /* -1 when fd cannot seek */
	uint64_t max; /* 0 = no limit */
	uint64_t written;
	http_progress_fn progress;
	void *arg;
};

static int http_fd_reset(struct http_sink *sink)
{
	struct http_fd *f = sink->data;

	if (f->written == 0)
		return 0;
	if (f->start < 0)
		return -EIO; /* a pipe cannot take back what it was given */
	if (ftruncate(f->fd, f->start) < 0 || lseek(f->fd, f->start, SEEK_SET) < 0)
		return -errno;
	f->written = 0;
	return 0;
}

static size_t http_fd_write(char *ptr, size_t size, size_t nmemb, void *u)
{
	struct http_sink *sink = u;
	struct http_fd *f = sink->data;
	size_t n = size * nmemb;
	long status = 0;
	int rc;

	/* Error pages are not the body the caller asked for: read and drop them. */
	curl_easy_getinfo(sink->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299)
		return n;
	if (f->progress) {
		uint64_t cap = f->progress(f->arg, f->written + n, 0);

		if (cap && (!f->max || cap < f->max))
			f->max = cap; /* tightened as the caller learns more */
	}
	if (f->max && (f->written > f->max || n > f->max - f->written)) {
		/* More than the caller can accept: stop here rather than fill the disk. */
		sink->failed_write = true;
		sink->write_errno = EFBIG;
		return 0;
	}
	rc = fileio_write_all(f->fd, ptr, n);
	if (rc < 0) {
		sink->failed_write = true;
		sink->write_errno = -rc;
		return 0;
	}
	f->written += n;
	return n;
}

static int http_fd_xferinfo(void *u, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			    curl_off_t ulnow)
{
	struct http_fd *f = u;

	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (f->progress) {
		uint64_t cap = f->progress(f->arg, f->written, dltotal > 0 ? (uint64_t)dltotal : 0);

		if (cap && (!f->max || cap < f->max))
			f->max = cap;
	}
	return 0;
}

int http_download(struct http *http, const char *url, int fd, uint64_t max_bytes,
		  http_progress_fn progress, void *arg, uint64_t *bytes)
{
	struct http_fd f = { fd, lseek(fd, 0, SEEK_CUR), max_bytes, 0, progress, arg };
	struct http_sink sink = {
		http_fd_write, &f, http_fd_reset, false, 0, 256 * 1024, NULL, NULL
	};
	int rc;

	*bytes = 0;
	rc = http_perform(http, url, NULL, NULL, true, &sink, http_fd_xferinfo, &f);
	if (rc == 0)
		*bytes = f.written;
	return rc;
}

/* A body handed on piece by piece (http_stream): 2xx bodies only, up to max bytes, and
 * at most HTTP_INFLATE_MAX times what came over the wire once past HTTP_INFLATE_FLOOR.
 * The ratio, like the zip check's (unzip.c), stops a gzip bomb in a fraction of a second
 * rather than after parsing hundreds of MB that only look like a list: JSON as TCIA
 * sends it compresses about ten to one. */
#define HTTP_INFLATE_MAX 200
#define HTTP_TEXT(x) HTTP_TEXT_(x)
#define HTTP_TEXT_(x) #x
#define HTTP_INFLATE_FLOOR ((uint64_t)16 << 20)
struct http_chunks {
	http_chunk_fn chunk;
	http_restart_fn restart;
	void *arg;
	uint64_t max;
	uint64_t delivered;
};

static int http_chunks_reset(struct http_sink *sink)
{
	struct http_chunks *c = sink->data;

	if (c->delivered == 0)
		return 0;
	c->delivered = 0;
	return c->restart ? c->restart(c->arg) : -EIO;
}

static size_t http_chunks_write(char *ptr, size_t size, size_t nmemb, void *u)
{
	struct http_sink *sink = u;
	struct http_chunks *c = sink->data;
	size_t n = size * nmemb;
	long status = 0;
	int rc;

	curl_easy_getinfo(sink->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299)
		return n;
	if (n > c->max - c->delivered) {
		sink->failed_write = true;
		sink->write_errno = EFBIG;
		return 0;
	}
	c->delivered += n;
	if (c->delivered > HTTP_INFLATE_FLOOR) {
		curl_off_t wire = 0;

		curl_easy_getinfo(sink->h, CURLINFO_SIZE_DOWNLOAD_T, &wire);
		if (c->delivered / HTTP_INFLATE_MAX > (uint64_t)wire) {
			sink->failed_write = true;
			sink->write_errno = EFBIG;
			/* clang-format off */
			sink->write_why = "refused as a compression bomb: it inflates more "
					  "than " HTTP_TEXT(HTTP_INFLATE_MAX) " times what came over "
					  "the wire";
			/* clang-format on */
			return 0;
		}
	}
	rc = c->chunk(c->arg, ptr, n);
	if (rc < 0) {
		sink->failed_write = true;
		sink->write_errno = -rc;
		return 0;
	}
	return n;
}

/* http_stream, and with json its POST form. */
static int http_stream_any(struct http *http, const char *url, const char *json, uint64_t max_bytes,
			   http_chunk_fn chunk, http_restart_fn restart, void *arg, uint64_t *bytes)
{
	struct http_chunks c = { chunk, restart, arg, max_bytes ? max_bytes : UINT64_MAX, 0 };
	/* curl's own buffer (buffer_size 0): and, like any answer, one deadline for the
	 * whole call, so that a trickle cannot hold a caller for ever. */
	struct http_sink sink = {
		http_chunks_write, &c, http_chunks_reset, false, 0, 0, NULL, NULL
	};
	int rc;

	rc = http_perform(http, url, json, json ? "application/json" : NULL, !json, &sink, NULL,
			  NULL);
	if (bytes)
		*bytes = c.delivered;
	return rc;
}

int http_stream(struct http *http, const char *url, uint64_t max_bytes, http_chunk_fn chunk,
		http_restart_fn restart, void *arg, uint64_t *bytes)
{
	return http_stream_any(http, url, NULL, max_bytes, chunk, restart, arg, bytes);
}

int http_stream_post_json(struct http *http, const char *url, const char *json, uint64_t max_bytes,
			  http_chunk_fn chunk, http_restart_fn restart, void *arg, uint64_t *bytes)
{
	return http_stream_any(http, url, json, max_bytes, chunk, restart, arg, bytes);
}

char *http_redact_url(const char *url)
{
	const char *auth = strstr(url, "://"), *end, *at = NULL, *p;
	size_t head;
	char *out;

	if (!auth)
		return strdup(url);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return strdup(url);
	head = (size_t)(auth - url);
	out = malloc(strlen(url) + 1);
	if (!out)
		return NULL;
	memcpy(out, url, head);
	strcpy(out + head, at + 1);
	return out;
}

char *http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, j = 0;
	char *out;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			out[j++] = (char)c;
		} else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}
