"""broker_client.py HOST ADDR CAFILE STEP... — one keep-alive TLS connection
to a brokered HOST at ADDR:443, trusting CAFILE; prints one line per step.

  get=PATH     a GET on the connection: "get PATH STATUS X-API-KEY-THE-ORIGIN-SAW"
               (or "get PATH closed")
  partial      half a request head, then wait for the answer: "partial STATUS"
  wait=FILE    touch FILE.ready, then wait (up to 10 s) for FILE to exist
  raw=HEX      the HEX-encoded bytes as they are: "raw STATUS
               X-API-KEY-THE-ORIGIN-SAW" (or "raw closed")
"""
import json
import os
import socket
import ssl
import sys
import time


def read_response(t):
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = t.recv(65536)
        if not chunk:
            return None, b""
        got += chunk
    head, body = got.split(b"\r\n\r\n", 1)
    status = head.split(b" ")[1].decode()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, v = line.split(b":", 1)
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = t.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def main():
    host, addr, cafile = sys.argv[1:4]
    ctx = ssl.create_default_context(cafile=cafile)
    t = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=5),
                        server_hostname=host)
    for step in sys.argv[4:]:
        mode, _, arg = step.partition("=")
        try:
            if mode == "get":
                t.sendall(f"GET {arg} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                status, body = read_response(t)
                if status is None:
                    print("get", arg, "closed")
                    continue
                seen = [v for k, v in json.loads(body)["headers"]
                        if k.lower() == "x-api-key"] if status == "200" else []
                print("get", arg, status, ",".join(seen) or "-")
            elif mode == "raw":
                t.sendall(bytes.fromhex(arg))
                status, body = read_response(t)
                seen = [v for k, v in json.loads(body)["headers"]
                        if k.lower() == "x-api-key"] if status == "200" else []
                print("raw", status or "closed", ",".join(seen) or "-")
            elif mode == "partial":
                t.sendall(f"GET /slow HTTP/1.1\r\nHost: {host}\r\n".encode())
                status, _ = read_response(t)
                print("partial", status or "closed")
            elif mode == "wait":
                open(arg + ".ready", "w").close()
                for _ in range(200):
                    if os.path.exists(arg):
                        break
                    time.sleep(0.05)
        except (OSError, ssl.SSLError) as e:
            print(mode, arg, "error:" + type(e).__name__)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
