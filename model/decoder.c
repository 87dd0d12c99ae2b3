/*
 * decoder.c - the language model: per layer RMSNorm, GQA attention with
 * interleaved 3-D RoPE (pairs (2j, 2j+1); h and w alternate in the first
 * mrope[0] + mrope[1] pairs, t takes the rest; one row for text), the KV
 * cache, and a dense SwiGLU MLP or the modality-isolated MoE: each token
 * goes to its own pool's router (softmax; top-k chosen on probabilities
 * plus the correction bias; weights are the unbiased probabilities,
 * renormalized), plus shared experts on every token. Final RMSNorm and the
 * (tied or untied) head.
 */
#include "model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ed_embed(const struct ed_model *m, const int32_t *ids, int64_t n,
	      float *out)
{
	int64_t H = m->cfg.hidden;
	size_t rb = ed_k_row_bytes(m->embed.dt, H);

	for (int64_t i = 0; i < n; i++)
		ed_k_to_f32(out + i * H,
			    (const char *)m->embed.data + (size_t)ids[i] * rb,
			    m->embed.dt, (size_t)H);
}

/* Interleaved rotary embedding of nh heads per row, positions pos[3][n]
 * (rows t, h, w). */
static void rope_3d(const struct ed_config *c, float *x, int64_t n,
		    int64_t stride, int nh, const int32_t *pos, int64_t ntot,
		    int64_t col)
{
	int hd = c->head_dim, pairs = hd / 2, hw = c->mrope[0] + c->mrope[1];

	for (int64_t r = 0; r < n; r++) {
		for (int j = 0; j < pairs; j++) {
			int row = !c->rope_3d ? 0
				  : j >= hw   ? 0
					      : (j % 2 == 0 ? 1 : 2);
			double p = pos[row * ntot + col + r];
			double ang = p * pow(c->rope_theta, -2.0 * j / hd);
			float cs = (float)cos(ang), sn = (float)sin(ang);
			for (int h = 0; h < nh; h++) {
				float *v =
				    x + r * stride + (int64_t)h * hd + 2 * j;
				float a = v[0], b = v[1];
				v[0] = a * cs - b * sn;
				v[1] = b * cs + a * sn;
			}
		}
	}
}

static void swiglu_mlp(struct ed_session *s, const struct ed_wt *g,
		       const struct ed_wt *u, const struct ed_wt *d,
		       const float *x, int64_t n, float *out, float *tg,
		       float *tu)
{
	int64_t H = s->m->cfg.hidden, I = g->rows;

	if (g->dt == u->dt && u->rows == I)
		ed_k_matmul_pair(s->pool, tg, tu, x, n, g->data, u->data, g->dt,
				 I, H);
	else {
		ed_k_matmul(s->pool, tg, x, n, g->data, g->dt, I, H, NULL);
		ed_k_matmul(s->pool, tu, x, n, u->data, u->dt, I, H, NULL);
	}
	ed_k_swiglu(tg, tu, n * I);
	ed_k_matmul(s->pool, out, tg, n, d->data, d->dt, H, I, NULL);
}

struct route {
	int32_t e; /* expert within the pool */
	float w;
};

