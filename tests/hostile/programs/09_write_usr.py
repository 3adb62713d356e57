# Creates a file in /usr (read-only inside). The positive control runs with
# base = a host temp dir holding the same layout, never the real /usr.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
path = os.path.join(P.get("base", "/") or "/", "usr", ".airlock-hostile-probe")
try:
    with open(path, "x") as f:
        f.write("x")
except OSError as e:
    print(f"CONTAINED write /usr ({e.strerror})")
else:
    os.unlink(path)
    print("ESCAPED write /usr")
