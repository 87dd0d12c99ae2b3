/*
 * loader.c - open a checkpoint: a directory (config.json, the safetensors
 * shards of model.safetensors.index.json or a single model.safetensors,
 * the tokenizer) or one GGUF file holding all of it (config and tokenizer
 * as metadata, spec/QUANT.md). Every tensor the config implies is looked up by
 * its on-disk
 * (-PT) name, checked for dtype and shape, and bound in place; small
 * tensors (norms, biases, routers) are converted to float32 once. Unknown
 * tensors are counted and reported through the note callback.
 */
#include "model_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- name -> tensor ------------------------------------------------ */

struct slot {
	const struct ed_tensor *t;
	bool used;
};

struct binder {
	struct ed_model *m;
	struct slot *tab;
	size_t cap;
	char *err;
	size_t errlen;
	int rc;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct slot *lookup(struct binder *b, const char *name)
{
	size_t i = (size_t)fnv(name) & (b->cap - 1);

	while (b->tab[i].t) {
		if (strcmp(b->tab[i].t->name, name) == 0)
			return &b->tab[i];
		i = (i + 1) & (b->cap - 1);
	}
	return NULL;
}

/* The i-th tensor of shard s (a GGUF file is one shard). */
static size_t shard_count(const struct ed_model *m, int s)
{
	return m->gguf ? ed_gguf_count(m->gguf)
		       : ed_model_st_count(m->shards[s]);
}

static const struct ed_tensor *shard_at(const struct ed_model *m, int s,
					size_t k)
{
	return m->gguf ? ed_gguf_at(m->gguf, k)
		       : ed_model_st_at(m->shards[s], k);
}

static int index_tensors(struct binder *b)
{
	size_t n = 0;

	for (int s = 0; s < b->m->n_shards; s++)
		n += shard_count(b->m, s);
	b->cap = 16;
	while (b->cap < 2 * n)
		b->cap *= 2;
	b->tab = calloc(b->cap, sizeof *b->tab);
	if (!b->tab)
		return ed_err(b->err, b->errlen, ED_ENOMEM, "out of memory");
	for (int s = 0; s < b->m->n_shards; s++)
		for (size_t k = 0; k < shard_count(b->m, s); k++) {
			const struct ed_tensor *t = shard_at(b->m, s, k);
			size_t i = (size_t)fnv(t->name) & (b->cap - 1);
			while (b->tab[i].t) {
				if (strcmp(b->tab[i].t->name, t->name) == 0)
					return ed_err(
					    b->err, b->errlen, ED_ECONFIG,
					    "tensor '%s' is in two shards",
					    t->name);
				i = (i + 1) & (b->cap - 1);
			}
			b->tab[i].t = t;
			b->m->bytes_by_dtype[t->dtype] += (int64_t)t->nbytes;
		}
	b->m->n_tensors = (int)n;
	return 0;
}

/* ---- binding ------------------------------------------------------- */

/* A tensor of ndim dimensions d (torch order); a 2-D [1, n] also passes
 * for a 1-D [n] (llama.cpp keeps HF's [1, E] bias as ne [E, 1]). */
static const struct ed_tensor *need_n(struct binder *b, const char *name,
				      int ndim, const int64_t *d, bool quant_ok)
{
	struct slot *s;
	const struct ed_tensor *t;
	bool ok;

	if (b->rc)
		return NULL;
	s = lookup(b, name);
	if (!s) {
		b->rc = ed_err(b->err, b->errlen, ED_ECONFIG,
			       "tensor '%s' is missing", name);
		return NULL;
	}
	t = s->t;
	s->used = true;
	if (t->dtype != ED_DT_BF16 && t->dtype != ED_DT_F16 &&
	    t->dtype != ED_DT_F32 && !(quant_ok && ed_k_is_quant(t->dtype))) {
		b->rc = ed_err(b->err, b->errlen, ED_ECONFIG,
			       "tensor '%s' is %s; BF16, F16 or F32 expected%s",
			       name, ed_model_dtype_name(t->dtype),
			       quant_ok ? " (or a ggml block format)" : "");
		return NULL;
	}
	ok = t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		ok = t->shape[i] == d[i];
	if (!ok && ndim == 1 && b->m->llama && t->ndim == 2 &&
	    t->shape[0] == 1 && t->shape[1] == d[0])
		ok = true;
	if (!ok) {
		char got[96], want[96];
		size_t o = 0, w = 0;
		for (int i = 0; i < t->ndim && i < 4; i++)
			o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld",
					      i ? ", " : "[",
					      (long long)t->shape[i]);
		snprintf(got + o, sizeof got - o, "%s",
			 t->ndim > 4 ? ", ...]" : "]");
		for (int i = 0; i < ndim; i++)
			w += (size_t)snprintf(want + w, sizeof want - w,
					      "%s%lld", i ? ", " : "[",
					      (long long)d[i]);
		snprintf(want + w, sizeof want - w, "]");
		b->rc = ed_err(
		    b->err, b->errlen, ED_ECONFIG,
		    "tensor '%s' has shape %s, %s implies %s", name, got,
		    b->m->llama ? "the GGUF metadata" : "config.json", want);
		return NULL;
	}
	return t;
}

