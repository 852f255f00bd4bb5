//! Golden-packet tests of the forwarding modes beyond Dest-NAT and Both-NAT:
//! L2-DSR, L3-DSR (IP-in-IP, GRE, DSCP; MTU check with ICMP
//! fragmentation-needed; MSS clamping) and LAN-to-LAN.
//!
//! As in `golden.rs`, every expected frame is built independently by
//! `common::frame` (outer headers, GRE header and all checksums computed
//! from scratch) and compared byte for byte. The only field taken from the
//! output is the IPv4 ident of headers the switch writes itself (outer
//! tunnel header, ICMP error): the expected frame is then built with that
//! ident, so the header checksum still has to match it exactly.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::conntrack::{flag, tcp as st};
use sluice_dataplane::service::{snat_port_owner, SNAT_FIRST_PORT};
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// MTU of the int interface: small, so the tunnel MTU checks are easy to hit.
const INT_MTU: usize = 1000;
const IPIP_OVERHEAD: usize = 20;
const GRE_OVERHEAD: usize = 24;

/// A second prefix on the int link, with one member.
const INT_IP2: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 1);
const M2: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 5);
const M2_MAC: Mac = [0x02, 0, 0, 0, 0x30, 0x05];
/// A router on the int link towards 172.16.0.0/16, and a member behind it.
const GW2: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 254);
const GW2_MAC: Mac = [0x02, 0, 0, 0, 0x20, 0xfe];
const FAR: Ipv4Addr = Ipv4Addr::new(172, 16, 5, 5);

const L2_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const L2_ANY_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 21);
const IPIP_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 30);
const ROUTED_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 31);
const GRE_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 32);
const NOCLAMP_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 33);
const CLAMP1200_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 34);
const SECOND_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 35);
const DSCP_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 36);
const LAN_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 40);
const DSCP: u8 = 10;

const VS_L2: u16 = 0;
const VS_L2_ANY: u16 = 1;
const VS_LAN: u16 = 11;

const MODES_CONFIG: &str = r#"
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
addresses = ["10.20.0.1/24", "10.30.0.1/24"]
mtu = 1000

[[route]]
destination = "0.0.0.0/0"
gateway = "198.51.100.254"

[[route]]
destination = "172.16.0.0/16"
gateway = "10.20.0.254"

[[neighbor]]
address = "198.51.100.254"
mac = "02:00:00:00:00:fe"
interface = "ext"

[[neighbor]]
address = "10.20.0.254"
mac = "02:00:00:00:20:fe"
interface = "int"

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
address = "10.20.0.31"
mac = "02:00:00:00:00:31"
interface = "int"

[[neighbor]]
address = "10.30.0.5"
mac = "02:00:00:00:30:05"
interface = "int"

[pool.l2]
members = [ { address = "10.20.0.11:80" }, { address = "10.20.0.12:80" } ]

[pool.l2any]
members = [ { address = "10.20.0.13:0" } ]

[pool.l3]
members = [ { address = "10.20.0.11:80" } ]

[pool.routed]
members = [ { address = "172.16.5.5:80" } ]

[pool.second]
members = [ { address = "10.30.0.5:80" } ]

[pool.dns]
members = [ { address = "10.20.0.31:53" } ]

[pool.lan]
members = [ { address = "10.20.0.11:8080" } ]

[[virtual_server]]
name = "l2"
address = "198.51.100.20:80"
protocol = "tcp"
pool = "l2"
forwarding = "l2_dsr"

[[virtual_server]]
name = "l2any"
address = "198.51.100.21:0"
protocol = "tcp"
pool = "l2any"
forwarding = "l2_dsr"

[[virtual_server]]
name = "ipip"
address = "198.51.100.30:80"
protocol = "tcp"
pool = "l3"
forwarding = "l3_dsr"

[[virtual_server]]
name = "ipip_udp"
address = "198.51.100.30:53"
protocol = "udp"
pool = "dns"
forwarding = "l3_dsr"

[[virtual_server]]
name = "routed"
address = "198.51.100.31:80"
protocol = "tcp"
pool = "routed"
forwarding = "l3_dsr"
encapsulation = "ipip"

[[virtual_server]]
name = "gre"
address = "198.51.100.32:80"
protocol = "tcp"
pool = "routed"
forwarding = "l3_dsr"
encapsulation = "gre"

[[virtual_server]]
name = "noclamp"
address = "198.51.100.33:80"
protocol = "tcp"
pool = "l3"
forwarding = "l3_dsr"
mss_clamp = false

[[virtual_server]]
name = "clamp1200"
address = "198.51.100.34:80"
protocol = "tcp"
pool = "l3"
forwarding = "l3_dsr"
mss_clamp = 1200

[[virtual_server]]
name = "second"
address = "198.51.100.35:80"
protocol = "tcp"
pool = "second"
forwarding = "l3_dsr"

[[virtual_server]]
name = "dscp"
address = "198.51.100.36:80"
protocol = "tcp"
pool = "l3"
forwarding = "l3_dsr"
encapsulation = "dscp"
dscp = 10

[[virtual_server]]
name = "dscp_udp"
address = "198.51.100.36:53"
protocol = "udp"
pool = "dns"
forwarding = "l3_dsr"
encapsulation = "dscp"
dscp = 10

[[virtual_server]]
name = "lan"
address = "198.51.100.40:80"
protocol = "tcp"
pool = "lan"
forwarding = "lan_to_lan"
lan_subnets = ["10.20.0.0/24"]
snat_addresses = ["10.20.0.100"]
"#;

fn lab(workers: u16, capacity: u32) -> Lab {
    Lab::with_shared(
        shared_from(MODES_CONFIG, &[EXT_MAC, INT_MAC], workers),
        capacity,
    )
}

/// The TCP state of a session, without its `CONFIRMED` flag.
fn state(lab: &Lab, client: Ipv4Addr, cport: u16) -> u8 {
    lab.session(0, client, cport)
        .unwrap_or_else(|| panic!("no session for {client}:{cport}"))
        .state
        & !flag::CONFIRMED
}

fn with_tos(mut p: Pkt, tos: u8) -> Pkt {
    p.tos = tos;
    p
}

