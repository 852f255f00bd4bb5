//! Golden packets of `proxy_protocol = "v2"` (issue 20): the PROXY header
//! in front of the client's first bytes, written out here byte by byte
//! from the HAProxy specification (never by the switch's own writer), and
//! the sequence numbers of the rest of the connection shifted by its
//! length: the client's up, the member's acknowledgements and SACK edges
//! down.

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use common::lab6::{self, M1_MAC};
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::service::SNAT_FIRST_PORT;
use sluice_dataplane::worker::{Generated, Verdict};
use std::net::Ipv4Addr;

const C: (Ipv4Addr, u16) = (CLIENT, 44000);
const VIP: (Ipv4Addr, u16) = (VIP_BOTH, 80);
const M: (Ipv4Addr, u16) = (APP, 80);
const S: (Ipv4Addr, u16) = (SNAT_IP, SNAT_FIRST_PORT);
/// The client's ISN (its first byte is ISN + 1) and the member's.
const ISN: u32 = 999;
const FIRST: u32 = ISN + 1;
const M_ISN: u32 = 5000;
/// Bytes of an IPv4 PROXY header: 16 fixed, 12 of addresses and ports.
const L: u32 = 28;

/// The PROXY v2 header of a TCP/IPv4 connection from `src` to `dst`, from
/// section 2.2 of the specification.
fn header4(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src.0.octets());
    h.extend_from_slice(&dst.0.octets());
    h.extend_from_slice(&src.1.to_be_bytes());
    h.extend_from_slice(&dst.1.to_be_bytes());
    h
}

fn config(reset_on_timeout: bool) -> String {
    let both = r#"snat_addresses = ["10.20.0.100"]"#;
    let extra = if reset_on_timeout {
        "\nreset_on_timeout = true"
    } else {
        ""
    };
    variant(&[(both, &format!("{both}\nproxy_protocol = \"v2\"{extra}"))])
}

fn lab(reset_on_timeout: bool) -> Lab {
    Lab::with_shared(
        shared_from(&config(reset_on_timeout), &[EXT_MAC, INT_MAC], 1),
        16,
    )
}

