"""test_shutdown - SIGTERM against the real daemons: the broker stops taking
calls at once, lets running tasks finish within --shutdown-grace-ms, then
kills the rest (their callers get Finished KILLED, their tokens revoked),
refuses queued callers, writes its audit trail to the end and exits 0; a
second SIGTERM ends the grace early. credd finishes and exits 0 too.
"""
import json
import os
import signal
import threading
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import (Daemons, execute, introspect, processes_with_marker,
                             sandbox_cgroup_dirs, split_events)


def read_audit(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


class Background:
    """One Execute on a thread of its own; .events/.status/.details when done."""

    def __init__(self, channel, request, timeout=60):
        self.started = threading.Event()
        self.events, self.status, self.details = [], None, ""
        self.ended_at = None

        def on_event(ev):
            self.events.append(ev)  # as they come, for a look while it runs
            if ev.WhichOneof("event") == "started":
                self.started.set()

        def run():
            _, self.status, self.details = execute(channel, request, timeout=timeout,
                                                   on_event=on_event)
            self.ended_at = time.monotonic()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def sleep_request(seconds, marker, then="echo done"):
    code = f"sleep {seconds}{marker}; {then}"
    return broker_pb2.ExecuteRequest(runtime="sh", code=code.encode(), timeout_ms=120_000)


class Shutdown(unittest.TestCase):

    def start(self, *broker_args):
        d = Daemons(list(broker_args))
        d.start()
        self.addCleanup(d.stop)
        self.broker_state = os.path.join(d.tmp, "broker-state")
        return d

    def wait_for(self, what, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while not pred():
            self.assertLess(time.monotonic(), deadline, f"timed out waiting for {what}")
            time.sleep(0.05)

    def term_and_wait(self, d, timeout=30):
        d.broker.send_signal(signal.SIGTERM)
        rc = d.broker.wait(timeout=timeout)
        self.assertEqual(rc, 0, f"broker exited {rc}\n{d.logs()}")

    def assert_refused(self, d):
        """A new Execute, on a new connection, is refused while draining."""
        with grpc.insecure_channel(d.broker_addr) as ch:
            req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo should-not-run")
            events, status, details = execute(ch, req, timeout=5)
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        self.assertEqual(events, [])

    def audit_tail_is_clean_stop(self, records):
        kinds = [r["kind"] for r in records]
        self.assertIn("daemon.stop", kinds)
        stop = kinds.index("daemon.stop")
        self.assertEqual(kinds[stop + 1:], ["checkpoint"], kinds[-5:])

    def test_task_shorter_than_grace_finishes(self):
        d = self.start("--shutdown-grace-ms", "15000")
        broker = d.channel("broker")
        credd = d.channel("credd")
        marker = ".41"
        task = Background(broker, sleep_request(2, marker))
        self.assertTrue(task.started.wait(15), d.logs())
        d.broker.send_signal(signal.SIGTERM)
        # Refused at once: the listener is gone, an open connection gets GOAWAY.
        self.wait_for("the socket to go", lambda: not os.path.exists(d.broker_sock), 5)
        self.assert_refused(d)
        # On the open connection the running task's stream is on: refused too.
        ev, status, details = execute(broker, broker_pb2.ExecuteRequest(runtime="sh", code=b"true"),
                                      timeout=5)
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn("shutting down", details)
        self.assertEqual(ev, [])
        rc = d.broker.wait(timeout=30)
        self.assertEqual(rc, 0, d.logs())
        self.assertTrue(task.join(5))
        self.assertEqual(task.status, grpc.StatusCode.OK, task.details)
        started, out, _, finished = split_events(task.events)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)
        self.assertEqual(out, b"done\n")
        self.assertTrue(finished.token_revoked)
        self.assertFalse(introspect(credd, token_id=started.token_id).active)
        records = read_audit(os.path.join(self.broker_state, "audit.jsonl"))
        done = [r for r in records if r["kind"] == "execute" and r["task_id"] == started.task_id]
        self.assertEqual(len(done), 1)
        self.assertEqual(done[0]["reason"], "OK")
        self.assertTrue(done[0]["token_revoked"])
        self.audit_tail_is_clean_stop(records)
        self.assertEqual([r for r in records if r["kind"] == "execute.start"
                          and r["task_id"] != started.task_id], [], "a refused call ran")

    def test_task_longer_than_grace_is_killed(self):
        grace_s = 1.5
        d = self.start("--shutdown-grace-ms", str(int(grace_s * 1000)))
        broker = d.channel("broker")
        credd = d.channel("credd")
        marker = ".73"
        task = Background(broker, sleep_request(60, marker))
        self.assertTrue(task.started.wait(15), d.logs())
        self.wait_for("the task to run", lambda: processes_with_marker("60" + marker, settle=0))
        started, _, _, _ = split_events(task.events)
        sandbox = d.sandbox_of(started.task_id)["id"]
        cgroups = sandbox_cgroup_dirs(d.broker.pid, sandbox)
        self.assertTrue(cgroups, "the task has no cgroup")
        t0 = time.monotonic()
        self.term_and_wait(d)
        self.assertTrue(task.join(5))
        # Not a bare cancelled stream: the caller hears how its task ended.
        self.assertEqual(task.status, grpc.StatusCode.OK, task.details)
        _, _, _, finished = split_events(task.events)
        self.assertIsNotNone(finished, d.logs())
        self.assertEqual(finished.reason, broker_pb2.Finished.KILLED)
        self.assertIn("shut down", finished.message)
        self.assertTrue(finished.token_revoked)
        self.assertGreaterEqual(task.ended_at - t0, grace_s * 0.9, "killed before the grace")
        self.assertFalse(introspect(credd, token_id=started.token_id).active)
        self.assertEqual(processes_with_marker("60" + marker, settle=5), [])
        self.assertEqual([c for c in cgroups if os.path.isdir(c)], [])
        records = read_audit(os.path.join(self.broker_state, "audit.jsonl"))
        done = [r for r in records if r["kind"] == "execute" and r["task_id"] == started.task_id]
        self.assertEqual([r["reason"] for r in done], ["KILLED"])
        self.assertEqual(done[0]["revoke_reason"], "backstop")
        self.audit_tail_is_clean_stop(records)

    def test_queued_task_is_refused_and_never_runs(self):
        d = self.start("--shutdown-grace-ms", "15000", "--max-tasks", "1", "--queue", "4")
        broker = d.channel("broker")
        first = Background(broker, sleep_request(2, ".29"))
        self.assertTrue(first.started.wait(15), d.logs())
        queued = Background(broker, sleep_request(0, ".31", then="echo queued-ran"))
        self.wait_for("the second call to queue",
                      lambda: len(d.broker_audit("policy")) == 2)
        time.sleep(0.3)
        self.term_and_wait(d)
        self.assertTrue(first.join(5) and queued.join(5))
        self.assertEqual(queued.status, grpc.StatusCode.UNAVAILABLE, queued.details)
        self.assertIn("broker shutting down", queued.details)
        self.assertEqual(queued.events, [])
        self.assertEqual(first.status, grpc.StatusCode.OK, first.details)
        self.assertEqual(split_events(first.events)[3].reason, broker_pb2.Finished.OK)
        # One token only: the queued call never reached credd.
        mints = [r for r in read_audit(os.path.join(d.tmp, "credd-state", "audit.jsonl"))
                 if r["kind"] == "mint"]
        self.assertEqual(len(mints), 1)
        self.assertEqual(len(d.broker_audit("execute.start")), 1)

    def test_second_sigterm_ends_the_grace(self):
        d = self.start("--shutdown-grace-ms", "120000")
        broker = d.channel("broker")
        credd = d.channel("credd")
        marker = ".57"
        task = Background(broker, sleep_request(60, marker))
        self.assertTrue(task.started.wait(15), d.logs())
        d.broker.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        self.assertIsNone(d.broker.poll(), "exited without waiting for the running task")
        self.term_and_wait(d, timeout=30)
        self.assertTrue(task.join(5))
        started, _, _, finished = split_events(task.events)
        self.assertIsNotNone(finished, task.details)
        self.assertEqual(finished.reason, broker_pb2.Finished.KILLED)
        self.assertTrue(finished.token_revoked)
        self.assertFalse(introspect(credd, token_id=started.token_id).active)
        self.assertEqual(processes_with_marker("60" + marker, settle=5), [])

    def test_credd_stops_cleanly(self):
        d = self.start()
        credd = d.channel("credd")
        self.assertTrue(introspect(credd, token_id="nosuchtoken") is not None)
        d.broker.send_signal(signal.SIGTERM)
        self.assertEqual(d.broker.wait(timeout=30), 0)
        d.credd.send_signal(signal.SIGTERM)
        self.assertEqual(d.credd.wait(timeout=30), 0, d.logs())
        records = read_audit(os.path.join(d.tmp, "credd-state", "audit.jsonl"))
        self.audit_tail_is_clean_stop(records)


if __name__ == "__main__":
    unittest.main()
