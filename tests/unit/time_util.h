/* Wall time for the tests that measure or pace threads (test_events,
 * test_ifdhandler, test_slots): the monotonic clock in microseconds, and a
 * plain sleep. */
#ifndef SMARTCRD_TIME_UTIL_H
#define SMARTCRD_TIME_UTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000u, (long)(ms % 1000u) * 1000000L };

	nanosleep(&ts, NULL);
}

#endif
