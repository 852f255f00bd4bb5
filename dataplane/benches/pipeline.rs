//! In-process benchmarks of the pipeline on plain buffers (no DPDK).
//!
//!     cargo bench -p sluice-dataplane --bench pipeline            # full (~1 min, ~1.5 GB)
//!     cargo bench -p sluice-dataplane --bench pipeline -- --smoke # CI: small tables, seconds
//!     cargo bench -p sluice-dataplane --bench pipeline -- --least # least connections only
//!
//! Prints, one worker on one thread:
//! * ns per packet of an established session (Dest-NAT and Both-NAT), with
//!   1k, 1M and 10M sessions in the table, flows visited in a scattered order
//!   (every packet a different flow, as on a busy link);
//! * ns per new session: a SYN through the whole pipeline (lookup miss,
//!   round-robin member choice, SNAT port for Both-NAT, insert, rewrite), and
//!   the parts alone (member choice, table insert);
//! * ns per checksum update (`nat::rewrite`: addresses, ports, TTL with
//!   RFC 1624 updates of the IP and TCP checksums; one `adjust32`);
//! * resident bytes per session at 10M sessions (/proc/self/statm before and
//!   after building and filling the table) next to `SessionTable::memory_bytes()`.
//!
//! Frames are built outside the timed region, a burst of 32 at a time, and
//! the timer runs around the 32 `Worker::process` calls only, as the daemon
//! runs them on a received burst. No figure is asserted: this is a report.

use sluice_dataplane::nat;
use sluice_dataplane::packet::VecBuf;
use sluice_dataplane::session::{Session4, SessionTable, Tuple4};
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::WorkerStats;
use sluice_dataplane::wire::checksum;
use sluice_dataplane::worker::{Verdict, Worker};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const EXT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const INT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const VIP_DNAT: [u8; 4] = [198, 51, 100, 10];
const VIP_BNAT: [u8; 4] = [198, 51, 100, 11];
const FLOWS_PER_ADDR: u32 = 60_000;
/// SNAT addresses of the Both-NAT server: 64512 ports each, enough for 10M sessions.
const SNAT_ADDRS: u32 = 170;
const SYN: u8 = 0x02;
const ACK_PSH: u8 = 0x18;
const ACK: u8 = 0x10;
const T0: u32 = 1_000_000;

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

