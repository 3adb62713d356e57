# ptrace(PTRACE_ATTACH) of a child of our own (seccomp kills ptrace inside).
import ctypes, errno, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
import signal, time
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
try:
    print("TRYING ptrace")
    r, e = sc(101, 16, pid, 0, 0)  # PTRACE_ATTACH
    if r == 0:
        os.waitpid(pid, 0)
        sc(101, 17, pid, 0, 0)  # PTRACE_DETACH
        print("ESCAPED ptrace attach")
    else:
        print(f"CONTAINED ptrace ({e})")
finally:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
