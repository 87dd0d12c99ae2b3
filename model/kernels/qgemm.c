/*
 * qgemm.c - products with many rows over quantized weights (prompt
 * prefill of a GGUF model, the experts of a MoE layer) on VNNI's integer
 * dot products.
 *
 * Each token's activations are quantized once per product, per 32 values,
 * and laid out with 16 tokens in the 16 lanes of a register. A weight row
 * is unpacked to integers u (ed_k_unpack_q: w = scale * u - minv per group
 * of 16 or 32), so a piece of a row broadcast against a register of
 * activations is one instruction for 16 tokens. Per group the integer
 * sums become floats:
 *
 *     y[m][n] += scale[n][g] * da[m][g] * sum_k u[n][k] q[m][k]
 *              - minv[n][g] * da[m][g] * sum_k q[m][k]
 *
 * The activations' precision follows the weights':
 *   Q8_0: int16 (d = max |x| / 32767, error at most 2^-16 of the block's
 *   largest), vpdpwssd on pairs: qa[block of 16][K / 2][16][2]. int8 here
 *   was measured at a mean KL of 0.22 nats against 0.01 on a golden
 *   model's prompt: Q8_0's own error is as small as int8 activations'.
 *   Q6_K, Q4_K, Q4_0: int8 exactly as the one-row path quantizes them
 *   (per 32, Q4_K per 256: ed_k_act_group; prefill and decode agree),
 *   vpdpbusd on quads:
 *   qa[block of 16][K / 4][16][4], twice the multiplies per instruction.
 *   Their weights' own error (2.5-8.5% RMS) is 6-20 times int8's (0.4%).
 * (|u| <= 255: a group's int16 sum stays below 2^31.) Register tile: 4
 * weight rows x 32 tokens, 8 integer and 8 float accumulators. Work items
 * of 32 rows are claimed by free threads, so every weight byte is
 * unpacked once per product, on one thread; each output is summed in an
 * order fixed by the shapes.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RN  4	/* weight rows per tile */
#define RQ  16	/* tiles of rows per work item */
#define KB  256 /* columns of K per pass: activations stay in L1 */
#define PCH 8	/* pairs of 16-token blocks per chunk: 256 tokens */

struct qg_job {
	float *y[2]; /* one or two weight matrices over the same x */
	const float *x;
	int64_t M, N, K;
	const void *W[2];
	enum ed_dtype wt;
	const float *bias[2];
	int64_t items;	/* work items per matrix */
	int G;		/* weight group: 16 or 32 */
	bool i8;	/* int8 activations (else int16) */
	int agroup;	/* int8: values per activation scale, 32 or 256 */
	int64_t ng, nb; /* groups per row, blocks of 16 tokens */
	void *qa; /* int16 [nb][K / 2][16][2] or int8 [nb][K / 4][16][4] */
	float *da, *fb; /* [nb][ng][16]: scale, scale x group sum */
	char *scratch;	/* per thread: RN unpacked rows */
	size_t per;
};

/* ---- activations ---------------------------------------------------- */

void ed_k_quantize_act16(const float *x, int64_t K, int16_t *q, float *d,
			 int32_t *s16)
{
	for (int64_t b = 0; b < K / 32; b++) {
		float amax = 0, id;
		for (int j = 0; j < 32; j++) {
			float a = fabsf(x[b * 32 + j]);
			amax = a > amax ? a : amax;
		}
		d[b] = amax / 32767;
		id = amax > 0 ? 32767 / amax : 0;
		for (int h = 0; h < 2; h++) {
			int32_t s = 0;
			for (int j = 16 * h; j < 16 * h + 16; j++) {
				int v = (int)lrintf(x[b * 32 + j] * id);
				q[b * 32 + j] = (int16_t)v;
				s += v;
			}
			s16[2 * b + h] = s;
		}
	}
}

#if defined(__x86_64__)
/* ed_k_quantize_act16 with AVX-512: the same values (vcvtps2dq rounds to
 * nearest even like lrintf) */
