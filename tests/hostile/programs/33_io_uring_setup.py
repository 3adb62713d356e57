# io_uring_setup(4 entries).
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
params = (ctypes.c_uint8 * 120)()
print("TRYING io_uring_setup")
r, e = sc(425, 4, ctypes.byref(params))
print("ESCAPED io_uring_setup" if r >= 0 else f"CONTAINED io_uring_setup ({e})")
