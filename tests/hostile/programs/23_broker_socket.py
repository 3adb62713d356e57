# Connects to the daemons' own Unix sockets (the test's broker and credd, and
# the default /run/airlock ones): a task must not reach the control plane.
import json, socket, sys
P = json.loads(sys.stdin.read() or "{}")
reached = []
for path in P["daemon_sockets"] + ["/run/airlock/broker.sock", "/run/airlock/credd.sock"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        reached.append(path)
    except OSError:
        pass
    finally:
        s.close()
print(f"ESCAPED reached {reached}" if reached else "CONTAINED daemon sockets unreachable")
