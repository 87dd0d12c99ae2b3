/*
 * quant.c - ggml's block formats (Q8_0, Q4_0, Q4_K, Q6_K; layouts bit for
 * bit, spec/QUANT.md; the further ones of llama.cpp's files are
 * qblocks.c's, dispatched from here): quantizing rows, dequantizing them, and
 * the dot products of quantized weight rows with activations quantized to int8
 * (per 32 values, one float scale, with the sums of each 16 for the
 * formats' offsets). The integer dot products run on AVX-512 VNNI
 * (vpdpbusd), AVX2 (maddubs) or portable C; ed_k_qdot_ref dequantizes
 * and sums in double, the reference the tests compare against.
 *
 * The quantizers follow the reference algorithms of ggml: Q8_0 and Q4_0
 * by the block's largest magnitude, Q4_K with a weighted search for each
 * sub-block's scale and minimum, Q6_K with a signed-scale search; then
 * the sub-block scales are quantized and the weights re-quantized against
 * them.
 */
#include "kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

struct blk_q8_0 {
	uint16_t d;
	int8_t qs[32];
};
struct blk_q4_0 {
	uint16_t d;
	uint8_t qs[16];
};
struct blk_q4_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qs[128];
};
struct blk_q6_k {
	uint8_t ql[128];
	uint8_t qh[64];
	int8_t scales[16];
	uint16_t d;
};

_Static_assert(sizeof(struct blk_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(struct blk_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(struct blk_q4_k) == 144, "Q4_K block");
_Static_assert(sizeof(struct blk_q6_k) == 210, "Q6_K block");

static const struct {
	enum ed_dtype dt;
	int block, bytes;
} qtypes[] = {
    {ED_DT_Q8_0, 32, 34},
    {ED_DT_Q4_0, 32, 18},
    {ED_DT_Q4_K, 256, 144},
    {ED_DT_Q6_K, 256, 210},
    /* qblocks.c */
    {ED_DT_Q4_1, 32, 20},
    {ED_DT_Q5_0, 32, 22},
    {ED_DT_Q5_1, 32, 24},
    {ED_DT_IQ4_NL, 32, 18},
    {ED_DT_Q2_K, 256, 84},
    {ED_DT_Q3_K, 256, 110},
    {ED_DT_Q5_K, 256, 176},
    {ED_DT_IQ4_XS, 256, 136},
};

bool ed_k_is_quant(enum ed_dtype dt)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(qtypes); i++)
		if (qtypes[i].dt == dt)
			return true;
	return false;
}

int ed_k_block(enum ed_dtype dt)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(qtypes); i++)
		if (qtypes[i].dt == dt)
			return qtypes[i].block;
	return 1;
}

size_t ed_k_row_bytes(enum ed_dtype dt, int64_t n)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(qtypes); i++)
		if (qtypes[i].dt == dt)
			return (size_t)(n / qtypes[i].block) *
			       (size_t)qtypes[i].bytes;
	return (size_t)n * ed_model_dtype_size(dt);
}

/* Round to nearest, ties to even, for |f| < 2^22 (the quantizers' range):
 * adding 1.5 x 2^23 leaves the integer in the mantissa's low bits. The
 * same result as lrintf in the default rounding mode, without a call. */
static inline int nearest_int(float f)
{
	float v = f + 12582912.f;
	int32_t i;

	memcpy(&i, &v, 4);
	return (i & 0x007fffff) - 0x00400000;
}

/* ---- dequantization ------------------------------------------------- */

static inline __attribute__((always_inline)) void
q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* The 6-bit value of element i (0..255) of a Q6_K block, 0..63. */
static int q6k_value(const struct blk_q6_k *b, int i)
{
	int h = i / 128, r = i % 128, l = r % 32, part = r / 32;
	const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
	int lo = part == 0   ? ql[l] & 15
		 : part == 1 ? ql[l + 32] & 15
		 : part == 2 ? ql[l] >> 4
			     : ql[l + 32] >> 4;
	return lo | (((qh[l] >> (2 * part)) & 3) << 4);
}

void ed_k_dequantize_row(enum ed_dtype dt, const void *src, float *y, int64_t n)
{
	switch (dt) {
	case ED_DT_Q8_0:
		for (int64_t b = 0; b < n / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)src + b;
			float d = ed_k_f16_to_f32(x->d);
			for (int j = 0; j < 32; j++)
				y[b * 32 + j] = d * x->qs[j];
		}
		break;
	case ED_DT_Q4_0:
		for (int64_t b = 0; b < n / 32; b++) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)src + b;
			float d = ed_k_f16_to_f32(x->d);
			for (int j = 0; j < 16; j++) {
				y[b * 32 + j] = d * ((x->qs[j] & 15) - 8);
				y[b * 32 + j + 16] = d * ((x->qs[j] >> 4) - 8);
			}
		}
		break;
	case ED_DT_Q4_K:
		for (int64_t b = 0; b < n / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)src + b;
			float d = ed_k_f16_to_f32(x->d),
			      dmin = ed_k_f16_to_f32(x->dmin);
			float *o = y + b * 256;
			for (int c = 0; c < 4; c++) {
				uint8_t sc, m;
				const uint8_t *q = x->qs + 32 * c;
				q4k_scale_min(2 * c, x->scales, &sc, &m);
				for (int l = 0; l < 32; l++)
					o[64 * c + l] =
					    d * sc * (q[l] & 15) - dmin * m;
				q4k_scale_min(2 * c + 1, x->scales, &sc, &m);
				for (int l = 0; l < 32; l++)
					o[64 * c + 32 + l] =
					    d * sc * (q[l] >> 4) - dmin * m;
			}
		}
		break;
	case ED_DT_Q6_K:
		for (int64_t b = 0; b < n / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)src + b;
			float d = ed_k_f16_to_f32(x->d);
			for (int i = 0; i < 256; i++)
				y[b * 256 + i] = d * x->scales[i / 16] *
						 (q6k_value(x, i) - 32);
		}
		break;
	default:
		if (ed_kx_is(dt))
			ed_kx_dequantize(dt, src, y, n);
		else
			ed_k_to_f32(y, src, dt, (size_t)n);
	}
}

/* ---- unpacking for integer products with many rows ------------------ */

int ed_k_unpack_group(enum ed_dtype dt)
{
	return ed_kx_is(dt) ? ed_kx_group(dt) : dt == ED_DT_Q6_K ? 16 : 32;
}

