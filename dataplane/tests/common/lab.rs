//! The test lab: a two-port switch with Dest-NAT, Both-NAT, UDP and port-0
//! virtual servers, and a harness that runs frames through workers and
//! checks verdicts, output bytes and counter deltas.

use super::frame::{arp, diff, eth, Mac, Pkt, ETH_ARP};
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::session::Session4;
use sluice_dataplane::shared::Shared;
use sluice_dataplane::stats::{DropReason, WorkerStats};
use sluice_dataplane::worker::{Verdict, Worker};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const EXT: u16 = 0;
pub const INT: u16 = 1;
pub const EXT_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
pub const INT_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x01];
pub const BCAST: Mac = [0xff; 6];

pub const EXT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const INT_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
pub const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0xfe];
/// A client on the ext link, with a static neighbour entry.
pub const LOCAL_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 50);
pub const LOCAL_CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x50];
/// A client behind the router (its frames come from the router's MAC).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

pub const VIP_WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const VIP_BOTH: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
pub const VIP_DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
pub const VIP_ANY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 13);
pub const SNAT_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 100);

pub const WEB: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 20, 0, 11),
    Ipv4Addr::new(10, 20, 0, 12),
    Ipv4Addr::new(10, 20, 0, 13),
];
pub const WEB_MAC: [Mac; 3] = [
    [0x02, 0, 0, 0, 0, 0x11],
    [0x02, 0, 0, 0, 0, 0x12],
    [0x02, 0, 0, 0, 0, 0x13],
];
pub const APP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 21);
pub const APP_MAC: Mac = [0x02, 0, 0, 0, 0, 0x21];
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 31);
pub const DNS_MAC: Mac = [0x02, 0, 0, 0, 0, 0x31];
/// Member of the port-0 server: no static neighbour entry (learned by ARP).
pub const ANY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 41);
pub const ANY_MAC: Mac = [0x02, 0, 0, 0, 0, 0x41];

/// Timeouts of the lab config, in milliseconds.
pub const TCP_SYN_MS: u32 = 5_000;
pub const TCP_EST_MS: u32 = 60_000;
pub const TCP_FIN_MS: u32 = 20_000;
pub const TCP_CLOSE_MS: u32 = 3_000;
pub const UDP_MS: u32 = 30_000;

/// Virtual-server indexes (order in the config).
pub const VS_WEB: u16 = 0;
pub const VS_BOTH: u16 = 1;
pub const VS_DNS: u16 = 2;
pub const VS_ANY: u16 = 3;

pub const CONFIG: &str = r#"
[timeouts]
tcp_syn = "5s"
tcp_established = "60s"
tcp_fin = "20s"
tcp_close = "3s"
udp = "30s"
icmp = "10s"

[[interface]]
name = "ext"
device = "net_null0"
addresses = ["198.51.100.1/24"]

[[interface]]
name = "int"
device = "net_null1"
addresses = ["10.20.0.1/24"]

[[route]]
destination = "0.0.0.0/0"
gateway = "198.51.100.254"

[[neighbor]]
address = "198.51.100.254"
mac = "02:00:00:00:00:fe"
interface = "ext"

[[neighbor]]
address = "198.51.100.50"
mac = "02:00:00:00:00:50"
interface = "ext"

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

[[neighbor]]
address = "10.20.0.21"
mac = "02:00:00:00:00:21"
interface = "int"

[[neighbor]]
address = "10.20.0.31"
mac = "02:00:00:00:00:31"
interface = "int"

[pool.web]
members = [
  { address = "10.20.0.11:8080" },
  { address = "10.20.0.12:8080" },
  { address = "10.20.0.13:8080" },
]

[pool.app]
members = [ { address = "10.20.0.21:80" } ]

[pool.dns]
members = [ { address = "10.20.0.31:53" } ]

[pool.any]
members = [ { address = "10.20.0.41:0" } ]