/* MoE for n tokens of xn: out = shared(x) + sum_k w_k expert_k(x). */
static int moe(struct ed_session *s, int layer, const float *xn, int64_t n,
	       const uint8_t *vision, float *out, char *err, size_t errlen)
{
	const struct ed_config *c = &s->m->cfg;
	const struct ed_layer *L = &s->m->layers[layer];
	int64_t H = c->hidden, K = c->moe_k;
	int E0 = c->experts[0], Emax = ED_MAX(c->experts[0], c->experts[1]);
	int64_t Imax = ED_MAX(ED_MAX(c->expert_inter[0], c->expert_inter[1]),
			      (int64_t)c->shared * c->expert_inter[0]);
	float *logits = malloc((size_t)(n * Emax) * sizeof *logits);
	float *lgp = malloc((size_t)(2 * n * Emax) * sizeof *lgp);
	float *prob = malloc((size_t)Emax * sizeof *prob);
	struct route *rt = malloc((size_t)(n * K) * sizeof *rt);
	int64_t *tid = malloc((size_t)(n * K) * sizeof *tid);
	float *xg = malloc((size_t)(n * H) * sizeof *xg);
	float *tg = malloc((size_t)(n * Imax) * sizeof *tg);
	float *tu = malloc((size_t)(n * Imax) * sizeof *tu);
	float *eo = malloc((size_t)(n * H) * sizeof *eo);
	int64_t *t_ids = NULL, *t_vis = NULL;
	float *t_w = NULL;
	int rc = 0;

	if (!logits || !lgp || !prob || !rt || !tid || !xg || !tg || !tu ||
	    !eo) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	if (s->trace) {
		t_ids = malloc((size_t)(n * K) * sizeof *t_ids);
		t_vis = malloc((size_t)n * sizeof *t_vis);
		t_w = malloc((size_t)(n * K) * sizeof *t_w);
		if (!t_ids || !t_vis || !t_w) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
	}
	/* router logits in float32 over the float32 routers [E][H]: each
	 * pool's router over every token when any token uses it (routers
	 * are small next to the experts), then each token reads its own */
	for (int pool = 0; pool < 2; pool++) {
		bool used = false;
		for (int64_t t = 0; t < n && !used; t++)
			used = (vision && vision[t] && c->experts[1] > 0
				    ? 1
				    : 0) == pool;
		if (used)
			ed_k_matmul(s->pool, lgp + pool * n * Emax, xn, n,
				    L->router[pool], ED_DT_F32,
				    c->experts[pool], H, NULL);
	}
	for (int64_t t = 0; t < n; t++) {
		int pool = vision && vision[t] && c->experts[1] > 0 ? 1 : 0;
		int E = c->experts[pool];
		const float *bias = L->bias[pool];
		float *lg = logits + t * Emax, sum = 0;

		memcpy(lg, lgp + pool * n * Emax + t * E,
		       (size_t)E * sizeof *lg);
		for (int e = 0; e < E; e++)
			prob[e] = lg[e];
		ed_k_softmax(prob, E);
		/* top-k by biased score, the unbiased probabilities as weights
		 */
		{
			bool taken[1024] = {false};
			for (int64_t k = 0; k < K; k++) {
				int best = -1;
				float bs = -INFINITY;
				for (int e = 0; e < E && e < 1024; e++) {
					float sc =
					    prob[e] + (bias ? bias[e] : 0);
					if (!taken[e] &&
					    (best < 0 || sc > bs)) {
						best = e;
						bs = sc;
					}
				}
				taken[best] = true;
				rt[t * K + k].e = best + (pool ? E0 : 0);
				rt[t * K + k].w = prob[best];
				sum += prob[best];
			}
		}
		sum = sum > c->moe_norm_min ? sum : c->moe_norm_min;
		for (int64_t k = 0; k < K; k++) {
			rt[t * K + k].w /= sum;
			if (t_ids) {
				t_ids[t * K + k] =
				    rt[t * K + k].e - (pool ? E0 : 0);
				t_w[t * K + k] = rt[t * K + k].w;
			}
		}
		if (t_vis)
			t_vis[t] = pool;
	}
	if (s->trace) {
		char name[64];
		/* each token's own router: pad the narrower pool with zeros */
		if (c->experts[0] != Emax || c->experts[1] != Emax)
			for (int64_t t = 0; t < n; t++) {
				int E = c->experts[t_vis[t]];
				for (int e = E; e < Emax; e++)
					logits[t * Emax + e] = 0;
			}
		snprintf(name, sizeof name, "router_logits.layer%d", layer);
		ed_trace_f32(s, name, logits, 2, (int64_t[]){n, Emax});
		snprintf(name, sizeof name, "router_topk_ids.layer%d", layer);
		ed_trace_i64(s, name, t_ids, 2, (int64_t[]){n, K});
		snprintf(name, sizeof name, "router_topk_weights.layer%d",
			 layer);
		ed_trace_f32(s, name, t_w, 2, (int64_t[]){n, K});
		snprintf(name, sizeof name, "router_is_vision.layer%d", layer);
		ed_trace_i64(s, name, t_vis, 1, (int64_t[]){n});
	}

	/* shared experts on every token */
	if (L->has_shared)
		swiglu_mlp(s, &L->gate, &L->up, &L->down, xn, n, out, tg, tu);
	else
		memset(out, 0, (size_t)(n * H) * sizeof *out);
	/* each selected expert once, over the tokens routed to it */
	for (int pool = 0; pool < 2; pool++)
		for (int e = 0; e < c->experts[pool]; e++) {
			int32_t id = e + (pool ? E0 : 0);
			const struct ed_expert *x = &L->experts[pool][e];
			int64_t m = 0;
			for (int64_t i = 0; i < n * K; i++)
				if (rt[i].e == id) {
					memcpy(xg + m * H, xn + (i / K) * H,
					       (size_t)H * sizeof *xg);
					tid[m++] = i;
				}
			if (!m)
				continue;
			swiglu_mlp(s, &x->gate, &x->up, &x->down, xg, m, eo, tg,
				   tu);
			for (int64_t j = 0; j < m; j++) {
				float w = rt[tid[j]].w;
				float *o = out + (tid[j] / K) * H;
				for (int64_t h = 0; h < H; h++)
					o[h] += w * eo[j * H + h];
			}
		}
out:
	free(logits);
	free(lgp);
	free(prob);
	free(rt);
	free(tid);
	free(xg);
	free(tg);
	free(tu);
	free(eo);
	free(t_ids);
	free(t_vis);
	free(t_w);
	return rc;
}

