#!/usr/bin/env bash
# Balancing methods, persistence, member limits, source ACLs and session
# endings, with real servers in the Dest-NAT lab: smooth weighted round robin
# (exact with 1 worker); source_hash keeps a client on its member and
# source_port_hash does not; persistence per client address and per /24,
# across workers, and away from a member that went down; least connections
# sends new sessions to the idle member; maglev spreads one client's
# connections and maps the same flows to the same members after a restart;
# max_connections fills primaries, then backups, then refuses with a RST;
# slow_start ramps a returning member's weight; reset_on_timeout resets an
# idle session at both ends; allow_sources / deny_sources by longest prefix;
# weight 0 takes no sessions.
#
# One lab for the whole file; each scenario boots sluice with its own
# configuration (2 workers unless said) and leaves the members as it found
# them (servers running). Extra client addresses 198.51.100.3-5 live on the
# client's c0 for the whole file and are removed at the end. Waits are bounded
# polls; background clients have their own time limits and are killed on any
# exit.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VIP=198.51.100.10
LABSH=$HERE/scripts/lab.sh
EXTRA=()   # client addresses this test added to c0 (ADDR/LEN)

# Background processes are this shell's jobs (started with ip netns exec,
# which execs its command, so a job's pid is the client's own); on any exit
# the ones still running are killed, by pid.
balance_cleanup() {
    local p a running
    running=$(jobs -rp)
    for p in $running; do kill "$p" 2>/dev/null; done
    for p in $running; do wait "$p" 2>/dev/null; done
    for a in "${EXTRA[@]}"; do client ip addr del "$a" dev c0 2>/dev/null; done
}
trap 'balance_cleanup; cleanup' EXIT

addr() { echo "10.20.0.1$1:8080"; }               # member N's address
in_member() { local n=$1; shift; ip netns exec "${LAB}-m$n" "$@"; }

# add_client N: 198.51.100.N on the client's c0 (a secondary address; the
# client's own traffic keeps 198.51.100.2 as its source).
add_client() {
    client ip addr add "198.51.100.$1/24" dev c0 && EXTRA+=("198.51.100.$1/24")
}

# requests N [SOURCE] [PATH]: N sequential GETs through the VIP, from SOURCE
# (an address of the client namespace; default its own); one
# "server=mX client=IP" (or "FAILED curl-exit-status") per line.
requests() {
    local n=$1 src=${2:-} path=${3:-/} opt=""
    [ -z "$src" ] || opt="--interface $src"
    client bash -c "for i in \$(seq $n); do curl -s -m 5 $opt http://$VIP$path || echo FAILED \$?; done"
}
answered() { grep -c '^server=' "$1"; }
served_by() { grep -c "^server=$2 " "$1"; }        # FILE mN
# spread FILE: "m1=A m2=B m3=C" and the failures' curl exit statuses, for messages.
spread() {
    local f
    f=$(awk '$1 == "FAILED" { print "rc=" $2 }' "$1" | sort | uniq -c | awk '{ printf " failed %s x%s", $2, $1 }')
    echo "m1=$(served_by "$1" m1) m2=$(served_by "$1" m2) m3=$(served_by "$1" m3)$f"
}
# servers FILE: how many members answered.
servers() { grep -o '^server=m[0-9]' "$1" | sort -u | wc -l; }
# the_server FILE: the member (mN) that answered every line, or nothing.
the_server() {
    [ "$(servers "$1")" -eq 1 ] && [ "$(answered "$1")" -eq "$(wc -l <"$1")" ] || return 0
    sed -n '1s/^server=\(m[0-9]\) .*/\1/p' "$1"
}

# mcol N COL: column COL of member mN's line of virtual server web in `sluicectl members`:
# virtual_server pool member role state since sessions check latency weight effective limit last
mcol() {
    ctl members 2>/dev/null | awk -v m="$(addr "$1")" -v c="$2" 'NR > 1 && $1 == "web" && $3 == m { print $c; exit }'
}
sessions_of() { mcol "$1" 7; }
total_sessions() { ctl members 2>/dev/null | awk 'NR > 1 && $1 == "web" { s += $7 } END { print s + 0 }'; }
# busy: the members (mN) of web with at least one session, e.g. "m1 m3".
busy() {
    ctl members 2>/dev/null | awk 'NR > 1 && $1 == "web" && $7 > 0 { sub(/^10\.20\.0\.1/, "m", $3); sub(/:.*/, "", $3); printf "%s%s", s, $3; s = " " }'
}
# vs_method VS: the method `sluicectl virtual-servers` shows for VS.
vs_method() { ctl virtual-servers 2>/dev/null | awk -v v="$1" '$1 == v && $5 == "method" { print $6; exit }'; }
method_shown() { # VS METHOD
    local got; got=$(vs_method "$1")
    check "virtual-servers shows $1 with method $2 (${got:-nothing})" test "$got" = "$2"
}
# worker_counter W NAME: one worker's counter.
worker_counter() {
    ctl stats | awk -v w="$1:" -v n="$2" '$1 == "worker" && $2 == w { for (i = 3; i < NF; i++) if ($i == n) s += $(i + 1) } END { print s + 0 }'
}
created() { echo "$(worker_counter 0 sessions_created) $(worker_counter 1 sessions_created)"; }
# owner BEFORE AFTER: the worker whose sessions_created grew ("0", "1", or "both").
owner() {
    local b=($1) a=($2)
    if [ "${a[0]}" -gt "${b[0]}" ] && [ "${a[1]}" -eq "${b[1]}" ]; then echo 0
    elif [ "${a[1]}" -gt "${b[1]}" ] && [ "${a[0]}" -eq "${b[0]}" ]; then echo 1
    else echo both; fi
}

