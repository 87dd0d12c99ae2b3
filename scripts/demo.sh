#!/bin/sh
# demo.sh - the quick start: install the build dependencies (Debian
# packages, via scripts/deps.sh), build ernie-doc, and run the main job on
# the sample document kept in the repository.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)"
rm -f demo.db demo.db-wal demo.db-shm
echo "--- ernie-doc ocr --db demo.db samples/sample.pdf"
./ernie-doc ocr --db demo.db samples/sample.pdf
echo "--- ernie-doc search --db demo.db invoice"
./ernie-doc search --db demo.db invoice
echo "--- ernie-doc query --db demo.db \"SELECT page_no, source, status, length(text) FROM pages\""
./ernie-doc query --db demo.db \
	"SELECT page_no, source, status, length(text) AS chars FROM pages"
