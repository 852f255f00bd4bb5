//! UDP check: send a datagram, judge the reply (or the silence).
//!
//! Without an expected reply, UDP gives no positive proof of life: a
//! reply is success, and so is silence, since a closed port answers with
//! an ICMP port unreachable, which a connected socket reports as
//! ECONNREFUSED on the next receive.

use super::{contains, io_reason, setup_failure, Failure};
use crate::health::Target;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time;

/// Large enough for any reply a check should get; longer ones are cut.
const MAX_REPLY: usize = 2048;

pub(super) async fn probe(
    target: &Target,
    send: Option<&str>,
    expect: Option<&str>,
) -> Result<String, Failure> {
    let any = match target.addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let local = SocketAddr::new(target.source.unwrap_or(any), 0);
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| setup_failure(&format!("bind {}", local.ip()), &e))?;
    // Connected, so the kernel reports an ICMP error to this socket.
    socket
        .connect(SocketAddr::new(target.addr, target.port))
        .await
        .map_err(|e| reason(&e))?;
    socket
        .send(send.unwrap_or_default().as_bytes())
        .await
        .map_err(|e| reason(&e))?;
    let mut reply = vec![0u8; MAX_REPLY];
    match expect {
        // The outer timeout ends a silent wait as a failure.
        Some(want) => {
            let n = socket.recv(&mut reply).await.map_err(|e| reason(&e))?;
            if contains(&reply[..n], want.as_bytes()) {
                Ok(format!("reply has {want:?}"))
            } else {
                Err(format!("reply lacks {want:?}").into())
            }
        }
        None => match time::timeout(quiet_wait(target), socket.recv(&mut reply)).await {
            Ok(Ok(n)) => Ok(format!("reply of {n} bytes")),
            Ok(Err(e)) => Err(reason(&e).into()),
            Err(_) => Ok("no reply, no ICMP error".to_string()),
        },
    }
}

/// How long silence is awaited: most of the check's timeout, so the
/// probe, not the outer timeout, decides that silence is fine.
fn quiet_wait(target: &Target) -> Duration {
    target.check.timeout * 9 / 10
}

fn reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "port unreachable".to_string()
    } else {
        io_reason(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use crate::health::{test_target, Target};
    use sluice_config::CheckKind;
    use std::time::Duration;
    use tokio::net::UdpSocket;

    const TIMEOUT: Duration = Duration::from_millis(300);

    fn udp_target(port: u16, send: &str, expect: Option<&str>) -> Target {
        let kind = CheckKind::Udp {
            send: Some(send.to_string()),
            expect: expect.map(str::to_string),
        };
        test_target(port, kind, TIMEOUT)
    }

    /// Answers every datagram with `answer`, or echoes it when `None`;
    /// stays silent when `answer` is empty.
    async fn server(answer: Option<&'static str>) -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let reply = answer.map_or(&buf[..n], str::as_bytes);
                if !reply.is_empty() {
                    let _ = socket.send_to(reply, from).await;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn expected_reply_passes() {
        let port = server(None).await;
        let outcome = check(&udp_target(port, "ping pong", Some("pong"))).await;
        assert_eq!(outcome.result, Ok("reply has \"pong\"".to_string()));
    }

    #[tokio::test]
    async fn wrong_reply_fails() {
        let port = server(Some("nope")).await;
        let outcome = check(&udp_target(port, "ping", Some("pong"))).await;
        assert_eq!(outcome.result, Err("reply lacks \"pong\"".to_string()));
    }

    #[tokio::test]
    async fn silence_is_a_timeout_only_when_a_reply_is_expected() {
        let port = server(Some("")).await;
        let outcome = check(&udp_target(port, "ping", Some("pong"))).await;
        assert_eq!(outcome.result, Err("timeout after 300ms".to_string()));
        let outcome = check(&udp_target(port, "ping", None)).await;
        assert_eq!(outcome.result, Ok("no reply, no ICMP error".to_string()));
    }

    #[tokio::test]
    async fn any_reply_passes_without_expect() {
        let port = server(Some("hello")).await;
        let outcome = check(&udp_target(port, "ping", None)).await;
        assert_eq!(outcome.result, Ok("reply of 5 bytes".to_string()));
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        drop(socket);
        for expect in [None, Some("pong")] {
            let outcome = check(&udp_target(port, "ping", expect)).await;
            assert_eq!(outcome.result, Err("port unreachable".to_string()));
        }
    }
}
