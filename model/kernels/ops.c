/*
 * ops.c - attention and the elementwise ops. Norm statistics, softmax and
 * activations are computed in float32 like the reference (GELU with erf,
 * quick-GELU x * sigmoid(1.702 x), SiLU). Attention splits (head, query)
 * pairs over the pool; each output is computed by one thread.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ed_k_rmsnorm(float *y, const float *x, const float *w, int64_t rows,
		  int64_t n, float eps)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * n;
		float *yr = y + r * n;
		double ss = 0;
		float inv;

		for (int64_t i = 0; i < n; i++)
			ss += (double)xr[i] * xr[i];
		inv = (float)(1.0 / sqrt(ss / (double)n + eps));
		for (int64_t i = 0; i < n; i++)
			yr[i] = xr[i] * inv * w[i];
	}
}

void ed_k_layernorm(float *y, const float *x, const float *w, const float *b,
		    int64_t rows, int64_t n, float eps)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * n;
		float *yr = y + r * n;
		double mean = 0, var = 0;
		float inv;

		for (int64_t i = 0; i < n; i++)
			mean += xr[i];
		mean /= (double)n;
		for (int64_t i = 0; i < n; i++)
			var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
		var /= (double)n;
		inv = (float)(1.0 / sqrt(var + eps));
		for (int64_t i = 0; i < n; i++)
			yr[i] = (float)((xr[i] - mean) * inv) * w[i] + b[i];
	}
}

void ed_k_swiglu(float *g, const float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void ed_k_gelu_erf(float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void ed_k_quick_gelu(float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void ed_k_softmax(float *x, int64_t n)
{
	float mx = -INFINITY;
	double sum = 0;

	for (int64_t i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - mx);
		sum += x[i];
	}
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)(x[i] / sum);
}

void ed_k_add(float *y, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}

/* ---- attention ----------------------------------------------------- */

/* Four floats as one value (GCC vector extension: the baseline's SSE),
 * loaded and stored without alignment assumptions. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
	v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void v4_store(float *p, v4f v)
{
	memcpy(p, &v, sizeof v);
}

/* One query row of one head: scores over the visible keys, softmax,
 * weighted sum of values. s has room for Lk floats. */
static void attend_one(float *out, const float *q, const float *k,
		       const float *v, const struct ed_attn *a, int h,
		       int64_t i, float *s)
{
	int kvh = h / (a->nq / a->nkv);
	int64_t nk = a->causal_base < 0 ? a->Lk : a->causal_base + i + 1;
	const float *qh = q + (i * a->nq + h) * a->hd;
	float *oh = out + (i * a->nq + h) * a->hd;
	float mx = -INFINITY;
	double sum = 0;

	if (nk > a->Lk)
		nk = a->Lk;
	for (int64_t j = 0; j < nk; j++) {
		const float *kj = k + j * a->kv_stride + kvh * a->hd;
		/* eight independent sums in a vector: no chain of dependent
		 * adds */
		v4f d0 = {0}, d1 = {0};
		float d;
		int t = 0;
		for (; t + 8 <= a->hd; t += 8) {
			d0 += v4_load(qh + t) * v4_load(kj + t);
			d1 += v4_load(qh + t + 4) * v4_load(kj + t + 4);
		}
		d = ((d0[0] + d1[0]) + (d0[1] + d1[1])) +
		    ((d0[2] + d1[2]) + (d0[3] + d1[3]));
		for (; t < a->hd; t++)
			d += qh[t] * kj[t];
		s[j] = d * a->scale;
		mx = s[j] > mx ? s[j] : mx;
	}
	for (int64_t j = 0; j < nk; j++) {
		s[j] = expf(s[j] - mx);
		sum += s[j];
	}
	{
		/* locals the stores into oh cannot alias: a vector loop */
		const int hd = a->hd;
		const int64_t stride = a->kv_stride;
		float *restrict o = oh;
		memset(o, 0, (size_t)hd * sizeof *o);
		for (int64_t j = 0; j < nk; j++) {
			const float *restrict vj = v + j * stride + kvh * hd;
			float pj = (float)(s[j] / sum);
			int t = 0;
			for (; t + 4 <= hd; t += 4)
				v4_store(o + t,
					 v4_load(o + t) + pj * v4_load(vj + t));
			for (; t < hd; t++)
				o[t] += pj * vj[t];
		}
	}
}

