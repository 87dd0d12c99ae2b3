/*
 * test_pipeline.c - pipeline/: the text-layer and blank guards, inputs,
 * and whole documents through a run: statuses, resume (nothing
 * recomputed, no rows added), --force, page selection, text-layer modes,
 * interruption, a bad input recorded with its error; Markdown to blocks,
 * rules to fields, similarity, the repetition guard, the token budget,
 * the batch walk and its shards.
 */
#include "tests/harness.h"
#include "tests/util.h"

#include <cairo-pdf.h>
#include <math.h>
#include <cairo.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

static char dir[512];

static void test_text_guard(void)
{
	struct ed_text_stats s;
	const char *good = "The quick brown fox jumps over the lazy dog again.";
	const char *junk =
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd abc def ghi jkl mno";
	const char *punct = "--- ... ||| ### *** ;;; ::: ,,, ___ --- ...";

	ed_pipeline_text_stats(good, strlen(good), &s);
	CHECK_INT(s.visible, 41);
	CHECK(ed_pipeline_text_good(&s, 93.5, 0), "good text");
	/* sparse text over a page that is mostly image: not good */
	CHECK(!ed_pipeline_text_good(&s, 93.5, 0.8), "sparse OCR layer");
	CHECK(ed_pipeline_text_good(&s, 5, 0.8), "dense text over images");
	ed_pipeline_text_stats("short", 5, &s);
	CHECK(!ed_pipeline_text_good(&s, 93.5, 0), "too short");
	ed_pipeline_text_stats(junk, strlen(junk), &s);
	CHECK_INT(s.junk, 3);
	CHECK(!ed_pipeline_text_good(&s, 93.5, 0), "replacement characters");
	ed_pipeline_text_stats(punct, strlen(punct), &s);
	CHECK(!ed_pipeline_text_good(&s, 93.5, 0), "punctuation only");
	/* CJK counts as letters */
	{
		const char *cjk =
		    "\xe6\x96\x87\xe5\xad\x97\xe8\xaf\x86\xe5\x88\xab"
		    "\xe6\x96\x87\xe5\xad\x97\xe8\xaf\x86\xe5\x88\xab"
		    "\xe6\x96\x87\xe5\xad\x97\xe8\xaf\x86\xe5\x88\xab"
		    "\xe6\x96\x87\xe5\xad\x97\xe8\xaf\x86\xe5\x88\xab";
		ed_pipeline_text_stats(cjk, strlen(cjk), &s);
		CHECK(s.visible == 16 && s.alnum == 16, "cjk %zu %zu",
		      s.visible, s.alnum);
		CHECK(ed_pipeline_text_good(&s, 93.5, 0), "cjk text");
	}
}

static void test_blank_guard(void)
{
	struct ed_image img;
	char err[128];
	double ink;

	ed_render_image_init(&img, 850, 1100, err, sizeof err);
	CHECK(ed_pipeline_is_blank(&img, &ink) && ink == 0, "white page");
	/* a gray scanned background with light noise is still blank */
	for (size_t i = 0; i < 850 * 1100 * 3; i++)
		img.rgb[i] = (uint8_t)(200 + (i * 7919) % 21);
	CHECK(ed_pipeline_is_blank(&img, &ink), "gray page, ink %g", ink);
	/* a few specks */
	for (int k = 0; k < 20; k++)
		memset(img.rgb + ((size_t)(k * 40 + 10) * 850 + 400) * 3, 0, 9);
	CHECK(ed_pipeline_is_blank(&img, &ink), "specks, ink %g", ink);
	/* one line of text: a 600 x 12 band of 30% ink */
	for (int y = 500; y < 512; y++)
		for (int x = 100; x < 700; x++)
			if ((x + y) % 3 == 0)
				memset(img.rgb + ((size_t)y * 850 + x) * 3, 20,
				       3);
	CHECK(!ed_pipeline_is_blank(&img, &ink), "a line of text, ink %g", ink);
	ed_render_image_release(&img);
}

static void test_source(void)
{
	struct ed_source src;
	char path[600], err[256], hex[65];
	FILE *f;

	snprintf(path, sizeof path, "%s/src.bin", dir);
	f = fopen(path, "wb");
	fputs("%PDF-1.4 not really", f);
	fclose(f);
	CHECK_INT(ed_pipeline_source_open(&src, path, 0, err, sizeof err), 0);
	ed_sha256_hex("%PDF-1.4 not really", 19, hex);
	CHECK_STR(src.sha256, hex);
	CHECK_INT(src.kind, ED_RENDER_PDF);
	CHECK_INT(src.len, 19);
	ed_pipeline_source_release(&src);
	CHECK_INT(ed_pipeline_source_open(&src, "/nonexistent/x.pdf", 0, err,
					  sizeof err),
		  ED_ENOENT);
	CHECK(strstr(err, "/nonexistent/x.pdf") != NULL, "names the file");
	CHECK_INT(ed_pipeline_source_open(&src, dir, 0, err, sizeof err),
		  ED_ENOENT);
	CHECK(strstr(err, "directory") != NULL, "%s", err);
}

/* page 1: a paragraph; page 2: nothing; page 3: a drawing, no text */
static void write_doc(const char *path)
{
	cairo_surface_t *s = cairo_pdf_surface_create(path, 612, 792);
	cairo_t *cr = cairo_create(s);

	cairo_set_font_size(cr, 11);
	for (int i = 0; i < 20; i++) {
		cairo_move_to(cr, 72, 72 + 14 * i);
		cairo_show_text(cr, "The ernie-doc pipeline reads this line of "
				    "the text layer without a model.");
	}
	cairo_show_page(cr);
	cairo_show_page(cr);
	cairo_rectangle(cr, 100, 100, 400, 300);
	cairo_fill(cr);
	cairo_show_page(cr);
	cairo_destroy(cr);
	cairo_surface_destroy(s);
}

struct seen {
	int n, cached;
	char status[8][16];
	int stop_after; /* set *interrupt after this many pages */
	volatile sig_atomic_t *interrupt;
};

static void on_page(void *ud, const struct ed_page_result *r)
{
	struct seen *s = ud;

	if (s->n < 8)
		snprintf(s->status[s->n], sizeof s->status[0], "%s", r->status);
	s->n++;
	s->cached += r->cached;
	if (s->stop_after && s->n == s->stop_after)
		*s->interrupt = 1;
}

