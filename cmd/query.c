/*
 * query.c - the read side: `query` (read-only SQL printed as an aligned
 * table, CSV or JSON), `search` (bm25-ranked pages with snippets) and
 * `export` (a document rebuilt as Markdown, text or JSON).
 */
#include "cmd.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"
#include "store/store.h"

static const struct opt query_opts[] = {
    {"help", 'h', false, O_HELP},
    {"db", 0, true, O_DB},
    {"format", 0, true, O_FORMAT},
    {NULL, 0, false, 0},
};

static const struct opt search_opts[] = {
    {"help", 'h', false, O_HELP},  {"db", 0, true, O_DB},
    {"format", 0, true, O_FORMAT}, {"limit", 0, true, O_LIMIT},
    {NULL, 0, false, 0},
};

static const struct opt export_opts[] = {
    {"help", 'h', false, O_HELP},
    {"db", 0, true, O_DB},
    {"format", 0, true, O_FORMAT},
    {"out", 'o', true, O_OUT},
    {"image-dpi", 0, true, O_IMAGE_DPI},
    {"password-file", 0, true, O_PASSWORD_FILE},
    {NULL, 0, false, 0},
};

static const struct opt report_opts[] = {
    {"help", 'h', false, O_HELP},
    {"db", 0, true, O_DB},
    {"out", 'o', true, O_OUT},
    {NULL, 0, false, 0},
};

void usage_query(FILE *f)
{
	fputs("usage: ernie-doc query [--db FILE] [--format table|csv|json] "
	      "SQL\n"
	      "  Run read-only SQL against the database; statements that "
	      "write are\n"
	      "  refused.\n",
	      f);
}

void usage_search(FILE *f)
{
	fputs("usage: ernie-doc search [--db FILE] [--limit N] "
	      "[--format text|ndjson]\n"
	      "         TERMS ...\n"
	      "  Full-text search over page text, best matches first.\n",
	      f);
}

void usage_export(FILE *f)
{
	fputs("usage: ernie-doc export [--db FILE] [--format "
	      "md|txt|json|html] [-o FILE]\n"
	      "         [--image-dpi N] [--password-file FILE] DOC\n"
	      "  Rebuild a stored document (DOC: id, sha256 prefix or path) "
	      "from its\n"
	      "  newest finished page results; html: a self-contained review, "
	      "each\n"
	      "  page's image beside what was read from it.\n",
	      f);
}

void usage_report(FILE *f)
{
	fputs("usage: ernie-doc report [--db FILE] [-o FILE]\n"
	      "  One self-contained HTML page about the whole store: pages "
	      "by status\n"
	      "  and source, the pages to look at again, throughput, the "
	      "runs.\n",
	      f);
}

/* Write an HTML page to path (through a temporary file and a rename) or
 * to standard output. */
static int write_out(const char *path, const struct ed_buf *b)
{
	char tmp[4096];
	FILE *f;
	if (!path || !strcmp(path, "-")) {
		fwrite(b->data, 1, b->len, stdout);
		fflush(stdout);
		return ferror(stdout) ? EX_IOERR_ : 0;
	}
	snprintf(tmp, sizeof tmp, "%s.partial", path);
	if (!(f = fopen(tmp, "wb"))) {
		msg("cannot create '%s'", path);
		return EX_CANTCREAT_;
	}
	if (fwrite(b->data, 1, b->len, f) != b->len || fclose(f) ||
	    rename(tmp, path)) {
		msg("cannot write '%s'", path);
		remove(tmp);
		return EX_IOERR_;
	}
	return 0;
}

/* ---- value formatting --------------------------------------------- */

static void value_text(struct ed_buf *b, const struct ed_store_value *v)
{
	switch (v->type) {
	case ED_STORE_NULL: break;
	case ED_STORE_INT: ed_buf_printf(b, "%lld", (long long)v->i); break;
	case ED_STORE_REAL: ed_buf_printf(b, "%.15g", v->r); break;
	case ED_STORE_TEXT: ed_buf_append(b, v->s, v->n); break;
	case ED_STORE_BLOB:
		for (size_t i = 0; i < v->n; i++)
			ed_buf_printf(b, "%02x", (unsigned char)v->s[i]);
		break;
	}
}