static const struct ed_tensor *need(struct binder *b, const char *name,
				    int ndim, int64_t d0, int64_t d1,
				    bool quant_ok)
{
	int64_t d[2] = {d0, d1};
	return need_n(b, name, ndim, d, quant_ok);
}

static struct ed_wt mat(struct binder *b, const char *name, int64_t rows,
			int64_t cols)
{
	const struct ed_tensor *t = need(b, name, 2, rows, cols, true);
	struct ed_wt w = {0};

	if (t) {
		w.data = t->data;
		w.dt = t->dtype;
		w.rows = rows;
		w.cols = cols;
	}
	return w;
}

/* A 1-D (or 2-D) tensor converted to float32 in the model's arena. */
static const float *small(struct binder *b, const char *name, int ndim,
			  int64_t d0, int64_t d1)
{
	const struct ed_tensor *t = need(b, name, ndim, d0, d1, false);
	size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
	float *f;

	if (!t)
		return NULL;
	f = ed_arena_alloc(&b->m->params, n * sizeof *f);
	b->m->params_bytes += (int64_t)(n * sizeof *f);
	if (!f) {
		b->rc = ed_err(b->err, b->errlen, ED_ENOMEM, "out of memory");
		return NULL;
	}
	ed_k_to_f32(f, t->data, t->dtype, n);
	return f;
}

static bool has(struct binder *b, const char *name)
{
	return lookup(b, name) != NULL;
}

static void bind_layer(struct binder *b, int i)
{
	const struct ed_config *c = &b->m->cfg;
	struct ed_layer *L = &b->m->layers[i];
	int64_t H = c->hidden, qd = (int64_t)c->heads * c->head_dim,
		kvd = (int64_t)c->kv_heads * c->head_dim;
	char n[160];

#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
	L->ln_in = small(b, NAME("model.layers.%d.input_layernorm.weight", i),
			 1, H, 0);
	L->ln_post =
	    small(b, NAME("model.layers.%d.post_attention_layernorm.weight", i),
		  1, H, 0);
	L->q =
	    mat(b, NAME("model.layers.%d.self_attn.q_proj.weight", i), qd, H);
	L->k =
	    mat(b, NAME("model.layers.%d.self_attn.k_proj.weight", i), kvd, H);
	L->v =
	    mat(b, NAME("model.layers.%d.self_attn.v_proj.weight", i), kvd, H);
	L->o =
	    mat(b, NAME("model.layers.%d.self_attn.o_proj.weight", i), H, qd);
	L->moe = c->moe[i];
	if (!L->moe) {
		int64_t I = c->dense_inter;
		L->gate = mat(
		    b, NAME("model.layers.%d.mlp.gate_proj.weight", i), I, H);
		L->up =
		    mat(b, NAME("model.layers.%d.mlp.up_proj.weight", i), I, H);
		L->down = mat(
		    b, NAME("model.layers.%d.mlp.down_proj.weight", i), H, I);
		return;
	}
	for (int p = 0; p < 2; p++) {
		int E = c->experts[p];
		int64_t I = c->expert_inter[p];

		if (E <= 0)
			continue;
		/* routers, kept as [experts][hidden] (a weight matrix for
		 * ed_k_matmul): text-only checkpoints store nn.Linear's
		 * [experts, hidden]; the VL -PT files store [hidden, experts]
		 * (logits = x . W), transposed here once */
		NAME("model.layers.%d.mlp.gate.weight%s", i, p ? "_1" : "");
		if (has(b, n) && lookup(b, n)->t->ndim == 2 &&
		    lookup(b, n)->t->shape[0] == E && E != H) {
			L->router[p] = small(b, n, 2, E, H);
		} else {
			const struct ed_tensor *t = need(b, n, 2, H, E, false);
			float *tr =
			    t ? ed_arena_alloc(&b->m->params,
					       (size_t)(E * H) * sizeof *tr)
			      : NULL;
			float *row = malloc((size_t)E * sizeof *row);
			size_t es = t ? ed_model_dtype_size(t->dtype) : 0;
			if (!t || !tr || !row) {
				free(row);
				if (!b->rc)
					b->rc =
					    ed_err(b->err, b->errlen, ED_ENOMEM,
						   "out of memory");
				return;
			}
			b->m->params_bytes += E * H * (int64_t)sizeof *tr;
			for (int64_t h = 0; h < H; h++) {
				ed_k_to_f32(row,
					    (const char *)t->data +
						(size_t)(h * E) * es,
					    t->dtype, (size_t)E);
				for (int e = 0; e < E; e++)
					tr[e * H + h] = row[e];
			}
			free(row);
			L->router[p] = tr;
		}
		L->experts[p] = calloc((size_t)E, sizeof(struct ed_expert));
		if (!L->experts[p]) {
			b->rc = ed_err(b->err, b->errlen, ED_ENOMEM,
				       "out of memory");
			return;
		}
		for (int e = 0; e < E; e++) {
			int j =
			    p * c->experts[0] + e; /* vision experts follow */
			struct ed_expert *x = &L->experts[p][e];
			x->gate = mat(b,
				      NAME("model.layers.%d.mlp.experts.%d."
					   "gate_proj.weight",
					   i, j),
				      I, H);
			x->up = mat(
			    b,
			    NAME(
				"model.layers.%d.mlp.experts.%d.up_proj.weight",
				i, j),
			    I, H);
			x->down = mat(b,
				      NAME("model.layers.%d.mlp.experts.%d."
					   "down_proj.weight",
					   i, j),
				      H, I);
		}
	}
	/* correction bias: [2, E] (VL: row 0 text, row 1 vision) or [E] */
	NAME("model.layers.%d.mlp.moe_statics.e_score_correction_bias", i);
	if (has(b, n)) {
		const struct ed_tensor *t = lookup(b, n)->t;
		int rows = c->experts[1] > 0 ? 2 : 1;
		const float *f = t->ndim == 1
				     ? small(b, n, 1, c->experts[0], 0)
				     : small(b, n, 2, rows, c->experts[0]);
		L->bias[0] = f;
		if (f && rows == 2)
			L->bias[1] = f + c->experts[0];
	}
	if (c->shared > 0) {
		int64_t I = (int64_t)c->shared * c->expert_inter[0];
		L->has_shared = true;
		L->gate = mat(
		    b,
		    NAME("model.layers.%d.mlp.shared_experts.gate_proj.weight",
			 i),
		    I, H);
		L->up = mat(
		    b,
		    NAME("model.layers.%d.mlp.shared_experts.up_proj.weight",
			 i),
		    I, H);
		L->down = mat(
		    b,
		    NAME("model.layers.%d.mlp.shared_experts.down_proj.weight",
			 i),
		    H, I);
	}
#undef NAME
}