/// A TCP segment with options (which `Pkt::tcp` has not), checksum from
/// scratch, carried as a raw protocol-6 payload.
fn tcp_opts(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Pkt {
    assert!(opts.len().is_multiple_of(4) && opts.len() <= 40);
    let ack: u32 = if flags & ACK != 0 { 2000 } else { 0 };
    let mut t = Vec::new();
    t.extend_from_slice(&src.1.to_be_bytes());
    t.extend_from_slice(&dst.1.to_be_bytes());
    t.extend_from_slice(&1000u32.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push((((20 + opts.len()) / 4) << 4) as u8);
    t.push(flags);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    let c = l4_checksum(src.0, dst.0, PROTO_TCP, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    Pkt::raw(src.0, dst.0, PROTO_TCP, &t)
}

/// The options of a Linux SYN: MSS, SACK-permitted, timestamps, NOP, window scale.
fn linux_opts(mss: u16) -> Vec<u8> {
    let [h, l] = mss.to_be_bytes();
    vec![
        2, 4, h, l, 4, 2, 8, 10, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 1, 3, 3, 7,
    ]
}

/// NOP first: the MSS value sits at an odd offset of the segment.
fn odd_opts(mss: u16) -> Vec<u8> {
    let [h, l] = mss.to_be_bytes();
    vec![1, 2, 4, h, l, 1, 1, 0]
}

fn syn_mss(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), mss: u16) -> Pkt {
    tcp_opts(src, dst, SYN, &linux_opts(mss), &[])
}

/// Idents the switch wrote so far in one test: each new one must differ
/// from the one before (RFC 791: unique while packets may be in flight).
#[derive(Default)]
struct Idents(Vec<u16>);

impl Idents {
    fn take(&mut self, name: &str, frame: &[u8]) -> u16 {
        let id = ident_of(frame);
        if let Some(last) = self.0.last() {
            assert_ne!(id, *last, "{name}: ident repeated");
        }
        self.0.push(id);
        id
    }
}

/// A case whose output is a frame with a switch-written IPv4 header; `want`
/// builds the whole expected frame from the ident found in the output.
fn written(
    lab: &mut Lab,
    ids: &mut Idents,
    name: &str,
    frame: &[u8],
    port: u16,
    want: impl FnOnce(u16) -> Vec<u8>,
) -> BTreeMap<String, i64> {
    lab.case_with(name, 0, EXT, frame, false, |out| {
        Expect::Tx(port, want(ids.take(name, out)))
    })
}

/// Checks the IP header and TCP checksums of the inner packet starting at
/// `at` in `frame`, from scratch, and returns its MSS option if any.
fn inner_tcp_ok(frame: &[u8], at: usize) -> Option<u16> {
    let ip = &frame[at..];
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert!(checksum_ok(&ip[..hl]), "inner IP checksum");
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let seg = &ip[hl..total];
    assert_eq!(
        l4_checksum(src, dst, PROTO_TCP, seg),
        0,
        "inner TCP checksum"
    );
    let doff = usize::from(seg[12] >> 4) * 4;
    let mut i = 20;
    while i < doff {
        match seg[i] {
            0 => break,
            1 => i += 1,
            2 => return Some(u16::from_be_bytes([seg[i + 2], seg[i + 3]])),
            _ => i += usize::from(seg[i + 1]).max(2),
        }
    }
    None
}

// ---------------------------------------------------------------------------
// L2-DSR
// ---------------------------------------------------------------------------

#[test]
fn l2_dsr_frames_go_to_member_mac_untouched() {
    let mut lab = lab(1, 64);
    let vip = (L2_VIP, 80);

    let syn = Pkt::tcp((CLIENT, 40000), vip, SYN);
    let d = lab.c(
        "L2-DSR SYN: member 1's MAC, IP packet untouched",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn)),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("forwarded", 1)]);
    let s = lab.session(0, CLIENT, 40000).unwrap();
    assert_eq!(Ipv4Addr::from(s.member), WEB[0]);
    assert_eq!((s.vs, s.mport, s.sport), (VS_L2, 80, 40000));
    assert_eq!(Ipv4Addr::from(s.snat), CLIENT, "no source NAT");
    assert_eq!(s.state, st::SYN_SENT);

    // Round robin; TTL 2, TOS, options and payload all left alone (no MSS
    // clamping in L2-DSR, no TTL decrement: the switch is not a hop).
    let syn2 = with_tos(
        tcp_opts((CLIENT, 40001), vip, SYN, &linux_opts(1460), b"fastopen").ttl(2),
        0xb9,
    );
    lab.c(
        "L2-DSR SYN with options, TTL 2, TOS: member 2, untouched",
        EXT,
        &from_router(&syn2),
        Expect::Tx(INT, to_int(WEB_MAC[1], &syn2)),
    );
    let data = Pkt::tcp((CLIENT, 40000), vip, ACK | PSH)
        .payload(&[0x42; 900])
        .frag(0);
    lab.c(
        "L2-DSR data without DF: untouched",
        EXT,
        &from_router(&data),
        Expect::Tx(INT, to_int(WEB_MAC[0], &data)),
    );

    // Port-0 server: any port, the member keeps it.
    let p = Pkt::tcp((CLIENT, 40002), (L2_ANY_VIP, 8443), SYN);
    lab.c(
        "L2-DSR port-0 VS: SYN to 8443 untouched to member's MAC",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, to_int(WEB_MAC[2], &p)),
    );
    let s = lab.session(0, CLIENT, 40002).unwrap();
    assert_eq!((s.vs, s.vport, s.mport), (VS_L2_ANY, 8443, 8443));
    assert_eq!(Ipv4Addr::from(s.member), WEB[2]);
    let p = Pkt::tcp((CLIENT, 40002), (L2_ANY_VIP, 8443), ACK).payload(b"GET /");
    lab.c(
        "L2-DSR port-0 VS: data follows the session",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, to_int(WEB_MAC[2], &p)),
    );

    // Strays.
    for (name, flags) in [
        ("L2-DSR ACK of no session", ACK),
        ("L2-DSR SYN|ACK of no session", SYN | ACK),
        ("L2-DSR FIN of no session", FIN | ACK),
        ("L2-DSR RST of no session", RST),
    ] {
        let p = Pkt::tcp((CLIENT, 40009), vip, flags);
        let d = lab.c(name, EXT, &from_router(&p), Expect::Drop(R::NoSession));
        assert_deltas(&d, &[("sessions_created", 0)]);
    }
    let p = Pkt::tcp((CLIENT, 40010), (L2_VIP, 81), SYN);
    lab.c(
        "L2-DSR VIP, port without VS",
        EXT,
        &from_router(&p),
        Expect::Drop(R::NoVirtualServer),
    );
    let p = Pkt::tcp((CLIENT, 40011), vip, SYN).ttl(1);
    lab.c(
        "L2-DSR SYN with TTL 1",
        EXT,
        &from_router(&p),
        Expect::Drop(R::TtlExceeded),
    );
    // The member answers the client directly; a reply that still reaches
    // the switch (source VIP) matches no session.
    let p = Pkt::tcp(vip, (CLIENT, 40000), SYN | ACK);
    lab.c(
        "L2-DSR member reply through the switch",
        INT,
        &from_int(WEB_MAC[0], &p),
        Expect::Drop(R::NotForUs),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn l2_dsr_one_way_tcp_state() {
    let mut lab = lab(1, 64);
    let vip = (L2_VIP, 80);
    // `m`: the member expected (round robin alternates 0, 1, 0, ...).
    let send = |lab: &mut Lab, name: &str, cport: u16, flags: u8, m: usize| {
        let p = Pkt::tcp((CLIENT, cport), vip, flags);
        lab.c(
            name,
            EXT,
            &from_router(&p),
            Expect::Tx(INT, to_int(WEB_MAC[m], &p)),
        )
    };
    send(&mut lab, "SYN only (41000)", 41000, SYN, 0);
    assert_eq!(state(&lab, CLIENT, 41000), st::SYN_SENT);
    send(&mut lab, "SYN (41001)", 41001, SYN, 1);
    send(&mut lab, "SYN retransmitted (41001)", 41001, SYN, 1);
    assert_eq!(state(&lab, CLIENT, 41001), st::SYN_SENT);
    send(&mut lab, "client ACK: established (41001)", 41001, ACK, 1);
    assert_eq!(state(&lab, CLIENT, 41001), st::ESTABLISHED);
    send(&mut lab, "client data (41001)", 41001, ACK | PSH, 1);
    assert_eq!(state(&lab, CLIENT, 41001), st::ESTABLISHED);

    send(&mut lab, "SYN (41002)", 41002, SYN, 0);
    send(&mut lab, "ACK (41002)", 41002, ACK, 0);
    // The member may still be sending after the client's FIN (half-close):
    // the session lives until tcp_fin.
    send(
        &mut lab,
        "client FIN: half-closed (41002)",
        41002,
        FIN | ACK,
        0,
    );
    assert_eq!(state(&lab, CLIENT, 41002) & st::MASK, st::FIN_WAIT);
    send(
        &mut lab,
        "client ACKs of the member's data after FIN still forwarded",
        41002,
        ACK,
        0,
    );
    assert_eq!(state(&lab, CLIENT, 41002) & st::MASK, st::FIN_WAIT);

    send(&mut lab, "SYN (41003)", 41003, SYN, 1);
    send(&mut lab, "client RST in syn_sent: closed", 41003, RST, 1);
    assert_eq!(state(&lab, CLIENT, 41003) & st::MASK, st::CLOSED);

    send(&mut lab, "SYN (41004)", 41004, SYN, 0);
    send(&mut lab, "ACK (41004)", 41004, ACK, 0);
    send(&mut lab, "client RST|ACK: closed", 41004, RST | ACK, 0);
    assert_eq!(state(&lab, CLIENT, 41004) & st::MASK, st::CLOSED);

    // A new SYN on a closed session replaces it (and picks anew).
    send(&mut lab, "SYN (41006)", 41006, SYN, 1);
    send(&mut lab, "FIN (41006)", 41006, FIN | ACK, 1);
    let d = send(
        &mut lab,
        "SYN on a closed session reopens it",
        41006,
        SYN,
        0,
    );
    assert_deltas(&d, &[("sessions_created", 1), ("sessions_expired", 1)]);
    assert_eq!(state(&lab, CLIENT, 41006), st::SYN_SENT);
    send(&mut lab, "FIN again (41006)", 41006, FIN | ACK, 0);

    // Timeouts: closed sessions live tcp_close, syn_sent tcp_syn, half-closed
    // tcp_fin, established tcp_established (nothing ever comes from the member).
    let live = |lab: &Lab| {
        let mut v: Vec<u16> = lab.sessions(0).iter().map(|s| s.cport).collect();
        v.sort_unstable();
        v
    };
    lab.set_time(T0 + TCP_CLOSE_MS - 1);
    lab.maintain();
    assert_eq!(live(&lab), [41000, 41001, 41002, 41003, 41004, 41006]);
    lab.set_time(T0 + TCP_CLOSE_MS);
    lab.maintain();
    assert_eq!(
        live(&lab),
        [41000, 41001, 41002, 41006],
        "closed: tcp_close"
    );
    lab.set_time(T0 + TCP_SYN_MS);
    lab.maintain();
    assert_eq!(live(&lab), [41001, 41002, 41006], "syn_sent: tcp_syn");
    lab.set_time(T0 + TCP_FIN_MS - 1);
    lab.maintain();
    assert_eq!(live(&lab), [41001, 41002, 41006]);
    lab.set_time(T0 + TCP_FIN_MS);
    lab.maintain();
    assert_eq!(live(&lab), [41001], "half-closed: tcp_fin");
    lab.set_time(T0 + TCP_EST_MS - 1);
    lab.maintain();
    assert_eq!(live(&lab), [41001], "established lives tcp_established");
    lab.set_time(T0 + TCP_EST_MS);
    lab.maintain();
    assert!(live(&lab).is_empty());
    let stats = snapshot(lab.workers[0].stats());
    assert_eq!(stats["sessions_expired"], 7);
    assert_eq!(stats["sessions_active"], 0);
    let p = Pkt::tcp((CLIENT, 41001), vip, ACK);
    lab.c(
        "data after the established session expired",
        EXT,
        &from_router(&p),
        Expect::Drop(R::NoSession),
    );
}

// ---------------------------------------------------------------------------
// L3-DSR: IP-in-IP and GRE
// ---------------------------------------------------------------------------

#[test]
fn l3_dsr_ipip_local_routed_and_second_prefix() {
    let mut lab = lab(1, 64);
    let mut ids = Idents::default();
    let c = (CLIENT, 42000);
    let vip = (IPIP_VIP, 80);
    let auto_mss = (INT_MTU - IPIP_OVERHEAD - 40) as u16;

    let syn = syn_mss(c, vip, 1460);
    let inner = syn_mss(c, vip, auto_mss);
    let d = written(
        &mut lab,
        &mut ids,
        "IPIP SYN: outer 10.20.0.1 -> member, MSS clamped",
        &from_router(&syn),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&inner, INT_IP, WEB[0], false, id)),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("forwarded", 1)]);
    assert_eq!(state(&lab, CLIENT, 42000), st::SYN_SENT);
    let (v, out) = {
        // Same frame again on a fresh lab, to look at the output directly.
        let mut l2 = self::lab(1, 64);
        l2.run(0, EXT, &from_router(&syn), false)
    };
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out[14 + 9], 4, "outer protocol IP-in-IP");
    assert_eq!(out[14 + 8], 64, "outer TTL");
    assert!(checksum_ok(&out[14..34]), "outer header checksum");
    assert_eq!(inner_tcp_ok(&out, 34), Some(auto_mss));
    assert_eq!(out[34 + 8], 64, "inner TTL untouched");

    // Data: TOS and DF copied to the outer header, inner untouched.
    let data = with_tos(
        Pkt::tcp(c, vip, ACK | PSH).payload(&[0x61; 300]).ttl(17),
        0xb9,
    );
    written(
        &mut lab,
        &mut ids,
        "IPIP data: TOS and DF copied, inner TTL kept",
        &from_router(&data),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&data, INT_IP, WEB[0], false, id)),
    );
    assert_eq!(state(&lab, CLIENT, 42000), st::ESTABLISHED);
    let nodf = with_tos(Pkt::tcp(c, vip, ACK).payload(b"x").frag(0).id(7), 0x02);
    written(
        &mut lab,
        &mut ids,
        "IPIP data without DF: outer without DF",
        &from_router(&nodf),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&nodf, INT_IP, WEB[0], false, id)),
    );
    // A non-SYN carrying an MSS option is not clamped.
    let odd = tcp_opts(c, vip, ACK, &linux_opts(1460), b"y");
    written(
        &mut lab,
        &mut ids,
        "IPIP non-SYN with MSS option: untouched",
        &from_router(&odd),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&odd, INT_IP, WEB[0], false, id)),
    );
    // IP options of the client's packet stay inside.
    let opts = Pkt::tcp(c, vip, ACK).options(&[1, 1, 1, 0]).payload(b"z");
    written(
        &mut lab,
        &mut ids,
        "IPIP inner with IP options",
        &from_router(&opts),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&opts, INT_IP, WEB[0], false, id)),
    );
    let fin = Pkt::tcp(c, vip, FIN | ACK);
    written(
        &mut lab,
        &mut ids,
        "IPIP client FIN: half-closed",
        &from_router(&fin),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&fin, INT_IP, WEB[0], false, id)),
    );
    assert_eq!(state(&lab, CLIENT, 42000) & st::MASK, st::FIN_WAIT);

    // UDP through the tunnel (no clamping, checksum untouched).
    let q = Pkt::udp((CLIENT, 5353), (IPIP_VIP, 53), b"\x12\x34query");
    written(
        &mut lab,
        &mut ids,
        "IPIP UDP",
        &from_router(&q),
        INT,
        |id| to_int(DNS_MAC, &encap(&q, INT_IP, DNS, false, id)),
    );

    // A routed member: next hop is the gateway's MAC; source is still an
    // address of the egress interface.
    let hop = lab.workers[0].shared().routes.lookup(FAR).unwrap();
    assert_eq!((hop.port, hop.next_hop), (INT, GW2));
    let c2 = (CLIENT, 42001);
    let syn = syn_mss(c2, (ROUTED_VIP, 80), 1460);
    let inner = syn_mss(c2, (ROUTED_VIP, 80), auto_mss);
    written(
        &mut lab,
        &mut ids,
        "IPIP routed member via [[route]]: gateway MAC",
        &from_router(&syn),
        INT,
        |id| to_int(GW2_MAC, &encap(&inner, INT_IP, FAR, false, id)),
    );
    let data = Pkt::tcp(c2, (ROUTED_VIP, 80), ACK).payload(&[7; 100]);
    written(
        &mut lab,
        &mut ids,
        "IPIP routed member data",
        &from_router(&data),
        INT,
        |id| to_int(GW2_MAC, &encap(&data, INT_IP, FAR, false, id)),
    );

    // A member in the interface's second prefix: the outer source is the
    // interface address of that prefix.
    let c3 = (CLIENT, 42002);
    let syn = syn_mss(c3, (SECOND_VIP, 80), 500);
    written(
        &mut lab,
        &mut ids,
        "IPIP member in second prefix: source 10.30.0.1; small MSS kept",
        &from_router(&syn),
        INT,
        |id| to_int(M2_MAC, &encap(&syn, INT_IP2, M2, false, id)),
    );

    // Strays and refusals.
    let p = Pkt::tcp((CLIENT, 42009), vip, ACK);
    lab.c(
        "IPIP ACK of no session",
        EXT,
        &from_router(&p),
        Expect::Drop(R::NoSession),
    );
    let p = Pkt::tcp((CLIENT, 42010), vip, SYN).ttl(1);
    lab.c(
        "IPIP SYN with TTL 1",
        EXT,
        &from_router(&p),
        Expect::Drop(R::TtlExceeded),
    );
    assert!(ids.0.iter().all(|&i| i != 0), "idents {:?}", ids.0);
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn l3_dsr_gre() {
    let mut lab = lab(1, 64);
    let mut ids = Idents::default();
    let c = (CLIENT, 43000);
    let vip = (GRE_VIP, 80);
    let auto_mss = (INT_MTU - GRE_OVERHEAD - 40) as u16;

    let syn = syn_mss(c, vip, 1460);
    let inner = syn_mss(c, vip, auto_mss);
    let d = written(
        &mut lab,
        &mut ids,
        "GRE SYN: proto 47, GRE 0000 0800, MSS mtu-24-40",
        &from_router(&syn),
        INT,
        |id| to_int(GW2_MAC, &encap(&inner, INT_IP, FAR, true, id)),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("forwarded", 1)]);
    let mut l2 = lab_one();
    let (_, out) = l2.run(0, EXT, &from_router(&syn), false);
    assert_eq!(out[14 + 9], 47);
    assert_eq!(out[34..38], [0, 0, 0x08, 0x00]);
    assert_eq!(inner_tcp_ok(&out, 38), Some(auto_mss));

    let data = with_tos(Pkt::tcp(c, vip, ACK | PSH).payload(&[0x33; 500]), 0x48);
    written(
        &mut lab,
        &mut ids,
        "GRE data: TOS, DF copied",
        &from_router(&data),
        INT,
        |id| to_int(GW2_MAC, &encap(&data, INT_IP, FAR, true, id)),
    );
    assert_eq!(state(&lab, CLIENT, 43000), st::ESTABLISHED);
    let nodf = Pkt::tcp(c, vip, ACK).frag(0);
    written(
        &mut lab,
        &mut ids,
        "GRE without DF",
        &from_router(&nodf),
        INT,
        |id| to_int(GW2_MAC, &encap(&nodf, INT_IP, FAR, true, id)),
    );
    let rst = Pkt::tcp(c, vip, RST);
    written(
        &mut lab,
        &mut ids,
        "GRE client RST: closed",
        &from_router(&rst),
        INT,
        |id| to_int(GW2_MAC, &encap(&rst, INT_IP, FAR, true, id)),
    );
    assert_eq!(state(&lab, CLIENT, 43000) & st::MASK, st::CLOSED);
}

