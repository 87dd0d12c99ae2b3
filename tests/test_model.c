/*
 * test_model.c - model/: the safetensors container on the golden files,
 * a write/read round trip, and every header check with a message that
 * names the bad tensor.
 */
#include "tests/harness.h"
#include "tests/golden.h"
#include "tests/util.h"

#include <float.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/kernels/kernels.h"
#include "model/model.h"
#include "model/model_int.h"
#include "pipeline/pipeline.h"

static void test_golden_files(void)
{
	char path[512], err[256];
	struct ed_st *st;
	const struct ed_tensor *t;
	int rc;

	rc = ed_model_st_open(
	    &st,
	    t_shared("golden/a_text_only/model.safetensors", path, sizeof path),
	    err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	CHECK(ed_model_st_count(st) > 50, "%zu tensors", ed_model_st_count(st));
	t = ed_model_st_find(st, "model.embed_tokens.weight");
	CHECK(t && t->dtype == ED_DT_BF16 && t->ndim == 2 &&
		  t->shape[0] == 1024 && t->shape[1] == 64,
	      "embed_tokens");
	t = ed_model_st_find(st, "model.layers.1.mlp.gate.weight");
	CHECK(t && t->dtype == ED_DT_F32 && t->shape[0] == 64 &&
		  t->shape[1] == 8,
	      "router stored [hidden, experts] in F32");
	t = ed_model_st_find(
	    st, "model.layers.1.mlp.moe_statics.e_score_correction_bias");
	CHECK(t && t->shape[0] == 2 && t->shape[1] == 8, "correction bias");
	CHECK(ed_model_st_find(st, "lm_head.weight") == NULL, "tied head");
	CHECK(ed_model_st_find(st, "no.such.tensor") == NULL, "missing");
	/* every tensor's bytes agree with its shape */
	for (size_t i = 0; i < ed_model_st_count(st); i++) {
		t = ed_model_st_at(st, i);
		CHECK(t->nbytes == (size_t)ed_model_tensor_numel(t) *
				       ed_model_dtype_size(t->dtype),
		      "%s", t->name);
	}
	CHECK(ed_model_st_at(st, ed_model_st_count(st)) == NULL, "past end");
	ed_model_st_close(st);

	rc =
	    ed_model_st_open(&st,
			     t_shared("golden/a_text_only/expected.safetensors",
				      path, sizeof path),
			     err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	t = ed_model_st_find(st, "input_ids");
	CHECK(t && t->dtype == ED_DT_I64 && t->ndim == 1 && t->shape[0] == 19,
	      "input_ids");
	if (t)
		CHECK_INT(ed_model_tensor_get(t, 0), 1); /* bos */
	ed_model_st_close(st);
}

static void test_roundtrip(void)
{
	float f[6] = {1.5f, -2.25f, 0, 3e-8f, 1e30f, -0.0f};
	int64_t ids[3] = {1, -7, 1234567890123LL};
	uint16_t bf[2] = {0x3F80, 0xC040}; /* 1.0, -3.0 */
	struct ed_tensor ts[3] = {
	    {.name = "a.f32",
	     .dtype = ED_DT_F32,
	     .ndim = 2,
	     .shape = {2, 3},
	     .data = f,
	     .nbytes = sizeof f},
	    {.name = "ids",
	     .dtype = ED_DT_I64,
	     .ndim = 1,
	     .shape = {3},
	     .data = ids,
	     .nbytes = sizeof ids},
	    {.name = "b",
	     .dtype = ED_DT_BF16,
	     .ndim = 1,
	     .shape = {2},
	     .data = bf,
	     .nbytes = sizeof bf},
	};
	char path[512], err[256];
	struct ed_st *st;
	const struct ed_tensor *t;
	unsigned char *raw;
	size_t len;

	snprintf(path, sizeof path, "%s/rt.safetensors",
		 getenv("ED_TMP") ? getenv("ED_TMP") : "/tmp");
	CHECK_INT(ed_model_st_write(path, ts, 3, err, sizeof err), 0);
	raw = t_read_file(path, &len);
	CHECK(raw && raw[0] % 8 == 0 && raw[1] == 0, "header padded to 8");
	free(raw);
	CHECK_INT(ed_model_st_open(&st, path, err, sizeof err), 0);
	t = ed_model_st_find(st, "a.f32");
	CHECK(t && memcmp(t->data, f, sizeof f) == 0, "f32 bytes");
	t = ed_model_st_find(st, "ids");
	CHECK(t && ed_model_tensor_get(t, 2) == 1234567890123.0, "i64");
	t = ed_model_st_find(st, "b");
	CHECK(t && ed_model_tensor_get(t, 0) == 1.0 &&
		  ed_model_tensor_get(t, 1) == -3.0,
	      "bf16");
	ed_model_st_close(st);
	/* shape and byte count must agree */
	ts[0].nbytes = 8;
	CHECK_INT(ed_model_st_write(path, ts, 1, err, sizeof err), ED_EINVAL);
	/* no file is left behind by a failed create */
	CHECK_INT(ed_model_st_write("/nonexistent-dir/x.safetensors", ts + 1, 1,
				    err, sizeof err),
		  ED_ECREATE);
}

/* A file from a header string and n data bytes. */
static int open_hdr(const char *hdr, size_t ndata, struct ed_st **st, char *err,
		    size_t errlen)
{
	size_t hl = strlen(hdr), len = 8 + hl + ndata;
	unsigned char *buf = calloc(1, len);
	int rc;

	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(buf + 8, hdr, hl);
	rc = ed_model_st_open_mem(st, buf, len, err, errlen);
	if (rc == 0)
		ed_model_st_close(*st);
	free(buf);
	return rc;
}

static void test_bad_headers(void)
{
	static const struct {
		const char *hdr;
		size_t ndata;
		const char *msg; /* expected in the message */
	} bad[] = {
	    {"{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}",
	     2, "'x': unsupported dtype"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"
	     "}",
	     8, "'w': data_offsets"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}"
	     "}",
	     16, "'w': 16 bytes for 3 elements"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}"
	     "}",
	     4, "'w': bad shape"},
	    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
	     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
	     8, "overlap"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w': needs"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
	     4, "'w': data_offsets"},
	    {"[1,2]", 0, "not an object"},
	    {"{\"w\": ", 0, "bad safetensors header"},
	    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
	     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
	     1, "duplicate"},
	    {"{\"__metadata__\":[1]}", 0, "__metadata__"},
	};
	char err[256];
	struct ed_st *st;
	unsigned char tiny[8] = {255, 255, 255, 255, 0, 0, 0, 0};

	for (size_t i = 0; i < ED_ARRAY_LEN(bad); i++) {
		int rc =
		    open_hdr(bad[i].hdr, bad[i].ndata, &st, err, sizeof err);
		CHECK(rc == ED_EFORMAT && strstr(err, bad[i].msg),
		      "case %zu: rc %d, '%s' (want '%s')", i, rc, err,
		      bad[i].msg);
	}
	CHECK_INT(ed_model_st_open_mem(&st, tiny, sizeof tiny, err, sizeof err),
		  ED_EFORMAT);
	CHECK_INT(ed_model_st_open_mem(&st, tiny, 4, err, sizeof err),
		  ED_EFORMAT);
	CHECK_INT(
	    ed_model_st_open(&st, "/nonexistent.safetensors", err, sizeof err),
	    ED_ENOENT);
	/* a valid one, with metadata */
	CHECK_INT(
	    open_hdr(
		"{\"__metadata__\":{\"format\":\"pt\"},\"w\":"
		"{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
		4, &st, err, sizeof err),
	    0);
}

static void test_dtypes(void)
{
	uint16_t h[5] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555};
	struct ed_tensor t = {.name = "h",
			      .dtype = ED_DT_F16,
			      .ndim = 1,
			      .shape = {5},
			      .data = h,
			      .nbytes = sizeof h};

	CHECK(ed_model_tensor_get(&t, 0) == 1.0, "f16 1");
	CHECK(ed_model_tensor_get(&t, 1) == -2.0, "f16 -2");
	CHECK(ed_model_tensor_get(&t, 2) == 5.9604644775390625e-8, "f16 min");
	CHECK(isinf(ed_model_tensor_get(&t, 3)), "f16 inf");
	CHECK(fabs(ed_model_tensor_get(&t, 4) - 0.333251953125) < 1e-12,
	      "f16 1/3");
	CHECK_INT(ed_model_dtype_size(ED_DT_BF16), 2);
	CHECK_STR(ed_model_dtype_name(ED_DT_I64), "I64");
}

/* ---- kernels ------------------------------------------------------- */

static unsigned krng = 99;
static float frand(void)
{
	krng = krng * 1103515245u + 12345u;
	return (float)((krng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void test_conversions(void)
{
	int bad = 0;

	/* every finite half survives f16 -> f32 -> f16 */
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF))
			continue; /* NaN payloads */
		bad += ed_k_f32_to_f16(ed_k_f16_to_f32((uint16_t)h)) != h;
	}
	CHECK(bad == 0, "%d halves do not round-trip", bad);
	CHECK(ed_k_f32_to_f16(1.0f) == 0x3C00, "f16(1)");
	CHECK(ed_k_f32_to_f16(65520.0f) == 0x7C00,
	      "f16 overflow rounds to inf");
	CHECK(ed_k_f32_to_bf16(1.0f) == 0x3F80, "bf16(1)");
	/* round to nearest even: 1 + 2^-8 is a tie, goes to 1 */
	CHECK(ed_k_f32_to_bf16(1.00390625f) == 0x3F80, "bf16 tie to even");
	CHECK(ed_k_f32_to_bf16(1.01171875f) == 0x3F82, "bf16 tie up to even");
	CHECK(ed_k_bf16_to_f32(0xC040) == -3.0f, "bf16(-3)");
}

static void fill_weights(void *w, enum ed_dtype dt, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float v = frand();
		if (dt == ED_DT_F32)
			((float *)w)[i] = v;
		else if (dt == ED_DT_BF16)
			((uint16_t *)w)[i] = ed_k_f32_to_bf16(v);
		else
			((uint16_t *)w)[i] = ed_k_f32_to_f16(v);
	}
}

/* A product of 2^30 multiply-adds (oneDNN's size in a DNNL=1 build, the
 * blocked kernels otherwise): 300 sampled outputs against sums in
 * double, and 1 against 2 threads. */
static void test_matmul_large(void)
{
	const int M = 1024, N = 1024, K = 1024;
	float *x = malloc((size_t)M * K * 4), *y = malloc((size_t)M * N * 4),
	      *y2 = malloc((size_t)M * N * 4), *bias = malloc((size_t)N * 4);
	uint16_t *w = malloc((size_t)N * K * 2);
	struct ed_pool *p2;
	double worst = 0;

	ed_pool_new(&p2, 2);
	for (int i = 0; i < M * K; i++)
		x[i] = frand();
	for (int i = 0; i < N * K; i++)
		w[i] = ed_k_f32_to_bf16(frand());
	for (int i = 0; i < N; i++)
		bias[i] = frand();
	ed_k_matmul(NULL, y, x, M, w, ED_DT_BF16, N, K, bias);
	ed_k_matmul(p2, y2, x, M, w, ED_DT_BF16, N, K, bias);
	for (int s = 0; s < 300; s++) {
		int m = (s * 7919) % M, n = (s * 104729 + 17) % N;
		double r = bias[n];
		for (int k = 0; k < K; k++)
			r += (double)x[m * K + k] *
			     ed_k_bf16_to_f32(w[(size_t)n * K + k]);
		worst = fmax(worst, fabs(y[m * N + n] - r) / (1e-6 * (K + 1)));
		worst = fmax(worst, fabs(y2[m * N + n] - r) / (1e-6 * (K + 1)));
	}
	CHECK(worst <= 1.0, "1024^3 matmul off by %.2f units", worst);
	ed_pool_free(p2);
	free(x), free(y), free(y2), free(bias), free(w);
}

static void test_matmul(void)
{
	static const int Ms[] = {1, 2, 5, 6, 7, 13};
	static const int Ns[] = {1, 3, 31, 32, 33, 100};
	static const int Ks[] = {1, 7, 16, 255, 256, 257, 600};
	static const enum ed_dtype dts[] = {ED_DT_BF16, ED_DT_F16, ED_DT_F32};
	enum ed_isa best = ed_k_isa_best();
	struct ed_pool *pool3;
	int cases = 0, worst_case = -1;
	double worst = 0;

	ed_pool_new(&pool3, 3);
	for (int isa = 0; isa <= (int)best; isa++) {
		ed_k_isa_limit((enum ed_isa)isa);
		for (size_t a = 0; a < ED_ARRAY_LEN(Ms); a++)
			for (size_t b = 0; b < ED_ARRAY_LEN(Ns); b++)
				for (size_t c = 0; c < ED_ARRAY_LEN(Ks); c++)
					for (size_t d = 0;
					     d < ED_ARRAY_LEN(dts); d++) {
						int M = Ms[a], N = Ns[b],
						    K = Ks[c];
						enum ed_dtype dt = dts[d];
						float *x =
						    malloc((size_t)M * K * 4);
						void *w =
						    malloc((size_t)N * K * 4);
						float *bias =
						    malloc((size_t)N * 4);
						float *y =
						    malloc((size_t)M * N * 4);
						float *y3 =
						    malloc((size_t)M * N * 4);
						float *r =
						    malloc((size_t)M * N * 4);
						for (int i = 0; i < M * K; i++)
							x[i] = frand();
						for (int i = 0; i < N; i++)
							bias[i] = frand();
						fill_weights(w, dt,
							     (size_t)N * K);
						ed_k_matmul(
						    NULL, y, x, M, w, dt, N, K,
						    (c % 2) ? bias : NULL);
						ed_k_matmul(
						    pool3, y3, x, M, w, dt, N,
						    K, (c % 2) ? bias : NULL);
						ed_k_matmul_ref(
						    r, x, M, w, dt, N, K,
						    (c % 2) ? bias : NULL);
						for (int i = 0; i < M * N;
						     i++) {
							/* float32 sums of K
							 * terms of size <= 1 */
							double e =
							    fabs((double)y[i] -
								 r[i]) /
							    (1e-6 * (K + 1));
							if (e > worst)
								worst = e,
								worst_case =
								    cases;
						}
						CHECK(memcmp(y, y3,
							     (size_t)M * N *
								 4) == 0,
						      "%s M%d N%d K%d: 1 and 3 "
						      "threads differ",
						      ed_k_isa_name(
							  (enum ed_isa)isa),
						      M, N, K);
						cases++;
						free(x), free(w), free(bias),
						    free(y), free(y3), free(r);
					}
	}
	ed_k_isa_limit(ED_ISA_AVX512);
	/* |error| <= 1e-6 per accumulated term, well above float32's 6e-8 */
	CHECK(worst <= 1.0, "matmul off the reference by %.2f units (case %d)",
	      worst, worst_case);
	CHECK(cases > 700, "%d matmul cases", cases);
	{
		/* large: several row chunks and panel groups, float32 */
		const int M = 700, N = 600, K = 300;
		float *x = malloc((size_t)M * K * 4),
		      *y = malloc((size_t)M * N * 4),
		      *y3 = malloc((size_t)M * N * 4),
		      *r = malloc((size_t)M * N * 4);
		void *w = malloc((size_t)N * K * 2);
		double big = 0;
		for (int i = 0; i < M * K; i++)
			x[i] = frand();
		fill_weights(w, ED_DT_BF16, (size_t)N * K);
		ed_k_matmul_ref(r, x, M, w, ED_DT_BF16, N, K, NULL);
		for (int isa = 0; isa <= (int)best; isa++) {
			ed_k_isa_limit((enum ed_isa)isa);
			ed_k_matmul(NULL, y, x, M, w, ED_DT_BF16, N, K, NULL);
			ed_k_matmul(pool3, y3, x, M, w, ED_DT_BF16, N, K, NULL);
			for (int i = 0; i < M * N; i++)
				big = fmax(big, fabs((double)y[i] - r[i]) /
						    (1e-6 * (K + 1)));
			CHECK(memcmp(y, y3, (size_t)M * N * 4) == 0,
			      "%s 700x600x300: 1 and 3 threads differ",
			      ed_k_isa_name((enum ed_isa)isa));
		}
		ed_k_isa_limit(ED_ISA_AVX512);
		CHECK(big <= 1.0, "700x600x300 matmul off by %.2f units", big);
		free(x), free(y), free(y3), free(r), free(w);
	}
	ed_pool_free(pool3);
}

/* The tiled path (long sequences) against the reference, and 1 against
 * 2 threads. */
static void attention_case(int L, int Lk, int nq, int nkv, int hd)
{
	struct ed_pool *pool;
	float *q = malloc((size_t)L * nq * hd * 4),
	      *k = malloc((size_t)Lk * nkv * hd * 4),
	      *v = malloc((size_t)Lk * nkv * hd * 4),
	      *o = malloc((size_t)L * nq * hd * 4),
	      *o1 = malloc((size_t)L * nq * hd * 4),
	      *r = malloc((size_t)L * nq * hd * 4);
	double worst = 0;

	ed_pool_new(&pool, 2);
	for (int i = 0; i < L * nq * hd; i++)
		q[i] = frand();
	for (int i = 0; i < Lk * nkv * hd; i++)
		k[i] = frand(), v[i] = frand();
	for (int causal = 0; causal < 2; causal++) {
		struct ed_attn a = {
		    L, Lk, nq, nkv, hd, nkv * hd, causal ? Lk - L : -1, 0.25f};
		ed_k_attention(pool, o, q, k, v, &a);
		ed_k_attention(NULL, o1, q, k, v, &a);
		CHECK(memcmp(o, o1, (size_t)L * nq * hd * 4) == 0,
		      "attention L%d Lk%d: 1 and 2 threads differ", L, Lk);
		ed_k_attention_ref(r, q, k, v, &a);
		for (int i = 0; i < L * nq * hd; i++)
			worst = fmax(worst, fabs(o[i] - r[i]));
	}
	CHECK(worst < 1e-5, "attention L%d Lk%d hd%d off by %g", L, Lk, hd,
	      worst);
	ed_pool_free(pool);
	free(q), free(k), free(v), free(o), free(o1), free(r);
}

