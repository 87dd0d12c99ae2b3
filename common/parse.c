/*
 * parse.c - page ranges ("1-3,7,9-end") and checked number parsing for
 * option values. Everything here rejects junk instead of guessing.
 */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse_page(const char **sp, int32_t *out)
{
	const char *s = *sp;
	long v = 0;

	if (strncmp(s, "end", 3) == 0) {
		*out = ED_RANGE_END;
		*sp = s + 3;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s - '0');
		if (v > 10000000)
			return -1;
		s++;
	}
	if (v < 1)
		return -1;
	*out = (int32_t)v;
	*sp = s;
	return 0;
}

int ed_range_parse(struct ed_range *r, const char *spec, char *err,
		   size_t errlen)
{
	const char *s = spec;

	r->n = 0;
	if (!spec || !*spec)
		return 0;
	for (;;) {
		int32_t lo, hi;

		if (parse_page(&s, &lo) < 0)
			goto bad;
		hi = lo;
		if (*s == '-') {
			s++;
			if (parse_page(&s, &hi) < 0)
				goto bad;
		}
		if (hi < lo)
			return ed_err(err, errlen, ED_EINVAL,
				      "bad page range '%s': %d comes after %d",
				      spec, (int)lo, (int)hi);
		if (r->n == (int)ED_ARRAY_LEN(r->span))
			return ed_err(err, errlen, ED_EINVAL,
				      "bad page range '%s': more than %d parts",
				      spec, (int)ED_ARRAY_LEN(r->span));
		r->span[r->n].lo = lo;
		r->span[r->n].hi = hi;
		r->n++;
		if (*s == '\0')
			return 0;
		if (*s != ',')
			goto bad;
		s++;
	}
bad:
	r->n = 0;
	return ed_err(err, errlen, ED_EINVAL,
		      "bad page range '%s': expected e.g. 1-3,7,9-end", spec);
}

bool ed_range_has(const struct ed_range *r, int p, int last)
{
	int i;

	if (r->n == 0)
		return true;
	for (i = 0; i < r->n; i++) {
		int32_t lo =
		    r->span[i].lo == ED_RANGE_END ? last : r->span[i].lo;
		int32_t hi =
		    r->span[i].hi == ED_RANGE_END ? last : r->span[i].hi;
		if (p >= lo && p <= hi)
			return true;
	}
	return false;
}

int ed_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;

	if (!s || *s < '0' || *s > '9')
		return ED_EINVAL;
	while (*s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return ED_EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
	}
	switch (*s) {
	case '\0': break;
	case 'k':
	case 'K':
		mul = 1ull << 10;
		s++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		s++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		s++;
		break;
	default: return ED_EINVAL;
	}
	if (*s != '\0')
		return ED_EINVAL;
	if (v > UINT64_MAX / mul)
		return ED_EINVAL;
	*out = v * mul;
	return 0;
}

int ed_parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return ED_EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return ED_EINVAL;
	*out = v;
	return 0;
}

int ed_parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return ED_EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < lo || v > hi)
		return ED_EINVAL;
	*out = v;
	return 0;
}
