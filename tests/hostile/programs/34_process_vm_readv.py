# process_vm_readv of our own memory.
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
src = ctypes.create_string_buffer(b"secret-bytes", 16)
dst = ctypes.create_string_buffer(16)
liov = iovec(ctypes.cast(dst, ctypes.c_void_p), 16)
riov = iovec(ctypes.cast(src, ctypes.c_void_p), 16)
print("TRYING process_vm_readv")
r, e = sc(310, os.getpid(), ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0)
print("ESCAPED process_vm_readv" if r > 0 else f"CONTAINED process_vm_readv ({e})")
