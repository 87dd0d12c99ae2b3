/*
 * jinja.c - the chat-template renderer (see jinja.h for what it covers).
 *
 * Three stages, each as jinja2 has them: a lexer that applies the
 * whitespace rules (trim_blocks, lstrip_blocks, "-" and "+" markers, one
 * trailing newline of the source dropped) while it splits text from tags,
 * a recursive-descent parser with jinja2's precedence (or, and, not,
 * comparisons, + -, ~, * / // %, **, unary, postfix, filters and tests),
 * and a tree-walking evaluator over Python-like values.
 *
 * Memory: the tree lives in the template's arena, every value of a render
 * in the render's arena, dropped whole at the end; errors unwind with
 * longjmp to the entry point, so no path leaks. Caps: 64 MiB of values,
 * 16 MiB of output, 256 levels of nesting (parse) and of macro calls.
 */
#include "model/jinja.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARENA_CAP  (64u << 20)
#define OUTPUT_CAP (16u << 20)
#define MAX_DEPTH  256

/* ---- arena ---------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	size_t size, used;
	max_align_t data[];
};

struct arena {
	struct chunk *head;
	size_t total, cap;
};

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
	a->total = 0;
}

/* NULL when out of memory or past the cap */
static void *arena_get(struct arena *a, size_t n)
{
	struct chunk *c = a->head;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->size - c->used < n) {
		size_t sz = n > 32768 ? n : 32768;
		if (a->total + sz > a->cap)
			return NULL;
		c = malloc(sizeof *c + sz);
		if (!c)
			return NULL;
		c->size = sz;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += sz;
	}
	c->used += n;
	return (char *)c->data + c->used - n;
}

/* ---- values --------------------------------------------------------- */

enum vk {
	V_UNDEF,
	V_NONE,
	V_BOOL,
	V_INT,
	V_FLOAT,
	V_STR,
	V_LIST,
	V_DICT,
	V_MACRO,
	V_FUNC
};

enum { F_TUPLE = 1, F_NS = 2, F_LOOP = 4 };

struct str {
	size_t n;
	char s[];
};

struct val;
struct list {
	size_t n, cap;
	struct val *a;
};

struct dict {
	size_t n, cap;
	struct str **k;
	struct val *v;
};

struct node;
struct val {
	uint8_t k, flags;
	union {
		bool b;
		int64_t i;
		double f;
		struct str *s;
		struct list *l;
		struct dict *d;
		const struct node *m;
		int fn;
	} u;
	const char *why; /* undefined: jinja2's message when it is used */
};

/* ---- lexer ---------------------------------------------------------- */

enum tk {
	T_EOF,
	T_TEXT,
	T_VBEGIN,
	T_VEND,
	T_BBEGIN,
	T_BEND,
	T_NAME,
	T_INT,
	T_FLOAT,
	T_STRING,
	T_OP
};

struct tok {
	enum tk t;
	int line;
	const char *s; /* TEXT, NAME, OP: into the source; STRING: arena */
	size_t n;
	int64_t i;
	double f;
};

/* ---- tree ----------------------------------------------------------- */

enum nk {
	/* statements */
	N_BODY,
	N_TEXT,
	N_OUT,
	N_IF,
	N_FOR,
	N_SET,
	N_SETBLOCK,
	N_MACRO,
	N_BREAK,
	N_CONTINUE,
	/* expressions */
	E_LIT,
	E_NAME,
	E_ATTR,
	E_ITEM,
	E_SLICE,
	E_CALL,
	E_FILTER,
	E_TEST,
	E_BIN,
	E_NEG,
	E_POS,
	E_NOT,
	E_AND,
	E_OR,
	E_COND,
	E_CMP,
	E_LIST,
	E_TUPLE,
	E_DICT
};

struct node {
	uint8_t kind;
	bool neg; /* test: is not */
	int line;
	const char *op; /* E_BIN, E_CMP: the operators (E_CMP: one a step) */
	const char *name;
	size_t name_n;
	struct node *a, *b, *c;
	struct node **list; /* body statements, args, items, operands */
	size_t n;
	const char **kwn; /* keyword names (calls), parameter names */
	struct node **kw; /* keyword values, parameter defaults */
	size_t nkw;
	const char **names; /* for / set targets */
	size_t nnames;
	struct val lit;
};

struct ed_jinja {
	struct arena a;
	struct node *root;
};

/* ---- parser --------------------------------------------------------- */

struct parser {
	const char *src;
	size_t len;
	struct arena *a;
	struct tok *t;
	size_t nt, ct, p;
	int depth;
	char *err;
	size_t errlen;
	int rc;
	jmp_buf jb;
};

__attribute__((format(printf, 3, 4), noreturn)) static void
perr(struct parser *ps, int line, const char *fmt, ...)
{
	char m[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	ps->rc = ed_err(ps->err, ps->errlen, ED_EFORMAT,
			"chat template line %d: %s", line, m);
	longjmp(ps->jb, 1);
}

static void *palloc(struct parser *ps, size_t n)
{
	void *p = arena_get(ps->a, n);

	if (!p) {
		ps->rc = ed_err(ps->err, ps->errlen, ED_ENOMEM,
				"chat template: out of memory");
		longjmp(ps->jb, 1);
	}
	memset(p, 0, n);
	return p;
}

static void push_tok(struct parser *ps, struct tok t)
{
	if (ps->nt == ps->ct) {
		size_t nc = ps->ct ? 2 * ps->ct : 256;
		struct tok *n = realloc(ps->t, nc * sizeof *n);
		if (!n) {
			ps->rc = ed_err(ps->err, ps->errlen, ED_ENOMEM,
					"chat template: out of memory");
			longjmp(ps->jb, 1);
		}
		ps->t = n;
		ps->ct = nc;
	}
	ps->t[ps->nt++] = t;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static bool is_name0(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int count_lines(const char *s, size_t n)
{
	int k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string literal at s[0] (the quote): Python's unicode-escape rules. */
static size_t lex_string(struct parser *ps, const char *s, size_t n, int line,
			 struct tok *t)
{
	char q = s[0];
	size_t i = 1, o = 0;
	char *out;

	while (i < n && s[i] != q) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		i++;
	}
	if (i >= n)
		perr(ps, line, "unterminated string");
	out = palloc(ps, i + 1);
	for (size_t k = 1; k < i; k++) {
		char c = s[k];
		int d;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		c = s[++k];
		switch (c) {
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case 'a': out[o++] = '\a'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'v': out[o++] = '\v'; break;
		case '\\': out[o++] = '\\'; break;
		case '\'': out[o++] = '\''; break;
		case '"': out[o++] = '"'; break;
		case '\n': break;
		case 'x':
		case 'u':
		case 'U': {
			int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			uint32_t cp = 0;
			if (k + (size_t)nd >= i)
				perr(ps, line, "truncated \\%c escape", c);
			for (int j = 1; j <= nd; j++) {
				if ((d = hexval(s[k + (size_t)j])) < 0)
					perr(ps, line, "bad \\%c escape", c);
				cp = cp << 4 | (uint32_t)d;
			}
			if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
				perr(ps, line, "escape \\%c out of range", c);
			k += (size_t)nd;
			o += (size_t)ed_utf8_encode(cp, out + o);
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				uint32_t cp = 0;
				int j = 0;
				while (j < 3 && k < i && s[k] >= '0' &&
				       s[k] <= '7') {
					cp = cp * 8 + (uint32_t)(s[k] - '0');
					k++, j++;
				}
				k--;
				o += (size_t)ed_utf8_encode(cp, out + o);
			} else { /* unknown escapes stay as written */
				out[o++] = '\\';
				out[o++] = c;
			}
		}
	}
	out[o] = '\0';
	t->t = T_STRING;
	t->s = out;
	t->n = o;
	t->line = line;
	return i + 1;
}

static const char *const ops2[] = {"**", "//", "==", "!=", "<=", ">="};
static const char ops1[] = "+-*/%~<>=()[]{},.:|";

/* The tokens of one tag from s[*pos], up to and without its end marker;
 * returns with *pos past the marker and *strip when it was "-". */
static void lex_tag(struct parser *ps, size_t *pos, int *line, bool var,
		    int *strip)
{
	const char *s = ps->src;
	size_t n = ps->len, i = *pos;
	int bal = 0;

	for (;;) {
		struct tok t = {0};
		while (i < n && is_ws(s[i])) {
			*line += s[i] == '\n';
			i++;
		}
		if (i >= n)
			perr(ps, *line,
			     "unexpected end of template, the %s "
			     "is not closed",
			     var ? "{{" : "{%");
		if (bal == 0) {
			const char *end = var ? "}}" : "%}";
			if (s[i] == '-' && i + 2 < n + 1 &&
			    strncmp(s + i + 1, end, 2) == 0) {
				*strip = 1;
				*pos = i + 3;
				return;
			}
			if (strncmp(s + i, end, 2) == 0 && i + 1 < n) {
				*strip = 0;
				*pos = i + 2;
				return;
			}
			if (!var && s[i] == '+' &&
			    strncmp(s + i + 1, end, 2) == 0) {
				*strip = 2; /* "+%}": no trim_blocks */
				*pos = i + 3;
				return;
			}
		}
		t.line = *line;
		if (s[i] == '\'' || s[i] == '"') {
			i += lex_string(ps, s + i, n - i, *line, &t);
			*line += count_lines(t.s, t.n);
		} else if (is_name0(s[i])) {
			size_t b = i;
			while (i < n && (is_name0(s[i]) || is_digit(s[i])))
				i++;
			t.t = T_NAME;
			t.s = s + b;
			t.n = i - b;
		} else if (is_digit(s[i])) {
			char num[64];
			size_t b = i, k = 0;
			bool fl = false;
			while (i < n && (is_digit(s[i]) || s[i] == '_'))
				i++;
			if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
				fl = true;
				i++;
				while (i < n && (is_digit(s[i]) || s[i] == '_'))
					i++;
			}
			if (i < n && (s[i] == 'e' || s[i] == 'E')) {
				size_t e = i + 1;
				if (e < n && (s[e] == '+' || s[e] == '-'))
					e++;
				if (e < n && is_digit(s[e])) {
					fl = true;
					i = e;
					while (i < n && is_digit(s[i]))
						i++;
				}
			}
			for (size_t j = b; j < i && k < sizeof num - 1; j++)
				if (s[j] != '_')
					num[k++] = s[j];
			num[k] = '\0';
			errno = 0;
			if (fl) {
				t.t = T_FLOAT;
				t.f = strtod(num, NULL);
			} else {
				t.t = T_INT;
				t.i = strtoll(num, NULL, 10);
				if (errno)
					perr(ps, *line,
					     "integer %s out of range", num);
			}
		} else {
			bool found = false;
			for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
				if (i + 1 < n && s[i] == ops2[k][0] &&
				    s[i + 1] == ops2[k][1]) {
					t.t = T_OP;
					t.s = ops2[k];
					t.n = 2;
					i += 2;
					found = true;
					break;
				}
			if (!found) {
				const char *o = strchr(ops1, s[i]);
				if (!o || !*o)
					perr(ps, *line,
					     "unexpected character "
					     "'%c'",
					     s[i]);
				t.t = T_OP;
				t.s = o;
				t.n = 1;
				i++;
				if (*o == '(' || *o == '[' || *o == '{')
					bal++;
				else if (*o == ')' || *o == ']' || *o == '}')
					bal--;
				if (bal < 0)
					perr(ps, *line, "unexpected '%c'", *o);
			}
		}
		push_tok(ps, t);
	}
}

/* A "{% raw %}" tag at s[i] (after "{%" and a sign): its length to "%}" */
static bool raw_tag(const char *s, size_t n, size_t i, const char *word,
		    size_t *end, bool *strip)
{
	size_t w = strlen(word);

	while (i < n && is_ws(s[i]))
		i++;
	if (i + w > n || strncmp(s + i, word, w) != 0 ||
	    (i + w < n && (is_name0(s[i + w]) || is_digit(s[i + w]))))
		return false;
	i += w;
	while (i < n && is_ws(s[i]))
		i++;
	*strip = i < n && s[i] == '-';
	if (*strip)
		i++;
	if (i + 1 >= n || s[i] != '%' || s[i + 1] != '}')
		return false;
	*end = i + 2;
	return true;
}

static void emit_text(struct parser *ps, const char *s, size_t n, int line)
{
	struct tok t = {T_TEXT, line, s, n, 0, 0};

	if (n)
		push_tok(ps, t);
}

static void lex(struct parser *ps)
{
	const char *s = ps->src;
	size_t n = ps->len, pos = 0;
	int line = 1;
	bool line_start = true;

	while (pos <= n) {
		size_t q = pos, tb, te;
		char kind, sign;
		const char *text;
		size_t tl;
		int strip = 0;
		bool rs = false;

		while (q + 1 < n &&
		       !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' ||
					 s[q + 1] == '#')))
			q++;
		if (q + 1 >= n)
			q = n;
		text = s + pos;
		tl = q - pos;
		if (q == n) {
			emit_text(ps, text, tl, line);
			break;
		}
		kind = s[q + 1];
		sign = q + 2 < n ? s[q + 2] : 0;
		if (sign == '-') {
			while (tl && is_ws(text[tl - 1]))
				tl--;
		} else if (sign != '+' && kind != '{') { /* lstrip_blocks */
			size_t l = tl;
			while (l && text[l - 1] != '\n')
				l--;
			if (l > 0 || line_start) {
				size_t k = l;
				while (k < tl &&
				       (text[k] == ' ' || text[k] == '\t'))
					k++;
				if (k == tl)
					tl = l;
			}
		}
		emit_text(ps, text, tl, line);
		line += count_lines(s + pos, q - pos);
		tb = q + 2 + (sign == '-' || sign == '+');
		if (kind == '#') {
			const char *e = NULL;
			for (size_t k = tb; k + 1 < n; k++)
				if (s[k] == '#' && s[k + 1] == '}') {
					e = s + k;
					break;
				}
			if (!e)
				perr(ps, line, "unclosed comment");
			te = (size_t)(e - s) + 2;
			strip = e > s + tb && e[-1] == '-';
			line += count_lines(s + q, te - q);
		} else if (kind == '%' && raw_tag(s, n, tb, "raw", &te, &rs)) {
			size_t body = te, k = te, e2 = 0;
			bool s2 = false;
			if (rs)
				while (body < n && is_ws(s[body]))
					body++;
			else if (body < n && s[body] == '\n')
				body++;
			for (; k + 1 < n; k++)
				if (s[k] == '{' && s[k + 1] == '%') {
					size_t a = k + 2;
					bool minus = a < n && s[a] == '-';
					if (minus || (a < n && s[a] == '+'))
						a++;
					if (raw_tag(s, n, a, "endraw", &e2,
						    &s2)) {
						size_t bl = k - body;
						if (minus)
							while (bl &&
							       is_ws(s[body +
								       bl - 1]))
								bl--;
						emit_text(ps, s + body, bl,
							  line);
						break;
					}
				}
			if (!e2)
				perr(ps, line, "unclosed {%% raw %%}");
			line += count_lines(s + q, e2 - q);
			te = e2;
			strip = s2;
		} else {
			struct tok t = {.t = kind == '{' ? T_VBEGIN : T_BBEGIN,
					.line = line};
			size_t p = tb;
			push_tok(ps, t);
			lex_tag(ps, &p, &line, kind == '{', &strip);
			t.t = kind == '{' ? T_VEND : T_BEND;
			t.line = line;
			push_tok(ps, t);
			te = p;
		}
		pos = te;
		if (strip == 1) {
			while (pos < n && is_ws(s[pos]))
				line += s[pos++] == '\n';
		} else if (!strip && kind != '{' && pos < n && s[pos] == '\n') {
			pos++; /* trim_blocks */
			line++;
		}
		line_start = pos > 0 && s[pos - 1] == '\n';
		if (pos == n)
			break;
	}
	{
		struct tok t = {.t = T_EOF, .line = line};
		push_tok(ps, t);
	}
}

/* ---- parsing -------------------------------------------------------- */

static struct tok *cur(struct parser *ps)
{
	return &ps->t[ps->p];
}

