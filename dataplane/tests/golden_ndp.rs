//! Golden tests of IPv6 on the switch's own links: neighbour discovery
//! (answers for its addresses, learning, duplicate address detection, the
//! checks RFC 4861 asks for), echo replies, its solicitations and
//! announcements, and what goes to the kernel interface.
//!
//! Every expected frame is built by `common::frame6`, checksums included,
//! and compared byte for byte.

mod common;

use common::frame::*;
use common::frame6::*;
use common::lab::*;
use sluice_dataplane::packet::{PacketBuf, VecBuf};
use sluice_dataplane::stats::DropReason as R;
use std::net::{IpAddr, Ipv6Addr};

const EXT6: &str = "2001:db8:1::1";
const INT6: &str = "fd00:20::1";
const ROUTER6: &str = "2001:db8:1::fe";
const ROUTER_LL: &str = "fe80::fe";
const MEMBER6: &str = "fd00:20::11";

/// The lab with IPv6 addresses on both ports and a default route.
fn lab6() -> Lab {
    let cfg = variant(&[
        (
            r#"addresses = ["198.51.100.1/24"]"#,
            r#"addresses = ["198.51.100.1/24", "2001:db8:1::1/64"]"#,
        ),
        (
            r#"addresses = ["10.20.0.1/24"]"#,
            r#"addresses = ["10.20.0.1/24", "fd00:20::1/64"]"#,
        ),
        (
            "[[route]]\n",
            "[[route]]\ndestination = \"::/0\"\ngateway = \"2001:db8:1::fe\"\n\n[[route]]\n",
        ),
    ]);
    Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64)
}

fn mac_of(lab: &Lab, ip: &str, port: u16) -> Option<Mac> {
    lab.workers[0]
        .shared()
        .neighbors
        .lookup(v6(ip), port)
        .map(|e| e.mac)
}

