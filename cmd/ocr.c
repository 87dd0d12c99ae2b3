/*
 * ocr.c - `ernie-doc ocr` and `ernie-doc batch`: inputs through the
 * pipeline, one JSON object per page on stdout (or text/markdown), a line
 * per document or a progress line on stderr, and the exit status. The two
 * commands differ only in their inputs: `ocr` takes files or standard
 * input, `batch` walks directories and can take a shard of them.
 */
#include "cmd.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

enum { O_FMT_NDJSON, O_FMT_TEXT, O_FMT_MD };

#define COMMON_OCR_OPTS                                                        \
	{"help", 'h', false, O_HELP}, {"quiet", 'q', false, O_QUIET},          \
	    {"verbose", 'v', false, O_VERBOSE}, {"db", 0, true, O_DB},         \
	    {"pages", 0, true, O_PAGES}, {"dpi", 0, true, O_DPI},              \
	    {"text-layer", 0, true, O_TEXT_LAYER},                             \
	    {"format", 0, true, O_FORMAT}, {"force", 0, false, O_FORCE},       \
	    {"password-file", 0, true, O_PASSWORD_FILE},                       \
	    {"max-page-pixels", 0, true, O_MAX_PAGE_PIXELS},                   \
	    {"max-stdin", 0, true, O_MAX_STDIN}, {"model", 0, true, O_MODEL},  \
	    {"server", 0, true, O_SERVER},                                     \
	    {"model-name", 0, true, O_MODEL_NAME}, {"mode", 0, true, O_MODE},  \
	    {"prompt", 0, true, O_PROMPT}, {"zoom", 0, false, O_ZOOM},         \
	    {"zoom-steps", 0, true, O_ZOOM_STEPS},                             \
	    {"save-zooms", 0, true, O_SAVE_ZOOMS},                             \
	    {"temperature", 0, true, O_TEMPERATURE},                           \
	    {"top-p", 0, true, O_TOP_P}, {"seed", 0, true, O_SEED},            \
	    {"jobs", 'j', true, O_JOBS}, {"threads", 0, true, O_THREADS},      \
	    {"vision-int8", 0, false, O_VISION_INT8},                          \
	    {"chat-template", 0, true, O_CHAT_TEMPLATE},                       \
	    {"template", 0, true, O_TEMPLATE},                                 \
	    {"max-tokens", 0, true, O_MAX_TOKENS},                             \
	    {"timeout", 0, true, O_TIMEOUT}, {"retries", 0, true, O_RETRIES},  \
	    {"retry-wait", 0, true, O_RETRY_WAIT},                             \
	    {"rules", 0, true, O_RULES}, {"schema", 0, true, O_SCHEMA},        \
	    {"extract-scope", 0, true, O_EXTRACT_SCOPE},                       \
	    {"min-pixels", 0, true, O_MIN_PIXELS},                             \
	{                                                                      \
		"max-pixels", 0, true, O_MAX_PIXELS                            \
	}

static const struct opt ocr_opts[] = {
    COMMON_OCR_OPTS,
    {NULL, 0, false, 0},
};

static const struct opt batch_opts[] = {
    COMMON_OCR_OPTS,
    {"shard", 0, true, O_SHARD},
    {NULL, 0, false, 0},
};

#define COMMON_OCR_USAGE                                                       \
	"         [--model DIR | --server URL [--model-name ID]]\n"            \
	"         [--mode ocr|think|auto] [--zoom] [--zoom-steps N]\n"         \
	"         [--save-zooms DIR] [--prompt TEXT] [--rules FILE]\n"         \
	"         [--schema FILE.json [--extract-scope page|document]]\n"      \
	"         [--temperature T] [--top-p P] [--seed N] [--max-tokens N]\n" \
	"         [-j N | --jobs N] [--threads N] [--vision-int8]\n"           \
	"         [--chat-template FILE] [--template pt|thinking]\n"           \
	"         [--timeout SECONDS] [--retries N] [--retry-wait SECONDS]\n"  \
	"         [--pages RANGE] [--dpi N] [--min-pixels N] [--max-pixels "   \
	"N]\n"                                                                 \
	"         [--text-layer auto|never|only] [--format ndjson|text|md]\n"  \
	"         [--force] [--password-file FILE] [--max-page-pixels N]\n"

