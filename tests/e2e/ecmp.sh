#!/usr/bin/env bash
# Scale-out behind ECMP (issue 18): two Sluice nodes, each in a network
# namespace of its own with BIRD 2 running the packaged example
# (packaging/bird.conf: kernel table 100 learned, exported by BGP with next
# hop self, hold time 3 s) on its kernel interface sluice-ext; a router
# namespace runs BIRD too, peers with both and installs one ECMP route per
# VIP (`merge paths on`, fib_multipath_hash_policy=1); the client sits
# behind the router. 1 worker per node, `[announce] table = 100`.
#
#   [client] 203.0.113.2 -- [router] 203.0.113.1 / 198.51.100.254 (br1) / 10.20.0.254 (br0)
#   br1 (ext): node 1 198.51.100.1, node 2 198.51.100.2, router
#   br0 (int): node 1 10.20.0.1, node 2 10.20.0.2, router, members 10.20.0.11-13
#
# Two services, both `maglev`: 198.51.100.10:80 L2-DSR (the members hold the
# VIP on lo and send what they answer from it to the router: policy
# routing by source) and 198.51.100.11:80 Dest-NAT to :8080 (the members'
# default gateway is node 1 alone, so node 1 sees the replies of node 2's
# sessions and translates them without a session).
#
# Checked: the router learns both VIPs from both nodes; new connections
# spread over both nodes; every member down on node 1 (its health checks
# blocked there) withdraws node 1's route of that VIP only, and it returns;
# keep-alive connections through L2-DSR and Dest-NAT keep their member when
# node 1 is drained (the flows move to node 2, which resumes them on the
# member Maglev picks) and when it resumes; while node 1 is drained, new
# Dest-NAT connections go through node 2 and node 1 translates the replies;
# node 1 dies (sluice and BIRD SIGKILLed): the router's hold time withdraws
# it and node 2 picks up the L2-DSR connections it had; node 1 restarts,
# announces again and picks its connections up in turn.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v bird >/dev/null || apt-get install -y -qq bird2 >/dev/null 2>&1
command -v vtysh >/dev/null || apt-get install -y -qq frr >/dev/null 2>&1
# Debian starts the packaged daemons: this test runs its own, per namespace
# (and only checks the FRR example).
systemctl disable --now bird >/dev/null 2>&1 || true
systemctl disable --now frr >/dev/null 2>&1 || true

VIP=198.51.100.10
NAT_VIP=198.51.100.11
VIP6=2001:db8:1::10
ROUTER=198.51.100.254
CLIENT=203.0.113.2
BOTH="198.51.100.1 198.51.100.2"
NODES=(1 2)
declare -A SLUICE_PIDS BIRD_PIDS KA_PIDS
ROUTER_BIRD=""

nctl() { local n=$1; shift; "$SLUICECTL" --socket "$LAB_DIR/n$n.sock" "$@"; }
in_router() { ip netns exec "${LAB}-router" "$@"; }
member() { local i=$1; shift; ip netns exec "${LAB}-m$i" "$@"; }

ecmp_cleanup() {
    for pid in "${KA_PIDS[@]}" "$ROUTER_BIRD"; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    done
    for n in "${NODES[@]}"; do
        node_down "$n"
    done
    wait 2>/dev/null
}
ecmp_logs() { # what the nodes and the router said, when a check failed
    [ "$FAIL" -gt 0 ] || return 0
    echo "--- router: ip route"
    in_router ip -4 route 2>&1
    [ -S "$WORK/bird-router.ctl" ] && birdc -s "$WORK/bird-router.ctl" show protocols 2>&1
    for f in "$WORK"/n?.out "$WORK"/bird-*.log "$WORK"/ka-*; do
        [ -e "$f" ] && { echo "--- $f"; tail -25 "$f"; }
    done
}
trap 'ecmp_logs; ecmp_cleanup; cleanup' EXIT

