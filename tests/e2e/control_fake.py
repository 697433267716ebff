"""control_fake.py SOCKET READY MODE — a sandbox proxy's control socket
gone bad, in the real one's place: it takes one request and answers with
a head, then MODE: drip (one byte a second, for a minute), flood (a
megabyte at a time, for a minute) or inject (a whole answer whose
Content-Type and ETag hide a bare LF and a control byte, then the close).
READY says "listening" once it does."""
import os
import socket
import sys
import time

path, ready, mode = sys.argv[1:4]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
with open(ready, "w") as f:
    f.write("listening\n")
conn, _ = srv.accept()
conn.recv(65536)
if mode == "inject":
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\nSet-Cookie: "
                 b"injected=1\r\nETag: \"1\"\x0bX-Injected: 1\r\n"
                 b"Content-Length: 3\r\n\r\nok\n")
    conn.close()
    sys.exit(0)
conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
end = time.time() + 60
try:
    while time.time() < end:
        if mode == "drip":
            conn.sendall(b"x")
            time.sleep(1)
        else:
            conn.sendall(b"x" * (1 << 20))
except OSError:
    pass
