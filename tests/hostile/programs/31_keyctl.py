# keyctl(KEYCTL_GET_KEYRING_ID, session keyring, create): kernel keyrings are not namespaced.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
print("TRYING keyctl")
r, e = sc(250, 0, -3, 1)
print(f"ESCAPED keyctl keyring {r}" if r >= 0 else f"CONTAINED keyctl ({e})")
