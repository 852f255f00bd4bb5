//! The established fast path against the general path (issue 19): the same
//! random traffic goes through two labs built alike, one with the fast path
//! (as the switch runs) and one without it (`Worker::set_fast_path(false)`),
//! and after every step both must agree on everything observable: the
//! verdict, the bytes of every frame sent, every counter, every session
//! entry, the packets queued for generation and the neighbour requests.
//!
//! The traffic: TCP connections with complete handshakes (so most later
//! segments belong to steady sessions, the fast path's), their data, FINs
//! and RSTs from either end, retransmitted SYNs, UDP both ways; to servers
//! of every mode and both families (Dest-NAT, Both-NAT, L2-DSR, L3-DSR,
//! LAN-to-LAN with a PROXY header, port 0, reset on timeout); with TTLs that run out and
//! corrupted header checksums; across clock moves past every timeout,
//! the sweep, and reloads that change timeouts, remove a server (its
//! sessions drain) or move a server's VIP; on one worker and on two
//! (frames redirected to their owner).

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use common::lab6::config6;
use proptest::prelude::*;
use sluice_dataplane::worker::{Generated, Verdict};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

/// The lab's servers: (VIP, port, TCP).
const SERVERS: [(&str, u16, bool); 15] = [
    ("198.51.100.10", 80, true),   // web: dest_nat
    ("198.51.100.11", 80, true),   // both: both_nat
    ("198.51.100.12", 53, false),  // dns: dest_nat, UDP
    ("198.51.100.13", 8443, true), // any: port 0
    ("198.51.100.20", 80, true),   // dsr4: l2_dsr
    ("198.51.100.21", 80, true),   // lan4: lan_to_lan
    ("198.51.100.22", 80, true),   // reset4: reset_on_timeout
    ("198.51.100.23", 80, true),   // gre4: l3_dsr (gre)
    ("2001:db8:1::10", 80, true),  // web6: dest_nat
    ("2001:db8:1::11", 80, true),  // both6: both_nat
    ("2001:db8:1::12", 53, false), // dns6: UDP
    ("2001:db8:1::13", 80, true),  // dsr6: l2_dsr
    ("2001:db8:1::15", 80, true),  // l3_dsr (ipip)
    ("2001:db8:1::18", 80, true),  // reset6: reset_on_timeout
    ("2001:db8:1::19", 80, true),  // lan6: lan_to_lan
];

const CLIENTS4: [Ipv4Addr; 2] = [CLIENT, Ipv4Addr::new(203, 0, 113, 8)];
const CLIENTS6: [&str; 2] = ["2001:db8:99::7", "2001:db8:99::8"];
const MEMBER_MAC: Mac = [0x02, 0, 0, 0, 0, 0x11];

/// The IPv4 servers the common lab lacks, in the modes it lacks.
const EXTRA4: &str = r#"
[[virtual_server]]
name = "dsr4"
address = "198.51.100.20:80"
protocol = "tcp"
pool = "app"
forwarding = "l2_dsr"

[pool.lan4]
members = [ { address = "10.20.0.21:80" } ]

[[virtual_server]]
name = "lan4"
address = "198.51.100.21:80"
protocol = "tcp"
pool = "lan4"
forwarding = "lan_to_lan"
lan_subnets = ["10.20.0.0/24"]
snat_addresses = ["10.20.0.101"]
proxy_protocol = "v2"

[pool.reset4]
on_member_down = "reset"
members = [ { address = "10.20.0.11:8080" } ]

[[virtual_server]]
name = "reset4"
address = "198.51.100.22:80"
protocol = "tcp"
pool = "reset4"
forwarding = "dest_nat"
reset_on_timeout = true

[[virtual_server]]
name = "gre4"
address = "198.51.100.23:80"
protocol = "tcp"
pool = "app"
forwarding = "l3_dsr"
encapsulation = "gre"
"#;

/// The lab's configuration; the addresses the switch answers for are
/// those the test gives it (`[ha] vip_ownership = "kernel"`, see `reown`).
fn base() -> String {
    config6() + EXTRA4 + "\n[ha]\nvip_ownership = \"kernel\"\n"
}

