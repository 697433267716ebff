"""origin.py READY SPEC... — origin servers for the end-to-end tests.

SPEC is tcp,ADDR,PORT,MODE (MODE hello: send "hello ADDR" and close;
echo: echo until the peer closes) or udp,ADDR,PORT (echo each datagram).
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
