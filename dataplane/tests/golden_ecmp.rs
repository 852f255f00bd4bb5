//! Golden tests of scale-out behind ECMP routers (`[announce]`): a flow
//! that ECMP moves to another node keeps its member (a hash method's
//! server picks a TCP segment without a session up on the member the hash
//! gives, in Dest-NAT as in DSR); a Dest-NAT member's answer that reaches
//! a node without the session is translated back statelessly when the
//! member serves exactly one virtual server; the routing daemon's BGP and
//! BFD with its configured neighbours reach the kernel under a budget of
//! their own.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::conntrack::{flag, tcp};
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

const HASH_VIP: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 14), 80);
const ROUND_VIP: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 15), 80);
/// The Maglev pool's members: on their own port, so each serves one server.
const HASHED: [(Ipv4Addr, u16); 2] = [(WEB[1], 8081), (WEB[2], 8081)];

/// The lab, a Maglev Dest-NAT server and a round-robin one, and
/// `[announce]` when `announce` (its peer: the router).
fn config(announce: bool) -> String {
    let mut cfg = variant(&[]);
    cfg.push_str(
        r#"
[pool.hashed]
method = "maglev"
members = [ { address = "10.20.0.12:8081" }, { address = "10.20.0.13:8081" } ]

[pool.round]
members = [ { address = "10.20.0.12:8082" }, { address = "10.20.0.13:8082" } ]

[[virtual_server]]
name = "hashed"
address = "198.51.100.14:80"
protocol = "tcp"
pool = "hashed"
forwarding = "dest_nat"

[[virtual_server]]
name = "round"
address = "198.51.100.15:80"
protocol = "tcp"
pool = "round"
forwarding = "dest_nat"
"#,
    );
    if announce {
        cfg.push_str("\n[announce]\ntable = 100\npeers = [\"198.51.100.254\"]\n");
    }
    cfg
}

fn node(announce: bool) -> Lab {
    let mut lab = Lab::with_shared(shared_from(&config(announce), &[EXT_MAC, INT_MAC], 1), 256);
    lab.set_time(T0);
    lab
}

/// The member (index into `HASHED`) a frame to the int link goes to.
fn member_of(frame: &[u8]) -> usize {
    let dst: [u8; 6] = frame[..6].try_into().unwrap();
    let ip = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    let i = HASHED
        .iter()
        .position(|m| m.0 == ip)
        .expect("a hashed member");
    assert_eq!(dst, WEB_MAC[i + 1], "the member's MAC");
    i
}

#[test]
fn any_node_picks_the_member_a_flow_had_on_another() {
    // Node A sees the SYNs; node B, with the same configuration, sees only
    // later segments of the same flows (ECMP moved them).
    let (mut a, mut b) = (node(true), node(true));
    let mut seen = BTreeSet::new();
    for k in 0..16u16 {
        let c = (CLIENT, 50000 + k);
        let syn = Pkt::tcp(c, HASH_VIP, SYN);
        let (v, out) = a.run(0, EXT, &from_router(&syn), false);
        assert_eq!(v, Verdict::Tx(INT), "flow {k} on A");
        let m = member_of(&out);
        seen.insert(m);
        let ack = Pkt::tcp(c, HASH_VIP, ACK | PSH)
            .seq_ack(101, 5001)
            .payload(b"GET /");
        let want = to_int(WEB_MAC[m + 1], &ack.clone().natted(c, HASHED[m]));
        let d = b.c(
            "the flow's next segment on B",
            EXT,
            &from_router(&ack),
            Expect::Tx(INT, want),
        );
        assert_deltas(&d, &[("sessions_resumed", 1), ("sessions_created", 1)]);
        let s = b.session(0, CLIENT, 50000 + k).unwrap();
        assert_eq!(s.state & tcp::MASK, tcp::ESTABLISHED);
        assert_eq!(
            s.state & flag::CONFIRMED,
            0,
            "not confirmed by the client alone"
        );
    }
    assert_eq!(seen.len(), 2, "both members took flows: {seen:?}");
}

