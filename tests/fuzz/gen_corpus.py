#!/usr/bin/python3
"""gen_corpus.py BUILD_DIR - writes the seed corpus in tests/fuzz/corpus/.

BUILD_DIR/python holds the generated Python protos. The JWT seeds are signed
with fuzz_jwt.c's fixed key (seed "airlock-fuzz", zero-padded), so they verify.
"""
import base64, hashlib, json, os, struct, sys

sys.path.insert(0, os.path.join(sys.argv[1], "python"))
from airlock.v1 import audit_pb2, broker_pb2, credentials_pb2  # noqa: E402
from airlock.internal.v1 import worker_pb2  # noqa: E402
import health_pb2  # noqa: E402
import nacl.signing  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz_requests: the first byte picks the type (the order of types[] there)
reqs = [
    ("execute", broker_pb2.ExecuteRequest(
        runtime="python3", code=b"print(1)\n", stdin=b"x", timeout_ms=5000,
        scopes=["orders:read"], audience=["orders.api"], client_request_id="r1",
        limits=broker_pb2.Limits(timeout_ms=5000, memory_bytes=64 << 20))),
    ("mint", credentials_pb2.MintRequest(
        subject="spiffe://airlock.local/agents/a", audience=["orders.api"],
        scopes=["orders:read"], task_id="t1", ttl_seconds=60, code_sha256="ab" * 32)),
    ("revoke", credentials_pb2.RevokeRequest(token_id="j1", reason="task_ended")),
    ("introspect", credentials_pb2.IntrospectRequest(token="a.b.c")),
    ("keys", credentials_pb2.KeysRequest()),
    ("sign_checkpoint", credentials_pb2.SignCheckpointRequest(
        chain="c1", seq=7, head="cd" * 32, time=1700000000)),
    ("audit_query", audit_pb2.AuditQuery(
        subject="spiffe://airlock.local/agents/a", since_ms=1, kinds=["execute"], limit=10)),
    ("audit_verify", audit_pb2.AuditVerifyRequest()),
]
task = worker_pb2.Task(task_id="t1", runtime="sh", code=b"echo hi\n", timeout_ms=1000,
                       memory_bytes=64 << 20, max_pids=16, output_bytes=65536,
                       token="a.b.c", token_id="j1", cpu_ms=500, disk_bytes=1 << 20,
                       open_files=64)
reqs += [
    ("health", health_pb2.HealthCheckRequest(service="airlock.v1.Broker")),
    ("worker_task", task),
    ("worker_usage", worker_pb2.WorkerEvent(usage=worker_pb2.Usage(
        exit_code=1, signal=9, reason=3, wall_ms=10, cpu_ms=5, max_rss_kb=1024,
        stdout_sha256="ab" * 32, stderr_sha256="cd" * 32, seccomp_syscall=-1,
        message="timeout", stdout_bytes=3, stderr_bytes=0, output_truncated=True))),
    ("worker_stdout", worker_pb2.WorkerEvent(stdout=b"hi\n")),
    ("worker_ready", worker_pb2.WorkerEvent(ready=True)),
    # responses: the broker's from credd, the CLI's
    ("mint_response", credentials_pb2.MintResponse(
        token="a.b.c", token_id="j1", issued_at=1700000000, expires_at=1700000060,
        key_id="k1")),
    ("revoke_response", credentials_pb2.RevokeResponse(status="revoked", was_active=True)),
    ("keys_response", credentials_pb2.KeysResponse(jwks_json='{"keys":[]}')),
    ("sign_checkpoint_response", credentials_pb2.SignCheckpointResponse(
        key_id="k1", signature="c2ln", signer="spiffe://airlock.local/airlock/credd")),
    ("execute_event", broker_pb2.ExecuteEvent(finished=broker_pb2.Finished(
        reason=broker_pb2.Finished.TIMEOUT, token_revoked=True, code_sha256="ab" * 32))),
    ("introspect_response", credentials_pb2.IntrospectResponse(
        active=True, status="active", aud=["orders.api"], jti="j1", exp=1700000060)),
    ("audit_record", audit_pb2.AuditRecord(seq=1, ts_ms=1700000000000, kind="execute",
                                           json='{"kind":"execute"}')),
    ("audit_verify_response", audit_pb2.AuditVerifyResponse(ok=True, chain="c1", records=3,
                                                            head_seq=3, head_hash="ab" * 32)),
    ("health_response", health_pb2.HealthCheckResponse(
        status=health_pb2.HealthCheckResponse.SERVING)),
]
# the first byte: the index of the type in fuzz_requests.c's types[]
TYPE_INDEX = {"worker_stdout": 10, "worker_ready": 10}
i = 0
for name, msg in reqs:
    if name not in TYPE_INDEX:
        TYPE_INDEX[name], i = i, i + 1
    put("fuzz_requests", name, bytes([TYPE_INDEX[name]]) + msg.SerializeToString())

# fuzz_frame: two framed Tasks, as the broker writes them
task = task.SerializeToString()
put("fuzz_frame", "task", struct.pack(">I", len(task)) + task)
put("fuzz_frame", "task_twice", (struct.pack(">I", len(task)) + task) * 2)
put("fuzz_frame", "empty_task", struct.pack(">I", 0))


