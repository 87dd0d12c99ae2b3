/*
 * run.c - the OCR run. The calling thread owns the store (the one
 * writer): it opens inputs, looks up what is already finished, queues
 * the other pages, stores each result in its own transaction and reports
 * it. `jobs` workers take pages from a bounded queue, open the document
 * themselves (a PopplerDocument is never shared), and decide each page:
 * text layer, blank, or the model (with the repetition and length guards,
 * retries at rising temperatures, and a fallback to the text layer).
 * Memory is bounded by the queue, whatever the size of the inputs.
 */
#include "pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"

static const char ocr_prompt[] =
    "Transcribe this page as Markdown: keep the reading order, write "
    "tables as HTML and formulas as LaTeX.";

/* Temperatures after a repetition loop, in order. */
static const float retry_temps[] = {0.3f, 0.6f, 0.9f};

/* ---- documents and pages in flight -------------------------------- */

struct docref {
	int refs;	 /* tasks, worker caches, the main thread */
	int outstanding; /* pages queued and not yet stored */
	bool all_queued;
	bool reported;
	bool dropped; /* pages dropped by a stop: not reported as done */
	bool listed;  /* in p->docs, holding the main thread's reference */
	struct ed_source src;
	char *path;
	int64_t doc_id;
	struct ed_doc_result r;
	struct docref *next; /* documents being worked on */
};

struct task {
	struct docref *d;
	int page;
	struct task *next;
};

struct result {
	struct docref *d;
	int page;
	struct ed_arena arena;
	struct ed_store_page pg;
	int code;     /* 0, or ED_E* for an error row */
	bool dropped; /* interrupted: store nothing */
	bool unavailable;
	bool server_fault;
	char err[512];
	struct result *next;
};

struct ed_pipeline {
	struct ed_pipeline_opts o;
	struct ed_store *st;
	int64_t run_id;
	struct ed_backend *backend;
	struct ed_rules *rules;
	char model_id[256];
	char prompt_id[64];
	char alt_prompt_id[80]; /* --mode auto: the result not chosen */
	const char *prompt;
	/* workers */
	pthread_t *th;
	int nworkers;
	pthread_mutex_t mu;
	pthread_cond_t task_cv, result_cv;
	struct task *tasks, *tasks_tail;
	int ntasks, max_tasks;
	struct result *results, *results_tail;
	bool closing;
	atomic_bool stop; /* interrupted or server gone: drop the rest */
	struct docref *docs;
	/* claims: this process's name in the claims table, the last renewal */
	char owner[160];
	double lease_s, renewed_ms;
	/* progress */
	struct ed_progress prog;
	double t0;
};

void ed_pipeline_opts_default(struct ed_pipeline_opts *o)
{
	memset(o, 0, sizeof *o);
	o->db_path = "ernie-doc.db";
	o->mode = "ocr";
	o->dpi = 0; /* PDFs straight at the tiling's size */
	o->max_stdin = ED_PIPELINE_MAX_STDIN;
	o->retries = -1;
	o->repeat_retries = -1;
	o->jobs = 1;
	ed_render_tile_params_default(&o->tile);
	o->tile.max_pixels = ED_PIPELINE_MAX_PIXELS;
}

static void doc_unref(struct ed_pipeline *p, struct docref *d)
{
	/* with p->mu held */
	(void)p;
	if (--d->refs > 0)
		return;
	ed_pipeline_source_release(&d->src);
	free(d->path);
	free(d);
}

/* ---- the worker ----------------------------------------------------- */

struct worker {
	struct ed_pipeline *p;
	struct docref *cached;
	struct ed_doc *doc;
	char cached_err[512];
	int cached_rc;
};

/* State of one generation, seen by the streaming callback. */
struct gen_watch {
	struct ed_pipeline *p;
	struct ed_buf text;
	int budget;
	int64_t deltas;
	size_t checked;
	bool repeated, too_long;
	size_t loop_at;
};

static int on_text(void *ud, int32_t id, const char *s, size_t n)
{
	struct gen_watch *w = ud;

	if (id == ED_TOKEN_RESET) { /* a retried request starts over */
		ed_buf_reset(&w->text);
		w->deltas = 0;
		w->checked = 0;
		return 0;
	}
	if (w->p->stop)
		return 1;
	if (n && ed_buf_append(&w->text, s, n))
		return 1;
	w->deltas++;
	/* a server that ignores max_tokens is cut at the budget */
	if (w->deltas > (int64_t)w->budget + 8) {
		w->too_long = true;
		return 1;
	}
	if (w->text.len >= w->checked + 32) {
		w->checked = w->text.len;
		if (ed_pipeline_repeats(w->text.data, w->text.len,
					&w->loop_at)) {
			w->repeated = true;
			return 1;
		}
	}
	return 0;
}

static char *adup(struct ed_arena *a, const char *s)
{
	size_t n;
	char *d;

	if (!s)
		return NULL;
	n = strlen(s);
	d = ed_arena_alloc(a, n + 1);
	if (d)
		memcpy(d, s, n + 1);
	return d;
}

/* What one model pass over a page produced, beyond the page row. */
struct pass {
	struct ed_store_page *pg;
	bool thinking, zoom;
	struct ed_store_zoom *zooms;
	size_t nzooms;
	struct ed_buf reasoning; /* every step's thinking */
};

/* Write a zoom crop to --save-zooms DIR. Failing to is not fatal. */
static void save_zoom(const struct ed_pipeline *p, const struct result *r,
		      int step, const struct ed_image *crop)
{
	unsigned char *png = NULL;
	size_t n = 0;
	char path[4096], err[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/%.12s-p%04d-z%d.png", p->o.save_zooms,
		 r->d->src.sha256, r->page + 1, step);
	if (ed_render_png_encode(crop, 6, &png, &n, err, sizeof err))
		return;
	f = fopen(path, "wb");
	if (f) {
		fwrite(png, 1, n, f);
		fclose(f);
	}
	free(png);
}

/*
 * Answer one tool call: check it, render the region from the source (a
 * PDF at the DPI that fills the pixel budget, a raster from its original
 * pixels), and give it back as the tool's result; a bad call is answered
 * with what is wrong. Returns 0 or an ED_E* that ends the page.
 */
