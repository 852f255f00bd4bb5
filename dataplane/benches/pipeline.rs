//! In-process benchmarks of the pipeline on plain buffers (no DPDK).
//!
//!     cargo bench -p sluice-dataplane --bench pipeline            # full (~2 min, ~3.5 GB)
//!     cargo bench -p sluice-dataplane --bench pipeline -- --smoke # CI: small tables, seconds
//!     cargo bench -p sluice-dataplane --bench pipeline -- --least # least connections only
//!
//! and, to count instructions with callgrind (BENCHMARKS.md), one part only:
//!
//!     ... -- --smoke --established [--v6]   # established packets, in `data_burst`
//!     ... -- --smoke --syn [--v6]           # new sessions, in `syn_burst`
//!     ... -- --smoke --least=N              # least connections, in `syn_burst`
//!     ... -- [--smoke] --sync                # peers' sessions installed (session sync)
//!
//! Prints, one worker on one thread:
//! * ns per packet of an established session (Dest-NAT and Both-NAT, IPv4
//!   and IPv6), with 1k, 1M and 10M sessions in the table, flows visited in
//!   a scattered order (every packet a different flow, as on a busy link);
//! * ns per new session: a SYN through the whole pipeline (lookup miss,
//!   round-robin member choice, SNAT port for Both-NAT, insert, rewrite),
//!   IPv4 and IPv6, and the parts alone (member choice, table insert);
//! * ns per checksum update (`nat::rewrite`: addresses, ports, TTL with
//!   RFC 1624 updates of the IP and TCP checksums; one `adjust32`);
//! * resident bytes per session at 10M sessions (/proc/self/statm before and
//!   after building and filling the table) next to `SessionTable::memory_bytes()`.
//!
//! Frames are the smallest TCP frames of their family: 60 bytes for IPv4
//! and 74 for IPv6 (64 and 78 on the wire with the FCS). They are built
//! outside the timed region, a burst of 32 at a time, and the timer runs
//! around the 32 `Worker::process` calls only, as the daemon runs them on a
//! received burst. The IPv6 cases run on a configuration of their own (the
//! IPv4 one with IPv6 addresses and servers added), so the IPv4 figures are
//! those of a switch without IPv6, as before. No figure is asserted: this is
//! a report.

use sluice_dataplane::nat;
use sluice_dataplane::packet::VecBuf;
use sluice_dataplane::session::{Session4, SessionTable, Tuple4, Tuple6};
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use sluice_dataplane::wire::checksum;
use sluice_dataplane::worker::{Verdict, Worker};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const EXT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const INT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const VIP_DNAT: Vip = Vip::V4([198, 51, 100, 10]);
const VIP_BNAT: Vip = Vip::V4([198, 51, 100, 11]);
const VIP6_DNAT: Vip = Vip::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10).octets());
const VIP6_BNAT: Vip = Vip::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11).octets());
/// Flow i comes from CLIENT + i / 60000 (198.18.0.1, RFC 2544's range) or
/// CLIENT6 + i / 60000 (2001:2::1, RFC 5180's), port 1024 + i % 60000.
const CLIENT: u32 = 0xc612_0001;
const CLIENT6: u128 = 0x2001_0002_0000_0000_0000_0000_0000_0001;
const FLOWS_PER_ADDR: u32 = 60_000;
/// Frame lengths without the FCS: Ethernet, IP and TCP headers, and for
/// IPv4 the Ethernet padding to 60.
const FRAME4: usize = 60;
const FRAME6: usize = 74;
/// SNAT addresses of the Both-NAT server: 64512 ports each, enough for 10M sessions.
const SNAT_ADDRS: u32 = 170;
const SYN: u8 = 0x02;
const ACK_PSH: u8 = 0x18;
const ACK: u8 = 0x10;
const T0: u32 = 1_000_000;

