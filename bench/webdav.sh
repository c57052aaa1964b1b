#!/usr/bin/env bash
# bench/webdav.sh -- `spraydryfs serve webdav` against golang.org/x/net/webdav
# serving the same files from a plain directory (webdav.Dir, bench/davplain),
# side by side in one run.
#
# Run from the repository root after `make build` (`make bench` does both):
#   bash bench/webdav.sh
# Environment:
#   BENCH_OUT       work directory (default bench/out/webdav; emptied first)
#   SPRAYDRYFS_BIN  binary to measure (default bin/spraydryfs)
#
# Measures (targets from issue 4):
#   GET of a 1 GiB file with curl, MB/s, best of 3     (>= 0.8x plain)
#   PROPFIND Depth 1 of a 10,000-entry directory, s,
#     median of 5, the properties rclone asks for       (<= 2x plain)
#   50 concurrent curl clients fetching 1,000 small files
#     (20 each, keep-alive), on freshly started servers: errors and server
#     peak RSS (VmHWM)                                   (0 errors, <= 300 MB)
# Results: a table on stdout and in $BENCH_OUT/results.md. MB = 10^6 bytes.
set -euo pipefail

OUT=$(realpath -m "${BENCH_OUT:-bench/out/webdav}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "bench/webdav: $*" >&2; exit 1; }
log() { echo "bench/webdav: $*" >&2; }
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
case $OUT in
/ | "$HOME" | "$PWD") die "refusing to empty BENCH_OUT=$OUT" ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT/src/big" "$OUT/src/many" "$OUT/src/small"
go build -o "$OUT/davplain" ./bench/davplain

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

log "building the data set (1 GiB file, 10,000 + 1,000 small files)"
head -c $((1 << 30)) /dev/urandom >"$OUT/src/big/1g.bin"
python3 - "$OUT/src" <<'EOF'
import os, sys
src = sys.argv[1]
for i in range(10000):
    with open(f"{src}/many/entry-{i:05d}.txt", "w") as f:
        f.write(f"entry {i}\n" * (1 + i % 50))
for i in range(1000):
    with open(f"{src}/small/f{i:04d}.txt", "w") as f:
        f.write((f"small file {i} " * 300)[: 1000 + (i * 37) % 9000])
EOF
log "ingesting"
"$BIN" -s "$OUT/store.sdfs" ingest b@1 "$OUT/src" >&2

# start NAME CMD...: start a server printing its URL on stdout; sets URL and PID.
start() {
	local name=$1
	shift
	"$@" >"$OUT/$name.url" 2>"$OUT/$name.log" &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 100); do
		[ -s "$OUT/$name.url" ] && break
		sleep 0.05
	done
	URL=$(head -n1 "$OUT/$name.url")
	[ -n "$URL" ] || die "$name did not start: $(cat "$OUT/$name.log")"
}
start sdfs "$BIN" -s "$OUT/store.sdfs" serve webdav -q --listen 127.0.0.1:0 b@1
SDFS_URL=$URL SDFS_PID=$PID
start plain "$OUT/davplain" -listen 127.0.0.1:0 "$OUT/src"
PLAIN_URL=$URL PLAIN_PID=$PID

# get_mbs URL: best of 3 curl GETs of the 1 GiB file, MB/s.
get_mbs() {
	local best=0 s
	for _ in 1 2 3; do
		s=$(curl -sS --fail -o /dev/null -w '%{speed_download}' "$1big/1g.bin")
		best=$(python3 -c "print(max($best, $s))")
	done
	python3 -c "print(f'{$best / 1e6:.0f}')"
}

