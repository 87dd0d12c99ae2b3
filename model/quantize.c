/*
 * quantize.c - a checkpoint (directory or GGUF) to one GGUF file: every
 * tensor under its original name, matrices in the chosen block format,
 * norms, biases and routers in F32, the vision tower in BF16; the
 * config.json text and the tokenizer (its .model bytes and JSON side
 * files) as metadata, so the file is a whole model. Tensors are read from
 * the mapped source and written one at a time: memory holds at most one
 * tensor's output.
 */
#include "model_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum ed_dtype dt;      /* matrices */
	enum ed_dtype special; /* v_proj and the output head */
	uint32_t ftype;	       /* general.file_type (ggml's llama_ftype) */
} kinds[] = {
    {"bf16", ED_DT_BF16, ED_DT_BF16, 32},
    {"q8_0", ED_DT_Q8_0, ED_DT_Q8_0, 7},
    {"q6_k", ED_DT_Q6_K, ED_DT_Q6_K, 18},
    {"q4_k", ED_DT_Q4_K, ED_DT_Q4_K, 14},
    {"q4_0", ED_DT_Q4_0, ED_DT_Q4_0, 2},
    {"q4_k_m", ED_DT_Q4_K, ED_DT_Q6_K, 15},
};

int ed_model_quant_kind(const char *name)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(kinds); i++)
		if (strcmp(kinds[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *ed_model_quant_kind_name(int kind)
{
	return kind >= 0 && kind < (int)ED_ARRAY_LEN(kinds) ? kinds[kind].name
							    : "?";
}

/* Where the engine uses each weight: the language model's matrices (which
 * are quantized), the vision tower's (kept in BF16), the "special" ones
 * of the mixed types (value projections, the output head). Everything
 * else (norms, biases, routers) stays F32. */
struct roles {
	const void **lm, **vis, **special;
	size_t nlm, nvis, nspecial;
};

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const void *const *)a,
		  y = (uintptr_t) * (const void *const *)b;
	return x < y ? -1 : x > y;
}

static bool in(const void **set, size_t n, const void *p)
{
	return n && bsearch(&p, set, n, sizeof *set, cmp_ptr) != NULL;
}

static int add(const void ***set, size_t *n, const void *p)
{
	const void **ns;

	if (!p)
		return 0;
	ns = realloc(*set, (*n + 1) * sizeof *ns);
	if (!ns)
		return -1;
	ns[(*n)++] = p;
	*set = ns;
	return 0;
}

static int collect_roles(const struct ed_model *m, struct roles *r)
{
	const struct ed_config *c = &m->cfg;
	int rc = 0;

	memset(r, 0, sizeof *r);
	rc |= add(&r->lm, &r->nlm, m->embed.data);
	rc |= add(&r->lm, &r->nlm, m->head.data);
	rc |= add(&r->special, &r->nspecial, m->head.data);
	for (int l = 0; l < c->layers; l++) {
		const struct ed_layer *L = &m->layers[l];
		const struct ed_wt *w[] = {&L->q,    &L->k,  &L->v,   &L->o,
					   &L->gate, &L->up, &L->down};
		for (size_t i = 0; i < ED_ARRAY_LEN(w); i++)
			rc |= add(&r->lm, &r->nlm, w[i]->data);
		rc |= add(&r->special, &r->nspecial, L->v.data);
		for (int p = 0; p < 2; p++)
			for (int e = 0; L->experts[p] && e < c->experts[p];
			     e++) {
				rc |= add(&r->lm, &r->nlm,
					  L->experts[p][e].gate.data);
				rc |= add(&r->lm, &r->nlm,
					  L->experts[p][e].up.data);
				rc |= add(&r->lm, &r->nlm,
					  L->experts[p][e].down.data);
			}
	}
	if (c->has_vision) {
		const struct ed_vision *v = &m->vis;
		const struct ed_wt *w[] = {&v->patch, &v->s1, &v->s2,
					   &v->t1,    &v->t2, &v->mlp};
		for (size_t i = 0; i < ED_ARRAY_LEN(w); i++)
			rc |= add(&r->vis, &r->nvis, w[i]->data);
		for (int b = 0; v->blocks && b < c->vit_depth; b++) {
			rc |= add(&r->vis, &r->nvis, v->blocks[b].qkv.data);
			rc |= add(&r->vis, &r->nvis, v->blocks[b].proj.data);
			rc |= add(&r->vis, &r->nvis, v->blocks[b].fc1.data);
			rc |= add(&r->vis, &r->nvis, v->blocks[b].fc2.data);
		}
	}
	if (r->nlm)
		qsort(r->lm, r->nlm, sizeof *r->lm, cmp_ptr);
	if (r->nvis)
		qsort(r->vis, r->nvis, sizeof *r->vis, cmp_ptr);
	if (r->nspecial)
		qsort(r->special, r->nspecial, sizeof *r->special, cmp_ptr);
	return rc ? ED_ENOMEM : 0;
}

static void free_roles(struct roles *r)
{
	free(r->lm);
	free(r->vis);
	free(r->special);
}

/* The type a tensor is stored in. */
static enum ed_dtype choose(const struct ed_tensor *t, int kind,
			    const struct roles *r)
{
	enum ed_dtype dt = kinds[kind].dt;
	int64_t inner = t->shape[t->ndim - 1];

	if (in(r->vis, r->nvis, t->data))
		return ED_DT_BF16; /* the vision tower stays precise */
	if (t->ndim != 2 || !in(r->lm, r->nlm, t->data))
		return ED_DT_F32; /* norms, biases, routers, unknown */
	if (in(r->special, r->nspecial, t->data))
		dt = kinds[kind].special;
	if (inner % ed_k_block(dt))
		/* rows that do not fill the blocks: the next type that fits */
		dt = inner % 32 == 0 && ed_k_is_quant(dt) ? ED_DT_Q8_0
							  : ED_DT_BF16;
	return dt;
}

static char *read_text(const char *dir, const char *name, size_t *len)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return ed_model_read_file(path, 512u << 20, len);
}

