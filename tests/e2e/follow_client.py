"""follow_client.py SOCKET ID MODE [SECONDS] — follow a sandbox's audit
log through firebreak-vmhost, as a client that does not keep up.  MODE
stall: never read (a paused pipe); slow: 64 KiB each 20 ms for SECONDS;
all: read until the stream has brought SECONDS bytes, then print how
many it got."""
import socket
import sys
import time

path, sid, mode = sys.argv[1:4]
arg = float(sys.argv[4]) if len(sys.argv) > 4 else 0
s = socket.socket(socket.AF_UNIX)
if mode == "stall":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(path)
s.sendall(b"GET /sandboxes/%s/logs?follow=1 HTTP/1.1\r\nHost: x\r\n"
          b"Connection: close\r\n\r\n" % sid.encode())
if mode == "stall":
    time.sleep(3600)
elif mode == "slow":
    end = time.time() + arg
    while time.time() < end:
        s.recv(65536)
        time.sleep(0.02)
else:
    got, head = 0, b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    got = len(head) - head.index(b"\r\n\r\n") - 4
    while got < arg:
        n = len(s.recv(1 << 20))
        if not n:
            break
        got += n
    print(got)
