//! ICMP echo check over a raw socket (the switch runs as root).
//!
//! A raw ICMP socket sees every ICMP packet the host receives, each with
//! its IPv4 header: replies to other pingers and to our other probes are
//! skipped by source, identifier and sequence number. The socket is not
//! connected, so a destination unreachable from a router on the way is
//! seen too and fails the probe at once.

use super::io_reason;
use crate::health::Target;
use sluice_dataplane::wire::icmpv4::{self, kind};
use sluice_dataplane::wire::ipv4::{self, proto};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Echo data: recognisable in a capture.
const PAYLOAD: &[u8; 16] = b"sluice-health/1\0";
/// Room for any reply to our request and for the errors quoting it.
const MAX_PACKET: usize = 2048;

/// Probe counter: its low half is the echo identifier, its high half the
/// sequence number, so concurrent probes never take each other's replies.
static NEXT_PROBE: AtomicU32 = AtomicU32::new(0);

pub(super) async fn probe(target: &Target) -> Result<String, String> {
    let n = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
    let (ident, seq) = (n as u16, (n >> 16) as u16);
    let socket = open(target.source).map_err(|e| format!("raw socket: {}", io_reason(&e)))?;
    let request = echo_request(ident, seq);
    let to = SockAddr::from(SocketAddrV4::new(target.addr, 0));
    socket
        .async_io(Interest::WRITABLE, |s| s.send_to(&request, &to))
        .await
        .map_err(|e| io_reason(&e))?;
    let mut packet = vec![0u8; MAX_PACKET];
    // `Read` for `&Socket` is a plain recv(2): one whole packet per call.
    loop {
        let len = socket
            .async_io(Interest::READABLE, |mut s| s.read(&mut packet))
            .await
            .map_err(|e| io_reason(&e))?;
        if let Some(result) = judge(&packet[..len], target.addr, ident, seq) {
            return result;
        }
    }
}

/// A non-blocking raw ICMP socket registered with the runtime.
fn open(source: Option<Ipv4Addr>) -> io::Result<AsyncFd<Socket>> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    socket.set_nonblocking(true)?;
    if let Some(source) = source {
        socket.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))?;
    }
    // `AsyncFd::new` is deprecated because a type could hand out an fd it
    // does not own; `Socket` owns its fd for its whole life, and the
    // replacement (`register`) is `unsafe`, which this crate forbids.
    #[allow(deprecated)]
    AsyncFd::new(socket)
}

/// An echo request (ICMP header and data; the kernel adds the IPv4 header).
fn echo_request(ident: u16, seq: u16) -> [u8; icmpv4::HEADER_LEN + PAYLOAD.len()] {
    let mut buf = [0u8; icmpv4::HEADER_LEN + PAYLOAD.len()];
    let mut icmp = icmpv4::Packet::new_unchecked(&mut buf[..]);
    icmp.set_msg_type(kind::ECHO_REQUEST);
    icmp.set_code(0);
    icmp.set_echo_ident(ident);
    icmp.set_echo_seq_no(seq);
    icmp.data_mut().copy_from_slice(PAYLOAD);
    icmp.fill_checksum();
    buf
}

/// What a received IPv4 packet says about our probe: `None` if it is not
/// about it (another pinger's traffic, our own request on loopback).
fn judge(packet: &[u8], target: Ipv4Addr, ident: u16, seq: u16) -> Option<Result<String, String>> {
    let ip = ipv4::Packet::new_checked(packet).ok()?;
    if ip.protocol() != proto::ICMP {
        return None;
    }
    let icmp =
        icmpv4::Packet::new_checked(&packet[ip.header_len()..usize::from(ip.total_len())]).ok()?;
    if !icmp.verify_checksum() {
        return None;
    }
    match icmp.msg_type() {
        kind::ECHO_REPLY => {
            let ours =
                ip.src_addr() == target && icmp.echo_ident() == ident && icmp.echo_seq_no() == seq;
            ours.then(|| Ok("echo reply".to_string()))
        }
        kind::DEST_UNREACHABLE if quotes_request(icmp.data(), target, ident, seq) => {
            Some(Err(unreachable_reason(icmp.code(), ip.src_addr())))
        }
        _ => None,
    }
}

