"""control_fake.py SOCKET READY MODE — a sandbox proxy's control socket
gone bad, in the real one's place: it takes one request and answers with
a head, then MODE: drip (one byte a second, for a minute) or flood (a
megabyte at a time, for a minute).  READY says "listening" once it does."""
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
