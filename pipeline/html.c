/*
 * html.c - the review: one self-contained HTML file per document (each
 * page's image beside what was stored for it: the Markdown's blocks,
 * status, guards, fields marked in the text, the extraction, the
 * reasoning folded, the zoom boxes drawn on the image) and one report
 * over the whole store (counts, pages to look at again, small SVG
 * charts, the runs). Everything stored is escaped; nothing is fetched
 * from anywhere (styles inline, images as data URLs); a few lines of
 * script for the keyboard. Reads through the store's read-only query;
 * writes into the caller's buffer, never prints.
 */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows: a query's result as text ------------------------------------ */

struct rows {
	int ncol;
	size_t n, cap;
	char **v; /* n * ncol, NULL for NULL */
	bool oom;
};

static int rows_cb(void *ud, int ncol, const char *const *names,
		   const struct ed_store_value *v)
{
	struct rows *r = ud;
	(void)names;
	if (ncol < 0)
		return 0;
	r->ncol = ncol;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		char **nv = realloc(r->v, cap * (size_t)ncol * sizeof *nv);
		if (!nv) {
			r->oom = true;
			return 1;
		}
		r->v = nv;
		r->cap = cap;
	}
	for (int i = 0; i < ncol; i++) {
		char num[64], *s = NULL;
		switch (v[i].type) {
		case ED_STORE_INT:
			snprintf(num, sizeof num, "%lld", (long long)v[i].i);
			s = strdup(num);
			break;
		case ED_STORE_REAL:
			snprintf(num, sizeof num, "%.17g", v[i].r);
			s = strdup(num);
			break;
		case ED_STORE_TEXT: s = strdup(v[i].s); break;
		default: break;
		}
		if (v[i].type != ED_STORE_NULL && v[i].type != ED_STORE_BLOB &&
		    !s)
			r->oom = true;
		r->v[r->n * (size_t)ncol + (size_t)i] = s;
	}
	r->n++;
	return 0;
}

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n * (size_t)r->ncol; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof *r);
}

static const char *cell(const struct rows *r, size_t row, int col)
{
	return row < r->n && col < r->ncol ? r->v[row * (size_t)r->ncol + col]
					   : NULL;
}

static double num(const struct rows *r, size_t row, int col)
{
	const char *s = cell(r, row, col);
	return s ? strtod(s, NULL) : 0;
}

/* Run sql (a %lld for id) into r. Missing tables (an old store) give no
 * rows. */
static int query(struct ed_store *st, struct rows *r, const char *sql,
		 int64_t id)
{
	char q[2048], err[256];
	const char *at = strstr(sql, "%lld");
	memset(r, 0, sizeof *r);
	/* the id spliced in where the SQL says %lld */
	if (at)
		snprintf(q, sizeof q, "%.*s%lld%s", (int)(at - sql), sql,
			 (long long)id, at + 4);
	else
		snprintf(q, sizeof q, "%s", sql);
	ed_store_query(st, q, rows_cb, r, err, sizeof err);
	return r->oom ? ED_ENOMEM : 0;
}

/* ---- text -----------------------------------------------------------------
 */

/* Text for HTML: & < > " ' as entities, controls other than tab and
 * newline and invalid UTF-8 as U+FFFD. */
static void esc_n(struct ed_buf *b, const char *s, size_t n)
{
	struct ed_buf clean;
	ed_buf_init(&clean, 0);
	if (!s)
		return;
	ed_utf8_clean(&clean, s, n);
	for (size_t i = 0; i < clean.len; i++) {
		unsigned char c = (unsigned char)clean.data[i];
		switch (c) {
		case '&': ed_buf_puts(b, "&amp;"); break;
		case '<': ed_buf_puts(b, "&lt;"); break;
		case '>': ed_buf_puts(b, "&gt;"); break;
		case '"': ed_buf_puts(b, "&quot;"); break;
		case '\'': ed_buf_puts(b, "&#39;"); break;
		default:
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F)
				ed_buf_puts(b, "\xEF\xBF\xBD");
			else
				ed_buf_putc(b, (char)c);
		}
	}
	ed_buf_release(&clean);
}

static void esc(struct ed_buf *b, const char *s)
{
	if (s)
		esc_n(b, s, strlen(s));
}

