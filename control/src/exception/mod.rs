//! The exception path: what the workers hand to the kernel and what the
//! kernel sends, between each port and its kernel interface (a DPDK
//! `net_tap`, which the kernel sees as an ordinary network interface with
//! the port's MAC and the switch's addresses on that link).
//!
//! Workers never do system calls for it: they put frames on their own ring
//! to this lcore (dropping, counted, when it is full; rate limited per class
//! before that). This lcore moves frames from the rings into the taps, and
//! what the kernel writes into a ring to worker 0, which sends it on its own
//! TX queue of the port. (A TX queue of its own per port would need as many
//! RX queues on drivers with fixed queue pairs, such as af_packet, whose
//! sockets all receive.) It is the only lcore that touches the taps.

pub mod netlink;

use sluice_dataplane::stats;
use sluice_ffi::{Mbuf, RingConsumer, RingProducer, RxQueue, TxQueue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BURST: usize = 32;
const IDLE_SPIN_TURNS: u32 = 200;
const MAX_NAP_US: u64 = 500;

/// Counters of one link's exception path (written by the exception lcore alone).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Frames written to the kernel interface.
    pub to_kernel: AtomicU64,
    /// Frames the kernel sent, handed to worker 0 for the port.
    pub from_kernel: AtomicU64,
    /// Frames the tap or the ring to worker 0 did not take.
    pub dropped: AtomicU64,
}

/// Each interface's counters (None without a kernel interface).
pub type Counters = Vec<Option<Arc<LinkCounters>>>;

/// One port's side of the exception path.
pub struct Link {
    pub tap_rx: RxQueue,
    pub tap_tx: TxQueue,
    /// DPDK port id of the wire port, written into the kernel's frames so
    /// worker 0 knows where they go.
    pub wire_port: u16,
    pub counters: Arc<LinkCounters>,
}

/// Everything the exception lcore owns.
pub struct ExceptionLcore {
    /// `links[i]`: interface i's link, if it has a kernel interface.
    pub links: Vec<Option<Link>>,
    /// One ring from each worker.
    pub from_workers: Vec<RingConsumer>,
    /// The ring to worker 0 for the kernel's frames.
    pub to_wire: RingProducer,
    /// Interface index of each DPDK port id (`u16::MAX` for other ports).
    pub port_index: crate::boot::PortMap,
    pub stop: Arc<AtomicBool>,
}

impl ExceptionLcore {
    pub fn run(mut self) -> i32 {
        let mut rx: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut to_tap: Vec<Vec<Mbuf>> = self
            .links
            .iter()
            .map(|_| Vec::with_capacity(BURST * 4))
            .collect();
        let mut idle = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let mut got = 0;
            for ring in &mut self.from_workers {
                rx.clear();
                got += ring.dequeue_burst(&mut rx, BURST);
                for m in rx.drain(..) {
                    let i = self.port_index.interface(m.port());
                    match to_tap.get_mut(usize::from(i)) {
                        Some(q) => q.push(m),
                        None => drop(m),
                    }
                }
            }
            for (link, q) in self.links.iter_mut().zip(to_tap.iter_mut()) {
                let Some(link) = link else {
                    q.clear();
                    continue;
                };
                got += link.pump(q, &mut rx, &mut self.to_wire);
            }
            // The kernel's traffic is light and latency-tolerant: an idle
            // exception lcore naps whatever the workers' poll mode.
            idle = if got == 0 { idle.saturating_add(1) } else { 0 };
            if idle > IDLE_SPIN_TURNS {
                let nap = u64::from(idle - IDLE_SPIN_TURNS).min(MAX_NAP_US);
                std::thread::sleep(Duration::from_micros(nap));
            }
        }
        0
    }
}

impl Link {
    /// Writes the frames queued for the kernel into the tap and hands what
    /// the kernel wrote to worker 0 for the port. Returns the number of
    /// frames moved.
    fn pump(
        &mut self,
        to_kernel: &mut Vec<Mbuf>,
        buf: &mut Vec<Mbuf>,
        to_wire: &mut RingProducer,
    ) -> usize {
        let c = &*self.counters;
        let mut moved = 0;
        if !to_kernel.is_empty() {
            let total = to_kernel.len();
            let sent = self.tap_tx.burst(to_kernel);
            stats::add(&c.to_kernel, sent as u64);
            stats::add(&c.dropped, (total - sent) as u64);
            to_kernel.clear();
            moved += total;
        }
        buf.clear();
        let n = self.tap_rx.burst(buf, BURST);
        if n > 0 {
            for m in buf.iter_mut() {
                m.set_port(self.wire_port);
            }
            let sent = to_wire.enqueue_burst(buf);
            stats::add(&c.from_kernel, sent as u64);
            stats::add(&c.dropped, (n - sent) as u64);
            buf.clear();
            moved += n;
        }
        moved
    }
}
