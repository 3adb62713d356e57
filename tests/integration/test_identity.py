"""Workload identity and policy, end to end: a broker with a TCP listener
(mutual TLS, SPIFFE X.509-SVIDs from deploy/dev-ca.sh) and a YAML policy for a
three-agent pipeline, called with Debian's python3-grpcio and with the CLI.
Authentication failures are UNAUTHENTICATED, policy refusals
PERMISSION_DENIED naming what was refused, the per-identity cap
RESOURCE_EXHAUSTED, and the token carries exactly what policy granted."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import grpc
import jwt

from airlock.v1 import broker_pb2
from airlock_fixture import (Daemons, DevCA, bin_path, execute, keys, free_port, split_events,
                             tls_channel)

TD = "prod.example"
BROKER_ID = f"spiffe://{TD}/airlock/broker"
PLANNER = f"spiffe://{TD}/agents/planner"
CODER = f"spiffe://{TD}/agents/coder"
REVIEWER = f"spiffe://{TD}/agents/reviewer"
MiB = 1 << 20

POLICY = """\
trust_domain: prod.example
listen:
  tcp: "127.0.0.1:{port}"
tls:
  cert: {dir}/broker.pem
  key: {dir}/broker.key
  bundle: {dir}/ca.pem
unix_identities:
  - uid: {uid}
    spiffe_id: spiffe://prod.example/ops/local
policy:
  # The planner reads orders; one task at a time.
  - name: planner
    spiffe_id: spiffe://prod.example/agents/planner
    runtimes: [python3]
    limits: {{timeout_ms: 20000, memory_mb: 128, max_pids: 16}}
    defaults: {{timeout_ms: 5000}}
    scopes: [orders:read, tickets:read]
    default_scopes: [orders:read]
    audiences: [orders.api, tickets.api]
    default_audiences: [orders.api]
    max_token_ttl_s: 60
    max_concurrent: 1
  # The coder runs shell and Python, writes tickets.
  - name: coder
    spiffe_id: spiffe://prod.example/agents/coder
    runtimes: [python3, sh]
    limits: {{memory_mb: 256}}
    scopes: [tickets:write]
    audiences: [tickets.api]
  # Every other agent: shell only, small, no scopes.
  - name: other-agents
    spiffe_id: spiffe://prod.example/agents/*
    runtimes: [sh]
    limits: {{memory_mb: 64, timeout_ms: 5000}}
  - name: local-ops
    spiffe_id: spiffe://prod.example/ops/local
    runtimes: [sh, python3]
    scopes: ["*"]
    audiences: ["*"]
"""

PRINT_TOKEN = 'printf %s "$AIRLOCK_TOKEN"'


def server_fingerprint(port, ca, cert, key):
    """SHA-256 of the certificate the TLS port presents now."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            import hashlib
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


