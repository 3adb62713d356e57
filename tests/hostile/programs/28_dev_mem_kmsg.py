# Raw kernel/host devices: /dev/mem, /dev/kmem, /dev/port, /dev/kmsg, disks.
import os
opened = []
for dev in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/nvme0n1"):
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        opened.append(dev)
    except OSError:
        pass
print(f"ESCAPED opened {opened}" if opened else "CONTAINED no host devices")
