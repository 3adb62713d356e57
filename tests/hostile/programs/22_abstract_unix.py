# Connects to an abstract Unix socket the test listens on (abstract names are
# per network namespace).
import json, socket, sys
P = json.loads(sys.stdin.read() or "{}")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect("\0" + P["abstract_name"])
    data = s.recv(64)
except OSError as e:
    print(f"CONTAINED abstract unix socket ({e})")
else:
    print("ESCAPED abstract unix socket" if b"AIRLOCK-BAIT" in data else f"CONTAINED unexpected {data!r}")
