/*
 * jinjarender.c - render a chat template with the variables of a JSON
 * file, for the differential test against Python's jinja2
 * (tests/jinja_diff.py): jinjarender TEMPLATE VARS.json. The output goes
 * to stdout as it is; an error to stderr, exit status 1.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/jinja.h"

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)len + 1)) &&
	    fread(b, 1, (size_t)len, f) == (size_t)len) {
		b[len] = '\0';
		*n = (size_t)len;
	} else {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

int main(int argc, char **argv)
{
	struct ed_jinja *t;
	struct ed_buf out;
	json_error_t je;
	json_t *vars;
	char err[1024], *src;
	size_t n = 0;
	int rc;

	if (argc != 3) {
		fputs("usage: jinjarender TEMPLATE VARS.json\n", stderr);
		return 2;
	}
	if (!(src = slurp(argv[1], &n))) {
		fprintf(stderr, "cannot read %s\n", argv[1]);
		return 2;
	}
	if (!(vars = json_load_file(argv[2], 0, &je))) {
		fprintf(stderr, "%s: %s\n", argv[2], je.text);
		free(src);
		return 2;
	}
	if ((rc = ed_jinja_parse(src, n, &t, err, sizeof err)) == 0) {
		ed_buf_init(&out, 0);
		rc = ed_jinja_render(t, vars, &out, err, sizeof err);
		if (!rc && out.len)
			fwrite(out.data, 1, out.len, stdout);
		ed_buf_release(&out);
		ed_jinja_free(t);
	}
	json_decref(vars);
	free(src);
	if (rc) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	return 0;
}
