/*
 * test_grammar.c - JSON Schema compilation, validation and constrained
 * decoding (model/schema.c, grammar.c, regex.c): the regex subset, the
 * formats, the matcher byte by byte, the token mask against its naive
 * reference at token boundaries (tokens spanning lexemes, byte pieces,
 * UTF-8 split across tokens, escapes), and the property test: random
 * schemas x random logits x seeds, every completed output valid (here,
 * and in tests/schema_check.py with python3-jsonschema, from the file
 * this writes to $ED_TMP), budgets too small ending incomplete.
 */
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "model/model.h"
#include "model/model_int.h"
#include "tests/harness.h"
#include "tests/util.h"

static int compile(struct ed_schema **s, const char *json, char *err,
		   size_t errlen)
{
	return ed_schema_compile(s, json, strlen(json), err, errlen);
}

/* Whole text accepted and complete? 1 complete, 0 accepted but
 * incomplete, -1 refused. */
static int match(const struct ed_schema *s, const char *text)
{
	struct ed_cstate *st;
	int r;
	if (ed_cstate_new(&st, s))
		return -2;
	if (ed_schema_feed(s, st, text, strlen(text)))
		r = -1;
	else
		r = ed_cstate_complete(s, st);
	ed_cstate_free(st);
	return r;
}

#define ACCEPT(s, t) CHECK(match(s, t) == 1, "'%s' should be accepted", t)
#define PREFIX(s, t) CHECK(match(s, t) == 0, "'%s' should be a prefix", t)
#define REFUSE(s, t) CHECK(match(s, t) == -1, "'%s' should be refused", t)

static void test_compile_errors(void)
{
	static const struct {
		const char *schema, *want;
		int rc;
	} cases[] = {
	    {"{\"type\":\"object\",\"oneOf\":[]}", "'oneOf'", ED_EINVAL},
	    {"{\"type\":\"number\",\"minimum\":3}", "'minimum'", ED_EINVAL},
	    {"{\"type\":\"strin\"}", "type must name", ED_EINVAL},
	    {"{\"type\":\"string\",\"format\":\"ipv4\"}", "'ipv4'", ED_EINVAL},
	    {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "backreferences",
	     ED_EINVAL},
	    {"{\"type\":\"string\",\"pattern\":\"(?=a)\"}", "lookaround",
	     ED_EINVAL},
	    {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"k\":"
	     "{\"$ref\":\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}",
	     "recursive", ED_EINVAL},
	    {"{\"$ref\":\"#/$defs/missing\"}", "names no definition",
	     ED_EINVAL},
	    {"{\"type\":\"object\",\"required\":[\"x\"]}", "'x' is not in",
	     ED_EINVAL},
	    {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems",
	     ED_EINVAL},
	    {"{\"additionalProperties\":{\"type\":\"string\"}}",
	     "additionalProperties", ED_EINVAL},
	    {"[1,2]", "not a JSON object", ED_EFORMAT},
	    {"{\"type\":", "not JSON", ED_EFORMAT},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct ed_schema *s = NULL;
		char err[256] = "";
		int rc = compile(&s, cases[i].schema, err, sizeof err);
		CHECK(rc == cases[i].rc && strstr(err, cases[i].want),
		      "%s: rc %d, '%s' (want '%s')", cases[i].schema, rc, err,
		      cases[i].want);
		ed_schema_free(s);
	}
}

