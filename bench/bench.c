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
 *
 * Each prints one line "<value> <unit>" on stdout.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render.h"
#include "tests/util.h"

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

	if (!data || threads < 1 || threads > 16)
		return 2;
	t0 = ed_now_ms();
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){data, len, dpi, i, threads, 0, 0};
		pthread_create(&th[i], NULL, render_pages, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		if (w[i].rc)
			return 1;
		pages += w[i].pages;
	}
	printf("%.3f pages/s\n", pages / ((ed_now_ms() - t0) / 1000.0));
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

static int num(const char *s)
{
	long v = 0;
	return ed_parse_int(s, 1, 100000, &v) ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "render") == 0)
		return bench_render(argv[2], num(argv[3]), num(argv[4]));
	if (argc == 5 && strcmp(argv[1], "tile") == 0)
		return bench_tile(num(argv[2]), num(argv[3]), num(argv[4]));
	if (argc == 4 && strcmp(argv[1], "resize-ref") == 0)
		return bench_resize_ref(num(argv[2]), num(argv[3]));
	fprintf(stderr, "usage: bench render FILE DPI THREADS | tile W H N | "
			"resize-ref W H\n");
	return 2;
}