__attribute__((target("avx512f,avx512bw"))) static void
act16_avx512(const float *x, int64_t K, int16_t *q, float *d, int32_t *s16)
{
	for (int64_t b = 0; b < K / 32; b++) {
		__m512 x0 = _mm512_loadu_ps(x + b * 32),
		       x1 = _mm512_loadu_ps(x + b * 32 + 16);
		float amax = _mm512_reduce_max_ps(
		    _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
		__m512 id = _mm512_set1_ps(amax > 0 ? 32767 / amax : 0);
		__m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, id)),
			i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, id));
		d[b] = amax / 32767;
		_mm256_storeu_si256((void *)(q + b * 32),
				    _mm512_cvtepi32_epi16(i0));
		_mm256_storeu_si256((void *)(q + b * 32 + 16),
				    _mm512_cvtepi32_epi16(i1));
		s16[2 * b] = _mm512_reduce_add_epi32(i0);
		s16[2 * b + 1] = _mm512_reduce_add_epi32(i1);
	}
}
#endif

#if defined(__x86_64__)
/* ed_k_quantize_act with AVX-512: the same values (x * (1 / d) rounded
 * to nearest even, as nearest_int does) */
__attribute__((target("avx512f,avx512bw"))) static void
act8_avx512(const float *x, int64_t K, struct ed_qact *a)
{
	for (int64_t b = 0; b < K / 32; b++) {
		__m512 x0 = _mm512_loadu_ps(x + b * 32),
		       x1 = _mm512_loadu_ps(x + b * 32 + 16);
		float amax = _mm512_reduce_max_ps(
		    _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
		float d = amax / 127, id = d ? 1 / d : 0;
		__m512i i0 = _mm512_cvtps_epi32(
			    _mm512_mul_ps(x0, _mm512_set1_ps(id))),
			i1 = _mm512_cvtps_epi32(
			    _mm512_mul_ps(x1, _mm512_set1_ps(id)));
		int s0 = _mm512_reduce_add_epi32(i0),
		    s1 = _mm512_reduce_add_epi32(i1);
		a->d[b] = d;
		_mm_storeu_si128((void *)(a->q + b * 32),
				 _mm512_cvtepi32_epi8(i0));
		_mm_storeu_si128((void *)(a->q + b * 32 + 16),
				 _mm512_cvtepi32_epi8(i1));
		a->s16[2 * b] = (int16_t)s0;
		a->s16[2 * b + 1] = (int16_t)s1;
		a->ds[b] = d * (float)(s0 + s1);
	}
}

/* bytes from 16-bit values below 256 */
__attribute__((target("avx512f,avx512bw"))) static void
narrow_avx512(uint8_t *dst, const uint16_t *src, int64_t n)
{
	int64_t k = 0;

	for (; k + 32 <= n; k += 32)
		_mm256_storeu_si256(
		    (void *)(dst + k),
		    _mm512_cvtepi16_epi8(_mm512_loadu_si512(src + k)));
	for (; k < n; k++)
		dst[k] = (uint8_t)src[k];
}
#endif

void ed_k_quantize_act8_level(enum ed_isa level, const float *x, int64_t K,
			      struct ed_qact *a)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512) {
		act8_avx512(x, K, a);
		return;
	}
#endif
	(void)level;
	ed_k_quantize_act(x, K, a);
}

void ed_k_quantize_act16_level(enum ed_isa level, const float *x, int64_t K,
			       int16_t *q, float *d, int32_t *s16)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512) {
		act16_avx512(x, K, q, d, s16);
		return;
	}
#endif
	(void)level;
	ed_k_quantize_act16(x, K, q, d, s16);
}

