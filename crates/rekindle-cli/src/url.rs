//! Webhook URLs: parsing `http://[user:pass@]host[:port][/path][?query]`,
//! turning credentials into a basic-auth header, and redacting them for logs and
//! metric labels.
//!
//! Only plain `http://` is supported: a sidecar calls the application next to it
//! over loopback, and a TLS stack would triple the size of the binary.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "webhook URL {0:?} must start with http:// (https is not supported: the sidecar calls its pod over loopback)"
    )]
    Scheme(String),
    #[error("webhook URL {0:?} has no host")]
    NoHost(String),
    #[error("webhook URL {0:?} has an invalid port")]
    Port(String),
}

/// A parsed webhook URL. `Display` shows it with the password redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Host as written (IPv6 literals keep their brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
    user: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

impl fmt::Display for WebhookUrl {
    /// The URL with the password replaced by `xxxxx`, as Go's `URL.Redacted`
    /// prints it (so that configmap-reload's metric labels keep their values).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if self.password.is_some() {
                f.write_str(":xxxxx")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.authority())?;
        f.write_str(&self.path_and_query)
    }
}

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<WebhookUrl, UrlError> {
        let rest = text
            .strip_prefix("http://")
            .or_else(|| {
                text.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("http://"))
                    .map(|_| &text[7..])
            })
            .ok_or_else(|| UrlError::Scheme(redact_raw(text)))?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let tail = tail.split('#').next().unwrap_or("");
        let path_and_query = if tail.is_empty() {
            "/".to_owned()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_owned()
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (Some(info.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| UrlError::Port(redact_raw(text)))?;
        if host.is_empty() {
            return Err(UrlError::NoHost(redact_raw(text)));
        }
        Ok(WebhookUrl {
            host,
            port,
            path_and_query,
            user,
            password,
        })
    }

    /// `host:port` for the `Host` header (port omitted when it is 80).
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Host without IPv6 brackets, for connecting.
    pub fn connect_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// The `Authorization` header value, if the URL carries credentials.
    pub fn basic_auth(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        let password = self.password.as_deref().unwrap_or("");
        let raw = format!("{}:{}", percent_decode(user), percent_decode(password));
        Some(format!("Basic {}", base64(raw.as_bytes())))
    }
}

fn split_host_port(hostport: &str) -> Option<(String, u16)> {
    if let Some(after) = hostport.strip_prefix('[') {
        let close = after.find(']')?;
        let host = format!("[{}]", &after[..close]);
        let rest = &after[close + 1..];
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, port.parse().ok()?)),
            None if rest.is_empty() => Some((host, 80)),
            None => None,
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, "")) => Some((host.to_owned(), 80)),
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((hostport.to_owned(), 80)),
    }
}

/// Best-effort redaction of a URL we could not parse, for error messages.
fn redact_raw(text: &str) -> String {
    let scheme_end = text.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}xxxxx@{}", &text[..scheme_end], &rest[at + 1..]),
        None => text.to_owned(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let u = WebhookUrl::parse("http://127.0.0.1:9090/-/reload").expect("parse");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 9090);
        assert_eq!(u.path_and_query, "/-/reload");
        assert_eq!(u.basic_auth(), None);
        assert_eq!(u.to_string(), "http://127.0.0.1:9090/-/reload");
    }

    #[test]
    fn defaults_and_query() {
        let u = WebhookUrl::parse("http://localhost?x=1").expect("parse");
        assert_eq!(u.port, 80);
        assert_eq!(u.path_and_query, "/?x=1");
        assert_eq!(u.authority(), "localhost");
        let u = WebhookUrl::parse("http://[::1]:8080/a#frag").expect("parse");
        assert_eq!(u.connect_host(), "::1");
        assert_eq!(u.authority(), "[::1]:8080");
        assert_eq!(u.path_and_query, "/a");
    }

    #[test]
    fn credentials_become_basic_auth_and_are_redacted() {
        let u = WebhookUrl::parse("http://admin:s%40cret@app:8080/reload").expect("parse");
        assert_eq!(u.basic_auth().as_deref(), Some("Basic YWRtaW46c0BjcmV0"));
        let shown = u.to_string();
        assert_eq!(shown, "http://admin:xxxxx@app:8080/reload");
        assert!(!format!("{u:?}").contains("cret"));
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            WebhookUrl::parse("https://u:secret@x/"),
            Err(UrlError::Scheme(s)) if !s.contains("secret")
        ));
        assert!(WebhookUrl::parse("http://:80/").is_err());
        assert!(WebhookUrl::parse("http://host:port/").is_err());
        assert!(WebhookUrl::parse("ftp://host/").is_err());
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
