/* SPDX-License-Identifier: MIT
 * Unit tests for http_fleet.c against a small HTTP server of the test's own on loopback:
 * many whole objects at once, each checked against its MD5; a range checked against its
 * Content-Range; a body longer than expected refused; a cancel that ends a transfer
 * which would trickle for minutes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"

#define OBJ_LEN 1000
/* The MD5 of OBJ_LEN bytes "0123456789" repeated (md5sum). */
#define OBJ_MD5 "427008b3fe192f663d665f56cd75716c"

static int srv_fd = -1;
static int srv_port;
static pthread_t srv_thread;
static int srv_conns; /* __atomic: connection threads still running */

static void obj_bytes(char *out)
{
	int i;

	for (i = 0; i < OBJ_LEN; i++)
		out[i] = (char)('0' + i % 10);
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* One request a connection: /obj (Range honoured), /liar (a 206 naming another range),
 * /slow (a byte every 100 ms, for ever). */
static void *srv_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[4096] = "", head[256], body[OBJ_LEN];
	unsigned long a = 0, b = OBJ_LEN - 1;
	size_t n = 0;
	ssize_t r;
	const char *rng;

	while (n < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		req[n] = '\0';
	}
	obj_bytes(body);
	rng = strstr(req, "Range: bytes=");
	if (rng)
		sscanf(rng, "Range: bytes=%lu-%lu", &a, &b);
	if (strncmp(req, "GET /slow", 9) == 0) {
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
			 "Connection: close\r\n\r\n");
		send_all(fd, head, strlen(head));
		for (int i = 0; i < 600; i++) {
			struct timespec ts = { 0, 100 * 1000000L };

			if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
				break;
			nanosleep(&ts, NULL);
		}
	} else if (rng) {
		int lie = strncmp(req, "GET /liar", 9) == 0;

		snprintf(head, sizeof(head),
			 "HTTP/1.1 206 Partial Content\r\nContent-Length: %lu\r\n"
			 "Content-Range: bytes %lu-%lu/%d\r\nConnection: close\r\n\r\n",
			 b - a + 1, a + (unsigned long)lie, b + (unsigned long)lie, OBJ_LEN);
		send_all(fd, head, strlen(head));
		send_all(fd, body + a, b - a + 1);
	} else {
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
			 "Connection: close\r\n\r\n",
			 OBJ_LEN);
		send_all(fd, head, strlen(head));
		send_all(fd, body, OBJ_LEN);
	}
out:
	close(fd);
	__atomic_sub_fetch(&srv_conns, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(srv_fd, NULL, NULL);
		pthread_t t;

		if (c < 0)
			return NULL;
		__atomic_add_fetch(&srv_conns, 1, __ATOMIC_RELAXED);
		if (pthread_create(&t, NULL, srv_conn, (void *)(intptr_t)c) == 0) {
			pthread_detach(t);
		} else {
			close(c);
			__atomic_sub_fetch(&srv_conns, 1, __ATOMIC_RELAXED);
		}
	}
}

