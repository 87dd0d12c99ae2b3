/*
 * pdf.c - PDF pages through poppler-glib, rasterized with cairo on white,
 * and the text layer with word boxes. Sizes are as shown (the page's
 * /Rotate applied), in points with the origin at the top left.
 *
 * A PopplerDocument is single-threaded: one per struct ed_doc, never
 * shared. The document bytes are wrapped, not copied.
 */
#include "render_int.h"

#include <cairo.h>
#include <gio/gio.h>
#include <math.h>
#include <poppler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pdf_state {
	PopplerDocument *pd;
	GBytes *bytes;
	GInputStream *stream;
};

static int gerror_code(const GError *e)
{
	if (e && e->domain == POPPLER_ERROR &&
	    e->code == POPPLER_ERROR_ENCRYPTED)
		return ED_EPASSWORD;
	return ED_EFORMAT;
}

int pdf_open(struct ed_doc *doc, const char *password, char *err, size_t errlen)
{
	struct pdf_state *s;
	GError *ge = NULL;
	gchar *title;
	int rc;

	s = calloc(1, sizeof *s);
	if (!s)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	s->bytes = g_bytes_new_static(doc->data, doc->len);
	if (password) {
		/* poppler 22.12's from_bytes/from_data crash on a wrong
		 * password (the retry reuses a freed stream); the stream
		 * constructor does not, and reads our bytes without a copy */
		s->stream = g_memory_input_stream_new_from_bytes(s->bytes);
		s->pd = poppler_document_new_from_stream(
		    s->stream, (goffset)doc->len, password, NULL, &ge);
	} else {
		s->pd = poppler_document_new_from_bytes(s->bytes, NULL, &ge);
	}
	if (!s->pd) {
		rc = gerror_code(ge);
		if (rc == ED_EPASSWORD)
			ed_err(err, errlen, rc, "%s",
			       password ? "wrong password for encrypted pdf"
					: "pdf is encrypted: a password is "
					  "needed (--password-file)");
		else
			ed_err(err, errlen, rc, "bad pdf: %s",
			       ge && ge->message ? ge->message : "unreadable");
		g_clear_error(&ge);
		if (s->stream)
			g_object_unref(s->stream);
		g_bytes_unref(s->bytes);
		free(s);
		return rc;
	}
	doc->npages = poppler_document_get_n_pages(s->pd);
	if (doc->npages < 1) {
		g_object_unref(s->pd);
		if (s->stream)
			g_object_unref(s->stream);
		g_bytes_unref(s->bytes);
		free(s);
		return ed_err(err, errlen, ED_EFORMAT, "bad pdf: no pages");
	}
	title = poppler_document_get_title(s->pd);
	if (title && *title) {
		struct ed_buf b;
		ed_buf_init(&b, 4096);
		if (ed_utf8_clean(&b, title, strlen(title)) == 0)
			doc->title = ed_buf_detach(&b, NULL);
		ed_buf_release(&b);
	}
	g_free(title);
	doc->pdf = s;
	return 0;
}

void pdf_close(struct ed_doc *doc)
{
	struct pdf_state *s = doc->pdf;

	if (!s)
		return;
	g_object_unref(s->pd);
	if (s->stream)
		g_object_unref(s->stream);
	g_bytes_unref(s->bytes);
	free(s);
	doc->pdf = NULL;
}

static PopplerPage *get_page(struct ed_doc *doc, int page, char *err,
			     size_t errlen)
{
	PopplerPage *p = poppler_document_get_page(doc->pdf->pd, page);

	if (!p)
		ed_err(err, errlen, ED_EFORMAT, "bad pdf: cannot read page %d",
		       page + 1);
	return p;
}

int pdf_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
		  char *err, size_t errlen)
{
	PopplerPage *p = get_page(doc, page, err, errlen);

	if (!p)
		return ED_EFORMAT;
	poppler_page_get_size(p, &info->width_pt, &info->height_pt);
	g_object_unref(p);
	if (!(info->width_pt > 0) || !(info->height_pt > 0) ||
	    info->width_pt > 1e6 || info->height_pt > 1e6)
		return ed_err(err, errlen, ED_EFORMAT,
			      "bad pdf: page %d has size %gx%g", page + 1,
			      info->width_pt, info->height_pt);
	return 0;
}

