"""systemd integration: the units in deploy/systemd/ pass `systemd-analyze
verify`, and the daemons speak the sd_notify protocol (READY=1 once their
health check answers, WATCHDOG=1 while it keeps answering, STOPPING=1 on
SIGTERM) to a NOTIFY_SOCKET this test binds. No systemd needed for that part:
the test is the service manager."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import grpc

import health_pb2
from airlock_fixture import BIN_DIR, STOP_TIMEOUT, Daemons, health

UNITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                         "systemd")
UNITS = ("airlock-credd.service", "airlock-broker.service")
WATCHDOG_USEC = 300000  # the daemons ping every 150 ms
RECV_TIMEOUT = 30.0


class UnitsVerify(unittest.TestCase):
    def test_units_pass_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze missing: deploy/install-deps.sh installs systemd")
        tmp = tempfile.mkdtemp(prefix="airlock-units-")
        self.addCleanup(shutil.rmtree, tmp)
        paths = []
        for unit in UNITS:
            with open(os.path.join(UNITS_DIR, unit)) as f:
                text = f.read()
            self.assertIn("/usr/local/bin/", text)
            # the executables named must exist: point them at this build's
            text = text.replace("/usr/local/bin/", os.path.abspath(BIN_DIR) + "/")
            paths.append(os.path.join(tmp, unit))
            with open(paths[-1], "w") as f:
                f.write(text)
        r = subprocess.run([analyze, "verify", "--man=no"] + paths, capture_output=True,
                           text=True, timeout=60)
        # verify exits 0 on unknown keys and bad values, only warning: a
        # clean unit prints nothing
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_units_declare_notify_and_watchdog(self):
        for unit in UNITS:
            with open(os.path.join(UNITS_DIR, unit)) as f:
                lines = {l.strip() for l in f}
            self.assertIn("Type=notify", lines, unit)
            self.assertTrue(any(l.startswith("WatchdogSec=") for l in lines), unit)
            self.assertIn("ProtectSystem=strict", lines, unit)
            self.assertIn("NoNewPrivileges=yes", lines, unit)


class NotifyDaemons(Daemons):
    """Daemons whose environment carries NOTIFY_SOCKET (and the watchdog
    settings, WATCHDOG_PID being the daemon's own pid unless given)."""

    def __init__(self, notify_name, notify_path, watchdog_usec=None, watchdog_pid=None, **kw):
        super().__init__(**kw)
        self.notify_name = notify_name
        self.notify_path = notify_path
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid

    def _spawn(self, name, args):
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        if name != self.notify_name:
            return self._popen(name, [os.path.join(BIN_DIR, "airlock-" + name)] + args +
                               ["--state-dir", self._state_dir(name)], env)
        env["NOTIFY_SOCKET"] = self.notify_path
        argv = [os.path.join(BIN_DIR, "airlock-" + name)] + args + [
            "--state-dir", self._state_dir(name)]
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            # the pid is the daemon's: sh execs it
            pid = str(self.watchdog_pid) if self.watchdog_pid is not None else "$$"
            argv = ["/bin/sh", "-c", f'WATCHDOG_PID={pid} exec "$0" "$@"'] + argv
        return self._popen(name, argv, env)

    def _popen(self, name, argv, env):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, env=env)
        finally:
            log.close()


class Listener:
    """The service manager's end: a datagram socket that reports each
    message's sender pid (SCM_CREDENTIALS)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)

    def recv(self, timeout=RECV_TIMEOUT):
        """(sender pid, {key: value}), or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        fields = dict(l.split("=", 1) for l in data.decode().split("\n") if l)
        return pid, fields

    def close(self):
        self.sock.close()


