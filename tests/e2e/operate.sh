#!/usr/bin/env bash
# Operating a running sluice: members disabled, enabled, drained and
# reweighted with sluicectl while traffic flows; an established connection
# to a drained member keeps working.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10

# answers N: N sequential GETs through the VIP, one "server=mX ..." a line.
answers() {
    client bash -c "for i in \$(seq $1); do curl -s -m 5 http://$VIP/ || echo FAILED; done"
}
count() { grep -c "server=$1 " "$2"; }

section "member disable / enable / drain / weight, 2 workers"
"$HERE/scripts/lab.sh" up >/dev/null
"$HERE/scripts/lab.sh" config dest_nat 2 | sed 's/^\[pool.web\]$/[pool.web]\nmethod = "weighted_round_robin"/' >"$WORK/op.toml"
if ! start_sluice "$WORK/op.toml"; then bad "sluice starts"; finish; exit; fi
client ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1
answers 30 >"$WORK/a0"
check "all three members serve at first (m1 $(count m1 "$WORK/a0"), m2 $(count m2 "$WORK/a0"), m3 $(count m3 "$WORK/a0"))" \
    test "$(count m1 "$WORK/a0")" -gt 0 -a "$(count m2 "$WORK/a0")" -gt 0 -a "$(count m3 "$WORK/a0")" -gt 0

out=$(ctl member disable 10.20.0.11:8080); rc=$?
check "member disable answers ok ($out)" test "$rc" -eq 0 -a -n "$(grep '^ok: member 10.20.0.11:8080 (pool web) disabled' <<<"$out")"
check "members shows m1 disabled" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk '\$1 == \"web\" && \$3 == \"10.20.0.11:8080\" { print \$5 }' | grep -qx disabled"
answers 30 >"$WORK/a1"
check "30 requests answered, none by the disabled m1 ($(count m1 "$WORK/a1"))" \
    test "$(grep -c '^server=' "$WORK/a1")" -eq 30 -a "$(count m1 "$WORK/a1")" -eq 0
check "the change is logged" grep -q "admin: member 10.20.0.11:8080 (pool web) disabled" "$WORK/sluice.out"
ctl member enable 10.20.0.11:8080 --pool web >/dev/null
answers 30 >"$WORK/a2"
check "enabled again: m1 serves ($(count m1 "$WORK/a2"))" test "$(count m1 "$WORK/a2")" -gt 0

