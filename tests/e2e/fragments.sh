#!/usr/bin/env bash
# IP fragments through the switch: a real DNS server (dnsmasq) on each of
# two members answers a 3 KB TXT record, too big for one frame, through a
# UDP virtual server in Dest-NAT and in Both-NAT; `dig +bufsize=4096` from
# the client gets it whole, 6 times out of 6. The members' kernels fragment
# the answers; the switch follows each datagram's first fragment with the
# others. Over IPv4 and over IPv6 (fragment headers). 2 workers.
#
# The ports are DPDK `net_tap` devices moved into the lab's namespaces, not
# the usual veth + `net_af_packet`: af_packet's fanout reassembles IP
# fragments before DPDK sees them (PACKET_FANOUT_FLAG_DEFRAG), so the
# switch would never see a fragment there. A NIC does not reassemble.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v dnsmasq >/dev/null || apt-get install -y -qq dnsmasq-base >/dev/null 2>&1
command -v dig >/dev/null || apt-get install -y -qq bind9-dnsutils >/dev/null 2>&1

P=${LAB}f             # namespace and interface prefix of this test
VIP=198.51.100.10
VIP_BOTH=198.51.100.11
VIP6=2001:db8:1::10
VIP6_BOTH=2001:db8:1::11

ns() { ip netns exec "$P-$1" "${@:2}"; }
frag_cleanup() {
    for i in 1 2; do
        [ -f "$WORK/dnsmasq.m$i.pid" ] && kill "$(cat "$WORK/dnsmasq.m$i.pid")" 2>/dev/null
    done
    stop_sluice >/dev/null 2>&1
    for n in client lan m1 m2; do ip netns del "$P-$n" 2>/dev/null; done
}
trap 'frag_cleanup; cleanup' EXIT
frag_cleanup

# The record: 12 strings of 250 characters, 3,000 bytes of text.
TXT=$(python3 -c "print(','.join(('s%02d' % i) * 83 + 's' for i in range(1, 13)))")

cat >"$WORK/frag.toml" <<TOML
[dataplane]
workers = 2
eal_args = ["--no-huge", "-m", "512", "--log-level=lib.eal:warning", "--log-level=pmd.net.tap:error"]
sessions_per_worker = 65536
poll = "adaptive"

[control]
socket = "$LAB_DIR/sluice.sock"

[[interface]]
name = "ext"
device = "net_tap0,iface=$P-ext"
addresses = ["198.51.100.1/24", "2001:db8:1::1/64"]
kernel = false

[[interface]]
name = "int"
device = "net_tap1,iface=$P-int"
addresses = ["10.20.0.1/24", "fd00:20::1/64"]
kernel = false

[pool.dns]
health_check = "none"
members = [ { address = "10.20.0.11:53" }, { address = "10.20.0.12:53" } ]

[[virtual_server]]
name = "dns"
address = "$VIP:53"
protocol = "udp"
pool = "dns"
forwarding = "dest_nat"

[[virtual_server]]
name = "dns-both"
address = "$VIP_BOTH:53"
protocol = "udp"
pool = "dns"
forwarding = "both_nat"
snat_addresses = ["10.20.0.100"]

[pool.dns6]
health_check = "none"
members = [ { address = "[fd00:20::11]:53" }, { address = "[fd00:20::12]:53" } ]

[[virtual_server]]
name = "dns6"
address = "[$VIP6]:53"
protocol = "udp"
pool = "dns6"
forwarding = "dest_nat"

[[virtual_server]]
name = "dns6-both"
address = "[$VIP6_BOTH]:53"
protocol = "udp"
pool = "dns6"
forwarding = "both_nat"
snat_addresses = ["fd00:20::100"]
TOML

section "a 3 KB DNS answer through UDP virtual servers, Dest-NAT and Both-NAT, IPv4 and IPv6, 2 workers"
mkdir -p "$LAB_DIR"
if ! start_sluice "$WORK/frag.toml"; then bad "sluice starts"; finish; exit; fi
# The taps sluice made become the client's link and the members' LAN's
# uplink; their kernel ends need MACs of their own (the tap PMD gives them
# the port's).
for n in client lan m1 m2; do ip netns add "$P-$n"; ns "$n" ip link set lo up; done
ip link set "$P-ext" netns "$P-client"
ns client ip link set "$P-ext" address 02:00:00:fe:00:02
ns client ip addr add 198.51.100.2/24 dev "$P-ext"
ns client ip link set "$P-ext" up
ns client ip route add default via 198.51.100.1
ns client ip addr add 2001:db8:1::2/64 dev "$P-ext" nodad
ns client ip -6 route add default via 2001:db8:1::1
ip link set "$P-int" netns "$P-lan"
ns lan ip link set "$P-int" address 02:00:00:fe:01:fe
ns lan ip link add br0 type bridge
ns lan ip link set br0 up
ns lan ip link set "$P-int" master br0 up
for i in 1 2; do
    ns lan ip link add "m$i" type veth peer name eth0 netns "$P-m$i"
    ns lan ip link set "m$i" master br0 up
    ns "m$i" ip addr add "10.20.0.1$i/24" dev eth0
    ns "m$i" ip link set eth0 up
    ns "m$i" ip route add default via 10.20.0.1
    ns "m$i" ip addr add "fd00:20::1$i/64" dev eth0 nodad
    ns "m$i" ip -6 route add default via fd00:20::1
    ns "m$i" dnsmasq --port=53 --listen-address="10.20.0.1$i,fd00:20::1$i" --bind-interfaces --no-resolv --no-hosts \
        --pid-file="$WORK/dnsmasq.m$i.pid" --user=root --edns-packet-max=4096 \
        --txt-record="big.example,$TXT" 2>"$WORK/dnsmasq.m$i.err"
done
sleep 1
check "the client reaches the switch" ns client ping -c 2 -W 2 198.51.100.1
check "  and over IPv6" ns client ping -6 -c 2 -W 2 2001:db8:1::1
for vip in $VIP $VIP_BOTH $VIP6 $VIP6_BOTH; do
    whole=0
    for q in $(seq 6); do
        out=$(ns client dig +bufsize=4096 +ignore +tries=1 +time=3 @"$vip" TXT big.example 2>&1)
        got=$(grep -o 's[0-9][0-9]s' <<<"$out" | sort -u | wc -l)
        size=$(grep -o 'MSG SIZE  rcvd: [0-9]*' <<<"$out" | awk '{print $4}')
        [ "$got" -eq 12 ] && [ "${size:-0}" -gt 3000 ] && whole=$((whole + 1))
    done
    check "$vip: 6 of 6 answers of over 3,000 bytes came whole over UDP ($whole, last ${size:-?} bytes)" test "$whole" -eq 6
done
frags=$(counter fragments)
check "the switch followed the answers' later fragments ($frags)" test "$frags" -ge 48
check "  none waited in vain ($(drops fragment_unmatched) unmatched, $(drops fragment_hold_full) refused)" \
    test "$(drops fragment_unmatched)" -eq 0 -a "$(drops fragment_hold_full)" -eq 0
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
finish
