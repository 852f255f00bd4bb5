//! The TCP and UDP path of both families, from the virtual server to the
//! rewritten packet: virtual-server lookup, session lookup, member choice,
//! state, rewrite and egress, in the order a packet meets them. Generic
//! over the address word ([`Family`]: `u32` for IPv4, `u128` for IPv6);
//! what differs between the families (headers, routes, answers the switch
//! writes) is behind the trait, in `ipv4` and `ipv6`.

use crate::addr::Addr;
use crate::conntrack;
use crate::packet::PacketBuf;
use crate::reset;
use crate::sched::pick::Refusal;
use crate::service::{snat_port_owner, Rewrite};
use crate::session::{Dir, InsertError, Session, SessionTable, Tuple};
use crate::shared::{Local, Shared, SEVERAL};
use crate::stats::{self, DropReason};
use crate::sync::SyncOp;
use crate::wire::ipv4::proto;
use crate::wire::tcp::flags;
use crate::worker::{AnySession, Verdict, Worker};

/// The parsed addressing of a TCP or UDP packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow<A = u32> {
    /// Where the IP header starts in the frame.
    pub l3: usize,
    /// Bytes from the IP header to the transport header (the IPv4 header
    /// length; the IPv6 header and its extension headers).
    pub ihl: usize,
    pub tuple: Tuple<A>,
    pub tcp_flags: u8,
    /// TCP sequence and acknowledgement numbers and payload length (0 for UDP).
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u16,
}

/// A worker's sessions of one family.
#[derive(Debug)]
pub(crate) struct Table<A: Addr> {
    pub sessions: SessionTable<Session<A>>,
    /// Per session entry, while it is unconfirmed (see `flood`): in the NAT
    /// modes the member's initial sequence number plus one, once its
    /// SYN-ACK passed; otherwise the clock stamp of the session's creation.
    /// Once a NAT-mode TCP session is confirmed: the client's first
    /// sequence number, where a PROXY header goes (see `proxy`).
    pub handshakes: Box<[u32]>,
    /// Where the search for a half-open session to evict resumes.
    pub evict_cursor: u32,
}

impl<A: Addr> Table<A> {
    pub fn new(capacity: u32, advise: &dyn Fn(usize, usize)) -> Table<A> {
        Table {
            sessions: SessionTable::with_capacity_advised(capacity, advise),
            handshakes: vec![0; capacity as usize].into_boxed_slice(),
            evict_cursor: 0,
        }
    }
}

/// What the TCP and UDP path needs of an address family.
pub(crate) trait Family: Addr {
    /// The worker's sessions of this family.
    fn t(w: &Worker) -> &Table<Self>;
    fn t_mut(w: &mut Worker) -> &mut Table<Self>;
    /// The shared snapshot and the sessions, borrowed apart.
    fn split(w: &mut Worker) -> (&Shared, &mut Table<Self>);
    /// The virtual server on `vip:port` for `proto` (a port-0 server
    /// catches every port).
    fn find_vs(shared: &Shared, vip: Self, port: u16, proto: u8) -> Option<u16>;
    /// The Dest-NAT virtual server a packet from member `member:port`
    /// answers for (see [`crate::service::reply_server`]).
    fn reply_server(shared: &Shared, member: Self, port: u16, proto: u8) -> Option<u16>;
    /// What the switch's own address `ip` is, if it is one.
    fn local(shared: &Shared, ip: Self) -> Option<Local>;
    /// Sends a client packet of session `s` to its member, rewritten as its
    /// virtual server says.
    fn send_to_member<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<Self>,
        s: &Session<Self>,
        rewrite: Rewrite,
    ) -> Result<Verdict, DropReason>;
    /// Sends a member's packet of session `s` to its client, rewritten.
    fn send_to_client<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<Self>,
        s: &Session<Self>,
    ) -> Result<Verdict, DropReason>;
    /// Refuses a new UDP session no member can take: the packet becomes an
    /// ICMP (ICMPv6) port unreachable from the VIP back to the client.
    fn unreachable<P: PacketBuf>(
        w: &mut Worker,
        pkt: &mut P,
        flow: &Flow<Self>,
    ) -> Result<Verdict, DropReason>;
    /// Routes a frame of this family towards `dst` and sets its MACs.
    fn egress<P: PacketBuf>(w: &mut Worker, pkt: &mut P, dst: Self) -> Result<Verdict, DropReason>;
    /// Parses the TCP or UDP packet of this family the frame `data` holds.
    fn parse(data: &[u8]) -> Result<Flow<Self>, DropReason>;
    /// The session as a packet to generate carries it.
    fn any(s: &Session<Self>) -> AnySession;
}

