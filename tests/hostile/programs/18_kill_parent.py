# SIGKILL to our parent (inside: the sandbox's init, pid 1 of its namespace,
# which ignores signals from inside; the host control's parent is a
# sacrificial shell the test started).
import os, signal, time
ppid = os.getppid()
try:
    os.kill(ppid, signal.SIGKILL)
except OSError as e:
    print(f"CONTAINED kill parent {ppid} ({e.strerror})")
    raise SystemExit
for _ in range(50):
    if not os.path.exists(f"/proc/{ppid}") or os.getppid() != ppid:
        print(f"ESCAPED killed parent {ppid}")
        raise SystemExit
    with open(f"/proc/{ppid}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
            print(f"ESCAPED killed parent {ppid}")
            raise SystemExit
    time.sleep(0.02)
print(f"CONTAINED kill parent {ppid} (still alive)")
