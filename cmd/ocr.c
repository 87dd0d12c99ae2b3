/*
 * ocr.c - `ernie-doc ocr`: every page of every input through the pipeline,
 * one JSON object per page on stdout (or text/markdown), a line per
 * document or a progress line on stderr, and the exit status.
 */
#include "cmd.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

enum { O_FMT_NDJSON, O_FMT_TEXT, O_FMT_MD };

static const struct opt ocr_opts[] = {
    {"help", 'h', false, O_HELP},
    {"quiet", 'q', false, O_QUIET},
    {"verbose", 'v', false, O_VERBOSE},
    {"db", 0, true, O_DB},
    {"pages", 0, true, O_PAGES},
    {"dpi", 0, true, O_DPI},
    {"text-layer", 0, true, O_TEXT_LAYER},
    {"format", 0, true, O_FORMAT},
    {"force", 0, false, O_FORCE},
    {"password-file", 0, true, O_PASSWORD_FILE},
    {"max-page-pixels", 0, true, O_MAX_PAGE_PIXELS},
    {"max-stdin", 0, true, O_MAX_STDIN},
    {"model", 0, true, O_MODEL},
    {"threads", 0, true, O_THREADS},
    {"max-tokens", 0, true, O_MAX_TOKENS},
    {"min-pixels", 0, true, O_MIN_PIXELS},
    {"max-pixels", 0, true, O_MAX_PIXELS},
    {NULL, 0, false, 0},
};

void usage_ocr(FILE *f)
{
	fputs("usage: ernie-doc ocr [--db FILE] [--model DIR] [--threads N]\n"
	      "         [--max-tokens N] [--pages RANGE] [--dpi N]\n"
	      "         [--min-pixels N] [--max-pixels N]\n"
	      "         [--text-layer auto|never|only] [--format "
	      "ndjson|text|md]\n"
	      "         [--force] [--password-file FILE] "
	      "[--max-page-pixels N]\n"
	      "         [--max-stdin BYTES] [-q] [-v] [FILE ...]\n"
	      "  OCR each FILE (PDF, TIFF, PNG, JPEG), or standard input when\n"
	      "  FILE is - or absent; store pages in --db (default "
	      "ernie-doc.db)\n"
	      "  and print one JSON object per page.\n",
	      f);
}

struct ocr_ctx {
	int format;
	bool progress;
	int pages_seen;
	bool output_failed; /* stdout is full or broken: stop early */
};

static void put_str(json_t *o, const char *k, const char *v)
{
	json_t *s;

	if (!v) {
		json_object_set_new(o, k, json_null());
		return;
	}
	s = json_string(v);
	if (!s) { /* not valid UTF-8: clean it rather than drop it */
		struct ed_buf b;
		ed_buf_init(&b, 0);
		ed_utf8_clean(&b, v, strlen(v));
		s = json_string(b.data ? b.data : "");
		ed_buf_release(&b);
	}
	json_object_set_new(o, k, s ? s : json_null());
}

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
				    JSON_REAL_PRECISION(10));

	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	fflush(stdout);
}

static void print_page(struct ocr_ctx *c, const struct ed_page_result *r);

static void on_page(void *ud, const struct ed_page_result *r)
{
	struct ocr_ctx *c = ud;

	print_page(c, r);
	if (ferror(stdout) && !c->output_failed) {
		/* the page is stored; no point computing more of them */
		c->output_failed = true;
		g_interrupted = 1;
	}
}

static void print_page(struct ocr_ctx *c, const struct ed_page_result *r)
{
	c->pages_seen++;
	if (c->progress) {
		fprintf(stderr, "\rernie-doc: %s: page %d/%d", r->path,
			r->page_no, r->pages);
		fflush(stderr);
	}
	if (c->format != O_FMT_NDJSON) {
		if (r->text)
			fputs(r->text, stdout);
		fputs("\f\n", stdout);
		fflush(stdout);
		return;
	}
	json_t *o = json_object();
	put_str(o, "path", r->path);
	put_str(o, "sha256", r->sha256);
	json_object_set_new(o, "page", json_integer(r->page_no));
	json_object_set_new(o, "pages", json_integer(r->pages));
	json_object_set_new(o, "page_id", json_integer(r->page_id));
	put_str(o, "status", r->status);
	put_str(o, "source", r->source);
	if (r->width_pt > 0) {
		json_object_set_new(o, "width", json_real(r->width_pt));
		json_object_set_new(o, "height", json_real(r->height_pt));
	}
	put_str(o, "text", r->text);
	if (r->error)
		put_str(o, "error", r->error);
	if (r->finish_reason) {
		put_str(o, "finish_reason", r->finish_reason);
		json_object_set_new(o, "tokens_in", json_integer(r->tokens_in));
		json_object_set_new(o, "tokens_out",
				    json_integer(r->tokens_out));
	}
	json_object_set_new(o, "cached", json_boolean(r->cached));
	print_json(o);
	json_decref(o);
}

