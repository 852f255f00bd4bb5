//! The shipped example files, every optional key, and the line map.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_config::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn contract_file_parses_with_expected_values() {
    let path = example("contract.toml");
    let c = load(&path).unwrap();
    assert_eq!(c.file, path.display().to_string());

    assert_eq!(c.dataplane.workers, 2);
    assert_eq!(c.dataplane.lcores, None);
    assert_eq!(c.dataplane.eal_args, ["--no-huge", "-m", "1024"]);
    assert_eq!(c.dataplane.sessions_per_worker, 1_048_576);
    assert_eq!(c.dataplane.burst, 32);
    assert_eq!(c.dataplane.mbufs, None);
    assert_eq!(c.dataplane.poll, Poll::Busy);

    assert_eq!(c.control.socket, PathBuf::from("/run/sluice/sluice.sock"));
    assert_eq!(c.control.metrics, Some(sa("127.0.0.1:9910")));

    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.timeouts.tcp_established, secs(900));
    assert_eq!(c.timeouts.tcp_fin, secs(120));

    assert_eq!(c.interfaces.len(), 2);
    let ext = &c.interfaces[0];
    assert_eq!(ext.name, "ext");
    assert_eq!(ext.device, "net_af_packet0,iface=lb-ext");
    assert_eq!(
        ext.addresses,
        [
            IfAddr {
                addr: ip("198.51.100.1"),
                prefix_len: 24
            },
            IfAddr {
                addr: ip("2001:db8:1::1"),
                prefix_len: 64
            }
        ]
    );
    assert_eq!(ext.addresses[0].prefix().to_string(), "198.51.100.0/24");
    assert_eq!(ext.mtu, 1500);
    assert_eq!(c.interfaces[1].name, "int");
    assert_eq!(c.interfaces[1].mtu, 1500);

    assert_eq!(
        c.interfaces[1].addresses[1].prefix().to_string(),
        "fd00:20::/64"
    );
    assert_eq!(
        c.routes,
        [
            Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: ip("198.51.100.254"),
                interface: 0
            },
            Route {
                destination: "::/0".parse().unwrap(),
                gateway: ip("2001:db8:1::fe"),
                interface: 0
            }
        ]
    );
    assert_eq!(
        c.neighbors,
        [Neighbor {
            address: ip("10.20.0.13"),
            mac: [2, 0, 0, 0, 0, 0x13],
            interface: 1
        }]
    );

    assert_eq!(
        c.health_checks,
        [HealthCheck {
            name: "web".into(),
            kind: CheckKind::Http {
                path: "/healthz".into(),
                host: None,
                expect_status: vec![200],
                expect_body: None
            },
            interval: secs(2),
            timeout: secs(1),
            fall: 4,
            rise: 2,
            port: None,
        }]
    );

    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[1].name, "web6");
    assert_eq!(
        c.pools[1]
            .members
            .iter()
            .map(|m| m.address)
            .collect::<Vec<_>>(),
        [sa("[fd00:20::11]:8080"), sa("[fd00:20::12]:8080")]
    );
    let pool = &c.pools[0];
    assert_eq!(pool.name, "web");
    assert_eq!(pool.method, Method::RoundRobin);
    assert_eq!(pool.health_check, PoolCheck::Named(0));
    let m = &pool.members;
    assert_eq!(m.len(), 3);
    assert_eq!(
        (m[0].address, m[0].weight, m[0].backup),
        (sa("10.20.0.11:8080"), 1, false)
    );
    assert_eq!((m[1].weight, m[1].max_connections), (2, Some(10_000)));
    assert_eq!((m[2].weight, m[2].backup, m[2].enabled), (1, true, true));
    assert_eq!(m[2].slow_start, None);

    assert_eq!(c.virtual_servers.len(), 2);
    let web6 = &c.virtual_servers[1];
    assert_eq!(
        (web6.address, web6.forwarding, web6.pool),
        (sa("[2001:db8:1::10]:80"), Forwarding::BothNat, 1)
    );
    assert_eq!(web6.snat_addresses, [ip("fd00:20::100")]);
    assert_eq!(
        c.virtual_servers[..1],
        [VirtualServer {
            name: "web".into(),
            address: sa("198.51.100.10:80"),
            protocol: Protocol::Tcp,
            pool: 0,
            forwarding: Forwarding::DestNat,
            snat_addresses: vec![],
            lan_subnets: vec![],
            encapsulation: None,
            dscp: None,
            mss_clamp: None,
            persistence: Some(Persistence {
                timeout: secs(1800),
                netmask: 32
            }),
            idle_timeout: Some(secs(900)),
            reset_on_timeout: true,
            proxy_protocol: None,
            allow_sources: vec![],
            deny_sources: vec![],
        }]
    );
}

