//! Golden tests of IPv6 virtual servers: Dest-NAT, Both-NAT, UDP and
//! L2-DSR through the switch, the checks on the way (hop limit, UDP
//! checksum, ports without a server), extension headers before the
//! transport header, sessions on their owner's worker, next hops resolved
//! by neighbour discovery.
//!
//! Every expected frame is built from scratch by `common::frame6` with the
//! rewritten addresses and ports, so the transport checksum the switch
//! updated incrementally is compared with one computed over the new pseudo
//! header.

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use common::lab6::*;
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;

#[test]
fn dest_nat_carries_a_connection_both_ways() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 40000);
    let m1 = (v6(M1), 8080);
    let syn = from_client(VIP6, 80, SYN, 1000, 0, b"");
    let want = frame6(
        M1_MAC,
        INT_MAC,
        c.0,
        m1.0,
        NH_TCP,
        59,
        &tcp6(c, m1, SYN, 1000, 0, b""),
    );
    let d = lab.c("SYN to the VIP", EXT, &syn, Expect::Tx(INT, want));
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
    assert_eq!(lab.workers[0].sessions6().len(), 1);
    let vip = (v6(VIP6), 80);
    let syn_ack = tcp6(m1, c, SYN | ACK, 5000, 1001, b"");
    let frame = frame6(INT_MAC, M1_MAC, m1.0, c.0, NH_TCP, 64, &syn_ack);
    let want = frame6(
        ROUTER_MAC,
        EXT_MAC,
        vip.0,
        c.0,
        NH_TCP,
        63,
        &tcp6(vip, c, SYN | ACK, 5000, 1001, b""),
    );
    lab.c(
        "SYN-ACK from the member",
        INT,
        &frame,
        Expect::Tx(EXT, want),
    );
    let ack = from_client(VIP6, 80, ACK | PSH, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n");
    let seg = tcp6(c, m1, ACK | PSH, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n");
    let want = frame6(M1_MAC, INT_MAC, c.0, m1.0, NH_TCP, 59, &seg);
    let d = lab.c("data", EXT, &ack, Expect::Tx(INT, want));
    assert_eq!(
        d.get("embryonic"),
        Some(&-1),
        "confirmed by the ACK of the SYN-ACK"
    );
    // Round robin: the next connection goes to the other member.
    let m2 = (v6(M2), 8080);
    let c2 = (v6(CLIENT6), 40001);
    let syn = frame6(
        EXT_MAC,
        ROUTER_MAC,
        c2.0,
        vip.0,
        NH_TCP,
        60,
        &tcp6(c2, vip, SYN, 7, 0, b""),
    );
    let want = frame6(
        M2_MAC,
        INT_MAC,
        c2.0,
        m2.0,
        NH_TCP,
        59,
        &tcp6(c2, m2, SYN, 7, 0, b""),
    );
    lab.c("second connection", EXT, &syn, Expect::Tx(INT, want));
}

#[test]
fn both_nat_hides_the_client_behind_the_snat_address() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 40000);
    let syn = from_client(BOTH6, 80, SYN, 1000, 0, b"");
    let mut sport = 0;
    lab.case_with("SYN to the Both-NAT VIP", 0, EXT, &syn, false, |out| {
        // The SNAT port is the switch's choice: read it, build the rest.
        let l4 = 14 + 40;
        sport = u16::from_be_bytes([out[l4], out[l4 + 1]]);
        let s = (v6(SNAT6), sport);
        let m1 = (v6(M1), 8080);
        let want = frame6(
            M1_MAC,
            INT_MAC,
            s.0,
            m1.0,
            NH_TCP,
            59,
            &tcp6(s, m1, SYN, 1000, 0, b""),
        );
        Expect::Tx(INT, want)
    });
    assert!(sport >= 1024, "a SNAT port ({sport})");
    let (s, m1, vip) = ((v6(SNAT6), sport), (v6(M1), 8080), (v6(BOTH6), 80));
    let reply = frame6(
        INT_MAC,
        M1_MAC,
        m1.0,
        s.0,
        NH_TCP,
        64,
        &tcp6(m1, s, SYN | ACK, 9, 1001, b""),
    );
    let want = frame6(
        ROUTER_MAC,
        EXT_MAC,
        vip.0,
        c.0,
        NH_TCP,
        63,
        &tcp6(vip, c, SYN | ACK, 9, 1001, b""),
    );
    lab.c(
        "reply to the SNAT address",
        INT,
        &reply,
        Expect::Tx(EXT, want),
    );
    let stray = frame6(
        INT_MAC,
        M1_MAC,
        m1.0,
        s.0,
        NH_TCP,
        64,
        &tcp6(m1, (s.0, sport + 1), ACK, 9, 1, b""),
    );
    lab.c(
        "reply to another SNAT port",
        INT,
        &stray,
        Expect::Drop(R::NoSession),
    );
}

