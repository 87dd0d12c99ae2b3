#!/bin/sh
# run.sh - `make bench`: every figure as a ratio against a reference
# measured in the same run on the same machine.
#   BENCH <name> <value> <unit> ratio=<r> target=<t>
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
B=$BUILD/bench/bench
T=$(mktemp -d "${TMPDIR:-/tmp}/ernie-doc-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
PAGES=40
THREADS=$(nproc 2>/dev/null || echo 2)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# ---- rendering: in-process vs pdftoppm, same file, 150 DPI ------------
# A generated 40-page text document, and (when ../shared is beside the
# checkout) real corpus files: LaTeX Type 1 text, and scanned images.
"$BUILD/tests/mkpdf" "$T/text40.pdf" 40
files="$T/text40.pdf"
for f in pdflatex-4-pages.pdf multipage.pdf; do
	[ -f "../shared/corpus/$f" ] && files="$files ../shared/corpus/$f"
done
for f in $files; do
	name=$(basename "$f" .pdf | tr -c 'a-zA-Z0-9\n' '_')
	n=$(pdfinfo "$f" 2>/dev/null | awk '/^Pages:/ {print $2}')
	ours1=$("$B" render "$f" 150 1 | awk '{print $1}')
	oursn=$("$B" render "$f" 150 "$THREADS" | awk '{print $1}')
	if command -v pdftoppm >/dev/null 2>&1; then
		ref=0
		for rep in 1 2 3; do # best of 3, as ours
			t0=$(date +%s.%N)
			pdftoppm -r 150 "$f" "$T/ppm"
			t1=$(date +%s.%N)
			r=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.3f", n / (b - a) }')
			ref=$(awk -v a="$r" -v b="$ref" 'BEGIN { print (a > b ? a : b) }')
			rm -f "$T"/ppm*
		done
	else
		ref=0
		echo "bench: pdftoppm not found (make deps installs poppler-utils)" >&2
	fi
	echo "BENCH render_${name}_150dpi $ours1 pages/s ratio=$(ratio "$ours1" "$ref") target=1.0"
	echo "BENCH render_${name}_150dpi_${THREADS}threads $oursn pages/s ratio=$(ratio "$oursn" "$ref") target=1.0"
	echo "  (reference: pdftoppm -r 150 on the same $n pages, $ref pages/s;"
	echo "   ours rasterizes in memory, pdftoppm also writes PPM files)"
done

# ---- tiling: a 2480x3508 page, vs Pillow + numpy -----------------------
ours=$("$B" tile 2480 3508 5 | awk '{print $1}')
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if $PY -c "import PIL, numpy" 2>/dev/null; then
	ref=$($PY bench/pillow_tile.py 2480 3508 5 1848 2604 | awk '{print $1}')
else
	ref=0
	echo "bench: Pillow/numpy not found (make deps installs them)" >&2
fi
echo "BENCH tile_2480x3508 $ours MP/s ratio=$(ratio "$ours" "$ref") target=1.0"
echo "  (reference: Pillow BICUBIC + numpy normalize/patchify, $ref MP/s)"
refc=$("$B" resize-ref 2480 3508 | awk '{print $1}')
echo "BENCH tile_vs_naive_resize $ours MP/s ratio=$(ratio "$ours" "$refc") target=1.0"
echo "  (reference: the naive per-pixel resize alone, $refc MP/s)"

# ---- the native engine: real 28B-A3B shapes, 2 decoder layers (one
# dense, one MoE), 2 ViT blocks, random BF16 weights in a temporary
# directory (about 3 GB) --------------------------------------------------
"$BUILD/tests/mkmodel" "$T/real" --real-shapes --shards 4 >/dev/null &&
	"$B" engine "$T/real" "$THREADS"
rm -rf "$T/real"
