#!/bin/sh
# e2e.sh - end to end through both backends: the native engine on a tiny
# model and the remote client against tests/fakeserver.py. Standard input,
# the checked request shape and image size, thinking mode, every guard
# (blank, repetition with retries and fallback, length, similarity), the
# remote fault matrix with its exit statuses, blocks/cells/fields, batch
# (walk, bad files, kill -9 and resume, SIGINT, shards, progress) and
# merge. Prints "e2e: N passed, M failed".
set -u
NAME=e2e
. "$(dirname "$0")/lib.sh"

trap stop_server EXIT INT TERM
lines() { wc -l <"$T/out" | tr -d ' '; }
# page number and text of each printed page, in page order (with --jobs
# above 1 pages are printed as they finish)
pagetext() {
	sed 's/.*"page":\([0-9]*\),.*"text":\("[^"]*"\).*/\1 \2/' "$T/out" | sort -n
}

# the random points of the signal tests: ED_SIG_SEED repeats a run
SEED=${ED_SIG_SEED:-$(date +%s)}
# fast settings: small rasters, short retries
FAST="--dpi 50 --retry-wait 0.01"
"$BUILD/tests/mkpdf" "$T/doc3.pdf" 3 doc3 2 # page 2 is blank
PNG=$C/smile.png

# ---- native engine, standard input ------------------------------------
sh tests/mktok.sh "$T/tok" >/dev/null 2>&1
"$BUILD/tests/mkmodel" "$T/tiny" --tokenizer "$T/tok" --shards 2 >/dev/null
expect 0 sh -c "cat '$T/doc3.pdf' | $E ocr --db '$T/n.db' --model '$T/tiny' \
	--text-layer never --max-tokens 6 --max-pixels 100000 $FAST -"
check "native stdin: one JSON object per page" test "$(lines)" = 3
check "native: model pages" test "$(grep -c '"source":"model"' "$T/out")" = 2
check "native: blank page" grep -q '"page":2,.*"status":"blank".*"guard":"blank"' "$T/out"
check "native: stored" test "$(q "$T/n.db" "SELECT count(*) FROM pages WHERE model_id = 'native/tiny' AND tokens_out BETWEEN 1 AND 6")" = 2
check "native: the path is stdin" test "$(q "$T/n.db" "SELECT path FROM documents")" = "-"
check "native: similarity to the text layer" test "$(q "$T/n.db" "SELECT count(*) FROM pages WHERE text_similarity BETWEEN 0 AND 1")" = 2
# thinking mode on the native engine: the prompt ends in <think>
expect 0 $E ocr --db "$T/n.db" --model "$T/tiny" --mode think --max-tokens 4 \
	--max-pixels 100000 "$PNG"
check "native think: stored under mode think" test "$(q "$T/n.db" "SELECT count(*) FROM pages WHERE mode = 'think'")" = 1
# jobs: two sessions, the same greedy text as one
expect 0 $E ocr --db "$T/n1.db" --model "$T/tiny" --text-layer never \
	--max-tokens 6 --max-pixels 100000 $FAST "$T/doc3.pdf"
pagetext >"$T/t1"
expect 0 $E ocr --db "$T/n2.db" --model "$T/tiny" --text-layer never -j 2 \
	--max-tokens 6 --max-pixels 100000 $FAST "$T/doc3.pdf"
pagetext >"$T/t2"
check "native: --jobs 2 gives the same text" cmp -s "$T/t1" "$T/t2"
# the int8 vision option: its own model id, so the resume key keeps its
# pages apart from the float path's; refused (78) on a CPU without
# AVX-512 VNNI, the float results untouched
if grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null &&
	grep -qw avx512bw /proc/cpuinfo; then
	expect 0 $E ocr --db "$T/n1.db" --model "$T/tiny" --text-layer never \
		--vision-int8 --max-tokens 6 --max-pixels 100000 $FAST "$T/doc3.pdf"
	check "--vision-int8: pages under their own model id" \
		test "$(q "$T/n1.db" "SELECT count(*) FROM pages WHERE model_id = 'native/tiny+vit-int8'")" = 2
else
	expect 78 $E ocr --db "$T/n1.db" --model "$T/tiny" --text-layer never \
		--vision-int8 --max-tokens 6 --max-pixels 100000 $FAST "$T/doc3.pdf"
	check "--vision-int8 without VNNI: a clear error" grep -q 'need AVX-512 VNNI' "$T/err"
fi
check "--vision-int8: the float results kept beside them" \
	test "$(q "$T/n1.db" "SELECT count(*) FROM pages WHERE model_id = 'native/tiny'")" = 2
# pages decoded together (continuous batching), sampling on: each page's
# text is what it is alone, whatever it ran beside
"$BUILD/tests/mkpdf" "$T/doc7.pdf" 7 doc7
SAMPLE="--temperature 0.9 --top-p 0.95 --seed 7 --max-tokens 14"
expect 0 $E ocr --db "$T/b1.db" --model "$T/tiny" --text-layer never -j 1 \
	$SAMPLE --max-pixels 100000 $FAST "$T/doc7.pdf"
pagetext >"$T/b1"
expect 0 $E ocr -v --db "$T/b4.db" --model "$T/tiny" --text-layer never -j 4 \
	$SAMPLE --max-pixels 100000 $FAST "$T/doc7.pdf"
pagetext >"$T/b4"
check "batched: pages decoded together ($(grep 'decode passes' "$T/err"))" \
	grep -qE 'native: [0-9]+ tokens in [0-9]+ decode passes, up to [234] sequences a pass' "$T/err"
check "batched: seven pages" test "$(wc -l <"$T/b4")" = 7
check "batched: --jobs 4 with sampling gives --jobs 1's text" cmp -s "$T/b1" "$T/b4"
check "batched: sampling made different pages" test "$(cut -d' ' -f2- "$T/b1" | sort -u | wc -l)" -gt 1
# an archive re-run with --force reproduces the stored text
expect 0 $E ocr --db "$T/b4.db" --model "$T/tiny" --text-layer never -j 3 \
	--force $SAMPLE --max-pixels 100000 $FAST "$T/doc7.pdf"
pagetext >"$T/b3"
check "batched: a re-run with -j 3 reproduces it" cmp -s "$T/b1" "$T/b3"

