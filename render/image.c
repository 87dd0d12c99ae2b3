/*
 * image.c - the RGB8 raster every backend produces: allocation under the
 * pixel cap, cropping for zoom regions, alpha over white, PNG encoding
 * (debug output of `render` and the remote backend's image payload).
 */
#include "render_int.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

int image_check_size(uint64_t w, uint64_t h, const struct ed_render_limits *l,
		     char *err, size_t errlen)
{
	uint64_t cap =
	    l && l->max_pixels ? l->max_pixels : ED_RENDER_MAX_PIXELS;

	if (w == 0 || h == 0)
		return ed_err(err, errlen, ED_EFORMAT,
			      "empty image (%llux%llu)", (unsigned long long)w,
			      (unsigned long long)h);
	if (w > INT32_MAX / 4 || h > INT32_MAX / 4 || w * h > cap)
		return ed_err(err, errlen, ED_ETOOBIG,
			      "page of %llux%llu pixels exceeds the limit of "
			      "%llu pixels",
			      (unsigned long long)w, (unsigned long long)h,
			      (unsigned long long)cap);
	return 0;
}

int ed_render_image_init(struct ed_image *img, int width, int height, char *err,
			 size_t errlen)
{
	size_t n;

	memset(img, 0, sizeof *img);
	if (width <= 0 || height <= 0)
		return ed_err(err, errlen, ED_EINVAL, "bad image size %dx%d",
			      width, height);
	n = (size_t)width * (size_t)height * 3;
	img->rgb = malloc(n);
	if (!img->rgb)
		return ed_err(err, errlen, ED_ENOMEM,
			      "out of memory for a %dx%d image", width, height);
	memset(img->rgb, 255, n);
	img->width = width;
	img->height = height;
	return 0;
}

void ed_render_image_release(struct ed_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	memset(img, 0, sizeof *img);
}

void rgba_over_white(const uint8_t *rgba, uint8_t *rgb, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned a = rgba[4 * i + 3], k;
		for (k = 0; k < 3; k++)
			rgb[3 * i + k] = (uint8_t)((rgba[4 * i + k] * a +
						    255 * (255 - a) + 127) /
						   255);
	}
}

/* Fractions to a pixel span [lo, hi) with at least one pixel. */
static void span(double f0, double f1, int size, int *lo, int *hi)
{
	double a = f0 < 0 ? 0 : f0 > 1 ? 1 : f0;
	double b = f1 < 0 ? 0 : f1 > 1 ? 1 : f1;
	int l, h;

	if (b < a) {
		double t = a;
		a = b;
		b = t;
	}
	l = (int)(a * size);
	h = (int)(b * size + 0.999999);
	if (l >= size)
		l = size - 1;
	if (h > size)
		h = size;
	if (h <= l)
		h = l + 1;
	*lo = l;
	*hi = h;
}

void ed_render_rect_pixels(const struct ed_rect *r, int w, int h, int *x0,
			   int *y0, int *x1, int *y1)
{
	span(r->x0, r->x1, w, x0, x1);
	span(r->y0, r->y1, h, y0, y1);
}

int image_crop(const struct ed_image *in, const struct ed_rect *r,
	       struct ed_image *out, char *err, size_t errlen)
{
	int x0, x1, y0, y1, y, rc;

	span(r->x0, r->x1, in->width, &x0, &x1);
	span(r->y0, r->y1, in->height, &y0, &y1);
	if ((rc = ed_render_image_init(out, x1 - x0, y1 - y0, err, errlen)))
		return rc;
	for (y = y0; y < y1; y++)
		memcpy(out->rgb + (size_t)(y - y0) * (size_t)out->width * 3,
		       in->rgb +
			   ((size_t)y * (size_t)in->width + (size_t)x0) * 3,
		       (size_t)out->width * 3);
	out->xdpi = in->xdpi;
	out->ydpi = in->ydpi;
	return 0;
}

/* ---- PNG encoding ------------------------------------------------- */

struct png_wctx {
	struct ed_buf buf;
	int rc;
	char msg[200];
	jmp_buf jb;
};

static void pngw_write(png_structp png, png_bytep data, size_t n)
{
	struct png_wctx *c = png_get_io_ptr(png);
	if (!c->rc)
		c->rc = ed_buf_append(&c->buf, data, n);
}

static void pngw_flush(png_structp png)
{
	(void)png;
}

static void pngw_error(png_structp png, png_const_charp msg)
{
	struct png_wctx *c = png_get_error_ptr(png);
	ed_err(c->msg, sizeof c->msg, 0, "%s", msg);
	longjmp(c->jb, 1);
}

static void pngw_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

int ed_render_png_encode(const struct ed_image *img, int level,
			 unsigned char **out, size_t *outlen, char *err,
			 size_t errlen)
{
	struct png_wctx *c;
	png_structp png;
	png_infop info = NULL;
	volatile int rc = 0;
	int y;

	*out = NULL;
	*outlen = 0;
	c = calloc(1, sizeof *c);
	if (!c)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&c->buf, 0);
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, pngw_error,
				      pngw_warning);
	if (!png) {
		rc = ed_err(err, errlen, ED_ENOMEM, "cannot start png encoder");
		goto out_free;
	}
	info = png_create_info_struct(png);
	if (!info) {
		rc = ed_err(err, errlen, ED_ENOMEM, "cannot start png encoder");
		goto out_destroy;
	}
	if (setjmp(c->jb)) {
		rc = ed_err(err, errlen, ED_EINTERNAL,
			    "png encoding failed: %s", c->msg);
		goto out_destroy;
	}
	png_set_write_fn(png, c, pngw_write, pngw_flush);
	png_set_compression_level(png, level < 0 ? 0 : level > 9 ? 9 : level);
	png_set_IHDR(png, info, (png_uint_32)img->width,
		     (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	if (img->xdpi > 0 && img->ydpi > 0)
		png_set_pHYs(png, info, (png_uint_32)(img->xdpi / 0.0254 + 0.5),
			     (png_uint_32)(img->ydpi / 0.0254 + 0.5),
			     PNG_RESOLUTION_METER);
	png_write_info(png, info);
	for (y = 0; y < img->height; y++)
		png_write_row(png,
			      img->rgb + (size_t)y * (size_t)img->width * 3);
	png_write_end(png, info);
	if (c->rc) {
		rc = ed_err(err, errlen, c->rc, "png encoding: %s",
			    ed_strerror(c->rc));
		goto out_destroy;
	}
	*out = (unsigned char *)ed_buf_detach(&c->buf, outlen);
out_destroy:
	png_destroy_write_struct(&png, &info);
out_free:
	ed_buf_release(&c->buf);
	free(c);
	return rc;
}
