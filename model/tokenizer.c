/*
 * tokenizer.c - SentencePiece BPE, read from tokenizer.model (a protobuf
 * ModelProto), encoding exactly as SentencePiece does: the normalizer
 * (precompiled charsmap, a darts-clone double-array trie; dummy prefix;
 * whitespace handling), user-defined symbols kept whole, BPE merges by
 * score (ties to the leftmost pair), unused pieces resegmented, unknown
 * pieces spelled as <0xXX> byte pieces when byte_fallback is on. Added
 * tokens from the Hugging Face side files (added_tokens.json,
 * tokenizer_config.json, special_tokens_map.json) are single ids.
 *
 * The model file is untrusted: every length and index is checked.
 */
#include "model_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum piece_type {
	T_NORMAL = 1,
	T_UNKNOWN = 2,
	T_CONTROL = 3,
	T_USER = 4,
	T_UNUSED = 5,
	T_BYTE = 6,
};

struct piece {
	char *s;
	uint32_t len;
	float score;
	uint8_t type;
};

struct added {
	char *s;
	size_t len;
	int32_t id;
	bool special;
};

struct ed_tokenizer {
	struct piece *p;
	int32_t n;
	/* piece -> id (open addressing) */
	int32_t *hash;
	size_t hcap;
	int32_t unk, bos, eos, pad;
	bool byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws,
	    ws_suffix;
	/* tokenizer_config.json "legacy": false: no dummy prefix on the text
	 * after an added token (transformers' non-legacy SentencePiece) */
	bool prefix_first_only;
	int32_t byte_id[256];
	/* normalizer */
	const uint32_t *trie; /* units (copied, aligned) */
	size_t trie_units;
	const char *norm; /* normalized strings */
	size_t norm_len;
	uint32_t *trie_mem;
	char *norm_mem;
	/* user-defined symbols: longest byte length, looked up by hash */
	size_t user_max;
	/* added tokens (HF) */
	struct added *add;
	size_t n_add;
	int32_t size;	/* vocabulary incl. added ids */
	char **id_text; /* added tokens beyond the pieces, by id - n */
	int32_t id_text_n;
};

/* ---- protobuf ------------------------------------------------------- */

struct pb {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t pb_varint(struct pb *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char c = *r->p++;
		v |= (uint64_t)(c & 0x7F) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

/* Next field: returns false at the end. For wire type 2, *sub is the
 * payload; for 0 *v the varint; for 5 *v the 32 bits. */
static bool pb_next(struct pb *r, uint32_t *field, int *wt, uint64_t *v,
		    struct pb *sub)
{
	uint64_t key, len;

	if (r->bad || r->p >= r->end)
		return false;
	key = pb_varint(r);
	*field = (uint32_t)(key >> 3);
	*wt = (int)(key & 7);
	switch (*wt) {
	case 0: *v = pb_varint(r); break;
	case 1:
		if (r->end - r->p < 8) {
			r->bad = true;
			return false;
		}
		memcpy(v, r->p, 8);
		r->p += 8;
		break;
	case 2:
		len = pb_varint(r);
		if (r->bad || len > (uint64_t)(r->end - r->p)) {
			r->bad = true;
			return false;
		}
		sub->p = r->p;
		sub->end = r->p + len;
		sub->bad = false;
		r->p += len;
		break;
	case 5: {
		uint32_t u;
		if (r->end - r->p < 4) {
			r->bad = true;
			return false;
		}
		memcpy(&u, r->p, 4);
		*v = u;
		r->p += 4;
		break;
	}
	default: r->bad = true; return false;
	}
	return !r->bad;
}

/* ---- piece hash ------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int32_t find_piece(const struct ed_tokenizer *t, const char *s, size_t n)
{
	size_t i = (size_t)hash_bytes(s, n) & (t->hcap - 1);

	while (t->hash[i] >= 0) {
		const struct piece *p = &t->p[t->hash[i]];
		if (p->len == n && memcmp(p->s, s, n) == 0)
			return t->hash[i];
		i = (i + 1) & (t->hcap - 1);
	}
	return -1;
}

static int build_hash(struct ed_tokenizer *t)
{
	t->hcap = 16;
	while (t->hcap < 2 * (size_t)t->n)
		t->hcap *= 2;
	t->hash = malloc(t->hcap * sizeof *t->hash);
	if (!t->hash)
		return ED_ENOMEM;
	memset(t->hash, 0xFF, t->hcap * sizeof *t->hash);
	for (int32_t id = 0; id < t->n; id++) {
		const struct piece *p = &t->p[id];
		size_t i = (size_t)hash_bytes(p->s, p->len) & (t->hcap - 1);
		bool dup = false;
		while (t->hash[i] >= 0) {
			const struct piece *q = &t->p[t->hash[i]];
			if (q->len == p->len && memcmp(q->s, p->s, p->len) == 0)
				dup = true; /* the first id wins */
			i = (i + 1) & (t->hcap - 1);
		}
		if (!dup)
			t->hash[i] = id;
		if (p->type == T_USER && p->len > t->user_max)
			t->user_max = p->len;
	}
	return 0;
}

/* ---- loading -------------------------------------------------------- */

