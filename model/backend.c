/*
 * backend.c - the backend interface and its native implementation: a
 * batcher (batch.c) over one shared model, whose `jobs` slots are handed
 * to callers one at a time (a worker blocks while all are busy) and whose
 * sequences decode together. The remote implementation is in remote.c.
 */
#include "model_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Schemas a backend has decoded under, with their constraints. */
#define MAX_SCHEMAS 8

struct ed_backend {
	enum ed_backend_kind kind;
	char model_id[256];
	/* native */
	struct ed_model *model;
	struct ed_batcher *batcher;
	pthread_mutex_t cmu;
	const struct ed_schema *schemas[MAX_SCHEMAS];
	struct ed_constraint *constraints[MAX_SCHEMAS];
	int nschemas;
	/* remote */
	struct remote *remote;
};

static void set_model_id(struct ed_backend *b, const char *prefix,
			 const char *path)
{
	const char *base = path, *end;
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	end = path + n;
	for (const char *c = path; c + 1 < end; c++)
		if (*c == '/')
			base = c + 1;
	snprintf(b->model_id, sizeof b->model_id, "%s/%.*s", prefix,
		 (int)(end - base), base);
}

/* --template and --chat-template: other prompts, another model id (the
 * resume key keeps their pages apart) */
static int apply_template(struct ed_backend *b, const struct ed_backend_opts *o,
			  char *err, size_t errlen)
{
	size_t n = strlen(b->model_id);
	int rc = 0;

	if (o->template_variant) {
		int v = ed_model_variant_parse(o->template_variant);
		if (v < 0)
			return ed_err(err, errlen, ED_EINVAL,
				      "--template is pt or thinking");
		if ((rc = ed_model_set_variant(b->model, (enum ed_variant)v,
					       err, errlen)))
			return rc == ED_ENOMEM ? rc : ED_ECONFIG;
		snprintf(b->model_id + n, sizeof b->model_id - n, "+tmpl-%s",
			 o->template_variant);
	}
	if (o->chat_template) {
		struct ed_template_info ti;
		char hex[65];
		if ((rc = ed_model_load_chat_template(
			 b->model, o->chat_template, err, errlen)))
			return rc == ED_ENOMEM || rc == ED_ENOENT ? rc
								  : ED_ECONFIG;
		ed_model_get_template(b->model, &ti);
		ed_sha256_hex(ti.text, strlen(ti.text), hex);
		n = strlen(b->model_id);
		snprintf(b->model_id + n, sizeof b->model_id - n, "+tmpl-%.8s",
			 hex);
	}
	return 0;
}

int ed_backend_open(struct ed_backend **out, const struct ed_backend_opts *o,
		    char *err, size_t errlen)
{
	struct ed_backend *b = calloc(1, sizeof *b);
	int rc;

	*out = NULL;
	if (!b)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	pthread_mutex_init(&b->cmu, NULL);
	if (o->server_url) {
		b->kind = ED_BACKEND_REMOTE;
		if ((rc = remote_open(&b->remote, o, err, errlen))) {
			ed_backend_close(b);
			return rc;
		}
		set_model_id(b, "remote", remote_model_name(b->remote));
		*out = b;
		return 0;
	}
	b->kind = ED_BACKEND_NATIVE;
	if (!o->model_dir) {
		ed_backend_close(b);
		return ed_err(err, errlen, ED_ECONFIG, "no model directory");
	}
	set_model_id(b, "native", o->model_dir);
	if ((rc = ed_model_open(&b->model, o->model_dir, NULL, NULL, err,
				errlen))) {
		ed_err_prefix(err, errlen, "model '%s'", o->model_dir);
		ed_backend_close(b);
		return rc == ED_ENOMEM ? rc : ED_ECONFIG;
	}
	if (!b->model->cfg.has_vision && !o->text_model_ok) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "model '%s' is a text-only %s checkpoint: it "
			    "cannot read page images (use an ERNIE-4.5-VL "
			    "model; text models run with 'ernie-doc model "
			    "generate')",
			    o->model_dir, b->model->cfg.arch);
		ed_backend_close(b);
		return rc;
	}
	if (o->vision_int8) {
		/* other numbers, another model id: the resume key keeps the
		 * two apart */
		size_t n = strlen(b->model_id);
		if ((rc = ed_model_set_vision_int8(b->model, err, errlen))) {
			ed_backend_close(b);
			return rc == ED_ENOMEM ? rc : ED_ECONFIG;
		}
		snprintf(b->model_id + n, sizeof b->model_id - n, "+vit-int8");
	}
	if ((rc = apply_template(b, o, err, errlen))) {
		ed_backend_close(b);
		return rc;
	}
	if (!b->model->tok) {
		ed_err(err, errlen, ED_ECONFIG,
		       "model '%s' has no tokenizer.model", o->model_dir);
		ed_backend_close(b);
		return ED_ECONFIG;
	}
	if ((rc = ed_batcher_open(&b->batcher, b->model,
				  o->jobs > 0 ? o->jobs : 1, o->threads, err,
				  errlen))) {
		ed_backend_close(b);
		return rc;
	}
	*out = b;
	return 0;
}

