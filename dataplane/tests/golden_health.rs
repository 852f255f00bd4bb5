//! Golden-packet tests of member health and of what the switch does on its
//! own initiative: member choice with members down, disabled, draining and
//! backups; the RST / ICMP port-unreachable that refuses a session with no
//! member left; `on_member_down = "reset"` (ACK probe, then RSTs to both
//! ends); the exception path to the kernel interfaces with its per-class
//! rate limits; and the per-member session gauges.
//!
//! As in `golden.rs`, expected frames are built independently by
//! `common::frame` (every checksum from scratch) and compared byte for byte.
//! The only field taken from the output is the IPv4 ident of headers the
//! switch writes itself; the expected frame is then built with that ident,
//! so the header checksum still has to match it exactly.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::conntrack::{flag, tcp as st};
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::service::client_owner;
use sluice_dataplane::stats::DropReason as R;
use sluice_dataplane::worker::{AnySession, Generated, Verdict};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

/// A backup member added to the web pool by [`backup_config`].
const BACKUP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 14);
const BACKUP_MAC: Mac = [0x02, 0, 0, 0, 0, 0x14];

/// Pool indexes of the lab config (order of the `[pool.*]` tables).
const POOL_WEB: usize = 0;
const POOL_APP: usize = 1;
const POOL_DNS: usize = 2;
const POOL_ANY: usize = 3;

/// Sequence number of the switch's ACK probe (a fixed value outside any
/// window the test's client uses).
const PROBE_SEQ: u32 = 0x5eed_0001;

/// Ethernet + IPv4 + TCP without options: a segment the switch writes.
const SEGMENT_FRAME_LEN: usize = 54;

fn lab_from(config: &str) -> Lab {
    Lab::with_shared(shared_from(config, &[EXT_MAC, INT_MAC], 1), 64)
}

/// The web pool with a fourth member, 10.20.0.14:8080, as backup.
fn backup_config() -> String {
    variant(&[
        (
            "[pool.web]\n",
            "[[neighbor]]\naddress = \"10.20.0.14\"\nmac = \"02:00:00:00:00:14\"\ninterface = \"int\"\n\n[pool.web]\n",
        ),
        (
            "  { address = \"10.20.0.13:8080\" },\n",
            "  { address = \"10.20.0.13:8080\" },\n  { address = \"10.20.0.14:8080\", backup = true },\n",
        ),
    ])
}

/// The lab config with `on_member_down = "reset"` in pool `pool`.
fn reset_config(pool: &str) -> String {
    let table = format!("[pool.{pool}]\n");
    let with_reset = format!("{table}on_member_down = \"reset\"\n");
    variant(&[(table.as_str(), with_reset.as_str())])
}

/// Sets the health of member `member` of pool `pool`, as the control thread does.
fn set_up(lab: &Lab, pool: usize, member: usize, up: bool) {
    let sh = lab.workers[0].shared();
    sh.members.set(sh.member_id(pool, member), up);
}

/// The per-member session gauges of worker 0, by member id.
fn member_gauges(lab: &Lab) -> Vec<u64> {
    let sh = lab.workers[0].shared();
    let configured = sh
        .servers()
        .flat_map(|(_, v)| v.members.iter().map(|m| m.id + 1))
        .max()
        .unwrap_or(0);
    (0..configured)
        .map(|id| sh.members.sessions_of(0, id))
        .collect()
}

/// The per-virtual-server reject counters of worker 0.
fn vs_rejected(lab: &Lab) -> Vec<u64> {
    let slots = lab.workers[0].shared().services.len();
    let s = lab.workers[0].stats();
    s.vs_rejected[..slots]
        .iter()
        .map(|c| c.load(Relaxed))
        .collect()
}

/// A TCP segment as the switch writes it from scratch: no options, window
/// 0, TTL 64, DF set, ToS 0.
fn switch_segment(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    ident: u16,
) -> Pkt {
    let mut p = Pkt::tcp(src, dst, flags)
        .seq_ack(seq, ack)
        .id(ident)
        .ttl(64)
        .frag(0x4000);
    if let Body::Tcp { window, .. } = &mut p.body {
        *window = 0;
    }
    p
}

/// An Ethernet frame without padding to 60 bytes: the switch writes its
/// 54-byte segments exactly (the NIC pads on the wire).
fn bare_frame(dst: Mac, src: Mac, p: &Pkt) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETH_IPV4.to_be_bytes());
    f.extend_from_slice(&p.bytes());
    f
}

/// Idents the switch wrote so far in one test: each must differ from every
/// one before it (RFC 791: unique while packets may be in flight).
#[derive(Default)]
struct Idents(Vec<u16>);

impl Idents {
    fn take(&mut self, name: &str, frame: &[u8]) -> u16 {
        let id = ident_of(frame);
        assert!(!self.0.contains(&id), "{name}: ident {id} repeated");
        self.0.push(id);
        id
    }
}

/// A case on worker 0 whose output is a frame with a switch-written IPv4
/// header; `want` builds the whole expected frame from the output's ident.
fn written(
    lab: &mut Lab,
    ids: &mut Idents,
    name: &str,
    port: u16,
    frame: &[u8],
    out_port: u16,
    want: impl FnOnce(u16) -> Vec<u8>,
) -> BTreeMap<String, i64> {
    lab.case_with(name, 0, port, frame, false, |out| {
        Expect::Tx(out_port, want(ids.take(name, out)))
    })
}

/// Every packet worker 0 asked to generate, written into fresh buffers.
fn drain_generated(lab: &mut Lab) -> Vec<(Generated, Verdict, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(g) = lab.workers[0].pop_generated() {
        let mut buf = VecBuf::empty();
        let v = lab.workers[0].write_generated(g, &mut buf);
        out.push((g, v, buf.data().to_vec()));
    }
    out
}

/// Asserts one generated frame: sent on `port`, byte for byte `want(ident)`.
#[track_caller]
fn assert_generated(
    name: &str,
    ids: &mut Idents,
    got: &(Generated, Verdict, Vec<u8>),
    port: u16,
    want: impl FnOnce(u16) -> Vec<u8>,
) {
    let (_, v, out) = got;
    assert_eq!(*v, Verdict::Tx(port), "{name}: verdict");
    let want = want(ids.take(name, out));
    assert!(*out == want, "{name}: frame\n{}", diff(out, &want));
}

/// Counter deltas of worker 0 across `f` (for work outside `Lab::case`).
fn deltas_of(lab: &mut Lab, f: impl FnOnce(&mut Lab)) -> BTreeMap<String, i64> {
    let before = snapshot(lab.workers[0].stats());
    f(lab);
    deltas(&before, &snapshot(lab.workers[0].stats()))
}

/// A client SYN to web from `cport`, expected at web member `m` (an index
/// into `WEB`, or 3 for the backup).
fn web_syn(lab: &mut Lab, name: &str, cport: u16, m: usize) -> BTreeMap<String, i64> {
    let (ip, mac) = if m < 3 {
        (WEB[m], WEB_MAC[m])
    } else {
        (BACKUP, BACKUP_MAC)
    };
    let c = (CLIENT, cport);
    let syn = Pkt::tcp(c, (VIP_WEB, 80), SYN).seq_ack(100, 0);
    let want = to_int(mac, &syn.clone().natted(c, (ip, 8080)));
    lab.c(name, EXT, &from_router(&syn), Expect::Tx(INT, want))
}

