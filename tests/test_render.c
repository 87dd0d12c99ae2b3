/*
 * test_render.c - render/: tiling against ../shared/golden/preprocess
 * (resized images bit for bit, pixel values within 1e-6), the fast resize
 * against its reference, every format decoder on files the test writes
 * with the same libraries (TIFF photometrics, compressions, strips and
 * tiles; PNG color types; JPEG gray/RGB/CMYK), the corpus, caps.
 */
#include "tests/harness.h"
#include "tests/util.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>
#include <unistd.h>

#include "model/model.h"
#include "render/render.h"

static char tmpdir[512];

static const char *tmp(const char *name, char *buf, size_t n)
{
	if ((size_t)snprintf(buf, n, "%s/%s", tmpdir, name) >= n)
		buf[0] = '\0';
	return buf;
}

/* Deterministic test pattern. */
static bool smooth; /* lossy codecs get a smooth pattern */

static uint8_t pat(int x, int y, int c)
{
	if (smooth)
		return (uint8_t)(40 + x * 3 + y * 2 + c * 30);
	return (uint8_t)(c == 0	  ? x * 7 + y
			 : c == 1 ? y * 11 + 3 * x
				  : (x ^ y) * 5 + 17);
}

static unsigned rnd_state = 12345;
static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 16;
}

/* Open a document from a file (kept in *data until released). */
static int open_file(const char *path, const char *pw, struct ed_doc **doc,
		     unsigned char **data, char *err, size_t errlen)
{
	size_t len;

	*data = t_read_file(path, &len);
	*doc = NULL;
	if (!*data)
		return ed_err(err, errlen, ED_ENOENT, "cannot read %s", path);
	return ed_render_doc_open(doc, *data, len, pw, NULL, err, errlen);
}

/* max |a-b| over all bytes, and the mean */
static int img_diff(const struct ed_image *a, const struct ed_image *b,
		    double *mean)
{
	int worst = 0;
	double sum = 0;
	size_t n = (size_t)a->width * a->height * 3;

	if (a->width != b->width || a->height != b->height)
		return 999;
	for (size_t i = 0; i < n; i++) {
		int d = abs((int)a->rgb[i] - (int)b->rgb[i]);
		worst = d > worst ? d : worst;
		sum += d;
	}
	if (mean)
		*mean = n ? sum / (double)n : 0;
	return worst;
}

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
			CHECK(r <= 1e-6, "%s: pixel_values rel err %g", name,
			      r);
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
				int64_t row =
				    (int64_t)ed_model_tensor_get(idx, i);
				for (int j = 0; j < 588; j++)
					e[j] = ed_model_tensor_get(rows,
								   i * 588 + j);
				double r = t_rel_err(
				    t.pixel_values + (size_t)row * 588, e, 588);
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
			CHECK(fabs(sum - e) <=
				  1e-6 * fmax(1, fabs(e)) + 1e-6 * (double)n,
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

/* ---- fast resize vs reference ------------------------------------- */

static void test_resize_ref(void)
{
	static const int sizes[][4] = {
	    /* in_w, in_h, out_w, out_h */
	    {37, 29, 84, 56},	  {101, 77, 56, 28}, {64, 64, 64, 32},
	    {50, 30, 80, 30},	  {1, 1, 28, 28},    {300, 17, 140, 28},
	    {333, 500, 112, 168}, {29, 31, 29, 31},  {17, 250, 28, 84},
	};
	char err[256];

	for (size_t k = 0; k < ED_ARRAY_LEN(sizes); k++) {
		struct ed_image in, a, b;
		double mean;
		int worst;

		ed_render_image_init(&in, sizes[k][0], sizes[k][1], err,
				     sizeof err);
		for (size_t i = 0; i < (size_t)in.width * in.height * 3; i++)
			in.rgb[i] = (uint8_t)rnd();
		CHECK_INT(ed_render_tile_resize(&in, sizes[k][2], sizes[k][3],
						&a, err, sizeof err),
			  0);
		CHECK_INT(ed_render_tile_resize_ref(&in, sizes[k][2],
						    sizes[k][3], &b, err,
						    sizeof err),
			  0);
		worst = img_diff(&a, &b, &mean);
		CHECK(worst == 0,
		      "resize %dx%d -> %dx%d: fast and reference "
		      "differ by up to %d",
		      sizes[k][0], sizes[k][1], sizes[k][2], sizes[k][3],
		      worst);
		ed_render_image_release(&in);
		ed_render_image_release(&a);
		ed_render_image_release(&b);
	}
}

static void test_smart_resize(void)
{
	/* expected values computed with the reference Python formula */
	static const int cases[][4] = {
	    {768, 1024, 756, 1036},   {1100, 850, 1092, 840},
	    {3508, 2480, 2604, 1848}, {29, 37, 56, 84},
	    {200, 5000, 196, 5012},   {42, 70, 56, 56},
	    {1, 1, 56, 56},	      {14, 14, 56, 56},
	    {2200, 1700, 2212, 1708}, {6000, 6000, 2184, 2184},
	    {1754, 1240, 1764, 1232}, {10, 2000, 28, 812},
	    {3, 600, 28, 812},	      {99, 99, 112, 112},
	    {4000, 3000, 2520, 1904}, {7016, 4960, 2604, 1848},
	    {1, 200, 28, 812},
	};
	char err[256];
	int h, w;

	for (size_t k = 0; k < ED_ARRAY_LEN(cases); k++) {
		int rc = ed_render_tile_smart_resize(
		    cases[k][0], cases[k][1], 28, ED_TILE_MIN_PIXELS,
		    ED_TILE_MAX_PIXELS, &h, &w, err, sizeof err);
		CHECK(rc == 0 && h == cases[k][2] && w == cases[k][3],
		      "smart_resize(%d, %d) = %d, %d; want %d, %d (rc %d)",
		      cases[k][0], cases[k][1], h, w, cases[k][2], cases[k][3],
		      rc);
	}
	CHECK_INT(ed_render_tile_smart_resize(1, 201, 28, ED_TILE_MIN_PIXELS,
					      ED_TILE_MAX_PIXELS, &h, &w, err,
					      sizeof err),
		  ED_EFORMAT);
	CHECK(strstr(err, "200") != NULL, "ratio message: %s", err);
	/* a smaller budget: 1024x768 at max 28*28*100 */
	CHECK_INT(ed_render_tile_smart_resize(768, 1024, 28, 3136, 78400, &h,
					      &w, err, sizeof err),
		  0);
	CHECK(h == 224 && w == 308, "budgeted: %dx%d", h, w);
}

static void test_tile_layout(void)
{
	/* a 56x28 image: grid 2x4 patches, 2 merge blocks; each pixel
	 * encodes its own coordinates so the layout can be checked */
	struct ed_image img;
	struct ed_tiles t;
	struct ed_tile_params tp;
	char err[256];

	ed_render_image_init(&img, 56, 28, err, sizeof err);
	for (int y = 0; y < 28; y++)
		for (int x = 0; x < 56; x++) {
			img.rgb[(y * 56 + x) * 3] = (uint8_t)x;
			img.rgb[(y * 56 + x) * 3 + 1] = (uint8_t)y;
			img.rgb[(y * 56 + x) * 3 + 2] = 200;
		}
	ed_render_tile_params_default(&tp);
	tp.min_pixels = 1;
	CHECK_INT(ed_render_tile_image(&img, &tp, &t, NULL, err, sizeof err),
		  0);
	CHECK(t.grid_t == 1 && t.grid_h == 2 && t.grid_w == 4, "grid %dx%dx%d",
	      t.grid_t, t.grid_h, t.grid_w);
	CHECK_INT(ed_render_tiles_tokens(&t, 2), 2);
	/* patch k of block b is at row 2*(b/2)+k/2... here one block row:
	 * block 0 = patches (0,0),(0,1),(1,0),(1,1); block 1 = (0,2),(0,3),
	 * (1,2),(1,3) */
	{
		static const int want[8][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1},
					       {0, 2}, {0, 3}, {1, 2}, {1, 3}};
		int bad = 0;
		for (int p = 0; p < 8; p++)
			for (int py = 0; py < 14; py++)
				for (int px = 0; px < 14; px++) {
					int x = want[p][1] * 14 + px;
					int y = want[p][0] * 14 + py;
					float r = t.pixel_values[p * 588 +
								 py * 14 + px];
					float g = t.pixel_values[p * 588 + 196 +
								 py * 14 + px];
					float er = ((float)((double)x *
							    (1.0 / 255.0)) -
						    tp.mean[0]) /
						   tp.std[0];
					float eg = ((float)((double)y *
							    (1.0 / 255.0)) -
						    tp.mean[1]) /
						   tp.std[1];
					bad += r != er || g != eg;
				}
		CHECK(bad == 0, "%d values out of place", bad);
	}
	ed_render_tiles_release(&t);
	ed_render_image_release(&img);
}

