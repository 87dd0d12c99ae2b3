/*
 * fuzz_sse.c - what a server sends back, whatever it sends: the bytes of
 * a 200 reply through the client's own parsers (model/remote.c), an SSE
 * stream or a JSON body, with the tool call taken from the text when the
 * server has no tool parser. The first byte picks the shape: bit 0 a
 * stream, bit 1 thinking, bit 2 the zoom tool declared, bits 4-7 the size
 * of the pieces the stream arrives in (0: whole). The answer must not
 * depend on how the stream was cut: the same bytes whole and in pieces
 * give the same result, and a result is complete (content, a finish
 * reason, a tool call's name with "tool_calls").
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "model/model_int.h"

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ed_request req = {0};
	struct ed_response whole, cut;
	char err[256];
	bool stream;
	size_t chunk;
	int a, b;

	if (size < 1)
		return 0;
	stream = data[0] & 1;
	req.thinking = data[0] & 2;
	req.tools = data[0] & 4;
	chunk = data[0] >> 4;
	data++;
	size--;
	a = remote_parse_reply(data, size, stream, 0, &req, &whole, err,
			       sizeof err);
	if (a == 0 &&
	    (!whole.content || !whole.finish_reason[0] ||
	     (whole.call.name && strcmp(whole.finish_reason, "tool_calls"))))
		__builtin_trap();
	if (a == 0 && strlen(whole.content) +
			      (whole.reasoning ? strlen(whole.reasoning) : 0) >
			  size)
		__builtin_trap(); /* nothing made up */
	if (stream && chunk) {
		b = remote_parse_reply(data, size, stream, chunk, &req, &cut,
				       err, sizeof err);
		if (a != b)
			__builtin_trap();
		if (a == 0 &&
		    (!same(whole.content, cut.content) ||
		     !same(whole.reasoning, cut.reasoning) ||
		     strcmp(whole.finish_reason, cut.finish_reason) ||
		     !same(whole.call.name, cut.call.name) ||
		     !same(whole.call.arguments, cut.call.arguments) ||
		     whole.tokens_out != cut.tokens_out))
			__builtin_trap();
		if (b == 0)
			ed_response_release(&cut);
	}
	if (a == 0)
		ed_response_release(&whole);
	return 0;
}

FUZZ_MAIN("fuzz_sse")
