/*
 * gemm.c - products with many rows (prompt prefill, the vision tower,
 * attention): y[M][N] = a[M][K] . B[N][K]^T with B packed into float32
 * panels of 32 rows, k-major, so a register tile of outputs (AVX-512
 * 12 x 32, AVX2 4 x 32, portable) streams one panel with FMAs.
 *
 * Blocking: work items are (row chunk, group of 8 panels); an item packs
 * its group's panels for KC = 256 columns of K (256 KiB: stays in L2) and
 * runs every row tile of its chunk over them. Each output is summed by
 * one thread in an order fixed by the shapes, so results do not depend
 * on the thread count.
 *
 * bfloat16 inputs with vdpbf16ps were tried and dropped: on the
 * development machine it does 86 GFLOP/s per core against FMA's 174, so
 * it cannot pay even before the rounding it costs.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NR 32  /* panel rows of B = output columns per tile */
#define KC 256 /* columns of K per packed panel (even) */
#define NG 8   /* panels per work item */

/* ---- packing ------------------------------------------------------- */

size_t ed_k_pack_size(int64_t N, int64_t K)
{
	return (size_t)((N + NR - 1) / NR * K * NR) * sizeof(float);
}

void ed_k_pack_f32(float *dst, const float *src, int64_t N, int64_t K,
		   int64_t sn, int64_t sk)
{
	for (int64_t b = 0; b < (N + NR - 1) / NR; b++) {
		float *p = dst + b * K * NR;
		int nr = (int)(N - b * NR < NR ? N - b * NR : NR);
		if (sn == 1) { /* rows adjacent: read along them */
			for (int64_t k = 0; k < K; k++) {
				const float *sk0 = src + b * NR + k * sk;
				for (int r = 0; r < NR; r++)
					p[k * NR + r] = r < nr ? sk0[r] : 0;
			}
			continue;
		}
		for (int r = 0; r < NR; r++) {
			const float *sr =
			    r < nr ? src + (b * NR + r) * sn : NULL;
			for (int64_t k = 0; k < K; k++)
				p[k * NR + r] = sr ? sr[k * sk] : 0;
		}
	}
}

/* Rows n0 .. n0+nr of W (row stride K elements of wt), columns k0 ..
 * k0+kc, as one float32 panel p[k][NR]. */
static void pack_panel(float *p, const void *W, enum ed_dtype wt, int64_t K,
		       int64_t n0, int nr, int64_t k0, int kc)
{
	size_t rb = ed_k_row_bytes(wt, K), ob = ed_k_row_bytes(wt, k0);
	float row[KC];

	for (int r = 0; r < NR; r++) {
		if (r < nr)
			ed_k_to_f32(
			    row, (const char *)W + (size_t)(n0 + r) * rb + ob,
			    wt, (size_t)kc);
		else
			memset(row, 0, sizeof row);
		for (int k = 0; k < kc; k++)
			p[k * NR + r] = row[k];
	}
}

/* ---- register tiles: y[m][0..nr) += a[m][0..kc) . panel ------------ */

