# Shared helpers of the end-to-end tests: assertions with a pass/fail tally,
# starting and stopping sluice in the lab, and cleanup on any exit.
# Tests source this file; they run as root.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export LAB=${LAB:-st}
export LAB_DIR=${LAB_DIR:-/tmp/${LAB}-lab}
SLUICE=${SLUICE:-$HERE/target/release/sluice}
SLUICECTL=${SLUICECTL:-$HERE/target/release/sluicectl}
PASS=0
FAIL=0
SLUICE_PID=""
WORK=$(mktemp -d /tmp/sluice-e2e.XXXXXX)

ok() { PASS=$((PASS + 1)); echo "  ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
    local d=$1; shift
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
section() { echo "== $*"; }

cleanup() {
    stop_sluice >/dev/null 2>&1 || true
    "$HERE/scripts/lab.sh" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

client() { ip netns exec "${LAB}-client" "$@"; }
ctl() { "$SLUICECTL" --socket "$LAB_DIR/sluice.sock" "$@"; }

# start_sluice CONFIG: starts sluice in the background, waits for its socket.
start_sluice() {
    local cfg=$1
    "$SLUICE" --config "$cfg" >"$WORK/sluice.out" 2>&1 &
    SLUICE_PID=$!
    for _ in $(seq 100); do
        if ctl status >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$SLUICE_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "sluice did not come up:"; cat "$WORK/sluice.out"
    return 1
}

# stop_sluice: SIGTERM, wait (bounded), return sluice's exit status.
stop_sluice() {
    [ -n "$SLUICE_PID" ] || return 0
    local pid=$SLUICE_PID rc=0
    SLUICE_PID=""
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 124
    fi
    wait "$pid" || rc=$?
    return $rc
}

# counter NAME: sum of a worker counter over all workers (from sluicectl stats).
counter() {
    ctl stats | awk -v n="$1" '/^worker/ { for (i = 2; i < NF; i++) if ($i == n) s += $(i + 1) } END { print s + 0 }'
}
# drops NAME: sum of a drop reason over all workers.
drops() {
    ctl stats | awk -v n="$1" '$1 == "drop" && $2 == n { s += $3 } END { print s + 0 }'
}

# vs_counter VS NAME: a virtual server's counter ("virtual_server VS NAME N" in sluicectl stats).
vs_counter() {
    ctl stats | awk -v v="$1" -v n="$2" '$1 == "virtual_server" && $2 == v { for (i = 3; i < NF; i++) if ($i == n) s += $(i + 1) } END { print s + 0 }'
}
# kernel_counter PORT NAME: an exception-path counter ("kernel PORT: NAME N ..." in sluicectl stats).
kernel_counter() {
    ctl stats | awk -v p="$1:" -v n="$2" '$1 == "kernel" && $2 == p { for (i = 3; i < NF; i++) if ($i == n) s += $(i + 1) } END { print s + 0 }'
}

# member_lines MEMBER [POOL]: the lines of `sluicectl members` (header left
# out) for MEMBER (ip:port), one per virtual server, optionally only in POOL.
# Columns: virtual_server pool member role state since sessions check latency last...
member_lines() {
    ctl members 2>/dev/null | awk -v m="$1" -v p="${2:-}" 'NR > 1 && $3 == m && (p == "" || $2 == p)'
}
# wait_state MEMBER STATE SECONDS [POOL]: polls `sluicectl members` until every
# line of MEMBER shows STATE; fails once SECONDS have passed. Leaves the time
# it took, in seconds, in WAITED.
WAITED=0
wait_state() {
    local m=$1 want=$2 limit=$3 pool=${4:-} start now lines
    start=$(date +%s%N)
    while :; do
        lines=$(member_lines "$m" "$pool")
        now=$(date +%s%N)
        WAITED=$(awk -v d=$((now - start)) 'BEGIN { printf "%.1f", d / 1e9 }')
        if [ -n "$lines" ] && awk -v s="$want" '$5 != s { bad = 1 } END { exit bad }' <<<"$lines"; then
            return 0
        fi
        [ $((now - start)) -lt $((limit * 1000000000)) ] || return 1
        sleep 0.2
    done
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}

# keepalive VIP OUT GO: one HTTP/1.1 connection asks once, waits for the
# file GO, asks again; OUT gets both answers ("server=mX ...") or "error
# EXCEPTION" (e.g. TimeoutError), OUT.port the connection's local port.
keepalive() {
    client python3 - "$1" "$3" "$2.port" >"$2" 2>&1 <<'PY' &
import socket, sys, time, os
vip, go, port = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection((vip, 80), timeout=10)
with open(port, "w") as f:
    print(s.getsockname()[1], file=f)
def ask():
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not (b"\r\n\r\n" in data and b"server=" in data and data.endswith(b"\n")):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(data.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
ask()
for _ in range(300):
    if os.path.exists(go):
        break
    time.sleep(0.1)
try:
    ask()
except Exception as e:
    print("error", type(e).__name__, flush=True)
PY
    KEEP_PID=$!
    for _ in $(seq 50); do grep -q server= "$2" 2>/dev/null && break; sleep 0.1; done
}

# Labs of several nodes (ha.sh, ecmp.sh): node N runs in namespace
# ${LAB}-nN with ports nNe (on bridge br1, the routers' / clients' link)
# and nNi (on br0, the members' LAN) in namespace ${LAB}-lan.
node_ns() { echo "${LAB}-n$1"; }
in_node() { local n=$1; shift; ip netns exec "$(node_ns "$n")" "$@"; }
lan() { ip netns exec "${LAB}-lan" "$@"; }
node_ports_up() { # node_ports_up N: the namespace, the veths, no offloads
    local n=$1 side bridge ns
    ip netns add "$(node_ns "$n")"
    in_node "$n" ip link set lo up
    for side in e i; do
        bridge=$([ $side = e ] && echo br1 || echo br0)
        lan ip link add "n$n$side" type veth peer name "n$n$side" netns "$(node_ns "$n")"
        lan ip link set "n$n$side" master "$bridge" up
        in_node "$n" ip link set "n$n$side" up
        for ns in "${LAB}-lan" "$(node_ns "$n")"; do
            ip netns exec "$ns" ethtool -K "n$n$side" tx off rx off tso off gso off gro off >/dev/null 2>&1
        done
        in_node "$n" sysctl -qw "net.ipv6.conf.n$n$side.disable_ipv6=1"
    done
    # The ports are DPDK's: the node's own stack (which may hold a VIP, put
    # there by keepalived) must not answer what arrives on them: it would
    # reset the clients' connections. AF_PACKET sees the frames before this
    # ingress hook, as on the one-node lab.
    in_node "$n" nft -f - <<NFT
table netdev ports {
    chain ext { type filter hook ingress device "n${n}e" priority 0; policy drop; }
    chain int { type filter hook ingress device "n${n}i" priority 0; policy drop; }
}
NFT
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.05 s until it succeeds
# (0) or SECONDS have passed (1). Leaves the time it took, in seconds, in
# WAITED.
WAITED=0
wait_for() {
    local limit=$1 start now; shift
    start=$(date +%s%N)
    while :; do
        if "$@" >/dev/null 2>&1; then
            now=$(date +%s%N)
            WAITED=$(awk -v d=$((now - start)) 'BEGIN { printf "%.2f", d / 1e9 }')
            return 0
        fi
        now=$(date +%s%N)
        WAITED=$(awk -v d=$((now - start)) 'BEGIN { printf "%.2f", d / 1e9 }')
        [ $((now - start)) -lt $((limit * 1000000000)) ] || return 1
        sleep 0.05
    done
}

# node_down N: every process of node N's namespace killed, the namespace
# and its DPDK runtime directory removed.
node_down() {
    ip netns pids "$(node_ns "$1")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$(node_ns "$1")" 2>/dev/null
    rm -rf "/var/run/dpdk/${LAB}-n$1"
}

# node_sluice_up N: sluice on $WORK/nN.toml in node N's namespace, its pid
# in SLUICE_PIDS[N] (the daemon's own: ip netns exec execs it); returns once
# it answers on $LAB_DIR/nN.sock, or has exited, or after 10 s.
node_sluice_up() {
    local n=$1
    ip netns exec "$(node_ns "$n")" "$SLUICE" --config "$WORK/n$n.toml" >"$WORK/n$n.out" 2>&1 &
    SLUICE_PIDS[$n]=$!
    for _ in $(seq 100); do
        "$SLUICECTL" --socket "$LAB_DIR/n$n.sock" status >/dev/null 2>&1 && break
        kill -0 "${SLUICE_PIDS[$n]}" 2>/dev/null || break
        sleep 0.1
    done
}
