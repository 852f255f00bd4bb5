//! Golden-packet tests of a configuration reload as the workers see it:
//! sessions of a removed member and of a removed virtual server carry on to
//! their end, new sessions follow the new file, identities (slots, member
//! ids, SNAT ports, round-robin cursors) survive what did not change, and a
//! reload that does not fit is refused with nothing changed.
//!
//! Expected frames are built by `common::frame`, independently of the
//! pipeline, and compared byte for byte.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::service::SNAT_FIRST_PORT;
use sluice_dataplane::shared::ReloadError;
use sluice_dataplane::stats::DropReason as R;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;

/// A virtual server the reload adds, on a VIP of its own, to the app pool.
const VIP_NEW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 14);

const NEW_SERVER: &str = r#"
[[virtual_server]]
name = "new"
address = "198.51.100.14:80"
protocol = "tcp"
pool = "app"
forwarding = "dest_nat"
"#;

const BOTH_SERVER: &str = r#"
[[virtual_server]]
name = "both"
address = "198.51.100.11:80"
protocol = "tcp"
pool = "app"
forwarding = "both_nat"
snat_addresses = ["10.20.0.100"]
"#;

/// The lab config without web member 10.20.0.11 and without the "both"
/// server, plus the "new" server.
fn shrunk() -> String {
    variant(&[
        ("  { address = \"10.20.0.11:8080\" },\n", ""),
        (BOTH_SERVER, NEW_SERVER),
    ])
}

/// A client SYN to the web VIP that must reach web member `m`.
fn web_syn(lab: &mut Lab, name: &str, cport: u16, m: usize) {
    let c = (CLIENT, cport);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN).seq_ack(100, 0);
    let want = to_int(WEB_MAC[m], &syn.clone().natted(c, (WEB[m], 8080)));
    lab.c(name, EXT, &from_router(&syn), Expect::Tx(INT, want));
}

/// Data both ways on an established Dest-NAT web session on member `m`.
fn web_data_both_ways(lab: &mut Lab, name: &str, cport: u16, m: usize) {
    let (c, vip, member) = ((CLIENT, cport), (VIP_WEB, 80), (WEB[m], 8080));
    let data = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"GET /");
    let want = to_int(WEB_MAC[m], &data.clone().natted(c, member));
    lab.c(
        &format!("{name}: client data"),
        EXT,
        &from_router(&data),
        Expect::Tx(INT, want),
    );
    let reply = Pkt::tcp(member, c, ACK | PSH)
        .seq_ack(5001, 106)
        .payload(b"200");
    let want = to_router(&reply.clone().natted(vip, c));
    lab.c(
        &format!("{name}: member reply"),
        INT,
        &from_int(WEB_MAC[m], &reply),
        Expect::Tx(EXT, want),
    );
}

/// Opens a web session on member `m`: SYN, SYN-ACK, ACK.
fn web_session(lab: &mut Lab, cport: u16, m: usize) {
    web_syn(lab, &format!("{cport}: SYN"), cport, m);
    let (c, vip, member) = ((CLIENT, cport), (VIP_WEB, 80), (WEB[m], 8080));
    let sa = Pkt::tcp(member, c, SYN | ACK).seq_ack(5000, 101);
    lab.c(
        &format!("{cport}: SYN-ACK"),
        INT,
        &from_int(WEB_MAC[m], &sa),
        Expect::Tx(EXT, to_router(&sa.clone().natted(vip, c))),
    );
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(101, 5001);
    lab.c(
        &format!("{cport}: ACK"),
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, to_int(WEB_MAC[m], &ack.clone().natted(c, member))),
    );
}

/// Opens a Both-NAT session (client port `cport`), which takes SNAT port 1024.
fn both_session(lab: &mut Lab, cport: u16) {
    let (c, vip, m, s) = (
        (CLIENT, cport),
        (VIP_BOTH, 80),
        (APP, 80),
        (SNAT_IP, SNAT_FIRST_PORT),
    );
    let syn = Pkt::tcp(c, vip, SYN).seq_ack(100, 0);
    let want = to_int(APP_MAC, &syn.clone().natted(s, m));
    lab.c("both: SYN", EXT, &from_router(&syn), Expect::Tx(INT, want));
    let sa = Pkt::tcp(m, s, SYN | ACK).seq_ack(7000, 101);
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        "both: SYN-ACK",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, want),
    );
}

fn vs_sessions(lab: &Lab, slot: usize) -> u64 {
    lab.workers[0].stats().vs_sessions[slot].load(Relaxed)
}