static void test_attention(void)
{
	struct ed_pool *pool;
	const int L = 9, Lk = 14, nq = 6, nkv = 2, hd = 16;

	/* the direct path (short) and the tiled one (long sequences)
	 * against the reference */
	attention_case(L, Lk, nq, nkv, hd);
	attention_case(300, 300, 4, 2, 16);
	attention_case(200, 333, 6, 3, 80);
	attention_case(1, 500, 4, 1, 64);
	attention_case(97, 101, 2, 1, 15);
	attention_case(130, 1200, 2, 2, 80);
	float *q = malloc(L * nq * hd * 4), *k = malloc(Lk * nkv * hd * 4),
	      *v = malloc(Lk * nkv * hd * 4), *o = malloc(L * nq * hd * 4);

	ed_pool_new(&pool, 2);
	for (int i = 0; i < L * nq * hd; i++)
		q[i] = frand();
	for (int i = 0; i < Lk * nkv * hd; i++)
		k[i] = frand(), v[i] = frand();
	/* a fresh causal prefill: row 0 sees key 0 only, so its output is
	 * value row 0 */
	{
		struct ed_attn a = {L, L, nq, nkv, hd, nkv * hd, 0, 0.25f};
		ed_k_attention(pool, o, q, k, v, &a);
		CHECK(fabs(o[0] - v[0]) < 1e-6 &&
			  fabs(o[hd - 1] - v[hd - 1]) < 1e-6,
		      "causal mask");
	}
	ed_pool_free(pool);
	free(q), free(k), free(v), free(o);
	{
		/* the softmax's exp against expf, across the range it sees */
		float e[1000], x[1000];
		double sum = 0, got, rel = 0;
		for (int i = 0; i < 1000; i++)
			x[i] = e[i] = -90.0f * (float)i / 999 * fabsf(frand());
		got = ed_k_exp_row(e, 1000, -1.0f, 1.5f);
		for (int i = 0; i < 1000; i++) {
			double want = exp((double)((x[i] + 1.0f) * 1.5f));
			sum += want;
			if (want >= FLT_MIN) /* denormals carry fewer bits */
				rel = fmax(rel, fabs(e[i] - want) / want);
		}
		CHECK(rel < 2.4e-7 && fabs(got - sum) / sum < 1e-6,
		      "exp row: %g relative, sum %g vs %g", rel, got, sum);
		x[617] = 3.5f;
		CHECK(ed_k_max(x, 1000) == 3.5f && ed_k_max(x, 617) == 0.0f &&
			  ed_k_max(x + 1, 5) < 0 && isinf(ed_k_max(x, 0)),
		      "row max");
	}
}

struct sum_ctx {
	int64_t *parts;
};

static void sum_range(void *ctx, int64_t b, int64_t e, int tid)
{
	struct sum_ctx *c = ctx;
	for (int64_t i = b; i < e; i++)
		c->parts[tid] += i;
}

/* items claimed one at a time: each exactly once, one item per call */
struct each_ctx {
	_Atomic int seen[1000];
	_Atomic int bad;
};

static void each_item(void *ctx, int64_t b, int64_t e, int tid)
{
	struct each_ctx *c = ctx;

	(void)tid;
	if (e != b + 1)
		c->bad++;
	c->seen[b]++;
}

static void test_pool(void)
{
	struct ed_pool *p;
	int64_t parts[5] = {0}, total = 0;
	struct sum_ctx c = {parts};
	static struct each_ctx ec;

	CHECK_INT(ed_pool_new(&p, 5), 0);
	for (int rep = 0; rep < 200; rep++)
		ed_pool_for(p, 1000, 7, sum_range, &c);
	for (int i = 0; i < 5; i++)
		total += parts[i];
	CHECK(total == 200LL * 999 * 1000 / 2, "pool sum %lld",
	      (long long)total);
	CHECK(parts[4] > 0, "every thread worked");
	for (int rep = 0; rep < 50; rep++)
		ed_pool_for_each(p, 1000, each_item, &ec);
	{
		int wrong = 0;
		for (int i = 0; i < 1000; i++)
			wrong += ec.seen[i] != 50;
		CHECK(wrong == 0 && ec.bad == 0,
		      "pool items: %d not run 50 times, %d calls of more than "
		      "one",
		      wrong, (int)ec.bad);
	}
	ed_pool_free(p);
	CHECK_INT(ed_pool_new(&p, 0), ED_EINVAL);
}

/* ---- golden models ------------------------------------------------- */

static int load_png(void *ud, const char *path, float **px, int *t, int *h,
		    int *w, char *err, size_t errlen)
{
	return ed_pipeline_tile_file(path, ud, 200, px, t, h, w, err, errlen);
}

/* The golden case's directory. */
static void golden_dir(const char *name, char *dir, size_t len)
{
	char rel[256];

	snprintf(rel, sizeof rel, "golden/%s", name);
	t_shared(rel, dir, len);
}

/* Run the case's inputs through m and open its expected tensors: 0, or
 * -1 with the failure reported and m closed. */
static int golden_eval(struct ed_model *m, const char *name, const char *dir,
		       int threads, struct ed_eval *ev, struct ed_st **exp)
{
	char inputs[600], path[600], err[512];
	struct ed_tile_params tp;
	int rc;

	snprintf(inputs, sizeof inputs, "%s/inputs.json", dir);
	snprintf(path, sizeof path, "%s/expected.safetensors", dir);
	ed_render_tile_params_default(&tp);
	rc = ed_model_eval(m, inputs, load_png, &tp, threads, ev, err,
			   sizeof err);
	CHECK(rc == 0, "%s: eval: %s", name, err);
	if (rc == 0 && ed_model_st_open(exp, path, err, sizeof err) == 0)
		return 0;
	if (rc == 0)
		ed_model_eval_release(ev);
	ed_model_close(m);
	return -1;
}

/* The evaluated tensor called name, or NULL. */
static const struct ed_tensor *eval_tensor(const struct ed_eval *ev,
					   const char *name)
{
	for (size_t j = 0; j < ev->n; j++)
		if (strcmp(ev->t[j].name, name) == 0)
			return &ev->t[j];
	return NULL;
}

static void golden_model(const char *name, int threads)
{
	char dir[512], err[512];
	struct ed_model *m;
	struct ed_eval ev;
	struct ed_st *exp;
	int rc, compared = 0;

	golden_dir(name, dir, sizeof dir);
	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "%s: %s", name, err);
	if (rc || golden_eval(m, name, dir, threads, &ev, &exp))
		return;
	for (size_t i = 0; i < ed_model_st_count(exp); i++) {
		const struct ed_tensor *e = ed_model_st_at(exp, i),
				       *g = eval_tensor(&ev, e->name);
		int64_t n = ed_model_tensor_numel(e);

		CHECK(g != NULL, "%s: no tensor %s", name, e->name);
		if (!g)
			continue;
		CHECK(g->ndim == e->ndim &&
			  memcmp(g->shape, e->shape, 8 * (size_t)e->ndim) == 0,
		      "%s: %s shape differs", name, e->name);
		if (ed_model_tensor_numel(g) != n)
			continue;
		compared++;
		if (strncmp(e->name, "router_topk_ids", 15) == 0) {
			CHECK(t_golden_sets(g, e), "%s: %s differ as sets",
			      name, e->name);
			continue;
		}
		CHECK(t_golden_rel(g, e) <= t_golden_rtol(e),
		      "%s: %s rel err %g (rtol %g)", name, e->name,
		      t_golden_rel(g, e), t_golden_rtol(e));
	}
	CHECK(compared == (int)ed_model_st_count(exp), "%s: compared %d of %zu",
	      name, compared, ed_model_st_count(exp));
	ed_model_st_close(exp);
	ed_model_eval_release(&ev);
	ed_model_close(m);
}

/* The int8 vision option on a golden model: the float path's numbers
 * are the golden ones, the option's stay near them (as make bench
 * prints) and give the same tokens; without VNNI it is refused. */
static void golden_vision_int8(const char *name)
{
	char dir[512], err[512];
	struct ed_model *m;
	struct ed_eval ev;
	struct ed_st *exp;
	const struct ed_tensor *g, *e;
	enum ed_isa was = ed_k_isa();

	golden_dir(name, dir, sizeof dir);
	if (ed_model_open(&m, dir, NULL, NULL, err, sizeof err))
		return;
	ed_k_isa_limit(ED_ISA_AVX2);
	CHECK_INT(ed_model_set_vision_int8(m, err, sizeof err), ED_EINVAL);
	CHECK(strstr(err, "VNNI") != NULL, "%s", err);
	ed_k_isa_limit(was);
	if (!ed_k_has_vnni()) {
		ed_model_close(m);
		return;
	}
	CHECK_INT(ed_model_set_vision_int8(m, err, sizeof err), 0);
	if (golden_eval(m, name, dir, 2, &ev, &exp)) {
		ed_model_close(m);
		return;
	}
	g = eval_tensor(&ev, "projector_out");
	e = ed_model_st_find(exp, "projector_out");
	CHECK(g && e && t_golden_rel(g, e) > 1e-4 && t_golden_rel(g, e) < 0.03,
	      "%s int8 vision: projector_out rel err %g", name,
	      g && e ? t_golden_rel(g, e) : -1);
	g = eval_tensor(&ev, "gen_tokens");
	e = ed_model_st_find(exp, "gen_tokens");
	CHECK(g && e && t_golden_rel(g, e) == 0,
	      "%s int8 vision: the same greedy tokens", name);
	e = ed_model_st_find(exp, "patch_embed_out");
	g = eval_tensor(&ev, "patch_embed_out");
	CHECK(g && e && t_golden_rel(g, e) <= t_golden_rtol(e),
	      "%s int8 vision: the patch embedding stays float", name);
	ed_model_st_close(exp);
	ed_model_eval_release(&ev);
	ed_model_close(m);
}

static void test_golden_models(void)
{
	golden_model("a_text_only", 1);
	golden_model("b_one_image", 2);
	golden_model("c_two_images", 3);
	golden_model("d_untied_image", 2);
	golden_model("e_text_moe", 2);
	golden_model("f_text_dense", 1);
	golden_vision_int8("b_one_image");
	golden_vision_int8("d_untied_image");
}

/* ---- tokenizer against Debian's sentencepiece ------------------------ */

static char tmp[512];

#define sh t_sh

static const char *tok_lines[] = {
    "Hello world, the quick brown fox.",
    "  leading,   runs   of    spaces  and trailing   ",
    "文字识别 and 模型 文档图像处理",
    "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89 here",
    "combining e\xcc\x81 and a\xcc\x88 marks",
    "unknown \xe2\x98\x83 symbols \xe2\x9a\x9b \xe2\x88\x91",
    "bad bytes \xff\xfe in \xc3 the middle",
    "tabs\tand\tmore",
    "digits 12345 67 0.5",
    "\xef\xac\x81 ligature \xef\xbc\xa1\xef\xbc\xa2 fullwidth",
    "invoice total amount page document",
    "the <|X|> quick <|X|><|X|>ick",
    "",
    "     ",
};

static void compare_spm(const char *model, const char *label)
{
	char path[700], lines[700], ref[700], err[256];
	struct ed_tokenizer *t;
	unsigned char *data;
	size_t len;
	FILE *f;
	int rc, mismatches = 0;

	snprintf(lines, sizeof lines, "%s/lines.txt", tmp);
	snprintf(ref, sizeof ref, "%s/ref.txt", tmp);
	f = fopen(lines, "w");
	for (size_t i = 0; i < ED_ARRAY_LEN(tok_lines); i++)
		fprintf(f, "%s\n", tok_lines[i]);
	fclose(f);
	rc = sh("spm_encode --model='%s' --output_format=id < '%s' > '%s' "
		"2>/dev/null",
		model, lines, ref);
	CHECK(rc == 0, "spm_encode failed (is the sentencepiece package "
		       "installed?)");
	if (rc)
		return;
	snprintf(path, sizeof path, "%s", model);
	data = t_read_file(path, &len);
	rc = ed_tok_open_mem(&t, data, len, err, sizeof err);
	free(data);
	CHECK(rc == 0, "%s: %s", label, err);
	if (rc)
		return;
	f = fopen(ref, "r");
	for (size_t i = 0; i < ED_ARRAY_LEN(tok_lines); i++) {
		char want[8192] = "", got[8192] = "";
		int32_t *ids = NULL;
		size_t n = 0, o = 0;
		if (!fgets(want, sizeof want, f))
			break;
		want[strcspn(want, "\n")] = '\0';
		ed_tok_encode_spm(t, tok_lines[i], strlen(tok_lines[i]), &ids,
				  &n);
		for (size_t k = 0; k < n && o < sizeof got - 16; k++)
			o += (size_t)snprintf(got + o, sizeof got - o,
					      k ? " %d" : "%d", ids[k]);
		if (strcmp(got, want)) {
			mismatches++;
			fprintf(stderr, "%s line %zu: got '%s' want '%s'\n",
				label, i, got, want);
		}
		free(ids);
	}
	fclose(f);
	CHECK(mismatches == 0, "%s: %d lines differ from spm_encode", label,
	      mismatches);
	ed_tok_close(t);
}

