/*
 * llamacpp.c - llama.cpp's GGUF layout of the ERNIE-4.5 text models
 * (architectures "ernie4_5" and "ernie4_5-moe", spec/LLAMACPP-GGUF.md):
 * the configuration from its metadata keys, the tokenizer from its
 * arrays, and both written back by `model quantize --layout llama.cpp`.
 * The tensors' names are bound in loader.c and written in quantize.c.
 */
#include "model_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ed_llama_layout(const struct ed_gguf *g)
{
	return !ed_gguf_has(g, "ernie_doc.config") &&
	       ed_gguf_has(g, "general.architecture");
}

/* <arch>.<key> */
static const char *akey(char *buf, size_t n, const char *arch, const char *k)
{
	snprintf(buf, n, "%s.%s", arch, k);
	return buf;
}

static bool get_u(const struct ed_gguf *g, const char *arch, const char *k,
		  int *out)
{
	char key[160];
	uint64_t v;

	if (!ed_gguf_uint(g, akey(key, sizeof key, arch, k), &v) ||
	    v > (1u << 30))
		return false;
	*out = (int)v;
	return true;
}

static const struct ed_tensor *find_tensor(const struct ed_gguf *g,
					   const char *name)
{
	for (size_t i = 0; i < ed_gguf_count(g); i++)
		if (strcmp(ed_gguf_at(g, i)->name, name) == 0)
			return ed_gguf_at(g, i);
	return NULL;
}