static int answer_call(struct worker *wk, struct result *r, struct pass *ps,
		       struct ed_conv *conv, const struct ed_tool_call *call,
		       int step, int max_new, struct ed_response *next)
{
	struct ed_pipeline *p = wk->p;
	struct ed_store_page *pg = ps->pg;
	struct ed_zoom_box box;
	struct ed_image crop = {0};
	struct ed_prepared pr = {0};
	struct ed_req_part parts[2];
	char msg[512], text[256];
	size_t np = 0;
	int rc;

	rc = ed_pipeline_zoom_parse(call->name, call->arguments, &box, msg,
				    sizeof msg);
	if (!rc) {
		struct ed_rect rect = ed_pipeline_zoom_rect(&box);
		/* a PDF region drawn straight at the size that fills the
		 * budget, a scan's from its original pixels */
		double dpi = ed_pipeline_zoom_dpi(
		    &box, pg->width_pt, pg->height_pt, p->o.tile.max_pixels);
		if ((rc = ed_pipeline_render_page(wk->doc, r->page, &rect, 0,
						  dpi, &p->o.tile, &crop, msg,
						  sizeof msg)) ||
		    (rc = ed_pipeline_image_prepare(
			 p->backend, &p->o.tile, &crop, &pr, msg, sizeof msg)))
			snprintf(msg, sizeof msg,
				 "the region could not be rendered");
	}
	if (rc) {
		/* the model hears what was wrong, and may try again */
		pg->tool_errors++;
		snprintf(text, sizeof text, "Error: %.200s", msg);
		parts[np++] = (struct ed_req_part){text, NULL, NULL, 0};
	} else {
		struct ed_store_zoom *z =
		    ed_arena_alloc(&r->arena, (ps->nzooms + 1) * sizeof *z);
		if (z) {
			if (ps->nzooms)
				memcpy(z, ps->zooms, ps->nzooms * sizeof *z);
			z[ps->nzooms] = (struct ed_store_zoom){
			    step,	box.x1,	    box.y1,
			    box.x2,	box.y2,	    adup(&r->arena, box.label),
			    crop.width, crop.height};
			ps->zooms = z;
			ps->nzooms++;
		}
		if (p->o.save_zooms)
			save_zoom(p, r, step, &crop);
		parts[np++] = (struct ed_req_part){NULL, pr.png ? NULL : &pr.im,
						   pr.png, pr.png_len};
		snprintf(text, sizeof text,
			 "The region [%g, %g, %g, %g] of the page, zoomed in.",
			 box.x1, box.y1, box.x2, box.y2);
		parts[np++] = (struct ed_req_part){text, NULL, NULL, 0};
	}
	rc = ed_conv_reply(conv, parts, np, max_new, next, r->err,
			   sizeof r->err);
	ed_render_image_release(&crop);
	ed_render_tiles_release(&pr.tiles);
	free(pr.png);
	return rc;
}

static void add_reasoning(struct pass *ps, const char *s)
{
	if (!s || !*s)
		return;
	if (ps->reasoning.len)
		ed_buf_puts(&ps->reasoning, "\n\n");
	ed_buf_puts(&ps->reasoning, s);
}

/* One conversation: the request, then the zoom loop while the model
 * calls the tool. resp receives the last reply; token counts add up. */
static int converse(struct worker *wk, struct result *r, struct pass *ps,
		    struct ed_request *rq, struct gen_watch *gw,
		    struct ed_response *resp)
{
	struct ed_pipeline *p = wk->p;
	struct ed_conv *conv = NULL;
	int64_t tin = 0, tout = 0;
	int steps = p->o.zoom_steps > 0 ? p->o.zoom_steps : 3, rc;

	ps->nzooms = 0;
	ps->pg->tool_errors = 0;
	ed_buf_reset(&ps->reasoning);
	rc = ed_conv_start(p->backend, rq, &conv, resp, r->err, sizeof r->err);
	for (int step = 1;
	     !rc && strcmp(resp->finish_reason, "tool_calls") == 0; step++) {
		struct ed_response next;
		struct ed_tool_call call = resp->call;
		int left = gw->budget - (int)(tout + resp->tokens_out);
		tin += resp->tokens_in;
		tout += resp->tokens_out;
		add_reasoning(ps, resp->reasoning);
		if (step > steps + 1 || left <= 0 || p->stop)
			break; /* it would not stop asking */
		memset(&resp->call, 0, sizeof resp->call);
		if (step > steps) {
			/* over the limit: one last chance to answer */
			struct ed_req_part t = {
			    "Error: no more zooms; give the final answer now.",
			    NULL, NULL, 0};
			ps->pg->tool_errors++;
			rc = ed_conv_reply(conv, &t, 1, left, &next, r->err,
					   sizeof r->err);
		} else {
			rc = answer_call(wk, r, ps, conv, &call, step, left,
					 &next);
		}
		ed_tool_call_release(&call);
		ed_response_release(resp);
		if (!rc)
			*resp = next;
	}
	if (!rc) {
		if (strcmp(resp->finish_reason, "tool_calls") != 0) {
			tin += resp->tokens_in;
			tout += resp->tokens_out;
			add_reasoning(ps, resp->reasoning);
		}
		resp->tokens_in = tin;
		resp->tokens_out = tout;
	}
	ed_conv_end(conv);
	return rc;
}

/* The model reads the page once (OCR, or thinking with the zoom tool),
 * with the guards. Fills ps->pg; returns 0 or an ED_E* for an error row
 * (ED_EINTR / ED_EUNAVAIL stop the run). */
