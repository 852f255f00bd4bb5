#!/usr/bin/python3
"""Instructions per packet of the worker, stage by stage (BENCHMARKS.md).

Runs the in-process pipeline benchmark (dataplane/benches/pipeline.rs)
under callgrind, counting only inside its per-burst wrappers
(`--toggle-collect=*data_burst*` for packets of established sessions,
`*syn_burst*` for new sessions), and attributes every instruction to the
stage of the source line it comes from: the compiler inlines most of the
path into one function, but callgrind keeps each instruction's source
file, so the file says the stage. Lines of the standard library are
attributed by the function they were inlined into.

    scripts/bench/attribute.py                 # established, IPv4 and IPv6
    scripts/bench/attribute.py --syn           # new sessions too
    scripts/bench/attribute.py --keep DIR      # keep callgrind's files in DIR

Needs valgrind (installed with apt-get when missing, as root) and the
workspace's cargo. Exact counts: the same binary gives the same figures.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Packets the smoke runs send through the wrappers (pipeline.rs, `main`):
# 200,000 established packets to each of two servers at two table sizes,
# and SYNs filling a table of 65,536 entries to 80%, for each of two
# servers.
ESTABLISHED_PACKETS = 4 * 200_000
SYN_PACKETS = 2 * (65_536 // 10 * 8)

# Source file (under dataplane/src) -> stage, first match wins.
STAGES = [
    ("fast.rs", "fast path: frame and header checks at fixed offsets"),
    ("wire/checksum.rs", "IPv4 header checksum"),
    ("wire/", "header fields (wire)"),
    ("session.rs", "tuple hash + session lookup"),
    ("addr.rs", "tuple hash + session lookup"),
    ("fixedmap.rs", "address maps (local addresses, servers)"),
    ("nat.rs", "NAT rewrite + checksum updates"),
    ("egress.rs", "egress: hop cache, MACs"),
    ("route.rs", "egress: route lookup"),
    ("neighbor.rs", "egress: neighbour table"),
    ("stats.rs", "counters"),
    ("shared/", "session checks (expiry, server)"),
    ("conntrack.rs", "session checks (expiry, server)"),
    ("service.rs", "session checks (expiry, server)"),
    ("reset.rs", "session checks (expiry, server)"),
    ("flood.rs", "new-session path (SYN cookies, handshakes)"),
    ("sched/", "new-session path: member choice"),
    ("persist.rs", "new-session path: member choice"),
    ("members.rs", "new-session path: member choice"),
    ("flow.rs", "general path: sessions (flow.rs)"),
    ("ipv4.rs", "general path and rewrite dispatch (ipv4.rs)"),
    ("ipv6.rs", "general path and rewrite dispatch (ipv6.rs)"),
    ("dsr.rs", "L3-DSR encapsulation"),
    ("worker.rs", "process/dispatch plumbing (worker.rs)"),
    ("packet.rs", "process/dispatch plumbing (worker.rs)"),
]

# Functions (for standard-library lines inlined into them) -> stage.
FUNCTION_STAGES = [
    ("nat::", "NAT rewrite + checksum updates"),
    ("SessionTable", "tuple hash + session lookup"),
    ("Tuple<A>::hash", "tuple hash + session lookup"),
    ("egress", "egress: hop cache, MACs"),
    ("verify_checksum", "IPv4 header checksum"),
    ("send_to_member", "general path and rewrite dispatch (ipv4.rs)"),
    ("send_to_client", "general path and rewrite dispatch (ipv4.rs)"),
    ("new_session", "general path: sessions (flow.rs)"),
    ("Balancer", "new-session path: member choice"),
]

LINE = re.compile(r"^\s*([\d,]+)\s+\([ \d.]+%\)\s+(\S+?):(.+?)(\s+\[.*\])?$")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def ensure_valgrind():
    if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
        return
    if os.geteuid() != 0:
        sys.exit("valgrind is missing: apt-get install valgrind (as root)")
    subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True)


def bench_binary():
    out = sh(
        ["cargo", "bench", "-p", "sluice-dataplane", "--bench", "pipeline", "--no-run",
         "--message-format=json"],
        cwd=ROOT,
    ).stdout
    exe = None
    for line in out.splitlines():
        m = re.search(r'"executable":"([^"]+pipeline-[0-9a-f]+)"', line)
        if m:
            exe = m.group(1)
    if not exe:
        sys.exit("cargo bench --no-run gave no pipeline binary")
    return exe


def callgrind(exe, args, toggle, out_file):
    """Runs the bench under callgrind; returns (instructions, bench stdout)."""
    r = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
         f"--toggle-collect={toggle}", exe, "--smoke", *args],
        text=True, capture_output=True, cwd=tempfile.gettempdir(),
    )
    if r.returncode != 0:
        sys.exit(f"the bench failed under callgrind:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"Collected : ([\d,]+)", r.stderr)
    return int(m.group(1).replace(",", "")), r.stdout


def stage_of(path, function):
    rel = path.split("dataplane/src/", 1)
    if len(rel) == 2:
        for prefix, stage in STAGES:
            if rel[1].startswith(prefix) or rel[1] == prefix:
                return stage
        return f"other dataplane code ({rel[1]})"
    if "benches/" in path:
        return "benchmark loop (not the switch)"
    for key, stage in FUNCTION_STAGES:
        if key in function:
            return stage
    return STD_INLINED


# Lines of the standard library inlined into the one big function the fast
# path becomes: slice bounds checks, byte-order swaps, copies. They belong
# to the stages around them, which callgrind cannot tell apart.
STD_INLINED = "std inlined into process (bounds checks, byte order, copies)"


def attribute(out_file):
    text = sh(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", out_file]).stdout
    stages = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(2) == "PROGRAM":
            continue
        count = int(m.group(1).replace(",", ""))
        stage = stage_of(m.group(2), m.group(3))
        stages[stage] = stages.get(stage, 0) + count
    return stages


def table(title, total, packets, stages):
    print(f"\n{title}: {total:,} instructions / {packets:,} = "
          f"{total / packets:,.1f} per packet\n")
    print("| stage | instr/pkt | share |")
    print("|---|---:|---:|")
    for stage, n in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {n / packets:,.1f} | {100.0 * n / total:.1f}% |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--syn", action="store_true", help="also new sessions (syn_burst)")
    p.add_argument("--keep", metavar="DIR", help="keep callgrind's output files here")
    a = p.parse_args()
    ensure_valgrind()
    exe = bench_binary()
    keep = a.keep or tempfile.mkdtemp(prefix="sluice-attr-")
    os.makedirs(keep, exist_ok=True)
    runs = [("established IPv4 packets", ["--established"], "*data_burst*", "est4"),
            ("established IPv6 packets", ["--established", "--v6"], "*data_burst*", "est6")]
    if a.syn:
        runs.append(("new IPv4 sessions (SYN)", ["--syn"], "*syn_burst*", "syn4"))
    print(f"binary: {exe}")
    for title, args, toggle, name in runs:
        out_file = os.path.join(keep, f"callgrind.{name}.out")
        total, stdout = callgrind(exe, args, toggle, out_file)
        if " 0 not forwarded" not in stdout and " 0 SYNs not forwarded" not in stdout:
            sys.exit(f"the bench did not forward every packet:\n{stdout}")
        packets = ESTABLISHED_PACKETS if toggle == "*data_burst*" else SYN_PACKETS
        table(title, total, packets, attribute(out_file))
    if not a.keep:
        shutil.rmtree(keep, ignore_errors=True)


if __name__ == "__main__":
    main()
