/*
 * remote.c - the OpenAI-compatible chat-completions client (vLLM,
 * FastDeploy, llama-server). Workers submit requests and wait; one I/O
 * thread drives every transfer on a curl multi handle, so many requests
 * are in flight on reused connections. Replies are streamed (SSE) so
 * generation can be stopped early; a plain JSON reply is accepted too.
 * Connect errors, timeouts, truncated replies, 429 and 5xx are retried
 * with exponential backoff and jitter, honouring Retry-After. TLS is
 * always verified. Only the I/O thread touches curl handles.
 */
#include "model_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPLY      (64u << 20)
#define MAX_ERROR_BODY 4096

enum fail { F_NONE, F_CONNECT, F_TRANSIENT, F_FINAL };

struct xfer {
	struct xfer *next;
	struct xfer *anext; /* the active list */
	const struct ed_request *req;
	struct ed_response *resp;
	char *body;
	CURL *easy;
	struct curl_slist *hdrs;
	struct ed_buf rx; /* the reply, or the unparsed part of a stream */
	struct ed_buf content, reasoning;
	struct ed_buf tc_args; /* a streamed tool call's arguments */
	char *tc_name, *tc_id;
	bool sse, sse_done, cancelled, type_known;
	bool stream_error; /* the server sent an error object mid-stream */
	char finish[16];
	int64_t usage_in, usage_out, chunks;
	int attempt;
	double next_at, t0;
	enum fail last_fail;
	bool done;
	int rc;
	char err[512];
	char curl_err[CURL_ERROR_SIZE];
};

struct remote {
	char *endpoint, *models_url, *model_name, *auth, *ca_file;
	int jobs, retries;
	double timeout_s, retry_wait_s;
	CURLM *multi;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct xfer *queue;
	bool quit, cancel;
	uint64_t rng;
};

/* ---- helpers --------------------------------------------------------- */

static char *b64(const unsigned char *p, size_t n)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;

	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*q++ = t[v >> 18 & 63];
		*q++ = t[v >> 12 & 63];
		*q++ = i + 1 < n ? t[v >> 6 & 63] : '=';
		*q++ = i + 2 < n ? t[v & 63] : '=';
	}
	*q = '\0';
	return o;
}

static double jitter(struct remote *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return 0.5 + (double)(r->rng >> 11) / 9007199254740992.0;
}

/* Content parts as the chat API takes them: text, and images as PNG data
 * URLs. NULL when out of memory. */
static json_t *content_parts(const struct ed_req_part *parts, size_t n)
{
	json_t *content = json_array();

	for (size_t i = 0; content && i < n; i++) {
		const struct ed_req_part *p = &parts[i];
		if (p->text) {
			json_array_append_new(
			    content, json_pack("{s:s, s:s}", "type", "text",
					       "text", p->text));
		} else if (p->png) {
			char *enc = b64(p->png, p->png_len);
			size_t ul = enc ? strlen(enc) + 32 : 0;
			char *url = enc ? malloc(ul) : NULL;
			if (!url) {
				free(enc);
				json_decref(content);
				return NULL;
			}
			snprintf(url, ul, "data:image/png;base64,%s", enc);
			json_array_append_new(
			    content,
			    json_pack("{s:s, s:{s:s}}", "type", "image_url",
				      "image_url", "url", url));
			free(enc);
			free(url);
		}
	}
	return content;
}

/* The conversation so far: the messages of the chat API. */
struct remote_conv {
	json_t *messages;
	int calls; /* tool calls answered, for ids the server did not give */
};

int remote_conv_start(struct remote_conv **out, const struct ed_request *q)
{
	struct remote_conv *c = calloc(1, sizeof *c);
	json_t *content = content_parts(q->parts, q->n_parts);

	*out = NULL;
	if (!c || !content || !(c->messages = json_array())) {
		free(c);
		json_decref(content);
		return ED_ENOMEM;
	}
	if (q->system)
		json_array_append_new(c->messages,
				      json_pack("{s:s, s:s}", "role", "system",
						"content", q->system));
	json_array_append_new(
	    c->messages,
	    json_pack("{s:s, s:o}", "role", "user", "content", content));
	*out = c;
	return 0;
}

void remote_conv_free(struct remote_conv *c)
{
	if (!c)
		return;
	json_decref(c->messages);
	free(c);
}

/* What the assistant said, kept for the next request: its text, and its
 * tool call in the form the server used. */