static void test_tokenizer(void)
{
	char dir[700], model[800], err[256];
	struct ed_tokenizer *t;
	int rc;

	snprintf(dir, sizeof dir, "%s/tok", tmp);
	rc = sh("sh tests/mktok.sh '%s'", dir);
	CHECK(rc == 0, "tests/mktok.sh failed (spm_train missing?)");
	if (rc)
		return;
	snprintf(model, sizeof model, "%s/tokenizer.model", dir);
	compare_spm(model, "nmt_nfkc");
	/* identity normalization, no dummy prefix, whitespace kept, and
	 * user-defined symbols */
	rc = sh(
	    "cd '%s' && printf 'the quick brown fox\\n文字 识别 模型\\n' > "
	    "c.txt "
	    "&& for i in 1 2 3 4 5 6; do cat c.txt c.txt > d.txt && mv d.txt "
	    "c.txt; done && spm_train --input=c.txt --model_prefix=ident "
	    "--vocab_size=400 --hard_vocab_limit=false --model_type=bpe "
	    "--byte_fallback=true "
	    "--normalization_rule_name=identity --add_dummy_prefix=false "
	    "--remove_extra_whitespaces=false "
	    "--user_defined_symbols='<|X|>,ick' "
	    "--character_coverage=1.0 --minloglevel=2 > /dev/null 2>&1",
	    tmp);
	CHECK(rc == 0, "spm_train (identity) failed");
	if (!rc) {
		snprintf(model, sizeof model, "%s/ident.model", tmp);
		compare_spm(model, "identity");
	}

	/* added tokens and decoding */
	rc = ed_tok_open(&t, dir, err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	CHECK_INT(ed_tok_size(t), 409);
	CHECK_INT(ed_tok_id(t, "<|IMAGE_START|>"), 403);
	CHECK_INT(ed_tok_id(t, "</s>"), 2);
	CHECK_STR(ed_tok_piece(t, 408), "</think>");
	{
		const char *s =
		    "<|begin_of_sentence|>User: the fox<|IMAGE_START|>"
		    "<|IMAGE_PLACEHOLDER|><|IMAGE_END|>文字 识别\n";
		int32_t *ids = NULL;
		size_t n = 0;
		struct ed_buf b;
		CHECK_INT(ed_tok_encode(t, s, strlen(s), &ids, &n), 0);
		CHECK(n > 8 && ids[0] == 400, "first id %d", n ? ids[0] : -1);
		{
			int seen = 0;
			for (size_t i = 0; i < n; i++)
				seen += ids[i] == 403 || ids[i] == 402 ||
					ids[i] == 404;
			CHECK_INT(seen, 3);
		}
		ed_buf_init(&b, 0);
		ed_tok_decode(t, ids, n, false, &b);
		CHECK(b.data && strstr(b.data, "User: the fox<|IMAGE_START|>"),
		      "decode '%s'", b.data ? b.data : "");
		ed_buf_reset(&b);
		ed_tok_decode(t, ids, n, true, &b);
		CHECK(b.data && !strstr(b.data, "IMAGE"),
		      "special skipped '%s'", b.data ? b.data : "");
		ed_buf_release(&b);
		free(ids);
	}
	/* byte fallback decodes back to the original bytes */
	{
		const char *s = "snow \xe2\x98\x83 man \xf0\x9f\x98\x80";
		int32_t *ids = NULL;
		size_t n = 0;
		struct ed_buf b;
		ed_tok_encode_spm(t, s, strlen(s), &ids, &n);
		ed_buf_init(&b, 0);
		ed_tok_decode(t, ids, n, true, &b);
		CHECK(b.data && strcmp(b.data, s) == 0, "round trip '%s'",
		      b.data ? b.data : "");
		ed_buf_release(&b);
		free(ids);
	}
	/* byte pieces as spm_decode reassembles them: controls kept, each
	 * byte of a broken sequence U+FFFD; a NUL byte dropped; a long run
	 * with a character across the decoder's 64-byte window (a fuzz_encode
	 * finding: it came out as three U+FFFD) */
	{
		static const int head[] = {0x0D, 0x0A, 0x05, 0x7F, 0x41,
					   0xFF, 0xE2, 0x98, 0x41, 0xE2,
					   0x98, 0x83, 0xC3, 0x00, 0x42};
		int bytes[15 + 47 + 3 + 70];
		int32_t ids[ED_ARRAY_LEN(bytes)];
		for (size_t i = 0; i < ED_ARRAY_LEN(bytes); i++)
			bytes[i] = i < 15 ? head[i] : i < 62 ? 0x05 : 0;
		bytes[62] = 0xE8, bytes[63] = 0xAF, bytes[64] = 0xAD;
		for (size_t i = 65; i < ED_ARRAY_LEN(bytes); i++)
			bytes[i] = i % 3 ? (i % 3 == 1 ? 0xE6 : 0x96) : 0x87;
		char p[700], piece[16];
		unsigned char *want;
		size_t wn = 0, n = 0;
		struct ed_buf b;
		FILE *f;
		snprintf(p, sizeof p, "%s/byteids.txt", tmp);
		f = fopen(p, "w");
		for (size_t i = 0; i < ED_ARRAY_LEN(bytes); i++) {
			snprintf(piece, sizeof piece, "<0x%02X>", bytes[i]);
			ids[n] = ed_tok_id(t, piece);
			CHECK(ids[n] >= 0, "no piece %s", piece);
			if (bytes[i])
				fprintf(f, i ? " %d" : "%d", ids[n]);
			n++;
		}
		fprintf(f, "\n");
		fclose(f);
		rc = sh("spm_decode --model='%s/tokenizer.model' "
			"--input_format=id < '%s' > '%s.out' 2>/dev/null",
			dir, p, p);
		CHECK_INT(rc, 0);
		snprintf(p + strlen(p), sizeof p - strlen(p), ".out");
		want = t_read_file(p, &wn);
		ed_buf_init(&b, 0);
		ed_tok_decode(t, ids, n, true, &b);
		CHECK(want && wn > 0 && b.len == wn - 1 &&
			  memcmp(b.data, want, wn - 1) == 0,
		      "byte pieces: %zu bytes, spm_decode %zu", b.len,
		      wn ? wn - 1 : 0);
		CHECK(b.len > 10 && memcmp(b.data,
					   "\r\n\x05\x7f"
					   "A\xef\xbf\xbd",
					   8) == 0,
		      "controls kept, 0xFF replaced");
		{
			bool kept = false;
			for (size_t i = 0; i + 4 <= b.len && !kept; i++)
				kept =
				    !memcmp(b.data + i, "\x05\xe8\xaf\xad", 4);
			CHECK(kept, "a character across the byte window kept");
		}
		ed_buf_release(&b);
		free(want);
	}
	ed_tok_close(t);
	/* a unigram model is refused with a clear message */
	rc = sh("cd '%s' && spm_train --input=c.txt --model_prefix=uni "
		"--vocab_size=30 --model_type=unigram --minloglevel=2 "
		"> /dev/null 2>&1",
		tmp);
	if (!rc) {
		unsigned char *data;
		size_t len;
		snprintf(model, sizeof model, "%s/uni.model", tmp);
		data = t_read_file(model, &len);
		CHECK_INT(ed_tok_open_mem(&t, data, len, err, sizeof err),
			  ED_EFORMAT);
		CHECK(strstr(err, "unigram") != NULL, "%s", err);
		free(data);
	}
}

/* ---- tiny models in the real layout ---------------------------------- */

#define build_dir t_build_dir

static int mkmodel(const char *dir, const char *opts)
{
	return sh("'%s/tests/mkmodel' '%s' %s", build_dir(), dir, opts);
}

struct tokens {
	int n;
	int32_t ids[64];
};

static int keep_token(void *ud, int32_t id, const char *text, size_t len)
{
	struct tokens *t = ud;
	(void)text, (void)len;
	if (id >= 0 && t->n < 64)
		t->ids[t->n++] = id;
	return 0;
}

static void test_tiny_vl(void)
{
	char dir[700], tok[700], err[512];
	struct ed_model *m;
	struct ed_model_info info;
	struct ed_model_ids ids;
	int rc;

	snprintf(tok, sizeof tok, "%s/tok", tmp);
	snprintf(dir, sizeof dir, "%s/vl", tmp);
	rc = sh(
	    "'%s/tests/mkmodel' '%s' --layout vl --shards 3 --tokenizer '%s'",
	    build_dir(), dir, tok);
	CHECK(rc == 0, "mkmodel vl");
	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "tiny vl: %s", err);
	if (rc)
		return;
	ed_model_get_info(m, &info);
	CHECK(info.has_vision && info.rope_3d && info.layers == 3 &&
		  info.moe_layers == 2 && info.n_shards == 3 &&
		  info.vocab == 409 && info.has_tokenizer &&
		  info.n_unknown == 0,
	      "info: vision %d layers %d moe %d shards %d vocab %d",
	      info.has_vision, info.layers, info.moe_layers, info.n_shards,
	      info.vocab);
	CHECK_STR(info.arch, "ernie4_5_moe_vl");
	{
		/* the parameter count from the config equals the tensors' */
		int64_t sum = 0;
		for (int k = 1; k <= 3; k++) {
			char p[800];
			struct ed_st *st;
			snprintf(p, sizeof p,
				 "%s/model-%05d-of-00003.safetensors", dir, k);
			if (ed_model_st_open(&st, p, err, sizeof err) == 0) {
				for (size_t i = 0; i < ed_model_st_count(st);
				     i++)
					sum += ed_model_tensor_numel(
					    ed_model_st_at(st, i));
				ed_model_st_close(st);
			}
		}
		CHECK(info.params == sum, "params %lld, tensors hold %lld",
		      (long long)info.params, (long long)sum);
	}
	ed_model_get_ids(m, &ids);
	CHECK(ids.image == 402 && ids.image_start == 403 &&
		  ids.image_end == 404 && ids.end_of_sentence == 401 &&
		  ids.eos == 2,
	      "special ids %d %d %d %d", ids.image, ids.image_start,
	      ids.image_end, ids.end_of_sentence);

	/* the chat template, with an image expanded to its placeholders */
	{
		float *px = calloc(8 * 4 * 588, sizeof *px);
		struct ed_image_in im = {px, 1, 4, 8};
		struct ed_chat_part parts[2] = {{NULL, &im},
						{"Read the page.", NULL}};
		struct ed_chat c = {
		    "You are ERNIE.", parts, 2, false, NULL, false};
		struct ed_prompt p;
		char *text = ed_model_chat_text(m, &c);
		CHECK_STR(
		    text,
		    "<|begin_of_sentence|>You are ERNIE.\nUser: Picture 1:"
		    "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>Read "
		    "the page.\nAssistant: <think>\n\n</think>\n\n");
		free(text);
		c.thinking = true;
		text = ed_model_chat_text(m, &c);
		CHECK(text && strstr(text, "Assistant: <think>") &&
			  !strstr(text, "</think>"),
		      "thinking prompt");
		free(text);
		c.thinking = false;
		CHECK_INT(ed_model_prompt_chat(m, &c, &p, err, sizeof err), 0);
		{
			/* 4x8 patches -> 2x4 = 8 placeholders at (s, s+r, s+c),
			 * then text continues at s + 4 */
			size_t first = 0, cnt = 0;
			for (size_t i = 0; i < p.n; i++)
				if (p.mm[i]) {
					if (!cnt)
						first = i;
					cnt++;
				}
			CHECK_INT(cnt, 8);
			CHECK(p.vision[first - 1] && p.vision[first + 8] &&
				  !p.vision[first - 2],
			      "image start/end route to vision");
			CHECK(p.pos[first] == (int32_t)first &&
				  p.pos[p.n + first + 5] ==
				      (int32_t)first + 1 &&
				  p.pos[2 * p.n + first + 5] ==
				      (int32_t)first + 1,
			      "image positions");
			CHECK(p.pos[first + 8] == (int32_t)first + 4,
			      "text after the image at s + max(2, 4)");
			CHECK_INT(p.rope_delta, 4 - 8);
		}
		/* generation: deterministic across runs and thread counts, and
		 * the callback sees every token */
		{
			struct ed_session *s1, *s3;
			struct ed_gen_params g = {.max_new_tokens = 10};
			struct ed_gen_result r1, r3;
			struct tokens tk = {0};
			ed_session_new(&s1, m,
				       &(struct ed_session_opts){
					   .threads = 1, .max_ctx = 512},
				       err, sizeof err);
			ed_session_new(&s3, m,
				       &(struct ed_session_opts){
					   .threads = 3, .max_ctx = 512},
				       err, sizeof err);
			CHECK_INT(ed_session_generate(s1, &p, &g, keep_token,
						      &tk, &r1, err,
						      sizeof err),
				  0);
			CHECK_INT(ed_session_generate(s3, &p, &g, NULL, NULL,
						      &r3, err, sizeof err),
				  0);
			CHECK(r1.n_tokens == r3.n_tokens &&
				  memcmp(r1.tokens, r3.tokens,
					 r1.n_tokens * sizeof *r1.tokens) == 0,
			      "1 and 3 threads generate the same tokens");
			CHECK(r1.text && r3.text &&
				  strcmp(r1.text, r3.text) == 0,
			      "same text");
			CHECK((size_t)tk.n == r1.n_tokens,
			      "callback saw %d of %zu", tk.n, r1.n_tokens);
			CHECK(strcmp(r1.finish_reason, "length") == 0 ||
				  strcmp(r1.finish_reason, "stop") == 0,
			      "finish %s", r1.finish_reason);
			ed_gen_result_release(&r1);
			ed_gen_result_release(&r3);
			/* sampling with a seed is reproducible */
			g.temperature = 0.9f;
			g.top_p = 0.9f;
			g.top_k = 50;
			g.seed = 7;
			ed_session_generate(s1, &p, &g, NULL, NULL, &r1, err,
					    sizeof err);
			ed_session_generate(s3, &p, &g, NULL, NULL, &r3, err,
					    sizeof err);
			CHECK(r1.n_tokens == r3.n_tokens &&
				  memcmp(r1.tokens, r3.tokens,
					 r1.n_tokens * sizeof *r1.tokens) == 0,
			      "seeded sampling repeats");
			ed_gen_result_release(&r1);
			ed_gen_result_release(&r3);
			/* a prompt longer than the context is refused */
			{
				struct ed_session *tiny;
				ed_session_new(&tiny, m,
					       &(struct ed_session_opts){
						   .threads = 1, .max_ctx = 8},
					       err, sizeof err);
				CHECK_INT(ed_session_generate(tiny, &p, &g,
							      NULL, NULL, &r1,
							      err, sizeof err),
					  ED_ETOOBIG);
				ed_session_free(tiny);
			}
			ed_session_free(s1);
			ed_session_free(s3);
		}
		ed_model_prompt_release(&p);
		/* placeholders that do not match the image are an error */
		{
			int32_t bad[3] = {1, 402, 402};
			struct ed_image_in one = {px, 1, 4, 8};
			CHECK_INT(ed_model_prompt_ids(m, bad, 3, &one, 1, &p,
						      err, sizeof err),
				  ED_EINVAL);
			CHECK_INT(ed_model_prompt_ids(m, bad, 3, NULL, 0, &p,
						      err, sizeof err),
				  ED_EINVAL);
		}
		free(px);
	}
	ed_model_close(m);
}

static void test_sampler(void)
{
	float logits[4] = {0.5f, 2.0f, 2.0f, -1.0f};
	float two[2] = {0.0f, logf(3.0f)};
	struct ed_gen_params g = {0};
	uint64_t rng = 1;
	int ones = 0;

	CHECK_INT(ed_model_sample(logits, 4, &g, &rng), 1); /* first of ties */
	g.temperature = 1.0f;
	g.top_k = 1;
	CHECK_INT(ed_model_sample(logits, 4, &g, &rng), 1);
	g.top_k = 0;
	for (int i = 0; i < 20000; i++)
		ones += ed_model_sample(two, 2, &g, &rng) == 1;
	CHECK(ones > 14600 && ones < 15400, "p(1) = 0.75: %d of 20000", ones);
	g.top_p = 0.5f; /* only the most likely remains */
	ones = 0;
	for (int i = 0; i < 1000; i++)
		ones += ed_model_sample(two, 2, &g, &rng) == 1;
	CHECK_INT(ones, 1000);
}

static void test_text_only(void)
{
	char dir[700], err[512];
	struct ed_model *m;
	struct ed_model_info info;
	int rc;

	snprintf(dir, sizeof dir, "%s/text", tmp);
	rc = mkmodel(dir, "--layout text --shards 2 --experts 8 --moe-k 2 "
			  "--shared 1 --vocab 300");
	CHECK(rc == 0, "mkmodel text");
	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "text-only model: %s", err);
	if (rc)
		return;
	ed_model_get_info(m, &info);
	CHECK(!info.has_vision && !info.rope_3d && info.experts[1] == 0 &&
		  info.moe_layers == 2 && !info.has_tokenizer,
	      "text-only info");
	{
		int32_t ids[6] = {1, 5, 9, 33, 7, 2};
		struct ed_prompt p;
		struct ed_session *s;
		const float *logits;
		CHECK_INT(ed_model_prompt_ids(m, ids, 6, NULL, 0, &p, err,
					      sizeof err),
			  0);
		CHECK(p.rope_delta == 0 && p.pos[5] == 5 && p.pos[6 + 5] == 5,
		      "1-D positions");
		ed_session_new(
		    &s, m,
		    &(struct ed_session_opts){.threads = 2, .max_ctx = 64}, err,
		    sizeof err);
		CHECK_INT(ed_session_prefill(s, &p, &logits, err, sizeof err),
			  0);
		CHECK(isfinite(logits[0]) && isfinite(logits[299]),
		      "finite logits");
		ed_session_free(s);
		ed_model_prompt_release(&p);
	}
	ed_model_close(m);
	/* no tokenizer: the chat template is a configuration error */
}

/* Generation stops at the end-of-sequence id: the golden model's greedy
 * continuation is 1007 708 951 ..., so with 951 as EOS it stops after two
 * tokens; with ignore_eos it runs to max_new_tokens. */
static void test_stop(void)
{
	char src[512], dir[700], err[512];
	struct ed_model *m;
	struct ed_session *s;
	struct ed_prompt p;
	struct ed_gen_result r;
	struct ed_gen_params g = {.max_new_tokens = 6};
	struct ed_st *st;
	const struct ed_tensor *t;
	int32_t ids[64];
	size_t n;
	int rc;

	t_shared("golden/a_text_only", src, sizeof src);
	snprintf(dir, sizeof dir, "%s/stop", tmp);
	sh("rm -rf '%s' && mkdir '%s' && cp '%s'/model.safetensors '%s'/ && "
	   "sed 's/\"eos_token_id\": 2/\"eos_token_id\": 951/' "
	   "'%s'/config.json > "
	   "'%s'/config.json",
	   dir, dir, src, dir, src, dir);
	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	snprintf(src + strlen(src), sizeof src - strlen(src),
		 "/expected.safetensors");
	ed_model_st_open(&st, src, err, sizeof err);
	t = ed_model_st_find(st, "input_ids");
	n = (size_t)ed_model_tensor_numel(t);
	for (size_t i = 0; i < n && i < 64; i++)
		ids[i] = (int32_t)ed_model_tensor_get(t, (int64_t)i);
	ed_model_st_close(st);
	ed_model_prompt_ids(m, ids, n, NULL, 0, &p, err, sizeof err);
	ed_session_new(&s, m,
		       &(struct ed_session_opts){.threads = 2, .max_ctx = 128},
		       err, sizeof err);
	CHECK_INT(
	    ed_session_generate(s, &p, &g, NULL, NULL, &r, err, sizeof err), 0);
	CHECK(r.n_tokens == 2 && r.tokens[0] == 1007 && r.tokens[1] == 708 &&
		  strcmp(r.finish_reason, "stop") == 0,
	      "stop: %zu tokens, %s", r.n_tokens, r.finish_reason);
	ed_gen_result_release(&r);
	g.ignore_eos = true;
	CHECK_INT(
	    ed_session_generate(s, &p, &g, NULL, NULL, &r, err, sizeof err), 0);
	CHECK(r.n_tokens == 6 && r.tokens[2] == 951 && r.tokens[5] == 278 &&
		  strcmp(r.finish_reason, "length") == 0,
	      "ignore_eos: %zu tokens, %s", r.n_tokens, r.finish_reason);
	ed_gen_result_release(&r);
	ed_session_free(s);
	ed_model_prompt_release(&p);
	ed_model_close(m);
}

/* Damage a copy of the tiny model and check the loader's message. */
static void expect_load_error(const char *dir, const char *what, int want_rc,
			      const char *want_msg)
{
	struct ed_model *m;
	char err[512] = "";
	int rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);

	CHECK(rc == want_rc && strstr(err, want_msg),
	      "%s: rc %d '%s' (want %d, '%s')", what, rc, err, want_rc,
	      want_msg);
	if (!rc)
		ed_model_close(m);
}

/* A copy of a GGUF file with the bytes of `from` (each occurrence in
 * the header) replaced by `to`, of the same length; or, with type >= 0,
 * the ggml type of the tensor named `from` set to it. */
