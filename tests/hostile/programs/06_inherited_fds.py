# Any file descriptor open beyond 0, 1, 2 was inherited from outside.
import os
extra = []
for fd in range(3, 4096):
    try:
        os.fstat(fd)
        extra.append(fd)
    except OSError:
        pass
print(f"ESCAPED inherited fds {extra[:10]}" if extra else "CONTAINED only fds 0-2 open")