static void qg_pack(void *ctx, int64_t b, int64_t e, int tid)
{
	struct qg_job *j = ctx;
	int64_t K = j->K;
	char *s = j->scratch + (size_t)tid * j->per;
	int16_t *q = (int16_t *)s;
	float *d = (float *)(q + K);
	int32_t *s16 = (int32_t *)(d + K / 32);

	struct ed_qact a8 = {(int8_t *)s, (float *)(s + ((K + 63) & ~63)), NULL,
			     NULL, 32};

	a8.ds = a8.d + K / 32;
	a8.s16 = (int16_t *)(a8.ds + K / 16); /* ds: K / 16 for group 256 */
	for (int64_t blk = b; blk < e; blk++) {
		char *qa = (char *)j->qa + blk * K * 16 * (j->i8 ? 1 : 2);
		float *da = j->da + blk * j->ng * 16,
		      *fb = j->fb + blk * j->ng * 16;
		for (int l = 0; l < 16; l++) {
			int64_t m = blk * 16 + l;
			if (m >= j->M) {
				/* 4 bytes per lane and step either way */
				for (int64_t st = 0; st < K / (j->i8 ? 4 : 2);
				     st++)
					memset(qa + (st * 16 + l) * 4, 0, 4);
				for (int64_t g = 0; g < j->ng; g++)
					da[g * 16 + l] = fb[g * 16 + l] = 0;
				continue;
			}
			if (j->i8 && j->agroup == 256) {
				ed_k_quantize_act256(ED_ISA_AVX512,
						     j->x + m * K, K, &a8);
				for (int64_t kq = 0; kq < K / 4; kq++)
					memcpy(qa + (kq * 16 + l) * 4,
					       a8.q + kq * 4, 4);
			} else if (j->i8) {
				ed_k_quantize_act8_level(ED_ISA_AVX512,
							 j->x + m * K, K, &a8);
				for (int64_t kq = 0; kq < K / 4; kq++)
					memcpy(qa + (kq * 16 + l) * 4,
					       a8.q + kq * 4, 4);
			} else {
				ed_k_quantize_act16_level(
				    ED_ISA_AVX512, j->x + m * K, K, q, d, s16);
				for (int64_t kp = 0; kp < K / 2; kp++)
					memcpy(qa + (kp * 16 + l) * 4,
					       q + kp * 2, 4);
			}
			for (int64_t g = 0; g < j->ng; g++) {
				float dg = j->i8 ? a8.d[g * j->G / j->agroup]
						 : d[g * j->G / 32];
				int32_t sum =
				    j->i8	 ? (j->G == 32 ? a8.s16[2 * g] +
								     a8.s16[2 * g + 1]
							       : a8.s16[g])
				    : j->G == 32 ? s16[2 * g] + s16[2 * g + 1]
						 : s16[g];
				da[g * 16 + l] = dg;
				fb[g * 16 + l] = dg * (float)sum;
			}
		}
	}
}

/* ---- register tile -------------------------------------------------- */

#if defined(__x86_64__)
/* acc[r][0 .. 16 MV) += the RN rows' dot products with MV blocks of 16
 * tokens over groups g0 .. g1 (qa1, da1, fb1 unused when MV = 1). u: RN
 * rows of K values, ws/wm: RN rows of ng group scales and offsets. I8:
 * byte weights and int8 activations (qa [K / 4][16][4], vpdpbusd: u8 x
 * s8), else 16-bit ones (qa [K / 2][16][2], vpdpwssd); either way a step
 * is 32 bits of a row against 64 bytes of activations. */