/* The metadata that makes the file a whole model: config, tokenizer. */
static int copy_meta(struct ed_gguf_writer *w, const struct ed_model *m,
		     const char *src, int kind, char *err, size_t errlen)
{
	static const char *const side[][2] = {
	    {"added_tokens.json", "ernie_doc.tokenizer.added_tokens"},
	    {"tokenizer_config.json", "ernie_doc.tokenizer.tokenizer_config"},
	    {"special_tokens_map.json",
	     "ernie_doc.tokenizer.special_tokens_map"},
	};
	const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	int rc = 0;

	rc |= ed_gguf_writer_string(w, "general.architecture", m->cfg.arch,
				    strlen(m->cfg.arch));
	rc |= ed_gguf_writer_string(w, "general.name", base, strlen(base));
	rc |= ed_gguf_writer_u32(w, "general.file_type", kinds[kind].ftype);
	rc |= ed_gguf_writer_string(w, "ernie_doc.quantization",
				    kinds[kind].name, strlen(kinds[kind].name));
	rc |= ed_gguf_writer_string(w, "ernie_doc.version", ED_VERSION,
				    strlen(ED_VERSION));
	if (m->chat_template) /* the checkpoint's own, as llama.cpp keeps it */
		rc |= ed_gguf_writer_string(w, "tokenizer.chat_template",
					    m->chat_template,
					    strlen(m->chat_template));
	if (m->gguf) { /* re-quantizing a GGUF file: its metadata again */
		static const char *const keys[] = {
		    "ernie_doc.config", "ernie_doc.tokenizer.added_tokens",
		    "ernie_doc.tokenizer.tokenizer_config",
		    "ernie_doc.tokenizer.special_tokens_map"};
		size_t n;
		const unsigned char *p;
		for (size_t i = 0; i < ED_ARRAY_LEN(keys); i++)
			if ((p = ed_gguf_string(m->gguf, keys[i], &n)))
				rc |= ed_gguf_writer_string(w, keys[i],
							    (const char *)p, n);
		if ((p = ed_gguf_u8_array(m->gguf, "ernie_doc.tokenizer.model",
					  &n)))
			rc |= ed_gguf_writer_bytes(
			    w, "ernie_doc.tokenizer.model", p, n);
		return rc ? ed_err(err, errlen, ED_ENOMEM, "out of memory") : 0;
	}
	{
		size_t n;
		char *cfg = read_text(src, "config.json", &n), *tok;
		if (!cfg)
			return ed_err(err, errlen, ED_ECONFIG,
				      "cannot read '%s/config.json'", src);
		rc |= ed_gguf_writer_string(w, "ernie_doc.config", cfg, n);
		free(cfg);
		if ((tok = read_text(src, "tokenizer.model", &n))) {
			rc |= ed_gguf_writer_bytes(
			    w, "ernie_doc.tokenizer.model", tok, n);
			free(tok);
		}
		for (size_t i = 0; i < ED_ARRAY_LEN(side); i++) {
			char *t = read_text(src, side[i][0], &n);
			if (t)
				rc |=
				    ed_gguf_writer_string(w, side[i][1], t, n);
			free(t);
		}
	}
	return rc ? ed_err(err, errlen, ED_ENOMEM, "out of memory") : 0;
}

