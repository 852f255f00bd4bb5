#!/usr/bin/env bash
# Load balancing through NAT with real servers: Dest-NAT and Both-NAT, with
# 1 and 2 workers. 300 sequential requests balanced round robin, the address
# each server sees, a 50 MB download intact, port filtering, 100 concurrent
# connections, UDP both ways.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10

# requests N: N sequential GETs; prints one "server=mX client=IP" per line.
requests() {
    client bash -c "for i in \$(seq $1); do curl -s -m 5 http://$VIP/ || echo FAILED; done"
}

run_mode() { # MODE WORKERS GATEWAY
    local mode=$1 workers=$2 gw=$3
    section "$mode, $workers worker(s), members' gateway: $gw"
    "$HERE/scripts/lab.sh" up --members-gw "$gw" >/dev/null
    "$HERE/scripts/lab.sh" config "$mode" "$workers" >"$WORK/lab.toml"
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; return; fi

    requests 300 >"$WORK/answers"
    check "300 sequential requests all answered" test "$(grep -c '^server=' "$WORK/answers")" -eq 300
    local m n
    for m in m1 m2 m3; do
        n=$(grep -c "server=$m " "$WORK/answers")
        if [ "$workers" -eq 1 ]; then
            check "round robin: $m answered exactly 100 (got $n)" test "$n" -eq 100
        else
            check "round robin: $m answered 100 +- 3 (got $n)" test "$n" -ge 97 -a "$n" -le 103
        fi
    done
    local seen=198.51.100.2
    [ "$mode" = both_nat ] && seen=10.20.0.100
    check "servers see the client as $seen" test "$(grep -vc "client=$seen\$" "$WORK/answers")" -eq 0
    check "server logs show $seen" bash -c "cat $LAB_DIR/m*.log | grep -v udp | awk '{print \$1}' | sort -u | grep -qx $seen"

    client curl -s -m 60 -o "$WORK/big.got" "http://$VIP/big"
    check "50 MB download arrives intact" cmp -s "$WORK/big.got" "$LAB_DIR/big.bin"
    check "download is 50 MB" test "$(stat -c %s "$WORK/big.got" 2>/dev/null || echo 0)" -eq 52428800

    local before
    before=$(drops no_virtual_server)
    check "port 81 on the VIP gets no answer" bash -c "! ip netns exec ${LAB}-client curl -s -m 2 http://$VIP:81/"
    check "port-filter drops counted" test "$(drops no_virtual_server)" -gt "$before"

    client bash -c "for i in \$(seq 100); do curl -s -m 10 http://$VIP/ >$WORK/par.\$i & done; wait"
    check "100 concurrent connections complete" test "$(cat "$WORK"/par.* | grep -c '^server=')" -eq 100
    rm -f "$WORK"/par.*

    local udp
    udp=$(client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b'hi', ('$VIP', 8080)); print(s.recvfrom(100)[0].decode().strip())" 2>&1)
    check "UDP through the VIP answered ($udp)" grep -q "client=$seen" <<<"$udp"

    check "sessions were created" test "$(counter sessions_created)" -ge 400
    if [ "$workers" -gt 1 ]; then
        check "misdirected packets were handed to their owner" test "$(counter redirected)" -gt 0
    fi
    check "no ring or NIC drops" test "$(( $(drops tx_full) + $(drops redirect_full) ))" -eq 0
    stop_sluice; local rc=$?
    check "SIGTERM exits 0" test "$rc" -eq 0
    "$HERE/scripts/lab.sh" down >/dev/null
}

for workers in 1 2; do
    run_mode dest_nat "$workers" switch
    run_mode both_nat "$workers" switch
done
run_mode both_nat 2 none
finish
