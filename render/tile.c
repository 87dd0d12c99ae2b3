/*
 * tile.c - an image to the ViT's input, exactly as the reference processor
 * (transformers' Ernie4_5_VLMoeImageProcessorPil) computes it:
 *
 *   smart_resize (factor 28, Python round-half-to-even) -> Pillow 8-bit
 *   BICUBIC resize, bit for bit -> x * (1/255) in double, cast to float ->
 *   (x - mean) / std in float -> 14x14 patches, each (c, py, px) = 588
 *   values, patches in 2x2 merge-block order.
 *
 * Bit-exactness matters: a one-level uint8 difference moves a pixel value by
 * ~0.015 after normalization. The float code here must not be contracted
 * into FMAs (the Makefile builds with -ffp-contract=off).
 */
#include "render_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

void ed_render_tile_params_default(struct ed_tile_params *p)
{
	static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
	static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

	p->patch = 14;
	p->merge = 2;
	p->min_pixels = ED_TILE_MIN_PIXELS;
	p->max_pixels = ED_TILE_MAX_PIXELS;
	memcpy(p->mean, mean, sizeof mean);
	memcpy(p->std, std, sizeof std);
}

int ed_render_tile_smart_resize(int height, int width, int factor,
				uint64_t min_pixels, uint64_t max_pixels,
				int *out_h, int *out_w, char *err,
				size_t errlen)
{
	double h = height, w = width, f = factor;
	double hb, wb;

	if (height <= 0 || width <= 0 || factor <= 0)
		return ed_err(err, errlen, ED_EFORMAT, "bad image size %dx%d",
			      width, height);
	if (ED_MAX(h, w) / ED_MIN(h, w) > 200)
		return ed_err(err, errlen, ED_EFORMAT,
			      "aspect ratio of %dx%d exceeds 200:1, which the "
			      "model's image processor refuses",
			      width, height);
	/* rint() rounds half to even under the default rounding mode, as
	 * Python's round() does: 70/28 = 2.5 -> 2 */
	hb = rint(h / f) * f;
	wb = rint(w / f) * f;
	if (hb * wb > (double)max_pixels) {
		double beta = sqrt(h * w / (double)max_pixels);
		hb = ED_MAX(f, floor(h / beta / f) * f);
		wb = ED_MAX(f, floor(w / beta / f) * f);
	} else if (hb * wb < (double)min_pixels) {
		double beta = sqrt((double)min_pixels / (h * w));
		hb = ceil(h * beta / f) * f;
		wb = ceil(w * beta / f) * f;
	}
	if (hb > 1 << 20 || wb > 1 << 20)
		return ed_err(err, errlen, ED_ETOOBIG,
			      "resized image %gx%g is too large", wb, hb);
	*out_h = (int)hb;
	*out_w = (int)wb;
	return 0;
}

