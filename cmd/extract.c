/*
 * extract.c - `ernie-doc extract`: fill a JSON Schema from what the store
 * already holds, per page or per document, from the stored text (any
 * model, the text-only ERNIE-4.5 ones included) or the re-rendered page
 * image (a VL model). One JSON object per result on stdout; resumable,
 * --force recomputes.
 */
#include "cmd.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"

static const struct opt extract_opts[] = {
    {"help", 'h', false, O_HELP},
    {"quiet", 'q', false, O_QUIET},
    {"verbose", 'v', false, O_VERBOSE},
    {"db", 0, true, O_DB},
    {"schema", 0, true, O_SCHEMA},
    {"scope", 0, true, O_SCOPE},
    {"from", 0, true, O_FROM},
    {"model", 0, true, O_MODEL},
    {"server", 0, true, O_SERVER},
    {"model-name", 0, true, O_MODEL_NAME},
    {"prompt", 0, true, O_PROMPT},
    {"force", 0, false, O_FORCE},
    {"temperature", 0, true, O_TEMPERATURE},
    {"top-p", 0, true, O_TOP_P},
    {"seed", 0, true, O_SEED},
    {"max-tokens", 0, true, O_MAX_TOKENS},
    {"jobs", 'j', true, O_JOBS},
    {"threads", 0, true, O_THREADS},
    {"timeout", 0, true, O_TIMEOUT},
    {"retries", 0, true, O_RETRIES},
    {"retry-wait", 0, true, O_RETRY_WAIT},
    {"chat-template", 0, true, O_CHAT_TEMPLATE},
    {"template", 0, true, O_TEMPLATE},
    {"password-file", 0, true, O_PASSWORD_FILE},
    {"max-pixels", 0, true, O_MAX_PIXELS},
    {NULL, 0, false, 0},
};

void usage_extract(FILE *f)
{
	fputs("usage: ernie-doc extract --schema FILE.json [--db FILE]\n"
	      "         [--scope page|document] [--from text|image]\n"
	      "         [--model DIR | --server URL [--model-name ID]]\n"
	      "         [--prompt TEXT] [--force] [--temperature T] "
	      "[--top-p P]\n"
	      "         [--seed N] [--max-tokens N] [-j N | --jobs N] "
	      "[--threads N]\n"
	      "         [--timeout SECONDS] [--retries N] [--retry-wait "
	      "SECONDS]\n"
	      "         [--chat-template FILE] [--template pt|thinking]\n"
	      "         [--password-file FILE] [--max-pixels N] [-q] [-v] "
	      "[DOC ...]\n"
	      "  Fill the JSON Schema from the pages the store already has "
	      "(every\n"
	      "  document, or each DOC: a path, a sha256 prefix or an id), "
	      "without\n"
	      "  re-OCR; store the results and print one JSON object per "
	      "page (or\n"
	      "  document). A re-run resumes; --force recomputes.\n",
	      f);
}

struct xctx {
	enum ed_extract_scope scope;
	bool output_failed;
};

static void on_result(void *ud, const struct ed_extract_result *r)
{
	struct xctx *c = ud;
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "path", json_string(r->path));
	json_object_set_new(o, "sha256", json_string(r->sha256));
	if (c->scope == ED_EXTRACT_PAGE)
		json_object_set_new(o, "page", json_integer(r->page_no));
	put_extraction(o, "status", r->status, r->json, r->error);
	json_object_set_new(o, "cached", json_boolean(r->cached));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s) {
		puts(s);
		free(s);
	}
	fflush(stdout);
	if (ferror(stdout) && !c->output_failed) {
		c->output_failed = true;
		g_interrupted = 1;
	}
}

static int bad(const char *opt, const char *arg, const char *range)
{
	msg("extract: bad value '%s' for --%s (%s)", arg, opt, range);
	return EX_USAGE_;
}

