/*
 * template.c - prompts: the chat template of the -PT models (the only
 * place its text lives, so it can be checked against the real
 * tokenizer_config.json), image placeholder expansion, the vision-expert
 * mask and the 3-D positions.
 *
 * Template (spec section 7.1):
 *   <|begin_of_sentence|>[system "\n"]User: [text | Picture N:<|IMAGE_START|>
 *   <|IMAGE_PLACEHOLDER|> x tokens <|IMAGE_END|>]...\nAssistant: then
 *   "<think>\n\n</think>\n\n" (non-thinking) or "<think>" (thinking).
 *
 * Tools (spec sections 7.2 and 8; the exact rendering of the Thinking
 * model's template is unverified, and this is the only place to correct
 * it): the tool list goes in the system text as <tool_list>[...]</tool_list>;
 * the model calls a tool with <tool_call>{"name": ..., "arguments": {...}}
 * </tool_call> after its </think>; the result follows the assistant turn
 * (ended by <|end_of_sentence|>) as "\nTool: <tool_output>" + images as
 * Picture N blocks + text + "</tool_output>", then the generation prompt
 * again.
 */
#include "model_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_BOS	    "<|begin_of_sentence|>"
#define T_USER	    "User: "
#define T_PICTURE   "Picture %zu:"
#define T_IMG_START "<|IMAGE_START|>"
#define T_IMG_PH    "<|IMAGE_PLACEHOLDER|>"
#define T_IMG_END   "<|IMAGE_END|>"
#define T_ASSISTANT "\nAssistant: "
#define T_NO_THINK  "<think>\n\n</think>\n\n"
#define T_THINK	    "<think>"
#define T_EOS_TURN  "<|end_of_sentence|>"
#define T_TOOL_LIST "<tool_list>[%s]</tool_list>"
#define T_CALL	    "<tool_call>"
#define T_CALL_END  "</tool_call>"
#define T_TOOL_OUT  "\nTool: <tool_output>"
#define T_TOOL_END  "</tool_output>"

/* The zoom tool in the OpenAI function format (spec section 8). */
static const char zoom_tool_json[] =
    "{\"type\": \"function\", \"function\": {\"name\": \"" ED_ZOOM_TOOL "\", "
    "\"description\": \"Zoom in on a region of the image: the region is "
    "shown again at a higher resolution.\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"bbox_2d\": {\"type\": \"array\", "
    "\"items\": {\"type\": \"number\"}, \"minItems\": 4, \"maxItems\": 4, "
    "\"description\": \"The region [x1, y1, x2, y2], coordinates from 0 to "
    "1000 relative to the width and height of the original image, origin "
    "top left.\"}, \"label\": {\"type\": \"string\", \"description\": "
    "\"What is in the region.\"}}, \"required\": [\"bbox_2d\"]}}}";

