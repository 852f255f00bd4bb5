#!/usr/bin/env bash
# Installs everything Sluice's build, tests, lab and benchmarks need on a
# Debian 12 machine. Idempotent; needs root (apt-get).
set -euo pipefail
PACKAGES=(
    build-essential pkg-config clang libclang-dev   # build: cc shim, bindgen
    libdpdk-dev dpdk-dev                            # DPDK 22.11 and dpdk-testpmd
    libpcap-dev                                     # net_pcap PMD (benchmarks)
    iproute2 iputils-ping ethtool procps psmisc     # lab: namespaces, veth, bridges
    curl python3 tcpdump nftables hping3            # lab: clients, servers, captures, floods
    linux-perf valgrind                             # profiling (BENCHMARKS.md)
    prometheus                                      # promtool checks /metrics
    chromium                                        # renders the status page (page.sh)
    dnsmasq-base bind9-dnsutils                     # DNS through the switch (fragments.sh)
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: missing packages (${missing[*]}); run as root" >&2
        exit 1
    fi
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "setup.sh: cargo is in ~/.cargo/bin: add it to PATH" >&2
    else
        echo "setup.sh: no Rust toolchain; install one with rustup (https://rustup.rs)" >&2
    fi
    exit 1
fi
echo "setup.sh: ready (DPDK $(pkg-config --modversion libdpdk), $(cargo --version))"
