/*
 * fuzz_encode.c - the tokenizer's encode and decode on any text, through
 * a fixed vocabulary shaped like ERNIE's (byte fallback, pieces with and
 * without U+2581 that compete in the merges, CJK pieces, control and
 * user-defined tokens matched whole). Every id is in the vocabulary, the
 * SentencePiece part alone never yields a control token (user-defined
 * ones it matches whole, as SentencePiece does), and valid UTF-8
 * free of U+2581, added tokens and a leading space decodes back to
 * itself.
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "model/model.h"

static const char *const pieces[] = {
    "\xe2\x96\x81",
    "\xe2\x96\x81t",
    "\xe2\x96\x81th",
    "\xe2\x96\x81the",
    "he",
    "th",
    "in",
    "\xe2\x96\x81in",
    "ing",
    "\xe2\x96\x81\xe2\x96\x81",
    "er",
    "\xe6\x96\x87",
    "\xe6\x96\x87\xe5\xad\x97",
    "\xe5\xad\x97",
    "ab",
    "abc",
    "bc",
    "\xe2\x96\x81"
    "a",
    "1",
    "12",
    "0.",
};
static const char *const added[] = {
    "<|IMAGE_PLACEHOLDER|>",
    "<think>",
    "</think>",
    "<|end_of_sentence|>",
};

static struct ed_tokenizer *vocab(void)
{
	enum { NP = sizeof pieces / sizeof *pieces };
	enum { NA = sizeof added / sizeof *added };
	static char bytes[256][8];
	char *tok[3 + 256 + NP + NA];
	float score[3 + 256 + NP + NA];
	int32_t type[3 + 256 + NP + NA];
	struct ed_tok_arrays a = {0};
	struct ed_tokenizer *t = NULL;
	char err[256];
	int32_t n = 0;

	tok[n] = "<unk>", type[n] = 2, score[n++] = 0;
	tok[n] = "<s>", type[n] = 3, score[n++] = 0;
	tok[n] = "</s>", type[n] = 3, score[n++] = 0;
	for (int i = 0; i < 256; i++) {
		snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
		tok[n] = bytes[i], type[n] = 6, score[n++] = 0;
	}
	for (int i = 0; i < NP; i++)
		tok[n] = (char *)pieces[i], type[n] = 1,
		score[n++] = -(float)(i % 7) - 0.5f * (float)i;
	for (int i = 0; i < NA; i++)
		tok[n] = (char *)added[i], type[n] = i == NA - 1 ? 3 : 4,
		score[n++] = 0;
	a = (struct ed_tok_arrays){.n = n,
				   .tok = tok,
				   .score = score,
				   .type = type,
				   .unk = 0,
				   .bos = 1,
				   .eos = 2,
				   .pad = -1,
				   .add_space_prefix = true};
	if (ed_tok_open_arrays(&t, &a, err, sizeof err))
		__builtin_trap();
	return t;
}

static bool has(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);

	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(s + i, w, k))
			return true;
	return false;
}

/* no added token, no U+2581, no leading space (the dummy prefix is
 * taken off once on decoding, as SentencePiece does), valid UTF-8 */
static bool plain(const char *s, size_t n)
{
	if ((n && s[0] == ' ') || has(s, n, "\xe2\x96\x81") ||
	    has(s, n, "<s>") || has(s, n, "</s>") || has(s, n, "<unk>") ||
	    memchr(s, '\0', n) || !ed_utf8_valid(s, n))
		return false;
	for (size_t k = 0; k < sizeof added / sizeof *added; k++)
		if (has(s, n, added[k]))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ed_tokenizer *t;
	const char *s = (const char *)data;
	int32_t *ids = NULL, *spm = NULL;
	size_t n = 0, ns = 0;
	struct ed_buf b;

	if (!t)
		t = vocab();
	if (ed_tok_encode(t, s, size, &ids, &n) ||
	    ed_tok_encode_spm(t, s, size, &spm, &ns))
		__builtin_trap(); /* only out of memory */
	for (size_t k = 0; k < n; k++)
		if (ids[k] < 0 || ids[k] >= ed_tok_size(t))
			__builtin_trap();
	for (size_t k = 0; k < ns; k++)
		if (spm[k] < 0 || spm[k] >= ed_tok_size(t) || spm[k] == 1 ||
		    spm[k] == 2 || spm[k] == ed_tok_size(t) - 1)
			__builtin_trap();
	ed_buf_init(&b, 1 << 24);
	if (ed_tok_decode(t, ids, n, false, &b))
		__builtin_trap();
	if (plain(s, size) &&
	    (b.len != size || (size && memcmp(b.data, s, size))))
		__builtin_trap();
	ed_buf_release(&b);
	free(ids);
	free(spm);
	return 0;
}

FUZZ_MAIN("fuzz_encode")
