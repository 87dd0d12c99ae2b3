/*
 * schema.c - a JSON Schema (the subset ed_schema_compile documents)
 * compiled once into nodes: the validator of values (replies from a
 * server, the engine's own output), the bound on the bytes a value can
 * take, the field list a prompt describes, and the byte-level matcher
 * that constrained decoding (grammar.c) walks. The matcher accepts exactly
 * the compact JSON texts that conform: properties in schema order, at
 * most one space or newline where JSON allows whitespace, numbers of at
 * most 15 significant digits and a 3-digit exponent, strings that match
 * their pattern and format whole.
 */
#include "model_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The formats, as the grammar enforces them (and the validator checks):
 * a calendar date (month lengths, leap years; years 0001-9999), an
 * RFC 3339 date-time (seconds 00-59, up to 6 fraction digits, Z or an
 * offset), an e-mail address with one @ and non-empty dot-separated
 * parts, an absolute URI (scheme ":" and URI characters). */
#define RE_Y  "(000[1-9]|00[1-9][0-9]|0[1-9][0-9][0-9]|[1-9][0-9][0-9][0-9])"
#define RE_M4 "(0[48]|[2468][048]|[13579][26])"
#define RE_DATE                                                                \
	"(" RE_Y "-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|" RE_Y               \
	"-(0[13-9]|1[0-2])-(29|30)|" RE_Y "-(0[13578]|1[02])-31|"              \
	"([0-9][0-9]" RE_M4 "|" RE_M4 "00)-02-29)"
#define RE_TIME                                                                \
	"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?"             \
	"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#define RE_ATEXT "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#define RE_LABEL "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
static const char *const format_re[] = {
    [FMT_DATE] = RE_DATE,
    [FMT_DATETIME] = RE_DATE "T" RE_TIME,
    [FMT_EMAIL] =
	RE_ATEXT "+(\\." RE_ATEXT "+)*@" RE_LABEL "(\\." RE_LABEL ")*",
    [FMT_URI] = "[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+",
};
static const char *const format_name[] = {
    [FMT_DATE] = "date",
    [FMT_DATETIME] = "date-time",
    [FMT_EMAIL] = "email",
    [FMT_URI] = "uri",
};

/* ---- compiling ------------------------------------------------------ */

struct comp {
	struct ed_schema *s;
	json_t *root, *empty;
	const char *refs[G_MAX_REFS]; /* $refs being expanded (recursion) */
	int nrefs;
	char *err;
	size_t errlen;
	int rc;
};

static int cfail(struct comp *c, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cfail(struct comp *c, const char *where, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	if (c->rc)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->rc = ed_err(c->err, c->errlen, ED_EINVAL, "schema%s%s: %s",
		       *where ? " at " : "", where, msg);
	return -1;
}

static int oom(struct comp *c)
{
	if (!c->rc)
		c->rc = ed_err(c->err, c->errlen, ED_ENOMEM, "out of memory");
	return -1;
}

static void *grow(struct comp *c, void *p, int *cap, int need, size_t size)
{
	void *np;
	int ncap;
	if (need <= *cap)
		return p;
	ncap = *cap ? *cap : 8;
	while (ncap < need)
		ncap *= 2;
	np = realloc(p, (size_t)ncap * size);
	if (!np) {
		oom(c);
		return NULL;
	}
	*cap = ncap;
	return np;
}

static int add_lit(struct comp *c, const char *text, size_t len, json_t *v)
{
	struct ed_schema *s = c->s;
	struct glit *L;
	void *np = grow(c, s->lits, &s->lcap, s->nlits + 1, sizeof *s->lits);
	if (!np)
		return -1;
	s->lits = np;
	L = &s->lits[s->nlits];
	L->bytes = malloc(len + 1);
	if (!L->bytes)
		return oom(c);
	memcpy(L->bytes, text, len);
	L->bytes[len] = '\0';
	L->len = (int)len;
	L->value = v ? json_incref(v) : NULL;
	return s->nlits++;
}

static int add_value_lit(struct comp *c, json_t *v)
{
	char *t =
	    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
			      JSON_REAL_PRECISION(17));
	int rc;
	if (!t)
		return oom(c);
	rc = add_lit(c, t, strlen(t), v);
	free(t);
	return rc;
}