static void base64(struct ed_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	ed_buf_reserve(b, (n + 2) / 3 * 4 + 1);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 |
			     (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		ed_buf_putc(b, tab[v >> 18 & 63]);
		ed_buf_putc(b, tab[v >> 12 & 63]);
		ed_buf_putc(b, i + 1 < n ? tab[v >> 6 & 63] : '=');
		ed_buf_putc(b, i + 2 < n ? tab[v & 63] : '=');
	}
}

static const char style[] =
    "<style>\n"
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f4f2;"
    "color:#222}\n"
    "header{padding:12px 20px;background:#223;color:#fff}\n"
    "header h1{font-size:18px;margin:0}\n"
    "header p{margin:4px 0 0;font-size:13px;opacity:.8}\n"
    "nav.pages{padding:6px 20px;background:#fff;border-bottom:1px solid #ccc;"
    "font-size:13px}\n"
    "nav.pages a{margin-right:6px}\n"
    "section.page{display:flex;flex-wrap:wrap;gap:16px;margin:16px 20px;"
    "padding:12px;background:#fff;border:1px solid #ccc;border-radius:6px}\n"
    "section.page:target{outline:3px solid #48c}\n"
    ".image{flex:0 0 45%;max-width:45%;position:relative}\n"
    ".image img{width:100%;display:block;border:1px solid #999}\n"
    ".image .noimg{padding:40px 10px;border:1px dashed #999;color:#666}\n"
    ".zoom{position:absolute;border:2px solid #e33;box-sizing:border-box}\n"
    ".zoom span{position:absolute;top:-1.4em;left:0;background:#e33;"
    "color:#fff;font-size:11px;padding:0 3px;white-space:nowrap}\n"
    ".read{flex:1 1 45%;min-width:280px;overflow-wrap:anywhere}\n"
    ".meta{font-size:13px;color:#444;margin-bottom:8px}\n"
    ".badge{display:inline-block;padding:1px 7px;border-radius:9px;"
    "font-size:12px;margin-right:4px;background:#ddd}\n"
    ".done{background:#cec}.blank{background:#eee}.error{background:#f99}"
    ".needs-model{background:#fc8}.incomplete{background:#fc8}"
    ".invalid{background:#f99}\n"
    ".problem{padding:8px;background:#fee;border:1px solid #e99;"
    "margin:8px 0}\n"
    "pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;"
    "font-size:13px}\n"
    "mark{background:#ff9}\n"
    "table.cells{border-collapse:collapse;margin:6px 0}\n"
    "table.cells td,table.cells th{border:1px solid #aaa;padding:2px 6px}\n"
    "table.t{border-collapse:collapse;font-size:13px;margin:8px 0}\n"
    "table.t td,table.t th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}\n"
    "main.report{padding:0 20px 20px}\n"
    "@media (max-width:700px){.image,.read{flex:1 1 100%;max-width:100%}"
    "section.page{margin:8px;display:block}}\n"
    "</style>\n";

static void head(struct ed_buf *b, const char *title)
{
	ed_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
		       "<meta charset=\"utf-8\">\n"
		       "<meta name=\"viewport\" content=\"width=device-width, "
		       "initial-scale=1\">\n<title>");
	esc(b, title);
	ed_buf_puts(b, "</title>\n");
	ed_buf_puts(b, style);
	ed_buf_puts(b, "</head>\n<body>\n");
}

/* ---- a document ---------------------------------------------------------- */

/* pages p: the newest result of each page number, a finished one first */
static const char pages_sql[] =
    "SELECT p.id, p.page_no, p.status, p.source, p.mode, p.model_id, "
    "p.text, p.reasoning, p.error, p.guard, p.text_similarity, "
    "p.tokens_in, p.tokens_out, p.ms_render, p.ms_encode, p.ms_prefill, "
    "p.ms_decode, p.finish_reason, p.width, p.height, p.attempts "
    "FROM pages p WHERE p.document_id = %lld AND p.id = (SELECT q.id "
    "FROM pages q WHERE q.document_id = p.document_id AND q.page_no = "
    "p.page_no AND coalesce(q.chosen, 1) ORDER BY q.status IN ('done', "
    "'blank') DESC, q.id DESC LIMIT 1) ORDER BY p.page_no";
