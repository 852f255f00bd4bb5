//! Every validation rule, exercised with the exact message a user would see.

use sluice_config::parse;

/// Two interfaces; lines 1..=9.
const IFACES: &str = r#"[[interface]]
name = "ext"
device = "net_af_packet0"
addresses = ["198.51.100.1/24"]

[[interface]]
name = "int"
device = "net_af_packet1"
addresses = ["10.20.0.1/24"]
"#;

/// A pool; lines 10..=11 after IFACES.
const POOL: &str = r#"[pool.web]
members = [{ address = "10.20.0.11:8080" }]
"#;

/// A virtual server; lines 12..=15 after IFACES and POOL, so the next key is line 16.
const VS: &str = r#"[[virtual_server]]
name = "web"
address = "198.51.100.10:80"
pool = "web"
"#;

/// IFACES + POOL + VS, followed by `extra` starting at line 16.
fn full(extra: &str) -> String {
    format!("{IFACES}{POOL}{VS}{extra}")
}

/// IFACES followed by `extra` starting at line 10.
fn ifaces(extra: &str) -> String {
    format!("{IFACES}{extra}")
}

fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        // --- syntax, unknown keys, types ---
        (
            "TOML syntax error",
            "[dataplane]\nworkers = 2\nburst = \n".into(),
            "t.toml:3: TOML syntax error: invalid string; expected `\"`, `'`",
        ),
        (
            "TOML duplicate key",
            "[dataplane]\nworkers = 2\nworkers = 3\n".into(),
            "t.toml:3: TOML syntax error: duplicate key `workers` in table `dataplane`",
        ),
        (
            "unknown top-level key",
            format!("colour = \"blue\"\n{IFACES}"),
            "t.toml:1: colour: unknown key \"colour\"; accepted keys: dataplane, control, timeouts, interface, route, neighbor, health_check, pool, virtual_server, ha, announce",
        ),
        (
            "unknown key in dataplane",
            format!("[dataplane]\nworkers = 2\nthreads = 4\n{IFACES}"),
            "t.toml:3: dataplane.threads: unknown key \"threads\"; accepted keys: workers, lcores, eal_args, sessions_per_worker, burst, mbufs, poll, file_prefix",
        ),
        (
            "unknown key in a member inline table",
            ifaces("[pool.web]\nmembers = [\n  { address = \"10.20.0.11:8080\" },\n  { address = \"10.20.0.12:8080\", wieght = 2 },\n]\n"),
            "t.toml:13: pool.web.members[1].wieght: unknown key \"wieght\"; accepted keys: address, weight, backup, max_connections, slow_start, enabled",
        ),
        (
            "unknown key in persistence",
            full("persistence = { timeout = \"30m\", mask = 24 }\n"),
            "t.toml:16: virtual_server[0].persistence.mask: unknown key \"mask\"; accepted keys: timeout, netmask",
        ),
        (
            "unknown key in a health check",
            ifaces("[health_check.web]\nkind = \"tcp\"\nretries = 3\n"),
            "t.toml:12: health_check.web.retries: unknown key \"retries\"; accepted keys: kind, interval, timeout, fall, rise, port, path, host, expect_status, expect_body, send, expect, command",
        ),
        (
            "wrong type: string for integer",
            format!("[dataplane]\nworkers = \"2\"\n{IFACES}"),
            "t.toml:2: dataplane.workers: expected an integer, found a string",
        ),
        (
            "wrong type: string for boolean",
            full("reset_on_timeout = \"yes\"\n"),
            "t.toml:16: virtual_server[0].reset_on_timeout: expected a boolean, found a string",
        ),
        (
            "wrong type: array element",
            format!("[dataplane]\neal_args = [\"--no-huge\", 5]\n{IFACES}"),
            "t.toml:2: dataplane.eal_args: element 1: expected a string, found an integer",
        ),
        (
            "wrong type: interface is not a table array",
            "interface = \"ext\"\n".into(),
            "t.toml:1: interface: expected an array of tables, found a string",
        ),
        (
            "invalid enum value",
            ifaces("[pool.web]\nmethod = \"rr\"\nmembers = [{ address = \"10.20.0.11:8080\" }]\n"),
            "t.toml:11: pool.web.method: invalid value \"rr\"; expected one of: round_robin, weighted_round_robin, least_connections, weighted_least_connections, source_hash, source_port_hash, maglev",
        ),
        // --- values ---
        (
            "bad duration",
            format!("[timeouts]\nudp = \"2 sec\"\n{IFACES}"),
            "t.toml:2: timeouts.udp: invalid duration \"2 sec\": use a number followed by ms, s, m or h, e.g. \"250ms\" or \"2s\"",
        ),
        (
            "zero duration",
            format!("[timeouts]\ntcp_syn = \"0s\"\n{IFACES}"),
            "t.toml:2: timeouts.tcp_syn: duration \"0s\" must be greater than zero",
        ),
        (
            "bad metrics address",
            format!("[control]\nmetrics = \"127.0.0.1\"\n{IFACES}"),
            "t.toml:2: control.metrics: invalid address \"127.0.0.1\": expected \"ip:port\" or \"[ipv6]:port\", e.g. \"10.0.0.1:80\"",
        ),
        (
            "bad status page address",
            format!("[control]\nhttp = \"localhost:80\"\n{IFACES}"),
            "t.toml:2: control.http: invalid address \"localhost:80\": expected a port (on 127.0.0.1), \"ip:port\" or \"[ipv6]:port\", e.g. \"9911\"",
        ),
        (
            "status page on port 0",
            format!("[control]\nhttp = \"0\"\n{IFACES}"),
            "t.toml:2: control.http: port 0 is no port to listen on: use 1..65535",
        ),
        (
            "status page port out of range",
            format!("[control]\nhttp = 70000\n{IFACES}"),
            "t.toml:2: control.http: must be between 1 and 65535, found 70000",
        ),
        (
            "bad prefix",
            ifaces("[[route]]\ndestination = \"0.0.0.0\"\ngateway = \"198.51.100.254\"\n"),
            "t.toml:11: route[0].destination: invalid prefix \"0.0.0.0\": expected \"address/length\", e.g. \"10.20.0.0/24\"",
        ),
        (
            "route destination with host bits",
            ifaces("[[route]]\ndestination = \"10.30.0.1/16\"\ngateway = \"10.20.0.254\"\n"),
            "t.toml:11: route[0].destination: prefix \"10.30.0.1/16\" has host bits set (0.0.0.1 beyond /16); did you mean \"10.30.0.0/16\"?",
        ),
        (
            "allow_sources with host bits",
            full("allow_sources = [\n  \"192.0.2.0/24\",\n  \"203.0.113.5/24\",\n]\n"),
            "t.toml:18: virtual_server[0].allow_sources: prefix \"203.0.113.5/24\" has host bits set (0.0.0.5 beyond /24); did you mean \"203.0.113.0/24\"?",
        ),
        (
            "interface address without length",
            "[[interface]]\nname = \"ext\"\ndevice = \"d0\"\naddresses = [\"198.51.100.1\"]\n".into(),
            "t.toml:4: interface[0].addresses: invalid prefix \"198.51.100.1\": expected \"address/length\", e.g. \"10.20.0.1/24\"",
        ),
        (
            "multicast MAC",
            ifaces("[[neighbor]]\naddress = \"10.20.0.13\"\nmac = \"01:00:5e:00:00:01\"\n"),
            "t.toml:12: neighbor[0].mac: MAC address \"01:00:5e:00:00:01\" is a multicast address; a neighbour needs a unicast MAC",
        ),
        (
            "malformed MAC",
            ifaces("[[neighbor]]\naddress = \"10.20.0.13\"\nmac = \"02:00:00:13\"\n"),
            "t.toml:12: neighbor[0].mac: invalid MAC address \"02:00:00:13\": expected six hex bytes such as \"02:00:00:00:00:13\"",
        ),
        // --- ranges ---
        (
            "workers out of range",
            format!("[dataplane]\nworkers = 0\n{IFACES}"),
            "t.toml:2: dataplane.workers: must be between 1 and 128, found 0",
        ),
        (
            "burst out of range",
            format!("[dataplane]\nburst = 1024\n{IFACES}"),
            "t.toml:2: dataplane.burst: must be between 1 and 512, found 1024",
        ),
        (
            "mbufs too small",
            format!("[dataplane]\nmbufs = 100\n{IFACES}"),
            "t.toml:2: dataplane.mbufs: must be at least 1024, found 100",
        ),
        (
            "mtu out of range",
            ifaces("[[interface]]\nname = \"x\"\ndevice = \"d2\"\naddresses = [\"192.0.2.1/24\"]\nmtu = 10000\n"),
            "t.toml:14: interface[2].mtu: must be between 576 and 9216, found 10000",
        ),
        (
            "IPv6-only interface mtu below 1280",
            ifaces("[[interface]]\nname = \"v6\"\ndevice = \"d2\"\naddresses = [\"2001:db8::1/64\"]\nmtu = 1000\n"),
            "t.toml:14: interface[2].mtu: IPv6 needs an MTU of at least 1280, found 1000",
        ),
        (
            "weight out of range",
            ifaces("[pool.web]\nmembers = [{ address = \"10.20.0.11:8080\", weight = 1001 }]\n"),
            "t.toml:11: pool.web.members[0].weight: must be between 0 and 1000, found 1001",
        ),
        (
            "max_connections zero",
            ifaces("[pool.web]\nmembers = [{ address = \"10.20.0.11:8080\", max_connections = 0 }]\n"),
            "t.toml:11: pool.web.members[0].max_connections: must be at least 1, found 0",
        ),
        (
            "fall out of range",
            ifaces("[health_check.web]\nkind = \"tcp\"\nfall = 0\n"),
            "t.toml:12: health_check.web.fall: must be between 1 and 100, found 0",
        ),
        (
            "health check port out of range",
            ifaces("[health_check.web]\nkind = \"tcp\"\nport = 70000\n"),
            "t.toml:12: health_check.web.port: must be between 0 and 65535, found 70000",
        ),
        (
            "health check timeout longer than interval",
            ifaces("[health_check.web]\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"1500ms\"\n"),
            "t.toml:13: health_check.web.timeout: timeout (1.5s) must not be longer than interval (1s)",
        ),
        (
            "expect_status out of range",
            ifaces("[health_check.web]\nkind = \"http\"\nexpect_status = [200, 700]\n"),
            "t.toml:12: health_check.web.expect_status: must be between 100 and 599, found 700",
        ),
        (
            "persistence netmask too long for IPv4",
            full("persistence = { netmask = 33 }\n"),
            "t.toml:16: virtual_server[0].persistence.netmask: netmask 33 is out of range for an IPv4 virtual server (0..32)",
        ),
        // --- names and interfaces ---
        (
            "no interface",
            "[dataplane]\nworkers = 1\n".into(),
            "t.toml: interface: at least one [[interface]] is required",
        ),
        (
            "duplicate interface name",
            ifaces("[[interface]]\nname = \"ext\"\ndevice = \"d2\"\naddresses = [\"192.0.2.1/24\"]\n"),
            "t.toml:11: interface[2].name: duplicate interface name \"ext\"",
        ),
        (
            "invalid interface name",
            "[[interface]]\nname = \"ext 1\"\ndevice = \"d0\"\naddresses = [\"192.0.2.1/24\"]\n".into(),
            "t.toml:2: interface[0].name: invalid interface name \"ext 1\": use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'",
        ),
        (
            "duplicate device",
            ifaces("[[interface]]\nname = \"x\"\ndevice = \"net_af_packet1\"\naddresses = [\"192.0.2.1/24\"]\n"),
            "t.toml:12: interface[2].device: device \"net_af_packet1\" is already used by interface \"int\"",
        ),
        (
            "interface without addresses",
            "[[interface]]\nname = \"ext\"\ndevice = \"d0\"\naddresses = []\n".into(),
            "t.toml:4: interface[0].addresses: an interface needs at least one address",
        ),
        (
            "address on two interfaces",
            ifaces("[[interface]]\nname = \"x\"\ndevice = \"d2\"\naddresses = [\"10.20.0.1/24\"]\n"),
            "t.toml:13: interface[2].addresses: 10.20.0.1 is already an address of interface \"int\"",
        ),
        (
            "overlapping connected prefixes",
            ifaces("[[interface]]\nname = \"x\"\ndevice = \"d2\"\naddresses = [\"10.20.5.1/16\"]\n"),
            "t.toml:13: interface[2].addresses: connected prefix 10.20.0.0/16 (from 10.20.5.1/16) overlaps 10.20.0.0/24 of interface \"int\"; each link needs its own subnet",
        ),
        // --- routes and neighbours ---
        (
            "route gateway not on a connected prefix",
            ifaces("[[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"192.0.2.254\"\n"),
            "t.toml:12: route[0].gateway: gateway 192.0.2.254 is not inside any connected prefix (ext: 198.51.100.0/24; int: 10.20.0.0/24); it must be directly reachable",
        ),
        (
            "route names an unknown interface",
            ifaces("[[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"198.51.100.254\"\ninterface = \"wan\"\n"),
            "t.toml:13: route[0].interface: no interface named \"wan\" (defined: ext, int)",
        ),
        (
            "route gateway outside the named interface",
            ifaces("[[route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"198.51.100.254\"\ninterface = \"int\"\n"),
            "t.toml:12: route[0].gateway: gateway 198.51.100.254 is not inside a connected prefix of interface \"int\" (int: 10.20.0.0/24)",
        ),
        (
            "route family mismatch",
            ifaces("[[route]]\ndestination = \"::/0\"\ngateway = \"198.51.100.254\"\n"),
            "t.toml:12: route[0].gateway: gateway 198.51.100.254 and destination ::/0 are of different address families",
        ),
        (
            "missing required key in a route",
            ifaces("[[route]]\ndestination = \"0.0.0.0/0\"\n"),
            "t.toml:10: route[0]: missing required key \"gateway\"",
        ),
        (
            "neighbour outside its interface",
            ifaces("[[neighbor]]\naddress = \"10.20.0.13\"\nmac = \"02:00:00:00:00:13\"\ninterface = \"ext\"\n"),
            "t.toml:11: neighbor[0].address: neighbor 10.20.0.13 is not inside a connected prefix of interface \"ext\" (ext: 198.51.100.0/24)",
        ),
        // --- health checks and pools ---
        (
            "http-only key on a tcp check",
            ifaces("[health_check.web]\nkind = \"tcp\"\npath = \"/healthz\"\n"),
            "t.toml:12: health_check.web.path: \"path\" is only valid for kind = \"http\"",
        ),
        (
            "udp-only key on an http check",
            ifaces("[health_check.web]\nkind = \"http\"\nsend = \"ping\"\n"),
            "t.toml:12: health_check.web.send: \"send\" is only valid for kind = \"udp\"",
        ),
        (
            "script check without command",
            ifaces("[health_check.db]\nkind = \"script\"\n"),
            "t.toml:10: health_check.db: missing required key \"command\"",
        ),
        (
            "script check with empty command",
            ifaces("[health_check.db]\nkind = \"script\"\ncommand = []\n"),
            "t.toml:12: health_check.db.command: needs at least the program to run, e.g. [\"/usr/local/bin/check\"]",
        ),
        (
            "dangling health_check reference",
            ifaces("[health_check.web]\nkind = \"tcp\"\n\n[pool.web]\nhealth_check = \"http\"\nmembers = [{ address = \"10.20.0.11:8080\" }]\n"),
            "t.toml:14: pool.web.health_check: no health_check named \"http\" (defined: web; \"none\" turns checking off)",
        ),
        (
            "a health check named none",
            ifaces("[health_check.none]\nkind = \"tcp\"\n"),
            "t.toml:10: health_check.none: \"none\" is reserved (a pool's health_check = \"none\" turns checking off); choose another name",
        ),
        (
            "unknown on_member_down",
            ifaces("[pool.web]\non_member_down = \"drop\"\nmembers = [{ address = \"10.20.0.11:8080\" }]\n"),
            "t.toml:11: pool.web.on_member_down: invalid value \"drop\"; expected one of: keep, reset",
        ),
        (
            "kernel interface name too long",
            "[[interface]]\nname = \"external-uplink\"\ndevice = \"d0\"\naddresses = [\"198.51.100.1/24\"]\n".into(),
            "t.toml:2: interface[0].name: kernel interface name \"sluice-external-uplink\" is not a valid Linux interface name (1 to 15 characters from A-Z, a-z, 0-9, '_', '-', '.'); set kernel_interface",
        ),
        (
            "kernel_interface with kernel = false",
            "[[interface]]\nname = \"ext\"\ndevice = \"d0\"\naddresses = [\"198.51.100.1/24\"]\nkernel = false\nkernel_interface = \"lb0\"\n".into(),
            "t.toml:6: interface[0].kernel_interface: is set but kernel = false",
        ),
        (
            "kernel interface used twice",
            "[[interface]]\nname = \"a\"\ndevice = \"d0\"\naddresses = [\"198.51.100.1/24\"]\nkernel_interface = \"lb0\"\n[[interface]]\nname = \"b\"\ndevice = \"d1\"\naddresses = [\"10.0.0.1/24\"]\nkernel_interface = \"lb0\"\n".into(),
            "t.toml:10: interface[1].kernel_interface: kernel interface \"lb0\" is already used",
        ),
        (
            "maglev table size not prime",
            ifaces("[pool.web]\nmethod = \"maglev\"\nmaglev_table_size = 65536\nmembers = [{ address = \"10.20.0.11:8080\" }]\n"),
            "t.toml:12: pool.web.maglev_table_size: 65536 is not a prime number; the next prime is 65537",
        ),
        (
            "SNAT address equal to a VIP",
            full("[[virtual_server]]\nname = \"b\"\naddress = \"198.51.100.11:80\"\npool = \"web\"\nforwarding = \"both_nat\"\nsnat_addresses = [\"198.51.100.10\"]\n"),
            "t.toml:21: virtual_server[1].snat_addresses: 198.51.100.10 is the VIP of virtual server \"web\"; a SNAT address must be an address of its own",
        ),
        (
            "member port 0 behind a non-zero VIP port",
            ifaces("[pool.web]\nmembers = [{ address = \"10.20.0.11:0\" }]\n[[virtual_server]]\nname = \"web\"\naddress = \"198.51.100.10:80\"\npool = \"web\"\n"),
            "t.toml:11: pool.web.members[0].address: member 10.20.0.11:0 has port 0, but virtual server \"web\" listens on port 80: port 0 (the client's port) only goes with a port-0 virtual server",
        ),
        (
            "more interfaces than the counters hold",
            (0..17)
                .map(|i| format!("[[interface]]\nname = \"i{i}\"\ndevice = \"d{i}\"\naddresses = [\"10.{i}.0.1/24\"]\n\n"))
                .collect(),
            "t.toml:81: interface[16]: at most 16 interfaces (the switch's per-port counters hold that many)",
        ),
        (
            "file prefix with a slash",
            "[dataplane]\nfile_prefix = \"../x\"\n".into(),
            "t.toml:2: dataplane.file_prefix: invalid file prefix \"../x\": use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'",
        ),
        (
            "pool without members key",
            ifaces("[pool.web]\nmethod = \"maglev\"\n"),
            "t.toml:10: pool.web: missing required key \"members\"; a pool needs at least one member",
        ),
        (
            "pool with an empty member list",
            ifaces("[pool.web]\nmembers = []\n"),
            "t.toml:11: pool.web.members: a pool needs at least one member",
        ),
        (
            "duplicate member",
            ifaces("[pool.web]\nmembers = [\n  { address = \"10.20.0.11:8080\" },\n  { address = \"10.20.0.11:8080\" },\n]\n"),
            "t.toml:13: pool.web.members[1].address: duplicate member 10.20.0.11:8080 (already listed at line 12)",
        ),
        (
            "member without address",
            ifaces("[pool.web]\nmembers = [{ weight = 3 }]\n"),
            "t.toml:11: pool.web.members[0]: missing required key \"address\"",
        ),
        // --- virtual servers ---
        (
            "missing required key pool",
            format!("{IFACES}{POOL}[[virtual_server]]\nname = \"web\"\naddress = \"198.51.100.10:80\"\n"),
            "t.toml:12: virtual_server[0]: missing required key \"pool\"",
        ),
        (
            "dangling pool reference",
            format!("{IFACES}{POOL}[[virtual_server]]\nname = \"web\"\naddress = \"198.51.100.10:80\"\npool = \"api\"\n"),
            "t.toml:15: virtual_server[0].pool: no pool named \"api\" (defined: web)",
        ),
        (
            "duplicate virtual server address",
            full("\n[[virtual_server]]\nname = \"web2\"\naddress = \"198.51.100.10:80\"\npool = \"web\"\n"),
            "t.toml:19: virtual_server[1].address: 198.51.100.10:80/tcp is already used by virtual server \"web\" (line 12)",
        ),
        (
            "duplicate virtual server name",
            full("\n[[virtual_server]]\nname = \"web\"\naddress = \"198.51.100.10:443\"\npool = \"web\"\n"),
            "t.toml:18: virtual_server[1].name: duplicate virtual server name \"web\" (first defined at line 12)",
        ),
        (
            "reset_on_timeout with udp",
            full("protocol = \"udp\"\nreset_on_timeout = true\n"),
            "t.toml:17: virtual_server[0].reset_on_timeout: only valid with protocol = \"tcp\" (UDP has no RST)",
        ),
        (
            "proxy_protocol where the member sees the client",
            full("proxy_protocol = \"v2\"\n"),
            "t.toml:16: virtual_server[0].proxy_protocol: \"proxy_protocol\" is only valid with forwarding = \"both_nat\" or \"lan_to_lan\" (in the other modes the member sees the client's address itself)",
        ),
        (
            "proxy_protocol over udp",
            full("forwarding = \"both_nat\"\nsnat_addresses = [\"10.20.0.100\"]\nprotocol = \"udp\"\nproxy_protocol = \"v2\"\n"),
            "t.toml:19: virtual_server[0].proxy_protocol: \"proxy_protocol\" is only valid with protocol = \"tcp\" (a UDP datagram has no stream to put a header in front of)",
        ),
        (
            "proxy_protocol version 1",
            full("forwarding = \"both_nat\"\nsnat_addresses = [\"10.20.0.100\"]\nproxy_protocol = \"v1\"\n"),
            "t.toml:18: virtual_server[0].proxy_protocol: invalid value \"v1\"; expected one of: v2",
        ),
        (
            "both_nat without snat_addresses",
            full("forwarding = \"both_nat\"\n"),
            "t.toml:12: virtual_server[0]: missing required key \"snat_addresses\": forwarding = \"both_nat\" needs at least one source address on the members' side",
        ),
        (
            "snat address outside connected prefixes",
            full("forwarding = \"both_nat\"\nsnat_addresses = [\"10.99.0.1\"]\n"),
            "t.toml:17: virtual_server[0].snat_addresses: SNAT address 10.99.0.1 is not inside any connected prefix (ext: 198.51.100.0/24; int: 10.20.0.0/24); the switch answers ARP/ND for it on the members' side",
        ),
        (
            "snat address equal to an interface address",
            full("forwarding = \"both_nat\"\nsnat_addresses = [\"10.20.0.1\"]\n"),
            "t.toml:17: virtual_server[0].snat_addresses: 10.20.0.1 is the address of interface \"int\"; SNAT addresses must be additional addresses",
        ),
        (
            "snat_addresses with dest_nat",
            full("snat_addresses = [\"10.20.0.100\"]\n"),
            "t.toml:16: virtual_server[0].snat_addresses: \"snat_addresses\" is only valid with forwarding = \"both_nat\" or \"lan_to_lan\"",
        ),
        (
            "lan_to_lan without lan_subnets",
            full("forwarding = \"lan_to_lan\"\nsnat_addresses = [\"10.20.0.100\"]\n"),
            "t.toml:12: virtual_server[0]: missing required key \"lan_subnets\": forwarding = \"lan_to_lan\" needs the client prefixes to source-NAT",
        ),
        (
            "lan_subnets with host bits",
            full("forwarding = \"lan_to_lan\"\nsnat_addresses = [\"10.20.0.100\"]\nlan_subnets = [\"10.20.0.1/24\"]\n"),
            "t.toml:18: virtual_server[0].lan_subnets: prefix \"10.20.0.1/24\" has host bits set (0.0.0.1 beyond /24); did you mean \"10.20.0.0/24\"?",
        ),
        (
            "encapsulation without l3_dsr",
            full("encapsulation = \"gre\"\n"),
            "t.toml:16: virtual_server[0].encapsulation: \"encapsulation\" is only valid with forwarding = \"l3_dsr\"",
        ),
        (
            "mss_clamp without l3_dsr",
            full("mss_clamp = true\n"),
            "t.toml:16: virtual_server[0].mss_clamp: \"mss_clamp\" is only valid with forwarding = \"l3_dsr\"",
        ),
        (
            "mss_clamp out of range",
            full("forwarding = \"l3_dsr\"\nmss_clamp = 100\n"),
            "t.toml:17: virtual_server[0].mss_clamp: must be between 536 and 9000, found 100",
        ),
        (
            "mss_clamp wrong type",
            full("forwarding = \"l3_dsr\"\nmss_clamp = \"auto\"\n"),
            "t.toml:17: virtual_server[0].mss_clamp: expected a boolean or an integer, found a string",
        ),
        (
            "dscp encapsulation without dscp",
            full("forwarding = \"l3_dsr\"\nencapsulation = \"dscp\"\n"),
            "t.toml:12: virtual_server[0]: missing required key \"dscp\": encapsulation = \"dscp\" marks packets towards the members with this value (1..63)",
        ),
        (
            "dscp with ipip",
            full("forwarding = \"l3_dsr\"\ndscp = 10\n"),
            "t.toml:17: virtual_server[0].dscp: \"dscp\" is only valid with encapsulation = \"dscp\"",
        ),
        (
            "dscp out of range",
            full("forwarding = \"l3_dsr\"\nencapsulation = \"dscp\"\ndscp = 64\n"),
            "t.toml:18: virtual_server[0].dscp: must be between 1 and 63, found 64",
        ),
        (
            "same dscp for two VIPs",
            format!("{IFACES}[pool.web]\nmembers = [{{ address = \"10.20.0.11:80\" }}]\n{VS}forwarding = \"l3_dsr\"\nencapsulation = \"dscp\"\ndscp = 10\n\n[[virtual_server]]\nname = \"web2\"\naddress = \"198.51.100.11:80\"\npool = \"web\"\nforwarding = \"l3_dsr\"\nencapsulation = \"dscp\"\ndscp = 10\n"),
            "t.toml:26: virtual_server[1].dscp: dscp 10 is already used by virtual server \"web\" for VIP 198.51.100.10; members tell VIPs apart by this value",
        ),
        (
            "l2_dsr member off-link",
            format!("{IFACES}[pool.web]\nmembers = [{{ address = \"10.99.0.11:80\" }}]\n{VS}forwarding = \"l2_dsr\"\n"),
            "t.toml:11: pool.web.members[0].address: member 10.99.0.11 is not on-link: virtual server \"web\" uses l2_dsr, which needs every member inside a connected prefix (ext: 198.51.100.0/24; int: 10.20.0.0/24)",
        ),
        (
            "l2_dsr member port differs",
            full("forwarding = \"l2_dsr\"\n"),
            "t.toml:11: pool.web.members[0].address: member port 8080 differs from port 80 of virtual server \"web\": l2_dsr does not rewrite ports",
        ),
        (
            "l3_dsr member port differs",
            full("forwarding = \"l3_dsr\"\n"),
            "t.toml:11: pool.web.members[0].address: member port 8080 differs from port 80 of virtual server \"web\": l3_dsr does not rewrite ports",
        ),
        (
            "port-0 VIP with member port",
            format!("{IFACES}{POOL}[[virtual_server]]\nname = \"all\"\naddress = \"198.51.100.10:0\"\npool = \"web\"\n"),
            "t.toml:11: pool.web.members[0].address: member 10.20.0.11:8080 has port 8080, but virtual server \"all\" listens on port 0 (every port) and members keep the client's port: use port 0",
        ),
        (
            "member family differs from VIP",
            format!(
                "{}{POOL}[[virtual_server]]\nname = \"v6\"\naddress = \"[2001:db8::10]:80\"\npool = \"web\"\n",
                IFACES.replace("\"10.20.0.1/24\"", "\"10.20.0.1/24\", \"fd00::1/64\"")
            ),
            "t.toml:11: pool.web.members[0].address: member 10.20.0.11:8080 is IPv4 but virtual server \"v6\" ([2001:db8::10]:80) using this pool is IPv6",
        ),
        (
            "IPv6 virtual server without an IPv6 interface address",
            format!("{IFACES}{POOL}[[virtual_server]]\nname = \"v6\"\naddress = \"[2001:db8::10]:80\"\npool = \"web\"\n"),
            "t.toml:14: virtual_server[0].address: 2001:db8::10 is IPv6 but no interface has an IPv6 address: the switch reaches members and answers neighbours of a family through one",
        ),
        // --- [ha] ---
        (
            "ha: unknown ownership",
            full("[ha]\nvip_ownership = \"vrrp\"\n"),
            "t.toml:17: ha.vip_ownership: invalid value \"vrrp\"; expected one of: config, kernel",
        ),
        (
            "ha: kernel ownership without a kernel interface",
            format!(
                "{}{POOL}{VS}[ha]\nvip_ownership = \"kernel\"\n",
                IFACES.replace("addresses = [", "kernel = false\naddresses = [")
            ),
            "t.toml:19: ha.vip_ownership: \"kernel\" needs a kernel interface on at least one [[interface]] (kernel = false on all of them)",
        ),
        (
            "ha: node_id out of range",
            full("[ha]\nnode_id = 0\n"),
            "t.toml:17: ha.node_id: must be between 1 and 255, found 0",
        ),
        (
            "ha: sync_peers without node_id",
            full("[ha]\nsync_interface = \"int\"\nsync_peers = [\"10.20.0.2\"]\n"),
            "t.toml:16: ha: missing required key \"node_id\" (1..255, unique in the cluster): sync_peers is set",
        ),
        (
            "ha: sync_port without sync_peers",
            full("[ha]\nnode_id = 1\nsync_port = 9000\n"),
            "t.toml:18: ha.sync_port: \"sync_port\" needs sync_peers (the other nodes' addresses)",
        ),
        (
            "ha: sync_interface unknown",
            full("[ha]\nnode_id = 1\nsync_interface = \"mgmt\"\nsync_peers = [\"10.20.0.2\"]\n"),
            "t.toml:18: ha.sync_interface: no [[interface]] named \"mgmt\" (defined: ext, int)",
        ),
        (
            "ha: sync peer off the sync link",
            full("[ha]\nnode_id = 1\nsync_interface = \"int\"\nsync_peers = [\"10.30.0.2\"]\n"),
            "t.toml:19: ha.sync_peers: 10.30.0.2 is not on a prefix of interface \"int\": peers are on the sync link",
        ),
        (
            "ha: sync peer is this node",
            full("[ha]\nnode_id = 1\nsync_interface = \"int\"\nsync_peers = [\"10.20.0.1\"]\n"),
            "t.toml:19: ha.sync_peers: 10.20.0.1 is this node's own address on \"int\"",
        ),
        (
            "ha: short sync_key",
            full("[ha]\nnode_id = 1\nsync_interface = \"int\"\nsync_peers = [\"10.20.0.2\"]\nsync_key = \"secret\"\n"),
            "t.toml:20: ha.sync_key: must be at least 16 characters (a shared secret, the same on every node)",
        ),
        (
            "announce: no table",
            full("[announce]\npeers = [\"198.51.100.254\"]\n"),
            "t.toml:16: announce: missing required key \"table\"",
        ),
        (
            "announce: the main table",
            full("[announce]\ntable = 254\n"),
            "t.toml:17: announce.table: 254 is the kernel's \"main\" table: choose a table of Sluice's own (e.g. 100)",
        ),
        (
            "announce: peer is this node",
            full("[announce]\ntable = 100\npeers = [\"198.51.100.1\"]\n"),
            "t.toml:18: announce.peers: 198.51.100.1 is this node's own address",
        ),
        (
            "announce: unknown key",
            full("[announce]\ntable = 100\nholdtime = 3\n"),
            "t.toml:18: announce.holdtime: unknown key \"holdtime\"; accepted keys: table, peers",
        ),
    ]
}

#[test]
fn bad_configs_give_exact_errors() {
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for (desc, text, expected) in &cases {
        match parse(text, "t.toml") {
            Ok(_) => failures.push(format!("{desc}: parsed without error")),
            Err(e) if e.to_string() != *expected => {
                failures.push(format!("{desc}:\n  expected: {expected}\n  actual:   {e}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn base_fragments_are_valid() {
    parse(&full(""), "t.toml").unwrap();
}
