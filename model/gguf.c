/*
 * gguf.c - the GGUF v3 container (spec/QUANT.md): a reader that maps the
 * file and checks every length, offset and shape against it before any
 * tensor is used, and a writer that builds the header in memory (names,
 * metadata, tensor infos with their offsets known from their types) and
 * then streams each tensor's bytes, so a model of any size is written
 * with one tensor in memory at a time.
 */
#include "model_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	GT_U8 = 0,
	GT_I8,
	GT_U16,
	GT_I16,
	GT_U32,
	GT_I32,
	GT_F32,
	GT_BOOL,
	GT_STRING,
	GT_ARRAY,
	GT_U64,
	GT_I64,
	GT_F64,
};

static const struct {
	enum ed_dtype dt;
	int ggml;
} type_ids[] = {
    {ED_DT_F32, 0},	{ED_DT_F16, 1},	    {ED_DT_Q4_0, 2},  {ED_DT_Q4_1, 3},
    {ED_DT_Q5_0, 6},	{ED_DT_Q5_1, 7},    {ED_DT_Q8_0, 8},  {ED_DT_Q2_K, 10},
    {ED_DT_Q3_K, 11},	{ED_DT_Q4_K, 12},   {ED_DT_Q5_K, 13}, {ED_DT_Q6_K, 14},
    {ED_DT_IQ4_NL, 20}, {ED_DT_IQ4_XS, 23}, {ED_DT_BF16, 30},
};

/* ggml's names of the types it has (ggml.h's enum ggml_type), for the
 * message refusing one we do not read */
static const char *ggml_type_name(int t)
{
	static const char *const names[] = {
	    "F32",    "F16",	    "Q4_0",	  "Q4_1",	"Q4_2",
	    "Q4_3",   "Q5_0",	    "Q5_1",	  "Q8_0",	"Q8_1",
	    "Q2_K",   "Q3_K",	    "Q4_K",	  "Q5_K",	"Q6_K",
	    "Q8_K",   "IQ2_XXS",    "IQ2_XS",	  "IQ3_XXS",	"IQ1_S",
	    "IQ4_NL", "IQ3_S",	    "IQ2_S",	  "IQ4_XS",	"I8",
	    "I16",    "I32",	    "I64",	  "F64",	"IQ1_M",
	    "BF16",   "Q4_0_4_4",   "Q4_0_4_8",	  "Q4_0_8_8",	"TQ1_0",
	    "TQ2_0",  "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
	return t >= 0 && t < (int)ED_ARRAY_LEN(names) ? names[t] : NULL;
}

int ed_gguf_type_id(enum ed_dtype dt)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(type_ids); i++)
		if (type_ids[i].dt == dt)
			return type_ids[i].ggml;
	return -1;
}

static int dtype_of(int ggml)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(type_ids); i++)
		if (type_ids[i].ggml == ggml)
			return (int)type_ids[i].dt;
	return -1;
}

/* ---- reading -------------------------------------------------------- */

struct kv {
	char *key;
	int type, elem; /* elem: for arrays */
	uint64_t count; /* arrays */
	const unsigned char *val;
	size_t len; /* bytes of val */
};

struct ed_gguf {
	unsigned char *map;
	size_t size;
	struct kv *kv;
	size_t nkv;
	struct ed_tensor *t;
	char **names;
	size_t nt;
	bool owned; /* the map is ours */
};

struct cur {
	const unsigned char *p, *end;
	bool bad;
};

static bool take(struct cur *c, void *out, size_t n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		return false;
	}
	if (out)
		memcpy(out, c->p, n);
	c->p += n;
	return true;
}

static uint64_t u64(struct cur *c)
{
	uint64_t v = 0;
	take(c, &v, 8);
	return v;
}

static uint32_t u32(struct cur *c)
{
	uint32_t v = 0;
	take(c, &v, 4);
	return v;
}

/* A string: its bytes stay in the map. */
static const unsigned char *str(struct cur *c, uint64_t *len)
{
	const unsigned char *s;

	*len = u64(c);
	if (c->bad || *len > (uint64_t)(c->end - c->p)) {
		c->bad = true;
		return NULL;
	}
	s = c->p;
	c->p += *len;
	return s;
}