static bool is_op(const struct tok *t, const char *op)
{
	return t->t == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}

static bool is_name(const struct tok *t, const char *w)
{
	return t->t == T_NAME && t->n == strlen(w) && !memcmp(t->s, w, t->n);
}

static bool accept_op(struct parser *ps, const char *op)
{
	if (is_op(cur(ps), op)) {
		ps->p++;
		return true;
	}
	return false;
}

static bool accept_name(struct parser *ps, const char *w)
{
	if (is_name(cur(ps), w)) {
		ps->p++;
		return true;
	}
	return false;
}

static const char *tok_desc(const struct tok *t, char *b, size_t n)
{
	switch (t->t) {
	case T_EOF: return "end of template";
	case T_VEND: return "end of print statement";
	case T_BEND: return "end of statement block";
	case T_STRING: return "string";
	case T_INT:
	case T_FLOAT: return "number";
	default: snprintf(b, n, "'%.*s'", (int)ED_MIN(t->n, 40), t->s);
	}
	return b;
}

static void expect_op(struct parser *ps, const char *op)
{
	char b[64];

	if (!accept_op(ps, op))
		perr(ps, cur(ps)->line, "expected '%s', got %s", op,
		     tok_desc(cur(ps), b, sizeof b));
}

static const char *dup_name(struct parser *ps, const struct tok *t)
{
	char *s = palloc(ps, t->n + 1);

	memcpy(s, t->s, t->n);
	return s;
}

static const char *expect_ident(struct parser *ps)
{
	char b[64];
	struct tok *t = cur(ps);

	if (t->t != T_NAME)
		perr(ps, t->line, "expected a name, got %s",
		     tok_desc(t, b, sizeof b));
	ps->p++;
	return dup_name(ps, t);
}

static struct node *mknode(struct parser *ps, int kind, int line)
{
	struct node *x = palloc(ps, sizeof *x);

	x->kind = (uint8_t)kind;
	x->line = line;
	return x;
}

/* a growable array of node pointers in the arena */
struct nvec {
	struct node **a;
	size_t n, cap;
};

static void nvec_push(struct parser *ps, struct nvec *v, struct node *x)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? 2 * v->cap : 4;
		struct node **na = palloc(ps, nc * sizeof *na);
		if (v->n)
			memcpy(na, v->a, v->n * sizeof *na);
		v->a = na;
		v->cap = nc;
	}
	v->a[v->n++] = x;
}

static struct node *parse_expr(struct parser *ps);
static struct node *parse_or(struct parser *ps);
static struct node *parse_unary(struct parser *ps, bool filters);

static void enter(struct parser *ps)
{
	if (++ps->depth > MAX_DEPTH)
		perr(ps, cur(ps)->line, "nested too deeply");
}

/* call arguments after "(": positional, then name=value */
static void parse_args(struct parser *ps, struct node *x)
{
	struct nvec pos = {0}, kv = {0};
	const char **kn = NULL;
	size_t nk = 0, ck = 0;

	while (!accept_op(ps, ")")) {
		if (pos.n + nk)
			expect_op(ps, ",");
		if (accept_op(ps, ")"))
			break;
		if (cur(ps)->t == T_NAME && is_op(&ps->t[ps->p + 1], "=")) {
			const char *nm = expect_ident(ps);
			ps->p++;
			if (nk == ck) {
				size_t nc = ck ? 2 * ck : 4;
				const char **n2 = palloc(ps, nc * sizeof *n2);
				if (nk)
					memcpy(n2, kn, nk * sizeof *n2);
				kn = n2;
				ck = nc;
			}
			kn[nk++] = nm;
			nvec_push(ps, &kv, parse_expr(ps));
		} else {
			if (nk)
				perr(ps, cur(ps)->line,
				     "a positional argument follows a "
				     "keyword argument");
			nvec_push(ps, &pos, parse_expr(ps));
		}
	}
	x->list = pos.a;
	x->n = pos.n;
	x->kw = kv.a;
	x->kwn = kn;
	x->nkw = nk;
}

static struct node *parse_primary(struct parser *ps)
{
	struct tok *t = cur(ps);
	struct node *x;
	char b[64];

	switch (t->t) {
	case T_NAME:
		ps->p++;
		x = mknode(ps, E_LIT, t->line);
		if (is_name(t, "true") || is_name(t, "True")) {
			x->lit.k = V_BOOL;
			x->lit.u.b = true;
		} else if (is_name(t, "false") || is_name(t, "False")) {
			x->lit.k = V_BOOL;
		} else if (is_name(t, "none") || is_name(t, "None")) {
			x->lit.k = V_NONE;
		} else {
			x->kind = E_NAME;
			x->name = dup_name(ps, t);
			x->name_n = t->n;
		}
		return x;
	case T_STRING: {
		size_t total = 0, k = ps->p;
		struct str *s;
		while (ps->t[k].t == T_STRING) /* adjacent literals join */
			total += ps->t[k++].n;
		s = palloc(ps, sizeof *s + total + 1);
		for (; ps->p < k; ps->p++) {
			memcpy(s->s + s->n, ps->t[ps->p].s, ps->t[ps->p].n);
			s->n += ps->t[ps->p].n;
		}
		x = mknode(ps, E_LIT, t->line);
		x->lit.k = V_STR;
		x->lit.u.s = s;
		return x;
	}
	case T_INT:
	case T_FLOAT:
		ps->p++;
		x = mknode(ps, E_LIT, t->line);
		x->lit.k = t->t == T_INT ? V_INT : V_FLOAT;
		if (t->t == T_INT)
			x->lit.u.i = t->i;
		else
			x->lit.u.f = t->f;
		return x;
	case T_OP:
		if (accept_op(ps, "(")) {
			struct nvec v = {0};
			bool tuple = false;
			if (accept_op(ps, ")")) {
				x = mknode(ps, E_TUPLE, t->line);
				return x;
			}
			nvec_push(ps, &v, parse_expr(ps));
			while (accept_op(ps, ",")) {
				tuple = true;
				if (is_op(cur(ps), ")"))
					break;
				nvec_push(ps, &v, parse_expr(ps));
			}
			expect_op(ps, ")");
			if (!tuple)
				return v.a[0];
			x = mknode(ps, E_TUPLE, t->line);
			x->list = v.a;
			x->n = v.n;
			return x;
		}
		if (accept_op(ps, "[")) {
			struct nvec v = {0};
			while (!accept_op(ps, "]")) {
				if (v.n)
					expect_op(ps, ",");
				if (accept_op(ps, "]"))
					break;
				nvec_push(ps, &v, parse_expr(ps));
			}
			x = mknode(ps, E_LIST, t->line);
			x->list = v.a;
			x->n = v.n;
			return x;
		}
		if (accept_op(ps, "{")) {
			struct nvec k = {0}, v = {0};
			while (!accept_op(ps, "}")) {
				if (k.n)
					expect_op(ps, ",");
				if (accept_op(ps, "}"))
					break;
				nvec_push(ps, &k, parse_expr(ps));
				expect_op(ps, ":");
				nvec_push(ps, &v, parse_expr(ps));
			}
			x = mknode(ps, E_DICT, t->line);
			x->list = k.a;
			x->kw = v.a;
			x->n = k.n;
			return x;
		}
		break;
	default: break;
	}
	perr(ps, t->line, "unexpected %s", tok_desc(t, b, sizeof b));
}

static struct node *parse_postfix(struct parser *ps, struct node *x)
{
	for (;;) {
		int line = cur(ps)->line;
		if (accept_op(ps, ".")) {
			struct node *y = mknode(ps, E_ATTR, line);
			struct tok *t = cur(ps);
			y->a = x;
			if (t->t == T_INT) { /* x.0 */
				struct node *lit = mknode(ps, E_LIT, line);
				lit->lit.k = V_INT;
				lit->lit.u.i = t->i;
				ps->p++;
				y->kind = E_ITEM;
				y->b = lit;
			} else {
				y->name = expect_ident(ps);
				y->name_n = strlen(y->name);
			}
			x = y;
		} else if (accept_op(ps, "[")) {
			struct node *y = mknode(ps, E_ITEM, line),
				    *parts[3] = {0};
			int k = 0;
			bool slice = false;
			y->a = x;
			for (;;) {
				if (!is_op(cur(ps), ":") &&
				    !is_op(cur(ps), "]"))
					parts[k] = parse_expr(ps);
				if (k < 2 && accept_op(ps, ":")) {
					slice = true;
					k++;
					continue;
				}
				break;
			}
			expect_op(ps, "]");
			if (slice) {
				y->kind = E_SLICE;
				y->b = parts[0];
				y->c = parts[1];
				y->list = palloc(ps, sizeof *y->list);
				y->list[0] = parts[2];
				y->n = 1;
			} else {
				if (!parts[0])
					perr(ps, line, "expected a subscript");
				y->b = parts[0];
			}
			x = y;
		} else if (accept_op(ps, "(")) {
			struct node *y = mknode(ps, E_CALL, line);
			y->a = x;
			parse_args(ps, y);
			x = y;
		} else {
			return x;
		}
	}
}

static struct node *parse_filters(struct parser *ps, struct node *x)
{
	for (;;) {
		int line = cur(ps)->line;
		if (accept_op(ps, "|")) {
			struct node *y = mknode(ps, E_FILTER, line);
			y->a = x;
			y->name = expect_ident(ps);
			while (accept_op(ps, ".")) { /* dotted filter names */
				const char *more = expect_ident(ps);
				size_t nl = strlen(y->name) + strlen(more) + 2;
				char *nm = palloc(ps, nl);
				snprintf(nm, nl, "%s.%s", y->name, more);
				y->name = nm;
			}
			if (accept_op(ps, "("))
				parse_args(ps, y);
			x = y;
		} else if (accept_name(ps, "is")) {
			struct node *y = mknode(ps, E_TEST, line);
			struct tok *t;
			y->neg = accept_name(ps, "not");
			y->a = x;
			y->name = expect_ident(ps);
			t = cur(ps);
			if (accept_op(ps, "(")) {
				parse_args(ps, y);
			} else if (t->t == T_STRING || t->t == T_INT ||
				   t->t == T_FLOAT ||
				   (t->t == T_NAME && !is_name(t, "and") &&
				    !is_name(t, "or") && !is_name(t, "else") &&
				    !is_name(t, "if") && !is_name(t, "is") &&
				    !is_name(t, "in") && !is_name(t, "not") &&
				    !is_name(t, "recursive"))) {
				/* "is divisibleby 3": one argument, no () */
				y->list = palloc(ps, sizeof *y->list);
				y->list[0] =
				    parse_postfix(ps, parse_primary(ps));
				y->n = 1;
			}
			x = y;
		} else if (accept_op(ps, "(")) {
			struct node *y = mknode(ps, E_CALL, line);
			y->a = x;
			parse_args(ps, y);
			x = y;
		} else {
			return x;
		}
	}
}

static struct node *parse_unary(struct parser *ps, bool filters)
{
	int line = cur(ps)->line;
	struct node *x;

	enter(ps);
	if (accept_op(ps, "-")) {
		x = mknode(ps, E_NEG, line);
		x->a = parse_unary(ps, false);
	} else if (accept_op(ps, "+")) {
		x = mknode(ps, E_POS, line);
		x->a = parse_unary(ps, false);
	} else {
		x = parse_primary(ps);
	}
	x = parse_postfix(ps, x);
	if (filters)
		x = parse_filters(ps, x);
	ps->depth--;
	return x;
}

static struct node *binop(struct parser *ps, const char *op, struct node *a,
			  struct node *b, int line)
{
	struct node *x = mknode(ps, E_BIN, line);

	x->op = op;
	x->a = a;
	x->b = b;
	return x;
}

static struct node *parse_pow(struct parser *ps)
{
	struct node *x = parse_unary(ps, true);

	while (is_op(cur(ps), "**")) {
		int line = cur(ps)->line;
		ps->p++;
		x = binop(ps, "**", x, parse_unary(ps, true), line);
	}
	return x;
}

static struct node *parse_math2(struct parser *ps)
{
	struct node *x = parse_pow(ps);

	for (;;) {
		struct tok *t = cur(ps);
		const char *op = is_op(t, "*")	  ? "*"
				 : is_op(t, "/")  ? "/"
				 : is_op(t, "//") ? "//"
				 : is_op(t, "%")  ? "%"
						  : NULL;
		if (!op)
			return x;
		ps->p++;
		x = binop(ps, op, x, parse_pow(ps), t->line);
	}
}

static struct node *parse_concat(struct parser *ps)
{
	struct node *x = parse_math2(ps);

	while (is_op(cur(ps), "~")) {
		int line = cur(ps)->line;
		ps->p++;
		x = binop(ps, "~", x, parse_math2(ps), line);
	}
	return x;
}

static struct node *parse_math1(struct parser *ps)
{
	struct node *x = parse_concat(ps);

	for (;;) {
		struct tok *t = cur(ps);
		const char *op = is_op(t, "+")	 ? "+"
				 : is_op(t, "-") ? "-"
						 : NULL;
		if (!op)
			return x;
		ps->p++;
		x = binop(ps, op, x, parse_concat(ps), t->line);
	}
}

static struct node *parse_compare(struct parser *ps)
{
	struct node *x = parse_math1(ps), *c = NULL;
	struct nvec v = {0};
	char ops[64];
	size_t nops = 0;

	for (;;) {
		struct tok *t = cur(ps);
		char op = 0;
		if (is_op(t, "=="))
			op = 'e';
		else if (is_op(t, "!="))
			op = 'n';
		else if (is_op(t, "<"))
			op = '<';
		else if (is_op(t, ">"))
			op = '>';
		else if (is_op(t, "<="))
			op = 'l';
		else if (is_op(t, ">="))
			op = 'g';
		else if (is_name(t, "in"))
			op = 'i';
		else if (is_name(t, "not") && is_name(&ps->t[ps->p + 1], "in"))
			op = 'I';
		if (!op)
			break;
		ps->p += op == 'I' ? 2 : 1;
		if (nops + 1 >= sizeof ops)
			perr(ps, t->line, "too many comparisons in a row");
		if (!c) {
			c = mknode(ps, E_CMP, t->line);
			nvec_push(ps, &v, x);
		}
		ops[nops++] = op;
		nvec_push(ps, &v, parse_math1(ps));
	}
	if (!c)
		return x;
	ops[nops] = '\0';
	{
		char *o = palloc(ps, nops + 1);
		memcpy(o, ops, nops + 1);
		c->op = o;
	}
	c->list = v.a;
	c->n = v.n;
	return c;
}

static struct node *parse_not(struct parser *ps)
{
	int line = cur(ps)->line;

	if (accept_name(ps, "not")) {
		struct node *x = mknode(ps, E_NOT, line);
		enter(ps);
		x->a = parse_not(ps);
		ps->depth--;
		return x;
	}
	return parse_compare(ps);
}

static struct node *parse_and(struct parser *ps)
{
	struct node *x = parse_not(ps);

	while (is_name(cur(ps), "and")) {
		struct node *y = mknode(ps, E_AND, cur(ps)->line);
		ps->p++;
		y->a = x;
		y->b = parse_not(ps);
		x = y;
	}
	return x;
}

static struct node *parse_or(struct parser *ps)
{
	struct node *x = parse_and(ps);

	while (is_name(cur(ps), "or")) {
		struct node *y = mknode(ps, E_OR, cur(ps)->line);
		ps->p++;
		y->a = x;
		y->b = parse_and(ps);
		x = y;
	}
	return x;
}

static struct node *parse_expr(struct parser *ps)
{
	struct node *x;

	enter(ps);
	x = parse_or(ps);
	while (is_name(cur(ps), "if")) {
		struct node *y = mknode(ps, E_COND, cur(ps)->line);
		ps->p++;
		y->a = parse_or(ps);
		y->b = x;
		if (accept_name(ps, "else"))
			y->c = parse_expr(ps);
		x = y;
	}
	ps->depth--;
	return x;
}

static void expect_end(struct parser *ps)
{
	char b[64];

	if (cur(ps)->t != T_BEND)
		perr(ps, cur(ps)->line,
		     "expected the end of the block tag, "
		     "got %s",
		     tok_desc(cur(ps), b, sizeof b));
	ps->p++;
}

