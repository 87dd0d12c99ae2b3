/*
 * doc.c - the document handle: identify bytes by magic (never by name),
 * dispatch to the PDF, TIFF or PNG/JPEG backend, and give every format the
 * same page interface (count, size, raster, text layer, region).
 */
#include "render_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ed_render_doc_open(struct ed_doc **out, const void *data, size_t len,
		       const char *password,
		       const struct ed_render_limits *limits, char *err,
		       size_t errlen)
{
	struct ed_doc *doc;
	int rc;

	*out = NULL;
	doc = calloc(1, sizeof *doc);
	if (!doc)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	doc->data = data;
	doc->len = len;
	if (limits)
		doc->lim = *limits;
	if (!doc->lim.max_pixels)
		doc->lim.max_pixels = ED_RENDER_MAX_PIXELS;
	doc->kind = ed_render_sniff(data, len);
	switch (doc->kind) {
	case ED_RENDER_PDF: rc = pdf_open(doc, password, err, errlen); break;
	case ED_RENDER_TIFF: rc = tiff_open(doc, err, errlen); break;
	case ED_RENDER_PNG:
		rc = png_probe(doc, err, errlen);
		doc->npages = 1;
		break;
	case ED_RENDER_JPEG:
		rc = jpeg_probe(doc, err, errlen);
		doc->npages = 1;
		break;
	default:
		rc = ed_err(err, errlen, ED_EFORMAT,
			    len == 0 ? "empty input"
				     : "not a pdf, tiff, png or jpeg file");
	}
	if (rc) {
		free(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

void ed_render_doc_close(struct ed_doc *doc)
{
	if (!doc)
		return;
	pdf_close(doc);
	tiff_close(doc);
	free(doc->title);
	free(doc);
}

enum ed_render_kind ed_render_doc_kind(const struct ed_doc *doc)
{
	return doc->kind;
}

int ed_render_doc_pages(const struct ed_doc *doc)
{
	return doc->npages;
}

const char *ed_render_doc_title(const struct ed_doc *doc)
{
	return doc->title;
}

static int check_page(const struct ed_doc *doc, int page, char *err,
		      size_t errlen)
{
	if (page < 0 || page >= doc->npages)
		return ed_err(err, errlen, ED_EINVAL,
			      "page %d out of range (document has %d)",
			      page + 1, doc->npages);
	return 0;
}

int ed_render_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
			char *err, size_t errlen)
{
	int rc;

	memset(info, 0, sizeof *info);
	if ((rc = check_page(doc, page, err, errlen)))
		return rc;
	switch (doc->kind) {
	case ED_RENDER_PDF: return pdf_page_info(doc, page, info, err, errlen);
	case ED_RENDER_TIFF:
		return tiff_page_info(doc, page, info, err, errlen);
	default:
		info->width_px = doc->raster_w;
		info->height_px = doc->raster_h;
		info->xdpi = doc->raster_xdpi;
		info->ydpi = doc->raster_ydpi;
		info->width_pt = info->xdpi > 0
				     ? info->width_px * 72.0 / info->xdpi
				     : info->width_px;
		info->height_pt = info->ydpi > 0
				      ? info->height_px * 72.0 / info->ydpi
				      : info->height_px;
		return 0;
	}
}

int ed_render_page_image_coverage(struct ed_doc *doc, int page,
				  double *fraction, char *err, size_t errlen)
{
	int rc;

	*fraction = 1.0;
	if ((rc = check_page(doc, page, err, errlen)))
		return rc;
	if (doc->kind == ED_RENDER_PDF)
		return pdf_image_coverage(doc, page, fraction, err, errlen);
	return 0;
}

int ed_render_page(struct ed_doc *doc, int page, double dpi,
		   const struct ed_rect *region, struct ed_image *out,
		   char *err, size_t errlen)
{
	struct ed_image full;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = check_page(doc, page, err, errlen)))
		return rc;
	switch (doc->kind) {
	case ED_RENDER_PDF:
		return pdf_render(doc, page, dpi, region, out, err, errlen);
	case ED_RENDER_TIFF:
		rc = tiff_decode(doc, page, &full, err, errlen);
		break;
	case ED_RENDER_PNG:
		rc = png_decode_mem(doc->data, doc->len, &doc->lim, &full, err,
				    errlen);
		break;
	case ED_RENDER_JPEG:
		rc = jpeg_decode_mem(doc->data, doc->len, &doc->lim, &full, err,
				     errlen);
		break;
	default: return ed_err(err, errlen, ED_EINTERNAL, "unknown document");
	}
	if (rc)
		return rc;
	if (!region) {
		*out = full;
		return 0;
	}
	rc = image_crop(&full, region, out, err, errlen);
	ed_render_image_release(&full);
	return rc;
}

int ed_render_page_sized(struct ed_doc *doc, int page, int width, int height,
			 const struct ed_rect *region, struct ed_image *out,
			 char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = check_page(doc, page, err, errlen)))
		return rc;
	if (doc->kind != ED_RENDER_PDF)
		return ed_err(err, errlen, ED_EINVAL,
			      "a %s page has fixed pixels: resize them",
			      ed_render_kind_name(doc->kind));
	return pdf_render_sized(doc, page, width, height, region, out, err,
				errlen);
}

int ed_render_page_text(struct ed_doc *doc, int page, struct ed_text *out,
			char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = check_page(doc, page, err, errlen)))
		return rc;
	if (doc->kind == ED_RENDER_PDF)
		return pdf_text(doc, page, out, err, errlen);
	out->text = calloc(1, 1);
	if (!out->text)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	return 0;
}

void ed_render_text_release(struct ed_text *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->words);
	memset(t, 0, sizeof *t);
}

void ed_render_versions(char *buf, size_t len)
{
	char pdf[128];

	pdf_versions(pdf, sizeof pdf);
	snprintf(buf, len, "%s, libtiff %s, libpng %s, libjpeg %d", pdf,
		 tiff_version(), png_version(), jpeg_version());
}