/// The switch's link-local address on the ext port, from its MAC by hand
/// (modified EUI-64).
fn ext_link_local() -> Ipv6Addr {
    let m = EXT_MAC;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The advertisement the switch answers a solicitation for `target` with.
fn advert(to_mac: Mac, target: Ipv6Addr, to: Ipv6Addr, flags: u8) -> Vec<u8> {
    let msg = nd(target, to, NA, flags, target, Some(EXT_MAC));
    icmp_frame(to_mac, EXT_MAC, target, to, 255, &msg)
}

#[test]
fn solicitations_for_the_switch_are_answered_and_their_sender_learned() {
    let mut lab = lab6();
    for target in [v6(EXT6), ext_link_local()] {
        let (group, group_mac) = solicited(target);
        let ns = nd(v6(ROUTER_LL), group, NS, 0, target, Some(ROUTER_MAC));
        let frame = icmp_frame(group_mac, ROUTER_MAC, v6(ROUTER_LL), group, 255, &ns);
        let want = advert(ROUTER_MAC, target, v6(ROUTER_LL), 0x60);
        let d = lab.c(
            &format!("NS for {target}"),
            EXT,
            &frame,
            Expect::Tx(EXT, want),
        );
        assert_deltas(&d, &[("nd_replies", 1), ("rx_packets", 1)]);
    }
    assert_eq!(mac_of(&lab, ROUTER_LL, EXT), Some(ROUTER_MAC));
    assert_eq!(
        mac_of(&lab, ROUTER_LL, INT),
        None,
        "learned on its port only"
    );
    // Unicast (a neighbour checking it can still reach the switch), with
    // no link-layer option: the answer goes to the frame's source MAC.
    let ns = nd(v6(ROUTER6), v6(EXT6), NS, 0, v6(EXT6), None);
    let frame = icmp_frame(EXT_MAC, ROUTER_MAC, v6(ROUTER6), v6(EXT6), 255, &ns);
    let want = advert(ROUTER_MAC, v6(EXT6), v6(ROUTER6), 0x60);
    lab.c("unicast NS", EXT, &frame, Expect::Tx(EXT, want));
    assert_eq!(mac_of(&lab, ROUTER6, EXT), Some(ROUTER_MAC));
}

#[test]
fn duplicate_address_detection_is_told_the_address_is_taken() {
    let mut lab = lab6();
    let (group, group_mac) = solicited(v6(EXT6));
    let any = Ipv6Addr::UNSPECIFIED;
    let ns = nd(any, group, NS, 0, v6(EXT6), None);
    let frame = icmp_frame(group_mac, ROUTER_MAC, any, group, 255, &ns);
    let all = v6("ff02::1");
    let want = advert(ALL_NODES_MAC, v6(EXT6), all, 0x20);
    let d = lab.c("DAD for our address", EXT, &frame, Expect::Tx(EXT, want));
    assert!(!d.contains_key("nd_learned"), "nothing learned from ::");
    let bad = nd(any, group, NS, 0, v6(EXT6), Some(ROUTER_MAC));
    let frame = icmp_frame(group_mac, ROUTER_MAC, any, group, 255, &bad);
    lab.c(
        "DAD with a link-layer option",
        EXT,
        &frame,
        Expect::Drop(R::NdInvalid),
    );
    let ns = nd(any, v6(EXT6), NS, 0, v6(EXT6), None);
    let frame = icmp_frame(EXT_MAC, ROUTER_MAC, any, v6(EXT6), 255, &ns);
    lab.c(
        "DAD not to the solicited-node group",
        EXT,
        &frame,
        Expect::Drop(R::NdInvalid),
    );
}

#[test]
fn solicitations_that_fail_the_checks_are_dropped_and_teach_nothing() {
    let mut lab = lab6();
    let (group, group_mac) = solicited(v6(EXT6));
    let src = v6(ROUTER_LL);
    let frame = |hl: u8, msg: &[u8]| icmp_frame(group_mac, ROUTER_MAC, src, group, hl, msg);
    let ns = nd(src, group, NS, 0, v6(EXT6), Some(ROUTER_MAC));
    lab.c(
        "hop limit 64",
        EXT,
        &frame(64, &ns),
        Expect::Drop(R::NdInvalid),
    );
    let mut bad_sum = ns.clone();
    bad_sum[2] ^= 0x01;
    lab.c(
        "checksum",
        EXT,
        &frame(255, &bad_sum),
        Expect::Drop(R::Icmpv6Checksum),
    );
    let mut zero_opt = ns.clone();
    zero_opt[25] = 0;
    let c = checksum6(src, group, NH_ICMPV6, &{
        let mut m = zero_opt.clone();
        m[2..4].copy_from_slice(&[0, 0]);
        m
    });
    zero_opt[2..4].copy_from_slice(&c.to_be_bytes());
    lab.c(
        "option of length 0",
        EXT,
        &frame(255, &zero_opt),
        Expect::Drop(R::NdInvalid),
    );
    let other = nd(src, group, NS, 0, v6("2001:db8:1::99"), Some(ROUTER_MAC));
    lab.c(
        "NS for another host",
        EXT,
        &frame(255, &other),
        Expect::Drop(R::NdNotForUs),
    );
    let int = nd(src, group, NS, 0, v6(INT6), Some(ROUTER_MAC));
    lab.c(
        "NS for the int address on ext",
        EXT,
        &frame(255, &int),
        Expect::Drop(R::NdNotForUs),
    );
    assert_eq!(mac_of(&lab, ROUTER_LL, EXT), None);
}

#[test]
fn advertisements_teach_what_the_switch_asked_and_refresh_only_otherwise() {
    let mut lab = lab6();
    let m1: Mac = [0x02, 0, 0, 0, 0, 0x11];
    let m2: Mac = [0x02, 0, 0, 0, 0, 0x12];
    // An answer to the switch (to its address): learned; the kernel gets it too.
    let na = nd(v6(MEMBER6), v6(INT6), NA, 0x60, v6(MEMBER6), Some(m1));
    let frame = icmp_frame(INT_MAC, m1, v6(MEMBER6), v6(INT6), 255, &na);
    let d = lab.c("solicited NA", INT, &frame, Expect::Kernel);
    assert_deltas(&d, &[("nd_learned", 1), ("rx_packets", 1)]);
    assert_eq!(mac_of(&lab, MEMBER6, INT), Some(m1));
    // Unsolicited, to every node: refreshes a known neighbour only.
    let all = v6("ff02::1");
    let na = nd(v6(MEMBER6), all, NA, 0x20, v6(MEMBER6), Some(m2));
    let frame = icmp_frame(ALL_NODES_MAC, m2, v6(MEMBER6), all, 255, &na);
    lab.c("unsolicited NA, known", INT, &frame, Expect::Kernel);
    assert_eq!(mac_of(&lab, MEMBER6, INT), Some(m2));
    let stranger = "fd00:20::77";
    let na = nd(v6(stranger), all, NA, 0x20, v6(stranger), Some(m2));
    let frame = icmp_frame(ALL_NODES_MAC, m2, v6(stranger), all, 255, &na);
    lab.c("unsolicited NA, unknown", INT, &frame, Expect::Kernel);
    assert_eq!(mac_of(&lab, stranger, INT), None);
    let na = nd(v6(stranger), all, NA, 0x60, v6(stranger), Some(m2));
    let frame = icmp_frame(ALL_NODES_MAC, m2, v6(stranger), all, 255, &na);
    lab.c(
        "solicited flag to a group",
        INT,
        &frame,
        Expect::Drop(R::NdInvalid),
    );
    let off_link = "fd00:99::5";
    let na = nd(v6(off_link), v6(INT6), NA, 0x60, v6(off_link), Some(m2));
    let frame = icmp_frame(INT_MAC, m2, v6(off_link), v6(INT6), 255, &na);
    lab.c("NA for an off-link target", INT, &frame, Expect::Kernel);
    assert_eq!(mac_of(&lab, off_link, INT), None);
}

#[test]
fn echo_requests_to_the_switch_are_answered_others_go_to_the_kernel() {
    let mut lab = lab6();
    let client = v6("2001:db8:99::7");
    let req = icmpv6(
        client,
        v6(EXT6),
        ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 1],
        b"ping6",
    );
    let frame = icmp_frame(EXT_MAC, ROUTER_MAC, client, v6(EXT6), 61, &req);
    let reply = icmpv6(
        v6(EXT6),
        client,
        ECHO_REPLY,
        0,
        [0x12, 0x34, 0, 1],
        b"ping6",
    );
    let want = icmp_frame(ROUTER_MAC, EXT_MAC, v6(EXT6), client, 64, &reply);
    let d = lab.c(
        "echo to the ext address",
        EXT,
        &frame,
        Expect::Tx(EXT, want),
    );
    assert_deltas(&d, &[("icmp_echo_replies", 1), ("rx_packets", 1)]);
    let req = icmpv6(
        client,
        v6("2001:db8:1::99"),
        ECHO_REQUEST,
        0,
        [0, 1, 0, 1],
        b"x",
    );
    let frame = icmp_frame(EXT_MAC, ROUTER_MAC, client, v6("2001:db8:1::99"), 61, &req);
    lab.c(
        "echo to another host",
        EXT,
        &frame,
        Expect::Drop(R::NotForUs),
    );
    // Router advertisements and other ICMPv6 to the switch: the kernel's.
    let all = v6("ff02::1");
    let ra = icmpv6(v6(ROUTER_LL), all, 134, 0, [64, 0, 0, 0], &[0; 8]);
    let frame = icmp_frame(ALL_NODES_MAC, ROUTER_MAC, v6(ROUTER_LL), all, 255, &ra);
    lab.c("router advertisement", EXT, &frame, Expect::Kernel);
    // An echo behind a destination options header: not answered in
    // place (the kernel's).
    let mut dest_opts = vec![NH_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
    dest_opts.extend_from_slice(&icmpv6(
        client,
        v6(EXT6),
        ECHO_REQUEST,
        0,
        [0, 2, 0, 1],
        b"x",
    ));
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6(EXT6), NH_DEST_OPTS, 61, &dest_opts),
    );
    lab.c(
        "echo behind destination options",
        EXT,
        &frame,
        Expect::Kernel,
    );
    // TCP to the interface address: the kernel's (SSH, BGP).
    let mut syn = vec![
        0xc0, 0x01, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let c = checksum6(client, v6(EXT6), NH_TCP, &syn);
    syn[16..18].copy_from_slice(&c.to_be_bytes());
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6(EXT6), NH_TCP, 61, &syn),
    );
    lab.c("TCP SYN to the ext address", EXT, &frame, Expect::Kernel);
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6("2001:db8:1::10"), NH_TCP, 61, &syn),
    );
    lab.c("TCP to no VIP", EXT, &frame, Expect::Drop(R::NotForUs));
}

