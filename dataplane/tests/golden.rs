//! Golden-packet tests of the whole pipeline (Katran-fixture style): each
//! case is an input frame, the port it arrives on, and the exact expected
//! result (frame bytes out and port, or drop reason, or consumed, or
//! redirect), plus counter deltas where they mean something.
//!
//! Expected frames are built independently by `common::frame`, whose
//! checksums are computed from scratch, so a wrong incremental checksum
//! update in the pipeline shows as a byte difference.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::conntrack::{flag, tcp as st};
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::service::{client_owner, snat_port_owner, SNAT_FIRST_PORT};
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

/// The TCP state of a session, without its `CONFIRMED` flag (asserted
/// apart, where the handshake shows it).
fn state(lab: &Lab, w: usize, client: Ipv4Addr, cport: u16) -> u8 {
    lab.session(w, client, cport)
        .unwrap_or_else(|| panic!("no session for {client}:{cport}"))
        .state
        & !flag::CONFIRMED
}

fn confirmed(lab: &Lab, w: usize, client: Ipv4Addr, cport: u16) -> bool {
    lab.session(w, client, cport)
        .is_some_and(|s| s.state & flag::CONFIRMED != 0)
}

// ---------------------------------------------------------------------------
// ARP
// ---------------------------------------------------------------------------

/// (name, port, requester ip, requester mac, target, our mac or None = not ours)
type ArpCase = (&'static str, u16, Ipv4Addr, Mac, Ipv4Addr, Option<Mac>);

#[test]
fn arp_responder() {
    let mut lab = Lab::new(1, 64);
    let host: Mac = [0x02, 0, 0, 0, 0, 0x77];
    let host_ip = Ipv4Addr::new(198, 51, 100, 77);
    let member_ip = Ipv4Addr::new(10, 20, 0, 77);
    let table: [ArpCase; 7] = [
        (
            "who-has ext interface address",
            EXT,
            host_ip,
            host,
            EXT_IP,
            Some(EXT_MAC),
        ),
        (
            "who-has VIP web",
            EXT,
            host_ip,
            host,
            VIP_WEB,
            Some(EXT_MAC),
        ),
        (
            "who-has VIP of port-0 server",
            EXT,
            host_ip,
            host,
            VIP_ANY,
            Some(EXT_MAC),
        ),
        (
            "who-has SNAT address on int",
            INT,
            member_ip,
            host,
            SNAT_IP,
            Some(INT_MAC),
        ),
        (
            "who-has int interface address",
            INT,
            member_ip,
            host,
            INT_IP,
            Some(INT_MAC),
        ),
        (
            "who-has int address asked on ext",
            EXT,
            host_ip,
            host,
            INT_IP,
            None,
        ),
        (
            "who-has unknown address",
            EXT,
            host_ip,
            host,
            Ipv4Addr::new(198, 51, 100, 99),
            None,
        ),
    ];
    for (name, port, sip, smac, tip, ours) in table {
        let req = arp_frame(BCAST, smac, ARP_REQ, smac, sip, [0; 6], tip);
        match ours {
            Some(mac) => {
                let want = arp_frame(smac, mac, ARP_REP, mac, tip, smac, sip);
                let d = lab.c(name, port, &req, Expect::Tx(port, want));
                assert_deltas(&d, &[("arp_replies", 1)]);
            }
            None => {
                lab.c(name, port, &req, Expect::Drop(R::ArpNotForUs));
            }
        }
    }
    // A request unicast to our MAC is answered as well.
    let req = arp_frame(EXT_MAC, host, ARP_REQ, host, host_ip, [0; 6], EXT_IP);
    let want = arp_frame(host, EXT_MAC, ARP_REP, EXT_MAC, EXT_IP, host, host_ip);
    lab.c("unicast who-has", EXT, &req, Expect::Tx(EXT, want));
    // The requester was learned (on-link, asked for our address).
    let e = lab.workers[0]
        .shared()
        .neighbors
        .lookup(host_ip, EXT)
        .expect("learned");
    assert_eq!(e.mac, host);
    // Malformed ARP.
    let mut bad = arp(ARP_REQ, host, host_ip, [0; 6], EXT_IP);
    bad[4] = 5; // hlen
    lab.c(
        "ARP with hlen 5",
        EXT,
        &eth(BCAST, host, ETH_ARP, &bad),
        Expect::Drop(R::Malformed),
    );
    let mut short = eth(
        BCAST,
        host,
        ETH_ARP,
        &arp(ARP_REQ, host, host_ip, [0; 6], EXT_IP),
    );
    short.truncate(14 + 20);
    lab.c("ARP truncated", EXT, &short, Expect::Drop(R::Truncated));
    // An unknown operation for our address.
    let op3 = arp_frame(BCAST, host, 3, host, host_ip, [0; 6], EXT_IP);
    lab.c("ARP op 3", EXT, &op3, Expect::Drop(R::ArpNotForUs));
}

#[test]
fn arp_learning_resolves_unknown_member() {
    let mut lab = Lab::new(1, 64);
    // Port-0 server: the member keeps the client's port; its MAC is unknown.
    let syn = Pkt::tcp((CLIENT, 40000), (VIP_ANY, 443), SYN);
    let d = lab.c(
        "SYN to member without MAC: held",
        EXT,
        &from_router(&syn),
        Expect::Held(INT, ANY),
    );
    assert_deltas(&d, &[("held", 1), ("forwarded", 0)]);
    assert_eq!(
        lab.workers[0].pop_neighbor_request(),
        Some((INT, ANY.into()))
    );
    assert_eq!(lab.workers[0].pop_neighbor_request(), None);
    // Rate limited: no second request within a second.
    lab.c(
        "retransmitted SYN, still unresolved",
        EXT,
        &from_router(&syn),
        Expect::Held(INT, ANY),
    );
    // The daemon keeps such a frame and asks again until the MAC is known.
    let (v, held) = lab.run(0, EXT, &from_router(&syn), false);
    assert_eq!(
        v,
        Verdict::Hold {
            port: INT,
            next_hop: ANY
        }
    );
    let mut buf = VecBuf::new(&held);
    assert_eq!(
        lab.workers[0].resolve_held(INT, ANY.into(), &mut buf),
        Verdict::Hold {
            port: INT,
            next_hop: ANY
        },
        "still unknown: held on"
    );
    assert_eq!(lab.workers[0].pop_neighbor_request(), None);

    // The request the daemon would send.
    let mut buf = VecBuf::empty();
    assert!(lab.workers[0].write_arp_request(INT, ANY, &mut buf));
    let want = {
        let mut f = Vec::new();
        f.extend_from_slice(&BCAST);
        f.extend_from_slice(&INT_MAC);
        f.extend_from_slice(&ETH_ARP.to_be_bytes());
        f.extend_from_slice(&arp(ARP_REQ, INT_MAC, INT_IP, [0; 6], ANY));
        f
    };
    assert!(
        buf.data() == want.as_slice(),
        "ARP request\n{}",
        diff(buf.data(), &want)
    );
    assert_eq!(
        lab.workers[0].stats().arp_requests.load(Ordering::Relaxed),
        1
    );

    // The member answers: consumed, learned.
    let reply = arp_frame(INT_MAC, ANY_MAC, ARP_REP, ANY_MAC, ANY, INT_MAC, INT_IP);
    // Replies to the interface address are the kernel interface's too.
    let d = lab.c("ARP reply from member", INT, &reply, Expect::Kernel);
    assert_deltas(&d, &[("arp_learned", 1)]);

    // The held SYN goes out now, to the learned MAC, keeping port 443.
    let want = to_int(ANY_MAC, &syn.clone().natted((CLIENT, 40000), (ANY, 443)));
    let mut buf = VecBuf::new(&held);
    assert_eq!(
        lab.workers[0].resolve_held(INT, ANY.into(), &mut buf),
        Verdict::Tx(INT)
    );
    assert!(
        buf.data() == want.as_slice(),
        "released frame\n{}",
        diff(buf.data(), &want)
    );
    let d = lab.c(
        "SYN after learning",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("forwarded", 1), ("sessions_created", 0)]);
    let other = Pkt::tcp((CLIENT, 40001), (VIP_ANY, 22), SYN);
    let want = to_int(ANY_MAC, &other.clone().natted((CLIENT, 40001), (ANY, 22)));
    lab.c(
        "port-0 server, another port",
        EXT,
        &from_router(&other),
        Expect::Tx(INT, want),
    );
    // The member's reply comes back from VIP:443.
    let sa = Pkt::tcp((ANY, 443), (CLIENT, 40000), SYN | ACK);
    let want = to_router(&sa.clone().natted((VIP_ANY, 443), (CLIENT, 40000)));
    lab.c(
        "port-0 server reply",
        INT,
        &from_int(ANY_MAC, &sa),
        Expect::Tx(EXT, want),
    );

    // A learned entry expires after 90 s without refresh; static ones never do.
    lab.set_time(T0 + 91_000);
    let late = Pkt::tcp((CLIENT, 40002), (VIP_ANY, 443), SYN);
    lab.c(
        "learned MAC expired: held",
        EXT,
        &from_router(&late),
        Expect::Held(INT, ANY),
    );
    assert_eq!(
        lab.workers[0].pop_neighbor_request(),
        Some((INT, ANY.into()))
    );
}

