"""An independent client (Python grpcio, generic API, messages from the
.proto files) against the real daemons: the Execute event stream, health
checks, status codes for unknown methods, malformed requests, bad runtimes
and a Mint from someone other than the broker, and the JWKS shape."""
import base64
import hashlib
import threading
import time
import unittest

import grpc

from airlock.v1 import broker_pb2, credentials_pb2
import health_pb2
from airlock_fixture import (DaemonTestCase, EXECUTE, INTROSPECT, MINT, execute, health,
                             keys, my_spiffe_id, split_events, unary)

SERVING = health_pb2.HealthCheckResponse.SERVING


def raw_call(channel, method, payload, streaming=False, timeout=10):
    """Sends payload bytes as-is; returns the status code."""
    identity = lambda b: b  # noqa: E731
    try:
        if streaming:
            for _ in channel.unary_stream(method, request_serializer=identity,
                                          response_deserializer=identity)(payload, timeout=timeout):
                pass
        else:
            channel.unary_unary(method, request_serializer=identity,
                                response_deserializer=identity)(payload, timeout=timeout)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


class GrpcClient(DaemonTestCase):

    def test_execute_event_stream(self):
        code = b"import os; print(6*7)"
        before = int(time.time())
        req = broker_pb2.ExecuteRequest(runtime="python3", code=code,
                                        client_request_id="grpcio-1")
        events, status, details = execute(self.broker, req)
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())
        kinds = [ev.WhichOneof("event") for ev in events]
        self.assertEqual(kinds[0], "started")
        self.assertEqual(kinds[-1], "finished")
        self.assertEqual(kinds.count("started"), 1)
        self.assertEqual(kinds.count("finished"), 1)
        self.assertTrue(set(kinds[1:-1]) <= {"stdout", "stderr"}, kinds)

        started, out, err, finished = split_events(events)
        self.assertEqual(out, b"42\n")
        self.assertTrue(started.task_id)
        self.assertTrue(started.token_id)
        self.assertEqual(started.subject, my_spiffe_id())
        self.assertEqual(started.client_request_id, "grpcio-1")
        self.assertGreater(started.token_expires_at, before)
        self.assertLess(started.token_expires_at, before + 24 * 3600)
        self.assertGreater(started.limits.timeout_ms, 0)
        self.assertGreater(started.limits.memory_bytes, 0)
        self.assertGreater(started.limits.output_bytes, 0)

        self.assertEqual(finished.reason, broker_pb2.Finished.OK, finished.message)
        self.assertEqual(finished.exit_code, 0)
        self.assertEqual(finished.signal, 0)
        self.assertTrue(finished.token_revoked)
        self.assertEqual(finished.stdout_sha256, hashlib.sha256(out).hexdigest())
        self.assertEqual(finished.stderr_sha256, hashlib.sha256(err).hexdigest())
        self.assertEqual(finished.code_sha256, hashlib.sha256(code).hexdigest())

    def test_stdin_and_exit_status(self):
        _, out, _, finished = self.run_task(
            "python3", "import sys; d = sys.stdin.read(); print(d.upper()); sys.exit(7)",
            stdin=b"abc")
        self.assertEqual(out, b"ABC\n")
        self.assertEqual(finished.reason, broker_pb2.Finished.EXIT_NONZERO)
        self.assertEqual(finished.exit_code, 7)

    def test_two_concurrent_clients(self):
        results = {}

        def run(i):
            req = broker_pb2.ExecuteRequest(runtime="sh", code=f"echo task-{i}".encode())
            results[i] = execute(self.broker, req)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ids = set()
        for i in range(2):
            events, status, details = results[i]
            self.assertEqual(status, grpc.StatusCode.OK, details)
            started, out, _, finished = split_events(events)
            self.assertEqual(out, f"task-{i}\n".encode())
            self.assertEqual(finished.reason, broker_pb2.Finished.OK)
            ids.add((started.task_id, started.token_id))
        self.assertEqual(len({t for t, _ in ids}), 2)
        self.assertEqual(len({j for _, j in ids}), 2)

    def test_health(self):
        self.assertEqual(health(self.broker), SERVING)
        self.assertEqual(health(self.credd), SERVING)
        self.assertEqual(health(self.broker, "airlock.v1.Broker"), SERVING)
        self.assertEqual(health(self.credd, "airlock.v1.Credentials"), SERVING)

    def test_unknown_method_is_unimplemented(self):
        self.assertEqual(raw_call(self.broker, "/airlock.v1.Broker/NoSuchMethod", b""),
                         grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(raw_call(self.credd, "/no.such.Service/Call", b""),
                         grpc.StatusCode.UNIMPLEMENTED)
        # the daemons still answer afterwards
        self.assertEqual(health(self.broker), SERVING)

    def test_malformed_request_is_invalid_argument(self):
        garbage = b"\x0a\xff\x01truncated"  # field 1, length 255, 9 bytes follow
        self.assertEqual(raw_call(self.broker, EXECUTE, garbage, streaming=True),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(raw_call(self.credd, INTROSPECT, garbage),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(health(self.broker), SERVING)

    def test_unknown_runtime_is_invalid_argument(self):
        req = broker_pb2.ExecuteRequest(runtime="cobol-74", code=b"DISPLAY 'HI'.")
        events, status, details = execute(self.broker, req)
        self.assertEqual(status, grpc.StatusCode.INVALID_ARGUMENT, details)
        self.assertEqual(events, [])
        self.assertIn("runtime", details.lower())

    def test_mint_from_outside_the_broker_is_denied(self):
        req = credentials_pb2.MintRequest(subject=my_spiffe_id(), task_id="forged-task",
                                          ttl_seconds=60, scopes=["anything"])
        with self.assertRaises(grpc.RpcError) as cm:
            unary(self.credd, MINT, req, credentials_pb2.MintResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED,
                         cm.exception.details())

    def test_keys_jwks_shape(self):
        jwks = keys(self.credd)
        self.assertEqual(set(jwks), {"keys"})
        self.assertGreaterEqual(len(jwks["keys"]), 1)
        kids = set()
        for k in jwks["keys"]:
            self.assertEqual(k["kty"], "OKP")
            self.assertEqual(k["crv"], "Ed25519")
            self.assertEqual(k["alg"], "EdDSA")
            self.assertEqual(k["use"], "sig")
            self.assertNotIn("d", k, "private key material in the JWKS")
            self.assertNotIn("=", k["x"])
            raw = base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4))
            self.assertEqual(len(raw), 32)
            self.assertTrue(k["kid"])
            kids.add(k["kid"])
        self.assertEqual(len(kids), len(jwks["keys"]), "duplicate kid")


if __name__ == "__main__":
    unittest.main()
