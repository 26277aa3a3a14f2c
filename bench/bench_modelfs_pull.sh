#!/usr/bin/env bash
# bench_modelfs_pull.sh - `modelfs pull` of one large file from the loopback
# test hub against `curl URL | openssl dgst -sha256` measured in the same run,
# for both roots of trust: hub checksums (whole-file SHA-256, then chunks)
# and a signed manifest (every chunk verified as it arrives, then the
# whole-file SHA-256 over the cache). Prints times and ratios.
#
#   bench/bench_modelfs_pull.sh [SIZE_MIB]     (default 1024)
#
# Env: MFS_BUILD_DIR (default ./build), MFS_SOURCE_DIR, BENCH_RUNS (default 3).
set -euo pipefail
size_mib=${1:-1024}
src=${MFS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${MFS_BUILD_DIR:-$src/build}
runs=${BENCH_RUNS:-3}
M=$build/modelfs
for tool in python3 curl openssl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 77; }
done
[ -x "$M" ] || { echo "bench: build modelfs first ($M)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-bench-XXXXXX")
hub_pid=
cleanup() {
	[ -n "$hub_pid" ] && { kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT
C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
mkdir -p "$work/root/bench/hub/$C1" "$work/root/bench/signed/$C2"
echo "{\"branches\":{\"main\":\"$C1\"}}" >"$work/root/bench/hub/refs.json"
echo "{\"branches\":{\"main\":\"$C2\"}}" >"$work/root/bench/signed/refs.json"
# Random bytes with a valid GGUF header would need the generator; the
# selection rules only need a .gguf name, and admission validates the
# structure, so the file is a real GGUF of the requested size.
"$build/mfs-gen" gguf "$work/root/bench/hub/$C1/big.gguf" --tensors 64 \
	--tensor-bytes $(( (size_mib << 20) / 64 )) --seed 7 >/dev/null
cp "$work/root/bench/hub/$C1/big.gguf" "$work/root/bench/signed/$C2/big.gguf"
"$M" keygen "$work/k" >/dev/null
"$M" publish --key "$work/k.key" --repo bench/signed "$work/root/bench/signed/$C2" >/dev/null
bytes=$(stat -c %s "$work/root/bench/hub/$C1/big.gguf")

python3 "$src/tests/hub/testhub.py" "$work/root" --ready "$work/ready" --lifetime 1800 >/dev/null 2>&1 &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
read -r _ port _ <"$work/ready"
ep=http://127.0.0.1:$port
url=$ep/bench/hub/resolve/main/big.gguf
curl -sf "$ep/api/models/bench/hub/tree/main?recursive=true" >/dev/null # the hub hashes once

now() { date +%s.%N; }
best() { sort -g | head -n1; }
t_curl=() t_hub=() t_signed=()
for r in $(seq "$runs"); do
	t0=$(now); curl -sfL "$url" | openssl dgst -sha256 >/dev/null; t1=$(now)
	t_curl+=("$(echo "$t1 - $t0" | bc)")
	for mode in hub signed; do
		store=$work/store-$mode-$r
		MODELFS_STORE=$store "$M" trust hub --prefix bench/ >/dev/null
		MODELFS_STORE=$store "$M" trust add "$work/k.pub" --prefix bench/signed >/dev/null
		t0=$(now)
		MODELFS_STORE=$store "$M" pull --endpoint "$ep" "bench/$mode" >/dev/null
		t1=$(now)
		[ "$mode" = hub ] && t_hub+=("$(echo "$t1 - $t0" | bc)") || t_signed+=("$(echo "$t1 - $t0" | bc)")
		rm -rf "$store"
	done
done
c=$(printf '%s\n' "${t_curl[@]}" | best)
h=$(printf '%s\n' "${t_hub[@]}" | best)
s=$(printf '%s\n' "${t_signed[@]}" | best)
printf 'file: %d MiB from a loopback test hub, best of %d runs\n' $((bytes >> 20)) "$runs"
printf '  curl | openssl dgst -sha256      %6.2f s  (%.0f MiB/s)  baseline\n' "$c" "$(echo "$bytes / 1048576 / $c" | bc -l)"
printf '  modelfs pull (hub checksums)     %6.2f s  ratio %.2f\n' "$h" "$(echo "$h / $c" | bc -l)"
printf '  modelfs pull (signed manifest)   %6.2f s  ratio %.2f\n' "$s" "$(echo "$s / $c" | bc -l)"
