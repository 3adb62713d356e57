# SIGKILL by host pid, with kill(2) and with pidfd_open + pidfd_send_signal.
# Targets inside: the broker, credd and a host victim of the sandbox's host
# uid. The host control aims only at a sacrificial victim of its own.
import ctypes, json, os, signal, sys, time
P = json.loads(sys.stdin.read() or "{}")
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
hit = []
for pid in P["target_pids"]:
    try:
        os.kill(pid, signal.SIGKILL)
        hit.append(f"kill {pid}")
    except OSError:
        pass
    fd = libc.syscall(ctypes.c_long(434), ctypes.c_long(pid), ctypes.c_long(0))  # pidfd_open
    if fd >= 0 and libc.syscall(ctypes.c_long(424), ctypes.c_long(fd), ctypes.c_long(9),
                                None, ctypes.c_long(0)) == 0:
        hit.append(f"pidfd {pid}")
print(f"ESCAPED signalled host processes: {hit}" if hit else "CONTAINED host pids unreachable")
