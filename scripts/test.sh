#!/usr/bin/env bash
# The whole Sluice test suite: formatting, lints, unit and golden-packet
# tests, the DPDK smoke test, and the end-to-end tests in network
# namespaces (root). Installs what it needs first (scripts/setup.sh).
# Every step runs even if an earlier one failed; the exit status says
# whether all passed. The last line totals the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the suite needs root (DPDK, network namespaces); run it with sudo" >&2
    exit 1
fi
scripts/setup.sh

# Each step's output, and what tests keep for a person to look at (the
# status page's screenshot), stay here after the run.
LOG=$(mktemp -d /tmp/sluice-test.XXXXXX)
export SLUICE_TEST_LOG=$LOG
# The five latest runs' logs are kept.
ls -dt /tmp/sluice-test.* 2>/dev/null | tail -n +6 | xargs -r rm -rf
passed=0
failed=0
failed_steps=()

# step NAME CMD...: runs a step, shows its output, adds its test counts.
step() {
    local name=$1; shift
    echo
    echo "=== $name: $*"
    local out="$LOG/$name.log" rc=0
    "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    # cargo test: "test result: ok. N passed; M failed"; e2e: "N passed, M failed".
    local p f
    p=$(grep -E '^test result:|^[0-9]+ passed, [0-9]+ failed' "$out" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
    f=$(grep -E '^test result:|^[0-9]+ passed, [0-9]+ failed' "$out" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ]; then failed_steps+=("$name"); fi
    echo "=== $name: exit $rc"
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step build cargo build --workspace --release --locked
step unit cargo test --workspace --locked
step e2e-boot bash tests/e2e/boot.sh
step e2e-nat bash tests/e2e/nat.sh
step e2e-modes bash tests/e2e/modes.sh
step e2e-health bash tests/e2e/health.sh
step e2e-balance bash tests/e2e/balance.sh
step e2e-operate bash tests/e2e/operate.sh
step e2e-page bash tests/e2e/page.sh
step e2e-reload bash tests/e2e/reload.sh
step e2e-capture bash tests/e2e/capture.sh
step e2e-flood bash tests/e2e/flood.sh
step e2e-hardening bash tests/e2e/hardening.sh
step e2e-fragments bash tests/e2e/fragments.sh
step e2e-ipv6 bash tests/e2e/ipv6.sh
step e2e-proxy bash tests/e2e/proxy.sh
step e2e-ha bash tests/e2e/ha.sh
step e2e-ecmp bash tests/e2e/ecmp.sh
step package bash tests/e2e/package.sh
step bench-pipeline-smoke cargo bench -p sluice-dataplane --bench pipeline --locked -- --smoke
step bench-smoke scripts/bench.sh --smoke

echo
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]}"
fi
echo "logs: $LOG"
echo "total: $passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ] && [ "$failed" -eq 0 ]