static size_t scalar_size(int t)
{
	switch (t) {
	case GT_U8:
	case GT_I8:
	case GT_BOOL: return 1;
	case GT_U16:
	case GT_I16: return 2;
	case GT_U32:
	case GT_I32:
	case GT_F32: return 4;
	case GT_U64:
	case GT_I64:
	case GT_F64: return 8;
	default: return 0;
	}
}

/* Skip one value of type t; false when it does not fit or nests too
 * deep. */
static bool skip_value(struct cur *c, int t, int depth)
{
	uint64_t n;

	if (t == GT_STRING)
		return str(c, &n) != NULL;
	if (t == GT_ARRAY) {
		int et = (int)u32(c);
		if (depth > 2)
			return false;
		n = u64(c);
		if (c->bad)
			return false;
		if (scalar_size(et))
			return n <= (uint64_t)(c->end - c->p) /
					scalar_size(et) &&
			       take(c, NULL, n * scalar_size(et));
		if (et != GT_STRING && et != GT_ARRAY)
			return false;
		for (uint64_t i = 0; i < n; i++)
			if (!skip_value(c, et, depth + 1))
				return false;
		return true;
	}
	return scalar_size(t) && take(c, NULL, scalar_size(t));
}

void ed_gguf_close(struct ed_gguf *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nkv; i++)
		free(g->kv[i].key);
	for (size_t i = 0; i < g->nt; i++)
		free(g->names[i]);
	free(g->kv);
	free(g->t);
	free(g->names);
	if (g->map && g->owned)
		munmap(g->map, g->size);
	free(g);
}

bool ed_gguf_sniff(const char *path)
{
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false;
	yes = read(fd, magic, 4) == 4 && memcmp(magic, "GGUF", 4) == 0;
	close(fd);
	return yes;
}

static int parse(struct ed_gguf *g, const char *path, char *err, size_t errlen);

int ed_gguf_open(struct ed_gguf **out, const char *path, char *err,
		 size_t errlen)
{
	struct ed_gguf *g = calloc(1, sizeof *g);
	struct stat sb;
	int fd, rc;

	*out = NULL;
	if (!g)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		rc = ed_err(err, errlen,
			    errno == ENOENT ? ED_ENOENT : ED_ECONFIG,
			    "cannot open '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(g);
		return rc;
	}
	g->size = (size_t)sb.st_size;
	g->map = g->size ? mmap(NULL, g->size, PROT_READ, MAP_SHARED, fd, 0)
			 : MAP_FAILED;
	close(fd);
	if (g->map == MAP_FAILED) {
		g->map = NULL;
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ECONFIG,
			      "'%s' is not a GGUF file", path);
	}
	g->owned = true;
	if ((rc = parse(g, path, err, errlen)))
		return rc; /* parse closed g */
	*out = g;
	return 0;
}

int ed_gguf_open_mem(struct ed_gguf **out, const void *data, size_t len,
		     char *err, size_t errlen)
{
	struct ed_gguf *g = calloc(1, sizeof *g);
	int rc;

	*out = NULL;
	if (!g)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	g->map = (unsigned char *)(uintptr_t)data;
	g->size = len;
	if ((rc = parse(g, "(memory)", err, errlen)))
		return rc;
	*out = g;
	return 0;
}

