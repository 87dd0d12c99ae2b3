/*
 * state.c - what decoder.c, vision.c and session.c all use of a
 * session: the KV cache's growth and the trace hooks. Below the three,
 * so that calls inside model/ run one way (session -> decoder, vision ->
 * state).
 */
#include "model_int.h"

#include <stdlib.h>
#include <string.h>

int ed_session_reserve(struct ed_session *s, int64_t need, char *err,
		       size_t errlen)
{
	int layers = s->m->cfg.layers;
	size_t row = (size_t)s->m->cfg.kv_heads * (size_t)s->m->cfg.head_dim *
		     sizeof(float);
	int64_t cap;

	if (need <= s->kv_cap)
		return 0;
	if (need > s->max_ctx)
		return ed_err(err, errlen, ED_ETOOBIG,
			      "%lld tokens exceed the context of %lld",
			      (long long)need, (long long)s->max_ctx);
	if (!s->kcache) {
		s->kcache = calloc((size_t)layers, sizeof *s->kcache);
		s->vcache = calloc((size_t)layers, sizeof *s->vcache);
		if (!s->kcache || !s->vcache) {
			free(s->kcache); /* both or neither */
			free(s->vcache);
			s->kcache = s->vcache = NULL;
			goto nomem;
		}
	}
	/* doubling, from 256 positions, capped at the context */
	cap = ED_MAX(need,
		     ED_MIN(s->max_ctx, ED_MAX((int64_t)256, 2 * s->kv_cap)));
	for (int l = 0; l < layers; l++) {
		float *k = realloc(s->kcache[l], (size_t)cap * row), *v;
		if (!k)
			goto nomem;
		s->kcache[l] = k;
		v = realloc(s->vcache[l], (size_t)cap * row);
		if (!v)
			goto nomem;
		s->vcache[l] = v;
	}
	s->kv_cap = cap;
	return 0;
nomem:
	/* what grew stays (kv_cap still tells the room all layers have) */
	return ed_err(err, errlen, ED_ENOMEM,
		      "out of memory for a %lld-position cache",
		      (long long)need);
}

static void trace(struct ed_session *s, const char *name, enum ed_dtype dt,
		  const void *d, int ndim, const int64_t *shape)
{
	struct ed_tensor t = {
	    .name = name, .dtype = dt, .ndim = ndim, .data = d};

	if (!s->trace)
		return;
	memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
	t.nbytes = (size_t)ed_model_tensor_numel(&t) * ed_model_dtype_size(dt);
	s->trace(s->trace_ud, &t);
}

void ed_trace_f32(struct ed_session *s, const char *name, const float *d,
		  int ndim, const int64_t *shape)
{
	trace(s, name, ED_DT_F32, d, ndim, shape);
}

void ed_trace_i64(struct ed_session *s, const char *name, const int64_t *d,
		  int ndim, const int64_t *shape)
{
	trace(s, name, ED_DT_I64, d, ndim, shape);
}