/* ---- TIFF ---------------------------------------------------------- */

enum tkind {
	T_RGB,
	T_RGBA,
	T_GRAY,
	T_GRAY_W,
	T_GRAY16,
	T_PAL,
	T_BILEVEL,
	T_BILEVEL_B,
	T_CMYK,
	T_YCBCR_JPEG
};

struct tspec {
	const char *name;
	enum tkind kind;
	uint16_t compression;
	bool tiled, separate;
	int tolerance; /* max abs difference allowed */
};

static uint8_t bit(int x, int y)
{
	return ((x / 3 + y / 2) % 3) == 0;
}

/* The RGB the decoder must produce for the pattern written as kind. */
static void expect_px(enum tkind k, int x, int y, uint8_t out[3])
{
	for (int c = 0; c < 3; c++) {
		uint8_t v = pat(x, y, c), g = pat(x, y, 0);
		switch (k) {
		case T_RGB:
		case T_YCBCR_JPEG: out[c] = v; break;
		case T_RGBA: {
			unsigned a = pat(x, y, 1) | 0x40;
			out[c] =
			    (uint8_t)((v * a + 255 * (255 - a) + 127) / 255);
			break;
		}
		case T_GRAY:
		case T_GRAY16:
		case T_PAL: out[c] = g; break;
		case T_GRAY_W: out[c] = (uint8_t)(255 - g); break;
		case T_BILEVEL:
			out[c] = bit(x, y) ? 0 : 255;
			break; /* 1 = black */
		case T_BILEVEL_B:
			out[c] = bit(x, y) ? 255 : 0;
			break; /* 1 = white */
		case T_CMYK: {
			unsigned ink = pat(x, y, c), kk = 40;
			out[c] = (uint8_t)((255 - ink) * (255 - kk) / 255);
			break;
		}
		}
	}
}

