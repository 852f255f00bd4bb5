#!/usr/bin/env bash
# A pair of switches with keepalived and session synchronisation (issue
# 17): two Sluice nodes, each in a network namespace of its own, on the
# same client link and members' LAN, `[ha] vip_ownership = "kernel"`, 1
# worker each, sessions synchronised over the members' link (sync_key set).
# Stock keepalived runs in each node's namespace on the kernel interfaces
# (sluice-ext, sluice-int): its VRRP adverts cross the dataplanes, it puts
# the VIP (ext), the members' floating gateway and the SNAT address (int) on
# the master's kernel interfaces, and each dataplane owns what its kernel
# holds. keepalived tracks `sluicectl ha ready`, which waits for the bulk
# sync. Checked: exactly one node owns the VIP; requests are balanced
# through it; keep-alive connections through Dest-NAT, Both-NAT and L2-DSR
# (a second VIP; the members hold it on lo and answer the client through
# a router of their own) are synchronised to the standby; when the master
# dies (keepalived and sluice SIGKILLed) the other takes the addresses
# over, the same connections go on with the same members, new ones are
# served, and the longest gap of a request loop is reported (under 5 s);
# the killed node restarts, bulk-syncs
# from the survivor, reports ready and takes its addresses back; a rolling
# restart (standby restarted, keepalived stopped on the active, old active
# restarted) loses none of the connections; sync datagrams from a non-peer,
# or from a peer's address without the key, are dropped and counted.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v keepalived >/dev/null || apt-get install -y -qq keepalived >/dev/null 2>&1
/usr/bin/python3 -c 'import scapy' 2>/dev/null || apt-get install -y -qq python3-scapy >/dev/null 2>&1
# Debian starts the packaged daemon: this test runs its own, per node.
systemctl disable --now keepalived >/dev/null 2>&1 || true

VIP=198.51.100.10
GATEWAY=10.20.0.253
DSR_VIP=198.51.100.20
SNAT=10.20.0.100
SYNC_KEY="lab pair secret, sixteen+ chars"
NODES=(1 2)
declare -A SLUICE_PIDS KEEPALIVED_PIDS

nctl() { local n=$1; shift; "$SLUICECTL" --socket "$LAB_DIR/n$n.sock" "$@"; }

ha_cleanup() {
    for n in "${NODES[@]}"; do
        node_down "$n"
    done
    wait 2>/dev/null
}
ha_logs() { # what the nodes said, when a check failed
    [ "$FAIL" -gt 0 ] || return 0
    for f in "$WORK"/n?.out "$WORK"/keepalived-n?.out "$WORK"/ka-*; do
        [ -e "$f" ] && { echo "--- $f"; tail -25 "$f"; }
    done
}
trap 'ha_logs; ha_cleanup; cleanup' EXIT

# The lab's client and members, then the pair: the client link becomes a
# bridge in the LAN namespace, and each node gets a port on both bridges.
# The members route through the floating gateway; what they answer from
# the L2-DSR VIP goes straight to the client through the lab's router
# (10.20.0.254, `--dsr`), as direct server return does.
"$HERE/scripts/lab.sh" up --dsr >/dev/null
for i in 1 2 3; do
    ip netns exec "${LAB}-m$i" ip route replace default via "$GATEWAY"
    ip netns exec "${LAB}-m$i" ip addr add "$DSR_VIP/32" dev lo
    ip netns exec "${LAB}-m$i" ip rule add from "$DSR_VIP" lookup 200 priority 100
    ip netns exec "${LAB}-m$i" ip route add default via 10.20.0.254 table 200
done
lan ip link add br1 type bridge
lan ip link set br1 up
ip link set "${LAB}-ext" netns "${LAB}-lan"
lan ip link set "${LAB}-ext" master br1 up
for n in "${NODES[@]}"; do
    node_ports_up "$n"
done

node_config() { # node_config N
    local n=$1
    "$HERE/scripts/lab.sh" config dest_nat 1 "$LAB_DIR/n$n.sock" \
        | sed "s|iface=${LAB}-ext|iface=n${n}e|; s|iface=${LAB}-int|iface=n${n}i|" \
        | sed "s|\"198.51.100.1/24\"|\"198.51.100.$((2 + n))/24\"|; s|\"10.20.0.1/24\"|\"10.20.0.$((2 + n))/24\"|" \
        | sed "s|^poll = .*|&\nfile_prefix = \"${LAB}-n$n\"|"
    cat <<TOML

[[virtual_server]]
name = "web-both"
address = "$VIP:8081"
protocol = "tcp"
pool = "web"
forwarding = "both_nat"
snat_addresses = ["$SNAT"]

[pool.dsr]
members = [
  { address = "10.20.0.11:80" },
  { address = "10.20.0.12:80" },
  { address = "10.20.0.13:80" },
]

[[virtual_server]]
name = "web-dsr"
address = "$DSR_VIP:80"
protocol = "tcp"
pool = "dsr"
forwarding = "l2_dsr"

[ha]
vip_ownership = "kernel"
node_id = $n
sync_interface = "int"
sync_peers = ["10.20.0.$((5 - n))"]
sync_key = "$SYNC_KEY"
TOML
}

