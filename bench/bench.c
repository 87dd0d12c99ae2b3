/*
 * bench.c - in-process measurements for `make bench` (bench/run.sh prints
 * the BENCH lines and the ratios against references timed in the same run):
 *
 *   bench render FILE DPI      pages/s rasterizing every page (no output
 *                              written), one PopplerDocument per thread
 *   bench tile W H REPEAT      megapixels/s of the full tiling of a W x H
 *                              page (resize + normalize + patches)
 *   bench resize-ref W H       the same resize on the reference path (for
 *                              the fast/reference ratio)
 *   bench engine DIR THREADS   the native engine on a checkpoint: read
 *                              bandwidth and OpenBLAS sgemm as rooflines,
 *                              decode, 1,000-token image prefill, ViT,
 *                              peak RSS; prints BENCH lines itself
 *   bench decode MODEL THREADS TAG TARGET RSS_GIB
 *                              decode tokens/s against the read
 *                              bandwidth (and peak RSS against a budget)
 *   bench prefill MODEL THREADS N TAG TARGET_GOPS
 *                              prefill of N text tokens, effective GOP/s
 *                              against the VNNI peak measured now
 *   bench vit MODEL THREADS GH GW TARGET_S [int8]
 *                              the vision tower on a GH x GW-patch image,
 *                              GFLOP/s against the float32 FMA peak (int8:
 *                              its linear layers on int8 products)
 *   bench page MODEL THREADS GEN TAG
 *                              a 1,000-image-token page and GEN tokens,
 *                              with the share of each stage
 *   bench page-default MODEL PDF THREADS GEN VIT_TARGET [int8]
 *                              PDF's first page through the default path
 *                              (render, tile, vision, prefill, GEN tokens)
 *                              against its roofline; the vision tower on
 *                              its patch grid
 *   bench batch MODEL THREADS B TARGET
 *                              B sequences decoding together against the
 *                              weights they touch at the read bandwidth
 *   bench agree GOLDEN_DIR THREADS TAG
 *                              --vision-int8 against the float path on a
 *                              golden fixture (projector_out, tokens)
 *   bench quality REF QUANT THREADS TAG
 *                              top-1 agreement and mean KL of a
 *                              quantized checkpoint against its source
 *
 * The others print one line "<value> <unit>" on stdout.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/model.h"
#include "pipeline/pipeline.h"
#include "render/render.h"
#include "tests/util.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

struct worker {
	const unsigned char *data;
	size_t len;
	double dpi;
	int first, step, pages, rc;
};

static void *render_pages(void *arg)
{
	struct worker *w = arg;
	struct ed_doc *doc;
	char err[256];

	if ((w->rc = ed_render_doc_open(&doc, w->data, w->len, NULL, NULL, err,
					sizeof err))) {
		fprintf(stderr, "bench: %s\n", err);
		return NULL;
	}
	for (int p = w->first; p < ed_render_doc_pages(doc); p += w->step) {
		struct ed_image img;
		if ((w->rc = ed_render_page(doc, p, w->dpi, NULL, &img, err,
					    sizeof err))) {
			fprintf(stderr, "bench: page %d: %s\n", p + 1, err);
			break;
		}
		ed_render_image_release(&img);
		w->pages++;
	}
	ed_render_doc_close(doc);
	return NULL;
}

static int bench_render(const char *file, double dpi, int threads)
{
	size_t len;
	unsigned char *data = t_read_file(file, &len);
	struct worker w[16];
	pthread_t th[16];
	double t0;
	int pages = 0;

	double best = 0;

	if (!data || threads < 1 || threads > 16)
		return 2;
	for (int rep = 0; rep < 3; rep++) { /* best of 3 */
		t0 = ed_now_ms();
		pages = 0;
		for (int i = 0; i < threads; i++) {
			w[i] =
			    (struct worker){data, len, dpi, i, threads, 0, 0};
			pthread_create(&th[i], NULL, render_pages, &w[i]);
		}
		for (int i = 0; i < threads; i++) {
			pthread_join(th[i], NULL);
			if (w[i].rc)
				return 1;
			pages += w[i].pages;
		}
		best = ED_MAX(best, pages / ((ed_now_ms() - t0) / 1000.0));
	}
	printf("%.3f pages/s\n", best);
	free(data);
	return 0;
}

static void fill(struct ed_image *img)
{
	/* a page-like image: white with dark strokes */
	for (int y = 0; y < img->height; y++)
		for (int x = 0; x < img->width; x++) {
			uint8_t v = ((y / 12) % 3 == 0 && (x * 7 + y) % 11 < 6)
					? 30
					: 250;
			memset(img->rgb + ((size_t)y * img->width + x) * 3, v,
			       3);
		}
}

static int bench_tile(int w, int h, int repeat)
{
	struct ed_image img;
	struct ed_tile_params tp;
	char err[256];
	double t0, best = 1e30;

	if (ed_render_image_init(&img, w, h, err, sizeof err))
		return 1;
	fill(&img);
	ed_render_tile_params_default(&tp);
	for (int r = 0; r < repeat; r++) {
		struct ed_tiles t;
		t0 = ed_now_ms();
		if (ed_render_tile_image(&img, &tp, &t, NULL, err, sizeof err))
			return 1;
		best = ED_MIN(best, ed_now_ms() - t0);
		ed_render_tiles_release(&t);
	}
	printf("%.3f MP/s\n", (double)w * h / 1e6 / (best / 1000.0));
	ed_render_image_release(&img);
	return 0;
}

static int bench_resize_ref(int w, int h)
{
	struct ed_image img, out;
	char err[256];
	int oh, ow;
	double t0;

	if (ed_render_image_init(&img, w, h, err, sizeof err))
		return 1;
	fill(&img);
	ed_render_tile_smart_resize(h, w, 28, ED_TILE_MIN_PIXELS,
				    ED_TILE_MAX_PIXELS, &oh, &ow, err,
				    sizeof err);
	t0 = ed_now_ms();
	if (ed_render_tile_resize_ref(&img, ow, oh, &out, err, sizeof err))
		return 1;
	printf("%.3f MP/s\n",
	       (double)w * h / 1e6 / ((ed_now_ms() - t0) / 1000.0));
	ed_render_image_release(&out);
	ed_render_image_release(&img);
	return 0;
}

/* Copy bandwidth in GB/s counting the bytes read and written. */
/*
 * The machine's peak for an instruction, as the ceiling a kernel is
 * measured against in the same run: THREADS threads each run 12
 * independent chains of zmm FMAs (kind 0: float32, 32 flops each),
 * vpdpwssd (1: int16 pairs, 64 ops) or vpdpbusd (2: int8 quads, 128 ops:
 * the integer products of prefill over Q8_0 and the other types). GFLOP/s
 * or GOP/s; 0 without AVX-512 (VNNI).
 */
struct peak_arg {
	int kind;
	double ops;
};

