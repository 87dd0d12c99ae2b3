/*
 * qblocks.c - the further ggml block formats that llama.cpp's files
 * hold (spec/QUANT.md "More block formats"): Q4_1, Q5_0, Q5_1, IQ4_NL
 * (32 weights a block), Q2_K, Q3_K, Q5_K and IQ4_XS (256). Layouts bit
 * for bit as ggml's.
 *
 * Every format is read through one decoder per format: a block to
 * signed int8 values q with, per group of G weights (16 for Q2_K and
 * Q3_K, else 32), a scale and an offset, w = scale * q - offset, the
 * float operations of the format's definition in its order (so that
 * dequantizing gives ggml's values exactly). The products then share one
 * integer kernel per instruction set: |q| times the activations carrying
 * q's sign (AVX2 maddubs, AVX-512 VNNI vpdpbusd; |q| <= 127 keeps the
 * pair sums inside int16), the scales applied per group. A block is
 * decoded once for all the vectors of a batch. The unpacked form of the
 * many-row products (ed_k_unpack_q) is the same decoding with q shifted
 * to u >= 0.
 *
 * The quantizers are plain ones (each group's range or largest
 * magnitude, scales rounded to their stored precision, the weights
 * re-quantized against those): they write test files and `model
 * quantize` types, where ggml's searched ones would lower the error
 * somewhat.
 */
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

struct blk_q4_1 {
	uint16_t d, m;
	uint8_t qs[16];
};
struct blk_q5_0 {
	uint16_t d;
	uint8_t qh[4];
	uint8_t qs[16];
};
struct blk_q5_1 {
	uint16_t d, m;
	uint8_t qh[4];
	uint8_t qs[16];
};
struct blk_iq4_nl {
	uint16_t d;
	uint8_t qs[16];
};
struct blk_q2_k {
	uint8_t scales[16];
	uint8_t qs[64];
	uint16_t d, dmin;
};
struct blk_q3_k {
	uint8_t hmask[32];
	uint8_t qs[64];
	uint8_t scales[12];
	uint16_t d;
};
struct blk_q5_k {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qh[32];
	uint8_t qs[128];
};
struct blk_iq4_xs {
	uint16_t d, scales_h;
	uint8_t scales_l[4];
	uint8_t qs[128];
};

