//! A loopback proxy in front of the real kube-apiserver that can answer with the errors a
//! busy or failing API server gives: `429 Too Many Requests` (with `Retry-After`) and
//! `500 Internal Server Error`, and can drop every open connection (a watch ends
//! mid-stream, as behind a restarting load balancer).
//!
//! This is the one fake in the cluster tests, and only for these faults: a real 1.20
//! API server cannot be made to answer 429 or 500 to one client on demand (API Priority
//! and Fairness exempts watches there, and nothing makes it fail a request with 500).
//! Everything else is the real server: each request that is not failed is sent to it
//! unchanged (method, path, query, body, `Accept` and `Content-Type`), and its answer,
//! streamed watches included, comes back as it is.
//!
//! Clients use [`FaultProxy::kubeconfig`]: plain HTTP on loopback, no credentials. The
//! proxy forwards with the admin client, so what a client may do is not checked here:
//! the tests using it are about faults, not permissions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the proxy answers instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429 Too Many Requests`, `Retry-After: 1`, reason `TooManyRequests`.
    TooManyRequests,
    /// `500 Internal Server Error`, reason `InternalError`.
    InternalError,
}

impl Fault {
    fn status(self) -> StatusCode {
        match self {
            Fault::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Fault::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Fault::TooManyRequests => "TooManyRequests",
            Fault::InternalError => "InternalError",
        }
    }
}

#[derive(Default)]
struct State {
    /// The fault and until when it lasts.
    fault: Mutex<Option<(Fault, Instant)>>,
    forwarded: AtomicU64,
    failed: AtomicU64,
    /// Every forwarded request, as `METHOD /path?query`, in arrival order.
    log: Mutex<Vec<String>>,
    /// Bumped by [`FaultProxy::cut`]: connections opened before it are closed.
    cuts: tokio::sync::watch::Sender<u64>,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    state: Arc<State>,
    kubeconfig: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to the server `client` talks to, writing its kubeconfig into
    /// `dir`. Needs a tokio runtime.
    pub async fn start(client: kube::Client, dir: &Path) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let kubeconfig = dir.join(format!("kubeconfig-proxy-{}", addr.port()));
        std::fs::write(&kubeconfig, kubeconfig_text(addr))?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(serve(listener, client, state.clone()));
        Ok(FaultProxy {
            state,
            kubeconfig,
            task,
        })
    }

    /// A kubeconfig whose server is this proxy.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Answers every request that arrives within `window` with `fault`.
    pub fn fail(&self, fault: Fault, window: Duration) {
        *self
            .state
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((fault, Instant::now() + window));
    }

    /// Closes every open connection: requests in flight and watches end at once, and
    /// clients must connect again.
    pub fn cut(&self) {
        self.state.cuts.send_modify(|n| *n += 1);
    }

    /// Requests forwarded to the API server so far.
    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::Relaxed)
    }

    /// Every request forwarded so far, as `GET /api/v1/configmaps?watch=true&…`, in
    /// the order they arrived: what a client asked of the API server.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests answered with a fault so far.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("kubeconfig", &self.kubeconfig)
            .field("forwarded", &self.forwarded())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a line of [`FaultProxy::requests`] is a LIST: a GET of a collection
/// (`/api/v1/configmaps`, `/apis/apps/v1/namespaces/NS/deployments`) that is not a
/// watch. A GET of one object, a watch and every other verb are not.
pub fn is_list(line: &str) -> bool {
    let Some(target) = line.strip_prefix("GET ") else {
        return false;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1")
    {
        return false;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return false,
    };
    matches!(rest, [_] | ["namespaces", _, _])
}

fn kubeconfig_text(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: anonymous\n    namespace: default\ncurrent-context: proxy\nusers:\n- name: anonymous\n  user: {{}}\n"
    )
}

async fn serve(listener: TcpListener, client: kube::Client, state: Arc<State>) {
    // Owning the connections' tasks: dropping the set (when the proxy stops) ends them.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (client, state) = (client.clone(), state.clone());
        let mut cuts = state.cuts.subscribe();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handle(client.clone(), state.clone(), request)
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection closes the socket mid-response.
                _ = cuts.changed() => {}
            }
        });
    }
}

type ProxyBody = http_body_util::combinators::UnsyncBoxBody<hyper::body::Bytes, kube::Error>;

async fn handle(
    client: kube::Client,
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let fault = {
        let mut fault = state.fault.lock().unwrap_or_else(PoisonError::into_inner);
        match *fault {
            Some((kind, until)) if Instant::now() < until => Some(kind),
            _ => {
                *fault = None;
                None
            }
        }
    };
    if let Some(fault) = fault {
        state.failed.fetch_add(1, Ordering::Relaxed);
        return Ok(fault_response(fault));
    }
    state.forwarded.fetch_add(1, Ordering::Relaxed);
    state
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!(
            "{} {}",
            request.method(),
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        ));
    Ok(forward(&client, request)
        .await
        .unwrap_or_else(|error| status_response(StatusCode::BAD_GATEWAY, "BadGateway", &error)))
}

async fn forward(
    client: &kube::Client,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, String> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the request: {e}"))?
        .to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = Request::builder().method(parts.method).uri(path);
    for name in [header::ACCEPT, header::CONTENT_TYPE, header::USER_AGENT] {
        if let Some(value) = parts.headers.get(&name) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(kube::client::Body::from(body.to_vec()))
        .map_err(|e| e.to_string())?;
    let response = client.send(upstream).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let mut out = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        // hyper frames the body itself.
        if name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
        {
            out = out.header(name, value);
        }
    }
    out.body(BodyExt::boxed_unsync(body))
        .map_err(|e| e.to_string())
}

fn fault_response(fault: Fault) -> Response<ProxyBody> {
    let mut response = status_response(
        fault.status(),
        fault.reason(),
        "injected by the test's fault proxy",
    );
    if fault == Fault::TooManyRequests {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A `metav1.Status` answer, as the API server gives for an error.
fn status_response(status: StatusCode, reason: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status.as_u16(),
    })
    .to_string();
    let body = http_body_util::Full::new(hyper::body::Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::is_list;

    #[test]
    fn lists_are_gets_of_collections_that_are_not_watches() {
        for list in [
            "GET /api/v1/configmaps?limit=100",
            "GET /api/v1/namespaces",
            "GET /api/v1/namespaces/shop/secrets",
            "GET /apis/apps/v1/deployments?labelSelector=a%3Db",
            "GET /apis/apps/v1/namespaces/shop/deployments?watch=false",
        ] {
            assert!(is_list(list), "{list}");
        }
        for other in [
            "GET /api/v1/configmaps?watch=true&resourceVersion=5",
            "GET /api/v1/namespaces/shop",
            "GET /api/v1/namespaces/shop/secrets/key",
            "GET /apis/coordination.k8s.io/v1/namespaces/rekindle/leases/lock",
            "PATCH /apis/apps/v1/namespaces/shop/deployments",
            "GET /version",
            "GET /apis/apps/v1",
        ] {
            assert!(!is_list(other), "{other}");
        }
    }
}
