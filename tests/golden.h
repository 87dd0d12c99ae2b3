/*
 * golden.h - the golden README's comparison rules, shared by test_model
 * and stcmp: per tensor max|got - exp| <= rtol * max|exp| with rtol 0 for
 * integers, 1e-6 for pixel_values and 1e-4 for the rest, and
 * router_topk_ids compared as sets per token.
 */
#ifndef ED_TEST_GOLDEN_H
#define ED_TEST_GOLDEN_H

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "model/model.h"

/* max|a - b| / max|b|, so that the rule is rel <= rtol (an all-zero b
 * allows no difference; a NaN on one side only is infinitely off) */
static inline double t_golden_rel(const struct ed_tensor *a,
				  const struct ed_tensor *b)
{
	double md = 0, mb = 0;
	int64_t n = ed_model_tensor_numel(b);

	for (int64_t i = 0; i < n; i++) {
		double x = ed_model_tensor_get(a, i),
		       y = ed_model_tensor_get(b, i);
		md = fmax(md, fabs(x - y));
		mb = fmax(mb, fabs(y));
		if (isnan(x) != isnan(y))
			md = INFINITY;
	}
	return mb > 0 ? md / mb : md > 0 ? INFINITY : 0;
}

static inline double t_golden_rtol(const struct ed_tensor *e)
{
	if (e->dtype == ED_DT_I64)
		return 0;
	return strcmp(e->name, "pixel_values") == 0 ? 1e-6 : 1e-4;
}

/* rows of top-k ids: the same set in every row */
static inline bool t_golden_sets(const struct ed_tensor *a,
				 const struct ed_tensor *b)
{
	int64_t rows = b->shape[0], k = b->ndim > 1 ? b->shape[1] : 1;

	for (int64_t r = 0; r < rows; r++)
		for (int64_t i = 0; i < k; i++) {
			bool found = false;
			for (int64_t j = 0; j < k; j++)
				found |= ed_model_tensor_get(a, r * k + i) ==
					 ed_model_tensor_get(b, r * k + j);
			if (!found)
				return false;
		}
	return true;
}

#endif
