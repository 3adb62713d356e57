# perf_event_open of a software cpu-clock counter on ourselves.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
attr = (ctypes.c_uint8 * 128)()
ctypes.memmove(attr, (ctypes.c_uint32 * 2)(1, 128), 8)  # type SOFTWARE, size 128; config 0 = CPU_CLOCK
print("TRYING perf_event_open")
r, e = sc(298, ctypes.byref(attr), 0, -1, -1, 0)
print("ESCAPED perf_event_open" if r >= 0 else f"CONTAINED perf_event_open ({e})")
