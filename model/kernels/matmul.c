/*
 * matmul.c - y = x W^T over weights stored as BF16, F16 or F32, float32
 * accumulation, with runtime dispatch: AVX-512, AVX2+FMA, portable C.
 *
 *   M = 1 (decode): matvec.c, a batch of one vector.
 *   M > 1 (prefill, ViT): gemm.c's packed panels and register tiles, or
 *   qgemm.c's integer products for quantized weights.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef ED_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

/* ---- instruction set ----------------------------------------------- */

static _Atomic int isa_cap = ED_ISA_AVX512;

/* clang 14 cannot ask for F16C; every CPU with AVX2 has it */
#if defined(__clang__)
#define CPU_F16C() 1
#else
#define CPU_F16C() __builtin_cpu_supports("f16c")
#endif

enum ed_isa ed_k_isa_best(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw") && CPU_F16C())
		return ED_ISA_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	    CPU_F16C())
		return ED_ISA_AVX2;
#endif
	return ED_ISA_PORTABLE;
}

enum ed_isa ed_k_isa_limit(enum ed_isa level)
{
	atomic_store_explicit(&isa_cap, (int)level, memory_order_relaxed);
	return ed_k_isa_best() < level ? ed_k_isa_best() : level;
}

enum ed_isa ed_k_isa(void)
{
	/* detected once; sessions on several threads ask concurrently */
	static _Atomic int best = -1;
	int b = atomic_load_explicit(&best, memory_order_relaxed);
	int cap = atomic_load_explicit(&isa_cap, memory_order_relaxed);

	if (b < 0) {
		b = (int)ed_k_isa_best();
		atomic_store_explicit(&best, b, memory_order_relaxed);
	}
	return (enum ed_isa)(b < cap ? b : cap);
}

static enum ed_isa isa(void)
{
	return ed_k_isa();
}

const char *ed_k_isa_name(enum ed_isa level)
{
	switch (level) {
	case ED_ISA_AVX512: return "avx512";
	case ED_ISA_AVX2: return "avx2";
	case ED_ISA_PORTABLE: break;
	}
	return "portable";
}

/* ---- conversions --------------------------------------------------- */

float ed_k_bf16_to_f32(uint16_t h)
{
	uint32_t b = (uint32_t)h << 16;
	float f;

	memcpy(&f, &b, 4);
	return f;
}

uint16_t ed_k_f32_to_bf16(float f)
{
	uint32_t b;

	memcpy(&b, &f, 4);
	if ((b & 0x7FFFFFFFu) > 0x7F800000u) /* NaN stays NaN */
		return (uint16_t)((b >> 16) | 0x40);
	b += 0x7FFFu + ((b >> 16) & 1);
	return (uint16_t)(b >> 16);
}

