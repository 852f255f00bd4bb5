//! Source address ACL of a virtual server: allow and deny prefixes, the
//! longest matching prefix decides.
//!
//! Rules are sorted when the snapshot is built (longest prefix first, deny
//! before allow at equal length), so the first rule that matches decides and
//! a check is a linear scan with no allocation. That is the right shape for
//! the tens of rules a virtual server typically has; a list of thousands
//! would want a trie instead.

use crate::addr::Addr;

/// A rule over addresses of one family, widened to 128 bits (a server's
/// rules and clients are all of its own family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    net: u128,
    mask: u128,
    len: u8,
    allow: bool,
}

/// Who may open sessions to a virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAcl {
    rules: Box<[Rule]>,
    /// What happens to a client no rule matches: permitted unless there is an
    /// allow list ("only these").
    unmatched: bool,
}

impl SourceAcl {
    /// Builds the ACL from (network, prefix length) pairs of one family;
    /// host bits of the network are ignored and lengths above the
    /// family's are taken as its full length.
    pub fn new<A: Addr>(allow: &[(A, u8)], deny: &[(A, u8)]) -> SourceAcl {
        let rule = |allow: bool| {
            move |&(net, len): &(A, u8)| {
                let len = len.min(A::BITS);
                Rule {
                    net: net.masked(len).widen(),
                    mask: A::mask(len).widen(),
                    len,
                    allow,
                }
            }
        };
        let mut rules: Vec<Rule> = deny
            .iter()
            .map(rule(false))
            .chain(allow.iter().map(rule(true)))
            .collect();
        rules.sort_by_key(|r| (std::cmp::Reverse(r.len), r.allow));
        rules.dedup();
        SourceAcl {
            rules: rules.into_boxed_slice(),
            unmatched: allow.is_empty(),
        }
    }

    /// No rules: every client is permitted (the caller may skip the check).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `client` (of the server's family) may open a session.
    #[inline]
    pub fn permits<A: Addr>(&self, client: A) -> bool {
        let client = client.widen();
        self.rules
            .iter()
            .find(|r| client & r.mask == r.net)
            .map_or(self.unmatched, |r| r.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn net(s: &str) -> (u32, u8) {
        let (a, l) = s.split_once('/').unwrap();
        (ip(a), l.parse().unwrap())
    }

    fn acl(allow: &[&str], deny: &[&str]) -> SourceAcl {
        let a: Vec<_> = allow.iter().map(|s| net(s)).collect();
        let d: Vec<_> = deny.iter().map(|s| net(s)).collect();
        SourceAcl::new(&a, &d)
    }

    #[test]
    fn empty_permits_all() {
        let a = acl(&[], &[]);
        assert!(a.is_empty());
        assert!(a.permits(ip("0.0.0.0")) && a.permits(ip("203.0.113.9")));
    }

    #[test]
    fn allow_only_refuses_others() {
        let a = acl(&["10.1.0.0/16", "192.0.2.7/32"], &[]);
        assert!(!a.is_empty());
        assert!(a.permits(ip("10.1.200.3")));
        assert!(a.permits(ip("192.0.2.7")));
        assert!(!a.permits(ip("192.0.2.8")));
        assert!(!a.permits(ip("10.2.0.1")));
    }

    #[test]
    fn deny_only_permits_others() {
        let a = acl(&[], &["198.51.100.0/24"]);
        assert!(!a.permits(ip("198.51.100.77")));
        assert!(a.permits(ip("198.51.101.1")));
    }

    #[test]
    fn deny_inside_allow() {
        let a = acl(&["10.1.0.0/16"], &["10.1.5.0/24"]);
        assert!(a.permits(ip("10.1.4.255")));
        assert!(!a.permits(ip("10.1.5.0")));
        assert!(!a.permits(ip("10.1.5.255")));
        assert!(a.permits(ip("10.1.6.0")));
        assert!(!a.permits(ip("10.2.5.1")), "outside the allow list");
    }

    #[test]
    fn allow_host_inside_deny() {
        let a = acl(&["10.1.5.9/32"], &["10.1.5.0/24"]);
        assert!(a.permits(ip("10.1.5.9")));
        assert!(!a.permits(ip("10.1.5.8")));
        assert!(!a.permits(ip("10.9.9.9")), "allow list: only these");
    }

    #[test]
    fn equal_prefix_deny_wins() {
        let a = acl(&["10.1.5.0/24"], &["10.1.5.0/24"]);
        assert!(!a.permits(ip("10.1.5.1")));
        let a = acl(&["0.0.0.0/0"], &["0.0.0.0/0"]);
        assert!(!a.permits(ip("8.8.8.8")));
    }

    #[test]
    fn default_route_prefix() {
        let a = acl(&[], &["0.0.0.0/0"]);
        assert!(!a.permits(ip("0.0.0.0")) && !a.permits(ip("255.255.255.255")));
        let a = acl(&["0.0.0.0/0"], &["192.0.2.0/24"]);
        assert!(a.permits(ip("8.8.8.8")));
        assert!(!a.permits(ip("192.0.2.1")));
        let a = acl(&["192.0.2.1/32"], &["0.0.0.0/0"]);
        assert!(a.permits(ip("192.0.2.1")));
        assert!(!a.permits(ip("192.0.2.2")));
    }

    #[test]
    fn host_bits_ignored_and_long_lengths_clamped() {
        let a = acl(&[], &["10.1.5.77/24"]);
        assert!(!a.permits(ip("10.1.5.1")));
        let a = acl(&[], &["10.1.5.77/40"]);
        assert!(!a.permits(ip("10.1.5.77")));
        assert!(a.permits(ip("10.1.5.78")));
    }

    #[test]
    fn ipv6_prefixes() {
        let ip6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        let a = SourceAcl::new(&[(ip6("2001:db8::"), 32)], &[(ip6("2001:db8:bad::"), 48)]);
        assert!(a.permits(ip6("2001:db8:1::7")));
        assert!(!a.permits(ip6("2001:db8:bad:1::7")));
        assert!(!a.permits(ip6("2001:db9::1")), "outside the allow list");
        let a = SourceAcl::new::<u128>(&[], &[(ip6("2001:db8::1"), 200)]);
        assert!(!a.permits(ip6("2001:db8::1")) && a.permits(ip6("2001:db8::2")));
    }

    #[test]
    fn rules_sorted_longest_first_deny_first() {
        let a = acl(
            &["10.0.0.0/8", "10.1.0.0/16"],
            &["10.1.0.0/16", "10.1.2.3/32"],
        );
        let order: Vec<(u8, bool)> = a.rules.iter().map(|r| (r.len, r.allow)).collect();
        assert_eq!(order, [(32, false), (16, false), (16, true), (8, true)]);
    }
}
