"""The audit trail, end to end: real daemons write their chains while tasks
run; the records are checked by an independent verifier written here (the
README's schema: each line's prev is the SHA-256 of the line before, each
checkpoint an Ed25519 signature checked against credd's JWKS with PyNaCl),
through the Audit service (Query, Verify) and through the CLI. Then every
kind of tampering is shown to be detected and located, and an audit store
that cannot be written is shown to stop tasks (fail closed)."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc
import nacl.signing

from airlock.v1 import audit_pb2, broker_pb2
from airlock_fixture import (Daemons, DevCA, bin_path, execute, free_port, keys, split_events,
                             tls_channel)

TD = "airlock.local"
QUERY = "/airlock.v1.Audit/Query"
VERIFY = "/airlock.v1.Audit/Verify"
ZERO = "0" * 64

CONFIG = """\
listen:
  tcp: "127.0.0.1:{port}"
tls:
  cert: {dir}/broker.pem
  key: {dir}/broker.key
  bundle: {dir}/ca.pem
audit:
  checkpoint_interval_s: 1
  stream: {stream}
policy:
  - name: local
    spiffe_id: spiffe://airlock.local/uid/{uid}
    runtimes: [python3, sh]
    limits: {{timeout_ms: 20000}}
    scopes: [orders:read]
    permissions: [audit:read]
  - name: planner
    spiffe_id: spiffe://airlock.local/agents/planner
    runtimes: [python3]
  - name: auditor
    spiffe_id: spiffe://airlock.local/security/auditor
    permissions: [audit:read]
"""


# ------------------------------------------------------ independent verifier

def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def read_chain(path):
    """[(line bytes, record)] after checking every link; raises on a break."""
    data = open(path, "rb").read()
    assert data.endswith(b"\n"), "chain file does not end with a newline"
    out, prev = [], ZERO
    for i, line in enumerate(data[:-1].split(b"\n")):
        rec = json.loads(line)
        assert rec["v"] == 1 and rec["seq"] == i + 1, f"line {i + 1}: {rec}"
        assert rec["prev"] == prev, f"record {i + 1}: prev does not link"
        assert list(rec)[:6] == ["v", "seq", "ts", "time", "chain", "kind"], list(rec)
        assert list(rec)[-1] == "prev"
        prev = hashlib.sha256(line).hexdigest()
        out.append((line, rec))
    assert out[0][1]["kind"] == "chain.start"
    return out


def check_checkpoints(chain, jwks):
    """Verifies every checkpoint's signature; returns how many there are."""
    keys_by_kid = {k["kid"]: nacl.signing.VerifyKey(b64url(k["x"])) for k in jwks["keys"]}
    hashes = {rec["seq"]: hashlib.sha256(line).hexdigest() for line, rec in chain}
    n = 0
    for line, rec in chain:
        if rec["kind"] != "checkpoint":
            continue
        assert rec["covers_seq"] < rec["seq"]
        assert hashes[rec["covers_seq"]] == rec["head"]
        msg = "\n".join(["airlock-audit-checkpoint-v1", rec["chain"], str(rec["covers_seq"]),
                         rec["head"], str(rec["signed_time"])]).encode()
        keys_by_kid[rec["kid"]].verify(msg, b64url(rec["sig"]))  # raises if forged
        n += 1
    return n


def records(path, kind=None):
    return [r for _, r in read_chain(path) if kind is None or r["kind"] == kind]


# ------------------------------------------------------------------- tests