static json_t *value_json(const struct ed_store_value *v)
{
	struct ed_buf b;
	json_t *j;

	switch (v->type) {
	case ED_STORE_NULL: return json_null();
	case ED_STORE_INT: return json_integer(v->i);
	case ED_STORE_REAL: return json_real(v->r);
	default: break;
	}
	ed_buf_init(&b, 0);
	if (v->type == ED_STORE_TEXT)
		ed_utf8_clean(&b, v->s, v->n);
	else
		value_text(&b, v);
	j = json_string(b.data ? b.data : "");
	ed_buf_release(&b);
	return j ? j : json_null();
}

static void print_json_value(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
				    JSON_REAL_PRECISION(10) | JSON_ENCODE_ANY);
	if (s) {
		fputs(s, stdout);
		free(s);
	}
}

/* ---- query -------------------------------------------------------- */

enum { F_TABLE, F_CSV, F_JSON };

#define CELL_MAX 60 /* display columns per table cell */

struct qctx {
	int format;
	int ncol;
	char **names;
	char ***rows; /* table: buffered to align the columns */
	size_t nrows, cap;
	bool header_done;
	int nrows_json;
};

/* One line, control characters as spaces, cut to CELL_MAX columns. */
static char *table_cell(const struct ed_store_value *v)
{
	struct ed_buf raw, out;
	size_t w = 0, i = 0;

	ed_buf_init(&raw, 0);
	ed_buf_init(&out, 0);
	value_text(&raw, v);
	if (v->type == ED_STORE_NULL)
		ed_buf_puts(&raw, "NULL");
	while (i < raw.len) {
		uint32_t cp;
		int k = ed_utf8_decode((unsigned char *)raw.data + i,
				       raw.len - i, &cp);
		char enc[4];
		size_t cw;
		if (cp < 0x20 || cp == 0x7F)
			cp = ' ';
		int n = ed_utf8_encode(cp, enc);
		cw = ed_utf8_width(enc, (size_t)n);
		if (w + cw > CELL_MAX - 1 && i + (size_t)k < raw.len) {
			ed_buf_puts(&out, "\xe2\x80\xa6"); /* ... */
			break;
		}
		ed_buf_append(&out, enc, (size_t)n);
		w += cw;
		i += (size_t)k;
	}
	ed_buf_release(&raw);
	ed_buf_reserve(&out, 0);
	return ed_buf_detach(&out, NULL);
}

static void csv_field(const char *s, size_t n)
{
	bool quote = false;

	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			quote = true;
	if (!quote) {
		fwrite(s, 1, n, stdout);
		return;
	}
	fputc('"', stdout);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fputc('"', stdout);
		fputc(s[i], stdout);
	}
	fputc('"', stdout);
}

static void table_flush(struct qctx *c)
{
	size_t *w;

	if (!c->names)
		return;
	w = calloc((size_t)c->ncol, sizeof *w);
	for (int j = 0; j < c->ncol; j++) {
		w[j] = ed_utf8_width(c->names[j], strlen(c->names[j]));
		for (size_t r = 0; r < c->nrows; r++) {
			size_t cw =
			    ed_utf8_width(c->rows[r][j], strlen(c->rows[r][j]));
			w[j] = cw > w[j] ? cw : w[j];
		}
	}
	for (size_t r = 0; r <= c->nrows + 1; r++) {
		for (int j = 0; j < c->ncol; j++) {
			const char *s = r == 0	 ? c->names[j]
					: r == 1 ? NULL
						 : c->rows[r - 2][j];
			size_t cw;
			if (!s) {
				for (size_t k = 0; k < w[j]; k++)
					fputc('-', stdout);
				cw = w[j];
			} else {
				fputs(s, stdout);
				cw = ed_utf8_width(s, strlen(s));
			}
			if (j + 1 < c->ncol)
				for (size_t k = cw; k < w[j] + 2; k++)
					fputc(' ', stdout);
		}
		fputc('\n', stdout);
	}
	free(w);
	for (size_t r = 0; r < c->nrows; r++) {
		for (int j = 0; j < c->ncol; j++)
			free(c->rows[r][j]);
		free(c->rows[r]);
	}
	for (int j = 0; j < c->ncol; j++)
		free(c->names[j]);
	free(c->names);
	free(c->rows);
	c->names = NULL;
	c->rows = NULL;
	c->nrows = c->cap = 0;
}

