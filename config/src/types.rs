//! The validated configuration model: plain data, every cross reference already
//! resolved to an index so consumers never look names up again.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;
use crate::values;

/// A fully validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub file: String,
    pub dataplane: Dataplane,
    pub control: Control,
    pub timeouts: Timeouts,
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    pub neighbors: Vec<Neighbor>,
    pub health_checks: Vec<HealthCheck>,
    pub pools: Vec<Pool>,
    pub virtual_servers: Vec<VirtualServer>,
    /// `[ha]`; its defaults without the section.
    pub ha: Ha,
    /// `[announce]`: VIP routes for a routing daemon; `None` without it.
    pub announce: Option<Announce>,
    /// Line of every key and table header, so later stages (the daemon) can
    /// still point users at the offending line.
    pub(crate) lines: BTreeMap<String, usize>,
}

impl Config {
    /// Builds an error about `key` of this configuration, located at its line.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line_of(key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Line of `key` (e.g. `pool.web.members[2].address`), falling back to the
    /// nearest recorded parent; 0 when nothing is known.
    pub fn line_of(&self, key: &str) -> usize {
        let mut k = key;
        loop {
            if let Some(&line) = self.lines.get(k) {
                return line;
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return 0,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataplane {
    pub workers: u16,
    pub lcores: Option<String>,
    pub eal_args: Vec<String>,
    pub sessions_per_worker: u32,
    pub burst: u16,
    pub mbufs: Option<u32>,
    pub poll: Poll,
    /// EAL `--file-prefix`: names the runtime directory
    /// (`/var/run/dpdk/<prefix>/`) where DPDK's tools find this instance.
    pub file_prefix: String,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: 1,
            lcores: None,
            eal_args: Vec::new(),
            sessions_per_worker: 1 << 20,
            burst: 32,
            mbufs: None,
            poll: Poll::Busy,
            file_prefix: "sluice".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    Busy,
    Adaptive,
}

/// Who owns the VIPs, SNAT addresses and other floating addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VipOwnership {
    /// Every VIP and SNAT address of the configuration, from boot.
    #[default]
    Config,
    /// An address is owned while it is on the switch's kernel interface of
    /// a link (where keepalived puts it), and only then.
    Kernel,
}

/// `[ha]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ha {
    pub vip_ownership: VipOwnership,
    pub node_id: Option<u8>,
    /// Session synchronisation with the peers, when `sync_peers` is set.
    pub sync: Option<SessionSync>,
}

/// `[announce]`: scale-out behind ECMP routers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The kernel routing table Sluice keeps one host route per VIP in.
    pub table: u32,
    /// The routing daemon's neighbours (BGP, BFD): their sessions with the
    /// interface addresses reach the kernel under a rate class of their own.
    pub peers: Vec<IpAddr>,
}

/// Session synchronisation (`[ha] sync_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSync {
    /// Index of the `[[interface]]` whose link carries it.
    pub interface: usize,
    pub peers: Vec<IpAddr>,
    pub port: u16,
    /// Shared secret: every datagram is authenticated when set.
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    /// The read-only status page (`GET /`), its data and `/metrics`.
    pub http: Option<SocketAddr>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: PathBuf::from("/run/sluice/sluice.sock"),
            metrics: None,
            http: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    pub tcp_fin: Duration,
    pub tcp_close: Duration,
    pub udp: Duration,
    pub icmp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(15 * 60),
            tcp_fin: Duration::from_secs(2 * 60),
            tcp_close: Duration::from_secs(10),
            udp: Duration::from_secs(5 * 60),
            icmp: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub device: String,
    pub addresses: Vec<IfAddr>,
    pub mtu: u16,
    /// The kernel network interface of the exception path on this link
    /// (`kernel_interface`, default `sluice-<name>`); `None` with `kernel = false`.
    pub kernel_interface: Option<String>,
}

/// An address the switch owns on a link, with the length of its connected prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IfAddr {
    /// The connected prefix (host bits cleared).
    pub fn prefix(&self) -> Prefix {
        Prefix::masked(self.addr, self.prefix_len)
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IfAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        values::parse_ifaddr(s)
    }
}

