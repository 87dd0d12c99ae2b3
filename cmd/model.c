/*
 * model.c - `ernie-doc model info|check|eval|quantize`: what a checkpoint
 * holds, whether it loads and runs, a golden-style evaluation that writes
 * every intermediate tensor to a safetensors file, and quantization into
 * one GGUF file.
 */
#include "cmd.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "pipeline/pipeline.h"

static const struct opt model_opts[] = {
    {"help", 'h', false, O_HELP},
    {"verbose", 'v', false, O_VERBOSE},
    {"out", 'o', true, O_OUT},
    {"threads", 0, true, O_THREADS},
    {"type", 0, true, O_TYPE},
    {"quiet", 'q', false, O_QUIET},
    {"vision-int8", 0, false, O_VISION_INT8},
    {"chat-template", 0, true, O_CHAT_TEMPLATE},
    {"template", 0, true, O_TEMPLATE},
    {"messages", 0, true, O_MESSAGES},
    {"tools", 0, true, O_TOOLS},
    {"thinking", 0, true, O_THINKING},
    {"ids", 0, false, O_IDS},
    {"layout", 0, true, O_LAYOUT},
    {"prompt", 0, true, O_PROMPT},
    {"max-tokens", 0, true, O_MAX_TOKENS},
    {"temperature", 0, true, O_TEMPERATURE},
    {"seed", 0, true, O_SEED},
    {NULL, 0, false, 0},
};

void usage_model(FILE *f)
{
	fputs(
	    "usage: ernie-doc model info [-v] [--chat-template FILE] "
	    "[--template pt|thinking]\n"
	    "         MODEL\n"
	    "       ernie-doc model prompt MODEL --messages FILE.json "
	    "[--tools FILE.json]\n"
	    "         [--thinking on|off] [--chat-template FILE] "
	    "[--template pt|thinking]\n"
	    "         [--ids]\n"
	    "       ernie-doc model generate MODEL [--prompt TEXT | --messages "
	    "FILE.json]\n"
	    "         [--max-tokens N] [--temperature T] [--seed N] "
	    "[--threads N]\n"
	    "       ernie-doc model check [--threads N] MODEL\n"
	    "       ernie-doc model eval [--threads N] [--vision-int8] MODEL "
	    "INPUTS.json\n"
	    "         -o OUT.safetensors\n"
	    "       ernie-doc model quantize [-q] [--threads N] --type "
	    "bf16|q8_0|q6_k|\n"
	    "         q4_k|q4_k_m|q4_0 [--layout ernie-doc|llama.cpp] MODEL "
	    "OUT.gguf\n"
	    "  Describe a checkpoint (a directory or a GGUF file), print the "
	    "prompt\n"
	    "  its chat template renders for OpenAI-style messages (--ids: its "
	    "token\n"
	    "  ids), stream a reply to a prompt through that template "
	    "(generate:\n"
	    "  text models too), check that it loads and runs, run a "
	    "golden-style "
	    "inputs.json\n"
	    "  and write every intermediate tensor, or quantize it into one "
	    "GGUF\n"
	    "  file.\n",
	    f);
}

static void on_note(void *ud, const char *note)
{
	if (*(int *)ud)
		msg("note: %s", note);
}

static int load_image(void *ud, const char *path, float **pixels, int *t,
		      int *h, int *w, char *err, size_t errlen)
{
	return ed_pipeline_tile_file(path, ud, 200, pixels, t, h, w, err,
				     errlen);
}

static const char *human(int64_t v, char *buf, size_t n)
{
	if (v >= 1000000000)
		snprintf(buf, n, "%.2f B", v / 1e9);
	else if (v >= 1000000)
		snprintf(buf, n, "%.2f M", v / 1e6);
	else
		snprintf(buf, n, "%lld", (long long)v);
	return buf;
}

struct qprogress {
	bool tty;
	double t0;
};