static void write_tiff(const char *path, const struct tspec *s, int w, int h,
		       int extra_dirs)
{
	TIFF *t = TIFFOpen(path, "w");
	int spp = 3, bps = 8;
	uint16_t photo = PHOTOMETRIC_RGB;

	switch (s->kind) {
	case T_RGBA: spp = 4; break;
	case T_GRAY:
	case T_GRAY_W:
		spp = 1;
		photo = s->kind == T_GRAY ? PHOTOMETRIC_MINISBLACK
					  : PHOTOMETRIC_MINISWHITE;
		break;
	case T_GRAY16:
		spp = 1;
		bps = 16;
		photo = PHOTOMETRIC_MINISBLACK;
		break;
	case T_PAL:
		spp = 1;
		photo = PHOTOMETRIC_PALETTE;
		break;
	case T_BILEVEL:
		spp = 1;
		bps = 1;
		photo = PHOTOMETRIC_MINISWHITE;
		break;
	case T_BILEVEL_B:
		spp = 1;
		bps = 1;
		photo = PHOTOMETRIC_MINISBLACK;
		break;
	case T_CMYK:
		spp = 4;
		photo = PHOTOMETRIC_SEPARATED;
		break;
	case T_YCBCR_JPEG: photo = PHOTOMETRIC_YCBCR; break;
	case T_RGB: break;
	}
	TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
	TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
	TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
	TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bps);
	TIFFSetField(t, TIFFTAG_PHOTOMETRIC, photo);
	TIFFSetField(t, TIFFTAG_COMPRESSION, s->compression);
	TIFFSetField(t, TIFFTAG_PLANARCONFIG,
		     s->separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
	TIFFSetField(t, TIFFTAG_XRESOLUTION, 118.11f);
	TIFFSetField(t, TIFFTAG_YRESOLUTION, 118.11f);
	TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
	if (s->kind == T_RGBA) {
		uint16_t es = EXTRASAMPLE_UNASSALPHA;
		TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &es);
	}
	if (s->kind == T_CMYK)
		TIFFSetField(t, TIFFTAG_INKSET, INKSET_CMYK);
	if (s->kind == T_YCBCR_JPEG) {
		TIFFSetField(t, TIFFTAG_JPEGQUALITY, 95);
		TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
	}
	if (s->kind == T_PAL) {
		uint16_t *r = calloc(256, 2), *g = calloc(256, 2),
			 *b = calloc(256, 2);
		for (int i = 0; i < 256; i++)
			r[i] = g[i] = b[i] = (uint16_t)(i * 257);
		TIFFSetField(t, TIFFTAG_COLORMAP, r, g, b);
		free(r), free(g), free(b);
	}
	if (s->tiled) {
		TIFFSetField(t, TIFFTAG_TILEWIDTH, 16);
		TIFFSetField(t, TIFFTAG_TILELENGTH, 16);
	} else {
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP,
			     s->kind == T_YCBCR_JPEG ? 16 : 5);
	}
	/* whole-image buffers, one per plane when separate */
	{
		int planes = s->separate ? spp : 1,
		    pspp = s->separate ? 1 : spp;
		size_t rowbytes =
		    bps == 1 ? (size_t)(w + 7) / 8 : (size_t)w * pspp * bps / 8;
		for (int pl = 0; pl < planes; pl++) {
			unsigned char *img = calloc((size_t)h, rowbytes);
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++)
					for (int c = 0; c < pspp; c++) {
						int ch = s->separate ? pl : c;
						unsigned char *row =
						    img + (size_t)y * rowbytes;
						uint8_t v;
						switch (s->kind) {
						case T_RGBA:
							v = ch == 3
								? (pat(x, y,
								       1) |
								   0x40)
								: pat(x, y, ch);
							break;
						case T_GRAY:
						case T_GRAY_W:
						case T_PAL:
							v = pat(x, y, 0);
							break;
						case T_CMYK:
							v = ch == 3
								? 40
								: pat(x, y, ch);
							break;
						default: v = pat(x, y, ch);
						}
						if (bps == 1) {
							if (bit(x, y))
								row[x / 8] |=
								    (uint8_t)(0x80 >>
									      (x %
									       8));
						} else if (bps == 16) {
							uint16_t v16 =
							    (uint16_t)(v * 256 +
								       (x & 1) *
									   100);
							memcpy(row + 2 * x,
							       &v16, 2);
						} else {
							row[(size_t)x * pspp +
							    c] = v;
						}
					}
			if (s->tiled) {
				size_t tsz = TIFFTileSize(t);
				unsigned char *tile = malloc(tsz);
				for (int ty = 0; ty < h; ty += 16)
					for (int tx = 0; tx < w; tx += 16) {
						memset(tile, 0, tsz);
						for (int y = 0;
						     y < 16 && ty + y < h; y++)
							memcpy(
							    tile +
								(size_t)y *
								    (tsz / 16),
							    img +
								(size_t)(ty +
									 y) *
								    rowbytes +
								(size_t)tx *
								    pspp * bps /
								    8,
							    ((size_t)ED_MIN(
								 16, w - tx) *
								 pspp * bps +
							     7) /
								8);
						TIFFWriteTile(t, tile,
							      (uint32_t)tx,
							      (uint32_t)ty, 0,
							      (uint16_t)pl);
					}
				free(tile);
			} else {
				for (int y = 0; y < h; y++)
					TIFFWriteScanline(
					    t, img + (size_t)y * rowbytes,
					    (uint32_t)y, (uint16_t)pl);
			}
			free(img);
		}
	}
	TIFFWriteDirectory(t);
	/* extra pages: a second full page, a thumbnail, a mask */
	for (int d = 0; d < extra_dirs; d++) {
		uint32_t sub = d == 1	? FILETYPE_REDUCEDIMAGE
			       : d == 2 ? FILETYPE_MASK
					: 0;
		unsigned char row[8] = {0};
		TIFFSetField(t, TIFFTAG_SUBFILETYPE, sub);
		TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 8);
		TIFFSetField(t, TIFFTAG_IMAGELENGTH, 4);
		TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
		TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
		TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
		TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 4);
		for (int y = 0; y < 4; y++) {
			memset(row, 60 + 10 * d, sizeof row);
			TIFFWriteScanline(t, row, (uint32_t)y, 0);
		}
		TIFFWriteDirectory(t);
	}
	TIFFClose(t);
}

static void test_tiff(void)
{
	static const struct tspec specs[] = {
	    {"rgb-none-strips", T_RGB, COMPRESSION_NONE, false, false, 0},
	    {"rgb-lzw-tiles", T_RGB, COMPRESSION_LZW, true, false, 0},
	    {"rgb-deflate-planar", T_RGB, COMPRESSION_ADOBE_DEFLATE, false,
	     true, 0},
	    {"rgba-packbits", T_RGBA, COMPRESSION_PACKBITS, false, false, 1},
	    {"gray-minisblack", T_GRAY, COMPRESSION_LZW, false, false, 0},
	    {"gray-miniswhite", T_GRAY_W, COMPRESSION_NONE, false, false, 0},
	    {"gray16", T_GRAY16, COMPRESSION_ADOBE_DEFLATE, false, false, 1},
	    {"palette", T_PAL, COMPRESSION_PACKBITS, false, false, 0},
	    {"bilevel-g4-miniswhite", T_BILEVEL, COMPRESSION_CCITTFAX4, false,
	     false, 0},
	    {"bilevel-g3-minisblack", T_BILEVEL_B, COMPRESSION_CCITTFAX3, false,
	     false, 0},
	    {"bilevel-packbits-tiles", T_BILEVEL, COMPRESSION_PACKBITS, true,
	     false, 0},
	    {"cmyk", T_CMYK, COMPRESSION_LZW, false, false, 1},
	    {"ycbcr-jpeg", T_YCBCR_JPEG, COMPRESSION_JPEG, false, false, 40},
	};
	const int w = 37, h = 23;
	char path[600], err[256];

	for (size_t k = 0; k < ED_ARRAY_LEN(specs); k++) {
		const struct tspec *s = &specs[k];
		struct ed_doc *doc;
		struct ed_page_info info;
		struct ed_image img;
		unsigned char *data;
		int worst = 0, rc;
		double sum = 0;

		snprintf(err, sizeof err, "%s.tif", s->name);
		smooth = s->kind == T_YCBCR_JPEG;
		write_tiff(tmp(err, path, sizeof path), s, w, h, 0);
		rc = open_file(path, NULL, &doc, &data, err, sizeof err);
		CHECK(rc == 0, "%s: open: %s", s->name, err);
		if (rc) {
			free(data);
			continue;
		}
		CHECK_INT(ed_render_doc_kind(doc), ED_RENDER_TIFF);
		CHECK_INT(ed_render_doc_pages(doc), 1);
		CHECK_INT(ed_render_page_info(doc, 0, &info, err, sizeof err),
			  0);
		CHECK(info.width_px == w && info.height_px == h, "%s: %dx%d",
		      s->name, info.width_px, info.height_px);
		CHECK(fabs(info.xdpi - 300) < 0.1, "%s: dpi %g from px/cm",
		      s->name, info.xdpi);
		rc = ed_render_page(doc, 0, 0, NULL, &img, err, sizeof err);
		CHECK(rc == 0, "%s: render: %s", s->name, err);
		if (rc == 0) {
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++) {
					uint8_t e[3];
					expect_px(s->kind, x, y, e);
					for (int c = 0; c < 3; c++) {
						int d = abs(
						    img.rgb[(y * w + x) * 3 +
							    c] -
						    e[c]);
						worst = d > worst ? d : worst;
						sum += d;
					}
				}
			CHECK(worst <= s->tolerance,
			      "%s: pixels differ by up to %d (mean %.2f)",
			      s->name, worst, sum / (w * h * 3));
			if (s->kind == T_YCBCR_JPEG)
				CHECK(sum / (w * h * 3) < 4,
				      "%s: mean diff %.2f", s->name,
				      sum / (w * h * 3));
		}
		ed_render_image_release(&img);
		ed_render_doc_close(doc);
		free(data);
	}
	smooth = false;
}

