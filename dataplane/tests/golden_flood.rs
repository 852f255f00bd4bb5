//! Golden tests of the SYN-flood defence: half-open sessions are bounded (a
//! quarter of the table), give way to new SYNs, expire after a second under
//! pressure and give up their SNAT ports; established sessions are never
//! touched and a real client's SYN always gets in.
//!
//! Expected frames are built by `common::frame`, independently of the
//! pipeline, and compared byte for byte.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::conntrack::flag;
use sluice_dataplane::service::SNAT_FIRST_PORT;
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::Verdict;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

/// Session slots of the lab worker: half-open limit 16, pressure from 8.
const CAPACITY: u32 = 64;
const HALF_OPEN_LIMIT: u64 = 16;

/// A spoofed source: 100.64.x.y, never a client the test answers.
fn spoofed(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0000 | (i & 0xffff))
}

fn gauge(lab: &Lab, name: &str) -> u64 {
    let st = lab.workers[0].stats();
    match name {
        "embryonic" => st.embryonic.load(Relaxed),
        "embryonic_evicted" => st.embryonic_evicted.load(Relaxed),
        _ => st.sessions_active.load(Relaxed),
    }
}

/// Opens an established web session (SYN, SYN-ACK, ACK) for `cport`; web
/// members go round robin, so `m` is the member it must land on.
fn established(lab: &mut Lab, cport: u16, m: usize) {
    let (c, vip, member) = ((CLIENT, cport), (VIP_WEB, 80), (WEB[m], 8080));
    let syn = Pkt::tcp(c, vip, SYN).seq_ack(100, 0);
    let want = to_int(WEB_MAC[m], &syn.clone().natted(c, member));
    lab.c(
        &format!("{cport}: SYN"),
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    let sa = Pkt::tcp(member, c, SYN | ACK).seq_ack(5000, 101);
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        &format!("{cport}: SYN-ACK"),
        INT,
        &from_int(WEB_MAC[m], &sa),
        Expect::Tx(EXT, want),
    );
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(101, 5001);
    let want = to_int(WEB_MAC[m], &ack.clone().natted(c, member));
    lab.c(
        &format!("{cport}: ACK"),
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
}

/// One spoofed SYN to `vip`; it must be forwarded (a flood is let in, only bounded).
fn flood_syn(lab: &mut Lab, i: u32, vip: (Ipv4Addr, u16)) -> Verdict {
    let syn = Pkt::tcp((spoofed(i), 1024 + (i % 60000) as u16), vip, SYN);
    lab.run(0, EXT, &from_router(&syn), false).0
}

/// Data both ways on established session `cport` on member `m`.
fn still_works(lab: &mut Lab, cport: u16, m: usize) {
    let (c, vip, member) = ((CLIENT, cport), (VIP_WEB, 80), (WEB[m], 8080));
    let data = Pkt::tcp(c, vip, ACK | PSH).seq_ack(101, 5001).payload(b"x");
    let want = to_int(WEB_MAC[m], &data.clone().natted(c, member));
    lab.c(
        &format!("{cport}: data after the flood"),
        EXT,
        &from_router(&data),
        Expect::Tx(INT, want),
    );
    let reply = Pkt::tcp(member, c, ACK | PSH)
        .seq_ack(5001, 102)
        .payload(b"y");
    let want = to_router(&reply.clone().natted(vip, c));
    lab.c(
        &format!("{cport}: reply after the flood"),
        INT,
        &from_int(WEB_MAC[m], &reply),
        Expect::Tx(EXT, want),
    );
}

#[test]
fn a_flood_is_bounded_and_pushes_out_only_half_open_sessions() {
    let mut lab = Lab::new(1, CAPACITY);
    for (k, cport) in (43000..43009u16).enumerate() {
        established(&mut lab, cport, k % 3);
    }
    assert_eq!((gauge(&lab, "sessions"), gauge(&lab, "embryonic")), (9, 0));
    for i in 0..500 {
        let v = flood_syn(&mut lab, i, (VIP_WEB, 80));
        assert_eq!(
            v,
            Verdict::Tx(INT),
            "flood SYN {i} is forwarded, within the bound"
        );
    }
    assert_eq!(gauge(&lab, "embryonic"), HALF_OPEN_LIMIT, "the bound");
    assert_eq!(gauge(&lab, "embryonic_evicted"), 500 - HALF_OPEN_LIMIT);
    assert_eq!(
        gauge(&lab, "sessions"),
        9 + HALF_OPEN_LIMIT,
        "the table never filled"
    );
    for (k, cport) in (43000..43009u16).enumerate() {
        still_works(&mut lab, cport, k % 3);
    }
    // A real client gets in during the flood, and its completed handshake
    // takes it out of the half-open set for good.
    // (Round robin: the 510th choice, after 9 sessions and 500 SYNs.)
    let m = (9 + 500) % 3;
    established(&mut lab, 43100, m);
    for i in 500..1000 {
        flood_syn(&mut lab, i, (VIP_WEB, 80));
    }
    still_works(&mut lab, 43100, m);
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn half_open_sessions_expire_after_a_second_only_under_pressure() {
    let mut lab = Lab::new(1, CAPACITY);
    established(&mut lab, 43000, 0);
    // Three half-open sessions: no pressure, they live out tcp_syn.
    for i in 0..3 {
        flood_syn(&mut lab, i, (VIP_WEB, 80));
    }
    lab.set_time(T0 + 1500);
    lab.maintain();
    assert_eq!(
        gauge(&lab, "embryonic"),
        3,
        "tcp_syn (5 s) applies without pressure"
    );
    // A flood: past 8 half-open sessions, a second of silence is enough.
    for i in 3..100 {
        flood_syn(&mut lab, i, (VIP_WEB, 80));
    }
    lab.set_time(T0 + 1500 + 1100);
    lab.maintain();
    assert_eq!(gauge(&lab, "embryonic"), 0, "expired early");
    assert_eq!(gauge(&lab, "sessions"), 1, "the established session stays");
    still_works(&mut lab, 43000, 0);
}

#[test]
fn a_flood_at_a_both_nat_server_cannot_take_every_snat_port() {
    // One worker owns all 64,512 SNAT ports; a quarter of the table (65,536
    // half-open sessions) is more than that, so the flood runs the ring dry.
    let mut lab = Lab::new(1, 1 << 18);
    let ports = u32::from(u16::MAX - SNAT_FIRST_PORT) + 1;
    for i in 0..ports + 100 {
        assert_eq!(
            flood_syn(&mut lab, i, (VIP_BOTH, 80)),
            Verdict::Tx(INT),
            "flood SYN {i}"
        );
    }
    assert_eq!(
        gauge(&lab, "embryonic"),
        u64::from(ports),
        "every port held by a half-open session"
    );
    assert_eq!(
        gauge(&lab, "embryonic_evicted"),
        100,
        "each later SYN took a port from one"
    );
    // A real client still gets a port, and its session works both ways.
    let (c, vip, m) = ((CLIENT, 44000), (VIP_BOTH, 80), (APP, 80));
    let syn = Pkt::tcp(c, vip, SYN);
    let (v, out) = lab.run(0, EXT, &from_router(&syn), false);
    assert_eq!(v, Verdict::Tx(INT));
    let port = u16::from_be_bytes([out[34], out[35]]);
    let want = to_int(APP_MAC, &syn.clone().natted((SNAT_IP, port), m));
    assert!(
        out == want,
        "the client's SYN, source-NATed\n{}",
        diff(&out, &want)
    );
    let sa = Pkt::tcp(m, (SNAT_IP, port), SYN | ACK);
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        "the member's answer reaches the client",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, want),
    );
}

