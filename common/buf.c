/*
 * buf.c - growable byte buffer with a hard cap, and the bump arena.
 *
 * The cap exists because every buffer that holds untrusted bytes (stdin,
 * HTTP bodies, model output) must refuse to grow without bound.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ed_buf_init(struct ed_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
}

void ed_buf_release(struct ed_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void ed_buf_reset(struct ed_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int ed_buf_reserve(struct ed_buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return ED_ETOOBIG;
	need = b->len + extra + 1;
	if (b->limit && b->len + extra > b->limit)
		return ED_ETOOBIG;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	p = realloc(b->data, ncap);
	if (!p)
		return ED_ENOMEM;
	b->data = p;
	b->cap = ncap;
	b->data[b->len] = '\0'; /* a reserved buffer is a valid string */
	return 0;
}

int ed_buf_append(struct ed_buf *b, const void *p, size_t n)
{
	int rc = ed_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ed_buf_puts(struct ed_buf *b, const char *s)
{
	return ed_buf_append(b, s, strlen(s));
}

int ed_buf_putc(struct ed_buf *b, int c)
{
	char ch = (char)c;
	return ed_buf_append(b, &ch, 1);
}

int ed_buf_vprintf(struct ed_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return ED_EINVAL;
	rc = ed_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ed_buf_printf(struct ed_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ed_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *ed_buf_detach(struct ed_buf *b, size_t *len)
{
	char *p = b->data;

	if (!p)
		p = calloc(1, 1);
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int ed_read_file(const char *path, size_t cap, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct ed_buf b;
	char chunk[65536];
	size_t n;
	int rc = 0;

	*data = NULL;
	if (len)
		*len = 0;
	if (!f)
		return ED_ENOENT;
	ed_buf_init(&b, cap);
	while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		rc = ed_buf_append(&b, chunk, n);
	if (!rc && ferror(f))
		rc = ED_EIO;
	fclose(f);
	if (!rc && !(*data = ed_buf_detach(&b, len)))
		rc = ED_ENOMEM;
	if (rc)
		ed_buf_release(&b);
	return rc;
}

/* ---- arena -------------------------------------------------------- */

struct ed_arena_block {
	struct ed_arena_block *next;
	size_t size, used;
	_Alignas(16) unsigned char mem[];
};

void ed_arena_init(struct ed_arena *a, size_t block_size)
{
	a->head = NULL;
	a->block_size = block_size ? block_size : 64 * 1024;
}

void *ed_arena_alloc(struct ed_arena *a, size_t n)
{
	struct ed_arena_block *blk = a->head;
	size_t size;

	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (blk && blk->size - blk->used >= n) {
		void *p = blk->mem + blk->used;
		blk->used += n;
		return p;
	}
	size = n > a->block_size ? n : a->block_size;
	blk = malloc(sizeof *blk + size);
	if (!blk)
		return NULL;
	blk->size = size;
	blk->used = n;
	/* keep the current (partly used) block at the head only if the new
	 * one is an oversized one-off; otherwise the new block leads */
	if (a->head && n > a->block_size) {
		blk->next = a->head->next;
		a->head->next = blk;
	} else {
		blk->next = a->head;
		a->head = blk;
	}
	return blk->mem;
}

char *ed_arena_strdup(struct ed_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = ed_arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void ed_arena_reset(struct ed_arena *a)
{
	struct ed_arena_block *blk, *next, *keep = NULL;

	for (blk = a->head; blk; blk = next) {
		next = blk->next;
		if (!keep && blk->size == a->block_size) {
			keep = blk;
			continue;
		}
		free(blk);
	}
	a->head = keep;
	if (keep) {
		keep->next = NULL;
		keep->used = 0;
	}
}

void ed_arena_release(struct ed_arena *a)
{
	struct ed_arena_block *blk, *next;

	for (blk = a->head; blk; blk = next) {
		next = blk->next;
		free(blk);
	}
	a->head = NULL;
}
