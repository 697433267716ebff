"""dnsd.py LOG READY ADDR PORT NAME=IP... — a tiny authoritative DNS server.

Answers A (and AAAA, when the IP is IPv6) for the NAMEs given, NXDOMAIN for
everything else, over UDP.  NAME=cname:TARGET answers a CNAME to TARGET
and, below it, TARGET's address; NAME=IP+IP+... answers every IP; NAME=delay:SECONDS:IP answers IP that
many seconds late (a resolve a test can act during).  Writes each question it receives to LOG as
"NAME TYPE" (so a test can show that a refused name never reached it) and
creates READY once it listens.  Runs until killed.
"""
import socket
import struct
import sys
import threading


def parse_question(pkt):
    labels, i = [], 12
    while pkt[i]:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", pkt[i + 1:i + 5])
    return ".".join(labels).lower(), qtype, i + 5


def wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def answer(pkt, names):
    ident, flags = struct.unpack("!HH", pkt[:4])
    name, qtype, end = parse_question(pkt)
    question = pkt[12:end]
    ip = names.get(name)
    rrs, owner, count = b"", b"\xc0\x0c", 0
    if ip and ip.startswith("cname:"):
        target = ip[len("cname:"):]
        rrs = owner + struct.pack("!HHIH", 5, 1, 30, len(wire(target))) + wire(target)
        owner, ip, count = wire(target), names.get(target), 1
    if ip is None:
        rcode = 3 if not count else 0
    else:
        rcode = 0
        for one in ip.split("+"):
            fam = socket.AF_INET6 if ":" in one else socket.AF_INET
            want = 28 if fam == socket.AF_INET6 else 1
            if qtype == want:
                data = socket.inet_pton(fam, one)
                rrs += owner + struct.pack("!HHIH", want, 1, 30, len(data)) + data
                count += 1
    hdr = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1,
                      count, 0, 0)
    return name, qtype, hdr + question + rrs


def main():
    log, ready, addr, port = sys.argv[1:5]
    names = dict(a.split("=", 1) for a in sys.argv[5:])
    delays = {}
    for name, ip in names.items():
        if ip.startswith("delay:"):
            _, seconds, names[name] = ip.split(":", 2)
            delays[name] = float(seconds)
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
            if name in delays:
                threading.Timer(delays[name], s.sendto, (reply, peer)).start()
            else:
                s.sendto(reply, peer)


if __name__ == "__main__":
    main()