fn shared() -> Arc<Shared> {
    let cfg = sluice_config::parse(&config(), "bench.toml").expect("bench config parses");
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

/// A 60-byte TCP frame (a 64-byte frame on the wire) of flow `flow`:
/// 198.18.0.1 + flow / 60000 : 1024 + flow % 60000 -> vip:80, to our MAC.
fn frame(buf: &mut [u8], flow: u32, vip: [u8; 4], flags: u8) {
    let src = 0xc612_0001u32 + flow / FLOWS_PER_ADDR;
    let sport = 1024 + (flow % FLOWS_PER_ADDR) as u16;
    client_frame(buf, (src, sport), vip, flags);
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
    let tcp = &mut buf[34..54];
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
fn run(
    w: &mut Worker,
    count: u64,
    flow: impl Fn(u64) -> u32,
    vip: [u8; 4],
    flags: u8,
) -> (f64, u64) {
    let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0u8; 60])).collect();
    let mut tmp = [0u8; 60];
    let mut spent = Duration::ZERO;
    let mut tx = 0u64;
    let mut i = 0u64;
    while i < count {
        let n = BURST.min((count - i) as usize);
        for (k, b) in bufs.iter_mut().take(n).enumerate() {
            frame(&mut tmp, flow(i + k as u64), vip, flags);
            b.reset(&tmp);
        }
        let t = Instant::now();
        tx += if flags == SYN {
            // In line: identical bodies could be merged with `data_burst`'s.
            let mut syns = 0;
            for b in bufs.iter_mut().take(n) {
                syns += u64::from(w.process(0, b, false) == Verdict::Tx(1));
            }
            syns
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
fn fill(w: &mut Worker, n: u32, vip: [u8; 4]) -> (f64, u64) {
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
fn answer(w: &mut Worker, flows: std::ops::Range<u32>, vip: [u8; 4]) {
    let mut buf = VecBuf::new(&[0u8; 60]);
    let mut tmp = [0u8; 60];
    for i in flows {
        let t = Tuple4 {
            src: 0xc612_0001 + i / FLOWS_PER_ADDR,
            dst: u32::from_be_bytes(vip),
            sport: 1024 + (i % FLOWS_PER_ADDR) as u16,
            dport: 80,
            proto: 6,
        };
        let Some((idx, _)) = w.sessions().lookup(&t, t.hash()) else {
            continue;
        };
        let s = *w.sessions().get(idx);
        reply_frame(&mut tmp, (s.member, s.mport), (s.snat, s.sport));
        buf.reset(&tmp);
        w.process(1, &mut buf, false);
        frame(&mut tmp, i, vip, ACK);
        buf.reset(&tmp);
        w.process(0, &mut buf, false);
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
    let tcp = &mut buf[34..54];
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x12;
}

/// Session `i` as the pipeline creates it for flow `i` of the Dest-NAT server.
fn session(i: u32) -> Session4 {
    Session4 {
        client: 0xc612_0001 + i / FLOWS_PER_ADDR,
        vip: u32::from_be_bytes(VIP_DNAT),
        member: 0x0a14_000b + i % 3,
        snat: 0xc612_0001 + i / FLOWS_PER_ADDR,
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
    let sh = shared();
    let mut bad = 0u64;
    if std::env::args().any(|a| a == "--established") {
        // Only the established packets (callgrind counts them: BENCHMARKS.md).
        for &n in sizes {
            let mut w = worker(&sh, 2 * n);
            fill(&mut w, n, VIP_DNAT);
            fill(&mut w, n, VIP_BNAT);
            let order = scatter(n);
            let (_, txd) = run(&mut w, packets, &order, VIP_DNAT, ACK_PSH);
            let (_, txb) = run(&mut w, packets, &order, VIP_BNAT, ACK_PSH);
            bad += 2 * packets - txd - txb;
        }
        println!("established packets: {} not forwarded", bad);
        std::process::exit(i32::from(bad > 0));
    }

    println!(
        "sluice pipeline benchmark ({}), one worker, 64-byte TCP frames, bursts of {BURST}",
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
    println!(
        "{:>10} {:>10} {:>10} {:>14} {:>14}",
        "sessions", "dest_nat", "both_nat", "fill ns/SYN", "table MB"
    );
    for &n in sizes {
        // One table for both servers: n sessions each, 2n capacity.
        let mut w = worker(&sh, 2 * n);
        let (fill_d, tx_d) = fill(&mut w, n, VIP_DNAT);
        let (fill_b, tx_b) = fill(&mut w, n, VIP_BNAT);
        bad += 2 * u64::from(n) - tx_d - tx_b;
        let order = scatter(n);
        let (dn, txd) = run(&mut w, packets, &order, VIP_DNAT, ACK_PSH);
        let (bn, txb) = run(&mut w, packets, &order, VIP_BNAT, ACK_PSH);
        bad += 2 * packets - txd - txb;
        let mem = w.sessions().memory_bytes();
        println!(
            "{:>10} {:>10.1} {:>10.1} {:>14.1} {:>14.1}",
            n,
            dn,
            bn,
            (fill_d + fill_b) / 2.0,
            mem as f64 / 1e6
        );
        drop(w);
    }

    // New sessions through the whole pipeline, into a table sized like the
    // daemon's default (1M), filled from empty to 80%.
    let cap: u32 = if smoke { 65_536 } else { 1 << 20 };
    let fill = cap / 10 * 8;
    println!();
    println!("new session (SYN: lookup miss, member choice, insert, rewrite), table of {cap} filled 0 -> 80%:");
    for (name, vip) in [("dest_nat", VIP_DNAT), ("both_nat", VIP_BNAT)] {
        let mut w = worker(&sh, cap);
        let (ns, tx) = self::fill(&mut w, fill, vip);
        bad += u64::from(fill) - tx;
        println!(
            "  {name:<9} {ns:>7.1} ns/session  ({:.2} M sessions/s)",
            1e3 / ns
        );
    }

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