# The lab's client, members (VIP on lo) and router (--dsr), rearranged: the
# client reaches the VIPs only through the router, which gets a leg on a
# second bridge (the nodes' external link).
"$HERE/scripts/lab.sh" up --dsr --ipv6 >/dev/null
ip link del "${LAB}-ext"                    # the client's direct leg (c0) goes with it
client ip route replace default via 203.0.113.1
# Across veths a packet keeps the hash its TCP socket gave it, and the
# router's ECMP uses that hash (policy 1 takes an L4 hash it finds) instead
# of the ports; the socket draws a new one after a retransmission timeout,
# which would move the flow to a random node. Keep it for the connection's
# life, as a 5-tuple hash on a real router keeps a flow on its path.
client sysctl -qw net.core.txrehash=0
in_router ip route del 198.51.100.0/24 via "$CLIENT"
lan ip link add br1 type bridge
lan ip link set br1 up
lan ip link add r1 type veth peer name eth1 netns "${LAB}-router"
lan ip link set r1 master br1 up
in_router ip addr add "$ROUTER/24" dev eth1
in_router ip link set eth1 up
lan ethtool -K r1 tx off rx off tso off gso off gro off >/dev/null 2>&1
in_router ethtool -K eth1 tx off rx off tso off gso off gro off >/dev/null 2>&1
# Flows hash on addresses and ports; L2-DSR replies arrive on the members' leg.
in_router sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0
for i in 1 2 3; do
    # Dest-NAT replies (from the member's address) to node 1; what the
    # member answers from the L2-DSR VIP straight to the router.
    member "$i" ip route replace default via 10.20.0.1
    member "$i" ip rule add from "$VIP" lookup 200 priority 100
    member "$i" ip route add default via 10.20.0.254 table 200
done
for n in "${NODES[@]}"; do
    node_ports_up "$n"
done

node_config() { # node_config N
    local n=$1 i
    "$HERE/scripts/lab.sh" config-base 1 "$LAB_DIR/n$n.sock" \
        | sed "s|iface=${LAB}-ext|iface=n${n}e|; s|iface=${LAB}-int|iface=n${n}i|" \
        | sed "s|\"198.51.100.1/24\"|\"198.51.100.$n/24\"|; s|\"10.20.0.1/24\"|\"10.20.0.$n/24\"|" \
        | sed "s|\"2001:db8:1::1/64\"|\"2001:db8:1::$n/64\"|; s|\"fd00:20::1/64\"|\"fd00:20::$n/64\"|" \
        | sed "s|^poll = .*|&\nfile_prefix = \"${LAB}-n$n\"|"
    cat <<TOML

[[route]]
destination = "0.0.0.0/0"
gateway = "$ROUTER"

[health_check.fast]
kind = "tcp"
interval = "500ms"
timeout = "400ms"
fall = 2
rise = 2
TOML
    for pool in dsr:80 nat:8080; do
        printf '\n[pool.%s]\nmethod = "maglev"\nhealth_check = "fast"\nmembers = [\n' "${pool%:*}"
        for i in 1 2 3; do printf '  { address = "10.20.0.1%s:%s" },\n' "$i" "${pool#*:}"; done
        printf ']\n'
    done
    printf '\n[pool.nat6]\nmethod = "maglev"\nhealth_check = "fast"\nmembers = [\n'
    for i in 1 2 3; do printf '  { address = "[fd00:20::1%s]:8080" },\n' "$i"; done
    printf ']\n'
    cat <<TOML

[[virtual_server]]
name = "dsr"
address = "$VIP:80"
protocol = "tcp"
pool = "dsr"
forwarding = "l2_dsr"

[[virtual_server]]
name = "nat"
address = "$NAT_VIP:80"
protocol = "tcp"
pool = "nat"
forwarding = "dest_nat"

[[virtual_server]]
name = "nat6"
address = "[$VIP6]:80"
protocol = "tcp"
pool = "nat6"
forwarding = "dest_nat"

[announce]
table = 100
peers = ["$ROUTER"]
TOML
}