static void on_quantized(void *ud, const struct ed_quantize_progress *p)
{
	struct qprogress *q = ud;
	double s = (ed_now_ms() - q->t0) / 1000;

	if (!q->tty)
		return;
	fprintf(stderr,
		"\r\033[Kernie-doc: %zu/%zu tensors, %.0f/%.0f MiB read, "
		"%.0f MiB written, %.0f MiB/s",
		p->tensor, p->tensors, p->bytes_in / 1048576.0,
		p->bytes_total / 1048576.0, p->bytes_out / 1048576.0,
		s > 0 ? p->bytes_in / 1048576.0 / s : 0.0);
	fflush(stderr);
}

static int quantize(const char *src, const char *out, const char *type,
		    int layout, int threads)
{
	struct qprogress q = {!g_quiet && isatty(2), ed_now_ms()};
	int kind = type ? ed_model_quant_kind(type) : -1, rc;
	char err[512];

	if (kind < 0) {
		msg("model quantize: --type is bf16, q8_0, q6_k, q4_k, q4_k_m "
		    "or q4_0");
		return EX_USAGE_;
	}
	rc = ed_model_quantize_layout(src, out, kind, (enum ed_layout)layout,
				      threads, on_quantized, &q, err,
				      sizeof err);
	if (q.tty)
		fputs("\r\033[K", stderr);
	if (rc) {
		msg("%s", err);
		return exit_status(rc);
	}
	if (!g_quiet)
		msg("wrote '%s' (%s, %s layout) in %.1f s", out,
		    ed_model_quant_kind_name(kind),
		    layout ? "llama.cpp" : "ernie-doc",
		    (ed_now_ms() - q.t0) / 1000);
	return 0;
}

static char *read_file(const char *path, size_t cap, size_t *n);

static int on_gen_token(void *ud, int32_t id, const char *text, size_t len)
{
	(void)id;
	if (len && fwrite(text, 1, len, stdout) != len)
		return 1;
	fflush(stdout);
	*(bool *)ud = len ? text[len - 1] == '\n' : *(bool *)ud;
	return 0;
}

/* model generate: one reply to a prompt or a conversation, streamed. */
static int generate(struct ed_model *m, const char *prompt,
		    const char *messages, const struct ed_gen_params *g,
		    int threads)
{
	char err[1024], *mt = NULL;
	size_t n;
	struct ed_buf text;
	int32_t *ids = NULL;
	size_t nids = 0, nimg = 0;
	struct ed_prompt p;
	struct ed_session *s = NULL;
	struct ed_gen_result r = {0};
	bool nl = true;
	int rc;

	if (!ed_model_tokenizer(m)) {
		msg("model generate: the checkpoint has no tokenizer");
		return EX_CONFIG_;
	}
	if (messages && !(mt = read_file(messages, 64u << 20, &n))) {
		msg("model generate: cannot read '%s': %s", messages,
		    strerror(errno));
		return EX_NOINPUT_;
	}
	if (!messages) {
		/* one user turn */
		json_t *a = json_pack("[{s:s, s:s}]", "role", "user", "content",
				      prompt);
		mt = a ? json_dumps(a, 0) : NULL;
		json_decref(a);
		if (!mt) {
			msg("model generate: the prompt is not UTF-8 text");
			return EX_DATAERR_;
		}
	}
	ed_buf_init(&text, 0);
	rc = ed_model_render_messages(m, mt, NULL, -1, &text, err, sizeof err);
	free(mt);
	if (!rc)
		rc = ed_model_encode_prompt(m, text.data ? text.data : "",
					    text.len, &ids, &nids, &nimg, err,
					    sizeof err);
	ed_buf_release(&text);
	if (!rc && nimg > 0)
		rc = ed_err(err, sizeof err, ED_EINVAL,
			    "the conversation has images; 'model generate' "
			    "takes text");
	if (rc) {
		msg("model generate: %s", err);
		free(ids);
		return rc == ED_ENOMEM ? exit_status(rc) : EX_DATAERR_;
	}
	rc = ed_model_prompt_ids(m, ids, nids, NULL, 0, &p, err, sizeof err);
	free(ids);
	if (rc) {
		msg("model generate: %s", err);
		return exit_status(rc);
	}
	rc = ed_session_new(
	    &s, m,
	    &(struct ed_session_opts){.threads = threads,
				      .max_ctx = (int64_t)nids +
						 g->max_new_tokens + 1},
	    err, sizeof err);
	if (!rc)
		rc = ed_session_generate(s, &p, g, on_gen_token, &nl, &r, err,
					 sizeof err);
	ed_model_prompt_release(&p);
	ed_session_free(s);
	if (rc) {
		msg("model generate: %s", err);
		ed_gen_result_release(&r);
		return exit_status(rc);
	}
	if (!nl)
		putchar('\n');
	if (!g_quiet)
		msg("%zu tokens in, %zu out (%s), %.1f tokens/s", nids,
		    r.n_tokens, r.finish_reason ? r.finish_reason : "?",
		    r.ms_decode > 0 ? r.n_tokens * 1000.0 / r.ms_decode : 0.0);
	ed_gen_result_release(&r);
	return fflush(stdout) == 0 ? 0 : EX_IOERR_;
}

