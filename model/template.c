/*
 * template.c - prompts: the chat template that renders a conversation
 * (the checkpoint's own, or ours, model/templates/), its tokens with each
 * image expanded to its placeholders, the vision-expert mask and the 3-D
 * positions; the zoom tool's declaration and its calls.
 *
 * The conversation is OpenAI's shape (role, content as text or parts,
 * tool_calls, tool results), rendered by model/jinja.c as transformers'
 * apply_chat_template would. A tool result continues the prompt the
 * cache already holds: the template renders the conversation with a
 * placeholder assistant turn, with and without the tool result, and
 * the difference, after the text that closes an assistant turn, is what
 * is fed (llama.cpp's way of rendering one message on).
 */
#include "model_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define T_IMG_START "<|IMAGE_START|>"
#define T_IMG_PH    "<|IMAGE_PLACEHOLDER|>"
#define T_IMG_END   "<|IMAGE_END|>"
#define T_IMG_VLLM  "<|image@placeholder|>" /* vLLM's name for it */
#define T_CALL	    "<tool_call>"
#define T_CALL_END  "</tool_call>"
/* stands for the generated text of an assistant turn */
#define SENTINEL "\x01ernie-doc:generated\x01"

/* The zoom tool as FastDeploy declares it for ERNIE-4.5-VL-Thinking
 * (RELEASED.md section 4), word for word: the model learned it so. */
static const char zoom_tool_json[] =
    "{\"type\": \"function\", \"function\": {\"name\": \"" ED_ZOOM_TOOL "\", "
    "\"description\": \"Zoom in on a specific region of an image by "
    "cropping it based on a bounding box (bbox) and an optional object "
    "label.\", \"parameters\": {\"type\": \"object\", \"properties\": "
    "{\"bbox_2d\": {\"type\": \"array\", \"items\": {\"type\": "
    "\"number\"}, \"minItems\": 4, \"maxItems\": 4, \"description\": "
    "\"The bounding box of the region to zoom in, as [x1, y1, x2, y2], "
    "where (x1, y1) is the top-left corner and (x2, y2) is the "
    "bottom-right corner, and the values of x1, y1, x2, y2 are all "
    "normalized to the range 0\xe2\x80\x93"
    "1000 based on the original image dimensions.\"}, \"label\": "
    "{\"type\": \"string\", \"description\": \"The name or label of the "
    "object in the specified bounding box (optional).\"}}, \"required\": "
    "[\"bbox_2d\"]}, \"strict\": false}}";

const char *ed_model_zoom_tool_json(void)
{
	return zoom_tool_json;
}

/* ---- which template ------------------------------------------------ */

/* The built-in template of a model: the text models' one (transformers'
 * Ernie4_5 default), or the VL PT or Thinking one by variant. */
static const char *builtin_text(const struct ed_model *m)
{
	if (!m->cfg.has_vision)
		return ed_template_ernie_4_5_text;
	return m->variant == ED_VARIANT_THINKING
		   ? ed_template_ernie_4_5_vl_thinking
		   : ed_template_ernie_4_5_vl_pt;
}

static void builtin_origin(const struct ed_model *m, char *o, size_t n)
{
	if (!m->cfg.has_vision)
		snprintf(o, n, "built-in ERNIE-4.5 text");
	else
		snprintf(o, n, "built-in ERNIE-4.5-VL %s",
			 m->variant == ED_VARIANT_THINKING ? "Thinking" : "PT");
}

static bool has_word_ci(const char *s, const char *w)
{
	size_t n = strlen(w);

	for (; s && *s; s++)
		if (strncasecmp(s, w, n) == 0)
			return true;
	return false;
}

