/*
 * render.c - `ernie-doc render` and `ernie-doc tiles`: debugging views of
 * what the model would see. render writes each page as PNG; tiles prints
 * each page's original and resized size, patch grid and image-token count,
 * and can dump the first page's patch array in the golden files' layout.
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model.h"
#include "pipeline/pipeline.h"
#include "render/render.h"

static const struct opt render_opts[] = {
    {"help", 'h', false, O_HELP},
    {"quiet", 'q', false, O_QUIET},
    {"pages", 0, true, O_PAGES},
    {"dpi", 0, true, O_DPI},
    {"min-pixels", 0, true, O_MIN_PIXELS},
    {"max-pixels", 0, true, O_MAX_PIXELS},
    {"out", 'o', true, O_OUT},
    {"password-file", 0, true, O_PASSWORD_FILE},
    {"max-page-pixels", 0, true, O_MAX_PAGE_PIXELS},
    {"max-stdin", 0, true, O_MAX_STDIN},
    {NULL, 0, false, 0},
};

static const struct opt tiles_opts[] = {
    {"help", 'h', false, O_HELP},
    {"pages", 0, true, O_PAGES},
    {"dpi", 0, true, O_DPI},
    {"min-pixels", 0, true, O_MIN_PIXELS},
    {"max-pixels", 0, true, O_MAX_PIXELS},
    {"dump", 0, true, O_DUMP},
    {"password-file", 0, true, O_PASSWORD_FILE},
    {"max-page-pixels", 0, true, O_MAX_PAGE_PIXELS},
    {"max-stdin", 0, true, O_MAX_STDIN},
    {NULL, 0, false, 0},
};

void usage_render(FILE *f)
{
	fputs("usage: ernie-doc render [--dpi N] [--pages RANGE] "
	      "[--min-pixels N]\n"
	      "         [--max-pixels N] [--password-file FILE] "
	      "[--max-page-pixels N]\n"
	      "         [--max-stdin BYTES] [-q] -o DIR FILE\n"
	      "  Write each selected page of FILE as DIR/page-NNNN.png, as "
	      "the model\n"
	      "  sees it (PDFs drawn at the size the pixel budget gives them, "
	      "unless\n"
	      "  --dpi).\n",
	      f);
}

void usage_tiles(FILE *f)
{
	fputs("usage: ernie-doc tiles [--dpi N] [--pages RANGE] "
	      "[--min-pixels N]\n"
	      "         [--max-pixels N] [--dump OUT.safetensors] "
	      "[--password-file FILE]\n"
	      "         [--max-page-pixels N] [--max-stdin BYTES] FILE\n"
	      "  Print per page the original and resized size, the patch "
	      "grid and\n"
	      "  the image-token count; --dump writes the first page's "
	      "pixel_values\n"
	      "  and image_grid_thw.\n",
	      f);
}

/* Options and the open document shared by render and tiles. */
struct view {
	const char *file, *out, *dump;
	double dpi;
	struct ed_range pages;
	struct ed_render_limits limits;
	uint64_t max_stdin;
	struct ed_tile_params tp;
	char *password;
	struct ed_source src;
	struct ed_doc *doc;
};

static int parse_view(struct view *v, int argc, char **argv,
		      const struct opt *opts, const char *cmd,
		      void (*usage)(FILE *))
{
	struct optstate os = {0};
	const char *arg;
	char err[256];
	int id, rc;

	memset(v, 0, sizeof *v);
	v->dpi = 0; /* as ocr: PDFs straight at the tiling's size */
	v->max_stdin = ED_PIPELINE_MAX_STDIN;
	ed_render_tile_params_default(&v->tp);
	v->tp.max_pixels = ED_PIPELINE_MAX_PIXELS;
	while ((id = opt_next(&os, argc, argv, opts, cmd, &arg)) != -1) {
		uint64_t n;
		switch (id) {
		case -2: goto usage_err;
		case 0:
			if (v->file) {
				msg("%s: one FILE at a time", cmd);
				goto usage_err;
			}
			v->file = arg;
			break;
		case O_HELP:
			usage(stdout);
			free(v->password);
			return 1;
		case O_QUIET: g_quiet = true; break;
		case O_OUT: v->out = arg; break;
		case O_DUMP: v->dump = arg; break;
		case O_PAGES:
			if (ed_range_parse(&v->pages, arg, err, sizeof err)) {
				msg("%s: %s", cmd, err);
				goto usage_err;
			}
			break;
		case O_DPI:
			if (ed_parse_double(arg, 10, 2400, &v->dpi)) {
				msg("%s: bad --dpi '%s' (10 to 2400)", cmd,
				    arg);
				goto usage_err;
			}
			break;
		case O_PASSWORD_FILE:
			free(v->password);
			if ((rc = read_password_file(arg, &v->password)))
				return -exit_status(rc);
			break;
		case O_MIN_PIXELS:
		case O_MAX_PIXELS:
		case O_MAX_PAGE_PIXELS:
		case O_MAX_STDIN:
			if (ed_parse_size(arg, &n) || n == 0) {
				msg("%s: bad size '%s'", cmd, arg);
				goto usage_err;
			}
			if (id == O_MIN_PIXELS)
				v->tp.min_pixels = n;
			else if (id == O_MAX_PIXELS)
				v->tp.max_pixels = n;
			else if (id == O_MAX_PAGE_PIXELS)
				v->limits.max_pixels = n;
			else
				v->max_stdin = n;
			break;
		}
	}
	if (!v->file) {
		msg("%s: no FILE given (use - for standard input)", cmd);
		goto usage_err;
	}
	if (v->tp.min_pixels > v->tp.max_pixels) {
		msg("%s: --min-pixels is larger than --max-pixels", cmd);
		goto usage_err;
	}
	if ((rc = ed_pipeline_source_open(&v->src, v->file, v->max_stdin, err,
					  sizeof err)) ||
	    (rc = ed_pipeline_doc_open(&v->src, v->password, &v->limits,
				       &v->doc, err, sizeof err))) {
		msg("%s", err);
		return -exit_status(rc);
	}
	return 0;
usage_err:
	usage(stderr);
	free(v->password);
	return -EX_USAGE_;
}