# ---- chat templates ------------------------------------------------------
# model prompt: exactly what the built-ins render, the ids the engine feeds
cat >"$T/msgs.json" <<'JSON'
[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read it."}]}]
JSON
expect 0 $E model prompt "$T/tiny" --messages "$T/msgs.json"
printf '<|begin_of_sentence|>User: Picture 1:<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>Read it.\nAssistant: <think>\n\n</think>\n\n' >"$T/want"
check "model prompt: the PT built-in, thinking unset is off" cmp -s "$T/out" "$T/want"
expect 0 $E model prompt "$T/tiny" --messages "$T/msgs.json" --template thinking
printf '<|begin_of_sentence|>You are a multimodal AI assistant called ERNIE developed by Baidu based on the PaddlePaddle framework.\nUser:  Picture 1:<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>Read it.\nAssistant: \n<think>\n' >"$T/want"
check "model prompt --template thinking: system prompt, \\n<think>\\n" cmp -s "$T/out" "$T/want"
expect 0 $E model prompt "$T/tiny" --messages "$T/msgs.json" --template thinking --thinking off
printf '\nAssistant: \n<think>\n\n</think>\n\n' >"$T/tail"
check "model prompt --thinking off: ends in \\n<think>\\n\\n</think>\\n\\n" sh -c "tail -c $(wc -c <"$T/tail") '$T/out' | cmp -s - '$T/tail'"
expect 0 $E model prompt "$T/tiny" --messages "$T/msgs.json" --ids
check "model prompt --ids: one id a line, one placeholder an image" test "$(grep -c '^402$' "$T/out")" = 1
check "model prompt --ids: image start and end" sh -c "grep -q '^403$' '$T/out' && grep -q '^404$' '$T/out'"
# the zoom tool declared as FastDeploy documents it, json.dumps spacing
printf '[%s]\n' '{"type": "function", "function": {"name": "image_zoom_in_tool", "parameters": {"type": "object"}}}' >"$T/tools.json"
expect 0 $E model prompt "$T/tiny" --messages "$T/msgs.json" --tools "$T/tools.json" --template thinking
check "model prompt --tools: the tool list right after the BOS" sh -c "head -c 120 '$T/out' | grep -q '^<|begin_of_sentence|>$' && sed -n 2p '$T/out' | grep -qx '<tool_list>'"
# a checkpoint's own template wins over the built-in; --chat-template over it
cp -r "$T/tiny" "$T/own"
printf '{%%- for m in messages %%}[{{ m.role }}]{%%- endfor %%}{%% if add_generation_prompt %%}<gen>{%% endif %%}\n' >"$T/own/chat_template.jinja"
expect 0 $E model prompt "$T/own" --messages "$T/msgs.json"
check "the checkpoint's chat_template.jinja renders" test "$(cat "$T/out")" = "[user]<gen>"
expect 0 $E model info "$T/own"
check "model info: the checkpoint's own template" grep -q '^chat template .*the checkpoint.s own (chat_template.jinja)' "$T/out"
check "model info: RoPE settings" grep -q '^rope  *3-D, theta 500000' "$T/out"
printf '{{ bos_token }}{{ messages | length }}' >"$T/cli.jinja"
expect 0 $E model prompt "$T/own" --messages "$T/msgs.json" --chat-template "$T/cli.jinja"
check "--chat-template over the checkpoint's own" test "$(cat "$T/out")" = "<s>1"
expect 0 $E model prompt "$T/own" --messages "$T/msgs.json" --template pt
check "--template over the checkpoint's own" grep -q '^<|begin_of_sentence|>User: Picture 1:' "$T/out"
rm "$T/own/chat_template.jinja"
printf '{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages[0].role }}"}]}\n' >"$T/own/tokenizer_config.json"
expect 0 $E model prompt "$T/own" --messages "$T/msgs.json"
check "tokenizer_config.json: the template named default" test "$(cat "$T/out")" = "Duser"
# the variant from the checkpoint's name
cp -r "$T/tiny" "$T/ERNIE-4.5-VL-28B-A3B-Thinking"
expect 0 $E model info "$T/ERNIE-4.5-VL-28B-A3B-Thinking"
check "model info: Thinking told from the path" grep -q '^variant  *Thinking (told from the path' "$T/out"
check "model info: its built-in" grep -q '^chat template  *built-in ERNIE-4.5-VL Thinking' "$T/out"
# GGUF carries the template
printf 'G{{ messages | length }}' >"$T/own/chat_template.jinja"
expect 0 $E model quantize -q --type q8_0 "$T/own" "$T/own.gguf"
expect 0 $E model prompt "$T/own.gguf" --messages "$T/msgs.json"
check "GGUF tokenizer.chat_template renders" test "$(cat "$T/out")" = "G1"
# errors: a template that raises, one that does not parse, bad messages
printf '{{ raise_exception("only user turns, please") }}' >"$T/raise.jinja"
expect 65 $E model prompt "$T/tiny" --messages "$T/msgs.json" --chat-template "$T/raise.jinja"
check "a raising template: its message" grep -q 'only user turns, please' "$T/err"
printf 'line one\n{%% if x %%}never closed\n' >"$T/bad.jinja"
expect 78 $E model prompt "$T/tiny" --messages "$T/msgs.json" --chat-template "$T/bad.jinja"
check "a broken template: the line named" grep -q 'chat template line 2: .*needs {% endif %}' "$T/err"
printf '{"role": "user"}' >"$T/notlist.json"
expect 65 $E model prompt "$T/tiny" --messages "$T/notlist.json"
check "messages must be a JSON array" grep -q 'not a JSON array' "$T/err"
# the engine prompts with --chat-template; the pages keep another model id
printf '{{ bos_token }}User: {%% for p in messages[-1].content %%}{%% if p.type == "image" %%}<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>{%% else %%}{{ p.text }}{%% endif %%}{%% endfor %%}\nAssistant: ' >"$T/eng.jinja"
expect 0 $E ocr --db "$T/tmpl.db" --model "$T/tiny" --chat-template "$T/eng.jinja" \
	--max-tokens 3 --max-pixels 100000 "$PNG"
check "ocr --chat-template: the page is read" test "$(q "$T/tmpl.db" "SELECT count(*) FROM pages WHERE model_id LIKE 'native/tiny+tmpl-%'")" = 1
printf 'no image here {{ messages | length }}' >"$T/noimg.jinja"
expect 1 $E ocr --db "$T/tmpl2.db" --model "$T/tiny" --chat-template "$T/noimg.jinja" \
	--max-tokens 3 --max-pixels 100000 "$PNG"
check "a template that drops the image: the page fails clearly" grep -q 'image tokens are not one' "$T/err"

# ---- remote: the normal case through standard input -------------------
serve normal --expect-size 420x588
expect 0 sh -c "cat '$T/doc3.pdf' | $E ocr --db '$T/r.db' --server '$URL' \
	--text-layer never $FAST -"
check "remote stdin: one JSON object per page" test "$(lines)" = 3
check "remote: two model pages" test "$(grep -c '"source":"model"' "$T/out")" = 2
check "remote: the reply text" grep -q '"text":"# Page 420x588' "$T/out"
check "remote: blank page never sent" test "$(count REQ)" = 2
valid
check "remote: image size as smart_resize (420x588)" test "$(count 'REQ image=420x588')" = 2
check "remote: non-thinking, greedy" test "$(count 'REQ image=420x588 thinking=0 max_tokens=[0-9]* temperature=0 stream=1')" = 2
check "remote: model id from /v1/models" test "$(q "$T/r.db" "SELECT DISTINCT model_id FROM pages WHERE source = 'model'")" = "remote/ERNIE-4.5-VL-28B-A3B-PT"
check "remote: finish_reason and usage" test "$(q "$T/r.db" "SELECT count(*) FROM pages WHERE finish_reason = 'stop' AND tokens_in = 415 AND tokens_out = 28")" = 2
check "remote: prompt id" test "$(q "$T/r.db" "SELECT DISTINCT prompt_id FROM pages WHERE source = 'model'")" = "ocr-v1"
# structure: blocks, cells, fields
check "blocks: heading, paragraph, table" test "$(q "$T/r.db" "SELECT group_concat(kind, '|') FROM (SELECT kind FROM blocks WHERE page_id = (SELECT min(id) FROM pages WHERE source = 'model') ORDER BY seq)")" = "heading|paragraph|table"
check "blocks: heading level" test "$(q "$T/r.db" "SELECT level FROM blocks WHERE kind = 'heading' LIMIT 1")" = 1
check "cells reachable by SQL" test "$(q "$T/r.db" "SELECT c.text FROM cells c JOIN blocks b ON b.id = c.block_id WHERE c.row = 1 AND c.col = 1 LIMIT 1")" = "12.00"
check "cells: header row" test "$(q "$T/r.db" "SELECT count(*) FROM cells WHERE header = 1")" = 4
check "fields: date" test "$(q "$T/r.db" "SELECT count(*) FROM fields WHERE name = 'date' AND value = '2026-11-23'")" = 2
check "fields: amount" test "$(q "$T/r.db" "SELECT count(*) FROM fields WHERE name = 'amount' AND value = 'EUR 1,234.50'")" = 2
check "fields: email" test "$(q "$T/r.db" "SELECT count(*) FROM fields WHERE name = 'email' AND value = 'ocr@example.com'")" = 2
check "fields: spans" test "$(q "$T/r.db" "SELECT count(*) FROM fields f JOIN pages p ON p.id = f.page_id WHERE substr(p.text, f.span_start + 1, f.span_end - f.span_start) = f.value")" = "$(q "$T/r.db" "SELECT count(*) FROM fields")"
check "similarity stored" test "$(q "$T/r.db" "SELECT count(*) FROM pages WHERE text_similarity BETWEEN 0 AND 0.5")" = 2
expect 0 $E export --db "$T/r.db" --format md -- -
check "export md in reading order" grep -q "^# Page 420x588" "$T/out"
# a re-run asks nothing
expect 0 $E ocr --db "$T/r.db" --server "$URL" --text-layer never $FAST "$T/doc3.pdf"
check "remote re-run: cached" test "$(grep -c '"cached":true' "$T/out")" = 3
check "remote re-run: no request" test "$(count REQ)" = 2
serve normal
# --rules: named patterns of our own beside the built-in set
printf '# a comment\nitem (?i)paper\nprice (?<value>[0-9]+\\.[0-9]{2})</td>\n' >"$T/rules"
expect 0 $E ocr --db "$T/rules.db" --server "$URL" --rules "$T/rules" $FAST "$PNG"
check "rules: custom field" test "$(q "$T/rules.db" "SELECT value FROM fields WHERE name = 'item'")" = "Paper"
check "rules: named group value" test "$(q "$T/rules.db" "SELECT value FROM fields WHERE name = 'price'")" = "12.00"
printf 'broken (unclosed\n' >"$T/badrules"
expect 78 $E ocr --db "$T/rules.db" --server "$URL" --rules "$T/badrules" "$PNG"
check "bad rule named" grep -q "broken" "$T/err"
# generation options reach the server
expect 0 $E ocr --db "$T/opt.db" --server "$URL" --temperature 0.7 --top-p 0.9 \
	--seed 7 --max-tokens 99 $FAST "$PNG"
check "temperature sent" test "$(count 'REQ image=56x56 thinking=0 max_tokens=[0-9]* temperature=0.7')" = 1
check "max-tokens caps the budget" test "$(q "$T/opt.db" "SELECT count(*) FROM pages")" = 1
# connections are reused: 8 pages, 2 jobs
"$BUILD/tests/mkpdf" "$T/doc8.pdf" 8 doc8
serve normal
expect 0 $E ocr --db "$T/reuse.db" --server "$URL" --model-name "$(echo baidu/ERNIE-4.5-VL-28B-A3B-PT)" \
	--text-layer never -j 2 $FAST "$T/doc8.pdf"
check "8 pages" test "$(count REQ)" = 8
check "connections reused ($(count CONN) for 8 requests)" test "$(count CONN)" -le 3
valid

# ---- thinking mode ----------------------------------------------------
serve think
expect 0 $E ocr --db "$T/th.db" --server "$URL" --mode think $FAST "$PNG"
check "think: enable_thinking sent" test "$(count 'REQ image=56x56 thinking=1')" = 1
check "think: reasoning apart" grep -q '"reasoning":"The page has a heading and a table.' "$T/out"
check "think: answer without reasoning" grep -q '"text":"# Page 56x56' "$T/out"
check "think: stored apart" test "$(q "$T/th.db" "SELECT count(*) FROM pages WHERE mode = 'think' AND reasoning LIKE 'The page%' AND text LIKE '# Page%'")" = 1
serve think-inline
expect 0 $E ocr --db "$T/th2.db" --server "$URL" --mode think $FAST "$PNG"
check "think-inline: split at </think>" test "$(q "$T/th2.db" "SELECT count(*) FROM pages WHERE reasoning = 'The page has a heading.' AND text LIKE '# Page%'")" = 1
serve plain
expect 0 $E ocr --db "$T/plain.db" --server "$URL" $FAST "$PNG"
check "a non-streamed reply" grep -q '"text":"# Page 56x56' "$T/out"
# a custom prompt is its own result
serve normal
expect 0 $E ocr --db "$T/plain.db" --server "$URL" --prompt "List the prices." $FAST "$PNG"
check "custom prompt: own prompt id" test "$(q "$T/plain.db" "SELECT count(DISTINCT prompt_id) FROM pages")" = 2
check "custom prompt id" test "$(q "$T/plain.db" "SELECT count(*) FROM pages WHERE prompt_id LIKE 'custom-%'")" = 1

# ---- the zoom tool ------------------------------------------------------
python3 tests/mkquad.py "$T/quad.png" 560 840
serve zoom2
expect 0 $E ocr --db "$T/z.db" --server "$URL" --mode think --zoom --save-zooms "$T/crops" $FAST "$T/quad.png"
valid
check "zoom: three requests, tools declared" test "$(count 'REQ image=560x840 thinking=1 max_tokens=[0-9]* temperature=0 stream=1 tools=1')" = 3
check "zoom 1: the top-left quadrant, from the original pixels" grep -q "^TOOL n=1 id=call_0 image=280x420 mean=255,0,0 text=The region \[0, 0, 500, 500\]" "$T/srv.log"
check "zoom 2: the bottom-right quadrant, the call ids answered" grep -q "^TOOL n=2 id=call_1 image=280x420 mean=0,0,0 " "$T/srv.log"
check "zoom: the budget shrinks as steps spend it" test "$(grep '^REQ' "$T/srv.log" | sed 's/.*max_tokens=\([0-9]*\).*/\1/' | tr '\n' ' ')" = "4096 4066 4036 "
check "zoom: stored rows" test "$(q "$T/z.db" "SELECT group_concat(step || ':' || x1 || '-' || y1 || '-' || x2 || '-' || y2 || ':' || width || 'x' || height || ':' || coalesce(label, ''), ' ') FROM zooms")" = "1:0.0-0.0-500.0-500.0:280x420:top left 2:500.0-500.0-1000.0-1000.0:280x420:"
check "zoom: in the JSON" grep -q '"zooms":\[{"step":1,"bbox":\[0.0,0.0,500.0,500.0\],"width":280,"height":420,"label":"top left"}' "$T/out"
check "zoom: the final answer stored" test "$(q "$T/z.db" "SELECT count(*) FROM pages WHERE text LIKE '# Page 560x840%' AND prompt_id = 'ocr-v1+zoom' AND tool_errors = 0")" = 1
check "zoom: every step's reasoning" test "$(q "$T/z.db" "SELECT reasoning LIKE 'The corner%look closer.%The corner%Now I can read it all.%' FROM pages")" = 1
check "zoom: crops saved" test "$(ls "$T/crops" | wc -l)" = 2
expect 0 $E tiles "$T/crops/$(ls "$T/crops" | head -n 1)"
check "zoom: a saved crop is the region" grep -q "^1 *280 *420 " "$T/out"
expect 0 $E ocr --db "$T/z.db" --server "$URL" --mode think --zoom $FAST "$T/quad.png"
check "zoom: cached on a re-run" grep -q '"cached":true' "$T/out"
expect 64 $E ocr --db "$T/z.db" --server "$URL" --zoom "$T/quad.png"
expect 64 $E ocr --zoom-steps 0 "$T/quad.png"
# a server without a tool parser: the call in the text
serve zoom-inline
expect 0 $E ocr --db "$T/zi.db" --server "$URL" --mode think --zoom $FAST "$T/quad.png"
valid
check "zoom in the text: answered" grep -q "^TOOL n=1 id=call_0 image=280x420 mean=255,0,0" "$T/srv.log"
check "zoom in the text: stored" test "$(q "$T/zi.db" "SELECT count(*) FROM zooms")" = 1
# malformed calls: each answered with what is wrong, counted, never fatal
serve zoom-bad
expect 0 $E ocr --db "$T/zb.db" --server "$URL" --mode think --zoom --zoom-steps 5 $FAST "$T/quad.png"
valid
check "bad calls: four errors" test "$(q "$T/zb.db" "SELECT tool_errors FROM pages")" = 4
check "bad call: arity" grep -q "^TOOL n=1 id=call_0 image=none text=Error: bbox_2d must be \[x1, y1, x2, y2\]" "$T/srv.log"
check "bad call: inverted" grep -q "^TOOL n=2 id=call_1 image=none text=Error: bbox_2d \[900, 900, 100, 100\] is empty or inverted" "$T/srv.log"
check "bad call: unknown tool" grep -q "^TOOL n=3 id=call_2 image=none text=Error: unknown tool 'image_search'" "$T/srv.log"
check "bad call: not JSON" grep -q "^TOOL n=4 id=call_3 image=none text=Error: the arguments are not a JSON object" "$T/srv.log"
check "bad calls: the answer still comes" test "$(q "$T/zb.db" "SELECT status || '/' || finish_reason FROM pages")" = "done/stop"
# a model that never stops zooming: the limit, one last chance, the end
serve zoom-loop
expect 0 $E ocr --db "$T/zl.db" --server "$URL" --mode think --zoom --zoom-steps 2 $FAST "$T/quad.png"
check "zoom limit: 2 zooms, a last chance, then the end" test "$(count REQ)" = 4
check "zoom limit: verdict" test "$(q "$T/zl.db" "SELECT guard || '/' || finish_reason || '/' || tool_errors FROM pages")" = "zoom-limit/tool_calls/1"
check "zoom limit: told so" grep -q "^TOOL n=3 .*image=none text=Error: no more zooms" "$T/srv.log"
# a PDF region is rendered from the vector source to fill the budget
serve zoom1
expect 0 $E ocr --db "$T/zp.db" --server "$URL" --mode think --zoom --text-layer never --pages 1 --max-pixels 200000 $FAST "$T/doc3.pdf"
check "PDF zoom: rendered to fill the pixel budget" test "$(q "$T/zp.db" "SELECT width * height BETWEEN 190000 AND 200000 FROM zooms")" = 1
check "PDF zoom: drawn at the tiling's size (sides of whole tokens)" test "$(q "$T/zp.db" "SELECT width % 28 = 0 AND height % 28 = 0 FROM zooms")" = 1
check "PDF zoom: the crop keeps the box's shape (within a token a side)" test "$(q "$T/zp.db" "SELECT abs(width - height * 595.276 / 841.89) <= 28 FROM zooms")" = 1
# --mode auto: a fast pass, then a second look at flagged pages
expect 0 $E ocr --db "$T/auto.db" --server "$URL" --mode auto --text-layer never $FAST "$T/doc3.pdf"
valid
check "auto: both passes asked for the two text pages" test "$(count 'REQ image=420x588 thinking=0')/$(count 'REQ image=420x588 thinking=1 max_tokens=[0-9]* temperature=0 stream=1 tools=1 results=0')" = "2/2"
check "auto: both results kept" test "$(q "$T/auto.db" "SELECT group_concat(pass || ':' || chosen, ' ') FROM (SELECT pass, chosen FROM pages WHERE page_no = 1 ORDER BY pass)")" = "ocr:0 think-zoom:1"
check "auto: the chosen one holds the key" test "$(q "$T/auto.db" "SELECT count(*) FROM pages WHERE chosen = 1 AND prompt_id = 'ocr-v1' AND mode = 'auto'")" = 2
check "auto: why it looked again" test "$(q "$T/auto.db" "SELECT count(*) FROM pages WHERE chosen = 1 AND guard LIKE '%escalated:low-agreement%'")" = 2
check "auto: the zooms are the second look's" test "$(q "$T/auto.db" "SELECT count(*) FROM zooms z JOIN pages p ON p.id = z.page_id WHERE p.pass = 'think-zoom'")" = 2
check "auto: printed as chosen" test "$(grep -c '"pass":"think-zoom"' "$T/out")" = 2
expect 0 $E ocr --db "$T/auto.db" --server "$URL" --mode auto --text-layer never $FAST "$T/doc3.pdf"
check "auto: a re-run does nothing" test "$(grep -c '"cached":true' "$T/out")" = 3
expect 0 $E search --db "$T/auto.db" --format ndjson Paper
check "auto: search finds the chosen results only" test "$(wc -l <"$T/out")" = 2

# ---- API key: only from the environment --------------------------------
serve normal --api-key s3cret
expect 0 env ERNIE_DOC_API_KEY=s3cret $E ocr --db "$T/key.db" --server "$URL" $FAST "$PNG"
expect 1 env -u ERNIE_DOC_API_KEY $E ocr --db "$T/key2.db" --server "$URL" --model-name m $FAST "$PNG"
check "refused without the key" grep -q "HTTP 401" "$T/err"
expect 64 $E ocr --api-key s3cret --server "$URL" "$PNG"
expect 0 env ERNIE_DOC_SERVER="$URL" ERNIE_DOC_API_KEY=s3cret $E ocr --db "$T/key3.db" $FAST "$PNG"
check "ERNIE_DOC_SERVER" grep -q '"source":"model"' "$T/out"

# ---- guards -----------------------------------------------------------
# a loop: stopped early, retried warmer, then the text layer
serve loop
expect 0 $E ocr --db "$T/g.db" --server "$URL" --text-layer never --pages 1 $FAST "$T/doc3.pdf"
check "loop: three attempts" grep -q '"attempts":3' "$T/out"
check "loop: verdict" grep -q '"guard":"retried,repetition,text-layer-fallback"' "$T/out"
check "loop: text layer instead" grep -q '"source":"text-layer".*"finish_reason":"repetition"' "$T/out"
check "loop: rising temperatures" test "$(grep '^REQ' "$T/srv.log" | sed 's/.*temperature=\([0-9.]*\).*/\1/' | tr '\n' ' ')" = "0 0.3 0.6 "
check "loop: generation stopped early" test "$(grep '^LOOP' "$T/srv.log" | sed 's/.*sent=//' | sort -n | tail -n 1)" -lt 1000
check "loop: stored verdict" test "$(q "$T/g.db" "SELECT replace(guard, ',', ' ') || '/' || attempts || '/' || finish_reason FROM pages")" = "retried repetition text-layer-fallback/3/repetition"
# without a text layer the transcription is kept up to the loop
expect 0 $E ocr --db "$T/g2.db" --server "$URL" --retries 0 $FAST "$PNG"
check "loop, no text layer: verdict" grep -q '"guard":"retried,repetition"' "$T/out"
check "loop, no text layer: cut before the loop" test "$(q "$T/g2.db" "SELECT length(text) < 100 FROM pages")" = 1
# a loop only at temperature 0: the first retry succeeds
serve loop-once
expect 0 $E ocr --db "$T/g3.db" --server "$URL" $FAST "$PNG"
check "loop-once: done after a retry" test "$(q "$T/g3.db" "SELECT status || '/' || guard || '/' || attempts || '/' || finish_reason FROM pages")" = "done/retried/2/stop"
# an over-long reply (the server ignores max_tokens): cut at the budget
serve long
expect 0 $E ocr --db "$T/g4.db" --server "$URL" --max-tokens 50 $FAST "$PNG"
check "long: verdict length" test "$(q "$T/g4.db" "SELECT guard || '/' || finish_reason FROM pages")" = "length/length"
check "long: cut at the budget" test "$(q "$T/g4.db" "SELECT length(text) BETWEEN 100 AND 400 FROM pages")" = 1
# the budget scales with the page: a small image asks for less
check "budget scales with the page" test "$(grep '^REQ' "$T/srv.log" | sed 's/.*max_tokens=\([0-9]*\).*/\1/')" -le 50

# ---- remote fault matrix ------------------------------------------------
serve 429
t0=$(date +%s%N)
expect 0 $E ocr --db "$T/f1.db" --server "$URL" $FAST "$PNG"
t1=$(date +%s%N)
check "429 then success: two requests" test "$(count REQ)" = 2
check "429: Retry-After honoured ($(((t1 - t0) / 1000000)) ms)" test $(((t1 - t0) / 1000000)) -ge 1000
serve 500-once
expect 0 $E ocr --db "$T/f2.db" --server "$URL" $FAST "$PNG"
check "500 once: retried" test "$(count REQ)" = 2
serve 500
expect 75 $E ocr --db "$T/f3.db" --server "$URL" --retries 2 $FAST "$PNG"
check "500: three attempts" test "$(count REQ)" = 3
check "500: message" grep -q "after 3 attempts.*HTTP 500" "$T/err"
check "500: stored as an error" test "$(q "$T/f3.db" "SELECT status || '/' || finish_reason FROM pages")" = "error/error"
expect 1 $E ocr --db "$T/f3.db" --server "$URL" --retries 0 $FAST "$PNG" "$T/doc3.pdf"
check "500, two inputs: status 1" grep -q "after 1 attempt" "$T/err"
serve slow --delay 3
expect 75 $E ocr --db "$T/f4.db" --server "$URL" --timeout 0.5 --retries 1 $FAST "$PNG"
check "slow: timed out" grep -qi "timed\? \?out" "$T/err"
serve malformed
expect 1 $E ocr --db "$T/f5.db" --server "$URL" $FAST "$PNG"
check "malformed: message" grep -q "malformed reply" "$T/err"
check "malformed: not retried" test "$(count REQ)" = 1
check "malformed: stored as an error" test "$(q "$T/f5.db" "SELECT status FROM pages")" = "error"
serve truncated
expect 75 $E ocr --db "$T/f6.db" --server "$URL" --retries 1 $FAST "$PNG"
check "truncated: retried" test "$(count REQ)" = 2
serve truncated-stream
expect 75 $E ocr --db "$T/f7.db" --server "$URL" --retries 1 $FAST "$PNG"
check "truncated stream: retried" test "$(count REQ)" = 2
check "truncated stream: message" grep -q "ended early\|transfer closed\|partial" "$T/err"
# faults a server makes after the 200, and the replies it may send
serve stream-error-once
expect 0 $E ocr --db "$T/f10.db" --server "$URL" $FAST "$PNG"
check "an error object mid-stream: retried, then stored" test "$(count REQ)/$(q "$T/f10.db" "SELECT status FROM pages")" = "2/done"
check "an error object mid-stream: only the second reply's text" \
	test "$(q "$T/f10.db" "SELECT count(*) FROM pages WHERE text LIKE '# Page%' AND text NOT LIKE '%# Page%# Page%'")" = 1
serve 429-date
t0=$(date +%s%N)
expect 0 $E ocr --db "$T/f11.db" --server "$URL" $FAST "$PNG"
t1=$(date +%s%N)
check "429 with Retry-After as an HTTP date: waited ($(((t1 - t0) / 1000000)) ms)" \
	test $(((t1 - t0) / 1000000)) -ge 1000
serve reset-once
expect 0 $E ocr --db "$T/f12.db" --server "$URL" $FAST "$PNG"
check "a connection reset mid-stream: retried, then stored" test "$(count REQ)/$(q "$T/f12.db" "SELECT status FROM pages")" = "2/done"
serve never-ends
expect 75 $E ocr --db "$T/f13.db" --server "$URL" --timeout 1 --retries 1 $FAST "$PNG"
check "a reply that never ends: cut at --timeout, retried, 75" test "$(count REQ)" = 2
check "a reply that never ends: stored as an error for the next run" test "$(q "$T/f13.db" "SELECT status FROM pages")" = error
serve gzip
expect 0 $E ocr --db "$T/f14.db" --server "$URL" $FAST "$PNG"
check "a gzip-encoded reply: read" test "$(q "$T/f14.db" "SELECT count(*) FROM pages WHERE status = 'done' AND text LIKE '# Page%'")" = 1
serve gzip-chunked
expect 0 $E ocr --db "$T/f15.db" --server "$URL" $FAST "$PNG"
check "a gzip-encoded JSON reply sent chunked: read" test "$(q "$T/f15.db" "SELECT count(*) FROM pages WHERE status = 'done' AND text LIKE '# Page%'")" = 1
# an HTTP/2-only server over TLS (tests/h2server.py, python3-h2): the
# client negotiates h2, multiplexes pages on one connection, verifies the
# certificate against SSL_CERT_FILE, and without it refuses (69)
H2PY=$(python_with h2)
if [ -n "$H2PY" ] && command -v openssl >/dev/null 2>&1; then
	stop_server
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$T/h2key.pem" \
		-out "$T/h2cert.pem" >/dev/null 2>&1
	rm -f "$T/port"
	: >"$T/srv.log"
	"$H2PY" tests/h2server.py --cert "$T/h2cert.pem" --key "$T/h2key.pem" \
		--port-file "$T/port" --log "$T/srv.log" &
	SRV_PID=$!
	wait_port
	H2URL="https://127.0.0.1:$(cat "$T/port")/v1"
	expect 0 env SSL_CERT_FILE="$T/h2cert.pem" $E ocr --db "$T/h2.db" \
		--server "$H2URL" -j 3 --text-layer never $FAST "$T/doc7.pdf"
	check "HTTP/2: seven pages stored" test "$(q "$T/h2.db" "SELECT count(*) FROM pages WHERE status = 'done' AND text LIKE '# Over HTTP/2%'")" = 7
	check "HTTP/2: every request over h2 ($(count REQ) of them)" \
		test "$(count 'REQ h2 ')" = "$(count REQ)" -a "$(count REQ)" = 8
	check "HTTP/2: the pages multiplexed on one connection" \
		test "$(grep 'POST' "$T/srv.log" | sed 's/.*conn=\([0-9]*\).*/\1/' | sort -u | wc -l)" = 1
	check "HTTP/2: every request well formed" test "$(count INVALID)" = 0
	expect 69 $E ocr --db "$T/h2b.db" --server "$H2URL" --retries 1 $FAST "$PNG"
	check "HTTPS: an unknown certificate refused, said so" grep -q "SSL certificate problem" "$T/err"
	stop_server
else
	check "the HTTP/2 test needs python3-h2 and openssl (make deps)" false
fi
# unreachable: nothing listens on the port any more
stop_server
expect 69 $E ocr --db "$T/f8.db" --server "$URL" --retries 1 $FAST "$PNG"
check "unreachable: message" grep -q "cannot reach" "$T/err"
expect 69 $E ocr --db "$T/f8.db" --server "$URL" --model-name x --retries 1 $FAST "$PNG" "$T/doc3.pdf"
check "unreachable: the run stops, nothing stored as failed" test "$(q "$T/f8.db" "SELECT count(*) FROM pages WHERE status = 'error'")" = 0
expect 78 $E ocr --db "$T/f8.db" --server "ftp://x" "$PNG"
serve normal --no-models
expect 78 $E ocr --db "$T/f9.db" --server "$URL" "$PNG"
check "no model list: asks for --model-name" grep -q "give --model-name" "$T/err"
expect 0 $E ocr --db "$T/f9.db" --server "$URL" --model-name baidu/ERNIE-4.5-VL-28B-A3B-PT $FAST "$PNG"
expect 64 $E ocr --model "$T/tiny" --server "$URL" "$PNG"
expect 64 $E ocr --mode fast "$PNG"
expect 64 $E ocr --jobs 0 "$PNG"
expect 64 $E batch --shard 3/2 "$T"
expect 64 $E batch

# ---- batch ---------------------------------------------------------------
B=$T/tree
mkdir -p "$B/a/deep" "$B/b"
i=1
while [ $i -le 54 ]; do
	case $((i % 3)) in
	0) d=$B/a ;;
	1) d=$B/a/deep ;;
	*) d=$B/b ;;
	esac
	"$BUILD/tests/mkpdf" "$d/doc$i.bin" $((i % 3 + 1)) "batch$i"
	i=$((i + 1))
