/*
 * tiff.c - TIFF pages through libtiff, read from memory. Every directory
 * that is not a reduced-resolution thumbnail or a transparency mask is a
 * page. Pixels come from TIFFRGBAImage, which covers bilevel (both
 * photometrics), gray 8/16, palette, RGB(A), CMYK, YCbCr/JPEG, every
 * compression libtiff was built with, strips and tiles.
 *
 * Errors go to handlers installed on this handle only
 * (TIFFOpenOptionsSetErrorHandlerExtR), never the process-global ones.
 */
#include "render_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#define MAX_DIRS 65536

struct tiff_state {
	TIFF *tif;
	size_t pos;
	const unsigned char *data;
	size_t len;
	tdir_t *dirs; /* directory index of each page */
	int ndirs;
	char msg[256]; /* last error from libtiff */
	int warnings;
};

static tmsize_t t_read(thandle_t h, void *buf, tmsize_t n)
{
	struct tiff_state *s = h;
	size_t avail = s->pos < s->len ? s->len - s->pos : 0;
	size_t k = (size_t)n < avail ? (size_t)n : avail;

	memcpy(buf, s->data + s->pos, k);
	s->pos += k;
	return (tmsize_t)k;
}

static tmsize_t t_write(thandle_t h, void *buf, tmsize_t n)
{
	(void)h, (void)buf, (void)n;
	return -1;
}

static toff_t t_seek(thandle_t h, toff_t off, int whence)
{
	struct tiff_state *s = h;
	uint64_t base = whence == SEEK_SET   ? 0
			: whence == SEEK_CUR ? s->pos
					     : s->len;
	if (off > UINT64_MAX - base)
		return (toff_t)-1;
	s->pos = (size_t)(base + off);
	return s->pos;
}

static int t_close(thandle_t h)
{
	(void)h;
	return 0;
}

static toff_t t_size(thandle_t h)
{
	return ((struct tiff_state *)h)->len;
}

static int t_map(thandle_t h, void **base, toff_t *size)
{
	struct tiff_state *s = h;

	*base = (void *)s->data; /* read-only: opened with mode "r" */
	*size = s->len;
	return 1;
}

static void t_unmap(thandle_t h, void *base, toff_t size)
{
	(void)h, (void)base, (void)size;
}

static int on_error(TIFF *tif, void *ud, const char *module, const char *fmt,
		    va_list ap)
{
	struct tiff_state *s = ud;
	char m[200];

	(void)tif;
	vsnprintf(m, sizeof m, fmt, ap);
	snprintf(s->msg, sizeof s->msg, "%s%s%s", module ? module : "",
		 module ? ": " : "", m);
	return 1; /* handled: do not call the global handler */
}

static int on_warning(TIFF *tif, void *ud, const char *module, const char *fmt,
		      va_list ap)
{
	(void)tif, (void)module, (void)fmt, (void)ap;
	((struct tiff_state *)ud)->warnings++;
	return 1;
}

static bool is_page(TIFF *tif)
{
	uint32_t sub = 0;

	if (TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &sub) &&
	    (sub & (FILETYPE_REDUCEDIMAGE | FILETYPE_MASK)))
		return false;
	return true;
}

int tiff_open(struct ed_doc *doc, char *err, size_t errlen)
{
	struct tiff_state *s;
	TIFFOpenOptions *opts;
	int rc = 0, cap = 16;

	s = calloc(1, sizeof *s);
	if (!s)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	s->data = doc->data;
	s->len = doc->len;
	opts = TIFFOpenOptionsAlloc();
	if (!opts) {
		free(s);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, s);
	TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, s);
	TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 30);
	s->tif = TIFFClientOpenExt("tiff", "r", s, t_read, t_write, t_seek,
				   t_close, t_size, t_map, t_unmap, opts);
	TIFFOpenOptionsFree(opts);
	if (!s->tif) {
		rc = ed_err(err, errlen, ED_EFORMAT, "bad tiff: %s",
			    s->msg[0] ? s->msg : "cannot read the header");
		goto out_free;
	}
	s->dirs = malloc((size_t)cap * sizeof *s->dirs);
	if (!s->dirs) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out_close;
	}
	for (tdir_t d = 0;; d++) {
		if (is_page(s->tif)) {
			if (s->ndirs == cap) {
				tdir_t *nd;
				cap *= 2;
				nd = realloc(s->dirs, (size_t)cap * sizeof *nd);
				if (!nd) {
					rc = ed_err(err, errlen, ED_ENOMEM,
						    "out of memory");
					goto out_close;
				}
				s->dirs = nd;
			}
			s->dirs[s->ndirs++] = d;
		}
		if (d + 1 >= MAX_DIRS) {
			rc = ed_err(err, errlen, ED_ETOOBIG,
				    "tiff has more than %d directories",
				    MAX_DIRS);
			goto out_close;
		}
		if (!TIFFReadDirectory(s->tif))
			break;
	}
	if (s->ndirs == 0) {
		rc = ed_err(err, errlen, ED_EFORMAT,
			    "tiff has no full-resolution page");
		goto out_close;
	}
	doc->tiff = s;
	doc->npages = s->ndirs;
	return 0;
out_close:
	TIFFClose(s->tif);
