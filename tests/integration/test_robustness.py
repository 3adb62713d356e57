"""Fail-closed edges against the real daemons: requests carrying fields the
contract does not know, oversized code, and a caller that walks away in the
middle of a task (the sandbox must die and the token must end revoked)."""
import os
import signal
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import (DaemonTestCase, EXECUTE, bin_path, introspect, introspect_when_revoked,
                             proc_cmdlines, processes_with_marker, sandbox_cgroup_dirs)

# Field 99, varint 1: a field no version of ExecuteRequest has.
UNKNOWN_FIELD = bytes([0x98, 0x06, 0x01])


def raw_execute(channel, payload, timeout=10):
    """Sends payload bytes as an ExecuteRequest; returns (code, details, events)."""
    call = channel.unary_stream(EXECUTE, request_serializer=lambda b: b,
                                response_deserializer=broker_pb2.ExecuteEvent.FromString)
    events = []
    try:
        for ev in call(payload, timeout=timeout):
            events.append(ev)
        return grpc.StatusCode.OK, "", events
    except grpc.RpcError as e:
        return e.code(), e.details(), events


class Robustness(DaemonTestCase):

    def test_unknown_field_is_invalid_argument_and_runs_nothing(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo ran")
        code, details, events = raw_execute(self.broker, req.SerializeToString() + UNKNOWN_FIELD)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
        self.assertIn("unknown fields", details)
        self.assertEqual(events, [])
        # The same request without the stray field runs: the refusal was the field.
        code, details, events = raw_execute(self.broker, req.SerializeToString())
        self.assertEqual(code, grpc.StatusCode.OK, details + self.d.logs())
        self.assertEqual(events[1].stdout, b"ran\n")

    def test_oversized_code_is_invalid_argument(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"#" * ((1 << 20) + 1))
        code, details, events = raw_execute(self.broker, req.SerializeToString())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
        self.assertIn("code: 1048577 bytes exceeds max_code_bytes 1048576", details)
        self.assertEqual(events, [])

    def test_timeout_over_the_grant_is_permission_denied(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true", timeout_ms=3_600_000)
        code, details, _ = raw_execute(self.broker, req.SerializeToString())
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, details)
        self.assertIn("limits.timeout_ms 3600000 exceeds the grant", details)

    def test_caller_cancelling_kills_the_task_and_revokes_its_token(self):
        marker = "31.90817"
        req = broker_pb2.ExecuteRequest(runtime="sh", code=f"sleep {marker}".encode(),
                                        timeout_ms=60_000)
        call = self.broker.unary_stream(EXECUTE, request_serializer=req.__class__.SerializeToString,
                                        response_deserializer=broker_pb2.ExecuteEvent.FromString)
        stream = call(req, timeout=30)
        started = next(stream).started
        self.assertTrue(started.token_id)
        deadline = time.monotonic() + 10
        while not processes_with_marker(marker, settle=0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(processes_with_marker(marker, settle=0), "task never started")
        stream.cancel()
        self.assertEqual(processes_with_marker(marker, settle=10), [],
                         "the sandboxed task outlived its caller")
        resp = introspect_when_revoked(self.credd, started.token_id)
        self.assertFalse(resp.active)
        self.assertEqual(resp.status, "revoked", self.d.logs())

    def test_worker_killed_leaves_nothing(self):
        marker = "32.81726"
        req = broker_pb2.ExecuteRequest(runtime="sh", code=f"sleep {marker}".encode(),
                                        timeout_ms=60_000)
        call = self.broker.unary_stream(EXECUTE, request_serializer=req.__class__.SerializeToString,
                                        response_deserializer=broker_pb2.ExecuteEvent.FromString)
        stream = call(req, timeout=30)
        started = next(stream).started
        deadline = time.monotonic() + 10
        while not processes_with_marker(marker, settle=0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(processes_with_marker(marker, settle=0), "task never started")
        sandbox = (self.d.sandbox_of(started.task_id) or {}).get("id")
        self.assertTrue(sandbox, "execute.start names no sandbox")
        self.assertTrue(sandbox_cgroup_dirs(self.d.broker.pid, sandbox), "the task has no cgroup")
        # Its worker among the pool's (those wait with sandboxes of their own).
        workers = [pid for pid, argv in proc_cmdlines().items()
                   if argv and argv[0] == bin_path("airlock-worker") and sandbox in argv]
        self.assertEqual(len(workers), 1, workers)
        os.kill(workers[0], signal.SIGKILL)
        finished = [ev.finished for ev in stream if ev.WhichOneof("event") == "finished"]
        self.assertEqual(len(finished), 1)
        self.assertEqual(finished[0].reason, broker_pb2.Finished.KILLED, finished[0].message)
        self.assertIn("worker died (killed by signal 9)", finished[0].message)
        self.assertTrue(finished[0].token_revoked, self.d.logs())
        self.assertEqual(processes_with_marker(marker, settle=10), [],
                         "the sandboxed task outlived its worker")
        self.assertEqual(sandbox_cgroup_dirs(self.d.broker.pid, sandbox), [], self.d.logs())
        self.assertFalse(introspect(self.credd, token_id=started.token_id).active)

    # Looks for another task's token: files in /tmp, /work and /dev/shm, a
    # System V segment, an abstract socket, and every /proc/*/environ.
    SEARCH = """
import ctypes, os, socket
mine = os.environ["AIRLOCK_TOKEN"]
found = []
for d in ("/tmp", "/work", "/dev/shm"):
    for n in os.listdir(d):
        if n == "main.py":  # this very program
            continue
        try:
            data = open(os.path.join(d, n)).read()
        except OSError:
            continue
        if "eyJ" in data and mine not in data:
            found.append(d + "/" + n)
libc = ctypes.CDLL(None)
if libc.shmget(0x41a1c0de, 4096, 0o600) >= 0:
    found.append("sysv-shm")
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\\0airlock-it-planted"); found.append("abstract-socket")
except OSError:
    pass
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        except OSError:
            continue
        for kv in env.split("\\0"):
            if kv.startswith("AIRLOCK_TOKEN=") and kv != "AIRLOCK_TOKEN=" + mine:
                found.append("environ of " + pid)
print("FOUND", sorted(set(found)))
"""

    def test_concurrent_tasks_cannot_see_each_other(self):
        # Task A plants its token everywhere it can, then finds it with the
        # same search run as another process of its own sandbox (the
        # control), and waits; task B runs the search meanwhile.
        plant = """
import ctypes, os, socket, subprocess, sys, time
tok = os.environ["AIRLOCK_TOKEN"]
for d in ("/tmp", "/work", "/dev/shm"):
    open(d + "/planted", "w").write(tok)
libc = ctypes.CDLL(None)
shm = libc.shmget(0x41a1c0de, 4096, 0o1000 | 0o666)
srv = socket.socket(socket.AF_UNIX); srv.bind("\\0airlock-it-planted"); srv.listen()
# A process whose /proc/PID/environ holds the token from its execve (the
# interpreter itself got its environment after it started).
sleeper = subprocess.Popen(["/bin/sleep", "20"])
env = dict(os.environ, AIRLOCK_TOKEN="other")
env["PLANTED_BY"] = tok
r = subprocess.run([sys.executable, "-c", sys.stdin.read()], env=env, capture_output=True,
                   text=True)
print(r.stdout.strip(), r.stderr.strip(), flush=True)
time.sleep(8)
"""
        req_a = broker_pb2.ExecuteRequest(runtime="python3", code=plant.encode(),
                                          stdin=self.SEARCH.encode(), timeout_ms=30_000)
        call = self.broker.unary_stream(EXECUTE, request_serializer=req_a.__class__.SerializeToString,
                                        response_deserializer=broker_pb2.ExecuteEvent.FromString)
        stream_a = call(req_a, timeout=60)
        self.assertEqual(next(stream_a).WhichOneof("event"), "started")
        control = next(stream_a)
        self.assertEqual(control.WhichOneof("event"), "stdout", control)
        # From its own sandbox, every plant is found (the search works).
        self.assertIn(b"'/dev/shm/planted', '/tmp/planted', '/work/planted', 'abstract-socket'",
                      control.stdout)
        self.assertIn(b"'sysv-shm'", control.stdout)
        self.assertIn(b"'environ of ", control.stdout)
        # From a concurrent task's sandbox, nothing is.
        _, out, err, finished = self.run_task("python3", self.SEARCH)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, err)
        self.assertEqual(out, b"FOUND []\n")
        stream_a.cancel()


if __name__ == "__main__":
    unittest.main()
