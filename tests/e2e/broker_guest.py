"""broker_guest.py STEP... — what a guest does against brokered names, run
inside the sandbox in one process (interpreter start-up is the slow part).
Prints one line per step.

  urllib=URL             POST with urllib (trust from the environment):
                         "urllib STATUS BODY-THE-ORIGIN-SAW"
  issuer=HOST            "issuer HOST ISSUER" of the certificate HOST shows
  alpn=HOST,PROTO...     a handshake offering only PROTOs: "alpn ok
                         SELECTED" or "alpn refused MESSAGE"
  raw=HOST,NAME,HEX      the HEX-encoded bytes on a new TLS connection:
                         "raw NAME STATUS" (or "closed")
  ws=HOST                a WebSocket handshake, then bytes both ways:
                         "ws STATUS ECHOED"
"""
import binascii
import json
import socket
import ssl
import sys
import urllib.request

from cryptography import x509


def tls(host, verify=True, alpn=("http/1.1",)):
    ctx = ssl.create_default_context() if verify else ssl._create_unverified_context()
    ctx.set_alpn_protocols(list(alpn))
    s = socket.create_connection((host, 443), timeout=5)
    return ctx.wrap_socket(s, server_hostname=host)


def urllib_step(url):
    req = urllib.request.Request(url, data=b"from-urllib",
                                 headers={"X-Api-Key": "guest-copy"})
    with urllib.request.urlopen(req, timeout=5) as r:
        body = json.loads(r.read())
    print("urllib", r.status, body["body"])


def issuer_step(host):
    t = tls(host, verify=False)
    der = t.getpeercert(binary_form=True)
    t.close()
    cn = x509.load_der_x509_certificate(der).issuer.rfc4514_string()
    print("issuer", host, cn.replace(" ", "_"))


def alpn_step(arg):
    host, *protos = arg.split(",")
    try:
        t = tls(host, alpn=protos)
        print("alpn ok", t.selected_alpn_protocol())
        t.close()
    except ssl.SSLError as e:
        print("alpn refused", str(e).replace(" ", "_"))


def raw_step(arg):
    host, name, hexdata = arg.split(",")
    try:
        t = tls(host)
        t.sendall(binascii.unhexlify(hexdata))
        got = b""
        while b"\r\n" not in got:
            chunk = t.recv(4096)
            if not chunk:
                break
            got += chunk
        t.close()
        line = got.split(b"\r\n", 1)[0].decode("latin-1")
        status = line.split(" ")[1] if line else "closed"
    except (OSError, ssl.SSLError) as e:
        status = "error:" + type(e).__name__
    print("raw", name, status)


def ws_step(host):
    t = tls(host)
    t.sendall(b"GET /ws HTTP/1.1\r\nHost: " + host.encode() +
              b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = t.recv(4096)
        if not chunk:
            break
        got += chunk
    status = got.split(b" ", 2)[1].decode() if got else "closed"
    rest = got.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in got else b""
    t.sendall(b"frames-as-bytes")
    while len(rest) < 15:
        chunk = t.recv(4096)
        if not chunk:
            break
        rest += chunk
    t.close()
    print("ws", status, rest.decode("latin-1"))


STEPS = {"urllib": urllib_step, "issuer": issuer_step, "alpn": alpn_step,
         "raw": raw_step, "ws": ws_step}

if __name__ == "__main__":
    for step in sys.argv[1:]:
        mode, arg = step.split("=", 1)
        STEPS[mode](arg)
