/*
 * eval.c - run a golden-style inputs.json through the model and collect
 * every tensor the golden README names (patch_embed_out ... logits,
 * router_* per MoE layer, gen_tokens, gen_logits, gen_position_ids),
 * so any fixture can be checked from the command line. Repeated trace
 * names (vision_block_out, hidden_states) are stacked along axis 0.
 */
#include "model_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
	char *name;
	enum ed_dtype dt;
	int ndim;
	int64_t shape[ED_TENSOR_MAX_DIMS];
	unsigned char *data;
	size_t nbytes;
};

struct collector {
	struct item *it;
	size_t n, cap;
	bool oom;
};

static struct item *find_item(struct collector *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->it[i].name, name) == 0)
			return &c->it[i];
	return NULL;
}

static void collect(void *ud, const struct ed_tensor *t)
{
	struct collector *c = ud;
	struct item *it = find_item(c, t->name);

	if (c->oom)
		return;
	if (it) { /* stack along axis 0 */
		unsigned char *nd = realloc(it->data, it->nbytes + t->nbytes);
		if (!nd) {
			c->oom = true;
			return;
		}
		memcpy(nd + it->nbytes, t->data, t->nbytes);
		it->data = nd;
		it->nbytes += t->nbytes;
		it->shape[0] += t->shape[0];
		return;
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 32;
		struct item *ni = realloc(c->it, nc * sizeof *ni);
		if (!ni) {
			c->oom = true;
			return;
		}
		c->it = ni;
		c->cap = nc;
	}
	it = &c->it[c->n];
	memset(it, 0, sizeof *it);
	it->name = strdup(t->name);
	it->data = malloc(t->nbytes ? t->nbytes : 1);
	if (!it->name || !it->data) {
		free(it->name);
		free(it->data);
		c->oom = true;
		return;
	}
	it->dt = t->dtype;
	it->ndim = t->ndim;
	memcpy(it->shape, t->shape, sizeof it->shape);
	memcpy(it->data, t->data, t->nbytes);
	it->nbytes = t->nbytes;
	c->n++;
}

static void add(struct collector *c, const char *name, enum ed_dtype dt,
		const void *d, int ndim, const int64_t *shape)
{
	struct ed_tensor t = {
	    .name = name, .dtype = dt, .ndim = ndim, .data = d};

	memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
	t.nbytes = (size_t)ed_model_tensor_numel(&t) * ed_model_dtype_size(dt);
	collect(c, &t);
}

static void collector_free(struct collector *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->it[i].name);
		free(c->it[i].data);
	}
	free(c->it);
}

void ed_model_eval_release(struct ed_eval *e)
{
	if (!e)
		return;
	if (e->mem_) {
		collector_free(e->mem_);
		free(e->mem_);
	}
	free(e->t);
	memset(e, 0, sizeof *e);
}

int ed_model_eval(const struct ed_model *m, const char *inputs_json,
		  ed_load_image_fn load, void *ud, int threads,
		  struct ed_eval *out, char *err, size_t errlen)
{
	struct collector *col = calloc(1, sizeof *col);
	struct ed_session *s = NULL;
	struct ed_prompt p = {0};
	struct ed_image_in *imgs = NULL;
	float **pix = NULL;
	int32_t *ids = NULL;
	json_error_t je;
	json_t *root = NULL, *jids, *jimgs;
	size_t n, nimg;
	int new_tokens = 8, rc = 0;
	char dir[4096];
	const char *slash;

