# Symlinks in a writable dir pointing at host paths, directly and via
# /proc/<pid>/root of every visible process.
import json, os, sys
P = json.loads(sys.stdin.read() or "{}")
d = os.path.join(P["scratch"], "hostile-links")
os.makedirs(d, exist_ok=True)
targets = ["/etc/shadow", "/proc/self/root/etc/shadow", "/proc/1/root/etc/shadow",
           "/proc/1/cwd/../etc/shadow"]
targets += [f"/proc/{p}/root/etc/shadow" for p in os.listdir("/proc") if p.isdigit()][:50]
hit = None
for i, t in enumerate(targets):
    link = os.path.join(d, f"l{i}")
    os.symlink(t, link)
    try:
        with open(link) as f:
            if "root:" in f.read():
                hit = t
    except OSError:
        pass
    os.unlink(link)
    if hit:
        break
os.rmdir(d)
print(f"ESCAPED read /etc/shadow through symlink to {hit}" if hit else "CONTAINED symlinks to host paths lead nowhere")
