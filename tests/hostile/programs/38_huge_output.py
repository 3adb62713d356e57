# Writes 16 MiB to stdout; the broker's output cap is 8 MiB (OUTPUT_LIMIT).
import sys
chunk = b"A" * 65535 + b"\n"
for _ in range(256):
    sys.stdout.buffer.write(chunk)
sys.stdout.buffer.flush()
print("ESCAPED wrote 16 MiB of output")
