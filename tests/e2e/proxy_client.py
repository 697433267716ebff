"""proxy_client.py CMD ARGS... — guest-side clients for the proxy tests.

  tls ADDR PORT NAME CA          a TLS GET; prints the origin's answer line
  nosni ADDR PORT                a TLS GET without SNI (domain-less), the
                                 certificate not checked
  frag ADDR PORT NAME CA MODE    the same with the ClientHello sent as
                                 1-byte TCP segments (seg) or re-framed as
                                 1-byte TLS records (rec)
  pg ADDR PORT NAME CA [one]     Postgres SSLRequest, then TLS as above
                                 (one: the hello in the same write as the
                                 SSLRequest, before the 'S' came)
  http2 ADDR PORT HOST1 HOST2 [PAD]
                                 two requests on one connection, the second
                                 with about PAD bytes of extra fields;
                                 prints each status line (or "closed")
  pipe ADDR PORT PATH HOST...    pipelined GETs in one write, PATH for the
                                 first HOST, / for the others; prints each
                                 status line and body, then "ms=N"
  raw ADDR PORT BYTES            BYTES (Python escapes, as in b"...") in
                                 one write; prints each answer as pipe does
  unread ADDR PORT PATH HOST2 MS GET PATH for allowed.test and GET / for
                                 HOST2 in one write, then MS ms of not
                                 reading; prints "bytes=N refusal=yes|no"
                                 for all that came until the close
  upgrade ADDR PORT PATH HOST2   GET PATH with Upgrade and, in the same write,
                                 a GET for HOST2; prints all that comes back
  big ADDR PORT                  a ClientHello record stream over 64 KiB;
                                 prints "closed MS" when the proxy hangs up
  bighello ADDR PORT NAME SIZE [pg]
                                 a ClientHello for NAME padded to about SIZE
                                 bytes (pg: after an SSLRequest answered
                                 'S'); prints "closed MS" when the proxy
                                 hangs up, "open" if it has not in 5 s
  slow ADDR PORT                 one byte of a hello, then silence;
                                 prints "closed MS"
  idle ADDR PORT N               N connections that send nothing; prints
                                 "closed K MS EARLY" once all are closed (K
                                 of N, EARLY of them within 300 ms)
Every line goes to stdout; errors print "error WHAT".
"""
import codecs
import selectors
import socket
import ssl
import struct
import sys
import time


def connect(addr, port):
    s = socket.create_connection((addr, int(port)), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request(name):
    return f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()


def read_answer(read):
    data = b""
    while True:
        chunk = read()
        if not chunk:
            break
        data += chunk
    body = data.split(b"\r\n\r\n", 1)[-1]
    return body.decode(errors="replace").strip()


def read_response(f):
    """The next response's status line, with its X-Firebreak-Reason, and
    its body; None at EOF."""
    line = f.readline().decode().strip()
    if not line:
        return None
    length, reason = 0, ""
    while (h := f.readline().decode().strip()):
        k, v = h.split(":", 1)
        if k.lower() == "content-length":
            length = int(v)
        if k.lower() == "x-firebreak-reason":
            reason = v.strip()
    return line + (f" reason={reason}" if reason else ""), f.read(length)


def print_answers(f):
    """Each response's status line and body until the connection closes."""
    while (answer := read_response(f)):
        print(answer[0], answer[1].decode(errors="replace").strip())


def tls_over(sock, name, ca, send_hello=None):
    """Drive a TLS handshake through memory BIOs so the hello can be sent
    however the caller likes; then one request.  ca None: no SNI, no
    certificate check."""
    if ca is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name if ca else None)
    first = True
    while True:
        try:
            obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        pending = out.read()
        if pending:
            if first and send_hello:
                send_hello(sock, pending)
            else:
                sock.sendall(pending)
            first = False
        if done:
            break
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during handshake")
        inc.write(data)
    obj.write(request(name))
    sock.sendall(out.read())

    def read():
        while True:
            try:
                return obj.read(65536)
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                if not data:
                    return b""
                inc.write(data)
            except ssl.SSLZeroReturnError:
                return b""
            sent = out.read()
            if sent:
                sock.sendall(sent)
    return read_answer(read)


SSLREQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


class AfterS:
    """A socket whose first byte in, the server's answer to an
    SSLRequest sent with the hello, must be 'S' and is dropped."""

    def __init__(self, sock):
        self.sock, self.first = sock, True

    def sendall(self, data):
        self.sock.sendall(data)

    def recv(self, n):
        data = self.sock.recv(n)
        if self.first and data:
            self.first = False
            if data[:1] != b"S":
                raise ConnectionError(f"sslrequest answered {data[:1]!r}")
            data = data[1:] or self.sock.recv(n)
        return data


def one_byte_segments(sock, data):
    for b in data:
        sock.send(bytes([b]))
        time.sleep(0.0002)


def one_byte_records(sock, data):
    # data is one or more records; re-frame every record's body byte by byte
    out = b""
    while data:
        ctype, ver, length = struct.unpack("!BHH", data[:5])
        body, data = data[5:5 + length], data[5 + length:]
        for b in body:
            out += struct.pack("!BHH", ctype, ver, 1) + bytes([b])
    sock.sendall(out)


def padded_hello(name, size):
    """A TLS 1.2 ClientHello for NAME with a padding extension (RFC 7685)
    that brings it to about SIZE bytes, in records of 16000."""
    sni = name.encode()
    exts = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    pad = max(0, size - 60 - len(sni))
    exts += struct.pack("!HH", 21, pad) + bytes(pad)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"".join(struct.pack("!BHH", 22, 0x0301, len(msg[i:i + 16000])) + msg[i:i + 16000]
                    for i in range(0, len(msg), 16000))


