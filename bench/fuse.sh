#!/usr/bin/env bash
# bench/fuse.sh -- FUSE read benchmark: `spraydryfs mount` against
# squashfuse_ll on a `mksquashfs -comp zstd` image of the same folder and
# against the plain folder on disk, side by side on the same machine in one run.
#
# Run from the repository root after `make build` (`make bench` runs it after
# bench/run.sh). Needs root (drop_caches, mounts through /dev/fuse).
#   bash bench/fuse.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default
#                      /var/tmp/spraydryfs-corpus, as for bench/run.sh)
#   BENCH_OUT          result directory (default bench/out). Work goes to
#                      $BENCH_OUT/fuse (emptied first, except the generated
#                      1 GiB file and squashfs images, which are reused when
#                      their stamp matches); nothing else there is touched.
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#   BENCH_PROFILE=1    each of our mounts writes a CPU profile to
#                      $BENCH_OUT/fuse/mount.<phase>.prof
#
# The trees: our mount is the namespace view of a store holding x@v1..x@vN
# (one per corpus version, as bench/run.sh ingests them; its store is copied
# when valid, else one is ingested here) plus big@1, a deterministic 1 GiB
# file (half pseudo-random, half corpus text with unique marker lines, so it
# is partly compressible and does not dedup); measured at MOUNT/x. squashfuse_ll
# mounts an image of versions/ (bench/run.sh's $BENCH_OUT/img when present,
# else one built here) and a second image of the 1 GiB file; plain is
# versions/ itself and the 1 GiB file on disk.
#
# Measurements, per tree: `find . | wc -l` cold, `ls -lR` warm, `tar cf - . |
# wc -c` (reads every file) cold and warm, `dd bs=1M` of the 1 GiB file cold
# and warm, and the mount processes' VmRSS after all reads. Warm = the same
# command right after a first run, median of 3 repeats. Cold = `sync; echo 3
# > /proc/sys/vm/drop_caches` after a fresh mount, so neither the kernel's
# caches nor the FUSE server's own caches hold anything. Then our mount again with --readdirplus=false (READDIRPLUS is on by default): find cold, ls -lR warm.
# Results: a table on stdout, $BENCH_OUT/fuse-results.md and .json.
# Sizes and RSS in MB = 10^6 bytes, rates in GB/s = 10^9 bytes/s.
set -euo pipefail

# Targets (issue): ls -lR warm and read-all warm <= 2x plain disk; read-all
# cold <= 1/3 of squashfuse_ll's; 1 GiB sequential warm >= 1.5 GB/s; mount RSS
# after reading everything <= 300 MB.
TARGET_WARM_X=2
TARGET_COLD_DIV=3
TARGET_DD_GBS=1.5
TARGET_RSS_MB=300
BIG_MIB=1024
GEN_STAMP="gen-v1 ${BIG_MIB}MiB aes-128-ctr/fixed-key + text/64-line markers"

die() { echo "bench-fuse: $*" >&2; exit 1; }
log() { echo "bench-fuse: $*" >&2; }

CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
# Not runnable here: say so and let `make bench` go on.
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
	log "SKIPPED: needs root and /dev/fuse (drop_caches, FUSE mounts)"
	exit 0
