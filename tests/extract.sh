#!/bin/sh
# extract.sh - structured extraction end to end: ocr --schema through the
# native tiny model and through tests/fakeserver.py (request checked,
# invalid and truncated replies scripted), the extract command over a
# store an earlier run made (resume, --force, page vs document scope,
# text and image, a text-only model), budgets too small, batched
# sampling, the fields' spans, export, schema refusals. Every value a
# test calls done is checked against the schema by python3-jsonschema.
# Prints "extract: N passed, M failed".
set -u
NAME=extract
. "$(dirname "$0")/lib.sh"
trap stop_server EXIT INT TERM

PY=$(python_with jsonschema)
# conform SCHEMA: every "done" line of $T/out holds a conforming value
conform() {
	[ -n "$PY" ] || return 1
	"$PY" - "$1" "$T/out" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
n = 0
for line in open(sys.argv[2]):
    o = json.loads(line)
    st = o.get("extraction_status", o.get("status"))
    if st != "done":
        continue
    jsonschema.validate(o["extraction"], schema,
                        format_checker=jsonschema.FormatChecker())
    n += 1
sys.exit(0 if n else 1)
PY
}
FAST="--dpi 50 --retry-wait 0.01 --max-pixels 100000"
"$BUILD/tests/mkpdf" "$T/doc3.pdf" 3 doc3 2 # page 2 is blank
sh tests/mktok.sh "$T/tok" >/dev/null 2>&1
"$BUILD/tests/mkmodel" "$T/tiny" --tokenizer "$T/tok" >/dev/null
"$BUILD/tests/mkmodel" "$T/text" --layout text --tokenizer "$T/tok" \
	--seed 3 >/dev/null
cat >"$T/inv.json" <<'JSON'
{"title": "Invoice", "type": "object",
 "properties": {
   "number": {"type": "string", "description": "The invoice number",
              "maxLength": 12},
   "date": {"type": "string", "format": "date"},
   "total": {"type": "number", "title": "Total"},
   "paid": {"type": "boolean"},
   "lines": {"type": "array", "maxItems": 2,
             "items": {"type": "object",
                       "properties": {"sku": {"type": "string", "maxLength": 6},
                                      "qty": {"type": "integer"}},
                       "required": ["sku"]}}},
 "required": ["number", "total"], "additionalProperties": false}
JSON

# ---- native: ocr --schema ------------------------------------------------
expect 0 $E ocr --db "$T/n.db" --model "$T/tiny" --text-layer never \
	--max-tokens 6 $FAST --schema "$T/inv.json" "$T/doc3.pdf"
check "ocr --schema: both read pages filled in" \
	test "$(grep -c '"extraction_status":"done"' "$T/out")" = 2
check "ocr --schema: the blank page has none" \
	grep -q '"page":2,.*"status":"blank"' "$T/out"
check "ocr --schema: the values conform (python3-jsonschema)" conform "$T/inv.json"
check "ocr --schema: stored per page" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE status = 'done' AND page_id IS NOT NULL AND schema_title = 'Invoice' AND model_id = 'native/tiny' AND prompt_id = 'extract-v1'")" = 2
check "ocr --schema: every leaf is a field" \
	test "$(q "$T/n.db" "SELECT count(*) FROM fields WHERE rule = 'schema:Invoice' AND name = '/number'")" = 2
check "ocr --schema: json_extract reads it" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE json_type(json, '$.total') IN ('integer', 'real')")" = 2
# a re-run: pages and extractions from the store
expect 0 $E ocr --db "$T/n.db" --model "$T/tiny" --text-layer never \
	--max-tokens 6 $FAST --schema "$T/inv.json" "$T/doc3.pdf"
check "re-run: cached pages keep their extraction" \
	test "$(grep -c '"cached":true,"extraction_status":"done"' "$T/out")" = 2
check "re-run: nothing stored twice" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions")" = 2
# document scope: one line for the document, no page
expect 0 $E ocr --db "$T/n.db" --model "$T/tiny" --text-layer never \
	--max-tokens 6 $FAST --schema "$T/inv.json" --extract-scope document \
	"$T/doc3.pdf"
check "--extract-scope document: a line without a page" \
	sh -c "tail -n 1 '$T/out' | grep -q '^{\"path\":\"$T/doc3.pdf\",\"sha256\":\"[0-9a-f]*\",\"status\":\"done\",\"extraction\":{'"
