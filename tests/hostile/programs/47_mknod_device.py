# mknod(2) (allowed by the filter) of a character node for the kernel log
# (1:11, /dev/kmsg) in a writable dir, then read a record through it. Needs
# CAP_MKNOD in the initial namespace and a mount without nodev.
import json, os, stat, sys
P = json.loads(sys.stdin.read() or "{}")
node = os.path.join(P["scratch"], "hostile-kmsg")
try:
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 11))
except OSError as e:
    print(f"CONTAINED mknod device ({e.strerror})")
    raise SystemExit
try:
    fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    data = os.read(fd, 8192)
    os.close(fd)
except OSError as e:
    print(f"CONTAINED mknod worked but the device is unusable ({e.strerror})")
else:
    print(f"ESCAPED read the kernel log through a self-made node ({len(data)} bytes)")
finally:
    os.unlink(node)