/// Completes the handshake of a web session opened by [`web_syn`]: the
/// member's SYN-ACK (ISN 5000) and the client's ACK (101, 5001).
fn web_handshake(lab: &mut Lab, cport: u16, ip: Ipv4Addr, mac: Mac) {
    let (c, vip, m) = ((CLIENT, cport), (VIP_WEB, 80), (ip, 8080));
    let sa = Pkt::tcp(m, c, SYN | ACK).seq_ack(5000, 101);
    let want = to_router(&sa.clone().natted(vip, c));
    lab.c(
        &format!("{cport}: member SYN-ACK"),
        INT,
        &from_int(mac, &sa),
        Expect::Tx(EXT, want),
    );
    let ack = Pkt::tcp(c, vip, ACK).seq_ack(101, 5001);
    let want = to_int(mac, &ack.clone().natted(c, m));
    lab.c(
        &format!("{cport}: client ACK"),
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
}

// ---------------------------------------------------------------------------
// Member choice
// ---------------------------------------------------------------------------

#[test]
fn member_ids_are_positions_in_the_flat_member_list() {
    let lab = Lab::new(1, 16);
    let sh = lab.workers[0].shared();
    let ids: Vec<u32> = [
        (POOL_WEB, 0),
        (POOL_WEB, 1),
        (POOL_WEB, 2),
        (POOL_APP, 0),
        (POOL_DNS, 0),
        (POOL_ANY, 0),
    ]
    .iter()
    .map(|(p, m)| sh.member_id(*p, *m))
    .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    assert_eq!(sh.members.len(), 1024, "room for members a reload adds");
    // The harness sizes the per-member and per-server counters.
    assert_eq!(member_gauges(&lab).len(), 6);
    assert_eq!(vs_rejected(&lab).len(), 4);
}

#[test]
fn down_member_is_skipped_for_new_sessions() {
    let mut lab = Lab::new(1, 64);
    set_up(&lab, POOL_WEB, 1, false);
    // Round robin over 11 and 13 only.
    for (i, m) in [0, 2, 0, 2].into_iter().enumerate() {
        let d = web_syn(
            &mut lab,
            &format!("web[1] down: SYN {i}"),
            41000 + i as u16,
            m,
        );
        assert_deltas(&d, &[("sessions_created", 1), ("rejected_no_member", 0)]);
    }
    assert_eq!(member_gauges(&lab), [2, 0, 2, 0, 0, 0]);
    // Back up: the cursor stands after 13, so 11, 12, 13.
    set_up(&lab, POOL_WEB, 1, true);
    for (i, m) in [0, 1, 2].into_iter().enumerate() {
        web_syn(
            &mut lab,
            &format!("web[1] up: SYN {i}"),
            41010 + i as u16,
            m,
        );
    }
    assert_eq!(member_gauges(&lab), [3, 1, 3, 0, 0, 0]);

    // A member going down does not move its sessions (on_member_down = keep).
    set_up(&lab, POOL_WEB, 0, false);
    let c = (CLIENT, 41000);
    let ack = Pkt::tcp(c, (VIP_WEB, 80), ACK).seq_ack(101, 5001);
    let want = to_int(WEB_MAC[0], &ack.clone().natted(c, (WEB[0], 8080)));
    lab.c(
        "existing session on down member",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
    // A retransmitted SYN of that session stays on it too.
    web_syn(&mut lab, "retransmitted SYN to down member", 41000, 0);
    // New sessions: 12, 13, 12 (the cursor stands after 13).
    for (i, m) in [1, 2, 1].into_iter().enumerate() {
        web_syn(
            &mut lab,
            &format!("web[0] down: SYN {i}"),
            41020 + i as u16,
            m,
        );
    }
    assert_eq!(member_gauges(&lab), [3, 3, 4, 0, 0, 0]);
    assert_eq!(vs_rejected(&lab), [0, 0, 0, 0]);
}

#[test]
fn backup_takes_over_and_primaries_preempt() {
    let mut lab = lab_from(&backup_config());
    let sh = lab.workers[0].shared().clone();
    assert_eq!(
        sh.member_id(POOL_WEB, 3),
        3,
        "backup is the fourth web member"
    );
    assert_eq!(sh.member_id(POOL_APP, 0), 4);
    // All primaries up: the backup gets nothing.
    for (i, m) in [0, 1, 2, 0, 1, 2].into_iter().enumerate() {
        web_syn(&mut lab, &format!("all up: SYN {i}"), 42000 + i as u16, m);
    }
    // All primaries down: the backup takes every new session.
    for m in 0..3 {
        set_up(&lab, POOL_WEB, m, false);
    }
    for i in 0..3u16 {
        let d = web_syn(&mut lab, &format!("primaries down: SYN {i}"), 42010 + i, 3);
        assert_deltas(&d, &[("rejected_no_member", 0)]);
    }
    web_handshake(&mut lab, 42010, BACKUP, BACKUP_MAC);
    assert_eq!(
        lab.session(0, CLIENT, 42010).unwrap().state & st::MASK,
        st::ESTABLISHED
    );
    assert_eq!(member_gauges(&lab), [2, 2, 2, 3, 0, 0, 0]);

    // One primary back: it preempts the backup for new sessions...
    set_up(&lab, POOL_WEB, 1, true);
    for i in 0..3u16 {
        web_syn(&mut lab, &format!("web[1] back: SYN {i}"), 42020 + i, 1);
    }
    // ...while the backup's sessions carry on, both ways.
    let c = (CLIENT, 42010);
    let (vip, b) = ((VIP_WEB, 80), (BACKUP, 8080));
    let req = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"GET / HTTP/1.1\r\n\r\n");
    let want = to_int(BACKUP_MAC, &req.clone().natted(c, b));
    lab.c(
        "backup session continues",
        EXT,
        &from_router(&req),
        Expect::Tx(INT, want),
    );
    let resp = Pkt::tcp(b, c, ACK | PSH)
        .seq_ack(5001, 119)
        .payload(b"HTTP/1.1 200 OK\r\n\r\n");
    let want = to_router(&resp.clone().natted(vip, c));
    lab.c(
        "backup session reply",
        INT,
        &from_int(BACKUP_MAC, &resp),
        Expect::Tx(EXT, want),
    );
    assert_eq!(member_gauges(&lab), [2, 5, 2, 3, 0, 0, 0]);

    // All back: round robin over the primaries resumes after 12.
    set_up(&lab, POOL_WEB, 0, true);
    set_up(&lab, POOL_WEB, 2, true);
    for (i, m) in [2, 0, 1].into_iter().enumerate() {
        web_syn(&mut lab, &format!("all back: SYN {i}"), 42030 + i as u16, m);
    }
    // The backup down as well as the primaries: nothing is left.
    for m in 0..4 {
        set_up(&lab, POOL_WEB, m, false);
    }
    let syn = Pkt::tcp((CLIENT, 42040), vip, SYN).seq_ack(9, 0);
    let mut ids = Idents::default();
    let d = written(
        &mut lab,
        &mut ids,
        "backup down too: RST",
        EXT,
        &from_router(&syn),
        EXT,
        |id| {
            bare_frame(
                ROUTER_MAC,
                EXT_MAC,
                &switch_segment(vip, (CLIENT, 42040), 0, 10, RST | ACK, id),
            )
        },
    );
    assert_deltas(&d, &[("rejected_no_member", 1), ("sessions_created", 0)]);
}

#[test]
fn disabled_and_draining_members_get_no_new_sessions() {
    let cfg = variant(&[
        (
            "{ address = \"10.20.0.12:8080\" }",
            "{ address = \"10.20.0.12:8080\", enabled = false }",
        ),
        (
            "{ address = \"10.20.0.13:8080\" }",
            "{ address = \"10.20.0.13:8080\", weight = 0 }",
        ),
    ]);
    let mut lab = lab_from(&cfg);
    for i in 0..4u16 {
        web_syn(
            &mut lab,
            &format!("only 11 eligible: SYN {i}"),
            43000 + i,
            0,
        );
    }
    assert_eq!(member_gauges(&lab), [4, 0, 0, 0, 0, 0]);
    // Being up does not make a disabled or draining member eligible: with
    // 11 down, nothing is left and the SYN is refused.
    set_up(&lab, POOL_WEB, 0, false);
    let (c, vip) = ((CLIENT, 43010), (VIP_WEB, 80));
    let syn = Pkt::tcp(c, vip, SYN).seq_ack(1, 0);
    let mut ids = Idents::default();
    let d = written(
        &mut lab,
        &mut ids,
        "disabled + draining + down: RST",
        EXT,
        &from_router(&syn),
        EXT,
        |id| {
            bare_frame(
                ROUTER_MAC,
                EXT_MAC,
                &switch_segment(vip, c, 0, 2, RST | ACK, id),
            )
        },
    );
    assert_deltas(&d, &[("rejected_no_member", 1), ("sessions_created", 0)]);
    // Existing sessions on 11 continue even though it is down.
    let ack = Pkt::tcp((CLIENT, 43000), vip, ACK);
    let want = to_int(
        WEB_MAC[0],
        &ack.clone().natted((CLIENT, 43000), (WEB[0], 8080)),
    );
    lab.c(
        "session on 11 continues",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, want),
    );
}

// ---------------------------------------------------------------------------
// No member left: refuse at once
// ---------------------------------------------------------------------------

/// (name, client, SYN payload, the MAC the client is reached at).
type SynCase = (&'static str, (Ipv4Addr, u16), &'static [u8], Mac);

