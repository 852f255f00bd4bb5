#!/usr/bin/env python3
"""One HTTP/1.1 keep-alive connection, one request every INTERVAL seconds,
until STOPFILE exists or DURATION passes. Prints one line per request:
"<unix time> <local port> server=mN" or "<unix time> ERROR <why>", and never
reconnects: a connection the switch broke shows as an ERROR line and exit 1.

usage: keepalive.py HOST PORT INTERVAL DURATION STOPFILE
"""
import http.client
import os
import sys
import time

host, port, interval, duration, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
conn = http.client.HTTPConnection(host, port, timeout=30)
conn.connect()
conn.auto_open = 0  # a closed connection is an error, never silently reopened
end = time.time() + duration
while time.time() < end and not os.path.exists(stop):
    try:
        conn.request("GET", "/")
        body = conn.getresponse().read().decode()
        server = body.split()[0] if body else "empty"
        print(f"{time.time():.3f} {conn.sock.getsockname()[1]} {server}", flush=True)
    except Exception as e:  # noqa: BLE001 - any failure ends the test connection
        print(f"{time.time():.3f} ERROR {e!r}", flush=True)
        sys.exit(1)
    time.sleep(interval)