class Identity(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="airlock-id-")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.ca = DevCA(ca_dir, TD)
        cls.ca.svid("broker", "/airlock/broker", "--dns", "localhost")
        cls.planner = cls.ca.svid("planner", "/agents/planner")
        cls.coder = cls.ca.svid("coder", "/agents/coder")
        cls.reviewer = cls.ca.svid("reviewer", "/agents/reviewer")
        cls.stranger = cls.ca.svid("stranger", "/services/billing")
        cls.other_td = cls.ca.svid("other-td", "spiffe://other.example/agents/planner")
        cls.expired = cls.ca.svid("expired", "/agents/planner", "--expired")
        cls.two_ids = cls.ca.svid("two", "/agents/planner", "--uri", "spiffe://prod.example/x")
        other = DevCA(os.path.join(cls.tmp, "other-ca"), TD)
        cls.foreign = other.svid("planner", "/agents/planner")
        cls.port = free_port()
        cls.address = f"127.0.0.1:{cls.port}"
        cls.config = os.path.join(cls.tmp, "broker.yaml")
        with open(cls.config, "w") as f:
            f.write(POLICY.format(port=cls.port, dir=ca_dir, uid=os.getuid()))
        cls.d = Daemons(["--config", cls.config], ["--trust-domain", TD])
        cls.d.start()
        cls.channels = []

    @classmethod
    def tearDownClass(cls):
        for ch in cls.channels:
            ch.close()
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def channel(self, svid=None, ca=None):
        cert, key = svid if svid else (None, None)
        ch = tls_channel(self.address, ca or self.ca.bundle, cert, key)
        self.channels.append(ch)
        return ch

    def run_as(self, svid, runtime, code, **kw):
        req = broker_pb2.ExecuteRequest(runtime=runtime, code=code.encode(), **kw)
        return execute(self.channel(svid), req, timeout=60)

    def assertDenied(self, svid, expected_code, *needles, runtime="python3", code="print(1)",
                     **kw):
        events, status, details = self.run_as(svid, runtime, code, **kw)
        self.assertEqual(status, expected_code, details)
        for needle in needles:
            self.assertIn(needle, details)
        self.assertEqual(events, [], "nothing may run for a refused request")
        return details

    def claims(self, token):
        jwks = keys(self.d.channel("credd"))
        kid = jwt.get_unverified_header(token)["kid"]
        key = jwt.PyJWK([k for k in jwks["keys"] if k["kid"] == kid][0])
        return jwt.decode(token, key=key.key, algorithms=["EdDSA"], leeway=5,
                          options={"verify_aud": False})

    # -- authentication

    def test_allowed_identity_runs_and_its_token_matches_the_grant(self):
        events, status, details = self.run_as(self.planner, "python3",
                                              "import os; print(os.environ['AIRLOCK_TOKEN'])")
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())
        started, out, _, finished = split_events(events)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)
        self.assertEqual(started.subject, PLANNER)
        self.assertEqual(started.policy.rule, "planner")
        self.assertEqual(started.policy.pattern, PLANNER)
        self.assertEqual(list(started.policy.scopes), ["orders:read"])
        self.assertEqual(list(started.policy.audience), ["orders.api"])
        self.assertEqual(started.policy.max_token_ttl_s, 60)
        self.assertEqual(started.limits.timeout_ms, 5000)      # the rule's default
        self.assertEqual(started.limits.memory_bytes, 128 * MiB)  # the rule's max as default
        claims = self.claims(out.decode().strip())
        self.assertEqual(claims["sub"], PLANNER)
        self.assertEqual(claims["scope"], "orders:read")
        self.assertEqual(claims["aud"], ["orders.api"])
        self.assertLessEqual(claims["exp"] - claims["iat"], 60)
        self.assertEqual(claims["exp"], started.token_expires_at)
        self.assertEqual(claims["act"], {"sub": f"spiffe://{TD}/airlock/broker"})
        self.assertEqual(claims["azp"], f"spiffe://{TD}/airlock/broker")
        self.assertTrue(finished.token_revoked)

    def test_requested_scopes_are_exactly_what_the_token_carries(self):
        events, status, details = self.run_as(
            self.planner, "python3", "import os; print(os.environ['AIRLOCK_TOKEN'])",
            scopes=["tickets:read"], audience=["tickets.api"])
        self.assertEqual(status, grpc.StatusCode.OK, details)
        started, out, _, _ = split_events(events)
        claims = self.claims(out.decode().strip())
        self.assertEqual(claims["scope"], "tickets:read")
        self.assertEqual(claims["aud"], ["tickets.api"])
        self.assertEqual(list(started.policy.scopes), ["tickets:read"])

    def test_bad_certificates_are_unauthenticated(self):
        U = grpc.StatusCode.UNAUTHENTICATED
        cases = {
            "foreign CA": (self.foreign, "not signed by the trust bundle"),
            "other trust domain": (self.other_td, "trust domain"),
            "expired": (self.expired, "expired"),
            "two URI SANs": (self.two_ids, "2 URI SANs"),
            "no certificate": (None, "no client certificate"),
        }
        for what, (svid, needle) in cases.items():
            with self.subTest(what):
                self.assertDenied(svid, U, needle)

    def test_valid_identity_without_a_rule_is_denied_by_default(self):
        self.assertDenied(self.stranger, grpc.StatusCode.PERMISSION_DENIED,
                          "no policy rule matches spiffe://prod.example/services/billing")

    # -- policy

    def test_requests_beyond_the_grant_are_denied_and_named(self):
        P = grpc.StatusCode.PERMISSION_DENIED
        self.assertDenied(self.planner, P, 'rule "planner"', 'runtime "sh"', runtime="sh",
                          code="true")
        self.assertDenied(self.planner, P, 'scope "tickets:write"', scopes=["tickets:write"])
        self.assertDenied(self.planner, P, 'audience "billing.api"', audience=["billing.api"])
        self.assertDenied(self.planner, P, "limits.memory_bytes",
                          limits=broker_pb2.Limits(memory_bytes=256 * MiB))
        self.assertDenied(self.planner, P, "limits.timeout_ms", timeout_ms=30000)
        self.assertDenied(self.planner, P, "limits.max_pids",
                          limits=broker_pb2.Limits(max_pids=17))

    def test_prefix_rule_covers_other_agents(self):
        events, status, details = self.run_as(self.reviewer, "sh", "echo hi")
        self.assertEqual(status, grpc.StatusCode.OK, details)
        started, out, _, _ = split_events(events)
        self.assertEqual(started.policy.rule, "other-agents")
        self.assertEqual(started.subject, REVIEWER)
        self.assertEqual(out, b"hi\n")
        self.assertDenied(self.reviewer, grpc.StatusCode.PERMISSION_DENIED, 'rule "other-agents"',
                          'runtime "python3"')
        # The exact rule beats the prefix: the coder gets its own grant.
        events, status, details = self.run_as(self.coder, "python3", "print(2)")
        self.assertEqual(status, grpc.StatusCode.OK, details)
        self.assertEqual(split_events(events)[0].policy.rule, "coder")

    def test_concurrency_cap_is_resource_exhausted(self):
        first, running = {}, threading.Event()

        def long_task():
            req = broker_pb2.ExecuteRequest(runtime="python3",
                                            code=b"import time; time.sleep(3); print('done')")
            first["result"] = execute(
                self.channel(self.planner), req, timeout=60,
                on_event=lambda ev: ev.WhichOneof("event") == "started" and running.set())

        t = threading.Thread(target=long_task)
        t.start()
        try:
            self.assertTrue(running.wait(30), "the first task never started")
            self.assertDenied(self.planner, grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{PLANNER} already has 1 tasks running",
                              'rule "planner" allows 1 at once')
            # Another identity is not held back by the planner's cap.
            _, status, details = self.run_as(self.coder, "sh", "true")
            self.assertEqual(status, grpc.StatusCode.OK, details)
        finally:
            t.join()
        events, status, details = first["result"]
        self.assertEqual(status, grpc.StatusCode.OK, details)
        self.assertEqual(split_events(events)[1], b"done\n")
        # The slot is free again.
        _, status, details = self.run_as(self.planner, "python3", "print(1)")
        self.assertEqual(status, grpc.StatusCode.OK, details)

    def test_unix_socket_identity_comes_from_the_mapping(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true")
        events, status, details = execute(self.d.channel("broker"), req)
        self.assertEqual(status, grpc.StatusCode.OK, details)
        started = split_events(events)[0]
        self.assertEqual(started.subject, f"spiffe://{TD}/ops/local")
        self.assertEqual(started.policy.rule, "local-ops")

    # -- the CLI

    def cli(self, svid, *args):
        cert, key = svid
        return subprocess.run([bin_path("airlock"), "--broker", self.address, "--cert", cert,
                               "--key", key, "--ca", self.ca.bundle] + list(args),
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)

    def test_cli_over_mutual_tls(self):
        r = self.cli(self.coder, "exec", "--runtime", "sh", "-c", "echo from-cli")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout, b"from-cli\n")
        r = self.cli(self.coder, "--server-id", BROKER_ID, "exec", "--runtime", "sh", "-c", "true")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        # A server that is not who we expect is refused before anything is sent.
        r = self.cli(self.coder, "--server-id", f"spiffe://{TD}/not/the/broker", "exec",
                     "--runtime", "sh", "-c", "true")
        self.assertEqual(r.returncode, 69, r.stderr.decode())
        # Policy denials reach the CLI user with their reason.
        r = self.cli(self.coder, "exec", "--runtime", "sh", "--scope", "orders:read", "-c", "true")
        self.assertEqual(r.returncode, 69)
        self.assertIn(b"PERMISSION_DENIED", r.stderr)
        self.assertIn(b'scope "orders:read" not granted', r.stderr)
        # A TCP address without TLS files is a usage error, not plaintext.
        r = subprocess.run([bin_path("airlock"), "--broker", self.address, "exec", "-c", "1"],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"mutual TLS", r.stderr)

    def test_policy_check_explains_a_caller(self):
        r = subprocess.run([bin_path("airlock"), "policy", "check", "--config", self.config,
                            "--spiffe-id", PLANNER, "--runtime", "python3",
                            "--scope", "tickets:read"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"planner", r.stdout)
        self.assertIn(b"ALLOW", r.stdout)
        r = subprocess.run([bin_path("airlock"), "policy", "check", "--config", self.config,
                            "--spiffe-id", PLANNER, "--runtime", "sh"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertIn(b"DENY", r.stdout)
        self.assertIn(b'runtime "sh"', r.stdout)

    # -- rotation (last: it replaces the broker's certificate)

    def test_sighup_reloads_the_certificate_without_dropping_tasks(self):
        cert, key = self.planner
        before = server_fingerprint(self.port, self.ca.bundle, cert, key)
        result = {}

        def long_task():
            result["r"] = self.run_as(self.planner, "python3",
                                      "import time; time.sleep(2); print('survived')")

        t = threading.Thread(target=long_task)
        t.start()
        time.sleep(0.5)
        self.ca.svid("broker", "/airlock/broker", "--dns", "localhost")  # rotate in place
        self.d.broker.send_signal(signal.SIGHUP)
        t.join()
        events, status, details = result["r"]
        self.assertEqual(status, grpc.StatusCode.OK, details)
        self.assertEqual(split_events(events)[1], b"survived\n")
        deadline = time.monotonic() + 10
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.1)
            after = server_fingerprint(self.port, self.ca.bundle, cert, key)
        self.assertNotEqual(after, before, "new connections still get the old certificate")
        _, status, details = self.run_as(self.coder, "sh", "true")
        self.assertEqual(status, grpc.StatusCode.OK, details)
        self.assertIsNone(self.d.broker.poll(), "SIGHUP must not stop the broker")


class ConfigFiles(unittest.TestCase):
    """--check-config: a bad file is a startup error naming file, line and key."""

    def check(self, daemon, text, *extra):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([bin_path(daemon), "--config", f.name, "--check-config"] +
                               list(extra), capture_output=True, timeout=30)
        finally:
            os.unlink(f.name)
        return r.returncode, r.stderr.decode() + r.stdout.decode(), os.path.basename(f.name)

    def test_broker_config_errors_name_file_line_and_key(self):
        base = "listen: {unix: /tmp/x.sock}\ncredd: {address: 'unix:/tmp/c.sock'}\nstate_dir: /tmp/s\n"
        cases = [
            (base + "listne: {}\n", ":4:", "unknown key 'listne'"),
            (base + "limits:\n  memory_mb: lots\n", ":5:", "limits.memory_mb"),
            (base + "policy:\n  - name: a\n    spiffe_id: spiffe://airlock.local/a\n"
                    "    runtimes: [cobol]\n", ":7:", "policy[0].runtimes"),
            (base + "policy:\n  - name: a\n    spiffe_id: spiffe://airlock.local/a\n"
                    "    runtimes: [sh]\n    limits: {memory_mb: 100000}\n", ":8:",
             "exceeds"),
            (base + "cgroup: v3\n", ":4:", "cgroup"),
            (base + "queue: 65537\n", ":4:", "queue: expected an integer 0..65536"),
            (base + "pool:\n  sh: 1\n  cobol: 2\n", ":6:", 'pool.cobol: unknown runtime "cobol"'),
            (base + "pool: {sh: 257}\n", ":4:", "pool.sh: expected an integer 0..256"),
        ]
        for text, line, needle in cases:
            with self.subTest(needle):
                rc, out, name = self.check("airlock-broker", text)
                self.assertEqual(rc, 78, out)
                self.assertIn(name + line, out)
                self.assertIn(needle, out)
        rc, out, _ = self.check("airlock-broker", base)
        self.assertEqual(rc, 0, out)
        self.assertIn("0 policy rules", out)
        # Flags override the file.
        rc, out, _ = self.check("airlock-broker", base, "--trust-domain", "flag.example")
        self.assertEqual(rc, 0, out)
        self.assertIn("trust domain flag.example", out)
        # The queue and the warm pool: defaults, the file, flags over both.
        rc, out, _ = self.check("airlock-broker", base)
        self.assertIn("queue 64; ready workers: sh 2 python3 2", out)
        rc, out, _ = self.check("airlock-broker", base + "queue: 5\npool: {python3: 0}\n")
        self.assertEqual(rc, 0, out)
        self.assertIn("queue 5; ready workers: sh 2 python3 0", out)
        rc, out, _ = self.check("airlock-broker", base + "queue: 5\npool: {python3: 0}\n",
                                "--queue", "0", "--pool", "python3=4", "--pool", "sh=9",
                                "--pool", "sh=1")
        self.assertEqual(rc, 0, out)
        self.assertIn("queue 0; ready workers: sh 1 python3 4", out)
        for flags, needle in [(["--pool", "cobol=1"], 'unknown runtime "cobol"'),
                              (["--pool", "sh=257"], "expected RUNTIME=N"),
                              (["--queue", "65537"], "--queue")]:
            rc, out, _ = self.check("airlock-broker", base, *flags)
            self.assertEqual(rc, 64, out)
            self.assertIn(needle, out)
        # TCP without TLS files is refused: there is no plaintext TCP.
        rc, out, _ = self.check("airlock-broker", base + "listen: {tcp: '127.0.0.1:1'}\n")
        self.assertEqual(rc, 78, out)
        rc, out, _ = self.check("airlock-broker", base.replace("listen: {unix: /tmp/x.sock}",
                                                               "listen: {tcp: '127.0.0.1:1'}"))
        self.assertEqual(rc, 78, out)
        self.assertIn("mutual TLS only", out)

    def test_credd_config_errors(self):
        rc, out, name = self.check("airlock-credd", "listen: {unix: /tmp/c.sock}\nstate_dir: /s\n"
                                                    "brokers: [not-an-id]\n")
        self.assertEqual(rc, 78, out)
        self.assertIn(name + ":3:", out)
        self.assertIn("not a SPIFFE ID", out)
        rc, out, _ = self.check("airlock-credd", "listen: {unix: /tmp/c.sock}\nstate_dir: /s\n"
                                                 "max_ttl_s: 0\n")
        self.assertEqual(rc, 78, out)
        self.assertIn("max_ttl_s", out)


class BrokerToCreddOverTls(unittest.TestCase):
    """credd on a TCP port with mutual TLS: the broker mints over it and the
    worker revokes over it; any other identity may not mint."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="airlock-credd-tls-")
        cls.ca = DevCA(os.path.join(cls.tmp, "ca"), TD)
        cls.credd_svid = cls.ca.svid("credd", "/airlock/credd", "--dns", "localhost")
        cls.broker_svid = cls.ca.svid("broker", "/airlock/broker", "--dns", "localhost")
        cls.planner = cls.ca.svid("planner", "/agents/planner")
        cls.credd_port = free_port()
        cert, key = cls.credd_svid
        bcert, bkey = cls.broker_svid
        cls.d = Daemons(
            ["--trust-domain", TD, "--credd", f"127.0.0.1:{cls.credd_port}",
             "--credd-id", f"spiffe://{TD}/airlock/credd", "--tls-cert", bcert, "--tls-key", bkey,
             "--tls-bundle", cls.ca.bundle],
            ["--trust-domain", TD, "--listen-tcp", f"127.0.0.1:{cls.credd_port}",
             "--tls-cert", cert, "--tls-key", key, "--tls-bundle", cls.ca.bundle,
             "--broker-id", BROKER_ID])
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_task_runs_and_its_token_is_revoked_over_tls(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=PRINT_TOKEN.encode())
        events, status, details = execute(self.d.channel("broker"), req)
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())
        started, out, _, finished = split_events(events)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)
        self.assertTrue(finished.token_revoked, self.d.logs())
        claims = jwt.decode(out.decode(), options={"verify_signature": False})
        self.assertEqual(claims["act"], {"sub": BROKER_ID})

    def test_only_the_broker_identity_may_mint(self):
        from airlock.v1 import credentials_pb2
        from airlock_fixture import MINT, unary
        ch = tls_channel(f"127.0.0.1:{self.credd_port}", self.ca.bundle, *self.planner)
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                unary(ch, MINT, credentials_pb2.MintRequest(subject=f"spiffe://{TD}/x",
                                                            task_id="t1"),
                      credentials_pb2.MintResponse, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
            self.assertIn("only the broker may mint", cm.exception.details())
            # No certificate at all: UNAUTHENTICATED.
            anon = tls_channel(f"127.0.0.1:{self.credd_port}", self.ca.bundle)
            with self.assertRaises(grpc.RpcError) as cm:
                unary(anon, MINT, credentials_pb2.MintRequest(subject=f"spiffe://{TD}/x",
                                                              task_id="t1"),
                      credentials_pb2.MintResponse, timeout=10)
            anon.close()
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        finally:
            ch.close()


if __name__ == "__main__":
    unittest.main()
