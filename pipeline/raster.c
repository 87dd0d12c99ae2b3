/*
 * raster.c - the raster a page becomes for the model. PDFs are drawn
 * straight at the tiling's target size (smart_resize of the raster they
 * would have at a nominal DPI), not rendered large and then resampled:
 * half the pixels to draw and no resize, and the tiles are the reference
 * processor's for that raster (a resize to the same size is a copy).
 * Scans keep their own pixels. Knows pages and tiling parameters, never
 * the model.
 */
#include "pipeline.h"

#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ed_pipeline_render_page(struct ed_doc *doc, int page,
			    const struct ed_rect *region, double dpi,
			    double nominal_dpi, const struct ed_tile_params *tp,
			    struct ed_image *out, char *err, size_t errlen)
{
	struct ed_page_info info;
	struct ed_rect r = {0, 0, 1, 1};
	double fw, fh, w, h;
	int th, tw, rc;

	memset(out, 0, sizeof *out);
	if (dpi > 0 || ed_render_doc_kind(doc) != ED_RENDER_PDF)
		return ed_render_page(doc, page, dpi > 0 ? dpi : nominal_dpi,
				      region, out, err, errlen);
	if ((rc = ed_render_page_info(doc, page, &info, err, errlen)))
		return rc;
	if (region)
		r = *region;
	fw = fmin(fabs(r.x1 - r.x0), 1);
	fh = fmin(fabs(r.y1 - r.y0), 1);
	/* the raster at the nominal DPI, rounded up as the renderer does */
	w = ceil(info.width_pt * fw * nominal_dpi / 72.0 - 1e-6);
	h = ceil(info.height_pt * fh * nominal_dpi / 72.0 - 1e-6);
	if (!(w >= 1 && h >= 1 && w < 1e6 && h < 1e6) ||
	    ed_render_tile_smart_resize((int)h, (int)w, tp->patch * tp->merge,
					tp->min_pixels, tp->max_pixels, &th,
					&tw, NULL, 0))
		/* no target (an extreme aspect ratio): the plain raster, and
		 * the tiling says what is wrong with it */
		return ed_render_page(doc, page, nominal_dpi, region, out, err,
				      errlen);
	return ed_render_page_sized(doc, page, tw, th, region, out, err,
				    errlen);
}

/* The image as the backend takes it: tiles (native) or a PNG resized to
 * the same smart_resize target (remote). */

int ed_pipeline_image_prepare(struct ed_backend *b,
			      const struct ed_tile_params *tp,
			      const struct ed_image *img,
			      struct ed_prepared *pr, char *err, size_t errlen)
{
	int rc;

	memset(pr, 0, sizeof *pr);
	if (ed_backend_kind(b) == ED_BACKEND_NATIVE) {
		if ((rc = ed_render_tile_image(img, tp, &pr->tiles, NULL, err,
					       errlen)))
			return rc;
		pr->im = (struct ed_image_in){
		    pr->tiles.pixel_values, pr->tiles.grid_t, pr->tiles.grid_h,
		    pr->tiles.grid_w};
		return 0;
	}
	{
		struct ed_image resized;
		int h, w;
		if ((rc = ed_render_tile_smart_resize(
			 img->height, img->width, tp->patch * tp->merge,
			 tp->min_pixels, tp->max_pixels, &h, &w, err,
			 errlen)) ||
		    (rc = ed_render_tile_resize(img, w, h, &resized, err,
						errlen)))
			return rc;
		/* fast compression: the bytes cross a local network once */
		rc = ed_render_png_encode(&resized, 1, &pr->png, &pr->png_len,
					  err, errlen);
		pr->tiles.grid_t = 1;
		pr->tiles.grid_h = h / tp->patch;
		pr->tiles.grid_w = w / tp->patch;
		pr->tiles.npatches =
		    (size_t)pr->tiles.grid_h * pr->tiles.grid_w;
		ed_render_image_release(&resized);
		return rc;
	}
}

void ed_pipeline_image_release(struct ed_prepared *pr)
{
	ed_render_tiles_release(&pr->tiles);
	free(pr->png);
	pr->png = NULL;
}
