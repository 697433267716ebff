"""echo_origin.py READY LOG CERT KEY ADDR,PORT... — a TLS origin that answers
every request with the request it received, as JSON.

Each request's method, target, header lines (as sent, in order) and body
become the response body {"method","target","headers":[[name,value]...],
"body","sni"}, and one JSON line in LOG, so a test can count what reached
the origin.  Keep-alive, Content-Length and chunked request bodies.
  GET /chunked       answers with a chunked body
  GET /big?n=N       answers with N bytes of 'x'
  /drop              on a connection that already carried a request, closes
                     it without an answer (an idle close racing a request)
  /half              the same, after half a response head
  /ka                answers with "Connection: keep-alive" and "Keep-Alive"
An HTTP/1.0 request is answered as a server answers one: never chunked
(/chunked's body is delimited by the close), and the connection closed.
  Upgrade: websocket 101, then echoes raw bytes until the client closes
Creates READY once every address listens.  Runs until killed.
"""
import json
import socket
import ssl
import sys
import threading

LOCK = threading.Lock()


def read_line(f):
    line = f.readline(65537)
    if not line.endswith(b"\r\n"):
        raise EOFError
    return line[:-2]


def read_body(f, headers):
    names = {k.lower(): v for k, v in headers}
    if names.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(read_line(f).split(b";")[0], 16)
            if size == 0:
                while read_line(f):
                    pass
                return body
            body += f.read(size)
            read_line(f)
    n = int(names.get("content-length", "0"))
    return f.read(n) if n else b""


def respond(conn, f, log, sni, peer, nth):
    line = read_line(f).decode("latin-1")
    method, target, version = line.split(" ", 2)
    headers = []
    while True:
        h = read_line(f).decode("latin-1")
        if not h:
            break
        name, value = h.split(":", 1)
        headers.append([name, value.strip()])
    body = read_body(f, headers)
    rec = {"method": method, "target": target, "headers": headers,
           "body": body.decode("latin-1"), "sni": sni, "peer": peer,
           "nth": nth, "version": version}
    with LOCK:
        log.write(json.dumps(rec) + "\n")
        log.flush()
    if target in ("/drop", "/half") and nth > 0:
        if target == "/half":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Half: y\r\n")
        raise EOFError
    if any(k.lower() == "upgrade" and v.lower() == "websocket"
           for k, v in headers):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while True:
            data = conn.recv(4096)
            if not data:
                raise EOFError
            conn.sendall(data)
    if target == "/chunked" and version == "HTTP/1.0":
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello world")
        raise EOFError
    if target == "/chunked":
        out = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    else:
        if target.startswith("/big?n="):
            payload = b"x" * int(target[7:])
        else:
            payload = json.dumps(rec).encode()
        extra = (b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                 if target == "/ka" else b"")
        out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
               extra + b"Content-Length: %d\r\n\r\n" % len(payload) +
               payload)
    if method == "HEAD":
        out = out.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    conn.sendall(out)
    if version == "HTTP/1.0":
        raise EOFError


def serve(conn, ctx, log):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        sni = getattr(tls, "fb_sni", None)
        f = tls.makefile("rb")
        peer = "%s:%d" % tls.getpeername()[:2]
        nth = 0
        while True:
            respond(tls, f, log, sni, peer, nth)
            nth += 1
    except (EOFError, OSError, ValueError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    ready, logpath, cert, key = sys.argv[1:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    sni_seen = {}

    def on_sni(sock, name, _ctx):
        sock.fb_sni = name
    ctx.sni_callback = on_sni
    log = open(logpath, "a")
    socks = []
    for spec in sys.argv[5:]:
        addr, port = spec.rsplit(",", 1)
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port)))
        s.listen(64)
        socks.append(s)
    del sni_seen
    open(ready, "w").close()

    def accept_loop(s):
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c, ctx, log),
                             daemon=True).start()
    for s in socks[1:]:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    accept_loop(socks[0])


if __name__ == "__main__":
    main()