#[test]
fn udp_with_a_checksum_is_balanced_one_without_is_not_ipv6() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 5353);
    let (vip, m2) = ((v6(DNS6), 53), (v6(M2), 53));
    let q = frame6(
        EXT_MAC,
        ROUTER_MAC,
        c.0,
        vip.0,
        NH_UDP,
        60,
        &udp6(c, vip, b"query"),
    );
    let want = frame6(
        M2_MAC,
        INT_MAC,
        c.0,
        m2.0,
        NH_UDP,
        59,
        &udp6(c, m2, b"query"),
    );
    lab.c("UDP query", EXT, &q, Expect::Tx(INT, want));
    let a = frame6(
        INT_MAC,
        M2_MAC,
        m2.0,
        c.0,
        NH_UDP,
        64,
        &udp6(m2, c, b"answer"),
    );
    let want = frame6(
        ROUTER_MAC,
        EXT_MAC,
        vip.0,
        c.0,
        NH_UDP,
        63,
        &udp6(vip, c, b"answer"),
    );
    lab.c("UDP answer", INT, &a, Expect::Tx(EXT, want));
    let mut zero = udp6(c, vip, b"query");
    zero[6..8].copy_from_slice(&[0, 0]);
    let q = frame6(EXT_MAC, ROUTER_MAC, c.0, vip.0, NH_UDP, 60, &zero);
    lab.c(
        "UDP without a checksum",
        EXT,
        &q,
        Expect::Drop(R::Malformed),
    );
}

#[test]
fn what_is_refused_on_the_way_in() {
    let mut lab = lab6(1);
    lab.c(
        "port without a server",
        EXT,
        &from_client(VIP6, 443, SYN, 1, 0, b""),
        Expect::Drop(R::NoVirtualServer),
    );
    let c = (v6(CLIENT6), 40000);
    let vip = (v6(VIP6), 80);
    let last_hop = frame6(
        EXT_MAC,
        ROUTER_MAC,
        c.0,
        vip.0,
        NH_TCP,
        1,
        &tcp6(c, vip, SYN, 1, 0, b""),
    );
    lab.c("hop limit 1", EXT, &last_hop, Expect::Drop(R::TtlExceeded));
    lab.c(
        "no session for an ACK",
        EXT,
        &from_client(VIP6, 80, ACK, 1, 1, b""),
        Expect::Drop(R::NoSession),
    );
    let spoofed = (v6("2001:db8:1::1"), 40000);
    let syn = frame6(
        EXT_MAC,
        ROUTER_MAC,
        spoofed.0,
        vip.0,
        NH_TCP,
        60,
        &tcp6(spoofed, vip, SYN, 1, 0, b""),
    );
    lab.c(
        "a client claiming the switch's address",
        EXT,
        &syn,
        Expect::Drop(R::SpoofedSource),
    );
    assert_eq!(lab.workers[0].sessions6().len(), 0);
}

