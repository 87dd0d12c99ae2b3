#!/bin/sh
# review.sh - the HTML review (export --format html) and report: a store
# made through tests/fakeserver.py (Markdown with a table, fields, zoom
# boxes, an extraction, a page that needs the model, hostile text put in
# by hand), the HTML parsed by Python's html.parser (well formed, no
# external URL, the hostile text shown as text), then both looked at in
# headless Chromium: the screenshots are not blank and the page image is
# where the layout puts it, at a desktop and at a phone's width.
# Prints "review: N passed, M failed".
set -u
NAME=review
. "$(dirname "$0")/lib.sh"
trap stop_server EXIT INT TERM

PY=$(python_with PIL)
CHROME=$(command -v chromium || command -v chromium-browser || true)
# shot HTML PNG WIDTH HEIGHT: a headless Chromium screenshot
shot() {
	timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu \
		--hide-scrollbars --user-data-dir="$T/chrome" \
		--window-size="$3,$4" --screenshot="$2" "file://$1" \
		>"$T/chrome.log" 2>&1 && test -s "$2"
}

FAST="--dpi 50 --retry-wait 0.01"
"$BUILD/tests/mkpdf" "$T/doc3.pdf" 3 doc3 2 # page 2 is blank
# a scan of one colour the screenshot can find: magenta with dark bars
"$PY" -c "
from PIL import Image, ImageDraw
im = Image.new('RGB', (600, 800), (230, 30, 200))
d = ImageDraw.Draw(im)
for y in range(60, 760, 40):
    d.rectangle([50, y, 550, y + 12], fill=(20, 20, 20))
im.save('$T/scan.png')
"
cat >"$T/facts.json" <<'JSON'
{"title": "Facts", "type": "object",
 "properties": {"date": {"type": "string", "format": "date"},
                "email": {"type": "string", "format": "email"}},
 "required": ["date"]}
JSON

serve zoom1 --extract valid
expect 0 $E ocr --db "$T/r.db" --server "$URL" --mode think --zoom \
	--text-layer never $FAST --schema "$T/facts.json" "$T/doc3.pdf" "$T/scan.png"
valid
stop_server
# the pictures in docs/ (make docs-shots): before the hostile text
expect 0 $E export --db "$T/r.db" --format html -o "$T/clean.html" doc3.pdf
# a page that needs the model, and hostile text in what was stored
expect 1 $E ocr --db "$T/r.db" --mode ocr "$C/smile.png"
HOSTILE='<script>alert("x")</script><img src=x onerror=y> & "q" '\''s'\'''
"$PY" - "$T/r.db" "$HOSTILE" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
h = sys.argv[2]
pid = db.execute("SELECT p.id FROM pages p JOIN documents d ON "
                 "d.id = p.document_id WHERE d.path LIKE '%doc3.pdf' AND "
                 "p.page_no = 1 AND p.status = 'done' ORDER BY p.id DESC "
                 "LIMIT 1").fetchone()[0]
db.execute("UPDATE blocks SET text = ? || char(1) || char(27) || ' tail' "
           "WHERE page_id = ? AND seq = (SELECT min(seq) FROM blocks WHERE "
           "page_id = ?)", (h, pid, pid))
db.execute("UPDATE pages SET reasoning = ? WHERE id = ?", (h, pid))
db.execute("INSERT INTO fields(page_id, name, value, rule, span_start, "
           "span_end) VALUES (?, ?, 'v', ?, 0, 4)", (pid, h, h))
db.commit()
PY

# ---- export --format html ---------------------------------------------------
expect 0 $E export --db "$T/r.db" --format html -o "$T/doc3.html" doc3.pdf
check "export html: the file" test -s "$T/doc3.html"
check "export html: nothing on stdout" test ! -s "$T/out"
check "export html: well formed, local, hostile text as text" \
	"$PY" tests/html_check.py html "$T/doc3.html" --scripts 1 --hostile '<script>alert("x")</script>'
check "export html: three pages, three images" \
	test "$(grep -c 'src="data:image/png;base64,' "$T/doc3.html")" = 3