router_bird_config() {
    cat <<CONF
log stderr all;
router id $ROUTER;

protocol device {
}

# One route per VIP, with a next hop per node that announces it.
protocol kernel {
    merge paths on;
    ipv4 {
        import none;
        export all;
    };
}

template bgp node {
    local $ROUTER as 65000;
    hold time 3;
    keepalive time 1;
    connect delay time 1;
    connect retry time 2;
    error wait time 1, 5;
    ipv4 {
        import all;
        export none;
    };
}

protocol bgp n1 from node {
    neighbor 198.51.100.1 as 65001;
}

protocol bgp n2 from node {
    neighbor 198.51.100.2 as 65001;
}
CONF
}

start_node() { # start_node N: sluice, then BIRD with the packaged example
    local n=$1
    node_config "$n" >"$WORK/n$n.toml"
    node_sluice_up "$n"
    sed -e "s|^log syslog all;|log stderr all;|" -e "s|^router id 198\.51\.100\.1;|router id 198.51.100.$n;|" \
        "$HERE/packaging/bird.conf" >"$WORK/bird-n$n.conf"
    rm -f "$WORK/bird-n$n.ctl"
    ip netns exec "$(node_ns "$n")" bird -f -c "$WORK/bird-n$n.conf" -s "$WORK/bird-n$n.ctl" \
        -P "$WORK/bird-n$n.pid" >"$WORK/bird-n$n.log" 2>&1 &
    BIRD_PIDS[$n]=$!
}

kill_node() { # every process of node N, at once
    ip netns pids "$(node_ns "$1")" | xargs -r kill -KILL
    wait "${SLUICE_PIDS[$1]}" "${BIRD_PIDS[$1]}" 2>/dev/null
    SLUICE_PIDS[$1]=""
    BIRD_PIDS[$1]=""
}

# hops VIP: the router's next hops for VIP/32, sorted ("" when it has no route).
hops() { in_router ip -4 route show exact "$1/32" | grep -o 'via [0-9.]*' | awk '{ print $2 }' | sort | xargs; }
hops_are() { test "$(hops "$1")" = "$2"; }
# (grep -q reads what a command printed, not its pipe: with pipefail, a
# writer cut off by grep's early exit would fail the test.)
established() { grep -q Established <<<"$(birdc -s "$WORK/bird-router.ctl" show protocols "$1")"; }
not_established() { ! established "$1"; }
# kernel_routes N: node N's routes in table 100 of proto sluice, "VIP dev DEV" each.
kernel_routes() { in_node "$1" ip -4 route show table 100 proto 249 2>/dev/null | awk '{ print $1, $2, $3 }'; }
routed() { grep -qx "$2 dev sluice-ext" <<<"$(kernel_routes "$1")"; }
unrouted() { ! grep -q "^$2 " <<<"$(kernel_routes "$1")"; }
routes_both() { routed "$1" "$VIP" && routed "$1" "$NAT_VIP"; }
no_routes() { test -z "$(kernel_routes "$1")"; }
# wstat N NAME: node N's worker counter NAME, summed over its workers.
wstat() {
    nctl "$1" --json stats 2>/dev/null | python3 -c '
import json, sys
print(sum(w.get(sys.argv[1], 0) for w in json.load(sys.stdin)["workers"]))' "$2" 2>/dev/null || echo 0
}
# announce N EXPR: EXPR over node N's `sluicectl announce --json` (as a).
announce() {
    nctl "$1" --json announce 2>/dev/null | python3 -c "import json, sys; a = json.load(sys.stdin); print($2)" 2>/dev/null
}
ANNOUNCED='" ".join(sorted(r["vip"] for r in a["routes"] if r["announced"]))'
status_line() { nctl "$1" status 2>/dev/null | grep -m1 '^announce:'; }
says() { grep -q "^announce: $2" <<<"$(status_line "$1")"; }
# states N POOL: the distinct states node N shows for POOL's members.
states() { nctl "$1" members 2>/dev/null | awk -v p="$2" 'NR > 1 && $2 == p { print $5 }' | sort -u | xargs; }
states_are() { test "$(states "$1" "$2")" = "$3"; }
answers() { grep -c '^server=' "$1"; }
requests() { # requests HOST N OUT: N requests, each on a new connection
    client bash -c "for i in \$(seq $2); do curl -s -m 3 http://$1/ || echo FAILED; done" >"$3"
}

