//! ICMP and ICMPv6 echo check over raw sockets (the switch runs as root).
//!
//! A raw ICMP socket sees every ICMP packet the host receives, so each
//! probe having one would cost every probe every reply: the cost would grow
//! with the square of the probes at once. Probes share one socket per
//! source address instead ([`Pinger`]), read by one task that hands each
//! reply to the probe waiting for its identifier and sequence number (and
//! from its target); replies to other pingers are skipped. The socket is
//! not connected, so a destination unreachable from a router on the way is
//! seen too and fails the probe at once. An IPv6 member is pinged over a
//! raw ICMPv6 socket: the kernel fills in the checksum (RFC 3542 3.1) and
//! hands over messages without their IPv6 header, the sender apart.

use super::{io_reason, setup_failure, Failure};
use crate::health::{lock, Target};
use sluice_dataplane::wire::icmpv4::{self, kind};
use sluice_dataplane::wire::icmpv6;
use sluice_dataplane::wire::ipv4::{self, proto};
use sluice_dataplane::wire::ipv6::{self, next_header};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Echo data: recognisable in a capture.
const PAYLOAD: &[u8; 16] = b"sluice-health/1\0";
/// Room for any reply to our request and for the errors quoting it.
const MAX_PACKET: usize = 2048;

/// Probe counter: its low half is the echo identifier, its high half the
/// sequence number, so concurrent probes never take each other's replies.
static NEXT_PROBE: AtomicU32 = AtomicU32::new(0);

/// A probe waiting for its answer.
struct Waiter {
    target: IpAddr,
    answer: oneshot::Sender<Result<String, String>>,
}

/// One raw socket, bound to a source address, shared by every probe from
/// that source, and the probes waiting on it by (identifier, sequence).
struct Pinger {
    socket: AsyncFd<Socket>,
    v6: bool,
    waiting: Mutex<HashMap<(u16, u16), Waiter>>,
}

/// Where a pinger's probes leave from: the family (IPv6?) and the source
/// address, if bound to one.
type Source = (bool, Option<IpAddr>);

/// A pinger with its source and the task reading its socket.
type Open = (Source, Arc<Pinger>, JoinHandle<()>);

/// The pingers by source.
static PINGERS: LazyLock<Mutex<Vec<Open>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// How long a pinger's reader lives with no probe waiting on it (the source
/// may be gone with a reload): then it closes its socket.
const IDLE_READER: Duration = Duration::from_secs(60);
/// How long the reader rests after a receive error.
const READ_BACKOFF: Duration = Duration::from_millis(100);

/// The pinger of `source`, opened on first use (and again once its reader
/// retired or ended with the runtime it ran on), with `waiter` waiting on it
/// for `key`: put there under the registry's lock, so its reader cannot
/// retire in between.
fn wait_on(source: Source, key: (u16, u16), waiter: Waiter) -> Result<Arc<Pinger>, Failure> {
    let mut all = lock(&PINGERS);
    all.retain(|(_, _, reader)| !reader.is_finished());
    let p = match all.iter().find(|(s, _, _)| *s == source) {
        Some((_, p, _)) => p.clone(),
        None => {
            let socket = open(source).map_err(|e| setup_failure("raw socket", &e))?;
            let p = Arc::new(Pinger {
                socket,
                v6: source.0,
                waiting: Mutex::new(HashMap::new()),
            });
            let reader = tokio::spawn(read_replies(p.clone()));
            all.push((source, p.clone(), reader));
            p
        }
    };
    lock(&p.waiting).insert(key, waiter);
    Ok(p)
}

/// Hands every reply read from `p`'s socket to the probe it answers; ends
/// (closing the socket) after `IDLE_READER` without a probe waiting.
async fn read_replies(p: Arc<Pinger>) {
    let mut packet = vec![0u8; MAX_PACKET];
    loop {
        // `Read` for `&Socket` is a plain recv(2): one whole packet per call.
        // An ICMPv6 message comes without its IPv6 header: its sender is
        // looked at first (one reader per socket: nothing comes between).
        let read = p.socket.async_io(Interest::READABLE, |mut s| {
            let from = match p.v6 {
                true => s.peek_sender()?.as_socket().map(|a| a.ip()),
                false => None,
            };
            Ok((s.read(&mut packet)?, from))
        });
        let (len, from) = match tokio::time::timeout(IDLE_READER, read).await {
            Ok(Ok(got)) => got,
            Ok(Err(_)) => {
                tokio::time::sleep(READ_BACKOFF).await;
                continue;
            }
            Err(_) => {
                let mut all = lock(&PINGERS);
                if lock(&p.waiting).is_empty() {
                    all.retain(|(_, q, _)| !Arc::ptr_eq(q, &p));
                    return;
                }
                continue;
            }
        };
        let reply = match from {
            Some(IpAddr::V6(from)) => reply_of6(&packet[..len], from),
            _ => reply_of(&packet[..len]),
        };
        let Some(reply) = reply else {
            continue;
        };
        let mut waiting = lock(&p.waiting);
        let key = (reply.ident, reply.seq);
        if waiting.get(&key).is_some_and(|w| w.target == reply.about) {
            if let Some(w) = waiting.remove(&key) {
                let _ = w.answer.send(reply.result);
            }
        }
    }
}

