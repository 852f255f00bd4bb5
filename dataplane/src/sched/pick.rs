//! Choosing the member of a new session: persistence first, then the pool's
//! method over the usable primaries, then over the backups (only while no
//! primary is usable). "Usable" is enabled, up, effective weight above 0 and
//! below `max_connections`.

use super::hash::{flow_key, source_key, source_port_key};
use super::least::{ipvs_load, pick_least};
use super::wrr::SmoothWrr;
use crate::addr::Addr;
use crate::persist::PersistTable;
use crate::service::VirtualServer;
use crate::session::Tuple;
use crate::shared::Shared;
use sluice_config::Method;

/// One worker's balancing state: cursors and smooth-WRR weights per virtual
/// server, and its clients' persistence entries.
#[derive(Debug)]
pub struct Balancer {
    /// The worker it chooses for (it reads that worker's view of loads).
    worker: u16,
    rr: Vec<u32>,
    wrr: Vec<SmoothWrr>,
    pub persist: PersistTable,
    pub persist_hits: u64,
}

/// Why no member was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No member is up, enabled and weighted (backups included).
    NoMember,
    /// Members are up, but every one is at its `max_connections`.
    Full,
}

impl Balancer {
    /// State for `shared`'s virtual servers; room for `persist_entries`
    /// persistence entries when any virtual server uses persistence.
    pub fn new(shared: &Shared, worker: u16, persist_entries: usize) -> Balancer {
        let persistent = shared.servers().any(|(_, v)| v.persistence.is_some());
        let (rr, wrr) = Balancer::cursors(shared);
        Balancer {
            worker,
            rr,
            wrr,
            persist: PersistTable::with_capacity(if persistent { persist_entries } else { 0 }),
            persist_hits: 0,
        }
    }

    /// Fresh cursors and smooth-WRR state for every slot of `shared`.
    pub fn cursors(shared: &Shared) -> (Vec<u32>, Vec<SmoothWrr>) {
        let slots = shared.services.len();
        let members = |i: usize| shared.services[i].as_ref().map_or(0, |v| v.members.len());
        (
            vec![0; slots],
            (0..slots).map(|i| SmoothWrr::new(members(i))).collect(),
        )
    }

    /// Takes the cursors built for a new configuration, keeping its own for
    /// the slots in `keep` (same members in the same order); returns the
    /// replaced ones, so whoever built them also frees them.
    pub fn adopt(
        &mut self,
        mut rr: Vec<u32>,
        mut wrr: Vec<SmoothWrr>,
        keep: &[bool],
    ) -> (Vec<u32>, Vec<SmoothWrr>) {
        for (slot, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
            if let (Some(old), Some(new)) = (self.rr.get(slot), rr.get_mut(slot)) {
                *new = *old;
            }
            if let (Some(old), Some(new)) = (self.wrr.get_mut(slot), wrr.get_mut(slot)) {
                std::mem::swap(old, new);
            }
        }
        std::mem::swap(&mut self.rr, &mut rr);
        std::mem::swap(&mut self.wrr, &mut wrr);
        (rr, wrr)
    }

    /// Whether the persistence table has room (it has none when no virtual
    /// server used persistence at boot).
    pub fn persists(&self) -> bool {
        self.persist.capacity() > 0
    }

    /// The member (index into the server's members) of a new session of
    /// virtual server `vs` for flow `t` at clock stamp `now`.
    pub fn choose<A: Addr>(
        &mut self,
        shared: &Shared,
        vs: u16,
        t: &Tuple<A>,
        now: u32,
    ) -> Result<u16, Refusal> {
        let Some(server) = shared.service(vs) else {
            return Err(Refusal::NoMember);
        };
        let Some(p) = server.persistence else {
            return self.by_method(shared, server, vs, t);
        };
        // Only read here: the entry is written when the session is admitted.
        let key = p.key(vs, t.src);
        if let Some(id) = self.persist.get(key, now) {
            // Entries name the member by id: a reload may move it in the list.
            let usable = server
                .members
                .iter()
                .position(|m| m.id == id && m.eligible(&shared.members, self.worker));
            if let Some(m) = usable {
                self.persist_hits += 1;
                return Ok(m as u16);
            }
        }
        self.by_method(shared, server, vs, t)
    }

