"""origin.py READY SPEC... — origin servers for the end-to-end tests.

SPEC is tcp,ADDR,PORT,MODE (MODE hello: send "hello ADDR" and close;
echo: echo until the peer closes; bare101: answer the first request head
with a 101 that has no Upgrade field, as nginx's "return 101" does, then
echo) or udp,ADDR,PORT (echo each datagram).
Creates the file READY once every socket listens; runs until killed.
"""
import socket
import sys
import threading


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def bind(kind, addr, port):
    s = socket.socket(family(addr), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s


def serve_conn(conn, addr, mode):
    with conn:
        try:
            if mode == "hello":
                conn.sendall(f"hello {addr}\n".encode())
                return
            if mode == "bare101":
                data = b""
                while b"\r\n\r\n" not in data and (more := conn.recv(4096)):
                    data += more
                conn.sendall(b"HTTP/1.1 101 \r\nContent-Length: 0\r\n"
                             b"Connection: upgrade\r\n\r\n")
                conn.sendall(data.split(b"\r\n\r\n", 1)[-1])
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass


def serve_tcp(s, addr, mode):
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_conn, args=(conn, addr, mode),
                         daemon=True).start()


def serve_udp(s):
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def main():
    threads = []
    for spec in sys.argv[2:]:
        kind, addr, port, *mode = spec.split(",")
        if kind == "tcp":
            s = bind(socket.SOCK_STREAM, addr, int(port))
            threads.append(threading.Thread(target=serve_tcp,
                                            args=(s, addr, mode[0])))
        else:
            s = bind(socket.SOCK_DGRAM, addr, int(port))
            threads.append(threading.Thread(target=serve_udp, args=(s,)))
    for t in threads:
        t.daemon = True
        t.start()
    open(sys.argv[1], "w").close()
    threading.Event().wait()


main()
