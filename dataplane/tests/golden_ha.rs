//! Golden tests of address ownership under `[ha] vip_ownership =
//! "kernel"`: a VIP or SNAT address is the switch's (answered for ARP,
//! balanced, announced) only while the kernel interfaces hold it, and any
//! other address they hold (a floating gateway) is answered as an
//! interface address of its port.

mod common;

use common::frame::*;
use common::lab::*;
use sluice_dataplane::stats::DropReason as R;
use std::net::{IpAddr, Ipv4Addr};

const HOST: Mac = [0x02, 0, 0, 0, 0, 0x77];
const HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
const MEMBER_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 77);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 254);

fn kernel_owned() -> String {
    let mut cfg = variant(&[]);
    cfg.push_str("\n[ha]\nvip_ownership = \"kernel\"\n");
    cfg
}

/// Asks for `ip` on `port`: answered with the port's MAC (`answered`) or
/// refused as another host's address.
fn who_has(lab: &mut Lab, name: &str, port: u16, ip: Ipv4Addr, answered: bool) {
    let (mac, sip) = match port {
        EXT => (EXT_MAC, HOST_IP),
        _ => (INT_MAC, MEMBER_IP),
    };
    let req = arp_frame(BCAST, HOST, ARP_REQ, HOST, sip, [0; 6], ip);
    let expect = match answered {
        true => Expect::Tx(port, arp_frame(HOST, mac, ARP_REP, mac, ip, HOST, sip)),
        false => Expect::Drop(R::ArpNotForUs),
    };
    lab.c(name, port, &req, expect);
}

fn syn(cport: u16) -> Pkt {
    Pkt::tcp((CLIENT, cport), (VIP_WEB, 80), SYN).seq_ack(100, 0)
}

#[test]
fn a_vip_is_the_switchs_only_while_its_kernel_interface_holds_it() {
    let cfg = kernel_owned();
    let mut lab = Lab::with_shared(shared_from(&cfg, &[EXT_MAC, INT_MAC], 1), 64);
    // At boot the kernel interfaces hold only the interface addresses.
    who_has(&mut lab, "the ext address", EXT, EXT_IP, true);
    who_has(
        &mut lab,
        "a VIP nobody gave the switch",
        EXT,
        VIP_WEB,
        false,
    );
    who_has(&mut lab, "a SNAT address neither", INT, SNAT_IP, false);
    lab.c(
        "a SYN to it opens no session",
        EXT,
        &from_router(&syn(40000)),
        Expect::Drop(R::NotForUs),
    );
    assert!(lab.sessions(0).is_empty());

    // keepalived puts the VIP and the SNAT address on the kernel interfaces.
    let owned = [
        (EXT, IpAddr::V4(VIP_WEB)),
        (INT, IpAddr::V4(SNAT_IP)),
        (INT, IpAddr::V4(GATEWAY)),
    ];
    let next = lab.reown(&cfg, &owned);
    assert!(next.owns(VIP_WEB.into()) && !next.owns(VIP_BOTH.into()));
    who_has(&mut lab, "the VIP, held", EXT, VIP_WEB, true);
    who_has(&mut lab, "another VIP, not held", EXT, VIP_BOTH, false);
    who_has(&mut lab, "the SNAT address, held", INT, SNAT_IP, true);
    who_has(
        &mut lab,
        "the floating gateway, on its port",
        INT,
        GATEWAY,
        true,
    );
    who_has(
        &mut lab,
        "the floating gateway, not on ext",
        EXT,
        GATEWAY,
        false,
    );
    let s = syn(40001);
    let want = to_int(
        WEB_MAC[0],
        &s.clone().natted((CLIENT, 40001), (WEB[0], 8080)),
    );
    lab.c(
        "a SYN to the held VIP is balanced",
        EXT,
        &from_router(&s),
        Expect::Tx(INT, want),
    );

    // The VIP moves to the peer: the switch lets go of it.
    lab.reown(&cfg, &owned[1..]);
    who_has(&mut lab, "the VIP, gone to the peer", EXT, VIP_WEB, false);
    lab.c(
        "a new SYN to it opens no session",
        EXT,
        &from_router(&syn(40002)),
        Expect::Drop(R::NotForUs),
    );
}

#[test]
fn without_ha_every_configured_address_is_owned_from_boot() {
    let mut lab = Lab::new(1, 64);
    assert!(lab.workers[0].shared().owned.is_none());
    who_has(&mut lab, "a VIP", EXT, VIP_WEB, true);
    who_has(&mut lab, "an unconfigured gateway", INT, GATEWAY, false);
}

#[test]
fn vrrp_and_link_local_multicast_reach_the_kernel_interface() {
    let mut lab = Lab::new(1, 64);
    let peer = Ipv4Addr::new(198, 51, 100, 2);
    // A VRRP advert (version 3, router 51, priority 100).
    let advert = [0x31, 51, 100, 1, 0, 100, 0, 0];
    let to = |dst: Ipv4Addr| from_router(&Pkt::raw(peer, dst, 112, &advert).ttl(255));
    let d = lab.c(
        "VRRP to 224.0.0.18",
        EXT,
        &to(Ipv4Addr::new(224, 0, 0, 18)),
        Expect::Kernel,
    );
    assert_deltas(&d, &[("rx_packets", 1)]);
    lab.c(
        "VRRP unicast to the switch",
        EXT,
        &to(EXT_IP),
        Expect::Kernel,
    );
    lab.c(
        "OSPF to 224.0.0.5",
        EXT,
        &from_router(&Pkt::raw(peer, Ipv4Addr::new(224, 0, 0, 5), 89, &advert)),
        Expect::Kernel,
    );
    lab.c(
        "a routed group is not the switch's",
        EXT,
        &to(Ipv4Addr::new(239, 1, 1, 1)),
        Expect::Drop(R::NotForUs),
    );
    lab.c(
        "nor another host's address",
        EXT,
        &to(Ipv4Addr::new(198, 51, 100, 99)),
        Expect::Drop(R::NotForUs),
    );
}

#[test]
fn vrrp_floods_are_held_to_their_own_budget() {
    let mut lab = Lab::new(1, 64);
    let advert = [0x31, 51, 100, 1, 0, 100, 0, 0];
    let frame = from_router(&Pkt::raw(
        Ipv4Addr::new(198, 51, 100, 2),
        Ipv4Addr::new(224, 0, 0, 18),
        112,
        &advert,
    ));
    let to_kernel = (0..1_500)
        .filter(|_| lab.run(0, EXT, &frame, false).0 == sluice_dataplane::worker::Verdict::Kernel)
        .count();
    assert_eq!(to_kernel, 1_000, "a second's worth of the class");
    // Other classes keep theirs: UDP to the kernel's address goes on.
    let udp = from_router(&Pkt::udp((CLIENT, 5000), (EXT_IP, 161), b"x"));
    lab.c(
        "UDP to the switch after the flood",
        EXT,
        &udp,
        Expect::Kernel,
    );
}