/* Parse the mapped file; closes g on failure. */
static int parse(struct ed_gguf *g, const char *path, char *err, size_t errlen)
{
	struct cur c;
	uint64_t nt, nkv, align = 32, data;
	uint32_t version;
	int rc;

	c = (struct cur){g->map, g->map + g->size, false};
	if (g->size < 24 || memcmp(g->map, "GGUF", 4) != 0) {
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ECONFIG,
			      "'%s' is not a GGUF file", path);
	}
	take(&c, NULL, 4);
	version = u32(&c);
	nt = u64(&c);
	nkv = u64(&c);
	if (version != 3 && version != 2) {
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ECONFIG,
			      "'%s': GGUF version %u (2 or 3 expected)", path,
			      version);
	}
	/* every entry takes at least 8 bytes: counts bounded by the file */
	if (nt > g->size / 8 || nkv > g->size / 8) {
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ECONFIG,
			      "'%s': impossible tensor or metadata count",
			      path);
	}
	g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
	g->t = calloc(nt ? nt : 1, sizeof *g->t);
	g->names = calloc(nt ? nt : 1, sizeof *g->names);
	if (!g->kv || !g->t || !g->names) {
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	for (uint64_t i = 0; i < nkv && !c.bad; i++) {
		struct kv *k = &g->kv[g->nkv];
		uint64_t kl;
		const unsigned char *ks = str(&c, &kl), *v0;
		if (!ks || kl > 65535) {
			c.bad = true;
			break;
		}
		k->key = malloc(kl + 1);
		if (!k->key) {
			ed_gguf_close(g);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		memcpy(k->key, ks, kl);
		k->key[kl] = '\0';
		g->nkv++;
		k->type = (int)u32(&c);
		v0 = c.p;
		if (k->type == GT_ARRAY) {
			struct cur a = c;
			k->elem = (int)u32(&a);
			k->count = u64(&a);
		}
		if (!skip_value(&c, k->type, 0)) {
			c.bad = true;
			break;
		}
		k->val = v0;
		k->len = (size_t)(c.p - v0);
		if (strcmp(k->key, "general.alignment") == 0 &&
		    k->type == GT_U32) {
			uint32_t a;
			memcpy(&a, v0, 4);
			align = a;
		}
	}
	if (align == 0 || align > 65536 || (align & (align - 1)))
		c.bad = true;
	for (uint64_t i = 0; i < nt && !c.bad; i++) {
		struct ed_tensor *t = &g->t[i];
		uint64_t nl, off;
		const unsigned char *ns = str(&c, &nl);
		uint32_t nd;
		int64_t dims[4];
		int ty, dt;
		if (!ns || nl > 65535) {
			c.bad = true;
			break;
		}
		g->names[i] = malloc(nl + 1);
		if (!g->names[i]) {
			ed_gguf_close(g);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		memcpy(g->names[i], ns, nl);
		g->names[i][nl] = '\0';
		g->nt = i + 1;
		nd = u32(&c);
		if (nd < 1 || nd > 4) {
			c.bad = true;
			break;
		}
		for (uint32_t d = 0; d < nd; d++) {
			take(&c, &dims[d], 8);
			if (dims[d] < 0 || dims[d] > (int64_t)1 << 40)
				c.bad = true;
		}
		take(&c, &ty, 4);
		off = u64(&c);
		if (c.bad)
			break;
		dt = dtype_of(ty);
		if (dt < 0) {
			const char *tn = ggml_type_name(ty);
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s': tensor '%s' is ggml type %s%s%d, "
				    "which ernie-doc does not read (it reads "
				    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, "
				    "Q5_1, IQ4_NL, Q2_K-Q6_K and IQ4_XS)",
				    path, g->names[i], tn ? tn : "",
				    tn ? " = " : "", ty);
			ed_gguf_close(g);
			return rc;
		}
		t->name = g->names[i];
		t->dtype = (enum ed_dtype)dt;
		t->ndim = (int)nd;
		for (uint32_t d = 0; d < nd;
		     d++) /* torch order: outermost first */
			t->shape[d] = dims[nd - 1 - d];
		if (dims[0] % ed_k_block(t->dtype)) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s': tensor '%s' has rows of %lld, not a "
				    "multiple of its %s blocks",
				    path, t->name, (long long)dims[0],
				    ed_model_dtype_name(t->dtype));
			ed_gguf_close(g);
			return rc;
		}
		{
			uint64_t rows = 1;
			size_t rb = ed_k_row_bytes(t->dtype, dims[0]);
			for (uint32_t d = 1; d < nd; d++) {
				rows *= (uint64_t)dims[d];
				if (rows > g->size) /* no wrap-around */
					rows = g->size + 1;
			}
			/* past the file (checked below) rather than wrapped */
			t->nbytes = rows && rb > SIZE_MAX / rows
					? SIZE_MAX
					: rb * (size_t)rows;
		}
		/* the offset is checked against the data section below */
		t->data = (const void *)(uintptr_t)off;
	}
	if (c.bad) {
		ed_gguf_close(g);
		return ed_err(err, errlen, ED_ECONFIG,
			      "'%s': the GGUF header is truncated or malformed",
			      path);
	}
	data = ((uint64_t)(c.p - g->map) + align - 1) / align * align;
	for (size_t i = 0; i < g->nt; i++) {
		struct ed_tensor *t = &g->t[i];
		uint64_t off = (uint64_t)(uintptr_t)t->data;
		/* in that order: no sum can wrap */
		if (off % align || data > g->size || off > g->size - data ||
		    t->nbytes > g->size - data - off) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s': tensor '%s' lies outside the file",
				    path, t->name);
			ed_gguf_close(g);
			return rc;
		}
		t->data = g->map + data + off;
	}
	return 0;
}

