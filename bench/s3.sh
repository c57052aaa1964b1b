#!/usr/bin/env bash
# bench/s3.sh -- S3 benchmark: `spraydryfs push s3://…` of every corpus
# version against `restic backup` of the same versions to the same server
# (versitygw on loopback), and a cold read of the newest version through
# `mount -s s3://…` against the local store file and `restic mount`, side by
# side in one run, with the HTTP request count of each.
#
# Run from the repository root after `make build` (`make bench` runs it).
# Needs root (drop_caches, FUSE mounts), versitygw (on PATH or in
# $(go env GOPATH)/bin: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
# and restic (Debian's).
#   bash bench/s3.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default
#                      /var/tmp/spraydryfs-corpus, as for bench/run.sh)
#   BENCH_OUT          result directory (default bench/out). Work goes to
#                      $BENCH_OUT/s3 (emptied first, except a store ingested
#                      there, reused when it is still valid); nothing else
#                      there is touched.
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#   PUSH_JOBS          -j values of the pushes measured (default "4 16")
#
# The store: bench/run.sh's $BENCH_OUT/store.sdfs when it holds exactly
# x@v1..x@vN from this corpus (read only), else x@v1..x@vN ingested here.
# Every push goes to a new prefix of one bucket, restic to a bucket of its
# own (`restic -r s3:http://127.0.0.1:PORT/restic`, one `restic backup` per
# version, in order). Cold = a fresh mount process (ours: an empty --cache-dir of its own; restic:
# an empty --cache-dir) after `sync; echo 3 > /proc/sys/vm/drop_caches`.
# Requests are counted from versitygw's request log (one line each).
# Results: a table on stdout and $BENCH_OUT/s3-results.md.
set -euo pipefail

# Targets (issue 12): push <= restic backup; cold read through S3 <= 2x the
# local store and <= 1/3 of restic mount; ls -lR cold <= 2x local; the same
# read with a warm cache <= 1.1x local (a new mount on the warm cache
# directory against the local store, both with page caches dropped). The
# same mount read again is shown too; it is served from the kernel's page
# cache, without a FUSE request, so it times the kernel alone.
TARGET_LOCAL_X=2
TARGET_RESTIC_DIV=3

die() { echo "bench-s3: $*" >&2; exit 1; }
log() { echo "bench-s3: $*" >&2; }

CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
read -r -a JOBS <<<"${PUSH_JOBS:-4 16}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
VGW=$(command -v versitygw || echo "$(go env GOPATH 2>/dev/null)/bin/versitygw")
# Not runnable here: say so and let `make bench` go on.
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
	log "SKIPPED: needs root and /dev/fuse (drop_caches, FUSE mounts)"
	exit 0
fi
if [ ! -x "$VGW" ]; then
	log "SKIPPED: no versitygw (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"
	exit 0
