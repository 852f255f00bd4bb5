#!/usr/bin/env bash
# A SYN flood from spoofed sources at a VIP (hping3 --flood --rand-source,
# bounded in time and count) while an established connection carries on and
# new clients open connections: the half-open sessions stay bounded, only
# they give way, and everyone real is served.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v hping3 >/dev/null || apt-get install -y -qq hping3 >/dev/null 2>&1

VIP=198.51.100.10
SESSIONS=65536   # sessions_per_worker of the lab config
LIMIT=$((SESSIONS / 4))

gauge_max() { # gauge_max NAME: the largest value of a worker gauge
    ctl stats | awk -v n="$1" '/^worker/ { for (i = 2; i < NF; i++) if ($i == n && $(i + 1) > m) m = $(i + 1) } END { print m + 0 }'
}

section "SYN flood at the VIP, 2 workers"
"$HERE/scripts/lab.sh" up >/dev/null
"$HERE/scripts/lab.sh" config dest_nat 2 >"$WORK/flood.toml"
grep -q "^sessions_per_worker = $SESSIONS$" "$WORK/flood.toml" || bad "the lab config has $SESSIONS sessions per worker"
if ! start_sluice "$WORK/flood.toml"; then bad "sluice starts"; finish; exit; fi
client ping -c 1 -W 2 198.51.100.1 >/dev/null 2>&1

# An established keep-alive connection: one answer now, one during the flood.
keepalive "$VIP" "$WORK/keep" "$WORK/go"
KEEP=$KEEP_PID
check "an established connection is open ($(head -1 "$WORK/keep"))" grep -q '^server=m' "$WORK/keep"

evicted0=$(counter embryonic_evicted)
# The flood: random spoofed sources, bounded to 10 s and 4 million SYNs.
client timeout -k 2 -s INT 10 hping3 -q --flood --rand-source -S -p 80 -c 4000000 "$VIP" >"$WORK/hping.out" 2>&1 &
FLOOD=$!
sleep 2
peak=$(gauge_max embryonic)
touch "$WORK/go"
wait "$KEEP" 2>/dev/null
second=$(sed -n 2p "$WORK/keep")
check "the established connection answers during the flood ($second)" grep -q '^server=m' <<<"$second"
client bash -c "for i in \$(seq 10); do curl -s -m 10 http://$VIP/ || echo FAILED; done" >"$WORK/new"
check "10 new clients are served during the flood ($(grep -c '^server=' "$WORK/new")/10)" test "$(grep -c '^server=' "$WORK/new")" -eq 10
peak2=$(gauge_max embryonic)
[ "$peak2" -gt "$peak" ] && peak=$peak2
flooding=0; kill -0 "$FLOOD" 2>/dev/null && flooding=1
wait "$FLOOD" 2>/dev/null
sent=$(grep -o '[0-9]* packets transmitted' "$WORK/hping.out" | awk '{print $1}')
echo "  info hping3: ${sent:-?} SYNs sent; half-open sessions peaked at $peak on a worker; the flood was still running after the new clients: $flooding"
check "the flood reached the switch (half-open sessions peaked at $peak)" test "$peak" -gt 100
check "half-open sessions stayed within a quarter of the table ($peak <= $LIMIT)" test "$peak" -le "$LIMIT"
evicted=$(counter embryonic_evicted)
echo "  info half-open sessions evicted for new ones: $((evicted - evicted0))"
check "no SYN was refused for a full table" test "$(drops session_table_full)" -eq 0
active=$(gauge_max sessions_active)
check "the session table never filled ($active of $SESSIONS on the busiest worker)" test "$active" -lt "$SESSIONS"
sleep 3
check "after the flood the switch serves on" bash -c "ip netns exec ${LAB}-client curl -s -m 5 http://$VIP/ | grep -q '^server=m'"
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
finish
