/*
 * guard.c - cheap decisions made before any model call: is the PDF text
 * layer good enough to stand for the page, and is the raster blank?
 * Thresholds are documented in pipeline.h and the man page.
 */
#include "pipeline.h"

#include <string.h>

static bool is_space(uint32_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == 0xA0 || (c >= 0x2000 && c <= 0x200B) || c == 0x3000;
}

/* Letters and digits: ASCII alnum, and non-ASCII outside the punctuation,
 * symbol and private-use blocks (a cheap stand-in for Unicode L and N). */
static bool is_alnum(uint32_t c)
{
	if (c < 0x80)
		return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		       (c >= 'a' && c <= 'z');
	if (c < 0xC0 || c == 0xD7 || c == 0xF7)
		return false;
	if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
	    (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xE000 && c <= 0xF8FF) ||
	    c == 0xFFFD)
		return false;
	return true;
}

static bool is_junk(uint32_t c)
{
	return c == 0xFFFD || (c >= 0xE000 && c <= 0xF8FF) || (c >= 0xF0000) ||
	       (c < 0x20 && !is_space(c)) || c == 0x7F;
}

void ed_pipeline_text_stats(const char *text, size_t len,
			    struct ed_text_stats *s)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;

	memset(s, 0, sizeof *s);
	while (i < len) {
		uint32_t c;
		i += (size_t)ed_utf8_decode(p + i, len - i, &c);
		if (is_space(c))
			continue;
		s->visible++;
		if (is_junk(c))
			s->junk++;
		else if (is_alnum(c))
			s->alnum++;
	}
}

bool ed_pipeline_text_good(const struct ed_text_stats *s, double area_sq_in,
			   double image_coverage)
{
	if (s->visible < 16)
		return false;
	if (s->junk * 50 > s->visible)
		return false;
	if (s->alnum * 2 < s->visible)
		return false;
	if (image_coverage >= 0.3 && area_sq_in > 0 &&
	    (double)s->visible / area_sq_in < 5.0)
		return false;
	return true;
}

bool ed_pipeline_is_blank(const struct ed_image *img, double *ink_fraction)
{
	size_t hist[256] = {0}, n = (size_t)img->width * img->height, ink = 0;
	int bg = 0;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = img->rgb + 3 * i;
		/* BT.601 luma in integers */
		hist[(p[0] * 299 + p[1] * 587 + p[2] * 114 + 500) / 1000]++;
	}
	for (int v = 1; v < 256; v++)
		if (hist[v] > hist[bg])
			bg = v;
	for (int v = 0; v < 256; v++)
		if (v < bg - 48 || v > bg + 48)
			ink += hist[v];
	*ink_fraction = n ? (double)ink / (double)n : 0;
	return ink * 5000 < n; /* < 0.02% */
}
