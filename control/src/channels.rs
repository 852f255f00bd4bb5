//! The control thread's channels to a worker (DESIGN.md "Channels"): one
//! request at a time each way, which the worker looks at once per loop turn
//! without blocking; `sluicectl sessions` and reloads each have their own.

use sluice_dataplane::inspect::Inspect;
use sluice_dataplane::reload::{Adopt, Leftovers};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Mutex;

/// The control thread's ends: requests `A` to the worker, answers `B` back.
pub struct Mailbox<A, B> {
    pub to_worker: SyncSender<A>,
    pub from_worker: Mutex<Receiver<B>>,
}

/// The worker's ends.
pub struct WorkerEnd<A, B> {
    pub requests: Receiver<A>,
    pub replies: SyncSender<B>,
}

/// A mailbox pair holding one message in each direction.
pub fn mailbox<A, B>() -> (Mailbox<A, B>, WorkerEnd<A, B>) {
    let (to_worker, requests) = std::sync::mpsc::sync_channel(1);
    let (replies, from_worker) = std::sync::mpsc::sync_channel(1);
    let control = Mailbox {
        to_worker,
        from_worker: Mutex::new(from_worker),
    };
    (control, WorkerEnd { requests, replies })
}

/// Slices of a worker's session table, out and back (`sluicectl sessions`,
/// bulk sync).
pub type SessionsMailbox = Mailbox<Inspect, Inspect>;
pub type SessionsWorkerEnd = WorkerEnd<Inspect, Inspect>;

/// Configuration snapshots out, what they replaced back (reloads).
pub type ReloadMailbox = Mailbox<Adopt, Leftovers>;
pub type ReloadWorkerEnd = WorkerEnd<Adopt, Leftovers>;
