#!/bin/sh
# cli.sh - tests of the built ./ernie-doc: outputs, stored rows and every
# exit status it can produce, the corpus outcomes, --help against the man
# page, stdin, interruption, and the 1,000-page memory bound.
# Prints "cli: N passed, M failed".
set -u
NAME=cli
. "$(dirname "$0")/lib.sh"

# ---- help, version, man page --------------------------------------
expect 0 $E --help
check "--help lists commands" grep -q "^  ocr " "$T/out"
expect 0 $E --version
for lib in poppler cairo libtiff libpng libjpeg SQLite PCRE2 jansson libcurl; do
	check "--version names $lib" grep -q "$lib [0-9]" "$T/out"
done
expect 0 $E ocr --help
check "ocr --help is the ocr usage" grep -q "usage: ernie-doc ocr" "$T/out"
# every option in --help is in the man page and back
$E --help | grep -oE '(^|[ [|,])--?[a-z][a-z-]*' | sed -E 's/^[ [|,]//' |
	sort -u >"$T/help.opts"
grep -E '^\.(It|Op|Fl)|Fl ' man/ernie-doc.1 |
	grep -oE 'Fl -?[a-z][a-z-]*' | sed -E 's/^Fl /-/' |
	sed -E 's/^-qv$/-q\n-v/' | sort -u >"$T/man.opts"
if diff "$T/help.opts" "$T/man.opts" >"$T/opts.diff"; then
	ok
else
	no "--help and man page options differ: $(tr '\n' ' ' <"$T/opts.diff")"
fi
check "options found" test "$(wc -l <"$T/help.opts")" -ge 20

# ---- usage errors: 64 -----------------------------------------------
expect 64 $E
expect 64 $E frobnicate
check "unknown command message" grep -q "'frobnicate' is not a command" "$T/err"
expect 64 $E ocr --no-such-option x.pdf
expect 64 $E ocr --pages 3-1 "$C/minimal-document.pdf"
expect 64 $E ocr --dpi 5 "$C/minimal-document.pdf"
expect 64 $E ocr --text-layer sometimes "$C/minimal-document.pdf"
expect 64 $E render "$C/minimal-document.pdf"
expect 64 $E query
expect 64 $E tiles --min-pixels 5000 --max-pixels 4000 "$C/smile.png"

# ---- ocr on the corpus -------------------------------------------------
DB=$T/a.db
expect 0 $E ocr --db "$DB" "$C/minimal-document.pdf"
check "one NDJSON line" test "$(wc -l <"$T/out")" -eq 1
check "text-layer page" grep -q '"status":"done","source":"text-layer"' "$T/out"
check "text in the JSON" grep -q '"text":"Lorem ipsum' "$T/out"
check "not cached" grep -q '"cached":false' "$T/out"
check "one stored page" test "$(q "$DB" 'SELECT count(*) FROM pages')" = 1
check "stderr line per document" grep -q "1 page: 1 done" "$T/err"
# a re-run does no work and adds no rows
expect 0 $E ocr --db "$DB" "$C/minimal-document.pdf"
check "re-run is cached" grep -q '"cached":true' "$T/out"
check "re-run adds nothing" test "$(q "$DB" 'SELECT count(*) FROM pages')" = 1
check "re-run prints the same text" grep -q '"text":"Lorem ipsum' "$T/out"
expect 0 $E ocr --db "$DB" --force "$C/minimal-document.pdf"
check "--force recomputes" grep -q '"cached":false' "$T/out"
check "--force replaces the row" test "$(q "$DB" 'SELECT count(*) FROM pages')" = 1
check "--force: the row is from the last run" test "$(q "$DB" 'SELECT run_id = (SELECT max(id) FROM runs) FROM pages')" = 1
expect 0 $E ocr -q --db "$DB" "$C/pdflatex-4-pages.pdf" "$C/multicolumn.pdf"
check "-q is quiet" test ! -s "$T/err"
check "4 + 3 pages printed" test "$(wc -l <"$T/out")" -eq 7
check "7 + 1 pages stored" test "$(q "$DB" 'SELECT count(*) FROM pages')" = 8
expect 0 $E ocr --db "$DB" --pages 2-3,end "$C/pdflatex-4-pages.pdf"
check "--pages 2-3,end" test "$(grep -o '"page":[0-9]*' "$T/out" | tr '\n' ' ')" = '"page":2 "page":3 "page":4 '
expect 0 $E ocr --db "$DB" --format text --pages 1 "$C/minimal-document.pdf"
check "--format text" grep -q "^Lorem ipsum" "$T/out"
# blank pages are done without a model
expect 0 $E ocr --db "$DB" "$C/trivial.pdf" "$C/no_contents.pdf"
check "blank pages" test "$(grep -c '"status":"blank"' "$T/out")" -eq 2
# pages that need the model: stored, explained, exit 1
for f in linn.pdf skew.pdf grayscale-image.pdf imagemagick-CCITTFaxDecode.pdf \
	kcs.pdf phototest.tif eurotext.tif phototest_2.tif smile.png smile.jpg; do
	expect 1 $E ocr --db "$DB" "$C/$f"
	check "$f needs the model" grep -q '"status":"needs-model"' "$T/out"
	check "$f: how to configure" grep -q "MODEL WEIGHTS in ernie-doc(1)" "$T/err"
