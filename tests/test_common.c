/*
 * test_common.c - common/: SHA-256 against FIPS 180-4 vectors (one shot and
 * streamed in odd pieces), buffer caps, the arena, page ranges, number
 * parsing, UTF-8 decoding, cleaning and display width.
 */
#include "tests/harness.h"

#include "common/common.h"

static void test_sha256(void)
{
	char hex[65];
	struct ed_sha256 s;
	uint8_t d[32];
	static char million[1000000];

	ed_sha256_hex("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb924"
		       "27ae41e4649b934ca495991b7852b855");
	ed_sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223"
		       "b00361a396177a9cb410ff61f20015ad");
	ed_sha256_hex(
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    hex);
	CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039"
		       "a33ce45964ff2167f6ecedd419db06c1");
	/* one million 'a', fed in pieces of 1..127 bytes */
	memset(million, 'a', sizeof million);
	ed_sha256_init(&s);
	for (size_t off = 0, k = 1; off < sizeof million; k = k % 127 + 1) {
		size_t n = ED_MIN(k, sizeof million - off);
		ed_sha256_update(&s, million + off, n);
		off += n;
	}
	ed_sha256_final(&s, d);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
		       "f1809a48a497200e046d39ccc7112cd0");
}

static void test_buf(void)
{
	struct ed_buf b;
	char *p;
	size_t n;

	ed_buf_init(&b, 10);
	CHECK_INT(ed_buf_puts(&b, "hello"), 0);
	CHECK_INT(ed_buf_printf(&b, "%d", 12345), 0);
	CHECK_STR(b.data, "hello12345");
	CHECK_INT(ed_buf_putc(&b, 'x'), ED_ETOOBIG);
	CHECK_INT(b.len, 10);
	CHECK_STR(b.data, "hello12345");
	p = ed_buf_detach(&b, &n);
	CHECK_INT(n, 10);
	CHECK(b.data == NULL && b.len == 0, "detach resets");
	free(p);
	ed_buf_init(&b, 0);
	CHECK_INT(ed_buf_reserve(&b, 100), 0);
	CHECK(b.data && b.data[0] == '\0' && b.len == 0,
	      "reserved is a string");
	for (int i = 0; i < 10000; i++)
		ed_buf_putc(&b, 'a' + i % 26);
	CHECK_INT(b.len, 10000);
	CHECK_INT(b.data[9999], 'a' + 9999 % 26);
	CHECK_INT(b.data[10000], 0);
	ed_buf_release(&b);
}

static void test_arena(void)
{
	struct ed_arena a;
	char *p, *q, *big;

	ed_arena_init(&a, 256);
	p = ed_arena_alloc(&a, 10);
	q = ed_arena_alloc(&a, 10);
	CHECK(p && q && q - p == 16, "16-byte steps");
	CHECK(((uintptr_t)p & 15) == 0, "aligned");
	big = ed_arena_alloc(&a, 10000);
	CHECK(big != NULL, "oversized allocation");
	memset(big, 1, 10000);
	q = ed_arena_alloc(&a, 10);
	CHECK(q == p + 32, "oversized block leaves the current one in use");
	CHECK_STR(ed_arena_strdup(&a, "abc"), "abc");
	ed_arena_reset(&a);
	CHECK(ed_arena_alloc(&a, 10) == p, "reset keeps the first block");
	ed_arena_release(&a);
}

static void test_range(void)
{
	struct ed_range r;
	char err[128];

	CHECK_INT(ed_range_parse(&r, "1-3,7,9-end", err, sizeof err), 0);
	CHECK(ed_range_has(&r, 1, 20) && ed_range_has(&r, 3, 20) &&
		  !ed_range_has(&r, 4, 20),
	      "1-3");
	CHECK(ed_range_has(&r, 7, 20) && !ed_range_has(&r, 8, 20), "7");
	CHECK(ed_range_has(&r, 9, 20) && ed_range_has(&r, 20, 20), "9-end");
	CHECK(!ed_range_has(&r, 21, 20), "past the end");
	CHECK(!ed_range_has(&r, 9, 5) && ed_range_has(&r, 3, 5), "short doc");
	CHECK_INT(ed_range_parse(&r, "", err, sizeof err), 0);
	CHECK(ed_range_has(&r, 42, 50), "empty selects all");
	CHECK_INT(ed_range_parse(&r, "end", err, sizeof err), 0);
	CHECK(ed_range_has(&r, 5, 5) && !ed_range_has(&r, 4, 5), "end");
	CHECK_INT(ed_range_parse(&r, "end-end,2", err, sizeof err), 0);
	CHECK(ed_range_has(&r, 9, 9) && ed_range_has(&r, 2, 9) &&
		  !ed_range_has(&r, 3, 9),
	      "end-end,2");
	CHECK_INT(ed_range_parse(&r, "3-1", err, sizeof err), ED_EINVAL);
	CHECK(strstr(err, "3-1") != NULL, "message quotes the range: %s", err);
	CHECK_INT(ed_range_parse(&r, "0", err, sizeof err), ED_EINVAL);
	CHECK_INT(ed_range_parse(&r, "1,,2", err, sizeof err), ED_EINVAL);
	CHECK_INT(ed_range_parse(&r, "1-", err, sizeof err), ED_EINVAL);
	CHECK_INT(ed_range_parse(&r, "a", err, sizeof err), ED_EINVAL);
	CHECK_INT(ed_range_parse(&r, "-3", err, sizeof err), ED_EINVAL);
	CHECK_INT(ed_range_parse(&r, "99999999999", err, sizeof err),
		  ED_EINVAL);
}

