#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds libfuse 3.17 (FUSE passthrough: reads of stored files that never reach the
# daemon) from Debian's own source package of the next release, as a static library in
# build/fuse317/, for the Makefile to link when it is there. The system's apt
# configuration is never touched: a private sources list, lists and cache under
# build/apt/ are passed through apt's -o options. Any failure prints one line and
# leaves the build on the system's libfuse (3.14 on Debian 12: no passthrough).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/build/fuse317"
APT="$ROOT/build/apt"
SUITE=${LIBFUSE_SUITE:-trixie}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

[ -f "$OUT/.done" ] && exit 0

fail() {
	echo "deps: libfuse 3.17 not built ($1): building with the system libfuse (no passthrough)" >&2
	exit 0
}

for tool in apt-get dpkg-source meson ninja; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done
[ -r "$KEYRING" ] || fail "no Debian archive keyring"

rm -rf "$APT" "$OUT"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/src" || fail "cannot write build/"
echo "deb-src [signed-by=$KEYRING] http://deb.debian.org/debian $SUITE main" > "$APT/sources.list"
set -- -q -o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null \
	-o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" \
	-o Acquire::Retries=2 -o Acquire::http::Timeout=30
# apt drops to the _apt user for downloads when it runs as root; that user cannot
# write into our build folder.
[ "$(id -u)" = 0 ] && set -- "$@" -o APT::Sandbox::User=root

echo "deps: fetching libfuse 3.17 (Debian $SUITE source package fuse3) for FUSE passthrough" >&2
apt-get "$@" update >"$APT/log" 2>&1 || fail "apt-get update of $SUITE sources failed; see build/apt/log"
(cd "$APT/src" && apt-get "$@" source --download-only fuse3) >>"$APT/log" 2>&1 ||
	fail "apt-get source fuse3 failed; see build/apt/log"
dsc=$(ls "$APT"/src/fuse3_3.1[7-9]*.dsc "$APT"/src/fuse3_3.[2-9]*.dsc 2>/dev/null | head -1)
[ -n "$dsc" ] || fail "the $SUITE source package is not 3.17 or later"
# dpkg-source checks the .dsc signature itself when gpgv is there (apt already verified
# the archive's Release file, which lists the .dsc's checksum).
(cd "$APT/src" && dpkg-source -x "$dsc" libfuse) >>"$APT/log" 2>&1 ||
	fail "dpkg-source -x failed; see build/apt/log"

echo "deps: building libfuse $(basename "$dsc" .dsc | cut -d_ -f2) with meson" >&2
meson setup "$APT/build" "$APT/src/libfuse" --prefix="$OUT" --libdir=lib \
	--default-library=static --buildtype=release -Dutils=false -Dexamples=false \
	-Dtests=false -Duseroot=false -Dinitscriptdir= -Dudevrulesdir="$OUT/udev" \
	>>"$APT/log" 2>&1 || fail "meson setup failed; see build/apt/log"
ninja -C "$APT/build" >>"$APT/log" 2>&1 || fail "the build failed; see build/apt/log"
meson install -C "$APT/build" >>"$APT/log" 2>&1 || fail "meson install failed; see build/apt/log"
[ -f "$OUT/lib/pkgconfig/fuse3.pc" ] || fail "no fuse3.pc was installed"
touch "$OUT/.done"
echo "deps: libfuse $(PKG_CONFIG_PATH="$OUT/lib/pkgconfig" pkg-config --modversion fuse3) in build/fuse317 (linked statically)" >&2