struct qjob {
	const struct ed_tensor *t;
	enum ed_dtype dt;
	unsigned char *out;
	size_t rb_in, rb_out;
	int64_t inner;
	float *rowbuf; /* inner floats per thread */
	int unused;
};

static void quantize_rows(void *ctx, int64_t b, int64_t e, int tid)
{
	struct qjob *j = ctx;
	float *row = j->rowbuf + (size_t)tid * (size_t)j->inner;

	for (int64_t r = b; r < e; r++) {
		ed_k_to_f32(row,
			    (const char *)j->t->data + j->rb_in * (size_t)r,
			    j->t->dtype, (size_t)j->inner);
		ed_k_quantize_row(j->dt, row, j->out + j->rb_out * (size_t)r,
				  j->inner);
	}
}

/* rows x inner weights of t (rows consecutive from t->data) in dt,
 * quantized by all threads and written to w: 0 or ED_E*. */
static int write_rows(struct ed_pool *pool, struct ed_gguf_writer *w,
		      const struct ed_tensor *t, enum ed_dtype dt, int64_t rows,
		      int64_t inner, char *err, size_t errlen)
{
	size_t rb_out = ed_k_row_bytes(dt, inner);
	unsigned char *buf = malloc(rb_out * (size_t)rows + 1);
	struct qjob j = {t,	 dt,	buf,  ed_k_row_bytes(t->dtype, inner),
			 rb_out, inner, NULL, 0};
	int rc;

	j.rowbuf = calloc((size_t)ed_pool_threads(pool),
			  (size_t)inner * sizeof(float));
	if (!buf || !j.rowbuf) {
		free(buf);
		free(j.rowbuf);
		return ed_err(err, errlen, ED_ENOMEM,
			      "out of memory for tensor '%s'", t->name);
	}
	/* rows are independent: all threads on one tensor */
	ed_pool_for(pool, rows, 1, quantize_rows, &j);
	free(j.rowbuf);
	rc = ed_gguf_writer_data(w, buf, rb_out * (size_t)rows, err, errlen);
	free(buf);
	return rc;
}

static size_t n_tensors(const struct ed_model *m)
{
	size_t n = 0;

	if (m->gguf)
		return ed_gguf_count(m->gguf);
	for (int s = 0; s < m->n_shards; s++)
		n += ed_model_st_count(m->shards[s]);
	return n;
}

static const struct ed_tensor *tensor(const struct ed_model *m, size_t i)
{
	if (m->gguf)
		return ed_gguf_at(m->gguf, i);
	for (int s = 0; s < m->n_shards; s++) {
		size_t c = ed_model_st_count(m->shards[s]);
		if (i < c)
			return ed_model_st_at(m->shards[s], i);
		i -= c;
	}
	return NULL;
}

static bool floating(enum ed_dtype dt)
{
	return dt == ED_DT_F32 || dt == ED_DT_F16 || dt == ED_DT_BF16 ||
	       ed_k_is_quant(dt);
}

/* ---- llama.cpp's layout -------------------------------------------- */

/* One output tensor: pieces (matrices, or float32 vectors as 1-row
 * matrices) written one after another. */
struct lpiece {
	const void *data;
	enum ed_dtype dt;
	int64_t rows, cols;
};
struct ltensor {
	char name[96];
	int ndim;
	int64_t shape[3];
	enum ed_dtype dt;
	struct lpiece p[1]; /* or experts */
	struct lpiece *many;
	int np;
};

