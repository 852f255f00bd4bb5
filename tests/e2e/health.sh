#!/usr/bin/env bash
# Health checks, member state and failover, and the kernel exception path,
# with real servers in the Dest-NAT lab and 2 workers: the default tcp check
# takes a dead member out and brings it back; checks come from the switch's
# address; backups serve only while no primary is up; http, udp, icmp and
# script checks; on_member_down = "reset"; a virtual server with no member
# left refuses (RST, ICMP port unreachable); the kernel interface reaches
# local sockets and forwarding survives a SYN flood at it; the contract's
# example configuration boots and fails over.
#
# One lab for the whole file; each scenario boots sluice with its own
# configuration and leaves the members as it found them (servers running, no
# health files, no nftables rules). Waits are bounded polls of `sluicectl
# members`, never sleeps that assume a timing.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10
LABSH=$HERE/scripts/lab.sh
BG=()   # background processes this test starts; killed on any exit

health_cleanup() {
    local p
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
}
trap 'health_cleanup; cleanup' EXIT

addr() { echo "10.20.0.1$1:8080"; }               # member N's address
member_ns() { echo "${LAB}-m$1"; }
in_member() { local n=$1; shift; ip netns exec "$(member_ns "$n")" "$@"; }

# requests N: N sequential GETs through the VIP; one "server=mX client=IP" (or FAILED) per line.
requests() {
    client bash -c "for i in \$(seq $1); do curl -s -m 5 http://$VIP/ || echo FAILED; done"
}
answered() { grep -c '^server=' "$1"; }
served_by() { grep -c "^server=$2 " "$1"; }        # FILE mN

# expect_state DESCRIPTION MEMBER STATE SECONDS [POOL]
expect_state() {
    local d=$1 m=$2 want=$3 limit=$4 pool=${5:-}
    if wait_state "$m" "$want" "$limit" "$pool"; then
        ok "$d (${WAITED}s)"
    else
        bad "$d: not $want within ${limit}s; sluicectl members says:"
        member_lines "$m" "$pool" | sed 's/^/         /'
    fi
}
# member_shows MEMBER TEXT: a `members` line of MEMBER contains TEXT (e.g. in its last probe result).
member_shows() { member_lines "$1" | grep -qF -- "$2"; }
# metric_is MEMBER VALUE [VS] [POOL]
metric_is() {
    ctl metrics | grep -qxF "sluice_member_up{virtual_server=\"${3:-web}\",pool=\"${4:-web}\",member=\"$1\"} $2"
}
# log_count PATTERN: sluice's state-change log lines (this boot) containing PATTERN.
log_count() { grep -cF -- "$1" "$WORK/sluice.out"; }

# Make member N's checks from the switch (source 10.20.0.1) fail without
# touching its server or its clients' traffic (which comes from elsewhere).
# block N [MATCH]: MATCH defaults to everything from 10.20.0.1.
block() {
    local n=$1 match=${2:-}
    in_member "$n" nft -f - <<NFT
table ip sluice_health {
    chain input {
        type filter hook input priority filter; policy accept;
        ip saddr 10.20.0.1 $match drop
    }
}
NFT
}
unblock() { in_member "$1" nft delete table ip sluice_health 2>/dev/null; }

# Members as the lab made them: servers running, /healthz answering 200 ok,
# no nftables rules, no script-check marker files.
restore_members() {
    local i
    for i in 1 2 3; do
        "$LABSH" start-member "$i" >/dev/null || bad "member m$i's server restarts"
        rm -f "$LAB_DIR/m$i.health"
        unblock "$i"
    done
    rm -f "$WORK"/down-*
}

