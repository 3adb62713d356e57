#!/bin/bash
# run.sh [BUILD_DIR] [SECONDS] - builds the libFuzzer targets with clang
# (-DAIRLOCK_FUZZ=ON, ASan + UBSan) in BUILD_DIR (default build-fuzz) and
# runs each for SECONDS (default 60) on a scratch copy of its seed corpus in
# tests/fuzz/corpus. Exits non-zero if any target crashes, leaks or fails to
# build; a failing input is kept in the artifacts directory it names.
# Installs clang with apt-get when it is missing (as root).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build-fuzz}
SECS=${2:-60}
TARGETS=(fuzz_requests fuzz_frame fuzz_jwt fuzz_config)

die() { echo "fuzz: $*" >&2; exit 1; }

if ! command -v clang >/dev/null; then
    [ "$(id -u)" = 0 ] || die "clang is missing (apt-get install clang, as root)"
    echo "fuzz: installing clang"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # clang-14 -> libclang-common-14-dev -> libclang-rt-14-dev (libFuzzer, ASan)
    apt-get install -y -qq --no-install-recommends clang >/dev/null ||
        die "apt-get install clang failed"
fi

CC=clang cmake -S "$SRC" -B "$BUILD" -DAIRLOCK_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target fuzz -j"$(nproc)" >/dev/null || die "build failed"

WORK=$(mktemp -d /tmp/airlock-fuzz.XXXXXX)
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
    cp "$HERE/corpus/$t/"* "$WORK/$t/corpus/"
    echo "fuzz: $t for ${SECS}s"
    if ! "$BUILD/bin/$t" -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=10 \
            -artifact_prefix="$WORK/$t/artifacts/" "$WORK/$t/corpus" \
            >"$WORK/$t/log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$WORK/$t/log" >&2
        echo "fuzz: $t FAILED; log and input in $WORK/$t" >&2
    else
        grep -E "^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs)" "$WORK/$t/log" | tail -n 1 || true
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    die "failed: ${failed[*]}"
fi
rm -rf "$WORK"
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s clean"