/// Whether an ICMP error's quoted packet (IPv4 header and the first 8 bytes
/// after it) is our echo request to `target`.
fn quotes_request(quoted: &[u8], target: Ipv4Addr, ident: u16, seq: u16) -> bool {
    if quoted.len() < ipv4::MIN_HEADER_LEN {
        return false;
    }
    // The quote is cut short, so the total length cannot be checked.
    let ip = ipv4::Packet::new_unchecked(quoted);
    let Some(rest) = quoted.get(ip.header_len()..) else {
        return false;
    };
    let Ok(icmp) = icmpv4::Packet::new_checked(rest) else {
        return false;
    };
    ip.version() == 4
        && ip.protocol() == proto::ICMP
        && ip.dst_addr() == target
        && icmp.msg_type() == kind::ECHO_REQUEST
        && icmp.echo_ident() == ident
        && icmp.echo_seq_no() == seq
}

fn unreachable_reason(code: u8, from: Ipv4Addr) -> String {
    match code {
        0 => format!("network unreachable (from {from})"),
        1 => format!("host unreachable (from {from})"),
        13 => format!("administratively prohibited (from {from})"),
        _ => format!("destination unreachable, code {code} (from {from})"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::health::test_target;
    use sluice_config::CheckKind;
    use sluice_dataplane::wire::checksum;
    use std::time::Duration;

    const TARGET: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
    const US: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);

    /// An IPv4 packet from `src` to `dst` carrying `icmp`.
    fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let total = (ipv4::MIN_HEADER_LEN + icmp.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto::ICMP, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let csum = checksum::finish(checksum::sum(&p));
        p[10..12].copy_from_slice(&csum.to_be_bytes());
        p.extend_from_slice(icmp);
        p
    }

    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut reply = request.to_vec();
        let mut icmp = icmpv4::Packet::new_unchecked(&mut reply[..]);
        icmp.set_msg_type(kind::ECHO_REPLY);
        icmp.fill_checksum();
        reply
    }

    #[test]
    fn request_is_a_valid_echo() {
        let request = echo_request(0x1234, 7);
        let icmp = icmpv4::Packet::new_checked(&request[..]).unwrap();
        assert_eq!(icmp.msg_type(), kind::ECHO_REQUEST);
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1234, 7));
        assert_eq!(icmp.data(), PAYLOAD);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn only_our_reply_counts() {
        let reply = reply_to(&echo_request(0x1234, 7));
        let from_target = ip_packet(TARGET, US, &reply);
        assert_eq!(
            judge(&from_target, TARGET, 0x1234, 7),
            Some(Ok("echo reply".into()))
        );
        // Another probe's reply, someone else's, or our own request.
        assert_eq!(judge(&from_target, TARGET, 0x1234, 8), None);
        assert_eq!(judge(&from_target, TARGET, 0x1235, 7), None);
        assert_eq!(
            judge(&ip_packet(ROUTER, US, &reply), TARGET, 0x1234, 7),
            None
        );
        let request = ip_packet(US, TARGET, &echo_request(0x1234, 7));
        assert_eq!(judge(&request, TARGET, 0x1234, 7), None);
        // Corrupt or cut.
        let mut bad = from_target.clone();
        bad[30] ^= 0xff;
        assert_eq!(judge(&bad, TARGET, 0x1234, 7), None);
        assert_eq!(judge(&from_target[..24], TARGET, 0x1234, 7), None);
    }

    #[test]
    fn unreachable_about_our_request_fails() {
        let sent = ip_packet(US, TARGET, &echo_request(0x1234, 7));
        let mut error = vec![kind::DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&sent[..ipv4::MIN_HEADER_LEN + 8]);
        icmpv4::Packet::new_unchecked(&mut error[..]).fill_checksum();
        let from_router = ip_packet(ROUTER, US, &error);
        let host = Err("host unreachable (from 10.20.0.1)".to_string());
        assert_eq!(judge(&from_router, TARGET, 0x1234, 7), Some(host));
        assert_eq!(judge(&from_router, TARGET, 0x1234, 9), None);
        assert_eq!(judge(&from_router, ROUTER, 0x1234, 7), None);
    }

    #[tokio::test]
    async fn loopback_answers() {
        if let Err(e) = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                eprintln!("skipping the ICMP probe test: raw sockets need root ({e})");
                return;
            }
        }
        let target = test_target(0, CheckKind::Icmp, Duration::from_secs(1));
        let first = check(&target).await;
        assert_eq!(first.result, Ok("echo reply".to_string()));
        // Two at once: each must get its own reply.
        let (a, b) = tokio::join!(check(&target), check(&target));
        assert_eq!((a.result, b.result), (first.result.clone(), first.result));
    }
}