static void print_info(const struct ed_model *m, const struct ed_model_info *i)
{
	struct ed_template_info ti;
	char a[32], b[32];

	printf("architecture      %s%s%s%s\n", i->arch,
	       i->gguf_arch[0] ? " (GGUF '" : "", i->gguf_arch,
	       i->gguf_arch[0] ? "')" : "");
	printf("layout            %s\n", i->layout);
	printf("text              %d layers (%d MoE), hidden %d, heads %d/%d "
	       "(head_dim %d), vocab %d, RoPE %s\n",
	       i->layers, i->moe_layers, i->hidden, i->heads, i->kv_heads,
	       i->head_dim, i->vocab, i->rope_3d ? "3-D" : "1-D");
	if (i->moe_layers)
		printf("experts           %d text (width %d)%s%.0d%s%.0d%s, "
		       "top-%d, shared width %d; dense width %d\n",
		       i->experts[0], i->expert_inter[0],
		       i->has_vision ? " + " : "", i->experts[1],
		       i->has_vision ? " vision (width " : "",
		       i->expert_inter[1], i->has_vision ? ")" : "", i->moe_k,
		       i->shared_inter, i->dense_inter);
	if (i->has_vision)
		printf("vision            %d blocks, hidden %d, %d heads\n",
		       i->vit_depth, i->vit_hidden, i->vit_heads);
	else
		printf("vision            none (text-only checkpoint)\n");
	printf("head              %s\n",
	       i->tied_head ? "tied to embed_tokens" : "untied lm_head");
	printf("parameters        %s total, %s active per text token\n",
	       human(i->params, a, sizeof a),
	       human(i->params_active, b, sizeof b));
	printf("tensors           %d in %d file%s (%d unknown, ignored)\n",
	       i->n_tensors, i->n_shards, i->n_shards == 1 ? "" : "s",
	       i->n_unknown);
	if (i->file_type[0])
		printf("quantization mix  %s (general.file_type)\n",
		       i->file_type);
	printf("dtypes           ");
	for (int d = 0; d < ED_DT_COUNT; d++)
		if (i->bytes_by_dtype[d])
			printf(" %s %.1f MiB",
			       ed_model_dtype_name((enum ed_dtype)d),
			       i->bytes_by_dtype[d] / 1048576.0);
	printf("\n");
	if (i->params > 0) {
		/* the tensors' bytes, not the metadata's (a vocabulary) */
		double tb = 0;
		for (int d = 0; d < ED_DT_COUNT; d++)
			tb += (double)i->bytes_by_dtype[d];
		printf("bits per weight   %.2f\n",
		       8.0 * tb / (double)i->params);
	}
	printf("file size         %.1f MiB\n", i->file_bytes / 1048576.0);
	printf("resident memory   %.1f MiB (weights mapped in place)\n",
	       i->resident_bytes / 1048576.0);
	printf("kv cache          %.1f KiB per token of context (float32; "
	       "8,192 tokens: %.0f MiB a sequence)\n",
	       i->kv_bytes_per_token / 1024.0,
	       8192.0 * i->kv_bytes_per_token / 1048576.0);
	printf("tokenizer         %s\n",
	       i->has_tokenizer ? i->tokenizer : "none");
	if (i->rope_3d)
		printf(
		    "rope              3-D, theta %g, sections t/h/w %d/%d/%d "
		    "frequency pairs\n",
		    i->rope_theta, i->mrope[0], i->mrope[1], i->mrope[2]);
	else
		printf("rope              1-D, theta %g\n", i->rope_theta);
	ed_model_get_template(m, &ti);
	printf("chat template     %s\n", ti.origin);
	printf("variant           %s (told from %s)\n", ti.variant, ti.why);
}