/* llama.cpp's names (LLAMACPP-GGUF.md 3): the same matrices, the
 * experts of a layer stacked in one [E, rows, cols] tensor per
 * projection, each expert a slice. */
static void experts_llama(struct binder *b, struct ed_layer *L, int i,
			  const char *proj, int64_t rows, int64_t cols)
{
	const struct ed_config *c = &b->m->cfg;
	char n[96];
	const struct ed_tensor *t;
	size_t rb;

	snprintf(n, sizeof n, "blk.%d.ffn_%s_exps.weight", i, proj);
	t = need_n(b, n, 3, (int64_t[]){c->experts[0], rows, cols}, true);
	if (!t)
		return;
	rb = ed_k_row_bytes(t->dtype, cols);
	for (int e = 0; e < c->experts[0]; e++) {
		struct ed_expert *x = &L->experts[0][e];
		struct ed_wt *w = proj[0] == 'g'   ? &x->gate
				  : proj[0] == 'u' ? &x->up
						   : &x->down;
		w->data = (const char *)t->data + (size_t)e * (size_t)rows * rb;
		w->dt = t->dtype;
		w->rows = rows;
		w->cols = cols;
	}
}

static void bind_layer_llama(struct binder *b, int i)
{
	const struct ed_config *c = &b->m->cfg;
	struct ed_layer *L = &b->m->layers[i];
	int64_t H = c->hidden, qd = (int64_t)c->heads * c->head_dim,
		kvd = (int64_t)c->kv_heads * c->head_dim;
	char n[96];

#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
	L->ln_in = small(b, NAME("blk.%d.attn_norm.weight", i), 1, H, 0);
	L->ln_post = small(b, NAME("blk.%d.ffn_norm.weight", i), 1, H, 0);
	L->q = mat(b, NAME("blk.%d.attn_q.weight", i), qd, H);
	L->k = mat(b, NAME("blk.%d.attn_k.weight", i), kvd, H);
	L->v = mat(b, NAME("blk.%d.attn_v.weight", i), kvd, H);
	L->o = mat(b, NAME("blk.%d.attn_output.weight", i), H, qd);
	L->moe = c->moe[i];
	if (!L->moe) {
		int64_t I = c->dense_inter;
		L->gate = mat(b, NAME("blk.%d.ffn_gate.weight", i), I, H);
		L->up = mat(b, NAME("blk.%d.ffn_up.weight", i), I, H);
		L->down = mat(b, NAME("blk.%d.ffn_down.weight", i), H, I);
		return;
	}
	L->router[0] = small(b, NAME("blk.%d.ffn_gate_inp.weight", i), 2,
			     c->experts[0], H);
	if (has(b, NAME("blk.%d.exp_probs_b.bias", i)))
		L->bias[0] = small(b, n, 1, c->experts[0], 0);
	L->experts[0] = calloc((size_t)c->experts[0], sizeof(struct ed_expert));
	if (!L->experts[0]) {
		if (!b->rc)
			b->rc = ed_err(b->err, b->errlen, ED_ENOMEM,
				       "out of memory");
		return;
	}
	experts_llama(b, L, i, "gate", c->expert_inter[0], H);
	experts_llama(b, L, i, "up", c->expert_inter[0], H);
	experts_llama(b, L, i, "down", H, c->expert_inter[0]);
	if (c->shared > 0) {
		int64_t I = (int64_t)c->shared * c->expert_inter[0];
		L->has_shared = true;
		L->gate = mat(b, NAME("blk.%d.ffn_gate_shexp.weight", i), I, H);
		L->up = mat(b, NAME("blk.%d.ffn_up_shexp.weight", i), I, H);
		L->down = mat(b, NAME("blk.%d.ffn_down_shexp.weight", i), H, I);
	}
#undef NAME
}