def wait_closed(sock, start):
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    return int((time.monotonic() - start) * 1000)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        if cmd == "tls":
            addr, port, name, ca = args
            print(tls_over(connect(addr, port), name, ca))
        elif cmd == "nosni":
            addr, port = args
            print(tls_over(connect(addr, port), "nosni.test", None))
        elif cmd == "frag":
            addr, port, name, ca, mode = args
            how = one_byte_segments if mode == "seg" else one_byte_records
            print(tls_over(connect(addr, port), name, ca, how))
        elif cmd == "pg":
            addr, port, name, ca, *one = args
            s = connect(addr, port)
            if one:
                print(tls_over(AfterS(s), name, ca,
                               lambda sock, hello: sock.sendall(SSLREQUEST + hello)))
                return
            s.sendall(SSLREQUEST)
            answer = s.recv(1)
            if answer != b"S":
                print(f"error sslrequest answered {answer!r}")
                return
            print(tls_over(s, name, ca))
        elif cmd == "http2":
            addr, port, h1, h2, *pad = args
            fields = "".join(f"X-Pad-{i:02}: {'a' * 487}\r\n"
                             for i in range(int(pad[0]) // 500 if pad else 0))
            s = connect(addr, port)
            f = s.makefile("rb")
            for host, extra in ((h1, ""), (h2, fields)):
                s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
                answer = read_response(f)
                if not answer:
                    print("closed")
                    return
                print(answer[0])
        elif cmd == "pipe":
            # GET PATH for HOST1, then GET / for each other HOST, all in
            # one write; every answer until the connection closes, and
            # how long that took
            addr, port, path, *hosts = args
            start = time.monotonic()
            s = connect(addr, port)
            f = s.makefile("rb")
            s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: {h}\r\n\r\n".encode()
                               for p, h in zip([path] + ["/"] * len(hosts), hosts)))
            print_answers(f)
            print(f"ms={int((time.monotonic() - start) * 1000)}")
        elif cmd == "raw":
            addr, port, data = args
            s = connect(addr, port)
            s.sendall(codecs.escape_decode(data.encode())[0])
            print_answers(s.makefile("rb"))
        elif cmd == "unread":
            addr, port, path, host2, ms = args
            s = connect(addr, port)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                      f"GET / HTTP/1.1\r\nHost: {host2}\r\n\r\n".encode())
            time.sleep(int(ms) / 1000)
            got = b""
            try:
                while (chunk := s.recv(65536)):
                    got += chunk
            except ConnectionResetError:
                pass
            print(f"bytes={len(got)} refusal={'yes' if b'403 Forbidden' in got else 'no'}")
        elif cmd == "upgrade":
            # an Upgrade request (for HOST1, allowed.test unless given)
            # and, in the same write, a request for HOST2: all the
            # answer, until the proxy or origin closes
            addr, port, path, host2, *host1 = args
            host1 = host1[0] if host1 else "allowed.test"
            s = connect(addr, port)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host1}\r\n"
                      f"Upgrade: echo\r\nConnection: Upgrade\r\n\r\n"
                      f"GET / HTTP/1.1\r\nHost: {host2}\r\n\r\n".encode())
            s.settimeout(2)
            got = b""
            try:
                while (chunk := s.recv(4096)):
                    got += chunk
            except socket.timeout:
                pass
            print(got.decode("latin-1").replace("\r\n", "|"))
        elif cmd == "big":
            addr, port = args
            s = connect(addr, port)
            start = time.monotonic()
            # a handshake header announcing a 100 KiB ClientHello, then
            # records carrying it: never complete below 64 KiB
            body = b"\x01" + (100000).to_bytes(3, "big") + b"\x03\x03" + bytes(16000)
            recs = struct.pack("!BHH", 22, 0x0301, len(body)) + body
            for _ in range(5):
                recs += struct.pack("!BHH", 22, 0x0301, 16000) + bytes(16000)
            try:
                s.sendall(recs)
            except OSError:
                pass
            print(f"closed {wait_closed(s, start)}")
        elif cmd == "bighello":
            addr, port, name, size, *pg = args
            s = connect(addr, port)
            start = time.monotonic()
            if pg:
                s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
                if s.recv(1) != b"S":
                    print("error no S")
                    return
            s.sendall(padded_hello(name, int(size)))
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
                print(f"closed {int((time.monotonic() - start) * 1000)}")
            except socket.timeout:
                print("open")
            except OSError:
                print(f"closed {int((time.monotonic() - start) * 1000)}")
        elif cmd == "slow":
            addr, port = args
            s = connect(addr, port)
            start = time.monotonic()
            s.send(b"\x16")
            print(f"closed {wait_closed(s, start)}")
        elif cmd == "idle":
            addr, port, n = args
            socks = [connect(addr, port) for _ in range(int(n))]
            start = time.monotonic()
            sel = selectors.DefaultSelector()
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            closed = early = 0
            while closed < len(socks) and time.monotonic() - start < 30:
                for key, _ in sel.select(timeout=1):
                    try:
                        if key.fileobj.recv(4096):
                            continue
                    except OSError:
                        pass
                    sel.unregister(key.fileobj)
                    closed += 1
                    early += time.monotonic() - start < 0.3
            print(f"closed {closed} {int((time.monotonic() - start) * 1000)} {early}")
        else:
            print(f"error unknown command {cmd}")
    except (OSError, ssl.SSLError, ConnectionError) as e:
        print(f"error {e}")


if __name__ == "__main__":
    main()
