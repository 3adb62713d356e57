"""Per-task limits: a request may lower any limit but never raise one above
the broker's cap; Started shows the effective limits; each limit, when hit,
ends the task with its own reason (MEMORY, CPU, DISK, OUTPUT_LIMIT) or an
error the task sees (pids, open files), and Finished reports usage."""
import time
import unittest

import grpc

from airlock.v1 import broker_pb2
from airlock_fixture import DaemonTestCase, execute

R = broker_pb2.Finished
MiB = 1 << 20


def reason(finished):
    return R.Reason.Name(finished.reason)


class Limits(DaemonTestCase):
    # Caps of our own, so that the tests know them.
    BROKER_ARGS = ("--memory-mb", "256", "--cpu-ms", "20000", "--max-pids", "32",
                   "--disk-mb", "16", "--open-files", "128", "--output-bytes", "100000")

    def call(self, **kw):
        req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true", **kw)
        return execute(self.broker, req)

    def assertRefused(self, field, status_code=grpc.StatusCode.INVALID_ARGUMENT, **kw):
        events, status, details = self.call(**kw)
        self.assertEqual(status, status_code, details)
        self.assertIn(field, details)
        self.assertEqual(events, [], "nothing may run when the request is refused")

    # -- what a request may ask

    def test_defaults_are_the_broker_caps(self):
        started, _, _, finished = self.run_task("sh", "true")
        self.assertEqual(finished.reason, R.OK, finished.message)
        lim = started.limits
        self.assertEqual(lim.memory_bytes, 256 * MiB)
        self.assertEqual(lim.cpu_ms, 20000)
        self.assertEqual(lim.max_pids, 32)
        self.assertEqual(lim.disk_bytes, 16 * MiB)
        self.assertEqual(lim.open_files, 128)
        self.assertEqual(lim.output_bytes, 100000)
        self.assertGreater(lim.timeout_ms, 0)

    def test_lower_limits_are_granted(self):
        lim = broker_pb2.Limits(memory_bytes=64 * MiB, cpu_ms=1500, max_pids=8,
                                disk_bytes=2 * MiB, open_files=40, output_bytes=5000,
                                timeout_ms=4000)
        started, _, _, finished = self.run_task("sh", "true", limits=lim)
        self.assertEqual(finished.reason, R.OK, finished.message)
        self.assertEqual(started.limits, lim)

    def test_above_the_cap_is_denied_never_trimmed(self):
        # The built-in rule grants the broker's caps; more is a policy denial.
        denied = grpc.StatusCode.PERMISSION_DENIED
        self.assertRefused("limits.memory_bytes 269484032 exceeds the grant 268435456", denied,
                           limits=broker_pb2.Limits(memory_bytes=257 * MiB))
        self.assertRefused("limits.cpu_ms", denied, limits=broker_pb2.Limits(cpu_ms=20001))
        self.assertRefused("limits.max_pids", denied, limits=broker_pb2.Limits(max_pids=33))
        self.assertRefused("limits.disk_bytes", denied,
                           limits=broker_pb2.Limits(disk_bytes=17 * MiB))
        self.assertRefused("limits.open_files", denied, limits=broker_pb2.Limits(open_files=129))
        self.assertRefused("limits.output_bytes", denied,
                           limits=broker_pb2.Limits(output_bytes=100001))
        self.assertRefused("limits.timeout_ms", denied,
                           limits=broker_pb2.Limits(timeout_ms=3_600_001))

    def test_too_small_or_contradictory_is_refused(self):
        self.assertRefused("memory_bytes", limits=broker_pb2.Limits(memory_bytes=1 * MiB))
        self.assertRefused("timeout_ms", timeout_ms=1000, limits=broker_pb2.Limits(timeout_ms=2000))
        events, status, details = self.call(timeout_ms=1500,
                                            limits=broker_pb2.Limits(timeout_ms=1500))
        self.assertEqual(status, grpc.StatusCode.OK, details)

    # -- each limit, hit

    def test_output_limit_keeps_what_came_and_says_it_was_cut(self):
        lim = broker_pb2.Limits(output_bytes=1000)
        _, out, err, finished = self.run_task(
            "python3", "import sys\nsys.stdout.write('x' * 5000)\nsys.stdout.flush()\n"
                       "import time; time.sleep(30)", limits=lim)
        self.assertEqual(finished.reason, R.OUTPUT_LIMIT, finished.message)
        self.assertEqual(out, b"x" * 1000)
        self.assertEqual(finished.stdout_bytes, 1000)
        self.assertTrue(finished.output_truncated)
        self.assertLess(finished.wall_ms, 20000)

    def test_byte_counts(self):
        _, out, err, finished = self.run_task("sh", "printf abc; printf 12345 >&2")
        self.assertEqual(finished.reason, R.OK, finished.message)
        self.assertEqual((out, err), (b"abc", b"12345"))
        self.assertEqual((finished.stdout_bytes, finished.stderr_bytes), (3, 5))
        self.assertFalse(finished.output_truncated)

    def test_open_files(self):
        code = ("n = 0\nkeep = []\ntry:\n    while True:\n"
                "        keep.append(open('/dev/null')); n += 1\n"
                "except OSError as e:\n    print(n, e.errno)\n")
        _, out, err, finished = self.run_task("python3", code,
                                              limits=broker_pb2.Limits(open_files=40))
        self.assertEqual(finished.reason, R.OK, err)
        n, errno_ = map(int, out.split())
        self.assertEqual(errno_, 24)  # EMFILE
        self.assertLess(n, 40)
        self.assertGreater(n, 20)

    def test_pids(self):
        code = ("import os, time\nn = 0\ntry:\n    for _ in range(100):\n"
                "        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n"
                "        n += 1\nexcept OSError as e:\n    print(n, e.errno)\n"
                "else:\n    print(n, 0)\n")
        _, out, err, finished = self.run_task("python3", code, timeout_ms=20000,
                                              limits=broker_pb2.Limits(max_pids=8))
        self.assertEqual(finished.reason, R.OK, err)
        n, errno_ = map(int, out.split())
        self.assertEqual(errno_, 11)  # EAGAIN
        self.assertLess(n, 8)

    def test_cpu(self):
        t0 = time.monotonic()
        _, _, _, finished = self.run_task("python3", "while True:\n    pass\n", timeout_ms=20000,
                                          limits=broker_pb2.Limits(cpu_ms=500))
        self.assertEqual(finished.reason, R.CPU, f"{reason(finished)}: {finished.message}")
        self.assertGreaterEqual(finished.cpu_ms, 450)
        self.assertLess(time.monotonic() - t0, 15.0)

    def test_cpu_of_the_whole_tree(self):
        # Four spinning processes: their sum crosses the limit, not any one.
        code = ("import os\nfor _ in range(3):\n    if os.fork() == 0:\n        break\n"
                "while True:\n    pass\n")
        _, _, _, finished = self.run_task("python3", code, timeout_ms=20000,
                                          limits=broker_pb2.Limits(cpu_ms=1200))
        self.assertEqual(finished.reason, R.CPU, f"{reason(finished)}: {finished.message}")
        self.assertLess(finished.wall_ms, 15000)

    def test_disk_file_size(self):
        code = "echo start; head -c 4000000 /dev/zero > /tmp/big"
        _, out, err, finished = self.run_task("sh", code,
                                              limits=broker_pb2.Limits(disk_bytes=1 * MiB))
        self.assertEqual(finished.reason, R.DISK, f"{reason(finished)}: {finished.message} {err!r}")

    def test_disk_full_python(self):
        code = "open('/work/big', 'wb').write(b'x' * 4000000)\n"
        _, out, err, finished = self.run_task("python3", code,
                                              limits=broker_pb2.Limits(disk_bytes=1 * MiB))
        self.assertEqual(finished.reason, R.DISK, f"{reason(finished)}: {finished.message} {err!r}")

    def test_disk_within_the_limit(self):
        code = "open('/work/f', 'wb').write(b'x' * 500000); print('ok')\n"
        _, out, err, finished = self.run_task("python3", code,
                                              limits=broker_pb2.Limits(disk_bytes=1 * MiB))
        self.assertEqual(finished.reason, R.OK, f"{reason(finished)}: {finished.message} {err!r}")

    def test_memory(self):
        code = "b = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
        _, out, err, finished = self.run_task("python3", code,
                                              limits=broker_pb2.Limits(memory_bytes=64 * MiB))
        self.assertEqual(finished.reason, R.MEMORY, f"{reason(finished)}: {finished.message} {err!r}")
        self.assertGreater(finished.max_rss_kb, 32 * 1024)

    def test_memory_of_the_whole_tree(self):
        # Four processes of 24 MiB each: none alone is over 64 MiB.
        code = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        break\n"
                "b = bytearray(24 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
                "time.sleep(5)\n")
        _, out, err, finished = self.run_task("python3", code, timeout_ms=20000,
                                              limits=broker_pb2.Limits(memory_bytes=64 * MiB))
        self.assertEqual(finished.reason, R.MEMORY, f"{reason(finished)}: {finished.message} {err!r}")


if __name__ == "__main__":
    unittest.main()