fn lab_one() -> Lab {
    lab(1, 64)
}

// ---------------------------------------------------------------------------
// L3-DSR: MTU check
// ---------------------------------------------------------------------------

/// A TCP data packet of exactly `total` bytes of IPv4.
fn sized(c: (Ipv4Addr, u16), vip: (Ipv4Addr, u16), total: usize) -> Pkt {
    Pkt::tcp(c, vip, ACK | PSH).payload(&vec![0x5a; total - 40])
}

/// The ICMP fragmentation-needed error the switch sends to the client
/// about `about`, from the ext interface address.
fn frag_needed(about: &Pkt, mtu: usize, ident: u16) -> Vec<u8> {
    let [h, l] = (mtu as u16).to_be_bytes();
    let quote = 20 + about.options.len() + 8;
    let e = Pkt::icmp_error(EXT_IP, about.src, 3, 4, [0, 0, h, l], about, quote)
        .ttl(64)
        .id(ident)
        .frag(0);
    to_router(&with_tos(e, 0))
}

/// A case whose packet goes to the members' LAN, encapsulated as `outer`
/// (given the ident the switch wrote) and cut into two IPv4 fragments
/// (the int port's MTU is `INT_MTU`).
fn fragmented(
    lab: &mut Lab,
    ids: &mut Idents,
    name: &str,
    frame: &[u8],
    outer: impl FnOnce(u16) -> Pkt,
    mac: Mac,
) -> BTreeMap<String, i64> {
    lab.case_with(name, 0, EXT, frame, false, |out| {
        let outer = outer(ids.take(name, out)).bytes();
        let pieces = split(&outer, (INT_MTU - 20) & !7);
        let frames = pieces.iter().map(|ip| eth(mac, INT_MAC, ETH_IPV4, ip));
        Expect::TxFragments(INT, frames.collect())
    })
}