# Keep-alive connections (tests/lab/keepalive.py): one request every half
# second, never reopened; "<time> <port> server=mN" lines, or ERROR.
STOP_NAT="$WORK/stop-nat"
STOP="$WORK/stop-all"
open_ka() { # open_ka NAME HOST STOPFILE: waits (5 s) for the first answer
    client python3 "$HERE/tests/lab/keepalive.py" "$2" 80 0.5 600 "$3" >"$WORK/ka-$1" 2>&1 &
    KA_PIDS[$1]=$!
    for _ in $(seq 50); do grep -q ' server=' "$WORK/ka-$1" && break; sleep 0.1; done
}
ka_port() { awk '$3 ~ /^server=/ { print $2; exit }' "$WORK/ka-$1"; }
on_node() { # on_node N NAME: whether node N has a session of connection NAME
    local port; port=$(ka_port "$2")
    [ -n "$port" ] && grep -q "^$CLIENT:$port " <<<"$(nctl "$1" sessions --client "$CLIENT" --limit all 2>/dev/null)"
}
answered_since() { awk -v t="$2" '$1 > t && $3 ~ /^server=/' "$WORK/ka-$1" | wc -l; }
members_of() { awk '$3 ~ /^server=/ { print $3 }' "$WORK/ka-$1" | sort | uniq -c | xargs; }
same_member() { # every answer from one member, no error
    ! grep -q ERROR "$WORK/ka-$1" && test "$(awk '$3 ~ /^server=/ { print $3 }' "$WORK/ka-$1" | sort -u | wc -l)" -eq 1
}
check_ka() { # check_ka SINCE WHAT NAME...: each connection answered since SINCE, by one member
    local since=$1 what=$2 k; shift 2
    for k in "$@"; do
        check "$k ($(ka_where "$k")) answers $what ($(answered_since "$k" "$since") since)" \
            test "$(answered_since "$k" "$since")" -ge 3
        check "  from the same member, never broken ($(members_of "$k"))" same_member "$k"
    done
}
declare -A KA_NODE
ka_where() { echo "opened on node ${KA_NODE[$1]:-?}"; }
stop_ka() { # stop_ka NAME...: waits (35 s at most) for each to end; checks it ended well
    local k pid rc
    for k in "$@"; do
        pid=${KA_PIDS[$k]}
        for _ in $(seq 350); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid"; rc=$?
        unset "KA_PIDS[$k]"
        check "$k ended cleanly (exit $rc, $(awk '$3 ~ /^server=/' "$WORK/ka-$k" | wc -l) answers)" test "$rc" -eq 0
    done
}

section "two nodes announce their VIPs by BGP; the router learns both"
check "packaging/bird.conf passes BIRD's own check$(bird -p -c "$HERE/packaging/bird.conf" 2>&1 | head -1 | sed 's/^./ (&/; s/.$/&)/')" \
    bird -p -c "$HERE/packaging/bird.conf"
check "packaging/frr.conf passes FRR's own check (vtysh --dryrun)$(vtysh --dryrun -f "$HERE/packaging/frr.conf" 2>&1 | head -1 | sed 's/^./ (&/; s/.$/&)/')" \
    vtysh --dryrun -f "$HERE/packaging/frr.conf"
router_bird_config >"$WORK/bird-router.conf"
ip netns exec "${LAB}-router" bird -f -c "$WORK/bird-router.conf" -s "$WORK/bird-router.ctl" \
    -P "$WORK/bird-router.pid" >"$WORK/bird-router.log" 2>&1 &
