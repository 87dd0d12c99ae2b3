/*
 * vision.c - the vision tower and the resampler: patches (already
 * normalized, 2x2 merge-block order) -> patch embedding -> blocks of
 * LayerNorm, attention with 2-D rotate-half RoPE (bidirectional, within
 * each image), quick-GELU MLP -> final LayerNorm -> spatial merge of each
 * block of 4 patches, spatial MLP, temporal MLP (an image is paired with
 * itself), projection to the text width, RMSNorm. The rows replace the
 * image placeholders' embeddings, in order.
 */
#include "model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESAMPLER_LN_EPS 1e-6f

/* Rotate-half RoPE over the head dimension of n rows x heads. cs holds
 * per patch hd/2 cos values then hd/2 sin values. */
static void rope_half(float *x, int64_t n, int64_t stride, int heads, int hd,
		      const float *cs)
{
	int half = hd / 2;

	for (int64_t r = 0; r < n; r++) {
		const float *c = cs + r * hd, *s = c + half;
		for (int h = 0; h < heads; h++) {
			float *v = x + r * stride + h * hd;
			for (int d = 0; d < half; d++) {
				float a = v[d], b = v[d + half];
				v[d] = a * c[d] - b * s[d];
				v[d + half] = b * c[d] + a * s[d];
			}
		}
	}
}

/* y = x W^T + b for a block's linear layer: the int8 copy where the
 * option made one, else the weights as stored. (The resampler stays
 * float32: on the golden models int8 there doubled projector_out's
 * error, 1.4-1.8% to 2.8-3.5%, for 2% of the time.) */
static void vit_linear(struct ed_session *s, float *y, const float *x,
		       int64_t P, const struct ed_wt *w, const struct ed_wt *w8,
		       const float *bias)
{
	if (w8->data && ed_k_qgemm_int8(s->pool, y, x, P, w8->data, w8->dt,
					w8->rows, w8->cols, bias) == 0)
		return;
	ed_k_matmul(s->pool, y, x, P, w->data, w->dt, w->rows, w->cols, bias);
}

/* A Q8_0 copy of w into *q8 (nothing when its rows do not fill whole
 * blocks). 0 or ED_ENOMEM. */
static int to_q8(const struct ed_wt *w, struct ed_wt *q8)
{
	size_t rb = ed_k_row_bytes(ED_DT_Q8_0, w->cols),
	       sb = ed_k_row_bytes(w->dt, w->cols);
	float *row;
	char *q;

	if (q8->data || !w->data || w->cols % 32)
		return 0;
	q = malloc(rb * (size_t)w->rows);
	row = malloc((size_t)w->cols * sizeof *row);
	if (!q || !row) {
		free(q);
		free(row);
		return ED_ENOMEM;
	}
	for (int64_t r = 0; r < w->rows; r++) {
		ed_k_to_f32(row, (const char *)w->data + sb * (size_t)r, w->dt,
			    (size_t)w->cols);
		ed_k_quantize_row(ED_DT_Q8_0, row, q + rb * (size_t)r, w->cols);
	}
	free(row);
	*q8 = (struct ed_wt){q, ED_DT_Q8_0, w->rows, w->cols};
	return 0;
}

int ed_model_set_vision_int8(struct ed_model *m, char *err, size_t errlen)
{
	struct ed_vision *v = &m->vis;

	if (!m->cfg.has_vision)
		return 0;
	if (!ed_k_has_vnni())
		return ed_err(err, errlen, ED_EINVAL,
			      "int8 vision products need AVX-512 VNNI, which "
			      "this CPU lacks");
	for (int l = 0; l < m->cfg.vit_depth; l++) {
		struct ed_vit_block *b = &v->blocks[l];
		const struct ed_wt *src[4] = {&b->qkv, &b->proj, &b->fc1,
					      &b->fc2};
		for (int k = 0; k < 4; k++)
			if (to_q8(src[k], &b->q8[k]))
				goto nomem;
	}
	return 0;
nomem:
	return ed_err(err, errlen, ED_ENOMEM,
		      "out of memory for the int8 vision weights");
}

/* The row-wise steps of a block between its products, split over the
 * threads by rows (each row's numbers as the sequential code's). */
enum row_step { SPLIT_ROPE, ADD_LN2, GELU, ADD };

struct rows_job {
	enum row_step step;
	const struct ed_config *c;
	const struct ed_vit_block *bk;
	float *h, *hn, *qkv, *q, *k, *v, *f;
	const float *cs;
	int64_t D, F;
	int heads, hd;
};