fi
[ -d "$CORPUS/versions" ] || die "no corpus at $CORPUS/versions (run bench/run.sh first, or set SPRAYDRYFS_CORPUS)"
FOUT=$OUT/fuse
case $FOUT in
/ | "$HOME" | "$PWD") die "refusing to use $FOUT" ;;
esac
mkdir -p "$FOUT"
# A previous run killed hard may have left its mounts: detach them first.
for m in "$FOUT"/mnt/*; do
	if awk -v m="$m" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; then
		umount -l "$m" || die "cannot unmount stale $m"
	fi
done
# Keep the expensive reusable inputs; empty the rest.
find "$FOUT" -mindepth 1 -maxdepth 1 ! -name bigdir ! -name 'big.*' ! -name 'versions.sqfs*' ! -name mnt -exec rm -rf {} +
MNT_SD=$FOUT/mnt/sd MNT_SQ=$FOUT/mnt/sq MNT_SQB=$FOUT/mnt/sqbig
mkdir -p "$MNT_SD" "$MNT_SQ" "$MNT_SQB" "$FOUT/bigdir"
STORE=$FOUT/store.sdfs
BIG=$FOUT/bigdir/big.bin
LOGF=$FOUT/log

# ---- tools -----------------------------------------------------------------
install_missing() {
	[ $# -gt 0 ] || return 0
	log "installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >>"$FOUT/apt.log" 2>&1 && return 0
	apt-get update -qq >>"$FOUT/apt.log" 2>&1 && apt-get install -y -qq "$@" >>"$FOUT/apt.log" 2>&1
}
missing=()
command -v mksquashfs >/dev/null 2>&1 || missing+=(squashfs-tools)
command -v squashfuse_ll >/dev/null 2>&1 || missing+=(squashfuse)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
	install_missing "${missing[@]}" || die "apt-get install ${missing[*]} failed (see $FOUT/apt.log)"
fi
for t in mksquashfs unsquashfs squashfuse_ll openssl perl tar dd; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found"
done

# ---- helpers ---------------------------------------------------------------
calc() {
	local f=$1 e=$2 args=()
	shift 2
	for kv in "$@"; do args+=(-v "$kv"); done
	awk "${args[@]}" "BEGIN { printf \"$f\", ($e) }"
}
mb() { calc '%.1f' 'b/1e6' "b=$1"; }
kmb() { calc '%.1f' 'k*1024/1e6' "k=$1"; }
now() { date +%s.%N; }

CACHE_NOTE="cold = sync; echo 3 > /proc/sys/vm/drop_caches after a fresh mount (kernel and FUSE-server caches empty)"
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		CACHE_NOTE="page caches could NOT be dropped: cold numbers are not cold"
	fi
}

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

# wait_mounted MNT PID : poll /proc/self/mounts until MNT appears (30 s).
wait_mounted() {
	local mnt=$1 pid=$2 i
	for ((i = 0; i < 600; i++)); do
		is_mounted "$mnt" && return 0
		kill -0 "$pid" 2>/dev/null || die "mount process for $mnt exited: $(tail -n 3 "$LOGF")"
		sleep 0.05
	done
	die "$mnt did not appear in /proc/self/mounts within 30 s"
}

# stop_mount MNT PID : SIGTERM the server (both ours and libfuse unmount on
# it), wait for it to exit; lazy unmount and SIGKILL if it does not.
stop_mount() {
	local mnt=$1 pid=$2 i
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "server $pid for $mnt ignored SIGTERM: umount -l, SIGKILL"
			umount -l "$mnt" 2>/dev/null || true
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if is_mounted "$mnt"; then
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
}

SD_PID="" SQ_PID="" SQB_PID=""
cleanup() {
	stop_mount "$MNT_SD" "$SD_PID"
	stop_mount "$MNT_SQ" "$SQ_PID"
	stop_mount "$MNT_SQB" "$SQB_PID"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sd_mount PHASE [FLAG...] : our namespace mount at MNT_SD.
sd_mount() {
	local phase=$1
	shift
	stop_mount "$MNT_SD" "$SD_PID"

	if [ "${BENCH_PROFILE:-}" = 1 ]; then
		SPRAYDRYFS_CPUPROFILE=$FOUT/mount.$phase.prof "$BIN" -s "$STORE" mount "$@" "$MNT_SD" >>"$LOGF" 2>&1 &
	else
		"$BIN" -s "$STORE" mount "$@" "$MNT_SD" >>"$LOGF" 2>&1 &
	fi
	SD_PID=$!
	wait_mounted "$MNT_SD" "$SD_PID"
}
sq_mount() {
	stop_mount "$MNT_SQ" "$SQ_PID"
	squashfuse_ll -f "$SQ_IMG" "$MNT_SQ" >>"$LOGF" 2>&1 &
	SQ_PID=$!
	wait_mounted "$MNT_SQ" "$SQ_PID"
}
sqb_mount() {
	stop_mount "$MNT_SQB" "$SQB_PID"
	squashfuse_ll -f "$FOUT/big.sqfs" "$MNT_SQB" >>"$LOGF" 2>&1 &
	SQB_PID=$!
	wait_mounted "$MNT_SQB" "$SQB_PID"
}

# measure KEY DIR CMD : run CMD (bash, pipefail) in DIR; sets M[KEY] to the
# wall seconds and V[KEY] to CMD's trimmed stdout, or "fail".
declare -A M V
measure() {
	local key=$1 dir=$2 cmd=$3 t0 t1 out rc=0
	t0=$(now)
	out=$(cd "$dir" && bash -o pipefail -c "$cmd" 2>>"$FOUT/cmd.err") || rc=$?
	t1=$(now)
	if [ "$rc" -ne 0 ]; then
		log "  $key: '$cmd' in $dir failed (exit $rc; see $FOUT/cmd.err)"
		M[$key]=fail V[$key]=fail
		return 0
	fi
	M[$key]=$(calc '%.3f' 'b-a' "a=$t0" "b=$t1")
	V[$key]=$(echo "$out" | tr -d ' \n')
	log "  $key: ${M[$key]} s (${V[$key]})"
}

# dd_rate KEY FILE : time a dd of FILE; M[KEY] = GB/s, V[KEY] = seconds.
dd_rate() {
	local key=$1 file=$2
	measure "$key" / "dd if='$file' of=/dev/null bs=1M 2>/dev/null; stat -c %s '$file'"
	if [ "${M[$key]}" != fail ]; then
		local s=${M[$key]}
		M[$key]=$(calc '%.2f' 'b/1e9/s' "b=${V[$key]}" "s=$s")
		V[$key]=$s
	fi
}
# measure3 KEY DIR CMD : measure three times; M[KEY] is the median time,
# R[KEY] the three times (a warm measurement, so repeats are cheap and the
# median damps other load on the machine).
declare -A R
measure3() {
	local key=$1 r=() i
	for i in 1 2 3; do
		measure "$key.$i" "$2" "$3"
		r+=("${M[$key.$i]}")
	done
	V[$key]=${V[$key.3]}
	R[$key]="${r[*]}"
	if [[ " ${r[*]} " == *" fail "* ]]; then
		M[$key]=fail
	else
		M[$key]=$(printf '%s\n' "${r[@]}" | sort -g | sed -n 2p)
	fi
}
# dd_warm KEY FILE : median of 3 warm dd runs (GB/s).
dd_warm() {
	local key=$1 file=$2 r=() i
	for i in 1 2 3; do
		dd_rate "$key.$i" "$file"
		r+=("${M[$key.$i]}")
	done
	if [[ " ${r[*]} " == *" fail "* ]]; then
		M[$key]=fail
	else
		M[$key]=$(printf '%s\n' "${r[@]}" | sort -g | sed -n 2p)
	fi
	V[$key]="${r[*]}"
}

# rss PID : "VmRSS VmHWM RssAnon RssFile" in KiB. RssFile counts every
# mapping of a file page again (e.g. one per mmap of the same file).
rss() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { print r + 0, h + 0, a + 0, f + 0 }' "/proc/$1/status"; }

# ---- inputs ----------------------------------------------------------------
mapfile -t VERSIONS < <(find "$CORPUS/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
NV=${#VERSIONS[@]}
[ "$NV" -gt 0 ] || die "no version directories in $CORPUS/versions"
LAST=${VERSIONS[NV - 1]}
CORPUS_FILES=$(find "$CORPUS/versions" -type f | wc -l)
CORPUS_BYTES=$(find "$CORPUS/versions" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
CORPUS_STAMP="$CORPUS $NV $CORPUS_FILES $CORPUS_BYTES"
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
HOST_NOTE="$(nproc) cores ($CPU_MODEL), $(awk '/^MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || REV="$REV+dirty"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(now)
log "corpus $CORPUS: $NV versions, $CORPUS_FILES files, $(mb "$CORPUS_BYTES") MB; work in $FOUT"

# The 1 GiB file: 1 MiB blocks alternating between an AES-CTR keystream
# (incompressible, deterministic) and the newest version's text files in
# name order with a numbered marker line every 64 lines (so no chunk repeats).
if [ "$(cat "$FOUT/big.stamp" 2>/dev/null)" = "$GEN_STAMP $CORPUS_STAMP" ] &&
	[ "$(stat -c %s "$BIG" 2>/dev/null)" = $((BIG_MIB << 20)) ]; then
	log "reusing $BIG"
else
	log "generating $BIG ($BIG_MIB MiB)"
	rm -f "$FOUT/big.stamp" "$FOUT/big.sqfs" "$FOUT/big.sqfs.stamp"
	(cd "$CORPUS/versions/$LAST" && find . -type f -size +0 -size -1048576c | LC_ALL=C sort) >"$FOUT/big.files"
	head -c $((BIG_MIB << 19)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 |
		perl -e '
			use strict; use warnings;
			my ($dir, $list, $n) = @ARGV; my $mib = 1 << 20;
			open(my $l, "<", $list) or die "$list: $!";
			chomp(my @files = <$l>); close $l; @files or die "no text files";
			binmode STDIN; binmode STDOUT;
			my ($fi, $line, $text) = (0, 0, "");
			for my $i (0 .. $n - 1) {
				if ($i % 2 == 0) {
					my $buf = "";
					while (length($buf) < $mib) {
						my $r = read(STDIN, $buf, $mib - length($buf), length($buf));
						die "short keystream" unless $r;
					}
					print $buf;
					next;
				}
				while (length($text) < $mib) {
					die "no text in the files" if $fi > @files && $line == 0;
					open(my $f, "<", "$dir/" . $files[$fi++ % @files]) or die $!;
					binmode $f;
					while (defined(my $s = <$f>)) {
						$text .= $s;
						$text .= "// spraydryfs bench marker " . $line . "\n" if ++$line % 64 == 0;
					}
					close $f;
				}
				print substr($text, 0, $mib, "");
			}' "$CORPUS/versions/$LAST" "$FOUT/big.files" "$BIG_MIB" >"$BIG"
	[ "$(stat -c %s "$BIG")" = $((BIG_MIB << 20)) ] || die "generated $BIG has the wrong size"
	echo "$GEN_STAMP $CORPUS_STAMP" >"$FOUT/big.stamp"
fi
BIG_BYTES=$(stat -c %s "$BIG")

# squashfs images: versions/ (bench/run.sh's if it left one) and the big file.
SQ_IMG=""
if [ -s "$OUT/img" ] && unsquashfs -s "$OUT/img" >/dev/null 2>&1; then
	SQ_IMG=$OUT/img
	SQ_IMG_NOTE="bench/run.sh's image $OUT/img"
elif [ "$(cat "$FOUT/versions.sqfs.stamp" 2>/dev/null)" = "$CORPUS_STAMP" ] && [ -s "$FOUT/versions.sqfs" ]; then
	SQ_IMG=$FOUT/versions.sqfs
	SQ_IMG_NOTE="reused $SQ_IMG"
else
	log "mksquashfs -comp zstd of versions/ (about a minute)"
	rm -f "$FOUT/versions.sqfs.stamp"
	mksquashfs "$CORPUS/versions" "$FOUT/versions.sqfs" -comp zstd -noappend -quiet -no-progress >"$FOUT/mksquashfs.log" 2>&1 ||
		die "mksquashfs failed: $(tail -n 2 "$FOUT/mksquashfs.log")"
	echo "$CORPUS_STAMP" >"$FOUT/versions.sqfs.stamp"
	SQ_IMG=$FOUT/versions.sqfs
	SQ_IMG_NOTE="built here"
fi
if [ "$(cat "$FOUT/big.sqfs.stamp" 2>/dev/null)" = "$(cat "$FOUT/big.stamp")" ] && [ -s "$FOUT/big.sqfs" ]; then
	log "reusing $FOUT/big.sqfs"
else
	log "mksquashfs -comp zstd of the 1 GiB file"
	mksquashfs "$FOUT/bigdir" "$FOUT/big.sqfs" -comp zstd -noappend -quiet -no-progress >"$FOUT/mksquashfs.big.log" 2>&1 ||
		die "mksquashfs (big) failed: $(tail -n 2 "$FOUT/mksquashfs.big.log")"
	cp "$FOUT/big.stamp" "$FOUT/big.sqfs.stamp"
fi

# Our store: bench/run.sh's when it holds exactly x@v1..x@vN from this corpus
# (copied, so adding big@1 leaves it as run.sh measured it), else ingested here.
store_ok() { # STORE : x@v1..x@vN with the corpus' versions as sources
	"$BIN" -s "$1" roots --json 2>/dev/null | perl -MJSON::PP -e '
		my ($dir, @v) = @ARGV; local $/; my $r = decode_json(<STDIN>);
		my %src = map { $_->{name} eq "x" ? ($_->{version} => $_->{source}) : () } @$r;
		keys %src == @v or exit 1;
		for my $i (1 .. @v) { ($src{"v$i"} // "") eq "$dir/$v[$i-1]" or exit 1 }' "$CORPUS/versions" "${VERSIONS[@]}"
}
if [ -s "$OUT/store.sdfs" ] && store_ok "$OUT/store.sdfs"; then
	log "copying $OUT/store.sdfs"
	for f in "$OUT/store.sdfs" "$OUT/store.sdfs-wal"; do
		[ -e "$f" ] && cp "$f" "$FOUT/"
	done
	STORE_NOTE="copy of bench/run.sh's store + big@1"
else
	log "ingesting x@v1..x@v$NV into $STORE"
	for ((i = 1; i <= NV; i++)); do
		"$BIN" -s "$STORE" ingest "x@v$i" "$CORPUS/versions/${VERSIONS[i - 1]}" >>"$LOGF" 2>&1 ||
			die "ingest x@v$i failed: $(tail -n 2 "$LOGF")"
	done
	STORE_NOTE="ingested here + big@1"
fi
log "ingesting big@1"
t0=$(now)
"$BIN" -s "$STORE" ingest big@1 "$FOUT/bigdir" >>"$LOGF" 2>&1 || die "ingest big@1 failed: $(tail -n 2 "$LOGF")"
BIG_INGEST_S=$(calc '%.1f' 'b-a' "a=$t0" "b=$(now)")
STORE_BYTES=$(du -cb "$STORE"* | tail -n 1 | cut -f1)

# ---- 1. plain folder on disk -----------------------------------------------
P_TREE=$CORPUS/versions
log "plain: $P_TREE"
drop_caches
measure p.find "$P_TREE" 'find . | wc -l'
measure p.ls0 "$P_TREE" 'ls -lR . | wc -l'
measure3 p.ls "$P_TREE" 'ls -lR . | wc -l'
drop_caches
measure p.cold "$P_TREE" 'tar cf - . | wc -c'
measure3 p.warm "$P_TREE" 'tar cf - . | wc -c'
drop_caches
dd_rate p.ddcold "$BIG"
dd_warm p.ddwarm "$BIG"

# ---- 2. squashfuse_ll --------------------------------------------------------
log "squashfuse_ll: $SQ_IMG"
sq_mount
drop_caches
measure q.find "$MNT_SQ" 'find . | wc -l'
measure q.ls0 "$MNT_SQ" 'ls -lR . | wc -l'
measure3 q.ls "$MNT_SQ" 'ls -lR . | wc -l'
sq_mount # fresh process for the cold read
drop_caches
measure q.cold "$MNT_SQ" 'tar cf - . | wc -c'
measure3 q.warm "$MNT_SQ" 'tar cf - . | wc -c'
sqb_mount
drop_caches
dd_rate q.ddcold "$MNT_SQB/big.bin"
dd_warm q.ddwarm "$MNT_SQB/big.bin"
read -r Q_RSS Q_HWM Q_ANON Q_FILE < <(rss "$SQ_PID")
read -r QB_RSS QB_HWM _ _ < <(rss "$SQB_PID")
stop_mount "$MNT_SQ" "$SQ_PID"
stop_mount "$MNT_SQB" "$SQB_PID"
SQ_PID="" SQB_PID=""

# ---- 3. spraydryfs mount (default options) ---------------------------------
log "spraydryfs mount (namespace of $STORE)"
sd_mount 1-meta
MAX_READ=$(awk -v m="$MNT_SD" '$5 == m { for (i = 1; i <= NF; i++) if ($i ~ /max_read=/) { sub(/.*max_read=/, "", $i); sub(/,.*/, "", $i); print $i } }' /proc/self/mountinfo)
MOUNTINFO=$(awk -v m="$MNT_SD" '$5 == m' /proc/self/mountinfo)
drop_caches
measure s.find "$MNT_SD/x" 'find . | wc -l'
measure s.ls0 "$MNT_SD/x" 'ls -lR . | wc -l'
measure3 s.ls "$MNT_SD/x" 'ls -lR . | wc -l'
sd_mount 2-read # fresh process for the cold read
drop_caches
measure s.cold "$MNT_SD/x" 'tar cf - . | wc -c'
measure3 s.warm "$MNT_SD/x" 'tar cf - . | wc -c'
# Same process: the page cache is dropped and it has never read big@1, so
# its own caches hold none of the file's chunks either.
drop_caches
dd_rate s.ddcold "$MNT_SD/big/1/big.bin"
dd_warm s.ddwarm "$MNT_SD/big/1/big.bin"
read -r S_RSS S_HWM S_ANON S_FILE < <(rss "$SD_PID")
S_MAPS=$(grep -c "$STORE\$" "/proc/$SD_PID/maps" || true)
BIG_CHECK="content NOT checked"
if cmp -s "$BIG" "$MNT_SD/big/1/big.bin"; then BIG_CHECK="identical to the plain file (cmp)"; else BIG_CHECK="DIFFERS from the plain file (cmp)"; fi