#[test]
fn a_destination_options_header_stays_and_the_segment_behind_it_is_rewritten() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 40000);
    let (vip, m1) = ((v6(VIP6), 80), (v6(M1), 8080));
    let with_opts = |l4: &[u8]| {
        let mut p = vec![NH_TCP, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(l4);
        p
    };
    let syn = frame6(
        EXT_MAC,
        ROUTER_MAC,
        c.0,
        vip.0,
        NH_DEST_OPTS,
        60,
        &with_opts(&tcp6(c, vip, SYN, 1, 0, b"")),
    );
    let want = frame6(
        M1_MAC,
        INT_MAC,
        c.0,
        m1.0,
        NH_DEST_OPTS,
        59,
        &with_opts(&tcp6(c, m1, SYN, 1, 0, b"")),
    );
    lab.c(
        "SYN behind destination options",
        EXT,
        &syn,
        Expect::Tx(INT, want),
    );
}

#[test]
fn l2_dsr_sends_the_frame_to_the_member_unchanged() {
    let mut lab = lab6(1);
    let syn = from_client(DSR6, 80, SYN, 1, 0, b"");
    let mut want = syn.clone();
    want[..6].copy_from_slice(&M1_MAC);
    want[6..12].copy_from_slice(&INT_MAC);
    lab.c("SYN to an L2-DSR VIP", EXT, &syn, Expect::Tx(INT, want));
}

#[test]
fn an_unknown_member_is_solicited_and_its_frame_held() {
    let mut lab = lab6(1);
    let syn = from_client("2001:db8:1::14", 80, SYN, 1, 0, b"");
    lab.c(
        "SYN to a member not resolved",
        EXT,
        &syn,
        Expect::Held6(INT, v6("fd00:20::77")),
    );
    let asked = lab.workers[0].pop_neighbor_request();
    assert_eq!(asked, Some((INT, v6("fd00:20::77").into())));
}

#[test]
fn sessions_live_on_their_clients_worker() {
    let mut lab = lab6(2);
    let syn = from_client(VIP6, 80, SYN, 1, 0, b"");
    let owner = lab.workers[0]
        .shared()
        .client_owner_of(u128::from(v6(CLIENT6)));
    let other = 1 - owner as usize;
    let (v, _) = lab.run(other, EXT, &syn, false);
    assert_eq!(v, Verdict::Redirect(owner), "handed to the owner");
    let (v, _) = lab.run(owner as usize, EXT, &syn, true);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(lab.workers[owner as usize].sessions6().len(), 1);
    // The member's answer, wherever it lands, goes to the same worker.
    let (c, m1) = ((v6(CLIENT6), 40000), (v6(M1), 8080));
    let reply = frame6(
        INT_MAC,
        M1_MAC,
        m1.0,
        c.0,
        NH_TCP,
        64,
        &tcp6(m1, c, SYN | ACK, 9, 2, b""),
    );
    let (v, _) = lab.run(other, INT, &reply, false);
    assert_eq!(v, Verdict::Redirect(owner));
    // So do clients' fragments: a later one before its first, and the
    // first, each handed to its client's worker wherever it lands.
    let vip = (v6(VIP6), 80);
    let mut owners = [0; 2];
    for n in 1..=16u16 {
        let c = (v6(&format!("2001:db8:99::{n:x}")), 40000);
        let owner = lab.workers[0].shared().client_owner_of(u128::from(c.0));
        owners[usize::from(owner)] += 1;
        let other = 1 - usize::from(owner);
        let seg = tcp6(c, vip, SYN, 2, 0, &[5; 1400]);
        let frags = split6((c.0, vip.0), 60, NH_TCP, &seg, 0xfeed, 1024);
        for (i, f) in frags.iter().rev().enumerate() {
            let (v, _) = lab.run(other, EXT, &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, f), false);
            assert_eq!(
                v,
                Verdict::Redirect(owner),
                "client {n}, fragment {i} from the end"
            );
        }
    }
    assert!(
        owners[0] > 0 && owners[1] > 0,
        "clients on both workers: {owners:?}"
    );
}

