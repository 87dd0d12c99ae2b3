/*
 * fuzz_safetensors.c - untrusted safetensors headers: every tensor the
 * parser accepts must lie inside the buffer, so read all of its bytes.
 */
#include "tests/fuzz/fuzz.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ed_st *st;
	char err[256];
	volatile unsigned sum = 0;

	if (ed_model_st_open_mem(&st, data, size, err, sizeof err))
		return 0;
	for (size_t i = 0; i < ed_model_st_count(st); i++) {
		const struct ed_tensor *t = ed_model_st_at(st, i);
		const unsigned char *p = t->data;
		for (size_t k = 0; k < t->nbytes; k++)
			sum += p[k];
		if (ed_model_st_find(st, t->name) == NULL)
			__builtin_trap();
	}
	ed_model_st_meta(st, "format");
	ed_model_st_close(st);
	return 0;
}

FUZZ_MAIN("fuzz_safetensors")
