#!/usr/bin/python3
"""soak.py - load the real daemons for a while, then check nothing leaked.

Starts airlock-credd and airlock-broker (tests/integration/airlock_fixture.py,
broker with --max-tasks 8 --queue 64) and has SOAK_CALLERS (64) threads call
Execute back to back for SOAK_SECONDS (300) with a mix of request kinds, each
with its expected outcomes (KINDS below). Then it checks:
  - no call had an outcome outside its kind's set. RESOURCE_EXHAUSTED is not
    expected: 64 callers fit in 8 slots plus 64 queue places, so a full
    queue would mean the broker lost count;
  - every token minted (token_ids from Started events, the broker's
    execute.start records and credd's mint records) is revoked, per credd's
    Introspect (credd is up throughout, so none may merely expire);
  - the broker's and credd's RSS and open fds are flat: sampled every
    SOAK_SAMPLE_S (2) s, the load's last fifth against its first fifth
    (tolerant bounds), and the idle fd count after the load against before;
  - nothing is left once the daemons stop: no worker (the fixture's check),
    no task process, no task cgroup.
Prints a summary: calls by kind and outcome, rate, RSS and fds first, last,
max. Exit status 0 when all checks pass, 1 otherwise.

Run by tests/soak/run.sh [BUILD_DIR] (not part of ctest).
"""
import collections
import json
import os
import random
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import grpc  # noqa: E402

from airlock.v1 import broker_pb2  # noqa: E402
from airlock_fixture import (EXECUTE, Daemons, _ppid, introspect,  # noqa: E402
                             processes_with_marker, sandbox_cgroup_dirs, split_events)

SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
CALLERS = int(os.environ.get("SOAK_CALLERS", "64"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "2"))
MAX_TASKS, QUEUE = 8, 64
RPC_TIMEOUT = 120.0  # a queued call waits its turn: generous on a loaded 2-core VM
MiB = 1 << 20
R = broker_pb2.Finished
MARKER = "47.1181"  # in every long-running task's command line: "sleep 47.1181"


def req(runtime, code, **kw):
    return broker_pb2.ExecuteRequest(runtime=runtime, code=code, **kw).SerializeToString()


# kind: (weight, request bytes, expected outcomes, cancel, expected stdout)
# An outcome is the status name, and for OK the Finished reason: "OK/TIMEOUT".
KINDS = {
    "sh_true": (14, req("sh", b"true"), {"OK/OK"}, False, b""),
    "sh_echo": (14, req("sh", b"echo soak"), {"OK/OK"}, False, b"soak\n"),
    "py_print": (12, req("python3", b"print('soak')"), {"OK/OK"}, False, b"soak\n"),
    "timeout": (10, req("sh", f"sleep {MARKER}".encode(), timeout_ms=300),
                {"OK/TIMEOUT"}, False, None),
    "memory": (8, req("python3", b"b = bytearray(200 << 20)\nfor i in range(0, len(b), 4096):\n"
                      b"    b[i] = 1\n", timeout_ms=30000,
                      limits=broker_pb2.Limits(memory_bytes=64 * MiB)),
               {"OK/MEMORY"}, False, None),
    # cancelled once Started came (running), or at a random moment (queued,
    # minting, starting or running)
    "cancel_running": (6, req("sh", f"sleep {MARKER}".encode(), timeout_ms=30000),
                       {"CANCELLED"}, "started", None),
    "cancel_any": (6, req("sh", f"sleep {MARKER}".encode(), timeout_ms=30000),
                   {"CANCELLED"}, "random", None),
    "bad_runtime": (8, req("cobol", b"DISPLAY 'x'."), {"INVALID_ARGUMENT"}, False, None),
    # the broker refuses fields it does not know (lib/rpc.c), proto3 or not
    "unknown_field": (6, req("sh", b"echo soak") +
                      broker_pb2.Finished(output_truncated=True).SerializeToString(),
                      {"INVALID_ARGUMENT"}, False, None),
    # empty code names its field (broker/validate.c)
    "empty_code": (6, req("sh", b""), {"INVALID_ARGUMENT"}, False, None),
    # not a protobuf message: a length prefix past the end
    "garbage": (4, b"\x0a\xff\xff\xff\x0f", {"INVALID_ARGUMENT"}, False, None),
    # a limit above the grant (512 MiB), within what a machine can give, is
    # policy's refusal, never trimmed
    "over_limit": (6, req("sh", b"true", limits=broker_pb2.Limits(memory_bytes=1 << 30)),
                   {"PERMISSION_DENIED"}, False, None),
}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()  # (kind, outcome)
        self.unexpected = []                   # (kind, outcome, details)
        self.tokens = set()                    # from Started events

    def record(self, kind, outcome, details, token_id):
        with self.lock:
            self.outcomes[(kind, outcome)] += 1
            if token_id:
                self.tokens.add(token_id)
            if outcome not in KINDS[kind][2] and len(self.unexpected) < 1000:
                self.unexpected.append((kind, outcome, details))


