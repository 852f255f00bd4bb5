//! Ethernet ports: configuration, control and the RX/TX bursts.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::eal;
use crate::error::{libc_errno, Error, Result};
use crate::mbuf::{Mbuf, Mempool, PoolInner, HEADROOM};
use crate::sys;

const MAX_PORTS: usize = sys::RTE_MAX_ETHPORTS as usize;

/// Which queues of a configured port are currently handed out as
/// [`RxQueue`] / [`TxQueue`]. A flag is set (under the control lock) when its
/// queue is claimed and cleared by the handle's `Drop`; the bursts themselves
/// never look at it. Each handle keeps the table alive through an `Arc`, so a
/// table replaced by `configure` or dropped by `close` outlives its handles.
struct QueueTable {
    rx: Box<[AtomicBool]>,
    tx: Box<[AtomicBool]>,
}

impl QueueTable {
    fn new(rx: u16, tx: u16) -> QueueTable {
        let mk = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        QueueTable {
            rx: mk(rx),
            tx: mk(tx),
        }
    }

    /// Whether some queue handle of the port is alive. The Acquire loads pair
    /// with the Release stores in the handles' `Drop`: once a flag reads
    /// false, everything its handle did (its last burst) happened before.
    fn in_use(&self) -> bool {
        self.rx
            .iter()
            .chain(self.tx.iter())
            .any(|f| f.load(Ordering::Acquire))
    }
}

/// Control-path state, only touched with the [`CONTROL`] lock held.
struct ControlState {
    /// Queue table of every configured (and not closed) port, by port id.
    queues: [Option<Arc<QueueTable>>; MAX_PORTS],
}

impl ControlState {
    fn table(&self, port: u16) -> Option<&Arc<QueueTable>> {
        self.queues.get(usize::from(port))?.as_ref()
    }

    /// Whether a queue handle of `port` is alive.
    fn busy(&self, port: u16) -> bool {
        self.table(port).is_some_and(|t| t.in_use())
    }

    fn set_table(&mut self, port: u16, table: Option<Arc<QueueTable>>) {
        if let Some(slot) = self.queues.get_mut(usize::from(port)) {
            *slot = table;
        }
    }
}

/// Serialises the (not thread-safe) ethdev control path across threads and
/// guards the queue tables.
static CONTROL: Mutex<ControlState> = Mutex::new(ControlState {
    queues: [const { None }; MAX_PORTS],
});

/// Ports started through `Port::start` and not stopped / closed since.
static STARTED: [AtomicBool; MAX_PORTS] = [const { AtomicBool::new(false) }; MAX_PORTS];

fn started(port: u16) -> &'static AtomicBool {
    &STARTED[usize::from(port) % MAX_PORTS]
}

/// Pools ports receive into, kept alive until the port is closed.
static PORT_POOLS: Mutex<BTreeMap<u16, Arc<PoolInner>>> = Mutex::new(BTreeMap::new());

fn queues_busy(op: &'static str, port: u16) -> Error {
    Error::new(
        op,
        libc_errno::EBUSY,
        format!("port {port} has RX/TX queue handles alive; drop them first"),
    )
}

/// Static capabilities of a port (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_null`.
    pub driver: String,
    /// Maximum number of RX queues.
    pub max_rx_queues: u16,
    /// Maximum number of TX queues.
    pub max_tx_queues: u16,
    /// Supported RSS hash functions (`RTE_ETH_RSS_*` bits).
    pub rss_offloads: u64,
    /// IPv4 header checksum offload on transmit.
    pub tx_ipv4_cksum: bool,
    /// TCP checksum offload on transmit.
    pub tx_tcp_cksum: bool,
    /// UDP checksum offload on transmit.
    pub tx_udp_cksum: bool,
    /// Largest MTU the port accepts.
    pub max_mtu: u16,
}

/// What to configure on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (at least 1).
    pub rx_queues: u16,
    /// Number of TX queues (at least 1).
    pub tx_queues: u16,
    /// RX ring size per queue (adjusted to the driver's limits).
    pub rx_desc: u16,
    /// TX ring size per queue (adjusted to the driver's limits).
    pub tx_desc: u16,
    /// MTU; 0 keeps the driver default (1500). Frames must fit in one mbuf.
    pub mtu: u16,
    /// Ask for RSS over IP/TCP/UDP (used only with more than one RX queue).
    pub rss: bool,
    /// Ask for IPv4/TCP/UDP transmit checksum offload.
    pub tx_cksum_offload: bool,
    /// NUMA socket for the queues ([`crate::SOCKET_ID_ANY`] for any).
    pub socket: i32,
}

