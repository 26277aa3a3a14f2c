#!/usr/bin/env bash
# Configures and builds into ./build (extra CMake options pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -v '^\[' || true
test -x build/modelfs