done
check "needs-model rows" test "$(q "$DB" "SELECT count(*) FROM pages WHERE status = 'needs-model'")" = 10
expect 1 $E ocr --db "$DB" "$C/multipage.pdf"
check "multipage: 6 pages" test "$(wc -l <"$T/out")" -eq 6
# TIFF pages: a reduced-resolution directory is not a page
expect 1 $E ocr --db "$DB" "$C/smile-lzw.tiff"
check "smile-lzw.tiff is 1 page" grep -q '"pages":1' "$T/out"
expect 0 $E tiles "$C/smile-pack-bits.tiff"
check "smile-pack-bits.tiff: 16x16, one page" test "$(sed -n '2,$p' "$T/out" | awk '{print $2 "x" $3}' | tr '\n' ' ')" = "16x16 "

# ---- invalid input: 65, missing: 66 -----------------------------------
expect 65 $E ocr --db "$DB" "$C/invalid.pdf"
check "invalid.pdf: one-line message" test "$(wc -l <"$T/err")" -eq 1
check "invalid.pdf: message names the file" grep -q "^ernie-doc: '.*invalid.pdf': bad pdf" "$T/err"
check "invalid.pdf: recorded" test "$(q "$DB" "SELECT count(*) FROM documents WHERE path LIKE '%invalid.pdf' AND error IS NOT NULL")" = 1
expect 66 $E ocr --db "$DB" "$T/does-not-exist.pdf"
expect 66 $E ocr --db "$DB" "$T"
printf 'GIF89a\001\000\001\000' >"$T/x.gif"
expect 65 $E ocr --db "$DB" "$T/x.gif"
check "not a document" grep -q "not a pdf, tiff, png or jpeg" "$T/err"
# one bad file never stops the others: exit 1, the good one stored
rm -f "$T/b.db"
expect 1 $E ocr --db "$T/b.db" "$C/invalid.pdf" "$C/minimal-document.pdf"
check "good input after a bad one" grep -q '"status":"done"' "$T/out"
check "bad input reported on stdout" grep -q '"page":null,"status":"error"' "$T/out"

# ---- caps: 65 ------------------------------------------------------
expect 65 $E ocr --db "$DB" --max-page-pixels 100 "$C/smile.png"
check "pixel cap message" grep -q "exceeds the limit of 100 pixels" "$T/err"
expect 65 $E ocr --db "$DB" --max-page-pixels 1M --dpi 2400 --text-layer never "$C/minimal-document.pdf"
expect 65 sh -c "$E ocr --db '$DB' --max-stdin 1000 < '$C/minimal-document.pdf'"
check "stdin cap message" grep -q "larger than 1000 bytes" "$T/err"

# ---- stdin ----------------------------------------------------------
rm -f "$T/s.db"
expect 0 sh -c "cat '$C/pdflatex-4-pages.pdf' | $E ocr --db '$T/s.db'"
check "stdin: 4 pages" test "$(wc -l <"$T/out")" -eq 4
check "stdin path" grep -q '"path":"-"' "$T/out"
expect 0 sh -c "$E ocr --db '$T/s.db' - < '$C/pdflatex-4-pages.pdf'"
check "stdin re-run cached" test "$(grep -c '"cached":true' "$T/out")" -eq 4
expect 64 sh -c "$E ocr --db '$T/s.db' - - < '$C/minimal-document.pdf'"

