/*
 * test_alloc.c - allocation failure, as SQLite's and curl's torture tests
 * inject it: linked with --wrap for malloc, calloc, realloc, strdup and
 * aligned_alloc, and with SQLite's allocator replaced through its own
 * hook (SQLITE_CONFIG_MALLOC), so that every allocation our library code
 * and the store's SQLite make can be made to fail. Each representative
 * call (a JSON Schema compiled, validated and matched; a tokenizer built,
 * encoding and decoding; Markdown parsed and the field rules run; a PNG,
 * a TIFF and a PDF opened, rendered and tiled; a store written and read;
 * a safetensors header read; a tiny checkpoint loaded and generating; a
 * pipeline run over an image and a PDF with that model into a new
 * store) is first run to count its allocations K, then run K times with
 * the N-th failing, for every N: each run must return 0 or an error
 * (never crash, never a wrong answer), and under `make SANITIZE=address
 * check` LeakSanitizer fails any leak. poppler, cairo, libtiff and the
 * other libraries allocate through their own calls and are not failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "model/model.h"
#include "pipeline/pipeline.h"
#include "render/render.h"
#include "store/store.h"
#include "tests/harness.h"
#include "tests/util.h"

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_aligned_alloc(size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);

/* the pipeline's workers allocate too: the count is atomic */
static long calls, fail_at; /* fail_at 0: never, -1: count only */
static bool failed;

static bool fail_now(void)
{
	if (!__atomic_load_n(&fail_at, __ATOMIC_RELAXED))
		return false;
	if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) ==
	    __atomic_load_n(&fail_at, __ATOMIC_RELAXED)) {
		__atomic_store_n(&failed, true, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
	return fail_now() ? NULL : __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	return fail_now() ? NULL : __real_aligned_alloc(a, n);
}

/* SQLite's allocator, through the same counter */
static sqlite3_mem_methods sq_real;

static void *sq_malloc(int n)
{
	return fail_now() ? NULL : sq_real.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
	return fail_now() ? NULL : sq_real.xRealloc(p, n);
}

static int sq_hook(void)
{
	sqlite3_mem_methods m;

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_real) != SQLITE_OK)
		return -1;
	m = sq_real;
	m.xMalloc = sq_malloc;
	m.xRealloc = sq_realloc;
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK ? 0 : -1;
}

/* ---- the calls ------------------------------------------------------- */

static const char schema[] =
    "{\"title\":\"Invoice\",\"type\":\"object\",\"properties\":{"
    "\"number\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-[0-9]{3}$\"},"
    "\"date\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"kind\":{\"enum\":[\"a\",1,null]},"
    "\"lines\":{\"type\":\"array\",\"maxItems\":3,\"items\":{\"$ref\":"
    "\"#/$defs/line\"}}},\"required\":[\"number\"],"
    "\"$defs\":{\"line\":{\"type\":\"object\",\"properties\":{\"sku\":"
    "{\"type\":\"string\",\"maxLength\":5}}}}}";

static int do_schema(void)
{
	struct ed_schema *s;
	struct ed_cstate *st;
	struct ed_buf b;
	char err[256];
	const char *v = "{\"number\":\"AB-123\",\"lines\":[{\"sku\":\"x\"}]}";
	int rc =
	    ed_schema_compile(&s, schema, sizeof schema - 1, err, sizeof err);
	if (rc)
		return rc;
	ed_buf_init(&b, 0);
	if (!rc)
		rc = ed_schema_describe(s, &b);
	ed_buf_release(&b);
	if (!rc && ed_schema_validate(s, v, strlen(v), err, sizeof err) &&
	    strstr(err, "out of memory"))
		rc = ED_ENOMEM;
	if (!rc && !(rc = ed_cstate_new(&st, s))) {
		if (ed_schema_feed(s, st, v, strlen(v)) ||
		    !ed_cstate_complete(s, st))
			rc = -1000; /* a wrong answer, not a failure */
		ed_cstate_free(st);
	}
	ed_schema_free(s);
	return rc;
}

