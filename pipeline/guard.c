/*
 * guard.c - cheap decisions made before any model call: is the PDF text
 * layer good enough to stand for the page, and is the raster blank?
 * Thresholds are documented in pipeline.h and the man page.
 */
#include "pipeline.h"

#include <stdlib.h>
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

bool ed_pipeline_repeats(const char *text, size_t len, size_t *loop_start)
{
	for (size_t p = 1; p <= 200; p++) {
		size_t span = ED_MAX(8 * p, 400), i;
		if (len < span + p)
			continue;
		for (i = len; i > len - span; i--)
			if (text[i - 1] != text[i - 1 - p])
				break;
		if (i > len - span)
			continue;
		/* periodic over the span: find where the loop began */
		while (i > p && text[i - 1] == text[i - 1 - p])
			i--;
		if (loop_start)
			*loop_start =
			    i; /* one period before the loop repeats */
		return true;
	}
	return false;
}

int ed_pipeline_token_budget(double width_pt, double height_pt,
			     double ink_fraction, int cap)
{
	/* an A4 page of dense text (8% ink) gets about 4,100 tokens; the
	 * budget grows with the area and the ink, never below 256 */
	double area = width_pt * height_pt / (595.276 * 841.89);
	double b = 256 + 48000.0 * ink_fraction * (area > 0 ? area : 1);

	if (b > cap)
		b = cap;
	return (int)b;
}

struct words {
	uint64_t *h;
	size_t n, cap;
};

static int add_word(struct words *w, uint64_t h)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 256;
		uint64_t *nh = realloc(w->h, nc * sizeof *nh);
		if (!nh)
			return -1;
		w->h = nh;
		w->cap = nc;
	}
	w->h[w->n++] = h;
	return 0;
}

/* Words: runs of letters and digits (ASCII case-folded); every CJK
 * character is a word of its own. */
static int split_words(const char *s, struct words *w)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;
	uint64_t h = 0;
	bool in = false;

	while (i < n) {
		uint32_t c;
		size_t k = (size_t)ed_utf8_decode(p + i, n - i, &c);
		bool cjk = c >= 0x2E80 && c <= 0x9FFF;
		bool wordc =
		    !cjk && (c >= 0x80 ? c != 0xFFFD && c != 0xA0 &&
					     !(c >= 0x2000 && c <= 0x206F)
				       : ((c | 32) >= 'a' && (c | 32) <= 'z') ||
					     (c >= '0' && c <= '9'));
		if (wordc) {
			if (c < 0x80)
				c |= (c >= 'A' && c <= 'Z') ? 32 : 0;
			h = (in ? h : 1469598103934665603ull);
			h = (h ^ c) * 1099511628211ull;
			in = true;
		} else {
			if (in && add_word(w, h))
				return -1;
			in = false;
			if (cjk &&
			    add_word(w, (uint64_t)c * 0x9E3779B97F4A7C15ull))
				return -1;
		}
		i += k;
	}
	if (in && add_word(w, h))
		return -1;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

double ed_pipeline_similarity(const char *a, const char *b)
{
	struct words wa = {0}, wb = {0};
	size_t i = 0, j = 0, common = 0;
	double r = 0;

	if (split_words(a ? a : "", &wa) || split_words(b ? b : "", &wb))
		goto out;
	if (wa.n + wb.n == 0) {
		r = 1;
		goto out;
	}
	if (wa.n)
		qsort(wa.h, wa.n, sizeof *wa.h, cmp_u64);
	if (wb.n)
		qsort(wb.h, wb.n, sizeof *wb.h, cmp_u64);
	while (i < wa.n && j < wb.n) {
		if (wa.h[i] == wb.h[j])
			common++, i++, j++;
		else if (wa.h[i] < wb.h[j])
			i++;
		else
			j++;
	}
	r = 2.0 * (double)common / (double)(wa.n + wb.n);
out:
	free(wa.h);
	free(wb.h);
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

bool ed_pipeline_small_text(const struct ed_text *layer, double height_pt,
			    int input_height_px, const char *text,
			    int image_tokens)
{
	if (layer && layer->nwords >= 20 && height_pt > 0 &&
	    input_height_px > 0) {
		double *h = malloc(layer->nwords * sizeof *h), med;
		if (!h)
			return false;
		for (size_t i = 0; i < layer->nwords; i++)
			h[i] = layer->words[i].y1 - layer->words[i].y0;
		qsort(h, layer->nwords, sizeof *h, cmp_double);
		med = h[layer->nwords / 2];
		free(h);
		return med * input_height_px / height_pt < ED_SMALL_TEXT_PX;
	}
	if (text && image_tokens > 0) {
		struct ed_text_stats s;
		ed_pipeline_text_stats(text, strlen(text), &s);
		return (double)s.visible / image_tokens >
		       ED_DENSE_CHARS_PER_TOKEN;
	}
	return false;
}
