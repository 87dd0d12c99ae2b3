/*
 * render_int.h - private to render/: the document handle and the entry
 * points of each format backend (pdf.c, tiff.c, raster.c). Nothing outside
 * render/ includes this file.
 */
#ifndef ED_RENDER_INT_H
#define ED_RENDER_INT_H

#include "render.h"

struct pdf_state;
struct tiff_state;

struct ed_doc {
	enum ed_render_kind kind;
	const unsigned char *data;
	size_t len;
	struct ed_render_limits lim;
	int npages;
	char *title;
	struct pdf_state *pdf;
	struct tiff_state *tiff;
	int raster_w, raster_h; /* PNG/JPEG: size from the header */
	double raster_xdpi, raster_ydpi;
};

/* pdf.c */
int pdf_open(struct ed_doc *doc, const char *password, char *err,
	     size_t errlen);
void pdf_close(struct ed_doc *doc);
int pdf_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
		  char *err, size_t errlen);
int pdf_render(struct ed_doc *doc, int page, double dpi,
	       const struct ed_rect *region, struct ed_image *out, char *err,
	       size_t errlen);
int pdf_render_sized(struct ed_doc *doc, int page, int width, int height,
		     const struct ed_rect *region, struct ed_image *out,
		     char *err, size_t errlen);
int pdf_image_coverage(struct ed_doc *doc, int page, double *fraction,
		       char *err, size_t errlen);
int pdf_text(struct ed_doc *doc, int page, struct ed_text *out, char *err,
	     size_t errlen);
void pdf_versions(char *buf, size_t len);

/* tiff.c */
int tiff_open(struct ed_doc *doc, char *err, size_t errlen);
void tiff_close(struct ed_doc *doc);
int tiff_page_info(struct ed_doc *doc, int page, struct ed_page_info *info,
		   char *err, size_t errlen);
int tiff_decode(struct ed_doc *doc, int page, struct ed_image *out, char *err,
		size_t errlen);
const char *tiff_version(void);

/* raster.c: PNG and JPEG */
int png_probe(struct ed_doc *doc, char *err, size_t errlen);
int jpeg_probe(struct ed_doc *doc, char *err, size_t errlen);
int png_decode_mem(const void *data, size_t len,
		   const struct ed_render_limits *lim, struct ed_image *out,
		   char *err, size_t errlen);
int jpeg_decode_mem(const void *data, size_t len,
		    const struct ed_render_limits *lim, struct ed_image *out,
		    char *err, size_t errlen);
const char *png_version(void);
int jpeg_version(void);

/* image.c */
/* Check w x h against the cap; ED_ETOOBIG with a message naming both. */
int image_check_size(uint64_t w, uint64_t h, const struct ed_render_limits *l,
		     char *err, size_t errlen);
/* Crop a region (fractions) out of in into out (initialized here). */
int image_crop(const struct ed_image *in, const struct ed_rect *r,
	       struct ed_image *out, char *err, size_t errlen);
/* Composite a straight-alpha RGBA pixel row over white into RGB. */
void rgba_over_white(const uint8_t *rgba, uint8_t *rgb, size_t n);

#endif