check "--extract-scope document: stored with page 0" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE page_no = 0 AND page_id IS NULL")" = 1

# ---- native: the extract command -------------------------------------------
# a text-only model reads the stored text (VL pages, text model)
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json"
check "extract: a line per read page" test "$(wc -l <"$T/out")" = 2
check "extract: text model, done, conforming" conform "$T/inv.json"
check "extract: page members" \
	grep -q '^{"path":"[^"]*doc3.pdf","sha256":"[0-9a-f]*","page":1,"status":"done","extraction":{' "$T/out"
cp "$T/out" "$T/x1"
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json"
check "extract: a re-run resumes" \
	test "$(grep -c '"cached":true' "$T/out")" = 2
check "extract: resumed values are the stored ones" \
	test "$(sed 's/,"cached":[a-z]*//' "$T/out")" = "$(sed 's/,"cached":[a-z]*//' "$T/x1")"
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" \
	--force --temperature 0.8 --seed 11
check "extract --force: recomputed" test "$(grep -c '"cached":false' "$T/out")" = 2
check "extract --force: replaced, not added" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE model_id = 'native/text'")" = 2
# batched: each sequence its own grammar state; -j 3 gives -j 1's values
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" \
	--force --temperature 0.9 --top-p 0.95 --seed 5 --scope page -j 1
cp "$T/out" "$T/j1"
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" \
	--force --temperature 0.9 --top-p 0.95 --seed 5 --scope page -j 3
check "extract -j 3: the values of -j 1" cmp -s "$T/j1" "$T/out"
check "extract -j 3 with sampling: conforming" conform "$T/inv.json"
# document scope over the store, by sha256 prefix
sha=$(q "$T/n.db" "SELECT substr(sha256, 1, 12) FROM documents")
expect 0 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" \
	--scope document "$sha"
check "extract --scope document: one line, no page" \
	sh -c "test \$(wc -l <'$T/out') = 1 && ! grep -q '\"page\"' '$T/out'"
# from the image, with the VL model
expect 0 $E extract --db "$T/n.db" --model "$T/tiny" --schema "$T/inv.json" \
	--from image --max-pixels 100000
check "extract --from image: both pages" \
	test "$(grep -c '"status":"done"' "$T/out")" = 2
check "extract --from image: stored as image" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE source = 'image'")" = 2
expect 64 $E extract --db "$T/n.db" --model "$T/tiny" --schema "$T/inv.json" \
	--from image --scope document
# a budget below the schema's bound: incomplete, said up front, exit 1
expect 1 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" \
	--force --max-tokens 3
check "--max-tokens below the bound: said up front" \
	grep -q 'below the schema.s bound of [0-9]* tokens' "$T/err"
check "--max-tokens below the bound: incomplete, never done" \
	test "$(grep -c '"status":"incomplete"' "$T/out")" = 2
check "incomplete: stored so, the partial output kept" \
	test "$(q "$T/n.db" "SELECT count(*) FROM extractions WHERE status = 'incomplete' AND length(json) > 0")" = 2
check "incomplete: no fields for it" \
	test "$(q "$T/n.db" "SELECT count(*) FROM fields f JOIN extractions x ON x.id = f.extraction_id WHERE x.status = 'incomplete'")" = 0
# export includes the extractions
expect 0 $E export --db "$T/n.db" --format json doc3.pdf
check "export --format json: extractions with their values" \
	grep -q '"extractions":\[{"page_no":0,"schema_title":"Invoice"' "$T/out"

# merge carries extractions and their fields; a second merge adds nothing
expect 0 $E merge -o "$T/merged.db" "$T/n.db"
expect 0 $E merge -o "$T/merged.db" "$T/n.db"
check "merge: every extraction, once" \
	test "$(q "$T/merged.db" "SELECT count(*) FROM extractions")" = "$(q "$T/n.db" "SELECT count(*) FROM extractions")"
check "merge: their fields, pointing at them" \
	test "$(q "$T/merged.db" "SELECT count(*) FROM fields f JOIN extractions x ON x.id = f.extraction_id JOIN pages p ON p.id = f.page_id")" = "$(q "$T/n.db" "SELECT count(*) FROM fields WHERE extraction_id IS NOT NULL")"