static int model_pass(struct worker *wk, struct result *r, struct pass *ps,
		      const struct ed_image *img, double ink,
		      const char *layer_text, bool layer_good)
{
	struct ed_pipeline *p = wk->p;
	const struct ed_pipeline_opts *o = &p->o;
	struct ed_store_page *pg = ps->pg;
	struct ed_prepared pr;
	struct ed_req_part parts[2];
	struct gen_watch gw = {.p = p};
	struct ed_request rq = {0};
	struct ed_response resp = {0};
	int cap = o->max_tokens > 0 ? o->max_tokens : ED_PIPELINE_MAX_TOKENS;
	int retries = o->repeat_retries >= 0 ? o->repeat_retries : 2;
	double t0 = ed_now_ms();
	char guard[128] = "";
	int rc;

	if ((rc = ed_pipeline_image_prepare(p->backend, &p->o.tile, img, &pr,
					    r->err, sizeof r->err)))
		return rc;
	pg->ms_encode = ed_now_ms() - t0;
	parts[0] = (struct ed_req_part){NULL, pr.png ? NULL : &pr.im, pr.png,
					pr.png_len};
	parts[1] = (struct ed_req_part){p->prompt, NULL, NULL, 0};
	rq.parts = parts;
	rq.n_parts = 2;
	rq.thinking = ps->thinking;
	rq.tools = ps->zoom;
	rq.force_text = o->force_text;
	rq.gen.temperature = o->temperature;
	rq.gen.top_p = o->top_p > 0 ? o->top_p : 1;
	rq.gen.seed = o->seed;
	/* the token budget scales with the page; thinking needs room */
	gw.budget = rq.thinking ? cap
				: ed_pipeline_token_budget(
				      pg->width_pt, pg->height_pt, ink, cap);
	rq.gen.max_new_tokens = gw.budget;
	rq.on_text = on_text;
	rq.ud = &gw;
	ed_buf_init(&gw.text, 0);

	for (int attempt = 0;; attempt++) {
		ed_buf_reset(&gw.text);
		gw.deltas = 0;
		gw.checked = 0;
		gw.repeated = gw.too_long = false;
		ed_response_release(&resp);
		pg->attempts = attempt + 1;
		rc = converse(wk, r, ps, &rq, &gw, &resp);
		if (rc)
			break;
		if (p->stop) {
			rc = ED_EINTR;
			break;
		}
		if (!gw.repeated || attempt >= retries)
			break;
		/* a loop: again, warmer */
		rq.gen.temperature = retry_temps[ED_MIN(attempt, 2)];
		rq.force_text = NULL;
		if (!rq.gen.seed)
			rq.gen.seed = 0x5eed + (uint64_t)attempt;
	}
	pg->ms_prefill = resp.ms_prefill;
	pg->ms_decode = resp.ms_decode;
	pg->ms_encode += resp.ms_vision;
	if (rc) {
		ed_response_release(&resp);
		ed_buf_release(&gw.text);
		ed_render_tiles_release(&pr.tiles);
		free(pr.png);
		return rc;
	}
	pg->key.model_id = p->model_id;
	pg->key.prompt_id = p->prompt_id;
	pg->source = "model";
	pg->status = ED_STORE_DONE;
	pg->tokens_in = resp.tokens_in;
	pg->tokens_out = resp.tokens_out;
	pg->grid_h = pr.tiles.grid_h;
	pg->grid_w = pr.tiles.grid_w;
	pg->image_tokens =
	    (int)(pr.tiles.npatches / (size_t)(o->tile.merge * o->tile.merge));
	pg->finish_reason = adup(&r->arena, resp.finish_reason);
	pg->text = adup(&r->arena, resp.content);
	pg->markdown = pg->text;
	pg->reasoning =
	    ps->reasoning.len ? adup(&r->arena, ps->reasoning.data) : NULL;
	pg->zooms = ps->zooms;
	pg->nzooms = ps->nzooms;
	pg->tools = ps->zoom;
	if (pg->attempts > 1)
		snprintf(guard, sizeof guard, "retried");
	if (gw.repeated) {
		/* the last attempt looped too */
		pg->finish_reason = "repetition";
		if (layer_text && *layer_text) {
			pg->source = "text-layer";
			pg->text = adup(&r->arena, layer_text);
			pg->markdown = NULL;
			snprintf(guard + strlen(guard),
				 sizeof guard - strlen(guard),
				 "%srepetition,text-layer-fallback",
				 *guard ? "," : "");
		} else {
			/* keep the transcription up to the loop, one period */
			char *t = ed_arena_alloc(&r->arena, gw.loop_at + 1);
			if (t && gw.loop_at <= gw.text.len) {
				memcpy(t, gw.text.data, gw.loop_at);
				t[gw.loop_at] = '\0';
				pg->text = pg->markdown = t;
			}
			snprintf(guard + strlen(guard),
				 sizeof guard - strlen(guard), "%srepetition",
				 *guard ? "," : "");
		}
	} else if (gw.too_long || strcmp(resp.finish_reason, "length") == 0) {
		pg->finish_reason = "length";
		snprintf(guard + strlen(guard), sizeof guard - strlen(guard),
			 "%slength", *guard ? "," : "");
		if (gw.too_long && gw.text.data) {
			/* the server went past the budget: what we kept */
			pg->text = pg->markdown =
			    adup(&r->arena, rq.thinking && resp.content
						? resp.content
						: gw.text.data);
		}
	} else if (strcmp(resp.finish_reason, "tool_calls") == 0) {
		/* still calling the tool past the limit: what it said */
		pg->finish_reason = "tool_calls";
		snprintf(guard + strlen(guard), sizeof guard - strlen(guard),
			 "%szoom-limit", *guard ? "," : "");
	}
	if (layer_good && pg->text && strcmp(pg->source, "model") == 0) {
		pg->has_similarity = true;
		pg->similarity = ed_pipeline_similarity(layer_text, pg->text);
	}
	if (*guard)
		pg->guard = adup(&r->arena, guard);
	ed_response_release(&resp);
	ed_buf_release(&gw.text);
	ed_render_tiles_release(&pr.tiles);
	free(pr.png);
	return 0;
}

/* Should --mode auto look again, thinking with the zoom tool? The
 * reasons, comma-separated, or "" for no. */
static void escalation(const struct ed_pipeline *p,
		       const struct ed_store_page *pg,
		       const struct ed_text *layer, char *why, size_t n)
{
	size_t k = 0;

	why[0] = '\0';
	if (pg->finish_reason && strcmp(pg->finish_reason, "repetition") == 0)
		k += (size_t)snprintf(why + k, n - k, "repetition,");
	if (pg->finish_reason && strcmp(pg->finish_reason, "length") == 0)
		k += (size_t)snprintf(why + k, n - k, "length,");
	if (pg->has_similarity && pg->similarity < ED_ESCALATE_SIMILARITY)
		k += (size_t)snprintf(why + k, n - k, "low-agreement,");
	if (ed_pipeline_small_text(layer, pg->height_pt,
				   pg->grid_h * p->o.tile.patch, pg->text,
				   pg->image_tokens))
		k += (size_t)snprintf(why + k, n - k, "small-text,");
	if (k && k < n)
		why[k - 1] = '\0';
}

/* --mode auto: a fast OCR pass, and for a flagged page a second look in
 * thinking mode with the zoom tool; both are kept, the better chosen. */
static int model_page(struct worker *wk, struct result *r,
		      const struct ed_image *img, double ink,
		      const struct ed_text *layer, bool layer_good)
{
	struct ed_pipeline *p = wk->p;
	const char *mode = p->o.mode;
	struct pass a = {&r->pg, false, false, NULL, 0, {0}};
	struct pass b = {NULL, true, true, NULL, 0, {0}};
	struct ed_store_page *alt;
	char why[128], *g;
	int rc;

	ed_buf_init(&a.reasoning, 0);
	ed_buf_init(&b.reasoning, 0);
	if (strcmp(mode, "auto") != 0) {
		a.thinking = strcmp(mode, "think") == 0;
		a.zoom = a.thinking && p->o.zoom;
		rc = model_pass(wk, r, &a, img, ink, layer->text, layer_good);
		ed_buf_release(&a.reasoning);
		return rc;
	}
	rc = model_pass(wk, r, &a, img, ink, layer->text, layer_good);
	r->pg.pass = "ocr";
	r->pg.chosen = 1;
	if (rc || p->stop) {
		ed_buf_release(&a.reasoning);
		return rc;
	}
	escalation(p, &r->pg, layer, why, sizeof why);
	if (!*why) {
		ed_buf_release(&a.reasoning);
		return 0;
	}
	alt = ed_arena_alloc(&r->arena, sizeof *alt);
	if (!alt) {
		ed_buf_release(&a.reasoning);
		return ed_err(r->err, sizeof r->err, ED_ENOMEM,
			      "out of memory");
	}
	*alt = r->pg; /* the same page: size, key */
	alt->guard = NULL;
	alt->tool_errors = 0;
	b.pg = alt;
	rc = model_pass(wk, r, &b, img, ink, layer->text, layer_good);
	ed_buf_release(&a.reasoning);
	ed_buf_release(&b.reasoning);
	if (rc)
		return rc == ED_EINTR || rc == ED_EUNAVAIL ? rc : 0;
	alt->pass = "think-zoom";
	/* the second look wins unless it ended worse than the first */
	{
		bool b_ok = strcmp(alt->finish_reason, "stop") == 0;
		bool a_ok = strcmp(r->pg.finish_reason, "stop") == 0;
		struct ed_store_page keep = r->pg;
		alt->chosen = b_ok || !a_ok;
		keep.chosen = !alt->chosen;
		if (alt->chosen) {
			/* the chosen result holds the key */
			r->pg = *alt;
			*alt = keep;
		}
	}
	alt->key.prompt_id = p->alt_prompt_id;
	r->pg.alt = alt;
	g = ed_arena_alloc(&r->arena, 160);
	if (g) {
		snprintf(g, 160, "%s%sescalated:%s",
			 r->pg.guard ? r->pg.guard : "", r->pg.guard ? "," : "",
			 why);
		r->pg.guard = g;
	}
	return 0;
}

