//! Webhook URLs: `http://[user[:password]@]host[:port][/path][?query]`, checked
//! once at start, with the credentials turned into a basic-auth header right
//! away (so that nothing about the URL can fail per request) and redacted for
//! logs and metric labels.
//!
//! Only plain `http://` is supported: a sidecar calls the application next to it
//! over loopback, and a TLS stack would triple the size of the binary.
//!
//! The host, port, path and query are checked by `http::Uri`. The credentials
//! are split off first and checked here, because `Uri` only keeps them as part
//! of the authority text and we need them decoded.

use std::ffi::OsStr;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderValue, Uri};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Shown instead of the password, as Go's `URL.Redacted` does: configmap-reload's
/// metric label `webhook` carries the redacted URL, and dashboards match on it.
const REDACTED: &str = "xxxxx";

/// Bytes of the path and query sent percent-encoded: those a request line cannot
/// carry as they are (controls, space, non-ASCII, and the few ASCII characters
/// RFC 3986 excludes). Go's client sends `/caf%C3%A9` for `/café` too, so a URL
/// that worked with configmap-reload keeps working.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Why a webhook URL was refused. Each variant carries the URL as typed, but
/// with the credentials replaced by `xxxxx`: these messages end up in pod logs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://`: `https://`, another scheme, or no scheme at all.
    #[error(
        "webhook URL {0:?} must start with http:// (https is not supported: the sidecar calls its pod over loopback)"
    )]
    Scheme(String),
    /// Nothing between `http://` (or the credentials) and the path.
    #[error("webhook URL {0:?} has no host")]
    NoHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("webhook URL {0:?} has an invalid port: expected a number from 1 to 65535")]
    Port(String),
    /// The user or password holds a character that must be percent-encoded,
    /// or a `%` that does not start a `%XX` escape.
    #[error(
        "webhook URL {url:?}: the user or password holds {problem}; percent-encode such characters (`%25` for `%`, `%40` for `@`)"
    )]
    Credentials { url: String, problem: &'static str },
    /// `http::Uri` refused the rest: a character not allowed in a URL (a space,
    /// a non-ASCII letter), brackets that do not match, too many colons...
    #[error("webhook URL {url:?} is invalid: {reason}")]
    Invalid { url: String, reason: String },
    /// Refused, and an `@` comes after the first `/`, `?` or `#`: most likely
    /// a password holding one of these, which ends the host part early.
    #[error(
        "webhook URL {0:?} is invalid; if its password holds `/`, `?` or `#`, percent-encode them (`%2F`, `%3F`, `%23`)"
    )]
    Delimiter(String),
}

