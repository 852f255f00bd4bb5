#!/usr/bin/env bash
# Reloading a running sluice: members and a virtual server added and removed
# by editing the file, under a request loop that must lose nothing;
# established connections to what was removed keep working; a bad file and
# a change that needs a restart are refused and the switch serves on.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10
VIP2=198.51.100.20
CFG="$WORK/reload.toml"

count() { grep -c "server=$1 " "$2"; }
answers() { # answers VIP N: N sequential GETs, one "server=mX ..." (or FAILED) a line.
    client bash -c "for i in \$(seq $2); do curl -s -m 5 http://$1/ || echo FAILED; done"
}
generation() { ctl --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["generation"])'; }

# members LIST: the web pool's members line for the config (e.g. "11 12").
members_of() {
    local out="members = ["
    for m in "$@"; do out="$out { address = \"10.20.0.$m:8080\" },"; done
    echo "${out%,} ]"
}

# write_config MEMBERS... [+vip2]: the lab config with these web members,
# and with the second virtual server when "+vip2" is given.
write_config() {
    local extra="" list=()
    for a in "$@"; do
        if [ "$a" = "+vip2" ]; then extra=1; else list+=("$a"); fi
    done
    "$HERE/scripts/lab.sh" config dest_nat 2 >"$CFG.base"
    python3 - "$CFG.base" "$(members_of "${list[@]}")" "$extra" >"$CFG.new" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"members = \[\n(  \{[^\n]*\n)+\]", sys.argv[2], text, count=1)
if sys.argv[3]:
    text += '\n[[virtual_server]]\nname = "web2"\naddress = "198.51.100.20:80"\nprotocol = "tcp"\npool = "web"\nforwarding = "dest_nat"\n'
print(text)
PY
    mv "$CFG.new" "$CFG"
}

section "reload: members and a virtual server added and removed live, 2 workers"
"$HERE/scripts/lab.sh" up >/dev/null
write_config 11 12
if ! start_sluice "$CFG"; then bad "sluice starts"; finish; exit; fi
client ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1
answers $VIP 20 >"$WORK/a0"
check "m1 and m2 serve, m3 is not configured (m3: $(count m3 "$WORK/a0"))" \
    test "$(grep -c '^server=' "$WORK/a0")" -eq 20 -a "$(count m3 "$WORK/a0")" -eq 0
check "generation 0 at boot" test "$(generation)" = 0

# A request loop runs through every reload below, until told to stop
# (bounded: 3000 requests at most).
client bash -c "for i in \$(seq 3000); do [ -e '$WORK/stop-loop' ] && break; curl -s -m 5 http://$VIP/ || echo FAILED; sleep 0.02; done" >"$WORK/loop" 2>&1 &
LOOP_PID=$!
sleep 1

