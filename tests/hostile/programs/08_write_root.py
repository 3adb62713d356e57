# Creates a file in / (read-only inside). The positive control runs with
# base = a host temp dir holding the same layout, never the real /.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
path = os.path.join(P.get("base", "/") or "/", "", ".airlock-hostile-probe")
try:
    with open(path, "x") as f:
        f.write("x")
except OSError as e:
    print(f"CONTAINED write / ({e.strerror})")
else:
    os.unlink(path)
    print("ESCAPED write /")