static int parse_piece(struct ed_tokenizer *t, struct pb *r)
{
	struct piece *p = &t->p[t->n];
	uint32_t f;
	int wt;
	uint64_t v;
	struct pb s;

	p->type = T_NORMAL;
	while (pb_next(r, &f, &wt, &v, &s)) {
		if (f == 1 && wt == 2) {
			size_t n = (size_t)(s.end - s.p);
			free(p->s);
			p->s = malloc(n + 1);
			if (!p->s)
				return ED_ENOMEM;
			memcpy(p->s, s.p, n);
			p->s[n] = '\0';
			p->len = (uint32_t)n;
		} else if (f == 2 && wt == 5) {
			uint32_t u = (uint32_t)v;
			memcpy(&p->score, &u, 4);
		} else if (f == 3 && wt == 0) {
			p->type = (uint8_t)v;
		}
	}
	if (r->bad || !p->s || p->len == 0 || p->type < 1 || p->type > 6)
		return ED_EFORMAT;
	t->n++;
	return 0;
}

static void parse_trainer(struct ed_tokenizer *t, struct pb *r, int *type)
{
	uint32_t f;
	int wt;
	uint64_t v;
	struct pb s;

	while (pb_next(r, &f, &wt, &v, &s)) {
		if (wt != 0)
			continue;
		switch (f) {
		case 3: *type = (int)v; break;
		case 24: t->ws_suffix = v != 0; break;
		case 35: t->byte_fallback = v != 0; break;
		case 40: t->unk = (int32_t)v; break;
		case 41: t->bos = (int32_t)v; break;
		case 42: t->eos = (int32_t)v; break;
		case 43: t->pad = (int32_t)v; break;
		}
	}
}

static int parse_normalizer(struct ed_tokenizer *t, struct pb *r)
{
	uint32_t f;
	int wt;
	uint64_t v;
	struct pb s;

	while (pb_next(r, &f, &wt, &v, &s)) {
		if (f == 2 && wt == 2) {
			size_t n = (size_t)(s.end - s.p);
			uint32_t tsize;
			if (n == 0)
				continue;
			if (n < 4)
				return ED_EFORMAT;
			memcpy(&tsize, s.p, 4);
			if (tsize % 4 || tsize > n - 4)
				return ED_EFORMAT;
			free(t->trie_mem);
			free(t->norm_mem);
			t->trie_mem = malloc(tsize ? tsize : 4);
			t->norm_mem = malloc(n - 4 - tsize + 1);
			if (!t->trie_mem || !t->norm_mem)
				return ED_ENOMEM;
			memcpy(t->trie_mem, s.p + 4, tsize);
			memcpy(t->norm_mem, s.p + 4 + tsize, n - 4 - tsize);
			t->norm_mem[n - 4 - tsize] = '\0';
			t->trie = t->trie_mem;
			t->trie_units = tsize / 4;
			t->norm = t->norm_mem;
			t->norm_len = n - 4 - tsize;
		} else if (wt == 0) {
			if (f == 3)
				t->add_dummy_prefix = v != 0;
			else if (f == 4)
				t->remove_extra_ws = v != 0;
			else if (f == 5)
				t->escape_ws = v != 0;
		}
	}
	return r->bad ? ED_EFORMAT : 0;
}

static int finish(struct ed_tokenizer **out, struct ed_tokenizer *t,
		  const char *what, char *err, size_t errlen);
static int add_token(struct ed_tokenizer *t, const char *s, int32_t id,
		     bool special);

int ed_tok_open_mem(struct ed_tokenizer **out, const void *data, size_t len,
		    char *err, size_t errlen)
{
	struct ed_tokenizer *t;
	struct pb r = {data, (const unsigned char *)data + len, false}, s;
	uint32_t f;
	int wt, type = 1, rc = 0;
	uint64_t v;
	size_t cap = 0;

	*out = NULL;
	t = calloc(1, sizeof *t);
	if (!t)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	t->unk = 0, t->bos = 1, t->eos = 2, t->pad = -1;
	t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = true;
	while (pb_next(&r, &f, &wt, &v, &s)) {
		if (f == 1 && wt == 2) {
			if ((size_t)t->n == cap) {
				struct piece *np;
				cap = cap ? 2 * cap : 1024;
				if (cap > (1u << 24) ||
				    !(np = realloc(t->p, cap * sizeof *np))) {
					rc = ED_ENOMEM;
					break;
				}
				t->p = np;
			}
			memset(&t->p[t->n], 0, sizeof t->p[t->n]);
			if ((rc = parse_piece(t, &s))) {
				free(t->p[t->n].s);
				break;
			}
		} else if (f == 2 && wt == 2) {
			parse_trainer(t, &s, &type);
		} else if (f == 3 && wt == 2) {
			if ((rc = parse_normalizer(t, &s)))
				break;
		}
	}
	if (!rc && r.bad)
		rc = ED_EFORMAT;
	if (!rc && t->n == 0)
		rc = ED_EFORMAT;
	if (rc) {
		ed_tok_close(t);
		return ed_err(err, errlen, rc, "bad tokenizer.model: %s",
			      rc == ED_ENOMEM ? "out of memory"
					      : "malformed protobuf");
	}
	if (type != 2) {
		ed_tok_close(t);
		return ed_err(err, errlen, ED_EFORMAT,
			      "tokenizer.model is a %s model; only BPE is "
			      "supported",
			      type == 1 ? "unigram" : "word or char");
	}
	return finish(out, t, "tokenizer.model", err, errlen);
}