done
cp "$C/smile.png" "$B/b/picture.dat"
cp "$C/invalid.pdf" "$B/b/broken.pdf"
echo "not a document" >"$B/b/notes.txt"
ln -s .. "$B/a/deep/loop"
ln -s ../b "$B/a/b-again"
# 54 documents of 1-3 pages (108 pages), a PNG, a broken PDF
TOTAL=$((108 + 1))
serve normal --delay 0.05
# timing-driven parts (kill -9, SIGINT, progress) need the real binary
TIMED=1
[ -n "${ED_VALGRIND:-}" ] && TIMED=
KILLED=0
for wait in ${TIMED:+0.3 0.5 0.7}; do
	$E batch -q --db "$T/b.db" --server "$URL" --text-layer never -j 4 \
		$FAST "$B" >"$T/kout" 2>"$T/kerr" &
	pid=$!
	sleep $wait
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	[ $? -eq 137 ] && KILLED=$((KILLED + 1))
done
[ -n "$TIMED" ] && check "killed with kill -9 ($KILLED times)" test $KILLED -ge 2
check "integrity after kill -9" test "$(q "$T/b.db" "PRAGMA integrity_check")" = ok
stored=$(q "$T/b.db" "SELECT count(*) FROM pages")
rq=$(count REQ)
expect 1 $E batch --db "$T/b.db" --server "$URL" --text-layer never -j 4 $FAST "$B"
check "resume: $stored finished pages not redone" test "$(grep -c '"cached":true' "$T/out")" = "$stored"
check "resume: only the rest asked ($(($(count REQ) - rq)) requests)" test $(($(count REQ) - rq)) -eq $((TOTAL - stored))
check "every page stored exactly once" test "$(q "$T/b.db" "SELECT count(*) || '/' || count(DISTINCT document_id || '.' || page_no) FROM pages WHERE status = 'done'")" = "$TOTAL/$TOTAL"
check "no half-written page" test "$(q "$T/b.db" "SELECT count(*) FROM pages p WHERE source = 'model' AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.page_id = p.id)")" = 0
check "bad file recorded" test "$(q "$T/b.db" "SELECT count(*) FROM documents WHERE path LIKE '%broken.pdf' AND error IS NOT NULL")" = 1
check "bad file named on stderr" grep -q "broken.pdf" "$T/err"
check "types by magic bytes, loops and links once" test "$(q "$T/b.db" "SELECT count(*) FROM documents")" = 56
check "a line per document" test "$(grep -c ': [0-9]* pages\?: ' "$T/err")" -ge 55
check "summary line" grep -q "56 documents (1 failed): .* 0 failed, $stored already stored" "$T/err"
expect 1 $E batch -q --db "$T/b.db" --server "$URL" --text-layer never $FAST "$B"
check "second resume: everything cached" test "$(grep -c '"cached":true' "$T/out")" = $TOTAL
# SIGINT: what is finished is committed, exit 130
if [ -n "$TIMED" ]; then
	serve normal --delay 0.2
	rm -f "$T/i.db"
	$E batch -q --db "$T/i.db" --server "$URL" --text-layer never -j 2 $FAST "$B" >"$T/iout" 2>"$T/ierr" &
	pid=$!
	sleep 1
	kill -INT $pid
	wait $pid
	st=$?
	check "batch SIGINT exits 130 (got $st)" test $st -eq 130
	check "SIGINT: printed pages stored" test "$(grep -c '"page":[0-9]' "$T/iout")" -le "$(q "$T/i.db" "SELECT count(*) FROM pages")"