static int use_template(struct ed_model *m, char *text, const char *origin,
			char *err, size_t errlen)
{
	const char *src = text ? text : builtin_text(m);
	struct ed_jinja *j;
	int rc = ed_jinja_parse(src, strlen(src), &j, err, errlen);

	if (rc) {
		free(text);
		return rc;
	}
	ed_jinja_free(m->jinja);
	free(m->chat_template);
	m->jinja = j;
	m->chat_template = text;
	snprintf(m->template_origin, sizeof m->template_origin, "%s", origin);
	return 0;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* tokenizer_config.json's chat_template: a string, or a list of
 * {name, template} of which "default" (else the first) */
static char *template_of(json_t *v)
{
	size_t i;
	json_t *e, *pick = NULL;

	if (json_is_string(v))
		return dupn(json_string_value(v), json_string_length(v));
	json_array_foreach(v, i, e)
	{
		const char *n = json_string_value(json_object_get(e, "name"));
		if (!pick || (n && strcmp(n, "default") == 0))
			pick = json_object_get(e, "template");
		if (n && strcmp(n, "default") == 0)
			break;
	}
	return json_is_string(pick)
		   ? dupn(json_string_value(pick), json_string_length(pick))
		   : NULL;
}

int ed_model_template_init(struct ed_model *m, const char *dir, char *err,
			   size_t errlen)
{
	char *text = NULL, origin[160] = "";

	snprintf(m->name, sizeof m->name, "%s", m->cfg.name);

	if (m->gguf) {
		size_t n, cn;
		const unsigned char *s =
		    ed_gguf_string(m->gguf, "tokenizer.chat_template", &n);
		const unsigned char *c = ed_gguf_string(
		    m->gguf, "ernie_doc.tokenizer.tokenizer_config", &cn);
		if (s) {
			text = dupn((const char *)s, n);
			snprintf(origin, sizeof origin,
				 "the checkpoint's own (GGUF "
				 "tokenizer.chat_template)");
		} else if (c) {
			json_t *j = json_loadb((const char *)c, cn, 0, NULL);
			text = template_of(json_object_get(j, "chat_template"));
			json_decref(j);
			if (text)
				snprintf(origin, sizeof origin,
					 "the checkpoint's own (its "
					 "tokenizer_config.json)");
		}
		if ((s = ed_gguf_string(m->gguf, "general.name", &n)) &&
		    !m->name[0])
			snprintf(m->name, sizeof m->name, "%.*s", (int)n, s);
	} else {
		static const char *const files[] = {"chat_template.jinja",
						    "chat_template.json",
						    "tokenizer_config.json"};
		for (int i = 0; i < 3 && !text; i++) {
			char path[4200];
			size_t n;
			char *t;
			snprintf(path, sizeof path, "%s/%s", dir, files[i]);
			if (!(t = ed_model_read_file(path, 16u << 20, &n)))
				continue;
			if (i == 0) {
				text = t;
			} else {
				json_t *j = json_loads(t, 0, NULL);
				free(t);
				text = template_of(
				    json_object_get(j, "chat_template"));
				json_decref(j);
			}
			if (text)
				snprintf(origin, sizeof origin,
					 "the checkpoint's own (%s)", files[i]);
		}
	}
	/* the variant: the template's own words, else the names */
	m->variant = ED_VARIANT_PT;
	snprintf(m->variant_why, sizeof m->variant_why,
		 "nothing names it -Thinking");
	if (text && (strstr(text, "PaddlePaddle framework") ||
		     strstr(text, "thinking_mode"))) {
		m->variant = ED_VARIANT_THINKING;
		snprintf(m->variant_why, sizeof m->variant_why,
			 "its chat template");
	} else if (text && strstr(text, "<|begin_of_sentence|>")) {
		snprintf(m->variant_why, sizeof m->variant_why,
			 "its chat template");
	} else if (has_word_ci(m->name, "thinking")) {
		m->variant = ED_VARIANT_THINKING;
		snprintf(m->variant_why, sizeof m->variant_why,
			 "its name '%.150s'", m->name);
	} else if (has_word_ci(dir, "thinking")) {
		m->variant = ED_VARIANT_THINKING;
		snprintf(m->variant_why, sizeof m->variant_why,
			 "the path '%.150s'", dir);
	}
	if (!text)
		builtin_origin(m, origin, sizeof origin);
	if (use_template(m, text, origin, err, errlen)) {
		ed_err_prefix(err, errlen, "%s", origin);
		return ED_ECONFIG;
	}
	return 0;
}

void ed_model_template_release(struct ed_model *m)
{
	ed_jinja_free(m->jinja);
	free(m->chat_template);
	m->jinja = NULL;
	m->chat_template = NULL;
}

int ed_model_set_chat_template(struct ed_model *m, const char *text, size_t len,
			       const char *origin, char *err, size_t errlen)
{
	char *t = dupn(text, len);

	if (!t)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	return use_template(m, t, origin, err, errlen);
}

int ed_model_load_chat_template(struct ed_model *m, const char *path, char *err,
				size_t errlen)
{
	size_t n;
	char *t = ed_model_read_file(path, 16u << 20, &n);

	if (!t)
		return ed_err(err, errlen,
			      errno == EFBIG ? ED_ETOOBIG : ED_ENOENT,
			      "cannot read the chat template '%s': %s", path,
			      errno == EFBIG ? "over 16 MiB" : strerror(errno));
	return use_template(m, t, path, err, errlen);
}

int ed_model_set_variant(struct ed_model *m, enum ed_variant v, char *err,
			 size_t errlen)
{
	char origin[64];

	m->variant = v;
	snprintf(m->variant_why, sizeof m->variant_why, "--template");
	builtin_origin(m, origin, sizeof origin);
	return use_template(m, NULL, origin, err, errlen);
}

int ed_model_variant_parse(const char *s)
{
	if (s && strcmp(s, "pt") == 0)
		return ED_VARIANT_PT;
	if (s && strcmp(s, "thinking") == 0)
		return ED_VARIANT_THINKING;
	return -1;
}

void ed_model_get_template(const struct ed_model *m, struct ed_template_info *t)
{
	t->origin = m->template_origin;
	t->variant = m->variant == ED_VARIANT_THINKING ? "Thinking" : "PT";
	t->why = m->variant_why;
	t->text = m->chat_template ? m->chat_template : builtin_text(m);
}

/* ---- rendering ----------------------------------------------------- */

static int render_json(const struct ed_model *m, json_t *messages,
		       json_t *tools, int thinking, bool add_gen,
		       struct ed_buf *out, char *err, size_t errlen)
{
	json_t *v = json_object();
	const char *bos =
	    m->tok && m->ids.bos >= 0 ? ed_tok_piece(m->tok, m->ids.bos) : NULL;
	const char *eos =
	    m->tok && m->ids.eos >= 0 ? ed_tok_piece(m->tok, m->ids.eos) : NULL;
	int rc;

	if (!v || !m->jinja) {
		json_decref(v);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	json_object_set(v, "messages", messages);
	if (tools)
		json_object_set(v, "tools", tools);
	json_object_set_new(v, "add_generation_prompt", json_boolean(add_gen));
	if (thinking >= 0)
		json_object_set_new(v, "enable_thinking",
				    json_boolean(thinking));
	json_object_set_new(v, "bos_token", json_string(bos ? bos : "<s>"));
	json_object_set_new(v, "eos_token", json_string(eos ? eos : "</s>"));
	rc = ed_jinja_render(m->jinja, v, out, err, errlen);
	json_decref(v);
	return rc;
}

int ed_model_render_messages(const struct ed_model *m, const char *messages,
			     const char *tools, int thinking,
			     struct ed_buf *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *msgs = json_loads(messages, 0, &je), *tl = NULL;
	int rc;

	if (!json_is_array(msgs)) {
		json_decref(msgs);
		return ed_err(err, errlen, ED_EINVAL, "messages: %s",
			      msgs ? "not a JSON array" : je.text);
	}
	if (tools)
		tl = json_loads(tools, 0, &je); /* json_is_array is a macro */
	if (tools && !json_is_array(tl)) {
		json_decref(msgs);
		json_decref(tl);
		return ed_err(err, errlen, ED_EINVAL, "tools: %s",
			      tl ? "not a JSON array" : je.text);
	}
	rc = render_json(m, msgs, tl, thinking, true, out, err, errlen);
	json_decref(msgs);
	json_decref(tl);
	return rc;
}

/* The conversation of an ed_chat: {"messages", "tools", "thinking"} */
static json_t *chat_state(const struct ed_model *m, const struct ed_chat *ch)
{
	json_t *st = json_object(), *msgs = json_array(), *parts = json_array();
	json_t *user = json_object();
	bool text_only = !m->cfg.has_vision;

	if (ch->system)
		json_array_append_new(msgs,
				      json_pack("{s:s,s:s}", "role", "system",
						"content", ch->system));
	for (size_t i = 0; i < ch->n_parts; i++)
		json_array_append_new(
		    parts, ch->parts[i].text
			       ? json_pack("{s:s,s:s}", "type", "text", "text",
					   ch->parts[i].text)
			       : json_pack("{s:s}", "type", "image"));
	json_object_set_new(user, "role", json_string("user"));
	if (text_only) {
		/* a text model's template takes content as a string */
		struct ed_buf b;
		ed_buf_init(&b, 0);
		for (size_t i = 0; i < ch->n_parts; i++)
			if (ch->parts[i].text)
				ed_buf_puts(&b, ch->parts[i].text);
		json_decref(parts);
		parts = json_string(b.data ? b.data : "");
		ed_buf_release(&b);
	}
	json_object_set_new(user, "content", parts);
	json_array_append_new(msgs, user);
	json_object_set_new(st, "messages", msgs);
	if (ch->tools) {
		json_t *tl = json_array();
		json_array_append_new(tl, json_loads(zoom_tool_json, 0, NULL));
		json_object_set_new(st, "tools", tl);
	}
	json_object_set_new(st, "thinking", json_boolean(ch->thinking));
	return st;
}

static int render_state(const struct ed_model *m, json_t *st, bool add_gen,
			struct ed_buf *out, char *err, size_t errlen)
{
	return render_json(m, json_object_get(st, "messages"),
			   json_object_get(st, "tools"),
			   json_is_true(json_object_get(st, "thinking")),
			   add_gen, out, err, errlen);
}

char *ed_model_chat_text(const struct ed_model *m, const struct ed_chat *c)
{
	struct ed_buf b;
	json_t *st = chat_state(m, c);
	char err[256];

	ed_buf_init(&b, 0);
	if (!st || render_state(m, st, true, &b, err, sizeof err) ||
	    (c->assistant_prefix && ed_buf_puts(&b, c->assistant_prefix))) {
		json_decref(st);
		ed_buf_release(&b);
		return NULL;
	}
	json_decref(st);
	return ed_buf_detach(&b, NULL);
}

/* vLLM-style templates write <|image@placeholder|>: ours is one token */
static int normalize_placeholders(const char *text, size_t len,
				  struct ed_buf *o)
{
	size_t vl = strlen(T_IMG_VLLM);
	int rc = 0;

	for (size_t i = 0; i < len;) {
		if (len - i >= vl && memcmp(text + i, T_IMG_VLLM, vl) == 0) {
			rc |= ed_buf_puts(o, T_IMG_PH);
			i += vl;
		} else {
			rc |= ed_buf_putc(o, text[i++]);
		}
	}
	return rc ? ED_ENOMEM : 0;
}

int ed_model_encode_prompt(const struct ed_model *m, const char *text,
			   size_t len, int32_t **ids, size_t *n,
			   size_t *n_images, char *err, size_t errlen)
{
	const struct ed_model_ids *d = &m->ids;
	struct ed_buf b;
	size_t starts = 0, ends = 0, runs = 0;
	int rc;

	*ids = NULL;
	*n = 0;
	if (!m->tok)
		return ed_err(err, errlen, ED_ECONFIG,
			      "the model directory has no tokenizer.model");
	ed_buf_init(&b, 0);
	if ((rc = normalize_placeholders(text, len, &b)) ||
	    (rc = ed_tok_encode(m->tok, b.data ? b.data : "", b.len, ids, n))) {
		ed_buf_release(&b);
		free(*ids);
		*ids = NULL;
		*n = 0;
		return ed_err(err, errlen, rc, "tokenizing the prompt: %s",
			      ed_strerror(rc));
	}
	ed_buf_release(&b);
	/* each image: <|IMAGE_START|>, placeholders, <|IMAGE_END|> */
	{
		bool bad = false, in = false;
		for (size_t i = 0; i < *n && d->image >= 0; i++) {
			int32_t t = (*ids)[i], prev = i ? (*ids)[i - 1] : -1;
			if (t == d->image && !in) {
				runs++;
				in = true;
				bad |= prev != d->image_start;
			} else if (t != d->image && in) {
				in = false;
				bad |= t != d->image_end;
			}
			starts += t == d->image_start;
			ends += t == d->image_end;
		}
		bad |= in || starts != runs || ends != runs;
		if (bad || (n_images && *n_images != (size_t)-1 &&
			    runs != *n_images)) {
			free(*ids);
			*ids = NULL;
			*n = 0;
			return ed_err(
			    err, errlen, ED_EINVAL,
			    "the prompt's image tokens are not one "
			    "<|IMAGE_START|>, placeholder, <|IMAGE_END|> for "
			    "each of its %zu images (the chat template or the "
			    "tokenizer does not give them as tokens)",
			    n_images && *n_images != (size_t)-1 ? *n_images
								: runs);
		}
	}
	if (n_images)
		*n_images = runs;
	return 0;
}

/* ids with each image's placeholder repeated to its token count */
static int expand_images(const struct ed_model *m, const int32_t *ids, size_t n,
			 const struct ed_image_in *imgs, size_t nimg,
			 const int32_t *prefix, size_t np, int32_t **out,
			 size_t *nout)
{
	size_t total = np, k = 0;
	int32_t *f;

	for (size_t i = 0; i < n; i++)
		total += ids[i] == m->ids.image && k < nimg
			     ? (size_t)ed_image_tokens(&m->cfg, &imgs[k++])
			     : 1;
	if (!(f = malloc((total ? total : 1) * sizeof *f)))
		return ED_ENOMEM;
	if (np)
		memcpy(f, prefix, np * sizeof *f);
	total = np;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == m->ids.image && k < nimg) {
			int64_t e = ed_image_tokens(&m->cfg, &imgs[k++]);
			for (int64_t j = 0; j < e; j++)
				f[total++] = ids[i];
		} else {
			f[total++] = ids[i];
		}
	}
	*out = f;
	*nout = total;
	return 0;
}

