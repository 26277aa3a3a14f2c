#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMFS_WERROR=ON "$@"
cd "${MFS_BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 900