#[test]
fn l3_dsr_mtu_frag_needed_and_fragments() {
    let mut lab = lab(1, 64);
    let mut ids = Idents::default();
    for (gre, vip, member, mac, overhead, cport) in [
        (false, IPIP_VIP, WEB[0], WEB_MAC[0], IPIP_OVERHEAD, 44000),
        (true, GRE_VIP, FAR, GW2_MAC, GRE_OVERHEAD, 44001),
    ] {
        let kind = if gre { "GRE" } else { "IPIP" };
        let c = (CLIENT, cport);
        let vip = (vip, 80);
        let syn = Pkt::tcp(c, vip, SYN);
        written(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: SYN"),
            &from_router(&syn),
            INT,
            |id| to_int(mac, &encap(&syn, INT_IP, member, gre, id)),
        );
        let fits = INT_MTU - overhead;
        let p = sized(c, vip, fits);
        let d = written(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: {fits} bytes fit exactly"),
            &from_router(&p),
            INT,
            |id| to_int(mac, &encap(&p, INT_IP, member, gre, id)),
        );
        assert_deltas(&d, &[("icmp_errors_sent", 0)]);
        let p = sized(c, vip, fits + 1);
        let d = written(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: one byte too big with DF -> frag needed"),
            &from_router(&p),
            EXT,
            |id| frag_needed(&p, fits, id),
        );
        assert_deltas(&d, &[("icmp_errors_sent", 1), ("forwarded", 1)]);
        let p = sized(c, vip, 1500).options(&[1, 1, 1, 0]);
        let p = p.clone().payload(&vec![0x5a; 1500 - 44]);
        written(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: with IP options, quote 24 + 8 bytes"),
            &from_router(&p),
            EXT,
            |id| frag_needed(&p, fits, id),
        );
        let p = sized(c, vip, fits + 1).frag(0);
        let d = fragmented(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: too big without DF -> outer fragments"),
            &from_router(&p),
            |id| encap(&p, INT_IP, member, gre, id),
            mac,
        );
        assert_deltas(&d, &[("fragments_made", 1), ("icmp_errors_sent", 0)]);
        // The session is still there and usable.
        let p = sized(c, vip, 100);
        written(
            &mut lab,
            &mut ids,
            &format!("{kind} MTU: small packet after"),
            &from_router(&p),
            INT,
            |id| to_int(mac, &encap(&p, INT_IP, member, gre, id)),
        );
    }
    let q = Pkt::udp((CLIENT, 5353), (IPIP_VIP, 53), &[1; INT_MTU - 20 - 28 + 1]).frag(0);
    fragmented(
        &mut lab,
        &mut ids,
        "IPIP UDP too big without DF -> outer fragments",
        &from_router(&q),
        |id| encap(&q, INT_IP, DNS, false, id),
        DNS_MAC,
    );
    // A 1,500-byte fragment of a client's datagram (DF clear, as every
    // fragment): its encapsulation is cut again, the inner one untouched.
    let whole = Pkt::udp((CLIENT, 5354), (IPIP_VIP, 53), &[2; 2000]).id(77);
    let [first, second] = split(&whole.bytes(), 1480);
    let frame = eth(EXT_MAC, ROUTER_MAC, ETH_IPV4, &first);
    let outer = |id| Pkt::raw(INT_IP, DNS, 4, &first).ttl(64).id(id).frag(0);
    fragmented(
        &mut lab,
        &mut ids,
        "IPIP: a client's first fragment of 1,500 bytes -> outer fragments",
        &frame,
        outer,
        DNS_MAC,
    );
    // Its second fragment follows it, tunnelled as it is (short enough).
    let frame = eth(EXT_MAC, ROUTER_MAC, ETH_IPV4, &second);
    let d = written(
        &mut lab,
        &mut ids,
        "IPIP: the datagram's second fragment follows its first",
        &frame,
        INT,
        |id| {
            eth(
                DNS_MAC,
                INT_MAC,
                ETH_IPV4,
                &Pkt::raw(INT_IP, DNS, 4, &second)
                    .ttl(64)
                    .id(id)
                    .frag(0)
                    .bytes(),
            )
        },
    );
    assert_deltas(&d, &[("fragments", 1), ("forwarded", 1), ("rx_packets", 1)]);
    let q = Pkt::udp((CLIENT, 5353), (IPIP_VIP, 53), &[1; INT_MTU - 20 - 28 + 1]);
    written(
        &mut lab,
        &mut ids,
        "IPIP UDP too big with DF -> frag needed",
        &from_router(&q),
        EXT,
        |id| frag_needed(&q, INT_MTU - 20, id),
    );
}