/*
 * Draw the region r of the page into a w x h raster, sx and sy pixels per
 * point across and down (equal for a DPI; each axis its own for a fixed
 * size). out->xdpi/ydpi say the resolution that gave.
 */
static int render_scaled(struct ed_doc *doc, int page, const struct ed_rect *r,
			 const struct ed_page_info *info, int w, int h,
			 double sx, double sy, struct ed_image *out, char *err,
			 size_t errlen)
{
	PopplerPage *p;
	cairo_surface_t *surf;
	cairo_t *cr;
	int rc, stride;
	unsigned char *src;

	if ((rc = image_check_size((uint64_t)w, (uint64_t)h, &doc->lim, err,
				   errlen)))
		return rc;
	p = get_page(doc, page, err, errlen);
	if (!p)
		return ED_EFORMAT;
	surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
		cairo_surface_destroy(surf);
		g_object_unref(p);
		return ed_err(err, errlen, ED_ENOMEM,
			      "cannot allocate a %dx%d raster", w, h);
	}
	cr = cairo_create(surf);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	cairo_translate(cr, -ED_MIN(r->x0, r->x1) * info->width_pt * sx,
			-ED_MIN(r->y0, r->y1) * info->height_pt * sy);
	cairo_scale(cr, sx, sy);
	poppler_page_render(p, cr);
	cairo_destroy(cr);
	g_object_unref(p);
	cairo_surface_flush(surf);
	if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
		cairo_surface_destroy(surf);
		return ed_err(err, errlen, ED_EFORMAT, "cannot render page %d",
			      page + 1);
	}
	if ((rc = ed_render_image_init(out, w, h, err, errlen))) {
		cairo_surface_destroy(surf);
		return rc;
	}
	out->xdpi = sx * 72.0;
	out->ydpi = sy * 72.0;
	src = cairo_image_surface_get_data(surf);
	stride = cairo_image_surface_get_stride(surf);
	for (int y = 0; y < h; y++) {
		const uint32_t *row =
		    (const uint32_t *)(src + (size_t)y * stride);
		uint8_t *dst = out->rgb + (size_t)y * w * 3;
		for (int x = 0; x < w; x++) {
			uint32_t px = row[x]; /* xRGB in native endianness */
			dst[3 * x] = (uint8_t)(px >> 16);
			dst[3 * x + 1] = (uint8_t)(px >> 8);
			dst[3 * x + 2] = (uint8_t)px;
		}
	}
	cairo_surface_destroy(surf);
	return 0;
}

/* The region's width and height as fractions of the page (0..1). */
static void region_frac(const struct ed_rect *r, double *fw, double *fh)
{
	*fw = fabs(r->x1 - r->x0);
	*fh = fabs(r->y1 - r->y0);
	*fw = *fw > 1 ? 1 : *fw;
	*fh = *fh > 1 ? 1 : *fh;
}

int pdf_render(struct ed_doc *doc, int page, double dpi,
	       const struct ed_rect *region, struct ed_image *out, char *err,
	       size_t errlen)
{
	struct ed_page_info info;
	struct ed_rect r = {0, 0, 1, 1};
	double scale = dpi / 72.0, fw, fh, ww, hh;
	int w, h, rc;

	memset(out, 0, sizeof *out);
	if (!(dpi > 0) || dpi > 10000)
		return ed_err(err, errlen, ED_EINVAL, "bad dpi %g", dpi);
	if ((rc = pdf_page_info(doc, page, &info, err, errlen)))
		return rc;
	if (region)
		r = *region;
	/* round up as pdftoppm does (a partial pixel is still page); a
	 * region keeps >= 1 pixel */
	region_frac(&r, &fw, &fh);
	ww = info.width_pt * scale * fw;
	hh = info.height_pt * scale * fh;
	if (ww > 4e9 || hh > 4e9)
		return image_check_size(UINT32_MAX, UINT32_MAX, &doc->lim, err,
					errlen);
	w = (int)ED_MAX(1.0, ceil(ww - 1e-6));
	h = (int)ED_MAX(1.0, ceil(hh - 1e-6));
	return render_scaled(doc, page, &r, &info, w, h, scale, scale, out, err,
			     errlen);
}