void usage_ocr(FILE *f)
{
	fputs("usage: ernie-doc ocr [--db FILE]\n" COMMON_OCR_USAGE
	      "         [--max-stdin BYTES] [-q] [-v] [FILE ...]\n"
	      "  OCR each FILE (PDF, TIFF, PNG, JPEG), or standard input when\n"
	      "  FILE is - or absent; store pages in --db (default "
	      "ernie-doc.db)\n"
	      "  and print one JSON object per page.\n",
	      f);
}

void usage_batch(FILE *f)
{
	fputs("usage: ernie-doc batch [--db FILE] [--shard "
	      "I/N]\n" COMMON_OCR_USAGE "         [-q] [-v] DIR|FILE ...\n"
	      "  Walk each DIR for PDF, TIFF, PNG and JPEG files (by their "
	      "first\n"
	      "  bytes) and OCR them with --jobs pages in flight; a re-run "
	      "resumes.\n",
	      f);
}

struct ocr_ctx {
	int format;
	bool tty; /* a progress line on stderr */
	bool drawn;
	double last_draw_ms;
	int64_t cached;
	int failed_inputs, last_code, total_need;
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

static void clear_progress(struct ocr_ctx *c)
{
	if (c->drawn) {
		fputs("\r\033[K", stderr);
		c->drawn = false;
	}
}

static void print_page(struct ocr_ctx *c, const struct ed_page_result *r)
{
	json_t *o;

	if (c->format != O_FMT_NDJSON) {
		if (r->text)
			fputs(r->text, stdout);
		fputs("\f\n", stdout);
		fflush(stdout);
		return;
	}
	o = json_object();
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
	if (r->reasoning)
		put_str(o, "reasoning", r->reasoning);
	if (r->error)
		put_str(o, "error", r->error);
	if (r->finish_reason) {
		put_str(o, "finish_reason", r->finish_reason);
		json_object_set_new(o, "tokens_in", json_integer(r->tokens_in));
		json_object_set_new(o, "tokens_out",
				    json_integer(r->tokens_out));
	}
	if (r->attempts > 0)
		json_object_set_new(o, "attempts", json_integer(r->attempts));
	if (r->guard)
		put_str(o, "guard", r->guard);
	if (r->has_similarity)
		json_object_set_new(o, "similarity", json_real(r->similarity));
	if (r->pass)
		put_str(o, "pass", r->pass);
	if (r->nzooms || r->tool_errors) {
		json_t *zs = json_array();
		for (size_t i = 0; i < r->nzooms; i++) {
			const struct ed_store_zoom *z = &r->zooms[i];
			json_t *zo = json_pack(
			    "{s:i, s:[f, f, f, f], s:i, s:i}", "step", z->step,
			    "bbox", z->x1, z->y1, z->x2, z->y2, "width",
			    z->width, "height", z->height);
			if (zo && z->label && *z->label)
				put_str(zo, "label", z->label);
			json_array_append_new(zs, zo);
		}
		json_object_set_new(o, "zooms", zs);
		json_object_set_new(o, "tool_errors",
				    json_integer(r->tool_errors));
	}
	if (!r->cached) {
		json_object_set_new(o, "blocks",
				    json_integer((json_int_t)r->nblocks));
		json_object_set_new(o, "fields",
				    json_integer((json_int_t)r->nfields));
	}
	json_object_set_new(o, "cached", json_boolean(r->cached));
	if (r->extraction_status)
		put_extraction(o, "extraction_status", r->extraction_status,
			       r->extraction_json, r->extraction_error);
	print_json(o);
	json_decref(o);
}

void put_extraction(json_t *o, const char *status_key, const char *status,
		    const char *json, const char *error)
{
	json_t *v = NULL;

	put_str(o, status_key, status);
	if (json && !strcmp(status, "done"))
		v = json_loads(json, JSON_DECODE_ANY, NULL);
	if (v)
		json_object_set_new(o, "extraction", v);
	else if (json)
		put_str(o, "extraction", json);
	else
		json_object_set_new(o, "extraction", json_null());
	/* beside a page's own "error", the extraction's is its own member */
	if (error && *error)
		put_str(o,
			strcmp(status_key, "status") ? "extraction_error"
						     : "error",
			error);
}

/* --schema, document scope: the document's line. */
static void on_extraction(void *ud, const struct ed_extract_result *r)
{
	struct ocr_ctx *c = ud;
	json_t *o;

	if (c->format != O_FMT_NDJSON)
		return;
	o = json_object();
	put_str(o, "path", r->path);
	put_str(o, "sha256", r->sha256);
	put_extraction(o, "status", r->status, r->json, r->error);
	print_json(o);
	json_decref(o);
}

static void on_page(void *ud, const struct ed_page_result *r)
{
	struct ocr_ctx *c = ud;

	if (r->cached)
		c->cached++;
	else if (r->error && strcmp(r->status, "error") == 0) {
		clear_progress(c);
		msg("%s: page %d: %s",
		    strcmp(r->path, "-") ? r->path : "standard input",
		    r->page_no, r->error);
	}
	print_page(c, r);
	if (ferror(stdout) && !c->output_failed) {
		/* the page is stored; no point computing more of them */
		c->output_failed = true;
		g_interrupted = 1;
	}
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

static void on_doc(void *ud, const char *path, const struct ed_doc_result *r)
{
	struct ocr_ctx *c = ud;
	const char *name = strcmp(path, "-") ? path : "standard input";

	clear_progress(c);
	if (r->code) {
		/* one bad input never stops the others */
		msg("%s", r->error);
		if (c->format == O_FMT_NDJSON)
			print_doc_error(path, r);
		c->failed_inputs++;
		c->last_code = r->code;
		return;
	}
	c->total_need += r->needs_model;
	if (r->failed || r->needs_model) {
		c->failed_inputs++;
		c->last_code = page_failure_code(r);
	}
	if (!g_quiet && (!c->tty || g_verbose))
		msg("%s: %d page%s: %d done, %d blank, %d need the model, %d "
		    "failed, %d already stored",
		    name, r->pages, r->pages == 1 ? "" : "s", r->done, r->blank,
		    r->needs_model, r->failed, r->cached);
}

static void on_progress(void *ud, const struct ed_progress *p)
{
	struct ocr_ctx *c = ud;
	double s = p->elapsed_ms / 1000, rate, remaining, eta;
	int64_t computed = p->pages_done - c->cached;

	if (!c->tty || (c->drawn && p->elapsed_ms - c->last_draw_ms < 200 &&
			p->docs_done < p->docs_total))
		return;
	c->last_draw_ms = p->elapsed_ms;
	rate = s > 0 ? (double)computed / s : 0;
	/* pages still to come: the opened documents' plus, for the rest, as
	 * many per document as so far */
	remaining = (double)(p->pages_known - p->pages_done);
	if (p->docs_opened > 0 && p->docs_total > p->docs_opened)
		remaining += (double)(p->docs_total - p->docs_opened) *
			     (double)p->pages_known / (double)p->docs_opened;
	fprintf(stderr,
		"\r\033[Kernie-doc: %zu/%zu documents, %lld/%lld pages, %.2f "
		"pages/s, %.1f tokens/s",
		p->docs_done, p->docs_total, (long long)p->pages_done,
		(long long)p->pages_known, rate,
		s > 0 ? (double)p->tokens_out / s : 0.0);
	if (rate > 0 && remaining > 0) {
		eta = remaining / rate;
		fprintf(stderr, ", ETA %d:%02d:%02d", (int)(eta / 3600),
			(int)(eta / 60) % 60, (int)eta % 60);
	}
	fflush(stderr);
	c->drawn = true;
}

static int bad_value(const char *cmd, const char *opt, const char *arg,
		     const char *range)
{
	msg("%s: bad value '%s' for --%s%s%s%s", cmd, arg, opt,
	    range ? " (" : "", range ? range : "", range ? ")" : "");
	return -1;
}

/* "I/N" with 1 <= I <= N: shard I-1 of N. */
static int parse_shard(const char *arg, unsigned *i, unsigned *n)
{
	char *end;
	unsigned long a, b;

	a = strtoul(arg, &end, 10);
	if (end == arg || *end != '/')
		return -1;
	b = strtoul(end + 1, &end, 10);
	if (*end || b < 1 || b > 65536 || a < 1 || a > b)
		return -1;
	*i = (unsigned)(a - 1);
	*n = (unsigned)b;
	return 0;
}

/* Everything but the inputs is shared by ocr and batch. */
struct ocr_cfg {
	struct ed_pipeline_opts o;
	const char *schema_path;
	struct ed_extractor *x;
	bool model_given, server_given;
	char *password;
	unsigned shard_i, shard_n;
	const char **inputs;
	int ninputs;
	int format;
};

/* Parse argv into cfg. 0, or an exit status after a message. */
static int parse_args(struct ocr_cfg *cfg, int argc, char **argv,
		      const char *cmd, const struct opt *opts)
{
	struct ed_pipeline_opts *o = &cfg->o;
	struct optstate os = {0};
	const char *arg;
	char err[512];
	int id, rc;

	while ((id = opt_next(&os, argc, argv, opts, cmd, &arg)) != -1) {
		uint64_t v;
		long n;
		double d;
		switch (id) {
		case -2: return EX_USAGE_;
		case 0: cfg->inputs[cfg->ninputs++] = arg; break;
		case O_HELP: return -1;
		case O_QUIET: g_quiet = true; break;
		case O_VERBOSE: g_verbose++; break;
		case O_DB: o->db_path = arg; break;
		case O_PAGES:
			if (ed_range_parse(&o->pages, arg, err, sizeof err)) {
				msg("%s: %s", cmd, err);
				return EX_USAGE_;
			}
			break;
		case O_DPI:
			if (ed_parse_double(arg, 10, 2400, &o->dpi))
				return bad_value(cmd, "dpi", arg, "10 to 2400"),
				       EX_USAGE_;
			break;
		case O_TEXT_LAYER: {
			/* order of enum ed_text_layer */
			static const char *const tl[] = {"auto", "never",
							 "only", NULL};
			int k = opt_choice(cmd, "text-layer", arg, tl);
			if (k < 0)
				return EX_USAGE_;
			o->text_layer = (enum ed_text_layer)k;
			break;
		}
		case O_FORMAT: {
			static const char *const fm[] = {"ndjson", "text", "md",
							 NULL};
			if ((cfg->format = opt_choice(cmd, "format", arg, fm)) <
			    0)
				return EX_USAGE_;
			break;
		}
		case O_MODE: {
			static const char *const md[] = {"ocr", "think", "auto",
							 NULL};
			int k = opt_choice(cmd, "mode", arg, md);
			if (k < 0)
				return EX_USAGE_;
			o->mode = md[k];
			break;
		}
		case O_FORCE: o->force = true; break;
		case O_PASSWORD_FILE:
			free(cfg->password);
			cfg->password = NULL;
			if ((rc = read_password_file(arg, &cfg->password)))
				return exit_status(rc);
			o->password = cfg->password;
			break;
		case O_MAX_PAGE_PIXELS:
		case O_MAX_STDIN:
			if (ed_parse_size(arg, &v) || v == 0)
				return bad_value(cmd,
						 id == O_MAX_STDIN
						     ? "max-stdin"
						     : "max-page-pixels",
						 arg, NULL),
				       EX_USAGE_;
			if (id == O_MAX_STDIN)
				o->max_stdin = v;
			else
				o->limits.max_pixels = v;
			break;
		case O_MODEL:
			o->model_dir = arg;
			cfg->model_given = true;
			break;
		case O_SERVER:
			o->server_url = arg;
			cfg->server_given = true;
			break;
		case O_MODEL_NAME: o->model_name = arg; break;
		case O_PROMPT:
			if (!*arg) {
				msg("%s: --prompt is empty", cmd);
				return EX_USAGE_;
			}
			o->prompt = arg;
			break;
		case O_RULES: o->rules_path = arg; break;
		case O_SCHEMA: cfg->schema_path = arg; break;
		case O_EXTRACT_SCOPE: {
			static const char *const sc[] = {"page", "document",
							 NULL};
			int k = opt_choice(cmd, "extract-scope", arg, sc);
			if (k < 0)
				return EX_USAGE_;
			o->extract_scope = (enum ed_extract_scope)k;
			break;
		}
		case O_ZOOM: o->zoom = true; break;
		case O_ZOOM_STEPS:
			if (ed_parse_int(arg, 1, 32, &n))
				return bad_value(cmd, "zoom-steps", arg,
						 "1 to 32"),
				       EX_USAGE_;
			o->zoom_steps = (int)n;
			break;
		case O_SAVE_ZOOMS: o->save_zooms = arg; break;
		case O_TEMPERATURE:
			if (ed_parse_double(arg, 0, 2, &d))
				return bad_value(cmd, "temperature", arg,
						 "0 to 2"),
				       EX_USAGE_;
			o->temperature = (float)d;
			break;
		case O_TOP_P:
			if (ed_parse_double(arg, 0, 1, &d) || d <= 0)
				return bad_value(cmd, "top-p", arg,
						 "above 0, at most 1"),
				       EX_USAGE_;
			o->top_p = (float)d;
			break;
		case O_SEED: {
			char *end;
			unsigned long long s = strtoull(arg, &end, 10);
			if (!*arg || *end || *arg == '-')
				return bad_value(cmd, "seed", arg, NULL),
				       EX_USAGE_;
			o->seed = s;
			break;
		}
		case O_JOBS:
			if (ed_parse_int(arg, 1, 1024, &n))
				return bad_value(cmd, "jobs", arg, "1 to 1024"),
				       EX_USAGE_;
			o->jobs = (int)n;
			break;
		case O_THREADS:
			if (ed_parse_int(arg, 1, 256, &n))
				return bad_value(cmd, "threads", arg,
						 "1 to 256"),
				       EX_USAGE_;
			o->threads = (int)n;
			break;
		case O_VISION_INT8: o->vision_int8 = true; break;
		case O_CHAT_TEMPLATE: o->chat_template = arg; break;
		case O_TEMPLATE: {
			static const char *const tv[] = {"pt", "thinking",
							 NULL};
			int k = opt_choice(cmd, "template", arg, tv);
			if (k < 0)
				return EX_USAGE_;
			o->template_variant = tv[k];
			break;
		}
		case O_MAX_TOKENS:
			if (ed_parse_int(arg, 1, 1000000, &n))
				return bad_value(cmd, "max-tokens", arg,
						 "1 to 1000000"),
				       EX_USAGE_;
			o->max_tokens = (int)n;
			break;
		case O_TIMEOUT:
			if (ed_parse_double(arg, 0.001, 86400, &o->timeout_s))
				return bad_value(cmd, "timeout", arg,
						 "seconds, up to 86400"),
				       EX_USAGE_;
			break;
		case O_RETRIES:
			if (ed_parse_int(arg, 0, 100, &n))
				return bad_value(cmd, "retries", arg,
						 "0 to 100"),
				       EX_USAGE_;
			o->retries = (int)n;
			break;
		case O_RETRY_WAIT:
			if (ed_parse_double(arg, 0.001, 3600, &o->retry_wait_s))
				return bad_value(cmd, "retry-wait", arg,
						 "seconds, up to 3600"),
				       EX_USAGE_;
			break;
		case O_SHARD:
			if (parse_shard(arg, &cfg->shard_i, &cfg->shard_n))
				return bad_value(cmd, "shard", arg,
						 "I/N with 1 <= I <= N"),
				       EX_USAGE_;
			break;
		case O_MIN_PIXELS:
		case O_MAX_PIXELS:
			if (ed_parse_size(arg, &v) || v == 0)
				return bad_value(cmd,
						 id == O_MIN_PIXELS
						     ? "min-pixels"
						     : "max-pixels",
						 arg, NULL),
				       EX_USAGE_;
			if (id == O_MIN_PIXELS)
				o->tile.min_pixels = v;
			else
				o->tile.max_pixels = v;
			break;
		}
	}
	if (cfg->model_given && cfg->server_given) {
		msg("%s: --model and --server exclude each other", cmd);
		return EX_USAGE_;
	}
	/* the environment when no flag says otherwise */
	if (!cfg->model_given && !cfg->server_given) {
		const char *m = getenv("ERNIE_DOC_MODEL");
		const char *s = getenv("ERNIE_DOC_SERVER");
		if (m && *m)
			o->model_dir = m;
		else if (s && *s)
			o->server_url = s;
	}
	if (o->server_url) {
		const char *key = getenv("ERNIE_DOC_API_KEY");
		const char *ca = getenv("SSL_CERT_FILE");
		o->api_key = key && *key ? key : NULL;
		o->ca_file = ca && *ca ? ca : NULL;
	}
	{
		/* how long a page claimed by a process that died stays its */
		const char *l = getenv("ERNIE_DOC_LEASE");
		if (l && *l && ed_parse_double(l, 0.1, 86400, &o->lease_s)) {
			msg("%s: ERNIE_DOC_LEASE is seconds, 0.1 to 86400",
			    cmd);
			return EX_USAGE_;
		}
	}
	if (o->tile.min_pixels > o->tile.max_pixels) {
		msg("%s: --min-pixels is larger than --max-pixels", cmd);
		return EX_USAGE_;
	}
	if (o->zoom && strcmp(o->mode, "think") != 0) {
		msg("%s: --zoom needs --mode think (--mode auto zooms by "
		    "itself)",
		    cmd);
		return EX_USAGE_;
	}
	if (cfg->schema_path) {
		/* a schema outside the subset is a usage error: 64 */
		if ((rc = ed_pipeline_extractor_open(&cfg->x, cfg->schema_path,
						     NULL, err, sizeof err))) {
			msg("%s: %s", cmd, err);
			return rc == ED_ENOENT ? EX_NOINPUT_ : EX_USAGE_;
		}
		o->extract = cfg->x;
	}
	if (o->save_zooms) {
		struct stat sb;
		if (mkdir(o->save_zooms, 0777) < 0 &&
		    (stat(o->save_zooms, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
			msg("%s: cannot create directory '%s'", cmd,
			    o->save_zooms);
			return EX_CANTCREAT_;
		}
	}
	return 0;
}

/* The options that shaped the results, recorded with the run. Caller
 * frees. */
static char *options_json(const struct ed_pipeline_opts *o)
{
	static const char *const tl[] = {"auto", "never", "only"};
	json_t *j = json_object();
	char *s;

	json_object_set_new(j, "dpi",
			    o->dpi > 0 ? json_real(o->dpi) : json_null());
	json_object_set_new(j, "text_layer", json_string(tl[o->text_layer]));
	json_object_set_new(j, "force", json_boolean(o->force));
	json_object_set_new(j, "mode", json_string(o->mode));
	json_object_set_new(j, "zoom", json_boolean(o->zoom));
	if (o->zoom_steps)
		json_object_set_new(j, "zoom_steps",
				    json_integer(o->zoom_steps));
	json_object_set_new(j, "jobs", json_integer(o->jobs));
	json_object_set_new(j, "vision_int8", json_boolean(o->vision_int8));
	json_object_set_new(j, "chat_template",
			    o->chat_template ? json_string(o->chat_template)
					     : json_null());
	json_object_set_new(j, "template",
			    o->template_variant
				? json_string(o->template_variant)
				: json_null());
	json_object_set_new(j, "temperature", json_real(o->temperature));
	json_object_set_new(j, "top_p",
			    json_real(o->top_p > 0 ? o->top_p : 1.0));
	json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
	json_object_set_new(j, "max_tokens",
			    json_integer(o->max_tokens > 0
					     ? o->max_tokens
					     : ED_PIPELINE_MAX_TOKENS));
	json_object_set_new(j, "min_pixels",
			    json_integer((json_int_t)o->tile.min_pixels));
	json_object_set_new(j, "max_pixels",
			    json_integer((json_int_t)o->tile.max_pixels));
	if (o->prompt)
		json_object_set_new(j, "prompt", json_string(o->prompt));
	if (o->rules_path)
		json_object_set_new(j, "rules", json_string(o->rules_path));
	if (o->extract) {
		const struct ed_schema *sc =
		    ed_pipeline_extractor_schema(o->extract);
		json_object_set_new(j, "schema",
				    json_string(ed_schema_sha256(sc)));
		json_object_set_new(
		    j, "extract_scope",
		    json_string(o->extract_scope == ED_EXTRACT_PAGE
				    ? "page"
				    : "document"));
	}
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

/* Run the pipeline over paths and work out the exit status. */
static int run(struct ocr_cfg *cfg, const char *const *paths, size_t n,
	       int failed_roots, int root_code, bool summary)
{
	struct ed_pipeline *p;
	struct ed_run_result rr;
	struct ocr_ctx ctx = {.format = cfg->format};
	char err[512];
	int rc, status = 0;

	cfg->o.options_json = options_json(&cfg->o);
	cfg->o.interrupted = &g_interrupted;
	cfg->o.on_page = on_page;
	cfg->o.on_doc = on_doc;
	cfg->o.on_progress = on_progress;
	cfg->o.on_extraction = on_extraction;
	cfg->o.ud = &ctx;
	ctx.tty = !g_quiet && isatty(2);
	if ((rc = ed_pipeline_open(&p, &cfg->o, err, sizeof err))) {
		msg("%s", err);
		free((char *)cfg->o.options_json);
		return exit_status(rc);
	}
	if (g_verbose && *ed_pipeline_model_id(p))
		msg("model %s", ed_pipeline_model_id(p));
	rc = ed_pipeline_run(p, paths, n, &rr);
	clear_progress(&ctx);
	if (g_verbose) {
		int64_t steps, tokens;
		int widest;
		ed_pipeline_decode_stats(p, &steps, &tokens, &widest);
		if (steps)
			msg("native: %lld tokens in %lld decode passes, up to "
			    "%d sequence%s a pass",
			    (long long)tokens, (long long)steps, widest,
			    widest == 1 ? "" : "s");
	}
	ed_pipeline_close(p);
	free((char *)cfg->o.options_json);
	if (rc == ED_EINTR) {
		if (ctx.output_failed) {
			msg("cannot write standard output; finished pages are "
			    "stored");
			return EX_IOERR_;
		}
		msg("interrupted; finished pages are stored");
		return EX_INTERRUPTED;
	}
	if (rc) {
		msg("%s; finished pages are stored", rr.stop_error);
		return exit_status(rc);
	}
	if (rr.elsewhere && !g_quiet)
		msg("%d page%s left to another process working on this "
		    "database",
		    rr.elsewhere, rr.elsewhere == 1 ? "" : "s");
	if (summary && !g_quiet)
		msg("%d document%s (%d failed): %d pages done, %d blank, %d "
		    "need the model, %d failed, %d already stored",
		    rr.docs, rr.docs == 1 ? "" : "s", rr.docs_failed, rr.done,
		    rr.blank, rr.needs_model, rr.failed, rr.cached);
	if (ctx.total_need)
		msg("%d page%s the model and %s stored as needs-model; "
		    "configure one with --model DIR, --server URL or "
		    "ERNIE_DOC_MODEL (see MODEL WEIGHTS in ernie-doc(1))",
		    ctx.total_need, ctx.total_need == 1 ? " needs" : "s need",
		    ctx.total_need == 1 ? "was" : "were");
	ctx.failed_inputs += failed_roots;
	if (failed_roots)
		ctx.last_code = root_code;
	if (ctx.failed_inputs) {
		/* one input that failed whole says why; otherwise 1 */
		status = n + (size_t)failed_roots == 1
			     ? exit_status(ctx.last_code)
			     : EX_SOME_FAILED;
		if (status == 0)
			status = EX_SOME_FAILED;
	}
	return status;
}

int cmd_ocr(int argc, char **argv)
{
	struct ocr_cfg cfg = {0};
	bool stdin_used = false;
	int status;

	ed_pipeline_opts_default(&cfg.o);
	cfg.inputs = calloc((size_t)argc + 1, sizeof *cfg.inputs);
	if (!cfg.inputs)
		return EX_SOFTWARE_;
	status = parse_args(&cfg, argc, argv, "ocr", ocr_opts);
	if (status < 0) {
		usage_ocr(stdout);
		status = 0;
		goto out;
	}
	if (status)
		goto usage_err;
	if (cfg.ninputs == 0) {
		if (isatty(0)) {
			msg("ocr: no input files and standard input is a "
			    "terminal");
			status = EX_USAGE_;
			goto usage_err;
		}
		cfg.inputs[cfg.ninputs++] = "-";
	}
	for (int i = 0; i < cfg.ninputs; i++) {
		if (strcmp(cfg.inputs[i], "-") != 0)
			continue;
		if (stdin_used) {
			msg("ocr: standard input ('-') given twice");
			status = EX_USAGE_;
			goto usage_err;
		}
		stdin_used = true;
	}
	status = run(&cfg, cfg.inputs, (size_t)cfg.ninputs, 0, 0, false);
	goto out;
usage_err:
	if (status == EX_USAGE_)
		usage_ocr(stderr);
out:
	ed_pipeline_extractor_close(cfg.x);
	free(cfg.password);
	free(cfg.inputs);
	return status;
}

int cmd_batch(int argc, char **argv)
{
	struct ocr_cfg cfg = {0};
	struct ed_pathlist list = {0};
	const char **roots = NULL, **paths = NULL;
	int nroots = 0, failed_roots = 0, status;
	char err[512];

	ed_pipeline_opts_default(&cfg.o);
	cfg.inputs = calloc((size_t)argc + 1, sizeof *cfg.inputs);
	roots = calloc((size_t)argc + 1, sizeof *roots);
	if (!cfg.inputs || !roots) {
		status = EX_SOFTWARE_;
		goto out;
	}
	status = parse_args(&cfg, argc, argv, "batch", batch_opts);
	if (status < 0) {
		usage_batch(stdout);
		status = 0;
		goto out;
	}
	if (status)
		goto usage_err;
	if (cfg.ninputs == 0) {
		msg("batch: no directories given");
		status = EX_USAGE_;
		goto usage_err;
	}
	for (int i = 0; i < cfg.ninputs; i++) {
		struct stat sb;
		if (strcmp(cfg.inputs[i], "-") == 0) {
			msg("batch: standard input is for 'ernie-doc ocr'");
			status = EX_USAGE_;
			goto usage_err;
		}
		/* a missing root is one bad input, not the end of the batch */
		if (stat(cfg.inputs[i], &sb) < 0) {
			msg("cannot open '%s': no such file or directory",
			    cfg.inputs[i]);
			failed_roots++;
			continue;
		}
		roots[nroots++] = cfg.inputs[i];
	}
	if ((status = ed_pipeline_walk(roots, (size_t)nroots, &list, err,
				       sizeof err))) {
		msg("%s", err);
		status = exit_status(status);
		goto out;
	}
	if (cfg.shard_n > 1)
		ed_pipeline_shard(&list, cfg.shard_i, cfg.shard_n);
	if (g_verbose)
		msg("batch: %zu document%s%s, %zu other file%s skipped", list.n,
		    list.n == 1 ? "" : "s",
		    cfg.shard_n > 1 ? " in this shard" : "", list.skipped,
		    list.skipped == 1 ? "" : "s");
	paths = calloc(list.n + 1, sizeof *paths);
	if (!paths) {
		status = EX_SOFTWARE_;
		goto out;
	}
	for (size_t i = 0; i < list.n; i++)
		paths[i] = ed_pipeline_path_at(&list, i);
	status = run(&cfg, paths, list.n, failed_roots, ED_ENOENT, true);
	goto out;
usage_err:
	if (status == EX_USAGE_)
		usage_batch(stderr);
out:
	ed_pipeline_pathlist_free(&list);
	ed_pipeline_extractor_close(cfg.x);
	free(paths);
	free(roots);
	free(cfg.password);
	free(cfg.inputs);
	return status;
}