enum {
	P_ID,
	P_NO,
	P_STATUS,
	P_SOURCE,
	P_MODE,
	P_MODEL,
	P_TEXT,
	P_REASON,
	P_ERROR,
	P_GUARD,
	P_SIM,
	P_TIN,
	P_TOUT,
	P_MSR,
	P_MSE,
	P_MSP,
	P_MSD,
	P_FINISH,
	P_W,
	P_H,
	P_ATTEMPTS
};

/* The page as an image for the review: rendered at dpi (a scan scaled to
 * that size), PNG, base64. */
static void page_image(struct ed_buf *b, struct ed_doc *doc, int page,
		       double dpi, double width_pt, const char *why)
{
	struct ed_image img, small;
	unsigned char *png = NULL;
	size_t n = 0;
	char err[256];

	if (!doc) {
		ed_buf_puts(b, "<div class=\"noimg\">No page image: ");
		esc(b, why);
		ed_buf_puts(b, "</div>\n");
		return;
	}
	if (ed_render_page(doc, page, dpi, NULL, &img, err, sizeof err)) {
		ed_buf_puts(b, "<div class=\"noimg\">No page image: ");
		esc(b, err);
		ed_buf_puts(b, "</div>\n");
		return;
	}
	{
		int w = width_pt > 0 ? (int)lround(width_pt / 72.0 * dpi) : 0;
		if (w <= 0 || w > img.width)
			w = img.width > 900 ? 900 : img.width;
		if (w < img.width - 1) { /* a scan larger than the DPI says */
			int h = (int)lround((double)img.height * w / img.width);
			if (h < 1)
				h = 1;
			if (!ed_render_tile_resize(&img, w, h, &small, err,
						   sizeof err)) {
				ed_render_image_release(&img);
				img = small;
			}
		}
	}
	if (ed_render_png_encode(&img, 6, &png, &n, err, sizeof err)) {
		ed_buf_puts(b, "<div class=\"noimg\">No page image: ");
		esc(b, err);
		ed_buf_puts(b, "</div>\n");
	} else {
		ed_buf_printf(b,
			      "<img alt=\"page %d\" width=\"%d\" height=\"%d\" "
			      "src=\"data:image/png;base64,",
			      page + 1, img.width, img.height);
		base64(b, png, n);
		ed_buf_puts(b, "\">\n");
	}
	free(png);
	ed_render_image_release(&img);
}

/* The page's blocks as HTML; how many there were. */
static size_t blocks_html(struct ed_store *st, struct ed_buf *b,
			  int64_t page_id)
{
	size_t n;
	struct rows bl;
	query(st, &bl,
	      "SELECT id, kind, level, text FROM blocks WHERE page_id = %lld "
	      "ORDER BY seq",
	      page_id);
	for (size_t i = 0; i < bl.n; i++) {
		const char *kind = cell(&bl, i, 1), *text = cell(&bl, i, 3);
		if (!kind)
			continue;
		if (!strcmp(kind, "heading")) {
			int lv = (int)num(&bl, i, 2);
			lv = lv < 1 ? 1 : lv > 6 ? 6 : lv;
			/* h3 and below: the page's own headings under ours */
			lv = lv + 2 > 6 ? 6 : lv + 2;
			ed_buf_printf(b, "<h%d>", lv);
			esc(b, text);
			ed_buf_printf(b, "</h%d>\n", lv);
		} else if (!strcmp(kind, "list")) {
			const char *s = text ? text : "";
			ed_buf_puts(b, "<ul>\n");
			while (*s) {
				const char *e = strchr(s, '\n');
				size_t len = e ? (size_t)(e - s) : strlen(s);
				size_t k = 0;
				/* the marker: -, *, + or 1. */
				while (k < len &&
				       (s[k] == ' ' || s[k] == '-' ||
					s[k] == '*' || s[k] == '+' ||
					(s[k] >= '0' && s[k] <= '9') ||
					s[k] == '.' || s[k] == ')'))
					k++;
				if (len > k) {
					ed_buf_puts(b, "<li>");
					esc_n(b, s + k, len - k);
					ed_buf_puts(b, "</li>\n");
				}
				s += len + (e ? 1 : 0);
			}
			ed_buf_puts(b, "</ul>\n");
		} else if (!strcmp(kind, "table")) {
			struct rows c;
			long row = -1;
			query(st, &c,
			      "SELECT row, col, header, text FROM cells WHERE "
			      "block_id = %lld ORDER BY row, col",
			      (int64_t)num(&bl, i, 0));
			ed_buf_puts(b, "<table class=\"cells\">\n");
			for (size_t k = 0; k < c.n; k++) {
				bool th = num(&c, k, 2) != 0;
				if ((long)num(&c, k, 0) != row) {
					if (row >= 0)
						ed_buf_puts(b, "</tr>\n");
					ed_buf_puts(b, "<tr>");
					row = (long)num(&c, k, 0);
				}
				ed_buf_puts(b, th ? "<th>" : "<td>");
				esc(b, cell(&c, k, 3));
				ed_buf_puts(b, th ? "</th>" : "</td>");
			}
			if (row >= 0)
				ed_buf_puts(b, "</tr>\n");
			if (!c.n) { /* no cells: its text */
				ed_buf_puts(b, "<tr><td><pre>");
				esc(b, text);
				ed_buf_puts(b, "</pre></td></tr>\n");
			}
			ed_buf_puts(b, "</table>\n");
			rows_free(&c);
		} else if (!strcmp(kind, "formula") || !strcmp(kind, "code")) {
			ed_buf_puts(b, "<pre class=\"");
			esc(b, kind);
			ed_buf_puts(b, "\">");
			esc(b, text);
			ed_buf_puts(b, "</pre>\n");
		} else {
			ed_buf_puts(b, "<p>");
			esc(b, text);
			ed_buf_puts(b, "</p>\n");
		}
	}
	n = bl.n;
	rows_free(&bl);
	return n;
}

