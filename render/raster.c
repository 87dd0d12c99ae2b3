/*
 * raster.c - PNG (libpng) and JPEG (libjpeg) decoding from memory into
 * RGB8. Values are taken as stored (no gamma or ICC transform), as Pillow
 * does, so tiling sees the same bytes the reference saw; alpha is
 * composited over white; CMYK JPEG is converted with Adobe's inversion.
 *
 * Both libraries report errors through per-decoder callbacks here; nothing
 * reaches stderr and no global handler is installed.
 */
#include "render_int.h"

#include <stdio.h> /* before jpeglib.h, which needs FILE */

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ---- PNG ---------------------------------------------------------- */

struct png_rctx {
	const unsigned char *p;
	size_t len, pos;
	char msg[200];
	jmp_buf jb;
};

static void pngr_read(png_structp png, png_bytep out, size_t n)
{
	struct png_rctx *c = png_get_io_ptr(png);

	if (n > c->len - c->pos)
		png_error(png, "file is truncated");
	memcpy(out, c->p + c->pos, n);
	c->pos += n;
}

static void pngr_error(png_structp png, png_const_charp msg)
{
	struct png_rctx *c = png_get_error_ptr(png);

	snprintf(c->msg, sizeof c->msg, "%s", msg);
	longjmp(c->jb, 1);
}

static void pngr_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/*
 * Decode (or, with out == NULL, only read the header of) a PNG. w/h/dpi
 * are reported either way.
 */