static void tile_portable(float *y, int64_t ldy, const float *x, int64_t ldx,
			  const float *p, int mr, int nr, int kc)
{
	for (int m = 0; m < mr; m++) {
		float acc[NR] = {0};
		for (int k = 0; k < kc; k++) {
			float xv = x[m * ldx + k];
			for (int j = 0; j < NR; j++)
				acc[j] += xv * p[k * NR + j];
		}
		for (int j = 0; j < nr; j++)
			y[m * ldy + j] += acc[j];
	}
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void
tile_avx2(float *y, int64_t ldy, const float *x, int64_t ldx, const float *p,
	  int mr, int nr, int kc)
{
	/* 4 rows x 32 columns = 16 ymm accumulators at a time */
	for (int m0 = 0; m0 < mr; m0 += 4) {
		int rows = mr - m0 < 4 ? mr - m0 : 4;
		__m256 acc[4][4];
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				acc[i][j] = _mm256_setzero_ps();
		for (int k = 0; k < kc; k++) {
			const float *pk = p + k * NR;
			__m256 b0 = _mm256_loadu_ps(pk),
			       b1 = _mm256_loadu_ps(pk + 8);
			__m256 b2 = _mm256_loadu_ps(pk + 16),
			       b3 = _mm256_loadu_ps(pk + 24);
			for (int i = 0; i < rows; i++) {
				__m256 a =
				    _mm256_broadcast_ss(x + (m0 + i) * ldx + k);
				acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
				acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
				acc[i][2] = _mm256_fmadd_ps(a, b2, acc[i][2]);
				acc[i][3] = _mm256_fmadd_ps(a, b3, acc[i][3]);
			}
		}
		for (int i = 0; i < rows; i++) {
			float t[NR];
			for (int j = 0; j < 4; j++)
				_mm256_storeu_ps(t + 8 * j, acc[i][j]);
			for (int j = 0; j < nr; j++)
				y[(m0 + i) * ldy + j] += t[j];
		}
	}
}

static inline __mmask16 lo_mask(int nr)
{
	return (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
}

static inline __mmask16 hi_mask(int nr)
{
	return (__mmask16)(nr >= 32   ? 0xFFFF
			   : nr <= 16 ? 0
				      : (1u << (nr - 16)) - 1);
}

/* add c[MR][2] into y under the column masks */
#define TILE_STORE(MR)                                                         \
	for (int i = 0; i < (MR); i++) {                                       \
		float *yr = y + i * ldy;                                       \
		_mm512_mask_storeu_ps(                                         \
		    yr, m0,                                                    \
		    _mm512_add_ps(_mm512_maskz_loadu_ps(m0, yr), c[i][0]));    \
		if (m1)                                                        \
			_mm512_mask_storeu_ps(                                 \
			    yr + 16, m1,                                       \
			    _mm512_add_ps(_mm512_maskz_loadu_ps(m1, yr + 16),  \
					  c[i][1]));                           \
	}

static inline __attribute__((always_inline, target("avx512f"))) void
tile_f32_mr(float *y, int64_t ldy, const float *x, int64_t ldx, const float *p,
	    int nr, int kc, const int MR)
{
	__m512 c[12][2];
	__mmask16 m0 = lo_mask(nr), m1 = hi_mask(nr);

#pragma GCC unroll 12
	for (int i = 0; i < MR; i++)
		c[i][0] = c[i][1] = _mm512_setzero_ps();
	for (int k = 0; k < kc; k++) {
		__m512 b0 = _mm512_loadu_ps(p + k * NR);
		__m512 b1 = _mm512_loadu_ps(p + k * NR + 16);
#pragma GCC unroll 12
		for (int i = 0; i < MR; i++) {
			__m512 a = _mm512_set1_ps(x[i * ldx + k]);
			c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
			c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
		}
	}
	TILE_STORE(MR)
}

__attribute__((target("avx512f"))) static void
tile_avx512(float *y, int64_t ldy, const float *x, int64_t ldx, const float *p,
	    int mr, int nr, int kc)
{
	switch (mr) {
	case 12: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 12); break;
	case 11: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 11); break;
	case 10: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 10); break;
	case 9: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 9); break;
	case 8: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 8); break;
	case 7: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 7); break;
	case 6: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 6); break;
	case 5: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 5); break;
	case 4: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 4); break;
	case 3: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 3); break;
	case 2: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 2); break;
	default: tile_f32_mr(y, ldy, x, ldx, p, nr, kc, 1); break;
	}
}

#endif

/* rows per register tile */
static int tile_rows(enum ed_isa level)
{
	return level == ED_ISA_AVX512 ? 12 : level == ED_ISA_AVX2 ? 4 : 6;
}

/* One tile: y[mr][nr] += a[mr][kc] . panel (lda floats between rows). */
static void tile(enum ed_isa level, float *y, int64_t ldy, const float *a,
		 int64_t lda, const float *p, int mr, int nr, int kc)
{
#if defined(__x86_64__)
	if (level == ED_ISA_AVX512) {
		tile_avx512(y, ldy, a, lda, p, mr, nr, kc);
		return;
	}
	if (level == ED_ISA_AVX2) {
		tile_avx2(y, ldy, a, lda, p, mr, nr, kc);
		return;
	}
#endif
	tile_portable(y, ldy, a, lda, p, mr, nr, kc);
}