static int query_row(void *ud, int ncol, const char *const *names,
		     const struct ed_store_value *v)
{
	struct qctx *c = ud;

	if (ncol < 0) { /* end of a statement */
		if (c->format == F_TABLE)
			table_flush(c);
		else if (c->format == F_JSON)
			fputs(c->nrows_json ? "\n]\n" : "[]\n", stdout);
		c->header_done = false;
		c->nrows_json = 0;
		return 0;
	}
	if (c->format == F_TABLE) {
		if (!c->names) {
			c->ncol = ncol;
			c->names = calloc((size_t)ncol, sizeof *c->names);
			for (int j = 0; j < ncol; j++)
				c->names[j] = strdup(names[j]);
		}
		if (c->nrows == c->cap) {
			c->cap = c->cap ? 2 * c->cap : 64;
			c->rows = realloc(c->rows, c->cap * sizeof *c->rows);
		}
		c->rows[c->nrows] = calloc((size_t)ncol, sizeof(char *));
		for (int j = 0; j < ncol; j++)
			c->rows[c->nrows][j] = table_cell(&v[j]);
		c->nrows++;
		return 0;
	}
	if (c->format == F_CSV) {
		if (!c->header_done) {
			for (int j = 0; j < ncol; j++) {
				if (j)
					fputc(',', stdout);
				csv_field(names[j], strlen(names[j]));
			}
			fputs("\r\n", stdout);
			c->header_done = true;
		}
		for (int j = 0; j < ncol; j++) {
			struct ed_buf b;
			if (j)
				fputc(',', stdout);
			ed_buf_init(&b, 0);
			value_text(&b, &v[j]);
			csv_field(b.data ? b.data : "", b.len);
			ed_buf_release(&b);
		}
		fputs("\r\n", stdout);
		return 0;
	}
	{
		json_t *o = json_object();
		for (int j = 0; j < ncol; j++)
			json_object_set_new(o, names[j], value_json(&v[j]));
		fputs(c->nrows_json++ ? ",\n" : "[\n", stdout);
		print_json_value(o);
		json_decref(o);
	}
	return 0;
}

static int open_ro(const char *db, struct ed_store **st)
{
	char err[512];
	int rc = ed_store_open(st, db, ED_STORE_READONLY, err, sizeof err);

	if (rc)
		msg("%s", err);
	return rc;
}

int cmd_query(int argc, char **argv)
{
	struct optstate os = {0};
	struct qctx c = {0};
	struct ed_store *st;
	const char *arg, *db = "ernie-doc.db", *sql = NULL;
	char err[512];
	int id, rc;

	while ((id = opt_next(&os, argc, argv, query_opts, "query", &arg)) !=
	       -1) {
		switch (id) {
		case -2: goto usage_err;
		case 0:
			if (sql) {
				msg("query: give the SQL as one argument");
				goto usage_err;
			}
			sql = arg;
			break;
		case O_HELP: usage_query(stdout); return 0;
		case O_DB: db = arg; break;
		case O_FORMAT: {
			static const char *const fm[] = {"table", "csv", "json",
							 NULL};
			if ((c.format =
				 opt_choice("query", "format", arg, fm)) < 0)
				goto usage_err;
			break;
		}
		}
	}
	if (!sql) {
		msg("query: no SQL given");
		goto usage_err;
	}
	if ((rc = open_ro(db, &st)))
		return exit_status(rc);
	rc = ed_store_query(st, sql, query_row, &c, err, sizeof err);
	if (c.format == F_TABLE)
		table_flush(&c);
	ed_store_close(st);
	if (rc) {
		msg("query: %s", err);
		return exit_status(rc);
	}
	return 0;
usage_err:
	usage_query(stderr);
	return EX_USAGE_;
}

/* ---- search ------------------------------------------------------- */

struct sctx {
	bool json;
	int hits;
};

static int search_row(void *ud, int ncol, const char *const *names,
		      const struct ed_store_value *v)
{
	struct sctx *c = ud;

	if (ncol < 5)
		return 0;
	c->hits++;
	if (c->json) {
		json_t *o = json_object();
		for (int j = 0; j < ncol; j++)
			json_object_set_new(o, names[j], value_json(&v[j]));
		print_json_value(o);
		fputc('\n', stdout);
		json_decref(o);
		return 0;
	}
	/* path:page  score  snippet, the snippet on one line */
	printf("%.*s:%lld\t%.3f\t", (int)v[1].n, v[1].s ? v[1].s : "-",
	       (long long)v[2].i, v[3].r);
	for (size_t i = 0; v[4].s && i < v[4].n; i++) {
		char ch = v[4].s[i];
		fputc(ch == '\n' || ch == '\t' || ch == '\r' ? ' ' : ch,
		      stdout);
	}
	fputc('\n', stdout);
	return 0;
}

