//! Golden tests of the packets the switch writes for IPv6 sessions: the
//! RST and ICMPv6 port unreachable that refuse a session no member can
//! take, and the probes and RSTs that end the sessions of a member gone
//! down (`on_member_down = "reset"`) or idle (`reset_on_timeout`).
//!
//! Expected segments are built from scratch (window 0, hop limit 64, as
//! the switch writes them), their checksums over the IPv6 pseudo header.

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use common::lab6::*;
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::{Generated, Verdict};
use std::net::Ipv6Addr;

/// The probe's sequence number (`reset.rs`).
const PROBE_SEQ: u32 = 0x5eed_0001;

/// A segment as the switch writes it: no options, window 0.
fn switch_tcp6(
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut t = tcp6(src, dst, flags, seq, ack, b"");
    t[14..18].copy_from_slice(&[0, 0, 0, 0]);
    let c = checksum6(src.0, dst.0, NH_TCP, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Marks the members of virtual server `name` up or down, as the control
/// thread does.
fn set_members(lab: &Lab, name: &str, up: bool) {
    let sh = lab.workers[0].shared();
    let (_, vs) = sh.servers().find(|(_, v)| v.name == name).expect("server");
    for m in vs.members.iter() {
        sh.members.set(m.id, up);
    }
}

/// Every packet worker 0 asked to generate, written into fresh buffers.
fn drain(lab: &mut Lab) -> Vec<(Generated, Verdict, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(g) = lab.workers[0].pop_generated() {
        let mut buf = VecBuf::empty();
        let v = lab.workers[0].write_generated(g, &mut buf);
        out.push((g, v, buf.data().to_vec()));
    }
    out
}

#[track_caller]
fn assert_frame(name: &str, got: &(Generated, Verdict, Vec<u8>), port: u16, want: &[u8]) {
    assert_eq!(got.1, Verdict::Tx(port), "{name}: verdict");
    assert!(got.2 == want, "{name}: frame\n{}", diff(&got.2, want));
}

#[test]
fn a_session_no_member_can_take_is_refused_with_a_rst_or_a_port_unreachable() {
    let mut lab = lab6(1);
    set_members(&lab, "web6", false);
    set_members(&lab, "dns6", false);
    let (c, vip) = ((v6(CLIENT6), 40000), (v6(VIP6), 80));
    let syn = from_client(VIP6, 80, SYN, 1000, 0, b"");
    let rst = switch_tcp6(vip, c, 0, 1001, RST | ACK);
    let want = frame6(ROUTER_MAC, EXT_MAC, vip.0, c.0, NH_TCP, 64, &rst);
    let d = lab.c("SYN: RST from the VIP", EXT, &syn, Expect::Tx(EXT, want));
    assert_deltas(
        &d,
        &[
            ("rejected_no_member", 1),
            ("forwarded", 1),
            ("rx_packets", 1),
        ],
    );
    let (c, dns) = ((v6(CLIENT6), 5353), (v6(DNS6), 53));
    let query = ipv6(c.0, dns.0, NH_UDP, 60, &udp6(c, dns, b"query"));
    let msg = icmpv6(dns.0, c.0, 1, 4, [0; 4], &query);
    let want = icmp_frame(ROUTER_MAC, EXT_MAC, dns.0, c.0, 64, &msg);
    let d = lab.c(
        "UDP: port unreachable from the VIP, quoting the datagram",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &query),
        Expect::Tx(EXT, want),
    );
    assert_deltas(
        &d,
        &[
            ("rejected_no_member", 1),
            ("icmp_errors_sent", 1),
            ("forwarded", 1),
            ("rx_packets", 1),
        ],
    );
    // A multicast source is never answered.
    let group = v6("ff05::2");
    let q = ipv6(group, dns.0, NH_UDP, 60, &udp6((group, 5), dns, b"q"));
    lab.c(
        "multicast source",
        EXT,
        &eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &q),
        Expect::Drop(R::Malformed),
    );
}