#[test]
fn a_member_answer_to_a_spoofed_syn_leaves_it_half_open() {
    let mut lab = Lab::new(1, CAPACITY);
    let c = (spoofed(7), 2000);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN);
    let want = to_int(WEB_MAC[0], &syn.clone().natted(c, (WEB[0], 8080)));
    lab.c(
        "spoofed SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    let sa = Pkt::tcp((WEB[0], 8080), c, SYN | ACK);
    let want = to_router(&sa.clone().natted((VIP_WEB, 80), c));
    lab.c(
        "the member answers it",
        INT,
        &from_int(WEB_MAC[0], &sa),
        Expect::Tx(EXT, want),
    );
    assert_eq!(
        gauge(&lab, "embryonic"),
        1,
        "no ACK from the client: still half-open"
    );
    let ack = Pkt::tcp(c, (VIP_WEB, 80), ACK);
    let want = to_int(WEB_MAC[0], &ack.clone().natted(c, (WEB[0], 8080)));
    lab.c(
        "a real client would ACK",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
    assert_eq!(gauge(&lab, "embryonic"), 0, "established");
}

/// An L2-DSR server on a round-robin pool and one on a Maglev pool, beside
/// the lab's servers.
const DSR_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 14);
const DSR_HASH_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 15);

fn dsr_lab(capacity: u32) -> Lab {
    let cfg = format!(
        "{CONFIG}{}",
        r#"
[pool.dsr]
members = [ { address = "10.20.0.11:80" }, { address = "10.20.0.12:80" } ]

[pool.dsr_hash]
method = "maglev"
members = [ { address = "10.20.0.11:80" }, { address = "10.20.0.12:80" } ]

[[virtual_server]]
name = "dsr"
address = "198.51.100.14:80"
protocol = "tcp"
pool = "dsr"
forwarding = "l2_dsr"

[[virtual_server]]
name = "dsr_hash"
address = "198.51.100.15:80"
protocol = "tcp"
pool = "dsr_hash"
forwarding = "l2_dsr"
"#
    );
    Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), capacity)
}

