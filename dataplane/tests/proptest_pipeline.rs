//! Property test of the whole pipeline: random frames and mutations of valid
//! frames (bit flips, byte overwrites, truncation, length-field corruption)
//! interleaved with clock moves and maintenance, for one and two workers.
//!
//! Properties:
//! * processing never panics (debug assertions included);
//! * the session tables stay consistent after every step;
//! * every `Drop(reason)` verdict is counted once under its reason, and
//!   nothing else is counted as a drop; redirects are counted likewise;
//! * a redirected frame processed by its owner is never redirected again;
//! * sessions live on the worker that owns their client (and SNAT port);
//!   live Both-NAT sessions never share a SNAT port;
//! * transmitted frames keep their length, carry the port's MAC as source,
//!   have a valid IPv4 header checksum, and a valid transport checksum
//!   whenever the input's was valid.

mod common;

use common::frame::*;
use common::lab::*;
use proptest::prelude::*;
use sluice_dataplane::service::{client_owner, snat_port_owner, SNAT_FIRST_PORT};
use sluice_dataplane::stats::DropReason;
use sluice_dataplane::worker::Verdict;
use std::collections::HashSet;
use std::net::Ipv4Addr;

const CLIENTS: [Ipv4Addr; 6] = [
    CLIENT,
    LOCAL_CLIENT,
    SNAT_IP, // spoofed: one of our SNAT addresses as a client
    WEB[0],  // a member as a client
    VIP_WEB, // our own VIP as a source
    Ipv4Addr::new(203, 0, 113, 8),
];
const FLAGS: [u8; 8] = [
    SYN,
    SYN | ACK,
    ACK,
    ACK | PSH,
    FIN | ACK,
    RST,
    RST | ACK,
    SYN | FIN,
];
const TTLS: [u8; 5] = [64, 1, 2, 0, 255];
const UNOWNED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

/// Parameters of one valid frame.
#[derive(Clone, Debug)]
struct Seed {
    kind: u8,
    a: u8,
    b: u8,
    c: u8,
    flags: u8,
    ttl: u8,
    plen: u8,
}

#[derive(Clone, Debug)]
enum Mut {
    Flip(u16, u8),
    Set(u16, u8),
    Truncate(u16),
    Extend(u8),
    IpTotalLen(u16),
    Ihl(u8),
    L4Len(u16),
    TcpOffset(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Frame {
        seed: Seed,
        muts: Vec<Mut>,
        fix_ip_checksum: bool,
        worker: u8,
    },
    Bytes {
        port: u16,
        bytes: Vec<u8>,
        worker: u8,
    },
    Advance(u32),
    Maintain(u32),
}

fn client(a: u8) -> (Ipv4Addr, u16) {
    (
        CLIENTS[usize::from(a) % CLIENTS.len()],
        40000 + u16::from(a / 8 % 4),
    )
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), s: &Seed) -> Pkt {
    let payload: Vec<u8> = (0..s.plen % 40).collect();
    Pkt::tcp(src, dst, FLAGS[usize::from(s.flags) % FLAGS.len()])
        .payload(&payload)
        .ttl(TTLS[usize::from(s.ttl) % TTLS.len()])
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), s: &Seed) -> Pkt {
    let payload: Vec<u8> = (0..s.plen % 40).collect();
    let p = Pkt::udp(src, dst, &payload).ttl(TTLS[usize::from(s.ttl) % TTLS.len()]);
    if s.flags & 1 == 1 {
        p.no_udp_checksum()
    } else {
        p
    }
}

fn from_router(p: &Pkt) -> (u16, Vec<u8>) {
    (EXT, p.frame(EXT_MAC, ROUTER_MAC))
}

fn from_int(mac: Mac, p: &Pkt) -> (u16, Vec<u8>) {
    (INT, p.frame(INT_MAC, mac))
}

