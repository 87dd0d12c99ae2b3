/*
 * ops.c - attention and the elementwise ops. Norm statistics, softmax and
 * activations are computed in float32 like the reference (GELU with erf,
 * quick-GELU x * sigmoid(1.702 x), SiLU). Attention splits (head, query)
 * pairs over the pool; each output is computed by one thread.
 */
#include "kernels.h"

#include <immintrin.h>
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
 * prefill): keys and values of each kv head are packed once into gemm.c's
 * panels; then every (query head, block of QB queries) is one work item
 * on one thread: scores = Q K^T on the register tiles, exp and sums per
 * row, out = P V, rows divided by their sums. Scratch per thread: QB
 * score rows (QB x Lk floats), so memory grows with the sequence only
 * through the packed K and V.
 */
#define QB 48

/* e^x for x <= 0 (softmax after subtracting the max) */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x)
{
	const __m512 l2e = _mm512_set1_ps(1.44269504088896341f);
	const __m512 c1 = _mm512_set1_ps(-0.693359375f);
	const __m512 c2 = _mm512_set1_ps(-2.12194440e-4f);
	__m512 n, r, p;

	x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, l2e),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fmadd_ps(n, c1, x);
	r = _mm512_fnmadd_ps(n, c2, r);
	/* Cephes expf polynomial */
	p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
	p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* s[j] = exp((s[j] - mx) * scale) for j < n; returns their sum */
__attribute__((target("avx512f"))) static float
exp_row_avx512(float *s, int64_t n, float mx, float scale)
{
	__m512 acc = _mm512_setzero_ps(), vm = _mm512_set1_ps(mx),
	       vs = _mm512_set1_ps(scale);
	int64_t j = 0;

	for (; j < n; j += 16) {
		__mmask16 k =
		    n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		__m512 v = _mm512_maskz_loadu_ps(k, s + j);
		v = exp512(_mm512_mul_ps(_mm512_sub_ps(v, vm), vs));
		v = _mm512_maskz_mov_ps(k, v);
		_mm512_mask_storeu_ps(s + j, k, v);
		acc = _mm512_add_ps(acc, v);
	}
	return _mm512_reduce_add_ps(acc);
}
#endif

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float max_avx512(const float *s,
							   int64_t n)
{
	__m512 m = _mm512_set1_ps(-INFINITY);

	for (int64_t j = 0; j < n; j += 16) {
		__mmask16 k =
		    n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
		m = _mm512_mask_max_ps(m, k, m,
				       _mm512_maskz_loadu_ps(k, s + j));
	}
	return _mm512_reduce_max_ps(m);
}
#endif

float ed_k_max(const float *s, int64_t n)
{
	float mx = -INFINITY;

#if defined(__x86_64__)
	if (ed_k_isa() == ED_ISA_AVX512)
		return max_avx512(s, n);
#endif
	for (int64_t j = 0; j < n; j++)
		mx = s[j] > mx ? s[j] : mx;
	return mx;
}

float ed_k_exp_row(float *s, int64_t n, float mx, float scale)
{
	double sum = 0;

#if defined(__x86_64__)
	if (ed_k_isa() == ED_ISA_AVX512)
		return exp_row_avx512(s, n, mx, scale);
#endif
	for (int64_t j = 0; j < n; j++) {
		s[j] = expf((s[j] - mx) * scale);
		sum += s[j];
	}
	return (float)sum;
}

#if defined(__x86_64__)
/*
 * One query row of a sequence against its cache, the G query heads that
 * share a kv head together (GQA): each key and value row is read once for
 * the G of them. q and out hold the G heads' rows, hd floats apart; s is
 * G x Lk floats of scratch. Scores with 16-wide products, a vector exp
 * for the softmax, out = P V with the probabilities normalized first.
 */
