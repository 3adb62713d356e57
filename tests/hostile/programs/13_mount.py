# mount(2) of a tmpfs on a scratch dir (seccomp kills it inside; the host control mounts and unmounts in a temp dir).
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
d = os.path.join(P["scratch"], "hostile-mnt")
os.makedirs(d, exist_ok=True)
print("TRYING mount")
r = libc.mount(b"none", d.encode(), b"tmpfs", ctypes.c_ulong(0), None)
if r == 0:
    libc.umount2(d.encode(), 0)
    print("ESCAPED mount tmpfs")
else:
    print(f"CONTAINED mount ({errno.errorcode.get(ctypes.get_errno())})")