/// An ACK number no handshake of the lab acknowledges: what a blind sender,
/// who never saw the member's SYN-ACK, puts there.
const BLIND_ACK: u32 = 0x8000_0000;

fn member_mac(frame: &[u8]) -> [u8; 6] {
    frame[..6].try_into().unwrap()
}

#[test]
fn blind_acks_after_spoofed_syns_cannot_fill_the_table_in_l2_dsr() {
    let mut lab = dsr_lab(CAPACITY);
    for i in 0..CAPACITY {
        let c = (spoofed(i), 3000);
        for flags in [SYN, ACK] {
            let p = Pkt::tcp(c, (DSR_VIP, 80), flags).seq_ack(1, BLIND_ACK);
            let (v, _) = lab.run(0, EXT, &from_router(&p), false);
            assert_eq!(v, Verdict::Tx(INT), "pair {i}: forwarded, only bounded");
        }
    }
    assert_eq!(
        gauge(&lab, "embryonic"),
        HALF_OPEN_LIMIT,
        "unconfirmed, bounded"
    );
    assert!(gauge(&lab, "sessions") <= HALF_OPEN_LIMIT);
    let syn = Pkt::tcp((CLIENT, 45000), (DSR_VIP, 80), SYN);
    let (v, out) = lab.run(0, EXT, &from_router(&syn), false);
    assert_eq!(v, Verdict::Tx(INT), "a real client's SYN is served");
    assert!(WEB_MAC[..2].contains(&member_mac(&out)));
}