/* scale and offset of every group of a row */
static void unpack_scales(enum ed_dtype dt, const void *src, int64_t K,
			  float *scale, float *minv)
{
	switch (dt) {
	case ED_DT_Q8_0: /* w = d (u - 128) */
		for (int64_t b = 0; b < K / 32; b++) {
			scale[b] = ed_k_f16_to_f32(
			    ((const struct blk_q8_0 *)src + b)->d);
			minv[b] = 128 * scale[b];
		}
		break;
	case ED_DT_Q4_0: /* w = d (u - 8) */
		for (int64_t b = 0; b < K / 32; b++) {
			scale[b] = ed_k_f16_to_f32(
			    ((const struct blk_q4_0 *)src + b)->d);
			minv[b] = 8 * scale[b];
		}
		break;
	case ED_DT_Q4_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)src + b;
			float d = ed_k_f16_to_f32(x->d),
			      dmin = ed_k_f16_to_f32(x->dmin);
			for (int j = 0; j < 8; j++) {
				uint8_t sc, m;
				q4k_scale_min(j, x->scales, &sc, &m);
				scale[b * 8 + j] = d * sc;
				minv[b * 8 + j] = dmin * m;
			}
		}
		break;
	case ED_DT_Q6_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)src + b;
			float d = ed_k_f16_to_f32(x->d);
			for (int j = 0; j < 16; j++) {
				scale[b * 16 + j] = d * x->scales[j];
				minv[b * 16 + j] = 32 * d * x->scales[j];
			}
		}
		break;
	default: break;
	}
}

static void unpack_portable(enum ed_dtype dt, const void *src, int64_t K,
			    uint16_t *restrict u)
{
	switch (dt) {
	case ED_DT_Q8_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)src + b;
			for (int j = 0; j < 32; j++)
				u[b * 32 + j] = (uint16_t)(x->qs[j] + 128);
		}
		break;
	case ED_DT_Q4_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)src + b;
			for (int j = 0; j < 16; j++) {
				u[b * 32 + j] = x->qs[j] & 15;
				u[b * 32 + j + 16] = x->qs[j] >> 4;
			}
		}
		break;
	case ED_DT_Q4_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)src + b;
			uint16_t *o = u + b * 256;
			for (int c = 0; c < 4; c++)
				for (int l = 0; l < 32; l++) {
					o[64 * c + l] = x->qs[32 * c + l] & 15;
					o[64 * c + 32 + l] =
					    x->qs[32 * c + l] >> 4;
				}
		}
		break;
	case ED_DT_Q6_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)src + b;
			for (int i = 0; i < 256; i++)
				u[b * 256 + i] = (uint16_t)q6k_value(x, i);
		}
		break;
	default: break;
	}
}

#if defined(__x86_64__)
/* Elements 32 part .. 32 part + 31 of one 128-element half of a Q6_K
 * block, as bytes 0..63: l0, l1 its 64 low-nibble bytes, hb its 32 bytes
 * of high bits (the layout q6k_value reads). */
static inline __attribute__((always_inline, target("avx2"))) __m256i
q6k_part(__m256i l0, __m256i l1, __m256i hb, int part)
{
	__m256i lo = part == 0	 ? l0
		     : part == 1 ? l1
		     : part == 2 ? _mm256_srli_epi16(l0, 4)
				 : _mm256_srli_epi16(l1, 4);
	__m256i hi = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * part),
				      _mm256_set1_epi8(3));

	return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi8(15)),
			       _mm256_slli_epi16(hi, 4));
}
#endif

#if defined(__x86_64__)
/* 32 bytes widened to 32 uint16 */
__attribute__((target("avx512f,avx512bw"))) static inline void
put32(uint16_t *o, __m256i v)
{
	_mm512_storeu_si512(o, _mm512_cvtepu8_epi16(v));
}

__attribute__((target("avx512f,avx512bw"))) static void
unpack_avx512(enum ed_dtype dt, const void *src, int64_t K, uint16_t *u)
{
	const __m256i lo4 = _mm256_set1_epi8(15);

	switch (dt) {
	case ED_DT_Q8_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)src + b;
			__m256i v = _mm256_loadu_si256((const void *)x->qs);
			put32(u + b * 32,
			      _mm256_xor_si256(v, _mm256_set1_epi8(-128)));
		}
		break;
	case ED_DT_Q4_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)src + b;
			__m128i v = _mm_loadu_si128((const void *)x->qs);
			__m256i w = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
			put32(u + b * 32, _mm256_and_si256(w, lo4));
		}
		break;
	case ED_DT_Q4_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)src + b;
			for (int c = 0; c < 4; c++) {
				__m256i v = _mm256_loadu_si256(
				    (const void *)(x->qs + 32 * c));
				put32(u + b * 256 + 64 * c,
				      _mm256_and_si256(v, lo4));
				put32(u + b * 256 + 64 * c + 32,
				      _mm256_and_si256(_mm256_srli_epi16(v, 4),
						       lo4));
			}
		}
		break;
	case ED_DT_Q6_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)src + b;
			for (int h = 0; h < 2; h++) {
				const uint8_t *ql = x->ql + 64 * h,
					      *qh = x->qh + 32 * h;
				uint16_t *o = u + b * 256 + 128 * h;
				__m256i l0 = _mm256_loadu_si256(
					    (const void *)ql),
					l1 = _mm256_loadu_si256(
					    (const void *)(ql + 32)),
					hb = _mm256_loadu_si256(
					    (const void *)qh);
				for (int part = 0; part < 4; part++)
					put32(o + 32 * part,
					      q6k_part(l0, l1, hb, part));
			}
		}
		break;
	default: break;
	}
}
#endif

#if defined(__x86_64__)
/* Q4_K's scales with F16C and the six-bit fields as vectors: the same
 * values as unpack_scales */
__attribute__((target("avx512f,avx512bw,f16c"))) static void
q4k_scales_avx512(const void *src, int64_t K, float *scale, float *minv)
{
	for (int64_t b = 0; b < K / 256; b++) {
		const struct blk_q4_k *x = (const struct blk_q4_k *)src + b;
		uint8_t sc[8], m[8];
		__m256 d = _mm256_set1_ps(_cvtsh_ss(x->d)),
		       dm = _mm256_set1_ps(_cvtsh_ss(x->dmin));
		for (int j = 0; j < 8; j++)
			q4k_scale_min(j, x->scales, &sc[j], &m[j]);
		_mm256_storeu_ps(
		    scale + b * 8,
		    _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
					 _mm_loadl_epi64((const void *)sc)))));
		_mm256_storeu_ps(
		    minv + b * 8,
		    _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
					  _mm_loadl_epi64((const void *)m)))));
	}
}
#endif

void ed_k_unpack_q(enum ed_isa level, enum ed_dtype dt, const void *src,
		   int64_t K, uint16_t *u, float *scale, float *minv)
{
	if (ed_kx_is(dt)) {
		ed_kx_unpack(dt, src, K, u, scale, minv);
		return;
	}
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512) {
		if (dt == ED_DT_Q4_K)
			q4k_scales_avx512(src, K, scale, minv);
		else
			unpack_scales(dt, src, K, scale, minv);
		unpack_avx512(dt, src, K, u);
		return;
	}
#endif
	unpack_scales(dt, src, K, scale, minv);
	(void)level;
	unpack_portable(dt, src, K, u);
}

/* ---- quantization --------------------------------------------------- */

