/*
 * render.h - documents to pixels: PDF (poppler-glib + cairo), TIFF
 * (libtiff), PNG (libpng), JPEG (libjpeg); the PDF text layer with word
 * boxes; and the ViT tiling (smart_resize, Pillow-exact bicubic, CLIP
 * normalization, 14-px patches in 2x2 merge-block order).
 *
 * render/ knows pixels and documents, not the model: tiling parameters come
 * in as arguments. It never prints; errors come back as ED_E* codes with a
 * one-line message in the caller's buffer.
 *
 * Threads: a struct ed_doc belongs to one thread (poppler and libtiff
 * handles are not shared); different documents may be used concurrently.
 *
 * Usage:
 *     struct ed_doc *doc;
 *     struct ed_image img;
 *     struct ed_tiles t;
 *     struct ed_tile_params tp;
 *     char err[256];
 *     if (ed_render_doc_open(&doc, data, len, NULL, NULL, err, sizeof err))
 *             ... fail ...
 *     for (int i = 0; i < ed_render_doc_pages(doc); i++) {
 *             if (ed_render_page(doc, i, 200, NULL, &img, err, sizeof err))
 *                     ... fail ...
 *             ed_render_tile_params_default(&tp);
 *             ed_render_tile_image(&img, &tp, &t, err, sizeof err);
 *             ... t.pixel_values [t.npatches][t.patch_dim] ...
 *             ed_render_tiles_release(&t);
 *             ed_render_image_release(&img);
 *     }
 *     ed_render_doc_close(doc);
 */
#ifndef ED_RENDER_H
#define ED_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ---- images ------------------------------------------------------- */

/* An RGB8 raster, rows packed (stride = 3 * width). Owns rgb. */
struct ed_image {
	int width, height;
	uint8_t *rgb;
	double xdpi, ydpi; /* resolution if known, else 0 */
};

/* Allocate a width x height image filled with white. 0 or ED_E*. */
int ed_render_image_init(struct ed_image *img, int width, int height, char *err,
			 size_t errlen);
void ed_render_image_release(struct ed_image *img);

/*
 * Encode img as an 8-bit RGB PNG (zlib level 0..9). On success *out is
 * malloc'd (caller frees) and *outlen set. 0 or ED_E*.
 */
int ed_render_png_encode(const struct ed_image *img, int level,
			 unsigned char **out, size_t *outlen, char *err,
			 size_t errlen);

/* ---- documents ---------------------------------------------------- */

enum ed_render_kind {
	ED_RENDER_UNKNOWN = 0,
	ED_RENDER_PDF,
	ED_RENDER_TIFF,
	ED_RENDER_PNG,
	ED_RENDER_JPEG,
};

/* Identify by magic bytes only (never by file name). */
enum ed_render_kind ed_render_sniff(const void *data, size_t len);
/* "pdf", "tiff", "png", "jpeg" or "unknown". */
const char *ed_render_kind_name(enum ed_render_kind kind);

/* Caps against decompression bombs. 0 fields take the defaults. */
struct ed_render_limits {
	uint64_t max_pixels; /* per page raster; default ED_RENDER_MAX_PIXELS */
};
/* Pillow's DecompressionBombError threshold (2 x 89,478,485). */
#define ED_RENDER_MAX_PIXELS 178956970ull

struct ed_doc;

/*
 * Open a document held in memory. The bytes are not copied: data must stay
 * valid and unchanged until ed_render_doc_close(). password may be NULL.
 * Returns 0 and sets *out, or ED_EFORMAT (not a document we can read, or
 * damaged), ED_EPASSWORD (encrypted and the password is missing or wrong),
 * ED_ETOOBIG (a page exceeds the pixel cap), ED_ENOMEM.
 */
int ed_render_doc_open(struct ed_doc **out, const void *data, size_t len,
		       const char *password,
		       const struct ed_render_limits *limits, char *err,
		       size_t errlen);
void ed_render_doc_close(struct ed_doc *doc);

enum ed_render_kind ed_render_doc_kind(const struct ed_doc *doc);
/* Number of pages (TIFF: directories that are not reduced-resolution
 * thumbnails or masks). Always >= 1 for an open document. */
int ed_render_doc_pages(const struct ed_doc *doc);
/* Title from the document's metadata, or NULL. Owned by doc. */
const char *ed_render_doc_title(const struct ed_doc *doc);

struct ed_page_info {
	double width_pt, height_pt; /* size in points (1/72 in), as shown */
	int width_px, height_px;    /* raster inputs: native pixels; PDF: 0 */
	double xdpi, ydpi;	    /* raster inputs: resolution tags or 0 */
};

/* page is 0-based. 0 or ED_EINVAL / ED_EFORMAT. */
int ed_render_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
			char *err, size_t errlen);

/*
 * Fraction (0..1) of a PDF page's area covered by drawn images; raster
 * pages are all image (1.0). 0 or ED_E*.
 */
int ed_render_page_image_coverage(struct ed_doc *doc, int page,
				  double *fraction, char *err, size_t errlen);

/* A region of a page as fractions of its width and height (0..1),
 * origin top-left, as the page is shown (rotation applied). */
struct ed_rect {
	double x0, y0, x1, y1;
};

/* The pixels [*x0, *x1) x [*y0, *y1) a region covers on a w x h raster:
 * clamped to it, rounded outwards, at least one pixel: the crop that
 * ed_render_page() makes of raster pages. */
