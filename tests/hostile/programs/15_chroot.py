# chroot(2) into a scratch dir.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
d = os.path.join(P["scratch"], "hostile-chroot")
os.makedirs(d, exist_ok=True)
print("TRYING chroot")
r, e = sc(161, d.encode())
print("ESCAPED chroot" if r == 0 else f"CONTAINED chroot ({e})")
