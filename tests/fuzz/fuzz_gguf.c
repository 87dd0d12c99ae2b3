/*
 * fuzz_gguf.c - the GGUF reader on arbitrary bytes: it must refuse what
 * does not fit and hand out only tensors whose every byte lies in the
 * input (each is dequantized whole here, and its metadata read); a
 * file in llama.cpp's layout also gives its config and tokenizer.
 */
#include "tests/fuzz/fuzz.h"

#include "model/kernels/kernels.h"
#include "model/model.h"
#include "model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ed_gguf *g;
	char err[256];
	size_t n;
	uint64_t v;

	if (ed_gguf_open_mem(&g, data, size, err, sizeof err))
		return 0;
	(void)ed_gguf_string(g, "ernie_doc.config", &n);
	(void)ed_gguf_u8_array(g, "ernie_doc.tokenizer.model", &n);
	(void)ed_gguf_uint(g, "general.alignment", &v);
	if (ed_llama_layout(g)) {
		/* llama.cpp's layout: its config and tokenizer arrays */
		struct ed_config c;
		struct ed_tokenizer *t = NULL;
		(void)ed_llama_config(g, &c, err, sizeof err);
		if (ed_llama_tokenizer(g, &t, err, sizeof err) == 0) {
			int32_t *ids = NULL;
			size_t ni = 0;
			ed_tok_encode(t, "a aA<|x|>", 9, &ids, &ni);
			free(ids);
			ed_tok_close(t);
		}
	}
	for (size_t i = 0; i < ed_gguf_count(g); i++) {
		const struct ed_tensor *t = ed_gguf_at(g, i);
		const unsigned char *p = t->data;
		int64_t inner = t->shape[t->ndim - 1];
		size_t rb = ed_k_row_bytes(t->dtype, inner);
		float row[4096];
		if (p < (const unsigned char *)data ||
		    p + t->nbytes > (const unsigned char *)data + size)
			__builtin_trap(); /* a tensor outside the input */
		for (size_t off = 0;
		     rb && inner <= 4096 && off + rb <= t->nbytes; off += rb)
			ed_k_dequantize_row(t->dtype, p + off, row, inner);
	}
	ed_gguf_close(g);
	return 0;
}

FUZZ_MAIN("fuzz_gguf")
