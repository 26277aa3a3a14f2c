#!/usr/bin/env bash
# Configures and builds into ./build (or $MFS_BUILD_DIR); extra CMake options
# pass through. A failed configure or compile fails this script: the build's
# own exit status is checked, never the presence of an old binary.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${MFS_BUILD_DIR:-build}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cmake --build "$dir" -j"$(nproc)" >"$log" 2>&1; then
  grep -v '^\[' "$log" >&2 || true
  echo "build failed" >&2
  exit 1
fi
grep -v '^\[' "$log" | grep -v '^Consolidate compiler\|^gmake\|^make' || true