ROUTER_BIRD=$!
start_node 1
start_node 2
both_run() { nctl 1 status && nctl 2 status; }
if ! both_run >/dev/null 2>&1; then
    bad "both nodes run"
    finish
    exit
fi
ok "both nodes run"
for n in "${NODES[@]}"; do
    wait_for 10 states_are "$n" dsr up
    wait_for 5 states_are "$n" nat up
    check "node $n sees every member up ($(states "$n" dsr) / $(states "$n" nat))" \
        test "$(states "$n" dsr) $(states "$n" nat)" = "up up"
    wait_for 5 routes_both "$n"
    check "node $n's table 100 holds a route per VIP, proto sluice, on sluice-ext ($(kernel_routes "$n" | awk '{ print $1 }' | xargs))" \
        routes_both "$n"
done
check "sluicectl announce --json on node 1: table 100, not draining, every VIP announced ($(announce 1 "$ANNOUNCED"))" \
    test "$(announce 1 'a["table"], a["draining"]')" = "100 False" -a "$(announce 1 "$ANNOUNCED")" = "$VIP $NAT_VIP $VIP6"
routed6() { grep -Eq "^$VIP6 dev sluice-ext proto (sluice|249)" <<<"$(in_node "$1" ip -6 route show table 100)"; }
for n in "${NODES[@]}"; do
    wait_for 10 routed6 "$n"
    check "node $n's table 100 holds the IPv6 VIP's /128 ($(in_node "$n" ip -6 route show table 100 proto 249 | head -1))" routed6 "$n"
done
check "sluicectl status says so ($(status_line 1))" says 1 announcing
wait_for 30 established n1
wait_for 30 established n2
both_established() { established n1 && established n2; }
check "the router's BGP sessions with both nodes are established (over sluice-ext, through the dataplanes)" \
    both_established
wait_for 15 hops_are "$VIP" "$BOTH"
check "the router routes $VIP over both nodes ($(hops "$VIP"))" hops_are "$VIP" "$BOTH"
wait_for 5 hops_are "$NAT_VIP" "$BOTH"
check "  and $NAT_VIP ($(hops "$NAT_VIP"))" hops_are "$NAT_VIP" "$BOTH"

section "new connections spread over both nodes"
c1=$(wstat 1 sessions_created)
c2=$(wstat 2 sessions_created)
requests "$VIP" 40 "$WORK/spread"
d1=$(($(wstat 1 sessions_created) - c1))
d2=$(($(wstat 2 sessions_created) - c2))
check "40 requests to $VIP (L2-DSR) answered ($(answers "$WORK/spread"))" test "$(answers "$WORK/spread")" -eq 40
check "  node 1 made $d1 of the sessions, node 2 $d2: both some, 40 in all" test "$d1" -gt 0 -a "$d2" -gt 0 -a $((d1 + d2)) -ge 40
check "  members see the client ($(grep -o 'client=[0-9.]*' "$WORK/spread" | sort -u | xargs))" \
    test "$(grep -vc "client=$CLIENT\$" "$WORK/spread")" -eq 0

section "every member down on node 1 withdraws node 1's route of that VIP"
# Node 1's health checks of port 80 (pool dsr) fail; node 2's still pass.
in_node 1 nft -f - <<NFT
table inet blockchecks {
    chain out { type filter hook output priority 0; policy accept; ip daddr 10.20.0.0/24 tcp dport 80 drop; }
}
NFT
wait_for 10 states_are 1 dsr down
check "node 1 marks the dsr members down ($(states 1 dsr)); node 2 keeps them up ($(states 2 dsr))" \
    test "$(states 1 dsr) $(states 2 dsr)" = "down up"
