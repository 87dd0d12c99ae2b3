/*
 * harness.h - the ~50-line test harness every tests/test_*.c shares.
 * CHECK records a failure and goes on; each binary ends with
 * "<module>: N passed, M failed" and exits non-zero on any failure.
 * Fixtures from ../shared are found through ED_SHARED (default
 * ../shared); tests/run.sh sets it.
 */
#ifndef ED_TEST_HARNESS_H
#define ED_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;
static const char *t_name = "test";

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			t_pass++;                                              \
		} else {                                                       \
			t_fail++;                                              \
			fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__,          \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	CHECK((long long)(a) == (long long)(b), "%s = %lld, want %lld", #a,    \
	      (long long)(a), (long long)(b))

static inline int t_streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

#define CHECK_STR(a, b)                                                        \
	CHECK(t_streq((a), (b)), "%s = '%s', want '%s'", #a,                   \
	      t_streq((a), (a)) ? (a) : "(null)", (b))

static inline const char *t_shared(const char *rel, char *buf, size_t n)
{
	const char *root = getenv("ED_SHARED");
	snprintf(buf, n, "%s/%s", root ? root : "../shared", rel);
	return buf;
}

static inline int t_done(void)
{
	printf("%s: %d passed, %d failed\n", t_name, t_pass, t_fail);
	fflush(stdout); /* before a sanitizer's exit-time report */
	return t_fail ? 1 : 0;
}

#endif
