/*
 * backend.c - the backend interface and its native implementation: a
 * fixed set of sessions over one shared model, handed to callers one at a
 * time (a worker blocks while all are busy). The remote implementation is
 * in remote.c.
 */
#include "model_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ed_backend {
	enum ed_backend_kind kind;
	char model_id[256];
	/* native */
	struct ed_model *model;
	struct ed_session **sessions;
	bool *busy;
	int nsessions;
	pthread_mutex_t mu;
	pthread_cond_t cv;
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

int ed_backend_open(struct ed_backend **out, const struct ed_backend_opts *o,
		    char *err, size_t errlen)
{
	struct ed_backend *b = calloc(1, sizeof *b);
	int rc;

	*out = NULL;
	if (!b)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
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
	if (!b->model->tok) {
		ed_err(err, errlen, ED_ECONFIG,
		       "model '%s' has no tokenizer.model", o->model_dir);
		ed_backend_close(b);
		return ED_ECONFIG;
	}
	b->nsessions = o->jobs > 0 ? o->jobs : 1;
	b->sessions = calloc((size_t)b->nsessions, sizeof *b->sessions);
	b->busy = calloc((size_t)b->nsessions, sizeof *b->busy);
	if (!b->sessions || !b->busy) {
		ed_backend_close(b);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	for (int i = 0; i < b->nsessions; i++)
		if ((rc = ed_session_new(
			 &b->sessions[i], b->model,
			 &(struct ed_session_opts){o->threads, 0}, err,
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
	for (int i = 0; b->sessions && i < b->nsessions; i++)
		ed_session_free(b->sessions[i]);
	free(b->sessions);
	free(b->busy);
	ed_model_close(b->model);
	remote_close(b->remote);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

void ed_backend_cancel(struct ed_backend *b)
{
	if (b->remote)
		remote_cancel(b->remote);
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

void ed_response_release(struct ed_response *r)
{
	if (!r)
		return;
	free(r->content);
	free(r->reasoning);
	memset(r, 0, sizeof *r);
}

int ed_split_thinking(const char *text, char **reasoning, char **content)
{
	const char *end = strstr(text, "</think>"), *a = text, *c;

	*reasoning = NULL;
	*content = NULL;
	if (!end) {
		*content = strdup(text);
		return *content ? 0 : ED_ENOMEM;
	}
	while (*a == ' ' || *a == '\n')
		a++;
	if (strncmp(a, "<think>", 7) == 0)
		a += 7;
	c = end + 8;
	while (*c == '\n' || *c == ' ')
		c++;
	{
		size_t rl = (size_t)(end - a);
		while (rl && (a[rl - 1] == '\n' || a[rl - 1] == ' '))
			rl--;
		while (rl && (*a == '\n' || *a == ' '))
			a++, rl--;
		*reasoning = malloc(rl + 1);
		*content = strdup(c);
		if (!*reasoning || !*content) {
			free(*reasoning);
			free(*content);
			*reasoning = *content = NULL;
			return ED_ENOMEM;
		}
		memcpy(*reasoning, a, rl);
		(*reasoning)[rl] = '\0';
	}
	return 0;
}

static int native_run(struct ed_backend *b, const struct ed_request *r,
		      struct ed_response *out, char *err, size_t errlen)
{
	struct ed_chat_part *parts;
	struct ed_chat chat = {0};
	struct ed_prompt p;
	struct ed_gen_result g;
	struct ed_session *s = NULL;
	double t0 = ed_now_ms();
	int rc, slot = -1;

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
	}
	chat.system = r->system;
	chat.parts = parts;
	chat.n_parts = r->n_parts;
	chat.thinking = r->thinking;
	rc = ed_model_prompt_chat(b->model, &chat, &p, err, errlen);
	free(parts);
	if (rc)
		return rc;
	pthread_mutex_lock(&b->mu);
	while (slot < 0) {
		for (int i = 0; i < b->nsessions && slot < 0; i++)
			if (!b->busy[i])
				slot = i;
		if (slot < 0)
			pthread_cond_wait(&b->cv, &b->mu);
	}
	b->busy[slot] = true;
	s = b->sessions[slot];
	pthread_mutex_unlock(&b->mu);

	rc = ed_session_generate(s, &p, &r->gen, r->on_text, r->ud, &g, err,
				 errlen);

	pthread_mutex_lock(&b->mu);
	b->busy[slot] = false;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	ed_model_prompt_release(&p);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	if (r->thinking)
		rc = ed_split_thinking(g.text, &out->reasoning, &out->content);
	else
		out->content = strdup(g.text),
		rc = out->content ? 0 : ED_ENOMEM;
	snprintf(out->finish_reason, sizeof out->finish_reason, "%s",
		 g.finish_reason);
	out->tokens_in = g.tokens_in;
	out->tokens_out = (int64_t)g.n_tokens;
	out->ms_vision = g.ms_vision;
	out->ms_prefill = g.ms_prefill;
	out->ms_decode = g.ms_decode;
	out->ms_total = ed_now_ms() - t0;
	out->attempts = 1;
	ed_gen_result_release(&g);
	if (rc) {
		ed_response_release(out);
		return ed_err(err, errlen, rc, "out of memory");
	}
	return 0;
}

int ed_backend_run(struct ed_backend *b, const struct ed_request *r,
		   struct ed_response *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (b->kind == ED_BACKEND_REMOTE)
		return remote_run(b->remote, r, out, err, errlen);
	return native_run(b, r, out, err, errlen);
}
