#!/usr/bin/env bash
# The switch boots on real DPDK ports (net_af_packet on veths), answers ARP
# and ping for its interface address and a VIP with 1 and 2 workers, answers
# neighbour discovery and ping for its IPv6 addresses (and its kernel
# interface reaches an IPv6 neighbour through it), stops cleanly on SIGTERM,
# and refuses bad configurations before touching a port.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

section "configuration errors are refused with file, line and key"
printf '[dataplane]\nworkers = 0\n' >"$WORK/bad.toml"
out=$("$SLUICE" --config "$WORK/bad.toml" 2>&1); rc=$?
check "workers = 0 exits 2" test "$rc" -eq 2
check "message names file:line: key" grep -q "bad.toml:2: dataplane.workers" <<<"$out"
"$HERE/scripts/lab.sh" config dest_nat 1 | sed 's/forwarding = "dest_nat"/forwarding = "l2_dsr"/' \
    | sed 's/protocol = "udp"/protocol = "udp"\nport_typo = 1/' >"$WORK/typo.toml"
out=$("$SLUICE" --config "$WORK/typo.toml" 2>&1); rc=$?
check "unknown key exits 2" test "$rc" -eq 2
check "unknown key is named" grep -q 'unknown key "port_typo"' <<<"$out"
"$HERE/scripts/lab.sh" config dest_nat 1 | sed 's|address = "198.51.100.10:\([0-9]*\)"|address = "[2001:db8::10]:\1"|' \
    | sed 's|address = "10.20.0.1\([123]\):8080"|address = "[fd00:20::1\1]:8080"|' \
    | sed 's|addresses = \["10.20.0.1/24"\]|addresses = ["10.20.0.1/24", "fd00:20::1/64"]|' \
    | sed 's|^\[pool.web\]$|[health_check.ping]\nkind = "icmp"\n\n[pool.web]\nhealth_check = "ping"|' >"$WORK/v6.toml"
check "--check accepts IPv6 members with an icmp check" "$SLUICE" --config "$WORK/v6.toml" --check
sed 's|, "fd00:20::1/64"||' "$WORK/v6.toml" >"$WORK/v6-noaddr.toml"
out=$("$SLUICE" --config "$WORK/v6-noaddr.toml" --check 2>&1); rc=$?
check "an IPv6 server without an IPv6 interface address is refused (rc=$rc)" test "$rc" -eq 2
check "  with file, line and key ($(head -1 <<<"$out"))" grep -q 'v6-noaddr.toml:[0-9]*: virtual_server\[0\]' <<<"$out"
"$HERE/scripts/lab.sh" config dest_nat 1 >"$WORK/good.toml"
check "--check accepts the lab config" "$SLUICE" --config "$WORK/good.toml" --check