impl Default for PortConfig {
    fn default() -> PortConfig {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: 0,
            rss: false,
            tx_cksum_offload: false,
            socket: crate::SOCKET_ID_ANY,
        }
    }
}

/// What `Port::configure` actually enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSetup {
    /// RSS is on (more than one RX queue and the port supports it).
    pub rss: bool,
    /// IPv4 + TCP + UDP transmit checksum offload is on (all three supported).
    pub tx_cksum_offload: bool,
    /// The NIC verifies received IPv4 header checksums.
    pub rx_ip_cksum: bool,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// RX packets dropped by the hardware (RX queues full).
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmits.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An Ethernet port id. Cheap to copy and share between lcores.
///
/// `Port` is the control path (configure, start, stop, stats, ...). Packets
/// move through queue handles: [`Port::rx_queue`] / [`Port::tx_queue`] hand
/// out each configured queue at most once as an [`RxQueue`] / [`TxQueue`],
/// which is `Send` but neither `Clone` nor `Sync` and bursts through `&mut
/// self`, so the type system guarantees that one thread at a time runs the
/// driver's (single-threaded) burst routine on a queue, without any lock or
/// atomic operation on the packet path. While any handle of a port is alive,
/// [`Port::start`], [`Port::stop`] and [`Port::configure`] fail with `EBUSY`
/// and [`Port::close`] does nothing, so the driver is never reconfigured
/// under a burst. Take the queues after `start` and drop them before `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    id: u16,
}