#[test]
fn arp_reply_not_for_us_and_gratuitous() {
    let mut lab = Lab::new(1, 64);
    let other: Mac = [0x02, 0, 0, 0, 0, 0x99];
    // A reply to someone else, broadcast: not ours, not learned.
    let f = arp_frame(
        BCAST,
        ANY_MAC,
        ARP_REP,
        ANY_MAC,
        ANY,
        other,
        Ipv4Addr::new(10, 20, 0, 9),
    );
    let d = lab.c(
        "ARP reply to another host",
        INT,
        &f,
        Expect::Drop(R::ArpNotForUs),
    );
    assert_deltas(&d, &[("arp_learned", 0)]);
    assert!(lab.workers[0].shared().neighbors.lookup(ANY, INT).is_none());
    // A gratuitous ARP of an unknown host does not create an entry.
    let g = arp_frame(BCAST, ANY_MAC, ARP_REQ, ANY_MAC, ANY, [0; 6], ANY);
    lab.c("gratuitous ARP", INT, &g, Expect::Drop(R::ArpNotForUs));
    assert!(lab.workers[0].shared().neighbors.lookup(ANY, INT).is_none());
    // A reply claiming our own address from off-link is not learned.
    let f = arp_frame(
        EXT_MAC,
        other,
        ARP_REP,
        other,
        Ipv4Addr::new(192, 0, 2, 5),
        EXT_MAC,
        EXT_IP,
    );
    let d = lab.c("ARP reply from off-link sender", EXT, &f, Expect::Kernel);
    assert_deltas(&d, &[("arp_learned", 0)]);
}

// ---------------------------------------------------------------------------
// ICMP echo
// ---------------------------------------------------------------------------

#[test]
fn icmp_echo_replies() {
    let mut lab = Lab::new(1, 64);
    // (name, port, peer ip, peer mac, our address, our mac)
    let table = [
        (
            "echo to ext interface address",
            EXT,
            CLIENT,
            ROUTER_MAC,
            EXT_IP,
            EXT_MAC,
        ),
        ("echo to VIP", EXT, CLIENT, ROUTER_MAC, VIP_WEB, EXT_MAC),
        (
            "echo to UDP VIP",
            EXT,
            LOCAL_CLIENT,
            LOCAL_CLIENT_MAC,
            VIP_DNS,
            EXT_MAC,
        ),
        (
            "echo to int interface address",
            INT,
            WEB[0],
            WEB_MAC[0],
            INT_IP,
            INT_MAC,
        ),
        ("echo to SNAT address", INT, APP, APP_MAC, SNAT_IP, INT_MAC),
    ];
    for (i, (name, port, peer, peer_mac, ours, our_mac)) in table.into_iter().enumerate() {
        let data: Vec<u8> = (0..(17 + i as u8 * 7)).collect(); // odd and even lengths
        let req = Pkt::echo_request(peer, ours, 0x4242, i as u16, &data).ttl(57);
        let mut rep = Pkt::echo_request(ours, peer, 0x4242, i as u16, &data).ttl(64);
        if let Body::Icmp { ty, .. } = &mut rep.body {
            *ty = 0;
        }
        let d = lab.c(
            name,
            port,
            &req.frame(our_mac, peer_mac),
            Expect::Tx(port, rep.frame(peer_mac, our_mac)),
        );
        assert_deltas(&d, &[("icmp_echo_replies", 1), ("forwarded", 0)]);
    }
    // Echo to an address we do not own.
    let req = Pkt::echo_request(CLIENT, Ipv4Addr::new(198, 51, 100, 99), 1, 1, b"x");
    lab.c(
        "echo to unowned address",
        EXT,
        &from_router(&req),
        Expect::Drop(R::NotForUs),
    );
    // Other ICMP to our address.
    let ts = Pkt::icmp(CLIENT, EXT_IP, 13, 0, [0; 4], &[0; 12]);
    lab.c(
        "timestamp request to interface",
        EXT,
        &from_router(&ts),
        Expect::Kernel,
    );
    let mut short = from_router(&Pkt::echo_request(CLIENT, EXT_IP, 1, 1, b""));
    // IP total length covering only 4 bytes of ICMP.
    short[14 + 2..14 + 4].copy_from_slice(&24u16.to_be_bytes());
    refill_ip_checksum(&mut short, 14);
    lab.c(
        "ICMP shorter than its header",
        EXT,
        &short,
        Expect::Drop(R::Truncated),
    );
    // A big ping to the interface address: the kernel reassembles it.
    let frag = Pkt::echo_request(CLIENT, EXT_IP, 1, 1, b"abcd").frag(0x2000);
    lab.c(
        "fragmented echo to the interface address",
        EXT,
        &from_router(&frag),
        Expect::Kernel,
    );
    let frag = Pkt::echo_request(CLIENT, VIP_WEB, 1, 1, b"abcd").frag(0x2000);
    lab.c(
        "fragmented echo to a VIP",
        EXT,
        &from_router(&frag),
        Expect::Drop(R::Fragment),
    );
}

// ---------------------------------------------------------------------------
// Dest-NAT TCP
// ---------------------------------------------------------------------------

