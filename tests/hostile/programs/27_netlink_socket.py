# AF_NETLINK route socket (kernel configuration interface, big attack surface).
import socket
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.bind((0, 0))
except OSError as e:
    print(f"CONTAINED netlink socket ({e.strerror})")
else:
    print("ESCAPED netlink socket")