static void test_tiff_pages_and_bombs(void)
{
	struct tspec s = {"multi", T_GRAY, COMPRESSION_NONE, false, false, 0};
	char path[600], err[256];
	struct ed_doc *doc;
	struct ed_image img;
	struct ed_page_info info;
	unsigned char *data;
	int rc;

	/* page, second page, thumbnail, mask: 2 pages */
	write_tiff(tmp("multi.tif", path, sizeof path), &s, 20, 10, 3);
	rc = open_file(path, NULL, &doc, &data, err, sizeof err);
	CHECK(rc == 0, "multi: %s", err);
	if (!rc) {
		CHECK_INT(ed_render_doc_pages(doc), 2);
		CHECK_INT(
		    ed_render_page(doc, 1, 0, NULL, &img, err, sizeof err), 0);
		CHECK(img.width == 8 && img.height == 4 && img.rgb[0] == 60,
		      "second page %dx%d value %d", img.width, img.height,
		      img.rgb[0]);
		ed_render_image_release(&img);
		CHECK_INT(
		    ed_render_page(doc, 2, 0, NULL, &img, err, sizeof err),
		    ED_EINVAL);
		ed_render_doc_close(doc);
	}
	free(data);

	/* a header that claims 100000 x 100000 pixels */
	{
		TIFF *t = TIFFOpen(tmp("bomb.tif", path, sizeof path), "w");
		unsigned char row[16] = {0};
		TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 100000);
		TIFFSetField(t, TIFFTAG_IMAGELENGTH, 100000);
		TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
		TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
		TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
		TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 100000);
		TIFFWriteRawStrip(t, 0, row, sizeof row);
		TIFFClose(t);
	}
	rc = open_file(path, NULL, &doc, &data, err, sizeof err);
	CHECK(rc == 0, "bomb opens (pages are checked when used): %s", err);
	if (!rc) {
		CHECK_INT(ed_render_page_info(doc, 0, &info, err, sizeof err),
			  ED_ETOOBIG);
		CHECK_INT(
		    ed_render_page(doc, 0, 0, NULL, &img, err, sizeof err),
		    ED_ETOOBIG);
		CHECK(strstr(err, "100000x100000") != NULL, "message: %s", err);
		ed_render_doc_close(doc);
	}
	free(data);
	/* truncated: a valid header and nothing else */
	{
		static const unsigned char trunc[] = {'I', 'I', 42, 0,
						      200, 0,	0,  0};
		rc = ed_render_doc_open(&doc, trunc, sizeof trunc, NULL, NULL,
					err, sizeof err);
		CHECK_INT(rc, ED_EFORMAT);
	}
}

/* ---- PNG ----------------------------------------------------------- */

struct pspec {
	const char *name;
	int color, depth;
	bool trns, interlace;
};

