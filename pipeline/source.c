/*
 * source.c - inputs: a file mapped read-only, or standard input read into
 * memory under a cap; hashed (the document identity in the resume key) and
 * identified by magic bytes. Never by file name.
 */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_stdin(struct ed_source *src, uint64_t cap, char *err,
		      size_t errlen)
{
	struct ed_buf b;
	char chunk[65536];

	ed_buf_init(&b, cap ? (size_t)cap : (size_t)ED_PIPELINE_MAX_STDIN);
	for (;;) {
		ssize_t n = read(0, chunk, sizeof chunk);
		int rc;

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ed_buf_release(&b);
			return ed_err(err, errlen, ED_EIO,
				      "cannot read standard input: %s",
				      strerror(errno));
		}
		if ((rc = ed_buf_append(&b, chunk, (size_t)n))) {
			ed_buf_release(&b);
			if (rc == ED_ETOOBIG)
				return ed_err(err, errlen, ED_ETOOBIG,
					      "standard input is larger than "
					      "%llu bytes (--max-stdin)",
					      (unsigned long long)b.limit);
			return ed_err(err, errlen, rc,
				      "reading standard input: "
				      "%s",
				      ed_strerror(rc));
		}
	}
	src->len = b.len;
	src->heap_ = (unsigned char *)ed_buf_detach(&b, NULL);
	src->data = src->heap_;
	return 0;
}

int ed_pipeline_source_open(struct ed_source *src, const char *path,
			    uint64_t max_stdin, char *err, size_t errlen)
{
	struct stat sb;
	int fd, rc;

	memset(src, 0, sizeof *src);
	src->path = path;
	if (strcmp(path, "-") == 0) {
		if ((rc = read_stdin(src, max_stdin, err, errlen)))
			return rc;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ed_err(err, errlen, ED_ENOENT,
				      "cannot open '%s': %s", path,
				      strerror(errno));
		if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			close(fd);
			return ed_err(err, errlen, ED_ENOENT,
				      "cannot open '%s': %s", path,
				      S_ISDIR(sb.st_mode)
					  ? "is a directory"
					  : "not a regular file");
		}
		src->len = (size_t)sb.st_size;
		if (src->len > 0) {
			src->map_ =
			    mmap(NULL, src->len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (src->map_ == MAP_FAILED) {
				src->map_ = NULL;
				close(fd);
				return ed_err(err, errlen, ED_EIO,
					      "cannot read '%s': %s", path,
					      strerror(errno));
			}
			src->maplen_ = src->len;
			src->data = src->map_;
		} else {
			src->data = (const unsigned char *)"";
		}
		close(fd);
	}
	ed_sha256_hex(src->data, src->len, src->sha256);
	src->kind = ed_render_sniff(src->data, src->len);
	return 0;
}

void ed_pipeline_source_release(struct ed_source *src)
{
	if (src->map_)
		munmap(src->map_, src->maplen_);
	free(src->heap_);
	memset(src, 0, sizeof *src);
}

int ed_pipeline_doc_open(const struct ed_source *src, const char *password,
			 const struct ed_render_limits *limits,
			 struct ed_doc **out, char *err, size_t errlen)
{
	int rc = ed_render_doc_open(out, src->data, src->len, password, limits,
				    err, errlen);
	if (rc)
		ed_err_prefix(err, errlen, "'%s'", src->path);
	return rc;
}

int ed_pipeline_tile_file(const char *path, const struct ed_tile_params *tp,
			  double dpi, float **pixels, int *grid_t, int *grid_h,
			  int *grid_w, char *err, size_t errlen)
{
	struct ed_source src;
	struct ed_doc *doc = NULL;
	struct ed_image img;
	struct ed_tiles t;
	int rc;

	*pixels = NULL;
	if ((rc = ed_pipeline_source_open(&src, path, 0, err, errlen)))
		return rc;
	if ((rc = ed_pipeline_doc_open(&src, NULL, NULL, &doc, err, errlen)))
		goto out;
	if ((rc = ed_render_page(doc, 0, dpi, NULL, &img, err, errlen)))
		goto out;
	rc = ed_render_tile_image(&img, tp, &t, NULL, err, errlen);
	ed_render_image_release(&img);
	if (rc)
		goto out;
	*pixels = t.pixel_values; /* ownership moves to the caller */
	*grid_t = t.grid_t;
	*grid_h = t.grid_h;
	*grid_w = t.grid_w;
out:
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
	return rc;
}
