/*
 * ocr.c - one document through the pipeline: resume check per page, the
 * text layer when it is good, the blank-page guard, and (until a model
 * backend is configured) a stored "needs-model" verdict for everything
 * else. Each page is committed in its own transaction before it is
 * reported, so an interrupted run loses nothing it has reported.
 */
#include "pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "store/store.h"

static const char ocr_prompt[] =
    "Transcribe this page as Markdown: keep the reading order, write "
    "tables as HTML and formulas as LaTeX.";

struct ed_pipeline {
	struct ed_pipeline_opts o;
	struct ed_store *st;
	int64_t run_id;
	struct ed_model *model;
	struct ed_session *session;
	char model_id[256];
	const char *prompt_id;
};

void ed_pipeline_opts_default(struct ed_pipeline_opts *o)
{
	memset(o, 0, sizeof *o);
	o->db_path = "ernie-doc.db";
	o->mode = "ocr";
	ed_render_tile_params_default(&o->tile);
	o->text_layer = ED_TEXT_LAYER_AUTO;
	o->dpi = 200;
	o->max_stdin = ED_PIPELINE_MAX_STDIN;
}

int ed_pipeline_open(struct ed_pipeline **out, const struct ed_pipeline_opts *o,
		     char *err, size_t errlen)
{
	struct ed_pipeline *p;
	struct ed_store_run run = {
	    .tool_version = ED_VERSION,
	    .backend = o->model_dir ? "native" : "none",
	    .mode = o->mode,
	    .options_json = o->options_json,
	};
	int rc;

	*out = NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	p->o = *o;
	p->prompt_id = "";
	if (o->model_dir) {
		/* the model id in the resume key: "native/<directory name>" */
		const char *dir = o->model_dir, *base = dir, *end;
		size_t bl = strlen(dir);
		while (bl > 1 && dir[bl - 1] == '/')
			bl--;
		end = dir + bl;
		for (const char *c = dir; c + 1 < end; c++)
			if (*c == '/')
				base = c + 1;
		bl = (size_t)(end - base);
		snprintf(p->model_id, sizeof p->model_id, "native/%.*s",
			 (int)bl, base);
		p->prompt_id = ED_PIPELINE_OCR_PROMPT_ID;
		if ((rc = ed_model_open(&p->model, o->model_dir, NULL, NULL,
					err, errlen)) ||
		    (rc = ed_session_new(
			 &p->session, p->model,
			 &(struct ed_session_opts){o->threads, 0}, err,
			 errlen))) {
			ed_err_prefix(err, errlen, "model '%s'", o->model_dir);
			ed_model_close(p->model);
			free(p);
			return rc == ED_ENOMEM ? rc : ED_ECONFIG;
		}
		if (!ed_model_tokenizer(p->model)) {
			ed_err(err, errlen, ED_ECONFIG,
			       "model '%s' has no tokenizer.model",
			       o->model_dir);
			ed_session_free(p->session);
			ed_model_close(p->model);
			free(p);
			return ED_ECONFIG;
		}
	}
	run.model_id = p->model_id;
	if ((rc = ed_store_open(&p->st, o->db_path, 0, err, errlen))) {
		ed_session_free(p->session);
		ed_model_close(p->model);
		free(p);
		return rc;
	}
	if ((rc = ed_store_run_begin(p->st, &run, &p->run_id, err, errlen))) {
		ed_store_close(p->st);
		ed_session_free(p->session);
		ed_model_close(p->model);
		free(p);
		return rc == ED_EAGAIN ? rc : ED_ECREATE;
	}
	*out = p;
	return 0;
}

void ed_pipeline_close(struct ed_pipeline *p)
{
	char err[256];

	if (!p)
		return;
	if (p->st)
		ed_store_run_end(p->st, p->run_id, err, sizeof err);
	ed_store_close(p->st);
	ed_session_free(p->session);
	ed_model_close(p->model);
	free(p);
}