fn from_client(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Pkt {
    Pkt::tcp(C, VIP, flags).seq_ack(seq, ack).payload(payload)
}

fn from_member(flags: u8, seq: u32, ack: u32) -> Pkt {
    Pkt::tcp(M, S, flags).seq_ack(seq, ack)
}

/// What the member gets of a client segment: NATed, its payload `payload`
/// and its sequence number `seq`.
fn at_member(p: &Pkt, seq: u32, payload: &[u8]) -> Vec<u8> {
    let (ack, flags) = match &p.body {
        Body::Tcp { ack, flags, .. } => (*ack, *flags),
        _ => unreachable!(),
    };
    let p = Pkt::tcp(C, VIP, flags).seq_ack(seq, ack).payload(payload);
    to_int(APP_MAC, &p.natted(S, M))
}

/// SYN and SYN-ACK of the connection from client port `cport`; the
/// handshake's last ACK is the caller's.
fn open(lab: &mut Lab) {
    let syn = from_client(SYN, ISN, 0, b"");
    lab.c(
        "SYN: no header, nothing shifted",
        EXT,
        &from_router(&syn),
        Expect::Tx(INT, to_int(APP_MAC, &syn.clone().natted(S, M))),
    );
    let sa = from_member(SYN | ACK, M_ISN, FIRST);
    lab.c(
        "SYN-ACK: acknowledges the client's ISN + 1 as it is",
        INT,
        &from_int(APP_MAC, &sa),
        Expect::Tx(EXT, to_router(&sa.clone().natted(VIP, C))),
    );
}

/// A member segment with TCP options `opts` (whole words), its checksums
/// computed here.
fn with_options(p: &Pkt, opts: &[u8]) -> Pkt {
    let Body::Tcp {
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        ..
    } = p.body.clone()
    else {
        unreachable!()
    };
    // Options ride in front of the payload: built as one byte string and
    // the data offset set over it.
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.push((((20 + opts.len()) / 4) << 4) as u8);
    seg.push(flags);
    seg.extend_from_slice(&window.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 0]);
    seg.extend_from_slice(opts);
    let c = l4_checksum(p.src, p.dst, PROTO_TCP, &seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    Pkt {
        body: Body::Raw {
            proto: PROTO_TCP,
            data: seg,
        },
        ..p.clone()
    }
}

/// SACK option (two NOPs, kind 5) with `blocks`.
fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![1, 1, 5, (2 + 8 * blocks.len()) as u8];
    for (l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}

#[test]
fn the_header_goes_in_front_of_the_client_bytes_and_the_numbers_follow() {
    let mut lab = lab(false);
    open(&mut lab);
    let h = header4(C, VIP);
    assert_eq!(h.len(), L as usize);

    // The handshake's ACK carries the header: a server that speaks first
    // (SMTP, FTP) learns the client before the client says anything.
    let ack = from_client(ACK, FIRST, M_ISN + 1, b"");
    lab.c(
        "the handshake's ACK carries the header",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, at_member(&ack, FIRST, &h)),
    );

    // The client's first bytes start at FIRST too: header again, in front
    // (the member's TCP trims the copy it has), and again when the client
    // retransmits them.
    let get = from_client(ACK | PSH, FIRST, M_ISN + 1, b"GET / HTTP/1.1\r\n\r\n");
    let want = at_member(
        &get,
        FIRST,
        &[h.as_slice(), b"GET / HTTP/1.1\r\n\r\n"].concat(),
    );
    lab.c(
        "first data: header + data",
        EXT,
        &from_router(&get),
        Expect::Tx(INT, want.clone()),
    );
    lab.c(
        "its retransmission: the header again",
        EXT,
        &from_router(&get),
        Expect::Tx(INT, want),
    );

    // Later client bytes: shifted by the header's length.
    let next = FIRST + 18;
    let more = from_client(ACK | PSH, next, M_ISN + 1, b"more");
    lab.c(
        "later data: sequence + 28",
        EXT,
        &from_router(&more),
        Expect::Tx(INT, at_member(&more, next + L, b"more")),
    );

    // The member acknowledges in its numbers; the client hears its own.
    let acked = from_member(ACK, M_ISN + 1, next + L + 4);
    lab.c(
        "member's ACK: acknowledgement - 28",
        INT,
        &from_int(APP_MAC, &acked),
        Expect::Tx(
            EXT,
            to_router(&from_member(ACK, M_ISN + 1, next + 4).natted(VIP, C)),
        ),
    );
    let partial = from_member(ACK, M_ISN + 1, FIRST + 10);
    lab.c(
        "an acknowledgement inside the header: the client's first byte",
        INT,
        &from_int(APP_MAC, &partial),
        Expect::Tx(
            EXT,
            to_router(&from_member(ACK, M_ISN + 1, FIRST).natted(VIP, C)),
        ),
    );

    // SACK: both edges of each block back in the client's numbers.
    let blocks = [
        (next + L + 100, next + L + 200),
        (next + L + 300, next + L + 400),
    ];
    let sacked = with_options(&from_member(ACK, M_ISN + 1, next + L + 4), &sack(&blocks));
    let back = [(next + 100, next + 200), (next + 300, next + 400)];
    // (Options are raw bytes to the builder: the NATed ports are its own.)
    let natted = Pkt::tcp(VIP, C, ACK).seq_ack(M_ISN + 1, next + 4).ttl(63);
    let want = with_options(&natted, &sack(&back));
    lab.c(
        "SACK blocks - 28",
        INT,
        &from_int(APP_MAC, &sacked),
        Expect::Tx(EXT, to_router(&want)),
    );

    // The member's own sequence numbers are the client's acknowledgements:
    // untouched both ways.
    let data = from_member(ACK | PSH, M_ISN + 1, next + L + 4);
    let data = Pkt::payload(data, b"HTTP/1.1 200 OK\r\n");
    let want = from_member(ACK | PSH, M_ISN + 1, next + 4).payload(b"HTTP/1.1 200 OK\r\n");
    lab.c(
        "member data: its numbers stay",
        INT,
        &from_int(APP_MAC, &data),
        Expect::Tx(EXT, to_router(&want.natted(VIP, C))),
    );
    let acks = from_client(ACK, next + 4, M_ISN + 18, b"");
    lab.c(
        "client ACK of it: acknowledgement as sent, sequence + 28",
        EXT,
        &from_router(&acks),
        Expect::Tx(INT, at_member(&acks, next + 4 + L, b"")),
    );
}

#[test]
fn a_fin_in_the_first_data_segment_follows_the_header() {
    let mut lab = lab(false);
    open(&mut lab);
    // The handshake completes with the client's whole request and its FIN.
    let req = from_client(ACK | PSH | FIN, FIRST, M_ISN + 1, b"QUIT\r\n");
    let want = at_member(
        &req,
        FIRST,
        &[header4(C, VIP).as_slice(), b"QUIT\r\n"].concat(),
    );
    lab.c(
        "data and FIN behind the header",
        EXT,
        &from_router(&req),
        Expect::Tx(INT, want),
    );
    // The member acknowledges header, data and FIN.
    let acked = from_member(ACK | FIN, M_ISN + 1, FIRST + L + 6 + 1);
    lab.c(
        "its ACK of the FIN: the client's FIN + 1",
        INT,
        &from_int(APP_MAC, &acked),
        Expect::Tx(
            EXT,
            to_router(&from_member(ACK | FIN, M_ISN + 1, FIRST + 7).natted(VIP, C)),
        ),
    );
}

