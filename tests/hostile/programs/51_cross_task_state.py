# State that outlives a task: run twice; the first run plants a file in /tmp
# and /dev/shm and a System V shared memory segment, the second looks for
# them (and cleans up). Host control: base = a host temp dir.
import ctypes, json, os, sys
P = json.loads(sys.stdin.read() or "{}")
base = P.get("base", "/") or "/"
files = [os.path.join(base, "tmp", "hostile-plant"), os.path.join(base, "dev/shm", "hostile-plant")]
libc = ctypes.CDLL(None, use_errno=True)
key = int(P["marker"][-6:], 16) | 0x41000000
survived = [f for f in files if os.path.exists(f)]
shmid = libc.shmget(key, 4096, 0o600)
if shmid >= 0:
    survived.append(f"sysv shm {key:#x}")
if survived:
    for f in files:
        if os.path.exists(f):
            os.unlink(f)
    if shmid >= 0:
        libc.shmctl(shmid, 0, None)  # IPC_RMID
    print(f"ESCAPED state survived the previous task: {survived}")
else:
    for f in files:
        with open(f, "w") as fh:
            fh.write("planted")
    libc.shmget(key, 4096, 0o1000 | 0o600)  # IPC_CREAT
    print("CONTAINED nothing from a previous task (planted for the next)")
