//! Golden tests of IPv4 fragments through the switch: the first fragment of
//! a datagram finds its session, the others follow it (addresses rewritten,
//! or sent as they are in the DSR modes), in order or not, on the worker
//! that owns the session; a flood of stray fragments stays bounded.
//!
//! Expected frames: the whole datagram is built and rewritten by
//! `common::frame` as a NAT would rewrite it, then split as its sender would
//! split it (`split`), independently of the pipeline; compared byte for byte.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::service::{snat_port_owner, SNAT_FIRST_PORT};
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

/// A DNS answer bigger than one frame: 1,200 bytes of UDP payload.
fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 251) as u8).collect()
}

fn framed(dst: Mac, src: Mac, ip: &[u8]) -> Vec<u8> {
    eth(dst, src, ETH_IPV4, ip)
}

fn fragments_forwarded(lab: &Lab) -> u64 {
    lab.workers[0].stats().fragments.load(Relaxed)
}

#[test]
fn a_fragmented_query_and_its_fragmented_answer_through_dest_nat() {
    let mut lab = Lab::new(1, 64);
    let (c, vip, m) = ((CLIENT, 5353), (VIP_DNS, 53), (DNS, 53));
    let query = Pkt::udp(c, vip, &big(1200)).id(0x1111);
    let sent = split(&query.bytes(), 1000);
    let want = split(&query.clone().natted(c, m).bytes(), 1000);
    lab.c(
        "first fragment: a new session, ports and checksum rewritten",
        EXT,
        &framed(EXT_MAC, ROUTER_MAC, &sent[0]),
        Expect::Tx(INT, framed(DNS_MAC, INT_MAC, &want[0])),
    );
    let d = lab.c(
        "second fragment: addresses rewritten as the first",
        EXT,
        &framed(EXT_MAC, ROUTER_MAC, &sent[1]),
        Expect::Tx(INT, framed(DNS_MAC, INT_MAC, &want[1])),
    );
    assert_deltas(&d, &[("fragments", 1), ("sessions_created", 0)]);
    // The member's answer, fragmented by the member.
    let answer = Pkt::udp(m, c, &big(2000)).id(0x2222);
    let sent = split(&answer.bytes(), 1480);
    let want = split(&answer.clone().natted(vip, c).bytes(), 1480);
    lab.c(
        "the answer's first fragment",
        INT,
        &framed(INT_MAC, DNS_MAC, &sent[0]),
        Expect::Tx(EXT, framed(ROUTER_MAC, EXT_MAC, &want[0])),
    );
    lab.c(
        "the answer's second fragment",
        INT,
        &framed(INT_MAC, DNS_MAC, &sent[1]),
        Expect::Tx(EXT, framed(ROUTER_MAC, EXT_MAC, &want[1])),
    );
    assert_eq!(fragments_forwarded(&lab), 2);
}

#[test]
fn a_fragment_before_its_first_waits_and_then_follows_it() {
    let mut lab = Lab::new(1, 64);
    let (c, vip, m) = ((CLIENT, 5354), (VIP_DNS, 53), (DNS, 53));
    let query = Pkt::udp(c, vip, &big(1200)).id(0x3333);
    let sent = split(&query.bytes(), 504);
    let want = split(&query.clone().natted(c, m).bytes(), 504);
    let second = framed(EXT_MAC, ROUTER_MAC, &sent[1]);
    lab.c(
        "the second fragment first",
        EXT,
        &second,
        Expect::HeldFragment,
    );
    lab.c(
        "then the first",
        EXT,
        &framed(EXT_MAC, ROUTER_MAC, &sent[0]),
        Expect::Tx(INT, framed(DNS_MAC, INT_MAC, &want[0])),
    );
    let (v, out) = lab.replay(0, EXT, &second, false);
    assert_eq!(v, Verdict::Tx(INT));
    let expect = framed(DNS_MAC, INT_MAC, &want[1]);
    assert!(out == expect, "the held fragment\n{}", diff(&out, &expect));
    // One whose first never comes waits, then is given up by the daemon
    // (counted there); running it again does not count it held twice.
    let lost = Pkt::udp((CLIENT, 5355), vip, &big(1200)).id(0x4444);
    let lost = framed(EXT_MAC, ROUTER_MAC, &split(&lost.bytes(), 504)[1]);
    lab.c(
        "a fragment whose first is lost",
        EXT,
        &lost,
        Expect::HeldFragment,
    );
    for _ in 0..20 {
        assert_eq!(lab.replay(0, EXT, &lost, false).0, Verdict::HoldFragment);
    }
}

