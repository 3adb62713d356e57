# Looks in /proc for host processes: the test's marker process or the daemons.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
needles = [P["marker"].encode(), b"airlock-broker", b"airlock-credd"]
found = []
for e in os.listdir("/proc"):
    if not e.isdigit():
        continue
    try:
        with open(f"/proc/{e}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        continue
    if any(n in cmd for n in needles):
        found.append(e)
print(f"ESCAPED saw host processes {found[:5]}" if found else "CONTAINED no host process visible in /proc")
