#!/bin/sh
# lint.sh - banned functions (STYLE.md rule 8) and exit/abort outside cmd/
# (rule 3). Exits 1 and lists every hit.
set -u
cd "$(dirname "$0")/.." || exit 2
status=0
hits=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)[[:space:]]*\(' \
	common/*.[ch] render/*.[ch] model/*.[ch] store/*.[ch] pipeline/*.[ch] \
	cmd/*.[ch] tests/*.[ch] tests/fuzz/*.c bench/*.c 2>/dev/null)
if [ -n "$hits" ]; then
	echo "lint: banned functions (use snprintf, strtol, memcpy, ...):"
	echo "$hits"
	status=1
fi
hits=$(grep -nE '(^|[^_a-z])(exit|abort|_Exit)[[:space:]]*\(' \
	common/*.[ch] render/*.[ch] model/*.[ch] store/*.[ch] \
	pipeline/*.[ch] 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)')
if [ -n "$hits" ]; then
	echo "lint: only cmd/ may exit:"
	echo "$hits"
	status=1
fi
hits=$(grep -nE '(^|[^_a-zA-Z0-9])(stdout|stderr|printf|puts|putchar|perror)([^_a-zA-Z0-9]|$)' \
	common/*.[ch] render/*.[ch] model/*.[ch] store/*.[ch] \
	pipeline/*.[ch] 2>/dev/null | grep -v 'format(printf' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)')
if [ -n "$hits" ]; then
	echo "lint: library code must not print (report through callbacks):"
	echo "$hits"
	status=1
fi
[ $status -eq 0 ] && echo "lint: clean"
exit $status
