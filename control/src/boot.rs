//! Setting up what the lcores run on: ports (with their queues), the
//! exception path's taps, and the rings between lcores.

use crate::eal_args;
use crate::start_error::StartError;
use sluice_config::Config;
use sluice_ffi::{Mempool, Port, PortConfig, RingConsumer, RingProducer};
use std::net::IpAddr;
use std::sync::Arc;

pub const RX_DESC: u16 = 1024;
pub const TX_DESC: u16 = 1024;
pub const RING_SIZE: u32 = 4096;
/// The exception path's rings and taps: the kernel's traffic is light.
pub const KERNEL_RING_SIZE: u32 = 1024;
pub const TAP_DESC: u16 = 512;

/// The ports of the configured interfaces, by `[[interface]]` position.
pub struct Ports {
    pub wire: Vec<Port>,
    pub macs: Vec<[u8; 6]>,
    /// The tap of each interface that has a kernel interface.
    pub taps: Vec<Option<Port>>,
}

impl Ports {
    /// Every port sluice drives, wire ports first.
    pub fn all(&self) -> impl Iterator<Item = &Port> {
        self.wire.iter().chain(self.taps.iter().flatten())
    }
}

/// Configures every interface's port (one RX and one TX queue per worker)
/// and its tap.
pub fn configure_ports(cfg: &Config, pool: &Mempool, socket: i32) -> Result<Ports, StartError> {
    let workers = cfg.dataplane.workers;
    let mut ports = Ports {
        wire: Vec::new(),
        macs: Vec::new(),
        taps: Vec::new(),
    };
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let name = eal_args::port_name(&itf.device);
        let port = Port::by_name(name).map_err(|error| StartError::NoPort {
            interface: itf.name.clone(),
            name: name.to_string(),
            error,
        })?;
        let err = |step| {
            move |error| StartError::Port {
                interface: itf.name.clone(),
                step,
                error,
            }
        };
        let want = PortConfig {
            rx_queues: workers,
            tx_queues: workers,
            rx_desc: RX_DESC,
            tx_desc: TX_DESC,
            mtu: itf.mtu,
            rss: workers > 1,
            tx_cksum_offload: false,
            socket,
        };
        let setup = (port.configure(&want, pool)).map_err(err("cannot configure port"))?;
        let mac = port.mac().map_err(err("no MAC address"))?;
        let info = port.info().map_err(err("no device information"))?;
        crate::log(format!(
            "interface {} = port {} ({}), mac {}, {workers} queue(s), rss {}, ipv4 checksums checked by {}",
            itf.name,
            port.id(),
            info.driver,
            sluice_control::api::mac(mac),
            if setup.rss {
                "on"
            } else {
                "off (packets are handed to their owning worker in software)"
            },
            if setup.rx_ip_cksum { "the NIC" } else { "the workers" }
        ));
        ports.wire.push(port);
        ports.macs.push(mac);
        ports.taps.push(match &itf.kernel_interface {
            Some(k) => Some(configure_tap(i, k, itf.mtu, pool, socket)?),
            None => None,
        });
    }
    Ok(ports)
}

fn configure_tap(
    i: usize,
    kernel: &str,
    mtu: u16,
    pool: &Mempool,
    socket: i32,
) -> Result<Port, StartError> {
    let name = eal_args::tap_port_name(i);
    let err = |error| StartError::KernelPort {
        kernel: kernel.to_string(),
        port: name.clone(),
        error,
    };
    let tap = Port::by_name(&name).map_err(err)?;
    let want = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: TAP_DESC,
        tx_desc: TAP_DESC,
        mtu,
        rss: false,
        tx_cksum_offload: false,
        socket,
    };
    tap.configure(&want, pool).map_err(err)?;
    Ok(tap)
}

/// The `[[interface]]` index of each DPDK port id. DPDK numbers ports in
/// probe order (PCI devices before vdevs, each bus in its own order), not in
/// the configuration's order, so a frame's port id is mapped once here.
#[derive(Clone, Debug)]
pub struct PortMap(Arc<[u16]>);

impl PortMap {
    /// `ids[i]`: the port id of interface i.
    pub fn new(ids: &[u16]) -> PortMap {
        let len = ids.iter().map(|id| usize::from(*id) + 1).max().unwrap_or(0);
        let mut index = vec![u16::MAX; len];
        for (i, id) in ids.iter().enumerate() {
            index[usize::from(*id)] = i as u16;
        }
        PortMap(index.into())
    }

    /// The map of the wire ports (`wire[i]` is interface i's port).
    pub fn of(wire: &[Port]) -> PortMap {
        PortMap::new(&wire.iter().map(|p| p.id()).collect::<Vec<_>>())
    }