static void test_numbers(void)
{
	uint64_t v;
	long l;
	double d;

	CHECK(ed_parse_size("512M", &v) == 0 && v == 512ull << 20, "512M");
	CHECK(ed_parse_size("3k", &v) == 0 && v == 3072, "3k");
	CHECK(ed_parse_size("4842768", &v) == 0 && v == 4842768, "plain");
	CHECK_INT(ed_parse_size("-1", &v), ED_EINVAL);
	CHECK_INT(ed_parse_size("1MB", &v), ED_EINVAL);
	CHECK_INT(ed_parse_size("", &v), ED_EINVAL);
	CHECK_INT(ed_parse_size("99999999999999999999", &v), ED_EINVAL);
	CHECK_INT(ed_parse_size("17179869184G", &v), ED_EINVAL);
	CHECK(ed_parse_int("42", 0, 100, &l) == 0 && l == 42, "int");
	CHECK_INT(ed_parse_int("101", 0, 100, &l), ED_EINVAL);
	CHECK_INT(ed_parse_int("4x", 0, 100, &l), ED_EINVAL);
	CHECK(ed_parse_double("150.5", 10, 2400, &d) == 0 && d == 150.5, "dbl");
	CHECK_INT(ed_parse_double("nan", 0, 1e9, &d), ED_EINVAL);
	CHECK_INT(ed_parse_double("inf", 0, 1e300, &d), ED_EINVAL);
	CHECK_INT(ed_parse_double("5", 10, 2400, &d), ED_EINVAL);
}

static void test_utf8(void)
{
	uint32_t cp;
	struct ed_buf b;

	CHECK_INT(ed_utf8_decode((const unsigned char *)"\xe4\xb8\xad", 3, &cp),
		  3);
	CHECK_INT(cp, 0x4E2D);
	CHECK_INT(
	    ed_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp),
	    4);
	CHECK_INT(cp, 0x1F600);
	/* overlong, surrogate, truncated, stray continuation */
	CHECK(ed_utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp) == 1 &&
		  cp == 0xFFFD,
	      "overlong");
	CHECK(ed_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp) ==
		      1 &&
		  cp == 0xFFFD,
	      "surrogate");
	CHECK(ed_utf8_decode((const unsigned char *)"\xe4\xb8", 2, &cp) == 1 &&
		  cp == 0xFFFD,
	      "truncated");
	CHECK(!ed_utf8_valid("a\x80", 2), "stray continuation");
	CHECK(ed_utf8_valid("caf\xc3\xa9 \xef\xbf\xbd", 9),
	      "valid incl. U+FFFD");
	ed_buf_init(&b, 0);
	CHECK_INT(ed_utf8_clean(&b,
				"a\x01"
				"b\xff\nc\x7f",
				7),
		  0);
	CHECK_STR(b.data, "ab\xef\xbf\xbd\nc");
	ed_buf_release(&b);
	CHECK_INT(ed_utf8_width("abc", 3), 3);
	CHECK_INT(ed_utf8_width("\xe4\xb8\xad\xe6\x96\x87", 6), 4);
	CHECK_INT(ed_utf8_width("e\xcc\x81", 3), 1); /* e + combining acute */
}

static void test_err(void)
{
	char err[32];

	CHECK_INT(ed_err(err, sizeof err, ED_EFORMAT, "bad %s\nline", "x"),
		  ED_EFORMAT);
	CHECK_STR(err, "bad x line");
	ed_err_prefix(err, sizeof err, "'%s'", "f.pdf");
	CHECK_STR(err, "'f.pdf': bad x line");
	CHECK_STR(ed_strerror(ED_EPASSWORD), "password required or wrong");
	CHECK_INT(ed_err(NULL, 0, ED_EIO, "dropped"), ED_EIO);
}

int main(void)
{
	t_name = "common";
	test_sha256();
	test_buf();
	test_arena();
	test_range();
	test_numbers();
	test_utf8();
	test_err();
	return t_done();
}