_Static_assert(sizeof(struct blk_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(struct blk_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(struct blk_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(struct blk_iq4_nl) == 18, "IQ4_NL block");
_Static_assert(sizeof(struct blk_q2_k) == 84, "Q2_K block");
_Static_assert(sizeof(struct blk_q3_k) == 110, "Q3_K block");
_Static_assert(sizeof(struct blk_q5_k) == 176, "Q5_K block");
_Static_assert(sizeof(struct blk_iq4_xs) == 136, "IQ4_XS block");

/* IQ4_NL's and IQ4_XS's non-linear table */
static const int8_t kvalues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
				   1,	 13,   25,  38,	 53,  69,  89,	113};

bool ed_kx_is(enum ed_dtype dt)
{
	switch (dt) {
	case ED_DT_Q4_1:
	case ED_DT_Q5_0:
	case ED_DT_Q5_1:
	case ED_DT_IQ4_NL:
	case ED_DT_Q2_K:
	case ED_DT_Q3_K:
	case ED_DT_Q5_K:
	case ED_DT_IQ4_XS: return true;
	default: return false;
	}
}

int ed_kx_group(enum ed_dtype dt)
{
	return dt == ED_DT_Q2_K || dt == ED_DT_Q3_K ? 16 : 32;
}

/* The shift that makes q non-negative (u = q + it, at most 255). */
static int offset_of(enum ed_dtype dt)
{
	switch (dt) {
	case ED_DT_Q5_0: return 16;
	case ED_DT_Q3_K: return 4;
	case ED_DT_IQ4_NL:
	case ED_DT_IQ4_XS: return 128;
	default: return 0;
	}
}

/* Q4_K's (and Q5_K's) 6-bit scale and minimum of sub-block j. */
static void k_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* Q3_K's 16 signed 6-bit scales. */
static int q3k_scale(const uint8_t *s, int i)
{
	int lo = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
	int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
	return (lo | (hi << 4)) - 32;
}

/* Two bits of weight n of a 256-weight block (Q2_K's and Q3_K's qs). */
static inline int two_bits(const uint8_t *qs, int n)
{
	return (qs[32 * (n / 128) + n % 32] >> (2 * ((n / 32) % 4))) & 3;
}

/*
 * One block: q[B] and per group scale[g], off[g] with w = scale * q -
 * off. Returns the weights decoded (the block size).
 */
static int decode(enum ed_dtype dt, const void *src, int8_t *q, float *scale,
		  float *off)
{
	switch (dt) {
	case ED_DT_Q4_1: {
		const struct blk_q4_1 *x = src;
		for (int j = 0; j < 16; j++) {
			q[j] = (int8_t)(x->qs[j] & 15);
			q[j + 16] = (int8_t)(x->qs[j] >> 4);
		}
		scale[0] = ed_k_f16_to_f32(x->d);
		off[0] = -ed_k_f16_to_f32(x->m);
		return 32;
	}
	case ED_DT_Q5_0:
	case ED_DT_Q5_1: {
		const uint8_t *qs, *qh;
		uint32_t h;
		int sub;
		if (dt == ED_DT_Q5_0) {
			const struct blk_q5_0 *x = src;
			qs = x->qs;
			qh = x->qh;
			scale[0] = ed_k_f16_to_f32(x->d);
			off[0] = 0;
			sub = 16;
		} else {
			const struct blk_q5_1 *x = src;
			qs = x->qs;
			qh = x->qh;
			scale[0] = ed_k_f16_to_f32(x->d);
			off[0] = -ed_k_f16_to_f32(x->m);
			sub = 0;
		}
		h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 |
		    (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
		for (int j = 0; j < 16; j++) {
			q[j] = (int8_t)(((qs[j] & 15) | (((h >> j) & 1) << 4)) -
					sub);
			q[j + 16] = (int8_t)(((qs[j] >> 4) |
					      (((h >> (j + 16)) & 1) << 4)) -
					     sub);
		}
		return 32;
	}
	case ED_DT_IQ4_NL: {
		const struct blk_iq4_nl *x = src;
		for (int j = 0; j < 16; j++) {
			q[j] = kvalues[x->qs[j] & 15];
			q[j + 16] = kvalues[x->qs[j] >> 4];
		}
		scale[0] = ed_k_f16_to_f32(x->d);
		off[0] = 0;
		return 32;
	}
	case ED_DT_Q2_K: {
		const struct blk_q2_k *x = src;
		float d = ed_k_f16_to_f32(x->d),
		      dmin = ed_k_f16_to_f32(x->dmin);
		for (int n = 0; n < 256; n++)
			q[n] = (int8_t)two_bits(x->qs, n);
		for (int s = 0; s < 16; s++) {
			scale[s] = d * (float)(x->scales[s] & 15);
			off[s] = dmin * (float)(x->scales[s] >> 4);
		}
		return 256;
	}
	case ED_DT_Q3_K: {
		const struct blk_q3_k *x = src;
		float d = ed_k_f16_to_f32(x->d);
		for (int n = 0; n < 256; n++)
			q[n] =
			    (int8_t)(two_bits(x->qs, n) -
				     ((x->hmask[n % 32] >> (n / 32)) & 1 ? 0
									 : 4));
		for (int s = 0; s < 16; s++) {
			scale[s] = d * (float)q3k_scale(x->scales, s);
			off[s] = 0;
		}
		return 256;
	}
	case ED_DT_Q5_K: {
		const struct blk_q5_k *x = src;
		float d = ed_k_f16_to_f32(x->d),
		      dmin = ed_k_f16_to_f32(x->dmin);
		for (int n = 0; n < 256; n++) {
			int j = n / 32, b = x->qs[32 * (n / 64) + n % 32];
			int lo = j & 1 ? b >> 4 : b & 15;
			q[n] = (int8_t)(lo | (((x->qh[n % 32] >> j) & 1) << 4));
		}
		for (int j = 0; j < 8; j++) {
			int sc, m;
			k_scale_min(j, x->scales, &sc, &m);
			scale[j] = d * (float)sc;
			off[j] = dmin * (float)m;
		}
		return 256;
	}
	case ED_DT_IQ4_XS: {
		const struct blk_iq4_xs *x = src;
		float d = ed_k_f16_to_f32(x->d);
		for (int b = 0; b < 8; b++) {
			int ls = ((x->scales_l[b / 2] >> (4 * (b % 2))) & 15) |
				 (((x->scales_h >> (2 * b)) & 3) << 4);
			scale[b] = d * (float)(ls - 32);
			off[b] = 0;
			for (int i = 0; i < 16; i++) {
				q[32 * b + i] = kvalues[x->qs[16 * b + i] & 15];
				q[32 * b + 16 + i] =
				    kvalues[x->qs[16 * b + i] >> 4];
			}
		}
		return 256;
	}
	default: return 0;
	}
}

void ed_kx_dequantize(enum ed_dtype dt, const void *src, float *y, int64_t n)
{
	int B = ed_k_block(dt), G = ed_kx_group(dt);
	size_t bb = ed_k_row_bytes(dt, B);
	int8_t q[256];
	float sc[16], off[16];

	for (int64_t b = 0; b < n / B; b++) {
		decode(dt, (const char *)src + (size_t)b * bb, q, sc, off);
		for (int j = 0; j < B; j++)
			y[b * B + j] = sc[j / G] * (float)q[j] - off[j / G];
	}
}

void ed_kx_unpack(enum ed_dtype dt, const void *src, int64_t K, uint16_t *u,
		  float *scale, float *minv)
{
	int B = ed_k_block(dt), G = ed_kx_group(dt), o = offset_of(dt);
	size_t bb = ed_k_row_bytes(dt, B);
	int8_t q[256];

	for (int64_t b = 0; b < K / B; b++) {
		float *sc = scale + b * (B / G), *off = minv + b * (B / G);
		decode(dt, (const char *)src + (size_t)b * bb, q, sc, off);
		for (int j = 0; j < B; j++)
			u[b * B + j] = (uint16_t)(q[j] + o);
		/* w = sc (u - o) - off = sc u - (off + o sc) */
		for (int g = 0; g < B / G; g++)
			off[g] += (float)o * sc[g];
	}
}

/* ---- products ---------------------------------------------------------- */

/* Integer sums of q . a per group of 16 over n values (n a multiple of
 * 32), by level. */
static void sums16_portable(const int8_t *q, const int8_t *a, int n, int32_t *s)
{
	for (int g = 0; g < n / 16; g++) {
		int32_t t = 0;
		for (int j = 0; j < 16; j++)
			t += q[16 * g + j] * a[16 * g + j];
		s[g] = t;
	}
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static inline void halves(__m256i v, int32_t *s)
{
	/* lanes 0-3: the first 16 values, 4-7: the second */
	__m128i lo = _mm256_castsi256_si128(v),
		hi = _mm256_extracti128_si256(v, 1);
	__m128i t = _mm_hadd_epi32(lo, hi);
	t = _mm_hadd_epi32(t, t);
	s[0] = _mm_cvtsi128_si32(t);
	s[1] = _mm_extract_epi32(t, 1);
}

__attribute__((target("avx2"))) static void
sums16_avx2(const int8_t *q, const int8_t *a, int n, int32_t *s)
{
	const __m256i ones = _mm256_set1_epi16(1);

	for (int c = 0; c < n / 32; c++) {
		__m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
		__m256i av = _mm256_loadu_si256((const __m256i *)(a + 32 * c));
		__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(qv, qv),
						 _mm256_sign_epi8(av, qv));
		halves(_mm256_madd_epi16(p, ones), s + 2 * c);
	}
}

__attribute__((target("avx2,avx512f,avx512vl,avx512vnni"))) static void
sums16_vnni(const int8_t *q, const int8_t *a, int n, int32_t *s)
{
	for (int c = 0; c < n / 32; c++) {
		__m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
		__m256i av = _mm256_loadu_si256((const __m256i *)(a + 32 * c));
		__m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
						_mm256_sign_epi8(qv, qv),
						_mm256_sign_epi8(av, qv));
		halves(p, s + 2 * c);
	}
}
#endif

static void sums16(enum ed_isa level, const int8_t *q, const int8_t *a, int n,
		   int32_t *s)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512 && ed_k_has_vnni()) {
		sums16_vnni(q, a, n, s);
		return;
	}
	if (level >= ED_ISA_AVX2) {
		sums16_avx2(q, a, n, s);
		return;
	}
#endif
	(void)level;
	sums16_portable(q, a, n, s);
}