/// The floating addresses the kernel interfaces hold: every VIP and SNAT
/// address, but web's VIPs unless `web`, and with `client` the address of
/// the second client of each family (an address of the switch's then,
/// which the member's answers to it may no longer pass).
fn owned(web: bool, client: bool) -> Vec<(u16, IpAddr)> {
    let mut vips: Vec<IpAddr> = (10..=23).map(|i| ip(&format!("198.51.100.{i}"))).collect();
    vips.push(ip("198.51.100.30"));
    vips.extend((0x10..=0x19).map(|i| ip(&format!("2001:db8:1::{i:x}"))));
    vips.retain(|a| web || (*a != ip("198.51.100.10") && *a != ip("2001:db8:1::10")));
    let mut owned: Vec<(u16, IpAddr)> = vips.into_iter().map(|a| (EXT, a)).collect();
    for snat in ["10.20.0.100", "10.20.0.101", "fd00:20::100"] {
        owned.push((INT, ip(snat)));
    }
    if client {
        owned.push((EXT, CLIENTS4[1].into()));
        owned.push((EXT, ip(CLIENTS6[1])));
    }
    owned
}

/// The configuration a reload moves to.
fn variant_config(v: u8) -> String {
    let cfg = base();
    match v % 4 {
        0 => cfg,
        1 => cfg.replace(r#"tcp_established = "60s""#, r#"tcp_established = "2s""#),
        2 => without_server(&cfg, "both"),
        _ => cfg.replace(r#""198.51.100.10:80""#, r#""198.51.100.30:80""#),
    }
}

/// `cfg` without the virtual server `name` (its sessions drain).
fn without_server(cfg: &str, name: &str) -> String {
    let head = format!("[[virtual_server]]\nname = \"{name}\"\n");
    let start = cfg.find(&head).expect("the server is in the configuration");
    let end = cfg[start + 1..]
        .find("\n[")
        .map_or(cfg.len(), |e| start + 1 + e + 1);
    format!("{}{}", &cfg[..start], &cfg[end..])
}

/// One step of the traffic.
#[derive(Clone, Debug)]
enum Op {
    /// A client opens a connection (SYN, the member's SYN-ACK, the ACK).
    Connect {
        server: u8,
        client: u8,
        cport: u8,
    },
    /// A segment of connection `conn` from the client or from the member.
    Segment {
        conn: u8,
        from_member: bool,
        flags: u8,
        len: u8,
        ttl: u8,
        bad_checksum: bool,
    },
    /// A UDP datagram from a client, or its member's answer.
    Datagram {
        server: u8,
        client: u8,
        cport: u8,
        from_member: bool,
    },
    Advance {
        ms: u32,
    },
    Maintain,
    Reload {
        variant: u8,
    },
    /// The kernel interfaces' floating addresses change (see [`owned`]).
    Reown {
        web: bool,
        client: bool,
    },
}

const FLAGS: [u8; 7] = [ACK, ACK | PSH, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN];
const STEPS_MS: [u32; 6] = [1, 700, 2_500, 21_000, 61_000, 3_600_000];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u8>(), 0u8..2, 0u8..4)
            .prop_map(|(server, client, cport)| Op::Connect { server, client, cport }),
        8 => (any::<u8>(), any::<bool>(), 0usize..FLAGS.len(), 0u8..3, 0u8..8, 0u8..16)
            .prop_map(|(conn, from_member, f, len, ttl, bad)| Op::Segment {
                conn,
                from_member,
                flags: FLAGS[f],
                len: len * 40,
                ttl: if ttl == 0 { 1 } else { 64 },
                bad_checksum: bad == 0,
            }),
        2 => (any::<bool>(), 0u8..2, 0u8..4, any::<bool>())
            .prop_map(|(v6, client, cport, from_member)| Op::Datagram {
                server: if v6 { 10 } else { 2 },
                client,
                cport,
                from_member,
            }),
        2 => (0usize..STEPS_MS.len()).prop_map(|i| Op::Advance { ms: STEPS_MS[i] }),
        1 => Just(Op::Maintain),
        1 => any::<u8>().prop_map(|variant| Op::Reload { variant }),
        1 => (0u8..4, 0u8..4).prop_map(|(w, c)| Op::Reown { web: w > 0, client: c == 0 }),
    ]
}

/// A connection the test opened: its ends and sequence numbers.
#[derive(Clone, Copy, Debug)]
struct Conn {
    server: usize,
    client: IpAddr,
    cport: u16,
    /// Next sequence number of the client and of the member.
    cseq: u32,
    mseq: u32,
}