/// An ICMPv6 error from `src` to `dst` (hop limit 64) quoting `quoted`.
fn icmp_error6(
    (to, from): (Mac, Mac),
    (src, dst): (&str, &str),
    (ty, code, rest): (u8, u8, [u8; 4]),
    quoted: &[u8],
    hl: u8,
) -> Vec<u8> {
    let (s, d) = (v6(src), v6(dst));
    icmp_frame(to, from, s, d, hl, &icmpv6(s, d, ty, code, rest, quoted))
}

#[test]
fn icmpv6_errors_about_a_session_reach_its_other_end_translated() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 5353);
    let (vip, m2) = ((v6(DNS6), 53), (v6(M2), 53));
    let sent = udp6(c, vip, b"query");
    let q = frame6(EXT_MAC, ROUTER_MAC, c.0, vip.0, NH_UDP, 60, &sent);
    let fwd = udp6(c, m2, b"query");
    let want = frame6(M2_MAC, INT_MAC, c.0, m2.0, NH_UDP, 59, &fwd);
    lab.c("UDP query", EXT, &q, Expect::Tx(INT, want));

    // The member's port unreachable, about the query as it reached it:
    // to the client from the VIP, quoting the query as the client sent it
    // (the quoted UDP checksum is the one the client computed).
    let quoted = ipv6(c.0, m2.0, NH_UDP, 59, &fwd);
    let err = icmp_error6(
        (INT_MAC, M2_MAC),
        (M2, CLIENT6),
        (1, 4, [0; 4]),
        &quoted,
        64,
    );
    let orig = ipv6(c.0, vip.0, NH_UDP, 59, &sent);
    let want = icmp_error6(
        (ROUTER_MAC, EXT_MAC),
        (DNS6, CLIENT6),
        (1, 4, [0; 4]),
        &orig,
        63,
    );
    let d = lab.c(
        "member's port unreachable",
        INT,
        &err,
        Expect::Tx(EXT, want),
    );
    assert_deltas(
        &d,
        &[
            ("icmp_errors_translated", 1),
            ("forwarded", 1),
            ("rx_packets", 1),
        ],
    );

    // A router on the client's side cannot carry the answer: its
    // packet-too-big reaches the member, about the answer as the member
    // sent it; the MTU is passed on as announced.
    let answer = udp6(vip, c, &[7; 1300]);
    let quoted = ipv6(vip.0, c.0, NH_UDP, 63, &answer);
    let mtu = 1400u32.to_be_bytes();
    let err = icmp_error6(
        (EXT_MAC, ROUTER_MAC),
        ("2001:db8:1::fe", DNS6),
        (2, 0, mtu),
        &quoted,
        64,
    );
    let member_sent = ipv6(m2.0, c.0, NH_UDP, 63, &udp6(m2, c, &[7; 1300]));
    let want = icmp_error6(
        (M2_MAC, INT_MAC),
        ("2001:db8:1::fe", M2),
        (2, 0, mtu),
        &member_sent,
        63,
    );
    lab.c("router's packet too big", EXT, &err, Expect::Tx(INT, want));

    // Below the minimum IPv6 MTU: forged or broken, ignored.
    let err = icmp_error6(
        (EXT_MAC, ROUTER_MAC),
        ("2001:db8:1::fe", DNS6),
        (2, 0, 1000u32.to_be_bytes()),
        &quoted,
        64,
    );
    lab.c("MTU below 1280", EXT, &err, Expect::Drop(R::PtbTooSmall));

    // Quoting a packet of no session, or running out of hops.
    let stray = ipv6(vip.0, c.0, NH_UDP, 63, &udp6(vip, (c.0, 9), b"x"));
    let err = icmp_error6(
        (EXT_MAC, ROUTER_MAC),
        ("2001:db8:1::fe", DNS6),
        (1, 0, [0; 4]),
        &stray,
        64,
    );
    lab.c("no session", EXT, &err, Expect::Drop(R::IcmpNoSession));
    // The same to the switch's interface address: about the kernel's own
    // traffic (a health check), the kernel's.
    let err = icmp_error6(
        (EXT_MAC, ROUTER_MAC),
        ("2001:db8:1::fe", "2001:db8:1::1"),
        (1, 0, [0; 4]),
        &stray,
        64,
    );
    lab.c("to the interface address", EXT, &err, Expect::Kernel);
    let err = icmp_error6(
        (EXT_MAC, ROUTER_MAC),
        ("2001:db8:1::fe", DNS6),
        (3, 0, [0; 4]),
        &quoted,
        1,
    );
    lab.c("hop limit 1", EXT, &err, Expect::Drop(R::TtlExceeded));
}

