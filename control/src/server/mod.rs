//! The control thread's listeners: `sluicectl` on a Unix socket (`ctl`),
//! Prometheus and the status page on TCP (`http`), each bounded in clients
//! and in time; and the signals (SIGINT/SIGTERM stop, SIGHUP reloads).
//! Transports only read requests and write answers: `dispatch` decides.

mod ctl;
mod http;

use crate::start_error::StartError;
use crate::view::View;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Longest request line accepted, and how long a client may take to send it
/// or read the answer.
const MAX_REQUEST: u64 = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A scraper sends its request at once: a metrics client silent this long
/// is dropped, so idle connections cannot hold the listener's slots.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections served at once per listener: more wait in the kernel's
/// backlog, holding none of the switch's file descriptors, so idle or slow
/// clients can never take those the health checks need. The control socket
/// and the metrics listener have their own, so scrapes cannot lock out
/// `sluicectl`.
const MAX_CLIENTS: usize = 32;
/// How long a listener rests after an accept error (out of descriptors):
/// retrying at once would spin on a socket that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often the stop flag (set by the signal handlers) is looked at.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The control socket's path: created by `bind`, removed on drop.
pub struct SocketPath(PathBuf);

impl SocketPath {
    /// Checks that no other sluice serves `path` and clears a stale socket
    /// (only a socket: any other file there is refused, never removed).
    pub fn claim(path: &Path) -> Result<SocketPath, StartError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| StartError::SocketDirectory {
                dir: dir.to_path_buf(),
                error,
            })?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(StartError::NotASocket(path.to_path_buf()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(StartError::SocketInUse(path.to_path_buf()));
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(SocketPath(path.to_path_buf()))
    }

    /// Binds the socket so that it is mode 0600 before anyone can connect:
    /// bound inside a fresh directory only its owner can enter, restricted,
    /// then renamed into place.
    fn bind(&self) -> Result<UnixListener, StartError> {
        let path = &self.0;
        let fail = |step, error| StartError::SocketBind {
            path: path.clone(),
            step,
            error,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let private = dir.join(format!(".sluice-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(|e| fail("create a private directory", e))?;
        let staged = private.join("sock");
        let bound = UnixListener::bind(&staged)
            .map_err(|e| fail("bind", e))
            .and_then(|l| {
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail("restrict the socket", e))?;
                std::fs::rename(&staged, path)
                    .map_err(|e| fail("move the socket into place", e))?;
                Ok(l)
            });
        let _ = std::fs::remove_dir_all(&private);
        bound
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where the control thread listens (`[control]`).
pub struct Listeners<'a> {
    pub socket: &'a SocketPath,
    /// Prometheus: `GET /metrics`.
    pub metrics: Option<SocketAddr>,
    /// The status page, its data and `/metrics`.
    pub http: Option<SocketAddr>,
}

/// Serves requests until `stop` is set. Must run inside the runtime.
pub async fn serve(
    at: Listeners<'_>,
    view: Arc<View>,
    stop: &AtomicBool,
) -> Result<(), StartError> {
    let unix = at.socket.bind()?;
    let metrics = listen("metrics", at.metrics).await?;
    let page = listen("the status page", at.http).await?;
    tokio::spawn(accept_loop(
        "control socket",
        unix,
        view.clone(),
        ctl::serve,
    ));
    if let Some(metrics) = metrics {
        tokio::spawn(accept_loop("metrics", metrics, view.clone(), http::metrics));
    }
    if let Some(page) = page {
        tokio::spawn(accept_loop("status page", page, view.clone(), http::page));
    }
    let mut tick = tokio::time::interval(STOP_POLL);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if HANGUP.swap(false, Ordering::Relaxed) {
            crate::log("SIGHUP received: reloading the configuration");
            let (running, reloader) = (view.running.clone(), view.reloader.clone());
            tokio::spawn(async move { crate::reload::run(running, reloader).await });
        }
    }
    Ok(())
}

async fn listen(
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(error) => Err(StartError::Listen { what, addr, error }),
    }
}

/// A listening socket the control thread serves.
trait Listener: Send + 'static {
    type Stream: Send + 'static;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept_one(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<tokio::net::TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accepts and serves the clients of one listener, at most `MAX_CLIENTS`
/// at once (the others wait in the kernel's backlog); `serve` bounds each
/// client in time.
/// An accept error (no descriptor left) is logged, once per run of them,
/// and the listener rests for `ACCEPT_BACKOFF`.
async fn accept_loop<L, F, Fut>(what: &'static str, listener: L, view: Arc<View>, serve: F)
where
    L: Listener,
    F: Fn(L::Stream, Arc<View>) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut failing = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept_one().await {
            Ok(stream) => {
                failing = false;
                let client = serve(stream, view.clone());
                tokio::spawn(async move {
                    let _ = client.await;
                    drop(slot);
                });
            }
            Err(e) => {
                if !failing {
                    crate::log(format!("{what}: cannot accept a connection: {e}; retrying"));
                }
                failing = true;
                drop(slot);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Runs one client's exchange, giving up when it takes too long.
async fn bounded(f: impl Future<Output = std::io::Result<()>>) {
    let _ = tokio::time::timeout(CLIENT_TIMEOUT * 2, f).await;
}

/// Reads one request line of at most `MAX_REQUEST` bytes; bytes that are
/// not UTF-8 are replaced, so a malformed request gets an error answer.
async fn read_line<R: AsyncRead + Unpin>(r: R, limit: Duration) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(r.take(MAX_REQUEST));
    within(limit, reader.read_until(b'\n', &mut line)).await?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    within(limit, w.write_all(bytes)).await
}

/// `f`'s outcome, or `TimedOut` once `limit` has passed.
async fn within<T>(
    limit: Duration,
    f: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Sets `stop` on SIGINT or SIGTERM; SIGHUP asks for a reload (the serve
/// loop looks for it every `STOP_POLL`).
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, StartError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(StartError::Signals)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, HANGUP.clone())
        .map_err(StartError::Signals)?;
    Ok(stop)
}

static HANGUP: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));
