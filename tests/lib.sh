# lib.sh - shared by the shell tests (sourced): paths, the counters and
# the expect/check/q helpers. NAME must be set by the sourcing script.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${ED_BUILD:-build}
SHARED=${ED_SHARED:-../shared}
C=$SHARED/corpus
T=${ED_TMP:-/tmp}/$NAME.$$
mkdir -p "$T"
E="${ED_WRAP:-} $(pwd)/ernie-doc"
pass=0
fail=0

ok() { pass=$((pass + 1)); }
no() {
	fail=$((fail + 1))
	echo "$NAME: FAIL: $*" >&2
}
# expect STATUS CMD...: run, keep stdout/stderr in $T/out, $T/err
expect() {
	want=$1
	shift
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok
	else
		no "'$*' exited $got, want $want: $(head -c 300 "$T/err")"
	fi
}
check() { # check DESCRIPTION TEST...
	d=$1
	shift
	if "$@"; then ok; else no "$d"; fi
}
q() { # q DB SQL: one value from the database
	$E query --db "$1" --format csv "$2" | sed -n 2p | tr -d '\r'
}

# python_with MODULE: a python3 that has it (pyenv's or Debian's), or ""
python_with() {
	for c in python3 /usr/bin/python3; do
		if command -v "$c" >/dev/null 2>&1 &&
			"$c" -c "import $1" >/dev/null 2>&1; then
			echo "$c"
			return
		fi
	done
}

# the fake OpenAI-compatible server (tests/fakeserver.py); a script that
# uses it sets: trap stop_server EXIT INT TERM
SRV_PID=
stop_server() {
	if [ -n "$SRV_PID" ]; then
		kill "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	SRV_PID=
}
# serve SCRIPT [ARGS...]: (re)start the test server; sets URL
serve() {
	stop_server
	rm -f "$T/port" "$T/srv.log"
	: >"$T/srv.log"
	python3 tests/fakeserver.py --port-file "$T/port" --log "$T/srv.log" \
		--script "$@" &
	SRV_PID=$!
	wait_port
	URL="http://127.0.0.1:$(cat "$T/port")/v1"
}
# wait_port: until a server started in the background wrote $T/port
wait_port() {
	n=0
	while [ ! -s "$T/port" ] && [ $n -lt 200 ]; do
		sleep 0.05
		n=$((n + 1))
	done
}
count() { # count PATTERN: lines of the server log that start with it
	grep -c "^$1" "$T/srv.log" || true
}
# the server must never have seen a malformed request
valid() {
	check "every request well formed: $(grep INVALID "$T/srv.log" | head -n 2)" \
		test "$(count INVALID)" = 0
}
# summary: print "NAME: N passed, M failed" and exit accordingly
summary() {
	echo "$NAME: $pass passed, $fail failed"
	[ $fail -eq 0 ]
}
