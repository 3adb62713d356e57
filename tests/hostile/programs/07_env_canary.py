# The daemons' environment carries a canary secret; it must not reach the task,
# nor may any variable outside the documented set.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
EXPECTED = {"PATH", "HOME", "LANG", "TMPDIR", "USER", "LOGNAME", "PYTHONDONTWRITEBYTECODE",
            "AIRLOCK_TOKEN", "AIRLOCK_TASK_ID", "LC_CTYPE"}
canary = P["canary_value"]
leak = [k for k, v in os.environ.items() if canary in v or canary in k]
with open("/proc/self/environ", "rb") as f:
    if canary.encode() in f.read() and not leak:
        leak.append("/proc/self/environ")
unexpected = sorted(set(os.environ) - EXPECTED)
if leak:
    print(f"ESCAPED host env canary visible in {leak}")
elif unexpected:
    print(f"ESCAPED unexpected host env vars {unexpected[:8]}")
else:
    print("CONTAINED no host environment")