#[test]
fn no_member_tcp_syn_gets_rst_from_vip() {
    let mut lab = Lab::new(1, 64);
    let mut ids = Idents::default();
    for m in 0..3 {
        set_up(&lab, POOL_WEB, m, false);
    }
    let vip = (VIP_WEB, 80);

    // The SYN comes from the client's MAC (or its router's); the RST goes back to it.
    let cases: [SynCase; 3] = [
        ("SYN via router", (CLIENT, 44000), b"", ROUTER_MAC),
        ("SYN with data (TFO)", (CLIENT, 44001), b"hello", ROUTER_MAC),
        (
            "SYN from on-link client",
            (LOCAL_CLIENT, 44002),
            b"",
            LOCAL_CLIENT_MAC,
        ),
    ];
    for (name, c, data, mac) in cases {
        let isn = 0x8000_0000u32 + u32::from(c.1);
        let syn = Pkt::tcp(c, vip, SYN)
            .seq_ack(isn, 0)
            .payload(data)
            .ttl(55)
            .id(77);
        // RST|ACK, seq 0, acknowledging the SYN and its data (RFC 793).
        let ack = isn + data.len() as u32 + 1;
        let before = vs_rejected(&lab);
        let d = written(
            &mut lab,
            &mut ids,
            name,
            EXT,
            &syn.frame(EXT_MAC, mac),
            EXT,
            |id| {
                let rst = switch_segment(vip, c, 0, ack, RST | ACK, id);
                let f = bare_frame(mac, EXT_MAC, &rst);
                // The expectation itself: 54 bytes, checksums verify from scratch.
                assert_eq!(f.len(), SEGMENT_FRAME_LEN);
                assert!(checksum_ok(&f[14..34]));
                assert_eq!(l4_checksum(vip.0, c.0, PROTO_TCP, &f[34..]), 0);
                assert_eq!(f[14 + 6], 0x40, "DF");
                assert_eq!(f[14 + 8], 64, "TTL");
                f
            },
        );
        assert_deltas(
            &d,
            &[
                ("rejected_no_member", 1),
                ("sessions_created", 0),
                ("sessions_active", 0),
                ("icmp_errors_sent", 0),
                // Routed out through egress like any generated packet.
                ("forwarded", 1),
            ],
        );
        let mut want = before;
        want[usize::from(VS_WEB)] += 1;
        assert_eq!(vs_rejected(&lab), want, "{name}: vs_rejected");
    }
    assert!(lab.sessions(0).is_empty());
    assert_eq!(member_gauges(&lab), [0; 6]);

    // Not a SYN: no session to answer for, dropped as before.
    for (name, flags) in [
        ("ACK without session", ACK),
        ("FIN|ACK without session", FIN | ACK),
        ("RST without session", RST),
        ("SYN|ACK to VIP", SYN | ACK),
    ] {
        let p = Pkt::tcp((CLIENT, 44010), vip, flags);
        let d = lab.c(name, EXT, &from_router(&p), Expect::Drop(R::NoSession));
        assert_deltas(&d, &[("rejected_no_member", 0)]);
    }
    // The VIP still answers ping.
    let req = Pkt::echo_request(CLIENT, VIP_WEB, 0x77, 1, b"ping").ttl(50);
    let mut rep = Pkt::echo_request(VIP_WEB, CLIENT, 0x77, 1, b"ping");
    if let Body::Icmp { ty, .. } = &mut rep.body {
        *ty = 0;
    }
    let d = lab.c(
        "ping to VIP without members",
        EXT,
        &from_router(&req),
        Expect::Tx(EXT, to_router(&rep)),
    );
    assert_deltas(&d, &[("icmp_echo_replies", 1), ("rejected_no_member", 0)]);

    // Other servers are refused on their own counter, from their own VIP.
    set_up(&lab, POOL_APP, 0, false);
    set_up(&lab, POOL_ANY, 0, false);
    for (name, vs, vip) in [
        ("Both-NAT server without members", VS_BOTH, (VIP_BOTH, 80)),
        ("port-0 server without members", VS_ANY, (VIP_ANY, 8443)),
    ] {
        let c = (CLIENT, 44020 + vs);
        let syn = Pkt::tcp(c, vip, SYN).seq_ack(41, 0);
        let before = vs_rejected(&lab);
        let d = written(
            &mut lab,
            &mut ids,
            name,
            EXT,
            &from_router(&syn),
            EXT,
            |id| {
                bare_frame(
                    ROUTER_MAC,
                    EXT_MAC,
                    &switch_segment(vip, c, 0, 42, RST | ACK, id),
                )
            },
        );
        assert_deltas(&d, &[("rejected_no_member", 1), ("sessions_created", 0)]);
        let mut want = before;
        want[usize::from(vs)] += 1;
        assert_eq!(vs_rejected(&lab), want, "{name}: vs_rejected");
    }
    assert_eq!(vs_rejected(&lab), [3, 1, 0, 1]);

    // A member back up: sessions are taken again.
    set_up(&lab, POOL_WEB, 2, true);
    web_syn(&mut lab, "member back: SYN", 44030, 2);
    assert_eq!(member_gauges(&lab), [0, 0, 1, 0, 0, 0]);
}

#[test]
fn no_member_udp_gets_port_unreachable_from_vip() {
    let mut lab = Lab::new(1, 64);
    let mut ids = Idents::default();
    set_up(&lab, POOL_DNS, 0, false);
    let vip = (VIP_DNS, 53);
    let query: Vec<u8> = (0..40u8).collect();
    // (name, datagram, quoted bytes: IP header + 8)
    let cases = [
        (
            "UDP query",
            Pkt::udp((CLIENT, 45000), vip, &query).ttl(60).id(0x0bad),
            28,
        ),
        (
            "UDP query with IP options",
            Pkt::udp((CLIENT, 45001), vip, &query)
                .options(&[1, 1, 1, 0])
                .id(0x0bae),
            32,
        ),
        (
            "UDP query without checksum",
            Pkt::udp((CLIENT, 45002), vip, b"q").no_udp_checksum(),
            28,
        ),
    ];
    for (name, q, quote) in cases {
        let before = vs_rejected(&lab);
        let d = written(&mut lab, &mut ids, name, EXT, &from_router(&q), EXT, |id| {
            // Type 3 code 3 from the VIP, quoting the datagram as it
            // arrived; no DF, TTL 64, ToS 0.
            let e = Pkt::icmp_error(VIP_DNS, CLIENT, 3, 3, [0; 4], &q, quote)
                .ttl(64)
                .id(id)
                .frag(0);
            to_router(&e)
        });
        assert_deltas(
            &d,
            &[
                ("rejected_no_member", 1),
                ("icmp_errors_sent", 1),
                ("sessions_created", 0),
            ],
        );
        let mut want = before;
        want[usize::from(VS_DNS)] += 1;
        assert_eq!(vs_rejected(&lab), want, "{name}: vs_rejected");
    }
    assert_eq!(vs_rejected(&lab), [0, 0, 3, 0]);
    assert!(lab.sessions(0).is_empty());
    // The UDP VIP still answers ping.
    let req = Pkt::echo_request(CLIENT, VIP_DNS, 5, 6, b"abc");
    let mut rep = Pkt::echo_request(VIP_DNS, CLIENT, 5, 6, b"abc");
    if let Body::Icmp { ty, .. } = &mut rep.body {
        *ty = 0;
    }
    lab.c(
        "ping to UDP VIP without members",
        EXT,
        &from_router(&req),
        Expect::Tx(EXT, to_router(&rep)),
    );
    // Back up: the datagram is forwarded.
    set_up(&lab, POOL_DNS, 0, true);
    let q = Pkt::udp((CLIENT, 45000), vip, &query);
    let want = to_int(DNS_MAC, &q.clone().natted((CLIENT, 45000), (DNS, 53)));
    lab.c(
        "member back: UDP",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );
    assert_eq!(member_gauges(&lab), [0, 0, 0, 0, 1, 0]);
}

// ---------------------------------------------------------------------------
// on_member_down = "reset"
// ---------------------------------------------------------------------------

/// A reset-pool lab with an established web session 46000 on 11 (client
/// sent 10 bytes: its next sequence number is 111; the member's is 5001)
/// and one, 46001, on 12.
fn reset_lab() -> Lab {
    let mut lab = lab_from(&reset_config("web"));
    web_syn(&mut lab, "46000: SYN", 46000, 0);
    web_handshake(&mut lab, 46000, WEB[0], WEB_MAC[0]);
    let (c, vip, m) = ((CLIENT, 46000), (VIP_WEB, 80), (WEB[0], 8080));
    let data = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"0123456789");
    let want = to_int(WEB_MAC[0], &data.clone().natted(c, m));
    lab.c(
        "46000: client data",
        EXT,
        &from_router(&data),
        Expect::Tx(INT, want),
    );
    web_syn(&mut lab, "46001: SYN", 46001, 1);
    web_handshake(&mut lab, 46001, WEB[1], WEB_MAC[1]);
    assert_eq!(member_gauges(&lab), [1, 1, 0, 0, 0, 0]);
    lab
}

/// Marks 11 down, sweeps, and checks the two probes of session 46000, both
/// numbered outside the receiver's window: an ACK from the VIP to the
/// client, and one from the client, Dest-NAT rewritten, to the member.
fn probe_46000(lab: &mut Lab, ids: &mut Idents) {
    set_up(lab, POOL_WEB, 0, false);
    let d = deltas_of(lab, |lab| lab.maintain());
    assert_deltas(
        &d,
        &[
            ("sessions_reset", 0),
            ("sessions_expired", 0),
            ("sessions_active", 0),
        ],
    );
    let s = lab.session(0, CLIENT, 46000).expect("kept until answered");
    assert_ne!(s.state & flag::RESET_PENDING, 0, "marked for reset");
    let g = drain_generated(lab);
    assert_eq!(g.len(), 2, "two probes: {g:?}");
    // The probes carry the session as the sweep found it, client's first.
    for (i, to) in [true, false].into_iter().enumerate() {
        match g[i].0 {
            Generated::Probe {
                session: AnySession::V4(p),
                to_client,
            } if to_client == to => assert_eq!(
                (p.client, p.cport, p.vip, p.vport, p.member, p.mport),
                (s.client, s.cport, s.vip, s.vport, s.member, s.mport)
            ),
            other => panic!("probe {i} is not the expected probe: {other:?}"),
        }
    }
    assert_generated("probe to client", ids, &g[0], EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment((VIP_WEB, 80), (CLIENT, 46000), PROBE_SEQ, 0, ACK, id),
        )
    });
    assert_generated("probe to member", ids, &g[1], INT, |id| {
        let c = (CLIENT, 46000);
        let probe =
            switch_segment(c, (VIP_WEB, 80), PROBE_SEQ, 0, ACK, id).natted(c, (WEB[0], 8080));
        bare_frame(WEB_MAC[0], INT_MAC, &probe)
    });
    // The session of the member that is up is left alone.
    let other = lab.session(0, CLIENT, 46001).unwrap();
    assert_eq!(other.state & flag::RESET_PENDING, 0);
    // A pending session is probed once, not on every sweep.
    lab.maintain();
    assert!(drain_generated(lab).is_empty(), "probed again");
}