static int png_decode(const void *data, size_t len,
		      const struct ed_render_limits *lim, struct ed_image *out,
		      int *w, int *h, double *dpi, char *err, size_t errlen)
{
	struct png_rctx *c;
	png_structp png;
	png_infop info = NULL;
	uint8_t *volatile rgba = NULL;
	png_uint_32 pw, ph, xres, yres;
	int depth, ctype, unit, interlaced, rc = 0;

	/* IHDR is the first chunk: refuse a bomb before libpng reads on */
	if (len >= 24 && memcmp((const char *)data + 12, "IHDR", 4) == 0) {
		const unsigned char *h8 = (const unsigned char *)data + 16;
		uint32_t iw = (uint32_t)h8[0] << 24 | (uint32_t)h8[1] << 16 |
			      (uint32_t)h8[2] << 8 | h8[3];
		uint32_t ih = (uint32_t)h8[4] << 24 | (uint32_t)h8[5] << 16 |
			      (uint32_t)h8[6] << 8 | h8[7];
		if (iw && ih &&
		    (rc = image_check_size(iw, ih, lim, err, errlen)))
			return rc;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	c->p = data;
	c->len = len;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, pngr_error,
				     pngr_warning);
	if (!png) {
		rc = ed_err(err, errlen, ED_ENOMEM, "cannot start png decoder");
		goto out_free;
	}
	info = png_create_info_struct(png);
	if (!info) {
		rc = ed_err(err, errlen, ED_ENOMEM, "cannot start png decoder");
		goto out_destroy;
	}
	if (setjmp(c->jb)) {
		rc = ed_err(err, errlen, ED_EFORMAT, "bad png: %s", c->msg);
		if (out)
			ed_render_image_release(out);
		goto out_destroy;
	}
	png_set_read_fn(png, c, pngr_read);
	/* metadata chunks (iCCP, zTXt) may not inflate past 8 MiB */
	png_set_chunk_malloc_max(png, 8u << 20);
	png_read_info(png, info);
	png_get_IHDR(png, info, &pw, &ph, &depth, &ctype, &interlaced, NULL,
		     NULL);
	if ((rc = image_check_size(pw, ph, lim, err, errlen)))
		goto out_destroy;
	*w = (int)pw;
	*h = (int)ph;
	*dpi = 0;
	if (png_get_pHYs(png, info, &xres, &yres, &unit) &&
	    unit == PNG_RESOLUTION_METER && xres > 0)
		*dpi = xres * 0.0254;
	if (!out)
		goto out_destroy;

	if (ctype == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (png_get_valid(png, info, PNG_INFO_tRNS))
		png_set_tRNS_to_alpha(png);
	if (depth == 16)
		png_set_strip_16(png);
	if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
		png_set_gray_to_rgb(png);
	png_set_filler(png, 0xFF, PNG_FILLER_AFTER);
	if (interlaced != PNG_INTERLACE_NONE)
		png_set_interlace_handling(png);
	png_read_update_info(png, info);
	if (png_get_rowbytes(png, info) != (size_t)pw * 4) {
		rc = ed_err(err, errlen, ED_EINTERNAL,
			    "png transform gave %zu bytes per row, not %zu",
			    png_get_rowbytes(png, info), (size_t)pw * 4);
		goto out_destroy;
	}
	if ((rc = ed_render_image_init(out, (int)pw, (int)ph, err, errlen)))
		goto out_destroy;
	out->xdpi = out->ydpi = *dpi;
	if (interlaced == PNG_INTERLACE_NONE) {
		/* row by row: no full RGBA copy for large scans */
		rgba = malloc((size_t)pw * 4);
		if (!rgba) {
			ed_render_image_release(out);
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out_destroy;
		}
		for (png_uint_32 y = 0; y < ph; y++) {
			png_read_row(png, rgba, NULL);
			rgba_over_white(rgba, out->rgb + (size_t)y * pw * 3,
					pw);
		}
	} else {
		png_bytep *rows;
		rgba = malloc((size_t)pw * ph * 4);
		rows = rgba ? malloc(ph * sizeof *rows) : NULL;
		if (!rows) {
			ed_render_image_release(out);
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out_destroy;
		}
		for (png_uint_32 y = 0; y < ph; y++)
			rows[y] = rgba + (size_t)y * pw * 4;
		png_read_image(png, rows);
		free(rows);
		rgba_over_white(rgba, out->rgb, (size_t)pw * ph);
	}
	png_read_end(png, NULL);
out_destroy:
	png_destroy_read_struct(&png, &info, NULL);
out_free:
	free(rgba);
	free(c);
	return rc;
}

int png_probe(struct ed_doc *doc, char *err, size_t errlen)
{
	double dpi;
	int rc = png_decode(doc->data, doc->len, &doc->lim, NULL,
			    &doc->raster_w, &doc->raster_h, &dpi, err, errlen);
	doc->raster_xdpi = doc->raster_ydpi = dpi;
	return rc;
}

int ed_render_png_decode(const void *data, size_t len,
			 const struct ed_render_limits *limits,
			 struct ed_image *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (ed_render_sniff(data, len) != ED_RENDER_PNG)
		return ed_err(err, errlen, ED_EFORMAT, "not a png file");
	return png_decode_mem(data, len, limits, out, err, errlen);
}

const char *png_version(void)
{
	return png_get_libpng_ver(NULL);
}

/* ---- JPEG --------------------------------------------------------- */

struct jpeg_ectx {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail(j_common_ptr cinfo)
{
	struct jpeg_ectx *e = (struct jpeg_ectx *)cinfo->err;

	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jb, 1);
}

static void jpeg_quiet(j_common_ptr cinfo)
{
	(void)cinfo; /* warnings (corrupt data recovered) are not printed */
}

static int jpeg_decode(const void *data, size_t len,
		       const struct ed_render_limits *lim, struct ed_image *out,
		       int *w, int *h, double *dpi, char *err, size_t errlen)
{
	struct jpeg_decompress_struct *ci;
	struct jpeg_ectx *e;
	JSAMPLE *volatile row = NULL;
	int rc = 0;

	ci = calloc(1, sizeof *ci);
	e = calloc(1, sizeof *e);
	if (!ci || !e) {
		free(ci);
		free(e);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	ci->err = jpeg_std_error(&e->pub);
	e->pub.error_exit = jpeg_fail;
	e->pub.output_message = jpeg_quiet;
	if (setjmp(e->jb)) {
		rc = ed_err(err, errlen, ED_EFORMAT, "bad jpeg: %s", e->msg);
		if (out)
			ed_render_image_release(out);
		goto out_destroy;
	}
	jpeg_create_decompress(ci);
	jpeg_mem_src(ci, (const unsigned char *)data, (unsigned long)len);
	jpeg_read_header(ci, TRUE);
	if ((rc = image_check_size(ci->image_width, ci->image_height, lim, err,
				   errlen)))
		goto out_destroy;
	*w = (int)ci->image_width;
	*h = (int)ci->image_height;
	*dpi = 0;
	if (ci->saw_JFIF_marker && ci->X_density > 0) {
		if (ci->density_unit == 1)
			*dpi = ci->X_density;
		else if (ci->density_unit == 2)
			*dpi = ci->X_density * 2.54;
	}
	if (!out)
		goto out_destroy;
	if (ci->jpeg_color_space == JCS_CMYK ||
	    ci->jpeg_color_space == JCS_YCCK)
		ci->out_color_space = JCS_CMYK;
	else
		ci->out_color_space = JCS_RGB;
	jpeg_start_decompress(ci);
	if ((rc = ed_render_image_init(out, *w, *h, err, errlen)))
		goto out_abort;
	out->xdpi = out->ydpi = *dpi;
	row = malloc((size_t)ci->output_width * (size_t)ci->output_components);
	if (!row) {
		ed_render_image_release(out);
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out_abort;
	}
	while (ci->output_scanline < ci->output_height) {
		uint8_t *dst =
		    out->rgb + (size_t)ci->output_scanline * (size_t)*w * 3;
		JSAMPROW rp = row;
		jpeg_read_scanlines(ci, &rp, 1);
		if (ci->out_color_space == JCS_RGB) {
			memcpy(dst, row, (size_t)*w * 3);
			continue;
		}
		for (int x = 0; x < *w; x++) {
			unsigned c = row[4 * x], m = row[4 * x + 1],
				 y = row[4 * x + 2], k = row[4 * x + 3];
			if (!ci->saw_Adobe_marker) {
				c = 255 - c, m = 255 - m;
				y = 255 - y, k = 255 - k;
			}
			/* Adobe stores inverted CMYK: value = 255 - ink */
			dst[3 * x] = (uint8_t)((c * k + 127) / 255);
			dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
			dst[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
		}
	}
	jpeg_finish_decompress(ci);
	goto out_destroy;
out_abort:
	jpeg_abort_decompress(ci);
out_destroy:
	jpeg_destroy_decompress(ci);
	free(row);
	free(ci);
	free(e);
	return rc;
}

int jpeg_probe(struct ed_doc *doc, char *err, size_t errlen)
{
	double dpi;
	int rc = jpeg_decode(doc->data, doc->len, &doc->lim, NULL,
			     &doc->raster_w, &doc->raster_h, &dpi, err, errlen);
	doc->raster_xdpi = doc->raster_ydpi = dpi;
	return rc;
}

int jpeg_decode_mem(const void *data, size_t len,
		    const struct ed_render_limits *lim, struct ed_image *out,
		    char *err, size_t errlen)
{
	int w, h;
	double dpi;

	memset(out, 0, sizeof *out);
	return jpeg_decode(data, len, lim, out, &w, &h, &dpi, err, errlen);
}

int jpeg_version(void)
{
	return JPEG_LIB_VERSION;
}

int png_decode_mem(const void *data, size_t len,
		   const struct ed_render_limits *lim, struct ed_image *out,
		   char *err, size_t errlen)
{
	int w, h;
	double dpi;

	memset(out, 0, sizeof *out);
	return png_decode(data, len, lim, out, &w, &h, &dpi, err, errlen);
}
