# /proc/self/mountinfo must show only the sandbox's own mounts. ESCAPED if a
# mount point lies outside the sandbox's set (e.g. /sys, /run, /home, host
# /tmp/...) or any line names the daemons' directory, /run/airlock or
# /var/lib/airlock.
import json, sys
P = json.loads(sys.stdin.read() or "{}")
ALLOWED = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
           "/etc/ld.so.cache", "/proc", "/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
           "/proc/bus", "/dev", "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
           "/dev/urandom", "/dev/shm", "/tmp", "/work")
bait = [b for b in (P.get("daemon_dir"), "/run/airlock", "/var/lib/airlock") if b]
bad = []
with open("/proc/self/mountinfo") as f:
    for line in f:
        mnt = line.split()[4]
        if mnt not in ALLOWED or any(b in line for b in bait):
            bad.append(mnt)
print(f"ESCAPED mountinfo reveals {bad[:5]}" if bad else "CONTAINED mountinfo shows only sandbox mounts")