// ---------------------------------------------------------------------------
// L3-DSR: MSS clamping
// ---------------------------------------------------------------------------

type Opts = fn(u16) -> Vec<u8>;
/// (VIP, member, next-hop MAC, GRE)
type Target = (Ipv4Addr, Ipv4Addr, Mac, bool);
type ClampCase = (&'static str, Target, Opts, u16, u16);

#[test]
fn l3_dsr_mss_clamp() {
    let mut lab = lab(1, 64);
    let mut ids = Idents::default();
    let ipip_auto = (INT_MTU - IPIP_OVERHEAD - 40) as u16;
    let gre_auto = (INT_MTU - GRE_OVERHEAD - 40) as u16;
    // (VIP, member, next-hop MAC, GRE)
    let ipip = (IPIP_VIP, WEB[0], WEB_MAC[0], false);
    let gre = (GRE_VIP, FAR, GW2_MAC, true);
    let off = (NOCLAMP_VIP, WEB[0], WEB_MAC[0], false);
    let v1200 = (CLAMP1200_VIP, WEB[0], WEB_MAC[0], false);
    let (lin, odd): (Opts, Opts) = (linux_opts, odd_opts);
    // (name, target, option layout, MSS in, MSS out)
    let table: [ClampCase; 12] = [
        ("auto ipip 1460", ipip, lin, 1460, ipip_auto),
        ("auto ipip, odd offset", ipip, odd, 1460, ipip_auto),
        ("auto ipip, one above", ipip, lin, ipip_auto + 1, ipip_auto),
        ("auto ipip, equal", ipip, lin, ipip_auto, ipip_auto),
        ("auto ipip, smaller 536", ipip, lin, 536, 536),
        ("auto ipip, odd 0xffff", ipip, odd, 0xffff, ipip_auto),
        ("auto gre 1460", gre, lin, 1460, gre_auto),
        ("auto gre, odd offset", gre, odd, 8960, gre_auto),
        ("mss_clamp = false", off, lin, 1460, 1460),
        ("mss_clamp = 1200", v1200, lin, 1460, 1200),
        ("mss_clamp = 1200, odd", v1200, odd, 1460, 1200),
        ("mss_clamp = 1200, smaller", v1200, lin, 1100, 1100),
    ];
    for (i, (name, (vip, member, mac, gre), opts, mss_in, mss_out)) in table.into_iter().enumerate()
    {
        let c = (CLIENT, 45000 + i as u16);
        let vip = (vip, 80);
        let p = tcp_opts(c, vip, SYN, &opts(mss_in), &[]);
        let inner = tcp_opts(c, vip, SYN, &opts(mss_out), &[]);
        let name = format!("MSS {name}: {mss_in} -> {mss_out}");
        written(&mut lab, &mut ids, &name, &from_router(&p), INT, |id| {
            to_int(mac, &encap(&inner, INT_IP, member, gre, id))
        });
        let mut l = lab_one();
        let (_, out) = l.run(0, EXT, &from_router(&p), false);
        let at = if gre { 38 } else { 34 };
        assert_eq!(inner_tcp_ok(&out, at), Some(mss_out), "{name}");
        // Not a SYN: never clamped.
        let p = tcp_opts(c, vip, ACK, &opts(mss_in), b"data");
        written(
            &mut lab,
            &mut ids,
            &format!("{name}: ACK untouched"),
            &from_router(&p),
            INT,
            |id| to_int(mac, &encap(&p, INT_IP, member, gre, id)),
        );
    }
    // A SYN without an MSS option gets none added.
    let c = (CLIENT, 45100);
    let p = tcp_opts(c, (IPIP_VIP, 80), SYN, &[1, 3, 3, 7], &[]);
    written(
        &mut lab,
        &mut ids,
        "MSS: SYN without MSS option untouched",
        &from_router(&p),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&p, INT_IP, WEB[0], false, id)),
    );
    // A SYN carrying data is clamped too, payload untouched.
    let c = (CLIENT, 45101);
    let p = tcp_opts(c, (IPIP_VIP, 80), SYN, &linux_opts(1460), b"tfo-data");
    let inner = tcp_opts(c, (IPIP_VIP, 80), SYN, &linux_opts(ipip_auto), b"tfo-data");
    written(
        &mut lab,
        &mut ids,
        "MSS: SYN with data clamped",
        &from_router(&p),
        INT,
        |id| to_int(WEB_MAC[0], &encap(&inner, INT_IP, WEB[0], false, id)),
    );
}

