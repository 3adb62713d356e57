"""Restarts and crashes (issue 7): credd killed -9 and restarted keeps its
tokens and revocations (rebuilt from its audit chain) and refuses to start on
a chain it cannot replay; a broker killed -9 mid-task has that task's token
revoked ("broker_restart") when it comes back, and leaves no worker, sandbox
or cgroup; a broker whose credd dies fails closed and recovers by itself when
credd returns; introspection honours exp and a bounded nbf skew."""
import json
import os
import signal
import sys
import threading
import time
import unittest

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airlock.v1 import broker_pb2, credentials_pb2
from airlock_fixture import (MINT, REVOKE, Daemons, execute, introspect, keys, proc_cmdlines,
                             sandbox_cgroup_dirs, split_events, unary)

BROKER_STARTED = "/airlock.v1.Credentials/BrokerStarted"
SHA = "ab" * 32


def credd_audit(d, kind):
    with open(os.path.join(d.tmp, "credd-state", "audit.jsonl"), "rb") as f:
        return [r for r in map(json.loads, f) if r.get("kind") == kind]


def fields(resp):
    return {f.name: v for f, v in resp.ListFields()}


class CreddRestart(unittest.TestCase):
    """credd alone; this test process is "the broker" (--broker-exe is our
    interpreter), so it mints directly."""

    def setUp(self):
        self.d = Daemons(credd_args=["--broker-exe", os.path.realpath(sys.executable)])
        self.d.start(with_broker=False)

    def tearDown(self):
        self.d.stop()

    def credd(self):
        # a fresh channel per daemon run: no waiting out reconnect backoff
        return self.d.channel("credd")

    def mint(self, ch, task, ttl, **kw):
        req = credentials_pb2.MintRequest(subject="spiffe://airlock.local/uid/4242", task_id=task,
                                          ttl_seconds=ttl, **kw)
        return unary(ch, MINT, req, credentials_pb2.MintResponse)

    def revoke(self, ch, token_id):
        return unary(ch, REVOKE, credentials_pb2.RevokeRequest(token_id=token_id, reason="test"),
                     credentials_pb2.RevokeResponse)

    def test_tokens_and_revocations_survive_kill9(self):
        ch = self.credd()
        live = self.mint(ch, "t-live", 600, audience=["svc-a", "svc-b"], scopes=["read:x", "w:y"],
                         code_sha256=SHA)
        gone = self.mint(ch, "t-revoked", 600)
        short = self.mint(ch, "t-short", 1)
        # revoked while active, then expired: must still say "revoked"
        both = self.mint(ch, "t-revoked-then-expired", 2)
        for t in (gone, both):
            self.assertTrue(self.revoke(ch, t.token_id).was_active)
        before = introspect(ch, token=live.token)
        self.assertEqual(before.status, "active")

        self.d.kill9("credd")
        self.d.restart("credd")
        ch = self.credd()
        while time.time() <= max(short.expires_at, both.expires_at):
            time.sleep(0.1)

        for after in (introspect(ch, token=live.token), introspect(ch, token_id=live.token_id)):
            self.assertEqual(fields(after), fields(before), self.d.logs())
        self.assertEqual(list(before.aud), ["svc-a", "svc-b"])
        self.assertEqual(before.scope, "read:x w:y")
        self.assertEqual(before.code_sha256, SHA)
        self.assertEqual(introspect(ch, token=gone.token).status, "revoked")
        self.assertEqual(introspect(ch, token_id=both.token_id).status, "revoked")
        self.assertEqual(introspect(ch, token=short.token).status, "expired")
        self.assertFalse(introspect(ch, token=short.token).active)
        # the restored table works as before: revoke after restart, twice
        self.assertTrue(self.revoke(ch, live.token_id).was_active)
        self.assertFalse(self.revoke(ch, live.token_id).was_active)
        self.assertEqual(introspect(ch, token=live.token).status, "revoked")

        restored = credd_audit(self.d, "tokens.restored")
        self.assertEqual(len(restored), 2)  # first start (empty), then after the crash
        self.assertEqual(restored[0]["tokens"], 0)
        self.assertEqual(restored[1]["tokens"], 4)
        self.assertEqual(restored[1]["revoked"], 2)
        self.assertIn("took_ms", restored[1])

        # and once more, a clean restart this time: the live revocation stays too
        self.assertIsNone(self.d.stop_one("credd"))
        self.d.restart("credd")
        self.assertEqual(introspect(self.credd(), token=live.token).status, "revoked")

    def test_broker_started_revokes_the_callers_active_tokens(self):
        ch = self.credd()
        live = self.mint(ch, "t-a", 600)
        done = self.mint(ch, "t-b", 600)
        self.revoke(ch, done.token_id)
        resp = unary(ch, BROKER_STARTED, credentials_pb2.BrokerStartedRequest(pid=4242),
                     credentials_pb2.BrokerStartedResponse)
        self.assertEqual(resp.revoked, 1)
        self.assertEqual(introspect(ch, token=live.token).status, "revoked")
        revokes = [r for r in credd_audit(self.d, "revoke") if r["reason"] == "broker_restart"]
        self.assertEqual([r["token_id"] for r in revokes], [live.token_id])
        self.assertEqual(revokes[0]["before"], "active")
        started = credd_audit(self.d, "broker.started")
        self.assertEqual([(r["pid"], r["revoked"]) for r in started], [(4242, 1)])
        # nothing left to revoke the second time
        resp = unary(ch, BROKER_STARTED, credentials_pb2.BrokerStartedRequest(pid=4243),
                     credentials_pb2.BrokerStartedResponse)
        self.assertEqual(resp.revoked, 0)

    def test_refuses_to_start_on_a_chain_it_cannot_replay(self):
        ch = self.credd()
        tok = self.mint(ch, "t-1", 600)
        self.assertIsNone(self.d.stop_one("credd"))
        path = os.path.join(self.d.tmp, "credd-state", "audit.jsonl")
        with open(path, "rb") as f:
            data = f.read()
        marker = b'"token_id":"' + tok.token_id.encode()
        self.assertEqual(data.count(marker), 1)
        with open(path, "wb") as f:
            f.write(data.replace(marker, b'"token_iX":"' + tok.token_id.encode()))
        proc = self.d._spawn("credd", self.d._args("credd"))
        self.d.credd = proc
        self.assertNotEqual(proc.wait(timeout=30), 0)
        logs = self.d.logs()
        self.assertIn("cannot be replayed", logs)
        self.assertNotIn("Sanitizer", logs)  # the refusal path frees what it took (ASan builds)
        self.d.credd = None

    def test_introspection_expiry_and_nbf_skew(self):
        ch = self.credd()
        short = self.mint(ch, "t-exp", 1)
        self.assertEqual(introspect(ch, token=short.token).status, "active")
        # credd reads time(2), the kernel's coarse clock, which may trail
        # time.time() by a tick at the second boundary: wait past it.
        while time.time() < short.expires_at + 0.25:
            time.sleep(0.1)
        self.assertEqual(introspect(ch, token=short.token).status, "expired")
        self.assertEqual(introspect(ch, token_id=short.token_id).status, "expired")

        # Tokens signed with credd's own key whose nbf lies ahead of its clock
        # (as after a clock step back): within the skew (default 30 s) the
        # token is honoured, beyond it the token names nothing.
        live = self.mint(ch, "t-nbf", 600)
        with open(os.path.join(self.d.tmp, "credd-state", "signing.key"), "rb") as f:
            sk = Ed25519PrivateKey.from_private_bytes(f.read())
        kid = keys(ch)["keys"][0]["kid"]
        claims = jwt.decode(live.token, options={"verify_signature": False})
        now = int(time.time())
        for nbf, status in ((now + 20, "active"), (now + 120, "unknown")):
            forged = jwt.encode(dict(claims, nbf=nbf), sk, algorithm="EdDSA",
                                headers={"kid": kid})
            self.assertEqual(introspect(ch, token=forged).status, status, f"nbf now+{nbf - now}")


