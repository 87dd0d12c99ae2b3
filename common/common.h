/*
 * common.h - the leaf every module may use: error codes and the
 * caller-owned error buffer, a growable byte buffer, a bump arena, SHA-256,
 * page-range parsing, UTF-8 helpers and a monotonic clock.
 *
 * Nothing here prints, exits, or knows about documents, tensors or SQL.
 * Everything is thread-safe in the sense that no function touches global
 * state; objects are not shared between threads.
 *
 * Usage:
 *     char err[256];
 *     struct ed_buf b;
 *     ed_buf_init(&b, 1 << 20);             // cap the buffer at 1 MiB
 *     if (ed_buf_printf(&b, "%d pages", n) < 0)
 *             return ed_err(err, sizeof err, ED_ETOOBIG, "output too large");
 *     ...
 *     ed_buf_release(&b);
 */
#ifndef ED_COMMON_H
#define ED_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ED_VERSION "0.1.0"

/*
 * Error codes. Functions that act return 0 or one of these (negative).
 * cmd/ maps them to exit statuses (see ed_exit_status in cmd/).
 */
enum {
	ED_OK = 0,
	ED_EINVAL = -1,	     /* bad argument or usage */
	ED_ENOMEM = -2,	     /* allocation failed */
	ED_EFORMAT = -3,     /* invalid or unsupported input data */
	ED_ENOENT = -4,	     /* input missing or unreadable */
	ED_EUNAVAIL = -5,    /* model server unavailable */
	ED_EINTERNAL = -6,   /* a bug or an unexpected library failure */
	ED_ECREATE = -7,     /* cannot create output or database */
	ED_EIO = -8,	     /* I/O error while reading or writing */
	ED_EAGAIN = -9,	     /* temporary failure, retry later */
	ED_EPASSWORD = -10,  /* password required or wrong */
	ED_ECONFIG = -11,    /* bad model or configuration */
	ED_EINTR = -12,	     /* interrupted by the user */
	ED_ETOOBIG = -13,    /* a size cap was exceeded */
	ED_ENEEDMODEL = -14, /* work needs a model and none is configured */
};

/* A short name for an error code ("invalid input"), never NULL. */
const char *ed_strerror(int code);

/*
 * Write a formatted one-line message into the caller's buffer and return
 * code, so that callers can write `return ed_err(err, n, ED_EFORMAT, ...)`.
 * err may be NULL or errlen 0 (the message is dropped).
 */