int ed_decoder_forward(struct ed_session *s, float *x, int64_t n,
		       const int32_t *pos, const uint8_t *vision, char *err,
		       size_t errlen)
{
	const struct ed_model *m = s->m;
	const struct ed_config *c = &m->cfg;
	int64_t H = c->hidden, hd = c->head_dim, qd = (int64_t)c->heads * hd,
		kvd = (int64_t)c->kv_heads * hd, V = c->vocab;
	int64_t Imax = ED_MAX((int64_t)c->dense_inter,
			      (int64_t)c->shared * c->expert_inter[0]);
	float *xn, *q, *att, *o, *tg, *tu;
	int rc = 0;

	if (s->n_past + n > s->max_ctx)
		return ed_err(err, errlen, ED_ETOOBIG,
			      "%lld tokens exceed the context of %lld",
			      (long long)(s->n_past + n),
			      (long long)s->max_ctx);
	xn = malloc((size_t)(n * H) * sizeof *xn);
	q = malloc((size_t)(n * qd) * sizeof *q);
	att = malloc((size_t)(n * qd) * sizeof *att);
	o = malloc((size_t)(n * H) * sizeof *o);
	tg = malloc((size_t)(n * Imax + 1) * sizeof *tg);
	tu = malloc((size_t)(n * Imax + 1) * sizeof *tu);
	if (!xn || !q || !att || !o || !tg || !tu) {
		rc = ed_err(err, errlen, ED_ENOMEM,
			    "out of memory for %lld tokens", (long long)n);
		goto out;
	}
	for (int l = 0; l < c->layers; l++) {
		const struct ed_layer *L = &m->layers[l];
		float *kc =
		    s->kcache + ((int64_t)l * s->max_ctx + s->n_past) * kvd;
		float *vc =
		    s->vcache + ((int64_t)l * s->max_ctx + s->n_past) * kvd;
		struct ed_attn a = {
		    n,	     s->n_past + n, c->heads,  c->kv_heads,
		    (int)hd, kvd,	    s->n_past, 1.0f / sqrtf((float)hd)};

		ed_k_rmsnorm(xn, x, L->ln_in, n, H, c->rms_eps);
		ed_k_matmul(s->pool, q, xn, n, L->q.data, L->q.dt, qd, H, NULL);
		ed_k_matmul(s->pool, kc, xn, n, L->k.data, L->k.dt, kvd, H,
			    NULL);
		ed_k_matmul(s->pool, vc, xn, n, L->v.data, L->v.dt, kvd, H,
			    NULL);
		rope_3d(c, q, n, qd, c->heads, pos, n, 0);
		rope_3d(c, kc, n, kvd, c->kv_heads, pos, n, 0);
		ed_k_attention(s->pool, att, q,
			       s->kcache + (int64_t)l * s->max_ctx * kvd,
			       s->vcache + (int64_t)l * s->max_ctx * kvd, &a);
		ed_k_matmul(s->pool, o, att, n, L->o.data, L->o.dt, H, qd,
			    NULL);
		ed_k_add(x, o, n * H);

		ed_k_rmsnorm(xn, x, L->ln_post, n, H, c->rms_eps);
		if (L->moe) {
			if ((rc = moe(s, l, xn, n, vision, o, err, errlen)))
				goto out;
		} else {
			swiglu_mlp(s, &L->gate, &L->up, &L->down, xn, n, o, tg,
				   tu);
		}
		ed_k_add(x, o, n * H);
		ed_trace_f32(s, "hidden_states", x, 3, (int64_t[]){1, n, H});
	}
	ed_k_rmsnorm(xn, x, m->norm, n, H, c->rms_eps);
	ed_trace_f32(s, "final_hidden", xn, 2, (int64_t[]){n, H});
	if (s->all_logits) {
		float *all = malloc((size_t)(n * V) * sizeof *all);
		if (!all) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
		ed_k_matmul(s->pool, all, xn, n, m->head.data, m->head.dt, V, H,
			    NULL);
		ed_trace_f32(s, "logits", all, 2, (int64_t[]){n, V});
		memcpy(s->logits, all + (n - 1) * V, (size_t)V * sizeof *all);
		free(all);
	} else {
		ed_k_matmul(s->pool, s->logits, xn + (n - 1) * H, 1,
			    m->head.data, m->head.dt, V, H, NULL);
	}
	s->n_past += n;
out:
	free(xn);
	free(q);
	free(att);
	free(o);
	free(tg);
	free(tu);
	return rc;
}