static void bind_vision(struct binder *b)
{
	const struct ed_config *c = &b->m->cfg;
	struct ed_vision *v = &b->m->vis;
	int64_t D = c->vit_hidden, F = c->vit_inter,
		P = (int64_t)c->in_channels * c->patch * c->patch,
		S = D * c->merge * c->merge;
	const char *vp = has(b, "vision_model.patch_embed.proj.weight")
			     ? "vision_model."
			     : "model.vision_model.";
	const char *rp = has(b, "resampler_model.mlp.weight")
			     ? "resampler_model."
			     : "model.resampler_model.";
	char n[160];

#define NAME(pre, ...)                                                         \
	(snprintf(n, sizeof n, "%s", pre),                                     \
	 snprintf(n + strlen(pre), sizeof n - strlen(pre), __VA_ARGS__), n)
	v->patch = mat(b, NAME(vp, "patch_embed.proj.weight"), D, P);
	v->blocks = calloc((size_t)c->vit_depth, sizeof *v->blocks);
	if (!v->blocks) {
		b->rc = ed_err(b->err, b->errlen, ED_ENOMEM, "out of memory");
		return;
	}
	for (int i = 0; i < c->vit_depth; i++) {
		struct ed_vit_block *k = &v->blocks[i];
		k->n1w =
		    small(b, NAME(vp, "blocks.%d.norm1.weight", i), 1, D, 0);
		k->n1b = small(b, NAME(vp, "blocks.%d.norm1.bias", i), 1, D, 0);
		k->n2w =
		    small(b, NAME(vp, "blocks.%d.norm2.weight", i), 1, D, 0);
		k->n2b = small(b, NAME(vp, "blocks.%d.norm2.bias", i), 1, D, 0);
		k->qkv =
		    mat(b, NAME(vp, "blocks.%d.attn.qkv.weight", i), 3 * D, D);
		k->qkv_b = small(b, NAME(vp, "blocks.%d.attn.qkv.bias", i), 1,
				 3 * D, 0);
		k->proj =
		    mat(b, NAME(vp, "blocks.%d.attn.proj.weight", i), D, D);
		k->proj_b =
		    small(b, NAME(vp, "blocks.%d.attn.proj.bias", i), 1, D, 0);
		k->fc1 = mat(b, NAME(vp, "blocks.%d.mlp.fc1.weight", i), F, D);
		k->fc1_b =
		    small(b, NAME(vp, "blocks.%d.mlp.fc1.bias", i), 1, F, 0);
		k->fc2 = mat(b, NAME(vp, "blocks.%d.mlp.fc2.weight", i), D, F);
		k->fc2_b =
		    small(b, NAME(vp, "blocks.%d.mlp.fc2.bias", i), 1, D, 0);
	}
	v->ln_w = small(b, NAME(vp, "ln.weight"), 1, D, 0);
	v->ln_b = small(b, NAME(vp, "ln.bias"), 1, D, 0);
	/* resampler: Sequential indices 0 (Linear), 1 (GELU), 2, 3 (LN) */
	v->s1 = mat(b, NAME(rp, "spatial_linear.0.weight"), S, S);
	v->s1_b = small(b, NAME(rp, "spatial_linear.0.bias"), 1, S, 0);
	v->s2 = mat(b, NAME(rp, "spatial_linear.2.weight"), S, S);
	v->s2_b = small(b, NAME(rp, "spatial_linear.2.bias"), 1, S, 0);
	v->s_ln_w = small(b, NAME(rp, "spatial_linear.3.weight"), 1, S, 0);
	v->s_ln_b = small(b, NAME(rp, "spatial_linear.3.bias"), 1, S, 0);
	v->t1 = mat(b, NAME(rp, "temporal_linear.0.weight"), S,
		    S * c->temporal_merge);
	v->t1_b = small(b, NAME(rp, "temporal_linear.0.bias"), 1, S, 0);
	v->t2 = mat(b, NAME(rp, "temporal_linear.2.weight"), S, S);
	v->t2_b = small(b, NAME(rp, "temporal_linear.2.bias"), 1, S, 0);
	v->t_ln_w = small(b, NAME(rp, "temporal_linear.3.weight"), 1, S, 0);
	v->t_ln_b = small(b, NAME(rp, "temporal_linear.3.bias"), 1, S, 0);
	v->mlp = mat(b, NAME(rp, "mlp.weight"), c->hidden, S);
	v->mlp_b = small(b, NAME(rp, "mlp.bias"), 1, c->hidden, 0);
	v->after_norm =
	    small(b, NAME(rp, "after_norm.weight"), 1, c->hidden, 0);
#undef NAME
}