/* Pillow's bicubic_filter (a = -0.5), same operation order. */
static double bicubic(double x)
{
	const double a = -0.5;

	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/*
 * Weights of output sample xx over the input (Pillow's precompute_coeffs
 * for one sample): window [*xmin, *xmin + n), k[0..n) normalized doubles.
 */
static int coeffs_one(int in_size, int out_size, int xx, double *k, int ksize,
		      int *xmin_out)
{
	double scale = (double)in_size / out_size;
	double filterscale = scale < 1.0 ? 1.0 : scale;
	double support = 2.0 * filterscale;
	double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
	int xmin, xmax, x;

	xmin = (int)(center - support + 0.5);
	if (xmin < 0)
		xmin = 0;
	xmax = (int)(center + support + 0.5);
	if (xmax > in_size)
		xmax = in_size;
	xmax -= xmin;
	for (x = 0; x < xmax; x++) {
		double w = bicubic((x + xmin - center + 0.5) * ss);
		k[x] = w;
		ww += w;
	}
	for (x = 0; x < xmax; x++)
		if (ww != 0.0)
			k[x] /= ww;
	for (; x < ksize; x++)
		k[x] = 0;
	*xmin_out = xmin;
	return xmax;
}

static int ksize_for(int in_size, int out_size)
{
	double scale = (double)in_size / out_size;
	double support = 2.0 * (scale < 1.0 ? 1.0 : scale);
	return (int)ceil(support) * 2 + 1;
}

/* Double weights to 22-bit fixed point, rounded half away from zero. */
static int32_t fixed(double k)
{
	return k < 0 ? (int32_t)(-0.5 + k * (1 << PRECISION_BITS))
		     : (int32_t)(0.5 + k * (1 << PRECISION_BITS));
}

static uint8_t clip8(int32_t v)
{
	if (v <= 0)
		return 0;
	if (v >= (255 << PRECISION_BITS))
		return (uint8_t)ED_MIN(255, v >> PRECISION_BITS);
	return (uint8_t)(v >> PRECISION_BITS);
}

struct coeffs {
	int ksize;
	int *bounds; /* xmin, n per output sample */
	int32_t *k;  /* [out][ksize] */
};

static int coeffs_build(int in_size, int out_size, struct coeffs *c)
{
	double *tmp;
	int xx;

	c->ksize = ksize_for(in_size, out_size);
	c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
	c->k = malloc((size_t)out_size * (size_t)c->ksize * sizeof *c->k);
	tmp = malloc((size_t)c->ksize * sizeof *tmp);
	if (!c->bounds || !c->k || !tmp) {
		/* cleared: the caller frees both coefficient sets either way */
		free(c->bounds);
		free(c->k);
		free(tmp);
		c->bounds = NULL;
		c->k = NULL;
		return ED_ENOMEM;
	}
	for (xx = 0; xx < out_size; xx++) {
		int xmin,
		    n = coeffs_one(in_size, out_size, xx, tmp, c->ksize, &xmin);
		c->bounds[2 * xx] = xmin;
		c->bounds[2 * xx + 1] = n;
		for (int x = 0; x < c->ksize; x++)
			c->k[(size_t)xx * c->ksize + x] = fixed(tmp[x]);
	}
	free(tmp);
	return 0;
}

static void coeffs_free(struct coeffs *c)
{
	free(c->bounds);
	free(c->k);
}

/* Horizontal pass over input rows [y0, y0 + rows) into tmp (w_out wide). */
static void pass_h(const struct ed_image *in, int y0, int rows, int w_out,
		   const struct coeffs *c, uint8_t *tmp)
{
	for (int y = 0; y < rows; y++) {
		const uint8_t *src = in->rgb + (size_t)(y + y0) * in->width * 3;
		uint8_t *dst = tmp + (size_t)y * w_out * 3;
		for (int xx = 0; xx < w_out; xx++) {
			const int32_t *k = c->k + (size_t)xx * c->ksize;
			const uint8_t *s = src + (size_t)c->bounds[2 * xx] * 3;
			int n = c->bounds[2 * xx + 1];
			int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0,
				s2 = s0;
			for (int x = 0; x < n; x++) {
				s0 += s[3 * x] * k[x];
				s1 += s[3 * x + 1] * k[x];
				s2 += s[3 * x + 2] * k[x];
			}
			dst[3 * xx] = clip8(s0);
			dst[3 * xx + 1] = clip8(s1);
			dst[3 * xx + 2] = clip8(s2);
		}
	}
}

/* Vertical pass: src has w columns; bounds are relative to src row 0. */
static void pass_v(const uint8_t *src, int w, int h_out, const struct coeffs *c,
		   int shift, uint8_t *dst)
{
	size_t stride = (size_t)w * 3;

	for (int yy = 0; yy < h_out; yy++) {
		const int32_t *k = c->k + (size_t)yy * c->ksize;
		int ymin = c->bounds[2 * yy] - shift, n = c->bounds[2 * yy + 1];
		uint8_t *d = dst + (size_t)yy * stride;
		for (size_t xx = 0; xx < stride; xx++) {
			const uint8_t *s = src + (size_t)ymin * stride + xx;
			int32_t acc = 1 << (PRECISION_BITS - 1);
			for (int y = 0; y < n; y++)
				acc += s[(size_t)y * stride] * k[y];
			d[xx] = clip8(acc);
		}
	}
}

int ed_render_tile_resize(const struct ed_image *in, int out_w, int out_h,
			  struct ed_image *out, char *err, size_t errlen)
{
	struct coeffs ch = {0}, cv = {0};
	bool need_h = out_w != in->width, need_v = out_h != in->height;
	uint8_t *tmp = NULL;
	int rc;

	if ((rc = ed_render_image_init(out, out_w, out_h, err, errlen)))
		return rc;
	if (!need_h && !need_v) {
		memcpy(out->rgb, in->rgb, (size_t)out_w * out_h * 3);
		return 0;
	}
	if (coeffs_build(in->width, out_w, &ch) ||
	    coeffs_build(in->height, out_h, &cv)) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out_free;
	}
	if (need_h) {
		/* only the input rows the vertical pass will read */
		int first = cv.bounds[0];
		int last = cv.bounds[2 * out_h - 2] + cv.bounds[2 * out_h - 1];
		if (!need_v) {
			pass_h(in, 0, in->height, out_w, &ch, out->rgb);
			goto out_free;
		}
		tmp = malloc((size_t)(last - first) * out_w * 3);
		if (!tmp) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out_free;
		}
		pass_h(in, first, last - first, out_w, &ch, tmp);
		pass_v(tmp, out_w, out_h, &cv, first, out->rgb);
	} else {
		pass_v(in->rgb, in->width, out_h, &cv, 0, out->rgb);
	}
out_free:
	free(tmp);
	coeffs_free(&ch);
	coeffs_free(&cv);
	if (rc)
		ed_render_image_release(out);
	return rc;
}

/*
 * Reference: every output pixel computed on its own from freshly derived
 * weights (no tables, no row window bookkeeping). Slow; for tests.
 */
