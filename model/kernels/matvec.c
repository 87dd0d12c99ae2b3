/*
 * matvec.c - weight matrices times a few vectors: decode, one vector per
 * sequence of a batch. One job runs several products (the q, k and v of
 * a layer; the gate and up projections of every expert a batch chose),
 * rows in work items of ROWS claimed by free threads, so each weight row
 * is read once for all its vectors and no thread waits at a product's
 * end. Quantized weights take the activations quantized once per input
 * and format (quant.c's kernels); float weights a dot product per row
 * and vector. Each output is computed whole by one thread, in an order
 * fixed by the shapes: results depend neither on the thread count nor
 * on which other vectors share the batch.
 */
#include "kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* Work items: about ITEMS per thread over the whole job, at least MINROWS
 * rows each: large enough that a thread streams long runs of weights
 * (the prefetchers follow them), small enough that a slow core leaves
 * little for the others to wait on. */
#define ITEMS	8
#define MINROWS 16
/* vectors per kernel call */
#define MAXV 64

/* ---- row dot products (M = 1) -------------------------------------- */

static float dot_portable(const void *W, enum ed_dtype wt, const float *x,
			  int64_t K)
{
	float acc[8] = {0};
	int64_t k = 0;

	if (wt == ED_DT_F32) {
		const float *w = W;
		for (; k + 8 <= K; k += 8)
			for (int j = 0; j < 8; j++)
				acc[j] += w[k + j] * x[k + j];
	} else {
		for (; k + 8 <= K; k += 8)
			for (int j = 0; j < 8; j++)
				acc[j] += ed_k_weight(W, wt, (size_t)(k + j)) *
					  x[k + j];
	}
	for (; k < K; k++)
		acc[0] += ed_k_weight(W, wt, (size_t)k) * x[k];
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
	       ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static inline __m256
load8_avx2(const void *W, enum ed_dtype wt, int64_t k)
{
	switch (wt) {
	case ED_DT_BF16: {
		__m128i h =
		    _mm_loadu_si128((const __m128i *)((const uint16_t *)W + k));
		return _mm256_castsi256_ps(
		    _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
	}
	case ED_DT_F16:
		return _mm256_cvtph_ps(_mm_loadu_si128(
		    (const __m128i *)((const uint16_t *)W + k)));
	default: return _mm256_loadu_ps((const float *)W + k);
	}
}

__attribute__((target("avx2,fma,f16c"))) static float
dot_avx2(const void *W, enum ed_dtype wt, const float *x, int64_t K)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	__m128 s;
	int64_t k = 0;
	float acc;

	for (; k + 16 <= K; k += 16) {
		a0 = _mm256_fmadd_ps(load8_avx2(W, wt, k),
				     _mm256_loadu_ps(x + k), a0);
		a1 = _mm256_fmadd_ps(load8_avx2(W, wt, k + 8),
				     _mm256_loadu_ps(x + k + 8), a1);
	}
	for (; k + 8 <= K; k += 8)
		a0 = _mm256_fmadd_ps(load8_avx2(W, wt, k),
				     _mm256_loadu_ps(x + k), a0);
	a0 = _mm256_add_ps(a0, a1);
	s = _mm_add_ps(_mm256_castps256_ps128(a0),
		       _mm256_extractf128_ps(a0, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	acc = _mm_cvtss_f32(s);
	for (; k < K; k++)
		acc += ed_k_weight(W, wt, (size_t)k) * x[k];
	return acc;
}

__attribute__((target("avx512f,avx512bw,f16c"))) static inline __m512
load16_avx512(const void *W, enum ed_dtype wt, int64_t k)
{
	switch (wt) {
	case ED_DT_BF16: {
		__m256i h = _mm256_loadu_si256(
		    (const __m256i *)((const uint16_t *)W + k));
		return _mm512_castsi512_ps(
		    _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
	}
	case ED_DT_F16:
		return _mm512_cvtph_ps(_mm256_loadu_si256(
		    (const __m256i *)((const uint16_t *)W + k)));
	default: return _mm512_loadu_ps((const float *)W + k);
	}
}

__attribute__((target("avx512f,avx512bw,f16c"))) static float
dot_avx512(const void *W, enum ed_dtype wt, const float *x, int64_t K)
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	__m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
	int64_t k = 0;
	float acc;

	for (; k + 64 <= K; k += 64) {
		a0 = _mm512_fmadd_ps(load16_avx512(W, wt, k),
				     _mm512_loadu_ps(x + k), a0);
		a1 = _mm512_fmadd_ps(load16_avx512(W, wt, k + 16),
				     _mm512_loadu_ps(x + k + 16), a1);
		a2 = _mm512_fmadd_ps(load16_avx512(W, wt, k + 32),
				     _mm512_loadu_ps(x + k + 32), a2);
		a3 = _mm512_fmadd_ps(load16_avx512(W, wt, k + 48),
				     _mm512_loadu_ps(x + k + 48), a3);
	}
	for (; k + 16 <= K; k += 16)
		a0 = _mm512_fmadd_ps(load16_avx512(W, wt, k),
				     _mm512_loadu_ps(x + k), a0);
	a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
	acc = _mm512_reduce_add_ps(a0);
	for (; k < K; k++)
		acc += ed_k_weight(W, wt, (size_t)k) * x[k];
	return acc;
}
#endif

float ed_k_row_dot(enum ed_isa level, const void *W, enum ed_dtype wt,
		   const float *x, int64_t K)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512)
		return dot_avx512(W, wt, x, K);
	if (level == ED_ISA_AVX2)
		return dot_avx2(W, wt, x, K);
#endif
	return dot_portable(W, wt, x, K);
}
/* One quantized input: x in the format its kernels take. */
struct qin {
	const float *x;
	int64_t K;
	int group;
	enum ed_dtype order; /* ed_k_act_order for this type */
	struct ed_qact a;
};

struct mv_job {
	const struct ed_mv *mv;
	int n;
	enum ed_isa level;
	struct qin *qin;
	int64_t nq;
	const struct ed_qact **qa; /* per product its nv inputs, in turn */
	int64_t *qa_at;		   /* where each product's inputs start */
	int64_t *first;		   /* each product's first work item */
	int64_t items, rows;	   /* work items, rows per item */
};

static void quantize_items(void *ctx, int64_t b, int64_t e, int tid)
{
	struct mv_job *j = ctx;

	(void)tid;
	for (int64_t i = b; i < e; i++) {
		struct qin *q = &j->qin[i];
		if (q->group == 256)
			ed_k_quantize_act256(j->level, q->x, q->K, &q->a);
		else
			ed_k_quantize_act8_level(j->level, q->x, q->K, &q->a);
		ed_k_act_order(j->level, q->order, &q->a, q->K);
	}
}

/* rows [r0, r0 + rows) of product m for all its vectors */
static void product_rows(const struct mv_job *j, int k, int64_t r0,
			 int64_t rows)
{
	const struct ed_mv *m = &j->mv[k];
	size_t rb = ed_k_row_bytes(m->dt, m->K);
	const char *w = (const char *)m->W + rb * (size_t)r0;

	/* the kernels prefetch ahead of where they read: start the run */
	for (size_t o = 0; o < ED_MIN(rb * (size_t)rows, (size_t)4096); o += 64)
		__builtin_prefetch(w + o);
	for (int v0 = 0; v0 < m->nv; v0 += MAXV) {
		int nv = ED_MIN(MAXV, m->nv - v0);
		float *y[MAXV];
		for (int v = 0; v < nv; v++)
			y[v] = m->y[v0 + v] + r0;
		if (ed_k_is_quant(m->dt)) {
			ed_k_qdot_multi(j->level, m->dt, w, rb, rows,
					j->qa + j->qa_at[k] + v0, nv, m->K, y);
		} else {
			for (int64_t r = 0; r < rows; r++)
				for (int v = 0; v < nv; v++)
					y[v][r] = ed_k_row_dot(
					    j->level, w + rb * (size_t)r, m->dt,
					    m->x[v0 + v], m->K);
		}
		if (m->bias)
			for (int v = 0; v < nv; v++)
				for (int64_t r = 0; r < rows; r++)
					y[v][r] += m->bias[r0 + r];
	}
}

static void product_items(void *ctx, int64_t b, int64_t e, int tid)
{
	struct mv_job *j = ctx;
	int k = 0;

	(void)tid;
	for (int64_t it = b; it < e; it++) {
		while (k + 1 < j->n && j->first[k + 1] <= it)
			k++;
		{
			int64_t r0 = (it - j->first[k]) * j->rows;
			product_rows(j, k, r0,
				     ED_MIN(j->rows, j->mv[k].N - r0));
		}
	}
}

int ed_k_matvec(struct ed_pool *p, const struct ed_mv *mv, int n)
{
	struct mv_job j = {.mv = mv, .n = n, .level = ed_k_isa()};
	int64_t nin = 0, at = 0;
	size_t bytes = 0;
	char *mem;
	int rc = ED_ENOMEM;

	if (n <= 0)
		return 0;
	for (int k = 0; k < n; k++)
		if (ed_k_is_quant(mv[k].dt))
			nin += mv[k].nv;
	j.qin = calloc((size_t)(nin ? nin : 1), sizeof *j.qin);
	j.qa = calloc((size_t)(nin ? nin : 1), sizeof *j.qa);
	j.qa_at = calloc((size_t)n, sizeof *j.qa_at);
	j.first = calloc((size_t)n, sizeof *j.first);
	if (!j.qin || !j.qa || !j.qa_at || !j.first)
		goto out;
	{
		int64_t total = 0, per;
		for (int k = 0; k < n; k++)
			total += mv[k].N;
		per = total / ((int64_t)ed_pool_threads(p) * ITEMS);
		j.rows =
		    ED_MAX(MINROWS, (per + MINROWS - 1) / MINROWS * MINROWS);
	}
	/* each distinct (input, format) once: q, k and v share theirs */
	for (int k = 0; k < n; k++) {
		const struct ed_mv *m = &mv[k];
		j.first[k] = j.items;
		j.items += (m->N + j.rows - 1) / j.rows;
		if (!ed_k_is_quant(m->dt))
			continue;
		j.qa_at[k] = at;
		for (int v = 0; v < m->nv; v++) {
			int group = ed_k_act_group(j.level, m->dt);
			enum ed_dtype ord =
			    ed_k_act_order(j.level, m->dt, NULL, 0)
				? m->dt
				: ED_DT_Q8_0;
			int64_t q = 0;
			while (q < j.nq &&
			       !(j.qin[q].x == m->x[v] && j.qin[q].K == m->K &&
				 j.qin[q].group == group &&
				 j.qin[q].order == ord))
				q++;
			if (q == j.nq) {
				j.qin[q] = (struct qin){
				    m->x[v], m->K, group, ord, {0}};
				j.nq++;
				bytes += (size_t)m->K + (size_t)m->K / 32 * 4 +
					 (size_t)m->K / 16 * 6 + 64;
			}
			j.qa[at++] = &j.qin[q].a;
		}
	}
	mem = bytes ? malloc(bytes) : NULL;
	if (bytes && !mem)
		goto out;
	for (int64_t q = 0, off = 0; q < j.nq; q++) {
		struct qin *in = &j.qin[q];
		/* d [K / 32], ds [K / 16] (either group), s16, q */
		in->a.d = (float *)(mem + off);
		in->a.ds = in->a.d + in->K / 32;
		in->a.s16 = (int16_t *)(in->a.ds + in->K / 16);
		in->a.q = (int8_t *)(in->a.s16 + in->K / 16);
		off += (size_t)in->K + (size_t)in->K / 32 * 4 +
		       (size_t)in->K / 16 * 6 + 64;
	}
	if (j.nq)
		ed_pool_for_each(p, j.nq, quantize_items, &j);
	ed_pool_for_each(p, j.items, product_items, &j);
	free(mem);
	rc = 0;
out:
	free(j.qin);
	free(j.qa);
	free(j.qa_at);
	free(j.first);
	return rc;
}