/* names of a for or set target: a, b or (a, b) */
static void parse_targets(struct parser *ps, struct node *x)
{
	const char *nm[16];
	size_t n = 0;
	bool paren = accept_op(ps, "(");

	do {
		if (n == 16)
			perr(ps, cur(ps)->line, "too many targets");
		nm[n++] = expect_ident(ps);
	} while (accept_op(ps, ","));
	if (paren)
		expect_op(ps, ")");
	x->names = palloc(ps, n * sizeof *x->names);
	memcpy(x->names, nm, n * sizeof *nm);
	x->nnames = n;
}

static struct node *parse_body(struct parser *ps, const char *const *ends,
			       const char **ended);

static struct node *parse_block(struct parser *ps, const char **ended,
				const char *const *ends)
{
	struct tok *t = cur(ps);
	int line = t->line;
	char b[64];
	struct node *x;

	if (t->t != T_NAME)
		perr(ps, line, "expected a tag name, got %s",
		     tok_desc(t, b, sizeof b));
	for (size_t i = 0; ends && ends[i]; i++)
		if (is_name(t, ends[i])) {
			*ended = ends[i];
			ps->p++;
			return NULL;
		}
	ps->p++;
	if (is_name(t, "if")) {
		static const char *const e[] = {"elif", "else", "endif", NULL};
		const char *how;
		struct node *top = mknode(ps, N_IF, line), *n = top;
		n->a = parse_expr(ps);
		expect_end(ps);
		for (;;) {
			n->b = parse_body(ps, e, &how);
			if (strcmp(how, "elif") == 0) {
				struct node *m = mknode(ps, N_IF, line);
				m->a = parse_expr(ps);
				expect_end(ps);
				n->c = m;
				n = m;
				continue;
			}
			if (strcmp(how, "else") == 0) {
				static const char *const e2[] = {"endif", NULL};
				expect_end(ps);
				n->c = parse_body(ps, e2, &how);
			}
			expect_end(ps);
			return top;
		}
	}
	if (is_name(t, "for")) {
		static const char *const e[] = {"else", "endfor", NULL};
		static const char *const e2[] = {"endfor", NULL};
		const char *how;
		x = mknode(ps, N_FOR, line);
		parse_targets(ps, x);
		if (!accept_name(ps, "in"))
			perr(ps, cur(ps)->line, "expected 'in' in a for loop");
		x->a = parse_or(ps); /* "if" after it filters the loop */
		if (accept_name(ps, "if"))
			x->name = "", x->kw = palloc(ps, sizeof *x->kw),
			x->kw[0] = parse_expr(ps), x->nkw = 1;
		if (accept_name(ps, "recursive"))
			perr(ps, line, "recursive loops are not supported");
		expect_end(ps);
		x->b = parse_body(ps, e, &how);
		if (strcmp(how, "else") == 0) {
			expect_end(ps);
			x->c = parse_body(ps, e2, &how);
		}
		expect_end(ps);
		return x;
	}
	if (is_name(t, "set")) {
		x = mknode(ps, N_SET, line);
		if (cur(ps)->t == T_NAME && is_op(&ps->t[ps->p + 1], ".")) {
			x->name = expect_ident(ps); /* ns.attr = */
			ps->p++;
			x->names = palloc(ps, sizeof *x->names);
			x->names[0] = expect_ident(ps);
			x->nnames = 1;
			expect_op(ps, "=");
			x->a = parse_expr(ps);
			expect_end(ps);
			return x;
		}
		parse_targets(ps, x);
		if (accept_op(ps, "=")) {
			x->a = parse_expr(ps);
			if (is_op(cur(ps), ",")) { /* set a = 1, 2 */
				struct node *tp = mknode(ps, E_TUPLE, line);
				struct nvec v = {0};
				nvec_push(ps, &v, x->a);
				while (accept_op(ps, ","))
					nvec_push(ps, &v, parse_expr(ps));
				tp->list = v.a;
				tp->n = v.n;
				x->a = tp;
			}
			expect_end(ps);
			return x;
		}
		{
			static const char *const e[] = {"endset", NULL};
			const char *how;
			if (x->nnames != 1)
				perr(ps, line, "a block set takes one name");
			x->kind = N_SETBLOCK;
			expect_end(ps);
			x->b = parse_body(ps, e, &how);
			expect_end(ps);
			return x;
		}
	}
	if (is_name(t, "macro")) {
		static const char *const e[] = {"endmacro", NULL};
		struct nvec defs = {0};
		const char *pn[64], *how;
		size_t np = 0;
		x = mknode(ps, N_MACRO, line);
		x->name = expect_ident(ps);
		expect_op(ps, "(");
		while (!accept_op(ps, ")")) {
			if (np)
				expect_op(ps, ",");
			if (np == 64)
				perr(ps, line, "too many macro parameters");
			pn[np] = expect_ident(ps);
			nvec_push(ps, &defs,
				  accept_op(ps, "=") ? parse_expr(ps) : NULL);
			np++;
		}
		x->kwn = palloc(ps, (np ? np : 1) * sizeof *x->kwn);
		memcpy(x->kwn, pn, np * sizeof *pn);
		x->kw = defs.a;
		x->nkw = np;
		expect_end(ps);
		x->b = parse_body(ps, e, &how);
		expect_end(ps);
		return x;
	}
	if (is_name(t, "generation")) { /* transformers' AssistantTracker */
		static const char *const e[] = {"endgeneration", NULL};
		const char *how;
		expect_end(ps);
		x = parse_body(ps, e, &how);
		expect_end(ps);
		return x;
	}
	if (is_name(t, "break") || is_name(t, "continue")) {
		x = mknode(ps, is_name(t, "break") ? N_BREAK : N_CONTINUE,
			   line);
		expect_end(ps);
		return x;
	}
	perr(ps, line, "unknown or unsupported tag '%.*s'", (int)t->n, t->s);
}

/* statements up to one of ends (its name in *ended; NULL: to the end) */
static struct node *parse_body(struct parser *ps, const char *const *ends,
			       const char **ended)
{
	struct node *body = mknode(ps, N_BODY, cur(ps)->line);
	struct nvec v = {0};
	int line0 = cur(ps)->line;

	enter(ps);
	*ended = NULL;
	for (;;) {
		struct tok *t = cur(ps);
		if (t->t == T_EOF) {
			size_t k = 0;
			while (ends && ends[k + 1])
				k++;
			if (ends)
				perr(ps, t->line,
				     "unexpected end of template: the block "
				     "opened on line %d needs {%% %s %%}",
				     line0, ends[k]);
			break;
		}
		if (t->t == T_TEXT) {
			struct node *x = mknode(ps, N_TEXT, t->line);
			x->name = t->s;
			x->name_n = t->n;
			nvec_push(ps, &v, x);
			ps->p++;
		} else if (t->t == T_VBEGIN) {
			struct node *x = mknode(ps, N_OUT, t->line);
			char b[64];
			ps->p++;
			x->a = parse_expr(ps);
			if (cur(ps)->t != T_VEND)
				perr(ps, cur(ps)->line,
				     "expected the end of the print "
				     "statement, got %s",
				     tok_desc(cur(ps), b, sizeof b));
			ps->p++;
			nvec_push(ps, &v, x);
		} else if (t->t == T_BBEGIN) {
			struct node *x;
			ps->p++;
			x = parse_block(ps, ended, ends);
			if (!x)
				break;
			nvec_push(ps, &v, x);
		} else {
			char b[64];
			perr(ps, t->line, "unexpected %s",
			     tok_desc(t, b, sizeof b));
		}
	}
	body->list = v.a;
	body->n = v.n;
	ps->depth--;
	return body;
}

int ed_jinja_parse(const char *src, size_t len, struct ed_jinja **out,
		   char *err, size_t errlen)
{
	struct ed_jinja *t = calloc(1, sizeof *t);
	struct parser *ps =
	    calloc(1, sizeof *ps); /* not clobbered by longjmp */
	const char *ended;
	char *norm = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (t) {
		t->a.cap = ARENA_CAP;
		norm = arena_get(&t->a, len + 1);
	}
	if (!t || !ps || !norm) {
		ed_jinja_free(t);
		free(ps);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	/* newlines as "\n"; one trailing newline dropped */
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			norm[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			norm[n++] = src[i];
		}
	}
	if (n && norm[n - 1] == '\n')
		n--;
	norm[n] = '\0';
	ps->src = norm;
	ps->len = n;
	ps->a = &t->a;
	ps->err = err;
	ps->errlen = errlen;
	if (setjmp(ps->jb)) {
		rc = ps->rc;
		free(ps->t);
		free(ps);
		ed_jinja_free(t);
		return rc;
	}
	lex(ps);
	t->root = parse_body(ps, NULL, &ended);
	free(ps->t);
	free(ps);
	*out = t;
	return 0;
}

void ed_jinja_free(struct ed_jinja *t)
{
	if (!t)
		return;
	arena_free(&t->a);
	free(t);
}

/* ---- evaluation ----------------------------------------------------- */

struct frame {
	struct frame *parent;
	size_t n, cap;
	const char **names;
	struct val *vals;
};

struct rt {
	struct arena a;
	struct frame *root;
	int depth;
	char *err;
	size_t errlen;
	int rc;
	jmp_buf jb;
};

enum flow { FL_NONE, FL_BREAK, FL_CONTINUE };

__attribute__((format(printf, 4, 5), noreturn)) static void
rerr(struct rt *r, int code, int line, const char *fmt, ...)
{
	char m[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (line > 0)
		r->rc = ed_err(r->err, r->errlen, code,
			       "chat template line %d: %s", line, m);
	else
		r->rc = ed_err(r->err, r->errlen, code, "%s", m);
	longjmp(r->jb, 1);
}

static void *ralloc(struct rt *r, size_t n)
{
	void *p = arena_get(&r->a, n);

	if (!p)
		rerr(r, ED_ETOOBIG, 0,
		     "chat template: more than %u MiB of values",
		     ARENA_CAP >> 20);
	return p;
}

static struct val mk_int(int64_t i)
{
	struct val v = {V_INT, 0, {.i = i}, NULL};
	return v;
}

static struct val mk_bool(bool b)
{
	struct val v = {V_BOOL, 0, {.b = b}, NULL};
	return v;
}

static struct val mk_float(double f)
{
	struct val v = {V_FLOAT, 0, {.f = f}, NULL};
	return v;
}

static struct val mk_none(void)
{
	struct val v = {V_NONE, 0, {0}, NULL};
	return v;
}

static struct val mk_undef(const char *why)
{
	struct val v = {V_UNDEF, 0, {0}, why};
	return v;
}

static struct str *new_str(struct rt *r, const char *s, size_t n)
{
	struct str *x = ralloc(r, sizeof *x + n + 1);

	x->n = n;
	if (n)
		memcpy(x->s, s, n);
	x->s[n] = '\0';
	return x;
}

static struct val mk_str(struct rt *r, const char *s, size_t n)
{
	struct val v = {V_STR, 0, {.s = new_str(r, s, n)}, NULL};
	return v;
}

static struct val mk_list(struct rt *r, size_t cap)
{
	struct val v = {V_LIST, 0, {.l = ralloc(r, sizeof(struct list))}, NULL};

	v.u.l->n = 0;
	v.u.l->cap = cap;
	v.u.l->a = cap ? ralloc(r, cap * sizeof(struct val)) : NULL;
	return v;
}

static void list_push(struct rt *r, struct list *l, struct val x)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 4;
		struct val *na = ralloc(r, nc * sizeof *na);
		if (l->n)
			memcpy(na, l->a, l->n * sizeof *na);
		l->a = na;
		l->cap = nc;
	}
	l->a[l->n++] = x;
}

static struct val mk_dict(struct rt *r)
{
	struct val v = {V_DICT, 0, {.d = ralloc(r, sizeof(struct dict))}, NULL};

	memset(v.u.d, 0, sizeof *v.u.d);
	return v;
}

static struct val *dict_find(const struct dict *d, const char *k, size_t n)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i]->n == n && memcmp(d->k[i]->s, k, n) == 0)
			return &d->v[i];
	return NULL;
}

static void dict_set(struct rt *r, struct dict *d, const char *k, size_t n,
		     struct val v)
{
	struct val *p = dict_find(d, k, n);

	if (p) {
		*p = v;
		return;
	}
	if (d->n == d->cap) {
		size_t nc = d->cap ? 2 * d->cap : 4;
		struct str **nk = ralloc(r, nc * sizeof *nk);
		struct val *nv = ralloc(r, nc * sizeof *nv);
		if (d->n) {
			memcpy(nk, d->k, d->n * sizeof *nk);
			memcpy(nv, d->v, d->n * sizeof *nv);
		}
		d->k = nk;
		d->v = nv;
		d->cap = nc;
	}
	d->k[d->n] = new_str(r, k, n);
	d->v[d->n++] = v;
}

static struct val from_json(struct rt *r, const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		struct val v = mk_dict(r);
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)j, k, x)
		    dict_set(r, v.u.d, k, strlen(k), from_json(r, x));
		return v;
	}
	case JSON_ARRAY: {
		struct val v = mk_list(r, json_array_size(j));
		size_t i;
		json_t *x;
		json_array_foreach(j, i, x)
		    list_push(r, v.u.l, from_json(r, x));
		return v;
	}
	case JSON_STRING:
		return mk_str(r, json_string_value(j), json_string_length(j));
	case JSON_INTEGER: return mk_int(json_integer_value(j));
	case JSON_REAL: return mk_float(json_real_value(j));
	case JSON_TRUE: return mk_bool(true);
	case JSON_FALSE: return mk_bool(false);
	default: return mk_none();
	}
}

static const char *type_name(const struct val *v)
{
	switch (v->k) {
	case V_UNDEF: return "Undefined";
	case V_NONE: return "NoneType";
	case V_BOOL: return "bool";
	case V_INT: return "int";
	case V_FLOAT: return "float";
	case V_STR: return "str";
	case V_LIST: return v->flags & F_TUPLE ? "tuple" : "list";
	case V_DICT:
		return v->flags & F_NS	   ? "Namespace"
		       : v->flags & F_LOOP ? "LoopContext"
					   : "dict";
	case V_MACRO: return "Macro";
	default: return "function";
	}
}

/* ---- text forms: str(), repr(), json.dumps() ------------------------- */

/* Python's repr(float): the shortest digits that read back */
static void float_repr(double f, char *o, size_t on)
{
	char b[40], dig[24];
	int prec, e, nd = 0;
	const char *p;

	if (isnan(f)) {
		snprintf(o, on, "nan");
		return;
	}
	if (isinf(f)) {
		snprintf(o, on, f < 0 ? "-inf" : "inf");
		return;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof b, "%.*e", prec - 1, f);
		if (strtod(b, NULL) == f)
			break;
	}
	p = b;
	if (*p == '-')
		p++;
	for (; *p && *p != 'e'; p++)
		if (is_digit(*p))
			dig[nd++] = *p;
	e = (int)strtol(p + 1, NULL, 10);
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	dig[nd] = '\0';
	{
		char *w = o, *end = o + on - 1;
#define PUT(c)                                                                 \
	do {                                                                   \
		if (w < end)                                                   \
			*w++ = (c);                                            \
	} while (0)
		if (signbit(f))
			PUT('-');
		if (e >= -4 && e < 16) {
			if (e < 0) {
				PUT('0');
				PUT('.');
				for (int i = 0; i < -e - 1; i++)
					PUT('0');
				for (int i = 0; i < nd; i++)
					PUT(dig[i]);
			} else {
				for (int i = 0; i <= e; i++)
					PUT(i < nd ? dig[i] : '0');
				PUT('.');
				if (nd > e + 1)
					for (int i = e + 1; i < nd; i++)
						PUT(dig[i]);
				else
					PUT('0');
			}
		} else {
			char ex[16];
			PUT(dig[0]);
			if (nd > 1) {
				PUT('.');
				for (int i = 1; i < nd; i++)
					PUT(dig[i]);
			}
			snprintf(ex, sizeof ex, "e%c%02d", e < 0 ? '-' : '+',
				 e < 0 ? -e : e);
			for (char *c = ex; *c; c++)
				PUT(*c);
		}
		*w = '\0';
#undef PUT
	}
}

