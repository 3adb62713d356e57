"""test_disk - the broker's state directory on a file system of its own
(tests run as root) going bad under the running daemons: a tmpfs filled up
while a task runs (the task, whose records' room was reserved before its
token was minted, finishes and is recorded; the next tasks are refused
before a token is minted, three times in a row; once the filler is gone the
same broker runs tasks again with an intact chain), and an ext4 image the
kernel remounts read-only (refused, UNAVAILABLE naming the chain file).
test_audit's FailClosed covers filling the broker's and credd's stores
between tasks.
"""
import errno
import os
import subprocess
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import Daemons, execute, introspect, split_events

TMPFS_SIZE = "8m"


class TmpfsDaemons(Daemons):
    """Daemons whose `which` state directory is a file system of its own: a
    tmpfs of TMPFS_SIZE, or (fs="ext4") a 32 MiB ext4 image on a loop device
    mounted errors=remount-ro."""

    def __init__(self, which, fs="tmpfs"):
        super().__init__()
        self.which = which
        self.fs = fs
        self.mounted = None

    def _mount(self, state):
        if self.fs == "tmpfs":
            cmd = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", state]
        else:
            image = os.path.join(self.tmp, "state.img")
            with open(image, "wb") as f:
                f.truncate(32 << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
            cmd = ["mount", "-o", "loop,errors=remount-ro", image, state]
        subprocess.run(cmd, check=True, capture_output=True)
        os.chmod(state, 0o700)
        self.mounted = state

    def _state_dir(self, name):
        state = super()._state_dir(name)
        if name == self.which and self.mounted != state:
            self._mount(state)
        return state

    def unmount(self):
        if self.mounted:
            subprocess.run(["umount", self.mounted], capture_output=True)
            self.mounted = None

    def fs_error(self):
        """ext4 only: the kernel records a file system error and, as
        errors=remount-ro says, remounts it read-only under the daemon."""
        dev = os.path.basename(subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", self.mounted], check=True, capture_output=True,
            text=True).stdout.strip())
        with open(f"/sys/fs/ext4/{dev}/trigger_fs_error", "w") as f:
            f.write("airlock test_disk\n")


def fill(directory):
    """Writes directory/filler until the file system is full; returns its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        # the last page's worth too, in smaller bites
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    st = os.statvfs(directory)
    assert st.f_bavail == 0, f"{directory} not full: {st.f_bavail} blocks free"
    return path


def mints(d):
    import json
    with open(os.path.join(d.tmp, "credd-state", "audit.jsonl"), "rb") as f:
        return [r for r in map(json.loads, f) if r.get("kind") == "mint"]


class DiskFull(unittest.TestCase):

    def start(self, which):
        d = TmpfsDaemons(which)
        self.addCleanup(d.unmount)  # runs after d.stop (cleanups run last-in first-out)
        d.start()
        self.addCleanup(d.stop)
        return d

    def execute(self, d, code=b"echo hello", timeout=30):
        with grpc.insecure_channel(d.broker_addr) as ch:
            return execute(ch, broker_pb2.ExecuteRequest(runtime="sh", code=code), timeout=timeout)

    def assert_runs(self, d):
        events, status, details = self.execute(d)
        self.assertEqual(status, grpc.StatusCode.OK, f"{details}\n{d.logs()}")
        _, out, _, finished = split_events(events)
        self.assertEqual(finished.reason, broker_pb2.Finished.OK)
        self.assertEqual(out, b"hello\n")

    def assert_chain_verifies(self, d, which):
        r = d.cli("audit", "verify", "--of", which)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())

    def refused_while_full(self, d, daemon_msg, attempts=20):
        """Executes until one is refused (the last records written while
        full may still fit in space already allocated), checking that every
        attempt either ran completely or was refused with nothing run and no
        token minted; then twice more, refused each time."""
        refusals = 0
        for _ in range(attempts):
            before = len(mints(d))
            events, status, details = self.execute(d, code=b"echo hello")
            if status == grpc.StatusCode.OK:
                self.assertEqual(refusals, 0, "ran after a refusal while still full")
                _, out, _, finished = split_events(events)
                self.assertEqual((finished.reason, out), (broker_pb2.Finished.OK, b"hello\n"))
                continue
            self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
            for part in daemon_msg + ["audit trail unavailable", "No space left on device",
                                      "nothing was run"]:
                self.assertIn(part, details)
            self.assertEqual(events, [], "something was sent: the task started")
            self.assertEqual(len(mints(d)), before, "a token was minted for a refused task")
            refusals += 1
            if refusals == 3:
                return
        self.fail(f"only {refusals} of {attempts} calls were refused on a full disk")

    def test_disk_filling_under_a_running_task_spares_it(self):
        """Its records' space was reserved before its token was minted: it
        finishes, recorded; the next task is refused."""
        d = self.start("broker")
        credd = d.channel("credd")
        with grpc.insecure_channel(d.broker_addr) as ch:
            events = []
            status, details = grpc.StatusCode.OK, ""
            call = ch.unary_stream(
                "/airlock.v1.Broker/Execute",
                request_serializer=broker_pb2.ExecuteRequest.SerializeToString,
                response_deserializer=broker_pb2.ExecuteEvent.FromString)(
                    broker_pb2.ExecuteRequest(runtime="sh", code=b"sleep 1.5; echo out"),
                    timeout=30)
            try:
                for ev in call:
                    events.append(ev)
                    if len(events) == 1:
                        filler = fill(d.mounted)
            except grpc.RpcError as e:
                status, details = e.code(), e.details()
        self.assertEqual(status, grpc.StatusCode.OK, details)
        started, out, _, finished = split_events(events)
        self.assertEqual((finished.reason, out), (broker_pb2.Finished.OK, b"out\n"))
        self.assertTrue(finished.token_revoked)
        self.assertFalse(introspect(credd, token_id=started.token_id).active)
        self.assertEqual([r["reason"] for r in d.broker_audit("execute")
                          if r["task_id"] == started.task_id], ["OK"])
        self.refused_while_full(d, [])
        os.unlink(filler)
        self.assert_runs(d)  # the same process: no restart
        self.assertIsNone(d.broker.poll())
        self.assert_chain_verifies(d, "broker")

    def test_state_dir_read_only_fails_closed(self):
        """A file system the kernel turned read-only under a running broker
        (ext4 errors=remount-ro). A plain `mount -o remount,ro` is refused
        while the chain is open for writing (EBUSY), and the kernel does not
        let this one go back to rw without fsck: no recovery to test here."""
        d = TmpfsDaemons("broker", fs="ext4")
        self.addCleanup(d.unmount)
        d.start()
        self.addCleanup(d.stop)
        self.assert_runs(d)
        before = len(mints(d))
        d.fs_error()
        for _ in range(2):
            events, status, details = self.execute(d)
            self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
            self.assertIn("audit trail unavailable", details)
            self.assertIn("Read-only file system", details)
            self.assertIn(d.mounted, details)  # names the chain file
            self.assertIn("nothing was run", details)
            self.assertEqual(events, [])
        self.assertEqual(len(mints(d)), before, "a token was minted on a read-only state dir")


if __name__ == "__main__":
    unittest.main()
