/*
 * test_model.c - model/: the safetensors container on the golden files,
 * a write/read round trip, and every header check with a message that
 * names the bad tensor.
 */
#include "tests/harness.h"
#include "tests/util.h"

#include "model/model.h"

static void test_golden_files(void)
{
	char path[512], err[256];
	struct ed_st *st;
	const struct ed_tensor *t;
	int rc;

	rc = ed_model_st_open(
	    &st,
	    t_shared("golden/a_text_only/model.safetensors", path, sizeof path),
	    err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	CHECK(ed_model_st_count(st) > 50, "%zu tensors", ed_model_st_count(st));
	t = ed_model_st_find(st, "model.embed_tokens.weight");
	CHECK(t && t->dtype == ED_DT_BF16 && t->ndim == 2 &&
		  t->shape[0] == 1024 && t->shape[1] == 64,
	      "embed_tokens");
	t = ed_model_st_find(st, "model.layers.1.mlp.gate.weight");
	CHECK(t && t->dtype == ED_DT_F32 && t->shape[0] == 64 &&
		  t->shape[1] == 8,
	      "router stored [hidden, experts] in F32");
	t = ed_model_st_find(
	    st, "model.layers.1.mlp.moe_statics.e_score_correction_bias");
	CHECK(t && t->shape[0] == 2 && t->shape[1] == 8, "correction bias");
	CHECK(ed_model_st_find(st, "lm_head.weight") == NULL, "tied head");
	CHECK(ed_model_st_find(st, "no.such.tensor") == NULL, "missing");
	/* every tensor's bytes agree with its shape */
	for (size_t i = 0; i < ed_model_st_count(st); i++) {
		t = ed_model_st_at(st, i);
		CHECK(t->nbytes == (size_t)ed_model_tensor_numel(t) *
				       ed_model_dtype_size(t->dtype),
		      "%s", t->name);
	}
	CHECK(ed_model_st_at(st, ed_model_st_count(st)) == NULL, "past end");
	ed_model_st_close(st);

	rc =
	    ed_model_st_open(&st,
			     t_shared("golden/a_text_only/expected.safetensors",
				      path, sizeof path),
			     err, sizeof err);
	CHECK(rc == 0, "%s", err);
	if (rc)
		return;
	t = ed_model_st_find(st, "input_ids");
	CHECK(t && t->dtype == ED_DT_I64 && t->ndim == 1 && t->shape[0] == 19,
	      "input_ids");
	if (t)
		CHECK_INT(ed_model_tensor_get(t, 0), 1); /* bos */
	ed_model_st_close(st);
}

static void test_roundtrip(void)
{
	float f[6] = {1.5f, -2.25f, 0, 3e-8f, 1e30f, -0.0f};
	int64_t ids[3] = {1, -7, 1234567890123LL};
	uint16_t bf[2] = {0x3F80, 0xC040}; /* 1.0, -3.0 */
	struct ed_tensor ts[3] = {
	    {.name = "a.f32",
	     .dtype = ED_DT_F32,
	     .ndim = 2,
	     .shape = {2, 3},
	     .data = f,
	     .nbytes = sizeof f},
	    {.name = "ids",
	     .dtype = ED_DT_I64,
	     .ndim = 1,
	     .shape = {3},
	     .data = ids,
	     .nbytes = sizeof ids},
	    {.name = "b",
	     .dtype = ED_DT_BF16,
	     .ndim = 1,
	     .shape = {2},
	     .data = bf,
	     .nbytes = sizeof bf},
	};
	char path[512], err[256];
	struct ed_st *st;
	const struct ed_tensor *t;
	unsigned char *raw;
	size_t len;

	snprintf(path, sizeof path, "%s/rt.safetensors",
		 getenv("ED_TMP") ? getenv("ED_TMP") : "/tmp");
	CHECK_INT(ed_model_st_write(path, ts, 3, err, sizeof err), 0);
	raw = t_read_file(path, &len);
	CHECK(raw && raw[0] % 8 == 0 && raw[1] == 0, "header padded to 8");
	free(raw);
	CHECK_INT(ed_model_st_open(&st, path, err, sizeof err), 0);
	t = ed_model_st_find(st, "a.f32");
	CHECK(t && memcmp(t->data, f, sizeof f) == 0, "f32 bytes");
	t = ed_model_st_find(st, "ids");
	CHECK(t && ed_model_tensor_get(t, 2) == 1234567890123.0, "i64");
	t = ed_model_st_find(st, "b");
	CHECK(t && ed_model_tensor_get(t, 0) == 1.0 &&
		  ed_model_tensor_get(t, 1) == -3.0,
	      "bf16");
	ed_model_st_close(st);
	/* shape and byte count must agree */
	ts[0].nbytes = 8;
	CHECK_INT(ed_model_st_write(path, ts, 1, err, sizeof err), ED_EINVAL);
	/* no file is left behind by a failed create */
	CHECK_INT(ed_model_st_write("/nonexistent-dir/x.safetensors", ts + 1, 1,
				    err, sizeof err),
		  ED_ECREATE);
}

/* A file from a header string and n data bytes. */
static int open_hdr(const char *hdr, size_t ndata, struct ed_st **st, char *err,
		    size_t errlen)
{
	size_t hl = strlen(hdr), len = 8 + hl + ndata;
	unsigned char *buf = calloc(1, len);
	int rc;

	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(buf + 8, hdr, hl);
	rc = ed_model_st_open_mem(st, buf, len, err, errlen);
	if (rc == 0)
		ed_model_st_close(*st);
	free(buf);
	return rc;
}

static void test_bad_headers(void)
{
	static const struct {
		const char *hdr;
		size_t ndata;
		const char *msg; /* expected in the message */
	} bad[] = {
	    {"{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}",
	     2, "'x': unsupported dtype"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"
	     "}",
	     8, "'w': data_offsets"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}"
	     "}",
	     16, "'w': 16 bytes for 3 elements"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}"
	     "}",
	     4, "'w': bad shape"},
	    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
	     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
	     8, "overlap"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w': needs"},
	    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
	     4, "'w': data_offsets"},
	    {"[1,2]", 0, "not an object"},
	    {"{\"w\": ", 0, "bad safetensors header"},
	    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
	     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
	     1, "duplicate"},
	    {"{\"__metadata__\":[1]}", 0, "__metadata__"},
	};
	char err[256];
	struct ed_st *st;
	unsigned char tiny[8] = {255, 255, 255, 255, 0, 0, 0, 0};

	for (size_t i = 0; i < ED_ARRAY_LEN(bad); i++) {
		int rc =
		    open_hdr(bad[i].hdr, bad[i].ndata, &st, err, sizeof err);
		CHECK(rc == ED_EFORMAT && strstr(err, bad[i].msg),
		      "case %zu: rc %d, '%s' (want '%s')", i, rc, err,
		      bad[i].msg);
	}
	CHECK_INT(ed_model_st_open_mem(&st, tiny, sizeof tiny, err, sizeof err),
		  ED_EFORMAT);
	CHECK_INT(ed_model_st_open_mem(&st, tiny, 4, err, sizeof err),
		  ED_EFORMAT);
	CHECK_INT(
	    ed_model_st_open(&st, "/nonexistent.safetensors", err, sizeof err),
	    ED_ENOENT);
	/* a valid one, with metadata */
	CHECK_INT(
	    open_hdr(
		"{\"__metadata__\":{\"format\":\"pt\"},\"w\":"
		"{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
		4, &st, err, sizeof err),
	    0);
}

static void test_dtypes(void)
{
	uint16_t h[5] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555};
	struct ed_tensor t = {.name = "h",
			      .dtype = ED_DT_F16,
			      .ndim = 1,
			      .shape = {5},
			      .data = h,
			      .nbytes = sizeof h};

	CHECK(ed_model_tensor_get(&t, 0) == 1.0, "f16 1");
	CHECK(ed_model_tensor_get(&t, 1) == -2.0, "f16 -2");
	CHECK(ed_model_tensor_get(&t, 2) == 5.9604644775390625e-8, "f16 min");
	CHECK(isinf(ed_model_tensor_get(&t, 3)), "f16 inf");
	CHECK(fabs(ed_model_tensor_get(&t, 4) - 0.333251953125) < 1e-12,
	      "f16 1/3");
	CHECK_INT(ed_model_dtype_size(ED_DT_BF16), 2);
	CHECK_STR(ed_model_dtype_name(ED_DT_I64), "I64");
}

int main(void)
{
	t_name = "model";
	test_golden_files();
	test_roundtrip();
	test_bad_headers();
	test_dtypes();
	return t_done();
}