/* The page text with its fields marked (spans in bytes; overlapping ones
 * after the first are left unmarked), the rule on hover. */
static void text_with_fields(struct ed_store *st, struct ed_buf *b,
			     int64_t page_id, const char *text)
{
	struct rows f;
	size_t at = 0, len = text ? strlen(text) : 0;

	query(st, &f,
	      "SELECT name, value, rule, span_start, span_end FROM fields "
	      "WHERE page_id = %lld AND span_start IS NOT NULL ORDER BY "
	      "span_start, span_end DESC",
	      page_id);
	ed_buf_puts(b, "<pre class=\"text\">");
	for (size_t i = 0; i < f.n && text; i++) {
		size_t s = (size_t)num(&f, i, 3), e = (size_t)num(&f, i, 4);
		if (s < at || e <= s || e > len)
			continue;
		esc_n(b, text + at, s - at);
		ed_buf_puts(b, "<mark title=\"");
		esc(b, cell(&f, i, 2));
		ed_buf_puts(b, ": ");
		esc(b, cell(&f, i, 0));
		ed_buf_puts(b, "\">");
		esc_n(b, text + s, e - s);
		ed_buf_puts(b, "</mark>");
		at = e;
	}
	if (text)
		esc_n(b, text + at, len - at);
	ed_buf_puts(b, "</pre>\n");
	if (f.n) {
		ed_buf_printf(b,
			      "<p class=\"meta\">%zu field%s marked (hover "
			      "for the rule)</p>\n",
			      f.n, f.n == 1 ? "" : "s");
	}
	rows_free(&f);
}

static void zooms_html(struct ed_store *st, struct ed_buf *b, int64_t page_id)
{
	struct rows z;
	query(st, &z,
	      "SELECT step, x1, y1, x2, y2, label FROM zooms WHERE page_id = "
	      "%lld ORDER BY step",
	      page_id);
	for (size_t i = 0; i < z.n; i++) {
		double x1 = num(&z, i, 1) / 10, y1 = num(&z, i, 2) / 10,
		       x2 = num(&z, i, 3) / 10, y2 = num(&z, i, 4) / 10;
		ed_buf_printf(
		    b,
		    "<div class=\"zoom\" style=\"left:%.2f%%;top:%.2f%%;"
		    "width:%.2f%%;height:%.2f%%\"><span>zoom %d",
		    x1, y1, x2 - x1, y2 - y1, (int)num(&z, i, 0));
		if (cell(&z, i, 5)) {
			ed_buf_puts(b, ": ");
			esc(b, cell(&z, i, 5));
		}
		ed_buf_puts(b, "</span></div>\n");
	}
	rows_free(&z);
}

