/*
 * clock.c - monotonic durations (timings stored per page) and UTC stamps
 * (added_at, started_at columns).
 */
#include "common.h"

#include <time.h>

double ed_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void ed_utc_iso8601(char out[21])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
