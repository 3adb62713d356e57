# Host paths in /proc of the processes a task can see: any other visible
# process whose cmdline names the daemons' install or state directory (e.g.
# the sandbox's pid 1, which is a clone of the host's airlock-worker).
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
needles = [n.encode() for n in (P.get("bin_dir"), P.get("daemon_dir")) if n]
me, found = os.getpid(), []
for e in os.listdir("/proc"):
    if not e.isdigit() or int(e) == me:
        continue
    try:
        with open(f"/proc/{e}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        continue
    if any(n in cmd for n in needles):
        shown = cmd.replace(b"\0", b" ").decode(errors="replace")[:80]
        found.append(f"/proc/{e}/cmdline: {shown}")
print(f"ESCAPED host paths in {found[0]}" if found else "CONTAINED no host paths in visible processes")
