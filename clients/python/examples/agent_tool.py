#!/usr/bin/env python3
"""A minimal agent loop that uses Airlock as its code-execution tool.

The "model" here is a stub: a scripted policy that proposes Python code, reads
what the tool reports back (reason, exit code, stdout, stderr) and either
fixes its code or answers. A real agent would put an LLM call in
StubModel.next_action; the tool side stays the same: every snippet runs in a
fresh sandbox with its own short-lived token, and a failure is an observation
for the model, not an exception.

    python3 agent_tool.py [--broker unix:/run/airlock/broker.sock]

Exit status 0 when the agent answered, 1 if it gave up, 2 if the broker
refused or could not be reached.
"""
import argparse
import os
import sys

try:
    from airlock_client import Airlock, AirlockError
except ImportError:  # run from a checkout without pip install: use ../airlock_client
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from airlock_client import Airlock, AirlockError

MAX_STEPS = 4


def run_python_tool(airlock, code):
    """The tool the model calls: runs code, returns (ok, observation text)."""
    r = airlock.run(code, runtime="python3", timeout_ms=5000)
    obs = (f"reason: {r.reason}\nexit_code: {r.exit_code}\n"
           f"stdout:\n{r.stdout.decode(errors='replace')}"
           f"stderr:\n{r.stderr.decode(errors='replace')}")
    return r.ok, r.stdout.decode(errors="replace"), obs


class StubModel:
    """Stands in for an LLM. Task: the sum of the squares of 1..100. Its first
    attempt has a bug (an undefined name); it reads the NameError in the
    observation and fixes it."""

    def __init__(self):
        self.transcript = []

    def next_action(self, observation):
        """Returns ("code", source) or ("answer", text)."""
        if observation is None:
            return "code", "total = sum(i * i for i in range(1, 101))\nprint(totl)\n"
        self.transcript.append(observation)
        ok, stdout, text = observation
        if not ok and "NameError" in text:
            return "code", "total = sum(i * i for i in range(1, 101))\nprint(total)\n"
        if ok:
            return "answer", f"The sum of the squares of 1..100 is {stdout.strip()}."
        return "answer", None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", help="broker address (default: $AIRLOCK_BROKER, "
                                     "else unix:/run/airlock/broker.sock)")
    args = ap.parse_args()

    model = StubModel()
    observation = None
    try:
        with Airlock(args.broker) as airlock:
            for step in range(1, MAX_STEPS + 1):
                kind, payload = model.next_action(observation)
                if kind == "answer":
                    if payload is None:
                        print("agent: gave up", file=sys.stderr)
                        return 1
                    print(f"answer: {payload}")
                    return 0
                print(f"--- step {step}: model runs\n{payload}", end="")
                observation = run_python_tool(airlock, payload)
                print(f"--- tool says\n{observation[2]}", end="")
    except AirlockError as e:
        print(f"agent: the broker refused or failed: {e.code}: {e.message}", file=sys.stderr)
        return 2
    print("agent: out of steps", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