static unsigned type_bit(const char *t)
{
	static const struct {
		const char *name;
		unsigned bit;
	} tab[] = {{"object", T_OBJ}, {"array", T_ARR},	  {"string", T_STR},
		   {"number", T_NUM}, {"integer", T_INT}, {"boolean", T_BOOL},
		   {"null", T_NULL}};
	for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
		if (!strcmp(t, tab[i].name))
			return tab[i].bit;
	return 0;
}

static bool value_has_type(json_t *v, unsigned types)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return types & T_OBJ;
	case JSON_ARRAY: return types & T_ARR;
	case JSON_STRING: return types & T_STR;
	case JSON_INTEGER: return types & (T_NUM | T_INT);
	case JSON_REAL: {
		double d = json_real_value(v);
		return (types & T_NUM) ||
		       ((types & T_INT) && d == (double)(long long)d);
	}
	case JSON_TRUE:
	case JSON_FALSE: return types & T_BOOL;
	case JSON_NULL: return types & T_NULL;
	}
	return false;
}

static int compile_node(struct comp *c, json_t *j, const char *where);

static int get_count(struct comp *c, json_t *j, const char *key,
		     const char *where, int *out)
{
	json_t *v = json_object_get(j, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > G_MAX_COUNT)
		return cfail(c, where, "%s must be an integer from 0 to 100000",
			     key);
	*out = (int)json_integer_value(v);
	return 0;
}

/* Resolve "#/$defs/NAME" or "#/definitions/NAME". */
static json_t *resolve(struct comp *c, const char *ref, const char *where)
{
	const char *name;
	json_t *defs;
	if (!strncmp(ref, "#/$defs/", 8)) {
		defs = json_object_get(c->root, "$defs");
		name = ref + 8;
	} else if (!strncmp(ref, "#/definitions/", 14)) {
		defs = json_object_get(c->root, "definitions");
		name = ref + 14;
	} else {
		cfail(c, where, "$ref '%s': only #/$defs/NAME is supported",
		      ref);
		return NULL;
	}
	if (!json_is_object(defs) || !json_object_get(defs, name)) {
		cfail(c, where, "$ref '%s' names no definition", ref);
		return NULL;
	}
	return json_object_get(defs, name);
}

static const char *const ignored[] = {"title",
				      "description",
				      "$schema",
				      "$id",
				      "$comment",
				      "examples",
				      "default",
				      "$defs",
				      "definitions",
				      "readOnly",
				      "writeOnly",
				      "deprecated",
				      "additionalProperties",
				      "type",
				      "enum",
				      "const",
				      "properties",
				      "required",
				      "items",
				      "minItems",
				      "maxItems",
				      "minLength",
				      "maxLength",
				      "pattern",
				      "format",
				      "$ref"};

static bool in_list(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(key, list[i]))
			return true;
	return false;
}

static int compile_props(struct comp *c, struct gnode *n, json_t *j,
			 const char *where)
{
	struct ed_schema *s = c->s;
	json_t *props = json_object_get(j, "properties");
	json_t *req = json_object_get(j, "required");
	json_t *addl = json_object_get(j, "additionalProperties");
	const char *key;
	json_t *v;
	int first;

	if (props && !json_is_object(props))
		return cfail(c, where, "%s must be an object", "properties");
	if (req && !json_is_array(req))
		return cfail(c, where, "%s must be an array", "required");
	if (addl && !json_is_boolean(addl))
		return cfail(c, where, "%s: only true or false is supported",
			     "additionalProperties");
	n->addl_ok = !addl || json_is_true(addl);
	first = s->nprops;
	json_object_foreach(props, key, v)
	{
		struct gprop *P;
		void *np = grow(c, s->props, &s->pcap, s->nprops + 1,
				sizeof *s->props);
		json_t *ks;
		char *lit;
		if (!np)
			return -1;
		s->props = np;
		P = &s->props[s->nprops++];
		memset(P, 0, sizeof *P);
		P->node = -1;
		P->name = strdup(key);
		ks = json_string(key);
		lit = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
		json_decref(ks);
		if (!P->name || !lit) {
			free(lit);
			return oom(c);
		}
		P->lit = lit;
		P->len = (int)strlen(lit);
	}
	n->prop0 = first;
	n->nprop = s->nprops - first;
	for (size_t i = 0; req && i < json_array_size(req); i++) {
		json_t *r = json_array_get(req, i);
		int k;
		if (!json_is_string(r))
			return cfail(c, where, "%s must list strings",
				     "required");
		for (k = 0; k < n->nprop; k++)
			if (!strcmp(s->props[first + k].name,
				    json_string_value(r)))
				break;
		if (k == n->nprop)
			return cfail(c, where,
				     "required property '%s' is not in "
				     "properties",
				     json_string_value(r));
		s->props[first + k].required = true;
	}
	/* the property schemas, after the list is complete (their own
	 * properties are appended after it) */
	{
		int k = 0;
		json_object_foreach(props, key, v)
		{
			char sub[512];
			int nd;
			snprintf(sub, sizeof sub, "%s/%s", where, key);
			nd = compile_node(c, v, sub);
			if (nd < 0)
				return -1;
			s->props[first + k++].node = nd;
		}
	}
	return 0;
}

