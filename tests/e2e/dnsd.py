"""dnsd.py LOG READY ADDR PORT NAME=IP... — a tiny authoritative DNS server.

Answers A (and AAAA, when the IP is IPv6) for the NAMEs given, NXDOMAIN for
everything else, over UDP.  Writes each question it receives to LOG as
"NAME TYPE" (so a test can show that a refused name never reached it) and
creates READY once it listens.  Runs until killed.
"""
import socket
import struct
import sys


def parse_question(pkt):
    labels, i = [], 12
    while pkt[i]:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", pkt[i + 1:i + 5])
    return ".".join(labels).lower(), qtype, i + 5


def answer(pkt, names):
    ident, flags = struct.unpack("!HH", pkt[:4])
    name, qtype, end = parse_question(pkt)
    question = pkt[12:end]
    ip = names.get(name)
    rrs = b""
    if ip is None:
        rcode = 3
    else:
        rcode = 0
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        want = 28 if fam == socket.AF_INET6 else 1
        if qtype == want:
            data = socket.inet_pton(fam, ip)
            rrs = b"\xc0\x0c" + struct.pack("!HHIH", want, 1, 30, len(data)) + data
    hdr = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1,
                      1 if rrs else 0, 0, 0)
    return name, qtype, hdr + question + rrs


def main():
    log, ready, addr, port = sys.argv[1:5]
    names = dict(a.split("=", 1) for a in sys.argv[5:])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    open(ready, "w").close()
    with open(log, "a", buffering=1) as out:
        while True:
            pkt, peer = s.recvfrom(4096)
            try:
                name, qtype, reply = answer(pkt, names)
            except (IndexError, struct.error):
                continue
            out.write(f"{name} {qtype}\n")
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