// ---------------------------------------------------------------------------
// L3-DSR: DSCP
// ---------------------------------------------------------------------------

/// What DSCP mode sends: destination the member, DSCP set, ECN kept, TTL - 1.
fn dscp_marked(p: &Pkt, member: Ipv4Addr, port: u16) -> Pkt {
    let ecn = p.tos & 0x03;
    let src = match &p.body {
        Body::Tcp { sport, .. } | Body::Udp { sport, .. } => (p.src, *sport),
        _ => unreachable!(),
    };
    let q = p.clone().natted(src, (member, port));
    with_tos(q, (DSCP << 2) | ecn)
}

#[test]
fn l3_dsr_dscp() {
    let mut lab = lab(1, 64);
    let c = (CLIENT, 46000);
    let vip = (DSCP_VIP, 80);

    let syn = Pkt::tcp(c, vip, SYN);
    let d = lab.c(
        "DSCP SYN: dst member, DSCP 10, TTL-1",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &dscp_marked(&syn, WEB[0], 80))),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("forwarded", 1)]);
    for (name, tos) in [
        ("DSCP data: EF + ECT(1) -> 10 + ECT(1)", 0xb9),
        ("DSCP data: ECN CE kept", 0x03),
        ("DSCP data: ECT(0)", 0x02),
        ("DSCP data: all DSCP bits set", 0xfc),
    ] {
        let p = with_tos(Pkt::tcp(c, vip, ACK | PSH).payload(name.as_bytes()), tos);
        lab.c(
            name,
            EXT,
            &from_router(&p),
            Expect::Tx(INT, to_int(WEB_MAC[0], &dscp_marked(&p, WEB[0], 80))),
        );
    }
    assert_eq!(state(&lab, CLIENT, 46000), st::ESTABLISHED);
    let p = with_tos(
        Pkt::tcp(c, vip, ACK).options(&[1, 1, 1, 0]).ttl(2).frag(0),
        0x21,
    );
    lab.c(
        "DSCP with IP options, TTL 2, no DF",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, to_int(WEB_MAC[0], &dscp_marked(&p, WEB[0], 80))),
    );
    // DSCP mode adds no bytes: a full-size packet passes (no MTU check).
    let p = Pkt::tcp(c, vip, ACK).payload(&[0x11; INT_MTU - 40]);
    lab.c(
        "DSCP full-size packet",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, to_int(WEB_MAC[0], &dscp_marked(&p, WEB[0], 80))),
    );
    let p = with_tos(tcp_opts(c, vip, FIN | ACK, &linux_opts(1460), &[]), 0x01);
    let mut want = tcp_opts(
        (CLIENT, 46000),
        (WEB[0], 80),
        FIN | ACK,
        &linux_opts(1460),
        &[],
    )
    .ttl(63);
    want.tos = (DSCP << 2) | 0x01;
    lab.c(
        "DSCP FIN with TCP options (no clamping): half-closed",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, to_int(WEB_MAC[0], &want)),
    );
    assert_eq!(state(&lab, CLIENT, 46000) & st::MASK, st::FIN_WAIT);

    // UDP: checksum updated; a zero (absent) checksum stays zero.
    let q = with_tos(Pkt::udp((CLIENT, 5353), (DSCP_VIP, 53), b"query"), 0x01);
    lab.c(
        "DSCP UDP",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &dscp_marked(&q, DNS, 53))),
    );
    let q = Pkt::udp((CLIENT, 5354), (DSCP_VIP, 53), b"query").no_udp_checksum();
    lab.c(
        "DSCP UDP without checksum",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &dscp_marked(&q, DNS, 53))),
    );
    // A payload for which the rewritten datagram's checksum computes to 0,
    // which must go out as 0xffff.
    let sport = 5355;
    let payload = (0..=u16::MAX)
        .map(|x| x.to_be_bytes())
        .find(|b| {
            let after = Pkt::udp((CLIENT, sport), (DNS, 53), b).no_udp_checksum();
            let mut seg = after.l4_bytes();
            seg[6..8].copy_from_slice(&[0, 0]);
            l4_checksum(CLIENT, DNS, PROTO_UDP, &seg) == 0
        })
        .expect("some payload sums to zero");
    let q = Pkt::udp((CLIENT, sport), (DSCP_VIP, 53), &payload);
    let want = dscp_marked(&q, DNS, 53);
    assert_eq!(want.l4_bytes()[6..8], [0xff, 0xff]);
    lab.c(
        "DSCP UDP whose new checksum is 0 -> 0xffff",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &want)),
    );
    let p = Pkt::tcp((CLIENT, 46001), vip, SYN).ttl(1);
    lab.c(
        "DSCP TTL 1",
        EXT,
        &from_router(&p),
        Expect::Drop(R::TtlExceeded),
    );
    let p = Pkt::tcp((CLIENT, 46002), vip, ACK);
    lab.c(
        "DSCP ACK of no session",
        EXT,
        &from_router(&p),
        Expect::Drop(R::NoSession),
    );
}

