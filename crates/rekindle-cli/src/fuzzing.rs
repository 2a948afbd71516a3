//! Entry points for the fuzz targets in `fuzz/`, which live outside the
//! workspace and can only call what this crate exports. Each function is a
//! thin wrapper over a private parser, returning plain values so that the
//! targets can check properties (round trips, redaction) without the crate's
//! internal types becoming an API. Not for any other use.

use std::ffi::OsString;
use std::time::Duration;

use crate::duration::{self, Bounds, Human};
use crate::signal::names as signals;
use crate::webhook::url::WebhookUrl;

/// Decides what `rekindle ARGS` would do with environment `env`, in any of the
/// three dialects (native, configmap-reload's flags, config-reloader-sidecar's
/// environment). Starts nothing; `Err` is clap's usage error or help text.
pub fn parse_command_line(args: &[OsString], env: &[(String, String)]) -> Result<(), String> {
    let lookup = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.clone())
    };
    crate::app::parse(args, lookup)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// configmap-reload's `-flag` rewritten as clap's `--flag`.
pub fn go_style_to_clap(args: &[OsString]) -> Vec<OsString> {
    crate::compat::go_style_to_clap(args)
}

/// What a webhook URL parsed into, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedWebhookUrl {
    /// The URL with its password redacted, as logs and metric labels show it.
    pub redacted: String,
    /// The `Host` header.
    pub authority: String,
    /// The address connected to (IPv6 without brackets).
    pub connect_host: String,
    pub port: u16,
    pub path_and_query: String,
    /// The `Authorization` header, if the URL holds credentials.
    pub authorization: Option<Vec<u8>>,
}

/// Parses a `--webhook-url` value; `Err` is the message a user would see.
pub fn parse_webhook_url(text: &str) -> Result<ParsedWebhookUrl, String> {
    let url = WebhookUrl::parse(text).map_err(|error| error.to_string())?;
    Ok(ParsedWebhookUrl {
        redacted: url.to_string(),
        authority: url.authority(),
        connect_host: url.connect_host().to_owned(),
        port: url.port,
        path_and_query: url.path_and_query.clone(),
        authorization: url.authorization().map(|h| h.as_bytes().to_vec()),
    })
}

/// Parses a duration as every duration flag does, before its bounds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|error| error.to_string())
}

/// A duration written back as the messages write it (`1m30s`).
pub fn format_duration(value: Duration) -> String {
    Human(value).to_string()
}

/// The value under each duration flag's bounds, in a fixed order:
/// rescan interval, webhook timeout, webhook backoff, command timeout, stop timeout.
pub fn parse_bounded_durations(text: &str) -> [Result<Duration, String>; 5] {
    let bounded = |bounds: &Bounds| bounds.parse(text).map_err(|error| error.to_string());
    [
        bounded(&duration::RESCAN_INTERVAL),
        bounded(&duration::WEBHOOK_TIMEOUT),
        bounded(&duration::WEBHOOK_BACKOFF),
        bounded(&duration::COMMAND_TIMEOUT),
        bounded(&duration::STOP_TIMEOUT),
    ]
}

/// Parses a byte size (`64Mi`) and, separately, `--max-volume-size`.
pub fn parse_size(text: &str) -> (Result<u64, String>, Result<u64, String>) {
    (
        crate::size::parse(text).map_err(|error| error.to_string()),
        crate::size::parse_volume_size(text),
    )
}

/// Parses a signal name or number; `Ok` is the signal's number and the name
/// that logs print for it.
pub fn parse_signal(text: &str) -> Result<(i32, String), String> {
    signals::parse(text)
        .map(|signal| (signal.as_raw(), signals::name(signal)))
        .map_err(|error| error.to_string())
}

/// The words the command lines understand: subcommand names and `--flag`
/// spellings of the native command line, and configmap-reload's `-flag`
/// spellings, so that a fuzzer can combine them instead of guessing them.
pub fn known_words() -> Vec<String> {
    use clap::CommandFactory as _;
    fn walk(command: &clap::Command, dash: &str, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.push(format!("{dash}{long}"));
            }
            if let Some(short) = arg.get_short() {
                out.push(format!("-{short}"));
            }
        }
        for sub in command.get_subcommands() {
            out.push(sub.get_name().to_owned());
            walk(sub, dash, out);
        }
    }
    let mut words = Vec::new();
    walk(&crate::cli::Cli::command(), "--", &mut words);
    walk(
        &crate::compat::ConfigmapReloadArgs::command(),
        "-",
        &mut words,
    );
    words.sort();
    words.dedup();
    words
}