#[test]
fn blind_acks_after_spoofed_syns_cannot_hold_both_nat_sessions_or_snat_ports() {
    let mut lab = Lab::new(1, CAPACITY);
    let (vip, m) = ((VIP_BOTH, 80), (APP, 80));
    for i in 0..CAPACITY {
        let c = (spoofed(i), 3000);
        let syn = Pkt::tcp(c, vip, SYN).seq_ack(1, 0);
        let (v, out) = lab.run(0, EXT, &from_router(&syn), false);
        assert_eq!(v, Verdict::Tx(INT), "triple {i}: SYN");
        let port = u16::from_be_bytes([out[34], out[35]]);
        // The member answers the spoofed source, one round trip later comes
        // the blind ACK, and the member resets it (every other one here).
        let sa = Pkt::tcp(m, (SNAT_IP, port), SYN | ACK).seq_ack(5000, 2);
        assert_eq!(
            lab.run(0, INT, &from_int(APP_MAC, &sa), false).0,
            Verdict::Tx(EXT)
        );
        let ack = Pkt::tcp(c, vip, ACK).seq_ack(2, BLIND_ACK);
        assert_eq!(
            lab.run(0, EXT, &from_router(&ack), false).0,
            Verdict::Tx(INT)
        );
        if i % 2 == 0 {
            let rst = Pkt::tcp(m, (SNAT_IP, port), RST).seq_ack(BLIND_ACK, 0);
            assert_eq!(
                lab.run(0, INT, &from_int(APP_MAC, &rst), false).0,
                Verdict::Tx(EXT)
            );
        }
    }
    assert_eq!(
        gauge(&lab, "embryonic"),
        HALF_OPEN_LIMIT,
        "unconfirmed, bounded"
    );
    let holding = lab
        .sessions(0)
        .iter()
        .filter(|s| s.state & flag::SNAT_PORT != 0)
        .count() as u64;
    assert!(holding <= HALF_OPEN_LIMIT, "{holding} SNAT ports held");
    let (c, syn) = ((CLIENT, 45001), Pkt::tcp((CLIENT, 45001), vip, SYN));
    let (v, out) = lab.run(0, EXT, &from_router(&syn), false);
    assert_eq!(v, Verdict::Tx(INT), "a real client's SYN is served");
    let port = u16::from_be_bytes([out[34], out[35]]);
    let want = to_int(APP_MAC, &syn.clone().natted((SNAT_IP, port), m));
    assert!(out == want, "source-NATed\n{}", diff(&out, &want));
    // Its handshake, acknowledged for real, confirms it.
    let sa = Pkt::tcp(m, (SNAT_IP, port), SYN | ACK).seq_ack(9000, 1001);
    lab.run(0, INT, &from_int(APP_MAC, &sa), false);
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(1001, 9001);
    lab.run(0, EXT, &from_router(&ack), false);
    let s = lab.session(0, CLIENT, 45001).unwrap();
    assert_ne!(s.state & flag::CONFIRMED, 0, "confirmed");
}

#[test]
fn a_dsr_session_is_confirmed_once_its_client_kept_it_going_a_second() {
    let mut lab = dsr_lab(CAPACITY);
    let c = (CLIENT, 45002);
    let send = |lab: &mut Lab, flags: u8| {
        let p = Pkt::tcp(c, (DSR_VIP, 80), flags);
        assert_eq!(lab.run(0, EXT, &from_router(&p), false).0, Verdict::Tx(INT));
    };
    send(&mut lab, SYN);
    send(&mut lab, ACK);
    lab.set_time(T0 + 999);
    send(&mut lab, ACK | PSH);
    assert_eq!(gauge(&lab, "embryonic"), 1, "not yet");
    lab.set_time(T0 + 1000);
    send(&mut lab, ACK | PSH);
    assert_eq!(gauge(&lab, "embryonic"), 0, "confirmed after a second");
    // Confirmed sessions stay when a flood fills the half-open share.
    for i in 0..200 {
        flood_syn(&mut lab, i, (DSR_VIP, 80));
    }
    assert!(lab.session(0, CLIENT, 45002).is_some());
}

