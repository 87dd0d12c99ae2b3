/*
 * test_pipeline.c - pipeline/: the text-layer and blank guards, inputs,
 * and whole documents through ocr: statuses, resume (nothing recomputed,
 * no rows added), --force, page selection, text-layer modes, interruption
 * between pages, and a bad input recorded with its error.
 */
#include "tests/harness.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <sqlite3.h>
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
	return t_done();
}
