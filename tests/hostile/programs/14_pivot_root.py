# pivot_root(2) into a scratch dir. Host control: the dir is not a mount point, so the call fails (EBUSY/EINVAL) but is reachable: no policy refusal, which counts as an escape of the filter.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
d = os.path.join(P["scratch"], "hostile-newroot")
os.makedirs(os.path.join(d, "old"), exist_ok=True)
print("TRYING pivot_root")
r, e = sc(155, d.encode(), os.path.join(d, "old").encode())
if r == 0 or e not in ("EPERM", "ENOSYS", "EACCES"):
    print(f"ESCAPED pivot_root reachable (ret {r}, {e})")
else:
    print(f"CONTAINED pivot_root ({e})")
