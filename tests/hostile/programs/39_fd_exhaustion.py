# Opens 1000 file descriptors (the sandbox's limit is 256).
import os
fds, err = [], None
try:
    for _ in range(1000):
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    err = e.strerror
for fd in fds:
    os.close(fd)
print("ESCAPED opened 1000 fds" if len(fds) == 1000 else f"CONTAINED fds stopped at {len(fds)} ({err})")