static inline __attribute__((always_inline, target("avx512f"))) void
attend_group_t(float *out, const float *q, const float *k, const float *v,
	       int64_t Lk, int64_t stride, int hd, float scale, float *s,
	       const int G)
{
	float inv[8];

	for (int64_t j = 0; j < Lk; j++) {
		const float *kj = k + j * stride;
		__m512 acc[8];
#pragma GCC unroll 8
		for (int h = 0; h < G; h++)
			acc[h] = _mm512_setzero_ps();
		for (int d = 0; d < hd; d += 16) {
			__m512 kv = _mm512_loadu_ps(kj + d);
#pragma GCC unroll 8
			for (int h = 0; h < G; h++)
				acc[h] = _mm512_fmadd_ps(
				    kv, _mm512_loadu_ps(q + h * hd + d),
				    acc[h]);
		}
#pragma GCC unroll 8
		for (int h = 0; h < G; h++)
			s[h * Lk + j] = _mm512_reduce_add_ps(acc[h]) * scale;
	}
	for (int h = 0; h < G; h++) {
		float *sh = s + h * Lk;
		inv[h] =
		    1.0f / exp_row_avx512(sh, Lk, max_avx512(sh, Lk), 1.0f);
	}
	/* 64 columns of the output at a time: G x 4 accumulators */
	for (int d0 = 0; d0 < hd; d0 += 64) {
		int nc = hd - d0 >= 64 ? 4 : (hd - d0) / 16;
		__m512 acc[8][4];
		for (int h = 0; h < G; h++)
			for (int c = 0; c < nc; c++)
				acc[h][c] = _mm512_setzero_ps();
		if (nc == 4) /* the usual case: every loop's bound known */
			for (int64_t j = 0; j < Lk; j++) {
				const float *vj = v + j * stride + d0;
				__m512 vv[4];
#pragma GCC unroll 4
				for (int c = 0; c < 4; c++)
					vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 8
				for (int h = 0; h < G; h++) {
					__m512 p = _mm512_set1_ps(
					    s[h * Lk + j] * inv[h]);
#pragma GCC unroll 4
					for (int c = 0; c < 4; c++)
						acc[h][c] = _mm512_fmadd_ps(
						    p, vv[c], acc[h][c]);
				}
			}
		else
			for (int64_t j = 0; j < Lk; j++) {
				const float *vj = v + j * stride + d0;
				__m512 vv[4];
				for (int c = 0; c < nc; c++)
					vv[c] = _mm512_loadu_ps(vj + 16 * c);
				for (int h = 0; h < G; h++) {
					__m512 p = _mm512_set1_ps(
					    s[h * Lk + j] * inv[h]);
					for (int c = 0; c < nc; c++)
						acc[h][c] = _mm512_fmadd_ps(
						    p, vv[c], acc[h][c]);
				}
			}
		for (int h = 0; h < G; h++)
			for (int c = 0; c < nc; c++)
				_mm512_storeu_ps(out + h * hd + d0 + 16 * c,
						 acc[h][c]);
	}
}

__attribute__((target("avx512f"))) static void
attend_group_avx512(float *out, const float *q, const float *k, const float *v,
		    int64_t Lk, int64_t stride, int hd, int G, float scale,
		    float *s)
{
	switch (G) {
#define ED_ATTEND_G(g)                                                         \
	case g:                                                                \
		attend_group_t(out, q, k, v, Lk, stride, hd, scale, s, g);     \
		break;
		ED_ATTEND_G(1)
		ED_ATTEND_G(2)
		ED_ATTEND_G(3)
		ED_ATTEND_G(4)
		ED_ATTEND_G(5)
		ED_ATTEND_G(6)
		ED_ATTEND_G(7)
		ED_ATTEND_G(8)
#undef ED_ATTEND_G
	default: break;
	}
}
#endif

struct rows_job {
	const struct ed_attn_row *r;
	struct ed_attn a; /* the shared shape; L, Lk, causal per row */
	float *scratch;	  /* per thread: G x max Lk floats */
	int64_t maxk;
	int G;	    /* query heads per kv head */
	bool group; /* the grouped AVX-512 kernel, items (row, kv head) */
};

static void rows_items(void *ctx, int64_t b, int64_t e, int tid)
{
	struct rows_job *j = ctx;
	float *sc = j->scratch + (size_t)tid * (size_t)j->maxk * (size_t)j->G;

	for (int64_t it = b; it < e; it++) {
		if (j->group) {
#if defined(__x86_64__)
			const struct ed_attn_row *r = &j->r[it / j->a.nkv];
			int g = (int)(it % j->a.nkv), hd = j->a.hd;
			attend_group_avx512(
			    r->out + (int64_t)g * j->G * hd,
			    r->q + (int64_t)g * j->G * hd,
			    r->k + (int64_t)g * hd, r->v + (int64_t)g * hd,
			    r->Lk, j->a.kv_stride, hd, j->G, j->a.scale, sc);
#endif
			continue;
		}
		{
			const struct ed_attn_row *r = &j->r[it / j->a.nq];
			struct ed_attn a = j->a;
			a.L = 1;
			a.Lk = r->Lk;
			a.causal_base = r->Lk - 1;
			attend_one(r->out, r->q, r->k, r->v, &a,
				   (int)(it % a.nq), 0, sc);
		}
	}
}

int ed_k_attention_rows(struct ed_pool *p, const struct ed_attn_row *r, int n,
			int nq, int nkv, int hd, int64_t kv_stride, float scale)
{
	struct rows_job j = {r,	       {1, 1, nq, nkv, hd, kv_stride, 0, scale},
			     NULL,     1,
			     nq / nkv, false};

	for (int i = 0; i < n; i++)
		j.maxk = ED_MAX(j.maxk, r[i].Lk);
#if defined(__x86_64__)
	j.group = ed_k_isa() == ED_ISA_AVX512 && hd % 16 == 0 && j.G <= 8;
#endif
	if (!j.group)
		j.G = 1;
	j.scratch = malloc((size_t)ed_pool_threads(p) * (size_t)j.maxk *
			   (size_t)j.G * sizeof *j.scratch);
	if (!j.scratch)
		return ED_ENOMEM;
	ed_pool_for_each(p, (int64_t)n * (j.group ? nkv : nq), rows_items, &j);
	free(j.scratch);
	return 0;
}

