/*
 * util.h - small helpers shared by the test binaries: read a file, compare
 * float arrays with the golden README's rule max|got - exp| <= rtol *
 * max|exp|.
 */
#ifndef ED_TEST_UTIL_H
#define ED_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static inline unsigned char *t_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		p = malloc((size_t)n + 1);
		if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
			free(p);
			p = NULL;
		} else if (p) {
			p[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return p;
}

/* max|got-exp| / max|exp| (0 when exp is all zero and got equals it). */
static inline double t_rel_err(const float *got, const double *exp, size_t n)
{
	double md = 0, me = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - exp[i]);
		if (d > md || d != d)
			md = d != d ? INFINITY : d;
		if (fabs(exp[i]) > me)
			me = fabs(exp[i]);
	}
	return me > 0 ? md / me : md;
}

/* Run a shell command made with printf formatting; its status. */
static inline int t_sh(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline int t_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* The build directory (ED_BUILD, default "build"): tools live there. */
static inline const char *t_build_dir(void)
{
	const char *b = getenv("ED_BUILD");
	return b ? b : "build";
}

/* A tokenizer trained by tests/mktok.sh in TOK and a tiny random
 * checkpoint on it in MODEL (tests/mkmodel); 0 when both were made. */
static inline int t_tiny_model(const char *tok, const char *model)
{
	return t_sh("sh tests/mktok.sh '%s' >/dev/null 2>&1", tok) ||
	       t_sh("'%s/tests/mkmodel' '%s' --tokenizer '%s' >/dev/null",
		    t_build_dir(), model, tok);
}

#endif
