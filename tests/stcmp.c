/*
 * stcmp.c - compare one tensor of a safetensors file with one of another
 * under the golden rule max|a - b| <= rtol * max|b|. Prints the relative
 * error; exit 0 when within rtol, 1 when not, 2 on a missing tensor or a
 * shape mismatch. usage: stcmp A NAME_A B NAME_B RTOL
 *
 * stcmp --golden OURS EXPECTED checks every tensor of EXPECTED against the
 * same name in OURS with the golden README's rules: integers exact
 * (router_topk_ids as sets per token), pixel_values 1e-6, the rest 1e-4
 * (tests/golden.h).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tests/golden.h"

static int golden(const char *ours, const char *expected)
{
	struct ed_st *a, *b;
	char err[512];
	int bad = 0;

	if (ed_model_st_open(&a, ours, err, sizeof err) ||
	    ed_model_st_open(&b, expected, err, sizeof err)) {
		fprintf(stderr, "stcmp: %s\n", err);
		return 2;
	}
	for (size_t i = 0; i < ed_model_st_count(b); i++) {
		const struct ed_tensor *e = ed_model_st_at(b, i);
		const struct ed_tensor *g = ed_model_st_find(a, e->name);
		double r, tol = t_golden_rtol(e);
		bool ok;

		if (!g || g->ndim != e->ndim ||
		    memcmp(g->shape, e->shape,
			   sizeof(int64_t) * (size_t)e->ndim)) {
			printf("%-32s MISSING or wrong shape\n", e->name);
			bad++;
			continue;
		}
		if (strncmp(e->name, "router_topk_ids", 15) == 0) {
			ok = t_golden_sets(g, e);
			printf("%-32s %s\n", e->name,
			       ok ? "same sets" : "DIFFERENT");
		} else {
			r = t_golden_rel(g, e);
			ok = r <= tol;
			printf("%-32s rel %.3g %s\n", e->name, r,
			       ok ? "ok" : "FAIL");
		}
		bad += !ok;
	}
	ed_model_st_close(a);
	ed_model_st_close(b);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--golden") == 0)
		return golden(argv[2], argv[3]);
	struct ed_st *a, *b;
	const struct ed_tensor *ta, *tb;
	char err[512];
	double r, rtol;
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
	r = t_golden_rel(ta, tb);
	printf("%s: rel err %.3g over %lld values\n", argv[2], r, (long long)n);
	ed_model_st_close(a);
	ed_model_st_close(b);
	return r <= rtol ? 0 : 1;
}
