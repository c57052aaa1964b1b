#!/usr/bin/env bash
# bench/run.sh -- ingest benchmark of SprayDryFS against mksquashfs and casync,
# side by side on the same machine in one run, plus a read-back comparison.
#
# Run from the repository root after `make build` (`make bench` does both):
#   bash bench/run.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default
#                      /var/tmp/spraydryfs-corpus; built with
#                      ../shared/bench/corpus-gomod.sh when versions/ is missing)
#   BENCH_OUT          work and result directory (default bench/out; emptied first)
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#   BENCH_PROFILE=1    also write a CPU profile of each ingest to $BENCH_OUT/ingest.vN.prof
#
# Every version directory is ingested in version order as x@v1 ... x@vN into a
# fresh store, each as its own process under GNU time; the peers pack the whole
# versions/ directory in one go. Page caches are dropped before each tool's run.
# Results: a table on stdout, $BENCH_OUT/results.md and $BENCH_OUT/results.json.
# Sizes and RSS are in MB = 10^6 bytes.
set -euo pipefail

# Targets (issue): ingest wall <= casync's, store <= 95 MB, ingest RSS <= 500 MB.
TARGET_STORE_MB=95
TARGET_RSS_MB=500

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# Resolve user-given paths against the caller's directory, then work from the
# repository root.
CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
case $OUT in
/ | "$HOME" | "$PWD") die "refusing to empty BENCH_OUT=$OUT" ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT"
STORE=$OUT/store.sdfs