#[test]
fn reset_pool_probe_answer_resets_both_ends() {
    let mut lab = reset_lab();
    let mut ids = Idents::default();
    probe_46000(&mut lab, &mut ids);

    // The client answers the probe with its current numbers.
    let (c, vip, m) = ((CLIENT, 46000), (VIP_WEB, 80), (WEB[0], 8080));
    let (s, a) = (111, 5001);
    let answer = Pkt::tcp(c, vip, ACK).seq_ack(s, a);
    let d = lab.c(
        "client answers the probe",
        EXT,
        &from_router(&answer),
        Expect::Consumed,
    );
    assert_deltas(
        &d,
        &[
            ("sessions_reset", 1),
            ("sessions_expired", 0),
            ("sessions_active", -1),
            ("forwarded", 0),
        ],
    );
    assert!(lab.session(0, CLIENT, 46000).is_none(), "session removed");
    assert_eq!(member_gauges(&lab), [0, 1, 0, 0, 0, 0]);

    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "two RSTs: {g:?}");
    let to_client = g
        .iter()
        .find(|x| x.1 == Verdict::Tx(EXT))
        .expect("RST to client");
    let to_member = g
        .iter()
        .find(|x| x.1 == Verdict::Tx(INT))
        .expect("RST to member");
    // To the client: RST at the sequence number it acknowledged (RFC 793).
    assert_generated("RST to client", &mut ids, to_client, EXT, |id| {
        bare_frame(ROUTER_MAC, EXT_MAC, &switch_segment(vip, c, a, 0, RST, id))
    });
    // To the member: as if the client sent it, Dest-NAT rewritten (TTL 63).
    assert_generated("RST to member", &mut ids, to_member, INT, |id| {
        let rst = switch_segment(c, vip, s, a, RST | ACK, id).natted(c, m);
        bare_frame(WEB_MAC[0], INT_MAC, &rst)
    });

    // The client's next segment finds no session.
    let late = Pkt::tcp(c, vip, ACK | PSH).seq_ack(111, 5001).payload(b"x");
    lab.c(
        "segment after reset",
        EXT,
        &from_router(&late),
        Expect::Drop(R::NoSession),
    );
    // The other session is untouched.
    let c2 = (CLIENT, 46001);
    let p = Pkt::tcp(c2, vip, ACK).seq_ack(101, 5001);
    let want = to_int(WEB_MAC[1], &p.clone().natted(c2, (WEB[1], 8080)));
    lab.c(
        "session on up member",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, want),
    );
    // New sessions go to the members that are up (the cursor stands at 13).
    web_syn(&mut lab, "new session after reset", 46002, 2);
    lab.workers[0].sessions().check_consistency().unwrap();
}

#[test]
fn reset_pool_member_packet_resets_too() {
    let mut lab = reset_lab();
    let mut ids = Idents::default();
    probe_46000(&mut lab, &mut ids);
    // The member sends before the client answers: its packet is turned
    // into the RSTs instead.
    let (c, vip, m) = ((CLIENT, 46000), (VIP_WEB, 80), (WEB[0], 8080));
    let (ms, ma) = (5001, 111);
    let p = Pkt::tcp(m, c, ACK | PSH)
        .seq_ack(ms, ma)
        .payload(b"late reply");
    let d = lab.c(
        "member packet of a pending session",
        INT,
        &from_int(WEB_MAC[0], &p),
        Expect::Consumed,
    );
    assert_deltas(&d, &[("sessions_reset", 1), ("sessions_active", -1)]);
    assert!(lab.session(0, CLIENT, 46000).is_none());
    assert_eq!(member_gauges(&lab), [0, 1, 0, 0, 0, 0]);
    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "two RSTs: {g:?}");
    let to_member = g.iter().find(|x| x.1 == Verdict::Tx(INT)).unwrap();
    let to_client = g.iter().find(|x| x.1 == Verdict::Tx(EXT)).unwrap();
    // The member gets the RST answering its packet: seq = its ACK, no ACK.
    assert_generated("RST to member", &mut ids, to_member, INT, |id| {
        let rst = switch_segment(c, vip, ma, 0, RST, id).natted(c, m);
        bare_frame(WEB_MAC[0], INT_MAC, &rst)
    });
    // The client gets a RST at the member's sequence number.
    assert_generated("RST to client", &mut ids, to_client, EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment(vip, c, ms, ma, RST | ACK, id),
        )
    });
}

#[test]
fn reset_pool_unanswered_probe_expires() {
    let mut lab = reset_lab();
    let mut ids = Idents::default();
    lab.set_time(T0 + 1000);
    probe_46000(&mut lab, &mut ids);
    // A pending session lives tcp_close from the probe, then expires.
    lab.set_time(T0 + 1000 + TCP_CLOSE_MS - 1);
    lab.maintain();
    assert!(lab.session(0, CLIENT, 46000).is_some());
    lab.set_time(T0 + 1000 + TCP_CLOSE_MS);
    let d = deltas_of(&mut lab, |lab| lab.maintain());
    assert_deltas(
        &d,
        &[
            ("sessions_expired", 1),
            ("sessions_reset", 0),
            ("sessions_active", -1),
        ],
    );
    assert!(lab.session(0, CLIENT, 46000).is_none());
    assert!(drain_generated(&mut lab).is_empty());
    assert_eq!(member_gauges(&lab), [0, 1, 0, 0, 0, 0]);
}

#[test]
fn reset_pool_udp_session_removed_by_sweep() {
    let mut lab = lab_from(&reset_config("dns"));
    let c = (CLIENT, 47000);
    let q = Pkt::udp(c, (VIP_DNS, 53), b"query");
    let want = to_int(DNS_MAC, &q.clone().natted(c, (DNS, 53)));
    lab.c(
        "UDP session",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want.clone()),
    );
    // A TCP session of a keep pool on the same switch.
    web_syn(&mut lab, "web session", 47001, 0);
    assert_eq!(member_gauges(&lab), [1, 0, 0, 0, 1, 0]);
    lab.maintain();
    assert_eq!(lab.sessions(0).len(), 2, "all up: nothing to do");

    set_up(&lab, POOL_DNS, 0, false);
    set_up(&lab, POOL_WEB, 0, false);
    let d = deltas_of(&mut lab, |lab| lab.maintain());
    assert_deltas(
        &d,
        &[
            ("sessions_reset", 1),
            ("sessions_expired", 0),
            ("sessions_active", -1),
        ],
    );
    assert!(lab.session(0, CLIENT, 47000).is_none());
    assert!(lab.session(0, CLIENT, 47001).is_some(), "keep pool");
    assert!(drain_generated(&mut lab).is_empty(), "UDP gets no packets");
    assert_eq!(member_gauges(&lab), [1, 0, 0, 0, 0, 0]);
    // The client's next datagram finds no member: port unreachable.
    let mut ids = Idents::default();
    let d = written(
        &mut lab,
        &mut ids,
        "datagram after reset",
        EXT,
        &from_router(&q),
        EXT,
        |id| {
            let e = Pkt::icmp_error(VIP_DNS, CLIENT, 3, 3, [0; 4], &q, 28)
                .ttl(64)
                .id(id)
                .frag(0);
            to_router(&e)
        },
    );
    assert_deltas(&d, &[("rejected_no_member", 1)]);
    // Up again: a new session.
    set_up(&lab, POOL_DNS, 0, true);
    let d = lab.c(
        "datagram after recovery",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_created", 1)]);
}

#[test]
fn keep_pool_session_continues_on_down_member() {
    let mut lab = Lab::new(1, 64);
    web_syn(&mut lab, "SYN", 48000, 0);
    web_handshake(&mut lab, 48000, WEB[0], WEB_MAC[0]);
    let q = Pkt::udp((CLIENT, 48001), (VIP_DNS, 53), b"q");
    let want = to_int(DNS_MAC, &q.clone().natted((CLIENT, 48001), (DNS, 53)));
    lab.c("UDP", EXT, &from_router(&q), Expect::Tx(INT, want.clone()));

    set_up(&lab, POOL_WEB, 0, false);
    set_up(&lab, POOL_DNS, 0, false);
    let d = deltas_of(&mut lab, |lab| lab.maintain());
    assert_deltas(&d, &[("sessions_reset", 0), ("sessions_expired", 0)]);
    assert!(drain_generated(&mut lab).is_empty(), "nothing probed");
    let s = lab.session(0, CLIENT, 48000).unwrap();
    assert_eq!(s.state & flag::RESET_PENDING, 0);
    assert_eq!(s.state & st::MASK, st::ESTABLISHED);

    let (c, vip, m) = ((CLIENT, 48000), (VIP_WEB, 80), (WEB[0], 8080));
    let p = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"more");
    let want_tcp = to_int(WEB_MAC[0], &p.clone().natted(c, m));
    lab.c(
        "client data to down member",
        EXT,
        &from_router(&p),
        Expect::Tx(INT, want_tcp),
    );
    let r = Pkt::tcp(m, c, ACK).seq_ack(5001, 105);
    let want_r = to_router(&r.clone().natted(vip, c));
    lab.c(
        "down member replies",
        INT,
        &from_int(WEB_MAC[0], &r),
        Expect::Tx(EXT, want_r),
    );
    lab.c(
        "UDP to down member",
        EXT,
        &from_router(&q),
        Expect::Tx(INT, want),
    );
    assert_eq!(member_gauges(&lab), [1, 0, 0, 0, 1, 0]);
}

// ---------------------------------------------------------------------------
// Exception path
// ---------------------------------------------------------------------------