/// A probe's place among the waiters, given up when the probe ends
/// (answered, or dropped at its timeout).
struct Waiting<'a>(&'a Pinger, (u16, u16));

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.waiting).remove(&self.1);
    }
}

pub(super) async fn probe(target: &Target) -> Result<String, Failure> {
    let addr = target.addr;
    let v6 = addr.is_ipv6();
    let source = target.source.filter(|s| s.is_ipv6() == v6);
    let n = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
    let (ident, seq) = (n as u16, (n >> 16) as u16);
    let (tx, rx) = oneshot::channel();
    let waiter = Waiter {
        target: addr,
        answer: tx,
    };
    let p = wait_on((v6, source), (ident, seq), waiter)?;
    let _waiting = Waiting(&p, (ident, seq));
    let request = match v6 {
        true => echo_request6(ident, seq),
        false => echo_request(ident, seq),
    };
    let to = SockAddr::from(SocketAddr::new(addr, 0));
    p.socket
        .async_io(Interest::WRITABLE, |s| s.send_to(&request, &to))
        .await
        .map_err(|e| match setup_failure("send", &e) {
            local @ Failure::Local(_) => local,
            Failure::Member(_) => Failure::Member(io_reason(&e)),
        })?;
    match rx.await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(Failure::Local("the ICMP reader stopped".to_string())),
    }
}

/// A non-blocking raw ICMP (`v6`: ICMPv6) socket registered with the runtime.
fn open((v6, source): Source) -> io::Result<AsyncFd<Socket>> {
    let socket = match v6 {
        true => Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?,
        false => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?,
    };
    socket.set_nonblocking(true)?;
    if let Some(source) = source {
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    // `AsyncFd::new` is deprecated because a type could hand out an fd it
    // does not own; `Socket` owns its fd for its whole life, and the
    // replacement (`register`) is `unsafe`, which this crate forbids.
    #[allow(deprecated)]
    AsyncFd::new(socket)
}

/// An echo request (ICMP header and data; the kernel adds the IPv4 header).
fn echo_request(ident: u16, seq: u16) -> Request {
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

/// An echo request as written to the socket (ICMP and ICMPv6 headers have
/// the same length).
type Request = [u8; icmpv4::HEADER_LEN + PAYLOAD.len()];

/// An ICMPv6 echo request, its checksum left to the kernel (which knows the
/// source address it picks).
fn echo_request6(ident: u16, seq: u16) -> Request {
    let mut buf = [0u8; icmpv6::HEADER_LEN + PAYLOAD.len()];
    let mut icmp = icmpv6::Packet::new_unchecked(&mut buf[..]);
    icmp.set_msg_type(icmpv6::kind::ECHO_REQUEST);
    icmp.set_code(0);
    icmp.set_echo_ident(ident);
    icmp.set_echo_seq_no(seq);
    icmp.data_mut().copy_from_slice(PAYLOAD);
    buf
}

/// What an ICMP packet received says, and about which probe: an echo reply
/// (`about` its source) or a destination unreachable quoting an echo
/// request (`about` the request's destination).
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    ident: u16,
    seq: u16,
    about: IpAddr,
    result: Result<String, String>,
}

fn reply_of(packet: &[u8]) -> Option<Reply> {
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
        kind::ECHO_REPLY => Some(Reply {
            ident: icmp.echo_ident(),
            seq: icmp.echo_seq_no(),
            about: ip.src_addr().into(),
            result: Ok("echo reply".to_string()),
        }),
        kind::DEST_UNREACHABLE => {
            let (about, ident, seq) = quoted_request(icmp.data())?;
            Some(Reply {
                ident,
                seq,
                about: about.into(),
                result: Err(unreachable_reason(icmp.code(), ip.src_addr())),
            })
        }
        _ => None,
    }
}

/// What an ICMPv6 message received from `from` says, and about which probe.
fn reply_of6(msg: &[u8], from: Ipv6Addr) -> Option<Reply> {
    let icmp = icmpv6::Packet::new_checked(msg).ok()?;
    match icmp.msg_type() {
        icmpv6::kind::ECHO_REPLY => Some(Reply {
            ident: icmp.echo_ident(),
            seq: icmp.echo_seq_no(),
            about: from.into(),
            result: Ok("echo reply".to_string()),
        }),
        icmpv6::kind::DEST_UNREACHABLE => {
            let (about, ident, seq) = quoted_request6(icmp.data())?;
            Some(Reply {
                ident,
                seq,
                about: about.into(),
                result: Err(unreachable_reason6(icmp.code(), from)),
            })
        }
        _ => None,
    }
}

