#!/bin/bash
# test.sh - installs the packages, builds, and runs the whole test suite with
# ctest (cmocka unit tests, sandbox tests, integration tests that start the
# real daemons). Its exit status is ctest's.
#   BUILD_DIR=dir   build directory (default build/)
#   SANITIZE=1      build with AddressSanitizer + UBSan (-DAIRLOCK_SANITIZE=ON)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
SANITIZE=${SANITIZE:-0}

if [ "$(id -u)" = 0 ]; then
    "$ROOT/deploy/install-deps.sh"
else
    echo "test.sh: not root: skipping package installation" >&2
fi

sanitize=OFF
[ "$SANITIZE" = 1 ] && sanitize=ON
echo "==> configure $BUILD_DIR (AIRLOCK_SANITIZE=$sanitize)"
cmake -S "$ROOT" -B "$BUILD_DIR" -DAIRLOCK_SANITIZE=$sanitize
echo "==> build"
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "==> test"
exec ctest --test-dir "$BUILD_DIR" --output-on-failure
