//! One small HTTP(S) client for outbound notifications: POST, a deadline, no
//! redirects (hyper never follows them), TLS with the Mozilla root set built
//! in, so a `FROM scratch` image needs no CA bundle; optionally through an HTTP
//! proxy (`ALERT_WEBHOOK_PROXY`), by a CONNECT tunnel.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;

/// Why a POST did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
}

type Direct = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
type Proxied = Client<hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>;

#[derive(Clone)]
enum Transport {
    Direct(Direct),
    /// Every request goes through a CONNECT tunnel of the proxy (TLS inside it
    /// for `https://` targets).
    Proxied(Proxied),
}

/// A reusable client.
#[derive(Clone)]
pub struct Poster {
    transport: Transport,
    timeout: Duration,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Poster {
    pub fn new(timeout: Duration) -> Poster {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Poster {
            transport: Transport::Direct(Client::builder(TokioExecutor::new()).build(https)),
            timeout,
        }
    }

    /// A client that reaches every URL through the HTTP proxy `proxy`
    /// (`http://[user:password@]host:port`; credentials are sent as
    /// `Proxy-Authorization: Basic`), by a CONNECT tunnel.
    pub fn with_proxy(timeout: Duration, proxy: &str) -> Result<Poster, PostError> {
        let (uri, auth) = proxy_uri(proxy)?;
        let mut tunnel = Tunnel::new(uri, HttpConnector::new());
        if let Some(auth) = auth {
            tunnel = tunnel.with_auth(auth);
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(tunnel);
        Ok(Poster {
            transport: Transport::Proxied(Client::builder(TokioExecutor::new()).build(https)),
            timeout,
        })
    }

    /// POSTs `body` to `url` and returns the response status.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, PostError> {
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(
                http::header::USER_AGENT,
                concat!("rekindle-operator/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PostError::Url(e.to_string()))?;
        let exchange = async {
            let response = match &self.transport {
                Transport::Direct(client) => client.request(request).await,
                Transport::Proxied(client) => client.request(request).await,
            }
            .map_err(|e| PostError::Request(error_chain(&e)))?;
            let status = response.status().as_u16();
            // Drain the body so the connection can be reused.
            let _ = response.into_body().collect().await;
            Ok(status)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| PostError::Timeout(self.timeout))?
    }
}

/// The proxy's address without credentials, and the credentials as a Basic
/// `Proxy-Authorization` value. Only `http://` proxies are supported: the tunnel
/// itself is plain HTTP, whatever is sent through it.
fn proxy_uri(proxy: &str) -> Result<(http::Uri, Option<http::HeaderValue>), PostError> {
    let bad = |why: &str| PostError::Url(format!("ALERT_WEBHOOK_PROXY: {why}"));
    let uri: http::Uri = proxy
        .parse()
        .map_err(|_| bad("not a URL such as http://proxy:3128"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// proxies are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad("no host"))?
        .as_str()
        .to_owned();
    let (credentials, host) = match authority.rsplit_once('@') {
        Some((credentials, host)) => (Some(credentials), host),
        None => (None, authority.as_str()),
    };
    let bare: http::Uri = format!("http://{host}")
        .parse()
        .map_err(|_| bad("invalid host"))?;
    let auth = credentials
        .map(|c| {
            let (user, password) = c.split_once(':').unwrap_or((c, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| bad("credentials are not UTF-8"))
            };
            let plain = format!("{}:{}", decode(user)?, decode(password)?);
            let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, plain);
            let mut value = http::HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| bad("invalid credentials"))?;
            value.set_sensitive(true);
            Ok::<_, PostError>(value)
        })
        .transpose()?;
    Ok((bare, auth))
}

/// An error and its causes on one line (hyper's top-level message alone is "client
/// error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_become_basic_auth_and_leave_the_address() {
        let (uri, auth) = proxy_uri("http://us%40er:p%3Ass@proxy.local:3128").expect("valid");
        assert_eq!(uri, "http://proxy.local:3128/");
        let auth = auth.expect("credentials");
        assert!(auth.is_sensitive());
        // base64("us@er:p:ss")
        assert_eq!(auth.to_str().expect("ascii"), "Basic dXNAZXI6cDpzcw==");
        let (_, none) = proxy_uri("http://proxy:3128").expect("valid");
        assert!(none.is_none());
    }

    #[test]
    fn bad_proxies_are_refused_without_echoing_credentials() {
        for bad in ["https://proxy:443", "proxy:3128", "http://", "not a url"] {
            let error = proxy_uri(bad).expect_err(bad).to_string();
            assert!(
                error.starts_with("invalid URL: ALERT_WEBHOOK_PROXY"),
                "{error}"
            );
        }
        let error = proxy_uri("https://user:secret@proxy")
            .expect_err("https")
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }
}