void ed_render_rect_pixels(const struct ed_rect *r, int w, int h, int *x0,
			   int *y0, int *x1, int *y1);

/*
 * Rasterize page (0-based) to RGB8 on white. PDF pages are rendered at dpi;
 * raster pages come at their native resolution and dpi is ignored. With a
 * region, only that part is produced (PDF: rendered from the vector source,
 * raster: cropped from the original). out is initialized here; release it
 * with ed_render_image_release(). 0 or ED_E*; ED_ETOOBIG when the raster
 * would exceed the pixel cap.
 */
int ed_render_page(struct ed_doc *doc, int page, double dpi,
		   const struct ed_rect *region, struct ed_image *out,
		   char *err, size_t errlen);

/*
 * Rasterize a PDF page (or a region of it, as above) straight to width x
 * height pixels, each axis scaled on its own: the size the tiling wants,
 * drawn from the vector source instead of resampled from a larger
 * raster. out->xdpi/ydpi give the resolution per axis. ED_EINVAL for
 * raster pages (their pixels are fixed: resize them); else as
 * ed_render_page().
 */
int ed_render_page_sized(struct ed_doc *doc, int page, int width, int height,
			 const struct ed_rect *region, struct ed_image *out,
			 char *err, size_t errlen);

/* A word of the text layer: its bytes in ed_text.text and its box in
 * points, origin top-left of the shown page. */
struct ed_word {
	size_t off, len;
	double x0, y0, x1, y1;
};

struct ed_text {
	char *text; /* valid UTF-8, NUL-terminated */
	size_t len;
	struct ed_word *words;
	size_t nwords;
};

/*
 * The text layer of a page with word boxes. Raster inputs have none: the
 * result is empty text and 0 words. out is initialized here; release it
 * with ed_render_text_release(). 0 or ED_E*.
 */
int ed_render_page_text(struct ed_doc *doc, int page, struct ed_text *out,
			char *err, size_t errlen);
void ed_render_text_release(struct ed_text *t);

/* "poppler 22.12.0, cairo 1.16.0, libtiff 4.5.0, ..." into buf. */
void ed_render_versions(char *buf, size_t len);

/* ---- ViT tiling --------------------------------------------------- */

struct ed_tile_params {
	int patch;	       /* 14 */
	int merge;	       /* 2: spatial merge, factor = patch * merge */
	uint64_t min_pixels;   /* 3136 */
	uint64_t max_pixels;   /* 4,842,768 */
	float mean[3], std[3]; /* CLIP */
};

#define ED_TILE_MIN_PIXELS 3136ull
#define ED_TILE_MAX_PIXELS 4842768ull

void ed_render_tile_params_default(struct ed_tile_params *p);

/*
 * smart_resize as the reference processor computes it (Python round-half-
 * to-even, floor on the max_pixels path, ceil on the min_pixels path).
 * Returns 0 and the target size, or ED_EFORMAT when the aspect ratio
 * exceeds 200 (the reference refuses such images) or a side is 0.
 */
int ed_render_tile_smart_resize(int height, int width, int factor,
				uint64_t min_pixels, uint64_t max_pixels,
				int *out_h, int *out_w, char *err,
				size_t errlen);

/*
 * Resize with Pillow's 8-bit BICUBIC (a = -0.5, support scaled by the
 * downscale factor, 22-bit fixed-point weights, horizontal pass into a
 * uint8 intermediate, then vertical): bit-identical to PIL resize().
 * out is initialized here. 0 or ED_E*.
 */
int ed_render_tile_resize(const struct ed_image *in, int out_w, int out_h,
			  struct ed_image *out, char *err, size_t errlen);

/* The same resize computed the plain way (float weights per output pixel,
 * no separable tables): the reference the fast path is tested against. */
int ed_render_tile_resize_ref(const struct ed_image *in, int out_w, int out_h,
			      struct ed_image *out, char *err, size_t errlen);

struct ed_tiles {
	int orig_w, orig_h;	  /* input raster */
	int resized_w, resized_h; /* after smart_resize */
	int grid_t, grid_h,
	    grid_w;	     /* image_grid_thw in patches: 1, h/14, w/14 */
	size_t npatches;     /* grid_h * grid_w */
	int patch_dim;	     /* 3 * patch * patch = 588 */
	float *pixel_values; /* [npatches][patch_dim], owned */
};

/* Number of image tokens the LM sees: npatches / merge^2. */
size_t ed_render_tiles_tokens(const struct ed_tiles *t, int merge);

/*
 * The whole preprocessing of one image: smart_resize, bicubic resize,
 * x * (1/255) in double then float, (x - mean) / std in float, patches of
 * (c, py, px) values in 2x2 merge-block order. out is initialized here.
 * With resized non-NULL the uint8 resized image is also returned (the
 * caller releases it). 0 or ED_E*.
 */
int ed_render_tile_image(const struct ed_image *img,
			 const struct ed_tile_params *p, struct ed_tiles *out,
			 struct ed_image *resized, char *err, size_t errlen);
void ed_render_tiles_release(struct ed_tiles *t);

/* Decode a standalone PNG held in memory into RGB8 (alpha composited over
 * white), as the document path does. Used for model inputs and tests. */
int ed_render_png_decode(const void *data, size_t len,
			 const struct ed_render_limits *limits,
			 struct ed_image *out, char *err, size_t errlen);

#endif