class NotifyCase(unittest.TestCase):
    def start(self, name, **kw):
        tmp = tempfile.mkdtemp(prefix="airlock-notify-")
        self.addCleanup(shutil.rmtree, tmp)
        self.listener = Listener(os.path.join(tmp, "notify"))
        self.addCleanup(self.listener.close)
        d = NotifyDaemons(name, os.path.join(tmp, "notify"), **kw)
        self.addCleanup(d.stop)
        if name == "broker":
            d.start(with_broker=False)  # credd, without NOTIFY_SOCKET
        # spawn without the fixture's own health polling: READY must come first
        proc = d._spawn(name, d._args(name))
        setattr(d, name, proc)
        return d, proc, getattr(d, name + "_addr")

    def expect(self, proc, key):
        """The next message from proc; it must hold key."""
        m = self.listener.recv()
        self.assertIsNotNone(m, f"no {key} within {RECV_TIMEOUT} s")
        pid, fields = m
        self.assertEqual(pid, proc.pid, f"{fields} from pid {pid}, not the daemon")
        self.assertIn(key, fields, fields)
        return fields

    def ready_then_health(self, proc, addr):
        fields = self.expect(proc, "READY")
        self.assertEqual(fields["READY"], "1")
        # READY=1 means a client's health check is answered now: one try, no
        # waiting for the socket to appear
        with grpc.insecure_channel(addr) as ch:
            self.assertEqual(health(ch, timeout=5.0), health_pb2.HealthCheckResponse.SERVING)
        return fields

    def stop_and_expect_stopping(self, proc, ignore=()):
        proc.send_signal(signal.SIGTERM)
        while True:
            m = self.listener.recv()
            self.assertIsNotNone(m, "no STOPPING=1 after SIGTERM")
            pid, fields = m
            self.assertEqual(pid, proc.pid)
            if "STOPPING" in fields:
                break
            self.assertTrue(set(fields) <= set(ignore), f"{fields} before STOPPING=1")
        self.assertEqual(fields["STOPPING"], "1")
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 0)
        # nothing after STOPPING=1: no READY, no WATCHDOG
        m = self.listener.recv(timeout=0.5)
        self.assertIsNone(m, m)


class Readiness(NotifyCase):
    def test_credd_ready_after_health_then_stopping(self):
        d, proc, addr = self.start("credd")
        self.ready_then_health(proc, addr)
        self.stop_and_expect_stopping(proc, ignore=("STATUS",))

    def test_broker_ready_after_health_then_stopping(self):
        d, proc, addr = self.start("broker")
        fields = self.ready_then_health(proc, addr)
        self.assertIn("serving", fields.get("STATUS", ""))
        self.stop_and_expect_stopping(proc, ignore=("STATUS",))


class Watchdog(NotifyCase):
    def test_pings_while_serving(self):
        d, proc, addr = self.start("credd", watchdog_usec=WATCHDOG_USEC)
        self.ready_then_health(proc, addr)
        for _ in range(5):
            fields = self.expect(proc, "WATCHDOG")
            self.assertEqual(fields["WATCHDOG"], "1")
        # a call in between changes nothing
        with grpc.insecure_channel(addr) as ch:
            self.assertEqual(health(ch), health_pb2.HealthCheckResponse.SERVING)
        self.expect(proc, "WATCHDOG")
        self.stop_and_expect_stopping(proc, ignore=("WATCHDOG", "STATUS"))

    def test_no_pings_for_another_pid(self):
        # WATCHDOG_PID names another process: the watchdog is not ours
        d, proc, addr = self.start("credd", watchdog_usec=WATCHDOG_USEC, watchdog_pid=1)
        self.ready_then_health(proc, addr)
        # ten of the periods it would ping at, then the stop: nothing between
        time.sleep(10 * WATCHDOG_USEC / 2e6)
        self.stop_and_expect_stopping(proc)


class StuckManager(NotifyCase):
    def test_a_manager_that_does_not_read_holds_up_no_stop(self):
        # pings every 5 ms into a socket nobody reads: its queue fills and
        # sd_notify blocks; SIGTERM must still stop the daemon, cleanly
        d, proc, addr = self.start("credd", watchdog_usec=10000)
        self.ready_then_health(proc, addr)
        with grpc.insecure_channel(addr) as ch:
            for _ in range(50):  # many periods pass, none read
                self.assertEqual(health(ch), health_pb2.HealthCheckResponse.SERVING)
                time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 0, d.logs())
        with open(os.path.join(d.tmp, "credd.log")) as f:
            self.assertIn("the service manager does not read $NOTIFY_SOCKET", f.read())


if __name__ == "__main__":
    unittest.main()
