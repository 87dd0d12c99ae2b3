/*
 * mkpdf.c - write a test PDF with cairo: N pages of real text (each page
 * carries the words "page" and "marker<N>" and a paragraph), for the CLI
 * tests (1,000-page memory test, interruption, batches) and the
 * benchmarks. TAG is written on every page (distinct documents for a
 * batch); page BLANK, if given, is left empty.
 * usage: mkpdf OUT.pdf PAGES [TAG [BLANK]]
 */
#include <cairo-pdf.h>
#include <cairo.h>
#include <stdio.h>
#include <stdlib.h>

static const char *lines[] = {
    "ERNIE-4.5-VL reads documents page by page and stores what it finds.",
    "Every page is committed in its own transaction, so a run can stop",
    "at any moment and start again without losing or repeating work.",
    "The quick brown fox jumps over the lazy dog; 0123456789 and more.",
    "Invoices, contracts, reports and scanned letters all end up as rows",
    "that a single SQL query can search, join and count in milliseconds.",
};

int main(int argc, char **argv)
{
	cairo_surface_t *s;
	cairo_t *cr;
	char *end;
	long n, blank = 0;

	if (argc < 3 || argc > 5 || (n = strtol(argv[2], &end, 10)) < 1 ||
	    *end || (argc == 5 && (blank = strtol(argv[4], &end, 10)) < 1)) {
		fprintf(stderr, "usage: mkpdf OUT.pdf PAGES [TAG [BLANK]]\n");
		return 64;
	}
	s = cairo_pdf_surface_create(argv[1], 595.276, 841.89);
	cr = cairo_create(s);
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
			       CAIRO_FONT_WEIGHT_NORMAL);
	for (long p = 1; p <= n; p++) {
		char head[160];
		if (p == blank) {
			cairo_show_page(cr);
			continue;
		}
		cairo_set_font_size(cr, 18);
		cairo_move_to(cr, 72, 90);
		snprintf(head, sizeof head, "page %ld marker%ld %.100s", p, p,
			 argc >= 4 ? argv[3] : "");
		cairo_show_text(cr, head);
		cairo_set_font_size(cr, 11);
		for (int k = 0; k < 24; k++) {
			cairo_move_to(cr, 72, 130 + 16 * k);
			cairo_show_text(cr, lines[(k + p) % 6]);
		}
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
		fprintf(stderr, "mkpdf: %s\n",
			cairo_status_to_string(cairo_surface_status(s)));
		return 73;
	}
	cairo_surface_destroy(s);
	return 0;
}