static void work_page(struct worker *wk, struct result *r)
{
	struct ed_pipeline *p = wk->p;
	const struct ed_pipeline_opts *o = &p->o;
	struct ed_store_page *pg = &r->pg;
	struct ed_page_info info;
	struct ed_text text = {0};
	struct ed_image img = {0};
	struct ed_text_stats ts;
	bool layer_good = false;
	double ink = 0;
	int rc, page = r->page;

	pg->key =
	    (struct ed_store_key){r->d->doc_id, page + 1, o->mode, "", ""};
	if ((rc = ed_render_page_info(wk->doc, page, &info, r->err,
				      sizeof r->err)))
		goto fail;
	pg->width_pt = info.width_pt;
	pg->height_pt = info.height_pt;
	/* the text layer: the answer when good, else a fallback and a
	 * yardstick for the model */
	if ((rc = ed_render_page_text(wk->doc, page, &text, r->err,
				      sizeof r->err)))
		goto fail;
	if (o->text_layer == ED_TEXT_LAYER_ONLY) {
		pg->source = "text-layer";
		pg->status = ED_STORE_DONE;
		pg->text = adup(&r->arena, text.text);
		goto out;
	}
	ed_pipeline_text_stats(text.text, text.len, &ts);
	if (ed_pipeline_text_good(&ts, info.width_pt * info.height_pt / 5184.0,
				  0)) {
		double cov = 0;
		if ((rc = ed_render_page_image_coverage(wk->doc, page, &cov,
							r->err, sizeof r->err)))
			goto fail;
		layer_good = ed_pipeline_text_good(
		    &ts, info.width_pt * info.height_pt / 5184.0, cov);
	}
	if (layer_good && o->text_layer == ED_TEXT_LAYER_AUTO) {
		pg->source = "text-layer";
		pg->status = ED_STORE_DONE;
		pg->text = adup(&r->arena, text.text);
		goto out;
	}
	{
		double t0 = ed_now_ms();
		if ((rc = ed_pipeline_render_page(
			 wk->doc, page, NULL, o->dpi, ED_PIPELINE_NOMINAL_DPI,
			 &o->tile, &img, r->err, sizeof r->err)))
			goto fail;
		pg->ms_render = ed_now_ms() - t0;
		pg->dpi = img.xdpi;
	}
	pg->source = "raster";
	if (ed_pipeline_is_blank(&img, &ink)) {
		pg->status = ED_STORE_BLANK;
		pg->text = "";
		pg->guard = "blank";
		goto out;
	}
	if (!p->backend) {
		pg->status = ED_STORE_NEEDS_MODEL;
		pg->error =
		    "needs the model: no --model or --server configured";
		goto out;
	}
	rc = model_page(wk, r, &img, ink, &text, layer_good);
	/* a bad reply or a refused request is the server's doing, not the
	 * input's: the page fails with exit status 1, not 65 or 64 */
	r->server_fault = rc == ED_EFORMAT || rc == ED_EINVAL;
	if (rc == ED_EINTR) {
		r->dropped = true;
		goto out;
	}
	if (rc == ED_EUNAVAIL) {
		r->unavailable = true;
		r->dropped = true;
		goto out;
	}
	if (rc)
		goto fail;
out:
	/* structure from the final text */
	if (!r->dropped && pg->status &&
	    strcmp(pg->status, ED_STORE_DONE) == 0 && pg->text) {
		if (pg->markdown)
			ed_pipeline_parse_markdown(
			    pg->markdown, strlen(pg->markdown), &r->arena,
			    &pg->blocks, &pg->nblocks);
		ed_pipeline_rules_run(p->rules, pg->text, strlen(pg->text),
				      &r->arena, &pg->fields, &pg->nfields);
	}
	ed_render_text_release(&text);
	ed_render_image_release(&img);
	return;
fail:
	r->code = rc;
	pg->status = ED_STORE_ERROR;
	pg->source = pg->source ? pg->source : "raster";
	pg->text = NULL;
	pg->error = r->err;
	pg->finish_reason = "error";
	ed_render_text_release(&text);
	ed_render_image_release(&img);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct ed_pipeline *p = wk->p;

	for (;;) {
		struct task *t;
		struct result *r;

		pthread_mutex_lock(&p->mu);
		while (!p->tasks && !p->closing)
			pthread_cond_wait(&p->task_cv, &p->mu);
		if (!p->tasks) {
			if (wk->cached) {
				ed_render_doc_close(wk->doc);
				wk->doc = NULL;
				doc_unref(p, wk->cached);
				wk->cached = NULL;
			}
			pthread_mutex_unlock(&p->mu);
			free(wk);
			return NULL;
		}
		t = p->tasks;
		p->tasks = t->next;
		if (!p->tasks)
			p->tasks_tail = NULL;
		p->ntasks--;
		pthread_cond_broadcast(&p->result_cv); /* room in the queue */
		if (wk->cached != t->d) {
			/* a document of its own for this worker */
			ed_render_doc_close(wk->doc);
			wk->doc = NULL;
			if (wk->cached)
				doc_unref(p, wk->cached);
			wk->cached = t->d;
			t->d->refs++;
			pthread_mutex_unlock(&p->mu);
			wk->cached_rc = ed_pipeline_doc_open(
			    &t->d->src, p->o.password, &p->o.limits, &wk->doc,
			    wk->cached_err, sizeof wk->cached_err);
		} else {
			pthread_mutex_unlock(&p->mu);
		}
		r = calloc(1, sizeof *r);
		if (r) {
			r->d = t->d;
			r->page = t->page;
			ed_arena_init(&r->arena, 16384);
			if (p->stop) {
				r->dropped = true;
			} else if (wk->cached_rc) {
				r->code = wk->cached_rc;
				snprintf(r->err, sizeof r->err, "%s",
					 wk->cached_err);
				r->pg.status = ED_STORE_ERROR;
				r->pg.source = "raster";
				r->pg.error = r->err;
				r->pg.key = (struct ed_store_key){
				    t->d->doc_id, t->page + 1, p->o.mode, "",
				    ""};
			} else {
				work_page(wk, r);
			}
		}
		pthread_mutex_lock(&p->mu);
		if (r) {
			if (p->results_tail)
				p->results_tail->next = r;
			else
				p->results = r;
			p->results_tail = r;
		} else {
			/* no memory for a result: the page stays undone */
			t->d->outstanding--;
			doc_unref(p, t->d);
		}
		pthread_cond_broadcast(&p->result_cv);
		pthread_mutex_unlock(&p->mu);
		free(t);
	}
}