# ---- passwords: 77 ----------------------------------------------------
P=$C/libreoffice-writer-password.pdf
expect 77 $E ocr --db "$DB" "$P"
check "password message" grep -q "password is needed" "$T/err"
echo wrong >"$T/pw.bad"
expect 77 $E ocr --db "$DB" --password-file "$T/pw.bad" "$P"
echo openpassword >"$T/pw"
expect 0 $E ocr --db "$DB" --password-file "$T/pw" "$P"
check "decrypted text" grep -q '"status":"done","source":"text-layer"' "$T/out"
expect 66 $E ocr --db "$DB" --password-file "$T/no-such-pw" "$P"

# ---- database: 73, 75; output: 74 ------------------------------------
expect 73 $E ocr --db "$T/no-such-dir/x.db" "$C/minimal-document.pdf"
echo "not a database at all, certainly not one of ours, no. ............................................................" >"$T/bad.db"
expect 73 $E ocr --db "$T/bad.db" "$C/minimal-document.pdf"
if [ -w /dev/full ]; then
	expect 74 sh -c "$E ocr --db '$DB' '$C/minimal-document.pdf' > /dev/full"
fi
if command -v python3 >/dev/null 2>&1; then
	# another writer holds the database past the 5 s busy timeout
	python3 -c "
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN EXCLUSIVE')
open(sys.argv[2], 'w').close()
time.sleep(9)
" "$DB" "$T/locked" &
	lockpid=$!
	while [ ! -e "$T/locked" ]; do sleep 0.05; done
	expect 75 $E ocr --db "$DB" --force "$C/minimal-document.pdf"
	check "busy message" grep -q "locked" "$T/err"
	kill $lockpid 2>/dev/null
	wait $lockpid 2>/dev/null
fi

# ---- query, search, export -------------------------------------------
expect 0 $E query --db "$DB" "SELECT page_no, status FROM pages WHERE document_id = 1"
check "table header" grep -q "^page_no  status" "$T/out"
check "table rule" grep -q "^-------  ------" "$T/out"
expect 0 $E query --db "$DB" --format csv "SELECT 'a,b' AS x, 'say \"hi\"' AS y, NULL AS z"
check "csv quoting" test "$(sed -n 2p "$T/out" | tr -d '\r')" = '"a,b","say ""hi""",'
expect 0 $E query --db "$DB" --format json "SELECT 1 AS n, 'x' AS s, NULL AS z"
check "json array" test "$(tr -d '\n' <"$T/out")" = '[{"n":1,"s":"x","z":null}]'
expect 65 $E query --db "$DB" "DELETE FROM pages"
check "write refused" grep -q "read-only" "$T/err"
check "nothing deleted" test "$(q "$DB" 'SELECT count(*) > 0 FROM pages')" = 1
expect 65 $E query --db "$DB" "SELEKT 1"
expect 66 $E query --db "$T/none.db" "SELECT 1"
check "query does not create a database" test ! -e "$T/none.db"
expect 0 $E search --db "$DB" Lorem ipsum
check "search hit" grep -q "minimal-document.pdf:1" "$T/out"
check "snippet marks the match" grep -q "\[Lorem\]" "$T/out"
expect 0 $E search --db "$DB" --format ndjson --limit 2 the
check "search limit" test "$(wc -l <"$T/out")" -eq 2
check "search ndjson" grep -q '"snippet":' "$T/out"
expect 0 $E search --db "$DB" e-mail
expect 0 $E export --db "$DB" --format txt minimal-document.pdf
check "export txt" grep -q "^Lorem ipsum" "$T/out"
expect 0 $E export --db "$DB" --format md pdflatex-4-pages.pdf
check "export md pages" test "$(grep -c '^<!-- page [0-9] -->' "$T/out")" -eq 4
expect 0 $E export --db "$DB" --format json 1
check "export json" grep -q '"pages":\[{"page_no":1' "$T/out"
expect 66 $E export --db "$DB" nothing-like-this.pdf

