/* SPDX-License-Identifier: MIT
 * ahead.c — a long answer's elements worked on by one helper thread while the caller
 * goes on reading and hands each one on, in order, once its turn comes. Batches bound
 * what is in flight; the helper starts only when a first batch is full.
 */
#include "ahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define AHEAD_BATCH 256 /* elements a batch */
#define AHEAD_QUEUE 4   /* batches handed to the helper and not yet done */

struct ahead_elem {
	size_t off, len; /* its text in the batch's */
	int rc;          /* work's answer: 0 when the item was made */
};

struct ahead_batch {
	char *text;
	size_t len, cap;
	struct ahead_elem *e;
	unsigned char *items;
	size_t n;
	bool worked; /* the helper is through with it */
	struct ahead_batch *next;
};

struct ahead {
	size_t item_size;
	ahead_work_fn work;
	ahead_done_fn done;
	ahead_clear_fn clear;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t helper;
	bool started, stopping;
	bool busy;                       /* the helper is working on a batch (lock) */
	struct ahead_batch *cur;         /* the caller's, being filled */
	struct ahead_batch *head, *tail; /* handed over, oldest first (lock) */
	struct ahead_batch *todo;        /* the first the helper has yet to start (lock) */
	size_t queued;                   /* (lock) */
	struct ahead_batch *spare;       /* the caller's, for reuse */
	int rc;                          /* the first failure */
};

static void *ahead_item(const struct ahead *a, struct ahead_batch *b, size_t i)
{
	return b->items + i * a->item_size;
}

static struct ahead_batch *ahead_batch_new(const struct ahead *a)
{
	struct ahead_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->e = calloc(AHEAD_BATCH, sizeof(*b->e));
	b->items = calloc(AHEAD_BATCH, a->item_size);
	if (!b->e || !b->items) {
		free(b->e);
		free(b->items);
		free(b);
		return NULL;
	}
	return b;
}

/* Clears the items made and never handed on, and makes b empty. */
static void ahead_batch_drop(const struct ahead *a, struct ahead_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->worked && b->e[i].rc == 0)
			a->clear(ahead_item(a, b, i));
	memset(b->items, 0, b->n * a->item_size);
	b->n = b->len = 0;
	b->worked = false;
	b->next = NULL;
}

static void ahead_batch_free(struct ahead_batch *b)
{
	while (b) {
		struct ahead_batch *next = b->next;

		free(b->text);
		free(b->e);
		free(b->items);
		free(b);
		b = next;
	}
}

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	struct ahead_batch *b;
	size_t i;

	/* What work logs is not said here: the caller does a failed element again. */
	log_quiet(true);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->stopping && !a->todo)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stopping)
			break;
		b = a->todo;
		a->todo = b->next;
		a->busy = true;
		pthread_mutex_unlock(&a->lock);
		for (i = 0; i < b->n; i++) {
			void *item = ahead_item(a, b, i);

			b->e[i].rc = a->work(a->ctx, b->text + b->e[i].off, b->e[i].len, item);
			if (b->e[i].rc != 0) {
				a->clear(item);
				memset(item, 0, a->item_size);
			}
		}
		pthread_mutex_lock(&a->lock);
		b->worked = true;
		a->busy = false;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int ahead_new(size_t item_size, ahead_work_fn work, ahead_done_fn done, ahead_clear_fn clear,
	      void *ctx, struct ahead **out)
{
	struct ahead *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->item_size = item_size;
	a->work = work;
	a->done = done;
	a->clear = clear;
	a->ctx = ctx;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	*out = a;
	return 0;
}

/* Hands b's elements to done in order (made ones as made); after a failure the rest are
 * only cleared. b goes back to the spares. */
static void ahead_hand_on(struct ahead *a, struct ahead_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		void *item = ahead_item(a, b, i);
		bool made = b->worked && b->e[i].rc == 0;

		if (a->rc == 0)
			a->rc = a->done(a->ctx, b->text + b->e[i].off, b->e[i].len, item, made);
		else if (made)
			a->clear(item);
	}
	memset(b->items, 0, b->n * a->item_size);
	b->n = b->len = 0;
	b->worked = false;
	b->next = a->spare;
	a->spare = b;
}

