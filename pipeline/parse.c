/*
 * parse.c - structure from a page's text: the model's Markdown into
 * blocks (headings, paragraphs, lists, tables with their cells, formulas,
 * figures, code), and named PCRE2 rules into fields with byte spans. A
 * built-in rule set finds dates, amounts with a currency, e-mail
 * addresses, URLs and phone numbers; --rules FILE adds more.
 *
 * Compiled rules are immutable and shared by the workers; each match uses
 * its own match data, under match and depth limits.
 */
#include "pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- blocks -------------------------------------------------------- */

struct blist {
	struct ed_arena *a;
	struct ed_store_block *b;
	size_t n, cap;
	bool oom;
};

static char *adup(struct ed_arena *a, const char *s, size_t n)
{
	char *p = ed_arena_alloc(a, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static struct ed_store_block *add_block(struct blist *l, const char *kind,
					const char *text, size_t n)
{
	struct ed_store_block *b;

	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		n--;
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 16;
		struct ed_store_block *nb =
		    ed_arena_alloc(l->a, nc * sizeof *nb);
		if (!nb) {
			l->oom = true;
			return NULL;
		}
		if (l->n)
			memcpy(nb, l->b, l->n * sizeof *nb);
		l->b = nb;
		l->cap = nc;
	}
	b = &l->b[l->n++];
	memset(b, 0, sizeof *b);
	b->kind = kind;
	b->text = adup(l->a, text, n);
	if (!b->text)
		l->oom = true;
	return b;
}

/* Text of an HTML fragment: tags dropped, common entities decoded, runs
 * of whitespace collapsed. */
static char *html_text(struct ed_arena *a, const char *s, size_t n)
{
	static const struct {
		const char *e, *c;
	} ent[] = {{"&amp;", "&"},   {"&lt;", "<"},  {"&gt;", ">"},
		   {"&quot;", "\""}, {"&#39;", "'"}, {"&apos;", "'"},
		   {"&nbsp;", " "}};
	char *o = ed_arena_alloc(a, n + 1);
	size_t k = 0;
	bool sp = true;

	if (!o)
		return NULL;
	for (size_t i = 0; i < n;) {
		const char *rep = NULL;
		size_t skip = 1;
		if (s[i] == '<') {
			const char *gt = memchr(s + i, '>', n - i);
			i = gt ? (size_t)(gt - s) + 1 : n;
			if (!sp)
				o[k++] = ' ', sp = true;
			continue;
		}
		if (s[i] == '&')
			for (size_t e = 0; e < ED_ARRAY_LEN(ent); e++) {
				size_t el = strlen(ent[e].e);
				if (n - i >= el &&
				    memcmp(s + i, ent[e].e, el) == 0) {
					rep = ent[e].c;
					skip = el;
					break;
				}
			}
		{
			char c = rep ? rep[0] : s[i];
			if (isspace((unsigned char)c)) {
				if (!sp)
					o[k++] = ' ', sp = true;
			} else {
				o[k++] = c;
				sp = false;
			}
		}
		i += skip;
	}
	while (k && o[k - 1] == ' ')
		k--;
	o[k] = '\0';
	return o;
}

/* Room for cell nc in an arena array that doubles: false (l->oom set)
 * when the arena is out of memory. */
static bool cell_room(struct blist *l, struct ed_store_cell **cells,
		      size_t *cap, size_t nc)
{
	size_t ncap;
	struct ed_store_cell *nn;

	if (nc < *cap)
		return true;
	ncap = *cap ? 2 * *cap : 16;
	nn = ed_arena_alloc(l->a, ncap * sizeof *nn);
	if (!nn) {
		l->oom = true;
		return false;
	}
	if (nc)
		memcpy(nn, *cells, nc * sizeof *nn);
	*cells = nn;
	*cap = ncap;
	return true;
}

/* Cells of an HTML table: <tr> rows, <td>/<th> cells in order. */
static void html_cells(struct blist *l, struct ed_store_block *b, const char *s,
		       size_t n)
{
	struct ed_store_cell *cells = NULL;
	size_t nc = 0, cap = 0;
	int row = -1, col = 0;
	size_t i = 0;

	while (i < n) {
		const char *lt = memchr(s + i, '<', n - i), *gt;
		size_t t;
		bool close;
		if (!lt)
			break;
		t = (size_t)(lt - s);
		gt = memchr(lt, '>', n - t);
		if (!gt)
			break;
		close = t + 1 < n && s[t + 1] == '/';
		{
			const char *name = s + t + 1 + close;
			size_t rest = n - (size_t)(name - s);
			bool is_tr =
			    rest >= 2 && strncasecmp(name, "tr", 2) == 0 &&
			    (rest == 2 || !isalnum((unsigned char)name[2]));
			bool is_td =
			    rest >= 2 &&
			    (strncasecmp(name, "td", 2) == 0 ||
			     strncasecmp(name, "th", 2) == 0) &&
			    (rest == 2 || !isalnum((unsigned char)name[2]));
			if (is_tr && !close) {
				row++;
				col = 0;
			} else if (is_td && !close) {
				/* the cell runs to the next </td>, </th> or
				 * <td> */
				const char *start = gt + 1, *end = start;
				size_t left = n - (size_t)(start - s);
				while ((end = memchr(
					    end, '<',
					    left - (size_t)(end - start)))) {
					if (strncasecmp(end, "</td", 4) == 0 ||
					    strncasecmp(end, "</th", 4) == 0 ||
					    strncasecmp(end, "<td", 3) == 0 ||
					    strncasecmp(end, "<th", 3) == 0 ||
					    strncasecmp(end, "</tr", 4) == 0)
						break;
					end++;
				}
				if (!end)
					end = s + n;
				if (row < 0)
					row = 0;
				if (!cell_room(l, &cells, &cap, nc))
					return;
				cells[nc].row = row;
				cells[nc].col = col++;
				cells[nc].header =
				    tolower((unsigned char)name[1]) == 'h';
				cells[nc].text = html_text(
				    l->a, start, (size_t)(end - start));
				nc++;
				i = (size_t)(end - s);
				continue;
			}
		}
		i = (size_t)(gt - s) + 1;
	}
	b->cells = cells;
	b->ncells = nc;
}

/* Cells of a Markdown pipe table; the |---| line marks the header. */
static void pipe_cells(struct blist *l, struct ed_store_block *b, const char *s,
		       size_t n)
{
	struct ed_store_cell *cells = NULL;
	size_t nc = 0, cap = 0;
	int row = 0;
	const char *p = s, *end = s + n;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *q, *le = eol ? eol : end;
		bool sep = true;
		int col = 0;
		for (q = p; q < le; q++)
			if (!strchr("|-: \t", *q))
				sep = false;
		if (sep) { /* the separator: rows above are headers */
			for (size_t k = 0; k < nc; k++)
				cells[k].header = true;
			p = le + 1;
			continue;
		}
		q = p;
		while (q < le && *q == ' ')
			q++;
		if (q < le && *q == '|')
			q++; /* the leading pipe opens the first cell */
		while (q < le) {
			const char *bar = memchr(q, '|', (size_t)(le - q));
			const char *ce = bar ? bar : le;
			const char *a = q, *z = ce;
			while (a < z && (*a == ' ' || *a == '\t'))
				a++;
			while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
				z--;
			if (bar || z > a) {
				if (!cell_room(l, &cells, &cap, nc))
					return;
				cells[nc] = (struct ed_store_cell){
				    row, col++, false,
				    adup(l->a, a, (size_t)(z - a))};
				nc++;
			}
			if (!bar)
				break;
			q = bar + 1;
			if (q >= le)
				break;
		}
		row++;
		p = le + 1;
	}
	b->cells = cells;
	b->ncells = nc;
}

