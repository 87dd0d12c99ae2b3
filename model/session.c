/*
 * session.c - a worker's state over a shared model: thread pool, KV cache,
 * logits; prefill (vision tower, placeholder merge, decoder), one-token
 * steps, sampling (greedy, temperature, top-k, top-p, seeded) and the
 * generation loop with its per-token callback and stop rules.
 */
#include "model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ed_session_new(struct ed_session **out, const struct ed_model *m,
		   const struct ed_session_opts *o, char *err, size_t errlen)
{
	struct ed_session *s;
	int threads = o && o->threads > 0 ? o->threads : 1;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	s->m = m;
	s->max_ctx = o && o->max_ctx > 0 ? o->max_ctx : 8192;
	s->logits = malloc((size_t)m->cfg.vocab * sizeof(float));
	if (o && o->pool)
		s->pool = o->pool; /* borrowed */
	else if (ed_pool_new(&s->pool, threads))
		s->pool = NULL;
	else
		s->own_pool = true;
	if (!s->logits || !s->pool) {
		ed_session_free(s);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

struct ed_pool *ed_session_pool(struct ed_session *s)
{
	return s->pool;
}

size_t ed_session_kv_bytes(const struct ed_session *s)
{
	return 2 * (size_t)s->kv_cap * (size_t)s->m->cfg.layers *
	       (size_t)s->m->cfg.kv_heads * (size_t)s->m->cfg.head_dim *
	       sizeof(float);
}

void ed_session_free(struct ed_session *s)
{
	if (!s)
		return;
	if (s->own_pool)
		ed_pool_free(s->pool);
	for (int l = 0; s->kcache && l < s->m->cfg.layers; l++) {
		free(s->kcache[l]);
		free(s->vcache[l]);
	}
	free(s->kcache);
	free(s->vcache);
	free(s->logits);
	free(s);
}

void ed_session_set_trace(struct ed_session *s, ed_trace_fn fn, void *ud)
{
	s->trace = fn;
	s->trace_ud = ud;
}

int64_t ed_session_next_pos(const struct ed_session *s)
{
	return s->next_pos;
}

void ed_session_timings(const struct ed_session *s, double *ms_vision,
			double *ms_decoder)
{
	*ms_vision = s->ms_vision;
	*ms_decoder = s->ms_decoder;
}

/*
 * Run the prompt from position start on (0: from scratch; else what the
 * cache holds is p's first start tokens): new images through the vision
 * tower, the placeholder merge, the decoder.
 */
static int run_prompt(struct ed_session *s, const struct ed_prompt *p,
		      int64_t start, const float **logits, char *err,
		      size_t errlen)
{
	const struct ed_config *c = &s->m->cfg;
	int64_t H = c->hidden, n = (int64_t)p->n - start, tokens = 0,
		before = 0;
	size_t first = 0;
	float *x, *img = NULL;
	int32_t *pos = NULL;
	int rc = 0;

	if (n <= 0)
		return ed_err(err, errlen, ED_EINVAL,
			      "nothing new to run (%zu tokens, %lld cached)",
			      p->n, (long long)start);
	if (start + n > s->max_ctx)
		return ed_err(
		    err, errlen, ED_ETOOBIG,
		    "a prompt of %lld tokens exceeds the context of %lld",
		    (long long)(start + n), (long long)s->max_ctx);
	if ((rc = ed_session_reserve(s, start + n, err, errlen)))
		return rc;
	for (int64_t i = 0; i < start; i++)
		before += p->mm[i];
	for (int64_t i = start; i < start + n; i++)
		tokens += p->mm[i];
	if (tokens && !c->has_vision)
		return ed_err(
		    err, errlen, ED_EINVAL,
		    "the prompt has images but the model no vision tower");
	/* the images already in the cache */
	for (int64_t seen = 0; first < p->n_images && seen < before; first++)
		seen += ed_image_tokens(c, &p->images[first]);
	{
		int64_t seen = 0;
		for (size_t i = 0; i < first; i++)
			seen += ed_image_tokens(c, &p->images[i]);
		if (seen != before)
			return ed_err(err, errlen, ED_EINVAL,
				      "an image straddles the cached prefix");
	}
	x = malloc((size_t)(n * H) * sizeof *x);
	pos = malloc((size_t)(3 * n) * sizeof *pos);
	if (tokens)
		img = malloc((size_t)(tokens * H) * sizeof *img);
	if (!x || !pos || (tokens && !img)) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	for (int r = 0; r < 3; r++)
		memcpy(pos + r * n, p->pos + (int64_t)r * (int64_t)p->n + start,
		       (size_t)n * sizeof *pos);
	{
		double t0 = ed_now_ms();
		if (tokens && (rc = ed_vision_forward(s, p->images + first,
						      p->n_images - first, img,
						      err, errlen)))
			goto out;
		s->ms_vision = ed_now_ms() - t0;
	}
	ed_embed(s->m, p->ids + start, n, x);
	{
		int64_t r = 0;
		for (int64_t i = 0; i < n; i++)
			if (p->mm[start + i])
				memcpy(x + i * H, img + (r++) * H,
				       (size_t)H * sizeof *x);
	}
	if (s->trace && start == 0) {
		int64_t *tmp = malloc((size_t)(3 * n) * sizeof *tmp);
		if (tmp) {
			for (int64_t i = 0; i < n; i++)
				tmp[i] = p->ids[i];
			ed_trace_i64(s, "input_ids", tmp, 1, (int64_t[]){n});
			if (!s->m->cfg.rope_3d) {
				/* a text model's 1-D positions: one row [L],
				 * as transformers feeds its rotary embedding */
				for (int64_t i = 0; i < n; i++)
					tmp[i] = p->pos[i];
				ed_trace_i64(s, "position_ids", tmp, 1,
					     (int64_t[]){n});
				free(tmp);
				tmp = NULL;
			}
		}
		if (tmp) {
			for (int64_t i = 0; i < n; i++)
				tmp[i] = p->mm[i];
			ed_trace_i64(s, "mm_token_type_ids", tmp, 1,
				     (int64_t[]){n});
			for (int64_t i = 0; i < n; i++)
				tmp[i] = p->vision[i];
			ed_trace_i64(s, "moe_mm_token_type_ids", tmp, 1,
				     (int64_t[]){n});
			for (int64_t i = 0; i < 3 * n; i++)
				tmp[i] = p->pos[i];
			ed_trace_i64(s, "position_ids", tmp, 2,
				     (int64_t[]){3, n});
			ed_trace_i64(s, "rope_delta", &p->rope_delta, 1,
				     (int64_t[]){1});
			free(tmp);
		}
		ed_trace_f32(s, "inputs_embeds", x, 2, (int64_t[]){n, H});
	}
	{
		double t0 = ed_now_ms();
		if ((rc = ed_decoder_forward(s, x, n, pos, p->vision + start,
					     err, errlen)))
			goto out;
		s->ms_decoder = ed_now_ms() - t0;
	}
	s->next_pos = (int64_t)p->n + p->rope_delta;
	*logits = s->logits;
out:
	free(x);
	free(pos);
	free(img);
	return rc;
}

int ed_session_prefill(struct ed_session *s, const struct ed_prompt *p,
		       const float **logits, char *err, size_t errlen)
{
	s->n_past = 0;
	return run_prompt(s, p, 0, logits, err, errlen);
}

int64_t ed_session_cached(const struct ed_session *s)
{
	return s->n_past;
}

int ed_session_step(struct ed_session *s, int32_t token, const float **logits,
		    char *err, size_t errlen)
{
	int rc = ed_decoder_step(&s, 1, &token, err, errlen);

	if (!rc)
		*logits = s->logits;
	return rc;
}

int ed_session_step_batch(struct ed_session *const *s, int n,
			  const int32_t *tokens, char *err, size_t errlen)
{
	return ed_decoder_step(s, n, tokens, err, errlen);
}

const float *ed_session_logits(const struct ed_session *s)
{
	return s->logits;
}

int64_t ed_session_step_bytes(const struct ed_session *s)
{
	return s->step_bytes;
}

/* ---- sampling ------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: fast, and fixed for a given seed */
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

struct cand {
	float p;
	int32_t id;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int32_t ed_model_sample(const float *logits, int32_t vocab,
			const struct ed_gen_params *g, uint64_t *rng)
{
	int32_t best = 0, n = vocab;
	struct cand *c;
	double sum = 0, u, acc = 0;
	float mx;

	for (int32_t i = 1; i < vocab; i++)
		if (logits[i] > logits[best])
			best = i;
	if (!g || g->temperature <= 0)
		return best;
	c = malloc((size_t)vocab * sizeof *c);
	if (!c)
		return best;
	mx = logits[best];
	for (int32_t i = 0; i < vocab; i++) {
		c[i].id = i;
		c[i].p = expf((logits[i] - mx) / g->temperature);
	}
	qsort(c, (size_t)vocab, sizeof *c, cmp_cand);
	if (g->top_k > 0 && g->top_k < n)
		n = g->top_k;
	for (int32_t i = 0; i < n; i++)
		sum += c[i].p;
	if (g->top_p > 0 && g->top_p < 1) {
		double keep = 0;
		for (int32_t i = 0; i < n; i++) {
			keep += c[i].p / sum;
			if (keep >= g->top_p) {
				n = i + 1;
				break;
			}
		}
		sum = 0;
		for (int32_t i = 0; i < n; i++)
			sum += c[i].p;
	}
	u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * sum;
	best = c[n - 1].id;
	for (int32_t i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc) {
			best = c[i].id;
			break;
		}
	}
	free(c);
	return best;
}

/* ---- generation ---------------------------------------------------- */

static bool is_stop(const struct ed_model *m, int32_t id)
{
	return id == m->ids.eos ||
	       (m->ids.end_of_sentence >= 0 && id == m->ids.end_of_sentence);
}

void ed_gen_result_release(struct ed_gen_result *r)
{
	if (!r)
		return;
	free(r->text);
	free(r->tokens);
	memset(r, 0, sizeof *r);
}

int ed_gen_begin(struct ed_gen *G, struct ed_session *s,
		 const struct ed_prompt *p, bool cont,
		 const struct ed_gen_params *g, ed_token_fn cb, void *ud,
		 struct ed_gen_result *r, char *err, size_t errlen)
{
	int rc;

	memset(G, 0, sizeof *G);
	memset(r, 0, sizeof *r);
	G->s = s;
	G->g = *g;
	G->cb = cb;
	G->ud = ud;
	G->r = r;
	G->rng = g->seed;
	G->t0 = ed_now_ms();
	G->cap = 64;
	r->tokens_in = (int64_t)p->n - (cont ? s->n_past : 0);
	r->tokens = malloc(G->cap * sizeof *r->tokens);
	if (!r->tokens)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&G->text, 0);
	if (g->constraint) {
		const struct ed_constraint *c = g->constraint;
		if (ed_cstate_new(&G->cs, ed_constraint_schema(c)) ||
		    !(G->scratch = malloc(ed_constraint_words(c) *
					  sizeof *G->scratch)) ||
		    !(G->masked = malloc((size_t)s->m->cfg.vocab *
					 sizeof *G->masked))) {
			ed_gen_abort(G);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
	}
	if (!cont)
		s->n_past = 0;
	if ((rc = run_prompt(s, p, s->n_past, &G->logits, err, errlen))) {
		ed_gen_abort(G);
		return rc;
	}
	G->t1 = ed_now_ms();
	r->ms_vision = s->ms_vision;
	r->ms_prefill = G->t1 - G->t0 - s->ms_vision;
	r->finish_reason = "length";
	return 0;
}

static void gen_free(struct ed_gen *G)
{
	ed_cstate_free(G->cs);
	free(G->scratch);
	free(G->masked);
	G->cs = NULL;
	G->scratch = NULL;
	G->masked = NULL;
}

void ed_gen_abort(struct ed_gen *G)
{
	gen_free(G);
	ed_buf_release(&G->text);
	ed_gen_result_release(G->r);
}

/* The next token under the grammar: the logits of the tokens it refuses
 * at -inf, then the sampler. -1: the value is complete (stop), -2: no
 * token can go on, -3: out of memory. */
static int32_t sample_constrained(struct ed_gen *G, int32_t vocab)
{
	struct ed_constraint *c = G->g.constraint;
	const struct ed_schema *sc = ed_constraint_schema(c);
	const uint64_t *bits;
	bool stop_ok, any = false;

	if (ed_cstate_final(sc, G->cs))
		return -1;
	bits = ed_constraint_mask(c, G->cs, G->scratch, &stop_ok);
	if (!bits)
		return -3;
	for (int32_t i = 0; i < vocab; i++) {
		bool ok = bits[i >> 6] >> (i & 63) & 1;
		if (!ok && stop_ok && ed_constraint_is_stop(c, i))
			ok = true;
		G->masked[i] = ok ? G->logits[i] : -INFINITY;
		any |= ok;
	}
	if (!any)
		return -2;
	return ed_model_sample(G->masked, vocab, &G->g, &G->rng);
}

/* The output is complete: the rest of its text to the callback, the text
 * into the result. */
static void gen_finish(struct ed_gen *G)
{
	const struct ed_tokenizer *tok = G->s->m->tok;
	struct ed_gen_result *r = G->r;

	r->ms_decode = ed_now_ms() - G->t1;
	if (tok) {
		ed_buf_reset(&G->text);
		ed_tok_decode(tok, r->tokens, r->n_tokens, true, &G->text);
		if (G->cb && G->text.len > G->emitted &&
		    strcmp(r->finish_reason, "callback"))
			G->cb(G->ud, -1, G->text.data + G->emitted,
			      G->text.len - G->emitted);
	}
	ed_buf_reserve(&G->text, 0);
	r->text = ed_buf_detach(&G->text, NULL);
	gen_free(G);
}

int ed_gen_next(struct ed_gen *G, char *err, size_t errlen)
{
	struct ed_session *s = G->s;
	const struct ed_model *m = s->m;
	const struct ed_tokenizer *tok = m->tok;
	const struct ed_gen_params *g = &G->g;
	struct ed_gen_result *r = G->r;
	int32_t id;
	int rc;

	if (g->max_new_tokens > 0 && (int)r->n_tokens >= g->max_new_tokens)
		goto done;
	if (s->n_past >= s->max_ctx)
		goto done;
	if (g->constraint && r->n_tokens >= g->n_forced) {
		id = sample_constrained(G, m->cfg.vocab);
		if (id == -3) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto fail;
		}
		if (id < 0) {
			r->finish_reason = id == -1 ? "stop" : "grammar";
			goto done;
		}
		if (ed_constraint_is_stop(g->constraint, id)) {
			r->finish_reason = "stop";
			goto done;
		}
		/* the mask allowed it: the grammar takes it */
		ed_constraint_advance(g->constraint, G->cs, id);
	} else {
		id = r->n_tokens < g->n_forced
			 ? g->forced[r->n_tokens]
			 : ed_model_sample(G->logits, m->cfg.vocab, g, &G->rng);
		if (g->constraint &&
		    ed_constraint_advance(g->constraint, G->cs, id)) {
			r->finish_reason = "grammar";
			goto done;
		}
	}
	if (!g->ignore_eos && is_stop(m, id)) {
		r->finish_reason = "stop";
		goto done;
	}
	if (r->n_tokens == G->cap) {
		int32_t *nt = realloc(r->tokens, 2 * G->cap * sizeof *nt);
		if (!nt) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto fail;
		}
		r->tokens = nt;
		G->cap *= 2;
	}
	r->tokens[r->n_tokens++] = id;
	if (tok) {
		/* decode everything so far; hand out the new text once a
		 * UTF-8 sequence spelled in byte pieces is complete */
		const char *pc =
		    id < ed_tok_size(tok) ? ed_tok_piece(tok, id) : NULL;
		unsigned bv;
		bool pending = false;
		if (pc && sscanf(pc, "<0x%2X>", &bv) == 1) {
			if (bv >= 0xC0)
				G->need = bv >= 0xF0 ? 3 : bv >= 0xE0 ? 2 : 1;
			else if (bv >= 0x80 && G->need > 0)
				G->need--;
			else
				G->need = 0;
			pending = G->need > 0;
		} else {
			G->need = 0;
		}
		ed_buf_reset(&G->text);
		if ((rc = ed_tok_decode(tok, r->tokens, r->n_tokens, true,
					&G->text))) {
			rc = ed_err(err, errlen, rc, "out of memory");
			goto fail;
		}
		if (!pending && G->cb && G->text.len >= G->emitted) {
			if (G->cb(G->ud, id, G->text.data + G->emitted,
				  G->text.len - G->emitted)) {
				G->emitted = G->text.len;
				r->finish_reason = "callback";
				goto done;
			}
			G->emitted = G->text.len;
		}
	} else if (G->cb && G->cb(G->ud, id, "", 0)) {
		r->finish_reason = "callback";
		goto done;
	}
	if (g->constraint &&
	    ed_cstate_final(ed_constraint_schema(g->constraint), G->cs)) {
		r->finish_reason = "stop"; /* the value is complete */
		goto done;
	}
	G->next = id;
	return 0;
done:
	gen_finish(G);
	return 1;
fail:
	ed_gen_abort(G);
	return rc;
}

