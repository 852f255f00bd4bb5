//! The run-to-completion loop of one worker lcore: receive a burst on each
//! port, process it, hand misdirected packets to their owner, transmit,
//! expire a few sessions, repeat. No locks, no allocation, no system calls
//! (an idle adaptive worker sleeps, outside the packet path).

use crate::clock::Clock;
use sluice_dataplane::packet::PacketBuf;
use sluice_dataplane::stats::{self, DropReason, WorkerStats, MAX_PORTS};
use sluice_dataplane::worker::{Verdict, Worker};
use sluice_ffi::{Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest burst the loop handles (the configured burst is capped to it).
pub const MAX_BURST: usize = 512;
/// How far ahead of the packet being processed its successors are prefetched.
const PREFETCH_AHEAD: usize = 3;
/// Frames held for an unresolved next hop: at most this many per worker,
/// this many per next hop, for this long (three ARP requests, one a second).
const HOLD_MAX: usize = 256;
const HOLD_PER_HOP: usize = 8;
const HOLD_MS: u64 = 3000;
/// Fragments held for their datagram's first fragment: at most this many
/// per worker, for this long (`frag::FRAG_LIFETIME_MS`).
const HOLD_FRAGMENTS: usize = 128;
/// Idle turns before an adaptive worker starts sleeping, and its longest nap.
const IDLE_SPIN_TURNS: u32 = 200;
const MAX_NAP_US: u64 = 200;

/// A worker's state, allocated by the worker's own lcore so its session
/// table is first touched there (and so lands on that lcore's NUMA node),
/// in transparent huge pages where the kernel gives them (see `boot` for
/// the warning when it does not).
pub fn worker(
    id: u16,
    shared: Arc<sluice_dataplane::shared::Shared>,
    stats: Arc<WorkerStats>,
    sessions: u32,
) -> Worker {
    let advise = |addr: usize, len: usize| {
        if !sluice_ffi::advise_hugepages(addr, len) {
            crate::log(format!(
                "warning: worker {id}: the kernel refused huge pages for {} MB of session table: 4 KB pages",
                len >> 20
            ));
        }
    };
    Worker::new_advised(id, shared, stats, sessions, &advise)
}

/// The pipeline's view of an mbuf.
pub struct MbufPkt<'a>(pub &'a mut Mbuf);

impl PacketBuf for MbufPkt<'_> {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn prepend(&mut self, n: usize) -> bool {
        self.0.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    fn append(&mut self, n: usize) -> bool {
        self.0.append(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.0.trim(n)
    }
    #[inline(always)]
    fn ip_checksum_verified(&self) -> Option<bool> {
        self.0.ip_checksum()
    }
}

/// Everything one worker lcore owns.
pub struct Lcore {
    pub worker: Worker,
    pub queues: Queues,
    pub rings: WorkerRings,
    pub channels: WorkerChannels,
    /// Packets per burst (capped to [`MAX_BURST`]), and whether an idle
    /// worker naps (`poll = "adaptive"`).
    pub burst: usize,
    pub adaptive: bool,
    pub pool: Arc<Mempool>,
    /// Interface index of each DPDK port id (ids need not follow `[[interface]]` order).
    pub port_index: crate::boot::PortMap,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    /// Addresses to announce (gratuitous ARP, unsolicited neighbour
    /// advertisement) at start: (port, ip).
    pub announce: Vec<(u16, IpAddr)>,
}

/// `rx[p]` / `tx[p]`: this worker's own queue on port p. Dropped with the
/// Lcore at the end of `run`, on the worker lcore, before main stops ports.
pub struct Queues {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
}

/// The rings between this worker, the others and the exception path.
pub struct WorkerRings {
    /// `to[w]`: ring to worker w (None for ourselves).
    pub to: Vec<Option<RingProducer>>,
    /// Rings from the other workers.
    pub from: Vec<RingConsumer>,
    /// Ring to the exception path (None when no interface has a kernel interface).
    pub kernel: Option<RingProducer>,
    /// Worker 0: frames the kernel interfaces send, to transmit as they are.
    pub from_kernel: Option<RingConsumer>,
}

