# Writes /proc/sys/kernel/core_pattern (a host-wide setting, the classic
# container escape) with its current value: a no-op on the host that still
# proves the write is possible.
try:
    with open("/proc/sys/kernel/core_pattern") as f:
        cur = f.read()
    with open("/proc/sys/kernel/core_pattern", "w") as f:
        f.write(cur)
except OSError as e:
    print(f"CONTAINED write core_pattern ({e.strerror})")
else:
    print("ESCAPED write /proc/sys/kernel/core_pattern")