int cmd_search(int argc, char **argv)
{
	struct optstate os = {0};
	struct sctx c = {0};
	struct ed_store *st;
	struct ed_buf terms;
	const char *arg, *db = "ernie-doc.db";
	char err[512];
	long limit = 20;
	int id, rc;
	bool tty = isatty(1);

	ed_buf_init(&terms, 1 << 16);
	while ((id = opt_next(&os, argc, argv, search_opts, "search", &arg)) !=
	       -1) {
		switch (id) {
		case -2: goto usage_err;
		case 0:
			if (terms.len)
				ed_buf_putc(&terms, ' ');
			ed_buf_puts(&terms, arg);
			break;
		case O_HELP:
			usage_search(stdout);
			ed_buf_release(&terms);
			return 0;
		case O_DB: db = arg; break;
		case O_LIMIT:
			if (ed_parse_int(arg, 1, 1000000, &limit)) {
				msg("search: bad --limit '%s'", arg);
				goto usage_err;
			}
			break;
		case O_FORMAT: {
			static const char *const fm[] = {"text", "ndjson",
							 NULL};
			int k = opt_choice("search", "format", arg, fm);
			if (k < 0)
				goto usage_err;
			c.json = k == 1;
			break;
		}
		}
	}
	if (!terms.len) {
		msg("search: no search terms");
		goto usage_err;
	}
	if ((rc = open_ro(db, &st))) {
		ed_buf_release(&terms);
		return exit_status(rc);
	}
	rc = ed_store_search(
	    st, terms.data, (int)limit, tty && !c.json ? "\033[1m" : "[",
	    tty && !c.json ? "\033[0m" : "]", search_row, &c, err, sizeof err);
	ed_store_close(st);
	ed_buf_release(&terms);
	if (rc) {
		msg("search: %s", err);
		return exit_status(rc);
	}
	if (!c.hits && !g_quiet)
		msg("search: no matches");
	return 0;
usage_err:
	ed_buf_release(&terms);
	usage_search(stderr);
	return EX_USAGE_;
}

/* ---- export ------------------------------------------------------- */

enum { X_MD, X_TXT, X_JSON, X_HTML };

struct xctx {
	int format;
	int part; /* 0: the document row, 1: pages */
	int npages;
	json_t *doc, *pages;
};

static const char *sval(const struct ed_store_value *v)
{
	return v->type == ED_STORE_TEXT ? v->s : NULL;
}

static int export_row(void *ud, int ncol, const char *const *names,
		      const struct ed_store_value *v)
{
	struct xctx *c = ud;

	if (ncol < 0) {
		c->part++;
		return 0;
	}
	if (c->format == X_JSON) {
		json_t *o = json_object();
		for (int j = 0; j < ncol; j++)
			json_object_set_new(o, names[j], value_json(&v[j]));
		if (c->part == 0)
			c->doc = o;
		else
			json_array_append_new(c->pages, o);
		return 0;
	}
	if (c->part == 0)
		return 0;
	/* page_no, status, source, mode, model_id, text, markdown, ... */
	{
		const char *md = sval(&v[6]), *text = sval(&v[5]);
		if (c->format == X_MD) {
			printf("%s<!-- page %lld -->\n\n",
			       c->npages ? "\n" : "", (long long)v[0].i);
			if (md || text)
				fputs(md ? md : text, stdout);
			fputc('\n', stdout);
		} else {
			if (text)
				fputs(text, stdout);
			fputs("\f", stdout);
		}
		c->npages++;
	}
	return 0;
}

/* page_no, schema_title, schema_sha256, model_id, prompt_id, status,
 * json, created: the value itself when done */
static int extraction_row(void *ud, int ncol, const char *const *names,
			  const struct ed_store_value *v)
{
	json_t *o = json_object();

	for (int j = 0; j < ncol; j++) {
		json_t *x = NULL;
		if (!strcmp(names[j], "json") && v[j].type == ED_STORE_TEXT &&
		    ncol > 5 && v[5].type == ED_STORE_TEXT &&
		    !strcmp(v[5].s, "done"))
			x = json_loads(v[j].s, JSON_DECODE_ANY, NULL);
		json_object_set_new(
		    o, !strcmp(names[j], "json") ? "value" : names[j],
		    x ? x : value_json(&v[j]));
	}
	json_array_append_new(ud, o);
	return 0;
}

