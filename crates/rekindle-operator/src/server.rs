//! HTTP on `--metrics-addr` (Reloader's `:9090`): `/metrics`, `/live`, `/ready`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Every watch has completed its first list.
    pub synced: Arc<AtomicBool>,
}

/// Serves until the task is dropped. Binding is done by the caller so that a
/// taken port is a start-up error, not a log line.
pub async fn serve(listener: tokio::net::TcpListener, health: Health) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .with_state(health);
    axum::serve(listener, app).await
}

/// Binds `addr`, naming it in the error. `[::]` (every interface) falls back to
/// `0.0.0.0` on a node or pod without IPv6.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let error = |addr: SocketAddr, e: std::io::Error| {
        anyhow::anyhow!("cannot listen on {addr} (--metrics-addr): {e}")
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED && no_ipv6(&e) => {
            let v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!(%addr, error = %e, "IPv6 is not available; listening on IPv4 only");
            tokio::net::TcpListener::bind(v4)
                .await
                .map_err(|e| error(v4, e))
        }
        Err(e) => Err(error(addr, e)),
    }
}

/// The errors of binding an IPv6 socket where IPv6 is disabled.
fn no_ipv6(error: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    const EADDRNOTAVAIL: i32 = 99;
    matches!(error.raw_os_error(), Some(EAFNOSUPPORT | EADDRNOTAVAIL))
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    if health.synced.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "initial list not complete")
    }
}