#[test]
fn a_resumed_dest_nat_session_is_confirmed_by_the_member_and_closed_by_its_rst() {
    let mut b = node(true);
    let c = (CLIENT, 51000);
    let ack = Pkt::tcp(c, HASH_VIP, ACK).seq_ack(101, 5001);
    let (v, out) = b.run(0, EXT, &from_router(&ack), false);
    assert_eq!(v, Verdict::Tx(INT));
    let m = HASHED[member_of(&out)];
    let answer = Pkt::tcp(m, c, ACK).seq_ack(5001, 101).payload(b"200");
    let want = to_router(&answer.clone().natted(HASH_VIP, c));
    b.c(
        "the member's answer",
        INT,
        &from_int(WEB_MAC[1 + member_of(&out)], &answer),
        Expect::Tx(EXT, want),
    );
    let s = b.session(0, CLIENT, 51000).unwrap();
    assert_ne!(
        s.state & flag::CONFIRMED,
        0,
        "the member holds the connection"
    );

    // A blind ACK: the member answers RST, the session closes unconfirmed.
    let c = (CLIENT, 51001);
    let blind = Pkt::tcp(c, HASH_VIP, ACK).seq_ack(7, 7);
    let (_, out) = b.run(0, EXT, &from_router(&blind), false);
    let i = member_of(&out);
    let rst = Pkt::tcp(HASHED[i], c, RST).seq_ack(7, 0);
    let want = to_router(&rst.clone().natted(HASH_VIP, c));
    b.c(
        "the member's RST",
        INT,
        &from_int(WEB_MAC[1 + i], &rst),
        Expect::Tx(EXT, want),
    );
    let s = b.session(0, CLIENT, 51001).unwrap();
    assert_eq!(s.state & flag::CONFIRMED, 0);
    assert_eq!(s.state & tcp::MASK, tcp::CLOSED_BY_MEMBER);
}

#[test]
fn other_methods_and_rsts_start_nothing_mid_flow() {
    let mut b = node(true);
    let ack = Pkt::tcp((CLIENT, 52000), ROUND_VIP, ACK);
    b.c(
        "round robin: no session",
        EXT,
        &from_router(&ack),
        Expect::Drop(R::NoSession),
    );
    let rst = Pkt::tcp((CLIENT, 52001), HASH_VIP, RST);
    b.c(
        "a RST of no session",
        EXT,
        &from_router(&rst),
        Expect::Drop(R::NoSession),
    );
    assert!(b.sessions(0).is_empty());
}

#[test]
fn a_dest_nat_answer_without_a_session_is_translated_when_its_server_is_certain() {
    let mut b = node(true);
    let c = (CLIENT, 53000);
    // The SYN went through another node; its member answers through this one.
    let syn_ack = Pkt::tcp(HASHED[0], c, SYN | ACK).seq_ack(5000, 101);
    let want = to_router(&syn_ack.clone().natted(HASH_VIP, c));
    let d = b.c(
        "SYN-ACK of a session held elsewhere",
        INT,
        &from_int(WEB_MAC[1], &syn_ack),
        Expect::Tx(EXT, want),
    );
    assert_deltas(&d, &[("stateless_replies", 1), ("sessions_created", 0)]);
    assert!(b.sessions(0).is_empty(), "nothing kept");
    // UDP too: the DNS member serves one server.
    let answer = Pkt::udp((DNS, 53), (CLIENT, 5353), b"answer");
    let want = to_router(&answer.clone().natted((VIP_DNS, 53), (CLIENT, 5353)));
    b.c(
        "a DNS answer",
        INT,
        &from_int(DNS_MAC, &answer),
        Expect::Tx(EXT, want),
    );

    // Not an answer: a member opening a connection.
    let syn = Pkt::tcp(HASHED[0], c, SYN);
    b.c(
        "a member's SYN",
        INT,
        &from_int(WEB_MAC[1], &syn),
        Expect::Drop(R::NotForUs),
    );
    // The lab's web server has its members to itself too.
    let web = Pkt::tcp((WEB[0], 8080), c, ACK);
    let want = to_router(&web.clone().natted((VIP_WEB, 80), c));
    b.c(
        "web's member",
        INT,
        &from_int(WEB_MAC[0], &web),
        Expect::Tx(EXT, want),
    );
    // A member of a port-0 server ("any"): which port's VIP is unknown.
    let any = Pkt::tcp((ANY, 9000), c, ACK);
    b.c(
        "a member of a port-0 server",
        INT,
        &from_int(ANY_MAC, &any),
        Expect::Drop(R::NoSession),
    );
    // Not a member at all.
    let stranger = Pkt::tcp((Ipv4Addr::new(10, 20, 0, 99), 80), c, ACK);
    b.c(
        "no member",
        INT,
        &from_int([2, 0, 0, 0, 0, 0x99], &stranger),
        Expect::Drop(R::NotForUs),
    );
}