/// The worker's ends of the control thread's channels.
pub struct WorkerChannels {
    /// Requests from `sluicectl sessions`, one slice per loop turn at most.
    pub inspect: crate::channels::SessionsWorkerEnd,
    /// New configuration snapshots, taken between bursts.
    pub reload: crate::channels::ReloadWorkerEnd,
    /// Session synchronisation: changes out, peers' sessions in.
    pub sync: Option<crate::ha::sync::link::WorkerEnd>,
}

struct Buffers {
    rx: Vec<Mbuf>,
    verdicts: Vec<Verdict>,
    tx: Vec<Vec<Mbuf>>,
    redirect: Vec<Vec<Mbuf>>,
    kernel: Vec<Mbuf>,
    /// Frames of the burst being processed that go nowhere.
    free: Vec<Mbuf>,
    /// Frames waiting for a next hop's MAC: (frame, port, next hop, deadline).
    held: Vec<(Mbuf, u16, IpAddr, u64)>,
    /// Fragments waiting for their first: (frame, port, redirected, deadline).
    fragments: Vec<(Mbuf, u16, bool, u64)>,
    /// `Worker::fragments_recorded` when the waiting fragments last ran.
    fragments_seen: u64,
    /// Frames too long for their port, to cut into IPv4 fragments: (frame, port).
    oversize: Vec<(Mbuf, u16)>,
    now_ms: u64,
}

impl Buffers {
    /// Every buffer a worker needs, allocated once before the loop.
    fn new(burst: usize, tx_queues: usize, rings: usize) -> Buffers {
        Buffers {
            rx: Vec::with_capacity(burst),
            verdicts: Vec::with_capacity(burst),
            tx: (0..tx_queues)
                .map(|_| Vec::with_capacity(burst * 4))
                .collect(),
            redirect: (0..rings).map(|_| Vec::with_capacity(burst * 4)).collect(),
            kernel: Vec::with_capacity(burst * 4),
            free: Vec::with_capacity(MAX_BURST),
            held: Vec::with_capacity(HOLD_MAX),
            fragments: Vec::with_capacity(HOLD_FRAGMENTS),
            fragments_seen: 0,
            oversize: Vec::new(),
            now_ms: 0,
        }
    }
}

impl Lcore {
    pub fn run(mut self) -> i32 {
        let burst = self.burst.clamp(1, MAX_BURST);
        let mut b = Buffers::new(burst, self.queues.tx.len(), self.rings.to.len());
        let sweep_budget = (self.worker.sessions().capacity() / 1000).max(64);
        let mut last_ms = u64::MAX;
        let mut idle: u32 = 0;
        self.announce(&mut b);
        while !self.stop.load(Ordering::Relaxed) {
            let now_ms = self.clock.now_ms();
            self.worker.set_time(now_ms);
            b.now_ms = now_ms;
            let got = self.receive(&mut b, burst);
            if now_ms != last_ms {
                last_ms = now_ms;
                self.worker.maintain(sweep_budget);
            }
            self.answer_inspect();
            if let Some(sync) = &self.channels.sync {
                sync.exchange(&mut self.worker);
            }
            self.take_new_configuration(&mut b);
            if !b.held.is_empty() {
                self.release_held(&mut b);
            }
            if !b.fragments.is_empty() {
                self.release_fragments(&mut b);
            }
            self.send_arp_requests(&mut b);
            self.send_generated_packets(&mut b);
            if !b.oversize.is_empty() {
                self.send_oversize(&mut b);
            }
            self.flush(&mut b);
            let st = self.worker.stats();
            stats::inc(&st.loops);
            if got == 0 {
                stats::inc(&st.idle_loops);
                idle = idle.saturating_add(1);
                if self.adaptive && idle > IDLE_SPIN_TURNS {
                    let nap = u64::from(idle - IDLE_SPIN_TURNS).min(MAX_NAP_US);
                    std::thread::sleep(Duration::from_micros(nap));
                }
            } else {
                idle = 0;
            }
        }
        0
    }