int cmd_export(int argc, char **argv)
{
	struct optstate os = {0};
	struct xctx c = {.format = X_MD};
	struct ed_store *st;
	const char *arg, *db = "ernie-doc.db", *sel = NULL;
	char err[512];
	int64_t doc_id;
	int id, rc;
	const char *out = NULL;
	char *password = NULL;
	struct ed_html_opts ho = {0};

	while ((id = opt_next(&os, argc, argv, export_opts, "export", &arg)) !=
	       -1) {
		switch (id) {
		case -2: goto usage_err;
		case 0:
			if (sel) {
				msg("export: one DOC at a time");
				goto usage_err;
			}
			sel = arg;
			break;
		case O_HELP: usage_export(stdout); return 0;
		case O_DB: db = arg; break;
		case O_FORMAT: {
			static const char *const fm[] = {"md", "txt", "json",
							 "html", NULL};
			if ((c.format =
				 opt_choice("export", "format", arg, fm)) < 0)
				goto usage_err;
			break;
		}
		case O_OUT: out = arg; break;
		case O_IMAGE_DPI:
			if (ed_parse_double(arg, 10, 600, &ho.image_dpi)) {
				msg("export: bad value '%s' for --image-dpi "
				    "(10 "
				    "to 600)",
				    arg);
				goto usage_err;
			}
			break;
		case O_PASSWORD_FILE:
			free(password);
			password = NULL;
			if ((rc = read_password_file(arg, &password)))
				return exit_status(rc);
			ho.password = password;
			break;
		}
	}
	if (!sel) {
		msg("export: no DOC given");
		goto usage_err;
	}
	if ((rc = open_ro(db, &st)))
		return exit_status(rc);
	if ((rc = ed_store_doc_find(st, sel, &doc_id, err, sizeof err))) {
		msg("export: %s", err);
		ed_store_close(st);
		return exit_status(rc == ED_EINVAL ? ED_EINVAL : rc);
	}
	if (c.format == X_HTML) {
		struct ed_buf b;
		int status;
		ed_buf_init(&b, 0);
		rc = ed_pipeline_export_html(st, doc_id, &ho, &b, err,
					     sizeof err);
		ed_store_close(st);
		free(password);
		if (rc) {
			msg("export: %s", err);
			ed_buf_release(&b);
			return exit_status(rc);
		}
		status = write_out(out, &b);
		ed_buf_release(&b);
		return status;
	}
	free(password);
	if (out) {
		msg("export: -o is for --format html");
		ed_store_close(st);
		goto usage_err;
	}
	c.pages = json_array();
	rc = ed_store_doc_export(st, doc_id, export_row, &c, err, sizeof err);
	if (!rc && c.format == X_JSON) {
		json_t *o = json_object(), *xs = json_array();
		char xerr[256];
		/* a database older than schema 4 has none */
		ed_store_doc_extractions(st, doc_id, extraction_row, xs, xerr,
					 sizeof xerr);
		json_object_set_new(o, "document", c.doc ? c.doc : json_null());
		json_object_set(o, "pages", c.pages);
		json_object_set_new(o, "extractions", xs);
		print_json_value(o);
		fputc('\n', stdout);
		json_decref(o);
		c.doc = NULL;
	}
	ed_store_close(st);
	json_decref(c.doc);
	json_decref(c.pages);
	if (rc) {
		msg("export: %s", err);
		return exit_status(rc);
	}
	return 0;
usage_err:
	usage_export(stderr);
	return EX_USAGE_;
}

int cmd_report(int argc, char **argv)
{
	struct optstate os = {0};
	struct ed_store *st;
	struct ed_buf b;
	const char *arg, *db = "ernie-doc.db", *out = NULL;
	char err[512];
	int id, rc, status;

	while ((id = opt_next(&os, argc, argv, report_opts, "report", &arg)) !=
	       -1) {
		switch (id) {
		case -2: usage_report(stderr); return EX_USAGE_;
		case 0:
			msg("report: unexpected argument '%s'", arg);
			usage_report(stderr);
			return EX_USAGE_;
		case O_HELP: usage_report(stdout); return 0;
		case O_DB: db = arg; break;
		case O_OUT: out = arg; break;
		}
	}
	if ((rc = open_ro(db, &st)))
		return exit_status(rc);
	ed_buf_init(&b, 0);
	rc = ed_pipeline_report_html(st, &b, err, sizeof err);
	ed_store_close(st);
	if (rc) {
		msg("report: %s", err);
		ed_buf_release(&b);
		return exit_status(rc);
	}
	status = write_out(out, &b);
	ed_buf_release(&b);
	return status;
}
