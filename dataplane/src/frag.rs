//! IP fragments through the switch, without reassembly.
//!
//! Only the first fragment of a datagram carries the transport header, so
//! only it can find (or open) its session. When it passes, the worker
//! records, for the datagram (source, destination, protocol, identifier),
//! where its other fragments go:
//!
//! - on the worker that owns the session: the session and the direction, so
//!   each later fragment is rewritten as the first was, addresses only (the
//!   transport checksum, in the first fragment, covers the whole datagram
//!   and was updated there);
//! - on a worker that handed the first fragment over: that worker, for the
//!   fragments that arrive after it (a NIC hashes the fragments of one
//!   datagram to one queue, by their addresses).
//!
//! A fragment that arrives before its first is held, a few per datagram
//! and per worker, for a short while; it goes on once the first fragment
//! passed, and is dropped and counted when it waits too long. Records live
//! `FRAG_LIFETIME_MS` in a fixed, set-associative table: a flood of
//! fragments costs a bounded table and counters, never a session.

use crate::exception::KernelClass;
use crate::fixedmap::{mix64, MapKey};
use crate::flow::{Family, Flow};
use crate::ipv4::parse_flow;
use crate::ipv6::parse_flow6;
use crate::nat;
use crate::packet::PacketBuf;
use crate::session::{Dir, Tuple, Tuple4};
use crate::shared::Local;
use crate::stats::{self, DropReason};
use crate::wire::ethernet;
use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6::{self, Upper};
use crate::worker::{Verdict, Worker};
use sluice_config::Forwarding;
use std::net::IpAddr;

/// How long a datagram's record lives after its first fragment passed, and
/// how long a fragment waits for its first.
pub const FRAG_LIFETIME_MS: u32 = 2_000;
/// Fragments held at most per datagram while its first has not come.
pub const HOLD_PER_DATAGRAM: u8 = 8;

const WAYS: usize = 4;

/// A datagram: the addresses, protocol and identifier its fragments share
/// (an IPv4 address held in the low 32 bits; `v6` tells the families apart).
/// An IPv6 datagram is named by its addresses and identification alone
/// (RFC 8200 4.5): what follows a fragment header may be an extension
/// header, in the later fragments as in the first; its `proto` is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub src: u128,
    pub dst: u128,
    pub ident: u32,
    pub proto: u8,
    pub v6: bool,
}

impl FragKey {
    /// The datagram of an IPv4 packet (any of its fragments).
    pub fn of<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> FragKey {
        FragKey {
            src: u128::from(u32::from(ip.src_addr())),
            dst: u128::from(u32::from(ip.dst_addr())),
            ident: u32::from(ip.ident()),
            proto: ip.protocol(),
            v6: false,
        }
    }

    /// The datagram of an IPv6 fragment (`upper`: its walked headers).
    pub fn of6<T: AsRef<[u8]>>(ip: &ipv6::Packet<T>, upper: Upper) -> FragKey {
        FragKey {
            src: u128::from(ip.src_addr()),
            dst: u128::from(ip.dst_addr()),
            ident: upper.ident,
            proto: 0,
            v6: true,
        }
    }

    fn hash(&self) -> u64 {
        let (src, dst) = (self.src.mix(), self.dst.mix());
        let rest = u64::from(self.ident) << 16 | u64::from(self.proto) << 8 | u64::from(self.v6);
        mix64(src ^ dst.rotate_left(32) ^ rest)
    }
}

/// Where the fragments of a datagram go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragRoute {
    /// Rewritten as session `idx` of this worker, in direction `dir`.
    Session { idx: u32, dir: Dir },
    /// Handed to worker `w`, which owns the session.
    Worker(u16),
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: FragKey,
    used: bool,
    /// `None` while fragments wait for the first one.
    route: Option<FragRoute>,
    /// Fragments held for this datagram so far.
    held: u8,
    /// Clock stamp after which the slot is free again.
    expires: u32,
}

impl Slot {
    fn live(&self, now: u32) -> bool {
        self.used && (now.wrapping_sub(self.expires) as i32) < 0
    }
}

