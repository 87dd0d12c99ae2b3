/*
 * grammar.c - constrained decoding: the byte-level matcher of a compiled
 * JSON Schema (schema.c), the tokens' byte strings in a trie, and the
 * per-state token mask the sampler applies (session.c). A mask is found
 * by walking the trie depth first with the matcher, skipping a subtree as
 * soon as its prefix is refused, and is cached per matcher state with the
 * state's counters clamped where they can no longer change what one token
 * may do (a string's length far from its bounds, say). The matcher and
 * masks never print; a constraint may be shared by threads (its cache has
 * a lock).
 */
#include "model_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { F_VAL, F_OBJ, F_ARR, F_STR, F_NUM, F_LIT };
enum { O_OPEN, O_KEY, O_COLON, O_VAL, O_AFTER, O_COMMA };
enum { A_OPEN, A_AFTER, A_COMMA };
enum { S_BODY, S_ESC, S_U0, S_U1, S_U2, S_U3 };
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
enum { ACC, REJ, REFEED, POPDONE };

static bool is_ws(unsigned c)
{
	return c == ' ' || c == '\n';
}

static int item_node(const struct ed_schema *s, const struct gnode *n)
{
	return n->items >= 0 ? n->items : s->any;
}

/* The first required property at or after i (nprop when none). */
static int first_req(const struct ed_schema *s, const struct gnode *n, int i)
{
	for (; i < n->nprop; i++)
		if (s->props[n->prop0 + i].required)
			return i;
	return n->nprop;
}

static int push(const struct ed_schema *s, struct ed_cstate *st, int node,
		unsigned c);

/* ---- values ----------------------------------------------------------- */

static int val_start(const struct ed_schema *s, struct gframe *f, unsigned c)
{
	const struct gnode *n = &s->nodes[f->node];

	for (int j = 0; j < n->nlit; j++)
		if ((unsigned char)s->lits[n->lit0 + j].bytes[0] == c) {
			f->kind = F_LIT;
			f->a = j;
			f->b = 1;
			/* a one-byte literal ("7") may be all there is */
			for (int k = j; k < n->nlit; k++)
				if (s->lits[n->lit0 + k].len > 1 &&
				    (unsigned char)s->lits[n->lit0 + k]
					    .bytes[0] == c)
					return ACC;
			return s->lits[n->lit0 + j].len == 1 ? POPDONE : ACC;
		}
	if (n->is_enum)
		return REJ;
	f->phase = 0;
	f->ws = 0;
	f->a = f->b = f->c = 0;
	if (c == '{' && (n->types & T_OBJ)) {
		f->kind = F_OBJ;
		f->phase = O_OPEN;
		return ACC;
	}
	if (c == '[' && (n->types & T_ARR)) {
		f->kind = F_ARR;
		f->phase = A_OPEN;
		return ACC;
	}
	if (c == '"' && (n->types & T_STR)) {
		f->kind = F_STR;
		f->phase = S_BODY;
		f->need = f->ulen = 0;
		f->dpat = n->pat ? 0 : -1;
		f->dfmt = n->format ? 0 : -1;
		return ACC;
	}
	if ((c == '-' || (c >= '0' && c <= '9')) &&
	    (n->types & (T_NUM | T_INT))) {
		f->kind = F_NUM;
		f->phase = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
		f->a = c != '-';
		return ACC;
	}
	return REJ;
}

static bool lit_prefix(const struct ed_schema *s, const struct gnode *n,
		       const struct gframe *f, int j)
{
	const struct glit *L = &s->lits[n->lit0 + j],
			  *C = &s->lits[n->lit0 + f->a];
	return L->len >= f->b && !memcmp(L->bytes, C->bytes, (size_t)f->b);
}

static bool lit_exact(const struct ed_schema *s, const struct gframe *f)
{
	const struct gnode *n = &s->nodes[f->node];
	for (int j = f->a; j < n->nlit; j++)
		if (s->lits[n->lit0 + j].len == f->b && lit_prefix(s, n, f, j))
			return true;
	return false;
}