#[test]
fn contract_line_map_and_errors() {
    let c = load(&example("contract.toml")).unwrap();
    assert_eq!(c.line_of("dataplane"), 15);
    assert_eq!(c.line_of("dataplane.workers"), 16);
    assert_eq!(c.line_of("interface[1]"), 46);
    assert_eq!(c.line_of("interface[1].addresses"), 49);
    assert_eq!(c.line_of("route[0].gateway"), 53);
    assert_eq!(c.line_of("route[1].gateway"), 58);
    assert_eq!(c.line_of("neighbor[0].mac"), 62);
    assert_eq!(c.line_of("health_check.web"), 65);
    assert_eq!(c.line_of("health_check.web.interval"), 67);
    assert_eq!(c.line_of("pool.web.method"), 81);
    assert_eq!(c.line_of("pool.web.members[2]"), 87);
    assert_eq!(c.line_of("pool.web.members[2].address"), 87);
    assert_eq!(c.line_of("virtual_server[0].persistence.netmask"), 103);
    assert_eq!(c.line_of("virtual_server[1]"), 117);
    // Keys absent from the file fall back to their nearest parent.
    assert_eq!(c.line_of("virtual_server[0].snat_addresses"), 92);
    assert_eq!(c.line_of("pool.web.members[2].weight"), 87);
    assert_eq!(c.line_of("nothing.here"), 0);

    let e = c.error(
        "virtual_server[0].persistence",
        "not supported yet: virtual_server[0].persistence",
    );
    assert_eq!(e.line, 103);
    assert!(e.to_string().ends_with(
        "contract.toml:103: virtual_server[0].persistence: not supported yet: virtual_server[0].persistence"
    ));
}

#[test]
fn minimal_example() {
    let c = load(&example("minimal.toml")).unwrap();
    assert_eq!(c.dataplane, Dataplane::default());
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.control.socket, PathBuf::from("/run/sluice/sluice.sock"));
    assert_eq!(c.control.metrics, None);
    assert_eq!(c.timeouts.tcp_syn, secs(30));
    assert_eq!(c.timeouts.udp, secs(300));
    assert_eq!(c.interfaces.len(), 1);
    assert!(c.routes.is_empty() && c.neighbors.is_empty() && c.health_checks.is_empty());
    assert_eq!(c.pools[0].method, Method::RoundRobin);
    assert_eq!(c.pools[0].health_check, PoolCheck::Default);
    assert_eq!(c.pools[0].on_member_down, OnMemberDown::Keep);
    assert_eq!(
        c.interfaces[0].kernel_interface.as_deref(),
        Some(format!("sluice-{}", c.interfaces[0].name).as_str())
    );
    assert_eq!(c.pools[0].members.len(), 2);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.forwarding, Forwarding::DestNat);
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.persistence, None);
    assert!(!vs.reset_on_timeout);
}

/// Every optional key of the contract (and the extensions) switched on.
const EVERYTHING: &str = r#"
[ha]
vip_ownership = "kernel"
node_id = 2
sync_interface = "int_2"
sync_peers = ["10.20.0.2", "2001:db8:2::3"]
sync_port = 9000
sync_key = "a shared secret of the pair"

[announce]
table = 100
peers = ["198.51.100.254", "2001:db8:1::fe"]

[dataplane]
workers = 4
lcores = "0@0,1@1,2@1"
eal_args = []
sessions_per_worker = 2147483647
burst = 512
mbufs = 262143
poll = "adaptive"

[control]
socket = "/tmp/s.sock"

[timeouts]
tcp_syn = "250ms"
tcp_established = "1h30m"
tcp_fin = "2m"
tcp_close = "10s"
udp = "1m500ms"
icmp = "30s"

[[interface]]
name = "ext"
device = "0000:3b:00.0"
addresses = ["198.51.100.1/24", "2001:db8:1::1/64"]
mtu = 9000