void ed_kx_qdot_multi(enum ed_isa level, enum ed_dtype dt, const void *w,
		      size_t rb, int64_t n, const struct ed_qact *const *a,
		      int nv, int64_t K, float *const *y)
{
	int B = ed_k_block(dt), G = ed_kx_group(dt);
	size_t bb = ed_k_row_bytes(dt, B);
	int8_t q[256];
	float sc[16], off[16];
	int32_t s[16];

	for (int64_t r = 0; r < n; r++) {
		const char *row = (const char *)w + rb * (size_t)r;
		for (int v = 0; v < nv; v++)
			y[v][r] = 0;
		for (int64_t b = 0; b < K / B; b++) {
			decode(dt, row + (size_t)b * bb, q, sc, off);
			for (int v = 0; v < nv; v++) {
				const struct ed_qact *x = a[v];
				int64_t k0 = b * B;
				float acc = 0;
				sums16(level, q, x->q + k0, B, s);
				for (int g = 0; g < B / G; g++) {
					int64_t h = (k0 + (int64_t)g * G) / 16;
					int32_t dot =
					    G == 16 ? s[g]
						    : s[2 * g] + s[2 * g + 1];
					int32_t sum =
					    G == 16 ? x->s16[h]
						    : x->s16[h] + x->s16[h + 1];
					acc +=
					    x->d[(k0 + (int64_t)g * G) / 32] *
					    (sc[g] * (float)dot -
					     off[g] * (float)sum);
				}
				y[v][r] += acc;
			}
		}
	}
}