static inline
    __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) void
    qtile(float *acc, const void *uv, int64_t K, const float *ws,
	  const float *wm, int64_t ng, int64_t g0, int64_t g1, const void *qa0v,
	  const void *qa1v, const float *da0, const float *da1,
	  const float *fb0, const float *fb1, const int G, const int MV,
	  const int I8)
{
	const int vs = I8 ? 4 : 2, es = I8 ? 1 : 2; /* values per step, bytes */
	const char *u = uv, *qa0 = qa0v, *qa1 = qa1v;
	__m512 f[RN][2];

#pragma GCC unroll 4
	for (int r = 0; r < RN; r++) {
		f[r][0] = _mm512_loadu_ps(acc + r * 32);
		f[r][1] = MV > 1 ? _mm512_loadu_ps(acc + r * 32 + 16)
				 : _mm512_setzero_ps();
	}
	for (int64_t g = g0; g < g1; g++) {
		__m512i s[RN][2];
#pragma GCC unroll 4
		for (int r = 0; r < RN; r++)
			s[r][0] = s[r][1] = _mm512_setzero_si512();
#pragma GCC unroll 16
		for (int t = 0; t < G / vs; t++) {
			int64_t st = g * (G / vs) + t;
			__m512i a0 = _mm512_loadu_si512(qa0 + st * 64);
			__m512i a1 = MV > 1 ? _mm512_loadu_si512(qa1 + st * 64)
					    : _mm512_setzero_si512();
#pragma GCC unroll 4
			for (int r = 0; r < RN; r++) {
				int32_t w;
				memcpy(&w, u + (r * K + st * vs) * es, 4);
				__m512i wv = _mm512_set1_epi32(w);
				s[r][0] =
				    I8 ? _mm512_dpbusd_epi32(s[r][0], wv, a0)
				       : _mm512_dpwssd_epi32(s[r][0], a0, wv);
				if (MV > 1)
					s[r][1] = I8 ? _mm512_dpbusd_epi32(
							   s[r][1], wv, a1)
						     : _mm512_dpwssd_epi32(
							   s[r][1], a1, wv);
			}
		}
		{
			__m512 d0 = _mm512_loadu_ps(da0 + g * 16),
			       b0 = _mm512_loadu_ps(fb0 + g * 16);
			__m512 d1 = MV > 1 ? _mm512_loadu_ps(da1 + g * 16) : d0,
			       b1 = MV > 1 ? _mm512_loadu_ps(fb1 + g * 16) : b0;
#pragma GCC unroll 4
			for (int r = 0; r < RN; r++) {
				__m512 sc = _mm512_set1_ps(ws[r * ng + g]),
				       mn = _mm512_set1_ps(wm[r * ng + g]);
				f[r][0] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(s[r][0]),
				    _mm512_mul_ps(d0, sc), f[r][0]);
				f[r][0] = _mm512_fnmadd_ps(b0, mn, f[r][0]);
				if (MV > 1) {
					f[r][1] = _mm512_fmadd_ps(
					    _mm512_cvtepi32_ps(s[r][1]),
					    _mm512_mul_ps(d1, sc), f[r][1]);
					f[r][1] =
					    _mm512_fnmadd_ps(b1, mn, f[r][1]);
				}
			}
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < RN; r++) {
		_mm512_storeu_ps(acc + r * 32, f[r][0]);
		if (MV > 1)
			_mm512_storeu_ps(acc + r * 32 + 16, f[r][1]);
	}
}

/* qtile with its shape fixed at compile time: 8 variants */
#define QTILE(G_, MV_, I8_)                                                    \
	qtile(acc, u, K, ws, wm, ng, g0, g1, qa0, qa1, da0, da1, fb0, fb1, G_, \
	      MV_, I8_)

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
qtile_any(float *acc, const void *u, int64_t K, const float *ws,
	  const float *wm, int64_t ng, int64_t g0, int64_t g1, const void *qa0,
	  const void *qa1, const float *da0, const float *da1, const float *fb0,
	  const float *fb1, int G, int MV, bool i8)
{
	if (i8) {
		if (G == 32)
			MV == 2 ? QTILE(32, 2, 1) : QTILE(32, 1, 1);
		else
			MV == 2 ? QTILE(16, 2, 1) : QTILE(16, 1, 1);
	} else {
		if (G == 32)
			MV == 2 ? QTILE(32, 2, 0) : QTILE(32, 1, 0);
		else
			MV == 2 ? QTILE(16, 2, 0) : QTILE(16, 1, 0);
	}
}
#endif

/* ---- rows ------------------------------------------------------------ */

/* Work item: RQ tiles of RN rows. Their rows are unpacked once; then
 * per KB columns of K, every pair of token blocks runs against every
 * tile, so the pair's activations are read from L1 RQ times. */