static int conv_assistant(struct remote_conv *c, const struct ed_response *o,
			  const char *raw_content)
{
	json_t *m = json_pack("{s:s}", "role", "assistant");

	if (!m)
		return ED_ENOMEM;
	if (o->call.id && o->call.name && !o->call.raw) {
		/* a tool call the server parsed */
		json_object_set_new(m, "content",
				    o->content && *o->content
					? json_string(o->content)
					: json_null());
		json_object_set_new(
		    m, "tool_calls",
		    json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id", o->call.id,
			      "type", "function", "function", "name",
			      o->call.name, "arguments",
			      o->call.arguments ? o->call.arguments : "{}"));
	} else {
		json_object_set_new(
		    m, "content", json_string(raw_content ? raw_content : ""));
	}
	return json_array_append_new(c->messages, m) ? ED_ENOMEM : 0;
}

int remote_conv_reply(struct remote_conv *c, const char *call_id,
		      const struct ed_req_part *parts, size_t n)
{
	json_t *content = content_parts(parts, n);
	char id[32];

	if (!content)
		return ED_ENOMEM;
	if (!call_id) {
		snprintf(id, sizeof id, "call_%d", c->calls);
		call_id = id;
	}
	c->calls++;
	return json_array_append_new(c->messages,
				     json_pack("{s:s, s:s, s:o}", "role",
					       "tool", "tool_call_id", call_id,
					       "content", content))
		   ? ED_ENOMEM
		   : 0;
}