# A keep-alive connection, then m2 drained under it.
keepalive "$VIP" "$WORK/keep" "$WORK/go"
keep=$KEEP_PID
first=$(head -1 "$WORK/keep" | grep -o 'server=m[0-9]')
check "a keep-alive connection is open (${first:-none})" test -n "$first"
victim=${first#server=m}
ctl member drain "10.20.0.1$victim:8080" >/dev/null
check "members shows m$victim draining" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk '\$1 == \"web\" && \$3 == \"10.20.0.1$victim:8080\" { print \$5, \$10 }' | grep -qx 'draining 0'"
answers 30 >"$WORK/a3"
check "new requests avoid the drained m$victim ($(count "m$victim" "$WORK/a3"))" \
    test "$(grep -c '^server=' "$WORK/a3")" -eq 30 -a "$(count "m$victim" "$WORK/a3")" -eq 0
touch "$WORK/go"
wait "$keep" 2>/dev/null
second=$(sed -n 2p "$WORK/keep" | grep -o 'server=m[0-9]')
check "the established connection to the drained m$victim still works (${second:-none})" test "$second" = "$first"

ctl member weight "10.20.0.1$victim:8080" 4 >/dev/null
check "members shows weight 4 for m$victim" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk '\$1 == \"web\" && \$3 == \"10.20.0.1$victim:8080\" { print \$5, \$10, \$11 }' | grep -qx 'up 4 4'"
answers 60 >"$WORK/a4"
n=$(count "m$victim" "$WORK/a4")
check "weighted round robin 4:1:1 gives m$victim about two thirds of 60 requests ($n)" test "$n" -ge 34 -a "$n" -le 46

section "sessions: list and flush"
keepalive "$VIP" "$WORK/keep2" "$WORK/go2"
keep2=$KEEP_PID
cport=$(cat "$WORK/keep2.port")
srv=$(grep -o 'server=m[0-9]' "$WORK/keep2" | head -1)
ctl sessions --client 198.51.100.2 >"$WORK/sessions"
line=$(grep "^198.51.100.2:$cport " "$WORK/sessions")
check "sessions lists the open connection ($line)" test -n "$line"
check "  with its member (${srv:-?} = 10.20.0.1${srv#server=m}:8080) and state" \
    bash -c "grep -q ' web 198.51.100.10:80 10.20.0.1${srv#server=m}:8080 ' <<<'$line' && grep -q ' established ' <<<'$line'"
check "sessions --member filters" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock sessions --member 10.20.0.1${srv#server=m}:8080 | grep -q '^198.51.100.2:$cport '"
check "sessions --virtual-server web-udp does not list it" bash -c "! $SLUICECTL --socket $LAB_DIR/sluice.sock sessions --virtual-server web-udp | grep -q ':$cport '"
out=$(ctl sessions flush --client 198.51.100.2 --member "10.20.0.1${srv#server=m}:8080")
check "sessions flush removes it ($out)" grep -Eq '^flushed [1-9][0-9]* sessions$' <<<"$out"
check "it is no longer listed" bash -c "! $SLUICECTL --socket $LAB_DIR/sluice.sock sessions --client 198.51.100.2 | grep -q '^198.51.100.2:$cport '"
touch "$WORK/go2"
wait "$keep2" 2>/dev/null
check "the flushed connection's next request is not forwarded ($(tail -1 "$WORK/keep2"))" grep -qx 'error TimeoutError' "$WORK/keep2"
check "a bad sessions argument is an error" bash -c "! $SLUICECTL --socket $LAB_DIR/sluice.sock sessions --limit many"

section "first packets wait for ARP instead of being dropped"
client ip addr add 198.51.100.7/24 dev c0
held_before=$(counter held)
got=$(client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.bind(('198.51.100.7', 0)); s.sendto(b'hi', ('$VIP', 8080))
try:
    print(s.recvfrom(200)[0].decode().strip())
except socket.timeout:
    print('timeout')" 2>&1)
client ip addr del 198.51.100.7/24 dev c0
check "the one UDP datagram from a client whose MAC the switch did not know is answered ($got)" grep -q 'client=198.51.100.7' <<<"$got"
check "its answer was held for ARP, not dropped (held $held_before -> $(counter held))" test "$(counter held)" -gt "$held_before"

section "--json on every command"
for c in status stats virtual-servers members neighbors routes metrics sessions "member enable 10.20.0.11:8080"; do
    check "sluicectl --json $c parses as JSON" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock --json $c | python3 -c 'import json, sys; json.load(sys.stdin)'"
done
check "members --json names each member's state" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock --json members | python3 -c 'import json, sys; rows = json.load(sys.stdin); assert {r[\"member\"] for r in rows} == {\"10.20.0.11:8080\", \"10.20.0.12:8080\", \"10.20.0.13:8080\"}; assert all(r[\"state\"] in (\"up\", \"draining\") for r in rows)'"
out=$("$SLUICECTL" --socket "$LAB_DIR/sluice.sock" --json member disable 10.20.0.99:8080); rc=$?
check "a JSON error exits 1 ($out)" bash -c "test $rc -eq 1 && python3 -c 'import json, sys; assert \"error\" in json.loads(sys.argv[1])' '$out'"

out=$(ctl member disable 10.20.0.99:8080); rc=$?
check "an unknown member is an error with exit 1 ($out)" test "$rc" -eq 1 -a -n "$(grep '^error: no member 10.20.0.99:8080' <<<"$out")"
out=$(ctl member weight 10.20.0.11:8080 lots); rc=$?
check "a bad weight is an error with exit 1" test "$rc" -eq 1
kill -HUP "$SLUICE_PID"
sleep 0.5
check "SIGHUP does not stop the switch" ctl status
check "and reloads the unchanged file" grep -q "SIGHUP received: reloading the configuration" "$WORK/sluice.out"
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0

section "ports probed in another order than the interfaces (an extra vdev first)"
# dataplane.eal_args come before the interfaces' devices, so this spare
# port is probed first and takes port id 0: ext is port 1, int port 2.
"$HERE/scripts/lab.sh" config dest_nat 2 |
    sed 's/^eal_args = \["--no-huge"/eal_args = ["--vdev", "net_null7", "--no-huge"/' >"$WORK/order.toml"
check "the config adds a vdev before the interfaces" grep -q 'eal_args = \["--vdev", "net_null7"' "$WORK/order.toml"
if start_sluice "$WORK/order.toml"; then
    check "ext is DPDK port 1 and int port 2" bash -c "grep -q 'interface ext = port 1 ' '$WORK/sluice.out' && grep -q 'interface int = port 2 ' '$WORK/sluice.out'"
    red0=$(counter redirected)
    answers 40 >"$WORK/order"
    check "40 requests through both workers are answered ($(grep -c '^server=' "$WORK/order")/40)" test "$(grep -c '^server=' "$WORK/order")" -eq 40
    red=$(counter redirected)
    check "packets handed between workers took part ($red0 -> $red redirected)" test "$red" -gt "$red0"
    stop_sluice
else
    bad "sluice starts with the extra vdev"
fi
finish