static void test_matcher(void)
{
	struct ed_schema *s;
	char err[256];
	int rc = compile(
	    &s,
	    "{\"title\":\"Invoice\",\"type\":\"object\",\"properties\":{"
	    "\"number\":{\"type\":\"string\",\"pattern\":\"^INV-[0-9]{3}$\"},"
	    "\"date\":{\"type\":\"string\",\"format\":\"date\"},"
	    "\"total\":{\"type\":\"number\"},"
	    "\"paid\":{\"type\":\"boolean\"},"
	    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
	    "\"maxLength\":3},\"maxItems\":2},"
	    "\"note\":{\"type\":[\"string\",\"null\"]},"
	    "\"kind\":{\"enum\":[\"a\",\"ab\",1,12,null]}},"
	    "\"required\":[\"number\",\"total\"]}",
	    err, sizeof err);
	CHECK(rc == 0, "compile: %s", err);
	if (rc)
		return;
	CHECK_STR(ed_schema_title(s), "Invoice");
	ACCEPT(s, "{\"number\":\"INV-123\",\"total\":1}");
	ACCEPT(s, " {\"number\": \"INV-123\", \"total\": -0.5e+10}");
	ACCEPT(s, "{\"number\":\"INV-001\",\"date\":\"2024-02-29\","
		  "\"total\":3,\"paid\":true,\"tags\":[\"x\",\"yz\"],"
		  "\"note\":null,\"kind\":12}");
	ACCEPT(s, "{\n\"number\":\"INV-001\",\n\"total\":0,\"kind\":\"ab\"}");
	PREFIX(s, "{\"number\":\"INV-12");
	PREFIX(s, "{\"number\":\"INV-123\",\"total\":1");
	REFUSE(s, "{\"total\":1}");	       /* required first */
	REFUSE(s, "{\"number\":\"INV-1234\""); /* pattern */
	REFUSE(s, "{\"number\":\"INV-123\"}"); /* total missing */
	REFUSE(s, "{\"number\":\"INV-123\",\"date\":\"2023-02-29\"");
	REFUSE(s, "{\"number\":\"INV-123\",\"date\":\"2024-04-31\"");
	REFUSE(s, "{\"number\":\"INV-123\",\"date\":\"1900-02-29\"");
	ACCEPT(s, "{\"number\":\"INV-123\",\"date\":\"2000-02-29\",\"total\":"
		  "1}");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":01}");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1234567890123456}");
	ACCEPT(s, "{\"number\":\"INV-123\",\"total\":123456789012345}");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1e1234}");
	REFUSE(s, "{  \"number\""); /* two spaces */
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1,\"extra\":1}");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1,\"tags\":[\"abcd\"");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1,\"tags\":[\"a\",\"b\","
		  "\"c\"");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1,\"kind\":2}");
	REFUSE(s, "{\"number\":\"INV-123\",\"total\":1}x");
	/* the validator agrees, and says where */
	{
		const char *bad = "{\"number\":\"INV-12\",\"total\":1}";
		rc = ed_schema_validate(s, bad, strlen(bad), err, sizeof err);
		CHECK(rc == ED_EINVAL && strstr(err, "/number"), "%d %s", rc,
		      err);
		bad = "{\"number\":\"x INV-123 y\",\"total\":1,\"other\":2}";
		/* patterns are searched, other properties allowed unless
		 * additionalProperties is false */
		rc = ed_schema_validate(s, bad, strlen(bad), err, sizeof err);
		CHECK(rc == ED_EINVAL && strstr(err, "/number"), "%d %s", rc,
		      err);
		bad = "{\"number\":\"INV-123\",\"total\":1,\"other\":2}";
		rc = ed_schema_validate(s, bad, strlen(bad), err, sizeof err);
		CHECK(rc == 0, "%d %s", rc, err);
		bad = "{\"number\":\"INV-123\",\"total\":1,\"date\":\"2023-2-"
		      "1\"}";
		rc = ed_schema_validate(s, bad, strlen(bad), err, sizeof err);
		CHECK(rc == ED_EINVAL && strstr(err, "/date"), "%d %s", rc,
		      err);
		rc = ed_schema_validate(s, "{", 1, err, sizeof err);
		CHECK(rc == ED_EFORMAT, "%d", rc);
	}
	CHECK_INT(ed_schema_max_bytes(s), -1); /* note is unbounded */
	ed_schema_free(s);

	/* strings: escapes, UTF-8, lengths in characters */
	CHECK(compile(&s,
		      "{\"type\":\"string\",\"minLength\":2,"
		      "\"maxLength\":3}",
		      err, sizeof err) == 0,
	      "%s", err);
	ACCEPT(s, "\"ab\"");
	ACCEPT(s, "\"\xC3\xA9\xE6\x97\xA5\""); /* 2 characters, 5 bytes */
	ACCEPT(s, "\"\\n\\u00e9\\\"\"");
	ACCEPT(s, "\"\xF0\x9F\x98\x80z\"");
	REFUSE(s, "\"a\"");
	REFUSE(s, "\"abcd");
	REFUSE(s, "\"\xC3\x28"); /* bad continuation */
	REFUSE(s, "\"\xE0\x80"); /* overlong */
	REFUSE(s, "\"\xED\xA0"); /* a surrogate */
	REFUSE(s, "\"\\ud800");	 /* a lone surrogate */
	REFUSE(s, "\"a\x01");	 /* a raw control */
	REFUSE(s, "\"\\x");
	CHECK_INT(ed_schema_max_bytes(s), 1 + 2 + 6 * 3);
	ed_schema_free(s);

	/* formats */
	CHECK(compile(&s,
		      "{\"type\":\"array\",\"items\":{\"type\":"
		      "\"string\",\"format\":\"email\"},\"maxItems\":2}",
		      err, sizeof err) == 0,
	      "%s", err);
	ACCEPT(s, "[\"a.b@example.com\",\"x@y\"]");
	REFUSE(s, "[\"@example.com\"]");
	REFUSE(s, "[\"a@b@c\"]");
	REFUSE(s, "[\"a@\"]");
	REFUSE(s, "[\"a..b@c\"]");
	ed_schema_free(s);
	CHECK(compile(&s, "{\"type\":\"string\",\"format\":\"date-time\"}", err,
		      sizeof err) == 0,
	      "%s", err);
	ACCEPT(s, "\"2024-12-31T23:59:59Z\"");
	ACCEPT(s, "\"2024-01-01T00:00:00.123+05:30\"");
	REFUSE(s, "\"2024-01-01T24:00:00Z\"");
	REFUSE(s, "\"2024-01-01 10:00:00Z\"");
	CHECK_INT(ed_schema_max_bytes(s), 1 + 2 + 6 * 32);
	ed_schema_free(s);
	CHECK(compile(&s, "{\"type\":\"string\",\"format\":\"uri\"}", err,
		      sizeof err) == 0,
	      "%s", err);
	ACCEPT(s, "\"https://example.com/a?b=c#d\"");
	REFUSE(s, "\"no scheme\"");
	ed_schema_free(s);

	/* $ref, const, integer, a top-level number ends without a stop */
	CHECK(compile(&s,
		      "{\"$defs\":{\"n\":{\"type\":\"integer\"}},"
		      "\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":"
		      "\"#/$defs/n\"},\"b\":{\"const\":\"x\"}},"
		      "\"required\":[\"a\",\"b\"],"
		      "\"additionalProperties\":false}",
		      err, sizeof err) == 0,
	      "%s", err);
	ACCEPT(s, "{\"a\":-7,\"b\":\"x\"}");
	REFUSE(s, "{\"a\":1.5");
	REFUSE(s, "{\"a\":1,\"b\":\"y\"");
	CHECK_INT(ed_schema_max_bytes(s), 1 + 3 + (5 + 3 + 16) + (5 + 3 + 3));
	ed_schema_free(s);
	CHECK(compile(&s, "{\"type\":\"integer\"}", err, sizeof err) == 0, "%s",
	      err);
	{
		struct ed_cstate *st;
		ed_cstate_new(&st, s);
		ed_schema_feed(s, st, "12", 2);
		CHECK(ed_cstate_complete(s, st) && !ed_cstate_final(s, st),
		      "12 may go on");
		ed_schema_feed(s, st, "3456789012345", 13);
		CHECK(ed_cstate_final(s, st), "15 digits end it");
		ed_cstate_free(st);
	}
	ed_schema_free(s);
}