wait_for 1 unrouted 1 "$VIP"
check "node 1 removed $VIP from table 100 (seen after ${WAITED} s)" unrouted 1 "$VIP"
check "  and keeps $NAT_VIP (its members are up)" routed 1 "$NAT_VIP"
check "  sluicectl announce --json says why ($(announce 1 '[r["why"] for r in a["routes"] if r["vip"] == "'"$VIP"'"][0]'))" \
    test "$(announce 1 "$ANNOUNCED")" = "$NAT_VIP $VIP6"
wait_for 5 hops_are "$VIP" 198.51.100.2
check "the router routes $VIP through node 2 alone ($(hops "$VIP"), after ${WAITED} s)" hops_are "$VIP" 198.51.100.2
check "  and $NAT_VIP still through both ($(hops "$NAT_VIP"))" hops_are "$NAT_VIP" "$BOTH"
requests "$VIP" 10 "$WORK/withdrawn"
check "10 requests to $VIP answered meanwhile ($(answers "$WORK/withdrawn"))" test "$(answers "$WORK/withdrawn")" -eq 10
in_node 1 nft delete table inet blockchecks
wait_for 10 states_are 1 dsr up
check "node 1's checks pass again ($(states 1 dsr))" states_are 1 dsr up
wait_for 2 routed 1 "$VIP"
check "  it puts $VIP back into table 100" routed 1 "$VIP"
wait_for 5 hops_are "$VIP" "$BOTH"
check "  the router routes it over both nodes again ($(hops "$VIP"), after ${WAITED} s)" hops_are "$VIP" "$BOTH"