static void gguf_patch(const char *src, const char *dst, const char *from,
		       const char *to, int type)
{
	size_t len = 0, n = strlen(from);
	unsigned char *d = t_read_file(src, &len);
	FILE *f;

	if (!d)
		return;
	for (size_t i = 0; i + n + 8 <= len && i < 1 << 20; i++) {
		if (memcmp(d + i, from, n) != 0)
			continue;
		if (type < 0) {
			memcpy(d + i, to, n);
		} else {
			/* name, u32 ndim, ndim u64 dims, u32 type */
			uint64_t sl;
			uint32_t nd;
			int32_t ty = type;
			memcpy(&sl, d + i - 8, 8);
			if (sl != n)
				continue;
			memcpy(&nd, d + i + n, 4);
			memcpy(d + i + n + 4 + 8 * nd, &ty, 4);
			break;
		}
	}
	f = fopen(dst, "wb");
	if (f) {
		fwrite(d, 1, len, f);
		fclose(f);
	}
	free(d);
}

/* llama.cpp files that are wrong: each named, ED_ECONFIG (exit 78) */
static void test_llama_errors(void)
{
	char src[700], ok[700], bad[700], err[512];
	int rc;

	t_shared("golden/e_text_moe", src, sizeof src);
	snprintf(ok, sizeof ok, "%s/e.llama.gguf", tmp);
	snprintf(bad, sizeof bad, "%s/e.bad.gguf", tmp);
	rc = ed_model_quantize_layout(src, ok, ed_model_quant_kind("q8_0"),
				      ED_LAYOUT_LLAMA, 1, NULL, NULL, err,
				      sizeof err);
	CHECK(rc == 0, "llama.cpp layout: %s", err);
	if (rc)
		return;
	gguf_patch(ok, bad, "ernie4_5-moe", "ernie4_5-vlx", -1);
	expect_load_error(bad, "unknown architecture", ED_ECONFIG,
			  "architecture 'ernie4_5-vlx' is not an ERNIE-4.5 "
			  "text model");
	gguf_patch(ok, bad, "blk.1.ffn_up_exps.weight", NULL, 16);
	expect_load_error(bad, "IQ2_XXS", ED_ECONFIG,
			  "'blk.1.ffn_up_exps.weight' is ggml type IQ2_XXS = "
			  "16, which ernie-doc does not read");
	gguf_patch(ok, bad, "blk.2.attn_q.weight", "blk.2.attn_x.weight", -1);
	expect_load_error(bad, "missing tensor", ED_ECONFIG,
			  "tensor 'blk.2.attn_q.weight' is missing");
	gguf_patch(ok, bad, "blk.0.ffn_gate.weight", "blk.0.ffn_gate.wei_ht",
		   -1);
	expect_load_error(bad, "missing dense tensor", ED_ECONFIG,
			  "tensor 'blk.0.ffn_gate.weight' is missing");
	/* a key nothing reads (as in llama.cpp) changes nothing */
	gguf_patch(ok, bad, "ernie4_5-moe.expert_shared_count",
		   "ernie4_5-moe.expert_shared_coun_", -1);
	expect_load_error(bad, "renamed key (harmless)", 0, "");
	gguf_patch(ok, bad, "ernie4_5-moe.expert_feed_forward_length",
		   "ernie4_5-moe.expert_feed_forward_lengtX", -1);
	expect_load_error(bad, "missing key", ED_ECONFIG,
			  "needs expert_count, expert_used_count, "
			  "expert_feed_forward_length");
	gguf_patch(ok, bad, "blk.1.exp_probs_b.bias", "blk.1.exp_probs_b.bia_",
		   -1);
	expect_load_error(bad, "extra tensor", ED_ECONFIG,
			  "tensor 'blk.1.exp_probs_b.bia_' is not part of the "
			  "ernie4_5_moe layout");
}

static void test_loader_errors(void)
{
	char dir[700], src[700];

	snprintf(src, sizeof src, "%s/vl", tmp);
	snprintf(dir, sizeof dir, "%s/bad", tmp);
	/* a truncated shard */
	sh("rm -rf '%s' && cp -r '%s' '%s' && truncate -s 100000 "
	   "'%s/model-00002-of-00003.safetensors'",
	   dir, src, dir, dir);
	expect_load_error(dir, "truncated shard", ED_ECONFIG, "outside the");
	/* a config that disagrees with the tensors */
	sh("rm -rf '%s' && cp -r '%s' '%s' && sed -i 's/\"intermediate_size\": "
	   "128/\"intermediate_size\": 96/' '%s/config.json'",
	   dir, src, dir, dir);
	expect_load_error(
	    dir, "wrong shape", ED_ECONFIG,
	    "'model.layers.0.mlp.gate_proj.weight' has shape [128, 64], "
	    "config.json implies [96, 64]");
	/* a missing shard file */
	sh("rm -rf '%s' && cp -r '%s' '%s' && rm "
	   "'%s/model-00003-of-00003.safetensors'",
	   dir, src, dir, dir);
	expect_load_error(dir, "missing shard", ED_ENOENT, "cannot open");
	/* a tensor missing from the files (one more layer in the config) */
	sh("rm -rf '%s' && cp -r '%s' '%s' && sed -i 's/\"num_hidden_layers\": "
	   "3/\"num_hidden_layers\": 4/; s/\"moe_layer_end_index\": \\[4, 3\\]/"
	   "\"moe_layer_end_index\": [5, 4]/' '%s/config.json'",
	   dir, src, dir, dir);
	expect_load_error(
	    dir, "missing tensor", ED_ECONFIG,
	    "tensor 'model.layers.3.input_layernorm.weight' is missing");
	/* a shard name that escapes the directory */
	sh("rm -rf '%s' && cp -r '%s' '%s' && sed -i "
	   "'s/model-00001-of-00003.safetensors/..\\/..\\/x.safetensors/' "
	   "'%s/model.safetensors.index.json'",
	   dir, src, dir, dir);
	expect_load_error(dir, "path in index", ED_ECONFIG,
			  "is not a file in the model directory");
	/* no config at all */
	expect_load_error(tmp, "no config", ED_ENOENT, "config.json");
}

static void test_split_thinking(void)
{
	static const struct {
		const char *in, *reasoning, *content;
	} cases[] = {
	    {"<think>\nLook at the table.\n</think>\n\n# Title",
	     "Look at the table.", "# Title"},
	    {"no tags at all", NULL, "no tags at all"},
	    {"reasoning only before</think>answer", "reasoning only before",
	     "answer"},
	    {"</think>", "", ""},
	    {"  <think>a</think>b</think>c", "a", "b</think>c"},
	};

	for (size_t i = 0; i < ED_ARRAY_LEN(cases); i++) {
		char *r = NULL, *c = NULL;
		CHECK_INT(ed_split_thinking(cases[i].in, &r, &c), 0);
		if (cases[i].reasoning)
			CHECK_STR(r, cases[i].reasoning);
		else
			CHECK(r == NULL, "case %zu: no reasoning", i);
		CHECK_STR(c, cases[i].content);
		free(r);
		free(c);
	}
}

/* The reply parsers (remote.c) on the bytes of tests/fuzz/corpus/sse
 * (first byte: bit 0 stream, 1 thinking, 2 tools), each stream also cut
 * into pieces of 1 to 40 bytes: the same answer however it arrives. */
static void test_reply_parse(void)
{
	static const struct {
		const char *file;
		int rc;
		const char *content, *reasoning, *finish, *call, *args;
		int64_t out;
	} cases[] = {
	    {"stream-plain", 0, "# Title\nBody text, end.", NULL, "stop", NULL,
	     NULL, 3},
	    {"stream-toolcall", 0, "", "Let me look. The table.", "tool_calls",
	     "image_zoom_in_tool",
	     "{\"bbox_2d\": [10, 20, 500, 600], \"label\": \"table\"}", 2},
	    {"stream-crlf-think-textcall", 0, "The answer ", "thinking here",
	     "tool_calls", "image_zoom_in_tool", "{\"bbox_2d\":[1,2,300,400]}",
	     2},
	    {"stream-error", ED_EAGAIN, NULL, NULL, NULL, NULL, NULL, 0},
	    {"stream-truncated", ED_EAGAIN, NULL, NULL, NULL, NULL, NULL, 0},
	    {"stream-comments", 0, "x", NULL, "stop", NULL, NULL, 1},
	    {"json-plain", 0, "Hello\xc3\xa9 \xe4\xb8\xad", "hmm", "length",
	     NULL, NULL, 7},
	    {"json-toolcall-object", 0, "", NULL, "tool_calls",
	     "image_zoom_in_tool", "{\"bbox_2d\":[0,0,1000,1000]}", 0},
	    {"json-error", ED_EFORMAT, NULL, NULL, NULL, NULL, NULL, 0},
	};
	for (size_t i = 0; i < ED_ARRAY_LEN(cases); i++) {
		char path[256], err[256];
		unsigned char *p;
		size_t len = 0;
		bool stream;
		struct ed_request req = {0};
		snprintf(path, sizeof path, "tests/fuzz/corpus/sse/%s",
			 cases[i].file);
		if (!(p = t_read_file(path, &len)) || len < 1) {
			CHECK(0, "cannot read %s", path);
			free(p);
			continue;
		}
		stream = p[0] & 1;
		req.thinking = p[0] & 2;
		req.tools = p[0] & 4;
		for (size_t chunk = 0; chunk <= (stream ? 40 : 0); chunk++) {
			struct ed_response o;
			int rc =
			    remote_parse_reply(p + 1, len - 1, stream, chunk,
					       &req, &o, err, sizeof err);
			CHECK(rc == cases[i].rc, "%s/%zu: rc %d (%s)",
			      cases[i].file, chunk, rc, rc ? err : "");
			if (rc || cases[i].rc)
				continue;
			CHECK_STR(o.content, cases[i].content);
			if (cases[i].reasoning)
				CHECK_STR(o.reasoning, cases[i].reasoning);
			else
				CHECK(!o.reasoning, "%s: no reasoning",
				      cases[i].file);
			CHECK_STR(o.finish_reason, cases[i].finish);
			if (cases[i].call) {
				CHECK_STR(o.call.name, cases[i].call);
				CHECK_STR(o.call.arguments, cases[i].args);
			} else
				CHECK(!o.call.name && !o.call.raw,
				      "%s: no call", cases[i].file);
			CHECK(o.tokens_out == cases[i].out, "%s: %lld tokens",
			      cases[i].file, (long long)o.tokens_out);
			ed_response_release(&o);
		}
		if (!strcmp(cases[i].file, "stream-error")) {
			struct ed_response o;
			remote_parse_reply(p + 1, len - 1, true, 0, &req, &o,
					   err, sizeof err);
			CHECK(strstr(err, "CUDA out of memory") != NULL, "%s",
			      err);
		}
		free(p);
	}
}

static size_t forced_len(struct ed_backend *b, const char *text)
{
	int32_t *ids = NULL;
	size_t n = 0;

	ed_tok_encode(ed_model_tokenizer(ed_backend_model(b)), text,
		      strlen(text), &ids, &n);
	free(ids);
	return n;
}

/* The zoom loop on the native engine: a forced tool call, the tool
 * result (a second image) appended to the cached conversation, and the
 * continuation equal to generating from the whole prompt afresh. */