float ed_k_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31,
		 man = h & 1023, bits;
	float f;

	if (exp == 0) {
		f = (float)man * 5.9604644775390625e-8f;
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7F800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t ed_k_f32_to_f16(float f)
{
	uint32_t b, sign, man;
	int exp;

	memcpy(&b, &f, 4);
	sign = (b >> 16) & 0x8000;
	exp = (int)((b >> 23) & 255) - 127 + 15;
	man = b & 0x7FFFFF;
	if (((b >> 23) & 255) == 255)
		return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7C00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		{
			int shift = 14 - exp;
			uint32_t half = 1u << (shift - 1);
			uint32_t r = man >> shift;
			uint32_t rem = man & ((1u << shift) - 1);
			if (rem > half || (rem == half && (r & 1)))
				r++;
			return (uint16_t)(sign | r);
		}
	}
	{
		uint32_t r = (uint32_t)exp << 10 | man >> 13;
		uint32_t rem = man & 0x1FFF;
		if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
}

void ed_k_to_f32(float *dst, const void *src, enum ed_dtype dt, size_t n)
{
	const uint16_t *h = src;

	switch (dt) {
	case ED_DT_F32: memcpy(dst, src, n * 4); return;
	case ED_DT_BF16:
		for (size_t i = 0; i < n; i++)
			dst[i] = ed_k_bf16_to_f32(h[i]);
		return;
	case ED_DT_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = ed_k_f16_to_f32(h[i]);
		return;
	default:
		if (ed_k_is_quant(dt)) {
			ed_k_dequantize_row(dt, src, dst, (int64_t)n);
			return;
		}
		for (size_t i = 0; i < n; i++)
			dst[i] = 0;
	}
}

/* ---- reference ----------------------------------------------------- */

float ed_k_weight(const void *W, enum ed_dtype wt, size_t i)
{
	switch (wt) {
	case ED_DT_BF16: return ed_k_bf16_to_f32(((const uint16_t *)W)[i]);
	case ED_DT_F16: return ed_k_f16_to_f32(((const uint16_t *)W)[i]);
	default: return ((const float *)W)[i];
	}
}

void ed_k_matmul_ref(float *y, const float *x, int64_t M, const void *W,
		     enum ed_dtype wt, int64_t N, int64_t K, const float *bias)
{
	if (ed_k_is_quant(wt)) {
		/* the rows dequantized, then summed in double */
		float *row = malloc((size_t)K * sizeof *row);
		if (!row)
			return;
		for (int64_t n = 0; n < N; n++) {
			ed_k_dequantize_row(
			    wt,
			    (const char *)W + ed_k_row_bytes(wt, K) * (size_t)n,
			    row, K);
			for (int64_t m = 0; m < M; m++) {
				double acc = bias ? bias[n] : 0;
				for (int64_t k = 0; k < K; k++)
					acc += (double)x[m * K + k] * row[k];
				y[m * N + n] = (float)acc;
			}
		}
		free(row);
		return;
	}
	for (int64_t m = 0; m < M; m++)
		for (int64_t n = 0; n < N; n++) {
			double acc = bias ? bias[n] : 0;
			for (int64_t k = 0; k < K; k++)
				acc += (double)x[m * K + k] *
				       ed_k_weight(W, wt, (size_t)(n * K + k));
			y[m * N + n] = (float)acc;
		}
}

#ifdef ED_HAVE_DNNL
/* Products of at least this many multiply-adds go to oneDNN's sgemm
 * (built with DNNL=1): 311 against our 243 GFLOP/s on the vision tower's
 * shapes on the development machine. Smaller ones stay ours, as do
 * weights over 256 MiB as float32 (converted per call). */
#define DNNL_MIN_MACS (1LL << 30)
#define DNNL_MAX_W    (256LL << 20)

struct f32_job {
	float *dst;
	const void *W;
	enum ed_dtype wt;
	int64_t K;
};

static void w_to_f32(void *ctx, int64_t b, int64_t e, int tid)
{
	struct f32_job *j = ctx;
	size_t rb = ed_k_row_bytes(j->wt, j->K);

	(void)tid;
	for (int64_t n = b; n < e; n++)
		ed_k_to_f32(j->dst + n * j->K, (const char *)j->W + n * rb,
			    j->wt, (size_t)j->K);
}

static bool ed_dnnl_matmul(struct ed_pool *p, float *y, const float *x,
			   int64_t M, const void *W, enum ed_dtype wt,
			   int64_t N, int64_t K, const float *bias)
{
	float *wf = NULL;
	const float *b = W;
	dnnl_status_t st;

	if (M * N * K < DNNL_MIN_MACS || N * K * 4 > DNNL_MAX_W)
		return false;
	if (wt != ED_DT_F32) {
		wf = malloc((size_t)(N * K) * sizeof *wf);
		if (!wf)
			return false;
		ed_pool_for(p, N, 16, w_to_f32,
			    &(struct f32_job){wf, W, wt, K});
		b = wf;
	}
	omp_set_num_threads(ed_pool_threads(p));
	st = dnnl_sgemm('N', 'T', M, N, K, 1.0f, x, K, b, K, 0.0f, y, N);
	free(wf);
	if (st != dnnl_success)
		return false;
	if (bias)
		for (int64_t m = 0; m < M; m++)
			for (int64_t n = 0; n < N; n++)
				y[m * N + n] += bias[n];
	return true;
}
#endif

/* One row of x at a time (no scratch for the tiles): M = 1 products. */
static void rows_one_by_one(struct ed_pool *p, float *y, const float *x,
			    int64_t M, const void *W, enum ed_dtype wt,
			    int64_t N, int64_t K, const float *bias)
{
	for (int64_t m = 0; m < M; m++) {
		const float *xm = x + m * K;
		float *ym = y + m * N;
		struct ed_mv mv = {W, wt, N, K, bias, 1, &xm, &ym};
		if (ed_k_matvec(p, &mv, 1))
			ed_k_matmul_ref(ym, xm, 1, W, wt, N, K, bias);
	}
}

void ed_k_matmul(struct ed_pool *p, float *y, const float *x, int64_t M,
		 const void *W, enum ed_dtype wt, int64_t N, int64_t K,
		 const float *bias)
{
	enum ed_isa level = isa();

	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		for (int64_t i = 0; i < M * N; i++)
			y[i] = bias ? bias[i % N] : 0;
		return;
	}
	if (M == 1) { /* decode: matvec.c, as a batch of one */
		rows_one_by_one(p, y, x, 1, W, wt, N, K, bias);
		return;
	}
#ifdef ED_HAVE_DNNL
	if (!ed_k_is_quant(wt) && ed_dnnl_matmul(p, y, x, M, W, wt, N, K, bias))
		return;
#endif
	if (ed_k_is_quant(wt) && level == ED_ISA_AVX512 &&
	    ed_k_qgemm(p, y, x, M, W, wt, N, K, bias) == 0)
		return;
	if (ed_k_gemm(p, level, y, x, M, W, wt, N, K, bias) != 0)
		rows_one_by_one(p, y, x, M, W, wt, N, K, bias); /* no memory */
}

void ed_k_matmul_pair(struct ed_pool *p, float *y0, float *y1, const float *x,
		      int64_t M, const void *W0, const void *W1,
		      enum ed_dtype wt, int64_t N, int64_t K)
{
	if (M > 1 && ed_k_is_quant(wt) && isa() == ED_ISA_AVX512 &&
	    ed_k_qgemm2(p, y0, y1, x, M, W0, W1, wt, N, K) == 0)
		return;
	ed_k_matmul(p, y0, x, M, W0, wt, N, K, NULL);
	ed_k_matmul(p, y1, x, M, W1, wt, N, K, NULL);
}