is() { [ "$("${@:2}")" = "$1" ]; }                   # is VALUE COMMAND...: COMMAND prints VALUE
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }   # lt A B: numbers, A < B
eq() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 == b + 0) }'; }  # eq A B: numbers, A = B

# expect_state DESCRIPTION N STATE SECONDS
expect_state() {
    if wait_state "$(addr "$2")" "$3" "$4"; then
        ok "$1 (${WAITED}s)"
    else
        bad "$1: not $3 within $4s; sluicectl members says:"
        member_lines "$(addr "$2")" | sed 's/^/         /'
    fi
}

# bg_client OUT COMMAND...: COMMAND in the client namespace in the background
# (ip netns exec execs it, so the pid is the command's), output to OUT; pid in LAST_BG.
bg_client() {
    local out=$1; shift
    ip netns exec "${LAB}-client" "$@" >"$out" 2>&1 </dev/null &
    LAST_BG=$!
}
# hold NAME SECONDS: a GET /sleep?s=SECONDS in the background (the member
# answers after SECONDS), answer in $WORK/NAME.out, pid in LAST_BG.
hold() {
    bg_client "$WORK/$1.out" curl -s -m $(($2 + 10)) "http://$VIP/sleep?s=$2"
}
# wait_pid PID SECONDS: waits for a background job, kills it when the time is up.
wait_pid() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        jobs -rp | grep -qx "$pid" || break
        sleep 0.1
    done
    jobs -rp | grep -qx "$pid" && kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
running() { jobs -rp | grep -qx "$1"; }          # running PID: a background job still runs
all_running() { local p; for p; do running "$p" || return 1; done; }
# curl_rc [CURL OPTIONS...]: one GET through the VIP; leaves curl's exit status
# in RC, its time in MS and its answer in GOT.
curl_rc() {
    local t0
    t0=$(date +%s%N)
    GOT=$(client curl -s "$@" "http://$VIP/" 2>/dev/null); RC=$?
    MS=$((($(date +%s%N) - t0) / 1000000))
}

# Members as the lab made them: servers running.
restore_members() {
    local i
    for i in 1 2 3; do "$LABSH" start-member "$i" >/dev/null || bad "member m$i's server restarts"; done
}
# warm: every member and every client address pings the switch once (in
# parallel, 3 s at most), so that the switch knows their MACs before the
# first connection: a fresh switch drops the first packet it cannot forward
# yet, and the client's retransmission comes a second later, long enough to
# make an answered request look refused. "ok" or "fail" in $WORK/warm.ADDR.
warm() {
    local pids=() names=() i a k
    for i in 1 2 3; do
        ip netns exec "${LAB}-m$i" ping -q -c 1 -w 3 -i 0.2 10.20.0.1 >/dev/null 2>&1 &
        pids+=($!); names+=("10.20.0.1$i")
    done
    for a in 198.51.100.2 "${EXTRA[@]%/*}"; do
        [ "${a%.*}" = 198.51.100 ] || continue
        ip netns exec "${LAB}-client" ping -q -I "$a" -c 1 -w 3 -i 0.2 198.51.100.1 >/dev/null 2>&1 &
        pids+=($!); names+=("$a")
    done
    for k in "${!pids[@]}"; do
        if wait "${pids[$k]}"; then echo ok; else echo fail; fi >"$WORK/warm.${names[$k]}"
    done
    for k in "${names[@]}"; do
        grep -qx ok "$WORK/warm.$k" || echo "  info $k did not get an answer from the switch (ping)"
    done
}
reaches() { grep -qx ok "$WORK/warm.$1"; }         # reaches ADDR: ADDR's warm-up ping was answered
# boot NAME: sluice with $WORK/NAME.toml, members restored first, neighbours warmed.
boot() {
    restore_members
    if start_sluice "$WORK/$1.toml"; then warm; return 0; fi
    bad "sluice starts with $1.toml"   # start_sluice showed why
    return 1
}
# done_scenario: stop sluice (it must exit 0), restore the members.
done_scenario() {
    stop_sluice; local rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
    restore_members
}
all_up() {
    local i
    for i in 1 2 3; do expect_state "m$i is up" "$i" up "$1"; done
}

