#!/usr/bin/env bash
# bench/delta.sh -- delta drying on the gomod corpus (issue 7), side by side
# in one run: the store without deltas, with deltas at several chain depths,
# and solid `tar | zstd -3 --long=27` (no random access) of the same versions.
#
# Run from the repository root after `make build` (`make bench` does both):
#   bash bench/delta.sh
# Environment:
#   SPRAYDRYFS_CORPUS  corpus directory holding versions/<ver>/ (default
#                      /var/tmp/spraydryfs-corpus; built with
#                      ../shared/bench/corpus-gomod.sh when missing)
#   BENCH_OUT          work and result directory (default bench/out/delta; emptied first)
#   SPRAYDRYFS_BIN     binary to measure (default bin/spraydryfs)
#   DEPTHS             chain depths to measure (default "2 4 8"; the default depth is always included)
#
# The last configuration trains a dictionary on the first version first
# (its time counts as ingest time). For each configuration every version is ingested in order as x@v1 … x@vN
# into a fresh store (each its own process); ingest time is the sum. Reads go
# through the backend view (`extract --tar x@vK`, the newest and the oldest
# version) with the page cache dropped before each of 3 runs (the median is
# kept); the chunk cache starts empty in every process. Sizes are MB = 10^6 B.
set -euo pipefail

TARGET_MB=30

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out/delta}")
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
case $OUT in / | "$HOME" | "$PWD") die "refusing to empty BENCH_OUT=$OUT" ;; esac
rm -rf "$OUT" && mkdir -p "$OUT"
command -v zstd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null 2>&1 || die "zstd is required"; }

if [ ! -d "$CORPUS/versions" ]; then
	[ -f ../shared/bench/corpus-gomod.sh ] || die "no corpus at $CORPUS and no ../shared/bench/corpus-gomod.sh"
	log "building the corpus in $CORPUS"
	bash ../shared/bench/corpus-gomod.sh "$CORPUS" >&2
fi
mapfile -t VERSIONS < <(find "$CORPUS/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
NV=${#VERSIONS[@]}
[ "$NV" -gt 1 ] || die "need at least two versions in $CORPUS/versions"
DEFAULT=$("$BIN" ingest --help | sed -n 's/.*--delta-depth int *longest reference chain.*(default \([0-9]*\)).*/\1/p')
[ -n "$DEFAULT" ] || die "cannot read the default --delta-depth from ingest --help"
DEPTHS=$(printf '%s\n' ${DEPTHS:-2 4 8} "$DEFAULT" | sort -n -u | tr '\n' ' ')

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || log "cannot drop page caches"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }

# ingest_all NAME FLAGS... : ingest every version into $OUT/NAME.sdfs; prints seconds.
ingest_all() {
	local name=$1 i=0 start
	shift
	start=$(now)
	for v in "${VERSIONS[@]}"; do
		i=$((i + 1))
		"$BIN" -s "$OUT/$name.sdfs" ingest "$@" "x@v$i" "$CORPUS/versions/$v" >>"$OUT/$name.log" 2>&1 || die "ingest $name x@v$i failed (see $OUT/$name.log)"
	done
	calc '%.2f' "$(now) - $start"
}

# read_mbs NAME VERSION : median MB/s of 3 cold reads of x@VERSION.
read_mbs() {
	local name=$1 ver=$2 runs=() bytes start t
	for _ in 1 2 3; do
		drop_caches
		start=$(now)
		bytes=$("$BIN" -s "$OUT/$name.sdfs" extract --tar "x@$ver" - | wc -c)
		t=$(calc '%.4f' "$(now) - $start")
		runs+=("$(calc '%.1f' "$bytes / 1e6 / $t")")
	done
	printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}

size_mb() { calc '%.1f' "$(stat -c %s "$OUT/$1.sdfs") / 1e6"; }
jget() { grep -o "\"$1\":[0-9.eE+-]*" | head -n 1 | cut -d: -f2; }

log "solid tar | zstd -3 --long=27 of ${NV} versions"
drop_caches
start=$(now)
SOLID=$(tar -C "$CORPUS/versions" -cf - "${VERSIONS[@]}" | zstd -3 --long=27 -T1 -q -c | wc -c)
SOLID_S=$(calc '%.2f' "$(now) - $start")

CONFIGS="plain $(for d in $DEPTHS; do echo "d$d"; done) dict"
declare -A SIZE ING NEW OLD MEAN MAX DELTAS
for cfg in $CONFIGS; do
	case $cfg in
	plain) flags=(--no-delta) ;;
	dict) flags=() ;;
	*) flags=(--delta-depth "${cfg#d}") ;;
	esac
	log "ingest $cfg (${flags[*]})"
	drop_caches
	TRAIN_S=0
	if [ "$cfg" = dict ]; then
		# The recommended set-up for many versions: a dictionary trained on
		# the first version, made the store's default, then deltas as usual.
		start=$(now)
		"$BIN" -s "$OUT/$cfg.sdfs" train d@1 "$CORPUS/versions/${VERSIONS[0]}" >>"$OUT/$cfg.log" 2>&1 || die "train failed"
		"$BIN" -s "$OUT/$cfg.sdfs" dicts default d@1 >>"$OUT/$cfg.log" 2>&1
		TRAIN_S=$(calc '%.2f' "$(now) - $start")
	fi
	ING[$cfg]=$(calc '%.2f' "$(ingest_all "$cfg" "${flags[@]}") + $TRAIN_S")
	SIZE[$cfg]=$(size_mb "$cfg")
	st=$("$BIN" -s "$OUT/$cfg.sdfs" stats --json)
	DELTAS[$cfg]=$(echo "$st" | jget delta_chunks)
	MAX[$cfg]=$(echo "$st" | jget max_depth)
	MEAN[$cfg]=$(calc '%.2f' "$(echo "$st" | jget mean_depth)")
	log "read $cfg"
	NEW[$cfg]=$(read_mbs "$cfg" "v$NV")
	OLD[$cfg]=$(read_mbs "$cfg" v1)
	"$BIN" -s "$OUT/$cfg.sdfs" check >/dev/null || die "check $cfg failed"