#[test]
fn an_icmpv6_error_from_a_both_nat_member_reaches_the_client() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 40000);
    let syn = from_client(BOTH6, 80, SYN, 1000, 0, b"");
    let mut sport = 0;
    lab.case_with("SYN to the Both-NAT VIP", 0, EXT, &syn, false, |out| {
        sport = u16::from_be_bytes([out[14 + 40], out[14 + 41]]);
        Expect::Tx(INT, out.to_vec())
    });
    let (s, m1, vip) = ((v6(SNAT6), sport), (v6(M1), 8080), (v6(BOTH6), 80));
    // A router on the members' side: time exceeded, about the SYN as it
    // left the switch (quoted in part: 8 bytes of TCP, no checksum).
    let seg = tcp6(s, m1, SYN, 1000, 0, b"");
    let quoted = ipv6(s.0, m1.0, NH_TCP, 1, &seg[..8]);
    let err = icmp_error6(
        (INT_MAC, M1_MAC),
        ("fd00:20::fe", SNAT6),
        (3, 0, [0; 4]),
        &quoted,
        64,
    );
    let orig = ipv6(c.0, vip.0, NH_TCP, 1, &tcp6(c, vip, SYN, 1000, 0, b"")[..8]);
    let want = icmp_error6(
        (ROUTER_MAC, EXT_MAC),
        ("fd00:20::fe", CLIENT6),
        (3, 0, [0; 4]),
        &orig,
        63,
    );
    lab.c("time exceeded", INT, &err, Expect::Tx(EXT, want));
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

#[test]
fn ipv6_fragments_follow_their_first_both_ways() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 5353);
    let (vip, m2) = ((v6(DNS6), 53), (v6(M2), 53));
    let query = udp6(c, vip, &payload(2000));
    let sent = split6((c.0, vip.0), 60, NH_UDP, &query, 0x0102_0304, 1232);
    let want = split6(
        (c.0, m2.0),
        59,
        NH_UDP,
        &udp6(c, m2, &payload(2000)),
        0x0102_0304,
        1232,
    );
    assert_eq!(sent.len(), 2);
    let d = lab.c(
        "first fragment: a new session, port and checksum rewritten",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &sent[0]),
        Expect::Tx(INT, eth(M2_MAC, INT_MAC, ETH_IPV6, &want[0])),
    );
    assert_deltas(
        &d,
        &[
            ("forwarded", 1),
            ("rx_packets", 1),
            ("sessions_active", 1),
            ("sessions_created", 1),
        ],
    );
    let d = lab.c(
        "second fragment: addresses as the first's",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &sent[1]),
        Expect::Tx(INT, eth(M2_MAC, INT_MAC, ETH_IPV6, &want[1])),
    );
    assert_deltas(&d, &[("fragments", 1), ("forwarded", 1), ("rx_packets", 1)]);
    // The member's answer, fragmented by the member, out of order.
    let answer = udp6(m2, c, &payload(3000));
    let sent = split6((m2.0, c.0), 64, NH_UDP, &answer, 77, 1448);
    let want = split6(
        (vip.0, c.0),
        63,
        NH_UDP,
        &udp6(vip, c, &payload(3000)),
        77,
        1448,
    );
    assert_eq!(sent.len(), 3);
    let last = eth(INT_MAC, M2_MAC, ETH_IPV6, &sent[2]);
    lab.c(
        "the answer's last fragment first",
        INT,
        &last,
        Expect::HeldFragment,
    );
    lab.c(
        "its first fragment",
        INT,
        &eth(INT_MAC, M2_MAC, ETH_IPV6, &sent[0]),
        Expect::Tx(EXT, eth(ROUTER_MAC, EXT_MAC, ETH_IPV6, &want[0])),
    );
    lab.c(
        "its second fragment",
        INT,
        &eth(INT_MAC, M2_MAC, ETH_IPV6, &sent[1]),
        Expect::Tx(EXT, eth(ROUTER_MAC, EXT_MAC, ETH_IPV6, &want[1])),
    );
    let (v, out) = lab.replay(0, INT, &last, false);
    assert_eq!(v, Verdict::Tx(EXT), "the held fragment goes on");
    let expect = eth(ROUTER_MAC, EXT_MAC, ETH_IPV6, &want[2]);
    assert!(out == expect, "the held fragment\n{}", diff(&out, &expect));
}

