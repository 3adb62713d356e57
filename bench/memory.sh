#!/bin/bash
# memory.sh - the daemons' memory under load: credd + broker in a scratch
# state directory, airlock-loadgen keeping CONCURRENCY (64) sh tasks of
# `sleep 0.05` in flight for DURATION seconds (default 300), and every second
# VmRSS, VmHWM and open fds of the broker and of credd, and how many workers
# the broker has (its child processes, to show the tasks really are in flight).
# Prints, for each daemon and for the sum: RSS before the load, after the
# ramp-up (the first 10% of the samples), the peak (VmHWM), at the end, and
# the least-squares slope in KiB/min fitted over the samples after the ramp-up;
# then the load's result and whether every token it minted was revoked.
#   usage: bench/memory.sh [BUILD_DIR] [DURATION_S]   (as root)
#   env:   BROKER_FLAGS  extra broker flags, word-split (e.g. with the warm
#                        pool: BROKER_FLAGS="--queue 64 --pool sh=8")
#          CONCURRENCY (64), MAX_TASKS (64), CODE ("sleep 0.05")
# Target (issue 6): <= 64 MiB RSS together, flat. Prints; asserts nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
DURATION=${2:-300}
BIN=$BUILD/bin
CONCURRENCY=${CONCURRENCY:-64}
MAX_TASKS=${MAX_TASKS:-64}
CODE=${CODE:-sleep 0.05}
read -r -a EXTRA <<<"${BROKER_FLAGS:-}"
. "$ROOT/bench/daemons.sh"

bench_setup
start_credd credd
start_broker broker credd --max-tasks "$MAX_TASKS" "${EXTRA[@]}"

# One line a second: time, then rss hwm fds for the broker and for credd
# (KiB, KiB, count), then the broker's child processes. Shell builtins only
# (but sleep): forks are slow when the load has both cores busy.
mem_of() {
    local key value rss=0 hwm=0 fds
    while read -r key value _; do
        case $key in
        VmRSS:) rss=$value ;;
        VmHWM:) hwm=$value ;;
        esac
    done <"/proc/$1/status"
    fds=("/proc/$1/fd"/*)
    printf '%s %s %s ' "$rss" "$hwm" "${#fds[@]}"
}
children_of() {  # every thread's children: each call has its own thread
    local f kids n=0
    for f in "/proc/$1/task"/*/children; do
        kids=() # the file has no newline (read fails at its end), or its thread is gone
        { read -r -a kids <"$f" || true; } 2>/dev/null
        n=$((n + ${#kids[@]}))
    done
    echo "$n"
}
sample() {
    printf '%s %s ' "$1" "$EPOCHREALTIME"
    mem_of "${BENCH_PID[broker]}"
    mem_of "${BENCH_PID[credd]}"
    children_of "${BENCH_PID[broker]}"
}
sample idle >"$TMP/mem.txt"

since=$EPOCHSECONDS
"$BIN/airlock-loadgen" --broker "unix:$TMP/broker.sock" --json --runtime sh -c "$CODE" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" >"$TMP/load.json" || true &
LOAD=$!
t0=${EPOCHREALTIME/./} i=0
while kill -0 "$LOAD" 2>/dev/null; do
    sample load >>"$TMP/mem.txt"
    # Next sample on the next whole second since t0 (us), not drifting by the
    # time a sample takes.
    i=$((i + 1))
    left=$((t0 + i * 1000000 - ${EPOCHREALTIME/./}))
    if ((left > 0)); then
        printf -v frac '%06d' $((left % 1000000))
        sleep "$((left / 1000000)).$frac"
    fi
done
wait "$LOAD" || true
token_tally credd "$since" >"$TMP/tally.json"

/usr/bin/python3 - "$TMP" "$CONCURRENCY" "$DURATION" <<'PY'
import json, os, sys
tmp, conc, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [l.split() for l in open(os.path.join(tmp, "mem.txt")) if l.strip()]
idle = rows[0]
load = [r for r in rows[1:] if r[0] == "load"]
if len(load) < 3:
    sys.exit("memory.sh: too few samples under load (did the load start?)")
t = [float(r[1]) for r in load]

def col(rs, i):
    return [int(r[i]) for r in rs]

def slope_kib_min(ts, ys):
    """Least-squares slope of ys over ts (seconds), in units per minute."""
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((x - mt) ** 2 for x in ts)
    return 60 * sum((x - mt) * (y - my) for x, y in zip(ts, ys)) / var if var else 0.0

skip = len(load) // 10
series = {"broker": (2, 3, 4), "credd": (5, 6, 7)}
rss = {k: col(load, i) for k, (i, _, _) in series.items()}
rss["sum"] = [a + b for a, b in zip(rss["broker"], rss["credd"])]
hwm = {k: max(col(load, h)) for k, (_, h, _) in series.items()}
idle_rss = {k: int(idle[i]) for k, (i, _, _) in series.items()}
idle_rss["sum"] = idle_rss["broker"] + idle_rss["credd"]
peak = dict(hwm, sum=max(rss["sum"]))  # the sum's peak: of the sampled sums
fds = {k: col(load, f) for k, (_, _, f) in series.items()}
workers = col(load, 8)

mib = lambda kib: f"{kib / 1024:.1f}"
print(f"{'RSS, MiB':8} {'idle':>7} {'start':>7} {'peak':>7} {'end':>7} {'KiB/min':>9}   fds start/max/end")
for k in ("broker", "credd", "sum"):
    s = slope_kib_min(t[skip:], rss[k][skip:])
    fd = f"{fds[k][skip]}/{max(fds[k])}/{fds[k][-1]}" if k in fds else ""
    print(f"{k:8} {mib(idle_rss[k]):>7} {mib(rss[k][skip]):>7} {mib(peak[k]):>7} {mib(rss[k][-1]):>7}"
          f" {s:>+9.1f}   {fd}")
print(f"(idle: before the load; start: {t[skip] - t[0]:.0f} s in, after the ramp-up (the first 10%"
      f" of the {len(load)} samples), where the slope's fit begins; peak: VmHWM for a daemon,"
      " the largest sampled sum for the sum)")
print(f"workers in flight: mean {sum(workers) / len(workers):.1f}, max {max(workers)} "
      f"(for {conc} streams)")
lg = json.load(open(os.path.join(tmp, "load.json")))
print(f"load: {lg['tasks']} tasks in {lg['elapsed_s']:.0f} s ({lg['tasks_per_s']:.0f}/s), "
      f"{lg['errors']} errors{' ' + json.dumps(lg['error_kinds']) if lg['errors'] else ''}, p50 {lg['p50_ms']} ms, p99 {lg['p99_ms']} ms")
tally = json.load(open(os.path.join(tmp, "tally.json")))
print(f"tokens minted {tally['minted']}, revoked {tally['revoked']} "
      f"({tally['task_ended']} task_ended, {tally['backstop']} backstop), "
      f"active {tally['active']}, expired {tally['expired']}")
print(f"target: <= 64 MiB together and flat over {duration} s; "
      f"peak sum {mib(peak['sum'])} MiB, {peak['sum'] / 1024 / 64:.2f}x the target")
PY
