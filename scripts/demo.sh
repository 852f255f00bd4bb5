#!/usr/bin/env bash
# The Sluice lab, live: builds sluice, wires a client and three real web
# servers to it in network namespaces, balances requests through the VIP in
# Dest-NAT and then Both-NAT, shows who answered and the switch's counters,
# fails a server over and back (health checks), shows the kernel interface
# of the exception path and the status page (a screenshot while a server
# is down), reloads a changed file live (adding an IPv6 virtual server, and
# refusing a change that needs a restart), and tears everything down. Needs root; installs what it needs first.
#
# scripts/demo.sh --pair: a pair of switches instead (tests/e2e/ha.sh, which
# narrates each step): keepalived on both, keep-alive connections through
# Dest-NAT and Both-NAT, the master killed, the standby serving the same
# connections from its synchronised sessions, the killed node back after a
# bulk sync, and a rolling restart.
#
# scripts/demo.sh --ecmp: two switches behind a router instead
# (tests/e2e/ecmp.sh): BIRD on the router and on each node, the VIP
# learned from both, connections spread by ECMP, a node drained and one
# killed while keep-alive connections go on with their members.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: needs root (DPDK, network namespaces); run it with sudo" >&2; exit 1; }
scripts/setup.sh
echo "building sluice (release)..."
cargo build --release --locked -q
if [ "${1:-}" = --pair ]; then
    echo "a pair of switches with keepalived and session synchronisation (tests/e2e/ha.sh)"
    exec bash tests/e2e/ha.sh
fi
if [ "${1:-}" = --ecmp ]; then
    echo "two switches behind an ECMP router, VIPs announced by BGP (tests/e2e/ecmp.sh)"
    exec bash tests/e2e/ecmp.sh
fi

export LAB=${LAB:-demo}
export LAB_DIR=/tmp/${LAB}-lab
SLUICE=target/release/sluice
CTL="target/release/sluicectl --socket $LAB_DIR/sluice.sock"
VIP=198.51.100.10
PAGE=127.0.0.1:9180
PID=""
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    scripts/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

run() { echo; echo "\$ $*"; "$@"; }
client() { ip netns exec "${LAB}-client" "$@"; }

demo_mode() {
    local mode=$1
    echo
    echo "################ $mode ################"
    scripts/lab.sh up --log-connections --ipv6
    scripts/lab.sh config "$mode" 2 | sed "/^socket = /a http = \"$PAGE\"" >"$LAB_DIR/sluice.toml"
    echo "configuration: $LAB_DIR/sluice.toml"
    $SLUICE --config "$LAB_DIR/sluice.toml" >"$LAB_DIR/sluice.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do $CTL status >/dev/null 2>&1 && break; sleep 0.1; done
    sed 's/^/  | /' "$LAB_DIR/sluice.log"
    run client ping -c 2 -i 0.3 $VIP
    echo
    echo "\$ for i in 1..9; do curl http://$VIP/; done     # from the client namespace"
    for i in $(seq 9); do
        printf '  request %d -> %s\n' "$i" "$(client curl -s -m 3 http://$VIP/)"
    done
    echo
    echo "\$ curl -m 2 http://$VIP:81/     # a port no virtual server serves"
    client curl -s -m 2 http://$VIP:81/ || echo "  (no answer: dropped by the switch's port filter)"
    run $CTL members
    [ "$mode" = dest_nat ] && failover && live_reload
    run $CTL neighbors
    run $CTL stats
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    scripts/lab.sh down >/dev/null
}

# wait_member ADDR STATE: until sluicectl members shows it (at most 20 s).
wait_member() {
    for _ in $(seq 200); do
        $CTL members | awk -v m="$1" -v s="$2" '$3 == m && $5 == s { f = 1 } END { exit !f }' && return 0
        sleep 0.1
    done
    echo "  (still not $2 after 20 s)"
}

requests() {
    for i in $(seq "$1"); do
        printf '  request %d -> %s\n' "$i" "$(client curl -s -m 3 http://$VIP/ || echo failed)"
    done
}

