"""Bad input on every RPC, against the real daemons: each bad Execute field
is INVALID_ARGUMENT naming the field (and runs nothing, mints nothing);
garbage and truncated protobuf on every method is INVALID_ARGUMENT; a
message over gRPC's 4 MiB maximum is RESOURCE_EXHAUSTED; malformed tokens
in Introspect/Revoke are INVALID_ARGUMENT, forged ones are "unknown" and
never active. The daemons answer, and hold no more descriptors, afterwards."""
import base64
import json
import os
import subprocess
import unittest

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airlock.v1 import audit_pb2, broker_pb2, credentials_pb2
from airlock_fixture import (DaemonTestCase, EXECUTE, INTROSPECT, KEYS, MINT, REVOKE, bin_path,
                             health, introspect, my_spiffe_id)

MiB = 1 << 20
INVALID = grpc.StatusCode.INVALID_ARGUMENT
SIGN_CHECKPOINT = "/airlock.v1.Credentials/SignCheckpoint"
AUDIT_QUERY = "/airlock.v1.Audit/Query"
AUDIT_VERIFY = "/airlock.v1.Audit/Verify"
MAX_CODE, MAX_STDIN = 4096, 2048


def string_field(number, data):
    """One length-delimited protobuf field: lets a test put bytes that are
    not UTF-8 where python's protobuf would refuse them in a string field.
    Appended to a serialized message, a repeated field gains an item and a
    singular one is replaced (the wire format's merge rule)."""
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def call_raw(channel, method, payload, stream=False, timeout=20):
    """Sends payload bytes to method; returns (code, details, responses)."""
    make = channel.unary_stream if stream else channel.unary_unary
    rpc = make(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        if stream:
            return grpc.StatusCode.OK, "", list(rpc(payload, timeout=timeout))
        return grpc.StatusCode.OK, "", [rpc(payload, timeout=timeout)]
    except grpc.RpcError as e:
        return e.code(), e.details(), []


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class BadInput(DaemonTestCase):
    BROKER_ARGS = ("--max-code-bytes", str(MAX_CODE), "--max-stdin-bytes", str(MAX_STDIN))

    def credd_audit(self, kind):
        with open(os.path.join(self.d.tmp, "credd-state", "audit.jsonl"), "rb") as f:
            return [r for r in map(json.loads, f) if r.get("kind") == kind]

    def assertStillServing(self):
        self.assertEqual(health(self.broker), 1)
        self.assertEqual(health(self.credd), 1)
        _, out, _, _ = self.run_task("sh", "echo still here")
        self.assertEqual(out, b"still here\n")

    # -- Execute, field by field

    def execute_cases(self):
        """(what, serialized ExecuteRequest, how the refusal begins)."""
        ok = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo ran")
        ser = ok.SerializeToString()

        def req(limits=None, **kw):
            fields = dict(runtime="sh", code=b"echo ran")
            fields.update(kw)
            if limits:
                fields["limits"] = broker_pb2.Limits(**limits)
            return broker_pb2.ExecuteRequest(**fields).SerializeToString()

        return [
            ("empty request", b"", "runtime: empty (known: python3, sh)"),
            ("no code", req(code=b""), "code: empty"),
            ("code over the cap", req(code=b"#" * (MAX_CODE + 1)),
             f"code: {MAX_CODE + 1} bytes exceeds max_code_bytes {MAX_CODE}"),
            ("stdin over the cap", req(stdin=b"x" * (MAX_STDIN + 1)),
             f"stdin: {MAX_STDIN + 1} bytes exceeds max_stdin_bytes {MAX_STDIN}"),
            ("unknown runtime", req(runtime="ruby"),
             'runtime: unknown "ruby" (known: python3, sh)'),
            ("runtime not UTF-8", ser + string_field(1, b"\xff\xfesh"), "runtime: must be"),
            ("runtime with a newline", req(runtime="sh\n"), "runtime: must be"),
            ("absurd timeout", req(timeout_ms=86_400_001),
             "timeout_ms: 86400001 is outside 1..86400000"),
            ("timeouts disagree", req(timeout_ms=1000, limits=dict(timeout_ms=2000)),
             "timeout_ms 1000 and limits.timeout_ms 2000 disagree"),
            ("memory below a runtime's floor", req(limits=dict(memory_bytes=1 * MiB)),
             "limits.memory_bytes: 1048576 is outside 16777216.."),
            ("memory beyond any host", req(limits=dict(memory_bytes=1 << 50)),
             "limits.memory_bytes: 1125899906842624 is outside 16777216.."),
            ("absurd max_pids", req(limits=dict(max_pids=4_194_305)),
             "limits.max_pids: 4194305 is outside 1..4194304"),
            ("absurd output_bytes", req(limits=dict(output_bytes=(1 << 40) + 1)),
             "limits.output_bytes: 1099511627777 is outside 1..1099511627776"),
            ("absurd cpu_ms", req(limits=dict(cpu_ms=86_400_001)),
             "limits.cpu_ms: 86400001 is outside 1..86400000"),
            ("tiny disk", req(limits=dict(disk_bytes=1000)),
             "limits.disk_bytes: 1000 is outside 65536.."),
            ("too few open files", req(limits=dict(open_files=8)),
             "limits.open_files: 8 is outside 16..1048576"),
            ("too many scopes", req(scopes=[f"s{i}" for i in range(17)]),
             "scopes: 17 items; at most 16"),
            ("scope with a space", req(scopes=["orders read"]), "scopes[0]: must be"),
            ("scope too long", req(scopes=["a", "b" * 257]), "scopes[1]: must be 1-256"),
            ("scope not UTF-8", ser + string_field(5, b"orders:\xc0"), "scopes[0]: must be"),
            ("audience with a control character", req(audience=["api\x07"]),
             "audience[0]: must be"),
            ("client_request_id not ASCII", req(client_request_id="caf\u00e9"),
             "client_request_id: must be"),
            ("client_request_id not UTF-8", ser + string_field(7, b"id-\xff"),
             "client_request_id: must be"),
            ("client_request_id too long", req(client_request_id="x" * 129),
             "client_request_id: must be at most 128"),
        ]

    def test_each_bad_execute_field_is_named_and_nothing_runs(self):
        starts, mints = len(self.d.broker_audit("execute.start")), len(self.credd_audit("mint"))
        for what, payload, want in self.execute_cases():
            with self.subTest(what):
                code, details, events = call_raw(self.broker, EXECUTE, payload, stream=True)
                self.assertEqual(code, INVALID, details)
                self.assertTrue(details.startswith(want), f"{details!r} for {what}")
                self.assertTrue(details.isascii() and details.isprintable(), repr(details))
                self.assertEqual(events, [])
        self.assertEqual(len(self.d.broker_audit("execute.start")), starts, "a task started")
        self.assertEqual(len(self.credd_audit("mint")), mints, "a token was minted")
        self.assertStillServing()

    def test_caps_that_cannot_be_met_are_refused_at_start(self):
        base = [bin_path("airlock-broker"), "--socket", os.path.join(self.d.tmp, "x.sock"),
                "--credd", "unix:" + os.path.join(self.d.tmp, "y.sock"),
                "--state-dir", os.path.join(self.d.tmp, "x-state"), "--check-config"]
        for flags, status, needle in [
                (["--max-code-bytes", "0"], 64, "bad value for --max-code-bytes: 0"),
                (["--max-stdin-bytes", "4128769"], 64, "bad value for --max-stdin-bytes"),
                (["--max-code-bytes", "4000000", "--max-stdin-bytes", "200000"], 78,
                 "max_code_bytes 4000000 + max_stdin_bytes 200000 exceed 4128768"),
                (["--max-code-bytes", "4000000", "--max-stdin-bytes", "0"], 0, "valid")]:
            r = subprocess.run(base + flags, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, status, r.stderr.decode())
            self.assertIn(needle, (r.stdout + r.stderr).decode())

    def test_at_the_caps_runs_and_above_the_grant_is_policy(self):
        code = b"cat; true " + b"#" * (MAX_CODE - 10)
        _, out, _, finished = self.run_task("sh", code, stdin=b"i" * MAX_STDIN)
        self.assertEqual(out, b"i" * MAX_STDIN)
        self.assertEqual(len(code), MAX_CODE)
        # Sane but beyond what policy grants (the 512 MiB cap): PERMISSION_DENIED, named.
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true",
                                        limits=broker_pb2.Limits(memory_bytes=1024 * MiB))
        code, details, events = call_raw(self.broker, EXECUTE, req.SerializeToString(), True)
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, details)
        self.assertIn("limits.memory_bytes 1073741824 exceeds the grant", details)

    # -- protobuf that does not decode, on every method

    def test_garbage_and_truncated_protobuf_on_every_method(self):
        subject = my_spiffe_id()
        # method, channel, streaming, request type, a valid request ending in a string field
        methods = [
            (EXECUTE, "broker", True, "ExecuteRequest",
             broker_pb2.ExecuteRequest(runtime="sh", code=b"echo hi")),
            (AUDIT_QUERY, "broker", True, "AuditQuery", audit_pb2.AuditQuery(task_id="abcdef")),
            (AUDIT_VERIFY, "broker", False, "AuditVerifyRequest", None),
            (MINT, "credd", False, "MintRequest",
             credentials_pb2.MintRequest(subject=subject, task_id="abcdef")),
            (REVOKE, "credd", False, "RevokeRequest",
             credentials_pb2.RevokeRequest(reason="abcdef")),
            (INTROSPECT, "credd", False, "IntrospectRequest",
             credentials_pb2.IntrospectRequest(token_id="abcdef")),
            (KEYS, "credd", False, "KeysRequest", None),
            (SIGN_CHECKPOINT, "credd", False, "SignCheckpointRequest",
             credentials_pb2.SignCheckpointRequest(chain="abcdef")),
            (AUDIT_QUERY, "credd", True, "AuditQuery", audit_pb2.AuditQuery(task_id="abcdef")),
            (AUDIT_VERIFY, "credd", False, "AuditVerifyRequest", None),
        ]
        pids = {"broker": self.d.broker.pid, "credd": self.d.credd.pid}
        fds = {name: open_fds(pid) for name, pid in pids.items()}
        for _ in range(10):  # a leak per call would show in the descriptor count
            for method, which, stream, type_name, valid in methods:
                valid = valid.SerializeToString() if valid else b""
                bad = {
                    "garbage": b"\xff" * 11,                       # a tag varint that never ends
                    "truncated": valid[:-3] if valid else b"\x0a\x10abc",  # a length past the end
                    "wrong wire type": b"\x0d\x01\x02\x03\x04",    # field 1 as a fixed32
                    "unknown field": valid + bytes([0x98, 0x06, 0x01]),  # field 99
                }
                for what, payload in bad.items():
                    with self.subTest(method=method, daemon=which, input=what):
                        code, details, _ = call_raw(getattr(self, which), method, payload, stream)
                        self.assertEqual(code, INVALID, details)
                        self.assertIn(f"request is not a valid airlock.v1.{type_name}", details)
        for name, pid in pids.items():
            self.assertLessEqual(open_fds(pid), fds[name] + 4, f"airlock-{name} leaks descriptors")
        self.assertStillServing()

    def test_a_message_over_the_grpc_maximum_is_resource_exhausted(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"#" * (5 * MiB))
        code, details, events = call_raw(self.broker, EXECUTE, req.SerializeToString(), True)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        self.assertEqual(events, [])
        big = credentials_pb2.IntrospectRequest(token="a" * (5 * MiB)).SerializeToString()
        for method in (INTROSPECT, REVOKE):
            code, details, _ = call_raw(self.credd, method, big)
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        self.assertStillServing()

    # -- tokens in Introspect and Revoke

    def test_malformed_tokens_and_ids_are_invalid_argument(self):
        def intro(payload):
            return call_raw(self.credd, INTROSPECT, payload)

        def revoke(payload):
            return call_raw(self.credd, REVOKE, payload)

        I, R = credentials_pb2.IntrospectRequest, credentials_pb2.RevokeRequest
        cases = [
            (intro, I(token="a.b.c", token_id="abc"), "token, token_id: give one, not both"),
            (intro, I(), "token, token_id: one of them is required"),
            (revoke, R(reason="task_ended"), "token, token_id: one of them is required"),
            (intro, I(token_id="a b"), "token_id: must be 1-64 printable ASCII"),
            (intro, I(token_id="x" * 65), "token_id: must be"),
            (intro, I().SerializeToString() + string_field(2, b"jti\xff"), "token_id: must be"),
            (revoke, R(token="a.b.c", reason="two words"), "reason: must be 1-64"),
            (revoke, R(token="a.b.c").SerializeToString() + string_field(3, b"\xe2\x28\xa1"),
             "reason: must be"),
        ]
        for token in ["x" * 9000, "a." * 4096 + "a"]:
            cases += [(f, t(token=token), "token: longer than 8192 bytes")
                      for f, t in ((intro, I), (revoke, R))]
        for token in ["not-a-token", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=",
                      "a+b.c.d", "a b.c.d", "caf\u00e9.b.c"]:
            cases += [(f, t(token=token), "token: not a JWS compact serialization")
                      for f, t in ((intro, I), (revoke, R))]
        cases.append((intro, I().SerializeToString() + string_field(1, b"a.\xff\xfe.c"),
                      "token: not a JWS compact serialization"))
        for call, req, want in cases:
            payload = req if isinstance(req, bytes) else req.SerializeToString()
            with self.subTest(method=call.__name__, request=payload[:40], want=want):
                code, details, _ = call(payload)
                self.assertEqual(code, INVALID, details)
                self.assertTrue(details.startswith(want), details)
        self.assertStillServing()

    def test_forged_tokens_are_never_active_and_revoke_nothing(self):
        """While a task's token is live, tokens carrying its very claims but
        signed by another key, with alg "none", or with edited claims are
        "unknown" to Introspect and Revoke, and the real token stays active."""
        req = broker_pb2.ExecuteRequest(runtime="sh", timeout_ms=60_000,
                                        code=b'printf "%s\\n" "$AIRLOCK_TOKEN"; sleep 50')
        call = self.broker.unary_stream(
            EXECUTE, request_serializer=broker_pb2.ExecuteRequest.SerializeToString,
            response_deserializer=broker_pb2.ExecuteEvent.FromString)(req, timeout=60)
        try:
            out, token_id = b"", None
            for ev in call:
                if ev.WhichOneof("event") == "started":
                    token_id = ev.started.token_id
                out += ev.stdout
                if out.endswith(b"\n"):
                    break
            token = out.decode().strip()
            self.assertTrue(introspect(self.credd, token_id=token_id).active)
            head, body, sig = token.split(".")
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            self.assertEqual(claims["jti"], token_id)

            other = Ed25519PrivateKey.generate()

            def signed(h, b):
                return f"{h}.{b}.{b64url(other.sign(f'{h}.{b}'.encode()))}"

            none_head = b64url(json.dumps(dict(header, alg="none")).encode())
            edited = b64url(json.dumps(dict(claims, sub="spiffe://airlock.local/evil")).encode())
            forged = {
                "signed by another key": signed(head, body),
                "alg none": f"{none_head}.{body}.{b64url(bytes(64))}",
                "alg none, signed by another key": signed(none_head, body),
                "edited claims": f"{head}.{edited}.{sig}",
                "edited claims, signed by another key": signed(head, edited),
                "signature cut short": f"{head}.{body}.{sig[:-4]}",
            }
            for what, bad in forged.items():
                with self.subTest(what):
                    resp = introspect(self.credd, token=bad)
                    self.assertFalse(resp.active)
                    self.assertEqual(resp.status, "unknown")
                    self.assertEqual((resp.sub, resp.jti, resp.scope), ("", "", ""))
                    code, details, resps = call_raw(
                        self.credd, REVOKE,
                        credentials_pb2.RevokeRequest(token=bad).SerializeToString())
                    self.assertEqual(code, grpc.StatusCode.OK, details)
                    r = credentials_pb2.RevokeResponse.FromString(resps[0])
                    self.assertEqual((r.status, r.was_active), ("unknown", False))
            # Still the task's: none of the above touched it.
            self.assertTrue(introspect(self.credd, token=token).active)
            self.assertTrue(introspect(self.credd, token_id=token_id).active)
        finally:
            call.cancel()
        self.assertStillServing()


if __name__ == "__main__":
    unittest.main()
