/* SPDX-License-Identifier: MIT
 * http_fleet.c — many GETs at once on one thread of their own: libcurl's multi interface
 * over the client's shared connections, a queue in which a job someone waits for goes
 * first, bodies written into files at their offsets and checked as they arrive (length,
 * a range's 206 and Content-Range, MD5), failed attempts retried as http.c's are. Part
 * of the http module (src/http_int.h).
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fileio.h"
#include "http_int.h"
#include "log.h"
#include "md5.h"

/* The longest the thread sleeps in curl_multi_poll: a stop or a cancel wakes it at
 * once (curl_multi_wakeup), this bounds what a missed wake-up could cost. */
#define FLEET_POLL_MS 200
/* Easy handles kept between jobs: each keeps its own buffers. */
#define FLEET_IDLE_MAX 32
#define FLEET_BUFFER (256 * 1024)

struct fleet_job {
	struct http_fleet *f;
	uint64_t id;
	char *url;
	char *shown; /* url as it may be logged */
	int fd;
	uint64_t offset, length, total;
	bool ranged;
	bool urgent;
	char md5[33]; /* "" when there is none to check */
	void (*done)(void *arg, int rc);
	void *arg;
	int attempt;
	int64_t not_before; /* a retry waits until then (ms, monotonic) */
	CURL *h;
	struct md5 *ctx;
	uint64_t written;
	bool head_checked; /* a 2xx's status and Content-Range were checked */
	int write_errno;   /* the body was refused: no retry */
	char why[256];     /* ... and why */
	char errbuf[CURL_ERROR_SIZE];
	struct fleet_job *prev, *next;
};

struct http_fleet {
	struct http *http; /* borrowed */
	int streams;
	CURLM *multi;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a job came, or stop: for a thread with nothing to do */
	/* Under lock: */
	struct fleet_job *head, *tail; /* queued, urgent ones first */
	struct fleet_job *later;       /* waiting to be tried again (singly linked) */
	unsigned queued, running;
	uint64_t next_id;
	bool started, stopping, cancelled;
	pthread_t thread;
	/* The thread's own: */
	struct fleet_job *live; /* in the multi handle (doubly linked) */
	CURL *idle[FLEET_IDLE_MAX];
	int nidle;
	unsigned seed;
};

/* ---- the queue (under lock) ------------------------------------------------------- */

static void fleet_unqueue(struct http_fleet *f, struct fleet_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		f->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		f->tail = j->prev;
	j->prev = j->next = NULL;
	f->queued--;
}

/* An urgent job goes behind the other urgent ones, before the rest. */
static void fleet_queue(struct http_fleet *f, struct fleet_job *j)
{
	struct fleet_job *after = NULL, *p;

	if (j->urgent)
		for (p = f->head; p && p->urgent; p = p->next)
			after = p;
	else
		after = f->tail;
	j->prev = after;
	j->next = after ? after->next : f->head;
	if (j->next)
		j->next->prev = j;
	else
		f->tail = j;
	if (after)
		after->next = j;
	else
		f->head = j;
	f->queued++;
}

/* ---- one job ---------------------------------------------------------------------- */

static void fleet_job_free(struct fleet_job *j)
{
	md5_free(j->ctx);
	free(j->url);
	free(j->shown);
	free(j);
}

static void fleet_handle_give(struct http_fleet *f, CURL *h)
{
	if (f->nidle < FLEET_IDLE_MAX)
		f->idle[f->nidle++] = h;
	else
		curl_easy_cleanup(h);
}

/* "bytes a-b/total" as a 206 must give it for the range asked. */
static bool fleet_range_ok(const struct fleet_job *j, const char *value)
{
	unsigned long long a, b, t;
	int end = 0;

	if (sscanf(value, "bytes %llu-%llu/%llu%n", &a, &b, &t, &end) != 3 || value[end] != '\0')
		return false;
	return a == j->offset && b == j->offset + j->length - 1 && (j->total == 0 || t == j->total);
}

