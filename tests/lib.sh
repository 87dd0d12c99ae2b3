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

# summary: print "NAME: N passed, M failed" and exit accordingly
summary() {
	echo "$NAME: $pass passed, $fail failed"
	[ $fail -eq 0 ]
}
