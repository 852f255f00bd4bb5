#!/usr/bin/env bash
# Sluice throughput benchmark on one worker core, without a NIC: the same
# pcap file replayed forever by net_pcap (infinite_rx=1) into
#   dpdk-testpmd --forward-mode=5tswap     (the ceiling: PMDs + a trivial rewrite)
#   sluice in every forwarding mode        (same file, same PMDs, same CPU):
#     IPv4: dest_nat both_nat lan_to_lan l2_dsr l3_dsr_ipip l3_dsr_gre l3_dsr_dscp
#     IPv6: dest_nat6 both_nat6 l2_dsr6     (an IPv6 file, after the IPv4 modes)
# with the out port a net_null (no-rx=1) that frees what it is given.
# Prints packets per second for each and the ratio sluice/testpmd, then the
# new sessions per second of one worker (every packet a SYN of a new flow).
# IPv6 traffic runs at the smallest IPv6 TCP frame: 78 bytes on the wire with
# the FCS, 74 without (IPv4: 64 and 60); testpmd runs the IPv6 file too.
# See BENCHMARKS.md for what the figures mean and what limits them.
#
# usage: scripts/bench.sh [--smoke] [--no-huge] [--flows "1000 1000000"]
#                         [--sizes "64 512"] [--sizes6 "78"] [--measure S]
#                         [--warmup S] [--new-flows N] [--cpu N] [--out DIR]
#                         [--keep] [--modes "dest_nat both_nat ... l2_dsr6"]
#   --smoke     CI mode: tiny flow counts, ~2 s per measurement, --no-huge;
#               exits non-zero only if something fails to run or sluice
#               forwards nothing (no timed assertions).
#   --sizes     IPv4 frame sizes, --sizes6 IPv6 frame sizes (bytes on the
#               wire with the FCS; at least 64 and 78).
#   --modes     the modes to run, IPv4 and IPv6 (names ending in 6) mixed.
#   --no-huge   4 KB pages instead of 2 MB hugepages.
#   --cpu N     the CPU of the forwarding lcore (default 1; the main lcore is
#               on the first other allowed CPU).
#   --out DIR   traffic files, configs, logs and results (default /tmp/sluice-bench)
# Run as root (hugepages). Environment: SLUICE_BIN, SLUICECTL_BIN, TESTPMD
# override the binaries (default: cargo build --release, dpdk-testpmd).
set -uo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0
NO_HUGE=0
FLOWS="1000 1000000"
SIZES="64 512"
SIZES6="78"
MEASURE=5
WARMUP=2
NEW_FLOWS=262144
CPU=1
OUT=/tmp/sluice-bench
KEEP=0
DATA_ROUNDS_SMALL=31   # data packets per flow in files of <= 64k flows
MODES4_ALL="dest_nat both_nat lan_to_lan l2_dsr l3_dsr_ipip l3_dsr_gre l3_dsr_dscp"
MODES6_ALL="dest_nat6 both_nat6 l2_dsr6"
MODES="$MODES4_ALL $MODES6_ALL"

while [ $# -gt 0 ]; do
    case $1 in
        --smoke) SMOKE=1; shift ;;
        --no-huge) NO_HUGE=1; shift ;;
        --flows) FLOWS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --sizes6) SIZES6=$2; shift 2 ;;
        --measure) MEASURE=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --new-flows) NEW_FLOWS=$2; shift 2 ;;
        --cpu) CPU=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --modes) MODES=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$SMOKE" = 1 ]; then
    FLOWS="64 1000"; SIZES="64"; MEASURE=2; WARMUP=1; NEW_FLOWS=4096; NO_HUGE=1
fi

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The modes of each family, in the order given.
MODES4="" MODES6=""
for m in $MODES; do
    case " $MODES4_ALL " in *" $m "*) MODES4+="$m "; continue ;; esac
    case " $MODES6_ALL " in *" $m "*) MODES6+="$m "; continue ;; esac
    die "unknown mode $m (modes: $MODES4_ALL $MODES6_ALL)"
done

[ "$(id -u)" = 0 ] || die "run as root (hugepages, DPDK)"
mkdir -p "$OUT" || die "cannot create $OUT"
TESTPMD=${TESTPMD:-$(command -v dpdk-testpmd)} || die "dpdk-testpmd not found (apt-get install dpdk)"