static bool starts(const char *s, const char *le, const char *pre)
{
	size_t n = strlen(pre);
	return (size_t)(le - s) >= n && memcmp(s, pre, n) == 0;
}

static bool list_item(const char *s, const char *le)
{
	const char *p = s;

	while (p < le && *p == ' ')
		p++;
	if (p + 1 < le && strchr("-*+", *p) && p[1] == ' ')
		return true;
	while (p < le && isdigit((unsigned char)*p))
		p++;
	return p > s && p + 1 < le && (*p == '.' || *p == ')') && p[1] == ' ' &&
	       isdigit((unsigned char)*s);
}

static bool blank(const char *s, const char *le)
{
	for (; s < le; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

int ed_pipeline_parse_markdown(const char *md, size_t len, struct ed_arena *a,
			       const struct ed_store_block **out, size_t *n)
{
	struct blist l = {a, NULL, 0, 0, false};
	const char *p = md, *end = md + len;

	*out = NULL;
	*n = 0;
	while (p < end && !l.oom) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end, *q = p;
		while (q < le && *q == ' ')
			q++;
		if (blank(p, le)) {
			p = le + 1;
			continue;
		}
		/* fenced code */
		if (starts(q, le, "```")) {
			const char *close = le < end ? le + 1 : end,
				   *stop = end;
			while (close < end) {
				const char *ce =
				    memchr(close, '\n', (size_t)(end - close));
				const char *cl = ce ? ce : end;
				if (starts(close, cl, "```")) {
					stop = cl;
					break;
				}
				close = cl + 1;
			}
			add_block(&l, "code", p, (size_t)(stop - p));
			p = stop < end ? stop + 1 : end;
			continue;
		}
		/* display math: $$ ... $$ or \[ ... \] */
		if (starts(q, le, "$$") || starts(q, le, "\\[")) {
			const char *closer = starts(q, le, "$$") ? "$$" : "\\]";
			const char *f = strstr(q + 2, closer);
			const char *stop;
			if (!f || f >= end)
				f = end;
			stop = f < end ? f + 2 : end;
			{
				const char *nl =
				    memchr(stop, '\n', (size_t)(end - stop));
				const char *blk_end = nl ? nl : end;
				add_block(&l, "formula", p,
					  (size_t)(blk_end - p));
				p = nl ? nl + 1 : end;
			}
			continue;
		}
		/* an HTML table, possibly over many lines */
		if (starts(q, le, "<table") || starts(q, le, "<TABLE")) {
			const char *t = q, *close = NULL;
			for (const char *c = q; c + 8 <= end; c++)
				if (strncasecmp(c, "</table>", 8) == 0) {
					close = c + 8;
					break;
				}
			if (!close)
				close = end;
			{
				struct ed_store_block *b =
				    add_block(&l, "table", "", 0);
				if (b) {
					b->html =
					    adup(a, t, (size_t)(close - t));
					b->text = html_text(
					    a, t, (size_t)(close - t));
					html_cells(&l, b, t,
						   (size_t)(close - t));
				}
			}
			{
				const char *nl =
				    memchr(close, '\n', (size_t)(end - close));
				p = nl ? nl + 1 : end;
			}
			continue;
		}
		/* headings */
		if (*q == '#') {
			int level = 0;
			while (q + level < le && q[level] == '#')
				level++;
			if (level <= 6 && q + level < le && q[level] == ' ') {
				const char *t = q + level;
				struct ed_store_block *b;
				while (t < le && *t == ' ')
					t++;
				b = add_block(&l, "heading", t,
					      (size_t)(le - t));
				if (b)
					b->level = level;
				p = le + 1;
				continue;
			}
		}
		/* figures */
		if (starts(q, le, "![") || starts(q, le, "<img") ||
		    starts(q, le, "<figure")) {
			const char *alt = q + 2, *ae = alt;
			while (ae < le && *ae != ']')
				ae++;
			if (q[0] == '!')
				add_block(&l, "figure", alt,
					  (size_t)(ae - alt));
			else
				add_block(&l, "figure", q, (size_t)(le - q));
			p = le + 1;
			continue;
		}
		/* a run of lines of one kind: pipe table, list, or paragraph */
		{
			int kind = *q == '|' ? 1 : list_item(p, le) ? 2 : 0;
			const char *stop = le;
			while (stop < end) {
				const char *nx = stop + 1, *ne;
				const char *nq;
				if (nx >= end)
					break;
				ne = memchr(nx, '\n', (size_t)(end - nx));
				ne = ne ? ne : end;
				nq = nx;
				while (nq < ne && *nq == ' ')
					nq++;
				if (blank(nx, ne))
					break;
				if (kind == 1 && *nq != '|')
					break;
				if (kind != 1 && *nq == '|')
					break;
				if (kind == 0 &&
				    (list_item(nx, ne) || *nq == '#' ||
				     starts(nq, ne, "```") ||
				     starts(nq, ne, "$$") ||
				     starts(nq, ne, "<table")))
					break;
				if (kind == 2 &&
				    (*nq == '#' || starts(nq, ne, "```")))
					break;
				stop = ne;
			}
			{
				struct ed_store_block *b =
				    add_block(&l,
					      kind == 1	  ? "table"
					      : kind == 2 ? "list"
							  : "paragraph",
					      p, (size_t)(stop - p));
				if (b && kind == 1)
					pipe_cells(&l, b, p,
						   (size_t)(stop - p));
			}
			p = stop < end ? stop + 1 : end;
		}
	}
	if (l.oom)
		return ED_ENOMEM;
	*out = l.b;
	*n = l.n;
	return 0;
}

/* ---- rules --------------------------------------------------------- */

struct rule {
	char *name;
	pcre2_code *code;
	int value_group; /* the named group "value", or 0 for the match */
	bool phone;	 /* a digit count check after the match */
};

struct ed_rules {
	struct rule *r;
	size_t n;
	pcre2_match_context *mctx;
};

static const struct {
	const char *name, *pattern;
} builtin[] = {
    {"date",
     "\\b\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])\\b"
     "|\\b(?:0?[1-9]|[12]\\d|3[01])[./](?:0?[1-9]|1[0-2])[./"
     "](?:\\d{4}|\\d{2})\\b"
     "|\\b(?:0?[1-9]|[12]\\d|3[01])\\.? "
     "(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|"
     "Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|"
     "Nov(?:ember)?|Dec(?:ember)?) \\d{4}\\b"
     "|\\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|"
     "Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?) "
     "(?:0?[1-9]|[12]\\d|3[01]), \\d{4}\\b"
     "|\\d{4}年\\d{1,2}月\\d{1,2}日"},
    /* the value keeps its currency, before or after the number */
    {"amount",
     "(?:(?:[€$£¥]|\\b(?:EUR|USD|GBP|CNY|RMB|JPY|CHF)\\b) ?"
     "(?:\\d{1,3}(?:[,. ]\\d{3})+(?:[.,]\\d{1,2})?|\\d+(?:[.,]\\d{1,2})?)"
     "|\\b(?:\\d{1,3}(?:[,. ]\\d{3})+(?:[.,]\\d{1,2})?|\\d+(?:[.,]\\d{1,2})?)"
     " ?(?:€|(?:EUR|USD|GBP|CNY|RMB|JPY|CHF)\\b|元))"},
    {"email", "\\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-"
	      "z]{2,}\\b"},
    {"url",
     "\\bhttps?://[^\\s<>\"')\\]]+|\\bwww\\.[A-Za-z0-9-]+\\.[^\\s<>\"')\\]]+"},
    {"phone",
     "(?<![\\w+])(?:\\+\\d{1,3}[ .-]?)?(?:\\(\\d{1,5}\\)[ .-]?)?\\d{2,5}"
     "(?:[ .-]\\d{2,8}){1,4}(?![\\w])"},
};

static int add_rule(struct ed_rules *rs, const char *name, const char *pat,
		    bool phone, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE off;
	pcre2_code *c;
	struct rule *nr;

	c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
			  PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
	if (!c) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		return ed_err(err, errlen, ED_ECONFIG,
			      "rule '%s': %s at offset %zu", name, (char *)msg,
			      (size_t)off);
	}
	pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* optional speed-up */
	nr = realloc(rs->r, (rs->n + 1) * sizeof *nr);
	if (!nr) {
		pcre2_code_free(c);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	rs->r = nr;
	nr[rs->n].name = strdup(name);
	nr[rs->n].code = c;
	nr[rs->n].phone = phone;
	{
		int g =
		    pcre2_substring_number_from_name(c, (PCRE2_SPTR) "value");
		nr[rs->n].value_group = g > 0 ? g : 0;
	}
	rs->n++;
	return nr[rs->n - 1].name ? 0 : ED_ENOMEM;
}

void ed_pipeline_rules_free(struct ed_rules *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->r[i].name);
		pcre2_code_free(rs->r[i].code);
	}
	free(rs->r);
	pcre2_match_context_free(rs->mctx);
	free(rs);
}