/// A virtual server's address, and so the family of the frames sent to it.
#[derive(Clone, Copy)]
enum Vip {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn config() -> String {
    let snat: Vec<String> = (0..SNAT_ADDRS)
        .map(|i| format!("\"10.20.{}.{}\"", 1 + i / 200, 1 + i % 200))
        .collect();
    format!(
        r#"
[timeouts]
tcp_syn = "1h"
tcp_established = "1h"

[[interface]]
name = "ext"
device = "net_null0"
addresses = ["198.51.100.1/24"]

[[interface]]
name = "int"
device = "net_null1"
addresses = ["10.20.0.1/16"]

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
members = [
  {{ address = "10.20.0.11:8080" }},
  {{ address = "10.20.0.12:8080" }},
  {{ address = "10.20.0.13:8080" }},
]

[[virtual_server]]
name = "dnat"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
forwarding = "dest_nat"

[[virtual_server]]
name = "bnat"
address = "198.51.100.11:80"
protocol = "tcp"
pool = "web"
forwarding = "both_nat"
snat_addresses = [{}]
"#,
        snat.join(", ")
    )
}

/// The bench's configuration with IPv6 added: addresses on both links, a
/// default route, the members' IPv6 addresses and two IPv6 servers like the
/// IPv4 ones. Every worker of it has a full-size IPv6 session table.
fn config6() -> String {
    let snat: Vec<String> = (0..SNAT_ADDRS)
        .map(|i| format!("\"fd00:20::1:{:x}\"", i + 1))
        .collect();
    let base = config()
        .replace(
            r#"addresses = ["198.51.100.1/24"]"#,
            r#"addresses = ["198.51.100.1/24", "2001:db8:1::1/64"]"#,
        )
        .replace(
            r#"addresses = ["10.20.0.1/16"]"#,
            r#"addresses = ["10.20.0.1/16", "fd00:20::1/64"]"#,
        );
    format!(
        r#"{base}
[[route]]
destination = "::/0"
gateway = "2001:db8:1::fe"

[[neighbor]]
address = "2001:db8:1::fe"
mac = "02:00:00:00:00:fe"
interface = "ext"

[[neighbor]]
address = "fd00:20::11"
mac = "02:00:00:00:06:11"
interface = "int"

[[neighbor]]
address = "fd00:20::12"
mac = "02:00:00:00:06:12"
interface = "int"

[[neighbor]]
address = "fd00:20::13"
mac = "02:00:00:00:06:13"
interface = "int"

[pool.web6]
members = [
  {{ address = "[fd00:20::11]:8080" }},
  {{ address = "[fd00:20::12]:8080" }},
  {{ address = "[fd00:20::13]:8080" }},
]

[[virtual_server]]
name = "dnat6"
address = "[2001:db8:1::10]:80"
protocol = "tcp"
pool = "web6"
forwarding = "dest_nat"

[[virtual_server]]
name = "bnat6"
address = "[2001:db8:1::11]:80"
protocol = "tcp"
pool = "web6"
forwarding = "both_nat"
snat_addresses = [{}]
"#,
        snat.join(", ")
    )
}

fn shared() -> Arc<Shared> {
    let cfg = sluice_config::parse(&config(), "bench.toml").expect("bench config parses");
    Arc::new(Shared::new(&cfg, &[EXT_MAC, INT_MAC], 1))
}

fn shared6() -> Arc<Shared> {
    let cfg = sluice_config::parse(&config6(), "bench6.toml").expect("bench IPv6 config parses");
    Arc::new(Shared::new(&cfg, &[EXT_MAC, INT_MAC], 1))
}

fn worker(shared: &Arc<Shared>, capacity: u32) -> Worker {
    let mut w = Worker::new(
        0,
        shared.clone(),
        Arc::new(WorkerStats::default()),
        capacity,
    );
    w.set_time(u64::from(T0));
    w
}

/// The TCP frame of flow `flow` to `vip`:80, to our MAC (see `CLIENT`);
/// returns its length, 60 (IPv4) or 74 (IPv6).
fn frame(buf: &mut [u8], flow: u32, vip: Vip, flags: u8) -> usize {
    let sport = 1024 + (flow % FLOWS_PER_ADDR) as u16;
    match vip {
        Vip::V4(vip) => {
            client_frame(buf, (CLIENT + flow / FLOWS_PER_ADDR, sport), vip, flags);
            FRAME4
        }
        Vip::V6(vip) => {
            let src = CLIENT6 + u128::from(flow / FLOWS_PER_ADDR);
            client_frame6(buf, (src, sport), vip, flags);
            FRAME6
        }
    }
}

/// A 60-byte TCP frame from `src` (address, port) to vip:80, to our MAC.
fn client_frame(buf: &mut [u8], (src, sport): (u32, u16), vip: [u8; 4], flags: u8) {
    buf[..60].fill(0);
    buf[0..6].copy_from_slice(&EXT_MAC);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xfe]);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut buf[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&vip);
    let c = checksum::finish(checksum::sum(ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    client_tcp(&mut buf[34..54], sport, flags);
}

/// A 74-byte IPv6 TCP frame from `src` (address, port) to vip:80, to our MAC.
fn client_frame6(buf: &mut [u8], (src, sport): (u128, u16), vip: [u8; 16], flags: u8) {
    buf[..FRAME6].fill(0);
    buf[0..6].copy_from_slice(&EXT_MAC);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xfe]);
    buf[12..14].copy_from_slice(&[0x86, 0xdd]);
    ip6_header(&mut buf[14..54], src, u128::from_be_bytes(vip));
    client_tcp(&mut buf[54..74], sport, flags);
}

