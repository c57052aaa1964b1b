#!/usr/bin/env bash
# bench/remote.sh -- remote read benchmark: the newest corpus version read
# through `mount -s http://…` (`serve http` on loopback) with a warm local
# cache, against the same read from the local store file, side by side in
# one run.
#
# Run from the repository root after `make build` (`make bench` runs it).
# Needs root (drop_caches, mounts through /dev/fuse).
#   bash bench/remote.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default
#                      /var/tmp/spraydryfs-corpus, as for bench/run.sh)
#   BENCH_OUT          result directory (default bench/out); work goes to
#                      $BENCH_OUT/remote (emptied first)
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#   BENCH_REPEATS      timed runs per setup, the median is reported (3)
#
# The newest version is ingested into a store of its own. The cache is
# warmed by one `tar` of the tree through a mount of the remote; then each
# timed run is a fresh mount, `sync; echo 3 > /proc/sys/vm/drop_caches`, and
# `tar cf - . | wc -c` (every file read), alternating local and remote. The
# origin's log gives the requests of the timed remote runs (the warm cache
# should leave only the roots index).
# Results: a table on stdout and $BENCH_OUT/remote-results.md.
set -euo pipefail

# Target (issue 12): the warm-cache read <= 1.1x the local store file.
TARGET_X=1.1

die() { echo "bench-remote: $*" >&2; exit 1; }
log() { echo "bench-remote: $*" >&2; }

CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
REPEATS=${BENCH_REPEATS:-3}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
	log "SKIPPED: needs root and /dev/fuse (drop_caches, FUSE mounts)"
	exit 0
fi
[ -d "$CORPUS/versions" ] || die "no corpus at $CORPUS/versions (see bench/run.sh)"
NEWEST=$(ls "$CORPUS/versions" | sort -V | tail -n 1)
[ -n "$NEWEST" ] || die "no versions in $CORPUS/versions"

W=$OUT/remote
rm -rf "$W"
mkdir -p "$W/mnt" "$W/cache"
STORE=$W/store.sdfs
MNT=$W/mnt
LOGF=$W/mount.log

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

MPID="" OPID=""
# mount_tree ARGS... : mount in the background, wait for the mount.
mount_tree() {
	"$BIN" "$@" mount "$MNT" >>"$LOGF" 2>&1 &
	MPID=$!
	local i
	for ((i = 0; i < 600; i++)); do
		is_mounted "$MNT" && return 0
		kill -0 "$MPID" 2>/dev/null || die "mount exited: $(tail -n 3 "$LOGF")"
		sleep 0.05
	done
	die "$MNT did not appear within 30 s"
}

unmount_tree() {
	if [ -n "$MPID" ]; then
		kill -TERM "$MPID" 2>/dev/null || true
		wait "$MPID" 2>/dev/null || true
		MPID=""
	fi
	if is_mounted "$MNT"; then umount -l "$MNT" || true; fi
}

cleanup() {
	unmount_tree
	if [ -n "$OPID" ]; then kill -TERM "$OPID" 2>/dev/null || true; wait "$OPID" 2>/dev/null || true; fi
}
trap cleanup EXIT

log "ingesting $NEWEST"
"$BIN" -s "$STORE" ingest "x@$NEWEST" "$CORPUS/versions/$NEWEST" >/dev/null

"$BIN" -s "$STORE" serve http --listen 127.0.0.1:0 >"$W/origin.url" 2>"$W/origin.log" &
OPID=$!
for ((i = 0; i < 200; i++)); do
	[ -s "$W/origin.url" ] && break
	sleep 0.05
done
URL=$(head -n 1 "$W/origin.url")
[ -n "$URL" ] || die "serve http did not start: $(tail -n 3 "$W/origin.log")"
REMOTE=(-s "$URL" --cache-dir "$W/cache" --cache-size 4GiB)

# read_all : seconds to tar every file of the mounted version, page caches cold.
read_all() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	local start end
	start=$(date +%s.%N)
	(cd "$MNT/x/$NEWEST" && tar cf - . | wc -c >/dev/null)
	end=$(date +%s.%N)
	echo "$end - $start" | bc
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

log "warming the cache through $URL"
mount_tree "${REMOTE[@]}"
read_all >/dev/null
unmount_tree
WARM_REQS=$(grep -c 'msg=request method=GET' "$W/origin.log" || true)

: >"$W/local.times"
: >"$W/remote.times"
for ((r = 1; r <= REPEATS; r++)); do
	mount_tree -s "$STORE"
	read_all >>"$W/local.times"
	unmount_tree
	mount_tree "${REMOTE[@]}"
	read_all >>"$W/remote.times"
	unmount_tree
done
TOTAL_REQS=$(grep -c 'msg=request method=GET' "$W/origin.log" || true)
TIMED_OBJ=$(grep 'msg=request method=GET' "$W/origin.log" | tail -n +$((WARM_REQS + 1)) | grep -c 'path=/objects/' || true)
LOCAL=$(median <"$W/local.times")
REMOTE_S=$(median <"$W/remote.times")
RATIO=$(echo "scale=2; $REMOTE_S / $LOCAL" | bc)
OK=$(echo "$RATIO <= $TARGET_X" | bc)
VERDICT=$([ "$OK" = 1 ] && echo "met" || echo "MISSED")
CACHED=$(find "$W/cache/objects" -type f | wc -l)

{
	echo "## Remote read, warm local cache (x@$NEWEST, page caches cold, median of $REPEATS)"
	echo
	echo "| read every file (tar) | seconds | requests to the origin |"
	echo "|---|---|---|"
	echo "| local store file | $LOCAL | |"
	echo "| mount -s http://… (serve http on loopback), warm cache | $REMOTE_S | $((TOTAL_REQS - WARM_REQS)) in $REPEATS runs, $TIMED_OBJ for objects |"
	echo
	echo "Warm-cache / local: ${RATIO}x (target <= ${TARGET_X}x: $VERDICT). Warming took $WARM_REQS requests; the cache holds $CACHED objects."
	echo "Runs: local $(tr '\n' ' ' <"$W/local.times"); remote $(tr '\n' ' ' <"$W/remote.times")"
} | tee "$OUT/remote-results.md"
