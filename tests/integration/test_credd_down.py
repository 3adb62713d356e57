"""Fail closed: with credd stopped the broker mints no token and runs
nothing; Execute fails UNAVAILABLE (grpcio) and the CLI exits 69."""
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import Daemons, execute


class CreddDown(unittest.TestCase):

    def setUp(self):
        self.d = Daemons()
        self.d.start()
        self.broker = self.d.channel("broker")

    def tearDown(self):
        self.d.stop()

    def test_execute_fails_unavailable_without_credd(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo should-not-run")
        # sanity: it works while credd is up
        events, status, details = execute(self.broker, req)
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())

        problem = self.d.stop_one("credd")
        self.assertIsNone(problem, problem)

        t0 = time.monotonic()
        events, status, details = execute(self.broker, req, timeout=30)
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, f"{details}\n{self.d.logs()}")
        self.assertEqual([ev.WhichOneof("event") for ev in events], [],
                         "events came although no token could be minted")
        self.assertLess(time.monotonic() - t0, 15.0)

        r = self.d.cli("exec", "--runtime", "sh", "-c", "echo should-not-run")
        self.assertEqual(r.returncode, 69, r.stderr.decode())
        self.assertIn(b"airlock: UNAVAILABLE: ", r.stderr)
        self.assertEqual(r.stdout, b"")

        r = self.d.cli("exec", "--json", "--runtime", "sh", "-c", "echo should-not-run")
        self.assertEqual(r.returncode, 69)
        self.assertIn(b'"code":"UNAVAILABLE"', r.stdout)
        self.assertNotIn(b"started", r.stdout)

        # the broker itself stays up
        self.assertIsNone(self.d.broker.poll(), "the broker died when credd went away")


if __name__ == "__main__":
    unittest.main()