check "export html: the zoom box drawn" grep -q 'class="zoom" style="left:0.00%;top:0.00%;width:50.00%;height:50.00%"' "$T/doc3.html"
check "export html: the table as a table" grep -q '<table class="cells">' "$T/doc3.html"
check "export html: fields marked, the rule on hover" grep -q '<mark title="date: date">2026-11-23</mark>' "$T/doc3.html"
check "export html: the extraction" grep -q 'Extraction <b>Facts</b> <span class="badge done">' "$T/doc3.html"
check "export html: the reasoning folded" grep -q '<details><summary>Reasoning</summary>' "$T/doc3.html"
check "export html: the blank page said" grep -q '<i>A blank page.</i>' "$T/doc3.html"
check "export html: control characters replaced" \
	sh -c "! grep -q \"\$(printf '\\001')\" '$T/doc3.html'"
expect 0 $E export --db "$T/r.db" --format html smile.png
check "export html: a page that needs the model says so" grep -q 'This page needs the model' "$T/out"
cp "$T/out" "$T/smile.html"
check "export html (needs model): well formed" "$PY" tests/html_check.py html "$T/smile.html" --scripts 1
# the page images' size follows --image-dpi
expect 0 $E export --db "$T/r.db" --format html --image-dpi 30 -o "$T/small.html" doc3.pdf
check "--image-dpi: smaller images" test "$(wc -c <"$T/small.html")" -lt "$(wc -c <"$T/doc3.html")"
check "--image-dpi 30: an A4 page 249 pixels wide" grep -q 'width="249" height="351"' "$T/small.html"
expect 64 $E export --db "$T/r.db" --format html --image-dpi 5 doc3.pdf
expect 64 $E export --db "$T/r.db" --format md -o "$T/x.md" doc3.pdf
# a document no longer at its path: said, the rest still shown
cp "$T/r.db" "$T/moved.db"
mv "$T/doc3.pdf" "$T/doc3-moved.pdf"
expect 0 $E export --db "$T/moved.db" --format html -o "$T/moved.html" doc3.pdf
check "a moved document: no image, and why" grep -q 'No page image: cannot open' "$T/moved.html"
mv "$T/doc3-moved.pdf" "$T/doc3.pdf"
expect 0 $E export --db "$T/r.db" --format html -o "$T/scan.html" scan.png

# ---- report -----------------------------------------------------------------
# an extraction cut short: a page to look at again
serve normal --extract truncated
expect 1 $E extract --db "$T/r.db" --server "$URL" --schema "$T/facts.json" \
	--force doc3.pdf
stop_server
expect 0 $E report --db "$T/r.db" -o "$T/report.html"
check "report: an incomplete extraction to look at again" \
	test "$(grep -c 'extraction incomplete</td>' "$T/report.html")" = 2
check "report: well formed, local, no script" "$PY" tests/html_check.py html "$T/report.html" --scripts 0
check "report: pages by status and source" grep -q '<td>needs-model</td><td>raster</td><td>1</td>' "$T/report.html"
sha=$(q "$T/r.db" "SELECT substr(sha256, 1, 12) FROM documents WHERE path LIKE '%smile.png'")
check "report: a page to look at again, linked into its review" grep -q "href=\"$sha.html#page-1\"" "$T/report.html"
check "report: charts as inline SVG" test "$(grep -c '<svg ' "$T/report.html")" = 2
check "report: the runs" test "$(grep -c '<td>remote</td>' "$T/report.html")" = 1
expect 66 $E report --db "$T/none.db"

# ---- in a browser -------------------------------------------------------------
if [ -n "$CHROME" ]; then
	check "chromium: the review" shot "$T/scan.html" "$T/scan.png.shot.png" 1200 900
	check "chromium: the page image left of the text, filling its column" \
		"$PY" tests/html_check.py shot "$T/scan.png.shot.png" \
		--color 230,30,200 --box 20,100,600,900 --min-w 450
	check "chromium: at a phone's width" shot "$T/scan.html" "$T/phone.png" 420 900
	check "chromium: the image the whole width, above the text" \
		"$PY" tests/html_check.py shot "$T/phone.png" \
		--color 230,30,200 --box 0,100,420,900 --min-w 360
	check "chromium: the report" shot "$T/report.html" "$T/report.png" 1200 900
	check "chromium: the report is not blank" "$PY" tests/html_check.py shot "$T/report.png"
	# the pictures in docs/ are made this way (make docs-shots)
	if [ -n "${ED_SHOTS:-}" ]; then
		shot "$T/clean.html" "$ED_SHOTS/review.png" 1200 900
		shot "$T/report.html" "$ED_SHOTS/report.png" 1200 900
	fi
else
	no "chromium is not installed (make deps)"
fi

summary