/* ---- quantizing ---------------------------------------------------------- */

static inline int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The value of largest magnitude, with its sign. */
static float signed_max(const float *x, int n)
{
	float amax = 0, max = 0;

	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	return max;
}

/* The table entry nearest v. */
static int nearest_k(float v)
{
	int best = 0;

	for (int i = 1; i < 16; i++)
		if (fabsf(v - kvalues[i]) < fabsf(v - kvalues[best]))
			best = i;
	return best;
}

static void put5(uint8_t *qs, uint8_t *qh, const int *L)
{
	uint32_t h = 0;

	for (int j = 0; j < 16; j++) {
		qs[j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
		h |= (uint32_t)((L[j] >> 4) & 1) << j;
		h |= (uint32_t)((L[j + 16] >> 4) & 1) << (j + 16);
	}
	memcpy(qh, &h, 4);
}

/* Range quantization of 32 values to 0..nmax: d, m stored as fp16. */
static void range32(const float *x, int nmax, uint16_t *hd, uint16_t *hm,
		    int *L)
{
	float lo = x[0], hi = x[0], d, m;

	for (int j = 1; j < 32; j++) {
		lo = fminf(lo, x[j]);
		hi = fmaxf(hi, x[j]);
	}
	*hd = ed_k_f32_to_f16((hi - lo) / (float)nmax);
	*hm = ed_k_f32_to_f16(lo);
	d = ed_k_f16_to_f32(*hd);
	m = ed_k_f16_to_f32(*hm);
	for (int j = 0; j < 32; j++)
		L[j] = d > 0 ? clampi((int)lrintf((x[j] - m) / d), 0, nmax) : 0;
}

/* 6-bit (or 4-bit) sub-block scales and minimums of a K block: the
 * block's d and dmin, and the levels. */
static void k_scales(const float *scales, const float *mins, int n, int levels,
		     uint16_t *hd, uint16_t *hm, int *ls, int *lm)
{
	float ms = 0, mm = 0;

	for (int j = 0; j < n; j++) {
		ms = fmaxf(ms, scales[j]);
		mm = fmaxf(mm, mins[j]);
	}
	*hd = ed_k_f32_to_f16(ms / (float)levels);
	*hm = ed_k_f32_to_f16(mm / (float)levels);
	for (int j = 0; j < n; j++) {
		float d = ed_k_f16_to_f32(*hd), dm = ed_k_f16_to_f32(*hm);
		ls[j] =
		    d > 0 ? clampi((int)lrintf(scales[j] / d), 0, levels) : 0;
		lm[j] =
		    dm > 0 ? clampi((int)lrintf(mins[j] / dm), 0, levels) : 0;
	}
}

static void quant_block(enum ed_dtype dt, const float *x, void *out)
{
	int L[256];

	switch (dt) {
	case ED_DT_Q4_1: {
		struct blk_q4_1 *y = out;
		range32(x, 15, &y->d, &y->m, L);
		for (int j = 0; j < 16; j++)
			y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
		return;
	}
	case ED_DT_Q5_1: {
		struct blk_q5_1 *y = out;
		range32(x, 31, &y->d, &y->m, L);
		put5(y->qs, y->qh, L);
		return;
	}
	case ED_DT_Q5_0: {
		struct blk_q5_0 *y = out;
		float d = signed_max(x, 32) / -16, id;
		y->d = ed_k_f32_to_f16(d);
		d = ed_k_f16_to_f32(y->d);
		id = d != 0 ? 1 / d : 0;
		for (int j = 0; j < 32; j++)
			L[j] = clampi((int)lrintf(x[j] * id) + 16, 0, 31);
		put5(y->qs, y->qh, L);
		return;
	}
	case ED_DT_IQ4_NL: {
		struct blk_iq4_nl *y = out;
		float d = signed_max(x, 32) / kvalues[0], id;
		y->d = ed_k_f32_to_f16(d);
		d = ed_k_f16_to_f32(y->d);
		id = d != 0 ? 1 / d : 0;
		for (int j = 0; j < 32; j++)
			L[j] = nearest_k(x[j] * id);
		for (int j = 0; j < 16; j++)
			y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
		return;
	}
	case ED_DT_Q2_K:
	case ED_DT_Q5_K: {
		/* per group: min (<= 0) and range to 0..nmax */
		int G = dt == ED_DT_Q2_K ? 16 : 32, ng = 256 / G;
		int nmax = dt == ED_DT_Q2_K ? 3 : 31;
		int lev = dt == ED_DT_Q2_K ? 15 : 63;
		float scales[16], mins[16];
		int ls[16], lm[16];
		uint16_t hd, hm;
		for (int g = 0; g < ng; g++) {
			float lo = 0, hi = 0;
			for (int j = 0; j < G; j++) {
				lo = fminf(lo, x[g * G + j]);
				hi = fmaxf(hi, x[g * G + j]);
			}
			scales[g] = (hi - lo) / (float)nmax;
			mins[g] = -lo;
		}
		k_scales(scales, mins, ng, lev, &hd, &hm, ls, lm);
		for (int g = 0; g < ng; g++) {
			float d = ed_k_f16_to_f32(hd) * (float)ls[g],
			      m = ed_k_f16_to_f32(hm) * (float)lm[g];
			for (int j = 0; j < G; j++)
				L[g * G + j] =
				    d > 0 ? clampi((int)lrintf(
						       (x[g * G + j] + m) / d),
						   0, nmax)
					  : 0;
		}
		if (dt == ED_DT_Q2_K) {
			struct blk_q2_k *y = out;
			y->d = hd;
			y->dmin = hm;
			for (int s = 0; s < 16; s++)
				y->scales[s] = (uint8_t)(ls[s] | (lm[s] << 4));
			memset(y->qs, 0, sizeof y->qs);
			for (int n = 0; n < 256; n++)
				y->qs[32 * (n / 128) + n % 32] |=
				    (uint8_t)(L[n] << (2 * ((n / 32) % 4)));
		} else {
			struct blk_q5_k *y = out;
			y->d = hd;
			y->dmin = hm;
			memset(y->scales, 0, sizeof y->scales);
			for (int j = 0; j < 8; j++) {
				if (j < 4) {
					y->scales[j] = (uint8_t)ls[j];
					y->scales[j + 4] = (uint8_t)lm[j];
				} else {
					y->scales[j + 4] =
					    (uint8_t)((ls[j] & 15) |
						      ((lm[j] & 15) << 4));
					y->scales[j - 4] |=
					    (uint8_t)((ls[j] >> 4) << 6);
					y->scales[j] |=
					    (uint8_t)((lm[j] >> 4) << 6);
				}
			}
			memset(y->qs, 0, sizeof y->qs);
			memset(y->qh, 0, sizeof y->qh);
			for (int n = 0; n < 256; n++) {
				int j = n / 32;
				y->qs[32 * (n / 64) + n % 32] |=
				    (uint8_t)((L[n] & 15) << (j & 1 ? 4 : 0));
				y->qh[n % 32] |= (uint8_t)((L[n] >> 4) << j);
			}
		}
		return;
	}
	case ED_DT_Q3_K:
	case ED_DT_IQ4_XS: {
		/* per group a signed scale, the block's d over them */
		int G = dt == ED_DT_Q3_K ? 16 : 32, ng = 256 / G;
		float s[16], amax = 0, d;
		int ls[16];
		uint16_t hd;
		for (int g = 0; g < ng; g++) {
			s[g] = signed_max(x + g * G, G) /
			       (dt == ED_DT_Q3_K ? -4.f : (float)kvalues[0]);
			amax = fmaxf(amax, fabsf(s[g]));
		}
		hd = ed_k_f32_to_f16(amax / 32);
		d = ed_k_f16_to_f32(hd);
		for (int g = 0; g < ng; g++) {
			float dl, id;
			ls[g] =
			    d > 0 ? clampi((int)lrintf(s[g] / d), -32, 31) : 0;
			dl = d * (float)ls[g];
			id = dl != 0 ? 1 / dl : 0;
			for (int j = 0; j < G; j++)
				L[g * G + j] =
				    dt == ED_DT_Q3_K
					? clampi((int)lrintf(x[g * G + j] * id),
						 -4, 3)
					: nearest_k(x[g * G + j] * id);
		}
		if (dt == ED_DT_Q3_K) {
			struct blk_q3_k *y = out;
			y->d = hd;
			memset(y, 0, offsetof(struct blk_q3_k, d));
			for (int i = 0; i < 16; i++) {
				int v = ls[i] + 32;
				if (i < 8)
					y->scales[i] |= (uint8_t)(v & 15);
				else
					y->scales[i - 8] |=
					    (uint8_t)((v & 15) << 4);
				y->scales[8 + i % 4] |=
				    (uint8_t)((v >> 4) << (2 * (i / 4)));
			}
			for (int n = 0; n < 256; n++) {
				int v = L[n] + 4; /* 0..7: high bit, 2 low */
				y->qs[32 * (n / 128) + n % 32] |=
				    (uint8_t)((v & 3) << (2 * ((n / 32) % 4)));
				y->hmask[n % 32] |=
				    (uint8_t)((v >> 2) << (n / 32));
			}
		} else {
			struct blk_iq4_xs *y = out;
			y->d = hd;
			y->scales_h = 0;
			memset(y->scales_l, 0, sizeof y->scales_l);
			for (int b = 0; b < 8; b++) {
				int v = ls[b] + 32;
				y->scales_l[b / 2] |=
				    (uint8_t)((v & 15) << (4 * (b % 2)));
				y->scales_h |= (uint16_t)((v >> 4) << (2 * b));
				for (int i = 0; i < 16; i++)
					y->qs[16 * b + i] =
					    (uint8_t)(L[32 * b + i] |
						      (L[32 * b + 16 + i]
						       << 4));
			}
		}
		return;
	}
	default: return;
	}
}

int ed_kx_quantize(enum ed_dtype dt, const float *x, void *out, int64_t n)
{
	int B = ed_k_block(dt);
	size_t bb = ed_k_row_bytes(dt, B);

	if (!ed_kx_is(dt) || n % B)
		return ED_EINVAL;
	for (int64_t b = 0; b < n / B; b++)
		quant_block(dt, x + b * B, (char *)out + (size_t)b * bb);
	return 0;
}
