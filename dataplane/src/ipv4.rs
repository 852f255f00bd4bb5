//! The IPv4 path: parse, ICMP, virtual-server lookup, session lookup, member
//! choice, rewrite, egress, in the order a packet meets them.

use crate::addr::Addr;
use crate::conntrack;
use crate::exception::KernelClass;
use crate::nat;
use crate::packet::PacketBuf;
use crate::reset;
use crate::sched::pick::Refusal;
use crate::service::{find_vs, snat_port_owner, Rewrite};
use crate::session::{Dir, InsertError, Session4, Tuple4};
use crate::shared::Local;
use crate::stats::{self, DropReason};
use crate::wire::ipv4::{self, proto};
use crate::wire::{tcp, udp};
use crate::worker::{Verdict, Worker};
use sluice_config::Forwarding;
use std::net::Ipv4Addr;

/// The parsed addressing of a TCP or UDP packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    pub l3: usize,
    pub ihl: usize,
    pub tuple: Tuple4,
    pub tcp_flags: u8,
    /// TCP sequence and acknowledgement numbers and payload length (0 for UDP).
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u16,
}

impl Worker {
    /// Out of line, as one function with its header checks inlined (see
    /// BENCHMARKS.md, issue 16: inlined into the dispatch, the compiler
    /// called out to the checksum instead, 35 more instructions a packet).
    #[inline(never)]
    pub(crate) fn ipv4<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_checked(&pkt.data()[l3..])?;
        // The NIC's verdict where it checked (a redirected frame keeps its
        // mbuf flags), else our own.
        let good = match pkt.ip_checksum_verified() {
            Some(good) => good,
            None => ip.verify_checksum(),
        };
        if !good {
            return Err(DropReason::IpChecksum);
        }
        let (dst, protocol) = (ip.dst_addr(), ip.protocol());
        let local = self.shared.local(dst);
        if protocol == proto::ICMP {
            return self.icmp(port, pkt, l3, local, redirected);
        }
        if ip.is_fragment() {
            return self.fragment(port, pkt, l3, local, redirected);
        }
        self.transport(port, pkt, l3, local, protocol, redirected)
    }

    /// A TCP or UDP packet (or the first fragment of a datagram): to a VIP,
    /// to a SNAT address, to the switch's own address, or a member's reply.
    #[inline]
    pub(crate) fn transport<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        local: Option<Local>,
        protocol: u8,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        match local {
            Some(l) if l.vip => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.forward(pkt, flow, redirected)
            }
            Some(l) if l.snat.is_some() => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.reverse(pkt, flow, redirected)
            }
            Some(_) => self.local_to_kernel(port, pkt, l3, protocol),
            None if protocol == proto::TCP || protocol == proto::UDP => {
                let flow = parse_flow(pkt.data(), l3)?;
                self.reverse(pkt, flow, redirected)
            }
            None => Err(DropReason::NotForUs),
        }
    }

    /// Client → VIP.
    fn forward<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: Flow,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        let vs = find_vs(&self.shared.vs_map, t.dst.into(), t.dport, t.proto)
            .ok_or(DropReason::NoVirtualServer)?;
        if !redirected && self.shared.workers > 1 {
            let owner = self.shared.client_owner(t.src.into());
            if owner != self.id {
                return Ok(Verdict::Redirect(owner));
            }
        }
        let idx = match self.client_session(vs, &flow) {
            Ok(idx) => idx,
            Err(r @ (DropReason::NoMember | DropReason::MembersFull)) => {
                return self.reject_no_member(pkt, &flow, vs, r == DropReason::MembersFull)
            }
            Err(e) => return Err(e),
        };
        if reset::pending(self.sessions.get(idx)) {
            return self.reset_session(idx, &flow, Dir::Forward);
        }
        // The server is looked up once: conntrack and the rewrite need it.
        let rewrite = self
            .shared
            .service(self.sessions.get(idx).vs)
            .ok_or(DropReason::NoVirtualServer)?
            .rewrite();
        let s = self.touch(idx, Dir::Forward, &flow, rewrite.one_way());
        self.stats.count_vs(s.vs, true, pkt.data().len());
        self.send_to_member(pkt, &flow, &s, rewrite)
    }

    /// The session of a client packet: the existing one, or a new one when
    /// there is none, it idled out, or the client reuses a closed session's
    /// port with a new SYN. An idled-out session that `reset_on_timeout`
    /// resets is returned marked for reset.
    #[inline]
    fn client_session(&mut self, vs: u16, flow: &Flow) -> Result<u32, DropReason> {
        let t = flow.tuple;
        match self.sessions.lookup(&t, t.hash()) {
            Some((idx, Dir::Forward)) => {
                let s = *self.sessions.get(idx);
                let opens = t.proto == proto::TCP && conntrack::opens_tcp(flow.tcp_flags);
                let reopen = opens && conntrack::reusable(s.state);
                if !reopen && !self.expired(&s) {
                    return Ok(idx);
                }
                // A SYN opens a new connection whatever the old one left; any
                // other segment of an idled-out session is reset with its
                // numbers, as the sweep would have done.
                if !opens && reset::resets_when_expired(&self.shared, &s) {
                    self.sessions.get_mut(idx).state |= conntrack::flag::RESET_PENDING;
                    return Ok(idx);
                }
                self.remove_session(idx);
                self.new_session(vs, flow)
            }
            Some((_, Dir::Reverse)) => Err(DropReason::NoSession),
            None => self.new_session(vs, flow),
        }
    }

    /// Sends a client packet of session `s` to its member, rewritten as its
    /// virtual server says (`rewrite`).
    #[inline]
    pub(crate) fn send_to_member<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow,
        s: &Session4,
        rewrite: Rewrite,
    ) -> Result<Verdict, DropReason> {
        let Rewrite {
            forwarding,
            encap,
            mss_clamp,
        } = rewrite;
        match forwarding {
            Forwarding::DestNat | Forwarding::BothNat | Forwarding::LanToLan => {
                nat::rewrite(
                    &mut pkt.data_mut()[flow.l3..],
                    flow.ihl,
                    (s.snat.into(), s.sport),
                    (s.member.into(), s.mport),
                );
                self.egress(pkt, s.member.into())
            }
            // The frame goes to the member's MAC as it is.
            Forwarding::L2Dsr => self.egress(pkt, s.member.into()),
            Forwarding::L3Dsr => self.l3_dsr(pkt, flow, s.member.into(), encap, mss_clamp),
        }
    }

    /// Traffic to one of the switch's interface addresses that the dataplane
    /// does not answer itself: the kernel's, through the exception path.
    fn local_to_kernel<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &P,
        l3: usize,
        protocol: u8,
    ) -> Result<Verdict, DropReason> {
        let class = match protocol {
            proto::TCP => {
                let ip = ipv4::Packet::new_unchecked(&pkt.data()[l3..]);
                let t = tcp::Packet::new_checked(ip.payload())?;
                if conntrack::opens_tcp(t.flags()) {
                    KernelClass::TcpSyn
                } else {
                    KernelClass::Tcp
                }
            }
            proto::UDP => KernelClass::Udp,
            _ => KernelClass::Icmp,
        };
        let src = ipv4::Packet::new_unchecked(&pkt.data()[l3..]).src_addr();
        self.hand_to_kernel(port, src, class)
    }

    /// Member → client (Dest-NAT) or member → SNAT address (Both-NAT).
    fn reverse<P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: Flow,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        if !redirected && self.shared.workers > 1 {
            let owner = self.reverse_owner(t.dst.into(), t.dport);
            if owner != self.id {
                return Ok(Verdict::Redirect(owner));
            }
        }
        let unknown = |w: &Worker| match w.shared.local(t.dst.into()) {
            Some(_) => DropReason::NoSession,
            None => DropReason::NotForUs,
        };
        let idx = match self.sessions.lookup(&t, t.hash()) {
            Some((idx, Dir::Reverse)) => idx,
            _ => return Err(unknown(self)),
        };
        let s = *self.sessions.get(idx);
        if self.expired(&s) {
            if !reset::resets_when_expired(&self.shared, &s) {
                self.remove_session(idx);
                return Err(unknown(self));
            }
            self.sessions.get_mut(idx).state |= conntrack::flag::RESET_PENDING;
        }
        if reset::pending(self.sessions.get(idx)) {
            return self.reset_session(idx, &flow, Dir::Reverse);
        }
        let s = self.touch(idx, Dir::Reverse, &flow, false);
        self.stats.count_vs(s.vs, false, pkt.data().len());
        nat::rewrite(
            &mut pkt.data_mut()[flow.l3..],
            flow.ihl,
            (s.vip.into(), s.vport),
            (s.client.into(), s.cport),
        );
        self.egress(pkt, s.client.into())
    }

    /// The worker owning the session a member's packet to `dst:dport` belongs to.
    #[inline]
    pub(crate) fn reverse_owner(&self, dst: Ipv4Addr, dport: u16) -> u16 {
        let n = self.shared.workers;
        match self.shared.local(dst).and_then(|l| l.snat) {
            Some(_) => snat_port_owner(dport, n),
            None => self.shared.client_owner(dst),
        }
    }

    /// Updates state and idle time; returns a copy of the session.
    #[inline]
    fn touch(&mut self, idx: u32, dir: Dir, flow: &Flow, one_way: bool) -> Session4 {
        let now = self.stamp();
        let s = self.sessions.get_mut(idx);
        s.last_seen = now;
        if s.state & conntrack::flag::CONFIRMED == 0 {
            return self.touch_unconfirmed(idx, dir, flow, one_way);
        }
        if s.proto != proto::TCP {
            return *s;
        }
        let before = s.state;
        s.state = if one_way {
            conntrack::update_tcp_one_way(s.state, flow.tcp_flags)
        } else {
            conntrack::update_tcp(s.state, dir, flow.tcp_flags, false)
        };
        let s = *s;
        if s.state == before {
            // Most packets: nothing to recount.
            return s;
        }
        self.state_changed(&s, before);
        s
    }

    /// Recounts what a session's new state changes: half-open sessions, its
    /// member's closing sessions, its client's persistence entry.
    pub(crate) fn state_changed(&mut self, s: &Session4, before: u8) {
        self.embryonic_changed(Some(before), Some(s.state), s.proto);
        let closing = conntrack::closing(s.state, s.proto);
        if closing != conntrack::closing(before, s.proto) {
            self.member_moved(s, closing);
        }
        if (s.state & !before) & conntrack::flag::CONFIRMED != 0 {
            self.confirm_persistence(s);
        }
    }

    /// A session was confirmed: its client's persistence entry is no longer
    /// tentative (see `persist`).
    #[cold]
    fn confirm_persistence(&mut self, s: &Session4) {
        let Some(vs) = self.shared.service(s.vs) else {
            return;
        };
        let (Some(p), Some(m)) = (vs.persistence, vs.member_of(s.member, s.mport)) else {
            return;
        };
        let key = p.key(s.vs, s.client);
        self.balancer.persist.confirm(key, m.id, self.now_ms as u32);
    }

    /// Moves a session between its member's established and closing counts.
    #[cold]
    fn member_moved(&self, s: &Session4, closing: bool) {
        let vs = self.shared.service(s.vs);
        if let Some(m) = vs.and_then(|v| v.member_of(s.member, s.mport)) {
            self.shared.members.moved(self.id, m.id, closing);
        }
    }

    /// Chooses a member, allocates a SNAT port if the mode needs one, and
    /// inserts the session. Refusals leave nothing behind.
    #[cold]
    fn new_session(&mut self, vs_idx: u16, flow: &Flow) -> Result<u32, DropReason> {
        let t = flow.tuple;
        let resumed = t.proto == proto::TCP && !conntrack::opens_tcp(flow.tcp_flags);
        if resumed && !crate::flood::resumes(&self.shared, vs_idx, flow.tcp_flags) {
            return Err(DropReason::NoSession);
        }
        if self.shared.local(t.src.into()).is_some() {
            // A client claiming one of the switch's own addresses: its
            // replies would be steered as the switch's own traffic.
            return Err(DropReason::SpoofedSource);
        }
        let (member_ip, member_id, mport, source_nat) = self.choose_member(vs_idx, &t)?;
        // Room last: a SYN refused anyway (ACL, no member) evicts nothing.
        if t.proto == proto::TCP {
            self.admit_syn()?;
        } else if self.sessions.len() >= self.sessions.capacity() {
            return Err(DropReason::SessionTableFull);
        }
        let (snat, sport, ring) = if source_nat {
            match self.alloc_snat(vs_idx) {
                Some(got) => got,
                // A half-open session gives its port up to a new one.
                None if t.proto == proto::TCP && self.evict_embryonic(true) => {
                    self.alloc_snat(vs_idx).ok_or(DropReason::SnatExhausted)?
                }
                None => return Err(DropReason::SnatExhausted),
            }
        } else {
            (t.src, t.sport, None)
        };
        let held = if ring.is_some() {
            conntrack::flag::SNAT_PORT
        } else {
            0
        };
        let s = Session4 {
            client: t.src,
            vip: t.dst,
            member: member_ip,
            snat,
            cport: t.sport,
            vport: t.dport,
            mport,
            sport,
            last_seen: self.stamp(),
            vs: vs_idx,
            proto: t.proto,
            state: if resumed {
                conntrack::tcp::ESTABLISHED
            } else {
                conntrack::initial(t.proto)
            } | held,
        };
        match self.sessions.insert(s) {
            Ok(idx) => {
                self.handshakes[idx as usize] = s.last_seen;
                stats::inc(&self.stats.sessions_created);
                if resumed {
                    stats::inc(&self.stats.sessions_resumed);
                }
                self.embryonic_changed(None, Some(s.state), s.proto);
                if let Some(c) = self.stats.vs_sessions.get(usize::from(vs_idx)) {
                    stats::inc(c);
                }
                self.shared.members.opened(self.id, member_id);
                if let Some(p) = self.shared.service(vs_idx).and_then(|v| v.persistence) {
                    let key = p.key(vs_idx, t.src);
                    self.balancer.persist.open(key, member_id, s.last_seen);
                }
                stats::set(&self.stats.sessions_active, u64::from(self.sessions.len()));
                Ok(idx)
            }
            Err(e) => {
                if let Some(r) = ring {
                    self.snat[r].free(sport);
                }
                Err(match e {
                    InsertError::Full => DropReason::SessionTableFull,
                    InsertError::Exists => DropReason::NoSession,
                })
            }
        }
    }

    /// The member of a new session of server `vs_idx` (the server's ACL
    /// first): its address, id and port, and whether the session is
    /// source-NATed. Borrows the snapshot in place (no reference count is
    /// touched per session).
    #[inline]
    fn choose_member(
        &mut self,
        vs_idx: u16,
        t: &Tuple4,
    ) -> Result<(u32, u32, u16, bool), DropReason> {
        let vs = match self.shared.service(vs_idx) {
            Some(v) if !v.retired => v,
            // Removed by a reload: its sessions drain, new ones are refused.
            _ => return Err(DropReason::NoVirtualServer),
        };
        if !vs.acl.permits(t.src) {
            if let Some(c) = self.stats.vs_denied.get(usize::from(vs_idx)) {
                stats::inc(c);
            }
            return Err(DropReason::SourceDenied);
        }
        let m = self
            .balancer
            .choose(&self.shared, vs_idx, t, self.now_ms as u32)
            .map_err(|r| match r {
                Refusal::NoMember => DropReason::NoMember,
                Refusal::Full => DropReason::MembersFull,
            })?;
        let member = &vs.members[usize::from(m)];
        let mport = if vs.port == 0 { t.dport } else { member.port };
        let ip = u32::of(member.ip).ok_or(DropReason::NoMember)?;
        Ok((ip, member.id, mport, vs.source_nat_for(t.src)))
    }

    /// A SNAT address and port from this worker's rings, rotating over the
    /// virtual server's addresses. Returns (address, port, ring index).
    fn alloc_snat(&mut self, vs_idx: u16) -> Option<(u32, u16, Option<usize>)> {
        let addrs = &self.shared.service(vs_idx)?.snat;
        let n = addrs.len();
        for step in 0..n {
            let i = usize::from(addrs[(self.snat_rr as usize + step) % n]);
            if let Some(p) = self.snat.get_mut(i).and_then(|r| r.alloc()) {
                self.snat_rr = self.snat_rr.wrapping_add(1);
                let addr = u32::of(self.shared.snat_addrs[i])?;
                return Some((addr, p, Some(i)));
            }
        }
        None
    }
}