/* A 2xx's headers, before its first byte is taken: a range must come as asked. */
static int fleet_check_head(struct fleet_job *j, long status)
{
	struct curl_header *hdr = NULL;

	if (!j->ranged)
		return 0;
	if (status != 206) {
		snprintf(j->why, sizeof(j->why), "HTTP %ld to a Range request (206 expected)",
			 status);
		return -EIO;
	}
	if (curl_easy_header(j->h, "Content-Range", 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK ||
	    !fleet_range_ok(j, hdr->value)) {
		snprintf(j->why, sizeof(j->why),
			 "its Content-Range (%.80s) is not the range "
			 "asked, bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
			 hdr ? hdr->value : "none", j->offset, j->offset + j->length - 1, j->total);
		return -EIO;
	}
	return 0;
}

static size_t fleet_write(char *ptr, size_t size, size_t nmemb, void *u)
{
	struct fleet_job *j = u;
	size_t n = size * nmemb;
	long status = 0;
	int rc;

	/* Error pages are not the body asked for: read and dropped. */
	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299)
		return n;
	if (!j->head_checked) {
		rc = fleet_check_head(j, status);
		if (rc < 0) {
			j->write_errno = -rc;
			return 0;
		}
		j->head_checked = true;
	}
	if (n > j->length - j->written) {
		snprintf(j->why, sizeof(j->why),
			 "longer than the %" PRIu64 " bytes expected: "
			 "refused",
			 j->length);
		j->write_errno = EIO;
		return 0;
	}
	rc = fileio_pwrite_all(j->fd, ptr, n, j->offset + j->written);
	if (rc < 0) {
		snprintf(j->why, sizeof(j->why), "cannot write it: %s", strerror(-rc));
		j->write_errno = -rc;
		return 0;
	}
	if (j->md5[0] && md5_update(j->ctx, ptr, n) < 0) {
		snprintf(j->why, sizeof(j->why), "cannot compute its MD5");
		j->write_errno = ENOMEM;
		return 0;
	}
	j->written += n;
	return n;
}

static int fleet_xferinfo(void *u, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			  curl_off_t ulnow)
{
	struct fleet_job *j = u;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return http_aborted(j->f->http) || __atomic_load_n(&j->f->cancelled, __ATOMIC_RELAXED);
}

/* An attempt's handle, set up. Returns 0 or -errno. */
static int fleet_setup(struct http_fleet *f, struct fleet_job *j)
{
	char range[64];
	CURLcode cc = CURLE_OK;

	j->h = f->nidle ? f->idle[--f->nidle] : curl_easy_init();
	if (!j->h)
		return -ENOMEM;
	curl_easy_reset(j->h);
	j->errbuf[0] = '\0';
	j->why[0] = '\0';
	j->written = 0;
	j->write_errno = 0;
	j->head_checked = false;
	if (j->md5[0] && md5_reset(j->ctx) < 0)
		return -ENOMEM;
	if (http_setup(f->http, j->h, j->url, j->errbuf, true, false, 0) < 0)
		return -EIO;
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, j->offset,
		 j->offset + j->length - 1);
#define FLEET_SET(opt, val)                                    \
	do {                                                   \
		if (cc == CURLE_OK)                            \
			cc = curl_easy_setopt(j->h, opt, val); \
	} while (0)
	FLEET_SET(CURLOPT_WRITEFUNCTION, fleet_write);
	FLEET_SET(CURLOPT_WRITEDATA, j);
	FLEET_SET(CURLOPT_PRIVATE, j);
	FLEET_SET(CURLOPT_BUFFERSIZE, (long)FLEET_BUFFER);
	/* The body is checked byte for byte: no transfer encoding between. */
	FLEET_SET(CURLOPT_ACCEPT_ENCODING, NULL);
	/* Wait for a connection that may multiplex (HTTP/2) rather than open one more. */
	FLEET_SET(CURLOPT_PIPEWAIT, 1L);
	FLEET_SET(CURLOPT_XFERINFOFUNCTION, fleet_xferinfo);
	FLEET_SET(CURLOPT_XFERINFODATA, j);
	FLEET_SET(CURLOPT_NOPROGRESS, 0L);
	if (j->ranged)
		FLEET_SET(CURLOPT_RANGE, range);
