#!/usr/bin/env bash
# The Debian package: scripts/package.sh builds it; it holds the binaries,
# the systemd unit, the example configuration and the documentation, and
# what it installs works (the packaged binary accepts the packaged config).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

section "scripts/package.sh"
deb=$("$HERE/scripts/package.sh" "$WORK/deb" 2>"$WORK/package.err" | tail -1)
check "the package is built ($deb)" test -f "$deb"
dpkg-deb -c "$deb" >"$WORK/contents" 2>&1
for f in ./usr/bin/sluice ./usr/bin/sluicectl ./lib/systemd/system/sluice.service \
    ./etc/sluice/sluice.toml ./usr/share/doc/sluice/README.md ./usr/share/doc/sluice/sluice.help \
    ./usr/share/doc/sluice/examples/bird.conf ./usr/share/doc/sluice/examples/frr.conf \
    ./etc/iproute2/rt_protos.d/sluice.conf; do
    check "it contains $f" grep -q " $f\$" "$WORK/contents"
done
check "files belong to root" bash -c "! awk '{print \$2}' $WORK/contents | grep -v '^root/root$'"
check "Package: sluice" test "$(dpkg-deb -f "$deb" Package)" = sluice
check "the example configuration is a conffile" bash -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/sluice/sluice.toml"
mkdir -p "$WORK/root"
dpkg-deb -x "$deb" "$WORK/root"
check "the packaged sluice accepts the packaged configuration" \
    "$WORK/root/usr/bin/sluice" --config "$WORK/root/etc/sluice/sluice.toml" --check
unit=$WORK/root/lib/systemd/system/sluice.service
check "the unit validates the file before starting" grep -qx 'ExecStartPre=/usr/bin/sluice --config /etc/sluice/sluice.toml --check' "$unit"
check "the unit starts sluice on that file" grep -qx 'ExecStart=/usr/bin/sluice --config /etc/sluice/sluice.toml' "$unit"
check "the unit reloads through sluicectl, which fails when the reload is refused" grep -qx 'ExecReload=/usr/bin/sluicectl --config /etc/sluice/sluice.toml reload' "$unit"
check "the unit raises the open-file limit above the default 1024" grep -qx 'LimitNOFILE=1048576' "$unit"
check "the help text is the command's" grep -q "usage: sluice --config FILE" "$WORK/root/usr/share/doc/sluice/sluice.help"
finish
