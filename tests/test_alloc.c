/*
 * test_alloc.c - allocation failure, as SQLite's and curl's torture tests
 * inject it: linked with --wrap for malloc, calloc, realloc and strdup,
 * so that every allocation our library code makes can be made to fail.
 * Each representative call (a JSON Schema compiled, validated and
 * matched; a tokenizer built, encoding and decoding; Markdown parsed and
 * the field rules run; a PNG and a TIFF opened, rendered and tiled; a
 * store written and read; a safetensors header read) is first run to
 * count its allocations K, then run K times with the N-th failing, for
 * every N: each run must return 0 or ED_ENOMEM (never crash), and under
 * `make SANITIZE=address check` LeakSanitizer fails any leak. The
 * libraries below us allocate through their own calls and are not
 * failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static long calls, fail_at; /* fail_at 0: never */
static bool failed;

static bool fail_now(void)
{
	if (!fail_at)
		return false;
	if (++calls == fail_at) {
		failed = true;
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

static unsigned char *png, *tif;
static size_t png_len, tif_len;

static int do_render(void)
{
	int rc = render_one(png, png_len);
	return rc ? rc : render_one(tif, tif_len);
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

/* Count the call's allocations, then fail each in turn. */
static void torture(const char *name, int (*fn)(void))
{
	long k, survived = 0, bad = 0;
	int rc;

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
	struct ed_tensor ts[1];
	float f[4] = {1, 2, 3, 4};
	char path[600];

	t_name = "alloc";
	png = file_data("corpus/smile.png", &png_len);
	tif = file_data("corpus/phototest.tif", &tif_len);
	CHECK(png && tif, "corpus images");
	snprintf(db_path, sizeof db_path, "%s/alloc.db", tmp);
	ts[0] = (struct ed_tensor){"b", ED_DT_F32, 1, {4}, f, sizeof f};
	snprintf(path, sizeof path, "%s/alloc.safetensors", tmp);
	if (ed_model_st_write(path, ts, 1, NULL, 0) == 0)
		stbytes = t_read_file(path, &stlen);
	CHECK(stbytes != NULL, "a safetensors file");
	torture("schema", do_schema);
	torture("tokenizer", do_tokenizer);
	torture("parse", do_parse);
	if (png && tif)
		torture("render", do_render);
	torture("store", do_store);
	if (stbytes)
		torture("safetensors", do_safetensors);
	free(png);
	free(tif);
	free(stbytes);
	return t_done();
}