size_t ed_gguf_count(const struct ed_gguf *g)
{
	return g->nt;
}

const struct ed_tensor *ed_gguf_at(const struct ed_gguf *g, size_t i)
{
	return &g->t[i];
}

size_t ed_gguf_size(const struct ed_gguf *g)
{
	return g->size;
}

static const struct kv *find(const struct ed_gguf *g, const char *key)
{
	for (size_t i = 0; i < g->nkv; i++)
		if (strcmp(g->kv[i].key, key) == 0)
			return &g->kv[i];
	return NULL;
}

const unsigned char *ed_gguf_string(const struct ed_gguf *g, const char *key,
				    size_t *len)
{
	const struct kv *k = find(g, key);
	uint64_t n;

	if (!k || k->type != GT_STRING)
		return NULL;
	memcpy(&n, k->val, 8);
	*len = (size_t)n;
	return k->val + 8;
}

const unsigned char *ed_gguf_u8_array(const struct ed_gguf *g, const char *key,
				      size_t *len)
{
	const struct kv *k = find(g, key);

	if (!k || k->type != GT_ARRAY || (k->elem != GT_U8 && k->elem != GT_I8))
		return NULL;
	*len = (size_t)k->count;
	return k->val + 12;
}

bool ed_gguf_has(const struct ed_gguf *g, const char *key)
{
	return find(g, key) != NULL;
}

bool ed_gguf_float(const struct ed_gguf *g, const char *key, double *v)
{
	const struct kv *k = find(g, key);

	if (k && k->type == GT_F32) {
		float f;
		memcpy(&f, k->val, 4);
		*v = f;
		return true;
	}
	if (k && k->type == GT_F64) {
		memcpy(v, k->val, 8);
		return true;
	}
	return false;
}

bool ed_gguf_bool(const struct ed_gguf *g, const char *key, bool *v)
{
	const struct kv *k = find(g, key);

	if (!k || k->type != GT_BOOL)
		return false;
	*v = k->val[0] != 0;
	return true;
}

bool ed_gguf_array(const struct ed_gguf *g, const char *key, int *elem,
		   uint64_t *count, const unsigned char **data, size_t *len)
{
	const struct kv *k = find(g, key);

	if (!k || k->type != GT_ARRAY)
		return false;
	*elem = k->elem;
	*count = k->count;
	*data = k->val + 12;
	*len = k->len - 12;
	return true;
}

bool ed_gguf_uint(const struct ed_gguf *g, const char *key, uint64_t *v)
{
	const struct kv *k = find(g, key);

	if (!k)
		return false;
	switch (k->type) {
	case GT_U8: *v = k->val[0]; return true;
	case GT_U16: {
		uint16_t x;
		memcpy(&x, k->val, 2);
		*v = x;
		return true;
	}
	case GT_U32: {
		uint32_t x;
		memcpy(&x, k->val, 4);
		*v = x;
		return true;
	}
	case GT_U64: memcpy(v, k->val, 8); return true;
	default: return false;
	}
}

/* ---- writing -------------------------------------------------------- */

struct ed_gguf_writer {
	FILE *f;
	char *path, *tmp;
	struct ed_buf kvs, infos;
	uint64_t nkv, nt;
	uint64_t next_off; /* of the next tensor added */
	uint64_t *sizes;   /* bytes of each tensor, in order */
	uint64_t written;  /* tensors whose data is written */
	uint64_t part;	   /* bytes of the next one written so far */
	bool header_done, failed;
};

#define ALIGN 32

static int put(struct ed_buf *b, const void *p, size_t n)
{
	return ed_buf_append(b, p, n);
}