void ed_backend_close(struct ed_backend *b)
{
	if (!b)
		return;
	ed_batcher_close(b->batcher);
	for (int i = 0; i < b->nschemas; i++)
		ed_constraint_free(b->constraints[i]);
	pthread_mutex_destroy(&b->cmu);
	ed_model_close(b->model);
	remote_close(b->remote);
	free(b);
}

/* The constraint of schema s over the model's vocabulary: built once (the
 * token trie, the mask cache), kept while the backend is open. */
static int constraint_for(struct ed_backend *b, const struct ed_schema *s,
			  struct ed_constraint **out, char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&b->cmu);
	for (int i = 0; i < b->nschemas; i++)
		if (b->schemas[i] == s) {
			*out = b->constraints[i];
			pthread_mutex_unlock(&b->cmu);
			return 0;
		}
	if (b->nschemas == MAX_SCHEMAS) {
		rc = ed_err(err, errlen, ED_EINVAL,
			    "more than %d schemas on one backend", MAX_SCHEMAS);
	} else {
		const struct ed_model_ids *ids = &b->model->ids;
		int32_t stop[2] = {ids->eos, ids->end_of_sentence};
		rc = ed_constraint_new(out, s, b->model->tok,
				       b->model->cfg.vocab, stop, 2, err,
				       errlen);
		if (!rc) {
			b->schemas[b->nschemas] = s;
			b->constraints[b->nschemas++] = *out;
		}
	}
	pthread_mutex_unlock(&b->cmu);
	return rc;
}

void ed_backend_cancel(struct ed_backend *b)
{
	if (b->remote)
		remote_cancel(b->remote);
}

void ed_backend_batch_stats(struct ed_backend *b, struct ed_batch_stats *s)
{
	memset(s, 0, sizeof *s);
	if (b->batcher)
		ed_batcher_stats(b->batcher, &s->steps, &s->tokens, &s->widest);
}

enum ed_backend_kind ed_backend_kind(const struct ed_backend *b)
{
	return b->kind;
}

const char *ed_backend_model_id(const struct ed_backend *b)
{
	return b->model_id;
}

const struct ed_model *ed_backend_model(const struct ed_backend *b)
{
	return b->model;
}

/* ---- conversations ---------------------------------------------------- */

struct ed_conv {
	struct ed_backend *b;
	struct ed_request rq;
	/* native */
	int slot;
	struct ed_session *s;
	struct ed_prompt prompt; /* in the cache, then the last step's output */
	int32_t *gen;		 /* the last step's tokens */
	size_t n_gen;
	size_t pictures; /* images so far, for the Picture numbers */
	/* remote */
	struct remote_conv *rc;
	char *call_id;
};

/* Generated text, watched for the end of a tool call. */
struct watch {
	const struct ed_request *rq;
	struct ed_buf text;
	bool called;
};

