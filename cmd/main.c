/*
 * main.c - the ernie-doc command: global options, the command table,
 * signals, exit statuses. Each subcommand lives in its own file.
 */
#include "cmd.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

volatile sig_atomic_t g_interrupted;
bool g_quiet;
int g_verbose;

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f);
	const char *summary;
} commands[] = {
    {"ocr", cmd_ocr, usage_ocr, "OCR files, or standard input"},
    {"batch", cmd_batch, usage_batch,
     "OCR directories: parallel, resumable, shardable"},
    {"merge", cmd_merge, usage_merge, "combine databases without duplicates"},
    {"render", cmd_render, usage_render, "write pages as PNG images"},
    {"tiles", cmd_tiles, usage_tiles,
     "show how pages are tiled for the vision model"},
    {"query", cmd_query, usage_query, "run read-only SQL on the database"},
    {"search", cmd_search, usage_search, "full-text search, ranked"},
    {"export", cmd_export, usage_export, "rebuild a document's text"},
    {"extract", cmd_extract, usage_extract,
     "fill a JSON Schema from stored pages"},
    {"report", cmd_report, usage_report,
     "one HTML page about the whole store"},
    {"model", cmd_model, usage_model,
     "describe, check or evaluate a model checkpoint"},
};

int exit_status(int code)
{
	switch (code) {
	case ED_OK: return 0;
	case ED_EINVAL: return EX_USAGE_;
	case ED_EFORMAT:
	case ED_ETOOBIG: return EX_DATAERR_;
	case ED_ENOENT: return EX_NOINPUT_;
	case ED_EUNAVAIL: return EX_UNAVAILABLE_;
	case ED_ECREATE: return EX_CANTCREAT_;
	case ED_EIO: return EX_IOERR_;
	case ED_EAGAIN: return EX_TEMPFAIL_;
	case ED_EPASSWORD: return EX_NOPERM_;
	case ED_ECONFIG: return EX_CONFIG_;
	case ED_EINTR: return EX_INTERRUPTED;
	case ED_ENEEDMODEL: return EX_SOME_FAILED;
	default: return EX_SOFTWARE_;
	}
}

void msg(const char *fmt, ...)
{
	va_list ap;

	fputs("ernie-doc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void on_signal(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static void usage(FILE *f)
{
	fputs("usage: ernie-doc [--help] [--version] COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "Turn PDFs and scans into searchable, structured data.\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < ED_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fputs("\n", f);
	for (size_t i = 0; i < ED_ARRAY_LEN(commands); i++) {
		commands[i].usage(f);
		fputs("\n", f);
	}
	fputs("options:\n"
	      "  -h, --help               print usage and exit\n"
	      "  --version                print versions of ernie-doc and "
	      "its libraries\n"
	      "  -q, --quiet              no per-document lines or progress\n"
	      "  -v, --verbose            per-document lines even with "
	      "progress\n"
	      "  --db FILE                the database (default "
	      "ernie-doc.db)\n"
	      "  --model DIR              native engine checkpoint "
	      "(ERNIE_DOC_MODEL)\n"
	      "  --server URL             OpenAI-compatible server "
	      "(ERNIE_DOC_SERVER);\n"
	      "                           API key from ERNIE_DOC_API_KEY only,\n"
	      "                           CAs for https from SSL_CERT_FILE\n"
	      "  --model-name ID          the server's model id (default: "
	      "its first)\n"
	      "  --mode MODE              ocr (default, non-thinking), think, "
	      "or auto\n"
	      "                           (ocr, then think with zoom for "
	      "flagged pages)\n"
	      "  --zoom                   think: let the model zoom into the "
	      "page\n"
	      "  --zoom-steps N           zooms per page (default 3)\n"
	      "  --save-zooms DIR         write each zoom's crop as PNG\n"
	      "  --prompt TEXT            a custom task instead of the OCR "
	      "prompt\n"
	      "  --rules FILE             extra NAME PATTERN rules (PCRE2) "
	      "for fields\n"
	      "  --temperature T          sampling temperature (default 0: "
	      "greedy)\n"
	      "  --top-p P                nucleus sampling (default 1: off)\n"
	      "  --seed N                 sampling seed\n"
	      "  -j, --jobs N             pages in flight (default 1)\n"
	      "  --threads N              engine threads per job (default 1)\n"
	      "  --max-tokens N           tokens generated per page "
	      "(default 4096)\n"
	      "  --timeout SECONDS        one server request (default 600)\n"
	      "  --retries N              retries of a failed request "
	      "(default 4)\n"
	      "  --retry-wait SECONDS     first backoff, doubling (default "
	      "0.5)\n"
	      "  --shard I/N              batch: only shard I of N of the "
	      "inputs\n"
	      "  --pages RANGE            pages to process, e.g. 1-3,7,9-end\n"
	      "  --dpi N                  PDF rasterization resolution "
	      "(default 200)\n"
	      "  --text-layer MODE        auto (default), never or only\n"
	      "  --format FORMAT          output format of the command\n"
	      "  --force                  recompute finished pages\n"
	      "  --password-file FILE     password of encrypted PDFs\n"
	      "  --max-page-pixels N      refuse larger pages (default "
	      "178956970)\n"
	      "  --max-stdin BYTES        refuse larger standard input "
	      "(default 1G)\n"
	      "  -o, --out PATH           render: output directory; model "
	      "eval: output\n"
	      "                           file; merge: the database to "
	      "write\n"
	      "  --min-pixels N           smart_resize minimum (3136)\n"
	      "  --max-pixels N           smart_resize maximum (4842768)\n"
	      "  --dump FILE              tiles: write the first page's "
	      "patches\n"
	      "  --limit N                search: at most N results "
	      "(default 20)\n"
	      "  --type TYPE              model quantize: bf16, q8_0, q6_k, "
	      "q4_k, q4_k_m\n"
	      "                           or q4_0\n"
	      "\n",
	      f);
	fputs("exit status: 0 done, 1 some inputs failed or need the model, "
	      "64 usage,\n65 invalid input, 66 input missing, 69 model server "
	      "unavailable,\n70 internal error, 73 cannot create output, 74 "
	      "i/o error, 75 temporary\nfailure, 77 password required or "
	      "wrong, 78 bad model or configuration,\n130 interrupted. See "
	      "ernie-doc(1).\n",
	      f);
}

static void version(void)
{
	char libs[512];
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	ed_pipeline_versions(libs, sizeof libs);
	printf("ernie-doc %s\n%s, libcurl %s\n", ED_VERSION, libs,
	       cv ? cv->version : "?");
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (argc < 2) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		version();
		return 0;
	}
	for (size_t i = 0; i < ED_ARRAY_LEN(commands); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		/* once, before any thread could exist (libcurl-thread(3)) */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			msg("cannot initialize libcurl");
			return EX_SOFTWARE_;
		}
		rc = commands[i].run(argc - 1, argv + 1);
		curl_global_cleanup();
		if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
			msg("cannot write standard output");
			rc = EX_IOERR_;
		}
		return rc;
	}
	msg("'%s' is not a command; see 'ernie-doc --help'", argv[1]);
	return EX_USAGE_;
}