/* Image tokens the language model sees for one image. */
int64_t ed_image_tokens(const struct ed_config *c, const struct ed_image_in *im)
{
	int64_t t = im->grid_t > 1 ? im->grid_t / c->temporal_merge : 1;
	return t * (im->grid_h / c->merge) * (im->grid_w / c->merge);
}

void ed_model_prompt_release(struct ed_prompt *p)
{
	if (!p)
		return;
	free(p->ids);
	free(p->mm);
	free(p->vision);
	free(p->pos);
	free(p->images);
	json_decref(p->chat);
	memset(p, 0, sizeof *p);
}

int ed_model_prompt_ids(const struct ed_model *m, const int32_t *ids, size_t n,
			const struct ed_image_in *images, size_t n_images,
			struct ed_prompt *p, char *err, size_t errlen)
{
	const struct ed_config *c = &m->cfg;
	const struct ed_model_ids *d = &m->ids;
	size_t img = 0, i = 0;
	int64_t pos = 0, mx = -1;

	memset(p, 0, sizeof *p);
	if (n == 0)
		return ed_err(err, errlen, ED_EINVAL, "empty prompt");
	p->ids = malloc(n * sizeof *p->ids);
	p->mm = calloc(n, 1);
	p->vision = calloc(n, 1);
	p->pos = malloc(3 * n * sizeof *p->pos);
	p->images = n_images ? malloc(n_images * sizeof *p->images) : NULL;
	if (!p->ids || !p->mm || !p->vision || !p->pos ||
	    (n_images && !p->images)) {
		ed_model_prompt_release(p);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	memcpy(p->ids, ids, n * sizeof *ids);
	if (n_images)
		memcpy(p->images, images, n_images * sizeof *images);
	p->n = n;
	p->n_images = n_images;
	for (size_t k = 0; k < n; k++) {
		int32_t t = ids[k];
		if (t < 0 || t >= c->vocab) {
			ed_model_prompt_release(p);
			return ed_err(err, errlen, ED_EINVAL,
				      "token id %d out of the vocabulary (%d)",
				      t, c->vocab);
		}
		p->mm[k] = c->has_vision && t == d->image;
		p->vision[k] =
		    p->mm[k] || (c->has_vision &&
				 (t == d->image_start || t == d->image_end ||
				  t == d->video_start || t == d->video_end));
	}
	/* positions: text (p, p, p); an image's cell (r, c) at (s, s+r, s+c),
	 * then p = s + max(rows, cols) */
	while (i < n) {
		if (!p->mm[i]) {
			p->pos[i] = p->pos[n + i] = p->pos[2 * n + i] =
			    (int32_t)pos;
			pos++;
			i++;
			continue;
		}
		if (img >= n_images) {
			ed_model_prompt_release(p);
			return ed_err(
			    err, errlen, ED_EINVAL,
			    "more image placeholders than images (%zu)",
			    n_images);
		}
		{
			const struct ed_image_in *im = &images[img++];
			int64_t mh = im->grid_h / c->merge,
				mw = im->grid_w / c->merge;
			int64_t need = ed_image_tokens(c, im), s0 = pos;
			if (im->grid_h % c->merge || im->grid_w % c->merge ||
			    i + (size_t)need > n) {
				ed_model_prompt_release(p);
				return ed_err(
				    err, errlen, ED_EINVAL,
				    "image %zu: grid %dx%d needs %lld "
				    "placeholders",
				    img, im->grid_h, im->grid_w,
				    (long long)need);
			}
			for (int64_t k = 0; k < need; k++, i++) {
				int64_t cell = k % (mh * mw),
					tt = k / (mh * mw);
				if (!p->mm[i]) {
					ed_model_prompt_release(p);
					return ed_err(
					    err, errlen, ED_EINVAL,
					    "image %zu has %lld "
					    "placeholders, expected %lld",
					    img, (long long)k, (long long)need);
				}
				p->pos[i] = (int32_t)(s0 + tt);
				p->pos[n + i] = (int32_t)(s0 + cell / mw);
				p->pos[2 * n + i] = (int32_t)(s0 + cell % mw);
			}
			pos = s0 + ED_MAX(mh, mw);
		}
	}
	if (img != n_images) {
		ed_model_prompt_release(p);
		return ed_err(err, errlen, ED_EINVAL,
			      "%zu images but placeholders for %zu", n_images,
			      img);
	}
	for (size_t k = 0; k < 3 * n; k++)
		mx = p->pos[k] > mx ? p->pos[k] : mx;
	p->rope_delta = mx + 1 - (int64_t)n;
	return 0;
}

int ed_model_prompt_chat(const struct ed_model *m, const struct ed_chat *c,
			 struct ed_prompt *p, char *err, size_t errlen)
{
	struct ed_image_in *imgs = NULL;
	struct ed_buf text;
	int32_t *ids = NULL, *full = NULL;
	size_t n = 0, nfull = 0, nimg = 0, k = 0;
	json_t *st;
	int rc;