def one_call(channel, kind, rng):
    _, body, _, cancel, want_out = KINDS[kind]
    call = channel.unary_stream(EXECUTE, request_serializer=lambda b: b,
                                response_deserializer=broker_pb2.ExecuteEvent.FromString)
    stream = call(body, timeout=RPC_TIMEOUT)
    if cancel == "random":
        threading.Timer(rng.uniform(0.0, 1.5), stream.cancel).start()
    events = []
    try:
        for ev in stream:
            events.append(ev)
            if cancel == "started" and ev.WhichOneof("event") == "started":
                time.sleep(rng.uniform(0.0, 0.5))
                stream.cancel()
        status, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        status, details = e.code(), e.details()
    started, out, _, finished = split_events(events)
    token_id = started.token_id if started else ""
    if status != grpc.StatusCode.OK:
        return status.name, details, token_id
    if started is None or finished is None:
        return "OK/incomplete", f"{len(events)} events", token_id
    outcome = "OK/" + R.Reason.Name(finished.reason)
    if want_out is not None and out != want_out:
        return outcome + "/wrong-output", repr(out[:80]), token_id
    if not finished.token_revoked:
        return outcome + "/token-not-revoked", finished.message, token_id
    return outcome, finished.message, token_id


def caller(channels, seed, deadline, stats):
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[k][0] for k in names]
    while time.monotonic() < deadline:
        kind = rng.choices(names, weights)[0]
        try:
            outcome, details, token_id = one_call(rng.choice(channels), kind, rng)
        except Exception as e:  # the client itself broke: an outcome like any other
            outcome, details, token_id = "client-error", repr(e), ""
        stats.record(kind, outcome, details, token_id)


# ------------------------------------------------------------ resources

def proc_sample(pid):
    """(VmRSS in KiB, open fds) of pid."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids  # name -> pid
        self.series = {name: [] for name in pids}  # name -> [(t, rss_kb, fds)]
        self.stop_evt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop_evt.is_set():
            for name, pid in self.pids.items():
                try:
                    rss, fds = proc_sample(pid)
                except OSError:  # it died: the checks after the load say so
                    return
                self.series[name].append((time.monotonic() - self.t0, rss, fds))
            self.stop_evt.wait(SAMPLE_S)


def idle_fds(pid, settle=15.0):
    """The daemon's fd count once it stops changing (the pool refilled)."""
    deadline = time.monotonic() + settle
    last = proc_sample(pid)[1]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = proc_sample(pid)[1]
        if now == last:
            return now
        last = now
    return last


