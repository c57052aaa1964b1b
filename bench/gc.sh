#!/usr/bin/env bash
# bench/gc.sh -- garbage collection on the gomod corpus (issue 14), side by
# side in one run: ingest all 10 versions, remove v1..v5 and collect, with
# spraydryfs (gc, then gc --compact), restic (forget --prune) and borg
# (delete + compact), and compare each with a fresh repository of v6..v10.
#
# Run from the repository root after `make build` (`make bench` does both):
#   bash bench/gc.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default /var/tmp/spraydryfs-corpus)
#   BENCH_OUT          work and result directory (default bench/out/gc; emptied first)
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#
# While spraydryfs collects, a reader fetches random files of the remaining
# versions through `serve webdav` back to back and records the longest
# fetch (the longest pause a reader sees), against the longest before gc.
# The reader shares the cores, so gc's wall time beside restic and borg
# (which run alone) is also taken on a copy without readers.
# Sizes are MiB = 2^20 B; repository sizes are `du -sb` of the store file
# (with its -wal) or the repository directory. restic and borg come from
# Debian (apt-get install restic borgbackup), unencrypted where they allow.
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out/gc}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
[ -d "$CORPUS/versions" ] || die "no corpus at $CORPUS/versions"
case $OUT in / | "$HOME" | "$PWD") die "refusing to empty BENCH_OUT=$OUT" ;; esac
rm -rf "$OUT" && mkdir -p "$OUT"
for tool in restic borg curl python3; do
	command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup curl >/dev/null 2>&1 || true
	command -v $tool >/dev/null || die "$tool is required (apt-get install restic borgbackup curl)"