static long long count_rows(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long n = -1;

	sqlite3_open(db, &h);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static struct ed_doc_result *doc_out;

static void on_doc(void *ud, const char *path, const struct ed_doc_result *r)
{
	(void)ud;
	(void)path;
	*doc_out = *r;
}

static int run(const char *db, const char *file, struct ed_pipeline_opts *o,
	       struct seen *s, struct ed_doc_result *r)
{
	struct ed_pipeline *p;
	char err[256];
	int rc;

	o->db_path = db;
	o->on_page = on_page;
	o->on_doc = on_doc;
	o->ud = s;
	memset(r, 0, sizeof *r);
	doc_out = r;
	memset(s->status, 0, sizeof s->status);
	s->n = s->cached = 0;
	rc = ed_pipeline_open(&p, o, err, sizeof err);
	CHECK(rc == 0, "open: %s", err);
	if (rc)
		return rc;
	{
		struct ed_run_result rr;
		const char *paths[1] = {file};
		rc = ed_pipeline_run(p, paths, 1, &rr);
		CHECK_INT(rr.docs, 1);
		if (!rc)
			rc = r->code;
	}
	ed_pipeline_close(p);
	return rc;
}

static void test_ocr(void)
{
	char pdf[600], db[600], bad[600];
	struct ed_pipeline_opts o;
	struct ed_doc_result r;
	struct seen s = {0};
	volatile sig_atomic_t stop = 0;
	FILE *f;

	snprintf(pdf, sizeof pdf, "%s/doc.pdf", dir);
	snprintf(db, sizeof db, "%s/ocr.db", dir);
	write_doc(pdf);

	ed_pipeline_opts_default(&o);
	o.dpi = 72;
	CHECK_INT(run(db, pdf, &o, &s, &r), 0);
	CHECK(r.pages == 3 && r.done == 1 && r.blank == 1 && r.needs_model == 1,
	      "first run: %d pages, %d done, %d blank, %d need the model",
	      r.pages, r.done, r.blank, r.needs_model);
	CHECK_INT(s.n, 3);
	CHECK_STR(s.status[0], "done");
	CHECK_STR(s.status[1], "blank");
	CHECK_STR(s.status[2], "needs-model");
	CHECK_INT(count_rows(db, "SELECT count(*) FROM pages"), 3);
	CHECK_INT(count_rows(db,
			     "SELECT count(*) FROM pages WHERE source = "
			     "'text-layer' AND text LIKE '%without a model%'"),
		  1);

	/* a re-run does no work and adds no rows; needs-model is retried */
	CHECK_INT(run(db, pdf, &o, &s, &r), 0);
	CHECK(r.cached == 2 && r.done == 0 && r.blank == 0 &&
		  r.needs_model == 1,
	      "re-run: cached %d done %d blank %d", r.cached, r.done, r.blank);
	CHECK_INT(s.cached, 2);
	CHECK_INT(count_rows(db, "SELECT count(*) FROM pages"), 3);
	/* the finished rows were kept, not rewritten */
	CHECK_INT(count_rows(db, "SELECT sum(id) FROM pages WHERE page_no < 3"),
		  3);

	/* --force recomputes every page, still one row per key */
	o.force = true;
	CHECK_INT(run(db, pdf, &o, &s, &r), 0);
	CHECK(r.cached == 0 && r.done == 1 && r.blank == 1, "force");
	CHECK_INT(count_rows(db, "SELECT count(*) FROM pages"), 3);
	o.force = false;

	/* page selection */
	o.pages.n = 1;
	o.pages.span[0].lo = o.pages.span[0].hi = 3;
	CHECK_INT(run(db, pdf, &o, &s, &r), 0);
	CHECK(s.n == 1 && r.needs_model == 1, "only page 3: %d pages", s.n);
	o.pages.n = 0;

	/* --text-layer only: every page from the text layer, no raster */
	{
		char db2[700];
		snprintf(db2, sizeof db2, "%s/only.db", dir);
		o.text_layer = ED_TEXT_LAYER_ONLY;
		CHECK_INT(run(db2, pdf, &o, &s, &r), 0);
		CHECK(r.done == 3 && r.needs_model == 0, "only: %d done",
		      r.done);
		CHECK_INT(
		    count_rows(db2,
			       "SELECT count(*) FROM pages WHERE "
			       "source = 'text-layer' AND ms_render IS NULL"),
		    3);
		o.text_layer = ED_TEXT_LAYER_NEVER;
		snprintf(db2, sizeof db2, "%s/never.db", dir);
		CHECK_INT(run(db2, pdf, &o, &s, &r), 0);
		CHECK(r.done == 0 && r.blank == 1 && r.needs_model == 2,
		      "never: %d needs model", r.needs_model);
		o.text_layer = ED_TEXT_LAYER_AUTO;
	}

	/* interrupted after the first page: that page is committed */
	{
		char db3[700];
		long long stored;
		snprintf(db3, sizeof db3, "%s/int.db", dir);
		o.interrupted = &stop;
		s.stop_after = 1;
		s.interrupt = &stop;
		CHECK_INT(run(db3, pdf, &o, &s, &r), ED_EINTR);
		/* the first page, and those finished while it was stored */
		stored = count_rows(db3, "SELECT count(*) FROM pages");
		CHECK(stored >= 1 && stored <= 3, "%lld pages stored", stored);
		CHECK_INT(s.n, stored);
		stop = 0;
		s.stop_after = 0;
		CHECK_INT(run(db3, pdf, &o, &s, &r), 0);
		/* needs-model rows are retried, so not cached */
		CHECK(r.cached + r.blank + r.needs_model + r.done == 3 &&
			  r.cached >= 1 && r.needs_model == 1,
		      "resumed after interrupt: %d cached", r.cached);
		CHECK_INT(count_rows(db3, "SELECT count(*) FROM pages"), 3);
		o.interrupted = NULL;
	}

	/* a bad input is recorded with its error */
	snprintf(bad, sizeof bad, "%s/bad.pdf", dir);
	f = fopen(bad, "w");
	fputs("%PDF-1.4\n%%EOF\n", f);
	fclose(f);
	CHECK_INT(run(db, bad, &o, &s, &r), ED_EFORMAT);
	CHECK(strstr(r.error, "bad.pdf") != NULL, "error names the file: %s",
	      r.error);
	CHECK_INT(count_rows(db, "SELECT count(*) FROM documents WHERE error "
				 "IS NOT NULL AND path LIKE '%bad.pdf'"),
		  1);
	CHECK_INT(s.n, 0);
	CHECK_INT(run(db, "/nonexistent.pdf", &o, &s, &r), ED_ENOENT);
}

static void test_parse(void)
{
	static const char md[] =
	    "# Invoice 42\n"
	    "\n"
	    "Dear customer, thank you\n"
	    "for your order.\n"
	    "\n"
	    "## Items\n"
	    "- paper\n"
	    "- ink\n"
	    "\n"
	    "| Item | Price |\n"
	    "|------|------:|\n"
	    "| Paper | 12.00 |\n"
	    "| Ink | 3.50 |\n"
	    "\n"
	    "<table><tr><th>A</th><th>B &amp; C</th></tr>\n"
	    "<tr><td>1</td><td><b>2</b></td></tr></table>\n"
	    "$$\n"
	    "E = mc^2\n"
	    "$$\n"
	    "![a chart of sales](chart.png)\n"
	    "```\n"
	    "code here\n"
	    "```\n"
	    "Last words.";
	static const char *const kinds[] = {
	    "heading", "paragraph", "heading", "list", "table",
	    "table",   "formula",   "figure",  "code", "paragraph"};
	const struct ed_store_block *b;
	struct ed_arena a;
	size_t n;

	ed_arena_init(&a, 4096);
	CHECK_INT(ed_pipeline_parse_markdown(md, strlen(md), &a, &b, &n), 0);
	CHECK_INT(n, ED_ARRAY_LEN(kinds));
	for (size_t i = 0; i < n && i < ED_ARRAY_LEN(kinds); i++)
		CHECK_STR(b[i].kind, kinds[i]);
	if (n == ED_ARRAY_LEN(kinds)) {
		CHECK_STR(b[0].text, "Invoice 42");
		CHECK_INT(b[0].level, 1);
		CHECK_INT(b[2].level, 2);
		CHECK_STR(b[1].text,
			  "Dear customer, thank you\nfor your order.");
		CHECK_STR(b[3].text, "- paper\n- ink");
		/* the pipe table: a header row, then the body */
		CHECK_INT(b[4].ncells, 6);
		CHECK(b[4].cells[0].header && b[4].cells[1].header &&
			  !b[4].cells[2].header,
		      "pipe header row");
		CHECK_STR(b[4].cells[3].text, "12.00");
		CHECK_INT(b[4].cells[3].row, 1);
		CHECK_INT(b[4].cells[3].col, 1);
		CHECK_STR(b[4].cells[4].text, "Ink");
		CHECK_INT(b[4].cells[4].row, 2);
		/* the HTML table: html kept, text and cells decoded */
		CHECK(b[5].html && strncmp(b[5].html, "<table>", 7) == 0 &&
			  strstr(b[5].html, "</table>"),
		      "html kept");
		CHECK_STR(b[5].text, "A B & C 1 2");
		CHECK_INT(b[5].ncells, 4);
		CHECK_STR(b[5].cells[1].text, "B & C");
		CHECK(b[5].cells[1].header && !b[5].cells[2].header,
		      "th is a header");
		CHECK_STR(b[5].cells[3].text, "2");
		CHECK_INT(b[5].cells[3].row, 1);
		CHECK_STR(b[6].text, "$$\nE = mc^2\n$$");
		CHECK_STR(b[7].text, "a chart of sales");
		CHECK_STR(b[9].text, "Last words.");
	}
	/* nothing, or only blank lines: no blocks */
	CHECK_INT(ed_pipeline_parse_markdown("\n \n", 3, &a, &b, &n), 0);
	CHECK_INT(n, 0);
	/* an unclosed table or fence runs to the end, never past it */
	CHECK_INT(
	    ed_pipeline_parse_markdown("<table><tr><td>x", 16, &a, &b, &n), 0);
	CHECK(n == 1 && b[0].ncells == 1 &&
		  strcmp(b[0].cells[0].text, "x") == 0,
	      "unclosed table");
	CHECK_INT(ed_pipeline_parse_markdown("```\nint x;", 10, &a, &b, &n), 0);
	CHECK(n == 1 && strcmp(b[0].kind, "code") == 0, "unclosed fence");
	ed_arena_release(&a);
}

/* The fields found in text, as "name=value@start-end;" */
static void fields_of(const struct ed_rules *rs, const char *text, char *out,
		      size_t outlen)
{
	const struct ed_store_field *f;
	struct ed_arena a;
	size_t n, k = 0;

	ed_arena_init(&a, 4096);
	out[0] = '\0';
	if (ed_pipeline_rules_run(rs, text, strlen(text), &a, &f, &n) == 0)
		for (size_t i = 0; i < n && k < outlen; i++)
			k += (size_t)snprintf(out + k, outlen - k,
					      "%s=%s@%lld-%lld;", f[i].name,
					      f[i].value, (long long)f[i].start,
					      (long long)f[i].end);
	ed_arena_release(&a);
}

static void test_rules(void)
{
	struct ed_rules *rs;
	char err[256], got[1024], path[600];
	FILE *f;

	CHECK_INT(ed_pipeline_rules_load(&rs, NULL, err, sizeof err), 0);
	fields_of(rs, "Due 2026-11-23, pay EUR 1,234.50 or $99.", got,
		  sizeof got);
	CHECK_STR(got, "date=2026-11-23@4-14;amount=EUR 1,234.50@20-32;"
		       "amount=$99@36-39;");
	fields_of(rs, "Mail ocr@example.com or see https://example.com/a?b=1.",
		  got, sizeof got);
	CHECK_STR(got, "email=ocr@example.com@5-20;"
		       "url=https://example.com/a?b=1.@28-54;");
	fields_of(rs, "Call +49 30 1234567 on 3 March 2025, 12 items.", got,
		  sizeof got);
	CHECK_STR(got, "date=3 March 2025@23-35;phone=+49 30 1234567@5-19;");
	/* spans are bytes: UTF-8 before a match moves it */
	fields_of(rs,
		  "\xe6\x97\xa5\xe6\x9c\x9f 2026\xe5\xb9\xb4"
		  "3\xe6\x9c\x88"
		  "1\xe6\x97\xa5 100\xe5\x85\x83",
		  got, sizeof got);
	CHECK_STR(got, "date=2026\xe5\xb9\xb4"
		       "3\xe6\x9c\x88"
		       "1\xe6\x97\xa5"
		       "@7-22;amount=100\xe5\x85\x83@23-29;");
	/* a number alone is no amount, a short one no phone */
	fields_of(rs, "Page 12 of 30, 4 items.", got, sizeof got);
	CHECK_STR(got, "");
	ed_pipeline_rules_free(rs);

	/* a rules file: a named value group, comments, runaway patterns */
	snprintf(path, sizeof path, "%s/rules", dir);
	f = fopen(path, "w");
	fputs("# invoices\n\ninvoice INV-(?<value>\\d+)\n"
	      "slow (a+)+$\n",
	      f);
	fclose(f);
	CHECK_INT(ed_pipeline_rules_load(&rs, path, err, sizeof err), 0);
	fields_of(rs, "Invoice INV-0042.", got, sizeof got);
	CHECK_STR(got, "invoice=0042@8-16;");
	{
		/* catastrophic backtracking ends at the match limit */
		char evil[64];
		memset(evil, 'a', 40);
		memcpy(evil + 40, "!", 2);
		fields_of(rs, evil, got, sizeof got);
		CHECK_STR(got, "");
	}
	ed_pipeline_rules_free(rs);
	f = fopen(path, "w");
	fputs("ok \\d+\nbroken (unclosed\n", f);
	fclose(f);
	CHECK_INT(ed_pipeline_rules_load(&rs, path, err, sizeof err),
		  ED_ECONFIG);
	CHECK(strstr(err, "line 2") && strstr(err, "broken"), "%s", err);
	f = fopen(path, "w");
	fputs("lonely\n", f);
	fclose(f);
	CHECK_INT(ed_pipeline_rules_load(&rs, path, err, sizeof err),
		  ED_ECONFIG);
	CHECK_INT(
	    ed_pipeline_rules_load(&rs, "/no/such/rules", err, sizeof err),
	    ED_ENOENT);
	{
		/* from memory: CRLF, a last line without its newline, and a
		 * line longer than any fixed buffer (it was cut at 8191 bytes
		 * and its tail read as a second rule) */
		size_t plen = 20000, k = 0;
		char *text = malloc(plen + 64);
		k += (size_t)snprintf(text, plen + 64,
				      "ref REF-(?<value>\\d+)\r\nlong ");
		for (size_t i = 0; i < plen / 2; i++)
			text[k++] = "x?"[i & 1];
		k += (size_t)snprintf(text + k, plen + 64 - k,
				      "LONG\r\nlast Z\\d");
		CHECK_INT(ed_pipeline_rules_parse(&rs, text, k, "mem", err,
						  sizeof err),
			  0);
		fields_of(rs, "REF-77 LONG Z9", got, sizeof got);
		CHECK_STR(got, "ref=77@0-6;long=LONG@7-11;last=Z9@12-14;");
		ed_pipeline_rules_free(rs);
		/* a NUL byte is refused with its line */
		CHECK_INT(ed_pipeline_rules_parse(&rs, "a \\d\nb x\0y\n", 11,
						  "mem", err, sizeof err),
			  ED_ECONFIG);
		CHECK(strstr(err, "'mem' line 2: a NUL byte") != NULL, "%s",
		      err);
		free(text);
	}
}

static void test_similarity(void)
{
	CHECK(ed_pipeline_similarity("The cat sat.", "the CAT sat") == 1,
	      "case and punctuation do not count");
	CHECK(ed_pipeline_similarity("a b c d", "a b x y") == 0.5, "half");
	CHECK(ed_pipeline_similarity("one two", "three four") == 0, "none");
	/* a multiset: repeats count once each */
	CHECK(ed_pipeline_similarity("a a a b", "a b") == 2.0 * 2 / 6,
	      "multiset");
	CHECK(ed_pipeline_similarity("", "") == 1, "both empty");
	CHECK(ed_pipeline_similarity("words", "") == 0, "one empty");
	/* CJK characters are words */
	CHECK(ed_pipeline_similarity("\xe6\x96\x87\xe5\xad\x97",
				     "\xe6\x96\x87\xe4\xb8\xad") == 0.5,
	      "cjk");
}

static void test_repeats(void)
{
	char text[4096];
	size_t at = 0, n;

	/* a sentence that keeps coming back */
	n = (size_t)snprintf(text, sizeof text, "Intro text here. ");
	while (n < 1000)
		n +=
		    (size_t)snprintf(text + n, sizeof text - n, "Same again. ");
	CHECK(ed_pipeline_repeats(text, n, &at), "loop found");
	/* the loop begins as far back as the text is periodic (". " of the
	 * intro already matches); one period of it is kept */
	CHECK_INT(at, strlen("Intro text here") + strlen("Same again. "));
	/* one character forever */
	memset(text, '-', 500);
	CHECK(ed_pipeline_repeats(text, 500, &at), "dash run");
	/* too short to call a loop */
	CHECK(!ed_pipeline_repeats(text, 300, &at), "under 400 characters");
	/* ordinary prose does not repeat */
	n = 0;
	for (int i = 0; n < 2000; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "Line %d says something new. ", i);
	CHECK(!ed_pipeline_repeats(text, n, &at), "prose");
	/* a table whose rows differ only in numbers is no loop */
	n = 0;
	for (int i = 0; n < 2000; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "<tr><td>%d</td></tr>", i);
	CHECK(!ed_pipeline_repeats(text, n, &at), "numbered rows");
}

static void test_budget(void)
{
	int a4_dense = ed_pipeline_token_budget(595.276, 841.89, 0.08, 100000);
	int a4_light = ed_pipeline_token_budget(595.276, 841.89, 0.01, 100000);
	int a5_dense = ed_pipeline_token_budget(420, 595.276, 0.08, 100000);

	CHECK_INT(a4_dense, 4096);
	CHECK(a4_light < a4_dense && a5_dense < a4_dense,
	      "grows with ink "
	      "and area: %d %d %d",
	      a4_light, a5_dense, a4_dense);
	CHECK_INT(ed_pipeline_token_budget(595.276, 841.89, 0, 100000), 256);
	CHECK_INT(ed_pipeline_token_budget(595.276, 841.89, 0.5, 1000), 1000);
}

static void touch(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f) {
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static void test_walk(void)
{
	static const char png[] = "\x89PNG\r\n\x1a\nrest";
	char root[600], p[700];
	const char *roots[2];
	struct ed_pathlist l, s;
	char err[256];
	size_t total = 0;

	snprintf(root, sizeof root, "%s/walk", dir);
	mkdir(root, 0755);
	snprintf(p, sizeof p, "%s/sub", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/b.bin", root);
	touch(p, "%PDF-1.4\n", 9);
	snprintf(p, sizeof p, "%s/a.txt", root);
	touch(p, "hello", 5);
	snprintf(p, sizeof p, "%s/sub/c.png", root);
	touch(p, png, sizeof png - 1);
	snprintf(p, sizeof p, "%s/sub/d.tif", root);
	touch(p, "II*\0rest", 8);
	snprintf(p, sizeof p, "%s/sub/up", root);
	CHECK_INT(symlink("..", p), 0); /* a loop */
	snprintf(p, sizeof p, "%s/sub/dangling", root);
	CHECK_INT(symlink("nowhere", p), 0);
	roots[0] = root;
	CHECK_INT(ed_pipeline_walk(roots, 1, &l, err, sizeof err), 0);
	CHECK_INT(l.n, 3);
	CHECK_INT(l.skipped, 1);
	if (l.n == 3) {
		snprintf(p, sizeof p, "%s/b.bin", root);
		CHECK_STR(ed_pipeline_path_at(&l, 0), p);
		snprintf(p, sizeof p, "%s/sub/c.png", root);
		CHECK_STR(ed_pipeline_path_at(&l, 1), p);
	}
	ed_pipeline_pathlist_free(&l);
	roots[1] = "/no/such/dir";
	CHECK_INT(ed_pipeline_walk(roots, 2, &l, err, sizeof err), ED_ENOENT);

	/* shards: disjoint, together everything, the same every time */
	for (int i = 0; i < 20; i++) {
		snprintf(p, sizeof p, "%s/sub/f%02d.pdf", root, i);
		touch(p, "%PDF-1.4\n", 9);
	}
	for (unsigned k = 0; k < 3; k++) {
		char first[700] = "";
		CHECK_INT(ed_pipeline_walk(roots, 1, &s, err, sizeof err), 0);
		ed_pipeline_shard(&s, k, 3);
		CHECK(s.n > 0 && s.n < 23, "shard %u of 3: %zu files", k, s.n);
		total += s.n;
		if (s.n)
			snprintf(first, sizeof first, "%s",
				 ed_pipeline_path_at(&s, 0));
		ed_pipeline_pathlist_free(&s);
		CHECK_INT(ed_pipeline_walk(roots, 1, &s, err, sizeof err), 0);
		ed_pipeline_shard(&s, k, 3);
		CHECK(s.n && strcmp(first, ed_pipeline_path_at(&s, 0)) == 0,
		      "shard %u stable", k);
		ed_pipeline_pathlist_free(&s);
	}
	CHECK_INT(total, 23);
}

static void test_zoom_box(void)
{
	static const char *const bad[][2] = {
	    {"image_zoom_in_tool", "{\"bbox_2d\": [1, 2, 3]}"},
	    {"image_zoom_in_tool", "{\"bbox_2d\": [\"a\", 2, 3, 4]}"},
	    {"image_zoom_in_tool", "{\"bbox_2d\": [300, 0, 100, 100]}"},
	    {"image_zoom_in_tool", "{\"bbox_2d\": [1100, 0, 1200, 10]}"},
	    {"image_zoom_in_tool", "{\"bbox_2d\": [1e999, 0, 10, 10]}"},
	    {"image_zoom_in_tool", "{\"bbox\": [0, 0, 10, 10]}"},
	    {"image_zoom_in_tool", "[0, 0, 10, 10]"},
	    {"image_zoom_in_tool", "{bbox_2d: [0, 0, 10, 10]}"},
	    {"image_zoom_in_tool", NULL},
	    {"image_search", "{\"bbox_2d\": [0, 0, 10, 10]}"},
	    {NULL, "{\"bbox_2d\": [0, 0, 10, 10]}"},
	};
	struct ed_zoom_box b;
	struct ed_rect r;
	char err[256];
	int x0, y0, x1, y1;
	double pts[4];

	CHECK_INT(
	    ed_pipeline_zoom_parse(
		"image_zoom_in_tool",
		"{\"bbox_2d\": [100, 200, 300, 400], \"label\": \"a table\"}",
		&b, err, sizeof err),
	    0);
	CHECK(b.x1 == 100 && b.y1 == 200 && b.x2 == 300 && b.y2 == 400,
	      "box %g %g %g %g", b.x1, b.y1, b.x2, b.y2);
	CHECK_STR(b.label, "a table");
	/* mapped: fractions, pixels of an odd-sized raster, points */
	r = ed_pipeline_zoom_rect(&b);
	CHECK(r.x0 == 0.1 && r.y0 == 0.2 && r.x1 == 0.3 && r.y1 == 0.4, "rect");
	ed_render_rect_pixels(&r, 333, 777, &x0, &y0, &x1, &y1);
	CHECK(x0 == 33 && x1 == 100 && y0 == 155 && y1 == 311,
	      "pixels %d %d %d %d", x0, y0, x1, y1);
	ed_pipeline_zoom_points(&b, 612, 792, pts);
	CHECK(fabs(pts[0] - 61.2) < 1e-9 && fabs(pts[1] - 158.4) < 1e-9 &&
		  fabs(pts[2] - 183.6) < 1e-9 && fabs(pts[3] - 316.8) < 1e-9,
	      "points %g %g %g %g", pts[0], pts[1], pts[2], pts[3]);
	/* clamped to the page */
	CHECK_INT(
	    ed_pipeline_zoom_parse("image_zoom_in_tool",
				   "{\"bbox_2d\": [-50, 10, 1200, 990.5]}", &b,
				   err, sizeof err),
	    0);
	CHECK(b.x1 == 0 && b.y1 == 10 && b.x2 == 1000 && b.y2 == 990.5,
	      "clamped %g %g %g %g", b.x1, b.y1, b.x2, b.y2);
	r = ed_pipeline_zoom_rect(&b);
	ed_render_rect_pixels(&r, 333, 777, &x0, &y0, &x1, &y1);
	CHECK(x0 == 0 && x1 == 333 && y0 == 7 && y1 == 770,
	      "full width %d %d %d %d", x0, y0, x1, y1);
	/* too small: grown around the centre, kept on the page */
	CHECK_INT(ed_pipeline_zoom_parse("image_zoom_in_tool",
					 "{\"bbox_2d\": [500, 500, 501, 501]}",
					 &b, err, sizeof err),
		  0);
	CHECK(b.x1 == 490.5 && b.x2 == 510.5 && b.y1 == 490.5 && b.y2 == 510.5,
	      "grown %g %g %g %g", b.x1, b.y1, b.x2, b.y2);
	CHECK_INT(ed_pipeline_zoom_parse("image_zoom_in_tool",
					 "{\"bbox_2d\": [995, 0, 1000, 3]}", &b,
					 err, sizeof err),
		  0);
	CHECK(b.x1 == 980 && b.x2 == 1000 && b.y1 == 0 && b.y2 == 20,
	      "edge %g %g %g %g", b.x1, b.y1, b.x2, b.y2);
	r = ed_pipeline_zoom_rect(&b);
	ed_render_rect_pixels(&r, 333, 777, &x0, &y0, &x1, &y1);
	CHECK(x0 == 326 && x1 == 333 && y0 == 0 && y1 == 16,
	      "edge pixels %d %d %d %d", x0, y0, x1, y1);
	for (size_t i = 0; i < ED_ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		CHECK(ed_pipeline_zoom_parse(bad[i][0], bad[i][1], &b, err,
					     sizeof err) == ED_EFORMAT &&
			  *err,
		      "bad call %zu accepted", i);
	}
	/* the DPI that fills the budget, the crop under it */
	{
		struct ed_zoom_box full = {0, 0, 1000, 1000, ""};
		struct ed_zoom_box tiny = {0, 0, 20, 20, ""};
		double dpi =
		    ed_pipeline_zoom_dpi(&full, 595.276, 841.89, 4842768);
		double w = ceil(595.276 / 72 * dpi),
		       h = ceil(841.89 / 72 * dpi);
		CHECK(w * h <= 4842768 && w * h > 0.99 * 4842768,
		      "A4 at %g dpi: %gx%g", dpi, w, h);
		CHECK(ed_pipeline_zoom_dpi(&tiny, 595.276, 841.89, 4842768) ==
			  ED_ZOOM_MAX_DPI,
		      "capped");
		CHECK(ed_pipeline_zoom_dpi(&full, 5000, 5000, 3136) == 72,
		      "at least 72");
	}
}

/* A one-page PDF with /Rotate 90 and a black box drawn at (10, 10) to
 * (50, 40) in its own (unrotated, 200 x 100 point) space. */
static void write_rotated_pdf(const char *path)
{
	static const char content[] = "0 g 10 10 40 30 re f\n";
	char buf[2048];
	size_t off[5], n = 0;
	FILE *f;

	n += (size_t)snprintf(buf + n, sizeof buf - n, "%%PDF-1.4\n");
	off[1] = n;
	n += (size_t)snprintf(buf + n, sizeof buf - n,
			      "1 0 obj << /Type /Catalog /Pages 2 0 R >> "
			      "endobj\n");
	off[2] = n;
	n += (size_t)snprintf(buf + n, sizeof buf - n,
			      "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 "
			      ">> endobj\n");
	off[3] = n;
	n += (size_t)snprintf(buf + n, sizeof buf - n,
			      "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox "
			      "[0 0 200 100] /Rotate 90 /Contents 4 0 R >> "
			      "endobj\n");
	off[4] = n;
	n += (size_t)snprintf(buf + n, sizeof buf - n,
			      "4 0 obj << /Length %zu >> stream\n%sendstream "
			      "endobj\n",
			      strlen(content), content);
	{
		size_t xref = n;
		n += (size_t)snprintf(buf + n, sizeof buf - n,
				      "xref\n0 5\n0000000000 65535 f \n");
		for (int i = 1; i <= 4; i++)
			n += (size_t)snprintf(buf + n, sizeof buf - n,
					      "%010zu 00000 n \n", off[i]);
		n += (size_t)snprintf(buf + n, sizeof buf - n,
				      "trailer << /Size 5 /Root 1 0 R >>\n"
				      "startxref\n%zu\n%%%%EOF\n",
				      xref);
	}
	f = fopen(path, "wb");
	fwrite(buf, 1, n, f);
	fclose(f);
}

/* The dark pixels' bounding box. */
static void dark_box(const struct ed_image *img, int *x0, int *y0, int *x1,
		     int *y1)
{
	*x0 = *y0 = 1 << 30;
	*x1 = *y1 = -1;
	for (int y = 0; y < img->height; y++)
		for (int x = 0; x < img->width; x++)
			if (img->rgb[((size_t)y * img->width + x) * 3] < 128) {
				*x0 = ED_MIN(*x0, x);
				*y0 = ED_MIN(*y0, y);
				*x1 = ED_MAX(*x1, x + 1);
				*y1 = ED_MAX(*y1, y + 1);
			}
}

static void test_zoom_rotated(void)
{
	char pdf[600], err[256];
	struct ed_source src;
	struct ed_doc *doc = NULL;
	struct ed_page_info info;
	struct ed_image full = {0}, reg = {0};
	struct ed_zoom_box b;
	struct ed_rect r;
	double pts[4];
	int x0, y0, x1, y1;

	snprintf(pdf, sizeof pdf, "%s/rotated.pdf", dir);
	write_rotated_pdf(pdf);
	CHECK_INT(ed_pipeline_source_open(&src, pdf, 1 << 20, err, sizeof err),
		  0);
	CHECK_INT(ed_pipeline_doc_open(&src, NULL, NULL, &doc, err, sizeof err),
		  0);
	if (!doc)
		return;
	CHECK_INT(ed_render_page_info(doc, 0, &info, err, sizeof err), 0);
	CHECK(info.width_pt == 100 && info.height_pt == 200,
	      "shown %gx%g: the rotation applied", info.width_pt,
	      info.height_pt);
	CHECK_INT(ed_render_page(doc, 0, 72, NULL, &full, err, sizeof err), 0);
	dark_box(&full, &x0, &y0, &x1, &y1);
	/* turned a quarter clockwise: user (x, y) shows at (y, x) */
	CHECK(x0 == 10 && y0 == 10 && x1 == 40 && y1 == 50,
	      "box shown at %d,%d-%d,%d", x0, y0, x1, y1);
	/* the box the model would give for it, on the 0-1000 scale */
	CHECK_INT(ed_pipeline_zoom_parse("image_zoom_in_tool",
					 "{\"bbox_2d\": [100, 50, 400, 250]}",
					 &b, err, sizeof err),
		  0);
	ed_pipeline_zoom_points(&b, info.width_pt, info.height_pt, pts);
	CHECK(pts[0] == 10 && pts[1] == 10 && pts[2] == 40 && pts[3] == 50,
	      "points %g %g %g %g", pts[0], pts[1], pts[2], pts[3]);
	r = ed_pipeline_zoom_rect(&b);
	ed_render_rect_pixels(&r, full.width, full.height, &x0, &y0, &x1, &y1);
	CHECK(x0 == 10 && y0 == 10 && x1 == 40 && y1 == 50,
	      "pixels %d %d %d %d", x0, y0, x1, y1);
	/* rendered from the vector source at four times the resolution:
	 * the box alone, all of it */
	CHECK_INT(ed_render_page(doc, 0, 288, &r, &reg, err, sizeof err), 0);
	CHECK(reg.width == 120 && reg.height == 160, "region %dx%d", reg.width,
	      reg.height);
	dark_box(&reg, &x0, &y0, &x1, &y1);
	CHECK(x0 == 0 && y0 == 0 && x1 == 120 && y1 == 160,
	      "region dark %d,%d-%d,%d", x0, y0, x1, y1);
	ed_render_image_release(&full);
	ed_render_image_release(&reg);
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
}

/* An A4 page of 10-point text and a rule, written with cairo. */
static void write_a4(const char *path)
{
	cairo_surface_t *s = cairo_pdf_surface_create(path, 595.276, 841.89);
	cairo_t *cr = cairo_create(s);

	cairo_set_font_size(cr, 10);
	for (int i = 0; i < 50; i++) {
		cairo_move_to(cr, 60, 60 + 14 * i);
		cairo_show_text(cr,
				"Invoice 2024-0193, amount due EUR 1,284.50 "
				"within 30 days of the date above.");
	}
	cairo_rectangle(cr, 60, 780, 475, 4);
	cairo_fill(cr);
	cairo_show_page(cr);
	cairo_destroy(cr);
	cairo_surface_destroy(s);
}

/* Mean level and share of dark pixels (under 128) of a raster. */
static void tone(const struct ed_image *a, double *mean, double *dark)
{
	size_t n = (size_t)a->width * a->height * 3, k = 0;
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		m += a->rgb[i];
		k += a->rgb[i] < 128;
	}
	*mean = m / (double)n;
	*dark = (double)k / (double)n;
}

static void test_model_raster(void)
{
	char pdf[600], err[256];
	struct ed_source src;
	struct ed_doc *doc = NULL;
	struct ed_tile_params tp;
	struct ed_image img = {0}, big = {0}, shrunk = {0}, reg = {0};
	struct ed_tiles t = {0};
	struct ed_pipeline_opts o;
	struct ed_rect half = {0.5, 0.5, 1, 1};
	int th, tw;

	ed_pipeline_opts_default(&o);
	CHECK_INT(o.tile.max_pixels, 2048 * 28 * 28);
	CHECK(o.dpi == 0, "default dpi %g: the budget decides", o.dpi);
	tp = o.tile;
	snprintf(pdf, sizeof pdf, "%s/a4.pdf", dir);
	write_a4(pdf);
	CHECK_INT(ed_pipeline_source_open(&src, pdf, 1 << 20, err, sizeof err),
		  0);
	CHECK_INT(ed_pipeline_doc_open(&src, NULL, NULL, &doc, err, sizeof err),
		  0);
	if (!doc)
		return;
	/* drawn straight at the tiling's target for the 200-DPI raster */
	CHECK_INT(ed_render_tile_smart_resize(2339, 1654, 28, tp.min_pixels,
					      tp.max_pixels, &th, &tw, err,
					      sizeof err),
		  0);
	CHECK(th == 1484 && tw == 1064, "target %dx%d", tw, th);
	CHECK_INT(ed_pipeline_render_page(doc, 0, NULL, 0, 200, &tp, &img, err,
					  sizeof err),
		  0);
	CHECK(img.width == 1064 && img.height == 1484, "raster %dx%d",
	      img.width, img.height);
	CHECK(fabs(img.xdpi - 1064 / 595.276 * 72) < 1e-9 &&
		  fabs(img.ydpi - 1484 / 841.89 * 72) < 1e-9,
	      "dpi %g x %g", img.xdpi, img.ydpi);
	/* the tiling has nothing left to resample: 2,014 tokens */
	CHECK_INT(ed_render_tile_image(&img, &tp, &t, NULL, err, sizeof err),
		  0);
	CHECK(t.resized_w == img.width && t.resized_h == img.height,
	      "resized %dx%d", t.resized_w, t.resized_h);
	CHECK_INT(ed_render_tiles_tokens(&t, 2), 2014);
	ed_render_tiles_release(&t);
	/* the same page as the old path made it (200 DPI, then Pillow's
	 * bicubic): nearly the same pixels, so the direct render is no
	 * worse a picture of the page */
	CHECK_INT(ed_pipeline_render_page(doc, 0, NULL, 200, 200, &tp, &big,
					  err, sizeof err),
		  0);
	CHECK(big.width == 1654 && big.height == 2339, "--dpi 200: %dx%d",
	      big.width, big.height);
	CHECK_INT(
	    ed_render_tile_resize(&big, 1064, 1484, &shrunk, err, sizeof err),
	    0);
	if (shrunk.rgb) {
		double m0, d0, m1, d1;
		tone(&img, &m0, &d0);
		tone(&shrunk, &m1, &d1);
		CHECK(fabs(m0 - m1) < 1.0 && d1 > 0.01 && d0 / d1 > 0.95 &&
			  d0 / d1 < 1.05,
		      "direct: mean %.2f, %.4f dark; resized: %.2f, %.4f", m0,
		      d0, m1, d1);
	}
	/* a region (zoom): its own target, from the vector source */
	CHECK_INT(ed_pipeline_render_page(doc, 0, &half, 0, 400, &tp, &reg, err,
					  sizeof err),
		  0);
	CHECK_INT(ed_render_tile_smart_resize(2339, 1654, 28, tp.min_pixels,
					      tp.max_pixels, &th, &tw, err,
					      sizeof err),
		  0);
	CHECK(reg.width == tw && reg.height == th, "region %dx%d, want %dx%d",
	      reg.width, reg.height, tw, th);
	/* a raster document keeps its pixels */
	{
		struct ed_image scan = {0};
		CHECK(ed_render_page_sized(doc, 0, 0, 10, NULL, &scan, err,
					   sizeof err) == ED_EINVAL,
		      "bad size refused");
		ed_render_image_release(&scan);
	}
	ed_render_image_release(&img);
	ed_render_image_release(&big);
	ed_render_image_release(&shrunk);
	ed_render_image_release(&reg);
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
}

static void test_small_text(void)
{
	struct ed_word w[30];
	struct ed_text layer = {"", 0, w, 30};
	char dense[2100];

	for (int i = 0; i < 30; i++)
		w[i] = (struct ed_word){0, 0, 0, 100.0 + i, 10, 105.0 + i};
	/* 5 pt words on a 792 pt page seen 588 px high: 3.7 px */
	CHECK(ed_pipeline_small_text(&layer, 792, 588, NULL, 0), "5 pt");
	for (int i = 0; i < 30; i++)
		w[i].y1 = w[i].y0 + 20;
	CHECK(!ed_pipeline_small_text(&layer, 792, 588, NULL, 0), "20 pt");
	/* no layer: characters per image token */
	memset(dense, 'x', 2000);
	dense[2000] = '\0';
	CHECK(ed_pipeline_small_text(NULL, 792, 588, dense, 100), "dense");
	dense[200] = '\0';
	CHECK(!ed_pipeline_small_text(NULL, 792, 588, dense, 100), "sparse");
}

struct zoom_seen {
	int pages;
	size_t nzooms;
	struct ed_store_zoom z;
	int tool_errors;
	char prompt[64];
};

static void on_zoom_page(void *ud, const struct ed_page_result *r)
{
	struct zoom_seen *zs = ud;

	zs->pages++;
	zs->nzooms = r->nzooms;
	if (r->nzooms)
		zs->z = r->zooms[0];
	zs->tool_errors = r->tool_errors;
}

/* The zoom loop in process: the tiny model is made to call the tool
 * (a test hook forces the call's tokens), the region is cut from the
 * original pixels, tiled, appended, and generation continues. */
static void test_native_zoom(void)
{
	char tok[600], model[600], png[600], db[600], err[256];
	struct ed_pipeline_opts o;
	struct ed_pipeline *p;
	struct ed_run_result rr;
	struct zoom_seen zs = {0};
	struct ed_image img;
	const char *paths[1] = {png};

	snprintf(tok, sizeof tok, "%s/tok", dir);
	snprintf(model, sizeof model, "%s/tiny", dir);
	snprintf(png, sizeof png, "%s/quad.png", dir);
	snprintf(db, sizeof db, "%s/zoom.db", dir);
	if (t_tiny_model(tok, model)) {
		CHECK(0, "cannot make the tiny model");
		return;
	}
	/* four quadrants: red, green / blue, black */
	ed_render_image_init(&img, 112, 168, err, sizeof err);
	for (int y = 0; y < 168; y++)
		for (int x = 0; x < 112; x++) {
			uint8_t *px = img.rgb + ((size_t)y * 112 + x) * 3;
			int q = (y >= 84) * 2 + (x >= 56);
			px[0] = q == 0 ? 255 : 0;
			px[1] = q == 1 ? 255 : 0;
			px[2] = q == 2 ? 255 : 0;
		}
	{
		unsigned char *data = NULL;
		size_t n = 0;
		FILE *f = fopen(png, "wb");
		ed_render_png_encode(&img, 6, &data, &n, err, sizeof err);
		fwrite(data, 1, n, f);
		fclose(f);
		free(data);
	}
	ed_render_image_release(&img);
	ed_pipeline_opts_default(&o);
	o.db_path = db;
	o.model_dir = model;
	o.mode = "think";
	o.zoom = true;
	o.max_tokens = 200;
	o.repeat_retries = 0; /* the tiny model rambles: keep its one try */
	o.tile.max_pixels = 40000;
	o.force_text = "<tool_call>{\"name\": \"image_zoom_in_tool\", "
		       "\"arguments\": {\"bbox_2d\": [0, 500, 500, 1000], "
		       "\"label\": \"blue\"}}</tool_call>";
	o.on_page = on_zoom_page;
	o.ud = &zs;
	CHECK_INT(ed_pipeline_open(&p, &o, err, sizeof err), 0);
	CHECK_INT(ed_pipeline_run(p, paths, 1, &rr), 0);
	ed_pipeline_close(p);
	CHECK_INT(zs.pages, 1);
	CHECK_INT(zs.nzooms, 1);
	CHECK(zs.z.step == 1 && zs.z.x1 == 0 && zs.z.y1 == 500 &&
		  zs.z.x2 == 500 && zs.z.y2 == 1000 && zs.z.width == 56 &&
		  zs.z.height == 84,
	      "zoom %d: %g %g %g %g, %dx%d", zs.z.step, zs.z.x1, zs.z.y1,
	      zs.z.x2, zs.z.y2, zs.z.width, zs.z.height);
	CHECK_INT(zs.tool_errors, 0);
	CHECK_INT(count_rows(db, "SELECT count(*) FROM zooms WHERE label = "
				 "'blue' AND width = 56 AND height = 84"),
		  1);
	CHECK_INT(count_rows(db, "SELECT count(*) FROM pages WHERE prompt_id = "
				 "'ocr-v1+zoom' AND mode = 'think' AND "
				 "tool_errors = 0 AND tokens_out > 0"),
		  1);
	/* three pages decoded together, each with its own zoom loop: the
	 * same crops and texts as one at a time */
	{
		char pn[3][600], dbs[2][600];
		const char *ps[3] = {pn[0], pn[1], pn[2]};
		char *txt[2] = {NULL, NULL};
		for (int k = 0; k < 3; k++) {
			unsigned char *data = NULL;
			size_t n = 0;
			FILE *f;
			snprintf(pn[k], sizeof pn[k], "%s/quad%d.png", dir, k);
			ed_render_image_init(&img, 112, 168, err, sizeof err);
			for (size_t i = 0; i < (size_t)112 * 168 * 3; i++)
				img.rgb[i] = (uint8_t)((i * (k + 3)) % 251);
			ed_render_png_encode(&img, 6, &data, &n, err,
					     sizeof err);
			f = fopen(pn[k], "wb");
			fwrite(data, 1, n, f);
			fclose(f);
			free(data);
			ed_render_image_release(&img);
		}
		for (int r = 0; r < 2; r++) {
			sqlite3 *h;
			sqlite3_stmt *st;
			snprintf(dbs[r], sizeof dbs[r], "%s/zoom-j%d.db", dir,
				 r ? 3 : 1);
			o.db_path = dbs[r];
			o.jobs = r ? 3 : 1;
			zs = (struct zoom_seen){0};
			CHECK_INT(ed_pipeline_open(&p, &o, err, sizeof err), 0);
			CHECK_INT(ed_pipeline_run(p, ps, 3, &rr), 0);
			ed_pipeline_close(p);
			CHECK_INT(zs.pages, 3);
			CHECK_INT(
			    count_rows(dbs[r], "SELECT count(*) FROM zooms"),
			    3);
			sqlite3_open(dbs[r], &h);
			if (sqlite3_prepare_v2(
				h,
				"SELECT group_concat(t, '|') FROM (SELECT "
				"d.sha256 || ':' || p.text || ':' || "
				"p.tokens_out || ':' || z.width || 'x' || "
				"z.height AS t FROM pages p JOIN documents d "
				"ON d.id = p.document_id JOIN zooms z ON "
				"z.page_id = p.id ORDER BY d.sha256)",
				-1, &st, NULL) == SQLITE_OK &&
			    sqlite3_step(st) == SQLITE_ROW &&
			    sqlite3_column_text(st, 0))
				txt[r] = strdup(
				    (const char *)sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
			sqlite3_close(h);
		}
		CHECK(txt[0] && txt[1] && strcmp(txt[0], txt[1]) == 0,
		      "zoom loops decoded together as alone:\n%s\n%s",
		      txt[0] ? txt[0] : "-", txt[1] ? txt[1] : "-");
		free(txt[0]);
		free(txt[1]);
	}
}

int main(void)
{
	const char *base = getenv("ED_TMP");

	t_name = "pipeline";
	snprintf(dir, sizeof dir, "%s/pipeline.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_text_guard();
	test_blank_guard();
	test_source();
	test_ocr();
	test_parse();
	test_rules();
	test_similarity();
	test_repeats();
	test_budget();
	test_walk();
	test_zoom_box();
	test_zoom_rotated();
	test_model_raster();
	test_small_text();
	test_native_zoom();
	return t_done();
}