done

{
	echo "# delta drying: ${NV} versions of $(basename "$CORPUS"), $(nproc) cores, $(date -u +%F\ %H:%M) UTC, load $(cut -d' ' -f1 /proc/loadavg)"
	echo
	printf '| %-26s | %8s | %9s | %12s | %13s | %12s | %10s |\n' "store" "size MB" "ingest s" "delta chunks" "depth mean/max" "read v$NV MB/s" "read v1 MB/s"
	printf '|%s|\n' "----------------------------|---------:|----------:|-------------:|---------------:|--------------:|-----------:"
	printf '| %-26s | %8s | %9s | %12s | %14s | %13s | %10s |\n' "tar + zstd -3 --long=27" "$(calc '%.1f' "$SOLID / 1e6")" "$SOLID_S" "-" "-" "(no random access)" "-"
	for cfg in $CONFIGS; do
		case $cfg in
		plain) label="no deltas" ;;
		dict) label="default + trained dictionary" ;;
		*)
			label="deltas, depth ${cfg#d}"
			if [ "${cfg#d}" = "$DEFAULT" ]; then label="$label (default)"; fi
			;;
		esac
		printf '| %-26s | %8s | %9s | %12s | %14s | %13s | %10s |\n' "$label" "${SIZE[$cfg]}" "${ING[$cfg]}" "${DELTAS[$cfg]}" "${MEAN[$cfg]} / ${MAX[$cfg]}" "${NEW[$cfg]}" "${OLD[$cfg]}"
	done
	d="d$DEFAULT"
	echo
	verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
	for c in "$d" dict; do
		echo "target: store ($c) <= ${TARGET_MB} MB: ${SIZE[$c]} MB: $(verdict "${SIZE[$c]} <= $TARGET_MB"); below solid ($(calc '%.1f' "$SOLID / 1e6") MB): $(verdict "${SIZE[$c]} * 1e6 < $SOLID")"
	done
	echo "target: ingest <= 1.5x without deltas: $(calc '%.2f' "${ING[$d]} / ${ING[plain]}")x: $(verdict "${ING[$d]} <= 1.5 * ${ING[plain]}")"
	echo "target: read newest >= 0.5x without deltas: $(calc '%.2f' "${NEW[$d]} / ${NEW[plain]}")x: $(verdict "${NEW[$d]} >= 0.5 * ${NEW[plain]}")"
	echo "target: read oldest >= 0.5x without deltas: $(calc '%.2f' "${OLD[$d]} / ${OLD[plain]}")x: $(verdict "${OLD[$d]} >= 0.5 * ${OLD[plain]}")"
} | tee "$OUT/results.md"
