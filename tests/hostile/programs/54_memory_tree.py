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
# A child the OOM killer ends never reports: wait for the rest, not forever.
import select
os.close(ready_w)
ok, deadline = 0, time.monotonic() + 6
for _ in kids:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([ready_r], [], [], left)[0]:
        break
    ok += os.read(ready_r, 1) == b"1"
os.close(go_w)
for pid in kids:
    os.waitpid(pid, 0)
print(f"ESCAPED task tree held {ok * 400} MiB at once" if ok * 400 >= 1536
      else f"CONTAINED task tree held only {ok * 400} MiB")