impl Port {
    /// Looks a port up by device name: a vdev's name is its `--vdev` argument
    /// up to the first `,` (anything from a `,` on is ignored here), a PCI
    /// device's is its address, e.g. `0000:3b:00.0`.
    pub fn by_name(name: &str) -> Result<Port> {
        const OP: &str = "rte_eth_dev_get_port_by_name";
        if !eal::running() {
            return Err(Error::no_eal(OP));
        }
        let name = name.split(',').next().unwrap_or(name).trim();
        let cname = CString::new(name).map_err(|_| Error::invalid(OP, "name contains NUL"))?;
        let mut id = 0u16;
        // SAFETY: EAL running; valid C string and out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(Error::new(
                OP,
                libc_errno::ENODEV,
                format!(
                    "no ethdev port named {name:?} ({})",
                    crate::error::strerror(-ret)
                ),
            ));
        }
        Ok(Port { id })
    }

    /// The port for `id`, if such a port exists.
    pub fn from_id(id: u16) -> Result<Port> {
        let p = Port { id };
        p.valid("rte_eth_dev_is_valid_port")?;
        Ok(p)
    }

    /// The DPDK port id.
    #[inline]
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Number of usable ports (`rte_eth_dev_count_avail`); 0 without EAL.
    pub fn count() -> u16 {
        if !eal::running() {
            return 0;
        }
        // SAFETY: EAL is running; plain query.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Checks the port and takes the control-path lock.
    fn control(&self, op: &'static str) -> Result<MutexGuard<'static, ControlState>> {
        let guard = CONTROL.lock().unwrap_or_else(PoisonError::into_inner);
        self.valid(op)?;
        Ok(guard)
    }

    fn valid(&self, op: &'static str) -> Result<()> {
        if !eal::running() {
            return Err(Error::no_eal(op));
        }
        // SAFETY: EAL running; validates any id.
        if unsafe { sys::rte_eth_dev_is_valid_port(self.id) } == 0 {
            return Err(Error::new(
                op,
                libc_errno::ENODEV,
                format!("invalid port {}", self.id),
            ));
        }
        Ok(())
    }

    /// Needs the control lock held by the caller.
    fn raw_info(&self) -> Result<sys::rte_eth_dev_info> {
        const OP: &str = "rte_eth_dev_info_get";
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port; `info` is a properly sized out struct.
        Error::check(OP, unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) })?;
        Ok(info)
    }

    /// Driver name and capabilities.
    pub fn info(&self) -> Result<DevInfo> {
        let _guard = self.control("rte_eth_dev_info_get")?;
        let info = self.raw_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null driver_name points to the driver's static
            // NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let capa = info.tx_offload_capa;
        let off = tx_offloads();
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            tx_ipv4_cksum: capa & off.ipv4 != 0,
            tx_tcp_cksum: capa & off.tcp != 0,
            tx_udp_cksum: capa & off.udp != 0,
            max_mtu: info.max_mtu,
        })
    }

    /// Configures the port and sets up its queues, receiving into
    /// `pool`. The pool is kept alive by the port until [`Port::close`].
    ///
    /// RSS over IP/TCP/UDP (masked by what the port supports) is enabled only
    /// if requested, `rx_queues > 1` and the port supports some of it; TX
    /// checksum offload only if requested and IPv4, TCP and UDP checksums are
    /// all supported. Descriptor counts are adjusted to the driver's limits.
    /// Scatter RX is never enabled, so the MTU (plus Ethernet header and CRC)
    /// must fit in one mbuf of `pool`.
    ///
    /// A started port, or one with queue handles alive, is refused with
    /// `EBUSY` (drop the handles and stop it first). Queues of the new
    /// configuration are taken with [`Port::rx_queue`] / [`Port::tx_queue`];
    /// if configuration fails midway the port has no queues to take until a
    /// later `configure` succeeds.
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<PortSetup> {
        const OP: &str = "rte_eth_dev_configure";
        let mut state = self.control(OP)?;
        if state.busy(self.id) {
            return Err(queues_busy(OP, self.id));
        }
        if started(self.id).load(Ordering::Acquire) {
            return Err(Error::new(
                OP,
                libc_errno::EBUSY,
                "port is started; stop it first",
            ));
        }
        let info = self.raw_info()?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(Error::invalid(
                OP,
                format!(
                    "rx_queues {} not in 1..={}",
                    cfg.rx_queues, info.max_rx_queues
                ),
            ));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(Error::invalid(
                OP,
                format!(
                    "tx_queues {} not in 1..={}",
                    cfg.tx_queues, info.max_tx_queues
                ),
            ));
        }
        let mtu = if cfg.mtu == 0 { 1500 } else { cfg.mtu };
        let frame = u32::from(mtu) + sys::RTE_ETHER_HDR_LEN + sys::RTE_ETHER_CRC_LEN;
        let room = u32::from(pool.data_room()).saturating_sub(u32::from(HEADROOM));
        if frame > room {
            return Err(Error::invalid(
                OP,
                format!("MTU {mtu} needs {frame}-byte buffers but the pool has {room}; scatter is not supported"),
            ));
        }

        let mut conf = sys::rte_eth_conf::default();
        conf.rxmode.mtu = u32::from(mtu);
        let rss_hf = rss_ip_tcp_udp() & info.flow_type_rss_offloads;
        let rss = cfg.rss && cfg.rx_queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = ptr::null_mut();
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_NONE;
        }
        conf.txmode.mq_mode = sys::RTE_ETH_MQ_TX_NONE;
        let off = tx_offloads();
        let want = off.ipv4 | off.tcp | off.udp;
        let cksum = cfg.tx_cksum_offload && info.tx_offload_capa & want == want;
        if cksum {
            conf.txmode.offloads |= want;
        }
        // The NIC checks received IPv4 header checksums where it can, and
        // the pipeline then skips its own check (`Mbuf::ip_checksum`).
        let rx_ip = rx_offload_ipv4_cksum();
        let rx_ip_cksum = info.rx_offload_capa & rx_ip != 0;
        if rx_ip_cksum {
            conf.rxmode.offloads |= rx_ip;
        }

        // The old queues are gone from here on, whatever happens below.
        state.set_table(self.id, None);
        // SAFETY: valid port; `conf` is a fully initialised rte_eth_conf that
        // DPDK copies; no queue handle of the port exists (checked above under
        // the control lock, which also keeps new ones from being taken), so
        // no burst can run on it.
        let ret =
            unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        Error::check(OP, ret)?;

        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid, configured port; in/out u16 pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        Error::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // DPDK's socket_id parameter is unsigned; SOCKET_ID_ANY (-1) is passed
        // as its two's complement, exactly as C callers do.
        let socket = cfg.socket as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, q < rx_queues, NULL rxconf selects the
            // driver defaults (no scatter), and `pool` is a valid pktmbuf pool
            // kept alive in PORT_POOLS below for as long as the port uses it.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nb_rx,
                    socket,
                    ptr::null(),
                    pool.inner().as_ptr(),
                )
            };
            Error::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, q < tx_queues, NULL txconf selects the
            // driver defaults (port-level offloads apply).
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, ptr::null()) };
            Error::check("rte_eth_tx_queue_setup", ret)?;
        }

        PORT_POOLS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.id, Arc::clone(pool.inner()));
        state.set_table(
            self.id,
            Some(Arc::new(QueueTable::new(cfg.rx_queues, cfg.tx_queues))),
        );
        Ok(PortSetup {
            rss,
            tx_cksum_offload: cksum,
            rx_ip_cksum,
        })
    }

    /// Starts the port (`rte_eth_dev_start`). Fails with `EBUSY` while queue
    /// handles of the port are alive: starting switches the port's fast-path
    /// functions, which a concurrent burst would be reading. Take the queues
    /// after starting the port.
    pub fn start(&self) -> Result<()> {
        const OP: &str = "rte_eth_dev_start";
        let state = self.control(OP)?;
        if state.busy(self.id) {
            return Err(queues_busy(OP, self.id));
        }
        // SAFETY: valid port; no queue handle exists (checked under the
        // control lock), so no burst runs while the fast-path ops are switched.
        let ret = unsafe { sys::rte_eth_dev_start(self.id) };
        Error::check(OP, ret)?;
        started(self.id).store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). Fails with `EBUSY` while queue
    /// handles of the port are alive (drop them first), so the driver is
    /// never stopped under a burst.
    pub fn stop(&self) -> Result<()> {
        const OP: &str = "rte_eth_dev_stop";
        let state = self.control(OP)?;
        if state.busy(self.id) {
            return Err(queues_busy(OP, self.id));
        }
        // SAFETY: valid port; no queue handle exists (checked under the
        // control lock), so no burst runs concurrently.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
        Error::check(OP, ret)?;
        started(self.id).store(false, Ordering::Release);
        Ok(())
    }

    /// Stops (if needed) and closes the port, releasing its queues and the
    /// pool it held. The port id is invalid afterwards; errors are ignored.
    /// Does nothing while queue handles of the port are alive.
    pub fn close(&self) {
        let Ok(mut state) = self.control("rte_eth_dev_close") else {
            return;
        };
        if state.busy(self.id) {
            return;
        }
        state.set_table(self.id, None);
        // SAFETY: valid port; no queue handle exists and none can be taken
        // any more (no table), so no burst runs on it.
        let ret = unsafe {
            if started(self.id).load(Ordering::Acquire) {
                sys::rte_eth_dev_stop(self.id);
            }
            sys::rte_eth_dev_close(self.id)
        };
        started(self.id).store(false, Ordering::Release);
        if ret == 0 {
            PORT_POOLS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.id);
        }
    }

    /// Enables or disables promiscuous mode.
    pub fn promiscuous(&self, on: bool) -> Result<()> {
        const OP: &str = "rte_eth_promiscuous_enable";
        let _guard = self.control(OP)?;
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.id)
            }
        };
        Error::check(
            if on {
                OP
            } else {
                "rte_eth_promiscuous_disable"
            },
            ret,
        )
        .map(drop)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        const OP: &str = "rte_eth_macaddr_get";
        let _guard = self.control(OP)?;
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; valid out pointer.
        Error::check(OP, unsafe { sys::rte_eth_macaddr_get(self.id, &mut addr) })?;
        Ok(addr.addr_bytes)
    }

    /// Current link state without waiting; down/0 if it cannot be read.
    pub fn link(&self) -> Link {
        let Ok(_guard) = self.control("rte_eth_link_get_nowait") else {
            return Link::default();
        };
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port; valid out pointer.
        if unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) } != 0 {
            return Link::default();
        }
        let speed = link.link_speed;
        Link {
            up: link.link_status() != 0,
            speed_mbps: if speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                speed
            },
        }
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        const OP: &str = "rte_eth_stats_get";
        let _guard = self.control(OP)?;
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port; valid out pointer.
        Error::check(OP, unsafe { sys::rte_eth_stats_get(self.id, &mut s) })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Takes RX queue `queue` of the port for exclusive use. Fails with
    /// `EINVAL` if the port is not configured or has no such queue and with
    /// `EBUSY` if the queue is already taken; dropping the handle returns it.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        let table = self.claim("rx_queue", queue, |t| &t.rx)?;
        Ok(RxQueue {
            table,
            port: self.id,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Takes TX queue `queue` of the port for exclusive use; as
    /// [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        let table = self.claim("tx_queue", queue, |t| &t.tx)?;
        Ok(TxQueue {
            table,
            port: self.id,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Marks queue `queue` of the direction `dir` selects as taken.
    fn claim(
        &self,
        op: &'static str,
        queue: u16,
        dir: impl Fn(&QueueTable) -> &[AtomicBool],
    ) -> Result<Arc<QueueTable>> {
        let state = self.control(op)?;
        let Some(table) = state.table(self.id) else {
            return Err(Error::invalid(
                op,
                format!("port {} is not configured", self.id),
            ));
        };
        let flags = dir(table);
        let Some(flag) = flags.get(usize::from(queue)) else {
            return Err(Error::invalid(
                op,
                format!(
                    "port {} has {} queue(s), no queue {queue}",
                    self.id,
                    flags.len()
                ),
            ));
        };
        if flag.swap(true, Ordering::Acquire) {
            return Err(Error::new(
                op,
                libc_errno::EBUSY,
                format!("queue {queue} of port {} is already taken", self.id),
            ));
        }
        Ok(Arc::clone(table))
    }
}

/// Exclusive use of one RX queue of a port, from [`Port::rx_queue`].
///
/// `Send`, not `Sync`, not `Clone`: whoever holds it (mutably) is the only
/// one polling the queue, so bursts need no synchronisation. Dropping it
/// returns the queue to the port.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<sluice_ffi::RxQueue>();
/// ```
///
/// ```compile_fail
/// fn copied<T: Clone>() {}
/// copied::<sluice_ffi::RxQueue>();
/// ```
pub struct RxQueue {
    table: Arc<QueueTable>,
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

/// Exclusive use of one TX queue of a port, from [`Port::tx_queue`]; see
/// [`RxQueue`].
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<sluice_ffi::TxQueue>();
/// ```
///
/// ```compile_fail
/// fn copied<T: Clone>() {}
/// copied::<sluice_ffi::TxQueue>();
/// ```
pub struct TxQueue {
    table: Arc<QueueTable>,
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// The port's id.
    #[inline]
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue's index on its port.
    #[inline]
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to `min(max, out.capacity() - out.len())` packets,
    /// appending them to `out`; never allocates or grows `out`. Returns how
    /// many were received (0 while the port is stopped).
    #[inline]
    pub fn burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let len = out.len();
        let n = max.min(out.capacity() - len).min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        // SAFETY: this handle is the only owner of a configured RX queue
        // (claimed once, not Clone, not Sync, `&mut self`), so no other thread
        // is in the driver's RX routine for it, and the port cannot be
        // stopped, reconfigured or closed while the handle lives (those refuse
        // while a handle exists). The pool the port receives into is held by
        // the port until close. `out` has room for `n` more elements and Mbuf
        // is a transparent NonNull<rte_mbuf>, so the spare capacity is a
        // `struct rte_mbuf *` array of length n. The driver writes `got <= n`
        // owned, non-null mbuf pointers, which become initialised elements
        // with set_len.
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            let got = usize::from(sys::sluice_eth_rx_burst(
                self.port, self.queue, dst, n as u16,
            ));
            out.set_len(len + got);
            got
        }
    }
}

impl TxQueue {
    /// The port's id.
    #[inline]
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue's index on its port.
    #[inline]
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Hands the packets at the front of `pkts` to the queue. The accepted
    /// ones are removed from the front of the vector (ownership passed to the
    /// NIC), the rest stay in order. Returns the accepted count (0 while the
    /// port is stopped). Never allocates.
    #[inline]
    pub fn burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        let n = len.min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        // SAFETY: exclusive owner of a configured TX queue whose port cannot
        // be stopped, reconfigured or closed meanwhile (as in RxQueue::burst).
        // The first n elements are owned, valid mbufs laid out as a `struct
        // rte_mbuf *` array (Mbuf is transparent). The driver takes ownership
        // of the first `sent` and leaves the rest untouched, so those `sent`
        // elements are forgotten by shifting the remainder to the front and
        // shortening the vector.
        unsafe {
            let base = pkts.as_mut_ptr();
            let sent = usize::from(sys::sluice_eth_tx_burst(
                self.port,
                self.queue,
                base.cast::<*mut sys::rte_mbuf>(),
                n as u16,
            ));
            pkts.set_len(0);
            ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
            sent
        }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // Release: this handle's bursts happen before a control operation
        // that sees the queue free (QueueTable::in_use).
        if let Some(f) = self.table.rx.get(usize::from(self.queue)) {
            f.store(false, Ordering::Release);
        }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        // As for RxQueue.
        if let Some(f) = self.table.tx.get(usize::from(self.queue)) {
            f.store(false, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}

/// RTE_ETH_TX_OFFLOAD_{IPV4,TCP,UDP}_CKSUM.
struct TxOffloads {
    ipv4: u64,
    tcp: u64,
    udp: u64,
}

fn tx_offloads() -> TxOffloads {
    // SAFETY: immutable constants defined in the shim.
    unsafe {
        TxOffloads {
            ipv4: sys::sluice_tx_offload_ipv4_cksum,
            tcp: sys::sluice_tx_offload_tcp_cksum,
            udp: sys::sluice_tx_offload_udp_cksum,
        }
    }
}

/// RTE_ETH_RX_OFFLOAD_IPV4_CKSUM.
fn rx_offload_ipv4_cksum() -> u64 {
    // SAFETY: an immutable constant defined in the shim.
    unsafe { sys::sluice_rx_offload_ipv4_cksum }
}

/// RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP.
fn rss_ip_tcp_udp() -> u64 {
    // SAFETY: immutable constants defined in the shim.
    unsafe { sys::sluice_rss_ip | sys::sluice_rss_tcp | sys::sluice_rss_udp }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_constants() {
        let o = tx_offloads();
        assert_eq!((o.ipv4, o.udp, o.tcp), (1 << 1, 1 << 2, 1 << 3));
        let rss = rss_ip_tcp_udp();
        assert_ne!(rss & (1 << 2), 0, "RTE_ETH_RSS_IPV4");
        assert_ne!(rss & (1 << 4), 0, "RTE_ETH_RSS_NONFRAG_IPV4_TCP");
    }

    #[test]
    fn no_port_without_eal() {
        assert_eq!(Port::count(), 0);
        assert_eq!(
            Port::by_name("net_null0").unwrap_err().code,
            libc_errno::ENODEV
        );
        let p = Port { id: 0 };
        assert!(p.info().is_err());
        assert!(p.stats().is_err());
        assert_eq!(p.link(), Link::default());
        p.close();
        assert_eq!(p.rx_queue(0).unwrap_err().code, libc_errno::ENODEV);
        assert_eq!(p.tx_queue(0).unwrap_err().code, libc_errno::ENODEV);
        let far = Port { id: u16::MAX };
        assert!(far.rx_queue(0).is_err());
    }

    #[test]
    fn queue_table_flags() {
        let t = Arc::new(QueueTable::new(2, 1));
        assert!(!t.in_use());
        let mut state = ControlState {
            queues: [const { None }; MAX_PORTS],
        };
        state.set_table(3, Some(Arc::clone(&t)));
        state.set_table(u16::MAX, Some(Arc::clone(&t))); // out of range: ignored
        assert!(!state.busy(3));
        let q = RxQueue {
            table: Arc::clone(&t),
            port: 3,
            queue: 1,
            _not_sync: PhantomData,
        };
        t.rx[1].store(true, Ordering::Relaxed);
        assert!(state.busy(3));
        assert!(!state.busy(2));
        assert_eq!((q.port_id(), q.queue_id()), (3, 1));
        drop(q);
        assert!(!state.busy(3), "dropping the handle frees the queue");
    }

    fn check_send_sync<T: Send + Sync + Copy>() {}
    fn check_send<T: Send>() {}

    #[test]
    fn port_traits() {
        check_send_sync::<Port>();
        check_send::<RxQueue>();
        check_send::<TxQueue>();
    }
}