static int compile_string(struct comp *c, struct gnode *n, json_t *j,
			  const char *where)
{
	struct ed_schema *s = c->s;
	json_t *pat = json_object_get(j, "pattern");
	json_t *fmt = json_object_get(j, "format");

	if (get_count(c, j, "minLength", where, &n->min_len) ||
	    get_count(c, j, "maxLength", where, &n->max_len))
		return -1;
	if (n->max_len >= 0 && n->max_len < n->min_len)
		return cfail(c, where, "%s is below minLength", "maxLength");
	if (pat) {
		char msg[256];
		int rc;
		PCRE2_SIZE off;
		int ecode;
		if (!json_is_string(pat))
			return cfail(c, where, "%s must be a string",
				     "pattern");
		rc = ed_dfa_compile(&n->pat, json_string_value(pat),
				    json_string_length(pat), msg, sizeof msg);
		if (rc == ED_ENOMEM)
			return oom(c);
		if (rc)
			return cfail(c, where, "%s", msg);
		n->re = pcre2_compile(
		    (PCRE2_SPTR)json_string_value(pat), json_string_length(pat),
		    PCRE2_UTF | PCRE2_UCP, &ecode, &off, NULL);
		if (!n->re)
			return cfail(c, where, "pattern '%s' does not compile",
				     json_string_value(pat));
	}
	if (fmt) {
		int f;
		if (!json_is_string(fmt))
			return cfail(c, where, "%s must be a string", "format");
		for (f = 1; f < FMT_COUNT; f++)
			if (!strcmp(json_string_value(fmt), format_name[f]))
				break;
		if (f == FMT_COUNT)
			return cfail(c, where, "format '%s' is not supported",
				     json_string_value(fmt));
		n->format = f;
		if (!s->fmt[f]) {
			char msg[256];
			int rc = ed_dfa_compile(&s->fmt[f], format_re[f],
						strlen(format_re[f]), msg,
						sizeof msg);
			if (rc)
				return rc == ED_ENOMEM
					   ? oom(c)
					   : cfail(c, where, "%s", msg);
		}
	}
	return 0;
}