static void quantize_q8_0(const float *x, struct blk_q8_0 *y, int64_t n)
{
	for (int64_t b = 0; b < n / 32; b++, x += 32) {
		float amax = 0, d, id;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		d = amax / 127;
		id = d ? 1 / d : 0;
		y[b].d = ed_k_f32_to_f16(d);
		for (int j = 0; j < 32; j++)
			y[b].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

static void quantize_q4_0(const float *x, struct blk_q4_0 *y, int64_t n)
{
	for (int64_t b = 0; b < n / 32; b++, x += 32) {
		float amax = 0, max = 0, d, id;
		for (int j = 0; j < 32; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		d = max / -8;
		id = d ? 1 / d : 0;
		y[b].d = ed_k_f32_to_f16(d);
		for (int j = 0; j < 16; j++) {
			int a = (int)(x[j] * id + 8.5f),
			    c = (int)(x[16 + j] * id + 8.5f);
			a = a > 15 ? 15 : a < 0 ? 0 : a;
			c = c > 15 ? 15 : c < 0 ? 0 : c;
			y[b].qs[j] = (uint8_t)(a | (c << 4));
		}
	}
}

/* Scale and minimum for n values in 0..nmax, minimizing the weighted
 * squared error over a range of candidate scales (ggml's search).
 * Returns the scale, *the_min the (non-negative) minimum to subtract. */
static float make_qkx2(int n, int nmax, const float *x, const float *w,
		       uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
		       float rdelta, int nstep)
{
	float min = x[0], max = x[0], sum_w = w[0], sum_x = w[0] * x[0];
	float iscale, scale, best;

	for (int i = 1; i < n; i++) {
		min = fminf(min, x[i]);
		max = fmaxf(max, x[i]);
		sum_w += w[i];
		sum_x += w[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0;
	}
	iscale = nmax / (max - min);
	scale = 1 / iscale;
	best = 0;
	for (int i = 0; i < n; i++) {
		int l = nearest_int(iscale * (x[i] - min));
		float diff;
		L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
		diff = scale * L[i] + min - x[i];
		best += w[i] * diff * diff;
	}
	for (int is = 0; is <= nstep; is++) {
		float sum_l = 0, sum_l2 = 0, sum_xl = 0, D;
		iscale = (rmin + rdelta * is + nmax) / (max - min);
		for (int i = 0; i < n; i++) {
			int l = nearest_int(iscale * (x[i] - min));
			l = l < 0 ? 0 : l > nmax ? nmax : l;
			Laux[i] = (uint8_t)l;
			sum_l += w[i] * l;
			sum_l2 += w[i] * l * l;
			sum_xl += w[i] * l * x[i];
		}
		D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			float mad = 0;
			if (this_min > 0) {
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			for (int i = 0; i < n; i++) {
				float diff =
				    this_scale * Laux[i] + this_min - x[i];
				mad += w[i] * diff * diff;
			}
			if (mad < best) {
				memcpy(L, Laux, (size_t)n);
				best = mad;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

static void quantize_q4_k(const float *x, struct blk_q4_k *y, int64_t n)
{
	for (int64_t b = 0; b < n / 256; b++, x += 256) {
		uint8_t L[256], Laux[32];
		float w[32], mins[8], scales[8], max_scale = 0, max_min = 0;
		float inv_scale, inv_min, d, dmin;

		for (int j = 0; j < 8; j++) {
			float sum_x2 = 0, av;
			for (int l = 0; l < 32; l++)
				sum_x2 += x[32 * j + l] * x[32 * j + l];
			av = sqrtf(sum_x2 / 32);
			for (int l = 0; l < 32; l++)
				w[l] = av + fabsf(x[32 * j + l]);
			scales[j] = make_qkx2(32, 15, x + 32 * j, w, L + 32 * j,
					      &mins[j], Laux, -1.f, 0.1f, 20);
			max_scale = fmaxf(max_scale, scales[j]);
			max_min = fmaxf(max_min, mins[j]);
		}
		inv_scale = max_scale > 0 ? 63 / max_scale : 0;
		inv_min = max_min > 0 ? 63 / max_min : 0;
		memset(y[b].scales, 0, sizeof y[b].scales);
		for (int j = 0; j < 8; j++) {
			int ls = nearest_int(inv_scale * scales[j]);
			int lm = nearest_int(inv_min * mins[j]);
			ls = ls > 63 ? 63 : ls;
			lm = lm > 63 ? 63 : lm;
			if (j < 4) {
				y[b].scales[j] = (uint8_t)ls;
				y[b].scales[j + 4] = (uint8_t)lm;
			} else {
				y[b].scales[j + 4] =
				    (uint8_t)((ls & 15) | ((lm & 15) << 4));
				y[b].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
				y[b].scales[j] |= (uint8_t)((lm >> 4) << 6);
			}
		}
		y[b].d = ed_k_f32_to_f16(max_scale / 63);
		y[b].dmin = ed_k_f32_to_f16(max_min / 63);
		d = ed_k_f16_to_f32(y[b].d);
		dmin = ed_k_f16_to_f32(y[b].dmin);
		/* the weights again, against the scales as stored */
		for (int j = 0; j < 8; j++) {
			uint8_t sc, m;
			float dd, dm;
			q4k_scale_min(j, y[b].scales, &sc, &m);
			dd = d * sc;
			dm = dmin * m;
			for (int l = 0; l < 32; l++) {
				int q =
				    dd ? nearest_int((x[32 * j + l] + dm) / dd)
				       : 0;
				L[32 * j + l] = (uint8_t)(q < 0	   ? 0
							  : q > 15 ? 15
								   : q);
			}
		}
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				y[b].qs[32 * c + l] =
				    (uint8_t)(L[64 * c + l] |
					      (L[64 * c + 32 + l] << 4));
	}
}

/* Signed scale for n values in -nmax..nmax-1, weighted by x^2 (ggml's
 * make_qx_quants, rmse type 1). L receives values + nmax. */
static float make_qx(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0, amax = 0, iscale, sumlx = 0, suml2 = 0, scale, best;

	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < 1e-30f) {
		memset(L, 0, (size_t)n);
		return 0;
	}
	iscale = -nmax / max;
	for (int i = 0; i < n; i++) {
		int l = nearest_int(iscale * x[i]);
		float w = x[i] * x[i];
		l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
		L[i] = (int8_t)(l + nmax);
		sumlx += w * x[i] * l;
		suml2 += w * l * l;
	}
	scale = suml2 ? sumlx / suml2 : 0;
	best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (!is)
			continue;
		iscale = -(nmax + 0.1f * is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++) {
			int l = nearest_int(iscale * x[i]);
			float w = x[i] * x[i];
			l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
			sumlx += w * x[i] * l;
			suml2 += w * l * l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++) {
				int l = nearest_int(iscale * x[i]);
				l = l < -nmax	   ? -nmax
				    : l > nmax - 1 ? nmax - 1
						   : l;
				L[i] = (int8_t)(l + nmax);
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

static void quantize_q6_k(const float *x, struct blk_q6_k *y, int64_t n)
{
	for (int64_t b = 0; b < n / 256; b++, x += 256) {
		int8_t L[256];
		float scales[16], max_scale = 0, amax = 0, iscale, d;

		for (int g = 0; g < 16; g++) {
			scales[g] = make_qx(16, 32, x + 16 * g, L + 16 * g);
			if (fabsf(scales[g]) > amax) {
				amax = fabsf(scales[g]);
				max_scale = scales[g];
			}
		}
		if (amax == 0) {
			memset(&y[b], 0, sizeof y[b]);
			continue;
		}
		iscale = -128 / max_scale;
		y[b].d = ed_k_f32_to_f16(1 / iscale);
		for (int g = 0; g < 16; g++) {
			int s = nearest_int(iscale * scales[g]);
			y[b].scales[g] = (int8_t)(s > 127    ? 127
						  : s < -128 ? -128
							     : s);
		}
		d = ed_k_f16_to_f32(y[b].d);
		for (int g = 0; g < 16; g++) {
			float dd = d * y[b].scales[g];
			for (int i = 0; i < 16; i++) {
				int l =
				    dd ? nearest_int(x[16 * g + i] / dd) : 0;
				l = l < -32 ? -32 : l > 31 ? 31 : l;
				L[16 * g + i] = (int8_t)(l + 32);
			}
		}
		memset(y[b].qh, 0, sizeof y[b].qh);
		for (int h = 0; h < 2; h++) {
			uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
			const int8_t *Lh = L + 128 * h;
			for (int l = 0; l < 32; l++) {
				int q1 = Lh[l], q2 = Lh[l + 32],
				    q3 = Lh[l + 64], q4 = Lh[l + 96];
				ql[l] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
				ql[l + 32] =
				    (uint8_t)((q2 & 15) | ((q4 & 15) << 4));
				qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) |
						  ((q3 >> 4) << 4) |
						  ((q4 >> 4) << 6));
			}
		}
	}
}

int ed_k_quantize_row(enum ed_dtype dt, const float *x, void *out, int64_t n)
{
	if (n % ed_k_block(dt))
		return ED_EINVAL;
	if (ed_kx_is(dt))
		return ed_kx_quantize(dt, x, out, n);
	switch (dt) {
	case ED_DT_Q8_0: quantize_q8_0(x, out, n); return 0;
	case ED_DT_Q4_0: quantize_q4_0(x, out, n); return 0;
	case ED_DT_Q4_K: quantize_q4_k(x, out, n); return 0;
	case ED_DT_Q6_K: quantize_q6_k(x, out, n); return 0;
	case ED_DT_F32: memcpy(out, x, (size_t)n * sizeof *x); return 0;
	case ED_DT_F16:
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)out)[i] = ed_k_f32_to_f16(x[i]);
		return 0;
	case ED_DT_BF16:
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)out)[i] = ed_k_f32_to_bf16(x[i]);
		return 0;
	default: return ED_EINVAL;
	}
}

/* ---- activations ---------------------------------------------------- */

/* Per group of G values (32 or 256) the int8 values and d, the sums of
 * each 16, and ds in the layout of the group (see struct ed_qact). */
static void act_portable(const float *x, int64_t K, int G, struct ed_qact *a)
{
	for (int64_t b = 0; b < K / G; b++) {
		float amax = 0, d, id;
		for (int j = 0; j < G; j++)
			amax = fmaxf(amax, fabsf(x[b * G + j]));
		d = amax / 127;
		id = d ? 1 / d : 0;
		a->d[b] = d;
		for (int h = 0; h < G / 16; h++) {
			int s = 0;
			for (int j = 16 * h; j < 16 * h + 16; j++) {
				int q = nearest_int(x[b * G + j] * id);
				a->q[b * G + j] = (int8_t)q;
				s += q;
			}
			a->s16[b * (G / 16) + h] = (int16_t)s;
		}
	}
	for (int64_t j = 0; j < K / 32; j++) {
		float v = a->d[j * 32 / G] *
			  (float)(a->s16[2 * j] + a->s16[2 * j + 1]);
		if (G == 32) {
			a->ds[j] = v;
		} else {
			a->ds[j / 8 * 16 + j % 8] = 0;
			a->ds[j / 8 * 16 + 8 + j % 8] = v;
		}
	}
	a->group = G;
}

void ed_k_quantize_act(const float *x, int64_t K, struct ed_qact *a)
{
	act_portable(x, K, 32, a);
}

#if defined(__x86_64__)
/* the same values with AVX-512 (x * (1 / d) rounded to nearest even) */
__attribute__((target("avx512f,avx512bw"))) static void
act256_avx512(const float *x, int64_t K, struct ed_qact *a)
{
	for (int64_t b = 0; b < K / 256; b++) {
		const float *xb = x + b * 256;
		__m512 m = _mm512_setzero_ps();
		float d, id;
		for (int j = 0; j < 256; j += 16)
			m = _mm512_max_ps(
			    m, _mm512_abs_ps(_mm512_loadu_ps(xb + j)));
		d = _mm512_reduce_max_ps(m) / 127;
		id = d ? 1 / d : 0;
		a->d[b] = d;
		for (int h = 0; h < 16; h++) {
			__m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(
			    _mm512_loadu_ps(xb + 16 * h), _mm512_set1_ps(id)));
			_mm_storeu_si128((void *)(a->q + b * 256 + 16 * h),
					 _mm512_cvtepi32_epi8(i));
			a->s16[b * 16 + h] =
			    (int16_t)_mm512_reduce_add_epi32(i);
		}
		for (int j = 0; j < 8; j++) {
			a->ds[b * 16 + j] = 0;
			a->ds[b * 16 + 8 + j] =
			    d * (float)(a->s16[b * 16 + 2 * j] +
					a->s16[b * 16 + 2 * j + 1]);
		}
	}
	a->group = 256;
}
#endif

void ed_k_quantize_act256(enum ed_isa level, const float *x, int64_t K,
			  struct ed_qact *a)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512) {
		act256_avx512(x, K, a);
		return;
	}
#endif
	(void)level;
	act_portable(x, K, 256, a);
}