#[test]
fn interface_traffic_goes_to_kernel() {
    let mut lab = Lab::new(1, 64);
    let hc = (INT_IP, 33000); // a health check's socket on the int address
    let kernel_udp = Pkt::udp(hc, (DNS, 53), b"probe");
    let kernel_tcp = Pkt::tcp(hc, (WEB[0], 8080), SYN);
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        (
            "TCP SYN to ext address",
            EXT,
            from_router(&Pkt::tcp((CLIENT, 50000), (EXT_IP, 22), SYN)),
        ),
        (
            "TCP data to ext address",
            EXT,
            from_router(
                &Pkt::tcp((CLIENT, 50000), (EXT_IP, 22), ACK | PSH).payload(b"SSH-2.0-x\r\n"),
            ),
        ),
        (
            "UDP to ext address",
            EXT,
            from_router(&Pkt::udp((CLIENT, 50001), (EXT_IP, 161), b"snmp")),
        ),
        (
            "GRE to ext address",
            EXT,
            from_router(&Pkt::raw(CLIENT, EXT_IP, 47, &[0, 0, 8, 0])),
        ),
        (
            "ICMP timestamp to ext address",
            EXT,
            from_router(&Pkt::icmp(CLIENT, EXT_IP, 13, 0, [0; 4], &[0; 12])),
        ),
        (
            "member SYN-ACK to a health check",
            INT,
            from_int(
                WEB_MAC[0],
                &Pkt::tcp((WEB[0], 8080), hc, SYN | ACK).seq_ack(7, 1001),
            ),
        ),
        (
            "member RST to a health check",
            INT,
            from_int(WEB_MAC[0], &Pkt::tcp((WEB[0], 8080), hc, RST | ACK)),
        ),
        (
            "member UDP reply to a health check",
            INT,
            from_int(DNS_MAC, &Pkt::udp((DNS, 53), hc, b"answer")),
        ),
        (
            "echo reply to a ping check",
            INT,
            from_int(WEB_MAC[0], &{
                let mut p = Pkt::echo_request(WEB[0], INT_IP, 9, 1, b"sluice");
                if let Body::Icmp { ty, .. } = &mut p.body {
                    *ty = 0;
                }
                p
            }),
        ),
        (
            "port unreachable about a UDP check",
            INT,
            from_int(
                DNS_MAC,
                &Pkt::icmp_error(DNS, INT_IP, 3, 3, [0; 4], &kernel_udp, 28),
            ),
        ),
        (
            "frag needed about a TCP check, from a router",
            INT,
            from_int(
                WEB_MAC[1],
                &Pkt::icmp_error(WEB[1], INT_IP, 3, 4, [0, 0, 5, 0x78], &kernel_tcp, 28),
            ),
        ),
    ];
    for (name, port, frame) in cases {
        let d = lab.c(name, port, &frame, Expect::Kernel);
        // The daemon counts `to_kernel` when the ring to the kernel takes
        // the frame; the worker only gives the verdict.
        assert_deltas(
            &d,
            &[
                ("to_kernel", 0),
                ("sessions_created", 0),
                ("icmp_errors_translated", 0),
            ],
        );
    }
    assert!(lab.sessions(0).is_empty());

    // ARP replies to an interface address: learned, then the kernel's too.
    let reply = arp_frame(INT_MAC, ANY_MAC, ARP_REP, ANY_MAC, ANY, INT_MAC, INT_IP);
    let d = lab.c("ARP reply to int address", INT, &reply, Expect::Kernel);
    assert_deltas(&d, &[("arp_learned", 1)]);
    assert_eq!(
        lab.workers[0]
            .shared()
            .neighbors
            .lookup(ANY, INT)
            .map(|e| e.mac),
        Some(ANY_MAC)
    );
    // ...but not replies to a VIP (only the dataplane asked for those).
    let reply = arp_frame(
        EXT_MAC, ROUTER_MAC, ARP_REP, ROUTER_MAC, ROUTER, EXT_MAC, VIP_WEB,
    );
    lab.c("ARP reply to VIP", EXT, &reply, Expect::Consumed);

    // Echo requests to interface addresses are answered by the dataplane.
    for (name, port, peer, peer_mac, ours, our_mac) in [
        ("ping ext address", EXT, CLIENT, ROUTER_MAC, EXT_IP, EXT_MAC),
        ("ping int address", INT, WEB[2], WEB_MAC[2], INT_IP, INT_MAC),
    ] {
        let req = Pkt::echo_request(peer, ours, 3, 4, b"0123456789abcdef").ttl(61);
        let mut rep = Pkt::echo_request(ours, peer, 3, 4, b"0123456789abcdef");
        if let Body::Icmp { ty, .. } = &mut rep.body {
            *ty = 0;
        }
        let d = lab.c(
            name,
            port,
            &req.frame(our_mac, peer_mac),
            Expect::Tx(port, rep.frame(peer_mac, our_mac)),
        );
        assert_deltas(&d, &[("icmp_echo_replies", 1)]);
    }
    // A malformed TCP header to the interface is still the dataplane's drop.
    let mut bad = from_router(&Pkt::tcp((CLIENT, 50002), (EXT_IP, 22), SYN));
    bad[14 + 20 + 12] = 0x40; // data offset 4
    lab.c(
        "TCP data offset 4 to ext address",
        EXT,
        &bad,
        Expect::Drop(R::Malformed),
    );
}

/// An ICMP error about a ping the kernel sent (an `icmp` health check) is
/// the kernel's: the check relies on seeing a router's unreachable at once.
#[test]
fn icmp_error_about_kernel_ping_goes_to_kernel() {
    let mut lab = Lab::new(1, 64);
    let ping = Pkt::echo_request(INT_IP, Ipv4Addr::new(10, 20, 0, 99), 1, 1, b"sluice");
    for (name, ty, code) in [
        ("host unreachable about a ping check", 3, 1),
        ("time exceeded about a ping check", 11, 0),
    ] {
        let err = Pkt::icmp_error(WEB[2], INT_IP, ty, code, [0; 4], &ping, 28);
        lab.c(name, INT, &from_int(WEB_MAC[2], &err), Expect::Kernel);
    }
    // To a VIP it is nobody's: dropped as before.
    let ping = Pkt::echo_request(VIP_WEB, CLIENT, 1, 1, b"x");
    let err = Pkt::icmp_error(ROUTER, VIP_WEB, 3, 1, [0; 4], &ping, 28);
    lab.c(
        "unreachable about ICMP to a VIP",
        EXT,
        &from_router(&err),
        Expect::Drop(R::IcmpUnsupported),
    );
}

#[test]
fn kernel_rate_limit_per_class() {
    const SYN_RATE: u32 = 2000; // KERNEL_RATE[TcpSyn]: per second, and burst
    let mut lab = Lab::new(1, 64);
    lab.maintain(); // the loop's first turn, at T0
    let syn = |i: u32| {
        from_router(&Pkt::tcp(
            (CLIENT, 10000 + (i % 50000) as u16),
            (EXT_IP, 22),
            SYN,
        ))
    };
    let mut n = 0u32;
    let mut syns = |lab: &mut Lab, count: u32, expect: Expect, what: &str| {
        for _ in 0..count {
            lab.c(&format!("{what}: SYN {n}"), EXT, &syn(n), expect.clone());
            n += 1;
        }
    };
    // A burst within one millisecond: the first 2000 pass.
    syns(&mut lab, SYN_RATE, Expect::Kernel, "burst");
    syns(
        &mut lab,
        3,
        Expect::Drop(R::KernelRateLimited),
        "over the burst",
    );
    // Other classes have their own buckets.
    let udp = Pkt::udp((CLIENT, 9000), (EXT_IP, 161), b"x");
    lab.c(
        "UDP while SYNs are limited",
        EXT,
        &from_router(&udp),
        Expect::Kernel,
    );
    let ack = Pkt::tcp((CLIENT, 9001), (EXT_IP, 22), ACK);
    lab.c(
        "TCP ACK while SYNs are limited",
        EXT,
        &from_router(&ack),
        Expect::Kernel,
    );
    let ts = Pkt::icmp(CLIENT, EXT_IP, 13, 0, [0; 4], &[0; 12]);
    lab.c(
        "ICMP while SYNs are limited",
        EXT,
        &from_router(&ts),
        Expect::Kernel,
    );
    // Each port has its own budgets: int is not limited by ext's SYNs.
    let int_syn = Pkt::tcp((NEIGHBOUR, 9002), (INT_IP, 22), SYN);
    lab.c(
        "SYN to int address while ext is limited",
        INT,
        &from_int(NEIGHBOUR_MAC, &int_syn),
        Expect::Kernel,
    );
    // Echo requests are the dataplane's, not limited.
    let req = Pkt::echo_request(CLIENT, EXT_IP, 1, 2, b"x");
    let (v, _) = lab.run(0, EXT, &from_router(&req), false);
    assert_eq!(v, Verdict::Tx(EXT));

    // Tokens come back only when maintenance runs; 1 ms buys 2 SYNs.
    lab.set_time(T0 + 1);
    syns(
        &mut lab,
        1,
        Expect::Drop(R::KernelRateLimited),
        "time moved, no maintenance yet",
    );
    lab.maintain();
    syns(&mut lab, SYN_RATE / 1000, Expect::Kernel, "after 1 ms");
    syns(
        &mut lab,
        1,
        Expect::Drop(R::KernelRateLimited),
        "after 1 ms, over",
    );
    // A second later the bucket is full again, and no fuller.
    lab.set_time(T0 + 1 + 1000);
    lab.maintain();
    lab.set_time(T0 + 1 + 5000);
    lab.maintain();
    syns(&mut lab, SYN_RATE, Expect::Kernel, "after 1 s");
    syns(
        &mut lab,
        1,
        Expect::Drop(R::KernelRateLimited),
        "after 1 s, over",
    );
    let limited = lab.workers[0].stats().drops_of(R::KernelRateLimited);
    assert_eq!(limited, 3 + 1 + 1 + 1);
}