	memset(p, 0, sizeof *p);
	if (!m->tok)
		return ed_err(err, errlen, ED_ECONFIG,
			      "the model directory has no tokenizer.model");
	for (size_t i = 0; i < c->n_parts; i++)
		nimg += !c->parts[i].text;
	if (nimg && (m->ids.image < 0 || m->ids.image_start < 0 ||
		     m->ids.image_end < 0))
		return ed_err(err, errlen, ED_ECONFIG,
			      "the tokenizer has no image tokens");
	if (!(st = chat_state(m, c)))
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&text, 0);
	if ((rc = render_state(m, st, true, &text, err, errlen)) ||
	    (c->assistant_prefix &&
	     (rc = ed_buf_puts(&text, c->assistant_prefix)))) {
		if (rc == ED_ENOMEM)
			ed_err(err, errlen, rc, "out of memory");
		ed_buf_release(&text);
		json_decref(st);
		return rc;
	}
	rc = ed_model_encode_prompt(m, text.data ? text.data : "", text.len,
				    &ids, &n, &nimg, err, errlen);
	ed_buf_release(&text);
	if (rc) {
		json_decref(st);
		return rc;
	}
	imgs = nimg ? calloc(nimg, sizeof *imgs) : NULL;
	for (size_t i = 0; i < c->n_parts; i++)
		if (!c->parts[i].text && imgs)
			imgs[k++] = *c->parts[i].image;
	if ((nimg && !imgs) ||
	    expand_images(m, ids, n, imgs, nimg, NULL, 0, &full, &nfull)) {
		free(ids);
		free(imgs);
		json_decref(st);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	rc = ed_model_prompt_ids(m, full, nfull, imgs, nimg, p, err, errlen);
	free(ids);
	free(full);
	free(imgs);
	if (rc)
		json_decref(st);
	else
		p->chat = st;
	return rc;
}

/* ---- tools -------------------------------------------------------- */

void ed_tool_call_release(struct ed_tool_call *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->arguments);
	free(c->id);
	free(c->raw);
	memset(c, 0, sizeof *c);
}

