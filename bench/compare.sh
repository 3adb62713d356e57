#!/bin/bash
# compare.sh - one table: the baselines (bare fork+exec, `bwrap --unshare-all`
# from Debian, cold unsandboxed python3) measured in this run, beside
# Airlock's end-to-end task latency (airlock-loadgen over the Unix socket:
# authn, policy, mint, sandbox, revoke, durable audit) and throughput, on the
# cold path (broker started with --pool sh=0 --pool python3=0) and the warm
# one (--pool sh=4 --pool python3=4), and credd's Mint rate over gRPC with
# its audit durable and with --audit-no-fsync. Ratios against the baselines
# and the issue's targets; after each throughput run, how many of the tokens
# minted since it began were revoked (from `airlock audit tokens`).
#   usage: bench/compare.sh [BUILD_DIR] [TASKS] [THROUGHPUT_SECONDS] [MINT_SECONDS]   (as root)
#   env:   BROKER_FLAGS      extra flags for both brokers, word-split
#          MINT_CONCURRENCY  Mint threads (default 16)
#          THINK_MS, THINK_TASKS  the "agent between calls" rows: tasks one at a
#                            time with this pause after each (200 ms, 50 tasks)
# The two brokers run one after the other against one credd. A broker
# without --pool (before the warm pool) runs once, unflagged, as the cold
# path, and the warm rows say n/a.
# Prints medians and ratios; asserts nothing (the machines are shared and noisy).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
TASKS=${2:-200}
SECONDS_TP=${3:-30}
SECONDS_MINT=${4:-10}
MINT_CONCURRENCY=${MINT_CONCURRENCY:-16}
THINK_MS=${THINK_MS:-200}
THINK_TASKS=${THINK_TASKS:-50}
BIN=$BUILD/bin
read -r -a EXTRA <<<"${BROKER_FLAGS:-}"
command -v hyperfine >/dev/null && command -v bwrap >/dev/null ||
    apt-get install -y -qq hyperfine bubblewrap >/dev/null
. "$ROOT/bench/daemons.sh"
bench_setup

# Baselines, median ms.
hyperfine -N --warmup 5 --runs "$TASKS" --export-json "$TMP/h.json" \
    "/bin/true" \
    "bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true" \
    "/usr/bin/python3 -c pass" >/dev/null

lg() { "$BIN/airlock-loadgen" --json "$@"; }

start_credd credd
declare -A POOL=([cold]="--pool sh=0 --pool python3=0" [warm]="--pool sh=4 --pool python3=4")
if broker_has --pool; then
    modes=(cold warm)
else
    modes=(cold)
    POOL[cold]=""
    echo "compare.sh: this airlock-broker has no --pool: cold path only" >&2
fi
for mode in "${modes[@]}"; do
    read -r -a pool <<<"${POOL[$mode]}"
    start_broker "$mode" credd --max-tasks 64 "${pool[@]}" "${EXTRA[@]}"
    at=(--broker "unix:$TMP/$mode.sock")
    lg "${at[@]}" --runtime sh -c true --count "$TASKS" --warmup 10 >"$TMP/$mode.sh.json" || true
    lg "${at[@]}" --runtime python3 -c 'print(1)' --count "$TASKS" --warmup 10 \
        >"$TMP/$mode.py.json" || true
    # An agent between calls: THINK_MS idle after each task (the pool refills
    # then, instead of beside the next task).
    lg "${at[@]}" --runtime sh -c true --count "$THINK_TASKS" --think-ms "$THINK_MS" --warmup 3 \
        >"$TMP/$mode.sh_think.json" || true
    lg "${at[@]}" --runtime python3 -c 'print(1)' --count "$THINK_TASKS" --think-ms "$THINK_MS" \
        --warmup 3 >"$TMP/$mode.py_think.json" || true
    sleep 1 # the tally below counts from this second on: none of the runs above
    since=$EPOCHSECONDS
    lg "${at[@]}" --runtime sh -c true --concurrency 32 --duration "$SECONDS_TP" --warmup 32 \
        >"$TMP/$mode.tp.json" || true
    token_tally credd "$since" >"$TMP/$mode.tokens.json"
    stop_daemon "$mode"
done

# Mint: credds that take airlock-loadgen for the broker (nothing else calls them).
for audit in durable nofsync; do
    flags=(--broker-exe "$BIN/airlock-loadgen")
    [ "$audit" = nofsync ] && flags+=(--audit-no-fsync)
    start_credd "mint-$audit" "${flags[@]}"
    lg --mint --credd "unix:$TMP/mint-$audit.sock" --concurrency "$MINT_CONCURRENCY" \
        --duration "$SECONDS_MINT" --warmup 100 >"$TMP/mint.$audit.json" || true
    stop_daemon "mint-$audit"
done