keepalived_config() { # keepalived_config N PRIORITY
    cat <<CONF
global_defs {
    router_id ${LAB}-n$1
    enable_script_security
    script_user root
    vrrp_garp_master_delay 1
}
vrrp_script sluice_ready {
    script "$SLUICECTL --socket $LAB_DIR/n$1.sock ha ready"
    interval 1
    fall 2
    rise 1
}
vrrp_sync_group sluice {
    group {
        ext
        int
    }
    track_script {
        sluice_ready
    }
}
vrrp_instance ext {
    state BACKUP
    interface sluice-ext
    virtual_router_id 51
    priority $2
    advert_int 1
    virtual_ipaddress {
        $VIP/32
        $DSR_VIP/32
    }
}
vrrp_instance int {
    state BACKUP
    interface sluice-int
    virtual_router_id 52
    priority $2
    advert_int 1
    virtual_ipaddress {
        $GATEWAY/24
        $SNAT/24
    }
}
CONF
}

start_node() { # start_node N PRIORITY
    local n=$1
    node_config "$n" >"$WORK/n$n.toml"
    node_sluice_up "$n"
    keepalived_config "$n" "$2" >"$WORK/keepalived-n$n.conf"
    # A killed keepalived leaves its pid files; a new one would refuse to start.
    rm -f "$WORK/ka-n$n.pid" "$WORK/ka-vrrp-n$n.pid"
    ip netns exec "$(node_ns "$n")" keepalived -n -l -D -P -f "$WORK/keepalived-n$n.conf" \
        -p "$WORK/ka-n$n.pid" -r "$WORK/ka-vrrp-n$n.pid" >"$WORK/keepalived-n$n.out" 2>&1 &
    KEEPALIVED_PIDS[$n]=$!
}

holds() { in_node "$1" ip -4 addr show dev sluice-ext | grep -q " $VIP/"; }
owns_logged() { grep -q "ha: owns $VIP on ext" "$WORK/n$1.out"; }

section "a pair: two nodes, keepalived on their kernel interfaces, the VIP on one"
start_node 1 150
start_node 2 100
check "both nodes run" nctl 2 status
# The packaged example, with this tree's sluicectl for the installed one.
sed "s|/usr/bin/sluicectl|$SLUICECTL|" "$HERE/packaging/keepalived.conf" >"$WORK/example.conf"
check "packaging/keepalived.conf passes keepalived's own check on a node$(in_node 1 keepalived --config-test -f "$WORK/example.conf" 2>&1 | head -1 | sed 's/^./ (&/; s/.$/&)/')" \
    in_node 1 keepalived --config-test -f "$WORK/example.conf"
master=0
for _ in $(seq 100); do
    holds 1 && master=1 && break
    sleep 0.1
done
check "keepalived made node 1 master: its kernel interface holds $VIP" test "$master" = 1
sleep 3
check "node 2 stays backup (VRRP adverts cross the dataplanes): its kernel does not hold $VIP" \
    bash -c "! ip netns exec $(node_ns 2) ip -4 addr show dev sluice-ext | grep -q ' $VIP/'"
check "node 1's dataplane owns it ($(grep -m1 "ha: owns $VIP" "$WORK/n1.out"))" owns_logged 1
check "  and the floating gateway on int" grep -q "ha: owns $GATEWAY on int" "$WORK/n1.out"
check "node 2's dataplane does not" bash -c "! grep -q 'ha: owns $VIP' $WORK/n2.out"
check "sluicectl ha on node 1 lists what it owns ($(nctl 1 ha | sed -n 2p))" \
    bash -c "$SLUICECTL --socket $LAB_DIR/n1.sock ha | grep -q 'owns: .*$VIP on ext'"
check "  and on node 2 nothing ($(nctl 2 ha | sed -n 2p))" \
    bash -c "$SLUICECTL --socket $LAB_DIR/n2.sock ha | grep -qx 'owns: nothing'"
check "sluicectl ha ready: both ready (keepalived's vrrp_script runs it)" \
    bash -c "$SLUICECTL --socket $LAB_DIR/n1.sock ha ready && $SLUICECTL --socket $LAB_DIR/n2.sock ha ready"