/* ---- files --------------------------------------------------------- */

char *ed_model_read_file(const char *path, size_t cap, size_t *len)
{
	char *data;
	int rc = ed_read_file(path, cap, &data, len);

	if (rc == ED_ETOOBIG)
		errno = EFBIG;
	else if (rc == ED_ENOMEM)
		errno = ENOMEM;
	else if (rc == ED_EIO)
		errno = EIO;
	return rc ? NULL : data;
}

static int add_shard(struct ed_model *m, const char *dir, const char *file,
		     char *err, size_t errlen)
{
	char path[4096];
	struct ed_st **ns;
	struct stat sb;
	char **nf;
	int rc;

	if (strchr(file, '/') || strcmp(file, "..") == 0 || !*file)
		return ed_err(err, errlen, ED_ECONFIG,
			      "shard name '%s' is not a file in the model "
			      "directory",
			      file);
	for (int i = 0; i < m->n_shards; i++)
		if (strcmp(m->shard_files[i], file) == 0)
			return 0; /* the index names each shard many times */
	ns = realloc(m->shards, (size_t)(m->n_shards + 1) * sizeof *ns);
	if (ns)
		m->shards = ns;
	nf = realloc(m->shard_files, (size_t)(m->n_shards + 1) * sizeof *nf);
	if (nf)
		m->shard_files = nf;
	if (!ns || !nf || !(m->shard_files[m->n_shards] = strdup(file)))
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((rc = ed_model_st_open(&m->shards[m->n_shards], path, err,
				   errlen))) {
		free(m->shard_files[m->n_shards]);
		return rc == ED_ENOENT ? rc : ED_ECONFIG;
	}
	if (stat(path, &sb) == 0)
		m->file_bytes += sb.st_size;
	m->n_shards++;
	return 0;
}

static int open_shards(struct ed_model *m, const char *dir, char *err,
		       size_t errlen)
{
	char path[4096];
	size_t len;
	char *text;
	json_t *root, *map, *v;
	json_error_t je;
	const char *key;
	int rc = 0;

	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	text = ed_model_read_file(path, 64u << 20, &len);
	if (!text)
		return add_shard(m, dir, "model.safetensors", err, errlen);
	root = json_loadb(text, len, 0, &je);
	free(text);
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map)) {
		json_decref(root);
		return ed_err(err, errlen, ED_ECONFIG,
			      "model.safetensors.index.json: %s",
			      root ? "no weight_map" : je.text);
	}
	/* each distinct file once, in first-seen order */
	json_object_foreach(map, key, v)
	{
		const char *f = json_string_value(v);
		if (!f) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "model.safetensors.index.json: '%s' has no "
				    "file",
				    key);
			break;
		}
		if ((rc = add_shard(m, dir, f, err, errlen)))
			break;
	}
	json_decref(root);
	if (!rc && m->n_shards == 0)
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "model.safetensors.index.json lists no files");
	return rc;
}

/* Special ids: config first, then the tokenizer by name. */
static int32_t tok_or(const struct ed_tokenizer *t, const char *piece,
		      int32_t def)
{
	int32_t id = t ? ed_tok_id(t, piece) : -1;
	return def >= 0 ? def : id;
}

static void resolve_ids(struct ed_model *m)
{
	const struct ed_config *c = &m->cfg;
	struct ed_model_ids *d = &m->ids;
	const struct ed_tokenizer *t = m->tok;

	d->bos = c->bos;
	d->eos = c->eos;
	d->begin_of_sentence = tok_or(t, "<|begin_of_sentence|>", -1);
	d->end_of_sentence = tok_or(t, "<|end_of_sentence|>", -1);
	d->image = tok_or(t, "<|IMAGE_PLACEHOLDER|>", c->image);
	d->image_start = tok_or(t, "<|IMAGE_START|>", c->image_start);
	d->image_end = tok_or(t, "<|IMAGE_END|>", c->image_end);
	d->video = tok_or(t, "<|VIDEO_PLACEHOLDER|>", c->video);
	d->video_start = tok_or(t, "<|VIDEO_START|>", c->video_start);
	d->video_end = tok_or(t, "<|VIDEO_END|>", c->video_end);
	d->think = tok_or(t, "<think>", -1);
	d->think_end = tok_or(t, "</think>", -1);
}

