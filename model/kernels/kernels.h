/*
 * kernels.h - the numeric kernels of model/: a persistent thread pool,
 * matrix products over stored weights (BF16, F16, F32 with float32
 * accumulation; Q8_0, Q6_K, Q4_K, Q4_0 on integer products), attention,
 * and the elementwise ops of the transformer. Every optimized kernel has
 * a naive *_ref twin (or a portable level) that tests compare against.
 *
 * Kernels never print. Products and attention allocate their scratch per
 * call and, where it cannot be had, fall back to a path that needs less.
 * Results do not depend on the thread count (each output element is
 * summed by one thread in an order fixed by the shapes; a DNNL=1 build's
 * large float products are oneDNN's).
 *
 * Usage:
 *     struct ed_pool *pool;
 *     ed_pool_new(&pool, 2);
 *     ed_k_matmul(pool, y, x, M, W, ED_DT_BF16, N, K, bias);  // y = x W^T + b
 *     ed_pool_free(pool);
 */
#ifndef ED_KERNELS_H
#define ED_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* ---- thread pool --------------------------------------------------- */

struct ed_pool;

/* A pool of nthreads workers including the calling thread (1 = run
 * inline). 0 or ED_ENOMEM / ED_EINVAL. */
int ed_pool_new(struct ed_pool **out, int nthreads);
void ed_pool_free(struct ed_pool *p);
int ed_pool_threads(const struct ed_pool *p);

/* fn(ctx, begin, end, tid) over [0, n), split into one contiguous range
 * per thread (multiples of grain, the last range takes the rest). The
 * split depends only on n, grain and the thread count. Returns when all
 * ranges are done. Not reentrant: one job at a time per pool. */
typedef void (*ed_pool_fn)(void *ctx, int64_t begin, int64_t end, int tid);
void ed_pool_for(struct ed_pool *p, int64_t n, int64_t grain, ed_pool_fn fn,
		 void *ctx);
/* fn(ctx, i, i + 1, tid) for each i in [0, n), items claimed in order
 * from a shared counter by whichever thread is free: for items each
 * computed whole by one thread (then results do not depend on which),
 * of uneven cost or on uneven cores. */
void ed_pool_for_each(struct ed_pool *p, int64_t n, ed_pool_fn fn, void *ctx);

/* ---- instruction sets ---------------------------------------------- */

enum ed_isa {
	ED_ISA_PORTABLE = 0,
	ED_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	ED_ISA_AVX512 = 2, /* AVX-512 F + BW (+ F16C) */
};

/* The best the CPU supports. */
enum ed_isa ed_k_isa_best(void);
/* Use at most this level from now on (tests); returns the level in use. */
enum ed_isa ed_k_isa_limit(enum ed_isa level);
const char *ed_k_isa_name(enum ed_isa level);
/* The level the kernels use now (the best, capped by ed_k_isa_limit). */
enum ed_isa ed_k_isa(void);

/* ---- conversions --------------------------------------------------- */

float ed_k_bf16_to_f32(uint16_t h);
uint16_t ed_k_f32_to_bf16(float f); /* round to nearest even */
float ed_k_f16_to_f32(uint16_t h);
uint16_t ed_k_f32_to_f16(float f);
/* n elements of src (dtype dt) to float32. */
void ed_k_to_f32(float *dst, const void *src, enum ed_dtype dt, size_t n);

/* Element i of a BF16, F16 or F32 matrix as float32. */
float ed_k_weight(const void *W, enum ed_dtype wt, size_t i);

/* ---- quantized blocks (quant.c) ------------------------------------- */

bool ed_k_is_quant(enum ed_dtype dt);
/* Weights per block (1 for plain types). */
int ed_k_block(enum ed_dtype dt);
/* Bytes of n consecutive weights (n a multiple of the block). */
size_t ed_k_row_bytes(enum ed_dtype dt, int64_t n);
/* n weights (a multiple of the block) to and from float32. Quantizing
 * also writes F32, F16 and BF16. 0 or ED_EINVAL. */
int ed_k_quantize_row(enum ed_dtype dt, const float *x, void *out, int64_t n);
void ed_k_dequantize_row(enum ed_dtype dt, const void *src, float *y,
			 int64_t n);