static int compile_node(struct comp *c, json_t *j, const char *where)
{
	struct ed_schema *s = c->s;
	struct gnode *n;
	json_t *ty, *en, *cn, *ref, *items;
	const char *key;
	json_t *v;
	int id;

	if (json_is_true(j)) /* anything */
		j = c->empty;
	if (!json_is_object(j))
		return cfail(c, where, "%s",
			     "a schema must be an object or true");
	if (j && (ref = json_object_get(j, "$ref"))) {
		json_t *target;
		int nd;
		if (!json_is_string(ref))
			return cfail(c, where, "%s must be a string", "$ref");
		if (json_object_size(j) > 1) {
			static const char *const ok[] = {
			    "$ref",  "title",	    "description", "$comment",
			    "$defs", "definitions", "$schema",	   "$id"};
			json_object_foreach(j, key, v)
			{
				if (!in_list(key, ok, ED_ARRAY_LEN(ok)))
					return cfail(c, where,
						     "'%s' beside $ref is not "
						     "supported",
						     key);
			}
		}
		for (int i = 0; i < c->nrefs; i++)
			if (!strcmp(c->refs[i], json_string_value(ref)))
				return cfail(c, where, "$ref '%s' is recursive",
					     json_string_value(ref));
		if (c->nrefs == G_MAX_REFS)
			return cfail(c, where, "%s", "$refs nest too deep");
		if (!(target = resolve(c, json_string_value(ref), where)))
			return -1;
		c->refs[c->nrefs++] = json_string_value(ref);
		nd = compile_node(c, target, json_string_value(ref));
		c->nrefs--;
		return nd;
	}
	json_object_foreach(j, key, v)
	{
		if (!in_list(key, ignored, ED_ARRAY_LEN(ignored)))
			return cfail(c, where, "keyword '%s' is not supported",
				     key);
	}
	{
		void *np = grow(c, s->nodes, &s->ncap, s->nnodes + 1,
				sizeof *s->nodes);
		if (!np)
			return -1;
		s->nodes = np;
	}
	if (s->nnodes >= G_MAX_NODES)
		return cfail(c, where, "%s", "too many schemas (over 60000)");
	id = s->nnodes++;
	n = &s->nodes[id];
	memset(n, 0, sizeof *n);
	n->types = T_ANY;
	n->items = -1;
	n->min_len = n->min_items = 0;
	n->max_len = n->max_items = -1;
	n->addl_ok = true;
	n->title = j && json_is_string(json_object_get(j, "title"))
		       ? strdup(json_string_value(json_object_get(j, "title")))
		       : NULL;
	n->desc =
	    j && json_is_string(json_object_get(j, "description"))
		? strdup(json_string_value(json_object_get(j, "description")))
		: NULL;
	if ((ty = json_object_get(j, "type"))) {
		unsigned t = 0;
		if (json_is_string(ty))
			t = type_bit(json_string_value(ty));
		else if (json_is_array(ty))
			for (size_t i = 0; i < json_array_size(ty); i++) {
				json_t *e = json_array_get(ty, i);
				unsigned b =
				    json_is_string(e)
					? type_bit(json_string_value(e))
					: 0;
				if (!b) {
					t = 0;
					break;
				}
				t |= b;
			}
		if (!t)
			return cfail(c, where, "%s",
				     "type must name JSON types");
		n = &s->nodes[id];
		n->types = t;
	}
	en = json_object_get(j, "enum");
	cn = json_object_get(j, "const");
	if (en || cn) {
		json_t *one = NULL;
		if (en && (!json_is_array(en) || !json_array_size(en)))
			return cfail(c, where, "%s must be a non-empty array",
				     "enum");
		if (cn) {
			one = json_array();
			if (!one || json_array_append(one, cn))
				return oom(c);
			en = one;
		}
		n = &s->nodes[id];
		n->is_enum = true;
		n->enum_vals = json_incref(en);
		n->lit0 = s->nlits;
		for (size_t i = 0; i < json_array_size(en); i++) {
			json_t *e = json_array_get(en, i);
			if (!value_has_type(e, s->nodes[id].types))
				continue;
			if (add_value_lit(c, e) < 0) {
				json_decref(one);
				return -1;
			}
		}
		json_decref(one);
		n = &s->nodes[id];
		n->nlit = s->nlits - n->lit0;
	} else {
		n = &s->nodes[id];
		n->lit0 = s->nlits;
		if ((n->types & T_BOOL) && (add_lit(c, "true", 4, NULL) < 0 ||
					    add_lit(c, "false", 5, NULL) < 0))
			return -1;
		if ((s->nodes[id].types & T_NULL) &&
		    add_lit(c, "null", 4, NULL) < 0)
			return -1;
		n = &s->nodes[id];
		n->nlit = s->nlits - n->lit0;
	}
	{
		int mn = 0, mx = -1;
		if (get_count(c, j, "minItems", where, &mn) ||
		    get_count(c, j, "maxItems", where, &mx))
			return -1;
		if (mx >= 0 && mx < mn)
			return cfail(c, where, "%s is below minItems",
				     "maxItems");
		s->nodes[id].min_items = mn;
		s->nodes[id].max_items = mx;
	}
	if (compile_string(c, &s->nodes[id], j, where))
		return -1;
	if (compile_props(c, &s->nodes[id], j, where))
		return -1;
	if ((items = json_object_get(j, "items"))) {
		char sub[512];
		int nd;
		if (json_is_array(items))
			return cfail(c, where, "%s",
				     "items as an array (tuples) is not "
				     "supported");
		snprintf(sub, sizeof sub, "%s/items", where);
		if ((nd = compile_node(c, items, sub)) < 0)
			return -1;
		s->nodes[id].items = nd;
	}
	return id;
}