static void release_view(struct view *v)
{
	ed_render_doc_close(v->doc);
	ed_pipeline_source_release(&v->src);
	free(v->password);
}

int cmd_render(int argc, char **argv)
{
	struct view v;
	char err[512];
	int rc =
	    parse_view(&v, argc, argv, render_opts, "render", usage_render);
	int status = 0, n, written = 0;

	if (rc)
		return rc > 0 ? 0 : -rc;
	if (!v.out) {
		msg("render: no output directory (-o DIR)");
		release_view(&v);
		return EX_USAGE_;
	}
	if (mkdir(v.out, 0777) < 0 && errno != EEXIST) {
		msg("cannot create '%s': %s", v.out, strerror(errno));
		release_view(&v);
		return EX_CANTCREAT_;
	}
	n = ed_render_doc_pages(v.doc);
	for (int i = 0; i < n && !g_interrupted; i++) {
		struct ed_image img;
		unsigned char *png;
		size_t len;
		char path[4096];
		FILE *f;

		if (!ed_range_has(&v.pages, i + 1, n))
			continue;
		if ((rc = ed_pipeline_render_page(
			 v.doc, i, NULL, v.dpi, ED_PIPELINE_NOMINAL_DPI, &v.tp,
			 &img, err, sizeof err)) ||
		    (rc = ed_render_png_encode(&img, 6, &png, &len, err,
					       sizeof err))) {
			msg("%s: page %d: %s", v.file, i + 1, err);
			ed_render_image_release(&img);
			status = exit_status(rc);
			continue;
		}
		ed_render_image_release(&img);
		snprintf(path, sizeof path, "%s/page-%04d.png", v.out, i + 1);
		f = fopen(path, "wb");
		if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
			msg("cannot write '%s': %s", path, strerror(errno));
			free(png);
			release_view(&v);
			return EX_CANTCREAT_;
		}
		free(png);
		printf("%s\n", path);
		written++;
	}
	release_view(&v);
	if (g_interrupted)
		return EX_INTERRUPTED;
	if (status && written)
		return EX_SOME_FAILED;
	return status;
}

static int dump_tiles(const char *path, const struct ed_tiles *t)
{
	int64_t thw[3] = {t->grid_t, t->grid_h, t->grid_w};
	struct ed_tensor ts[2] = {
	    {.name = "pixel_values",
	     .dtype = ED_DT_F32,
	     .ndim = 2,
	     .shape = {(int64_t)t->npatches, t->patch_dim},
	     .data = t->pixel_values,
	     .nbytes = t->npatches * (size_t)t->patch_dim * sizeof(float)},
	    {.name = "image_grid_thw",
	     .dtype = ED_DT_I64,
	     .ndim = 2,
	     .shape = {1, 3},
	     .data = thw,
	     .nbytes = sizeof thw},
	};
	char err[512];
	int rc = ed_model_st_write(path, ts, 2, err, sizeof err);

	if (rc)
		msg("%s", err);
	return rc;
}

int cmd_tiles(int argc, char **argv)
{
	struct view v;
	char err[512];
	int rc = parse_view(&v, argc, argv, tiles_opts, "tiles", usage_tiles);
	int status = 0, n;
	bool dumped = false;

	if (rc)
		return rc > 0 ? 0 : -rc;
	n = ed_render_doc_pages(v.doc);
	printf("%-5s %7s %7s %9s %9s %6s %6s %6s %7s %6s\n", "page", "width",
	       "height", "resized_w", "resized_h", "grid_t", "grid_h", "grid_w",
	       "tokens", "dpi");
	for (int i = 0; i < n && !g_interrupted; i++) {
		struct ed_image img;
		struct ed_tiles t;

		if (!ed_range_has(&v.pages, i + 1, n))
			continue;
		if ((rc = ed_pipeline_render_page(
			 v.doc, i, NULL, v.dpi, ED_PIPELINE_NOMINAL_DPI, &v.tp,
			 &img, err, sizeof err)) ||
		    (rc = ed_render_tile_image(&img, &v.tp, &t, NULL, err,
					       sizeof err))) {
			msg("%s: page %d: %s", v.file, i + 1, err);
			ed_render_image_release(&img);
			status = exit_status(rc);
			continue;
		}
		printf("%-5d %7d %7d %9d %9d %6d %6d %6d %7zu ", i + 1,
		       t.orig_w, t.orig_h, t.resized_w, t.resized_h, t.grid_t,
		       t.grid_h, t.grid_w,
		       ed_render_tiles_tokens(&t, v.tp.merge));
		/* the raster's resolution (a scan's tag, or none) */
		if (img.xdpi > 0)
			printf("%6.1f\n", img.xdpi);
		else
			printf("%6s\n", "-");
		if (v.dump && !dumped) {
			dumped = true;
			if ((rc = dump_tiles(v.dump, &t)))
				status = exit_status(rc);
		}
		ed_render_tiles_release(&t);
		ed_render_image_release(&img);
	}
	release_view(&v);
	if (g_interrupted)
		return EX_INTERRUPTED;
	return status;
}
