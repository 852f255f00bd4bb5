//! Golden tests of session synchronisation between two nodes of a pair:
//! what a node queues for its peer, and what the peer makes of it — the
//! session installed on its own worker with the same member and SNAT port,
//! packets of either direction forwarded as on the first node (no RST),
//! the port never handed to another flow, expiry and removal, and records
//! the local configuration cannot place refused by reason.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_config::Forwarding;
use sluice_dataplane::conntrack::{flag, tcp};
use sluice_dataplane::service::SNAT_FIRST_PORT;
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::sync::{SyncOp, SyncOut, SyncRecord, SyncRefusal};
use sluice_dataplane::worker::AnySession;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

const PEER: &str = "10.20.0.2";

fn synced_config() -> String {
    let mut cfg = variant(&[]);
    cfg.push_str(&format!(
        "\n[ha]\nnode_id = 1\nsync_interface = \"int\"\nsync_peers = [\"{PEER}\"]\n"
    ));
    cfg
}

fn node() -> Lab {
    let mut lab = Lab::with_shared(shared_from(&synced_config(), &[EXT_MAC, INT_MAC], 1), 64);
    lab.set_time(T0);
    lab
}

fn taken(lab: &mut Lab) -> Vec<SyncRecord> {
    let mut out = SyncOut::buffer();
    lab.workers[0].take_sync(&mut out);
    out
}

const C: (Ipv4Addr, u16) = (CLIENT, 44000);
const VIP: (Ipv4Addr, u16) = (VIP_BOTH, 80);
const M: (Ipv4Addr, u16) = (APP, 80);
const S: (Ipv4Addr, u16) = (SNAT_IP, SNAT_FIRST_PORT);

/// A Both-NAT connection through `lab`, handshake completed: SYN, the
/// member's SYN-ACK (sequence 5000), the client's ACK of it.
fn handshake(lab: &mut Lab) {
    let syn = Pkt::tcp(C, VIP, SYN).seq_ack(100, 0);
    let want = to_int(APP_MAC, &syn.clone().natted(S, M));
    lab.c("SYN", EXT, &from_router(&syn), Expect::Tx(INT, want));
    let sa = Pkt::tcp(M, S, SYN | ACK).seq_ack(5000, 101);
    let want = to_router(&sa.clone().natted(VIP, C));
    lab.c(
        "SYN-ACK",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, want),
    );
    let ack = Pkt::tcp(C, VIP, ACK).seq_ack(101, 5001);
    let want = to_int(APP_MAC, &ack.clone().natted(S, M));
    lab.c("ACK", EXT, &from_router(&ack), Expect::Tx(INT, want));
}

fn refused(lab: &Lab, why: SyncRefusal) -> u64 {
    lab.workers[0].stats().sync.refused[why as usize].load(Relaxed)
}