failover() {
    echo
    echo "---- failover: the default health check (tcp connect every 2 s, down after 4 misses) ----"
    run ip -br addr show sluice-int
    echo "  (the kernel interface of the exception path: the switch's address and the port's MAC;"
    echo "   health checks leave from it, so the servers see 10.20.0.1:)"
    grep -m 2 '10.20.0.1 connect' "$LAB_DIR/m1.log" | sed 's/^/  m1 log: /' || true
    echo
    echo "\$ scripts/lab.sh stop-member 2        # kill m2's web server"
    scripts/lab.sh stop-member 2
    wait_member 10.20.0.12:8080 down
    grep 'health: 10.20.0.12:8080' "$LAB_DIR/sluice.log" | sed 's/^/  | /'
    run $CTL members
    status_page
    echo
    echo "\$ for i in 1..6; do curl http://$VIP/; done     # m2 gets nothing"
    requests 6
    echo
    echo "\$ scripts/lab.sh start-member 2       # m2 back: up after 2 good checks"
    scripts/lab.sh start-member 2
    wait_member 10.20.0.12:8080 up
    grep 'health: 10.20.0.12:8080' "$LAB_DIR/sluice.log" | tail -1 | sed 's/^/  | /'
    requests 6
}

# status_page: what [control] http serves, seen by a browser and a script.
status_page() {
    echo
    echo "---- the status page: http://$PAGE/ ([control] http; ssh -L 9180:$PAGE to look from elsewhere) ----"
    echo "\$ curl -s http://$PAGE/api/overview     # the JSON it refreshes from every 2 s"
    curl -s "http://$PAGE/api/overview" | /usr/bin/python3 -c '
import json, sys
o = json.load(sys.stdin)
print("  generation %s, %d virtual servers" % (o["status"]["generation"], len(o["virtual_servers"])))
for m in o["members"]:
    print("  %-8s %-16s %-9s %s" % (m["virtual_server"], m["member"], m["state"], m["last"] or ""))'
    if command -v chromium >/dev/null; then
        echo "\$ chromium --headless=new --screenshot=/tmp/sluice-demo-page.png http://$PAGE/"
        timeout -k 5 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$LAB_DIR/chromium" \
            --virtual-time-budget=6000 --window-size=1400,1000 --screenshot=/tmp/sluice-demo-page.png \
            "http://$PAGE/" >/dev/null 2>&1 && echo "  the page as a browser shows it: /tmp/sluice-demo-page.png"
    fi
}

live_reload() {
    echo
    echo "---- reload: the file changes, sessions stay ----"
    local cfg=$LAB_DIR/sluice.toml
    sed -i '/{ address = "10.20.0.13:8080" },/d' "$cfg"
    cat >>"$cfg" <<'TOML'

[[virtual_server]]
name = "web2"
address = "198.51.100.20:80"
protocol = "tcp"
pool = "web"
forwarding = "dest_nat"

[pool.web6]
members = [ { address = "[fd00:20::11]:8080" }, { address = "[fd00:20::12]:8080" } ]

[[virtual_server]]
name = "web6"
address = "[2001:db8:1::10]:80"
protocol = "tcp"
pool = "web6"
forwarding = "dest_nat"
TOML
    echo "  (edited $cfg: member 10.20.0.13 removed, virtual server web2 on 198.51.100.20:80"
    echo "   and IPv6 virtual server web6 on [2001:db8:1::10]:80 added)"
    run $CTL reload
    grep 'reload:' "$LAB_DIR/sluice.log" | sed 's/^/  | /'
    echo
    echo "\$ for i in 1..6; do curl http://$VIP/; done     # m3 is no longer in the pool"
    requests 6
    echo
    echo "\$ curl http://198.51.100.20/     # the new virtual server"
    printf '  %s\n' "$(client curl -s -m 3 http://198.51.100.20/ || echo failed)"
    echo
    echo "\$ for i in 1..4; do curl -6 http://[2001:db8:1::10]/; done     # the new IPv6 virtual server"
    for i in $(seq 4); do
        printf '  request %d -> %s\n' "$i" "$(client curl -6 -s -m 3 'http://[2001:db8:1::10]/' || echo failed)"
    done
    sed -i 's/^workers = 2$/workers = 1/' "$cfg"
    echo
    echo "  (edited $cfg again: workers = 1, which only a restart can change)"
    run $CTL reload || true
    sed -i 's/^workers = 1$/workers = 2/' "$cfg"
    printf '  still serving: %s\n' "$(client curl -s -m 3 http://$VIP/ || echo failed)"
}

demo_mode dest_nat
demo_mode both_nat
echo
echo "Dest-NAT: servers saw the client's own address (198.51.100.2)."
echo "Both-NAT: servers saw the switch's SNAT address (10.20.0.100)."
echo "Failover: a dead server left the rotation in about 2 s x 4 and came back after 2 good checks."
echo "Reload: a member removed and a virtual server added live; a change needing a restart was refused."
echo "IPv6: a virtual server added by that reload served curl -6; servers saw the client's IPv6 address."
echo "demo finished; lab torn down."