/* Activations quantized for integer dot products: per group of 32 (or
 * 256) values int8 values and their float scale d, the sum of each 16
 * int8 values and per 32 d times their sum (the formats' offsets and
 * minimums need them). K a multiple of the group. */
struct ed_qact {
	int8_t *q;    /* [K] */
	float *d;     /* [K / group] */
	int16_t *s16; /* [K / 16] */
	/* group 32: [K / 32], d times the 32 values' sum; group 256: [K /
	 * 16], per block 8 zeros then those 8 (the lanes Q4_K's kernel
	 * takes the minimums in) */
	float *ds;
	int group; /* 32 (also when 0) or 256 */
};
void ed_k_quantize_act(const float *x, int64_t K, struct ed_qact *a);
/* Per group of 256 (one scale per K-quant block, as ggml's Q8_K): the
 * kernels then apply a block's integer sub-scales before converting to
 * float, half the float work of per-32 scales. AVX-512 or portable by
 * level, the same values. Sets a->group. */
void ed_k_quantize_act256(enum ed_isa level, const float *x, int64_t K,
			  struct ed_qact *a);
/* The group the level's kernels for dt take: 256 for Q4_K on VNNI
 * (decode and prefill alike), else 32. */
int ed_k_act_group(enum ed_isa level, enum ed_dtype dt);
/* Put the activations in the order the level's kernel for dt reads
 * them (the int8 values only); true when they were moved (with K = 0:
 * whether they would be). Call once per activation vector, before
 * ed_k_qdot at that level. */
bool ed_k_act_order(enum ed_isa level, enum ed_dtype dt, struct ed_qact *a,
		    int64_t K);
/* A quantized weight row (K weights) . the activations (in the order
 * ed_k_act_order gave them): AVX-512 VNNI, AVX2 or portable by level;
 * the reference dequantizes and sums in double, activations in natural
 * order. K a multiple of the block. */
float ed_k_qdot(enum ed_isa level, enum ed_dtype dt, const void *w,
		const struct ed_qact *a, int64_t K);
double ed_k_qdot_ref(enum ed_dtype dt, const void *w, const struct ed_qact *a,
		     int64_t K);
/* n consecutive rows (rb bytes apart) into y[0..n): several rows per
 * pass where the level has such a kernel. */
void ed_k_qdot_rows(enum ed_isa level, enum ed_dtype dt, const void *w,
		    size_t rb, int64_t n, const struct ed_qact *a, int64_t K,
		    float *y);
/* The same rows with nv activation vectors: y[v][r] = row r . a[v].
 * Each (row, vector) is summed with the same instructions whatever nv
 * and the other vectors are, and equals ed_k_qdot_rows() with a[v]
 * alone: a sequence decoded in a batch gets the numbers it gets alone.
 * Weights are read once for all vectors (decode of several sequences). */
void ed_k_qdot_multi(enum ed_isa level, enum ed_dtype dt, const void *w,
		     size_t rb, int64_t n, const struct ed_qact *const *a,
		     int nv, int64_t K, float *const *y);

/* A quantized row of K weights as w[k] = scale[g] * u[k] - minv[g] with
 * integers u in 0..255, g = k / group: 32, or 16 for Q6_K. AVX-512 or
 * portable by level (the same values). */
int ed_k_unpack_group(enum ed_dtype dt);
void ed_k_unpack_q(enum ed_isa level, enum ed_dtype dt, const void *src,
		   int64_t K, uint16_t *u, float *scale, float *minv);
/* y = x W^T (+ bias) for quantized W and M > 1: activations as int16
 * per 32 values (error 2^-16 of the block's largest) and VNNI's 16-bit
 * integer products; ED_EINVAL where the CPU or the type has no such
 * kernel, ED_ENOMEM; y unchanged then. */
/* int16 activations: per 32 values q and d (x ~ d q), per 16 the sum
 * of q. K a multiple of 32. */
void ed_k_quantize_act16(const float *x, int64_t K, int16_t *q, float *d,
			 int32_t *s16);
/* the same, AVX-512 at that level (identical values); and
 * ed_k_quantize_act's */
void ed_k_quantize_act8_level(enum ed_isa level, const float *x, int64_t K,
			      struct ed_qact *a);