/* llama.cpp's more(i, n) of the K mixes' upgrades (QUANT.md) */
static bool more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The type a matrix gets, upgraded where the mix says, then the shape
 * fallback of llama-quantize (rule 6). */
static enum ed_dtype llama_type(int kind, bool special, int64_t cols)
{
	enum ed_dtype dt = special ? kinds[kind].special : kinds[kind].dt;

	if (cols % ed_k_block(dt) == 0)
		return dt;
	switch (dt) {
	case ED_DT_Q4_K: dt = ED_DT_Q5_0; break;
	case ED_DT_Q6_K: dt = ED_DT_Q8_0; break;
	default: break;
	}
	return cols % ed_k_block(dt) == 0 ? dt : ED_DT_F16;
}

static int add_lt(struct ltensor **v, size_t *n, const char *name, int ndim,
		  const int64_t *shape, enum ed_dtype dt,
		  const struct lpiece *p, int np)
{
	struct ltensor *nv = realloc(*v, (*n + 1) * sizeof *nv), *t;

	if (!nv)
		return ED_ENOMEM;
	*v = nv;
	t = &nv[*n];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->ndim = ndim;
	memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	t->dt = dt;
	t->np = np;
	if (np == 1) {
		t->p[0] = *p;
	} else {
		t->many = malloc((size_t)np * sizeof *t->many);
		if (!t->many)
			return ED_ENOMEM;
		memcpy(t->many, p, (size_t)np * sizeof *p);
	}
	(*n)++;
	return 0;
}

#define wt_piece(w) ((struct lpiece){(w)->data, (w)->dt, (w)->rows, (w)->cols})

/* The tensors of m under llama.cpp's names (LLAMACPP-GGUF.md 3). */
static int llama_plan(const struct ed_model *m, int kind, struct ltensor **v,
		      size_t *n)
{
	const struct ed_config *c = &m->cfg;
	int64_t H = c->hidden;
	bool tied = m->head.data == m->embed.data;
	char nm[96];
	int rc = 0;
	struct lpiece *ex = NULL;

#define MAT(w, special, ...)                                                   \
	(snprintf(nm, sizeof nm, __VA_ARGS__),                                 \
	 add_lt(v, n, nm, 2, (int64_t[]){(w).rows, (w).cols},                  \
		llama_type(kind, special, (w).cols), &wt_piece(&(w)), 1))
#define VEC(f, len, ...)                                                       \
	(snprintf(nm, sizeof nm, __VA_ARGS__),                                 \
	 add_lt(v, n, nm, 1, (int64_t[]){len}, ED_DT_F32,                      \
		&(struct lpiece){(f), ED_DT_F32, 1, (len)}, 1))
	rc |= MAT(m->embed, tied, "token_embd.weight");
	rc |= VEC(m->norm, H, "output_norm.weight");
	if (!tied)
		rc |= MAT(m->head, true, "output.weight");
	for (int i = 0; i < c->layers && !rc; i++) {
		const struct ed_layer *L = &m->layers[i];
		bool mb = more_bits(i, c->layers);
		rc |= VEC(L->ln_in, H, "blk.%d.attn_norm.weight", i);
		rc |= MAT(L->q, false, "blk.%d.attn_q.weight", i);
		rc |= MAT(L->k, false, "blk.%d.attn_k.weight", i);
		rc |= MAT(L->v, mb, "blk.%d.attn_v.weight", i);
		rc |= MAT(L->o, false, "blk.%d.attn_output.weight", i);
		rc |= VEC(L->ln_post, H, "blk.%d.ffn_norm.weight", i);
		if (!L->moe) {
			rc |= MAT(L->gate, false, "blk.%d.ffn_gate.weight", i);
			rc |= MAT(L->up, false, "blk.%d.ffn_up.weight", i);
			rc |= MAT(L->down, mb, "blk.%d.ffn_down.weight", i);
			continue;
		}
		{
			int E = c->experts[0];
			snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight",
				 i);
			rc |= add_lt(
			    v, n, nm, 2, (int64_t[]){E, H}, ED_DT_F32,
			    &(struct lpiece){L->router[0], ED_DT_F32, E, H}, 1);
			if (L->bias[0])
				rc |= VEC(L->bias[0], E,
					  "blk.%d.exp_probs_b.bias", i);
			ex = malloc((size_t)E * sizeof *ex);
			if (!ex)
				return ED_ENOMEM;
			for (int p = 0; p < 3 && !rc; p++) {
				static const char *const proj[] = {"gate", "up",
								   "down"};
				const struct ed_wt *w0 =
				    p == 0   ? &L->experts[0][0].gate
				    : p == 1 ? &L->experts[0][0].up
					     : &L->experts[0][0].down;
				for (int e = 0; e < E; e++)
					ex[e] = wt_piece(
					    p == 0   ? &L->experts[0][e].gate
					    : p == 1 ? &L->experts[0][e].up
						     : &L->experts[0][e].down);
				snprintf(nm, sizeof nm,
					 "blk.%d.ffn_%s_exps.weight", i,
					 proj[p]);
				rc |= add_lt(
				    v, n, nm, 3,
				    (int64_t[]){E, w0->rows, w0->cols},
				    llama_type(kind, p == 2 && mb, w0->cols),
				    ex, E);
			}
			free(ex);
			ex = NULL;
		}
		if (L->has_shared) {
			rc |= MAT(L->gate, false,
				  "blk.%d.ffn_gate_shexp.weight", i);
			rc |=
			    MAT(L->up, false, "blk.%d.ffn_up_shexp.weight", i);
			rc |=
			    MAT(L->down, mb, "blk.%d.ffn_down_shexp.weight", i);
		}
	}