[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
protocol = "tcp"
pool = "web"
forwarding = "dest_nat"

[[virtual_server]]
name = "both"
address = "198.51.100.11:80"
protocol = "tcp"
pool = "app"
forwarding = "both_nat"
snat_addresses = ["10.20.0.100"]

[[virtual_server]]
name = "dns"
address = "198.51.100.12:53"
protocol = "udp"
pool = "dns"
forwarding = "dest_nat"

[[virtual_server]]
name = "any"
address = "198.51.100.13:0"
protocol = "tcp"
pool = "any"
forwarding = "dest_nat"
"#;

/// ARP operations.
pub const ARP_REQ: u16 = 1;
pub const ARP_REP: u16 = 2;

/// A frame from the client-side router to the switch's ext port.
pub fn from_router(p: &Pkt) -> Vec<u8> {
    p.frame(EXT_MAC, ROUTER_MAC)
}

/// A frame from the switch's ext port to the router.
pub fn to_router(p: &Pkt) -> Vec<u8> {
    p.frame(ROUTER_MAC, EXT_MAC)
}

/// A frame from host `mac` on the members' LAN to the switch's int port.
pub fn from_int(mac: Mac, p: &Pkt) -> Vec<u8> {
    p.frame(INT_MAC, mac)
}

/// A frame from the switch's int port to host `mac`.
pub fn to_int(mac: Mac, p: &Pkt) -> Vec<u8> {
    p.frame(mac, INT_MAC)
}

/// An Ethernet-framed ARP packet.
pub fn arp_frame(
    dst: Mac,
    src: Mac,
    op: u16,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    eth(dst, src, ETH_ARP, &arp(op, sha, spa, tha, tpa))
}

/// The lab config with each `(from, to)` edit applied; every `from` must
/// occur exactly once, so a config change cannot silently void a variant.
#[allow(dead_code)]
pub fn variant(edits: &[(&str, &str)]) -> String {
    let mut cfg = CONFIG.to_string();
    for (from, to) in edits {
        assert_eq!(cfg.matches(from).count(), 1, "config edit anchor {from:?}");
        cfg = cfg.replace(from, to);
    }
    cfg
}

/// The shared tables of the lab for `workers` workers.
pub fn shared(workers: u16) -> Arc<Shared> {
    shared_from(CONFIG, &[EXT_MAC, INT_MAC], workers)
}

/// The shared tables of another config text; `macs[i]` is the MAC of the
/// i-th `[[interface]]`.
pub fn shared_from(config: &str, macs: &[Mac], workers: u16) -> Arc<Shared> {
    let cfg = sluice_config::parse(config, "test.toml").expect("lab config parses");
    Arc::new(Shared::new(&cfg, macs, workers))
}

/// Start time of every lab (not 0, so "last seen at 0" bugs would show).
pub const T0: u32 = 1_000_000;

/// What a frame should turn into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Tx(u16, Vec<u8>),
    Drop(DropReason),
    Consumed,
    Redirect(u16),
    /// Handed to the exception path (the kernel interface), untouched.
    Kernel,
    /// Held for the MAC of this next hop on this port (an ARP request queued).
    Held(u16, Ipv4Addr),
    /// The same for an IPv6 next hop (a neighbour solicitation queued).
    Held6(u16, std::net::Ipv6Addr),
    /// A fragment held, untouched, until its first fragment passes.
    HeldFragment,
    /// Sent on this port as these IPv4 fragments (cut as the daemon cuts
    /// a frame longer than the port's MTU).
    TxFragments(u16, Vec<Vec<u8>>),
}

/// Counter values of one worker by name (scalars and `drop.<reason>`).
pub fn snapshot(s: &WorkerStats) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = s
        .scalars()
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    for r in DropReason::ALL {
        m.insert(format!("drop.{}", r.name()), s.drops_of(*r));
    }
    m
}