static void extraction_html(struct ed_buf *b, const struct rows *x, size_t i)
{
	const char *status = cell(x, i, 2);
	ed_buf_puts(b, "<div class=\"extraction\"><p class=\"meta\">"
		       "Extraction <b>");
	esc(b, cell(x, i, 1));
	ed_buf_puts(b, "</b> <span class=\"badge ");
	esc(b, status);
	ed_buf_puts(b, "\">");
	esc(b, status);
	ed_buf_puts(b, "</span></p><pre>");
	esc(b, cell(x, i, 3));
	ed_buf_puts(b, "</pre></div>\n");
}

static const char keys_script[] =
    "<script>\n"
    "/* j / k or the arrow keys: the next and previous page */\n"
    "document.addEventListener('keydown', function (e) {\n"
    "  var s = document.querySelectorAll('section.page'), i, c = 0;\n"
    "  for (i = 0; i < s.length; i++)\n"
    "    if (s[i].getBoundingClientRect().top < 10) c = i;\n"
    "  if (e.key === 'j' || e.key === 'ArrowRight') c++;\n"
    "  else if (e.key === 'k' || e.key === 'ArrowLeft') c--;\n"
    "  else return;\n"
    "  if (s[c]) location.hash = s[c].id;\n"
    "});\n"
    "</script>\n";