static void write_png(const char *path, const struct pspec *s, int w, int h)
{
	FILE *f = fopen(path, "wb");
	png_structp png =
	    png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	int ch = s->color == PNG_COLOR_TYPE_RGB		 ? 3
		 : s->color == PNG_COLOR_TYPE_RGB_ALPHA	 ? 4
		 : s->color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
							 : 1;
	size_t rowbytes = ((size_t)w * ch * s->depth + 7) / 8;
	unsigned char *row = malloc(rowbytes);

	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, s->depth,
		     s->color,
		     s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (s->color == PNG_COLOR_TYPE_PALETTE) {
		png_color pal[256];
		png_byte alpha[256];
		for (int i = 0; i < 256; i++) {
			pal[i].red = (png_byte)i;
			pal[i].green = (png_byte)(255 - i);
			pal[i].blue = (png_byte)(i / 2);
			alpha[i] = (png_byte)(i < 16 ? 0 : 255);
		}
		png_set_PLTE(png, info, pal, 256);
		if (s->trns)
			png_set_tRNS(png, info, alpha, 256, NULL);
	}
	png_set_pHYs(png, info, 11811, 11811, PNG_RESOLUTION_METER);
	png_write_info(png, info);
	{
		int passes = s->interlace ? png_set_interlace_handling(png) : 1;
		for (int p = 0; p < passes; p++)
			for (int y = 0; y < h; y++) {
				memset(row, 0, rowbytes);
				for (int x = 0; x < w; x++)
					for (int c = 0; c < ch; c++) {
						unsigned v = pat(x, y, c);
						if (s->color ==
							PNG_COLOR_TYPE_GRAY_ALPHA &&
						    c == 1)
							v = pat(x, y, 1) | 0x40;
						if (s->color ==
							PNG_COLOR_TYPE_RGB_ALPHA &&
						    c == 3)
							v = pat(x, y, 1) | 0x40;
						if (s->depth == 16) {
							row[(x * ch + c) * 2] =
							    (unsigned char)v;
							row[(x * ch + c) * 2 +
							    1] =
							    (unsigned char)(x *
									    3);
						} else if (s->depth == 8) {
							row[x * ch + c] =
							    (unsigned char)v;
						} else { /* 1, 2, 4 bit gray */
							unsigned lv =
							    v >> (8 - s->depth);
							int bitpos =
							    x * s->depth;
							row[bitpos / 8] |=
							    (unsigned char)(lv
									    << (8 -
										s->depth -
										bitpos %
										    8));
						}
					}
				png_write_row(png, row);
			}
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	free(row);
	fclose(f);
}

static void expect_png(const struct pspec *s, int x, int y, uint8_t out[3])
{
	if (s->color == PNG_COLOR_TYPE_PALETTE) {
		unsigned i = pat(x, y, 0);
		if (s->trns && i < 16) {
			out[0] = out[1] = out[2] = 255;
			return;
		}
		out[0] = (uint8_t)i, out[1] = (uint8_t)(255 - i),
		out[2] = (uint8_t)(i / 2);
		return;
	}
	if (s->color == PNG_COLOR_TYPE_GRAY ||
	    s->color == PNG_COLOR_TYPE_GRAY_ALPHA) {
		unsigned g = pat(x, y, 0);
		if (s->depth < 8) { /* expanded by bit replication */
			unsigned lv = g >> (8 - s->depth), v = 0;
			for (int b = 0; b < 8; b += s->depth)
				v = (v << s->depth) | lv;
			g = v & 255;
		}
		if (s->color == PNG_COLOR_TYPE_GRAY_ALPHA) {
			unsigned a = pat(x, y, 1) | 0x40;
			g = (g * a + 255 * (255 - a) + 127) / 255;
		}
		out[0] = out[1] = out[2] = (uint8_t)g;
		return;
	}
	for (int c = 0; c < 3; c++) {
		unsigned v = pat(x, y, c);
		if (s->color == PNG_COLOR_TYPE_RGB_ALPHA) {
			unsigned a = pat(x, y, 1) | 0x40;
			v = (v * a + 255 * (255 - a) + 127) / 255;
		}
		out[c] = (uint8_t)v;
	}
}

static void test_png(void)
{
	static const struct pspec specs[] = {
	    {"gray1", PNG_COLOR_TYPE_GRAY, 1, false, false},
	    {"gray2", PNG_COLOR_TYPE_GRAY, 2, false, false},
	    {"gray4", PNG_COLOR_TYPE_GRAY, 4, false, false},
	    {"gray8", PNG_COLOR_TYPE_GRAY, 8, false, false},
	    {"gray16", PNG_COLOR_TYPE_GRAY, 16, false, false},
	    {"graya8", PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, false},
	    {"rgb8", PNG_COLOR_TYPE_RGB, 8, false, false},
	    {"rgb16", PNG_COLOR_TYPE_RGB, 16, false, false},
	    {"rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8, false, false},
	    {"palette", PNG_COLOR_TYPE_PALETTE, 8, false, false},
	    {"palette-trns", PNG_COLOR_TYPE_PALETTE, 8, true, false},
	    {"rgb8-adam7", PNG_COLOR_TYPE_RGB, 8, false, true},
	    {"rgba8-adam7", PNG_COLOR_TYPE_RGB_ALPHA, 8, false, true},
	};
	const int w = 29, h = 17;
	char path[600], err[256];

	for (size_t k = 0; k < ED_ARRAY_LEN(specs); k++) {
		struct ed_doc *doc;
		struct ed_image img;
		unsigned char *data;
		int bad = 0, rc;

		snprintf(err, sizeof err, "%s.png", specs[k].name);
		write_png(tmp(err, path, sizeof path), &specs[k], w, h);
		rc = open_file(path, NULL, &doc, &data, err, sizeof err);
		CHECK(rc == 0, "%s: %s", specs[k].name, err);
		if (rc) {
			free(data);
			continue;
		}
		CHECK_INT(ed_render_doc_kind(doc), ED_RENDER_PNG);
		rc = ed_render_page(doc, 0, 0, NULL, &img, err, sizeof err);
		CHECK(rc == 0, "%s: %s", specs[k].name, err);
		if (!rc) {
			CHECK(fabs(img.xdpi - 300) < 0.1, "%s: dpi %g",
			      specs[k].name, img.xdpi);
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++) {
					uint8_t e[3];
					expect_png(&specs[k], x, y, e);
					bad += memcmp(img.rgb + (y * w + x) * 3,
						      e, 3) != 0;
				}
			CHECK(bad == 0, "%s: %d pixels differ", specs[k].name,
			      bad);
		}
		ed_render_image_release(&img);
		ed_render_doc_close(doc);
		free(data);
	}
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xFFFFFFFFu;
}

static void test_png_bad(void)
{
	/* IHDR claiming 100000 x 100000 (CRC filled in below), no data */
	unsigned char bomb[] = {0x89, 'P',  'N', 'G', '\r', '\n', 0x1a, '\n', 0,
				0,    0,    13,	 'I', 'H',  'D',  'R',	0,    1,
				0x86, 0xa0, 0,	 1,   0x86, 0xa0, 8,	2,    0,
				0,    0,    0,	 0,   0,    0};
	uint32_t crc = crc32_png(bomb + 12, 17);
	struct ed_image img;
	struct ed_doc *doc;
	unsigned char *png;
	size_t len;
	char err[256];
	int rc;

	bomb[29] = (unsigned char)(crc >> 24),
	bomb[30] = (unsigned char)(crc >> 16);
	bomb[31] = (unsigned char)(crc >> 8), bomb[32] = (unsigned char)crc;
	rc = ed_render_doc_open(&doc, bomb, sizeof bomb, NULL, NULL, err,
				sizeof err);
	CHECK(rc == ED_ETOOBIG, "png bomb: rc %d (%s)", rc, err);
	/* a real PNG cut in half, and one with a broken CRC */
	ed_render_image_init(&img, 40, 30, err, sizeof err);
	for (size_t i = 0; i < 40 * 30 * 3; i++)
		img.rgb[i] = (uint8_t)rnd();
	CHECK_INT(ed_render_png_encode(&img, 6, &png, &len, err, sizeof err),
		  0);
	{
		struct ed_image back;
		CHECK_INT(ed_render_png_decode(png, len, NULL, &back, err,
					       sizeof err),
			  0);
		CHECK(img_diff(&img, &back, NULL) == 0, "png round trip");
		ed_render_image_release(&back);
		rc = ed_render_png_decode(png, len / 2, NULL, &back, err,
					  sizeof err);
		CHECK(rc == ED_EFORMAT, "truncated png: rc %d", rc);
		png[len - 20] ^= 0x55; /* inside IDAT: CRC mismatch */
		rc = ed_render_png_decode(png, len, NULL, &back, err,
					  sizeof err);
		CHECK(rc == ED_EFORMAT, "corrupt png: rc %d", rc);
	}
	free(png);
	ed_render_image_release(&img);
}

/* ---- JPEG ---------------------------------------------------------- */

static unsigned char *write_jpeg(J_COLOR_SPACE cs, int w, int h,
				 unsigned long *len)
{
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	unsigned char *out = NULL;
	int comps = cs == JCS_GRAYSCALE ? 1 : cs == JCS_CMYK ? 4 : 3;
	JSAMPLE *row = malloc((size_t)w * comps);

	ci.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &out, len);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = comps;
	ci.in_color_space = cs;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, 98, TRUE);
	ci.density_unit = 1;
	ci.X_density = ci.Y_density = 150;
	jpeg_start_compress(&ci, TRUE);
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++)
			for (int c = 0; c < comps; c++) {
				unsigned v = cs == JCS_GRAYSCALE
						 ? pat(x, y, 0)
						 : pat(x, y, c % 3);
				/* CMYK as Adobe stores it: inverted ink, K = 40
				 */
				if (cs == JCS_CMYK)
					v = c == 3 ? 255 - 40
						   : 255 - pat(x, y, c);
				row[x * comps + c] = (JSAMPLE)v;
			}
		JSAMPROW rp = row;
		jpeg_write_scanlines(&ci, &rp, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	free(row);
	return out;
}