/// A valid frame (and its arrival port) of the kinds the lab handles.
fn build(s: &Seed) -> (u16, Vec<u8>) {
    let c = client(s.a);
    let m = usize::from(s.b) % 3;
    let sport = SNAT_FIRST_PORT + u16::from(s.b % 6);
    let (port, frame) = match s.kind % 14 {
        0 => from_router(&tcp(c, (VIP_WEB, 80 + u16::from(s.c % 8 == 7)), s)),
        1 => from_int(WEB_MAC[m], &tcp((WEB[m], 8080), c, s)),
        2 => from_router(&tcp(c, (VIP_BOTH, 80), s)),
        3 => from_int(APP_MAC, &tcp((APP, 80), (SNAT_IP, sport), s)),
        4 => from_router(&udp(c, (VIP_DNS, 53), s)),
        5 => from_int(DNS_MAC, &udp((DNS, 53), c, s)),
        6 => {
            // A member's error about a packet the switch sent it.
            let about = match s.c % 3 {
                0 => tcp(c, (WEB[m], 8080), s),
                1 => udp(c, (DNS, 53), s),
                _ => tcp((SNAT_IP, sport), (APP, 80), s),
            };
            let (from, mac) = match s.c % 3 {
                0 => (WEB[m], WEB_MAC[m]),
                1 => (DNS, DNS_MAC),
                _ => (APP, APP_MAC),
            };
            let quote = [usize::MAX, 28, 40, 22][usize::from(s.flags / 8) % 4];
            let err = Pkt::icmp_error(from, about.src, 3, 3, [0; 4], &about, quote);
            from_int(mac, &err)
        }
        7 => {
            // A client-side router's error about a packet sent to a client.
            let vip = [(VIP_WEB, 80), (VIP_BOTH, 80), (VIP_DNS, 53)][usize::from(s.c) % 3];
            let about = if s.c % 3 == 2 {
                udp(vip, c, s)
            } else {
                tcp(vip, c, s)
            };
            let quote = [usize::MAX, 28, 40, 22][usize::from(s.flags / 8) % 4];
            let src = if s.flags & 1 == 1 { c.0 } else { ROUTER };
            let err = Pkt::icmp_error(src, vip.0, 3, 4, [0, 0, 5, 0], &about, quote)
                .ttl(TTLS[usize::from(s.ttl) % TTLS.len()]);
            from_router(&err)
        }
        8 => {
            let dst = [EXT_IP, INT_IP, VIP_WEB, SNAT_IP, UNOWNED][usize::from(s.c) % 5];
            let data: Vec<u8> = (0..s.plen % 64).collect();
            from_router(&Pkt::echo_request(c.0, dst, 1, u16::from(s.b), &data))
        }
        9 => {
            let target = [EXT_IP, VIP_WEB, SNAT_IP, INT_IP, UNOWNED, ANY][usize::from(s.c) % 6];
            let (sender, mac) = [
                (ROUTER, ROUTER_MAC),
                (ANY, ANY_MAC),
                (LOCAL_CLIENT, LOCAL_CLIENT_MAC),
                (Ipv4Addr::UNSPECIFIED, ANY_MAC),
                (target, ANY_MAC),
            ][usize::from(s.b) % 5];
            let op = 1 + u16::from(s.flags & 1);
            let port = u16::from(s.a & 1);
            let dst = if op == 1 {
                BCAST
            } else {
                [EXT_MAC, INT_MAC][usize::from(port)]
            };
            (
                port,
                eth(dst, mac, ETH_ARP, &arp(op, mac, sender, [0; 6], target)),
            )
        }
        10 => from_router(&tcp(c, (VIP_ANY, u16::from(s.b)), s)),
        11 => from_int(ANY_MAC, &tcp((ANY, u16::from(s.b)), c, s)),
        12 => {
            let ethertype = [ETH_IPV6, ETH_VLAN, 0x88a8, 0x88cc][usize::from(s.c) % 4];
            let ip = tcp(c, (VIP_WEB, 80), s).bytes();
            let mut payload = Vec::new();
            if ethertype == ETH_VLAN || ethertype == 0x88a8 {
                payload.extend_from_slice(&[0, 100, 0x08, 0x00]);
            }
            payload.extend_from_slice(&ip);
            (EXT, eth(EXT_MAC, ROUTER_MAC, ethertype, &payload))
        }
        _ => {
            // Frames with odd MACs: our own as source, another unicast, multicast.
            let p = tcp(c, (VIP_WEB, 80), s);
            let (d, sm) = [
                (EXT_MAC, EXT_MAC),
                ([2, 0, 0, 0, 0, 0x99], ROUTER_MAC),
                ([0x01, 0, 0x5e, 0, 0, 1], ROUTER_MAC),
                (BCAST, ROUTER_MAC),
            ][usize::from(s.c) % 4];
            (EXT, p.frame(d, sm))
        }
    };
    // Sometimes the frame arrives on the other port.
    let port = if s.c & 0x80 != 0 { port ^ 1 } else { port };
    (port, frame)
}