impl Worker {
    /// Client → VIP.
    pub(crate) fn forward<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: Flow<A>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        let vs =
            A::find_vs(&self.shared, t.dst, t.dport, t.proto).ok_or(DropReason::NoVirtualServer)?;
        if !redirected && self.shared.workers > 1 {
            let owner = self.shared.client_owner_of(t.src);
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
        if reset::pending(A::t(self).sessions.get(idx)) {
            return self.reset_session(idx, &flow, Dir::Forward);
        }
        // The server is looked up once: conntrack and the rewrite need it.
        let rewrite = self
            .shared
            .service(A::t(self).sessions.get(idx).vs)
            .ok_or(DropReason::NoVirtualServer)?
            .rewrite();
        let s = self.touch(idx, Dir::Forward, &flow, rewrite.one_way());
        self.stats.count_vs(s.vs, true, pkt.data().len());
        if let Some(first) = crate::proxy::first_of(self, idx, &s, rewrite.proxy) {
            self.proxy_to_member(pkt, &flow, &s, first)?;
        }
        A::send_to_member(self, pkt, &flow, &s, rewrite)
    }

    /// The session of a client packet: the existing one, or a new one when
    /// there is none, it idled out, or the client reuses a closed session's
    /// port with a new SYN. An idled-out session that `reset_on_timeout`
    /// resets is returned marked for reset.
    #[inline]
    fn client_session<A: Family>(&mut self, vs: u16, flow: &Flow<A>) -> Result<u32, DropReason> {
        let t = flow.tuple;
        match A::t(self).sessions.lookup(&t, t.hash()) {
            Some((idx, Dir::Forward)) => {
                let s = *A::t(self).sessions.get(idx);
                let opens = t.proto == proto::TCP && conntrack::opens_tcp(flow.tcp_flags);
                let reopen = opens && conntrack::reusable(s.state);
                if !reopen && !self.expired(&s) {
                    return Ok(idx);
                }
                // A SYN opens a new connection whatever the old one left; any
                // other segment of an idled-out session is reset with its
                // numbers, as the sweep would have done.
                if !opens && reset::resets_when_expired(&self.shared, &s) {
                    A::t_mut(self).sessions.get_mut(idx).state |= conntrack::flag::RESET_PENDING;
                    return Ok(idx);
                }
                self.remove_session::<A>(idx);
                self.new_session(vs, flow)
            }
            Some((_, Dir::Reverse)) => Err(DropReason::NoSession),
            None => self.new_session(vs, flow),
        }
    }