out_free:
	free(s->dirs);
	free(s);
	return rc;
}

void tiff_close(struct ed_doc *doc)
{
	struct tiff_state *s = doc->tiff;

	if (!s)
		return;
	TIFFClose(s->tif);
	free(s->dirs);
	free(s);
	doc->tiff = NULL;
}

static int select_page(struct ed_doc *doc, int page, char *err, size_t errlen)
{
	struct tiff_state *s = doc->tiff;

	s->msg[0] = '\0';
	if (!TIFFSetDirectory(s->tif, s->dirs[page]))
		return ed_err(err, errlen, ED_EFORMAT,
			      "bad tiff: cannot read page %d: %s", page + 1,
			      s->msg);
	return 0;
}

static void resolution(TIFF *tif, double *xdpi, double *ydpi)
{
	float xr = 0, yr = 0;
	uint16_t unit = RESUNIT_INCH;

	*xdpi = *ydpi = 0;
	TIFFGetFieldDefaulted(tif, TIFFTAG_RESOLUTIONUNIT, &unit);
	if (!TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xr) || !(xr > 0) ||
	    unit == RESUNIT_NONE)
		return;
	if (!TIFFGetField(tif, TIFFTAG_YRESOLUTION, &yr) || !(yr > 0))
		yr = xr;
	*xdpi = unit == RESUNIT_CENTIMETER ? xr * 2.54 : xr;
	*ydpi = unit == RESUNIT_CENTIMETER ? yr * 2.54 : yr;
}

int tiff_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
		   char *err, size_t errlen)
{
	TIFF *tif = doc->tiff->tif;
	uint32_t w = 0, h = 0;
	int rc;

	if ((rc = select_page(doc, page, err, errlen)))
		return rc;
	TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
	TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
	if ((rc = image_check_size(w, h, &doc->lim, err, errlen)))
		return rc;
	info->width_px = (int)w;
	info->height_px = (int)h;
	resolution(tif, &info->xdpi, &info->ydpi);
	info->width_pt = info->xdpi > 0 ? w * 72.0 / info->xdpi : w;
	info->height_pt = info->ydpi > 0 ? h * 72.0 / info->ydpi : h;
	return 0;
}

int tiff_decode(struct ed_doc *doc, int page, struct ed_image *out, char *err,
		size_t errlen)
{
	struct tiff_state *s = doc->tiff;
	TIFFRGBAImage ri;
	char emsg[1024] = "";
	uint32_t *raster = NULL, w = 0, h = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = select_page(doc, page, err, errlen)))
		return rc;
	TIFFGetField(s->tif, TIFFTAG_IMAGEWIDTH, &w);
	TIFFGetField(s->tif, TIFFTAG_IMAGELENGTH, &h);
	if ((rc = image_check_size(w, h, &doc->lim, err, errlen)))
		return rc;
	if (!TIFFRGBAImageOK(s->tif, emsg))
		return ed_err(err, errlen, ED_EFORMAT,
			      "unsupported tiff page %d: %s", page + 1, emsg);
	if (!TIFFRGBAImageBegin(&ri, s->tif, 0, emsg))
		return ed_err(err, errlen, ED_EFORMAT, "bad tiff page %d: %s",
			      page + 1, emsg);
	ri.req_orientation = ORIENTATION_TOPLEFT;
	raster = malloc((size_t)w * h * sizeof *raster);
	if (!raster) {
		rc = ed_err(err, errlen, ED_ENOMEM,
			    "out of memory for a %ux%u page", w, h);
		goto out_end;
	}
	if (!TIFFRGBAImageGet(&ri, raster, w, h)) {
		rc = ed_err(err, errlen, ED_EFORMAT, "bad tiff page %d: %s",
			    page + 1, s->msg[0] ? s->msg : "cannot decode");
		goto out_end;
	}
	if ((rc = ed_render_image_init(out, (int)w, (int)h, err, errlen)))
		goto out_end;
	resolution(s->tif, &out->xdpi, &out->ydpi);
	for (size_t i = 0; i < (size_t)w * h; i++) {
		/* TIFFRGBAImage gives premultiplied alpha: over white is
		 * c + (255 - a) */
		uint32_t p = raster[i], a = TIFFGetA(p);
		uint32_t r = TIFFGetR(p) + 255 - a, g = TIFFGetG(p) + 255 - a,
			 b = TIFFGetB(p) + 255 - a;
		out->rgb[3 * i] = (uint8_t)(r > 255 ? 255 : r);
		out->rgb[3 * i + 1] = (uint8_t)(g > 255 ? 255 : g);
		out->rgb[3 * i + 2] = (uint8_t)(b > 255 ? 255 : b);
	}
out_end:
	TIFFRGBAImageEnd(&ri);
	free(raster);
	return rc;
}

const char *tiff_version(void)
{
	/* "LIBTIFF, Version 4.5.0\nCopyright ..." -> "4.5.0" */
	static char v[32];
	const char *s = strstr(TIFFGetVersion(), "Version ");
	size_t n;

	if (!s)
		return "?";
	s += 8;
	n = strcspn(s, " \n");
	snprintf(v, sizeof v, "%.*s", (int)(n < 31 ? n : 31), s);
	return v;
}