fi
# SIGINT on the native engine with pages decoding together: every
# sequence ends at its next token, finished pages are committed, 130
if [ -n "$TIMED" ]; then
	"$BUILD/tests/mkpdf" "$T/doc9.pdf" 9 doc9
	rm -f "$T/ni.db"
	$E ocr -q --db "$T/ni.db" --model "$T/tiny" --text-layer never -j 3 \
		--max-tokens 100000 --max-pixels 100000 $FAST "$T/doc9.pdf" \
		>"$T/niout" 2>"$T/nierr" &
	pid=$!
	sleep 2
	kill -INT $pid
	wait $pid
	st=$?
	check "native batched SIGINT exits 130 (got $st)" test $st -eq 130
	check "native SIGINT: integrity" test "$(q "$T/ni.db" "PRAGMA integrity_check")" = ok
	check "native SIGINT: no page left half done" test "$(q "$T/ni.db" "SELECT count(*) FROM pages WHERE status NOT IN ('done', 'error', 'blank')")" = 0
fi
# SIGINT and SIGTERM at random points of a remote and a native batch:
# 130, every printed page stored, none half done; a plain resume computes
# only the rest, and the tree ends stored once (ED_SIG_SEED repeats a run)
if [ -n "$TIMED" ]; then
	mkdir -p "$T/sigtree"
	for i in 1 2 3 4; do "$BUILD/tests/mkpdf" "$T/sigtree/s$i.pdf" 3 sdoc$i; done
	serve normal --delay 0.4
	k=0
	for how in remote native remote native; do
		for sig in INT TERM; do
			k=$((k + 1))
			wait_s=$(awk -v s="$SEED" -v k=$k 'BEGIN { srand(s); for (i = 0; i < k; i++) r = rand(); printf "%.2f", 0.1 + r * 1.4 }')
			if [ $how = remote ]; then
				SIGO="--server $URL $FAST"
			else
				SIGO="--model $T/tiny --max-tokens 1500 --max-pixels 100000 --dpi 50"
			fi
			db=$T/sig.db
			rm -f "$db" "$db-wal" "$db-shm"
			$E batch -q --db "$db" $SIGO --text-layer never -j 2 "$T/sigtree" >"$T/sig1.out" 2>"$T/sig1.err" &
			pid=$!
			sleep "$wait_s"
			kill -$sig $pid
			wait $pid
			st=$?
			what="$how SIG$sig after ${wait_s}s (seed $SEED)"
			printed=$(grep -c '"page":[0-9]' "$T/sig1.out")
			kept=$(q "$db" "SELECT count(*) FROM pages WHERE status = 'done'")
			echo "  ($what: $kept of 12 pages kept, $printed printed)"
			check "$what: exits 130 (got $st)" test $st -eq 130
			check "$what: the $printed printed pages stored ($kept)" test "$printed" -le "$kept"
			check "$what: integrity" test "$(q "$db" "PRAGMA integrity_check")" = ok
			check "$what: none half done" test "$(q "$db" "SELECT count(*) FROM pages WHERE status <> 'done'")" = 0
			$E batch -q --db "$db" $SIGO --text-layer never -j 2 "$T/sigtree" >"$T/sig2.out" 2>"$T/sig2.err"
			st=$?
			check "$what: the resume exits 0 (got $st)" test $st -eq 0
			check "$what: the resume computes only the other $((12 - kept))" \
				test "$(grep -c '"cached":false' "$T/sig2.out")" = $((12 - kept))
			check "$what: every page stored once" \
				test "$(q "$db" "SELECT count(*) || '/' || count(DISTINCT document_id || '-' || page_no) || '/' || sum(status = 'done') FROM pages")" = 12/12/12
		done
	done
	valid