#[test]
fn a_confirmed_both_nat_session_continues_on_the_peer_with_its_snat_port() {
    let mut a = node();
    handshake(&mut a);
    let records = taken(&mut a);
    assert_eq!(records.len(), 1, "queued once, when confirmed: {records:?}");
    let r = records[0];
    assert_eq!(
        (r.op, r.mode, r.idle_ms),
        (SyncOp::Update, Forwarding::BothNat, 0)
    );
    let AnySession::V4(s) = r.session else {
        panic!("an IPv4 session")
    };
    assert_eq!((Ipv4Addr::from(s.snat), s.sport), S);
    assert_eq!(s.state & tcp::MASK, tcp::ESTABLISHED);

    // The peer installs it, 2 s idle.
    let mut b = node();
    b.set_time(T0 + 10_000);
    let r = SyncRecord {
        idle_ms: 2_000,
        ..r
    };
    b.workers[0].install_synced(&r).expect("installed");
    let got = b
        .session(0, CLIENT, 44000)
        .expect("the session is on the peer");
    assert_eq!((Ipv4Addr::from(got.member), got.mport), M);
    assert_eq!((Ipv4Addr::from(got.snat), got.sport), S);
    assert_eq!(got.last_seen, T0 + 8_000);
    assert_ne!(got.state & flag::SNAT_PORT, 0, "the port is the session's");
    assert_eq!(b.workers[0].stats().sync.installed.load(Relaxed), 1);
    assert_eq!(b.workers[0].sync_pending(), 0, "nothing echoed back");

    // Both directions go on through the peer, rewritten as on the first node.
    let data = Pkt::tcp(C, VIP, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"GET /");
    let want = to_int(APP_MAC, &data.clone().natted(S, M));
    b.c(
        "client data",
        EXT,
        &from_router(&data),
        Expect::Tx(INT, want),
    );
    let reply = Pkt::tcp(M, S, ACK | PSH).seq_ack(5001, 106).payload(b"200");
    let want = to_router(&reply.clone().natted(VIP, C));
    b.c(
        "member reply",
        INT,
        &from_int(APP_MAC, &reply),
        Expect::Tx(EXT, want),
    );

    // A new client never gets the reserved port.
    let syn2 = Pkt::tcp((CLIENT, 44001), VIP, SYN);
    let s2 = (SNAT_IP, SNAT_FIRST_PORT + 1);
    let want = to_int(APP_MAC, &syn2.clone().natted(s2, M));
    b.c(
        "a new client, the next port",
        EXT,
        &from_router(&syn2),
        Expect::Tx(INT, want),
    );

    // The same record again updates, never duplicates.
    b.workers[0].install_synced(&r).expect("updated");
    assert_eq!(b.workers[0].stats().sync.updated.load(Relaxed), 1);
    assert_eq!(b.sessions(0).len(), 2);
}

#[test]
fn a_removed_session_is_removed_on_the_peer_and_frees_its_port() {
    let mut a = node();
    handshake(&mut a);
    let r = taken(&mut a)[0];
    let mut b = node();
    b.workers[0].install_synced(&r).unwrap();
    // The client resets: the session closes on the first node (a state
    // change, synchronised); its removal follows.
    let rst = Pkt::tcp(C, VIP, RST).seq_ack(101, 0);
    let want = to_int(APP_MAC, &rst.clone().natted(S, M));
    a.c("client RST", EXT, &from_router(&rst), Expect::Tx(INT, want));
    let closed = taken(&mut a);
    assert_eq!(closed.len(), 1, "the close is queued: {closed:?}");
    b.workers[0].install_synced(&closed[0]).unwrap();
    let s = b.session(0, CLIENT, 44000).unwrap();
    assert_eq!(
        s.state & tcp::MASK,
        tcp::CLOSED,
        "the peer's copy closed too"
    );

    let remove = SyncRecord {
        op: SyncOp::Remove,
        ..closed[0]
    };
    b.workers[0].install_synced(&remove).unwrap();
    assert!(b.sessions(0).is_empty());
    assert_eq!(b.workers[0].stats().sync.removed.load(Relaxed), 1);
    // Its port is free again: the first new session takes the ring's head,
    // and the freed port comes back at the end of the ring.
    let syn = Pkt::tcp((CLIENT, 44009), VIP, SYN);
    let (_, out) = b.run(0, EXT, &from_router(&syn), false);
    assert!(!out.is_empty());
    let s = b.session(0, CLIENT, 44009).unwrap();
    assert_eq!(s.sport, SNAT_FIRST_PORT + 1, "1024 went to the ring's tail");
}

#[test]
fn a_synced_session_idles_out_on_the_peer_by_its_own_timeout() {
    let mut a = node();
    handshake(&mut a);
    let r = taken(&mut a)[0];
    let mut b = node();
    let r = SyncRecord {
        idle_ms: TCP_EST_MS - 1_000,
        ..r
    };
    b.workers[0].install_synced(&r).unwrap();
    b.maintain();
    assert_eq!(b.sessions(0).len(), 1, "one second left");
    b.set_time(T0 + 1_000);
    b.maintain();
    assert!(b.sessions(0).is_empty(), "idled out");
    let reply = Pkt::tcp(M, S, ACK).seq_ack(5001, 101);
    b.c(
        "the member's late packet finds nothing",
        INT,
        &from_int(APP_MAC, &reply),
        Expect::Drop(R::NoSession),
    );
}