#if defined(__x86_64__)
#define PEAK_ITERS 20000000L
__attribute__((target("avx512f"), noinline)) static double peak_fma(void)
{
	volatile float seed = 1e-3f;
	__m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(seed);
	__m512 f0 = _mm512_set1_ps(seed), f1 = _mm512_set1_ps(2 * seed),
	       f2 = _mm512_set1_ps(3 * seed), f3 = _mm512_set1_ps(4 * seed),
	       f4 = _mm512_set1_ps(5 * seed), f5 = _mm512_set1_ps(6 * seed),
	       f6 = _mm512_set1_ps(7 * seed), f7 = _mm512_set1_ps(8 * seed),
	       f8 = _mm512_set1_ps(9 * seed), f9 = _mm512_set1_ps(10 * seed),
	       fa = _mm512_set1_ps(11 * seed), fb = _mm512_set1_ps(12 * seed);

	for (long n = 0; n < PEAK_ITERS; n++) {
		f0 = _mm512_fmadd_ps(f0, b, c), f1 = _mm512_fmadd_ps(f1, b, c);
		f2 = _mm512_fmadd_ps(f2, b, c), f3 = _mm512_fmadd_ps(f3, b, c);
		f4 = _mm512_fmadd_ps(f4, b, c), f5 = _mm512_fmadd_ps(f5, b, c);
		f6 = _mm512_fmadd_ps(f6, b, c), f7 = _mm512_fmadd_ps(f7, b, c);
		f8 = _mm512_fmadd_ps(f8, b, c), f9 = _mm512_fmadd_ps(f9, b, c);
		fa = _mm512_fmadd_ps(fa, b, c), fb = _mm512_fmadd_ps(fb, b, c);
	}
	f0 = _mm512_add_ps(
	    _mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
	    _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7)));
	f0 = _mm512_add_ps(
	    f0, _mm512_add_ps(_mm512_add_ps(f8, f9), _mm512_add_ps(fa, fb)));
	seed = _mm512_reduce_add_ps(f0); /* keep the chains */
	return (double)PEAK_ITERS * 12 * 32;
}

/* 12 chains of vpdpwssd (int16 pairs, I8 = 0) or vpdpbusd (int8 quads) */
static inline
    __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni"))) double
    peak_vnni(const int I8)
{
	volatile int seed = 3;
	__m512i w = _mm512_set1_epi32(seed), i[12], t;

#pragma GCC unroll 12
	for (int k = 0; k < 12; k++)
		i[k] = _mm512_set1_epi32((k + 1) * seed);
	for (long n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 12
		for (int k = 0; k < 12; k++)
			i[k] = I8 ? _mm512_dpbusd_epi32(i[k], w, w)
				  : _mm512_dpwssd_epi32(i[k], w, w);
	}
	t = i[0];
#pragma GCC unroll 12
	for (int k = 1; k < 12; k++)
		t = _mm512_add_epi32(t, i[k]);
	seed = _mm512_reduce_add_epi32(t); /* keep the chains */
	return (double)PEAK_ITERS * 12 * (I8 ? 128 : 64);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static double
peak_dpwssd(void)
{
	return peak_vnni(0);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static double
peak_dpbusd(void)
{
	return peak_vnni(1);
}

static void *peak_run(void *arg)
{
	struct peak_arg *a = arg;

	a->ops = a->kind == 0	? peak_fma()
		 : a->kind == 1 ? peak_dpwssd()
				: peak_dpbusd();
	return NULL;
}
#endif

static double peak_gops(int kind, int threads)
{
#if defined(__x86_64__)
	pthread_t th[64];
	struct peak_arg a[64];
	double t0, ops = 0;

	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") ||
	    (kind && !__builtin_cpu_supports("avx512vnni")))
		return 0;
	if (threads < 1 || threads > 64)
		threads = 1;
	t0 = ed_now_ms();
	for (int t = 0; t < threads; t++) {
		a[t].kind = kind;
		pthread_create(&th[t], NULL, peak_run, &a[t]);
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		ops += a[t].ops;
	}
	return ops / ((ed_now_ms() - t0) / 1000) / 1e9;
#else
	(void)kind;
	(void)threads;
	return 0;
#endif
}

/*
 * The machine's read bandwidth, the limit decode streams against: every
 * thread sums its part of a 2 GiB buffer (far past the caches) with
 * 512-bit loads (256-bit without AVX-512), best of 5. Measured in a child
 * process, so that the buffer counts in no peak RSS of ours. GB/s.
 */
struct rd_arg {
	const char *p;
	size_t n;
	long long sum;
};

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void *rd_part(void *arg)
{
	struct rd_arg *a = arg;
	__m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;

	for (size_t i = 0; i + 256 <= a->n; i += 256) {
		s0 = _mm512_add_epi64(s0, _mm512_load_si512(a->p + i));
		s1 = _mm512_add_epi64(s1, _mm512_load_si512(a->p + i + 64));
		s2 = _mm512_add_epi64(s2, _mm512_load_si512(a->p + i + 128));
		s3 = _mm512_add_epi64(s3, _mm512_load_si512(a->p + i + 192));
	}
	a->sum = _mm512_reduce_add_epi64(_mm512_add_epi64(
	    _mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
	return NULL;
}

/* the same with 256-bit loads, for CPUs without AVX-512 */
__attribute__((target("avx2"))) static void *rd_part_avx2(void *arg)
{
	struct rd_arg *a = arg;
	__m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;

	for (size_t i = 0; i + 128 <= a->n; i += 128) {
		s0 = _mm256_add_epi64(
		    s0, _mm256_load_si256((const void *)(a->p + i)));
		s1 = _mm256_add_epi64(
		    s1, _mm256_load_si256((const void *)(a->p + i + 32)));
		s2 = _mm256_add_epi64(
		    s2, _mm256_load_si256((const void *)(a->p + i + 64)));
		s3 = _mm256_add_epi64(
		    s3, _mm256_load_si256((const void *)(a->p + i + 96)));
	}
	s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1),
			      _mm256_add_epi64(s2, s3));
	a->sum = _mm256_extract_epi64(s0, 0) + _mm256_extract_epi64(s0, 1) +
		 _mm256_extract_epi64(s0, 2) + _mm256_extract_epi64(s0, 3);
	return NULL;
}
#endif

static double read_gbs_here(int threads)
{
#if defined(__x86_64__)
	size_t n = (size_t)2 << 30;
	char *buf;
	double best = 0;
	pthread_t th[64];
	struct rd_arg a[64];

	void *(*part)(void *);

	__builtin_cpu_init();
	part = __builtin_cpu_supports("avx512f") ? rd_part
	       : __builtin_cpu_supports("avx2")	 ? rd_part_avx2
						 : NULL;
	if (!part || threads < 1 || threads > 64)
		return 0;
	buf = aligned_alloc(4096, n);
	if (!buf)
		return 0;
	memset(buf, 1, n);
	for (int r = 0; r < 5; r++) {
		double t0 = ed_now_ms(), dt;
		for (int t = 0; t < threads; t++) {
			a[t] = (struct rd_arg){buf + n / threads * t,
					       n / threads, 0};
			pthread_create(&th[t], NULL, part, &a[t]);
		}
		for (int t = 0; t < threads; t++)
			pthread_join(th[t], NULL);
		dt = (ed_now_ms() - t0) / 1000;
		best = ED_MAX(best, (double)n / dt / 1e9);
	}
	free(buf);
	return best;
#else
	(void)threads;
	return 0;
#endif
}

/* f(threads) in a child process: its memory and threads end with it. */
static double in_child(double (*f)(int), int threads)
{
	int fd[2];
	pid_t pid;
	double v = 0;

	if (pipe(fd))
		return 0;
	pid = fork();
	if (pid == 0) {
		double g = f(threads);
		ssize_t w = write(fd[1], &g, sizeof g);
		_exit(w == (ssize_t)sizeof g ? 0 : 1);
	}
	if (pid > 0) {
		if (read(fd[0], &v, sizeof v) != (ssize_t)sizeof v)
			v = 0;
		waitpid(pid, NULL, 0);
	}
	close(fd[0]);
	close(fd[1]);
	return v;
}

static double read_gbs(int threads)
{
	return in_child(read_gbs_here, threads);
}

/* Read a file through once, so that what the benchmark maps is in the
 * page cache (a decode that waits for the disk measures the disk). */
static void warm_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	static char buf[1 << 20];

	if (!f)
		return;
	while (fread(buf, 1, sizeof buf, f) == sizeof buf)
		;
	fclose(f);
}

