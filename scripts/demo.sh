#!/usr/bin/env bash
# The Sluice lab, live: builds sluice, wires a client and three real web
# servers to it in network namespaces, balances requests through the VIP in
# Dest-NAT and then Both-NAT, shows who answered and the switch's counters,
# and tears everything down. Needs root; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: needs root (DPDK, network namespaces); run it with sudo" >&2; exit 1; }
scripts/setup.sh
echo "building sluice (release)..."
cargo build --release --locked -q

export LAB=${LAB:-demo}
export LAB_DIR=/tmp/${LAB}-lab
SLUICE=target/release/sluice
CTL="target/release/sluicectl --socket $LAB_DIR/sluice.sock"
VIP=198.51.100.10
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
    scripts/lab.sh up
    scripts/lab.sh config "$mode" 2 >"$LAB_DIR/sluice.toml"
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
    run $CTL virtual-servers
    run $CTL neighbors
    run $CTL stats
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    scripts/lab.sh down >/dev/null
}

demo_mode dest_nat
demo_mode both_nat
echo
echo "Dest-NAT: servers saw the client's own address (198.51.100.2)."
echo "Both-NAT: servers saw the switch's SNAT address (10.20.0.100)."
echo "demo finished; lab torn down."
