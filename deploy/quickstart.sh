#!/bin/bash
# quickstart.sh - from a fresh Debian 12 to a running Airlock, as root:
# installs the packages, builds into build/, (re)starts airlock-credd and
# airlock-broker in the background on the default Unix sockets, runs one
# sample task and says what to type next. Exits non-zero with a message on
# the first step that fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build"
BIN="$BUILD/bin"
RUN_DIR=/run/airlock
STATE_DIR=/var/lib/airlock
LOG_DIR=/var/log/airlock
CREDD_SOCK="$RUN_DIR/credd.sock"
BROKER_SOCK="$RUN_DIR/broker.sock"
WAIT_SECONDS=30

step() { echo "==> $*"; }
die() { echo "quickstart: FAILED: $*" >&2; exit 1; }
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

[ "$(id -u)" = 0 ] || die "run as root (it installs packages, writes /run/airlock and /var/lib/airlock)"
cd "$ROOT"

step "installing Debian packages"
"$ROOT/deploy/install-deps.sh" || die "installing packages"

step "building into $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || die "cmake configure"
cmake --build "$BUILD" -j"$(nproc)" >/dev/null || die "build (run: cmake --build build)"
for b in airlock airlock-credd airlock-broker airlock-worker; do
    [ -x "$BIN/$b" ] || die "$BIN/$b was not built"
done

step "preparing $RUN_DIR, $STATE_DIR, $LOG_DIR"
install -d -m 0750 "$RUN_DIR" "$LOG_DIR"
install -d -m 0700 "$STATE_DIR" "$STATE_DIR/credd" "$STATE_DIR/broker"

# Stops a daemon a previous quickstart left, by its pid file; only if that
# pid still runs one of our binaries.
stop_daemon() {
    local name=$1 pidfile="$RUN_DIR/$1.pid" pid exe
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$exe" == */airlock-$name* ]]; then
        echo "    stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "    $name did not stop in 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile"
}

step "stopping daemons left from a previous quickstart"
stop_daemon broker
stop_daemon credd

# Starts NAME in its own session, stdout/stderr to the log, pid to the pid file.
start_daemon() {
    local name=$1; shift
    echo "    starting airlock-$name (log $LOG_DIR/$name.log)"
    setsid nohup "$BIN/airlock-$name" "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
}

# Waits until CHECK succeeds, failing early if the daemon died.
wait_for() {
    local name=$1; shift
    local pid deadline=$((SECONDS + WAIT_SECONDS))
    pid=$(cat "$RUN_DIR/$name.pid")
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            die "airlock-$name exited during start-up (log above, $LOG_DIR/$name.log)"
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            die "airlock-$name did not answer within ${WAIT_SECONDS} s"
        fi
        sleep 0.2
    done
}

step "starting airlock-credd and airlock-broker"
start_daemon credd --socket "$CREDD_SOCK" --state-dir "$STATE_DIR/credd"
wait_for credd "$BIN/airlock" --credd "unix:$CREDD_SOCK" keys
start_daemon broker --socket "$BROKER_SOCK" --credd "unix:$CREDD_SOCK" --state-dir "$STATE_DIR/broker"
wait_for broker "$BIN/airlock" --broker "unix:$BROKER_SOCK" --credd "unix:$CREDD_SOCK" health

step "running a sample task"
echo "    \$ airlock exec --runtime python3 -c 'import os; print(6*7)'"
out=$("$BIN/airlock" --broker "unix:$BROKER_SOCK" exec --runtime python3 -c 'import os; print(6*7)') ||
    die "the sample task failed (exit $?; logs in $LOG_DIR)"
echo "    $out"
[ "$out" = 42 ] || die "the sample task printed '$out', expected 42"

cat <<EOF

Airlock is running: broker unix:$BROKER_SOCK, credd unix:$CREDD_SOCK.

Try:
  $BIN/airlock exec -c 'print("hello from the sandbox")'
  $BIN/airlock exec --runtime sh -c 'echo hi; exit 3'; echo "exit \$?"
  $BIN/airlock exec --json --runtime sh -c 'printf %s "\$AIRLOCK_TOKEN"'
  $BIN/airlock exec --timeout-ms 500 --runtime sh -c 'sleep 60'; echo "exit \$?   # 124: timeout"
  $BIN/airlock token introspect --id TOKEN_ID      # token_id from the "started" JSON line
  $BIN/airlock keys                                # the JWKS that verifies task tokens
  $BIN/airlock health

Logs: $LOG_DIR/{credd,broker}.log
Stop: kill \$(cat $RUN_DIR/broker.pid) \$(cat $RUN_DIR/credd.pid)
Tests: ./deploy/test.sh
EOF
