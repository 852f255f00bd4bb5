#!/usr/bin/env bash
# Builds a Debian package of sluice with dpkg-deb: the binaries, the systemd
# unit, an example configuration in /etc/sluice/, and the documentation
# (README, BENCHMARKS, the commands' --help).
#
# usage: scripts/package.sh [OUTDIR]      (default: target/debian)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
OUT=${1:-target/debian}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
cargo build --release --locked -q -p sluice-control

STAGE=$(mktemp -d /tmp/sluice-deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
install -Dm755 target/release/sluice "$STAGE/usr/bin/sluice"
install -Dm755 target/release/sluicectl "$STAGE/usr/bin/sluicectl"
install -Dm644 packaging/sluice.service "$STAGE/lib/systemd/system/sluice.service"
install -Dm644 packaging/keepalived.conf "$STAGE/usr/share/doc/sluice/examples/keepalived.conf"
install -Dm644 packaging/bird.conf "$STAGE/usr/share/doc/sluice/examples/bird.conf"
install -Dm644 packaging/frr.conf "$STAGE/usr/share/doc/sluice/examples/frr.conf"
install -Dm644 packaging/rt_protos.d/sluice.conf "$STAGE/etc/iproute2/rt_protos.d/sluice.conf"
install -Dm644 config/examples/contract.toml "$STAGE/etc/sluice/sluice.toml"
install -Dm644 README.md "$STAGE/usr/share/doc/sluice/README.md"
install -Dm644 BENCHMARKS.md "$STAGE/usr/share/doc/sluice/BENCHMARKS.md"
# The man-style help of both commands.
{ target/release/sluice --help 2>&1 || true; } >"$STAGE/usr/share/doc/sluice/sluice.help"
{ target/release/sluicectl --help 2>&1 || true; } >"$STAGE/usr/share/doc/sluice/sluicectl.help"

mkdir -p "$STAGE/DEBIAN"
printf "%s\n" /etc/sluice/sluice.toml /etc/iproute2/rt_protos.d/sluice.conf >"$STAGE/DEBIAN/conffiles"
DEPENDS=$(dpkg-query -W -f='${Package} (>= ${Version}), ' librte-eal23 librte-ethdev23 librte-mempool23 librte-mbuf23 librte-ring23 2>/dev/null | sed 's/, $//')
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: sluice
Version: $VERSION
Architecture: $ARCH
Maintainer: Sluice developers <sluice@localhost>
Depends: ${DEPENDS:-dpdk}, dpdk
Section: net
Priority: optional
Description: L4 load balancer (L4 switch) on DPDK
 Virtual servers, pools, health checks, Dest-NAT, Both-NAT, L2-DSR,
 L3-DSR and LAN-to-LAN forwarding on DPDK poll-mode workers; sluicectl
 controls a running switch. Edit /etc/sluice/sluice.toml, then
 systemctl enable --now sluice.
CONTROL
mkdir -p "$OUT"
DEB="$OUT/sluice_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
