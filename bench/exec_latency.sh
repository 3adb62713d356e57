#!/bin/bash
# exec_latency.sh - wall time of `airlock exec --runtime sh -c true` (a full
# task: CLI -> broker -> credd mint -> worker -> sandbox -> revoke), beside
# baselines measured in the same run: plain `sh -c true` and the same
# command under bubblewrap with every namespace unshared.
#   usage: bench/exec_latency.sh [BUILD_DIR] [RUNS]     (as root)
# Prints medians; asserts nothing (the machines are shared and noisy).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
RUNS=${2:-20}
BIN=$BUILD/bin
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine bubblewrap >/dev/null

TMP=$(mktemp -d /tmp/airlock-bench.XXXXXX)
cleanup() { kill "$CREDD" "$BROKER" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
"$BIN/airlock-credd" --socket "$TMP/credd.sock" --state-dir "$TMP/credd" 2>"$TMP/credd.log" &
CREDD=$!
"$BIN/airlock-broker" --socket "$TMP/broker.sock" --credd "unix:$TMP/credd.sock" \
    --state-dir "$TMP/broker" 2>"$TMP/broker.log" &
BROKER=$!
for _ in $(seq 100); do
    "$BIN/airlock" --credd "unix:$TMP/credd.sock" keys >/dev/null 2>&1 &&
        [ -S "$TMP/broker.sock" ] && break
    sleep 0.05
done

export AIRLOCK_BROKER="unix:$TMP/broker.sock"
cmds=("$BIN/airlock exec --runtime sh -c true" "sh -c true")
command -v bwrap >/dev/null && cmds+=("bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev sh -c true")
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$TMP/h.json" "${cmds[@]}" >/dev/null
/usr/bin/python3 - "$TMP/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['median']*1000:8.2f} ms median  {r['min']*1000:8.2f} min  {r['max']*1000:8.2f} max  {r['command']}")
PY
