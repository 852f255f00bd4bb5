//! Golden tests of L3-DSR for IPv6 virtual servers: IPv6-in-IPv6 and GRE
//! over IPv6 tunnels to the member (the client's packet inside as it came,
//! its SYN's MSS clamped to what the tunnel carries), DSCP in the traffic
//! class, a packet too big for the tunnel answered with the usable MTU,
//! fragments after the first tunnelled as the first was.
//!
//! Expected frames are built from scratch by `common::frame6`.

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use common::lab6::*;
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::net::Ipv6Addr;

const IPIP6: &str = "2001:db8:1::15";
const GRE6: &str = "2001:db8:1::16";
const DSCP6: &str = "2001:db8:1::17";
/// The switch's address on the members' link: the tunnels' source.
const INT6: &str = "fd00:20::1";
const NH_IPV6: u8 = 41;
const NH_GRE: u8 = 47;

fn client() -> (Ipv6Addr, u16) {
    (v6(CLIENT6), 40000)
}

/// A client's SYN carrying an MSS option of `mss`.
fn syn_with_mss(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), mss: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&src.1.to_be_bytes());
    t.extend_from_slice(&dst.1.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x60, SYN, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 4]);
    t.extend_from_slice(&mss.to_be_bytes());
    let c = checksum6(src.0, dst.0, NH_TCP, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// The frame of `inner` (a whole IPv6 packet) tunnelled to member M1 with
/// outer next header `nh` and `shim` between the headers.
fn tunnelled(nh: u8, shim: &[u8], inner: &[u8]) -> Vec<u8> {
    let body = [shim, inner].concat();
    eth(
        M1_MAC,
        INT_MAC,
        ETH_IPV6,
        &ipv6(v6(INT6), v6(M1), nh, 64, &body),
    )
}

#[test]
fn ipv6_in_ipv6_carries_the_clients_packet_as_it_came_with_its_mss_clamped() {
    let mut lab = lab6(1);
    let (c, vip) = (client(), (v6(IPIP6), 80));
    let sent = ipv6(c.0, vip.0, NH_TCP, 60, &syn_with_mss(c, vip, 1460));
    // Within the tunnel: 1,500 - 40 (outer) - 60 (IPv6 and TCP) = 1,400.
    let inner = ipv6(c.0, vip.0, NH_TCP, 60, &syn_with_mss(c, vip, 1400));
    let d = lab.c(
        "SYN into the tunnel",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &sent),
        Expect::Tx(INT, tunnelled(NH_IPV6, &[], &inner)),
    );
    assert_deltas(
        &d,
        &[
            ("embryonic", 1),
            ("forwarded", 1),
            ("rx_packets", 1),
            ("sessions_active", 1),
            ("sessions_created", 1),
        ],
    );
    let data = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, ACK, 2, 9, b"GET /"));
    lab.c(
        "data: the packet untouched inside",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &data),
        Expect::Tx(INT, tunnelled(NH_IPV6, &[], &data)),
    );
}

#[test]
fn gre_over_ipv6_names_ipv6_as_its_payload() {
    let mut lab = lab6(1);
    let (c, vip) = (client(), (v6(GRE6), 80));
    let sent = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, SYN, 1, 0, b""));
    lab.c(
        "SYN into the GRE tunnel",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &sent),
        Expect::Tx(INT, tunnelled(NH_GRE, &[0, 0, 0x86, 0xdd], &sent)),
    );
}

#[test]
fn dscp_rewrites_the_destination_and_the_traffic_class() {
    let mut lab = lab6(1);
    let (c, vip, m1) = (client(), (v6(DSCP6), 80), (v6(M1), 80));
    let mut sent = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, SYN, 1, 0, b""));
    sent[1] = 0x10; // ECN 01 (ECT(1)) in the traffic class: kept
    let mut want = ipv6(c.0, m1.0, NH_TCP, 59, &tcp6(c, m1, SYN, 1, 0, b""));
    // Traffic class DSCP 10 (0x28) and ECN 01: 0x29, across the nibbles.
    want[0] = 0x62;
    want[1] = 0x90;
    lab.c(
        "SYN marked",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &sent),
        Expect::Tx(INT, eth(M1_MAC, INT_MAC, ETH_IPV6, &want)),
    );
}