static void test_jpeg(void)
{
	static const struct {
		const char *name;
		J_COLOR_SPACE cs;
	} cases[] = {
	    {"gray", JCS_GRAYSCALE}, {"rgb", JCS_RGB}, {"cmyk", JCS_CMYK}};
	const int w = 48, h = 32;
	char err[256];

	smooth = true;
	for (size_t k = 0; k < ED_ARRAY_LEN(cases); k++) {
		unsigned long len;
		unsigned char *j = write_jpeg(cases[k].cs, w, h, &len);
		struct ed_doc *doc;
		struct ed_image img;
		double sum = 0;
		int rc = ed_render_doc_open(&doc, j, len, NULL, NULL, err,
					    sizeof err);

		CHECK(rc == 0, "jpeg %s: %s", cases[k].name, err);
		if (rc) {
			free(j);
			continue;
		}
		CHECK_INT(ed_render_doc_kind(doc), ED_RENDER_JPEG);
		rc = ed_render_page(doc, 0, 0, NULL, &img, err, sizeof err);
		CHECK(rc == 0, "jpeg %s: %s", cases[k].name, err);
		if (!rc) {
			if (cases[k].cs !=
			    JCS_CMYK) /* no JFIF header for CMYK */
				CHECK(img.xdpi == 150, "jpeg dpi %g", img.xdpi);
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++)
					for (int c = 0; c < 3; c++) {
						int e =
						    cases[k].cs == JCS_GRAYSCALE
							? pat(x, y, 0)
						    : cases[k].cs == JCS_RGB
							? pat(x, y, c)
							: (255 - pat(x, y, c)) *
							      (255 - 40) / 255;
						sum += abs(
						    img.rgb[(y * w + x) * 3 +
							    c] -
						    e);
					}
			CHECK(sum / (w * h * 3) < 3.0,
			      "jpeg %s: mean diff %.2f", cases[k].name,
			      sum / (w * h * 3));
		}
		ed_render_image_release(&img);
		ed_render_doc_close(doc);
		/* a broken header, and a huge one */
		j[3] ^= 0xFF;
		rc = ed_render_doc_open(&doc, j, 20, NULL, NULL, err,
					sizeof err);
		CHECK(rc == ED_EFORMAT, "broken jpeg: rc %d", rc);
		free(j);
	}
	{
		unsigned long len;
		unsigned char *j = write_jpeg(JCS_RGB, 16, 16, &len);
		struct ed_doc *doc;
		/* SOF0 height/width are at fixed offsets after the marker */
		for (unsigned long i = 0; i + 9 < len; i++)
			if (j[i] == 0xFF && j[i + 1] == 0xC0) {
				j[i + 5] = 0xEA,
				      j[i + 6] = 0x60; /* height 60000 */
				j[i + 7] = 0xEA,
				      j[i + 8] = 0x60; /* width 60000 */
				break;
			}
		CHECK_INT(ed_render_doc_open(&doc, j, len, NULL, NULL, err,
					     sizeof err),
			  ED_ETOOBIG);
		free(j);
	}
	smooth = false;
}

/* ---- PDF (written with cairo) -------------------------------------- */

static void write_pdf(const char *path)
{
	cairo_surface_t *s = cairo_pdf_surface_create(path, 200, 100);
	cairo_t *cr = cairo_create(s);

	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE,
				       "Test title");
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
			       CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, 12);
	cairo_move_to(cr, 10, 30);
	cairo_show_text(cr, "Hello ernie");
	/* a small table: poppler joins its columns without a separator */
	cairo_set_font_size(cr, 6);
	for (int r = 0; r < 3; r++) {
		static const char *cells[3][3] = {{"Item", "Qty", "Sum"},
						  {"Tea", "12", "4.00"},
						  {"Cake", "3", "9.50"}};
		for (int c = 0; c < 3; c++) {
			cairo_move_to(cr, 10 + 45 * c, 55 + 9 * r);
			cairo_show_text(cr, cells[r][c]);
		}
	}
	cairo_set_font_size(cr, 12);
	cairo_rectangle(cr, 150, 50, 40, 40); /* solid black square */
	cairo_fill(cr);
	cairo_show_page(cr);
	cairo_pdf_surface_set_size(s, 300, 400);
	cairo_move_to(cr, 20, 380);
	cairo_show_text(cr, "second page");
	cairo_show_page(cr);
	cairo_destroy(cr);
	cairo_surface_destroy(s);
}

