"""Wall-clock limits: a task past its timeout ends with reason TIMEOUT long
before it would have finished, the CLI exits 124, the token is revoked, and
no process of the task's tree survives."""
import time
import unittest

from airlock.v1 import broker_pb2
from airlock_fixture import DaemonTestCase, processes_with_marker

TIMEOUT = broker_pb2.Finished.TIMEOUT


class Timeouts(DaemonTestCase):

    def test_sleep_is_killed_with_its_children(self):
        # a background child and the main process, each with a unique marker
        code = "sleep 61.777 & exec sleep 60.4242"
        t0 = time.monotonic()
        started, out, err, finished = self.run_task("sh", code, timeout_ms=500)
        elapsed = time.monotonic() - t0
        self.assertEqual(finished.reason, TIMEOUT,
                         f"reason {broker_pb2.Finished.Reason.Name(finished.reason)}, "
                         f"exit {finished.exit_code}, stderr {err!r}, message {finished.message!r}")
        self.assertLess(elapsed, 15.0, "Execute did not return soon after the timeout")
        self.assertGreaterEqual(finished.wall_ms, 400)
        self.assertLess(finished.wall_ms, 15000)
        self.assertTrue(finished.token_revoked)
        self.assertEqual(started.limits.timeout_ms, 500)
        for marker in ("60.4242", "61.777"):
            self.assertEqual(processes_with_marker(marker), [],
                             f"'sleep {marker}' survived the timeout")

    def test_cli_exits_124(self):
        t0 = time.monotonic()
        r = self.d.cli("exec", "--timeout-ms", "500", "--runtime", "sh", "-c",
                       "exec sleep 60.5151")
        self.assertEqual(r.returncode, 124, r.stderr.decode() + self.d.logs())
        self.assertLess(time.monotonic() - t0, 15.0)
        self.assertIn(b"TIMEOUT", r.stderr)
        self.assertEqual(processes_with_marker("60.5151"), [])

    def test_busy_python_loop(self):
        t0 = time.monotonic()
        _, _, _, finished = self.run_task("python3", "while True:\n    pass\n", timeout_ms=700)
        self.assertEqual(finished.reason, TIMEOUT, finished.message)
        self.assertLess(time.monotonic() - t0, 15.0)

    def test_task_within_its_timeout_is_not_killed(self):
        _, out, _, finished = self.run_task("python3", "import time; time.sleep(0.2); print('done')",
                                            timeout_ms=10000)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)
        self.assertEqual(out, b"done\n")


if __name__ == "__main__":
    unittest.main()