fn apply(frame: &mut Vec<u8>, m: &Mut) {
    let at = |i: u16, len: usize| usize::from(i) % len.max(1);
    const L3: usize = 14;
    let ihl = |f: &[u8]| f.get(L3).map_or(20, |b| usize::from(b & 0x0f) * 4);
    match *m {
        Mut::Flip(i, bit) if !frame.is_empty() => {
            let i = at(i, frame.len());
            frame[i] ^= 1 << (bit % 8);
        }
        Mut::Set(i, v) if !frame.is_empty() => {
            let i = at(i, frame.len());
            frame[i] = v;
        }
        Mut::Truncate(n) => frame.truncate(usize::from(n) % (frame.len() + 1)),
        Mut::Extend(n) => frame.extend((0..n).map(|x| x.wrapping_mul(37))),
        Mut::IpTotalLen(v) if frame.len() >= L3 + 4 => {
            frame[L3 + 2..L3 + 4].copy_from_slice(&v.to_be_bytes())
        }
        Mut::Ihl(v) if frame.len() > L3 => frame[L3] = (frame[L3] & 0xf0) | (v & 0x0f),
        Mut::L4Len(v) => {
            // UDP length (or TCP sequence bytes, or ICMP rest).
            let at = L3 + ihl(frame) + 4;
            if frame.len() >= at + 2 {
                frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        Mut::TcpOffset(v) => {
            let at = L3 + ihl(frame) + 12;
            if let Some(b) = frame.get_mut(at) {
                *b = (v & 0x0f) << 4;
            }
        }
        _ => {}
    }
}

fn seed() -> impl Strategy<Value = Seed> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(kind, a, b, c, flags, ttl, plen)| Seed {
            kind,
            a,
            b,
            c,
            flags,
            ttl,
            plen,
        })
}

fn mutation() -> impl Strategy<Value = Mut> {
    prop_oneof![
        4 => (any::<u16>(), any::<u8>()).prop_map(|(i, b)| Mut::Flip(i, b)),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(i, v)| Mut::Set(i, v)),
        2 => any::<u16>().prop_map(Mut::Truncate),
        1 => any::<u8>().prop_map(Mut::Extend),
        2 => prop_oneof![any::<u16>(), 0u16..80].prop_map(Mut::IpTotalLen),
        1 => any::<u8>().prop_map(Mut::Ihl),
        1 => prop_oneof![any::<u16>(), 0u16..64].prop_map(Mut::L4Len),
        1 => any::<u8>().prop_map(Mut::TcpOffset),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Valid frames, so sessions exist for later frames to hit.
        6 => (seed(), any::<u8>()).prop_map(|(seed, worker)| Op::Frame {
            seed,
            muts: vec![],
            fix_ip_checksum: false,
            worker
        }),
        6 => (seed(), prop::collection::vec(mutation(), 1..4), any::<bool>(), any::<u8>()).prop_map(
            |(seed, muts, fix_ip_checksum, worker)| Op::Frame {
                seed,
                muts,
                fix_ip_checksum,
                worker
            }
        ),
        1 => (0u16..3, prop::collection::vec(any::<u8>(), 0..80), any::<u8>()).prop_map(
            |(port, mut bytes, worker)| {
                // Mostly addressed to us, so the bytes get past L2.
                if bytes.len() >= 14 && bytes[0] & 1 == 0 {
                    bytes[..6].copy_from_slice(&[EXT_MAC, INT_MAC, [0; 6]][usize::from(port)]);
                    let ethertype = [[8, 0], [8, 6]][usize::from(bytes[13] & 1)];
                    bytes[12..14].copy_from_slice(&ethertype);
                }
                Op::Bytes { port, bytes, worker }
            }
        ),
        2 => prop::sample::select(vec![0u32, 1, 999, 1000, 3000, 5000, 20_000, 60_000, 100_000])
            .prop_map(Op::Advance),
        1 => (1u32..64).prop_map(Op::Maintain),
    ]
}

