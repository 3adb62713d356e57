"""airlock_fixture - starts the real airlock-credd and airlock-broker on
temporary Unix sockets with temporary state directories, waits for their
health checks, and tears them down (SIGTERM, then SIGKILL after a bound),
checking they exit cleanly and leave no worker behind. Also the grpcio and
CLI helpers the integration tests share.

Environment: AIRLOCK_BIN_DIR (the build's bin/), PYTHONPATH containing the
build's python/ directory (generated *_pb2 modules). Run with Debian's
/usr/bin/python3, which has python3-grpcio, python3-protobuf and python3-jwt.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import grpc

from airlock.v1 import broker_pb2, credentials_pb2
import health_pb2

BIN_DIR = os.environ.get("AIRLOCK_BIN_DIR", "")
START_TIMEOUT = 30.0   # seconds for a daemon to answer its health check
STOP_TIMEOUT = 10.0    # seconds for a daemon to exit after SIGTERM
RPC_TIMEOUT = 60.0     # default deadline of one test RPC

EXECUTE = "/airlock.v1.Broker/Execute"
MINT = "/airlock.v1.Credentials/Mint"
REVOKE = "/airlock.v1.Credentials/Revoke"
INTROSPECT = "/airlock.v1.Credentials/Introspect"
KEYS = "/airlock.v1.Credentials/Keys"
HEALTH = "/grpc.health.v1.Health/Check"

TRUST_DOMAIN_PREFIX = "spiffe://airlock.local/uid/"
DEV_CA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "dev-ca.sh")


def bin_path(name):
    return os.path.join(BIN_DIR, name)


def my_spiffe_id():
    return TRUST_DOMAIN_PREFIX + str(os.getuid())


# --------------------------------------------------------------- grpcio

def execute(channel, request, timeout=RPC_TIMEOUT, on_event=None):
    """Runs Broker.Execute; returns (events, status code, details).
    on_event(event) is called as each event arrives."""
    call = channel.unary_stream(
        EXECUTE,
        request_serializer=broker_pb2.ExecuteRequest.SerializeToString,
        response_deserializer=broker_pb2.ExecuteEvent.FromString,
    )(request, timeout=timeout)
    events = []
    try:
        for ev in call:
            events.append(ev)
            if on_event:
                on_event(ev)
        return events, grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return events, e.code(), e.details()


def unary(channel, method, request, response_type, timeout=RPC_TIMEOUT):
    return channel.unary_unary(
        method,
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_type.FromString,
    )(request, timeout=timeout)


def introspect(channel, token="", token_id=""):
    return unary(channel, INTROSPECT,
                 credentials_pb2.IntrospectRequest(token=token, token_id=token_id),
                 credentials_pb2.IntrospectResponse)


def introspect_when_revoked(channel, token_id, timeout=10.0):
    """Introspects token_id until credd says revoked or timeout seconds
    pass (a cancelled task's revocation follows the caller's end); returns
    the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        resp = introspect(channel, token_id=token_id)
        if resp.status == "revoked" or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def keys(channel):
    resp = unary(channel, KEYS, credentials_pb2.KeysRequest(), credentials_pb2.KeysResponse)
    return json.loads(resp.jwks_json)


def health(channel, service="", timeout=2.0):
    return unary(channel, HEALTH, health_pb2.HealthCheckRequest(service=service),
                 health_pb2.HealthCheckResponse, timeout=timeout).status


def split_events(events):
    """(started, stdout bytes, stderr bytes, finished) of an event list."""
    started = finished = None
    out, err = b"", b""
    for ev in events:
        kind = ev.WhichOneof("event")
        if kind == "started":
            started = ev.started
        elif kind == "stdout":
            out += ev.stdout
        elif kind == "stderr":
            err += ev.stderr
        elif kind == "finished":
            finished = ev.finished
    return started, out, err, finished


# --------------------------------------------------------------- identities