# ---- render and tiles -------------------------------------------------
expect 0 $E render --dpi 72 --pages 2 -o "$T/r" "$C/pdflatex-4-pages.pdf"
check "render writes page-0002.png" test -s "$T/r/page-0002.png"
check "render prints the path" grep -q "page-0002.png" "$T/out"
expect 0 $E tiles "$T/r/page-0002.png"
check "72 dpi A4 is 596x842" grep -qE '^1 +596 +842 ' "$T/out"
if command -v pdftoppm >/dev/null 2>&1; then
	pdftoppm -r 150 -f 1 -l 1 -png "$C/multicolumn.pdf" "$T/ppm"
	$E render --dpi 150 --pages 1 -o "$T/r2" "$C/multicolumn.pdf" >/dev/null
	a=$($E tiles "$T"/ppm*.png | sed -n 2p | awk '{print $2 "x" $3}')
	b=$($E tiles "$T/r2/page-0001.png" | sed -n 2p | awk '{print $2 "x" $3}')
	check "render size equals pdftoppm's ($a vs $b)" test "$a" = "$b"
fi
expect 73 $E render -o /proc/no-such-dir "$C/smile.png"
expect 0 $E tiles "$SHARED/golden/preprocess/tiny_37x29.png" --dump "$T/t.safetensors"
check "tiles row" grep -qE '^1 +37 +29 +84 +56 +1 +4 +6 +6 +-$' "$T/out"
expect 0 "$BUILD/tests/stcmp" "$T/t.safetensors" pixel_values \
	"$SHARED/golden/preprocess/tiny_37x29.expected.safetensors" pixel_values 1e-6
expect 0 "$BUILD/tests/stcmp" "$T/t.safetensors" image_grid_thw \
	"$SHARED/golden/preprocess/tiny_37x29.expected.safetensors" image_grid_thw 0
expect 0 $E tiles --max-pixels 100000 "$SHARED/golden/preprocess/page_2480x3508.png"
check "--max-pixels" grep -qE '^1 +2480 +3508 +252 +364 ' "$T/out"

# the defaults: a page is at most 2,048 image tokens, PDFs drawn straight
# at that size (nothing left to resample), --dpi and --max-pixels override
"$BUILD/tests/mkpdf" "$T/a4.pdf" 1
expect 0 $E tiles "$T/a4.pdf"
check "A4 at the defaults: 1064x1484, 2,014 tokens, drawn at that size" \
	grep -qE '^1 +1064 +1484 +1064 +1484 +1 +106 +76 +2014 +128\.7$' "$T/out"
expect 0 $E tiles "$C/linn.pdf"
check "letter at the defaults: at most 2,048 tokens" \
	test "$(awk 'NR == 2 { print ($2 == $4 && $3 == $5 && $9 <= 2048) }' "$T/out")" = 1
expect 0 $E tiles --dpi 200 "$T/a4.pdf"
check "--dpi 200: rendered at 200 DPI, resized to the same grid" \
	grep -qE '^1 +1654 +2339 +1064 +1484 +1 +106 +76 +2014 +200\.0$' "$T/out"
expect 0 $E tiles --max-pixels 4842768 "$T/a4.pdf"
check "--max-pixels 4842768: the model's own ceiling" \
	grep -qE '^1 +1652 +2352 +1652 +2352 +1 +168 +118 +4956 ' "$T/out"
expect 0 $E render --pages 1 -o "$T/r3" "$T/a4.pdf"
expect 0 $E tiles "$T/r3/page-0001.png"
check "render shows what the model sees" grep -qE '^1 +1064 +1484 +1064 +1484 ' "$T/out"
# a 300-DPI letter scan: its own pixels, shrunk to the budget
expect 0 $E render --dpi 300 --pages 1 -o "$T/r4" "$C/linn.pdf"
expect 0 $E tiles "$T/r4/page-0001.png"
check "300-DPI letter scan at the defaults: at most 2,048 tokens" \
	test "$(awk 'NR == 2 { print ($2 == 2550 && $3 == 3300 && $9 <= 2048 && $9 > 1900) }' "$T/out")" = 1