int pdf_render_sized(struct ed_doc *doc, int page, int width, int height,
		     const struct ed_rect *region, struct ed_image *out,
		     char *err, size_t errlen)
{
	struct ed_page_info info;
	struct ed_rect r = {0, 0, 1, 1};
	double fw, fh;
	int rc;

	memset(out, 0, sizeof *out);
	if (width < 1 || height < 1)
		return ed_err(err, errlen, ED_EINVAL, "bad raster size %dx%d",
			      width, height);
	if ((rc = pdf_page_info(doc, page, &info, err, errlen)))
		return rc;
	if (region)
		r = *region;
	region_frac(&r, &fw, &fh);
	if (!(fw > 0) || !(fh > 0))
		return ed_err(err, errlen, ED_EINVAL, "empty region");
	return render_scaled(doc, page, &r, &info, width, height,
			     width / (info.width_pt * fw),
			     height / (info.height_pt * fh), out, err, errlen);
}

int pdf_image_coverage(struct ed_doc *doc, int page, double *fraction,
		       char *err, size_t errlen)
{
	enum { G = 64 };
	static const int n = G;
	unsigned char cell[G][G];
	struct ed_page_info info;
	PopplerPage *p;
	GList *maps, *l;
	int rc, covered = 0;

	*fraction = 0;
	if ((rc = pdf_page_info(doc, page, &info, err, errlen)))
		return rc;
	p = get_page(doc, page, err, errlen);
	if (!p)
		return ED_EFORMAT;
	memset(cell, 0, sizeof cell);
	maps = poppler_page_get_image_mapping(p);
	/* union of the image boxes on a coarse grid: overlapping images
	 * are not counted twice */
	for (l = maps; l; l = l->next) {
		PopplerImageMapping *m = l->data;
		double x0 = ED_MIN(m->area.x1, m->area.x2) / info.width_pt;
		double x1 = ED_MAX(m->area.x1, m->area.x2) / info.width_pt;
		double y0 = ED_MIN(m->area.y1, m->area.y2) / info.height_pt;
		double y1 = ED_MAX(m->area.y1, m->area.y2) / info.height_pt;
		for (int gy = 0; gy < n; gy++) {
			double cy = (gy + 0.5) / n;
			if (cy < y0 || cy > y1)
				continue;
			for (int gx = 0; gx < n; gx++) {
				double cx = (gx + 0.5) / n;
				if (cx >= x0 && cx <= x1)
					cell[gy][gx] = 1;
			}
		}
	}
	poppler_page_free_image_mapping(maps);
	g_object_unref(p);
	for (int gy = 0; gy < n; gy++)
		for (int gx = 0; gx < n; gx++)
			covered += cell[gy][gx];
	*fraction = covered / (double)(n * n);
	return 0;
}

static bool is_space(uint32_t cp)
{
	return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
	       cp == '\f' || cp == 0xA0 || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x3000;
}

/*
 * Between two adjacent non-space characters: '\n' when the second starts a
 * new line, ' ' when it sits far to the right (more than 0.3 of the line
 * height: wider than any kerning, as wide as a space) or goes back to the
 * left, 0 when it continues the word.
 */
static int block_break(const PopplerRectangle *a, const PopplerRectangle *b)
{
	double ah = fabs(a->y2 - a->y1), bh = fabs(b->y2 - b->y1);
	double h = ED_MAX(ah, bh), ay = (a->y1 + a->y2) / 2,
	       by = (b->y1 + b->y2) / 2;
	double gap = ED_MIN(b->x1, b->x2) - ED_MAX(a->x1, a->x2);

	if (h <= 0)
		return 0;
	if (fabs(by - ay) > 0.5 * h)
		return '\n';
	if (gap > 0.3 * h || gap < -0.5 * h)
		return ' ';
	return 0;
}

