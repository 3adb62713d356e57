# Creates a file in /etc (read-only inside). The positive control runs with
# base = a host temp dir holding the same layout, never the real /etc.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
path = os.path.join(P.get("base", "/") or "/", "etc", ".airlock-hostile-probe")
try:
    with open(path, "x") as f:
        f.write("x")
except OSError as e:
    print(f"CONTAINED write /etc ({e.strerror})")
else:
    os.unlink(path)
    print("ESCAPED write /etc")