client bash -c "for i in \$(seq 30); do curl -s -m 3 http://$VIP/ || echo FAILED; done" >"$WORK/before"
check "30 requests to $VIP answered through node 1 ($(grep -c '^server=' "$WORK/before"))" \
    test "$(grep -c '^server=' "$WORK/before")" -eq 30
check "  balanced over the three members" test "$(grep -o 'server=m[0-9]' "$WORK/before" | sort -u | wc -l)" -eq 3
created() { nctl "$1" stats | awk '/^worker/ { for (i = 2; i < NF; i++) if ($i == "sessions_created") s += $(i + 1) } END { print s + 0 }'; }
check "  node 1 made their sessions ($(created 1)), node 2 none ($(created 2))" \
    test "$(created 1)" -ge 30 -a "$(created 2)" -eq 0

section "keep-alive connections through the master are synchronised to the standby"
# One HTTP/1.1 connection per mode, a request every half second, never
# reopened: an ERROR line means the switch broke it.
STOP="$WORK/stop-keepalive"
declare -A KA_PIDS
CONNS=(dnat both dsr)
for conn in "dnat $VIP 80" "both $VIP 8081" "dsr $DSR_VIP 80"; do
    read -r name addr port <<<"$conn"
    client python3 "$HERE/tests/lab/keepalive.py" "$addr" "$port" 0.5 240 "$STOP" \
        >"$WORK/ka-$name" 2>&1 &
    KA_PIDS[$name]=$!
done
sleep 3
installed() { # installed N: peers' sessions node N installed
    nctl "$1" ha --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["session_sync"]["workers"]["installed"])'
}
member_of() { awk '$3 ~ /^server=/ { print $3; exit }' "$WORK/ka-$1"; }
check "the connections answered ($(member_of dnat) for Dest-NAT, $(member_of both) for Both-NAT, $(member_of dsr) for L2-DSR)" \
    test -n "$(member_of dnat)" -a -n "$(member_of both)" -a -n "$(member_of dsr)"
check "node 2 installed node 1's sessions ($(installed 2), at least the 3 open connections)" \
    test "$(installed 2)" -ge 3
check "sluicectl ha on node 2 shows the peer and what it received ($(nctl 2 ha | grep -m1 '^peer' | cut -c1-90)...)" \
    bash -c "$SLUICECTL --socket $LAB_DIR/n2.sock ha | grep -q '^peer 10.20.0.3 node 1: received [1-9]'"
spoof() { # spoof FROM_NS SRC_IP: a well-formed, unkeyed bulk request to node 2's sync port
    ip netns exec "$1" /usr/bin/python3 -c "
from scapy.all import IP, UDP, Raw, send
send(IP(src='$2', dst='10.20.0.4')/UDP(sport=8848, dport=8848)/Raw(b'SLSY\x01\x02\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00'), verbose=0)"
}
sync_json() { nctl 2 ha --json | python3 -c "import json,sys; s=json.load(sys.stdin)['session_sync']; print($1)"; }
before_np=$(sync_json 's["not_peer_dropped"]')
before_un=$(sync_json 's["peers"][0]["unauthenticated"]')
spoof "${LAB}-m1" 10.20.0.11
spoof "${LAB}-m1" 10.20.0.3
sleep 1
check "a sync datagram from a non-peer (10.20.0.11) is dropped and counted ($before_np -> $(sync_json 's["not_peer_dropped"]'))" \
    test "$(sync_json 's["not_peer_dropped"]')" -gt "$before_np"
check "  one from the peer's address without the key is dropped as unauthenticated ($before_un -> $(sync_json 's["peers"][0]["unauthenticated"]'))" \
    test "$(sync_json 's["peers"][0]["unauthenticated"]')" -gt "$before_un"

section "the master dies: node 2 takes the addresses and the connections over"
client bash -c "end=\$((\$(date +%s%N) + 15000000000)); while [ \$(date +%s%N) -lt \$end ]; do
    if curl -s -m 1 -o /dev/null http://$VIP/; then date +%s%N; fi; sleep 0.1; done" >"$WORK/loop" &
loop=$!
sleep 2
kill_node() { # every process of node N (keepalived forks its VRRP child), at once
    ip netns pids "$(node_ns "$1")" | xargs -r kill -KILL
    wait "${SLUICE_PIDS[$1]}" "${KEEPALIVED_PIDS[$1]}" 2>/dev/null
    SLUICE_PIDS[$1]=""
    KEEPALIVED_PIDS[$1]=""
}
killed_at=$(date +%s.%N)
kill_node 1
wait "$loop"
gap=$(awk 'NR > 1 { g = ($1 - p) / 1e9; if (g > m) m = g } { p = $1 } END { printf "%.1f", m }' "$WORK/loop")
answered=$(wc -l <"$WORK/loop")
check "node 2's kernel interface holds $VIP" holds 2
check "  its dataplane owns it ($(grep -m1 "ha: owns $VIP" "$WORK/n2.out"))" owns_logged 2
check "the request loop went on: $answered answered, longest gap ${gap} s (under 5)" \
    awk -v g="$gap" 'BEGIN { exit !(g < 5) }'
