"""close_origin.py READY LOG CERT KEY ADDR,PORT — a TLS origin whose responses
end where it closes the connection.

One request per connection; the target names the framing and the size:
  GET /h10/N   "HTTP/1.0 200", no Content-Length, N bytes, close
  GET /h11/N   "HTTP/1.1 200", neither Content-Length nor chunked, N bytes,
               close
  GET /ws/N    with Upgrade: websocket: 101, then N bytes, close
  ANY /cut/N   "HTTP/1.1 200" with Content-Length 2N, N bytes, close: an
               answer cut short (any request body left unread)
The N bytes are random.  The head and the body leave in one sendall and the
close (a TCP FIN, no close_notify) follows at once, so the FIN reaches the
proxy while whatever the socket buffers could not take is still on its
way.  Once closed, one JSON line in LOG: {"path", "head", "n", "sha256",
"closed_at"} (head: the head's length; closed_at: time.time()).
Creates READY once listening.  Runs until killed.
"""
import base64
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time

LOCK = threading.Lock()
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def response_head(kind, headers):
    if kind == "h10":
        return b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    if kind == "h11":
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    if kind == "ws" and headers.get("upgrade", "").lower() == "websocket":
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                b"\r\n\r\n")
    return None


def serve(conn, ctx, log):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        lines = read_head(tls).split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        _, kind, n = path.split("/")
        n = int(n)
        head = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * n)
                if kind == "cut" else response_head(kind, headers))
        if head is None:
            tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n")
            return
        body = os.urandom(n)
        tls.sendall(head + body)
        tls.close()
        conn.close()
        rec = {"path": path, "head": len(head), "n": n,
               "sha256": hashlib.sha256(body).hexdigest(),
               "closed_at": time.time()}
        with LOCK:
            log.write(json.dumps(rec) + "\n")
            log.flush()
    except (EOFError, OSError, ValueError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    ready, logpath, cert, key, spec = sys.argv[1:6]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    log = open(logpath, "a")
    addr, port = spec.rsplit(",", 1)
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                      socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(16)
    open(ready, "w").close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, ctx, log), daemon=True).start()


if __name__ == "__main__":
    main()