static int put_str(struct ed_buf *b, const char *s, size_t n)
{
	uint64_t l = n;
	return put(b, &l, 8) || put(b, s, n);
}

int ed_gguf_writer_open(struct ed_gguf_writer **out, const char *path,
			char *err, size_t errlen)
{
	struct ed_gguf_writer *w = calloc(1, sizeof *w);
	size_t n = strlen(path) + 16;

	*out = NULL;
	if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
		if (w)
			free(w->path);
		free(w);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	snprintf(w->tmp, n, "%s.partial", path);
	ed_buf_init(&w->kvs, 0);
	ed_buf_init(&w->infos, 0);
	w->f = fopen(w->tmp, "wb");
	if (!w->f) {
		int rc =
		    ed_err(err, errlen, ED_ECREATE, "cannot create '%s': %s",
			   w->tmp, strerror(errno));
		ed_gguf_writer_abort(w);
		return rc;
	}
	*out = w;
	return ed_gguf_writer_u32(w, "general.alignment", ALIGN);
}

static int kv_head(struct ed_gguf_writer *w, const char *key, uint32_t type)
{
	w->nkv++;
	return put_str(&w->kvs, key, strlen(key)) || put(&w->kvs, &type, 4);
}

int ed_gguf_writer_u32(struct ed_gguf_writer *w, const char *key, uint32_t v)
{
	return kv_head(w, key, GT_U32) || put(&w->kvs, &v, 4) ? ED_ENOMEM : 0;
}

int ed_gguf_writer_string(struct ed_gguf_writer *w, const char *key,
			  const char *s, size_t n)
{
	return kv_head(w, key, GT_STRING) || put_str(&w->kvs, s, n) ? ED_ENOMEM
								    : 0;
}

int ed_gguf_writer_bytes(struct ed_gguf_writer *w, const char *key,
			 const void *p, size_t n)
{
	uint32_t et = GT_U8;
	uint64_t cnt = n;

	return kv_head(w, key, GT_ARRAY) || put(&w->kvs, &et, 4) ||
		       put(&w->kvs, &cnt, 8) || put(&w->kvs, p, n)
		   ? ED_ENOMEM
		   : 0;
}

int ed_gguf_writer_f32(struct ed_gguf_writer *w, const char *key, float v)
{
	return kv_head(w, key, GT_F32) || put(&w->kvs, &v, 4) ? ED_ENOMEM : 0;
}

int ed_gguf_writer_bool(struct ed_gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;
	return kv_head(w, key, GT_BOOL) || put(&w->kvs, &b, 1) ? ED_ENOMEM : 0;
}

static int array_head(struct ed_gguf_writer *w, const char *key, uint32_t et,
		      uint64_t n)
{
	return kv_head(w, key, GT_ARRAY) || put(&w->kvs, &et, 4) ||
	       put(&w->kvs, &n, 8);
}

int ed_gguf_writer_f32s(struct ed_gguf_writer *w, const char *key,
			const float *v, size_t n)
{
	return array_head(w, key, GT_F32, n) || put(&w->kvs, v, 4 * n)
		   ? ED_ENOMEM
		   : 0;
}

int ed_gguf_writer_i32s(struct ed_gguf_writer *w, const char *key,
			const int32_t *v, size_t n)
{
	return array_head(w, key, GT_I32, n) || put(&w->kvs, v, 4 * n)
		   ? ED_ENOMEM
		   : 0;
}

int ed_gguf_writer_strings(struct ed_gguf_writer *w, const char *key,
			   const char *const *s, size_t n)
{
	if (array_head(w, key, GT_STRING, n))
		return ED_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (put_str(&w->kvs, s[i], strlen(s[i])))
			return ED_ENOMEM;
	return 0;
}

int ed_gguf_writer_tensor(struct ed_gguf_writer *w, const char *name,
			  enum ed_dtype dt, int ndim, const int64_t *shape)
{
	uint32_t nd = (uint32_t)ndim;
	int32_t ty = ed_gguf_type_id(dt);
	uint64_t rows = 1, bytes, *ns;

