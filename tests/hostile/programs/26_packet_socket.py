# AF_PACKET socket (link-layer sniffing/injection).
import socket
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
except OSError as e:
    print(f"CONTAINED packet socket ({e.strerror})")
else:
    print("ESCAPED packet socket")