    /// The interface of port id `port`; `u16::MAX` for a port that is no
    /// interface's (its frames are dropped as unknown).
    #[inline]
    pub fn interface(&self, port: u16) -> u16 {
        self.0.get(usize::from(port)).copied().unwrap_or(u16::MAX)
    }
}

/// Rings between lcores.
pub struct Rings {
    /// `to[a][b]`: worker a's ring to worker b (None for a == b).
    pub to: Vec<Vec<Option<RingProducer>>>,
    /// `from[b]`: the rings into worker b.
    pub from: Vec<Vec<RingConsumer>>,
    /// `to_kernel[w]`: worker w's ring to the exception path.
    pub to_kernel: Vec<Option<RingProducer>>,
    /// The exception path's ends of those rings.
    pub from_workers: Vec<RingConsumer>,
    /// Frames the kernel sends, from the exception path to worker 0, which
    /// transmits them on its own queue of the port.
    pub to_wire: Option<RingProducer>,
    pub from_kernel: Option<RingConsumer>,
}

pub fn rings(workers: u16, exception: bool, socket: i32) -> Result<Rings, StartError> {
    let err = |ring: String| move |error| StartError::Ring { ring, error };
    let n = usize::from(workers);
    let mut r = Rings {
        to: (0..n).map(|_| (0..n).map(|_| None).collect()).collect(),
        from: (0..n).map(|_| Vec::new()).collect(),
        to_kernel: (0..n).map(|_| None).collect(),
        from_workers: Vec::new(),
        to_wire: None,
        from_kernel: None,
    };
    if exception {
        let (p, c) = sluice_ffi::mbuf_ring("sl_kn_wire", KERNEL_RING_SIZE, socket)
            .map_err(err("kernel->wire".into()))?;
        r.to_wire = Some(p);
        r.from_kernel = Some(c);
    }
    for a in 0..n {
        for b in (0..n).filter(|b| *b != a) {
            let (p, c) = sluice_ffi::mbuf_ring(&format!("sl_rd_{a}_{b}"), RING_SIZE, socket)
                .map_err(err(format!("{a}->{b}")))?;
            r.to[a][b] = Some(p);
            r.from[b].push(c);
        }
        if exception {
            let (p, c) = sluice_ffi::mbuf_ring(&format!("sl_kn_{a}"), KERNEL_RING_SIZE, socket)
                .map_err(err(format!("{a}->kernel")))?;
            r.to_kernel[a] = Some(p);
            r.from_workers.push(c);
        }
    }
    Ok(r)
}

/// Addresses worker 0 announces (gratuitous ARP, unsolicited neighbour
/// advertisement) at start, and those a reload adds: each interface
/// address on its port, VIPs and SNAT addresses on every port they are
/// reachable from (under kernel ownership: those the kernel interfaces
/// hold, and the other addresses they hold on their port).
pub fn announcements(shared: &sluice_dataplane::shared::Shared) -> Vec<(u16, IpAddr)> {
    let mut out: Vec<(u16, IpAddr)> = Vec::new();
    for (i, p) in shared.ports.iter().enumerate() {
        let v4 = p.addresses.iter().map(|(a, _)| IpAddr::V4(*a));
        let v6 = p.addresses6.iter().map(|(a, _)| IpAddr::V6(*a));
        out.extend(v4.chain(v6).map(|a| (i as u16, a)));
    }
    for (_, vs) in shared.servers().filter(|(_, v)| shared.owns(v.vip)) {
        for (i, _) in shared.ports.iter().enumerate() {
            if shared
                .connected_port(vs.vip)
                .is_none_or(|p| usize::from(p) == i)
            {
                out.push((i as u16, vs.vip));
            }
        }
    }
    for s in shared.snat_addrs.iter().filter(|s| shared.owns(**s)) {
        if let Some(port) = shared.connected_port(*s) {
            out.push((port, *s));
        }
    }
    // Under kernel ownership, the floating addresses the kernel holds.
    out.extend(shared.owned.iter().flat_map(|o| o.iter().copied()));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::PortMap;

    #[test]
    fn port_ids_in_another_order_map_to_their_interfaces() {
        // A PCI device probed first (id 0) serving interface 2, and two
        // vdevs (ids 3 and 1) serving interfaces 0 and 1.
        let map = PortMap::new(&[3, 1, 0]);
        assert_eq!(map.interface(3), 0);
        assert_eq!(map.interface(1), 1);
        assert_eq!(map.interface(0), 2);
        assert_eq!(map.interface(2), u16::MAX, "a port no interface uses");
        assert_eq!(map.interface(200), u16::MAX);
        let same = PortMap::new(&[0, 1]);
        assert_eq!((same.interface(0), same.interface(1)), (0, 1));
    }
}