static void test_pdf(void)
{
	char path[600], err[256];
	struct ed_doc *doc;
	struct ed_page_info info;
	struct ed_text text;
	struct ed_image img, big, crop, reg;
	struct ed_render_limits lim = {.max_pixels = 1000000};
	unsigned char *data, *data2;
	size_t len;
	int rc;

	write_pdf(tmp("gen.pdf", path, sizeof path));
	rc = open_file(path, NULL, &doc, &data, err, sizeof err);
	CHECK(rc == 0, "pdf: %s", err);
	if (rc) {
		free(data);
		return;
	}
	CHECK_INT(ed_render_doc_kind(doc), ED_RENDER_PDF);
	CHECK_INT(ed_render_doc_pages(doc), 2);
	CHECK_STR(ed_render_doc_title(doc), "Test title");
	CHECK_INT(ed_render_page_info(doc, 1, &info, err, sizeof err), 0);
	CHECK(info.width_pt == 300 && info.height_pt == 400, "page 2 %gx%g",
	      info.width_pt, info.height_pt);

	CHECK_INT(ed_render_page_text(doc, 0, &text, err, sizeof err), 0);
	CHECK(strstr(text.text, "Hello ernie") != NULL, "text '%s'", text.text);
	CHECK_INT(text.nwords, 11);
	{
		/* every word is one cell, never two run together */
		static const char *cells =
		    " Hello ernie Item Qty Sum Tea 12 4.00 "
		    "Cake 3 9.50 ";
		for (size_t k = 0; k < text.nwords; k++) {
			char w[64];
			snprintf(w, sizeof w, " %.*s ", (int)text.words[k].len,
				 text.text + text.words[k].off);
			CHECK(strstr(cells, w) != NULL, "word '%s'", w);
		}
	}
	if (text.nwords == 11) {
		const struct ed_word *w = &text.words[1];
		CHECK(w->len == 5 &&
			  memcmp(text.text + w->off, "ernie", 5) == 0,
		      "word 2");
		/* drawn at x >= 10 + width of "Hello ", baseline y = 30 */
		CHECK(w->x0 > 40 && w->x1 < 90 && w->y0 > 15 && w->y1 < 35 &&
			  w->x1 > w->x0 && w->y1 > w->y0,
		      "word box %g,%g %g,%g", w->x0, w->y0, w->x1, w->y1);
		CHECK(text.words[0].x1 <= w->x0, "word order");
	}
	ed_render_text_release(&text);

	CHECK_INT(ed_render_page(doc, 0, 72, NULL, &img, err, sizeof err), 0);
	CHECK(img.width == 200 && img.height == 100, "72 dpi: %dx%d", img.width,
	      img.height);
	if (img.rgb) {
		const uint8_t *in = img.rgb + (70 * 200 + 170) * 3;
		const uint8_t *out = img.rgb + (95 * 200 + 130) * 3;
		CHECK(in[0] == 0 && in[1] == 0 && in[2] == 0,
		      "square is black");
		CHECK(out[0] == 255 && out[1] == 255 && out[2] == 255,
		      "background is white");
	}
	ed_render_image_release(&img);
	CHECK_INT(ed_render_page_image_coverage(doc, 0, &(double){0}, err,
						sizeof err),
		  0);

	/* a region rendered from the source equals the crop of the page
	 * rendered at the same dpi */
	{
		struct ed_rect r = {0.5, 0.25, 1.0, 1.0};
		struct ed_rect all = {0.5, 0.25, 1.0, 1.0};
		double mean;
		int worst;
		CHECK_INT(
		    ed_render_page(doc, 0, 144, NULL, &big, err, sizeof err),
		    0);
		CHECK_INT(
		    ed_render_page(doc, 0, 144, &r, &reg, err, sizeof err), 0);
		(void)all;
		/* crop by hand: x 200..400, y 50..200 of a 400x200 page */
		ed_render_image_init(&crop, 200, 150, err, sizeof err);
		for (int y = 0; y < 150; y++)
			memcpy(crop.rgb + y * 200 * 3,
			       big.rgb + ((y + 50) * 400 + 200) * 3, 200 * 3);
		worst = img_diff(&reg, &crop, &mean);
		CHECK(reg.width == 200 && reg.height == 150 && worst <= 2,
		      "region %dx%d differs from crop by %d", reg.width,
		      reg.height, worst);
		ed_render_image_release(&big);
		ed_render_image_release(&reg);
		ed_render_image_release(&crop);
	}
	ed_render_doc_close(doc);

	/* the sample's invoice table: poppler runs the cells of a row into one
	 * "word" (contracts1200EUR); the geometry separates them */
	rc = open_file("samples/sample.pdf", NULL, &doc, &data2, err,
		       sizeof err);
	CHECK(rc == 0, "samples/sample.pdf: %s", err);
	if (!rc) {
		CHECK_INT(ed_render_page_text(doc, 0, &text, err, sizeof err),
			  0);
		CHECK(strstr(text.text, "Item Qty Amount") &&
			  strstr(text.text, "contracts 1200 EUR 960.00"),
		      "sample table: '%s'", text.text);
		ed_render_text_release(&text);
		ed_render_doc_close(doc);
	}
	free(data2);

	/* the pixel cap applies before anything is allocated */
	len = 0;
	{
		size_t n;
		unsigned char *d2 = t_read_file(path, &n);
		CHECK_INT(ed_render_doc_open(&doc, d2, n, NULL, &lim, err,
					     sizeof err),
			  0);
		rc = ed_render_page(doc, 0, 2400, NULL, &img, err, sizeof err);
		CHECK(rc == ED_ETOOBIG, "2400 dpi under a 1 MP cap: rc %d", rc);
		CHECK_INT(
		    ed_render_page(doc, 0, 300, NULL, &img, err, sizeof err),
		    0);
		ed_render_image_release(&img);
		ed_render_doc_close(doc);
		free(d2);
	}
	(void)len;
	free(data);
}

/* ---- the corpus ---------------------------------------------------- */