# Configuration pieces.
# fast_check NAME KIND: a check every 500 ms, down after 2 failures, up after 2 successes.
fast_check() {
    printf '\n[health_check.%s]\nkind = "%s"\ninterval = "500ms"\ntimeout = "400ms"\nfall = 2\nrise = 2\n' "$1" "$2"
}
# pool NAME CHECK M1 M2 M3 [KEY = VALUE lines...]: the three members, Mi the
# extra keys of member i ("" for none, else e.g. 'weight = 2, backup = true').
pool() {
    local name=$1 hc=$2 m=("$3" "$4" "$5") i
    shift 5
    printf '\n[pool.%s]\nhealth_check = "%s"\n' "$name" "$hc"
    [ $# -eq 0 ] || printf '%s\n' "$@"
    printf 'members = [\n'
    for i in 1 2 3; do
        printf '  { address = "%s"%s },\n' "$(addr "$i")" "${m[i - 1]:+, ${m[i - 1]}}"
    done
    printf ']\n'
}
# vs NAME PORT POOL [KEY = VALUE lines...]: a tcp dest_nat virtual server on the VIP.
vs() {
    local name=$1 port=$2 p=$3
    shift 3
    printf '\n[[virtual_server]]\nname = "%s"\naddress = "%s:%s"\nprotocol = "tcp"\npool = "%s"\nforwarding = "dest_nat"\n' \
        "$name" "$VIP" "$port" "$p"
    [ $# -eq 0 ] || printf '%s\n' "$@"
}
# config NAME WORKERS: the lab's dataplane (adaptive polling) and ports, then stdin.
config() { { "$LABSH" config-base "$2"; cat; } >"$WORK/$1.toml"; }

# fixed_ports.py VIP FIRST COUNT: one GET from each local port FIRST..FIRST+COUNT-1,
# "PORT server=mN" (or "PORT FAILED reason") per line. Each connection ends
# with a RST (SO_LINGER 0), so no TIME_WAIT keeps the port from being used
# again; use ports above the ephemeral range (32768-60999), which curl's
# TIME_WAITs may hold.
cat >"$WORK/fixed_ports.py" <<'PY'
import socket, struct, sys
vip, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for port in range(first, first + count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(5)
    try:
        s.bind(("0.0.0.0", port))
        s.connect((vip, 80))
        s.sendall(f"GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n".encode())
        buf = b""
        while b"\n" not in buf.partition(b"\r\n\r\n")[2]:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        body = buf.partition(b"\r\n\r\n")[2].decode().strip()
        print(port, body.split()[0] if body else "FAILED empty", flush=True)
    except OSError as e:
        print(port, "FAILED", e, flush=True)
    finally:
        s.close()
PY

# idle.py VIP PORT LIMIT: connects, prints "port LOCALPORT", sends one
# keep-alive request and prints "first <answer>", then only waits, at most
# LIMIT seconds: "result reset T" (a RST after T seconds of idling), "result
# closed T", or "result timeout".
cat >"$WORK/idle.py" <<'PY'
import socket, sys, time
vip, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((vip, port), timeout=5)
print("port", s.getsockname()[1], flush=True)
s.sendall(f"GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n".encode())
buf = b""
while b"\n" not in buf.partition(b"\r\n\r\n")[2]:
    d = s.recv(4096)
    if not d:
        print("result closed before the answer", flush=True)
        sys.exit(0)
    buf += d
print("first", buf.partition(b"\r\n\r\n")[2].decode().strip(), flush=True)
t0 = time.monotonic()
s.settimeout(limit)
try:
    d = s.recv(4096)
    print(f"result closed {time.monotonic() - t0:.1f}" if not d else f"result data {d[:40]!r}", flush=True)
except ConnectionResetError:
    print(f"result reset {time.monotonic() - t0:.1f}", flush=True)
except socket.timeout:
    print("result timeout", flush=True)
PY

"$LABSH" up >/dev/null
for n in 3 4 5; do add_client "$n" || bad "198.51.100.$n added to the client's c0"; done

# --------------------------------------------------------------------------
section "1. weighted_round_robin 1:2:3 (smooth): exact with 1 worker, per worker with 2"
for workers in 1 2; do
    config "s1w$workers" "$workers" <<TOML
$(pool web none 'weight = 1' 'weight = 2' 'weight = 3' 'method = "weighted_round_robin"')
$(vs web 80 web)
TOML
    if boot "s1w$workers"; then
        [ "$workers" = 1 ] && method_shown web weighted_round_robin
        check "members shows weights 1 2 3 ($(mcol 1 10) $(mcol 2 10) $(mcol 3 10))" \
            test "$(mcol 1 10) $(mcol 2 10) $(mcol 3 10)" = "1 2 3"
        requests 600 >"$WORK/s1w$workers.a"
        f=$WORK/s1w$workers.a
        check "$workers worker(s): 600 requests all answered ($(answered "$f"))" test "$(answered "$f")" -eq 600
        if [ "$workers" = 1 ]; then
            check "1 worker: exactly 100/200/300 ($(spread "$f"))" \
                test "$(served_by "$f" m1) $(served_by "$f" m2) $(served_by "$f" m3)" = "100 200 300"
        else
            for i in 1 2 3; do
                n=$(served_by "$f" "m$i")
                check "2 workers: m$i answered $((i * 100)) +- 6 ($n)" test "$n" -ge $((i * 100 - 6)) -a "$n" -le $((i * 100 + 6))
            done
        fi
        done_scenario
    fi
done

# --------------------------------------------------------------------------
section "2. source_hash keeps a client on one member; source_port_hash spreads it"
config s2 2 <<TOML
$(pool web none '' '' '' 'method = "source_hash"')
$(vs web 80 web)
TOML
if boot s2; then
    method_shown web source_hash
    requests 60 >"$WORK/s2.c2"
    m=$(the_server "$WORK/s2.c2")
    check "60 connections from 198.51.100.2 all answered by one member (${m:-$(spread "$WORK/s2.c2")})" test -n "$m"
    seen="${m:-?}"
    for n in 3 4 5; do
        requests 20 "198.51.100.$n" >"$WORK/s2.c$n"
        m=$(the_server "$WORK/s2.c$n")
        check "20 connections from 198.51.100.$n all answered by one member (${m:-$(spread "$WORK/s2.c$n")})" test -n "$m"
        check "  and the member saw 198.51.100.$n" test "$(grep -c "client=198.51.100.$n\$" "$WORK/s2.c$n")" -eq 20
        seen="$seen ${m:-?}"
    done
    echo "  info clients .2 .3 .4 .5 on: $seen"
    requests 10 >"$WORK/s2.again"
    check "198.51.100.2 still on its member afterwards ($(the_server "$WORK/s2.again"))" \
        test -n "$(the_server "$WORK/s2.again")" -a "$(the_server "$WORK/s2.again")" = "$(the_server "$WORK/s2.c2")"
    done_scenario
fi
config s2p 2 <<TOML
$(pool web none '' '' '' 'method = "source_port_hash"')
$(vs web 80 web)
TOML
if boot s2p; then
    method_shown web source_port_hash
    requests 60 >"$WORK/s2p.a"
    check "source_port_hash: 60 connections from one client all answered ($(answered "$WORK/s2p.a"))" \
        test "$(answered "$WORK/s2p.a")" -eq 60
    check "  and spread over more than one member ($(spread "$WORK/s2p.a"))" test "$(servers "$WORK/s2p.a")" -gt 1
    done_scenario
fi

# --------------------------------------------------------------------------
section "3. persistence: a client keeps its member (per address, per /24, across workers), leaves it when it goes down"
config s3 2 <<TOML
$(fast_check fast tcp)
$(pool web fast '' '' '' 'method = "round_robin"')
$(vs web 80 web 'persistence = { timeout = "30s", netmask = 32 }')
TOML
if boot s3; then
    all_up 5
    requests 60 >"$WORK/s3.c2"
    m2=$(the_server "$WORK/s3.c2")
    check "netmask 32: 60 connections of 198.51.100.2 all reach one member (${m2:-$(spread "$WORK/s3.c2")})" test -n "$m2"
    [ -n "$m2" ] || grep -F 'health:' "$WORK/sluice.out" | head -5 | sed 's/^/         /'
    requests 20 198.51.100.3 >"$WORK/s3.c3"
    m3=$(the_server "$WORK/s3.c3")
    check "netmask 32: 198.51.100.3 keeps one member over 20 connections (${m3:-$(spread "$WORK/s3.c3")})" test -n "$m3"
    pe=$(counter persistence_entries)
    ph=$(counter persistence_hits)
    check "persistence_entries > 0 ($pe)" test "$pe" -gt 0
    check "persistence_hits > 0 ($ph)" test "$ph" -gt 0
    if [ -n "$m2" ]; then
        victim=${m2#m}
        "$LABSH" stop-member "$victim"
        expect_state "the remembered member $m2 is down" "$victim" down 6
        requests 20 >"$WORK/s3.moved"
        moved=$(the_server "$WORK/s3.moved")
        check "198.51.100.2 moved to one other member and stays there over 20 connections (${moved:-$(spread "$WORK/s3.moved")})" \
            test -n "$moved" -a "$moved" != "$m2"
    fi
    done_scenario
fi
# Netmask 24 across workers. Each worker runs its own round robin from the
# same start, so first picks alone could make clients look as if they shared
# a member. So a client of another /24 (198.18.K.1, routed via the client's
# address) first moves the round robin of the other worker past .3's member;
# clients of 198.51.100.0/24 then reach .3's member only through the
# persistence entry, which the /24's one owning worker holds.
config s3n 2 <<TOML
$(pool web none '' '' '' 'method = "round_robin"')
$(vs web 80 web 'persistence = { timeout = "30s", netmask = 24 }')

[[route]]
destination = "198.18.0.0/15"
gateway = "198.51.100.2"
TOML
if boot s3n; then
    before=$(created)
    requests 15 198.51.100.3 >"$WORK/s3n.c3"
    w3=$(owner "$before" "$(created)")
    x=$(the_server "$WORK/s3n.c3")
    check "netmask 24: 198.51.100.3 keeps one member over 15 connections (${x:-$(spread "$WORK/s3n.c3")}), owned by worker $w3" \
        test -n "$x" -a "$w3" != both
    primed=""
    if [ -n "$x" ] && [ "$w3" != both ]; then
        for k in 1 2 3 4 5 6 7 8; do
            a=198.18.$k.1
            client ip addr add "$a/32" dev c0 && EXTRA+=("$a/32")
            before=$(created)
            got=$(client curl -s -m 5 --interface "$a" "http://$VIP/")
            w=$(owner "$before" "$(created)")
            echo "  info $a (another /24): worker $w, ${got%% *}"
            if [ "$w" != "$w3" ] && [ "$w" != both ] && [ "${got%% *}" = "server=$x" ]; then primed=$w; break; fi
        done
    fi
    check "worker ${primed:-?}'s round robin gave a client of another /24 $x, so its next pick is another member" test -n "$primed"
    all=1; owners=".3:w$w3"
    for n in 4 5 2; do
        before=$(created)
        requests 15 "198.51.100.$n" >"$WORK/s3n.c$n"
        owners="$owners .$n:w$(owner "$before" "$(created)")"
        m=$(the_server "$WORK/s3n.c$n")
        [ -n "$m" ] && [ "$m" = "$x" ] || all=0
        echo "  info 198.51.100.$n: $(spread "$WORK/s3n.c$n")"
    done
    check "netmask 24: .4 .5 .2 (15 connections each) all reach .3's member ${x:-?}" test "$all" = 1 -a -n "$x"
    # Sessions are owned by the client address masked to the persistence
    # netmask: the whole /24 lands on .3's worker, which holds the one entry.
    check "  all owned by .3's worker $w3, which holds the /24's entry ($owners)" \
        test "$(tr ' ' '\n' <<<"$owners" | grep -vc ":w$w3\$")" -eq 0
    done_scenario
fi

# --------------------------------------------------------------------------
section "4. least_connections: new sessions go to the idle member while two are busy"
config s4 2 <<TOML
$(pool web none '' '' '' 'method = "least_connections"')
$(vs web 80 web)
TOML
if boot s4; then
    method_shown web least_connections
    hold s4.h1 8; h1=$LAST_BG
    check "the first long connection shows as 1 session" wait_for 3 is 1 total_sessions
    hold s4.h2 8; h2=$LAST_BG
    check "the second long connection shows, 2 sessions" wait_for 3 is 2 total_sessions
    held=$(busy)
    idle=""
    for i in 1 2 3; do [ "$(sessions_of "$i")" = 0 ] && idle=m$i; done
    check "the long connections are on two members (${held:-none}), one is idle (${idle:-none})" \
        test "$(wc -w <<<"$held")" -eq 2 -a -n "$idle"
    requests 10 >"$WORK/s4.a"
    check "10 short requests all answered ($(answered "$WORK/s4.a"))" test "$(answered "$WORK/s4.a")" -eq 10
    check "  all by the idle member $idle ($(spread "$WORK/s4.a"))" test -n "$idle" -a "$(served_by "$WORK/s4.a" "${idle:-none}")" -eq 10
    check "  while both long connections were still open" all_running "$h1" "$h2"
    wait_pid "$h1" 15
    wait_pid "$h2" 15
    got="$(cat "$WORK/s4.h1.out") / $(cat "$WORK/s4.h2.out")"
    check "both long connections answered after their sleep ($got)" \
        bash -c "grep -q '^server=' $WORK/s4.h1.out && grep -q '^server=' $WORK/s4.h2.out"
    requests 30 >"$WORK/s4.b"
    n=$(answered "$WORK/s4.b")
    ok_spread=1
    for m in $held; do [ "$(served_by "$WORK/s4.b" "$m")" -gt 0 ] || ok_spread=0; done
    check "once they ended, 30 requests ($n answered) spread again, the formerly busy $held too ($(spread "$WORK/s4.b"))" \
        test "$n" -eq 30 -a "$ok_spread" = 1 -a -n "$held"
    done_scenario
fi

# --------------------------------------------------------------------------
section "5. maglev: one client's connections spread; the same flows map to the same members after a restart"
config s5 2 <<TOML
$(pool web none '' '' '' 'method = "maglev"' 'maglev_table_size = 65537')
$(vs web 80 web)
TOML
sed 's/^maglev_table_size = 65537$/maglev_table_size = 65536/' "$WORK/s5.toml" >"$WORK/s5bad.toml"
out=$("$SLUICE" --config "$WORK/s5bad.toml" --check 2>&1); rc=$?
check "--check refuses maglev_table_size = 65536 (not a prime) with exit 2 (rc=$rc)" test "$rc" -eq 2
check "  and says why: $(head -1 <<<"$out")" grep -q 'prime' <<<"$out"
if boot s5; then
    method_shown web maglev
    requests 300 >"$WORK/s5.a"
    check "300 connections from one client all answered ($(answered "$WORK/s5.a"))" test "$(answered "$WORK/s5.a")" -eq 300
    check "  each member got at least 50 ($(spread "$WORK/s5.a"))" \
        test "$(served_by "$WORK/s5.a" m1)" -ge 50 -a "$(served_by "$WORK/s5.a" m2)" -ge 50 -a "$(served_by "$WORK/s5.a" m3)" -ge 50
    client python3 "$WORK/fixed_ports.py" "$VIP" 61001 20 >"$WORK/s5.before"
    check "20 connections from source ports 61001-61020 answered ($(grep -c ' server=m' "$WORK/s5.before"))" \
        test "$(grep -c ' server=m' "$WORK/s5.before")" -eq 20
    check "  by more than one member ($(awk '{print $2}' "$WORK/s5.before" | sort | uniq -c | xargs))" \
        test "$(awk '{print $2}' "$WORK/s5.before" | sort -u | wc -l)" -gt 1
    stop_sluice; rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
    if boot s5; then
        client python3 "$WORK/fixed_ports.py" "$VIP" 61001 20 >"$WORK/s5.after"
        diffs=$(diff "$WORK/s5.before" "$WORK/s5.after" | grep -c '^>')
        check "after a restart the same 20 source ports reach the same members ($diffs differ)" \
            cmp -s "$WORK/s5.before" "$WORK/s5.after"
        [ "$diffs" -eq 0 ] || diff "$WORK/s5.before" "$WORK/s5.after" | head -6 | sed 's/^/         /'
        done_scenario
    fi
fi

# --------------------------------------------------------------------------
section "6. max_connections: full primaries send new sessions to the backup, then a RST"
config s6 2 <<TOML
$(pool web none 'max_connections = 1' 'max_connections = 1' 'backup = true, max_connections = 1' 'method = "round_robin"')
$(vs web 80 web)
TOML
if boot s6; then
    check "members shows limit 1 for every member ($(mcol 1 12) $(mcol 2 12) $(mcol 3 12))" \
        test "$(mcol 1 12) $(mcol 2 12) $(mcol 3 12)" = "1 1 1"
    hold s6.h1 10; h1=$LAST_BG
    check "held connection 1 shows as a session" wait_for 3 is 1 total_sessions
    hold s6.h2 10; h2=$LAST_BG
    check "held connection 2 shows, 2 sessions" wait_for 3 is 2 total_sessions
    check "  they fill m1 and m2 (busy: $(busy))" test "$(busy)" = "m1 m2"
    hold s6.h3 10; h3=$LAST_BG
    wait_for 3 is "m1 m2 m3" busy
    check "a third connection goes to the backup m3 (busy: $(busy))" is "m1 m2 m3" busy
    full=$(vs_counter web rejected_full)
    curl_rc -m 3
    check "a fourth connection is refused with a RST: curl exit 7 (rc=$RC) within 1.5 s (${MS} ms)" \
        test "$RC" -eq 7 -a "$MS" -lt 1500
    n=$(vs_counter web rejected_full)
    check "virtual_server web rejected_full counted ($full -> $n)" test "$n" -gt "$full"
    check "  while the three held connections were still open" all_running "$h1" "$h2" "$h3"
    for h in "$h1" "$h2" "$h3"; do wait_pid "$h" 20; done
    check "the held connections were answered by m1, m2 and the backup m3 ($(cat "$WORK"/s6.h[123].out | awk '{print $1}' | xargs))" \
        test "$(cat "$WORK"/s6.h[123].out | grep -o '^server=m[0-9]' | sort | xargs)" = "server=m1 server=m2 server=m3"
    check "once they ended, new connections are answered again (within 12 s)" \
        wait_for 12 bash -c "ip netns exec ${LAB}-client curl -s -m 2 http://$VIP/ | grep -q '^server=m'"
    done_scenario
fi

# --------------------------------------------------------------------------
section "7. slow_start: a member coming back up ramps its weight over 6 s"
config s7 2 <<TOML
$(fast_check fast tcp)
$(pool web fast 'weight = 100, slow_start = "6s"' 'weight = 100' 'weight = 100' 'method = "weighted_round_robin"')
$(vs web 80 web)
TOML
if boot s7; then
    all_up 5
    w=$(mcol 1 10); e=$(mcol 1 11)
    check "at boot m1's effective weight is its weight 100, no slow start (weight ${w:-?}, effective ${e:-?})" \
        bash -c "[ '$w' = 100 ] && [ '$e' = 100 ]"
    "$LABSH" stop-member 1
    expect_state "m1 down once its server stopped" 1 down 6
    "$LABSH" start-member 1
    expect_state "m1 up again" 1 up 6
    t_up=$(date +%s%N)
    e0=$(mcol 1 11)
    check "right after it came up, m1's effective weight is below its weight (${e0:-?} < 100)" lt "$e0" 100
    client bash -c "end=\$((\$(date +%s%N) + 2000000000)); n=0
        while [ \$(date +%s%N) -lt \$end ] && [ \$n -lt 400 ]; do curl -s -m 2 http://$VIP/ || echo FAILED \$?; n=\$((n + 1)); done" \
        >"$WORK/s7.a"
    n=$(wc -l <"$WORK/s7.a")
    m1=$(served_by "$WORK/s7.a" m1)
    check "requests in the first 2 s after up ($n) all answered ($(answered "$WORK/s7.a"))" \
        test "$n" -ge 10 -a "$(answered "$WORK/s7.a")" -eq "$n"
    check "  m1 got fewer than its round-robin share of them ($m1 < $n/3; $(spread "$WORK/s7.a"))" \
        test $((m1 * 3)) -lt "$n"
    samples="$e0"
    reached=""
    for _ in $(seq 40); do
        e=$(mcol 1 11)
        samples="$samples $e"
        if eq "$e" 100; then reached=$(awk -v d=$(($(date +%s%N) - t_up)) 'BEGIN { printf "%.1f", d / 1e9 }'); break; fi
        [ $(($(date +%s%N) - t_up)) -lt 10000000000 ] || break
        sleep 0.5
    done
    echo "  info m1's effective weight since up: $samples"
    check "m1's effective weight reaches its weight within 10 s of up (${reached:-not reached}s)" test -n "$reached"
    check "  not before 3 s (a ramp, not a jump)" awk -v r="${reached:-0}" 'BEGIN { exit !(r >= 3) }'
    check "  and never went down on the way" \
        awk -v s="$samples" 'BEGIN { n = split(s, a, " "); if (n < 2) exit 1; for (i = 2; i <= n; i++) if (a[i] + 0 < a[i - 1] + 0) exit 1 }'
    done_scenario
fi

# --------------------------------------------------------------------------
section "8. reset_on_timeout: an idle established session is reset at both ends"
config s8 2 <<TOML
$(pool web none '' '' '' 'method = "round_robin"')
$(vs web 80 web 'idle_timeout = "3s"' 'reset_on_timeout = true')
$(vs web-quiet 81 web 'idle_timeout = "3s"')
TOML
if boot s8; then
    bg_client "$WORK/s8.reset.out" python3 "$WORK/idle.py" "$VIP" 80 15; pr=$LAST_BG
    bg_client "$WORK/s8.quiet.out" python3 "$WORK/idle.py" "$VIP" 81 8; pq=$LAST_BG
    wait_for 5 grep -q '^first server=m' "$WORK/s8.reset.out"
    wait_for 5 grep -q '^first server=m' "$WORK/s8.quiet.out"
    port=$(awk '$1 == "port" { print $2 }' "$WORK/s8.reset.out")
    srv=$(sed -n 's/^first server=m\([0-9]\) .*/\1/p' "$WORK/s8.reset.out")
    qport=$(awk '$1 == "port" { print $2 }' "$WORK/s8.quiet.out")
    qsrv=$(sed -n 's/^first server=m\([0-9]\) .*/\1/p' "$WORK/s8.quiet.out")
    check "the idle clients got their first answers (m${srv:-?} from port ${port:-?}, m${qsrv:-?} from port ${qport:-?})" \
        test -n "$srv" -a -n "$port" -a -n "$qsrv" -a -n "$qport"
    # est N PORT: member N's established connections from the client's PORT.
    # (The lab's servers listen dual-stack: ss shows [::ffff:198.51.100.2]:PORT.)
    est() { in_member "$1" ss -Htn state established '( sport = :8080 )' | grep -cE "198\.51\.100\.2\]?:$2\b"; }
    if [ -n "$srv" ] && [ -n "$port" ]; then
        check "m$srv holds the connection from 198.51.100.2:$port" test "$(est "$srv" "$port")" -eq 1
        wait_pid "$pr" 15
        r=$(grep '^result' "$WORK/s8.reset.out")
        check "the client's recv fails with ConnectionResetError (${r:-nothing})" grep -q '^result reset ' <<<"$r"
        t=$(awk '$1 == "result" && $2 == "reset" { print $3 }' <<<"$r")
        check "  after idling between 2.5 and 10 s (${t:-?} s)" awk -v t="${t:-0}" 'BEGIN { exit !(t >= 2.5 && t <= 10) }'
        check "m$srv's side of the connection is gone too" wait_for 3 is 0 est "$srv" "$port"
        in_member "$srv" ss -Htn '( sport = :8080 )' | grep "198.51.100.2:$port\b" | sed 's/^/         m'"$srv"' still: /'
    fi
    if [ -n "$qsrv" ] && [ -n "$qport" ]; then
        wait_pid "$pq" 12
        r=$(grep '^result' "$WORK/s8.quiet.out")
        check "without reset_on_timeout (web-quiet) the client hears nothing (${r:-nothing})" test "$r" = "result timeout"
        check "  and m$qsrv's connection is still established" test "$(est "$qsrv" "$qport")" -eq 1
    fi
    check "web's sessions go back to 0 ($(total_sessions) now)" wait_for 5 is 0 total_sessions
    echo "  info sessions_reset $(counter sessions_reset), sessions_expired $(counter sessions_expired)"
    done_scenario
fi

# --------------------------------------------------------------------------
section "9. allow_sources / deny_sources: the longest prefix decides, deny wins a tie"
config s9 2 <<TOML
$(pool web none '' '' '' 'method = "round_robin"')
$(vs web 80 web 'allow_sources = ["198.51.100.0/24"]' 'deny_sources = ["198.51.100.3/32"]')
TOML
if boot s9; then
    curl_rc -m 5
    check "198.51.100.2 (allowed by the /24) is served ($GOT)" grep -q '^server=m' <<<"$GOT"
    curl_rc -m 5 --interface 198.51.100.5
    check "198.51.100.5 (allowed by the /24) is served ($GOT)" grep -q '^server=m' <<<"$GOT"
    d=$(vs_counter web denied)
    check "198.51.100.3 reaches the switch (its ping of 198.51.100.1 was answered)" reaches 198.51.100.3
    curl_rc -m 2 --interface 198.51.100.3
    check "198.51.100.3 (denied by a /32) gets no answer: curl times out, exit 28 (rc=$RC)" test "$RC" -eq 28
    n=$(vs_counter web denied)
    check "virtual_server web denied counted ($d -> $n)" test "$n" -gt "$d"
    curl_rc -m 5
    check "198.51.100.2 is still served ($GOT)" grep -q '^server=m' <<<"$GOT"
    done_scenario
fi
config s9b 2 <<TOML
$(pool web none '' '' '' 'method = "round_robin"')
$(vs web 80 web 'allow_sources = ["198.51.100.4/32", "198.51.100.5/32"]' 'deny_sources = ["198.51.100.0/24", "198.51.100.4/32"]')
TOML
if boot s9b; then
    d=$(vs_counter web denied)
    check "198.51.100.4 reaches the switch (its ping of 198.51.100.1 was answered)" reaches 198.51.100.4
    check "198.51.100.2 reaches the switch (its ping of 198.51.100.1 was answered)" reaches 198.51.100.2
    curl_rc -m 2 --interface 198.51.100.4
    check "198.51.100.4, allowed and denied by equal /32s: denied, curl exit 28 (rc=$RC)" test "$RC" -eq 28
    curl_rc -m 5 --interface 198.51.100.5
    check "198.51.100.5, allowed by a /32 inside the denied /24: served ($GOT)" grep -q '^server=m' <<<"$GOT"
    curl_rc -m 2
    check "198.51.100.2, only in the denied /24: denied, curl exit 28 (rc=$RC)" test "$RC" -eq 28
    n=$(vs_counter web denied)
    check "virtual_server web denied counted ($d -> $n)" test "$n" -gt "$d"
    done_scenario
fi

# --------------------------------------------------------------------------
section "10. weight = 0: a draining member gets no new sessions"
config s10 2 <<TOML
$(pool web none '' 'weight = 0' '' 'method = "round_robin"')
$(vs web 80 web)
TOML
if boot s10; then
    check "members shows m2 draining with weight 0 ($(mcol 2 5), $(mcol 2 10))" \
        test "$(mcol 2 5) $(mcol 2 10)" = "draining 0"
    requests 30 >"$WORK/s10.a"
    check "30 requests all answered ($(answered "$WORK/s10.a"))" test "$(answered "$WORK/s10.a")" -eq 30
    check "  none by m2, m1 and m3 both ($(spread "$WORK/s10.a"))" \
        test "$(served_by "$WORK/s10.a" m2)" -eq 0 -a "$(served_by "$WORK/s10.a" m1)" -gt 0 -a "$(served_by "$WORK/s10.a" m3)" -gt 0
    done_scenario
fi

for a in "${EXTRA[@]}"; do client ip addr del "$a" dev c0 2>/dev/null; done
EXTRA=()
"$LABSH" down >/dev/null
finish