done
mapfile -t VERS < <(ls "$CORPUS/versions" | sort -V)
[ ${#VERS[@]} -eq 10 ] || die "want 10 versions in $CORPUS/versions, found ${#VERS[@]}"
OLD=("${VERS[@]:0:5}")
NEW=("${VERS[@]:5:5}")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

mib() { python3 -c "print(f'{$1 / 2**20:.1f}')"; }
size() { { du -sb "$@" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'; }
# timed FILE CMD...: run CMD, append its wall seconds to FILE.
timed() {
	local f=$1
	shift
	/usr/bin/time -f %e -o "$f.t" "$@" >"$f.out" 2>"$f.err" || { cat "$f.err" >&2; die "$* failed"; }
	cat "$f.t" >"$f"
}

log "load: $(uptime)"
# --- spraydryfs ---------------------------------------------------------
S=$OUT/s.sdfs
F=$OUT/fresh.sdfs
log "spraydryfs: ingesting 10 versions, and v6..v10 into a fresh store"
for v in "${VERS[@]}"; do "$BIN" -s "$S" ingest "g@$v" "$CORPUS/versions/$v" >/dev/null; done
for v in "${NEW[@]}"; do "$BIN" -s "$F" ingest "g@$v" "$CORPUS/versions/$v" >/dev/null; done
S_BEFORE=$(size "$S" "$S-wal")
S_FRESH=$(size "$F" "$F-wal")

"$BIN" -s "$S" serve webdav -q --listen 127.0.0.1:0 >"$OUT/dav.url" 2>"$OUT/dav.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$OUT/dav.url" ] && break; sleep 0.05; done
URL=$(head -n1 "$OUT/dav.url")
[ -n "$URL" ] || die "webdav did not start: $(cat "$OUT/dav.log")"
(cd "$CORPUS/versions" && for v in "${NEW[@]}"; do find "$v" -type f -size -2M; done) >"$OUT/files"

# reader SECONDS-or-STOPFILE OUT: fetch random files back to back until
# STOPFILE exists; write the longest fetch (s) and the fetch count.
reader() {
	python3 - "$URL" "$OUT/files" "$1" "$2" <<'EOF'
import random, sys, time, os, urllib.request, urllib.parse
url, files, stop, out = sys.argv[1:]
paths = open(files).read().split("\n")[:-1]
rnd = random.Random(1)
worst, n, errors = 0.0, 0, 0
while not os.path.exists(stop):
    p = rnd.choice(paths)
    ver, rest = p.split("/", 1)
    t = time.monotonic()
    try:
        urllib.request.urlopen(url + "g/" + urllib.parse.quote(ver) + "/" + urllib.parse.quote(rest)).read()
    except Exception as e:
        errors += 1
        print("reader:", p, e, file=sys.stderr)
    worst = max(worst, time.monotonic() - t)
    n += 1
open(out, "w").write(f"{worst:.3f} {n} {errors}\n")
EOF
}
log "spraydryfs: reader baseline (10 s)"
( sleep 10; touch "$OUT/stop.base" ) &
reader "$OUT/stop.base" "$OUT/reader.base"

rm_args=()
for v in "${OLD[@]}"; do rm_args+=("g@$v"); done
timed "$OUT/sdfs.rm" "$BIN" -s "$S" rm "${rm_args[@]}"
K=$OUT/keep.sdfs  # the same store for gc --keep-refs
Q=$OUT/quiet.sdfs # and for gc without readers
for c in "$K" "$Q"; do
	cp "$S" "$c"
	if [ -f "$S-wal" ]; then cp "$S-wal" "$c-wal"; fi
done
reader "$OUT/stop.gc" "$OUT/reader.gc" &
RPID=$!
sleep 1
log "spraydryfs: gc"
timed "$OUT/sdfs.gc" "$BIN" -s "$S" gc
sleep 1
touch "$OUT/stop.gc"
wait $RPID
S_GC=$(size "$S" "$S-wal")
reader "$OUT/stop.compact" "$OUT/reader.compact" &
RPID=$!
sleep 1
log "spraydryfs: gc --compact"
timed "$OUT/sdfs.compact" "$BIN" -s "$S" gc --compact
sleep 1
touch "$OUT/stop.compact"
wait $RPID
S_COMPACT=$(size "$S" "$S-wal")
"$BIN" -s "$S" check --read-data >/dev/null || die "check --read-data failed after gc"
log "spraydryfs: gc --keep-refs (on a copy, without readers)"
timed "$OUT/sdfs.keep" "$BIN" -s "$K" gc --keep-refs
K_GC=$(size "$K" "$K-wal")
log "spraydryfs: gc (on a copy, without readers)"
timed "$OUT/sdfs.quiet" "$BIN" -s "$Q" gc
Q_GC=$(size "$Q" "$Q-wal")
S_FREED=$(grep -o 'freed [0-9.]* [KMG]iB' "$OUT/sdfs.gc.out" | head -1)

# --- restic --------------------------------------------------------------
export RESTIC_PASSWORD=bench
R=$OUT/restic
RF=$OUT/restic-fresh
log "restic: backing up 10 versions, and v6..v10 into a fresh repository"
restic init -q -r "$R" >/dev/null
restic init -q -r "$RF" >/dev/null
for v in "${VERS[@]}"; do (cd "$CORPUS/versions" && restic -q -r "$R" backup --tag "$v" "$v" >/dev/null); done
for v in "${NEW[@]}"; do (cd "$CORPUS/versions" && restic -q -r "$RF" backup --tag "$v" "$v" >/dev/null); done
R_BEFORE=$(size "$R")
R_FRESH=$(size "$RF")
log "restic: forget --group-by '' --keep-last 5 --prune"
timed "$OUT/restic.prune" restic -r "$R" forget --group-by "" --keep-last 5 --prune
R_AFTER=$(size "$R")

# --- borg ----------------------------------------------------------------
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
B=$OUT/borg
BF=$OUT/borg-fresh
log "borg: creating 10 archives, and v6..v10 in a fresh repository"
borg init -e none "$B" >/dev/null 2>&1
borg init -e none "$BF" >/dev/null 2>&1
for v in "${VERS[@]}"; do (cd "$CORPUS/versions" && borg create "$B::$v" "$v"); done
for v in "${NEW[@]}"; do (cd "$CORPUS/versions" && borg create "$BF::$v" "$v"); done
B_BEFORE=$(size "$B")
B_FRESH=$(size "$BF")
log "borg: delete v1..v5, compact"
start=$(date +%s.%N)
for v in "${OLD[@]}"; do borg delete "$B::$v"; done
timed "$OUT/borg.compact" borg compact "$B"
B_TIME=$(python3 -c "import time; print(f'{$(date +%s.%N) - $start:.2f}')")
B_AFTER=$(size "$B")

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
# withrm FILE: the wall seconds in FILE plus rm's.
withrm() { python3 -c "print(f'{$(cat "$1") + $(cat "$OUT/sdfs.rm"):.2f}')"; }
read -r BASE_W BASE_N _ <"$OUT/reader.base"
read -r GC_W GC_N GC_E <"$OUT/reader.gc"
read -r CO_W CO_N CO_E <"$OUT/reader.compact"
{
	echo "gc on the gomod corpus (10 versions, remove the 5 oldest); load: $(uptime | sed 's/.*load average: //')"
	echo
	echo "| tool | remove + collect wall s | size before MiB | after MiB | fresh v6..v10 MiB | after / fresh |"
	echo "|---|---|---|---|---|---|"
	echo "| spraydryfs rm + gc, a WebDAV reader fetching throughout | $(withrm "$OUT/sdfs.gc") | $(mib "$S_BEFORE") | $(mib "$S_GC") | $(mib "$S_FRESH") | $(ratio "$S_GC" "$S_FRESH") |"
	echo "| spraydryfs rm + gc, no readers | $(withrm "$OUT/sdfs.quiet") | $(mib "$S_BEFORE") | $(mib "$Q_GC") | $(mib "$S_FRESH") | $(ratio "$Q_GC" "$S_FRESH") |"
	echo "| spraydryfs rm + gc --keep-refs, no readers | $(withrm "$OUT/sdfs.keep") | $(mib "$S_BEFORE") | $(mib "$K_GC") | $(mib "$S_FRESH") | $(ratio "$K_GC" "$S_FRESH") |"
	echo "| spraydryfs gc --compact (after gc) | $(cat "$OUT/sdfs.compact") | $(mib "$S_GC") | $(mib "$S_COMPACT") | $(mib "$S_FRESH") | $(ratio "$S_COMPACT" "$S_FRESH") |"
	echo "| restic forget --keep-last 5 --prune (one group) | $(cat "$OUT/restic.prune") | $(mib "$R_BEFORE") | $(mib "$R_AFTER") | $(mib "$R_FRESH") | $(ratio "$R_AFTER" "$R_FRESH") |"
	echo "| borg delete x5 + compact | $B_TIME | $(mib "$B_BEFORE") | $(mib "$B_AFTER") | $(mib "$B_FRESH") | $(ratio "$B_AFTER" "$B_FRESH") |"
	echo
	echo "spraydryfs gc: $S_FREED of objects; longest WebDAV fetch: ${BASE_W} s before gc ($BASE_N fetches), ${GC_W} s during gc ($GC_N fetches, $GC_E errors), ${CO_W} s during gc --compact ($CO_N fetches, $CO_E errors)"
} | tee "$OUT/result.md"
