# bpf(BPF_MAP_CREATE) of a tiny array map.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
attr = (ctypes.c_uint32 * 32)(2, 4, 8, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 8, 1 entry
print("TRYING bpf")
r, e = sc(321, 0, ctypes.byref(attr), ctypes.sizeof(attr))
print("ESCAPED bpf map created" if r >= 0 else f"CONTAINED bpf ({e})")
