//! HTTP/1.1 GET check: the status, and optionally a substring of the body.
//!
//! httparse does the parsing; this file only decides how much to read. The
//! whole response is capped at 64 KiB: a body substring must appear in
//! that much.

use super::{contains, io_reason, tcp, Failure};
use crate::health::Target;

use httparse::Status::{Complete, Partial};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const MAX_RESPONSE: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
const READ_STEP: usize = 8 * 1024;

/// What a healthy response looks like.
#[derive(Clone, Copy, Debug)]
pub(super) struct Expect<'a> {
    pub status: &'a [u16],
    pub body: Option<&'a str>,
}

pub(super) async fn probe(
    target: &Target,
    path: &str,
    host: Option<&str>,
    want: Expect<'_>,
) -> Result<String, Failure> {
    let mut stream = tcp::connect(target).await?;
    stream
        .write_all(request(target, path, host).as_bytes())
        .await
        .map_err(|e| format!("send: {}", io_reason(&e)))?;
    Ok(judge(&mut stream, want).await?)
}

fn request(target: &Target, path: &str, host: Option<&str>) -> String {
    let host = match host {
        Some(host) => host.to_string(),
        // An IPv6 literal in brackets (RFC 7230 5.4, RFC 3986 3.2.2).
        None if target.port == 80 => match target.addr {
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => format!("[{a}]"),
        },
        None => std::net::SocketAddr::new(target.addr, target.port).to_string(),
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sluice-health/1\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    )
}

/// Reads one response and holds it against `want`.
async fn judge<R: AsyncRead + Unpin>(stream: &mut R, want: Expect<'_>) -> Result<String, String> {
    let mut buf = Vec::new();
    let head = read_head(stream, &mut buf).await?;
    let status = format!("status {}", head.status);
    if !want.status.contains(&head.status) {
        return Err(status);
    }
    let Some(needle) = want.body else {
        return Ok(status);
    };
    let body = read_body(stream, buf, &head).await?;
    if contains(&body, needle.as_bytes()) {
        Ok(format!("{status}, body has {needle:?}"))
    } else {
        Err(format!("body lacks {needle:?}"))
    }
}

/// Status line and headers, as far as a check needs them.
#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    /// Bytes of the status line and headers, up to the body.
    len: usize,
    framing: Framing,
}

/// How the end of the body is found.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Head, String> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        let more = read_more(stream, buf)
            .await
            .map_err(|e| format!("receive: {}", io_reason(&e)))?;
        if !more {
            return Err(match buf.len() {
                0 => "closed without a response".to_string(),
                MAX_RESPONSE => "response head over 64 KiB".to_string(),
                _ => "response cut short".to_string(),
            });
        }
    }
}

/// The head if `buf` holds all of it, `None` if more is needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(Complete(len)) => len,
        Ok(Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    // Complete implies a status code.
    let status = response.code.unwrap_or_default();
    let framing = match status {
        204 | 304 => Framing::Length(0),
        _ => framing(response.headers),
    };
    Ok(Some(Head {
        status,
        len,
        framing,
    }))
}