int ed_model_parse_tool_call(const char *text, struct ed_tool_call *call,
			     size_t *start)
{
	const char *think = strstr(text, "</think>");
	const char *a = strstr(think ? think : text, T_CALL), *b, *body;
	json_t *j, *name, *args;

	memset(call, 0, sizeof *call);
	if (!a)
		return 0;
	body = a + strlen(T_CALL);
	b = strstr(body, T_CALL_END);
	if (!b)
		return 0; /* not finished */
	if (start)
		*start = (size_t)(a - text);
	call->raw = dupn(body, (size_t)(b - body));
	if (!call->raw)
		return ED_ENOMEM;
	j = json_loads(call->raw, JSON_REJECT_DUPLICATES, NULL);
	name = json_object_get(j, "name");
	args = json_object_get(j, "arguments");
	if (json_is_string(name))
		call->name = strdup(json_string_value(name));
	if (json_is_string(args)) /* some models quote the arguments */
		call->arguments = strdup(json_string_value(args));
	else if (args)
		call->arguments = json_dumps(args, JSON_COMPACT);
	json_decref(j);
	return 1;
}

/* text of out after prefix, or NULL when out does not begin with it */
static const char *after_prefix(const struct ed_buf *out,
				const struct ed_buf *prefix)
{
	if (out->len < prefix->len ||
	    (prefix->len && memcmp(out->data, prefix->data, prefix->len)))
		return NULL;
	return out->data + prefix->len;
}