/// A parsed webhook URL. `Display` and `Debug` show it with the password redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Host as written (IPv6 literals keep their brackets).
    host: String,
    pub port: u16,
    /// Path and query, at least `/`; the fragment is dropped (it is never sent).
    pub path_and_query: String,
    /// The user as written (still percent-encoded), for `Display`.
    user: Option<String>,
    has_password: bool,
    /// `Basic base64(user:password)`, marked sensitive.
    authorization: Option<HeaderValue>,
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
            if self.has_password {
                write!(f, ":{REDACTED}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.authority())?;
        f.write_str(&self.path_and_query)
    }
}

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<WebhookUrl, UrlError> {
        Self::parse_parts(text).map_err(|error| {
            if suggests_unencoded_delimiter(text) {
                UrlError::Delimiter(redact_unparsed(text))
            } else {
                error
            }
        })
    }

    fn parse_parts(text: &str) -> Result<WebhookUrl, UrlError> {
        let rest = text
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .and_then(|_| text.get(7..))
            .ok_or_else(|| UrlError::Scheme(redact_unparsed(text)))?;
        let (authority, tail) = split_authority(rest);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((info, hostport)) => (Some(info), hostport),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(UrlError::NoHost(redact_unparsed(text)));
        }

        // Without the credentials, the rest is an ordinary URI; a fragment is
        // dropped by `Uri` itself.
        let tail = utf8_percent_encode(tail, PATH_ESCAPES);
        let uri: Uri =
            format!("http://{hostport}{tail}")
                .parse()
                .map_err(|e: http::uri::InvalidUri| UrlError::Invalid {
                    url: redact_unparsed(text),
                    reason: e.to_string(),
                })?;
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(UrlError::NoHost(redact_unparsed(text)));
        }
        // `Uri` takes anything between brackets (`[]`, `[zz]`) as a host, which
        // would leave nothing to connect to; Go's `url.Parse` refuses them too.
        if let Some(inside) = host.strip_prefix('[') {
            let inside = inside.strip_suffix(']').unwrap_or(inside);
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Invalid {
                    url: redact_unparsed(text),
                    reason: "brackets in the host must hold an IPv6 address".into(),
                });
            }
        }
        let port =
            port_after_host(hostport, host).ok_or_else(|| UrlError::Port(redact_unparsed(text)))?;
        let path = match uri.path() {
            "" => "/",
            path => path,
        };
        let path_and_query = match uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };

        let (user, has_password, authorization) = match userinfo {
            None => (None, false, None),
            Some(info) => {
                check_credentials(info).map_err(|problem| UrlError::Credentials {
                    url: redact_unparsed(text),
                    problem,
                })?;
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let header =
                    basic_auth(user, password.unwrap_or("")).ok_or_else(|| UrlError::Invalid {
                        url: redact_unparsed(text),
                        reason: "the credentials do not form a valid header".into(),
                    })?;
                (Some(user.to_owned()), password.is_some(), Some(header))
            }
        };
        Ok(WebhookUrl {
            host: host.to_owned(),
            port,
            path_and_query,
            user,
            has_password,
            authorization,
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

    /// The `Authorization` header for the URL's credentials, computed once at
    /// parse time and marked sensitive (HTTP/2 and `Debug` leave it out).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }
}

/// clap value parser for `--webhook-url`. clap's own error for a refused value
/// quotes the value as typed, password included; this one names the flag and
/// shows only the redacted URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookUrlArg;

impl clap::builder::TypedValueParser for WebhookUrlArg {
    type Value = WebhookUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<WebhookUrl, clap::Error> {
        let flag = arg.map_or_else(
            || "--webhook-url".to_owned(),
            |a| {
                a.get_long()
                    .map_or_else(|| a.get_id().to_string(), |long| format!("--{long}"))
            },
        );
        let refuse = |why: String| {
            cmd.clone().error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {flag}: {why}"),
            )
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the URL is not valid UTF-8".into()))?;
        WebhookUrl::parse(text).map_err(|e| refuse(e.to_string()))
    }
}

/// Splits `authority[/path][?query][#fragment]` after the authority, which
/// ends at the first `/`, `?` or `#` (RFC 3986, and Go's `url.Parse`).
fn split_authority(rest: &str) -> (&str, &str) {
    rest.find(['/', '?', '#'])
        .and_then(|end| rest.split_at_checked(end))
        .unwrap_or((rest, ""))
}

/// The port written after `host` in `hostport`: 80 when there is none or it is
/// empty (`host:`, as Go accepts), `None` when it is not a number from 1 to 65535.
/// `Uri` is not asked: its `port()` reads an invalid port as no port at all.
fn port_after_host(hostport: &str, host: &str) -> Option<u16> {
    match hostport.strip_prefix(host)? {
        "" | ":" => Some(80),
        rest => {
            let digits = rest.strip_prefix(':')?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok().filter(|&port| port != 0)
        }
    }
}

/// Checks user and password against RFC 3986's `userinfo` (plus `@`, which Go
/// accepts in a password since the host starts after the last one). Returns
/// what is wrong, never the offending character: it is part of a secret.
fn check_credentials(info: &str) -> Result<(), &'static str> {
    const ALLOWED: &[u8] = b"-._~!$&'()*+,;=:@";
    let bytes = info.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            match bytes.get(i + 1..i + 3) {
                Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                    i += 3;
                    continue;
                }
                _ => return Err("a `%` not followed by two hexadecimal digits"),
            }
        }
        if !b.is_ascii() {
            return Err("a non-ASCII character");
        }
        if !(b.is_ascii_alphanumeric() || ALLOWED.contains(&b)) {
            return Err(
                "a character that is not allowed there (such as a space, `\"`, `[` or `]`)",
            );
        }
        i += 1;
    }
    Ok(())
}