fi
# a missing root is one bad input
serve normal
expect 1 $E batch -q --db "$T/m.db" --server "$URL" $FAST "$B/b" "$T/no-such-dir"
check "missing root named" grep -q "no-such-dir" "$T/err"
check "the other root done" test "$(q "$T/m.db" "SELECT count(*) FROM documents")" -ge 18

# memory stays bounded however many documents: 100 copies of a 1.6 MB scan
mkdir -p "$T/many"
i=1
while [ $i -le 100 ]; do
	cp "$C/phototest_2.tif" "$T/many/scan$i.tif"
	i=$((i + 1))
done
expect 0 "$BUILD/tests/peakrss" $E batch -q --db "$T/many.db" --text-layer only -j 4 "$T/many"
rss=$(sed -n 's/^peakrss: \([0-9]*\) KiB$/\1/p' "$T/err")
check "100 copies of one scan, one stored page" test "$(q "$T/many.db" "SELECT count(*) FROM pages")" = 1
if [ -z "${ED_SANITIZED:-}" ] && [ -z "${ED_VALGRIND:-}" ]; then
	check "documents are released as they finish (peak RSS ${rss} KiB for 160 MB of inputs)" test "${rss:-999999}" -lt 81920
fi
rm -rf "$T/many"

# ---- several processes on one database ---------------------------------------
# three native batches over one tree at once: each takes pages the
# others are not working on (claims), every page computed and stored once
mkdir -p "$T/ptree"
for i in 1 2 3 4 5 6 7 8; do "$BUILD/tests/mkpdf" "$T/ptree/p$i.pdf" 3 pdoc$i; done
PAR="--model $T/tiny --text-layer never --max-tokens 40 --max-pixels 100000 --dpi 50"
for k in 1 2 3; do
	($E batch -q --db "$T/par.db" $PAR "$T/ptree" >"$T/par$k.out" 2>"$T/par$k.err"
		echo $? >"$T/par$k.rc") &
	eval "pid$k=\$!"
