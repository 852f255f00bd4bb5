//! Parsers for the scalar value forms of the config file. Errors are plain
//! messages; the table reader adds file, line and key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::types::{IfAddr, Prefix};

const DURATION_HINT: &str = "use a number followed by ms, s, m or h, e.g. \"250ms\" or \"2s\"";

/// Parses "250ms", "2s", "15m", "1h" and combinations such as "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: {DURATION_HINT}");
    let mut rest = s;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?;
    }
    if total.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(total)
}

pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("invalid IP address {s:?}: expected IPv4 or IPv6 text"))
}

pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid address {s:?}: expected \"ip:port\" or \"[ipv6]:port\", e.g. \"10.0.0.1:80\""
        )
    })
}

/// Where a port given alone listens: 127.0.0.1 only (a page nobody else
/// should read by default).
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A listening address: "ip:port", or a port alone (on [`loopback`]).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    match s.parse::<u16>() {
        Ok(0) => Err("port 0 is no port to listen on: use 1..65535".to_string()),
        Ok(port) => Ok(loopback(port)),
        Err(_) => parse_socket_addr(s).map_err(|_| {
            format!("invalid address {s:?}: expected a port (on 127.0.0.1), \"ip:port\" or \"[ipv6]:port\", e.g. \"9911\"")
        }),
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Splits "addr/len" and checks the length against the family.
fn split_prefix(s: &str, example: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("invalid prefix {s:?}: expected \"address/length\", e.g. {example:?}");
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
        return Err(bad());
    }
    let len: u16 = l.parse().map_err(|_| bad())?;
    if len > u16::from(max_len(addr)) {
        return Err(format!(
            "invalid prefix {s:?}: length {len} is too long for {} (at most {})",
            family(addr),
            max_len(addr)
        ));
    }
    Ok((addr, len as u8))
}

/// A network prefix; host bits must be clear.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let example = if s.contains(':') {
        "2001:db8::/64"
    } else {
        "10.20.0.0/24"
    };
    let (addr, len) = split_prefix(s, example)?;
    let p = Prefix::masked(addr, len);
    if p.addr != addr {
        return Err(format!(
            "prefix {s:?} has host bits set ({} beyond /{len}); did you mean \"{p}\"?",
            host_bits(addr, len)
        ));
    }
    Ok(p)
}

/// An interface address "host/len"; host bits are expected here.
pub fn parse_ifaddr(s: &str) -> Result<IfAddr, String> {
    let example = if s.contains(':') {
        "2001:db8::1/64"
    } else {
        "10.20.0.1/24"
    };
    let (addr, prefix_len) = split_prefix(s, example)?;
    if addr.is_unspecified() || addr.is_multicast() {
        return Err(format!(
            "{s:?} cannot be an interface address (unspecified or multicast)"
        ));
    }
    if let IpAddr::V4(v4) = addr {
        if v4.is_broadcast() {
            return Err(format!("{s:?} cannot be an interface address (broadcast)"));
        }
    }
    Ok(IfAddr { addr, prefix_len })
}

/// Clears the bits of `ip` beyond `len`.
pub fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// The bits of `ip` beyond `len`, as an address (e.g. 0.0.0.5).
fn host_bits(ip: IpAddr, len: u8) -> IpAddr {
    match (ip, mask(ip, len)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ u32::from(n))),
        (IpAddr::V6(a), IpAddr::V6(n)) => IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ u128::from(n))),
        _ => ip,
    }
}

/// "aa:bb:cc:dd:ee:ff" or "aa-bb-cc-dd-ee-ff"; unicast and non-zero.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || {
        format!("invalid MAC address {s:?}: expected six hex bytes such as \"02:00:00:00:00:13\"")
    };
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] {
        return Err(format!("MAC address {s:?} is all zeros"));
    }
    if mac[0] & 1 != 0 {
        return Err(format!(
            "MAC address {s:?} is a multicast address; a neighbour needs a unicast MAC"
        ));
    }
    Ok(mac)
}

/// Whether `n` is prime (trial division: at most 32768 steps).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime above `n`, if one fits in a u32.
pub fn next_prime(n: u32) -> Option<u32> {
    (n.checked_add(1)?..=u32::MAX).find(|&p| is_prime(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        for bad in [
            "",
            "2",
            "2 sec",
            "s",
            "1.5s",
            "-1s",
            "2d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("0s")
            .unwrap_err()
            .contains("greater than zero"));
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "10.20.0.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "10.20.0.0/24");
        assert!(p.contains("10.20.0.77".parse().unwrap()));
        assert!(!p.contains("10.20.1.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6: Prefix = "2001:db8::/64".parse().unwrap();
        assert!(v6.contains("2001:db8::5".parse().unwrap()));
        assert_eq!(
            parse_prefix("10.20.0.1/24").unwrap_err(),
            "prefix \"10.20.0.1/24\" has host bits set (0.0.0.1 beyond /24); did you mean \"10.20.0.0/24\"?"
        );
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert!(parse_prefix("10.0.0.0").is_err());
        assert!(parse_prefix("10.0.0.0/+8").is_err());
    }

    #[test]
    fn ifaddrs() {
        let a = parse_ifaddr("10.20.0.1/24").unwrap();
        assert_eq!(a.prefix().to_string(), "10.20.0.0/24");
        assert_eq!(a.to_string(), "10.20.0.1/24");
        assert!(parse_ifaddr("0.0.0.0/0").is_err());
        assert!(parse_ifaddr("2001:db8::1/64").is_ok());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:13"), Ok([2, 0, 0, 0, 0, 0x13]));
        assert_eq!(parse_mac("02-AA-00-00-00-13"), Ok([2, 0xaa, 0, 0, 0, 0x13]));
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00")
            .unwrap_err()
            .contains("zeros"));
        assert!(parse_mac("02:00:00:00:13").is_err());
        assert!(parse_mac("02:00:00:00:00:1g").is_err());
    }
}
