//! An HTTP service whose settings follow its ConfigMap volume without a restart.
//!
//! `CONFIG_PATH` (default `/etc/config`) is the mounted directory, `PORT` (default 8080)
//! the port. Edit a file there and `GET /config` shows the new version; an invalid edit
//! leaves the old settings in force and shows why in `last_error`.

mod routes;
mod settings;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use rekindle::{Reloadable, WatchOptions};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use settings::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("http_app: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config_path =
        PathBuf::from(std::env::var("CONFIG_PATH").unwrap_or_else(|_| "/etc/config".into()));
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .with_context(|| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 8080,
    };

    let (filter, filter_handle) = reload::Layer::new(EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
        .init();

    let mut registry = Registry::default();
    // Start from the directory when it is valid; otherwise serve defaults (version 0)
    // and say why, and let the watcher bring the config in when it is fixed.
    let config = Reloadable::<Settings>::builder()
        .validate(Settings::validate)
        .metrics(&mut registry)
        .load_or(&config_path, Settings::default());
    let apply_log_level = move |settings: &Settings| {
        let _ = filter_handle.modify(|f| *f = EnvFilter::new(settings.log_level.as_filter()));
    };
    apply_log_level(&config.current());
    config.on_change(move |current| apply_log_level(current));
    let _watch = config
        .watch(&config_path, WatchOptions::default())
        .context("starting the config watcher")?;

    let app = routes::router(routes::AppState {
        config,
        registry: Arc::new(registry),
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("binding port {port}"))?;
    let local = listener.local_addr()?;
    tracing::info!(port = local.port(), config = %config_path.display(), "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving HTTP")
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