// ---------------------------------------------------------------------------
// LAN-to-LAN
// ---------------------------------------------------------------------------

#[test]
fn lan_to_lan_source_nat_only_inside_lan_subnets() {
    let mut lab = lab(1, 64);
    let vip = (LAN_VIP, 80);
    let m = (WEB[0], 8080);

    // A client outside lan_subnets (through the router): Dest-NAT only.
    let c = (CLIENT, 47000);
    let syn = Pkt::tcp(c, vip, SYN);
    let d = lab.c(
        "LAN-to-LAN outside client: Dest-NAT only, source kept",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(c, m))),
    );
    assert_deltas(&d, &[("sessions_created", 1)]);
    let s = lab.session(0, CLIENT, 47000).unwrap();
    assert_eq!((Ipv4Addr::from(s.snat), s.sport), c);
    assert_eq!(s.state & flag::SNAT_PORT, 0, "holds no SNAT port");
    let sa = Pkt::tcp(m, c, SYN | ACK).seq_ack(700, 1);
    lab.c(
        "LAN-to-LAN reply to outside client",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(EXT, to_router(&sa.clone().natted(vip, c))),
    );
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(1, 701).payload(b"GET /");
    lab.c(
        "LAN-to-LAN outside client data",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, to_int(WEB_MAC[0], &ack.clone().natted(c, m))),
    );
    assert_eq!(state(&lab, CLIENT, 47000), st::ESTABLISHED, "two-way state");

    // A client on the int link but outside lan_subnets: also Dest-NAT only,
    // the reply goes back to it over the int link.
    let c2 = (M2, 47001);
    let syn = Pkt::tcp(c2, vip, SYN);
    lab.c(
        "LAN-to-LAN int-link client outside lan_subnets: Dest-NAT only",
        INT,
        &from_int(M2_MAC, &syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(c2, m))),
    );
    let sa = Pkt::tcp(m, c2, SYN | ACK);
    lab.c(
        "LAN-to-LAN reply to int-link client outside lan_subnets",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(INT, to_int(M2_MAC, &sa.clone().natted(vip, c2))),
    );

    // A member calling the VIP from inside lan_subnets: source-NATed.
    let c3 = (WEB[1], 47002);
    let s3 = (SNAT_IP, SNAT_FIRST_PORT);
    let syn = Pkt::tcp(c3, vip, SYN);
    let d = lab.c(
        "LAN-to-LAN inside client: source becomes SNAT:1024",
        INT,
        &from_int(WEB_MAC[1], &syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(s3, m))),
    );
    assert_deltas(&d, &[("sessions_created", 1)]);
    let s = lab.session(0, WEB[1], 47002).unwrap();
    assert_eq!((Ipv4Addr::from(s.snat), s.sport), s3);
    assert_ne!(s.state & flag::SNAT_PORT, 0, "holds a SNAT port");
    assert_eq!(s.vs, VS_LAN);
    let sa = Pkt::tcp(m, s3, SYN | ACK).seq_ack(700, 1).payload(b"hello");
    lab.c(
        "LAN-to-LAN reply to SNAT -> VIP to inside client",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(INT, to_int(WEB_MAC[1], &sa.clone().natted(vip, c3))),
    );
    let ack = Pkt::tcp(c3, vip, ACK).seq_ack(1, 706).payload(&[0x77; 200]);
    lab.c(
        "LAN-to-LAN inside client data",
        INT,
        &from_int(WEB_MAC[1], &ack),
        Expect::Tx(INT, to_int(WEB_MAC[0], &ack.clone().natted(s3, m))),
    );
    assert_eq!(state(&lab, WEB[1], 47002) & st::MASK, st::ESTABLISHED);
    // A second inside client gets the next port; the member itself may call too.
    let c4 = (WEB[0], 47003);
    let s4 = (SNAT_IP, SNAT_FIRST_PORT + 1);
    let syn = Pkt::tcp(c4, vip, SYN);
    lab.c(
        "LAN-to-LAN the member calling its own VIP: SNAT:1025",
        INT,
        &from_int(WEB_MAC[0], &syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(s4, m))),
    );
    let sa = Pkt::tcp(m, s4, SYN | ACK);
    lab.c(
        "LAN-to-LAN reply to SNAT:1025 back to the member",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(INT, to_int(WEB_MAC[0], &sa.clone().natted(vip, c4))),
    );

    // Strays and spoofs.
    let p = Pkt::tcp(m, (SNAT_IP, 5000), ACK);
    lab.c(
        "LAN-to-LAN reply to unused SNAT port",
        INT,
        &from_int(WEB_MAC[0], &p),
        Expect::Drop(R::NoSession),
    );
    for (name, src) in [
        ("LAN-to-LAN client claiming the SNAT address", SNAT_IP),
        ("LAN-to-LAN client claiming the int address", INT_IP),
        ("LAN-to-LAN client claiming the VIP", LAN_VIP),
    ] {
        let p = Pkt::tcp((src, 47100), vip, SYN);
        lab.c(
            name,
            INT,
            &from_int(WEB_MAC[1], &p),
            Expect::Drop(R::SpoofedSource),
        );
    }
    lab.workers[0].sessions().check_consistency().unwrap();
}