static char *request_json(const struct remote *r, const struct remote_conv *c,
			  const struct ed_request *q)
{
	json_t *root = json_object();
	char *s = NULL;

	if (!root)
		return NULL;
	json_object_set_new(root, "model", json_string(r->model_name));
	json_object_set(root, "messages", c->messages);
	json_object_set_new(root, "max_tokens",
			    json_integer(q->gen.max_new_tokens > 0
					     ? q->gen.max_new_tokens
					     : 4096));
	json_object_set_new(root, "temperature", json_real(q->gen.temperature));
	if (q->gen.top_p > 0 && q->gen.top_p < 1)
		json_object_set_new(root, "top_p", json_real(q->gen.top_p));
	if (q->gen.top_k > 0)
		json_object_set_new(root, "top_k", json_integer(q->gen.top_k));
	if (q->gen.seed)
		json_object_set_new(root, "seed",
				    json_integer((json_int_t)q->gen.seed));
	json_object_set_new(root, "stream", json_true());
	json_object_set_new(root, "stream_options",
			    json_pack("{s:b}", "include_usage", 1));
	/* both switches the two Baidu-supported servers read: vLLM and the
	 * templates enable_thinking, FastDeploy's Thinking model
	 * options.thinking_mode (RELEASED.md 1.3, 6.3) */
	json_object_set_new(root, "chat_template_kwargs",
			    json_pack("{s:b,s:{s:s}}", "enable_thinking",
				      q->thinking ? 1 : 0, "options",
				      "thinking_mode",
				      q->thinking ? "open" : "close"));
	if (q->tools) {
		json_t *tool = json_loads(ed_model_zoom_tool_json(), 0, NULL);
		json_object_set_new(root, "tools", json_pack("[o]", tool));
		json_object_set_new(root, "tool_choice", json_string("auto"));
	}
	if (q->schema) {
		/* vLLM's and FastDeploy's structured output; the name as
		 * OpenAI's API allows it: [A-Za-z0-9_-]{1,64} */
		char name[65];
		const char *t = ed_schema_title(q->schema);
		size_t n = 0;
		for (; *t && n < 64; t++)
			name[n++] = (*t >= 'a' && *t <= 'z') ||
					    (*t >= 'A' && *t <= 'Z') ||
					    (*t >= '0' && *t <= '9') ||
					    *t == '-'
					? *t
					: '_';
		name[n] = '\0';
		json_object_set_new(
		    root, "response_format",
		    json_pack("{s:s,s:{s:s,s:o,s:b}}", "type", "json_schema",
			      "json_schema", "name", n ? name : "schema",
			      "schema",
			      json_loads(ed_schema_json(q->schema), 0, NULL),
			      "strict", 1));
	}
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* ---- replies --------------------------------------------------------- */

static int deliver(struct xfer *x, const char *text, bool reasoning)
{
	size_t n = strlen(text);
	struct ed_buf *b = reasoning ? &x->reasoning : &x->content;

	if (!n)
		return 0;
	if (ed_buf_append(b, text, n))
		return -1;
	x->chunks++;
	if (x->req->on_text && x->req->on_text(x->req->ud, 0, text, n)) {
		x->cancelled = true;
		return -1;
	}
	return 0;
}

static void take_usage(struct xfer *x, json_t *u)
{
	json_t *pi = json_object_get(u, "prompt_tokens");
	json_t *co = json_object_get(u, "completion_tokens");

	if (json_is_integer(pi))
		x->usage_in = json_integer_value(pi);
	if (json_is_integer(co))
		x->usage_out = json_integer_value(co);
}

/* A tool call, whole (a message) or in pieces (stream deltas: the id and
 * name come once, the arguments in fragments). Only the first call of a
 * reply is taken. -1 when out of memory. */
static int take_tool_call(struct xfer *x, json_t *tc)
{
	json_t *f = json_object_get(tc, "function"), *v;

	if (!tc)
		return 0;
	if ((v = json_object_get(tc, "index")) && json_integer_value(v) > 0)
		return 0;
	if ((v = json_object_get(tc, "id")) && json_is_string(v) && !x->tc_id &&
	    !(x->tc_id = strdup(json_string_value(v))))
		return -1;
	if ((v = json_object_get(f, "name")) && json_is_string(v) &&
	    !x->tc_name && !(x->tc_name = strdup(json_string_value(v))))
		return -1;
	v = json_object_get(f, "arguments");
	if (json_is_string(v) && ed_buf_puts(&x->tc_args, json_string_value(v)))
		return -1;
	if (json_is_object(v)) { /* some servers send an object */
		char *a = json_dumps(v, JSON_COMPACT);
		int rc = a ? ed_buf_puts(&x->tc_args, a) : -1;
		free(a);
		if (rc)
			return -1;
	}
	return 0;
}

/* One SSE data payload. -1 stops the transfer. */
static int sse_event(struct xfer *x, const char *data)
{
	json_t *j, *ch, *d, *v;
	json_error_t je;
	int rc = 0;

	if (strcmp(data, "[DONE]") == 0) {
		x->sse_done = true;
		return 0;
	}
	j = json_loads(data, 0, &je);
	if (!j) {
		snprintf(x->err, sizeof x->err, "malformed stream event: %s",
			 je.text);
		x->rc = ED_EFORMAT;
		return -1;
	}
	/* vLLM and FastDeploy report a failure after the 200 as an event
	 * {"error": {...}} (or {"object": "error", "message": ...}): a server
	 * fault, retried as a 5xx is */
	if (json_is_object(json_object_get(j, "error")) ||
	    (json_is_string(json_object_get(j, "object")) &&
	     !strcmp(json_string_value(json_object_get(j, "object")),
		     "error"))) {
		json_t *e = json_object_get(j, "error"),
		       *m = json_object_get(e ? e : j, "message");
		snprintf(x->err, sizeof x->err,
			 "server error in the stream: %s",
			 json_is_string(m) ? json_string_value(m) : data);
		x->stream_error = true;
		json_decref(j);
		return -1;
	}
	take_usage(x, json_object_get(j, "usage"));
	ch = json_array_get(json_object_get(j, "choices"), 0);
	d = json_object_get(ch, "delta");
	if ((v = json_object_get(d, "reasoning_content")) && json_is_string(v))
		rc = deliver(x, json_string_value(v), true);
	if (!rc && (v = json_object_get(d, "content")) && json_is_string(v))
		rc = deliver(x, json_string_value(v), false);
	if (!rc && take_tool_call(
		       x, json_array_get(json_object_get(d, "tool_calls"), 0)))
		rc = -1;
	if ((v = json_object_get(ch, "finish_reason")) && json_is_string(v))
		snprintf(x->finish, sizeof x->finish, "%s",
			 json_string_value(v));
	json_decref(j);
	return rc;
}

static int sse_feed(struct xfer *x)
{
	char *p = x->rx.data, *end = p + x->rx.len, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (strncmp(p, "data:", 5) == 0) {
			const char *d = p + 5;
			while (*d == ' ')
				d++;
			if (sse_event(x, d))
				return -1;
		}
		p = nl + 1;
	}
	/* keep the incomplete line */
	memmove(x->rx.data, p, (size_t)(end - p));
	x->rx.len = (size_t)(end - p);
	x->rx.data[x->rx.len] = '\0';
	return 0;
}