/// One worker's fragment records.
#[derive(Debug)]
pub struct FragTable {
    slots: Box<[Slot]>,
    sets_mask: usize,
    /// Records pushed out by newer ones before they expired.
    evicted: u64,
    /// Routes recorded so far: held fragments are worth another look when
    /// it moved.
    recorded: u64,
}

impl FragTable {
    /// A table of about `capacity` records.
    pub fn with_capacity(capacity: usize) -> FragTable {
        let sets = capacity.div_ceil(WAYS).next_power_of_two().max(1);
        FragTable {
            slots: vec![Slot::default(); sets * WAYS].into_boxed_slice(),
            sets_mask: sets - 1,
            evicted: 0,
            recorded: 0,
        }
    }

    fn set(&mut self, key: &FragKey) -> &mut [Slot] {
        let s = (key.hash() as usize & self.sets_mask) * WAYS;
        &mut self.slots[s..s + WAYS]
    }

    /// The live slot of `key`, or a place for it: a free or expired slot,
    /// else (`evict`) the one expiring first.
    fn slot(&mut self, key: &FragKey, now: u32, evict: bool) -> Option<&mut Slot> {
        let set = self.set(key);
        let at = match set.iter().position(|s| s.live(now) && s.key == *key) {
            Some(i) => i,
            None => match set.iter().position(|s| !s.live(now)) {
                Some(i) => {
                    set[i] = Slot::default();
                    i
                }
                None if evict => {
                    let i = (0..WAYS).min_by_key(|&i| set[i].expires.wrapping_sub(now))?;
                    set[i] = Slot::default();
                    self.evicted += 1;
                    i
                }
                None => return None,
            },
        };
        let set = self.set(key);
        Some(&mut set[at])
    }

    /// Records where the fragments of `key` go (its first fragment passed).
    pub fn record(&mut self, key: FragKey, route: FragRoute, now: u32) {
        if let Some(s) = self.slot(&key, now, true) {
            s.key = key;
            s.used = true;
            s.route = Some(route);
            s.expires = now.wrapping_add(FRAG_LIFETIME_MS);
        }
        self.recorded += 1;
    }

    /// Where the fragments of `key` go, if its first fragment passed.
    pub fn route(&mut self, key: &FragKey, now: u32) -> Option<FragRoute> {
        let set = self.set(key);
        set.iter()
            .find(|s| s.live(now) && s.key == *key)
            .and_then(|s| s.route)
    }

    /// Counts one more fragment of `key` held for its first; false when
    /// the datagram has as many held as allowed, or its set has no room
    /// (a wait never pushes out a record).
    pub fn hold(&mut self, key: FragKey, now: u32) -> bool {
        let Some(s) = self.slot(&key, now, false) else {
            return false;
        };
        if !s.used {
            s.key = key;
            s.used = true;
            s.expires = now.wrapping_add(FRAG_LIFETIME_MS);
        }
        if s.route.is_some() || s.held >= HOLD_PER_DATAGRAM {
            return false;
        }
        s.held += 1;
        true
    }

    /// Routes recorded so far (a count that only grows).
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Records pushed out before they expired.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

impl Worker {
    /// A fragment: the first of its datagram goes on as any packet, and
    /// its route is noted for the others; a later one follows it.
    #[cold]
    pub(crate) fn fragment<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        if ip.frag_offset() != 0 {
            return self.later_fragment(port, pkt, l3, local, redirected);
        }
        let key = FragKey::of(&ip);
        // The tuple as received: the packet may be rewritten on its way.
        let tuple = parse_flow(pkt.data(), l3).ok().map(|f| f.tuple);
        let verdict = self.transport(port, pkt, l3, local, key.proto, redirected)?;
        self.note_route(key, tuple, verdict);
        Ok(verdict)
    }

