/*
 * regex.c - the regular-expression subset of a JSON Schema "pattern" (and
 * of the formats the grammar enforces) compiled to a DFA over Unicode code
 * points, for the constrained decoder (grammar.c). Parse to a small tree,
 * Thompson NFA, subset construction over the intervals every character
 * set splits the code points into. The DFA matches the whole string (a
 * generated string that matches whole also matches the pattern searched,
 * as JSON Schema applies it). No backreferences, lookaround or word
 * boundaries: those are refused with a message naming them.
 */
#include "model_int.h"

#include <stdlib.h>
#include <string.h>

#define RE_MAX_NODES 4096
#define RE_MAX_NFA   8192
#define RE_MAX_DFA   2048
#define RE_MAX_REP   256
#define RE_HASH	     4096      /* open addressing, twice RE_MAX_DFA */
#define RE_MAX_CELLS (1 << 22) /* states x intervals: 8 MB of table */
#define RE_MAX_WORK  20000000L /* NFA states visited building the DFA */
#define CP_END	     0x110000u

struct range {
	uint32_t lo, hi; /* inclusive */
};

struct set {
	struct range *r;
	int n, cap;
};

enum { N_SET, N_CAT, N_ALT, N_REP, N_EMPTY };

struct node {
	int kind;
	int a, b;     /* children (CAT, ALT), child (REP) */
	int set;      /* N_SET */
	int min, max; /* N_REP; max -1 = unbounded */
};

struct parser {
	const char *s;
	size_t i, n;
	struct node *nodes;
	int nn;
	struct set *sets;
	int ns;
	char *err;
	size_t errlen;
	int rc;
};

static int fail(struct parser *p, const char *what)
{
	if (!p->rc)
		p->rc = ed_err(p->err, p->errlen, ED_EINVAL,
			       "pattern: %s at offset %zu", what, p->i);
	return -1;
}

static int new_node(struct parser *p, int kind)
{
	struct node *nd;
	if (p->nn >= RE_MAX_NODES)
		return fail(p, "too complex");
	nd = &p->nodes[p->nn];
	memset(nd, 0, sizeof *nd);
	nd->kind = kind;
	nd->a = nd->b = nd->set = -1;
	return p->nn++;
}

static int set_add(struct parser *p, struct set *s, uint32_t lo, uint32_t hi)
{
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 8;
		struct range *r = realloc(s->r, (size_t)cap * sizeof *r);
		if (!r) {
			p->rc = ED_ENOMEM;
			return -1;
		}
		s->r = r;
		s->cap = cap;
	}
	s->r[s->n++] = (struct range){lo, hi};
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sort and merge; drop the surrogates (no UTF-8 spells them). */
static int set_norm(struct parser *p, struct set *s, bool negate)
{
	struct set out = {0};
	uint32_t at = 0;
	int k = 0;

	qsort(s->r, (size_t)s->n, sizeof *s->r, cmp_range);
	for (int i = 0; i < s->n; i++) {
		if (k && s->r[i].lo <= s->r[k - 1].hi + 1) {
			if (s->r[i].hi > s->r[k - 1].hi)
				s->r[k - 1].hi = s->r[i].hi;
		} else {
			s->r[k++] = s->r[i];
		}
	}
	s->n = k;
	if (negate) {
		for (int i = 0; i < s->n; i++) {
			if (s->r[i].lo > at &&
			    set_add(p, &out, at, s->r[i].lo - 1))
				goto oom;
			at = s->r[i].hi + 1;
		}
		if (at < CP_END && set_add(p, &out, at, CP_END - 1))
			goto oom;
		free(s->r);
		*s = out;
		out = (struct set){0};
	}
	/* cut 0xD800-0xDFFF out */
	for (int i = 0; i < s->n; i++) {
		struct range r = s->r[i];
		if (r.hi < 0xD800 || r.lo > 0xDFFF) {
			if (set_add(p, &out, r.lo, r.hi))
				goto oom;
			continue;
		}
		if (r.lo < 0xD800 && set_add(p, &out, r.lo, 0xD7FF))
			goto oom;
		if (r.hi > 0xDFFF && set_add(p, &out, 0xE000, r.hi))
			goto oom;
	}
	free(s->r);
	*s = out;
	return 0;
oom:
	free(out.r);
	return -1;
}