#[test]
fn sessions_of_a_removed_member_and_server_carry_on_and_new_ones_follow_the_file() {
    let mut lab = Lab::new(1, 64);
    web_session(&mut lab, 40000, 0);
    both_session(&mut lab, 44000);
    assert_eq!((vs_sessions(&lab, 0), vs_sessions(&lab, 1)), (1, 1));

    let next = lab.reload(&shrunk()).expect("reload applies");
    assert_eq!(next.generation, 1);
    assert_eq!(lab.workers[0].stats().generation.load(Relaxed), 1);
    assert!(
        next.service(1).is_some_and(|v| v.retired),
        "both drains in its slot"
    );
    assert_eq!(
        next.slot_of("new"),
        Some(4),
        "a new server takes a free slot"
    );
    let removed = SocketAddrV4::new(WEB[0], 8080);
    assert_eq!(
        next.member_key_id("web", removed),
        Some(0),
        "its id is kept"
    );

    // The removed member's session, both ways, as before.
    web_data_both_ways(&mut lab, "removed member", 40000, 0);
    let st = lab.workers[0].stats();
    let web = (
        st.vs_packets_in[0].load(Relaxed),
        st.vs_packets_out[0].load(Relaxed),
    );
    assert_eq!(web, (3, 2), "SYN, ACK, data in; SYN-ACK, reply out");
    let data_len = from_router(&Pkt::tcp((CLIENT, 1), (VIP_WEB, 80), ACK).payload(b"GET /")).len();
    assert!(st.vs_bytes_in[0].load(Relaxed) > data_len as u64);
    // The removed server's session, with its SNAT port, both ways.
    let (c, vip, m, s) = (
        (CLIENT, 44000),
        (VIP_BOTH, 80),
        (APP, 80),
        (SNAT_IP, SNAT_FIRST_PORT),
    );
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(101, 7001);
    let want = to_int(APP_MAC, &ack.clone().natted(s, m));
    lab.c(
        "removed server: client ACK",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
    let reply = Pkt::tcp(m, s, ACK | PSH).seq_ack(7001, 101).payload(b"hi");
    let want = to_router(&reply.clone().natted(vip, c));
    lab.c(
        "removed server: reply",
        INT,
        &from_int(APP_MAC, &reply),
        Expect::Tx(EXT, want),
    );

    // New sessions: none for the removed server, none on the removed member.
    let syn = Pkt::tcp((CLIENT, 44001), vip, SYN);
    lab.c(
        "removed server: new SYN",
        EXT,
        &from_router(&syn),
        Expect::Drop(R::NoVirtualServer),
    );
    web_syn(&mut lab, "after: first SYN", 40001, 1);
    web_syn(&mut lab, "after: second SYN", 40002, 2);
    web_syn(&mut lab, "after: third SYN", 40003, 1);
    // The added server serves.
    let c = (CLIENT, 45000);
    let syn = Pkt::tcp(c, (VIP_NEW, 80), SYN);
    let want = to_int(APP_MAC, &syn.clone().natted(c, (APP, 80)));
    lab.c(
        "added server: SYN",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, want),
    );
    assert_eq!(vs_sessions(&lab, 4), 1);

    // Once their sessions have ended, the next reload lets them go.
    lab.set_time(T0 + TCP_EST_MS + 1000);
    lab.maintain();
    assert_eq!((vs_sessions(&lab, 0), vs_sessions(&lab, 1)), (0, 0));
    let next = lab.reload(&shrunk()).expect("reload applies");
    assert_eq!(next.generation, 2);
    assert!(
        next.service(1).is_none(),
        "the drained server's slot is free"
    );
    assert_eq!(next.member_key_id("web", removed), None, "its id is free");
    assert!(
        next.local(VIP_BOTH).is_none(),
        "its VIP is no longer the switch's"
    );
    assert_eq!(next.slot_of("new"), Some(4), "a kept server keeps its slot");
}

#[test]
fn a_server_that_did_not_change_keeps_its_cursor_and_ids() {
    let mut lab = Lab::new(1, 64);
    web_syn(&mut lab, "first SYN", 41000, 0);
    // Only a timeout changes: the web server's round robin goes on.
    let next = lab
        .reload(&variant(&[("tcp_fin = \"20s\"", "tcp_fin = \"21s\"")]))
        .expect("reload applies");
    assert_eq!(next.timeouts.tcp_fin, 21_000);
    web_syn(&mut lab, "carried cursor", 41001, 1);
    // A member added at the end gets a fresh id; the others keep theirs.
    let added = variant(&[(
        "  { address = \"10.20.0.13:8080\" },\n",
        "  { address = \"10.20.0.13:8080\" },\n  { address = \"10.20.0.14:8080\" },\n",
    )]);
    let next = lab.reload(&added).expect("reload applies");
    let id = |ip: Ipv4Addr| next.member_key_id("web", SocketAddrV4::new(ip, 8080));
    assert_eq!(
        (id(WEB[0]), id(WEB[1]), id(WEB[2])),
        (Some(0), Some(1), Some(2))
    );
    assert_eq!(
        id(Ipv4Addr::new(10, 20, 0, 14)),
        Some(6),
        "the lowest free id"
    );
    // The member list changed: the cursor starts over.
    web_syn(&mut lab, "fresh cursor", 41002, 0);
}