LONG_TASK = 'printf "%s\\n" "$AIRLOCK_TOKEN"; exec sleep 59.713'
MARKER = "59.713"
RECOVERY_BOUND = 20.0  # seconds; generous, not a performance assertion


def worker_pids(sandbox_id):
    return [pid for pid, argv in proc_cmdlines().items() if sandbox_id in argv]


class BrokerRestart(unittest.TestCase):

    def setUp(self):
        self.d = Daemons()
        self.d.start()

    def tearDown(self):
        self.d.stop()

    def start_long_task(self):
        """Runs LONG_TASK in a thread; returns (thread, seen) once its token
        line is out: seen has "started", "token" and, at the end, "status"."""
        seen, line = {}, threading.Event()
        broker = self.d.channel("broker")

        def on_event(ev):
            kind = ev.WhichOneof("event")
            if kind == "started":
                seen["started"] = ev.started
            elif kind == "stdout":
                seen["out"] = seen.get("out", b"") + ev.stdout
                if b"\n" in seen["out"] and not line.is_set():
                    seen["token"] = seen["out"].split(b"\n")[0].decode()
                    line.set()

        def run():
            req = broker_pb2.ExecuteRequest(runtime="sh", code=LONG_TASK.encode(),
                                            timeout_ms=120000)
            _, seen["status"], _ = execute(broker, req, on_event=on_event)
            line.set()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        self.assertTrue(line.wait(60), "the task's token line never came")
        self.assertIn("token", seen, f"task ended early: {seen.get('status')}\n{self.d.logs()}")
        return th, seen

    def assert_revoked_for_restart(self, seen):
        credd = self.d.channel("credd")
        self.assertEqual(introspect(credd, token=seen["token"]).status, "revoked")
        jti = seen["started"].token_id
        reasons = [r["reason"] for r in credd_audit(self.d, "revoke") if r["token_id"] == jti]
        self.assertEqual(reasons, ["broker_restart"], self.d.logs())
        self.assertGreaterEqual(credd_audit(self.d, "broker.started")[-1]["revoked"], 1)

    def assert_nothing_left(self, sandbox_id, cgroup_dirs):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                worker_pids(sandbox_id) or [d for d in cgroup_dirs if os.path.isdir(d)]):
            time.sleep(0.1)
        self.assertEqual(worker_pids(sandbox_id), [], "the old broker's worker is still there")
        self.assertEqual([p for p, a in proc_cmdlines().items() if any(MARKER in x for x in a)],
                         [], "the old task is still running")
        self.assertEqual([d for d in cgroup_dirs if os.path.isdir(d)], [],
                         f"the old sandbox's cgroup is left\n{self.d.logs()}")

    def kill_broker_mid_task(self, with_worker):
        th, seen = self.start_long_task()
        credd = self.d.channel("credd")
        self.assertEqual(introspect(credd, token=seen["token"]).status, "active")
        sandbox = self.d.sandbox_of(seen["started"].task_id)["id"]
        dirs = sandbox_cgroup_dirs(self.d.broker.pid, sandbox)
        self.assertNotEqual(dirs, [], "the task runs in no cgroup: nothing to check")
        workers = worker_pids(sandbox)
        self.assertEqual(len(workers), 1)
        if with_worker:  # SIGKILLed together: the worker's own clean-up never runs
            os.kill(workers[0], signal.SIGKILL)
        self.d.kill9("broker")
        th.join(30)
        self.assertNotEqual(seen["status"], grpc.StatusCode.OK)
        return seen, sandbox, dirs

    def test_broker_kill9_mid_task(self):
        seen, sandbox, dirs = self.kill_broker_mid_task(with_worker=False)
        self.d.restart("broker")
        self.assert_revoked_for_restart(seen)
        self.assert_nothing_left(sandbox, dirs)
        # and the restarted broker works
        events, status, details = execute(self.d.channel("broker"),
                                          broker_pb2.ExecuteRequest(runtime="sh", code=b"echo ok"))
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())

    def test_broker_and_worker_kill9_leave_no_cgroup(self):
        seen, sandbox, dirs = self.kill_broker_mid_task(with_worker=True)
        # the premise: nobody else removes it
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and [p for p, a in proc_cmdlines().items()
                                               if any(MARKER in x for x in a)]:
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertNotEqual([d for d in dirs if os.path.isdir(d)], [],
                            "the dead worker's cgroup went away by itself")
        self.d.restart("broker")
        self.assert_revoked_for_restart(seen)
        self.assert_nothing_left(sandbox, dirs)
        self.assertIn("empty task cgroups of dead workers", self.d.logs(200))

    def test_broker_started_is_for_brokers_only(self):
        with self.assertRaises(grpc.RpcError) as cm:
            unary(self.d.channel("credd"), BROKER_STARTED,
                  credentials_pb2.BrokerStartedRequest(pid=1),
                  credentials_pb2.BrokerStartedResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("only the broker", cm.exception.details())

    def poll_execute(self, broker):
        """Executes until it succeeds (bounded); returns the seconds it took."""
        t0 = time.monotonic()
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo back")
        while True:
            events, status, details = execute(broker, req, timeout=30)
            if status == grpc.StatusCode.OK:
                self.assertEqual(split_events(events)[1], b"back\n")
                return time.monotonic() - t0
            self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
            self.assertEqual(events, [])
            self.assertLess(time.monotonic() - t0, RECOVERY_BOUND,
                            f"no recovery: {details}\n{self.d.logs()}")
            time.sleep(0.2)

    def test_credd_kill9_fails_closed_then_recovers(self):
        broker = self.d.channel("broker")
        self.poll_execute(broker)
        self.d.kill9("credd")
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo should-not-run")
        for _ in range(3):
            events, status, details = execute(broker, req, timeout=30)
            self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
            self.assertEqual(events, [], "events came although no token could be minted")
        self.d.restart("credd")
        took = self.poll_execute(broker)
        print(f"\n  recovered {took:.2f} s after credd came back", file=sys.stderr)
        # the broker announced once: credd's restart revokes nothing of it
        self.assertEqual(len(credd_audit(self.d, "broker.started")), 1)

    def test_broker_starts_without_credd_and_announces_later(self):
        self.d.kill9("credd")
        self.assertIsNone(self.d.stop_one("broker"))
        self.d.restart("broker")  # healthy without credd
        broker = self.d.channel("broker")
        events, status, details = execute(
            broker, broker_pb2.ExecuteRequest(runtime="sh", code=b"echo should-not-run"))
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn("credd not reachable", details)
        self.assertEqual(events, [])
        self.d.restart("credd")
        took = self.poll_execute(broker)
        print(f"\n  announced and ran {took:.2f} s after credd came back", file=sys.stderr)
        self.assertEqual(len(credd_audit(self.d, "broker.started")), 2, self.d.logs())


if __name__ == "__main__":
    unittest.main()
