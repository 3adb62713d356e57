# Reads /etc/shadow (host root can; the sandbox has no such file).
try:
    with open("/etc/shadow") as f:
        data = f.read()
except OSError as e:
    print(f"CONTAINED read /etc/shadow ({e.strerror})")
else:
    print("ESCAPED read /etc/shadow" if "root:" in data else "CONTAINED read /etc/shadow (no root entry)")
