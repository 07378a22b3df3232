/* SPDX-License-Identifier: MIT
 * failures.c — a ring of the newest failures, under one mutex. Each holds the path, the
 * series, the errno and the reason as the log line gave it.
 */
#include "failures.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct failure {
	time_t when;
	int err;
	char *path;
	char *uid;
	char *why;
};

struct failures {
	pthread_mutex_t lock;
	struct failure ring[FAILURES_KEEP];
	size_t next; /* where the next one goes */
	size_t count;
};

int failures_new(struct failures **out)
{
	struct failures *f = calloc(1, sizeof(*f));

	*out = NULL;
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	*out = f;
	return 0;
}

static void failure_clear(struct failure *x)
{
	free(x->path);
	free(x->uid);
	free(x->why);
	memset(x, 0, sizeof(*x));
}

void failures_free(struct failures *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < FAILURES_KEEP; i++)
		failure_clear(&f->ring[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void failures_add(struct failures *f, const char *path, const char *uid, int err, const char *why)
{
	struct failure x = { time(NULL), err, strdup(path), uid ? strdup(uid) : NULL,
			     strdup(why ? why : "") };

	if (!x.path || !x.why || (uid && !x.uid)) {
		failure_clear(&x); /* out of memory: losing a report is all it costs */
		return;
	}
	pthread_mutex_lock(&f->lock);
	failure_clear(&f->ring[f->next]);
	f->ring[f->next] = x;
	f->next = (f->next + 1) % FAILURES_KEEP;
	if (f->count < FAILURES_KEEP)
		f->count++;
	pthread_mutex_unlock(&f->lock);
}

/* The i-th newest (0 = newest). Lock held. */
static const struct failure *failures_nth(const struct failures *f, size_t i)
{
	return &f->ring[(f->next + FAILURES_KEEP - 1 - i) % FAILURES_KEEP];
}

/* Is path folder itself, or directly inside it? */
static int failures_in(const char *path, const char *folder)
{
	size_t n = strlen(folder);

	if (strcmp(path, folder) == 0)
		return 1;
	if (strncmp(path, folder, n) != 0)
		return 0;
	if (n == 1) /* "/" */
		return strchr(path + 1, '/') == NULL;
	return path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

static void failures_time(time_t when, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

long failures_find(struct failures *f, const char *folder, const char *uid, char *buf, size_t size)
{
	char line[1024], when[32];
	long rc = -ENODATA;
	size_t i, len;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->count; i++) {
		const struct failure *x = failures_nth(f, i);

		if (!failures_in(x->path, folder) && !(uid && x->uid && strcmp(uid, x->uid) == 0))
			continue;
		failures_time(x->when, when, sizeof(when));
		snprintf(line, sizeof(line), "%s %s: %s", when, strerror(x->err),
			 x->why[0] ? x->why : "(no reason was logged)");
		len = strlen(line);
		if (size == 0)
			rc = (long)len;
		else if (size < len)
			rc = -ERANGE;
		else {
			memcpy(buf, line, len);
			rc = (long)len;
		}
		break;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

json_t *failures_json(struct failures *f, size_t n)
{
	json_t *arr = json_array();
	char when[32];
	size_t i;

	if (!arr)
		return NULL;
	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->count && i < n; i++) {
		const struct failure *x = failures_nth(f, i);

		failures_time(x->when, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s?,s:s,s:s}", "time", when, "path",
						     x->path, "series", x->uid, "error",
						     strerror(x->err), "reason", x->why));
	}
	pthread_mutex_unlock(&f->lock);
	return arr;
}
