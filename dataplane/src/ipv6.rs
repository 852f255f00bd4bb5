//! The IPv6 packet path: parse the header and walk its extension headers
//! (a bounded walk: what cannot be parsed within it is dropped, never
//! guessed at), then neighbour discovery and ICMPv6 for the switch's
//! addresses (`ndp`), and TCP and UDP to its interface addresses for the
//! kernel interface.

use crate::conntrack;
use crate::exception::KernelClass;
use crate::packet::PacketBuf;
use crate::stats::DropReason;
use crate::wire::ipv6::{self, next_header};
use crate::wire::tcp;
use crate::worker::{Verdict, Worker};

impl Worker {
    /// Out of line, as `ipv4` is: the dispatch stays small. (Cold for now:
    /// IPv6 only reaches the switch's own addresses yet.)
    #[cold]
    #[inline(never)]
    pub(crate) fn ipv6<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &mut P,
        l3: usize,
        _redirected: bool,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_checked(&pkt.data()[l3..])?;
        let upper = ip.upper_layer()?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_multicast() {
            return Err(DropReason::Malformed);
        }
        let local = self.shared.local6(dst);
        if upper.protocol == next_header::ICMPV6 && !upper.non_first_fragment {
            return self.icmpv6(port, pkt, l3, upper, local);
        }
        match local {
            Some(l) if l.interface.is_some() => self.local6_to_kernel(port, pkt, l3, upper),
            Some(_) => Err(DropReason::LocalUnhandled),
            None if dst.is_multicast() => Err(DropReason::NotForUs),
            None => Err(DropReason::Ipv6),
        }
    }

    /// Traffic to one of the switch's IPv6 interface addresses: the
    /// kernel's, through the exception path (by class, as for IPv4).
    fn local6_to_kernel<P: PacketBuf>(
        &mut self,
        port: u16,
        pkt: &P,
        l3: usize,
        upper: ipv6::Upper,
    ) -> Result<Verdict, DropReason> {
        let ip = ipv6::Packet::new_unchecked(&pkt.data()[l3..]);
        let src = ip.src_addr();
        let class = match upper.protocol {
            next_header::TCP if !upper.non_first_fragment => {
                let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
                let t = tcp::Packet::new_checked(&ip.into_inner()[upper.offset..end])?;
                match conntrack::opens_tcp(t.flags()) {
                    true => KernelClass::TcpSyn,
                    false => KernelClass::Tcp,
                }
            }
            next_header::TCP => KernelClass::Tcp,
            next_header::UDP => KernelClass::Udp,
            _ => KernelClass::Icmp,
        };
        self.hand_to_kernel(port, src, class)
    }
}