/// An IPv6 header of a 20-byte TCP segment (no extension headers).
fn ip6_header(ip: &mut [u8], src: u128, dst: u128) {
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.to_be_bytes());
    ip[24..40].copy_from_slice(&dst.to_be_bytes());
}

/// The TCP header of a client's segment from `sport` to port 80.
fn client_tcp(tcp: &mut [u8], sport: u16, flags: u8) {
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    if flags & ACK != 0 {
        // Acknowledges the members' SYN-ACKs (sequence number 0, see
        // `reply_frame`), so the handshake confirms the session.
        tcp[8..12].copy_from_slice(&1u32.to_be_bytes());
    }
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    // The TCP checksum is not verified by the pipeline, only updated.
}

/// Visits 0..n in a scattered order: i * stride mod n, stride coprime with n.
fn scatter(n: u32) -> impl Fn(u64) -> u32 {
    let mut stride: u64 = 2_654_435_761 % u64::from(n.max(2));
    while gcd(stride, u64::from(n)) != 1 {
        stride += 1;
    }
    let n = u64::from(n);
    move |i| ((i % n) * stride % n) as u32
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Runs `count` frames of flows `flow(i)` through the worker in bursts,
/// timing only the `process` calls. Returns (ns per packet, frames sent to the int port).
fn run(w: &mut Worker, count: u64, flow: impl Fn(u64) -> u32, vip: Vip, flags: u8) -> (f64, u64) {
    // SYNs go through `syn_burst`, the rest through `data_burst`, each
    // with buffers of its shape.
    let mut syns: Vec<(usize, VecBuf)> = (0..BURST).map(|_| (0, VecBuf::empty())).collect();
    let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::empty()).collect();
    let mut tmp = [0u8; FRAME6];
    let mut spent = Duration::ZERO;
    let mut tx = 0u64;
    let mut i = 0u64;
    while i < count {
        let n = BURST.min((count - i) as usize);
        for k in 0..n {
            let len = frame(&mut tmp, flow(i + k as u64), vip, flags);
            match flags {
                SYN => syns[k].1.reset(&tmp[..len]),
                _ => bufs[k].reset(&tmp[..len]),
            }
        }
        let t = Instant::now();
        tx += if flags == SYN {
            syn_burst(std::slice::from_mut(w), &mut syns[..n])
        } else {
            data_burst(w, &mut bufs[..n])
        };
        spent += t.elapsed();
        i += n as u64;
    }
    (spent.as_nanos() as f64 / count as f64, tx)
}

/// New sessions of flows `0..n` to `vip`, each answered by its member's
/// SYN-ACK, as real ones are: a session nobody answers stays half-open, and
/// half-open sessions are bounded to a quarter of the table (the SYN-flood
/// defence), which would evict them once that many wait for the handshake. SYNs go in chunks below that bound and
/// only the SYNs are timed. Returns (ns per SYN, SYNs forwarded).
fn fill(w: &mut Worker, n: u32, vip: Vip) -> (f64, u64) {
    let chunk = (w.sessions().capacity() / 8).max(1);
    let (mut ns, mut tx) = (0.0, 0u64);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let (c_ns, c_tx) = run(w, u64::from(len), |i| start + i as u32, vip, SYN);
        ns += c_ns * f64::from(len);
        tx += c_tx;
        answer(w, start..start + len, vip);
        start += len;
    }
    (ns / f64::from(n.max(1)), tx)
}

/// The members' SYN-ACKs to the sessions of flows `flows` to `vip`, and
/// the clients' ACKs that complete the handshakes.
fn answer(w: &mut Worker, flows: std::ops::Range<u32>, vip: Vip) {
    let mut buf = VecBuf::empty();
    let mut tmp = [0u8; FRAME6];
    for i in flows {
        let Some(len) = member_reply(w, &mut tmp, i, vip) else {
            continue;
        };
        buf.reset(&tmp[..len]);
        w.process(1, &mut buf, false);
        let len = frame(&mut tmp, i, vip, ACK);
        buf.reset(&tmp[..len]);
        w.process(0, &mut buf, false);
    }
}