client bash -c "for i in \$(seq 12); do curl -s -m 3 http://$VIP/ || echo FAILED; done" >"$WORK/after"
check "12 new requests answered through node 2 ($(grep -c '^server=' "$WORK/after"))" \
    test "$(grep -c '^server=' "$WORK/after")" -eq 12
check "  members still see the client" test "$(grep -vc 'client=198.51.100.2$' "$WORK/after")" -eq 0
# The keep-alive connections: answered after the kill, by the same member.
answered_after() { awk -v t="$killed_at" '$1 > t && $3 ~ /^server=/' "$WORK/ka-$1" | wc -l; }
same_member() { # same_member CONN: every answer from one member, no error
    ! grep -q ERROR "$WORK/ka-$1" && test "$(awk '$3 ~ /^server=/ { print $3 }' "$WORK/ka-$1" | sort -u | wc -l)" -eq 1
}
for conn in "${CONNS[@]}"; do
    check "the $conn keep-alive connection answers again after the failover ($(answered_after $conn) answers since the kill)" \
        test "$(answered_after $conn)" -ge 3
    check "  from the same member, never broken ($(awk '$3 ~ /^server=/ { print $3 }' "$WORK/ka-$conn" | sort | uniq -c | xargs))" \
        same_member "$conn"
done
resets() { nctl 2 stats | awk '/^worker/ { for (i = 2; i < NF; i++) if ($i == "no_session") s += $(i + 1) } END { print s + 0 }'; }
check "node 2 found a session for every packet of them (no_session drops: $(resets))" test "$(resets)" -eq 0

section "the killed node restarts, bulk-syncs from the survivor and takes its addresses back"
start_node 1 150
ready=0
for _ in $(seq 100); do
    nctl 1 ha ready >/dev/null 2>&1 && ready=1 && break
    sleep 0.1
done
bulk_line() { grep -m1 "bulk sync from $2 done" "$WORK/n$1.out"; }
check "node 1 reports ready after its bulk sync ($(bulk_line 1 10.20.0.4))" test "$ready" = 1 -a -n "$(bulk_line 1 10.20.0.4)"
check "  which brought the open connections" \
    awk '{ for (i = 1; i < NF; i++) if ($i == "done:") exit !($(i + 1) >= 3) }' <<<"$(bulk_line 1 10.20.0.4)"
back=0
for _ in $(seq 100); do
    holds 1 && back=1 && break
    sleep 0.1
done
check "keepalived made node 1 master again (it has the higher priority)" test "$back" = 1
sleep 4
for conn in "${CONNS[@]}"; do
    check "the $conn connection goes on through node 1, same member" same_member "$conn"
done

section "a rolling restart loses no connection"
# 1. Restart the standby (node 2) and wait until it is ready.
marker=$(date +%s.%N)
kill_node 2
start_node 2 100
ready=0
for _ in $(seq 100); do
    nctl 2 ha ready >/dev/null 2>&1 && ready=1 && break
    sleep 0.1
done
check "the restarted standby bulk-synced and is ready ($(bulk_line 2 10.20.0.3))" test "$ready" = 1 -a -n "$(bulk_line 2 10.20.0.3)"
# 2. Stop keepalived on the active: the addresses move to node 2.
kill -TERM "${KEEPALIVED_PIDS[1]}"
wait "${KEEPALIVED_PIDS[1]}" 2>/dev/null
KEEPALIVED_PIDS[1]=""
moved=0
for _ in $(seq 100); do
    holds 2 && moved=1 && break
    sleep 0.1
done
check "keepalived stopped on node 1: node 2 holds $VIP" test "$moved" = 1
sleep 3
# 3. Restart the old active; it syncs from node 2 and takes over again.
kill_node 1
start_node 1 150
back=0
for _ in $(seq 150); do
    holds 1 && back=1 && break
    sleep 0.1
done
check "the old active restarted, synced and is master again" test "$back" = 1
sleep 4
touch "$STOP"
for conn in "${CONNS[@]}"; do
    wait "${KA_PIDS[$conn]}"
    rc=$?
    total=$(awk '$3 ~ /^server=/' "$WORK/ka-$conn" | wc -l)
    check "the $conn connection survived the whole rolling restart: $total answers, exit $rc, one member" \
        bash -c "test $rc -eq 0 && test $(awk -v t="$marker" '$1 > t && $3 ~ /^server=/' "$WORK/ka-$conn" | wc -l) -ge 5" 
    check "  same member throughout" same_member "$conn"
done
finish
