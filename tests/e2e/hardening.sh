#!/usr/bin/env bash
# What an attacker or a tired operator does to a running switch, and what
# must not follow: a flood at the switch's own external address marks no
# member down; a low open-file limit and hundreds of idle metrics
# connections leave health checks and sluicectl working, and a probe that
# cannot get a socket marks nobody down; reloads every few seconds do not
# postpone a dead member going down; `sluicectl sessions` lists and flushes
# a big table completely, streaming.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v hping3 >/dev/null || apt-get install -y -qq hping3 >/dev/null 2>&1
command -v prlimit >/dev/null || apt-get install -y -qq util-linux >/dev/null 2>&1

VIP=198.51.100.10
LABSH="$HERE/scripts/lab.sh"
METRICS=127.0.0.1:9177

in_member() { local n=$1; shift; ip netns exec "${LAB}-m$n" "$@"; }
# block N: member N drops everything from the switch (its checks time out).
block() {
    in_member "$1" nft -f - <<NFT
table ip sluice_hardening {
    chain input {
        type filter hook input priority filter; policy accept;
        ip saddr 10.20.0.1 drop
    }
}
NFT
}
unblock() { in_member "$1" nft delete table ip sluice_hardening 2>/dev/null; }
hardening_cleanup() {
    for i in 1 2 3; do unblock "$i"; done
    [ -n "${HOLD_PID:-}" ] && kill "$HOLD_PID" 2>/dev/null
    [ -n "${FLOOD_PID:-}" ] && kill "$FLOOD_PID" 2>/dev/null
    [ -n "${FLOOD_PID2:-}" ] && kill "$FLOOD_PID2" 2>/dev/null
}
trap 'hardening_cleanup; cleanup' EXIT

# config FILE [CHECK]: the Dest-NAT lab with 2 workers, a metrics listener,
# and fast checks (500 ms, 2 misses) unless CHECK is "default".
config() {
    "$LABSH" config dest_nat 2 | sed "/^socket = /a metrics = \"$METRICS\"" >"$1"
    if [ "${2:-fast}" != default ]; then
        printf '\n[health_check.fast]\nkind = "tcp"\ninterval = "500ms"\ntimeout = "400ms"\nfall = 2\nrise = 2\n' >>"$1"
        sed -i 's/^\[pool.web\]$/[pool.web]\nhealth_check = "fast"/' "$1"
    fi
}
states() { ctl members | awk 'NR > 1 && $1 == "web" { print $5 }' | sort | uniq -c | tr -s ' \n' ' '; }
all_up() { test "$(ctl members | awk 'NR > 1 && $1 == "web" && $5 == "up"' | wc -l)" -eq 3; }
downs() { grep -c 'check .* DOWN' "$WORK/sluice.out"; }

"$LABSH" up >/dev/null

# --------------------------------------------------------------------------
section "1. a flood at the switch's external address marks no member down"
config "$WORK/s1.toml"
if start_sluice "$WORK/s1.toml"; then
    sleep 2
    check "members up before ($(states))" all_up
    limited0=$(drops kernel_rate_limited)
    # Junk ACKs at the interface address, bounded to 6 s and 3 million, from
    # two senders: one hping3 alone makes about 45,000 a second here, too
    # close to the TCP budget (20,000 a second) on a slow run.
    client timeout -k 2 -s INT 6 hping3 -q --flood -A -p 22 -c 1500000 198.51.100.1 >"$WORK/hping1" 2>&1 &
    FLOOD_PID=$!
    client timeout -k 2 -s INT 6 hping3 -q --flood -A -p 23 -c 1500000 198.51.100.1 >"$WORK/hping2" 2>&1 &
    FLOOD_PID2=$!
    wait "$FLOOD_PID" "$FLOOD_PID2" 2>/dev/null; FLOOD_PID="" FLOOD_PID2=""
    limited=$(( $(drops kernel_rate_limited) - limited0 ))
    sent=$(cat "$WORK/hping1" "$WORK/hping2" | grep -o '[0-9]* packets transmitted' | awk '{ s += $1 } END { print s + 0 }')
    echo "  info $sent packets transmitted; over the kernel path's rate: $limited"
    check "the flood went over the external address's budget ($limited dropped)" test "$limited" -gt 0
    check "no member went down during 6 s of flood (checks every 500 ms, down after 2 misses)" test "$(downs)" -eq 0
    check "all members up after it ($(states))" all_up
    stop_sluice
fi

# --------------------------------------------------------------------------
section "2. 256 open files, 300 idle metrics connections, then no descriptor left"
config "$WORK/s2.toml"
printf '#!/bin/sh\nulimit -n 256\nexec %s "$@"\n' "$SLUICE" >"$WORK/sluice-256"
chmod +x "$WORK/sluice-256"
REAL_SLUICE=$SLUICE
SLUICE=$WORK/sluice-256
if start_sluice "$WORK/s2.toml"; then
    pid=$SLUICE_PID   # the wrapper execs sluice
    check "sluice warns that 256 open files is low" grep -q 'open files limited to 256' "$WORK/sluice.out"
    sleep 1.5
    # 300 connections at once that never send a byte, held 8 s at most
    # (those beyond the listen backlog wait for the handshake).
    python3 - "$METRICS" >"$WORK/hold.out" 2>&1 <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