static bool lit_more(const struct ed_schema *s, const struct gframe *f)
{
	const struct gnode *n = &s->nodes[f->node];
	for (int j = f->a; j < n->nlit; j++)
		if (s->lits[n->lit0 + j].len > f->b && lit_prefix(s, n, f, j))
			return true;
	return false;
}

static int lit_feed(const struct ed_schema *s, struct gframe *f, unsigned c)
{
	const struct gnode *n = &s->nodes[f->node];

	for (int j = f->a; j < n->nlit; j++) {
		const struct glit *L = &s->lits[n->lit0 + j];
		if (L->len > f->b && lit_prefix(s, n, f, j) &&
		    (unsigned char)L->bytes[f->b] == c) {
			f->a = j;
			f->b++;
			return lit_exact(s, f) && !lit_more(s, f) ? POPDONE
								  : ACC;
		}
	}
	return lit_exact(s, f) ? REFEED : REJ;
}

/* ---- numbers ---------------------------------------------------------- */

static bool num_complete(const struct gframe *f)
{
	return f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC ||
	       f->phase == N_EXP;
}

static int num_feed(const struct ed_schema *s, struct gframe *f, unsigned c)
{
	bool intonly = !(s->nodes[f->node].types & T_NUM);
	int done = num_complete(f) ? REFEED : REJ;

	if (c >= '0' && c <= '9') {
		switch (f->phase) {
		case N_MINUS:
			f->phase = c == '0' ? N_ZERO : N_INT;
			f->a = 1;
			return ACC;
		case N_INT:
		case N_FRAC:
			if (f->a >= 15)
				return done;
			f->a++;
			return ACC;
		case N_DOT:
			f->a++;
			f->phase = N_FRAC;
			return ACC;
		case N_E:
		case N_ESIGN:
			f->phase = N_EXP;
			f->b = 1;
			f->c = (int32_t)(c - '0');
			return ACC;
		case N_EXP:
			/* at most 3 digits and 290: every number a finite
			 * double, never rounded to zero or infinity */
			if (f->b >= 3 || f->c * 10 + (int32_t)(c - '0') > 290)
				return done;
			f->b++;
			f->c = f->c * 10 + (int32_t)(c - '0');
			return ACC;
		}
		return done;
	}
	if (c == '.' && !intonly && (f->phase == N_ZERO || f->phase == N_INT) &&
	    f->a < 15) {
		f->phase = N_DOT;
		return ACC;
	}
	if ((c == 'e' || c == 'E') && !intonly &&
	    (f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC)) {
		f->phase = N_E;
		return ACC;
	}
	if ((c == '+' || c == '-') && f->phase == N_E) {
		f->phase = N_ESIGN;
		return ACC;
	}
	return done;
}

static bool num_more(const struct ed_schema *s, const struct gframe *f)
{
	bool intonly = !(s->nodes[f->node].types & T_NUM);
	switch (f->phase) {
	case N_ZERO: return !intonly;
	case N_INT: return f->a < 15 || !intonly;
	case N_FRAC: return true;
	case N_EXP: return f->b < 3 && f->c <= 29;
	}
	return true;
}

/* ---- strings ---------------------------------------------------------- */

/* May one more character, some code point of [lo, hi], follow? */
static bool str_ok(const struct ed_schema *s, const struct gnode *n,
		   const struct gframe *f, uint32_t lo, uint32_t hi)
{
	int rem = -1;
	if (n->max_len >= 0) {
		rem = n->max_len - (f->a + 1);
		if (rem < 0)
			return false;
	}
	if (n->pat && !ed_dfa_range_live(n->pat, f->dpat, lo, hi, rem))
		return false;
	if (n->format &&
	    !ed_dfa_range_live(s->fmt[n->format], f->dfmt, lo, hi, rem))
		return false;
	if (!n->pat && !n->format && lo >= 0xD800 && hi <= 0xDFFF)
		return false;
	return true;
}

