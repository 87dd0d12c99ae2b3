/*
 * cmd.h - shared by the subcommands in cmd/: the option parser, exit
 * statuses, messages. cmd/ is the only code that reads argv or the
 * environment, prints, or exits.
 */
#ifndef ED_CMD_H
#define ED_CMD_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/common.h"

/* Exit statuses (sysexits.h values; see EXIT STATUS in ernie-doc(1)). */
enum {
	EX_SOME_FAILED = 1,
	EX_USAGE_ = 64,
	EX_DATAERR_ = 65,
	EX_NOINPUT_ = 66,
	EX_UNAVAILABLE_ = 69,
	EX_SOFTWARE_ = 70,
	EX_CANTCREAT_ = 73,
	EX_IOERR_ = 74,
	EX_TEMPFAIL_ = 75,
	EX_NOPERM_ = 77,
	EX_CONFIG_ = 78,
	EX_INTERRUPTED = 130,
};

/* Map an ED_E* code to an exit status. */
int exit_status(int code);

/* "ernie-doc: <message>" on stderr. */
void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set by the SIGINT/SIGTERM handler; polled by the pipeline. */
extern volatile sig_atomic_t g_interrupted;
extern bool g_quiet;
extern int g_verbose;

/* ---- options ------------------------------------------------------ */

struct opt {
	const char *name; /* long name without "--" */
	char shortname;	  /* 0 if none */
	bool has_arg;
	int id;
};

/*
 * Iterate argv. Returns the option id (> 0) with *arg set for options that
 * take one, 0 for a positional argument in *arg, -1 at the end, or -2 after
 * printing a usage error. Accepts --name=value, --name value, -x value,
 * bundled short flags without arguments, and "--".
 */
struct optstate {
	int i;
	bool dashdash;
	const char *bundle;
};
int opt_next(struct optstate *s, int argc, char **argv, const struct opt *opts,
	     const char *cmd, const char **arg);

/* Common option ids. */
enum {
	O_HELP = 1,
	O_QUIET,
	O_VERBOSE,
	O_DB,
	O_PAGES,
	O_DPI,
	O_PASSWORD_FILE,
	O_MAX_PAGE_PIXELS,
	O_MAX_STDIN,
	O_MIN_PIXELS,
	O_MAX_PIXELS,
	O_FORMAT,
	O_OUT,
	O_TEXT_LAYER,
	O_FORCE,
	O_MODE,
	O_DUMP,
	O_LIMIT,
	O_MODEL,
	O_THREADS,
	O_MAX_TOKENS,
	O_SERVER,
	O_MODEL_NAME,
	O_PROMPT,
	O_TEMPERATURE,
	O_TOP_P,
	O_SEED,
	O_JOBS,
	O_TIMEOUT,
	O_RETRIES,
	O_RETRY_WAIT,
	O_RULES,
	O_SHARD,
	O_ZOOM,
	O_ZOOM_STEPS,
	O_SAVE_ZOOMS,
	O_TYPE,
	O_VISION_INT8,
	O_CHAT_TEMPLATE,
	O_TEMPLATE,
	O_MESSAGES,
	O_TOOLS,
	O_THINKING,
	O_IDS,
	O_LAYOUT,
	O_SCHEMA,
	O_EXTRACT_SCOPE,
	O_SCOPE,
	O_FROM,
	O_IMAGE_DPI,
	O_FIRST_FREE,
};

/*
 * The index of arg in the NULL-terminated choices, or -1 after printing
 * "<cmd>: --<opt> is a, b or c".
 */
int opt_choice(const char *cmd, const char *opt, const char *arg,
	       const char *const *choices);

/* Read the first line of a password file (at most 4 KiB). 0 or ED_E*. */
int read_password_file(const char *path, char **out);

/* Subcommands: argc/argv start at the subcommand name. */
int cmd_ocr(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_tiles(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Print a subcommand's usage to f. */
void usage_ocr(FILE *f);
void usage_batch(FILE *f);
void usage_merge(FILE *f);
void usage_render(FILE *f);
void usage_tiles(FILE *f);
void usage_query(FILE *f);
void usage_search(FILE *f);
void usage_export(FILE *f);
void usage_model(FILE *f);
void usage_extract(FILE *f);
void usage_report(FILE *f);

/* An extraction's JSON members into o: "status", and "extraction" (the
 * value when done, the reply or partial output as a string otherwise,
 * null without one), "error" when there is one (ocr.c). */
struct json_t;
void put_extraction(struct json_t *o, const char *status_key,
		    const char *status, const char *json, const char *error);

#endif
