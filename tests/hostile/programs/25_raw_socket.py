# Raw ICMP socket (needs CAP_NET_RAW).
import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
except OSError as e:
    print(f"CONTAINED raw socket ({e.strerror})")
else:
    print("ESCAPED raw socket")