/* ---- the main thread ------------------------------------------------ */

const char *ed_pipeline_model_id(const struct ed_pipeline *p)
{
	return p->model_id;
}

void ed_pipeline_decode_stats(struct ed_pipeline *p, int64_t *steps,
			      int64_t *tokens, int *widest)
{
	struct ed_batch_stats s = {0};

	if (p->backend)
		ed_backend_batch_stats(p->backend, &s);
	*steps = s.steps;
	*tokens = s.tokens;
	*widest = s.widest;
}

int ed_pipeline_open(struct ed_pipeline **out, const struct ed_pipeline_opts *o,
		     char *err, size_t errlen)
{
	struct ed_pipeline *p;
	struct ed_store_run run = {
	    .tool_version = ED_VERSION,
	    .backend = o->server_url  ? "remote"
		       : o->model_dir ? "native"
				      : "none",
	    .mode = o->mode,
	    .options_json = o->options_json,
	};
	int rc;

	*out = NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	p->o = *o;
	if (p->o.jobs < 1)
		p->o.jobs = 1;
	p->lease_s = o->lease_s > 0 ? o->lease_s : 300;
	{
		char host[64] = "";
		gethostname(host, sizeof host - 1);
		snprintf(p->owner, sizeof p->owner, "%s:%ld:%.0f", host,
			 (long)getpid(), ed_now_ms());
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->task_cv, NULL);
	pthread_cond_init(&p->result_cv, NULL);
	p->max_tasks = 2 * p->o.jobs;
	p->prompt = o->prompt ? o->prompt : ocr_prompt;
	if (o->prompt) {
		/* a custom task: its own results, keyed by the text */
		char hex[65];
		ed_sha256_hex(o->prompt, strlen(o->prompt), hex);
		snprintf(p->prompt_id, sizeof p->prompt_id, "custom-%.12s",
			 hex);
	} else {
		snprintf(p->prompt_id, sizeof p->prompt_id, "%s",
			 ED_PIPELINE_OCR_PROMPT_ID);
	}
	/* the zoom tool changes the results: its own key */
	if (o->zoom && strcmp(o->mode, "think") == 0)
		snprintf(p->prompt_id + strlen(p->prompt_id),
			 sizeof p->prompt_id - strlen(p->prompt_id), "+zoom");
	snprintf(p->alt_prompt_id, sizeof p->alt_prompt_id, "%s+alt",
		 p->prompt_id);
	if (o->extract && !o->model_dir && !o->server_url) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "--schema needs a model: give --model DIR or "
			    "--server URL (or ERNIE_DOC_MODEL, "
			    "ERNIE_DOC_SERVER)");
		goto fail;
	}
	if ((rc =
		 ed_pipeline_rules_load(&p->rules, o->rules_path, err, errlen)))
		goto fail;
	if (o->model_dir || o->server_url) {
		struct ed_backend_opts bo = {
		    .model_dir = o->model_dir,
		    .threads = o->threads,
		    .server_url = o->server_url,
		    .model_name = o->model_name,
		    .api_key = o->api_key,
		    .ca_file = o->ca_file,
		    /* --schema: a slot for this thread's extractions */
		    .jobs = p->o.jobs + (o->extract ? 1 : 0),
		    .timeout_s = o->timeout_s,
		    .retries = o->retries,
		    .retry_wait_s = o->retry_wait_s,
		    .vision_int8 = o->vision_int8,
		    .chat_template = o->chat_template,
		    .template_variant = o->template_variant,
		};
		if ((rc = ed_backend_open(&p->backend, &bo, err, errlen)))
			goto fail;
		snprintf(p->model_id, sizeof p->model_id, "%s",
			 ed_backend_model_id(p->backend));
	} else {
		p->prompt_id[0] = '\0'; /* no model: pages keyed without one */
	}
	run.model_id = p->model_id;
	if ((rc = ed_store_open(&p->st, o->db_path, 0, err, errlen)))
		goto fail;
	if ((rc = ed_store_run_begin(p->st, &run, &p->run_id, err, errlen))) {
		rc = rc == ED_EAGAIN ? rc : ED_ECREATE;
		goto fail;
	}
	p->th = calloc((size_t)p->o.jobs, sizeof *p->th);
	if (!p->th) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < p->o.jobs; i++) {
		struct worker *wk = calloc(1, sizeof *wk);
		if (wk)
			wk->p = p;
		if (!wk || pthread_create(&p->th[i], NULL, worker_main, wk)) {
			free(wk);
			rc = ed_err(err, errlen, ED_ENOMEM,
				    "cannot start workers");
			goto fail;
		}
		p->nworkers++;
	}
	p->t0 = ed_now_ms();
	*out = p;
	return 0;
fail:
	ed_pipeline_close(p);
	return rc;
}

void ed_pipeline_close(struct ed_pipeline *p)
{
	char err[256];

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->closing = true;
	pthread_cond_broadcast(&p->task_cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nworkers; i++) {
		void *wk = NULL;
		pthread_join(p->th[i], &wk);
	}
	free(p->th);
	if (p->st)
		ed_store_claims_drop(p->st, p->owner, err, sizeof err);
	if (p->st)
		ed_store_run_end(p->st, p->run_id, err, sizeof err);
	ed_store_close(p->st);
	ed_backend_close(p->backend);
	ed_pipeline_rules_free(p->rules);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->task_cv);
	pthread_cond_destroy(&p->result_cv);
	free(p);
}

static void count_failure(struct ed_doc_result *dr, int code)
{
	dr->failed++;
	if (dr->failed == 1)
		dr->page_code = code;
	else if (dr->page_code != code)
		dr->page_code = 0;
}

/* Fill the schema from pages (page_no 0: the document), unless the store
 * has it (and not --force); store it. On this thread: the backend is
 * thread-safe, and extraction from text is cheap beside a page's OCR. */
static void extract_from(struct ed_pipeline *p, struct docref *d, int page_no,
			 const struct ed_page_text *pages, size_t npages,
			 struct ed_extraction *r)
{
	const struct ed_extractor *x = p->o.extract;
	const struct ed_schema *sc = ed_pipeline_extractor_schema(x);
	struct ed_store_extraction e = {
	    .doc_id = d->doc_id,
	    .page_no = page_no,
	    .page_id = page_no ? pages[0].page_id : 0,
	    .schema_sha256 = ed_schema_sha256(sc),
	    .schema_title = ed_schema_title(sc),
	    .model_id = p->model_id,
	    .prompt_id = ed_pipeline_extractor_prompt_id(x, false),
	    .source = "text"};
	struct ed_gen_params g = {.temperature = p->o.temperature,
				  .top_p = p->o.top_p > 0 ? p->o.top_p : 1,
				  .seed = p->o.seed,
				  .max_new_tokens =
				      ed_pipeline_extractor_budget(x, 0)};
	struct ed_buf all;
	struct ed_arena a;
	char err[512];
	int64_t id = 0;