static void rows_step(void *ctx, int64_t b, int64_t e, int tid)
{
	struct rows_job *j = ctx;
	int64_t D = j->D, n = e - b;

	(void)tid;
	switch (j->step) {
	case SPLIT_ROPE:
		/* the qkv product already ran: split it and rotate */
		for (int64_t r = b; r < e; r++) {
			memcpy(j->q + r * D, j->qkv + r * 3 * D,
			       (size_t)D * sizeof *j->q);
			memcpy(j->k + r * D, j->qkv + r * 3 * D + D,
			       (size_t)D * sizeof *j->k);
			memcpy(j->v + r * D, j->qkv + r * 3 * D + 2 * D,
			       (size_t)D * sizeof *j->v);
		}
		rope_half(j->q + b * D, n, D, j->heads, j->hd,
			  j->cs + b * j->hd);
		rope_half(j->k + b * D, n, D, j->heads, j->hd,
			  j->cs + b * j->hd);
		break;
	case ADD_LN2:
		ed_k_add(j->h + b * D, j->hn + b * D, n * D);
		ed_k_layernorm(j->hn + b * D, j->h + b * D, j->bk->n2w,
			       j->bk->n2b, n, D, j->c->vit_eps);
		break;
	case GELU:
		if (j->c->vit_quick_gelu)
			ed_k_quick_gelu(j->f + b * j->F, n * j->F);
		else
			ed_k_gelu_erf(j->f + b * j->F, n * j->F);
		break;
	case ADD: ed_k_add(j->h + b * D, j->hn + b * D, n * D); break;
	}
}

static void layernorm_rows(void *ctx, int64_t b, int64_t e, int tid)
{
	struct rows_job *j = ctx;

	(void)tid;
	ed_k_layernorm(j->hn + b * j->D, j->h + b * j->D, j->bk->n1w,
		       j->bk->n1b, e - b, j->D, j->c->vit_eps);
}

