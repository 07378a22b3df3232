/* SPDX-License-Identifier: MIT
 * test_spool.c — records kept in memory, then past the bound in an unlinked file, read
 * back at any offset through the window, each record whole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "spool.h"

/* Record i: a length byte count, then i's digits repeated; 9 to 300 bytes long. */
static size_t rec_len(size_t i)
{
	return 9 + (i * 37) % 292;
}

static void rec_fill(char *p, size_t i, size_t len)
{
	size_t k;

	memcpy(p, &len, sizeof(len));
	for (k = sizeof(len); k < len; k++)
		p[k] = (char)('0' + (i + k) % 10);
}

static void write_and_check(size_t count, size_t mem, int want_file)
{
	struct spool s;
	off_t *offs = calloc(count + 1, sizeof(*offs));
	char want[512];
	size_t i;
	int rc = 0;

	assert_non_null(offs);
	assert_int_equal(spool_init(&s, "/tmp", 64, mem), 0);
	for (i = 0; i < count; i++) {
		size_t len = rec_len(i);
		char *p = spool_append(&s, len, &rc);

		assert_non_null(p);
		rec_fill(p, i, len);
		offs[i + 1] = offs[i] + (off_t)len;
	}
	assert_int_equal(spool_finish(&s), 0);
	assert_int_equal(s.fd >= 0, want_file);
	assert_int_equal(spool_size(&s), offs[count]);
	/* Front to back, then backwards (every read moves the window). */
	for (i = 0; i < 2 * count; i++) {
		size_t j = i < count ? i : 2 * count - 1 - i, len = rec_len(j);
		const char *p = spool_at(&s, offs[j], len, &rc);

		assert_non_null(p);
		rec_fill(want, j, len);
		assert_memory_equal(p, want, len);
	}
	assert_null(spool_at(&s, offs[count], 1, &rc));
	spool_clear(&s);
	free(offs);
}

static void test_in_memory(void **state)
{
	(void)state;
	write_and_check(100, 1 << 16, 0);
}

static void test_spilled_to_a_file(void **state)
{
	(void)state;
	write_and_check(5000, 4096, 1);
}

/* A record bigger than the memory bound cannot be held whole: refused, not cut. */
static void test_record_too_big(void **state)
{
	struct spool s;
	int rc = 0;

	(void)state;
	assert_int_equal(spool_init(&s, "/tmp", 64, 1024), 0);
	assert_null(spool_append(&s, 4096, &rc));
	assert_int_equal(rc, -E2BIG);
	spool_clear(&s);
}

/* A folder where no file can be made: the error comes back from the append. */
static void test_no_place_for_the_file(void **state)
{
	struct spool s;
	int rc = 0, i;
	void *p = NULL;

	(void)state;
	assert_int_equal(spool_init(&s, "/nonexistent-spool-dir", 64, 1024), 0);
	for (i = 0; i < 100; i++)
		if (!(p = spool_append(&s, 100, &rc)))
			break;
	assert_null(p);
	assert_true(rc < 0);
	spool_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_spilled_to_a_file),
		cmocka_unit_test(test_record_too_big),
		cmocka_unit_test(test_no_place_for_the_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