void ed_schema_free(struct ed_schema *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nnodes; i++) {
		ed_dfa_free(s->nodes[i].pat);
		pcre2_code_free(s->nodes[i].re);
		json_decref(s->nodes[i].enum_vals);
		free(s->nodes[i].title);
		free(s->nodes[i].desc);
	}
	for (int i = 0; i < s->nprops; i++) {
		free(s->props[i].name);
		free(s->props[i].lit);
	}
	for (int i = 0; i < s->nlits; i++) {
		free(s->lits[i].bytes);
		json_decref(s->lits[i].value);
	}
	for (int f = 0; f < FMT_COUNT; f++)
		ed_dfa_free(s->fmt[f]);
	free(s->nodes);
	free(s->props);
	free(s->lits);
	free(s->text);
	free(s->title);
	free(s);
}

int ed_schema_compile(struct ed_schema **out, const char *json, size_t len,
		      char *err, size_t errlen)
{
	struct comp c = {.err = err, .errlen = errlen};
	json_error_t je;
	json_t *root;
	int root_node;

	*out = NULL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return ed_err(err, errlen, ED_EFORMAT,
			      "schema is not JSON: %s (line %d)", je.text,
			      je.line);
	if (!json_is_object(root)) {
		json_decref(root);
		return ed_err(err, errlen, ED_EFORMAT,
			      "schema is not a JSON object");
	}
	c.s = calloc(1, sizeof *c.s);
	if (!c.s) {
		json_decref(root);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	c.root = root;
	c.empty = json_object();
	root_node = c.empty ? compile_node(&c, root, "") : oom(&c);
	/* the schema of items and values left open: anything */
	if (root_node >= 0)
		c.s->any = compile_node(&c, c.empty, "");
	if (root_node >= 0 && c.s->any < 0)
		root_node = -1;
	if (root_node >= 0) {
		json_t *t = json_object_get(root, "title");
		c.s->root = root_node;
		c.s->text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
		c.s->title =
		    strdup(json_is_string(t) ? json_string_value(t) : "schema");
		if (!c.s->text || !c.s->title) {
			oom(&c);
		} else {
			ed_sha256_hex(c.s->text, strlen(c.s->text),
				      c.s->sha256);
		}
	}
	json_decref(root);
	json_decref(c.empty);
	if (c.rc) {
		ed_schema_free(c.s);
		return c.rc;
	}
	*out = c.s;
	return 0;
}

const char *ed_schema_title(const struct ed_schema *s)
{
	return s->title;
}

const char *ed_schema_sha256(const struct ed_schema *s)
{
	return s->sha256;
}

const char *ed_schema_json(const struct ed_schema *s)
{
	return s->text;
}

/* ---- validation ----------------------------------------------------- */

static size_t cp_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

static bool dfa_match(const struct ed_dfa *d, const char *s, size_t n)
{
	int st = 0;
	for (size_t i = 0; i < n && st >= 0;) {
		const unsigned char *u = (const unsigned char *)s + i;
		uint32_t cp = u[0];
		int k = cp < 0x80 ? 0 : cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : 1;
		if (k && i + (size_t)k >= n)
			return false;
		if (k)
			cp &= 0x3Fu >> k;
		for (int j = 1; j <= k; j++)
			cp = cp << 6 | (u[j] & 0x3F);
		i += (size_t)k + 1;
		st = ed_dfa_step(d, st, cp);
	}
	return st >= 0 && d->accept[st];
}

static int verr(char *err, size_t errlen, const char *ptr, const char *why)
{
	return ed_err(err, errlen, ED_EINVAL, "at '%s': %s", *ptr ? ptr : "/",
		      why);
}

static void ptr_join(char *dst, size_t cap, const char *base, const char *key)
{
	size_t n = (size_t)snprintf(dst, cap, "%s/", base);
	/* JSON Pointer escapes: ~ as ~0, / as ~1 */
	for (; *key && n + 3 < cap; key++) {
		if (*key == '~' || *key == '/') {
			dst[n++] = '~';
			dst[n++] = *key == '~' ? '0' : '1';
		} else {
			dst[n++] = *key;
		}
	}
	dst[n < cap ? n : cap - 1] = '\0';
}

static int validate(const struct ed_schema *s, int id, json_t *v,
		    const char *ptr, char *err, size_t errlen)
{
	const struct gnode *n = &s->nodes[id];
	char sub[1024];

	if (!value_has_type(v, n->types))
		return verr(err, errlen, ptr, "wrong type");
	if (n->is_enum) {
		bool hit = false;
		for (size_t i = 0; i < json_array_size(n->enum_vals) && !hit;
		     i++)
			hit = json_equal(v, json_array_get(n->enum_vals, i));
		if (!hit)
			return verr(err, errlen, ptr, "not one of the enum");
	}
	if (json_is_string(v)) {
		const char *t = json_string_value(v);
		size_t len = json_string_length(v), k = cp_count(t, len);
		if ((int)k < n->min_len ||
		    (n->max_len >= 0 && (int)k > n->max_len))
			return verr(err, errlen, ptr, "length out of bounds");
		if (n->re) {
			pcre2_match_data *md =
			    pcre2_match_data_create_from_pattern(n->re, NULL);
			int rc = md ? pcre2_match(n->re, (PCRE2_SPTR)t, len, 0,
						  0, md, NULL)
				    : -1;
			pcre2_match_data_free(md);
			if (rc < 0)
				return verr(err, errlen, ptr,
					    "does not match the pattern");
		}
		if (n->format && !dfa_match(s->fmt[n->format], t, len))
			return verr(err, errlen, ptr, "not a valid format");
	}
	if (json_is_object(v)) {
		const char *key;
		json_t *e;
		for (int i = 0; i < n->nprop; i++) {
			const struct gprop *P = &s->props[n->prop0 + i];
			json_t *pv = json_object_get(v, P->name);
			int rc;
			ptr_join(sub, sizeof sub, ptr, P->name);
			if (!pv) {
				if (P->required)
					return verr(err, errlen, sub,
						    "required property "
						    "missing");
				continue;
			}
			if ((rc = validate(s, P->node, pv, sub, err, errlen)))
				return rc;
		}
		if (!n->addl_ok)
			json_object_foreach(v, key, e)
			{
				int i;
				for (i = 0; i < n->nprop; i++)
					if (!strcmp(s->props[n->prop0 + i].name,
						    key))
						break;
				if (i == n->nprop) {
					ptr_join(sub, sizeof sub, ptr, key);
					return verr(err, errlen, sub,
						    "property not allowed");
				}
			}
	}
	if (json_is_array(v)) {
		size_t k = json_array_size(v);
		if ((int)k < n->min_items ||
		    (n->max_items >= 0 && (int)k > n->max_items))
			return verr(err, errlen, ptr,
				    "item count out of bounds");
		for (size_t i = 0; n->items >= 0 && i < k; i++) {
			int rc;
			snprintf(sub, sizeof sub, "%s/%zu", ptr, i);
			if ((rc = validate(s, n->items, json_array_get(v, i),
					   sub, err, errlen)))
				return rc;
		}
	}
	return 0;
}

int ed_schema_validate(const struct ed_schema *s, const char *text, size_t len,
		       char *err, size_t errlen)
{
	json_error_t je;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &je);
	int rc;

	if (!v)
		return ed_err(err, errlen, ED_EFORMAT, "not JSON: %s", je.text);
	rc = validate(s, s->root, v, "", err, errlen);
	json_decref(v);
	return rc;
}

