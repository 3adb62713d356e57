# Memory of the whole task tree: 4 processes each allocate and touch 400 MiB
# at the same time (1.6 GiB resident together). A per-task memory limit of
# 512 MiB must stop this; a per-process one (RLIMIT_AS) does not.
import os
import time
MIB = 1 << 20
kids, ready_r, ready_w = [], *os.pipe()
go_r, go_w = os.pipe()
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        try:
            b = bytearray(400 * MIB)
            for i in range(0, len(b), 4096):
                b[i] = 1
            os.write(ready_w, b"1")
        except MemoryError:
            os.write(ready_w, b"0")
        os.read(go_r, 1)
        os._exit(0)
    kids.append(pid)
# A child the OOM killer ends never reports: count it when it is reaped. No
# fixed deadline short enough to trip on a loaded machine; the tree held its
# memory at once only if all four reported and none had died by then.
import select
os.close(ready_w)
ok = reported = dead = 0
deadline = time.monotonic() + 120
while reported + dead < len(kids) and time.monotonic() < deadline:
    if select.select([ready_r], [], [], 0.05)[0]:
        reported += 1
        ok += os.read(ready_r, 1) == b"1"
    while dead < len(kids):
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        dead += 1
held_at_once = ok == len(kids) and dead == 0
os.close(go_w)
for _ in range(len(kids) - dead):
    os.wait()
print(f"ESCAPED task tree held {ok * 400} MiB at once" if held_at_once
      else f"CONTAINED task tree held {ok * 400} MiB in reports, {dead} processes killed")
