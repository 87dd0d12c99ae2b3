/*
 * fuzz_rules.c - a user's rules file, whatever it holds: the bytes up to
 * the first 0xFF are the file ("NAME PATTERN" lines of PCRE2), the rest
 * the page text they run on. A file it accepts keeps the built-in rules
 * first, and every field it finds has a non-empty span inside the text
 * and a value no longer than the text.
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xFF, size);
	size_t nr = sep ? (size_t)(sep - data) : size;
	const char *text = sep ? (const char *)sep + 1 : "";
	size_t nt = sep ? size - nr - 1 : 0;
	const struct ed_store_field *f;
	struct ed_rules *rs;
	struct ed_arena a;
	char err[512];
	size_t n;

	if (ed_pipeline_rules_parse(&rs, (const char *)data, nr, "fuzz", err,
				    sizeof err))
		return 0;
	ed_arena_init(&a, 4096);
	if (ed_pipeline_rules_run(rs, text, nt, &a, &f, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (f[i].start < 0 || f[i].end <= f[i].start ||
			    (size_t)f[i].end > nt || !f[i].value ||
			    strlen(f[i].value) > nt || !f[i].name)
				__builtin_trap();
	ed_arena_release(&a);
	ed_pipeline_rules_free(rs);
	return 0;
}

FUZZ_MAIN("fuzz_rules")