[[interface]]
name = "int_2"
device = "0000:3b:00.1"
addresses = ["10.20.0.1/24", "2001:db8:2::1/64"]

[[interface]]
name = "v6-only"
device = "net_tap0"
addresses = ["2001:db8:3::1/64"]
mtu = 1280

[[route]]
destination = "0.0.0.0/0"
gateway = "198.51.100.254"
interface = "ext"

[[route]]
destination = "2001:db8:100::/48"
gateway = "2001:db8:2::fe"

[[neighbor]]
address = "10.20.0.13"
mac = "02-00-00-00-00-13"

[health_check.http]
kind = "http"
interval = "5s"
timeout = "5s"
fall = 1
rise = 100
port = 8080
path = "/"
host = "www.example.com"
expect_status = [200, 204, 301]
expect_body = "ok"

[health_check.dns]
kind = "udp"
send = "ping"
expect = "pong"

[health_check.db]
kind = "script"
command = ["/usr/local/bin/check-db", "--quick"]

[health_check.ping]
kind = "icmp"

[health_check.plain]
kind = "tcp"

[pool.web]
method = "maglev"
health_check = "http"
members = [
  { address = "10.20.0.11:0", weight = 0, backup = false, max_connections = 1, slow_start = "30s", enabled = false },
  { address = "10.20.0.12:0" },
]

[pool.web6]
method = "weighted_least_connections"
members = [{ address = "[2001:db8:2::11]:443" }]

[pool.dsr]
method = "source_port_hash"
health_check = "ping"

[[pool.dsr.members]]
address = "10.20.0.21:80"

[[pool.dsr.members]]
address = "10.20.0.22:80"

[[virtual_server]]
name = "all-ports"
address = "198.51.100.10:0"
protocol = "udp"
pool = "web"
forwarding = "both_nat"
snat_addresses = ["10.20.0.100", "10.20.0.101"]
allow_sources = ["0.0.0.0/0"]
deny_sources = ["192.0.2.0/24"]

[[virtual_server]]
name = "lan"
address = "10.20.0.50:0"
pool = "web"
forwarding = "lan_to_lan"
snat_addresses = ["10.20.0.102"]
lan_subnets = ["10.20.0.0/24"]

[[virtual_server]]
name = "v6"
address = "[2001:db8:1::10]:443"
pool = "web6"
forwarding = "l3_dsr"
mss_clamp = 1400
persistence = {}

[[virtual_server]]
name = "l2"
address = "198.51.100.11:80"
pool = "dsr"
forwarding = "l2_dsr"
persistence = { netmask = 24 }

[[virtual_server]]
name = "l3-a"
address = "198.51.100.12:80"
pool = "dsr"
forwarding = "l3_dsr"
encapsulation = "dscp"
dscp = 10
mss_clamp = false
idle_timeout = "1h"

[[virtual_server]]
name = "l3-b"
address = "198.51.100.12:80"
protocol = "udp"
pool = "dsr"
forwarding = "l3_dsr"
encapsulation = "dscp"
dscp = 10

[[virtual_server]]
name = "gre"
address = "198.51.100.13:80"
pool = "dsr"
forwarding = "l3_dsr"
encapsulation = "gre"
mss_clamp = true
"#;

