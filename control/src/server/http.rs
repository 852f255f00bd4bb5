//! HTTP on the control thread: Prometheus' `GET /metrics` (`[control]
//! metrics`), and the status page (`[control] http`): `GET /` serves one
//! self-contained page, embedded in the binary, which reads
//! `GET /api/overview` (the typed `Overview` as JSON) every two seconds;
//! `/metrics` is served there too. Read-only: GET and HEAD, any other
//! method is refused (405). One request per connection; the request head
//! is parsed by `httparse`.

use super::{bounded, within, write_all, CLIENT_TIMEOUT, MAX_REQUEST, SCRAPE_TIMEOUT};
use crate::dispatch::dispatch;
use crate::view::View;
use sluice_control::api::{Reply, Request};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The status page: HTML, CSS and script in one file, no outside asset.
const PAGE: &str = include_str!("../page/index.html");

/// Headers read at most.
const MAX_HEADERS: usize = 32;

/// One answer: status line, content type, body.
struct Response {
    status: &'static str,
    kind: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            kind: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }
}

/// What a request asks of a listener.
enum Target {
    /// The status page itself.
    Page,
    /// A typed answer: `Metrics` as Prometheus text, `Overview` as JSON.
    Api(Request),
    /// Nothing here: 404, or 405 for a method other than GET and HEAD.
    Refused(Response),
}

/// A Prometheus scrape: `/metrics` only.
pub(super) async fn metrics(stream: TcpStream, view: Arc<View>) -> std::io::Result<()> {
    bounded(exchange(stream, view, |path| match path {
        "/metrics" => Target::Api(Request::Metrics),
        _ => Target::Refused(Response::text("404 Not Found", "try GET /metrics\n")),
    }))
    .await;
    Ok(())
}

/// The status page, its data, and `/metrics`.
pub(super) async fn page(stream: TcpStream, view: Arc<View>) -> std::io::Result<()> {
    bounded(exchange(stream, view, |path| match path {
        "/" | "/index.html" => Target::Page,
        "/api/overview" => Target::Api(Request::Overview),
        "/metrics" => Target::Api(Request::Metrics),
        _ => Target::Refused(Response::text(
            "404 Not Found",
            "try GET /, /api/overview or /metrics\n",
        )),
    }))
    .await;
    Ok(())
}

/// The answer to `target`, asked of the one dispatcher.
async fn answer(view: &Arc<View>, target: Target) -> Response {
    let request = match target {
        Target::Page => {
            return Response {
                status: "200 OK",
                kind: "text/html; charset=utf-8",
                body: PAGE.to_string(),
            }
        }
        Target::Refused(r) => return r,
        Target::Api(request) => request,
    };
    match dispatch(view, request).await {
        Ok(Reply::Metrics(m)) => Response {
            status: "200 OK",
            kind: "text/plain; version=0.0.4; charset=utf-8",
            body: m.exposition(),
        },
        Ok(Reply::Overview(o)) => match serde_json::to_string(&o) {
            Ok(body) => Response {
                status: "200 OK",
                kind: "application/json",
                body,
            },
            Err(e) => Response::text("500 Internal Server Error", &format!("{e}\n")),
        },
        Ok(other) => Response::text("500 Internal Server Error", &other.text()),
        Err(e) => Response::text("500 Internal Server Error", &e.text()),
    }
}

/// Reads one request head, answers it (`route` maps a path to what it
/// asks for), closes. Only GET and HEAD are served; a listener on a
/// loopback address answers only requests that name it by address or as
/// localhost, so a web page cannot reach it through a name it rebinds to
/// 127.0.0.1.
async fn exchange(
    stream: TcpStream,
    view: Arc<View>,
    route: impl Fn(&str) -> Target,
) -> std::io::Result<()> {
    let local = stream.local_addr()?;
    let (r, mut w) = stream.into_split();
    let head = read_head(r).await?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let (mut with_body, mut allow) = (true, "");
    let target = match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {
            let method = req.method.unwrap_or("");
            let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
            let host = (req.headers.iter())
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            with_body = method != "HEAD";
            if method != "GET" && method != "HEAD" {
                allow = "Allow: GET, HEAD\r\n";
                Target::Refused(Response::text(
                    "405 Method Not Allowed",
                    "read-only: GET or HEAD\n",
                ))
            } else if !host_allowed(local.ip(), host.as_deref()) {
                Target::Refused(Response::text(
                    "403 Forbidden",
                    "this listener is on a loopback address: ask for it by address or as localhost\n",
                ))
            } else {
                route(path)
            }
        }
        Ok(httparse::Status::Partial) if head.len() as u64 >= MAX_REQUEST => {
            Target::Refused(Response::text(
                "431 Request Header Fields Too Large",
                "the request head is over 4 KiB\n",
            ))
        }
        Ok(httparse::Status::Partial) | Err(_) => {
            Target::Refused(Response::text("400 Bad Request", "not an HTTP request\n"))
        }
    };
    let response = answer(&view, target).await;
    let mut out = format!(
        "HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.kind,
        response.body.len()
    );
    if with_body {
        out.push_str(&response.body);
    }
    write_all(&mut w, out.as_bytes(), CLIENT_TIMEOUT).await
}

/// Whether a request naming `host` (its Host header) may be answered by a
/// listener on `local`: always, unless `local` is a loopback address; then
/// only for an IP address or localhost (or no Host at all, HTTP/1.0).
fn host_allowed(local: IpAddr, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    if !local.is_loopback() {
        return true;
    }
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// The request head (up to the blank line), at most `MAX_REQUEST` bytes:
/// a scraper sends it at once.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(r: R) -> std::io::Result<Vec<u8>> {
    let mut r = r.take(MAX_REQUEST);
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = r.read(&mut buf).await?;
            head.extend_from_slice(&buf[..n]);
            if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    within(SCRAPE_TIMEOUT, read).await?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_listener_answers_addresses_and_localhost_only() {
        let lo: IpAddr = [127, 0, 0, 1].into();
        for ok in [
            None,
            Some("127.0.0.1:9180"),
            Some("localhost:9180"),
            Some("LOCALHOST"),
            Some("[::1]:9180"),
            Some("10.0.0.5"),
        ] {
            assert!(host_allowed(lo, ok), "{ok:?}");
        }
        for bad in [
            "evil.example:9180",
            "evil.example",
            "127.0.0.1.nip.io:9180",
            "",
        ] {
            assert!(!host_allowed(lo, Some(bad)), "{bad}");
        }
        // A listener on a management address is asked for by its name.
        assert!(host_allowed(
            [10, 0, 0, 5].into(),
            Some("sluice1.mgmt:9180")
        ));
    }
}
