//! The channels between the workers and the sync task (DESIGN.md
//! "Channels"): each way, buffers allocated here go round and come back,
//! so a worker neither allocates nor frees for synchronisation, and takes
//! or gives at most one buffer per loop turn without blocking.

use sluice_dataplane::sync::{SyncOut, SyncRecord};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Buffers of changes circulating per worker besides the one it fills.
const SPARE_BUFFERS: usize = 3;
/// Batches of peers' records on their way to one worker at most.
pub const INSTALL_BATCHES: usize = 4;
/// Records per batch to install.
pub const INSTALL_BATCH: usize = 1024;

type Records = Vec<SyncRecord>;

/// A worker's ends.
pub struct WorkerEnd {
    /// Full buffers of changes, to the sync task.
    pub out: SyncSender<Records>,
    /// Empty buffers back from it.
    pub empties: Receiver<Records>,
    /// Peers' records to install.
    pub install: Receiver<Records>,
    /// The batches installed, emptied, back.
    pub installed: SyncSender<Records>,
}

/// The sync task's ends of one worker.
pub struct ControlEnd {
    pub out: Receiver<Records>,
    pub empties: SyncSender<Records>,
    pub install: SyncSender<Records>,
    pub installed: Receiver<Records>,
}

/// Both ends for one worker, with its spare buffers handed out already.
pub fn pair() -> (ControlEnd, WorkerEnd) {
    let (out_tx, out_rx) = sync_channel(SPARE_BUFFERS + 1);
    let (empty_tx, empty_rx) = sync_channel(SPARE_BUFFERS + 1);
    let (install_tx, install_rx) = sync_channel(INSTALL_BATCHES);
    let (installed_tx, installed_rx) = sync_channel(INSTALL_BATCHES + 1);
    for _ in 0..SPARE_BUFFERS {
        empty_tx
            .try_send(SyncOut::buffer())
            .expect("the channel holds every spare buffer");
    }
    (
        ControlEnd {
            out: out_rx,
            empties: empty_tx,
            install: install_tx,
            installed: installed_rx,
        },
        WorkerEnd {
            out: out_tx,
            empties: empty_rx,
            install: install_rx,
            installed: installed_tx,
        },
    )
}

impl WorkerEnd {
    /// Between two bursts: hands the worker's queued changes over if a
    /// spare buffer is back, and installs one batch of peers' records.
    pub fn exchange(&self, w: &mut sluice_dataplane::worker::Worker) {
        if w.sync_pending() > 0 {
            if let Ok(mut spare) = self.empties.try_recv() {
                w.take_sync(&mut spare);
                // Never full: as many slots as buffers.
                let _ = self.out.try_send(spare);
            }
        }
        if let Ok(mut batch) = self.install.try_recv() {
            for r in &batch {
                // Refusals are counted by the worker.
                let _ = w.install_synced(r);
            }
            batch.clear();
            let _ = self.installed.try_send(batch);
        }
    }
}
