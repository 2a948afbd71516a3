//! Verified reloads: after the actions, ask the application whether it runs the new
//! config. `--verify-url` GETs a URL until a 2xx response shows the new digest (in its
//! body or its `X-Config-Digest` header); `--verify-exec` runs a command with
//! `REKINDLE_DIGEST` that must exit 0. Both within `--verify-timeout`.

use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::action::ChangeCtx;
use crate::process::{Children, shell};
use crate::webhook::url::WebhookUrl;

/// The header an application may answer with instead of putting the digest in the body.
pub const DIGEST_HEADER: &str = "x-config-digest";
/// The most of a response body that is searched for the digest.
const MAX_BODY: usize = 1 << 20;
/// Between two GETs: 100 ms, doubling, at most 1 s.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// What to verify, and how long it may take.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    pub url: Option<WebhookUrl>,
    pub exec: Option<String>,
    pub timeout: Duration,
}

/// Runs the checks of a [`VerifyPlan`].
#[derive(Debug)]
pub struct Verifier {
    plan: VerifyPlan,
    children: Children,
}

impl Verifier {
    pub fn new(plan: VerifyPlan, children: Children) -> Verifier {
        Verifier { plan, children }
    }

    /// `Ok` with what was seen, or `Err` with why the reload is not verified (never a
    /// config value: statuses and our own words only).
    pub async fn verify(&self, change: &ChangeCtx) -> Result<String, String> {
        let deadline = Instant::now() + self.plan.timeout;
        let mut seen = Vec::new();
        if let Some(url) = &self.plan.url {
            seen.push(self.verify_url(url, change, deadline).await?);
        }
        if let Some(command) = &self.plan.exec {
            seen.push(self.verify_exec(command, change, deadline).await?);
        }
        Ok(seen.join("; "))
    }

    async fn verify_url(
        &self,
        url: &WebhookUrl,
        change: &ChangeCtx,
        deadline: Instant,
    ) -> Result<String, String> {
        let digest = change.digest.to_string();
        let mut delay = FIRST_RETRY;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let last = match tokio::time::timeout(left, get(url)).await {
                Ok(Ok((status, header, body))) => {
                    let shows = header.as_deref().is_some_and(|h| h.contains(&digest))
                        || body.windows(digest.len()).any(|w| w == digest.as_bytes());
                    if (200..300).contains(&status) && shows {
                        return Ok(format!("{url} shows it (status {status})"));
                    }
                    if (200..300).contains(&status) {
                        format!("status {status}, the digest is not in the answer")
                    } else {
                        format!("status {status}")
                    }
                }
                Ok(Err(error)) => error,
                Err(_) => "no answer".to_owned(),
            };
            if Instant::now() + delay >= deadline {
                return Err(format!(
                    "{url} did not show digest {} within {:?} ({attempts} attempts; last: {last})",
                    change.digest.short(),
                    self.plan.timeout
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    async fn verify_exec(
        &self,
        command: &str,
        change: &ChangeCtx,
        deadline: Instant,
    ) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let env = change.env();
        // Its stderr goes to ours, as it wrote it: the reason an operator needs. The
        // report carries only the exit status.
        // The command line is not repeated: it may hold credentials, and the reason
        // goes into the pod's report.
        match shell::run(&self.children, command, &env, left, false).await {
            Ok(outcome) if outcome.exit.success() => Ok("the verify command exited 0".to_owned()),
            Ok(outcome) => Err(format!("the verify command: {}", outcome.exit)),
            Err(shell::ShellError::Timeout { .. }) => Err(format!(
                "the verify command did not finish within {:?}",
                self.plan.timeout
            )),
            Err(shell::ShellError::Spawn { source, .. }) => {
                Err(format!("the verify command could not start: {source}"))
            }
        }
    }
}

/// One GET: the status, the digest header, and up to [`MAX_BODY`] of the body.
async fn get(url: &WebhookUrl) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let stream = TcpStream::connect((url.connect_host(), url.port))
        .await
        .map_err(|e| format!("connect to {}: {e}", url.authority()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = Request::get(url.path_and_query.as_str())
        .header(HOST, url.authority())
        .header(USER_AGENT, concat!("rekindle/", env!("CARGO_PKG_VERSION")));
    if let Some(auth) = url.authorization() {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    let request = builder
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let header = response
            .headers()
            .get(DIGEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        Ok((status, header, bytes))
    }
    .await;
    driver.abort();
    result
}