/* Reply bytes as they arrive: kept, and a stream's complete lines taken.
 * -1 stops the transfer (x->err says why). */
static int take_bytes(struct xfer *x, const char *ptr, size_t n)
{
	if (ed_buf_append(&x->rx, ptr, n)) {
		snprintf(x->err, sizeof x->err, "reply larger than %u bytes",
			 MAX_REPLY);
		x->rc = ED_EFORMAT;
		return -1;
	}
	return x->sse ? sse_feed(x) : 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	long status = 0;

	if (!x->type_known) {
		char *ct = NULL;
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		x->sse = status == 200 && ct && strstr(ct, "text/event-stream");
		x->type_known = true;
	}
	return take_bytes(x, ptr, n) ? 0 : n;
}

/* A complete non-streamed reply. */
static int parse_json_reply(struct xfer *x)
{
	json_error_t je;
	json_t *j = json_loadb(x->rx.data ? x->rx.data : "", x->rx.len, 0, &je);
	json_t *msg, *v, *ch;

	ch = json_array_get(json_object_get(j, "choices"), 0);
	msg = json_object_get(ch, "message");
	if (!j || !json_is_object(msg)) {
		snprintf(x->err, sizeof x->err, "malformed reply: %s",
			 j ? "no choices[0].message" : je.text);
		json_decref(j);
		return ED_EFORMAT;
	}
	take_usage(x, json_object_get(j, "usage"));
	if ((v = json_object_get(msg, "reasoning_content")) &&
	    json_is_string(v) && deliver(x, json_string_value(v), true) &&
	    !x->cancelled) {
		json_decref(j);
		return ED_ENOMEM;
	}
	if ((v = json_object_get(msg, "content")) && json_is_string(v) &&
	    !x->cancelled && deliver(x, json_string_value(v), false) &&
	    !x->cancelled) {
		json_decref(j);
		return ED_ENOMEM;
	}
	if (take_tool_call(
		x, json_array_get(json_object_get(msg, "tool_calls"), 0))) {
		json_decref(j);
		return ED_ENOMEM;
	}
	if ((v = json_object_get(ch, "finish_reason")) && json_is_string(v))
		snprintf(x->finish, sizeof x->finish, "%s",
			 json_string_value(v));
	json_decref(j);
	return 0;
}

/* ---- transfers ------------------------------------------------------- */

/* what a transfer's reply holds (its body is the caller's) */
static void xfer_release(struct xfer *x)
{
	ed_buf_release(&x->rx);
	ed_buf_release(&x->content);
	ed_buf_release(&x->reasoning);
	ed_buf_release(&x->tc_args);
	free(x->tc_name);
	free(x->tc_id);
}

static void reset_attempt(struct xfer *x)
{
	ed_buf_reset(&x->rx);
	ed_buf_reset(&x->content);
	ed_buf_reset(&x->reasoning);
	ed_buf_reset(&x->tc_args);
	free(x->tc_name);
	free(x->tc_id);
	x->tc_name = x->tc_id = NULL;
	x->sse = x->sse_done = x->type_known = x->stream_error = false;
	x->finish[0] = '\0';
	x->usage_in = x->usage_out = x->chunks = 0;
	x->rc = 0;
	x->err[0] = '\0';
}

/* what every request sets: time limits, the protocols, TLS verified
 * (the defaults, stated so nobody turns them off) against the system's
 * CAs or the bundle given, HTTP/2 wherever TLS offers it (ALPN) */
static void set_common(const struct remote *r, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout_s * 1000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
}