#[test]
fn under_pressure_a_hashed_dsr_session_gives_way_and_its_flow_resumes_on_its_member() {
    let mut lab = dsr_lab(CAPACITY);
    // Fill the table with confirmed flows of the Maglev server, a few at a
    // time (a quarter of the table at most is unconfirmed).
    let mut members = Vec::new();
    let flow = |k: u32| (CLIENT, 46000 + k as u16);
    for batch in 0..CAPACITY / 4 {
        lab.set_time(T0 + 1000 * batch);
        for k in batch * 4..batch * 4 + 4 {
            let syn = Pkt::tcp(flow(k), (DSR_HASH_VIP, 80), SYN);
            let (v, out) = lab.run(0, EXT, &from_router(&syn), false);
            assert_eq!(v, Verdict::Tx(INT), "flow {k}");
            members.push(member_mac(&out));
            let ack = from_router(&Pkt::tcp(flow(k), (DSR_HASH_VIP, 80), ACK));
            lab.run(0, EXT, &ack, false);
        }
        lab.set_time(T0 + 1000 * batch + 1000);
        for k in batch * 4..batch * 4 + 4 {
            let data = Pkt::tcp(flow(k), (DSR_HASH_VIP, 80), ACK | PSH);
            assert_eq!(
                lab.run(0, EXT, &from_router(&data), false).0,
                Verdict::Tx(INT)
            );
        }
    }
    assert_eq!(
        (gauge(&lab, "sessions"), gauge(&lab, "embryonic")),
        (u64::from(CAPACITY), 0),
        "full of confirmed sessions"
    );
    // A new client gets in: a hashed session makes room.
    let syn = Pkt::tcp((CLIENT, 47000), (DSR_VIP, 80), SYN);
    assert_eq!(
        lab.run(0, EXT, &from_router(&syn), false).0,
        Verdict::Tx(INT)
    );
    assert_eq!(gauge(&lab, "embryonic_evicted"), 1);
    let gone: Vec<usize> = (0..CAPACITY as usize)
        .filter(|k| lab.session(0, CLIENT, 46000 + *k as u16).is_none())
        .collect();
    assert_eq!(gone.len(), 1);
    // Its next segment resumes it on the member it had.
    let k = gone[0];
    let ack = Pkt::tcp((CLIENT, 46000 + k as u16), (DSR_HASH_VIP, 80), ACK | PSH);
    let d = lab.c(
        "the evicted flow's next segment",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, to_int(members[k], &ack)),
    );
    assert_deltas(&d, &[("sessions_resumed", 1), ("sessions_created", 1)]);
    // A RST of no session starts nothing; nor does any segment of a
    // round-robin server.
    let rst = Pkt::tcp((CLIENT, 48000), (DSR_HASH_VIP, 80), RST);
    lab.c(
        "RST of no session",
        EXT,
        &from_router(&rst),
        Expect::Drop(R::NoSession),
    );
    let ack = Pkt::tcp((CLIENT, 48001), (DSR_VIP, 80), ACK);
    lab.c(
        "ACK of no session, round robin",
        EXT,
        &from_router(&ack),
        Expect::Drop(R::NoSession),
    );
}

#[test]
fn a_udp_flow_is_confirmed_by_its_member_or_after_a_second() {
    let mut lab = Lab::new(1, CAPACITY);
    let confirmed = |lab: &Lab, cport: u16| {
        lab.session(0, CLIENT, cport)
            .is_some_and(|s| s.state & flag::CONFIRMED != 0)
    };
    let (vip, m) = ((VIP_DNS, 53), (DNS, 53));
    let query = |cport: u16| from_router(&Pkt::udp((CLIENT, cport), vip, b"q"));
    // Answered: confirmed by the answer.
    assert_eq!(lab.run(0, EXT, &query(5000), false).0, Verdict::Tx(INT));
    assert!(!confirmed(&lab, 5000));
    let answer = Pkt::udp(m, (CLIENT, 5000), b"a");
    assert_eq!(
        lab.run(0, INT, &from_int(DNS_MAC, &answer), false).0,
        Verdict::Tx(EXT)
    );
    assert!(confirmed(&lab, 5000), "the member answered");
    // Never answered (syslog): confirmed once it has gone on for a second.
    assert_eq!(lab.run(0, EXT, &query(5001), false).0, Verdict::Tx(INT));
    lab.set_time(T0 + 999);
    lab.run(0, EXT, &query(5001), false);
    assert!(!confirmed(&lab, 5001));
    lab.set_time(T0 + 1000);
    lab.run(0, EXT, &query(5001), false);
    assert!(confirmed(&lab, 5001), "a second of traffic");
}