static void str_commit(const struct ed_schema *s, const struct gnode *n,
		       struct gframe *f, uint32_t cp)
{
	f->a++;
	if (n->pat)
		f->dpat = (int16_t)ed_dfa_step(n->pat, f->dpat, cp);
	if (n->format)
		f->dfmt = (int16_t)ed_dfa_step(s->fmt[n->format], f->dfmt, cp);
}

static const char short_esc[] = "\"\\/bfnrt";
static const uint32_t short_cp[] = {'"',  '\\', '/',  '\b',
				    '\f', '\n', '\r', '\t'};

static bool str_closable(const struct ed_schema *s, const struct gnode *n,
			 const struct gframe *f)
{
	return f->phase == S_BODY && !f->need && f->a >= n->min_len &&
	       (!n->pat || n->pat->accept[f->dpat]) &&
	       (!n->format || s->fmt[n->format]->accept[f->dfmt]);
}

static int str_feed(const struct ed_schema *s, struct gframe *f, unsigned c)
{
	const struct gnode *n = &s->nodes[f->node];
	static const uint32_t minv[5] = {0, 0, 0x80, 0x800, 0x10000};
	static const uint32_t maxv[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};

	switch (f->phase) {
	case S_BODY:
		if (f->need) {
			uint32_t lo, hi;
			int sh;
			if ((c & 0xC0) != 0x80)
				return REJ;
			f->b = f->b << 6 | (int32_t)(c & 0x3F);
			f->need--;
			sh = 6 * f->need;
			lo = (uint32_t)f->b << sh;
			hi = lo | ((1u << sh) - 1);
			lo = ED_MAX(lo, minv[f->ulen]);
			hi = ED_MIN(hi, maxv[f->ulen]);
			if (lo > hi || !str_ok(s, n, f, lo, hi))
				return REJ;
			if (!f->need) {
				str_commit(s, n, f, (uint32_t)f->b);
				f->b = 0;
			}
			return ACC;
		}
		if (c == '"')
			return str_closable(s, n, f) ? POPDONE : REJ;
		if (c == '\\') {
			bool any = !n->pat && !n->format &&
				   (n->max_len < 0 || f->a < n->max_len);
			for (int k = 0; k < 8 && !any; k++)
				any = str_ok(s, n, f, short_cp[k], short_cp[k]);
			if (!any)
				return REJ;
			f->phase = S_ESC;
			return ACC;
		}
		if (c < 0x20)
			return REJ;
		if (c < 0x80) {
			if (!str_ok(s, n, f, c, c))
				return REJ;
			str_commit(s, n, f, c);
			return ACC;
		}
		if (c >= 0xC2 && c <= 0xF4) {
			uint32_t lo, hi;
			int sh;
			f->ulen = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
			f->need = f->ulen - 1;
			f->b = (int32_t)(c & (0x7Fu >> f->ulen));
			sh = 6 * f->need;
			lo = ED_MAX((uint32_t)f->b << sh, minv[f->ulen]);
			hi = ED_MIN(((uint32_t)f->b << sh) | ((1u << sh) - 1),
				    maxv[f->ulen]);
			return lo <= hi && str_ok(s, n, f, lo, hi) ? ACC : REJ;
		}
		return REJ;
	case S_ESC: {
		const char *e = c ? strchr(short_esc, (int)c) : NULL;
		if (e) {
			uint32_t cp = short_cp[e - short_esc];
			if (!str_ok(s, n, f, cp, cp))
				return REJ;
			str_commit(s, n, f, cp);
			f->phase = S_BODY;
			return ACC;
		}
		if (c == 'u' && !n->pat && !n->format) {
			f->phase = S_U0;
			f->b = 0;
			return ACC;
		}
		return REJ;
	}
	default: {
		int h = c >= '0' && c <= '9'   ? (int)c - '0'
			: c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
			: c >= 'A' && c <= 'F' ? (int)c - 'A' + 10
					       : -1;
		if (h < 0)
			return REJ;
		f->b = f->b << 4 | h;
		/* no surrogates: \uD800-\uDFFF are not characters alone */
		if (f->phase == S_U1 && f->b >= 0xD8 && f->b <= 0xDF)
			return REJ;
		if (f->phase == S_U3) {
			str_commit(s, n, f, (uint32_t)f->b);
			f->b = 0;
			f->phase = S_BODY;
		} else {
			f->phase++;
		}
		return ACC;
	}
	}
}