#[test]
fn ipv6_fragments_through_l2_dsr_and_to_the_switch() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 40000);
    let vip = (v6(DSR6), 80);
    let seg = tcp6(c, vip, SYN, 1, 0, &payload(1500));
    let sent = split6((c.0, vip.0), 60, NH_TCP, &seg, 9, 1024);
    for (i, f) in sent.iter().enumerate() {
        let frame = eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, f);
        let mut want = frame.clone();
        want[..12].copy_from_slice(&[M1_MAC, INT_MAC].concat());
        lab.c(
            &format!("L2-DSR fragment {i}: as it came"),
            EXT,
            &frame,
            Expect::Tx(INT, want),
        );
    }
    // To the switch's interface address: the kernel reassembles.
    let to_switch = split6(
        (c.0, v6("2001:db8:1::1")),
        60,
        NH_UDP,
        &udp6(c, (v6("2001:db8:1::1"), 161), &payload(1500)),
        5,
        1024,
    );
    lab.c(
        "a later fragment to the interface address",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &to_switch[1]),
        Expect::Kernel,
    );
    lab.c(
        "a first fragment to the interface address",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &to_switch[0]),
        Expect::Kernel,
    );
}

#[test]
fn a_flood_of_stray_ipv6_fragments_is_bounded() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 5353);
    let (vip, m2) = ((v6(DNS6), 53), (v6(M2), 53));
    let q = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(c.0, vip.0, NH_UDP, 60, &udp6(c, vip, b"q")),
    );
    let want = eth(
        M2_MAC,
        INT_MAC,
        ETH_IPV6,
        &ipv6(c.0, m2.0, NH_UDP, 59, &udp6(c, m2, b"q")),
    );
    lab.c(
        "a session before the flood",
        EXT,
        &q,
        Expect::Tx(INT, want.clone()),
    );
    let (mut held, mut refused) = (0, 0);
    for i in 0..10_000u32 {
        let src = v6(&format!("2001:db8:66::{:x}:{:x}", i >> 16, i & 0xffff));
        let f = split6(
            (src, vip.0),
            60,
            NH_UDP,
            &udp6((src, 1), vip, &payload(64)),
            i,
            32,
        );
        match lab
            .run(0, EXT, &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &f[1]), false)
            .0
        {
            Verdict::HoldFragment => held += 1,
            Verdict::Drop(R::FragmentHoldFull) => refused += 1,
            v => panic!("stray fragment {i}: {v:?}"),
        }
    }
    assert!(held <= 4096, "held at most a table's worth: {held}");
    assert_eq!(held + refused, 10_000);
    assert_eq!(lab.workers[0].sessions6().len(), 1, "no session came of it");
    lab.c("the session goes on", EXT, &q, Expect::Tx(INT, want));
}

