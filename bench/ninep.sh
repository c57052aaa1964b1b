#!/usr/bin/env bash
# bench/ninep.sh -- 9P read benchmark: `spraydryfs serve 9p` against diod
# (Debian) serving the same files, read by the Linux v9fs client in a QEMU
# guest (TCG; kernel cached by integration/vm/prepare.sh), side by side in
# one run.
#
# Run from the repository root after `make build` (`make bench` does both):
#   bash bench/ninep.sh
# Environment:
#   BENCH_OUT       work and result directory (default bench/out/ninep; emptied first)
#   SPRAYDRYFS_BIN  binary to measure (default bin/spraydryfs)
#   NINEP_FILES     files in the tree (default 3000)
#   NINEP_BIG_MB    size of the big file in MiB (default 20)
# Needs (Debian, as root): qemu-system-x86 busybox-static cpio diod.
#
# Data: a tree of NINEP_FILES files (1-16 KiB, random, 30 directories) and
# one NINEP_BIG_MB MiB random file, in a plain directory for diod and
# ingested as bench@1 for spraydryfs. For each server and each cache mode
# (v9fs default cache=none, and cache=loose) one guest boots, mounts the
# tree and the big file (msize=1048576, ro) and times `md5sum` of every file
# twice: pass 1 is cold; pass 2 shows what the guest's cache keeps. Times
# are the guest's (/proc/uptime), in seconds. Results: a table on stdout and
# $BENCH_OUT/results.md. Target (issue 5): ours <= diod's.
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

OUT=$(realpath -m "${BENCH_OUT:-bench/out/ninep}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
FILES=${NINEP_FILES:-3000}
BIG_MB=${NINEP_BIG_MB:-20}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
for tool in qemu-system-x86_64 busybox cpio diod; do
	command -v $tool >/dev/null || die "$tool not found (apt-get install qemu-system-x86 busybox-static cpio diod)"
done
case $OUT in
/ | "$HOME" | "$PWD") die "refusing to empty BENCH_OUT=$OUT" ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

log "making the data ($FILES files, $BIG_MB MiB file)"
data=$OUT/data
mkdir -p "$data/tree" "$data/big"
python3 - "$data/tree" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
r = random.Random(5)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 30))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(r.randbytes(r.randint(1024, 16384)))
PY
head -c $((BIG_MB << 20)) /dev/urandom >"$data/big/big.bin"
store=$OUT/bench.sdfs
"$BIN" -s "$store" ingest bench@1 "$data" >&2

kernel=$(bash integration/vm/prepare.sh "$OUT/initrd.gz")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BIN" -s "$store" serve 9p --listen 127.0.0.1:0 bench@1 >"$OUT/sdfs.addr" 2>"$OUT/sdfs.log" &
pids+=($!)
dport=$(free_port)
diod -f -n -l 127.0.0.1:$dport -e "$data/tree" -e "$data/big" -o ro -L stderr -c /dev/null 2>"$OUT/diod.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$OUT/sdfs.addr" ] && break; sleep 0.1; done
sport=$(cut -d: -f2 "$OUT/sdfs.addr")
[ -n "$sport" ] || die "serve 9p did not start: $(cat "$OUT/sdfs.log")"
sleep 0.5

# run NAME PORT ANAME_TREE ANAME_BIG OPTS: boot a guest, print its TIME lines.
run() {
	local name=$1 port=$2 tree=$3 big=$4 opts=$5 extra=""
	[ -n "$opts" ] && extra="sdfs.opts=$opts"
	timeout 900 qemu-system-x86_64 -M q35 -m 512 -accel tcg -cpu max -nodefaults -no-reboot -display none \
		-serial stdio -netdev user,id=n0 -device virtio-net-pci,netdev=n0 -kernel "$kernel" -initrd "$OUT/initrd.gz" \
		-append "console=ttyS0 quiet panic=-1 sdfs.port=$port sdfs.m=$tree sdfs.m=$big sdfs.job=bench $extra" \
		>"$OUT/guest-$name.log" 2>&1 || true
	tr -d '\r' <"$OUT/guest-$name.log" | grep '^=== TIME' || { log "guest $name failed:"; tail -n 20 "$OUT/guest-$name.log" >&2; }
}

# secs NAME MOUNT PASS: the time of one pass from the guest's log.
secs() {
	tr -d '\r' <"$OUT/guest-$1.log" | awk -v m="$2" -v p="pass=$3" '$2 == "TIME" && $3 == m && $4 == p {
		split($6, a, "="); split($7, b, "="); split($5, rc, "=");
		if (rc[2] != 0) { print "error"; exit }
		printf "%.2f", b[2] - a[2]; exit }'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in none loose; do
	opts=""
	[ $mode = loose ] && opts=cache=loose
	log "spraydryfs, cache=$mode"
	run sdfs-$mode "$sport" "bench@1/tree" "bench@1/big" "$opts" >&2
	log "diod, cache=$mode"
	run diod-$mode "$dport" "$data/tree" "$data/big" "$opts" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "9P md5sum of every file in a QEMU/TCG Linux 6.1 guest, seconds (pass 1 cold, pass 2 again)"
	echo "load average before: $load_before; after: $load_after ($(nproc) cores)"
	echo
	printf '| %-28s | %12s | %12s | %12s | %12s |\n' "workload (cache)" "sdfs pass 1" "diod pass 1" "sdfs pass 2" "diod pass 2"
	printf '|%s|%s|%s|%s|%s|\n' ------------------------------ -------------- -------------- -------------- --------------
	for mode in none loose; do
		for m in 0 1; do
			w="$FILES-file tree"
			[ $m = 1 ] && w="$BIG_MB MiB file"
			printf '| %-28s | %12s | %12s | %12s | %12s |\n' "$w ($mode)" \
				"$(secs sdfs-$mode $m 1)" "$(secs diod-$mode $m 1)" "$(secs sdfs-$mode $m 2)" "$(secs diod-$mode $m 2)"
		done
	done
} | tee "$OUT/results.md"
grep -q "level=ERROR" "$OUT/sdfs.log" && { log "spraydryfs logged errors:"; cat "$OUT/sdfs.log" >&2; exit 1; }
exit 0
