#!/usr/bin/env bash
# The Sluice lab: network namespaces standing in for a client, a router on the
# client side and a LAN of real servers, wired to the two veth ends that
# sluice drives through DPDK (net_af_packet).
#
#   [ns ${LAB}-client] c0 198.51.100.2/24 --- veth --- ${LAB}-ext   (sluice port "ext", 198.51.100.1)
#   [ns ${LAB}-lan]   bridge br0: ${LAB}-int's peer, m1 m2 m3 ports
#   [ns ${LAB}-m1..3] eth0 10.20.0.11-13/24, HTTP server on :8080
#                      ${LAB}-int   (sluice port "int", 10.20.0.1)
#
# With --ipv6, the client (2001:db8:1::2/64) and the members
# (fd00:20::11-13/64) also get IPv6 addresses, routed via the switch's
# 2001:db8:1::1 and fd00:20::1, which `config` then gives the switch.
#
# With --dsr, a router namespace joins the members' LAN (10.20.0.254) and the
# client (203.0.113.1 <-> client c1 203.0.113.2); members hold the VIP on lo
# (arp_ignore=1, arp_announce=2), route via the router, and also serve :80,
# so direct-server-return replies reach the client without the switch.
#
# Each member's server answers GET /healthz with 200 "ok", or, while the file
# ${LAB_DIR}/mN.health exists, with the status on its first line and the rest
# as the body.
#
# usage: scripts/lab.sh up [--members-gw switch|none|router] [--dsr] [--dscp N] [--log-connections] [--ipv6]
#          --dscp N: members map DSCP N back to the VIP with an nftables rule
#          --log-connections: servers also log each TCP connection ("PEER connect")
#        scripts/lab.sh down
#        scripts/lab.sh exec NS CMD...    run CMD in ${LAB}-NS
#        scripts/lab.sh stop-member N     kill member mN's server (it then refuses connections)
#        scripts/lab.sh start-member N    start it again with the same arguments, wait until it listens
#        scripts/lab.sh config MODE WORKERS [SOCKET]   print a sluice config for the lab
#        scripts/lab.sh config-base WORKERS [SOCKET]   only its [dataplane], [control] and [[interface]]s
# Environment: LAB (name prefix, default "sl"), LAB_DIR (state, default /tmp/${LAB}-lab).
set -euo pipefail
LAB=${LAB:-sl}
LAB_DIR=${LAB_DIR:-/tmp/${LAB}-lab}
HERE=$(cd "$(dirname "$0")/.." && pwd)
MEMBERS=(1 2 3)
VIP=198.51.100.10

ns() { echo "${LAB}-$1"; }
in_ns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

quiet_offloads() {
    # Full checksums on every frame (no CHECKSUM_PARTIAL), no GRO/TSO
    # super-frames: af_packet hands DPDK exactly what is on the wire.
    local netns=$1 dev=$2
    if [ -n "$netns" ]; then
        ip netns exec "$netns" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    else
        ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    fi
}