#[test]
fn extension_header_chains_past_the_bound_or_the_packet_are_dropped() {
    let mut lab = lab6();
    let client = v6("2001:db8:99::7");
    let echo = icmpv6(client, v6(EXT6), ECHO_REQUEST, 0, [0, 1, 0, 1], b"x");
    // Nine destination options headers: one more than the walk allows.
    let mut chain = Vec::new();
    for i in 0..9 {
        let next = if i == 8 { NH_ICMPV6 } else { NH_DEST_OPTS };
        chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    chain.extend_from_slice(&echo);
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6(EXT6), NH_DEST_OPTS, 61, &chain),
    );
    lab.c(
        "nine extension headers",
        EXT,
        &frame,
        Expect::Drop(R::Malformed),
    );
    // A header whose length runs past the payload.
    let long = [NH_ICMPV6, 9, 1, 4, 0, 0, 0, 0];
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6(EXT6), NH_DEST_OPTS, 61, &long),
    );
    lab.c(
        "extension header past the payload",
        EXT,
        &frame,
        Expect::Drop(R::Truncated),
    );
    // Hop-by-hop options anywhere but first.
    let mut hbh = vec![0, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&[NH_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
    hbh.extend_from_slice(&echo);
    let frame = eth(
        EXT_MAC,
        ROUTER_MAC,
        ETH_IPV6,
        &ipv6(client, v6(EXT6), NH_DEST_OPTS, 61, &hbh),
    );
    lab.c("hop-by-hop second", EXT, &frame, Expect::Drop(R::Malformed));
}

#[test]
fn the_switch_solicits_its_next_hops_and_announces_its_addresses() {
    let lab = lab6();
    let w = &lab.workers[0];
    let mut buf = VecBuf::new(&[]);
    assert!(w.write_neighbor_request(INT, IpAddr::V6(v6(MEMBER6)), &mut buf));
    let (group, group_mac) = solicited(v6(MEMBER6));
    // From the port's address on the member's prefix.
    let ns = nd(v6(INT6), group, NS, 0, v6(MEMBER6), Some(INT_MAC));
    let want = icmp_frame(group_mac, INT_MAC, v6(INT6), group, 255, &ns);
    assert!(
        buf.data() == want.as_slice(),
        "NS\n{}",
        diff(buf.data(), &want)
    );
    // A next hop outside the port's prefixes: from its link-local address.
    let mut buf = VecBuf::new(&[]);
    assert!(w.write_neighbor_request(EXT, IpAddr::V6(v6(ROUTER_LL)), &mut buf));
    let (group, group_mac) = solicited(v6(ROUTER_LL));
    let ns = nd(ext_link_local(), group, NS, 0, v6(ROUTER_LL), Some(EXT_MAC));
    let want = icmp_frame(group_mac, EXT_MAC, ext_link_local(), group, 255, &ns);
    assert!(
        buf.data() == want.as_slice(),
        "NS from link-local\n{}",
        diff(buf.data(), &want)
    );
    let mut buf = VecBuf::new(&[]);
    assert!(w.write_announcement(EXT, IpAddr::V6(v6(EXT6)), &mut buf));
    let all = v6("ff02::1");
    let want = advert(ALL_NODES_MAC, v6(EXT6), all, 0x20);
    assert!(
        buf.data() == want.as_slice(),
        "unsolicited NA\n{}",
        diff(buf.data(), &want)
    );
}

#[test]
fn the_switch_speaks_from_an_address_the_destination_can_answer() {
    let lab = lab6();
    let sh = lab.workers[0].shared();
    // On the member's prefix: that address; a link-local neighbour: the
    // link-local address; behind a gateway: the port's first address (a
    // link-local source could not be answered from there).
    assert_eq!(sh.port_address6(INT, v6(MEMBER6)), v6(INT6));
    assert_eq!(sh.port_address6(EXT, v6(ROUTER_LL)), ext_link_local());
    assert_eq!(sh.port_address6(INT, v6("2001:db8:77::5")), v6(INT6));
}

#[test]
fn vrrp_over_ipv6_reaches_the_kernel_interface() {
    let mut lab = lab6();
    let peer = v6("fe80::2");
    let advert = [0x31, 51, 100, 1, 0, 100, 0, 0];
    let frame = |dst: &str| {
        eth(
            [0x33, 0x33, 0, 0, 0, 0x12],
            ROUTER_MAC,
            ETH_IPV6,
            &ipv6(peer, v6(dst), 112, 255, &advert),
        )
    };
    lab.c("VRRP to ff02::12", EXT, &frame("ff02::12"), Expect::Kernel);
    lab.c(
        "a site-wide group is not the switch's",
        EXT,
        &frame("ff05::12"),
        Expect::Drop(R::NotForUs),
    );
}
