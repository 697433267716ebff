"""close_client.py HOST ADDR CAFILE PATH [ws] — a slow guest reading a
response that ends where the connection closes.

One GET PATH (with a WebSocket handshake when "ws" follows) on a TLS
connection to a brokered HOST at ADDR:443, trusting CAFILE.  The guest
keeps its receive buffer small, waits PAUSE seconds after the head, then
reads the rest in PIECE-byte reads with a short sleep after each, so the
proxy's buffers toward it are full when the origin's close reaches the
proxy.  Prints one line:

  STATUS LENGTH SHA256 HALF_AT END

LENGTH and SHA256 of everything after the head; HALF_AT the time.time() at
which half of EXPECT bytes had been read; END "eof" for a TLS close_notify,
else "error:<exception>".
"""
import hashlib
import socket
import ssl
import sys
import time

PAUSE = 0.3
PIECE = 8192
NAP = 0.0005


def main():
    host, addr, cafile, path = sys.argv[1:5]
    ws = sys.argv[5:] == ["ws"]
    expect = int(path.rsplit("/", 1)[1])
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.settimeout(15)
    raw.connect((addr, 443))
    t = ctx.wrap_socket(raw, server_hostname=host)
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
    if ws:
        req += ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n")
    t.sendall((req + "\r\n").encode())
    got, end = b"", "eof"
    try:
        while b"\r\n\r\n" not in got:
            chunk = t.recv(1024)
            if not chunk:
                break
            got += chunk
    except (OSError, ssl.SSLError) as e:
        end = "error:" + type(e).__name__
    head, _, body = got.partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode() if b" " in head else "none"
    digest = hashlib.sha256(body)
    length, half_at = len(body), 0.0
    time.sleep(PAUSE)
    while end == "eof":
        try:
            chunk = t.recv(PIECE)
        except (OSError, ssl.SSLError) as e:
            end = "error:" + type(e).__name__
            break
        if not chunk:
            break
        digest.update(chunk)
        length += len(chunk)
        if not half_at and length >= expect // 2:
            half_at = time.time()
        time.sleep(NAP)
    print(status, length, digest.hexdigest(), f"{half_at:.6f}", end)


if __name__ == "__main__":
    main()
