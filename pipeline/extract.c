/*
 * extract.c - structured extraction: a JSON Schema filled from a page's
 * or a document's text (any model, text-only ones included) or from the
 * page image (a VL model). The prompt is built from the schema's field
 * list and text, and versioned; the native engine decodes under the
 * schema's grammar, a server is asked for structured output; either way
 * the answer is validated here, a server's invalid answer retried once
 * at temperature 0. The leaves become fields rows with their spans in
 * the page text. Also the `extract` command's driver over the store:
 * resumable per (document, page, schema, model, prompt), workers in
 * parallel, results stored and reported in order on the calling thread.
 */
#include "pipeline.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* What the model is told; the version below changes with it. */
static const char head_text[] =
    "Fill in the JSON Schema below from the %s. Answer with one JSON "
    "value that conforms to the schema and nothing else. Leave out an "
    "optional property the %s does not give.\n\nFields:\n";

/* Texts longer than this are cut (a page is a few KB; a document's pages
 * together may be far more than a context holds). */
#define MAX_TEXT (64u << 10)

struct ed_extractor {
	struct ed_schema *schema;
	char *fields;				 /* the field list */
	char *prompt;				 /* --prompt, or NULL */
	char prompt_id[64], image_prompt_id[72]; /* from text, from the image */
};

