#!/usr/bin/env bash
# Sluice throughput benchmark on one worker core, without a NIC: the same
# pcap file replayed forever by net_pcap (infinite_rx=1) into
#   dpdk-testpmd --forward-mode=5tswap     (the ceiling: PMDs + a trivial rewrite)
#   sluice in every forwarding mode        (same file, same PMDs, same CPU):
#     dest_nat both_nat lan_to_lan l2_dsr l3_dsr_ipip l3_dsr_gre l3_dsr_dscp
# with the out port a net_null (no-rx=1) that frees what it is given.
# Prints packets per second for each and the ratio sluice/testpmd, then the
# new sessions per second of one worker (every packet a SYN of a new flow).
# See BENCHMARKS.md for what the figures mean and what limits them.
#
# usage: scripts/bench.sh [--smoke] [--no-huge] [--flows "1000 1000000"]
#                         [--sizes "64 512"] [--measure S] [--warmup S]
#                         [--new-flows N] [--cpu N] [--out DIR] [--keep]
#                         [--modes "dest_nat both_nat ..."]
#   --smoke     CI mode: tiny flow counts, ~2 s per measurement, --no-huge;
#               exits non-zero only if something fails to run or sluice
#               forwards nothing (no timed assertions).
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
MEASURE=5
WARMUP=2
NEW_FLOWS=262144
CPU=1
OUT=/tmp/sluice-bench
KEEP=0
DATA_ROUNDS_SMALL=31   # data packets per flow in files of <= 64k flows
MODES="dest_nat both_nat lan_to_lan l2_dsr l3_dsr_ipip l3_dsr_gre l3_dsr_dscp"

while [ $# -gt 0 ]; do
    case $1 in
        --smoke) SMOKE=1; shift ;;
        --no-huge) NO_HUGE=1; shift ;;
        --flows) FLOWS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
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
# name: est-FLOWS-SIZE (established sessions) or syn-FLOWS (new sessions).
declare -A PKTS
gen() {
    local name=$1 mode=$2 flows=$3 size=$4 data=$5
    local f=$OUT/$name.pcap
    python3 "$HERE/scripts/bench/genpcap.py" --mode "$mode" --flows "$flows" --size "$size" \
        --data "$data" --out "$f" 2>>"$OUT/gen.log" || die "genpcap failed for $name"
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
config() {
    local mode=$1 pcap=$2 flows=$3 mbufs=$4 syn=$5 sock=$6
    local naddr=$(( flows / 60000 + 2 )) snat="" i eal forwarding=$mode port=8080
    if [ "$mode" = both_nat ] || [ "$mode" = lan_to_lan ]; then
        snat="snat_addresses = ["
        for ((i = 0; i < naddr; i++)); do
            snat+="\"10.20.$(( 1 + i / 200 )).$(( 1 + i % 200 ))\","
        done
        snat="${snat%,}]"
    fi
    case $mode in
        # The generated clients (198.18.0.0/15) are outside the members' LAN:
        # the cost measured is Dest-NAT plus the lan_subnets test.
        lan_to_lan) snat+=$'\nlan_subnets = ["10.20.0.0/16"]' ;;
        l2_dsr) port=80 ;;
        l3_dsr_ipip|l3_dsr_gre) port=80; forwarding=l3_dsr; snat="encapsulation = \"${mode#l3_dsr_}\"" ;;
        l3_dsr_dscp) port=80; forwarding=l3_dsr; snat=$'encapsulation = "dscp"\ndscp = 10' ;;
    esac
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
addresses = ["198.51.100.1/24"]
kernel = false                  # no exception path: nothing to talk to

[[interface]]
name = "int"
device = "net_null0,no-rx=1"
addresses = ["10.20.0.1/16"]
kernel = false

[[neighbor]]
address = "10.20.0.11"
mac = "02:00:00:00:00:11"
interface = "int"

[[neighbor]]
address = "10.20.0.12"
mac = "02:00:00:00:00:12"
interface = "int"

[[neighbor]]
address = "10.20.0.13"
mac = "02:00:00:00:00:13"
interface = "int"

[pool.web]
health_check = "none"           # the members are MACs in a pcap, not hosts
members = [
  { address = "10.20.0.11:$port" },
  { address = "10.20.0.12:$port" },
  { address = "10.20.0.13:$port" },
]

[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
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
    printf "%-9s %-6s %-8s %-12s %9s %7s\n" flows frame pkts program Mpps ratio
} >"$RESULTS"
FAIL=0
for fl in $FLOWS; do
    for sz in $SIZES; do
        name=est-$fl-$sz
        gen "$name" est "$fl" "$sz" "$(data_rounds "$fl")"
        pcap=$OUT/$name.pcap pk=${PKTS[$name]}
        log "$name: $pk packets in the file"
        run_testpmd "$pcap" "$pk" "testpmd-$name"; tp=$R_PPS
        [ "${tp:-0}" -gt 0 ] || { log "testpmd forwarded nothing for $name (see $OUT/testpmd-$name.log)"; FAIL=1; }
        line=$(printf "%-9s %-6s %-8s %-12s %9s %7s" "$fl" "${sz}B" "$pk" testpmd "$(mpps "${tp:-0}")" 1.00)
        echo "$line" >>"$RESULTS"; log "$line"
        for mode in $MODES; do
            run_sluice "$mode" "$pcap" "$fl" "$pk" est "$mode-$name"; pps=$R_PPS
            [ "${pps:-0}" -gt 0 ] || { log "sluice $mode forwarded nothing for $name"; FAIL=1; }
            line=$(printf "%-9s %-6s %-8s %-12s %9s %7s" "$fl" "${sz}B" "$pk" "$mode" \
                "$(mpps "${pps:-0}")" "$(ratio "${pps:-0}" "${tp:-0}")")
            echo "$line" >>"$RESULTS"; log "$line"
        done
        rm -f "$pcap"
    done
done

name=syn-$NEW_FLOWS
gen "$name" syn "$NEW_FLOWS" 64 0
pcap=$OUT/$name.pcap pk=${PKTS[$name]}
{
    echo
    echo "# new sessions per second, one worker, 64-byte SYNs of $NEW_FLOWS distinct flows, 1 ms SYN timeout"
    printf "%-12s %12s %12s\n" mode sessions/s forwarded/s
} >>"$RESULTS"
for mode in $MODES; do
    run_sluice "$mode" "$pcap" "$NEW_FLOWS" "$pk" new "new-$mode"; fw=$R_PPS cr=$R_NEW
    [ "${cr:-0}" -gt 0 ] || { log "no sessions created ($mode)"; FAIL=1; }
    line=$(printf "%-12s %12s %12s" "$mode" "$(mpps "${cr:-0}")M" "$(mpps "${fw:-0}")M")
    echo "$line" >>"$RESULTS"; log "$line"
done
rm -f "$pcap"

echo
cat "$RESULTS"
[ "$FAIL" = 0 ] || { log "FAILED: see the logs in $OUT"; exit 1; }
