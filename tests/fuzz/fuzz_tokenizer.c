/*
 * fuzz_tokenizer.c - untrusted tokenizer.model bytes: the protobuf reader,
 * the normalizer's double-array trie, then encoding and decoding a fixed
 * set of texts through whatever model was accepted.
 */
#include "tests/fuzz/fuzz.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *texts[] = {
	    "Hello  world",
	    "文字识别 😀",
	    "bad \xff\xfe bytes",
	    "",
	    "   x  ",
	    "<unk><s></s> \xe2\x96\x81 tail",
	};
	struct ed_tokenizer *t;
	char err[256];

	if (ed_tok_open_mem(&t, data, size, err, sizeof err))
		return 0;
	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		int32_t *ids = NULL;
		size_t n = 0;
		struct ed_buf b;
		if (ed_tok_encode(t, texts[i], strlen(texts[i]), &ids, &n) ==
		    0) {
			for (size_t k = 0; k < n; k++)
				if (ids[k] < 0 || ids[k] >= ed_tok_size(t))
					__builtin_trap();
			ed_buf_init(&b, 1 << 20);
			ed_tok_decode(t, ids, n, i % 2 == 0, &b);
			ed_buf_release(&b);
		}
		free(ids);
	}
	ed_tok_close(t);
	return 0;
}

FUZZ_MAIN("fuzz_tokenizer")
