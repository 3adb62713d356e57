# Allocates and touches 1.5 GiB (the sandbox's memory limit is 512 MiB).
try:
    b = bytearray(1536 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
except MemoryError:
    print("CONTAINED could not allocate 1.5 GiB")
else:
    del b
    print("ESCAPED allocated 1.5 GiB")