down() {
    if [ -d "$LAB_DIR" ]; then
        for pidfile in "$LAB_DIR"/*.pid; do
            [ -e "$pidfile" ] || continue
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        done
    fi
    for n in client lan "${MEMBERS[@]/#/m}" router; do
        ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$(ns "$n")" 2>/dev/null || true
    done
    nft delete table netdev "${LAB}_ports" 2>/dev/null || true
    ip link del "${LAB}-ext" 2>/dev/null || true
    ip link del "${LAB}-int" 2>/dev/null || true
    rm -rf "$LAB_DIR"
}

up() {
    local gw=switch dsr=0 dscp="" logconn=0 ipv6=0
    while [ $# -gt 0 ]; do
        case $1 in
            --ipv6) ipv6=1; shift ;;
            --members-gw) gw=$2; shift 2 ;;
            --dsr) dsr=1; gw=router; shift ;;
            --dscp) dscp=$2; shift 2 ;;
            --log-connections) logconn=1; shift ;;
            *) echo "lab.sh up: unknown option $1" >&2; exit 2 ;;
        esac
    done
    down
    mkdir -p "$LAB_DIR"
    for n in client lan "${MEMBERS[@]/#/m}"; do ip netns add "$(ns "$n")"; done
    for n in client lan "${MEMBERS[@]/#/m}"; do in_ns "$n" ip link set lo up; done

    # Client side: sluice's "ext" port.
    ip link add "${LAB}-ext" type veth peer name c0 netns "$(ns client)"
    in_ns client ip addr add 198.51.100.2/24 dev c0
    in_ns client ip link set c0 up
    in_ns client ip route add default via 198.51.100.1
    quiet_offloads "$(ns client)" c0
    if [ "$ipv6" = 1 ]; then
        touch "$LAB_DIR/ipv6"
        in_ns client ip addr add 2001:db8:1::2/64 dev c0 nodad
        in_ns client ip -6 route add default via 2001:db8:1::1
    fi

    # Members' LAN: a bridge, sluice's "int" port and three servers.
    in_ns lan ip link add br0 type bridge
    in_ns lan ip link set br0 up
    ip link add "${LAB}-int" type veth peer name int0 netns "$(ns lan)"
    in_ns lan ip link set int0 master br0 up
    quiet_offloads "$(ns lan)" int0
    for i in "${MEMBERS[@]}"; do
        local m; m=$(ns "m$i")
        in_ns lan ip link add "m$i" type veth peer name eth0 netns "$m"
        in_ns lan ip link set "m$i" master br0 up
        quiet_offloads "$(ns lan)" "m$i"
        in_ns "m$i" ip addr add "10.20.0.1$i/24" dev eth0
        [ "$ipv6" = 1 ] && in_ns "m$i" ip addr add "fd00:20::1$i/64" dev eth0 nodad
        in_ns "m$i" ip link set eth0 up
        quiet_offloads "$m" eth0
        case $gw in
            switch) in_ns "m$i" ip route add default via 10.20.0.1
                    [ "$ipv6" = 1 ] && in_ns "m$i" ip -6 route add default via fd00:20::1 ;;
            router) in_ns "m$i" ip route add default via 10.20.0.254 ;;
        esac
        local ports=(--port 8080)
        if [ "$dsr" = 1 ]; then
            # The VIP is local to the member but never answered for by ARP.
            in_ns "m$i" ip addr add "$VIP/32" dev lo
            in_ns "m$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
            ports+=(--port 80)
        fi
        if [ -n "$dscp" ]; then
            # Stateless (before conntrack): DSCP N means "this is for the VIP".
            in_ns "m$i" nft -f - <<NFT
table ip sluice_dsr {
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        ip dscp $dscp ip daddr set $VIP
    }
}
NFT
        fi
        local args=(--name "m$i" "${ports[@]}" --log "$LAB_DIR/m$i.log" --big "$LAB_DIR/big.bin"
                    --health-file "$LAB_DIR/m$i.health")
        [ "$logconn" = 1 ] && args+=(--log-connections)
        # start-member reuses these.
        printf '%s\n' "${args[@]}" >"$LAB_DIR/m$i.args"
        launch_member "$i"
    done

    if [ "$dsr" = 1 ]; then
        local r; r=$(ns router)
        ip netns add "$r"
        in_ns router ip link set lo up
        in_ns lan ip link add r0 type veth peer name eth0 netns "$r"
        in_ns lan ip link set r0 master br0 up
        quiet_offloads "$(ns lan)" r0
        in_ns router ip addr add 10.20.0.254/24 dev eth0
        in_ns router ip link set eth0 up
        in_ns router ip link add c1 type veth peer name c1 netns "$(ns client)"
        in_ns router ip addr add 203.0.113.1/24 dev c1
        in_ns router ip link set c1 up
        in_ns client ip addr add 203.0.113.2/24 dev c1
        in_ns client ip link set c1 up
        # Replies from the VIP come in on c1 although the VIP is routed via c0.
        in_ns client sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.c1.rp_filter=0 \
            net.ipv4.conf.default.rp_filter=0
        in_ns router ip route add 198.51.100.0/24 via 203.0.113.2
        in_ns router sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
        quiet_offloads "$r" eth0
    fi

    for dev in "${LAB}-ext" "${LAB}-int"; do
        ip link set "$dev" up
        quiet_offloads "" "$dev"
        # The switch's ports belong to DPDK: keep the kernel quiet on them.
        sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" 2>/dev/null || true
    done
    # On a real NIC bound to DPDK the kernel never sees the switch's frames;
    # here the ports are veths the host kernel also receives on, and it
    # would answer for the kernel interfaces' addresses (same MAC) a second
    # time. Its stack is cut off at ingress; AF_PACKET sees frames before.
    nft -f - <<NFT
table netdev ${LAB}_ports {
    chain ext { type filter hook ingress device "${LAB}-ext" priority 0; policy drop; }
    chain int { type filter hook ingress device "${LAB}-int" priority 0; policy drop; }
}
NFT
    # Wait for the servers to listen.
    for i in "${MEMBERS[@]}"; do wait_member "$i" || true; done
    echo "lab $LAB up: client $(ns client) 198.51.100.2, members 10.20.0.11-13:8080 (gateway: $gw)"
}

# Member N's server, in the background, with the arguments `up` chose.
launch_member() {
    local i=$1 args
    mapfile -t args <"$LAB_DIR/m$i.args"
    ip netns exec "$(ns "m$i")" python3 "$HERE/tests/lab/httpd.py" "${args[@]}" \
        >>"$LAB_DIR/m$i.out" 2>&1 </dev/null &
    echo $! >"$LAB_DIR/m$i.pid"
}

# Waits (5 s at most) until member N's server accepts TCP connections.
wait_member() {
    local i=$1
    for _ in $(seq 50); do
        in_ns "m$i" bash -c "exec 3<>/dev/tcp/10.20.0.1$i/8080" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "lab.sh: member m$i does not listen on 10.20.0.1$i:8080" >&2
    return 1
}

# Whether PID runs (a zombie does not: its sockets are closed already, and an
# orphan is reaped whenever PID 1 gets to it).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

member_arg() {
    case ${1:-} in
        1|2|3) [ -f "$LAB_DIR/m$1.args" ] && return 0
               echo "lab.sh: lab $LAB is not up (no $LAB_DIR/m$1.args)" >&2; exit 2 ;;
        *) echo "lab.sh: member number 1-3 expected, got '${1:-}'" >&2; exit 2 ;;
    esac
}

# stop-member N: kills mN's server and waits (5 s at most) until it is gone.
stop_member() {
    member_arg "${1:-}"
    local i=$1 pid
    [ -f "$LAB_DIR/m$i.pid" ] || return 0
    pid=$(cat "$LAB_DIR/m$i.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 20); do
        alive "$pid" || break
        sleep 0.1
    done
    rm -f "$LAB_DIR/m$i.pid"
}

# start-member N: starts mN's server again (unless it runs) and waits until it listens.
start_member() {
    member_arg "${1:-}"
    local i=$1
    if [ -f "$LAB_DIR/m$i.pid" ] && alive "$(cat "$LAB_DIR/m$i.pid")"; then
        return 0
    fi
    launch_member "$i"
    wait_member "$i"
}

# Prints the part of a lab configuration every mode shares: dataplane,
# control socket and the switch's two ports.
#   config-base WORKERS [SOCKET]
config_base() {
    local workers=$1 socket=${2:-$LAB_DIR/sluice.sock} ext6="" int6=""
    if [ -e "$LAB_DIR/ipv6" ]; then
        ext6=', "2001:db8:1::1/64"'
        int6=', "fd00:20::1/64"'
    fi
    cat <<TOML
[dataplane]
workers = $workers
eal_args = ["--no-huge", "-m", "512", "--log-level=lib.eal:warning"]
sessions_per_worker = 65536
poll = "adaptive"

[control]
socket = "$socket"

[[interface]]
name = "ext"
device = "net_af_packet0,iface=${LAB}-ext"
addresses = ["198.51.100.1/24"$ext6]

[[interface]]
name = "int"
device = "net_af_packet1,iface=${LAB}-int"
addresses = ["10.20.0.1/24"$int6]
TOML
}

# Prints a sluice configuration for the lab.
#   config MODE WORKERS [SOCKET]
#   MODE: dest_nat | both_nat | lan_to_lan | l2_dsr | l3_dsr_ipip | l3_dsr_gre | l3_dsr_dscp
config() {
    local mode=$1 workers=$2 socket=${3:-$LAB_DIR/sluice.sock}
    local extra="" port=8080 forwarding=$mode
    case $mode in
        dest_nat) ;;
        both_nat) extra='snat_addresses = ["10.20.0.100"]' ;;
        lan_to_lan) extra=$'snat_addresses = ["10.20.0.100"]\nlan_subnets = ["10.20.0.0/24"]' ;;
        l2_dsr) port=80 ;;
        l3_dsr_ipip|l3_dsr_gre) port=80; forwarding=l3_dsr; extra="encapsulation = \"${mode#l3_dsr_}\"" ;;
        l3_dsr_dscp) port=80; forwarding=l3_dsr; extra=$'encapsulation = "dscp"\ndscp = 10' ;;
        *) echo "lab.sh config: unknown mode $mode" >&2; exit 2 ;;
    esac
    echo "# Sluice lab configuration ($mode, $workers worker(s)), made by scripts/lab.sh"
    config_base "$workers" "$socket"
    cat <<TOML

[pool.web]
members = [
  { address = "10.20.0.11:$port" },
  { address = "10.20.0.12:$port" },
  { address = "10.20.0.13:$port" },
]

[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
forwarding = "$forwarding"
$extra

[[virtual_server]]
name = "web-udp"
address = "198.51.100.10:$port"
protocol = "udp"
pool = "web"
forwarding = "$forwarding"
$extra
TOML
}

case ${1:-} in
    up) shift; up "$@" ;;
    config) shift; config "$@" ;;
    config-base) shift; config_base "$@" ;;
    down) down ;;
    exec) shift; n=$1; shift; in_ns "$n" "$@" ;;
    stop-member) shift; stop_member "$@" ;;
    start-member) shift; start_member "$@" ;;
    *) echo "usage: $0 up [--members-gw switch|none|router] [--dsr] [--dscp N] [--log-connections]" \
            "| down | exec NS CMD... | stop-member N | start-member N | config MODE WORKERS [SOCKET]" \
            "| config-base WORKERS [SOCKET]" >&2; exit 2 ;;
esac