#[test]
fn dest_nat_tcp_lifecycle() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 40000);
    let vip = (VIP_WEB, 80);
    let m = (WEB[0], 8080);

    let syn = Pkt::tcp(c, vip, SYN).seq_ack(100, 0).id(1);
    let want = to_int(WEB_MAC[0], &syn.clone().natted(c, m));
    let d = lab.c(
        "client SYN -> member 1",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want.clone()),
    );
    assert_deltas(
        &d,
        &[
            ("forwarded", 1),
            ("sessions_created", 1),
            ("sessions_active", 1),
        ],
    );
    // Sanity of the expectation itself: TTL 63, checksums verify from scratch.
    assert_eq!(want[14 + 8], 63);
    assert!(checksum_ok(&want[14..34]));
    assert_eq!(state(&lab, 0, CLIENT, 40000), st::SYN_SENT);

    // A retransmitted SYN uses the same session and member.
    let d = lab.c(
        "retransmitted SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_created", 0)]);

    let sa = Pkt::tcp(m, c, SYN | ACK).seq_ack(5000, 101).id(2);
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        "member SYN-ACK -> client",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(EXT, want),
    );
    assert_eq!(state(&lab, 0, CLIENT, 40000), st::SYN_RECV);

    let ack = Pkt::tcp(c, vip, ACK).seq_ack(101, 5001).id(3);
    let want = to_int(WEB_MAC[0], &ack.clone().natted(c, m));
    assert!(!confirmed(&lab, 0, CLIENT, 40000));
    lab.c("client ACK", EXT, &from_router(&ack), Expect::Tx(INT, want));
    assert_eq!(state(&lab, 0, CLIENT, 40000), st::ESTABLISHED);
    assert!(
        confirmed(&lab, 0, CLIENT, 40000),
        "the ACK acknowledges the SYN-ACK"
    );

    let req = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .id(4)
        .payload(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let want = to_int(WEB_MAC[0], &req.clone().natted(c, m));
    lab.c(
        "client data",
        EXT,
        &from_router(&req),
        Expect::Tx(INT, want),
    );

    let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let resp = Pkt::tcp(m, c, ACK | PSH)
        .seq_ack(5001, 128)
        .id(5)
        .payload(&body);
    let want = to_router(&resp.clone().natted(vip, c));
    lab.c(
        "member data (1000 bytes)",
        INT,
        &from_int(WEB_MAC[0], &resp),
        Expect::Tx(EXT, want),
    );
    assert_eq!(state(&lab, 0, CLIENT, 40000), st::ESTABLISHED);

    let fin_m = Pkt::tcp(m, c, FIN | ACK).seq_ack(6001, 128).id(6);
    let want = to_router(&fin_m.clone().natted(vip, c));
    lab.c(
        "member FIN",
        INT,
        &from_int(WEB_MAC[0], &fin_m),
        Expect::Tx(EXT, want),
    );
    assert_eq!(state(&lab, 0, CLIENT, 40000), st::FIN_WAIT | st::FIN_MEMBER);

    let fin_c = Pkt::tcp(c, vip, FIN | ACK).seq_ack(128, 6002).id(7);
    let want = to_int(WEB_MAC[0], &fin_c.clone().natted(c, m));
    lab.c(
        "client FIN",
        EXT,
        &from_router(&fin_c),
        Expect::Tx(INT, want),
    );
    assert_eq!(
        state(&lab, 0, CLIENT, 40000),
        st::CLOSED | st::FIN_MEMBER | st::FIN_CLIENT
    );

    let last = Pkt::tcp(m, c, ACK).seq_ack(6002, 129).id(8);
    let want = to_router(&last.clone().natted(vip, c));
    lab.c(
        "member final ACK",
        INT,
        &from_int(WEB_MAC[0], &last),
        Expect::Tx(EXT, want),
    );

    // Closed sessions live tcp_close, measured from the last packet.
    lab.set_time(T0 + TCP_CLOSE_MS - 1);
    lab.maintain();
    assert_eq!(lab.sessions(0).len(), 1, "not yet expired");
    lab.set_time(T0 + TCP_CLOSE_MS);
    lab.maintain();
    assert!(lab.sessions(0).is_empty(), "expired after tcp_close");
    assert_eq!(
        lab.workers[0]
            .stats()
            .sessions_expired
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        lab.workers[0]
            .stats()
            .sessions_active
            .load(Ordering::Relaxed),
        0
    );
    lab.c(
        "client ACK after expiry",
        EXT,
        &from_router(&ack),
        Expect::Drop(R::NoSession),
    );
    lab.c(
        "member packet after expiry",
        INT,
        &from_int(WEB_MAC[0], &last),
        Expect::Drop(R::NotForUs),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn dest_nat_round_robin_and_strays() {
    let mut lab = Lab::new(1, 64);
    for (i, cport) in [41000u16, 41001, 41002, 41003, 41004]
        .into_iter()
        .enumerate()
    {
        let k = i % 3;
        let syn = Pkt::tcp((LOCAL_CLIENT, cport), (VIP_WEB, 80), SYN);
        let want = to_int(
            WEB_MAC[k],
            &syn.clone().natted((LOCAL_CLIENT, cport), (WEB[k], 8080)),
        );
        lab.c(
            &format!("connection {i} -> member {}", k + 1),
            EXT,
            &syn.frame(EXT_MAC, LOCAL_CLIENT_MAC),
            Expect::Tx(INT, want),
        );
        let sa = Pkt::tcp((WEB[k], 8080), (LOCAL_CLIENT, cport), SYN | ACK);
        // The on-link client gets the reply directly, not via the router.
        let want = sa
            .clone()
            .natted((VIP_WEB, 80), (LOCAL_CLIENT, cport))
            .frame(LOCAL_CLIENT_MAC, EXT_MAC);
        lab.c(
            &format!("reply {i} to on-link client"),
            INT,
            &from_int(WEB_MAC[k], &sa),
            Expect::Tx(EXT, want),
        );
    }
    assert_eq!(lab.sessions(0).len(), 5);

    let c = (CLIENT, 42000);
    for (name, flags) in [
        ("stray ACK", ACK),
        ("stray SYN-ACK", SYN | ACK),
        ("stray RST", RST),
        ("stray FIN", FIN),
    ] {
        let p = Pkt::tcp(c, (VIP_WEB, 80), flags);
        lab.c(name, EXT, &from_router(&p), Expect::Drop(R::NoSession));
    }
    // A member reply that matches no session, to a non-local client.
    let p = Pkt::tcp((WEB[1], 8080), c, SYN | ACK);
    lab.c(
        "member reply without session",
        INT,
        &from_int(WEB_MAC[1], &p),
        Expect::Drop(R::NotForUs),
    );
    // The member replying from a wrong port matches nothing.
    let p = Pkt::tcp((WEB[0], 8081), (LOCAL_CLIENT, 41000), ACK);
    lab.c(
        "member reply from wrong port",
        INT,
        &from_int(WEB_MAC[0], &p),
        Expect::Drop(R::NotForUs),
    );
    // A SYN with TTL 1 would leave with TTL 0.
    let p = Pkt::tcp(c, (VIP_WEB, 80), SYN).ttl(1);
    lab.c(
        "SYN with TTL 1",
        EXT,
        &from_router(&p),
        Expect::Drop(R::TtlExceeded),
    );
    let p = Pkt::tcp(c, (VIP_WEB, 80), SYN).ttl(0);
    lab.c(
        "SYN with TTL 0",
        EXT,
        &from_router(&p),
        Expect::Drop(R::TtlExceeded),
    );
    // TTL 2 is fine and leaves with 1.
    let p = Pkt::tcp(c, (VIP_WEB, 80), SYN).ttl(2);
    let want = to_int(WEB_MAC[2], &p.clone().natted(c, (WEB[2], 8080)));
    lab.c(
        "SYN with TTL 2",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, want),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn dest_nat_half_open_expiry_and_reuse() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 43000);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
    let want = to_int(WEB_MAC[0], &syn.clone().natted(c, (WEB[0], 8080)));
    lab.c(
        "half-open SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    lab.set_time(T0 + TCP_SYN_MS - 1);
    lab.maintain();
    assert_eq!(lab.sessions(0).len(), 1, "alive before tcp_syn");
    lab.set_time(T0 + TCP_SYN_MS);
    lab.maintain();
    assert!(lab.sessions(0).is_empty(), "expired at tcp_syn");
    let ack = Pkt::tcp(c, (VIP_WEB, 80), ACK);
    lab.c(
        "ACK after half-open expiry",
        EXT,
        &from_router(&ack),
        Expect::Drop(R::NoSession),
    );

    // Expiry on lookup, without maintain: an ACK after tcp_syn is refused and
    // the stale session is removed.
    let t1 = T0 + 100_000;
    lab.set_time(t1);
    let c2 = (CLIENT, 43001);
    let syn2 = Pkt::tcp(c2, (VIP_WEB, 80), SYN);
    let want = to_int(WEB_MAC[1], &syn2.clone().natted(c2, (WEB[1], 8080)));
    lab.c(
        "second half-open SYN",
        EXT,
        &from_router(&syn2),
        Expect::Tx(INT, want),
    );
    lab.set_time(t1 + TCP_SYN_MS);
    let d = lab.c(
        "ACK to an idled-out session",
        EXT,
        &from_router(&Pkt::tcp(c2, (VIP_WEB, 80), ACK)),
        Expect::Drop(R::NoSession),
    );
    assert_deltas(&d, &[("sessions_expired", 1)]);
    assert!(lab.sessions(0).is_empty());
    let sa = Pkt::tcp((WEB[1], 8080), c2, SYN | ACK);
    lab.c(
        "member reply after lazy expiry",
        INT,
        &from_int(WEB_MAC[1], &sa),
        Expect::Drop(R::NotForUs),
    );

    // Established sessions live tcp_established; a closing one tcp_fin.
    let t2 = T0 + 200_000;
    lab.set_time(t2);
    let c3 = (CLIENT, 43002);
    let m = (WEB[2], 8080);
    for (name, port, frame) in [
        ("SYN", EXT, from_router(&Pkt::tcp(c3, (VIP_WEB, 80), SYN))),
        (
            "SYN-ACK",
            INT,
            from_int(WEB_MAC[2], &Pkt::tcp(m, c3, SYN | ACK).seq_ack(9000, 1)),
        ),
        (
            "ACK",
            EXT,
            from_router(&Pkt::tcp(c3, (VIP_WEB, 80), ACK).seq_ack(1, 9001)),
        ),
    ] {
        let (v, _) = lab.run(0, port, &frame, false);
        assert!(
            matches!(v, sluice_dataplane::worker::Verdict::Tx(_)),
            "{name}: {v:?}"
        );
    }
    assert_eq!(state(&lab, 0, CLIENT, 43002), st::ESTABLISHED);
    lab.set_time(t2 + TCP_EST_MS - 1);
    lab.maintain();
    assert_eq!(lab.sessions(0).len(), 1);
    let fin = Pkt::tcp(c3, (VIP_WEB, 80), FIN | ACK);
    let want = to_int(WEB_MAC[2], &fin.clone().natted(c3, m));
    lab.c(
        "client FIN keeps the session alive",
        EXT,
        &from_router(&fin),
        Expect::Tx(INT, want),
    );
    assert_eq!(state(&lab, 0, CLIENT, 43002), st::FIN_WAIT | st::FIN_CLIENT);
    // A new SYN on the same client port replaces a closing session (new member).
    let t3 = t2 + TCP_EST_MS - 1 + 10;
    lab.set_time(t3);
    let syn3 = Pkt::tcp(c3, (VIP_WEB, 80), SYN).seq_ack(77777, 0);
    let want = to_int(WEB_MAC[0], &syn3.clone().natted(c3, (WEB[0], 8080)));
    let d = lab.c(
        "SYN reusing the port of a closing session",
        EXT,
        &from_router(&syn3),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("sessions_expired", 1)]);
    assert_eq!(state(&lab, 0, CLIENT, 43002), st::SYN_SENT);
    lab.workers[0].sessions().check_consistency().unwrap();
}

// ---------------------------------------------------------------------------
// Both-NAT
// ---------------------------------------------------------------------------

#[test]
fn both_nat_translation_and_snat_port_reuse() {
    let mut lab = Lab::new(1, 16);
    let c = (CLIENT, 44000);
    let vip = (VIP_BOTH, 80);
    let m = (APP, 80);
    let s = (SNAT_IP, SNAT_FIRST_PORT);

    let syn = Pkt::tcp(c, vip, SYN);
    let want = to_int(APP_MAC, &syn.clone().natted(s, m));
    let d = lab.c(
        "Both-NAT SYN: source becomes SNAT:1024",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_created", 1)]);
    let sess = lab.session(0, CLIENT, 44000).unwrap();
    assert_eq!((Ipv4Addr::from(sess.snat), sess.sport), s);

    let sa = Pkt::tcp(m, s, SYN | ACK).payload(b"hi");
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        "reply to SNAT:1024 -> client",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, want),
    );
    let data = Pkt::tcp(c, vip, ACK | PSH).payload(&[0xab; 333]);
    let want = to_int(APP_MAC, &data.clone().natted(s, m));
    lab.c(
        "client data via SNAT",
        EXT,
        &from_router(&data),
        Expect::Tx(INT, want),
    );

    // A second client gets the next port.
    let c2 = (CLIENT, 44001);
    let syn2 = Pkt::tcp(c2, vip, SYN);
    let s2 = (SNAT_IP, SNAT_FIRST_PORT + 1);
    let want = to_int(APP_MAC, &syn2.clone().natted(s2, m));
    lab.c(
        "second client -> SNAT:1025",
        EXT,
        &from_router(&syn2),
        Expect::Tx(INT, want),
    );

    // Replies to the SNAT address that match nothing.
    let p = Pkt::tcp(m, (SNAT_IP, 5000), ACK);
    lab.c(
        "reply to unused SNAT port",
        INT,
        &from_int(APP_MAC, &p),
        Expect::Drop(R::NoSession),
    );
    let p = Pkt::udp(m, s, b"x");
    lab.c(
        "UDP to SNAT address",
        INT,
        &from_int(APP_MAC, &p),
        Expect::Drop(R::NoSession),
    );
    let p = Pkt::tcp((APP, 81), s, ACK);
    lab.c(
        "reply from wrong member port",
        INT,
        &from_int(APP_MAC, &p),
        Expect::Drop(R::NoSession),
    );

    // Expiry frees the SNAT port: the established session idles out.
    lab.set_time(T0 + TCP_EST_MS);
    lab.maintain();
    assert!(lab.sessions(0).is_empty());
    lab.c(
        "reply after expiry",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Drop(R::NoSession),
    );

    // Ports are handed out FIFO: 1026, 1027, ... 65535, then the freed 1024
    // and 1025 come back. Cycle through them by RST + SYN on one client port
    // (a SYN on a closed session replaces it and frees its port).
    let c3 = (CLIENT, 44002);
    let syn3 = from_router(&Pkt::tcp(c3, vip, SYN));
    let rst3 = from_router(&Pkt::tcp(c3, vip, RST | ACK));
    let n_ports = u32::from(u16::MAX - SNAT_FIRST_PORT) + 1;
    let mut expect_port = SNAT_FIRST_PORT + 2;
    for i in 0..n_ports {
        let (v, out) = lab.run(0, EXT, &syn3, false);
        assert_eq!(
            v,
            sluice_dataplane::worker::Verdict::Tx(INT),
            "allocation {i}"
        );
        let got = u16::from_be_bytes([out[34], out[35]]);
        assert_eq!(got, expect_port, "allocation {i}");
        let (v, _) = lab.run(0, EXT, &rst3, false);
        assert_eq!(v, sluice_dataplane::worker::Verdict::Tx(INT));
        expect_port = if expect_port == u16::MAX {
            SNAT_FIRST_PORT
        } else {
            expect_port + 1
        };
        if i + 3 == n_ports {
            break; // the next one is 1024 again
        }
    }
    assert_eq!(expect_port, SNAT_FIRST_PORT);
    let want = to_int(APP_MAC, &Pkt::tcp(c3, vip, SYN).natted(s, m));
    lab.c("freed port 1024 reused", EXT, &syn3, Expect::Tx(INT, want));
    let sa3 = Pkt::tcp(m, s, SYN | ACK);
    let want = to_router(&sa3.clone().natted(vip, c3));
    lab.c(
        "reply to reused port reaches the new client",
        INT,
        &from_int(APP_MAC, &sa3),
        Expect::Tx(EXT, want),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

#[test]
fn udp_dest_nat_both_directions() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 5353);
    let vip = (VIP_DNS, 53);
    let m = (DNS, 53);

    let q = Pkt::udp(c, vip, b"\x12\x34\x01\x00\x00\x01query");
    let want = to_int(DNS_MAC, &q.clone().natted(c, m));
    let d = lab.c(
        "UDP query -> member",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_created", 1)]);
    let r = Pkt::udp(m, c, b"\x12\x34\x81\x80answer-with-odd-len");
    let want = to_router(&r.clone().natted(vip, c));
    lab.c(
        "UDP answer -> client",
        INT,
        &from_int(DNS_MAC, &r),
        Expect::Tx(EXT, want),
    );

    // No checksum stays no checksum, both ways.
    let q0 = Pkt::udp(c, vip, b"zero").no_udp_checksum();
    let want = to_int(DNS_MAC, &q0.clone().natted(c, m));
    assert_eq!(&want[14 + 26..14 + 28], &[0, 0]);
    lab.c(
        "UDP checksum 0 forward",
        EXT,
        &from_router(&q0),
        Expect::Tx(INT, want),
    );
    let r0 = Pkt::udp(m, c, b"zero back").no_udp_checksum();
    let want = to_router(&r0.clone().natted(vip, c));
    lab.c(
        "UDP checksum 0 reverse",
        INT,
        &from_int(DNS_MAC, &r0),
        Expect::Tx(EXT, want),
    );

    // A payload whose translated checksum computes to 0 must be sent as 0xffff.
    let c2 = (CLIENT, 5354);
    let payload = (0..=u16::MAX)
        .map(|v| v.to_be_bytes())
        .find(|p| {
            let b = Pkt::udp(c2, m, p).ttl(63).bytes();
            b[26..28] == [0xff, 0xff]
        })
        .expect("some payload sums to zero");
    let q = Pkt::udp(c2, vip, &payload);
    let want = to_int(DNS_MAC, &q.clone().natted(c2, m));
    assert_eq!(&want[14 + 26..14 + 28], &[0xff, 0xff]);
    lab.c(
        "UDP translated checksum 0 sent as 0xffff",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );

    // UDP idle timeout.
    lab.set_time(T0 + UDP_MS - 1);
    lab.maintain();
    assert_eq!(lab.sessions(0).len(), 2);
    lab.set_time(T0 + UDP_MS);
    lab.maintain();
    assert!(lab.sessions(0).is_empty());
    lab.c(
        "UDP answer after expiry",
        INT,
        &from_int(DNS_MAC, &r),
        Expect::Drop(R::NotForUs),
    );
    // Any UDP datagram opens a new session.
    let want = to_int(DNS_MAC, &q.clone().natted(c2, m));
    lab.c(
        "UDP query after expiry reopens",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

/// A server's `idle_timeout` shorter than every global timeout (and than the
/// second of early expiry) still expires its sessions on the packet path,
/// without the sweep: the quick "idle for less than any timeout" test must
/// count it.
#[test]
fn a_short_server_idle_timeout_expires_on_the_packet_path() {
    let cfg = variant(&[("name = \"dns\"", "name = \"dns\"\nidle_timeout = \"300ms\"")]);
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64);
    lab.set_time(T0);
    let (c, vip, m) = ((CLIENT, 5353), (VIP_DNS, 53), (DNS, 53));
    let q = Pkt::udp(c, vip, b"query");
    let want = to_int(DNS_MAC, &q.clone().natted(c, m));
    lab.c("query", EXT, &from_router(&q), Expect::Tx(INT, want));
    let r = Pkt::udp(m, c, b"answer");
    lab.set_time(T0 + 250);
    let want = to_router(&r.clone().natted(vip, c));
    lab.c(
        "answer within 300 ms",
        INT,
        &from_int(DNS_MAC, &r),
        Expect::Tx(EXT, want),
    );
    lab.set_time(T0 + 250 + 350);
    lab.c(
        "answer 350 ms later",
        INT,
        &from_int(DNS_MAC, &r),
        Expect::Drop(R::NotForUs),
    );
}

// ---------------------------------------------------------------------------
// Port filtering and addresses
// ---------------------------------------------------------------------------

#[test]
fn port_filter_and_unowned_addresses() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 45000);
    let cases: Vec<(&str, Pkt, R)> = vec![
        (
            "TCP to VIP port 81",
            Pkt::tcp(c, (VIP_WEB, 81), SYN),
            R::NoVirtualServer,
        ),
        (
            "UDP to TCP-only VIP",
            Pkt::udp(c, (VIP_WEB, 80), b"x"),
            R::NoVirtualServer,
        ),
        (
            "TCP to UDP-only VIP",
            Pkt::tcp(c, (VIP_DNS, 53), SYN),
            R::NoVirtualServer,
        ),
        (
            "UDP to TCP port-0 VIP",
            Pkt::udp(c, (VIP_ANY, 53), b"x"),
            R::NoVirtualServer,
        ),
        (
            "GRE to VIP",
            Pkt::raw(CLIENT, VIP_WEB, 47, &[0; 8]),
            R::NoVirtualServer,
        ),
        (
            "TCP to unowned address",
            Pkt::tcp(c, (Ipv4Addr::new(198, 51, 100, 99), 80), SYN),
            R::NotForUs,
        ),
        (
            "UDP to unowned address",
            Pkt::udp(c, (Ipv4Addr::new(8, 8, 8, 8), 53), b"x"),
            R::NotForUs,
        ),
        (
            "GRE to unowned address",
            Pkt::raw(CLIENT, Ipv4Addr::new(8, 8, 8, 8), 47, &[0; 8]),
            R::NotForUs,
        ),
    ];
    for (name, p, r) in cases {
        lab.c(name, EXT, &from_router(&p), Expect::Drop(r));
    }
    // The switch's own addresses: the kernel interface's (exception path).
    for (name, p) in [
        ("TCP to interface address", Pkt::tcp(c, (EXT_IP, 22), SYN)),
        (
            "UDP to int interface address",
            Pkt::udp(c, (INT_IP, 161), b"x"),
        ),
    ] {
        lab.c(name, EXT, &from_router(&p), Expect::Kernel);
    }
    assert!(lab.sessions(0).is_empty());
}