section "keep-alive connections keep their member while node 1 drains and resumes"
# Open L2-DSR connections until both nodes have at least one, and Dest-NAT
# ones until node 1 has one (ECMP decides; bounded tries).
on1=()
on2=()
# 16 tries: two nodes, so all on one node by chance once in 32,768 runs.
for i in $(seq 16); do
    open_ka "dsr$i" "$VIP" "$STOP"
    if on_node 1 "dsr$i"; then on1+=("dsr$i"); KA_NODE[dsr$i]=1
    elif on_node 2 "dsr$i"; then on2+=("dsr$i"); KA_NODE[dsr$i]=2; fi
    [ ${#on1[@]} -gt 0 ] && [ ${#on2[@]} -gt 0 ] && break
done
check "L2-DSR keep-alive connections on both nodes (node 1: ${on1[*]:-none}; node 2: ${on2[*]:-none})" \
    test ${#on1[@]} -gt 0 -a ${#on2[@]} -gt 0
nat=()
nat_on1=0
for i in $(seq 8); do
    open_ka "nat$i" "$NAT_VIP" "$STOP_NAT"
    nat+=("nat$i")
    if on_node 1 "nat$i"; then KA_NODE[nat$i]=1; nat_on1=$((nat_on1 + 1)); break; fi
    on_node 2 "nat$i" && KA_NODE[nat$i]=2
done
check "a Dest-NAT keep-alive connection on node 1 (${nat[*]}: $nat_on1 on node 1)" test "$nat_on1" -gt 0
dsr=("${on1[@]}" "${on2[@]}")
for k in $(seq 8); do  # the connections not placed on either node (should be none)
    [ -n "${KA_PIDS[dsr$k]:-}" ] && [ -z "${KA_NODE[dsr$k]:-}" ] && dsr+=("dsr$k")
done

resumed2=$(wstat 2 sessions_resumed)
created1=$(wstat 1 sessions_created)
drained_at=$(date +%s.%N)
out=$(nctl 1 drain 2>&1)
rc=$?
check "sluicectl drain on node 1 ($(head -1 <<<"$out"))" test "$rc" -eq 0
wait_for 1 no_routes 1
check "node 1's table 100 is empty (after ${WAITED} s)" no_routes 1
check "  sluicectl status says draining ($(status_line 1))" says 1 draining
check "  sluicectl announce --json: draining, nothing announced" \
    test "$(announce 1 'a["draining"]')" = True -a -z "$(announce 1 "$ANNOUNCED")"
wait_for 5 hops_are "$VIP" 198.51.100.2
check "the router routes $VIP through node 2 alone ($(hops "$VIP"), after ${WAITED} s)" hops_are "$VIP" 198.51.100.2
check "  and $NAT_VIP ($(hops "$NAT_VIP"))" hops_are "$NAT_VIP" 198.51.100.2
sleep 4
check_ka "$drained_at" "after the drain" "${dsr[@]}" "${nat[@]}"
moved=$((${#on1[@]} + nat_on1))
check "node 2 resumed the $moved moved connection(s) on their members (sessions_resumed +$(($(wstat 2 sessions_resumed) - resumed2)))" \
    test $(($(wstat 2 sessions_resumed) - resumed2)) -ge "$moved"

# Dest-NAT through node 2: the members answer through node 1, which has
# no session of these connections and translates the replies statelessly.
stateless1=$(wstat 1 stateless_replies)
created2=$(wstat 2 sessions_created)
requests "$NAT_VIP" 20 "$WORK/nat-drained"
check "20 new requests to $NAT_VIP (Dest-NAT) answered while node 1 drains ($(answers "$WORK/nat-drained"))" \
    test "$(answers "$WORK/nat-drained")" -eq 20
check "  the members saw the client ($(grep -o 'client=[0-9.]*' "$WORK/nat-drained" | sort -u | xargs))" \
    test "$(grep -vc "client=$CLIENT\$" "$WORK/nat-drained")" -eq 0
check "  node 2 made their sessions (+$(($(wstat 2 sessions_created) - created2))), node 1 none (+$(($(wstat 1 sessions_created) - created1)))" \
    test $(($(wstat 2 sessions_created) - created2)) -ge 20 -a $(($(wstat 1 sessions_created) - created1)) -eq 0
check "  node 1 translated the members' replies without a session (stateless_replies +$(($(wstat 1 stateless_replies) - stateless1)))" \
    test $(($(wstat 1 stateless_replies) - stateless1)) -gt 0

resumed_at=$(date +%s.%N)
out=$(nctl 1 resume 2>&1)
rc=$?
check "sluicectl resume on node 1 ($(head -1 <<<"$out"))" test "$rc" -eq 0
wait_for 1 routes_both 1
check "node 1's table 100 holds both VIPs again (after ${WAITED} s)" routes_both 1
check "  sluicectl status says announcing ($(status_line 1))" says 1 announcing
wait_for 5 hops_are "$VIP" "$BOTH"
check "the router routes $VIP over both nodes again ($(hops "$VIP"), after ${WAITED} s)" hops_are "$VIP" "$BOTH"
check "  and $NAT_VIP ($(hops "$NAT_VIP"))" hops_are "$NAT_VIP" "$BOTH"
sleep 4
check_ka "$resumed_at" "after the resume" "${dsr[@]}" "${nat[@]}"
# Node 1 is the members' gateway: the Dest-NAT connections could not
# outlive it. They end here.
touch "$STOP_NAT"
stop_ka "${nat[@]}"

section "node 1 dies: the router's hold time withdraws it, node 2 picks its connections up"
# Fresh L2-DSR connections on node 1, of which node 2 has never seen a packet.
late=()
for i in $(seq 8); do
    open_ka "late$i" "$VIP" "$STOP"
    if on_node 1 "late$i"; then late+=("late$i"); KA_NODE[late$i]=1; break; fi
    on_node 2 "late$i" && KA_NODE[late$i]=2
done
check "a new L2-DSR keep-alive connection on node 1 (${late[*]:-none})" test ${#late[@]} -gt 0
resumed2=$(wstat 2 sessions_resumed)
killed_at=$(date +%s.%N)
kill_node 1
wait_for 10 hops_are "$VIP" 198.51.100.2
check "the router routes $VIP through node 2 alone, $WAITED s after the kill (hold time 3 s)" \
    hops_are "$VIP" 198.51.100.2
check "  BGP session with node 1 down ($(birdc -s "$WORK/bird-router.ctl" show protocols n1 | awk '$1 == "n1" { print $4, $6 }'))" \
    not_established n1
sleep 5
all=("${dsr[@]}")
for i in $(seq 8); do [ -n "${KA_PIDS[late$i]:-}" ] && all+=("late$i"); done
check_ka "$killed_at" "after node 1's death" "${all[@]}"
check "node 2 resumed node 1's new connection on its member (sessions_resumed +$(($(wstat 2 sessions_resumed) - resumed2)))" \
    test $(($(wstat 2 sessions_resumed) - resumed2)) -ge ${#late[@]}
requests "$VIP" 12 "$WORK/after"
check "12 new requests to $VIP answered through node 2 ($(answers "$WORK/after"))" test "$(answers "$WORK/after")" -eq 12
check "node 2 still announces every VIP ($(announce 2 "$ANNOUNCED"))" test "$(announce 2 "$ANNOUNCED")" = "$VIP $NAT_VIP $VIP6"

section "node 1 restarts: it announces again and picks up the connections ECMP brings back"
# What a crashed run could leave in the table (its routes go with its
# kernel interface, but a route put there otherwise stays), and a route
# of someone else's, which Sluice must not touch.
STALE=198.51.100.99
FOREIGN=198.51.100.98
in_node 1 ip route add "$STALE/32" dev lo table 100 proto 249
in_node 1 ip route add "$FOREIGN/32" dev lo table 100 proto static
start_node 1
wait_for 10 routes_both 1
check "the new sluice on node 1 puts both VIPs into table 100 (after ${WAITED} s)" routes_both 1
wait_for 30 hops_are "$VIP" "$BOTH"
check "the router routes $VIP over both nodes again ($(hops "$VIP"), ${WAITED} s after the routes)" hops_are "$VIP" "$BOTH"
back_at=$(date +%s.%N)
sleep 4
check_ka "$back_at" "with node 1 back" "${all[@]}"
check "node 1 resumed those of node 1 on their members (sessions_resumed $(wstat 1 sessions_resumed), ${#on1[@]} + ${#late[@]} connection(s))" \
    test "$(wstat 1 sessions_resumed)" -ge $((${#on1[@]} + ${#late[@]}))
has_route() { grep -q "^$2 " <<<"$(in_node "$1" ip route show table 100)"; }
check "  the stale route of protocol sluice ($STALE) is gone" unrouted 1 "$STALE"
check "  the route of another protocol ($FOREIGN) is left alone" has_route 1 "$FOREIGN"
in_node 1 ip route del "$FOREIGN/32" dev lo table 100 proto static
touch "$STOP"
stop_ka "${all[@]}"

section "a reload moves the routes to another table, live"
sed -i 's/^table = 100$/table = 101/' "$WORK/n2.toml"
check "sluicectl reload on node 2 takes table = 101 ($(nctl 2 reload 2>&1 | head -1))" nctl 2 reload
in_table() { grep -q "^$3 " <<<"$(in_node "$1" ip route show table "$2" proto 249)"; }
not_in_table() { ! in_table "$@"; }
wait_for 5 in_table 2 101 "$VIP"
check "  node 2's routes are in table 101 (after $WAITED s)" in_table 2 101 "$VIP"
check "  and gone from table 100" not_in_table 2 100 "$VIP"

section "a clean exit withdraws the node's routes before its dataplane stops"
kill -TERM "${SLUICE_PIDS[2]}"
wait "${SLUICE_PIDS[2]}"
rc=$?
SLUICE_PIDS[2]=""
check "node 2 exits 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
check "  having withdrawn its routes first (its log says so)" \
    grep -q "announce: every route withdrawn from table 101" "$WORK/n2.out"
wait_for 10 hops_are "$VIP" 198.51.100.1
check "the router routes $VIP through node 1 alone ($(hops "$VIP"), after $WAITED s)" hops_are "$VIP" 198.51.100.1
finish