#undef FLEET_SET
	if (cc != CURLE_OK)
		return -EIO;
	if (curl_multi_add_handle(f->multi, j->h) != CURLM_OK)
		return -EIO;
	__atomic_add_fetch(&f->http->n_requests, 1, __ATOMIC_RELAXED);
	if (j->attempt > 1)
		__atomic_add_fetch(&f->http->n_retries, 1, __ATOMIC_RELAXED);
	log_debug("GET %s%s%s (attempt %d/%d)", j->shown, j->ranged ? " bytes=" : "",
		  j->ranged ? range : "", j->attempt, f->http->opts.retries + 1);
	return 0;
}

static void fleet_live_add(struct http_fleet *f, struct fleet_job *j)
{
	j->prev = NULL;
	j->next = f->live;
	if (f->live)
		f->live->prev = j;
	f->live = j;
}

static void fleet_live_remove(struct http_fleet *f, struct fleet_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		f->live = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
	if (j->h) {
		curl_multi_remove_handle(f->multi, j->h);
		fleet_handle_give(f, j->h);
		j->h = NULL;
	}
}

/* The job's end: one line when it failed, then its caller's callback. */
static void fleet_end(struct http_fleet *f, struct fleet_job *j, int rc, const char *cause)
{
	log_clear_reason();
	if (rc == -ECANCELED) {
		log_debug("GET %s: cancelled", j->shown);
	} else if (rc < 0) {
		__atomic_add_fetch(&f->http->n_failures, 1, __ATOMIC_RELAXED);
		log_err("GET %s failed: %s", j->shown, cause[0] ? cause : strerror(-rc));
	}
	j->done(j->arg, rc);
	fleet_job_free(j);
}

/* A finished attempt: the job ends, or waits to be tried again. */
static void fleet_finish(struct http_fleet *f, struct fleet_job *j, CURLcode cc)
{
	char cause[CURL_ERROR_SIZE + 300] = "", hex[MD5_HEX_LEN + 1];
	long status = 0, retry_after = 0;
	bool again;
	int rc;

	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && status >= 200 && status <= 299 && !j->head_checked) {
		/* An empty body never met the write callback's checks. */
		j->write_errno = -fleet_check_head(j, status);
		if (!j->write_errno)
			j->head_checked = true;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK || http_aborted(f->http))
		rc = -ECANCELED;
	else if (j->write_errno)
		rc = -j->write_errno;
	else if (cc != CURLE_OK)
		rc = -http_curl_errno(cc);
	else
		rc = -http_status_errno(status);
	if (rc == 0 && j->written != j->length) {
		snprintf(j->why, sizeof(j->why),
			 "%" PRIu64 " bytes where %" PRIu64 " were "
			 "expected: refused",
			 j->written, j->length);
		rc = -EIO;
		j->write_errno = EIO;
	}
	if (rc == 0 && j->md5[0]) {
		if (md5_final_hex(j->ctx, hex) < 0) {
			rc = -ENOMEM;
		} else {
			if (strcmp(hex, j->md5) != 0) {
				snprintf(j->why, sizeof(j->why),
					 "its MD5 is %s, its ETag says %s: "
					 "refused",
					 hex, j->md5);
				rc = -EIO;
				j->write_errno = EIO;
			}
		}
	}
	if (rc == 0 || rc == -ECANCELED) {
		fleet_live_remove(f, j);
		pthread_mutex_lock(&f->lock);
		f->running--;
		pthread_mutex_unlock(&f->lock);
		fleet_end(f, j, rc, "");
		return;
	}
	if (j->write_errno)
		snprintf(cause, sizeof(cause), "%s", j->why[0] ? j->why : strerror(-rc));
	else if (cc == CURLE_OK)
		snprintf(cause, sizeof(cause), "HTTP %ld", status);
	else
		snprintf(cause, sizeof(cause), "%s",
			 j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc));
	/* A body that is not what was asked is refused, not asked again. */
	again = !j->write_errno && http_transient(cc, status) &&
		j->attempt < f->http->opts.retries + 1;
	if (again && cc == CURLE_OK)
		curl_easy_getinfo(j->h, CURLINFO_RETRY_AFTER, &retry_after);
	fleet_live_remove(f, j);
	pthread_mutex_lock(&f->lock);
	f->running--;
	if (again) {
		log_warn("GET %s: %s (attempt %d/%d)", j->shown, cause, j->attempt,
			 f->http->opts.retries + 1);
		j->not_before =
			clock_mono_ms() + http_backoff_ms(j->attempt, retry_after,
							  f->http->opts.stall_timeout, &f->seed);
		j->attempt++;
		j->next = f->later;
		f->later = j;
	}
	pthread_mutex_unlock(&f->lock);
	if (!again)
		fleet_end(f, j, rc, cause);
}

