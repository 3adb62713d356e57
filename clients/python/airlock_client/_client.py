"""The client proper; see the package docstring."""
import dataclasses
import os
from typing import Dict, List, Optional

import grpc

from . import broker_pb2

DEFAULT_TARGET = "unix:/run/airlock/broker.sock"
EXECUTE = "/airlock.v1.Broker/Execute"


class AirlockError(Exception):
    """An Execute call that failed: the gRPC status name (code, e.g.
    "PERMISSION_DENIED") and the broker's message. status is the
    grpc.StatusCode."""

    def __init__(self, code: str, message: str, status: Optional[grpc.StatusCode] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def _from_rpc(cls, err: grpc.RpcError) -> "AirlockError":
        status = err.code()
        return cls(status.name, err.details() or "", status)


def _fields(msg) -> Dict[str, object]:
    """A message's scalar and repeated fields as a dict (every field, set or not)."""
    out = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        out[f.name] = list(v) if f.label == f.LABEL_REPEATED else v
    return out


@dataclasses.dataclass(frozen=True)
class Started:
    """The task was admitted: its ids, its token and its effective limits."""
    task_id: str
    token_id: str             # the task token's jti
    token_expires_at: int     # unix seconds
    subject: str              # our SPIFFE ID as the broker authenticated it
    limits: Dict[str, int]    # effective limits (Limits fields)
    policy: Dict[str, object]  # the policy decision (rule, pattern, reason, scopes, ...)
    client_request_id: str

    @classmethod
    def _from_pb(cls, m) -> "Started":
        return cls(task_id=m.task_id, token_id=m.token_id,
                   token_expires_at=m.token_expires_at, subject=m.subject,
                   limits=_fields(m.limits), policy=_fields(m.policy),
                   client_request_id=m.client_request_id)


@dataclasses.dataclass(frozen=True)
class Output:
    """A chunk of the task's output as it arrived; stream is "stdout" or "stderr"."""
    stream: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class Finished:
    """How the task ended. reason is the Finished.Reason name: "OK",
    "EXIT_NONZERO", "TIMEOUT", "KILLED", "OUTPUT_LIMIT", "MEMORY", "SECCOMP",
    "SANDBOX_ERROR", "CPU" or "DISK"."""
    reason: str
    exit_code: int
    signal: int
    wall_ms: int
    cpu_ms: int
    max_rss_kb: int
    token_revoked: bool
    message: str
    output_truncated: bool
    seccomp_syscall: int
    stdout_bytes: int
    stderr_bytes: int
    stdout_sha256: str
    stderr_sha256: str
    code_sha256: str

    @classmethod
    def _from_pb(cls, m) -> "Finished":
        kw = {f.name: getattr(m, f.name) for f in dataclasses.fields(cls) if f.name != "reason"}
        return cls(reason=broker_pb2.Finished.Reason.Name(m.reason), **kw)


@dataclasses.dataclass(frozen=True)
class Result:
    """What run() returns: the whole output and how the task ended."""
    stdout: bytes
    stderr: bytes
    reason: str
    exit_code: int
    signal: int
    task_id: str
    token_id: str
    wall_ms: int
    cpu_ms: int
    token_revoked: bool
    message: str
    started: Started
    finished: Finished

    @property
    def ok(self) -> bool:
        """The task exited 0."""
        return self.reason == "OK"


class _EventStream:
    """Iterator over one Execute call's events. close() (or leaving the with
    block, or dropping it) cancels the call: the broker kills the task and
    revokes its token."""

    def __init__(self, call):
        self._call = call
        self._done = False
        self._finished = False

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._done:
                raise StopIteration
            try:
                ev = next(self._call)
            except StopIteration:
                self._done = True
                if not self._finished:
                    raise AirlockError("UNKNOWN", "the stream ended without a Finished event",
                                       grpc.StatusCode.UNKNOWN) from None
                raise
            except grpc.RpcError as e:
                self._done = True
                raise AirlockError._from_rpc(e) from None
            kind = ev.WhichOneof("event")
            if kind == "started":
                return Started._from_pb(ev.started)
            if kind in ("stdout", "stderr"):
                return Output(kind, getattr(ev, kind))
            if kind == "finished":
                self._finished = True
                return Finished._from_pb(ev.finished)
            # an event kind newer than this client: skip it

    def close(self):
        """Cancels the call if it has not ended."""
        if not self._done:
            self._done = True
            self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to cancel
            pass


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Airlock:
    """A connection to the broker.

    target: "unix:/path" (peer credentials identify us) or "host:port"
    (mutual TLS only; credentials required). Default: $AIRLOCK_BROKER, else
    unix:/run/airlock/broker.sock.
    credentials: None, or (cert, key, ca) PEM file paths: our SVID, its key
    and the trust bundle the broker's certificate must chain to.
    server_name: the name to check the broker's certificate against, when it
    differs from the target's host (e.g. "localhost" for a dev CA's SVID).
    timeout: deadline of each Execute call in seconds; None: none (the broker
    still enforces each task's own wall-clock limit).
    """

    def __init__(self, target: Optional[str] = None, credentials=None,
                 timeout: Optional[float] = None, server_name: Optional[str] = None):
        self.target = target or os.environ.get("AIRLOCK_BROKER") or DEFAULT_TARGET
        self.timeout = timeout
        if self.target.startswith("unix:"):
            if credentials is not None:
                raise ValueError("credentials are for host:port targets; a unix: target "
                                 "is authenticated by peer credentials")
            self._channel = grpc.insecure_channel(self.target)
        else:
            if credentials is None:
                raise ValueError(f"{self.target}: a host:port target is mutual TLS only; "
                                 "pass credentials=(cert, key, ca)")
            cert, key, ca = credentials
            creds = grpc.ssl_channel_credentials(root_certificates=_read(ca),
                                                 private_key=_read(key),
                                                 certificate_chain=_read(cert))
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._channel = grpc.secure_channel(self.target, creds, options=options)
        self._execute = self._channel.unary_stream(
            EXECUTE,
            request_serializer=broker_pb2.ExecuteRequest.SerializeToString,
            response_deserializer=broker_pb2.ExecuteEvent.FromString)

    # -- calls

    @staticmethod
    def _request(code, runtime, stdin, timeout_ms, limits, scopes, audience, request_id):
        if isinstance(code, str):
            code = code.encode()
        if isinstance(stdin, str):
            stdin = stdin.encode()
        if isinstance(limits, dict):
            limits = broker_pb2.Limits(**limits)
        return broker_pb2.ExecuteRequest(
            runtime=runtime, code=code, stdin=stdin or b"", timeout_ms=timeout_ms or 0,
            scopes=list(scopes or ()), audience=list(audience or ()),
            client_request_id=request_id or "", limits=limits)

    def stream(self, code, runtime: str = "python3", stdin=b"", timeout_ms: Optional[int] = None,
               limits=None, scopes: Optional[List[str]] = None,
               audience: Optional[List[str]] = None, request_id: str = "") -> _EventStream:
        """Starts a task; returns an iterator of its events: one Started,
        Output chunks as they arrive, one Finished. Closing it early cancels
        the task. Raises AirlockError when iterated if the call fails.

        timeout_ms: the task's wall-clock limit (None: the policy default).
        limits: a dict of Limits fields (memory_bytes, cpu_ms, max_pids,
        output_bytes, disk_bytes, open_files, timeout_ms); omitted or 0: the
        policy default. More than policy grants is PERMISSION_DENIED.
        scopes, audience: of the task token (None: the policy's defaults)."""
        req = self._request(code, runtime, stdin, timeout_ms, limits, scopes, audience,
                            request_id)
        return _EventStream(self._execute(req, timeout=self.timeout))

    def run(self, code, runtime: str = "python3", stdin=b"", timeout_ms: Optional[int] = None,
            limits=None, scopes: Optional[List[str]] = None,
            audience: Optional[List[str]] = None, request_id: str = "") -> Result:
        """Runs a task to the end and returns its Result (whole stdout and
        stderr, reason, exit code, ids). Arguments as for stream()."""
        started = finished = None
        out, err = [], []
        with self.stream(code, runtime=runtime, stdin=stdin, timeout_ms=timeout_ms,
                         limits=limits, scopes=scopes, audience=audience,
                         request_id=request_id) as events:
            for ev in events:
                if isinstance(ev, Started):
                    started = ev
                elif isinstance(ev, Output):
                    (out if ev.stream == "stdout" else err).append(ev.data)
                else:
                    finished = ev
        if started is None:
            raise AirlockError("UNKNOWN", "the stream had no Started event",
                               grpc.StatusCode.UNKNOWN)
        return Result(stdout=b"".join(out), stderr=b"".join(err), reason=finished.reason,
                      exit_code=finished.exit_code, signal=finished.signal,
                      task_id=started.task_id, token_id=started.token_id,
                      wall_ms=finished.wall_ms, cpu_ms=finished.cpu_ms,
                      token_revoked=finished.token_revoked, message=finished.message,
                      started=started, finished=finished)

    # -- lifetime

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
