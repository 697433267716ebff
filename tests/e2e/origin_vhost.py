"""origin_vhost.py READY MODE,ADDR,PORT... — plain-HTTP origins that serve
several virtual hosts on one address, the way frameworks do.

Every answer is "vhost=NAME path=PATH", NAME being the host the request
was routed to:
  forwarded  routes by the first of X-Forwarded-Host, X-Host,
             X-Original-Host or Forwarded's host= that is present, else by
             Host (Django's USE_X_FORWARDED_HOST, Express's "trust proxy",
             Rails behind a proxy); reads every body it is sent
  nobody     routes by Host and reads no body of a GET or a HEAD, and none
             of a request it answers 417 (Expect: 100-continue on
             /no-expect): the body's bytes are read as the next request, as
             http.server handlers that never look at a body do
  wsgi       a WSGI application under wsgiref that routes as Django does
             with USE_X_FORWARDED_HOST: by HTTP_X_FORWARDED_HOST, which a
             field spelled X_Forwarded_Host fills as well, else by Host
Creates the file READY once every socket listens; runs until killed.
"""
import http.server
import socketserver
import sys
import threading
import wsgiref.simple_server


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "forwarded"

    def log_message(self, *args):
        pass

    def vhost(self):
        if self.mode == "forwarded":
            for name in ("X-Forwarded-Host", "X-Host", "X-Original-Host"):
                if self.headers.get(name):
                    return self.headers[name].split(",")[0].strip()
            for part in self.headers.get("Forwarded", "").split(";"):
                k, _, v = part.strip().partition("=")
                if k.lower() == "host":
                    return v.strip('"').split(",")[0]
        return self.headers.get("Host", "")

    def answer(self, code=200):
        body = f"vhost={self.vhost()} path={self.path}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_expect_100(self):
        if self.mode == "nobody" and self.path == "/no-expect":
            self.answer(417)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        if self.mode == "forwarded":
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()

    do_HEAD = do_GET

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def wsgi_app(environ, start_response):
    name = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST", "")
    body = f"vhost={name.split(',')[0].strip()} path={environ['PATH_INFO']}\n"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body.encode()]


class QuietWSGIHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    for spec in sys.argv[2:]:
        mode, addr, port = spec.split(",")
        if mode == "wsgi":
            srv = wsgiref.simple_server.make_server(
                addr, int(port), wsgi_app, handler_class=QuietWSGIHandler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            continue
        handler = type("H", (Handler,), {"mode": mode})
        srv = Server((addr, int(port)), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    open(sys.argv[1], "w").close()
    threading.Event().wait()


main()