# ---- 4. spraydryfs mount --readdirplus=false -------------------------------
log "spraydryfs mount --readdirplus=false"
sd_mount 3-noreaddirplus --readdirplus=false
drop_caches
measure r.find "$MNT_SD/x" 'find . | wc -l'
measure r.ls0 "$MNT_SD/x" 'ls -lR . | wc -l'
measure3 r.ls "$MNT_SD/x" 'ls -lR . | wc -l'
read -r R_RSS _ R_ANON _ < <(rss "$SD_PID")
stop_mount "$MNT_SD" "$SD_PID"
SD_PID=""
T_TOTAL=$(calc '%.0f' 'b-a' "a=$T_START" "b=$(now)")

# ---- report ----------------------------------------------------------------
isnum() { [[ $1 =~ ^[0-9.]+$ ]]; }
ratio() { if isnum "$1" && isnum "$2" && [ "$(calc '%d' 'b > 0' "b=$2")" = 1 ]; then calc '%.2f' 'a/b' "a=$1" "b=$2"; else echo -; fi; }
verdict() { if [ "$1" = x ]; then echo "n/a (failed)"; elif [ "$1" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
# check EXPR a=.. b=.. : 1, 0, or x when an operand is not a number.
check() {
	local e=$1 kv
	shift
	for kv in "$@"; do isnum "${kv#*=}" || { echo x; return; }; done
	calc '%d' "$e" "$@"
}
tsec() { isnum "$1" && calc '%.2f' 'a' "a=$1" || echo "$1"; }

N_P=${V[p.find]} N_Q=${V[q.find]} N_S=${V[s.find]}
COUNT_NOTE="plain and squashfuse count versions/ and its entries; ours counts x/ (v1..v$NV and the 'latest' symlink): expect plain + 1"
if [ "$N_P" = "$N_Q" ] && isnum "$N_S" && [ "$N_S" = $((N_P + 1)) ]; then COUNT_OK="match"; else COUNT_OK="MISMATCH"; fi
B_P=${V[p.cold]} B_Q=${V[q.cold]} B_S=${V[s.cold]}

S=$'\x1f' # field separator of the rows below
ROWS=() # measurement|plain|squashfuse|ours|ours/plain|ours/squashfuse|target|verdict
ROWS+=("entries (find | wc -l)${S}$N_P${S}$N_Q${S}$N_S${S}-${S}-${S}same tree (+1: latest)${S}$COUNT_OK")
ROWS+=("find | wc -l cold, s${S}$(tsec "${M[p.find]}")${S}$(tsec "${M[q.find]}")${S}$(tsec "${M[s.find]}")${S}$(ratio "${M[s.find]}" "${M[p.find]}")${S}$(ratio "${M[s.find]}" "${M[q.find]}")${S}-${S}")
ROWS+=("ls -lR first run, s${S}$(tsec "${M[p.ls0]}")${S}$(tsec "${M[q.ls0]}")${S}$(tsec "${M[s.ls0]}")${S}$(ratio "${M[s.ls0]}" "${M[p.ls0]}")${S}$(ratio "${M[s.ls0]}" "${M[q.ls0]}")${S}-${S}")
ROWS+=("ls -lR warm (median of 3), s${S}$(tsec "${M[p.ls]}")${S}$(tsec "${M[q.ls]}")${S}$(tsec "${M[s.ls]}")${S}$(ratio "${M[s.ls]}" "${M[p.ls]}")${S}$(ratio "${M[s.ls]}" "${M[q.ls]}")${S}<= ${TARGET_WARM_X}x plain${S}$(verdict "$(check "s <= x*p" "s=${M[s.ls]}" "p=${M[p.ls]}" "x=$TARGET_WARM_X")")")
ROWS+=("read all (tar | wc -c) cold, s${S}$(tsec "${M[p.cold]}")${S}$(tsec "${M[q.cold]}")${S}$(tsec "${M[s.cold]}")${S}$(ratio "${M[s.cold]}" "${M[p.cold]}")${S}$(ratio "${M[s.cold]}" "${M[q.cold]}")${S}<= squashfuse/$TARGET_COLD_DIV${S}$(verdict "$(check "s*d <= q" "s=${M[s.cold]}" "q=${M[q.cold]}" "d=$TARGET_COLD_DIV")")")
ROWS+=("read all warm (median of 3), s${S}$(tsec "${M[p.warm]}")${S}$(tsec "${M[q.warm]}")${S}$(tsec "${M[s.warm]}")${S}$(ratio "${M[s.warm]}" "${M[p.warm]}")${S}$(ratio "${M[s.warm]}" "${M[q.warm]}")${S}<= ${TARGET_WARM_X}x plain${S}$(verdict "$(check "s <= x*p" "s=${M[s.warm]}" "p=${M[p.warm]}" "x=$TARGET_WARM_X")")")
ROWS+=("tar stream, MB${S}$(isnum "$B_P" && mb "$B_P" || echo "$B_P")${S}$(isnum "$B_Q" && mb "$B_Q" || echo "$B_Q")${S}$(isnum "$B_S" && mb "$B_S" || echo "$B_S")${S}$(ratio "$B_S" "$B_P")${S}$(ratio "$B_S" "$B_Q")${S}-${S}")
ROWS+=("dd 1 GiB cold, GB/s${S}${M[p.ddcold]}${S}${M[q.ddcold]}${S}${M[s.ddcold]}${S}$(ratio "${M[s.ddcold]}" "${M[p.ddcold]}")${S}$(ratio "${M[s.ddcold]}" "${M[q.ddcold]}")${S}-${S}")
ROWS+=("dd 1 GiB warm (median of 3), GB/s${S}${M[p.ddwarm]}${S}${M[q.ddwarm]}${S}${M[s.ddwarm]}${S}$(ratio "${M[s.ddwarm]}" "${M[p.ddwarm]}")${S}$(ratio "${M[s.ddwarm]}" "${M[q.ddwarm]}")${S}>= $TARGET_DD_GBS GB/s${S}$(verdict "$(check "s >= t" "s=${M[s.ddwarm]}" "t=$TARGET_DD_GBS")")")
ROWS+=("mount VmRSS after all reads, MB${S}-${S}$(kmb "$Q_RSS")${S}$(kmb "$S_RSS")${S}-${S}$(ratio "$S_RSS" "$Q_RSS")${S}<= $TARGET_RSS_MB MB${S}$(verdict "$(check "k*1024/1e6 <= t" "k=$S_RSS" "t=$TARGET_RSS_MB")")")
ROWS+=("  of which RssAnon / RssFile, MB${S}-${S}$(kmb "$Q_ANON") / $(kmb "$Q_FILE")${S}$(kmb "$S_ANON") / $(kmb "$S_FILE")${S}-${S}-${S}RssAnon <= $TARGET_RSS_MB MB${S}$(verdict "$(check "k*1024/1e6 <= t" "k=$S_ANON" "t=$TARGET_RSS_MB")")")
ROWS+=("mount VmHWM (peak RSS), MB${S}-${S}$(kmb "$Q_HWM")${S}$(kmb "$S_HWM")${S}-${S}$(ratio "$S_HWM" "$Q_HWM")${S}-${S}")

RDP=() # measurement|on|off|off/on
RDP+=("find | wc -l cold, s${S}$(tsec "${M[s.find]}")${S}$(tsec "${M[r.find]}")${S}$(ratio "${M[r.find]}" "${M[s.find]}")")
RDP+=("ls -lR first run, s${S}$(tsec "${M[s.ls0]}")${S}$(tsec "${M[r.ls0]}")${S}$(ratio "${M[r.ls0]}" "${M[s.ls0]}")")
RDP+=("ls -lR warm (median of 3), s${S}$(tsec "${M[s.ls]}")${S}$(tsec "${M[r.ls]}")${S}$(ratio "${M[r.ls]}" "${M[s.ls]}")")
RDP+=("mount VmRSS (RssAnon), MB${S}$(kmb "$S_RSS") ($(kmb "$S_ANON")) after all reads${S}$(kmb "$R_RSS") ($(kmb "$R_ANON")) after find + ls${S}-")

HEAD="SprayDryFS FUSE read benchmark, $(date -u +%Y-%m-%dT%H:%MZ), rev $REV"
NOTES=(
	"machine: $HOST_NOTE"
	"corpus: $CORPUS, $NV versions (${VERSIONS[0]} .. $LAST), $CORPUS_FILES files, $(mb "$CORPUS_BYTES") MB logical"
	"plain: $P_TREE and $BIG on $(df --output=fstype "$P_TREE" | tail -n 1) / $(df --output=fstype "$BIG" | tail -n 1)"
	"squashfuse_ll $(squashfuse_ll --version 2>&1 | head -n 1 | awk '{ print $2 }'): $SQ_IMG ($SQ_IMG_NOTE, $(mb "$(stat -c %s "$SQ_IMG")") MB) and $FOUT/big.sqfs ($(mb "$(stat -c %s "$FOUT/big.sqfs")") MB); VmRSS of the big-file mount after its reads: $(kmb "$QB_RSS") MB (peak $(kmb "$QB_HWM"))"
	"spraydryfs: namespace mount of $STORE ($STORE_NOTE, $(mb "$STORE_BYTES") MB; big@1 ingest ${BIG_INGEST_S} s), tree at MOUNT/x, big file at MOUNT/big/1/big.bin; max_read=${MAX_READ:-?} (mountinfo); READDIRPLUS on (the default) unless noted"
	"RSS: VmRSS = RssAnon (private memory) + RssFile (mapped file pages; our process maps the store $S_MAPS times, once per SQLite read connection, and a page mapped by several counts once per mapping)"
	"1 GiB file: $BIG_BYTES bytes, half AES-CTR keystream, half corpus text with marker lines; read through our mount $BIG_CHECK"
	"$CACHE_NOTE; warm = the same command again right after (ls -lR and read all: median of 3 repeats); ls -lR 'first run' follows the cold find on the same mount; dd cold on our mount runs in the process that just read the tree (page cache dropped, none of big@1's chunks ever read by it)"
	"$COUNT_NOTE"
	"load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); total run ${T_TOTAL} s"
)

{
	echo
	echo "$HEAD"
	for n in "${NOTES[@]}"; do echo "$n"; done
	echo
	fmt='%-36s %10s %13s %16s %9s %9s  %-22s %s\n'
	# shellcheck disable=SC2059
	printf "$fmt" measurement "plain disk" squashfuse_ll spraydryfs "sd/plain" "sd/sqfuse" target verdict
	for r in "${ROWS[@]}"; do
		IFS=$S read -r a b c d e f g h <<<"$r"
		# shellcheck disable=SC2059
		printf "$fmt" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h"
	done
	echo
	echo "spraydryfs READDIRPLUS on (default) vs off (--readdirplus=false), tree x/:"
	fmt='%-36s %32s %32s %8s\n'
	# shellcheck disable=SC2059
	printf "$fmt" measurement "on (default)" "off" off/on
	for r in "${RDP[@]}"; do
		IFS=$S read -r a b c d <<<"$r"
		# shellcheck disable=SC2059
		printf "$fmt" "$a" "$b" "$c" "$d"
	done
	echo
	echo "warm runs: ls -lR s: plain ${R[p.ls]}; squashfuse_ll ${R[q.ls]}; spraydryfs ${R[s.ls]}; --readdirplus=false ${R[r.ls]}"
	echo "           read all s: plain ${R[p.warm]}; squashfuse_ll ${R[q.warm]}; spraydryfs ${R[s.warm]}"
	echo "           dd GB/s: plain ${V[p.ddwarm]}; squashfuse_ll ${V[q.ddwarm]}; spraydryfs ${V[s.ddwarm]}"
	echo "our mountinfo: $MOUNTINFO"
	echo "results: $OUT/fuse-results.md, $OUT/fuse-results.json"
}

{
	echo "# $HEAD"
	echo
	for n in "${NOTES[@]}"; do echo "- $n"; done
	echo
	echo "| measurement | plain disk | squashfuse_ll | spraydryfs | sd/plain | sd/squashfuse | target | verdict |"
	echo "|---|---:|---:|---:|---:|---:|---|---|"
	for r in "${ROWS[@]}"; do
		IFS=$S read -r a b c d e f g h <<<"$r"
		echo "| ${a//|/\\|} | $b | $c | $d | $e | $f | $g | $h |"
	done
	echo
	echo "READDIRPLUS, spraydryfs tree x/:"
	echo
	echo "| measurement | on (default) | off (--readdirplus=false) | off/on |"
	echo "|---|---:|---:|---:|"
	for r in "${RDP[@]}"; do
		IFS=$S read -r a b c d <<<"$r"
		echo "| ${a//|/\\|} | $b | $c | $d |"
	done
	echo
	echo "- warm runs, ls -lR s: plain ${R[p.ls]}; squashfuse_ll ${R[q.ls]}; spraydryfs ${R[s.ls]}; --readdirplus=false ${R[r.ls]}"
	echo "- warm runs, read all s: plain ${R[p.warm]}; squashfuse_ll ${R[q.warm]}; spraydryfs ${R[s.warm]}"
	echo "- warm runs, dd GB/s: plain ${V[p.ddwarm]}; squashfuse_ll ${V[q.ddwarm]}; spraydryfs ${V[s.ddwarm]}"
	echo "- our mountinfo: \`$MOUNTINFO\`"
} >"$OUT/fuse-results.md"

jv() { isnum "$1" && echo "$1" || echo null; }
jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
jtool() { # PREFIX : the measurements of one tool
	local p=$1
	printf '{"entries": %s, "find_cold_s": %s, "ls_first_s": %s, "ls_warm_s": %s, "read_all_cold_s": %s, "read_all_warm_s": %s, "tar_bytes": %s, "dd_cold_gbs": %s, "dd_warm_gbs": %s}' \
		"$(jv "${V[$p.find]:-x}")" "$(jv "${M[$p.find]:-x}")" "$(jv "${M[$p.ls0]:-x}")" "$(jv "${M[$p.ls]:-x}")" "$(jv "${M[$p.cold]:-x}")" \
		"$(jv "${M[$p.warm]:-x}")" "$(jv "${V[$p.cold]:-x}")" "$(jv "${M[$p.ddcold]:-x}")" "$(jv "${M[$p.ddwarm]:-x}")"
}
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"), \"rev\": $(jstr "$REV"), \"machine\": $(jstr "$HOST_NOTE"),"
	echo "  \"corpus\": {\"path\": $(jstr "$CORPUS"), \"versions\": $NV, \"files\": $CORPUS_FILES, \"bytes\": $CORPUS_BYTES},"
	echo "  \"big_bytes\": $BIG_BYTES, \"max_read\": $(jv "${MAX_READ:-x}"),"
	echo "  \"plain\": $(jtool p),"
	echo "  \"squashfuse_ll\": $(jtool q), \"squashfuse_rss_kib\": $Q_RSS, \"squashfuse_hwm_kib\": $Q_HWM, \"squashfuse_big_rss_kib\": $QB_RSS,"
	echo "  \"spraydryfs\": $(jtool s), \"spraydryfs_rss_kib\": $S_RSS, \"spraydryfs_hwm_kib\": $S_HWM,"
	echo "  \"spraydryfs_no_readdirplus\": $(jtool r), \"spraydryfs_no_readdirplus_rss_kib\": $R_RSS,"
	echo "  \"targets\": {\"warm_x_plain\": $TARGET_WARM_X, \"cold_div_squashfuse\": $TARGET_COLD_DIV, \"dd_warm_gbs\": $TARGET_DD_GBS, \"rss_mb\": $TARGET_RSS_MB}"
	echo "}"
} >"$OUT/fuse-results.json"
