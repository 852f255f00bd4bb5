#!/usr/bin/env bash
# DPDK's capture tool on a running sluice: with hugepages EAL keeps its
# shared files under the configured file prefix and sluice initialises
# rte_pdump, so dpdk-dumpcap attaches as a secondary process, lists the ports
# and captures real traffic. Without hugepages the log says why it cannot.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

command -v dpdk-dumpcap >/dev/null || apt-get install -y -qq dpdk >/dev/null 2>&1
command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null 2>&1

PAGES=512
OLD_PAGES=$(cat /proc/sys/vm/nr_hugepages)
MOUNTED=""
restore_hugepages() {
    rm -f /dev/hugepages/capturemap_* 2>/dev/null
    echo "$OLD_PAGES" >/proc/sys/vm/nr_hugepages 2>/dev/null
    [ -n "$MOUNTED" ] && umount /dev/hugepages 2>/dev/null
    rm -rf /var/run/dpdk/capture
}
trap 'cleanup; restore_hugepages' EXIT

section "dpdk-dumpcap on a running sluice (hugepages)"
if ! mount | grep -q "on /dev/hugepages type hugetlbfs"; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages && MOUNTED=1
fi
echo $((OLD_PAGES + PAGES)) >/proc/sys/vm/nr_hugepages
free=$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)
check "$PAGES hugepages of 2 MB are available ($free free)" test "$free" -ge "$PAGES"

"$HERE/scripts/lab.sh" up >/dev/null
"$HERE/scripts/lab.sh" config dest_nat 2 |
    sed -e 's/^eal_args = .*/eal_args = ["-m", "256", "--log-level=lib.eal:warning"]/' \
        -e 's/^\[dataplane\]$/[dataplane]\nfile_prefix = "capture"/' >"$WORK/cap.toml"
if ! start_sluice "$WORK/cap.toml"; then bad "sluice starts on hugepages"; finish; exit; fi
check "the log says how to capture" grep -q "packet capture: dpdk-dumpcap --file-prefix=capture" "$WORK/sluice.out"
timeout 20 dpdk-dumpcap --file-prefix=capture -D >"$WORK/ports" 2>&1
check "dpdk-dumpcap lists the wire ports ($(grep -c 'net_' "$WORK/ports") ports)" \
    bash -c "grep -q '^0. net_af_packet0' '$WORK/ports' && grep -q '^1. net_af_packet1' '$WORK/ports'"

timeout 20 dpdk-dumpcap --file-prefix=capture -i net_af_packet0 -c 10 -w "$WORK/ext.pcapng" >"$WORK/dumpcap.out" 2>&1 &
DUMP=$!
for _ in $(seq 50); do grep -q "Capturing on" "$WORK/dumpcap.out" 2>/dev/null && break; sleep 0.1; done
got=""
for _ in 1 2 3; do got=$(client curl -s -m 3 http://198.51.100.10/); done
check "traffic flows while capturing ($got)" grep -q '^server=m' <<<"$got"
wait "$DUMP"; rc=$?
check "dpdk-dumpcap ends after 10 packets (rc $rc)" test "$rc" -eq 0
tcpdump -nr "$WORK/ext.pcapng" >"$WORK/ext.txt" 2>/dev/null
check "the capture holds the client's SYN to the VIP ($(grep -c 'Flags \[S\]' "$WORK/ext.txt") SYNs)" \
    grep -q '198.51.100.2.[0-9]* > 198.51.100.10.80: Flags \[S\]' "$WORK/ext.txt"
check "and the switch's answer from the VIP" grep -q '198.51.100.10.80 > 198.51.100.2.[0-9]*: Flags \[S.\]' "$WORK/ext.txt"
check "sluice serves on after the capture" bash -c "ip netns exec ${LAB}-client curl -s -m 3 http://198.51.100.10/ | grep -q '^server=m'"
stop_sluice; rc=$?
check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0

section "without hugepages the log says why capture is unavailable"
"$HERE/scripts/lab.sh" config dest_nat 1 >"$WORK/nohuge.toml"
if start_sluice "$WORK/nohuge.toml"; then
    check "the log explains" grep -q "packet capture with dpdk-dumpcap unavailable" "$WORK/sluice.out"
    stop_sluice
else
    bad "sluice starts without hugepages"
fi
finish