void ed_k_gemm_packed(enum ed_isa level, float *y, int64_t ldy, const float *a,
		      int64_t lda, int64_t M, const float *pk, int64_t N,
		      int64_t K, int64_t Kuse)
{
	int64_t nb = (N + NR - 1) / NR;
	int MR = tile_rows(level);

	for (int64_t m = 0; m < M; m++)
		memset(y + m * ldy, 0, (size_t)N * sizeof *y);
	for (int64_t k0 = 0; k0 < Kuse; k0 += KC) {
		int kc = (int)(Kuse - k0 < KC ? Kuse - k0 : KC);
		/* a panel stays in L1 across the row tiles (callers pass
		 * up to a few dozen rows) */
		for (int64_t b = 0; b < nb; b++)
			for (int64_t m0 = 0; m0 < M; m0 += MR) {
				int mr = (int)(M - m0 < MR ? M - m0 : MR);
				tile(level, y + m0 * ldy + b * NR, ldy,
				     a + m0 * lda + k0, lda,
				     pk + b * K * NR + k0 * NR, mr,
				     (int)(N - b * NR < NR ? N - b * NR : NR),
				     kc);
			}
	}
}

/* ---- y = x W^T for stored weights ----------------------------------- */

struct gemm_job {
	float *y;
	const float *x;
	int64_t M, N, K;
	const void *W;
	enum ed_dtype wt;
	const float *bias;
	enum ed_isa level;
	int64_t mch, nmc, ngr; /* rows per chunk, chunks, panel groups */
	float *scratch;	       /* per thread: NG panels */
};

static void gemm_items(void *ctx, int64_t b, int64_t e, int tid)
{
	struct gemm_job *j = ctx;
	float *panels = j->scratch + (size_t)tid * NG * NR * KC;
	int MR = tile_rows(j->level);

	for (int64_t it = b; it < e; it++) {
		int64_t g = it / j->nmc, mc = it % j->nmc;
		int64_t m0 = mc * j->mch,
			m1 = m0 + j->mch < j->M ? m0 + j->mch : j->M;
		int64_t n0 = g * NG * NR,
			n1 = n0 + NG * NR < j->N ? n0 + NG * NR : j->N;
		int np = (int)((n1 - n0 + NR - 1) / NR);

		for (int64_t m = m0; m < m1; m++)
			for (int64_t n = n0; n < n1; n++)
				j->y[m * j->N + n] = j->bias ? j->bias[n] : 0;
		for (int64_t k0 = 0; k0 < j->K; k0 += KC) {
			int kc = (int)(j->K - k0 < KC ? j->K - k0 : KC);
			for (int q = 0; q < np; q++) {
				int64_t c0 = n0 + (int64_t)q * NR;
				pack_panel(
				    panels + q * NR * KC, j->W, j->wt, j->K, c0,
				    (int)(n1 - c0 < NR ? n1 - c0 : NR), k0, kc);
			}
			for (int64_t m = m0; m < m1; m += MR) {
				int mr = (int)(m1 - m < MR ? m1 - m : MR);
				for (int q = 0; q < np; q++) {
					int64_t c0 = n0 + (int64_t)q * NR;
					tile(j->level, j->y + m * j->N + c0,
					     j->N, j->x + m * j->K + k0, j->K,
					     panels + q * NR * KC, mr,
					     (int)(n1 - c0 < NR ? n1 - c0 : NR),
					     kc);
				}
			}
		}
	}
}

int ed_k_gemm(struct ed_pool *p, enum ed_isa level, float *y, const float *x,
	      int64_t M, const void *W, enum ed_dtype wt, int64_t N, int64_t K,
	      const float *bias)
{
	struct gemm_job j = {.y = y,
			     .x = x,
			     .M = M,
			     .N = N,
			     .K = K,
			     .W = W,
			     .wt = wt,
			     .bias = bias,
			     .level = level};
	int threads = ed_pool_threads(p);
	int64_t want;

	j.ngr = (N + NG * NR - 1) / (NG * NR);
	/* row chunks: enough items for the threads, but long enough that
	 * packing a panel stays a small share of using it */
	want = (4 * threads + j.ngr - 1) / j.ngr;
	j.nmc = M / 256 < want ? M / 256 : want;
	if (j.nmc < 1)
		j.nmc = 1;
	j.mch = (M + j.nmc - 1) / j.nmc;
	j.mch = (j.mch + 11) / 12 * 12;
	j.nmc = (M + j.mch - 1) / j.mch;
	j.scratch =
	    aligned_alloc(64, (size_t)threads * NG * NR * KC * sizeof(float));
	if (!j.scratch)
		return ED_ENOMEM;
	ed_pool_for_each(p, j.ngr * j.nmc, gemm_items, &j);
	free(j.scratch);
	return 0;
}