/*
 * The text that answers a tool call, as the template renders it: what
 * closes the assistant turn (after its generated text), then the tool
 * result and the next generation prompt. *next is the conversation with
 * both turns added.
 */
static int tool_result_text(const struct ed_model *m, json_t *st,
			    const char *text, size_t n_images,
			    struct ed_buf *seg, json_t **next, char *err,
			    size_t errlen)
{
	json_t *plain = json_deep_copy(st), *call = json_deep_copy(st);
	json_t *parts = json_array(), *asst, *tool;
	struct ed_buf a, p, q;
	const char *mark = NULL, *tail;
	size_t turns = json_array_size(json_object_get(st, "messages"));
	char id[32];
	int rc = 0;

	*next = NULL;
	ed_buf_init(&a, 0);
	ed_buf_init(&p, 0);
	ed_buf_init(&q, 0);
	snprintf(id, sizeof id, "call_%zu", turns);
	json_array_append_new(
	    json_object_get(plain, "messages"),
	    json_pack("{s:s,s:s}", "role", "assistant", "content", SENTINEL));
	asst = json_pack("{s:s,s:s,s:[{s:s,s:s,s:{s:s,s:s}}]}", "role",
			 "assistant", "content", SENTINEL, "tool_calls", "id",
			 id, "type", "function", "function", "name",
			 ED_ZOOM_TOOL, "arguments", "{}");
	for (size_t i = 0; i < n_images; i++)
		json_array_append_new(parts,
				      json_pack("{s:s}", "type", "image"));
	json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text",
					       "text", text ? text : ""));
	tool = json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", id,
			 "content", parts);
	json_array_append_new(json_object_get(call, "messages"), asst);
	if ((rc = render_state(m, plain, false, &a, err, errlen)) ||
	    (rc = render_state(m, call, false, &p, err, errlen)))
		goto out;
	json_array_append_new(json_object_get(call, "messages"), tool);
	tool = NULL;
	if ((rc = render_state(m, call, true, &q, err, errlen)))
		goto out;
	/* the last: earlier turns of the conversation hold it too */
	for (const char *x = a.data; x && (x = strstr(x, SENTINEL)); x++)
		mark = x;
	tail = after_prefix(&q, &p);
	if (!mark || !tail) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "the chat template cannot continue a conversation "
			    "after a tool call (it %s)",
			    !mark ? "drops the assistant's text"
				  : "does not render the tool result after "
				    "the turns before it");
		goto out;
	}
	if (ed_buf_puts(seg, mark + strlen(SENTINEL)) || ed_buf_puts(seg, tail))
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
	else
		*next = json_incref(call);