static int start(struct remote *r, struct xfer *x)
{
	CURL *e = curl_easy_init();

	if (!e)
		return -1;
	x->easy = e;
	x->attempt++;
	x->curl_err[0] = '\0';
	x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	x->hdrs = curl_slist_append(x->hdrs, "Accept: text/event-stream, "
					     "application/json");
	if (r->auth)
		x->hdrs = curl_slist_append(x->hdrs, r->auth);
	curl_easy_setopt(e, CURLOPT_URL, r->endpoint);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* several requests share one HTTP/2 connection: wait for it */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	set_common(r, e);
	x->t0 = ed_now_ms();
	if (curl_multi_add_handle(r->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		x->easy = NULL;
		return -1;
	}
	return 0;
}

static void finish_easy(struct remote *r, struct xfer *x)
{
	curl_multi_remove_handle(r->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	x->easy = NULL;
	x->hdrs = NULL;
}

/* Classify a finished attempt; fills x->rc / x->err for final outcomes. */
static enum fail classify(struct xfer *x, CURLcode cc, long *retry_after)
{
	long status = 0;
	curl_off_t ra = -1;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &ra);
	*retry_after = ra > 0 ? (long)ra : 0;
	if (x->cancelled)
		return F_NONE;
	if (x->stream_error && cc == CURLE_WRITE_ERROR)
		return F_TRANSIENT; /* x->err says what the server said */
	if (x->rc && cc == CURLE_WRITE_ERROR)
		return F_FINAL; /* our own parse error, already described */
	switch (cc) {
	case CURLE_OK: break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		snprintf(x->err, sizeof x->err, "cannot reach the server: %s",
			 x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc));
		return F_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		snprintf(x->err, sizeof x->err, "server: %s",
			 x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc));
		return F_TRANSIENT;
	default:
		snprintf(x->err, sizeof x->err, "server: %s",
			 x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc));
		x->rc = ED_EUNAVAIL;
		return F_FINAL;
	}
	if (status == 429 || status >= 500) {
		snprintf(x->err, sizeof x->err,
			 "server answered HTTP %ld: %.200s", status,
			 x->rx.data ? x->rx.data : "");
		return F_TRANSIENT;
	}
	if (status != 200) {
		snprintf(x->err, sizeof x->err,
			 "server refused the request (HTTP "
			 "%ld): %.300s",
			 status, x->rx.data ? x->rx.data : "");
		x->rc = ED_EINVAL;
		return F_FINAL;
	}
	if (x->sse) {
		if (x->rx.len && sse_feed(x))
			return x->rc ? F_FINAL : F_NONE;
		if (!x->sse_done && !x->finish[0]) {
			snprintf(x->err, sizeof x->err,
				 "the reply stream ended early");
			return F_TRANSIENT;
		}
		return F_NONE;
	}
	if ((x->rc = parse_json_reply(x)))
		return F_FINAL;
	return F_NONE;
}

/* The reply taken into x->resp (when the transfer succeeded). */
static void take_result(struct xfer *x)
{
	struct ed_response *o = x->resp;

	if (!x->rc) {
		char *reasoning = NULL, *content = NULL;
		ed_buf_reserve(&x->content, 0);
		if (!x->reasoning.len && x->req->thinking &&
		    strstr(x->content.data, "</think>")) {
			/* a server without a reasoning parser: split here */
			x->rc = ed_split_thinking(x->content.data, &reasoning,
						  &content);
		} else {
			content = strdup(x->content.data);
			if (x->reasoning.len) {
				ed_buf_reserve(&x->reasoning, 0);
				reasoning = strdup(x->reasoning.data);
			}
			if (!content)
				x->rc = ED_ENOMEM;
		}
		o->content = content;
		o->reasoning = reasoning;
		if (!x->rc && x->tc_name) {
			/* the server parsed a call */
			ed_buf_reserve(&x->tc_args, 0);
			o->call.name = x->tc_name;
			o->call.id = x->tc_id;
			o->call.arguments = strdup(x->tc_args.data);
			x->tc_name = x->tc_id = NULL;
			if (!o->call.arguments)
				x->rc = ED_ENOMEM;
		}
		snprintf(o->finish_reason, sizeof o->finish_reason, "%s",
			 o->call.name	? "tool_calls"
			 : x->cancelled ? "callback"
			 : x->finish[0] ? x->finish
					: "stop");
		o->tokens_in = x->usage_in;
		o->tokens_out = x->usage_out ? x->usage_out : x->chunks;
		o->attempts = x->attempt;
		o->ms_total = ed_now_ms() - x->t0;
		o->ms_decode = o->ms_total;
	}
}

