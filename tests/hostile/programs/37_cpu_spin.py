# Spins the CPU for 3 s of wall time; the task's deadline is shorter (TIMEOUT).
import time
end = time.monotonic() + 3
while time.monotonic() < end:
    pass
print("ESCAPED spun the CPU for 3 s")