keepalive $VIP "$WORK/keep1" "$WORK/go1"
KEEP1_PID=$KEEP_PID
first=$(head -1 "$WORK/keep1" | grep -o 'server=m[0-9]')
check "a keep-alive connection is open (${first:-none})" test -n "$first"
victim=1${first#server=m}

# Reload 1: m3 added, the keep-alive connection's member removed, web2 added.
others=(11 12 13)
keep=()
for m in "${others[@]}"; do [ "$m" = "$victim" ] || keep+=("$m"); done
write_config "${keep[@]}" +vip2
out=$(ctl reload); rc=$?
check "reload 1 applies (rc $rc): $(head -1 <<<"$out")" test "$rc" -eq 0 -a -n "$(grep '^reloaded: generation 1$' <<<"$out")"
check "  and says what changed" bash -c "grep -q 'pool web: member 10.20.0.$victim:8080 removed' <<<'$out' && grep -q 'virtual server web2 added' <<<'$out'"
check "the log names the changes and the generation" bash -c "grep -q 'reload: pool web: member 10.20.0.$victim:8080 removed' '$WORK/sluice.out' && grep -q 'reload: generation 1 running' '$WORK/sluice.out'"
check "members lists m${victim#1} as removed" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk '\$3 == \"10.20.0.$victim:8080\" && \$1 == \"web\" { print \$5 }' | grep -qx removed"
answers $VIP 30 >"$WORK/a1"
check "30 new requests answered ($(grep -c '^server=' "$WORK/a1")), none by the removed m${victim#1} ($(count "m${victim#1}" "$WORK/a1")), some by the added m3 ($(count m3 "$WORK/a1"))" \
    test "$(grep -c '^server=' "$WORK/a1")" -eq 30 -a "$(count "m${victim#1}" "$WORK/a1")" -eq 0 -a "$(count m3 "$WORK/a1")" -gt 0
answers $VIP2 10 >"$WORK/a2"
check "the added virtual server $VIP2 serves ($(grep -c '^server=' "$WORK/a2")/10)" test "$(grep -c '^server=' "$WORK/a2")" -eq 10

# A keep-alive connection to web2, then web2 removed.
keepalive $VIP2 "$WORK/keep2" "$WORK/go2"
KEEP2_PID=$KEEP_PID
check "a keep-alive connection to web2 is open" grep -q server= "$WORK/keep2"
write_config "${keep[@]}"
out=$(ctl reload); rc=$?
check "reload 2 applies (rc $rc)" test "$rc" -eq 0 -a -n "$(grep '^reloaded: generation 2$' <<<"$out")"
check "  web2 is removed and drains its sessions ($(grep web2 <<<"$out"))" grep -Eq 'virtual server web2 removed; its [1-9][0-9]* sessions drain' <<<"$out"
got=$(client curl -s -m 2 "http://$VIP2/" || echo FAILED)
check "a new connection to the removed web2 is not served ($got)" test "$got" = FAILED

touch "$WORK/go1" "$WORK/go2"
wait "$KEEP1_PID" "$KEEP2_PID" 2>/dev/null
second=$(sed -n 2p "$WORK/keep1")
check "the established connection to the removed member still works ($second)" grep -q "^$first " <<<"$second"
check "the established connection to the removed web2 still works ($(sed -n 2p "$WORK/keep2"))" \
    grep -q '^server=m' <<<"$(sed -n 2p "$WORK/keep2")"

section "reload: refused changes leave the running configuration serving"
cp "$CFG" "$CFG.good"
sed -i '0,/forwarding = "dest_nat"/s//forwarding = "sideways"/' "$CFG"
out=$(ctl reload); rc=$?
check "a bad file is refused with exit 1 ($out)" test "$rc" -eq 1
check "  naming file, line and key" grep -Eq "$CFG:[0-9]+: virtual_server\[0\]\.forwarding" <<<"$out"
check "  and the generation stays 2" test "$(generation)" = 2
cp "$CFG.good" "$CFG"
sed -i 's/^workers = 2$/workers = 1/' "$CFG"
out=$(ctl reload); rc=$?
check "a change of workers is refused with exit 1, naming dataplane.workers ($out)" \
    bash -c "test $rc -eq 1 && grep -q 'dataplane.workers' <<<'$out' && grep -q 'cannot change without a restart' <<<'$out'"
check "  and nothing changed (generation $(generation))" test "$(generation)" = 2
answers $VIP 10 >"$WORK/a3"
check "the switch serves on after both refusals ($(grep -c '^server=' "$WORK/a3")/10)" test "$(grep -c '^server=' "$WORK/a3")" -eq 10

section "reload: SIGHUP and --json"
write_config 11 12 13
kill -HUP "$SLUICE_PID"
for _ in $(seq 50); do [ "$(generation)" = 3 ] && break; sleep 0.1; done
check "SIGHUP reloads (generation $(generation))" test "$(generation)" = 3
check "  and is logged" grep -q 'SIGHUP received: reloading the configuration' "$WORK/sluice.out"
check "reload --json parses and names the generation" \
    bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock --json reload | python3 -c 'import json, sys; d = json.load(sys.stdin); assert d[\"generation\"] == 4, d'"
answers $VIP 30 >"$WORK/a4"
check "all three members serve again (m${victim#1}: $(count "m${victim#1}" "$WORK/a4"))" test "$(count "m${victim#1}" "$WORK/a4")" -gt 0

section "reload: a renamed pool makes a new server; the old one drains on its members"
keepalive $VIP "$WORK/keep3" "$WORK/go3"
KEEP3_PID=$KEEP_PID
third=$(head -1 "$WORK/keep3" | grep -o 'server=m[0-9]')
check "a keep-alive connection is open (${third:-none})" test -n "$third"
sed -i 's/^\[pool\.web\]$/[pool.web_b]/; s/^pool = "web"$/pool = "web_b"/' "$CFG"
out=$(ctl reload); rc=$?
check "the reload applies (rc $rc) and says web is replaced ($(grep replaced <<<"$out" | head -1))" \
    bash -c "test $rc -eq 0 && grep -Eq 'virtual server web replaced \(pool web -> web_b\); its [1-9][0-9]* sessions drain' <<<'$out'"
touch "$WORK/go3"
wait "$KEEP3_PID" 2>/dev/null
check "the connection opened before carries on ($(sed -n 2p "$WORK/keep3"))" grep -q "^$third " <<<"$(sed -n 2p "$WORK/keep3")"
answers $VIP 10 >"$WORK/a5"
check "new connections are served by the new server ($(grep -c '^server=' "$WORK/a5")/10)" test "$(grep -c '^server=' "$WORK/a5")" -eq 10
dups=$(ctl metrics | grep -v '^#' | awk '{print $1}' | sort | uniq -d | head -3 | tr '\n' ' ')
check "  /metrics tells the old web from the new (duplicate series: ${dups:-none})" test -z "$dups"
check "  members lists the old one's members as its (retired) server's" bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk 'NR > 1 && \$2 == \"web\"' | grep -q ."

check "the request loop was still running at the last reload" kill -0 "$LOOP_PID"
touch "$WORK/stop-loop"
wait "$LOOP_PID" 2>/dev/null
total=$(wc -l <"$WORK/loop")
check "the request loop through five reloads and two refusals lost nothing ($(grep -c '^server=' "$WORK/loop")/$total answered, $(grep -c FAILED "$WORK/loop") failed)" \
    test "$(grep -c '^server=' "$WORK/loop")" -eq "$total" -a "$total" -gt 100
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
finish