int ed_pipeline_export_html(struct ed_store *st, int64_t doc_id,
			    const struct ed_html_opts *o, struct ed_buf *b,
			    char *err, size_t errlen)
{
	struct rows d, p, x;
	struct ed_source src;
	struct ed_doc *doc = NULL;
	char why[512] = "";
	bool have_src = false;
	int rc;

	if ((rc = query(st, &d,
			"SELECT sha256, path, kind, pages, title, error FROM "
			"documents WHERE id = %lld",
			doc_id)) ||
	    !d.n) {
		rows_free(&d);
		return rc ? ed_err(err, errlen, rc, "out of memory")
			  : ed_err(err, errlen, ED_ENOENT, "no document %lld",
				   (long long)doc_id);
	}
	query(st, &p, pages_sql, doc_id);
	query(st, &x,
	      "SELECT page_no, schema_title, status, json FROM extractions "
	      "WHERE document_id = %lld ORDER BY page_no, id",
	      doc_id);
	/* the document itself, for the page images: the same bytes */
	if (cell(&d, 0, 1) && strcmp(cell(&d, 0, 1), "-") &&
	    !ed_pipeline_source_open(&src, cell(&d, 0, 1), 0, why,
				     sizeof why)) {
		have_src = true;
		if (strcmp(src.sha256, cell(&d, 0, 0)))
			snprintf(why, sizeof why,
				 "'%s' has changed since it was read",
				 cell(&d, 0, 1));
		else if (ed_pipeline_doc_open(&src, o->password, NULL, &doc,
					      why, sizeof why))
			doc = NULL;
	} else if (!why[0]) {
		snprintf(why, sizeof why,
			 "the document came from standard "
			 "input");
	}
	{
		const char *name = cell(&d, 0, 1) ? cell(&d, 0, 1) : "document";
		head(b, name);
		ed_buf_puts(b, "<header><h1>");
		esc(b, name);
		ed_buf_puts(b, "</h1><p>");
		esc(b, cell(&d, 0, 2));
		ed_buf_printf(b, ", %zu page%s stored of %s · sha256 ", p.n,
			      p.n == 1 ? "" : "s",
			      cell(&d, 0, 3) ? cell(&d, 0, 3) : "?");
		esc(b, cell(&d, 0, 0));
		ed_buf_puts(b, " · j/k: next, previous page</p></header>\n");
	}
	ed_buf_puts(b, "<nav class=\"pages\">Pages:");
	for (size_t i = 0; i < p.n; i++)
		ed_buf_printf(b, " <a href=\"#page-%d\">%d</a>",
			      (int)num(&p, i, P_NO), (int)num(&p, i, P_NO));
	ed_buf_puts(b, "</nav>\n");
	for (size_t i = 0; i < x.n; i++)
		if (num(&x, i, 0) == 0) {
			ed_buf_puts(b, "<section class=\"doc\" style=\"margin:"
				       "16px 20px\">");
			extraction_html(b, &x, i);
			ed_buf_puts(b, "</section>\n");
		}
	for (size_t i = 0; i < p.n; i++) {
		int no = (int)num(&p, i, P_NO);
		const char *status = cell(&p, i, P_STATUS);
		size_t nb;
		int64_t pid = (int64_t)num(&p, i, P_ID);
		ed_buf_printf(b,
			      "<section class=\"page\" id=\"page-%d\">\n"
			      "<div class=\"image\">\n",
			      no);
		page_image(b, doc, no - 1, o->image_dpi > 0 ? o->image_dpi : 60,
			   num(&p, i, P_W), why);
		zooms_html(st, b, pid);
		ed_buf_printf(b,
			      "</div>\n<div class=\"read\">\n<h2>Page %d</h2>\n"
			      "<p class=\"meta\"><span class=\"badge ",
			      no);
		esc(b, status);
		ed_buf_puts(b, "\">");
		esc(b, status);
		ed_buf_puts(b, "</span><span class=\"badge\">");
		esc(b, cell(&p, i, P_SOURCE));
		ed_buf_puts(b, "</span>");
		if (cell(&p, i, P_GUARD)) {
			ed_buf_puts(b, " guards: ");
			esc(b, cell(&p, i, P_GUARD));
		}
		if (cell(&p, i, P_SIM))
			ed_buf_printf(b, " · similarity to the text layer %.2f",
				      num(&p, i, P_SIM));
		if (cell(&p, i, P_TOUT))
			ed_buf_printf(b, " · %.0f tokens in, %.0f out",
				      num(&p, i, P_TIN), num(&p, i, P_TOUT));
		if (cell(&p, i, P_FINISH)) {
			ed_buf_puts(b, " (");
			esc(b, cell(&p, i, P_FINISH));
			ed_buf_puts(b, ")");
		}
		ed_buf_printf(b,
			      " · render %.0f ms, vision %.0f ms, prefill %.0f "
			      "ms, decode %.0f ms",
			      num(&p, i, P_MSR), num(&p, i, P_MSE),
			      num(&p, i, P_MSP), num(&p, i, P_MSD));
		if (cell(&p, i, P_MODEL) && *cell(&p, i, P_MODEL)) {
			ed_buf_puts(b, " · ");
			esc(b, cell(&p, i, P_MODEL));
			ed_buf_puts(b, ", ");
			esc(b, cell(&p, i, P_MODE));
		}
		ed_buf_puts(b, "</p>\n");
		if (status && (!strcmp(status, "error") ||
			       !strcmp(status, "needs-model"))) {
			ed_buf_puts(b, "<div class=\"problem\"><b>");
			ed_buf_puts(b, !strcmp(status, "error")
					   ? "This page failed"
					   : "This page needs the model");
			ed_buf_puts(b, ":</b> ");
			esc(b, cell(&p, i, P_ERROR));
			ed_buf_puts(b, "</div>\n");
		} else if (status && !strcmp(status, "blank")) {
			ed_buf_puts(b, "<p><i>A blank page.</i></p>\n");
		}
		if (cell(&p, i, P_REASON)) {
			ed_buf_puts(b, "<details><summary>Reasoning</summary>"
				       "<pre>");
			esc(b, cell(&p, i, P_REASON));
			ed_buf_puts(b, "</pre></details>\n");
		}
		nb = blocks_html(st, b, pid);
		if (cell(&p, i, P_TEXT) && *cell(&p, i, P_TEXT)) {
			/* open when it is all there is (a text layer) */
			ed_buf_printf(b,
				      "<details%s><summary>Text, with its "
				      "fields</summary>\n",
				      nb ? "" : " open");
			text_with_fields(st, b, pid, cell(&p, i, P_TEXT));
			ed_buf_puts(b, "</details>\n");
		}
		for (size_t k = 0; k < x.n; k++)
			if ((int)num(&x, k, 0) == no)
				extraction_html(b, &x, k);
		ed_buf_puts(b, "</div>\n</section>\n");
	}
	ed_buf_puts(b, keys_script);
	ed_buf_puts(b, "</body>\n</html>\n");
	if (doc)
		ed_render_doc_close(doc);
	if (have_src)
		ed_pipeline_source_release(&src);
	rows_free(&d);
	rows_free(&p);
	rows_free(&x);
	return ed_buf_reserve(b, 0)
		   ? ed_err(err, errlen, ED_ENOMEM, "out of memory")
		   : 0;
}

/* ---- the report -----------------------------------------------------------
 */

