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
	FILE *f;
	struct ed_buf b;
	char chunk[65536];
	size_t n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "rb");
	*len = 0;
	if (!f)
		return NULL;
	ed_buf_init(&b, 512u << 20);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (ed_buf_append(&b, chunk, n)) {
			fclose(f);
			ed_buf_release(&b);
			return NULL;
		}
	fclose(f);
	ed_buf_reserve(&b, 0);
	return ed_buf_detach(&b, len);
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

int ed_model_quantize(const char *src, const char *out, int kind, int threads,
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
		size_t rb_in, rb_out;
		unsigned char *buf;
		float *row;
		if (!floating(t->dtype) || t->ndim < 1 || t->ndim > 4)
			continue;
		for (int d = 0; d < t->ndim - 1; d++)
			rows *= t->shape[d];
		rb_in = ed_k_row_bytes(t->dtype, inner);
		rb_out = ed_k_row_bytes(types[i], inner);
		buf = malloc(rb_out * (size_t)rows + 1);
		row = malloc((size_t)inner * sizeof *row + 1);
		if (!buf || !row) {
			free(buf);
			free(row);
			rc = ed_err(err, errlen, ED_ENOMEM,
				    "out of memory for tensor '%s'", t->name);
			goto out;
		}
		{
			/* rows are independent: all threads on one tensor */
			struct qjob j = {t,	 types[i], buf,	 rb_in,
					 rb_out, inner,	   NULL, 0};
			j.rowbuf = calloc((size_t)ed_pool_threads(pool),
					  (size_t)inner * sizeof(float));
			if (!j.rowbuf) {
				free(buf);
				free(row);
				rc = ed_err(err, errlen, ED_ENOMEM,
					    "out of memory");
				goto out;
			}
			ed_pool_for(pool, rows, 1, quantize_rows, &j);
			free(j.rowbuf);
		}
		rc = ed_gguf_writer_data(w, buf, rb_out * (size_t)rows, err,
					 errlen);
		free(buf);
		free(row);
		if (rc)
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
