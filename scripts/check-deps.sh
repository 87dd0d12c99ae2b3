#!/bin/sh
# check-deps.sh - fail on an #include against the dependency direction:
#   cmd -> pipeline -> {render, model, store} -> common
# A module may include its own headers, common/, and the public headers
# of the modules below it; a private *_int.h only from its own folder.
set -u
cd "$(dirname "$0")/.." || exit 2
status=0
allowed() {
	case "$1" in
	common) echo "common" ;;
	render | model | store) echo "common $1" ;;
	pipeline) echo "common render model store pipeline" ;;
	cmd) echo "common render model store pipeline cmd" ;;
	esac
}
for mod in common render model store pipeline cmd; do
	ok=$(allowed "$mod")
	for f in "$mod"/*.c "$mod"/*.h; do
		[ -f "$f" ] || continue
		grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
			while IFS= read -r line; do
				inc=$(echo "$line" | sed -E 's/.*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
				case "$inc" in
				*/*) dir=${inc%%/*} ;;
				*) dir=$mod ;;
				esac
				case " $ok " in
				*" $dir "*) ;;
				*) echo "check-deps: $f: includes \"$inc\": $mod may not depend on $dir" ;;
				esac
				case "$inc" in
				*_int.h) if [ "$dir" != "$mod" ]; then
					echo "check-deps: $f: includes private \"$inc\" of $dir"
				fi ;;
				esac
			done
	done
done >/tmp/check-deps.$$
if [ -s /tmp/check-deps.$$ ]; then
	cat /tmp/check-deps.$$
	status=1
else
	echo "check-deps: clean"
fi
rm -f /tmp/check-deps.$$
exit $status