/* Bars in an inline SVG: values v[n] with labels. */
static void bars(struct ed_buf *b, const double *v, const char *const *lab,
		 size_t n, const char *title, const char *unit)
{
	double mx = 0;
	int w = 560, h = 140, pad = 24;
	for (size_t i = 0; i < n; i++)
		mx = fmax(mx, v[i]);
	ed_buf_printf(b, "<figure><figcaption>");
	esc(b, title);
	ed_buf_printf(b,
		      "</figcaption><svg "
		      "width=\"%d\" height=\"%d\" role=\"img\">",
		      w, h + pad);
	for (size_t i = 0; i < n && mx > 0; i++) {
		/* bars at most 40 pixels wide: one bucket is still a bar */
		double bw = fmin((double)(w - 10) / (double)n, 40);
		double bh = v[i] / mx * h;
		ed_buf_printf(b,
			      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			      "height=\"%.1f\" fill=\"#48c\"><title>",
			      5 + (double)i * bw, h - bh, fmax(bw - 2, 1), bh);
		esc(b, lab[i]);
		ed_buf_printf(b, ": %.0f %s</title></rect>", v[i], unit);
	}
	if (n) {
		ed_buf_puts(b, "<text x=\"5\" y=\"");
		ed_buf_printf(b, "%d\" font-size=\"11\">", h + 16);
		esc(b, lab[0]);
		ed_buf_printf(
		    b,
		    "</text><text x=\"%.0f\" y=\"%d\" "
		    "font-size=\"11\" text-anchor=\"end\">",
		    fmin(w - 5, 5 +
				    (double)n *
					fmin((double)(w - 10) / (double)n, 40) +
				    60),
		    h + 16);
		esc(b, lab[n - 1]);
		ed_buf_puts(b, "</text>");
	}
	ed_buf_printf(b,
		      "<text x=\"%d\" y=\"12\" font-size=\"11\" "
		      "text-anchor=\"end\">max %.0f %s</text></svg>"
		      "</figure>\n",
		      w - 5, mx, unit);
}

/* Bars of a two-column query: label, count of pages. */
static void chart(struct ed_buf *b, const struct rows *r, const char *title)
{
	double *v = calloc(r->n + 1, sizeof *v);
	const char **l = calloc(r->n + 1, sizeof *l);
	for (size_t i = 0; v && l && i < r->n; i++) {
		v[i] = num(r, i, 1);
		l[i] = cell(r, i, 0) ? cell(r, i, 0) : "";
	}
	if (v && l)
		bars(b, v, l, r->n, title, "pages");
	free(v);
	free(l);
}

static void table(struct ed_buf *b, const struct rows *r,
		  const char *const *heads, int ncol)
{
	ed_buf_puts(b, "<table class=\"t\"><tr>");
	for (int c = 0; c < ncol; c++) {
		ed_buf_puts(b, "<th>");
		esc(b, heads[c]);
		ed_buf_puts(b, "</th>");
	}
	ed_buf_puts(b, "</tr>\n");
	for (size_t i = 0; i < r->n; i++) {
		ed_buf_puts(b, "<tr>");
		for (int c = 0; c < ncol; c++) {
			ed_buf_puts(b, "<td>");
			esc(b, cell(r, i, c));
			ed_buf_puts(b, "</td>");
		}
		ed_buf_puts(b, "</tr>\n");
	}
	ed_buf_puts(b, "</table>\n");
}