int ed_pipeline_extractor_open(struct ed_extractor **out,
			       const char *schema_path, const char *prompt,
			       char *err, size_t errlen)
{
	struct ed_extractor *x = calloc(1, sizeof *x);
	struct ed_buf b;
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	if (!x)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	rc = ed_read_file(schema_path, 4u << 20, &text, &len);
	if (rc) {
		free(x);
		return rc == ED_ENOENT ? ed_err(err, errlen, ED_ENOENT,
						"cannot open '%s'", schema_path)
		       : rc == ED_ETOOBIG
			   ? ed_err(err, errlen, ED_ETOOBIG,
				    "'%s': a schema over 4 MiB", schema_path)
			   : ed_err(err, errlen, rc, "cannot read '%s'",
				    schema_path);
	}
	rc = ed_schema_compile(&x->schema, text, len, err, errlen);
	free(text);
	if (rc) {
		ed_err_prefix(err, errlen, "'%s'", schema_path);
		free(x);
		return rc;
	}
	ed_buf_init(&b, 0);
	if (ed_schema_describe(x->schema, &b) ||
	    (prompt && !(x->prompt = strdup(prompt)))) {
		ed_buf_release(&b);
		ed_pipeline_extractor_close(x);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	x->fields = ed_buf_detach(&b, NULL);
	if (prompt) {
		char hex[65];
		ed_sha256_hex(prompt, strlen(prompt), hex);
		snprintf(x->prompt_id, sizeof x->prompt_id, "%s+%.8s",
			 ED_PIPELINE_EXTRACT_PROMPT_ID, hex);
	} else {
		snprintf(x->prompt_id, sizeof x->prompt_id, "%s",
			 ED_PIPELINE_EXTRACT_PROMPT_ID);
	}
	snprintf(x->image_prompt_id, sizeof x->image_prompt_id, "%s+image",
		 x->prompt_id);
	*out = x;
	return 0;
}

void ed_pipeline_extractor_close(struct ed_extractor *x)
{
	if (!x)
		return;
	ed_schema_free(x->schema);
	free(x->fields);
	free(x->prompt);
	free(x);
}

const struct ed_schema *
ed_pipeline_extractor_schema(const struct ed_extractor *x)
{
	return x->schema;
}

const char *ed_pipeline_extractor_prompt_id(const struct ed_extractor *x,
					    bool image)
{
	return image ? x->image_prompt_id : x->prompt_id;
}

int ed_pipeline_extractor_budget(const struct ed_extractor *x, int max_tokens)
{
	int64_t bound = ed_schema_max_bytes(x->schema);
	if (max_tokens > 0)
		return max_tokens;
	return bound > 0 && bound < ED_PIPELINE_MAX_TOKENS
		   ? (int)bound
		   : ED_PIPELINE_MAX_TOKENS;
}

static int read_row(void *ud, int ncol, const char *const *names,
		    const struct ed_store_value *v)
{
	struct ed_extraction *e = ud;
	(void)names;
	if (ncol < 3)
		return 0;
	snprintf(e->status, sizeof e->status, "%s",
		 v[0].type == ED_STORE_TEXT ? v[0].s : "error");
	e->json = v[1].type == ED_STORE_TEXT ? strdup(v[1].s) : NULL;
	snprintf(e->error, sizeof e->error, "%s",
		 v[2].type == ED_STORE_TEXT ? v[2].s : "");
	return 1;
}

int ed_pipeline_extraction_read(struct ed_store *st, int64_t id,
				struct ed_extraction *out, char *err,
				size_t errlen)
{
	memset(out, 0, sizeof *out);
	snprintf(out->status, sizeof out->status, "error");
	return ed_store_extraction_get(st, id, read_row, out, err, errlen);
}

void ed_extraction_release(struct ed_extraction *e)
{
	free(e->json);
	memset(e, 0, sizeof *e);
}

/* The prompt: what to do, the fields, the schema, the user's words, the
 * text. */
static int build_prompt(const struct ed_extractor *x, const char *text,
			bool document, bool image, struct ed_buf *b)
{
	const char *what = image      ? "page image"
			   : document ? "document"
				      : "page";
	int rc = ed_buf_printf(b, head_text, what, image ? "page" : what);
	size_t n = text ? strlen(text) : 0;

	if (!rc)
		rc = ed_buf_puts(b, x->fields);
	if (!rc)
		rc = ed_buf_printf(b, "\nSchema:\n%s\n",
				   ed_schema_json(x->schema));
	if (!rc && x->prompt)
		rc = ed_buf_printf(b, "\n%s\n", x->prompt);
	if (!rc && text) {
		if (n > MAX_TEXT)
			n = MAX_TEXT;
		/* not inside a UTF-8 sequence */
		while (n && ((unsigned char)text[n] & 0xC0) == 0x80 &&
		       n < strlen(text))
			n--;
		rc = ed_buf_printf(b, "\nText of the %s:\n%.*s\n", what, (int)n,
				   text);
	}
	return rc ? ED_ENOMEM : 0;
}

/* The JSON of a reply: a Markdown code fence around it is taken off
 * (servers without structured output add one). */
static char *reply_json(const char *s)
{
	const char *a, *e;
	char *out;

	if (!s)
		return NULL;
	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	a = s;
	e = s + strlen(s);
	if (!strncmp(a, "```", 3)) {
		const char *nl = strchr(a, '\n');
		const char *close = e;
		while (close > a + 3 && (close[-1] == '\n' ||
					 close[-1] == ' ' || close[-1] == '\r'))
			close--;
		if (nl && close - a >= 6 && !strncmp(close - 3, "```", 3)) {
			a = nl + 1;
			e = close - 3;
		}
	}
	while (e > a && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' ||
			 e[-1] == '\t'))
		e--;
	out = malloc((size_t)(e - a) + 1);
	if (out) {
		memcpy(out, a, (size_t)(e - a));
		out[e - a] = '\0';
	}
	return out;
}

int ed_pipeline_extract(const struct ed_extractor *x, struct ed_backend *b,
			const char *text, const struct ed_prepared *image,
			bool document, const struct ed_gen_params *gen,
			struct ed_extraction *out)
{
	struct ed_buf prompt;
	struct ed_req_part parts[2];
	struct ed_request rq;
	size_t np = 0;
	double t0 = ed_now_ms();
	int rc;