/* ---- containers ------------------------------------------------------- */

static int obj_feed(const struct ed_schema *s, struct ed_cstate *st,
		    struct gframe *f, unsigned c)
{
	const struct gnode *n = &s->nodes[f->node];

	if (f->phase != O_KEY && is_ws(c)) {
		if (f->ws)
			return REJ;
		f->ws = 1;
		return ACC;
	}
	switch (f->phase) {
	case O_OPEN:
	case O_COMMA:
		if (c == '"' && f->a < n->nprop) {
			f->phase = O_KEY;
			f->b = f->a;
			f->c = 1;
			f->ws = 0;
			return ACC;
		}
		if (c == '}' && f->phase == O_OPEN &&
		    first_req(s, n, 0) == n->nprop)
			return POPDONE;
		return REJ;
	case O_KEY: {
		int last = ED_MIN(first_req(s, n, f->a), n->nprop - 1);
		const struct gprop *C = &s->props[n->prop0 + f->b];
		for (int j = f->b; j <= last; j++) {
			const struct gprop *P = &s->props[n->prop0 + j];
			if (P->len > f->c &&
			    !memcmp(P->lit, C->lit, (size_t)f->c) &&
			    (unsigned char)P->lit[f->c] == c) {
				f->b = j;
				if (++f->c == P->len) {
					f->phase = O_COLON;
					f->ws = 0;
				}
				return ACC;
			}
		}
		return REJ;
	}
	case O_COLON:
		if (c != ':')
			return REJ;
		f->phase = O_VAL;
		f->ws = 0;
		return ACC;
	case O_VAL: return push(s, st, s->props[n->prop0 + f->b].node, c);
	case O_AFTER:
		if (c == ',' && f->a < n->nprop) {
			f->phase = O_COMMA;
			f->ws = 0;
			return ACC;
		}
		if (c == '}' && first_req(s, n, f->a) == n->nprop)
			return POPDONE;
		return REJ;
	}
	return REJ;
}

static int arr_feed(const struct ed_schema *s, struct ed_cstate *st,
		    struct gframe *f, unsigned c)
{
	const struct gnode *n = &s->nodes[f->node];

	if (is_ws(c)) {
		if (f->ws)
			return REJ;
		f->ws = 1;
		return ACC;
	}
	switch (f->phase) {
	case A_OPEN:
		if (c == ']')
			return n->min_items == 0 ? POPDONE : REJ;
		if (n->max_items == 0)
			return REJ;
		return push(s, st, item_node(s, n), c);
	case A_AFTER:
		if (c == ',' && (n->max_items < 0 || f->a < n->max_items)) {
			f->phase = A_COMMA;
			f->ws = 0;
			return ACC;
		}
		if (c == ']' && f->a >= n->min_items)
			return POPDONE;
		return REJ;
	case A_COMMA: return push(s, st, item_node(s, n), c);
	}
	return REJ;
}

/* ---- the stack -------------------------------------------------------- */

static int push(const struct ed_schema *s, struct ed_cstate *st, int node,
		unsigned c)
{
	struct gframe *f;
	if (st->depth >= G_DEPTH)
		return REJ;
	f = &st->f[st->depth++];
	memset(f, 0, sizeof *f);
	f->kind = F_VAL;
	f->node = (uint16_t)node;
	return val_start(s, f, c);
}