static int new_set(struct parser *p)
{
	if (p->ns >= RE_MAX_NODES)
		return fail(p, "too complex");
	memset(&p->sets[p->ns], 0, sizeof p->sets[p->ns]);
	return p->ns++;
}

static bool more(const struct parser *p)
{
	return p->i < p->n;
}

/* One UTF-8 code point of the pattern text. */
static uint32_t next_cp(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s + p->i;
	size_t left = p->n - p->i;
	uint32_t c = s[0];
	int k = c < 0x80    ? 0
		: c >= 0xF0 ? 3
		: c >= 0xE0 ? 2
		: c >= 0xC0 ? 1
			    : -1;

	if (k < 0 || (size_t)k >= left) {
		fail(p, "invalid UTF-8");
		p->i = p->n;
		return 0;
	}
	if (k)
		c &= 0x3F >> k;
	for (int j = 1; j <= k; j++)
		c = c << 6 | (s[j] & 0x3F);
	p->i += (size_t)k + 1;
	return c;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* The class escapes \d \w \s (and their complements) into s. */
static int class_escape(struct parser *p, int c, struct set *s)
{
	struct set t = {0};
	bool neg = c == 'D' || c == 'W' || c == 'S';
	int lc = c | 0x20;

	if (lc == 'd')
		set_add(p, &t, '0', '9');
	else if (lc == 'w') {
		set_add(p, &t, '0', '9');
		set_add(p, &t, 'A', 'Z');
		set_add(p, &t, 'a', 'z');
		set_add(p, &t, '_', '_');
	} else {
		set_add(p, &t, '\t', '\r');
		set_add(p, &t, ' ', ' ');
		set_add(p, &t, 0xA0, 0xA0);
	}
	if (p->rc || set_norm(p, &t, neg)) {
		free(t.r);
		return -1;
	}
	for (int i = 0; i < t.n; i++)
		set_add(p, s, t.r[i].lo, t.r[i].hi);
	free(t.r);
	return p->rc ? -1 : 0;
}

/* After a backslash: a literal code point (*cp) or a class (into s, *cp
 * = CP_END). */
static int escape(struct parser *p, struct set *s, uint32_t *cp)
{
	int c;

	if (!more(p))
		return fail(p, "trailing backslash");
	c = p->s[p->i++];
	*cp = CP_END;
	switch (c) {
	case 'd':
	case 'D':
	case 'w':
	case 'W':
	case 's':
	case 'S': return class_escape(p, c, s);
	case 'n': *cp = '\n'; return 0;
	case 'r': *cp = '\r'; return 0;
	case 't': *cp = '\t'; return 0;
	case 'f': *cp = '\f'; return 0;
	case 'v': *cp = '\v'; return 0;
	case '0': *cp = 0; return 0;
	case 'u': {
		uint32_t v = 0;
		for (int k = 0; k < 4; k++) {
			int h = more(p) ? hexval(p->s[p->i]) : -1;
			if (h < 0)
				return fail(p, "bad \\u escape");
			v = v << 4 | (uint32_t)h;
			p->i++;
		}
		*cp = v;
		return 0;
	}
	case 'x': {
		uint32_t v = 0;
		for (int k = 0; k < 2; k++) {
			int h = more(p) ? hexval(p->s[p->i]) : -1;
			if (h < 0)
				return fail(p, "bad \\x escape");
			v = v << 4 | (uint32_t)h;
			p->i++;
		}
		*cp = v;
		return 0;
	}
	case 'b':
	case 'B': return fail(p, "word boundaries (\\b) are not supported");
	default:
		if (c >= '1' && c <= '9')
			return fail(p, "backreferences are not supported");
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			return fail(p, "unknown escape");
		*cp = (uint32_t)c;
		return 0;
	}
}

static int parse_class(struct parser *p)
{
	int id = new_set(p);
	struct set *s;
	bool neg = false, first = true;

	if (id < 0)
		return -1;
	s = &p->sets[id];
	if (more(p) && p->s[p->i] == '^') {
		neg = true;
		p->i++;
	}
	for (;;) {
		uint32_t lo, hi;
		if (!more(p))
			return fail(p, "unterminated [");
		if (p->s[p->i] == ']' && !first) {
			p->i++;
			break;
		}
		first = false;
		if (p->s[p->i] == '\\') {
			p->i++;
			if (escape(p, s, &lo))
				return -1;
			if (lo == CP_END)
				continue;
		} else {
			lo = next_cp(p);
		}
		hi = lo;
		if (p->i + 1 < p->n && p->s[p->i] == '-' &&
		    p->s[p->i + 1] != ']') {
			p->i++;
			if (p->s[p->i] == '\\') {
				p->i++;
				if (escape(p, s, &hi))
					return -1;
				if (hi == CP_END)
					return fail(p, "class in a range");
			} else {
				hi = next_cp(p);
			}
			if (hi < lo)
				return fail(p, "range out of order");
		}
		if (set_add(p, s, lo, hi))
			return -1;
	}
	if (set_norm(p, s, neg))
		return -1;
	{
		int nd = new_node(p, N_SET);
		if (nd >= 0)
			p->nodes[nd].set = id;
		return p->rc ? -1 : nd;
	}
}

static int parse_alt(struct parser *p);

static int single(struct parser *p, uint32_t lo, uint32_t hi)
{
	int id = new_set(p), nd;
	if (id < 0 || set_add(p, &p->sets[id], lo, hi) ||
	    set_norm(p, &p->sets[id], false))
		return -1;
	if ((nd = new_node(p, N_SET)) >= 0)
		p->nodes[nd].set = id;
	return nd;
}

static int parse_atom(struct parser *p)
{
	int c = p->s[p->i];

	if (c == '(') {
		int nd;
		p->i++;
		if (more(p) && p->s[p->i] == '?') {
			if (p->i + 1 < p->n && p->s[p->i + 1] == ':')
				p->i += 2;
			else
				return fail(p, "lookaround and named groups "
					       "are not supported");
		}
		nd = parse_alt(p);
		if (nd < 0)
			return -1;
		if (!more(p) || p->s[p->i] != ')')
			return fail(p, "unbalanced (");
		p->i++;
		return nd;
	}
	if (c == '[') {
		p->i++;
		return parse_class(p);
	}
	if (c == '.') {
		int id = new_set(p), nd;
		p->i++;
		if (id < 0 || set_add(p, &p->sets[id], '\n', '\n') ||
		    set_add(p, &p->sets[id], '\r', '\r') ||
		    set_add(p, &p->sets[id], 0x2028, 0x2029) ||
		    set_norm(p, &p->sets[id], true))
			return -1;
		if ((nd = new_node(p, N_SET)) >= 0)
			p->nodes[nd].set = id;
		return nd;
	}
	if (c == '\\') {
		uint32_t cp;
		int id, nd;
		p->i++;
		if ((id = new_set(p)) < 0 || escape(p, &p->sets[id], &cp))
			return -1;
		if (cp != CP_END)
			return single(p, cp, cp);
		if ((nd = new_node(p, N_SET)) >= 0)
			p->nodes[nd].set = id;
		return nd;
	}
	if (c == '^' || c == '$')
		return fail(p, "an anchor inside the pattern is not supported");
	if (c == '*' || c == '+' || c == '?' || c == '{')
		return fail(p, "nothing to repeat");
	{
		uint32_t cp = next_cp(p);
		return p->rc ? -1 : single(p, cp, cp);
	}
}

static bool read_int(struct parser *p, int *v)
{
	size_t i0 = p->i;
	long x = 0;
	while (more(p) && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
		x = x * 10 + (p->s[p->i++] - '0');
		if (x > 100000)
			x = 100000;
	}
	*v = (int)x;
	return p->i > i0;
}

static int parse_repeat(struct parser *p)
{
	int a = parse_atom(p);

	while (a >= 0 && more(p)) {
		int c = p->s[p->i], min, max, nd;
		if (c == '*')
			min = 0, max = -1, p->i++;
		else if (c == '+')
			min = 1, max = -1, p->i++;
		else if (c == '?')
			min = 0, max = 1, p->i++;
		else if (c == '{') {
			size_t save = p->i++;
			if (!read_int(p, &min)) {
				p->i = save;
				return fail(p, "bad {m,n}");
			}
			max = min;
			if (more(p) && p->s[p->i] == ',') {
				p->i++;
				if (!read_int(p, &max))
					max = -1;
			}
			if (!more(p) || p->s[p->i] != '}')
				return fail(p, "bad {m,n}");
			p->i++;
			if ((max >= 0 && max < min))
				return fail(p, "{m,n} with n < m");
			if (min > RE_MAX_REP || max > RE_MAX_REP)
				return fail(p, "a repeat count over 256");
		} else {
			break;
		}
		if (more(p) && p->s[p->i] == '?') /* lazy: same language */
			p->i++;
		if ((nd = new_node(p, N_REP)) < 0)
			return -1;
		p->nodes[nd].a = a;
		p->nodes[nd].min = min;
		p->nodes[nd].max = max;
		a = nd;
	}
	return a;
}

static int parse_cat(struct parser *p)
{
	int a = -1;

	while (more(p) && p->s[p->i] != '|' && p->s[p->i] != ')') {
		int b = parse_repeat(p), nd;
		if (b < 0)
			return -1;
		if (a < 0) {
			a = b;
			continue;
		}
		if ((nd = new_node(p, N_CAT)) < 0)
			return -1;
		p->nodes[nd].a = a;
		p->nodes[nd].b = b;
		a = nd;
	}
	return a >= 0 ? a : new_node(p, N_EMPTY);
}

static int parse_alt(struct parser *p)
{
	int a = parse_cat(p);

	while (a >= 0 && more(p) && p->s[p->i] == '|') {
		int b, nd;
		p->i++;
		if ((b = parse_cat(p)) < 0)
			return -1;
		if ((nd = new_node(p, N_ALT)) < 0)
			return -1;
		p->nodes[nd].a = a;
		p->nodes[nd].b = b;
		a = nd;
	}
	return a;
}

/* ---- NFA ------------------------------------------------------------ */

struct nst {
	int eps[2], neps;
	int set, to;
};

struct nfa {
	struct nst *s;
	int n;
	struct parser *p;
};

static int nnew(struct nfa *f)
{
	if (f->n >= RE_MAX_NFA) {
		fail(f->p, "too complex");
		return -1;
	}
	f->s[f->n] = (struct nst){{-1, -1}, 0, -1, -1};
	return f->n++;
}

static int eps(struct nfa *f, int from, int to)
{
	if (f->s[from].neps < 2) {
		f->s[from].eps[f->s[from].neps++] = to;
		return 0;
	}
	/* a third edge goes through a fresh state */
	{
		int m = nnew(f);
		if (m < 0)
			return -1;
		f->s[m].eps[0] = f->s[from].eps[1];
		f->s[m].eps[1] = to;
		f->s[m].neps = 2;
		f->s[from].eps[1] = m;
		return 0;
	}
}

/* Build node nd between fresh states: *in and *out. */
static int gen(struct nfa *f, int nd, int *in, int *out)
{
	const struct node *x = &f->p->nodes[nd];
	int a, b, c, d;

	switch (x->kind) {
	case N_EMPTY:
		if ((a = nnew(f)) < 0)
			return -1;
		*in = *out = a;
		return 0;
	case N_SET:
		if ((a = nnew(f)) < 0 || (b = nnew(f)) < 0)
			return -1;
		f->s[a].set = x->set;
		f->s[a].to = b;
		*in = a;
		*out = b;
		return 0;
	case N_CAT:
		if (gen(f, x->a, &a, &b) || gen(f, x->b, &c, &d) ||
		    eps(f, b, c))
			return -1;
		*in = a;
		*out = d;
		return 0;
	case N_ALT: {
		int s, e;
		if ((s = nnew(f)) < 0 || (e = nnew(f)) < 0 ||
		    gen(f, x->a, &a, &b) || gen(f, x->b, &c, &d) ||
		    eps(f, s, a) || eps(f, s, c) || eps(f, b, e) ||
		    eps(f, d, e))
			return -1;
		*in = s;
		*out = e;
		return 0;
	}
	case N_REP: {
		int s, cur;
		if ((s = nnew(f)) < 0)
			return -1;
		cur = s;
		for (int k = 0; k < x->min; k++) {
			if (gen(f, x->a, &a, &b) || eps(f, cur, a))
				return -1;
			cur = b;
		}
		if (x->max < 0) {
			int loop = nnew(f);
			if (loop < 0 || gen(f, x->a, &a, &b) ||
			    eps(f, cur, loop) || eps(f, loop, a) ||
			    eps(f, b, loop))
				return -1;
			cur = loop;
		} else if (x->max > x->min) {
			int e = nnew(f);
			if (e < 0)
				return -1;
			for (int k = x->min; k < x->max; k++) {
				if (gen(f, x->a, &a, &b) || eps(f, cur, a) ||
				    eps(f, cur, e))
					return -1;
				cur = b;
			}
			if (eps(f, cur, e))
				return -1;
			cur = e;
		}
		*in = s;
		*out = cur;
		return 0;
	}
	}
	return -1;
}

/* ---- DFA ------------------------------------------------------------ */

/* Close bits under the epsilon edges; returns the work done (states
 * visited), which the caller counts against RE_MAX_WORK. */
static long closure(const struct nfa *f, uint64_t *bits, size_t words,
		    int *stack)
{
	int sp = 0;
	long work = (long)words;
	for (size_t w = 0; w < words; w++)
		for (uint64_t b = bits[w]; b; b &= b - 1)
			stack[sp++] =
			    (int)(w * 64 + (size_t)__builtin_ctzll(b));
	while (sp) {
		int s = stack[--sp];
		work++;
		for (int k = 0; k < f->s[s].neps; k++) {
			int t = f->s[s].eps[k];
			if (!(bits[t >> 6] >> (t & 63) & 1)) {
				bits[t >> 6] |= 1ull << (t & 63);
				stack[sp++] = t;
			}
		}
	}
	return work;
}

static uint64_t hash_set(const uint64_t *bits, size_t words)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t w = 0; w < words; w++) {
		h ^= bits[w];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void ed_dfa_free(struct ed_dfa *d)
{
	if (!d)
		return;
	free(d->lo);
	free(d->next);
	free(d->accept);
	free(d->mindist);
	free(d);
}

/* Longest path to acceptance from each state (-1: a cycle can be
 * reached on the way, i.e. unbounded), by depth-first search. */
static int longest(const struct ed_dfa *d, int s, int *memo, uint8_t *mark)
{
	int best = d->accept[s] ? 0 : -2; /* -2: no acceptance */
	if (mark[s] == 1)
		return -1;
	if (mark[s] == 2)
		return memo[s];
	mark[s] = 1;
	for (int i = 0; i < d->nint; i++) {
		int t = d->next[(size_t)s * d->nint + i], l;
		if (t < 0 || d->mindist[t] == INT32_MAX)
			continue;
		l = longest(d, t, memo, mark);
		if (l == -1) {
			best = -1;
			break;
		}
		if (l >= 0 && l + 1 > best)
			best = l + 1;
	}
	mark[s] = 2;
	memo[s] = best;
	return best;
}

static int build_dfa(struct nfa *f, int start, int accept, struct ed_dfa **out)
{
	struct parser *p = f->p;
	size_t words = ((size_t)f->n + 63) / 64;
	uint32_t *pts = NULL;
	uint8_t *member = NULL; /* [set][interval] */
	uint64_t *states = NULL, *tmp = NULL;
	int *stack = NULL, npts = 0, rc = ED_ENOMEM;
	int *table = NULL, *live = NULL;
	uint64_t *hashes = NULL;
	long work = 0;
	struct ed_dfa *d = calloc(1, sizeof *d);
	int cap = 0;

	/* the intervals: every set's boundaries */
	{
		int total = 2;
		for (int i = 0; i < p->ns; i++)
			total += 2 * p->sets[i].n;
		pts = malloc((size_t)total * sizeof *pts);
		if (!d || !pts)
			goto out;
		pts[npts++] = 0;
		pts[npts++] = CP_END;
		for (int i = 0; i < p->ns; i++)
			for (int k = 0; k < p->sets[i].n; k++) {
				pts[npts++] = p->sets[i].r[k].lo;
				pts[npts++] = p->sets[i].r[k].hi + 1;
			}
		qsort(pts, (size_t)npts, sizeof *pts, cmp_u32);
		{
			int k = 0;
			for (int i = 0; i < npts; i++)
				if (!k || pts[i] != pts[k - 1])
					pts[k++] = pts[i];
			npts = k;
		}
	}
	d->nint = npts - 1;
	d->lo = malloc((size_t)npts * sizeof *d->lo);
	member = calloc((size_t)(p->ns ? p->ns : 1) * (size_t)d->nint, 1);
	stack = malloc((size_t)f->n * sizeof *stack);
	tmp = malloc(words * sizeof *tmp);
	if (!d->lo || !member || !stack || !tmp)
		goto out;
	memcpy(d->lo, pts, (size_t)npts * sizeof *pts);
	for (int i = 0; i < p->ns; i++)
		for (int k = 0, j = 0; k < p->sets[i].n; k++) {
			while (j < d->nint && d->lo[j] < p->sets[i].r[k].lo)
				j++;
			while (j < d->nint && d->lo[j] <= p->sets[i].r[k].hi)
				member[(size_t)i * d->nint + j++] = 1;
		}
	/* subset construction: a DFA state is the set of NFA states it
	 * stands for, found again by hash; per state only its NFA states
	 * that consume a character are walked for each interval */
	cap = 64;
	states = calloc((size_t)cap * words, sizeof *states);
	d->next = malloc((size_t)cap * d->nint * sizeof *d->next);
	table = malloc(RE_HASH * sizeof *table);
	hashes = malloc(RE_MAX_DFA * sizeof *hashes);
	live = malloc((size_t)f->n * sizeof *live);
	if (!states || !d->next || !table || !hashes || !live)
		goto out;
	for (int i = 0; i < RE_HASH; i++)
		table[i] = -1;
	states[start >> 6] |= 1ull << (start & 63);
	work += closure(f, states, words, stack);
	hashes[0] = hash_set(states, words);
	table[hashes[0] & (RE_HASH - 1)] = 0;
	d->nstates = 1;
	for (int s = 0; s < d->nstates; s++) {
		int nl = 0;
		for (size_t w = 0; w < words; w++)
			for (uint64_t b = states[(size_t)s * words + w]; b;
			     b &= b - 1) {
				int q =
				    (int)(w * 64 + (size_t)__builtin_ctzll(b));
				if (f->s[q].set >= 0)
					live[nl++] = q;
			}
		for (int iv = 0; iv < d->nint; iv++) {
			bool any = false;
			uint64_t h;
			int t;
			size_t slot;
			memset(tmp, 0, words * sizeof *tmp);
			work += nl;
			for (int k = 0; k < nl; k++) {
				const struct nst *x = &f->s[live[k]];
				if (!member[(size_t)x->set * d->nint + iv])
					continue;
				tmp[x->to >> 6] |= 1ull << (x->to & 63);
				any = true;
			}
			if (!any) {
				d->next[(size_t)s * d->nint + iv] = -1;
				continue;
			}
			work += closure(f, tmp, words, stack);
			if (work > RE_MAX_WORK) {
				fail(p, "too complex");
				rc = ED_EINVAL;
				goto out;
			}
			h = hash_set(tmp, words);
			for (slot = h & (RE_HASH - 1); (t = table[slot]) >= 0;
			     slot = (slot + 1) & (RE_HASH - 1))
				if (hashes[t] == h &&
				    !memcmp(states + (size_t)t * words, tmp,
					    words * sizeof *tmp))
					break;
			if (t < 0) {
				t = d->nstates;
				if (t == RE_MAX_DFA ||
				    (size_t)(t + 1) * (size_t)d->nint >
					RE_MAX_CELLS) {
					fail(p, "too many states");
					rc = ED_EINVAL;
					goto out;
				}
				if (t == cap) {
					uint64_t *ns = realloc(
					    states, (size_t)cap * 2 * words *
							sizeof *ns);
					int16_t *nx;
					if (!ns)
						goto out;
					states = ns;
					nx = realloc(d->next, (size_t)cap * 2 *
								  d->nint *
								  sizeof *nx);
					if (!nx)
						goto out;
					d->next = nx;
					cap *= 2;
				}
				memcpy(states + (size_t)t * words, tmp,
				       words * sizeof *tmp);
				hashes[t] = h;
				table[slot] = t;
				d->nstates++;
			}
			d->next[(size_t)s * d->nint + iv] = (int16_t)t;
		}
	}
	d->accept = calloc((size_t)d->nstates, 1);
	d->mindist = malloc((size_t)d->nstates * sizeof *d->mindist);
	if (!d->accept || !d->mindist)
		goto out;
	/* shortest way to acceptance: breadth first from the accepting
	 * states over the edges reversed (radj: the predecessors of each
	 * state, counted then filled) */
	{
		size_t ncell = (size_t)d->nstates * d->nint;
		int *rstart = calloc((size_t)d->nstates + 1, sizeof *rstart);
		int *radj = malloc((ncell ? ncell : 1) * sizeof *radj);
		int *queue = calloc((size_t)d->nstates, sizeof *queue);
		int qh = 0, qt = 0;
		if (!rstart || !radj || !queue) {
			free(rstart);
			free(radj);
			free(queue);
			goto out;
		}
		for (size_t c = 0; c < ncell; c++)
			if (d->next[c] >= 0)
				rstart[d->next[c] + 1]++;
		for (int s = 0; s < d->nstates; s++)
			rstart[s + 1] += rstart[s];
		/* queue counts each state's predecessors filled so far */
		for (int s = 0; s < d->nstates; s++)
			for (int iv = 0; iv < d->nint; iv++) {
				int t = d->next[(size_t)s * d->nint + iv];
				if (t >= 0)
					radj[rstart[t] + queue[t]++] = s;
			}
		for (int s = 0; s < d->nstates; s++) {
			d->accept[s] =
			    states[(size_t)s * words + (accept >> 6)] >>
				(accept & 63) &
			    1;
			d->mindist[s] = d->accept[s] ? 0 : INT32_MAX;
		}
		for (int s = 0; s < d->nstates; s++)
			if (d->accept[s])
				queue[qt++] = s; /* the counts are done with */
		while (qh < qt) {
			int t = queue[qh++];
			for (int k = rstart[t]; k < rstart[t + 1]; k++) {
				int s = radj[k];
				if (d->mindist[s] == INT32_MAX) {
					d->mindist[s] = d->mindist[t] + 1;
					queue[qt++] = s;
				}
			}
		}
		free(rstart);
		free(radj);
		free(queue);
	}
	d->maxmin = 0;
	for (int s = 0; s < d->nstates; s++)
		if (d->mindist[s] != INT32_MAX && d->mindist[s] > d->maxmin)
			d->maxmin = d->mindist[s];
	{
		int *memo = malloc((size_t)d->nstates * sizeof *memo);
		uint8_t *mark = calloc((size_t)d->nstates, 1);
		if (!memo || !mark) {
			free(memo);
			free(mark);
			goto out;
		}
		d->longest =
		    d->mindist[0] == INT32_MAX ? 0 : longest(d, 0, memo, mark);
		free(memo);
		free(mark);
	}
	*out = d;
	d = NULL;
	rc = 0;
out:
	if (rc == ED_ENOMEM && !p->rc)
		p->rc = ed_err(p->err, p->errlen, ED_ENOMEM, "out of memory");
	ed_dfa_free(d);
	free(pts);
	free(member);
	free(states);
	free(tmp);
	free(stack);
	free(table);
	free(hashes);
	free(live);
	return rc ? (p->rc ? p->rc : rc) : 0;
}

int ed_dfa_compile(struct ed_dfa **out, const char *re, size_t len, char *err,
		   size_t errlen)
{
	struct parser p = {.s = re, .n = len, .err = err, .errlen = errlen};
	struct nfa f = {.p = &p};
	int root, in, fin, rc;

	*out = NULL;
	/* whole-string matching: the anchors at the ends say nothing more */
	if (p.n && p.s[0] == '^')
		p.i = 1;
	if (p.n > p.i && p.s[p.n - 1] == '$' &&
	    (p.n < 2 || p.s[p.n - 2] != '\\'))
		p.n--;
	p.nodes = malloc(RE_MAX_NODES * sizeof *p.nodes);
	p.sets = malloc(RE_MAX_NODES * sizeof *p.sets);
	f.s = malloc(RE_MAX_NFA * sizeof *f.s);
	if (!p.nodes || !p.sets || !f.s) {
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
		goto out;
	}
	root = parse_alt(&p);
	if (root >= 0 && more(&p))
		fail(&p, "unbalanced )");
	if (p.rc) {
		rc = p.rc;
		goto out;
	}
	if (gen(&f, root, &in, &fin)) {
		rc = p.rc ? p.rc : ED_ENOMEM;
		goto out;
	}
	rc = build_dfa(&f, in, fin, out);
out:
	for (int i = 0; p.sets && i < p.ns; i++)
		free(p.sets[i].r);
	free(p.nodes);
	free(p.sets);
	free(f.s);
	return rc;
}

static int interval(const struct ed_dfa *d, uint32_t cp)
{
	int lo = 0, hi = d->nint - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (d->lo[mid] <= cp)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

int ed_dfa_step(const struct ed_dfa *d, int s, uint32_t cp)
{
	if (s < 0 || cp >= CP_END)
		return -1;
	return d->next[(size_t)s * d->nint + interval(d, cp)];
}

bool ed_dfa_range_live(const struct ed_dfa *d, int s, uint32_t lo, uint32_t hi,
		       int budget)
{
	if (s < 0)
		return false;
	for (int i = interval(d, lo); i < d->nint && d->lo[i] <= hi; i++) {
		int t = d->next[(size_t)s * d->nint + i];
		if (t >= 0 && d->mindist[t] != INT32_MAX &&
		    (budget < 0 || d->mindist[t] <= budget))
			return true;
	}
	return false;
}
