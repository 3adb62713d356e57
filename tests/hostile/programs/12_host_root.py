# setuid(0) succeeds inside (uid 0 of the user namespace); it means anything
# only if that uid is host root. Maps our uid through /proc/self/uid_map.
import os
try:
    os.setuid(0)
except OSError:
    pass
uid = os.getuid()
host = None
with open("/proc/self/uid_map") as f:
    for line in f:
        inside, outside, count = map(int, line.split())
        if inside <= uid < inside + count:
            host = outside + uid - inside
print("ESCAPED runs as host uid 0" if host == 0 else f"CONTAINED host uid {host}")
