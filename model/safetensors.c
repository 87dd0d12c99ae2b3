/*
 * safetensors.c - the safetensors container: an 8-byte little-endian
 * header length, a JSON header {name: {dtype, shape, data_offsets}}, then
 * the raw data. Files are mmapped read-only and tensors are views into the
 * mapping; nothing is copied. Every field of the untrusted header is
 * checked before any pointer is formed.
 */
#include "model.h"
#include "model/kernels/kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct ed_st {
	void *map;
	size_t maplen;
	const unsigned char *data; /* start of the data section */
	size_t datalen;
	struct ed_tensor *t;
	size_t n;
	json_t *meta;
	char *names; /* all names, NUL-separated */
};

int64_t ed_model_tensor_numel(const struct ed_tensor *t)
{
	int64_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

double ed_model_tensor_get(const struct ed_tensor *t, int64_t i)
{
	const unsigned char *p = t->data;
	size_t es = ed_model_dtype_size(t->dtype);
	if (ed_k_is_quant(t->dtype)) {
		/* the block that holds element i */
		int bl = ed_k_block(t->dtype);
		float v[256];
		ed_k_dequantize_row(
		    t->dtype, p + ed_k_row_bytes(t->dtype, i / bl * bl), v, bl);
		return v[i % bl];
	}
	union {
		double f64;
		float f32;
		int64_t i64;
		int32_t i32;
		int16_t i16;
		uint16_t u16;
		uint32_t u32;
	} v;

	memcpy(&v, p + (size_t)i * es, es);
	switch (t->dtype) {
	case ED_DT_F64: return v.f64;
	case ED_DT_F32: return v.f32;
	case ED_DT_F16: return ed_k_f16_to_f32(v.u16);
	case ED_DT_BF16: return ed_k_bf16_to_f32(v.u16);
	case ED_DT_I64: return (double)v.i64;
	case ED_DT_I32: return v.i32;
	case ED_DT_I16: return v.i16;
	case ED_DT_I8: return (int8_t)p[i];
	case ED_DT_U8:
	case ED_DT_BOOL: return p[i];
	default: break;
	}
	return 0;
}

static int cmp_off(const void *a, const void *b)
{
	const struct ed_tensor *x = *(const struct ed_tensor *const *)a;
	const struct ed_tensor *y = *(const struct ed_tensor *const *)b;
	const unsigned char *px = x->data, *py = y->data;

	return px < py ? -1 : px > py;
}

static int parse_tensor(struct ed_st *st, struct ed_tensor *t, const char *name,
			json_t *v, char *err, size_t errlen)
{
	json_t *jd = json_object_get(v, "dtype");
	json_t *js = json_object_get(v, "shape");
	json_t *jo = json_object_get(v, "data_offsets");
	const char *dn;
	size_t es = 0, i;
	json_int_t b, e;
	uint64_t numel = 1;

	if (!json_is_object(v) || !json_is_string(jd) || !json_is_array(js) ||
	    !json_is_array(jo) || json_array_size(jo) != 2)
		return ed_err(
		    err, errlen, ED_EFORMAT,
		    "tensor '%s': needs dtype, shape and data_offsets", name);
	dn = json_string_value(jd);
	{
		int dt = ed_model_dtype_parse(dn);
		if (dt >= 0) {
			t->dtype = (enum ed_dtype)dt;
			es = ed_model_dtype_size(t->dtype);
		}
	}
	if (!es)
		return ed_err(err, errlen, ED_EFORMAT,
			      "tensor '%s': unsupported dtype '%s'", name, dn);
	if (json_array_size(js) > ED_TENSOR_MAX_DIMS)
		return ed_err(err, errlen, ED_EFORMAT,
			      "tensor '%s': more than %d dimensions", name,
			      ED_TENSOR_MAX_DIMS);
	t->ndim = (int)json_array_size(js);
	for (i = 0; i < json_array_size(js); i++) {
		json_t *d = json_array_get(js, i);
		json_int_t dv;
		if (!json_is_integer(d) || (dv = json_integer_value(d)) < 0 ||
		    dv > ((json_int_t)1 << 40))
			return ed_err(err, errlen, ED_EFORMAT,
				      "tensor '%s': bad shape", name);
		t->shape[i] = dv;
		if (dv && numel > UINT64_MAX / (uint64_t)dv)
			return ed_err(err, errlen, ED_EFORMAT,
				      "tensor '%s': shape overflows", name);
		numel *= (uint64_t)dv;
	}
	if (!json_is_integer(json_array_get(jo, 0)) ||
	    !json_is_integer(json_array_get(jo, 1)))
		return ed_err(err, errlen, ED_EFORMAT,
			      "tensor '%s': bad data_offsets", name);
	b = json_integer_value(json_array_get(jo, 0));
	e = json_integer_value(json_array_get(jo, 1));
	if (b < 0 || e < b || (uint64_t)e > st->datalen)
		return ed_err(err, errlen, ED_EFORMAT,
			      "tensor '%s': data_offsets [%lld, %lld] outside "
			      "the %zu data bytes",
			      name, (long long)b, (long long)e, st->datalen);
	if (numel > UINT64_MAX / es || numel * es != (uint64_t)(e - b))
		return ed_err(err, errlen, ED_EFORMAT,
			      "tensor '%s': %lld bytes for %llu elements of %s",
			      name, (long long)(e - b),
			      (unsigned long long)numel, dn);
	t->data = st->data + b;
	t->nbytes = (size_t)(e - b);
	return 0;
}

static int parse(struct ed_st *st, const unsigned char *p, size_t len,
		 char *err, size_t errlen)
{
	uint64_t hlen = 0;
	json_t *root, *v;
	json_error_t je;
	const char *key;
	size_t names = 0, k = 0;
	struct ed_tensor **order = NULL;
	char *np;
	int rc = 0;

	if (len < 8)
		return ed_err(err, errlen, ED_EFORMAT,
			      "not a safetensors file: %zu bytes", len);
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | p[i];
	if (hlen > ED_ST_MAX_HEADER || hlen > len - 8)
		return ed_err(err, errlen, ED_EFORMAT,
			      "safetensors header length %llu is larger than "
			      "the file or the %u-byte cap",
			      (unsigned long long)hlen, ED_ST_MAX_HEADER);
	st->data = p + 8 + hlen;
	st->datalen = len - 8 - hlen;
	root =
	    json_loadb((const char *)p + 8, hlen, JSON_REJECT_DUPLICATES, &je);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return ed_err(err, errlen, ED_EFORMAT,
			      "bad safetensors header: %s",
			      root ? "not an object" : je.text);
	}
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "__metadata__") == 0)
			continue;
		st->n++;
		names += strlen(key) + 1;
	}
	st->t = calloc(st->n ? st->n : 1, sizeof *st->t);
	st->names = malloc(names ? names : 1);
	order = malloc((st->n ? st->n : 1) * sizeof *order);
	if (!st->t || !st->names || !order) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	np = st->names;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "__metadata__") == 0) {
			if (!json_is_object(v)) {
				rc = ed_err(err, errlen, ED_EFORMAT,
					    "__metadata__ is not an object");
				goto out;
			}
			st->meta = json_incref(v);
			continue;
		}
		st->t[k].name = np;
		memcpy(np, key, strlen(key) + 1);
		np += strlen(key) + 1;
		if ((rc = parse_tensor(st, &st->t[k], key, v, err, errlen)))
			goto out;
		order[k] = &st->t[k];
		k++;
	}
	qsort(order, st->n, sizeof *order, cmp_off);
	for (k = 1; k < st->n; k++) {
		const unsigned char *prev_end =
		    (const unsigned char *)order[k - 1]->data +
		    order[k - 1]->nbytes;
		if ((const unsigned char *)order[k]->data < prev_end) {
			rc = ed_err(err, errlen, ED_EFORMAT,
				    "tensors '%s' and '%s' overlap",
				    order[k - 1]->name, order[k]->name);
			goto out;
		}
	}
