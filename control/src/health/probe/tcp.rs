//! TCP connect check; also the connection under the HTTP check.

use super::{connect_failure, io_reason, setup_failure, Failure};
use crate::health::Target;
use sluice_dataplane::wire::proxy;

use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// Connect succeeded; the connection is closed at once.
pub(super) async fn probe(target: &Target) -> Result<String, Failure> {
    connect(target).await?;
    Ok("connected".to_string())
}

/// A connection to the target from its source address; to a member that
/// reads a PROXY protocol header first, with the LOCAL command sent.
pub(super) async fn connect(target: &Target) -> Result<TcpStream, Failure> {
    let mut stream = open(target).await?;
    if target.proxy_local {
        stream
            .write_all(&proxy::LOCAL)
            .await
            .map_err(|e| format!("send PROXY LOCAL: {}", io_reason(&e)))?;
    }
    Ok(stream)
}

/// A connection to the target from its source address.
async fn open(target: &Target) -> Result<TcpStream, Failure> {
    let socket = match target.addr.is_ipv4() {
        true => TcpSocket::new_v4(),
        false => TcpSocket::new_v6(),
    };
    let socket = socket.map_err(|e| setup_failure("socket", &e))?;
    // Close with RST: the switch opens a probe connection per check and
    // must not hold each one in TIME_WAIT for a minute.
    socket
        .set_zero_linger()
        .map_err(|e| setup_failure("SO_LINGER", &e))?;
    if let Some(source) = target.source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| setup_failure(&format!("bind {source}"), &e))?;
    }
    let peer = SocketAddr::new(target.addr, target.port);
    socket.connect(peer).await.map_err(|e| connect_failure(&e))
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use crate::health::test_target;
    use sluice_config::CheckKind;
    use std::time::Duration;
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn connect_to_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let outcome = check(&test_target(port, CheckKind::Tcp, TIMEOUT)).await;
        assert_eq!(outcome.result, Ok("connected".to_string()));
        assert!(outcome.latency < TIMEOUT);
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let outcome = check(&test_target(port, CheckKind::Tcp, TIMEOUT)).await;
        assert_eq!(outcome.result, Err("connection refused".to_string()));
    }
}