	if (!p->o.force &&
	    !ed_store_extraction_lookup(p->st, &e, &id, err, sizeof err) &&
	    id) {
		ed_pipeline_extraction_read(p->st, id, r, err, sizeof err);
		return;
	}
	ed_buf_init(&all, 0);
	for (size_t k = 0; k < npages; k++)
		ed_buf_printf(&all, "%s%s", k ? "\n\n" : "",
			      pages[k].text ? pages[k].text : "");
	ed_pipeline_extract(x, p->backend, all.data ? all.data : "", NULL,
			    page_no == 0, &g, r);
	ed_buf_release(&all);
	ed_arena_init(&a, 0);
	e.status = r->status;
	e.json = r->json;
	e.error = r->error[0] ? r->error : NULL;
	e.attempts = r->attempts;
	e.tokens_in = r->tokens_in;
	e.tokens_out = r->tokens_out;
	e.ms = r->ms;
	if (!strcmp(r->status, "done"))
		ed_pipeline_extract_fields(r->json, pages, npages, &a,
					   &e.fields, &e.nfields);
	if (r->code != ED_EINTR &&
	    ed_store_extraction_put(p->st, &e, NULL, err, sizeof err)) {
		snprintf(r->status, sizeof r->status, "error");
		snprintf(r->error, sizeof r->error, "%.255s", err);
	}
	ed_arena_release(&a);
}

static void report(struct ed_pipeline *p, struct docref *d, int page,
		   const struct ed_store_page *pg, int64_t page_id,
		   const char *reasoning, bool cached)
{
	struct ed_extraction xo = {0};
	struct ed_page_result r = {
	    .path = d->path,
	    .sha256 = d->src.sha256,
	    .page_no = page + 1,
	    .pages = d->r.pages,
	    .page_id = page_id,
	    .status = pg->status,
	    .source = pg->source,
	    .text = pg->text,
	    .reasoning = reasoning,
	    .error = pg->error,
	    .finish_reason = pg->finish_reason,
	    .guard = pg->guard,
	    .attempts = pg->attempts,
	    .zooms = pg->zooms,
	    .nzooms = pg->nzooms,
	    .tool_errors = pg->tool_errors,
	    .pass = pg->pass,
	    .has_similarity = pg->has_similarity,
	    .similarity = pg->similarity,
	    .nblocks = pg->nblocks,
	    .nfields = pg->nfields,
	    .tokens_in = pg->tokens_in,
	    .tokens_out = pg->tokens_out,
	    .width_pt = pg->width_pt,
	    .height_pt = pg->height_pt,
	    .ms_render = pg->ms_render,
	    .cached = cached,
	};
	if (p->o.extract && p->o.extract_scope == ED_EXTRACT_PAGE &&
	    p->backend && page_id > 0 && pg->text && *pg->text &&
	    !strcmp(pg->status, ED_STORE_DONE) && !p->stop) {
		struct ed_page_text pt = {page_id, page + 1, pg->text};
		extract_from(p, d, page + 1, &pt, 1, &xo);
		r.extraction_status = xo.status;
		r.extraction_json = xo.json;
		r.extraction_error = xo.error[0] ? xo.error : NULL;
	}
	if (p->o.on_page)
		p->o.on_page(p->o.ud, &r);
	ed_extraction_release(&xo);
}

/* --schema with document scope: the document's stored pages, once. */
struct dpages {
	struct ed_page_text *p;
	size_t n, cap;
};

static int dpage_row(void *ud, int ncol, const char *const *names,
		     const struct ed_store_value *v)
{
	struct dpages *dp = ud;
	(void)names;
	if (ncol < 3 || v[2].type != ED_STORE_TEXT || !*v[2].s)
		return 0;
	if (dp->n == dp->cap) {
		size_t cap = dp->cap ? 2 * dp->cap : 8;
		struct ed_page_text *np = realloc(dp->p, cap * sizeof *np);
		if (!np)
			return 1;
		dp->p = np;
		dp->cap = cap;
	}
	dp->p[dp->n].page_id = v[0].i;
	dp->p[dp->n].page_no = (int)v[1].i;
	dp->p[dp->n].text = strdup(v[2].s);
	if (dp->p[dp->n].text)
		dp->n++;
	return 0;
}

static void extract_document(struct ed_pipeline *p, struct docref *d)
{
	struct dpages dp = {0};
	struct ed_extraction xo = {0};
	char err[512];

	if (ed_store_doc_pages(p->st, d->doc_id, dpage_row, &dp, err,
			       sizeof err) ||
	    !dp.n) {
		free(dp.p);
		return; /* nothing read: nothing to fill in */
	}
	extract_from(p, d, 0, dp.p, dp.n, &xo);
	if (p->o.on_extraction) {
		struct ed_extract_result r = {
		    d->path,   d->src.sha256, 0,
		    xo.status, xo.json,	      xo.error[0] ? xo.error : NULL,
		    false};
		p->o.on_extraction(p->o.ud, &r);
	}
	ed_extraction_release(&xo);
	for (size_t k = 0; k < dp.n; k++)
		free((char *)dp.p[k].text);
	free(dp.p);
}

static void progress(struct ed_pipeline *p)
{
	p->prog.elapsed_ms = ed_now_ms() - p->t0;
	if (p->o.on_progress)
		p->o.on_progress(p->o.ud, &p->prog);
}

/* Drop a document from the run and the main thread's reference to it,
 * so that a batch of any length holds only the documents in flight. */
