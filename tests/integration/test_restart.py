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
        self.assertIn("cannot be replayed", self.d.logs())
        self.d.credd = None

    def test_introspection_expiry_and_nbf_skew(self):
        ch = self.credd()
        short = self.mint(ch, "t-exp", 1)
        self.assertEqual(introspect(ch, token=short.token).status, "active")
        while time.time() <= short.expires_at:
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


if __name__ == "__main__":
    unittest.main()