PROPS='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:getlastmodified/><D:getcontentlength/><D:resourcetype/><D:getcontenttype/><D:getetag/></D:prop></D:propfind>'
# propfind_s URL: median of 5 PROPFIND Depth 1 of many/, seconds; checks
# that every entry is there.
propfind_s() {
	local n
	n=$(curl -sS --fail -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' --data "$PROPS" "$1many/" | grep -o '<D:response>' | wc -l)
	[ "$n" -eq 10001 ] || die "PROPFIND of $1many/ gave $n responses, want 10001"
	for _ in 1 2 3 4 5; do
		curl -sS --fail -o /dev/null -w '%{time_total}\n' -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' --data "$PROPS" "$1many/"
	done | sort -n | sed -n 3p
}

# concurrent URL: 50 curl clients, 20 files each; prints the number of
# failed fetches.
concurrent() {
	local c i args
	for c in $(seq 0 49); do
		args=()
		for i in $(seq 0 19); do
			args+=("$1small/$(printf 'f%04d.txt' $((c * 20 + i)))" -o /dev/null)
		done
		curl -sS -w '%{http_code}\n' "${args[@]}" >"$OUT/conc.$c" 2>&1 &
	done
	wait_clients
	cat "$OUT"/conc.* | grep -cv '^200$' || true
}
wait_clients() {
	local j
	for j in $(jobs -p); do
		case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" || true ;; esac
	done
}
rss_mb() { awk '/VmHWM/ {printf "%.0f", $2 * 1024 / 1e6}' "/proc/$1/status"; }
# anon_mb PID: the anonymous part of the current RSS (the heap; the rest is
# the store file mapped by SQLite, i.e. page cache).
anon_mb() { awk '/RssAnon/ {printf "%.0f", $2 * 1024 / 1e6}' "/proc/$1/status"; }

log "GET 1 GiB"
get_s=$(get_mbs "$SDFS_URL")
get_p=$(get_mbs "$PLAIN_URL")
# The backend's own ceiling: the same file through `spraydryfs cat`.
t0=$(date +%s.%N)
"$BIN" -s "$OUT/store.sdfs" cat b@1/big/1g.bin >/dev/null
t1=$(date +%s.%N)
cat_s=$(python3 -c "print(f'{(1 << 30) / ($t1 - $t0) / 1e6:.0f}')")
log "PROPFIND Depth 1, 10,000 entries"
pf_s=$(propfind_s "$SDFS_URL")
pf_p=$(propfind_s "$PLAIN_URL")
getrss_s=$(rss_mb "$SDFS_PID")
getrss_p=$(rss_mb "$PLAIN_PID")
getanon_s=$(anon_mb "$SDFS_PID")
getanon_p=$(anon_mb "$PLAIN_PID")
# Fresh servers for the concurrent clients, so that their peak RSS is
# theirs alone (the GETs above leave SQLite's mmap of the store resident).
kill "$SDFS_PID" "$PLAIN_PID"
wait "$SDFS_PID" "$PLAIN_PID" 2>/dev/null || true
rm -f "$OUT"/*.url
start sdfs "$BIN" -s "$OUT/store.sdfs" serve webdav -q --listen 127.0.0.1:0 b@1
SDFS_URL=$URL SDFS_PID=$PID
start plain "$OUT/davplain" -listen 127.0.0.1:0 "$OUT/src"
PLAIN_URL=$URL PLAIN_PID=$PID
log "50 clients x 20 small files"
t0=$(date +%s.%N)
err_s=$(concurrent "$SDFS_URL")
t1=$(date +%s.%N)
err_p=$(concurrent "$PLAIN_URL")
t2=$(date +%s.%N)
rss_s=$(rss_mb "$SDFS_PID")
rss_p=$(rss_mb "$PLAIN_PID")
load=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$OUT/results.md" <<EOF
import sys
get_s, get_p = $get_s, $get_p
pf_s, pf_p = $pf_s, $pf_p
conc_s, conc_p = $t1 - $t0, $t2 - $t1
rows = [
    ("GET 1 GiB (MB/s, best of 3)", f"{get_s:.0f}", f"{get_p:.0f}", f"{get_s / get_p:.2f}x", ">= 0.8x", get_s >= 0.8 * get_p),
    ("  spraydryfs cat of the same file, no HTTP (MB/s)", "$cat_s", "", f"{get_s / $cat_s:.2f}x of cat", "", True),
    ("PROPFIND Depth 1, 10,000 entries (s, median of 5)", f"{pf_s:.3f}", f"{pf_p:.3f}", f"{pf_s / pf_p:.2f}x", "<= 2x", pf_s <= 2 * pf_p),
    ("50 clients x 20 small files: failures", "$err_s", "$err_p", "", "0", $err_s == 0),
    ("50 clients x 20 small files: wall (s)", f"{conc_s:.2f}", f"{conc_p:.2f}", f"{conc_s / conc_p:.2f}x", "", True),
    ("50 clients x 20 small files: server peak RSS (MB)", "$rss_s", "$rss_p", "", "<= 300", $rss_s <= 300),
    ("peak RSS after the 1 GiB GETs (MB)", "$getrss_s", "$getrss_p", "", "", True),
    ("  of which anonymous at the end (MB; the rest is the mmapped store)", "$getanon_s", "$getanon_p", "", "", True),
]
out = ["| measure | spraydryfs | webdav.Dir | ratio | target | ok |", "|---|---:|---:|---:|---:|:-:|"]
for r in rows:
    out.append("| " + " | ".join(r[:5]) + " | " + ("yes" if r[5] else "NO") + " |")
out.append("")
out.append("load average at the end: $load; $(nproc) CPUs")
text = "\n".join(out)
print(text)
open(sys.argv[1], "w").write(text + "\n")
# Missed targets are reported in the table, not as a failure of make bench.
EOF