class AuditTrail(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="airlock-audit-")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.ca = DevCA(ca_dir, TD)
        cls.ca.svid("broker", "/airlock/broker", "--dns", "localhost")
        cls.planner = cls.ca.svid("planner", "/agents/planner")
        cls.auditor = cls.ca.svid("auditor", "/security/auditor")
        cls.foreign = DevCA(os.path.join(cls.tmp, "other-ca"), TD).svid("planner",
                                                                         "/agents/planner")
        cls.port = free_port()
        cls.stream = os.path.join(cls.tmp, "siem.jsonl")
        config = os.path.join(cls.tmp, "broker.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=cls.port, dir=ca_dir, uid=os.getuid(), stream=cls.stream))
        cls.channels = []
        cls.d = Daemons(["--config", config], ["--audit-checkpoint-s", "1"])
        cls.d.start()
        try:
            cls.run_tasks()
        except BaseException:
            cls.tearDownClass()  # unittest does not when setUpClass fails
            raise

    @classmethod
    def run_tasks(cls):
        cls.broker = cls.d.channel("broker")
        cls.credd = cls.d.channel("credd")
        cls.broker_log = os.path.join(cls.d.tmp, "broker-state", "audit.jsonl")
        cls.credd_log = os.path.join(cls.d.tmp, "credd-state", "audit.jsonl")
        cls.jwks = keys(cls.credd)

        # A run of tasks every test below reads from.
        cls.tasks = {}
        for name, runtime, code, kw in [
                ("ok", "python3", "import os,sys\nprint(os.environ['AIRLOCK_TOKEN'])\n"
                 "sys.stderr.write('e')", {"stdin": b"in", "client_request_id": "req-ok"}),
                ("fail", "sh", "echo out; exit 3", {}),
                ("timeout", "sh", "sleep 30", {"timeout_ms": 500}),
        ]:
            req = broker_pb2.ExecuteRequest(runtime=runtime, code=code.encode(), **kw)
            events, status, details = execute(cls.broker, req)
            assert status == grpc.StatusCode.OK, details
            cls.tasks[name] = (req,) + split_events(events)
        # A policy denial (scope not granted) and an authentication failure.
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true", scopes=["orders:write"])
        _, cls.denied_status, _ = execute(cls.broker, req)
        with tls_channel(f"127.0.0.1:{cls.port}", cls.ca.bundle, *cls.foreign) as ch:
            _, cls.foreign_status, _ = execute(ch, req, timeout=10)
        time.sleep(2.5)  # let both daemons sign a checkpoint

    @classmethod
    def tearDownClass(cls):
        for ch in cls.channels:
            ch.close()
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def query(self, channel=None, **filters):
        call = (channel or self.broker).unary_stream(
            QUERY, request_serializer=audit_pb2.AuditQuery.SerializeToString,
            response_deserializer=audit_pb2.AuditRecord.FromString)
        return [json.loads(r.json) for r in call(audit_pb2.AuditQuery(**filters), timeout=30)]

    def verify(self, channel):
        return channel.unary_unary(
            VERIFY, request_serializer=audit_pb2.AuditVerifyRequest.SerializeToString,
            response_deserializer=audit_pb2.AuditVerifyResponse.FromString)(
                audit_pb2.AuditVerifyRequest(), timeout=30)

    def tls(self, svid):
        ch = tls_channel(f"127.0.0.1:{self.port}", self.ca.bundle, *svid)
        self.channels.append(ch)
        return ch

    def cli(self, *args):
        return self.d.cli(*args)

    # -- what is recorded

    def test_execution_records_link_mint_and_revoke(self):
        executions = {r["task_id"]: r for r in records(self.broker_log, "execute")}
        starts = {r["task_id"]: r for r in records(self.broker_log, "execute.start")}
        mints = {r["token_id"]: r for r in records(self.credd_log, "mint")
                 if r["result"] == "ok"}
        revokes = {r["token_id"]: r for r in records(self.credd_log, "revoke")}
        want = {"ok": "OK", "fail": "EXIT_NONZERO", "timeout": "TIMEOUT"}
        for name, (req, started, out, err, fin) in self.tasks.items():
            rec = executions[started.task_id]
            self.assertIn(started.task_id, starts)
            self.assertEqual(rec["subject"], started.subject)
            self.assertEqual(rec["runtime"], req.runtime)
            self.assertEqual(rec["token_id"], started.token_id)
            self.assertEqual(rec["token_expires_at"], started.token_expires_at)
            self.assertEqual(rec["code_sha256"], hashlib.sha256(req.code).hexdigest())
            self.assertEqual(rec["stdin_sha256"], hashlib.sha256(req.stdin).hexdigest())
            self.assertEqual(rec["stdout_sha256"], hashlib.sha256(out).hexdigest())
            self.assertEqual(rec["stdout_bytes"], len(out))
            self.assertEqual(rec["stderr_sha256"], hashlib.sha256(err).hexdigest())
            self.assertEqual(rec["reason"], want[name])
            self.assertEqual((rec["exit_code"], rec["signal"]), (fin.exit_code, fin.signal))
            self.assertEqual((rec["wall_ms"], rec["cpu_ms"]), (fin.wall_ms, fin.cpu_ms))
            self.assertEqual(rec["limits"]["timeout_ms"], started.limits.timeout_ms)
            self.assertEqual(rec["limits"]["memory_bytes"], started.limits.memory_bytes)
            self.assertLessEqual(rec["start_ms"], rec["end_ms"])
            self.assertTrue(rec["token_revoked"])
            self.assertEqual(rec["revoke_reason"], "task_ended")
            self.assertEqual(rec["rule"], "local")
            # mint -> execute -> revoke, by token id, in credd's chain
            mint = mints[started.token_id]
            self.assertEqual(mint["subject"], started.subject)
            self.assertEqual(mint["task_id"], started.task_id)
            self.assertEqual(mint["expires_at"], started.token_expires_at)
            self.assertEqual(mint["code_sha256"], rec["code_sha256"])
            self.assertEqual(revokes[started.token_id]["reason"], "task_ended")
            self.assertEqual(revokes[started.token_id]["before"], "active")
            self.assertLess(mint["seq"], revokes[started.token_id]["seq"])
        self.assertEqual(executions[self.tasks["ok"][1].task_id]["client_request_id"], "req-ok")

    def test_token_values_and_code_never_written(self):
        token = self.tasks["ok"][2].decode().strip()
        self.assertEqual(token.count("."), 2, "the task printed its token")
        code = self.tasks["ok"][0].code
        for path in (self.broker_log, self.credd_log, self.stream):
            data = open(path, "rb").read()
            self.assertNotIn(token.encode(), data, path)
            self.assertNotIn(token.split(".")[2].encode(), data, path)  # not even the signature
            self.assertNotIn(code, data, path)

    def test_policy_and_authentication_results(self):
        self.assertEqual(self.denied_status, grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(self.foreign_status, grpc.StatusCode.UNAUTHENTICATED)
        policy = records(self.broker_log, "policy")
        denied = [r for r in policy if r["result"] == "deny" and r["subject"].endswith(
            "/uid/%d" % os.getuid())]
        self.assertEqual(len(denied), 1)
        self.assertIn('scope "orders:write" not granted', denied[0]["why"])
        self.assertEqual(denied[0]["task_id"], "")
        allowed = {r["task_id"] for r in policy if r["result"] == "allow"}
        self.assertTrue({t[1].task_id for t in self.tasks.values()} <= allowed)
        authn = records(self.broker_log, "authn")
        self.assertEqual(len(authn), 1)
        self.assertEqual(authn[0]["result"], "denied")
        self.assertEqual(authn[0]["peer"]["transport"], "tls")
        self.assertIn("not signed by the trust bundle", authn[0]["why"])

    def test_introspection_recorded(self):
        started = self.tasks["fail"][1]
        from airlock_fixture import introspect
        self.assertFalse(introspect(self.credd, token_id=started.token_id).active)
        recs = [r for r in records(self.credd_log, "introspect")
                if r["token_id"] == started.token_id]
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[-1]["status"], "revoked")

    def test_chains_verify_independently_with_signed_checkpoints(self):
        for path in (self.broker_log, self.credd_log):
            chain = read_chain(path)
            self.assertGreaterEqual(check_checkpoints(chain, self.jwks), 1, path)
        # credd recorded signing the broker's checkpoints: a cross-anchor
        broker_chain = records(self.broker_log)[0]["chain"]
        signed = [r for r in records(self.credd_log, "checkpoint.sign")]
        self.assertTrue(signed)
        self.assertTrue(all(r["broker_chain"] == broker_chain for r in signed))
        heads = {r["covers_seq"]: r["head"] for r in records(self.broker_log, "checkpoint")}
        self.assertTrue(any(heads.get(r["covers_seq"]) == r["head"] for r in signed))

    def test_verify_rpc_and_cli(self):
        for ch, which in ((self.broker, "broker"), (self.credd, "credd")):
            v = self.verify(ch)
            self.assertTrue(v.ok, v.message)
            self.assertEqual(v.problem, "ok")
            self.assertGreaterEqual(v.checkpoints, 1)
            self.assertGreaterEqual(v.head_seq, v.last_checkpoint_seq)
            r = self.cli("audit", "verify", "--of", which)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(b"ok", r.stdout)

    def test_json_stream_mirrors_the_chain(self):
        chain = open(self.broker_log, "rb").read().splitlines()
        stream = open(self.stream, "rb").read().splitlines()
        self.assertGreater(len(stream), 10)
        self.assertEqual(stream, chain[:len(stream)])

    # -- how it is read

    def test_query_filters(self):
        ok = self.tasks["ok"][1]
        by_task = self.query(task_id=ok.task_id)
        self.assertEqual({r["kind"] for r in by_task}, {"policy", "execute.start", "execute"})
        self.assertTrue(all(r["task_id"] == ok.task_id for r in by_task))
        by_token = self.query(self.credd, token_id=ok.token_id)
        self.assertEqual([r["kind"] for r in by_token], ["mint", "revoke"])
        timeouts = self.query(kinds=["execute"], reason="TIMEOUT")
        self.assertEqual([r["task_id"] for r in timeouts], [self.tasks["timeout"][1].task_id])
        mine = self.query(kinds=["execute"], subject=ok.subject)
        self.assertEqual(len(mine), 3)
        self.assertEqual(len(self.query(kinds=["execute"], limit=2)), 2)
        t0 = self.query(task_id=self.tasks["fail"][1].task_id, kinds=["execute"])[0]["ts"]
        since = self.query(kinds=["execute"], since_ms=t0)
        self.assertEqual([r["task_id"] for r in since],
                         [self.tasks["fail"][1].task_id, self.tasks["timeout"][1].task_id])
        until = self.query(kinds=["execute"], until_ms=t0)
        self.assertEqual([r["task_id"] for r in until], [ok.task_id])
        self.assertEqual(self.query(kinds=["no.such.kind"]), [])
        with self.assertRaises(grpc.RpcError) as e:
            self.query(task_id="has space")
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_cli_query_json_and_tokens(self):
        ok = self.tasks["ok"][1]
        r = self.cli("audit", "query", "--task", ok.task_id, "--kind", "execute", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn(lines[0].encode(), open(self.broker_log, "rb").read())
        r = self.cli("audit", "tokens", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        tokens = {t["token_id"]: t for t in map(json.loads, r.stdout.decode().splitlines())}
        for _, started, *_ in self.tasks.values():
            t = tokens[started.token_id]
            self.assertEqual(t["subject"], started.subject)
            self.assertEqual(t["ended"], "task_ended")
            self.assertIsNotNone(t["revoked_at"])

    def test_audit_read_needs_permission(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.query(self.tls(self.planner), kinds=["execute"])
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("does not grant audit:read", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.verify(self.tls(self.planner))
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        # the auditor reads but runs nothing
        self.assertTrue(self.query(self.tls(self.auditor), kinds=["execute"]))
        _, status, _ = execute(self.tls(self.auditor),
                               broker_pb2.ExecuteRequest(runtime="sh", code=b"true"))
        self.assertEqual(status, grpc.StatusCode.PERMISSION_DENIED)
        reads = records(self.broker_log, "audit.read")
        self.assertTrue(any(r["result"] == "deny" and r["caller"].endswith("/agents/planner")
                            for r in reads))
        self.assertTrue(any(r["result"] == "allow" and r["caller"].endswith("/security/auditor")
                            for r in reads))

    # -- tampering

    def tampered(self, edit):
        """A copy of the broker's chain changed by edit(lines) -> lines, and
        what `airlock audit verify --file` says about it."""
        lines = open(self.broker_log, "rb").read().split(b"\n")[:-1]
        path = os.path.join(self.tmp, "tampered.jsonl")
        with open(path, "wb") as f:
            f.write(edit(lines))
        jwks = os.path.join(self.tmp, "jwks.json")
        with open(jwks, "w") as f:
            json.dump(self.jwks, f)
        r = self.cli("audit", "verify", "--file", path, "--jwks", jwks, "--json")
        return r.returncode, json.loads(r.stdout) if r.stdout else {}, r

    def test_untampered_copy_verifies(self):
        rc, v, r = self.tampered(lambda lines: b"\n".join(lines) + b"\n")
        self.assertEqual(rc, 0, r.stdout + r.stderr)
        self.assertTrue(v["ok"])
        self.assertEqual(v["problem"], "ok")

    def test_edited_byte_detected(self):
        def edit(lines):
            i = 5
            lines[i] = lines[i].replace(b'"seq":6', b'"seq":6 ', 1)  # one byte more
            return b"\n".join(lines) + b"\n"
        rc, v, _ = self.tampered(edit)
        self.assertEqual((rc, v["problem"], v["bad_seq"]), (1, "edited", 6))

        def flip(lines):  # same length: a failed task's exit code rewritten
            i = next(n for n, l in enumerate(lines)
                     if b'"kind":"execute"' in l and b'"exit_code":3' in l)
            lines[i] = lines[i].replace(b'"exit_code":3', b'"exit_code":0')
            return b"\n".join(lines) + b"\n"
        rc, v, _ = self.tampered(flip)
        self.assertEqual((rc, v["problem"]), (1, "edited"))
        self.assertIn("was altered", v["message"])

    def test_deleted_record_detected(self):
        rc, v, _ = self.tampered(lambda lines: b"\n".join(lines[:7] + lines[8:]) + b"\n")
        self.assertEqual((rc, v["problem"], v["bad_line"]), (1, "deleted", 8))
        self.assertIn("record 8 is missing", v["message"])

    def test_reordered_records_detected(self):
        def swap(lines):
            lines[6], lines[7] = lines[7], lines[6]
            return b"\n".join(lines) + b"\n"
        rc, v, _ = self.tampered(swap)
        self.assertEqual((rc, v["problem"]), (1, "reordered"))
        self.assertIn(v["bad_seq"], (7, 8))

    def test_forged_checkpoint_detected(self):
        forger = nacl.signing.SigningKey.generate()
        self.bad = None

        def forge(lines):
            for i, line in enumerate(lines):
                rec = json.loads(line)
                if rec["kind"] == "checkpoint":
                    msg = "\n".join(["airlock-audit-checkpoint-v1", rec["chain"],
                                     str(rec["covers_seq"]), rec["head"],
                                     str(rec["signed_time"])]).encode()
                    sig = base64.urlsafe_b64encode(forger.sign(msg).signature).rstrip(b"=")
                    lines[i] = line.replace(rec["sig"].encode(), sig)
                    self.bad = rec["seq"]
                    break
            return b"\n".join(lines) + b"\n"
        rc, v, _ = self.tampered(forge)
        self.assertEqual((rc, v["problem"], v["bad_seq"]), (1, "bad_checkpoint", self.bad))

    def test_truncated_copy_detected_against_the_live_head(self):
        head = self.verify(self.broker).head_seq
        lines = open(self.broker_log, "rb").read().split(b"\n")[:-1][:head]
        path = os.path.join(self.tmp, "cut.jsonl")
        with open(path, "wb") as f:
            f.write(b"\n".join(lines[:-3]) + b"\n")
        jwks = os.path.join(self.tmp, "jwks-cut.json")
        with open(jwks, "w") as f:
            json.dump(self.jwks, f)
        r = self.cli("audit", "verify", "--file", path, "--jwks", jwks, "--expect-seq",
                     str(head), "--json")
        v = json.loads(r.stdout)
        self.assertEqual((r.returncode, v["problem"]), (1, "truncated"), r.stderr)
        self.assertIn(str(head - 2), v["message"])  # names the first missing record


class LiveTamper(unittest.TestCase):
    """Tampering with a running daemon's file: the daemon's Verify finds it,
    and a writer that sees its file cut short stops writing (and so stops
    tasks) rather than extend a chain it no longer holds."""

    def test_edit_then_truncate(self):
        d = Daemons()
        d.start()
        try:
            ch = d.channel("broker")
            for _ in range(3):
                _, status, details = execute(ch, broker_pb2.ExecuteRequest(runtime="sh",
                                                                           code=b"true"))
                self.assertEqual(status, grpc.StatusCode.OK, details)
            log = os.path.join(d.tmp, "broker-state", "audit.jsonl")
            verify = lambda: ch.unary_unary(
                VERIFY, request_serializer=audit_pb2.AuditVerifyRequest.SerializeToString,
                response_deserializer=audit_pb2.AuditVerifyResponse.FromString)(
                    audit_pb2.AuditVerifyRequest(), timeout=30)
            self.assertTrue(verify().ok)

            with open(log, "rb") as f:
                lines = f.read().split(b"\n")[:-1]
            last = json.loads(lines[-1])
            # same length, in place: the last execute record's reason
            i = max(n for n, l in enumerate(lines) if b'"reason":"OK"' in l)
            at = len(b"\n".join(lines[:i])) + 1 + lines[i].index(b'"reason":"OK"')
            with open(log, "r+b") as f:
                f.seek(at)
                f.write(b'"reason":"NO"')
            v = verify()
            self.assertEqual((v.ok, v.problem, v.bad_seq), (False, "edited", i + 1), v.message)
            with open(log, "r+b") as f:  # put it back
                f.seek(at)
                f.write(b'"reason":"OK"')
            self.assertTrue(verify().ok)

            with open(log, "r+b") as f:  # cut the tail
                f.truncate(len(b"\n".join(lines[:-2])) + 1)
            v = verify()
            self.assertEqual((v.ok, v.problem), (False, "truncated"), v.message)
            self.assertGreaterEqual(v.head_seq, last["seq"] - 2)
            _, status, details = execute(ch, broker_pb2.ExecuteRequest(runtime="sh",
                                                                       code=b"true"))
            self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
            self.assertIn("audit trail unavailable", details)
        finally:
            d.stop()


class FailClosed(unittest.TestCase):
    """The audit store on a 1 MiB tmpfs, filled up: nothing runs, callers
    get UNAVAILABLE, and when space returns everything works again with an
    intact chain."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="airlock-audit-full-")
        self.mnt = {}
        for name in ("broker", "credd"):
            m = os.path.join(self.tmp, name + "-audit")
            os.mkdir(m)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", m], check=True)
            self.mnt[name] = m
        self.d = Daemons(["--audit-path", os.path.join(self.mnt["broker"], "audit.jsonl")],
                         ["--audit-path", os.path.join(self.mnt["credd"], "audit.jsonl")])
        self.d.start()
        self.broker = self.d.channel("broker")

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            for m in self.mnt.values():
                subprocess.run(["umount", "-l", m], check=False)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def fill(self, name):
        path = os.path.join(self.mnt[name], "filler")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 512) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        return path

    def run_sh(self):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"echo ran")
        return execute(self.broker, req, timeout=30)

    def assert_works(self):
        events, status, details = self.run_sh()
        self.assertEqual(status, grpc.StatusCode.OK, details + self.d.logs())
        self.assertEqual(split_events(events)[1], b"ran\n")

    def until_refused(self):
        """Runs tasks until one is refused: the chain file's last page may
        still take a record or two after the disk is full. Returns that
        call's (events, status, details)."""
        for _ in range(50):
            events, status, details = self.run_sh()
            if status != grpc.StatusCode.OK:
                return events, status, details
        self.fail("50 tasks ran with the audit store full\n" + self.d.logs())

    def test_full_broker_store_stops_tasks(self):
        self.assert_works()
        filler = self.fill("broker")
        events, status, details = self.until_refused()
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn("audit trail unavailable", details)
        self.assertIn("nothing was run", details)
        self.assertEqual([e.WhichOneof("event") for e in events], [])
        # refused before a token was minted for it (its records' room is
        # reserved first): every token credd minted is a task the broker ran
        minted = {r["task_id"] for r in records(os.path.join(self.mnt["credd"], "audit.jsonl"),
                                                "mint") if r.get("result") == "ok"}
        ran = {r["task_id"] for r in records(os.path.join(self.mnt["broker"], "audit.jsonl"),
                                             "execute")}
        self.assertEqual(minted, ran)
        os.unlink(filler)
        self.assert_works()
        v = subprocess.run([bin_path("airlock"), "--broker", self.d.broker_addr, "--credd",
                            self.d.credd_addr, "audit", "verify"], capture_output=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        read_chain(os.path.join(self.mnt["broker"], "audit.jsonl"))

    def test_full_credd_store_stops_minting(self):
        self.assert_works()
        filler = self.fill("credd")
        events, status, details = self.until_refused()
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn("no token was minted", details)
        self.assertEqual(events, [])
        os.unlink(filler)
        self.assert_works()
        read_chain(os.path.join(self.mnt["credd"], "audit.jsonl"))


class KeepCode(unittest.TestCase):
    """audit.keep_code: execute.start carries the code, base64; nothing else
    does, and without the option nothing does."""

    def run_one(self, broker_args):
        d = Daemons(broker_args)
        d.start()
        try:
            with grpc.insecure_channel(d.broker_addr) as ch:
                _, status, details = execute(ch, broker_pb2.ExecuteRequest(
                    runtime="sh", code=b"echo kept-code-marker"))
                self.assertEqual(status, grpc.StatusCode.OK, details)
            return records(os.path.join(d.tmp, "broker-state", "audit.jsonl"))
        finally:
            d.stop()

    def test_keep_code(self):
        recs = self.run_one(["--audit-keep-code"])
        start = [r for r in recs if r["kind"] == "execute.start"]
        self.assertEqual(len(start), 1)
        self.assertEqual(base64.b64decode(start[0]["code_base64"]), b"echo kept-code-marker")
        self.assertTrue(all("code_base64" not in r for r in recs if r["kind"] != "execute.start"))
        self.assertTrue(all("code_base64" not in r for r in self.run_one([])))


class Shutdown(unittest.TestCase):
    """SIGTERM leaves each chain ending in a signed checkpoint that covers
    its daemon.stop record."""

    def test_final_checkpoint(self):
        d = Daemons()
        d.start()
        try:
            with grpc.insecure_channel(d.broker_addr) as ch:
                _, status, details = execute(ch, broker_pb2.ExecuteRequest(runtime="sh",
                                                                           code=b"true"))
                self.assertEqual(status, grpc.StatusCode.OK, details)
            with grpc.insecure_channel(d.credd_addr) as ch:
                jwks = keys(ch)
            self.assertIsNone(d.stop_one("broker"))
            self.assertIsNone(d.stop_one("credd"))
            for name in ("broker", "credd"):
                chain = read_chain(os.path.join(d.tmp, name + "-state", "audit.jsonl"))
                kinds = [r["kind"] for _, r in chain]
                self.assertEqual(kinds[-2:], ["daemon.stop", "checkpoint"], name)
                self.assertEqual(chain[-1][1]["covers_seq"], chain[-2][1]["seq"])
                self.assertGreaterEqual(check_checkpoints(chain, jwks), 1)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
