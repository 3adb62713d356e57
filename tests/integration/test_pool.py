"""The warm pool against the real daemons: tasks run in sandboxes built
ahead of them, each sandbox serves exactly one task, and nothing of a task
(files, processes, sockets, shared memory, interpreter state, namespaces)
is there for the next one. A ready worker that dies is replaced."""
import os
import shutil
import signal
import threading
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import (DaemonTestCase, Daemons, EXECUTE, _ppid, bin_path,
                             proc_cmdlines, sandbox_cgroup_dirs)

READY_WAIT_S = 20
POOL_SIZE = 2


def idle_workers(d, runtime):
    """pid -> sandbox id of the workers of this runtime that d's broker runs
    now (not those of any other broker on the machine)."""
    found = {}
    for pid, argv in proc_cmdlines().items():
        if (argv and argv[0] == bin_path("airlock-worker") and runtime in argv
                and _ppid(pid) == d.broker.pid):
            found[pid] = argv[argv.index("--id") + 1]
    return found


class WarmPool(DaemonTestCase):
    BROKER_ARGS = ("--pool", f"sh={POOL_SIZE}", "--pool", f"python3={POOL_SIZE}")

    def run_warm(self, runtime, code, **kw):
        """Runs a task, retrying (up to READY_WAIT_S) until it lands in a
        sandbox that was ready before it came: the pool fills after start."""
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            started, out, err, finished = self.run_task(runtime, code, **kw)
            sb = self.d.sandbox_of(started.task_id)
            self.assertIsNotNone(sb, f"no execute.start for {started.task_id}")
            if sb["warm"] or time.monotonic() > deadline:
                self.assertTrue(sb["warm"], "no task found a warm sandbox\n" + self.d.logs())
                return started, out, err, finished, sb
            time.sleep(0.2)

    def test_every_task_gets_its_own_sandbox(self):
        seen = set()
        for runtime in ("sh", "python3", "sh", "python3", "sh"):
            started, out, _, finished, sb = self.run_warm(
                runtime, "echo $AIRLOCK_TASK_ID" if runtime == "sh" else
                "import os; print(os.environ['AIRLOCK_TASK_ID'])")
            self.assertEqual(out.decode().strip(), started.task_id)
            self.assertNotIn(sb["id"], seen, "a sandbox served two tasks")
            seen.add(sb["id"])
            # The worker that ran it is gone with its sandbox.
            self.assertNotIn(sb["id"], idle_workers(self.d, runtime).values())
            # The execute record says where the time went.
            rec = [r for r in self.d.broker_audit("execute")
                   if r["task_id"] == started.task_id][0]
            self.assertEqual(set(rec["timing"]), {"queue_us", "mint_us", "start_us",
                                                  "handoff_us", "run_us", "revoke_us"})
            self.assertTrue(all(v >= 0 for v in rec["timing"].values()), rec["timing"])
            self.assertGreater(rec["timing"]["run_us"], 0)

    def test_python_runs_as_a_script(self):
        code = ("import sys, __main__\n"
                "print(__name__, sys.argv, __main__.__file__, __file__)\n"
                "def f():\n"
                "    raise ValueError('boom')\n"
                "f()\n")
        _, out, err, finished, _ = self.run_warm("python3", code)
        self.assertEqual(out, b"__main__ ['/work/main.py'] /work/main.py /work/main.py\n")
        self.assertEqual(finished.exit_code, 1)
        # The traceback is the script's alone: no frame of the bootstrap.
        self.assertTrue(err.startswith(b'Traceback (most recent call last):\n'
                                       b'  File "/work/main.py", line 5, in <module>\n'), err)
        self.assertIn(b"ValueError: boom", err)
        self.assertNotIn(b"<string>", err)
        _, _, err, finished, _ = self.run_warm("python3", "x = (\n")
        self.assertEqual(finished.exit_code, 1)
        self.assertIn(b"SyntaxError", err)
        self.assertNotIn(b"<string>", err)
        _, out, _, finished, _ = self.run_warm("python3", "import sys\nprint(sys.stdin.read())\n"
                                               "raise SystemExit(7)", stdin=b"fed")
        self.assertEqual((out, finished.exit_code), (b"fed\n", 7))

    # Task A leaves everything it can behind; task B, in the next warm
    # sandbox of the same runtime, looks for it.
    PLANT = """
import builtins, ctypes, os, socket, subprocess, sys
for d in ("/tmp", "/work", "/dev/shm"):
    open(d + "/left-behind", "w").write("A")
builtins.left_behind = True
sys.modules["left_behind"] = sys
os.environ["LEFT_BEHIND"] = "1"
ctypes.CDLL(None).shmget(0x1eff0b, 4096, 0o1000 | 0o666)
srv = socket.socket(socket.AF_UNIX); srv.bind("\\0left-behind"); srv.listen()
subprocess.Popen(["/bin/sh", "-c", "sleep 60; : left-behind"], start_new_session=True)
print(" ".join(os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "net", "pid", "ipc", "uts")))
"""
    LOOK = """
import builtins, ctypes, os, socket, sys
found = [d for d in ("/tmp", "/work", "/dev/shm") if os.path.exists(d + "/left-behind")]
if hasattr(builtins, "left_behind") or "left_behind" in sys.modules: found.append("module")
if "LEFT_BEHIND" in os.environ: found.append("environ")
if ctypes.CDLL(None).shmget(0x1eff0b, 4096, 0o600) >= 0: found.append("sysv-shm")
try:
    socket.socket(socket.AF_UNIX).connect("\\0left-behind"); found.append("abstract-socket")
except OSError:
    pass
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if b"left-behind" in open(f"/proc/{p}/cmdline", "rb").read(): found.append("process")
        except OSError:
            pass
print("FOUND", found)
print(" ".join(os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "net", "pid", "ipc", "uts")))
"""

    def test_nothing_of_a_task_reaches_the_next(self):
        for _ in range(3):
            _, out_a, err_a, fin_a, sb_a = self.run_warm("python3", self.PLANT)
            self.assertEqual(fin_a.exit_code, 0, err_a)
            _, out_b, err_b, fin_b, sb_b = self.run_warm("python3", self.LOOK)
            self.assertEqual(fin_b.exit_code, 0, err_b)
            self.assertNotEqual(sb_a["id"], sb_b["id"])
            lines = out_b.decode().splitlines()
            self.assertEqual(lines[0], "FOUND []")
            # A reused sandbox would show all five namespaces again. One
            # equal id alone is not sharing: the kernel reuses a freed
            # namespace's inode number (seen: net) once task A's is gone.
            ns_a, ns_b = out_a.decode().split(), lines[1].split()
            self.assertEqual(len(ns_a), 5)
            self.assertNotEqual(ns_a, ns_b, "two tasks ran in the same namespaces")

    def test_sh_task_leaves_nothing_for_the_next(self):
        _, _, err, fin, _ = self.run_warm(
            "sh", "echo A > /tmp/left-behind; echo A > /work/left-behind; "
                  "(sleep 60; : left-behind) & echo planted")
        self.assertEqual(fin.exit_code, 0, err)
        _, out, err, fin, _ = self.run_warm(
            "sh", "ls /tmp /work; grep -l 'left[-]behind' /proc/[0-9]*/cmdline 2>/dev/null | "
                  "grep -v self; echo done")
        self.assertEqual(out, b"/tmp:\n\n/work:\nmain.sh\ndone\n", err)

    def settled_workers(self, runtime, n):
        """The runtime's workers once exactly n are alive (the pool's size:
        a worker that just ran a task may still be exiting)."""
        deadline = time.monotonic() + READY_WAIT_S
        while len(idle_workers(self.d, runtime)) != n and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = idle_workers(self.d, runtime)
        self.assertEqual(len(workers), n, f"{workers}\n{self.d.logs()}")
        return workers

    def test_a_ready_worker_that_dies_is_replaced(self):
        self.run_warm("sh", "true")
        before = self.settled_workers("sh", POOL_SIZE)
        victim = next(iter(before))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + READY_WAIT_S
        while victim in idle_workers(self.d, "sh") and time.monotonic() < deadline:
            time.sleep(0.05)
        after = self.settled_workers("sh", POOL_SIZE)
        self.assertNotIn(victim, after)
        _, out, _, fin, _ = self.run_warm("sh", "echo still")
        self.assertEqual(out, b"still\n")