/// IPv4 fields of an untagged frame, if its header is whole.
struct Ip<'a> {
    hl: usize,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    frag: bool,
    payload: &'a [u8],
    header: &'a [u8],
}

fn ipv4(frame: &[u8]) -> Option<Ip<'_>> {
    if frame.len() < 34 || frame[12..14] != [8, 0] || frame[14] >> 4 != 4 {
        return None;
    }
    let ip = &frame[14..];
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if hl < 20 || total < hl || total > ip.len() {
        return None;
    }
    Some(Ip {
        hl,
        proto: ip[9],
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        frag: u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0,
        payload: &ip[hl..total],
        header: &ip[..hl],
    })
}

/// Whether the transport checksum verifies (None: not checkable).
fn l4_valid(frame: &[u8]) -> Option<bool> {
    let ip = ipv4(frame)?;
    if ip.frag {
        return None;
    }
    let p = ip.payload;
    match ip.proto {
        PROTO_TCP if p.len() >= 20 => Some(l4_checksum(ip.src, ip.dst, PROTO_TCP, p) == 0),
        PROTO_UDP if p.len() >= 8 => {
            if usize::from(u16::from_be_bytes([p[4], p[5]])) != p.len() {
                return None;
            }
            Some(p[6..8] == [0, 0] || l4_checksum(ip.src, ip.dst, PROTO_UDP, p) == 0)
        }
        PROTO_ICMP if p.len() >= 8 => Some(internet_checksum(p) == 0),
        _ => None,
    }
}

fn check_tx(input: &[u8], out: &[u8], port: u16) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.len(), input.len(), "Tx frames keep their length");
    if port < 2 {
        prop_assert_eq!(
            &out[6..12],
            &[EXT_MAC, INT_MAC][usize::from(port)][..],
            "source MAC"
        );
    }
    if out[12..14] == [8, 6] {
        return Ok(());
    }
    let ip = ipv4(out);
    prop_assert!(ip.is_some(), "Tx of a non-IPv4, non-ARP frame");
    let ip = ip.unwrap();
    prop_assert!(checksum_ok(ip.header), "IP header checksum of a Tx frame");
    prop_assert!(ip.header[8] >= 1, "TTL 0 sent");
    let _ = ip.hl;
    let is_icmp_error = ip.proto == PROTO_ICMP && matches!(ip.payload.first(), Some(3 | 11 | 12));
    if is_icmp_error {
        prop_assert_eq!(
            l4_valid(out),
            Some(true),
            "ICMP error checksum is recomputed"
        );
    } else if l4_valid(input) == Some(true) {
        prop_assert_eq!(l4_valid(out), Some(true), "transport checksum stays valid");
    }
    Ok(())
}

struct Tally {
    drops: Vec<[u64; DropReason::COUNT]>,
    redirects: Vec<u64>,
}

fn process(
    lab: &mut Lab,
    tally: &mut Tally,
    w: usize,
    port: u16,
    frame: &[u8],
) -> Result<(), TestCaseError> {
    let (v, out) = lab.run(w, port, frame, false);
    let (v, out) = match v {
        Verdict::Redirect(o) => {
            let o = usize::from(o);
            prop_assert!(
                o < lab.workers.len() && o != w,
                "redirect to {} from {}",
                o,
                w
            );
            prop_assert_eq!(&out[..], frame, "redirected frames are untouched");
            tally.redirects[w] += 1;
            let (v2, out2) = lab.run(o, port, frame, true);
            prop_assert!(
                !matches!(v2, Verdict::Redirect(_)),
                "redirected twice: {:?}",
                v2
            );
            if let Verdict::Drop(r) = v2 {
                tally.drops[o][r as usize] += 1;
            }
            (v2, out2)
        }
        Verdict::Drop(r) => {
            tally.drops[w][r as usize] += 1;
            (v, out)
        }
        _ => (v, out),
    };
    match v {
        Verdict::Tx(p) => check_tx(frame, &out, p)?,
        Verdict::Consumed => prop_assert_eq!(&frame[12..14], &[8u8, 6][..], "only ARP is consumed"),
        _ => {}
    }
    Ok(())
}

