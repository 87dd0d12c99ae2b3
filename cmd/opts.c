/*
 * opts.c - a small long-option parser (getopt_long is not POSIX) and the
 * password file reader shared by the subcommands.
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct opt *find_long(const struct opt *opts, const char *name,
				   size_t n)
{
	for (; opts->name; opts++)
		if (strlen(opts->name) == n &&
		    strncmp(opts->name, name, n) == 0)
			return opts;
	return NULL;
}

static const struct opt *find_short(const struct opt *opts, char c)
{
	for (; opts->name; opts++)
		if (opts->shortname == c)
			return opts;
	return NULL;
}

int opt_next(struct optstate *s, int argc, char **argv, const struct opt *opts,
	     const char *cmd, const char **arg)
{
	const struct opt *o;
	const char *a;

	*arg = NULL;
	if (s->bundle && *s->bundle) {
		char c = *s->bundle++;
		o = find_short(opts, c);
		if (!o || o->has_arg) {
			msg("%s: unknown option '-%c'", cmd, c);
			return -2;
		}
		return o->id;
	}
	if (s->i == 0)
		s->i = 1; /* argv[0] is the subcommand */
	if (s->i >= argc)
		return -1;
	a = argv[s->i++];
	if (s->dashdash || a[0] != '-' || strcmp(a, "-") == 0) {
		*arg = a;
		return 0;
	}
	if (strcmp(a, "--") == 0) {
		s->dashdash = true;
		return opt_next(s, argc, argv, opts, cmd, arg);
	}
	if (a[1] == '-') {
		const char *eq = strchr(a + 2, '=');
		size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		o = find_long(opts, a + 2, n);
		if (!o) {
			msg("%s: unknown option '%.*s'", cmd, (int)n + 2, a);
			return -2;
		}
		if (!o->has_arg) {
			if (eq) {
				msg("%s: option '--%s' takes no value", cmd,
				    o->name);
				return -2;
			}
			return o->id;
		}
		if (eq) {
			*arg = eq + 1;
			return o->id;
		}
		if (s->i >= argc) {
			msg("%s: option '--%s' needs a value", cmd, o->name);
			return -2;
		}
		*arg = argv[s->i++];
		return o->id;
	}
	o = find_short(opts, a[1]);
	if (!o) {
		msg("%s: unknown option '-%c'", cmd, a[1]);
		return -2;
	}
	if (o->has_arg) {
		if (a[2]) {
			*arg = a + 2;
		} else if (s->i < argc) {
			*arg = argv[s->i++];
		} else {
			msg("%s: option '-%c' needs a value", cmd, a[1]);
			return -2;
		}
		return o->id;
	}
	s->bundle = a + 2;
	return o->id;
}

int read_password_file(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	char buf[4097];
	size_t n;

	*out = NULL;
	if (!f) {
		msg("cannot open password file '%s': %s", path,
		    strerror(errno));
		return ED_ENOENT;
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = strdup(buf);
	return *out ? 0 : ED_ENOMEM;
}

int opt_choice(const char *cmd, const char *opt, const char *arg,
	       const char *const *choices)
{
	char list[256] = "";
	size_t n = 0, len = 0;

	for (n = 0; choices[n]; n++)
		if (strcmp(arg, choices[n]) == 0)
			return (int)n;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
					i == 0	     ? ""
					: i + 1 == n ? " or "
						     : ", ",
					choices[i]);
	msg("%s: --%s is %s, not '%s'", cmd, opt, list, arg);
	return -1;
}