/* ---- dot products: reference and portable --------------------------- */

double ed_k_qdot_ref(enum ed_dtype dt, const void *w, const struct ed_qact *a,
		     int64_t K)
{
	float row[256];
	double acc = 0;
	int blk = ed_k_block(dt) > 32 ? 256 : 32;
	int group = a->group > 0 ? a->group : 32;

	for (int64_t k0 = 0; k0 < K; k0 += blk) {
		ed_k_dequantize_row(
		    dt, (const char *)w + ed_k_row_bytes(dt, k0), row, blk);
		for (int j = 0; j < blk; j++)
			acc += (double)row[j] * a->d[(k0 + j) / group] *
			       a->q[k0 + j];
	}
	return acc;
}

static float qdot_portable(enum ed_dtype dt, const void *w,
			   const struct ed_qact *a, int64_t K)
{
	const int8_t *q = a->q;
	float acc = 0;

	switch (dt) {
	case ED_DT_Q8_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)w + b;
			int s = 0;
			for (int j = 0; j < 32; j++)
				s += x->qs[j] * q[b * 32 + j];
			acc += ed_k_f16_to_f32(x->d) * a->d[b] * (float)s;
		}
		break;
	case ED_DT_Q4_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)w + b;
			int s = 0;
			for (int j = 0; j < 16; j++)
				s += (x->qs[j] & 15) * q[b * 32 + j] +
				     (x->qs[j] >> 4) * q[b * 32 + 16 + j];
			s -= 8 * (a->s16[2 * b] + a->s16[2 * b + 1]);
			acc += ed_k_f16_to_f32(x->d) * a->d[b] * (float)s;
		}
		break;
	case ED_DT_Q4_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)w + b;
			float d = ed_k_f16_to_f32(x->d),
			      dmin = ed_k_f16_to_f32(x->dmin);
			for (int j = 0; j < 8; j++) {
				const uint8_t *qs = x->qs + 32 * (j / 2);
				const int8_t *qa = q + b * 256 + 32 * j;
				int64_t ab = b * 8 + j;
				uint8_t sc, m;
				int s = 0;
				q4k_scale_min(j, x->scales, &sc, &m);
				for (int l = 0; l < 32; l++)
					s += (j & 1 ? qs[l] >> 4 : qs[l] & 15) *
					     qa[l];
				acc += a->d[ab] *
				       (d * sc * (float)s -
					dmin * m *
					    (float)(a->s16[2 * ab] +
						    a->s16[2 * ab + 1]));
			}
		}
		break;
	case ED_DT_Q6_K:
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)w + b;
			float d = ed_k_f16_to_f32(x->d);
			for (int g = 0; g < 16; g++) {
				int s = 0;
				for (int i = 16 * g; i < 16 * g + 16; i++)
					s += q6k_value(x, i) * q[b * 256 + i];
				s -= 32 * a->s16[b * 16 + g];
				acc += d * x->scales[g] * a->d[b * 8 + g / 2] *
				       (float)s;
			}
		}
		break;
	default: break;
	}
	return acc;
}