static void put(struct rt *r, struct ed_buf *b, const char *s, size_t n)
{
	int rc = b->len + n > OUTPUT_CAP ? ED_ETOOBIG : ed_buf_append(b, s, n);

	if (rc)
		rerr(r, rc, 0,
		     rc == ED_ETOOBIG ? "chat template: output too large"
				      : "out of memory");
}

static void puts_(struct rt *r, struct ed_buf *b, const char *s)
{
	put(r, b, s, strlen(s));
}

/* the code point at s (a bad byte: U+FFFD, one byte) */
static uint32_t utf8_at(const char *s, size_t n, size_t *len)
{
	uint32_t cp;

	*len = (size_t)ed_utf8_decode((const unsigned char *)s, n, &cp);
	return cp;
}

static void repr_str(struct rt *r, struct ed_buf *b, const struct str *s)
{
	char q =
	    memchr(s->s, '\'', s->n) && !memchr(s->s, '"', s->n) ? '"' : '\'';
	char e[12];

	put(r, b, &q, 1);
	for (size_t i = 0; i < s->n;) {
		size_t l;
		uint32_t c = utf8_at(s->s + i, s->n - i, &l);
		if (c == (uint32_t)q || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			put(r, b, e, 2);
		} else if (c == '\n') {
			puts_(r, b, "\\n");
		} else if (c == '\r') {
			puts_(r, b, "\\r");
		} else if (c == '\t') {
			puts_(r, b, "\\t");
		} else if (c < 0x20 || (c >= 0x7F && c < 0xA0) || c == 0xAD) {
			snprintf(e, sizeof e, "\\x%02x", c);
			puts_(r, b, e);
		} else if (c == 0x2028 || c == 0x2029) {
			snprintf(e, sizeof e, "\\u%04x", c);
			puts_(r, b, e);
		} else {
			put(r, b, s->s + i, l);
		}
		i += l;
	}
	put(r, b, &q, 1);
}

static void to_text(struct rt *r, struct ed_buf *b, const struct val *v,
		    bool repr);

static void seq_text(struct rt *r, struct ed_buf *b, const struct val *v)
{
	bool tup = v->flags & F_TUPLE;

	puts_(r, b, tup ? "(" : "[");
	for (size_t i = 0; i < v->u.l->n; i++) {
		if (i)
			puts_(r, b, ", ");
		to_text(r, b, &v->u.l->a[i], true);
	}
	if (tup && v->u.l->n == 1)
		puts_(r, b, ",");
	puts_(r, b, tup ? ")" : "]");
}

/* str(v) or repr(v), as Python writes them */
static void to_text(struct rt *r, struct ed_buf *b, const struct val *v,
		    bool repr)
{
	char n[48];

	switch (v->k) {
	case V_UNDEF: break;
	case V_NONE: puts_(r, b, "None"); break;
	case V_BOOL: puts_(r, b, v->u.b ? "True" : "False"); break;
	case V_INT:
		snprintf(n, sizeof n, "%lld", (long long)v->u.i);
		puts_(r, b, n);
		break;
	case V_FLOAT:
		float_repr(v->u.f, n, sizeof n);
		puts_(r, b, n);
		break;
	case V_STR:
		if (repr)
			repr_str(r, b, v->u.s);
		else
			put(r, b, v->u.s->s, v->u.s->n);
		break;
	case V_LIST: seq_text(r, b, v); break;
	case V_DICT:
		if (v->flags & F_NS)
			puts_(r, b, "<Namespace ");
		puts_(r, b, "{");
		for (size_t i = 0; i < v->u.d->n; i++) {
			if (i)
				puts_(r, b, ", ");
			repr_str(r, b, v->u.d->k[i]);
			puts_(r, b, ": ");
			to_text(r, b, &v->u.d->v[i], true);
		}
		puts_(r, b, "}");
		if (v->flags & F_NS)
			puts_(r, b, ">");
		break;
	case V_MACRO:
		snprintf(n, sizeof n, "<Macro '%.30s'>", v->u.m->name);
		puts_(r, b, n);
		break;
	default: puts_(r, b, "<function>");
	}
}

/* str(v) as a new string value (strings themselves are returned) */
static struct str *str_of(struct rt *r, const struct val *v)
{
	struct ed_buf b;
	struct str *s;

	if (v->k == V_STR)
		return v->u.s;
	ed_buf_init(&b, OUTPUT_CAP);
	{
		/* render into a temporary buffer; freed on error below */
		struct ed_buf *keep = &b;
		jmp_buf saved;
		memcpy(saved, r->jb, sizeof saved);
		if (setjmp(r->jb)) {
			ed_buf_release(keep);
			memcpy(r->jb, saved, sizeof saved);
			longjmp(r->jb, 1);
		}
		to_text(r, &b, v, false);
		memcpy(r->jb, saved, sizeof saved);
	}
	s = new_str(r, b.data ? b.data : "", b.len);
	ed_buf_release(&b);
	return s;
}

struct jsonfmt {
	int indent; /* < 0: none */
	const char *item_sep, *key_sep;
	bool ascii, sort;
};

static void json_str(struct rt *r, struct ed_buf *b, const char *s, size_t n,
		     bool ascii)
{
	char e[16];

	puts_(r, b, "\"");
	for (size_t i = 0; i < n;) {
		size_t l;
		uint32_t c = utf8_at(s + i, n - i, &l);
		switch (c) {
		case '"': puts_(r, b, "\\\""); break;
		case '\\': puts_(r, b, "\\\\"); break;
		case '\n': puts_(r, b, "\\n"); break;
		case '\r': puts_(r, b, "\\r"); break;
		case '\t': puts_(r, b, "\\t"); break;
		case '\b': puts_(r, b, "\\b"); break;
		case '\f': puts_(r, b, "\\f"); break;
		default:
			if (c < 0x20 || (ascii && c == 0x7F)) {
				snprintf(e, sizeof e, "\\u%04x", c);
				puts_(r, b, e);
			} else if (ascii && c >= 0x80) {
				if (c >= 0x10000) {
					uint32_t v = c - 0x10000;
					snprintf(e, sizeof e, "\\u%04x\\u%04x",
						 0xD800 + (v >> 10),
						 0xDC00 + (v & 0x3FF));
				} else {
					snprintf(e, sizeof e, "\\u%04x", c);
				}
				puts_(r, b, e);
			} else {
				put(r, b, s + i, l);
			}
		}
		i += l;
	}
	puts_(r, b, "\"");
}

static void json_nl(struct rt *r, struct ed_buf *b, const struct jsonfmt *f,
		    int level)
{
	puts_(r, b, "\n");
	for (int i = 0; i < f->indent * level; i++)
		puts_(r, b, " ");
}

static int key_cmp(const void *a, const void *b)
{
	const struct str *x = *(struct str *const *)a,
			 *y = *(struct str *const *)b;
	int c = memcmp(x->s, y->s, ED_MIN(x->n, y->n));

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void to_json(struct rt *r, struct ed_buf *b, const struct val *v,
		    const struct jsonfmt *f, int level, int line)
{
	char n[48];

	if (level > MAX_DEPTH)
		rerr(r, ED_EINVAL, line, "tojson: nested too deeply");
	switch (v->k) {
	case V_NONE: puts_(r, b, "null"); break;
	case V_BOOL: puts_(r, b, v->u.b ? "true" : "false"); break;
	case V_INT:
		snprintf(n, sizeof n, "%lld", (long long)v->u.i);
		puts_(r, b, n);
		break;
	case V_FLOAT:
		if (isnan(v->u.f))
			puts_(r, b, "NaN");
		else if (isinf(v->u.f))
			puts_(r, b, v->u.f < 0 ? "-Infinity" : "Infinity");
		else {
			float_repr(v->u.f, n, sizeof n);
			puts_(r, b, n);
		}
		break;
	case V_STR: json_str(r, b, v->u.s->s, v->u.s->n, f->ascii); break;
	case V_LIST:
		if (!v->u.l->n) {
			puts_(r, b, "[]");
			break;
		}
		puts_(r, b, "[");
		for (size_t i = 0; i < v->u.l->n; i++) {
			if (i)
				puts_(r, b, f->item_sep);
			if (f->indent >= 0)
				json_nl(r, b, f, level + 1);
			to_json(r, b, &v->u.l->a[i], f, level + 1, line);
		}
		if (f->indent >= 0)
			json_nl(r, b, f, level);
		puts_(r, b, "]");
		break;
	case V_DICT:
		if (!(v->flags & (F_NS | F_LOOP))) {
			const struct dict *d = v->u.d;
			size_t *ord;
			if (!d->n) {
				puts_(r, b, "{}");
				break;
			}
			ord = ralloc(r, d->n * sizeof *ord);
			for (size_t i = 0; i < d->n; i++)
				ord[i] = i;
			if (f->sort) { /* a stable insertion sort by key */
				for (size_t i = 1; i < d->n; i++)
					for (size_t j = i;
					     j > 0 &&
					     key_cmp(&d->k[ord[j - 1]],
						     &d->k[ord[j]]) > 0;
					     j--) {
						size_t t = ord[j];
						ord[j] = ord[j - 1];
						ord[j - 1] = t;
					}
			}
			puts_(r, b, "{");
			for (size_t i = 0; i < d->n; i++) {
				if (i)
					puts_(r, b, f->item_sep);
				if (f->indent >= 0)
					json_nl(r, b, f, level + 1);
				json_str(r, b, d->k[ord[i]]->s, d->k[ord[i]]->n,
					 f->ascii);
				puts_(r, b, f->key_sep);
				to_json(r, b, &d->v[ord[i]], f, level + 1,
					line);
			}
			if (f->indent >= 0)
				json_nl(r, b, f, level);
			puts_(r, b, "}");
			break;
		}
		/* fall through */
	default:
		rerr(r, ED_EINVAL, line,
		     "Object of type %s is not JSON serializable",
		     type_name(v));
	}
}

/* ---- truth, equality, order ----------------------------------------- */

static bool truthy(const struct val *v)
{
	switch (v->k) {
	case V_UNDEF:
	case V_NONE: return false;
	case V_BOOL: return v->u.b;
	case V_INT: return v->u.i != 0;
	case V_FLOAT: return v->u.f != 0;
	case V_STR: return v->u.s->n != 0;
	case V_LIST: return v->u.l->n != 0;
	case V_DICT: return (v->flags & (F_NS | F_LOOP)) || v->u.d->n != 0;
	default: return true;
	}
}

static bool is_num(const struct val *v)
{
	return v->k == V_BOOL || v->k == V_INT || v->k == V_FLOAT;
}

static double num_f(const struct val *v)
{
	return v->k == V_FLOAT ? v->u.f
	       : v->k == V_INT ? (double)v->u.i
			       : (double)v->u.b;
}

static int64_t num_i(const struct val *v)
{
	return v->k == V_INT ? v->u.i : (int64_t)v->u.b;
}

static bool equal(const struct val *a, const struct val *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->k == V_FLOAT || b->k == V_FLOAT)
			return num_f(a) == num_f(b);
		return num_i(a) == num_i(b);
	}
	if (a->k != b->k)
		return false;
	switch (a->k) {
	case V_UNDEF:
	case V_NONE: return true;
	case V_STR:
		return a->u.s->n == b->u.s->n &&
		       memcmp(a->u.s->s, b->u.s->s, a->u.s->n) == 0;
	case V_LIST:
		if ((a->flags & F_TUPLE) != (b->flags & F_TUPLE) ||
		    a->u.l->n != b->u.l->n)
			return false;
		for (size_t i = 0; i < a->u.l->n; i++)
			if (!equal(&a->u.l->a[i], &b->u.l->a[i]))
				return false;
		return true;
	case V_DICT:
		if ((a->flags | b->flags) & (F_NS | F_LOOP))
			return a->u.d == b->u.d;
		if (a->u.d->n != b->u.d->n)
			return false;
		for (size_t i = 0; i < a->u.d->n; i++) {
			const struct val *o =
			    dict_find(b->u.d, a->u.d->k[i]->s, a->u.d->k[i]->n);
			if (!o || !equal(&a->u.d->v[i], o))
				return false;
		}
		return true;
	case V_MACRO: return a->u.m == b->u.m;
	case V_FUNC: return a->u.fn == b->u.fn;
	default: return false;
	}
}

/* <0, 0, >0; a type error for values Python does not order */
static int order(struct rt *r, const struct val *a, const struct val *b,
		 const char *op, int line)
{
	if (is_num(a) && is_num(b)) {
		if (a->k == V_FLOAT || b->k == V_FLOAT) {
			double x = num_f(a), y = num_f(b);
			return (x > y) - (x < y);
		}
		return (num_i(a) > num_i(b)) - (num_i(a) < num_i(b));
	}
	if (a->k == V_STR && b->k == V_STR) {
		int c =
		    memcmp(a->u.s->s, b->u.s->s, ED_MIN(a->u.s->n, b->u.s->n));
		return c ? (c > 0) - (c < 0)
			 : (a->u.s->n > b->u.s->n) - (a->u.s->n < b->u.s->n);
	}
	if (a->k == V_LIST && b->k == V_LIST &&
	    (a->flags & F_TUPLE) == (b->flags & F_TUPLE)) {
		size_t n = ED_MIN(a->u.l->n, b->u.l->n);
		for (size_t i = 0; i < n; i++)
			if (!equal(&a->u.l->a[i], &b->u.l->a[i]))
				return order(r, &a->u.l->a[i], &b->u.l->a[i],
					     op, line);
		return (a->u.l->n > b->u.l->n) - (a->u.l->n < b->u.l->n);
	}
	rerr(r, ED_EINVAL, line,
	     "'%s' not supported between instances of '%s' and '%s'", op,
	     type_name(a), type_name(b));
}

/* ---- attribute and item access -------------------------------------- */

__attribute__((noreturn)) static void undef_used(struct rt *r,
						 const struct val *v, int line)
{
	rerr(r, ED_EINVAL, line, "%s", v->why ? v->why : "undefined value");
}

static const char *undef_msg(struct rt *r, const struct val *obj,
			     const char *name, size_t n, bool attr)
{
	char m[200];

	if (attr)
		snprintf(m, sizeof m, "'%s object' has no attribute '%.*s'",
			 obj->k == V_DICT && !(obj->flags & (F_NS | F_LOOP))
			     ? "dict"
			     : type_name(obj),
			 (int)ED_MIN(n, 60), name);
	else
		snprintf(m, sizeof m, "'%s object' has no element '%.*s'",
			 type_name(obj), (int)ED_MIN(n, 60), name);
	return new_str(r, m, strlen(m))->s;
}

static struct val loop_get(struct rt *r, const struct val *lp, const char *k,
			   size_t n);

static struct val get_attr(struct rt *r, const struct val *obj,
			   const char *name, size_t n, int line)
{
	if (obj->k == V_UNDEF)
		undef_used(r, obj, line);
	if (obj->k == V_DICT) {
		const struct val *v = dict_find(obj->u.d, name, n);
		if (obj->flags & F_LOOP)
			return loop_get(r, obj, name, n);
		if (v)
			return *v;
	}
	return mk_undef(undef_msg(r, obj, name, n, true));
}

static int64_t norm_index(int64_t i, size_t n)
{
	return i < 0 ? i + (int64_t)n : i;
}

