//! Calling webhooks: one attempt is a fresh HTTP/1.1 connection with a deadline
//! covering connect, request and response; a delivery is a bounded series of
//! attempts with exponential backoff and jitter.
//!
//! Superseding is the caller's job: it drops (aborts) the delivery future when a
//! newer change arrives, which closes the connection and stops the retries.

pub mod url;

use std::fmt;
use std::time::{Duration, Instant};

use bytes_free::empty_body;
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::metrics::Metrics;
use url::WebhookUrl;

/// Which answers count as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectStatus {
    /// Any 2xx. A reload endpoint may well answer 202 Accepted or 204 No
    /// Content; this is `rekindle watch`'s default.
    Success2xx,
    /// Exactly this code: `--webhook-status-code`, and configmap-reload's mode,
    /// whose users rely on its exact match (default 200).
    Exact(u16),
}

impl ExpectStatus {
    /// `Exact` when a code was asked for, else any 2xx.
    pub fn exact_or_2xx(code: Option<u16>) -> ExpectStatus {
        code.map_or(ExpectStatus::Success2xx, ExpectStatus::Exact)
    }

    pub fn accepts(self, status: u16) -> bool {
        match self {
            ExpectStatus::Success2xx => (200..300).contains(&status),
            ExpectStatus::Exact(code) => status == code,
        }
    }
}

impl fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectStatus::Success2xx => f.write_str("2xx"),
            ExpectStatus::Exact(code) => write!(f, "{code}"),
        }
    }
}

/// How to call the webhooks.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub method: hyper::Method,
    /// Which statuses count as success.
    pub expect_status: ExpectStatus,
    /// Total number of attempts per delivery; 0 sends nothing.
    pub attempts: u32,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// Delay before the first retry; doubled for each later one.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// Why one attempt failed; the names are configmap-reload's metric reasons.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The request could not be built (`client_request_create`).
    #[error("could not build the request: {0}")]
    Create(String),
    /// Connecting, sending or reading the answer failed (`client_request_do`).
    #[error("request failed: {0}")]
    Do(String),
    /// No answer within `--webhook-timeout` (counted as `client_request_do`).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// An answer whose status does not count as success (`client_response`).
    #[error("unexpected status {got} (expected {expected})")]
    Status { got: u16, expected: ExpectStatus },
}

impl AttemptError {
    pub fn reason(&self) -> &'static str {
        match self {
            AttemptError::Create(_) => "client_request_create",
            AttemptError::Do(_) | AttemptError::Timeout(_) => "client_request_do",
            AttemptError::Status { .. } => "client_response",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{url}: gave up after {attempts} attempt(s), last error: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: AttemptError,
    },
}

mod bytes_free {
    use http_body_util::Empty;
    use hyper::body::Bytes;

    pub fn empty_body() -> Empty<Bytes> {
        Empty::new()
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request. Returns the status code it got back.
async fn attempt(url: &WebhookUrl, options: &WebhookOptions) -> Result<u16, AttemptError> {
    let stream = TcpStream::connect((url.connect_host(), url.port))
        .await
        .map_err(|e| AttemptError::Do(format!("connect to {}: {e}", url.authority())))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::Do(e.to_string()))?;
    // The connection lives in its own task; aborting it when this attempt ends,
    // or is dropped by a timeout or a newer change, closes the socket at once.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut builder = Request::builder()
        .method(options.method.clone())
        .uri(url.path_and_query.as_str())
        .header(HOST, url.authority())
        .header(USER_AGENT, concat!("rekindle/", env!("CARGO_PKG_VERSION")));
    if options.method != hyper::Method::GET && options.method != hyper::Method::HEAD {
        builder = builder.header(CONTENT_LENGTH, "0");
    }
    if let Some(auth) = url.authorization() {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    let request = builder
        .body(empty_body())
        .map_err(|e| AttemptError::Create(e.to_string()))?;
    let result = sender.send_request(request).await;
    let response = result.map_err(|e| AttemptError::Do(e.to_string()))?;
    Ok(response.status().as_u16())
}

/// Delivers to one URL with retries. Records configmap-reload-style metrics.
pub async fn deliver(
    url: &WebhookUrl,
    options: &WebhookOptions,
    metrics: &Metrics,
) -> Result<(), DeliveryError> {
    let label = url.to_string();
    let mut delay = options.backoff;
    let mut last = None;
    for n in 1..=options.attempts {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(options.timeout, attempt(url, options)).await {
            Ok(Ok(status)) => {
                metrics.webhook_request(&label, Some(status), started.elapsed());
                if options.expect_status.accepts(status) {
                    Ok(())
                } else {
                    Err(AttemptError::Status {
                        got: status,
                        expected: options.expect_status,
                    })
                }
            }
            Ok(Err(e)) => {
                metrics.webhook_request(&label, None, started.elapsed());
                Err(e)
            }
            Err(_) => {
                metrics.webhook_request(&label, None, started.elapsed());
                Err(AttemptError::Timeout(options.timeout))
            }
        };
        match outcome {
            Ok(()) => {
                metrics.webhook_result(&label, true, None);
                tracing::debug!(webhook = %label, attempt = n, "webhook call succeeded");
                return Ok(());
            }
            Err(e) => {
                metrics.webhook_result(&label, false, Some(e.reason()));
                tracing::warn!(webhook = %label, attempt = n, of = options.attempts, error = %e, "webhook call failed");
                last = Some(e);
            }
        }
        if n < options.attempts {
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(options.max_backoff);
        }
    }
    metrics.webhook_result(&label, false, Some("retries_exhausted"));
    Err(DeliveryError::Exhausted {
        url: label,
        attempts: options.attempts,
        last: last.unwrap_or(AttemptError::Create("no attempt made".into())),
    })
}

/// A delay between 50% and 150% of `base`, so that many sidecars updated by the
/// same ConfigMap change do not retry in lockstep.
fn jitter(base: Duration) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    // xorshift32 scramble of the seed
    let mut x = seed | 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    let fraction = f64::from(x % 1000) / 1000.0;
    base.mul_f64(0.5 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(2));
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(3),
                "{d:?}"
            );
        }
    }

    #[test]
    fn reasons_match_configmap_reload() {
        assert_eq!(AttemptError::Do("x".into()).reason(), "client_request_do");
        assert_eq!(
            AttemptError::Status {
                got: 500,
                expected: ExpectStatus::Exact(200)
            }
            .reason(),
            "client_response"
        );
    }

    #[test]
    fn expected_status() {
        let any = ExpectStatus::exact_or_2xx(None);
        assert_eq!(any, ExpectStatus::Success2xx);
        for ok in [200, 202, 204, 299] {
            assert!(any.accepts(ok), "{ok}");
        }
        for bad in [199, 300, 304, 404, 500] {
            assert!(!any.accepts(bad), "{bad}");
        }
        let exact = ExpectStatus::exact_or_2xx(Some(200));
        assert!(exact.accepts(200));
        assert!(!exact.accepts(204));
        assert!(ExpectStatus::Exact(302).accepts(302));
        let error = AttemptError::Status {
            got: 500,
            expected: any,
        };
        assert_eq!(error.to_string(), "unexpected status 500 (expected 2xx)");
        let error = AttemptError::Status {
            got: 204,
            expected: exact,
        };
        assert_eq!(error.to_string(), "unexpected status 204 (expected 200)");
    }
}
