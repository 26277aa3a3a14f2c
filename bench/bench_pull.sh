#!/usr/bin/env bash
# bench_pull.sh - one large LFS file pulled from the loopback test hub:
# `curl URL | openssl dgst -sha256` against the range engine (bench_fetch)
# computing the whole-file SHA-256 (hub-checksum root), verifying each range
# (manifest root), and transferring only. Prints times and ratios to the
# baseline measured in the same run.
#
#   bench/bench_pull.sh [SIZE_MIB]     (default 1024)
#
# Env: MFS_BUILD_DIR (where bench_fetch was built), MFS_SOURCE_DIR,
#      BENCH_INFLIGHT (list, "1 4 8"), BENCH_CHUNK_MIB (8).
set -euo pipefail

size_mib=${1:-1024}
src=${MFS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${MFS_BUILD_DIR:-$src/build}
fetch=$build/bench/bench_fetch
inflight=${BENCH_INFLIGHT:-"1 4 8"}
chunk=${BENCH_CHUNK_MIB:-8}

for tool in python3 curl openssl; do
	command -v "$tool" >/dev/null || { echo "bench_pull: $tool is missing" >&2; exit 77; }
done
[ -x "$fetch" ] || { echo "bench_pull: build bench_fetch first ($fetch)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-benchpull-XXXXXX")
hub_pid=
cleanup() {
	if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$work/root/bench/big/$commit"
echo "{\"branches\":{\"main\":\"$commit\"}}" >"$work/root/bench/big/refs.json"
head -c $((size_mib << 20)) /dev/urandom >"$work/root/bench/big/$commit/big.gguf"

python3 "$src/tests/hub/testhub.py" "$work/root" --ready "$work/ready" --lifetime 900 \
	>/dev/null &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { echo "bench_pull: test hub did not start" >&2; exit 1; }
read -r _ port _ <"$work/ready"
url=http://127.0.0.1:$port

# Warm-up: the hub hashes the file once for its listing; the file is then in
# the page cache for both runs.
curl -sf "$url/api/models/bench/big/tree/main?recursive=true" >/dev/null

now() { date +%s.%N; }
t0=$(now)
want=$(curl -sfL "$url/bench/big/resolve/main/big.gguf" | openssl dgst -sha256 | awk '{print $NF}')
t1=$(now)
base=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
echo "pull $size_mib MiB from the loopback test hub, $chunk MiB ranges"
report() { # label seconds
	awk -v l="$1" -v t="$2" -v b="$base" -v s="$size_mib" \
		'BEGIN { printf "  %-40s %7.3f s %8.1f MiB/s  ratio %.2f\n", l, t, s / t, t / b }'
}
report "curl | openssl dgst -sha256 (baseline)" "$base"
for n in $inflight; do
	out=$("$fetch" "$url" bench/big main big.gguf --chunk "$chunk" --inflight "$n")
	[ "${out%% *}" = "$want" ] || { echo "bench_pull: digests differ" >&2; exit 1; }
	report "engine, whole-file SHA-256, $n in flight" "${out##* }"
	out=$("$fetch" "$url" bench/big main big.gguf --chunk "$chunk" --inflight "$n" --per-range)
	report "engine, per-range SHA-256, $n in flight" "${out##* }"
	out=$("$fetch" "$url" bench/big main big.gguf --chunk "$chunk" --inflight "$n" --no-hash)
	report "engine, transfer only, $n in flight" "${out##* }"
done