/// The two labs and what the test knows of the traffic.
struct Pair {
    fast: Lab,
    general: Lab,
    conns: Vec<Conn>,
    now: u32,
    /// The variant of the configuration running (see `variant_config`).
    config: u8,
}

/// Everything observable of a lab after a step.
#[derive(Debug, PartialEq)]
struct Observed {
    counters: Vec<BTreeMap<String, u64>>,
    per_server: Vec<Vec<Vec<u64>>>,
    sessions: Vec<String>,
    generated: Vec<Vec<Generated>>,
    neighbours: Vec<Vec<(u16, IpAddr)>>,
}

fn observe(lab: &mut Lab) -> Observed {
    let mut o = Observed {
        counters: Vec::new(),
        per_server: Vec::new(),
        sessions: Vec::new(),
        generated: Vec::new(),
        neighbours: Vec::new(),
    };
    for w in &mut lab.workers {
        let s = w.stats().clone();
        o.counters.push(snapshot(&s));
        let each = [
            &s.vs_rejected,
            &s.vs_full,
            &s.vs_denied,
            &s.vs_sessions,
            &s.vs_packets_in,
            &s.vs_bytes_in,
            &s.vs_packets_out,
            &s.vs_bytes_out,
        ];
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        o.per_server
            .push(each.iter().map(|b| b.iter().map(load).collect()).collect());
        let v4: Vec<_> = w.sessions().iter().map(|(i, s)| (i, *s)).collect();
        let v6: Vec<_> = w.sessions6().iter().map(|(i, s)| (i, *s)).collect();
        o.sessions.push(format!("{v4:?} {v6:?}"));
        o.generated
            .push(std::iter::from_fn(|| w.pop_generated()).collect());
        o.neighbours
            .push(std::iter::from_fn(|| w.pop_neighbor_request()).collect());
    }
    o
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A TCP segment between two endpoints of one family, in a frame from
/// `from` to `to`.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    (to, from): (Mac, Mac),
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: u8,
    (seq, ack): (u32, u32),
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = Pkt::tcp((s, src.1), (d, dst.1), flags);
            p.ttl = ttl;
            if let Body::Tcp {
                seq: ps,
                ack: pa,
                payload: pp,
                ..
            } = &mut p.body
            {
                (*ps, *pa, *pp) = (seq, ack, payload.to_vec());
            }
            p.frame(to, from)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let l4 = tcp6((s, src.1), (d, dst.1), flags, seq, ack, payload);
            frame6(to, from, s, d, NH_TCP, ttl, &l4)
        }
        _ => unreachable!("one family"),
    }
}

fn udp_frame((to, from): (Mac, Mac), src: (IpAddr, u16), dst: (IpAddr, u16)) -> Vec<u8> {
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Pkt::udp((s, src.1), (d, dst.1), b"query").frame(to, from)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let l4 = udp6((s, src.1), (d, dst.1), b"query");
            frame6(to, from, s, d, NH_UDP, 64, &l4)
        }
        _ => unreachable!("one family"),
    }
}

/// The member end and the client-side address of the session of `client`
/// to `server` in `lab`, as the member sees them: ((member, port), (snat, port)).
fn member_view(lab: &Lab, server: usize, client: IpAddr, cport: u16) -> Option<Ends> {
    let (vip, vport, _) = SERVERS[server];
    let vip = ip(vip);
    for w in &lab.workers {
        for (_, s) in w.sessions().iter() {
            let hit = IpAddr::V4(Ipv4Addr::from(s.client)) == client
                && IpAddr::V4(Ipv4Addr::from(s.vip)) == vip
                && s.cport == cport
                && (s.vport == vport || s.vport == 0);
            if hit {
                let (m, n) = (Ipv4Addr::from(s.member), Ipv4Addr::from(s.snat));
                return Some(((m.into(), s.mport), (n.into(), s.sport)));
            }
        }
        for (_, s) in w.sessions6().iter() {
            let hit = IpAddr::V6(Ipv6Addr::from(s.client)) == client
                && IpAddr::V6(Ipv6Addr::from(s.vip)) == vip
                && s.cport == cport;
            if hit {
                let (m, n) = (Ipv6Addr::from(s.member), Ipv6Addr::from(s.snat));
                return Some(((m.into(), s.mport), (n.into(), s.sport)));
            }
        }
    }
    None
}

type Ends = ((IpAddr, u16), (IpAddr, u16));