/usr/bin/python3 - "$TMP" "$MINT_CONCURRENCY" "$TASKS" "$THINK_MS" "$THINK_TASKS" <<'PY'
import json, os, sys
tmp, mint_conc, tasks, think = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
think_tasks = int(sys.argv[5])

def load(name):
    try:
        return json.load(open(os.path.join(tmp, name)))
    except (OSError, ValueError):
        return None

h = {r["command"]: r["median"] * 1000 for r in load("h.json")["results"]}
bare = h["/bin/true"]
bwrap = next(v for k, v in h.items() if k.startswith("bwrap"))
py = h["/usr/bin/python3 -c pass"]
rows = [
    ("fork+exec /bin/true (baseline)", f"{bare:.2f} ms", ""),
    ("bwrap --unshare-all /bin/true (baseline)", f"{bwrap:.2f} ms", ""),
    ("/usr/bin/python3 -c pass, unsandboxed (baseline)", f"{py:.2f} ms", ""),
]
NA = ("n/a", "no run (a broker without --pool, or the run failed)")
for mode in ("cold", "warm"):
    sh, pyt, tp, tok = (load(f"{mode}.{f}.json") for f in ("sh", "py", "tp", "tokens"))
    rows.append((f"airlock sh `true`, {mode}, p50",) +
                ((f"{sh['p50_ms']:.2f} ms",
                  f"{sh['p50_ms'] / bwrap:.2f}x bwrap; target <= 2 ms and < bwrap") if sh else NA))
    rows.append((f"airlock python3 `print(1)`, {mode}, p50",) +
                ((f"{pyt['p50_ms']:.2f} ms",
                  f"{pyt['p50_ms'] / py:.2f}x cold python3; target <= 5 ms and < 0.25x")
                 if pyt else NA))
    for name, f, base, bname in (("sh `true`", "sh_think", bwrap, "bwrap"),
                                 ("python3 `print(1)`", "py_think", py, "cold python3")):
        r = load(f"{mode}.{f}.json")
        rows.append((f"airlock {name}, {mode}, {think} ms apart, p50",) +
                    ((f"{r['p50_ms']:.2f} ms", f"{r['p50_ms'] / base:.2f}x {bname}") if r else NA))
    if tp and tok:
        vs = (f"{tp['errors']} errors, tokens minted {tok['minted']}, revoked {tok['revoked']}"
              f" ({tok['active']} active, {tok['expired']} expired); target >= 400/s, 0 errors,"
              " all revoked")
        rows.append((f"airlock sh `true`, {mode}, 32 streams", f"{tp['tasks_per_s']:.0f} tasks/s", vs))
    else:
        rows.append((f"airlock sh `true`, {mode}, 32 streams",) + NA)
for audit, what in (("durable", "audit fdatasync'd"), ("nofsync", "--audit-no-fsync")):
    m = load(f"mint.{audit}.json")
    rows.append((f"credd Mint over gRPC, {mint_conc} threads, {what}",) +
                ((f"{m['tasks_per_s']:.0f} tokens/s",
                  f"p50 {m['p50_ms']:.2f} ms, {m['errors']} errors; target >= 20000/s")
                 if m else NA))
print(f"{'figure':52} {'measured':>15}  vs")
for name, value, vs in rows:
    print(f"{name:52} {value:>15}  {vs}")

# Where a task's time went, from the broker's own execute records (timing,
# microseconds): medians over the one-at-a-time runs above (warm-ups included):
# back to back, then THINK_MS apart.
PHASES = ("queue_us", "mint_us", "start_us", "handoff_us", "run_us", "revoke_us")
print()
print(f"{'median us':26}" + "".join(f"{p[:-3]:>9}" for p in PHASES) + f"{'sum':>9}{'p50 e2e':>9}")
for mode in ("cold", "warm"):
    try:
        recs = [json.loads(l) for l in open(os.path.join(tmp, mode, "audit.jsonl"))]
    except OSError:
        continue
    for rt, name in (("sh", "sh"), ("python3", "py")):
        t = [r["timing"] for r in recs if r.get("kind") == "execute" and r.get("runtime") == rt
             and "timing" in r]
        runs = ((f"{mode} {rt}", t[: 10 + tasks], f"{mode}.{name}.json"),
                (f"{mode} {rt} {think} ms apart", t[10 + tasks: 13 + tasks + think_tasks],
                 f"{mode}.{name}_think.json"))
        for label, sample, e2e_file in runs:
            e2e = load(e2e_file)
            if not sample or not e2e:
                continue
            med = [sorted(x[p] for x in sample)[len(sample) // 2] for p in PHASES]
            print(f"{label:26}" + "".join(f"{m:9d}" for m in med) +
                  f"{sum(med):9d}{e2e['p50_ms'] * 1000:9.0f}")
print("(the rest of p50 e2e: gRPC both ways, authn, policy, the execute record, Finished)")
PY
