#!/usr/bin/env python3
"""Serves the status page without the switch, to work on it: GET / (or any
path ending in /, to try a path prefix) answers control/src/page/index.html,
read again on every request; GET .../api/overview answers a plausible,
changing overview in the switch's shape: 2 virtual servers, 5 members (up,
down, draining, disabled backup) and one removed member still draining,
3 ports (one link down), 2 workers, drops, and a history that grows by a
point every interval.

  fake_overview.py PORT [--bind 127.0.0.1] [--history N] [--die-after N]
                        [--error-after N] [--bare] [--json FILE]

--history N     points of history at start (0: "collecting…"), default 60
--die-after N   after N answers to api/overview, close the listening socket
                and exit (the page must show its error banner, keep its data)
--error-after N after N answers to api/overview, answer 503
--bare          only the fields of the documented shape (no healthy, checks,
                server_removed, announce)
--json FILE     answer api/overview with FILE as it is (read on each request)
"""
import argparse
import http.server
import json
import math
import os
import random
import socketserver
import sys
import threading
import time

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "control", "src", "page", "index.html")
INTERVAL_S = 5
MAX_POINTS = 120
BOOT_UPTIME = 600

SERVERS = [
    {"name": "web", "vip": "198.51.100.10", "port": 80, "protocol": "tcp", "forwarding": "dnat",
     "method": "round_robin", "pool": "web"},
    {"name": "dns", "vip": "198.51.100.53", "port": 53, "protocol": "udp", "forwarding": "dsr",
     "method": "maglev", "pool": "dns"},
]
# (server, member, role, state, weight, effective, check, last)
MEMBERS = [
    ("web", "10.20.0.11:8080", "primary", "up", 2, 2, "http", "200 OK"),
    ("web", "10.20.0.12:8080", "primary", "down", 1, 0, "http", "connect: connection refused"),
    ("web", "10.20.0.13:8080", "primary", "draining", 1, 0, "http", "200 OK"),
    ("web", "10.20.0.14:8080", "primary", "removed", 1, 0, "none", None),
    ("dns", "10.20.1.21:53", "primary", "up", 1, 1, "dns", "NOERROR"),
    ("dns", "10.20.1.22:53", "backup", "disabled", 1, 0, "dns", "NOERROR"),
]
DROP_REASONS = ["no_session", "no_virtual_server", "bad_checksum", "ttl_exceeded", "fragment", "tx_full", "acl_denied"]