    /// Notes where the first fragment of datagram `key` went (`verdict`):
    /// the worker it was handed to, or the session of its tuple as
    /// received (`tuple`: the packet may have been rewritten), as the table
    /// now says.
    fn note_route<A: Family>(&mut self, key: FragKey, tuple: Option<Tuple<A>>, verdict: Verdict) {
        let route = match verdict {
            Verdict::Redirect(w) => Some(FragRoute::Worker(w)),
            Verdict::Tx(_)
            | Verdict::TxFragmented(_)
            | Verdict::Hold { .. }
            | Verdict::Hold6 { .. } => tuple
                .and_then(|t| A::t(self).sessions.lookup(&t, t.hash()))
                .map(|(idx, dir)| FragRoute::Session { idx, dir }),
            _ => None,
        };
        if let Some(route) = route {
            let now = self.stamp();
            self.frags.record(key, route, now);
        }
    }

    /// An IPv4 fragment after the first of its datagram (see [`Worker::follow`]).
    #[cold]
    pub(crate) fn later_fragment<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
        let later = Later {
            key: FragKey::of(&ip),
            proto: ip.protocol(),
            src: ip.src_addr().into(),
            hops: ip.ttl(),
        };
        self.follow(port, pkt, (l3, later), local, redirected)
    }

    /// A fragment after the first of its datagram: it goes where its first
    /// went, or waits for it. To an interface address it is the kernel's.
    fn follow<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        (l3, later): (usize, Later),
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let key = later.key;
        if local.is_some_and(|l| !l.vip && l.snat.is_none()) {
            let class = match later.proto {
                proto::TCP => KernelClass::Tcp,
                proto::UDP => KernelClass::Udp,
                _ => KernelClass::Icmp,
            };
            return self.hand_to_kernel(port, later.src, class);
        }
        if !followed(later.proto, key.v6) {
            return Err(DropReason::Fragment);
        }
        if later.hops <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        match self.frags.route(&key, self.stamp()) {
            Some(FragRoute::Session { idx, dir }) if key.v6 => {
                self.follow_first6(pkt, l3, key, idx, dir)
            }
            Some(FragRoute::Session { idx, dir }) => self.follow_first(pkt, l3, key, idx, dir),
            Some(FragRoute::Worker(w)) => Ok(Verdict::Redirect(w)),
            None => {
                if !redirected && self.shared.workers > 1 {
                    let owner = self.fragment_owner(local, key);
                    if let Some(owner) = owner.filter(|o| *o != self.id) {
                        return Ok(Verdict::Redirect(owner));
                    }
                }
                match self.may_hold_fragment(key) {
                    true => Ok(Verdict::HoldFragment),
                    false => Err(DropReason::FragmentHoldFull),
                }
            }
        }
    }

    /// The worker owning the session of a fragment's datagram, when the
    /// addresses tell it: a client's fragment goes to its client's worker,
    /// a member's reply to a client (Dest-NAT) to that client's. A reply to
    /// a SNAT address needs its port (in the first fragment): `None`.
    fn fragment_owner(&self, local: Option<Local>, key: FragKey) -> Option<u16> {
        let client = match local {
            Some(l) if l.vip => key.src,
            Some(_) => return None,
            None => key.dst,
        };
        Some(match key.v6 {
            true => self.shared.client_owner_of(client),
            false => self.shared.client_owner_of(client as u32),
        })
    }

    /// Sends a fragment after the first the way its first went: session
    /// `idx`, in direction `dir`; addresses rewritten (NAT), the frame sent
    /// to the member's MAC (L2-DSR) or tunnelled (L3-DSR).
    fn follow_first<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        l3: usize,
        key: FragKey,
        idx: u32,
        dir: Dir,
    ) -> Result<Verdict, DropReason> {
        let s = *self.v4.sessions.get(idx);
        let same = match dir {
            Dir::Forward => (s.client, s.vip) == (key.src as u32, key.dst as u32),
            Dir::Reverse => (s.member, s.snat) == (key.src as u32, key.dst as u32),
        };
        if s.is_free() || !same || s.proto != key.proto || key.v6 {
            return Err(DropReason::FragmentUnmatched);
        }
        let rewrite = (self.shared.service(s.vs))
            .ok_or(DropReason::NoVirtualServer)?
            .rewrite();
        stats::inc(&self.stats.fragments);
        self.stats
            .count_vs(s.vs, dir == Dir::Forward, pkt.data().len());
        let ip = &mut pkt.data_mut()[l3..];
        if dir == Dir::Reverse {
            nat::rewrite_fragment(ip, s.vip.into(), s.client.into());
            return self.egress(pkt, s.client.into());
        }
        match rewrite.forwarding {
            Forwarding::DestNat | Forwarding::BothNat | Forwarding::LanToLan => {
                nat::rewrite_fragment(ip, s.snat.into(), s.member.into());
                self.egress(pkt, s.member.into())
            }
            Forwarding::L2Dsr => self.egress(pkt, s.member.into()),
            Forwarding::L3Dsr => {
                let ihl = ipv4::Packet::new_unchecked(&*ip).header_len();
                let flow = Flow {
                    l3,
                    ihl,
                    tuple: Tuple4 {
                        src: key.src as u32,
                        dst: key.dst as u32,
                        proto: key.proto,
                        ..Tuple4::default()
                    },
                    tcp_flags: 0,
                    seq: 0,
                    ack: 0,
                    payload_len: 0,
                };
                self.l3_dsr(
                    pkt,
                    &flow,
                    s.member.into(),
                    rewrite.encap,
                    rewrite.mss_clamp,
                )
            }
        }
    }
}