/* OpenBLAS sgemm GFLOP/s on a prefill-like shape. */
static double sgemm_gflops(int threads)
{
	const int M = 1024, N = 2560, K = 2560;
	float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4),
	      *c = malloc((size_t)M * N * 4);
	double best = 1e30;

	if (!a || !b || !c)
		return 0;
	for (size_t i = 0; i < (size_t)M * K; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < (size_t)N * K; i++)
		b[i] = (float)(i % 5) * 0.1f;
	openblas_set_num_threads(threads);
	for (int r = 0; r < 3; r++) {
		double t0 = ed_now_ms();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K,
			    1.0f, a, K, b, K, 0.0f, c, N);
		best = ED_MIN(best, ed_now_ms() - t0);
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * M * N * K / (best / 1000.0) / 1e9;
}

/* A BENCH line: ratio v / ref (higher is better), and the target unless
 * it is negative (no target). */
static void bench_line(const char *name, double v, const char *unit, double ref,
		       double target)
{
	printf("BENCH %s %.3f %s ratio=%.2f", name, v, unit,
	       ref > 0 ? v / ref : 0);
	if (target >= 0)
		printf(" target=%.2f", target);
	printf("\n");
}

/*
 * A prompt of one gh x gw-patch image (with fill, a fixed pixel pattern
 * written into px, gh * gw * 588 floats that the prompt refers to; else
 * px as it is) between the image
 * markers, with a BOS before it and 8 plain text tokens after it when
 * text is set. Returns the prompt's length, or 0 with err set.
 */