#[test]
fn the_fragments_of_a_datagram_meet_on_the_worker_of_its_session() {
    // Both-NAT, 2 workers: the member's answer to a SNAT port arrives on
    // worker 0; its session is the SNAT port's worker's.
    let mut lab = Lab::new(2, 64);
    let (c, vip, m) = ((CLIENT, 44000), (VIP_BOTH, 80), (APP, 80));
    let owner = usize::from(lab.workers[0].shared().client_owner(CLIENT));
    let syn = Pkt::tcp(c, vip, SYN).seq_ack(100, 0);
    let (v, out) = lab.run(owner, EXT, &from_router(&syn), true);
    assert_eq!(v, Verdict::Tx(INT));
    let sport = u16::from_be_bytes([out[34], out[35]]);
    let s = (SNAT_IP, sport);
    let port_owner = usize::from(snat_port_owner(sport, 2));
    assert_eq!(port_owner, owner, "the session's worker owns its SNAT port");
    assert!(sport >= SNAT_FIRST_PORT);
    let other = 1 - owner;
    let reply = Pkt::tcp(m, s, ACK | PSH)
        .seq_ack(7000, 101)
        .payload(&big(1600))
        .id(0x5555);
    let sent = split(&reply.bytes(), 1480);
    let want = split(&reply.clone().natted(vip, c).bytes(), 1480);
    let f0 = framed(INT_MAC, APP_MAC, &sent[0]);
    let f1 = framed(INT_MAC, APP_MAC, &sent[1]);
    lab.case(
        "first fragment on the other worker",
        other,
        INT,
        &f0,
        false,
        Expect::Redirect(owner as u16),
    );
    lab.case(
        "second fragment on the other worker",
        other,
        INT,
        &f1,
        false,
        Expect::Redirect(owner as u16),
    );
    lab.case(
        "first fragment on the owner",
        owner,
        INT,
        &f0,
        true,
        Expect::Tx(EXT, framed(ROUTER_MAC, EXT_MAC, &want[0])),
    );
    lab.case(
        "second fragment on the owner",
        owner,
        INT,
        &f1,
        true,
        Expect::Tx(EXT, framed(ROUTER_MAC, EXT_MAC, &want[1])),
    );
    // A client's fragments go straight to their client's worker, whatever
    // came first: the address tells it.
    let data = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 7001)
        .payload(&big(1200))
        .id(0x6666);
    let f1 = framed(EXT_MAC, ROUTER_MAC, &split(&data.bytes(), 504)[1]);
    lab.case(
        "a client's later fragment, first",
        other,
        EXT,
        &f1,
        false,
        Expect::Redirect(owner as u16),
    );
}

#[test]
fn fragments_through_l2_dsr_keep_their_bytes() {
    let cfg = format!(
        "{CONFIG}{}",
        r#"
[pool.dsr]
members = [ { address = "10.20.0.11:53" } ]

[[virtual_server]]
name = "dsr"
address = "198.51.100.14:53"
protocol = "udp"
pool = "dsr"
forwarding = "l2_dsr"
"#
    );
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64);
    let query = Pkt::udp(
        (CLIENT, 5400),
        (Ipv4Addr::new(198, 51, 100, 14), 53),
        &big(1200),
    )
    .id(0x7777);
    let sent = split(&query.bytes(), 1000);
    for (i, f) in sent.iter().enumerate() {
        lab.c(
            &format!("fragment {i} to the member's MAC, as it came"),
            EXT,
            &framed(EXT_MAC, ROUTER_MAC, f),
            Expect::Tx(INT, framed(WEB_MAC[0], INT_MAC, f)),
        );
    }
}

#[test]
fn a_flood_of_stray_fragments_is_bounded_and_sessions_go_on() {
    let mut lab = Lab::new(1, 64);
    let (c, vip, m) = ((CLIENT, 5500), (VIP_DNS, 53), (DNS, 53));
    let q = Pkt::udp(c, vip, b"q");
    lab.c(
        "a session before the flood",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &q.clone().natted(c, m))),
    );
    // 20,000 later fragments of datagrams nobody began, spoofed sources.
    let (mut held, mut refused) = (0, 0);
    for i in 0..20_000u32 {
        let src = Ipv4Addr::from(0x6440_0000 | i);
        let p = Pkt::udp((src, 1), vip, &big(64)).id(i as u16).frag(0x0010);
        match lab.run(0, EXT, &from_router(&p), false).0 {
            Verdict::HoldFragment => held += 1,
            Verdict::Drop(R::FragmentHoldFull) => refused += 1,
            v => panic!("stray fragment {i}: {v:?}"),
        }
    }
    assert!(held <= 4096, "held at most a table's worth: {held}");
    assert_eq!(held + refused, 20_000);
    assert_eq!(lab.sessions(0).len(), 1, "no session came of it");
    lab.c(
        "the session goes on",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &q.clone().natted(c, m))),
    );
}

#[test]
fn fragments_to_an_interface_address_are_the_kernels() {
    let mut lab = Lab::new(1, 64);
    let p = Pkt::udp((CLIENT, 5600), (EXT_IP, 161), &big(64))
        .id(9)
        .frag(0x0010);
    lab.c(
        "a later fragment to the ext address",
        EXT,
        &from_router(&p),
        Expect::Kernel,
    );
    let p = Pkt::raw(CLIENT, VIP_WEB, 47, b"gre?????").frag(0x0010);
    lab.c(
        "a later fragment of neither TCP nor UDP",
        EXT,
        &from_router(&p),
        Expect::Drop(R::Fragment),
    );
}