static int watch_cb(void *ud, int32_t id, const char *s, size_t n)
{
	struct watch *w = ud;

	if (id >= 0 && n && ed_buf_append(&w->text, s, n))
		return 1;
	if (w->rq->on_text && w->rq->on_text(w->rq->ud, id, s, n))
		return 1;
	if (w->rq->tools && w->text.len) {
		size_t from = w->text.len > n + 16 ? w->text.len - n - 16 : 0;
		if (strstr(w->text.data + from, "</tool_call>")) {
			w->called = true;
			return 1;
		}
	}
	return 0;
}

/* One native step: generate (first) or continue, then split the text into
 * reasoning, answer and tool call. */
static int native_step(struct ed_conv *c, bool first, int max_new_tokens,
		       struct ed_response *out, char *err, size_t errlen)
{
	struct ed_gen_params g = c->rq.gen;
	struct watch w = {&c->rq, {0}, false};
	struct ed_gen_result gr;
	double t0 = ed_now_ms();
	int32_t *forced = NULL;
	size_t nf = 0;
	char *text;
	int rc;

	memset(out, 0, sizeof *out);
	ed_buf_init(&w.text, 0);
	if (max_new_tokens > 0)
		g.max_new_tokens = max_new_tokens;
	if (c->rq.schema && (rc = constraint_for(c->b, c->rq.schema,
						 &g.constraint, err, errlen)))
		return rc;
	if (first && c->rq.force_text && c->b->model->tok) {
		if (ed_tok_encode(c->b->model->tok, c->rq.force_text,
				  strlen(c->rq.force_text), &forced, &nf))
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		g.forced = forced;
		g.n_forced = nf;
	}
	rc = ed_batcher_run(c->b->batcher, c->slot, &c->prompt, !first, &g,
			    watch_cb, &w, &gr, err, errlen);
	free(forced);
	ed_buf_release(&w.text);
	if (rc)
		return rc;
	free(c->gen);
	c->gen = gr.tokens;
	c->n_gen = gr.n_tokens;
	gr.tokens = NULL;
	text = gr.text;
	if (w.called) {
		size_t at = 0;
		rc = ed_model_parse_tool_call(text, &out->call, &at);
		if (rc == 1) {
			text[at] = '\0';
			rc = 0;
		}
	}
	if (!rc && c->rq.thinking)
		rc = ed_split_thinking(text, &out->reasoning, &out->content);
	else if (!rc)
		rc = (out->content = strdup(text)) ? 0 : ED_ENOMEM;
	snprintf(out->finish_reason, sizeof out->finish_reason, "%s",
		 out->call.raw ? "tool_calls" : gr.finish_reason);
	out->tokens_in = gr.tokens_in;
	out->tokens_out = (int64_t)c->n_gen;
	out->ms_vision = gr.ms_vision;
	out->ms_prefill = gr.ms_prefill;
	out->ms_decode = gr.ms_decode;
	out->ms_total = ed_now_ms() - t0;
	out->attempts = 1;
	ed_gen_result_release(&gr);
	if (rc) {
		ed_response_release(out);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	return 0;
}

static int native_start(struct ed_conv *c, struct ed_response *out, char *err,
			size_t errlen)
{
	struct ed_backend *b = c->b;
	const struct ed_request *r = &c->rq;
	struct ed_chat_part *parts;
	struct ed_chat chat = {0};
	int rc;

	parts = calloc(r->n_parts ? r->n_parts : 1, sizeof *parts);
	if (!parts)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n_parts; i++) {
		parts[i].text = r->parts[i].text;
		parts[i].image = r->parts[i].tiles;
		if (!parts[i].text && !parts[i].image) {
			free(parts);
			return ed_err(err, errlen, ED_EINVAL,
				      "the native engine needs image tiles");
		}
		c->pictures += !parts[i].text;
	}
	chat.system = r->system;
	chat.parts = parts;
	chat.n_parts = r->n_parts;
	chat.thinking = r->thinking;
	chat.tools = r->tools;
	rc = ed_model_prompt_chat(b->model, &chat, &c->prompt, err, errlen);
	free(parts);
	if (rc)
		return rc;
	c->slot = ed_batcher_acquire(b->batcher);
	c->s = ed_batcher_session(b->batcher, c->slot);
	return native_step(c, true, 0, out, err, errlen);
}

