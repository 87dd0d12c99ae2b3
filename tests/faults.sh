#!/bin/sh
# faults.sh - `ernie-doc batch` under injected SQLite I/O faults, as SQLite
# tests itself: build/tests/faultvfs.so, preloaded, fails the N-th write,
# sync or lock of the process. For N over every operation of the first 64
# (opening, the migrations) and then every FAULT_STRIDE-th (default 5;
# FAULT_STRIDE=1 is every N) of a batch over 3 PDFs x 3 pages into a new
# database: the batch exits with a documented status (0 when SQLite
# absorbed the fault, 1, 73, 74 or 75) and a one-line message naming the
# database, the file passes PRAGMA integrity_check, and a plain re-run
# exits 0 with the 9 pages stored exactly once, no claim left.
# Prints "faults: N passed, M failed".
set -u
NAME=faults
. "$(dirname "$0")/lib.sh"

SO=$(pwd)/$BUILD/tests/faultvfs.so
PY=$(python_with sqlite3)
STRIDE=${FAULT_STRIDE:-5}
mkdir -p "$T/tree"
for i in 1 2 3; do
	"$BUILD/tests/mkpdf" "$T/tree/d$i.pdf" 3 "fault$i" || no "mkpdf"
done
# a sanitized ernie-doc is linked with its runtime: let the library in first
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"

# faulty N: the batch with the N-th operation failing; sets rc, kind
faulty() {
	rm -f "$T/f.db" "$T/f.db-wal" "$T/f.db-shm" "$T/ops"
	ED_FAULT_AT=$1 ED_FAULT_OPS="$T/ops" LD_PRELOAD="$SO" \
		$E batch --db "$T/f.db" --text-layer only -q "$T/tree" \
		>"$T/out" 2>"$T/err"
	rc=$?
	kind=$(cut -d' ' -f2 "$T/ops" 2>/dev/null)
}

faulty -1
total=$(cut -d' ' -f1 "$T/ops" 2>/dev/null)
check "a batch without faults exits 0 ($rc)" test "$rc" -eq 0
check "the operations are counted ($total)" test "${total:-0}" -gt 100

n=1 runs=0 failed=0 statuses="" bad=0 sound=0 writes=0 syncs=0 locks=0
while [ "$n" -le "${total:-0}" ]; do
	faulty "$n"
	runs=$((runs + 1))
	case $kind in
	write) writes=$((writes + 1)) ;;
	sync) syncs=$((syncs + 1)) ;;
	lock) locks=$((locks + 1)) ;;
	esac
	case $rc in
	0) ;;
	1 | 73 | 74 | 75)
		failed=$((failed + 1))
		case " $statuses " in *" $rc "*) ;; *) statuses="$statuses $rc" ;; esac
		# one line, naming what failed
		if [ "$(wc -l <"$T/err")" -ne 1 ] ||
			! grep -Eq '^ernie-doc: .*(database|disk I/O error)' "$T/err"; then
			no "fault $n ($kind): message: $(head -c 300 "$T/err")"
			bad=$((bad + 1))
		fi
		;;
	*)
		no "fault $n ($kind): exit $rc: $(head -c 300 "$T/err")"
		bad=$((bad + 1))
		;;
	esac
	if [ -s "$T/f.db" ]; then
		# a file the first migration did not finish is no ernie-doc
		# database yet (query refuses it): Python's sqlite3 checks it
		ic=$(q "$T/f.db" "SELECT group_concat(integrity_check) FROM pragma_integrity_check" 2>/dev/null)
		[ "$ic" = ok ] || ic=$("$PY" -c 'import sqlite3, sys; print(",".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check")))' "$T/f.db" 2>&1)
		if [ "$ic" = ok ]; then
			sound=$((sound + 1))
		else
			no "fault $n ($kind): integrity_check says '$ic'"
			bad=$((bad + 1))
		fi
	fi
	# the re-run completes the tree, every page once
	$E batch --db "$T/f.db" --text-layer only -q "$T/tree" >"$T/out2" 2>"$T/err2"
	rrc=$?
	got=$(q "$T/f.db" "SELECT (SELECT count(*) FROM pages WHERE status IN ('done','blank')) || ' ' || (SELECT count(*) - count(DISTINCT document_id || '-' || page_no) FROM pages) || ' ' || (SELECT count(*) FROM claims)")
	if [ "$rrc" -ne 0 ] || [ "$got" != "9 0 0" ]; then
		no "fault $n ($kind): re-run exited $rrc, stored/twice/claims '$got': $(head -c 200 "$T/err2")"
		bad=$((bad + 1))
	fi
	if [ "$n" -lt 64 ]; then n=$((n + 1)); else n=$((n + STRIDE)); fi
done
check "faults injected ($runs)" test "$runs" -gt 60
check "some faults were reported ($failed, statuses$statuses)" test "$failed" -gt 10
check "every fault survived ($bad bad)" test "$bad" -eq 0
echo "  ($total operations a batch; $runs faults: $writes writes, $syncs syncs, $locks locks failed; $failed batches exited with$statuses; $sound databases checked sound; every re-run complete)"

summary