/// An established session of reset6 from client port 41000: the client's
/// next sequence number is 101, the member's 5001.
fn established(lab: &mut Lab) -> ((Ipv6Addr, u16), (Ipv6Addr, u16), (Ipv6Addr, u16)) {
    let (c, vip, m) = ((v6(CLIENT6), 41000), (v6(RESET6), 80), (v6(M1), 8080));
    let tx = |to: Mac, from: Mac, s: (Ipv6Addr, u16), d: (Ipv6Addr, u16), hl, f, seq, ack| {
        frame6(
            to,
            from,
            s.0,
            d.0,
            NH_TCP,
            hl,
            &tcp6(s, d, f, seq, ack, b""),
        )
    };
    let syn = tx(EXT_MAC, ROUTER_MAC, c, vip, 60, SYN, 100, 0);
    let want = tx(M1_MAC, INT_MAC, c, m, 59, SYN, 100, 0);
    lab.c("SYN", EXT, &syn, Expect::Tx(INT, want));
    let syn_ack = tx(INT_MAC, M1_MAC, m, c, 64, SYN | ACK, 5000, 101);
    let want = tx(ROUTER_MAC, EXT_MAC, vip, c, 63, SYN | ACK, 5000, 101);
    lab.c("SYN-ACK", INT, &syn_ack, Expect::Tx(EXT, want));
    let ack = tx(EXT_MAC, ROUTER_MAC, c, vip, 60, ACK, 101, 5001);
    let want = tx(M1_MAC, INT_MAC, c, m, 59, ACK, 101, 5001);
    lab.c("ACK", EXT, &ack, Expect::Tx(INT, want));
    (c, vip, m)
}

#[test]
fn a_member_gone_down_has_its_sessions_probed_then_reset_at_both_ends() {
    let mut lab = lab6(1);
    let (c, vip, m) = established(&mut lab);
    set_members(&lab, "reset6", false);
    lab.maintain();
    let g = drain(&mut lab);
    assert_eq!(g.len(), 2, "a probe to each end: {g:?}");
    let probe = switch_tcp6(vip, c, PROBE_SEQ, 0, ACK);
    let want = frame6(ROUTER_MAC, EXT_MAC, vip.0, c.0, NH_TCP, 64, &probe);
    assert_frame("probe to the client", &g[0], EXT, &want);
    // To the member as if the client sent it: Dest-NAT rewritten, hop 63.
    let probe = switch_tcp6(c, m, PROBE_SEQ, 0, ACK);
    let want = frame6(M1_MAC, INT_MAC, c.0, m.0, NH_TCP, 63, &probe);
    assert_frame("probe to the member", &g[1], INT, &want);
    lab.maintain();
    assert!(drain(&mut lab).is_empty(), "probed once");

    // The client answers with its numbers: RSTs to both ends.
    let answer = frame6(
        EXT_MAC,
        ROUTER_MAC,
        c.0,
        vip.0,
        NH_TCP,
        60,
        &tcp6(c, vip, ACK, 101, 5001, b""),
    );
    let d = lab.c("the client's answer", EXT, &answer, Expect::Consumed);
    assert_deltas(&d, &[("sessions_reset", 1), ("sessions_active", -1)]);
    let g = drain(&mut lab);
    assert_eq!(g.len(), 2, "two RSTs: {g:?}");
    let rst = switch_tcp6(vip, c, 5001, 0, RST);
    let want = frame6(ROUTER_MAC, EXT_MAC, vip.0, c.0, NH_TCP, 64, &rst);
    assert_frame("RST to the client", &g[0], EXT, &want);
    let rst = switch_tcp6(c, m, 101, 5001, RST | ACK);
    let want = frame6(M1_MAC, INT_MAC, c.0, m.0, NH_TCP, 63, &rst);
    assert_frame("RST to the member", &g[1], INT, &want);
    assert!(lab.workers[0].sessions6().is_empty(), "session removed");
}

#[test]
fn an_idle_session_of_a_reset_on_timeout_server_is_probed_not_forgotten() {
    let mut lab = lab6(1);
    lab.set_time(T0);
    let (c, vip, _) = established(&mut lab);
    lab.set_time(T0 + TCP_EST_MS - 1);
    lab.maintain();
    assert!(drain(&mut lab).is_empty(), "not idle long enough");
    lab.set_time(T0 + TCP_EST_MS + 1);
    lab.maintain();
    let g = drain(&mut lab);
    assert_eq!(g.len(), 2, "a probe to each end: {g:?}");
    let probe = switch_tcp6(vip, c, PROBE_SEQ, 0, ACK);
    let want = frame6(ROUTER_MAC, EXT_MAC, vip.0, c.0, NH_TCP, 64, &probe);
    assert_frame("probe to the client", &g[0], EXT, &want);
    assert_eq!(lab.workers[0].sessions6().len(), 1, "kept until answered");
}
