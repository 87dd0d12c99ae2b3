#!/bin/sh
# deps.sh - install the Debian packages ernie-doc needs to build, test and
# benchmark. Idempotent: installs only what is missing. Called by
# `make deps` and .ci/run.
set -eu

PKGS="build-essential pkg-config
libpoppler-glib-dev libcairo2-dev libtiff-dev libpng-dev libjpeg-dev
libcurl4-openssl-dev libsqlite3-dev libpcre2-dev libjansson-dev
libopenblas-dev libdnnl-dev
poppler-utils fonts-dejavu-core sentencepiece python3 python3-pil python3-numpy python3-jinja2 python3-jsonschema python3-h2 openssl
chromium clang libclang-rt-14-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "deps: everything is installed"
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
echo "deps: installing$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	--no-install-recommends $missing