# ---- the native engine ------------------------------------------------
G=$SHARED/golden
for d in a_text_only b_one_image c_two_images d_untied_image; do
	expect 0 $E model eval --threads 2 "$G/$d" "$G/$d/inputs.json" -o "$T/$d.st"
	expect 0 "$BUILD/tests/stcmp" --golden "$T/$d.st" "$G/$d/expected.safetensors"
	check "$d: every golden tensor within tolerance" test "$(grep -c 'ok$\|same sets$' "$T/out")" -ge 20
done
# the text models (ernie4_5_moe, ernie4_5): from the safetensors
# directory, and from a GGUF written by model quantize --type bf16
for fx in e_text_moe f_text_dense; do
	case $fx in e_*) n=18 ;; *) n=9 ;; esac
	expect 0 $E model eval --threads 2 "$G/$fx" "$G/$fx/inputs.json" -o "$T/$fx.st"
	expect 0 "$BUILD/tests/stcmp" --golden "$T/$fx.st" "$G/$fx/expected.safetensors"
	check "$fx: all $n golden tensors within tolerance" test "$(grep -c 'ok$\|same sets$' "$T/out")" -eq $n
	check "$fx: 1-D positions" grep -q '^position_ids .* ok$' "$T/out"
	expect 0 $E model quantize -q --type bf16 "$G/$fx" "$T/$fx.gguf"
	expect 0 $E model eval --threads 2 "$T/$fx.gguf" "$G/$fx/inputs.json" -o "$T/$fx.g.st"
	expect 0 "$BUILD/tests/stcmp" --golden "$T/$fx.g.st" "$G/$fx/expected.safetensors"
	check "$fx (bf16 GGUF): all $n golden tensors within tolerance" test "$(grep -c 'ok$\|same sets$' "$T/out")" -eq $n
done
# rope_theta written as a JSON integer
mkdir -p "$T/rint" && cp "$G/f_text_dense/"* "$T/rint/"
sed 's/"rope_theta": 500000.0/"rope_theta": 500000/' "$G/f_text_dense/config.json" >"$T/rint/config.json"
check "rope_theta is an integer in the copy" grep -q '"rope_theta": 500000,' "$T/rint/config.json"
expect 0 $E model eval --threads 2 "$T/rint" "$G/f_text_dense/inputs.json" -o "$T/rint.st"
expect 0 "$BUILD/tests/stcmp" --golden "$T/rint.st" "$G/f_text_dense/expected.safetensors"
check "integer rope_theta: all 9 golden tensors within tolerance" test "$(grep -c 'ok$' "$T/out")" -eq 9
# llama.cpp's layout: the golden text models written as llama.cpp files
# reproduce every golden tensor; the same vocabulary read from the
# tokenizer.ggml arrays gives the same prompt ids
for fx in e_text_moe f_text_dense; do
	case $fx in e_*) n=18 ;; *) n=9 ;; esac
	expect 0 $E model quantize -q --type bf16 --layout llama.cpp "$G/$fx" "$T/$fx.llama.gguf"
	expect 0 $E model info "$T/$fx.llama.gguf"
	check "$fx: llama.cpp layout" grep -q "^layout            GGUF, llama.cpp layout" "$T/out"
	expect 0 $E model eval --threads 2 "$T/$fx.llama.gguf" "$G/$fx/inputs.json" -o "$T/$fx.l.st"
	expect 0 "$BUILD/tests/stcmp" --golden "$T/$fx.l.st" "$G/$fx/expected.safetensors"
	check "$fx (llama.cpp layout): all $n golden tensors within tolerance" test "$(grep -c 'ok$\|same sets$' "$T/out")" -eq $n
