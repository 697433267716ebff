"""broker_guest.py MODE ARGS — what a guest does against a brokered name,
run inside the sandbox.  Prints one line per probe: "NAME RESULT".

  urllib URL             GET with urllib (trust from the environment)
  issuer HOST            the issuer CN of the certificate HOST presents
  raw HOST NAME=HEX...   each HEX-encoded request on a new TLS connection;
                         prints the status line of the answer (or "closed")
"""
import binascii
import json
import socket
import ssl
import sys
import urllib.request


def tls(host, verify=True):
    ctx = ssl.create_default_context() if verify else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["http/1.1"])
    s = socket.create_connection((host, 443), timeout=5)
    return ctx.wrap_socket(s, server_hostname=host)


def main():
    mode = sys.argv[1]
    if mode == "urllib":
        req = urllib.request.Request(sys.argv[2], data=b"from-urllib",
                                     headers={"X-Api-Key": "guest-copy"})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = json.loads(r.read())
        print("urllib", r.status, body["body"])
    elif mode == "issuer":
        t = tls(sys.argv[2], verify=False)
        der = t.getpeercert(binary_form=True)
        t.close()
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der)
        cn = cert.issuer.rfc4514_string()
        print("issuer", sys.argv[2], cn.replace(" ", "_"))
    elif mode == "raw":
        host = sys.argv[2]
        for spec in sys.argv[3:]:
            name, hexdata = spec.split("=", 1)
            data = binascii.unhexlify(hexdata)
            try:
                t = tls(host)
                t.sendall(data)
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


if __name__ == "__main__":
    main()
