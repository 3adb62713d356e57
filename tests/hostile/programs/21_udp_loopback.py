# UDP to a host loopback listener that answers every datagram.
import json, socket, sys
P = json.loads(sys.stdin.read() or "{}")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
try:
    s.sendto(b"hello", ("127.0.0.1", P["udp_port"]))
    data = s.recv(64)
except OSError as e:
    print(f"CONTAINED udp to host loopback ({e})")
else:
    print("ESCAPED udp to host loopback" if b"AIRLOCK-BAIT" in data else f"CONTAINED udp: unexpected {data!r}")