	memset(out, 0, sizeof *out);
	ed_buf_init(&prompt, 0);
	if ((rc = build_prompt(x, text, document, image != NULL, &prompt))) {
		snprintf(out->status, sizeof out->status, "error");
		snprintf(out->error, sizeof out->error, "out of memory");
		out->code = rc;
		return 0;
	}
	if (image)
		parts[np++] =
		    (struct ed_req_part){NULL, image->png ? NULL : &image->im,
					 image->png, image->png_len};
	parts[np++] = (struct ed_req_part){prompt.data, NULL, NULL, 0};
	memset(&rq, 0, sizeof rq);
	rq.parts = parts;
	rq.n_parts = np;
	rq.gen = *gen;
	rq.schema = x->schema;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct ed_response resp;
		char err[256];
		char *json;
		bool remote = ed_backend_kind(b) == ED_BACKEND_REMOTE;
		if (attempt)
			rq.gen.temperature = 0; /* the retry: greedy */
		rc = ed_backend_run(b, &rq, &resp, err, sizeof err);
		out->attempts +=
		    remote ? (resp.attempts ? resp.attempts : 1) : 1;
		if (rc) {
			ed_response_release(&resp);
			snprintf(out->status, sizeof out->status, "error");
			snprintf(out->error, sizeof out->error, "%s", err);
			out->code = rc;
			break;
		}
		out->tokens_in += resp.tokens_in;
		out->tokens_out += resp.tokens_out;
		json = reply_json(resp.content);
		free(out->json);
		out->json = json;
		if (!strcmp(resp.finish_reason, "length") ||
		    !strcmp(resp.finish_reason, "grammar")) {
			/* the budget ran out, or nothing could go on: what
			 * there is, never as a value */
			snprintf(out->status, sizeof out->status, "incomplete");
			snprintf(out->error, sizeof out->error,
				 "%s after %lld tokens",
				 !strcmp(resp.finish_reason, "length")
				     ? "the token budget ran out"
				     : "the grammar could not go on",
				 (long long)resp.tokens_out);
			ed_response_release(&resp);
			break;
		}
		if (!strcmp(resp.finish_reason, "callback")) {
			snprintf(out->status, sizeof out->status, "error");
			snprintf(out->error, sizeof out->error, "interrupted");
			out->code = ED_EINTR;
			ed_response_release(&resp);
			break;
		}
		ed_response_release(&resp);
		rc = json ? ed_schema_validate(x->schema, json, strlen(json),
					       err, sizeof err)
			  : ED_EFORMAT;
		if (!rc) {
			snprintf(out->status, sizeof out->status, "done");
			out->error[0] = '\0';
			break;
		}
		snprintf(out->status, sizeof out->status, "invalid");
		snprintf(out->error, sizeof out->error, "%s",
			 json ? err : "no reply");
		/* the native engine cannot answer otherwise: no retry */
		if (!remote)
			break;
	}
	out->ms = ed_now_ms() - t0;
	ed_buf_release(&prompt);
	return 0;
}

/* ---- fields --------------------------------------------------------- */

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* Where value occurs in text once runs of whitespace in both are one
 * space: the byte span in text, or false. */
static bool find_span(const char *text, const char *value, int64_t *start,
		      int64_t *end)
{
	size_t tn = strlen(text), vn = 0, nn = 0;
	char *norm, *nv;
	size_t *at;
	bool found = false;

	if (!*value)
		return false;
	norm = malloc(tn + 1);
	at = malloc((tn + 1) * sizeof *at);
	nv = malloc(strlen(value) + 1);
	if (!norm || !at || !nv)
		goto out;
	for (size_t i = 0; i < tn; i++) {
		if (is_space((unsigned char)text[i])) {
			if (nn && norm[nn - 1] == ' ')
				continue;
			norm[nn] = ' ';
		} else {
			norm[nn] = text[i];
		}
		at[nn++] = i;
	}
	norm[nn] = '\0';
	for (const char *v = value; *v; v++) {
		if (is_space((unsigned char)*v)) {
			if (!vn || nv[vn - 1] == ' ')
				continue;
			nv[vn++] = ' ';
		} else {
			nv[vn++] = *v;
		}
	}
	while (vn && nv[vn - 1] == ' ')
		vn--;
	nv[vn] = '\0';
	if (vn) {
		const char *hit = strstr(norm, nv);
		if (hit) {
			size_t s = (size_t)(hit - norm), e = s + vn - 1;
			*start = (int64_t)at[s];
			*end = (int64_t)at[e] + 1;
			found = true;
		}
	}
out:
	free(norm);
	free(at);
	free(nv);
	return found;
}