static int do_tokenizer(void)
{
	static const char *const pieces[] = {"<unk>",
					     "<s>",
					     "</s>",
					     "\xE2\x96\x81"
					     "the",
					     "\xE2\x96\x81"
					     "a",
					     "b",
					     "c",
					     "{\"",
					     "\":",
					     "x",
					     "y",
					     "\xE2\x96\x81"};
	struct ed_tok_arrays a = {0};
	struct ed_tokenizer *t;
	int32_t type[12] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	int32_t *ids = NULL;
	size_t n = 0;
	struct ed_buf b;
	char err[256];
	int rc;

	a.n = 12;
	a.tok = (char **)pieces;
	a.type = type;
	a.unk = 0, a.bos = 1, a.eos = 2, a.pad = -1;
	a.add_space_prefix = true;
	if ((rc = ed_tok_open_arrays(&t, &a, err, sizeof err)))
		return rc;
	rc = ed_tok_encode(t, "a {\"x\": yb", 10, &ids, &n);
	ed_buf_init(&b, 0);
	if (!rc)
		rc = ed_tok_decode(t, ids, n, true, &b);
	if (!rc && (!b.data || strcmp(b.data, "a {\"x\": yb")))
		rc = -1000;
	ed_buf_release(&b);
	free(ids);
	ed_tok_close(t);
	return rc;
}

static int do_parse(void)
{
	static const char md[] =
	    "# Invoice 12\n\nPaid EUR 1,234.50 on 2026-11-23; write to "
	    "ocr@example.com.\n\n- one\n- two\n\n<table><tr><th>A</th><th>B"
	    "</th></tr><tr><td>1</td><td>2</td></tr></table>\n\n$$x^2$$\n";
	const struct ed_store_block *bl;
	const struct ed_store_field *f;
	struct ed_rules *rs;
	struct ed_arena a;
	size_t n;
	char err[256];
	int rc;

	if ((rc = ed_pipeline_rules_load(&rs, NULL, err, sizeof err)))
		return rc;
	ed_arena_init(&a, 1024);
	rc = ed_pipeline_parse_markdown(md, sizeof md - 1, &a, &bl, &n);
	if (!rc)
		rc = ed_pipeline_rules_run(rs, md, sizeof md - 1, &a, &f, &n);
	if (!rc && n < 3)
		rc = -1000;
	ed_arena_release(&a);
	ed_pipeline_rules_free(rs);
	return rc;
}

static unsigned char *file_data(const char *rel, size_t *len)
{
	char p[512];
	return t_read_file(t_shared(rel, p, sizeof p), len);
}

static int render_one(const unsigned char *data, size_t len)
{
	struct ed_doc *doc;
	struct ed_image img;
	struct ed_tiles tl;
	struct ed_tile_params tp;
	char err[256];
	int rc;

	if ((rc = ed_render_doc_open(&doc, data, len, NULL, NULL, err,
				     sizeof err)))
		return rc;
	rc = ed_render_page(doc, 0, 30, NULL, &img, err, sizeof err);
	if (!rc) {
		ed_render_tile_params_default(&tp);
		tp.max_pixels = 40000;
		rc =
		    ed_render_tile_image(&img, &tp, &tl, NULL, err, sizeof err);
		if (!rc)
			ed_render_tiles_release(&tl);
		ed_render_image_release(&img);
	}
	ed_render_doc_close(doc);
	return rc;
}

static unsigned char *png, *tif, *pdf;
static size_t png_len, tif_len, pdf_len;

static int do_render(void)
{
	int rc = render_one(png, png_len);
	if (!rc)
		rc = render_one(tif, tif_len);
	return rc ? rc : render_one(pdf, pdf_len);
}

static char db_path[512];

static int do_store(void)
{
	struct ed_store *st;
	struct ed_store_field fl = {"date", "2026-11-23", "date", 0, 10};
	struct ed_store_block bl = {.kind = "paragraph", .text = "x"};
	struct ed_store_page pg = {0};
	struct ed_store_xfield xf = {0, "/date", "2026-11-23", 0, 10};
	struct ed_store_extraction ex = {0};
	int64_t doc, run, page;
	char err[512];
	bool got;
	int rc;

	unlink(db_path);
	if ((rc = ed_store_open(&st, db_path, 0, err, sizeof err)))
		return rc;
	rc = ed_store_doc_put(
	    st, &(struct ed_store_doc){"ab", "x.pdf", "pdf", 3, 1, NULL, NULL},
	    &doc, err, sizeof err);
	if (!rc)
		rc = ed_store_run_begin(
		    st, &(struct ed_store_run){"t", "none", "", "ocr", "{}"},
		    &run, err, sizeof err);
	pg.key = (struct ed_store_key){doc, 1, "ocr", "m", "p"};
	pg.run_id = run;
	pg.source = "model";
	pg.status = ED_STORE_DONE;
	pg.text = "2026-11-23 text";
	pg.blocks = &bl;
	pg.nblocks = 1;
	pg.fields = &fl;
	pg.nfields = 1;
	if (!rc)
		rc = ed_store_claim(st, &pg.key, "me", 60, &got, err,
				    sizeof err);
	if (!rc)
		rc = ed_store_page_put(st, &pg, &page, err, sizeof err);
	ex.doc_id = doc;
	ex.page_no = 1;
	ex.page_id = page;
	ex.schema_sha256 = "s";
	ex.model_id = "m";
	ex.prompt_id = "p";
	ex.status = "done";
	ex.json = "{\"date\":\"2026-11-23\"}";
	xf.page_id = page;
	ex.fields = &xf;
	ex.nfields = 1;
	if (!rc)
		rc = ed_store_extraction_put(st, &ex, NULL, err, sizeof err);
	if (!rc)
		rc = ed_store_claims_drop(st, "me", err, sizeof err);
	ed_store_close(st);
	return rc;
}

