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

/*
 * One token's experts from its router logits lg (E of its pool): softmax,
 * the top k by probability plus the correction bias, their unbiased
 * probabilities renormalized as weights. prob is E floats of scratch;
 * rt gets k routes, experts numbered across both pools.
 */
static void route(const struct ed_config *c, const struct ed_layer *L, int pool,
		  const float *lg, float *prob, struct route *rt)
{
	int E = c->experts[pool], E0 = c->experts[0];
	int64_t K = c->moe_k;
	const float *bias = L->bias[pool];
	bool taken[1024] = {false};
	float sum = 0;

	for (int e = 0; e < E; e++)
		prob[e] = lg[e];
	ed_k_softmax(prob, E);
	for (int64_t k = 0; k < K; k++) {
		int best = -1;
		float bs = -INFINITY;
		for (int e = 0; e < E && e < 1024; e++) {
			float sc = prob[e] + (bias ? bias[e] : 0);
			if (!taken[e] && (best < 0 || sc > bs)) {
				best = e;
				bs = sc;
			}
		}
		taken[best] = true;
		rt[k].e = best + (pool ? E0 : 0);
		rt[k].w = prob[best];
		sum += prob[best];
	}
	sum = sum > c->moe_norm_min ? sum : c->moe_norm_min;
	for (int64_t k = 0; k < K; k++)
		rt[k].w /= sum;
}

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
		float *lg = logits + t * Emax;

		memcpy(lg, lgp + pool * n * Emax + t * E,
		       (size_t)E * sizeof *lg);
		route(c, L, pool, lg, prob, rt + t * K);
		for (int64_t k = 0; k < K; k++) {
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
	int rc;

	if ((rc = ed_session_reserve(s, s->n_past + n, err, errlen)))
		return rc;
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
		struct ed_attn a = {
		    n,	     s->n_past + n, c->heads,  c->kv_heads,
		    (int)hd, kvd,	    s->n_past, 1.0f / sqrtf((float)hd)};

		ed_k_rmsnorm(xn, x, L->ln_in, n, H, c->rms_eps);
		ed_k_matmul(s->pool, q, xn, n, L->q.data, L->q.dt, qd, H, NULL);
		/* straight into the layer's cache, rows kvd apart */
		ed_k_matmul(s->pool, ed_k_at(s, l, s->n_past), xn, n, L->k.data,
			    L->k.dt, kvd, H, NULL);
		ed_k_matmul(s->pool, ed_v_at(s, l, s->n_past), xn, n, L->v.data,
			    L->v.dt, kvd, H, NULL);
		rope_3d(c, q, n, qd, c->heads, pos, n, 0);
		rope_3d(c, ed_k_at(s, l, s->n_past), n, kvd, c->kv_heads, pos,
			n, 0);
		ed_k_attention(s->pool, att, q, ed_k_at(s, l, 0),
			       ed_v_at(s, l, 0), &a);
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

/* ---- decode: one token for each of several sessions ------------------- */

/* Per-step scratch of a batch of n: one allocation, carved up. */
struct step_mem {
	float *x, *xn, *q, *k, *v, *att, *o, *lg, *prob;
	float *tg, *tu, *eo; /* per route (expert, sequence) and shared */
	struct route *rt;
	void *all;
};

static int step_mem_init(struct step_mem *m, const struct ed_config *c, int n)
{
	int64_t H = c->hidden, hd = c->head_dim, qd = (int64_t)c->heads * hd,
		kvd = (int64_t)c->kv_heads * hd, K = c->moe_k;
	int Emax = ED_MAX(c->experts[0], c->experts[1]);
	int64_t Imax = ED_MAX(ED_MAX((int64_t)c->dense_inter,
				     (int64_t)c->shared * c->expert_inter[0]),
			      ED_MAX(c->expert_inter[0], c->expert_inter[1]));
	/* routes: k per sequence and one shared (or dense) per sequence */
	int64_t R = (int64_t)n * (K + 1);
	size_t fl =
	    (size_t)n * (size_t)(2 * H + qd + 2 * kvd + qd + H + Emax + Emax) +
	    (size_t)R * (size_t)(2 * Imax + H);
	float *f;

	memset(m, 0, sizeof *m);
	m->all = malloc(fl * sizeof(float) + (size_t)R * sizeof *m->rt);
	if (!m->all)
		return ED_ENOMEM;
	f = m->all;
	m->x = f, f += (size_t)n * H;
	m->xn = f, f += (size_t)n * H;
	m->q = f, f += (size_t)n * qd;
	m->k = f, f += (size_t)n * kvd;
	m->v = f, f += (size_t)n * kvd;
	m->att = f, f += (size_t)n * qd;
	m->o = f, f += (size_t)n * H;
	m->lg = f, f += (size_t)n * Emax;
	m->prob = f, f += (size_t)n * Emax;
	m->tg = f, f += (size_t)R * Imax;
	m->tu = f, f += (size_t)R * Imax;
	m->eo = f, f += (size_t)R * H;
	m->rt = (struct route *)f;
	return 0;
}

/* ed_k_matvec, counting the weight bytes it reads. */
static int mv_run(struct ed_pool *p, const struct ed_mv *mv, int n,
		  int64_t *bytes)
{
	for (int k = 0; k < n; k++)
		*bytes += (int64_t)ed_k_row_bytes(mv[k].dt, mv[k].K) * mv[k].N;
	return ed_k_matvec(p, mv, n);
}

/* One stored matrix times n vectors. */
static int mv_one(struct ed_pool *p, const struct ed_wt *w, int n, float **x,
		  float **y, int64_t *bytes)
{
	struct ed_mv mv = {
	    w->data, w->dt, w->rows, w->cols, NULL, n, (const float *const *)x,
	    y};

	return mv_run(p, &mv, 1, bytes);
}

/* Pointers to row i of n rows of w floats. */
static void rows_of(float *base, int64_t w, int n, float **out)
{
	for (int i = 0; i < n; i++)
		out[i] = base + (int64_t)i * w;
}

/* One (token, expert) pair of a step's MLP: expert -1 is the shared
 * experts or the dense MLP. */
struct step_route {
	int tok, expert;
	float w;
	float *g, *u, *e; /* gate, up (then SwiGLU), down outputs */
};

static const struct ed_expert *expert_of(const struct ed_config *c,
					 const struct ed_layer *L, int e)
{
	int pool = e >= c->experts[0];
	return &L->experts[pool][e - (pool ? c->experts[0] : 0)];
}

/*
 * The MLP of a layer for n single tokens xn[i] into out[i]: the dense
 * SwiGLU, or the MoE (each token's route from its text router, the
 * shared experts on all, every chosen expert once over the tokens that
 * chose it). Two matvec jobs: gate and up of everything, then the downs.
 */
static int step_mlp(struct ed_session *s, struct step_mem *m, int layer, int n,
		    float **xn, float **out, int64_t *bytes)
{
	const struct ed_config *c = &s->m->cfg;
	const struct ed_layer *L = &s->m->layers[layer];
	int64_t H = c->hidden, K = L->moe ? c->moe_k : 0;
	int Emax = ED_MAX(c->experts[0], c->experts[1]);
	int64_t Imax = ED_MAX(ED_MAX((int64_t)c->dense_inter,
				     (int64_t)c->shared * c->expert_inter[0]),
			      ED_MAX(c->expert_inter[0], c->expert_inter[1]));
	int E = c->experts[0] + c->experts[1];
	int64_t cap = (int64_t)n * (K + 1);
	int nr = 0, nmv = 0, rc = ED_ENOMEM;
	struct step_route *rs = calloc((size_t)cap, sizeof *rs);
	struct ed_mv *mv = calloc((size_t)(2 * cap), sizeof *mv);
	const float **xs = calloc((size_t)cap, sizeof *xs);
	float **ps = calloc((size_t)(3 * cap), sizeof *ps);

	if (!rs || !mv || !xs || !ps)
		goto out;
	if (L->moe) {
		/* router logits of the text pool, then each token's route */
		float *lg[ED_MAX_BATCH];
		struct ed_mv r = {L->router[0],
				  ED_DT_F32,
				  c->experts[0],
				  H,
				  NULL,
				  n,
				  (const float *const *)xn,
				  lg};
		rows_of(m->lg, Emax, n, lg);
		if (mv_run(s->pool, &r, 1, bytes))
			goto out;
		for (int i = 0; i < n; i++)
			route(c, L, 0, lg[i], m->prob + (int64_t)i * Emax,
			      m->rt + (int64_t)i * K);
	}
	/* the routes: shared (or dense) for every token, then each chosen
	 * expert in the order of the ids, its tokens in order */
	if (!L->moe || L->has_shared)
		for (int i = 0; i < n; i++)
			rs[nr++] = (struct step_route){i, -1, 1, 0, 0, 0};
	for (int e = 0; e < E && L->moe; e++)
		for (int i = 0; i < n; i++)
			for (int64_t k = 0; k < K; k++)
				if (m->rt[(int64_t)i * K + k].e == e)
					rs[nr++] = (struct step_route){
					    i, e, m->rt[(int64_t)i * K + k].w,
					    0, 0, 0};
	for (int r = 0; r < nr; r++) {
		rs[r].g = m->tg + (int64_t)r * Imax;
		rs[r].u = m->tu + (int64_t)r * Imax;
		rs[r].e = m->eo + (int64_t)r * H;
		xs[r] = xn[rs[r].tok];
		ps[r] = rs[r].g;
		ps[cap + r] = rs[r].u;
		ps[2 * cap + r] = rs[r].e;
	}
	/* gate and up of every group of routes with one expert */
	for (int r0 = 0, r1; r0 < nr; r0 = r1) {
		const struct ed_wt *g, *u;
		for (r1 = r0; r1 < nr && rs[r1].expert == rs[r0].expert; r1++)
			;
		g = rs[r0].expert < 0 ? &L->gate
				      : &expert_of(c, L, rs[r0].expert)->gate;
		u = rs[r0].expert < 0 ? &L->up
				      : &expert_of(c, L, rs[r0].expert)->up;
		mv[nmv++] = (struct ed_mv){g->data, g->dt,   g->rows, H,
					   NULL,    r1 - r0, xs + r0, ps + r0};
		mv[nmv++] =
		    (struct ed_mv){u->data, u->dt,   u->rows, H,
				   NULL,    r1 - r0, xs + r0, ps + cap + r0};
	}
	if (mv_run(s->pool, mv, nmv, bytes))
		goto out;
	nmv = 0;
	for (int r0 = 0, r1; r0 < nr; r0 = r1) {
		const struct ed_wt *d;
		for (r1 = r0; r1 < nr && rs[r1].expert == rs[r0].expert; r1++)
			ed_k_swiglu(
			    rs[r1].g, rs[r1].u,
			    rs[r0].expert < 0
				? L->gate.rows
				: expert_of(c, L, rs[r0].expert)->gate.rows);
		d = rs[r0].expert < 0 ? &L->down
				      : &expert_of(c, L, rs[r0].expert)->down;
		mv[nmv++] = (struct ed_mv){d->data,
					   d->dt,
					   H,
					   d->cols,
					   NULL,
					   r1 - r0,
					   (const float *const *)(ps + r0),
					   ps + 2 * cap + r0};
	}
	if (mv_run(s->pool, mv, nmv, bytes))
		goto out;
	/* out = shared (or dense) + sum of w times each expert's */
	for (int i = 0; i < n; i++)
		memset(out[i], 0, (size_t)H * sizeof **out);
	for (int r = 0; r < nr; r++) {
		float *o = out[rs[r].tok];
		for (int64_t h = 0; h < H; h++)
			o[h] += rs[r].w * rs[r].e[h];
	}
	rc = 0;
out:
	free(rs);
	free(mv);
	free(xs);
	free(ps);
	return rc;
}

int ed_decoder_step(struct ed_session *const *ss, int n, const int32_t *tokens,
		    char *err, size_t errlen)
{
	struct ed_session *s0 = ss[0];
	const struct ed_model *md = s0->m;
	const struct ed_config *c = &md->cfg;
	int64_t H = c->hidden, hd = c->head_dim, qd = (int64_t)c->heads * hd,
		kvd = (int64_t)c->kv_heads * hd;
	float *x[ED_MAX_BATCH], *xn[ED_MAX_BATCH], *q[ED_MAX_BATCH],
	    *kb[ED_MAX_BATCH], *vb[ED_MAX_BATCH], *att[ED_MAX_BATCH],
	    *o[ED_MAX_BATCH], *lo[ED_MAX_BATCH];
	struct ed_attn_row ar[ED_MAX_BATCH];
	struct step_mem m;
	int64_t bytes = 0;
	int rc = 0;

	if (n < 1 || n > ED_MAX_BATCH)
		return ed_err(err, errlen, ED_EINVAL, "a batch of %d", n);
	for (int i = 0; i < n; i++) {
		if (ss[i]->m != md)
			return ed_err(err, errlen, ED_EINVAL,
				      "sessions of different models");
		if ((rc = ed_session_reserve(ss[i], ss[i]->n_past + 1, err,
					     errlen)))
			return rc;
		if (tokens[i] < 0 || tokens[i] >= c->vocab)
			return ed_err(err, errlen, ED_EINVAL,
				      "token %d out of range", tokens[i]);
	}
	if (step_mem_init(&m, c, n))
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	rows_of(m.x, H, n, x);
	rows_of(m.xn, H, n, xn);
	rows_of(m.q, qd, n, q);
	rows_of(m.k, kvd, n, kb);
	rows_of(m.v, kvd, n, vb);
	rows_of(m.att, qd, n, att);
	rows_of(m.o, H, n, o);
	for (int i = 0; i < n; i++) {
		ed_embed(md, &tokens[i], 1, x[i]);
		lo[i] = ss[i]->logits;
	}
	for (int l = 0; l < c->layers; l++) {
		const struct ed_layer *L = &md->layers[l];
		for (int i = 0; i < n; i++)
			ed_k_rmsnorm(xn[i], x[i], L->ln_in, 1, H, c->rms_eps);
		{
			const float *const *xi = (const float *const *)xn;
			struct ed_mv mv[3] = {
			    {L->q.data, L->q.dt, qd, H, NULL, n, xi, q},
			    {L->k.data, L->k.dt, kvd, H, NULL, n, xi, kb},
			    {L->v.data, L->v.dt, kvd, H, NULL, n, xi, vb}};
			if (mv_run(s0->pool, mv, 3, &bytes))
				goto nomem;
		}
		for (int i = 0; i < n; i++) {
			struct ed_session *s = ss[i];
			int32_t pos[3] = {(int32_t)s->next_pos,
					  (int32_t)s->next_pos,
					  (int32_t)s->next_pos};
			float *kc = ed_k_at(s, l, s->n_past);
			float *vc = ed_v_at(s, l, s->n_past);
			rope_3d(c, q[i], 1, qd, c->heads, pos, 1, 0);
			rope_3d(c, kb[i], 1, kvd, c->kv_heads, pos, 1, 0);
			memcpy(kc, kb[i], (size_t)kvd * sizeof *kc);
			memcpy(vc, vb[i], (size_t)kvd * sizeof *vc);
			ar[i] = (struct ed_attn_row){
			    att[i], q[i], ed_k_at(s, l, 0), ed_v_at(s, l, 0),
			    s->n_past + 1};
		}
		if (ed_k_attention_rows(s0->pool, ar, n, c->heads, c->kv_heads,
					(int)hd, kvd, 1.0f / sqrtf((float)hd)))
			goto nomem;
		if (mv_one(s0->pool, &L->o, n, att, o, &bytes))
			goto nomem;
		for (int i = 0; i < n; i++) {
			ed_k_add(x[i], o[i], H);
			ed_k_rmsnorm(xn[i], x[i], L->ln_post, 1, H, c->rms_eps);
		}
		if (step_mlp(s0, &m, l, n, xn, o, &bytes))
			goto nomem;
		for (int i = 0; i < n; i++)
			ed_k_add(x[i], o[i], H);
	}
	for (int i = 0; i < n; i++)
		ed_k_rmsnorm(xn[i], x[i], md->norm, 1, H, c->rms_eps);
	if (mv_one(s0->pool, &md->head, n, xn, lo, &bytes))
		goto nomem;
	for (int i = 0; i < n; i++) {
		ss[i]->n_past++;
		ss[i]->next_pos++;
	}
	s0->step_bytes = bytes;
	free(m.all);
	return rc;
nomem:
	free(m.all);
	return ed_err(err, errlen, ED_ENOMEM, "out of memory");
}