static void test_conversation(void)
{
	static const char call[] =
	    "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": "
	    "{\"bbox_2d\": [0, 0, 500, 500], \"label\": \"top\"}}</tool_call>";
	char dir[700], err[512];
	struct ed_backend *b;
	struct ed_backend_opts bo = {0};
	float *px = calloc(8 * 4 * 588, sizeof *px);
	float *zx = calloc(4 * 4 * 588, sizeof *zx);
	struct ed_image_in page = {px, 1, 4, 8}, zoom = {zx, 1, 4, 4};
	struct ed_req_part parts[2] = {{NULL, &page, NULL, 0},
				       {"Read the page.", NULL, NULL, 0}};
	struct ed_req_part reply[2] = {{NULL, &zoom, NULL, 0},
				       {"Zoomed.", NULL, NULL, 0}};
	struct ed_request rq = {.parts = parts,
				.n_parts = 2,
				.thinking = true,
				.tools = true,
				.gen = {.max_new_tokens = 200},
				.force_text = call};
	struct ed_conv *c;
	struct ed_response r1, r2;
	struct ed_prompt p0 = {0};
	const struct ed_prompt *p1;
	int rc;

	for (size_t i = 0; i < 8 * 4 * 588; i++)
		px[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
	for (size_t i = 0; i < 4 * 4 * 588; i++)
		zx[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
	snprintf(dir, sizeof dir, "%s/vl", tmp);
	bo.model_dir = dir;
	rc = ed_backend_open(&b, &bo, err, sizeof err);
	CHECK(rc == 0, "backend: %s", err);
	if (rc)
		goto out;
	rc = ed_conv_start(b, &rq, &c, &r1, err, sizeof err);
	CHECK(rc == 0, "start: %s", err);
	if (rc) {
		ed_backend_close(b);
		goto out;
	}
	CHECK_STR(r1.finish_reason, "tool_calls");
	CHECK_STR(r1.call.name, "image_zoom_in_tool");
	CHECK_STR(r1.call.arguments,
		  "{\"bbox_2d\":[0,0,500,500],\"label\":\"top\"}");
	CHECK_INT(r1.tokens_out, (long long)forced_len(b, call));
	{
		/* the tool list is in the prompt */
		struct ed_buf t;
		const struct ed_prompt *p = ed_conv_prompt(c);
		ed_buf_init(&t, 0);
		ed_tok_decode(ed_model_tokenizer(ed_backend_model(b)), p->ids,
			      p->n, false, &t);
		CHECK(strstr(t.data, "<tool_list>") &&
			  strstr(t.data, "[{\"type\": \"function\"") &&
			  strstr(t.data, "image_zoom_in_tool"),
		      "tool list: %.200s", t.data);
		ed_buf_release(&t);
		p0.n = p->n;
		p0.ids = malloc(p->n * sizeof *p0.ids);
		p0.pos = malloc(3 * p->n * sizeof *p0.pos);
		memcpy(p0.ids, p->ids, p->n * sizeof *p0.ids);
		memcpy(p0.pos, p->pos, 3 * p->n * sizeof *p0.pos);
	}
	rc = ed_conv_reply(c, reply, 2, 6, &r2, err, sizeof err);
	CHECK(rc == 0, "reply: %s", err);
	p1 = ed_conv_prompt(c);
	if (!rc && p1) {
		const struct ed_tokenizer *tok =
		    ed_model_tokenizer(ed_backend_model(b));
		struct ed_buf t;
		size_t gen_end, first = 0, cnt = 0;
		bool prefix = p1->n > p0.n;
		for (size_t i = 0; prefix && i < p0.n; i++)
			prefix = p1->ids[i] == p0.ids[i] &&
				 p1->pos[i] == p0.pos[i] &&
				 p1->pos[p1->n + i] == p0.pos[p0.n + i] &&
				 p1->pos[2 * p1->n + i] == p0.pos[2 * p0.n + i];
		CHECK(prefix, "the first step's prompt is kept as it was");
		/* then the forced call, as generated */
		ed_buf_init(&t, 0);
		for (gen_end = p0.n; gen_end < p1->n; gen_end++) {
			ed_buf_reset(&t);
			ed_tok_decode(tok, p1->ids + p0.n, gen_end - p0.n + 1,
				      true, &t);
			if (strcmp(t.data, call) == 0)
				break;
		}
		CHECK(gen_end < p1->n, "the tool call's tokens follow");
		gen_end++;
		/* then the tool result, with the zoomed image's 2x2 tokens */
		ed_buf_reset(&t);
		ed_tok_decode(tok, p1->ids + gen_end, p1->n - gen_end, false,
			      &t);
		for (size_t i = gen_end; i < p1->n; i++)
			if (p1->mm[i]) {
				if (!cnt)
					first = i;
				cnt++;
			}
		CHECK_INT(cnt, 4);
		{
			/* the template's text, as this tokenizer spells it */
			static const char want[] =
			    "<|end_of_sentence|>User: \n<tool_output>\nPicture "
			    "2:<|IMAGE_START|><|IMAGE_PLACEHOLDER|>"
			    "<|IMAGE_PLACEHOLDER|><|IMAGE_PLACEHOLDER|>"
			    "<|IMAGE_PLACEHOLDER|><|IMAGE_END|>Zoomed."
			    "\n</tool_output>\n\nAssistant: <think>";
			int32_t *wid = NULL;
			size_t wn = 0;
			struct ed_buf wt;
			ed_buf_init(&wt, 0);
			ed_tok_encode(tok, want, strlen(want), &wid, &wn);
			ed_tok_decode(tok, wid, wn, false, &wt);
			CHECK(wn == p1->n - gen_end &&
				  memcmp(wid, p1->ids + gen_end,
					 wn * sizeof *wid) == 0,
			      "tool result: '%s', want '%s'", t.data, wt.data);
			free(wid);
			ed_buf_release(&wt);
		}
		ed_buf_release(&t);
		if (cnt == 4) {
			/* positions: the image's cells at (s, s+r, s+c) after
			 * the text before it, the text after at s + 2 */
			int32_t s0 = p1->pos[first - 1] + 1;
			CHECK(p1->pos[first] == s0 &&
				  p1->pos[first + 3] == s0 &&
				  p1->pos[p1->n + first + 2] == s0 + 1 &&
				  p1->pos[2 * p1->n + first + 1] == s0 + 1 &&
				  p1->pos[first + 4] == s0 + 2,
			      "zoom image positions");
			CHECK(p1->vision[first - 1] && p1->vision[first + 4],
			      "image start/end route to vision");
		}
		CHECK(r2.tokens_out >= 1 && r2.tokens_out <= 6,
		      "continued %lld tokens", (long long)r2.tokens_out);
		/* what ran: the call's last token (not yet in the cache when
		 * generation stopped) and the tool result */
		CHECK_INT(r2.tokens_in, (long long)(p1->n - gen_end + 1));
		/* the cache extended = the whole conversation afresh */
		{
			struct ed_session *s;
			struct ed_gen_params g = {.max_new_tokens = 6};
			struct ed_gen_result fr;
			struct ed_prompt full;
			struct ed_image_in ims[2] = {page, zoom};
			char *re = NULL, *co = NULL;
			ed_model_prompt_ids(ed_backend_model(b), p1->ids, p1->n,
					    ims, 2, &full, err, sizeof err);
			ed_session_new(&s, ed_backend_model(b),
				       &(struct ed_session_opts){
					   .threads = 1, .max_ctx = 2048},
				       err, sizeof err);
			CHECK_INT(ed_session_generate(s, &full, &g, NULL, NULL,
						      &fr, err, sizeof err),
				  0);
			ed_split_thinking(fr.text ? fr.text : "", &re, &co);
			CHECK(co && r2.content && strcmp(co, r2.content) == 0,
			      "continued '%s', afresh '%s'", r2.content, co);
			free(re);
			free(co);
			ed_gen_result_release(&fr);
			ed_session_free(s);
			ed_model_prompt_release(&full);
		}
	}
	ed_response_release(&r1);
	ed_response_release(&r2);
	ed_conv_end(c);
	ed_backend_close(b);
out:
	free(p0.ids);
	free(p0.pos);
	free(px);
	free(zx);
}

/* ---- quantized blocks ------------------------------------------------ */

static uint64_t qrng = 88172645463325252ull;
static uint32_t qrand(void)
{
	qrng ^= qrng << 13;
	qrng ^= qrng >> 7;
	qrng ^= qrng << 17;
	return (uint32_t)(qrng >> 32);
}
static float qgauss(void)
{
	float u = (qrand() + 1.0f) / 4294967297.0f, v = qrand() / 4294967296.0f;
	return sqrtf(-2 * logf(u)) * cosf(6.2831853f * v);
}

/* The layouts of spec/QUANT.md written out again, independently: every
 * weight of a block from its bytes. */
static float spec_weight(enum ed_dtype dt, const uint8_t *b, int j)
{
	uint16_t h;
	switch (dt) {
	case ED_DT_Q8_0:
		memcpy(&h, b, 2);
		return ed_k_f16_to_f32(h) * (int8_t)b[2 + j];
	case ED_DT_Q4_0:
		memcpy(&h, b, 2);
		return ed_k_f16_to_f32(h) *
		       ((j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4) - 8);
	case ED_DT_Q4_K: {
		uint16_t hd, hm;
		const uint8_t *sc = b + 4, *qs = b + 16;
		int sub = j / 32, chunk = j / 64, sv, mv, q;
		memcpy(&hd, b, 2);
		memcpy(&hm, b + 2, 2);
		if (sub < 4) {
			sv = sc[sub] & 63;
			mv = sc[sub + 4] & 63;
		} else {
			sv = (sc[sub + 4] & 15) | ((sc[sub - 4] >> 6) << 4);
			mv = (sc[sub + 4] >> 4) | ((sc[sub] >> 6) << 4);
		}
		q = j % 64 < 32 ? qs[32 * chunk + j % 32] & 15
				: qs[32 * chunk + j % 32] >> 4;
		return ed_k_f16_to_f32(hd) * sv * q - ed_k_f16_to_f32(hm) * mv;
	}
	case ED_DT_Q6_K: {
		const uint8_t *ql = b, *qh = b + 128;
		const int8_t *sc = (const int8_t *)(b + 192);
		int half = j / 128, l = j % 128, q, is;
		memcpy(&h, b + 208, 2);
		ql += 64 * half;
		qh += 32 * half;
		sc += 8 * half;
		is = (l % 32) / 16;
		switch (l / 32) {
		case 0: q = (ql[l] & 15) | ((qh[l] & 3) << 4); break;
		case 1:
			q = (ql[l] & 15) | (((qh[l - 32] >> 2) & 3) << 4);
			is += 2;
			break;
		case 2:
			q = (ql[l - 64] >> 4) | (((qh[l - 64] >> 4) & 3) << 4);
			is += 4;
			break;
		default:
			q = (ql[l - 64] >> 4) | (((qh[l - 96] >> 6) & 3) << 4);
			is += 6;
			break;
		}
		return ed_k_f16_to_f32(h) * sc[is] * (q - 32);
	}
	case ED_DT_Q4_1:
	case ED_DT_Q5_1: {
		/* d, m, (qh,) qs: d q + m */
		uint16_t hm;
		uint32_t qh = 0;
		const uint8_t *qs = b + (dt == ED_DT_Q4_1 ? 4 : 8);
		int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
		memcpy(&h, b, 2);
		memcpy(&hm, b + 2, 2);
		if (dt == ED_DT_Q5_1) {
			memcpy(&qh, b + 4, 4);
			q |= (int)((qh >> j) & 1) << 4;
		}
		return ed_k_f16_to_f32(h) * q + ed_k_f16_to_f32(hm);
	}
	case ED_DT_Q5_0: {
		uint32_t qh;
		const uint8_t *qs = b + 6;
		int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
		memcpy(&h, b, 2);
		memcpy(&qh, b + 2, 4);
		q |= (int)((qh >> j) & 1) << 4;
		return ed_k_f16_to_f32(h) * (q - 16);
	}
	case ED_DT_IQ4_NL:
	case ED_DT_IQ4_XS: {
		static const int K[16] = {-127, -104, -83, -65, -49, -35,
					  -22,	-10,  1,   13,	25,  38,
					  53,	69,   89,  113};
		float d;
		const uint8_t *qs;
		int i;
		memcpy(&h, b, 2);
		d = ed_k_f16_to_f32(h);
		if (dt == ED_DT_IQ4_NL) {
			qs = b + 2;
			i = j % 32;
		} else {
			/* sub-block j / 32: a 6-bit scale, an IQ4_NL layout */
			uint16_t sh;
			int sb = j / 32, ls;
			memcpy(&sh, b + 2, 2);
			ls = ((b[4 + sb / 2] >> (4 * (sb % 2))) & 15) |
			     (((sh >> (2 * sb)) & 3) << 4);
			d = d * (ls - 32);
			qs = b + 8 + 16 * sb;
			i = j % 32;
		}
		return d * K[i < 16 ? qs[i] & 15 : qs[i - 16] >> 4];
	}
	case ED_DT_Q2_K:
	case ED_DT_Q3_K: {
		/* two bits per weight, four weights 32 apart in a byte */
		const uint8_t *qs = b + (dt == ED_DT_Q2_K ? 16 : 32);
		int q =
		    (qs[32 * (j / 128) + j % 32] >> (2 * ((j / 32) % 4))) & 3;
		int s = j / 16;
		if (dt == ED_DT_Q2_K) {
			uint16_t hm;
			memcpy(&h, b + 80, 2);
			memcpy(&hm, b + 82, 2);
			return ed_k_f16_to_f32(h) * (b[s] & 15) * q -
			       ed_k_f16_to_f32(hm) * (b[s] >> 4);
		} else {
			const uint8_t *sc = b + 96;
			int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
			int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
			int hb = (b[j % 32] >> (j / 32)) & 1;
			memcpy(&h, b + 108, 2);
			return ed_k_f16_to_f32(h) * ((lo | (hi << 4)) - 32) *
			       (hb ? q : q - 4);
		}
	}
	case ED_DT_Q5_K: {
		/* Q4_K's scales and nibbles, a fifth bit from qh */
		uint16_t hd, hm;
		const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
		int sub = j / 32, sv, mv, q;
		memcpy(&hd, b, 2);
		memcpy(&hm, b + 2, 2);
		if (sub < 4) {
			sv = sc[sub] & 63;
			mv = sc[sub + 4] & 63;
		} else {
			sv = (sc[sub + 4] & 15) | ((sc[sub - 4] >> 6) << 4);
			mv = (sc[sub + 4] >> 4) | ((sc[sub] >> 6) << 4);
		}
		q = sub % 2 ? qs[32 * (j / 64) + j % 32] >> 4
			    : qs[32 * (j / 64) + j % 32] & 15;
		q |= ((qh[j % 32] >> sub) & 1) << 4;
		return ed_k_f16_to_f32(hd) * sv * q - ed_k_f16_to_f32(hm) * mv;
	}
	default: return 0;
	}
}

/* A block in hex (spaces ignored) into b; its length. */
static size_t hex_block(const char *hex, uint8_t *b)
{
	size_t n = 0;

	for (; *hex; hex++) {
		unsigned v;
		if (*hex == ' ')
			continue;
		sscanf(hex, "%2x", &v);
		b[n++] = (uint8_t)v;
		hex++;
	}
	return n;
}

/* spec/QUANT.md's worked checks: ggml's own values for these bytes */
static void test_quant_worked(void)
{
	static const struct {
		enum ed_dtype dt;
		const char *hex;
		int idx[12];
		float want[12];
	} cases[] = {
	    {ED_DT_Q4_1,
	     "0038 00bc 1032547698badcfef0e1d2c3b4a59687",
	     {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 31, -1},
	     {-1, 0, 1, 2, 3, 4, 5, 6, -0.5f, 0.5f, 3}},
	    {ED_DT_Q5_0,
	     "0034 a5000080 0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	     {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 31, -1},
	     {3.75f, -0.5f, 3.25f, -1, -1.25f, 2.5f, -1.75f, 2, -4, -3.75f,
	      3.75f}},
	    {ED_DT_Q5_1,
	     "0038 00c8 a5000080 0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	     {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 31, -1},
	     {7.5f, -1, 6.5f, -2, -2.5f, 5, -3.5f, 4, -8, -7.5f, 7.5f}},
	    {ED_DT_IQ4_NL,
	     "0038 1032547698badcfef0e1d2c3b4a59687",
	     {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 31, -1},
	     {-63.5f, -41.5f, -24.5f, -11, 0.5f, 12.5f, 26.5f, 44.5f, -52,
	      -32.5f, 0.5f}},
	};
	static const struct {
		enum ed_dtype dt;
		const char *head, *rep, *tail;
		int nrep, idx[12];
		float want[12];
	} big[] = {
	    {ED_DT_Q2_K,
	     "32415763 7a819ca5 b3c1d7e2 f9051426",
	     "e41b00ff39c6728d",
	     "0038 0034",
	     8,
	     {0, 1, 2, 3, 4, 5, 6, 7, 40, 100, 200, 255},
	     {-0.75f, 2.25f, -0.75f, 2.25f, 0.25f, 1.25f, 1.25f, 0.25f, 2.25f,
	      -2.25f, 5.25f, 5.5f}},
	    {ED_DT_Q3_K,
	     "",
	     "",
	     "",
	     0,
	     {0, 1, 2, 3, 4, 5, 6, 7, 40, 100, 200, 255},
	     {0, -0.5f, 0, -0.5f, 0.5f, -1, 1, -1.5f, 21, -24, 9, -7.5f}},
	    {ED_DT_Q5_K,
	     "0038 0034 c3458709 4284c608 21436587",
	     "",
	     "",
	     0,
	     {0, 1, 2, 3, 4, 5, 6, 7, 40, 100, 200, 255},
	     {23.5f, 2.5f, 29.5f, 8.5f, 35.5f, 14.5f, 41.5f, 20.5f, 1.5f, 38.5f,
	      -13.5f, 106.5f}},
	    {ED_DT_IQ4_XS,
	     "0034 4e1b a3876543",
	     "1032547698badcfef0e1d2c3b4a59687",
	     "",
	     8,
	     {0, 1, 2, 3, 4, 5, 6, 7, 40, 100, 200, 255},
	     {-95.25f, -62.25f, -36.75f, -16.5f, 0.75f, 18.75f, 39.75f, 66.75f,
	      -825.5f, -2, 412.75f, -7}},
	};
	uint8_t b[256];
	float y[256];

	for (size_t c = 0; c < ED_ARRAY_LEN(cases); c++) {
		size_t n = hex_block(cases[c].hex, b);
		int bad = 0;
		CHECK_INT(n, ed_k_row_bytes(cases[c].dt, 32));
		ed_k_dequantize_row(cases[c].dt, b, y, 32);
		for (int i = 0; i < 12 && cases[c].idx[i] >= 0; i++)
			bad += y[cases[c].idx[i]] != cases[c].want[i] ||
			       spec_weight(cases[c].dt, b, cases[c].idx[i]) !=
				   cases[c].want[i];
		CHECK(bad == 0, "%s: %d of the worked values differ",
		      ed_model_dtype_name(cases[c].dt), bad);
	}
	for (size_t c = 0; c < ED_ARRAY_LEN(big); c++) {
		size_t n = 0;
		int bad = 0;
		enum ed_dtype dt = big[c].dt;
		if (dt == ED_DT_Q3_K) {
			/* hmask (8 bytes)x4, qs (8 bytes)x8, scales, d */
			for (int r = 0; r < 4; r++)
				n += hex_block("05fa0ff033cc55aa", b + n);
			for (int r = 0; r < 8; r++)
				n += hex_block("e41b00ff39c6728d", b + n);
			n += hex_block("a2b3c4d5e6f708191e2d3c4b 0034", b + n);
		} else if (dt == ED_DT_Q5_K) {
			n += hex_block(big[c].head, b + n);
			for (int r = 0; r < 4; r++)
				n += hex_block("05fa0ff033cc55aa", b + n);
			for (int r = 0; r < 16; r++)
				n += hex_block("1032547698badcfe", b + n);
		} else {
			n += hex_block(big[c].head, b + n);
			for (int r = 0; r < big[c].nrep; r++)
				n += hex_block(big[c].rep, b + n);
			n += hex_block(big[c].tail, b + n);
		}
		CHECK_INT(n, ed_k_row_bytes(dt, 256));
		ed_k_dequantize_row(dt, b, y, 256);
		for (int i = 0; i < 12; i++)
			bad +=
			    y[big[c].idx[i]] != big[c].want[i] ||
			    spec_weight(dt, b, big[c].idx[i]) != big[c].want[i];
		CHECK(bad == 0, "%s: %d of the worked values differ",
		      ed_model_dtype_name(dt), bad);
	}
}

/* int16 activations: each value within half a step of its block's
 * scale, sums of 16 exact */
/* K not a multiple of the 256-column passes, rows not a multiple of a
 * work item: the many-row integer path against the reference */
static void test_qgemm_odd(void)
{
	static const enum ed_dtype dts[] = {ED_DT_Q8_0, ED_DT_Q4_0};
	const int M = 20, N = 9, K = 160;
	struct ed_pool *pool;

	ed_pool_new(&pool, 2);
	for (size_t t = 0; t < ED_ARRAY_LEN(dts); t++) {
		enum ed_dtype dt = dts[t];
		size_t rb = ed_k_row_bytes(dt, K);
		float x[20 * 160], w[160], y[20 * 9], r[20 * 9];
		uint8_t *wq = malloc(rb * N);
		double worst = 0;
		for (int i = 0; i < M * K; i++)
			x[i] = frand();
		for (int n = 0; n < N; n++) {
			for (int k = 0; k < K; k++)
				w[k] = frand();
			ed_k_quantize_row(dt, w, wq + rb * (size_t)n, K);
		}
		ed_k_matmul(pool, y, x, M, wq, dt, N, K, NULL);
		if (dt == ED_DT_Q8_0 || !ed_k_has_vnni()) /* float-like */
			ed_k_matmul_ref(r, x, M, wq, dt, N, K, NULL);
		else /* int8 activations: the one-row path's arithmetic */
			for (int m = 0; m < M; m++)
				ed_k_matmul(pool, r + m * N, x + m * K, 1, wq,
					    dt, N, K, NULL);
		for (int i = 0; i < M * N; i++)
			worst = fmax(worst, fabs(y[i] - r[i]));
		/* sums of 160 terms of about 0.25: int16 activations within
		 * 5e-5 of that; int8 ones equal to M = 1 up to float order */
		CHECK(worst < (dt == ED_DT_Q8_0 ? 2e-3 : 1e-4),
		      "%s K=160: off by %g", ed_model_dtype_name(dt), worst);
		free(wq);
	}
	ed_pool_free(pool);
}

static void test_act16(void)
{
	const int K = 256;
	float x[256], d[8];
	int16_t q[256];
	int32_t s16[16];
	int bad = 0;

	for (int j = 0; j < K; j++)
		x[j] = qgauss() * (j < 32 ? 0 : 1 + j % 7);
	ed_k_quantize_act16(x, K, q, d, s16);
	for (int j = 0; j < K; j++)
		bad +=
		    fabsf(d[j / 32] * q[j] - x[j]) > 0.5f * d[j / 32] * 1.0001f;
	for (int h = 0; h < 16; h++) {
		int32_t s = 0;
		for (int j = 16 * h; j < 16 * h + 16; j++)
			s += q[j];
		bad += s != s16[h];
	}
	CHECK(bad == 0 && d[0] == 0 && q[5] == 0 && d[1] > 0,
	      "int16 activations: %d off", bad);
	{
		float d2[8];
		int16_t q2[256];
		int32_t s2[16];
		ed_k_quantize_act16_level(ed_k_isa_best(), x, K, q2, d2, s2);
		CHECK(memcmp(q, q2, sizeof q) == 0 &&
			  memcmp(d, d2, sizeof d) == 0 &&
			  memcmp(s16, s2, sizeof s2) == 0,
		      "int16 activations: %s differs from portable",
		      ed_k_isa_name(ed_k_isa_best()));
	}
	{
		/* int8 activations at the best level: the one-row path's */
		int8_t q8[256], q9[256];
		float d8[8], d9[8], ds8[8], ds9[8];
		int16_t s8[16], s9[16];
		struct ed_qact a = {q8, d8, s8, ds8, 0},
			       b = {q9, d9, s9, ds9, 0};
		ed_k_quantize_act(x, K, &a);
		ed_k_quantize_act8_level(ed_k_isa_best(), x, K, &b);
		CHECK(memcmp(q8, q9, sizeof q8) == 0 &&
			  memcmp(d8, d9, sizeof d8) == 0 &&
			  memcmp(s8, s9, sizeof s8) == 0 &&
			  memcmp(ds8, ds9, sizeof ds8) == 0,
		      "int8 activations: %s differs from portable",
		      ed_k_isa_name(ed_k_isa_best()));
	}
}

static void test_quant(void)
{
	static const enum ed_dtype dts[] = {
	    ED_DT_Q8_0, ED_DT_Q4_0, ED_DT_Q4_K, ED_DT_Q6_K,
	    ED_DT_Q4_1, ED_DT_Q5_0, ED_DT_Q5_1, ED_DT_IQ4_NL,
	    ED_DT_Q2_K, ED_DT_Q3_K, ED_DT_Q5_K, ED_DT_IQ4_XS};
	/* the largest relative RMS error quantizing Gaussian weights (the
	 * further formats' quantizers are plain ones, qblocks.c) */
	static const double max_rms[] = {0.008, 0.10, 0.085, 0.025, 0.09, 0.055,
					 0.05,	0.09, 0.36,  0.17,  0.05, 0.09};
	/* where each block keeps its fp16 fields */
	static const int f16_at[][2] = {{0, -1},  {0, -1},   {0, 2}, {208, -1},
					{0, 2},	  {0, -1},   {0, 2}, {0, -1},
					{80, 82}, {108, -1}, {0, 2}, {0, -1}};
	static const int block_bytes[] = {34, 18, 144, 210, 20,	 22,
					  24, 18, 84,  110, 176, 136};
	static const int Ks[] = {256, 512, 2560};
	enum ed_isa best = ed_k_isa_best();

	for (size_t t = 0; t < ED_ARRAY_LEN(dts); t++) {
		enum ed_dtype dt = dts[t];
		int bl = ed_k_block(dt), K = 1024;
		size_t rb = ed_k_row_bytes(dt, K);
		uint8_t *raw = malloc(rb);
		float *x = malloc(K * sizeof *x), *y = malloc(K * sizeof *y);
		double se = 0, sx = 0;
		int bad = 0;

		CHECK_INT(rb, (size_t)K / bl * (size_t)block_bytes[t]);
		/* random bytes, with finite small fp16 scales: every weight as
		 * the spec's formulas give it */
		for (size_t i = 0; i < rb; i++)
			raw[i] = (uint8_t)qrand();
		for (int b = 0; b < K / bl; b++) {
			size_t o = (size_t)b * (rb / (size_t)(K / bl));
			uint16_t h = ed_k_f32_to_f16(0.01f + 0.001f * (b % 7));
			memcpy(raw + o + f16_at[t][0], &h, 2);
			if (f16_at[t][1] >= 0)
				memcpy(raw + o + f16_at[t][1], &h, 2);
		}
		ed_k_dequantize_row(dt, raw, y, K);
		for (int j = 0; j < K; j++) {
			size_t o = (size_t)(j / bl) * (rb / (size_t)(K / bl));
			if (y[j] != spec_weight(dt, raw + o, j % bl))
				bad++;
		}
		CHECK(bad == 0, "%s: %d weights differ from the spec layout",
		      ed_model_dtype_name(dt), bad);
		/* quantizing: the error is small, and zeros stay zeros */
		for (int j = 0; j < K; j++)
			x[j] = qgauss() * (1 + (j / 256) % 3);
		CHECK_INT(ed_k_quantize_row(dt, x, raw, K), 0);
		ed_k_dequantize_row(dt, raw, y, K);
		for (int j = 0; j < K; j++) {
			se += (double)(x[j] - y[j]) * (x[j] - y[j]);
			sx += (double)x[j] * x[j];
		}
		CHECK(sqrt(se / sx) < max_rms[t], "%s: relative RMS error %g",
		      ed_model_dtype_name(dt), sqrt(se / sx));
		memset(x, 0, K * sizeof *x);
		ed_k_quantize_row(dt, x, raw, K);
		ed_k_dequantize_row(dt, raw, y, K);
		bad = 0;
		for (int j = 0; j < K; j++)
			bad += y[j] != 0;
		CHECK(bad == 0, "%s: zeros", ed_model_dtype_name(dt));
		CHECK_INT(ed_k_quantize_row(dt, x, raw, K - bl / 2), ED_EINVAL);
		{
			/* unpacked integers: both levels give the same, and
			 * scale * u - minv is the dequantized weight */
			int G = ed_k_unpack_group(dt);
			uint16_t *u0 = malloc(K * 2), *u1 = malloc(K * 2);
			float *s0 = malloc(K / G * 4), *m0 = malloc(K / G * 4),
			      *s1 = malloc(K / G * 4), *m1 = malloc(K / G * 4);
			int diff = 0, off = 0;
			for (int j = 0; j < K; j++)
				x[j] = qgauss() * (1 + (j / 64) % 5);
			ed_k_quantize_row(dt, x, raw, K);
			ed_k_dequantize_row(dt, raw, y, K);
			ed_k_unpack_q(ED_ISA_PORTABLE, dt, raw, K, u0, s0, m0);
			ed_k_unpack_q(ed_k_isa_best(), dt, raw, K, u1, s1, m1);
			for (int j = 0; j < K; j++) {
				float v = s0[j / G] * u0[j] - m0[j / G];
				diff += u0[j] != u1[j] || u0[j] > 255;
				off += fabsf(v - y[j]) >
				       1e-6f * (fabsf(y[j]) + fabsf(m0[j / G]));
			}
			diff += memcmp(s0, s1, K / G * 4) != 0 ||
				memcmp(m0, m1, K / G * 4) != 0;
			CHECK(diff == 0 && off == 0,
			      "%s unpacked: %d differ between levels, %d off "
			      "the dequantized row",
			      ed_model_dtype_name(dt), diff, off);
			free(u0), free(u1), free(s0), free(m0), free(s1),
			    free(m1);
		}
		free(raw);
		free(x);
		free(y);

		/* dot products: every instruction set against the reference */
		for (size_t k = 0; k < ED_ARRAY_LEN(Ks); k++) {
			int KK = Ks[k];
			float *w = malloc(KK * sizeof *w), *ax = malloc(KK * 4);
			uint8_t *wq = malloc(ed_k_row_bytes(dt, KK));
			int8_t *aq = malloc(KK);
			float *ad = malloc(KK / 32 * sizeof *ad);
			int16_t *as = malloc(KK / 16 * sizeof *as);
			float *ads = malloc(KK / 32 * sizeof *ads);
			struct ed_qact a = {aq, ad, as, ads, 0};
			double ref, mag = 0;
			for (int j = 0; j < KK; j++) {
				w[j] = qgauss();
				ax[j] = qgauss() * 3;
			}
			ed_k_quantize_row(dt, w, wq, KK);
			ed_k_quantize_act(ax, KK, &a);
			{
				/* the activation blocks and their sums */
				int wrong = 0;
				for (int g = 0; g < KK / 16; g++) {
					int sum = 0;
					for (int j = 0; j < 16; j++)
						sum += aq[16 * g + j];
					wrong += sum != as[g];
				}
				for (int j = 0; j < KK; j++)
					wrong +=
					    fabsf(ad[j / 32] * aq[j] - ax[j]) >
					    ad[j / 32] * 0.5f + 1e-6f;
				CHECK(wrong == 0, "activation blocks");
			}
			ref = ed_k_qdot_ref(dt, wq, &a, KK);
			for (int j = 0; j < KK; j++)
				mag += fabs((double)w[j] * ax[j]);
			for (int isa = 0; isa <= (int)best; isa++) {
				/* each kernel on activations in its own group
				 * and order */
				int8_t *q2 = malloc(KK);
				float *d2 = malloc(KK / 32 * sizeof *d2),
				      *ds2 = malloc(KK / 16 * sizeof *ds2);
				int16_t *s2 = malloc(KK / 16 * sizeof *s2);
				struct ed_qact a2 = {q2, d2, s2, ds2, 0};
				double ref2 = ref;
				float got;
				if (ed_k_act_group((enum ed_isa)isa, dt) ==
				    256) {
					struct ed_qact ap = a2;
					int8_t *qp = malloc(KK);
					ap.q = qp;
					ed_k_quantize_act256(ED_ISA_PORTABLE,
							     ax, KK, &ap);
					ed_k_quantize_act256((enum ed_isa)isa,
							     ax, KK, &a2);
					CHECK(memcmp(qp, q2, KK) == 0 &&
						  memcmp(ap.d, d2,
							 KK / 256 * 4) == 0,
					      "%s: group-256 activations "
					      "equal the portable ones",
					      ed_k_isa_name((enum ed_isa)isa));
					CHECK(a2.group == 256, "group %d",
					      a2.group);
					ref2 = ed_k_qdot_ref(dt, wq, &a2, KK);
					free(qp);
				} else {
					memcpy(q2, aq, KK);
					memcpy(d2, ad, KK / 32 * 4);
					memcpy(ds2, ads, KK / 32 * 4);
					memcpy(s2, as, KK / 16 * 2);
				}
				ed_k_act_order((enum ed_isa)isa, dt, &a2, KK);
				got = ed_k_qdot((enum ed_isa)isa, dt, wq, &a2,
						KK);
				free(q2);
				free(d2);
				free(ds2);
				free(s2);
				CHECK(fabs(got - ref2) <= 1e-5 * mag,
				      "%s K=%d %s: %g, reference %g",
				      ed_model_dtype_name(dt), KK,
				      ed_k_isa_name((enum ed_isa)isa), got,
				      ref2);
				/* group 256 changes the sum by the coarser
				 * activations only */
				CHECK(fabs(ref2 - ref) <= 0.02 * mag,
				      "%s K=%d: %g against %g with group 32",
				      ed_model_dtype_name(dt), KK, ref2, ref);
			}
			free(w);
			free(ax);
			free(wq);
			free(aq);
			free(ad);
			free(as);
			free(ads);
		}
		/* matrix products over quantized weights: M = 1 (int8
		 * activations), M > 1 (with VNNI int16 activations for Q8_0
		 * and the one-row path's int8 for the others, else dequantized
		 * panels) and the dequantized panels themselves, against the
		 * float reference and, on int8, row by row against M = 1 */
		{
			static const int Ms[] = {1, 3, 7, 16, 17, 33, 50};
			struct ed_pool *pool;
			int N = 37, KK = 512;
			float *w = malloc((size_t)N * KK * sizeof *w);
			uint8_t *wq =
			    malloc(ed_k_row_bytes(dt, KK) * (size_t)N);
			float *xx = malloc(50 * KK * sizeof *xx);
			float *bias = malloc(N * sizeof *bias);
			float *ym = malloc(50 * N * sizeof *ym),
			      *yr = malloc(50 * N * 4),
			      *yd = malloc(50 * N * 4), *yq1 = malloc(N * 4);
			ed_pool_new(&pool, 2);
			for (int i = 0; i < N * KK; i++)
				w[i] = qgauss();
			for (int i = 0; i < 50 * KK; i++)
				xx[i] = qgauss();
			for (int i = 0; i < N; i++)
				bias[i] = qgauss();
			for (int r = 0; r < N; r++)
				ed_k_quantize_row(dt, w + (size_t)r * KK,
						  wq + ed_k_row_bytes(dt, KK) *
							   (size_t)r,
						  KK);
			for (size_t mi = 0; mi < ED_ARRAY_LEN(Ms); mi++) {
				/* with VNNI: int16 activations for Q8_0, the
				 * one-row path's int8 ones for the others */
				bool i8 = ed_k_has_vnni() && dt != ED_DT_Q8_0;
				int M = Ms[mi], off = 0, offd = 0, off1 = 0;
				double tol = M == 1 || i8      ? 2e-2
					     : ed_k_has_vnni() ? 5e-5
							       : 1e-5;
				ed_k_matmul(pool, ym, xx, M, wq, dt, N, KK,
					    bias);
				ed_k_matmul_ref(yr, xx, M, wq, dt, N, KK, bias);
				ed_k_gemm(pool, ed_k_isa(), yd, xx, M, wq, dt,
					  N, KK, bias);
				for (int m = 0; m < M; m++) {
					if (i8)
						ed_k_matmul(pool, yq1,
							    xx + m * KK, 1, wq,
							    dt, N, KK, bias);
					for (int n = 0; n < N; n++) {
						double mag = fabs(bias[n]);
						for (int k = 0; k < KK; k++)
							mag += fabs(
							    xx[m * KK + k] *
							    w[n * KK + k]);
						off += fabs(ym[m * N + n] -
							    yr[m * N + n]) >
						       tol * mag;
						offd += fabs(yd[m * N + n] -
							     yr[m * N + n]) >
							1e-5 * mag;
						off1 +=
						    i8 &&
						    fabs(ym[m * N + n] -
							 yq1[n]) > 1e-5 * mag;
					}
				}
				CHECK(off == 0 && offd == 0 && off1 == 0,
				      "%s matmul M=%d: %d outputs off, %d "
				      "dequantized, %d from M = 1",
				      ed_model_dtype_name(dt), M, off, offd,
				      off1);
			}
			{
				/* a pair of matrices in one job: each equal to
				 * its own product */
				float *y0 = malloc(50 * N * 4),
				      *y1 = malloc(50 * N * 4);
				size_t half =
				    ed_k_row_bytes(dt, KK) * (size_t)(N / 2);
				int n2 = N / 2;
				ed_k_matmul_pair(pool, y0, y1, xx, 33, wq,
						 wq + half, dt, n2, KK);
				ed_k_matmul(pool, ym, xx, 33, wq, dt, n2, KK,
					    NULL);
				ed_k_matmul(pool, yr, xx, 33, wq + half, dt, n2,
					    KK, NULL);
				CHECK(memcmp(y0, ym, 33 * n2 * 4) == 0 &&
					  memcmp(y1, yr, 33 * n2 * 4) == 0,
				      "%s matmul pair differs",
				      ed_model_dtype_name(dt));
				free(y0), free(y1);
			}
			free(yd);
			free(yq1);
			ed_pool_free(pool);
			free(w);
			free(wq);
			free(xx);
			free(bias);
			free(ym);
			free(yr);
		}
	}
}

/* A golden model quantized into GGUF and evaluated again. bf16 keeps
 * every golden tensor (the GGUF path equals the safetensors path). Q8_0
 * (these models' rows are too short for the K formats, which fall back
 * to it): the image cases generate the same greedy tokens; every case
 * agrees on the top token at most prompt positions, with a small mean
 * KL divergence. The text-only case's random routers flip one expert
 * choice and its generation parts after 4 tokens (see the README). */
static void golden_quantized(const char *name, const char *kind,
			     bool same_tokens)
{
	char dir[512], gguf[700], err[512];
	struct ed_model *m;
	struct ed_eval ev;
	struct ed_st *ref;
	bool bf16 = strcmp(kind, "bf16") == 0;
	int rc, compared = 0;

	golden_dir(name, dir, sizeof dir);
	snprintf(gguf, sizeof gguf, "%s/%s.%s.gguf", tmp, name, kind);
	rc = ed_model_quantize(dir, gguf, ed_model_quant_kind(kind), 2, NULL,
			       NULL, err, sizeof err);
	CHECK(rc == 0, "%s %s: %s", name, kind, err);
	if (rc || ed_model_open(&m, gguf, NULL, NULL, err, sizeof err)) {
		CHECK(0, "%s %s: cannot open: %s", name, kind, err);
		return;
	}
	if (golden_eval(m, name, dir, 1, &ev, &ref))
		return;
	for (size_t i = 0; i < ed_model_st_count(ref); i++) {
		const struct ed_tensor *e = ed_model_st_at(ref, i),
				       *g = eval_tensor(&ev, e->name);
		int64_t n = ed_model_tensor_numel(e);

		if (!g || ed_model_tensor_numel(g) != n ||
		    strncmp(e->name, "router_topk_ids", 15) == 0)
			continue;
		if (!bf16 && strcmp(e->name, "logits") == 0) {
			/* teacher-forced: every prompt position's distribution
			 */
			int64_t V = e->shape[e->ndim - 1], P = n / V, agree = 0;
			double kl = 0;
			for (int64_t t = 0; t < P; t++) {
				int64_t ae = 0, ag = 0;
				double mxe = -1e30, mxg = -1e30, se = 0, sg = 0;
				for (int64_t v = 0; v < V; v++) {
					double xe =
					    ed_model_tensor_get(e, t * V + v);
					double xg =
					    ed_model_tensor_get(g, t * V + v);
					if (xe > mxe)
						mxe = xe, ae = v;
					if (xg > mxg)
						mxg = xg, ag = v;
				}
				for (int64_t v = 0; v < V; v++) {
					se += exp(
					    ed_model_tensor_get(e, t * V + v) -
					    mxe);
					sg += exp(
					    ed_model_tensor_get(g, t * V + v) -
					    mxg);
				}
				for (int64_t v = 0; v < V; v++) {
					double le =
					    ed_model_tensor_get(e, t * V + v) -
					    mxe - log(se);
					double lg =
					    ed_model_tensor_get(g, t * V + v) -
					    mxg - log(sg);
					kl += exp(le) * (le - lg);
				}
				agree += ae == ag;
			}
			compared++;
			CHECK(agree >= P * 85 / 100 && kl / P < 0.06,
			      "%s %s: top-1 agrees at %lld of %lld positions, "
			      "mean KL %g",
			      name, kind, (long long)agree, (long long)P,
			      kl / P);
			continue;
		}
		if (!bf16 &&
		    !(same_tokens && strcmp(e->name, "gen_tokens") == 0))
			continue;
		compared++;
		CHECK(t_golden_rel(g, e) <= t_golden_rtol(e),
		      "%s %s: %s rel err %g (rtol %g)", name, kind, e->name,
		      t_golden_rel(g, e), t_golden_rtol(e));
	}
	{
		/* bf16: every tensor but the id sets */
		int want = same_tokens ? 2 : 1;
		if (bf16) {
			want = 0;
			for (size_t i = 0; i < ed_model_st_count(ref); i++)
				want += strncmp(ed_model_st_at(ref, i)->name,
						"router_topk_ids", 15) != 0;
		}
		CHECK(compared >= want, "%s %s: compared %d of %d", name, kind,
		      compared, want);
	}
	ed_model_st_close(ref);
	ed_model_eval_release(&ev);
	ed_model_close(m);
}

/* ---- batches: a sequence's numbers do not depend on its company ------ */

/* qdot_multi: every vector of a batch equals the vector alone, whatever
 * the grouping, on every instruction set; and the reference */
static void batch_kernel(enum ed_dtype dt)
{
	enum { N = 37, K = 512, NV = 17 };
	size_t rb = ed_k_row_bytes(dt, K);
	uint8_t *w = malloc(rb * N);
	float *x = malloc(sizeof(float) * NV * K), *row = malloc(K * 4);
	enum ed_isa best = ed_k_isa_best();

	for (int n = 0; n < N; n++) {
		for (int k = 0; k < K; k++)
			row[k] = qgauss();
		ed_k_quantize_row(dt, row, w + rb * n, K);
	}
	for (int i = 0; i < NV * K; i++)
		x[i] = qgauss() * (1 + i % 5);
	for (int isa = 0; isa <= (int)best; isa++) {
		enum ed_isa lv = (enum ed_isa)isa;
		struct ed_qact a[NV];
		const struct ed_qact *ap[NV];
		float *y[NV], *y1[NV], *yg[NV];
		int same = 1, near = 1;
		for (int v = 0; v < NV; v++) {
			a[v].q = malloc(K);
			a[v].d = malloc(K / 32 * 4);
			a[v].s16 = malloc(K / 16 * 2);
			a[v].ds = malloc(K / 16 * 4);
			if (ed_k_act_group(lv, dt) == 256)
				ed_k_quantize_act256(lv, x + v * K, K, &a[v]);
			else
				ed_k_quantize_act8_level(lv, x + v * K, K,
							 &a[v]);
			ap[v] = &a[v];
			y[v] = malloc(N * 4);
			y1[v] = malloc(N * 4);
			yg[v] = malloc(N * 4);
		}
		/* the reference on the natural order, then each kernel's */
		for (int v = 0; v < NV; v++)
			for (int n = 0; n < N; n++)
				y1[v][n] = (float)ed_k_qdot_ref(dt, w + rb * n,
								&a[v], K);
		for (int v = 0; v < NV; v++)
			ed_k_act_order(lv, dt, &a[v], K);
		ed_k_qdot_multi(lv, dt, w, rb, N, ap, NV, K, y);
		for (int v = 0; v < NV; v++) {
			float *one[1] = {yg[v]};
			ed_k_qdot_multi(lv, dt, w, rb, N, ap + v, 1, K, one);
			same &= memcmp(yg[v], y[v], N * 4) == 0;
			for (int n = 0; n < N; n++)
				near &= fabsf(y[v][n] - y1[v][n]) <=
					1e-4f * (1 + fabsf(y1[v][n]));
		}
		/* groups of 3, 5 and 9, and the rows in two pieces */
		{
			int at = 0, sizes[3] = {3, 5, 9};
			for (int gi = 0; gi < 3; gi++) {
				ed_k_qdot_multi(lv, dt, w, rb, 20, ap + at,
						sizes[gi], K, yg + at);
				{
					float *rest[9];
					for (int v = 0; v < sizes[gi]; v++)
						rest[v] = yg[at + v] + 20;
					ed_k_qdot_multi(lv, dt, w + rb * 20, rb,
							N - 20, ap + at,
							sizes[gi], K, rest);
				}
				at += sizes[gi];
			}
			for (int v = 0; v < NV; v++)
				same &= memcmp(yg[v], y[v], N * 4) == 0;
		}
		CHECK(same, "%s %s: a batch of %d equals each vector alone",
		      ed_model_dtype_name(dt), ed_k_isa_name(lv), NV);
		CHECK(near, "%s %s: batched products against the reference",
		      ed_model_dtype_name(dt), ed_k_isa_name(lv));
		for (int v = 0; v < NV; v++) {
			free(a[v].q), free(a[v].d), free(a[v].s16),
			    free(a[v].ds);
			free(y[v]), free(y1[v]), free(yg[v]);
		}
	}
	free(w), free(x), free(row);
}

/* ed_k_matvec: mixed products in one job, 1 against 3 threads, a batch
 * against each vector alone, and the reference */
static void batch_matvec(void)
{
	static const enum ed_dtype types[] = {ED_DT_F32,  ED_DT_BF16,
					      ED_DT_Q8_0, ED_DT_Q4_K,
					      ED_DT_Q6_K, ED_DT_Q4_0};
	enum { N = 70, K = 768, NV = 9, T = ED_ARRAY_LEN(types) };
	struct ed_pool *p1, *p3;
	void *w[T];
	float *x = malloc(sizeof(float) * NV * K), *row = malloc(K * 4);
	float *y[2][T][NV], *ya[T][NV], *bias = malloc(N * 4);
	struct ed_mv mv[2][T];
	const float *xp[NV];
	int same = 1, alone = 1, near = 1;

	ed_pool_new(&p1, 1);
	ed_pool_new(&p3, 3);
	for (int i = 0; i < NV * K; i++)
		x[i] = qgauss();
	for (int v = 0; v < NV; v++)
		xp[v] = x + v * K;
	for (int i = 0; i < N; i++)
		bias[i] = qgauss();
	for (int t = 0; t < T; t++) {
		size_t rb = ed_k_row_bytes(types[t], K);
		w[t] = malloc(rb * N);
		for (int n = 0; n < N; n++) {
			for (int k = 0; k < K; k++)
				row[k] = qgauss() * 0.1f;
			ed_k_quantize_row(types[t], row, (char *)w[t] + rb * n,
					  K);
		}
		for (int r = 0; r < 2; r++) {
			for (int v = 0; v < NV; v++)
				y[r][t][v] = malloc(N * 4);
			mv[r][t] = (struct ed_mv){
			    w[t], types[t], N,	    K, t % 2 ? bias : NULL,
			    NV,	  xp,	    y[r][t]};
		}
		for (int v = 0; v < NV; v++)
			ya[t][v] = malloc(N * 4);
	}
	CHECK_INT(ed_k_matvec(p1, mv[0], T), 0);
	CHECK_INT(ed_k_matvec(p3, mv[1], T), 0);
	for (int t = 0; t < T; t++)
		for (int v = 0; v < NV; v++) {
			float ref[N];
			struct ed_mv one = {w[t],   types[t],	   N,
					    K,	    mv[0][t].bias, 1,
					    xp + v, &ya[t][v]};
			same &= memcmp(y[0][t][v], y[1][t][v], N * 4) == 0;
			ed_k_matvec(p3, &one, 1);
			alone &= memcmp(ya[t][v], y[0][t][v], N * 4) == 0;
			ed_k_matmul_ref(ref, xp[v], 1, w[t], types[t], N, K,
					mv[0][t].bias);
			for (int n = 0; n < N; n++) {
				/* int8 activations: each off by at most half
				 * a step, amax / 254 of its group */
				int g =
				    ed_k_is_quant(types[t])
					? ed_k_act_group(ed_k_isa(), types[t])
					: 0;
				double bound = 0, mag = 0;
				ed_k_dequantize_row(
				    types[t],
				    (const char *)w[t] +
					ed_k_row_bytes(types[t], K) * n,
				    row, K);
				for (int k = 0; k < K; k++) {
					double amax = 0;
					for (int j = g ? k / g * g : k;
					     j < (g ? k / g * g + g : k); j++)
						amax =
						    fmax(amax, fabs(xp[v][j]));
					bound += fabs(row[k]) * amax / 254;
					mag += fabs(row[k] * xp[v][k]);
				}
				near &= fabs(ref[n] - y[0][t][v][n]) <=
					bound * 1.001 + 1e-5 * mag;
			}
		}
	CHECK(same, "matvec: 1 and 3 threads give the same bits");
	CHECK(alone, "matvec: each vector of a batch as it is alone");
	CHECK(near, "matvec: against the reference");
	for (int t = 0; t < T; t++) {
		free(w[t]);
		for (int v = 0; v < NV; v++)
			free(y[0][t][v]), free(y[1][t][v]), free(ya[t][v]);
	}
	free(x), free(row), free(bias);
	ed_pool_free(p1);
	ed_pool_free(p3);
}

/* decode attention for many sequences against one at a time */
static void batch_attention(const int NQ, const int NKV, const int HD)
{
	enum { S = 5 };
	const int64_t lk[S] = {1, 7, 33, 700, 64}, stride = 3 * NKV * HD;
	struct ed_pool *pool;
	struct ed_attn_row r[S];
	float *q[S], *k[S], *v[S], *o[S], *o1[S];
	int same = 1, near = 1;

	ed_pool_new(&pool, 3);
	for (int i = 0; i < S; i++) {
		q[i] = malloc(NQ * HD * 4);
		k[i] = malloc(lk[i] * stride * 4);
		v[i] = malloc(lk[i] * stride * 4);
		o[i] = malloc(NQ * HD * 4);
		o1[i] = malloc(NQ * HD * 4);
		for (int j = 0; j < NQ * HD; j++)
			q[i][j] = frand();
		for (int64_t j = 0; j < lk[i] * stride; j++)
			k[i][j] = frand(), v[i][j] = frand();
		r[i] = (struct ed_attn_row){o[i], q[i], k[i], v[i], lk[i]};
	}
	CHECK_INT(ed_k_attention_rows(pool, r, S, NQ, NKV, HD, stride, 0.25f),
		  0);
	for (int i = 0; i < S; i++) {
		struct ed_attn a = {1,	lk[i],	NQ,	   NKV,
				    HD, stride, lk[i] - 1, 0.25f};
		struct ed_attn_row one = {o1[i], q[i], k[i], v[i], lk[i]};
		float *ref = malloc((size_t)NQ * HD * sizeof *ref);
		ed_k_attention_rows(pool, &one, 1, NQ, NKV, HD, stride, 0.25f);
		same &= memcmp(o[i], o1[i], NQ * HD * 4) == 0;
		ed_k_attention_ref(ref, q[i], k[i], v[i], &a);
		for (int t = 0; t < NQ * HD; t++)
			near &= fabsf(ref[t] - o[i][t]) < 1e-5f;
		free(ref);
		free(q[i]), free(k[i]), free(v[i]), free(o[i]), free(o1[i]);
	}
	CHECK(same,
	      "decode attention %d/%d x %d: a batch row as the sequence "
	      "alone",
	      NQ, NKV, HD);
	CHECK(near, "decode attention %d/%d x %d: against the reference", NQ,
	      NKV, HD);
	ed_pool_free(pool);
}

/*
 * Sessions of one model decoded together against each alone: prompts of
 * different lengths (images among them on a VL model), sequences that
 * join late and leave early; every step's logits equal to the bit, and
 * with 1 thread against 2.
 */
static void batch_sessions(const char *dir, bool images)
{
	enum { S = 4, STEPS = 6 };
	struct ed_model *m;
	struct ed_session *solo, *s[S];
	struct ed_model_info info;
	struct ed_model_ids sp;
	char err[512];
	float *want[S][STEPS];
	int32_t toks[S][STEPS];
	struct ed_prompt p[S];
	float *px = NULL;
	int ok = 1, rc;

	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "%s: %s", dir, err);
	if (rc)
		return;
	ed_model_get_info(m, &info);
	ed_model_get_ids(m, &sp);
	if (images && info.has_vision) {
		px = malloc(6 * 8 * 588 * sizeof *px);
		for (int i = 0; i < 6 * 8 * 588; i++)
			px[i] = frand();
	}
	for (int i = 0; i < S; i++) {
		int32_t ids[40];
		int n = 0;
		struct ed_image_in im = {px, 1, 6, 8};
		bool img = px && i % 2 == 1;
		for (int k = 0; k < 5 + 3 * i; k++)
			ids[n++] = 3 + (k * 7 + i * 13) % (info.vocab - 30);
		if (img) {
			ids[n++] = sp.image_start;
			for (int k = 0; k < 12; k++)
				ids[n++] = sp.image;
			ids[n++] = sp.image_end;
		}
		CHECK_INT(ed_model_prompt_ids(m, ids, (size_t)n,
					      img ? &im : NULL, img ? 1 : 0,
					      &p[i], err, sizeof err),
			  0);
	}
	/* alone, on one thread: greedy tokens and every step's logits */
	ed_session_new(&solo, m, &(struct ed_session_opts){.threads = 1}, err,
		       sizeof err);
	for (int i = 0; i < S; i++) {
		const float *lg;
		ed_session_prefill(solo, &p[i], &lg, err, sizeof err);
		for (int t = 0; t < STEPS; t++) {
			toks[i][t] =
			    ed_model_sample(lg, info.vocab, NULL, NULL);
			CHECK_INT(ed_session_step(solo, toks[i][t], &lg, err,
						  sizeof err),
				  0);
			want[i][t] = malloc((size_t)info.vocab * 4);
			memcpy(want[i][t], lg, (size_t)info.vocab * 4);
		}
	}
	ed_session_free(solo);
	/* together, on two threads: session 2 joins two steps late and
	 * session 1 leaves after four */
	ed_session_new(&s[0], m, &(struct ed_session_opts){.threads = 2}, err,
		       sizeof err);
	for (int i = 1; i < S; i++)
		ed_session_new(
		    &s[i], m,
		    &(struct ed_session_opts){.pool = ed_session_pool(s[0])},
		    err, sizeof err);
	{
		const float *lg;
		int at[S] = {0};
		for (int i = 0; i < S; i++)
			if (i != 2)
				ed_session_prefill(s[i], &p[i], &lg, err,
						   sizeof err);
		for (int round = 0; round < STEPS + 2; round++) {
			struct ed_session *b[S];
			int32_t tk[S];
			int idx[S], nb = 0;
			if (round == 2)
				ed_session_prefill(s[2], &p[2], &lg, err,
						   sizeof err);
			for (int i = 0; i < S; i++) {
				if (at[i] >= STEPS || (i == 2 && round < 2) ||
				    (i == 1 && at[i] >= 4))
					continue;
				b[nb] = s[i];
				tk[nb] = toks[i][at[i]];
				idx[nb++] = i;
			}
			if (!nb)
				break;
			CHECK_INT(
			    ed_session_step_batch(b, nb, tk, err, sizeof err),
			    0);
			for (int k = 0; k < nb; k++) {
				int i = idx[k];
				ok &= memcmp(ed_session_logits(s[i]),
					     want[i][at[i]],
					     (size_t)info.vocab * 4) == 0;
				at[i]++;
			}
		}
		CHECK(at[0] == STEPS && at[1] == 4 && at[2] == STEPS &&
			  at[3] == STEPS,
		      "steps %d %d %d %d", at[0], at[1], at[2], at[3]);
	}
	CHECK(ok, "%s: every step's logits in the batch equal alone", dir);
	/* the cache holds what the context needs, not max_ctx */
	CHECK(ed_session_kv_bytes(s[0]) ==
		  256 * (size_t)info.kv_bytes_per_token,
	      "%s: KV cache %zu bytes for %lld positions (%lld a token)", dir,
	      ed_session_kv_bytes(s[0]), (long long)(p[0].n + STEPS),
	      (long long)info.kv_bytes_per_token);
	for (int i = S - 1; i >= 0; i--)
		ed_session_free(s[i]);
	for (int i = 0; i < S; i++) {
		ed_model_prompt_release(&p[i]);
		for (int t = 0; t < STEPS; t++)
			free(want[i][t]);
	}
	free(px);
	ed_model_close(m);
}

static void test_batch(void)
{
	char rel[600], dir[700];

	batch_kernel(ED_DT_Q4_K);
	batch_kernel(ED_DT_Q8_0);
	batch_kernel(ED_DT_Q6_K);
	batch_kernel(ED_DT_Q4_0);
	batch_kernel(ED_DT_Q5_K);
	batch_kernel(ED_DT_IQ4_NL);
	batch_matvec();
	batch_attention(4, 2, 16);
	batch_attention(20, 4, 128); /* the real model's GQA */
	batch_attention(6, 3, 20);   /* a head width the wide kernel skips */
	batch_sessions(t_shared("golden/a_text_only", rel, sizeof rel), true);
	batch_sessions(t_shared("golden/b_one_image", rel, sizeof rel), true);
	batch_sessions(t_shared("golden/c_two_images", rel, sizeof rel), true);
	batch_sessions(t_shared("golden/d_untied_image", rel, sizeof rel),
		       true);
	/* Q4_K in shapes the blocks fill (the golden ones fall back to
	 * Q8_0) */
	snprintf(dir, sizeof dir, "%s/q4k", tmp);
	CHECK(mkmodel(dir, "--layout text --hidden 256 --heads 4 --kv-heads "
			   "2 --head-dim 64 --inter 512 --experts 8 --moe-k 2 "
			   "--expert-inter 256,256 --shared 1 --vocab 512 "
			   "--layers 3 --gguf q4_k") == 0,
	      "mkmodel q4_k");
	snprintf(dir, sizeof dir, "%s/q4k/model.gguf", tmp);
	batch_sessions(dir, false);
}

static void test_golden_quantized(void)
{
	static const char *const cases[] = {"a_text_only", "b_one_image",
					    "c_two_images", "d_untied_image"};
	for (size_t i = 0; i < ED_ARRAY_LEN(cases); i++) {
		golden_quantized(cases[i], "bf16", true);
		golden_quantized(cases[i], "q8_0", i > 0);
	}
	/* the text models (ernie4_5_moe, ernie4_5) */
	golden_quantized("e_text_moe", "bf16", true);
	golden_quantized("e_text_moe", "q8_0", false);
	golden_quantized("f_text_dense", "bf16", true);
	golden_quantized("f_text_dense", "q8_0", false);
}

/* The vocabulary as llama.cpp's arrays (tokenizer.ggml.*): read back,
 * it encodes and decodes as the tokenizer.model it came from, with its
 * added tokens and flags; and a hand-made llama.cpp vocabulary without
 * a normalizer keeps text as it is. */
static void test_tok_arrays(void)
{
	static const char *const texts[] = {
	    "the quick brown fox jumps over the lazy dog",
	    "  invoice   total amount 1234\n\npage two",
	    "café naïve résumé Ångström",
	    "文字 识别 模型 文档 图像",
	    "<|begin_of_sentence|>User: hi\nAssistant: <think>x</think>",
	    "# Heading | cell | cell |\t\x01\xff~",
	    "ab<|IMAGE_START|>cd<|IMAGE_PLACEHOLDER|><|IMAGE_END|>"};
	char dir[800], err[256];
	struct ed_tokenizer *a = NULL, *b = NULL;
	struct ed_tok_arrays arr;
	int diff = 0;

	snprintf(dir, sizeof dir, "%s/tok", tmp);
	CHECK_INT(ed_tok_open(&a, dir, err, sizeof err), 0);
	if (!a)
		return;
	CHECK_INT(ed_tok_export(a, 512, &arr), 0);
	CHECK_INT(arr.n, 512);
	CHECK(arr.type[arr.n - 1] == 5 && strcmp(arr.tok[511], "[PAD511]") == 0,
	      "padded with unused [PAD] tokens");
	CHECK(arr.charsmap && arr.charsmap_len > 4,
	      "the normalizer's charsmap is exported");
	CHECK_INT(ed_tok_open_arrays(&b, &arr, err, sizeof err), 0);
	ed_tok_arrays_free(&arr);
	if (!b) {
		ed_tok_close(a);
		return;
	}
	for (int32_t i = 0; i < ed_tok_size(a); i++) {
		const char *x = ed_tok_piece(a, i), *y = ed_tok_piece(b, i);
		diff += !x || !y || strcmp(x, y) != 0;
	}
	CHECK(diff == 0, "%d pieces differ", diff);
	for (size_t k = 0; k < ED_ARRAY_LEN(texts); k++) {
		int32_t *ia = NULL, *ib = NULL;
		size_t na = 0, nb = 0;
		struct ed_buf da, db;
		ed_tok_encode(a, texts[k], strlen(texts[k]), &ia, &na);
		ed_tok_encode(b, texts[k], strlen(texts[k]), &ib, &nb);
		CHECK(na > 0 && na == nb && memcmp(ia, ib, na * 4) == 0,
		      "'%s': %zu ids from tokenizer.model, %zu from the arrays",
		      texts[k], na, nb);
		ed_buf_init(&da, 0);
		ed_buf_init(&db, 0);
		for (int sk = 0; sk < 2; sk++) {
			da.len = db.len = 0;
			ed_tok_decode(a, ia, na, sk, &da);
			ed_tok_decode(b, ia, na, sk, &db);
			CHECK(da.len == db.len &&
				  (!da.len ||
				   memcmp(da.data, db.data, da.len) == 0),
			      "'%s': decoded differently (skip_special %d)",
			      texts[k], sk);
		}
		ed_buf_release(&da);
		ed_buf_release(&db);
		free(ia);
		free(ib);
	}
	ed_tok_close(b);
	ed_tok_close(a);
	{
		/* llama.cpp's converter's files: no charsmap, no whitespace
		 * collapsing, a space prefix; control tokens whole */
		char *tok[] = {"<unk>",
			       "<s>",
			       "</s>",
			       "\xe2\x96\x81",
			       "a",
			       "b",
			       "\xe2\x96\x81"
			       "a",
			       "ab",
			       "<0x20>",
			       "<|x|>"};
		int32_t type[] = {2, 3, 3, 1, 1, 1, 1, 1, 6, 3};
		float score[] = {0, 0, 0, -1, -2, -3, -0.5f, -0.25f, 0, -1000};
		struct ed_tok_arrays l = {.n = 10,
					  .tok = tok,
					  .score = score,
					  .type = type,
					  .unk = 0,
					  .bos = 1,
					  .eos = 2,
					  .pad = -1,
					  .add_space_prefix = true};
		int32_t *ids = NULL;
		size_t n = 0;
		CHECK_INT(ed_tok_open_arrays(&b, &l, err, sizeof err), 0);
		if (b) {
			ed_tok_encode(b, "a  ab<|x|>", 10, &ids, &n);
			/* "▁a" "▁" "▁" "ab" "<|x|>" */
			CHECK(n == 5 && ids[0] == 6 && ids[1] == 3 &&
				  ids[2] == 3 && ids[3] == 7 && ids[4] == 9,
			      "llama vocabulary: %zu ids (%d %d %d ...)", n,
			      n ? ids[0] : -1, n > 1 ? ids[1] : -1,
			      n > 2 ? ids[2] : -1);
			free(ids);
			ed_tok_close(b);
		}
		type[4] = 9;
		CHECK(ed_tok_open_arrays(&b, &l, err, sizeof err) ==
			      ED_EFORMAT &&
			  strstr(err, "token 4"),
		      "an unknown token type is named: %s", err);
	}
}

/* tokenizer_config.json's add_prefix_space and legacy over the .model */
static void test_prefix_flags(void)
{
	char model[800], added[800], err[256];
	size_t len = 0, alen = 0;
	unsigned char *data, *adj;
	struct ed_tokenizer *t[4];
	static const char *const cfg[4] = {
	    "{\"add_prefix_space\": true}", "{\"add_prefix_space\": false}",
	    "{\"add_prefix_space\": true, \"legacy\": false}",
	    "{\"add_prefix_space\": true, \"legacy\": true}"};
	static const char text[] = "ab<|IMAGE_START|>cd";
	int32_t *ids[4] = {NULL};
	size_t n[4] = {0};

	snprintf(model, sizeof model, "%s/tok/tokenizer.model", tmp);
	snprintf(added, sizeof added, "%s/tok/added_tokens.json", tmp);
	data = t_read_file(model, &len);
	adj = t_read_file(added, &alen);
	CHECK(data && adj, "the test tokenizer");
	if (!data || !adj) {
		free(data);
		free(adj);
		return;
	}
	adj = realloc(adj, alen + 1);
	adj[alen] = '\0';
	for (int i = 0; i < 4; i++) {
		CHECK_INT(ed_tok_open_parts(&t[i], data, len, (char *)adj,
					    cfg[i], NULL, err, sizeof err),
			  0);
		ed_tok_encode(t[i], text, strlen(text), &ids[i], &n[i]);
	}
	{
		const char *p0 = ed_tok_piece(t[0], ids[0][0]);
		const char *p1 = ed_tok_piece(t[1], ids[1][0]);
		CHECK(p0 && strncmp(p0, "\xe2\x96\x81", 3) == 0 && p1 &&
			  strncmp(p1, "\xe2\x96\x81", 3) != 0,
		      "add_prefix_space: '%s' vs '%s'", p0 ? p0 : "",
		      p1 ? p1 : "");
	}
	/* legacy false: the text after the added token gets no prefix */
	{
		size_t k = 0;
		while (k < n[2] && k < n[3] && ids[2][k] == ids[3][k])
			k++;
		CHECK(k < n[3] && ed_tok_piece(t[3], ids[3][k]) &&
			  strncmp(ed_tok_piece(t[3], ids[3][k]), "\xe2\x96\x81",
				  3) == 0 &&
			  (k == n[2] || strncmp(ed_tok_piece(t[2], ids[2][k]),
						"\xe2\x96\x81", 3) != 0),
		      "legacy: the two differ after <|IMAGE_START|>");
	}
	for (int i = 0; i < 4; i++) {
		free(ids[i]);
		ed_tok_close(t[i]);
	}
	free(data);
	free(adj);
}

/* Chat templates: the built-ins are the files under model/templates/,
 * the Thinking variant's exact text and tool turn, the RoPE defaults of
 * an ERNIE-4.5-VL config, the tokenizer's prefix flags. */
static void test_templates(void)
{
	static const char *const files[3] = {
	    "model/templates/ernie-4.5-vl-pt.jinja",
	    "model/templates/ernie-4.5-vl-thinking.jinja",
	    "model/templates/ernie-4.5-text.jinja"};
	const char *texts[3] = {ed_template_ernie_4_5_vl_pt,
				ed_template_ernie_4_5_vl_thinking,
				ed_template_ernie_4_5_text};
	char dir[700], err[512];
	struct ed_model *m;
	int rc;

	for (int i = 0; i < 3; i++) {
		size_t len = 0;
		char *f = (char *)t_read_file(files[i], &len);
		CHECK(f && len == strlen(texts[i]) &&
			  memcmp(f, texts[i], len) == 0,
		      "%s and model/chat_templates.c differ: run "
		      "scripts/embed-templates.sh",
		      files[i]);
		free(f);
	}
	/* config defaults: a VL config that leaves RoPE out */
	{
		static const char vl[] =
		    "{\"hidden_size\": 2560, \"num_hidden_layers\": 2, "
		    "\"num_attention_heads\": 20, \"num_key_value_heads\": 4, "
		    "\"vocab_size\": 1000, \"intermediate_size\": 64, "
		    "\"im_patch_id\": 900, "
		    "\"vision_config\": {\"depth\": 1, \"embed_dim\": 64, "
		    "\"num_heads\": 2, \"mlp_ratio\": 4, \"patch_size\": 14, "
		    "\"spatial_merge_size\": 2, \"in_channels\": 3}}";
		static const char text[] =
		    "{\"hidden_size\": 2560, \"num_hidden_layers\": 2, "
		    "\"num_attention_heads\": 20, \"num_key_value_heads\": 4, "
		    "\"vocab_size\": 1000, \"intermediate_size\": 64}";
		static const char bad[] =
		    "{\"hidden_size\": 2560, \"num_hidden_layers\": 2, "
		    "\"num_attention_heads\": 20, \"vocab_size\": 1000, "
		    "\"intermediate_size\": 64, \"vision_config\": {\"depth\": "
		    "1, \"embed_dim\": 64, \"hidden_size\": 3584, "
		    "\"num_heads\": "
		    "2}}";
		struct ed_config c;
		rc = ed_config_parse(&c, vl, strlen(vl), NULL, NULL, err,
				     sizeof err);
		CHECK(rc == 0, "vl config: %s", err);
		CHECK(
		    c.rope_3d && c.rope_theta == 500000.0 && c.mrope[0] == 22 &&
			c.mrope[1] == 22 && c.mrope[2] == 20,
		    "VL defaults: 3-D %d theta %g sections %d/%d/%d", c.rope_3d,
		    c.rope_theta, c.mrope[0], c.mrope[1], c.mrope[2]);
		rc = ed_config_parse(&c, text, strlen(text), NULL, NULL, err,
				     sizeof err);
		CHECK(rc == 0 && !c.rope_3d && c.rope_theta == 10000.0,
		      "text defaults: 3-D %d theta %g", c.rope_3d,
		      c.rope_theta);
		rc = ed_config_parse(&c, bad, strlen(bad), NULL, NULL, err,
				     sizeof err);
		CHECK(rc == ED_ECONFIG && strstr(err, "differs from its "
						      "embed_dim 64"),
		      "vision hidden_size 3584 vs embed_dim 64: %d '%s'", rc,
		      err);
	}
	/* the Thinking built-in on the tiny model: the whole prompt, then a
	 * tool result continues it as the template renders the next turn */
	snprintf(dir, sizeof dir, "%s/vl", tmp);
	rc = ed_model_open(&m, dir, NULL, NULL, err, sizeof err);
	CHECK(rc == 0, "tiny vl: %s", err);
	if (rc)
		return;
	CHECK_INT(ed_model_set_variant(m, ED_VARIANT_THINKING, err, sizeof err),
		  0);
	{
		float *px = calloc(8 * 4 * 588, sizeof *px);
		float *zx = calloc(4 * 4 * 588, sizeof *zx);
		struct ed_image_in im = {px, 1, 4, 8}, zm = {zx, 1, 4, 4};
		struct ed_chat_part parts[2] = {{NULL, &im},
						{"Read the page.", NULL}};
		struct ed_chat c = {NULL, parts, 2, true, NULL, true};
		struct ed_prompt p, p2;
		struct ed_template_info ti;
		char *t = ed_model_chat_text(m, &c);
		const char *tl = ed_model_zoom_tool_json();
		char want[4096];
		snprintf(
		    want, sizeof want,
		    "<|begin_of_sentence|>\n<tool_list>\n[%.*s\\u2013%s]"
		    "\n</tool_list>\nYou are a multimodal AI assistant "
		    "called ERNIE developed by Baidu based on the "
		    "PaddlePaddle framework.\nUser:  Picture 1:"
		    "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>Read "
		    "the page.\nAssistant: \n<think>\n",
		    (int)(strstr(tl, "\xe2\x80\x93") - tl), tl,
		    strstr(tl, "\xe2\x80\x93") + 3);
		CHECK_STR(t, want);
		free(t);
		ed_model_get_template(m, &ti);
		CHECK_STR(ti.variant, "Thinking");
		CHECK_STR(ti.why, "--template");
		CHECK_INT(ed_model_prompt_chat(m, &c, &p, err, sizeof err), 0);
		{
			const struct ed_tokenizer *tok = ed_model_tokenizer(m);
			static const char seg[] =
			    "<|end_of_sentence|>User: \n<tool_output>\n "
			    "Picture "
			    "2:<|IMAGE_START|><|IMAGE_PLACEHOLDER|>"
			    "<|IMAGE_PLACEHOLDER|><|IMAGE_PLACEHOLDER|>"
			    "<|IMAGE_PLACEHOLDER|><|IMAGE_END|>Zoomed.\n"
			    "</tool_output>\n\nAssistant: \n<think>\n";
			int32_t gen[2] = {5, 6}, *wid = NULL;
			size_t wn = 0;
			ed_tok_encode(tok, seg, strlen(seg), &wid, &wn);
			rc = ed_model_prompt_extend(m, &p, gen, 2, "Zoomed.",
						    &zm, 1, true, &p2, err,
						    sizeof err);
			CHECK(rc == 0, "extend: %s", err);
			CHECK(rc == 0 && p2.n == p.n + 2 + wn &&
				  memcmp(p2.ids, p.ids, p.n * sizeof *wid) ==
				      0 &&
				  memcmp(p2.ids + p.n + 2, wid,
					 wn * sizeof *wid) == 0,
			      "the tool turn of the Thinking template");
			/* and once more: picture 3, the same turn shape */
			if (!rc) {
				struct ed_prompt p3;
				rc = ed_model_prompt_extend(
				    m, &p2, gen, 1, "Again.", &zm, 1, false,
				    &p3, err, sizeof err);
				CHECK(rc == 0 && p3.n_images == 3,
				      "a second zoom: %s", err);
				if (!rc)
					ed_model_prompt_release(&p3);
				ed_model_prompt_release(&p2);
			}
			free(wid);
		}
		ed_model_prompt_release(&p);
		free(px);
		free(zx);
	}
	/* a template without images for a prompt with one: a clear error */
	{
		static const char tpl[] = "{{ messages | length }} no image";
		float px[4 * 8 * 588] = {0};
		struct ed_image_in im = {px, 1, 4, 8};
		struct ed_chat_part parts[1] = {{NULL, &im}};
		struct ed_chat c = {NULL, parts, 1, false, NULL, false};
		struct ed_prompt p;
		CHECK_INT(ed_model_set_chat_template(m, tpl, strlen(tpl),
						     "test", err, sizeof err),
			  0);
		rc = ed_model_prompt_chat(m, &c, &p, err, sizeof err);
		CHECK(rc == ED_EINVAL &&
			  strstr(err, "for each of its 1 images"),
		      "no image in the template: %d %s", rc, err);
	}
	ed_model_close(m);
}

int main(void)
{
	const char *base = getenv("ED_TMP");

	t_name = "model";
	snprintf(tmp, sizeof tmp, "%s/model.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 2;
	}
	test_golden_files();
	test_roundtrip();
	test_bad_headers();
	test_dtypes();
	test_conversions();
	test_matmul();
	test_matmul_large();
	test_qgemm_odd();
	test_quant_worked();
	test_act16();
	test_quant();
	test_golden_quantized();
	test_attention();
	test_pool();
	test_sampler();
	test_golden_models();
	test_batch();
	test_tokenizer();
	test_tiny_vl();
	test_conversation();
	test_templates();
	test_prefix_flags();
	test_tok_arrays();
	test_llama_errors();
	test_text_only();
	test_stop();
	test_loader_errors();
	test_split_thinking();
	test_reply_parse();
	return t_done();
}