held = []
for _ in range(300):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, int(port)))
    held.append(s)
print("opened", len(held), flush=True)
time.sleep(8)
PY
    HOLD_PID=$!
    sleep 2
    check "300 idle connections opened ($(cat "$WORK/hold.out"))" grep -q 'opened 300' "$WORK/hold.out"
    fds=$(ls "/proc/$pid/fd" | wc -l)
    check "sluice holds $fds descriptors, under its limit of 256" test "$fds" -lt 256
    check "sluicectl answers" timeout 3 "$SLUICECTL" --socket "$LAB_DIR/sluice.sock" status
    sleep 3
    check "the members stay up through it ($(states))" all_up
    check "  no member went down" test "$(downs)" -eq 0
    wait "$HOLD_PID" 2>/dev/null; HOLD_PID=""
    # Now no descriptor at all (the soft limit below what is open): every
    # probe fails for want of a socket. Then back to 256.
    prlimit --pid "$pid" --nofile=16:256
    sleep 3
    prlimit --pid "$pid" --nofile=256:256
    check "the log says probes could not be made" grep -q 'cannot probe (socket: Too many open files' "$WORK/sluice.out"
    check "  and no member went down for it" test "$(downs)" -eq 0
    ok_after=0
    for _ in $(seq 30); do timeout 3 "$SLUICECTL" --socket "$LAB_DIR/sluice.sock" status >/dev/null 2>&1 && { ok_after=1; break; }; sleep 0.2; done
    check "sluicectl answers again once descriptors are back" test "$ok_after" = 1
    local_errors=$(curl -s -m 3 "http://$METRICS/metrics" | awk '/^sluice_health_check_local_errors_total/ { s += $2 } END { print s + 0 }')
    check "the probes that could not be made are counted ($local_errors)" test "$local_errors" -gt 0
    check "all members up ($(states))" all_up
    stop_sluice
fi
SLUICE=$REAL_SLUICE

# --------------------------------------------------------------------------
section "3. reloads every 5 s do not postpone a dead member going down (default check: 2 s, 4 misses)"
config "$WORK/s3.toml" default
if start_sluice "$WORK/s3.toml"; then
    sleep 3
    check "members up ($(states))" all_up
    block 2
    start=$(date +%s)
    down_after=""
    # Reload every 5 s (the file unchanged, as a config-management run does),
    # for 30 s at most.
    for i in $(seq 6); do
        ctl reload >/dev/null 2>&1
        for _ in $(seq 25); do
            if member_lines 10.20.0.12:8080 | awk '$5 == "down" { d = 1 } END { exit !d }'; then
                down_after=$(( $(date +%s) - start )); break 2
            fi
            sleep 0.2
        done
    done
    unblock 2
    echo "  info down ${down_after:-never} s after it stopped answering, under $i reloads"
    check "m2 went down under reloads (after ${down_after:-never} s; 2 s x 4 misses + one interval is 10 s)" \
        test -n "$down_after" -a "${down_after:-99}" -le 12
    check "  m1 and m3 stayed up" bash -c "! grep -qE 'health: 10\.20\.0\.1[13]:8080 .* DOWN' '$WORK/sluice.out'"
    stop_sluice
fi

# --------------------------------------------------------------------------
section "4. sessions lists and flushes a big table completely"
config "$WORK/s4.toml"
sed -i 's/^sessions_per_worker = .*/sessions_per_worker = 1048576/' "$WORK/s4.toml"
if start_sluice "$WORK/s4.toml"; then
    # UDP datagrams from random sources to the UDP virtual server: a session
    # each. Bounded to 12 s and 400,000 datagrams.
    client timeout -k 2 -s INT 12 hping3 -q --flood --udp --rand-source -p 8080 -c 400000 "$VIP" >"$WORK/hping4" 2>&1
    sleep 1
    total=$(counter sessions_active)
    echo "  info $total sessions in the tables"
    check "the flood made a big table ($total sessions)" test "$total" -gt 50000
    start=$(date +%s%N)
    ctl sessions --limit all >"$WORK/all.txt"; rc=$?
    took=$(( ($(date +%s%N) - start) / 1000000 ))
    listed=$(( $(wc -l <"$WORK/all.txt") - 2 ))   # the header and the end line
    check "sessions --limit all lists every one of them ($listed of $total, rc $rc, ${took} ms)" test "$rc" -eq 0 -a "$listed" -eq "$total"
    check "  and ends saying so ($(tail -1 "$WORK/all.txt"))" test "$(tail -1 "$WORK/all.txt")" = "$total sessions listed"
    n=$(ctl --json sessions --limit all | python3 -c 'import json, sys; d = json.load(sys.stdin); print(len(d["sessions"]) if d["complete"] else -1)')
    check "sessions --json --limit all: complete, $n sessions" test "$n" -eq "$total"
    out=$(ctl sessions flush); rc=$?
    check "sessions flush removes them all ($out)" test "$rc" -eq 0 -a "$out" = "flushed $total sessions"
    check "  the tables are empty ($(counter sessions_active))" test "$(counter sessions_active)" -eq 0
    stop_sluice
fi

finish
