#!/usr/bin/env python3
"""A lab member: answers GET / with its name and the client address it saw,
serves GET /big (a deterministic file, made on first use) and GET /healthz
(200 "ok", or what --health-file says while it exists), answers
GET /sleep?s=N like GET / but only after N seconds (at most 30; holds a
connection open server-side), echoes UDP, and logs
every request's peer address, one per line ("PEER PATH", "PEER udp", and with
--log-connections "PEER connect" for every accepted TCP connection)."""
import argparse
import http.server
import os
import socket
import socketserver
import threading
import time
import urllib.parse


def make_big(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    block = bytes((i * 7 + 3) % 251 for i in range(1 << 16))
    with open(tmp, "wb") as f:
        written = 0
        n = 0
        while written < size:
            chunk = bytes([n % 256]) + block[1:]
            chunk = chunk[: size - written]
            f.write(chunk)
            written += len(chunk)
            n += 1
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, action="append",
                    help="listen on this TCP and UDP port (repeatable; default 8080)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--big", required=True)
    ap.add_argument("--big-size", type=int, default=50 * 1024 * 1024)
    ap.add_argument("--health-file",
                    help="while this file exists, GET /healthz answers with the status code on "
                         "its first line and the rest of the file as the body")
    ap.add_argument("--log-connections", action="store_true",
                    help="also log every accepted TCP connection (a bare connect sends no request)")
    a = ap.parse_args()
    ports = a.port or [8080]
    log = open(a.log, "a", buffering=1)

    def health():
        # Read on every request, so a test changes the answer at run time.
        try:
            with open(a.health_file) as f:
                text = f.read()
        except (TypeError, OSError):
            return 200, b"ok\n"
        first, _, rest = text.partition("\n")
        try:
            return int(first.strip()), rest.encode()
        except ValueError:
            return 500, b"bad health file\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            peer = plain(self.client_address[0])
            log.write(f"{peer} {self.path}\n")
            if self.path == "/big":
                make_big(a.big, a.big_size)
                size = os.path.getsize(a.big)
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                with open(a.big, "rb") as f:
                    while True:
                        b = f.read(1 << 16)
                        if not b:
                            break
                        self.wfile.write(b)
                return
            code = 200
            route, _, query = self.path.partition("?")
            if route == "/sleep":
                # Holds the connection (and this thread) for s seconds, 0..30.
                try:
                    secs = float(urllib.parse.parse_qs(query).get("s", ["1"])[0])
                except ValueError:
                    secs = 1.0
                if secs != secs:  # NaN
                    secs = 1.0
                time.sleep(min(max(secs, 0.0), 30.0))
            if route == "/healthz":
                code, body = health()
            else:
                body = f"server={a.name} client={peer}\n".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        # One dual-stack socket: IPv4 clients appear as ::ffff:a.b.c.d.
        address_family = socket.AF_INET6
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

        def verify_request(self, request, client_address):
            if a.log_connections:
                log.write(f"{plain(client_address[0])} connect\n")
            return True

    def udp_echo(port):
        # UDP on the same port: answers each datagram with who it is and whom it saw.
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        while True:
            _, peer = s.recvfrom(2048)
            log.write(f"{plain(peer[0])} udp\n")
            s.sendto(f"server={a.name} client={plain(peer[0])}\n".encode(), peer)

    servers = [Server(("::", p), Handler) for p in ports]
    for p in ports:
        threading.Thread(target=udp_echo, args=(p,), daemon=True).start()
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()


def plain(addr):
    """An IPv4 peer of a dual-stack socket as IPv4 (::ffff:a.b.c.d -> a.b.c.d)."""
    return addr[7:] if addr.startswith("::ffff:") and "." in addr else addr


if __name__ == "__main__":
    main()