static void test_corpus(void)
{
	static const struct {
		const char *file;
		enum ed_render_kind kind;
		int pages;
		int w, h; /* page 1 size: pixels for rasters, 0 for pdf */
		const char *text; /* in page 1's text layer */
	} files[] = {
	    {"minimal-document.pdf", ED_RENDER_PDF, 1, 0, 0, "Lorem ipsum"},
	    {"pdflatex-4-pages.pdf", ED_RENDER_PDF, 4, 0, 0, NULL},
	    {"multicolumn.pdf", ED_RENDER_PDF, 3, 0, 0, NULL},
	    {"imagemagick-CCITTFaxDecode.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"grayscale-image.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"linn.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"skew.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"multipage.pdf", ED_RENDER_PDF, 6, 0, 0, NULL},
	    {"trivial.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"no_contents.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"kcs.pdf", ED_RENDER_PDF, 1, 0, 0, NULL},
	    {"smile-lzw.tiff", ED_RENDER_TIFF, 1, 16, 16, NULL},
	    {"smile-pack-bits.tiff", ED_RENDER_TIFF, 1, 16, 16, NULL},
	    {"phototest.tif", ED_RENDER_TIFF, 1, 640, 480, NULL},
	    {"phototest_2.tif", ED_RENDER_TIFF, 1, 1017, 529, NULL},
	    {"eurotext.tif", ED_RENDER_TIFF, 1, 1024, 800, NULL},
	    {"smile.png", ED_RENDER_PNG, 1, 0, 0, NULL},
	    {"smile.jpg", ED_RENDER_JPEG, 1, 0, 0, NULL},
	};
	char path[600], rel[256], err[256];

	for (size_t k = 0; k < ED_ARRAY_LEN(files); k++) {
		struct ed_doc *doc;
		unsigned char *data;
		int rc;

		snprintf(rel, sizeof rel, "corpus/%s", files[k].file);
		rc = open_file(t_shared(rel, path, sizeof path), NULL, &doc,
			       &data, err, sizeof err);
		CHECK(rc == 0, "%s: %s", files[k].file, err);
		if (rc) {
			free(data);
			continue;
		}
		CHECK(ed_render_doc_kind(doc) == files[k].kind, "%s: kind %s",
		      files[k].file,
		      ed_render_kind_name(ed_render_doc_kind(doc)));
		CHECK(ed_render_doc_pages(doc) == files[k].pages,
		      "%s: %d pages", files[k].file, ed_render_doc_pages(doc));
		for (int p = 0; p < ed_render_doc_pages(doc); p++) {
			struct ed_image img;
			struct ed_text text;
			rc = ed_render_page(doc, p, 36, NULL, &img, err,
					    sizeof err);
			CHECK(rc == 0 && img.width > 0, "%s page %d: %s",
			      files[k].file, p + 1, err);
			if (p == 0 && files[k].w)
				CHECK(img.width == files[k].w &&
					  img.height == files[k].h,
				      "%s: %dx%d", files[k].file, img.width,
				      img.height);
			ed_render_image_release(&img);
			rc =
			    ed_render_page_text(doc, p, &text, err, sizeof err);
			CHECK(rc == 0, "%s page %d text: %s", files[k].file,
			      p + 1, err);
			if (p == 0 && files[k].text)
				CHECK(text.text &&
					  strstr(text.text, files[k].text),
				      "%s: no '%s'", files[k].file,
				      files[k].text);
			ed_render_text_release(&text);
		}
		ed_render_doc_close(doc);
		free(data);
	}

	/* invalid and encrypted files */
	{
		struct ed_doc *doc;
		unsigned char *data;
		struct ed_text text;
		int rc =
		    open_file(t_shared("corpus/invalid.pdf", path, sizeof path),
			      NULL, &doc, &data, err, sizeof err);
		CHECK(rc == ED_EFORMAT, "invalid.pdf: rc %d", rc);
		free(data);
		t_shared("corpus/libreoffice-writer-password.pdf", path,
			 sizeof path);
		rc = open_file(path, NULL, &doc, &data, err, sizeof err);
		CHECK(rc == ED_EPASSWORD, "encrypted, no password: rc %d", rc);
		free(data);
		rc = open_file(path, "nope", &doc, &data, err, sizeof err);
		CHECK(rc == ED_EPASSWORD, "encrypted, wrong password: rc %d",
		      rc);
		free(data);
		rc = open_file(path, "openpassword", &doc, &data, err,
			       sizeof err);
		CHECK(rc == 0, "encrypted, right password: %s", err);
		if (!rc) {
			CHECK_INT(ed_render_doc_pages(doc), 1);
			CHECK_INT(
			    ed_render_page_text(doc, 0, &text, err, sizeof err),
			    0);
			CHECK(text.len > 10, "encrypted text: %zu bytes",
			      text.len);
			ed_render_text_release(&text);
			ed_render_doc_close(doc);
		}
		free(data);
	}
}

static void test_sniff(void)
{
	CHECK_INT(ed_render_sniff("%PDF-1.7\n", 9), ED_RENDER_PDF);
	CHECK_INT(ed_render_sniff("junk\n%PDF-1.4", 14), ED_RENDER_PDF);
	CHECK_INT(ed_render_sniff("II*\0", 4), ED_RENDER_TIFF);
	CHECK_INT(ed_render_sniff("MM\0*", 4), ED_RENDER_TIFF);
	CHECK_INT(ed_render_sniff("II+\0", 4), ED_RENDER_TIFF);
	CHECK_INT(ed_render_sniff("\x89PNG\r\n\x1a\n", 8), ED_RENDER_PNG);
	CHECK_INT(ed_render_sniff("\xff\xd8\xff\xe0", 4), ED_RENDER_JPEG);
	CHECK_INT(ed_render_sniff("GIF89a", 6), ED_RENDER_UNKNOWN);
	CHECK_INT(ed_render_sniff("", 0), ED_RENDER_UNKNOWN);
	CHECK_STR(ed_render_kind_name(ED_RENDER_TIFF), "tiff");
	{
		struct ed_doc *doc;
		char err[128];
		CHECK_INT(ed_render_doc_open(&doc, "GIF89a", 6, NULL, NULL, err,
					     sizeof err),
			  ED_EFORMAT);
		CHECK(strstr(err, "not a pdf") != NULL, "message: %s", err);
	}
}

int main(void)
{
	const char *base = getenv("ED_TMP");

	t_name = "render";
	snprintf(tmpdir, sizeof tmpdir, "%s/render.XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_golden_preprocess();
	test_resize_ref();
	test_smart_resize();
	test_tile_layout();
	test_sniff();
	test_tiff();
	test_tiff_pages_and_bombs();
	test_png();
	test_png_bad();
	test_jpeg();
	test_pdf();
	test_corpus();
	return t_done();
}