static void test_describe(void)
{
	struct ed_schema *s;
	struct ed_buf b;
	char err[256];
	const char *j = "{\"type\":\"object\",\"properties\":{\"total\":{"
			"\"type\":\"number\",\"title\":\"Total\","
			"\"description\":\"The amount due\"},\"lines\":{"
			"\"type\":\"array\",\"items\":{\"type\":\"object\","
			"\"properties\":{\"sku\":{\"type\":\"string\"}}}}},"
			"\"required\":[\"total\"]}";
	CHECK(compile(&s, j, err, sizeof err) == 0, "%s", err);
	ed_buf_init(&b, 0);
	ed_schema_describe(s, &b);
	CHECK(b.data &&
		  strstr(b.data, "- /total (number, required): Total. "
				 "The amount due\n") &&
		  strstr(b.data, "- /lines/*/sku (string)\n"),
	      "%s", b.data ? b.data : "");
	ed_buf_release(&b);
	ed_schema_free(s);
}

/* ---- tokens ------------------------------------------------------------ */

/* A vocabulary made for the boundaries: tokens spanning several JSON
 * lexemes, every byte piece, whole multi-byte characters, escapes,
 * pieces with the U+2581 space. */
static const char *const extra[] = {"{\"",
				    "\"}",
				    "\":",
				    "\":\"",
				    "\",\"",
				    "\"},",
				    "},{\"",
				    "[{\"",
				    "\"]",
				    "\"]}",
				    "\xE2\x96\x81\"",
				    "\xE2\x96\x81",
				    ",\xE2\x96\x81\"",
				    ":\xE2\x96\x81",
				    "null",
				    "true",
				    "false",
				    "}",
				    "{",
				    "[",
				    "]",
				    ",",
				    ":",
				    "\"",
				    "\\\"",
				    "\\\\",
				    "\\n",
				    "\\u00e9",
				    "\\u",
				    "00",
				    "e9",
				    "d8",
				    "0",
				    "1",
				    "2",
				    "3",
				    "4",
				    "5",
				    "6",
				    "7",
				    "8",
				    "9",
				    "12",
				    "3.14",
				    "e+",
				    "-1",
				    ".5",
				    "2024-",
				    "-02-",
				    "29",
				    "T12:",
				    ":00",
				    "Z",
				    "@",
				    ".com",
				    "http",
				    "://",
				    "INV-",
				    "a",
				    "b",
				    "c",
				    "x",
				    "y",
				    "z",
				    "ab",
				    "abc",
				    "name",
				    "\"name",
				    "name\":",
				    "\xC3\xA9",
				    "\xE6\x97\xA5\xE6\x9C\xAC",
				    "1,",
				    "1]",
				    "0}",
				    "\"}]",
				    "\"}}",
				    "\xE2\x96\x81{",
				    "\xE2\x96\x81\xE2\x96\x81",
				    "\n",
				    ",\n",
				    "k",
				    "ind",
				    "kind",
				    "tags",
				    "total",
				    "number",
				    "date",
				    "paid",
				    "note",
				    "a\"",
				    "-",
				    "e",
				    "E",
				    "+",
				    "."};

static struct ed_tokenizer *make_tok(int32_t *n_out)
{
	size_t nx = sizeof extra / sizeof *extra;
	int32_t n = 3 + 256 + (int32_t)nx;
	char **tok = calloc((size_t)n, sizeof *tok);
	int32_t *type = calloc((size_t)n, sizeof *type);
	struct ed_tok_arrays a = {0};
	struct ed_tokenizer *t = NULL;
	char err[256];

	tok[0] = strdup("<unk>");
	type[0] = 2;
	tok[1] = strdup("<s>");
	type[1] = 3;
	tok[2] = strdup("</s>");
	type[2] = 3;
	for (int i = 0; i < 256; i++) {
		char b[8];
		snprintf(b, sizeof b, "<0x%02X>", i);
		tok[3 + i] = strdup(b);
		type[3 + i] = 6;
	}
	for (size_t i = 0; i < nx; i++) {
		tok[259 + i] = strdup(extra[i]);
		type[259 + i] = 1;
	}
	a.n = n;
	a.tok = tok;
	a.type = type;
	a.unk = 0;
	a.bos = 1;
	a.eos = 2;
	a.pad = -1;
	if (ed_tok_open_arrays(&t, &a, err, sizeof err))
		fprintf(stderr, "tokenizer: %s\n", err);
	for (int32_t i = 0; i < n; i++)
		free(tok[i]);
	free(tok);
	free(type);
	*n_out = n;
	return t;
}