void ed_k_quantize_act16_level(enum ed_isa level, const float *x, int64_t K,
			       int16_t *q, float *d, int32_t *s16);
int ed_k_qgemm(struct ed_pool *p, float *y, const float *x, int64_t M,
	       const void *W, enum ed_dtype wt, int64_t N, int64_t K,
	       const float *bias);
/* The same with int8 activations whatever the type (Q8_0 included, which
 * ed_k_qgemm gives int16): VNNI's int8 rate, twice its int16 one. */
int ed_k_qgemm_int8(struct ed_pool *p, float *y, const float *x, int64_t M,
		    const void *W, enum ed_dtype wt, int64_t N, int64_t K,
		    const float *bias);
/* Two weight matrices of the same type and shape over the same x (a
 * gate and an up projection): the activations quantized once, both
 * matrices' rows in one job. */
int ed_k_qgemm2(struct ed_pool *p, float *y0, float *y1, const float *x,
		int64_t M, const void *W0, const void *W1, enum ed_dtype wt,
		int64_t N, int64_t K);
bool ed_k_has_vnni(void);

/* ---- the further formats (qblocks.c) ---------------------------------
 *
 * Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K, IQ4_XS: reached through
 * the ed_k_* calls above (dequantize, quantize, unpack, qdot), which
 * dispatch here; the activations are the group-32 ones.
 */
bool ed_kx_is(enum ed_dtype dt);
/* weights per scale: 16 (Q2_K, Q3_K) or 32 */
int ed_kx_group(enum ed_dtype dt);
void ed_kx_dequantize(enum ed_dtype dt, const void *src, float *y, int64_t n);
void ed_kx_unpack(enum ed_dtype dt, const void *src, int64_t K, uint16_t *u,
		  float *scale, float *minv);
void ed_kx_qdot_multi(enum ed_isa level, enum ed_dtype dt, const void *w,
		      size_t rb, int64_t n, const struct ed_qact *const *a,
		      int nv, int64_t K, float *const *y);
int ed_kx_quantize(enum ed_dtype dt, const float *x, void *out, int64_t n);

/* ---- weight matrices times a few vectors (matvec.c) ----------------
 *
 * Decode: every sequence of a batch gives one vector. y[v] = W x[v]
 * (+ bias) for several matrices and vectors in one job: rows in work
 * items claimed by free threads (each weight row read once for all the
 * vectors), each distinct input quantized once per activation format.
 * Every output is summed by one thread with the same instructions
 * whatever the other vectors, products and the thread count are: a
 * sequence's numbers do not depend on what it is batched with.
 */
struct ed_mv {
	const void *W; /* [N][K] as stored (BF16, F16, F32, quantized) */
	enum ed_dtype dt;
	int64_t N, K;
	const float *bias;     /* [N] or NULL */
	int nv;		       /* vectors */
	const float *const *x; /* nv inputs of K floats */
	float *const *y;       /* nv outputs of N floats */
};
/* 0, or ED_ENOMEM with nothing written. */
int ed_k_matvec(struct ed_pool *p, const struct ed_mv *mv, int n);
/* The float-weight row kernel at a level: W row . x over K (the one
 * ed_k_matvec uses). */
float ed_k_row_dot(enum ed_isa level, const void *w, enum ed_dtype wt,
		   const float *x, int64_t K);

/* ---- matrix products ----------------------------------------------- */

/*
 * y[M][N] = x[M][K] . W[N][K]^T (+ bias[N]): W is a weight matrix in
 * torch layout [out, in] stored as BF16, F16, F32 or a quantized type
 * (rows of ed_k_row_bytes), bias float32 or NULL. M = 1 takes the
 * matrix-vector path; M > 1 gemm.c's tiles, or for quantized weights
 * qgemm.c's integer products where the CPU has VNNI.
 */
void ed_k_matmul(struct ed_pool *p, float *y, const float *x, int64_t M,
		 const void *W, enum ed_dtype wt, int64_t N, int64_t K,
		 const float *bias);
/* y0 = x W0^T and y1 = x W1^T, W0 and W1 of one type and shape: one
 * job where that pays (quantized, M > 1), else two products. */