/// The SYN-ACK of the member of flow `i`'s session to `vip`, if there is
/// one; returns its length.
fn member_reply(w: &Worker, buf: &mut [u8], i: u32, vip: Vip) -> Option<usize> {
    let sport = 1024 + (i % FLOWS_PER_ADDR) as u16;
    match vip {
        Vip::V4(vip) => {
            let t = Tuple4 {
                src: CLIENT + i / FLOWS_PER_ADDR,
                dst: u32::from_be_bytes(vip),
                sport,
                dport: 80,
                proto: 6,
            };
            let (idx, _) = w.sessions().lookup(&t, t.hash())?;
            let s = *w.sessions().get(idx);
            reply_frame(buf, (s.member, s.mport), (s.snat, s.sport));
            Some(FRAME4)
        }
        Vip::V6(vip) => {
            let t = Tuple6 {
                src: CLIENT6 + u128::from(i / FLOWS_PER_ADDR),
                dst: u128::from_be_bytes(vip),
                sport,
                dport: 80,
                proto: 6,
            };
            let (idx, _) = w.sessions6().lookup(&t, t.hash())?;
            let s = *w.sessions6().get(idx);
            reply_frame6(buf, (s.member, s.mport), (s.snat, s.sport));
            Some(FRAME6)
        }
    }
}

/// A member's SYN-ACK from `src` to `dst`, to the int port's MAC.
fn reply_frame(buf: &mut [u8], src: (u32, u16), dst: (u32, u16)) {
    buf[..60].fill(0);
    buf[0..6].copy_from_slice(&INT_MAC);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x11]);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut buf[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.0.to_be_bytes());
    let c = checksum::finish(checksum::sum(ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    reply_tcp(&mut buf[34..54], src.1, dst.1);
}

/// The same over IPv6.
fn reply_frame6(buf: &mut [u8], src: (u128, u16), dst: (u128, u16)) {
    buf[..FRAME6].fill(0);
    buf[0..6].copy_from_slice(&INT_MAC);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x06, 0x11]);
    buf[12..14].copy_from_slice(&[0x86, 0xdd]);
    ip6_header(&mut buf[14..54], src.0, dst.0);
    reply_tcp(&mut buf[54..74], src.1, dst.1);
}

/// The TCP header of a member's SYN-ACK (sequence number 0).
fn reply_tcp(tcp: &mut [u8], sport: u16, dport: u16) {
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x12;
}

/// Session `i` as the pipeline creates it for flow `i` of the Dest-NAT server.
fn session(i: u32) -> Session4 {
    Session4 {
        client: CLIENT + i / FLOWS_PER_ADDR,
        vip: u32::from(Ipv4Addr::new(198, 51, 100, 10)),
        member: 0x0a14_000b + i % 3,
        snat: CLIENT + i / FLOWS_PER_ADDR,
        cport: 1024 + (i % FLOWS_PER_ADDR) as u16,
        vport: 80,
        mport: 8080,
        sport: 1024 + (i % FLOWS_PER_ADDR) as u16,
        last_seen: T0,
        vs: 0,
        proto: 6,
        state: 0,
    }
}