/// A host on the members' LAN that is no member.
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 99);
const NEIGHBOUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

/// Runs `n` copies of `frame` through worker 0 within the current
/// millisecond; returns how many went to the kernel.
fn flood_kernel(lab: &mut Lab, port: u16, frame: &[u8], n: u32) -> u32 {
    (0..n)
        .filter(|_| lab.run(0, port, frame, false).0 == Verdict::Kernel)
        .count() as u32
}

#[test]
fn a_flood_at_the_external_address_never_starves_health_check_replies() {
    const TCP_RATE: u32 = 20_000; // KERNEL_RATE[Tcp]: per second, and burst
    let mut lab = Lab::new(1, 64);
    lab.maintain();
    let junk = from_router(&Pkt::tcp((CLIENT, 40000), (EXT_IP, 22), ACK));
    assert_eq!(flood_kernel(&mut lab, EXT, &junk, TCP_RATE + 1), TCP_RATE);
    assert_eq!(
        lab.workers[0].stats().drops_of(R::KernelRateLimited),
        1,
        "the 20,001st is over ext's budget"
    );
    // A member's answer to a health check, in the same millisecond.
    let syn_ack = Pkt::tcp((WEB[0], 8080), (INT_IP, 40001), SYN | ACK).seq_ack(77, 1001);
    lab.c(
        "member's SYN-ACK to the int address after a flood at ext",
        INT,
        &from_int(WEB_MAC[0], &syn_ack),
        Expect::Kernel,
    );
    // A flood claiming the member's address from outside spends ext's
    // budget, not the member's.
    let spoofed = from_router(&Pkt::tcp((WEB[0], 8080), (EXT_IP, 40002), SYN | ACK));
    assert_eq!(flood_kernel(&mut lab, EXT, &spoofed, TCP_RATE), 0);
    // Nor can a host beside the members spend it.
    let beside = from_int(
        NEIGHBOUR_MAC,
        &Pkt::tcp((NEIGHBOUR, 40003), (INT_IP, 22), ACK),
    );
    assert_eq!(flood_kernel(&mut lab, INT, &beside, TCP_RATE + 1), TCP_RATE);
    lab.c(
        "member's SYN-ACK after floods at both addresses",
        INT,
        &from_int(WEB_MAC[0], &syn_ack),
        Expect::Kernel,
    );
    let echo_reply = Pkt::icmp(WEB[1], INT_IP, 0, 0, [0, 7, 0, 1], b"sluice-health/1\0");
    lab.c(
        "member's echo reply to an ICMP check",
        INT,
        &from_int(WEB_MAC[1], &echo_reply),
        Expect::Kernel,
    );
}

#[test]
fn arp_replies_over_the_kernel_rate_are_still_learned() {
    const ARP_RATE: u32 = 2000; // KERNEL_RATE[Arp]
    let mut lab = Lab::new(1, 64);
    let reply = arp_frame(
        INT_MAC,
        NEIGHBOUR_MAC,
        ARP_REP,
        NEIGHBOUR_MAC,
        NEIGHBOUR,
        INT_MAC,
        INT_IP,
    );
    for i in 0..ARP_RATE {
        lab.c(&format!("ARP reply {i}"), INT, &reply, Expect::Kernel);
    }
    // Over the rate the dataplane keeps what it learned; the kernel misses
    // this one (and asks again).
    let d = lab.c("ARP reply over the rate", INT, &reply, Expect::Consumed);
    assert_deltas(&d, &[("drops", 0)]);
}

#[test]
fn interface_without_kernel_drops_local_traffic() {
    let cfg = variant(&[(
        "name = \"ext\"\ndevice = \"net_null0\"\n",
        "name = \"ext\"\ndevice = \"net_null0\"\nkernel = false\n",
    )]);
    let mut lab = lab_from(&cfg);
    assert!(!lab.workers[0].shared().ports[usize::from(EXT)].kernel);
    assert!(lab.workers[0].shared().ports[usize::from(INT)].kernel);
    for (name, p) in [
        ("TCP SYN", Pkt::tcp((CLIENT, 51000), (EXT_IP, 22), SYN)),
        ("TCP ACK", Pkt::tcp((CLIENT, 51000), (EXT_IP, 22), ACK)),
        ("UDP", Pkt::udp((CLIENT, 51001), (EXT_IP, 161), b"x")),
        (
            "ICMP timestamp",
            Pkt::icmp(CLIENT, EXT_IP, 13, 0, [0; 4], &[0; 12]),
        ),
    ] {
        let d = lab.c(
            &format!("{name} to ext address without kernel"),
            EXT,
            &from_router(&p),
            Expect::Drop(R::LocalUnhandled),
        );
        assert_deltas(&d, &[("drop.kernel_rate_limited", 0)]);
    }
    // An ARP reply is still learned from; nothing goes further.
    let reply = arp_frame(
        EXT_MAC,
        LOCAL_CLIENT_MAC,
        ARP_REP,
        LOCAL_CLIENT_MAC,
        LOCAL_CLIENT,
        EXT_MAC,
        EXT_IP,
    );
    lab.c(
        "ARP reply to ext address without kernel",
        EXT,
        &reply,
        Expect::Consumed,
    );
    // Echo is answered either way.
    let req = Pkt::echo_request(CLIENT, EXT_IP, 1, 1, b"x");
    let mut rep = Pkt::echo_request(EXT_IP, CLIENT, 1, 1, b"x");
    if let Body::Icmp { ty, .. } = &mut rep.body {
        *ty = 0;
    }
    lab.c(
        "ping ext address without kernel",
        EXT,
        &from_router(&req),
        Expect::Tx(EXT, to_router(&rep)),
    );
    // The int interface keeps its kernel.
    let syn = Pkt::tcp((WEB[0], 51002), (INT_IP, 22), SYN);
    lab.c(
        "TCP SYN to int address",
        INT,
        &from_int(WEB_MAC[0], &syn),
        Expect::Kernel,
    );
}

// ---------------------------------------------------------------------------
// Per-member session gauges
// ---------------------------------------------------------------------------

#[test]
fn member_session_gauges_follow_sessions() {
    let mut lab = Lab::new(1, 64);
    assert_eq!(member_gauges(&lab), [0; 6]);
    // Web: 11, 12, 13, 11.
    for (i, m) in [0, 1, 2, 0].into_iter().enumerate() {
        web_syn(&mut lab, &format!("web SYN {i}"), 52000 + i as u16, m);
    }
    // A retransmitted SYN is the same session.
    web_syn(&mut lab, "web SYN 0 again", 52000, 0);
    assert_eq!(member_gauges(&lab), [2, 1, 1, 0, 0, 0]);
    // Both-NAT to app, UDP to dns, port-0 to any (MAC learned first).
    let both = Pkt::tcp((CLIENT, 52010), (VIP_BOTH, 80), SYN);
    let want = to_int(APP_MAC, &both.clone().natted((SNAT_IP, 1024), (APP, 80)));
    lab.c(
        "Both-NAT SYN",
        EXT,
        &from_router(&both),
        Expect::Tx(INT, want),
    );
    let q = Pkt::udp((CLIENT, 52011), (VIP_DNS, 53), b"q");
    let want = to_int(DNS_MAC, &q.clone().natted((CLIENT, 52011), (DNS, 53)));
    lab.c("UDP", EXT, &from_router(&q), Expect::Tx(INT, want));
    let reply = arp_frame(INT_MAC, ANY_MAC, ARP_REP, ANY_MAC, ANY, INT_MAC, INT_IP);
    lab.c("ARP reply from any", INT, &reply, Expect::Kernel);
    for (i, port) in [443u16, 22].into_iter().enumerate() {
        let c = (CLIENT, 52020 + i as u16);
        let syn = Pkt::tcp(c, (VIP_ANY, port), SYN);
        let want = to_int(ANY_MAC, &syn.clone().natted(c, (ANY, port)));
        lab.c(
            &format!("port-0 SYN to {port}"),
            EXT,
            &from_router(&syn),
            Expect::Tx(INT, want),
        );
    }
    assert_eq!(member_gauges(&lab), [2, 1, 1, 1, 1, 2]);
    // Refused sessions count nowhere.
    set_up(&lab, POOL_APP, 0, false);
    let refused = Pkt::tcp((CLIENT, 52030), (VIP_BOTH, 80), SYN);
    let (v, _) = lab.run(0, EXT, &from_router(&refused), false);
    assert_eq!(v, Verdict::Tx(EXT), "RST");
    set_up(&lab, POOL_APP, 0, true);
    assert_eq!(member_gauges(&lab), [2, 1, 1, 1, 1, 2]);

    // Session 52002 (on 13) closes and its port is reused with a new SYN:
    // the old session goes, the new one lands on 12 (the cursor's next).
    let (c, vip, m) = ((CLIENT, 52002), (VIP_WEB, 80), (WEB[2], 8080));
    let rst = Pkt::tcp(c, vip, RST);
    let want = to_int(WEB_MAC[2], &rst.clone().natted(c, m));
    lab.c("client RST", EXT, &from_router(&rst), Expect::Tx(INT, want));
    assert_eq!(member_gauges(&lab), [2, 1, 1, 1, 1, 2], "closed, not gone");
    let d = web_syn(&mut lab, "SYN reusing the port", 52002, 1);
    assert_deltas(&d, &[("sessions_created", 1), ("sessions_expired", 1)]);
    assert_eq!(member_gauges(&lab), [2, 2, 0, 1, 1, 2]);

    // Idle TCP SYN_SENT sessions expire after tcp_syn; UDP lives longer.
    lab.set_time(T0 + TCP_SYN_MS);
    let d = deltas_of(&mut lab, |lab| lab.maintain());
    assert_deltas(&d, &[("sessions_expired", 7), ("sessions_active", -7)]);
    assert_eq!(member_gauges(&lab), [0, 0, 0, 0, 1, 0]);
    // An expired session met on lookup is replaced: -1 on the old member,
    // +1 on the new one, without a sweep.
    lab.set_time(T0 + UDP_MS);
    let q2 = Pkt::udp((CLIENT, 52011), (VIP_DNS, 53), b"again");
    let want = to_int(DNS_MAC, &q2.clone().natted((CLIENT, 52011), (DNS, 53)));
    let d = lab.c(
        "UDP after idling out",
        EXT,
        &from_router(&q2),
        Expect::Tx(INT, want),
    );
    assert_deltas(&d, &[("sessions_expired", 1), ("sessions_created", 1)]);
    assert_eq!(member_gauges(&lab), [0, 0, 0, 0, 1, 0]);
    lab.set_time(T0 + 2 * UDP_MS);
    lab.maintain();
    assert_eq!(member_gauges(&lab), [0; 6]);
    assert!(lab.sessions(0).is_empty());
}

