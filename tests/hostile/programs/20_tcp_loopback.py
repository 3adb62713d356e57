# TCP to a listener the test opened on the host's 127.0.0.1.
import json, socket, sys
P = json.loads(sys.stdin.read() or "{}")
try:
    s = socket.create_connection(("127.0.0.1", P["tcp_port"]), timeout=2)
    data = s.recv(64)
except OSError as e:
    print(f"CONTAINED tcp to host loopback ({e})")
else:
    print("ESCAPED tcp to host loopback" if b"AIRLOCK-BAIT" in data else f"CONTAINED tcp: unexpected peer {data!r}")
