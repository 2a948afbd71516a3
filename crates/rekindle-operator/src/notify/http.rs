//! One small HTTP(S) client for outbound notifications: POST, a deadline, no
//! redirects (hyper never follows them), TLS with the Mozilla root set built
//! in, so a `FROM scratch` image needs no CA bundle.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
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

/// A reusable client.
#[derive(Clone)]
pub struct Poster {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
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
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        }
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
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| PostError::Request(e.to_string()))?;
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
