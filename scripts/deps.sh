#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages tciafs needs to build, test and demo, and nothing else:
# each package is checked with dpkg -s, so a machine that has them all runs no apt at all.
# (scripts/libfuse.sh, run after it, builds the newer libfuse with meson.)
set -eu

PKGS="build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libjansson-dev
libzip-dev libcmocka-dev python3 dcmtk python3-pydicom python3-numpy valgrind curl unzip zip clang
openssl procps attr dcm2niix groff-base man-db
libclang-rt-14-dev clang-format-14 meson ninja-build dpkg-dev libsqlite3-dev sqlite3 libexpat1-dev libssl-dev"

missing=""
for p in $PKGS; do
	if ! dpkg -s "$p" >/dev/null 2>&1; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