static struct val get_item(struct rt *r, const struct val *obj,
			   const struct val *key, int line)
{
	if (obj->k == V_UNDEF)
		undef_used(r, obj, line);
	if (obj->k == V_DICT && key->k == V_STR) {
		if (obj->flags & F_LOOP)
			return loop_get(r, obj, key->u.s->s, key->u.s->n);
		const struct val *v =
		    dict_find(obj->u.d, key->u.s->s, key->u.s->n);
		if (v)
			return *v;
		return mk_undef(
		    undef_msg(r, obj, key->u.s->s, key->u.s->n, true));
	}
	if ((obj->k == V_LIST || obj->k == V_STR) &&
	    (key->k == V_INT || key->k == V_BOOL)) {
		size_t n = obj->k == V_LIST ? obj->u.l->n : obj->u.s->n;
		int64_t i = norm_index(num_i(key), n);
		if (obj->k == V_LIST) {
			if (i >= 0 && i < (int64_t)n)
				return obj->u.l->a[i];
		} else {
			/* characters are code points */
			const char *s = obj->u.s->s;
			size_t l, cnt = 0;
			int64_t nc = 0;
			for (size_t k = 0; k < n; k += l, nc++)
				utf8_at(s + k, n - k, &l);
			i = norm_index(num_i(key), (size_t)nc);
			for (size_t k = 0; k < n; k += l, cnt++) {
				utf8_at(s + k, n - k, &l);
				if ((int64_t)cnt == i)
					return mk_str(r, s + k, l);
			}
		}
	}
	{
		char kb[64];
		if (key->k == V_STR)
			snprintf(kb, sizeof kb, "%.40s", key->u.s->s);
		else if (key->k == V_INT)
			snprintf(kb, sizeof kb, "%lld", (long long)key->u.i);
		else
			snprintf(kb, sizeof kb, "%s", type_name(key));
		return mk_undef(undef_msg(r, obj, kb, strlen(kb), false));
	}
}

/* ---- frames --------------------------------------------------------- */

static struct frame *new_frame(struct rt *r, struct frame *parent)
{
	struct frame *f = ralloc(r, sizeof *f);

	memset(f, 0, sizeof *f);
	f->parent = parent;
	return f;
}

static void frame_set(struct rt *r, struct frame *f, const char *name,
		      struct val v)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->names[i], name) == 0) {
			f->vals[i] = v;
			return;
		}
	if (f->n == f->cap) {
		size_t nc = f->cap ? 2 * f->cap : 8;
		const char **nn = ralloc(r, nc * sizeof *nn);
		struct val *nv = ralloc(r, nc * sizeof *nv);
		if (f->n) {
			memcpy(nn, f->names, f->n * sizeof *nn);
			memcpy(nv, f->vals, f->n * sizeof *nv);
		}
		f->names = nn;
		f->vals = nv;
		f->cap = nc;
	}
	f->names[f->n] = name;
	f->vals[f->n++] = v;
}

static const struct val *frame_get(const struct frame *f, const char *name)
{
	for (; f; f = f->parent)
		for (size_t i = f->n; i-- > 0;)
			if (strcmp(f->names[i], name) == 0)
				return &f->vals[i];
	return NULL;
}

/* ---- built-in functions --------------------------------------------- */

enum fn { FN_RANGE, FN_NAMESPACE, FN_DICT, FN_RAISE, FN_STRFTIME };

static const char *const fn_names[] = {"range", "namespace", "dict",
				       "raise_exception", "strftime_now"};

static struct val eval(struct rt *r, const struct node *x, struct frame *f);

struct args {
	struct val *pos;
	size_t n;
	const char **kwn;
	struct val *kw;
	size_t nkw;
};

static void eval_args(struct rt *r, const struct node *x, struct frame *f,
		      struct args *a)
{
	a->n = x->n;
	a->pos = x->n ? ralloc(r, x->n * sizeof *a->pos) : NULL;
	for (size_t i = 0; i < x->n; i++)
		a->pos[i] = eval(r, x->list[i], f);
	a->nkw = x->nkw;
	a->kwn = x->kwn;
	a->kw = x->nkw ? ralloc(r, x->nkw * sizeof *a->kw) : NULL;
	for (size_t i = 0; i < x->nkw; i++)
		a->kw[i] = eval(r, x->kw[i], f);
}

/* argument k by position or name (NULL: absent) */
static const struct val *arg(const struct args *a, size_t k, const char *name)
{
	if (k < a->n)
		return &a->pos[k];
	for (size_t i = 0; i < a->nkw; i++)
		if (name && strcmp(a->kwn[i], name) == 0)
			return &a->kw[i];
	return NULL;
}

static void check_args(struct rt *r, const struct args *a, size_t maxpos,
		       const char *const *names, const char *what, int line)
{
	if (a->n > maxpos)
		rerr(r, ED_EINVAL, line, "%s takes at most %zu arguments", what,
		     maxpos);
	for (size_t i = 0; i < a->nkw; i++) {
		bool ok = false;
		for (size_t k = 0; names && names[k]; k++)
			ok |= strcmp(a->kwn[i], names[k]) == 0;
		if (!ok)
			rerr(r, ED_EINVAL, line,
			     "%s got an unexpected keyword argument '%s'", what,
			     a->kwn[i]);
	}
}

static int64_t want_int(struct rt *r, const struct val *v, const char *what,
			int line)
{
	if (v->k != V_INT && v->k != V_BOOL)
		rerr(r, ED_EINVAL, line, "%s: '%s' object is not an integer",
		     what, type_name(v));
	return num_i(v);
}

static struct str *want_str(struct rt *r, const struct val *v, const char *what,
			    int line)
{
	if (v->k != V_STR)
		rerr(r, ED_EINVAL, line, "%s: expected a string, not '%s'",
		     what, type_name(v));
	return v->u.s;
}

static struct val call_fn(struct rt *r, int fn, const struct args *a, int line)
{
	switch (fn) {
	case FN_RANGE: {
		int64_t lo = 0, hi, st = 1;
		struct val out;
		check_args(r, a, 3, NULL, "range", line);
		if (a->n == 0)
			rerr(r, ED_EINVAL, line, "range expected 1 argument");
		if (a->n == 1) {
			hi = want_int(r, &a->pos[0], "range", line);
		} else {
			lo = want_int(r, &a->pos[0], "range", line);
			hi = want_int(r, &a->pos[1], "range", line);
			if (a->n == 3)
				st = want_int(r, &a->pos[2], "range", line);
		}
		if (st == 0)
			rerr(r, ED_EINVAL, line,
			     "range() arg 3 must not be zero");
		out = mk_list(r, 0);
		for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
			if (out.u.l->n >= 1000000)
				rerr(r, ED_ETOOBIG, line,
				     "range() too large for a chat template");
			list_push(r, out.u.l, mk_int(i));
		}
		return out;
	}
	case FN_NAMESPACE:
	case FN_DICT: {
		struct val d = mk_dict(r);
		if (a->n > 1 || (a->n == 1 && a->pos[0].k != V_DICT))
			rerr(r, ED_EINVAL, line, "%s() takes keyword arguments",
			     fn_names[fn]);
		if (a->n == 1)
			for (size_t i = 0; i < a->pos[0].u.d->n; i++)
				dict_set(r, d.u.d, a->pos[0].u.d->k[i]->s,
					 a->pos[0].u.d->k[i]->n,
					 a->pos[0].u.d->v[i]);
		for (size_t i = 0; i < a->nkw; i++)
			dict_set(r, d.u.d, a->kwn[i], strlen(a->kwn[i]),
				 a->kw[i]);
		if (fn == FN_NAMESPACE)
			d.flags = F_NS;
		return d;
	}
	case FN_RAISE: {
		const struct val *m = arg(a, 0, "message");
		struct str *s = m ? str_of(r, m) : new_str(r, "", 0);
		r->rc = ed_err(r->err, r->errlen, ED_EINVAL, "%s", s->s);
		longjmp(r->jb, 1);
	}
	case FN_STRFTIME: {
		const struct val *fmt = arg(a, 0, "format");
		char out[256];
		time_t now = time(NULL);
		struct tm tm;
		size_t n;
		if (!fmt)
			rerr(r, ED_EINVAL, line, "strftime_now needs a format");
		localtime_r(&now, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		n = strftime(out, sizeof out,
			     want_str(r, fmt, "strftime_now", line)->s, &tm);
#pragma GCC diagnostic pop
		return mk_str(r, out, n);
	}
	}
	rerr(r, ED_EINTERNAL, line, "unknown function");
}

/* ---- strings -------------------------------------------------------- */

static size_t u8len(const struct str *s)
{
	size_t n = 0, l;

	for (size_t i = 0; i < s->n; i += l, n++)
		utf8_at(s->s + i, s->n - i, &l);
	return n;
}

static bool in_set(uint32_t c, const struct str *chars)
{
	size_t l;

	if (!chars) /* Python's str.isspace() */
		return c == ' ' || (c >= 0x09 && c <= 0x0D) ||
		       (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0 ||
		       c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
		       c == 0x2028 || c == 0x2029 || c == 0x202F ||
		       c == 0x205F || c == 0x3000;
	for (size_t i = 0; i < chars->n; i += l)
		if (utf8_at(chars->s + i, chars->n - i, &l) == c)
			return true;
	return false;
}

/* the start of the code point before s[i] */
static size_t prev_cp(const char *s, size_t i)
{
	do
		i--;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
	return i;
}

static struct val str_strip(struct rt *r, const struct str *s,
			    const struct str *chars, bool left, bool right)
{
	size_t a = 0, b = s->n, l;

	while (left && a < b && in_set(utf8_at(s->s + a, b - a, &l), chars))
		a += l;
	while (right && b > a) {
		/* not before a: invalid UTF-8 (lone continuation bytes) would
		 * walk back past the left end */
		size_t p = ED_MAX(prev_cp(s->s, b), a);
		if (!in_set(utf8_at(s->s + p, b - p, &l), chars))
			break;
		b = p;
	}
	return mk_str(r, s->s + a, b - a);
}

static struct val str_replace(struct rt *r, const struct str *s,
			      const struct str *old, const struct str *new,
			      int64_t count)
{
	struct ed_buf b;
	struct val v;
	size_t i = 0;
	int64_t done = 0;

	ed_buf_init(&b, OUTPUT_CAP);
	if (old->n == 0) { /* Python inserts between characters */
		size_t l;
		for (; i <= s->n; i += l) {
			if (count < 0 || done < count) {
				if (ed_buf_append(&b, new->s, new->n))
					goto big;
				done++;
			}
			if (i == s->n)
				break;
			utf8_at(s->s + i, s->n - i, &l);
			if (ed_buf_append(&b, s->s + i, l))
				goto big;
		}
	} else {
		while (i < s->n) {
			if ((count < 0 || done < count) && s->n - i >= old->n &&
			    memcmp(s->s + i, old->s, old->n) == 0) {
				if (ed_buf_append(&b, new->s, new->n))
					goto big;
				i += old->n;
				done++;
			} else {
				if (ed_buf_putc(&b, s->s[i]))
					goto big;
				i++;
			}
		}
	}
	v = mk_str(r, b.data ? b.data : "", b.len);
	ed_buf_release(&b);
	return v;
big:
	ed_buf_release(&b);
	rerr(r, ED_ETOOBIG, 0, "chat template: a string grew too large");
}

static struct val str_split(struct rt *r, const struct str *s,
			    const struct val *sep, int64_t maxsplit, int line)
{
	struct val out = mk_list(r, 0);
	size_t i = 0, l;
	int64_t done = 0;

	if (!sep || sep->k == V_NONE) { /* runs of whitespace */
		for (;;) {
			size_t b;
			while (i < s->n &&
			       in_set(utf8_at(s->s + i, s->n - i, &l), NULL))
				i += l;
			if (i >= s->n)
				break;
			if (maxsplit >= 0 && done >= maxsplit) {
				list_push(r, out.u.l,
					  mk_str(r, s->s + i, s->n - i));
				break;
			}
			b = i;
			while (i < s->n &&
			       !in_set(utf8_at(s->s + i, s->n - i, &l), NULL))
				i += l;
			list_push(r, out.u.l, mk_str(r, s->s + b, i - b));
			done++;
		}
		return out;
	}
	{
		struct str *p = want_str(r, sep, "split", line);
		size_t b = 0;
		if (!p->n)
			rerr(r, ED_EINVAL, line, "empty separator");
		while (i + p->n <= s->n) {
			if ((maxsplit < 0 || done < maxsplit) &&
			    memcmp(s->s + i, p->s, p->n) == 0) {
				list_push(r, out.u.l,
					  mk_str(r, s->s + b, i - b));
				i += p->n;
				b = i;
				done++;
			} else {
				i++;
			}
		}
		list_push(r, out.u.l, mk_str(r, s->s + b, s->n - b));
	}
	return out;
}

static struct val str_case(struct rt *r, const struct str *s, int how)
{
	struct val v = mk_str(r, s->s, s->n);
	char *p = v.u.s->s;
	bool word = false;

	/* ASCII letters; other scripts pass unchanged */
	for (size_t i = 0; i < s->n; i++) {
		char c = p[i];
		bool up = how == 'u' || (how == 't' && !word) ||
			  (how == 'c' && i == 0);
		if (c >= 'a' && c <= 'z' && up)
			p[i] = (char)(c - 32);
		else if (c >= 'A' && c <= 'Z' && !up && how != 'u')
			p[i] = (char)(c + 32);
		word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		       ((unsigned char)c >= 0x80);
	}
	return v;
}

static bool str_starts(const struct str *s, const struct str *p, bool end)
{
	if (p->n > s->n)
		return false;
	return memcmp(s->s + (end ? s->n - p->n : 0), p->s, p->n) == 0;
}

static bool contains(struct rt *r, const struct val *hay,
		     const struct val *needle, int line)
{
	switch (hay->k) {
	case V_STR: {
		struct str *n = want_str(r, needle, "in", line);
		if (!n->n)
			return true;
		for (size_t i = 0; i + n->n <= hay->u.s->n; i++)
			if (memcmp(hay->u.s->s + i, n->s, n->n) == 0)
				return true;
		return false;
	}
	case V_LIST:
		for (size_t i = 0; i < hay->u.l->n; i++)
			if (equal(&hay->u.l->a[i], needle))
				return true;
		return false;
	case V_DICT:
		return needle->k == V_STR &&
		       dict_find(hay->u.d, needle->u.s->s, needle->u.s->n);
	case V_UNDEF: return false;
	default:
		rerr(r, ED_EINVAL, line,
		     "argument of type '%s' is not iterable", type_name(hay));
	}
}

/* the items a for loop or a filter walks: list, string chars, dict keys */
static struct val iter_list(struct rt *r, const struct val *v, int line)
{
	struct val out;
	size_t l;

	switch (v->k) {
	case V_LIST: return *v;
	case V_UNDEF: return mk_list(r, 0);
	case V_STR:
		out = mk_list(r, 0);
		for (size_t i = 0; i < v->u.s->n; i += l) {
			utf8_at(v->u.s->s + i, v->u.s->n - i, &l);
			list_push(r, out.u.l, mk_str(r, v->u.s->s + i, l));
		}
		return out;
	case V_DICT:
		if (!(v->flags & (F_NS | F_LOOP))) {
			out = mk_list(r, v->u.d->n);
			for (size_t i = 0; i < v->u.d->n; i++) {
				struct val k = {
				    V_STR, 0, {.s = v->u.d->k[i]}, NULL};
				list_push(r, out.u.l, k);
			}
			return out;
		}
		/* fall through */
	default:
		rerr(r, ED_EINVAL, line, "'%s' object is not iterable",
		     type_name(v));
	}
}

static struct val dict_items(struct rt *r, const struct val *d)
{
	struct val out = mk_list(r, d->u.d->n);

	for (size_t i = 0; i < d->u.d->n; i++) {
		struct val t = mk_list(r, 2),
			   k = {V_STR, 0, {.s = d->u.d->k[i]}, NULL};
		t.flags = F_TUPLE;
		list_push(r, t.u.l, k);
		list_push(r, t.u.l, d->u.d->v[i]);
		list_push(r, out.u.l, t);
	}
	return out;
}

/* ---- methods -------------------------------------------------------- */

static struct val call_method(struct rt *r, const struct val *obj,
			      const char *name, const struct args *a, int line)
{
	if (obj->k == V_UNDEF)
		undef_used(r, obj, line);
	if (obj->k == V_STR) {
		const struct str *s = obj->u.s;
		const struct val *x = arg(a, 0, NULL);
		if (!strcmp(name, "strip") || !strcmp(name, "lstrip") ||
		    !strcmp(name, "rstrip")) {
			const struct str *chars =
			    x && x->k != V_NONE ? want_str(r, x, name, line)
						: NULL;
			check_args(r, a, 1, NULL, name, line);
			return str_strip(r, s, chars, name[0] != 'r',
					 name[0] != 'l');
		}
		if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
			bool end = name[0] == 'e';
			check_args(r, a, 1, NULL, name, line);
			if (!x)
				rerr(r, ED_EINVAL, line, "%s needs an argument",
				     name);
			if (x->k == V_LIST) {
				for (size_t i = 0; i < x->u.l->n; i++)
					if (str_starts(s,
						       want_str(r,
								&x->u.l->a[i],
								name, line),
						       end))
						return mk_bool(true);
				return mk_bool(false);
			}
			return mk_bool(
			    str_starts(s, want_str(r, x, name, line), end));
		}
		if (!strcmp(name, "split")) {
			static const char *const kn[] = {"sep", "maxsplit",
							 NULL};
			const struct val *ms = arg(a, 1, "maxsplit");
			check_args(r, a, 2, kn, name, line);
			return str_split(r, s, arg(a, 0, "sep"),
					 ms ? want_int(r, ms, name, line) : -1,
					 line);
		}
		if (!strcmp(name, "upper") || !strcmp(name, "lower") ||
		    !strcmp(name, "title") || !strcmp(name, "capitalize")) {
			check_args(r, a, 0, NULL, name, line);
			return str_case(r, s,
					name[0] == 'u'	 ? 'u'
					: name[0] == 'l' ? 'l'
					: name[0] == 't' ? 't'
							 : 'c');
		}
		if (!strcmp(name, "replace")) {
			const struct val *c = arg(a, 2, NULL);
			check_args(r, a, 3, NULL, name, line);
			if (a->n < 2)
				rerr(r, ED_EINVAL, line,
				     "replace needs 2 arguments");
			return str_replace(r, s,
					   want_str(r, &a->pos[0], name, line),
					   want_str(r, &a->pos[1], name, line),
					   c ? want_int(r, c, name, line) : -1);
		}
		if (!strcmp(name, "find") || !strcmp(name, "count")) {
			struct str *n;
			int64_t cnt = 0;
			check_args(r, a, 1, NULL, name, line);
			if (!x)
				rerr(r, ED_EINVAL, line, "%s needs an argument",
				     name);
			n = want_str(r, x, name, line);
			for (size_t i = 0; i + n->n <= s->n; i++)
				if (memcmp(s->s + i, n->s, n->n) == 0) {
					if (name[0] == 'f') {
						/* index in code points */
						int64_t cp = 0;
						size_t l;
						for (size_t k = 0; k < i;
						     k += l, cp++)
							utf8_at(s->s + k,
								s->n - k, &l);
						return mk_int(cp);
					}
					cnt++;
					if (n->n)
						i += n->n - 1;
				}
			return mk_int(name[0] == 'f' ? -1 : cnt);
		}
		if (!strcmp(name, "join")) {
			struct val items;
			struct ed_buf b;
			struct val v;
			check_args(r, a, 1, NULL, name, line);
			if (!x)
				rerr(r, ED_EINVAL, line,
				     "join needs an argument");
			items = iter_list(r, x, line);
			ed_buf_init(&b, OUTPUT_CAP);
			for (size_t i = 0; i < items.u.l->n; i++) {
				struct str *e;
				if (items.u.l->a[i].k != V_STR) {
					ed_buf_release(&b);
					rerr(r, ED_EINVAL, line,
					     "sequence item %zu: expected str "
					     "instance, %s found",
					     i, type_name(&items.u.l->a[i]));
				}
				e = items.u.l->a[i].u.s;
				if ((i && ed_buf_append(&b, s->s, s->n)) ||
				    ed_buf_append(&b, e->s, e->n)) {
					ed_buf_release(&b);
					rerr(r, ED_ETOOBIG, line,
					     "join: too large");
				}
			}
			v = mk_str(r, b.data ? b.data : "", b.len);
			ed_buf_release(&b);
			return v;
		}
	} else if (obj->k == V_DICT && !(obj->flags & F_NS)) {
		if (obj->flags & F_LOOP) {
			if (!strcmp(name, "cycle")) {
				const struct val *i0 =
				    dict_find(obj->u.d, "index0", 6);
				if (!a->n)
					rerr(r, ED_EINVAL, line,
					     "no items for cycling given");
				return a->pos[i0->u.i % (int64_t)a->n];
			}
		} else if (!strcmp(name, "get")) {
			const struct val *k = arg(a, 0, NULL),
					 *d = arg(a, 1, NULL);
			const struct val *v;
			check_args(r, a, 2, NULL, name, line);
			if (!k)
				rerr(r, ED_EINVAL, line, "get needs a key");
			v = k->k == V_STR
				? dict_find(obj->u.d, k->u.s->s, k->u.s->n)
				: NULL;
			return v ? *v : d ? *d : mk_none();
		} else if (!strcmp(name, "items")) {
			check_args(r, a, 0, NULL, name, line);
			return dict_items(r, obj);
		} else if (!strcmp(name, "keys")) {
			check_args(r, a, 0, NULL, name, line);
			return iter_list(r, obj, line);
		} else if (!strcmp(name, "values")) {
			struct val out = mk_list(r, obj->u.d->n);
			check_args(r, a, 0, NULL, name, line);
			for (size_t i = 0; i < obj->u.d->n; i++)
				list_push(r, out.u.l, obj->u.d->v[i]);
			return out;
		}
	}
	{
		static const char *const unsafe[] = {
		    "append",  "extend",     "insert",	"pop",
		    "remove",  "clear",	     "update",	"sort",
		    "reverse", "setdefault", "popitem", NULL};
		for (size_t i = 0; unsafe[i]; i++)
			if (!strcmp(name, unsafe[i]) &&
			    (obj->k == V_LIST || obj->k == V_DICT))
				rerr(r, ED_EINVAL, line,
				     "access to attribute '%s' of '%s' "
				     "object is unsafe.",
				     name, type_name(obj));
	}
	rerr(r, ED_EINVAL, line, "'%s' object has no method '%s'",
	     type_name(obj), name);
}