/* A stored page read back for a cached result. */
struct cached {
	struct ed_page_result *r;
	char *text, *status, *source, *error;
};

static char *dup_val(const struct ed_store_value *v)
{
	char *s;

	if (v->type != ED_STORE_TEXT)
		return NULL;
	s = malloc(v->n + 1);
	if (s) {
		memcpy(s, v->s, v->n);
		s[v->n] = '\0';
	}
	return s;
}

static int cached_row(void *ud, int ncol, const char *const *names,
		      const struct ed_store_value *v)
{
	struct cached *c = ud;

	(void)names;
	if (ncol < 11)
		return 0;
	c->status = dup_val(&v[2]);
	c->source = dup_val(&v[3]);
	c->text = dup_val(&v[4]);
	c->error = dup_val(&v[6]);
	c->r->width_pt = v[7].type == ED_STORE_REAL ? v[7].r : 0;
	c->r->height_pt = v[8].type == ED_STORE_REAL ? v[8].r : 0;
	c->r->ms_render = v[10].type == ED_STORE_REAL ? v[10].r : 0;
	return 1;
}

static void report(struct ed_pipeline *p, const struct ed_page_result *r)
{
	if (p->o.on_page)
		p->o.on_page(p->o.ud, r);
}

static void note_failure(struct ed_doc_result *dr, int code)
{
	dr->failed++;
	if (dr->failed == 1)
		dr->page_code = code;
	else if (dr->page_code != code)
		dr->page_code = 0; /* mixed: no single reason */
}

/* Store a page and report it. */
static int put(struct ed_pipeline *p, struct ed_store_page *pg,
	       struct ed_page_result *r, struct ed_doc_result *dr, char *err,
	       size_t errlen)
{
	int rc = ed_store_page_put(p->st, pg, &r->page_id, err, errlen);

	if (rc)
		return rc;
	r->status = pg->status;
	r->source = pg->source;
	r->text = pg->text;
	r->finish_reason = pg->finish_reason;
	r->tokens_in = pg->tokens_in;
	r->tokens_out = pg->tokens_out;
	r->error = pg->error;
	r->width_pt = pg->width_pt;
	r->height_pt = pg->height_pt;
	r->ms_render = pg->ms_render;
	report(p, r);
	if (strcmp(pg->status, ED_STORE_DONE) == 0)
		dr->done++;
	else if (strcmp(pg->status, ED_STORE_BLANK) == 0)
		dr->blank++;
	else if (strcmp(pg->status, ED_STORE_NEEDS_MODEL) == 0)
		dr->needs_model++;
	return 0;
}

/* The model reads the page: tiles, the chat prompt, generation. */
static int run_model(struct ed_pipeline *p, const struct ed_image *img,
		     struct ed_store_page *pg, struct ed_gen_result *gen,
		     char *err, size_t errlen)
{
	const struct ed_pipeline_opts *o = &p->o;
	struct ed_tiles t;
	struct ed_prompt pr;
	struct ed_image_in im;
	struct ed_chat_part parts[2];
	struct ed_chat chat = {.parts = parts, .n_parts = 2};
	struct ed_gen_params g = {
	    .max_new_tokens =
		o->max_tokens > 0 ? o->max_tokens : ED_PIPELINE_MAX_TOKENS,
	};
	double t0 = ed_now_ms();
	int rc;

	if ((rc = ed_render_tile_image(img, &o->tile, &t, NULL, err, errlen)))
		return rc;
	im = (struct ed_image_in){t.pixel_values, t.grid_t, t.grid_h, t.grid_w};
	parts[0] = (struct ed_chat_part){NULL, &im};
	parts[1] = (struct ed_chat_part){ocr_prompt, NULL};
	pg->ms_encode = ed_now_ms() - t0;
	if ((rc = ed_model_prompt_chat(p->model, &chat, &pr, err, errlen))) {
		ed_render_tiles_release(&t);
		return rc;
	}
	rc = ed_session_generate(p->session, &pr, &g, NULL, NULL, gen, err,
				 errlen);
	ed_model_prompt_release(&pr);
	if (!rc) {
		pg->key.model_id = p->model_id;
		pg->key.prompt_id = p->prompt_id;
		pg->source = "model";
		pg->status = ED_STORE_DONE;
		pg->text = gen->text;
		pg->markdown = gen->text;
		pg->finish_reason = gen->finish_reason;
		pg->tokens_in = gen->tokens_in;
		pg->tokens_out = (int64_t)gen->n_tokens;
		pg->ms_encode += gen->ms_vision;
		pg->ms_prefill = gen->ms_prefill;
		pg->ms_decode = gen->ms_decode;
		pg->grid_h = t.grid_h;
		pg->grid_w = t.grid_w;
		pg->image_tokens =
		    (int)ed_render_tiles_tokens(&t, o->tile.merge);
	}
	ed_render_tiles_release(&t);
	return rc;
}