    /// The pool's method over the usable primaries, else over the backups.
    fn by_method<A: Addr>(
        &mut self,
        shared: &Shared,
        server: &VirtualServer,
        vs: u16,
        t: &Tuple<A>,
    ) -> Result<u16, Refusal> {
        for backups in [false, true] {
            if let Some(m) = self.in_tier(shared, server, usize::from(vs), t, backups) {
                return Ok(m);
            }
        }
        let st = &*shared.members;
        let worker = self.worker;
        if (server.members.iter()).any(|m| m.available(st) && m.full(st, worker)) {
            Err(Refusal::Full)
        } else {
            Err(Refusal::NoMember)
        }
    }

    fn in_tier<A: Addr>(
        &mut self,
        shared: &Shared,
        server: &VirtualServer,
        vs: usize,
        t: &Tuple<A>,
        backups: bool,
    ) -> Option<u16> {
        let st = &*shared.members;
        let members = &server.members;
        let worker = self.worker;
        let usable = |i: usize| members[i].backup == backups && members[i].eligible(st, worker);
        let weight = |i: usize| {
            if usable(i) {
                st.weight(members[i].id)
            } else {
                0
            }
        };
        let (Some(cursor), Some(wrr)) = (self.rr.get_mut(vs), self.wrr.get_mut(vs)) else {
            return None;
        };
        match server.method {
            Method::RoundRobin => server.pick_round_robin(st, worker, backups, cursor),
            Method::WeightedRoundRobin => wrr.pick(weight).map(|i| i as u16),
            Method::LeastConnections | Method::WeightedLeastConnections => {
                let weighted = server.method == Method::WeightedLeastConnections;
                // One read of each member's state and load.
                let cost = |i: usize| {
                    let m = &members[i];
                    let state = st.state(m.id);
                    if m.backup != backups || !state.available() {
                        return None;
                    }
                    let (active, closing) = st.load_for(worker, m.id);
                    if m.max_connections
                        .is_some_and(|max| active + closing >= u64::from(max))
                    {
                        return None;
                    }
                    Some((
                        ipvs_load(active, closing),
                        if weighted { state.weight() } else { 1 },
                    ))
                };
                pick_least(members.len(), cost, cursor).map(|i| i as u16)
            }
            Method::SourceHash | Method::SourcePortHash | Method::Maglev => {
                match (server.maglev.is_some(), backups) {
                    (true, false) => hash_choice(shared, server, t, worker),
                    // Backups have no slots in the table: round robin.
                    _ => server.pick_round_robin(st, worker, backups, cursor),
                }
            }
        }
    }
}

/// Whether `method` picks by a hash of the flow (the same flow, the same
/// member, on every worker and every node with the same configuration).
pub fn is_hash(method: Method) -> bool {
    matches!(
        method,
        Method::SourceHash | Method::SourcePortHash | Method::Maglev
    )
}

/// The usable primary member a hash method picks for flow `t` (index into
/// the server's members); `None` without a table or a usable primary.
pub fn hash_choice<A: Addr>(
    shared: &Shared,
    server: &VirtualServer,
    t: &Tuple<A>,
    worker: u16,
) -> Option<u16> {
    let table = server.maglev.as_ref()?;
    let st = &*shared.members;
    let members = &server.members;
    let usable = |i: usize| !members[i].backup && members[i].eligible(st, worker);
    if !(0..members.len()).any(usable) {
        return None;
    }
    let key = match server.method {
        Method::SourceHash => source_key(t.src),
        Method::SourcePortHash => source_port_key(t.src, t.sport),
        _ => flow_key(t),
    };
    table.lookup_eligible(key, |i| usable(usize::from(i)))
}