/* ---- bounds and the description -------------------------------------- */

static int64_t add_b(int64_t a, int64_t b)
{
	return a < 0 || b < 0 ? -1 : a + b > G_UNBOUNDED ? -1 : a + b;
}

static int64_t mul_b(int64_t a, int64_t k)
{
	return a < 0 ? -1 : k && a > G_UNBOUNDED / k ? -1 : a * k;
}

static int64_t node_bytes(const struct ed_schema *s, int id, int depth)
{
	const struct gnode *n = &s->nodes[id];
	int64_t best = 0;

	if (depth >= G_DEPTH)
		return 0; /* nothing can be opened this deep */
	for (int i = 0; i < n->nlit; i++)
		best = ED_MAX(best, (int64_t)s->lits[n->lit0 + i].len);
	if (n->is_enum)
		return best;
	if (n->types & (T_NUM))
		best = ED_MAX(best, 1 + 15 + 1 + 2 + 3);
	else if (n->types & T_INT)
		best = ED_MAX(best, 16);
	if (n->types & T_STR) {
		int64_t chars = n->max_len;
		const struct ed_dfa *d = n->pat ? n->pat : NULL;
		if (d && d->longest >= 0 && (chars < 0 || d->longest < chars))
			chars = d->longest;
		if (n->format && s->fmt[n->format]->longest >= 0 &&
		    (chars < 0 || s->fmt[n->format]->longest < chars))
			chars = s->fmt[n->format]->longest;
		/* a character is at most 6 bytes (\uXXXX) */
		best = chars < 0 ? -1 : ED_MAX(best, 2 + 6 * chars);
		if (best < 0)
			return -1;
	}
	if (n->types & T_OBJ) {
		/* { ws "key" ws : ws value ws , ... } */
		int64_t b = 3;
		for (int i = 0; i < n->nprop && b >= 0; i++) {
			const struct gprop *P = &s->props[n->prop0 + i];
			b = add_b(b, P->len + 5);
			b = add_b(b, node_bytes(s, P->node, depth + 1));
		}
		if (b < 0)
			return -1;
		best = ED_MAX(best, b);
	}
	if (n->types & T_ARR) {
		int64_t item =
		    n->items >= 0 ? node_bytes(s, n->items, depth + 1) : -1;
		int64_t b;
		if (n->max_items < 0)
			return n->max_items == 0 ? best : -1;
		b = add_b(3, mul_b(add_b(item, 3), n->max_items));
		if (n->max_items == 0)
			b = 3;
		if (b < 0)
			return -1;
		best = ED_MAX(best, b);
	}
	return best;
}