done
wait "$pid1" "$pid2" "$pid3" # not the test server
check "three batches at once: all exit 0" test "$(cat "$T/par1.rc" "$T/par2.rc" "$T/par3.rc" | tr -d '\n')" = 000
check "three batches at once: 24 pages computed between them, none twice" \
	test "$(cat "$T/par1.out" "$T/par2.out" "$T/par3.out" | grep -c '"cached":false')" = 24
check "three batches at once: each page stored once" \
	test "$(q "$T/par.db" "SELECT count(*) || '/' || count(DISTINCT document_id || '-' || page_no) FROM pages")" = 24/24
check "three batches at once: the claims all dropped" test "$(q "$T/par.db" "SELECT count(*) FROM claims")" = 0
# killed at random and started again: a dead process's claims lapse (a
# one-second lease here), the tree ends stored once
PAR="$PAR --max-tokens 800"
for round in 1 2; do
	rm -f "$T/kill.db" "$T/kill.db-wal" "$T/kill.db-shm"
	for k in 1 2 3; do
		ERNIE_DOC_LEASE=1 $E batch -q --db "$T/kill.db" $PAR "$T/ptree" \
			>/dev/null 2>&1 &
		eval "pid$k=\$!"
	done
	# which die, how and when: drawn from the seed (ED_SIG_SEED repeats
	# it); at least one of the three is killed
	set -- $(awk -v s="$SEED" -v r=$round 'BEGIN {
		srand(s + r); split("9 TERM INT -", how, " ")
		printf "%.2f", 0.2 + rand() * 0.8
		for (k = 1; k <= 3; k++) { h[k] = how[1 + int(rand() * 4)]; any += h[k] != "-" }
		if (!any) h[1] = "9"
		printf " %s %s %s\n", h[1], h[2], h[3] }')
	sleep "$1"
	[ "$2" != - ] && kill -"$2" "$pid1" 2>/dev/null
	[ "$3" != - ] && kill -"$3" "$pid2" 2>/dev/null
	[ "$4" != - ] && kill -"$4" "$pid3" 2>/dev/null
	wait "$pid1"
	st1=$?
	wait "$pid2"
	st2=$?
	wait "$pid3"
	st3=$?
	echo "  (three batches, round $round: after $1 s, signals $2 $3 $4, exits $st1 $st2 $st3; seed $SEED)"
	want=
	for h in $2 $3 $4; do
		case $h in 9) want="$want 137" ;; -) want="$want 0" ;; *) want="$want 130" ;; esac
	done
	check "killed and restarted (round $round): exits$want (got $st1 $st2 $st3)" \
		test "$want" = " $st1 $st2 $st3"
	ERNIE_DOC_LEASE=1 $E batch -q --db "$T/kill.db" $PAR "$T/ptree" >/dev/null 2>"$T/kill.err" &
	kp=$!
	sleep 1.2
	ERNIE_DOC_LEASE=1 $E batch -q --db "$T/kill.db" $PAR "$T/ptree" >/dev/null 2>&1
	wait "$kp"
	check "killed and restarted (round $round): every page stored once" \
		test "$(q "$T/kill.db" "SELECT count(*) || '/' || count(DISTINCT document_id || '-' || page_no) || '/' || sum(status = 'done') FROM pages")" = 24/24/24
	check "killed and restarted (round $round): integrity" test "$(q "$T/kill.db" "PRAGMA integrity_check")" = ok