out:
	json_decref(tool);
	json_decref(plain);
	json_decref(call);
	ed_buf_release(&a);
	ed_buf_release(&p);
	ed_buf_release(&q);
	return rc;
}

int ed_model_prompt_extend(const struct ed_model *m,
			   const struct ed_prompt *prev, const int32_t *gen,
			   size_t n_gen, const char *text,
			   const struct ed_image_in *images, size_t n_images,
			   bool thinking, struct ed_prompt *out, char *err,
			   size_t errlen)
{
	struct ed_buf seg;
	struct ed_image_in *imgs;
	int32_t *ids = NULL, *head, *full = NULL;
	size_t n = 0, nfull, nimg = n_images;
	json_t *st, *next = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if (!m->tok)
		return ed_err(err, errlen, ED_ECONFIG,
			      "the model directory has no tokenizer.model");
	if (!prev->chat)
		return ed_err(err, errlen, ED_EINVAL,
			      "the prompt holds no conversation to extend");
	st = json_deep_copy(prev->chat);
	json_object_set_new(st, "thinking", json_boolean(thinking));
	ed_buf_init(&seg, 0);
	rc = tool_result_text(m, st, text, n_images, &seg, &next, err, errlen);
	json_decref(st);
	if (!rc)
		rc =
		    ed_model_encode_prompt(m, seg.data ? seg.data : "", seg.len,
					   &ids, &n, &nimg, err, errlen);
	ed_buf_release(&seg);
	if (rc) {
		json_decref(next);
		return rc;
	}
	head = malloc((prev->n + n_gen + 1) * sizeof *head);
	imgs = malloc((prev->n_images + n_images + 1) * sizeof *imgs);
	if (!head || !imgs ||
	    (memcpy(head, prev->ids, prev->n * sizeof *head),
	     n_gen && memcpy(head + prev->n, gen, n_gen * sizeof *head), 0) ||
	    expand_images(m, ids, n, images, n_images, head, prev->n + n_gen,
			  &full, &nfull)) {
		free(ids);
		free(head);
		free(imgs);
		json_decref(next);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	/* earlier images are in the cache already: their grids place the
	 * positions, their pixels are not needed again */
	for (size_t i = 0; i < prev->n_images; i++) {
		imgs[i] = prev->images[i];
		imgs[i].pixel_values = NULL;
	}
	for (size_t i = 0; i < n_images; i++)
		imgs[prev->n_images + i] = images[i];
	rc = ed_model_prompt_ids(m, full, nfull, imgs,
				 prev->n_images + n_images, out, err, errlen);
	free(ids);
	free(head);
	free(full);
	free(imgs);
	if (rc)
		json_decref(next);
	else
		out->chat = next;
	return rc;
}