int ed_vision_forward(struct ed_session *s, const struct ed_image_in *img,
		      size_t n_img, float *out, char *err, size_t errlen)
{
	const struct ed_model *m = s->m;
	const struct ed_config *c = &m->cfg;
	const struct ed_vision *v = &m->vis;
	int64_t D = c->vit_hidden, F = c->vit_inter, H = c->hidden;
	int64_t pd = (int64_t)c->in_channels * c->patch * c->patch;
	int heads = c->vit_heads, hd = (int)(D / heads),
	    mm = c->merge * c->merge;
	int64_t P = 0, T, S = D * mm, tm = c->temporal_merge;
	float *x = NULL, *h = NULL, *hn = NULL, *qkv = NULL, *q = NULL,
	      *k = NULL, *vv = NULL, *att = NULL, *f = NULL, *cs = NULL,
	      *sp = NULL, *tp = NULL, *t2 = NULL;
	int rc = 0;

	for (size_t i = 0; i < n_img; i++)
		P += (int64_t)img[i].grid_t * img[i].grid_h * img[i].grid_w;
	T = P / mm;
	if (P == 0)
		return 0;
	x = malloc((size_t)(P * pd) * sizeof *x);
	h = malloc((size_t)(P * D) * sizeof *h);
	hn = malloc((size_t)(P * D) * sizeof *hn);
	qkv = malloc((size_t)(P * 3 * D) * sizeof *qkv);
	q = malloc((size_t)(P * D) * sizeof *q);
	k = malloc((size_t)(P * D) * sizeof *k);
	vv = malloc((size_t)(P * D) * sizeof *vv);
	att = malloc((size_t)(P * D) * sizeof *att);
	f = malloc((size_t)(P * (F > 3 * D ? F : 3 * D)) * sizeof *f);
	cs = malloc((size_t)(P * hd) * sizeof *cs);
	if (!x || !h || !hn || !qkv || !q || !k || !vv || !att || !f || !cs) {
		rc = ed_err(err, errlen, ED_ENOMEM,
			    "out of memory for %lld patches", (long long)P);
		goto out;
	}
	/* patches, and the 2-D rotary table from each patch's row/column */
	{
		int64_t r0 = 0;
		int quarter = hd / 4;
		for (size_t i = 0; i < n_img; i++) {
			const struct ed_image_in *im = &img[i];
			int64_t np =
			    (int64_t)im->grid_t * im->grid_h * im->grid_w;
			int64_t idx = r0;
			memcpy(x + r0 * pd, im->pixel_values,
			       (size_t)(np * pd) * sizeof *x);
			for (int t = 0; t < im->grid_t; t++)
				for (int br = 0; br < im->grid_h / c->merge;
				     br++)
					for (int bc = 0;
					     bc < im->grid_w / c->merge; bc++)
						for (int a = 0; a < c->merge;
						     a++)
							for (int b = 0;
							     b < c->merge;
							     b++, idx++) {
								double
								    row =
									br *
									    c->merge +
									a,
								    col =
									bc *
									    c->merge +
									b;
								float *cr =
								    cs +
								    idx * hd;
								for (int d = 0;
								     d < hd / 2;
								     d++) {
									int j =
									    d < quarter
										? d
										: d - quarter;
									double fr = pow(
									    c->vit_rope_theta,
									    -4.0 *
										j /
										hd);
									double ang =
									    (d < quarter
										 ? row
										 : col) *
									    fr;
									cr[d] = (float)
									    cos(ang);
									cr[hd /
									       2 +
									   d] = (float)
									    sin(ang);
								}
							}
			r0 += np;
		}
	}
	ed_trace_f32(s, "pixel_values", x, 2, (int64_t[]){P, pd});
	ed_k_matmul(s->pool, h, x, P, v->patch.data, v->patch.dt, D, pd, NULL);
	ed_trace_f32(s, "patch_embed_out", h, 2, (int64_t[]){P, D});

	for (int l = 0; l < c->vit_depth; l++) {
		const struct ed_vit_block *bk = &v->blocks[l];
		struct rows_job rj = {SPLIT_ROPE, c, bk, h, hn, qkv,   q, k,
				      vv,	  f, cs, D, F,	heads, hd};
		int64_t r0 = 0;

		ed_pool_for(s->pool, P, 16, layernorm_rows, &rj);
		vit_linear(s, qkv, hn, P, &bk->qkv, &bk->q8[0], bk->qkv_b);
		ed_pool_for(s->pool, P, 16, rows_step, &rj);
		/* attention within each image (each frame of a video) */
		for (size_t i = 0; i < n_img; i++) {
			int64_t per = (int64_t)img[i].grid_h * img[i].grid_w;
			for (int t = 0; t < img[i].grid_t; t++, r0 += per) {
				struct ed_attn a = {
				    per, per, heads, heads,
				    hd,	 D,   -1,    1.0f / sqrtf((float)hd)};
				ed_k_attention(s->pool, att + r0 * D,
					       q + r0 * D, k + r0 * D,
					       vv + r0 * D, &a);
			}
		}
		vit_linear(s, hn, att, P, &bk->proj, &bk->q8[1], bk->proj_b);
		rj.step = ADD_LN2;
		ed_pool_for(s->pool, P, 16, rows_step, &rj);
		vit_linear(s, f, hn, P, &bk->fc1, &bk->q8[2], bk->fc1_b);
		rj.step = GELU;
		ed_pool_for(s->pool, P, 16, rows_step, &rj);
		vit_linear(s, hn, f, P, &bk->fc2, &bk->q8[3], bk->fc2_b);
		rj.step = ADD;
		ed_pool_for(s->pool, P, 16, rows_step, &rj);
		ed_trace_f32(s, "vision_block_out", h, 3, (int64_t[]){1, P, D});
	}
	ed_k_layernorm(hn, h, v->ln_w, v->ln_b, P, D, c->vit_eps);
	ed_trace_f32(s, "vision_out", hn, 2, (int64_t[]){P, D});

	/* resampler: 4 consecutive rows are one merge block */
	sp = malloc((size_t)(T * S) * sizeof *sp);
	tp = malloc((size_t)(T * S * tm) * sizeof *tp);
	t2 = malloc((size_t)(T * (S > H ? S : H)) * sizeof *t2);
	if (!sp || !tp || !t2) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	ed_k_matmul(s->pool, sp, hn, T, v->s1.data, v->s1.dt, S, S, v->s1_b);
	ed_k_gelu_erf(sp, T * S);
	ed_k_matmul(s->pool, t2, sp, T, v->s2.data, v->s2.dt, S, S, v->s2_b);
	ed_k_layernorm(sp, t2, v->s_ln_w, v->s_ln_b, T, S, RESAMPLER_LN_EPS);
	ed_trace_f32(s, "resampler_spatial_out", sp, 2, (int64_t[]){T, S});
	/* temporal: an image is paired with itself ([x, x]); a video pairs
	 * the same cell of frames 2k and 2k+1 */
	{
		int64_t r = 0, o = 0;
		for (size_t i = 0; i < n_img; i++) {
			int64_t cells = (int64_t)(img[i].grid_h / c->merge) *
					(img[i].grid_w / c->merge);
			int64_t groups =
			    img[i].grid_t > 1 ? img[i].grid_t / tm : 1;
			for (int64_t g = 0; g < groups; g++)
				for (int64_t cell = 0; cell < cells;
				     cell++, o++)
					for (int64_t j = 0; j < tm; j++) {
						int64_t frame =
						    img[i].grid_t > 1
							? g * tm + j
							: 0;
						memcpy(tp + (o * tm + j) * S,
						       sp + (r + frame * cells +
							     cell) *
								S,
						       (size_t)S * sizeof *tp);
					}
			r += (int64_t)img[i].grid_t * cells;
		}
		T = o;
	}
	ed_k_matmul(s->pool, t2, tp, T, v->t1.data, v->t1.dt, S, S * tm,
		    v->t1_b);
	ed_k_gelu_erf(t2, T * S);
	ed_k_matmul(s->pool, tp, t2, T, v->t2.data, v->t2.dt, S, S, v->t2_b);
	ed_k_layernorm(sp, tp, v->t_ln_w, v->t_ln_b, T, S, RESAMPLER_LN_EPS);
	ed_trace_f32(s, "resampler_temporal_out", sp, 2, (int64_t[]){T, S});
	ed_k_matmul(s->pool, t2, sp, T, v->mlp.data, v->mlp.dt, H, S, v->mlp_b);
	ed_k_rmsnorm(out, t2, v->after_norm, T, H, c->rms_eps);
	ed_trace_f32(s, "projector_out", out, 2, (int64_t[]){T, H});
out:
	free(x);
	free(h);
	free(hn);
	free(qkv);
	free(q);
	free(k);
	free(vv);
	free(att);
	free(f);
	free(cs);
	free(sp);
	free(tp);
	free(t2);
	return rc;
}