class Call:
    """A streaming Execute running in the background: events as they come,
    then the final status."""

    def __init__(self, channel, code, runtime="sh", timeout=60):
        req = broker_pb2.ExecuteRequest(runtime=runtime, code=code.encode(), timeout_ms=30_000)
        call = channel.unary_stream(EXECUTE, request_serializer=req.__class__.SerializeToString,
                                    response_deserializer=broker_pb2.ExecuteEvent.FromString)
        self.stream = call(req, timeout=timeout)
        self.events, self.code, self.details = [], None, ""
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self):
        try:
            for ev in self.stream:
                self.events.append(ev)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()

    def started(self):
        return any(ev.WhichOneof("event") == "started" for ev in self.events)

    def wait(self, what, timeout=20):
        deadline = time.monotonic() + timeout
        while not what() and time.monotonic() < deadline:
            time.sleep(0.02)
        return what()

    def done(self, timeout=30):
        self.thread.join(timeout)
        return self.code


class Admission(DaemonTestCase):
    """Two task slots and a queue of two."""
    BROKER_ARGS = ("--max-tasks", "2", "--queue", "2")
    HOLD = "sleep 30"

    def fill_slots(self):
        """Two tasks holding both slots. The previous test's cancelled calls
        may still be winding down in the broker: busy is retried."""
        held = []
        deadline = time.monotonic() + 20
        while len(held) < 2:
            c = Call(self.broker, self.HOLD)
            c.wait(lambda: c.started() or c.code is not None)
            if c.started():
                held.append(c)
            elif c.code != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                self.fail(f"a task never started: {c.code} {c.details}\n{self.d.logs()}")
            else:
                time.sleep(0.1)
        time.sleep(0.2)  # stray waiters of the previous test leave the queue
        return held

    def release(self, calls):
        for c in calls:
            c.stream.cancel()
        for c in calls:
            c.done()

    def test_waiting_callers_run_when_slots_free_in_order(self):
        held = self.fill_slots()
        first = Call(self.broker, "echo first; sleep 30")
        time.sleep(0.2)
        second = Call(self.broker, "echo second")
        time.sleep(0.5)
        self.assertFalse(first.started() or second.started(), "ran past the slot limit")
        # One slot frees: the first in line runs, the second still waits.
        self.release(held[:1])
        self.assertTrue(first.wait(first.started), first.details)
        time.sleep(0.5)
        self.assertFalse(second.started(), "the second in line overtook the first")
        self.release(held[1:])
        self.assertEqual(second.done(), grpc.StatusCode.OK, second.details)
        out = b"".join(ev.stdout for ev in second.events if ev.WhichOneof("event") == "stdout")
        self.assertEqual(out, b"second\n")
        self.release([first])

    def test_beyond_the_queue_is_refused_at_once(self):
        held = self.fill_slots()
        queued = [Call(self.broker, "true") for _ in range(2)]
        time.sleep(0.3)
        t0 = time.monotonic()
        over = Call(self.broker, "echo ran")
        self.assertEqual(over.done(), grpc.StatusCode.RESOURCE_EXHAUSTED, over.details)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("broker busy: 2 tasks running (max_tasks 2) and 2 waiting (queue 2)",
                      over.details)
        self.assertEqual(over.events, [])
        self.release(held + queued)

    def test_a_caller_that_leaves_the_queue_frees_its_place(self):
        held = self.fill_slots()
        queued = [Call(self.broker, "true") for _ in range(2)]
        time.sleep(0.3)
        queued[0].stream.cancel()
        self.assertEqual(queued[0].done(), grpc.StatusCode.CANCELLED)
        time.sleep(0.3)  # the broker notices within its 50 ms poll
        again = Call(self.broker, "echo in line")
        time.sleep(0.5)
        self.assertIsNone(again.code, "the freed place was not given to a new caller")
        self.release(held)
        self.assertEqual(again.done(), grpc.StatusCode.OK, again.details)
        self.assertEqual(queued[1].done(), grpc.StatusCode.OK, queued[1].details)

    def test_deadline_passes_in_the_queue_and_nothing_runs(self):
        held = self.fill_slots()
        mints = len(self.d.broker_audit("execute.start"))
        late = Call(self.broker, "echo ran", timeout=1.0)
        self.assertEqual(late.done(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(late.events, [])
        self.release(held)
        time.sleep(0.3)
        self.assertEqual(len(self.d.broker_audit("execute.start")), mints,
                         "a task that never got a slot was started")

    def test_cancelling_a_running_task_frees_its_slot(self):
        held = self.fill_slots()
        waiting = Call(self.broker, "echo next")
        time.sleep(0.3)
        self.assertFalse(waiting.started())
        self.release(held[:1])
        self.assertEqual(waiting.done(), grpc.StatusCode.OK, waiting.details)
        self.release(held[1:])


class BrokerKilled(unittest.TestCase):
    """A broker killed with SIGKILL: its ready workers' sandboxes die at once
    and their cgroups are removed (the workers' parent-death signal)."""

    def test_ready_sandboxes_leave_nothing(self):
        d = Daemons(["--pool", "sh=2", "--pool", "python3=2"])
        d.start()
        try:
            # All four spawned, each with its sandbox's cgroup made.
            deadline = time.monotonic() + READY_WAIT_S
            while True:
                workers = {**idle_workers(d, "sh"), **idle_workers(d, "python3")}
                made = {sid: sandbox_cgroup_dirs(d.broker.pid, sid) for sid in workers.values()}
                if (len(workers) == 4 and all(made.values())) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(len(workers), 4, d.logs())
            self.assertTrue(all(made.values()), f"sandboxes without a cgroup: {made}")
            dirs = [x for found in made.values() for x in found]
            d.broker.kill()
            d.broker.wait()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                    any(os.path.exists(f"/proc/{pid}") for pid in workers) or
                    any(os.path.isdir(x) for x in dirs)):
                time.sleep(0.1)
            self.assertEqual([pid for pid in workers if os.path.exists(f"/proc/{pid}")], [],
                             "workers outlived their broker")
            self.assertEqual([x for x in dirs if os.path.isdir(x)], [],
                             "cgroups outlived their sandboxes")
        finally:
            d.stop_one("credd")
            d._kill_all()
            shutil.rmtree(d.tmp, ignore_errors=True)


class ColdPath(DaemonTestCase):
    """The pool disabled: every task starts its own worker."""
    BROKER_ARGS = ("--pool", "sh=0", "--pool", "python3=0")

    def test_tasks_run_cold(self):
        self.assertEqual(idle_workers(self.d, "sh"), {})
        for runtime, code, want in (("sh", "echo cold", b"cold\n"),
                                    ("python3", "print('cold')", b"cold\n")):
            started, out, err, finished = self.run_task(runtime, code)
            self.assertEqual(out, want, err)
            sb = self.d.sandbox_of(started.task_id)
            self.assertIsNotNone(sb, f"no execute.start for {started.task_id}")
            self.assertFalse(sb["warm"])
        self.assertEqual(idle_workers(self.d, "sh"), {})
        self.assertEqual(idle_workers(self.d, "python3"), {})


if __name__ == "__main__":
    unittest.main()
