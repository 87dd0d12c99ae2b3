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
 */
#include "model_int.h"

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

/* Image tokens the language model sees for one image. */
static int64_t image_tokens(const struct ed_config *c,
			    const struct ed_image_in *im)
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
			int64_t need = image_tokens(c, im), s0 = pos;
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

	if (ch->system)
		rc |= ed_buf_printf(b, "%s\n", ch->system);
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
			     ? (size_t)image_tokens(&m->cfg, &imgs[k++])
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
			int64_t e = image_tokens(&m->cfg, &imgs[k++]);
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
