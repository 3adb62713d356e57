"""The Python client package (clients/python, import airlock_client) against
the real daemons: run() results and reasons, stream() event order, cancelling
by closing the stream (task killed, token revoked), gRPC failures as
AirlockError, the vendored broker_pb2 matching the .proto, and the agent-loop
example end to end. The package is imported from the checkout, not from the
build tree."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from airlock_fixture import (DaemonTestCase, Daemons, DevCA, free_port, introspect,
                             introspect_when_revoked, my_spiffe_id, processes_with_marker)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
sys.path.insert(0, CLIENT_DIR)

import airlock_client  # noqa: E402
from airlock_client import Airlock, AirlockError, Finished, Output, Started  # noqa: E402


class PythonClient(DaemonTestCase):

    def setUp(self):
        self.airlock = Airlock(self.d.broker_addr, timeout=60)

    def tearDown(self):
        self.airlock.close()

    def test_package_comes_from_the_checkout(self):
        self.assertEqual(os.path.dirname(airlock_client.__file__),
                         os.path.join(CLIENT_DIR, "airlock_client"))

    def test_vendored_stubs_match_the_proto(self):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + out,
                            "airlock/v1/broker.proto"], check=True, timeout=60)
            with open(os.path.join(out, "airlock", "v1", "broker_pb2.py"), "rb") as f:
                fresh = f.read()
        with open(os.path.join(CLIENT_DIR, "airlock_client", "broker_pb2.py"), "rb") as f:
            vendored = f.read()
        self.assertEqual(vendored, fresh, "clients/python/airlock_client/broker_pb2.py is stale: "
                                          "run clients/python/regen_stubs.sh")

    def test_run_returns_output_and_ok(self):
        r = self.airlock.run("import sys; print(sys.stdin.read().upper())", stdin="abc",
                             request_id="py-1")
        self.assertEqual(r.reason, "OK", r.message)
        self.assertTrue(r.ok)
        self.assertEqual(r.stdout, b"ABC\n")
        self.assertEqual(r.stderr, b"")
        self.assertEqual(r.exit_code, 0)
        self.assertTrue(r.task_id)
        self.assertTrue(r.token_id)
        self.assertTrue(r.token_revoked)
        self.assertEqual(r.started.subject, my_spiffe_id())
        self.assertEqual(r.started.client_request_id, "py-1")
        self.assertEqual(r.started.policy["rule"], "local-owner")
        self.assertEqual(r.finished.stdout_bytes, 4)
        self.assertFalse(introspect(self.credd, token_id=r.token_id).active)

    def test_run_sh_nonzero_exit(self):
        r = self.airlock.run(b"echo out; echo err >&2; exit 3", runtime="sh")
        self.assertEqual(r.reason, "EXIT_NONZERO", r.message)
        self.assertFalse(r.ok)
        self.assertEqual(r.exit_code, 3)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_run_timeout(self):
        r = self.airlock.run("import time; time.sleep(30)", timeout_ms=500)
        self.assertEqual(r.reason, "TIMEOUT", r.message)
        self.assertEqual(r.started.limits["timeout_ms"], 500)

    def test_limits_reach_the_broker(self):
        r = self.airlock.run("print('x' * 100000)", limits={"output_bytes": 1000})
        self.assertEqual(r.started.limits["output_bytes"], 1000)
        self.assertEqual(r.reason, "OUTPUT_LIMIT", r.message)
        self.assertTrue(r.finished.output_truncated)
        self.assertLessEqual(len(r.stdout), 1000)

    def test_stream_yields_started_output_finished_in_order(self):
        code = "import sys\nfor i in range(3):\n    print(i, flush=True)\nprint('e', file=sys.stderr)\n"
        with self.airlock.stream(code) as events:
            evs = list(events)
        self.assertIsInstance(evs[0], Started)
        self.assertIsInstance(evs[-1], Finished)
        middle = evs[1:-1]
        self.assertTrue(middle and all(isinstance(e, Output) for e in middle), evs)
        self.assertEqual(b"".join(e.data for e in middle if e.stream == "stdout"), b"0\n1\n2\n")
        self.assertEqual(b"".join(e.data for e in middle if e.stream == "stderr"), b"e\n")
        self.assertEqual(evs[-1].reason, "OK")
        self.assertTrue(evs[-1].token_revoked)

    def test_closing_the_stream_cancels_the_task_and_revokes_its_token(self):
        marker = "41.70923"
        events = self.airlock.stream(f"sleep {marker}", runtime="sh", timeout_ms=60_000)
        started = next(events)
        self.assertIsInstance(started, Started)
        deadline = time.monotonic() + 10
        while not processes_with_marker(marker, settle=0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(processes_with_marker(marker, settle=0), "task never started")
        self.assertTrue(introspect(self.credd, token_id=started.token_id).active)
        events.close()
        self.assertEqual(list(events), [])
        self.assertEqual(processes_with_marker(marker, settle=10), [],
                         "the sandboxed task outlived the closed stream")
        resp = introspect_when_revoked(self.credd, started.token_id)
        self.assertFalse(resp.active)
        self.assertEqual(resp.status, "revoked", self.d.logs())

    def test_over_the_grant_is_permission_denied(self):
        with self.assertRaises(AirlockError) as cm:
            self.airlock.run("print(1)", timeout_ms=3_600_000)
        self.assertEqual(cm.exception.code, "PERMISSION_DENIED")
        self.assertEqual(cm.exception.status, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("limits.timeout_ms 3600000 exceeds the grant", cm.exception.message)

    def test_invalid_requests_are_invalid_argument(self):
        for kw in ({"runtime": "cobol-74"}, {"code": ""}):
            args = {"code": "print(1)", **kw}
            with self.subTest(kw), self.assertRaises(AirlockError) as cm:
                self.airlock.run(args.pop("code"), **args)
            self.assertEqual(cm.exception.code, "INVALID_ARGUMENT", cm.exception.message)

    def test_no_broker_is_unavailable(self):
        with Airlock("unix:" + os.path.join(self.d.tmp, "no-such.sock"), timeout=10) as a:
            with self.assertRaises(AirlockError) as cm:
                a.run("print(1)")
        self.assertEqual(cm.exception.code, "UNAVAILABLE")

    def test_tcp_target_needs_credentials(self):
        with self.assertRaisesRegex(ValueError, "mutual TLS"):
            Airlock("localhost:1")

    def test_agent_example_end_to_end(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIRLOCK_BROKER")}
        env["PYTHONPATH"] = CLIENT_DIR  # the package alone, not the build's stubs
        env["AIRLOCK_BROKER"] = self.d.broker_addr
        r = subprocess.run([sys.executable, os.path.join(CLIENT_DIR, "examples", "agent_tool.py")],
                           capture_output=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("NameError", out)  # the first attempt's failure came back to the model
        self.assertIn("reason: EXIT_NONZERO", out)
        self.assertIn("answer: The sum of the squares of 1..100 is 338350.", out)


TLS_TD = "prod.example"
TLS_CONFIG = """\
trust_domain: prod.example
listen:
  tcp: "127.0.0.1:{port}"
