#!/usr/bin/env bash
# IPv6 virtual servers in a dual-stack lab, 2 workers: curl -6 through
# Dest-NAT and Both-NAT, balanced, members seeing the client (or the SNAT
# address); ping -6 of a VIP; a 50 MB download over IPv6; an IPv6 member
# taken out by the default health check when its server stops, and back
# when it returns; IPv4 served alongside; sessions listed; an IPv6 server
# added by a reload (its new members enabled), and its connections and
# datagrams refused at once (RST, ICMPv6 port unreachable) when its only
# member is disabled; the contract's example
# configuration, with its IPv6 server, booted and serving.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v dig >/dev/null || apt-get install -y -qq bind9-dnsutils >/dev/null 2>&1

VIP6=2001:db8:1::10
BOTH6=2001:db8:1::11

section "IPv6 Dest-NAT and Both-NAT, 2 workers"
"$HERE/scripts/lab.sh" up --ipv6 >/dev/null
{
    "$HERE/scripts/lab.sh" config dest_nat 2
    cat <<TOML

[pool.web6]
members = [
  { address = "[fd00:20::11]:8080" },
  { address = "[fd00:20::12]:8080" },
  { address = "[fd00:20::13]:8080" },
]

[[virtual_server]]
name = "web6"
address = "[$VIP6]:80"
protocol = "tcp"
pool = "web6"
forwarding = "dest_nat"

[[virtual_server]]
name = "both6"
address = "[$BOTH6]:80"
protocol = "tcp"
pool = "web6"
forwarding = "both_nat"
snat_addresses = ["fd00:20::100"]
TOML
} >"$WORK/lab.toml"
if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; finish; fi
ok "sluice starts with IPv6 virtual servers"

client bash -c "for i in \$(seq 30); do curl -6 -s -m 5 http://[$VIP6]/ || echo FAILED; done" >"$WORK/answers"
check "30 requests to [$VIP6] answered" test "$(grep -c '^server=' "$WORK/answers")" -eq 30
for m in m1 m2 m3; do
    n=$(grep -c "server=$m " "$WORK/answers")
    check "round robin: $m answered 10 +- 2 (got $n)" test "$n" -ge 8 -a "$n" -le 12
done
check "members see the client 2001:db8:1::2 ($(sort -u "$WORK/answers" | head -1))" \
    test "$(grep -vc 'client=2001:db8:1::2$' "$WORK/answers")" -eq 0
client bash -c "for i in \$(seq 9); do curl -6 -s -m 5 http://[$BOTH6]/ || echo FAILED; done" >"$WORK/both"
check "9 requests through Both-NAT answered" test "$(grep -c '^server=' "$WORK/both")" -eq 9
check "members see the SNAT address fd00:20::100" \
    test "$(grep -vc 'client=fd00:20::100$' "$WORK/both")" -eq 0