/// Nonzero changes between two snapshots (gauges included, as signed).
pub fn deltas(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = *v as i64 - before[k] as i64;
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

pub struct Lab {
    pub workers: Vec<Worker>,
}

impl Lab {
    pub fn new(workers: u16, capacity: u32) -> Lab {
        Lab::with_shared(shared(workers), capacity)
    }

    /// A lab over other shared tables (see [`shared_from`]), one worker per
    /// `sh.workers`. Each worker's counters have a slot per virtual server
    /// and per member id, as the daemon sizes them.
    pub fn with_shared(sh: Arc<Shared>, capacity: u32) -> Lab {
        let workers = sh.workers;
        let workers = (0..workers)
            .map(|id| {
                let stats = WorkerStats::new(sh.vs_capacity());
                let mut w = Worker::new(id, sh.clone(), Arc::new(stats), capacity);
                w.set_time(u64::from(T0));
                w
            })
            .collect();
        Lab { workers }
    }

    /// Moves every worker to `config` as the control thread does on a
    /// reload: the new tables from the running ones and the workers'
    /// session counts, then each worker takes them between two frames.
    #[allow(dead_code)]
    pub fn reload(
        &mut self,
        config: &str,
    ) -> Result<Arc<Shared>, sluice_dataplane::shared::ReloadError> {
        let cfg = sluice_config::parse(config, "test.toml").expect("reload config parses");
        let old = self.workers[0].shared().clone();
        let stats: Vec<Arc<WorkerStats>> = self.workers.iter().map(|w| w.stats().clone()).collect();
        let sessions = |slot: u16| -> u64 {
            stats
                .iter()
                .map(|s| {
                    s.vs_sessions[usize::from(slot)].load(std::sync::atomic::Ordering::Relaxed)
                })
                .sum()
        };
        let next = Arc::new(old.reload(&cfg, &sessions)?);
        // Members new to the switch get their state, as the control thread
        // gives it (`apply_member_settings`).
        for (p, pool) in cfg.pools.iter().enumerate() {
            for (j, m) in pool.members.iter().enumerate() {
                let id = next.member_id(p, j);
                let known = match m.address {
                    std::net::SocketAddr::V4(a) => old.member_key_id(&pool.name, a) == Some(id),
                    std::net::SocketAddr::V6(_) => true,
                };
                if !known {
                    next.members.assign(id, m.weight, m.enabled);
                }
            }
        }
        self.adopt_all(&old, &next);
        Ok(next)
    }

    /// Hands every worker `next` (built from `old`), as a reload does.
    fn adopt_all(&mut self, old: &Shared, next: &Arc<Shared>) {
        for w in &mut self.workers {
            let capacity = w.sessions().capacity();
            let adopt = sluice_dataplane::reload::Adopt::prepare(old, next.clone(), w.id, capacity);
            let left = w.adopt(adopt);
            assert_eq!(left.generation, next.generation);
        }
    }

    /// Moves every worker to the snapshot of `config` whose floating
    /// addresses are `owned`, as the control thread does when the kernel
    /// interfaces' addresses change (`vip_ownership = "kernel"`).
    #[allow(dead_code)]
    pub fn reown(&mut self, config: &str, owned: &[(u16, std::net::IpAddr)]) -> Arc<Shared> {
        let cfg = sluice_config::parse(config, "test.toml").expect("config parses");
        let old = self.workers[0].shared().clone();
        let owned = owned.iter().copied().collect();
        let next = Arc::new(old.reown(&cfg, owned, &|_| 0).expect("reown applies"));
        self.adopt_all(&old, &next);
        next
    }

    pub fn set_time(&mut self, ms: u32) {
        for w in &mut self.workers {
            w.set_time(u64::from(ms));
        }
    }

    pub fn maintain(&mut self) {
        for w in &mut self.workers {
            w.maintain(u32::MAX);
        }
    }

    /// Runs a held fragment through worker `w` again, as the daemon does
    /// once a first fragment passed; returns the verdict and the bytes after.
    #[allow(dead_code)]
    pub fn replay(
        &mut self,
        w: usize,
        port: u16,
        frame: &[u8],
        redirected: bool,
    ) -> (Verdict, Vec<u8>) {
        let mut buf = VecBuf::new(frame);
        let v = self.workers[w].replay_fragment(port, &mut buf, redirected);
        (v, buf.data().to_vec())
    }

    /// Runs a frame through worker `w`; returns the verdict and the bytes after.
    pub fn run(
        &mut self,
        w: usize,
        port: u16,
        frame: &[u8],
        redirected: bool,
    ) -> (Verdict, Vec<u8>) {
        let (v, mut frames) = self.run_frames(w, port, frame, redirected);
        (v, frames.swap_remove(0))
    }

    /// `run`, with the frames a `TxFragmented` verdict becomes, cut as the
    /// daemon cuts them (one frame for any other verdict).
    pub fn run_frames(
        &mut self,
        w: usize,
        port: u16,
        frame: &[u8],
        redirected: bool,
    ) -> (Verdict, Vec<Vec<u8>>) {
        let mut buf = VecBuf::new(frame);
        let worker = &mut self.workers[w];
        if !redirected {
            worker.count_rx(port, 1, frame.len() as u64);
        }
        let v = worker.process(port, &mut buf, redirected);
        let mut frames = Vec::new();
        if let Verdict::TxFragmented(p) = v {
            while worker.oversize(p, &buf) {
                let mut tail = VecBuf::new(&[]);
                if !worker.split_fragment(p, &mut buf, &mut tail) {
                    break;
                }
                frames.push(std::mem::replace(&mut buf, tail).data().to_vec());
            }
        }
        frames.push(buf.data().to_vec());
        (v, frames)
    }

    /// Checks one golden case on worker `w` and returns the counter deltas
    /// of that worker. Besides the verdict and output bytes, it checks the
    /// counters every verdict implies: rx, exactly one drop of the right
    /// reason for drops and none otherwise, `forwarded`, `redirected`.
    pub fn case(
        &mut self,
        name: &str,
        w: usize,
        port: u16,
        frame: &[u8],
        redirected: bool,
        expect: Expect,
    ) -> BTreeMap<String, i64> {
        self.case_with(name, w, port, frame, redirected, move |_| expect)
    }

    /// `case` whose expectation is built after the run from the output
    /// bytes, for fields the pipeline chooses freely (an IPv4 ident it
    /// writes); every other byte is still compared exactly.
    pub fn case_with(
        &mut self,
        name: &str,
        w: usize,
        port: u16,
        frame: &[u8],
        redirected: bool,
        expect: impl FnOnce(&[u8]) -> Expect,
    ) -> BTreeMap<String, i64> {
        let before = snapshot(&self.workers[w].stats().clone());
        let (verdict, frames) = self.run_frames(w, port, frame, redirected);
        let out = frames[0].clone();
        let after = snapshot(&self.workers[w].stats().clone());
        let expect = expect(&out);
        let d = deltas(&before, &after);
        let get = |k: &str| d.get(k).copied().unwrap_or(0);
        match &expect {
            Expect::Tx(p, want) => {
                assert_eq!(verdict, Verdict::Tx(*p), "{name}: verdict (deltas {d:?})");
                assert!(out == *want, "{name}: output frame\n{}", diff(&out, want));
            }
            Expect::TxFragments(p, want) => {
                let v = Verdict::TxFragmented(*p);
                assert_eq!(verdict, v, "{name}: verdict (deltas {d:?})");
                assert_eq!(frames.len(), want.len(), "{name}: fragments");
                for (i, (out, want)) in frames.iter().zip(want).enumerate() {
                    let diff = diff(out, want);
                    assert!(out == want, "{name}: fragment {i}\n{diff}");
                }
            }
            Expect::Drop(r) => {
                assert_eq!(verdict, Verdict::Drop(*r), "{name}: verdict (deltas {d:?})");
                assert_eq!(
                    get(&format!("drop.{}", r.name())),
                    1,
                    "{name}: drop counter {d:?}"
                );
            }
            Expect::Consumed => assert_eq!(verdict, Verdict::Consumed, "{name}: verdict"),
            Expect::Held(port, next_hop) => assert_eq!(
                verdict,
                Verdict::Hold {
                    port: *port,
                    next_hop: *next_hop
                },
                "{name}: verdict"
            ),
            Expect::Held6(port, next_hop) => match verdict {
                Verdict::Hold6 { port: p, index } => {
                    assert_eq!(p, *port, "{name}: port");
                    let hop = self.workers[w].held_hop6(index);
                    assert_eq!(hop, *next_hop, "{name}: next hop");
                }
                v => panic!("{name}: verdict {v:?}, want Hold6"),
            },
            Expect::HeldFragment => {
                assert_eq!(verdict, Verdict::HoldFragment, "{name}: verdict");
                assert_eq!(out, frame, "{name}: a held fragment is left untouched");
            }
            Expect::Kernel => {
                assert_eq!(verdict, Verdict::Kernel, "{name}: verdict");
                assert_eq!(
                    out, frame,
                    "{name}: a frame for the kernel is left untouched"
                );
            }
            Expect::Redirect(o) => {
                assert_eq!(verdict, Verdict::Redirect(*o), "{name}: verdict");
                assert_eq!(out, frame, "{name}: a redirected frame is left untouched");
            }
        }
        let is_drop = matches!(expect, Expect::Drop(_));
        assert_eq!(
            get("drops"),
            i64::from(is_drop),
            "{name}: total drops {d:?}"
        );
        assert_eq!(
            get("rx_packets"),
            i64::from(!redirected),
            "{name}: rx {d:?}"
        );
        assert_eq!(
            get("redirected"),
            i64::from(matches!(expect, Expect::Redirect(_))),
            "{name}: redirected counter {d:?}"
        );
        // Forwarded counts only routed NAT traffic (not ARP/echo replies).
        if !matches!(expect, Expect::Tx(..) | Expect::TxFragments(..)) {
            assert_eq!(get("forwarded"), 0, "{name}: forwarded {d:?}");
        }
        d
    }

    /// `case` on worker 0, not redirected.
    pub fn c(
        &mut self,
        name: &str,
        port: u16,
        frame: &[u8],
        expect: Expect,
    ) -> BTreeMap<String, i64> {
        self.case(name, 0, port, frame, false, expect)
    }

    /// `case` on worker 0 as the owner of every client: the frame is taken
    /// as handed over by another worker, so ownership is not checked.
    pub fn c_owner(
        &mut self,
        name: &str,
        port: u16,
        frame: &[u8],
        expect: Expect,
    ) -> BTreeMap<String, i64> {
        self.case(name, 0, port, frame, true, expect)
    }

    /// The live sessions of worker `w`.
    pub fn sessions(&self, w: usize) -> Vec<Session4> {
        self.workers[w].sessions().iter().map(|(_, s)| *s).collect()
    }

    /// The session of worker `w` whose client side is `client:cport`.
    pub fn session(&self, w: usize, client: Ipv4Addr, cport: u16) -> Option<Session4> {
        self.sessions(w)
            .into_iter()
            .find(|s| s.client == u32::from(client) && s.cport == cport)
    }
}

/// Asserts the listed counter deltas (others are not constrained).
#[track_caller]
pub fn assert_deltas(d: &BTreeMap<String, i64>, want: &[(&str, i64)]) {
    for (k, v) in want {
        assert_eq!(
            d.get(*k).copied().unwrap_or(0),
            *v,
            "counter {k}: deltas {d:?}"
        );
    }
}