class DevCA:
    """A throw-away CA (deploy/dev-ca.sh) and the SVIDs tests need."""

    def __init__(self, directory, trust_domain):
        self.dir = directory
        self.td = trust_domain
        self._run("ca")
        self.bundle = os.path.join(directory, "ca.pem")

    def _run(self, *args):
        subprocess.run(["bash", DEV_CA, self.dir, "--trust-domain", self.td] + list(args),
                       check=True, capture_output=True, timeout=60)

    def svid(self, name, spiffe_id, *options):
        """Makes NAME.pem / NAME.key; returns (cert path, key path)."""
        self._run("svid", name, spiffe_id, *options)
        return os.path.join(self.dir, name + ".pem"), os.path.join(self.dir, name + ".key")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tls_channel(address, ca, cert=None, key=None):
    """A grpcio mTLS channel (python3-grpcio). The server SVID carries DNS SAN
    localhost for grpcio's host name check."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None)
    return grpc.secure_channel(address, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------- processes

def proc_cmdlines():
    """{pid: [argv...]} of every process we can read."""
    result = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        result[int(entry)] = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return result


def processes_with_marker(marker, settle=5.0):
    """Pids (other than ours) whose command line contains marker, after
    waiting up to settle seconds for them to disappear."""
    deadline = time.monotonic() + settle
    while True:
        found = [pid for pid, argv in proc_cmdlines().items()
                 if pid != os.getpid() and any(marker in a for a in argv)]
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def sandbox_cgroup_dirs(broker_pid, sandbox_id):
    """The sandbox's cgroup directories that exist now (v1: airlock-<id>
    beside the broker's cgroup in each hierarchy; v2: <C>/tasks/<id>)."""
    found = []
    with open(f"/proc/{broker_pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else ():
                found.append(f"/sys/fs/cgroup/{c}{path}/airlock-{sandbox_id}")
            if not ctrls:
                for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                    found.append(f"{root}{os.path.dirname(path)}/tasks/{sandbox_id}")
    return [d for d in found if os.path.isdir(d)]


def orphan_workers(worker_exe):
    """Processes running worker_exe that no live airlock-broker owns."""
    worker_exe = os.path.realpath(worker_exe)
    orphans = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _exe(int(entry)) != worker_exe:
            continue
        pid, owned = int(entry), False
        p = _ppid(pid)
        while p > 1:
            if os.path.basename(_exe(p)).startswith("airlock-broker"):
                owned = True
                break
            p = _ppid(p)
        if not owned:
            orphans.append(pid)
    return orphans


class Daemons:
    """A credd and a broker of our own, on temporary sockets."""

    def __init__(self, broker_args=(), credd_args=()):
        self.broker_args = list(broker_args)
        self.credd_args = list(credd_args)
        self.tmp = tempfile.mkdtemp(prefix="airlock-it-")
        self.credd_sock = os.path.join(self.tmp, "credd.sock")
        self.broker_sock = os.path.join(self.tmp, "broker.sock")
        self.credd_addr = "unix:" + self.credd_sock
        self.broker_addr = "unix:" + self.broker_sock
        self.credd = self.broker = None
        self._channels = []

    # -- lifecycle

    def _state_dir(self, name):
        """The daemon's state directory, made on first use and kept across
        restart(). A subclass may put it on a file system of its own."""
        state = os.path.join(self.tmp, name + "-state")
        os.makedirs(state, 0o700, exist_ok=True)
        return state

    def _spawn(self, name, args):
        state = self._state_dir(name)
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        try:
            return subprocess.Popen([bin_path("airlock-" + name)] + args + ["--state-dir", state],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        finally:
            log.close()

    def _wait_healthy(self, name, proc, addr):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"airlock-{name} exited with {proc.returncode} during "
                                     f"start-up\n{self.logs()}")
            # a fresh channel each time: a failed one waits out grpc's reconnect backoff
            with grpc.insecure_channel(addr) as ch:
                try:
                    if health(ch, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError as e:
                    last = f"{e.code().name}: {e.details()}"
            time.sleep(0.05)
        raise AssertionError(f"airlock-{name} not SERVING within {START_TIMEOUT} s "
                             f"(last: {last})\n{self.logs()}")

    def _args(self, name):
        if name == "credd":
            return ["--socket", self.credd_sock] + self.credd_args
        return ["--socket", self.broker_sock, "--credd", self.credd_addr] + self.broker_args

    def start(self, with_broker=True):
        for b in ("airlock-credd", "airlock-broker", "airlock-worker", "airlock"):
            if not os.access(bin_path(b), os.X_OK):
                raise AssertionError(f"{bin_path(b)} is missing: build first "
                                     f"(AIRLOCK_BIN_DIR={BIN_DIR!r})")
        try:
            self.restart("credd")
            if with_broker:
                self.restart("broker")
        except BaseException:
            self._kill_all()
            raise

    def stop_one(self, name):
        """SIGTERM, wait STOP_TIMEOUT, else SIGKILL. Returns a problem
        description or None if it exited 0 in time."""
        proc = getattr(self, name)
        if proc is None or proc.poll() is not None:
            return None if proc is None or proc.returncode == 0 else \
                f"airlock-{name} had already exited with {proc.returncode}"
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
            return f"airlock-{name} ignored SIGTERM for {STOP_TIMEOUT} s (killed)"
        if rc != 0:
            return f"airlock-{name} exited with {rc} after SIGTERM"
        return None

    def kill9(self, name):
        """SIGKILL one daemon (nothing of its own clean-up runs) and reap it."""
        proc = getattr(self, name)
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)

    def restart(self, name):
        """(Re)starts one daemon on the same socket and state directory."""
        setattr(self, name, self._spawn(name, self._args(name)))
        self._wait_healthy(name, getattr(self, name), getattr(self, name + "_addr"))

    def broker_audit(self, kind):
        """The broker's audit records of this kind, in order."""
        with open(os.path.join(self.tmp, "broker-state", "audit.jsonl"), "rb") as f:
            return [r for r in map(json.loads, f) if r.get("kind") == kind]

    def sandbox_of(self, task_id):
        """The sandbox that ran task_id ({"id", "warm"}), from the broker's
        audit trail (execute.start), or None."""
        for rec in self.broker_audit("execute.start"):
            if rec.get("task_id") == task_id:
                return rec["sandbox"]
        return None

    def _kill_all(self):
        for proc in (self.broker, self.credd):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    def stop(self):
        """Stops both daemons; raises AssertionError if either did not exit
        cleanly or a worker outlived the broker."""
        for ch in self._channels:
            ch.close()
        problems = [p for p in (self.stop_one("broker"), self.stop_one("credd")) if p]
        self._kill_all()
        deadline = time.monotonic() + 5.0
        orphans = orphan_workers(bin_path("airlock-worker"))
        while orphans and time.monotonic() < deadline:
            time.sleep(0.1)
            orphans = orphan_workers(bin_path("airlock-worker"))
        if orphans:
            problems.append(f"airlock-worker processes outlived the broker: {orphans}")
            for pid in orphans:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        logs = self.logs()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + logs)

    # -- helpers

    def logs(self, lines=40):
        out = []
        for name in ("credd", "broker"):
            path = os.path.join(self.tmp, name + ".log")
            try:
                with open(path, "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- airlock-{name} log (last {lines} lines) ---")
            out.extend(tail)
        return "\n".join(out)

    def channel(self, which):
        ch = grpc.insecure_channel(self.broker_addr if which == "broker" else self.credd_addr)
        self._channels.append(ch)
        return ch

    def cli(self, *args, input=None, env_addresses=False, timeout=RPC_TIMEOUT):
        """Runs bin/airlock with our daemons' addresses, as flags (default)
        or through AIRLOCK_BROKER / AIRLOCK_CREDD."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        argv = [bin_path("airlock")]
        if env_addresses:
            env["AIRLOCK_BROKER"] = self.broker_addr
            env["AIRLOCK_CREDD"] = self.credd_addr
        else:
            argv += ["--broker", self.broker_addr, "--credd", self.credd_addr]
        return subprocess.run(argv + list(args), input=input, capture_output=True,
                              env=env, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)


class DaemonTestCase(unittest.TestCase):
    """One pair of daemons for the whole class."""
    BROKER_ARGS = ()  # extra airlock-broker flags for the class
    CREDD_ARGS = ()   # extra airlock-credd flags

    @classmethod
    def setUpClass(cls):
        cls.d = Daemons(cls.BROKER_ARGS, cls.CREDD_ARGS)
        cls.d.start()
        cls.broker = cls.d.channel("broker")
        cls.credd = cls.d.channel("credd")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def run_task(self, runtime, code, **kw):
        """Execute through grpcio; asserts the call succeeded and a Started
        and a Finished event came. Returns (started, stdout, stderr, finished)."""
        timeout = kw.pop("rpc_timeout", RPC_TIMEOUT)
        code = code.encode() if isinstance(code, str) else code
        req = broker_pb2.ExecuteRequest(runtime=runtime, code=code, **kw)
        events, status, details = execute(self.broker, req, timeout=timeout)
        self.assertEqual(status, grpc.StatusCode.OK, f"Execute failed: {details}\n{self.d.logs()}")
        started, out, err, finished = split_events(events)
        self.assertIsNotNone(started, "no Started event")
        self.assertIsNotNone(finished, f"no Finished event\n{self.d.logs()}")
        self.assertEqual(events[0].WhichOneof("event"), "started")
        self.assertEqual(events[-1].WhichOneof("event"), "finished")
        return started, out, err, finished