    /// Member → client (Dest-NAT) or member → SNAT address (Both-NAT).
    pub(crate) fn reverse<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: Flow<A>,
        redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        if !redirected && self.shared.workers > 1 {
            let owner = self.reverse_owner(t.dst, t.dport);
            if owner != self.id {
                return Ok(Verdict::Redirect(owner));
            }
        }
        let idx = match A::t(self).sessions.lookup(&t, t.hash()) {
            Some((idx, Dir::Reverse)) => idx,
            _ => return self.without_session(pkt, &flow),
        };
        let s = *A::t(self).sessions.get(idx);
        if self.expired(&s) {
            if !reset::resets_when_expired(&self.shared, &s) {
                self.remove_session::<A>(idx);
                return self.without_session(pkt, &flow);
            }
            A::t_mut(self).sessions.get_mut(idx).state |= conntrack::flag::RESET_PENDING;
        }
        if reset::pending(A::t(self).sessions.get(idx)) {
            return self.reset_session(idx, &flow, Dir::Reverse);
        }
        let s = self.touch(idx, Dir::Reverse, &flow, false);
        self.stats.count_vs(s.vs, false, pkt.data().len());
        let proxy = self.shared.service(s.vs).is_some_and(|v| v.proxy);
        if let Some(first) = crate::proxy::first_of(self, idx, &s, proxy) {
            self.proxy_to_client(pkt, &flow, first)?;
        }
        A::send_to_client(self, pkt, &flow, &s)
    }

    /// A member's packet that matches no session. To a SNAT address: its
    /// session is gone. Otherwise, from a member address and port serving
    /// exactly one Dest-NAT virtual server, it is that server's answer to
    /// a session another node holds (scale-out: the members' gateway may be
    /// any node), translated back statelessly: its source becomes the VIP
    /// and port. A member opening a connection (SYN without ACK) is not an
    /// answer; nor is a packet of a member serving several servers.
    #[cold]
    fn without_session<A: Family, P: PacketBuf>(
        &mut self,
        pkt: &mut P,
        flow: &Flow<A>,
    ) -> Result<Verdict, DropReason> {
        let t = flow.tuple;
        if A::local(&self.shared, t.dst).is_some() {
            return Err(DropReason::NoSession);
        }
        let opening =
            t.proto == proto::TCP && flow.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN;
        let slot = match A::reply_server(&self.shared, t.src, t.sport, t.proto) {
            None => return Err(DropReason::NotForUs),
            Some(_) if opening => return Err(DropReason::NotForUs),
            Some(SEVERAL) => return Err(DropReason::NoSession),
            Some(slot) => slot,
        };
        let vs = self.shared.service(slot).ok_or(DropReason::NotForUs)?;
        let vip = A::of(vs.vip).ok_or(DropReason::NotForUs)?;
        let s = Session {
            client: t.dst,
            vip,
            member: t.src,
            snat: t.dst,
            cport: t.dport,
            vport: vs.port,
            mport: t.sport,
            sport: t.dport,
            last_seen: 0,
            vs: slot,
            proto: t.proto,
            state: 0,
        };
        stats::inc(&self.stats.stateless_replies);
        self.stats.count_vs(slot, false, pkt.data().len());
        A::send_to_client(self, pkt, flow, &s)
    }

    /// The worker owning the session a member's packet to `dst:dport` belongs to.
    #[inline]
    pub(crate) fn reverse_owner<A: Family>(&self, dst: A, dport: u16) -> u16 {
        let to_snat = A::local(&self.shared, dst).is_some_and(|l| l.snat.is_some());
        self.reply_owner(to_snat, dst, dport)
    }

    /// [`Worker::reverse_owner`] when it is known whether `dst` is a SNAT
    /// address (`to_snat`).
    #[inline]
    pub(crate) fn reply_owner<A: Family>(&self, to_snat: bool, dst: A, dport: u16) -> u16 {
        match to_snat {
            true => snat_port_owner(dport, self.shared.workers),
            false => self.shared.client_owner_of(dst),
        }
    }

    /// Updates state and idle time; returns a copy of the session.
    #[inline(always)]
    fn touch<A: Family>(
        &mut self,
        idx: u32,
        dir: Dir,
        flow: &Flow<A>,
        one_way: bool,
    ) -> Session<A> {
        let now = self.stamp();
        let s = A::t_mut(self).sessions.get_mut(idx);
        s.last_seen = now;
        if s.state & conntrack::flag::CONFIRMED == 0 {
            return self.touch_unconfirmed(idx, dir, flow, one_way);
        }
        let quiet = flow.tcp_flags & (flags::SYN | flags::FIN | flags::RST) == 0;
        if s.proto != proto::TCP
            || (quiet && s.state & conntrack::tcp::MASK == conntrack::tcp::ESTABLISHED)
        {
            // UDP, and most TCP packets: an established session's segment
            // without SYN, FIN or RST changes nothing but the time.
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

    /// A session's state changed: recounted, and queued for the peers
    /// once confirmed.
    pub(crate) fn state_changed<A: Family>(&mut self, s: &Session<A>, before: u8) {
        self.recount(s, before);
        if s.state & conntrack::flag::CONFIRMED != 0 && self.sync.enabled() {
            self.sync_session(SyncOp::Update, s);
        }
    }

    /// Recounts what a session's new state changes: half-open sessions, its
    /// member's closing sessions, its client's persistence entry.
    pub(crate) fn recount<A: Family>(&mut self, s: &Session<A>, before: u8) {
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
    fn confirm_persistence<A: Family>(&mut self, s: &Session<A>) {
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
    fn member_moved<A: Family>(&self, s: &Session<A>, closing: bool) {
        let vs = self.shared.service(s.vs);
        if let Some(m) = vs.and_then(|v| v.member_of(s.member, s.mport)) {
            self.shared.members.moved(self.id, m.id, closing);
        }
    }

    /// Chooses a member, allocates a SNAT port if the mode needs one, and
    /// inserts the session. Refusals leave nothing behind.
    #[cold]
    fn new_session<A: Family>(&mut self, vs_idx: u16, flow: &Flow<A>) -> Result<u32, DropReason> {
        let t = flow.tuple;
        let resumed = t.proto == proto::TCP && !conntrack::opens_tcp(flow.tcp_flags);
        if resumed && !crate::flood::resumes(&self.shared, vs_idx, flow.tcp_flags) {
            return Err(DropReason::NoSession);
        }
        if A::local(&self.shared, t.src).is_some() || t.src == A::default() {
            // A client claiming one of the switch's own addresses (its
            // replies would be steered as the switch's own traffic), or
            // the unspecified one, which no host answers from.
            return Err(DropReason::SpoofedSource);
        }
        let (member_ip, member_id, mport, source_nat) = self.choose_member(vs_idx, &t)?;
        // Room last: a SYN refused anyway (ACL, no member) evicts nothing.
        if t.proto == proto::TCP {
            self.admit_syn::<A>()?;
        } else if A::t(self).sessions.len() >= A::t(self).sessions.capacity() {
            return Err(DropReason::SessionTableFull);
        }
        let (snat, sport, ring) = if source_nat {
            match self.alloc_snat::<A>(vs_idx) {
                Some(got) => got,
                // A half-open session gives its port up to a new one.
                None if t.proto == proto::TCP && self.evict_embryonic::<A>(true) => self
                    .alloc_snat::<A>(vs_idx)
                    .ok_or(DropReason::SnatExhausted)?,
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
        let s = Session {
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
        match A::t_mut(self).sessions.insert(s) {
            Ok(idx) => {
                A::t_mut(self).handshakes[idx as usize] = s.last_seen;
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
                self.count_active();
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
    fn choose_member<A: Family>(
        &mut self,
        vs_idx: u16,
        t: &Tuple<A>,
    ) -> Result<(A, u32, u16, bool), DropReason> {
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
        let ip = A::of(member.ip).ok_or(DropReason::NoMember)?;
        Ok((ip, member.id, mport, vs.source_nat_for(t.src)))
    }

    /// A SNAT address and port from this worker's rings, rotating over the
    /// virtual server's addresses. Returns (address, port, ring index).
    fn alloc_snat<A: Family>(&mut self, vs_idx: u16) -> Option<(A, u16, Option<usize>)> {
        let addrs = &self.shared.service(vs_idx)?.snat;
        let n = addrs.len();
        for step in 0..n {
            let i = usize::from(addrs[(self.snat_rr as usize + step) % n]);
            if let Some(p) = self.snat.get_mut(i).and_then(|r| r.alloc()) {
                self.snat_rr = self.snat_rr.wrapping_add(1);
                let addr = A::of(self.shared.snat_addrs[i])?;
                return Some((addr, p, Some(i)));
            }
        }
        None
    }

    /// Sets the gauge of sessions in the tables.
    #[inline]
    pub(crate) fn count_active(&self) {
        let n = self.v4.sessions.len() + self.v6.sessions.len();
        stats::set(&self.stats.sessions_active, u64::from(n));
    }

    /// Removes a session now (it expired on lookup or is being replaced).
    pub(crate) fn remove_session<A: Family>(&mut self, idx: u32) {
        self.discard_session::<A>(idx);
        stats::inc(&self.stats.sessions_expired);
    }

    /// Removes a session and releases what it holds, counting no ending;
    /// the peers are told.
    pub(crate) fn discard_session<A: Family>(&mut self, idx: u32) {
        if self.sync.enabled() {
            let s = *A::t(self).sessions.get(idx);
            self.sync_session(SyncOp::Remove, &s);
        }
        self.release_session::<A>(idx);
    }

    /// Removes a session and releases what it holds, telling no one.
    pub(crate) fn release_session<A: Family>(&mut self, idx: u32) {
        let s = *A::t(self).sessions.get(idx);
        let stamp = self.stamp();
        crate::worker::forget(
            &self.shared,
            &self.stats,
            self.id,
            &mut self.snat,
            &mut self.balancer,
            &s,
            stamp,
        );
        A::t_mut(self).sessions.remove(idx);
        self.count_active();
    }

    /// Whether a session has idled out at the current time.
    #[inline]
    pub(crate) fn expired<A: Addr>(&self, s: &Session<A>) -> bool {
        self.shared
            .session_expired(s, self.stamp(), self.syn_pressure)
    }
}