// ---------------------------------------------------------------------------
// ICMP errors
// ---------------------------------------------------------------------------

#[test]
fn icmp_port_unreachable_from_member_dest_nat_udp() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 5353);
    let vip = (VIP_DNS, 53);
    let m = (DNS, 53);
    let q = Pkt::udp(c, vip, b"question?").id(0x7777);
    let sent = q.clone().natted(c, m); // what the member received
    lab.c(
        "UDP query",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, to_int(DNS_MAC, &sent)),
    );

    for (name, quote) in [("full quote", usize::MAX), ("IP + 8 bytes", 28)] {
        let err = Pkt::icmp_error(DNS, CLIENT, 3, 3, [0; 4], &sent, quote).ttl(64);
        // Towards the client: from the VIP, quoting the packet as the client sent it.
        let orig = sent.clone().endpoints(c, vip); // TTL stays as quoted (63)
        let want = to_router(&Pkt::icmp_error(VIP_DNS, CLIENT, 3, 3, [0; 4], &orig, quote).ttl(63));
        let d = lab.c(
            &format!("port unreachable from member, {name}"),
            INT,
            &from_int(DNS_MAC, &err),
            Expect::Tx(EXT, want),
        );
        assert_deltas(&d, &[("icmp_errors_translated", 1), ("forwarded", 1)]);
    }
    // The quoted UDP checksum 0 stays 0.
    let q0 = Pkt::udp(c, vip, b"q0").no_udp_checksum();
    let sent0 = q0.clone().natted(c, m);
    lab.c(
        "UDP query without checksum",
        EXT,
        &from_router(&q0),
        Expect::Tx(INT, to_int(DNS_MAC, &sent0)),
    );
    let err = Pkt::icmp_error(DNS, CLIENT, 3, 3, [0; 4], &sent0, usize::MAX);
    let orig = sent0.clone().endpoints(c, vip);
    let want =
        to_router(&Pkt::icmp_error(VIP_DNS, CLIENT, 3, 3, [0; 4], &orig, usize::MAX).ttl(63));
    lab.c(
        "port unreachable quoting checksum-less UDP",
        INT,
        &from_int(DNS_MAC, &err),
        Expect::Tx(EXT, want),
    );

    // IP options on the quoted header and on the outer header.
    let ra = [0x94, 0x04, 0, 0]; // router alert
    let qo = Pkt::udp((CLIENT, 5360), vip, b"with options").options(&[0x01, 0x01, 0x01, 0x00]);
    let sent_o = qo.clone().natted((CLIENT, 5360), m);
    lab.c(
        "UDP query with IP options",
        EXT,
        &from_router(&qo),
        Expect::Tx(INT, to_int(DNS_MAC, &sent_o)),
    );
    for quote in [usize::MAX, 24 + 8] {
        let err = Pkt::icmp_error(DNS, CLIENT, 3, 3, [0; 4], &sent_o, quote).options(&ra);
        let orig = sent_o.clone().endpoints((CLIENT, 5360), vip);
        let want = to_router(
            &Pkt::icmp_error(VIP_DNS, CLIENT, 3, 3, [0; 4], &orig, quote)
                .options(&ra)
                .ttl(63),
        );
        lab.c(
            &format!("port unreachable with options inside and out, quote {quote}"),
            INT,
            &from_int(DNS_MAC, &err),
            Expect::Tx(EXT, want),
        );
    }

    // A router on the member side (not the member itself) keeps its address.
    let hop = Ipv4Addr::new(10, 20, 0, 254);
    let hop_mac: Mac = [0x02, 0, 0, 0, 0, 0xee];
    let err = Pkt::icmp_error(hop, CLIENT, 11, 0, [0; 4], &sent, usize::MAX);
    let orig = sent.clone().endpoints(c, vip);
    let want = to_router(&Pkt::icmp_error(hop, CLIENT, 11, 0, [0; 4], &orig, usize::MAX).ttl(63));
    lab.c(
        "time exceeded from member-side router",
        INT,
        &from_int(hop_mac, &err),
        Expect::Tx(EXT, want),
    );
}