static void print_doc_error(const char *path, const struct ed_doc_result *r)
{
	json_t *o = json_object();

	put_str(o, "path", path);
	put_str(o, "sha256", r->sha256[0] ? r->sha256 : NULL);
	json_object_set_new(o, "page", json_null());
	put_str(o, "status", "error");
	put_str(o, "error", r->error);
	print_json(o);
	json_decref(o);
}

/*
 * The code that explains a readable document's failed pages: their common
 * ED_E* when every selected page failed alike (a page over the pixel cap:
 * 65), otherwise 0 (exit status 1).
 */
static int page_failure_code(const struct ed_doc_result *r)
{
	if (r->needs_model || r->done + r->blank + r->cached > 0)
		return 0;
	return r->page_code;
}

static int parse_common_limits(int id, const char *arg, uint64_t *out)
{
	if (ed_parse_size(arg, out) || *out == 0) {
		msg("ocr: bad value '%s' for --%s", arg,
		    id == O_MAX_STDIN ? "max-stdin" : "max-page-pixels");
		return -1;
	}
	return 0;
}

int cmd_ocr(int argc, char **argv)
{
	struct ed_pipeline_opts o;
	struct ed_pipeline *p;
	struct optstate os = {0};
	struct ocr_ctx ctx = {0};
	const char *arg, **files;
	char err[512], *password = NULL;
	int nfiles = 0, id, rc, status = 0, failed_inputs = 0;
	int last_code = 0, total_need = 0;
	bool stdin_used = false;

	ed_pipeline_opts_default(&o);
	files = calloc((size_t)argc + 1, sizeof *files);
	if (!files)
		return EX_SOFTWARE_;
	while ((id = opt_next(&os, argc, argv, ocr_opts, "ocr", &arg)) != -1) {
		uint64_t v;
		switch (id) {
		case -2: goto usage_err;
		case 0: files[nfiles++] = arg; break;
		case O_HELP:
			usage_ocr(stdout);
			free(files);
			return 0;
		case O_QUIET: g_quiet = true; break;
		case O_VERBOSE: g_verbose++; break;
		case O_DB: o.db_path = arg; break;
		case O_PAGES:
			if (ed_range_parse(&o.pages, arg, err, sizeof err)) {
				msg("ocr: %s", err);
				goto usage_err;
			}
			break;
		case O_DPI:
			if (ed_parse_double(arg, 10, 2400, &o.dpi)) {
				msg("ocr: bad --dpi '%s' (10 to 2400)", arg);
				goto usage_err;
			}
			break;
		case O_TEXT_LAYER: {
			/* order of enum ed_text_layer */
			static const char *const tl[] = {"auto", "never",
							 "only", NULL};
			int k = opt_choice("ocr", "text-layer", arg, tl);
			if (k < 0)
				goto usage_err;
			o.text_layer = (enum ed_text_layer)k;
			break;
		}
		case O_FORMAT: {
			static const char *const fm[] = {"ndjson", "text", "md",
							 NULL};
			if ((ctx.format =
				 opt_choice("ocr", "format", arg, fm)) < 0)
				goto usage_err;
			break;
		}
		case O_FORCE: o.force = true; break;
		case O_PASSWORD_FILE:
			free(password);
			if ((rc = read_password_file(arg, &password))) {
				free(files);
				return exit_status(rc);
			}
			o.password = password;
			break;
		case O_MAX_PAGE_PIXELS:
			if (parse_common_limits(id, arg, &v))
				goto usage_err;
			o.limits.max_pixels = v;
			break;
		case O_MAX_STDIN:
			if (parse_common_limits(id, arg, &v))
				goto usage_err;
			o.max_stdin = v;
			break;
		case O_MODEL: o.model_dir = arg; break;
		case O_THREADS: {
			long n;
			if (ed_parse_int(arg, 1, 256, &n)) {
				msg("ocr: bad --threads '%s' (1 to 256)", arg);
				goto usage_err;
			}
			o.threads = (int)n;
			break;
		}
		case O_MAX_TOKENS: {
			long n;
			if (ed_parse_int(arg, 1, 1000000, &n)) {
				msg("ocr: bad --max-tokens '%s'", arg);
				goto usage_err;
			}
			o.max_tokens = (int)n;
			break;
		}
		case O_MIN_PIXELS:
		case O_MAX_PIXELS:
			if (ed_parse_size(arg, &v) || v == 0) {
				msg("ocr: bad size '%s'", arg);
				goto usage_err;
			}
			if (id == O_MIN_PIXELS)
				o.tile.min_pixels = v;
			else
				o.tile.max_pixels = v;
			break;
		}
	}
	if (!o.model_dir && getenv("ERNIE_DOC_MODEL") &&
	    *getenv("ERNIE_DOC_MODEL"))
		o.model_dir = getenv("ERNIE_DOC_MODEL");
	if (o.tile.min_pixels > o.tile.max_pixels) {
		msg("ocr: --min-pixels is larger than --max-pixels");
		goto usage_err;
	}
	if (nfiles == 0) {
		if (isatty(0)) {
			msg("ocr: no input files and standard input is a "
			    "terminal");
			goto usage_err;
		}
		files[nfiles++] = "-";
	}
	for (int i = 0; i < nfiles; i++) {
		if (strcmp(files[i], "-") != 0)
			continue;
		if (stdin_used) {
			msg("ocr: standard input ('-') given twice");
			goto usage_err;
		}
		stdin_used = true;
	}
	{
		char opts_json[160];
		snprintf(opts_json, sizeof opts_json,
			 "{\"dpi\":%g,\"text_layer\":\"%s\",\"force\":%s}",
			 o.dpi,
			 o.text_layer == ED_TEXT_LAYER_AUTO    ? "auto"
			 : o.text_layer == ED_TEXT_LAYER_NEVER ? "never"
							       : "only",
			 o.force ? "true" : "false");
		o.options_json = opts_json;
		o.interrupted = &g_interrupted;
		o.on_page = on_page;
		o.ud = &ctx;
		ctx.progress = !g_quiet && isatty(2);
		if ((rc = ed_pipeline_open(&p, &o, err, sizeof err))) {
			msg("%s", err);
			free(password);
			free(files);
			return exit_status(rc);
		}
	}
	for (int i = 0; i < nfiles; i++) {
		struct ed_doc_result r;
		const char *name =
		    strcmp(files[i], "-") ? files[i] : "standard input";

		ctx.pages_seen = 0;
		rc = ed_pipeline_ocr(p, files[i], &r);
		if (ctx.progress && ctx.pages_seen)
			fputc('\n', stderr);
		if (rc == ED_EINTR) {
			if (ctx.output_failed) {
				msg("cannot write standard output; finished "
				    "pages are stored");
				status = EX_IOERR_;
			} else {
				msg("interrupted; finished pages are stored");
				status = EX_INTERRUPTED;
			}
			break;
		}
		if (rc) {
			/* one bad input never stops the others */
			msg("%s", r.error);
			if (ctx.format == O_FMT_NDJSON)
				print_doc_error(files[i], &r);
			failed_inputs++;
			last_code = rc;
			continue;
		}
		total_need += r.needs_model;
		if (r.failed || r.needs_model) {
			failed_inputs++;
			last_code = page_failure_code(&r);
		}
		if (!g_quiet && (!ctx.progress || g_verbose))
			msg("%s: %d page%s: %d done, %d blank, %d need the "
			    "model, %d failed, %d already stored",
			    name, r.pages, r.pages == 1 ? "" : "s", r.done,
			    r.blank, r.needs_model, r.failed, r.cached);
	}
	ed_pipeline_close(p);
	if (total_need)
		msg("%d page%s the model and %s stored as needs-model; "
		    "configure one with --model DIR or ERNIE_DOC_MODEL (see "
		    "MODEL WEIGHTS in ernie-doc(1))",
		    total_need, total_need == 1 ? " needs" : "s need",
		    total_need == 1 ? "was" : "were");
	if (status == 0 && failed_inputs) {
		/* one input that failed whole says why; otherwise 1 */
		status = nfiles == 1 ? exit_status(last_code) : EX_SOME_FAILED;
		if (status == 0)
			status = EX_SOME_FAILED;
	}
	free(password);
	free(files);
	return status;
usage_err:
	usage_ocr(stderr);
	free(password);
	free(files);
	return EX_USAGE_;
}