#[test]
fn the_sweep_refreshes_active_sessions_of_owned_vips() {
    let mut a = node();
    handshake(&mut a);
    taken(&mut a);
    a.set_time(T0 + 500);
    a.maintain();
    let refreshed = taken(&mut a);
    assert_eq!(
        refreshed.len(),
        1,
        "the first pass refreshes: {refreshed:?}"
    );
    assert_eq!(refreshed[0].idle_ms, 500);
    // An idle session is not refreshed: its peer's copy idles out with it.
    for pass in 1..=16u32 {
        a.set_time(T0 + 500 + pass * 40_000 / 16);
        a.maintain();
    }
    let later = taken(&mut a);
    assert!(later.is_empty(), "40 s idle, no refresh: {later:?}");
}

#[test]
fn records_the_configuration_cannot_place_are_refused_and_counted() {
    let mut a = node();
    handshake(&mut a);
    let r = taken(&mut a)[0];
    let AnySession::V4(s) = r.session else {
        unreachable!()
    };
    let mut b = node();
    let with = |s| SyncRecord {
        session: AnySession::V4(s),
        ..r
    };
    let w = &mut b.workers[0];
    let no_vs = with(sluice_dataplane::session::Session4 { vport: 8443, ..s });
    assert_eq!(w.install_synced(&no_vs), Err(SyncRefusal::NoVirtualServer));
    let other = SyncRecord {
        mode: Forwarding::DestNat,
        ..r
    };
    assert_eq!(w.install_synced(&other), Err(SyncRefusal::OtherMode));
    let stranger = with(sluice_dataplane::session::Session4 {
        member: u32::from(Ipv4Addr::new(10, 20, 0, 99)),
        ..s
    });
    assert_eq!(w.install_synced(&stranger), Err(SyncRefusal::NoMember));
    let snat = with(sluice_dataplane::session::Session4 {
        snat: u32::from(Ipv4Addr::new(10, 20, 0, 101)),
        ..s
    });
    assert_eq!(w.install_synced(&snat), Err(SyncRefusal::SnatAddress));
    assert!(b.sessions(0).is_empty(), "nothing installed");
    for why in [
        SyncRefusal::NoVirtualServer,
        SyncRefusal::OtherMode,
        SyncRefusal::NoMember,
        SyncRefusal::SnatAddress,
    ] {
        assert_eq!(refused(&b, why), 1, "{why:?}");
    }
}

#[test]
fn a_node_that_serves_the_vip_keeps_its_own_session_on_a_conflict() {
    let mut a = node();
    handshake(&mut a);
    let r = taken(&mut a)[0];
    let AnySession::V4(s) = r.session else {
        unreachable!()
    };
    // The same client tuple, another member and port on this node.
    let mut b = node();
    let theirs = SyncRecord {
        session: AnySession::V4(sluice_dataplane::session::Session4 {
            sport: SNAT_FIRST_PORT + 7,
            ..s
        }),
        ..r
    };
    handshake(&mut b);
    assert_eq!(
        b.workers[0].install_synced(&theirs),
        Err(SyncRefusal::Conflict)
    );
    let kept = b.session(0, CLIENT, 44000).unwrap();
    assert_eq!(kept.sport, SNAT_FIRST_PORT);
}

#[test]
fn a_standby_that_does_not_own_the_snat_address_yet_reserves_its_port() {
    let mut a = node();
    handshake(&mut a);
    let r = taken(&mut a)[0];
    let mut cfg = synced_config();
    cfg = cfg.replace("[ha]\n", "[ha]\nvip_ownership = \"kernel\"\n");
    let mut b = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64);
    b.set_time(T0);
    assert!(!b.workers[0].shared().owns(SNAT_IP.into()), "a standby");
    b.workers[0]
        .install_synced(&r)
        .expect("installed on the standby");
    let s = b.session(0, CLIENT, 44000).unwrap();
    assert_ne!(s.state & flag::SNAT_PORT, 0, "its port reserved");
    // Removal gives the port back even though the address is not owned.
    let remove = SyncRecord {
        op: SyncOp::Remove,
        ..r
    };
    b.workers[0].install_synced(&remove).unwrap();
    b.workers[0]
        .install_synced(&r)
        .expect("the port is free again");
    assert_eq!(b.workers[0].stats().sync.snat_port_busy.load(Relaxed), 0);
}