static void qg_rows(void *ctx, int64_t b, int64_t e, int tid)
{
	struct qg_job *j = ctx;
	int64_t K = j->K, ng = j->ng, gk = KB / j->G;
	size_t rb = ed_k_row_bytes(j->wt, K);
	char *s = j->scratch + (size_t)tid * j->per;
	uint16_t *u = (uint16_t *)s;
	float *ws = (float *)(u + RQ * RN * K);
	float *wm = ws + RQ * RN * ng;
	float *acc = wm + RQ * RN * ng; /* [RQ][nb / 2][RN][32] */
	uint8_t *u8rows = (uint8_t *)u;
	int64_t npair = (j->nb + 1) / 2;

	for (int64_t it = b; it < e; it++) {
		int w = it >= j->items;
		int64_t n0 = (it - w * j->items) * RQ * RN;
		const void *W = j->W[w];
		const float *bias = j->bias[w];
		float *y = j->y[w];
		{
			/* the item's rows are contiguous: ask for all of them
			 * at once rather than miss on each in turn */
			int64_t nr = j->N - n0 < RQ * RN ? j->N - n0 : RQ * RN;
			const char *w0 = (const char *)W + (size_t)n0 * rb;
			for (size_t off = 0; off < (size_t)nr * rb; off += 64)
				__builtin_prefetch(w0 + off);
		}
		for (int r = 0; r < RQ * RN; r++) {
			if (n0 + r >= j->N) {
				memset(u + r * K, 0, (size_t)K * 2);
				memset(ws + r * ng, 0, (size_t)ng * 4);
				memset(wm + r * ng, 0, (size_t)ng * 4);
				continue;
			}
			/* int8 activations take byte rows: u8[r][K] at the
			 * front, each unpacked through a row at the back */
			uint16_t *dst = j->i8 ? u + RQ * RN * K / 2 : u + r * K;
			ed_k_unpack_q(ED_ISA_AVX512, j->wt,
				      (const char *)W + (size_t)(n0 + r) * rb,
				      K, dst, ws + r * ng, wm + r * ng);
#if defined(__x86_64__)
			if (j->i8)
				narrow_avx512(u8rows + r * K, dst, K);
#endif
		}
		memset(acc, 0, (size_t)(RQ * npair * RN * 32) * sizeof *acc);
		/* tokens in chunks of PCH pairs of blocks: a chunk's
		 * accumulators and activations stay in the core's cache
		 * through all the passes over K (each output still sums its
		 * passes in order) */
		for (int64_t pc0 = 0; pc0 < npair; pc0 += PCH)
			for (int64_t g0 = 0; g0 < ng; g0 += gk) {
				int64_t g1 = g0 + gk < ng ? g0 + gk : ng;
				int64_t pc1 =
				    pc0 + PCH < npair ? pc0 + PCH : npair;
				for (int64_t pr = pc0; pr < pc1; pr++) {
					int64_t blk = 2 * pr;
					int mv = j->nb - blk >= 2 ? 2 : 1;
					const float *da = j->da + blk * ng * 16,
						    *fb = j->fb + blk * ng * 16;
					for (int q = 0; q < RQ; q++) {
						if (n0 + q * RN >= j->N)
							break;
#if defined(__x86_64__)
						qtile_any(
						    acc + (q * npair + pr) *
							      RN * 32,
						    j->i8 ? (const void
								 *)(u8rows +
								    q * RN * K)
							  : (const void
								 *)(u +
								    q * RN * K),
						    K, ws + q * RN * ng,
						    wm + q * RN * ng, ng, g0,
						    g1,
						    (const char *)j->qa +
							blk * K * 16 *
							    (j->i8 ? 1 : 2),
						    (const char *)j->qa +
							(blk + 1) * K * 16 *
							    (j->i8 ? 1 : 2),
						    da, da + ng * 16, fb,
						    fb + ng * 16, j->G, mv,
						    j->i8);
#endif
					}
				}
			}
		{
			/* rows of y in order: acc is [tile][pair][row][32] */
			int nr =
			    (int)(j->N - n0 < RQ * RN ? j->N - n0 : RQ * RN);
			int64_t roff[RQ * RN];
			for (int r = 0; r < nr; r++)
				roff[r] =
				    (r / RN) * npair * RN * 32 + (r % RN) * 32;
			for (int64_t m = 0; m < j->M; m++) {
				const float *am =
				    acc + (m / 32) * RN * 32 + m % 32;
				float *ym = y + m * j->N + n0;
				for (int r = 0; r < nr; r++)
					ym[r] = am[roff[r]] +
						(bias ? bias[n0 + r] : 0);
			}
		}
	}
}

