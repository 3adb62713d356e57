# Double fork + setsid: a grandchild that tries to outlive the task, with a
# marker in its command line. The test looks for it from the host afterwards.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        os.execv("/usr/bin/python3", ["python3", "-c", "import time; time.sleep(60)", P["marker"] + "-daemon"])
    os._exit(0)
os.wait()
print("SPAWNED daemon")
