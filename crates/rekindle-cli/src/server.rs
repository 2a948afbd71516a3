//! The small HTTP server behind `--listen`: metrics, liveness and readiness.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Which watched directories have not been read yet.
#[derive(Debug, Default)]
pub struct Readiness {
    unread: Mutex<BTreeSet<PathBuf>>,
}

impl Readiness {
    pub fn new(dirs: &[PathBuf]) -> Readiness {
        Readiness {
            unread: Mutex::new(dirs.iter().cloned().collect()),
        }
    }

    pub fn mark_read(&self, dir: &Path) {
        self.unread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(dir);
    }

    /// `None` when ready, else the directories still unread.
    pub fn waiting_for(&self) -> Option<Vec<PathBuf>> {
        let unread = self.unread.lock().unwrap_or_else(PoisonError::into_inner);
        (!unread.is_empty()).then(|| unread.iter().cloned().collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("invalid listen address {0:?}: expected HOST:PORT or :PORT")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `:9533` (every interface), `127.0.0.1:9533`, `[::1]:9533` or
/// `localhost:9533`, as Go's `net.Listen` understands them.
pub fn parse_listen(text: &str) -> Result<Vec<SocketAddr>, ListenError> {
    let invalid = || ListenError::Invalid(text.to_owned());
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| invalid())?;
        // Dual-stack first; the IPv4 fallback is for kernels without IPv6.
        return Ok(vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let addrs: Vec<SocketAddr> = text.to_socket_addrs().map_err(|_| invalid())?.collect();
    if addrs.is_empty() {
        return Err(invalid());
    }
    Ok(addrs)
}

pub async fn bind(text: &str) -> Result<TcpListener, ListenError> {
    let mut last = None;
    for addr in parse_listen(text)? {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(ListenError::Bind {
        addr: text.to_owned(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

#[derive(Debug)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub metrics_path: String,
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn route(endpoints: &Endpoints, path: &str) -> Response<Full<Bytes>> {
    if path == endpoints.metrics_path {
        return respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            endpoints.metrics.render(),
        );
    }
    match path {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match endpoints.readiness.waiting_for() {
            None => respond(StatusCode::OK, "text/plain", "ready\n".into()),
            Some(dirs) => {
                let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: not yet read: {}\n", list.join(", ")),
                )
            }
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// How long a client may take to send a request's headers, and how long an
/// idle keep-alive connection is kept. A scraper or probe sends its request at
/// once; without a limit, a client that sends half a request (or nothing)
/// holds a connection and a file descriptor forever, and enough of them starve
/// the process. hyper only enforces this with a timer set on the builder.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Delays between retries of a failing `accept`. Errors such as EMFILE (no
/// descriptor left) leave the connection queued, so an immediate retry fails
/// again at once: without a pause the loop burns a whole core until some
/// descriptor is freed. Short enough that the server is back within a second.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // The delay of the current streak of accept errors; `None` outside one.
    let mut backoff: Option<Duration> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                if backoff.take().is_some() {
                    tracing::info!("metrics server: accepting connections again");
                }
                stream
            }
            Err(error) => {
                let delay = match backoff {
                    // Once per streak: the same error every 100 ms would flood the log.
                    None => {
                        tracing::warn!(%error, "metrics server: cannot accept connections; retrying with backoff");
                        ACCEPT_BACKOFF_FIRST
                    }
                    Some(delay) => (delay * 2).min(ACCEPT_BACKOFF_MAX),
                };
                backoff = Some(delay);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = route(&endpoints, request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":9533").expect("parse").len(), 2);
        assert_eq!(
            parse_listen("127.0.0.1:80").expect("parse"),
            vec![SocketAddr::from(([127, 0, 0, 1], 80))]
        );
        assert!(parse_listen("nonsense").is_err());
        assert!(parse_listen(":x").is_err());
    }

    #[test]
    fn readiness_tracks_dirs() {
        let r = Readiness::new(&[PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(r.waiting_for().is_some());
        r.mark_read(Path::new("/a"));
        assert_eq!(r.waiting_for(), Some(vec![PathBuf::from("/b")]));
        r.mark_read(Path::new("/b"));
        assert_eq!(r.waiting_for(), None);
    }

    #[test]
    fn routes() {
        let e = Endpoints {
            metrics: Arc::new(Metrics::new(false)),
            readiness: Arc::new(Readiness::new(&[PathBuf::from("/a")])),
            metrics_path: "/metrics".into(),
        };
        assert_eq!(route(&e, "/healthz").status(), StatusCode::OK);
        assert_eq!(
            route(&e, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(route(&e, "/metrics").status(), StatusCode::OK);
        assert_eq!(route(&e, "/nope").status(), StatusCode::NOT_FOUND);
        e.readiness.mark_read(Path::new("/a"));
        assert_eq!(route(&e, "/readyz").status(), StatusCode::OK);
    }
}