int ed_pipeline_rules_parse(struct ed_rules **out, const char *text, size_t len,
			    const char *name, char *err, size_t errlen)
{
	struct ed_rules *rs = calloc(1, sizeof *rs);
	const char *p = text, *end = text ? text + len : NULL;
	char *line = NULL;
	int rc = 0, ln = 0;

	*out = NULL;
	if (!rs || !(rs->mctx = pcre2_match_context_create(NULL))) {
		free(rs);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	/* untrusted patterns cannot run away */
	pcre2_set_match_limit(rs->mctx, 1000000);
	pcre2_set_depth_limit(rs->mctx, 10000);
	for (size_t i = 0; i < ED_ARRAY_LEN(builtin) && !rc; i++)
		rc = add_rule(rs, builtin[i].name, builtin[i].pattern,
			      strcmp(builtin[i].name, "phone") == 0, err,
			      errlen);
	/* "NAME PATTERN" lines of any length; blank lines and # comments
	 * skipped; a NUL byte is refused (it would cut the pattern short) */
	while (!rc && p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		char *nm, *pat, *nb;
		ln++;
		if (n && p[n - 1] == '\r')
			n--;
		if (memchr(p, '\0', n)) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s' line %d: a NUL byte", name, ln);
			break;
		}
		if (!(nb = realloc(line, n + 1))) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			break;
		}
		line = nb;
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl ? nl + 1 : end;
		nm = line;
		while (*nm == ' ' || *nm == '\t')
			nm++;
		if (!*nm || *nm == '#')
			continue;
		pat = nm + strcspn(nm, " \t");
		if (!*pat) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "'%s' line %d: expected NAME PATTERN", name,
				    ln);
			break;
		}
		*pat++ = '\0';
		while (*pat == ' ' || *pat == '\t')
			pat++;
		if ((rc = add_rule(rs, nm, pat, false, err, errlen)))
			ed_err_prefix(err, errlen, "'%s' line %d", name, ln);
	}
	free(line);
	if (rc) {
		ed_pipeline_rules_free(rs);
		return rc;
	}
	*out = rs;
	return 0;
}

