#!/usr/bin/env bash
# The other forwarding modes with real servers: L2-DSR and L3-DSR (DSCP)
# balanced, replies bypassing the switch; L3-DSR IP-in-IP and GRE checked at
# packet level on the members' link (this kernel cannot decapsulate them);
# LAN-to-LAN hairpin.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10

dsr_mode() { # MODE WORKERS
    local mode=$1 workers=$2
    section "$mode, $workers worker(s): direct server return through a router"
    local opts=(--dsr)
    [ "$mode" = l3_dsr_dscp ] && opts+=(--dscp 10)
    "$HERE/scripts/lab.sh" up "${opts[@]}" >/dev/null
    "$HERE/scripts/lab.sh" config "$mode" "$workers" >"$WORK/lab.toml"
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; return; fi
    client bash -c "for i in \$(seq 300); do curl -s -m 5 http://$VIP/ || echo FAILED; done" >"$WORK/answers"
    check "300 sequential requests all answered" test "$(grep -c '^server=' "$WORK/answers")" -eq 300
    local m n
    for m in m1 m2 m3; do
        n=$(grep -c "server=$m " "$WORK/answers")
        check "round robin: $m answered 100 +- 3 (got $n)" test "$n" -ge 97 -a "$n" -le 103
    done
    check "members see the client itself" test "$(grep -vc 'client=198.51.100.2$' "$WORK/answers")" -eq 0
    client curl -s -m 60 -o "$WORK/big.got" "http://$VIP/big"
    check "50 MB download arrives intact" cmp -s "$WORK/big.got" "$LAB_DIR/big.bin"
    local ext_tx
    ext_tx=$(ctl stats | awk '$1 == "port" && $3 == "ext:" { print $7 }')
    check "replies bypass the switch (ext port sent $ext_tx frames)" test "${ext_tx:-999999}" -lt 100
    local fwd
    fwd=$(counter forwarded)
    check "client packets forwarded by the switch: $fwd (>= 300 requests x 5)" test "$fwd" -ge 1500
    stop_sluice; local rc=$?
    check "SIGTERM exits 0" test "$rc" -eq 0
    "$HERE/scripts/lab.sh" down >/dev/null
}

tunnel_mode() { # ENCAP MSS
    local encap=$1 mss=$2
    section "l3_dsr $encap: packets on the members' link"
    "$HERE/scripts/lab.sh" up --dsr >/dev/null
    "$HERE/scripts/lab.sh" config "l3_dsr_$encap" 1 >"$WORK/lab.toml"
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; return; fi
    local proto=4
    [ "$encap" = gre ] && proto=47
    ip netns exec "${LAB}-lan" timeout 15 tcpdump -U -i int0 -n -w "$WORK/encap.pcap" "ip proto $proto" \
        >/dev/null 2>&1 &
    local dump=$!
    sleep 1
    for _ in 1 2 3; do client curl -s -m 1 "http://$VIP/" >/dev/null; done
    sleep 1
    kill -INT "$dump" 2>/dev/null; wait "$dump" 2>/dev/null
    check "captured packets are $encap from the switch with the client's SYN inside, MSS <= $mss" \
        python3 "$HERE/tests/lab/check_encap.py" "$WORK/encap.pcap" --encap "$encap" --switch 10.20.0.1 \
        --members 10.20.0.0/24 --client 198.51.100.2 --vip $VIP --mss "$mss" --min 3
    python3 "$HERE/tests/lab/check_encap.py" "$WORK/encap.pcap" --encap "$encap" --switch 10.20.0.1 \
        --members 10.20.0.0/24 --client 198.51.100.2 --vip $VIP --mss "$mss" 2>&1 | tail -4 | sed 's/^/       /'
    check "the switch counted them forwarded" test "$(counter forwarded)" -ge 3
    # Datagrams of 1,500 bytes without DF: too long once encapsulated, the
    # outer packet is cut into IPv4 fragments the member reassembles.
    ip netns exec "${LAB}-lan" timeout 15 tcpdump -U -i int0 -n -w "$WORK/frags.pcap" "ip proto $proto" \
        >/dev/null 2>&1 &
    dump=$!
    sleep 1
    client python3 "$HERE/tests/lab/outer_fragments.py" send --client 198.51.100.2 --vip $VIP --count 5 \
        >/dev/null
    sleep 1
    kill -INT "$dump" 2>/dev/null; wait "$dump" 2>/dev/null
    check "5 datagrams of 1,500 bytes without DF reach the members whole, in outer fragments of <= 1,500" \
        python3 "$HERE/tests/lab/outer_fragments.py" check --pcap "$WORK/frags.pcap" --encap "$encap" \
        --switch 10.20.0.1 --client 198.51.100.2 --vip $VIP --count 5
    python3 "$HERE/tests/lab/outer_fragments.py" check --pcap "$WORK/frags.pcap" --encap "$encap" \
        --switch 10.20.0.1 --client 198.51.100.2 --vip $VIP --count 5 2>&1 | tail -1 | sed 's/^/       /'
    check "the switch counted the fragments it made ($(counter fragments_made))" \
        test "$(counter fragments_made)" -ge 5
    stop_sluice; local rc=$?
    check "SIGTERM exits 0" test "$rc" -eq 0
    "$HERE/scripts/lab.sh" down >/dev/null
}

lan_to_lan() { # WORKERS
    local workers=$1
    section "lan_to_lan, $workers worker(s): a server calls a VIP served by its own LAN"
    "$HERE/scripts/lab.sh" up >/dev/null
    "$HERE/scripts/lab.sh" config lan_to_lan "$workers" >"$WORK/lab.toml"
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; return; fi
    ip netns exec "${LAB}-m1" bash -c "for i in \$(seq 30); do curl -s -m 5 http://$VIP/ || echo FAILED; done" \
        >"$WORK/hairpin"
    check "30 requests from member m1 to the VIP answered" test "$(grep -c '^server=' "$WORK/hairpin")" -eq 30
    check "answered by its peers too" test "$(grep -c 'server=m[23] ' "$WORK/hairpin")" -ge 18
    check "the members saw the SNAT address" test "$(grep -vc 'client=10.20.0.100$' "$WORK/hairpin")" -eq 0
    local out
    out=$(client curl -s -m 5 "http://$VIP/")
    check "an outside client is not source-NATed ($out)" grep -q 'client=198.51.100.2$' <<<"$out"
    stop_sluice; local rc=$?
    check "SIGTERM exits 0" test "$rc" -eq 0
    "$HERE/scripts/lab.sh" down >/dev/null
}

dsr_mode l2_dsr 1
dsr_mode l2_dsr 2
dsr_mode l3_dsr_dscp 1
dsr_mode l3_dsr_dscp 2
tunnel_mode ipip 1440
tunnel_mode gre 1436
lan_to_lan 1
lan_to_lan 2
finish
