/*
 * mkmodel.c - write a random-weight ERNIE-4.5 checkpoint in the real
 * on-disk layout, for tests and benchmarks (no weights can be downloaded
 * here): Baidu-style config.json, model.safetensors.index.json with N
 * shards, the -PT tensor names (routers [hidden, experts] in F32,
 * correction bias [2, E], vision experts after the text experts,
 * resampler .0/.2/.3), streamed tensor by tensor so that real-size shapes
 * never sit in memory. Optionally copies a tokenizer directory in and
 * sizes the vocabulary to it.
 *
 * usage: mkmodel DIR [--layout vl|text] [--real-shapes] [--layers N]
 *        [--vit-depth N] [--hidden N] [--heads N] [--kv-heads N]
 *        [--head-dim N] [--inter N] [--experts N] [--moe-k N]
 *        [--expert-inter T,V] [--shared N] [--vit-hidden N]
 *        [--vit-heads N] [--vit-inter N] [--vocab N] [--shards N]
 *        [--dtype bf16|f16|f32] [--seed N] [--tokenizer DIR]
 *        [--moe-start N] [--untied] [--extra]
 *        [--gguf bf16|q8_0|q4_0|q4_k|q6_k]
 *
 * With --gguf the weights go to DIR/model.gguf instead (config.json and
 * the tokenizer as metadata, as `ernie-doc model quantize` writes them):
 * matrices as random blocks of that type, written directly (quantizing
 * tens of GB of random floats would take minutes), norms, biases and
 * routers in F32, the vision tower in BF16.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "model/kernels/kernels.h"
#include "tests/util.h"

struct spec {
	char name[160];
	enum ed_dtype dt;
	int ndim;
	int64_t shape[2];
	int kind; /* 0 matrix, 1 norm (~1), 2 bias (small), 3 router */
	int shard;
	uint64_t off;
};

