# sethostname(2) to the current name (a no-op on the host, which still proves
# the call is permitted).
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
name = socket.gethostname().encode()
print("TRYING sethostname")
r = libc.sethostname(name, len(name))
print("ESCAPED sethostname" if r == 0 else f"CONTAINED sethostname ({errno.errorcode.get(ctypes.get_errno())})")