static int finish(struct ed_tokenizer **out, struct ed_tokenizer *t,
		  const char *what, char *err, size_t errlen)
{
	if (t->unk < 0 || t->unk >= t->n) {
		int32_t unk = t->unk; /* read before t is freed */
		ed_tok_close(t);
		return ed_err(err, errlen, ED_EFORMAT,
			      "%s: unk id %d out of range", what, unk);
	}
	if (build_hash(t)) {
		ed_tok_close(t);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	for (int b = 0; b < 256; b++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", b);
		t->byte_id[b] = find_piece(t, name, 6);
	}
	t->size = t->n;
	*out = t;
	return 0;
}

int ed_tok_open_arrays(struct ed_tokenizer **out, const struct ed_tok_arrays *a,
		       char *err, size_t errlen)
{
	struct ed_tokenizer *t;
	int rc;

	*out = NULL;
	if (a->n <= 0 || a->n > (1 << 24))
		return ed_err(err, errlen, ED_EFORMAT,
			      "tokenizer.ggml.tokens: %d tokens", a->n);
	t = calloc(1, sizeof *t);
	if (!t || !(t->p = calloc((size_t)a->n, sizeof *t->p))) {
		free(t);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	t->unk = a->unk >= 0 ? a->unk : 0;
	t->bos = a->bos, t->eos = a->eos, t->pad = a->pad;
	t->add_dummy_prefix = a->add_space_prefix;
	t->remove_extra_ws = a->remove_extra_ws;
	t->prefix_first_only = a->prefix_first_only;
	t->escape_ws = true;
	for (int32_t i = 0; i < a->n; i++) {
		struct piece *p = &t->p[i];
		size_t len = strlen(a->tok[i]);
		p->type = a->type ? (uint8_t)a->type[i] : T_NORMAL;
		p->score = a->score ? a->score[i] : 0;
		if (len == 0 || len > UINT32_MAX || p->type < 1 ||
		    p->type > 6) {
			ed_tok_close(t);
			return ed_err(
			    err, errlen, ED_EFORMAT,
			    "tokenizer.ggml.tokens: token %d is %s", i,
			    len == 0 ? "empty" : "of an unknown type");
		}
		if (!(p->s = strdup(a->tok[i]))) {
			ed_tok_close(t);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		p->len = (uint32_t)len;
		t->byte_fallback |= p->type == T_BYTE;
		t->n = i + 1;
	}
	if (a->charsmap && a->charsmap_len) {
		/* the proto's precompiled_charsmap, as parse_normalizer
		 * reads it: a normalizer_spec holding field 2 */
		size_t n = a->charsmap_len, v = n;
		unsigned char *spec = malloc(n + 16), *q = spec;
		struct pb r;
		if (!spec) {
			ed_tok_close(t);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		*q++ = 0x12; /* field 2, length-delimited */
		for (; v >= 0x80; v >>= 7)
			*q++ = (unsigned char)((v & 0x7f) | 0x80);
		*q++ = (unsigned char)v;
		memcpy(q, a->charsmap, n);
		r = (struct pb){spec, q + n, false};
		rc = parse_normalizer(t, &r);
		free(spec);
		/* parse_normalizer sets no flags here: field 2 only */
		if (rc) {
			ed_tok_close(t);
			return ed_err(err, errlen, rc,
				      "tokenizer.ggml.precompiled_charsmap is "
				      "malformed");
		}
	}
	if ((rc = finish(out, t, "tokenizer.ggml.tokens", err, errlen)))
		return rc;
	t = *out;
	for (int32_t i = 0; i < t->n; i++) {
		int ty = t->p[i].type;
		if ((ty == T_CONTROL || ty == T_UNKNOWN || ty == T_USER) &&
		    add_token(t, t->p[i].s, i, ty != T_USER)) {
			ed_tok_close(t);
			*out = NULL;
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
	}
	return 0;
}

int ed_tok_export(const struct ed_tokenizer *t, int32_t vocab,
		  struct ed_tok_arrays *a)
{
	int32_t n = t->size > vocab ? t->size : vocab;

	memset(a, 0, sizeof *a);
	a->tok = calloc((size_t)n, sizeof *a->tok);
	a->score = calloc((size_t)n, sizeof *a->score);
	a->type = calloc((size_t)n, sizeof *a->type);
	if (!a->tok || !a->score || !a->type) {
		ed_tok_arrays_free(a);
		return ED_ENOMEM;
	}
	a->n = n;
	for (int32_t i = 0; i < n; i++) {
		const char *s = NULL;
		char pad[32];
		bool special = false;
		for (size_t k = 0; k < t->n_add; k++)
			if (t->add[k].id == i) {
				s = t->add[k].s;
				special = t->add[k].special;
			}
		if (i < t->n) {
			/* a piece (an added token of its id keeps the
			 * piece's type; control pieces match whole when
			 * read back) */
			s = t->p[i].s;
			a->score[i] = t->p[i].score;
			a->type[i] = t->p[i].type;
		} else if (s) {
			/* added beyond the pieces: llama.cpp's converter
			 * gives them score -1000 */
			a->score[i] = -1000;
			a->type[i] = special ? T_CONTROL : T_USER;
		} else {
			snprintf(pad, sizeof pad, "[PAD%d]", i);
			s = pad;
			a->type[i] = T_UNUSED;
		}
		if (!(a->tok[i] = strdup(s))) {
			ed_tok_arrays_free(a);
			return ED_ENOMEM;
		}
	}
	a->unk = t->unk, a->bos = t->bos, a->eos = t->eos, a->pad = t->pad;
	a->add_space_prefix = t->add_dummy_prefix;
	a->remove_extra_ws = t->remove_extra_ws;
	a->prefix_first_only = t->prefix_first_only;
	if (t->trie_units || t->norm_len) {
		/* the precompiled charsmap again: trie size, trie, strings */
		uint32_t ts = (uint32_t)(t->trie_units * 4);
		a->charsmap_len = 4 + ts + t->norm_len;
		a->charsmap = malloc(a->charsmap_len);
		if (!a->charsmap) {
			ed_tok_arrays_free(a);
			return ED_ENOMEM;
		}
		memcpy(a->charsmap, &ts, 4);
		memcpy(a->charsmap + 4, t->trie, ts);
		memcpy(a->charsmap + 4 + ts, t->norm, t->norm_len);
	}
	return 0;
}

void ed_tok_arrays_free(struct ed_tok_arrays *a)
{
	for (int32_t i = 0; a->tok && i < a->n; i++)
		free(a->tok[i]);
	free(a->tok);
	free(a->score);
	free(a->type);
	free(a->charsmap);
	memset(a, 0, sizeof *a);
}

void ed_tok_close(struct ed_tokenizer *t)
{
	if (!t)
		return;
	for (int32_t i = 0; i < t->n; i++)
		free(t->p[i].s);
	free(t->p);
	free(t->hash);
	free(t->trie_mem);
	free(t->norm_mem);
	for (size_t i = 0; i < t->n_add; i++)
		free(t->add[i].s);
	free(t->add);
	free(t->id_text);
	free(t);
}

/* ---- added tokens ---------------------------------------------------- */

static int add_token(struct ed_tokenizer *t, const char *s, int32_t id,
		     bool special)
{
	struct added *na;
	size_t len = strlen(s);

	if (!len || id < 0)
		return 0;
	for (size_t i = 0; i < t->n_add; i++)
		if (t->add[i].len == len && memcmp(t->add[i].s, s, len) == 0) {
			t->add[i].special |= special;
			return 0;
		}
	na = realloc(t->add, (t->n_add + 1) * sizeof *na);
	if (!na)
		return ED_ENOMEM;
	t->add = na;
	na[t->n_add].s = strdup(s);
	if (!na[t->n_add].s)
		return ED_ENOMEM;
	na[t->n_add].len = len;
	na[t->n_add].id = id;
	na[t->n_add].special = special;
	t->n_add++;
	if (id >= t->size)
		t->size = id + 1;
	return 0;
}

static json_t *load_json(const char *dir, const char *name)
{
	char path[4096];
	json_error_t je;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return json_load_file(path, JSON_DISABLE_EOF_CHECK, &je);
}

/* The side files' contents (each may be NULL); they are released. */
static int load_added_json(struct ed_tokenizer *t, json_t *added,
			   json_t *config, json_t *special)
{
	json_t *j, *v;
	const char *k;
	int rc = 0;

	if ((j = added)) {
		json_object_foreach(j, k, v) if (json_is_integer(v) && !rc) rc =
		    add_token(t, k, (int32_t)json_integer_value(v), true);
		json_decref(j);
	}
	if ((j = config)) {
		json_t *dec = json_object_get(j, "added_tokens_decoder");
		json_t *aps = json_object_get(j, "add_prefix_space"),
		       *leg = json_object_get(j, "legacy");
		/* transformers' flags over the .model's add_dummy_prefix
		 * (RELEASED.md 2: HF's ERNIE tokenizers set it false) */
		if (json_is_boolean(aps))
			t->add_dummy_prefix = json_is_true(aps);
		if (json_is_boolean(leg))
			t->prefix_first_only = json_is_false(leg);
		json_object_foreach(dec, k, v)
		{
			const char *c =
			    json_string_value(json_object_get(v, "content"));
			char *end;
			long id = strtol(k, &end, 10);
			if (c && !*end && !rc)
				rc = add_token(t, c, (int32_t)id,
					       json_is_true(json_object_get(
						   v, "special")));
		}
		json_decref(j);
	}
	if ((j = special)) {
		json_object_foreach(j, k, v)
		{
			size_t i;
			json_t *e;
			json_t *list = json_is_array(v) ? v : NULL;
			if (!list) {
				const char *c =
				    json_is_string(v)
					? json_string_value(v)
					: json_string_value(
					      json_object_get(v, "content"));
				int32_t id = c ? ed_tok_id(t, c) : -1;
				if (c && id >= 0 && !rc)
					rc = add_token(t, c, id, true);
				continue;
			}
			json_array_foreach(list, i, e)
			{
				const char *c =
				    json_is_string(e)
					? json_string_value(e)
					: json_string_value(
					      json_object_get(e, "content"));
				int32_t id = c ? ed_tok_id(t, c) : -1;
				if (c && id >= 0 && !rc)
					rc = add_token(t, c, id, true);
			}
		}
		json_decref(j);
	}
	return rc;
}

static int load_added(struct ed_tokenizer *t, const char *dir)
{
	return load_added_json(t, load_json(dir, "added_tokens.json"),
			       load_json(dir, "tokenizer_config.json"),
			       load_json(dir, "special_tokens_map.json"));
}

static json_t *parse_or_null(const char *text)
{
	return text ? json_loads(text, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
}

int ed_tok_open_parts(struct ed_tokenizer **out, const void *model, size_t len,
		      const char *added_json, const char *config_json,
		      const char *special_json, char *err, size_t errlen)
{
	int rc = ed_tok_open_mem(out, model, len, err, errlen);

	if (rc)
		return rc;
	if ((rc = load_added_json(*out, parse_or_null(added_json),
				  parse_or_null(config_json),
				  parse_or_null(special_json)))) {
		ed_tok_close(*out);
		*out = NULL;
		return ed_err(err, errlen, rc, "tokenizer side files: %s",
			      ed_strerror(rc));
	}
	return 0;
}

int ed_tok_open(struct ed_tokenizer **out, const char *dir, char *err,
		size_t errlen)
{
	char path[4096], *data;
	size_t n;
	int rc;

	*out = NULL;
	snprintf(path, sizeof path, "%s/tokenizer.model", dir);
	rc = ed_read_file(path, 256u << 20, &data, &n);
	if (rc == ED_ENOENT)
		return ED_ENOENT; /* optional: no message */
	if (rc == ED_ETOOBIG)
		return ed_err(err, errlen, ED_EFORMAT,
			      "'%s' is larger than 256 MiB", path);
	if (rc)
		return ed_err(err, errlen, rc, "cannot read '%s'", path);
	rc = ed_tok_open_mem(out, data, n, err, errlen);
	free(data);
	if (rc)
		return rc;
	if ((rc = load_added(*out, dir))) {
		ed_tok_close(*out);
		*out = NULL;
		return ed_err(err, errlen, rc, "tokenizer side files: %s",
			      ed_strerror(rc));
	}
	return 0;
}

int32_t ed_tok_size(const struct ed_tokenizer *t)
{
	return t->size;
}

int32_t ed_tok_id(const struct ed_tokenizer *t, const char *piece)
{
	size_t len = strlen(piece);

	for (size_t i = 0; i < t->n_add; i++)
		if (t->add[i].len == len &&
		    memcmp(t->add[i].s, piece, len) == 0)
			return t->add[i].id;
	return find_piece(t, piece, len);
}

const char *ed_tok_piece(const struct ed_tokenizer *t, int32_t id)
{
	for (size_t i = 0; i < t->n_add; i++)
		if (t->add[i].id == id)
			return t->add[i].s;
	return id >= 0 && id < t->n ? t->p[id].s : NULL;
}

/* ---- normalizer -------------------------------------------------------- */

/* darts-clone double array: the longest rule matching a prefix of s.
 * Returns its length (0: none) and the offset of the replacement. */
static size_t trie_longest(const struct ed_tokenizer *t, const char *s,
			   size_t n, uint32_t *value)
{
	size_t pos = 0, best = 0;
	uint32_t unit;

	if (!t->trie_units)
		return 0;
	unit = t->trie[0];
	pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		pos ^= c;
		if (pos >= t->trie_units)
			return best;
		unit = t->trie[pos];
		if ((unit & ((1u << 31) | 0xFF)) != c)
			return best;
		pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
		if ((unit >> 8) & 1) {
			if (pos >= t->trie_units)
				return best;
			uint32_t v = t->trie[pos] & ((1u << 31) - 1);
			if (v < t->norm_len) {
				best = i + 1;
				*value = v;
			}
		}
	}
	return best;
}

/* Length of a user-defined symbol at s (longest), or 0. */
static size_t user_match(const struct ed_tokenizer *t, const char *s, size_t n)
{
	for (size_t l = t->user_max < n ? t->user_max : n; l > 0; l--) {
		int32_t id = find_piece(t, s, l);
		if (id >= 0 && t->p[id].type == T_USER)
			return l;
	}
	return 0;
}

/* One normalization step at s: the replacement (out/outlen) for the
 * consumed bytes (returned). */
static size_t norm_prefix(const struct ed_tokenizer *t, const char *s, size_t n,
			  const char **out, size_t *outlen)
{
	static const char repl[] = "\xEF\xBF\xBD";
	uint32_t v = 0;
	size_t len = user_match(t, s, n);
	uint32_t cp;
	int k;

	if (len) {
		*out = s;
		*outlen = len;
		return len;
	}
	len = trie_longest(t, s, n, &v);
	if (len) {
		*out = t->norm + v;
		*outlen = strnlen(t->norm + v, t->norm_len - v);
		return len;
	}
	k = ed_utf8_decode((const unsigned char *)s, n, &cp);
	if (cp == 0xFFFD && k == 1) { /* malformed: U+FFFD, one byte */
		*out = repl;
		*outlen = 3;
		return 1;
	}
	*out = s;
	*outlen = (size_t)k;
	return (size_t)k;
}

static int normalize(const struct ed_tokenizer *t, const char *in, size_t n,
		     struct ed_buf *o, bool prefix)
{
	static const char ws[] = "\xE2\x96\x81"; /* U+2581 */
	size_t i = 0;
	bool prev_space = t->remove_extra_ws;
	int rc = 0;

	if (t->remove_extra_ws) /* leading whitespace */
		while (i < n) {
			const char *r;
			size_t rl, k = norm_prefix(t, in + i, n - i, &r, &rl);
			if (rl != 1 || r[0] != ' ')
				break;
			i += k;
		}
	if (i == n)
		return 0;
	if (!t->ws_suffix && t->add_dummy_prefix && prefix)
		rc |= ed_buf_append(o, t->escape_ws ? ws : " ",
				    t->escape_ws ? 3 : 1);
	while (i < n) {
		const char *r;
		size_t rl, k = norm_prefix(t, in + i, n - i, &r, &rl);
		while (prev_space && rl && r[0] == ' ')
			r++, rl--;
		if (rl) {
			for (size_t j = 0; j < rl; j++) {
				if (t->escape_ws && r[j] == ' ')
					rc |= ed_buf_append(o, ws, 3);
				else
					rc |= ed_buf_putc(o, r[j]);
			}
			prev_space = r[rl - 1] == ' ';
		}
		i += k;
		prev_space = prev_space && t->remove_extra_ws;
	}
	if (t->remove_extra_ws) { /* trailing whitespace */
		const char *sp = t->escape_ws ? ws : " ";
		size_t sl = t->escape_ws ? 3 : 1;
		while (o->len >= sl &&
		       memcmp(o->data + o->len - sl, sp, sl) == 0)
			o->len -= sl;
		if (o->data)
			o->data[o->len] = '\0';
	}
	if (t->ws_suffix && t->add_dummy_prefix && prefix)
		rc |= ed_buf_append(o, t->escape_ws ? ws : " ",
				    t->escape_ws ? 3 : 1);
	return rc ? ED_ENOMEM : 0;
}

/* ---- BPE ------------------------------------------------------------- */

struct sym {
	int prev, next;
	bool freeze;
	uint32_t off, len;
};

struct pair {
	int left, right;
	float score;
	uint32_t size;
};

struct heap {
	struct pair *a;
	size_t n, cap;
};

/* higher score first; on a tie the leftmost pair */
static bool before(const struct pair *x, const struct pair *y)
{
	return x->score > y->score ||
	       (x->score == y->score && x->left < y->left);
}

static int heap_push(struct heap *h, struct pair p)
{
	size_t i;

	if (h->n == h->cap) {
		size_t nc = h->cap ? 2 * h->cap : 64;
		struct pair *na = realloc(h->a, nc * sizeof *na);
		if (!na)
			return ED_ENOMEM;
		h->a = na;
		h->cap = nc;
	}
	i = h->n++;
	while (i > 0 && before(&p, &h->a[(i - 1) / 2])) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = p;
	return 0;
}

static struct pair heap_pop(struct heap *h)
{
	struct pair top = h->a[0], last = h->a[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(&h->a[c + 1], &h->a[c]))
			c++;
		if (!before(&h->a[c], &last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

/* Ids for merging: normal, user-defined and unused pieces. */
static int32_t mergeable(const struct ed_tokenizer *t, const char *s, size_t n)
{
	int32_t id = find_piece(t, s, n);

	if (id < 0)
		return -1;
	switch (t->p[id].type) {
	case T_NORMAL:
	case T_USER:
	case T_UNUSED: return id;
	}
	return -1;
}

/* Reverse merges of unused pieces: the last pair seen for each string,
 * as SentencePiece records them, to split such a piece back. */
struct rev {
	const char *s;
	uint32_t len, left;
};

struct revs {
	struct rev *a;
	size_t n;
};

static int rev_put(struct revs *r, const char *s, uint32_t len, uint32_t left)
{
	struct rev *na;

	for (size_t i = 0; i < r->n; i++)
		if (r->a[i].len == len && memcmp(r->a[i].s, s, len) == 0) {
			r->a[i].left = left;
			return 0;
		}
	na = realloc(r->a, (r->n + 1) * sizeof *na);
	if (!na)
		return ED_ENOMEM;
	r->a = na;
	r->a[r->n++] = (struct rev){s, len, left};
	return 0;
}

static const struct rev *rev_get(const struct revs *r, const char *s,
				 size_t len)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->a[i].len == len && memcmp(r->a[i].s, s, len) == 0)
			return &r->a[i];
	return NULL;
}

static int maybe_pair(const struct ed_tokenizer *t, const char *text,
		      struct sym *sy, int l, int r, struct heap *h,
		      struct revs *rv)
{
	int32_t id;
	int rc;

	if (l < 0 || r < 0 || sy[l].freeze || sy[r].freeze)
		return 0;
	id = mergeable(t, text + sy[l].off, sy[l].len + sy[r].len);
	if (id < 0)
		return 0;
	if ((rc = heap_push(h, (struct pair){l, r, t->p[id].score,
					     sy[l].len + sy[r].len})))
		return rc;
	if (t->p[id].type == T_UNUSED)
		return rev_put(rv, text + sy[l].off, sy[l].len + sy[r].len,
			       sy[l].len);
	return 0;
}

struct out {
	int32_t **ids;
	size_t *n, cap;
};

static int emit(struct out *o, int32_t id)
{
	if (*o->n == o->cap || !*o->ids) {
		size_t nc = o->cap < 64 ? 64 : 2 * o->cap;
		int32_t *na;
		if (nc < *o->n + 1)
			nc = *o->n + 64;
		na = realloc(*o->ids, nc * sizeof *na);
		if (!na)
			return ED_ENOMEM;
		*o->ids = na;
		o->cap = nc;
	}
	(*o->ids)[(*o->n)++] = id;
	return 0;
}

/* Piece -> id as SentencePiece's PieceToId: reserved pieces included,
 * unk otherwise. */
static int32_t piece_id(const struct ed_tokenizer *t, const char *s, size_t n)
{
	int32_t id = find_piece(t, s, n);
	return id < 0 ? t->unk : id;
}

/* Output one final symbol: unused pieces are split back into the pair
 * they were merged from, unknown ones spelled as bytes. */
static int put_piece(const struct ed_tokenizer *t, const char *s, size_t n,
		     struct out *o, bool *prev_unk, const struct revs *rv,
		     int depth)
{
	int32_t id = piece_id(t, s, n);
	const struct rev *r;
	int rc;

	if (t->p[id].type == T_UNUSED && depth < 64 &&
	    (r = rev_get(rv, s, n))) {
		if ((rc = put_piece(t, s, r->left, o, prev_unk, rv, depth + 1)))
			return rc;
		return put_piece(t, s + r->left, n - r->left, o, prev_unk, rv,
				 depth + 1);
	}
	if (id == t->unk && t->byte_fallback) {
		for (size_t k = 0; k < n; k++) {
			int32_t b = t->byte_id[(unsigned char)s[k]];
			if ((rc = emit(o, b >= 0 ? b : t->unk)))
				return rc;
		}
		*prev_unk = false;
		return 0;
	}
	if (id == t->unk && *prev_unk)
		return 0; /* runs of unknowns become one <unk> */
	*prev_unk = id == t->unk;
	return emit(o, id);
}

static int bpe(const struct ed_tokenizer *t, const char *text, size_t n,
	       struct out *o)
{
	struct sym *sy = NULL;
	struct heap h = {0};
	struct revs rv = {0};
	int ns = 0, rc = 0;
	bool prev_unk = false;

	if (n == 0)
		return 0;
	sy = malloc(n * sizeof *sy);
	if (!sy)
		return ED_ENOMEM;
	for (size_t i = 0; i < n;) {
		size_t len = user_match(t, text + i, n - i);
		bool fr = len > 0;
		if (!len) {
			static const unsigned char tab[16] = {
			    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
			len = tab[(unsigned char)text[i] >> 4];
			if (len > n - i)
				len = n - i;
		}
		sy[ns] =
		    (struct sym){ns - 1, -1, fr, (uint32_t)i, (uint32_t)len};
		if (ns > 0)
			sy[ns - 1].next = ns;
		ns++;
		i += len;
	}
	for (int i = 1; i < ns && !rc; i++)
		rc = maybe_pair(t, text, sy, i - 1, i, &h, &rv);
	while (h.n && !rc) {
		struct pair top = heap_pop(&h);
		struct sym *l = &sy[top.left], *r = &sy[top.right];
		if (!l->len || !r->len || l->len + r->len != top.size)
			continue; /* stale */
		l->len += r->len;
		l->next = r->next;
		if (r->next >= 0)
			sy[r->next].prev = top.left;
		r->len = 0;
		rc = maybe_pair(t, text, sy, l->prev, top.left, &h, &rv);
		if (!rc)
			rc =
			    maybe_pair(t, text, sy, top.left, l->next, &h, &rv);
	}
	for (int i = 0; i != -1 && !rc; i = sy[i].next)
		rc = put_piece(t, text + sy[i].off, sy[i].len, o, &prev_unk,
			       &rv, 0);
	free(rv.a);
	free(h.a);
	free(sy);
	return rc;
}

static int encode_piece(const struct ed_tokenizer *t, const char *text,
			size_t len, bool prefix, int32_t **ids, size_t *n)
{
	struct ed_buf norm;
	struct out o = {ids, n, *ids ? *n : 0};
	int rc;

	ed_buf_init(&norm, 0);
	rc = normalize(t, text, len, &norm, prefix);
	if (!rc)
		rc = bpe(t, norm.data ? norm.data : "", norm.len, &o);
	ed_buf_release(&norm);
	return rc;
}

int ed_tok_encode_spm(const struct ed_tokenizer *t, const char *text,
		      size_t len, int32_t **ids, size_t *n)
{
	return encode_piece(t, text, len, true, ids, n);
}

int ed_tok_encode(const struct ed_tokenizer *t, const char *text, size_t len,
		  int32_t **ids, size_t *n)
{
	size_t start = 0, i = 0;
	int rc;

	/* leftmost-longest added token, the text between goes to the spm */
	while (i < len) {
		size_t best = 0;
		int32_t id = -1;
		for (size_t a = 0; a < t->n_add; a++)
			if (t->add[a].len > best && t->add[a].len <= len - i &&
			    memcmp(text + i, t->add[a].s, t->add[a].len) == 0) {
				best = t->add[a].len;
				id = t->add[a].id;
			}
		if (!best) {
			i++;
			continue;
		}
		if (i > start &&
		    (rc = encode_piece(t, text + start, i - start,
				       start == 0 || !t->prefix_first_only, ids,
				       n)))
			return rc;
		{
			struct out o = {ids, n, *n};
			if ((rc = emit(&o, id)))
				return rc;
		}
		i += best;
		start = i;
	}
	if (len > start)
		return encode_piece(t, text + start, len - start,
				    start == 0 || !t->prefix_first_only, ids,
				    n);
	return 0;
}

/* ---- decoding -------------------------------------------------------- */

/* Markup a reasoning or tool-calling model writes: kept in decoded text
 * even when special, so that the reasoning and the tool calls can be
 * found in it (as the servers' parsers find them in token ids). */
static bool is_markup(const char *piece)
{
	static const char *const keep[] = {"<think>",	  "</think>",
					   "<tool_call>", "</tool_call>",
					   "<response>",  "</response>"};
	for (size_t i = 0; piece && i < ED_ARRAY_LEN(keep); i++)
		if (strcmp(piece, keep[i]) == 0)
			return true;
	return false;
}

static bool is_special(const struct ed_tokenizer *t, int32_t id)
{
	for (size_t i = 0; i < t->n_add; i++)
		if (t->add[i].id == id)
			return t->add[i].special &&
			       !is_markup(ed_tok_piece(t, id));
	return id >= 0 && id < t->n &&
	       (t->p[id].type == T_CONTROL || t->p[id].type == T_UNKNOWN);
}

int ed_tok_text_bytes(const struct ed_tokenizer *t, int32_t id, char *buf,
		      size_t cap)
{
	const struct piece *p;
	size_t n = 0;

	if (id < 0 || id >= t->n)
		return 0; /* added tokens are markup, not text */
	for (size_t i = 0; i < t->n_add; i++)
		if (t->add[i].id == id)
			return 0;
	p = &t->p[id];
	if (p->type == T_BYTE) {
		unsigned v;
		if (cap < 1 || sscanf(p->s, "<0x%2X>", &v) != 1)
			return 0;
		buf[0] = (char)v;
		return 1;
	}
	if (p->type != T_NORMAL)
		return 0;
	for (const char *s = p->s; *s; s++) {
		if (n + 1 > cap)
			return -1;
		if (strncmp(s, "\xE2\x96\x81", 3) == 0) {
			buf[n++] = ' ';
			s += 2;
		} else {
			buf[n++] = *s;
		}
	}
	return (int)n;
}

/* the length of p's prefix that ends on a whole UTF-8 sequence: an
 * unfinished lead byte and its continuation bytes at the end stay out */
static size_t utf8_complete(const unsigned char *p, size_t n)
{
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = p[n - back];
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
		if (c >= 0x80 && c < 0xc0)
			continue;
		return need > back ? n - back : n;
	}
	return n;
}

/* Byte pieces' bytes as UTF-8, as SentencePiece reassembles them: each
 * byte of an invalid or cut sequence becomes U+FFFD; NUL is dropped (the
 * text goes on as a C string), every other control kept. */
static int flush_bytes(struct ed_buf *b, const unsigned char *p, size_t n)
{
	size_t i = 0;
	int rc = 0;

	while (i < n && !rc) {
		uint32_t cp;
		char enc[4];
		int k = ed_utf8_decode(p + i, n - i, &cp);
		i += (size_t)k;
		if (cp)
			rc = ed_buf_append(b, enc,
					   (size_t)ed_utf8_encode(cp, enc));
	}
	return rc;
}

int ed_tok_decode(const struct ed_tokenizer *t, const int32_t *ids, size_t n,
		  bool skip_special, struct ed_buf *b)
{
	unsigned char bytes[64];
	size_t nb = 0, start = b->len;
	int rc = 0;

	for (size_t i = 0; i <= n && !rc; i++) {
		int32_t id = i < n ? ids[i] : -1;
		bool is_byte = id >= 0 && id < t->n && t->p[id].type == T_BYTE;
		const char *s;

		if (nb && !is_byte) {
			rc = flush_bytes(b, bytes, nb);
			nb = 0;
		} else if (nb == sizeof bytes) {
			/* full: keep a sequence the next pieces may finish */
			size_t cut = utf8_complete(bytes, nb);
			rc = flush_bytes(b, bytes, cut);
			memmove(bytes, bytes + cut, nb - cut);
			nb -= cut;
		}
		if (i == n)
			break;
		if (is_byte) {
			unsigned v;
			if (sscanf(t->p[id].s, "<0x%2X>", &v) == 1)
				bytes[nb++] = (unsigned char)v;
			continue;
		}
		if (skip_special && is_special(t, id))
			continue;
		s = ed_tok_piece(t, id);
		if (!s)
			continue;
		if (id < t->n && t->p[id].type == T_UNKNOWN) {
			rc = ed_buf_puts(b, " \xE2\x81\x87 ");
			continue;
		}
		for (const char *p = s; *p && !rc; p++) {
			if (strncmp(p, "\xE2\x96\x81", 3) == 0) {
				rc = ed_buf_putc(b, ' ');
				p += 2;
			} else {
				rc = ed_buf_putc(b, *p);
			}
		}
	}
	/* the dummy prefix of the text's first piece */
	if (!rc && t->add_dummy_prefix && b->len > start &&
	    b->data[start] == ' ') {
		memmove(b->data + start, b->data + start + 1,
			b->len - start - 1);
		b->len--;
		b->data[b->len] = '\0';
	}
	return rc ? ED_ENOMEM : 0;
}
