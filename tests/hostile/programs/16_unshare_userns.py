# unshare(CLONE_NEWUSER|CLONE_NEWNS): a new user namespace would give back a full capability set.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
print("TRYING unshare")
r, e = sc(272, 0x10000000 | 0x00020000)
print("ESCAPED unshare new user+mount namespace" if r == 0 else f"CONTAINED unshare ({e})")