/// A network prefix; always stored with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Builds a prefix, clearing any host bits of `addr`.
    pub fn masked(addr: IpAddr, len: u8) -> Prefix {
        Prefix {
            addr: values::mask(addr, len),
            len,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && values::mask(ip, self.len) == self.addr
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;
    /// Strict: a prefix with host bits set is refused (it is usually a typo).
    fn from_str(s: &str) -> Result<Self, String> {
        values::parse_prefix(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub destination: Prefix,
    pub gateway: IpAddr,
    /// Index into `Config::interfaces`.
    pub interface: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub mac: [u8; 6],
    /// Index into `Config::interfaces`.
    pub interface: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Tcp,
    Http {
        path: String,
        host: Option<String>,
        expect_status: Vec<u16>,
        expect_body: Option<String>,
    },
    Udp {
        send: Option<String>,
        expect: Option<String>,
    },
    Icmp,
    Script {
        command: Vec<String>,
    },
}

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http { .. } => "http",
            CheckKind::Udp { .. } => "udp",
            CheckKind::Icmp => "icmp",
            CheckKind::Script { .. } => "script",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub method: Method,
    pub health_check: PoolCheck,
    pub on_member_down: OnMemberDown,
    /// Slots of the pool's Maglev table (a prime; hash methods only).
    pub maglev_table_size: u32,
    pub members: Vec<Member>,
}

/// Slots of a Maglev table unless `maglev_table_size` says otherwise.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u32 = 65537;

/// Which health check a pool's members get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolCheck {
    /// No `health_check` key: TCP connect every 2 s, timeout 1 s, fall 4, rise 2.
    Default,
    /// `health_check = "none"`: members are never checked (always up).
    Off,
    /// Index into `Config::health_checks`.
    Named(usize),
}

/// What happens to the sessions of a member that goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMemberDown {
    /// They continue until they end (F5's "none").
    Keep,
    /// TCP sessions get a RST at both ends; all are removed.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    WeightedLeastConnections,
    SourceHash,
    SourcePortHash,
    Maglev,
}

/// The highest weight a member takes, in the file and at run time.
pub const MAX_MEMBER_WEIGHT: u32 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub address: SocketAddr,
    pub weight: u32,
    pub backup: bool,
    pub max_connections: Option<u32>,
    pub slow_start: Option<Duration>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// Index into `Config::pools`.
    pub pool: usize,
    pub forwarding: Forwarding,
    pub snat_addresses: Vec<IpAddr>,
    pub lan_subnets: Vec<Prefix>,
    pub encapsulation: Option<Encapsulation>,
    pub dscp: Option<u8>,
    pub mss_clamp: Option<MssClamp>,
    pub persistence: Option<Persistence>,
    pub idle_timeout: Option<Duration>,
    pub reset_on_timeout: bool,
    /// Both-NAT and LAN-to-LAN over TCP: the header put in front of the
    /// client's first bytes to the member (`None`: nothing).
    pub proxy_protocol: Option<ProxyProtocol>,
    pub allow_sources: Vec<Prefix>,
    pub deny_sources: Vec<Prefix>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    DestNat,
    BothNat,
    L2Dsr,
    L3Dsr,
    LanToLan,
}

/// What a member learns of the client through a source-NATing server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// HAProxy's PROXY protocol, version 2 (binary).
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    Ipip,
    Gre,
    Dscp,
}

/// TCP MSS clamping for l3_dsr (encapsulation shrinks the members' path MTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssClamp {
    Off,
    Auto,
    Value(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Persistence {
    pub timeout: Duration,
    pub netmask: u8,
}

/// Generates `as_str`, the table of spellings used by the parser and `Display`.
macro_rules! spelled {
    ($ty:ident { $($var:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// All variants with their config spelling, in documentation order.
            pub(crate) const SPELLINGS: &'static [(&'static str, $ty)] = &[$(($s, $ty::$var)),*];

            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$var => $s),* }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(Poll { Busy => "busy", Adaptive => "adaptive" });
spelled!(Method {
    RoundRobin => "round_robin",
    WeightedRoundRobin => "weighted_round_robin",
    LeastConnections => "least_connections",
    WeightedLeastConnections => "weighted_least_connections",
    SourceHash => "source_hash",
    SourcePortHash => "source_port_hash",
    Maglev => "maglev",
});
spelled!(OnMemberDown { Keep => "keep", Reset => "reset" });
spelled!(Protocol { Tcp => "tcp", Udp => "udp" });
spelled!(Forwarding {
    DestNat => "dest_nat",
    BothNat => "both_nat",
    L2Dsr => "l2_dsr",
    L3Dsr => "l3_dsr",
    LanToLan => "lan_to_lan",
});
spelled!(Encapsulation { Ipip => "ipip", Gre => "gre", Dscp => "dscp" });
spelled!(ProxyProtocol { V2 => "v2" });

impl MssClamp {
    /// Config spelling: `false`, `true` or the number.
    pub fn as_str(&self) -> String {
        match self {
            MssClamp::Off => "false".into(),
            MssClamp::Auto => "true".into(),
            MssClamp::Value(v) => v.to_string(),
        }
    }
}