#[test]
fn fragments_with_a_destination_options_header_before_the_transport_header() {
    let mut lab = lab6(1);
    let c = (v6(CLIENT6), 5353);
    let (vip, m2) = ((v6(DNS6), 53), (v6(M2), 53));
    // Destination options (a PadN of 4) in the fragmentable part: every
    // fragment's header says 60, only the first reaches the UDP header.
    let opts = [NH_UDP, 0, 1, 4, 0, 0, 0, 0];
    let body = |to| [&opts[..], &udp6(c, to, &payload(2000))].concat();
    let sent = split6((c.0, vip.0), 60, NH_DEST_OPTS, &body(vip), 0x4242, 1232);
    let want = split6((c.0, m2.0), 59, NH_DEST_OPTS, &body(m2), 0x4242, 1232);
    for (i, f) in sent.iter().enumerate() {
        lab.c(
            &format!("fragment {i}"),
            EXT,
            &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, f),
            Expect::Tx(INT, eth(M2_MAC, INT_MAC, ETH_IPV6, &want[i])),
        );
    }
    // No host speaks from the unspecified address: no session for it.
    let any = v6("::");
    let syn = ipv6(
        any,
        v6(VIP6),
        NH_TCP,
        60,
        &tcp6((any, 1), (v6(VIP6), 80), SYN, 1, 0, b""),
    );
    lab.c(
        "a SYN from ::",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &syn),
        Expect::Drop(R::SpoofedSource),
    );
}

#[test]
fn lan_to_lan_source_nats_only_clients_inside_lan_subnets() {
    let mut lab = lab6(1);
    let (vip, m1) = ((v6(LAN6), 80), (v6(M1), 8080));
    // From outside: Dest-NAT only, the client's address kept.
    let c = (v6(CLIENT6), 40000);
    let syn = from_client(LAN6, 80, SYN, 1, 0, b"");
    let want = frame6(
        M1_MAC,
        INT_MAC,
        c.0,
        m1.0,
        NH_TCP,
        59,
        &tcp6(c, m1, SYN, 1, 0, b""),
    );
    lab.c("outside client", EXT, &syn, Expect::Tx(INT, want));
    // From a member of the LAN: its source becomes the SNAT address, so
    // the member answers through the switch, not straight back.
    let m2c = (v6(M2), 41000);
    let syn = frame6(
        INT_MAC,
        M2_MAC,
        m2c.0,
        vip.0,
        NH_TCP,
        64,
        &tcp6(m2c, vip, SYN, 5, 0, b""),
    );
    let mut sport = 0;
    lab.case_with("inside client", 0, INT, &syn, false, |out| {
        sport = u16::from_be_bytes([out[14 + 40], out[14 + 41]]);
        let s = (v6("fd00:20::101"), sport);
        let want = frame6(
            M1_MAC,
            INT_MAC,
            s.0,
            m1.0,
            NH_TCP,
            63,
            &tcp6(s, m1, SYN, 5, 0, b""),
        );
        Expect::Tx(INT, want)
    });
    assert!(sport >= 1024, "a SNAT port ({sport})");
    let s = (v6("fd00:20::101"), sport);
    let reply = frame6(
        INT_MAC,
        M1_MAC,
        m1.0,
        s.0,
        NH_TCP,
        64,
        &tcp6(m1, s, SYN | ACK, 9, 6, b""),
    );
    let want = frame6(
        M2_MAC,
        INT_MAC,
        vip.0,
        m2c.0,
        NH_TCP,
        63,
        &tcp6(vip, m2c, SYN | ACK, 9, 6, b""),
    );
    lab.c(
        "the reply, back to the inside client from the VIP",
        INT,
        &reply,
        Expect::Tx(INT, want),
    );
}