#[test]
fn a_packet_too_big_for_the_tunnel_is_answered_with_the_usable_mtu() {
    let mut lab = lab6(1);
    let (c, vip) = (client(), (v6(IPIP6), 80));
    let syn = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, SYN, 1, 0, b""));
    let frame = eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &syn);
    lab.c(
        "SYN",
        EXT,
        &frame,
        Expect::Tx(INT, tunnelled(NH_IPV6, &[], &syn)),
    );
    // 1,500 bytes: 40 too many once inside the tunnel.
    let big = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, ACK, 2, 9, &[3; 1440]));
    assert_eq!(big.len(), 1500);
    let ext6 = v6("2001:db8:1::1");
    let quote = &big[..1280 - 48];
    let msg = icmpv6(ext6, c.0, 2, 0, 1460u32.to_be_bytes(), quote);
    let want = icmp_frame(ROUTER_MAC, EXT_MAC, ext6, c.0, 64, &msg);
    let d = lab.c(
        "too big: packet-too-big, MTU 1,460",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &big),
        Expect::Tx(EXT, want),
    );
    assert_deltas(
        &d,
        &[("icmp_errors_sent", 1), ("forwarded", 1), ("rx_packets", 1)],
    );
    // One that fits goes through.
    let fits = ipv6(c.0, vip.0, NH_TCP, 60, &tcp6(c, vip, ACK, 2, 9, &[3; 1400]));
    lab.c(
        "1,460 bytes fit",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &fits),
        Expect::Tx(INT, tunnelled(NH_IPV6, &[], &fits)),
    );
}

#[test]
fn fragments_follow_their_first_into_the_tunnel() {
    let mut lab = lab6(1);
    let (c, vip) = (client(), (v6(IPIP6), 80));
    let seg = tcp6(c, vip, SYN, 1, 0, &[4; 1800]);
    let frags = split6((c.0, vip.0), 60, NH_TCP, &seg, 0xabc, 1024);
    for (i, f) in frags.iter().enumerate() {
        lab.c(
            &format!("fragment {i}: tunnelled as it came"),
            EXT,
            &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, f),
            Expect::Tx(INT, tunnelled(NH_IPV6, &[], f)),
        );
    }
    let (c2, dscp) = ((v6(CLIENT6), 40001), (v6(DSCP6), 80));
    let seg = tcp6(c2, dscp, SYN, 1, 0, &[4; 1800]);
    let frags = split6((c2.0, dscp.0), 60, NH_TCP, &seg, 0xabd, 1024);
    let m1 = (v6(M1), 80);
    let mut want = split6(
        (c2.0, m1.0),
        59,
        NH_TCP,
        &tcp6(c2, m1, SYN, 1, 0, &[4; 1800]),
        0xabd,
        1024,
    );
    for w in &mut want {
        (w[0], w[1]) = (0x62, 0x80);
    }
    for (i, f) in frags.iter().enumerate() {
        lab.c(
            &format!("DSCP fragment {i}"),
            EXT,
            &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, f),
            Expect::Tx(INT, eth(M1_MAC, INT_MAC, ETH_IPV6, &want[i])),
        );
    }
    // A later fragment of a protocol the switch does not follow (ESP).
    let stray = split6((c.0, vip.0), 60, 50, &[9; 64], 0xabe, 32);
    lab.c(
        "ESP fragment",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &stray[1]),
        Expect::Drop(R::Fragment),
    );
}

#[test]
fn packets_too_big_are_answered_at_a_bounded_rate() {
    const RATE: u32 = 2_000; // REFUSAL_RATE: per second, and burst
    let mut lab = lab6(1);
    lab.maintain();
    let vip = (v6(IPIP6), 80);
    // Spoofed sources, all in one millisecond, each a new session with a
    // datagram too big for the tunnel: a reflection attempt.
    let big = |i: u32| {
        let src = (
            v6(&format!("2001:db8:77::{:x}:{:x}", i >> 16, i & 0xffff)),
            1024,
        );
        let p = ipv6(
            src.0,
            vip.0,
            NH_TCP,
            60,
            &tcp6(src, vip, SYN, 1, 0, &[3; 1440]),
        );
        eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &p)
    };
    let answered = (0..RATE + 300)
        .filter(|i| lab.run(0, EXT, &big(*i), false).0 == Verdict::Tx(EXT))
        .count() as u32;
    assert_eq!(answered, RATE);
    assert_eq!(lab.workers[0].stats().drops_of(R::IcmpRateLimited), 300);
}
