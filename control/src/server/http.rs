//! HTTP on the control thread: Prometheus' `GET /metrics` (`[control]
//! metrics`), and the status page (`[control] http`): `GET /` serves one
//! self-contained page, embedded in the binary, which reads
//! `GET /api/overview` (the typed `Overview` as JSON) every two seconds;
//! `/metrics` is served there too. Read-only: any other method is refused.
//! One request per connection; the request head is parsed by `httparse`.

use super::{bounded, write_all, CLIENT_TIMEOUT, MAX_REQUEST, SCRAPE_TIMEOUT};
use crate::dispatch::model;
use crate::view::View;
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

/// A Prometheus scrape: `/metrics` only.
pub(super) async fn metrics(stream: TcpStream, view: Arc<View>) -> std::io::Result<()> {
    bounded(exchange(stream, view, |view, method, path| {
        match (method, path) {
            ("GET", "/metrics") => prometheus(view),
            _ => Response::text("404 Not Found", "try GET /metrics\n"),
        }
    }))
    .await;
    Ok(())
}

/// The status page, its data, and `/metrics`.
pub(super) async fn page(stream: TcpStream, view: Arc<View>) -> std::io::Result<()> {
    bounded(exchange(stream, view, |view, method, path| {
        if method != "GET" && method != "HEAD" {
            return Response::text("405 Method Not Allowed", "the status page is read-only\n");
        }
        match path.split('?').next().unwrap_or("") {
            "/" | "/index.html" => Response {
                status: "200 OK",
                kind: "text/html; charset=utf-8",
                body: PAGE.to_string(),
            },
            "/api/overview" => Response {
                status: "200 OK",
                kind: "application/json",
                body: serde_json::to_string(&model::overview(view)).unwrap_or_default(),
            },
            "/metrics" => prometheus(view),
            _ => Response::text("404 Not Found", "try GET /, /api/overview or /metrics\n"),
        }
    }))
    .await;
    Ok(())
}

fn prometheus(view: &View) -> Response {
    Response {
        status: "200 OK",
        kind: "text/plain; version=0.0.4",
        body: model::metrics(view).exposition(),
    }
}

/// Reads one request head, answers it with `route`, closes.
async fn exchange(
    stream: TcpStream,
    view: Arc<View>,
    route: impl Fn(&View, &str, &str) -> Response,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let head = read_head(r).await?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let response = match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {
            let (method, path) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
            route(&view, method, path)
        }
        Ok(httparse::Status::Partial) | Err(_) => {
            Response::text("400 Bad Request", "not an HTTP request\n")
        }
    };
    let head = format!(
        "HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.kind,
        response.body.len()
    );
    write_all(&mut w, (head + &response.body).as_bytes(), CLIENT_TIMEOUT).await
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
    tokio::time::timeout(SCRAPE_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(head)
}
