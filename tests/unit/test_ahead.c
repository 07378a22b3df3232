/* SPDX-License-Identifier: MIT
 * Unit tests for ahead.c: elements of a long answer made on a helper thread and handed
 * back in order; failures of either side; a reset in the middle; a short answer made on
 * the caller's thread alone. Items are heap strings, so valgrind sees any one lost. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ahead.h"

struct item {
	char *s;
};

struct run {
	pthread_t caller;
	long next; /* the number the next element handed on must carry */
	long made, redone, elsewhere;
	long fail_work_at;    /* work refuses this element (-1: none) */
	long fail_done_at;    /* done fails at this element (-1: none) */
	pthread_mutex_t lock; /* made and elsewhere are counted on the helper */
};

static long number_of(const char *text, size_t len)
{
	char buf[32];

	assert_true(len < sizeof(buf));
	memcpy(buf, text, len);
	buf[len] = '\0';
	return strtol(buf + 1, NULL, 10);
}

static int work(void *ctx, const char *text, size_t len, void *item)
{
	struct run *r = ctx;
	struct item *it = item;

	assert_null(it->s); /* items come zeroed */
	it->s = strndup(text, len);
	if (!it->s)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	r->made++;
	if (!pthread_equal(pthread_self(), r->caller))
		r->elsewhere++;
	pthread_mutex_unlock(&r->lock);
	/* A refusal after part of the item is made: ahead clears it. */
	return number_of(text, len) == r->fail_work_at ? -EBADMSG : 0;
}

static int done(void *ctx, const char *text, size_t len, void *item, bool made)
{
	struct run *r = ctx;
	struct item *it = item;
	long n = number_of(text, len);

	assert_true(pthread_equal(pthread_self(), r->caller));
	assert_int_equal(n, r->next);
	r->next++;
	if (made) {
		assert_non_null(it->s);
		assert_int_equal(number_of(it->s, strlen(it->s)), n);
		free(it->s);
		it->s = NULL;
	} else {
		assert_null(it->s);
		r->redone++;
	}
	return n == r->fail_done_at ? -EPROTO : 0;
}

static void clear(void *item)
{
	struct item *it = item;

	free(it->s);
	it->s = NULL;
}

static struct ahead *start(struct run *r)
{
	struct ahead *a;

	memset(r, 0, sizeof(*r));
	r->caller = pthread_self();
	r->fail_work_at = r->fail_done_at = -1;
	pthread_mutex_init(&r->lock, NULL);
	assert_int_equal(ahead_new(sizeof(struct item), work, done, clear, r, &a), 0);
	return a;
}

static int put(struct ahead *a, long n)
{
	char text[32];

	snprintf(text, sizeof(text), "e%ld", n);
	return ahead_put(a, text, strlen(text));
}

/* 10,000 elements: every one made on the helper, handed on in order, here. */
static void test_long_answer_in_order(void **state)
{
	struct run r;
	struct ahead *a = start(&r);
	long i;

	(void)state;
	for (i = 0; i < 10000; i++)
		assert_int_equal(put(a, i), 0);
	assert_int_equal(ahead_end(a), 0);
	assert_int_equal(r.next, 10000);
	assert_int_equal(r.made, 10000);
	assert_int_equal(r.elsewhere, 10000);
	assert_int_equal(r.redone, 0);
	ahead_free(a);
}

/* A short answer never starts the helper: done makes every element itself. */
static void test_short_answer_on_the_caller(void **state)
{
	struct run r;
	struct ahead *a = start(&r);
	long i;

	(void)state;
	for (i = 0; i < 100; i++)
		assert_int_equal(put(a, i), 0);
	assert_int_equal(ahead_end(a), 0);
	assert_int_equal(r.next, 100);
	assert_int_equal(r.made, 0);
	assert_int_equal(r.redone, 100);
	ahead_free(a);
}

/* An element work refuses is done again by the caller, in its place. */
static void test_refused_element_is_redone_in_place(void **state)
{
	struct run r;
	struct ahead *a = start(&r);
	long i;

	(void)state;
	r.fail_work_at = 5000;
	for (i = 0; i < 8000; i++)
		assert_int_equal(put(a, i), 0);
	assert_int_equal(ahead_end(a), 0);
	assert_int_equal(r.next, 8000);
	assert_int_equal(r.redone, 1);
	ahead_free(a);
}

/* done's failure stops the answer: it comes back from put or end, nothing after it is
 * handed on, and what was made beyond it is cleared (valgrind: nothing lost). */
static void test_done_failure_stops(void **state)
{
	struct run r;
	struct ahead *a = start(&r);
	long i;
	int rc = 0;

	(void)state;
	r.fail_done_at = 3000;
	for (i = 0; i < 9000 && rc == 0; i++)
		rc = put(a, i);
	assert_true(rc == 0 || rc == -EPROTO);
	assert_int_equal(ahead_end(a), -EPROTO);
	assert_int_equal(r.next, 3001);
	assert_int_equal(put(a, 9000), -EPROTO);
	ahead_free(a);
}

/* A reset drops what is on its way; the answer then starts over. */
static void test_reset_starts_over(void **state)
{
	struct run r;
	struct ahead *a = start(&r);
	long i, before;

	(void)state;
	for (i = 0; i < 2000; i++)
		assert_int_equal(put(a, i), 0);
	ahead_reset(a);
	before = r.next;
	assert_true(before <= 2000);
	r.next = 0;
	for (i = 0; i < 3000; i++)
		assert_int_equal(put(a, i), 0);
	assert_int_equal(ahead_end(a), 0);
	assert_int_equal(r.next, 3000);
	ahead_free(a);
	/* Freed in the middle of an answer: nothing lost either. */
	a = start(&r);
	for (i = 0; i < 2000; i++)
		assert_int_equal(put(a, i), 0);
	ahead_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_answer_in_order),
		cmocka_unit_test(test_short_answer_on_the_caller),
		cmocka_unit_test(test_refused_element_is_redone_in_place),
		cmocka_unit_test(test_done_failure_stops),
		cmocka_unit_test(test_reset_starts_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
