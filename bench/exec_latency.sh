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

. "$ROOT/bench/daemons.sh"
bench_setup
start_credd credd
start_broker broker credd

export AIRLOCK_BROKER="unix:$TMP/broker.sock"
cmds=("$BIN/airlock exec --runtime sh -c true" "sh -c true")
command -v bwrap >/dev/null && cmds+=("bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev sh -c true")
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$TMP/h.json" "${cmds[@]}" >/dev/null
/usr/bin/python3 - "$TMP/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['median']*1000:8.2f} ms median  {r['min']*1000:8.2f} min  {r['max']*1000:8.2f} max  {r['command']}")
PY