class Fake:
    def __init__(self, history, bare):
        self.start = time.monotonic()
        self.bare = bare
        self.lock = threading.Lock()
        self.rng = random.Random(7)
        self.points = []
        self.drops = {r: 0 for r in DROP_REASONS}
        self.drops["no_session"] = 1200
        self.drops["no_virtual_server"] = 40
        self.served = 0
        # Seed the history as if it had been running.
        first = BOOT_UPTIME - history * INTERVAL_S
        for i in range(history):
            self.points.append(self.point(first + (i + 1) * INTERVAL_S))
        self.next_point = BOOT_UPTIME + INTERVAL_S

    def uptime(self):
        return BOOT_UPTIME + int(time.monotonic() - self.start)

    def point(self, t):
        wave = 1 + 0.4 * math.sin(t / 60)
        web = 900 * wave + self.rng.uniform(-60, 60)
        dns = 300 * (1 + 0.3 * math.cos(t / 45)) + self.rng.uniform(-20, 20)
        servers = [
            {"name": "web", "packets_per_s": round(web, 1), "bytes_per_s": round(web * 610, 1),
             "sessions": int(40 * wave), "rejected_per_s": round(max(0.0, math.sin(t / 25)) * 2, 2)},
            {"name": "dns", "packets_per_s": round(dns, 1), "bytes_per_s": round(dns * 95, 1),
             "sessions": int(dns / 10), "rejected_per_s": 0.0},
        ]
        total = web + dns
        workers = [
            {"worker": w, "packets_per_s": round(total * share, 1),
             "new_sessions_per_s": round(total * share / 25, 2),
             "drops_per_s": round(abs(math.sin(t / 30 + w)) * 3, 2)}
            for w, share in ((0, 0.55), (1, 0.45))
        ]
        return {"uptime_s": t, "servers": servers, "workers": workers}

    def overview(self):
        with self.lock:
            up = self.uptime()
            while self.next_point <= up:
                self.points.append(self.point(self.next_point))
                self.next_point += INTERVAL_S
            del self.points[:-MAX_POINTS]
            self.drops["no_session"] += self.rng.randint(0, 9)
            self.drops["bad_checksum"] += self.rng.choice([0, 0, 0, 1])
            self.served += 1
            return self.build(up)

    def build(self, up):
        last = self.points[-1]["servers"] if self.points else []
        vs_sessions = {s["name"]: s["sessions"] for s in last}
        members = []
        for vs, member, role, state, weight, eff, check, last_result in MEMBERS:
            sessions = 0 if state in ("down", "disabled") else self.rng.randint(0, 25)
            if state == "removed":
                sessions = 2
            row = {"virtual_server": vs, "pool": vs, "member": member, "role": role, "state": state,
                   "since_s": (30 if state == "down" else 3000) + up - BOOT_UPTIME, "sessions": sessions, "check": check,
                   "latency_ms": None if state == "down" or check == "none" else round(self.rng.uniform(0.2, 3.5), 2),
                   "weight": weight, "effective_weight": eff, "limit": 500 if vs == "web" else None,
                   "last": last_result}
            if not self.bare:
                n = up // 2
                fail = n if state == "down" else n // 200
                row.update({"healthy": state not in ("down",), "server_removed": False,
                            "checks": None if check == "none" else {"checks": n, "failures": fail, "local_errors": 0}})
            members.append(row)
        servers = []
        for s in SERVERS:
            mine = [m for m in MEMBERS if m[0] == s["name"]]
            servers.append(dict(s, sessions=vs_sessions.get(s["name"], 0), removed=False,
                                members=[{"member": m[1], "backup": m[2] == "backup", "weight": m[4], "state": m[3]}
                                         for m in mine if m[3] != "removed"],
                                removed_members=[m[1] for m in mine if m[3] == "removed"]))
        status = {"version": "0.9.0", "dpdk": "DPDK 22.11.11", "uptime_s": up, "workers": 2,
                  "sessions": sum(vs_sessions.values()), "generation": 1,
                  "ports": [
                      {"port": 0, "name": "ext", "mac": "02:00:00:00:00:01", "link_up": True, "mtu": 1500,
                       "addresses": ["198.51.100.1/24", "2001:db8::1/64"]},
                      {"port": 1, "name": "int", "mac": "02:00:00:00:00:02", "link_up": True, "mtu": 9000,
                       "addresses": ["10.20.0.1/16"]},
                      {"port": 2, "name": "spare", "mac": "02:00:00:00:00:03", "link_up": False, "mtu": 1500,
                       "addresses": []},
                  ]}
        if not self.bare:
            status["announce"] = {"draining": False, "table": 100, "present": 2, "total": 2}
        return {"status": status, "virtual_servers": servers, "members": members,
                "drops": [{"reason": r, "packets": n} for r, n in self.drops.items()],
                "history": {"interval_s": INTERVAL_S, "points": list(self.points)}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--history", type=int, default=60)
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--error-after", type=int, default=0)
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    fake = Fake(min(args.history, MAX_POINTS), args.bare)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            if path.endswith("/api/overview"):
                if args.error_after and fake.served >= args.error_after:
                    return self.answer(503, "text/plain", b"switch busy\n")
                body = json.dumps(fake.overview()).encode()
                if args.json:
                    with open(args.json, "rb") as f:
                        body = f.read()
                self.answer(200, "application/json", body)
                if args.die_after and fake.served >= args.die_after:
                    threading.Thread(target=server.shutdown, daemon=True).start()
            elif path.endswith("/") or path.endswith("/index.html"):
                with open(PAGE, "rb") as f:
                    self.answer(200, "text/html; charset=utf-8", f.read())
            else:
                self.answer(404, "text/plain", b"try GET / or /api/overview\n")

        def answer(self, code, kind, body):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % a))

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    print(f"fake overview on http://{args.bind}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