tls:
  cert: {dir}/broker.pem
  key: {dir}/broker.key
  bundle: {dir}/ca.pem
policy:
  - name: planner
    spiffe_id: spiffe://prod.example/agents/planner
    runtimes: [python3]
"""


class PythonClientMutualTls(unittest.TestCase):
    """credentials=(cert, key, ca): the broker sees our SVID's SPIFFE ID and
    applies its rule."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="airlock-pyclient-")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.ca = DevCA(ca_dir, TLS_TD)
        cls.ca.svid("broker", "/airlock/broker", "--dns", "localhost")
        cls.planner = cls.ca.svid("planner", "/agents/planner")
        cls.address = f"127.0.0.1:{free_port()}"
        config = os.path.join(cls.tmp, "broker.yaml")
        with open(config, "w") as f:
            f.write(TLS_CONFIG.format(port=cls.address.rsplit(":", 1)[1], dir=ca_dir))
        cls.d = Daemons(["--config", config], ["--trust-domain", TLS_TD])
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self):
        return Airlock(self.address, credentials=(*self.planner, self.ca.bundle),
                       server_name="localhost", timeout=60)

    def test_run_as_the_svid(self):
        with self.client() as a:
            r = a.run("print('planner')")
        self.assertEqual(r.reason, "OK", r.message)
        self.assertEqual(r.stdout, b"planner\n")
        self.assertEqual(r.started.subject, f"spiffe://{TLS_TD}/agents/planner")
        self.assertEqual(r.started.policy["rule"], "planner")

    def test_runtime_outside_the_rule_is_permission_denied(self):
        with self.client() as a, self.assertRaises(AirlockError) as cm:
            a.run("echo hi", runtime="sh")
        self.assertEqual(cm.exception.code, "PERMISSION_DENIED")
        self.assertIn('rule "planner"', cm.exception.message)


if __name__ == "__main__":
    unittest.main()
