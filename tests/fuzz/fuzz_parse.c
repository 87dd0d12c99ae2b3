/*
 * fuzz_parse.c - the small parsers of option values and text: page
 * ranges, sizes, numbers, UTF-8 decoding and cleaning, text statistics.
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[128];
	struct ed_range r;
	struct ed_buf b;
	struct ed_text_stats ts;
	uint64_t v;
	long l;
	double d;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ed_range_parse(&r, s, err, sizeof err) == 0)
		for (int p = 1; p < 40; p++)
			(void)ed_range_has(&r, p, 30);
	(void)ed_parse_size(s, &v);
	(void)ed_parse_int(s, -5, 5, &l);
	(void)ed_parse_double(s, -1e9, 1e9, &d);
	ed_buf_init(&b, 1 << 20);
	if (ed_utf8_clean(&b, (const char *)data, size) == 0 && b.data &&
	    !ed_utf8_valid(b.data, b.len))
		__builtin_trap(); /* cleaning must give valid UTF-8 */
	ed_buf_release(&b);
	(void)ed_utf8_width((const char *)data, size);
	ed_pipeline_text_stats((const char *)data, size, &ts);
	free(s);
	return 0;
}

FUZZ_MAIN("fuzz_parse")
