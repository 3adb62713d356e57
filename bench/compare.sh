#!/bin/bash
# compare.sh - one table: the baselines (bare fork+exec, `bwrap --unshare-all`
# from Debian, cold unsandboxed python3) measured in this run, beside
# Airlock's end-to-end task latency (airlock-loadgen over the Unix socket:
# authn, policy, mint, sandbox, revoke, durable audit) and throughput.
# Only the cold path exists so far; the warm pool will add its rows.
#   usage: bench/compare.sh [BUILD_DIR] [TASKS] [THROUGHPUT_SECONDS]   (as root)
# Prints medians and ratios; asserts nothing (the machines are shared and noisy).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
TASKS=${2:-200}
SECONDS_TP=${3:-30}
BIN=$BUILD/bin
command -v hyperfine >/dev/null && command -v bwrap >/dev/null ||
    apt-get install -y -qq hyperfine bubblewrap >/dev/null

TMP=$(mktemp -d /var/tmp/airlock-bench.XXXXXX)  # a real disk: audit fsyncs count
cleanup() { kill "$CREDD" "$BROKER" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
"$BIN/airlock-credd" --socket "$TMP/credd.sock" --state-dir "$TMP/credd" 2>"$TMP/credd.log" &
CREDD=$!
"$BIN/airlock-broker" --socket "$TMP/broker.sock" --credd "unix:$TMP/credd.sock" \
    --state-dir "$TMP/broker" --max-tasks 64 2>"$TMP/broker.log" &
BROKER=$!
for _ in $(seq 100); do
    "$BIN/airlock" --broker "unix:$TMP/broker.sock" --credd "unix:$TMP/credd.sock" health \
        >/dev/null 2>&1 && break
    sleep 0.05
done

# Baselines, median ms.
hyperfine -N --warmup 5 --runs "$TASKS" --export-json "$TMP/h.json" \
    "/bin/true" \
    "bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true" \
    "/usr/bin/python3 -c pass" >/dev/null
lg() { "$BIN/airlock-loadgen" --broker "unix:$TMP/broker.sock" --json "$@"; }
lg --runtime sh -c true --count "$TASKS" --warmup 10 >"$TMP/sh.json" || true
lg --runtime python3 -c 'print(1)' --count "$TASKS" --warmup 10 >"$TMP/py.json" || true
lg --runtime sh -c true --concurrency 32 --duration "$SECONDS_TP" --warmup 32 >"$TMP/tp.json" || true

/usr/bin/python3 - "$TMP" <<'PY'
import json, os, sys
tmp = sys.argv[1]
h = {r["command"]: r["median"] * 1000 for r in json.load(open(os.path.join(tmp, "h.json")))["results"]}
bare = h["/bin/true"]
bwrap = next(v for k, v in h.items() if k.startswith("bwrap"))
py = h["/usr/bin/python3 -c pass"]
sh, pyt, tp = (json.load(open(os.path.join(tmp, f))) for f in ("sh.json", "py.json", "tp.json"))
rows = [
    ("fork+exec /bin/true (baseline)", f"{bare:.2f} ms", ""),
    ("bwrap --unshare-all /bin/true (baseline)", f"{bwrap:.2f} ms", ""),
    ("/usr/bin/python3 -c pass, unsandboxed (baseline)", f"{py:.2f} ms", ""),
    ("airlock sh `true`, cold, p50", f"{sh['p50_ms']:.2f} ms",
     f"{sh['p50_ms'] / bwrap:.1f}x bwrap; target <= 2 ms and < bwrap"),
    ("airlock python3 `print(1)`, cold, p50", f"{pyt['p50_ms']:.2f} ms",
     f"{pyt['p50_ms'] / py:.2f}x cold python3; target <= 5 ms and < 0.25x"),
    ("airlock sh `true`, 32 streams", f"{tp['tasks_per_s']:.0f} tasks/s",
     f"{tp['errors']} errors; target >= 400/s, 0 errors"),
]
print(f"{'figure':50} {'measured':>14}  vs")
for name, value, vs in rows:
    print(f"{name:50} {value:>14}  {vs}")
PY