/* ---- the thread ------------------------------------------------------------------- */

/* Every job left ends with -ECANCELED: the queue's under lock, then the live ones. */
static void fleet_cancel_all(struct http_fleet *f)
{
	struct fleet_job *gone = NULL, *j;

	pthread_mutex_lock(&f->lock);
	while ((j = f->head)) {
		fleet_unqueue(f, j);
		j->next = gone;
		gone = j;
	}
	while ((j = f->later)) {
		f->later = j->next;
		j->next = gone;
		gone = j;
	}
	pthread_mutex_unlock(&f->lock);
	while ((j = gone)) {
		gone = j->next;
		fleet_end(f, j, -ECANCELED, "");
	}
	while ((j = f->live)) {
		fleet_live_remove(f, j);
		pthread_mutex_lock(&f->lock);
		f->running--;
		pthread_mutex_unlock(&f->lock);
		fleet_end(f, j, -ECANCELED, "");
	}
}

/* Under lock: retries now due go back to the head of the queue; returns the ms until
 * the next one is due (or FLEET_POLL_MS). */
static long fleet_due(struct http_fleet *f)
{
	struct fleet_job **p = &f->later, *j;
	int64_t now = clock_mono_ms();
	long wait = FLEET_POLL_MS;

	while ((j = *p)) {
		if (j->not_before <= now) {
			*p = j->next;
			j->urgent = true; /* it was started before those queued now */
			fleet_queue(f, j);
			continue;
		}
		if (j->not_before - now < wait)
			wait = (long)(j->not_before - now);
		p = &j->next;
	}
	return wait;
}

static void *fleet_main(void *arg)
{
	struct http_fleet *f = arg;
	struct fleet_job *start, *j;
	struct CURLMsg *msg;
	int still, left, rc;
	long wait;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&f->lock);
		/* Nothing to do: sleep until there is, not in poll's ticks. */
		while (!f->stopping && !f->cancelled && !f->head && !f->later && !f->live)
			pthread_cond_wait(&f->wake, &f->lock);
		stop = f->stopping || f->cancelled || http_aborted(f->http);
		wait = fleet_due(f);
		start = NULL;
		while (!stop && f->head && ((int)f->running < f->streams || f->head->urgent)) {
			j = f->head;
			fleet_unqueue(f, j);
			j->next = start;
			start = j;
			f->running++;
		}
		pthread_mutex_unlock(&f->lock);
		if (stop) {
			fleet_cancel_all(f);
			pthread_mutex_lock(&f->lock);
			stop = f->stopping;
			pthread_mutex_unlock(&f->lock);
			if (stop)
				break;
			curl_multi_poll(f->multi, NULL, 0, FLEET_POLL_MS, NULL);
			continue;
		}
		while ((j = start)) {
			start = j->next;
			fleet_live_add(f, j);
			rc = fleet_setup(f, j);
			if (rc < 0) {
				fleet_live_remove(f, j);
				pthread_mutex_lock(&f->lock);
				f->running--;
				pthread_mutex_unlock(&f->lock);
				fleet_end(f, j, rc, "cannot set the request up");
			}
		}
		curl_multi_perform(f->multi, &still);
		while ((msg = curl_multi_info_read(f->multi, &left))) {
			char *priv = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			fleet_finish(f, (struct fleet_job *)(void *)priv, msg->data.result);
		}
		curl_multi_poll(f->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
	}
	return NULL;
}