static int do_page(struct ed_pipeline *p, struct ed_doc *doc, int64_t doc_id,
		   int page, struct ed_page_result *r, struct ed_doc_result *dr,
		   char *err, size_t errlen)
{
	const struct ed_pipeline_opts *o = &p->o;
	struct ed_store_page pg = {
	    .key = {doc_id, page + 1, o->mode, "", ""},
	    .run_id = p->run_id,
	};
	struct ed_page_info info;
	struct ed_text text = {0};
	struct ed_image img = {0};
	struct ed_gen_result gen = {0};
	char perr[512];
	int rc = 0;

	if ((rc = ed_render_page_info(doc, page, &info, perr, sizeof perr)))
		goto page_error;
	pg.width_pt = info.width_pt;
	pg.height_pt = info.height_pt;

	if (o->text_layer != ED_TEXT_LAYER_NEVER) {
		struct ed_text_stats ts;
		double cov = 0, area = info.width_pt * info.height_pt / 5184.0;

		if ((rc = ed_render_page_text(doc, page, &text, perr,
					      sizeof perr)))
			goto page_error;
		pg.source = "text-layer";
		pg.text = text.text;
		if (o->text_layer == ED_TEXT_LAYER_ONLY) {
			pg.status = ED_STORE_DONE;
			goto store;
		}
		ed_pipeline_text_stats(text.text, text.len, &ts);
		if (ed_pipeline_text_good(&ts, area, 0) &&
		    (rc = ed_render_page_image_coverage(doc, page, &cov, perr,
							sizeof perr)) == 0 &&
		    ed_pipeline_text_good(&ts, area, cov)) {
			pg.status = ED_STORE_DONE;
			goto store;
		}
		if (rc)
			goto page_error;
		pg.text = NULL;
	}

	/* the raster: the blank guard now, the model later */
	{
		double t0 = ed_now_ms(), ink;
		if ((rc = ed_render_page(doc, page, o->dpi, NULL, &img, perr,
					 sizeof perr)))
			goto page_error;
		pg.ms_render = ed_now_ms() - t0;
		pg.dpi = ed_render_doc_kind(doc) == ED_RENDER_PDF ? o->dpi
								  : img.xdpi;
		pg.source = "raster";
		if (ed_pipeline_is_blank(&img, &ink)) {
			pg.status = ED_STORE_BLANK;
			pg.text = "";
			goto store;
		}
	}
	if (p->model) {
		rc = run_model(p, &img, &pg, &gen, perr, sizeof perr);
		if (rc)
			goto page_error;
		goto store;
	}
	pg.status = ED_STORE_NEEDS_MODEL;
	pg.error = "needs the model: no model backend is configured";
	goto store;

page_error:
	pg.status = ED_STORE_ERROR;
	pg.source = pg.source ? pg.source : "raster";
	pg.text = NULL;
	pg.error = perr;
	note_failure(dr, rc);
store:
	rc = put(p, &pg, r, dr, err, errlen);
	ed_render_text_release(&text);
	ed_render_image_release(&img);
	ed_gen_result_release(&gen);
	return rc;
}

