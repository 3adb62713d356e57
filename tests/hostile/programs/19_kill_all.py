# kill(-1, SIGKILL): every process we may signal. The victim is a host process
# of the same host uid as the task (the test checks it from the host too);
# the host control runs as a throw-away uid so that it can only reach its own
# sacrificial victim.
import json, os, signal, sys, time
P = json.loads(sys.stdin.read() or "{}")
victim = P["victim_pid"]
visible = os.path.exists(f"/proc/{victim}")
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
time.sleep(0.3)
gone = not os.path.exists(f"/proc/{victim}")
try:
    with open(f"/proc/{victim}/stat") as f:
        gone = gone or f.read().rsplit(")", 1)[1].split()[0] == "Z"
except OSError:
    pass
if visible and gone:
    print(f"ESCAPED kill -1 killed host process {victim}")
else:
    print(f"CONTAINED kill -1 (victim {'visible' if visible else 'not visible'})")
