#!/bin/bash
# run.sh [BUILD_DIR] [SECONDS] - builds the libFuzzer targets with clang
# (-DAIRLOCK_FUZZ=ON, ASan + UBSan) in BUILD_DIR (default build-fuzz) and
# runs each for SECONDS (default $FUZZ_SECONDS, else 60) on a scratch copy of
# its seed corpus in tests/fuzz/corpus. Exits non-zero if any target crashes,
# leaks, times out, runs out of memory or fails to build, and prints the
# reproducer's path: everything a run writes is in BUILD_DIR/fuzz-out/TARGET
# (log, grown corpus, artifacts), never in the source tree.
#   FUZZ_SECONDS=N     per-target seconds when SECONDS is not given
#   FUZZ_PROTOBUF_C=   auto (default): instrument protobuf-c's runtime, built
#                      from Debian's source of the installed version (fetched
#                      once with apt-get source into BUILD_DIR); if that cannot
#                      be had, say so and use the uninstrumented system library.
#                      off: the system library. A path: that protobuf-c.c.
# Installs clang with apt-get when it is missing (as root).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build-fuzz}
SECS=${2:-${FUZZ_SECONDS:-60}}
PBC=${FUZZ_PROTOBUF_C:-auto}
TARGETS=(fuzz_requests fuzz_frame fuzz_assign fuzz_jwt fuzz_config)

die() { echo "fuzz: $*" >&2; exit 1; }
warn() { echo "fuzz: WARNING: $*" >&2; }

[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, not '$SECS'"

if ! command -v clang >/dev/null; then
    [ "$(id -u)" = 0 ] || die "clang is missing (apt-get install clang, as root)"
    echo "fuzz: installing clang"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # clang-14 -> libclang-common-14-dev -> libclang-rt-14-dev (libFuzzer, ASan)
    apt-get install -y -qq --no-install-recommends clang >/dev/null ||
        die "apt-get install clang failed"
fi
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

# Debian's source of the installed libprotobuf-c-dev, in $BUILD/protobuf-c:
# prints the path of its protobuf-c.c. apt-get verifies the signed index and
# the files' hashes; a private sources list and state directory leave the
# system's apt configuration alone.
fetch_protobuf_c() {
    local ver dir=$BUILD/protobuf-c apt
    ver=$(dpkg-query -W -f='${source:Version}' libprotobuf-c-dev 2>/dev/null) || return 1
    local tree=$dir/src-$ver
    if [ ! -f "$tree/protobuf-c/protobuf-c.c" ]; then
        rm -rf "$dir" && mkdir -p "$dir/lists/partial" "$dir/sources.d" "$dir/dl" || return 1
        cat >"$dir/sources.d/debian-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $(. /etc/os-release && echo "$VERSION_CODENAME")
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$dir/sources.d"
             -o Dir::State::Lists="$dir/lists" -o Debug::NoLocking=1)
        timeout 300 "${apt[@]}" update >"$dir/log" 2>&1 &&
            (cd "$dir/dl" && timeout 300 "${apt[@]}" source --download-only "protobuf-c=$ver") \
                >>"$dir/log" 2>&1 || { tail -n 5 "$dir/log" >&2; return 1; }
        if command -v dpkg-source >/dev/null; then
            dpkg-source -x "$dir/dl/protobuf-c_$ver.dsc" "$tree" >>"$dir/log" 2>&1 || return 1
        elif [ -n "$(tar -tJf "$dir/dl/protobuf-c_$ver.debian.tar.xz" | grep -x 'debian/patches/series')" ]; then
            echo "Debian patches protobuf-c and dpkg-source (dpkg-dev) is missing" >&2
            return 1
        else
            mkdir -p "$tree" && tar -xzf "$dir/dl/protobuf-c_${ver%-*}.orig.tar.gz" \
                --strip-components=1 -C "$tree" || return 1
        fi
    fi
    [ -f "$tree/protobuf-c/protobuf-c.c" ] && echo "$tree/protobuf-c/protobuf-c.c"
}

case "$PBC" in
off) pbc_src= ;;
auto)
    if ! pbc_src=$(fetch_protobuf_c); then
        pbc_src=
        warn "could not fetch protobuf-c's source (see $BUILD/protobuf-c/log):" \
             "protobuf decoding runs without coverage feedback"
    fi
    ;;
*) [ -f "$PBC" ] || die "FUZZ_PROTOBUF_C: no such file: $PBC"; pbc_src=$PBC ;;
esac

CC=clang cmake -S "$SRC" -B "$BUILD" -DAIRLOCK_FUZZ=ON -DAIRLOCK_FUZZ_PROTOBUF_C="$pbc_src" \
    >"$BUILD/configure.log" 2>&1 || { tail -n 20 "$BUILD/configure.log" >&2; die "configure failed"; }
cmake --build "$BUILD" --target fuzz -j"$(nproc)" >"$BUILD/build.log" 2>&1 ||
    { tail -n 40 "$BUILD/build.log" >&2; die "build failed"; }
echo "fuzz: protobuf-c runtime: ${pbc_src:-the system library (not instrumented)}"

OUT=$BUILD/fuzz-out
rm -rf "$OUT"
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$OUT/$t/corpus" "$OUT/$t/artifacts"
    cp "$HERE/corpus/$t/"* "$OUT/$t/corpus/"
    echo "fuzz: $t for ${SECS}s"
    # -timeout: one input running 20 s is a finding (a hang), generous for a
    # loaded machine; -rss_limit_mb: one growing without bound is too.
    if ! (cd "$OUT/$t" && "$BUILD/bin/$t" -max_total_time="$SECS" -rss_limit_mb=2048 \
            -timeout=20 -print_final_stats=1 -artifact_prefix="$OUT/$t/artifacts/" \
            "$OUT/$t/corpus" >"$OUT/$t/log" 2>&1); then
        failed+=("$t")
        tail -n 60 "$OUT/$t/log" >&2
        for f in "$OUT/$t/artifacts"/*; do
            [ -e "$f" ] && echo "fuzz: $t reproducer: $f (replay: $BUILD/bin/$t $f)" >&2
        done
        echo "fuzz: $t FAILED; log: $OUT/$t/log" >&2
    else
        grep -E "^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs)" "$OUT/$t/log" | tail -n 1 || true
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    die "failed: ${failed[*]}"
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s clean"