/* ---- tests and filters ---------------------------------------------- */

static bool run_test(struct rt *r, const char *name, const struct val *v,
		     const struct args *a, int line)
{
	const struct val *x = arg(a, 0, NULL);

	if (!strcmp(name, "defined"))
		return v->k != V_UNDEF;
	if (!strcmp(name, "undefined"))
		return v->k == V_UNDEF;
	if (!strcmp(name, "none"))
		return v->k == V_NONE;
	if (!strcmp(name, "boolean"))
		return v->k == V_BOOL;
	if (!strcmp(name, "true"))
		return v->k == V_BOOL && v->u.b;
	if (!strcmp(name, "false"))
		return v->k == V_BOOL && !v->u.b;
	if (!strcmp(name, "integer"))
		return v->k == V_INT;
	if (!strcmp(name, "float"))
		return v->k == V_FLOAT;
	if (!strcmp(name, "number"))
		return is_num(v);
	if (!strcmp(name, "string"))
		return v->k == V_STR;
	if (!strcmp(name, "mapping"))
		return v->k == V_DICT && !(v->flags & (F_NS | F_LOOP));
	if (!strcmp(name, "iterable"))
		return v->k == V_STR || v->k == V_LIST || v->k == V_UNDEF ||
		       (v->k == V_DICT && !(v->flags & (F_NS | F_LOOP)));
	if (!strcmp(name, "sequence"))
		return v->k == V_STR || v->k == V_LIST ||
		       (v->k == V_DICT && !(v->flags & (F_NS | F_LOOP)));
	if (!strcmp(name, "callable"))
		return v->k == V_MACRO || v->k == V_FUNC;
	if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
		struct val c;
		if (v->k != V_STR)
			rerr(r, ED_EINVAL, line,
			     "'%s' object has no "
			     "attribute '%s'",
			     type_name(v), name);
		c = str_case(r, v->u.s, name[0]);
		return equal(&c, v);
	}
	if (!strcmp(name, "odd") || !strcmp(name, "even")) {
		int64_t i = want_int(r, v, name, line);
		return (i % 2 != 0) == (name[0] == 'o');
	}
	if (!strcmp(name, "divisibleby")) {
		int64_t d;
		if (!x)
			rerr(r, ED_EINVAL, line, "divisibleby needs a number");
		d = want_int(r, x, name, line);
		if (!d)
			rerr(r, ED_EINVAL, line, "integer modulo by zero");
		return want_int(r, v, name, line) % d == 0;
	}
	if (x) {
		if (!strcmp(name, "eq") || !strcmp(name, "equalto") ||
		    !strcmp(name, "=="))
			return equal(v, x);
		if (!strcmp(name, "ne") || !strcmp(name, "!="))
			return !equal(v, x);
		if (!strcmp(name, "sameas"))
			return v->k == x->k &&
			       (v->k == V_NONE || v->k == V_UNDEF ||
				(v->k == V_BOOL && v->u.b == x->u.b) ||
				(v->k == V_LIST && v->u.l == x->u.l) ||
				(v->k == V_DICT && v->u.d == x->u.d));
		if (!strcmp(name, "in"))
			return contains(r, x, v, line);
		if (!strcmp(name, "lt") || !strcmp(name, "lessthan") ||
		    !strcmp(name, "<"))
			return order(r, v, x, "<", line) < 0;
		if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") ||
		    !strcmp(name, ">"))
			return order(r, v, x, ">", line) > 0;
		if (!strcmp(name, "le") || !strcmp(name, "<="))
			return order(r, v, x, "<=", line) <= 0;
		if (!strcmp(name, "ge") || !strcmp(name, ">="))
			return order(r, v, x, ">=", line) >= 0;
	}
	rerr(r, ED_EINVAL, line, "no test named '%s'", name);
}

static struct val apply_filter(struct rt *r, const char *name,
			       const struct val *v, const struct args *a,
			       int line);

/* the attribute path "a.b" of an item, as jinja2's make_attrgetter */
static struct val attr_path(struct rt *r, const struct val *item,
			    const struct str *path, int line)
{
	struct val cur = *item;
	size_t b = 0;

	for (size_t i = 0; i <= path->n; i++)
		if (i == path->n || path->s[i] == '.') {
			bool digits = i > b;
			for (size_t k = b; k < i; k++)
				digits &= is_digit(path->s[k]);
			if (digits && cur.k == V_LIST) {
				struct val k =
				    mk_int(strtoll(path->s + b, NULL, 10));
				cur = get_item(r, &cur, &k, line);
			} else {
				cur =
				    get_attr(r, &cur, path->s + b, i - b, line);
			}
			b = i + 1;
		}
	return cur;
}

static struct val do_select(struct rt *r, const struct val *v,
			    const struct args *a, bool attr, bool keep,
			    int line)
{
	struct val items = iter_list(r, v, line), out = mk_list(r, 0);
	struct args ta = {0};
	const char *test = NULL;
	const struct str *path = NULL;
	size_t k = 0;

	if (attr) {
		if (!a->n)
			rerr(r, ED_EINVAL, line,
			     "selectattr needs an attribute");
		path = want_str(r, &a->pos[0], "selectattr", line);
		k = 1;
	}
	if (a->n > k)
		test = want_str(r, &a->pos[k], "select", line)->s;
	ta.pos = a->n > k + 1 ? a->pos + k + 1 : NULL;
	ta.n = a->n > k + 1 ? a->n - k - 1 : 0;
	for (size_t i = 0; i < items.u.l->n; i++) {
		struct val x = attr ? attr_path(r, &items.u.l->a[i], path, line)
				    : items.u.l->a[i];
		bool t = test ? run_test(r, test, &x, &ta, line) : truthy(&x);
		if (t == keep)
			list_push(r, out.u.l, items.u.l->a[i]);
	}
	return out;
}

static struct val filter_join(struct rt *r, const struct val *v,
			      const struct args *a, int line)
{
	static const char *const kn[] = {"d", "attribute", NULL};
	struct val items = iter_list(r, v, line);
	const struct val *sep = arg(a, 0, "d"), *at = arg(a, 1, "attribute");
	struct str *s = sep ? str_of(r, sep) : new_str(r, "", 0), **parts, *o;
	size_t n = items.u.l->n, len = 0, at_ = 0;

	check_args(r, a, 2, kn, "join", line);
	/* the parts first (any may raise: nothing of ours to free then),
	 * then one string of their length */
	parts = ralloc(r, (n ? n : 1) * sizeof *parts);
	for (size_t i = 0; i < n; i++) {
		struct val x =
		    at ? attr_path(r, &items.u.l->a[i],
				   want_str(r, at, "join", line), line)
		       : items.u.l->a[i];
		parts[i] = str_of(r, &x);
		len += parts[i]->n + (i ? s->n : 0);
		if (len > OUTPUT_CAP)
			rerr(r, ED_ETOOBIG, line, "join: too large");
	}
	o = ralloc(r, sizeof *o + len + 1);
	for (size_t i = 0; i < n; i++) {
		if (i) {
			memcpy(o->s + at_, s->s, s->n);
			at_ += s->n;
		}
		memcpy(o->s + at_, parts[i]->s, parts[i]->n);
		at_ += parts[i]->n;
	}
	o->n = len;
	o->s[len] = '\0';
	return (struct val){V_STR, 0, {.s = o}, NULL};
}

static struct val filter_tojson(struct rt *r, const struct val *v,
				const struct args *a, int line)
{
	static const char *const kn[] = {"ensure_ascii", "indent", "separators",
					 "sort_keys", NULL};
	const struct val *asc = arg(a, 0, "ensure_ascii"),
			 *ind = arg(a, 1, "indent"),
			 *sep = arg(a, 2, "separators"),
			 *srt = arg(a, 3, "sort_keys");
	struct jsonfmt f = {-1, ", ", ": ", false, false};
	struct ed_buf b;
	struct val out;

	check_args(r, a, 4, kn, "tojson", line);
	if (ind && ind->k != V_NONE) {
		f.indent = (int)want_int(r, ind, "tojson indent", line);
		if (f.indent < 0 || f.indent > 64)
			rerr(r, ED_EINVAL, line, "tojson: bad indent");
		f.item_sep = ",";
	}
	if (asc)
		f.ascii = truthy(asc);
	if (srt)
		f.sort = truthy(srt);
	if (sep && sep->k != V_NONE) {
		if (sep->k != V_LIST || sep->u.l->n != 2)
			rerr(r, ED_EINVAL, line,
			     "tojson: separators is a pair of strings");
		f.item_sep = want_str(r, &sep->u.l->a[0], "tojson", line)->s;
		f.key_sep = want_str(r, &sep->u.l->a[1], "tojson", line)->s;
	}
	ed_buf_init(&b, OUTPUT_CAP);
	{
		jmp_buf saved;
		memcpy(saved, r->jb, sizeof saved);
		if (setjmp(r->jb)) {
			ed_buf_release(&b);
			memcpy(r->jb, saved, sizeof saved);
			longjmp(r->jb, 1);
		}
		to_json(r, &b, v, &f, 0, line);
		memcpy(r->jb, saved, sizeof saved);
	}
	out = mk_str(r, b.data ? b.data : "", b.len);
	ed_buf_release(&b);
	return out;
}