/// `Basic base64(user:password)` over the percent-decoded bytes. They need not
/// be UTF-8: Go sends them as they are, and so do we.
fn basic_auth(user: &str, password: &str) -> Option<HeaderValue> {
    let mut raw: Vec<u8> = percent_encoding::percent_decode_str(user).collect();
    raw.push(b':');
    raw.extend(percent_encoding::percent_decode_str(password));
    let mut header = HeaderValue::try_from(format!("Basic {}", BASE64.encode(raw))).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Whether a refused URL has no `@` before the first `/`, `?` or `#` after the
/// scheme but one after it: the sign of a password holding one of those
/// characters unencoded, which ended the host part inside the password.
fn suggests_unencoded_delimiter(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let (authority, tail) = split_authority(rest);
    !authority.contains('@') && tail.contains('@')
}

/// Redaction of a URL we could not parse, for error messages. Everything
/// between the scheme and the last `@` is replaced, user included: where the
/// credentials end is uncertain in a broken URL, and too much hidden is better
/// than a password shown.
fn redact_unparsed(text: &str) -> String {
    let Some((before, after)) = text.rsplit_once('@') else {
        return text.to_owned();
    };
    match before.split_once("://") {
        Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}://{REDACTED}@{after}"),
        _ => format!("{REDACTED}@{after}"),
    }
}

