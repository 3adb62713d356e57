# Any capability in any set of /proc/self/status.
caps = {}
with open("/proc/self/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            caps[k] = int(v, 16)
held = {k: hex(v) for k, v in caps.items() if v}
print(f"ESCAPED holds capabilities {held}" if held else "CONTAINED no capabilities")
