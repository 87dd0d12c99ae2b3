/*
 * jinja.h - a Jinja renderer for chat templates, as Hugging Face
 * transformers runs them: jinja2's ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks on, the loopcontrols extension, the
 * {% generation %} tag, a tojson filter that is Python's json.dumps (no
 * ASCII escaping) and the raise_exception and strftime_now globals.
 *
 * Covered: {{ }}, {% if/elif/else %}, {% for %} (loop.*, else, a filter,
 * tuple targets, break/continue), {% set %} (names, namespace attributes,
 * blocks), {% macro %} with defaults, {% raw %}, comments, whitespace
 * control; expressions as jinja2 parses them (its operator precedence,
 * chained comparisons, in / not in, is-tests, filters, calls, subscripts
 * and slices, literals) with Python's semantics for the values JSON
 * gives (str(), repr(), == across int and float, floor division, %).
 * Anything else is an error naming the template line, never a guess.
 *
 *     struct ed_jinja *t;
 *     if (ed_jinja_parse(text, len, &t, err, sizeof err)) ...
 *     json_t *vars = json_pack("{s:o,s:b}", "messages", msgs,
 *                              "add_generation_prompt", 1);
 *     ed_buf_init(&out, 0);
 *     rc = ed_jinja_render(t, vars, &out, err, sizeof err);
 *     ed_jinja_free(t);
 */
#ifndef ED_JINJA_H
#define ED_JINJA_H

#include <jansson.h>
#include <stddef.h>

#include "common/common.h"

struct ed_jinja;

/* Parse a template. 0, or ED_EFORMAT ("line N: ...") or ED_ENOMEM. */
int ed_jinja_parse(const char *src, size_t len, struct ed_jinja **out,
		   char *err, size_t errlen);

/*
 * Render with the variables of the object vars (JSON values; not
 * modified) appended to out. 0, ED_EINVAL with the template's message for
 * raise_exception and for errors Python's jinja2 raises too (undefined
 * attributes, type errors), ED_ETOOBIG past the output, memory or
 * recursion caps, ED_ENOMEM.
 */
int ed_jinja_render(const struct ed_jinja *t, const json_t *vars,
		    struct ed_buf *out, char *err, size_t errlen);

void ed_jinja_free(struct ed_jinja *t);

#endif