fn arg(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The two servers of a family, by the name the report gives them.
struct Family {
    dnat: (&'static str, Vip),
    bnat: (&'static str, Vip),
}

/// What `established` measured.
struct Established {
    dnat_ns: f64,
    bnat_ns: f64,
    /// ns per SYN filling the table, both servers.
    fill_ns: f64,
    /// Bytes of the family's session table.
    table_bytes: usize,
    /// Frames not forwarded.
    bad: u64,
}

/// `packets` packets of established sessions to each server of `fam`
/// (ns/packet), with `n` sessions of each in one table of 2n.
fn established(sh: &Arc<Shared>, fam: &Family, n: u32, packets: u64) -> Established {
    let mut w = worker(sh, 2 * n);
    let (fill_d, tx_d) = fill(&mut w, n, fam.dnat.1);
    let (fill_b, tx_b) = fill(&mut w, n, fam.bnat.1);
    let order = scatter(n);
    let (dnat_ns, txd) = run(&mut w, packets, &order, fam.dnat.1, ACK_PSH);
    let (bnat_ns, txb) = run(&mut w, packets, &order, fam.bnat.1, ACK_PSH);
    let table_bytes = match fam.dnat.1 {
        Vip::V4(_) => w.sessions().memory_bytes(),
        Vip::V6(_) => w.sessions6().memory_bytes(),
    };
    Established {
        dnat_ns,
        bnat_ns,
        fill_ns: (fill_d + fill_b) / 2.0,
        table_bytes,
        bad: 2 * u64::from(n) - tx_d - tx_b + 2 * packets - txd - txb,
    }
}

/// New sessions to `vip` into an empty table of `cap`, filled to 80%:
/// (ns per SYN, SYNs not forwarded).
fn new_sessions(sh: &Arc<Shared>, cap: u32, vip: Vip) -> (f64, u64) {
    let syns = cap / 10 * 8;
    let mut w = worker(sh, cap);
    let (ns, tx) = fill(&mut w, syns, vip);
    (ns, u64::from(syns) - tx)
}

fn statm_resident_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    // `--least`: only the least-connections figure (BENCHMARKS.md compares
    // it); `--least=N`: with N workers only (one callgrind count each).
    let least = std::env::args().find_map(|a| {
        let n = a.strip_prefix("--least")?;
        Some(n.strip_prefix('=').and_then(|n| n.parse().ok()))
    });
    if arg("--sync") {
        let bad = sync_install(smoke);
        std::process::exit(i32::from(bad > 0));
    }
    if let Some(only) = least {
        let bad = least_connections(smoke, only);
        if bad > 0 {
            println!("WARNING: {bad} SYNs were not forwarded");
        }
        std::process::exit(i32::from(bad > 0));
    }
    let sizes: &[u32] = if smoke {
        &[1_000, 100_000]
    } else {
        &[1_000, 1_000_000, 10_000_000]
    };
    let packets: u64 = if smoke { 200_000 } else { 4_000_000 };
    // New sessions through the whole pipeline, into a table sized like the
    // daemon's default (1M), filled from empty to 80%.
    let cap: u32 = if smoke { 65_536 } else { 1 << 20 };
    let sh = shared();
    let v4 = Family {
        dnat: ("dest_nat", VIP_DNAT),
        bnat: ("both_nat", VIP_BNAT),
    };
    let v6 = Family {
        dnat: ("dest_nat6", VIP6_DNAT),
        bnat: ("both_nat6", VIP6_BNAT),
    };
    let mut bad = 0u64;
    // `--established`, `--syn`: only the established packets or the new
    // sessions, of IPv4 or with `--v6` of IPv6 (callgrind counts them:
    // BENCHMARKS.md).
    let (established_only, syn_only) = (arg("--established"), arg("--syn"));
    if established_only || syn_only {
        let (sh, fam, what) = match arg("--v6") {
            false => (sh, v4, "IPv4"),
            true => (shared6(), v6, "IPv6"),
        };
        if established_only {
            for &n in sizes {
                bad += established(&sh, &fam, n, packets).bad;
            }
            println!("established {what} packets: {bad} not forwarded");
        } else {
            for (_, vip) in [fam.dnat, fam.bnat] {
                bad += new_sessions(&sh, cap, vip).1;
            }
            println!("new {what} sessions: {bad} SYNs not forwarded");
        }
        std::process::exit(i32::from(bad > 0));
    }

    println!(
        "sluice pipeline benchmark ({}), one worker, {FRAME4}-byte IPv4 and {FRAME6}-byte IPv6 \
         TCP frames (+ 4 bytes of FCS on the wire), bursts of {BURST}",
        if smoke { "smoke" } else { "full" }
    );
    // Memory: a table of the largest size, filled completely.
    // Measured first, so the allocator has no freed memory to reuse.
    let n = *sizes.last().unwrap();
    let rss0 = statm_resident_bytes();
    let mut t = SessionTable::<Session4>::with_capacity(n);
    let rss1 = statm_resident_bytes();
    for i in 0..n {
        if t.insert(session(i)).is_err() {
            bad += 1;
        }
    }
    let rss2 = statm_resident_bytes();
    let mem = t.memory_bytes();
    let len = t.len();
    drop(t);
    println!("memory, SessionTable of capacity {n} filled to {len} sessions:");
    println!(
        "  SessionTable::memory_bytes  {mem} B = {:.1} B/session",
        mem as f64 / f64::from(n)
    );
    println!(
        "  resident after building     +{} B = {:.1} B/session",
        rss1 - rss0,
        (rss1 - rss0) as f64 / f64::from(n)
    );
    println!(
        "  resident after filling      +{} B = {:.1} B/session",
        rss2 - rss0,
        (rss2 - rss0) as f64 / f64::from(len.max(1))
    );
    println!();
    println!("established session, ns/packet (flows in scattered order):");
    let sh6 = shared6();
    for (sh, fam) in [(&sh, &v4), (&sh6, &v6)] {
        println!(
            "{:>10} {:>10} {:>10} {:>14} {:>14}",
            "sessions", fam.dnat.0, fam.bnat.0, "fill ns/SYN", "table MB"
        );
        for &n in sizes {
            let r = established(sh, fam, n, packets);
            bad += r.bad;
            println!(
                "{:>10} {:>10.1} {:>10.1} {:>14.1} {:>14.1}",
                n,
                r.dnat_ns,
                r.bnat_ns,
                r.fill_ns,
                r.table_bytes as f64 / 1e6
            );
        }
    }

    println!();
    println!(
        "new session (SYN: lookup miss, member choice, insert, rewrite), table of {cap} filled 0 -> 80%:"
    );
    for (sh, fam) in [(&sh, &v4), (&sh6, &v6)] {
        for (name, vip) in [fam.dnat, fam.bnat] {
            let (ns, not_sent) = new_sessions(sh, cap, vip);
            bad += not_sent;
            println!(
                "  {name:<9} {ns:>7.1} ns/session  ({:.2} M sessions/s)",
                1e3 / ns
            );
        }
    }
    drop(sh6);
    let fill = cap / 10 * 8;

    // The parts alone.
    let mut t = SessionTable::<Session4>::with_capacity(cap);
    let start = Instant::now();
    for i in 0..fill {
        if t.insert(black_box(session(i))).is_err() {
            bad += 1;
        }
    }
    let ins = start.elapsed().as_nanos() as f64 / f64::from(fill);
    drop(t);
    let t = SessionTable::<Session4>::with_capacity(cap);
    let mut hit = 0u32;
    let lookups = 10_000_000u32;
    let start = Instant::now();
    for i in 0..lookups {
        let tu = black_box(session(i % fill).forward());
        hit += u32::from(t.lookup(&tu, tu.hash()).is_some());
    }
    black_box(hit);
    let miss = start.elapsed().as_nanos() as f64 / f64::from(lookups);
    drop(t);
    let mut balancer = sluice_dataplane::sched::pick::Balancer::new(&sh, 0, 0);
    let flow = Tuple4 {
        src: 0xcb00_7107,
        dst: match sh.service(0).expect("the bench config has a server").vip {
            std::net::IpAddr::V4(vip) => u32::from(vip),
            std::net::IpAddr::V6(_) => panic!("the bench's server is IPv4"),
        },
        sport: 40000,
        dport: 80,
        proto: 6,
    };
    let picks = 10_000_000u32;
    let start = Instant::now();
    for _ in 0..picks {
        black_box(balancer.choose(&sh, 0, black_box(&flow), 0).ok());
    }
    let pick = start.elapsed().as_nanos() as f64 / f64::from(picks);
    println!("  parts: SessionTable::insert {ins:.1} ns, lookup miss (hash + 2 buckets) {miss:.1} ns, member choice (round robin of 3) {pick:.1} ns");

    // Checksum updates.
    let mut f = [0u8; 60];
    frame(&mut f, 7, VIP_DNAT, ACK_PSH);
    let reps = 20_000_000u32;
    let start = Instant::now();
    for i in 0..reps {
        let ip = black_box(&mut f[14..]);
        nat::rewrite(
            ip,
            20,
            (Ipv4Addr::from(0xc612_0001 + (i & 0xff)), 1024),
            (Ipv4Addr::new(10, 20, 0, 11), 8080),
        );
    }
    let rw = start.elapsed().as_nanos() as f64 / f64::from(reps);
    let start = Instant::now();
    let mut c = 0x1234u16;
    for i in 0..reps {
        c = checksum::adjust32(black_box(c), black_box(i), black_box(i ^ 0x0a14_000b));
    }
    black_box(c);
    let adj = start.elapsed().as_nanos() as f64 / f64::from(reps);
    let start = Instant::now();
    let mut ok = 0u32;
    for _ in 0..reps {
        ok += u32::from(checksum::fold(checksum::sum(black_box(&f[14..34]))) == 0xffff);
    }
    black_box(ok);
    let verify = start.elapsed().as_nanos() as f64 / f64::from(reps);
    println!();
    println!("checksums: nat::rewrite (IP+TCP, addresses, ports, TTL) {rw:.1} ns; adjust32 {adj:.2} ns; IPv4 header verify {verify:.1} ns");

    println!();
    bad += least_connections(smoke, None);

    if bad > 0 {
        println!();
        println!("WARNING: {bad} packets were not forwarded as expected");
        std::process::exit(1);
    }
}

/// Members of the least-connections pool.
const LEAST_MEMBERS: u32 = 100;
const VIP_LEAST: [u8; 4] = [198, 51, 100, 12];

/// The bench's own configuration with a virtual server balancing 100
/// members by least connections.
fn least_config() -> String {
    let mut cfg = config();
    for i in 0..LEAST_MEMBERS {
        cfg += &format!(
            "\n[[neighbor]]\naddress = \"10.20.1.{}\"\nmac = \"02:00:00:00:01:{:02x}\"\ninterface = \"int\"\n",
            i + 1,
            i + 1
        );
    }
    let members: Vec<String> = (0..LEAST_MEMBERS)
        .map(|i| format!("{{ address = \"10.20.1.{}:8080\" }}", i + 1))
        .collect();
    cfg += &format!(
        "\n[pool.many]\nmethod = \"least_connections\"\nmembers = [{}]\n\n[[virtual_server]]\nname = \"least\"\naddress = \"198.51.100.12:80\"\nprotocol = \"tcp\"\npool = \"many\"\nforwarding = \"dest_nat\"\n",
        members.join(", ")
    );
    cfg
}

/// New sessions of a least-connections server of 100 members, with 1 and 2
/// workers (or `only` that many), driven from this one thread, each SYN on
/// the worker owning its client, as the daemon's workers would each take
/// theirs. Every flow has a client address of its own. Returns the SYNs
/// not forwarded.
fn least_connections(smoke: bool, only: Option<u16>) -> u64 {
    let syns: u32 = if smoke { 20_000 } else { 400_000 };
    println!(
        "new session, least_connections over {LEAST_MEMBERS} members ({syns} SYNs, one thread):"
    );
    let mut bad = 0;
    for workers in [1u16, 2]
        .into_iter()
        .filter(|w| only.is_none_or(|o| o == *w))
    {
        let cfg = sluice_config::parse(&least_config(), "bench.toml").expect("bench config parses");
        let sh = Arc::new(Shared::new(&cfg, &[EXT_MAC, INT_MAC], workers));
        let mut ws: Vec<Worker> = (0..workers)
            .map(|id| {
                let mut w = Worker::new(id, sh.clone(), Arc::new(WorkerStats::default()), 4 * syns);
                w.set_time(u64::from(T0));
                w
            })
            .collect();
        let mut bufs: Vec<(usize, VecBuf)> = Vec::with_capacity(BURST);
        let mut tmp = [0u8; 60];
        let (mut spent, mut tx) = (Duration::ZERO, 0u64);
        // The control thread's fold of the other workers' counts, every
        // millisecond (untimed: it runs on another core).
        let ids: Vec<u32> = (0..LEAST_MEMBERS)
            .map(|m| sh.member_id(1, m as usize))
            .collect();
        assert!(
            ids.iter().all(|id| *id != u32::MAX),
            "the pool of the least server"
        );
        let mut folded = Instant::now();
        let mut i = 0;
        while i < syns {
            if folded.elapsed() >= Duration::from_millis(1) {
                sh.members.fold(&ids);
                folded = Instant::now();
            }
            bufs.clear();
            for k in i..(i + BURST as u32).min(syns) {
                // A client address per flow.
                let src = 0xc612_0001 + k;
                client_frame(&mut tmp, (src, 1024), VIP_LEAST, SYN);
                let owner = sh.client_owner(Ipv4Addr::from(src));
                bufs.push((usize::from(owner), VecBuf::new(&tmp)));
            }
            let t = Instant::now();
            tx += syn_burst(&mut ws, &mut bufs);
            spent += t.elapsed();
            i += BURST as u32;
        }
        bad += u64::from(syns) - tx;
        let ns = spent.as_nanos() as f64 / f64::from(syns);
        println!(
            "  {workers} worker{}  {ns:>7.1} ns/session  ({:.2} M sessions/s)",
            if workers == 1 { " " } else { "s" },
            1e3 / ns
        );
    }
    if only.is_none_or(|o| o == 2) {
        bad += least_connections_on_threads(syns);
    }
    bad
}

/// The same with 2 workers each on a thread of its own, both choosing at
/// once (the other's counts change under it, as in the daemon); worker 0's
/// thread also folds every millisecond, untimed. Returns the SYNs not
/// forwarded.
fn least_connections_on_threads(syns: u32) -> u64 {
    let cfg = sluice_config::parse(&least_config(), "bench.toml").expect("bench config parses");
    let sh = Arc::new(Shared::new(&cfg, &[EXT_MAC, INT_MAC], 2));
    let ids: Vec<u32> = (0..LEAST_MEMBERS)
        .map(|m| sh.member_id(1, m as usize))
        .collect();
    let start = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2u16)
        .map(|id| {
            let (sh, ids, start) = (sh.clone(), ids.clone(), start.clone());
            std::thread::spawn(move || {
                let mut w = Worker::new(id, sh.clone(), Arc::new(WorkerStats::default()), 4 * syns);
                w.set_time(u64::from(T0));
                let mut tmp = [0u8; 60];
                let mut mine: Vec<(usize, VecBuf)> = (0..syns)
                    .map(|k| 0xc612_0001 + k)
                    .filter(|src| sh.client_owner(Ipv4Addr::from(*src)) == id)
                    .map(|src| {
                        client_frame(&mut tmp, (src, 1024), VIP_LEAST, SYN);
                        (0, VecBuf::new(&tmp))
                    })
                    .collect();
                let mut ws = [w];
                let mut tx = 0;
                let mut folded = Instant::now();
                start.wait();
                let began = Instant::now();
                for chunk in mine.chunks_mut(BURST) {
                    if id == 0 && folded.elapsed() >= Duration::from_millis(1) {
                        sh.members.fold(&ids);
                        folded = Instant::now();
                    }
                    tx += syn_burst(&mut ws, chunk);
                }
                (began.elapsed(), tx, mine.len() as u64)
            })
        })
        .collect();
    let (mut longest, mut bad) = (Duration::ZERO, 0);
    for t in threads {
        let (spent, tx, sent) = t.join().expect("bench thread");
        longest = longest.max(spent);
        bad += sent - tx;
    }
    let ns = longest.as_nanos() as f64 / f64::from(syns);
    println!(
        "  2 workers on 2 threads  {ns:>7.1} ns/session  ({:.2} M sessions/s, wall clock)",
        1e3 / ns
    );
    bad
}

/// One burst of SYNs, each on its worker; returns how many were forwarded.
/// Out of line, so `valgrind --tool=callgrind --toggle-collect=*syn_burst*`
/// counts exactly the instructions of the new sessions.
#[inline(never)]
fn syn_burst(ws: &mut [Worker], bufs: &mut [(usize, VecBuf)]) -> u64 {
    let mut tx = 0;
    for (w, b) in bufs.iter_mut() {
        tx += u64::from(ws[*w].process(0, b, false) == Verdict::Tx(1));
    }
    tx
}

/// Session synchronisation, the receiving worker: peers' Both-NAT
/// sessions (each with its own SNAT port to reserve) installed into an
/// empty table, as the sync task hands them over in batches. Prints ns per
/// session and sessions a second; returns the records refused.
fn sync_install(smoke: bool) -> u64 {
    use sluice_dataplane::sync::{SyncOp, SyncRecord};
    use sluice_dataplane::worker::AnySession;
    let n: u32 = if smoke { 100_000 } else { 1_000_000 };
    let cfg = format!(
        "{}\n[ha]\nnode_id = 1\nsync_interface = \"int\"\nsync_peers = [\"10.20.0.2\"]\n",
        config()
    );
    let cfg = sluice_config::parse(&cfg, "bench-sync.toml").expect("bench config parses");
    let sh = Arc::new(Shared::new(&cfg, &[EXT_MAC, INT_MAC], 1));
    let mut w = worker(&sh, n.next_power_of_two());
    let snat = |i: u32| {
        u32::from(Ipv4Addr::new(
            10,
            20,
            (1 + i / 200) as u8,
            (1 + i % 200) as u8,
        ))
    };
    let records: Vec<SyncRecord> = (0..n)
        .map(|i| {
            let (addr, port) = (i / FLOWS_PER_ADDR, 1024 + (i % FLOWS_PER_ADDR) as u16);
            SyncRecord {
                op: SyncOp::Update,
                session: AnySession::V4(Session4 {
                    client: CLIENT + addr,
                    vip: u32::from(Ipv4Addr::new(198, 51, 100, 11)),
                    member: u32::from(Ipv4Addr::new(10, 20, 0, 11 + (i % 3) as u8)),
                    snat: snat(addr),
                    cport: port,
                    vport: 80,
                    mport: 8080,
                    sport: port,
                    proto: 6,
                    state: sluice_dataplane::conntrack::tcp::ESTABLISHED
                        | sluice_dataplane::conntrack::flag::CONFIRMED,
                    ..Session4::default()
                }),
                mode: sluice_config::Forwarding::BothNat,
                idle_ms: 1_000,
            }
        })
        .collect();
    let start = Instant::now();
    let refused = records
        .chunks(1024)
        .map(|batch| {
            batch
                .iter()
                .filter(|r| w.install_synced(r).is_err())
                .count() as u64
        })
        .sum::<u64>();
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "session sync, peers' Both-NAT sessions installed into an empty table of {}: \
         {n} sessions, {ns:.1} ns/session = {:.2} M sessions/s, {refused} refused",
        n.next_power_of_two(),
        1e3 / ns
    );
    refused
}

static DATA_BURSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One burst of packets of established sessions through the worker;
/// returns how many went to the int port. Out of line, so `valgrind
/// --tool=callgrind --toggle-collect=*data_burst*` counts exactly the
/// instructions of established packets (BENCHMARKS.md).
#[inline(never)]
fn data_burst(w: &mut Worker, bufs: &mut [VecBuf]) -> u64 {
    // A side effect of its own: no other loop of the same shape can be
    // folded into this function (the SYN loop was, once).
    DATA_BURSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tx = 0;
    for b in bufs.iter_mut() {
        tx += u64::from(w.process(0, b, false) == Verdict::Tx(1));
    }
    tx
}
