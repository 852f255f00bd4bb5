//! DPDK bindings and safe wrappers for Sluice.
//!
//! This crate is the only place in the project that contains `unsafe`. Every
//! item it exports is a safe API; the raw bindgen output stays private
//! (`sys`), and DPDK's static-inline fast-path functions and thread-locals are
//! reached through a small C shim (`csrc/shim.c`).
//!
//! # Lifetime model
//!
//! DPDK state is process-global. [`Eal`] is created once per process and must
//! outlive every [`Mempool`], [`Mbuf`], ring half and every use of a [`Port`]
//! (the daemon keeps it in `main` and drops it last). As a safety net the
//! wrappers also guard the common mistakes:
//!
//! * Every [`Port`] method and constructor checks that the EAL is running and
//!   fails (or returns 0 / an empty value) otherwise.
//! * Packets move through [`RxQueue`] / [`TxQueue`] handles, each queue
//!   handed out once; while one is alive its port cannot be started, stopped,
//!   reconfigured or closed, so it keeps the port's receive pool alive, and
//!   with it the DPDK memory (`rte_eal_cleanup` is skipped).
//! * A [`Mempool`] dropped while mbufs from it are still in use (in an
//!   [`Mbuf`], a ring, or a NIC queue) is leaked instead of freed, and a port
//!   keeps the pool it was configured with alive until [`Port::close`].
//! * Dropping the [`Eal`] waits for all worker lcores and runs
//!   `rte_eal_cleanup` only if no mempool or ring (freed or leaked) remains;
//!   otherwise the DPDK memory is left mapped until process exit.
//!
//! The one remaining contract is that no non-EAL thread (a plain
//! `std::thread`) may still be using a [`Port`] or a queue handle while the
//! [`Eal`] is being dropped.
//!
//! # Drivers
//!
//! DPDK is linked as shared libraries (pkg-config `libdpdk`). Poll-mode
//! drivers are not linked in: `rte_eal_init` `dlopen`s every plugin in the
//! compiled-in directory `RTE_EAL_PMD_PATH` (Debian 12:
//! `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`, which holds net_null,
//! net_ring, net_af_packet, net_pcap, net_af_xdp, mempool_ring, bus_vdev,
//! ...). This works because the EAL is loaded as `librte_eal.so.23`. Should
//! that directory be missing, [`Eal::init`] adds `-d $SLUICE_DPDK_PMD_DIR`
//! when that variable names a directory; explicit `-d` arguments always work.
//!
//! # Packets
//!
//! Only single-segment mbufs are used: scatter RX is never enabled, the MTU is
//! checked against the pool's buffer size, and [`Mbuf::data`] covers the first
//! segment, which is the whole packet.

mod eal;
mod error;
mod mbuf;
mod memory;
mod port;
mod process;
mod ring;
mod sys;

pub use eal::{lcore_id, tsc, tsc_hz, version, Eal, LCORE_ID_ANY};
pub use error::{Error, Result};
pub use mbuf::{L4Csum, Mbuf, Mempool, DEFAULT_DATA_ROOM, HEADROOM};
pub use memory::{advise_hugepages, transparent_hugepages};
pub use port::{DevInfo, Link, Port, PortConfig, PortSetup, PortStats, RxQueue, TxQueue};
pub use process::{kill_process_group, open_files_limit, raise_open_files_limit};
pub use ring::{mbuf_ring, RingConsumer, RingProducer};

/// NUMA socket wildcard accepted wherever a `socket: i32` is taken.
pub const SOCKET_ID_ANY: i32 = -1;
