# shellcheck shell=bash
# daemons.sh - sourced by the bench scripts (compare.sh, memory.sh,
# exec_latency.sh); runs nothing by itself. It gives them:
#   bench_setup           a scratch directory $TMP on /var/tmp (a real disk, so
#                         audit fsyncs cost what they cost) and a trap that stops
#                         every daemon started here and removes $TMP on exit
#   start_credd NAME [FLAG...]
#   start_broker NAME CREDD [FLAG...]
#                         a daemon on $TMP/NAME.sock, state in $TMP/NAME, log in
#                         $TMP/NAME.log, pid in BENCH_PID[NAME]; returns once it
#                         answers (a broker: once `airlock health` passes)
#   stop_daemon NAME      SIGTERM, then wait for it
#   broker_has FLAG       does this build's airlock-broker know FLAG (--pool, ...)?
#   token_tally CREDD SINCE
#                         prints {"minted":N,"revoked":M,"task_ended":..,
#                         "backstop":..,"revoked_other":..,"active":..,"expired":..}
#                         for the tokens credd CREDD minted from unix second
#                         SINCE on, from `airlock audit tokens`; waits up to 10 s
#                         for the last revocations to land first
# The caller sets BIN (the build's bin directory) and `set -euo pipefail`.

declare -gA BENCH_PID=()

bench_setup() {
    TMP=$(mktemp -d /var/tmp/airlock-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local name
    for name in "${!BENCH_PID[@]}"; do
        kill "${BENCH_PID[$name]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}

# wait_ready NAME CMD...: polls CMD for up to 10 s; gives up loudly, with the
# daemon's log, if it never succeeds or the daemon dies.
wait_ready() {
    local name=$1
    shift
    for _ in $(seq 200); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "${BENCH_PID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: $name did not come up; its log:" >&2
    tail -n 20 "$TMP/$name.log" >&2
    exit 1
}

start_credd() {
    local name=$1
    shift
    "$BIN/airlock-credd" --socket "$TMP/$name.sock" --state-dir "$TMP/$name" "$@" \
        2>"$TMP/$name.log" &
    BENCH_PID[$name]=$!
    wait_ready "$name" "$BIN/airlock" --credd "unix:$TMP/$name.sock" keys
}

start_broker() {
    local name=$1 credd=$2
    shift 2
    "$BIN/airlock-broker" --socket "$TMP/$name.sock" --credd "unix:$TMP/$credd.sock" \
        --state-dir "$TMP/$name" "$@" 2>"$TMP/$name.log" &
    BENCH_PID[$name]=$!
    wait_ready "$name" "$BIN/airlock" --broker "unix:$TMP/$name.sock" \
        --credd "unix:$TMP/$credd.sock" health
}

stop_daemon() {
    kill "${BENCH_PID[$1]}" 2>/dev/null || true
    wait "${BENCH_PID[$1]}" 2>/dev/null || true
    unset "BENCH_PID[$1]"
}

broker_has() {
    "$BIN/airlock-broker" --help 2>&1 | grep -q -- "$1"
}

token_tally() {
    local credd=$1 since=$2 out="$TMP/tokens.$1.json"
    for _ in $(seq 20); do
        "$BIN/airlock" --credd "unix:$TMP/$credd.sock" audit tokens --since "$since" --json \
            >"$out" || true
        grep -q '"ended": *"active"' "$out" || break
        sleep 0.5
    done
    /usr/bin/python3 - "$out" <<'PY'
import collections, json, sys
ended = collections.Counter(json.loads(l)["ended"] for l in open(sys.argv[1]) if l.strip())
print(json.dumps({
    "minted": sum(ended.values()),
    "revoked": ended["task_ended"] + ended["backstop"] + ended["revoked"],
    "task_ended": ended["task_ended"], "backstop": ended["backstop"],
    "revoked_other": ended["revoked"], "active": ended["active"], "expired": ended["expired"],
}))
PY
}
