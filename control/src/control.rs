//! The control thread: serves `sluicectl` on a Unix socket and Prometheus on
//! TCP, and watches for SIGINT/SIGTERM. Everything here is non-blocking and
//! polled every few milliseconds; it never touches a worker's state except
//! through atomics.

use crate::report::View;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Control {
    socket_path: PathBuf,
    socket: UnixListener,
    metrics: Option<TcpListener>,
}

impl Control {
    pub fn bind(
        socket_path: &Path,
        metrics: Option<std::net::SocketAddr>,
    ) -> Result<Control, String> {
        if let Some(dir) = socket_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if socket_path.exists() {
            if std::os::unix::net::UnixStream::connect(socket_path).is_ok() {
                return Err(format!(
                    "control socket {} is in use: is another sluice running?",
                    socket_path.display()
                ));
            }
            let _ = std::fs::remove_file(socket_path);
        }
        let socket = UnixListener::bind(socket_path)
            .map_err(|e| format!("cannot bind control socket {}: {e}", socket_path.display()))?;
        let _ = std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o600));
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let metrics = match metrics {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Some(l)
            }
            None => None,
        };
        Ok(Control {
            socket_path: socket_path.to_path_buf(),
            socket,
            metrics,
        })
    }

    /// Serves requests until `stop` is set.
    pub fn run(&self, view: &View, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            while let Ok((stream, _)) = self.socket.accept() {
                let _ = serve_ctl(stream, view);
            }
            if let Some(m) = &self.metrics {
                while let Ok((stream, _)) = m.accept() {
                    let _ = serve_metrics(stream, view);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

fn answer(command: &str, view: &View) -> String {
    match command.trim() {
        "status" => view.status(),
        "stats" => view.stats(),
        "virtual-servers" | "vs" => view.virtual_servers(),
        "neighbors" | "arp" => view.neighbors(),
        "routes" => view.routes(),
        "metrics" => view.metrics(),
        other => format!("error: unknown command {other:?}\n"),
    }
}

fn serve_ctl(stream: std::os::unix::net::UnixStream, view: &View) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(4096).read_line(&mut line)?;
    let mut out = &stream;
    out.write_all(answer(&line, view).as_bytes())
}

fn serve_metrics(mut stream: std::net::TcpStream, view: &View) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(8192).read_line(&mut line)?;
    let (status, body) = if line.starts_with("GET /metrics ") {
        ("200 OK", view.metrics())
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sets `stop` on SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    Ok(stop)
}