/* ---- AVX2 ------------------------------------------------------------ */

#if defined(__x86_64__)
/* 32 u8 x s8 products summed in pairs, then in fours: 8 int32. */
__attribute__((target("avx2"))) static inline __m256i dot32_avx2(__m256i u,
								 __m256i s)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s),
				 _mm256_set1_epi16(1));
}

__attribute__((target("avx2"))) static inline int hsum_avx2(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v),
				  _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
	return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) static inline float hsum_ps_avx2(__m256 t)
{
	__m128 v =
	    _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
	v = _mm_add_ps(v, _mm_movehl_ps(v, v));
	v = _mm_add_ss(v, _mm_movehdup_ps(v));
	return _mm_cvtss_f32(v);
}

__attribute__((target("avx2,fma,f16c"))) static float
qdot_avx2(enum ed_dtype dt, const void *w, const struct ed_qact *a, int64_t K)
{
	const int8_t *q = a->q;
	const __m256i m4 = _mm256_set1_epi8(15);
	float acc = 0;

	switch (dt) {
	case ED_DT_Q8_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)w + b;
			__m256i wv = _mm256_loadu_si256((const __m256i *)x->qs);
			__m256i av =
			    _mm256_loadu_si256((const __m256i *)(q + b * 32));
			/* |w| x (a with w's sign): unsigned x signed */
			__m256i p = dot32_avx2(_mm256_sign_epi8(wv, wv),
					       _mm256_sign_epi8(av, wv));
			acc += ed_k_f16_to_f32(x->d) * a->d[b] *
			       (float)hsum_avx2(p);
		}
		break;
	case ED_DT_Q4_0:
		for (int64_t b = 0; b < K / 32; b++) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)w + b;
			__m128i v = _mm_loadu_si128((const __m128i *)x->qs);
			__m256i wv = _mm256_and_si256(
			    _mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
			__m256i av =
			    _mm256_loadu_si256((const __m256i *)(q + b * 32));
			int s = hsum_avx2(dot32_avx2(wv, av)) -
				8 * (a->s16[2 * b] + a->s16[2 * b + 1]);
			acc += ed_k_f16_to_f32(x->d) * a->d[b] * (float)s;
		}
		break;
	case ED_DT_Q4_K: {
		/* a sub-block's 8 partial sums scaled in float lanes (no
		 * horizontal sum per sub-block); the minimums from the
		 * activations' sums of 16 */
		__m256 tot = _mm256_setzero_ps();
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)w + b;
			float d = ed_k_f16_to_f32(x->d),
			      dmin = ed_k_f16_to_f32(x->dmin), summ = 0;
			/* two chains, even and odd sub-blocks */
			__m256 blk = _mm256_setzero_ps(), blk1 = blk;
			for (int c = 0; c < 4; c++) {
				__m256i v = _mm256_loadu_si256(
				    (const __m256i *)(x->qs + 32 * c));
				__m256i lo = _mm256_and_si256(v, m4);
				__m256i hi = _mm256_and_si256(
				    _mm256_srli_epi16(v, 4), m4);
				const int8_t *qa = q + b * 256 + 64 * c;
				__m256i p0 = dot32_avx2(
				    lo,
				    _mm256_loadu_si256((const __m256i *)qa));
				__m256i p1 = dot32_avx2(
				    hi, _mm256_loadu_si256(
					    (const __m256i *)(qa + 32)));
				int64_t ab = b * 8 + 2 * c;
				uint8_t sc0, m0, sc1, m1;
				q4k_scale_min(2 * c, x->scales, &sc0, &m0);
				q4k_scale_min(2 * c + 1, x->scales, &sc1, &m1);
				blk = _mm256_fmadd_ps(
				    _mm256_cvtepi32_ps(p0),
				    _mm256_set1_ps(a->d[ab] * sc0), blk);
				blk1 = _mm256_fmadd_ps(
				    _mm256_cvtepi32_ps(p1),
				    _mm256_set1_ps(a->d[ab + 1] * sc1), blk1);
				summ += a->d[ab] * m0 *
					    (float)(a->s16[2 * ab] +
						    a->s16[2 * ab + 1]) +
					a->d[ab + 1] * m1 *
					    (float)(a->s16[2 * ab + 2] +
						    a->s16[2 * ab + 3]);
			}
			tot = _mm256_fmadd_ps(_mm256_add_ps(blk, blk1),
					      _mm256_set1_ps(d), tot);
			acc -= dmin * summ;
		}
		acc += hsum_ps_avx2(tot);
		break;
	}
	case ED_DT_Q6_K: {
		/* per half of 128: 4 parts of 32 6-bit values (q6k_part),
		 * u8 x s8 (63 x 127 x 2 fits int16); a part's 8 sums are its
		 * two groups of 16, scaled in float lanes; the offset 32 as
		 * 32 x (each group's activation sum) per block */
		__m256 tot = _mm256_setzero_ps();
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)w + b;
			__m256 blk = _mm256_setzero_ps(),
			       b2[2] = {_mm256_setzero_ps(),
					_mm256_setzero_ps()};
			{
				/* 32 x scale x d x (the group's sum), 16
				 * groups in two vectors: no serial chain */
				const __m256i dup =
				    _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
				for (int k = 0; k < 2; k++) {
					__m256 ad = _mm256_permutevar8x32_ps(
					    _mm256_castps128_ps256(_mm_loadu_ps(
						a->d + b * 8 + 4 * k)),
					    dup);
					__m256 sv = _mm256_cvtepi32_ps(
					    _mm256_cvtepi16_epi32(
						_mm_loadu_si128(
						    (const __m128i *)(a->s16 +
								      b * 16 +
								      8 * k))));
					__m256 sc = _mm256_cvtepi32_ps(
					    _mm256_cvtepi8_epi32(
						_mm_loadl_epi64((
						    const __m128i *)(x->scales +
								     8 * k))));
					blk = _mm256_fnmadd_ps(
					    _mm256_mul_ps(_mm256_mul_ps(sc, ad),
							  sv),
					    _mm256_set1_ps(32), blk);
				}
			}
			for (int h = 0; h < 2; h++) {
				__m256i l0 = _mm256_loadu_si256(
					    (const __m256i *)(x->ql + 64 * h)),
					l1 = _mm256_loadu_si256(
					    (const __m256i *)(x->ql + 64 * h +
							      32)),
					hb = _mm256_loadu_si256(
					    (const __m256i *)(x->qh + 32 * h));
				for (int part = 0; part < 4; part++) {
					int g = 8 * h + 2 * part;
					float ad = a->d[b * 8 + g / 2];
					__m256i p = dot32_avx2(
					    q6k_part(l0, l1, hb, part),
					    _mm256_loadu_si256(
						(const __m256i *)(q + b * 256 +
								  16 * g)));
					__m256 sc = _mm256_set_m128(
					    _mm_set1_ps(x->scales[g + 1] * ad),
					    _mm_set1_ps(x->scales[g] * ad));
					/* two chains: the adds overlap */
					b2[part & 1] = _mm256_fmadd_ps(
					    _mm256_cvtepi32_ps(p), sc,
					    b2[part & 1]);
				}
			}
			blk = _mm256_add_ps(blk, _mm256_add_ps(b2[0], b2[1]));
			tot = _mm256_fmadd_ps(
			    blk, _mm256_set1_ps(ed_k_f16_to_f32(x->d)), tot);
		}
		acc = hsum_ps_avx2(tot);
		break;
	}
	default: return qdot_portable(dt, w, a, K);
	}
	return acc;
}