done

# ---- shards and merge -------------------------------------------------------
# the broken PDF is in one shard: that one exits 1
$E batch -q --db "$T/s1.db" --server "$URL" --shard 1/2 --text-layer never $FAST "$B" >/dev/null 2>&1
s1=$?
$E batch -q --db "$T/s2.db" --server "$URL" --shard 2/2 --text-layer never $FAST "$B" >/dev/null 2>&1
s2=$?
check "shard exit statuses ($s1, $s2)" test $((s1 + s2)) -eq 1
n1=$(q "$T/s1.db" "SELECT count(*) FROM documents")
n2=$(q "$T/s2.db" "SELECT count(*) FROM documents")
check "shards split the inputs ($n1 + $n2)" test $((n1 + n2)) -eq 56 -a "$n1" -gt 10 -a "$n2" -gt 10
expect 0 $E merge -o "$T/all.db" "$T/s1.db" "$T/s2.db"
check "merged: every page once" test "$(q "$T/all.db" "SELECT count(*) FROM pages WHERE status = 'done'")" = $TOTAL
check "merged: documents" test "$(q "$T/all.db" "SELECT count(*) FROM documents")" = 56
check "merged: blocks follow their pages" test "$(q "$T/all.db" "SELECT count(*) FROM blocks")" = "$(($(q "$T/s1.db" "SELECT count(*) FROM blocks") + $(q "$T/s2.db" "SELECT count(*) FROM blocks")))"
check "merged: cells follow" test "$(q "$T/all.db" "SELECT count(*) FROM cells c JOIN blocks b ON b.id = c.block_id JOIN pages p ON p.id = b.page_id WHERE c.text = 'Paper'")" = $TOTAL
check "merged: fields follow" test "$(q "$T/all.db" "SELECT count(*) FROM fields f JOIN pages p ON p.id = f.page_id WHERE f.name = 'email'")" = $TOTAL
check "merged: full-text index" test "$(q "$T/all.db" "SELECT count(*) FROM pages_fts WHERE pages_fts MATCH 'Paper'")" = $TOTAL
expect 0 $E merge -o "$T/all.db" "$T/s1.db" "$T/s2.db" "$T/b.db"
check "merged again: nothing added" test "$(q "$T/all.db" "SELECT count(*) FROM pages")" = "$(($(q "$T/s1.db" "SELECT count(*) FROM pages") + $(q "$T/s2.db" "SELECT count(*) FROM pages")))"
check "merge reports what it skipped" grep -q "0 pages added" "$T/err"
expect 1 $E batch -q --db "$T/all.db" --server "$URL" --text-layer never $FAST "$B/a"
check "a merged store resumes" test "$(grep -c '"cached":false' "$T/out")" = 0
expect 66 $E merge -o "$T/all.db" "$T/no-such.db"
expect 65 $E merge -o "$T/all.db" "$PNG"
expect 1 $E merge -o "$T/all.db" "$PNG" "$T/s1.db"
expect 64 $E merge "$T/s1.db"

# ---- progress on a terminal ---------------------------------------------
if [ -n "$TIMED" ] && command -v script >/dev/null 2>&1; then
	script -qec "$E batch --db '$T/p.db' --server '$URL' --text-layer never $FAST '$B/b'" /dev/null >"$T/tty" 2>&1
	check "progress: pages/s, tokens/s, ETA" grep -q "documents, [0-9]*/[0-9]* pages, [0-9.]* pages/s, [0-9.]* tokens/s" "$T/tty"
fi
stop_server

summary