int pdf_text(struct ed_doc *doc, int page, struct ed_text *out, char *err,
	     size_t errlen)
{
	PopplerPage *p;
	PopplerRectangle *rects = NULL;
	guint nrects = 0;
	char *raw;
	const unsigned char *s;
	size_t n, i = 0, ci = 0, wcap = 0;
	struct ed_buf b;
	struct ed_word *cur = NULL;
	const PopplerRectangle *prev = NULL;
	int rc = 0;

	memset(out, 0, sizeof *out);
	p = get_page(doc, page, err, errlen);
	if (!p)
		return ED_EFORMAT;
	raw = poppler_page_get_text(p);
	if (!poppler_page_get_text_layout(p, &rects, &nrects))
		nrects = 0;
	g_object_unref(p);
	ed_buf_init(&b, 0);
	s = (const unsigned char *)(raw ? raw : "");
	n = strlen((const char *)s);
	if ((rc = ed_buf_reserve(&b, n)))
		goto out_nomem;
	/* one rectangle per character of the text (poppler's contract);
	 * words are maximal runs of non-space characters. poppler joins
	 * text blocks that share a line without a separator ("ItemQty" for
	 * two table columns): a jump in the geometry between two characters
	 * ends the word and inserts a space or a newline. */
	while (i < n) {
		uint32_t cp;
		char enc[4];
		int k = ed_utf8_decode(s + i, n - i, &cp);
		const PopplerRectangle *r = ci < nrects ? &rects[ci] : NULL;

		i += (size_t)k;
		ci++;
		if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\f') ||
		    cp == 0x7F)
			continue;
		if (is_space(cp)) {
			cur = NULL;
			prev = NULL;
		} else {
			if (cur && prev && r) {
				int sep = block_break(prev, r);
				if (sep) {
					if ((rc = ed_buf_putc(&b, sep)))
						goto out_nomem;
					cur = NULL;
				}
			}
			if (!cur) {
				if (out->nwords == wcap) {
					size_t nc = wcap ? 2 * wcap : 256;
					struct ed_word *nw = realloc(
					    out->words, nc * sizeof *nw);
					if (!nw) {
						rc = ED_ENOMEM;
						goto out_nomem;
					}
					out->words = nw;
					wcap = nc;
				}
				cur = &out->words[out->nwords++];
				cur->off = b.len;
				cur->len = 0;
				cur->x0 = cur->y0 = INFINITY;
				cur->x1 = cur->y1 = -INFINITY;
			}
			if (r) {
				cur->x0 = ED_MIN(cur->x0, ED_MIN(r->x1, r->x2));
				cur->x1 = ED_MAX(cur->x1, ED_MAX(r->x1, r->x2));
				cur->y0 = ED_MIN(cur->y0, ED_MIN(r->y1, r->y2));
				cur->y1 = ED_MAX(cur->y1, ED_MAX(r->y1, r->y2));
			}
			prev = r;
		}
		k = ed_utf8_encode(cp, enc);
		if ((rc = ed_buf_append(&b, enc, (size_t)k)))
			goto out_nomem;
		if (cur)
			cur->len += (size_t)k;
	}
	for (size_t w = 0; w < out->nwords; w++) {
		struct ed_word *wd = &out->words[w];
		if (!isfinite(wd->x0)) /* no geometry for this word */
			wd->x0 = wd->y0 = wd->x1 = wd->y1 = 0;
	}
	if ((rc = ed_buf_reserve(&b, 0)))
		goto out_nomem;
	out->text = ed_buf_detach(&b, &out->len);
	g_free(rects);
	g_free(raw);
	return 0;
out_nomem:
	ed_buf_release(&b);
	free(out->words);
	memset(out, 0, sizeof *out);
	g_free(rects);
	g_free(raw);
	return ed_err(err, errlen, rc, "text layer of page %d: %s", page + 1,
		      ed_strerror(rc));
}

void pdf_versions(char *buf, size_t len)
{
	snprintf(buf, len, "poppler %s, cairo %s", poppler_get_version(),
		 cairo_version_string());
}