impl Pair {
    fn new(workers: u16) -> Pair {
        let lab = || {
            let sh = shared_from(&base(), &[EXT_MAC, INT_MAC], workers);
            Lab::with_shared(sh, 256)
        };
        let (mut fast, mut general) = (lab(), lab());
        for w in &mut general.workers {
            w.set_fast_path(false);
        }
        for lab in [&mut fast, &mut general] {
            lab.reown(&base(), &owned(true, false));
        }
        Pair {
            fast,
            general,
            conns: Vec::new(),
            now: T0,
            config: 0,
        }
    }

    /// Sends `frame` on `port` through both labs (to the owner when a
    /// worker redirects it) and requires the same outcome.
    fn send(&mut self, worker: usize, port: u16, frame: &[u8]) -> Result<Verdict, TestCaseError> {
        let mut outcome = Vec::new();
        for lab in [&mut self.fast, &mut self.general] {
            let w = worker % lab.workers.len();
            let (mut v, mut frames) = lab.run_frames(w, port, frame, false);
            if let Verdict::Redirect(to) = v {
                (v, frames) = lab.run_frames(usize::from(to), port, frame, true);
            }
            outcome.push((v, frames, observe(lab)));
        }
        let (fast, general) = (&outcome[0], &outcome[1]);
        prop_assert_eq!(fast.0, general.0, "verdict");
        prop_assert_eq!(&fast.1, &general.1, "frames sent");
        prop_assert_eq!(&fast.2, &general.2, "counters, sessions, queues");
        Ok(fast.0)
    }

    fn step(&mut self, op: &Op, worker: usize) -> Result<(), TestCaseError> {
        match *op {
            Op::Connect {
                server,
                client,
                cport,
            } => self.connect(usize::from(server) % SERVERS.len(), client, cport, worker),
            Op::Segment {
                conn,
                from_member,
                flags,
                len,
                ttl,
                bad_checksum,
            } => {
                if self.conns.is_empty() {
                    return Ok(());
                }
                let i = usize::from(conn) % self.conns.len();
                let payload = vec![0x5a; usize::from(len)];
                let mut frame = self.segment(i, from_member, flags, &payload, ttl);
                if bad_checksum && frame[12..14] == [0x08, 0x00] {
                    frame[24] ^= 0x40;
                }
                let port = if from_member { INT } else { EXT };
                self.send(worker, port, &frame)?;
                Ok(())
            }
            Op::Datagram {
                server,
                client,
                cport,
                from_member,
            } => {
                let server = usize::from(server);
                let client = self.client(server, client);
                let cport = 5300 + u16::from(cport);
                let (vip, vport, _) = SERVERS[server];
                let frame = match from_member {
                    false => udp_frame((EXT_MAC, ROUTER_MAC), (client, cport), (ip(vip), vport)),
                    true => match member_view(&self.fast, server, client, cport) {
                        Some((member, near)) => udp_frame((INT_MAC, MEMBER_MAC), member, near),
                        None => return Ok(()),
                    },
                };
                let port = if from_member { INT } else { EXT };
                self.send(worker, port, &frame)?;
                Ok(())
            }
            Op::Advance { ms } => {
                self.now = self.now.wrapping_add(ms);
                self.fast.set_time(self.now);
                self.general.set_time(self.now);
                Ok(())
            }
            Op::Maintain => {
                self.fast.maintain();
                self.general.maintain();
                prop_assert_eq!(observe(&mut self.fast), observe(&mut self.general));
                Ok(())
            }
            Op::Reown { web, client } => {
                let (cfg, owned) = (variant_config(self.config), owned(web, client));
                self.fast.reown(&cfg, &owned);
                self.general.reown(&cfg, &owned);
                prop_assert_eq!(observe(&mut self.fast), observe(&mut self.general));
                Ok(())
            }
            Op::Reload { variant } => {
                self.config = variant;
                let cfg = variant_config(variant);
                let (a, b) = (self.fast.reload(&cfg), self.general.reload(&cfg));
                prop_assert_eq!(a.is_ok(), b.is_ok(), "reload outcome");
                prop_assert_eq!(observe(&mut self.fast), observe(&mut self.general));
                Ok(())
            }
        }
    }

    fn client(&self, server: usize, i: u8) -> IpAddr {
        match ip(SERVERS[server].0) {
            IpAddr::V4(_) => CLIENTS4[usize::from(i) % 2].into(),
            IpAddr::V6(_) => ip(CLIENTS6[usize::from(i) % 2]),
        }
    }