#[test]
fn member_session_gauge_drops_on_reset() {
    let mut lab = reset_lab();
    let mut ids = Idents::default();
    probe_46000(&mut lab, &mut ids);
    assert_eq!(
        member_gauges(&lab),
        [1, 1, 0, 0, 0, 0],
        "pending still counts"
    );
    let answer = Pkt::tcp((CLIENT, 46000), (VIP_WEB, 80), ACK).seq_ack(111, 5001);
    lab.c("probe answer", EXT, &from_router(&answer), Expect::Consumed);
    assert_eq!(member_gauges(&lab), [0, 1, 0, 0, 0, 0]);
    drain_generated(&mut lab);
}

// ---------------------------------------------------------------------------
// reset_on_timeout, source ACL, persistence, methods
// ---------------------------------------------------------------------------

/// The web virtual server with `extra` keys appended to its table.
fn web_vs_with(extra: &str) -> String {
    let anchor = "pool = \"web\"\nforwarding = \"dest_nat\"\n";
    variant(&[(anchor, &format!("{anchor}{extra}"))])
}

#[test]
fn reset_on_timeout_probes_both_ends_and_resets_with_the_answers_numbers() {
    let mut lab = lab_from(&web_vs_with("reset_on_timeout = true\n"));
    let mut ids = Idents::default();
    let (c, vip, m) = ((CLIENT, 47000), (VIP_WEB, 80), (WEB[0], 8080));
    web_syn(&mut lab, "47000: SYN", 47000, 0);
    web_handshake(&mut lab, 47000, WEB[0], WEB_MAC[0]);

    // Idle for tcp_established: probed instead of forgotten.
    lab.set_time(T0 + TCP_EST_MS - 1);
    lab.maintain();
    assert!(drain_generated(&mut lab).is_empty(), "not idle long enough");
    lab.set_time(T0 + TCP_EST_MS);
    lab.maintain();
    let s = lab.session(0, CLIENT, 47000).expect("kept until answered");
    assert_ne!(s.state & flag::RESET_PENDING, 0);
    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "a probe to each end: {g:?}");
    assert_generated("probe to client", &mut ids, &g[0], EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment(vip, c, PROBE_SEQ, 0, ACK, id),
        )
    });
    assert_generated("probe to member", &mut ids, &g[1], INT, |id| {
        let probe = switch_segment(c, vip, PROBE_SEQ, 0, ACK, id).natted(c, m);
        bare_frame(WEB_MAC[0], INT_MAC, &probe)
    });

    // The member answers first, with its numbers: seq 7000, ack 300.
    let answer = Pkt::tcp(m, c, ACK).seq_ack(7000, 300);
    let d = lab.c(
        "member answers the probe",
        INT,
        &from_int(WEB_MAC[0], &answer),
        Expect::Consumed,
    );
    assert_deltas(&d, &[("sessions_reset", 1), ("sessions_active", -1)]);
    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "two RSTs: {g:?}");
    // To the member: RST at the number it acknowledged.
    assert_generated("RST to member", &mut ids, &g[0], INT, |id| {
        let rst = switch_segment(c, vip, 300, 0, RST, id).natted(c, m);
        bare_frame(WEB_MAC[0], INT_MAC, &rst)
    });
    // To the client: RST|ACK at the member's sequence number, from the VIP.
    assert_generated("RST to client", &mut ids, &g[1], EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment(vip, c, 7000, 300, RST | ACK, id),
        )
    });
    // The client's late answer to its probe finds no session.
    let late = Pkt::tcp(c, vip, ACK).seq_ack(300, 7000);
    lab.c(
        "client's answer after the reset",
        EXT,
        &from_router(&late),
        Expect::Drop(R::NoSession),
    );
}

#[test]
fn reset_on_timeout_leaves_other_states_to_expire() {
    let mut lab = lab_from(&web_vs_with("reset_on_timeout = true\n"));
    web_syn(&mut lab, "47001: SYN only", 47001, 0);
    lab.set_time(T0 + TCP_SYN_MS);
    let d = deltas_of(&mut lab, |lab| lab.maintain());
    assert_deltas(&d, &[("sessions_expired", 1), ("sessions_active", -1)]);
    assert!(
        drain_generated(&mut lab).is_empty(),
        "a half-open session is not reset"
    );
}

#[test]
fn source_acl_longest_prefix_deny_wins_ties() {
    let acl = "allow_sources = [\"203.0.113.0/24\"]\ndeny_sources = [\"203.0.113.7/32\", \"203.0.113.64/26\"]\n";
    let mut lab = lab_from(&web_vs_with(acl));
    let vip = (VIP_WEB, 80);
    let denied = |lab: &Lab| lab.workers[0].stats().vs_denied[usize::from(VS_WEB)].load(Relaxed);
    for (client, ok, denied_so_far) in [
        (Ipv4Addr::new(203, 0, 113, 7), false, 1), // deny /32 inside allow /24
        (Ipv4Addr::new(203, 0, 113, 8), true, 1),
        (Ipv4Addr::new(203, 0, 113, 70), false, 2), // deny /26
        (Ipv4Addr::new(192, 0, 2, 1), false, 3),    // outside the allow list
    ] {
        let syn = Pkt::tcp((client, 48000), vip, SYN);
        let name = format!("SYN from {client}");
        if ok {
            let want = to_int(
                WEB_MAC[0],
                &syn.clone().natted((client, 48000), (WEB[0], 8080)),
            );
            lab.c(&name, EXT, &from_router(&syn), Expect::Tx(INT, want));
        } else {
            lab.c(
                &name,
                EXT,
                &from_router(&syn),
                Expect::Drop(R::SourceDenied),
            );
        }
        assert_eq!(
            denied(&lab),
            denied_so_far,
            "{name}: denied per virtual server"
        );
    }
    assert_eq!(denied(&lab), 3);
    // Equal prefix in both lists: deny wins.
    let mut lab = lab_from(&web_vs_with(
        "allow_sources = [\"203.0.113.7/32\"]\ndeny_sources = [\"203.0.113.7/32\"]\n",
    ));
    let syn = Pkt::tcp((CLIENT, 48001), vip, SYN);
    lab.c(
        "equal prefix",
        EXT,
        &from_router(&syn),
        Expect::Drop(R::SourceDenied),
    );
}

#[test]
fn persistence_keeps_a_client_on_its_member_across_ports_and_workers() {
    let cfg = web_vs_with("persistence = { timeout = \"10s\", netmask = 24 }\n");
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 2), 64);
    let vip = (VIP_WEB, 80);
    // Ownership follows the address masked to the persistence netmask.
    let owner = usize::from(client_owner(Ipv4Addr::new(203, 0, 113, 0), 2));
    assert_eq!(lab.workers[0].shared().client_owner(CLIENT), owner as u16);
    let other = 1 - owner;
    // Every port of the client belongs to one worker: the other hands it over.
    let syn = Pkt::tcp((CLIENT, 49000), vip, SYN);
    lab.case(
        "SYN on the other worker",
        other,
        EXT,
        &from_router(&syn),
        false,
        Expect::Redirect(owner as u16),
    );
    for (i, port) in (49000..49006u16).enumerate() {
        let syn = Pkt::tcp((CLIENT, port), vip, SYN);
        let want = to_int(
            WEB_MAC[0],
            &syn.clone().natted((CLIENT, port), (WEB[0], 8080)),
        );
        let name = format!("SYN {i} from port {port}: the remembered member");
        lab.case(
            &name,
            owner,
            EXT,
            &from_router(&syn),
            false,
            Expect::Tx(INT, want),
        );
    }
    // A neighbour in the same /24, owned by the same worker, shares the entry.
    let near = Ipv4Addr::new(203, 0, 113, 99);
    assert_eq!(lab.workers[0].shared().client_owner(near), owner as u16);
    let syn = Pkt::tcp((near, 40000), vip, SYN);
    let want = to_int(
        WEB_MAC[0],
        &syn.clone().natted((near, 40000), (WEB[0], 8080)),
    );
    lab.case(
        "same /24, same member",
        owner,
        EXT,
        &from_router(&syn),
        false,
        Expect::Tx(INT, want),
    );
    lab.maintain();
    let st = lab.workers[owner].stats();
    assert_eq!(st.persistence_entries.load(Relaxed), 1);
    assert_eq!(
        st.persistence_hits.load(Relaxed),
        6,
        "every SYN after the first found the entry"
    );
    // The remembered member goes down: a new one is chosen and remembered.
    set_up(&lab, POOL_WEB, 0, false);
    for port in [49100u16, 49101] {
        let syn = Pkt::tcp((CLIENT, port), vip, SYN);
        let want = to_int(
            WEB_MAC[1],
            &syn.clone().natted((CLIENT, port), (WEB[1], 8080)),
        );
        lab.case(
            "member down: the next one, kept",
            owner,
            EXT,
            &from_router(&syn),
            false,
            Expect::Tx(INT, want),
        );
    }
}