int ed_llama_config(const struct ed_gguf *g, struct ed_config *c, char *err,
		    size_t errlen)
{
	size_t alen;
	const unsigned char *as =
	    ed_gguf_string(g, "general.architecture", &alen);
	char arch[64], key[160];
	const struct ed_tensor *emb;
	bool moe;
	double f;
	int lead = 0, step = 1, shexp = 0;
	uint64_t id;

	memset(c, 0, sizeof *c);
	if (!as || alen >= sizeof arch)
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF file: no general.architecture");
	memcpy(arch, as, alen);
	arch[alen] = '\0';
	if (strcmp(arch, "ernie4_5") && strcmp(arch, "ernie4_5-moe"))
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF architecture '%s' is not an ERNIE-4.5 "
			      "text model (ernie4_5, ernie4_5-moe)%s",
			      arch,
			      strstr(arch, "vl") || strstr(arch, "paddleocr")
				  ? "; llama.cpp files hold no ERNIE-4.5-VL"
				  : "");
	moe = strcmp(arch, "ernie4_5-moe") == 0;
	/* the HF model_type of the same model */
	snprintf(c->arch, sizeof c->arch, "%s",
		 moe ? "ernie4_5_moe" : "ernie4_5");
	{
		size_t n;
		const unsigned char *s = ed_gguf_string(g, "general.name", &n);
		if (s)
			snprintf(c->name, sizeof c->name, "%.*s", (int)n,
				 (const char *)s);
	}
	if (!get_u(g, arch, "embedding_length", &c->hidden) ||
	    !get_u(g, arch, "block_count", &c->layers) ||
	    !get_u(g, arch, "attention.head_count", &c->heads))
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF file: %s.embedding_length, block_count or "
			      "attention.head_count is missing (or not a "
			      "single count)",
			      arch);
	if (!get_u(g, arch, "attention.head_count_kv", &c->kv_heads))
		c->kv_heads = c->heads;
	if (!get_u(g, arch, "attention.key_length", &c->head_dim))
		c->head_dim = c->heads ? c->hidden / c->heads : 0;
	{
		int vl = c->head_dim, rd = c->head_dim;
		get_u(g, arch, "attention.value_length", &vl);
		get_u(g, arch, "rope.dimension_count", &rd);
		if (vl != c->head_dim || rd != c->head_dim)
			return ed_err(err, errlen, ED_ECONFIG,
				      "GGUF file: value_length %d or "
				      "rope.dimension_count %d differ from the "
				      "key length %d (ERNIE rotates whole "
				      "heads)",
				      vl, rd, c->head_dim);
	}
	get_u(g, arch, "feed_forward_length", &c->dense_inter);
	if (!ed_gguf_float(
		g,
		akey(key, sizeof key, arch, "attention.layer_norm_rms_epsilon"),
		&f))
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF file: %s.attention.layer_norm_rms_epsilon "
			      "is missing",
			      arch);
	c->rms_eps = (float)f;
	/* llama.cpp's default when the key is absent */
	c->rope_theta =
	    ed_gguf_float(g, akey(key, sizeof key, arch, "rope.freq_base"), &f)
		? f
		: 10000.0;
	c->mrope[0] = c->head_dim / 2;
	c->ctx_len = 131072;
	get_u(g, arch, "context_length", &c->ctx_len);
	if (c->layers < 1 || c->layers > ED_MAX_LAYERS)
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF file: %d layers (1 to %d)", c->layers,
			      ED_MAX_LAYERS);
	if (moe) {
		if (!get_u(g, arch, "expert_count", &c->experts[0]) ||
		    !get_u(g, arch, "expert_used_count", &c->moe_k) ||
		    !get_u(g, arch, "expert_feed_forward_length",
			   &c->expert_inter[0]) ||
		    !get_u(g, arch, "interleave_moe_layer_step", &step))
			return ed_err(err, errlen, ED_ECONFIG,
				      "GGUF file: an ernie4_5-moe needs "
				      "expert_count, expert_used_count, "
				      "expert_feed_forward_length and "
				      "interleave_moe_layer_step");
		get_u(g, arch, "leading_dense_block_count", &lead);
		get_u(g, arch, "expert_shared_feed_forward_length", &shexp);
		if (step < 1)
			return ed_err(err, errlen, ED_ECONFIG,
				      "GGUF file: interleave_moe_layer_step 0");
		if (shexp > 0 &&
		    (c->expert_inter[0] <= 0 || shexp % c->expert_inter[0])) {
			return ed_err(
			    err, errlen, ED_ECONFIG,
			    "GGUF file: shared-expert width %d is not "
			    "a multiple of the expert width %d",
			    shexp, c->expert_inter[0]);
		}
		c->shared = shexp > 0 ? shexp / c->expert_inter[0] : 0;
		/* llama.cpp's graph: MoE from the leading dense layers on,
		 * every step-th */
		for (int i = 0; i < c->layers; i++)
			c->moe[i] = i >= lead && (i + 1) % step == 0;
		if (c->experts[0] <= 0 || c->experts[0] > 1024 ||
		    c->moe_k <= 0 || c->moe_k > c->experts[0])
			return ed_err(err, errlen, ED_ECONFIG,
				      "GGUF file: %d experts, %d used",
				      c->experts[0], c->moe_k);
	}
	c->moe_norm_min = 1e-12f; /* transformers'; llama.cpp's 6.1e-5
				     clamp cannot bind (LLAMACPP-GGUF.md 4) */
	c->tie_embeddings = find_tensor(g, "output.weight") == NULL;
	emb = find_tensor(g, "token_embd.weight");
	if (!emb || emb->ndim != 2)
		return ed_err(err, errlen, ED_ECONFIG,
			      "tensor 'token_embd.weight' is missing");
	c->vocab = (int)emb->shape[0];
	c->bos =
	    ed_gguf_uint(g, "tokenizer.ggml.bos_token_id", &id) ? (int)id : 1;
	c->eos =
	    ed_gguf_uint(g, "tokenizer.ggml.eos_token_id", &id) ? (int)id : 2;
	c->pad = ed_gguf_uint(g, "tokenizer.ggml.padding_token_id", &id)
		     ? (int)id
		     : 0;
	c->image = c->image_start = c->image_end = c->video = -1;
	c->video_start = c->video_end = -1;
	if (c->hidden <= 0 || c->heads <= 0 || c->kv_heads <= 0 ||
	    c->head_dim <= 0 || c->head_dim % 2 || c->heads % c->kv_heads)
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF file: bad text shape (hidden %d, heads "
			      "%d/%d, head_dim %d)",
			      c->hidden, c->heads, c->kv_heads, c->head_dim);
	return 0;
}

/* ---- the tokenizer ---------------------------------------------------- */

static int32_t opt_id(const struct ed_gguf *g, const char *key, int32_t def)
{
	uint64_t v;
	return ed_gguf_uint(g, key, &v) && v < (1u << 30) ? (int32_t)v : def;
}

