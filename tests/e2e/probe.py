"""probe.py PROBE... — what the guest sees, one line per probe, in order.

  tcp,ADDR,PORT[,SECONDS]  -> open (the origin's "hello" came back) |
                              denied (an HTTP 403 from the sandbox's proxy) |
                              refused | timeout | unreachable | E...
  connect,ADDR,PORT        -> connected (a handshake, by whoever) | refused |
                              timeout | ...
  udp,ADDR,PORT            -> reply | noreply | refused | E...
  stream,ADDR,PORT         -> "streaming", then "cut NS ERR" (NS: the wall
                              clock in ns when the stream broke) or "uncut"
Each line: the probe, the result, and the milliseconds it took.
Probes run in parallel, so a test's dropped probes cost one timeout.
"""
import errno
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def outcome(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
        return "refused"
    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return errno.errorcode.get(e.errno, str(e))


def tcp(addr, port, seconds="1.5"):
    """A connection counts as open only once the origin itself answered:
    a proxy in the way accepts first and decides after the request."""
    with socket.socket(family(addr), socket.SOCK_STREAM) as s:
        s.settimeout(float(seconds))
        try:
            s.connect((addr, int(port)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: probe.invalid\r\n\r\n")
            reply = s.recv(64)
        except OSError as e:
            return outcome(e)
        if reply.startswith(b"hello"):
            return "open"
        if reply.startswith(b"HTTP/1.1 403"):
            return "denied"
        return "refused" if not reply else "other"


def connect(addr, port):
    with socket.socket(family(addr), socket.SOCK_STREAM) as s:
        s.settimeout(1.5)
        try:
            s.connect((addr, int(port)))
            return "connected"
        except OSError as e:
            return outcome(e)


def udp(addr, port):
    with socket.socket(family(addr), socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((addr, int(port)))
            s.send(b"ping")
            s.recv(64)
            return "reply"
        except socket.timeout:
            return "noreply"
        except OSError as e:
            return outcome(e)


def stream(addr, port):
    with socket.socket(family(addr), socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        s.connect((addr, int(port)))
        print("streaming", flush=True)
        end = time.time() + 8
        while time.time() < end:
            try:
                s.sendall(b"x")
                if not s.recv(1):
                    raise ConnectionResetError(errno.ECONNRESET, "closed")
            except OSError as e:
                return f"cut {time.time_ns()} {outcome(e)}"
            time.sleep(0.002)
        return "uncut"


def run(spec, results, i):
    kind, *args = spec.split(",")
    start = time.monotonic()
    try:
        r = {"tcp": tcp, "connect": connect, "udp": udp,
             "stream": stream}[kind](*args)
    except OSError as e:
        r = outcome(e)
    ms = int((time.monotonic() - start) * 1000)
    results[i] = f"{spec} {r} {ms}ms"


def main():
    specs = sys.argv[1:]
    results = [None] * len(specs)
    threads = [threading.Thread(target=run, args=(s, results, i))
               for i, s in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\n".join(results), flush=True)


main()