/* The value on top is complete: its container moves on. */
static void pop_done(struct ed_cstate *st)
{
	struct gframe *p;
	if (--st->depth == 0)
		return;
	p = &st->f[st->depth - 1];
	if (p->kind == F_OBJ) {
		p->a = p->b + 1;
		p->phase = O_AFTER;
	} else {
		p->a++;
		p->phase = A_AFTER;
	}
	p->ws = 0;
}

static int feed(const struct ed_schema *s, struct ed_cstate *st, unsigned c)
{
	for (;;) {
		struct gframe *f;
		int r;
		if (!st->depth)
			return REJ;
		f = &st->f[st->depth - 1];
		switch (f->kind) {
		case F_VAL:
			if (st->depth == 1 && is_ws(c) && !st->lead) {
				st->lead = 1;
				return ACC;
			}
			r = val_start(s, f, c);
			break;
		case F_OBJ: r = obj_feed(s, st, f, c); break;
		case F_ARR: r = arr_feed(s, st, f, c); break;
		case F_STR: r = str_feed(s, f, c); break;
		case F_NUM: r = num_feed(s, f, c); break;
		default: r = lit_feed(s, f, c); break;
		}
		if (r == POPDONE) {
			pop_done(st);
			return ACC;
		}
		if (r != REFEED)
			return r;
		pop_done(st); /* a number ended: c belongs to its container */
	}
}

static bool top_complete(const struct ed_schema *s, const struct ed_cstate *st)
{
	const struct gframe *f = &st->f[0];
	if (st->depth == 0)
		return true;
	if (st->depth > 1)
		return false;
	return (f->kind == F_NUM && num_complete(f)) ||
	       (f->kind == F_LIT && lit_exact(s, f));
}

int ed_cstate_new(struct ed_cstate **out, const struct ed_schema *s)
{
	*out = malloc(sizeof **out);
	if (!*out)
		return ED_ENOMEM;
	ed_cstate_reset(*out, s);
	return 0;
}

void ed_cstate_reset(struct ed_cstate *st, const struct ed_schema *s)
{
	memset(st, 0, offsetof(struct ed_cstate, f) + sizeof st->f[0]);
	st->depth = 1;
	st->f[0].kind = F_VAL;
	st->f[0].node = (uint16_t)s->root;
}

void ed_cstate_free(struct ed_cstate *st)
{
	free(st);
}

static void scopy(struct ed_cstate *d, const struct ed_cstate *s)
{
	memcpy(d, s, offsetof(struct ed_cstate, f) + s->depth * sizeof s->f[0]);
}

void ed_cstate_copy(struct ed_cstate *dst, const struct ed_cstate *src)
{
	scopy(dst, src);
}

int ed_schema_feed(const struct ed_schema *s, struct ed_cstate *st,
		   const char *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (feed(s, st, (unsigned char)bytes[i]) != ACC)
			return ED_EINVAL;
	return 0;
}

bool ed_cstate_complete(const struct ed_schema *s, const struct ed_cstate *st)
{
	return top_complete(s, st);
}

bool ed_cstate_final(const struct ed_schema *s, const struct ed_cstate *st)
{
	if (st->depth == 0)
		return true;
	if (!top_complete(s, st))
		return false;
	return st->f[0].kind == F_NUM ? !num_more(s, &st->f[0])
				      : !lit_more(s, &st->f[0]);
}

/* ---- tokens ------------------------------------------------------------ */

struct centry {
	uint8_t *key;
	size_t klen;
	uint64_t hash;
	uint64_t *bits;
	bool stop_ok;
};

struct ed_constraint {
	const struct ed_schema *s;
	int32_t vocab;
	size_t words;
	/* each token's bytes as decoded (none: not text) */
	uint32_t *off;
	char *tb;
	int maxlen;
	int32_t stop[4];
	int nstop;
	/* the trie in depth-first order: a node's byte, depth (1-based),
	 * the index past its subtree, the tokens that end there */
	uint32_t nn;
	uint8_t *byte, *depth;
	uint32_t *skip, *id0;
	uint16_t *nid;
	int32_t *ids;
	/* the cache */
	pthread_mutex_t mu;
	struct centry *tab;
	size_t cap, n, max_n;
	int64_t hits, misses;
};