int ed_render_tile_resize_ref(const struct ed_image *in, int out_w, int out_h,
			      struct ed_image *out, char *err, size_t errlen)
{
	int kh = ksize_for(in->width, out_w), kv = ksize_for(in->height, out_h);
	double *wh = malloc((size_t)kh * sizeof *wh);
	double *wv = malloc((size_t)kv * sizeof *wv);
	int rc;

	if (!wh || !wv) {
		free(wh);
		free(wv);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	if ((rc = ed_render_image_init(out, out_w, out_h, err, errlen)))
		goto out_free;
	for (int yy = 0; yy < out_h; yy++) {
		int ymin, ny = coeffs_one(in->height, out_h, yy, wv, kv, &ymin);
		for (int xx = 0; xx < out_w; xx++) {
			int xmin, nx = coeffs_one(in->width, out_w, xx, wh, kh,
						  &xmin);
			for (int c = 0; c < 3; c++) {
				int32_t acc = 1 << (PRECISION_BITS - 1);
				for (int y = 0; y < ny; y++) {
					const uint8_t *row =
					    in->rgb +
					    (size_t)(ymin + y) * in->width * 3;
					uint8_t hv;
					if (out_w == in->width) {
						hv = row[xx * 3 + c];
					} else {
						int32_t s =
						    1 << (PRECISION_BITS - 1);
						for (int x = 0; x < nx; x++)
							s +=
							    row[(xmin + x) * 3 +
								c] *
							    fixed(wh[x]);
						hv = clip8(s);
					}
					if (out_h == in->height) {
						if (ymin + y == yy) {
							acc = hv;
							break;
						}
						continue;
					}
					acc += hv * fixed(wv[y]);
				}
				out->rgb[((size_t)yy * out_w + xx) * 3 + c] =
				    out_h == in->height ? (uint8_t)acc
							: clip8(acc);
			}
		}
	}
out_free:
	free(wh);
	free(wv);
	return rc;
}

size_t ed_render_tiles_tokens(const struct ed_tiles *t, int merge)
{
	return t->npatches / (size_t)(merge * merge);
}

int ed_render_tile_image(const struct ed_image *img,
			 const struct ed_tile_params *p, struct ed_tiles *out,
			 struct ed_image *resized, char *err, size_t errlen)
{
	struct ed_image r;
	float lut[3][256];
	int rh, rw, rc, ps = p->patch, m = p->merge, gh, gw;
	size_t dim, idx = 0;

	memset(out, 0, sizeof *out);
	if (resized)
		memset(resized, 0, sizeof *resized);
	if (ps <= 0 || m <= 0)
		return ed_err(err, errlen, ED_EINVAL, "bad tiling parameters");
	if ((rc = ed_render_tile_smart_resize(img->height, img->width, ps * m,
					      p->min_pixels, p->max_pixels, &rh,
					      &rw, err, errlen)))
		return rc;
	if ((rc = ed_render_tile_resize(img, rw, rh, &r, err, errlen)))
		return rc;
	/* per-channel table of the exact float result for each byte */
	for (int c = 0; c < 3; c++)
		for (int v = 0; v < 256; v++) {
			float x = (float)((double)v * (1.0 / 255.0));
			lut[c][v] = (x - p->mean[c]) / p->std[c];
		}
	gh = rh / ps;
	gw = rw / ps;
	dim = (size_t)3 * ps * ps;
	out->pixel_values = malloc((size_t)gh * gw * dim * sizeof(float));
	if (!out->pixel_values) {
		ed_render_image_release(&r);
		return ed_err(err, errlen, ED_ENOMEM,
			      "out of memory for %dx%d patches", gw, gh);
	}
	for (int br = 0; br < gh / m; br++)
		for (int bc = 0; bc < gw / m; bc++)
			for (int i = 0; i < m; i++)
				for (int j = 0; j < m; j++) {
					int pr = br * m + i, pc = bc * m + j;
					float *dst =
					    out->pixel_values + idx++ * dim;
					for (int c = 0; c < 3; c++)
						for (int py = 0; py < ps;
						     py++) {
							const uint8_t *src =
							    r.rgb +
							    ((size_t)(pr * ps +
								      py) *
								 rw +
							     (size_t)pc * ps) *
								3 +
							    c;
							for (int px = 0;
							     px < ps; px++)
								*dst++ = lut
								    [c]
								    [src[3 *
									 px]];
						}
				}
	out->orig_w = img->width;
	out->orig_h = img->height;
	out->resized_w = rw;
	out->resized_h = rh;
	out->grid_t = 1;
	out->grid_h = gh;
	out->grid_w = gw;
	out->npatches = (size_t)gh * gw;
	out->patch_dim = (int)dim;
	if (resized)
		*resized = r;
	else
		ed_render_image_release(&r);
	return 0;
}

void ed_render_tiles_release(struct ed_tiles *t)
{
	if (!t)
		return;
	free(t->pixel_values);
	memset(t, 0, sizeof *t);
}