void ed_k_attention_ref(float *out, const float *q, const float *k,
			const float *v, const struct ed_attn *a)
{
	float *s = malloc((size_t)(a->Lk > 0 ? a->Lk : 1) * sizeof *s);

	if (!s)
		return;
	for (int64_t i = 0; i < a->L; i++)
		for (int h = 0; h < a->nq; h++) {
			/* the plain definition, in double */
			int kvh = h / (a->nq / a->nkv);
			int64_t nk =
			    a->causal_base < 0 ? a->Lk : a->causal_base + i + 1;
			const float *qh = q + (i * a->nq + h) * a->hd;
			double mx = -INFINITY, sum = 0;
			if (nk > a->Lk)
				nk = a->Lk;
			for (int64_t j = 0; j < nk; j++) {
				double d = 0;
				for (int t = 0; t < a->hd; t++)
					d +=
					    (double)qh[t] * k[j * a->kv_stride +
							      kvh * a->hd + t];
				s[j] = (float)(d * a->scale);
				mx = s[j] > mx ? s[j] : mx;
			}
			for (int t = 0; t < a->hd; t++) {
				double o = 0;
				sum = 0;
				for (int64_t j = 0; j < nk; j++) {
					double e = exp(s[j] - mx);
					sum += e;
					o += e * v[j * a->kv_stride +
						   kvh * a->hd + t];
				}
				out[(i * a->nq + h) * a->hd + t] =
				    (float)(o / sum);
			}
		}
	free(s);
}

struct attn_job {
	float *out;
	const float *q, *k, *v;
	const struct ed_attn *a;
	float *scratch; /* Lk floats per thread */
};

static void attn_range(void *ctx, int64_t b, int64_t e, int tid)
{
	struct attn_job *j = ctx;
	float *s = j->scratch + (size_t)tid * (size_t)j->a->Lk;

	for (int64_t w = b; w < e; w++)
		attend_one(j->out, j->q, j->k, j->v, j->a, (int)(w % j->a->nq),
			   w / j->a->nq, s);
}

/*
 * Long sequences (the vision tower's thousands of patches, prompt
 * prefill): per kv head, K and V^T are made contiguous once; per query
 * head and block of QB queries, scores = Q K^T and out = P V are matrix
 * products on the tiled kernel, with the softmax (and causal mask) in
 * between. Scratch: QB x Lk scores.
 */
#define QB 128

static int attention_blocked(struct ed_pool *p, float *out, const float *q,
			     const float *k, const float *v,
			     const struct ed_attn *a)
{
	int64_t Lk = a->Lk, hd = a->hd, group = a->nq / a->nkv;
	float *kh = malloc((size_t)(Lk * hd) * sizeof *kh);
	float *vt = malloc((size_t)(Lk * hd) * sizeof *vt);
	float *qb = malloc((size_t)(QB * hd) * sizeof *qb);
	float *s = malloc((size_t)(QB * Lk) * sizeof *s);
	float *ob = malloc((size_t)(QB * hd) * sizeof *ob);

	if (!kh || !vt || !qb || !s || !ob) {
		free(kh), free(vt), free(qb), free(s), free(ob);
		return ED_ENOMEM;
	}
	for (int g = 0; g < a->nkv; g++) {
		for (int64_t j = 0; j < Lk; j++)
			for (int64_t t = 0; t < hd; t++) {
				kh[j * hd + t] =
				    k[j * a->kv_stride + g * hd + t];
				vt[t * Lk + j] =
				    v[j * a->kv_stride + g * hd + t];
			}
		for (int64_t h = g * group; h < (g + 1) * group; h++)
			for (int64_t i0 = 0; i0 < a->L; i0 += QB) {
				int64_t rows = a->L - i0 < QB ? a->L - i0 : QB;
				for (int64_t r = 0; r < rows; r++)
					memcpy(qb + r * hd,
					       q + ((i0 + r) * a->nq + h) * hd,
					       (size_t)hd * sizeof *qb);
				ed_k_matmul(p, s, qb, rows, kh, ED_DT_F32, Lk,
					    hd, NULL);
				for (int64_t r = 0; r < rows; r++) {
					float *sr = s + r * Lk;
					int64_t nk =
					    a->causal_base < 0
						? Lk
						: a->causal_base + i0 + r + 1;
					if (nk > Lk)
						nk = Lk;
					for (int64_t j = 0; j < nk; j++)
						sr[j] *= a->scale;
					ed_k_softmax(sr, nk);
					for (int64_t j = nk; j < Lk; j++)
						sr[j] = 0;
				}
				ed_k_matmul(p, ob, s, rows, vt, ED_DT_F32, hd,
					    Lk, NULL);
				for (int64_t r = 0; r < rows; r++)
					memcpy(out +
						   ((i0 + r) * a->nq + h) * hd,
					       ob + r * hd,
					       (size_t)hd * sizeof *ob);
			}
	}
	free(kh), free(vt), free(qb), free(s), free(ob);
	return 0;
}

void ed_k_attention(struct ed_pool *p, float *out, const float *q,
		    const float *k, const float *v, const struct ed_attn *a)
{
	struct attn_job j = {out, q, k, v, a, NULL};

	if (a->L <= 0 || a->Lk <= 0)
		return;
	if (a->L >= 32 && a->L * a->Lk >= 4096 &&
	    attention_blocked(p, out, q, k, v, a) == 0)
		return;
	j.scratch =
	    malloc((size_t)ed_pool_threads(p) * (size_t)a->Lk * sizeof(float));
	if (!j.scratch) {
		ed_k_attention_ref(out, q, k, v, a);
		return;
	}
	ed_pool_for(p, a->L * a->nq, 1, attn_range, &j);
	free(j.scratch);
}