int ed_pipeline_rules_load(struct ed_rules **out, const char *path, char *err,
			   size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!path)
		return ed_pipeline_rules_parse(out, NULL, 0, "", err, errlen);
	rc = ed_read_file(path, 16u << 20, &text, &len);
	if (rc == ED_ENOENT)
		return ed_err(err, errlen, ED_ENOENT,
			      "cannot open rules file '%s'", path);
	if (rc == ED_ETOOBIG)
		return ed_err(err, errlen, ED_ECONFIG,
			      "rules file '%s': over 16 MiB", path);
	if (rc)
		return ed_err(err, errlen, rc, "cannot read rules file '%s'",
			      path);
	rc = ed_pipeline_rules_parse(out, text, len, path, err, errlen);
	free(text);
	return rc;
}

static bool phone_ok(const char *s, size_t n)
{
	int digits = 0;

	for (size_t i = 0; i < n; i++)
		digits += isdigit((unsigned char)s[i]) != 0;
	/* up to 15 digits (E.164); 8-digit runs are dates and ids unless an
	 * international prefix or an area code in parentheses says phone */
	if (digits > 15)
		return false;
	return digits >= 9 || (digits >= 7 && (s[0] == '+' || s[0] == '('));
}

int ed_pipeline_rules_run(const struct ed_rules *rs, const char *text,
			  size_t len, struct ed_arena *a,
			  const struct ed_store_field **out, size_t *n)
{
	struct ed_store_field *f = NULL;
	size_t nf = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!rs || !text)
		return 0;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->r[i];
		pcre2_match_data *md =
		    pcre2_match_data_create_from_pattern(r->code, NULL);
		PCRE2_SIZE start = 0;

		if (!md)
			return ED_ENOMEM;
		while (start <= len) {
			int m = pcre2_match(r->code, (PCRE2_SPTR)text, len,
					    start, 0, md, rs->mctx);
			PCRE2_SIZE *ov;
			size_t s0, e0, vs, ve;
			if (m < 0)
				break; /* no match, or a limit hit: stop this
					  rule */
			ov = pcre2_get_ovector_pointer(md);
			s0 = ov[0], e0 = ov[1];
			vs = s0, ve = e0;
			/* the group named "value" if the rule has one and it
			 * took part, else the whole match */
			if (r->value_group > 0 && r->value_group < m &&
			    ov[2 * r->value_group] != PCRE2_UNSET) {
				vs = ov[2 * r->value_group];
				ve = ov[2 * r->value_group + 1];
			}
			if (e0 > s0 &&
			    (!r->phone || phone_ok(text + s0, e0 - s0))) {
				if (nf == cap) {
					size_t nc = cap ? 2 * cap : 16;
					struct ed_store_field *nn =
					    ed_arena_alloc(a, nc * sizeof *nn);
					if (!nn) {
						pcre2_match_data_free(md);
						return ED_ENOMEM;
					}
					if (nf)
						memcpy(nn, f, nf * sizeof *nn);
					f = nn;
					cap = nc;
				}
				f[nf].name = r->name;
				f[nf].rule = r->name;
				f[nf].value = adup(a, text + vs, ve - vs);
				f[nf].start = (int64_t)s0;
				f[nf].end = (int64_t)e0;
				nf++;
			}
			start = e0 > s0 ? e0 : s0 + 1;
			/* stay on a UTF-8 boundary after an empty match */
			while (start < len &&
			       ((unsigned char)text[start] & 0xC0) == 0x80)
				start++;
		}
		pcre2_match_data_free(md);
	}
	*out = f;
	*n = nf;
	return 0;
}