static char *read_file(const char *path, size_t cap, size_t *n)
{
	FILE *f = fopen(path, "rb");
	struct ed_buf b;
	char buf[8192];
	size_t k;
	int rc = 0;

	if (!f)
		return NULL;
	ed_buf_init(&b, cap);
	while (!rc && (k = fread(buf, 1, sizeof buf, f)) > 0)
		rc = ed_buf_append(&b, buf, k);
	if (ferror(f) || rc) {
		fclose(f);
		ed_buf_release(&b);
		errno = rc ? EFBIG : EIO;
		return NULL;
	}
	fclose(f);
	if (ed_buf_putc(&b, 0)) {
		ed_buf_release(&b);
		return NULL;
	}
	*n = b.len - 1;
	return ed_buf_detach(&b, NULL);
}

/* model prompt: the template's text for the messages, or its token ids */
static int print_prompt(struct ed_model *m, const char *messages,
			const char *tools, int thinking, bool ids)
{
	char err[1024], *mt, *tt = NULL;
	size_t n;
	struct ed_buf out;
	int rc;

	if (!(mt = read_file(messages, 64u << 20, &n))) {
		msg("model prompt: cannot read '%s': %s", messages,
		    strerror(errno));
		return EX_NOINPUT_;
	}
	if (tools && !(tt = read_file(tools, 64u << 20, &n))) {
		msg("model prompt: cannot read '%s': %s", tools,
		    strerror(errno));
		free(mt);
		return EX_NOINPUT_;
	}
	ed_buf_init(&out, 0);
	rc = ed_model_render_messages(m, mt, tt, thinking, &out, err,
				      sizeof err);
	free(mt);
	free(tt);
	if (rc) {
		msg("model prompt: %s", err);
		ed_buf_release(&out);
		return rc == ED_ENOMEM ? exit_status(rc) : EX_DATAERR_;
	}
	if (ids) {
		int32_t *t = NULL;
		size_t nt = 0, nimg = (size_t)-1;
		if ((rc = ed_model_encode_prompt(m, out.data ? out.data : "",
						 out.len, &t, &nt, &nimg, err,
						 sizeof err))) {
			msg("model prompt: %s", err);
			ed_buf_release(&out);
			return rc == ED_EINVAL ? EX_DATAERR_ : exit_status(rc);
		}
		for (size_t i = 0; i < nt; i++)
			printf("%d\n", t[i]);
		free(t);
	} else if (out.len) {
		fwrite(out.data, 1, out.len, stdout);
	}
	ed_buf_release(&out);
	return fflush(stdout) == 0 ? 0 : EX_IOERR_;
}