/* ---- AVX-512 VNNI ----------------------------------------------------- */

#define VNNI_TARGET                                                            \
	"avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,f16c,fma"
/* Weights stream from memory once per token: the hardware prefetcher
 * alone leaves a core at half its bandwidth, so each kernel asks for
 * the bytes this far ahead (measured: Q4_K on 2 cores, 12 GB/s without,
 * 24 GB/s with 4 KiB). */
#define PF_AHEAD 4096
#define PREFETCH(p, n)                                                         \
	for (int pf_ = 0; pf_ < (n); pf_ += 64)                                \
	_mm_prefetch((const char *)(p) + PF_AHEAD + pf_, _MM_HINT_T0)

__attribute__((target(VNNI_TARGET))) static inline float h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* The 8 scales and 8 minimums of a Q4_K block, as bytes (ggml's masks). */
static inline void q4k_unpack(const uint8_t *scales, uint32_t u[4])
{
	const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
	uint32_t aux;

	memcpy(u, scales, 12);
	u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
	aux = u[1] & m1;
	u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
	u[2] = aux;
	u[0] &= m1;
}

/*
 * Q4_K rows times activation vectors on VNNI, R rows x G vectors per
 * pass, the activations quantized per 256 (one scale per block, in the
 * order 0 2 1 3 4 6 5 7 of ed_k_act_order). A 64-byte load of qs holds
 * sub-blocks 0|2 in its low nibbles and 1|3 in its high ones, so product
 * k (k = 0..3) has lanes 0-7 in one sub-block and 8-15 in another; each
 * is scaled by its sub-block's integer scale spread to the lanes, the
 * four summed, then times d of the row and of the vector; the minimums
 * come off as dmin m per sub-block times the vector's d sum(q). One
 * accumulator per (row, vector), updated by the same instructions
 * whatever R, G and the other rows and vectors are.
 */
static const int32_t q4k_lanes[4][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2},
    {1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6},
    {5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7}};

/* A Q4_K block's 8 scales then 8 minimums as 16 bytes (ggml's masks,
 * four lanes at once) */
