/*
 * fuzz_config.c - what a user or a checkpoint hands us as text, whatever
 * it is: config.json (Baidu's and transformers' shapes: a config it
 * accepts has shapes that fit together), page ranges ("1-3,7,9-end": an
 * accepted range is in order and selects the pages it names) and the
 * numbers of options (sizes with K/M/G, integers and doubles in bounds).
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[256];
	struct ed_config c;
	struct ed_range r;
	uint64_t u;
	long l;
	double d;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ed_config_parse(&c, s, size, NULL, NULL, err, sizeof err) == 0 &&
	    (c.vocab <= 0 || c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 ||
	     c.layers > ED_MAX_LAYERS))
		__builtin_trap(); /* an accepted config has usable shapes */
	if (ed_range_parse(&r, s, err, sizeof err) == 0) {
		for (int i = 0; i < r.n; i++)
			if (r.span[i].lo < 1 || r.span[i].hi < r.span[i].lo)
				__builtin_trap();
		/* the first page of a span is selected ("end" is the last) */
		if (r.n) {
			int last = 1000000;
			int p = r.span[0].lo == ED_RANGE_END ? last : r.span[0].lo;
			if (p <= last && !ed_range_has(&r, p, last))
				__builtin_trap();
		}
	}
	if (ed_parse_size(s, &u) == 0 && !*s)
		__builtin_trap();
	if (ed_parse_int(s, -5, 5, &l) == 0 && (l < -5 || l > 5))
		__builtin_trap();
	if (ed_parse_double(s, 0, 1, &d) == 0 && !(d >= 0 && d <= 1))
		__builtin_trap();
	free(s);
	return 0;
}

FUZZ_MAIN("fuzz_config")
