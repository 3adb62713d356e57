# Writes 96 MiB into /work in 8 MiB files (below the file-size limit); the tmpfs
# is capped. Host control: base = a host temp dir.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
d = os.path.join(P.get("base", "/") or "/", "work", "hostile-fill")
os.makedirs(d, exist_ok=True)
chunk = b"\0" * (1 << 20)
written, err = 0, None
try:
    for i in range(12):
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            for _ in range(8):
                f.write(chunk)
                written += 1
except OSError as e:
    err = e.strerror
for name in os.listdir(d):
    os.unlink(os.path.join(d, name))
os.rmdir(d)
print("ESCAPED filled 96 MiB of /work" if written == 96 else f"CONTAINED /work full at {written} MiB ({err})")