static struct val apply_filter(struct rt *r, const char *name,
			       const struct val *v, const struct args *a,
			       int line)
{
	const struct val *x = arg(a, 0, NULL);

	if (!strcmp(name, "tojson"))
		return filter_tojson(r, v, a, line);
	if (!strcmp(name, "safe") || !strcmp(name, "string")) {
		struct val s = {V_STR, 0, {.s = str_of(r, v)}, NULL};
		return s;
	}
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		const struct val *b = arg(a, 1, "boolean");
		struct val dv = x ? *x : mk_str(r, "", 0);
		if (v->k == V_UNDEF || (b && truthy(b) && !truthy(v)))
			return dv;
		return *v;
	}
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		switch (v->k) {
		case V_STR: return mk_int((int64_t)u8len(v->u.s));
		case V_LIST: return mk_int((int64_t)v->u.l->n);
		case V_DICT: return mk_int((int64_t)v->u.d->n);
		case V_UNDEF: return mk_int(0);
		default:
			rerr(r, ED_EINVAL, line,
			     "object of type '%s' has no len()", type_name(v));
		}
	}
	if (!strcmp(name, "trim")) {
		struct str *s = str_of(r, v);
		return str_strip(r, s,
				 x && x->k != V_NONE ? str_of(r, x) : NULL,
				 true, true);
	}
	if (!strcmp(name, "upper") || !strcmp(name, "lower") ||
	    !strcmp(name, "title") || !strcmp(name, "capitalize"))
		return str_case(r, str_of(r, v),
				name[0] == 'u'	 ? 'u'
				: name[0] == 'l' ? 'l'
				: name[0] == 't' ? 't'
						 : 'c');
	if (!strcmp(name, "replace")) {
		const struct val *c = arg(a, 2, "count");
		if (a->n < 2)
			rerr(r, ED_EINVAL, line, "replace needs 2 arguments");
		return str_replace(
		    r, str_of(r, v), str_of(r, &a->pos[0]),
		    str_of(r, &a->pos[1]),
		    c && c->k != V_NONE ? want_int(r, c, "replace", line) : -1);
	}
	if (!strcmp(name, "join"))
		return filter_join(r, v, a, line);
	if (!strcmp(name, "items")) {
		if (v->k == V_UNDEF)
			return mk_list(r, 0);
		if (v->k != V_DICT || (v->flags & (F_NS | F_LOOP)))
			rerr(r, ED_EINVAL, line,
			     "can only get item pairs from a mapping.");
		return dict_items(r, v);
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		struct val items = iter_list(r, v, line);
		if (!items.u.l->n)
			return mk_undef("No first item, sequence was empty.");
		return items.u.l->a[name[0] == 'f' ? 0 : items.u.l->n - 1];
	}
	if (!strcmp(name, "list")) {
		struct val items = iter_list(r, v, line), out;
		out = mk_list(r, items.u.l->n);
		for (size_t i = 0; i < items.u.l->n; i++)
			list_push(r, out.u.l, items.u.l->a[i]);
		return out;
	}
	if (!strcmp(name, "reverse")) {
		struct val items = iter_list(r, v, line), out;
		out = mk_list(r, items.u.l->n);
		for (size_t i = items.u.l->n; i-- > 0;)
			list_push(r, out.u.l, items.u.l->a[i]);
		if (v->k == V_STR) {
			struct val e = mk_str(r, "", 0);
			struct args ja = {&e, 1, NULL, NULL, 0};
			return filter_join(r, &out, &ja, line);
		}
		return out;
	}
	if (!strcmp(name, "int")) {
		const struct val *d = arg(a, 0, "default");
		if (v->k == V_INT || v->k == V_BOOL)
			return mk_int(num_i(v));
		if (v->k == V_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9e18)
			return mk_int((int64_t)v->u.f);
		if (v->k == V_STR) {
			struct val t = str_strip(r, v->u.s, NULL, true, true);
			char *end;
			long long i;
			errno = 0;
			i = strtoll(t.u.s->s, &end, 10);
			if (t.u.s->n && !*end && !errno)
				return mk_int(i);
			{
				double fl = strtod(t.u.s->s, &end);
				if (t.u.s->n && !*end && isfinite(fl) &&
				    fabs(fl) < 9e18)
					return mk_int((int64_t)fl);
			}
		}
		return d ? *d : mk_int(0);
	}
	if (!strcmp(name, "float")) {
		const struct val *d = arg(a, 0, "default");
		if (is_num(v))
			return mk_float(num_f(v));
		if (v->k == V_STR) {
			struct val t = str_strip(r, v->u.s, NULL, true, true);
			char *end;
			double fl = strtod(t.u.s->s, &end);
			if (t.u.s->n && !*end)
				return mk_float(fl);
		}
		return d ? *d : mk_float(0);
	}
	if (!strcmp(name, "abs")) {
		if (v->k == V_FLOAT)
			return mk_float(fabs(v->u.f));
		return mk_int(llabs((long long)want_int(r, v, "abs", line)));
	}
	if (!strcmp(name, "round")) {
		const struct val *p = arg(a, 0, "precision");
		int64_t pr = p ? want_int(r, p, "round", line) : 0;
		double m = pow(10, (double)pr), val = 0;
		/* the number read only once it is one (not a union's bytes) */
		if (!is_num(v))
			rerr(r, ED_EINVAL, line, "round needs a number");
		else
			val = num_f(v);
		return mk_float(rint(val * m) / m); /* halves to even */
	}
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
		return do_select(r, v, a, true, name[0] == 's', line);
	if (!strcmp(name, "select") || !strcmp(name, "reject"))
		return do_select(r, v, a, false, name[0] == 's', line);
	if (!strcmp(name, "map")) {
		struct val items = iter_list(r, v, line), out = mk_list(r, 0);
		const struct val *at = arg(a, 99, "attribute"),
				 *df = arg(a, 99, "default");
		struct args fa = {0};
		if (!at && !a->n)
			rerr(r, ED_EINVAL, line,
			     "map needs a filter name or attribute=");
		if (!at) {
			fa.pos = a->pos + 1;
			fa.n = a->n - 1;
		}
		for (size_t i = 0; i < items.u.l->n; i++) {
			struct val y;
			if (at) {
				y = attr_path(r, &items.u.l->a[i],
					      want_str(r, at, "map", line),
					      line);
				if (y.k == V_UNDEF && df)
					y = *df;
			} else {
				y = apply_filter(
				    r, want_str(r, &a->pos[0], "map", line)->s,
				    &items.u.l->a[i], &fa, line);
			}
			list_push(r, out.u.l, y);
		}
		return out;
	}
	if (!strcmp(name, "unique")) {
		struct val items = iter_list(r, v, line), out = mk_list(r, 0);
		for (size_t i = 0; i < items.u.l->n; i++) {
			bool seen = false;
			for (size_t k = 0; k < out.u.l->n && !seen; k++)
				seen = equal(&out.u.l->a[k], &items.u.l->a[i]);
			if (!seen)
				list_push(r, out.u.l, items.u.l->a[i]);
		}
		return out;
	}
	if (!strcmp(name, "sum")) {
		struct val items = iter_list(r, v, line), s = mk_int(0);
		for (size_t i = 0; i < items.u.l->n; i++) {
			const struct val *e = &items.u.l->a[i];
			if (!is_num(e))
				rerr(r, ED_EINVAL, line, "sum: not a number");
			if (s.k == V_INT && e->k != V_FLOAT)
				s.u.i += num_i(e);
			else
				s = mk_float(num_f(&s) + num_f(e));
		}
		return s;
	}
	if (!strcmp(name, "min") || !strcmp(name, "max")) {
		struct val items = iter_list(r, v, line);
		size_t best = 0;
		if (!items.u.l->n)
			return mk_undef("No aggregated item, sequence was "
					"empty.");
		for (size_t i = 1; i < items.u.l->n; i++) {
			int c = order(r, &items.u.l->a[i], &items.u.l->a[best],
				      name, line);
			if (name[1] == 'i' ? c < 0 : c > 0)
				best = i;
		}
		return items.u.l->a[best];
	}
	if (!strcmp(name, "indent")) {
		const struct val *w = arg(a, 0, "width"),
				 *first = arg(a, 1, "first"),
				 *blank = arg(a, 2, "blank");
		struct str *s = str_of(r, v), *pad;
		struct ed_buf b;
		struct val out;
		bool at_start = true;
		if (w && w->k == V_STR)
			pad = w->u.s;
		else {
			int64_t n = w ? want_int(r, w, "indent", line) : 4;
			char sp[65];
			if (n < 0 || n > 64)
				rerr(r, ED_EINVAL, line, "indent: bad width");
			memset(sp, ' ', (size_t)n);
			pad = new_str(r, sp, (size_t)n);
		}
		ed_buf_init(&b, OUTPUT_CAP);
		for (size_t i = 0; i < s->n; i++) {
			bool line_blank = s->s[i] == '\n';
			if (at_start && (i > 0 || (first && truthy(first))) &&
			    (!line_blank || (blank && truthy(blank))))
				ed_buf_append(&b, pad->s, pad->n);
			if (ed_buf_putc(&b, s->s[i])) {
				ed_buf_release(&b);
				rerr(r, ED_ETOOBIG, line, "indent: too large");
			}
			at_start = s->s[i] == '\n';
		}
		out = mk_str(r, b.data ? b.data : "", b.len);
		ed_buf_release(&b);
		return out;
	}
	if (!strcmp(name, "e") || !strcmp(name, "escape")) {
		struct str *s = str_of(r, v);
		struct ed_buf b;
		struct val out;
		ed_buf_init(&b, OUTPUT_CAP);
		for (size_t i = 0; i < s->n; i++) {
			const char *e = s->s[i] == '&'	  ? "&amp;"
					: s->s[i] == '<'  ? "&lt;"
					: s->s[i] == '>'  ? "&gt;"
					: s->s[i] == '"'  ? "&#34;"
					: s->s[i] == '\'' ? "&#39;"
							  : NULL;
			if (e ? ed_buf_puts(&b, e) : ed_buf_putc(&b, s->s[i])) {
				ed_buf_release(&b);
				rerr(r, ED_ETOOBIG, line, "escape: too large");
			}
		}
		out = mk_str(r, b.data ? b.data : "", b.len);
		ed_buf_release(&b);
		return out;
	}
	if (!strcmp(name, "attr")) {
		if (!x)
			rerr(r, ED_EINVAL, line, "attr needs a name");
		struct str *n = want_str(r, x, "attr", line);
		return get_attr(r, v, n->s, n->n, line);
	}
	rerr(r, ED_EINVAL, line, "no filter named '%s'", name);
}

/* ---- expressions ---------------------------------------------------- */

static struct val arith(struct rt *r, const char *op, const struct val *a,
			const struct val *b, int line)
{
	if (op[0] == '~') {
		struct str *x = str_of(r, a), *y = str_of(r, b);
		struct str *s = ralloc(r, sizeof *s + x->n + y->n + 1);
		struct val v = {V_STR, 0, {.s = s}, NULL};
		if (x->n + y->n > OUTPUT_CAP)
			rerr(r, ED_ETOOBIG, line, "a string grew too large");
		s->n = x->n + y->n;
		memcpy(s->s, x->s, x->n);
		memcpy(s->s + x->n, y->s, y->n);
		s->s[s->n] = '\0';
		return v;
	}
	if (a->k == V_UNDEF)
		undef_used(r, a, line);
	if (b->k == V_UNDEF)
		undef_used(r, b, line);
	if (op[0] == '+' && a->k == V_STR && b->k == V_STR) {
		struct val x = {V_STR, 0, {.s = str_of(r, a)}, NULL};
		return arith(r, "~", &x, b, line);
	}
	if (op[0] == '+' && a->k == V_LIST && b->k == V_LIST &&
	    (a->flags & F_TUPLE) == (b->flags & F_TUPLE)) {
		struct val out = mk_list(r, a->u.l->n + b->u.l->n);
		out.flags = a->flags & F_TUPLE;
		for (size_t i = 0; i < a->u.l->n; i++)
			list_push(r, out.u.l, a->u.l->a[i]);
		for (size_t i = 0; i < b->u.l->n; i++)
			list_push(r, out.u.l, b->u.l->a[i]);
		return out;
	}
	if (op[0] == '*' && !op[1] &&
	    ((a->k == V_STR || a->k == V_LIST) && (b->k == V_INT))) {
		int64_t n = b->u.i < 0 ? 0 : b->u.i;
		if (a->k == V_STR) {
			struct val out = mk_str(r, "", 0);
			if ((uint64_t)n * a->u.s->n > OUTPUT_CAP)
				rerr(r, ED_ETOOBIG, line,
				     "a string grew too large");
			for (int64_t i = 0; i < n; i++)
				out = arith(r, "~", &out, a, line);
			return out;
		} else {
			struct val out = mk_list(r, 0);
			if ((uint64_t)n * a->u.l->n > 1000000)
				rerr(r, ED_ETOOBIG, line,
				     "a list grew too large");
			out.flags = a->flags & F_TUPLE;
			for (int64_t i = 0; i < n; i++)
				for (size_t k = 0; k < a->u.l->n; k++)
					list_push(r, out.u.l, a->u.l->a[k]);
			return out;
		}
	}
	if (!is_num(a) || !is_num(b))
		rerr(r, ED_EINVAL, line,
		     "unsupported operand type(s) for %s: '%s' and '%s'", op,
		     type_name(a), type_name(b));
	if (op[0] == '/' && !op[1]) {
		if (num_f(b) == 0)
			rerr(r, ED_EINVAL, line, "division by zero");
		return mk_float(num_f(a) / num_f(b));
	}
	if (a->k == V_FLOAT || b->k == V_FLOAT) {
		double x = num_f(a), y = num_f(b);
		switch (op[0]) {
		case '+': return mk_float(x + y);
		case '-': return mk_float(x - y);
		case '*': return mk_float(op[1] ? pow(x, y) : x * y);
		case '/':
			if (y == 0)
				rerr(r, ED_EINVAL, line,
				     "float floor division by zero");
			return mk_float(floor(x / y));
		case '%': {
			double m;
			if (y == 0)
				rerr(r, ED_EINVAL, line, "float modulo");
			m = fmod(x, y);
			if (m != 0 && ((m < 0) != (y < 0)))
				m += y;
			return mk_float(m);
		}
		}
	} else {
		int64_t x = num_i(a), y = num_i(b), z;
		bool ovf = false;
		switch (op[0]) {
		case '+': ovf = __builtin_add_overflow(x, y, &z); break;
		case '-': ovf = __builtin_sub_overflow(x, y, &z); break;
		case '*':
			if (op[1]) { /* ** */
				if (y < 0)
					return mk_float(
					    pow((double)x, (double)y));
				z = 1;
				for (int64_t i = 0; i < y && !ovf; i++)
					ovf = __builtin_mul_overflow(z, x, &z);
			} else {
				ovf = __builtin_mul_overflow(x, y, &z);
			}
			break;
		case '/':
		case '%':
			if (y == 0)
				rerr(r, ED_EINVAL, line,
				     "integer division or modulo by zero");
			if (x == INT64_MIN && y == -1) {
				ovf = op[0] == '/';
				z = 0;
				break;
			}
			z = op[0] == '/' ? x / y : x % y;
			if ((x % y != 0) && ((x < 0) != (y < 0)))
				z = op[0] == '/' ? z - 1 : z + y;
			break;
		default: z = 0;
		}
		if (ovf)
			rerr(r, ED_EINVAL, line, "integer overflow");
		return mk_int(z);
	}
	rerr(r, ED_EINTERNAL, line, "bad operator");
}

static struct val call_macro(struct rt *r, const struct node *m,
			     const struct args *a, int line);

static struct val eval_slice(struct rt *r, const struct node *x,
			     struct frame *f)
{
	struct val obj = eval(r, x->a, f), out;
	const struct node *parts[3] = {x->b, x->c, x->list[0]};
	int64_t v[3], n;
	bool has[3];
	struct val items;

	if (obj.k == V_UNDEF)
		undef_used(r, &obj, x->line);
	if (obj.k != V_LIST && obj.k != V_STR)
		rerr(r, ED_EINVAL, x->line, "'%s' object is not subscriptable",
		     type_name(&obj));
	items = iter_list(r, &obj, x->line);
	n = (int64_t)items.u.l->n;
	for (int i = 0; i < 3; i++) {
		struct val e;
		has[i] = parts[i] != NULL;
		if (!has[i])
			continue;
		e = eval(r, parts[i], f);
		if (e.k == V_NONE) {
			has[i] = false;
			continue;
		}
		v[i] = want_int(r, &e, "slice", x->line);
	}
	{
		int64_t st = has[2] ? v[2] : 1, lo, hi;
		if (st == 0)
			rerr(r, ED_EINVAL, x->line,
			     "slice step cannot be zero");
		if (st > 0) {
			lo = has[0] ? (v[0] < 0 ? ED_MAX(v[0] + n, 0)
						: ED_MIN(v[0], n))
				    : 0;
			hi = has[1] ? (v[1] < 0 ? ED_MAX(v[1] + n, 0)
						: ED_MIN(v[1], n))
				    : n;
		} else {
			lo = has[0] ? (v[0] < 0 ? ED_MAX(v[0] + n, -1)
						: ED_MIN(v[0], n - 1))
				    : n - 1;
			hi = has[1] ? (v[1] < 0 ? ED_MAX(v[1] + n, -1)
						: ED_MIN(v[1], n - 1))
				    : -1;
		}
		out = mk_list(r, 0);
		out.flags = obj.flags & F_TUPLE;
		for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st)
			list_push(r, out.u.l, items.u.l->a[i]);
	}
	if (obj.k == V_STR) {
		struct val e = mk_str(r, "", 0);
		struct args ja = {&e, 1, NULL, NULL, 0};
		return filter_join(r, &out, &ja, x->line);
	}
	return out;
}