static void complete(struct remote *r, struct xfer *x)
{
	take_result(x);
	pthread_mutex_lock(&r->mu);
	x->done = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void abort_xfer(struct remote *r, struct xfer *x)
{
	x->rc = ED_EINTR;
	snprintf(x->err, sizeof x->err, "interrupted");
	complete(r, x);
}

static void *io_thread(void *arg)
{
	struct remote *r = arg;
	struct xfer *waiting = NULL, *active = NULL;

	for (;;) {
		CURLMsg *m;
		int left, running;
		double now, next = 1000;
		bool cancel, quit;

		pthread_mutex_lock(&r->mu);
		while (
		    r->queue) { /* new submissions wait for their start time */
			struct xfer *x = r->queue;
			r->queue = x->next;
			x->next = waiting;
			waiting = x;
		}
		quit = r->quit;
		cancel = r->cancel || quit;
		if (quit && !waiting && !active) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		pthread_mutex_unlock(&r->mu);
		if (cancel) { /* everything in flight ends now */
			while (active) {
				struct xfer *x = active;
				active = x->anext;
				finish_easy(r, x);
				abort_xfer(r, x);
			}
			while (waiting) {
				struct xfer *x = waiting;
				waiting = x->next;
				abort_xfer(r, x);
			}
			if (quit)
				continue;
		}
		now = ed_now_ms();
		for (struct xfer **pp = &waiting; *pp;) {
			struct xfer *x = *pp;
			if (x->next_at > now) {
				next = ED_MIN(next, x->next_at - now);
				pp = &x->next;
				continue;
			}
			*pp = x->next;
			reset_attempt(x);
			if (start(r, x)) {
				x->rc = ED_ENOMEM;
				snprintf(x->err, sizeof x->err,
					 "cannot start a transfer");
				complete(r, x);
				continue;
			}
			x->anext = active;
			active = x;
		}
		curl_multi_perform(r->multi, &running);
		while ((m = curl_multi_info_read(r->multi, &left))) {
			struct xfer *x;
			long retry_after;
			enum fail f;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&x);
			f = classify(x, m->data.result, &retry_after);
			finish_easy(r, x);
			for (struct xfer **pp = &active; *pp;
			     pp = &(*pp)->anext)
				if (*pp == x) {
					*pp = x->anext;
					break;
				}
			if ((f == F_CONNECT || f == F_TRANSIENT) &&
			    x->attempt <= r->retries) {
				double wait =
				    r->retry_wait_s * 1000 *
				    (double)(1u << ED_MIN(x->attempt - 1, 10)) *
				    jitter(r);
				if (retry_after > 0)
					wait =
					    ED_MAX(wait, retry_after * 1000.0);
				wait = ED_MIN(wait, 120000.0);
				x->last_fail = f;
				x->next_at = ed_now_ms() + wait;
				if (x->req->on_text)
					x->req->on_text(x->req->ud,
							ED_TOKEN_RESET, NULL,
							0);
				x->next = waiting;
				waiting = x;
				next = ED_MIN(next, wait);
				continue;
			}
			if (f == F_CONNECT)
				x->rc = ED_EUNAVAIL;
			else if (f == F_TRANSIENT)
				x->rc = ED_EAGAIN;
			if (x->rc && f != F_FINAL)
				ed_err_prefix(x->err, sizeof x->err,
					      "after %d attempt%s", x->attempt,
					      x->attempt == 1 ? "" : "s");
			complete(r, x);
		}
		curl_multi_poll(r->multi, NULL, 0,
				(int)ED_MAX(1.0, ED_MIN(next, 1000.0)), NULL);
	}
}

void remote_cancel(struct remote *r)
{
	pthread_mutex_lock(&r->mu);
	r->cancel = true;
	pthread_mutex_unlock(&r->mu);
	curl_multi_wakeup(r->multi);
}

/* ---- the model name ---------------------------------------------------- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return ed_buf_append(ud, ptr, size * nmemb) ? 0 : size * nmemb;
}

/* GET /models once (with the same retry policy on connect errors) and
 * take the first model id. */
