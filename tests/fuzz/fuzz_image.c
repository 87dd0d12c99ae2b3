/*
 * fuzz_image.c - untrusted scans through our raster wrappers alone (no
 * PDF: poppler's speed would starve them): TIFF (every page), PNG and
 * JPEG from memory, as sniffed, and the standalone PNG decoder that
 * model inputs use. A decoded image is non-empty, within the pixel cap,
 * and its pixels can be read to the end (ASan checks the size).
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "render/render.h"

static unsigned sum(const struct ed_image *img)
{
	unsigned s = 0;
	size_t n = (size_t)img->width * (size_t)img->height * 3;
	for (size_t i = 0; i < n; i += 97)
		s += img->rgb[i];
	return s + img->rgb[n - 1];
}

static void check(const struct ed_image *img, int64_t cap)
{
	if (img->width <= 0 || img->height <= 0 || !img->rgb ||
	    (int64_t)img->width * img->height > cap)
		__builtin_trap();
	(void)sum(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ed_render_limits lim = {.max_pixels = 1 << 20};
	enum ed_render_kind kind = ed_render_sniff(data, size);
	struct ed_image img;
	struct ed_doc *doc;
	char err[256];
	int n;

	if (ed_render_png_decode(data, size, &lim, &img, err, sizeof err) ==
	    0) {
		check(&img, lim.max_pixels);
		ed_render_image_release(&img);
	}
	if (kind != ED_RENDER_TIFF && kind != ED_RENDER_PNG &&
	    kind != ED_RENDER_JPEG)
		return 0;
	if (ed_render_doc_open(&doc, data, size, NULL, &lim, err, sizeof err))
		return 0;
	n = ed_render_doc_pages(doc);
	for (int p = 0; p < n && p < 8; p++) {
		struct ed_page_info info;
		if (ed_render_page_info(doc, p, &info, err, sizeof err) == 0 &&
		    ed_render_page(doc, p, 0, NULL, &img, err, sizeof err) ==
			0) {
			check(&img, lim.max_pixels);
			ed_render_image_release(&img);
		}
	}
	ed_render_doc_close(doc);
	return 0;
}

FUZZ_MAIN("fuzz_image")