fn check_state(lab: &Lab, n: usize) -> Result<(), TestCaseError> {
    let mut snat_ports = HashSet::new();
    for w in 0..n {
        let wk = &lab.workers[w];
        if let Err(e) = wk.sessions().check_consistency() {
            return Err(TestCaseError::fail(format!("worker {w}: {e}")));
        }
        for s in lab.sessions(w) {
            if n > 1 {
                prop_assert_eq!(
                    usize::from(client_owner(Ipv4Addr::from(s.client), n as u16)),
                    w,
                    "session on a worker that does not own its client"
                );
            }
            if s.vs == VS_BOTH {
                prop_assert!(s.sport >= SNAT_FIRST_PORT);
                prop_assert_eq!(usize::from(snat_port_owner(s.sport, n as u16)), w);
                prop_assert!(snat_ports.insert((s.snat, s.sport)), "SNAT port used twice");
            } else {
                prop_assert_eq!((s.snat, s.sport), (s.client, s.cport));
            }
        }
    }
    Ok(())
}

fn run(workers: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut lab = Lab::new(workers as u16, 24);
    let mut tally = Tally {
        drops: vec![[0; DropReason::COUNT]; workers],
        redirects: vec![0; workers],
    };
    let mut now = T0;
    for op in ops {
        match op {
            Op::Frame {
                seed,
                muts,
                fix_ip_checksum,
                worker,
            } => {
                let (port, mut frame) = build(seed);
                for m in muts {
                    apply(&mut frame, m);
                }
                if *fix_ip_checksum && frame.len() >= 34 && frame[12..14] == [8, 0] {
                    let hl = usize::from(frame[14] & 0x0f) * 4;
                    if hl >= 20 && frame.len() >= 14 + hl {
                        refill_ip_checksum(&mut frame, 14);
                    }
                }
                process(
                    &mut lab,
                    &mut tally,
                    usize::from(*worker) % workers,
                    port,
                    &frame,
                )?;
            }
            Op::Bytes {
                port,
                bytes,
                worker,
            } => process(
                &mut lab,
                &mut tally,
                usize::from(*worker) % workers,
                *port,
                bytes,
            )?,
            Op::Advance(ms) => {
                now = now.wrapping_add(*ms);
                lab.set_time(now);
            }
            Op::Maintain(budget) => {
                for w in &mut lab.workers {
                    w.maintain(*budget);
                    while w.pop_neighbor_request().is_some() {}
                }
            }
        }
        check_state(&lab, workers)?;
    }
    for w in 0..workers {
        let stats = lab.workers[w].stats();
        for r in DropReason::ALL {
            prop_assert_eq!(
                stats.drops_of(*r),
                tally.drops[w][*r as usize],
                "worker {} drop counter {}",
                w,
                r.name()
            );
        }
        prop_assert_eq!(
            stats.redirected.load(std::sync::atomic::Ordering::Relaxed),
            tally.redirects[w]
        );
    }
    Ok(())
}

proptest! {
    // Sized so this file runs in well under 20 s in a debug build.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_one_worker(ops in prop::collection::vec(op(), 1..80)) {
        run(1, &ops)?;
    }

    #[test]
    fn pipeline_two_workers(ops in prop::collection::vec(op(), 1..80)) {
        run(2, &ops)?;
    }

    #[test]
    fn random_bytes_never_panic(
        port in 0u16..3,
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        workers in 1usize..=2,
    ) {
        let ops = [Op::Bytes { port, bytes, worker: 0 }];
        run(workers, &ops)?;
    }
}
