#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, runs every test,
# then every libFuzzer target briefly (scripts/fuzz.sh, 10 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMFS_WERROR=ON "$@"
(cd "${MFS_BUILD_DIR:-build}" && ctest --output-on-failure -j2 --timeout 900)
scripts/fuzz.sh "${MFS_FUZZ_SECONDS:-10}"
