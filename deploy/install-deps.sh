#!/bin/bash
# install-deps.sh - installs every Debian 12 package Airlock needs to build,
# run and test, starting from a debootstrap minbase system. Idempotent: when
# everything is already installed it changes nothing (AIRLOCK_DEPS_FORCE=1
# runs apt-get anyway). Run as root.
set -euo pipefail

PACKAGES=(
    # toolchain
    gcc libc6-dev make cmake pkg-config
    # libraries and code generators
    libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler grpc-proto
    libsodium-dev libseccomp-dev libcurl4-openssl-dev libjansson-dev libcmocka-dev libssl-dev libyaml-dev
    libsystemd-dev
    # systemd-analyze verify of deploy/systemd/ in the tests
    systemd
    # runtimes offered to tasks, and the Python test client
    python3 python3-grpcio python3-protobuf python3-jwt python3-cryptography python3-nacl
    # scripts and tests (openssl: the dev CA script)
    procps ca-certificates openssl
)

die() { echo "install-deps: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get needs it)"

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && [ "${AIRLOCK_DEPS_FORCE:-0}" != 1 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing: ${missing[*]:-${PACKAGES[*]}}"
apt-get update -qq || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null ||
    die "apt-get install failed"
echo "install-deps: done"
