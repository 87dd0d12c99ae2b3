/*
 * fuzz_render.c - untrusted document bytes through render/: identify,
 * open, page info, text layer, a small raster and its tiling, under a
 * small pixel cap so a fuzzer cannot ask for huge pages.
 */
#include "tests/fuzz/fuzz.h"

#include "render/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ed_render_limits lim = {.max_pixels = 1 << 20};
	struct ed_doc *doc;
	char err[256];
	int n;

	if (ed_render_doc_open(&doc, data, size, NULL, &lim, err, sizeof err))
		return 0;
	n = ed_render_doc_pages(doc);
	for (int p = 0; p < n && p < 4; p++) {
		struct ed_page_info info;
		struct ed_text text;
		struct ed_image img;
		struct ed_rect r = {0.25, 0.25, 0.75, 0.5};
		struct ed_tiles t;
		struct ed_tile_params tp;
		double cov;

		ed_render_page_info(doc, p, &info, err, sizeof err);
		if (ed_render_page_text(doc, p, &text, err, sizeof err) == 0)
			ed_render_text_release(&text);
		ed_render_page_image_coverage(doc, p, &cov, err, sizeof err);
		if (ed_render_page(doc, p, 20, &r, &img, err, sizeof err) == 0)
			ed_render_image_release(&img);
		if (ed_render_page(doc, p, 20, NULL, &img, err, sizeof err) ==
		    0) {
			ed_render_tile_params_default(&tp);
			tp.max_pixels = 28 * 28 * 16;
			if (ed_render_tile_image(&img, &tp, &t, NULL, err,
						 sizeof err) == 0)
				ed_render_tiles_release(&t);
			ed_render_image_release(&img);
		}
	}
	ed_render_doc_close(doc);
	return 0;
}

FUZZ_MAIN("fuzz_render")