def check_flat(name, series, problems):
    """The load's last fifth against its first fifth: RSS median within
    1.5x + 32 MiB of the first fifth's max, fds median within + 32."""
    n = len(series)
    if n < 10:
        problems.append(f"{name}: only {n} samples; run longer (SOAK_SECONDS)")
        return
    k = max(2, n // 5)
    warm, end = series[:k], series[-k:]
    warm_rss, end_rss = max(s[1] for s in warm), statistics.median(s[1] for s in end)
    warm_fds, end_fds = max(s[2] for s in warm), statistics.median(s[2] for s in end)
    if end_rss > warm_rss * 1.5 + 32 * 1024:
        problems.append(f"{name}: RSS grew: {warm_rss} KiB at most in the first fifth, "
                        f"median {end_rss:.0f} KiB in the last")
    if end_fds > warm_fds + 32:
        problems.append(f"{name}: fds grew: {warm_fds} at most in the first fifth, "
                        f"median {end_fds:.0f} in the last")


# ------------------------------------------------------------ leftovers

def jsonl(path, kind):
    with open(path, "rb") as f:
        return [r for r in map(json.loads, f) if r.get("kind") == kind]


def our_task_cgroups(broker_pid):
    """Task cgroup directories holding a process of this broker's tree (its
    pool's sandboxes), while it runs."""
    found = set()
    with open(f"/proc/{broker_pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    parents = set()
    for _, ctrls, path in lines:
        if ctrls:
            parents.update(f"/sys/fs/cgroup/{c}{path}" for c in ctrls.split(","))
        else:
            parents.update(f"{root}{os.path.dirname(path)}/tasks"
                           for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"))
    for parent in parents:
        try:
            entries = os.listdir(parent)
        except OSError:
            continue
        for e in entries:
            d = os.path.join(parent, e)
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                p = pid
                while p > 1 and p != broker_pid:
                    p = _ppid(p)
                if p == broker_pid:
                    found.add(d)
                    break
    return found


def main():
    problems = []
    d = Daemons(broker_args=["--max-tasks", str(MAX_TASKS), "--queue", str(QUEUE)])
    d.start()
    stopped = False
    try:
        pids = {"broker": d.broker.pid, "credd": d.credd.pid}
        credd = d.channel("credd")
        channels = [d.channel("broker") for _ in range(4)]
        fds_before = {n: idle_fds(p) for n, p in pids.items()}
        sampler = Sampler(pids)
        sampler.start()
        stats = Stats()
        t0 = time.monotonic()
        deadline = t0 + SECONDS
        threads = [threading.Thread(target=caller, args=(channels, 1000 + i, deadline, stats))
                   for i in range(CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        sampler.stop_evt.set()
        sampler.join()
        fds_after = {n: idle_fds(p) for n, p in pids.items()}

        # -- outcomes
        total = sum(stats.outcomes.values())
        print(f"soak: {total} calls by {CALLERS} callers in {elapsed:.0f} s "
              f"({total / elapsed:.1f}/s); max_tasks {MAX_TASKS}, queue {QUEUE}")
        for kind in KINDS:
            got = {o: c for (k, o), c in stats.outcomes.items() if k == kind}
            print(f"  {kind:15} " + ", ".join(f"{o} {c}" for o, c in sorted(got.items())))
        seen = collections.Counter((k, o) for k, o, _ in stats.unexpected)
        for (kind, outcome), n in sorted(seen.items()):
            details = next(d for k, o, d in stats.unexpected if (k, o) == (kind, outcome))
            problems.append(f"{n} unexpected outcomes of {kind}: {outcome} (first: {details})")
        if total == 0:
            problems.append("no call completed")

        # -- tokens: every one minted is revoked
        starts = d.broker_audit("execute.start")
        mints = [r for r in jsonl(os.path.join(d.tmp, "credd-state", "audit.jsonl"), "mint")
                 if r.get("result") == "ok"]
        tokens = stats.tokens | {r["token_id"] for r in starts} | {r["token_id"] for r in mints}
        missing = stats.tokens - {r["token_id"] for r in mints}
        if missing:
            problems.append(f"{len(missing)} tokens seen in Started with no mint record in "
                            f"credd's audit, e.g. {sorted(missing)[:3]}")
        statuses = collections.Counter()
        for tid in sorted(tokens):
            status = introspect(credd, token_id=tid).status
            if status == "active":  # the revoke may still be on its way
                for _ in range(50):
                    time.sleep(0.2)
                    status = introspect(credd, token_id=tid).status
                    if status != "active":
                        break
            statuses[status] += 1
            if status != "revoked" and statuses[status] <= 5:
                problems.append(f"token {tid} is {status}, not revoked")
        print(f"  tokens: {len(tokens)} minted ({len(mints)} mint records, "
              f"{len(starts)} execute.start), introspect: "
              + ", ".join(f"{s} {c}" for s, c in sorted(statuses.items())))
        if statuses["revoked"] != len(tokens):
            problems.append(f"{len(tokens) - statuses['revoked']} of {len(tokens)} tokens "
                            f"not revoked: {dict(statuses)}")

        # -- resources
        for name, series in sampler.series.items():
            rss = [s[1] for s in series]
            fds = [s[2] for s in series]
            print(f"  {name}: RSS KiB first {rss[0]} last {rss[-1]} max {max(rss)}; "
                  f"fds first {fds[0]} last {fds[-1]} max {max(fds)}; "
                  f"idle fds before {fds_before[name]} after {fds_after[name]}")
            print("    series (s:RSS KiB/fds): " +
                  " ".join(f"{t:.0f}:{r}/{f}" for t, r, f in series))
            check_flat(name, series, problems)
            if fds_after[name] > fds_before[name] + 4:
                problems.append(f"{name}: {fds_after[name]} fds idle after the load, "
                                f"{fds_before[name]} before")

        # -- leftovers, with the broker idle, then once it is gone
        sandboxes = {r["sandbox"]["id"] for r in starts}
        left = [c for sid in sorted(sandboxes) for c in sandbox_cgroup_dirs(d.broker.pid, sid)]
        if left:
            problems.append(f"{len(left)} cgroups of finished tasks left, e.g. {left[:3]}")
        pool_cgroups = our_task_cgroups(d.broker.pid)
        stopped = True
        d.stop()  # raises if a daemon did not exit cleanly or a worker outlived the broker
        left = [c for c in pool_cgroups if os.path.isdir(c)]
        if left:
            problems.append(f"{len(left)} pool cgroups left after the broker stopped: {left[:3]}")
        stray = processes_with_marker(f"sleep {MARKER}", settle=5.0)
        if stray:
            problems.append(f"task processes left after the broker stopped: {stray}")
        print(f"  leftovers checked: {len(sandboxes)} task sandboxes, "
              f"{len(pool_cgroups)} pool cgroups at the end")
    except AssertionError as e:
        problems.append(str(e))
    except Exception as e:  # e.g. a daemon died and /proc/PID is gone
        problems.append(f"soak aborted: {e!r}\n{d.logs()}")
    finally:
        if not stopped:
            try:
                d.stop()
            except AssertionError as e:
                problems.append(str(e))

    if problems:
        print("soak: FAILED", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