/// The echo request an ICMPv6 error quotes: (destination, identifier,
/// sequence).
fn quoted_request6(quoted: &[u8]) -> Option<(Ipv6Addr, u16, u16)> {
    // The quote is cut short, so the payload length cannot be checked.
    let ip = ipv6::Packet::new_unchecked(quoted.get(..ipv6::HEADER_LEN)?);
    let icmp = icmpv6::Packet::new_checked(quoted.get(ipv6::HEADER_LEN..)?).ok()?;
    let ours =
        ip.next_header() == next_header::ICMPV6 && icmp.msg_type() == icmpv6::kind::ECHO_REQUEST;
    ours.then(|| (ip.dst_addr(), icmp.echo_ident(), icmp.echo_seq_no()))
}

fn unreachable_reason6(code: u8, from: Ipv6Addr) -> String {
    match code {
        0 => format!("no route to destination (from {from})"),
        1 => format!("administratively prohibited (from {from})"),
        3 => format!("address unreachable (from {from})"),
        _ => format!("destination unreachable, code {code} (from {from})"),
    }
}

/// What a received IPv4 packet says about our probe of `target` with
/// `ident` and `seq`: `None` if it is not about it (another pinger's
/// traffic, our own request on loopback).
#[cfg(test)]
fn judge(packet: &[u8], target: Ipv4Addr, ident: u16, seq: u16) -> Option<Result<String, String>> {
    reply_of(packet)
        .filter(|r| (r.ident, r.seq, r.about) == (ident, seq, target.into()))
        .map(|r| r.result)
}

/// The echo request an ICMP error quotes (its IPv4 header and the first 8
/// bytes after it): (destination, identifier, sequence).
fn quoted_request(quoted: &[u8]) -> Option<(Ipv4Addr, u16, u16)> {
    if quoted.len() < ipv4::MIN_HEADER_LEN {
        return None;
    }
    // The quote is cut short, so the total length cannot be checked.
    let ip = ipv4::Packet::new_unchecked(quoted);
    let icmp = icmpv4::Packet::new_checked(quoted.get(ip.header_len()..)?).ok()?;
    let ours =
        ip.version() == 4 && ip.protocol() == proto::ICMP && icmp.msg_type() == kind::ECHO_REQUEST;
    ours.then(|| (ip.dst_addr(), icmp.echo_ident(), icmp.echo_seq_no()))
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

    #[test]
    fn icmpv6_replies_and_unreachables_are_matched_to_their_probe() {
        let (target, router) = (
            "fd00:20::11".parse().unwrap(),
            "fd00:20::1".parse().unwrap(),
        );
        let request = echo_request6(0x1234, 7);
        let mut reply = request;
        reply[0] = icmpv6::kind::ECHO_REPLY;
        let got = reply_of6(&reply, target).unwrap();
        assert_eq!(
            (got.ident, got.seq, got.about),
            (0x1234, 7, IpAddr::V6(target))
        );
        assert_eq!(got.result, Ok("echo reply".into()));
        // Our own request seen on the socket, and a neighbour solicitation.
        assert_eq!(reply_of6(&request, target), None);
        assert_eq!(reply_of6(&[135, 0, 0, 0, 0, 0, 0, 0], router), None);
        // A router's address unreachable, quoting the request it was sent.
        let mut quoted = vec![0x60, 0, 0, 0, 0, 24, next_header::ICMPV6, 64];
        quoted.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        quoted.extend_from_slice(&target.octets());
        quoted.extend_from_slice(&request);
        let mut error = vec![icmpv6::kind::DEST_UNREACHABLE, 3, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted);
        let got = reply_of6(&error, router).unwrap();
        assert_eq!(
            (got.ident, got.seq, got.about),
            (0x1234, 7, IpAddr::V6(target))
        );
        assert_eq!(
            got.result,
            Err("address unreachable (from fd00:20::1)".into())
        );
        assert_eq!(
            reply_of6(&error[..8 + 40 + 4], router),
            None,
            "cut before the ids"
        );
    }

    #[tokio::test]
    async fn ipv6_loopback_answers() {
        if let Err(e) = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                eprintln!("skipping the ICMPv6 probe test: raw sockets need root ({e})");
                return;
            }
        }
        let mut target = test_target(0, CheckKind::Icmp, Duration::from_secs(1));
        target.addr = Ipv6Addr::LOCALHOST.into();
        target.source = Some(Ipv6Addr::LOCALHOST.into());
        let (a, b) = tokio::join!(check(&target), check(&target));
        assert_eq!(a.result, Ok("echo reply".to_string()));
        assert_eq!(b.result, Ok("echo reply".to_string()));
        // Nobody there: no answer within the timeout.
        target.addr = "fd00:dead::1".parse::<Ipv6Addr>().unwrap().into();
        target.source = None;
        assert!(check(&target).await.result.is_err());
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
        // A hundred at once, over one socket: each gets its own.
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let t = target.clone();
            all.spawn(async move { check(&t).await.result });
        }
        while let Some(result) = all.join_next().await {
            assert_eq!(result.unwrap(), Ok("echo reply".to_string()));
        }
        let open = lock(&PINGERS)
            .iter()
            .filter(|(s, _, r)| s.1 == target.source && !r.is_finished())
            .count();
        // One per runtime still running (tests run side by side).
        assert!(open <= 2, "{open} sockets for one source");
    }
}