    /// SYN, the member's SYN-ACK (where the member's answers pass the
    /// switch), the client's ACK; the connection is kept for later steps
    /// whatever became of it.
    fn connect(
        &mut self,
        server: usize,
        client: u8,
        cport: u8,
        worker: usize,
    ) -> Result<(), TestCaseError> {
        let (vip, vport, tcp) = SERVERS[server];
        if !tcp {
            return Ok(());
        }
        let client = self.client(server, client);
        let cport = 40000 + u16::from(cport);
        let c = Conn {
            server,
            client,
            cport,
            cseq: 1_000,
            mseq: 7_000_000,
        };
        let syn = tcp_frame(
            (EXT_MAC, ROUTER_MAC),
            (client, cport),
            (ip(vip), vport),
            SYN,
            (c.cseq - 1, 0),
            &[],
            64,
        );
        self.send(worker, EXT, &syn)?;
        self.conns
            .retain(|k| (k.server, k.client, k.cport) != (server, client, cport));
        self.conns.push(c);
        let i = self.conns.len() - 1;
        let synack = self.segment(i, true, SYN | ACK, &[], 64);
        if member_view(&self.fast, server, client, cport).is_some() {
            self.send(worker, INT, &synack)?;
        }
        let ack = self.segment(i, false, ACK, &[], 64);
        self.send(worker, EXT, &ack)?;
        Ok(())
    }

    /// A segment of connection `i` from one of its ends, advancing that
    /// end's sequence number by what it carries.
    fn segment(
        &mut self,
        i: usize,
        from_member: bool,
        flags: u8,
        payload: &[u8],
        ttl: u8,
    ) -> Vec<u8> {
        let c = self.conns[i];
        let (vip, vport, _) = SERVERS[c.server];
        let len = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        let view = member_view(&self.fast, c.server, c.client, c.cport);
        match (from_member, view) {
            (true, Some((member, near))) => {
                let seq = if flags & SYN != 0 { c.mseq - 1 } else { c.mseq };
                self.conns[i].mseq = c.mseq.wrapping_add(len - u32::from(flags & SYN != 0));
                let numbers = (seq, c.cseq);
                tcp_frame(
                    (INT_MAC, MEMBER_MAC),
                    member,
                    near,
                    flags,
                    numbers,
                    payload,
                    ttl,
                )
            }
            _ => {
                self.conns[i].cseq = c.cseq.wrapping_add(len);
                let numbers = (c.cseq, c.mseq);
                let (src, dst) = ((c.client, c.cport), (ip(vip), vport));
                tcp_frame(
                    (EXT_MAC, ROUTER_MAC),
                    src,
                    dst,
                    flags,
                    numbers,
                    payload,
                    ttl,
                )
            }
        }
    }
}

fn run(workers: u16, ops: &[(Op, u8)]) -> Result<(), TestCaseError> {
    let mut pair = Pair::new(workers);
    for (op, worker) in ops {
        pair.step(op, usize::from(*worker))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_agrees_with_general_path_one_worker(
        ops in prop::collection::vec((op(), any::<u8>()), 1..120),
    ) {
        run(1, &ops)?;
    }

    #[test]
    fn fast_path_agrees_with_general_path_two_workers(
        ops in prop::collection::vec((op(), any::<u8>()), 1..120),
    ) {
        run(2, &ops)?;
    }
}

/// The differential test is only worth something if the fast path answers
/// for the steady segments it sends: a fixed conversation, whose data
/// segments must come out as the general path writes them, for each mode
/// the fast path covers.
#[test]
fn steady_sessions_of_every_covered_mode_agree() {
    for server in [0usize, 1, 4, 5, 7, 8, 9, 11, 12, 14] {
        let mut pair = Pair::new(1);
        pair.connect(server, 0, 0, 0).expect("handshake agrees");
        for k in 0..4 {
            let from_member = k % 2 == 1;
            let frame = pair.segment(0, from_member, ACK | PSH, b"hello", 64);
            let port = if from_member { INT } else { EXT };
            let v = pair.send(0, port, &frame).expect("segment agrees");
            if !from_member {
                assert!(matches!(v, Verdict::Tx(_)), "server {server}: {v:?}");
            }
        }
    }
}
