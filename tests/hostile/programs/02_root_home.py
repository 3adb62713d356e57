# Lists /root and /home (host directories that must not exist inside).
import os
seen = []
for d in ("/root", "/home"):
    try:
        os.listdir(d)
        seen.append(d)
    except OSError:
        pass
print(f"ESCAPED listed {' and '.join(seen)}" if seen else "CONTAINED list /root and /home")