struct leaves {
	const struct ed_page_text *pages;
	size_t npages;
	struct ed_arena *a;
	struct ed_store_xfield *f;
	size_t n, cap;
	bool oom;
};

static void add_leaf(struct leaves *L, const char *ptr, const char *value)
{
	struct ed_store_xfield *x;
	if (L->n == L->cap) {
		size_t cap = L->cap ? 2 * L->cap : 16;
		struct ed_store_xfield *nf =
		    ed_arena_alloc(L->a, cap * sizeof *nf);
		if (!nf) {
			L->oom = true;
			return;
		}
		if (L->n)
			memcpy(nf, L->f, L->n * sizeof *nf);
		L->f = nf;
		L->cap = cap;
	}
	x = &L->f[L->n];
	x->name = ed_arena_strdup(L->a, ptr);
	x->value = value ? ed_arena_strdup(L->a, value) : NULL;
	x->page_id = L->npages ? L->pages[0].page_id : 0;
	x->start = x->end = -1;
	if (!x->name || (value && !x->value)) {
		L->oom = true;
		return;
	}
	for (size_t i = 0; value && i < L->npages; i++)
		if (L->pages[i].text &&
		    find_span(L->pages[i].text, value, &x->start, &x->end)) {
			x->page_id = L->pages[i].page_id;
			break;
		}
	L->n++;
}

static void walk_leaves(struct leaves *L, json_t *v, const char *ptr, int depth)
{
	char sub[1024], num[64];
	if (depth > 64)
		return;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e)
		{
			size_t n =
			    (size_t)snprintf(sub, sizeof sub, "%s/", ptr);
			/* k itself must stay: the iteration follows it */
			for (const char *c = k; *c && n + 3 < sizeof sub; c++) {
				if (*c == '~' || *c == '/') {
					sub[n++] = '~';
					sub[n++] = *c == '~' ? '0' : '1';
				} else {
					sub[n++] = *c;
				}
			}
			sub[n] = '\0';
			walk_leaves(L, e, sub, depth + 1);
		}
		return;
	}
	case JSON_ARRAY:
		for (size_t i = 0; i < json_array_size(v); i++) {
			snprintf(sub, sizeof sub, "%s/%zu", ptr, i);
			walk_leaves(L, json_array_get(v, i), sub, depth + 1);
		}
		return;
	case JSON_STRING: add_leaf(L, ptr, json_string_value(v)); return;
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%lld",
			 (long long)json_integer_value(v));
		add_leaf(L, ptr, num);
		return;
	case JSON_REAL: {
		char *d =
		    json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		add_leaf(L, ptr, d ? d : "");
		free(d);
		return;
	}
	case JSON_TRUE: add_leaf(L, ptr, "true"); return;
	case JSON_FALSE: add_leaf(L, ptr, "false"); return;
	case JSON_NULL: add_leaf(L, ptr, NULL); return;
	}
}

int ed_pipeline_extract_fields(const char *json,
			       const struct ed_page_text *pages, size_t npages,
			       struct ed_arena *a,
			       const struct ed_store_xfield **out, size_t *n)
{
	struct leaves L = {pages, npages, a, NULL, 0, 0, false};
	json_t *v = json ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;

	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	walk_leaves(&L, v, "", 0);
	json_decref(v);
	if (L.oom)
		return ED_ENOMEM;
	*out = L.f;
	*n = L.n;
	return 0;
}