/// Parses the IPv4 + TCP/UDP headers of a packet headed for session lookup.
pub(crate) fn parse_flow(data: &[u8], l3: usize) -> Result<Flow, DropReason> {
    let ip = ipv4::Packet::new_unchecked(&data[l3..]);
    let protocol = ip.protocol();
    if protocol != proto::TCP && protocol != proto::UDP {
        return Err(DropReason::NoVirtualServer);
    }
    // Later fragments never come here: `Worker::ipv4` sends them down
    // their own path (see `frag`), and only a first one reaches a parse.
    debug_assert_eq!(ip.frag_offset(), 0);
    if ip.ttl() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let ihl = ip.header_len();
    let (sport, dport, tcp_flags, seq, ack, payload_len) = if protocol == proto::TCP {
        let t = tcp::Packet::new_checked(ip.payload())?;
        let payload = ip.payload().len().saturating_sub(t.header_len());
        let (sp, dp, f) = (t.src_port(), t.dst_port(), t.flags());
        (sp, dp, f, t.seq_number(), t.ack_number(), payload as u16)
    } else {
        // A first fragment holds the header but not the length it gives.
        let u = match ip.more_frags() {
            false => udp::Packet::new_checked(ip.payload())?,
            true if ip.payload().len() >= udp::HEADER_LEN => {
                udp::Packet::new_unchecked(ip.payload())
            }
            true => return Err(DropReason::Truncated),
        };
        (u.src_port(), u.dst_port(), 0, 0, 0, 0)
    };
    Ok(Flow {
        l3,
        ihl,
        tuple: Tuple4 {
            src: u32::from(ip.src_addr()),
            dst: u32::from(ip.dst_addr()),
            sport,
            dport,
            proto: protocol,
        },
        tcp_flags,
        seq,
        ack,
        payload_len,
    })
}