# fuzz_jwt: tokens signed by the fixed key
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


sk = nacl.signing.SigningKey(b"airlock-fuzz".ljust(32, b"\0"))
x = b64(bytes(sk.verify_key))
kid = b64(hashlib.sha256(
    json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":")).encode()).digest())


def jwt(header, claims):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    c = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = sk.sign(f"{h}.{c}".encode()).signature
    return f"{h}.{c}.{b64(sig)}".encode()


claims = {"iss": "spiffe://airlock.local/airlock/credd", "sub": "spiffe://airlock.local/agents/a",
          "aud": ["orders.api"], "scope": "orders:read", "iat": 1700000000,
          "exp": 1700000060, "jti": "j1", "task_id": "t1", "code_sha256": "ab" * 32}
put("fuzz_jwt", "valid", jwt({"alg": "EdDSA", "typ": "JWT", "kid": kid}, claims))
put("fuzz_jwt", "other_kid", jwt({"alg": "EdDSA", "typ": "JWT", "kid": "nope"}, claims))
# also the claims of a token fuzz_jwt signs itself
put("fuzz_jwt", "claims", json.dumps(claims, separators=(",", ":")).encode())
put("fuzz_jwt", "alg_none", jwt({"alg": "none", "typ": "JWT"}, claims).rsplit(b".", 1)[0] + b".")

# fuzz_config: the README's example (trimmed), and a minimal one
put("fuzz_config", "readme", b"""trust_domain: prod.example
listen:
  unix: /run/airlock/broker.sock
  tcp: "0.0.0.0:8443"
tls: {cert: /run/spire/svid.pem, key: /run/spire/svid_key.pem, bundle: /run/spire/bundle.pem}
credd:
  address: unix:/run/airlock/credd.sock
state_dir: /var/lib/airlock/broker
max_tasks: 64
queue: 128
pool: {sh: 4, python3: 4}
cgroup: auto
token_skew_s: 30
limits: {timeout_ms: 300000, memory_mb: 1024, cpu_ms: 120000, max_pids: 128,
         output_bytes: 16777216, disk_mb: 64, open_files: 512}
audit: {path: /var/lib/airlock/broker/audit.log, fsync: true, keep_code: false}
unix_identities:
  - uid: 1001
    spiffe_id: spiffe://prod.example/agents/planner
policy:
  - name: planner
    spiffe_id: spiffe://prod.example/agents/planner
    runtimes: [python3]
    limits: {timeout_ms: 30000, memory_mb: 256, cpu_ms: 20000, max_pids: 16}
    defaults: {timeout_ms: 5000}
    scopes: [orders:read, tickets:read]
    default_scopes: [orders:read]
    audiences: [orders.api, tickets.api]
    default_audiences: [orders.api]
    max_token_ttl_s: 120
    max_concurrent: 4
  - name: security
    spiffe_id: spiffe://prod.example/security/*
    permissions: [audit:read]
""")
put("fuzz_config", "minimal", b"""trust_domain: airlock.local
listen: {unix: /tmp/airlock-fuzz.sock}
credd: {address: "unix:/tmp/airlock-fuzz-credd.sock"}
state_dir: /tmp/airlock-fuzz-state
policy:
  - name: me
    spiffe_id: spiffe://airlock.local/uid/1000
    runtimes: [sh]
""")
put("fuzz_config", "credd", b"""trust_domain: prod.example
state_dir: /var/lib/airlock/credd
listen: {unix: /run/airlock/credd.sock, tcp: "0.0.0.0:8444"}
tls: {cert: /run/spire/svid.pem, key: /run/spire/svid_key.pem, bundle: /run/spire/bundle.pem}
brokers: [spiffe://prod.example/airlock/broker]
audit_readers: [spiffe://prod.example/security/auditor]
default_ttl_s: 60
max_ttl_s: 600
audit: {path: /var/lib/airlock/credd/audit.jsonl, stream: "-", fsync: false,
        checkpoint_interval_s: 30}
""")


# fuzz_assign: what the supervisor writes on the assignment pipe: struct
# sbx_assign_header (x86-64 layout, 80 bytes: fuzz_assign.c checks), the code,
# the environment. disk_bytes is the default the sandbox was prepared with.
def assign(code, env, disk=32 << 20, magic=0x41534721):
    limits = struct.pack("<I4xQI4xQI4xQI4x", 5000, 256 << 20, 64, 1 << 20, 5000, disk, 256)
    hdr = struct.pack("<IIQ", magic, len(env), len(code)) + limits + struct.pack("<i4x", 1)
    assert len(hdr) == 80
    return hdr + code + env


put("fuzz_assign", "task", assign(b"echo hi\n", b"AIRLOCK_TOKEN=a.b.c\0AIRLOCK_TASK_ID=t1\0"))
put("fuzz_assign", "override", assign(b"", b"PATH=/nope\0HOME=\0\0=x\0noeq\0tail"))
put("fuzz_assign", "many", assign(b"x" * 64, b"".join(b"K%d=v\0" % i for i in range(80))))
