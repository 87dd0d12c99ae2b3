/*
 * sniff.c - what bytes are, by their magic (never by name): below doc.c
 * and raster.c, which both ask.
 */
#include "render_int.h"

#include <string.h>

enum ed_render_kind ed_render_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i, scan;

	if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return ED_RENDER_PNG;
	if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
		return ED_RENDER_JPEG;
	if (len >= 4 &&
	    (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0 ||
	     memcmp(p, "II+\0", 4) == 0 || memcmp(p, "MM\0+", 4) == 0))
		return ED_RENDER_TIFF;
	/* PDF readers accept junk before the header within the first 1 KiB */
	scan = len < 1024 ? len : 1024;
	for (i = 0; i + 5 <= scan; i++)
		if (memcmp(p + i, "%PDF-", 5) == 0)
			return ED_RENDER_PDF;
	return ED_RENDER_UNKNOWN;
}

const char *ed_render_kind_name(enum ed_render_kind kind)
{
	switch (kind) {
	case ED_RENDER_PDF: return "pdf";
	case ED_RENDER_TIFF: return "tiff";
	case ED_RENDER_PNG: return "png";
	case ED_RENDER_JPEG: return "jpeg";
	case ED_RENDER_UNKNOWN: break;
	}
	return "unknown";
}
