//! Virtual servers: the forwarding-mode rules tie VIPs, pools and the
//! switch's connected prefixes together, so this is where most cross checks live.

use std::net::IpAddr;
use std::time::Duration;

use toml_edit::{Item, Value};

use crate::net::{connected, describe_connected, owner};
use crate::parse::defined;
use crate::reader::{check_range, type_name, Res, Tab};
use crate::types::*;

const VS_KEYS: &[&str] = &[
    "name",
    "address",
    "protocol",
    "pool",
    "forwarding",
    "snat_addresses",
    "lan_subnets",
    "encapsulation",
    "dscp",
    "mss_clamp",
    "persistence",
    "idle_timeout",
    "reset_on_timeout",
    "proxy_protocol",
    "allow_sources",
    "deny_sources",
];
const PERSISTENCE_KEYS: &[&str] = &["timeout", "netmask"];

pub(crate) fn virtual_servers(root: &Tab, cfg: &Config) -> Res<Vec<VirtualServer>> {
    let mut out: Vec<VirtualServer> = Vec::new();
    let tabs = root.tables("virtual_server", VS_KEYS)?;
    for t in &tabs {
        let vs = virtual_server(t, cfg)?;
        unique(t, &vs, &out)?;
        check_members(t, &vs, cfg)?;
        out.push(vs);
    }
    for (t, vs) in tabs.iter().zip(&out) {
        snat_not_a_vip(t, vs, &out)?;
    }
    Ok(out)
}

/// A SNAT address that is also a VIP would take the VIP's traffic for
/// replies (or the other way round): refused, whichever comes first.
fn snat_not_a_vip(t: &Tab, vs: &VirtualServer, all: &[VirtualServer]) -> Res<()> {
    for a in &vs.snat_addresses {
        if let Some(o) = all.iter().find(|o| o.address.ip() == *a) {
            return Err(t.err(
                "snat_addresses",
                format!(
                    "{a} is the VIP of virtual server {:?}; a SNAT address must be an address of its own",
                    o.name
                ),
            ));
        }
    }
    Ok(())
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn virtual_server(t: &Tab, cfg: &Config) -> Res<VirtualServer> {
    let name = t.required("name", t.string("name")?)?;
    if name.is_empty() {
        return Err(t.err("name", "must not be empty"));
    }
    let address = t.required("address", t.socket_addr("address")?)?;
    if address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(t.err(
            "address",
            format!("{} cannot be a virtual server address", address.ip()),
        ));
    }
    let family_on_a_link = (cfg.interfaces.iter()).any(|i| {
        i.addresses
            .iter()
            .any(|a| a.addr.is_ipv4() == address.is_ipv4())
    });
    if !family_on_a_link {
        return Err(t.err(
            "address",
            format!(
                "{} is {} but no interface has an {} address: the switch reaches members and answers neighbours of a family through one",
                address.ip(),
                family(address.ip()),
                family(address.ip())
            ),
        ));
    }
    let protocol = t
        .choice("protocol", Protocol::SPELLINGS)?
        .unwrap_or(Protocol::Tcp);
    let pool_name = t.required("pool", t.str("pool")?)?;
    let pool = cfg
        .pools
        .iter()
        .position(|p| p.name == pool_name)
        .ok_or_else(|| {
            let names: Vec<&str> = cfg.pools.iter().map(|p| p.name.as_str()).collect();
            t.err(
                "pool",
                format!("no pool named {pool_name:?} ({})", defined(&names)),
            )
        })?;
    let forwarding = t
        .choice("forwarding", Forwarding::SPELLINGS)?
        .unwrap_or(Forwarding::DestNat);
    let reset_on_timeout = t.bool("reset_on_timeout")?.unwrap_or(false);
    if reset_on_timeout && protocol == Protocol::Udp {
        return Err(t.err(
            "reset_on_timeout",
            "only valid with protocol = \"tcp\" (UDP has no RST)",
        ));
    }
    let (encapsulation, dscp, mss_clamp) = l3_dsr_options(t, forwarding)?;
    let proxy_protocol = proxy_protocol(t, forwarding, protocol)?;
    Ok(VirtualServer {
        name,
        address,
        protocol,
        pool,
        forwarding,
        snat_addresses: snat_addresses(t, forwarding, address.ip(), &cfg.interfaces)?,
        lan_subnets: lan_subnets(t, forwarding)?,
        encapsulation,
        dscp,
        mss_clamp,
        persistence: persistence(t, address.ip())?,
        idle_timeout: t.duration("idle_timeout")?,
        reset_on_timeout,
        proxy_protocol,
        allow_sources: plain_prefixes(t, "allow_sources")?,
        deny_sources: plain_prefixes(t, "deny_sources")?,
    })
}