static unsigned char *stbytes;
static size_t stlen;

static int do_safetensors(void)
{
	struct ed_st *st;
	char err[256];
	int rc = ed_model_st_open_mem(&st, stbytes, stlen, err, sizeof err);
	if (!rc) {
		if (!ed_model_st_find(st, "b"))
			rc = -1000;
		ed_model_st_close(st);
	}
	return rc;
}

/* A tiny checkpoint (mkmodel, the real layout, a trained tokenizer):
 * loaded, a session, a chat prompt with an image, a few tokens. */
static char model_dir[600];

static int do_model(void)
{
	struct ed_model *m;
	struct ed_session *s = NULL;
	struct ed_image img;
	struct ed_tiles tl = {0};
	struct ed_tile_params tp;
	struct ed_image_in in = {0};
	struct ed_prompt pr = {0};
	struct ed_gen_result r = {0};
	struct ed_gen_params g = {.max_new_tokens = 3, .ignore_eos = true};
	struct ed_session_opts so = {.threads = 1};
	char err[512];
	int rc;

	if ((rc = ed_model_open(&m, model_dir, NULL, NULL, err, sizeof err)))
		return rc;
	ed_render_tile_params_default(&tp);
	tp.max_pixels = 56 * 56;
	rc = ed_render_image_init(&img, 56, 56, err, sizeof err);
	if (!rc) {
		memset(img.rgb, 200, (size_t)56 * 56 * 3);
		rc =
		    ed_render_tile_image(&img, &tp, &tl, NULL, err, sizeof err);
		ed_render_image_release(&img);
	}
	if (!rc) {
		struct ed_chat_part parts[2] = {{NULL, &in},
						{"Read it.", NULL}};
		struct ed_chat c = {.parts = parts, .n_parts = 2};
		in = (struct ed_image_in){tl.pixel_values, tl.grid_t, tl.grid_h,
					  tl.grid_w};
		rc = ed_model_prompt_chat(m, &c, &pr, err, sizeof err);
	}
	if (!rc)
		rc = ed_session_new(&s, m, &so, err, sizeof err);
	if (!rc)
		rc = ed_session_generate(s, &pr, &g, NULL, NULL, &r, err,
					 sizeof err);
	if (!rc && (r.n_tokens != 3 || !r.text))
		rc = -1000;
	free(r.text);
	free(r.tokens);
	ed_session_free(s);
	ed_model_prompt_release(&pr);
	if (tl.pixel_values)
		ed_render_tiles_release(&tl);
	ed_model_close(m);
	return rc;
}

/* The pipeline end to end with that model: an image (the model reads
 * it) and a PDF page (its text layer) into a store just migrated (a copy
 * of one: the store's torture fails every allocation of the migrations
 * already). */
static char pipe_png[600], pipe_pdf[600], pipe_db[600];
static unsigned char *pipe_tpl;
static size_t pipe_tpl_len;
static int pipe_pages;

static int put_file(const char *path, const unsigned char *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	int rc = f && fwrite(d, 1, n, f) == n ? 0 : -1;

	if (f && fclose(f))
		rc = -1;
	return rc;
}

static void on_pipe_page(void *ud, const struct ed_page_result *r)
{
	(void)ud;
	if (!strcmp(r->status, "done"))
		pipe_pages++;
}

static int do_pipeline(void)
{
	const char *paths[2] = {pipe_png, pipe_pdf};
	struct ed_pipeline_opts o;
	struct ed_pipeline *p;
	struct ed_run_result rr;
	char err[512];
	int rc;

	if (put_file(pipe_db, pipe_tpl, pipe_tpl_len))
		return -1000;
	ed_pipeline_opts_default(&o);
	o.db_path = pipe_db;
	o.model_dir = model_dir;
	o.max_tokens = 4;
	o.repeat_retries = 0;
	o.tile.max_pixels = 40000;
	o.on_page = on_pipe_page;
	pipe_pages = 0;
	if ((rc = ed_pipeline_open(&p, &o, err, sizeof err)))
		return rc;
	rc = ed_pipeline_run(p, paths, 2, &rr);
	ed_pipeline_close(p);
	if (!rc && !failed && (pipe_pages != 2 || rr.failed))
		rc = -1000;
	return rc;
}