/// A completed web session from `cport` on member `m`, then closed by FINs.
fn web_session_closed(lab: &mut Lab, cport: u16, m: usize) {
    web_syn(lab, &format!("{cport}: SYN"), cport, m);
    web_handshake(lab, cport, WEB[m], WEB_MAC[m]);
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
fn a_spoofed_syn_flood_does_not_move_a_persistent_client() {
    let mut lab = lab_from(&web_vs_with(
        "persistence = { timeout = \"10s\", netmask = 32 }\n",
    ));
    web_session_closed(&mut lab, 49200, 0);
    // Far more spoofed sources than the persistence table holds; each one's
    // SYN is balanced round robin (20,001 picks: the cursor ends on member 1).
    for i in 0..20_001u32 {
        let src = Ipv4Addr::from(0x6440_0000 | i);
        let syn = Pkt::tcp((src, 1024), (VIP_WEB, 80), SYN);
        let (v, _) = lab.run(0, EXT, &from_router(&syn), false);
        assert_eq!(v, Verdict::Tx(INT), "flood SYN {i}");
    }
    let fresh = Pkt::tcp((Ipv4Addr::new(192, 0, 2, 1), 1024), (VIP_WEB, 80), SYN);
    let want = to_int(
        WEB_MAC[1],
        &fresh
            .clone()
            .natted((Ipv4Addr::new(192, 0, 2, 1), 1024), (WEB[1], 8080)),
    );
    lab.c(
        "a new client: round robin",
        EXT,
        &from_router(&fresh),
        Expect::Tx(INT, want),
    );
    web_syn(
        &mut lab,
        "the persistent client comes back: its member",
        49201,
        0,
    );
}

#[test]
fn a_client_whose_connection_outlives_the_timeout_keeps_its_member() {
    let mut lab = lab_from(&web_vs_with(
        "persistence = { timeout = \"10s\", netmask = 32 }\n",
    ));
    web_syn(&mut lab, "first connection", 49300, 0);
    web_handshake(&mut lab, 49300, WEB[0], WEB_MAC[0]);
    let (c, vip, m) = ((CLIENT, 49300), (VIP_WEB, 80), (WEB[0], 8080));
    for t in [5_000, 15_000, 25_000, 30_000] {
        lab.set_time(T0 + t);
        lab.maintain();
        let data = Pkt::tcp(c, vip, ACK | PSH).seq_ack(101, 5001).payload(b"x");
        let want = to_int(WEB_MAC[0], &data.clone().natted(c, m));
        lab.c(
            &format!("data at {t} ms"),
            EXT,
            &from_router(&data),
            Expect::Tx(INT, want),
        );
    }
    // 30 s on, three times the timeout: the open connection kept the entry.
    web_syn(&mut lab, "second connection, 30 s later", 49301, 0);
}

#[test]
fn reset_on_timeout_answers_a_packet_that_finds_its_session_expired() {
    let mut lab = lab_from(&web_vs_with("reset_on_timeout = true\n"));
    let mut ids = Idents::default();
    let (vip, m) = ((VIP_WEB, 80), (WEB[0], 8080));
    // Client side: the client comes back just after the timeout, before any
    // sweep saw the session.
    let c = (CLIENT, 47100);
    web_syn(&mut lab, "47100: SYN", 47100, 0);
    web_handshake(&mut lab, 47100, WEB[0], WEB_MAC[0]);
    lab.set_time(T0 + TCP_EST_MS);
    let data = Pkt::tcp(c, vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"late");
    let d = lab.c(
        "client data after the timeout",
        EXT,
        &from_router(&data),
        Expect::Consumed,
    );
    assert_deltas(&d, &[("sessions_reset", 1), ("sessions_active", -1)]);
    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "a RST to each end: {g:?}");
    // To the client: RST at the number it acknowledged.
    assert_generated("RST to client", &mut ids, &g[0], EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment(vip, c, 5001, 0, RST, id),
        )
    });
    // To the member: RST at the client's sequence number.
    assert_generated("RST to member", &mut ids, &g[1], INT, |id| {
        let rst = switch_segment(c, vip, 101, 5001, RST | ACK, id).natted(c, m);
        bare_frame(WEB_MAC[0], INT_MAC, &rst)
    });

    // Member side: the member's packet finds it expired.
    let c = (CLIENT, 47101);
    lab.set_time(T0 + 100_000);
    web_syn(&mut lab, "47101: SYN", 47101, 1);
    web_handshake(&mut lab, 47101, WEB[1], WEB_MAC[1]);
    lab.set_time(T0 + 100_000 + TCP_EST_MS);
    let push = Pkt::tcp((WEB[1], 8080), c, ACK | PSH)
        .seq_ack(5001, 101)
        .payload(b"late");
    lab.c(
        "member data after the timeout",
        INT,
        &from_int(WEB_MAC[1], &push),
        Expect::Consumed,
    );
    let g = drain_generated(&mut lab);
    assert_eq!(g.len(), 2, "a RST to each end: {g:?}");
    assert_generated("RST to member", &mut ids, &g[0], INT, |id| {
        let rst = switch_segment(c, vip, 101, 0, RST, id).natted(c, (WEB[1], 8080));
        bare_frame(WEB_MAC[1], INT_MAC, &rst)
    });
    assert_generated("RST to client", &mut ids, &g[1], EXT, |id| {
        bare_frame(
            ROUTER_MAC,
            EXT_MAC,
            &switch_segment(vip, c, 5001, 101, RST | ACK, id),
        )
    });
    // A SYN reusing the client port of an idled-out session opens a new one
    // (a client behind a NAT reuses ports): no RST for it.
    let c = (CLIENT, 47103);
    lab.set_time(T0 + 200_000);
    web_syn(&mut lab, "47103: SYN", 47103, 2);
    web_handshake(&mut lab, 47103, WEB[2], WEB_MAC[2]);
    lab.set_time(T0 + 200_000 + TCP_EST_MS);
    let syn = Pkt::tcp(c, vip, SYN).seq_ack(9_000_000, 0);
    let d = lab.c(
        "a new SYN on the idled-out session's port",
        EXT,
        &from_router(&syn),
        Expect::Tx(
            INT,
            to_int(WEB_MAC[0], &syn.clone().natted(c, (WEB[0], 8080))),
        ),
    );
    assert_deltas(&d, &[("sessions_created", 1), ("sessions_reset", 0)]);
    assert!(drain_generated(&mut lab).is_empty());
    // Without reset_on_timeout, such a packet is refused as before.
    let mut lab = lab_from(CONFIG);
    web_syn(&mut lab, "47102: SYN", 47102, 0);
    web_handshake(&mut lab, 47102, WEB[0], WEB_MAC[0]);
    lab.set_time(T0 + TCP_EST_MS);
    let data = Pkt::tcp((CLIENT, 47102), vip, ACK | PSH)
        .seq_ack(101, 5001)
        .payload(b"late");
    lab.c(
        "no reset_on_timeout",
        EXT,
        &from_router(&data),
        Expect::Drop(R::NoSession),
    );
    assert!(drain_generated(&mut lab).is_empty());
}

#[test]
fn refusals_are_answered_at_a_bounded_rate() {
    const RATE: u32 = 2_000; // REFUSAL_RATE: per second, and burst
    let mut lab = Lab::new(1, 64);
    lab.maintain();
    for m in 0..3 {
        set_up(&lab, POOL_WEB, m, false);
    }
    // Spoofed sources, all in one millisecond: a reflection attempt.
    let syn = |i: u32| {
        let src = Ipv4Addr::from(0x6440_0000 | i);
        from_router(&Pkt::tcp((src, 1024), (VIP_WEB, 80), SYN))
    };
    let answered = (0..RATE + 500)
        .filter(|i| lab.run(0, EXT, &syn(*i), false).0 == Verdict::Tx(EXT))
        .count() as u32;
    assert_eq!(answered, RATE);
    let st = lab.workers[0].stats();
    assert_eq!(st.drops_of(R::RefusalRateLimited), 500);
    assert_eq!(st.rejected_no_member.load(Relaxed), u64::from(RATE));
    // UDP refusals (ICMP port unreachable) share the budget.
    let dns_down = lab.workers[0].shared().member_id(2, 0);
    lab.workers[0].shared().members.set(dns_down, false);
    let q = Pkt::udp((CLIENT, 5353), (VIP_DNS, 53), b"q");
    lab.c(
        "UDP refusal over the rate",
        EXT,
        &from_router(&q),
        Expect::Drop(R::RefusalRateLimited),
    );
    // A millisecond later, two more are answered.
    lab.set_time(T0 + 1);
    lab.maintain();
    let answered = (0..10)
        .filter(|i| lab.run(0, EXT, &syn(RATE + 500 + i), false).0 == Verdict::Tx(EXT))
        .count() as u32;
    assert_eq!(answered, RATE / 1000);
}