    /// One burst from each port's queue, each other worker's ring and the
    /// kernel, each run through the pipeline; how many packets came.
    #[inline]
    fn receive(&mut self, b: &mut Buffers, burst: usize) -> usize {
        let mut got = 0;
        for p in 0..self.queues.rx.len() {
            b.rx.clear();
            let n = self.queues.rx[p].burst(&mut b.rx, burst);
            if n > 0 {
                got += n;
                self.process(b, Some(p as u16));
            }
        }
        for r in 0..self.rings.from.len() {
            b.rx.clear();
            let n = self.rings.from[r].dequeue_burst(&mut b.rx, burst);
            if n > 0 {
                got += n;
                self.process(b, None);
            }
        }
        got + self.take_kernel_frames(b, burst)
    }

    /// Runs the burst in `b.rx` through the pipeline, then moves each packet
    /// where its verdict says. `port` is None for packets from another worker.
    #[inline]
    fn process(&mut self, b: &mut Buffers, port: Option<u16>) {
        let n = b.rx.len();
        for m in b.rx.iter().take(PREFETCH_AHEAD) {
            m.prefetch();
        }
        let mut bytes = 0;
        for m in b.rx.iter() {
            self.worker.prefetch_session(m.data());
            bytes += m.len();
        }
        if let Some(p) = port {
            self.worker.count_rx(p, n as u64, bytes as u64);
        }
        b.verdicts.clear();
        for i in 0..n {
            if let Some(ahead) = b.rx.get(i + PREFETCH_AHEAD) {
                ahead.prefetch();
            }
            let m = &mut b.rx[i];
            let (in_port, redirected) = match port {
                Some(p) => (p, false),
                None => (self.port_index.interface(m.port()), true),
            };
            let v = self.worker.process(in_port, &mut MbufPkt(m), redirected);
            b.verdicts.push(v);
        }
        let (mut rx, verdicts) = (std::mem::take(&mut b.rx), std::mem::take(&mut b.verdicts));
        for (m, v) in rx.drain(..).zip(verdicts.iter()) {
            let in_port = match port {
                Some(p) => p,
                None => self.port_index.interface(m.port()),
            };
            place(&self.worker, b, m, *v, in_port, port.is_none());
        }
        (b.rx, b.verdicts) = (rx, verdicts);
        // What the burst dropped goes back to the pool in one call.
        Mbuf::free_bulk(&mut b.free);
    }

    /// Runs the waiting fragments again when a first fragment passed since
    /// they last ran; gives up, and counts, those that waited too long.
    fn release_fragments(&mut self, b: &mut Buffers) {
        let recorded = self.worker.fragments_recorded();
        let fresh = recorded != b.fragments_seen;
        b.fragments_seen = recorded;
        let waiting = std::mem::take(&mut b.fragments);
        for (mut m, port, redirected, deadline) in waiting {
            let v = match fresh {
                true => self
                    .worker
                    .replay_fragment(port, &mut MbufPkt(&mut m), redirected),
                false => Verdict::HoldFragment,
            };
            match v {
                Verdict::HoldFragment if b.now_ms >= deadline => {
                    self.worker.stats().dropped(DropReason::FragmentUnmatched);
                    b.free.push(m);
                }
                Verdict::HoldFragment => b.fragments.push((m, port, redirected, deadline)),
                v => place(&self.worker, b, m, v, port, redirected),
            }
        }
        Mbuf::free_bulk(&mut b.free);
    }

    /// Sends the held frames whose next hop's MAC is now known; drops, and
    /// counts, those held too long.
    fn release_held(&mut self, b: &mut Buffers) {
        let mut i = 0;
        while i < b.held.len() {
            let (port, hop, deadline) = (b.held[i].1, b.held[i].2, b.held[i].3);
            match self
                .worker
                .resolve_held(port, hop, &mut MbufPkt(&mut b.held[i].0))
            {
                Verdict::Tx(p) => {
                    let (m, ..) = b.held.swap_remove(i);
                    b.tx[usize::from(p)].push(m);
                }
                Verdict::TxFragmented(p) => {
                    let (m, ..) = b.held.swap_remove(i);
                    b.oversize.push((m, p));
                }
                _ if b.now_ms >= deadline => {
                    drop(b.held.swap_remove(i));
                    self.worker.stats().dropped(DropReason::NeighborUnresolved);
                }
                _ => i += 1,
            }
        }
    }

