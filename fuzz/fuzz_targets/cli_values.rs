//! The values of the sidecar's flags: webhook URLs, durations, sizes and
//! signals.
//!
//! Checks that nothing panics, and: a webhook URL's password never shows in
//! its redacted form or in an error; its `Authorization` header carries
//! exactly the decoded user and password; its host is something to connect
//! to and a valid `Host` header; a duration written from generated digits
//! parses to its exact value (computed here independently), and a parsed
//! duration reads back from the way messages print it; a signal parses back from the name logs print for it;
//! a size `--max-volume-size` accepts is the size the plain parser reads.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use rekindle_cli::fuzzing;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Input {
    Url(Url),
    RawUrl(String),
    Duration(String),
    /// A duration written from generated parts, with its exact value known.
    ExactDuration {
        whole: u64,
        fraction: Vec<u8>,
        unit: u8,
    },
    Size(String),
    Signal(String),
}

#[derive(Arbitrary, Debug)]
struct Url {
    scheme: bool,
    user: Option<String>,
    /// Written around [`SENTINEL`], so that the password can be recognised.
    password: Option<(String, String)>,
    host: Host,
    port: Option<String>,
    tail: String,
}

/// Part of every generated password.
const SENTINEL: &str = "Zq9";

#[derive(Arbitrary, Debug)]
enum Host {
    Name(String),
    V4([u8; 4]),
    V6(String),
    Loopback,
}

fn render(url: &Url) -> String {
    let mut text = String::from(if url.scheme { "http://" } else { "HTTP://" });
    if let Some(user) = &url.user {
        text.push_str(user);
        if let Some((before, after)) = &url.password {
            text.push(':');
            text.push_str(before);
            text.push_str(SENTINEL);
            text.push_str(after);
        }
        text.push('@');
    }
    match &url.host {
        Host::Name(name) => text.push_str(name),
        Host::V4(o) => text.push_str(&format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        Host::V6(inside) => text.push_str(&format!("[{inside}]")),
        Host::Loopback => text.push_str("127.0.0.1"),
    }
    if let Some(port) = &url.port {
        text.push(':');
        text.push_str(port);
    }
    text.push_str(&url.tail);
    text
}

/// The user info as written, split as the parser splits it: the authority
/// ends at the first `/`, `?` or `#` after the scheme, and the user info at
/// its last `@`; the password follows the first `:`.
fn credentials(text: &str) -> Option<(&str, Option<&str>)> {
    let rest = text.get(7..)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (info, _) = rest[..end].rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (info, None),
    })
}

fn check_url(text: &str) {
    // The sentinel stands for the password when it is written once, inside
    // the password as the parser reads it (a password holding an unencoded
    // `/` ends the authority early: the rest of it is then a path, not a secret).
    let password_known = text.matches(SENTINEL).count() == 1
        && credentials(text)
            .and_then(|(_, password)| password)
            .is_some_and(|p| p.contains(SENTINEL));
    match fuzzing::parse_webhook_url(text) {
        Err(message) => {
            if password_known {
                assert!(
                    !message.contains(SENTINEL),
                    "an error shows the password: {message}"
                );
            }
        }
        Ok(url) => {
            // The redacted form is exactly the URL rebuilt without the password.
            let expected = match credentials(text) {
                None => format!("http://{}{}", url.authority, url.path_and_query),
                Some((user, None)) => {
                    format!("http://{user}@{}{}", url.authority, url.path_and_query)
                }
                Some((user, Some(_))) => {
                    format!(
                        "http://{user}:xxxxx@{}{}",
                        url.authority, url.path_and_query
                    )
                }
            };
            assert_eq!(url.redacted, expected, "{text:?}");
            if password_known {
                assert!(!url.redacted.contains(SENTINEL), "{}", url.redacted);
            }
            assert!(
                !url.connect_host.is_empty(),
                "nothing to connect to: {text:?}"
            );
            assert!(url.port != 0);
            assert!(url.path_and_query.starts_with('/'), "{url:?}");
            assert!(
                http::HeaderValue::from_str(&url.authority).is_ok(),
                "{url:?}"
            );
            assert!(
                url.path_and_query
                    .parse::<http::uri::PathAndQuery>()
                    .is_ok(),
                "{url:?}"
            );
            match (credentials(text), &url.authorization) {
                (None, None) => {}
                (Some((user, password)), Some(header)) => {
                    let encoded = header.strip_prefix(b"Basic ").expect("basic auth");
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .expect("base64");
                    let mut want = percent_decode(user);
                    want.push(b':');
                    want.extend(percent_decode(password.unwrap_or("")));
                    assert_eq!(decoded, want, "{text:?}");
                }
                (written, header) => panic!("credentials {written:?} but header {header:?}"),
            }
        }
    }
}

/// `%XX` to the byte; the parser refuses any other use of `%` in credentials.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit) {
                let digits = std::str::from_utf8(hex).expect("ASCII");
                out.push(u8::from_str_radix(digits, 16).expect("hex"));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fuzz_target!(|input: Input| match input {
    Input::Url(url) => {
        check_url(&render(&url));
    }
    Input::RawUrl(text) => check_url(&text),
    Input::Duration(text) => {
        let parsed = fuzzing::parse_duration(&text);
        if let Ok(d) = parsed {
            let printed = fuzzing::format_duration(d);
            assert_eq!(
                fuzzing::parse_duration(&printed),
                Ok(d),
                "{text:?} printed as {printed:?}"
            );
        }
        for bounded in fuzzing::parse_bounded_durations(&text) {
            if let Ok(d) = bounded {
                assert_eq!(parsed, Ok(d));
            }
        }
    }
    Input::ExactDuration {
        whole,
        fraction,
        unit,
    } => {
        const UNITS: [(&str, u128); 7] = [
            ("ns", 1),
            ("us", 1_000),
            ("\u{b5}s", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
        ];
        let (name, scale) = UNITS[usize::from(unit) % UNITS.len()];
        // At most 20 digits, so that the reference below computes in u128.
        let digits: String = fraction
            .iter()
            .take(20)
            .map(|d| char::from(b'0' + d % 10))
            .collect();
        let text = format!("{whole}.{digits}{name}");
        let numerator: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().expect("digits")
        };
        let denominator = 10u128.pow(digits.len() as u32);
        // Go's rule: whole units exactly, the fraction's nanoseconds rounded down.
        let nanos = u128::from(whole) * scale + numerator * scale / denominator;
        let expected = u64::try_from(nanos / 1_000_000_000)
            .ok()
            .map(|secs| Duration::new(secs, (nanos % 1_000_000_000) as u32));
        match (fuzzing::parse_duration(&text), expected) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "{text}"),
            (Err(_), None) => {}
            (got, want) => panic!("{text}: parsed {got:?}, exact value {want:?}"),
        }
    }
    Input::Size(text) => {
        let (plain, volume) = fuzzing::parse_size(&text);
        if let Ok(v) = volume {
            assert_eq!(plain, Ok(v));
        }
    }
    Input::Signal(text) => {
        if let Ok((number, name)) = fuzzing::parse_signal(&text) {
            assert_eq!(fuzzing::parse_signal(&name), Ok((number, name.clone())));
            assert_eq!(
                fuzzing::parse_signal(&number.to_string()),
                Ok((number, name))
            );
        }
    }
});