/* A GGUF file's tokenizer: the .model bytes and the JSON side files. */
static char *meta_text(const struct ed_model *m, const char *key)
{
	size_t n;
	const unsigned char *s = ed_gguf_string(m->gguf, key, &n);
	char *t = s ? malloc(n + 1) : NULL;

	if (t) {
		memcpy(t, s, n);
		t[n] = '\0';
	}
	return t;
}

static int open_gguf_tokenizer(struct ed_model *m, char *err, size_t errlen)
{
	size_t n;
	const unsigned char *model =
	    ed_gguf_u8_array(m->gguf, "ernie_doc.tokenizer.model", &n);
	char *a, *c, *s;
	int rc;

	if (!model)
		return ED_ENOENT;
	a = meta_text(m, "ernie_doc.tokenizer.added_tokens");
	c = meta_text(m, "ernie_doc.tokenizer.tokenizer_config");
	s = meta_text(m, "ernie_doc.tokenizer.special_tokens_map");
	rc = ed_tok_open_parts(&m->tok, model, n, a, c, s, err, errlen);
	free(a);
	free(c);
	free(s);
	return rc;
}

int ed_model_open(struct ed_model **out, const char *dir, ed_note_fn note,
		  void *ud, char *err, size_t errlen)
{
	struct ed_model *m;
	struct binder b = {0};
	char path[4096];
	size_t len;
	char *text;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_arena_init(&m->params, 1 << 20);
	if (ed_gguf_sniff(dir)) {
		/* one file: the config and the tokenizer are metadata */
		const unsigned char *cfg;
		if ((rc = ed_gguf_open(&m->gguf, dir, err, errlen)))
			goto fail;
		cfg = ed_gguf_string(m->gguf, "ernie_doc.config", &len);
		m->llama = !cfg && ed_llama_layout(m->gguf);
		if (m->llama) {
			if ((rc = ed_llama_config(m->gguf, &m->cfg, err,
						  errlen)))
				goto fail;
		} else if (!cfg) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s' has no ernie_doc.config: a GGUF file "
				    "not made by 'ernie-doc model quantize'",
				    dir);
			goto fail;
		}
		if (!m->llama &&
		    (rc = ed_config_parse(&m->cfg, (const char *)cfg, len, note,
					  ud, err, errlen)))
			goto fail;
		m->n_shards = 1;
		m->file_bytes = (int64_t)ed_gguf_size(m->gguf);
	} else {
		snprintf(path, sizeof path, "%s/config.json", dir);
		text = ed_model_read_file(path, 4u << 20, &len);
		if (!text) {
			rc = ed_err(err, errlen,
				    errno == ENOENT ? ED_ENOENT : ED_ECONFIG,
				    "cannot read '%s': %s", path,
				    strerror(errno));
			goto fail;
		}
		rc = ed_config_parse(&m->cfg, text, len, note, ud, err, errlen);
		free(text);
		if (rc)
			goto fail;
		if ((rc = open_shards(m, dir, err, errlen)))
			goto fail;
	}

	b.m = m;
	b.err = err;
	b.errlen = errlen;
	if ((rc = index_tensors(&b)))
		goto fail_b;
	if (m->llama) {
		m->embed =
		    mat(&b, "token_embd.weight", m->cfg.vocab, m->cfg.hidden);
		m->norm = small(&b, "output_norm.weight", 1, m->cfg.hidden, 0);
		m->head =
		    m->cfg.tie_embeddings
			? m->embed
			: mat(&b, "output.weight", m->cfg.vocab, m->cfg.hidden);
	} else {
		m->embed = mat(&b, "model.embed_tokens.weight", m->cfg.vocab,
			       m->cfg.hidden);
		m->norm = small(&b, "model.norm.weight", 1, m->cfg.hidden, 0);
		if (has(&b, "lm_head.weight") && !m->cfg.tie_embeddings)
			m->head = mat(&b, "lm_head.weight", m->cfg.vocab,
				      m->cfg.hidden);
		else
			m->head = m->embed;
	}
	if (!m->llama && has(&b, "lm_head.weight") && m->cfg.tie_embeddings) {
		/* transformers ties and ignores the stored head */
		lookup(&b, "lm_head.weight")->used = true;
		if (note)
			note(ud, "lm_head.weight is stored but the config ties "
				 "it to embed_tokens: using embed_tokens");
	}
	m->layers = calloc((size_t)m->cfg.layers, sizeof *m->layers);
	if (!m->layers) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto fail_b;
	}
	for (int i = 0; i < m->cfg.layers && !b.rc; i++) {
		if (m->llama)
			bind_layer_llama(&b, i);
		else
			bind_layer(&b, i);
	}
	if (m->cfg.has_vision && !b.rc)
		bind_vision(&b);
	if ((rc = b.rc))
		goto fail_b;
	for (size_t i = 0; i < b.cap; i++)
		if (b.tab[i].t && !b.tab[i].used) {
			if (m->llama) {
				/* as llama.cpp: a tensor the graph would not
				 * use (a bias, an MTP head) is an error */
				rc = ed_err(err, errlen, ED_ECONFIG,
					    "tensor '%s' is not part of the "
					    "%s layout its metadata implies",
					    b.tab[i].t->name, m->cfg.arch);
				goto fail_b;
			}
			m->n_unknown++;
			if (note) {
				char msg[320];
				snprintf(msg, sizeof msg,
					 "ignoring unknown tensor '%s'",
					 b.tab[i].t->name);
				note(ud, msg);
			}
		}
	free(b.tab);

	rc = m->llama  ? ed_llama_tokenizer(m->gguf, &m->tok, err, errlen)
	     : m->gguf ? open_gguf_tokenizer(m, err, errlen)
		       : ed_tok_open(&m->tok, dir, err, errlen);
	if (rc == ED_ENOENT) {
		m->tok = NULL;
		rc = 0;
	} else if (rc) {
		goto fail;
	}
	resolve_ids(m);
	if ((rc = ed_model_template_init(m, dir, err, errlen)))
		goto fail;
	*out = m;
	return 0;