static int discover_model(struct remote *r, char *err, size_t errlen)
{
	struct ed_buf b;
	int rc = 0;

	ed_buf_init(&b, 1 << 20);
	for (int attempt = 0;; attempt++) {
		CURL *e = curl_easy_init();
		struct curl_slist *h =
		    r->auth ? curl_slist_append(NULL, r->auth) : NULL;
		char cerr[CURL_ERROR_SIZE] = "";
		CURLcode cc;
		long status = 0;

		if (!e)
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		ed_buf_reset(&b);
		curl_easy_setopt(e, CURLOPT_URL, r->models_url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
		set_common(r, e);
		cc = curl_easy_perform(e);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		if (cc == CURLE_OK && status == 200) {
			json_error_t je;
			json_t *j =
			    json_loadb(b.data ? b.data : "", b.len, 0, &je);
			const char *id = json_string_value(json_object_get(
			    json_array_get(json_object_get(j, "data"), 0),
			    "id"));
			if (id)
				r->model_name = strdup(id);
			json_decref(j);
			rc = id ? 0
				: ed_err(
				      err, errlen, ED_ECONFIG,
				      "'%s' lists no model; give --model-name",
				      r->models_url);
			break;
		}
		if ((cc == CURLE_OK && status != 429 && status < 500) ||
		    attempt >= r->retries) {
			/* a server that answers but lists no models needs
			 * the name from the user: configuration */
			rc = cc == CURLE_OK
				 ? ed_err(err, errlen,
					  status == 429 || status >= 500
					      ? ED_EUNAVAIL
					      : ED_ECONFIG,
					  "'%s' answered HTTP %ld; give "
					  "--model-name",
					  r->models_url, status)
				 : ed_err(err, errlen, ED_EUNAVAIL,
					  "cannot reach the server at '%s': %s",
					  r->models_url,
					  cerr[0] ? cerr
						  : curl_easy_strerror(cc));
			break;
		}
		{
			struct timespec ts;
			double w = r->retry_wait_s *
				   (double)(1u << ED_MIN(attempt, 10)) *
				   jitter(r);
			ts.tv_sec = (time_t)w;
			ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);
		}
	}
	ed_buf_release(&b);
	return rc;
}

/* ---- the backend ------------------------------------------------------- */

int remote_open(struct remote **out, const struct ed_backend_opts *o, char *err,
		size_t errlen)
{
	struct remote *r = calloc(1, sizeof *r);
	size_t n;
	char *base;
	int rc;

	*out = NULL;
	if (!r)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->jobs = o->jobs > 0 ? o->jobs : 1;
	r->timeout_s = o->timeout_s > 0 ? o->timeout_s : 600;
	r->retries = o->retries >= 0 ? o->retries : 4;
	r->retry_wait_s = o->retry_wait_s > 0 ? o->retry_wait_s : 0.5;
	r->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)r;
	if (strncmp(o->server_url, "http://", 7) &&
	    strncmp(o->server_url, "https://", 8)) {
		remote_close(r);
		return ed_err(err, errlen, ED_ECONFIG,
			      "--server '%s' is not an http:// or https:// URL",
			      o->server_url);
	}
	/* http://h:8000, .../v1 or .../v1/chat/completions */
	base = strdup(o->server_url);
	if (!base) {
		remote_close(r);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	n = strlen(base);
	while (n && base[n - 1] == '/')
		base[--n] = '\0';
	if (n >= 17 && strcmp(base + n - 17, "/chat/completions") == 0)
		base[n -= 17] = '\0';
	n = strlen(base);
	r->endpoint = malloc(n + 32);
	r->models_url = malloc(n + 32);
	if (!r->endpoint || !r->models_url) {
		free(base);
		remote_close(r);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	snprintf(r->endpoint, n + 32, "%s%s/chat/completions", base,
		 n >= 3 && strcmp(base + n - 3, "/v1") == 0 ? "" : "/v1");
	snprintf(r->models_url, n + 32, "%s%s/models", base,
		 n >= 3 && strcmp(base + n - 3, "/v1") == 0 ? "" : "/v1");
	free(base);
	if (o->api_key && *o->api_key) {
		size_t al = strlen(o->api_key) + 32;
		r->auth = malloc(al);
		if (r->auth)
			snprintf(r->auth, al, "Authorization: Bearer %s",
				 o->api_key);
	}
	if (o->ca_file && *o->ca_file && !(r->ca_file = strdup(o->ca_file))) {
		remote_close(r);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	if (o->model_name && *o->model_name)
		r->model_name = strdup(o->model_name);
	else if ((rc = discover_model(r, err, errlen))) {
		remote_close(r);
		return rc;
	}
	r->multi = curl_multi_init();
	if (!r->model_name || !r->multi) {
		remote_close(r);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)r->jobs);
	curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)r->jobs + 4);
	if (pthread_create(&r->th, NULL, io_thread, r)) {
		remote_close(r);
		return ed_err(err, errlen, ED_ENOMEM,
			      "cannot start the I/O thread");
	}
	r->started = true;
	*out = r;
	return 0;
}