static int srv_start(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (srv_fd < 0 || bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(srv_fd, 64) < 0 || getsockname(srv_fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	srv_port = ntohs(sa.sin_port);
	return pthread_create(&srv_thread, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

/* The server stops, and its threads end, before the process does (valgrind). */
static int srv_stop(void **state)
{
	int i;

	(void)state;
	shutdown(srv_fd, SHUT_RDWR);
	pthread_join(srv_thread, NULL);
	close(srv_fd);
	for (i = 0; i < 100 && __atomic_load_n(&srv_conns, __ATOMIC_RELAXED) > 0; i++)
		usleep(20000);
	return 0;
}

/* ---- the jobs' ends ------------------------------------------------------------------ */

struct ends {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int rc[64];
};

struct end {
	struct ends *e;
	int slot;
};

static void on_done(void *arg, int rc)
{
	struct end *x = arg;

	pthread_mutex_lock(&x->e->lock);
	x->e->rc[x->slot] = rc;
	x->e->done++;
	pthread_cond_broadcast(&x->e->cond);
	pthread_mutex_unlock(&x->e->lock);
}

static void wait_ends(struct ends *e, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&e->lock);
	while (e->done < n)
		if (pthread_cond_timedwait(&e->cond, &e->lock, &ts) != 0)
			break;
	assert_int_equal(e->done, n);
	pthread_mutex_unlock(&e->lock);
}

static struct http *new_client(void)
{
	struct http_opts o = { .connect_timeout = 5, .stall_timeout = 30, .retries = 0 };
	struct http *http;

	assert_int_equal(http_new(&o, &http), 0);
	return http;
}

static void url_of(char *url, size_t size, const char *path)
{
	snprintf(url, size, "http://127.0.0.1:%d%s", srv_port, path);
}

/* ---- the tests ----------------------------------------------------------------------- */

static void test_many_whole_objects_checked_by_md5(void **state)
{
	struct ends e = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { 0 } };
	struct end x[24];
	char url[128], want[OBJ_LEN], got[OBJ_LEN];
	struct http *http = new_client();
	struct http_fleet *f;
	FILE *tmp[24];
	uint64_t id;
	int i;

	(void)state;
	obj_bytes(want);
	assert_int_equal(http_fleet_new(http, 4, &f), 0);
	url_of(url, sizeof(url), "/obj");
	for (i = 0; i < 24; i++) {
		/* The last four are told another MD5: refused. */
		struct http_job job = { .url = url,
					.length = OBJ_LEN,
					.md5 = i < 20 ? OBJ_MD5
						      : "0123456789abcdef0123456789abcdef",
					.urgent = i % 7 == 0,
					.done = on_done,
					.arg = &x[i] };

		tmp[i] = tmpfile();
		assert_non_null(tmp[i]);
		job.fd = fileno(tmp[i]);
		x[i] = (struct end){ &e, i };
		assert_int_equal(http_fleet_add(f, &job, &id), 0);
	}
	wait_ends(&e, 24);
	for (i = 0; i < 24; i++) {
		assert_int_equal(e.rc[i], i < 20 ? 0 : -EIO);
		if (i < 20) {
			assert_int_equal(pread(fileno(tmp[i]), got, OBJ_LEN, 0), OBJ_LEN);
			assert_memory_equal(got, want, OBJ_LEN);
		}
		fclose(tmp[i]);
	}
	http_fleet_free(f);
	http_free(http);
}

static void test_ranges_and_lengths_are_checked(void **state)
{
	struct ends e = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { 0 } };
	struct end x[4] = { { &e, 0 }, { &e, 1 }, { &e, 2 }, { &e, 3 } };
	char obj[128], liar[128], want[OBJ_LEN], got[100];
	struct http *http = new_client();
	struct http_fleet *f;
	FILE *tmp = tmpfile();
	uint64_t id;

	(void)state;
	obj_bytes(want);
	url_of(obj, sizeof(obj), "/obj");
	url_of(liar, sizeof(liar), "/liar");
	assert_non_null(tmp);
	assert_int_equal(http_fleet_new(http, 16, &f), 0);
	/* Bytes 300-399, written at their own offset: the right range. */
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = obj,
							    .fd = fileno(tmp),
							    .offset = 300,
							    .length = 100,
							    .ranged = true,
							    .total = OBJ_LEN,
							    .done = on_done,
							    .arg = &x[0] },
					&id),
			 0);
	/* A 206 that names another range. */
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = liar,
							    .fd = fileno(tmp),
							    .offset = 500,
							    .length = 100,
							    .ranged = true,
							    .total = OBJ_LEN,
							    .done = on_done,
							    .arg = &x[1] },
					&id),
			 0);
	/* The object is not the size it was said to be: longer, then shorter. */
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = obj,
							    .fd = fileno(tmp),
							    .offset = 0,
							    .length = OBJ_LEN - 1,
							    .done = on_done,
							    .arg = &x[2] },
					&id),
			 0);
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = obj,
							    .fd = fileno(tmp),
							    .offset = 0,
							    .length = OBJ_LEN + 1,
							    .done = on_done,
							    .arg = &x[3] },
					&id),
			 0);
	wait_ends(&e, 4);
	assert_int_equal(e.rc[0], 0);
	assert_int_equal(e.rc[1], -EIO);
	assert_int_equal(e.rc[2], -EIO);
	assert_int_equal(e.rc[3], -EIO);
	/* A range with an MD5, or of nothing, is a caller's mistake. */
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = obj,
							    .fd = fileno(tmp),
							    .length = 10,
							    .ranged = true,
							    .md5 = OBJ_MD5,
							    .done = on_done },
					&id),
			 -EINVAL);
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = obj,
							    .fd = fileno(tmp),
							    .length = 0,
							    .done = on_done },
					&id),
			 -EINVAL);
	http_fleet_free(f);
	/* Checked after the fleet is gone: the failed jobs wrote over bytes 0-998 too. */
	assert_int_equal(pread(fileno(tmp), got, 100, 300), 100);
	assert_memory_equal(got, want + 300, 100);
	fclose(tmp);
	http_free(http);
}

static void test_a_cancel_ends_what_is_in_flight(void **state)
{
	struct ends e = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { 0 } };
	struct end x[3] = { { &e, 0 }, { &e, 1 }, { &e, 2 } };
	struct http *http = new_client();
	struct http_fleet *f;
	FILE *tmp = tmpfile();
	char slow[128];
	time_t t0;
	uint64_t id;
	int i;

	(void)state;
	url_of(slow, sizeof(slow), "/slow");
	assert_non_null(tmp);
	/* One stream: the first trickles, the others wait in the queue. */
	assert_int_equal(http_fleet_new(http, 1, &f), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(http_fleet_add(f,
						&(struct http_job){ .url = slow,
								    .fd = fileno(tmp),
								    .length = 1000000,
								    .done = on_done,
								    .arg = &x[i] },
						&id),
				 0);
	sleep(1);
	t0 = time(NULL);
	http_fleet_cancel(f);
	wait_ends(&e, 3);
	assert_true(time(NULL) - t0 <= 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(e.rc[i], -ECANCELED);
	assert_int_equal(http_fleet_add(f,
					&(struct http_job){ .url = slow,
							    .fd = fileno(tmp),
							    .length = 1,
							    .done = on_done,
							    .arg = &x[0] },
					&id),
			 -ECANCELED);
	http_fleet_free(f);
	http_fleet_free(NULL);
	fclose(tmp);
	http_free(http);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_whole_objects_checked_by_md5),
		cmocka_unit_test(test_ranges_and_lengths_are_checked),
		cmocka_unit_test(test_a_cancel_ends_what_is_in_flight),
	};

	int rc;

	http_global_init();
	rc = cmocka_run_group_tests(tests, srv_start, srv_stop);
	http_global_cleanup();
	return rc;
}