#[test]
fn every_optional_key_is_accepted() {
    let c = parse(EVERYTHING, "all.toml").unwrap();
    let d = &c.dataplane;
    assert_eq!(
        (d.workers, d.burst, d.mbufs, d.poll),
        (4, 512, Some(262_143), Poll::Adaptive)
    );
    assert_eq!(d.lcores.as_deref(), Some("0@0,1@1,2@1"));
    assert_eq!(d.sessions_per_worker, 2_147_483_647);
    assert!(d.eal_args.is_empty());
    assert_eq!(c.timeouts.tcp_syn, Duration::from_millis(250));
    assert_eq!(c.timeouts.tcp_established, secs(5400));
    assert_eq!(c.timeouts.udp, Duration::from_millis(60_500));
    assert_eq!(c.interfaces[2].mtu, 1280);
    assert_eq!(c.routes[1].interface, 1);
    assert_eq!(c.neighbors[0].interface, 1);

    let kinds: Vec<&str> = c.health_checks.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["http", "udp", "script", "icmp", "tcp"]);
    assert_eq!(c.health_checks[0].port, Some(8080));
    assert_eq!(
        c.health_checks[1].kind,
        CheckKind::Udp {
            send: Some("ping".into()),
            expect: Some("pong".into())
        }
    );
    assert_eq!(
        c.health_checks[2].kind,
        CheckKind::Script {
            command: vec!["/usr/local/bin/check-db".into(), "--quick".into()]
        }
    );

    assert_eq!(c.pools[0].method.as_str(), "maglev");
    let m0 = &c.pools[0].members[0];
    assert_eq!(
        (m0.weight, m0.enabled, m0.slow_start),
        (0, false, Some(secs(30)))
    );
    assert_eq!(c.pools[2].health_check, PoolCheck::Named(3));
    assert_eq!(c.pools[2].members.len(), 2);
    assert_eq!(
        c.line_of("pool.dsr.members[1].address"),
        c.line_of("pool.dsr.members[1]") + 1
    );

    let vs = &c.virtual_servers;
    assert_eq!(vs[0].snat_addresses, [ip("10.20.0.100"), ip("10.20.0.101")]);
    assert_eq!(vs[0].protocol, Protocol::Udp);
    assert_eq!(vs[0].deny_sources[0].to_string(), "192.0.2.0/24");
    assert_eq!(vs[1].lan_subnets[0].to_string(), "10.20.0.0/24");
    assert_eq!(vs[2].encapsulation, Some(Encapsulation::Ipip));
    assert_eq!(vs[2].mss_clamp, Some(MssClamp::Value(1400)));
    assert_eq!(
        vs[2].persistence,
        Some(Persistence {
            timeout: secs(1800),
            netmask: 128
        })
    );
    assert_eq!(vs[3].persistence.as_ref().map(|p| p.netmask), Some(24));
    assert_eq!(vs[3].encapsulation, None);
    assert_eq!(
        (vs[4].encapsulation, vs[4].dscp),
        (Some(Encapsulation::Dscp), Some(10))
    );
    assert_eq!(vs[4].mss_clamp, Some(MssClamp::Off));
    assert_eq!(vs[4].idle_timeout, Some(secs(3600)));
    assert_eq!(vs[6].mss_clamp, Some(MssClamp::Auto));
    assert_eq!(vs[6].forwarding.as_str(), "l3_dsr");

    assert_eq!(c.ha.vip_ownership, VipOwnership::Kernel);
    assert_eq!(c.ha.node_id, Some(2));
    assert_eq!(
        c.ha.sync,
        Some(SessionSync {
            interface: 1,
            peers: vec![ip("10.20.0.2"), ip("2001:db8:2::3")],
            port: 9000,
            key: Some("a shared secret of the pair".into()),
        })
    );
    assert_eq!(
        c.announce,
        Some(Announce {
            table: 100,
            peers: vec![ip("198.51.100.254"), ip("2001:db8:1::fe")],
        })
    );
}

#[test]
fn load_missing_file() {
    let e = load(Path::new("/nonexistent/sluice.toml")).unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(e.file, "/nonexistent/sluice.toml");
    let shown = e.to_string();
    assert!(
        shown.starts_with("/nonexistent/sluice.toml: cannot read config file: "),
        "{shown}"
    );
    assert!(shown.contains("No such file"), "{shown}");
}

#[test]
fn error_display_forms() {
    let mut e = ConfigError {
        file: "f".into(),
        line: 3,
        key: "a.b".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "f:3: a.b: bad");
    e.line = 0;
    assert_eq!(e.to_string(), "f: a.b: bad");
    let _: &dyn std::error::Error = &e;
}

#[test]
fn exception_path_and_member_down_keys() {
    let c = parse(
        r#"[[interface]]
name = "ext"
device = "net_af_packet0"
addresses = ["198.51.100.1/24"]
kernel_interface = "lb-ext"

[[interface]]
name = "int"
device = "net_af_packet1"
addresses = ["10.20.0.1/24"]
kernel = false

[pool.web]
health_check = "none"
on_member_down = "reset"
members = [{ address = "10.20.0.11:8080" }]
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.interfaces[0].kernel_interface.as_deref(), Some("lb-ext"));
    assert_eq!(c.interfaces[1].kernel_interface, None);
    assert_eq!(c.pools[0].health_check, PoolCheck::Off);
    assert_eq!(c.pools[0].on_member_down, OnMemberDown::Reset);
}