#[test]
fn without_announce_a_member_answer_of_no_session_is_dropped() {
    let mut one = node(false);
    let c = (CLIENT, 53000);
    let syn_ack = Pkt::tcp(HASHED[0], c, SYN | ACK).seq_ack(5000, 101);
    one.c(
        "one node: no session, no answer",
        INT,
        &from_int(WEB_MAC[1], &syn_ack),
        Expect::Drop(R::NotForUs),
    );
}

/// `n` TCP segments from `src` to the ext address's port `dport`, each
/// handed to the kernel.
fn to_ext(lab: &mut Lab, n: u32, src: Ipv4Addr, dport: u16, flags: u8) {
    for i in 0..n {
        let p = Pkt::tcp((src, 20000 + (i % 40000) as u16), (EXT_IP, dport), flags);
        let (v, _) = lab.run(0, EXT, &from_router(&p), false);
        assert_eq!(v, Verdict::Kernel, "segment {i} from {src}");
    }
}

#[test]
fn bgp_and_bfd_with_a_configured_peer_are_not_starved_by_a_flood() {
    let mut lab = node(true);
    // A flood from a client uses up the SYN and TCP budgets of the port.
    to_ext(&mut lab, 2_000, CLIENT, 179, SYN);
    let syn = Pkt::tcp((CLIENT, 1), (EXT_IP, 179), SYN);
    lab.c(
        "SYN over",
        EXT,
        &from_router(&syn),
        Expect::Drop(R::KernelRateLimited),
    );
    to_ext(&mut lab, 20_000, CLIENT, 179, ACK);
    let ack = Pkt::tcp((CLIENT, 1), (EXT_IP, 179), ACK);
    lab.c(
        "ACK over",
        EXT,
        &from_router(&ack),
        Expect::Drop(R::KernelRateLimited),
    );
    // The router's BGP session still gets through, either direction's port.
    let syn = Pkt::tcp((ROUTER, 40000), (EXT_IP, 179), SYN);
    lab.c(
        "the peer's SYN to 179",
        EXT,
        &from_router(&syn),
        Expect::Kernel,
    );
    let from_179 = Pkt::tcp((ROUTER, 179), (EXT_IP, 40000), ACK | PSH).payload(b"keepalive");
    lab.c(
        "the peer's segment from 179",
        EXT,
        &from_router(&from_179),
        Expect::Kernel,
    );
    // BFD from the peer, while a UDP flood took the UDP budget.
    for i in 0..5_000u32 {
        let u = Pkt::udp((CLIENT, 1000 + (i % 1000) as u16), (EXT_IP, 3784), b"x");
        assert_eq!(lab.run(0, EXT, &from_router(&u), false).0, Verdict::Kernel);
    }
    let u = Pkt::udp((CLIENT, 999), (EXT_IP, 3784), b"x");
    lab.c(
        "over",
        EXT,
        &from_router(&u),
        Expect::Drop(R::KernelRateLimited),
    );
    let bfd = Pkt::udp((ROUTER, 49152), (EXT_IP, 3784), &[0x20; 24]);
    lab.c("the peer's BFD", EXT, &from_router(&bfd), Expect::Kernel);
    // The peer's other traffic is ordinary.
    let ssh = Pkt::tcp((ROUTER, 40001), (EXT_IP, 22), ACK);
    lab.c(
        "the peer's SSH",
        EXT,
        &from_router(&ssh),
        Expect::Drop(R::KernelRateLimited),
    );
}