static int qgemm(struct ed_pool *p, float *y0, float *y1, const float *x,
		 int64_t M, const void *W0, const void *W1, enum ed_dtype wt,
		 int64_t N, int64_t K, const float *bias, bool force_i8)
{
	struct qg_job j = {.y = {y0, y1},
			   .x = x,
			   .M = M,
			   .N = N,
			   .K = K,
			   .W = {W0, W1},
			   .wt = wt,
			   .bias = {bias, NULL}};
	int threads = ed_pool_threads(p);
	size_t act, rows;

	if (!ed_k_has_vnni() || !ed_k_is_quant(wt) || K % 32 ||
	    K % ed_k_block(wt))
		return ED_EINVAL;
	j.G = ed_k_unpack_group(wt);
	j.i8 = wt != ED_DT_Q8_0 || force_i8;
	/* int8 in the groups decode quantizes them in: prefill and decode
	 * see the same activations */
	j.agroup = ed_k_act_group(ED_ISA_AVX512, wt);
	j.ng = K / j.G;
	j.nb = (M + 15) / 16;
	j.items = (N + RQ * RN - 1) / (RQ * RN);
	/* per thread: one token's activations, or a work item's unpacked
	 * rows and accumulators */
	act = (size_t)K * 2 + (size_t)(K / 32) * 4 + (size_t)(K / 16) * 4 + 64 +
	      (size_t)(K / 32) * 8 + (size_t)(K / 16) * 2;
	rows = (size_t)(RQ * RN * K) * 2 +
	       (size_t)(2 * RQ * RN * j.ng) * sizeof(float) +
	       (size_t)(RQ * (j.nb + 1) / 2 * RN * 32) * sizeof(float);
	j.per = ((act > rows ? act : rows) + 63) & ~(size_t)63;
	j.scratch = aligned_alloc(64, (size_t)threads * j.per);
	j.qa = malloc((size_t)(j.nb * K * 16) * (j.i8 ? 1 : 2));
	j.da = malloc((size_t)(j.nb * j.ng * 16) * 2 * sizeof(float));
	if (!j.scratch || !j.qa || !j.da) {
		free(j.scratch), free(j.qa), free(j.da);
		return ED_ENOMEM;
	}
	j.fb = j.da + j.nb * j.ng * 16;
	ed_pool_for(p, j.nb, 1, qg_pack, &j);
	ed_pool_for_each(p, j.items * (W1 ? 2 : 1), qg_rows, &j);
	free(j.scratch), free(j.qa), free(j.da);
	return 0;
}

int ed_k_qgemm(struct ed_pool *p, float *y, const float *x, int64_t M,
	       const void *W, enum ed_dtype wt, int64_t N, int64_t K,
	       const float *bias)
{
	return qgemm(p, y, NULL, x, M, W, NULL, wt, N, K, bias, false);
}

int ed_k_qgemm_int8(struct ed_pool *p, float *y, const float *x, int64_t M,
		    const void *W, enum ed_dtype wt, int64_t N, int64_t K,
		    const float *bias)
{
	return qgemm(p, y, NULL, x, M, W, NULL, wt, N, K, bias, true);
}

int ed_k_qgemm2(struct ed_pool *p, float *y0, float *y1, const float *x,
		int64_t M, const void *W0, const void *W1, enum ed_dtype wt,
		int64_t N, int64_t K)
{
	return qgemm(p, y0, y1, x, M, W0, W1, wt, N, K, NULL, false);
}