done
printf '[{"role":"user","content":"a aA<|x|>"}]' >"$T/m1.json"
# a llama.cpp file written by another writer (tests/fuzz/corpus, made with
# Python's struct): its vocabulary encodes as SentencePiece would
expect 0 $E model prompt tests/fuzz/corpus/gguf/llama-tiny.gguf --messages "$T/m1.json" --ids
check "a hand-made llama.cpp vocabulary: ▁a ▁a <0x41> <|x|>" test "$(tr '\n' ' ' <"$T/out")" = "5 5 6 7 "
expect 0 $E model info "$T/e_text_moe.llama.gguf"
check "model info: the GGUF architecture" grep -q "^architecture      ernie4_5_moe (GGUF 'ernie4_5-moe')" "$T/out"
check "model info: the mix" grep -q "^quantization mix  BF16" "$T/out"
sh tests/mktok.sh "$T/ttok" >/dev/null 2>&1
mkdir -p "$T/etok" && cp "$G/e_text_moe/"* "$T/ttok/"*.json "$T/ttok/tokenizer.model" "$T/etok/"
expect 0 $E model quantize -q --type q4_k_m --layout llama.cpp "$T/etok" "$T/etok.gguf"
expect 0 $E model info "$T/etok.gguf"
check "q4_k_m llama.cpp file: short rows fall back to Q5_0 and Q8_0" grep -q "Q5_0 .*Q8_0\|Q8_0 .*Q5_0" "$T/out"
check "tokenizer from the GGUF arrays" grep -q "tokenizer.ggml arrays" "$T/out"
check "the text models' built-in chat template" grep -q "built-in ERNIE-4.5 text" "$T/out"
printf '[{"role":"system","content":"Be brief."},{"role":"user","content":"the quick brown fox <think> caf\\u00e9"}]' >"$T/msgs.json"
expect 0 $E model prompt "$T/etok" --messages "$T/msgs.json" --ids
cp "$T/out" "$T/ids.dir"
expect 0 $E model prompt "$T/etok.gguf" --messages "$T/msgs.json" --ids
check "the same prompt ids from tokenizer.model and the llama.cpp arrays" cmp -s "$T/out" "$T/ids.dir"
check "the prompt has ids" test "$(wc -l <"$T/out")" -gt 10
expect 0 $E model generate "$T/etok" --prompt "the quick brown fox" --max-tokens 6
cp "$T/out" "$T/gen.dir"
expect 0 $E model generate "$T/etok.gguf" --prompt "the quick brown fox" --max-tokens 6
check "model generate: a reply streamed" test -s "$T/out"
check "model generate: 6 tokens" grep -q "6 out (length)" "$T/err"
expect 0 $E model generate "$T/etok" --messages "$T/msgs.json" --max-tokens 4 --temperature 0.7 --seed 5
expect 64 $E model generate "$T/etok"
expect 64 $E model generate "$T/etok" --prompt x --messages "$T/msgs.json"
expect 78 $E model generate "$G/e_text_moe" --prompt x
expect 78 $E ocr --model "$G/f_text_dense" "$C/linn.pdf"
check "ocr refuses a text-only model" grep -q "text-only ernie4_5 checkpoint: it cannot read page images" "$T/err"
expect 64 $E model quantize -q --type bf16 --layout llama.cpp "$G/b_one_image" "$T/vl.gguf"
check "a VL checkpoint in llama.cpp's layout is refused" grep -q "llama.cpp has no ERNIE-4.5-VL architecture" "$T/err"
check "no file left" test ! -e "$T/vl.gguf" -a ! -e "$T/vl.gguf.partial"
expect 64 $E model quantize -q --type bf16 --layout gguf "$G/e_text_moe" "$T/x.gguf"
expect 0 $E model info "$G/e_text_moe"
check "model info: text MoE" grep -q "4 layers (3 MoE), hidden 64" "$T/out"
expect 0 $E model info "$G/f_text_dense"
check "model info: dense, head_dim 32" grep -q "heads 4/2 (head_dim 32)" "$T/out"
expect 0 $E model info "$G/b_one_image"
check "model info: architecture" grep -q "^architecture      ernie4_5_vl_moe" "$T/out"
check "model info: layers" grep -q "3 layers (2 MoE), hidden 64" "$T/out"
check "model info: experts" grep -q "8 text (width 32) + 8 vision (width 16), top-2" "$T/out"
expect 0 $E model info "$G/d_untied_image"
check "model info: untied head" grep -q "untied lm_head" "$T/out"
expect 0 $E model check "$G/a_text_only"
check "model check" grep -q "^ok: " "$T/out"
expect 66 $E model info "$T/no-such-model"
mkdir -p "$T/badcfg" && echo '{"text_config": {"hidden_size": "x"}}' >"$T/badcfg/config.json"
expect 78 $E model info "$T/badcfg"
expect 64 $E model eval "$G/a_text_only"
# a tiny checkpoint in the real layout with a tokenizer trained here
sh tests/mktok.sh "$T/tok" >/dev/null 2>&1
"$BUILD/tests/mkmodel" "$T/tiny" --tokenizer "$T/tok" --shards 3
expect 0 $E model info "$T/tiny"
check "tiny: 3 shards and a tokenizer" grep -q "in 3 files" "$T/out"
"$BUILD/tests/mkmodel" "$T/extra" --extra --shards 1
expect 0 $E model info "$T/extra"
check "unknown tensors counted" grep -q "(1 unknown, ignored)" "$T/out"
check "quiet without -v" test ! -s "$T/err"
expect 0 $E model info -v "$T/extra"
check "named with -v" grep -q "note: ignoring unknown tensor 'mtp_block.0.linear.weight'" "$T/err"
rm -f "$T/m.db"
expect 0 $E ocr --db "$T/m.db" --model "$T/tiny" --max-tokens 8 --max-pixels 100000 "$C/phototest.tif" "$C/smile.png"
check "model pages" test "$(grep -c '"source":"model"' "$T/out")" -eq 2
check "8 tokens" grep -q '"finish_reason":"length","tokens_in":[0-9]*,"tokens_out":8' "$T/out"
grep -o '"text":"[^"]*"' "$T/out" >"$T/text1"
check "stored with the model id" test "$(q "$T/m.db" "SELECT count(*) FROM pages WHERE model_id = 'native/tiny' AND prompt_id = 'ocr-v1' AND tokens_out = 8")" = 2
expect 0 $E ocr --db "$T/m.db" --model "$T/tiny" --max-tokens 8 --max-pixels 100000 "$C/phototest.tif" "$C/smile.png"
check "model re-run cached" test "$(grep -c '"cached":true' "$T/out")" -eq 2
expect 0 env ERNIE_DOC_MODEL="$T/tiny" $E ocr --db "$T/m.db" --force --threads 3 --max-tokens 8 --max-pixels 100000 "$C/phototest.tif" "$C/smile.png"
grep -o '"text":"[^"]*"' "$T/out" >"$T/text2"
check "deterministic across runs and thread counts" cmp -s "$T/text1" "$T/text2"
check "still one row per page" test "$(q "$T/m.db" "SELECT count(*) FROM pages")" = 2
expect 78 $E ocr --db "$T/m.db" --model "$T/no-such-model" "$C/smile.png"
mkdir -p "$T/notok" && cp "$T/tiny"/*.json "$T/tiny"/*.safetensors "$T/notok/" && rm "$T/notok/added_tokens.json"
expect 78 $E ocr --db "$T/m.db" --model "$T/notok" "$C/smile.png"
check "no tokenizer message" grep -q "has no tokenizer.model" "$T/err"

# ---- quantized models: GGUF ---------------------------------------------
# rows of 256 and more, so the K formats apply
"$BUILD/tests/mkmodel" "$T/t256" --tokenizer "$T/tok" --shards 2 --hidden 256 \
	--inter 512 --expert-inter 256,256 --heads 4 --head-dim 64 --kv-heads 2 >/dev/null
expect 0 $E model quantize -q --type q4_k_m "$T/t256" "$T/t256.gguf"
check "quantize: one file, no leftovers" test -f "$T/t256.gguf" -a ! -e "$T/t256.gguf.partial"
expect 0 $E model info "$T/t256.gguf"
check "info: Q4_K and Q6_K in the file" grep -q "Q4_K .*MiB.*Q6_K\|Q6_K .*MiB.*Q4_K" "$T/out"
check "info: about 4.8 bits per weight" grep -q "^bits per weight   [4-5]\." "$T/out"
check "info: the tokenizer inside" grep -q "^tokenizer         tokenizer.model" "$T/out"
expect 0 $E model check "$T/t256.gguf"
expect 0 $E ocr --db "$T/q.db" --model "$T/t256.gguf" --max-tokens 6 --max-pixels 100000 "$C/smile.png"
check "ocr on a GGUF model" grep -q '"source":"model".*"tokens_out":[1-6]' "$T/out"
check "its model id" test "$(q "$T/q.db" "SELECT model_id FROM pages")" = "native/t256.gguf"
expect 0 $E model quantize -q --type q8_0 "$T/t256.gguf" "$T/t256.q8.gguf"
expect 0 $E model info "$T/t256.q8.gguf"
check "re-quantizing a GGUF file" grep -q "Q8_0" "$T/out"
expect 64 $E model quantize --type q3_k "$T/t256" "$T/x.gguf"
expect 64 $E model quantize "$T/t256" "$T/x.gguf"
expect 66 $E model quantize --type q8_0 "$T/no-such-model" "$T/x.gguf"
expect 73 $E model quantize --type q8_0 "$T/t256" "$T/no/such/dir/x.gguf"
head -c 3000 "$T/t256.gguf" >"$T/cut.gguf"
expect 78 $E model info "$T/cut.gguf"
check "a cut file is named" grep -q "cut.gguf" "$T/err"

# ---- 1,000 pages: memory bound, and interruption -----------------------
"$BUILD/tests/mkpdf" "$T/big.pdf" 1000
rm -f "$T/big.db"
expect 0 "$BUILD/tests/peakrss" $E ocr -q --text-layer only --db "$T/big.db" "$T/big.pdf"
rss=$(sed -n 's/^peakrss: \([0-9]*\) KiB$/\1/p' "$T/err")
check "1,000 pages stored" test "$(q "$T/big.db" "SELECT count(*) FROM pages WHERE text LIKE '%marker%'")" = 1000
# sanitizers keep shadow memory and a quarantine: the bound holds for the
# real build, which `make check` tests
if [ -z "${ED_SANITIZED:-}" ] && [ -z "${ED_VALGRIND:-}" ]; then
	check "peak RSS ${rss} KiB under 200 MB" test "${rss:-999999}" -lt 204800
fi
if [ -z "${ED_VALGRIND:-}" ]; then
	rm -f "$T/int.db"
	$E ocr -q --db "$T/int.db" "$T/big.pdf" >"$T/int.out" 2>"$T/int.err" &
	pid=$!
	n=0
	while [ "$n" -lt 3 ] && kill -0 $pid 2>/dev/null; do
		sleep 0.1
		n=$(wc -l <"$T/int.out")
	done
	kill -INT $pid
	wait $pid
	st=$?
	check "SIGINT exits 130 (got $st)" test $st -eq 130
	check "interrupted message" grep -q "interrupted; finished pages are stored" "$T/int.err"
	stored=$(q "$T/int.db" "SELECT count(*) FROM pages")
	printed=$(wc -l <"$T/int.out")
	check "every printed page is stored ($printed <= $stored)" test "$printed" -le "$stored"
	check "interrupted early ($stored pages)" test "$stored" -lt 1000
	expect 0 $E ocr -q --db "$T/int.db" "$T/big.pdf"
	check "resume: $stored pages cached" test "$(grep -c '"cached":true' "$T/out")" -eq "$stored"
	check "resume: 1,000 pages" test "$(q "$T/int.db" "SELECT count(*) FROM pages")" = 1000
fi

# ---- several processes, one new database --------------------------------
# started at once: the schema made once (each migration step under the
# write lock, the version read again inside it), every run done, every
# page stored once
mkdir -p "$T/ctree"
for i in 1 2 3 4 5 6; do "$BUILD/tests/mkpdf" "$T/ctree/d$i.pdf" 3 cdoc$i; done
bad=0
for round in 1 2 3 4 5; do
	rm -f "$T/c.db" "$T/c.db-wal" "$T/c.db-shm"
	for k in 1 2 3; do
		($E batch -q --db "$T/c.db" --text-layer only "$T/ctree" \
			>"$T/c$k.out" 2>"$T/c$k.err"
			echo $? >"$T/c$k.rc") &
	done
	wait
	for k in 1 2 3; do
		[ "$(cat "$T/c$k.rc")" = 0 ] || {
			bad=$((bad + 1))
			echo "cli: round $round, process $k: $(cat "$T/c$k.err")" >&2
		}
	done
	[ "$(q "$T/c.db" "PRAGMA integrity_check")" = ok ] || bad=$((bad + 1))
	[ "$(q "$T/c.db" "SELECT count(*) || '/' || count(DISTINCT document_id || '-' || page_no) FROM pages")" = 18/18 ] || bad=$((bad + 1))
done
check "three batches started at once on a new database, five times: all done, each page once" test $bad = 0

summary