void ed_k_matmul_pair(struct ed_pool *p, float *y0, float *y1, const float *x,
		      int64_t M, const void *W0, const void *W1,
		      enum ed_dtype wt, int64_t N, int64_t K);
void ed_k_matmul_ref(float *y, const float *x, int64_t M, const void *W,
		     enum ed_dtype wt, int64_t N, int64_t K, const float *bias);

/*
 * Scaled dot-product attention for nq query heads sharing nkv key/value
 * heads (GQA: head h uses kv head h / (nq / nkv)). q is [L][nq][hd],
 * k and v are [Lk][kv_stride] with head j at j * hd; out is [L][nq][hd].
 * Query i sees keys [0, causal_base + i] when causal, all Lk otherwise.
 */
struct ed_attn {
	int64_t L, Lk;
	int nq, nkv, hd;
	int64_t kv_stride;   /* floats between consecutive key rows */
	int64_t causal_base; /* -1: not causal */
	float scale;
};
void ed_k_attention(struct ed_pool *p, float *out, const float *q,
		    const float *k, const float *v, const struct ed_attn *a);
void ed_k_attention_ref(float *out, const float *q, const float *k,
			const float *v, const struct ed_attn *a);
/* Decode: one query row for each of n sequences, each over its own Lk
 * cached keys (q [nq][hd], k and v [Lk][kv_stride], out [nq][hd]); one
 * job for all (sequence, head) pairs. Each row's numbers are those of
 * ed_k_attention() with L = 1 on that sequence alone. 0 or ED_ENOMEM. */
struct ed_attn_row {
	float *out;
	const float *q, *k, *v;
	int64_t Lk;
};
int ed_k_attention_rows(struct ed_pool *p, const struct ed_attn_row *r, int n,
			int nq, int nkv, int hd, int64_t kv_stride,
			float scale);

/* ---- building blocks of the products (gemm.c) ----------------------
 *
 * A packed right-hand operand B[N][K] is float32 panels of 32 rows,
 * k-major: [N/32][K][32], rows past N zero.
 */
size_t ed_k_pack_size(int64_t N, int64_t K);
/* Pack element (n, k) = src[n * sn + k * sk]. */
void ed_k_pack_f32(float *dst, const float *src, int64_t N, int64_t K,
		   int64_t sn, int64_t sk);
/* One thread: y[M][N] (stride ldy) = a[M][0..Kuse) . B^T (lda floats
 * between rows of a) over the first Kuse <= K columns of a packed B. */
void ed_k_gemm_packed(enum ed_isa level, float *y, int64_t ldy, const float *a,
		      int64_t lda, int64_t M, const float *pk, int64_t N,
		      int64_t K, int64_t Kuse);
/* y = x W^T (+ bias) for stored weights on the pool, M > 1; ED_ENOMEM
 * without changing y when scratch cannot be had. */
int ed_k_gemm(struct ed_pool *p, enum ed_isa level, float *y, const float *x,
	      int64_t M, const void *W, enum ed_dtype wt, int64_t N, int64_t K,
	      const float *bias);

/* ---- elementwise --------------------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w, per row of n. */
void ed_k_rmsnorm(float *y, const float *x, const float *w, int64_t rows,
		  int64_t n, float eps);
/* y = (x - mean) / sqrt(var + eps) * w + b, per row. */
void ed_k_layernorm(float *y, const float *x, const float *w, const float *b,
		    int64_t rows, int64_t n, float eps);
/* g[i] = silu(g[i]) * u[i] */
void ed_k_swiglu(float *g, const float *u, int64_t n);
void ed_k_gelu_erf(float *x, int64_t n);
void ed_k_quick_gelu(float *x, int64_t n);
/* In place over n: softmax with the max subtracted. */
void ed_k_softmax(float *x, int64_t n);
/* s[j] = exp((s[j] - mx) * scale) for j < n (scale > 0, mx >= every
 * s[j]); returns the sum. AVX-512: a polynomial within 1 ulp of exp
 * for normal results (measured over [-87, 0]). */
float ed_k_exp_row(float *s, int64_t n, float mx, float scale);
/* The largest of s[0..n) (-inf for n = 0). */
float ed_k_max(const float *s, int64_t n);
void ed_k_add(float *y, const float *x, int64_t n); /* y += x */

#endif
