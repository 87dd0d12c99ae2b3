/*
 * fuzz_gguf.c - the GGUF reader on arbitrary bytes: it must refuse what
 * does not fit and hand out only tensors whose every byte lies in the
 * input (each is dequantized whole here, and its metadata read).
 */
#include "tests/fuzz/fuzz.h"

#include "model/kernels/kernels.h"
#include "model/model.h"

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