/// RFC 9112 section 6.3: chunked (as the last coding) wins over a length.
fn framing(headers: &[httparse::Header<'_>]) -> Framing {
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if let Some(codings) = value("transfer-encoding") {
        let last = codings
            .split(|&b| b == b',')
            .next_back()
            .unwrap_or_default();
        if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Framing::Chunked;
        }
        return Framing::UntilClose;
    }
    let length = value("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok());
    length.map_or(Framing::UntilClose, Framing::Length)
}

/// The body after `head` in `buf`, reading the rest as needed. A body cut
/// short (by the peer or by the cap) is returned as far as it arrived.
async fn read_body<R: AsyncRead + Unpin>(
    stream: &mut R,
    mut buf: Vec<u8>,
    head: &Head,
) -> Result<Vec<u8>, String> {
    let mut body = match head.framing {
        Framing::Chunked => return dechunk(stream, buf, head.len).await,
        Framing::Length(n) => {
            let end = head.len.saturating_add(n);
            while buf.len() < end && more(stream, &mut buf).await {}
            buf.truncate(end);
            buf
        }
        Framing::UntilClose => {
            while more(stream, &mut buf).await {}
            buf
        }
    };
    Ok(body.split_off(head.len))
}

/// Decodes a chunked body starting at `pos` of `buf`.
async fn dechunk<R: AsyncRead + Unpin>(
    stream: &mut R,
    mut buf: Vec<u8>,
    mut pos: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(Complete(sized)) => sized,
            Ok(Partial) if more(stream, &mut buf).await => continue,
            Ok(Partial) => return Ok(body),
            Err(_) => return Err("bad chunked body".to_string()),
        };
        if size == 0 {
            return Ok(body);
        }
        let start = pos + used;
        let end = start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        // The chunk's data and the CRLF after it.
        let next = end.saturating_add(2);
        while buf.len() < next && more(stream, &mut buf).await {}
        body.extend_from_slice(&buf[start..end.min(buf.len())]);
        if buf.len() < next {
            return Ok(body);
        }
        pos = next;
    }
}

/// Appends what the peer sends next, up to the cap. False at the end of
/// the stream or at the cap.
async fn read_more<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    let room = MAX_RESPONSE.saturating_sub(buf.len()).min(READ_STEP);
    if room == 0 {
        return Ok(false);
    }
    let old = buf.len();
    buf.resize(old + room, 0);
    let read = stream.read(&mut buf[old..]).await;
    buf.truncate(old + *read.as_ref().unwrap_or(&0));
    Ok(read? > 0)
}