static int image_prompt(const struct ed_model *m, float *px, int gh, int gw,
			bool text, bool fill, struct ed_prompt *p, char *err,
			size_t errlen)
{
	const int tok = gh * gw / 4;
	int32_t *ids = malloc((size_t)(tok + 11) * sizeof *ids);
	struct ed_image_in im = {px, 1, gh, gw};
	struct ed_model_ids sp;
	int n = 0, rc;

	if (!ids) {
		snprintf(err, errlen, "out of memory");
		return 0;
	}
	ed_model_get_ids(m, &sp);
	for (long i = 0; fill && i < (long)gh * gw * 588; i++)
		px[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
	if (text)
		ids[n++] = 1;
	ids[n++] = sp.image_start >= 0 ? sp.image_start : 5;
	for (int i = 0; i < tok; i++)
		ids[n++] = sp.image;
	ids[n++] = sp.image_end >= 0 ? sp.image_end : 6;
	for (int i = 0; text && i < 8; i++)
		ids[n++] = 20 + i;
	rc = ed_model_prompt_ids(m, ids, (size_t)n, &im, 1, p, err, errlen);
	free(ids);
	return rc ? 0 : n;
}

/* Arithmetic of the vision tower and resampler on np patches of one
 * image: per block 24 D^2 a patch and attention's 4 np D, the patch
 * embedding, the resampler's 10 S^2 + 2 S H a token of 4 patches. */
static double vision_flops(const struct ed_model_info *i, double np)
{
	double D = i->vit_hidden, S = 4 * D;

	return np * (i->vit_depth * (24.0 * D * D + 4.0 * np * D) +
		     2.0 * 588 * D + 2.0 * (5 * S * S + S * i->hidden) / 4);
}

/* Arithmetic of a prefill of n tokens: two per weight a token uses (its
 * experts, the shared ones, attention, the router; not the head) and the
 * causal attention's products. */
static double prefill_flops(const struct ed_model_info *i, int64_t weights_tok,
			    double n)
{
	return 2.0 * (double)weights_tok * n +
	       (double)i->layers * 4.0 * n * n / 2 * i->heads * i->head_dim;
}

static int bench_engine(const char *dir, int threads)
{
	struct ed_model *m;
	struct ed_session *s;
	struct ed_model_info info;
	struct ed_prompt p;
	const float *logits;
	char err[512];
	double bw, gf, t0, ms_v, ms_d;
	int64_t H, bytes_tok = 0, weights_tok = 0;
	const int steps = 16;

	bw = read_gbs(threads);
	if (ed_model_open(&m, dir, NULL, NULL, err, sizeof err) ||
	    ed_session_new(
		&s, m,
		&(struct ed_session_opts){.threads = threads, .max_ctx = 1200},
		err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	ed_model_get_info(m, &info);
	H = info.hidden;
	/* weight bytes one decode step reads, as stored: attention, the
	 * dense MLP or the k chosen experts plus shared ones and the
	 * router, the head; the embedding row is noise */
	bytes_tok = ed_model_decode_bytes(m, &weights_tok);

	/* decode */
	{
		int32_t ids[8] = {1, 5, 9, 33, 7, 11, 13, 17};
		ed_model_prompt_ids(m, ids, 8, NULL, 0, &p, err, sizeof err);
		ed_session_prefill(s, &p, &logits, err, sizeof err);
		ed_model_prompt_release(&p);
		ed_session_step(s, 3, &logits, err, sizeof err); /* warm */
		t0 = ed_now_ms();
		for (int i = 0; i < steps; i++)
			ed_session_step(s, 3 + i, &logits, err, sizeof err);
		{
			double tps = steps / ((ed_now_ms() - t0) / 1000.0);
			double ach = tps * (double)bytes_tok / 1e9;
			printf("  (limit: the read bandwidth, %.1f GB/s; %.0f "
			       "MB of weights per token)\n",
			       bw, bytes_tok / 1e6);
			bench_line("decode_tokens_per_s", tps, "tok/s",
				   bw / (bytes_tok / 1e9), 0.25);
			printf("  (decode streams %.1f GB/s of weights)\n",
			       ach);
		}
	}
	/* OpenBLAS spins its threads after a call: measure it in a child */
	gf = in_child(sgemm_gflops, threads);
	/* prefill: one 1,000-token image (40 x 100 patches) and text */
	if (info.has_vision) {
		const int gh = 40, gw = 100, np = gh * gw;
		float *px = malloc((size_t)np * 588 * sizeof *px);
		int n = px ? image_prompt(m, px, gh, gw, true, true, &p, err,
					  sizeof err)
			   : 0;
		double flop_tok = 0, flop_patch;

		if (!n || ed_session_prefill(s, &p, &logits, err, sizeof err)) {
			fprintf(stderr, "bench: %s\n",
				px ? err : "out of memory");
			return 1;
		}
		ed_session_timings(s, &ms_v, &ms_d);
		/* 2 flops per weight read per token, less the head (last
		 * token only); attention over half the prompt on average */
		flop_tok = 2.0 * (double)weights_tok +
			   (double)info.layers * 4.0 * n / 2 * info.heads *
			       info.head_dim;
		bench_line("prefill_1000_image_tokens", n / (ms_d / 1000.0),
			   "tok/s", gf * 1e9 / flop_tok, -1);
		printf(
		    "  (roofline: OpenBLAS sgemm %.1f GFLOP/s; %.2f GFLOP per "
		    "token; decoder %.1f GFLOP/s)\n",
		    gf, flop_tok / 1e9, n * flop_tok / (ms_d / 1000.0) / 1e9);
		{
			/* blocks (24 D^2 + attention), patch embedding, and the
			 * resampler's share (5 S^2 + S H per token of 4
			 * patches) */
			double D = info.vit_hidden, S = 4 * D;
			flop_patch =
			    info.vit_depth * (24.0 * D * D + 4.0 * np * D) +
			    2.0 * 588 * D + 2.0 * (5 * S * S + S * H) / 4;
		}
		bench_line("vit_patches_per_s", np / (ms_v / 1000.0),
			   "patches/s", gf * 1e9 / flop_patch, -1);
		printf(
		    "  (%d patches, %d blocks and the resampler: %.1f s, %.1f "
		    "GFLOP/s)\n",
		    np, info.vit_depth, ms_v / 1000.0,
		    np * flop_patch / (ms_v / 1000.0) / 1e9);
		ed_model_prompt_release(&p);
		free(px);
	}
	{
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("BENCH peak_rss %.1f MiB ratio=%.2f target=0.91\n",
		       ru.ru_maxrss / 1024.0,
		       (double)info.file_bytes / (ru.ru_maxrss * 1024.0));
		printf("  (ratio: the checkpoint's %.0f MiB over the peak RSS; "
		       "the weights are mapped, not copied: target a peak "
		       "under 1.1 x the file)\n",
		       info.file_bytes / 1048576.0);
	}
	ed_session_free(s);
	ed_model_close(m);
	return 0;
}

static double rss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024.0;
}

/*
 * Decode on a (quantized) checkpoint: tokens/s against the memory
 * roofline (weights read per token over memcpy bandwidth), and peak RSS.
 * With a RSS budget in GiB, the peak is also printed against it.
 */
static int bench_decode(const char *path, int threads, const char *tag,
			double target, double rss_budget_gib)
{
	struct ed_model *m;
	struct ed_session *s;
	struct ed_prompt p;
	const float *logits;
	char err[512];
	int32_t ids[8] = {1, 5, 9, 33, 7, 11, 13, 17};
	int64_t bytes_tok;
	double bw, t0, tps, ms_load;
	const int steps = 24;
	char name[96];

	warm_file(path);
	bw = read_gbs(threads);
	t0 = ed_now_ms();
	if (ed_model_open(&m, path, NULL, NULL, err, sizeof err) ||
	    ed_session_new(
		&s, m,
		&(struct ed_session_opts){.threads = threads, .max_ctx = 256},
		err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	ms_load = ed_now_ms() - t0;
	bytes_tok = ed_model_decode_bytes(m, NULL);
	ed_model_prompt_ids(m, ids, 8, NULL, 0, &p, err, sizeof err);
	ed_session_prefill(s, &p, &logits, err, sizeof err);
	ed_model_prompt_release(&p);
	/* warm: the routed experts' pages mapped in (a page fault costs more
	 * than reading the page), as in any run past its first tokens */
	for (int i = 0; i < 32; i++)
		ed_session_step(s, 3 + i, &logits, err, sizeof err);
	/* three rounds of (the read bandwidth, then decode): this machine's
	 * bandwidth moves with its neighbours, so each run is held against
	 * the limit measured next to it; the best round is reported */
	tps = 0;
	{
		double best = -1, bws[3];
		for (int r = 0; r < 3; r++) {
			double v, b = r ? read_gbs(threads) : bw;
			t0 = ed_now_ms();
			for (int i = 0; i < steps; i++)
				ed_session_step(s, 40 + i + r * steps, &logits,
						err, sizeof err);
			v = steps / ((ed_now_ms() - t0) / 1000.0);
			bws[r] = b;
			if (b > 0 && v * bytes_tok / b > best) {
				best = v * bytes_tok / b;
				tps = v;
				bw = b;
			}
		}
		snprintf(name, sizeof name, "decode_%s_tokens_per_s", tag);
		bench_line(name, tps, "tok/s", bw / (bytes_tok / 1e9), target);
		printf("  (%.0f MB of weights per token, %.1f GB/s streamed "
		       "against the read bandwidth %.1f GB/s measured before "
		       "it (the rounds' bandwidths %.1f, %.1f, %.1f); opened "
		       "in %.1f s)\n",
		       bytes_tok / 1e6, tps * bytes_tok / 1e9, bw, bws[0],
		       bws[1], bws[2], ms_load / 1000);
	}
	if (rss_budget_gib > 0) {
		snprintf(name, sizeof name, "peak_rss_%s", tag);
		printf("BENCH %s %.0f MiB ratio=%.2f target=1.00\n", name,
		       rss_mib(), rss_budget_gib * 1024 / rss_mib());
		struct ed_model_info info;
		ed_model_get_info(m, &info);
		printf("  (ratio: the %.0f GiB budget over the peak RSS; the "
		       "file is %.1f GiB, mapped)\n",
		       rss_budget_gib, info.file_bytes / 1073741824.0);
	}
	ed_session_free(s);
	ed_model_close(m);
	return 0;
}

/*
 * How much quantization changes the model: the same N-token prompt fed
 * step by step (decode, as users run it) through the reference and the
 * quantized checkpoint; the share of positions whose top token agrees
 * and the mean KL divergence of the quantized distribution from the
 * reference one.
 */
static int bench_quality(const char *ref, const char *quant, int threads,
			 const char *tag)
{
	struct ed_model *m[2];
	struct ed_session *s[2];
	const float *lg[2];
	char err[512], name[96];
	const int N = 48;
	int agree = 0;
	double kl = 0;
	int32_t vocab;
	struct ed_model_info info;

	for (int k = 0; k < 2; k++)
		if (ed_model_open(&m[k], k ? quant : ref, NULL, NULL, err,
				  sizeof err) ||
		    ed_session_new(&s[k], m[k],
				   &(struct ed_session_opts){.threads = threads,
							     .max_ctx = 256},
				   err, sizeof err)) {
			fprintf(stderr, "bench: %s\n", err);
			return 1;
		}
	ed_model_get_info(m[0], &info);
	vocab = info.vocab;
	for (int t = 0; t < N; t++) {
		int32_t id = (int32_t)((t * 7919 + 13) % (vocab - 10) + 5);
		int best[2] = {0, 0};
		double mx[2] = {-1e30, -1e30}, z[2] = {0, 0};
		for (int k = 0; k < 2; k++) {
			if (t == 0) {
				struct ed_prompt p;
				ed_model_prompt_ids(m[k], &id, 1, NULL, 0, &p,
						    err, sizeof err);
				ed_session_prefill(s[k], &p, &lg[k], err,
						   sizeof err);
				ed_model_prompt_release(&p);
			} else {
				ed_session_step(s[k], id, &lg[k], err,
						sizeof err);
			}
			for (int32_t v = 0; v < vocab; v++)
				if (lg[k][v] > mx[k]) {
					mx[k] = lg[k][v];
					best[k] = v;
				}
			for (int32_t v = 0; v < vocab; v++)
				z[k] += exp(lg[k][v] - mx[k]);
		}
		agree += best[0] == best[1];
		for (int32_t v = 0; v < vocab; v++) {
			double lp = lg[0][v] - mx[0] - log(z[0]);
			double lq = lg[1][v] - mx[1] - log(z[1]);
			kl += exp(lp) * (lp - lq);
		}
	}
	snprintf(name, sizeof name, "%s_top1_agreement", tag);
	bench_line(name, (double)agree / N, "", 1, -1);
	snprintf(name, sizeof name, "%s_mean_kl", tag);
	printf("BENCH %s %.5f nats ratio=%.3f\n", name, kl / N, exp(-kl / N));
	printf("  (%d positions, decode path, against the BF16 checkpoint; "
	       "ratio: exp(-KL), 1 = the same distributions)\n",
	       N);
	for (int k = 0; k < 2; k++) {
		ed_session_free(s[k]);
		ed_model_close(m[k]);
	}
	return 0;
}

/*
 * Prefill of n text tokens: the decoder's effective rate, counting two
 * operations per weight each token uses (attention, its k experts and
 * the shared ones, the router) and the attention's products; the head
 * is left out (it runs for the last token only).
 */
static int bench_prefill(const char *path, int threads, int n, const char *tag,
			 double ref_gops)
{
	struct ed_model *m;
	struct ed_session *s;
	struct ed_model_info info;
	struct ed_prompt p;
	const float *logits;
	char err[512], name[96];
	int32_t *ids = malloc((size_t)n * sizeof *ids);
	int64_t weights = 0;
	double best = 1e30, ops, ms_v, ms_d;

	if (!ids || ed_model_open(&m, path, NULL, NULL, err, sizeof err) ||
	    ed_session_new(
		&s, m,
		&(struct ed_session_opts){.threads = threads, .max_ctx = n + 8},
		err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", ids ? err : "out of memory");
		return 1;
	}
	ed_model_get_info(m, &info);
	ed_model_decode_bytes(m, &weights);
	for (int i = 0; i < n; i++)
		ids[i] = (int32_t)((i * 7919 + 13) % (info.vocab - 10) + 5);
	ed_model_prompt_ids(m, ids, (size_t)n, NULL, 0, &p, err, sizeof err);
	for (int r = 0; r < 5; r++) { /* best of 5: a shared machine */
		ed_session_prefill(s, &p, &logits, err, sizeof err);
		ed_session_timings(s, &ms_v, &ms_d);
		best = ms_d < best ? ms_d : best;
	}
	ops = 2.0 * (double)weights * n + (double)info.layers * 4.0 * n * n /
					      2 * info.heads * info.head_dim;
	snprintf(name, sizeof name, "prefill_%s_%d_tokens", tag, n);
	{
		/* Q8_0 takes int16 activations, the other types int8 */
		bool i16 = strstr(tag, "q8_0") != NULL;
		double got = ops / (best / 1000) / 1e9,
		       peak = peak_gops(i16 ? 1 : 2, threads);
		printf("BENCH %s %.1f GOP/s ratio=%.2f target=%.2f\n", name,
		       got, peak > 0 ? got / peak : 0,
		       peak > 0 ? ref_gops / peak : 0);
		printf("  (%d tokens in %.0f ms: %.1f tokens/s; ratio: against "
		       "the %s VNNI peak measured now, %.0f GOP/s;\n"
		       "   target %.0f GOP/s; ggml reaches about 126 here)\n",
		       n, best, n / (best / 1000), i16 ? "int16" : "int8", peak,
		       ref_gops);
	}
	ed_model_prompt_release(&p);
	ed_session_free(s);
	ed_model_close(m);
	free(ids);
	return 0;
}

/* The ceilings a page is held against, measured in this run. */
struct ceilings {
	double fma, vnni8, bw; /* GFLOP/s, GOP/s, GB/s */
};

static void measure_ceilings(struct ceilings *c, int threads)
{
	c->fma = peak_gops(0, threads);
	c->vnni8 = peak_gops(2, threads);
	c->bw = read_gbs(threads);
}

/*
 * One page through the engine: the prompt (an image of gh x gw patches
 * in px, 8 words of text), then gen tokens. Prints the page's line:
 * seconds, each stage's share (render and tiling as measured by the
 * caller, 0 when there are none), and as ratio its roofline over the
 * time: the vision and prefill arithmetic at the FMA and int8 VNNI peaks
 * and the decode's weights at the read bandwidth. With vit_name the
 * vision tower's own line too, against the FMA peak.
 */
static int page_run(struct ed_model *m, int threads, float *px, int gh, int gw,
		    int gen, const char *name, double ms_render, double ms_tile,
		    const char *vit_name, double vit_target)
{
	struct ed_session *s;
	struct ed_prompt p;
	struct ed_gen_result r;
	struct ed_gen_params g = {.max_new_tokens = gen, .ignore_eos = true};
	struct ed_model_info info;
	struct ceilings c;
	const int np = gh * gw, tok = np / 4;
	char err[512];
	double t0, total, fv, fp, roof;
	int64_t weights_tok = 0, bytes_tok;
	int n;

	ed_model_get_info(m, &info);
	bytes_tok = ed_model_decode_bytes(m, &weights_tok);
	measure_ceilings(&c, threads);
	if (ed_session_new(&s, m,
			   &(struct ed_session_opts){.threads = threads,
						     .max_ctx = tok + gen + 64},
			   err, sizeof err) ||
	    !(n = image_prompt(m, px, gh, gw, true, false, &p, err,
			       sizeof err))) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	t0 = ed_now_ms();
	if (ed_session_generate(s, &p, &g, NULL, NULL, &r, err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	total = (ed_now_ms() - t0 + ms_render + ms_tile) / 1000;
	fv = vision_flops(&info, np);
	fp = prefill_flops(&info, weights_tok, n);
	roof = (c.fma > 0 ? fv / (c.fma * 1e9) : 0) +
	       (c.vnni8 > 0 ? fp / (c.vnni8 * 1e9) : 0) +
	       (c.bw > 0 ? (double)bytes_tok * gen / (c.bw * 1e9) : 0);
	printf("BENCH %s %.1f s ratio=%.2f%s\n", name, total,
	       total > 0 ? roof / total : 0,
	       strcmp(name, "page_default_a4") == 0 ? " target=0.60" : "");
	if (ms_render + ms_tile > 0)
		printf("  (render %.2f s, tiling %.2f s (%.1f%% together);\n",
		       ms_render / 1000, ms_tile / 1000,
		       100 * (ms_render + ms_tile) / 1000 / total);
	printf("  %d prompt tokens with a %dx%d-patch image, %zu generated: "
	       "vision %.1f s (%.0f%%), prefill %.1f s (%.0f%%), decode "
	       "%.1f s (%.0f%%, %.1f tokens/s);\n",
	       n, gw, gh, r.n_tokens, r.ms_vision / 1000,
	       100 * r.ms_vision / 1000 / total, r.ms_prefill / 1000,
	       100 * r.ms_prefill / 1000 / total, r.ms_decode / 1000,
	       100 * r.ms_decode / 1000 / total,
	       r.n_tokens / (r.ms_decode / 1000));
	printf("   roofline %.1f s: vision %.2f TFLOP at the FMA peak %.0f "
	       "GFLOP/s, prefill %.2f TOP at the int8 VNNI peak %.0f GOP/s, "
	       "%d x %.0f MB at the read bandwidth %.1f GB/s)\n",
	       roof, fv / 1e12, c.fma, fp / 1e12, c.vnni8, gen, bytes_tok / 1e6,
	       c.bw);
	if (vit_name) {
		double got = fv / (r.ms_vision / 1000) / 1e9;
		printf("BENCH %s %.1f s ratio=%.2f target=%.2f\n", vit_name,
		       r.ms_vision / 1000, c.fma > 0 ? got / c.fma : 0,
		       vit_target);
		printf("  (%d patches, %d blocks and the resampler: %.0f "
		       "GFLOP/s against the FMA peak %.0f GFLOP/s)\n",
		       np, info.vit_depth, got, c.fma);
	}
	ed_gen_result_release(&r);
	ed_model_prompt_release(&p);
	ed_session_free(s);
	return 0;
}

/*
 * A page end to end on a checkpoint: one image of 1,000 tokens (40 x 100
 * patches) and a short text, then gen tokens (the line kept from before
 * the resolution policy, for comparison).
 */
static int bench_page(const char *path, int threads, int gen, const char *tag)
{
	struct ed_model *m;
	const int gh = 40, gw = 100;
	float *px = malloc((size_t)gh * gw * 588 * sizeof *px);
	char err[512], name[96];
	int rc;

	warm_file(path);
	if (!px || ed_model_open(&m, path, NULL, NULL, err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", px ? err : "out of memory");
		return 1;
	}
	for (long i = 0; i < (long)gh * gw * 588; i++)
		px[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
	snprintf(name, sizeof name, "page_%s_seconds", tag);
	rc = page_run(m, threads, px, gh, gw, gen, name, 0, 0, NULL, 0);
	ed_model_close(m);
	free(px);
	return rc;
}

/*
 * The page a user gets: the first page of a PDF through the default path
 * (drawn at the tiling's size for the default budget, tiled exactly as
 * the processor does), then gen tokens; also the vision tower's line on
 * that page's patch grid.
 */
static int bench_page_default(const char *path, const char *pdf, int threads,
			      int gen, double vit_target, bool int8)
{
	struct ed_model *m;
	struct ed_source src;
	struct ed_doc *doc = NULL;
	struct ed_tile_params tp;
	struct ed_image img;
	struct ed_tiles t;
	char err[512];
	double t0, ms_render, ms_tile;
	int rc;

	warm_file(path);
	ed_render_tile_params_default(&tp);
	tp.max_pixels = ED_PIPELINE_MAX_PIXELS;
	if (ed_pipeline_source_open(&src, pdf, 1 << 30, err, sizeof err) ||
	    ed_pipeline_doc_open(&src, NULL, NULL, &doc, err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	t0 = ed_now_ms();
	rc = ed_pipeline_render_page(doc, 0, NULL, 0, ED_PIPELINE_NOMINAL_DPI,
				     &tp, &img, err, sizeof err);
	ms_render = ed_now_ms() - t0;
	t0 = ed_now_ms();
	if (!rc)
		rc = ed_render_tile_image(&img, &tp, &t, NULL, err, sizeof err);
	ms_tile = ed_now_ms() - t0;
	if (rc || ed_model_open(&m, path, NULL, NULL, err, sizeof err) ||
	    (int8 && ed_model_set_vision_int8(m, err, sizeof err))) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	printf("  (the default page: A4 drawn at %dx%d, %d x %d patches, %zu "
	       "image tokens)\n",
	       img.width, img.height, t.grid_w, t.grid_h,
	       ed_render_tiles_tokens(&t, 2));
	rc = page_run(m, threads, t.pixel_values, t.grid_h, t.grid_w, gen,
		      int8 ? "page_default_a4_vision_int8" : "page_default_a4",
		      ms_render, ms_tile,
		      int8 ? "vit_default_page_int8" : "vit_default_page",
		      vit_target);
	ed_render_tiles_release(&t);
	ed_render_image_release(&img);
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
	ed_model_close(m);
	return rc;
}

/*
 * b sequences decoding together (short prompts of their own, greedy):
 * aggregate tokens/s against its limit, the weights one step touches
 * (everything once, the union of the experts the batch chose) at the
 * read bandwidth; one sequence alone on the same checkpoint beside it.
 */
static int bench_batch(const char *path, int threads, int b, double target)
{
	struct ed_model *m;
	struct ed_session *s[64];
	struct ed_model_info info;
	char err[512], name[64];
	double bw, tps[2] = {0, 0}, limit[2] = {0, 0}, mb[2] = {0, 0};
	const int warm = 4, steps = 12;

	if (b < 1 || b > 64)
		return 2;
	warm_file(path);
	bw = read_gbs(threads);
	if (ed_model_open(&m, path, NULL, NULL, err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	ed_model_get_info(m, &info);
	for (int i = 0; i < b; i++)
		if (ed_session_new(
			&s[i], m,
			&(struct ed_session_opts){
			    .threads = threads,
			    .max_ctx = 64,
			    .pool = i ? ed_session_pool(s[0]) : NULL},
			err, sizeof err)) {
			fprintf(stderr, "bench: %s\n", err);
			return 1;
		}
	/* k = 0: the first sequence alone; k = 1: all b together; each
	 * against the read bandwidth measured just before it */
	for (int k = 0; k < 2; k++) {
		int nb = k ? b : 1;
		double bwk = k ? read_gbs(threads) : bw;
		int32_t tok[64];
		double t0 = 0, bytes = 0;
		for (int i = 0; i < nb; i++) {
			struct ed_prompt p;
			const float *lg;
			int32_t ids[8];
			for (int j = 0; j < 8; j++)
				ids[j] = (int32_t)((i * 977 + j * 7919 + 13) %
						       (info.vocab - 10) +
						   5);
			ed_model_prompt_ids(m, ids, 8, NULL, 0, &p, err,
					    sizeof err);
			ed_session_prefill(s[i], &p, &lg, err, sizeof err);
			ed_model_prompt_release(&p);
			tok[i] = ed_model_sample(lg, info.vocab, NULL, NULL);
		}
		for (int st = 0; st < warm + steps; st++) {
			if (st == warm)
				t0 = ed_now_ms();
			if (ed_session_step_batch(s, nb, tok, err,
						  sizeof err)) {
				fprintf(stderr, "bench: %s\n", err);
				return 1;
			}
			if (st >= warm)
				bytes += (double)ed_session_step_bytes(s[0]);
			for (int i = 0; i < nb; i++)
				tok[i] =
				    ed_model_sample(ed_session_logits(s[i]),
						    info.vocab, NULL, NULL);
		}
		tps[k] = nb * steps / ((ed_now_ms() - t0) / 1000);
		limit[k] = nb * bwk * 1e9 / (bytes / steps);
		mb[k] = bytes / steps / 1e6;
		if (k)
			bw = bwk;
	}
	snprintf(name, sizeof name, "decode_batch%d", b);
	bench_line(name, tps[1], "tok/s", limit[1], target);
	printf("  (%d sequences: %.0f MB of weights a step, limit %.1f tok/s "
	       "at the read bandwidth %.1f GB/s;\n   one sequence alone: "
	       "%.1f tok/s, %.0f MB a step, %.2f of its limit; %.2fx its "
	       "throughput)\n",
	       b, mb[1], limit[1], bw, tps[0], mb[0], tps[0] / limit[0],
	       tps[1] / tps[0]);
	for (int i = b - 1; i >= 0; i--)
		ed_session_free(s[i]);
	ed_model_close(m);
	return 0;
}

/* The vision tower alone on a gh x gw-patch image: seconds, and its
 * arithmetic (blocks, attention, patch embedding, resampler) against the
 * FMA peak. With int8 its linear layers on int8 products (the option). */
static int bench_vit(const char *path, int threads, int gh, int gw,
		     double target_s, bool int8)
{
	struct ed_model *m;
	struct ed_session *s;
	struct ed_model_info info;
	struct ed_prompt p;
	const float *logits;
	const int np = gh * gw, tok = np / 4;
	float *px = malloc((size_t)np * 588 * sizeof *px);
	char err[512];
	double ms_v, ms_d;

	if (!px || ed_model_open(&m, path, NULL, NULL, err, sizeof err) ||
	    (int8 && ed_model_set_vision_int8(m, err, sizeof err)) ||
	    ed_session_new(&s, m,
			   &(struct ed_session_opts){.threads = threads,
						     .max_ctx = tok + 8},
			   err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", px ? err : "out of memory");
		return 1;
	}
	ed_model_get_info(m, &info);
	if (!image_prompt(m, px, gh, gw, false, true, &p, err, sizeof err) ||
	    ed_session_prefill(s, &p, &logits, err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	ed_session_timings(s, &ms_v, &ms_d);
	{
		double fl = vision_flops(&info, np),
		       got = fl / (ms_v / 1000) / 1e9,
		       peak = peak_gops(0, threads);
		printf("BENCH vit_%d_patches_%d_blocks%s %.1f s ratio=%.2f "
		       "target=%.2f\n",
		       np, info.vit_depth, int8 ? "_int8" : "", ms_v / 1000,
		       peak > 0 ? got / peak : 0,
		       peak > 0 ? fl / target_s / 1e9 / peak : 0);
		printf("  (%.0f GFLOP/s%s; ratio: against the float32 FMA peak "
		       "measured now, %.0f GFLOP/s;\n   target: %.0f s; the "
		       "resampler included)\n",
		       got, int8 ? " in float32 terms" : "", peak, target_s);
	}
	ed_model_prompt_release(&p);
	ed_session_free(s);
	ed_model_close(m);
	free(px);
	return 0;
}

static int load_image(void *ud, const char *path, float **pixels, int *t,
		      int *h, int *w, char *err, size_t errlen)
{
	return ed_pipeline_tile_file(path, ud, 200, pixels, t, h, w, err,
				     errlen);
}

static const struct ed_tensor *find(const struct ed_eval *e, const char *n)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->t[i].name, n) == 0)
			return &e->t[i];
	return NULL;
}

/*
 * The int8 vision option against the float32 path on a golden fixture:
 * projector_out's largest difference over its largest value, and the
 * share of the generated tokens that agree. BENCH lines without targets
 * (ratio: 1 - the difference; the share).
 */
static int bench_agree(const char *dir, int threads, const char *tag)
{
	struct ed_model *m[2];
	struct ed_eval ev[2];
	struct ed_tile_params tp;
	char inputs[4200], err[512], name[96];

	snprintf(inputs, sizeof inputs, "%s/inputs.json", dir);
	ed_render_tile_params_default(&tp);
	for (int k = 0; k < 2; k++)
		if (ed_model_open(&m[k], dir, NULL, NULL, err, sizeof err) ||
		    (k && ed_model_set_vision_int8(m[k], err, sizeof err)) ||
		    ed_model_eval(m[k], inputs, load_image, &tp, threads,
				  &ev[k], err, sizeof err)) {
			fprintf(stderr, "bench: %s\n", err);
			return 1;
		}
	{
		const struct ed_tensor *a = find(&ev[1], "projector_out"),
				       *b = find(&ev[0], "projector_out"),
				       *ta = find(&ev[1], "gen_tokens"),
				       *tb = find(&ev[0], "gen_tokens");
		double md = 0, mb = 0;
		int same = 0;
		int64_t n = a && b ? ed_model_tensor_numel(b) : 0,
			nt = ta && tb ? ed_model_tensor_numel(tb) : 0;
		for (int64_t i = 0; i < n; i++) {
			double x = ed_model_tensor_get(a, i),
			       y = ed_model_tensor_get(b, i);
			md = fmax(md, fabs(x - y));
			mb = fmax(mb, fabs(y));
		}
		for (int64_t i = 0; i < nt; i++)
			same += ed_model_tensor_get(ta, i) ==
				ed_model_tensor_get(tb, i);
		snprintf(name, sizeof name, "vision_int8_projector_out_%s",
			 tag);
		printf("BENCH %s %.4f max_rel_diff ratio=%.3f\n", name,
		       mb > 0 ? md / mb : 0, 1 - (mb > 0 ? md / mb : 0));
		snprintf(name, sizeof name, "vision_int8_tokens_%s", tag);
		printf("BENCH %s %.3f agreement ratio=%.3f\n", name,
		       nt ? (double)same / nt : 0, nt ? (double)same / nt : 0);
		printf("  (golden %s: --vision-int8 against the float32 path; "
		       "%lld generated tokens compared)\n",
		       tag, (long long)nt);
	}
	for (int k = 0; k < 2; k++) {
		ed_model_eval_release(&ev[k]);
		ed_model_close(m[k]);
	}
	return 0;
}

static int num(const char *s)
{
	long v = 0;
	return ed_parse_int(s, 1, 100000, &v) ? -1 : (int)v;
}

/* ---- constrained decoding: the mask's cost per decode step ---------- */

/* A vocabulary of n tokens in the real one's size and mix (the real
 * tokenizer.model is not here): control tokens, the 256 byte pieces,
 * JSON punctuation runs, CJK pieces of one to three characters, and
 * English sub-words, half of them with the U+2581 space. */
static uint64_t srnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static int synth_vocab(int32_t n, struct ed_tok_arrays *a)
{
	static const char punct[] = "{}[]\":,. -_/0123456789'()";
	size_t cap = 1u << 19;
	uint64_t *seen = calloc(cap, sizeof *seen), r = 42;
	int32_t k = 0;

	memset(a, 0, sizeof *a);
	a->n = n;
	a->tok = calloc((size_t)n, sizeof *a->tok);
	a->type = calloc((size_t)n, sizeof *a->type);
	if (!seen || !a->tok || !a->type)
		return -1;
	a->unk = 0, a->bos = 1, a->eos = 2, a->pad = -1;
	a->tok[k] = strdup("<unk>"), a->type[k++] = 2;
	a->tok[k] = strdup("<s>"), a->type[k++] = 3;
	a->tok[k] = strdup("</s>"), a->type[k++] = 3;
	for (int b = 0; b < 256; b++) {
		char t[8];
		snprintf(t, sizeof t, "<0x%02X>", b);
		a->tok[k] = strdup(t);
		a->type[k++] = 6;
	}
	while (k < n) {
		char t[64];
		size_t len = 0;
		uint64_t h = 1469598103934665603ull, at;
		uint64_t kind = srnd(&r) % 100;
		if (kind < 1) { /* runs: rules, indentation */
			static const char run[] = "-= _.*";
			int m = 4 + (int)(srnd(&r) % 13);
			char ch = run[srnd(&r) % (sizeof run - 1)];
			for (int i = 0; i < m; i++)
				t[len++] = ch;
		} else if (kind < 4) { /* punctuation and digits */
			int m = 1 + (int)(srnd(&r) % 3);
			for (int i = 0; i < m; i++)
				t[len++] = punct[srnd(&r) % (sizeof punct - 1)];
		} else if (kind < 34) { /* CJK */
			int m = 1 + (int)(srnd(&r) % 3);
			for (int i = 0; i < m; i++) {
				uint32_t cp =
				    0x4E00 + (uint32_t)(srnd(&r) % 0x5200);
				t[len++] = (char)(0xE0 | cp >> 12);
				t[len++] = (char)(0x80 | (cp >> 6 & 0x3F));
				t[len++] = (char)(0x80 | (cp & 0x3F));
			}
		} else { /* sub-words */
			int m = 1 + (int)(srnd(&r) % 6 + srnd(&r) % 7);
			if (srnd(&r) % 2) {
				memcpy(t, "\xE2\x96\x81", 3);
				len = 3;
			}
			for (int i = 0; i < m; i++)
				t[len++] = (char)((srnd(&r) % 9 ? 'a' : 'A') +
						  srnd(&r) % 26);
		}
		t[len] = '\0';
		for (size_t i = 0; i < len; i++)
			h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
		h |= 1;
		for (at = h % cap; seen[at] && seen[at] != h;
		     at = (at + 1) % cap)
			;
		if (seen[at])
			continue;
		seen[at] = h;
		a->tok[k] = strdup(t);
		a->type[k++] = 1;
	}
	free(seen);
	return 0;
}

/* A mid-size schema: an invoice with its lines. */
static const char invoice_schema[] =
    "{\"title\":\"Invoice\",\"type\":\"object\",\"properties\":{"
    "\"number\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2,4}-[0-9]{3,8}$\"},"
    "\"date\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"due\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"vendor\":{\"type\":\"string\",\"maxLength\":80},"
    "\"vendor_email\":{\"type\":\"string\",\"format\":\"email\","
    "\"maxLength\":80},"
    "\"address\":{\"type\":\"string\",\"maxLength\":200},"
    "\"currency\":{\"enum\":[\"EUR\",\"USD\",\"CNY\",\"GBP\",\"JPY\"]},"
    "\"lines\":{\"type\":\"array\",\"maxItems\":30,\"items\":{"
    "\"type\":\"object\",\"properties\":{"
    "\"description\":{\"type\":\"string\",\"maxLength\":120},"
    "\"quantity\":{\"type\":\"integer\"},"
    "\"unit_price\":{\"type\":\"number\"},"
    "\"amount\":{\"type\":\"number\"}},"
    "\"required\":[\"description\",\"amount\"]}},"
    "\"subtotal\":{\"type\":\"number\"},\"tax\":{\"type\":\"number\"},"
    "\"total\":{\"type\":\"number\"},\"paid\":{\"type\":\"boolean\"},"
    "\"notes\":{\"type\":[\"string\",\"null\"],\"maxLength\":300}},"
    "\"required\":[\"number\",\"date\",\"vendor\",\"total\"]}";

/*
 * The decode step with the mask and without: greedy generation of the
 * same length on the same model, once free and once under the invoice
 * schema (the mask found or walked each step, the logits masked, the
 * token fed to the grammar), from the same prompt. The ratio is the free
 * step's time over the constrained one's (target 0.95: the mask adds at
 * most 5 %).
 */
static int bench_mask(const char *path, int threads, int steps, const char *tag)
{
	struct ed_model *m;
	struct ed_session *s;
	struct ed_tok_arrays va;
	struct ed_tokenizer *tok = NULL;
	struct ed_schema *sc = NULL;
	struct ed_constraint *c = NULL;
	struct ed_model_info info;
	char err[512], name[96];
	int32_t ids[8] = {1, 5, 9, 33, 7, 11, 13, 17}, stop = 2;
	double free_ms = 0, con_ms = 0, mask_ms = 0;
	int64_t free_n = 0, con_n = 0, hits, misses, states;

	warm_file(path);
	if (ed_model_open(&m, path, NULL, NULL, err, sizeof err) ||
	    ed_session_new(
		&s, m,
		&(struct ed_session_opts){.threads = threads,
					  .max_ctx = 64 + (int64_t)steps * 2},
		err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	ed_model_get_info(m, &info);
	if (synth_vocab(info.vocab, &va) ||
	    ed_tok_open_arrays(&tok, &va, err, sizeof err) ||
	    ed_schema_compile(&sc, invoice_schema, strlen(invoice_schema), err,
			      sizeof err) ||
	    ed_constraint_new(&c, sc, tok, info.vocab, &stop, 1, err,
			      sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	/* rounds alternate, so both see the machine alike; the best of
	 * three each */
	for (int round = 0; round < 3; round++)
		for (int with = 0; with < 2; with++) {
			struct ed_prompt p;
			struct ed_gen_result r;
			struct ed_gen_params g = {.max_new_tokens = steps,
						  .ignore_eos = true,
						  .constraint =
						      with ? c : NULL};
			ed_model_prompt_ids(m, ids, 8, NULL, 0, &p, err,
					    sizeof err);
			if (ed_session_generate(s, &p, &g, NULL, NULL, &r, err,
						sizeof err)) {
				fprintf(stderr, "bench: %s\n", err);
				return 1;
			}
			ed_model_prompt_release(&p);
			if (r.n_tokens > 1) {
				double per = r.ms_decode / (double)r.n_tokens;
				double *best = with ? &con_ms : &free_ms;
				if (!*best || per < *best)
					*best = per;
				*(with ? &con_n : &free_n) =
				    (int64_t)r.n_tokens;
			}
			ed_gen_result_release(&r);
		}
	/* the mask's own cost, which the step times above cannot resolve
	 * (each run routes its tokens to other experts): the constrained
	 * run's tokens replayed through a fresh constraint (a cold cache,
	 * as for a backend's first answer), each step's mask found or
	 * walked, applied to a vocabulary of logits and the token fed to
	 * the grammar, as the sampler does */
	{
		struct ed_prompt p;
		struct ed_gen_result r;
		struct ed_gen_params g = {.max_new_tokens = steps,
					  .ignore_eos = true,
					  .constraint = c};
		struct ed_constraint *c2;
		struct ed_cstate *st;
		float *lg = malloc((size_t)info.vocab * sizeof *lg),
		      *ml = malloc((size_t)info.vocab * sizeof *ml);
		uint64_t *scratch;
		double t0;
		ed_model_prompt_ids(m, ids, 8, NULL, 0, &p, err, sizeof err);
		ed_session_generate(s, &p, &g, NULL, NULL, &r, err, sizeof err);
		ed_model_prompt_release(&p);
		ed_constraint_new(&c2, sc, tok, info.vocab, &stop, 1, err,
				  sizeof err);
		ed_cstate_new(&st, sc);
		scratch = malloc(ed_constraint_words(c2) * sizeof *scratch);
		for (int32_t i = 0; i < info.vocab; i++)
			lg[i] = (float)((i * 2654435761u) % 1000) / 100.0f;
		t0 = ed_now_ms();
		for (size_t k = 0; k < r.n_tokens; k++) {
			bool ok;
			const uint64_t *bits =
			    ed_constraint_mask(c2, st, scratch, &ok);
			int32_t best = 0;
			for (int32_t i = 0; i < info.vocab; i++) {
				ml[i] = bits[i >> 6] >> (i & 63) & 1
					    ? lg[i]
					    : -INFINITY;
				if (ml[i] > ml[best])
					best = i;
			}
			(void)best;
			ed_constraint_advance(c2, st, r.tokens[k]);
		}
		mask_ms =
		    r.n_tokens ? (ed_now_ms() - t0) / (double)r.n_tokens : 0;
		ed_gen_result_release(&r);
		ed_cstate_free(st);
		ed_constraint_stats(c2, &hits, &misses, &states);
		ed_constraint_free(c2);
		free(scratch);
		free(lg);
		free(ml);
	}
	snprintf(name, sizeof name, "mask_step_%s", tag);
	printf("BENCH %s %.3f ms ratio=%.3f target=0.95\n", name, mask_ms,
	       free_ms / (free_ms + mask_ms));
	printf("  (ratio: a decode step, %.1f ms, over the step with the "
	       "mask, %.3f ms more; end to end %.1f ms a step under the "
	       "invoice schema, %lld and %lld tokens; vocabulary %d "
	       "(synthetic, the real size), longest token %d bytes; masks "
	       "in the replay: %lld from the cache, %lld walked)\n",
	       free_ms, mask_ms, con_ms, (long long)free_n, (long long)con_n,
	       info.vocab, ed_constraint_max_token(c), (long long)hits,
	       (long long)misses);
	ed_constraint_free(c);
	ed_schema_free(sc);
	ed_tok_close(tok);
	ed_tok_arrays_free(&va);
	ed_session_free(s);
	ed_model_close(m);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "render") == 0)
		return bench_render(argv[2], num(argv[3]), num(argv[4]));
	if (argc == 5 && strcmp(argv[1], "tile") == 0)
		return bench_tile(num(argv[2]), num(argv[3]), num(argv[4]));
	if (argc == 4 && strcmp(argv[1], "resize-ref") == 0)
		return bench_resize_ref(num(argv[2]), num(argv[3]));
	if (argc == 4 && strcmp(argv[1], "engine") == 0)
		return bench_engine(argv[2], num(argv[3]));
	if (argc == 6 && strcmp(argv[1], "mask") == 0)
		return bench_mask(argv[2], num(argv[3]), num(argv[4]), argv[5]);
	if (argc == 7 && strcmp(argv[1], "decode") == 0)
		return bench_decode(argv[2], num(argv[3]), argv[4],
				    atof(argv[5]), atof(argv[6]));
	if (argc == 7 && strcmp(argv[1], "prefill") == 0)
		return bench_prefill(argv[2], num(argv[3]), num(argv[4]),
				     argv[5], atof(argv[6]));
	if (argc == 6 && strcmp(argv[1], "page") == 0)
		return bench_page(argv[2], num(argv[3]), num(argv[4]), argv[5]);
	if ((argc == 7 || argc == 8) && strcmp(argv[1], "page-default") == 0)
		return bench_page_default(
		    argv[2], argv[3], num(argv[4]), num(argv[5]), atof(argv[6]),
		    argc == 8 && strcmp(argv[7], "int8") == 0);
	if (argc == 5 && strcmp(argv[1], "agree") == 0)
		return bench_agree(argv[2], num(argv[3]), argv[4]);
	if (argc == 6 && strcmp(argv[1], "batch") == 0)
		return bench_batch(argv[2], num(argv[3]), num(argv[4]),
				   atof(argv[5]));
	if ((argc == 7 || argc == 8) && strcmp(argv[1], "vit") == 0)
		return bench_vit(argv[2], num(argv[3]), num(argv[4]),
				 num(argv[5]), atof(argv[6]),
				 argc == 8 && strcmp(argv[7], "int8") == 0);
	if (argc == 6 && strcmp(argv[1], "quality") == 0)
		return bench_quality(argv[2], argv[3], num(argv[4]), argv[5]);
	fprintf(stderr, "usage: bench render FILE DPI THREADS | tile W H N | "
			"resize-ref W H\n");
	return 2;
}
