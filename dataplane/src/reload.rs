//! A worker's side of a reload: it takes a new configuration snapshot
//! between two bursts, with everything it needs already built by the control
//! thread (no allocation on the worker), and hands back what it replaced so
//! the control thread frees it.
//!
//! What the worker keeps: its sessions (they name virtual servers by slot and
//! SNAT addresses by index, both stable across reloads), its SNAT port
//! rings, its persistence entries (they name members by id), and the
//! round-robin cursors of every server whose members did not change.

use crate::persist::PersistTable;
use crate::sched::pick::Balancer;
use crate::sched::wrr::SmoothWrr;
use crate::service::PortRing;
use crate::shared::Shared;
use crate::stats;
use crate::worker::Worker;
use std::sync::Arc;

/// A new snapshot and the per-worker state built for it.
#[derive(Debug)]
pub struct Adopt {
    pub shared: Arc<Shared>,
    /// One ring per SNAT address of the snapshot: placeholders where the
    /// worker has its own, fresh rings for addresses the reload added.
    snat: Vec<PortRing>,
    rr: Vec<u32>,
    wrr: Vec<SmoothWrr>,
    /// Per slot: the worker keeps its own cursors (same members, same method).
    keep: Vec<bool>,
    /// A persistence table, for a worker that has none yet.
    persist: Option<PersistTable>,
    /// Addresses for worker 0 to announce (gratuitous ARP, unsolicited
    /// neighbour advertisement): (port, address).
    pub announce: Vec<(u16, std::net::IpAddr)>,
}

/// What a worker replaced, for the control thread to drop.
#[derive(Debug)]
pub struct Leftovers {
    pub shared: Arc<Shared>,
    pub generation: u64,
    _snat: Vec<PortRing>,
    _cursors: (Vec<u32>, Vec<SmoothWrr>),
    _persist: Option<PersistTable>,
}

/// Persistence entries of a worker with `sessions` session slots.
pub fn persist_entries(sessions: u32) -> usize {
    (sessions as usize / 4).max(1024)
}

impl Adopt {
    /// What worker `worker` (of `new.workers`, with `sessions` session
    /// slots) needs to move from `old` to `new`.
    pub fn prepare(old: &Shared, new: Arc<Shared>, worker: u16, sessions: u32) -> Adopt {
        let snat = (0..new.snat_addrs.len())
            .map(|i| {
                if i < old.snat_addrs.len() {
                    PortRing::default()
                } else {
                    PortRing::new(worker, new.workers)
                }
            })
            .collect();
        let (rr, wrr) = Balancer::cursors(&new);
        let keep = (0..new.services.len() as u16)
            .map(|slot| same_choice(old, &new, slot))
            .collect();
        let persistent = new.servers().any(|(_, v)| v.persistence.is_some());
        Adopt {
            snat,
            rr,
            wrr,
            keep,
            persist: persistent.then(|| PersistTable::with_capacity(persist_entries(sessions))),
            announce: Vec::new(),
            shared: new,
        }
    }
}

/// Whether a server chooses among the same members the same way in both
/// snapshots, so a worker's cursor for it still means the same.
fn same_choice(old: &Shared, new: &Shared, slot: u16) -> bool {
    match (old.service(slot), new.service(slot)) {
        (Some(a), Some(b)) => {
            a.method == b.method
                && a.members.len() == b.members.len()
                && a.members
                    .iter()
                    .zip(&b.members)
                    .all(|(x, y)| (x.id, x.weight, x.backup) == (y.id, y.weight, y.backup))
        }
        _ => false,
    }
}

impl Worker {
    /// Moves to the snapshot in `a` (between bursts).
    pub fn adopt(&mut self, mut a: Adopt) -> Leftovers {
        for (mine, placeholder) in self.snat.iter_mut().zip(a.snat.iter_mut()) {
            std::mem::swap(mine, placeholder);
        }
        std::mem::swap(&mut self.snat, &mut a.snat);
        let cursors = self.balancer.adopt(a.rr, a.wrr, &a.keep);
        let mut persist = a.persist.take();
        if let Some(table) = persist.as_mut().filter(|_| !self.balancer.persists()) {
            std::mem::swap(&mut self.balancer.persist, table);
        }
        let generation = a.shared.generation;
        let shared = std::mem::replace(&mut self.shared, a.shared);
        self.forget_hops();
        stats::set(&self.stats.generation, generation);
        Leftovers {
            shared,
            generation,
            _snat: a.snat,
            _cursors: cursors,
            _persist: persist,
        }
    }
}
