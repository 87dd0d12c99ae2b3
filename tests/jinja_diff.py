#!/usr/bin/env python3
"""jinja_diff.py - the chat-template renderer against Python's jinja2.

Every case renders in jinja2 set up as transformers' apply_chat_template
sets it up (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, the {% generation %} tag, its tojson, raise_exception) and
in tests/jinjarender (model/jinja.c); the outputs must be byte-identical,
and a case that raises in jinja2 must fail in ours too. Cases: the
snippets below (one construct each), and every template of
tests/templates/*.jinja with every conversation of
tests/templates/conversations.json, with and without tools, thinking on,
off and unset.

usage: tests/jinja_diff.py BUILD_DIR   (needs python3-jinja2)
"""
import itertools
import json
import os
import subprocess
import sys
import tempfile

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(Extension):
    """transformers' AssistantTracker, less the tracking: the body as is."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"],
                                       drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [],
                               body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None,
           sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


ENV = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True,
    extensions=[Generation, jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception

# (template, variables); None for variables means {}
SNIPPETS = [
    ("plain text\n", None),
    ("a\n\n", None),
    ("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}", None),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 6 / 3 }}", None),
    ("{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1.5 * 2 }} {{ 0.1 + 0.2 }}", None),
    ("{{ 1e16 }} {{ 1e15 }} {{ 1.5e-5 }} {{ 0.0001 }} {{ 123456789.125 }} {{ 1e100 }} {{ -0.0 }}", None),
    ("{{ 'a' ~ 1 ~ none ~ true ~ 2.50 }}|{{ 'ab' * 3 }}|{{ [1] * 2 }}", None),
    ("{{ 'x' + 'y' }}|{{ [1, 2] + [3] }}|{{ (1, 2) + (3,) }}", None),
    ("{{ [1, 'a', none, true, 2.5, {'k': [1, (2,)]}] }}", None),
    ("{{ {'a': 1, 'b': 'it\\'s', 'c': \"q\\\"\"} }}", None),
    ("{{ 'multi\\nline\\ttab' }}|{{ ['multi\\nline', 'é'] }}", None),
    ("{{ '\\u00e9\\x41\\101\\d' }}", None),
    ("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ [1] == [1] }} {{ (1,) == [1] }}", None),
    ("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ not 1 in [1] }}", None),
    ("{{ true and 'x' }}|{{ false or 0 or 'y' }}|{{ none and 1 }}|{{ not '' }}", None),
    ("{{ 'yes' if x else 'no' }}|{{ 'a' if false }}|{{ 1 if y is defined else 2 }}", {"x": 1}),
    ("{{ x.a }}|{{ x['a'] }}|{{ x.b }}|{{ x.b is defined }}|{{ x.get('b', 7) }}|{{ x.get('a') }}|{{ x.get('b') }}", {"x": {"a": 1}}),
    ("{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[5] }}|{{ s[1] }} {{ s[-2:] }} {{ s[::-1] }}", {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("{{ l.0 }}", {"l": ["first"]}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"b": 1}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {}),
    ("{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }},{% endfor %}", {"l": "abc"}),
    ("{% for x in l %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for x in l %}{{ x }}{% else %}empty{% endfor %}", {"l": []}),
    ("{% for x in l if x > 1 %}{{ x }}{{ loop.index }}{{ loop.last }}{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}", None),
    ("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", None),
    ("{% for x in range(1, 10, 3) %}{{ x }}{% endfor %}{% for x in range(5, 0, -2) %}{{ x }}{% endfor %}", None),
    ("{% for x in [1,2] %}{% for y in 'ab' %}{{ loop.index }}{{ y }}{{ x }}{% endfor %}{{ loop.index }}{% endfor %}", None),
    ("{% for x in l %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"l": [1, 2, 3]}),
    ("{% set c = 0 %}{% for i in range(3) %}{{ c }}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}", None),
    ("{% set ns = namespace(c=0, s='') %}{% for i in range(3) %}{% set ns.c = ns.c + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.c }} {{ ns.s }}", None),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{% set x, y = t %}{{ x }}{{ y }}", None),
    ("{% set blk %}inner {{ 1 + 1 }}{% endset %}[{{ blk }}]", None),
    ("{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c='z') }}|{{ m(a=5) }}", None),
    ("{% macro render(x) %}{% if x is mapping %}{% for k, v in x.items() %}{{ k }}:{{ render(v) }};{% endfor %}{% else %}{{ x }}{% endif %}{% endmacro %}{{ render({'a': {'b': 1}, 'c': 2}) }}", None),
    ("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", None),
    ("  {% if true %}\n  x\n  {% endif %}\n  {{ 1 }}\n{# c #}\nz\n", None),
    ("a  {%- if true -%}  b  {%- endif -%}  c\n  {{- 'd' -}}  \ne", None),
    ("{%+ if true %}x{% endif %}\n  {%+ if true %}y{% endif %}", None),
    ("{% if true +%}\nkeep{% endif %}", None),
    ("line1\n    {# comment #}\nline2\n\t{% set x = 1 %}\nline3", None),
    ("{% raw %}{{ not rendered }}{% endraw %} {{ 'after' }}", None),
    ("{%- for m in messages -%}\n  {{- m.role }}: {{ m.content | trim }}\n{% endfor -%}", {"messages": [{"role": "user", "content": "  hi  "}]}),
    ("{{ '  x y  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|{{ 'hello World' | capitalize }}", None),
    ("{{ 'aXbXc' | replace('X', '-') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'abc' | replace('', '.') }}", None),
    ("{{ 'abc' | length }} {{ 'héllo' | length }} {{ [1, 2] | length }} {{ {'a': 1} | count }} {{ x | length }}", None),
    ("{{ x | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | d('n') }}", None),
    ("{{ [1, 2, 3] | join(', ') }}|{{ 'abc' | join('-') }}|{{ l | join(attribute='n') }}|{{ [1, none] | join }}", {"l": [{"n": "x"}, {"n": "y"}]}),
    ("{{ {'a': 1} | items | list }}|{{ [3, 4] | first }} {{ [3, 4] | last }} {{ 'ab' | first }}|{{ 'ab' | list }}|{{ {'k': 1} | list }}", None),
    ("{{ 42 | string }}{{ [1] | string }}|{{ '12' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ '3.5' | float }} {{ 2 | float }} {{ 'q' | int(7) }}", None),
    ("{{ -3 | abs }} {{ (-3) | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }}", None),
    ("{{ l | selectattr('t', 'equalto', 'a') | map(attribute='v') | list }}|{{ l | rejectattr('t', 'eq', 'a') | list }}|{{ l | selectattr('v') | list | length }}", {"l": [{"t": "a", "v": 1}, {"t": "b", "v": 0}, {"t": "a", "v": 3}]}),
    ("{{ [1, 0, 2] | select | list }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('even') | list }}|{{ ['a', 'B'] | map('upper') | list }}", None),
    ("{{ [3, 1, 3] | unique | list }}|{{ [1, 2.5] | sum }}|{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}|{{ [1, 2] | reverse | list }}{{ 'abc' | reverse }}", None),
    ("{{ x | tojson }}", {"x": {"a": [1, 2.5, None, True, "é\n\"\\\u0001"], "b": {}, "c": []}}),
    ("{{ x | tojson(indent=2) }}|{{ x | tojson(indent=0) }}|{{ [] | tojson(indent=2) }}", {"x": {"a": [1, {"b": 2}], "c": "d"}}),
    ("{{ x | tojson(ensure_ascii=True) }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(sort_keys=true) }}", {"x": {"z": "é😀", "a": 1}}),
    ("{{ 1.0 | tojson }} {{ 1e20 | tojson }} {{ 3 | tojson }} {{ 'a' | tojson }} {{ (1, 2) | tojson }}", None),
    ("{{ x | indent(2) }}|{{ x | indent(2, true) }}|{{ x | indent('> ', first=true, blank=true) }}", {"x": "a\n\nb\nc"}),
    ("{{ '<a href=\"x\">&\\'</a>' | e }}", None),
    ("{{ '  a  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a '.lstrip() }}|{{ ' a  '.rstrip() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}", None),
    ("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b  c '.split(none, 1) }}|{{ 'ab'.upper() }}{{ 'AB'.lower() }}", None),
    ("{{ 'a-b'.replace('-', '+') }}|{{ 'hello'.find('l') }} {{ 'hello'.find('z') }} {{ 'hello'.count('l') }}|{{ ', '.join(['a', 'b']) }}|{{ 'hi there'.title() }}", None),
    ("{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", {"d": {"x": 1, "y": [2]}}),
    ("{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1 is integer }}{{ 1.0 is float }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ [] is sequence }}{{ 1 is iterable }}", {"x": 1}),
    ("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 2 is gt 1 }}{{ 1 is lt 2 }}{{ 'a' is in 'abc' }}{{ x is sameas none }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ true is true }}{{ false is false }}{{ true is boolean }}", {"x": None}),
    ("{{ x is not none }}{{ x is not defined }}{{ not x is defined }}", {"x": 0}),
    ("{{ raise_exception('stop here: ' ~ 1) }}", None),
    ("{{ undefined_thing.attr }}", None),
    ("{{ x.a.b }}", {"x": {}}),
    ("{{ 1 + 'a' }}", None),
    ("{{ 1 < 'a' }}", None),
    ("{{ 1 / 0 }}", None),
    ("{{ x | nosuchfilter }}", None),
    ("{% if x %}unclosed", None),
    ("{% for x in y %}{% endif %}", None),
    ("{{ 'unterminated }}", None),
    ("{% nosuchtag %}", None),
    ("{{ l.append(1) }}", {"l": []}),
    ("{{ x | tojson }}", None),
    ("{{ x }} {{ x | string }} {{ x ~ '' }}", None),
    ("{% for x in none_val %}{{ x }}{% endfor %}", {"none_val": None}),
    ("{{ [1, 2][5] }}|{{ {'a': 1}['b'] }}|{{ 'abc'[10] }}", None),
    ("{{ 'ab' ~ [1, 'x'] }}|{{ (1,) }}|{{ () }}|{{ ('a', 'b') }}", None),
    ("{{ \"it's\" }}|{{ ['it\\'s', 'say \"hi\"', 'both \\' \"'] }}", None),
    ("{{ 'a' 'b' }}|{{ 1_000 }}|{{ 1_0.5 }}", None),
    ("{% generation %}gen {{ 1 }}{% endgeneration %}", None),
    ("{{ range(3) | list }}|{{ namespace(a=1).a }}|{{ dict(a=1, b=2) }}", None),
    ("{% set x = {'k': [1, 2]} %}{{ x.k[1] }}{{ x['k'][0] }}{{ x.k | length }}", None),
    ("{{ m.content if m.content is string else m.content | map(attribute='text') | join('') }}", {"m": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}),
    ("{% for m in messages %}{% if m.role == 'system' %}{{ m['content'] }}{% elif m['role'] in ['user', 'tool'] %}<{{ m.role | upper }}>{% endif %}{% endfor %}", {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}, {"role": "tool", "content": "t"}]}),
    ("{%- if messages[0]['role'] == 'system' -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{{ loop_messages | length }}", {"messages": [{"role": "system"}, {"role": "user"}]}),
]


def py_render(src, variables):
    try:
        return True, ENV.from_string(src).render(**variables)
    except Exception as e:  # any jinja2 or Python error is a failure
        return False, "%s: %s" % (type(e).__name__, e)


def c_render(tool, src, variables, tmp):
    tp, vp = os.path.join(tmp, "t.jinja"), os.path.join(tmp, "v.json")
    with open(tp, "w", encoding="utf-8") as f:
        f.write(src)
    with open(vp, "w", encoding="utf-8") as f:
        json.dump(variables, f, ensure_ascii=False)
    p = subprocess.run([tool, tp, vp], capture_output=True)
    if p.returncode not in (0, 1):
        return None, p.stderr.decode("utf-8", "replace")
    if p.returncode == 1:
        return False, p.stderr.decode("utf-8", "replace").strip()
    return True, p.stdout.decode("utf-8")


def conversation_cases(here):
    tdir = os.path.join(here, "templates")
    with open(os.path.join(tdir, "conversations.json"), encoding="utf-8") as f:
        convs = json.load(f)
    with open(os.path.join(tdir, "tools.json"), encoding="utf-8") as f:
        tools = json.load(f)
    mdir = os.path.join(here, "..", "model", "templates")
    files = [os.path.join(d, n) for d in (tdir, mdir)
             for n in sorted(os.listdir(d)) if n.endswith(".jinja")]
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            src = f.read()
        for (ci, conv), use_tools, think, gen in itertools.product(
                enumerate(convs), (False, True), (None, True, False),
                (True, False)):
            v = {"messages": conv, "add_generation_prompt": gen,
                 "bos_token": "<s>", "eos_token": "</s>"}
            if ci % 3 == 1:
                v["add_vision_id"] = True
            if ci % 4 == 2:
                v["options"] = {"thinking_mode": "close"}
            if use_tools:
                v["tools"] = tools
            if think is not None:
                v["enable_thinking"] = think
            label = "%s, conversation %d, tools %s, thinking %s, gen %s" % (
                name, ci, use_tools, think, gen)
            yield label, src, v


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    tool = os.path.join(build, "tests", "jinjarender")
    here = os.path.dirname(os.path.abspath(__file__))
    cases = [("snippet %d" % i, s, v or {}) for i, (s, v) in
             enumerate(SNIPPETS)]
    cases += list(conversation_cases(here))
    failed = same_err = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, src, v in cases:
            pok, pout = py_render(src, v)
            cok, cout = c_render(tool, src, v, tmp)
            if cok is None:
                print("FAIL %s: jinjarender crashed: %s" % (label, cout))
                failed += 1
            elif pok != cok or (pok and pout != cout):
                failed += 1
                print("FAIL %s\n  template: %r\n  jinja2:  %r\n  ours:    %r"
                      % (label, src[:300], pout[:600], cout[:600]))
            elif not pok:
                same_err += 1
    print("(%d of the cases fail in both, as they should)" % same_err)
    print("jinja_diff: %d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