	memset(out, 0, sizeof *out);
	if (!col)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	root = json_load_file(inputs_json, 0, &je);
	jids = json_object_get(root, "prompt_token_ids");
	jimgs = json_object_get(root, "images");
	if (!root || !json_is_array(jids) || json_array_size(jids) == 0) {
		rc = ed_err(err, errlen, ED_EFORMAT, "'%s': %s", inputs_json,
			    root ? "no prompt_token_ids" : je.text);
		goto out;
	}
	{
		json_t *g = json_object_get(json_object_get(root, "generation"),
					    "new_tokens");
		if (json_is_integer(g))
			new_tokens = (int)json_integer_value(g);
		if (new_tokens < 1 || new_tokens > 100000)
			new_tokens = 8;
	}
	n = json_array_size(jids);
	ids = malloc(n * sizeof *ids);
	nimg = json_is_array(jimgs) ? json_array_size(jimgs) : 0;
	imgs = calloc(nimg ? nimg : 1, sizeof *imgs);
	pix = calloc(nimg ? nimg : 1, sizeof *pix);
	if (!ids || !imgs || !pix) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(jids, i);
		if (!json_is_integer(v)) {
			rc = ed_err(
			    err, errlen, ED_EFORMAT,
			    "'%s': prompt_token_ids[%zu] is not an integer",
			    inputs_json, i);
			goto out;
		}
		ids[i] = (int32_t)json_integer_value(v);
	}
	slash = strrchr(inputs_json, '/');
	snprintf(dir, sizeof dir, "%.*s",
		 slash ? (int)(slash - inputs_json) : 1,
		 slash ? inputs_json : ".");
	for (size_t i = 0; i < nimg; i++) {
		const char *f = json_string_value(json_array_get(jimgs, i));
		char path[8192];
		if (!f || !load) {
			rc = ed_err(err, errlen, ED_EFORMAT,
				    "'%s': images[%zu] cannot be loaded",
				    inputs_json, i);
			goto out;
		}
		snprintf(path, sizeof path, "%s/%s", dir, f);
		if ((rc = load(ud, path, &pix[i], &imgs[i].grid_t,
			       &imgs[i].grid_h, &imgs[i].grid_w, err, errlen)))
			goto out;
		imgs[i].pixel_values = pix[i];
	}
	if (nimg) {
		int64_t *thw = malloc(nimg * 3 * sizeof *thw);
		if (!thw) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nimg; i++) {
			thw[3 * i] = imgs[i].grid_t;
			thw[3 * i + 1] = imgs[i].grid_h;
			thw[3 * i + 2] = imgs[i].grid_w;
		}
		add(col, "image_grid_thw", ED_DT_I64, thw, 2,
		    (int64_t[]){(int64_t)nimg, 3});
		free(thw);
	}
	if ((rc = ed_model_prompt_ids(m, ids, n, imgs, nimg, &p, err, errlen)))
		goto out;
	if ((rc = ed_session_new(&s, m,
				 &(struct ed_session_opts){
				     .threads = threads,
				     .max_ctx = (int64_t)n + new_tokens + 1},
				 err, errlen)))
		goto out;
	ed_session_set_trace(s, collect, col);
	s->all_logits = true;
	{
		const float *logits;
		int64_t V = m->cfg.vocab;
		float *gl = malloc((size_t)(new_tokens * V) * sizeof *gl);
		int64_t *gt = malloc((size_t)new_tokens * sizeof *gt);
		int64_t *gp = malloc((size_t)(3 * new_tokens) * sizeof *gp);

		if (!gl || !gt || !gp) {
			free(gl);
			free(gt);
			free(gp);
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
		rc = ed_session_prefill(s, &p, &logits, err, errlen);
		ed_session_set_trace(s, NULL, NULL);
		s->all_logits = false;
		/* greedy, EOS not a stop: token i from logits i, fed back at
		 * position L + i + rope_delta */
		for (int i = 0; !rc && i < new_tokens; i++) {
			memcpy(gl + (int64_t)i * V, logits,
			       (size_t)V * sizeof *gl);
			gt[i] = ed_model_sample(logits, (int32_t)V, NULL, NULL);
			for (int r = 0; r < 3; r++)
				gp[r * new_tokens + i] = ed_session_next_pos(s);
			if (i + 1 < new_tokens)
				rc = ed_session_step(s, (int32_t)gt[i], &logits,
						     err, errlen);
		}
		if (!rc) {
			add(col, "gen_tokens", ED_DT_I64, gt, 1,
			    (int64_t[]){new_tokens});
			add(col, "gen_logits", ED_DT_F32, gl, 2,
			    (int64_t[]){new_tokens, V});
			/* [3, N] for the 3-D rope, [N] for a text model */
			if (m->cfg.rope_3d)
				add(col, "gen_position_ids", ED_DT_I64, gp, 2,
				    (int64_t[]){3, new_tokens});
			else
				add(col, "gen_position_ids", ED_DT_I64, gp, 1,
				    (int64_t[]){new_tokens});
		}
		free(gl);
		free(gt);
		free(gp);
		if (rc)
			goto out;
	}
	if (col->oom) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	out->t = calloc(col->n ? col->n : 1, sizeof *out->t);
	if (!out->t) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < col->n; i++) {
		struct ed_tensor *t = &out->t[i];
		t->name = col->it[i].name;
		t->dtype = col->it[i].dt;
		t->ndim = col->it[i].ndim;
		memcpy(t->shape, col->it[i].shape, sizeof t->shape);
		t->data = col->it[i].data;
		t->nbytes = col->it[i].nbytes;
	}
	out->n = col->n;
	out->mem_ = col;
	col = NULL;
out:
	if (col) {
		collector_free(col);
		free(col);
	}
	ed_session_free(s);
	ed_model_prompt_release(&p);
	for (size_t i = 0; pix && i < nimg; i++)
		free(pix[i]);
	free(pix);
	free(imgs);
	free(ids);
	json_decref(root);
	return rc;
}