    /// Moves to a new configuration snapshot if one waits (a non-blocking
    /// look; everything it needs was built by the control thread); worker 0
    /// announces the addresses it adds.
    fn take_new_configuration(&mut self, b: &mut Buffers) {
        let Ok(mut adopt) = self.channels.reload.requests.try_recv() else {
            return;
        };
        let announce = std::mem::take(&mut adopt.announce);
        let left = self.worker.adopt(adopt);
        let _ = self.channels.reload.replies.try_send(left);
        if self.worker.id == 0 {
            self.announce = announce;
            self.announce(b);
        }
    }

    /// Serves one slice of a `sluicectl sessions` request, if one waits (a
    /// non-blocking look at the mailbox; nothing is allocated here).
    fn answer_inspect(&mut self) {
        if let Ok(mut req) = self.channels.inspect.requests.try_recv() {
            self.worker.inspect(&mut req);
            let _ = self.channels.inspect.replies.try_send(req);
        }
    }

    /// Queues what the kernel interfaces sent for transmission on their ports.
    fn take_kernel_frames(&mut self, b: &mut Buffers, burst: usize) -> usize {
        let Some(ring) = self.rings.from_kernel.as_mut() else {
            return 0;
        };
        b.rx.clear();
        let n = ring.dequeue_burst(&mut b.rx, burst);
        for m in b.rx.drain(..) {
            match b
                .tx
                .get_mut(usize::from(self.port_index.interface(m.port())))
            {
                Some(q) => q.push(m),
                None => drop(m),
            }
        }
        n
    }

    /// Writes the packets the worker asked for (RSTs, reset probes) into
    /// fresh buffers and queues them for transmission.
    fn send_generated_packets(&mut self, b: &mut Buffers) {
        while let Some(g) = self.worker.pop_generated() {
            let Some(mut m) = self.pool.alloc() else {
                self.worker.stats().dropped(DropReason::NoMbuf);
                continue;
            };
            match self.worker.write_generated(g, &mut MbufPkt(&mut m)) {
                Verdict::Tx(p) => {
                    if let Some(q) = b.tx.get_mut(usize::from(p)) {
                        q.push(m);
                    }
                }
                Verdict::Hold { port, next_hop } => hold(
                    &self.worker,
                    &mut b.held,
                    b.now_ms,
                    m,
                    port,
                    next_hop.into(),
                ),
                _ => {}
            }
        }
    }

    /// Cuts the frames too long for their port into IPv4 fragments, each
    /// after the first in a fresh buffer, and queues them all.
    fn send_oversize(&mut self, b: &mut Buffers) {
        for (mut m, port) in std::mem::take(&mut b.oversize) {
            while self.worker.oversize(port, &MbufPkt(&mut m)) {
                let Some(mut tail) = self.pool.alloc() else {
                    self.worker.stats().dropped(DropReason::NoMbuf);
                    break;
                };
                let (first, rest) = (&mut MbufPkt(&mut m), &mut MbufPkt(&mut tail));
                if !self.worker.split_fragment(port, first, rest) {
                    break;
                }
                b.tx[usize::from(port)].push(std::mem::replace(&mut m, tail));
            }
            if !self.worker.oversize(port, &MbufPkt(&mut m)) {
                b.tx[usize::from(port)].push(m);
            }
        }
    }

    fn send_arp_requests(&mut self, b: &mut Buffers) {
        while let Some((port, ip)) = self.worker.pop_neighbor_request() {
            self.send_generated(b, port, |w, pkt| w.write_neighbor_request(port, ip, pkt));
        }
    }

    fn announce(&mut self, b: &mut Buffers) {
        for (port, ip) in std::mem::take(&mut self.announce) {
            self.send_generated(b, port, |w, pkt| w.write_announcement(port, ip, pkt));
        }
        self.flush(b);
    }

    fn send_generated(
        &mut self,
        b: &mut Buffers,
        port: u16,
        write: impl FnOnce(&Worker, &mut MbufPkt) -> bool,
    ) {
        let Some(mut m) = self.pool.alloc() else {
            self.worker.stats().dropped(DropReason::NoMbuf);
            return;
        };
        if write(&self.worker, &mut MbufPkt(&mut m)) {
            if let Some(q) = b.tx.get_mut(usize::from(port)) {
                q.push(m);
            }
        }
    }

