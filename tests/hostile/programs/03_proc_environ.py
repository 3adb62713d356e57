# Reads /proc/<pid>/environ of every other visible process (inside: the
# sandbox's init, pid 1, still holds the worker's environment, which carries
# the daemons' canary). ESCAPED if the canary turns up.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
canary = P["canary_value"].encode()
me = os.getpid()
found, denied = [], 0
for e in os.listdir("/proc"):
    if not e.isdigit() or int(e) == me:
        continue
    try:
        with open(f"/proc/{e}/environ", "rb") as f:
            if canary in f.read():
                found.append(int(e))
    except OSError:
        denied += 1
print(f"ESCAPED canary in /proc/{found[0]}/environ" if found else f"CONTAINED no canary in other processes' environ ({denied} denied)")