check "ping -6 the VIP" client ping -6 -c 2 -i 0.2 -W 2 "$VIP6"
client curl -6 -s -m 60 -o "$WORK/big.got" "http://[$VIP6]/big"
check "50 MB download over IPv6 arrives intact" cmp -s "$WORK/big.got" "$LAB_DIR/big.bin"
v4=$(client curl -s -m 5 http://198.51.100.10/)
check "IPv4 served alongside ($v4)" grep -q '^server=' <<<"$v4"
client bash -c "exec 3<>/dev/tcp/$VIP6/80; sleep 3" &
held=$!
sleep 0.5
ctl sessions >"$WORK/sessions" 2>&1
check "sluicectl sessions lists an IPv6 session ($(grep -m1 '2001:db8:1::2' "$WORK/sessions"))" \
    grep -q "\[2001:db8:1::2\]:[0-9]* web6 \[$VIP6\]:80" "$WORK/sessions"
wait "$held" 2>/dev/null

section "an IPv6 member down and back, by the default check"
"$HERE/scripts/lab.sh" stop-member 2
down=0
for _ in $(seq 150); do
    if ctl members | grep -q "\[fd00:20::12\]:8080 .* down "; then down=1; break; fi
    sleep 0.1
done
check "[fd00:20::12]:8080 marked down by the default tcp check" test "$down" -eq 1
[ "$down" = 1 ] || ctl members | sed 's/^/       /'
check "  the change is logged ($(grep -m1 -F 'health: [fd00:20::12]:8080' "$WORK/sluice.out"))" \
    grep -qF "health: [fd00:20::12]:8080 (pool web6) check default (tcp) DOWN" "$WORK/sluice.out"
client bash -c "for i in \$(seq 20); do curl -6 -s -m 5 http://[$VIP6]/ || echo FAILED; done" >"$WORK/after"
check "20 requests answered without it" test "$(grep -c '^server=' "$WORK/after")" -eq 20
check "  none by m2" test "$(grep -c 'server=m2 ' "$WORK/after")" -eq 0
"$HERE/scripts/lab.sh" start-member 2
up=0
for _ in $(seq 150); do
    if ctl members | grep -q "\[fd00:20::12\]:8080 .* up "; then up=1; break; fi
    sleep 0.1
done
check "and up again once it listens" test "$up" -eq 1

section "an IPv6 server and pool added by a reload"
cat >>"$WORK/lab.toml" <<'TOML'

[health_check.ping6]
kind = "icmp"
interval = "500ms"
timeout = "400ms"

[pool.m3only]
health_check = "ping6"
members = [ { address = "[fd00:20::13]:8080" } ]

[[virtual_server]]
name = "web6b"
address = "[2001:db8:1::20]:80"
protocol = "tcp"
pool = "m3only"
forwarding = "dest_nat"

[[virtual_server]]
name = "dns6b"
address = "[2001:db8:1::20]:53"
protocol = "udp"
pool = "m3only"
forwarding = "dest_nat"
TOML
check "sluicectl reload takes it" ctl reload
got=$(client bash -c "for i in 1 2 3; do curl -6 -s -m 5 http://[2001:db8:1::20]/; done")
check "it serves at once, from its new member m3 ($(tr '\n' ' ' <<<"$got"))" \
    test "$(grep -c '^server=m3 client=2001:db8:1::2$' <<<"$got")" -eq 3
sleep 3
member_is() { ctl members | grep -q "\[$1\]:8080 .* $2 "; }
check "  its member stays up under an ICMPv6 echo check every 500 ms" member_is fd00:20::13 up
check "  not a miss logged" test "$(grep -c 'check ping6 (icmp) DOWN' "$WORK/sluice.out")" -eq 0
ip netns exec "${LAB}-m3" nft -f - <<'NFT'
table ip6 sluice_test {
    chain input {
        type filter hook input priority 0;
        icmpv6 type echo-request drop
    }
}
NFT
down=0
for _ in $(seq 60); do
    if member_is fd00:20::13 down; then down=1; break; fi
    sleep 0.1
done
check "  taken out once it stops answering pings ($(grep -m1 -o 'check ping6 (icmp) DOWN.*' "$WORK/sluice.out"))" \
    test "$down" -eq 1
ip netns exec "${LAB}-m3" nft delete table ip6 sluice_test
ctl member disable "[fd00:20::13]:8080" --pool m3only >/dev/null
client curl -6 -s -m 5 -o /dev/null "http://[2001:db8:1::20]/"; rc=$?
check "its only member disabled, a new connection is refused at once by a RST (curl rc=$rc, 7: refused)" \
    test "$rc" -eq 7
client dig -6 +tries=1 +time=3 @2001:db8:1::20 example >"$WORK/dig6" 2>&1
check "  and a UDP query by an ICMPv6 port unreachable ($(grep -m1 -o 'connection refused\|timed out' "$WORK/dig6"))" \
    grep -q "connection refused" "$WORK/dig6"
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0

section "the contract's example, with its IPv6 server, boots and serves"
# config/examples/contract.toml (the contract) with the lab's ports, socket,
# adaptive polling and member m3's real MAC for its static neighbour entry.
m3mac=$(ip netns exec "${LAB}-m3" cat /sys/class/net/eth0/address)
sed -e "s/iface=lb-ext/iface=${LAB}-ext/; s/iface=lb-int/iface=${LAB}-int/" \
    -e "s|/run/sluice/sluice.sock|$LAB_DIR/sluice.sock|; s/^poll = \"busy\"/poll = \"adaptive\"/" \
    -e "s/127.0.0.1:9910/127.0.0.1:19926/; s/02:00:00:00:00:13/$m3mac/" \
    "$HERE/config/examples/contract.toml" >"$WORK/contract.toml"
if start_sluice "$WORK/contract.toml"; then
    ok "sluice boots the contract's example"
    got=$(client bash -c "for i in 1 2 3 4; do curl -6 -s -m 5 http://[2001:db8:1::10]/; done")
    check "its IPv6 Both-NAT server answers 4 of 4 ($(tr '\n' ' ' <<<"$got"))" \
        test "$(grep -c 'client=fd00:20::100$' <<<"$got")" -eq 4
    got=$(client curl -s -m 5 http://198.51.100.10/)
    check "its IPv4 server answers ($got)" grep -q '^server=m[12] client=198.51.100.2$' <<<"$got"
    stop_sluice; rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
else
    bad "sluice boots the contract's example"
fi
"$HERE/scripts/lab.sh" down >/dev/null
finish