static int native_reply(struct ed_conv *c, const struct ed_req_part *parts,
			size_t n, int max_new_tokens, struct ed_response *out,
			char *err, size_t errlen)
{
	struct ed_image_in *imgs = calloc(n ? n : 1, sizeof *imgs);
	struct ed_buf text;
	struct ed_prompt np;
	size_t ni = 0;
	int rc;

	if (!imgs)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&text, 0);
	for (size_t i = 0; i < n; i++) {
		if (parts[i].text && ed_buf_puts(&text, parts[i].text)) {
			ed_buf_release(&text);
			free(imgs);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		if (!parts[i].text && parts[i].tiles)
			imgs[ni++] = *parts[i].tiles;
	}
	rc = ed_model_prompt_extend(c->b->model, &c->prompt, c->gen, c->n_gen,
				    text.data, imgs, ni, c->rq.thinking, &np,
				    err, errlen);
	ed_buf_release(&text);
	free(imgs);
	if (rc)
		return rc;
	ed_model_prompt_release(&c->prompt);
	c->prompt = np;
	c->pictures += ni;
	return native_step(c, false, max_new_tokens, out, err, errlen);
}

int ed_conv_start(struct ed_backend *b, const struct ed_request *r,
		  struct ed_conv **conv, struct ed_response *out, char *err,
		  size_t errlen)
{
	struct ed_conv *c = calloc(1, sizeof *c);
	int rc;

	*conv = NULL;
	memset(out, 0, sizeof *out);
	if (!c)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	c->b = b;
	c->rq = *r;
	c->slot = -1;
	if (b->kind == ED_BACKEND_REMOTE) {
		rc = remote_conv_start(&c->rc, r);
		if (rc)
			rc = ed_err(err, errlen, rc, "out of memory");
		else
			rc = remote_conv_run(b->remote, c->rc, &c->rq, out, err,
					     errlen);
		if (!rc && out->call.id && !(c->call_id = strdup(out->call.id)))
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
	} else {
		rc = native_start(c, out, err, errlen);
	}
	if (rc) {
		ed_conv_end(c);
		return rc;
	}
	*conv = c;
	return 0;
}

int ed_conv_reply(struct ed_conv *c, const struct ed_req_part *parts,
		  size_t n_parts, int max_new_tokens, struct ed_response *out,
		  char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (c->b->kind == ED_BACKEND_REMOTE) {
		struct ed_request rq = c->rq;
		int rc;
		if (max_new_tokens > 0)
			rq.gen.max_new_tokens = max_new_tokens;
		if ((rc = remote_conv_reply(c->rc, c->call_id, parts, n_parts)))
			return ed_err(err, errlen, rc, "out of memory");
		free(c->call_id);
		c->call_id = NULL;
		rc =
		    remote_conv_run(c->b->remote, c->rc, &rq, out, err, errlen);
		if (!rc && out->call.id && !(c->call_id = strdup(out->call.id)))
			rc = ED_ENOMEM;
		return rc;
	}
	return native_reply(c, parts, n_parts, max_new_tokens, out, err,
			    errlen);
}

void ed_conv_end(struct ed_conv *c)
{
	if (!c)
		return;
	if (c->slot >= 0)
		ed_batcher_release(c->b->batcher, c->slot);
	ed_model_prompt_release(&c->prompt);
	free(c->gen);
	remote_conv_free(c->rc);
	free(c->call_id);
	free(c);
}

const struct ed_prompt *ed_conv_prompt(const struct ed_conv *c)
{
	return c->b->kind == ED_BACKEND_NATIVE ? &c->prompt : NULL;
}

int ed_backend_run(struct ed_backend *b, const struct ed_request *r,
		   struct ed_response *out, char *err, size_t errlen)
{
	struct ed_conv *c;
	int rc = ed_conv_start(b, r, &c, out, err, errlen);

	ed_conv_end(c);
	return rc;
}