check "merge: no extraction field copied as a plain one" \
	test "$(q "$T/merged.db" "SELECT count(*) FROM fields WHERE rule LIKE 'schema:%' AND extraction_id IS NULL")" = 0

# ---- refusals --------------------------------------------------------------
printf '{"type": "object", "oneOf": []}\n' >"$T/bad.json"
expect 64 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/bad.json"
check "a keyword outside the subset: named" grep -q "keyword 'oneOf' is not supported" "$T/err"
printf '{"type": ' >"$T/notjson.json"
expect 64 $E ocr --db "$T/n.db" --model "$T/tiny" --schema "$T/notjson.json" "$T/doc3.pdf"
check "a schema that is not JSON: said so" grep -q 'not JSON' "$T/err"
expect 66 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/missing.json"
expect 78 $E ocr --db "$T/m.db" --schema "$T/inv.json" --text-layer only "$T/doc3.pdf"
check "--schema without a model: how to configure one" grep -q 'needs a model' "$T/err"
expect 64 $E extract --db "$T/n.db" --model "$T/text"
expect 66 $E extract --db "$T/n.db" --model "$T/text" --schema "$T/inv.json" nosuchdoc

# ---- remote ------------------------------------------------------------------
cat >"$T/page.json" <<'JSON'
{"title": "Page facts", "type": "object",
 "properties": {"date": {"type": "string", "format": "date"},
                "email": {"type": "string", "format": "email"},
                "item": {"type": "string", "maxLength": 10},
                "total": {"type": "number"}},
 "required": ["date", "total"]}
JSON
serve normal --extract valid
expect 0 $E ocr --db "$T/r.db" --server "$URL" --text-layer never $FAST \
	--schema "$T/page.json" "$T/doc3.pdf"
valid
check "remote: structured output asked for each read page" test "$(count XREQ)" = 2
check "remote: the schema's title as the response_format name" \
	grep -q '^XREQ temperature=0 schema=Page_facts' "$T/srv.log"
check "remote: done, conforming" conform "$T/page.json"
check "remote: each value traced to its bytes in the page text" \
	test "$(q "$T/r.db" "SELECT count(*) FROM fields f JOIN pages p ON p.id = f.page_id WHERE f.extraction_id IS NOT NULL AND f.span_start IS NOT NULL AND substr(CAST(p.text AS BLOB), f.span_start + 1, f.span_end - f.span_start) = CAST(f.value AS BLOB)")" = 6
check "remote: a value not in the text has no span" \
	test "$(q "$T/r.db" "SELECT count(*) FROM fields WHERE name = '/total' AND span_start IS NULL")" = 2
# the extract command against the server: document scope
expect 0 $E extract --db "$T/r.db" --server "$URL" --schema "$T/page.json" \
	--scope document
check "remote extract: one document" test "$(wc -l <"$T/out")" = 1
serve normal --extract invalid-once
expect 0 $E extract --db "$T/r.db" --server "$URL" --schema "$T/page.json" \
	--force --temperature 0.7
check "an invalid reply is retried at temperature 0" \
	test "$(grep -c '^XREQ temperature=0 ' "$T/srv.log")" = 2
check "... and the retry's answer stored" \
	test "$(q "$T/r.db" "SELECT count(*) FROM extractions WHERE attempts = 2 AND status = 'done' AND page_no > 0")" = 2
serve normal --extract invalid
expect 1 $E extract --db "$T/r.db" --server "$URL" --schema "$T/page.json" \
	--force
check "invalid twice: stored as invalid, the reply kept" \
	test "$(q "$T/r.db" "SELECT count(*) FROM extractions WHERE status = 'invalid' AND json = '[]' AND error LIKE 'at ''/'': wrong type%'")" = 2
check "invalid: reported so" test "$(grep -c '"status":"invalid","extraction":"\[\]"' "$T/out")" = 2
serve normal --extract truncated
expect 1 $E extract --db "$T/r.db" --server "$URL" --schema "$T/page.json" \
	--force
check "a truncated reply: incomplete" test "$(grep -c '"status":"incomplete"' "$T/out")" = 2
serve normal --extract fenced
expect 0 $E extract --db "$T/r.db" --server "$URL" --schema "$T/page.json" \
	--force
check "a fenced reply: read" test "$(grep -c '"status":"done"' "$T/out")" = 2
valid
stop_server

summary
