/*
 * config.c - config.json in both shapes: transformers-native (text_config /
 * vision_config, mlp_layer_types, rope_parameters.mrope_section) and
 * Baidu's original (flat, moe_num_experts: [text, vision],
 * moe_layer_start/end_index, freq_allocation, vision_config with
 * embed_dim / mlp_ratio), including the text-only ERNIE-4.5 MoE models
 * (one expert pool, 1-D RoPE). Every value the engine uses is checked
 * here; tensors are checked against these shapes in loader.c.
 */
#include "model_int.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static json_t *get(json_t *o, const char *k)
{
	return o ? json_object_get(o, k) : NULL;
}

/* An integer (or integral real) field; def when absent. */
static int geti(json_t *o, const char *k, int def, bool *bad)
{
	json_t *v = get(o, k);

	if (!v || json_is_null(v))
		return def;
	/* in int's range first: a cast of a larger value is not defined */
	if (json_is_integer(v) && json_integer_value(v) >= INT_MIN &&
	    json_integer_value(v) <= INT_MAX)
		return (int)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= INT_MIN &&
	    json_real_value(v) <= INT_MAX &&
	    json_real_value(v) == floor(json_real_value(v)))
		return (int)json_real_value(v);
	*bad = true;
	return def;
}

static double getd(json_t *o, const char *k, double def, bool *bad)
{
	json_t *v = get(o, k);

	if (!v || json_is_null(v))
		return def;
	if (json_is_number(v))
		return json_number_value(v);
	*bad = true;
	return def;
}

static bool getb(json_t *o, const char *k, bool def)
{
	json_t *v = get(o, k);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

/* An int or a [text, vision] pair. */
static void pair(json_t *o, const char *k, int def, int out[2], bool *bad)
{
	json_t *v = get(o, k);

	out[0] = out[1] = def;
	if (!v || json_is_null(v))
		return;
	if (json_is_array(v)) {
		for (size_t i = 0; i < 2 && i < json_array_size(v); i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_integer(e))
				*bad = true;
			else
				out[i] = (int)json_integer_value(e);
		}
		if (json_array_size(v) == 1)
			out[1] = out[0];
		return;
	}
	out[0] = out[1] = geti(o, k, def, bad);
}