const L2_VIP: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 20), 80);
const IPIP_VIP: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 30), 80);

/// The synced lab with an L2-DSR and an L3-DSR (IP-in-IP) virtual server
/// over two members on the int link.
fn dsr_node() -> Lab {
    let mut cfg = synced_config();
    cfg.push_str(
        r#"
[pool.dsr]
members = [ { address = "10.20.0.11:80" }, { address = "10.20.0.12:80" } ]

[[virtual_server]]
name = "l2"
address = "198.51.100.20:80"
protocol = "tcp"
pool = "dsr"
forwarding = "l2_dsr"

[[virtual_server]]
name = "ipip"
address = "198.51.100.30:80"
protocol = "tcp"
pool = "dsr"
forwarding = "l3_dsr"
"#,
    );
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64);
    lab.set_time(T0);
    lab
}

/// A client's packet to an IP-in-IP virtual server, tunnelled to `member`.
fn tunnelled(lab: &mut Lab, name: &str, p: &Pkt, member: usize) {
    lab.case_with(name, 0, EXT, &from_router(p), false, |out| {
        let outer = encap(p, INT_IP, WEB[member], false, ident_of(out));
        Expect::Tx(INT, to_int(WEB_MAC[member], &outer))
    });
}

#[test]
fn dsr_sessions_continue_on_the_peer_with_their_member() {
    let mut a = dsr_node();
    // Two clients each: round robin sends the second to member 1, which a
    // fresh node would not choose for its first session.
    for (cport, m) in [(45000, 0), (45001, 1)] {
        let syn = Pkt::tcp((CLIENT, cport), L2_VIP, SYN);
        a.c(
            "L2-DSR SYN",
            EXT,
            &from_router(&syn),
            Expect::Tx(INT, to_int(WEB_MAC[m], &syn)),
        );
    }
    for (cport, m) in [(46000, 0), (46001, 1)] {
        tunnelled(
            &mut a,
            "IP-in-IP SYN",
            &Pkt::tcp((CLIENT, cport), IPIP_VIP, SYN),
            m,
        );
    }
    assert!(taken(&mut a).is_empty(), "nothing confirmed yet");
    // One-way sessions are confirmed by an ACK a second after the SYN.
    a.set_time(T0 + 1_500);
    let ack = Pkt::tcp((CLIENT, 45001), L2_VIP, ACK);
    a.c(
        "L2-DSR ACK",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, to_int(WEB_MAC[1], &ack)),
    );
    tunnelled(
        &mut a,
        "IP-in-IP ACK",
        &Pkt::tcp((CLIENT, 46001), IPIP_VIP, ACK),
        1,
    );
    let records = taken(&mut a);
    let got: Vec<_> = records.iter().map(|r| (r.op, r.mode)).collect();
    assert_eq!(
        got,
        [
            (SyncOp::Update, Forwarding::L2Dsr),
            (SyncOp::Update, Forwarding::L3Dsr)
        ]
    );

    let mut b = dsr_node();
    b.set_time(T0 + 10_000);
    for r in &records {
        b.workers[0].install_synced(r).expect("installed");
    }
    for cport in [45001, 46001] {
        let s = b.session(0, CLIENT, cport).expect("on the peer");
        assert_eq!(Ipv4Addr::from(s.member), WEB[1]);
        assert_eq!(s.state & tcp::MASK, tcp::ESTABLISHED);
    }
    let data = Pkt::tcp((CLIENT, 45001), L2_VIP, ACK | PSH).payload(b"GET /");
    b.c(
        "L2-DSR data on the peer, to the same member",
        EXT,
        &from_router(&data),
        Expect::Tx(INT, to_int(WEB_MAC[1], &data)),
    );
    let data = Pkt::tcp((CLIENT, 46001), IPIP_VIP, ACK | PSH).payload(b"GET /");
    tunnelled(&mut b, "IP-in-IP data on the peer, same member", &data, 1);
}