/* The mask at token boundaries, by name: tokens spanning lexemes, byte
 * pieces finishing a character another token began, escapes. */
static bool allowed(struct ed_constraint *c, struct ed_tokenizer *t,
		    const struct ed_cstate *st, const char *piece)
{
	uint64_t *scratch = malloc(ed_constraint_words(c) * 8);
	int32_t id = ed_tok_id(t, piece);
	bool stop_ok, ok = false;
	const uint64_t *m = ed_constraint_mask(c, st, scratch, &stop_ok);
	if (id >= 0 && m)
		ok = m[id >> 6] >> (id & 63) & 1;
	free(scratch);
	return ok;
}

static void test_boundaries(void)
{
	int32_t V, stop = 2;
	struct ed_tokenizer *t = make_tok(&V);
	struct ed_schema *s;
	struct ed_constraint *c;
	struct ed_cstate *st;
	char err[256];
	bool stop_ok;
	uint64_t *scratch;

	CHECK(compile(&s,
		      "{\"type\":\"object\",\"properties\":{\"name\":"
		      "{\"type\":\"string\",\"maxLength\":4},\"kind\":"
		      "{\"type\":\"integer\"}},\"required\":[\"name\"]}",
		      err, sizeof err) == 0,
	      "%s", err);
	CHECK(ed_constraint_new(&c, s, t, V, &stop, 1, err, sizeof err) == 0,
	      "%s", err);
	scratch = malloc(ed_constraint_words(c) * 8);
	ed_cstate_new(&st, s);
	/* the start: "{\"" spans two lexemes, a leading space is allowed
	 * once, "name\":" a key and its colon */
	CHECK(allowed(c, t, st, "{\""), "{\" at the start");
	CHECK(allowed(c, t, st, "\xE2\x96\x81{"), "' {' at the start");
	CHECK(!allowed(c, t, st, "\xE2\x96\x81\xE2\x96\x81"), "two spaces");
	CHECK(!allowed(c, t, st, "[{\""), "not an array");
	ed_schema_feed(s, st, "{\"", 2);
	CHECK(allowed(c, t, st, "name\":"), "the key and its colon");
	CHECK(!allowed(c, t, st, "kind"), "kind before the required name");
	ed_schema_feed(s, st, "name\":\"", 7);
	/* inside the string: a character begun by one byte piece and
	 * finished by others; a whole one; escapes */
	CHECK(allowed(c, t, st, "\xE6\x97\xA5\xE6\x9C\xAC"), "two CJK");
	CHECK(allowed(c, t, st, "<0xE6>"), "a lead byte");
	CHECK(!allowed(c, t, st, "<0x97>"), "a continuation byte alone");
	CHECK(!allowed(c, t, st, "<0xC0>"), "an overlong lead");
	CHECK(allowed(c, t, st, "\\u00e9"), "a \\u escape in one token");
	CHECK(allowed(c, t, st, "\\\""), "an escaped quote");
	CHECK(allowed(c, t, st, "\"}"), "an empty name, then the end");
	ed_schema_feed(s, st, "\xE6", 1);
	CHECK(allowed(c, t, st, "<0x97>"), "the continuation now");
	CHECK(!allowed(c, t, st, "a"), "no ASCII inside a character");
	CHECK(!allowed(c, t, st, "\""), "no closing inside a character");
	ed_schema_feed(s, st, "\x97\xA5", 2);
	/* one character so far; "}" may end the object: "\"}" spans the
	 * string's end and the object's */
	CHECK(allowed(c, t, st, "\"}"), "string and object end together");
	CHECK(allowed(c, t, st, "\",\""), "string end, comma, next key");
	CHECK(allowed(c, t, st, "abc"), "three more: four in all");
	ed_schema_feed(s, st, "abc", 3);
	CHECK(!allowed(c, t, st, "a"), "maxLength 4 reached");
	CHECK(allowed(c, t, st, "\"}"), "closing then");
	ed_schema_feed(s, st, "\",\"kind\":", 9);
	CHECK(allowed(c, t, st, "12"), "digits");
	CHECK(allowed(c, t, st, "1,") == false, "no comma after the last");
	CHECK(allowed(c, t, st, "0}"), "a number and the close in one");
	CHECK(!allowed(c, t, st, "3.14"), "an integer has no fraction");
	ed_schema_feed(s, st, "0}", 2);
	CHECK(ed_cstate_final(s, st), "the value is complete");
	ed_constraint_mask(c, st, scratch, &stop_ok);
	CHECK(stop_ok, "the stop allowed at the end");
	free(scratch);
	ed_cstate_free(st);
	ed_constraint_free(c);
	ed_schema_free(s);
	ed_tok_close(t);
}

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* A random schema of the subset, as JSON text (appended to b). */
static void gen_schema(struct ed_buf *b, uint64_t *r, int depth)
{
	static const char *const names[] = {"name",	"kind",	   "tags",
					    "total",	"date",	   "a b",
					    "na\\\"me", "\xC3\xA9"};
	static const char *const pats[] = {
	    "^INV-[0-9]{3}$", "[a-c]{1,4}", "(ab|x)+z?",
	    "\\\\d{1,4}(\\\\.\\\\d)?", "^[A-Z][a-z]*$"};
	static const char *const fmts[] = {"date", "email", "date-time", "uri"};
	int k = (int)(rnd(r) % (depth >= 2 ? 7 : 10));

	switch (k) {
	case 0: {
		int mn = (int)(rnd(r) % 3), mx = mn + (int)(rnd(r) % 8);
		ed_buf_printf(b,
			      "{\"type\":\"string\",\"minLength\":%d,"
			      "\"maxLength\":%d}",
			      mn, mx);
		break;
	}
	case 1:
		ed_buf_printf(b,
			      "{\"type\":\"string\",\"pattern\":\"%s\","
			      "\"maxLength\":12}",
			      pats[rnd(r) % 5]);
		break;
	case 2:
		ed_buf_printf(b, "{\"type\":\"string\",\"format\":\"%s\"%s}",
			      fmts[rnd(r) % 4],
			      rnd(r) % 2 ? ",\"maxLength\":40" : "");
		break;
	case 3:
		ed_buf_printf(b, "{\"type\":\"%s\"}",
			      rnd(r) % 2 ? "number" : "integer");
		break;
	case 4:
		ed_buf_puts(b, rnd(r) % 2 ? "{\"type\":\"boolean\"}"
					  : "{\"type\":[\"integer\",\"null\","
					    "\"boolean\"]}");
		break;
	case 5:
		ed_buf_puts(b, rnd(r) % 2 ? "{\"enum\":[\"a\",\"ab\",1,12,null,"
					    "\"\xC3\xA9\",{\"k\":[1]}]}"
					  : "{\"const\":\"x\\\"y\"}");
		break;
	case 6:
		ed_buf_puts(b, "{\"type\":[\"string\",\"null\"],"
			       "\"maxLength\":5}");
		break;
	case 7:
	case 8: {
		int np = 1 + (int)(rnd(r) % 4), used = 0, req = 0;
		ed_buf_puts(b, "{\"type\":\"object\",\"properties\":{");
		for (int i = 0; i < np; i++) {
			int nm;
			do
				nm = (int)(rnd(r) % 8);
			while (used >> nm & 1);
			used |= 1 << nm;
			ed_buf_printf(b, "%s\"%s\":", i ? "," : "", names[nm]);
			gen_schema(b, r, depth + 1);
			if (rnd(r) % 2)
				req |= 1 << nm;
		}
		ed_buf_puts(b, "},\"required\":[");
		for (int nm = 0, first = 1; nm < 8; nm++)
			if (req >> nm & 1) {
				ed_buf_printf(b, "%s\"%s\"", first ? "" : ",",
					      names[nm]);
				first = 0;
			}
		ed_buf_printf(b, "],\"additionalProperties\":%s}",
			      rnd(r) % 2 ? "false" : "true");
		break;
	}
	default: {
		int mn = (int)(rnd(r) % 2), mx = mn + (int)(rnd(r) % 3);
		ed_buf_printf(b,
			      "{\"type\":\"array\",\"minItems\":%d,"
			      "\"maxItems\":%d,\"items\":",
			      mn, mx);
		gen_schema(b, r, depth + 1);
		ed_buf_puts(b, "}");
	}
	}
}