/// `proxy_protocol`: only where the member would otherwise see the SNAT
/// address (Both-NAT, LAN-to-LAN) and there is a byte stream to put the
/// header in front of (TCP).
fn proxy_protocol(
    t: &Tab,
    forwarding: Forwarding,
    protocol: Protocol,
) -> Res<Option<ProxyProtocol>> {
    const K: &str = "proxy_protocol";
    if !matches!(forwarding, Forwarding::BothNat | Forwarding::LanToLan) {
        t.refuse(
            K,
            "is only valid with forwarding = \"both_nat\" or \"lan_to_lan\" (in the other modes the member sees the client's address itself)",
        )?;
        return Ok(None);
    }
    if protocol == Protocol::Udp {
        t.refuse(K, "is only valid with protocol = \"tcp\" (a UDP datagram has no stream to put a header in front of)")?;
        return Ok(None);
    }
    t.choice(K, ProxyProtocol::SPELLINGS)
}

fn plain_prefixes(t: &Tab, k: &str) -> Res<Vec<Prefix>> {
    Ok(t.prefixes(k)?
        .unwrap_or_default()
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

fn snat_addresses(
    t: &Tab,
    forwarding: Forwarding,
    vip: IpAddr,
    ifaces: &[Interface],
) -> Res<Vec<IpAddr>> {
    const K: &str = "snat_addresses";
    if !matches!(forwarding, Forwarding::BothNat | Forwarding::LanToLan) {
        t.refuse(
            K,
            "is only valid with forwarding = \"both_nat\" or \"lan_to_lan\"",
        )?;
        return Ok(Vec::new());
    }
    let list = t.list(K, crate::values::parse_ip)?;
    let list = list.filter(|l| !l.is_empty()).ok_or_else(|| {
        t.err_here(format!(
            "missing required key \"{K}\": forwarding = \"{forwarding}\" needs at least one source address on the members' side"
        ))
    })?;
    let path = t.key_path(K);
    let mut out = Vec::with_capacity(list.len());
    for (ip, line) in list {
        let err = |m: String| t.cx.err_at(line, &path, m);
        if ip.is_ipv4() != vip.is_ipv4() {
            return Err(err(format!(
                "{ip} is {} but the virtual server address is {}",
                family(ip),
                family(vip)
            )));
        }
        if let Some(i) = owner(ifaces, ip) {
            return Err(err(format!(
                "{ip} is the address of interface {:?}; SNAT addresses must be additional addresses",
                i.name
            )));
        }
        if connected(ifaces, ip).is_none() {
            return Err(err(format!(
                "SNAT address {ip} is not inside any connected prefix ({}); the switch answers ARP/ND for it on the members' side",
                describe_connected(ifaces)
            )));
        }
        if out.contains(&ip) {
            return Err(err(format!("{ip} is listed twice")));
        }
        out.push(ip);
    }
    Ok(out)
}

fn lan_subnets(t: &Tab, forwarding: Forwarding) -> Res<Vec<Prefix>> {
    const K: &str = "lan_subnets";
    if forwarding != Forwarding::LanToLan {
        t.refuse(K, "is only valid with forwarding = \"lan_to_lan\"")?;
        return Ok(Vec::new());
    }
    let list = plain_prefixes(t, K)?;
    if list.is_empty() {
        return Err(t.err_here(format!(
            "missing required key \"{K}\": forwarding = \"lan_to_lan\" needs the client prefixes to source-NAT"
        )));
    }
    Ok(list)
}

type L3Options = (Option<Encapsulation>, Option<u8>, Option<MssClamp>);

/// encapsulation, dscp and mss_clamp, which only make sense for l3_dsr.
fn l3_dsr_options(t: &Tab, forwarding: Forwarding) -> Res<L3Options> {
    if forwarding != Forwarding::L3Dsr {
        let why = "is only valid with forwarding = \"l3_dsr\"";
        for k in ["encapsulation", "mss_clamp", "dscp"] {
            t.refuse(k, why)?;
        }
        return Ok((None, None, None));
    }
    let encap = t
        .choice("encapsulation", Encapsulation::SPELLINGS)?
        .unwrap_or(Encapsulation::Ipip);
    let dscp = if encap == Encapsulation::Dscp {
        let v = t.int("dscp", 1, 63)?;
        Some(v.ok_or_else(|| {
            t.err_here("missing required key \"dscp\": encapsulation = \"dscp\" marks packets towards the members with this value (1..63)")
        })?)
    } else {
        t.refuse("dscp", "is only valid with encapsulation = \"dscp\"")?;
        None
    };
    Ok((Some(encap), dscp, mss_clamp(t)?))
}

fn mss_clamp(t: &Tab) -> Res<Option<MssClamp>> {
    const K: &str = "mss_clamp";
    Ok(match t.raw(K) {
        None => None,
        Some(Item::Value(Value::Boolean(b))) => Some(if *b.value() {
            MssClamp::Auto
        } else {
            MssClamp::Off
        }),
        Some(Item::Value(Value::Integer(i))) => {
            let v = *i.value();
            check_range(v, 536, 9000).map_err(|m| t.err(K, m))?;
            Some(MssClamp::Value(v as u16))
        }
        Some(other) => {
            let found = type_name(other);
            return Err(t.err(
                K,
                format!("expected a boolean or an integer, found {found}"),
            ));
        }
    })
}

fn persistence(t: &Tab, vip: IpAddr) -> Res<Option<Persistence>> {
    let Some(p) = t.sub("persistence", PERSISTENCE_KEYS)? else {
        return Ok(None);
    };
    let max = if vip.is_ipv4() { 32 } else { 128 };
    let netmask = match p.raw("netmask").and_then(Item::as_integer) {
        Some(n) if !(0..=max).contains(&n) => {
            let msg = format!(
                "netmask {n} is out of range for an {} virtual server (0..{max})",
                family(vip)
            );
            return Err(p.err("netmask", msg));
        }
        _ => p.int("netmask", 0, max)?.unwrap_or(max as u8),
    };
    let timeout = p
        .duration("timeout")?
        .unwrap_or(Duration::from_secs(30 * 60));
    Ok(Some(Persistence { timeout, netmask }))
}

/// Rules spanning several virtual servers: unique (ip, port, protocol),
/// unique names and one dscp value per VIP.
fn unique(t: &Tab, vs: &VirtualServer, earlier: &[VirtualServer]) -> Res<()> {
    let line = |i: usize| t.cx.line_of(&format!("virtual_server[{i}]"));
    for (i, o) in earlier.iter().enumerate() {
        if o.name == vs.name {
            let msg = format!(
                "duplicate virtual server name {:?} (first defined at line {})",
                vs.name,
                line(i)
            );
            return Err(t.err("name", msg));
        }
        if o.address == vs.address && o.protocol == vs.protocol {
            return Err(t.err(
                "address",
                format!(
                    "{}/{} is already used by virtual server {:?} (line {})",
                    vs.address,
                    vs.protocol,
                    o.name,
                    line(i)
                ),
            ));
        }
        if vs.dscp.is_some() && o.dscp == vs.dscp && o.address.ip() != vs.address.ip() {
            return Err(t.err(
                "dscp",
                format!(
                    "dscp {} is already used by virtual server {:?} for VIP {}; members tell VIPs apart by this value",
                    vs.dscp.unwrap_or_default(),
                    o.name,
                    o.address.ip()
                ),
            ));
        }
    }
    Ok(())
}

/// Member rules that depend on the virtual server using the pool.
fn check_members(t: &Tab, vs: &VirtualServer, cfg: &Config) -> Res<()> {
    let pool = &cfg.pools[vs.pool];
    let vip = vs.address;
    for (i, m) in pool.members.iter().enumerate() {
        let key = format!("pool.{}.members[{i}].address", pool.name);
        let err = |msg: String| t.cx.err(&key, msg);
        let a = m.address;
        if a.is_ipv4() != vip.is_ipv4() {
            return Err(err(format!(
                "member {a} is {} but virtual server {:?} ({vip}) using this pool is {}",
                family(a.ip()),
                vs.name,
                family(vip.ip())
            )));
        }
        if vip.port() != 0 && a.port() == 0 {
            return Err(err(format!(
                "member {a} has port 0, but virtual server {:?} listens on port {}: port 0 (the client's port) only goes with a port-0 virtual server",
                vs.name,
                vip.port()
            )));
        }
        if vip.port() == 0 && a.port() != 0 {
            return Err(err(format!(
                "member {a} has port {}, but virtual server {:?} listens on port 0 (every port) and members keep the client's port: use port 0",
                a.port(),
                vs.name
            )));
        }
        if !matches!(vs.forwarding, Forwarding::L2Dsr | Forwarding::L3Dsr) {
            continue;
        }
        if vs.forwarding == Forwarding::L2Dsr && connected(&cfg.interfaces, a.ip()).is_none() {
            return Err(err(format!(
                "member {} is not on-link: virtual server {:?} uses l2_dsr, which needs every member inside a connected prefix ({})",
                a.ip(),
                vs.name,
                describe_connected(&cfg.interfaces)
            )));
        }
        if vip.port() != 0 && a.port() != vip.port() {
            return Err(err(format!(
                "member port {} differs from port {} of virtual server {:?}: {} does not rewrite ports",
                a.port(),
                vip.port(),
                vs.name,
                vs.forwarding.as_str()
            )));
        }
    }
    Ok(())
}