/* ---- the face --------------------------------------------------------------------- */

int http_fleet_new(struct http *http, int streams, struct http_fleet **out)
{
	struct http_fleet *f = calloc(1, sizeof(*f));

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->multi = curl_multi_init();
	if (!f->multi) {
		free(f);
		return -ENOMEM;
	}
	curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	f->http = http;
	f->streams = streams > 0 ? streams : 1;
	f->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)f;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	*out = f;
	return 0;
}

int http_fleet_add(struct http_fleet *f, const struct http_job *job, uint64_t *id)
{
	struct fleet_job *j;
	int rc = 0;

	if (job->length == 0 || (job->md5 && !md5_hex_ok(job->md5)) || (job->ranged && job->md5))
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->f = f;
	j->url = strdup(job->url);
	j->shown = http_redact_url(job->url);
	if (!j->url || !j->shown || (job->md5 && md5_new(&j->ctx) < 0)) {
		fleet_job_free(j);
		return -ENOMEM;
	}
	if (job->md5)
		memcpy(j->md5, job->md5, 33);
	j->fd = job->fd;
	j->offset = job->offset;
	j->length = job->length;
	j->ranged = job->ranged;
	j->total = job->total;
	j->urgent = job->urgent;
	j->done = job->done;
	j->arg = job->arg;
	j->attempt = 1;
	pthread_mutex_lock(&f->lock);
	if (f->stopping || f->cancelled || http_aborted(f->http)) {
		rc = -ECANCELED;
	} else if (!f->started) {
		if (pthread_create(&f->thread, NULL, fleet_main, f) != 0)
			rc = -EAGAIN;
		else
			f->started = true;
	}
	if (rc == 0) {
		j->id = ++f->next_id;
		*id = j->id;
		fleet_queue(f, j);
		pthread_cond_signal(&f->wake);
	}
	pthread_mutex_unlock(&f->lock);
	if (rc < 0) {
		fleet_job_free(j);
		return rc;
	}
	curl_multi_wakeup(f->multi);
	return 0;
}

void http_fleet_hurry(struct http_fleet *f, uint64_t id)
{
	struct fleet_job *j;
	bool moved = false;

	pthread_mutex_lock(&f->lock);
	for (j = f->head; j; j = j->next)
		if (j->id == id) {
			if (!j->urgent) {
				fleet_unqueue(f, j);
				j->urgent = true;
				fleet_queue(f, j);
				moved = true;
			}
			break;
		}
	for (j = moved ? NULL : f->later; j; j = j->next)
		if (j->id == id)
			j->urgent = true;
	pthread_mutex_unlock(&f->lock);
	if (moved)
		curl_multi_wakeup(f->multi);
}

void http_fleet_cancel(struct http_fleet *f)
{
	pthread_mutex_lock(&f->lock);
	__atomic_store_n(&f->cancelled, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	curl_multi_wakeup(f->multi);
}

void http_fleet_counts(struct http_fleet *f, unsigned *running, unsigned *queued)
{
	struct fleet_job *j;
	unsigned later = 0;

	pthread_mutex_lock(&f->lock);
	for (j = f->later; j; j = j->next)
		later++;
	*running = f->running;
	*queued = f->queued + later;
	pthread_mutex_unlock(&f->lock);
}

void http_fleet_free(struct http_fleet *f)
{
	bool started;
	int i;

	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	started = f->started;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	if (started) {
		curl_multi_wakeup(f->multi);
		pthread_join(f->thread, NULL);
	} else {
		fleet_cancel_all(f);
	}
	for (i = 0; i < f->nidle; i++)
		curl_easy_cleanup(f->idle[i]);
	curl_multi_cleanup(f->multi);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