static void json_escape(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static bool bits_equal(const uint64_t *a, const uint64_t *b, size_t w)
{
	return !memcmp(a, b, w * sizeof *a);
}

static void test_property(void)
{
	int32_t V;
	struct ed_tokenizer *t = make_tok(&V);
	char path[512], err[256];
	const char *tmp = getenv("ED_TMP");
	FILE *out;
	int schemas = 0, runs = 0, complete = 0, mask_bad = 0, invalid = 0,
	    over = 0, small_ok = 0, small_runs = 0, refused = 0;
	int32_t stop = 2;

	CHECK(t != NULL, "tokenizer");
	if (!t)
		return;
	snprintf(path, sizeof path, "%s/grammar_outputs.jsonl",
		 tmp ? tmp : "/tmp");
	out = fopen(path, "w");
	CHECK(out != NULL, "cannot write %s", path);
	for (uint64_t seed = 1; seed <= 150 && out; seed++) {
		struct ed_buf sj;
		struct ed_schema *s = NULL;
		struct ed_constraint *c = NULL;
		uint64_t r = seed * 7919;
		int64_t bound;
		ed_buf_init(&sj, 0);
		gen_schema(&sj, &r, 0);
		if (compile(&s, sj.data, err, sizeof err)) {
			CHECK(0, "generated schema refused: %s: %s", err,
			      sj.data);
			ed_buf_release(&sj);
			continue;
		}
		schemas++;
		bound = ed_schema_max_bytes(s);
		if (ed_constraint_new(&c, s, t, V, &stop, 1, err, sizeof err)) {
			CHECK(0, "constraint: %s", err);
			ed_schema_free(s);
			ed_buf_release(&sj);
			continue;
		}
		for (int run = 0; run < 6; run++) {
			struct ed_cstate *st;
			struct ed_buf o;
			uint64_t *scratch = malloc(ed_constraint_words(c) * 8),
				 *naive = malloc(ed_constraint_words(c) * 8);
			uint64_t rr = seed * 1000003 + (uint64_t)run;
			int budget = run == 5 ? 2 : 400, steps = 0;
			bool done = false;
			ed_cstate_new(&st, s);
			ed_buf_init(&o, 0);
			while (steps < budget) {
				bool stop_ok, stop_naive;
				const uint64_t *m;
				int32_t allowed[4096], na = 0, pick;
				if (ed_cstate_final(s, st)) {
					done = true;
					break;
				}
				m = ed_constraint_mask(c, st, scratch,
						       &stop_ok);
				ed_constraint_mask_naive(c, st, naive,
							 &stop_naive);
				if (!bits_equal(m, naive,
						ed_constraint_words(c)) ||
				    stop_ok != stop_naive)
					mask_bad++;
				for (int32_t i = 0; i < V; i++)
					if (m[i >> 6] >> (i & 63) & 1)
						allowed[na++] = i;
				/* random logits: any allowed token; the stop
				 * now and then when allowed */
				if (stop_ok && (na == 0 || rnd(&rr) % 4 == 0)) {
					done = true;
					break;
				}
				if (!na)
					break;
				pick = allowed[rnd(&rr) % (uint64_t)na];
				{
					char tb[256];
					int n = ed_tok_text_bytes(t, pick, tb,
								  sizeof tb);
					ed_buf_append(&o, tb, (size_t)n);
				}
				if (ed_constraint_advance(c, st, pick))
					refused++;
				steps++;
			}
			runs++;
			/* whatever the budget, what came out is a
			 * prefix the grammar takes byte by byte */
			{
				struct ed_cstate *again;
				ed_cstate_new(&again, s);
				small_runs++;
				if (!ed_schema_feed(s, again,
						    o.data ? o.data : "",
						    o.len) &&
				    (!done || ed_cstate_complete(s, again)))
					small_ok++;
				ed_cstate_free(again);
			}
			if (done) {
				complete++;
				if (ed_schema_validate(s, o.data ? o.data : "",
						       o.len, err,
						       sizeof err)) {
					invalid++;
					fprintf(stderr,
						"invalid: %s\n  %.*s\n  %s\n",
						sj.data, (int)o.len, o.data,
						err);
				}
				if (bound >= 0 && (int64_t)o.len > bound)
					over++;
				fprintf(out,
					"{\"schema\":%s,\"output\":", sj.data);
				json_escape(out, o.data ? o.data : "", o.len);
				fputs("}\n", out);
			}
			ed_buf_release(&o);
			ed_cstate_free(st);
			free(scratch);
			free(naive);
		}
		ed_constraint_free(c);
		ed_schema_free(s);
		ed_buf_release(&sj);
	}
	if (out)
		fclose(out);
	CHECK(schemas == 150, "%d schemas compiled", schemas);
	CHECK_INT(mask_bad, 0);
	CHECK_INT(refused, 0);
	CHECK_INT(invalid, 0);
	CHECK_INT(over, 0);
	CHECK_INT(small_ok, small_runs);
	CHECK(complete >= runs * 3 / 4, "%d of %d runs completed", complete,
	      runs);
	ed_tok_close(t);
}

/* The cache gives what the walk gives, and a string's state far from its
 * bounds is one cached state. */
static void test_cache(void)
{
	int32_t V;
	struct ed_tokenizer *t = make_tok(&V);
	struct ed_schema *s;
	struct ed_constraint *c;
	struct ed_cstate *st;
	char err[256];
	int32_t stop = 2;
	int64_t hits, misses, states;
	uint64_t *scratch, *naive;
	bool ok, nok;
	int bad = 0;

	CHECK(compile(&s, "{\"type\":\"string\",\"maxLength\":200}", err,
		      sizeof err) == 0,
	      "%s", err);
	CHECK(ed_constraint_new(&c, s, t, V, &stop, 1, err, sizeof err) == 0,
	      "%s", err);
	ed_cstate_new(&st, s);
	scratch = malloc(ed_constraint_words(c) * 8);
	naive = malloc(ed_constraint_words(c) * 8);
	ed_schema_feed(s, st, "\"", 1);
	for (int i = 0; i < 199; i++) {
		const uint64_t *m = ed_constraint_mask(c, st, scratch, &ok);
		ed_constraint_mask_naive(c, st, naive, &nok);
		bad +=
		    !bits_equal(m, naive, ed_constraint_words(c)) || ok != nok;
		ed_schema_feed(s, st, "a", 1);
	}
	ed_constraint_stats(c, &hits, &misses, &states);
	CHECK_INT(bad, 0);
	CHECK(states < 40 && hits > 150, "%lld states, %lld hits",
	      (long long)states, (long long)hits);
	free(scratch);
	free(naive);
	ed_cstate_free(st);
	ed_constraint_free(c);
	ed_schema_free(s);
	ed_tok_close(t);
}

/*
 * The property test through the engine: random schemas x random tiny
 * models (mkmodel, a SentencePiece tokenizer with byte fallback and CJK
 * pieces) x seeds, sampled at temperature 1. A "stop" output validates
 * (here and in schema_check.py); every token it took was in the naive
 * mask of its state; "length" and "grammar" end incomplete, never as a
 * value; nothing crashes.
 */
static void test_engine(void)
{
	const char *tmp = getenv("ED_TMP") ? getenv("ED_TMP") : "/tmp";
	const char *build = getenv("ED_BUILD") ? getenv("ED_BUILD") : "build";
	char dir[512], path[512], err[512];
	FILE *out;
	int stops = 0, others = 0, invalid = 0, forbidden = 0, runs = 0;

	snprintf(dir, sizeof dir, "%s/grammar-models", tmp);
	if (t_sh("sh tests/mktok.sh '%s/tok' >/dev/null 2>&1", dir)) {
		CHECK(0, "tests/mktok.sh failed (spm_train missing?)");
		return;
	}
	snprintf(path, sizeof path, "%s/grammar_outputs.jsonl", tmp);
	out = fopen(path, "a");
	CHECK(out != NULL, "cannot append to %s", path);
	for (int mi = 0; mi < 3 && out; mi++) {
		struct ed_model *m = NULL;
		struct ed_session *s = NULL;
		struct ed_model_ids ids;
		char mdir[600];
		snprintf(mdir, sizeof mdir, "%s/m%d", dir, mi);
		if (t_sh("'%s/tests/mkmodel' '%s' --layout text --tokenizer "
			 "'%s/tok' --seed %d >/dev/null",
			 build, mdir, dir, 100 + mi) ||
		    ed_model_open(&m, mdir, NULL, NULL, err, sizeof err) ||
		    ed_session_new(&s, m,
				   &(struct ed_session_opts){.threads = 1}, err,
				   sizeof err)) {
			CHECK(0, "tiny model %d: %s", mi, err);
			ed_model_close(m);
			continue;
		}
		ed_model_get_ids(m, &ids);
		for (uint64_t k = 0; k < 12; k++) {
			struct ed_buf sj;
			struct ed_schema *sc = NULL;
			struct ed_constraint *c = NULL;
			uint64_t r = (uint64_t)mi * 1000 + k * 31 + 5;
			int32_t stop[2] = {ids.eos, ids.end_of_sentence};
			int32_t prompt[4] = {1, 20, 30, 40};
			ed_buf_init(&sj, 0);
			gen_schema(&sj, &r, 0);
			if (compile(&sc, sj.data, err, sizeof err) ||
			    ed_constraint_new(
				&c, sc, ed_model_tokenizer(m),
				ed_model_tokenizer(m)
				    ? ed_tok_size(ed_model_tokenizer(m))
				    : 0,
				stop, 2, err, sizeof err)) {
				CHECK(0, "%s: %s", sj.data, err);
				ed_schema_free(sc);
				ed_buf_release(&sj);
				continue;
			}
			for (uint64_t seed = 1; seed <= 3; seed++) {
				struct ed_prompt p;
				struct ed_gen_result gr;
				struct ed_gen_params g = {
				    .max_new_tokens = seed == 3 ? 4 : 160,
				    .temperature = 1.0f,
				    .top_p = 1,
				    .seed = seed * 7 + k,
				    .constraint = c};
				struct ed_cstate *st;
				uint64_t *naive =
				    malloc(ed_constraint_words(c) * 8);
				ed_model_prompt_ids(m, prompt, 4, NULL, 0, &p,
						    err, sizeof err);
				if (ed_session_generate(s, &p, &g, NULL, NULL,
							&gr, err, sizeof err)) {
					CHECK(0, "generate: %s", err);
					ed_model_prompt_release(&p);
					free(naive);
					continue;
				}
				ed_model_prompt_release(&p);
				runs++;
				/* every token was allowed where it was taken */
				ed_cstate_new(&st, sc);
				for (size_t i = 0; i < gr.n_tokens; i++) {
					bool ok;
					int32_t id = gr.tokens[i];
					ed_constraint_mask_naive(c, st, naive,
								 &ok);
					if (!(naive[id >> 6] >> (id & 63) &
					      1) ||
					    ed_constraint_advance(c, st, id)) {
						forbidden++;
						break;
					}
				}
				if (!strcmp(gr.finish_reason, "stop")) {
					stops++;
					if (!ed_cstate_complete(sc, st) ||
					    ed_schema_validate(
						sc, gr.text, strlen(gr.text),
						err, sizeof err)) {
						invalid++;
						fprintf(
						    stderr,
						    "invalid: %s\n  %s\n  %s\n",
						    sj.data, gr.text, err);
					}
					fprintf(out,
						"{\"schema\":%s,\"output\":",
						sj.data);
					json_escape(out, gr.text,
						    strlen(gr.text));
					fputs("}\n", out);
				} else {
					/* ended by the budget or the grammar:
					 * never a value */
					others++;
					CHECK(!strcmp(gr.finish_reason,
						      "length") ||
						  !strcmp(gr.finish_reason,
							  "grammar"),
					      "finish %s", gr.finish_reason);
				}
				ed_cstate_free(st);
				free(naive);
				ed_gen_result_release(&gr);
			}
			ed_constraint_free(c);
			ed_schema_free(sc);
			ed_buf_release(&sj);
		}
		ed_session_free(s);
		ed_model_close(m);
	}
	if (out)
		fclose(out);
	CHECK_INT(forbidden, 0);
	CHECK_INT(invalid, 0);
	CHECK(stops >= runs / 2 && others > 0,
	      "%d of %d runs completed, %d cut", stops, runs, others);
}

/* A random pattern of the subset over a small alphabet, with empty
 * alternatives, nested repeats and counted repeats. */
static void gen_re(struct ed_buf *b, uint64_t *r, int depth)
{
	static const char *const atoms[] = {"a",    "b",   "c",	    ".", "[ab]",
					    "[^a]", "\\d", "[a-c]", "1"};
	int k = (int)(rnd(r) % (depth > 2 ? 3 : 7));
	switch (k) {
	case 0:
	case 1:
	case 2: ed_buf_puts(b, atoms[rnd(r) % 9]); break;
	case 3: /* concatenation */
		gen_re(b, r, depth + 1);
		gen_re(b, r, depth + 1);
		break;
	case 4: /* alternation, possibly with an empty branch */
		ed_buf_putc(b, '(');
		if (rnd(r) % 3)
			gen_re(b, r, depth + 1);
		ed_buf_putc(b, '|');
		gen_re(b, r, depth + 1);
		ed_buf_putc(b, ')');
		break;
	default: { /* a repeat */
		static const char *const reps[] = {
		    "*", "+", "?", "{2}", "{0,3}", "{1,4}", "{2,}"};
		ed_buf_putc(b, '(');
		gen_re(b, r, depth + 1);
		ed_buf_putc(b, ')');
		ed_buf_puts(b, reps[rnd(r) % 7]);
	}
	}
}

static int dfa_match(const struct ed_dfa *d, const char *s, size_t n)
{
	int st = 0;
	for (size_t i = 0; i < n && st >= 0; i++)
		st = ed_dfa_step(d, st, (unsigned char)s[i]);
	return st >= 0 && d->accept[st];
}

static int pcre_match(const char *re, const char *s, size_t n)
{
	char full[512];
	int err, rc;
	PCRE2_SIZE off;
	pcre2_code *c;
	pcre2_match_data *m;
	snprintf(full, sizeof full, "^(?:%s)$", re);
	c = pcre2_compile((PCRE2_SPTR)full, PCRE2_ZERO_TERMINATED,
			  PCRE2_DOLLAR_ENDONLY, &err, &off, NULL);
	if (!c)
		return -1;
	m = pcre2_match_data_create_from_pattern(c, NULL);
	rc = pcre2_match(c, (PCRE2_SPTR)s, n, 0, 0, m, NULL);
	pcre2_match_data_free(m);
	pcre2_code_free(c);
	return rc >= 0;
}

/* The DFA (hashed subset construction, breadth-first distances) against
 * PCRE2 as the reference: 400 random patterns x 60 random strings, and
 * each accepted string's length at least the start's mindist. */
static void test_dfa_vs_pcre(void)
{
	uint64_t r = 0x5eed;
	int patterns = 0, strings = 0, differ = 0, accepted = 0, short_ = 0;
	for (int i = 0; i < 400; i++) {
		struct ed_buf re = {0};
		struct ed_dfa *d = NULL;
		char err[256];
		gen_re(&re, &r, 0);
		if (ed_dfa_compile(&d, re.data, re.len, err, sizeof err)) {
			CHECK(0, "'%s' refused: %s", re.data, err);
			ed_buf_release(&re);
			continue;
		}
		patterns++;
		for (int j = 0; j < 60; j++) {
			char s[16];
			size_t n = rnd(&r) % 9;
			int a, b;
			for (size_t k = 0; k < n; k++)
				s[k] = "abcd1"[rnd(&r) % 5];
			s[n] = 0;
			a = dfa_match(d, s, n);
			b = pcre_match(re.data, s, n);
			strings++;
			if (a != b) {
				if (differ++ < 5)
					CHECK(0, "'%s' on '%s': dfa %d pcre %d",
					      re.data, s, a, b);
			}
			if (a) {
				accepted++;
				if ((int)n < d->mindist[0])
					short_++;
			}
		}
		ed_dfa_free(d);
		ed_buf_release(&re);
	}
	CHECK_INT(differ, 0);
	CHECK_INT(short_, 0);
	CHECK(patterns == 400 && accepted > 1000,
	      "%d patterns, %d of %d "
	      "strings accepted",
	      patterns, accepted, strings);
}

/* The fuzzer's slow unit (11.5 s under ASan with the quadratic state
 * search): an empty-or-literal group repeated 1..35 times. It compiles,
 * and it takes 0 to 35 repeats of the literal, not 36. */
static void test_dfa_fuzz_slow(void)
{
	const char *lit = "bnnnnnnnnnnnnnngnnnnnnnnnnnnnnjnnnnnnnnnvnnn";
	char re[128], s[4096];
	struct ed_dfa *d = NULL;
	char err[256];
	int rc;
	snprintf(re, sizeof re, "(|%sa*c){1,35}[^x-z]", lit);
	rc = ed_dfa_compile(&d, re, strlen(re), err, sizeof err);
	CHECK(rc == 0, "slow pattern: %s", rc ? err : "");
	if (rc)
		return;
	/* at most 35 copies of the literal (PCRE2 reaches its match limit
	 * here, Python's re agrees with this) */
	for (int reps = 0; reps <= 36; reps++) {
		size_t n = 0;
		for (int k = 0; k < reps; k++)
			n += (size_t)snprintf(s + n, sizeof s - n, "%s%sc", lit,
					      k & 1 ? "aa" : "");
		s[n++] = 'q';
		s[n] = 0;
		CHECK(dfa_match(d, s, n) == (reps <= 35), "%d repeats", reps);
		if (reps <= 12)
			CHECK(pcre_match(re, s, n) == (reps <= 35),
			      "pcre2, %d repeats", reps);
	}
	CHECK_INT(dfa_match(d, "q", 1), 1);
	CHECK_INT(dfa_match(d, "x", 1), 0);
	ed_dfa_free(d);
}

int main(void)
{
	t_name = "grammar";
	test_compile_errors();
	test_matcher();
	test_dfa_vs_pcre();
	test_dfa_fuzz_slow();
	test_describe();
	test_cache();
	test_boundaries();
	test_property();
	test_engine();
	return t_done();
}
