/*
 * walk.c - the inputs of `batch`: directories walked recursively
 * (symbolic links followed, a directory never entered twice, so link
 * loops end), regular files kept when their first bytes say PDF, TIFF,
 * PNG or JPEG, the list sorted; and a stable shard of it per machine.
 */
#include "pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct seen {
	dev_t dev;
	ino_t ino;
};

struct walker {
	struct ed_pathlist *l;
	size_t cap;
	struct seen *dirs;
	size_t ndirs, capdirs;
	const char *root;
	char *err;
	size_t errlen;
	int rc;
};

/* Paths carry their root length in front, for the shard hash: stored as
 * "<root length>\t<path>" until the walk ends. */
static int add_path(struct walker *w, const char *path)
{
	char *s;
	size_t n = strlen(path) + 24;

	if (w->l->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 256;
		char **np = realloc(w->l->path, nc * sizeof *np);
		if (!np)
			return ED_ENOMEM;
		w->l->path = np;
		w->cap = nc;
	}
	s = malloc(n);
	if (!s)
		return ED_ENOMEM;
	snprintf(s, n, "%zu\t%s", strlen(w->root), path);
	w->l->path[w->l->n++] = s;
	return 0;
}

static bool is_document(const char *path)
{
	unsigned char head[1024];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, head, sizeof head);
	close(fd);
	return n > 0 && ed_render_sniff(head, (size_t)n) != ED_RENDER_UNKNOWN;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct walker *w, const char *path, int depth)
{
	struct stat sb;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t nnames = 0;
	int rc = 0;

	if (stat(path, &sb) < 0)
		return depth == 0 ? ed_err(w->err, w->errlen, ED_ENOENT,
					   "cannot open '%s': %s", path,
					   strerror(errno))
				  : 0; /* a dangling link inside the tree */
	if (S_ISREG(sb.st_mode)) {
		if (depth == 0 || is_document(path))
			return add_path(w, path);
		w->l->skipped++;
		return 0;
	}
	if (!S_ISDIR(sb.st_mode) || depth > 64)
		return 0;
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i].dev == sb.st_dev && w->dirs[i].ino == sb.st_ino)
			return 0; /* seen: a link loop or a second way in */
	if (w->ndirs == w->capdirs) {
		size_t nc = w->capdirs ? 2 * w->capdirs : 64;
		struct seen *ns = realloc(w->dirs, nc * sizeof *ns);
		if (!ns)
			return ED_ENOMEM;
		w->dirs = ns;
		w->capdirs = nc;
	}
	w->dirs[w->ndirs++] = (struct seen){sb.st_dev, sb.st_ino};
	d = opendir(path);
	if (!d)
		return depth == 0 ? ed_err(w->err, w->errlen, ED_ENOENT,
					   "cannot open '%s': %s", path,
					   strerror(errno))
				  : 0;
	/* children in name order: the same tree is walked the same way on
	 * every machine, whatever order the file system keeps */
	while ((e = readdir(d))) {
		char **nn;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		nn = realloc(names, (nnames + 1) * sizeof *names);
		if (!nn || !(nn[nnames] = strdup(e->d_name))) {
			names = nn ? nn : names;
			rc = ED_ENOMEM;
			break;
		}
		names = nn;
		nnames++;
	}
	closedir(d);
	if (!rc && nnames)
		qsort(names, nnames, sizeof *names, cmp_name);
	for (size_t i = 0; i < nnames && !rc; i++) {
		size_t n = strlen(path) + strlen(names[i]) + 2;
		char *child = malloc(n);
		if (!child) {
			rc = ED_ENOMEM;
			break;
		}
		snprintf(child, n, "%s%s%s", path,
			 path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
		rc = walk(w, child, depth + 1);
		free(child);
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int cmp_path(const void *a, const void *b)
{
	const char *x = strchr(*(char *const *)a, '\t') + 1;
	const char *y = strchr(*(char *const *)b, '\t') + 1;
	return strcmp(x, y);
}

int ed_pipeline_walk(const char *const *roots, size_t n,
		     struct ed_pathlist *out, char *err, size_t errlen)
{
	struct walker w = {out, 0, NULL, 0, 0, NULL, err, errlen, 0};
	int rc = 0;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n && !rc; i++) {
		w.root = roots[i];
		rc = walk(&w, roots[i], 0);
	}
	free(w.dirs);
	if (rc) {
		if (rc == ED_ENOMEM)
			ed_err(err, errlen, rc, "out of memory");
		ed_pipeline_pathlist_free(out);
		return rc;
	}
	if (out->n)
		qsort(out->path, out->n, sizeof *out->path, cmp_path);
	return 0;
}

void ed_pipeline_shard(struct ed_pathlist *l, unsigned i, unsigned n)
{
	size_t k = 0;

	for (size_t j = 0; j < l->n; j++) {
		char *s = l->path[j], *tab = strchr(s, '\t');
		size_t root = (size_t)strtoul(s, NULL, 10);
		const char *rel = tab + 1 + root;
		uint64_t h = 1469598103934665603ull;
		while (*rel == '/')
			rel++;
		if (!*rel) /* a file given as a root: its name */
			rel = strrchr(tab + 1, '/') ? strrchr(tab + 1, '/') + 1
						    : tab + 1;
		for (; *rel; rel++)
			h = (h ^ (unsigned char)*rel) * 1099511628211ull;
		if (n <= 1 || h % n == i)
			l->path[k++] = s;
		else
			free(s);
	}
	l->n = k;
}

const char *ed_pipeline_path_at(const struct ed_pathlist *l, size_t i)
{
	return strchr(l->path[i], '\t') + 1;
}

void ed_pipeline_pathlist_free(struct ed_pathlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->path[i]);
	free(l->path);
	memset(l, 0, sizeof *l);
}