fail_b:
	free(b.tab);
fail:
	ed_model_close(m);
	return rc;
}

void ed_model_close(struct ed_model *m)
{
	if (!m)
		return;
	for (int i = 0; m->layers && i < m->cfg.layers; i++) {
		free(m->layers[i].experts[0]);
		free(m->layers[i].experts[1]);
	}
	free(m->layers);
	ed_model_template_release(m);
	for (int i = 0; m->vis.blocks && i < m->cfg.vit_depth; i++)
		for (int k = 0; k < 4; k++)
			free((void *)m->vis.blocks[i].q8[k].data);

	free(m->vis.blocks);
	ed_arena_release(&m->params);
	for (int i = 0; m->shards && i < m->n_shards; i++) {
		ed_model_st_close(m->shards[i]);
		free(m->shard_files[i]);
	}
	free(m->shards);
	free(m->shard_files);
	ed_gguf_close(m->gguf);
	ed_tok_close(m->tok);
	free(m);
}

const struct ed_tokenizer *ed_model_tokenizer(const struct ed_model *m)
{
	return m->tok;
}

void ed_model_get_ids(const struct ed_model *m, struct ed_model_ids *ids)
{
	*ids = m->ids;
}

void ed_model_get_info(const struct ed_model *m, struct ed_model_info *i)
{
	const struct ed_config *c = &m->cfg;
	int64_t H = c->hidden, attn, active = 0, total = 0;

	memset(i, 0, sizeof *i);
	snprintf(i->arch, sizeof i->arch, "%s", c->arch);
	i->has_vision = c->has_vision;
	i->rope_3d = c->rope_3d;
	i->rope_theta = c->rope_theta;
	memcpy(i->mrope, c->mrope, sizeof i->mrope);
	i->tied_head = m->head.data == m->embed.data;
	i->layers = c->layers;
	i->hidden = c->hidden;
	i->heads = c->heads;
	i->kv_heads = c->kv_heads;
	i->head_dim = c->head_dim;
	i->vocab = c->vocab;
	i->experts[0] = c->experts[0];
	i->experts[1] = c->experts[1];
	i->moe_k = c->moe_k;
	i->expert_inter[0] = c->expert_inter[0];
	i->expert_inter[1] = c->expert_inter[1];
	i->shared_inter = c->shared * c->expert_inter[0];
	i->dense_inter = c->dense_inter;
	i->vit_depth = c->vit_depth;
	i->vit_hidden = c->vit_hidden;
	i->vit_heads = c->vit_heads;
	attn = H * ((int64_t)c->heads * c->head_dim) * 2 +
	       H * ((int64_t)c->kv_heads * c->head_dim) * 2 + 2 * H;
	for (int l = 0; l < c->layers; l++) {
		total += attn;
		active += attn;
		if (!c->moe[l]) {
			total += 3 * H * c->dense_inter;
			active += 3 * H * c->dense_inter;
			continue;
		}
		i->moe_layers++;
		for (int p = 0; p < 2;
		     p++) /* experts, router, correction bias */
			total += (int64_t)c->experts[p] *
				 (3 * H * c->expert_inter[p] + H + 1);
		total += 3 * H * (int64_t)c->shared * c->expert_inter[0];
		active += (int64_t)c->moe_k * 3 * H * c->expert_inter[0] +
			  3 * H * (int64_t)c->shared * c->expert_inter[0] +
			  H * c->experts[0];
	}
	total += (int64_t)c->vocab * H * (i->tied_head ? 1 : 2) + H;
	active += (int64_t)c->vocab * H * (i->tied_head ? 1 : 2) + H;
	if (c->has_vision) {
		int64_t D = c->vit_hidden, F = c->vit_inter,
			S = D * c->merge * c->merge;
		total += D * 3 * 14 * 14 +
			 (int64_t)c->vit_depth *
			     (4 * D * D + 2 * D * F + 9 * D + F) +
			 2 * D;
		total += 2 * (S * S + S) + (S * S * c->temporal_merge + S) +
			 (S * S + S) + 4 * S + (S * H + H) + H;
	}
	i->params = total;
	i->params_active = active;
	memcpy(i->bytes_by_dtype, m->bytes_by_dtype, sizeof i->bytes_by_dtype);
	i->file_bytes = m->file_bytes;
	/* mapped weights (paged in as used) plus the float32 copies */
	i->resident_bytes = m->file_bytes + m->params_bytes;
	/* a key and a value per layer and KV head, float32 */
	i->kv_bytes_per_token = 2 * (int64_t)c->layers * c->kv_heads *
				c->head_dim * (int64_t)sizeof(float);
	i->n_tensors = m->n_tensors;
	i->n_unknown = m->n_unknown;
	i->n_shards = m->n_shards;
	i->has_tokenizer = m->tok != NULL;
	snprintf(i->layout, sizeof i->layout, "%s",
		 m->llama  ? "GGUF, llama.cpp layout"
		 : m->gguf ? "GGUF, ernie-doc layout"
			   : "safetensors directory");
	snprintf(i->tokenizer, sizeof i->tokenizer, "%s",
		 !m->tok    ? ""
		 : m->llama ? "tokenizer.ggml arrays (SentencePiece)"
		 : m->gguf  ? "tokenizer.model (in the GGUF)"
			    : "tokenizer.model");
	if (m->gguf) {
		/* llama_ftype (QUANT.md): the mix the file was made as */
		static const char *const ft[] = {
		    [0] = "ALL_F32", [1] = "F16",     [2] = "Q4_0",
		    [3] = "Q4_1",    [7] = "Q8_0",    [8] = "Q5_0",
		    [9] = "Q5_1",    [10] = "Q2_K",   [11] = "Q3_K_S",
		    [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S",
		    [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
		    [18] = "Q6_K",   [21] = "Q2_K_S", [25] = "IQ4_NL",
		    [30] = "IQ4_XS", [32] = "BF16"};
		size_t n;
		const unsigned char *a =
		    ed_gguf_string(m->gguf, "general.architecture", &n);
		uint64_t f;
		if (a)
			snprintf(i->gguf_arch, sizeof i->gguf_arch, "%.*s",
				 (int)n, (const char *)a);
		if (ed_gguf_uint(m->gguf, "general.file_type", &f))
			snprintf(i->file_type, sizeof i->file_type, "%s",
				 f < ED_ARRAY_LEN(ft) && ft[f] ? ft[f]
							       : "unknown");
	}
}

static int64_t wt_bytes(const struct ed_wt *w, int64_t *n)
{
	if (!w->data)
		return 0;
	*n += w->rows * w->cols;
	return (int64_t)ed_k_row_bytes(w->dt, w->cols) * w->rows;
}

int64_t ed_model_decode_bytes(const struct ed_model *m, int64_t *weights)
{
	const struct ed_config *c = &m->cfg;
	int64_t n = 0, b = 0, head_n = 0;

	for (int l = 0; l < c->layers; l++) {
		const struct ed_layer *L = &m->layers[l];
		b += wt_bytes(&L->q, &n) + wt_bytes(&L->k, &n) +
		     wt_bytes(&L->v, &n) + wt_bytes(&L->o, &n) +
		     wt_bytes(&L->gate, &n) + wt_bytes(&L->up, &n) +
		     wt_bytes(&L->down, &n);
		if (L->moe && L->experts[0]) {
			const struct ed_expert *e = &L->experts[0][0];
			for (int k = 0; k < c->moe_k; k++)
				b += wt_bytes(&e->gate, &n) +
				     wt_bytes(&e->up, &n) +
				     wt_bytes(&e->down, &n);
			b +=
			    (int64_t)c->hidden * c->experts[0] * 4; /* router */
			n += (int64_t)c->hidden * c->experts[0];
		}
	}
	b += wt_bytes(&m->head, &head_n);
	if (weights)
		*weights = n; /* the head apart: prefill computes it once */
	return b;
}