/// [`read_more`] for the body: a reset after the head is as good as a close,
/// the check then judges what arrived.
async fn more<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>) -> bool {
    read_more(stream, buf).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::health::test_target;
    use sluice_config::CheckKind;
    use std::time::Duration;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    const OK_200: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstatus ok";
    const DOWN_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        7\r\nstatus \r\n1;ext=1\r\no\r\n1\r\nk\r\n0\r\n\r\n";

    fn want(body: Option<&str>) -> Expect<'_> {
        Expect {
            status: &[200],
            body,
        }
    }

    async fn judge_bytes(response: &[u8], want: Expect<'_>) -> Result<String, String> {
        judge(&mut &response[..], want).await
    }

    #[tokio::test]
    async fn judges_literal_responses() {
        assert_eq!(
            judge_bytes(OK_200, want(None)).await,
            Ok("status 200".into())
        );
        let has_ok = Ok("status 200, body has \"ok\"".to_string());
        assert_eq!(judge_bytes(OK_200, want(Some("ok"))).await, has_ok);
        assert_eq!(
            judge_bytes(DOWN_503, want(None)).await,
            Err("status 503".into())
        );
        let lacks = Err("body lacks \"fine\"".to_string());
        assert_eq!(judge_bytes(OK_200, want(Some("fine"))).await, lacks);
        // "ok" spans two chunks.
        assert_eq!(judge_bytes(CHUNKED, want(Some("ok"))).await, has_ok);
        let until_close = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall ok here";
        assert_eq!(judge_bytes(until_close, want(Some("ok"))).await, has_ok);
    }

    #[tokio::test]
    async fn broken_responses_fail() {
        let cut = judge_bytes(b"HTTP/1.1 200 OK\r\nContent-", want(None)).await;
        assert_eq!(cut, Err("response cut short".into()));
        let empty = judge_bytes(b"", want(None)).await;
        assert_eq!(empty, Err("closed without a response".into()));
        let garbage = judge_bytes(b"SSH-2.0-OpenSSH_9.6\r\n", want(None)).await;
        assert!(garbage.unwrap_err().starts_with("bad response"));
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let bad = judge_bytes(bad_chunk, want(Some("ok"))).await;
        assert_eq!(bad, Err("bad chunked body".into()));
        // A length larger than what arrives: judged on what did.
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok";
        assert!(judge_bytes(short, want(Some("ok"))).await.is_ok());
    }

    #[tokio::test]
    async fn huge_head_is_capped() {
        let mut response = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        response.resize(MAX_RESPONSE + 100, b'a');
        let capped = judge_bytes(&response, want(None)).await;
        assert_eq!(capped, Err("response head over 64 KiB".into()));
    }

    #[test]
    fn framing_from_headers() {
        let head = |raw: &[u8]| parse_head(raw).unwrap().unwrap().framing;
        assert_eq!(head(OK_200), Framing::Length(9));
        assert_eq!(head(CHUNKED), Framing::Chunked);
        let both =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(head(both), Framing::Chunked);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(head(no_content), Framing::Length(0));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
    }

    /// Answers every connection with `response` after reading a request,
    /// and passes each request on.
    async fn serve(response: &'static [u8]) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8];
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        break;
                    }
                    request.push(byte[0]);
                }
                let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
                let _ = conn.write_all(response).await;
            }
        });
        (port, rx)
    }

    fn http_target(port: u16, expect_body: Option<&str>) -> Target {
        let kind = CheckKind::Http {
            path: "/health".to_string(),
            host: None,
            expect_status: vec![200, 204],
            expect_body: expect_body.map(str::to_string),
        };
        test_target(port, kind, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn checks_a_live_server() {
        let (port, mut requests) = serve(OK_200).await;
        let outcome = check(&http_target(port, None)).await;
        assert_eq!(outcome.result, Ok("status 200".to_string()));
        let expected = format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sluice-health/1\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(requests.recv().await.unwrap(), expected);
        let outcome = check(&http_target(port, Some("ok"))).await;
        assert_eq!(
            outcome.result,
            Ok("status 200, body has \"ok\"".to_string())
        );
    }

    /// A member behind a `proxy_protocol` server reads a PROXY header
    /// first: the check's is the LOCAL command (signature, version 2 and
    /// LOCAL, no family, no addresses), then the request.
    #[tokio::test]
    async fn a_proxy_protocol_member_gets_local_before_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let member = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut header = [0u8; 16];
            conn.read_exact(&mut header).await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                request.push(byte[0]);
            }
            conn.write_all(OK_200).await.unwrap();
            (header, String::from_utf8_lossy(&request).into_owned())
        });
        let mut target = http_target(port, None);
        target.proxy_local = true;
        let outcome = check(&target).await;
        assert_eq!(outcome.result, Ok("status 200".to_string()));
        let (header, request) = member.await.unwrap();
        assert_eq!(&header, b"\r\n\r\n\0\r\nQUIT\n\x20\0\0\0");
        assert!(
            request.starts_with("GET /health HTTP/1.1\r\n"),
            "{request:?}"
        );
    }

    #[tokio::test]
    async fn wrong_status_and_missing_body_fail() {
        let (port, _) = serve(DOWN_503).await;
        let outcome = check(&http_target(port, None)).await;
        assert_eq!(outcome.result, Err("status 503".to_string()));
        let (port, _) = serve(OK_200).await;
        let outcome = check(&http_target(port, Some("healthy"))).await;
        assert_eq!(outcome.result, Err("body lacks \"healthy\"".to_string()));
    }

    #[tokio::test]
    async fn chunked_body_from_a_live_server() {
        let (port, _) = serve(CHUNKED).await;
        let outcome = check(&http_target(port, Some("status ok"))).await;
        assert_eq!(
            outcome.result,
            Ok("status 200, body has \"status ok\"".to_string())
        );
    }

    #[test]
    fn host_header_omits_port_80() {
        let mut t = http_target(80, None);
        assert!(request(&t, "/", None).contains("\r\nHost: 127.0.0.1\r\n"));
        t.port = 8080;
        assert!(request(&t, "/", None).contains("\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(request(&t, "/", Some("web.example")).contains("\r\nHost: web.example\r\n"));
    }
}