int ed_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix an existing message in place: "<prefix>: <old message>". */
void ed_err_prefix(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- growable buffer ---------------------------------------------- */

/*
 * A byte buffer that grows on demand up to a cap (0 = SIZE_MAX). data is
 * always NUL-terminated when len > 0 so text can be used as a C string.
 * Appends return 0, ED_ENOMEM, or ED_ETOOBIG when the cap would be passed
 * (the buffer is then unchanged).
 */
struct ed_buf {
	char *data;
	size_t len;
	size_t cap;   /* allocated bytes */
	size_t limit; /* cap on len; 0 = none */
};

void ed_buf_init(struct ed_buf *b, size_t limit);
void ed_buf_release(struct ed_buf *b);
void ed_buf_reset(struct ed_buf *b);
int ed_buf_reserve(struct ed_buf *b, size_t extra);
int ed_buf_append(struct ed_buf *b, const void *p, size_t n);
int ed_buf_puts(struct ed_buf *b, const char *s);
int ed_buf_putc(struct ed_buf *b, int c);
int ed_buf_printf(struct ed_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ed_buf_vprintf(struct ed_buf *b, const char *fmt, va_list ap);
/* Hand the memory to the caller (free() it); the buffer is reset. */
char *ed_buf_detach(struct ed_buf *b, size_t *len);
/* The whole file, NUL-terminated, in *data (free() it), at most cap bytes
 * (0: no cap). 0, ED_ENOENT (cannot open: errno says why), ED_ETOOBIG,
 * ED_EIO, ED_ENOMEM; no message (the caller names the file). */
int ed_read_file(const char *path, size_t cap, char **data, size_t *len);

/* ---- arena -------------------------------------------------------- */

/*
 * Bump allocator for per-page scratch. Blocks are chained; ed_arena_reset
 * keeps the first block and frees the rest, so a steady state allocates
 * nothing. Allocation returns NULL on failure, 16-byte aligned memory.
 */
struct ed_arena_block;
struct ed_arena {
	struct ed_arena_block *head;
	size_t block_size;
};

void ed_arena_init(struct ed_arena *a, size_t block_size);
void *ed_arena_alloc(struct ed_arena *a, size_t n);
char *ed_arena_strdup(struct ed_arena *a, const char *s);
void ed_arena_reset(struct ed_arena *a);
void ed_arena_release(struct ed_arena *a);

/* ---- SHA-256 ------------------------------------------------------ */

struct ed_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t block[64];
	size_t fill;
};

void ed_sha256_init(struct ed_sha256 *s);
void ed_sha256_update(struct ed_sha256 *s, const void *data, size_t n);
void ed_sha256_final(struct ed_sha256 *s, uint8_t out[32]);
/* One shot; hex is 64 lower-case hex digits plus NUL. */
void ed_sha256_hex(const void *data, size_t n, char hex[65]);

/* ---- page ranges -------------------------------------------------- */

/*
 * A page selection like "1-3,7,9-end" (1-based, inclusive, "end" = last
 * page). Parsed once, resolved per document with ed_range_has().
 */
#define ED_RANGE_END INT32_MAX
struct ed_range {
	int n;
	struct {
		int32_t lo, hi;
	} span[64];
};

/* 0 on success, ED_EINVAL with a message on bad syntax. NULL or "" = all. */
int ed_range_parse(struct ed_range *r, const char *spec, char *err,
		   size_t errlen);
/* Is 1-based page p of a document whose last page is `last` selected?
 * "end" stands for last. An empty range selects every page. */
bool ed_range_has(const struct ed_range *r, int p, int last);

/* ---- numbers ------------------------------------------------------ */

/*
 * Parse a non-negative integer with an optional K/M/G (powers of 1024)
 * suffix, e.g. "512M". Rejects signs, junk and overflow. 0 or ED_EINVAL.
 */
int ed_parse_size(const char *s, uint64_t *out);
/* Parse a decimal integer in [lo, hi]. 0 or ED_EINVAL. */
int ed_parse_int(const char *s, long lo, long hi, long *out);
/* Parse a finite double in [lo, hi]. 0 or ED_EINVAL. */
int ed_parse_double(const char *s, double lo, double hi, double *out);

/* ---- UTF-8 -------------------------------------------------------- */

/*
 * Decode one code point at s (n bytes available). Returns the number of
 * bytes consumed (1..4) and stores the code point, or stores 0xFFFD and
 * returns 1 for an invalid or truncated sequence.
 */
int ed_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encode cp into out (4 bytes room); returns bytes written. */
int ed_utf8_encode(uint32_t cp, char out[4]);
/* True if the n bytes are valid UTF-8 (no surrogates, no overlongs). */
bool ed_utf8_valid(const char *s, size_t n);
/*
 * Copy s into b, replacing invalid sequences with U+FFFD and dropping NUL
 * and C0 controls other than tab, newline and form feed.
 */
int ed_utf8_clean(struct ed_buf *b, const char *s, size_t n);
/* Display width in terminal columns (East Asian wide = 2, controls 0). */
size_t ed_utf8_width(const char *s, size_t n);

/* ---- time --------------------------------------------------------- */

/* Monotonic milliseconds (for durations only). */
double ed_now_ms(void);
/* UTC time as "YYYY-MM-DDTHH:MM:SSZ" into out (21 bytes). */
void ed_utc_iso8601(char out[21]);

#define ED_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ED_MIN(a, b)	((a) < (b) ? (a) : (b))
#define ED_MAX(a, b)	((a) > (b) ? (a) : (b))

#endif