fi
command -v restic >/dev/null || die "restic not found (apt-get install restic)"
[ -d "$CORPUS/versions" ] || die "no corpus at $CORPUS/versions (run bench/run.sh first, or set SPRAYDRYFS_CORPUS)"
SOUT=$OUT/s3
case $SOUT in
/ | "$HOME" | "$PWD") die "refusing to use $SOUT" ;;
esac
mkdir -p "$SOUT"
for m in "$SOUT"/mnt/*; do
	if awk -v m="$m" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; then
		umount -l "$m" || die "cannot unmount stale $m"
	fi
done
# Keep a store ingested here before (checked below); empty the rest.
find "$SOUT" -mindepth 1 -maxdepth 1 ! -name 'store.sdfs*' ! -name mnt -exec rm -rf {} +
MNT=$SOUT/mnt/m
mkdir -p "$MNT" "$SOUT/vgw/spraydryfs" "$SOUT/vgw/restic"
LOGF=$SOUT/log

calc() {
	local f=$1 e=$2 args=()
	shift 2
	for kv in "$@"; do args+=(-v "$kv"); done
	awk "${args[@]}" "BEGIN { printf \"$f\", ($e) }"
}
now() { date +%s.%N; }
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }
CACHE_NOTE="cold = fresh mount process, empty caches, after sync; echo 3 > /proc/sys/vm/drop_caches"
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		CACHE_NOTE="page caches could NOT be dropped: cold numbers are not cold"
	fi
}

VGW_PID="" M_PID=""
stop_mount() {
	local i
	if [ -n "$M_PID" ] && kill -0 "$M_PID" 2>/dev/null; then
		kill -TERM "$M_PID" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			kill -0 "$M_PID" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$M_PID" 2>/dev/null; then
			umount -l "$MNT" 2>/dev/null || true
			kill -KILL "$M_PID" 2>/dev/null || true
		fi
		wait "$M_PID" 2>/dev/null || true
	fi
	M_PID=""
	if is_mounted "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; fi
}
cleanup() {
	stop_mount
	if [ -n "$VGW_PID" ]; then
		kill "$VGW_PID" 2>/dev/null || true
		wait "$VGW_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_mount CMD... : run a FUSE server in the background at MNT (it must
# stay in the foreground) and wait until MNT is mounted (60 s).
start_mount() {
	stop_mount
	"$@" >>"$LOGF" 2>&1 &
	M_PID=$!
	local i
	for ((i = 0; i < 1200; i++)); do
		is_mounted "$MNT" && return 0
		kill -0 "$M_PID" 2>/dev/null || die "$1 mount exited: $(tail -n 3 "$LOGF")"
		sleep 0.05
	done
	die "$MNT did not appear within 60 s"
}

# requests : the number of requests versitygw has logged so far.
requests() { grep -c ' | vgw | ' "$SOUT/vgw.log" || true; }

# measure KEY DIR CMD [Q0] : run CMD (bash, pipefail) in DIR; M[KEY] = wall
# seconds (or "fail"), V[KEY] = its trimmed stdout, Q[KEY] = requests sent
# (since the request count Q0 if given: the mount's own start counts).
declare -A M V Q
measure() {
	local key=$1 dir=$2 cmd=$3 t0 t1 out rc=0 q0=${4:-}
	[ -n "$q0" ] || q0=$(requests)
	t0=$(now)
	out=$(cd "$dir" && bash -o pipefail -c "$cmd" 2>>"$SOUT/cmd.err") || rc=$?
	t1=$(now)
	sleep 0.2 # the request log is written after the response
	Q[$key]=$(($(requests) - q0))
	if [ "$rc" -ne 0 ]; then
		log "  $key: '$cmd' failed (exit $rc; see $SOUT/cmd.err)"
		M[$key]=fail V[$key]=fail
		return 0
	fi
	M[$key]=$(calc '%.2f' 'b-a' "a=$t0" "b=$t1")
	V[$key]=$(echo "$out" | tail -n 1 | tr -d ' \n')
	log "  $key: ${M[$key]} s, ${Q[$key]} requests (${V[$key]})"
}

# measure_again KEY DIR CMD : measure CMD five times; KEY gets the median
# run (a tenth of a second, of which one run is mostly noise; the first
# after a cold read is the slowest).
measure_again() {
	local key=$1 i best=()
	for i in 1 2 3 4 5; do
		measure "$key.$i" "$2" "$3"
		best+=("${M[$key.$i]} $i")
	done
	i=$(printf '%s\n' "${best[@]}" | sort -n | sed -n 3p | cut -d' ' -f2)
	M[$key]=${M[$key.$i]} V[$key]=${V[$key.$i]} Q[$key]=${Q[$key.$i]}
}

# ---- inputs ------------------------------------------------------------------
mapfile -t VERSIONS < <(find "$CORPUS/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
NV=${#VERSIONS[@]}
[ "$NV" -gt 0 ] || die "no version directories in $CORPUS/versions"
LAST=${VERSIONS[NV - 1]}
CORPUS_FILES=$(find "$CORPUS/versions" -type f | wc -l)
CORPUS_BYTES=$(find "$CORPUS/versions" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || REV="$REV+dirty"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(now)
log "corpus $CORPUS: $NV versions, $CORPUS_FILES files; work in $SOUT"

store_ok() { # STORE : x@v1..x@vN with the corpus' versions as sources
	"$BIN" -s "$1" roots --json 2>/dev/null | perl -MJSON::PP -e '
		my ($dir, @v) = @ARGV; local $/; my $r = decode_json(<STDIN>);
		my %src = map { $_->{name} eq "x" ? ($_->{version} => $_->{source}) : () } @$r;
		keys %src == @v or exit 1;
		for my $i (1 .. @v) { ($src{"v$i"} // "") eq "$dir/$v[$i-1]" or exit 1 }' "$CORPUS/versions" "${VERSIONS[@]}"
}
if [ -s "$OUT/store.sdfs" ] && store_ok "$OUT/store.sdfs"; then
	STORE=$OUT/store.sdfs
	STORE_NOTE="bench/run.sh's store"
elif [ -s "$SOUT/store.sdfs" ] && store_ok "$SOUT/store.sdfs"; then
	STORE=$SOUT/store.sdfs
	STORE_NOTE="ingested by an earlier run"
else
	STORE=$SOUT/store.sdfs
	rm -f "$STORE"*
	log "ingesting x@v1..x@v$NV into $STORE"
	for ((i = 1; i <= NV; i++)); do
		"$BIN" -s "$STORE" ingest "x@v$i" "$CORPUS/versions/${VERSIONS[i - 1]}" >>"$LOGF" 2>&1 ||
			die "ingest x@v$i failed: $(tail -n 2 "$LOGF")"
	done
	STORE_NOTE="ingested here"
fi

# ---- the server ----------------------------------------------------------------
export AWS_ACCESS_KEY_ID=spraydryfs-bench AWS_SECRET_ACCESS_KEY=spraydryfs-bench-secret AWS_REGION=us-east-1
for attempt in 1 2 3 4 5; do
	PORT=$((20000 + RANDOM % 40000))
	if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then continue; fi
	"$VGW" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$PORT" --keep-alive \
		posix "$SOUT/vgw" >"$SOUT/vgw.log" 2>&1 &
	VGW_PID=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break 2; fi
		kill -0 "$VGW_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$VGW_PID" 2>/dev/null || true
	wait "$VGW_PID" 2>/dev/null || true
	VGW_PID=""
done
[ -n "$VGW_PID" ] || die "versitygw did not start: $(tail -n 3 "$SOUT/vgw.log")"
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
VGW_VERSION=$(go version -m "$VGW" 2>/dev/null | awk '$1 == "mod" { print $3 }')
log "versitygw ${VGW_VERSION:-?} at $AWS_ENDPOINT_URL"

# ---- 1. publishing every version --------------------------------------------------
for j in "${JOBS[@]}"; do
	log "push -j $j of x@v1..x@v$NV to s3://spraydryfs/j$j"
	measure "push.$j" / "'$BIN' -s '$STORE' push -j $j s3://spraydryfs/j$j"
done
URL=s3://spraydryfs/j${JOBS[0]}
log "push again to $URL (nothing new)"
measure push.again / "'$BIN' -s '$STORE' push -j ${JOBS[0]} $URL"
log "restic backup of each version to s3:$AWS_ENDPOINT_URL/restic"
export RESTIC_PASSWORD=spraydryfs-bench RESTIC_REPOSITORY=s3:$AWS_ENDPOINT_URL/restic
restic init --cache-dir "$SOUT/restic-cache" >>"$LOGF" 2>&1 || die "restic init failed: $(tail -n 3 "$LOGF")"
BACKUPS=""
for ((i = 1; i <= NV; i++)); do
	BACKUPS+="restic backup -q --cache-dir '$SOUT/restic-cache' --host bench --tag v$i '$CORPUS/versions/${VERSIONS[i - 1]}' && "
done
measure restic.backup / "${BACKUPS}true"
SD_BYTES=$(du -sb "$SOUT/vgw/spraydryfs/j${JOBS[0]}" | cut -f1)
RESTIC_BYTES=$(du -sb "$SOUT/vgw/restic" | cut -f1)

# ---- 2. reading the newest version ----------------------------------------------
READ_ALL='tar cf - . | wc -c'
LS='ls -lR . | wc -l'
log "local store: x@v$NV"
start_mount "$BIN" -s "$STORE" mount "$MNT" "x@v$NV"
drop_caches
measure local.ls "$MNT" "$LS"
start_mount "$BIN" -s "$STORE" mount "$MNT" "x@v$NV"
drop_caches
measure local.cold "$MNT" "$READ_ALL"
sleep 1 # as for the remote mount, whose cache is written in the background
measure_again local.warm "$MNT" "$READ_ALL"

log "mount -s $URL: x@v$NV"
# Each cold mount gets a cache directory of its own, empty: the default
# one (under $XDG_CACHE_HOME) would hold what an earlier run fetched.
# The requests a mount makes as it starts (the index, the root's tree)
# count with its first command.
rm -rf "$SOUT/cache-ls" "$SOUT/cache-cold"
q0=$(requests)
start_mount "$BIN" -s "$URL" mount --cache-dir "$SOUT/cache-ls" "$MNT" "x@v$NV"
drop_caches
measure s3.ls "$MNT" "$LS" "$q0"
q0=$(requests)
start_mount "$BIN" -s "$URL" mount --cache-dir "$SOUT/cache-cold" "$MNT" "x@v$NV"
drop_caches
measure s3.cold "$MNT" "$READ_ALL" "$q0"
sleep 1 # the cache is warm once the cold read's objects are written
measure_again s3.warm "$MNT" "$READ_ALL"
# A new mount process on that cache, page caches dropped: what a reader
# restarted on a warm cache sees, beside the local store's cold read.
q0=$(requests)
start_mount "$BIN" -s "$URL" mount --cache-dir "$SOUT/cache-cold" "$MNT" "x@v$NV"
drop_caches
measure s3.warmcache "$MNT" "$READ_ALL" "$q0"
stop_mount

log "restic mount (empty cache): snapshot v$NV"
rm -rf "$SOUT/restic-cache-mount"
start_mount restic mount --cache-dir "$SOUT/restic-cache-mount" "$MNT"
RDIR=$MNT/tags/v$NV
for _ in $(seq 200); do [ -e "$RDIR" ] && break; sleep 0.1; done
RSNAP=$(find "$RDIR/" -mindepth 1 -maxdepth 1 | head -n 1)
RPATH=$RSNAP$CORPUS/versions/$LAST
[ -d "$RPATH" ] || die "restic mount: no $RPATH"
drop_caches
measure restic.cold "$RPATH" "$READ_ALL"
stop_mount
T_TOTAL=$(calc '%.0f' 'b-a' "a=$T_START" "b=$(now)")

# ---- report ------------------------------------------------------------------
isnum() { [[ $1 =~ ^[0-9.]+$ ]]; }
ratio() { if isnum "$1" && isnum "$2" && [ "$(calc '%d' 'b > 0' "b=$2")" = 1 ]; then calc '%.2f' 'a/b' "a=$1" "b=$2"; else echo -; fi; }
verdict() { if [ "$1" = x ]; then echo "n/a (failed)"; elif [ "$1" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
check() {
	local e=$1 kv
	shift
	for kv in "$@"; do isnum "${kv#*=}" || { echo x; return; }; done
	calc '%d' "$e" "$@"
}
SAME="bytes DIFFER"
[ "${V[local.cold]}" = "${V[s3.cold]}" ] && SAME="same tar size as local"

S=$'\x1f'
ROWS=() # measurement|seconds|requests|compared with|ratio|target|verdict
for j in "${JOBS[@]}"; do
	ROWS+=("push -j $j, all $NV versions${S}${M[push.$j]}${S}${Q[push.$j]}${S}restic backup${S}$(ratio "${M[push.$j]}" "${M[restic.backup]}")${S}<= restic${S}$(verdict "$(check "a <= b" "a=${M[push.$j]}" "b=${M[restic.backup]}")")")
done
ROWS+=("push again (nothing new), -j ${JOBS[0]}${S}${M[push.again]}${S}${Q[push.again]}${S}-${S}-${S}-${S}")
ROWS+=("restic backup, $NV versions${S}${M[restic.backup]}${S}${Q[restic.backup]}${S}-${S}-${S}-${S}")
ROWS+=("ls -lR v$NV cold, local store${S}${M[local.ls]}${S}-${S}-${S}-${S}-${S}")
ROWS+=("ls -lR v$NV cold, mount -s s3://${S}${M[s3.ls]}${S}${Q[s3.ls]}${S}local${S}$(ratio "${M[s3.ls]}" "${M[local.ls]}")${S}<= ${TARGET_LOCAL_X}x local${S}$(verdict "$(check "a <= x*b" "a=${M[s3.ls]}" "b=${M[local.ls]}" "x=$TARGET_LOCAL_X")")")
ROWS+=("read all v$NV cold, local store${S}${M[local.cold]}${S}-${S}-${S}-${S}-${S}")
ROWS+=("read all v$NV cold, mount -s s3://${S}${M[s3.cold]}${S}${Q[s3.cold]}${S}local${S}$(ratio "${M[s3.cold]}" "${M[local.cold]}")${S}<= ${TARGET_LOCAL_X}x local${S}$(verdict "$(check "a <= x*b" "a=${M[s3.cold]}" "b=${M[local.cold]}" "x=$TARGET_LOCAL_X")")")
ROWS+=("read all v$NV cold, restic mount${S}${M[restic.cold]}${S}${Q[restic.cold]}${S}ours (s3)${S}$(ratio "${M[s3.cold]}" "${M[restic.cold]}")${S}ours <= restic/$TARGET_RESTIC_DIV${S}$(verdict "$(check "a*d <= b" "a=${M[s3.cold]}" "b=${M[restic.cold]}" "d=$TARGET_RESTIC_DIV")")")
ROWS+=("read all v$NV, new mount, warm cache dir${S}${M[s3.warmcache]}${S}${Q[s3.warmcache]}${S}local, cold${S}$(ratio "${M[s3.warmcache]}" "${M[local.cold]}")${S}<= 1.1x local${S}$(verdict "$(check "a <= 1.1*b" "a=${M[s3.warmcache]}" "b=${M[local.cold]}")")")
ROWS+=("read all v$NV again, same s3 mount${S}${M[s3.warm]}${S}${Q[s3.warm]}${S}local, again${S}$(ratio "${M[s3.warm]}" "${M[local.warm]}")${S}-${S}")
ROWS+=("read all v$NV again, local store${S}${M[local.warm]}${S}-${S}-${S}-${S}-${S}")

HEAD="SprayDryFS S3 benchmark, $(date -u +%Y-%m-%dT%H:%MZ), rev $REV"
NOTES=(
	"machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr)"
	"corpus: $CORPUS, $NV versions (${VERSIONS[0]} .. $LAST), $CORPUS_FILES files, $(calc '%.1f' 'b/1e6' "b=$CORPUS_BYTES") MB logical; store $STORE ($STORE_NOTE)"
	"server: versitygw ${VGW_VERSION:-?} on loopback, posix backend, --keep-alive; bucket bytes: ours $(calc '%.1f' 'b/1e6' "b=$SD_BYTES") MB, restic $(calc '%.1f' 'b/1e6' "b=$RESTIC_BYTES") MB"
	"restic $(restic version | awk '{ print $2 }'): one backup per version, in order; restic mount with an empty --cache-dir; read at tags/v$NV"
	"$CACHE_NOTE; 'again' = the same command right after, same mount process (its cache directory, in-process caches and the page cache warm), median of 5, after 1 s; read all = $READ_ALL ($SAME: ${V[s3.cold]} bytes)"
	"warm cache dir = a new mount process on the cache directory the cold read filled, page caches dropped"
	"requests: lines of versitygw's request log during the command (for a cold mount, from its start: the index and the root's tree)"
	"load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); total run ${T_TOTAL} s"
)
{
	echo
	echo "$HEAD"
	for n in "${NOTES[@]}"; do echo "$n"; done
	echo
	fmt='%-38s %9s %9s %14s %7s  %-20s %s\n'
	# shellcheck disable=SC2059
	printf "$fmt" measurement seconds requests "compared with" ratio target verdict
	for r in "${ROWS[@]}"; do
		IFS=$S read -r a b c d e f g <<<"$r"
		# shellcheck disable=SC2059
		printf "$fmt" "$a" "$b" "$c" "$d" "$e" "$f" "$g"
	done
	echo "results: $OUT/s3-results.md"
}
{
	echo "# $HEAD"
	echo
	for n in "${NOTES[@]}"; do echo "- $n"; done
	echo
	echo "| measurement | seconds | requests | compared with | ratio | target | verdict |"
	echo "|---|---:|---:|---|---:|---|---|"
	for r in "${ROWS[@]}"; do
		IFS=$S read -r a b c d e f g <<<"$r"
		echo "| $a | $b | $c | $d | $e | $f | $g |"
	done
} >"$OUT/s3-results.md"
