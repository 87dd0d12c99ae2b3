#!/bin/sh
# fuzz.sh [SECONDS] [TARGET...] - coverage-guided fuzzing with libFuzzer:
# the library built by clang with ASan, UBSan and the fuzzer's coverage
# (build-fuzz/), each target in tests/fuzz/ linked with -fsanitize=fuzzer
# and run for SECONDS (default 60) on a copy of its seed corpus, on every
# core. Prints one line per target: executions, speed, coverage, corpus;
# a finding (crash, leak, sanitizer report, timeout) is kept under
# build-fuzz/findings/TARGET/ and fails the run. `make fuzz
# FUZZ_SECONDS=N` calls it. Needs Debian's clang and libclang-rt (make
# deps). New corpus entries stay in build-fuzz/corpus/TARGET: minimise
# them into tests/fuzz/corpus with -merge=1 by hand.
set -u
cd "$(dirname "$0")/.." || exit 2
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
OUT=build-fuzz
CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (make deps installs clang)" >&2
	exit 2
fi
# the library with coverage for the fuzzer, not its main
make -s BUILD="$OUT" CC="$CC" SANITIZE=address,undefined \
	CFLAGS="-fsanitize=fuzzer-no-link -DED_LIBFUZZER -O1 -g" \
	"$OUT/libernie.a" || exit 2
LIBS=$(make -s --no-print-directory print-libs)
targets=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/||; s|\.c$||')}
status=0
mkdir -p "$OUT/bin" "$OUT/findings"
for t in $targets; do
	src=tests/fuzz/$t.c
	bin=$OUT/bin/$t
	# shellcheck disable=SC2086
	"$CC" -O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -DED_LIBFUZZER \
		-fsanitize=fuzzer,address,undefined -I. $(make -s --no-print-directory print-cflags) \
		-o "$bin" "$src" "$OUT/libernie.a" $LIBS || {
		status=1
		continue
	}
	corpus=$OUT/corpus/$t
	findings=$OUT/findings/$t
	mkdir -p "$corpus" "$findings"
	cp -n tests/fuzz/corpus/"${t#fuzz_}"/* "$corpus"/ 2>/dev/null
	log=$OUT/$t.log
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ASAN_OPTIONS=detect_leaks=1 \
		"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 \
		-rss_limit_mb=4096 -max_len="${FUZZ_MAX_LEN:-4096}" -print_final_stats=1 \
		-artifact_prefix="$findings/" "$corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
	n=$(ls "$corpus" | wc -l)
	if [ $rc -ne 0 ] || ls "$findings" | grep -q .; then
		echo "fuzz: $t: FINDING after ${execs:-?} executions (see $log, $findings)"
		status=1
	else
		echo "fuzz: $t: ${execs:-0} executions, ${speed:-0}/s, $cov, corpus $n"
	fi
done
exit $status