static struct val eval(struct rt *r, const struct node *x, struct frame *f)
{
	switch (x->kind) {
	case E_LIT: return x->lit;
	case E_NAME: {
		const struct val *v = frame_get(f, x->name);
		char m[120];
		if (v)
			return *v;
		for (int k = 0; k < (int)(sizeof fn_names / sizeof *fn_names);
		     k++)
			if (!strcmp(x->name, fn_names[k])) {
				struct val fv = {V_FUNC, 0, {.fn = k}, NULL};
				return fv;
			}
		snprintf(m, sizeof m, "'%.60s' is undefined", x->name);
		return mk_undef(new_str(r, m, strlen(m))->s);
	}
	case E_ATTR: {
		struct val o = eval(r, x->a, f);
		return get_attr(r, &o, x->name, x->name_n, x->line);
	}
	case E_ITEM: {
		struct val o = eval(r, x->a, f), k = eval(r, x->b, f);
		return get_item(r, &o, &k, x->line);
	}
	case E_SLICE: return eval_slice(r, x, f);
	case E_CALL: {
		struct args a;
		if (x->a->kind == E_ATTR) { /* a method */
			struct val o = eval(r, x->a->a, f);
			if (o.k == V_DICT && !(o.flags & F_LOOP)) {
				const struct val *mv =
				    dict_find(o.u.d, x->a->name, x->a->name_n);
				if (mv && mv->k == V_MACRO) {
					eval_args(r, x, f, &a);
					return call_macro(r, mv->u.m, &a,
							  x->line);
				}
			}
			eval_args(r, x, f, &a);
			return call_method(r, &o, x->a->name, &a, x->line);
		}
		{
			struct val fn = eval(r, x->a, f);
			eval_args(r, x, f, &a);
			if (fn.k == V_FUNC)
				return call_fn(r, fn.u.fn, &a, x->line);
			if (fn.k == V_MACRO)
				return call_macro(r, fn.u.m, &a, x->line);
			if (fn.k == V_UNDEF)
				undef_used(r, &fn, x->line);
			rerr(r, ED_EINVAL, x->line,
			     "'%s' object is not callable", type_name(&fn));
		}
	}
	case E_FILTER: {
		struct val v = eval(r, x->a, f);
		struct args a;
		eval_args(r, x, f, &a);
		return apply_filter(r, x->name, &v, &a, x->line);
	}
	case E_TEST: {
		struct val v = eval(r, x->a, f);
		struct args a;
		bool t;
		eval_args(r, x, f, &a);
		t = run_test(r, x->name, &v, &a, x->line);
		return mk_bool(t != x->neg);
	}
	case E_BIN: {
		struct val a = eval(r, x->a, f), b = eval(r, x->b, f);
		return arith(r, x->op, &a, &b, x->line);
	}
	case E_NEG:
	case E_POS: {
		struct val a = eval(r, x->a, f);
		if (a.k == V_FLOAT)
			return mk_float(x->kind == E_NEG ? -a.u.f : a.u.f);
		if (a.k == V_INT || a.k == V_BOOL) {
			int64_t i = num_i(&a);
			if (x->kind == E_NEG && i == INT64_MIN)
				rerr(r, ED_EINVAL, x->line, "integer overflow");
			return mk_int(x->kind == E_NEG ? -i : i);
		}
		if (a.k == V_UNDEF)
			undef_used(r, &a, x->line);
		rerr(r, ED_EINVAL, x->line,
		     "bad operand type for unary %c: "
		     "'%s'",
		     x->kind == E_NEG ? '-' : '+', type_name(&a));
	}
	case E_NOT: {
		struct val a = eval(r, x->a, f);
		return mk_bool(!truthy(&a));
	}
	case E_AND: {
		struct val a = eval(r, x->a, f);
		return truthy(&a) ? eval(r, x->b, f) : a;
	}
	case E_OR: {
		struct val a = eval(r, x->a, f);
		return truthy(&a) ? a : eval(r, x->b, f);
	}
	case E_COND: {
		struct val c = eval(r, x->a, f);
		if (truthy(&c))
			return eval(r, x->b, f);
		return x->c ? eval(r, x->c, f)
			    : mk_undef("the conditional expression had no "
				       "else branch");
	}
	case E_CMP: {
		struct val a = eval(r, x->list[0], f);
		for (size_t i = 0; x->op[i]; i++) {
			struct val b = eval(r, x->list[i + 1], f);
			bool ok;
			switch (x->op[i]) {
			case 'e': ok = equal(&a, &b); break;
			case 'n': ok = !equal(&a, &b); break;
			case '<':
				ok = order(r, &a, &b, "<", x->line) < 0;
				break;
			case '>':
				ok = order(r, &a, &b, ">", x->line) > 0;
				break;
			case 'l':
				ok = order(r, &a, &b, "<=", x->line) <= 0;
				break;
			case 'g':
				ok = order(r, &a, &b, ">=", x->line) >= 0;
				break;
			case 'i': ok = contains(r, &b, &a, x->line); break;
			default: ok = !contains(r, &b, &a, x->line);
			}
			if (!ok)
				return mk_bool(false);
			a = b;
		}
		return mk_bool(true);
	}
	case E_LIST:
	case E_TUPLE: {
		struct val out = mk_list(r, x->n);
		if (x->kind == E_TUPLE)
			out.flags = F_TUPLE;
		for (size_t i = 0; i < x->n; i++)
			list_push(r, out.u.l, eval(r, x->list[i], f));
		return out;
	}
	case E_DICT: {
		struct val out = mk_dict(r);
		for (size_t i = 0; i < x->n; i++) {
			struct val k = eval(r, x->list[i], f);
			if (k.k != V_STR)
				rerr(r, ED_EINVAL, x->line,
				     "dictionary keys must be strings here");
			dict_set(r, out.u.d, k.u.s->s, k.u.s->n,
				 eval(r, x->kw[i], f));
		}
		return out;
	}
	}
	rerr(r, ED_EINTERNAL, x->line, "bad expression node");
}

/* ---- statements ----------------------------------------------------- */

static enum flow exec(struct rt *r, const struct node *x, struct frame *f,
		      struct ed_buf *out);

static enum flow exec_body(struct rt *r, const struct node *b, struct frame *f,
			   struct ed_buf *out)
{
	for (size_t i = 0; i < b->n; i++) {
		enum flow fl = exec(r, b->list[i], f, out);
		if (fl != FL_NONE)
			return fl;
	}
	return FL_NONE;
}

static struct val loop_get(struct rt *r, const struct val *lp, const char *k,
			   size_t n)
{
	const struct val *v = dict_find(lp->u.d, k, n);

	if (v)
		return *v;
	return mk_undef(undef_msg(r, lp, k, n, true));
}

static void assign(struct rt *r, const struct node *x, struct frame *f,
		   const struct val *v)
{
	if (x->nnames == 1) {
		frame_set(r, f, x->names[0], *v);
		return;
	}
	if (v->k != V_LIST && v->k != V_STR && v->k != V_DICT)
		rerr(r, ED_EINVAL, x->line, "cannot unpack '%s'", type_name(v));
	{
		struct val items = iter_list(r, v, x->line);
		if (items.u.l->n != x->nnames)
			rerr(r, ED_EINVAL, x->line,
			     "expected %zu values to unpack, got %zu",
			     x->nnames, items.u.l->n);
		for (size_t i = 0; i < x->nnames; i++)
			frame_set(r, f, x->names[i], items.u.l->a[i]);
	}
}

static enum flow exec_for(struct rt *r, const struct node *x, struct frame *f,
			  struct ed_buf *out)
{
	struct val seq = eval(r, x->a, f), items;
	struct val *keep;
	size_t n = 0;

	items = iter_list(r, &seq, x->line);
	keep = ralloc(r, (items.u.l->n ? items.u.l->n : 1) * sizeof *keep);
	if (x->nkw) { /* for ... if cond: filter first (loop.* counts) */
		for (size_t i = 0; i < items.u.l->n; i++) {
			struct frame *tf = new_frame(r, f);
			struct val c;
			assign(r, x, tf, &items.u.l->a[i]);
			c = eval(r, x->kw[0], tf);
			if (truthy(&c))
				keep[n++] = items.u.l->a[i];
		}
	} else {
		if (items.u.l->n)
			memcpy(keep, items.u.l->a, items.u.l->n * sizeof *keep);
		n = items.u.l->n;
	}
	for (size_t i = 0; i < n; i++) {
		struct frame *it = new_frame(r, f);
		struct val lp = mk_dict(r);
		enum flow fl;
		lp.flags = F_LOOP;
		dict_set(r, lp.u.d, "index", 5, mk_int((int64_t)i + 1));
		dict_set(r, lp.u.d, "index0", 6, mk_int((int64_t)i));
		dict_set(r, lp.u.d, "revindex", 8, mk_int((int64_t)(n - i)));
		dict_set(r, lp.u.d, "revindex0", 9,
			 mk_int((int64_t)(n - i - 1)));
		dict_set(r, lp.u.d, "first", 5, mk_bool(i == 0));
		dict_set(r, lp.u.d, "last", 4, mk_bool(i + 1 == n));
		dict_set(r, lp.u.d, "length", 6, mk_int((int64_t)n));
		dict_set(r, lp.u.d, "depth", 5, mk_int(1));
		dict_set(r, lp.u.d, "depth0", 6, mk_int(0));
		if (i > 0)
			dict_set(r, lp.u.d, "previtem", 8, keep[i - 1]);
		if (i + 1 < n)
			dict_set(r, lp.u.d, "nextitem", 8, keep[i + 1]);
		frame_set(r, it, "loop", lp);
		assign(r, x, it, &keep[i]);
		fl = exec_body(r, x->b, it, out);
		if (fl == FL_BREAK)
			break;
	}
	if (n == 0 && x->c)
		return exec_body(r, x->c, f, out);
	return FL_NONE;
}

static struct val call_macro(struct rt *r, const struct node *m,
			     const struct args *a, int line)
{
	struct frame *mf;
	struct ed_buf b;
	struct val out;

	if (++r->depth > MAX_DEPTH)
		rerr(r, ED_ETOOBIG, line,
		     "macro calls nested more than %d deep", MAX_DEPTH);
	if (a->n > m->nkw)
		rerr(r, ED_EINVAL, line,
		     "macro '%s' takes not more than %zu "
		     "argument(s)",
		     m->name, m->nkw);
	mf = new_frame(r, r->root);
	for (size_t i = 0; i < m->nkw; i++) {
		const struct val *v = i < a->n ? &a->pos[i] : NULL;
		for (size_t k = 0; !v && k < a->nkw; k++)
			if (!strcmp(a->kwn[k], m->kwn[i]))
				v = &a->kw[k];
		if (v)
			frame_set(r, mf, m->kwn[i], *v);
		else if (m->kw && m->kw[i])
			frame_set(r, mf, m->kwn[i], eval(r, m->kw[i], mf));
		else {
			char msg[120];
			snprintf(msg, sizeof msg,
				 "parameter '%.40s' was not provided",
				 m->kwn[i]);
			frame_set(r, mf, m->kwn[i],
				  mk_undef(new_str(r, msg, strlen(msg))->s));
		}
	}
	for (size_t k = 0; k < a->nkw; k++) {
		bool known = false;
		for (size_t i = 0; i < m->nkw; i++)
			known |= !strcmp(a->kwn[k], m->kwn[i]);
		if (!known)
			rerr(r, ED_EINVAL, line,
			     "macro '%s' takes no keyword argument '%s'",
			     m->name, a->kwn[k]);
	}
	ed_buf_init(&b, OUTPUT_CAP);
	{
		jmp_buf saved;
		memcpy(saved, r->jb, sizeof saved);
		if (setjmp(r->jb)) {
			ed_buf_release(&b);
			memcpy(r->jb, saved, sizeof saved);
			longjmp(r->jb, 1);
		}
		exec_body(r, m->b, mf, &b);
		memcpy(r->jb, saved, sizeof saved);
	}
	out = mk_str(r, b.data ? b.data : "", b.len);
	ed_buf_release(&b);
	r->depth--;
	return out;
}

static enum flow exec(struct rt *r, const struct node *x, struct frame *f,
		      struct ed_buf *out)
{
	switch (x->kind) {
	case N_BODY: return exec_body(r, x, f, out);
	case N_TEXT: put(r, out, x->name, x->name_n); return FL_NONE;
	case N_OUT: {
		struct val v = eval(r, x->a, f);
		if (v.k == V_STR)
			put(r, out, v.u.s->s, v.u.s->n);
		else
			to_text(r, out, &v, false);
		return FL_NONE;
	}
	case N_IF:
		for (const struct node *n = x; n;) {
			struct val c = eval(r, n->a, f);
			if (truthy(&c))
				return exec_body(r, n->b, f, out);
			if (n->c && n->c->kind == N_IF)
				n = n->c;
			else
				return n->c ? exec_body(r, n->c, f, out)
					    : FL_NONE;
		}
		return FL_NONE;
	case N_FOR: return exec_for(r, x, f, out);
	case N_SET: {
		struct val v = eval(r, x->a, f);
		if (x->name) { /* ns.attr = v */
			const struct val *ns = frame_get(f, x->name);
			if (!ns || ns->k != V_DICT || !(ns->flags & F_NS))
				rerr(r, ED_EINVAL, x->line,
				     "cannot assign attribute on non-namespace "
				     "object");
			dict_set(r, ns->u.d, x->names[0], strlen(x->names[0]),
				 v);
			return FL_NONE;
		}
		assign(r, x, f, &v);
		return FL_NONE;
	}
	case N_SETBLOCK: {
		struct ed_buf b;
		struct val v;
		ed_buf_init(&b, OUTPUT_CAP);
		{
			jmp_buf saved;
			memcpy(saved, r->jb, sizeof saved);
			if (setjmp(r->jb)) {
				ed_buf_release(&b);
				memcpy(r->jb, saved, sizeof saved);
				longjmp(r->jb, 1);
			}
			exec_body(r, x->b, f, &b);
			memcpy(r->jb, saved, sizeof saved);
		}
		v = mk_str(r, b.data ? b.data : "", b.len);
		ed_buf_release(&b);
		frame_set(r, f, x->names[0], v);
		return FL_NONE;
	}
	case N_MACRO: {
		struct val m = {V_MACRO, 0, {.m = x}, NULL};
		frame_set(r, f, x->name, m);
		return FL_NONE;
	}
	case N_BREAK: return FL_BREAK;
	case N_CONTINUE: return FL_CONTINUE;
	}
	rerr(r, ED_EINTERNAL, x->line, "bad statement node");
}

int ed_jinja_render(const struct ed_jinja *t, const json_t *vars,
		    struct ed_buf *out, char *err, size_t errlen)
{
	struct rt *r = calloc(1, sizeof *r); /* not clobbered by longjmp */
	size_t start = out->len;
	int rc;

	if (!r)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	r->a.cap = ARENA_CAP;
	r->err = err;
	r->errlen = errlen;
	if (setjmp(r->jb)) {
		rc = r->rc;
		arena_free(&r->a);
		free(r);
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return rc;
	}
	r->root = new_frame(r, NULL);
	if (vars) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)vars, k, v)
		{
			size_t n = strlen(k);
			frame_set(r, r->root, new_str(r, k, n)->s,
				  from_json(r, v));
		}
	}
	exec_body(r, t->root, r->root, out);
	arena_free(&r->a);
	free(r);
	return 0;
}
