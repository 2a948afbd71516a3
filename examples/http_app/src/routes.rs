//! The HTTP contract: `/health`, `/config`, `/feature/{name}`, plus `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use rekindle::Reloadable;
use serde_json::{Value, json};

use crate::settings::Settings;

#[derive(Clone)]
pub struct AppState {
    pub config: Reloadable<Settings>,
    pub registry: Arc<Registry>,
}

/// The header every response carries: the public digest of the config in force, so a
/// reload can be verified from outside (`rekindle watch --verify-url`).
pub const DIGEST_HEADER: &str = "x-config-digest";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/config", get(config))
        .route("/feature/{name}", get(feature))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            stamp_digest,
        ))
        .with_state(state)
}

/// Adds [`DIGEST_HEADER`] to a response that has none yet (`/config` sets its own, from
/// the same version as its body). The built-in config (no file read yet) has no digest.
async fn stamp_digest(State(state): State<AppState>, mut response: Response) -> Response {
    if !response.headers().contains_key(DIGEST_HEADER)
        && let Some(value) = digest_header(state.config.current().digest())
    {
        response.headers_mut().insert(DIGEST_HEADER, value);
    }
    response
}

fn digest_header(digest: Option<&rekindle::Digest>) -> Option<HeaderValue> {
    digest.and_then(|d| HeaderValue::from_str(&d.to_string()).ok())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "healthy"}))
}

async fn config(State(state): State<AppState>) -> Response {
    // One load: version, digest and settings come from the same config even mid-reload.
    let current = state.config.current();
    let body = Json(json!({
        "version": current.version(),
        "digest": current.digest().map(ToString::to_string),
        "settings": current.value(),
        "last_error": state.config.last_error().map(|e| describe(&*e)),
    }));
    match digest_header(current.digest()) {
        Some(value) => ([(DIGEST_HEADER, value)], body).into_response(),
        None => body.into_response(),
    }
}

/// An error and its causes on one line (`cannot read the config directory: /etc/config:
/// directory does not exist`): a read error keeps the path and the reason in its cause.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn feature(State(state): State<AppState>, Path(name): Path<String>) -> Json<Value> {
    let enabled = state.config.load().feature_enabled(&name);
    Json(json!({"feature": name, "enabled": enabled}))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut body, &state.registry);
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