#[test]
fn icmp_frag_needed_from_client_side_router() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 40000);
    let vip = (VIP_WEB, 80);
    let m = (WEB[0], 8080);
    let syn = Pkt::tcp(c, vip, SYN);
    lab.c(
        "SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(WEB_MAC[0], &syn.clone().natted(c, m))),
    );
    let data = Pkt::tcp(m, c, ACK | PSH).payload(&[0x55; 200]);
    let out = data.clone().natted(vip, c); // what went to the client
    lab.c(
        "member data",
        INT,
        &from_int(WEB_MAC[0], &data),
        Expect::Tx(EXT, to_router(&out)),
    );

    let mtu = [0, 0, 0x05, 0x78]; // next-hop MTU 1400
    for (name, quote) in [
        ("full quote", usize::MAX),
        ("IP + 8 bytes", 28),
        ("IP + 20 bytes", 40),
    ] {
        let seen = out.clone().ttl(out.ttl - 1); // a router further on decremented it
        let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 4, mtu, &seen, quote).ttl(250);
        let orig = seen.clone().endpoints(m, c);
        let want = to_int(
            WEB_MAC[0],
            &Pkt::icmp_error(ROUTER, WEB[0], 3, 4, mtu, &orig, quote).ttl(249),
        );
        let d = lab.c(
            &format!("frag needed from router, {name}"),
            EXT,
            &from_router(&err),
            Expect::Tx(INT, want),
        );
        assert_deltas(&d, &[("icmp_errors_translated", 1)]);
    }
    // The client itself reporting an error: source becomes the client-side
    // address of the session (the client itself for Dest-NAT).
    let err = Pkt::icmp_error(CLIENT, VIP_WEB, 3, 3, [0; 4], &out, usize::MAX);
    let orig = out.clone().endpoints(m, c);
    let want = to_int(
        WEB_MAC[0],
        &Pkt::icmp_error(CLIENT, WEB[0], 3, 3, [0; 4], &orig, usize::MAX).ttl(63),
    );
    lab.c(
        "unreachable from the client",
        EXT,
        &from_router(&err),
        Expect::Tx(INT, want),
    );

    // Errors that cannot be translated.
    let other = Pkt::tcp((VIP_WEB, 80), (CLIENT, 40999), ACK);
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 4, mtu, &other, usize::MAX);
    lab.c(
        "frag needed, no session",
        EXT,
        &from_router(&err),
        Expect::Drop(R::IcmpNoSession),
    );
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 4, mtu, &out, usize::MAX).ttl(1);
    lab.c(
        "ICMP error with TTL 1",
        EXT,
        &from_router(&err),
        Expect::Drop(R::TtlExceeded),
    );
    let echo = Pkt::echo_request(VIP_WEB, CLIENT, 1, 1, b"ping");
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 1, [0; 4], &echo, usize::MAX);
    lab.c(
        "ICMP error quoting ICMP",
        EXT,
        &from_router(&err),
        Expect::Drop(R::IcmpUnsupported),
    );
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 4, mtu, &out, 22);
    lab.c(
        "ICMP error quoting 2 transport bytes",
        EXT,
        &from_router(&err),
        Expect::Drop(R::Truncated),
    );
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 4, mtu, &out, 16);
    lab.c(
        "ICMP error quoting a partial IP header",
        EXT,
        &from_router(&err),
        Expect::Drop(R::Truncated),
    );
    let mut bad_quote = out.bytes();
    bad_quote[0] = 0x65; // version 6
    let err = Pkt::icmp(ROUTER, VIP_WEB, 3, 4, mtu, &bad_quote);
    lab.c(
        "ICMP error quoting a non-IPv4 header",
        EXT,
        &from_router(&err),
        Expect::Drop(R::Malformed),
    );
    let redirect = Pkt::icmp_error(ROUTER, VIP_WEB, 5, 1, [198, 51, 100, 253], &out, usize::MAX);
    lab.c(
        "ICMP redirect to VIP",
        EXT,
        &from_router(&redirect),
        Expect::Drop(R::LocalUnhandled),
    );
}