int ed_config_parse(struct ed_config *c, const char *text, size_t len,
		    ed_note_fn note, void *ud, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je), *t, *v, *lt;
	bool bad = false, hf;
	const char *mt;
	int rc = 0;

	memset(c, 0, sizeof *c);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return ed_err(err, errlen, ED_ECONFIG, "config.json: %s",
			      root ? "not an object" : je.text);
	}
	mt = json_string_value(get(root, "model_type"));
	snprintf(c->arch, sizeof c->arch, "%s", mt ? mt : "ernie4_5");
	snprintf(c->name, sizeof c->name, "%s",
		 json_string_value(get(root, "_name_or_path"))
		     ? json_string_value(get(root, "_name_or_path"))
		     : "");
	hf = json_is_object(get(root, "text_config"));
	t = hf ? get(root, "text_config") : root;
	v = get(root, "vision_config");

	c->vocab = geti(t, "vocab_size", 0, &bad);
	c->hidden = geti(t, "hidden_size", 0, &bad);
	c->layers = geti(t, "num_hidden_layers", 0, &bad);
	c->heads = geti(t, "num_attention_heads", 0, &bad);
	c->kv_heads = geti(t, "num_key_value_heads", c->heads, &bad);
	c->head_dim =
	    geti(t, "head_dim", c->heads ? c->hidden / c->heads : 0, &bad);
	c->dense_inter = geti(t, "intermediate_size", 0, &bad);
	c->rms_eps = (float)getd(t, "rms_norm_eps", 1e-5, &bad);
	c->ctx_len = geti(t, "max_position_embeddings", 131072, &bad);
	c->tie_embeddings = getb(t, "tie_word_embeddings",
				 getb(root, "tie_word_embeddings", true));
	c->bos =
	    geti(t, "bos_token_id", geti(root, "bos_token_id", 1, &bad), &bad);
	c->eos =
	    geti(t, "eos_token_id", geti(root, "eos_token_id", 2, &bad), &bad);
	c->pad =
	    geti(t, "pad_token_id", geti(root, "pad_token_id", 0, &bad), &bad);
	c->image = geti(root, "image_token_id",
			geti(root, "im_patch_id", -1, &bad), &bad);
	c->image_start = geti(root, "image_start_token_id", -1, &bad);
	c->image_end = geti(root, "image_end_token_id", -1, &bad);
	c->video = geti(root, "video_token_id", c->image, &bad);
	c->video_start = geti(root, "video_start_token_id", -1, &bad);
	c->video_end = geti(root, "video_end_token_id", -1, &bad);

	/* RoPE */
	{
		json_t *rp = get(t, "rope_parameters");
		json_t *ms = get(rp, "mrope_section");
		int half = c->head_dim / 2;
		/* ERNIE-4.5-VL's real defaults (vLLM, RELEASED.md 6.5): 3-D
		 * RoPE, freq_allocation 20, theta 500000 */
		bool vl = v != NULL || (mt && strstr(mt, "_vl"));

		c->rope_theta = getd(
		    rp, "rope_theta",
		    getd(t, "rope_theta", vl ? 500000.0 : 10000.0, &bad), &bad);
		if (json_is_array(ms) && json_array_size(ms) == 3) {
			for (int i = 0; i < 3; i++)
				c->mrope[i] = (int)json_integer_value(
				    json_array_get(ms, (size_t)i));
			c->rope_3d = true;
		} else if (getb(t, "rope_3d", vl)) {
			int fa = geti(t, "freq_allocation", 20, &bad);
			c->mrope[0] = c->mrope[1] = (half - fa) / 2;
			c->mrope[2] = fa;
			c->rope_3d = true;
		} else {
			c->mrope[0] =
			    half; /* 1-D: every pair uses the same p */
		}
		if (c->rope_3d &&
		    (c->mrope[0] + c->mrope[1] + c->mrope[2] != half ||
		     c->mrope[0] != c->mrope[1])) {
			rc = ed_err(
			    err, errlen, ED_ECONFIG,
			    "config.json: mrope sections [%d, %d, %d] must "
			    "sum to head_dim/2 = %d with h = w",
			    c->mrope[0], c->mrope[1], c->mrope[2], half);
			goto out;
		}
	}

	/* MoE */
	pair(t, "moe_num_experts", 0, c->experts, &bad);
	pair(t, "moe_intermediate_size", 0, c->expert_inter, &bad);
	/* transformers' VL config gives one count for both pools; Baidu's
	 * gives [text, vision]; a single count there is a text-only model */
	if (!json_is_array(get(t, "moe_num_experts")) &&
	    !(hf && json_is_object(v)))
		c->experts[1] = 0;
	c->moe_k = geti(t, "moe_k", 0, &bad);
	c->shared = geti(t, "moe_num_shared_experts", 0, &bad);
	c->moe_norm_min = (float)getd(t, "moe_norm_min", 1e-12, &bad);
	lt = get(t, "mlp_layer_types");
	if (c->layers > ED_MAX_LAYERS || c->layers < 1) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "config.json: num_hidden_layers %d (1 to %d)",
			    c->layers, ED_MAX_LAYERS);
		goto out;
	}
	if (json_is_array(lt)) {
		if ((int)json_array_size(lt) != c->layers) {
			rc = ed_err(
			    err, errlen, ED_ECONFIG,
			    "config.json: mlp_layer_types has %zu entries "
			    "for %d layers",
			    json_array_size(lt), c->layers);
			goto out;
		}
		for (int i = 0; i < c->layers; i++) {
			const char *s =
			    json_string_value(json_array_get(lt, (size_t)i));
			c->moe[i] = s && strcmp(s, "sparse") == 0;
			if (!s || (strcmp(s, "sparse") && strcmp(s, "dense")))
				bad = true;
		}
	} else if (c->experts[0] > 0) {
		int start[2], end[2],
		    every = geti(t, "moe_layer_interval", 1, &bad);
		pair(t, "moe_layer_start_index", 0, start, &bad);
		pair(t, "moe_layer_end_index", c->layers - 1, end, &bad);
		for (int p = 0; p < 2; p++)
			if (end[p] < 0)
				end[p] = c->layers - 1;
		if (every < 1)
			every = 1;
		for (int i = 0; i < c->layers; i++) {
			bool tm = i >= start[0] && i <= end[0] &&
				  (i - start[0]) % every == 0;
			bool vm = i >= start[1] && i <= end[1] &&
				  (i - start[1]) % every == 0;
			if (c->experts[1] > 0 && tm != vm) {
				rc = ed_err(err, errlen, ED_ECONFIG,
					    "config.json: layer %d has MoE for "
					    "one modality only (unsupported)",
					    i);
				goto out;
			}
			c->moe[i] = tm;
		}
	}

	/* vision */
	c->has_vision = json_is_object(v);
	if (c->has_vision) {
		int embed =
		    geti(v, "embed_dim", geti(v, "hidden_size", 0, &bad), &bad);
		int vh = geti(v, "hidden_size", embed, &bad);
		const char *act = json_string_value(get(v, "hidden_act"));
		if (vh != embed) {
			/* vLLM asserts the two equal; mlx-vlm's 3584 default
			 * shows the trap */
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "config.json: vision_config hidden_size %d "
				    "differs from its embed_dim %d",
				    vh, embed);
			goto out;
		}
		c->vit_depth = geti(v, "depth", 0, &bad);
		c->vit_hidden = embed;
		c->vit_heads = geti(v, "num_heads", 0, &bad);
		c->vit_inter =
		    geti(v, "intermediate_size",
			 (int)(getd(v, "mlp_ratio", 4, &bad) * embed), &bad);
		c->patch = geti(v, "patch_size", 14, &bad);
		c->merge = geti(v, "spatial_merge_size",
				geti(root, "spatial_conv_size", 2, &bad), &bad);
		c->temporal_merge =
		    geti(v, "temporal_merge_size",
			 geti(root, "temporal_conv_size", 2, &bad), &bad);
		c->in_channels =
		    geti(v, "in_channels", geti(v, "in_chans", 3, &bad), &bad);
		c->vit_eps =
		    (float)getd(v, "rms_norm_eps",
				getd(v, "layer_norm_eps", 1e-6, &bad), &bad);
		c->vit_rope_theta = getd(get(v, "rope_parameters"),
					 "rope_theta", 10000.0, &bad);
		c->vit_quick_gelu = !act || strcmp(act, "quick_gelu") == 0;
		if (act && strcmp(act, "quick_gelu") && strcmp(act, "gelu") &&
		    note)
			note(ud,
			     "vision hidden_act is not quick_gelu; using gelu");
		if (c->experts[1] == 0 && c->experts[0] > 0) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "config.json: a vision_config needs "
				    "moe_num_experts for text and vision");
			goto out;
		}
	}

	if (bad) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "config.json: a field has the wrong type");
		goto out;
	}
	if (c->vocab <= 0 || c->hidden <= 0 || c->heads <= 0 ||
	    c->kv_heads <= 0 || c->head_dim <= 0 || c->head_dim % 2 ||
	    c->heads % c->kv_heads) {
		rc = ed_err(err, errlen, ED_ECONFIG,
			    "config.json: bad text shape (vocab %d, hidden %d, "
			    "heads %d/%d, head_dim %d)",
			    c->vocab, c->hidden, c->heads, c->kv_heads,
			    c->head_dim);
		goto out;
	}
	for (int i = 0; i < c->layers; i++)
		if (c->moe[i] &&
		    (c->experts[0] <= 0 || c->moe_k <= 0 ||
		     c->experts[0] > 1024 || c->experts[1] > 1024 ||
		     (c->experts[1] > 0 && c->moe_k > c->experts[1]) ||
		     c->moe_k > c->experts[0] || c->expert_inter[0] <= 0)) {
			rc = ed_err(
			    err, errlen, ED_ECONFIG,
			    "config.json: layer %d is MoE but experts %d, "
			    "moe_k %d, moe_intermediate_size %d",
			    i, c->experts[0], c->moe_k, c->expert_inter[0]);
			goto out;
		}
	if (c->has_vision &&
	    (c->vit_depth <= 0 || c->vit_hidden <= 0 || c->vit_heads <= 0 ||
	     c->vit_hidden % c->vit_heads ||
	     (c->vit_hidden / c->vit_heads) % 4 || c->patch <= 0 ||
	     c->merge <= 0 || c->vit_inter <= 0 || c->in_channels != 3 ||
	     c->image < 0)) {
		rc = ed_err(
		    err, errlen, ED_ECONFIG,
		    "config.json: bad vision shape (depth %d, hidden %d, "
		    "heads %d, patch %d, merge %d, image token %d)",
		    c->vit_depth, c->vit_hidden, c->vit_heads, c->patch,
		    c->merge, c->image);
		goto out;
	}
out:
	json_decref(root);
	return rc;
}