/* Count the call's allocations, then fail each in turn. */
static void torture(const char *name, int (*fn)(void))
{
	const char *only = getenv("ED_ALLOC_ONLY");
	long k, survived = 0, bad = 0;
	int rc;

	if (only && strcmp(only, name))
		return;
	fail_at = 0;
	calls = 0;
	fail_at = -1; /* count only */
	rc = fn();
	k = calls;
	fail_at = 0;
	CHECK(rc == 0, "%s: %d without failures", name, rc);
	for (long n = 1; n <= k; n++) {
		calls = 0;
		failed = false;
		fail_at = n;
		rc = fn();
		fail_at = 0;
		if (rc == 0 || rc == ED_ENOMEM || (failed && rc != -1000))
			survived++;
		else
			bad++;
		if (rc == -1000 && failed)
			fprintf(stderr,
				"%s: allocation %ld of %ld: a wrong "
				"answer\n",
				name, n, k);
	}
	CHECK(bad == 0, "%s: %ld of %ld injected failures mishandled", name,
	      bad, k);
	CHECK(k > 0, "%s: no allocations counted", name);
	printf("  (%s: %ld allocations, each failed once: %ld survived)\n",
	       name, k, survived);
}

int main(void)
{
	const char *tmp = getenv("ED_TMP") ? getenv("ED_TMP") : "/tmp";
	const char *dbdir = tmp;
	char shm[64];
	struct ed_tensor ts[1];
	float f[4] = {1, 2, 3, 4};
	char path[600];

	t_name = "alloc";
	png = file_data("corpus/smile.png", &png_len);
	tif = file_data("corpus/phototest.tif", &tif_len);
	pdf = file_data("corpus/trivial.pdf", &pdf_len);
	CHECK(png && tif && pdf, "corpus images");
	CHECK_INT(sq_hook(), 0);
	/* the databases in memory where there is a tmpfs: thousands of
	 * them are created, and fsync on a disk costs more than the test */
	snprintf(shm, sizeof shm, "/dev/shm/ed-alloc-%ld", (long)getpid());
	if (mkdir(shm, 0700) == 0)
		dbdir = shm;
	snprintf(db_path, sizeof db_path, "%s/alloc.db", dbdir);
	ts[0] = (struct ed_tensor){"b", ED_DT_F32, 1, {4}, f, sizeof f};
	snprintf(path, sizeof path, "%s/alloc.safetensors", tmp);
	if (ed_model_st_write(path, ts, 1, NULL, 0) == 0)
		stbytes = t_read_file(path, &stlen);
	CHECK(stbytes != NULL, "a safetensors file");
	torture("schema", do_schema);
	torture("tokenizer", do_tokenizer);
	torture("parse", do_parse);
	if (png && tif && pdf)
		torture("render", do_render);
	torture("store", do_store);
	if (stbytes)
		torture("safetensors", do_safetensors);
	snprintf(path, sizeof path, "%s/alloc-tok", tmp);
	snprintf(model_dir, sizeof model_dir, "%s/alloc-model", tmp);
	snprintf(pipe_db, sizeof pipe_db, "%s/alloc-pipe.db", dbdir);
	snprintf(pipe_pdf, sizeof pipe_pdf, "%s/alloc.pdf", tmp);
	snprintf(pipe_png, sizeof pipe_png, "%s/alloc.png", tmp);
	if (t_tiny_model(path, model_dir) ||
	    t_sh("'%s/tests/mkpdf' '%s' 1 alloc >/dev/null", t_build_dir(),
		 pipe_pdf) ||
	    t_sh("cp '%s' '%s'",
		 t_shared("corpus/smile.png", path, sizeof path), pipe_png)) {
		CHECK(0, "cannot make the tiny model and inputs");
	} else {
		struct ed_store *st;
		char err[512];
		torture("model", do_model);
		unlink(pipe_db);
		CHECK_INT(ed_store_open(&st, pipe_db, 0, err, sizeof err), 0);
		ed_store_close(st);
		pipe_tpl = t_read_file(pipe_db, &pipe_tpl_len);
		CHECK(pipe_tpl != NULL, "a migrated store");
		if (pipe_tpl)
			torture("pipeline", do_pipeline);
		free(pipe_tpl);
	}
	unlink(db_path);
	unlink(pipe_db);
	if (dbdir == shm)
		t_sh("rm -rf '%s'", shm);
	free(png);
	free(pdf);
	free(tif);
	free(stbytes);
	return t_done();
}
