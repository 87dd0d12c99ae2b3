/*
 * fuzz_schema.c - a JSON Schema and a text, whatever they are: the input
 * is a schema, a NUL byte, then bytes. The compiler accepts or refuses
 * with a message; an accepted schema's matcher takes the bytes one by
 * one, and a text it takes whole and calls complete is a value the
 * validator accepts (the grammar never lets through what does not
 * conform). Patterns in the schema exercise the regex compiler.
 */
#include "tests/fuzz/fuzz.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t ns = nul ? (size_t)(nul - data) : size;
	const char *text = nul ? (const char *)nul + 1 : "";
	size_t nt = nul ? size - ns - 1 : 0;
	struct ed_schema *s = NULL;
	struct ed_cstate *st;
	char err[256];
	size_t i;

	if (ed_schema_compile(&s, (const char *)data, ns, err, sizeof err)) {
		if (!err[0])
			__builtin_trap(); /* a refusal says why */
		return 0;
	}
	(void)ed_schema_max_bytes(s);
	if (ed_cstate_new(&st, s)) {
		ed_schema_free(s);
		return 0;
	}
	for (i = 0; i < nt; i++)
		if (ed_schema_feed(s, st, text + i, 1))
			break;
	if (i == nt && ed_cstate_complete(s, st) &&
	    ed_schema_validate(s, text, nt, err, sizeof err))
		__builtin_trap();
	ed_cstate_free(st);
	ed_schema_free(s);
	return 0;
}

FUZZ_MAIN("fuzz_schema")