struct tiled_job {
	float *out;
	const float *q, *k, *v;
	const struct ed_attn *a;
	enum ed_isa level;
	float **kp, **vp; /* packed per kv head */
	int64_t nqb;	  /* query blocks */
	int64_t sl;	  /* floats between score rows */
	float *scratch;	  /* per thread: QB score rows, QB sums */
};

static void tiled_pack(void *ctx, int64_t b, int64_t e, int tid)
{
	struct tiled_job *j = ctx;
	const struct ed_attn *a = j->a;

	(void)tid;
	for (int64_t i = b; i < e; i++) {
		int g = (int)(i / 2);
		if (i % 2 == 0)
			ed_k_pack_f32(j->kp[g], j->k + g * a->hd, a->Lk, a->hd,
				      a->kv_stride, 1);
		else
			ed_k_pack_f32(j->vp[g], j->v + g * a->hd, a->hd, a->Lk,
				      1, a->kv_stride);
	}
}

static void tiled_items(void *ctx, int64_t b, int64_t e, int tid)
{
	struct tiled_job *j = ctx;
	const struct ed_attn *a = j->a;
	int64_t Lk = a->Lk, hd = a->hd, ld = (int64_t)a->nq * hd, sl = j->sl;
	float *sc = j->scratch + (size_t)tid * (size_t)(QB * sl + QB);
	float *inv = sc + QB * sl;

	for (int64_t it = b; it < e; it++) {
		int h = (int)(it / j->nqb), g = h / (a->nq / a->nkv);
		int64_t i0 = it % j->nqb * QB;
		int64_t rows = a->L - i0 < QB ? a->L - i0 : QB;
		int64_t kuse =
		    a->causal_base < 0 ? Lk : a->causal_base + i0 + rows;
		float *orow = j->out + (i0 * a->nq + h) * hd;

		if (kuse > Lk)
			kuse = Lk;
		ed_k_gemm_packed(j->level, sc, sl, j->q + (i0 * a->nq + h) * hd,
				 ld, rows, j->kp[g], kuse, hd, hd);
		for (int64_t r = 0; r < rows; r++) {
			float *sr = sc + r * sl;
			int64_t nk = a->causal_base < 0
					 ? Lk
					 : a->causal_base + i0 + r + 1;
			if (nk > Lk)
				nk = Lk;
			inv[r] = 1.0f / ed_k_exp_row(sr, nk, ed_k_max(sr, nk),
						     a->scale);
			if (kuse > nk)
				memset(sr + nk, 0,
				       (size_t)(kuse - nk) * sizeof *sr);
		}
		ed_k_gemm_packed(j->level, orow, ld, sc, sl, rows, j->vp[g], hd,
				 Lk, kuse);
		for (int64_t r = 0; r < rows; r++)
			for (int64_t t = 0; t < hd; t++)
				orow[r * ld + t] *= inv[r];
	}
}

static int attention_tiled(struct ed_pool *p, float *out, const float *q,
			   const float *k, const float *v,
			   const struct ed_attn *a)
{
	struct tiled_job j = {
	    .out = out, .q = q, .k = k, .v = v, .a = a, .level = ed_k_isa()};
	size_t ks = ed_k_pack_size(a->Lk, a->hd),
	       vs = ed_k_pack_size(a->hd, a->Lk);
	int threads = ed_pool_threads(p), rc = ED_ENOMEM;

	/* score rows a multiple of 16 floats plus 16 apart: rows 2^k bytes
	 * apart would share L1 sets */
	j.sl = ((a->Lk + 15) & ~(int64_t)15) + 16;
	j.nqb = (a->L + QB - 1) / QB;
	j.kp = calloc((size_t)a->nkv * 2, sizeof *j.kp);
	j.scratch =
	    malloc((size_t)threads * (size_t)(QB * j.sl + QB) * sizeof(float));
	if (!j.kp || !j.scratch)
		goto out;
	j.vp = j.kp + a->nkv;
	for (int g = 0; g < a->nkv; g++)
		if (!(j.kp[g] = malloc(ks)) || !(j.vp[g] = malloc(vs)))
			goto out;
	ed_pool_for(p, 2 * a->nkv, 1, tiled_pack, &j);
	ed_pool_for_each(p, a->nq * j.nqb, tiled_items, &j);
	rc = 0;
out:
	if (j.kp)
		for (int g = 0; g < 2 * a->nkv; g++)
			free(j.kp[g]);
	free(j.kp);
	free(j.scratch);
	return rc;
}

void ed_k_attention(struct ed_pool *p, float *out, const float *q,
		    const float *k, const float *v, const struct ed_attn *a)
{
	struct attn_job j = {out, q, k, v, a, NULL};

	if (a->L <= 0 || a->Lk <= 0)
		return;
	if (a->L >= 32 && a->L * a->Lk >= 4096 &&
	    attention_tiled(p, out, q, k, v, a) == 0)
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