int ed_llama_tokenizer(const struct ed_gguf *g, struct ed_tokenizer **out,
		       char *err, size_t errlen)
{
	struct ed_tok_arrays a = {0};
	const unsigned char *p, *sp = NULL, *tp = NULL;
	size_t len, mlen, slen = 0, tlen = 0;
	uint64_t n, ns = 0, nt = 0;
	int elem, se = 0, te = 0, rc;
	const unsigned char *model;
	bool b;

	*out = NULL;
	if (!ed_gguf_array(g, "tokenizer.ggml.tokens", &elem, &n, &p, &len))
		return ED_ENOENT; /* no vocabulary: no tokenizer */
	model = ed_gguf_string(g, "tokenizer.ggml.model", &mlen);
	if (!model || mlen != 5 || memcmp(model, "llama", 5) != 0)
		return ed_err(err, errlen, ED_ECONFIG,
			      "GGUF tokenizer '%.*s': only SentencePiece "
			      "('llama') vocabularies are ERNIE's",
			      model ? (int)mlen : 4,
			      model ? (const char *)model : "none");
	if (elem != ED_GGUF_STRING || n == 0 || n > (1u << 24))
		return ed_err(err, errlen, ED_ECONFIG,
			      "tokenizer.ggml.tokens is not a list of strings");
	if (ed_gguf_array(g, "tokenizer.ggml.scores", &se, &ns, &sp, &slen) &&
	    (se != ED_GGUF_F32 || ns != n))
		return ed_err(err, errlen, ED_ECONFIG,
			      "tokenizer.ggml.scores: %llu float32 expected",
			      (unsigned long long)n);
	if (ed_gguf_array(g, "tokenizer.ggml.token_type", &te, &nt, &tp,
			  &tlen) &&
	    (te != ED_GGUF_I32 || nt != n))
		return ed_err(err, errlen, ED_ECONFIG,
			      "tokenizer.ggml.token_type: %llu int32 expected",
			      (unsigned long long)n);
	a.n = (int32_t)n;
	a.tok = calloc(n, sizeof *a.tok);
	a.score = sp ? malloc(n * sizeof *a.score) : NULL;
	a.type = tp ? malloc(n * sizeof *a.type) : NULL;
	if (!a.tok || (sp && !a.score) || (tp && !a.type)) {
		ed_tok_arrays_free(&a);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	for (uint64_t i = 0; i < n; i++) {
		/* strings: u64 length, bytes (bounds checked at open) */
		uint64_t sl;
		memcpy(&sl, p, 8);
		if (!(a.tok[i] = malloc(sl + 1))) {
			ed_tok_arrays_free(&a);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		memcpy(a.tok[i], p + 8, sl);
		a.tok[i][sl] = '\0';
		if (strlen(a.tok[i]) != sl) {
			ed_tok_arrays_free(&a);
			return ed_err(err, errlen, ED_ECONFIG,
				      "tokenizer.ggml.tokens: token %llu holds "
				      "a NUL byte",
				      (unsigned long long)i);
		}
		p += 8 + sl;
	}
	if (sp)
		memcpy(a.score, sp, n * 4);
	if (tp)
		memcpy(a.type, tp, n * 4);
	a.unk = opt_id(g, "tokenizer.ggml.unknown_token_id", 0);
	a.bos = opt_id(g, "tokenizer.ggml.bos_token_id", 1);
	a.eos = opt_id(g, "tokenizer.ggml.eos_token_id", 2);
	a.pad = opt_id(g, "tokenizer.ggml.padding_token_id", -1);
	/* llama.cpp's defaults for a "llama" vocabulary */
	a.add_space_prefix =
	    ed_gguf_bool(g, "tokenizer.ggml.add_space_prefix", &b) ? b : true;
	a.remove_extra_ws =
	    ed_gguf_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &b)
		? b
		: false;
	a.prefix_first_only =
	    ed_gguf_bool(g, "ernie_doc.tokenizer.prefix_first_only", &b)
		? b
		: false;
	if ((p = ed_gguf_u8_array(g, "tokenizer.ggml.precompiled_charsmap",
				  &len)) &&
	    len) {
		a.charsmap = malloc(len);
		if (!a.charsmap) {
			ed_tok_arrays_free(&a);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		memcpy(a.charsmap, p, len);
		a.charsmap_len = len;
	}
	rc = ed_tok_open_arrays(out, &a, err, errlen);
	ed_tok_arrays_free(&a);
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

int ed_llama_moe_plan(const struct ed_config *c, int *lead, int *step)
{
	for (int s = 1; s <= c->layers; s++)
		for (int l = 0; l < c->layers; l++) {
			bool ok = true;
			for (int i = 0; i < c->layers && ok; i++)
				ok = c->moe[i] == (i >= l && (i + 1) % s == 0);
			if (ok) {
				*lead = l;
				*step = s;
				return 0;
			}
		}
	return ED_EINVAL;
}

int ed_llama_write_meta(struct ed_gguf_writer *w, const struct ed_model *m,
			const char *name, uint32_t ftype, bool quantized)
{
	const struct ed_config *c = &m->cfg;
	bool moe = c->experts[0] > 0;
	const char *arch = moe ? "ernie4_5-moe" : "ernie4_5";
	char key[160];
	int rc = 0, lead = 0, step = 1;

#define U32(k, v)                                                              \
	(rc |=                                                                 \
	 ed_gguf_writer_u32(w, akey(key, sizeof key, arch, k), (uint32_t)(v)))
	rc |= ed_gguf_writer_string(w, "general.architecture", arch,
				    strlen(arch));
	rc |= ed_gguf_writer_string(w, "general.name", name, strlen(name));
	rc |= ed_gguf_writer_u32(w, "general.file_type", ftype);
	if (quantized)
		rc |= ed_gguf_writer_u32(w, "general.quantization_version", 2);
	rc |= ed_gguf_writer_string(w, "ernie_doc.version", ED_VERSION,
				    strlen(ED_VERSION));
	U32("context_length", c->ctx_len);
	U32("embedding_length", c->hidden);
	U32("block_count", c->layers);
	U32("feed_forward_length", c->dense_inter);
	U32("attention.head_count", c->heads);
	U32("attention.head_count_kv", c->kv_heads);
	U32("attention.key_length", c->head_dim);
	U32("attention.value_length", c->head_dim);
	U32("rope.dimension_count", c->head_dim);
	rc |=
	    ed_gguf_writer_f32(w, akey(key, sizeof key, arch, "rope.freq_base"),
			       (float)c->rope_theta);
	rc |= ed_gguf_writer_f32(
	    w, akey(key, sizeof key, arch, "attention.layer_norm_rms_epsilon"),
	    c->rms_eps);
	if (moe) {
		if (ed_llama_moe_plan(c, &lead, &step))
			return ED_EINVAL;
		U32("expert_count", c->experts[0]);
		U32("expert_used_count", c->moe_k);
		U32("expert_feed_forward_length", c->expert_inter[0]);
		U32("interleave_moe_layer_step", step);
		U32("leading_dense_block_count", lead);
		if (c->shared > 0) {
			U32("expert_shared_count", c->shared);
			/* moe_intermediate_size x shared, as transformers
			 * builds it (not the converter's intermediate / kv
			 * heads, LLAMACPP-GGUF.md 2) */
			U32("expert_shared_feed_forward_length",
			    c->shared * c->expert_inter[0]);
		}
	}
#undef U32
	if (m->chat_template)
		rc |= ed_gguf_writer_string(w, "tokenizer.chat_template",
					    m->chat_template,
					    strlen(m->chat_template));
	if (m->tok) {
		struct ed_tok_arrays a;
		if (ed_tok_export(m->tok, c->vocab, &a))
			return ED_ENOMEM;
		if (a.n != c->vocab) {
			ed_tok_arrays_free(&a);
			return ED_ECONFIG;
		}
		rc |= ed_gguf_writer_string(w, "tokenizer.ggml.model", "llama",
					    5);
		rc |= ed_gguf_writer_string(w, "tokenizer.ggml.pre", "default",
					    7);
		rc |= ed_gguf_writer_strings(w, "tokenizer.ggml.tokens",
					     (const char *const *)a.tok,
					     (size_t)a.n);
		rc |= ed_gguf_writer_f32s(w, "tokenizer.ggml.scores", a.score,
					  (size_t)a.n);
		rc |= ed_gguf_writer_i32s(w, "tokenizer.ggml.token_type",
					  a.type, (size_t)a.n);
		rc |= ed_gguf_writer_u32(
		    w, "tokenizer.ggml.bos_token_id",
		    (uint32_t)(c->bos >= 0 ? c->bos : a.bos));
		rc |= ed_gguf_writer_u32(
		    w, "tokenizer.ggml.eos_token_id",
		    (uint32_t)(c->eos >= 0 ? c->eos : a.eos));
		rc |= ed_gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id",
					 (uint32_t)a.unk);
		if (c->pad >= 0)
			rc |= ed_gguf_writer_u32(
			    w, "tokenizer.ggml.padding_token_id",
			    (uint32_t)c->pad);
		/* the chat templates begin with their own
		 * <|begin_of_sentence|>: no automatic BOS */
		rc |= ed_gguf_writer_bool(w, "tokenizer.ggml.add_bos_token",
					  false);
		rc |= ed_gguf_writer_bool(w, "tokenizer.ggml.add_space_prefix",
					  a.add_space_prefix);
		rc |= ed_gguf_writer_bool(
		    w, "tokenizer.ggml.remove_extra_whitespaces",
		    a.remove_extra_ws);
		rc |= ed_gguf_writer_bool(
		    w, "ernie_doc.tokenizer.prefix_first_only",
		    a.prefix_first_only);
		if (a.charsmap)
			rc |= ed_gguf_writer_bytes(
			    w, "tokenizer.ggml.precompiled_charsmap",
			    a.charsmap, a.charsmap_len);
		ed_tok_arrays_free(&a);
	}
	return rc ? ED_ENOMEM : 0;
}
