#!/bin/sh
# run.sh - every test binary (one per module), the fuzz corpus replays and
# the CLI tests; one final line "N passed, M failed", non-zero on failure.
# VALGRIND=1 runs the binaries under valgrind (errors fail the test).
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
export ED_SHARED=${ED_SHARED:-$(cd .. && pwd)/shared}
export ED_BUILD=$BUILD
TMPDIR=${TMPDIR:-/tmp}
export ED_TMP=$(mktemp -d "$TMPDIR/ernie-doc-test.XXXXXX")
trap 'rm -rf "$ED_TMP"' EXIT INT TERM

if [ ! -d "$ED_SHARED/golden" ]; then
	echo "run.sh: fixtures not found at $ED_SHARED (set ED_SHARED)" >&2
	exit 2
fi
# sanitizer runs: third-party caches are not leaks; stop at the first error
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# make SANITIZE=thread check: third-party libraries' own locking is
# invisible to TSan (tests/tsan.supp), GLib's slice allocator too
export TSAN_OPTIONS="suppressions=$(pwd)/tests/tsan.supp"
export G_SLICE=always-malloc
WRAP=""
if [ "${VALGRIND:-}" = 1 ]; then
	WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions=$(pwd)/tests/valgrind.supp"
	export ED_VALGRIND=1
fi
export ED_WRAP="$WRAP"

pass=0
fail=0
tally() { # parse "<name>: N passed, M failed" lines from a log
	line=$(grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "run.sh: $2 printed no summary (crashed?)" >&2
		fail=$((fail + 1))
		return
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	pass=$((pass + p))
	fail=$((fail + f))
}

for t in common render model grammar store pipeline alloc vfs; do
	log="$ED_TMP/$t.log"
	$WRAP "$BUILD/tests/test_$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	tally "$log" "test_$t"
	if [ $rc -ne 0 ] && ! grep -qE ' [1-9][0-9]* failed$' "$log"; then
		echo "run.sh: test_$t exited $rc" >&2
		fail=$((fail + 1))
	fi
done

for fz in "$BUILD"/tests/fuzz/fuzz_*; do
	[ -x "$fz" ] && [ "${fz%.[od]}" = "$fz" ] || continue
	name=$(basename "$fz")
	log="$ED_TMP/$name.log"
	$WRAP "$fz" "tests/fuzz/corpus/${name#fuzz_}" >"$log" 2>&1
	rc=$?
	cat "$log"
	tally "$log" "$name"
	[ $rc -ne 0 ] && ! grep -qE ' [1-9][0-9]* failed$' "$log" &&
		fail=$((fail + 1))
done

# pycheck NAME MODULE SCRIPT ARGS...: a Python check that needs MODULE,
# with a python3 that has it (pyenv's or Debian's)
pycheck() {
	name=$1 mod=$2
	shift 2
	log="$ED_TMP/$name.log"
	py=
	for c in python3 /usr/bin/python3; do
		if command -v "$c" >/dev/null 2>&1 &&
			"$c" -c "import $mod" >/dev/null 2>&1; then
			py=$c
			break
		fi
	done
	if [ -n "$py" ]; then
		"$py" "$@" >"$log" 2>&1
	else
		echo "run.sh: $name needs python3-$mod (make deps)" >"$log"
	fi
	cat "$log"
	tally "$log" "$name"
}

# the chat-template renderer against Python's jinja2
pycheck jinja_diff jinja2 tests/jinja_diff.py "$BUILD"
# the grammar's property-test outputs against python3-jsonschema
pycheck schema_check jsonschema tests/schema_check.py \
	"$ED_TMP/grammar_outputs.jsonl"

for sh in cli e2e extract review faults; do
	log="$ED_TMP/$sh.log"
	sh "tests/$sh.sh" >"$log" 2>&1
	cat "$log"
	tally "$log" "$sh"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
