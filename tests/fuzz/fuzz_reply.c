/*
 * fuzz_reply.c - what a model writes, whatever it writes: the Markdown to
 * blocks parser, the field rules, the </think> split, the tool-call
 * parser and the zoom-box check (a box it accepts is on the page, in
 * order and at least the minimum size), the repetition guard and the
 * similarity.
 */
#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "model/model.h"
#include "pipeline/pipeline.h"

static struct ed_rules *rules;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[256], *re = NULL, *co = NULL;
	const struct ed_store_block *blocks;
	const struct ed_store_field *fields;
	struct ed_tool_call call;
	struct ed_zoom_box box;
	struct ed_arena a;
	size_t n, at = 0;
	double sim;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (!rules && ed_pipeline_rules_load(&rules, NULL, err, sizeof err))
		__builtin_trap();
	ed_arena_init(&a, 4096);
	if (ed_pipeline_parse_markdown(s, strlen(s), &a, &blocks, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (!blocks[i].kind || !blocks[i].text)
				__builtin_trap();
	if (ed_pipeline_rules_run(rules, s, strlen(s), &a, &fields, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (fields[i].start < 0 ||
			    fields[i].end < fields[i].start ||
			    (size_t)fields[i].end > strlen(s))
				__builtin_trap(); /* spans lie in the text */
	ed_arena_release(&a);
	if (ed_split_thinking(s, &re, &co) == 0 && !co)
		__builtin_trap();
	free(re);
	free(co);
	if (ed_model_parse_tool_call(s, &call, &at) == 1 &&
	    (!call.raw || at >= strlen(s)))
		__builtin_trap();
	ed_tool_call_release(&call);
	/* the whole input as a zoom call's arguments */
	if (ed_pipeline_zoom_parse(ED_ZOOM_TOOL, s, &box, err, sizeof err) ==
		0 &&
	    !(box.x1 >= 0 && box.y1 >= 0 && box.x2 <= 1000 && box.y2 <= 1000 &&
	      box.x2 - box.x1 >= ED_ZOOM_MIN - 1e-9 &&
	      box.y2 - box.y1 >= ED_ZOOM_MIN - 1e-9))
		__builtin_trap();
	(void)ed_pipeline_repeats(s, strlen(s), &at);
	sim = ed_pipeline_similarity(s, s + size / 2);
	if (!(sim >= 0 && sim <= 1))
		__builtin_trap();
	free(s);
	return 0;
}

FUZZ_MAIN("fuzz_reply")