static inline __attribute__((always_inline, target(VNNI_TARGET))) __m128i
q4k_scales16(const uint8_t *s12)
{
	/* 16 bytes from the 12 (the first 4 of qs come along, unused) */
	__m128i a = _mm_loadu_si128((const __m128i *)s12), A, B, lo, hi;

	A = _mm_shuffle_epi32(a, _MM_SHUFFLE(2, 1, 2, 0)); /* u0 u2 u1 u2 */
	B = _mm_shuffle_epi32(a, _MM_SHUFFLE(1, 1, 0, 0)); /* u0 u0 u1 u1 */
	lo = _mm_and_si128(
	    _mm_srlv_epi32(A, _mm_setr_epi32(0, 0, 0, 4)),
	    _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
	/* ((u >> 6) & 3) << 4 of each byte = (u >> 2) & 0x30 */
	hi = _mm_and_si128(_mm_srli_epi32(B, 2),
			   _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
	return _mm_or_si128(lo, hi);
}

static inline __attribute__((always_inline, target(VNNI_TARGET))) void
q4k_tile(const uint8_t *w, size_t rb, const struct ed_qact *const *a, int64_t K,
	 float *const *y, int64_t row, const int R, const int G)
{
	const __m512i m4 = _mm512_set1_epi8(15);
	const __m512i l0 = _mm512_loadu_si512(q4k_lanes[0]),
		      l1 = _mm512_loadu_si512(q4k_lanes[1]),
		      l2 = _mm512_loadu_si512(q4k_lanes[2]),
		      l3 = _mm512_loadu_si512(q4k_lanes[3]);
	/* [d, dmin, d, dmin, ...] to [d x 8, dmin x 8] */
	const __m512i dsel =
	    _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
	const int8_t *qa[8];
	const float *da[8], *ds[8];
	__m512 acc[4][8];

#pragma GCC unroll 8
	for (int g = 0; g < G; g++) {
		qa[g] = a[g]->q;
		da[g] = a[g]->d;
		ds[g] = a[g]->ds;
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 8
		for (int g = 0; g < G; g++)
			acc[r][g] = _mm512_setzero_ps();
	for (int64_t b = 0; b < K / 256; b++) {
#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const struct blk_q4_k *x =
			    (const struct blk_q4_k *)(w + rb * (size_t)r) + b;
			/* lanes 0-7 the scales times d, 8-15 the minimums
			 * times dmin: one product with [d x 8, dmin x 8] */
			__m512 sm, sc[4], mn;
			__m512i v0, v1, q[4];
			uint32_t dd;
			memcpy(&dd, &x->d, 4); /* d, then dmin */
			_mm_prefetch((const char *)x + PF_AHEAD, _MM_HINT_T0);
			_mm_prefetch((const char *)x + PF_AHEAD + 143,
				     _MM_HINT_T0);
			sm = _mm512_mul_ps(
			    _mm512_cvtepi32_ps(
				_mm512_cvtepu8_epi32(q4k_scales16(x->scales))),
			    _mm512_permutexvar_ps(
				dsel,
				_mm512_cvtph_ps(_mm256_set1_epi32((int)dd))));
			mn = sm;
			sc[0] = _mm512_permutexvar_ps(l0, sm);
			sc[1] = _mm512_permutexvar_ps(l1, sm);
			sc[2] = _mm512_permutexvar_ps(l2, sm);
			sc[3] = _mm512_permutexvar_ps(l3, sm);
			v0 = _mm512_loadu_si512(x->qs);
			v1 = _mm512_loadu_si512(x->qs + 64);
			q[0] = _mm512_and_si512(v0, m4);
			q[1] = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
			q[2] = _mm512_and_si512(v1, m4);
			q[3] = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
#pragma GCC unroll 8
			for (int g = 0; g < G; g++) {
				const int8_t *qb = qa[g] + b * 256;
				__m512 t = _mm512_mul_ps(
				    _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(
					_mm512_setzero_si512(), q[0],
					_mm512_loadu_si512(qb))),
				    sc[0]);
#pragma GCC unroll 3
				for (int k = 1; k < 4; k++)
					t = _mm512_fmadd_ps(
					    _mm512_cvtepi32_ps(
						_mm512_dpbusd_epi32(
						    _mm512_setzero_si512(),
						    q[k],
						    _mm512_loadu_si512(
							qb + 64 * k))),
					    sc[k], t);
				t = _mm512_fmadd_ps(t, _mm512_set1_ps(da[g][b]),
						    acc[r][g]);
				/* the minimums in lanes 8-15, against the
				 * vector's d sum(q) there */
				acc[r][g] = _mm512_fnmadd_ps(
				    mn, _mm512_loadu_ps(ds[g] + b * 16), t);
			}
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 8
		for (int g = 0; g < G; g++)
			y[g][row + r] = _mm512_reduce_add_ps(acc[r][g]);
}

/* rows r .. n with the vectors av, R rows at a time while they last */
#define Q4K_ROWS(R, G)                                                         \
	for (; r + (R) <= n; r += (R))                                         \
	q4k_tile(wb + rb * (size_t)r, rb, av, K, yv, r, R, G)

__attribute__((target(VNNI_TARGET))) static void
q4k_multi_vnni(const void *w, size_t rb, int64_t n,
	       const struct ed_qact *const *a, int nv, int64_t K,
	       float *const *y)
{
	const uint8_t *wb = w;

	for (int v = 0; v < nv;) {
		const struct ed_qact *const *av = a + v;
		float *const *yv = y + v;
		int left = nv - v;
		int64_t r = 0;
		if (left >= 8) {
			Q4K_ROWS(1, 8);
			v += 8;
		} else if (left >= 4) {
			Q4K_ROWS(2, 4);
			Q4K_ROWS(1, 4);
			v += 4;
		} else if (left >= 2) {
			Q4K_ROWS(2, 2);
			Q4K_ROWS(1, 2);
			v += 2;
		} else {
			Q4K_ROWS(4, 1);
			Q4K_ROWS(1, 1);
			v += 1;
		}
	}
}
#undef Q4K_ROWS

__attribute__((target(VNNI_TARGET))) static float
qdot_vnni(enum ed_dtype dt, const void *w, const struct ed_qact *a, int64_t K)
{
	const int8_t *q = a->q;
	const __m256i m4 = _mm256_set1_epi8(15);
	__m512 acc = _mm512_setzero_ps();
	float tail = 0;

	switch (dt) {
	case ED_DT_Q8_0: {
		const __m512i off = _mm512_set1_epi8((char)0x80);
		int64_t b = 0;
		for (; b + 2 <= K / 32; b += 2) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)w + b;
			__m512i wv;
			PREFETCH(x, 68);
			wv = _mm512_inserti64x4(
			    _mm512_castsi256_si512(
				_mm256_loadu_si256((const __m256i *)x[0].qs)),
			    _mm256_loadu_si256((const __m256i *)x[1].qs), 1);
			/* (w + 128) is unsigned; 128 x sum(a) is taken off */
			__m512i p = _mm512_dpbusd_epi32(
			    _mm512_setzero_si512(), _mm512_xor_si512(wv, off),
			    _mm512_loadu_si512(q + b * 32));
			float d0 = h2f(x[0].d), d1 = h2f(x[1].d);
			__m512 sv = _mm512_mask_blend_ps(
			    0xFF00, _mm512_set1_ps(d0 * a->d[b]),
			    _mm512_set1_ps(d1 * a->d[b + 1]));
			acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sv, acc);
			tail -= 128 * (d0 * a->ds[b] + d1 * a->ds[b + 1]);
		}
		for (; b < K / 32; b++) {
			const struct blk_q8_0 *x =
			    (const struct blk_q8_0 *)w + b;
			int s = 0;
			for (int j = 0; j < 32; j++)
				s += x->qs[j] * q[b * 32 + j];
			tail += h2f(x->d) * a->d[b] * (float)s;
		}
		break;
	}
	case ED_DT_Q4_0: {
		int64_t b = 0;
		for (; b + 2 <= K / 32; b += 2) {
			const struct blk_q4_0 *x =
			    (const struct blk_q4_0 *)w + b;
			__m128i v0 = _mm_loadu_si128((const __m128i *)x[0].qs);
			PREFETCH(x, 36);
			__m128i v1 = _mm_loadu_si128((const __m128i *)x[1].qs);
			__m256i w0 = _mm256_and_si256(
			    _mm256_set_m128i(_mm_srli_epi16(v0, 4), v0), m4);
			__m256i w1 = _mm256_and_si256(
			    _mm256_set_m128i(_mm_srli_epi16(v1, 4), v1), m4);
			__m512i wv = _mm512_inserti64x4(
			    _mm512_castsi256_si512(w0), w1, 1);
			__m512i p =
			    _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv,
						_mm512_loadu_si512(q + b * 32));
			float d0 = h2f(x[0].d), d1 = h2f(x[1].d);
			__m512 sv = _mm512_mask_blend_ps(
			    0xFF00, _mm512_set1_ps(d0 * a->d[b]),
			    _mm512_set1_ps(d1 * a->d[b + 1]));
			acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sv, acc);
			tail -= 8 * (d0 * a->ds[b] + d1 * a->ds[b + 1]);
		}
		if (b < K / 32) {
			struct ed_qact t = {a->q + b * 32, a->d + b,
					    a->s16 + 2 * b, a->ds + b, 32};
			tail += qdot_portable(
			    dt, (const struct blk_q4_0 *)w + b, &t, K - b * 32);
		}
		break;
	}
	case ED_DT_Q4_K: {
		/* one kernel for one vector and for several */
		float out = 0;
		float *const yo[1] = {&out};
		q4k_multi_vnni(w, 0, 1, &a, 1, K, yo);
		return out;
	}
	case ED_DT_Q6_K: {
		static const int32_t grp[16] = {0, 0, 0, 0, 1, 1, 1, 1,
						2, 2, 2, 2, 3, 3, 3, 3};
		const __m512i gidx = _mm512_loadu_si512(grp);
		for (int64_t b = 0; b < K / 256; b++) {
			const struct blk_q6_k *x =
			    (const struct blk_q6_k *)w + b;
			float d = h2f(x->d), gs[16];
			PREFETCH(x, 210);
			__m512 gsv, s16v;
			/* d sc_g da for each group of 16; 32 x their sums off
			 */
			{
				__m128i sc8 =
				    _mm_loadu_si128((const __m128i *)x->scales);
				__m512 scf = _mm512_cvtepi32_ps(
				    _mm512_cvtepi8_epi32(sc8));
				__m512 dav = _mm512_permutexvar_ps(
				    _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3,
						     3, 2, 2, 1, 1, 0, 0),
				    _mm512_castps256_ps512(
					_mm256_loadu_ps(a->d + b * 8)));
				gsv = _mm512_mul_ps(_mm512_mul_ps(scf, dav),
						    _mm512_set1_ps(d));
				s16v = _mm512_cvtepi32_ps(
				    _mm512_cvtepi16_epi32(_mm256_loadu_si256(
					(const __m256i *)(a->s16 + b * 16))));
				tail -= 32 * _mm512_reduce_add_ps(
						 _mm512_mul_ps(gsv, s16v));
				_mm512_storeu_ps(gs, gsv);
			}
			for (int h = 0; h < 2; h++) {
				const uint8_t *ql = x->ql + 64 * h,
					      *qh = x->qh + 32 * h;
				__m256i l0 =
				    _mm256_loadu_si256((const __m256i *)ql);
				__m256i l1 = _mm256_loadu_si256(
				    (const __m256i *)(ql + 32));
				__m256i hh =
				    _mm256_loadu_si256((const __m256i *)qh);
				/* elements 0-31, 32-63, 64-95, 96-127 of the
				 * half */
				__m256i e0 = q6k_part(l0, l1, hh, 0),
					e1 = q6k_part(l0, l1, hh, 1),
					e2 = q6k_part(l0, l1, hh, 2),
					e3 = q6k_part(l0, l1, hh, 3);
				const int8_t *qa = q + b * 256 + 128 * h;
				__m512i p0 = _mm512_dpbusd_epi32(
				    _mm512_setzero_si512(),
				    _mm512_inserti64x4(
					_mm512_castsi256_si512(e0), e1, 1),
				    _mm512_loadu_si512(qa));
				__m512i p1 = _mm512_dpbusd_epi32(
				    _mm512_setzero_si512(),
				    _mm512_inserti64x4(
					_mm512_castsi256_si512(e2), e3, 1),
				    _mm512_loadu_si512(qa + 64));
				/* each group of 16 is 4 lanes */
				__m512 s0 = _mm512_permutexvar_ps(
				    gidx, _mm512_castps128_ps512(
					      _mm_loadu_ps(gs + 8 * h)));
				__m512 s1 = _mm512_permutexvar_ps(
				    gidx, _mm512_castps128_ps512(
					      _mm_loadu_ps(gs + 8 * h + 4)));
				acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0),
						      s0, acc);
				acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1),
						      s1, acc);
			}
		}
		break;
	}
	default: return qdot_portable(dt, w, a, K);
	}
	return _mm512_reduce_add_ps(acc) + tail;
}

