//! The lab of the IPv6 golden tests: a dual-stack switch with IPv6
//! virtual servers in every forwarding mode, static neighbours for its
//! members and gateway.
#![allow(dead_code)]

use super::frame::*;
use super::frame6::*;
use super::lab::*;

pub const VIP6: &str = "2001:db8:1::10";
pub const BOTH6: &str = "2001:db8:1::11";
pub const DNS6: &str = "2001:db8:1::12";
pub const DSR6: &str = "2001:db8:1::13";
pub const SNAT6: &str = "fd00:20::100";
pub const M1: &str = "fd00:20::11";
pub const M2: &str = "fd00:20::12";
pub const CLIENT6: &str = "2001:db8:99::7";
pub const RESET6: &str = "2001:db8:1::18";
pub const LAN6: &str = "2001:db8:1::19";

pub const M1_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x11];
pub const M2_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x12];

pub fn config6() -> String {
    let mut cfg = variant(&[
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
    cfg.push_str(
        r#"
[[neighbor]]
address = "2001:db8:1::fe"
mac = "02:00:00:00:00:fe"
interface = "ext"

[[neighbor]]
address = "fd00:20::11"
mac = "02:00:00:00:06:11"
interface = "int"

[[neighbor]]
address = "fd00:20::12"
mac = "02:00:00:00:06:12"
interface = "int"

[pool.web6]
members = [ { address = "[fd00:20::11]:8080" }, { address = "[fd00:20::12]:8080" } ]

[pool.dns6]
members = [ { address = "[fd00:20::12]:53" } ]

[pool.dsr6]
members = [ { address = "[fd00:20::11]:80" } ]

[pool.far6]
members = [ { address = "[fd00:20::77]:80" } ]

[[virtual_server]]
name = "web6"
address = "[2001:db8:1::10]:80"
protocol = "tcp"
pool = "web6"
forwarding = "dest_nat"

[[virtual_server]]
name = "both6"
address = "[2001:db8:1::11]:80"
protocol = "tcp"
pool = "web6"
forwarding = "both_nat"
snat_addresses = ["fd00:20::100"]

[[virtual_server]]
name = "dns6"
address = "[2001:db8:1::12]:53"
protocol = "udp"
pool = "dns6"
forwarding = "dest_nat"

[[virtual_server]]
name = "dsr6"
address = "[2001:db8:1::13]:80"
protocol = "tcp"
pool = "dsr6"
forwarding = "l2_dsr"

[[virtual_server]]
name = "far6"
address = "[2001:db8:1::14]:80"
protocol = "tcp"
pool = "far6"
forwarding = "dest_nat"

[pool.reset6]
on_member_down = "reset"
members = [ { address = "[fd00:20::11]:8080" } ]

[[virtual_server]]
name = "reset6"
address = "[2001:db8:1::18]:80"
protocol = "tcp"
pool = "reset6"
forwarding = "dest_nat"
reset_on_timeout = true

[pool.lan6]
members = [ { address = "[fd00:20::11]:8080" } ]

[[virtual_server]]
name = "lan6"
address = "[2001:db8:1::19]:80"
protocol = "tcp"
pool = "lan6"
forwarding = "lan_to_lan"
lan_subnets = ["fd00:20::/64"]
snat_addresses = ["fd00:20::101"]

[pool.l3v6]
members = [ { address = "[fd00:20::11]:80" } ]

[[virtual_server]]
name = "ipip6"
address = "[2001:db8:1::15]:80"
protocol = "tcp"
pool = "l3v6"
forwarding = "l3_dsr"
encapsulation = "ipip"

[[virtual_server]]
name = "gre6"
address = "[2001:db8:1::16]:80"
protocol = "tcp"
pool = "l3v6"
forwarding = "l3_dsr"
encapsulation = "gre"

[[virtual_server]]
name = "dscp6"
address = "[2001:db8:1::17]:80"
protocol = "tcp"
pool = "l3v6"
forwarding = "l3_dsr"
encapsulation = "dscp"
dscp = 10
"#,
    );
    cfg
}

pub fn lab6(workers: u16) -> Lab {
    Lab::with_shared(shared_from(&config6(), &[EXT_MAC, INT_MAC], workers), 64)
}

/// A client's segment as the router hands it to the switch.
pub fn from_client(dst: &str, dport: u16, flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    let (c, d) = ((v6(CLIENT6), 40000), (v6(dst), dport));
    frame6(
        EXT_MAC,
        ROUTER_MAC,
        c.0,
        d.0,
        NH_TCP,
        60,
        &tcp6(c, d, flags, seq, ack, data),
    )
}