#undef MAT
#undef VEC
	return rc ? ED_ENOMEM : 0;
}

static void free_plan(struct ltensor *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].many);
	free(v);
}

static int quantize_llama(struct ed_model *m, const char *src, const char *out,
			  int kind, struct ed_pool *pool,
			  ed_quantize_fn progress, void *ud, char *err,
			  size_t errlen)
{
	struct ed_gguf_writer *w = NULL;
	struct ed_quantize_progress pr = {0};
	struct ltensor *v = NULL;
	size_t n = 0;
	const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	char name[256];
	int rc;

	if (m->cfg.has_vision)
		return ed_err(err, errlen, ED_EINVAL,
			      "'%s' is an ERNIE-4.5-VL checkpoint: llama.cpp "
			      "has no ERNIE-4.5-VL architecture, so the "
			      "llama.cpp layout holds text models only (write "
			      "it in ernie-doc's own layout)",
			      src);
	if ((rc = llama_plan(m, kind, &v, &n))) {
		free_plan(v, n);
		return ed_err(err, errlen, rc, "out of memory");
	}
	snprintf(name, sizeof name, "%s", m->name[0] ? m->name : base);
	if ((rc = ed_gguf_writer_open(&w, out, err, errlen)))
		goto out;
	rc = ed_llama_write_meta(w, m, name, kinds[kind].ftype,
				 kinds[kind].dt != ED_DT_BF16);
	if (rc) {
		rc =
		    rc == ED_EINVAL
			? ed_err(err, errlen, ED_ECONFIG,
				 "the MoE layers of '%s' are not leading dense "
				 "layers then every k-th, which llama.cpp's "
				 "keys cannot say",
				 src)
		    : rc == ED_ECONFIG
			? ed_err(err, errlen, rc,
				 "'%s': the tokenizer has more ids than the "
				 "%d embeddings",
				 src, m->cfg.vocab)
			: ed_err(err, errlen, rc, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((rc = ed_gguf_writer_tensor(w, v[i].name, v[i].dt,
						v[i].ndim, v[i].shape))) {
			rc = ed_err(err, errlen, rc, "tensor '%s': %s",
				    v[i].name, ed_strerror(rc));
			goto out;
		}
		pr.tensors++;
		for (int k = 0; k < v[i].np; k++) {
			const struct lpiece *p =
			    v[i].np == 1 ? &v[i].p[0] : &v[i].many[k];
			pr.bytes_total +=
			    (int64_t)ed_k_row_bytes(p->dt, p->cols) * p->rows;
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < v[i].np; k++) {
			const struct lpiece *p =
			    v[i].np == 1 ? &v[i].p[0] : &v[i].many[k];
			struct ed_tensor t = {.name = v[i].name,
					      .dtype = p->dt,
					      .ndim = 2,
					      .shape = {p->rows, p->cols},
					      .data = p->data};
			if ((rc = write_rows(pool, w, &t, v[i].dt, p->rows,
					     p->cols, err, errlen)))
				goto out;
			pr.bytes_in +=
			    (int64_t)ed_k_row_bytes(p->dt, p->cols) * p->rows;
			pr.bytes_out +=
			    (int64_t)ed_k_row_bytes(v[i].dt, p->cols) * p->rows;
			pr.weights += p->rows * p->cols;
		}
		pr.tensor++;
		pr.name = v[i].name;
		pr.dtype = v[i].dt;
		if (progress)
			progress(ud, &pr);
	}
	rc = ed_gguf_writer_close(w, err, errlen);
	w = NULL;
out:
	ed_gguf_writer_abort(w);
	free_plan(v, n);
	return rc;
}

int ed_model_quantize(const char *src, const char *out, int kind, int threads,
		      ed_quantize_fn progress, void *ud, char *err,
		      size_t errlen)
{
	return ed_model_quantize_layout(src, out, kind, ED_LAYOUT_ERNIE_DOC,
					threads, progress, ud, err, errlen);
}

int ed_model_quantize_layout(const char *src, const char *out, int kind,
			     enum ed_layout layout, int threads,
			     ed_quantize_fn progress, void *ud, char *err,
			     size_t errlen)
{
	struct ed_pool *pool = NULL;
	struct ed_model *m = NULL;
	struct ed_gguf_writer *w = NULL;
	struct ed_quantize_progress pr = {0};
	enum ed_dtype *types = NULL;
	struct roles roles = {0};
	size_t n;
	int rc;

	if (kind < 0 || kind >= (int)ED_ARRAY_LEN(kinds))
		return ed_err(err, errlen, ED_EINVAL, "unknown quantization");
	if (ed_pool_new(&pool, threads > 0 ? threads : 1))
		return ed_err(err, errlen, ED_ENOMEM, "cannot start threads");
	if ((rc = ed_model_open(&m, src, NULL, NULL, err, errlen))) {
		ed_pool_free(pool);
		return rc;
	}
	if (layout == ED_LAYOUT_LLAMA) {
		rc = quantize_llama(m, src, out, kind, pool, progress, ud, err,
				    errlen);
		goto out;
	}
	if ((rc = collect_roles(m, &roles))) {
		rc = ed_err(err, errlen, rc, "out of memory");
		goto out;
	}
	n = n_tensors(m);
	types = calloc(n ? n : 1, sizeof *types);
	if (!types) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = ed_gguf_writer_open(&w, out, err, errlen)) ||
	    (rc = copy_meta(w, m, src, kind, err, errlen)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct ed_tensor *t = tensor(m, i);
		if (!floating(t->dtype) || t->ndim < 1 || t->ndim > 4)
			continue; /* not weights: left out */
		types[i] = choose(t, kind, &roles);
		pr.bytes_total += (int64_t)t->nbytes;
		pr.tensors++;
		if ((rc = ed_gguf_writer_tensor(w, t->name, types[i], t->ndim,
						t->shape))) {
			rc = ed_err(err, errlen, rc, "tensor '%s': %s", t->name,
				    ed_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct ed_tensor *t = tensor(m, i);
		int64_t inner = t->shape[t->ndim - 1], rows = 1;
		size_t rb_out;
		if (!floating(t->dtype) || t->ndim < 1 || t->ndim > 4)
			continue;
		for (int d = 0; d < t->ndim - 1; d++)
			rows *= t->shape[d];
		rb_out = ed_k_row_bytes(types[i], inner);
		if ((rc = write_rows(pool, w, t, types[i], rows, inner, err,
				     errlen)))
			goto out;
		pr.tensor++;
		pr.name = t->name;
		pr.dtype = types[i];
		pr.bytes_in += (int64_t)t->nbytes;
		pr.bytes_out += (int64_t)(rb_out * (size_t)rows);
		pr.weights += rows * inner;
		if (progress)
			progress(ud, &pr);
	}
	rc = ed_gguf_writer_close(w, err, errlen);
	w = NULL;
out:
	ed_gguf_writer_abort(w);
	free_roles(&roles);
	free(types);
	ed_model_close(m);
	ed_pool_free(pool);
	return rc;
}