# boot NAME: sluice with $WORK/NAME.toml, members restored first.
boot() {
    restore_members
    if start_sluice "$WORK/$1.toml"; then return 0; fi
    bad "sluice starts with $1.toml"   # start_sluice showed why
    return 1
}
# done_scenario: stop sluice (it must exit 0), restore the members.
done_scenario() {
    stop_sluice; local rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
    restore_members
}
# all_up SECONDS: every member shown up within SECONDS.
all_up() {
    local i
    for i in 1 2 3; do expect_state "m$i is up" "$(addr "$i")" up "$1"; done
}
# members_header: `sluicectl members` starts with its header line.
members_header() { ctl members 2>/dev/null | head -1 | grep -qw state; }
# lines_where AWK-CONDITION: how many member lines match.
lines_where() { ctl members 2>/dev/null | awk "NR > 1 && ($1)" | wc -l; }
# every_line AWK-CONDITION: there are member lines and all match.
every_line() { [ "$(lines_where 1)" -gt 0 ] && [ "$(lines_where "!($1)")" -eq 0 ]; }
# backups: the members shown with role backup.
backups() { ctl members 2>/dev/null | awk 'NR > 1 && $4 == "backup" { print $3 }' | sort -u; }

# Configuration pieces. fast_check NAME KIND [KEY = VALUE lines...]: a check
# every 500 ms that takes a member down after 2 failures, up after 2 successes.
fast_check() {
    local name=$1 kind=$2; shift 2
    printf '\n[health_check.%s]\nkind = "%s"\ninterval = "500ms"\ntimeout = "400ms"\nfall = 2\nrise = 2\n' \
        "$name" "$kind"
    [ $# -eq 0 ] || printf '%s\n' "$@"
}
# pool NAME CHECK [KEY = VALUE lines...]: the three members; CHECK "" = no health_check key.
pool() {
    local name=$1 hc=$2; shift 2
    printf '\n[pool.%s]\n' "$name"
    [ -z "$hc" ] || printf 'health_check = "%s"\n' "$hc"
    [ $# -eq 0 ] || printf '%s\n' "$@"
    printf 'members = [\n  { address = "%s" },\n  { address = "%s" },\n  { address = "%s" },\n]\n' \
        "$(addr 1)" "$(addr 2)" "$(addr 3)"
}
# vs NAME PORT PROTOCOL POOL
vs() {
    printf '\n[[virtual_server]]\nname = "%s"\naddress = "%s:%s"\nprotocol = "%s"\npool = "%s"\nforwarding = "dest_nat"\n' \
        "$1" "$VIP" "$2" "$3" "$4"
}
web_vs() { vs web 80 tcp "$1"; vs web-udp 8080 udp "$1"; }
# config NAME: the lab's dataplane (2 workers, adaptive polling) and ports, then stdin.
config() { { "$LABSH" config-base 2; cat; } >"$WORK/$1.toml"; }

# A keep-alive client: connects to the VIP, sends one HTTP/1.1 request and
# prints "first <answer>"; then, for at most LIMIT seconds, waits: a RST from
# the switch prints "result reset", a close "result closed"; once GO exists it
# sends a second request on the same connection and prints "result second <answer>".
cat >"$WORK/keepalive.py" <<'PY'
import os, select, socket, sys, time
vip, port, go, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
req = f"GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n".encode()

def answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise EOFError
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            raise EOFError
        body += d
    return body.decode().strip()

def say(*a):
    print(*a, flush=True)

s = socket.create_connection((vip, port), timeout=5)
s.sendall(req)
say("first", answer(s))
end = time.monotonic() + limit
try:
    while time.monotonic() < end:
        readable, _, _ = select.select([s], [], [], 0.1)
        if readable:
            d = s.recv(4096)
            say("result closed" if not d else f"result unexpected data {d[:40]!r}")
            sys.exit(0)
        if os.path.exists(go):
            s.sendall(req)
            say("result second", answer(s))
            sys.exit(0)
    say("result timeout (nothing happened)")
except ConnectionResetError:
    say("result reset")
except EOFError:
    say("result closed")
except socket.timeout:
    say("result timeout")
except OSError as e:
    say("result error", e)
PY
# keepalive NAME GO LIMIT: starts one in the client namespace, output in $WORK/NAME.out,
# pid in KA_PID; waits (5 s at most) for its first answer and leaves its server (mN) in KA_SERVER.
keepalive() {
    local name=$1 go=$2 limit=$3
    client python3 "$WORK/keepalive.py" "$VIP" 80 "$go" "$limit" >"$WORK/$name.out" 2>&1 &
    KA_PID=$!
    BG+=("$KA_PID")
    KA_SERVER=""
    for _ in $(seq 50); do
        KA_SERVER=$(sed -n 's/^first server=\(m[0-9]\) .*/\1/p' "$WORK/$name.out")
        [ -n "$KA_SERVER" ] && return 0
        kill -0 "$KA_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
# wait_pid PID SECONDS: waits for a background process, kills it when the time is up.
wait_pid() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# The script check: exit 0 (up) unless a marker file for the member, or for
# all members, exists; it also records how sluice called it.
cat >"$WORK/member-check.sh" <<SH
#!/bin/sh
echo "\$SLUICE_MEMBER_ADDR \$SLUICE_MEMBER_PORT \$*" >>"$WORK/script-calls"
[ ! -e "$WORK/down-all" ] && [ ! -e "$WORK/down-\$SLUICE_MEMBER_ADDR" ]
SH
chmod +x "$WORK/member-check.sh"

"$LABSH" up --log-connections >/dev/null

# --------------------------------------------------------------------------
section "1. default tcp check (2s x fall 4, rise 2): a dead member is taken out and comes back"
"$LABSH" config dest_nat 2 >"$WORK/s1.toml"   # no health_check key anywhere
if boot s1; then
    check "sluicectl members has a header line" members_header
    check "6 member lines (2 virtual servers x 3 members)" test "$(lines_where 1)" -eq 6
    check "every member's check is \"default\", role primary" every_line '$8 == "default" && $4 == "primary"'
    all_up 5
    # Let the first probes succeed (2 s apart), so the fall path is the one that counts.
    for _ in $(seq 30); do member_shows "$(addr 1)" connected && break; sleep 0.2; done
    check "m1's last probe result reads connected" member_shows "$(addr 1)" connected
    sleep 2
    check "metric sluice_member_up is 1 for m1" metric_is "$(addr 1)" 1

    "$LABSH" stop-member 1
    expect_state "m1 down within 12s of its server dying (2s x 4 + 2s)" "$(addr 1)" down 12
    check "m1's last probe result says connection refused" member_shows "$(addr 1)" refused
    check "metric sluice_member_up is 0 for m1" metric_is "$(addr 1)" 0
    requests 60 >"$WORK/s1.a"
    check "60 requests all answered ($(answered "$WORK/s1.a"))" test "$(answered "$WORK/s1.a")" -eq 60
    check "none by m1" test "$(served_by "$WORK/s1.a" m1)" -eq 0
    down_line="health: $(addr 1) (pool web) check default (tcp) DOWN"
    n=$(log_count "$down_line")
    check "the DOWN transition is logged exactly once (got $n)" test "$n" -eq 1
    grep -F -- "$down_line" "$WORK/sluice.out" | head -2 | sed 's/^/         /'
    check "m2 and m3 stayed up" bash -c "! grep -q 'health: 10.20.0.1[23]:8080 .* DOWN' $WORK/sluice.out"

    "$LABSH" start-member 1
    expect_state "m1 up again within 10s of its server's return (rise 2)" "$(addr 1)" up 10
    check "the UP transition is logged" \
        grep -qE "health: 10\.20\.0\.11:8080 \(pool web\) check default \(tcp\) UP" "$WORK/sluice.out"
    check "metric sluice_member_up is 1 for m1 again" metric_is "$(addr 1)" 1
    requests 30 >"$WORK/s1.b"
    check "30 requests all answered" test "$(answered "$WORK/s1.b")" -eq 30
    n=$(served_by "$WORK/s1.b" m1)
    check "m1 takes new requests again ($n of 30)" test "$n" -ge 5
    # http.server logs nothing for a bare connect; --log-connections does.
    check "m2's server saw the tcp check connect from 10.20.0.1" grep -qx '10.20.0.1 connect' "$LAB_DIR/m2.log"
    done_scenario
fi

# --------------------------------------------------------------------------
section "2. checks come from the switch's address on the members' LAN, 10.20.0.1"
config s2 <<TOML
$(fast_check web http 'path = "/healthz"')
$(pool web web)
$(web_vs web)
TOML
declare -A before
for i in 1 2 3; do before[$i]=$(wc -l <"$LAB_DIR/m$i.log"); done
if boot s2; then
    all_up 5
    check "the check column names the http check \"web\"" every_line '$8 == "web"'
    sleep 2
    for i in 1 2 3; do
        tail -n +$((before[$i] + 1)) "$LAB_DIR/m$i.log" >"$WORK/s2.m$i"
        n=$(grep -c ' /healthz$' "$WORK/s2.m$i")
        check "m$i got GET /healthz from 10.20.0.1 ($n in ~2.5s)" test "$(grep -cx '10.20.0.1 /healthz' "$WORK/s2.m$i")" -ge 2
        check "m$i got /healthz from no other address" test "$(grep ' /healthz$' "$WORK/s2.m$i" | grep -vc '^10.20.0.1 ')" -eq 0
    done
    done_scenario
fi

# --------------------------------------------------------------------------
section "3. backup: serves only while no primary is up; primaries take over again"
config s3 <<TOML
$(fast_check fast tcp)

[pool.web]
health_check = "fast"
members = [
  { address = "$(addr 1)" },
  { address = "$(addr 2)" },
  { address = "$(addr 3)", backup = true },
]
$(web_vs web)
TOML
if boot s3; then
    all_up 5
    check "m3's role is backup, m1's and m2's primary ($(backups | tr '\n' ' '))" test "$(backups)" = "$(addr 3)"
    requests 30 >"$WORK/s3.a"
    check "30 requests answered ($(answered "$WORK/s3.a")), none by the backup m3" \
        test "$(answered "$WORK/s3.a")" -eq 30 -a "$(served_by "$WORK/s3.a" m3)" -eq 0
    "$LABSH" stop-member 1
    "$LABSH" stop-member 2
    expect_state "m1 down" "$(addr 1)" down 6
    expect_state "m2 down" "$(addr 2)" down 6
    requests 30 >"$WORK/s3.b"
    check "with both primaries down, 30 requests answered ($(answered "$WORK/s3.b"))" test "$(answered "$WORK/s3.b")" -eq 30
    check "all by the backup m3" test "$(served_by "$WORK/s3.b" m3)" -eq 30
    rm -f "$WORK/go.s3"
    keepalive s3.ka "$WORK/go.s3" 30
    check "a keep-alive connection opened now is on m3 (${KA_SERVER:-none})" test "$KA_SERVER" = m3
    "$LABSH" start-member 1
    "$LABSH" start-member 2
    expect_state "m1 up again" "$(addr 1)" up 6
    expect_state "m2 up again" "$(addr 2)" up 6
    requests 30 >"$WORK/s3.c"
    check "30 new requests answered ($(answered "$WORK/s3.c"))" test "$(answered "$WORK/s3.c")" -eq 30
    check "none by m3 once the primaries are back ($(served_by "$WORK/s3.c" m3))" test "$(served_by "$WORK/s3.c" m3)" -eq 0
    touch "$WORK/go.s3"
    wait_pid "$KA_PID" 10
    r=$(grep '^result' "$WORK/s3.ka.out")
    check "the session already on the backup continues ($r)" grep -q '^result second server=m3 ' "$WORK/s3.ka.out"
    done_scenario
fi

# --------------------------------------------------------------------------
section "4. http check: status and body decide"
config s4 <<TOML
$(fast_check web http 'path = "/healthz"' 'expect_status = [200]' 'expect_body = "ok"')
$(pool web web)
$(web_vs web)
TOML
if boot s4; then
    all_up 5
    printf '503\nmaintenance\n' >"$LAB_DIR/m2.health"
    expect_state "m2 answering 503 goes down" "$(addr 2)" down 6
    check "m2's last probe result says status 503" member_shows "$(addr 2)" "status 503"
    check "the DOWN line names the http check" \
        grep -qF "health: $(addr 2) (pool web) check web (http) DOWN" "$WORK/sluice.out"
    rm -f "$LAB_DIR/m2.health"
    expect_state "m2 answering 200 ok comes back" "$(addr 2)" up 6
    printf '200\nnothing to see\n' >"$LAB_DIR/m2.health"
    expect_state "m2 answering 200 without \"ok\" in the body goes down" "$(addr 2)" down 6
    check "m2's last probe result says body lacks" member_shows "$(addr 2)" "body lacks"
    rm -f "$LAB_DIR/m2.health"
    expect_state "m2 comes back" "$(addr 2)" up 6
    requests 30 >"$WORK/s4.a"
    check "30 requests answered ($(answered "$WORK/s4.a")), m2 among them ($(served_by "$WORK/s4.a" m2))" \
        test "$(answered "$WORK/s4.a")" -eq 30 -a "$(served_by "$WORK/s4.a" m2)" -ge 5
    done_scenario
fi

# --------------------------------------------------------------------------
section "5a. udp check: a datagram answered with \"server=\""
config s5a <<TOML
$(fast_check echo udp 'send = "ping"' 'expect = "server="')
$(pool web echo)
$(web_vs web)
TOML
m1log=$(wc -l <"$LAB_DIR/m1.log")
if boot s5a; then
    all_up 5
    check "the check column names the udp check \"echo\"" every_line '$8 == "echo"'
    "$LABSH" stop-member 3
    expect_state "m3 down once its server is gone (ICMP port unreachable)" "$(addr 3)" down 6
    "$LABSH" start-member 3
    expect_state "m3 up again on restart" "$(addr 3)" up 6
    check "m1 got the check datagrams from 10.20.0.1" grep -qx '10.20.0.1 udp' <(tail -n +$((m1log + 1)) "$LAB_DIR/m1.log")
    done_scenario
fi

section "5b. icmp check: echo requests dropped by the member's firewall"
config s5b <<TOML
$(fast_check ping icmp)
$(pool web ping)
$(web_vs web)
TOML
if boot s5b; then
    all_up 5
    block 1 "icmp type echo-request"
    expect_state "m1 down while it drops echo requests from 10.20.0.1" "$(addr 1)" down 6
    check "m2 stays up" wait_state "$(addr 2)" up 1
    unblock 1
    expect_state "m1 up again once the rule is gone" "$(addr 1)" up 6
    done_scenario
fi

section "5c. script check: exit status decides"
config s5c <<TOML
$(fast_check script script "command = [\"/bin/sh\", \"$WORK/member-check.sh\", \"--quick\"]")
$(pool web script)
$(web_vs web)
TOML
rm -f "$WORK/script-calls"
if boot s5c; then
    all_up 5
    touch "$WORK/down-10.20.0.12"
    expect_state "m2 down while its script exits 1" "$(addr 2)" down 6
    check "m1 stays up" wait_state "$(addr 1)" up 1
    rm -f "$WORK/down-10.20.0.12"
    expect_state "m2 up again once it exits 0" "$(addr 2)" up 6
    check "the script ran with SLUICE_MEMBER_ADDR, SLUICE_MEMBER_PORT and its arguments" \
        grep -qx '10.20.0.12 8080 --quick' "$WORK/script-calls"
    done_scenario
fi

# --------------------------------------------------------------------------
section "6. exception path: the kernel interface, its sockets, and a SYN flood at it"
"$LABSH" config dest_nat 2 >"$WORK/s6.toml"
if boot s6; then
    for _ in $(seq 50); do
        ip -4 addr show dev sluice-ext 2>/dev/null | grep -q 'inet 198.51.100.1/24' && break
        sleep 0.1
    done
    check "sluice-ext holds 198.51.100.1/24" bash -c "ip -4 addr show dev sluice-ext | grep -q 'inet 198.51.100.1/24'"
    check "sluice-int holds 10.20.0.1/24" bash -c "ip -4 addr show dev sluice-int | grep -q 'inet 10.20.0.1/24'"
    for p in ext int; do
        want=$(ctl status | awk -v p="$p" '$1 == "port" && $3 == p { print $5 }')
        got=$(cat "/sys/class/net/sluice-$p/address" 2>/dev/null)
        check "sluice-$p carries port $p's MAC (${got:-none} = ${want:-?})" test -n "$want" -a "$got" = "$want"
    done
    mkdir -p "$WORK/www"
    echo "hello from the kernel" >"$WORK/www/hello.txt"
    python3 -m http.server --bind 198.51.100.1 --directory "$WORK/www" 9099 >"$WORK/kernel-httpd.log" 2>&1 &
    khttpd=$!
    BG+=("$khttpd")
    for _ in $(seq 50); do
        ss -Hltn 'sport = :9099' | grep -q 198.51.100.1 && break
        sleep 0.1
    done
    got=$(client curl -s -m 5 http://198.51.100.1:9099/hello.txt)
    check "the client reaches a kernel socket on 198.51.100.1:9099 ($got)" test "$got" = "hello from the kernel"
    check "kernel ext: to_kernel > 0 ($(kernel_counter ext to_kernel))" test "$(kernel_counter ext to_kernel)" -gt 0
    check "kernel ext: from_kernel > 0 ($(kernel_counter ext from_kernel))" test "$(kernel_counter ext from_kernel)" -gt 0

    tk=$(counter to_kernel)
    rl=$(drops kernel_rate_limited)
    # At most 4 s and 200000 SYNs, from the client's own address.
    client timeout -k 2 -s INT 4 hping3 -q -S -p 9099 -i u20 -c 200000 198.51.100.1 >"$WORK/hping.out" 2>&1 &
    flood=$!
    BG+=("$flood")
    sleep 0.5
    requests 50 >"$WORK/s6.a"
    wait_pid "$flood" 8
    sent=$(grep -o '^[0-9]* packets transmitted' "$WORK/hping.out" | awk '{print $1}')
    echo "  info hping3 sent ${sent:-?} SYNs in 4 s"
    check "50 requests through the VIP during the flood all answered ($(answered "$WORK/s6.a"))" \
        test "$(answered "$WORK/s6.a")" -eq 50
    tk2=$(counter to_kernel)
    check "to_kernel grew during the flood ($tk -> $tk2)" test "$tk2" -gt "$tk"
    rl2=$(drops kernel_rate_limited)
    if [ "$rl2" -gt "$rl" ]; then
        ok "the kernel rate limiter dropped $((rl2 - rl)) frames"
    else
        echo "  info the kernel rate limiter dropped nothing (kernel_rate_limited $rl2, to_kernel $tk2): hping3's rate is below the limit"
    fi
    echo "  info kernel_ring_full $(drops kernel_ring_full), kernel ext: to_kernel $(kernel_counter ext to_kernel) from_kernel $(kernel_counter ext from_kernel)"
    got=""
    for _ in 1 2 3; do
        got=$(client curl -s -m 5 http://198.51.100.1:9099/hello.txt) && break
        sleep 1
    done
    check "the kernel socket still answers after the flood" test "$got" = "hello from the kernel"
    check "ping 198.51.100.1 still answered" client ping -c 1 -W 2 198.51.100.1
    kill "$khttpd" 2>/dev/null
    wait "$khttpd" 2>/dev/null
    done_scenario
    gone=1
    for _ in $(seq 30); do
        gone=1
        ip link show sluice-ext >/dev/null 2>&1 && gone=0
        [ "$gone" = 1 ] && break
        sleep 0.1
    done
    check "sluice-ext is gone once sluice exits" test "$gone" = 1
fi

# --------------------------------------------------------------------------
section "7. on_member_down = \"reset\": a dead member's connections are reset at both ends"
config s7 <<TOML
$(fast_check fast tcp)
$(pool web fast 'on_member_down = "reset"')
$(web_vs web)
TOML
if boot s7; then
    all_up 5
    rm -f "$WORK/go.s7"
    # Connections until one lands on another member than the first.
    names=() servers=() pids=()
    for k in 1 2 3 4 5 6; do
        if ! keepalive "s7.ka$k" "$WORK/go.s7" 25; then
            bad "keep-alive client $k got its first answer"
            sed 's/^/         /' "$WORK/s7.ka$k.out"
            break
        fi
        names+=("s7.ka$k"); servers+=("$KA_SERVER"); pids+=("$KA_PID")
        [ "$KA_SERVER" != "${servers[0]}" ] && break
    done
    if [ ${#servers[@]} -gt 0 ]; then
        victim=${servers[0]#m}
        echo "  info clients on: ${servers[*]}; m$victim's checks will fail"
        est=$(in_member "$victim" ss -Htn state established '( sport = :8080 )' | grep -c 198.51.100.2)
        check "m$victim holds the client's connection ($est)" test "$est" -ge 1
        sr=$(counter sessions_reset)
        block "$victim"
        expect_state "m$victim down while it drops packets from 10.20.0.1" "$(addr "$victim")" down 6
        for k in "${!servers[@]}"; do
            [ "${servers[$k]}" = "m$victim" ] || continue
            wait_pid "${pids[$k]}" 10
            r=$(grep '^result' "$WORK/${names[$k]}.out")
            check "client ${names[$k]} on m$victim: connection reset (${r:-nothing})" test "$r" = "result reset"
        done
        for _ in $(seq 30); do
            est=$(in_member "$victim" ss -Htn state established '( sport = :8080 )' | grep -c 198.51.100.2)
            [ "$est" -eq 0 ] && break
            sleep 0.1
        done
        check "m$victim's end of the connection was reset too ($est left)" test "$est" -eq 0
        check "sessions_reset counted ($sr -> $(counter sessions_reset))" test "$(counter sessions_reset)" -gt "$sr"
        touch "$WORK/go.s7"
        for k in "${!servers[@]}"; do
            [ "${servers[$k]}" != "m$victim" ] || continue
            wait_pid "${pids[$k]}" 10
            r=$(grep '^result' "$WORK/${names[$k]}.out")
            check "client ${names[$k]} on ${servers[$k]} is untouched (${r:-nothing})" \
                grep -q "^result second server=${servers[$k]} " "$WORK/${names[$k]}.out"
        done
        unblock "$victim"
        expect_state "m$victim up again once the rule is gone" "$(addr "$victim")" up 6
        requests 9 >"$WORK/s7.a"
        check "9 requests answered ($(answered "$WORK/s7.a"))" test "$(answered "$WORK/s7.a")" -eq 9
    fi
    done_scenario
fi

# --------------------------------------------------------------------------
section "8. no member left: TCP refused with a RST, UDP with ICMP port unreachable"
config s8 <<TOML
$(fast_check script script "command = [\"/bin/sh\", \"$WORK/member-check.sh\"]")
$(pool web script)
$(web_vs web)
TOML
if boot s8; then
    all_up 5
    touch "$WORK/down-all"
    for i in 1 2 3; do expect_state "m$i down" "$(addr "$i")" down 6; done
    t0=$(date +%s%N)
    client curl -s -m 3 "http://$VIP/" >/dev/null 2>&1; rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    check "curl fails with exit 7, connection refused (rc=$rc, ${ms} ms)" test "$rc" -eq 7
    udp=$(client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(('$VIP', 8080)); s.send(b'hi')
try:
    print('answer', s.recv(100))
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')" 2>&1)
    check "a UDP datagram gets ICMP port unreachable ($udp)" test "$udp" = refused
    n=$(vs_counter web rejected_no_member)
    check "virtual_server web rejected_no_member > 0 ($n)" test "$n" -gt 0
    n=$(vs_counter web-udp rejected_no_member)
    check "virtual_server web-udp rejected_no_member > 0 ($n)" test "$n" -gt 0
    check "metric sluice_member_up is 0 for m2" metric_is "$(addr 2)" 0
    check "the VIP still answers ping" client ping -c 1 -W 2 $VIP
    rm -f "$WORK/down-all"
    for i in 1 2 3; do expect_state "m$i up again" "$(addr "$i")" up 6; done
    got=$(client curl -s -m 5 "http://$VIP/")
    check "requests are answered again ($got)" grep -q '^server=m' <<<"$got"
    done_scenario
fi

# --------------------------------------------------------------------------
section "9. the contract's example configuration, in the lab"
m3mac=$(in_member 3 cat /sys/class/net/eth0/address)   # the contract's static neighbour, for real
metrics=127.0.0.1:19919
cat >"$WORK/s9.toml" <<TOML
# /work/shared/contract/sluice.toml with the lab's ports and addresses; without
# what later issues bring (other methods, max_connections, persistence,
# reset_on_timeout, source ACLs, slow_start, IPv6).
[dataplane]
workers = 2
eal_args = ["--no-huge", "-m", "512", "--log-level=lib.eal:warning"]
sessions_per_worker = 65536
burst = 32
poll = "adaptive"

[control]
socket = "$LAB_DIR/sluice.sock"
metrics = "$metrics"

[timeouts]
tcp_syn = "30s"
tcp_established = "15m"
tcp_fin = "2m"
tcp_close = "10s"
udp = "5m"
icmp = "30s"

[[interface]]
name = "ext"
device = "net_af_packet0,iface=${LAB}-ext"
addresses = ["198.51.100.1/24"]
mtu = 1500

[[interface]]
name = "int"
device = "net_af_packet1,iface=${LAB}-int"
addresses = ["10.20.0.1/24"]

[[route]]
destination = "0.0.0.0/0"
gateway = "198.51.100.254"

[[neighbor]]
address = "10.20.0.13"
mac = "$m3mac"
interface = "int"

[health_check.web]
kind = "http"
interval = "2s"
timeout = "1s"
fall = 4
rise = 2
path = "/healthz"
expect_status = [200]

[pool.web]
method = "round_robin"
health_check = "web"
members = [
  { address = "10.20.0.11:8080", weight = 1 },
  { address = "10.20.0.12:8080", weight = 2 },
  { address = "10.20.0.13:8080", backup = true },
]

[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
forwarding = "dest_nat"
idle_timeout = "15m"
TOML
out=$("$SLUICE" --config "$WORK/s9.toml" --check 2>&1); rc=$?
check "--check accepts it" test "$rc" -eq 0
[ "$rc" -eq 0 ] || sed 's/^/         /' <<<"$out" | head -5
if boot s9; then
    all_up 5
    check "m3 is the backup" test "$(backups)" = "$(addr 3)"
    check "the check column names \"web\"" every_line '$8 == "web"'
    requests 30 >"$WORK/s9.a"
    check "30 requests answered ($(answered "$WORK/s9.a")) by m1 and m2 ($(served_by "$WORK/s9.a" m1)/$(served_by "$WORK/s9.a" m2))" \
        test "$(answered "$WORK/s9.a")" -eq 30 -a "$(served_by "$WORK/s9.a" m3)" -eq 0
    "$LABSH" stop-member 2
    expect_state "m2 down within 12s of dying (2s x 4 + 2s)" "$(addr 2)" down 12
    requests 30 >"$WORK/s9.b"
    check "then 30 new requests all answered ($(answered "$WORK/s9.b")), all by m1 (the backup stays idle)" \
        test "$(answered "$WORK/s9.b")" -eq 30 -a "$(served_by "$WORK/s9.b" m1)" -eq 30
    check "the DOWN transition is logged once" \
        test "$(log_count "health: $(addr 2) (pool web) check web (http) DOWN")" -eq 1
    "$LABSH" start-member 2
    expect_state "m2 up again within 10s" "$(addr 2)" up 10
    check "GET /metrics says m2 is up" grep -qxF "sluice_member_up{virtual_server=\"web\",pool=\"web\",member=\"$(addr 2)\"} 1" \
        <(curl -s -m 3 "http://$metrics/metrics")
    done_scenario
fi

"$LABSH" down >/dev/null
finish