void ed_gen_stepped(struct ed_gen *G)
{
	G->logits = G->s->logits;
}

static int generate(struct ed_session *s, const struct ed_prompt *p, bool cont,
		    const struct ed_gen_params *g, ed_token_fn cb, void *ud,
		    struct ed_gen_result *r, char *err, size_t errlen)
{
	struct ed_gen G;
	int rc;

	if ((rc = ed_gen_begin(&G, s, p, cont, g, cb, ud, r, err, errlen)))
		return rc;
	while ((rc = ed_gen_next(&G, err, errlen)) == 0) {
		if ((rc = ed_decoder_step(&s, 1, &G.next, err, errlen))) {
			ed_gen_abort(&G);
			return rc;
		}
		ed_gen_stepped(&G);
	}
	return rc < 0 ? rc : 0;
}

int ed_session_generate(struct ed_session *s, const struct ed_prompt *p,
			const struct ed_gen_params *g, ed_token_fn cb, void *ud,
			struct ed_gen_result *r, char *err, size_t errlen)
{
	return generate(s, p, false, g, cb, ud, r, err, errlen);
}

int ed_session_continue(struct ed_session *s, const struct ed_prompt *p,
			const struct ed_gen_params *g, ed_token_fn cb, void *ud,
			struct ed_gen_result *r, char *err, size_t errlen)
{
	return generate(s, p, true, g, cb, ud, r, err, errlen);
}