static void doc_failed(struct ed_pipeline *p, const struct ed_source *src,
		       struct ed_doc_result *dr)
{
	char err[256];
	int64_t id;
	struct ed_store_doc d = {
	    .sha256 = src->sha256,
	    .path = src->path,
	    .kind = ed_render_kind_name(src->kind),
	    .bytes = (int64_t)src->len,
	    .error = dr->error,
	};

	/* recorded so that a query shows which inputs failed and why */
	ed_store_doc_put(p->st, &d, &id, err, sizeof err);
}

int ed_pipeline_ocr(struct ed_pipeline *p, const char *path,
		    struct ed_doc_result *dr)
{
	const struct ed_pipeline_opts *o = &p->o;
	struct ed_source src;
	struct ed_doc *doc = NULL;
	int64_t doc_id;
	int rc, npages;

	memset(dr, 0, sizeof *dr);
	dr->kind = "unknown";
	rc = ed_pipeline_source_open(&src, path, o->max_stdin, dr->error,
				     sizeof dr->error);
	if (rc)
		return dr->code = rc;
	memcpy(dr->sha256, src.sha256, sizeof dr->sha256);
	dr->kind = ed_render_kind_name(src.kind);
	rc = ed_pipeline_doc_open(&src, o->password, &o->limits, &doc,
				  dr->error, sizeof dr->error);
	if (rc) {
		dr->code = rc;
		doc_failed(p, &src, dr);
		goto out;
	}
	npages = ed_render_doc_pages(doc);
	dr->pages = npages;
	{
		struct ed_store_doc d = {
		    .sha256 = src.sha256,
		    .path = path,
		    .kind = dr->kind,
		    .bytes = (int64_t)src.len,
		    .pages = npages,
		    .title = ed_render_doc_title(doc),
		};
		if ((rc = ed_store_doc_put(p->st, &d, &doc_id, dr->error,
					   sizeof dr->error))) {
			dr->code = rc;
			goto out;
		}
	}
	for (int i = 0; i < npages; i++) {
		struct ed_page_result r = {
		    .path = path,
		    .sha256 = src.sha256,
		    .page_no = i + 1,
		    .pages = npages,
		};
		struct ed_store_key key = {doc_id, i + 1, o->mode, p->model_id,
					   p->prompt_id};
		int64_t have = 0;

		if (!ed_range_has(&o->pages, i + 1, npages))
			continue;
		if (o->interrupted && *o->interrupted) {
			dr->code = ED_EINTR;
			snprintf(dr->error, sizeof dr->error, "interrupted");
			goto out;
		}
		if (!o->force &&
		    (rc = ed_store_page_lookup(
			 p->st, &key, o->text_layer != ED_TEXT_LAYER_NEVER,
			 &have, dr->error, sizeof dr->error))) {
			dr->code = rc;
			goto out;
		}
		if (have) {
			struct cached c = {.r = &r};
			rc = ed_store_page_get(p->st, have, cached_row, &c,
					       dr->error, sizeof dr->error);
			r.page_id = have;
			r.cached = true;
			r.status = c.status;
			r.source = c.source;
			r.text = c.text;
			r.error = c.error;
			if (!rc)
				report(p, &r);
			dr->cached++;
			free(c.status);
			free(c.source);
			free(c.text);
			free(c.error);
			if (rc) {
				dr->code = rc;
				goto out;
			}
			continue;
		}
		if ((rc = do_page(p, doc, doc_id, i, &r, dr, dr->error,
				  sizeof dr->error))) {
			dr->code = rc; /* the store failed: stop here */
			goto out;
		}
	}
out:
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
	return dr->code;
}

void ed_pipeline_versions(char *buf, size_t len)
{
	char r[256], m[64], pcre[32] = "";

	ed_render_versions(r, sizeof r);
	ed_model_versions(m, sizeof m);
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	snprintf(buf, len, "%s, SQLite %s, PCRE2 %s, %s", r,
		 ed_store_sqlite_version(), pcre, m);
}
