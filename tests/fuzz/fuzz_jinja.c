/*
 * fuzz_jinja.c - the chat-template parser and renderer (model/jinja.c):
 * the input is a template, rendered with a small conversation. Errors
 * are fine; crashes, leaks and sanitizer reports are not.
 */
#include "tests/fuzz/fuzz.h"

#include "model/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char vars[] =
	    "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, "
	    "{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, "
	    "{\"type\": \"text\", \"text\": \"hi \\u00e9\"}]}, {\"role\": "
	    "\"assistant\", \"content\": \"a\", \"tool_calls\": "
	    "[{\"function\": {\"name\": \"f\", \"arguments\": {\"x\": "
	    "1.5}}}]}], \"tools\": [{\"type\": \"function\"}], "
	    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\"}";
	struct ed_jinja *t;
	struct ed_buf out;
	char err[256];
	json_t *v;

	if (ed_jinja_parse((const char *)data, size, &t, err, sizeof err))
		return 0;
	v = json_loads(vars, 0, NULL);
	ed_buf_init(&out, 1 << 22);
	(void)ed_jinja_render(t, v, &out, err, sizeof err);
	ed_buf_release(&out);
	json_decref(v);
	ed_jinja_free(t);
	return 0;
}

FUZZ_MAIN("fuzz_jinja")
