#!/usr/bin/env bash
# bench/dict.sh -- dictionaries on the gomod corpus, side by side in one run:
#  1. our trainer vs zstd --train on the same samples of the first version
#     (time; held-out size through the same klauspost encoder);
#  2. all versions ingested without a dictionary and with one trained on the
#     first version (store size, ingest time);
#  3. read speed with and without dictionaries (go test -bench, chunk codec).
# Environment as bench/run.sh: SPRAYDRYFS_CORPUS, BENCH_OUT, SPRAYDRYFS_BIN.
set -euo pipefail
CORPUS=$(realpath -m "${SPRAYDRYFS_CORPUS:-/var/tmp/spraydryfs-corpus}")
OUT=$(realpath -m "${BENCH_OUT:-bench/out}")/dict
BIN=$(realpath -m "${SPRAYDRYFS_BIN:-bin/spraydryfs}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d "$CORPUS/versions" ] || bash ../shared/bench/corpus-gomod.sh "$CORPUS" >&2
command -v zstd >/dev/null || { apt-get install -y -qq zstd >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq zstd >/dev/null; }; }
rm -rf "$OUT" && mkdir -p "$OUT"
mapfile -t versions < <(find "$CORPUS/versions" -mindepth 1 -maxdepth 1 -type d | sort -V)
first=${versions[0]}

echo "== 1. trainer quality and time (samples of $(basename "$first"))"
go run ./bench/dictcmp -src "$first" -work "$OUT"

echo
echo "== 2. all ${#versions[@]} versions, without and with a dictionary trained on $(basename "$first")"
ingest_all() { # STORE [ingest args...] -> prints total seconds
	local st=$1 t0 t1 i=0
	shift
	t0=$(date +%s.%N)
	for v in "${versions[@]}"; do
		i=$((i + 1))
		"$BIN" -s "$st" ingest "$@" "x@v$i" "$v" >/dev/null
	done
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
plain_s=$(ingest_all "$OUT/plain.sdfs")
t0=$(date +%s.%N)
"$BIN" -s "$OUT/dict.sdfs" train d@1 "$first" >/dev/null
train_s=$(echo "$(date +%s.%N) - $t0" | bc)
"$BIN" -s "$OUT/dict.sdfs" dicts default d@1
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
dict_s=$(ingest_all "$OUT/dict.sdfs")
size() { du -b --apparent-size "$1"* | awk '{s+=$1} END {printf "%.1f", s/1e6}'; }
printf '%-34s %10s %10s\n' "store" "size MB" "ingest s"
printf '%-34s %10s %10.2f\n' "without dictionary" "$(size "$OUT/plain.sdfs")" "$plain_s"
printf '%-34s %10s %10.2f\n' "with dictionary (train ${train_s}s)" "$(size "$OUT/dict.sdfs")" "$dict_s"
echo "ingest speed with/without: $(echo "scale=2; $plain_s / $dict_s" | bc)x (target >= 0.8); store target <= 75 MB"
"$BIN" -s "$OUT/dict.sdfs" check --read-data | tail -n 1

echo
echo "== 3. read speed (chunk codec, go test -bench)"
go test -run '^$' -bench 'Hydrate' -benchtime 2s ./backend/chunk/ | grep -E '^Benchmark'