    /// Transmits what is queued per port and hands redirected packets over;
    /// what the NIC or a ring refuses is freed and counted.
    fn flush(&mut self, b: &mut Buffers) {
        let st: &WorkerStats = self.worker.stats();
        for (p, q) in b.tx.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let bytes: usize = q.iter().map(Mbuf::len).sum();
            let total = q.len();
            let sent = self.queues.tx[p].burst(q);
            let unsent_bytes: usize = q.iter().map(Mbuf::len).sum();
            let c = &st.ports[p % MAX_PORTS];
            stats::add(&c.tx_packets, sent as u64);
            stats::add(&c.tx_bytes, (bytes - unsent_bytes) as u64);
            if sent < total {
                stats::add(
                    &st.drops[DropReason::TxFull as usize],
                    (total - sent) as u64,
                );
                q.clear();
            }
        }
        if !b.kernel.is_empty() {
            let total = b.kernel.len();
            let sent = match self.rings.kernel.as_mut() {
                Some(ring) => ring.enqueue_burst(&mut b.kernel),
                None => 0,
            };
            stats::add(&st.to_kernel, sent as u64);
            if sent < total {
                stats::add(
                    &st.drops[DropReason::KernelRingFull as usize],
                    (total - sent) as u64,
                );
            }
            b.kernel.clear();
        }
        for (w, q) in b.redirect.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let total = q.len();
            let sent = match self.rings.to[w].as_mut() {
                Some(ring) => ring.enqueue_burst(q),
                None => 0,
            };
            if sent < total {
                stats::add(
                    &st.drops[DropReason::RedirectFull as usize],
                    (total - sent) as u64,
                );
                q.clear();
            }
        }
    }
}

/// Moves a frame where its verdict says: a transmit queue, another
/// worker's ring, the kernel's, a wait (for a MAC, for a first fragment),
/// or back to the pool.
fn place(worker: &Worker, b: &mut Buffers, m: Mbuf, v: Verdict, port: u16, redirected: bool) {
    match v {
        Verdict::Tx(p) => b.tx[usize::from(p)].push(m),
        Verdict::TxFragmented(p) => b.oversize.push((m, p)),
        Verdict::Redirect(w) => b.redirect[usize::from(w)].push(m),
        Verdict::Kernel => b.kernel.push(m),
        Verdict::Hold { port, next_hop } => {
            hold(worker, &mut b.held, b.now_ms, m, port, next_hop.into())
        }
        Verdict::Hold6 { port, index } => {
            let next_hop = worker.held_hop6(index).into();
            hold(worker, &mut b.held, b.now_ms, m, port, next_hop)
        }
        Verdict::HoldFragment if b.fragments.len() < HOLD_FRAGMENTS => {
            let deadline = b.now_ms + u64::from(sluice_dataplane::frag::FRAG_LIFETIME_MS);
            b.fragments.push((m, port, redirected, deadline));
        }
        Verdict::HoldFragment => {
            worker.stats().dropped(DropReason::FragmentHoldFull);
            b.free.push(m);
        }
        Verdict::Consumed | Verdict::Drop(_) => b.free.push(m),
    }
}

/// Holds a frame for its next hop's MAC, within the per-worker and per-hop
/// bounds; beyond them it is dropped and counted.
fn hold(
    worker: &Worker,
    held: &mut Vec<(Mbuf, u16, IpAddr, u64)>,
    now_ms: u64,
    m: Mbuf,
    port: u16,
    next_hop: IpAddr,
) {
    let same = held
        .iter()
        .filter(|h| h.1 == port && h.2 == next_hop)
        .count();
    if held.len() >= HOLD_MAX || same >= HOLD_PER_HOP {
        worker.stats().dropped(DropReason::NeighborUnresolved);
        return;
    }
    held.push((m, port, next_hop, now_ms + HOLD_MS));
}

impl Drop for Lcore {
    fn drop(&mut self) {
        // Packets still in the rings from other workers are freed with them.
        let mut rest = Vec::with_capacity(MAX_BURST);
        for r in &mut self.rings.from {
            while r.dequeue_burst(&mut rest, MAX_BURST) > 0 {
                rest.clear();
            }
        }
    }
}