#[test]
fn icmp_errors_both_nat() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 46000);
    let vip = (VIP_BOTH, 80);
    let m = (APP, 80);
    let s = (SNAT_IP, SNAT_FIRST_PORT);
    let syn = Pkt::tcp(c, vip, SYN).payload(b"fast-open");
    let sent = syn.clone().natted(s, m);
    lab.c(
        "Both-NAT SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(APP_MAC, &sent)),
    );

    // The member rejects: error to the SNAT address, translated to the client.
    let err = Pkt::icmp_error(APP, SNAT_IP, 3, 3, [0; 4], &sent, usize::MAX);
    let orig = sent.clone().endpoints(c, vip);
    let want =
        to_router(&Pkt::icmp_error(VIP_BOTH, CLIENT, 3, 3, [0; 4], &orig, usize::MAX).ttl(63));
    lab.c(
        "member error to SNAT address -> client",
        INT,
        &from_int(APP_MAC, &err),
        Expect::Tx(EXT, want),
    );

    // A client-side router's error about a reply: towards the member, from the SNAT address?
    // The outer source is the router and stays so; the quote is rewritten.
    let sa = Pkt::tcp(m, s, SYN | ACK);
    let out = sa.clone().natted(vip, c);
    lab.c(
        "Both-NAT reply",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, to_router(&out)),
    );
    let mtu = [0, 0, 0x05, 0x00];
    let err = Pkt::icmp_error(ROUTER, VIP_BOTH, 3, 4, mtu, &out, usize::MAX);
    let orig = out.clone().endpoints(m, s);
    let want = to_int(
        APP_MAC,
        &Pkt::icmp_error(ROUTER, APP, 3, 4, mtu, &orig, usize::MAX).ttl(63),
    );
    lab.c(
        "frag needed about a Both-NAT reply -> member",
        EXT,
        &from_router(&err),
        Expect::Tx(INT, want),
    );
    // The client itself: outer source becomes the SNAT address.
    let err = Pkt::icmp_error(CLIENT, VIP_BOTH, 3, 3, [0; 4], &out, usize::MAX);
    let want = to_int(
        APP_MAC,
        &Pkt::icmp_error(SNAT_IP, APP, 3, 3, [0; 4], &orig, usize::MAX).ttl(63),
    );
    lab.c(
        "client error about a Both-NAT reply -> member",
        EXT,
        &from_router(&err),
        Expect::Tx(INT, want),
    );
}

// ---------------------------------------------------------------------------
// L2 and malformed input
// ---------------------------------------------------------------------------