/// Whether the switch follows fragments whose header names `proto`: TCP
/// and UDP, and in IPv6 an extension header of the fragmentable part,
/// which may stand before them.
fn followed(proto: u8, v6: bool) -> bool {
    use crate::wire::ipv6::next_header as nh;
    match proto {
        proto::TCP | proto::UDP => true,
        nh::DEST_OPTS | nh::ROUTING | nh::AH => v6,
        _ => false,
    }
}

/// What the path of a later fragment needs of its header.
#[derive(Clone, Copy, Debug)]
struct Later {
    key: FragKey,
    /// The protocol its header names (IPv6: the fragment header's next).
    proto: u8,
    src: IpAddr,
    /// TTL or hop limit.
    hops: u8,
}

impl Worker {
    /// An IPv6 fragment (`upper`: its walked headers): the first of its
    /// datagram goes on as any packet, and its route is noted for the
    /// others; a later one follows it, as for IPv4.
    #[cold]
    pub(crate) fn fragment6<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        (l3, upper): (usize, Upper),
        local: Option<Local>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let key = FragKey::of6(&ip, upper);
        if upper.non_first_fragment {
            let later = Later {
                key,
                proto: upper.protocol,
                src: ip.src_addr().into(),
                hops: ip.hop_limit(),
            };
            return self.follow(port, pkt, (l3, later), local, redirected);
        }
        if !matches!(upper.protocol, proto::TCP | proto::UDP) {
            return match local.is_some_and(|l| l.interface.is_some()) {
                true => self.local6_to_kernel(port, pkt, l3, upper),
                false => Err(DropReason::Fragment),
            };
        }
        let tuple = parse_flow6(pkt.data(), l3, upper).ok().map(|f| f.tuple);
        let verdict = self.transport6(port, pkt, (l3, upper), local, redirected)?;
        self.note_route(key, tuple, verdict);
        Ok(verdict)
    }

    /// [`Worker::follow_first`] for IPv6: addresses rewritten (NAT; the
    /// fragment has no checksum of its own) or the frame sent as it is
    /// (L2-DSR).
    fn follow_first6<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        l3: usize,
        key: FragKey,
        idx: u32,
        dir: Dir,
    ) -> Result<Verdict, DropReason> {
        let s = *self.v6.sessions.get(idx);
        let same = match dir {
            Dir::Forward => (s.client, s.vip) == (key.src, key.dst),
            Dir::Reverse => (s.member, s.snat) == (key.src, key.dst),
        };
        if s.is_free() || !same {
            return Err(DropReason::FragmentUnmatched);
        }
        let rewrite = (self.shared.service(s.vs))
            .ok_or(DropReason::NoVirtualServer)?
            .rewrite();
        stats::inc(&self.stats.fragments);
        self.stats
            .count_vs(s.vs, dir == Dir::Forward, pkt.data().len());
        let ip = &mut pkt.data_mut()[l3..];
        let (src, dst) = match (dir, rewrite.forwarding) {
            (Dir::Reverse, _) => (s.vip, s.client),
            (_, Forwarding::DestNat | Forwarding::BothNat | Forwarding::LanToLan) => {
                (s.snat, s.member)
            }
            (_, Forwarding::L2Dsr) => return self.egress6(pkt, s.member.into()),
            (_, Forwarding::L3Dsr) => {
                let flow = Flow {
                    l3,
                    ihl: ipv6::HEADER_LEN,
                    tuple: Tuple {
                        src: key.src,
                        dst: key.dst,
                        proto: s.proto,
                        ..Tuple::default()
                    },
                    tcp_flags: 0,
                    seq: 0,
                    ack: 0,
                    payload_len: 0,
                };
                return self.l3_dsr6(pkt, &flow, s.member.into(), rewrite, true);
            }
        };
        nat::rewrite_fragment6(ip, src.into(), dst.into());
        self.egress6(pkt, dst.into())
    }
}

