#!/usr/bin/python3
"""audit_cost.py - what durable audit costs in task throughput.

Starts credd and the broker twice in one run, on the same disk: once as
shipped (every audit record that gates an action is fsync'ed, group-
committed), once with --audit-no-fsync on both daemons (records still
written, never forced to disk). Each time, CONCURRENCY client threads run
`sh -c true` tasks through grpcio for SECONDS, and the script prints tasks/s
and latency percentiles for both, and the ratio. Asserts nothing.

    usage: bench/audit_cost.py [BUILD_DIR] [SECONDS] [CONCURRENCY]   (as root)
"""
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
CONCURRENCY = int(sys.argv[3]) if len(sys.argv) > 3 else 8
os.environ["AIRLOCK_BIN_DIR"] = os.path.join(BUILD, "bin")
sys.path[:0] = [os.path.join(BUILD, "python"), os.path.join(ROOT, "tests", "integration")]

import grpc  # noqa: E402

from airlock.v1 import broker_pb2  # noqa: E402
from airlock_fixture import Daemons, execute  # noqa: E402


def run(broker_args, credd_args):
    d = Daemons(list(broker_args) + ["--max-tasks", str(CONCURRENCY * 2)], credd_args)
    d.start()
    latencies, errors = [], []
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client():
        with grpc.insecure_channel(d.broker_addr) as ch:
            req = broker_pb2.ExecuteRequest(runtime="sh", code=b"true")
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                _, status, details = execute(ch, req, timeout=30)
                with lock:
                    (latencies if status == grpc.StatusCode.OK else errors).append(
                        time.monotonic() - t0 if status == grpc.StatusCode.OK else details)

    try:
        start = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        records = sum(1 for _ in open(os.path.join(d.tmp, "broker-state", "audit.jsonl"))) + \
            sum(1 for _ in open(os.path.join(d.tmp, "credd-state", "audit.jsonl")))
    finally:
        d.stop()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0] * 99
    return {"tasks": len(latencies), "errors": len(errors), "rate": len(latencies) / elapsed,
            "p50": q[49] * 1000, "p90": q[89] * 1000, "p99": q[98] * 1000, "records": records}


def main():
    print(f"sh -c true, {CONCURRENCY} concurrent clients, {SECONDS:.0f} s each, "
          f"audit on {os.path.realpath('/tmp')}")
    rows = [("durable audit (fsync, group commit)", run([], [])),
            ("audit without fsync", run(["--audit-no-fsync"], ["--audit-no-fsync"]))]
    print(f"{'':38} {'tasks/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'records':>8}")
    for name, r in rows:
        print(f"{name:38} {r['rate']:8.1f} {r['p50']:8.2f} {r['p90']:8.2f} {r['p99']:8.2f} "
              f"{r['errors']:7d} {r['records']:8d}")
    durable, loose = rows[0][1]["rate"], rows[1][1]["rate"]
    if loose:
        print(f"durable / no-fsync throughput: {durable / loose:.2f}")


if __name__ == "__main__":
    main()
