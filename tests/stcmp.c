/*
 * stcmp.c - compare one tensor of a safetensors file with one of another
 * under the golden rule max|a - b| <= rtol * max|b|. Prints the relative
 * error; exit 0 when within rtol, 1 when not, 2 on a missing tensor or a
 * shape mismatch. usage: stcmp A NAME_A B NAME_B RTOL
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int main(int argc, char **argv)
{
	struct ed_st *a, *b;
	const struct ed_tensor *ta, *tb;
	char err[512];
	double md = 0, mb = 0, rtol;
	int64_t n;

	if (argc != 6 || ed_parse_double(argv[5], 0, 1, &rtol)) {
		fprintf(stderr, "usage: stcmp A NAME_A B NAME_B RTOL\n");
		return 2;
	}
	if (ed_model_st_open(&a, argv[1], err, sizeof err) ||
	    ed_model_st_open(&b, argv[3], err, sizeof err)) {
		fprintf(stderr, "stcmp: %s\n", err);
		return 2;
	}
	ta = ed_model_st_find(a, argv[2]);
	tb = ed_model_st_find(b, argv[4]);
	if (!ta || !tb) {
		fprintf(stderr, "stcmp: tensor missing\n");
		return 2;
	}
	n = ed_model_tensor_numel(ta);
	if (n != ed_model_tensor_numel(tb) || ta->ndim != tb->ndim ||
	    memcmp(ta->shape, tb->shape, sizeof(int64_t) * (size_t)ta->ndim)) {
		fprintf(stderr, "stcmp: shapes differ\n");
		return 2;
	}
	for (int64_t i = 0; i < n; i++) {
		double x = ed_model_tensor_get(ta, i),
		       y = ed_model_tensor_get(tb, i);
		md = fmax(md, fabs(x - y));
		mb = fmax(mb, fabs(y));
		if (isnan(x) != isnan(y))
			md = INFINITY;
	}
	printf("%s: rel err %.3g over %lld values\n", argv[2],
	       mb > 0 ? md / mb : md, (long long)n);
	ed_model_st_close(a);
	ed_model_st_close(b);
	return (mb > 0 ? md / mb : md) <= rtol ? 0 : 1;
}