"$HERE/scripts/lab.sh" up >/dev/null
for workers in 1 2; do
    section "boot with $workers worker(s)"
    metrics=127.0.0.1:1991$workers
    "$HERE/scripts/lab.sh" config dest_nat "$workers" \
        | sed "/^socket = /a metrics = \"$metrics\"" >"$WORK/lab.toml"
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; continue; fi
    ok "sluice starts"
    client ip neigh flush dev c0 >/dev/null 2>&1
    check "ping interface address 198.51.100.1" client ping -c 3 -i 0.2 -W 2 198.51.100.1
    check "ping VIP 198.51.100.10" client ping -c 3 -i 0.2 -W 2 198.51.100.10
    mac=$(client ip -br neigh show 198.51.100.1 | awk '{print $3}')
    check "client resolved the switch by ARP ($mac)" test -n "$mac"
    check "ARP answers counted" test "$(counter arp_replies)" -ge 1
    check "echo replies counted" test "$(counter icmp_echo_replies)" -ge 6
    check "switch learned the client's MAC" grep -q "198.51.100.2" <(ctl neighbors)
    check "sluicectl status lists both ports" test "$(ctl status | grep -c '^port')" -eq 2
    curl -s -m 3 "http://$metrics/metrics" >"$WORK/metrics"
    check "GET /metrics serves the echo replies counter" \
        grep -qE '^sluice_icmp_echo_replies_total\{worker="0"\} [0-9]+' "$WORK/metrics"
    check "GET /metrics serves drops by reason" grep -q '^sluice_drops_total{reason="no_session",worker="0"}' "$WORK/metrics"
    promtool check metrics <"$WORK/metrics" >"$WORK/promtool.out" 2>&1; rc=$?
    check "promtool check metrics accepts /metrics (rc=$rc: $(head -2 "$WORK/promtool.out" | tr '\n' ' '))" test "$rc" -eq 0
    check "  each family's HELP once ($(grep -c '^# HELP' "$WORK/metrics") families)" \
        test "$(grep '^# HELP' "$WORK/metrics" | awk '{print $3}' | sort | uniq -d | wc -l)" -eq 0
    split=$(grep -v '^#' "$WORK/metrics" | sed 's/[{ ].*//' | uniq | sort | uniq -d | tr '\n' ' ')
    check "  each family's samples together (split: ${split:-none})" test -z "$split"
    check "other paths get 404" bash -c "curl -s -o /dev/null -w '%{http_code}' http://$metrics/ | grep -qx 404"
    tele=$(echo /ethdev/list | timeout 10 dpdk-telemetry.py -f sluice 2>&1)
    check "dpdk-telemetry.py -f sluice lists the ports ($(tail -1 <<<"$tele"))" grep -q '"/ethdev/list": \[0, 1' <<<"$tele"
    sock=$LAB_DIR/sluice.sock
    check "control socket is mode 0600 ($(stat -c %a "$sock"))" test "$(stat -c %a "$sock")" = 600
    # A client that connects and says nothing must not hold up the others.
    python3 -c "import socket, time; s = socket.socket(socket.AF_UNIX); s.connect('$sock'); time.sleep(6)" &
    silent=$!
    sleep 0.3
    check "another sluicectl is answered while a silent client holds a connection" timeout 3 "$SLUICECTL" --socket "$sock" status
    kill "$silent" 2>/dev/null; wait "$silent" 2>/dev/null
    bad_answer=$(printf '\xff\xfe garbage\n' | timeout 3 python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect('$sock'); s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
print(s.recv(200).decode(errors='replace'))")
    check "a malformed request gets an error ($bad_answer)" grep -q '^error:' <<<"$bad_answer"
    client ping -c 2 -i 0.2 -W 1 198.51.100.77 >/dev/null 2>&1
    check "unowned address gets no answer" test "$(client ip neigh show 198.51.100.77 | grep -c lladdr)" -eq 0
    pid=$SLUICE_PID
    stop_sluice; rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
    check "final counters printed" grep -q "^worker 0:" "$WORK/sluice.out"
    check "no sluice process left" bash -c "! kill -0 $pid"
    check "control socket removed" test ! -e "$LAB_DIR/sluice.sock"
done
section "IPv6 on the switch's links: neighbour discovery, ping, the kernel interface"
"$HERE/scripts/lab.sh" down >/dev/null
"$HERE/scripts/lab.sh" up --ipv6 >/dev/null
"$HERE/scripts/lab.sh" config dest_nat 2 >"$WORK/lab6.toml"
if start_sluice "$WORK/lab6.toml"; then
    ok "sluice starts with IPv6 interface addresses"
    check "ping -6 the ext address 2001:db8:1::1" client ping -6 -c 3 -i 0.2 -W 2 2001:db8:1::1
    mac=$(client ip -6 neigh show 2001:db8:1::1 | awk '/lladdr/ {print $5}')
    check "the client resolved it by neighbour discovery ($mac)" test -n "$mac"
    check "a member pings the int address fd00:20::1" \
        ip netns exec "${LAB}-m1" ping -6 -c 2 -i 0.2 -W 2 fd00:20::1
    check "neighbour advertisements counted ($(counter nd_replies))" test "$(counter nd_replies)" -ge 2
    check "echo replies counted" test "$(counter icmp_echo_replies)" -ge 5
    check "the switch learned the client's MAC" grep -q "2001:db8:1::2" <(ctl neighbors)
    check "sluicectl routes lists the IPv6 prefixes" grep -q "fd00:20::/64 dev int connected" <(ctl routes)
    check "its kernel interface holds fd00:20::1" grep -q "fd00:20::1/64" <(ip -6 addr show dev sluice-int)
    check "and reaches member fd00:20::12 through the switch (ping -6)" \
        ping -6 -c 2 -i 0.2 -W 2 -I sluice-int fd00:20::12
    check "the switch learned the member from its answer to the kernel" \
        grep -q "fd00:20::12" <(ctl neighbors)
    client ping -6 -c 2 -i 0.2 -W 1 2001:db8:1::77 >/dev/null 2>&1
    check "an unowned IPv6 address gets no answer" \
        test "$(client ip -6 neigh show 2001:db8:1::77 | grep -c lladdr)" -eq 0
    check "ping 198.51.100.1 still answered (IPv4 unaffected)" client ping -c 2 -i 0.2 -W 2 198.51.100.1
    stop_sluice; rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
else
    bad "sluice starts with IPv6 interface addresses"
fi

section "a file that is not a socket at the control socket's path"
"$HERE/scripts/lab.sh" config dest_nat 1 >"$WORK/lab.toml"
echo "precious" >"$LAB_DIR/sluice.sock"
out=$(timeout 20 "$SLUICE" --config "$WORK/lab.toml" 2>&1); rc=$?
check "sluice refuses to start (rc=$rc)" test "$rc" -ne 0
check "and says why" grep -q "is not a socket: refusing to replace it" <<<"$out"
check "the file is left alone" grep -qx precious "$LAB_DIR/sluice.sock"
rm -f "$LAB_DIR/sluice.sock"
"$HERE/scripts/lab.sh" down >/dev/null
check "lab down leaves no namespace" bash -c "! ip netns list | grep -q '^${LAB}-'"
check "lab down leaves no veth" bash -c "! ip link show ${LAB}-ext 2>/dev/null"
finish