/// RFC 3986: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(u: &WebhookUrl) -> Option<&str> {
        u.authorization()
            .map(|h| h.to_str().expect("base64 is ASCII"))
    }

    /// Found by fuzzing: `Uri` accepts `[]` and `[zz]` as hosts, which left
    /// an empty or bogus host to connect to.
    #[test]
    fn brackets_must_hold_an_ipv6_address() {
        for text in [
            "http://u:p@[]/",
            "http://[zz]/",
            "http://[]:80/x",
            "http://[1.2.3.4]/",
        ] {
            let error = WebhookUrl::parse(text).expect_err(text);
            assert!(
                matches!(error, UrlError::Invalid { .. }),
                "{text}: {error:?}"
            );
            assert!(!error.to_string().contains("u:p"), "{error}");
        }
        let u = WebhookUrl::parse("http://[::1]:9533/reload").expect("IPv6 literal");
        assert_eq!(u.connect_host(), "::1");
        assert_eq!(u.port, 9533);
    }

    #[test]
    fn plain() {
        let u = WebhookUrl::parse("http://127.0.0.1:9090/-/reload").expect("parse");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 9090);
        assert_eq!(u.path_and_query, "/-/reload");
        assert_eq!(u.authorization(), None);
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
        assert_eq!(auth(&u), Some("Basic YWRtaW46c0BjcmV0"));
        let shown = u.to_string();
        assert_eq!(shown, "http://admin:xxxxx@app:8080/reload");
        assert!(!format!("{u:?}").contains("cret"));
        let header = u.authorization().expect("credentials");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("YWRtaW46c0BjcmV0"));
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

    /// Issue 7: a non-ASCII character right after `%` made the decoder slice
    /// inside a UTF-8 sequence, panicking at the first change.
    #[test]
    fn non_ascii_after_percent_is_an_error_not_a_panic() {
        match WebhookUrl::parse("http://u:p%a\u{e9}@host/") {
            Ok(u) => {
                let _ = u.authorization();
                panic!("accepted an invalid escape");
            }
            Err(e) => assert!(!e.to_string().contains("p%a"), "{e}"),
        }
    }

    #[test]
    fn invalid_percent_escapes_are_rejected() {
        for text in [
            "http://u:p%zz@host/",
            "http://u:p%4@host/",
            "http://u:p%@host/",
            "http://u%g1:p@host/",
            "http://u:p\u{e9}@host/",
            "http://u:p w@host/",
        ] {
            assert!(WebhookUrl::parse(text).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn escapes_decode_to_raw_bytes() {
        let u = WebhookUrl::parse("http://a%3Ab:c%25d@host/").expect("parse");
        // "a:b:c%d"
        assert_eq!(auth(&u), Some("Basic YTpiOmMlZA=="));
        // Not UTF-8 once decoded: sent as is, as Go does (b"u:\xff").
        let u = WebhookUrl::parse("http://u:%FF@host/").expect("parse");
        assert_eq!(auth(&u), Some("Basic dTr/"));
        // A user without a password, and an `@` inside the password.
        let u = WebhookUrl::parse("http://user@host/").expect("parse");
        assert_eq!(auth(&u), Some("Basic dXNlcjo="));
        assert_eq!(u.to_string(), "http://user@host/");
        let u = WebhookUrl::parse("http://u:p@ss@host/").expect("parse");
        assert_eq!(auth(&u), Some("Basic dTpwQHNz"));
        assert_eq!(u.to_string(), "http://u:xxxxx@host/");
    }

    #[test]
    fn ipv6() {
        let u = WebhookUrl::parse("http://u:p@[::1]:9090/x").expect("parse");
        assert_eq!(u.connect_host(), "::1");
        assert_eq!(u.port, 9090);
        assert_eq!(u.authority(), "[::1]:9090");
        assert_eq!(u.to_string(), "http://u:xxxxx@[::1]:9090/x");
        let u = WebhookUrl::parse("http://[2001:db8::7]/").expect("parse");
        assert_eq!(u.port, 80);
        assert_eq!(u.authority(), "[2001:db8::7]");
        assert!(WebhookUrl::parse("http://[::1/").is_err());
        assert!(WebhookUrl::parse("http://[::1]x/").is_err());
    }

    #[test]
    fn ports() {
        let u = WebhookUrl::parse("http://host:80/").expect("parse");
        assert_eq!((u.port, u.authority()), (80, "host".to_owned()));
        let u = WebhookUrl::parse("http://host:/").expect("parse");
        assert_eq!(u.port, 80);
        let u = WebhookUrl::parse("HTTP://Host:8080").expect("parse");
        assert_eq!(u.to_string(), "http://Host:8080/");
        for bad in [
            "http://host:65536/",
            "http://host:0/",
            "http://host:-1/",
            "http://host:1:2/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn query_kept_fragment_dropped() {
        let u = WebhookUrl::parse("http://host/p?x=1&y=%20").expect("parse");
        assert_eq!(u.path_and_query, "/p?x=1&y=%20");
        let u = WebhookUrl::parse("http://host/a?b#frag").expect("parse");
        assert_eq!(u.path_and_query, "/a?b");
        let u = WebhookUrl::parse("http://host#frag").expect("parse");
        assert_eq!(u.path_and_query, "/");
        assert_eq!(u.to_string(), "http://host/");
    }

    /// A request line carries neither spaces nor raw UTF-8: such characters
    /// are percent-encoded once, at parse time, as Go's client does.
    #[test]
    fn path_and_query_are_percent_encoded_like_go() {
        let u = WebhookUrl::parse("http://host/caf\u{e9} au lait?q=a b#x y").expect("parse");
        assert_eq!(u.path_and_query, "/caf%C3%A9%20au%20lait?q=a%20b");
        // Escapes already there are kept as they are.
        let u = WebhookUrl::parse("http://host/a%2Fb?c=%26").expect("parse");
        assert_eq!(u.path_and_query, "/a%2Fb?c=%26");
        // The host is not a path: no encoding there.
        assert!(WebhookUrl::parse("http://ho st/").is_err());
        assert!(WebhookUrl::parse("http://h\u{f6}st/").is_err());
    }

    #[test]
    fn errors_never_show_the_password() {
        let mut problems = Vec::new();
        for text in [
            "http://u:hunter2@host:port/",
            "https://u:hunter2@host/",
            "http://u:hunter2@/",
            "http://u:hunter2@ho st/",
            "http://u:hunter2@[::1/",
            "http://u:hunter2\u{e9}@host/",
            "http://u:hun/ter2@host/",
            "http://u:hun?ter2@host/",
            "http://u:hun#ter2@host/",
            "u:hunter2@host",
            "http://u:hun%zzter2@host/",
        ] {
            match WebhookUrl::parse(text) {
                Ok(u) => problems.push(format!("{text}: accepted as {u}")),
                Err(e) if e.to_string().contains("hun") || e.to_string().contains("ter2") => {
                    problems.push(format!("{text}: the error shows the password: {e}"));
                }
                Err(_) => {}
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