static void release_doc(struct ed_pipeline *p, struct docref *d)
{
	pthread_mutex_lock(&p->mu);
	if (d->listed) {
		for (struct docref **pp = &p->docs; *pp; pp = &(*pp)->next)
			if (*pp == d) {
				*pp = d->next;
				break;
			}
		d->listed = false;
		doc_unref(p, d);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Report a document whose every page is stored. True when it was
 * reported now: the caller then releases it. */
static bool finish_doc(struct ed_pipeline *p, struct docref *d,
		       struct ed_run_result *rr)
{
	if (d->reported || d->dropped || !d->all_queued || d->outstanding > 0)
		return false;
	d->reported = true;
	rr->done += d->r.done;
	rr->blank += d->r.blank;
	rr->needs_model += d->r.needs_model;
	rr->failed += d->r.failed;
	rr->cached += d->r.cached;
	rr->elsewhere += d->r.elsewhere;
	p->prog.docs_done++;
	if (p->o.on_doc)
		p->o.on_doc(p->o.ud, d->path, &d->r);
	if (p->o.extract && p->o.extract_scope == ED_EXTRACT_DOCUMENT &&
	    p->backend && !d->r.code && !p->stop)
		extract_document(p, d);
	progress(p);
	return true;
}

/* Claims of processes of this machine that are gone (killed): dropped
 * at once, not left to lapse. An owner is "host:pid:start". */
struct owners {
	char **v;
	size_t n;
};

static int owner_row(void *ud, int ncol, const char *const *names,
		     const struct ed_store_value *v)
{
	struct owners *o = ud;
	char **nv;
	(void)names;
	if (ncol < 1 || v[0].type != ED_STORE_TEXT)
		return 0;
	if (!(nv = realloc(o->v, (o->n + 1) * sizeof *nv)))
		return 1;
	o->v = nv;
	if ((o->v[o->n] = strdup(v[0].s)))
		o->n++;
	return 0;
}

static void drop_dead_claims(struct ed_pipeline *p)
{
	struct owners o = {0};
	char host[64] = "", err[256];
	size_t hn;

	gethostname(host, sizeof host - 1);
	hn = strlen(host);
	ed_store_claims_owners(p->st, owner_row, &o, err, sizeof err);
	for (size_t i = 0; i < o.n; i++) {
		const char *w = o.v[i];
		long pid;
		char *end;
		if (!strncmp(w, host, hn) && w[hn] == ':' &&
		    strcmp(w, p->owner) &&
		    (pid = strtol(w + hn + 1, &end, 10)) > 0 && *end == ':' &&
		    kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			ed_store_claims_drop(p->st, w, err, sizeof err);
		free(o.v[i]);
	}
	free(o.v);
}

/* Store and report one result (main thread); frees it. */
static void take_result(struct ed_pipeline *p, struct result *r,
			struct ed_run_result *rr)
{
	struct docref *d = r->d;
	char err[512];
	int64_t id = 0;

	if (r->unavailable && !rr->stop_code) {
		rr->stop_code = ED_EUNAVAIL;
		snprintf(rr->stop_error, sizeof rr->stop_error, "%s", r->err);
		p->stop = true;
		if (p->backend)
			ed_backend_cancel(p->backend);
	}
	if (r->dropped)
		d->dropped = true;
	if (!r->dropped) {
		int rc;
		r->pg.run_id = p->run_id;
		rc = ed_store_page_put(p->st, &r->pg, &id, err, sizeof err);
		if (!rc)
			ed_store_claim_release(p->st, &r->pg.key, p->owner, err,
					       sizeof err);
		if (rc) {
			/* the store failing is the run failing */
			if (!rr->stop_code) {
				rr->stop_code = rc;
				snprintf(rr->stop_error, sizeof rr->stop_error,
					 "%s", err);
			}
			p->stop = true;
		} else {
			if (r->code)
				count_failure(&d->r,
					      r->server_fault ? 0 : r->code);
			else if (strcmp(r->pg.status, ED_STORE_DONE) == 0)
				d->r.done++;
			else if (strcmp(r->pg.status, ED_STORE_BLANK) == 0)
				d->r.blank++;
			else if (strcmp(r->pg.status, ED_STORE_NEEDS_MODEL) ==
				 0)
				d->r.needs_model++;
			p->prog.pages_done++;
			p->prog.tokens_out += r->pg.tokens_out;
			report(p, d, r->page, &r->pg, id, r->pg.reasoning,
			       false);
		}
	}
	pthread_mutex_lock(&p->mu);
	d->outstanding--;
	pthread_mutex_unlock(&p->mu);
	if (finish_doc(p, d, rr))
		release_doc(p, d); /* the task still holds a reference */
	pthread_mutex_lock(&p->mu);
	doc_unref(p, d);
	pthread_mutex_unlock(&p->mu);
	ed_arena_release(&r->arena);
	free(r);
	progress(p);
}

/* Take finished results; with wait, block until one arrives (or 100 ms,
 * to notice SIGINT). */
static void drain(struct ed_pipeline *p, struct ed_run_result *rr, bool wait)
{
	/* the claims of the pages in flight, renewed at a quarter lease */
	if (ed_now_ms() - p->renewed_ms > p->lease_s * 250) {
		char err[256];
		ed_store_claims_renew(p->st, p->owner, p->lease_s, err,
				      sizeof err);
		drop_dead_claims(p);
		p->renewed_ms = ed_now_ms();
	}
	for (;;) {
		struct result *r;

		if (p->o.interrupted && *p->o.interrupted && !p->stop) {
			p->stop = true;
			if (!rr->stop_code) {
				rr->stop_code = ED_EINTR;
				snprintf(rr->stop_error, sizeof rr->stop_error,
					 "interrupted");
			}
			if (p->backend)
				ed_backend_cancel(p->backend);
		}
		pthread_mutex_lock(&p->mu);
		if (!p->results && wait) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->result_cv, &p->mu, &ts);
		}
		r = p->results;
		if (r) {
			p->results = r->next;
			if (!p->results)
				p->results_tail = NULL;
		}
		pthread_mutex_unlock(&p->mu);
		if (!r)
			return;
		take_result(p, r, rr);
		wait = false;
	}
}

/* A stored result read back for a cached page. */
struct cached {
	struct ed_arena *a;
	struct ed_store_page *pg;
	const char *reasoning;
};

static int cached_row(void *ud, int ncol, const char *const *names,
		      const struct ed_store_value *v)
{
	struct cached *c = ud;
	const char *dup[5];

	(void)names;
	if (ncol < 16)
		return 0;
	for (int i = 0; i < 5; i++) {
		static const int col[5] = {2, 3, 4, 6, 11};
		dup[i] = v[col[i]].type == ED_STORE_TEXT
			     ? adup(c->a, v[col[i]].s)
			     : NULL;
	}
	c->pg->status = dup[0];
	c->pg->source = dup[1];
	c->pg->text = dup[2];
	c->pg->error = dup[3];
	c->reasoning = dup[4];
	c->pg->width_pt = v[7].type == ED_STORE_REAL ? v[7].r : 0;
	c->pg->height_pt = v[8].type == ED_STORE_REAL ? v[8].r : 0;
	c->pg->ms_render = v[10].type == ED_STORE_REAL ? v[10].r : 0;
	c->pg->finish_reason =
	    v[12].type == ED_STORE_TEXT ? adup(c->a, v[12].s) : NULL;
	c->pg->tokens_in = v[13].type == ED_STORE_INT ? v[13].i : 0;
	c->pg->tokens_out = v[14].type == ED_STORE_INT ? v[14].i : 0;
	c->pg->guard = v[15].type == ED_STORE_TEXT ? adup(c->a, v[15].s) : NULL;
	if (ncol >= 18) {
		c->pg->attempts = v[16].type == ED_STORE_INT ? (int)v[16].i : 0;
		c->pg->has_similarity = v[17].type == ED_STORE_REAL;
		c->pg->similarity = c->pg->has_similarity ? v[17].r : 0;
	}
	return 1;
}

/* Open one input, record it, and queue its unfinished pages. */
static void queue_document(struct ed_pipeline *p, const char *path,
			   struct ed_run_result *rr)
{
	const struct ed_pipeline_opts *o = &p->o;
	struct docref *d = calloc(1, sizeof *d);
	struct ed_doc *doc = NULL;
	int rc, npages;

	rr->docs++;
	p->prog.docs_opened++;
	if (!d || !(d->path = strdup(path))) {
		free(d);
		rr->docs_failed++;
		return;
	}
	d->refs = 1; /* the main thread's */
	d->r.kind = "unknown";
	rc = ed_pipeline_source_open(&d->src, path, o->max_stdin, d->r.error,
				     sizeof d->r.error);
	if (!rc) {
		memcpy(d->r.sha256, d->src.sha256, sizeof d->r.sha256);
		d->r.kind = ed_render_kind_name(d->src.kind);
		rc = ed_pipeline_doc_open(&d->src, o->password, &o->limits,
					  &doc, d->r.error, sizeof d->r.error);
	}
	if (rc) {
		struct ed_store_doc sd = {
		    .sha256 = d->src.sha256[0] ? d->src.sha256 : NULL,
		    .path = path,
		    .kind = d->r.kind,
		    .bytes = (int64_t)d->src.len,
		    .error = d->r.error,
		};
		char err[256];
		int64_t id;
		d->r.code = rc;
		if (sd.sha256) /* recorded so a query shows what failed, and why
				*/
			ed_store_doc_put(p->st, &sd, &id, err, sizeof err);
		rr->docs_failed++;
		if (!rr->first_code) {
			rr->first_code = rc;
			rr->single_code = true;
		} else if (rr->first_code != rc) {
			rr->single_code = false;
		}
		d->all_queued = true;
		d->reported = true;
		p->prog.docs_done++;
		if (o->on_doc)
			o->on_doc(o->ud, path, &d->r);
		ed_pipeline_source_release(&d->src);
		free(d->path);
		free(d);
		return;
	}
	npages = ed_render_doc_pages(doc);
	d->r.pages = npages;
	{
		struct ed_store_doc sd = {
		    .sha256 = d->src.sha256,
		    .path = path,
		    .kind = d->r.kind,
		    .bytes = (int64_t)d->src.len,
		    .pages = npages,
		    .title = ed_render_doc_title(doc),
		};
		char err[512];
		if ((rc = ed_store_doc_put(p->st, &sd, &d->doc_id, err,
					   sizeof err))) {
			ed_render_doc_close(doc);
			rr->stop_code = rc;
			snprintf(rr->stop_error, sizeof rr->stop_error, "%s",
				 err);
			p->stop = true;
			ed_pipeline_source_release(&d->src);
			free(d->path);
			free(d);
			return;
		}
	}
	ed_render_doc_close(doc);
	for (int i = 0; i < npages && !p->stop; i++) {
		struct ed_store_key key = {d->doc_id, i + 1, o->mode,
					   p->model_id, p->prompt_id};
		int64_t have = 0;
		char err[512];

		if (!ed_range_has(&o->pages, i + 1, npages))
			continue;
		p->prog.pages_known++;
		if (!o->force &&
		    ed_store_page_lookup(p->st, &key,
					 o->text_layer != ED_TEXT_LAYER_NEVER,
					 &have, err, sizeof err) == 0 &&
		    have) {
			struct ed_arena a;
			struct ed_store_page pg = {0};
			struct cached c = {&a, &pg, NULL};
			ed_arena_init(&a, 4096);
			if (ed_store_page_get(p->st, have, cached_row, &c, err,
					      sizeof err) == 0 &&
			    pg.status) {
				report(p, d, i, &pg, have, c.reasoning, true);
				d->r.cached++;
				p->prog.pages_done++;
			}
			ed_arena_release(&a);
			continue;
		}
		{
			struct task *t;
			bool got = true;
			/* another process on this database may be on it */
			if (ed_store_claim(p->st, &key, p->owner, p->lease_s,
					   &got, err, sizeof err) == 0 &&
			    !got) {
				d->r.elsewhere++;
				continue;
			}
			/* ... or may have stored it since the look-up */
			if (got && !o->force &&
			    ed_store_page_lookup(p->st, &key,
						 o->text_layer !=
						     ED_TEXT_LAYER_NEVER,
						 &have, err, sizeof err) == 0 &&
			    have) {
				ed_store_claim_release(p->st, &key, p->owner,
						       err, sizeof err);
				d->r.elsewhere++;
				continue;
			}
			t = calloc(1, sizeof *t);
			if (!t)
				continue;
			t->d = d;
			t->page = i;
			/* a bounded queue: store results while it is full */
			pthread_mutex_lock(&p->mu);
			while (p->ntasks >= p->max_tasks && !p->stop) {
				pthread_mutex_unlock(&p->mu);
				drain(p, rr, true);
				pthread_mutex_lock(&p->mu);
			}
			if (p->stop) {
				pthread_mutex_unlock(&p->mu);
				free(t);
				break;
			}
			d->refs++;
			d->outstanding++;
			if (p->tasks_tail)
				p->tasks_tail->next = t;
			else
				p->tasks = t;
			p->tasks_tail = t;
			p->ntasks++;
			pthread_cond_signal(&p->task_cv);
			pthread_mutex_unlock(&p->mu);
		}
		drain(p, rr, false);
	}
	d->all_queued = true;
	if (p->stop) /* not every page was queued */
		d->dropped = true;
	pthread_mutex_lock(&p->mu);
	d->next = p->docs;
	p->docs = d;
	d->listed = true;
	pthread_mutex_unlock(&p->mu);
	if (finish_doc(p, d, rr))
		release_doc(p, d);
}

int ed_pipeline_run(struct ed_pipeline *p, const char *const *paths, size_t n,
		    struct ed_run_result *rr)
{
	memset(rr, 0, sizeof *rr);
	p->prog.docs_total = n;
	for (size_t i = 0; i < n && !p->stop; i++) {
		drain(p, rr, false);
		if (p->stop)
			break;
		queue_document(p, paths[i], rr);
	}
	/* pages still queued are dropped when the run stops */
	if (p->stop) {
		pthread_mutex_lock(&p->mu);
		while (p->tasks) {
			struct task *t = p->tasks;
			p->tasks = t->next;
			t->d->outstanding--;
			doc_unref(p, t->d);
			free(t);
		}
		p->tasks_tail = NULL;
		p->ntasks = 0;
		pthread_mutex_unlock(&p->mu);
	}
	for (;;) {
		bool busy;
		pthread_mutex_lock(&p->mu);
		busy = false;
		for (struct docref *d = p->docs; d; d = d->next)
			if (d->outstanding > 0)
				busy = true;
		pthread_mutex_unlock(&p->mu);
		if (!busy && !p->results)
			break;
		drain(p, rr, true);
	}
	/* what is left: documents a stop cut short */
	for (;;) {
		struct docref *d;
		pthread_mutex_lock(&p->mu);
		d = p->docs;
		pthread_mutex_unlock(&p->mu);
		if (!d)
			break;
		if (!p->stop)
			finish_doc(p, d, rr);
		release_doc(p, d);
	}
	return rr->stop_code;
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
