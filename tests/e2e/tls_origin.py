"""tls_origin.py CERTDIR READY SPEC... — TLS and HTTP origins for the proxy tests.

SPEC is KIND,ADDR,PORT[,NAME]:
  https  TLS with CERTDIR/NAME.pem (key in NAME.key); answers every HTTP
         request with "origin ADDR NAME" (keep-alive unless Connection: close)
  http   plain HTTP; answers "origin ADDR host=<Host>" (keep-alive), and
         a GET /upgrade with an Upgrade field with 101, then echoes bytes
         (GET /upgrade-big: the 101 carries 10 KB of Set-Cookie fields);
         after a GET /linger, stays 10 s before it closes at the peer's EOF;
         a GET /big is answered with 16 MB
  bulk   TLS; after the first request, streams zeros until the peer goes
  pg     Postgres: answers an SSLRequest with 'S', then as https
  sink   TCP with a 1 KB receive buffer and 536-byte segments; never
         reads what it is sent
  pgsink as sink, once it has answered an SSLRequest with 'S'
Creates READY once every socket listens; runs until killed.
"""
import socket
import ssl
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def read_head(conn, data):
    """The next request head (bodies are not read), and what came after it."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def echo(conn, data):
    """What the peer sends back to it, from `data` on, until it closes."""
    while data:
        conn.sendall(data)
        data = conn.recv(4096)


def respond(conn, body):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))


def serve_http(conn, kind, addr, name):
    rest, linger = b"", 0
    while True:
        head, rest = read_head(conn, rest)
        if head is None:
            time.sleep(linger)
            return
        if kind == "bulk":
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
            zeros = bytes(65536)
            while True:
                conn.sendall(zeros)
        if kind == "http":
            lines = head.split("\r\n")
            host = ""
            for line in lines[1:]:
                if line.lower().startswith("host:"):
                    host = line[5:].strip()
            target = lines[0].split(" ")[1] if " " in lines[0] else ""
            if target in ("/upgrade", "/upgrade-big") and "\nupgrade:" in head.lower():
                pad = b"".join(b"Set-Cookie: c%d=%s\r\n" % (i, b"x" * 200)
                               for i in range(50 if target == "/upgrade-big" else 0))
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + pad +
                             b"Upgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                echo(conn, rest or conn.recv(4096))
                return
            if lines[0].startswith("GET /linger "):
                linger = 10
            if lines[0].startswith("GET /big "):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                             % (16 << 20))
                conn.sendall(bytes(16 << 20))
                continue
            respond(conn, f"origin {addr} host={host}\n".encode())
        else:
            respond(conn, f"origin {addr} {name}\n".encode())
        if "connection: close" in head.lower():
            return


def serve_conn(conn, kind, addr, name, ctx):
    try:
        if kind == "sink":
            threading.Event().wait()
        if kind in ("pg", "pgsink"):
            req = b""
            while len(req) < 8:
                chunk = conn.recv(8 - len(req))
                if not chunk:
                    return
                req += chunk
            if req != b"\x00\x00\x00\x08\x04\xd2\x16\x2f":
                return
            conn.sendall(b"S")
            if kind == "pgsink":
                threading.Event().wait()
        if ctx:
            conn = ctx.wrap_socket(conn, server_side=True)
        serve_http(conn, kind, addr, name)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def serve(s, kind, addr, name, ctx):
    s.listen(128)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_conn, args=(conn, kind, addr, name, ctx),
                         daemon=True).start()


def main():
    certdir, ready = sys.argv[1:3]
    threads = []
    for spec in sys.argv[3:]:
        kind, addr, port, *rest = spec.split(",")
        name = rest[0] if rest else ""
        ctx = None
        if kind not in ("http", "sink", "pgsink"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(f"{certdir}/{name}.pem", f"{certdir}/{name}.key")
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if kind in ("sink", "pgsink"):
            # small segments keep the sender's buffer small too (on
            # loopback it would be sized for 64 KB ones)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.bind((addr, int(port)))
        threads.append(threading.Thread(target=serve, args=(s, kind, addr, name, ctx),
                                        daemon=True))
    for t in threads:
        t.start()
    open(ready, "w").close()
    threading.Event().wait()


if __name__ == "__main__":
    main()