const char *ed_model_zoom_tool_json(void)
{
	return zoom_tool_json;
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

/* The template text; images as one placeholder each (expanded later). */
static int render(const struct ed_chat *ch, struct ed_buf *b)
{
	size_t pic = 0;
	int rc = ed_buf_puts(b, T_BOS);

	if (ch->system || ch->tools) {
		if (ch->system)
			rc |= ed_buf_puts(b, ch->system);
		if (ch->tools)
			rc |= ed_buf_printf(b, "%s" T_TOOL_LIST,
					    ch->system ? "\n" : "",
					    zoom_tool_json);
		rc |= ed_buf_puts(b, "\n");
	}
	rc |= ed_buf_puts(b, T_USER);
	for (size_t i = 0; i < ch->n_parts; i++) {
		if (ch->parts[i].text)
			rc |= ed_buf_puts(b, ch->parts[i].text);
		else
			rc |= ed_buf_printf(
			    b, T_PICTURE T_IMG_START T_IMG_PH T_IMG_END, ++pic);
	}
	rc |= ed_buf_puts(b, T_ASSISTANT);
	rc |= ed_buf_puts(b, ch->thinking ? T_THINK : T_NO_THINK);
	if (ch->assistant_prefix)
		rc |= ed_buf_puts(b, ch->assistant_prefix);
	return rc ? ED_ENOMEM : 0;
}

char *ed_model_chat_text(const struct ed_model *m, const struct ed_chat *c)
{
	struct ed_buf b;

	(void)m;
	ed_buf_init(&b, 0);
	if (render(c, &b)) {
		ed_buf_release(&b);
		return NULL;
	}
	return ed_buf_detach(&b, NULL);
}

int ed_model_prompt_chat(const struct ed_model *m, const struct ed_chat *c,
			 struct ed_prompt *p, char *err, size_t errlen)
{
	const struct ed_tokenizer *t = m->tok;
	struct ed_image_in *imgs = NULL;
	struct ed_buf text;
	int32_t *ids = NULL, *full = NULL;
	size_t n = 0, nfull = 0, nimg = 0, k = 0;
	int rc;

	memset(p, 0, sizeof *p);
	if (!t)
		return ed_err(err, errlen, ED_ECONFIG,
			      "the model directory has no tokenizer.model");
	if (m->ids.image < 0 || m->ids.image_start < 0 || m->ids.image_end < 0)
		for (size_t i = 0; i < c->n_parts; i++)
			if (!c->parts[i].text)
				return ed_err(
				    err, errlen, ED_ECONFIG,
				    "the tokenizer has no image tokens");
	ed_buf_init(&text, 0);
	if ((rc = render(c, &text)) ||
	    (rc = ed_tok_encode(t, text.data, text.len, &ids, &n))) {
		ed_buf_release(&text);
		free(ids);
		return ed_err(err, errlen, rc, "tokenizing the prompt: %s",
			      ed_strerror(rc));
	}
	ed_buf_release(&text);
	for (size_t i = 0; i < c->n_parts; i++)
		nimg += !c->parts[i].text;
	imgs = nimg ? calloc(nimg, sizeof *imgs) : NULL;
	for (size_t i = 0; i < c->n_parts; i++)
		if (!c->parts[i].text && imgs)
			imgs[k++] = *c->parts[i].image;
	/* expand each placeholder to the image's token count */
	k = 0;
	for (size_t i = 0; i < n; i++)
		nfull += ids[i] == m->ids.image && k < nimg
			     ? (size_t)ed_image_tokens(&m->cfg, &imgs[k++])
			     : 1;
	full = malloc((nfull ? nfull : 1) * sizeof *full);
	if ((nimg && !imgs) || !full) {
		free(ids);
		free(imgs);
		free(full);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	k = 0;
	nfull = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == m->ids.image && k < nimg) {
			int64_t e = ed_image_tokens(&m->cfg, &imgs[k++]);
			for (int64_t j = 0; j < e; j++)
				full[nfull++] = ids[i];
		} else {
			full[nfull++] = ids[i];
		}
	}
	rc = ed_model_prompt_ids(m, full, nfull, imgs, nimg, p, err, errlen);
	free(ids);
	free(full);
	free(imgs);
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

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
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

int ed_model_tool_result_text(size_t first_picture, const char *text,
			      size_t n_images, bool thinking, struct ed_buf *b)
{
	int rc = ed_buf_puts(b, T_EOS_TURN T_TOOL_OUT);

	for (size_t i = 0; i < n_images; i++)
		rc |= ed_buf_printf(b, T_PICTURE T_IMG_START T_IMG_PH T_IMG_END,
				    first_picture + i);
	if (text)
		rc |= ed_buf_puts(b, text);
	rc |= ed_buf_puts(b, T_TOOL_END T_ASSISTANT);
	rc |= ed_buf_puts(b, thinking ? T_THINK : T_NO_THINK);
	return rc ? ED_ENOMEM : 0;
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
	int32_t *ids = NULL, *full;
	size_t n = 0, nfull, k = 0, first = 1;
	int rc;

	memset(out, 0, sizeof *out);
	if (!m->tok)
		return ed_err(err, errlen, ED_ECONFIG,
			      "the model directory has no tokenizer.model");
	for (size_t i = 0; i < prev->n_images; i++)
		first++; /* Picture numbers run over the conversation */
	ed_buf_init(&seg, 0);
	if ((rc = ed_model_tool_result_text(first, text, n_images, thinking,
					    &seg)) ||
	    (rc = ed_tok_encode(m->tok, seg.data, seg.len, &ids, &n))) {
		ed_buf_release(&seg);
		free(ids);
		return ed_err(err, errlen, rc, "tokenizing a tool result: %s",
			      ed_strerror(rc));
	}
	ed_buf_release(&seg);
	nfull = prev->n + n_gen;
	for (size_t i = 0; i < n; i++)
		nfull += ids[i] == m->ids.image && k < n_images
			     ? (size_t)ed_image_tokens(&m->cfg, &images[k++])
			     : 1;
	full = malloc(nfull * sizeof *full);
	imgs = malloc((prev->n_images + n_images + 1) * sizeof *imgs);
	if (!full || !imgs) {
		free(ids);
		free(full);
		free(imgs);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	memcpy(full, prev->ids, prev->n * sizeof *full);
	if (n_gen)
		memcpy(full + prev->n, gen, n_gen * sizeof *full);
	nfull = prev->n + n_gen;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == m->ids.image && k < n_images) {
			int64_t e = ed_image_tokens(&m->cfg, &images[k++]);
			for (int64_t j = 0; j < e; j++)
				full[nfull++] = ids[i];
		} else {
			full[nfull++] = ids[i];
		}
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
	free(full);
	free(imgs);
	return rc;
}