static struct spec *specs;
static size_t nspecs, capspecs;
static uint64_t rng = 0x853c49e6748fea9bull;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static void add(enum ed_dtype dt, int kind, int64_t d0, int64_t d1,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(enum ed_dtype dt, int kind, int64_t d0, int64_t d1,
		const char *fmt, ...)
{
	va_list ap;
	struct spec *s;

	if (nspecs == capspecs) {
		capspecs = capspecs ? 2 * capspecs : 256;
		specs = realloc(specs, capspecs * sizeof *specs);
		if (!specs)
			abort();
	}
	s = &specs[nspecs++];
	memset(s, 0, sizeof *s);
	va_start(ap, fmt);
	vsnprintf(s->name, sizeof s->name, fmt, ap);
	va_end(ap);
	s->dt = kind == 3 ? ED_DT_F32 : dt;
	s->kind = kind;
	s->ndim = d1 ? 2 : 1;
	s->shape[0] = d0;
	s->shape[1] = d1;
}

static uint64_t bytes(const struct spec *s)
{
	return (uint64_t)s->shape[0] *
	       (uint64_t)(s->ndim == 2 ? s->shape[1] : 1) *
	       ed_model_dtype_size(s->dt);
}

static void write_data(FILE *f, const struct spec *s)
{
	int64_t n = s->shape[0] * (s->ndim == 2 ? s->shape[1] : 1);
	int64_t fan_in = s->ndim == 2 ? s->shape[1] : 1;
	double scale = s->kind == 0 ? 1.0 / sqrt((double)fan_in) : 0.1;
	static unsigned char buf[1 << 16];
	size_t es = ed_model_dtype_size(s->dt), fill = 0;

	for (int64_t i = 0; i < n; i++) {
		double u = urand() * 2 - 1;
		float v;
		switch (s->kind) {
		case 1: v = (float)(1.0 + 0.2 * u); break;
		case 2: v = (float)(0.1 * u); break;
		case 3: v = (float)(u * scale * 4); break;
		default: v = (float)(u * scale * 1.7);
		}
		if (s->dt == ED_DT_F32) {
			memcpy(buf + fill, &v, 4);
		} else {
			uint16_t h = s->dt == ED_DT_BF16 ? ed_k_f32_to_bf16(v)
							 : ed_k_f32_to_f16(v);
			memcpy(buf + fill, &h, 2);
		}
		fill += es;
		if (fill + 4 > sizeof buf) {
			fwrite(buf, 1, fill, f);
			fill = 0;
		}
	}
	fwrite(buf, 1, fill, f);
}

/* Random blocks of a quantized type whose weights lie within about
 * +-amp. */
static void random_blocks(enum ed_dtype dt, unsigned char *p, int64_t n,
			  double amp)
{
	int bl = ed_k_block(dt);
	size_t bb = ed_k_row_bytes(dt, bl);

	for (int64_t b = 0; b < n / bl; b++, p += bb) {
		uint16_t d, dm;
		for (size_t i = 0; i < bb; i++)
			p[i] = (unsigned char)(urand() * 256);
		switch (dt) {
		case ED_DT_Q8_0:
			d = ed_k_f32_to_f16((float)(amp / 127));
			memcpy(p, &d, 2);
			break;
		case ED_DT_Q4_0:
			d = ed_k_f32_to_f16((float)(amp / 8));
			memcpy(p, &d, 2);
			break;
		case ED_DT_Q4_K:
			d = ed_k_f32_to_f16((float)(2 * amp / (15 * 32)));
			dm = ed_k_f32_to_f16((float)(amp / 32));
			memcpy(p, &d, 2);
			memcpy(p + 2, &dm, 2);
			break;
		case ED_DT_Q6_K:
			d = ed_k_f32_to_f16((float)(amp / (32 * 64)));
			memcpy(p + 208, &d, 2);
			break;
		default: break;
		}
	}
}

static int write_gguf(const char *dir, enum ed_dtype qt)
{
	static const char *const side[][2] = {
	    {"added_tokens.json", "ernie_doc.tokenizer.added_tokens"},
	    {"tokenizer_config.json", "ernie_doc.tokenizer.tokenizer_config"},
	    {"special_tokens_map.json",
	     "ernie_doc.tokenizer.special_tokens_map"},
	};
	struct ed_gguf_writer *w;
	char path[4096], err[256];
	size_t n;
	unsigned char *text;

	snprintf(path, sizeof path, "%s/model.gguf", dir);
	if (ed_gguf_writer_open(&w, path, err, sizeof err)) {
		fprintf(stderr, "mkmodel: %s\n", err);
		return 73;
	}
	snprintf(path, sizeof path, "%s/config.json", dir);
	text = t_read_file(path, &n);
	ed_gguf_writer_string(w, "ernie_doc.config", (const char *)text, n);
	free(text);
	snprintf(path, sizeof path, "%s/tokenizer.model", dir);
	if ((text = t_read_file(path, &n))) {
		ed_gguf_writer_bytes(w, "ernie_doc.tokenizer.model", text, n);
		free(text);
	}
	for (size_t k = 0; k < ED_ARRAY_LEN(side); k++) {
		snprintf(path, sizeof path, "%s/%s", dir, side[k][0]);
		if ((text = t_read_file(path, &n))) {
			ed_gguf_writer_string(w, side[k][1], (const char *)text,
					      n);
			free(text);
		}
	}
	for (size_t i = 0; i < nspecs; i++) {
		struct spec *s = &specs[i];
		bool vision =
		    strstr(s->name, "vision") || strstr(s->name, "resampler");
		s->dt = s->kind != 0				 ? ED_DT_F32
			: vision || s->shape[1] % ed_k_block(qt) ? ED_DT_BF16
								 : qt;
		if (ed_gguf_writer_tensor(w, s->name, s->dt, s->ndim,
					  s->shape)) {
			fprintf(stderr, "mkmodel: cannot declare %s\n",
				s->name);
			ed_gguf_writer_abort(w);
			return 70;
		}
	}
	for (size_t i = 0; i < nspecs; i++) {
		struct spec *s = &specs[i];
		int64_t inner = s->ndim == 2 ? s->shape[1] : s->shape[0];
		int64_t rows = s->ndim == 2 ? s->shape[0] : 1;
		size_t rb = ed_k_row_bytes(s->dt, inner);
		unsigned char *buf = malloc(rb * (size_t)rows);
		if (!buf)
			return 70;
		if (ed_k_is_quant(s->dt)) {
			random_blocks(s->dt, buf, inner * rows,
				      1.7 / sqrt((double)inner));
		} else {
			/* floats as the safetensors path makes them */
			FILE *m = fmemopen(buf, rb * (size_t)rows, "wb");
			write_data(m, s);
			fclose(m);
		}
		if (ed_gguf_writer_data(w, buf, rb * (size_t)rows, err,
					sizeof err)) {
			fprintf(stderr, "mkmodel: %s\n", err);
			free(buf);
			ed_gguf_writer_abort(w);
			return 74;
		}
		free(buf);
	}
	if (ed_gguf_writer_close(w, err, sizeof err)) {
		fprintf(stderr, "mkmodel: %s\n", err);
		return 74;
	}
	return 0;
}

static int geti(const char *s)
{
	return (int)strtol(s, NULL, 10);
}

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b;
	char buf[65536];
	size_t n;

	if (!a)
		return errno == ENOENT ? 0 : -1;
	b = fopen(to, "wb");
	if (!b) {
		fclose(a);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	return fclose(b);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *tokdir = NULL;
	bool vl = true, untied = false, extra = false;
	int layers = 3, vit_depth = 2, hidden = 64, heads = 4, kv = 2, hd = 16,
	    inter = 128, experts = 8, moe_k = 2, ei_t = 32, ei_v = 16,
	    shared = 2, vh = 32, vheads = 2, vinter = 128, vocab = 0,
	    shards = 2, seed = 1, moe_start = 1;
	enum ed_dtype dt = ED_DT_BF16, gguf = ED_DT_COUNT;
	char path[4096];
	FILE *f;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (a[0] != '-') {
			dir = a;
			continue;
		}
		if (!strcmp(a, "--real-shapes")) {
			hidden = 2560, heads = 20, kv = 4, hd = 128,
			inter = 12288;
			experts = 64, moe_k = 6, ei_t = 1536, ei_v = 512,
			shared = 2;
			vh = 1280, vheads = 16, vinter = 5120, vocab = 103424;
			layers = 2, vit_depth = 2;
			continue;
		}
		if (!strcmp(a, "--untied")) {
			untied = true;
			continue;
		}
		if (!strcmp(a,
			    "--extra")) { /* a tensor the engine does not use */
			extra = true;
			continue;
		}
		i++;
		if (!strcmp(a, "--layout"))
			vl = strcmp(v, "text") != 0;
		else if (!strcmp(a, "--layers"))
			layers = geti(v);
		else if (!strcmp(a, "--vit-depth"))
			vit_depth = geti(v);
		else if (!strcmp(a, "--hidden"))
			hidden = geti(v);
		else if (!strcmp(a, "--heads"))
			heads = geti(v);
		else if (!strcmp(a, "--kv-heads"))
			kv = geti(v);
		else if (!strcmp(a, "--head-dim"))
			hd = geti(v);
		else if (!strcmp(a, "--inter"))
			inter = geti(v);
		else if (!strcmp(a, "--experts"))
			experts = geti(v);
		else if (!strcmp(a, "--moe-k"))
			moe_k = geti(v);
		else if (!strcmp(a, "--expert-inter"))
			sscanf(v, "%d,%d", &ei_t, &ei_v);
		else if (!strcmp(a, "--shared"))
			shared = geti(v);
		else if (!strcmp(a, "--vit-hidden"))
			vh = geti(v);
		else if (!strcmp(a, "--vit-heads"))
			vheads = geti(v);
		else if (!strcmp(a, "--vit-inter"))
			vinter = geti(v);
		else if (!strcmp(a, "--vocab"))
			vocab = geti(v);
		else if (!strcmp(a, "--shards"))
			shards = geti(v);
		else if (!strcmp(a, "--seed"))
			seed = geti(v);
		else if (!strcmp(a, "--moe-start"))
			moe_start = geti(v);
		else if (!strcmp(a, "--tokenizer"))
			tokdir = v;
		else if (!strcmp(a, "--gguf"))
			gguf = !strcmp(v, "q8_0")   ? ED_DT_Q8_0
			       : !strcmp(v, "q4_0") ? ED_DT_Q4_0
			       : !strcmp(v, "q4_k") ? ED_DT_Q4_K
			       : !strcmp(v, "q6_k") ? ED_DT_Q6_K
						    : ED_DT_BF16;
		else if (!strcmp(a, "--dtype"))
			dt = !strcmp(v, "f32")	 ? ED_DT_F32
			     : !strcmp(v, "f16") ? ED_DT_F16
						 : ED_DT_BF16;
		else {
			fprintf(stderr, "mkmodel: unknown option %s\n", a);
			return 64;
		}
	}
	if (!dir || shards < 1) {
		fprintf(stderr,
			"usage: mkmodel DIR [options] (see the source)\n");
		return 64;
	}
	rng ^= (uint64_t)seed * 0x9E3779B97F4A7C15ull;
	mkdir(dir, 0777);

	/* the tokenizer decides the vocabulary and the special ids */
	int im_start = -1, im_end = -1, im_patch = -1;
	if (tokdir) {
		static const char *files[] = {
		    "tokenizer.model", "added_tokens.json",
		    "tokenizer_config.json", "special_tokens_map.json"};
		char from[4096], to[4096];
		char err[256];
		struct ed_tokenizer *t;
		for (size_t k = 0; k < 4; k++) {
			snprintf(from, sizeof from, "%s/%s", tokdir, files[k]);
			snprintf(to, sizeof to, "%s/%s", dir, files[k]);
			if (copy_file(from, to)) {
				perror(to);
				return 73;
			}
		}
		if (ed_tok_open(&t, dir, err, sizeof err)) {
			fprintf(stderr, "mkmodel: %s\n", err);
			return 65;
		}
		if (ed_tok_size(t) > vocab)
			vocab = ed_tok_size(t);
		im_start = ed_tok_id(t, "<|IMAGE_START|>");
		im_end = ed_tok_id(t, "<|IMAGE_END|>");
		im_patch = ed_tok_id(t, "<|IMAGE_PLACEHOLDER|>");
		ed_tok_close(t);
	}
	if (vocab <= 0)
		vocab = 1024;
	if (im_patch < 0)
		im_patch = vocab > 1001 ? 1001 : vocab - 1;

	/* tensors in the -PT layout */
	add(dt, 0, vocab, hidden, "model.embed_tokens.weight");
	for (int l = 0; l < layers; l++) {
		bool moe = experts > 0 && l >= moe_start;
		add(dt, 1, hidden, 0, "model.layers.%d.input_layernorm.weight",
		    l);
		add(dt, 1, hidden, 0,
		    "model.layers.%d.post_attention_layernorm.weight", l);
		add(dt, 0, heads * hd, hidden,
		    "model.layers.%d.self_attn.q_proj.weight", l);
		add(dt, 0, kv * hd, hidden,
		    "model.layers.%d.self_attn.k_proj.weight", l);
		add(dt, 0, kv * hd, hidden,
		    "model.layers.%d.self_attn.v_proj.weight", l);
		add(dt, 0, hidden, heads * hd,
		    "model.layers.%d.self_attn.o_proj.weight", l);
		if (!moe) {
			add(dt, 0, inter, hidden,
			    "model.layers.%d.mlp.gate_proj.weight", l);
			add(dt, 0, inter, hidden,
			    "model.layers.%d.mlp.up_proj.weight", l);
			add(dt, 0, hidden, inter,
			    "model.layers.%d.mlp.down_proj.weight", l);
			continue;
		}
		if (vl) {
			add(dt, 3, hidden, experts,
			    "model.layers.%d.mlp.gate.weight", l);
			add(dt, 3, hidden, experts,
			    "model.layers.%d.mlp.gate.weight_1", l);
			add(dt, 3, 2, experts,
			    "model.layers.%d.mlp.moe_statics.e_score_"
			    "correction_bias",
			    l);
		} else {
			/* text-only checkpoints: nn.Linear layout [E, H], bias
			 * [1, E] */
			add(dt, 3, experts, hidden,
			    "model.layers.%d.mlp.gate.weight", l);
			add(dt, 3, 1, experts,
			    "model.layers.%d.mlp.moe_statics.e_score_"
			    "correction_bias",
			    l);
		}
		for (int e = 0; e < experts * (vl ? 2 : 1); e++) {
			int I = e < experts ? ei_t : ei_v;
			add(dt, 0, I, hidden,
			    "model.layers.%d.mlp.experts.%d.gate_proj.weight",
			    l, e);
			add(dt, 0, I, hidden,
			    "model.layers.%d.mlp.experts.%d.up_proj.weight", l,
			    e);
			add(dt, 0, hidden, I,
			    "model.layers.%d.mlp.experts.%d.down_proj.weight",
			    l, e);
		}
		if (shared) {
			int I = shared * ei_t;
			add(dt, 0, I, hidden,
			    "model.layers.%d.mlp.shared_experts.gate_proj."
			    "weight",
			    l);
			add(dt, 0, I, hidden,
			    "model.layers.%d.mlp.shared_experts.up_proj.weight",
			    l);
			add(dt, 0, hidden, I,
			    "model.layers.%d.mlp.shared_experts.down_proj."
			    "weight",
			    l);
		}
	}
	add(dt, 1, hidden, 0, "model.norm.weight");
	if (extra)
		add(dt, 0, hidden, hidden, "mtp_block.0.linear.weight");
	if (untied)
		add(dt, 0, vocab, hidden, "lm_head.weight");
	if (vl) {
		int S = vh * 4;
		add(dt, 0, vh, 588, "vision_model.patch_embed.proj.weight");
		for (int b = 0; b < vit_depth; b++) {
			add(dt, 1, vh, 0, "vision_model.blocks.%d.norm1.weight",
			    b);
			add(dt, 2, vh, 0, "vision_model.blocks.%d.norm1.bias",
			    b);
			add(dt, 1, vh, 0, "vision_model.blocks.%d.norm2.weight",
			    b);
			add(dt, 2, vh, 0, "vision_model.blocks.%d.norm2.bias",
			    b);
			add(dt, 0, 3 * vh, vh,
			    "vision_model.blocks.%d.attn.qkv.weight", b);
			add(dt, 2, 3 * vh, 0,
			    "vision_model.blocks.%d.attn.qkv.bias", b);
			add(dt, 0, vh, vh,
			    "vision_model.blocks.%d.attn.proj.weight", b);
			add(dt, 2, vh, 0,
			    "vision_model.blocks.%d.attn.proj.bias", b);
			add(dt, 0, vinter, vh,
			    "vision_model.blocks.%d.mlp.fc1.weight", b);
			add(dt, 2, vinter, 0,
			    "vision_model.blocks.%d.mlp.fc1.bias", b);
			add(dt, 0, vh, vinter,
			    "vision_model.blocks.%d.mlp.fc2.weight", b);
			add(dt, 2, vh, 0, "vision_model.blocks.%d.mlp.fc2.bias",
			    b);
		}
		add(dt, 1, vh, 0, "vision_model.ln.weight");
		add(dt, 2, vh, 0, "vision_model.ln.bias");
		add(dt, 0, S, S,
		    "model.resampler_model.spatial_linear.0.weight");
		add(dt, 2, S, 0, "model.resampler_model.spatial_linear.0.bias");
		add(dt, 0, S, S,
		    "model.resampler_model.spatial_linear.2.weight");
		add(dt, 2, S, 0, "model.resampler_model.spatial_linear.2.bias");
		add(dt, 1, S, 0,
		    "model.resampler_model.spatial_linear.3.weight");
		add(dt, 2, S, 0, "model.resampler_model.spatial_linear.3.bias");
		add(dt, 0, S, 2 * S,
		    "model.resampler_model.temporal_linear.0.weight");
		add(dt, 2, S, 0,
		    "model.resampler_model.temporal_linear.0.bias");
		add(dt, 0, S, S,
		    "model.resampler_model.temporal_linear.2.weight");
		add(dt, 2, S, 0,
		    "model.resampler_model.temporal_linear.2.bias");
		add(dt, 1, S, 0,
		    "model.resampler_model.temporal_linear.3.weight");
		add(dt, 2, S, 0,
		    "model.resampler_model.temporal_linear.3.bias");
		add(dt, 0, hidden, S, "model.resampler_model.mlp.weight");
		add(dt, 2, hidden, 0, "model.resampler_model.mlp.bias");
		add(dt, 1, hidden, 0,
		    "model.resampler_model.after_norm.weight");
	}

	/* shards: contiguous runs of tensors of about equal size */
	if (gguf == ED_DT_COUNT) {
		uint64_t total = 0, acc = 0;
		for (size_t i = 0; i < nspecs; i++)
			total += bytes(&specs[i]);
		for (size_t i = 0; i < nspecs; i++) {
			specs[i].shard =
			    (int)(acc * (uint64_t)shards / (total + 1));
			acc += bytes(&specs[i]);
		}
	}
	for (int sh = 0; gguf == ED_DT_COUNT && sh < shards; sh++) {
		struct ed_buf h;
		uint64_t off = 0, hl;
		size_t pad;
		ed_buf_init(&h, 0);
		ed_buf_putc(&h, '{');
		for (size_t i = 0; i < nspecs; i++) {
			struct spec *s = &specs[i];
			if (s->shard != sh)
				continue;
			s->off = off;
			if (h.len > 1)
				ed_buf_putc(&h, ',');
			ed_buf_printf(
			    &h, "\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld",
			    s->name, ed_model_dtype_name(s->dt),
			    (long long)s->shape[0]);
			if (s->ndim == 2)
				ed_buf_printf(&h, ",%lld",
					      (long long)s->shape[1]);
			ed_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}",
				      (unsigned long long)off,
				      (unsigned long long)(off + bytes(s)));
			off += bytes(s);
		}
		ed_buf_puts(&h, ",\"__metadata__\":{\"format\":\"pt\"}}");
		pad = (8 - h.len % 8) % 8;
		for (size_t k = 0; k < pad; k++)
			ed_buf_putc(&h, ' ');
		snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors",
			 dir, sh + 1, shards);
		f = fopen(path, "wb");
		if (!f) {
			perror(path);
			return 73;
		}
		hl = h.len;
		fwrite(&hl, 8, 1, f);
		fwrite(h.data, 1, h.len, f);
		for (size_t i = 0; i < nspecs; i++)
			if (specs[i].shard == sh)
				write_data(f, &specs[i]);
		if (fclose(f)) {
			perror(path);
			return 74;
		}
		ed_buf_release(&h);
	}
	if (gguf == ED_DT_COUNT) {
		snprintf(path, sizeof path, "%s/model.safetensors.index.json",
			 dir);
		f = fopen(path, "w");
		fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
		for (size_t i = 0; i < nspecs; i++)
			fprintf(
			    f,
			    "%s\n  \"%s\": \"model-%05d-of-%05d.safetensors\"",
			    i ? "," : "", specs[i].name, specs[i].shard + 1,
			    shards);
		fprintf(f, "\n}}\n");
		fclose(f);
	}

	/* config.json in Baidu's original shape */
	snprintf(path, sizeof path, "%s/config.json", dir);
	f = fopen(path, "w");
	fprintf(f,
		"{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
		"  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
		"  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
		"  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
		"  \"vocab_size\": %d,\n  \"rms_norm_eps\": 1e-05,\n"
		"  \"rope_theta\": 500000,\n  \"tie_word_embeddings\": %s,\n"
		"  \"use_bias\": false,\n  \"bos_token_id\": 1,\n"
		"  \"eos_token_id\": 2,\n  \"pad_token_id\": 0,\n",
		vl ? "Ernie4_5_VLMoeForConditionalGeneration"
		   : "Ernie4_5_MoeForCausalLM",
		vl ? "ernie4_5_moe_vl" : "ernie4_5_moe", hidden, inter, layers,
		heads, kv, hd, vocab, untied ? "false" : "true");
	if (experts > 0) {
		if (vl)
			fprintf(f,
				"  \"moe_num_experts\": [%d, %d],\n"
				"  \"moe_intermediate_size\": [%d, %d],\n"
				"  \"moe_layer_start_index\": [%d, %d],\n"
				"  \"moe_layer_end_index\": [%d, %d],\n",
				experts, experts, ei_t, ei_v, moe_start,
				moe_start, layers + 1, layers);
		else
			fprintf(f,
				"  \"moe_num_experts\": %d,\n"
				"  \"moe_intermediate_size\": %d,\n"
				"  \"moe_layer_start_index\": %d,\n"
				"  \"moe_layer_end_index\": -1,\n",
				experts, ei_t, moe_start);
		fprintf(
		    f,
		    "  \"moe_k\": %d,\n  \"moe_num_shared_experts\": %d,\n"
		    "  \"moe_layer_interval\": 1,\n  \"moe_norm_min\": 1e-12,\n"
		    "  \"moe_use_aux_free\": true,\n",
		    moe_k, shared);
	}
	if (vl)
		fprintf(
		    f,
		    "  \"rope_3d\": true,\n  \"freq_allocation\": %d,\n"
		    "  \"im_patch_id\": %d,\n  \"image_start_token_id\": %d,\n"
		    "  \"image_end_token_id\": %d,\n"
		    "  \"spatial_conv_size\": 2,\n  \"temporal_conv_size\": "
		    "2,\n"
		    "  \"pixel_hidden_size\": %d,\n"
		    "  \"vision_config\": {\"depth\": %d, \"embed_dim\": %d, "
		    "\"hidden_size\": %d, \"num_heads\": %d, \"mlp_ratio\": "
		    "%g, "
		    "\"hidden_act\": \"quick_gelu\", \"patch_size\": 14, "
		    "\"in_channels\": 3, \"spatial_merge_size\": 2}\n",
		    hd / 2 - 2 * ((hd / 2) * 11 / 32), im_patch, im_start,
		    im_end, vh, vit_depth, vh, vh, vheads, (double)vinter / vh);
	else
		fprintf(f, "  \"rope_3d\": false\n");
	fprintf(f, "}\n");
	fclose(f);
	if (gguf != ED_DT_COUNT) {
		int rc = write_gguf(dir, gguf);
		free(specs);
		return rc;
	}
	free(specs);
	return 0;
}