void remote_close(struct remote *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->quit = true;
		pthread_mutex_unlock(&r->mu);
		curl_multi_wakeup(r->multi);
		pthread_join(r->th, NULL);
	}
	if (r->multi)
		curl_multi_cleanup(r->multi);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->endpoint);
	free(r->models_url);
	free(r->model_name);
	free(r->auth);
	free(r->ca_file);
	free(r);
}

const char *remote_model_name(const struct remote *r)
{
	return r->model_name;
}

/* A server without a tool parser leaves the call in the text: take it
 * from there, the answer being what came before. */
static int text_tool_call(const struct ed_request *req, struct ed_response *out,
			  char *err, size_t errlen)
{
	size_t at = 0;
	struct ed_tool_call tc;
	int k;

	if (!req->tools || out->call.name || out->call.raw || !out->content)
		return 0;
	k = ed_model_parse_tool_call(out->content, &tc, &at);
	if (k < 0)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	if (k == 1) {
		out->call = tc;
		out->content[at] = '\0';
		snprintf(out->finish_reason, sizeof out->finish_reason,
			 "tool_calls");
	}
	return 0;
}

int remote_parse_reply(const void *data, size_t len, bool stream, size_t chunk,
		       const struct ed_request *req, struct ed_response *out,
		       char *err, size_t errlen)
{
	struct xfer x;
	int rc = 0;

	memset(&x, 0, sizeof x);
	memset(out, 0, sizeof *out);
	x.req = req;
	x.resp = out;
	x.sse = stream;
	x.type_known = true;
	x.t0 = ed_now_ms();
	ed_buf_init(&x.rx, MAX_REPLY);
	ed_buf_init(&x.content, MAX_REPLY);
	ed_buf_init(&x.reasoning, MAX_REPLY);
	ed_buf_init(&x.tc_args, 1 << 20);
	if (!chunk)
		chunk = len ? len : 1;
	for (size_t at = 0; at < len && !rc; at += chunk) {
		size_t n = len - at < chunk ? len - at : chunk;
		if (take_bytes(&x, (const char *)data + at, n))
			rc = x.stream_error ? ED_EAGAIN
			     : x.rc	    ? x.rc
					    : ED_ENOMEM;
	}
	if (!rc && stream && !x.sse_done && !x.finish[0]) {
		snprintf(x.err, sizeof x.err, "the reply stream ended early");
		rc = ED_EAGAIN;
	}
	if (!rc && !stream)
		rc = parse_json_reply(&x);
	x.rc = rc;
	if (!rc) {
		take_result(&x);
		rc = x.rc;
	}
	if (rc) {
		ed_err(err, errlen, rc, "%s",
		       x.err[0] ? x.err : ed_strerror(rc));
		ed_response_release(out);
	} else if ((rc = text_tool_call(req, out, err, errlen)))
		ed_response_release(out);
	xfer_release(&x);
	return rc;
}

int remote_conv_run(struct remote *r, struct remote_conv *c,
		    const struct ed_request *req, struct ed_response *out,
		    char *err, size_t errlen)
{
	struct xfer x;
	int rc;

	memset(&x, 0, sizeof x);
	memset(out, 0, sizeof *out);
	x.req = req;
	x.resp = out;
	x.body = request_json(r, c, req);
	if (!x.body)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&x.rx, MAX_REPLY);
	ed_buf_init(&x.content, MAX_REPLY);
	ed_buf_init(&x.reasoning, MAX_REPLY);
	ed_buf_init(&x.tc_args, 1 << 20);
	pthread_mutex_lock(&r->mu);
	if (r->quit || r->cancel) {
		pthread_mutex_unlock(&r->mu);
		rc = ed_err(err, errlen, ED_EINTR, "interrupted");
		goto out;
	}
	x.next = r->queue;
	r->queue = &x;
	pthread_mutex_unlock(&r->mu);
	curl_multi_wakeup(r->multi);
	pthread_mutex_lock(&r->mu);
	while (!x.done)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	rc = x.rc;
	if (rc) {
		ed_err(err, errlen, rc, "%s",
		       x.err[0] ? x.err : ed_strerror(rc));
		ed_response_release(out);
		goto out;
	}
	if ((rc = text_tool_call(req, out, err, errlen))) {
		ed_response_release(out);
		goto out;
	}
	if (conv_assistant(c, out, x.content.data)) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		ed_response_release(out);
	}
out:
	free(x.body);
	xfer_release(&x);
	return rc;
}
