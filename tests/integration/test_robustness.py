"""Fail-closed edges against the real daemons: requests carrying fields the
contract does not know, oversized code, and a caller that walks away in the
middle of a task (the sandbox must die and the token must end revoked)."""
import os
import signal
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import (DaemonTestCase, EXECUTE, bin_path, introspect, proc_cmdlines,
                             processes_with_marker)

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
        self.assertIn("limit", details)
        self.assertEqual(events, [])

    def test_timeout_over_the_limit_is_invalid_argument(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true", timeout_ms=3_600_000)
        code, details, _ = raw_execute(self.broker, req.SerializeToString())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)

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
        deadline = time.monotonic() + 10
        while True:
            resp = introspect(self.credd, token_id=started.token_id)
            if resp.status == "revoked" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertFalse(resp.active)
        self.assertEqual(resp.status, "revoked", self.d.logs())

    def task_cgroup_dirs(self, task_id):
        """The task's cgroup directories that exist now (v1: airlock-<id>
        beside the broker's cgroup in each hierarchy; v2: <C>/tasks/<id>)."""
        found = []
        with open(f"/proc/{self.d.broker.pid}/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if ctrls:
                    for c in ctrls.split(","):
                        found.append(f"/sys/fs/cgroup/{c}{path}/airlock-{task_id}")
                else:
                    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                        found.append(f"{root}{os.path.dirname(path)}/tasks/{task_id}")
        return [d for d in found if os.path.isdir(d)]

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
        self.assertTrue(self.task_cgroup_dirs(started.task_id), "the task has no cgroup")
        workers = [pid for pid, argv in proc_cmdlines().items()
                   if argv and argv[0] == bin_path("airlock-worker")]
        self.assertEqual(len(workers), 1, workers)
        os.kill(workers[0], signal.SIGKILL)
        finished = [ev.finished for ev in stream if ev.WhichOneof("event") == "finished"]
        self.assertEqual(len(finished), 1)
        self.assertNotEqual(finished[0].reason, broker_pb2.Finished.OK)
        self.assertTrue(finished[0].token_revoked, self.d.logs())
        self.assertEqual(processes_with_marker(marker, settle=10), [],
                         "the sandboxed task outlived its worker")
        self.assertEqual(self.task_cgroup_dirs(started.task_id), [], self.d.logs())
        self.assertFalse(introspect(self.credd, token_id=started.token_id).active)


if __name__ == "__main__":
    unittest.main()
