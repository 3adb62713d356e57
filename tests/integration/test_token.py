"""Task tokens end to end: the token a task sees in $AIRLOCK_TOKEN verifies
with PyJWT against the JWKS (EdDSA, kid), carries the right claims, is
active while the task runs, and is revoked when it ends - as seen through
grpcio and through `airlock token introspect`."""
import json
import threading
import time
import unittest

import grpc
import jwt

from airlock.v1 import broker_pb2
from airlock_fixture import DaemonTestCase, execute, introspect, keys, my_spiffe_id, split_events


def jwk_for(jwks, token):
    kid = jwt.get_unverified_header(token).get("kid")
    matches = [k for k in jwks["keys"] if k.get("kid") == kid]
    return kid, matches


class Tokens(DaemonTestCase):

    def verify(self, token, jwks):
        header = jwt.get_unverified_header(token)
        self.assertEqual(header.get("alg"), "EdDSA")
        self.assertEqual(header.get("typ"), "JWT")
        kid, matches = jwk_for(jwks, token)
        self.assertEqual(len(matches), 1, f"kid {kid!r} not (or twice) in JWKS {jwks}")
        key = jwt.PyJWK(matches[0])
        claims = jwt.decode(token, key=key.key, algorithms=["EdDSA"], leeway=5,
                            options={"verify_aud": False, "require": ["exp", "iat", "sub", "jti"]})
        return claims

    def test_token_claims_signature_and_revocation(self):
        started, out, _, finished = self.run_task("sh", 'printf %s "$AIRLOCK_TOKEN"')
        token = out.decode()
        self.assertEqual(token.count("."), 2, f"not a JWS compact token: {token!r}")

        # the JWKS from the CLI and from the RPC agree, and verify the token
        r = self.d.cli("keys")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        jwks = json.loads(r.stdout)
        self.assertEqual(jwks, keys(self.credd))
        claims = self.verify(token, jwks)

        self.assertEqual(claims["sub"], my_spiffe_id())
        self.assertEqual(started.subject, my_spiffe_id())
        self.assertEqual(claims["jti"], started.token_id)
        self.assertEqual(claims["exp"], started.token_expires_at)
        self.assertIn("iss", claims)
        self.assertLessEqual(claims["iat"], time.time() + 5)
        self.assertGreater(claims["exp"], claims["iat"])
        self.assertTrue(finished.token_revoked)

        # after the task: revoked, by token and by id, and nothing else revealed
        for resp in (introspect(self.credd, token=token),
                     introspect(self.credd, token_id=started.token_id)):
            self.assertFalse(resp.active)
            self.assertEqual(resp.status, "revoked")
            self.assertEqual(resp.sub, "")
            self.assertEqual(resp.jti, "")

        for args in (["token", "introspect", token], ["token", "introspect", "--id", started.token_id]):
            r = self.d.cli(*args)
            self.assertEqual(r.returncode, 1, r.stderr.decode())
            self.assertEqual(json.loads(r.stdout), {"active": False, "status": "revoked"})
        r = self.d.cli("token", "introspect", "-", input=token.encode() + b"\n")
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertEqual(json.loads(r.stdout)["status"], "revoked")

    def test_token_is_active_while_the_task_runs(self):
        code = ("import os, sys, time\n"
                "print(os.environ['AIRLOCK_TOKEN'], flush=True)\n"
                "time.sleep(3)\n")
        seen = {}
        got_line = threading.Event()

        def on_event(ev):
            if ev.WhichOneof("event") == "started":
                seen["started"] = ev.started
            elif ev.WhichOneof("event") == "stdout" and not got_line.is_set():
                seen["out"] = seen.get("out", b"") + ev.stdout
                if b"\n" in seen["out"]:
                    token = seen["out"].split(b"\n")[0].decode()
                    # while the task still sleeps, ask credd about its token
                    seen["live"] = introspect(self.credd, token=token)
                    seen["live_cli"] = self.d.cli("token", "introspect", token)
                    seen["token"] = token
                    got_line.set()

        req = broker_pb2.ExecuteRequest(runtime="python3", code=code.encode(), timeout_ms=20000)
        events, status, details = execute(self.broker, req, on_event=on_event)
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())
        self.assertTrue(got_line.is_set(), "the task's token line never arrived")
        started, _, _, finished = split_events(events)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)

        live = seen["live"]
        self.assertTrue(live.active, f"token not active during its task: {live}")
        self.assertEqual(live.status, "active")
        self.assertEqual(live.sub, my_spiffe_id())
        self.assertEqual(live.jti, started.token_id)
        self.assertEqual(live.task_id, started.task_id)
        self.assertEqual(live.exp, started.token_expires_at)

        r = seen["live_cli"]
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        shown = json.loads(r.stdout)
        self.assertIs(shown["active"], True)
        self.assertEqual(shown["sub"], my_spiffe_id())
        self.assertEqual(shown["jti"], started.token_id)

        after = introspect(self.credd, token=seen["token"])
        self.assertFalse(after.active)
        self.assertEqual(after.status, "revoked")
        self.assertTrue(finished.token_revoked)

    def test_each_task_gets_its_own_token(self):
        tokens = set()
        for _ in range(2):
            started, out, _, _ = self.run_task("sh", 'printf %s "$AIRLOCK_TOKEN"')
            tokens.add((started.token_id, out))
        self.assertEqual(len(tokens), 2)

    def test_tampered_token_is_not_active(self):
        started, out, _, _ = self.run_task("python3", (
            "import os, time\n"
            "print(os.environ['AIRLOCK_TOKEN'])\n"))
        token = out.decode().strip()
        head, body, sig = token.split(".")
        forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
        resp = introspect(self.credd, token=f"{head}.{body}.{forged_sig}")
        self.assertFalse(resp.active)
        self.assertEqual(resp.sub, "")

    def test_unknown_token_id(self):
        resp = introspect(self.credd, token_id="no-such-token-id")
        self.assertFalse(resp.active)
        self.assertEqual(resp.status, "unknown")
        r = self.d.cli("token", "introspect", "--id", "no-such-token-id")
        self.assertEqual(r.returncode, 1, r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
