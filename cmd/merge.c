/*
 * merge.c - `ernie-doc merge`: combine the stores of several machines
 * (batch --shard I/N) into one, without duplicates.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

static const struct opt merge_opts[] = {
    {"help", 'h', false, O_HELP},
    {"quiet", 'q', false, O_QUIET},
    {"verbose", 'v', false, O_VERBOSE},
    {"out", 'o', true, O_OUT},
    {NULL, 0, false, 0},
};

void usage_merge(FILE *f)
{
	fputs(
	    "usage: ernie-doc merge [-q] [-v] -o OUT.db DB ...\n"
	    "  Copy the documents and pages of each DB into OUT.db (created\n"
	    "  when missing); a page already in OUT.db is not copied again.\n",
	    f);
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cmd_merge(int argc, char **argv)
{
	struct optstate os = {0};
	struct ed_store *st = NULL;
	const char *arg, *out = NULL, **in;
	char err[512];
	int nin = 0, id, rc, status = 0, failed = 0, last = 0;

	in = calloc((size_t)argc + 1, sizeof *in);
	if (!in)
		return EX_SOFTWARE_;
	while ((id = opt_next(&os, argc, argv, merge_opts, "merge", &arg)) !=
	       -1) {
		switch (id) {
		case -2: goto usage_err;
		case 0: in[nin++] = arg; break;
		case O_HELP:
			usage_merge(stdout);
			free(in);
			return 0;
		case O_QUIET: g_quiet = true; break;
		case O_VERBOSE: g_verbose++; break;
		case O_OUT: out = arg; break;
		}
	}
	if (!out || nin == 0) {
		msg("merge: %s",
		    !out ? "no output (-o OUT.db)" : "no databases to merge");
		goto usage_err;
	}
	if ((rc = ed_store_open(&st, out, 0, err, sizeof err))) {
		msg("%s", err);
		free(in);
		return exit_status(rc);
	}
	for (int i = 0; i < nin && !g_interrupted; i++) {
		struct ed_store_merge_stats sm;
		if (same_file(in[i], out)) {
			msg("%s: is the output; skipped", in[i]);
			continue;
		}
		/* one transaction per input: a bad one leaves the rest */
		if ((rc = ed_store_merge(st, in[i], &sm, err, sizeof err))) {
			msg("%s", err);
			failed++;
			last = rc;
			continue;
		}
		if (!g_quiet)
			msg("%s: %lld page%s added, %lld replaced, %lld "
			    "already "
			    "there; %lld new document%s",
			    in[i], (long long)sm.pages_added,
			    sm.pages_added == 1 ? "" : "s",
			    (long long)sm.pages_replaced,
			    (long long)sm.pages_skipped,
			    (long long)sm.docs_added,
			    sm.docs_added == 1 ? "" : "s");
	}
	ed_store_close(st);
	if (g_interrupted) {
		msg("interrupted; merged inputs are stored");
		status = EX_INTERRUPTED;
	} else if (failed) {
		status = nin == 1 ? exit_status(last) : EX_SOME_FAILED;
	}
	free(in);
	return status;
usage_err:
	usage_merge(stderr);
	free(in);
	return EX_USAGE_;
}