int cmd_extract(int argc, char **argv)
{
	struct ed_extract_opts o = {0};
	struct ed_extract_summary sum;
	struct xctx ctx = {0};
	struct optstate os = {0};
	struct ed_extractor *x = NULL;
	const char *schema = NULL, *prompt = NULL, *arg;
	const char **docs = calloc((size_t)argc + 1, sizeof *docs);
	char *password = NULL;
	char err[512];
	bool model_given = false, server_given = false;
	int id, rc, status = 0;

	if (!docs)
		return EX_SOFTWARE_;
	o.db_path = "ernie-doc.db";
	o.retries = -1;
	o.jobs = 1;
	o.gen.top_p = 1;
	ed_render_tile_params_default(&o.tile);
	o.tile.max_pixels = ED_PIPELINE_MAX_PIXELS;
	while ((id = opt_next(&os, argc, argv, extract_opts, "extract",
			      &arg)) != -1) {
		long n;
		double d;
		uint64_t v;
		switch (id) {
		case -2: status = EX_USAGE_; goto usage;
		case 0: docs[o.ndocs++] = arg; break;
		case O_HELP: usage_extract(stdout); goto out;
		case O_QUIET: g_quiet = true; break;
		case O_VERBOSE: g_verbose++; break;
		case O_DB: o.db_path = arg; break;
		case O_SCHEMA: schema = arg; break;
		case O_SCOPE: {
			static const char *const sc[] = {"page", "document",
							 NULL};
			int k = opt_choice("extract", "scope", arg, sc);
			if (k < 0) {
				status = EX_USAGE_;
				goto usage;
			}
			o.scope = (enum ed_extract_scope)k;
			break;
		}
		case O_FROM: {
			static const char *const fr[] = {"text", "image", NULL};
			int k = opt_choice("extract", "from", arg, fr);
			if (k < 0) {
				status = EX_USAGE_;
				goto usage;
			}
			o.from = (enum ed_extract_from)k;
			break;
		}
		case O_MODEL:
			o.model_dir = arg;
			model_given = true;
			break;
		case O_SERVER:
			o.server_url = arg;
			server_given = true;
			break;
		case O_MODEL_NAME: o.model_name = arg; break;
		case O_PROMPT:
			if (!*arg) {
				msg("extract: --prompt is empty");
				status = EX_USAGE_;
				goto usage;
			}
			prompt = arg;
			break;
		case O_FORCE: o.force = true; break;
		case O_TEMPERATURE:
			if (ed_parse_double(arg, 0, 2, &d)) {
				status = bad("temperature", arg, "0 to 2");
				goto usage;
			}
			o.gen.temperature = (float)d;
			break;
		case O_TOP_P:
			if (ed_parse_double(arg, 0, 1, &d) || d <= 0) {
				status =
				    bad("top-p", arg, "above 0, at most 1");
				goto usage;
			}
			o.gen.top_p = (float)d;
			break;
		case O_SEED: {
			char *end;
			unsigned long long s = strtoull(arg, &end, 10);
			if (!*arg || *end || *arg == '-') {
				status = bad("seed", arg, "an integer");
				goto usage;
			}
			o.gen.seed = s;
			break;
		}
		case O_MAX_TOKENS:
			if (ed_parse_int(arg, 1, 1000000, &n)) {
				status = bad("max-tokens", arg, "1 to 1000000");
				goto usage;
			}
			o.gen.max_new_tokens = (int)n;
			break;
		case O_JOBS:
			if (ed_parse_int(arg, 1, 1024, &n)) {
				status = bad("jobs", arg, "1 to 1024");
				goto usage;
			}
			o.jobs = (int)n;
			break;
		case O_THREADS:
			if (ed_parse_int(arg, 1, 256, &n)) {
				status = bad("threads", arg, "1 to 256");
				goto usage;
			}
			o.threads = (int)n;
			break;
		case O_TIMEOUT:
			if (ed_parse_double(arg, 0.001, 86400, &o.timeout_s)) {
				status =
				    bad("timeout", arg, "seconds, up to 86400");
				goto usage;
			}
			break;
		case O_RETRIES:
			if (ed_parse_int(arg, 0, 100, &n)) {
				status = bad("retries", arg, "0 to 100");
				goto usage;
			}
			o.retries = (int)n;
			break;
		case O_RETRY_WAIT:
			if (ed_parse_double(arg, 0.001, 3600,
					    &o.retry_wait_s)) {
				status = bad("retry-wait", arg,
					     "seconds, up to 3600");
				goto usage;
			}
			break;
		case O_CHAT_TEMPLATE: o.chat_template = arg; break;
		case O_TEMPLATE: {
			static const char *const tv[] = {"pt", "thinking",
							 NULL};
			int k = opt_choice("extract", "template", arg, tv);
			if (k < 0) {
				status = EX_USAGE_;
				goto usage;
			}
			o.template_variant = tv[k];
			break;
		}
		case O_PASSWORD_FILE:
			free(password);
			password = NULL;
			if ((rc = read_password_file(arg, &password))) {
				status = exit_status(rc);
				goto out;
			}
			o.password = password;
			break;
		case O_MAX_PIXELS:
			if (ed_parse_size(arg, &v) || v == 0) {
				status = bad("max-pixels", arg, "pixels");
				goto usage;
			}
			o.tile.max_pixels = v;
			break;
		}
	}
	if (!schema) {
		msg("extract: --schema FILE is required");
		status = EX_USAGE_;
		goto usage;
	}
	if (model_given && server_given) {
		msg("extract: --model and --server exclude each other");
		status = EX_USAGE_;
		goto usage;
	}
	if (o.from == ED_EXTRACT_IMAGE && o.scope == ED_EXTRACT_DOCUMENT) {
		msg("extract: --from image reads one page at a time: use "
		    "--scope page");
		status = EX_USAGE_;
		goto usage;
	}
	if (!model_given && !server_given) {
		const char *m = getenv("ERNIE_DOC_MODEL");
		const char *s = getenv("ERNIE_DOC_SERVER");
		if (m && *m)
			o.model_dir = m;
		else if (s && *s)
			o.server_url = s;
	}
	if (o.server_url) {
		const char *key = getenv("ERNIE_DOC_API_KEY");
		const char *ca = getenv("SSL_CERT_FILE");
		o.api_key = key && *key ? key : NULL;
		o.ca_file = ca && *ca ? ca : NULL;
	}
	if ((rc = ed_pipeline_extractor_open(&x, schema, prompt, err,
					     sizeof err))) {
		msg("extract: %s", err);
		status = rc == ED_ENOENT ? EX_NOINPUT_ : EX_USAGE_;
		goto out;
	}
	{
		int64_t bound =
		    ed_schema_max_bytes(ed_pipeline_extractor_schema(x));
		if (bound >= 0 && o.gen.max_new_tokens > 0 &&
		    o.gen.max_new_tokens < bound && !g_quiet)
			msg("extract: --max-tokens %d is below the schema's "
			    "bound of %lld tokens: an answer may end "
			    "incomplete",
			    o.gen.max_new_tokens, (long long)bound);
		else if (g_verbose && bound >= 0)
			msg("extract: every answer completes within %lld "
			    "tokens",
			    (long long)bound);
		else if (g_verbose)
			msg("extract: the schema has unbounded strings or "
			    "arrays: --max-tokens bounds the answers");
	}
	o.x = x;
	o.docs = docs;
	o.interrupted = &g_interrupted;
	o.on_result = on_result;
	o.ud = &ctx;
	ctx.scope = o.scope;
	rc = ed_pipeline_extract_run(&o, &sum, err, sizeof err);
	if (rc == ED_EINTR) {
		msg(ctx.output_failed ? "cannot write standard output; "
					"finished results are stored"
				      : "interrupted; finished results are "
					"stored");
		status = ctx.output_failed ? EX_IOERR_ : EX_INTERRUPTED;
		goto out;
	}
	if (rc) {
		msg("extract: %s", err);
		status = exit_status(rc);
		goto out;
	}
	if (!g_quiet)
		msg("extract: %d done, %d incomplete, %d invalid, %d failed "
		    "(%d already stored)",
		    sum.done, sum.incomplete, sum.invalid, sum.failed,
		    sum.cached);
	status = sum.incomplete + sum.invalid + sum.failed ? EX_SOME_FAILED : 0;
	goto out;
usage:
	usage_extract(stderr);
out:
	ed_pipeline_extractor_close(x);
	free(password);
	free(docs);
	return status;
}