int64_t ed_schema_max_bytes(const struct ed_schema *s)
{
	int64_t b = node_bytes(s, s->root, 1);
	return b < 0 ? -1 : b + 1; /* the leading whitespace */
}

static const char *type_names(unsigned t, char *buf, size_t cap)
{
	static const char *const names[] = {"object", "array",	 "string",
					    "number", "integer", "boolean",
					    "null"};
	size_t n = 0;
	buf[0] = '\0';
	if (t == T_ANY) {
		snprintf(buf, cap, "any");
		return buf;
	}
	for (int i = 0; i < 7; i++)
		if (t & (1u << i))
			n +=
			    (size_t)snprintf(buf + n, n < cap ? cap - n : 0,
					     "%s%s", n ? " or " : "", names[i]);
	return buf;
}

static int describe(const struct ed_schema *s, int id, const char *ptr,
		    bool required, struct ed_buf *b, int depth)
{
	const struct gnode *n = &s->nodes[id];
	char types[96], sub[1024];
	int rc = 0;

	if (depth > G_DEPTH)
		return 0;
	if (*ptr) {
		rc = ed_buf_printf(b, "- %s (%s%s)", ptr,
				   type_names(n->types, types, sizeof types),
				   required ? ", required" : "");
		if (!rc && n->title)
			rc = ed_buf_printf(b, ": %s", n->title);
		if (!rc && n->desc)
			rc = ed_buf_printf(b, "%s %s", n->title ? "." : ":",
					   n->desc);
		if (!rc && n->format)
			rc = ed_buf_printf(b, " [format %s]",
					   format_name[n->format]);
		if (!rc && n->is_enum) {
			rc = ed_buf_puts(b, " [one of");
			for (int i = 0; !rc && i < n->nlit; i++)
				rc = ed_buf_printf(b, " %s",
						   s->lits[n->lit0 + i].bytes);
			if (!rc)
				rc = ed_buf_puts(b, "]");
		}
		if (!rc)
			rc = ed_buf_puts(b, "\n");
	}
	for (int i = 0; !rc && i < n->nprop; i++) {
		const struct gprop *P = &s->props[n->prop0 + i];
		ptr_join(sub, sizeof sub, ptr, P->name);
		rc = describe(s, P->node, sub, P->required, b, depth + 1);
	}
	if (!rc && n->items >= 0) {
		snprintf(sub, sizeof sub, "%s/*", ptr);
		rc = describe(s, n->items, sub, false, b, depth + 1);
	}
	return rc;
}

int ed_schema_describe(const struct ed_schema *s, struct ed_buf *out)
{
	return describe(s, s->root, "", false, out, 0) ? ED_ENOMEM : 0;
}