#[test]
fn l2_and_malformed_frames() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 47000);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
    let good = from_router(&syn);
    let l3 = 14;
    let mut cases: Vec<(&str, Vec<u8>, R)> = Vec::new();

    let mut f = Vec::new();
    f.extend_from_slice(&EXT_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&ETH_VLAN.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x64]);
    f.extend_from_slice(&ETH_IPV4.to_be_bytes());
    f.extend_from_slice(&syn.bytes());
    cases.push(("VLAN-tagged frame", f.clone(), R::VlanTagged));
    let mut qinq = f[..12].to_vec();
    for _ in 0..3 {
        qinq.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    qinq.extend_from_slice(&ETH_IPV4.to_be_bytes());
    qinq.extend_from_slice(&syn.bytes());
    cases.push(("three VLAN tags", qinq, R::Malformed));
    cases.push((
        "IPv6 whose payload length runs past the frame",
        eth(EXT_MAC, ROUTER_MAC, ETH_IPV6, &[0x60; 60]),
        R::Truncated,
    ));
    cases.push((
        "LLDP",
        eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], ROUTER_MAC, 0x88cc, &[0; 46]),
        R::UnsupportedEthertype,
    ));
    cases.push(("from our own MAC", syn.frame(EXT_MAC, EXT_MAC), R::OwnFrame));
    cases.push((
        "to another unicast MAC",
        syn.frame([0x02, 0, 0, 0, 0, 0x99], ROUTER_MAC),
        R::OtherMac,
    ));
    cases.push((
        "to the other port's MAC",
        syn.frame(INT_MAC, ROUTER_MAC),
        R::OtherMac,
    ));
    cases.push(("truncated Ethernet", good[..13].to_vec(), R::Truncated));
    cases.push(("empty frame", Vec::new(), R::Truncated));
    cases.push((
        "truncated IP header",
        good[..l3 + 19].to_vec(),
        R::Truncated,
    ));
    // Length fields.
    let mut f = syn.bytes();
    f[2..4].copy_from_slice(&200u16.to_be_bytes());
    let mut fr = eth(EXT_MAC, ROUTER_MAC, ETH_IPV4, &f);
    refill_ip_checksum(&mut fr, l3);
    cases.push(("IP total length beyond frame", fr, R::Truncated));
    let mut f = syn.bytes();
    f[2..4].copy_from_slice(&30u16.to_be_bytes());
    let mut fr = eth(EXT_MAC, ROUTER_MAC, ETH_IPV4, &f);
    refill_ip_checksum(&mut fr, l3);
    cases.push(("TCP truncated by IP total length", fr, R::Truncated));
    let mut f = syn.bytes();
    f[2..4].copy_from_slice(&16u16.to_be_bytes());
    let mut fr = eth(EXT_MAC, ROUTER_MAC, ETH_IPV4, &f);
    refill_ip_checksum(&mut fr, l3);
    cases.push(("IP total length below header length", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3] = 0x44;
    refill_ip_checksum(&mut fr, l3);
    cases.push(("IHL 4", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3] = 0x4f; // 60-byte header in a 40-byte packet
    cases.push(("IHL beyond total length", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3] = 0x55;
    refill_ip_checksum(&mut fr, l3);
    cases.push(("IP version 5", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3] = 0x65;
    cases.push(("IP version 6 in an IPv4 ethertype", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3 + 10] ^= 0x01;
    cases.push(("bad IP checksum", fr, R::IpChecksum));
    let mut fr = good.clone();
    fr[l3 + 8] = 7; // TTL changed without fixing the checksum
    cases.push(("TTL changed, checksum stale", fr, R::IpChecksum));
    // (Fragments: golden_frag.rs.)
    let mut fr = good.clone();
    fr[l3 + 20 + 12] = 0x40; // TCP data offset 4
    cases.push(("TCP data offset 4", fr, R::Malformed));
    let mut fr = good.clone();
    fr[l3 + 20 + 12] = 0x60; // 24-byte header in a 20-byte segment
    cases.push(("TCP data offset beyond segment", fr, R::Truncated));
    let u = Pkt::udp(c, (VIP_DNS, 53), b"abcd");
    let mut fr = from_router(&u);
    fr[l3 + 20 + 4..l3 + 20 + 6].copy_from_slice(&7u16.to_be_bytes());
    cases.push(("UDP length 7", fr, R::Malformed));
    let mut fr = from_router(&u);
    fr[l3 + 20 + 4..l3 + 20 + 6].copy_from_slice(&13u16.to_be_bytes());
    cases.push(("UDP length beyond IP payload", fr, R::Truncated));

    for (name, frame, r) in cases {
        lab.c(name, EXT, &frame, Expect::Drop(r));
    }
    assert!(lab.sessions(0).is_empty());

    // IP options are carried through untouched.
    let opt = Pkt::tcp(c, (VIP_WEB, 80), SYN).options(&[0x94, 0x04, 0, 0]); // router alert
    let want = to_int(WEB_MAC[0], &opt.clone().natted(c, (WEB[0], 8080)));
    lab.c(
        "SYN with IP options",
        EXT,
        &from_router(&opt),
        Expect::Tx(INT, want),
    );
    // Frames with a broadcast destination MAC are still accepted.
    let bc = Pkt::tcp((CLIENT, 47001), (VIP_WEB, 80), SYN);
    let want = to_int(
        WEB_MAC[1],
        &bc.clone().natted((CLIENT, 47001), (WEB[1], 8080)),
    );
    lab.c(
        "SYN to broadcast MAC",
        EXT,
        &bc.frame(BCAST, ROUTER_MAC),
        Expect::Tx(INT, want),
    );
    // Nonzero Ethernet padding stays as it was.
    let mut padded = from_router(&Pkt::tcp((CLIENT, 47002), (VIP_WEB, 80), SYN));
    padded[54..60].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
    let mut want = to_int(
        WEB_MAC[2],
        &Pkt::tcp((CLIENT, 47002), (VIP_WEB, 80), SYN).natted((CLIENT, 47002), (WEB[2], 8080)),
    );
    want[54..60].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
    lab.c(
        "SYN with nonzero padding",
        EXT,
        &padded,
        Expect::Tx(INT, want),
    );
}

// ---------------------------------------------------------------------------
// Multiple workers
// ---------------------------------------------------------------------------

/// A client (from 203.0.113.`from`) whose sessions worker `owner` of 2 owns:
/// ownership follows the client's address.
fn client_owned_by(owner: u16, from: u8) -> Ipv4Addr {
    (from..=254)
        .map(|i| Ipv4Addr::new(203, 0, 113, i))
        .find(|ip| client_owner(*ip, 2) == owner)
        .unwrap()
}

#[test]
fn two_workers_redirect_and_ownership() {
    let mut lab = Lab::new(2, 64);
    for w in 0..2u16 {
        let other = 1 - w;
        let (wi, oi) = (usize::from(w), usize::from(other));

        // Dest-NAT: a SYN arriving on w from a client owned by the other worker.
        let (cip, cport) = (client_owned_by(other, 10), 50000 + w * 1000);
        let c = (cip, cport);
        let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
        let d = lab.case(
            &format!("w{w}: foreign client SYN"),
            wi,
            EXT,
            &from_router(&syn),
            false,
            Expect::Redirect(other),
        );
        assert_deltas(&d, &[("sessions_created", 0)]);
        assert!(lab.session(wi, cip, cport).is_none());
        // The owner processes the handed-over frame.
        let want = to_int(WEB_MAC[0], &syn.clone().natted(c, (WEB[0], 8080)));
        let d = lab.case(
            &format!("w{other}: redirected SYN"),
            oi,
            EXT,
            &from_router(&syn),
            true,
            Expect::Tx(INT, want),
        );
        assert_deltas(&d, &[("sessions_created", 1)]);
        assert!(lab.session(oi, cip, cport).is_some());
        // The member's reply lands on w: redirected by client_owner(client).
        let sa = Pkt::tcp((WEB[0], 8080), c, SYN | ACK);
        lab.case(
            &format!("w{w}: Dest-NAT reply"),
            wi,
            INT,
            &from_int(WEB_MAC[0], &sa),
            false,
            Expect::Redirect(other),
        );
        let want = to_router(&sa.clone().natted((VIP_WEB, 80), c));
        lab.case(
            &format!("w{other}: Dest-NAT reply on owner"),
            oi,
            INT,
            &from_int(WEB_MAC[0], &sa),
            false,
            Expect::Tx(EXT, want),
        );
        // A client owned by w is served by w directly.
        // (UDP, so the web round-robin cursors stay predictable.)
        let own = (client_owned_by(w, 10), 52000 + w * 1000);
        let q = Pkt::udp(own, (VIP_DNS, 53), b"q");
        let (v, _) = lab.run(wi, EXT, &from_router(&q), false);
        assert_eq!(
            v,
            sluice_dataplane::worker::Verdict::Tx(INT),
            "w{w}: own client"
        );

        // Both-NAT: the owner of the client allocates a SNAT port it owns.
        let (cip, cport) = (client_owned_by(other, 10), 54000 + w * 1000);
        let c = (cip, cport);
        let syn = Pkt::tcp(c, (VIP_BOTH, 80), SYN);
        lab.case(
            &format!("w{w}: Both-NAT SYN"),
            wi,
            EXT,
            &from_router(&syn),
            false,
            Expect::Redirect(other),
        );
        let sport = SNAT_FIRST_PORT + other; // first port of the owner's ring
        assert_eq!(snat_port_owner(sport, 2), other);
        let want = to_int(APP_MAC, &syn.clone().natted((SNAT_IP, sport), (APP, 80)));
        lab.case(
            &format!("w{other}: Both-NAT SYN on owner"),
            oi,
            EXT,
            &from_router(&syn),
            true,
            Expect::Tx(INT, want),
        );
        let sa = Pkt::tcp((APP, 80), (SNAT_IP, sport), SYN | ACK);
        lab.case(
            &format!("w{w}: reply to SNAT port of w{other}"),
            wi,
            INT,
            &from_int(APP_MAC, &sa),
            false,
            Expect::Redirect(other),
        );
        let want = to_router(&sa.clone().natted((VIP_BOTH, 80), c));
        lab.case(
            &format!("w{other}: reply to own SNAT port"),
            oi,
            INT,
            &from_int(APP_MAC, &sa),
            true,
            Expect::Tx(EXT, want),
        );
        // The owner of a SNAT port is decided by the port, not the address owner.
        let p = Pkt::tcp((APP, 80), (SNAT_IP, SNAT_FIRST_PORT + w + 10), ACK);
        lab.case(
            &format!("w{w}: reply to unused own SNAT port"),
            wi,
            INT,
            &from_int(APP_MAC, &p),
            false,
            Expect::Drop(R::NoSession),
        );

        // ICMP errors follow the session's owner.
        let sent = Pkt::tcp((APP, 80), (SNAT_IP, sport), ACK).natted((VIP_BOTH, 80), c);
        let err = Pkt::icmp_error(ROUTER, VIP_BOTH, 3, 4, [0, 0, 5, 0], &sent, usize::MAX);
        lab.case(
            &format!("w{w}: ICMP error about w{other}'s session"),
            wi,
            EXT,
            &from_router(&err),
            false,
            Expect::Redirect(other),
        );
        let orig = sent.clone().endpoints((APP, 80), (SNAT_IP, sport));
        let want = to_int(
            APP_MAC,
            &Pkt::icmp_error(ROUTER, APP, 3, 4, [0, 0, 5, 0], &orig, usize::MAX).ttl(63),
        );
        lab.case(
            &format!("w{other}: ICMP error on owner"),
            oi,
            EXT,
            &from_router(&err),
            true,
            Expect::Tx(INT, want),
        );
        let err = Pkt::icmp_error(
            APP,
            SNAT_IP,
            3,
            3,
            [0; 4],
            &Pkt::tcp((SNAT_IP, sport), (APP, 80), ACK),
            usize::MAX,
        );
        lab.case(
            &format!("w{w}: member ICMP about w{other}'s SNAT port"),
            wi,
            INT,
            &from_int(APP_MAC, &err),
            false,
            Expect::Redirect(other),
        );

        // Packets that need no session are answered where they arrive.
        let req = Pkt::echo_request(CLIENT, VIP_WEB, 9, 9, b"hello");
        let (v, _) = lab.run(wi, EXT, &from_router(&req), false);
        assert_eq!(v, sluice_dataplane::worker::Verdict::Tx(EXT));
        let a = arp_frame(
            BCAST, ROUTER_MAC, ARP_REQ, ROUTER_MAC, ROUTER, [0; 6], VIP_WEB,
        );
        let (v, _) = lab.run(wi, EXT, &a, false);
        assert_eq!(v, sluice_dataplane::worker::Verdict::Tx(EXT));
        // Port filtering happens before redirection.
        let p = Pkt::tcp((client_owned_by(other, 10), 56000), (VIP_WEB, 81), SYN);
        lab.case(
            &format!("w{w}: port filter before redirect"),
            wi,
            EXT,
            &from_router(&p),
            false,
            Expect::Drop(R::NoVirtualServer),
        );
    }
    for w in 0..2 {
        lab.workers[w].sessions().check_consistency().unwrap();
        // Every session sits on the worker that owns it.
        for s in lab.sessions(w) {
            assert_eq!(client_owner(Ipv4Addr::from(s.client), 2), w as u16);
            if s.vs == VS_BOTH {
                assert_eq!(snat_port_owner(s.sport, 2), w as u16);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Capacity
// ---------------------------------------------------------------------------

#[test]
fn session_table_full() {
    let mut lab = Lab::new(1, 2);
    let vip = (VIP_WEB, 80);
    for (i, cport) in [48000u16, 48001].into_iter().enumerate() {
        let syn = Pkt::tcp((CLIENT, cport), vip, SYN);
        let want = to_int(
            WEB_MAC[i],
            &syn.clone().natted((CLIENT, cport), (WEB[i], 8080)),
        );
        lab.c(
            &format!("session {i}"),
            EXT,
            &from_router(&syn),
            Expect::Tx(INT, want),
        );
    }
    // Both answered: established, so a new SYN cannot push them out (only
    // half-open sessions give way, see golden_flood.rs).
    for (i, cport) in [48000u16, 48001].into_iter().enumerate() {
        let c = (CLIENT, cport);
        let sa = Pkt::tcp((WEB[i], 8080), c, SYN | ACK);
        let want = to_router(&sa.clone().natted(vip, c));
        lab.c(
            &format!("session {i} reply"),
            INT,
            &from_int(WEB_MAC[i], &sa),
            Expect::Tx(EXT, want),
        );
        let ack = Pkt::tcp(c, vip, ACK);
        let want = to_int(WEB_MAC[i], &ack.clone().natted(c, (WEB[i], 8080)));
        lab.c(
            &format!("session {i} ACK"),
            EXT,
            &from_router(&ack),
            Expect::Tx(INT, want),
        );
    }
    let third = Pkt::tcp((CLIENT, 48002), vip, SYN);
    let d = lab.c(
        "third session refused",
        EXT,
        &from_router(&third),
        Expect::Drop(R::SessionTableFull),
    );
    assert_deltas(&d, &[("sessions_created", 0)]);
    let both = Pkt::tcp((CLIENT, 48003), (VIP_BOTH, 80), SYN);
    lab.c(
        "Both-NAT refused when full",
        EXT,
        &from_router(&both),
        Expect::Drop(R::SessionTableFull),
    );
    let udp = Pkt::udp((CLIENT, 48004), (VIP_DNS, 53), b"q");
    lab.c(
        "UDP refused when full",
        EXT,
        &from_router(&udp),
        Expect::Drop(R::SessionTableFull),
    );
    // The existing sessions keep working.
    for (i, cport) in [48000u16, 48001].into_iter().enumerate() {
        let c = (CLIENT, cport);
        let data = Pkt::tcp(c, vip, ACK | PSH).payload(b"more");
        let want = to_int(WEB_MAC[i], &data.clone().natted(c, (WEB[i], 8080)));
        lab.c(
            &format!("session {i} data"),
            EXT,
            &from_router(&data),
            Expect::Tx(INT, want),
        );
    }
    // Once one expires, a new one fits, and the refused Both-NAT attempt
    // did not leak its SNAT port (the first allocation is still 1024).
    lab.set_time(T0 + TCP_EST_MS);
    lab.maintain();
    assert!(lab.sessions(0).is_empty());
    let want = to_int(
        APP_MAC,
        &both.clone().natted((SNAT_IP, SNAT_FIRST_PORT), (APP, 80)),
    );
    lab.c(
        "Both-NAT after room freed",
        EXT,
        &from_router(&both),
        Expect::Tx(INT, want),
    );
    lab.workers[0].sessions().check_consistency().unwrap();
}

// ---------------------------------------------------------------------------
// Regressions and maintenance
// ---------------------------------------------------------------------------

/// A (spoofed) client using our SNAT address as its source gets a plain
/// Dest-NAT session; when it ends, its client port must not be "returned"
/// to the SNAT port ring (it was never taken from it). Before the fix in
/// `worker::release_snat` this tripped the ring's debug assertion (and in
/// release builds would have corrupted the ring, handing out ports twice).
#[test]
fn spoofed_snat_source_does_not_free_snat_ports() {
    let mut lab = Lab::new(1, 16);
    let c = (SNAT_IP, 30000);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
    lab.c(
        "SYN from our SNAT address to a Dest-NAT VIP is refused",
        EXT,
        &from_router(&syn),
        Expect::Drop(R::SpoofedSource),
    );
    assert!(lab.sessions(0).is_empty());
    // Both-NAT allocation is unaffected: 1024, then 1025.
    for (i, cport) in [30001u16, 30002].into_iter().enumerate() {
        let syn = Pkt::tcp((CLIENT, cport), (VIP_BOTH, 80), SYN);
        let s = (SNAT_IP, SNAT_FIRST_PORT + i as u16);
        let want = to_int(APP_MAC, &syn.clone().natted(s, (APP, 80)));
        lab.c(
            &format!("Both-NAT allocation {i}"),
            EXT,
            &from_router(&syn),
            Expect::Tx(INT, want),
        );
    }
}

#[test]
fn maintenance_requests_arp_for_unresolved_members() {
    let mut lab = Lab::new(2, 16);
    lab.set_time(T0);
    lab.workers[1].maintain(16);
    assert_eq!(
        lab.workers[1].pop_neighbor_request(),
        None,
        "only worker 0 refreshes"
    );
    lab.workers[0].maintain(16);
    // Static members and the gateway are fresh; only the port-0 member is unknown.
    assert_eq!(
        lab.workers[0].pop_neighbor_request(),
        Some((INT, ANY.into()))
    );
    assert_eq!(lab.workers[0].pop_neighbor_request(), None);
    lab.set_time(T0 + 500);
    lab.workers[0].maintain(16);
    assert_eq!(
        lab.workers[0].pop_neighbor_request(),
        None,
        "at most once a second"
    );
    lab.set_time(T0 + 1000);
    lab.workers[0].maintain(16);
    assert_eq!(
        lab.workers[0].pop_neighbor_request(),
        Some((INT, ANY.into()))
    );

    // The gratuitous ARP the daemon sends at start-up.
    let mut buf = VecBuf::empty();
    assert!(lab.workers[0].write_gratuitous_arp(EXT, VIP_WEB, &mut buf));
    let mut want = BCAST.to_vec();
    want.extend_from_slice(&EXT_MAC);
    want.extend_from_slice(&ETH_ARP.to_be_bytes());
    want.extend_from_slice(&arp(ARP_REQ, EXT_MAC, VIP_WEB, [0; 6], VIP_WEB));
    assert!(
        buf.data() == want.as_slice(),
        "gratuitous ARP\n{}",
        diff(buf.data(), &want)
    );
}

/// Frames held for `hops`, retried `turns` times within one millisecond as
/// the worker loop does: how many ARP requests each hop got.
fn arp_requests_for_held(lab: &mut Lab, hops: &[Ipv4Addr], turns: usize) -> Vec<usize> {
    let mut asked = vec![0; hops.len()];
    let mut buf = VecBuf::new(&[0u8; 60]);
    for _ in 0..turns {
        for hop in hops {
            let v = lab.workers[0].resolve_held(INT, (*hop).into(), &mut buf);
            assert_eq!(
                v,
                Verdict::Hold {
                    port: INT,
                    next_hop: *hop
                }
            );
        }
        while let Some((port, ip)) = lab.workers[0].pop_neighbor_request() {
            assert_eq!(port, INT);
            asked[hops.iter().position(|h| IpAddr::from(*h) == ip).unwrap()] += 1;
        }
    }
    asked
}

#[test]
fn held_frames_ask_each_next_hop_at_most_once_a_second_whatever_collides() {
    // Two hops on one slot of the 256-slot table the limiter used to be
    // (slot = mix64(address) % 256): each one's request evicted the other's.
    use sluice_dataplane::fixedmap::mix64;
    let slot = |ip: Ipv4Addr| mix64(u64::from(u32::from(ip))) % 256;
    let lan: Vec<Ipv4Addr> = (100..=250).map(|i| Ipv4Addr::new(10, 20, 0, i)).collect();
    let (a, b) = lan
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            lan[i + 1..]
                .iter()
                .find(|b| slot(**b) == slot(*a))
                .map(|b| (*a, *b))
        })
        .expect("two colliding addresses in a /24");
    let mut lab = Lab::new(1, 64);
    assert_eq!(arp_requests_for_held(&mut lab, &[a, b], 1000), [1, 1]);
    // A crowd of hops: whatever shares a set, nobody is asked twice.
    let crowd: Vec<Ipv4Addr> = (0..600u32)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20, 0, 0)) + 256 + i))
        .collect();
    let mut lab = Lab::new(1, 64);
    let asked = arp_requests_for_held(&mut lab, &crowd, 50);
    assert!(asked.iter().all(|n| *n <= 1), "{asked:?}");
    assert!(
        asked.iter().filter(|n| **n == 1).count() >= 64,
        "hops were asked"
    );
    // A second later each may be asked again.
    lab.set_time(T0 + 1000);
    assert_eq!(arp_requests_for_held(&mut lab, &[crowd[0]], 1000), [1]);
}

#[test]
fn a_changed_member_mac_is_used_within_the_hop_cache_time() {
    const NEW_MAC: Mac = [0x02, 0, 0, 0, 0, 0x42];
    let mut lab = Lab::new(1, 64);
    let syn = Pkt::tcp((CLIENT, 40100), (VIP_ANY, 443), SYN);
    lab.c(
        "unresolved",
        EXT,
        &from_router(&syn),
        Expect::Held(INT, ANY),
    );
    let reply = arp_frame(INT_MAC, ANY_MAC, ARP_REP, ANY_MAC, ANY, INT_MAC, INT_IP);
    lab.c("learned", INT, &reply, Expect::Kernel);
    let to = |mac: Mac| to_int(mac, &syn.clone().natted((CLIENT, 40100), (ANY, 443)));
    lab.c(
        "to the learned MAC",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to(ANY_MAC)),
    );
    // The member moves to another MAC (a failover of its address).
    let moved = arp_frame(INT_MAC, NEW_MAC, ARP_REP, NEW_MAC, ANY, INT_MAC, INT_IP);
    lab.c("the new MAC is learned", INT, &moved, Expect::Kernel);
    lab.c(
        "the worker's cached hop still has the old one",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to(ANY_MAC)),
    );
    lab.set_time(T0 + 101);
    lab.c(
        "100 ms later: the new MAC",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to(NEW_MAC)),
    );
}