#[test]
fn a_reload_that_does_not_fit_changes_nothing() {
    let two = variant(&[("[timeouts]\n", "[dataplane]\nworkers = 2\n\n[timeouts]\n")]);
    let mut lab = Lab::with_shared(shared_from(&two, &[EXT_MAC, INT_MAC], 2), 64);
    let sticky = two.replace(
        "forwarding = \"dest_nat\"\n\n[[virtual_server]]\nname = \"both\"",
        "forwarding = \"dest_nat\"\npersistence = { timeout = \"1m\", netmask = 24 }\n\n[[virtual_server]]\nname = \"both\"",
    );
    assert_ne!(sticky, two, "the edit applied");
    let refused = lab
        .reload(&sticky)
        .expect_err("a /24 split needs a restart");
    assert_eq!(
        refused,
        ReloadError::PersistenceNetmask {
            virtual_server: "web".into(),
            netmask: 24,
            running: 32
        }
    );
    for w in &lab.workers {
        assert_eq!(w.shared().generation, 0);
        assert_eq!(w.stats().generation.load(Relaxed), 0);
    }
    // One worker splits nothing: the same change applies.
    let one = Lab::new(1, 64).reload(&sticky.replace("workers = 2", "workers = 1"));
    assert!(one.is_ok());
}

#[test]
fn what_a_reload_removes_is_kept_until_the_next_even_without_sessions() {
    // A worker still on the old snapshot may open a session on it until it
    // takes the new one, so a slot or an id is never reused by the same reload.
    let mut lab = Lab::new(1, 64);
    let smaller = variant(&[
        ("  { address = \"10.20.0.13:8080\" },\n", ""),
        (
            "\n[[virtual_server]]\nname = \"dns\"\naddress = \"198.51.100.12:53\"\nprotocol = \"udp\"\npool = \"dns\"\nforwarding = \"dest_nat\"\n",
            "",
        ),
    ]);
    let removed = SocketAddrV4::new(WEB[2], 8080);
    let next = lab.reload(&smaller).expect("reload applies");
    assert!(
        next.service(VS_DNS).is_some_and(|v| v.retired),
        "kept, retired"
    );
    assert_eq!(
        next.member_key_id("web", removed),
        Some(2),
        "its id is kept"
    );
    let next = lab.reload(&smaller).expect("reload applies");
    assert!(
        next.service(VS_DNS).is_none(),
        "no sessions: let go at the next reload"
    );
    assert_eq!(next.member_key_id("web", removed), None);
}

/// Closes web session `cport` on member `m` with FINs both ways.
fn web_close(lab: &mut Lab, cport: u16, m: usize) {
    let (c, vip, member) = ((CLIENT, cport), (VIP_WEB, 80), (WEB[m], 8080));
    let fin = Pkt::tcp(c, vip, FIN | ACK).seq_ack(101, 5001);
    let want = to_int(WEB_MAC[m], &fin.clone().natted(c, member));
    lab.c("client FIN", EXT, &from_router(&fin), Expect::Tx(INT, want));
    let fin = Pkt::tcp(member, c, FIN | ACK).seq_ack(5001, 102);
    let want = to_router(&fin.clone().natted(vip, c));
    lab.c(
        "member FIN",
        INT,
        &from_int(WEB_MAC[m], &fin),
        Expect::Tx(EXT, want),
    );
}