	if (ty < 0 || ndim < 1 || ndim > 4 || shape[ndim - 1] % ed_k_block(dt))
		return ED_EINVAL;
	if (put_str(&w->infos, name, strlen(name)) || put(&w->infos, &nd, 4))
		return ED_ENOMEM;
	for (int d = ndim - 1; d >= 0; d--) /* innermost first */
		if (put(&w->infos, &shape[d], 8))
			return ED_ENOMEM;
	for (int d = 0; d < ndim - 1; d++)
		rows *= (uint64_t)shape[d];
	bytes = ed_k_row_bytes(dt, shape[ndim - 1]) * rows;
	if (put(&w->infos, &ty, 4) || put(&w->infos, &w->next_off, 8))
		return ED_ENOMEM;
	ns = realloc(w->sizes, (w->nt + 1) * sizeof *ns);
	if (!ns)
		return ED_ENOMEM;
	w->sizes = ns;
	w->sizes[w->nt++] = bytes;
	w->next_off += (bytes + ALIGN - 1) / ALIGN * ALIGN;
	return 0;
}

static int pad(struct ed_gguf_writer *w, uint64_t n)
{
	static const char zero[ALIGN];
	uint64_t r = n % ALIGN;
	return r && fwrite(zero, 1, ALIGN - r, w->f) != ALIGN - r ? -1 : 0;
}

static void write_header(struct ed_gguf_writer *w)
{
	uint32_t v = 3;

	w->header_done = true;
	if (fwrite("GGUF", 1, 4, w->f) != 4 || fwrite(&v, 4, 1, w->f) != 1 ||
	    fwrite(&w->nt, 8, 1, w->f) != 1 ||
	    fwrite(&w->nkv, 8, 1, w->f) != 1 ||
	    (w->kvs.len &&
	     fwrite(w->kvs.data, 1, w->kvs.len, w->f) != w->kvs.len) ||
	    (w->infos.len &&
	     fwrite(w->infos.data, 1, w->infos.len, w->f) != w->infos.len) ||
	    pad(w, 24 + w->kvs.len + w->infos.len))
		w->failed = true;
}

int ed_gguf_writer_data(struct ed_gguf_writer *w, const void *p, size_t n,
			char *err, size_t errlen)
{
	uint64_t left;

	if (!w->header_done)
		write_header(w);
	left = w->written < w->nt ? w->sizes[w->written] - w->part : 0;
	if (w->written >= w->nt || n > left)
		return ed_err(err, errlen, ED_EINVAL,
			      "tensor %llu: %zu bytes, %llu declared",
			      (unsigned long long)w->written, n,
			      (unsigned long long)left);
	if (fwrite(p, 1, n, w->f) != n)
		w->failed = true;
	w->part += n;
	if (w->part == w->sizes[w->written]) { /* the tensor is whole */
		if (pad(w, w->part))
			w->failed = true;
		w->part = 0;
		w->written++;
	}
	return w->failed ? ed_err(err, errlen, ED_EIO, "writing '%s': %s",
				  w->tmp, strerror(errno))
			 : 0;
}

void ed_gguf_writer_abort(struct ed_gguf_writer *w)
{
	if (!w)
		return;
	if (w->f) {
		fclose(w->f);
		unlink(w->tmp);
	}
	ed_buf_release(&w->kvs);
	ed_buf_release(&w->infos);
	free(w->sizes);
	free(w->path);
	free(w->tmp);
	free(w);
}

int ed_gguf_writer_close(struct ed_gguf_writer *w, char *err, size_t errlen)
{
	int rc = 0;

	if (w->written != w->nt)
		rc = ed_err(
		    err, errlen, ED_EINVAL, "%llu of %llu tensors written",
		    (unsigned long long)w->written, (unsigned long long)w->nt);
	if (!rc && !w->header_done)
		write_header(w);
	if (!rc && (fflush(w->f) || fsync(fileno(w->f)) || w->failed))
		rc = ed_err(err, errlen, ED_EIO, "writing '%s': %s", w->tmp,
			    strerror(errno));
	if (!rc) {
		fclose(w->f);
		w->f = NULL;
		if (rename(w->tmp, w->path))
			rc = ed_err(err, errlen, ED_ECREATE,
				    "cannot create '%s': %s", w->path,
				    strerror(errno));
	}
	ed_gguf_writer_abort(
	    w); /* the file is closed unless rc: then removed */
	return rc;
}