static bool has_vnni(void)
{
	static _Atomic int v = -1;
	int x = atomic_load_explicit(&v, memory_order_relaxed);

	if (x < 0) {
		__builtin_cpu_init();
		x = __builtin_cpu_supports("avx512vnni") &&
		    __builtin_cpu_supports("avx512bw") &&
		    __builtin_cpu_supports("avx512vl");
		atomic_store_explicit(&v, x, memory_order_relaxed);
	}
	return x;
}
#endif

bool ed_k_has_vnni(void)
{
#if defined(__x86_64__)
	return ed_k_isa() == ED_ISA_AVX512 && has_vnni();
#else
	return false;
#endif
}

int ed_k_act_group(enum ed_isa level, enum ed_dtype dt)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512 && has_vnni() && dt == ED_DT_Q4_K)
		return 256;
#endif
	(void)level;
	(void)dt;
	return 32;
}

bool ed_k_act_order(enum ed_isa level, enum ed_dtype dt, struct ed_qact *a,
		    int64_t K)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512 && has_vnni() && dt == ED_DT_Q4_K) {
		/* sub-blocks 0 2 1 3 4 6 5 7 of every 256: the int8 values
		 * only (scales and sums stay in their natural order) */
		static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
		int8_t t[256];
		for (int64_t b = 0; b < K / 256; b++) {
			for (int j = 0; j < 8; j++)
				memcpy(t + 32 * j,
				       a->q + b * 256 + 32 * order[j], 32);
			memcpy(a->q + b * 256, t, 256);
		}
		return true;
	}
#endif
	(void)level;
	(void)dt;
	(void)a;
	(void)K;
	return false;
}

void ed_k_qdot_rows(enum ed_isa level, enum ed_dtype dt, const void *w,
		    size_t rb, int64_t n, const struct ed_qact *a, int64_t K,
		    float *y)
{
	ed_k_qdot_multi(level, dt, w, rb, n, &a, 1, K, &y);
}

void ed_k_qdot_multi(enum ed_isa level, enum ed_dtype dt, const void *w,
		     size_t rb, int64_t n, const struct ed_qact *const *a,
		     int nv, int64_t K, float *const *y)
{
	if (ed_kx_is(dt)) { /* each block decoded once for all vectors */
		ed_kx_qdot_multi(level, dt, w, rb, n, a, nv, K, y);
		return;
	}
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512 && has_vnni() && dt == ED_DT_Q4_K) {
		/* group-256 activations (ed_k_act_group) */
		q4k_multi_vnni(w, rb, n, a, nv, K, y);
		return;
	}
#endif
	/* a row at a time, each vector on its own */
	for (int64_t r = 0; r < n; r++)
		for (int v = 0; v < nv; v++)
			y[v][r] = ed_k_qdot(level, dt,
					    (const char *)w + rb * (size_t)r,
					    a[v], K);
}

float ed_k_qdot(enum ed_isa level, enum ed_dtype dt, const void *w,
		const struct ed_qact *a, int64_t K)
{
	if (ed_kx_is(dt)) {
		float y, *py = &y;
		ed_kx_qdot_multi(level, dt, w, 0, 1, &a, 1, K, &py);
		return y;
	}
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512 && has_vnni())
		return qdot_vnni(dt, w, a, K);
	if (level >= ED_ISA_AVX2)
		return qdot_avx2(dt, w, a, K);
#endif
	(void)level;
	return qdot_portable(dt, w, a, K);
}