#[test]
fn sessions_of_a_renamed_pool_drain_on_their_old_member_ids() {
    let mut lab = Lab::new(1, 64);
    web_session(&mut lab, 40000, 0);
    let old_id = lab.workers[0]
        .shared()
        .member_key_id("web", SocketAddrV4::new(WEB[0], 8080));
    assert_eq!(old_id, Some(0));
    let states = lab.workers[0].shared().members.clone();
    assert_eq!(states.sessions(0), 1);

    let renamed = variant(&[
        ("[pool.web]", "[pool.web2]"),
        ("pool = \"web\"", "pool = \"web2\""),
    ]);
    let next = lab.reload(&renamed).expect("reload applies");
    let new_id = next
        .member_key_id("web2", SocketAddrV4::new(WEB[0], 8080))
        .expect("the renamed pool's member has an id");
    assert_ne!(new_id, 0, "a new id: the old one is still the session's");
    // The session carries on, counted on its old id all its life.
    web_data_both_ways(&mut lab, "after the rename", 40000, 0);
    // New sessions go to the renamed pool's ids.
    web_syn(&mut lab, "a new session", 40001, 0);
    assert_eq!((states.sessions(0), states.sessions(new_id)), (1, 1));
    web_close(&mut lab, 40000, 0);
    lab.set_time(T0 + TCP_SYN_MS.max(TCP_CLOSE_MS) + 1000);
    lab.maintain();
    assert_eq!(
        (states.sessions(0), states.sessions(new_id)),
        (0, 0),
        "each session left the id it was counted on"
    );
    let next = lab.reload(&renamed).expect("reload applies");
    assert_eq!(
        next.member_key_id("web", SocketAddrV4::new(WEB[0], 8080)),
        None,
        "the old id is free"
    );
    assert!(
        next.servers().all(|(_, v)| !v.retired),
        "nothing left draining"
    );
}

#[test]
fn a_server_moved_to_a_pool_sharing_its_member_drains_on_the_old_ids() {
    let mut lab = Lab::new(1, 64);
    both_session(&mut lab, 44000);
    let states = lab.workers[0].shared().members.clone();
    let app = SocketAddrV4::new(APP, 80);
    let old_id = lab.workers[0].shared().member_key_id("app", app).unwrap();
    assert_eq!(states.sessions(old_id), 1);
    // "both" moves to a new pool with the same member; "app" stays (dns uses
    // nothing of it, so a second server keeps it).
    let moved = variant(&[
        (
            "[pool.app]\nmembers = [ { address = \"10.20.0.21:80\" } ]\n",
            "[pool.app]\nmembers = [ { address = \"10.20.0.21:80\" } ]\n\n[pool.app2]\nmembers = [ { address = \"10.20.0.21:80\" } ]\n",
        ),
        (BOTH_SERVER, &(BOTH_SERVER.replace("pool = \"app\"", "pool = \"app2\"") + NEW_SERVER)),
    ]);
    let next = lab.reload(&moved).expect("reload applies");
    let new_id = next.member_key_id("app2", app).unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(
        next.member_key_id("app", app),
        Some(old_id),
        "pool app still has it"
    );
    // The old session, with its SNAT port, both ways; then it ends.
    let (c, vip, s) = ((CLIENT, 44000), (VIP_BOTH, 80), (SNAT_IP, SNAT_FIRST_PORT));
    let rst = Pkt::tcp(c, vip, RST | ACK).seq_ack(101, 7001);
    let want = to_int(APP_MAC, &rst.clone().natted(s, (APP, 80)));
    lab.c(
        "the old session ends",
        EXT,
        &from_router(&rst),
        Expect::Tx(INT, want),
    );
    lab.set_time(T0 + TCP_CLOSE_MS + 1000);
    lab.maintain();
    assert_eq!(
        (states.sessions(old_id), states.sessions(new_id)),
        (0, 0),
        "the old session left the old id"
    );
}

#[test]
fn a_changed_persistence_netmask_makes_a_new_server_and_the_old_one_drains() {
    let sticky = |mask: u8| {
        variant(&[(
            "pool = \"web\"\nforwarding = \"dest_nat\"\n",
            &format!("pool = \"web\"\nforwarding = \"dest_nat\"\npersistence = {{ timeout = \"10s\", netmask = {mask} }}\n"),
        )])
    };
    let mut lab = Lab::with_shared(shared_from(&sticky(32), &[EXT_MAC, INT_MAC], 1), 64);
    web_session(&mut lab, 40000, 0);
    let next = lab.reload(&sticky(32)).expect("reload applies");
    assert_eq!(
        next.slot_of("web"),
        Some(VS_WEB),
        "unchanged: the same slot"
    );
    let next = lab.reload(&sticky(24)).expect("reload applies");
    let slot = next.slot_of("web").unwrap();
    assert_ne!(slot, VS_WEB, "a new netmask: a new server");
    assert!(
        next.service(VS_WEB).is_some_and(|v| v.retired),
        "the old one drains"
    );
    // The old session carries on, on the old server's entry and mask.
    web_data_both_ways(&mut lab, "after the change", 40000, 0);
    let st = lab.workers[0].stats();
    assert_eq!(st.vs_sessions[usize::from(VS_WEB)].load(Relaxed), 1);
}