int cmd_model(int argc, char **argv)
{
	struct optstate os = {0};
	const char *arg, *pos[3] = {NULL}, *out = NULL, *type = NULL;
	int npos = 0, id, verbose = 0, rc;
	bool vision_int8 = false, want_ids = false;
	const char *chat_template = NULL, *variant = NULL, *messages = NULL,
		   *tools = NULL;
	int thinking = -1, layout = 0;
	const char *gen_prompt = NULL;
	struct ed_gen_params gp = {.max_new_tokens = 512, .top_p = 1};
	long threads = 1;
	bool threads_given = false;
	struct ed_model *m;
	char err[512];

	while ((id = opt_next(&os, argc, argv, model_opts, "model", &arg)) !=
	       -1) {
		switch (id) {
		case -2: goto usage_err;
		case 0:
			if (npos == 3) {
				msg("model: too many arguments");
				goto usage_err;
			}
			pos[npos++] = arg;
			break;
		case O_HELP: usage_model(stdout); return 0;
		case O_VERBOSE: verbose = 1; break;
		case O_OUT: out = arg; break;
		case O_TYPE: type = arg; break;
		case O_QUIET: g_quiet = true; break;
		case O_VISION_INT8: vision_int8 = true; break;
		case O_CHAT_TEMPLATE: chat_template = arg; break;
		case O_MESSAGES: messages = arg; break;
		case O_TOOLS: tools = arg; break;
		case O_IDS: want_ids = true; break;
		case O_PROMPT: gen_prompt = arg; break;
		case O_MAX_TOKENS: {
			long v;
			if (ed_parse_int(arg, 1, 1 << 20, &v)) {
				msg("model: bad --max-tokens '%s' (1 to "
				    "1048576)",
				    arg);
				goto usage_err;
			}
			gp.max_new_tokens = (int)v;
			break;
		}
		case O_TEMPERATURE: {
			double d;
			if (ed_parse_double(arg, 0, 2, &d)) {
				msg("model: bad --temperature '%s' (0 to 2)",
				    arg);
				goto usage_err;
			}
			gp.temperature = (float)d;
			break;
		}
		case O_SEED: {
			char *end;
			unsigned long long v = strtoull(arg, &end, 10);
			if (!*arg || *end || *arg == '-') {
				msg("model: bad --seed '%s'", arg);
				goto usage_err;
			}
			gp.seed = v;
			break;
		}
		case O_LAYOUT: {
			static const char *const lv[] = {"ernie-doc",
							 "llama.cpp", NULL};
			if ((layout = opt_choice("model", "layout", arg, lv)) <
			    0)
				goto usage_err;
			break;
		}
		case O_TEMPLATE: {
			static const char *const tv[] = {"pt", "thinking",
							 NULL};
			int k = opt_choice("model", "template", arg, tv);
			if (k < 0)
				goto usage_err;
			variant = tv[k];
			break;
		}
		case O_THINKING: {
			static const char *const on[] = {"off", "on", NULL};
			if ((thinking =
				 opt_choice("model", "thinking", arg, on)) < 0)
				goto usage_err;
			break;
		}
		case O_THREADS:
			if (ed_parse_int(arg, 1, 256, &threads)) {
				msg("model: bad --threads '%s' (1 to 256)",
				    arg);
				goto usage_err;
			}
			threads_given = true;
			break;
		}
	}
	if (npos < 2) {
		msg("model: expected info, prompt, generate, check, eval or "
		    "quantize and a model");
		goto usage_err;
	}
	if (strcmp(pos[0], "info") && strcmp(pos[0], "check") &&
	    strcmp(pos[0], "eval") && strcmp(pos[0], "quantize") &&
	    strcmp(pos[0], "prompt") && strcmp(pos[0], "generate")) {
		msg("model: '%s' is not info, prompt, generate, check, eval or "
		    "quantize",
		    pos[0]);
		goto usage_err;
	}
	if (strcmp(pos[0], "generate") == 0 &&
	    (npos != 2 || !gen_prompt == !messages)) {
		msg("model generate: needs MODEL and one of --prompt TEXT or "
		    "--messages FILE.json");
		goto usage_err;
	}
	if (strcmp(pos[0], "prompt") == 0 && (npos != 2 || !messages)) {
		msg("model prompt: needs MODEL and --messages FILE.json");
		goto usage_err;
	}
	if (strcmp(pos[0], "quantize") == 0) {
		if (npos != 3) {
			msg("model quantize: needs MODEL OUT.gguf");
			goto usage_err;
		}
		return quantize(pos[1], pos[2], type, layout,
				threads_given
				    ? (int)threads
				    : (int)sysconf(_SC_NPROCESSORS_ONLN));
	}
	if (strcmp(pos[0], "eval") == 0 && (npos != 3 || !out)) {
		msg("model eval: needs MODEL_DIR INPUTS.json -o "
		    "OUT.safetensors");
		goto usage_err;
	}
	if ((rc = ed_model_open(&m, pos[1], on_note, &verbose, err,
				sizeof err))) {
		msg("%s", err);
		return exit_status(rc);
	}
	if (variant && (rc = ed_model_set_variant(
			    m, (enum ed_variant)ed_model_variant_parse(variant),
			    err, sizeof err))) {
		msg("%s", err);
		ed_model_close(m);
		return exit_status(rc == ED_ENOMEM ? rc : ED_ECONFIG);
	}
	if (chat_template && (rc = ed_model_load_chat_template(
				  m, chat_template, err, sizeof err))) {
		msg("%s", err);
		ed_model_close(m);
		return rc == ED_ENOENT	 ? EX_NOINPUT_
		       : rc == ED_ENOMEM ? exit_status(rc)
					 : EX_CONFIG_;
	}
	if (strcmp(pos[0], "info") == 0) {
		struct ed_model_info i;
		ed_model_get_info(m, &i);
		print_info(m, &i);
	} else if (strcmp(pos[0], "prompt") == 0) {
		rc = print_prompt(m, messages, tools, thinking, want_ids);
		ed_model_close(m);
		return rc;
	} else if (strcmp(pos[0], "generate") == 0) {
		rc = generate(m, gen_prompt, messages, &gp,
			      threads_given
				  ? (int)threads
				  : (int)sysconf(_SC_NPROCESSORS_ONLN));
		ed_model_close(m);
		return rc;
	} else if (strcmp(pos[0], "check") == 0) {
		struct ed_session *s;
		struct ed_prompt p;
		const float *logits;
		struct ed_model_ids ids;
		int32_t t[4];
		double t0 = ed_now_ms();

		ed_model_get_ids(m, &ids);
		t[0] = ids.bos >= 0 ? ids.bos : 0;
		t[1] = t[2] = t[3] = 3;
		if ((rc = ed_session_new(
			 &s, m,
			 &(struct ed_session_opts){.threads = (int)threads,
						   .max_ctx = 64},
			 err, sizeof err)) ||
		    (rc = ed_model_prompt_ids(m, t, 4, NULL, 0, &p, err,
					      sizeof err))) {
			msg("%s", err);
			ed_model_close(m);
			return exit_status(rc == ED_ENOMEM ? rc : ED_ECONFIG);
		}
		rc = ed_session_prefill(s, &p, &logits, err, sizeof err);
		ed_model_prompt_release(&p);
		ed_session_free(s);
		if (rc) {
			msg("%s", err);
			ed_model_close(m);
			return exit_status(rc);
		}
		printf("ok: loaded and ran a 4-token forward in %.0f ms\n",
		       ed_now_ms() - t0);
	} else {
		struct ed_eval ev;
		struct ed_tile_params tp;
		ed_render_tile_params_default(&tp);
		if (vision_int8 &&
		    (rc = ed_model_set_vision_int8(m, err, sizeof err))) {
			msg("%s", err);
			ed_model_close(m);
			return exit_status(rc == ED_ENOMEM ? rc : ED_ECONFIG);
		}
		if ((rc = ed_model_eval(m, pos[2], load_image, &tp,
					(int)threads, &ev, err, sizeof err)) ||
		    (rc =
			 ed_model_st_write(out, ev.t, ev.n, err, sizeof err))) {
			msg("%s", err);
			ed_model_close(m);
			return exit_status(rc);
		}
		if (verbose)
			msg("wrote %zu tensors to '%s'", ev.n, out);
		ed_model_eval_release(&ev);
	}
	ed_model_close(m);
	return 0;
usage_err:
	usage_model(stderr);
	return EX_USAGE_;
}