# ---- peers -----------------------------------------------------------------
# install_missing PACKAGE... : apt-get install, quietly, updating lists once if needed.
install_missing() {
	[ $# -gt 0 ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		log "not root: cannot install $*"
		return 1
	fi
	log "installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >>"$OUT/apt.log" 2>&1 && return 0
	apt-get update -qq >>"$OUT/apt.log" 2>&1 && apt-get install -y -qq "$@" >>"$OUT/apt.log" 2>&1
}
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v mksquashfs >/dev/null 2>&1 || missing+=(squashfs-tools)
command -v casync >/dev/null 2>&1 || missing+=(casync)
if [ ${#missing[@]} -gt 0 ]; then
	install_missing "${missing[@]}" || log "apt-get failed (see $OUT/apt.log); missing peers are skipped"
fi
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time, package time) is required"

# ---- corpus ----------------------------------------------------------------
if [ ! -d "$CORPUS/versions" ]; then
	[ -f ../shared/bench/corpus-gomod.sh ] || die "no corpus at $CORPUS and no ../shared/bench/corpus-gomod.sh to build one"
	log "building the corpus in $CORPUS (downloads from the Go module proxy)"
	bash ../shared/bench/corpus-gomod.sh "$CORPUS" >&2
fi
mapfile -t VERSIONS < <(find "$CORPUS/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
NV=${#VERSIONS[@]}
[ "$NV" -gt 0 ] || die "no version directories in $CORPUS/versions"
LAST=${VERSIONS[NV - 1]}

# ---- helpers ---------------------------------------------------------------
CACHE_NOTE="page caches dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each tool's run: all start cold"
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		CACHE_NOTE="page caches could NOT be dropped (not root?): later runs may start warm"
	fi
}

# calc FORMAT EXPR NAME=VALUE... : print an awk expression over the given
# variables, e.g. calc '%.1f' 'a/b' a=1 b=2.
calc() {
	local f=$1 e=$2 args=()
	shift 2
	for kv in "$@"; do args+=(-v "$kv"); done
	awk "${args[@]}" "BEGIN { printf \"$f\", ($e) }"
}
mb() { calc '%.1f' 'b/1e6' "b=$1"; }      # bytes -> MB
kmb() { calc '%.1f' 'k*1024/1e6' "k=$1"; } # KiB -> MB

# jnum KEY FILE : a number from the one-line JSON object the CLI prints.
jnum() { grep -o "\"$1\":[0-9.eE+-]*" "$2" | head -n 1 | cut -d: -f2; }

# timed NAME CMD... : run CMD under GNU time with stdout/stderr in
# $OUT/NAME.out/.err; sets WALL (s), RSS (KiB), CPU (user+sys s).
timed() {
	local name=$1 rc=0 u s
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
	read -r WALL RSS u s < <(tail -n 1 "$OUT/$name.time")
	CPU=$(calc '%.2f' 'u+s' "u=$u" "s=$s")
	return "$rc"
}

# timed_count NAME CMD... : like timed, but stdout goes to wc -c; sets BYTES.
timed_count() {
	local name=$1 u s
	shift
	if ! BYTES=$(/usr/bin/time -f '%e %M %U %S' -o "$OUT/$name.time" "$@" 2>"$OUT/$name.err" | wc -c); then
		return 1
	fi
	read -r WALL RSS u s < <(tail -n 1 "$OUT/$name.time")
	CPU=$(calc '%.2f' 'u+s' "u=$u" "s=$s")
}

store_size() {
	local total=0 f
	for f in "$STORE" "$STORE-wal" "$STORE-shm"; do
		if [ -e "$f" ]; then
			total=$((total + $(stat -c %s "$f")))
		fi
	done
	echo "$total"
}

# tar_summary : reads a tar stream on stdin, prints "ENTRIES REGULAR_BYTES".
tar_summary() {
	tar -tvf - | awk '{ n++ } /^-/ { b += $3 } END { printf "%d %d\n", n, b }'
}

# ---- run -------------------------------------------------------------------
CORPUS_BYTES=$(find "$CORPUS/versions" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
CORPUS_FILES=$(find "$CORPUS/versions" -type f | wc -l)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
HOST_NOTE="$(nproc) cores ($CPU_MODEL), $(awk '/^MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || REV="$REV+dirty"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "corpus $CORPUS: $NV versions, $CORPUS_FILES files, $(mb "$CORPUS_BYTES") MB; output in $OUT"

# a) SprayDryFS: one process per version into a fresh store.
log "spraydryfs: ingesting $NV versions"
drop_caches
declare -a V_WALL V_RSS V_CPU V_STORED V_STORE V_FILES V_BYTES V_READ V_CHUNKS V_SECS
SD_WALL=0 SD_CPU=0 SD_RSS=0 SD_LOGICAL=0
for ((i = 1; i <= NV; i++)); do
	v=${VERSIONS[i - 1]}
	if [ "${BENCH_PROFILE:-}" = 1 ]; then
		export SPRAYDRYFS_CPUPROFILE=$OUT/ingest.v$i.prof
	fi
	timed "ingest.v$i" "$BIN" -s "$STORE" ingest "x@v$i" "$CORPUS/versions/$v" --json ||
		die "ingest x@v$i ($v) failed: $(tail -n 3 "$OUT/ingest.v$i.err")"
	j=$OUT/ingest.v$i.out
	V_WALL[i]=$WALL V_RSS[i]=$RSS V_CPU[i]=$CPU V_STORE[i]=$(store_size)
	V_STORED[i]=$(jnum stored_bytes "$j") V_FILES[i]=$(jnum files "$j") V_BYTES[i]=$(jnum bytes "$j")
	V_READ[i]=$(jnum read_files "$j") V_CHUNKS[i]=$(jnum new_chunks "$j") V_SECS[i]=$(jnum seconds "$j")
	SD_WALL=$(calc '%.2f' 'a+b' "a=$SD_WALL" "b=$WALL")
	SD_CPU=$(calc '%.2f' 'a+b' "a=$SD_CPU" "b=$CPU")
	SD_LOGICAL=$((SD_LOGICAL + V_BYTES[i]))
	if [ "$RSS" -gt "$SD_RSS" ]; then SD_RSS=$RSS; fi
	log "  x@v$i $v: ${WALL}s, $(kmb "$RSS") MB RSS, +$(mb "${V_STORED[i]}") MB, store $(mb "${V_STORE[i]}") MB"
done
unset SPRAYDRYFS_CPUPROFILE
SD_SIZE=$(store_size)

# b) mksquashfs, zstd, default block size.
SQ_OK=0 SQ_NOTE=""
if command -v mksquashfs >/dev/null 2>&1; then
	log "mksquashfs"
	drop_caches
	if timed mksquashfs mksquashfs "$CORPUS/versions" "$OUT/img" -comp zstd -noappend -quiet; then
		SQ_OK=1 SQ_WALL=$WALL SQ_RSS=$RSS SQ_CPU=$CPU SQ_SIZE=$(stat -c %s "$OUT/img")
	else
		SQ_NOTE="mksquashfs failed: $(tail -n 1 "$OUT/mksquashfs.err")"
	fi
	rm -f "$OUT/img"
else
	SQ_NOTE="mksquashfs not installed (squashfs-tools)"
fi

# c) casync, default chunking and compression.
CA_OK=0 CA_NOTE=""
if command -v casync >/dev/null 2>&1; then
	log "casync make"
	drop_caches
	if timed casync casync make --store="$OUT/castr" "$OUT/idx.caidx" "$CORPUS/versions"; then
		CA_OK=1 CA_WALL=$WALL CA_RSS=$RSS CA_CPU=$CPU
		CA_SIZE=$(du -sb "$OUT/castr" "$OUT/idx.caidx" | awk '{ s += $1 } END { printf "%d", s }')
	else
		CA_NOTE="casync failed: $(tail -n 1 "$OUT/casync.err")"
	fi
	rm -rf "$OUT/castr" "$OUT/idx.caidx"
else
	CA_NOTE="casync not installed"
fi

# d) Read-back of the newest version: our tar stream against tar of the directory.
EX_OK=0 EX_NOTE="" EX_CHECK=""
log "read-back: extract --tar x@v$NV, tar cf of $LAST"
drop_caches
if timed_count extract "$BIN" -s "$STORE" extract --tar "x@v$NV" - && [ "$BYTES" -gt 0 ]; then
	EX_OK=1 EX_WALL=$WALL EX_RSS=$RSS EX_CPU=$CPU EX_BYTES=$BYTES
else
	EX_NOTE="skipped: 'spraydryfs extract --tar' failed: $(tail -n 1 "$OUT/extract.err" 2>/dev/null)"
fi
drop_caches
timed_count tar tar cf - -C "$CORPUS/versions" "$LAST" || die "tar cf of $LAST failed"
TR_WALL=$WALL TR_RSS=$RSS TR_CPU=$CPU TR_BYTES=$BYTES
# Untimed check that the stream holds the tree: entries and regular-file bytes.
if [ "$EX_OK" = 1 ]; then
	read -r ex_n ex_b < <("$BIN" -s "$STORE" extract --tar "x@v$NV" - 2>/dev/null | tar_summary || true)
	dir_n=$(find "$CORPUS/versions/$LAST" -mindepth 1 | wc -l)
	dir_b=$(find "$CORPUS/versions/$LAST" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
	if [ "${ex_b:-x}" = "$dir_b" ] && [ "${ex_n:-0}" -ge "$dir_n" ]; then
		EX_CHECK="stream checked: $ex_n entries, $ex_b file bytes (dir: $dir_n, $dir_b)"
	else
		EX_CHECK="stream MISMATCH: ${ex_n:-?} entries, ${ex_b:-?} file bytes; dir has $dir_n, $dir_b"
	fi
fi

# ---- report ----------------------------------------------------------------
LOAD_NOTE="load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
rate() { calc '%.1f' 'w > 0 ? b/1e6/w : 0' "b=$1" "w=$2"; }
verdict() { [ "$1" = 1 ] && echo "met" || echo "NOT met"; }

SD_RATIO=$(calc '%.1f' 'l/s' "l=$SD_LOGICAL" "s=$SD_SIZE")
ROWS=() # tool|wall|cpu|rss|size|rate|note
ROWS+=("spraydryfs ingest x@v1..v$NV|$SD_WALL|$SD_CPU|$(kmb "$SD_RSS")|$(mb "$SD_SIZE")|$(rate "$SD_LOGICAL" "$SD_WALL")|$NV processes; sum of wall, max RSS; ${SD_RATIO}x of logical")
if [ "$SQ_OK" = 1 ]; then
	ROWS+=("mksquashfs -comp zstd|$SQ_WALL|$SQ_CPU|$(kmb "$SQ_RSS")|$(mb "$SQ_SIZE")|$(rate "$CORPUS_BYTES" "$SQ_WALL")|one image of versions/")
else
	ROWS+=("mksquashfs -comp zstd|-|-|-|-|-|$SQ_NOTE")
fi
if [ "$CA_OK" = 1 ]; then
	ROWS+=("casync make|$CA_WALL|$CA_CPU|$(kmb "$CA_RSS")|$(mb "$CA_SIZE")|$(rate "$CORPUS_BYTES" "$CA_WALL")|one archive of versions/; store + index")
else
	ROWS+=("casync make|-|-|-|-|-|$CA_NOTE")
fi
if [ "$EX_OK" = 1 ]; then
	ROWS+=("spraydryfs extract --tar x@v$NV|$EX_WALL|$EX_CPU|$(kmb "$EX_RSS")|$(mb "$EX_BYTES")|$(rate "$EX_BYTES" "$EX_WALL")|size = tar stream; $EX_CHECK")
else
	ROWS+=("spraydryfs extract --tar x@v$NV|-|-|-|-|-|$EX_NOTE")
fi
ROWS+=("tar cf (plain dir $LAST)|$TR_WALL|$TR_CPU|$(kmb "$TR_RSS")|$(mb "$TR_BYTES")|$(rate "$TR_BYTES" "$TR_WALL")|size = tar stream")

CHECKS=() # what|value|verdict
if [ "$CA_OK" = 1 ]; then
	CHECKS+=("ours/casync wall|$(calc '%.2f' 'a/b' "a=$SD_WALL" "b=$CA_WALL")x|-")
	CHECKS+=("ours/casync size|$(calc '%.2f' 'a/b' "a=$SD_SIZE" "b=$CA_SIZE")x|-")
	CHECKS+=("target: ingest wall <= casync's|${SD_WALL}s vs ${CA_WALL}s|$(verdict "$(calc '%d' 'a <= b' "a=$SD_WALL" "b=$CA_WALL")")")
else
	CHECKS+=("target: ingest wall <= casync's|no casync run|n/a")
fi
if [ "$SQ_OK" = 1 ]; then
	CHECKS+=("ours/mksquashfs wall|$(calc '%.2f' 'a/b' "a=$SD_WALL" "b=$SQ_WALL")x|-")
	CHECKS+=("ours/mksquashfs size|$(calc '%.2f' 'a/b' "a=$SD_SIZE" "b=$SQ_SIZE")x|-")
fi
if [ "$EX_OK" = 1 ]; then
	CHECKS+=("read-back: extract/tar wall|$(calc '%.2f' 'a/b' "a=$EX_WALL" "b=$TR_WALL")x|-")
fi
CHECKS+=("target: store <= $TARGET_STORE_MB MB|$(mb "$SD_SIZE") MB|$(verdict "$(calc '%d' 'a/1e6 <= b' "a=$SD_SIZE" "b=$TARGET_STORE_MB")")")
CHECKS+=("target: ingest RSS <= $TARGET_RSS_MB MB|$(kmb "$SD_RSS") MB|$(verdict "$(calc '%d' 'k*1024/1e6 <= b' "k=$SD_RSS" "b=$TARGET_RSS_MB")")")

HEAD="SprayDryFS ingest benchmark, $(date -u +%Y-%m-%dT%H:%MZ), rev $REV"
CORPUS_NOTE="corpus: $CORPUS, $NV versions (${VERSIONS[0]} .. $LAST), $CORPUS_FILES files, $(mb "$CORPUS_BYTES") MB logical"

# Plain text on stdout.
{
	echo
	echo "$HEAD"
	echo "machine: $HOST_NOTE"
	echo "$CORPUS_NOTE"
	echo "$CACHE_NOTE"
	echo "$LOAD_NOTE"
	echo "MB = 10^6 bytes; MB/s = logical input bytes (ingest) or stream bytes (read-back) per wall second"
	echo
	fmt='%-34s %9s %9s %12s %10s %8s  %s\n'
	# shellcheck disable=SC2059
	printf "$fmt" tool "wall s" "CPU s" "peak RSS MB" "size MB" "MB/s" note
	for r in "${ROWS[@]}"; do
		IFS='|' read -r t w c m s x n <<<"$r"
		# shellcheck disable=SC2059
		printf "$fmt" "$t" "$w" "$c" "$m" "$s" "$x" "$n"
	done
	echo
	for r in "${CHECKS[@]}"; do
		IFS='|' read -r t v ok <<<"$r"
		[ "$ok" = "-" ] && ok=""
		printf '%-36s %-22s %s\n' "$t" "$v" "$ok"
	done
	echo
	echo "spraydryfs per version:"
	fmt='%-6s %-10s %8s %8s %12s %8s %10s %10s %12s %10s\n'
	# shellcheck disable=SC2059
	printf "$fmt" root dir "wall s" "CPU s" "peak RSS MB" files "read files" "new chunks" "+stored MB" "store MB"
	for ((i = 1; i <= NV; i++)); do
		# shellcheck disable=SC2059
		printf "$fmt" "x@v$i" "${VERSIONS[i - 1]}" "${V_WALL[i]}" "${V_CPU[i]}" "$(kmb "${V_RSS[i]}")" "${V_FILES[i]}" \
			"${V_READ[i]}" "${V_CHUNKS[i]}" "$(mb "${V_STORED[i]}")" "$(mb "${V_STORE[i]}")"
	done
	echo
	echo "results: $OUT/results.md, $OUT/results.json"
}

# Markdown.
{
	echo "# $HEAD"
	echo
	echo "- machine: $HOST_NOTE"
	echo "- $CORPUS_NOTE"
	echo "- $CACHE_NOTE"
	echo "- $LOAD_NOTE"
	echo "- MB = 10^6 bytes; MB/s = logical input bytes (ingest) or stream bytes (read-back) per wall second"
	echo
	echo "| tool | wall s | CPU s | peak RSS MB | size MB | MB/s | note |"
	echo "|---|---:|---:|---:|---:|---:|---|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r t w c m s x n <<<"$r"
		echo "| $t | $w | $c | $m | $s | $x | $n |"
	done
	echo
	echo "| check | value | |"
	echo "|---|---|---|"
	for r in "${CHECKS[@]}"; do
		IFS='|' read -r t v ok <<<"$r"
		[ "$ok" = "-" ] && ok=""
		echo "| $t | $v | $ok |"
	done
	echo
	echo "| root | dir | wall s | CPU s | peak RSS MB | files | read files | new chunks | +stored MB | store MB |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((i = 1; i <= NV; i++)); do
		echo "| x@v$i | ${VERSIONS[i - 1]} | ${V_WALL[i]} | ${V_CPU[i]} | $(kmb "${V_RSS[i]}") | ${V_FILES[i]} |" \
			"${V_READ[i]} | ${V_CHUNKS[i]} | $(mb "${V_STORED[i]}") | $(mb "${V_STORE[i]}") |"
	done
} >"$OUT/results.md"

# JSON: raw numbers (seconds, KiB for RSS, bytes for sizes); null when not run.
jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
tool_json() { # OK WALL CPU RSS SIZE NOTE
	if [ "$1" = 1 ]; then
		printf '{"wall_s": %s, "cpu_s": %s, "peak_rss_kib": %s, "size_bytes": %s}' "$2" "$3" "$4" "$5"
	else
		printf '{"wall_s": null, "cpu_s": null, "peak_rss_kib": null, "size_bytes": null, "note": %s}' "$(jstr "$6")"
	fi
}
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"), \"rev\": $(jstr "$REV"), \"machine\": $(jstr "$HOST_NOTE"),"
	echo "  \"loadavg_start\": $(jstr "$LOAD_START"), \"loadavg_end\": $(jstr "$(cut -d' ' -f1-3 /proc/loadavg)"),"
	echo "  \"caches_dropped\": $([[ $CACHE_NOTE == *NOT* ]] && echo false || echo true),"
	echo "  \"corpus\": {\"path\": $(jstr "$CORPUS"), \"versions\": $NV, \"files\": $CORPUS_FILES, \"bytes\": $CORPUS_BYTES},"
	echo "  \"spraydryfs\": {\"wall_s\": $SD_WALL, \"cpu_s\": $SD_CPU, \"peak_rss_kib\": $SD_RSS, \"size_bytes\": $SD_SIZE, \"logical_bytes\": $SD_LOGICAL,"
	echo "    \"versions\": ["
	for ((i = 1; i <= NV; i++)); do
		sep=,
		[ "$i" = "$NV" ] && sep=
		printf '      {"root": "x@v%d", "dir": %s, "wall_s": %s, "cpu_s": %s, "peak_rss_kib": %s, "ingest_s": %s, "files": %s, "bytes": %s, "read_files": %s, "new_chunks": %s, "stored_bytes": %s, "store_bytes": %s}%s\n' \
			"$i" "$(jstr "${VERSIONS[i - 1]}")" "${V_WALL[i]}" "${V_CPU[i]}" "${V_RSS[i]}" "${V_SECS[i]}" "${V_FILES[i]}" "${V_BYTES[i]}" \
			"${V_READ[i]}" "${V_CHUNKS[i]}" "${V_STORED[i]}" "${V_STORE[i]}" "$sep"
	done
	echo "    ]},"
	echo "  \"mksquashfs\": $(tool_json "$SQ_OK" "${SQ_WALL:-}" "${SQ_CPU:-}" "${SQ_RSS:-}" "${SQ_SIZE:-}" "$SQ_NOTE"),"
	echo "  \"casync\": $(tool_json "$CA_OK" "${CA_WALL:-}" "${CA_CPU:-}" "${CA_RSS:-}" "${CA_SIZE:-}" "$CA_NOTE"),"
	echo "  \"extract_tar\": $(tool_json "$EX_OK" "${EX_WALL:-}" "${EX_CPU:-}" "${EX_RSS:-}" "${EX_BYTES:-}" "$EX_NOTE"),"
	echo "  \"tar_dir\": $(tool_json 1 "$TR_WALL" "$TR_CPU" "$TR_RSS" "$TR_BYTES" ""),"
	echo "  \"targets\": {\"store_mb\": $TARGET_STORE_MB, \"ingest_rss_mb\": $TARGET_RSS_MB, \"wall_vs\": \"casync\"}"
	echo "}"
} >"$OUT/results.json"