#[test]
fn the_nic_verdict_on_ipv4_checksums_is_taken_where_it_checked() {
    let mut lab = Lab::new(1, 64);
    let c = (CLIENT, 40200);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
    let good = from_router(&syn);
    let mut bad = good.clone();
    bad[14 + 10] ^= 0x01; // the IPv4 header checksum
    let mut run = |frame: &[u8], nic: Option<bool>| {
        let buf = VecBuf::new(frame);
        let mut buf = match nic {
            Some(v) => buf.checked_by_nic(v),
            None => buf,
        };
        lab.workers[0].process(EXT, &mut buf, false)
    };
    assert_eq!(
        run(&bad, None),
        Verdict::Drop(R::IpChecksum),
        "no NIC verdict: checked here"
    );
    assert_eq!(
        run(&good, Some(false)),
        Verdict::Drop(R::IpChecksum),
        "the NIC said bad"
    );
    assert_eq!(
        run(&bad, Some(true)),
        Verdict::Tx(INT),
        "the NIC said good: not checked again"
    );
    // The same flow again: the session the previous SYN made, on web[0].
    let want = to_int(WEB_MAC[0], &syn.clone().natted(c, (WEB[0], 8080)));
    let mut buf = VecBuf::new(&good).checked_by_nic(true);
    assert_eq!(
        lab.workers[0].process(EXT, &mut buf, false),
        Verdict::Tx(INT)
    );
    assert!(
        buf.data() == want.as_slice(),
        "forwarded as usual\n{}",
        diff(buf.data(), &want)
    );
}