#[test]
fn a_first_segment_with_no_room_for_the_header_sends_it_alone() {
    let mut lab = lab(false);
    open(&mut lab);
    // The handshake's ACK was lost on the client's side of the switch; the
    // first segment seen is a full-sized one (1500 bytes of IP).
    let full = vec![0x61; 1460];
    let big = from_client(ACK | PSH, FIRST, M_ISN + 1, &full);
    lab.c(
        "a full segment: sent shifted, without the header",
        EXT,
        &from_router(&big),
        Expect::Tx(INT, at_member(&big, FIRST + L, &full)),
    );
    // The header follows alone, at the client's first byte, with the
    // client's window, as a segment the switch writes.
    let g = lab.workers[0]
        .pop_generated()
        .expect("the header is queued");
    assert!(
        matches!(g, Generated::ProxyHeader { seq: FIRST, .. }),
        "{g:?}"
    );
    assert!(lab.workers[0].pop_generated().is_none());
    let mut buf = VecBuf::empty();
    let v = lab.workers[0].write_generated(g, &mut buf);
    assert_eq!(v, Verdict::Tx(INT));
    let out = buf.data().to_vec();
    let mut alone = from_client(ACK | PSH, FIRST, M_ISN + 1, &header4(C, VIP)).natted(S, M);
    alone.id = ident_of(&out);
    let want = to_int(APP_MAC, &alone);
    assert!(out == want, "the header alone\n{}", diff(&out, &want));
}

#[test]
fn rsts_the_switch_writes_use_each_end_s_numbers() {
    let mut lab = lab(true);
    open(&mut lab);
    let ack = from_client(ACK, FIRST, M_ISN + 1, b"");
    lab.c(
        "the handshake's ACK carries the header",
        EXT,
        &from_router(&ack),
        Expect::Tx(INT, at_member(&ack, FIRST, &header4(C, VIP))),
    );
    // Past the established timeout, the client's next segment resets the
    // session: a RST answers the client, and the member gets a RST at the
    // segment's sequence number in the member's numbers.
    lab.set_time(T0 + TCP_EST_MS + 1_000);
    let late = from_client(ACK | PSH, FIRST + 5, M_ISN + 1, b"late");
    lab.c(
        "a segment of the idled-out session",
        EXT,
        &from_router(&late),
        Expect::Consumed,
    );
    let mut to_member = None;
    while let Some(g) = lab.workers[0].pop_generated() {
        if let Generated::Rst {
            to_client: false,
            seq,
            ack,
            ..
        } = g
        {
            to_member = Some((seq, ack));
        }
    }
    assert_eq!(
        to_member,
        Some((FIRST + 5 + L, M_ISN + 1)),
        "the member's RST"
    );
}

#[test]
fn ipv6_carries_the_52_byte_header() {
    let cfg = lab6::config6().replace(
        r#"snat_addresses = ["fd00:20::100"]"#,
        "snat_addresses = [\"fd00:20::100\"]\nproxy_protocol = \"v2\"",
    );
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 16);
    let (c, vip) = ((v6(lab6::CLIENT6), 40000u16), (v6(lab6::BOTH6), 80u16));
    let syn = lab6::from_client(lab6::BOTH6, 80, SYN, ISN, 0, b"");
    let (_, out) = lab.run(0, EXT, &syn, false);
    // The member and SNAT port the session took, from the SYN sent.
    let ip = &out[14..];
    let member = (v6_at(ip, 24), u16::from_be_bytes([ip[42], ip[43]]));
    let snat = (v6_at(ip, 8), u16::from_be_bytes([ip[40], ip[41]]));
    let sa = frame6(
        INT_MAC,
        M1_MAC,
        member.0,
        snat.0,
        NH_TCP,
        64,
        &tcp6(member, snat, SYN | ACK, M_ISN, FIRST, b""),
    );
    lab.run(0, INT, &sa, false);

    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0, 36]);
    h.extend_from_slice(&c.0.octets());
    h.extend_from_slice(&vip.0.octets());
    h.extend_from_slice(&c.1.to_be_bytes());
    h.extend_from_slice(&vip.1.to_be_bytes());
    assert_eq!(h.len(), 52);
    let ack = lab6::from_client(lab6::BOTH6, 80, ACK, FIRST, M_ISN + 1, b"");
    let mac = [out[0], out[1], out[2], out[3], out[4], out[5]];
    let want = frame6(
        mac,
        INT_MAC,
        snat.0,
        member.0,
        NH_TCP,
        59,
        &tcp6(snat, member, ACK, FIRST, M_ISN + 1, &h),
    );
    lab.c(
        "IPv6: the handshake's ACK carries the header",
        EXT,
        &ack,
        Expect::Tx(INT, want),
    );
    let acked = frame6(
        INT_MAC,
        M1_MAC,
        member.0,
        snat.0,
        NH_TCP,
        64,
        &tcp6(member, snat, ACK, M_ISN + 1, FIRST + 52, b""),
    );
    let want = frame6(
        ROUTER_MAC,
        EXT_MAC,
        vip.0,
        c.0,
        NH_TCP,
        63,
        &tcp6(vip, c, ACK, M_ISN + 1, FIRST, b""),
    );
    lab.c(
        "IPv6: the member's ACK of it is the client's first byte",
        INT,
        &acked,
        Expect::Tx(EXT, want),
    );
}

fn v6_at(ip: &[u8], at: usize) -> std::net::Ipv6Addr {
    let b: [u8; 16] = ip[at..at + 16].try_into().expect("16 bytes");
    b.into()
}
