#!/bin/sh
# SPDX-License-Identifier: MIT
# make demo: starts the bundled fake TCIA (or, with SOURCE=idc, the fake IDC) on
# 127.0.0.1, mounts tciafs on ./mnt in the foreground, and on Ctrl-C unmounts and stops
# the server. Works offline.
set -eu

BIN=${1:-build/tciafs}
SOURCE=${2:-nbia}
MNT=${DEMO_MNT:-./mnt}
WORK=${DEMO_WORK:-./.demo}
PY=/usr/bin/python3
FAKE_PID=""

cleanup() {
	if grep -qs " $(realpath "$MNT") fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
	fi
	if [ -n "$FAKE_PID" ]; then
		kill "$FAKE_PID" 2>/dev/null || true
		wait "$FAKE_PID" 2>/dev/null || true
		FAKE_PID=""
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

mkdir -p "$MNT" "$WORK"
# A demo killed hard last time may have left a dead mount behind.
fusermount3 -u -z "$MNT" 2>/dev/null || true
rm -f "$WORK/url"
case $SOURCE in
nbia) FAKE=tests/fake-tcia/fake_tcia.py NAME="fake TCIA" ;;
idc) FAKE=tests/fake-idc/fake_idc.py NAME="fake IDC" ;;
*) echo "demo: SOURCE=$SOURCE: use nbia or idc" >&2; exit 2 ;;
esac
$PY $FAKE --url-file "$WORK/url" --log "$WORK/requests.log" 2>"$WORK/fake-$SOURCE.log" &
FAKE_PID=$!
i=0
while [ ! -s "$WORK/url" ]; do
	i=$((i + 1))
	if [ "$i" -gt 200 ] || ! kill -0 "$FAKE_PID" 2>/dev/null; then
		echo "demo: the $NAME server did not start; see $WORK/fake-$SOURCE.log" >&2
		exit 1
	fi
	sleep 0.05
done
API=$(cat "$WORK/url")
if [ "$SOURCE" = idc ]; then
	# The buckets are beside the API on the same fake: http://127.0.0.1:PORT/<bucket>.
	OPTS="source=idc,idc_api=$API,idc_files=${API%/v3}/{bucket}"
	TRY="ls -l $MNT/TCGA-LUAD/TCGA-05-4244/*/*"
else
	OPTS="api=$API"
	TRY="ls -l \"$MNT/CT COLONOGRAPHY\""
fi

cat <<MSG
tciafs demo: the $NAME archive ($API) is mounted on $MNT.
In another terminal, try:
    ls $MNT
    cat $MNT/README.txt
    $TRY
Requests the server saw: $WORK/requests.log
Press Ctrl-C here to unmount and stop.
MSG
"$BIN" -f -o "$OPTS,cache_dir=$(realpath "$WORK")/cache" "$MNT" &
FS_PID=$!
# Wait rather than exec: the traps must run after tciafs exits.
wait "$FS_PID" || true