struct tok_ref {
	const char *p;
	uint32_t len;
	int32_t id;
};

static int cmp_tok(const void *a, const void *b)
{
	const struct tok_ref *x = a, *y = b;
	size_t n = ED_MIN(x->len, y->len);
	int c = memcmp(x->p, y->p, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

void ed_constraint_free(struct ed_constraint *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++) {
		free(c->tab[i].key);
		free(c->tab[i].bits);
	}
	free(c->tab);
	pthread_mutex_destroy(&c->mu);
	free(c->off);
	free(c->tb);
	free(c->byte);
	free(c->depth);
	free(c->skip);
	free(c->id0);
	free(c->nid);
	free(c->ids);
	free(c);
}

static int build_trie(struct ed_constraint *c)
{
	struct tok_ref *r = malloc((size_t)c->vocab * sizeof *r);
	uint32_t stack[256];
	int32_t nr = 0;
	size_t total = 0, cap;
	int rc = ED_ENOMEM;

	if (!r)
		return rc;
	for (int32_t i = 0; i < c->vocab; i++) {
		uint32_t len = c->off[i + 1] - c->off[i];
		if (len && len < 256) {
			r[nr++] = (struct tok_ref){c->tb + c->off[i], len, i};
			total += len;
		}
	}
	qsort(r, (size_t)nr, sizeof *r, cmp_tok);
	cap = total + 1;
	c->byte = malloc(cap);
	c->depth = malloc(cap);
	c->skip = malloc(cap * sizeof *c->skip);
	c->id0 = malloc(cap * sizeof *c->id0);
	c->nid = calloc(cap, sizeof *c->nid);
	c->ids = malloc(((size_t)nr + 1) * sizeof *c->ids);
	if (!c->byte || !c->depth || !c->skip || !c->id0 || !c->nid || !c->ids)
		goto out;
	c->nn = 0;
	{
		uint32_t sp = 0; /* open nodes: stack[0..sp) by depth */
		for (int32_t i = 0; i < nr; i++) {
			uint32_t common = 0;
			if (i) {
				uint32_t m = ED_MIN(r[i].len, r[i - 1].len);
				while (common < m &&
				       r[i].p[common] == r[i - 1].p[common])
					common++;
				if (common > sp)
					common = sp;
			}
			/* close the nodes deeper than the shared prefix */
			while (sp > common)
				c->skip[stack[--sp]] = c->nn;
			for (uint32_t d = common; d < r[i].len; d++) {
				uint32_t k = c->nn++;
				c->byte[k] = (uint8_t)r[i].p[d];
				c->depth[k] = (uint8_t)(d + 1);
				c->id0[k] = 0;
				c->nid[k] = 0;
				stack[sp++] = k;
			}
			{
				uint32_t k = stack[sp - 1];
				if (!c->nid[k])
					c->id0[k] = (uint32_t)i;
				c->nid[k]++;
				c->ids[i] = r[i].id;
			}
		}
		while (sp)
			c->skip[stack[--sp]] = c->nn;
	}
	rc = 0;
out:
	free(r);
	return rc;
}

int ed_constraint_new(struct ed_constraint **out, const struct ed_schema *s,
		      const struct ed_tokenizer *t, int32_t vocab,
		      const int32_t *stop, int nstop, char *err, size_t errlen)
{
	struct ed_constraint *c = calloc(1, sizeof *c);
	struct ed_buf b;
	int rc = ED_ENOMEM;

	*out = NULL;
	if (!c)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	ed_buf_init(&b, 0);
	pthread_mutex_init(&c->mu, NULL);
	c->s = s;
	c->vocab = vocab;
	c->words = ((size_t)vocab + 63) / 64;
	for (int i = 0; i < nstop && c->nstop < 4; i++)
		if (stop[i] >= 0)
			c->stop[c->nstop++] = stop[i];
	c->off = malloc(((size_t)vocab + 1) * sizeof *c->off);
	if (!c->off)
		goto fail;
	for (int32_t i = 0; i < vocab; i++) {
		char tmp[256];
		int n = ed_tok_text_bytes(t, i, tmp, sizeof tmp);
		c->off[i] = (uint32_t)b.len;
		if (n > 0) {
			if (ed_buf_append(&b, tmp, (size_t)n))
				goto fail;
			c->maxlen = ED_MAX(c->maxlen, n);
		}
	}
	c->off[vocab] = (uint32_t)b.len;
	c->tb = ed_buf_detach(&b, NULL);
	if (!c->tb && c->off[vocab])
		goto fail;
	if ((rc = build_trie(c)))
		goto fail;
	/* 13 KB a state at 103,424 tokens: 2,048 states is 26 MB */
	c->max_n = (size_t)ED_MAX(64, (64 << 20) / (c->words * 8 + 64));
	if (c->max_n > 4096)
		c->max_n = 4096;
	c->cap = 2 * c->max_n;
	c->tab = calloc(c->cap, sizeof *c->tab);
	if (!c->tab)
		goto fail;
	*out = c;
	return 0;
fail:
	ed_buf_release(&b);
	ed_constraint_free(c);
	return ed_err(err, errlen, rc ? rc : ED_ENOMEM, "out of memory");
}

const struct ed_schema *ed_constraint_schema(const struct ed_constraint *c)
{
	return c->s;
}

size_t ed_constraint_words(const struct ed_constraint *c)
{
	return c->words;
}

bool ed_constraint_is_stop(const struct ed_constraint *c, int32_t id)
{
	for (int i = 0; i < c->nstop; i++)
		if (c->stop[i] == id)
			return true;
	return false;
}

int ed_constraint_advance(const struct ed_constraint *c, struct ed_cstate *st,
			  int32_t id)
{
	if (id < 0 || id >= c->vocab || c->off[id + 1] == c->off[id])
		return ED_EINVAL;
	return ed_schema_feed(c->s, st, c->tb + c->off[id],
			      c->off[id + 1] - c->off[id]);
}

/* The state as far as one token can tell: counters clamped where they
 * stop mattering. */
static size_t state_key(const struct ed_constraint *c,
			const struct ed_cstate *st, uint8_t *k)
{
	const struct ed_schema *s = c->s;
	size_t n = 0;
	int clamp = c->maxlen + 1;

	k[n++] = st->depth;
	k[n++] = st->lead;
	for (int i = 0; i < st->depth; i++) {
		const struct gframe *f = &st->f[i];
		const struct gnode *nd = &s->nodes[f->node];
		int32_t v[4] = {0, 0, 0, 0};
		k[n++] = f->kind;
		k[n++] = f->phase;
		k[n++] = f->ws;
		memcpy(k + n, &f->node, 2);
		n += 2;
		switch (f->kind) {
		case F_OBJ:
		case F_NUM:
		case F_LIT: v[0] = f->a, v[1] = f->b, v[2] = f->c; break;
		case F_ARR:
			v[0] = ED_MIN(f->a, nd->min_items);
			v[1] = nd->max_items < 0
				   ? 0
				   : ED_MIN(nd->max_items - f->a, clamp);
			break;
		case F_STR: {
			int cl = clamp + (nd->pat ? nd->pat->maxmin : 0) +
				 (nd->format ? s->fmt[nd->format]->maxmin : 0);
			v[0] = ED_MIN(f->a, nd->min_len);
			v[1] = nd->max_len < 0 ? 0
					       : ED_MIN(nd->max_len - f->a, cl);
			v[2] = f->b;
			v[3] = f->need | f->ulen << 8 |
			       (int32_t)((uint32_t)(uint16_t)f->dpat << 16);
			memcpy(k + n, &f->dfmt, 2);
			n += 2;
			break;
		}
		}
		memcpy(k + n, v, sizeof v);
		n += sizeof v;
	}
	return n;
}

static uint64_t hash_key(const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h | 1;
}

/* The walk: every token whose bytes the matcher takes from st. */
static int walk(const struct ed_constraint *c, const struct ed_cstate *st,
		uint64_t *bits)
{
	struct ed_cstate *stk = malloc(((size_t)c->maxlen + 1) * sizeof *stk);

	memset(bits, 0, c->words * sizeof *bits);
	if (!stk)
		return ED_ENOMEM;
	scopy(&stk[0], st);
	for (uint32_t i = 0; i < c->nn;) {
		int d = c->depth[i];
		scopy(&stk[d], &stk[d - 1]);
		if (feed(c->s, &stk[d], c->byte[i]) != ACC) {
			i = c->skip[i];
			continue;
		}
		for (uint32_t k = 0; k < c->nid[i]; k++) {
			int32_t id = c->ids[c->id0[i] + k];
			bits[id >> 6] |= 1ull << (id & 63);
		}
		i++;
	}
	free(stk);
	return 0;
}

void ed_constraint_mask_naive(const struct ed_constraint *c,
			      const struct ed_cstate *st, uint64_t *bits,
			      bool *stop_ok)
{
	struct ed_cstate tmp;

	memset(bits, 0, c->words * sizeof *bits);
	for (int32_t id = 0; id < c->vocab; id++) {
		scopy(&tmp, st);
		if (c->off[id + 1] > c->off[id] &&
		    !ed_constraint_advance(c, &tmp, id))
			bits[id >> 6] |= 1ull << (id & 63);
	}
	*stop_ok = top_complete(c->s, st);
}

const uint64_t *ed_constraint_mask(struct ed_constraint *c,
				   const struct ed_cstate *st,
				   uint64_t *scratch, bool *stop_ok)
{
	uint8_t key[2 + G_DEPTH * 32];
	size_t klen = state_key(c, st, key), at;
	uint64_t h = hash_key(key, klen);
	uint64_t *bits;

	*stop_ok = top_complete(c->s, st);
	pthread_mutex_lock(&c->mu);
	for (at = h % c->cap; c->tab[at].hash; at = (at + 1) % c->cap)
		if (c->tab[at].hash == h && c->tab[at].klen == klen &&
		    !memcmp(c->tab[at].key, key, klen)) {
			c->hits++;
			bits = c->tab[at].bits;
			pthread_mutex_unlock(&c->mu);
			return bits;
		}
	c->misses++;
	pthread_mutex_unlock(&c->mu);
	if (walk(c, st, scratch))
		return NULL;
	pthread_mutex_lock(&c->mu);
	if (c->n < c->max_n) {
		uint8_t *kc = malloc(klen);
		uint64_t *bc = malloc(c->words * sizeof *bc);
		/* another thread may have put it there meanwhile: probe */
		for (at = h % c->cap; c->tab[at].hash; at = (at + 1) % c->cap)
			if (c->tab[at].hash == h && c->tab[at].klen == klen &&
			    !memcmp(c->tab[at].key, key, klen))
				break;
		if (kc && bc && !c->tab[at].hash) {
			memcpy(kc, key, klen);
			memcpy(bc, scratch, c->words * sizeof *bc);
			c->tab[at] = (struct centry){kc, klen, h, bc, *stop_ok};
			c->n++;
			kc = NULL;
			bc = NULL;
		}
		free(kc);
		free(bc);
	}
	pthread_mutex_unlock(&c->mu);
	return scratch;
}

void ed_constraint_stats(struct ed_constraint *c, int64_t *hits,
			 int64_t *misses, int64_t *states)
{
	pthread_mutex_lock(&c->mu);
	*hits = c->hits;
	*misses = c->misses;
	*states = (int64_t)c->n;
	pthread_mutex_unlock(&c->mu);
}

int ed_constraint_max_token(const struct ed_constraint *c)
{
	return c->maxlen;
}