fn web_mac(ip: Ipv4Addr) -> Mac {
    let i = WEB.iter().position(|w| *w == ip).expect("a web member");
    WEB_MAC[i]
}

/// With many workers each owns few SNAT ports, so exhaustion shows how
/// many ports came back after expiry: exactly the one of the SNAT session,
/// none for the Dest-NAT-only session.
#[test]
fn lan_to_lan_snat_port_returned_after_expiry() {
    const WORKERS: u16 = 256;
    let mut lab = lab(WORKERS, 512);
    // Worker 0 processes every client here as its owner would (as if handed
    // over by the worker it arrived on): with 256 workers, few addresses are
    // worker 0's own.
    let vip = (LAN_VIP, 80);
    let m = (WEB[0], 8080);
    let ring: Vec<u16> = (SNAT_FIRST_PORT..=u16::MAX)
        .filter(|p| snat_port_owner(*p, WORKERS) == 0)
        .collect();
    assert_eq!(ring[0], SNAT_FIRST_PORT);
    let lan_clients = [WEB[1], WEB[2], Ipv4Addr::new(10, 20, 0, 50)];
    let mut lan_ports: Vec<(Ipv4Addr, u16)> = lan_clients
        .iter()
        .flat_map(|ip| (20000..20200u16).map(|p| (*ip, p)))
        .collect();
    lan_ports.reverse();
    let out_port = [20000u16, 20001];

    // T0: one inside session (SNAT port 1024) and one outside session, both closed by RST.
    let a = lan_ports.pop().unwrap();
    let sa = (SNAT_IP, ring[0]);
    let syn = Pkt::tcp(a, vip, SYN);
    lab.c_owner(
        "inside client A: SNAT first port of worker 0",
        INT,
        &from_int(WEB_MAC[1], &syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(sa, m))),
    );
    let synack = Pkt::tcp(m, sa, SYN | ACK).seq_ack(1000, 1);
    lab.c_owner(
        "reply to A's SNAT port (owned by worker 0)",
        INT,
        &from_int(WEB_MAC[0], &synack),
        Expect::Tx(INT, to_int(WEB_MAC[1], &synack.clone().natted(vip, a))),
    );
    // Confirmed (an unconfirmed one would give its port up to a new session).
    let ack = Pkt::tcp(a, vip, ACK).seq_ack(1, 1001);
    lab.c_owner(
        "A completes its handshake",
        INT,
        &from_int(WEB_MAC[1], &ack),
        Expect::Tx(INT, to_int(WEB_MAC[0], &ack.clone().natted(sa, m))),
    );
    let rst = Pkt::tcp(a, vip, RST | ACK);
    lab.c_owner(
        "A resets",
        INT,
        &from_int(WEB_MAC[1], &rst),
        Expect::Tx(INT, to_int(WEB_MAC[0], &rst.clone().natted(sa, m))),
    );
    let o = (CLIENT, out_port[0]);
    let syn = Pkt::tcp(o, vip, SYN);
    lab.c_owner(
        "outside client O: Dest-NAT only",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(o, m))),
    );
    let rst = Pkt::tcp(o, vip, RST);
    lab.c_owner(
        "O resets",
        EXT,
        &from_router(&rst),
        Expect::Tx(INT, to_int(WEB_MAC[0], &rst.clone().natted(o, m))),
    );

    // T0 + 1s: take every other port of worker 0's ring, with established
    // sessions (half-open ones would give their ports up to new sessions:
    // see golden_flood.rs).
    lab.set_time(T0 + 1000);
    for (k, want) in ring.iter().enumerate().skip(1) {
        let c = lan_ports.pop().unwrap();
        let frame = from_int(WEB_MAC[1], &Pkt::tcp(c, vip, SYN));
        let (v, out) = lab.run(0, INT, &frame, true);
        assert_eq!(v, Verdict::Tx(INT), "filler {k}");
        assert_eq!(u16::from_be_bytes([out[34], out[35]]), *want, "filler {k}");
        let answer = Pkt::tcp(m, (SNAT_IP, *want), SYN | ACK).seq_ack(1000, 1);
        assert_eq!(
            lab.run(0, INT, &from_int(WEB_MAC[0], &answer), true).0,
            Verdict::Tx(INT),
            "filler {k} answered"
        );
        let ack = from_int(WEB_MAC[1], &Pkt::tcp(c, vip, ACK).seq_ack(1, 1001));
        assert_eq!(
            lab.run(0, INT, &ack, true).0,
            Verdict::Tx(INT),
            "filler {k} established"
        );
    }
    let c = lan_ports.pop().unwrap();
    lab.c_owner(
        "inside client with the ring empty",
        INT,
        &from_int(WEB_MAC[1], &Pkt::tcp(c, vip, SYN)),
        Expect::Drop(R::SnatExhausted),
    );
    let o2 = (CLIENT, out_port[1]);
    let syn = Pkt::tcp(o2, vip, SYN);
    lab.c_owner(
        "outside client needs no SNAT port",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(o2, m))),
    );

    // T0 + tcp_close: A and O expire (the fillers, established at T0 + 1s, live on).
    let before = snapshot(lab.workers[0].stats());
    lab.set_time(T0 + TCP_CLOSE_MS);
    lab.maintain();
    let d = deltas(&before, &snapshot(lab.workers[0].stats()));
    assert_deltas(&d, &[("sessions_expired", 2), ("sessions_active", -2)]);
    assert!(lab.session(0, a.0, a.1).is_none());
    assert!(lab.session(0, CLIENT, o.1).is_none());
    // 251 fillers and O2.
    assert_eq!(lab.sessions(0).len(), ring.len());

    // Exactly one port came back: A's.
    let b = lan_ports.pop().unwrap();
    let syn = Pkt::tcp(b, vip, SYN);
    lab.c_owner(
        "next inside client gets A's freed port",
        INT,
        &from_int(WEB_MAC[1], &syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(sa, m))),
    );
    let c = lan_ports.pop().unwrap();
    lab.c_owner(
        "and nothing else came back (O held no port)",
        INT,
        &from_int(WEB_MAC[1], &Pkt::tcp(c, vip, SYN)),
        Expect::Drop(R::SnatExhausted),
    );
    lab.c_owner(
        "reply to the reused port reaches the new client",
        INT,
        &from_int(WEB_MAC[0], &synack),
        Expect::Tx(INT, to_int(web_mac(b.0), &synack.clone().natted(vip, b))),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}
