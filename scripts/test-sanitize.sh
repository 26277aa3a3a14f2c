#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer:
# builds everything with -DMFS_SANITIZE=ON (and warnings as errors) into
# build-asan/ (or $MFS_ASAN_BUILD_DIR), apart from the normal build, and runs
# every ctest test there: unit tests, the command, hub and attack scripts and
# the real mounts (the daemon itself runs sanitized). Any sanitizer report
# fails the test that triggered it: undefined behaviour aborts
# (-fno-sanitize-recover), ASan errors and leaks exit non-zero.
#
#   scripts/test-sanitize.sh                  everything
#   scripts/test-sanitize.sh -R unit/         ctest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=${MFS_ASAN_BUILD_DIR:-build-asan}
MFS_BUILD_DIR=$dir scripts/build.sh -DMFS_SANITIZE=ON -DMFS_WERROR=ON
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$dir"
ctest --output-on-failure -j2 --timeout 1500 "$@"