/// Cuts an IPv4 packet longer than `mtu` (an IP MTU, at `l3` in its
/// frame) at the last 8-byte boundary that fits: `pkt` keeps the first
/// fragment, `tail` (an empty buffer) receives the rest behind a copy of
/// the link and IP headers. Offsets, MF, lengths and header checksums are
/// set on both; the tail may itself still be too long (cut it again).
/// False, both left as they were, when the packet fits, may not be
/// fragmented (DF), has no room for a fragment's payload, or `tail` no
/// room for it.
pub fn split_off<P: PacketBuf>(pkt: &mut P, tail: &mut P, l3: usize, mtu: u16) -> bool {
    let data = pkt.data();
    let Ok(ip) = ipv4::Packet::new_checked(data.get(l3..).unwrap_or_default()) else {
        return false;
    };
    let (ihl, total) = (ip.header_len(), usize::from(ip.total_len()));
    let room = usize::from(mtu).saturating_sub(ihl) & !7;
    if total <= usize::from(mtu) || ip.dont_frag() || room == 0 {
        return false;
    }
    let (offset, more) = (ip.frag_offset(), ip.more_frags());
    let (head, rest) = (l3 + ihl, total - ihl - room);
    let len = (head + rest).max(ethernet::MIN_FRAME_LEN);
    if !tail.data().is_empty() || !tail.append(len) {
        return false;
    }
    let cut = head + room;
    let out = tail.data_mut();
    out[..head].copy_from_slice(&data[..head]);
    out[head..head + rest].copy_from_slice(&data[cut..cut + rest]);
    out[head + rest..].fill(0);
    let mut t = ipv4::Packet::new_unchecked(&mut out[l3..]);
    t.set_total_len((ihl + rest) as u16);
    t.set_flags_frag(false, more, offset + room as u16);
    t.fill_checksum();
    // The first keeps its head: its padding, if any, goes with the rest.
    let excess = pkt.data().len() - cut;
    if !pkt.trim(excess) {
        return false;
    }
    let mut f = ipv4::Packet::new_unchecked(&mut pkt.data_mut()[l3..]);
    f.set_total_len((ihl + room) as u16);
    f.set_flags_frag(false, true, offset);
    f.fill_checksum();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FragKey {
        FragKey {
            src: u128::from(0x0a00_0000 | i),
            dst: 0xc633_640a,
            ident: 7,
            proto: 17,
            v6: false,
        }
    }

    /// An Ethernet frame holding an IPv4 packet of `total` bytes, DF as
    /// given, payload bytes counting up.
    fn frame(total: usize, df: bool) -> Vec<u8> {
        let mut f = vec![0xaa; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, if df { 0x40 } else { 0 }, 0, 64, 4, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend((0..total - 20).map(|i| i as u8));
        f
    }

    /// The ones' complement sum of a header, done here the long way.
    fn header_sum_ok(h: &[u8]) -> bool {
        let mut sum: u32 = h
            .chunks(2)
            .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn an_oversize_packet_is_cut_into_fragments_that_add_up() {
        use crate::packet::VecBuf;
        let original = frame(2_520, false);
        let mut pkt = VecBuf::new(&original);
        let mut pieces = Vec::new();
        loop {
            let mut tail = VecBuf::new(&[]);
            if !split_off(&mut pkt, &mut tail, 14, 1_000) {
                break;
            }
            pieces.push(std::mem::replace(&mut pkt, tail).data().to_vec());
        }
        pieces.push(pkt.data().to_vec());
        // 2,500 bytes of payload in pieces of 976 (the 8-byte multiple
        // that fits 1,000 after a 20-byte header): 976, 976, 548.
        let fields: Vec<(usize, u16, usize)> = pieces
            .iter()
            .map(|p| {
                let len = usize::from(u16::from_be_bytes([p[16], p[17]]));
                let flags = u16::from_be_bytes([p[20], p[21]]);
                (len, flags, p.len())
            })
            .collect();
        assert_eq!(
            fields,
            [
                (996, 0x2000, 1010),
                (996, 0x2000 | 122, 1010),
                (568, 244, 582)
            ]
        );
        let mut payload = Vec::new();
        for p in &pieces {
            assert_eq!(p[..14], original[..14], "link header copied");
            assert_eq!(p[18..20], [0x12, 0x34], "identifier kept");
            assert!(header_sum_ok(&p[14..34]), "header checksum");
            payload.extend_from_slice(&p[34..]);
        }
        assert_eq!(payload, original[34..]);
    }

    #[test]
    fn what_may_not_or_need_not_be_cut_is_left_alone() {
        use crate::packet::VecBuf;
        for (name, original) in [
            ("DF set", frame(1_200, true)),
            ("fits", frame(1_000, false)),
            ("not IPv4", vec![0; 1_200]),
        ] {
            let mut pkt = VecBuf::new(&original);
            let mut tail = VecBuf::new(&[]);
            assert!(!split_off(&mut pkt, &mut tail, 14, 1_000), "{name}");
            assert_eq!(pkt.data(), original, "{name}");
        }
        // A short last piece is padded to the shortest Ethernet frame.
        let mut pkt = VecBuf::new(&frame(1_004, false));
        let mut tail = VecBuf::new(&[]);
        assert!(split_off(&mut pkt, &mut tail, 14, 1_000));
        assert_eq!(tail.data().len(), 60);
        // 984 bytes of payload: 976 in the first, 8 (976..984) in the rest.
        let rest: Vec<u8> = (976..984u32).map(|i| i as u8).collect();
        assert_eq!(tail.data()[34..42], rest);
        assert_eq!(tail.data()[42..], [0; 18]);
    }

    #[test]
    fn records_live_for_their_lifetime() {
        let mut t = FragTable::with_capacity(64);
        let r = FragRoute::Session {
            idx: 3,
            dir: Dir::Forward,
        };
        assert_eq!(t.route(&key(1), 0), None);
        t.record(key(1), r, 100);
        assert_eq!(t.route(&key(1), 100 + FRAG_LIFETIME_MS - 1), Some(r));
        assert_eq!(t.route(&key(1), 100 + FRAG_LIFETIME_MS), None);
        let other = FragKey { ident: 8, ..key(1) };
        assert_eq!(t.route(&other, 100), None, "another datagram");
        assert_eq!(t.recorded(), 1);
    }

    #[test]
    fn holds_are_bounded_per_datagram_and_never_push_out_a_record() {
        let mut t = FragTable::with_capacity(4);
        let k = key(1);
        for _ in 0..HOLD_PER_DATAGRAM {
            assert!(t.hold(k, 0));
        }
        assert!(!t.hold(k, 0), "bound per datagram");
        // One set of four: fill it with records, then a hold finds no room.
        let mut t = FragTable::with_capacity(4);
        for i in 0..4 {
            t.record(key(i), FragRoute::Worker(1), 0);
        }
        assert!(!t.hold(key(9), 0));
        assert_eq!(t.route(&key(0), 0), Some(FragRoute::Worker(1)));
        // A record pushes out the one expiring first.
        t.record(key(9), FragRoute::Worker(0), 5);
        assert_eq!((t.route(&key(0), 5), t.evicted()), (None, 1));
        assert_eq!(t.route(&key(9), 5), Some(FragRoute::Worker(0)));
        // Once recorded, the datagram's fragments need no holding.
        assert!(!t.hold(key(9), 5));
    }
}