int ed_pipeline_report_html(struct ed_store *st, struct ed_buf *b, char *err,
			    size_t errlen)
{
	struct rows r;

	head(b, "ernie-doc report");
	ed_buf_puts(b, "<header><h1>ernie-doc report</h1><p>Every document "
		       "and page in the store. A document's review: "
		       "<code>ernie-doc export --format html DOC -o "
		       "SHA12.html</code>, beside this file.</p></header>\n"
		       "<main class=\"report\">\n");
	query(st, &r,
	      "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM "
	      "documents WHERE error IS NOT NULL), (SELECT count(*) FROM "
	      "pages), (SELECT count(*) FROM runs) WHERE %lld = 0",
	      0);
	ed_buf_printf(b,
		      "<h2>Documents</h2><p>%.0f documents (%.0f could "
		      "not be read), %.0f page results, %.0f runs.</p>\n",
		      num(&r, 0, 0), num(&r, 0, 1), num(&r, 0, 2),
		      num(&r, 0, 3));
	rows_free(&r);
	{
		static const char *const h[] = {"status", "source", "pages"};
		query(st, &r,
		      "SELECT status, source, count(*) FROM pages WHERE %lld = "
		      "0 AND coalesce(chosen, 1) GROUP BY status, source ORDER "
		      "BY status, source",
		      0);
		ed_buf_puts(b, "<h2>Pages by status and source</h2>\n");
		table(b, &r, h, 3);
		rows_free(&r);
	}
	/* pages to look at again, linked into their document's review */
	query(st, &r,
	      "SELECT substr(d.sha256, 1, 12), d.path, p.page_no, "
	      "coalesce(p.guard, ''), p.text_similarity, p.status, "
	      "(SELECT group_concat(x.status) FROM extractions x WHERE "
	      "x.document_id = d.id AND x.page_no = p.page_no AND x.status "
	      "IN ('incomplete', 'invalid', 'error')) FROM pages p JOIN "
	      "documents d ON d.id = p.document_id WHERE %lld = 0 AND "
	      "coalesce(p.chosen, 1) AND (p.status IN ('error', "
	      "'needs-model') OR (p.guard IS NOT NULL AND p.guard != "
	      "'blank') OR p.text_similarity < 0.5 OR EXISTS (SELECT 1 FROM "
	      "extractions x WHERE x.document_id = d.id AND x.page_no = "
	      "p.page_no AND x.status IN ('incomplete', 'invalid', 'error'))) "
	      "ORDER BY d.path, p.page_no LIMIT 1000",
	      0);
	ed_buf_printf(b, "<h2>Pages to look at again (%zu)</h2>\n", r.n);
	if (r.n) {
		ed_buf_puts(b, "<table class=\"t\"><tr><th>page</th><th>why"
			       "</th></tr>\n");
		for (size_t i = 0; i < r.n; i++) {
			ed_buf_puts(b, "<tr><td><a href=\"");
			esc(b, cell(&r, i, 0));
			ed_buf_printf(b, ".html#page-%d\">",
				      (int)num(&r, i, 2));
			esc(b, cell(&r, i, 1));
			ed_buf_printf(b, " p. %d</a></td><td>",
				      (int)num(&r, i, 2));
			esc(b, cell(&r, i, 5));
			if (cell(&r, i, 3) && *cell(&r, i, 3)) {
				ed_buf_puts(b, "; guards ");
				esc(b, cell(&r, i, 3));
			}
			if (cell(&r, i, 4) && num(&r, i, 4) < 0.5)
				ed_buf_printf(b, "; similarity %.2f",
					      num(&r, i, 4));
			if (cell(&r, i, 6)) {
				ed_buf_puts(b, "; extraction ");
				esc(b, cell(&r, i, 6));
			}
			ed_buf_puts(b, "</td></tr>\n");
		}
		ed_buf_puts(b, "</table>\n");
	}
	rows_free(&r);
	/* throughput: pages stored per hour; tokens per page */
	ed_buf_puts(b, "<h2>Throughput</h2>\n");
	query(st, &r,
	      "SELECT substr(created_at, 1, 10) || ' ' || substr(created_at, "
	      "12, 2) || 'h', count(*) FROM pages WHERE %lld = 0 GROUP BY 1 "
	      "ORDER BY 1",
	      0);
	chart(b, &r, "pages stored per hour");
	rows_free(&r);
	query(st, &r,
	      "SELECT min(tokens_out / 50 * 50, 2000), count(*) FROM pages "
	      "WHERE %lld = 0 AND tokens_out > 0 GROUP BY 1 ORDER BY 1",
	      0);
	chart(b, &r, "pages by tokens generated (bins of 50)");
	rows_free(&r);
	{
		static const char *const h[] = {
		    "run",   "started", "finished", "backend",
		    "model", "mode",	"options"};
		query(st, &r,
		      "SELECT id, started_at, finished_at, backend, model_id, "
		      "mode, options_json FROM runs WHERE %lld = 0 ORDER BY id",
		      0);
		ed_buf_puts(b, "<h2>Runs</h2>\n");
		table(b, &r, h, 7);
		rows_free(&r);
	}
	ed_buf_puts(b, "</main>\n</body>\n</html>\n");
	return ed_buf_reserve(b, 0)
		   ? ed_err(err, errlen, ED_ENOMEM, "out of memory")
		   : 0;
}
