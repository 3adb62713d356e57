# DNS: a query to the host's nameservers and to a stub resolver the test runs
# on the host's loopback; any answer is an escape.
import json, os, socket, sys
P = json.loads(sys.stdin.read() or "{}")
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
servers = [(ns, 53) for ns in P.get("nameservers", [])] + [("127.0.0.1", P["dns_port"])]
answered = []
for addr in servers:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.7)
    try:
        s.sendto(q, addr)
        if s.recv(512)[:2] == b"\x12\x34":
            answered.append(addr[0])
    except OSError:
        pass
if not answered:  # the resolver library's own path (resolv.conf or its default)
    try:
        socket.getaddrinfo("example.com", 80)
        answered.append("getaddrinfo")
    except OSError:
        pass
print(f"ESCAPED dns answered by {answered}" if answered else "CONTAINED no dns")