# --- cleanup ---------------------------------------------------------------
PIDS=()
HUGE_ORIG=""
HUGE_SYS=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -INT "$p" 2>/dev/null
    done
    sleep 0.5
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    if [ -n "$HUGE_ORIG" ]; then
        echo "$HUGE_ORIG" >"$HUGE_SYS" 2>/dev/null
    fi
    if [ "$KEEP" = 0 ]; then
        rm -f "$OUT"/*.pcap
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries --------------------------------------------------------------
if [ -z "${SLUICE_BIN:-}" ]; then
    log "building sluice (release)"
    (cd "$HERE" && cargo build --release -q -p sluice-control) || die "cargo build failed"
    SLUICE_BIN=$HERE/target/release/sluice
    SLUICECTL_BIN=$HERE/target/release/sluicectl
fi
SLUICECTL_BIN=${SLUICECTL_BIN:-$(dirname "$SLUICE_BIN")/sluicectl}

# --- CPUs ------------------------------------------------------------------
MAIN_CPU=$(python3 -c "
import os; c=sorted(os.sched_getaffinity(0)); o=[x for x in c if x!=$CPU]
print(o[0] if o else c[0])")
python3 -c "import os,sys; sys.exit(0 if $CPU in os.sched_getaffinity(0) else 1)" \
    || die "CPU $CPU is not available to this process"

# --- traffic files -----------------------------------------------------------
# name: est-FLOWS-SIZE (established sessions) or syn-FLOWS (new sessions);
# est6-FLOWS-SIZE and syn6-FLOWS for IPv6.
declare -A PKTS
gen() {
    local name=$1 mode=$2 flows=$3 size=$4 data=$5 family=${6:-4}
    local f=$OUT/$name.pcap
    python3 "$HERE/scripts/bench/genpcap.py" --family "$family" --mode "$mode" --flows "$flows" \
        --size "$size" --data "$data" --out "$f" 2>>"$OUT/gen.log" || die "genpcap failed for $name"
    PKTS[$name]=$(( flows * (1 + data) ))
}
data_rounds() { if [ "$1" -le 65536 ]; then echo $DATA_ROUNDS_SMALL; else echo 0; fi; }
MAXPKTS=$NEW_FLOWS
for fl in $FLOWS; do
    n=$(( fl * (1 + $(data_rounds "$fl")) ))
    [ "$n" -gt "$MAXPKTS" ] && MAXPKTS=$n
done

# Packet buffers: every packet of the file sits in an mbuf of the pool for the
# whole run (net_pcap infinite_rx copies each into a fresh mbuf on receive),
# plus descriptors, bursts and caches.
mbufs_for() { echo $(( $1 + 16384 )); }
MBUF_BYTES=2432   # 2176 data room + 128 struct rte_mbuf + mempool header, rounded up
MEM_MB=$(( ( $(mbufs_for "$MAXPKTS") * MBUF_BYTES ) / 1048576 + 512 ))

# --- hugepages -------------------------------------------------------------
if [ "$NO_HUGE" = 0 ]; then
    need=$(( MEM_MB / 2 + 64 ))
    have=$(cat "$HUGE_SYS" 2>/dev/null || echo 0)
    if [ "$have" -lt "$need" ]; then
        HUGE_ORIG=$have
        echo "$need" >"$HUGE_SYS" 2>/dev/null
        have=$(cat "$HUGE_SYS" 2>/dev/null || echo 0)
    fi
    grep -q hugetlbfs /proc/mounts || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } 2>/dev/null
    if [ "$have" -lt "$need" ] || ! grep -q hugetlbfs /proc/mounts; then
        log "WARNING: could not reserve $need 2 MB hugepages (got $have); falling back to --no-huge"
        NO_HUGE=1
    else
        log "hugepages: $have x 2 MB reserved"
    fi
fi
if [ "$NO_HUGE" = 1 ]; then
    [ "$SMOKE" = 1 ] || log "WARNING: running with --no-huge (4 KB pages): TLB misses lower every figure"
    EAL_MEM=(--no-huge -m "$MEM_MB" --no-shconf)
else
    EAL_MEM=(--in-memory)
fi
PAGES=$([ "$NO_HUGE" = 1 ] && echo "4K pages (--no-huge)" || echo "2M hugepages")

# --- configs ---------------------------------------------------------------
# config MODE PCAP FLOWS MBUFS TCP_SYN SOCKET
# MODE is a forwarding mode, or one with a 6 appended: the same over IPv6
# (IPv6 addresses on both links, an IPv6 VIP and IPv6 members).
config() {
    local mode=$1 pcap=$2 flows=$3 mbufs=$4 syn=$5 sock=$6
    local naddr=$(( flows / 60000 + 2 )) snat="" i eal forwarding=${mode%6} port=8080
    local family=4 ext_addr=198.51.100.1/24 int_addr=10.20.0.1/16 vip=198.51.100.10:80
    local member=10.20.0.1 mac=02:00:00:00:00:1 gateway=""
    if [ "$forwarding" != "$mode" ]; then
        # 2001:db8:1::/64 outside, fd00:20::/64 inside; the clients
        # (2001:2::/48) are behind a router, as on a real link.
        family=6 ext_addr=2001:db8:1::1/64 int_addr=fd00:20::1/64 vip="[2001:db8:1::10]:80"
        member=fd00:20::1 mac=02:00:00:00:06:1
        gateway=$'[[route]]\ndestination = "::/0"\ngateway = "2001:db8:1::fe"\n\n'
        gateway+=$'[[neighbor]]\naddress = "2001:db8:1::fe"\nmac = "02:00:00:00:00:fe"\ninterface = "ext"\n\n'
    fi
    if [ "$forwarding" = both_nat ] || [ "$forwarding" = lan_to_lan ]; then
        snat="snat_addresses = ["
        for ((i = 0; i < naddr; i++)); do
            if [ "$family" = 6 ]; then
                snat+="\"fd00:20::1:$(printf %x $(( 1 + i )))\","
            else
                snat+="\"10.20.$(( 1 + i / 200 )).$(( 1 + i % 200 ))\","
            fi
        done
        snat="${snat%,}]"
    fi
    case $mode in
        # The generated clients (198.18.0.0/15) are outside the members' LAN:
        # the cost measured is Dest-NAT plus the lan_subnets test.
        lan_to_lan) snat+=$'\nlan_subnets = ["10.20.0.0/16"]' ;;
        l2_dsr|l2_dsr6) port=80 ;;
        l3_dsr_ipip|l3_dsr_gre) port=80; forwarding=l3_dsr; snat="encapsulation = \"${mode#l3_dsr_}\"" ;;
        l3_dsr_dscp) port=80; forwarding=l3_dsr; snat=$'encapsulation = "dscp"\ndscp = 10' ;;
    esac
    local neighbors="" members=""
    for i in 1 2 3; do
        neighbors+=$'\n'"[[neighbor]]"$'\n'"address = \"$member$i\""$'\n'"mac = \"$mac$i\""$'\n'"interface = \"int\""$'\n'
        if [ "$family" = 6 ]; then
            members+=$'\n'"  { address = \"[$member$i]:$port\" },"
        else
            members+=$'\n'"  { address = \"$member$i:$port\" },"
        fi
    done
    eal=$(printf '"%s", ' "${EAL_MEM[@]}" "--log-level=lib.eal:warning")
    cat <<TOML
# made by scripts/bench.sh: $mode, $(basename "$pcap")
[dataplane]
workers = 1
lcores = "0@$MAIN_CPU,1@$CPU"
eal_args = [${eal%, }]
# No member answers here, so every flow stays half-open (syn_sent); the
# table is four times the flows so the SYN-flood bound (a quarter of the
# table) never evicts them.
sessions_per_worker = $(( 4 * flows + 1024 ))
mbufs = $mbufs
burst = 32
poll = "busy"

[control]
socket = "$sock"

[timeouts]
tcp_syn = "$syn"

[[interface]]
name = "ext"
device = "net_pcap0,rx_pcap=$pcap,infinite_rx=1"
addresses = ["$ext_addr"]
kernel = false                  # no exception path: nothing to talk to

[[interface]]
name = "int"
device = "net_null0,no-rx=1"
addresses = ["$int_addr"]
kernel = false

${gateway}${neighbors#$'\n'}
[pool.web]
health_check = "none"           # the members are MACs in a pcap, not hosts
members = [${members}
]

[[virtual_server]]
name = "web"
address = "$vip"
protocol = "tcp"
pool = "web"
forwarding = "$forwarding"
$snat
TOML
}

# --- measurements ----------------------------------------------------------
now_ns() { date +%s%N; }

# Prints one counter of `sluicectl stats`: worker 0's NAME.
counter() { awk -v k="$2" '/^worker 0:/ { for (i = 2; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$1"; }

# run_sluice MODE PCAP FLOWS PKTS KIND(est|new) TAG -> sets R_PPS, R_NEW (per second)
run_sluice() {
    local mode=$1 pcap=$2 flows=$3 pkts=$4 kind=$5 tag=$6
    local sock=$OUT/$tag.sock cfg=$OUT/$tag.toml logf=$OUT/$tag.log syn="1h"
    # New sessions: a SYN session idles out after 1 ms, so every later pass
    # over the file finds each flow's old session expired, removes it and
    # creates a new one (steady-state churn: expiry + member choice + insert).
    [ "$kind" = new ] && syn="1ms"
    config "$mode" "$pcap" "$flows" "$(mbufs_for "$pkts")" "$syn" "$sock" >"$cfg"
    rm -f "$sock"
    local budget=$(( WARMUP + MEASURE + 60 ))
    timeout -s INT -k 5 "$budget" "$SLUICE_BIN" --config "$cfg" >"$logf.out" 2>"$logf" &
    local pid=$!
    PIDS+=("$pid")
    local s="" t0 t1 s0 s1 i
    for ((i = 0; i < 400; i++)); do
        s=$("$SLUICECTL_BIN" --socket "$sock" stats 2>/dev/null) && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$s" ]; then
        log "sluice ($tag) did not start; see $logf"; tail -5 "$logf" >&2
        wait "$pid" 2>/dev/null; R_PPS=0; R_NEW=0; return
    fi
    # Warm-up: every flow's SYN seen once (established), then WARMUP seconds.
    if [ "$kind" = est ]; then
        for ((i = 0; i < 600; i++)); do
            s=$("$SLUICECTL_BIN" --socket "$sock" stats 2>/dev/null)
            [ "$(counter "$s" sessions_active)" -ge "$flows" ] 2>/dev/null && break
            sleep 0.1
        done
    fi
    sleep "$WARMUP"
    t0=$(now_ns); s0=$("$SLUICECTL_BIN" --socket "$sock" stats)
    sleep "$MEASURE"
    t1=$(now_ns); s1=$("$SLUICECTL_BIN" --socket "$sock" stats)
    echo "$s1" >"$OUT/$tag.stats"
    kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    read -r R_PPS R_NEW < <(python3 - "$t0" "$t1" "$(counter "$s0" forwarded)" "$(counter "$s1" forwarded)" \
        "$(counter "$s0" sessions_created)" "$(counter "$s1" sessions_created)" <<'PY'
import sys
t0, t1, f0, f1, c0, c1 = (int(x or 0) for x in sys.argv[1:])
dt = (t1 - t0) / 1e9
print(f"{(f1 - f0) / dt:.0f} {(c1 - c0) / dt:.0f}")
PY
)
}

# run_testpmd PCAP PKTS TAG -> sets R_PPS (mean Tx-pps of the out port after warm-up)
run_testpmd() {
    local pcap=$1 pkts=$2 tag=$3 logf=$OUT/$3.log
    # Start-up (reading the file into mbufs) takes about 1 s per 300k packets here.
    local budget=$(( WARMUP + MEASURE + 6 + pkts / 150000 ))
    # Same EAL memory options, same CPUs, same PMDs, same mbuf size (default
    # 2176-byte data room), same burst and descriptor counts as sluice.
    timeout -s INT -k 5 "$budget" "$TESTPMD" -l "$MAIN_CPU,$CPU" --main-lcore "$MAIN_CPU" --no-pci \
        "${EAL_MEM[@]}" --log-level=lib.eal:warning \
        --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_null0,no-rx=1" -- \
        --forward-mode=5tswap --nb-cores=1 --rxq=1 --txq=1 --burst=32 --rxd=1024 --txd=1024 \
        --total-num-mbufs="$(mbufs_for "$pkts")" --stats-period=1 --no-lsc-interrupt \
        >"$logf" 2>&1 </dev/null &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid" 2>/dev/null
    # Port 1 is the out port; its Tx-pps once per period. Skip the periods of
    # startup (0) and warm-up, average the rest but the last (possibly partial).
    R_PPS=$(python3 - "$logf" "$WARMUP" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
warm = int(sys.argv[2])
blocks = re.split(r"NIC statistics for port ", text)[1:]
tx = [int(m.group(1)) for b in blocks if b.startswith("1 ")
      for m in [re.search(r"Tx-pps:\s+(\d+)", b)] if m]
tx = [v for v in tx if v > 0]
use = tx[warm:-1] if len(tx) > warm + 1 else tx
print(f"{sum(use) / len(use):.0f}" if use else "0")
PY
)
}

mpps() { python3 -c "print(f'{$1/1e6:.2f}')"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}' if $2 else 'n/a')"; }

# --- run -------------------------------------------------------------------
log "CPU $CPU forwards, CPU $MAIN_CPU runs the main lcore; $PAGES; measure ${MEASURE}s after ${WARMUP}s warm-up"
RESULTS=$OUT/results.txt
{
    echo "# sluice bench $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "# $PAGES, forwarding CPU $CPU, measure ${MEASURE}s, warm-up ${WARMUP}s"
    echo "# frame: bytes on the wire with the FCS (64 B IPv4 = 60 B + FCS, 78 B IPv6 = 74 B + FCS); modes ending in 6 are IPv6"
    printf "%-9s %-6s %-8s %-12s %9s %7s\n" flows frame pkts program Mpps ratio
} >"$RESULTS"
FAIL=0
# est_runs FAMILY FLOWS SIZE MODES...: testpmd and the modes on one file of
# established flows.
est_runs() {
    local family=$1 fl=$2 sz=$3 name pcap pk tp pps line mode
    shift 3
    name=est-$fl-$sz
    [ "$family" = 6 ] && name=est6-$fl-$sz
    gen "$name" est "$fl" "$sz" "$(data_rounds "$fl")" "$family"
    pcap=$OUT/$name.pcap pk=${PKTS[$name]}
    log "$name: $pk packets in the file"
    run_testpmd "$pcap" "$pk" "testpmd-$name"; tp=$R_PPS
    [ "${tp:-0}" -gt 0 ] || { log "testpmd forwarded nothing for $name (see $OUT/testpmd-$name.log)"; FAIL=1; }
    line=$(printf "%-9s %-6s %-8s %-12s %9s %7s" "$fl" "${sz}B" "$pk" "testpmd$([ "$family" = 6 ] && echo 6)" \
        "$(mpps "${tp:-0}")" 1.00)
    echo "$line" >>"$RESULTS"; log "$line"
    for mode in "$@"; do
        run_sluice "$mode" "$pcap" "$fl" "$pk" est "$mode-$name"; pps=$R_PPS
        [ "${pps:-0}" -gt 0 ] || { log "sluice $mode forwarded nothing for $name (see $OUT/$mode-$name.stats)"; FAIL=1; }
        line=$(printf "%-9s %-6s %-8s %-12s %9s %7s" "$fl" "${sz}B" "$pk" "$mode" \
            "$(mpps "${pps:-0}")" "$(ratio "${pps:-0}" "${tp:-0}")")
        echo "$line" >>"$RESULTS"; log "$line"
    done
    rm -f "$pcap"
}
# IPv4 first, then IPv6 (at the smallest IPv6 frame by default), per flow count.
for fl in $FLOWS; do
    if [ -n "$MODES4" ]; then
        for sz in $SIZES; do
            est_runs 4 "$fl" "$sz" $MODES4
        done
    fi
    if [ -n "$MODES6" ]; then
        for sz in $SIZES6; do
            est_runs 6 "$fl" "$sz" $MODES6
        done
    fi
done

# new_runs FAMILY MODES...: the new sessions per second of each mode.
new_runs() {
    local family=$1 name=syn-$NEW_FLOWS size=64 pcap pk fw cr line mode
    shift
    [ "$family" = 6 ] && name=syn6-$NEW_FLOWS size=78
    gen "$name" syn "$NEW_FLOWS" "$size" 0 "$family"
    pcap=$OUT/$name.pcap pk=${PKTS[$name]}
    for mode in "$@"; do
        run_sluice "$mode" "$pcap" "$NEW_FLOWS" "$pk" new "new-$mode"; fw=$R_PPS cr=$R_NEW
        [ "${cr:-0}" -gt 0 ] || { log "no sessions created ($mode, see $OUT/new-$mode.stats)"; FAIL=1; }
        line=$(printf "%-12s %12s %12s" "$mode" "$(mpps "${cr:-0}")M" "$(mpps "${fw:-0}")M")
        echo "$line" >>"$RESULTS"; log "$line"
    done
    rm -f "$pcap"
}
{
    echo
    echo "# new sessions per second, one worker, SYNs of $NEW_FLOWS distinct flows (64 B IPv4, 78 B IPv6), 1 ms SYN timeout"
    printf "%-12s %12s %12s\n" mode sessions/s forwarded/s
} >>"$RESULTS"
[ -n "$MODES4" ] && new_runs 4 $MODES4
[ -n "$MODES6" ] && new_runs 6 $MODES6

echo
cat "$RESULTS"
[ "$FAIL" = 0 ] || { log "FAILED: see the logs in $OUT"; exit 1; }
