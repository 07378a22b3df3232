/* SPDX-License-Identifier: MIT
 * clock.h — the two clocks every module reads, in milliseconds: the monotonic one for
 * how long something took or may still wait (whole seconds from time() would call a
 * 10 ms failure that straddles a second "slow"), the wall one for what is stamped into
 * the catalog and compared with an expiry (SIGHUP) that may fall in the same second.
 */
#ifndef TCIAFS_CLOCK_H
#define TCIAFS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(clockid_t which)
{
	struct timespec ts;

	clock_gettime(which, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static inline int64_t clock_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

#endif
