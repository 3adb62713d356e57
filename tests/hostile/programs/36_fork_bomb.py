# Starts up to 200 processes (each waits on a pipe, then all exit). The
# sandbox's process limit stops it well before.
import os
r, w = os.pipe()
kids, err = [], None
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.strerror
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    kids.append(pid)
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
print("ESCAPED could start 200 processes" if len(kids) == 200 else f"CONTAINED fork stopped at {len(kids)} ({err})")