out:
	free(order);
	json_decref(root);
	return rc;
}

static void st_free(struct ed_st *st)
{
	if (!st)
		return;
	if (st->map)
		munmap(st->map, st->maplen);
	json_decref(st->meta);
	free(st->t);
	free(st->names);
	free(st);
}

int ed_model_st_open_mem(struct ed_st **out, const void *data, size_t len,
			 char *err, size_t errlen)
{
	struct ed_st *st = calloc(1, sizeof *st);
	int rc;

	*out = NULL;
	if (!st)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	if ((rc = parse(st, data, len, err, errlen))) {
		st_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

int ed_model_st_open(struct ed_st **out, const char *path, char *err,
		     size_t errlen)
{
	struct ed_st *st;
	struct stat sb;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ed_err(err, errlen, ED_ENOENT, "cannot open '%s': %s",
			      path, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < 8) {
		close(fd);
		return ed_err(err, errlen, ED_EFORMAT,
			      "'%s' is not a safetensors file", path);
	}
	st = calloc(1, sizeof *st);
	if (!st) {
		close(fd);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	st->maplen = (size_t)sb.st_size;
	st->map = mmap(NULL, st->maplen, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (st->map == MAP_FAILED) {
		st->map = NULL;
		st_free(st);
		return ed_err(err, errlen, ED_EIO, "cannot map '%s': %s", path,
			      strerror(errno));
	}
	if ((rc = parse(st, st->map, st->maplen, err, errlen))) {
		ed_err_prefix(err, errlen, "'%s'", path);
		st_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void ed_model_st_close(struct ed_st *st)
{
	st_free(st);
}

size_t ed_model_st_count(const struct ed_st *st)
{
	return st->n;
}

const struct ed_tensor *ed_model_st_at(const struct ed_st *st, size_t i)
{
	return i < st->n ? &st->t[i] : NULL;
}

const struct ed_tensor *ed_model_st_find(const struct ed_st *st,
					 const char *name)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0)
			return &st->t[i];
	return NULL;
}

const char *ed_model_st_meta(const struct ed_st *st, const char *key)
{
	json_t *v = st->meta ? json_object_get(st->meta, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int ed_model_st_write(const char *path, const struct ed_tensor *tensors,
		      size_t n, char *err, size_t errlen)
{
	json_t *root = json_object();
	char *hdr = NULL, *tmp = NULL;
	size_t hlen, pad, off = 0, tl;
	unsigned char lenbuf[8];
	FILE *f = NULL;
	int rc = 0;

	if (!root)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct ed_tensor *t = &tensors[i];
		json_t *shape = json_array(), *o;
		size_t want = (size_t)ed_model_tensor_numel(t) *
			      ed_model_dtype_size(t->dtype);
		if (want != t->nbytes) {
			json_decref(shape);
			rc = ed_err(err, errlen, ED_EINVAL,
				    "tensor '%s': %zu bytes for its shape, "
				    "%zu given",
				    t->name, want, t->nbytes);
			goto out;
		}
		for (int d = 0; d < t->ndim; d++)
			json_array_append_new(shape, json_integer(t->shape[d]));
		o = json_pack("{s:s, s:o, s:[I, I]}", "dtype",
			      ed_model_dtype_name(t->dtype), "shape", shape,
			      "data_offsets", (json_int_t)off,
			      (json_int_t)(off + t->nbytes));
		if (!o || json_object_set_new(root, t->name, o)) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
		off += t->nbytes;
	}
	hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!hdr) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	hlen = strlen(hdr);
	pad = (8 - hlen % 8) % 8; /* data section 8-byte aligned */
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (unsigned char)((uint64_t)(hlen + pad) >> (8 * i));
	tl = strlen(path) + 16;
	tmp = malloc(tl);
	if (!tmp) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(tmp, tl, "%s.tmp%ld", path, (long)getpid());
	f = fopen(tmp, "wb");
	if (!f) {
		rc = ed_err(err, errlen, ED_ECREATE, "cannot create '%s': %s",
			    path, strerror(errno));
		goto out;
	}
	fwrite(lenbuf, 1, 8, f);
	fwrite(hdr, 1, hlen, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	for (size_t i = 0; i < n; i++)
		fwrite(tensors[i].data, 1, tensors[i].nbytes, f);
	if (ferror(f) | fclose(f)) {
		f = NULL;
		remove(tmp);
		rc = ed_err(err, errlen, ED_EIO, "cannot write '%s': %s", path,
			    strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) < 0) {
		remove(tmp);
		rc = ed_err(err, errlen, ED_ECREATE, "cannot create '%s': %s",
			    path, strerror(errno));
	}
out:
	if (f) {
		fclose(f);
		remove(tmp);
	}
	free(tmp);
	free(hdr);
	json_decref(root);
	return rc;
}

void ed_model_versions(char *buf, size_t len)
{
	snprintf(buf, len, "jansson %s", jansson_version_str());
}