/* Hands on the oldest batches the helper is through with. Waits for the oldest while it
 * is not: at the end (all), or while too many are in flight. */
static void ahead_drain(struct ahead *a, bool all)
{
	for (;;) {
		struct ahead_batch *b;

		pthread_mutex_lock(&a->lock);
		while (a->head && !a->head->worked && (all || a->queued >= AHEAD_QUEUE))
			pthread_cond_wait(&a->cond, &a->lock);
		b = a->head;
		if (!b || !b->worked) {
			pthread_mutex_unlock(&a->lock);
			return;
		}
		a->head = b->next;
		if (!a->head)
			a->tail = NULL;
		a->queued--;
		pthread_mutex_unlock(&a->lock);
		ahead_hand_on(a, b);
	}
}

/* Gives the caller's batch to the helper, started now if it is not yet. */
static int ahead_submit(struct ahead *a)
{
	struct ahead_batch *b = a->cur;

	if (!a->started) {
		if (pthread_create(&a->helper, NULL, ahead_main, a) != 0) {
			/* No helper: this batch, and every one after, on the caller. */
			a->cur = NULL;
			ahead_hand_on(a, b);
			return a->rc;
		}
		a->started = true;
	}
	a->cur = NULL;
	pthread_mutex_lock(&a->lock);
	b->next = NULL;
	if (a->tail)
		a->tail->next = b;
	else
		a->head = b;
	a->tail = b;
	if (!a->todo)
		a->todo = b;
	a->queued++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	ahead_drain(a, false);
	return a->rc;
}

int ahead_put(struct ahead *a, const char *text, size_t len)
{
	struct ahead_batch *b;
	struct ahead_elem *e;

	if (a->rc)
		return a->rc;
	if (!a->cur) {
		a->cur = a->spare;
		if (a->cur)
			a->spare = a->cur->next;
		else if (!(a->cur = ahead_batch_new(a)))
			return a->rc = -ENOMEM;
		a->cur->next = NULL;
	}
	b = a->cur;
	if (!b->text || b->len + len > b->cap) { /* an empty element has text too */
		size_t cap = b->cap ? b->cap : 65536;
		char *grown;

		while (cap < b->len + len)
			cap *= 2;
		grown = realloc(b->text, cap);
		if (!grown)
			return a->rc = -ENOMEM;
		b->text = grown;
		b->cap = cap;
	}
	if (len)
		memcpy(b->text + b->len, text, len);
	e = &b->e[b->n++];
	e->off = b->len;
	e->len = len;
	e->rc = -1;
	b->len += len;
	if (b->n == AHEAD_BATCH)
		return ahead_submit(a);
	return 0;
}

int ahead_end(struct ahead *a)
{
	struct ahead_batch *b = a->cur;

	if (b && b->n > 0 && a->rc == 0) {
		if (a->started) {
			ahead_submit(a);
		} else {
			/* A short answer: all of it here, as if there were no helper. */
			a->cur = NULL;
			ahead_hand_on(a, b);
		}
	}
	ahead_drain(a, true);
	return a->rc;
}

void ahead_reset(struct ahead *a)
{
	struct ahead_batch *b;

	pthread_mutex_lock(&a->lock);
	a->todo = NULL; /* the helper takes nothing more */
	while (a->busy)
		pthread_cond_wait(&a->cond, &a->lock);
	b = a->head;
	a->head = a->tail = NULL;
	a->queued = 0;
	pthread_mutex_unlock(&a->lock);
	while (b) {
		struct ahead_batch *next = b->next;

		ahead_batch_drop(a, b);
		b->next = a->spare;
		a->spare = b;
		b = next;
	}
	if (a->cur) {
		ahead_batch_drop(a, a->cur);
		a->cur->next = a->spare;
		a->spare = a->cur;
		a->cur = NULL;
	}
	a->rc = 0;
}

void ahead_free(struct ahead *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->helper, NULL);
	}
	ahead_reset(a);
	ahead_batch_free(a->spare);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
