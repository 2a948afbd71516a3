//! Drop-in compatibility with the sidecars rekindle replaces.
//!
//! - configmap-reload: no subcommand, its flags (Go style: one or two dashes,
//!   `-flag value` or `-flag=value`), its defaults, and its metric names.
//! - config-reloader-sidecar: no arguments at all, configuration from
//!   `CONFIG_DIR`, `PROCESS_NAME`, `RELOAD_SIGNAL` and `VERBOSE`.
//!
//! Both are translated into a [`WatchPlan`]; the differences in behaviour (one
//! action per real change, timeouts, backoff) are rekindle's and documented in
//! the README.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::{LogArgs, LogFormat, LogLevel, parse_method};
use crate::plan::{MAX_BACKOFF, SignalPlan, Target, WatchPlan};
use crate::webhook::url::{WebhookUrl, WebhookUrlArg};
use crate::webhook::{ExpectStatus, WebhookOptions};

/// configmap-reload's flags that select this mode when they come first.
const CONFIGMAP_RELOAD_FLAGS: &[&str] = &[
    "volume-dir",
    "webhook-url",
    "webhook-method",
    "webhook-status-code",
    "webhook-retries",
    "web.listen-address",
    "web.telemetry-path",
];

/// configmap-reload's command line, with its defaults.
#[derive(Debug, Parser)]
#[command(
    name = "rekindle",
    about = "configmap-reload compatible mode: call webhooks when a mounted ConfigMap/Secret changes",
    disable_version_flag = true
)]
pub struct ConfigmapReloadArgs {
    /// The config map volume directory to watch for updates; may be used multiple times.
    #[arg(long = "volume-dir", value_name = "DIR", required = true)]
    pub volume_dirs: Vec<PathBuf>,
    /// The url to send a request to when the specified config map volume directory has
    /// been updated; may be used multiple times.
    #[arg(long = "webhook-url", value_name = "URL", required = true, value_parser = WebhookUrlArg)]
    pub webhook_urls: Vec<WebhookUrl>,
    /// The HTTP method url to use to send the webhook.
    #[arg(long = "webhook-method", default_value = "POST", value_parser = parse_method)]
    pub webhook_method: hyper::Method,
    /// The HTTP status code expected from the webhook.
    #[arg(long = "webhook-status-code", default_value_t = 200)]
    pub webhook_status_code: u16,
    /// The total number of attempts per change (1 = no retry, 0 = no request).
    #[arg(long = "webhook-retries", default_value_t = 1)]
    pub webhook_retries: u32,
    /// Address to listen on for the metrics page.
    #[arg(long = "web.listen-address", default_value = ":9533")]
    pub listen_address: String,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    pub telemetry_path: String,
    #[command(flatten)]
    pub log: LogArgs,
}

/// How rekindle was invoked.
#[derive(Debug)]
pub enum Invocation {
    /// Our own subcommands.
    Native(Vec<OsString>),
    ConfigmapReload(Vec<OsString>),
    ConfigReloaderSidecar,
}

/// Decides the mode from the arguments (without argv[0]) and the environment.
pub fn detect(args: &[OsString], env: impl Fn(&str) -> Option<String>) -> Invocation {
    let Some(first) = args.first() else {
        return if env("CONFIG_DIR").is_some() {
            Invocation::ConfigReloaderSidecar
        } else {
            Invocation::Native(Vec::new())
        };
    };
    let first = first.to_string_lossy();
    let name = first.trim_start_matches('-');
    let name = name.split('=').next().unwrap_or(name);
    if first.starts_with('-') && CONFIGMAP_RELOAD_FLAGS.contains(&name) {
        Invocation::ConfigmapReload(args.to_vec())
    } else {
        Invocation::Native(args.to_vec())
    }
}

/// Go's flag package accepts `-flag`; clap wants `--flag`. Works on the bytes,
/// so that a value which is not UTF-8 (a directory name, say) passes unchanged.
pub fn go_style_to_clap(args: &[OsString]) -> Vec<OsString> {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let mut out = Vec::with_capacity(args.len());
    let mut value_next = false;
    for arg in args {
        let bytes = arg.as_bytes();
        let is_flag =
            !value_next && bytes.starts_with(b"-") && !bytes.starts_with(b"--") && bytes.len() > 2;
        if is_flag {
            let mut long = Vec::with_capacity(bytes.len() + 1);
            long.push(b'-');
            long.extend_from_slice(bytes);
            out.push(OsString::from_vec(long));
        } else {
            out.push(arg.clone());
        }
        // A flag without `=value` takes the next argument as its value
        // (none of configmap-reload's flags is a boolean).
        value_next =
            !value_next && bytes.starts_with(b"-") && !bytes.contains(&b'=') && bytes != b"--";
    }
    out
}

impl ConfigmapReloadArgs {
    pub fn into_plan(self) -> WatchPlan {
        WatchPlan {
            dirs: self.volume_dirs,
            signal: None,
            exec: None,
            webhooks: self.webhook_urls,
            webhook: WebhookOptions {
                method: self.webhook_method,
                // configmap-reload's exact match, unlike rekindle watch's any-2xx.
                expect_status: ExpectStatus::Exact(self.webhook_status_code),
                attempts: self.webhook_retries,
                // configmap-reload has no timeout at all; a hung webhook would stop
                // every later reload. Ten seconds is our default.
                timeout: Duration::from_secs(10),
                backoff: Duration::from_secs(1),
                max_backoff: MAX_BACKOFF,
            },
            validate: None,
            listen: Some(self.listen_address),
            metrics_path: self.telemetry_path,
            reload_on_start: false,
            configmap_reload_metrics: true,
            rescan_interval: Duration::from_secs(60),
            limits: rekindle::ReadLimits::default(),
            verify: None,
            #[cfg(feature = "kube")]
            report_pod: false,
            #[cfg(feature = "kube")]
            sync: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SidecarEnvError {
    #[error("CONFIG_DIR is empty: set it to one or more comma-separated directories")]
    NoDirs,
    #[error("PROCESS_NAME is required (the name of the process to signal)")]
    NoProcess,
    #[error("RELOAD_SIGNAL: {0}")]
    Signal(String),
}

/// config-reloader-sidecar's environment.
pub fn sidecar_plan(
    env: impl Fn(&str) -> Option<String>,
) -> Result<(WatchPlan, LogArgs), SidecarEnvError> {
    let dirs: Vec<PathBuf> = env("CONFIG_DIR")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        return Err(SidecarEnvError::NoDirs);
    }
    let name = env("PROCESS_NAME")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or(SidecarEnvError::NoProcess)?;
    let signal = match env("RELOAD_SIGNAL").filter(|s| !s.trim().is_empty()) {
        Some(text) => crate::signal::names::parse(&text)
            .map_err(|e| SidecarEnvError::Signal(e.to_string()))?,
        None => rustix::process::Signal::HUP,
    };
    let verbose =
        env("VERBOSE").is_some_and(|v| matches!(v.trim(), "true" | "1" | "TRUE" | "True"));
    let plan = WatchPlan {
        dirs,
        signal: Some(SignalPlan {
            signal,
            target: Target::Name(name),
        }),
        exec: None,
        webhooks: Vec::new(),
        webhook: WebhookOptions {
            method: hyper::Method::POST,
            expect_status: ExpectStatus::Exact(200),
            attempts: 0,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: MAX_BACKOFF,
        },
        validate: None,
        listen: None,
        metrics_path: "/metrics".into(),
        reload_on_start: false,
        configmap_reload_metrics: false,
        rescan_interval: Duration::from_secs(60),
        limits: rekindle::ReadLimits::default(),
        verify: None,
        #[cfg(feature = "kube")]
        report_pod: false,
        #[cfg(feature = "kube")]
        sync: None,
    };
    let log = LogArgs {
        log_format: LogFormat::Text,
        log_level: if verbose {
            LogLevel::Debug
        } else {
            LogLevel::Info
        },
    };
    Ok((plan, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn detection() {
        assert!(matches!(
            detect(&os(&["watch"]), no_env),
            Invocation::Native(_)
        ));
        assert!(matches!(
            detect(&os(&["--help"]), no_env),
            Invocation::Native(_)
        ));
        assert!(matches!(
            detect(
                &os(&["-volume-dir=/x", "-webhook-url", "http://a/"]),
                no_env
            ),
            Invocation::ConfigmapReload(_)
        ));
        assert!(matches!(
            detect(&os(&["--webhook-url", "http://a/"]), no_env),
            Invocation::ConfigmapReload(_)
        ));
        assert!(matches!(detect(&[], no_env), Invocation::Native(_)));
        assert!(matches!(
            detect(&[], |k| (k == "CONFIG_DIR").then(|| "/x".to_owned())),
            Invocation::ConfigReloaderSidecar
        ));
    }

    #[test]
    fn go_flags() {
        assert_eq!(
            go_style_to_clap(&os(&[
                "-volume-dir",
                "/x",
                "-webhook-url=http://a/",
                "--web.listen-address",
                ":1",
                "-webhook-retries",
                "3"
            ])),
            os(&[
                "--volume-dir",
                "/x",
                "--webhook-url=http://a/",
                "--web.listen-address",
                ":1",
                "--webhook-retries",
                "3"
            ])
        );
    }

    /// Found by fuzzing: the flag was rebuilt from a lossy UTF-8 copy, so a
    /// directory name that is not UTF-8 became another directory.
    #[test]
    fn go_flags_keep_bytes_that_are_not_utf8() {
        use std::os::unix::ffi::OsStringExt as _;
        let dir = OsString::from_vec(b"-volume-dir=/etc/caf\xe9".to_vec());
        let value = OsString::from_vec(b"/etc/\xff".to_vec());
        let out = go_style_to_clap(&[dir, OsString::from("-volume-dir"), value.clone()]);
        assert_eq!(
            out[0],
            OsString::from_vec(b"--volume-dir=/etc/caf\xe9".to_vec())
        );
        assert_eq!(out[1], OsString::from("--volume-dir"));
        assert_eq!(out[2], value);
    }

    #[test]
    fn configmap_reload_defaults() {
        let args = ConfigmapReloadArgs::try_parse_from(
            std::iter::once(OsString::from("rekindle")).chain(go_style_to_clap(&os(&[
                "-volume-dir",
                "/etc/a",
                "-volume-dir=/etc/b",
                "-webhook-url",
                "http://127.0.0.1:9090/-/reload",
            ]))),
        )
        .expect("parse");
        let plan = args.into_plan();
        assert_eq!(
            plan.dirs,
            vec![PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]
        );
        assert_eq!(plan.webhook.attempts, 1);
        assert_eq!(plan.webhook.expect_status, ExpectStatus::Exact(200));
        assert_eq!(plan.webhook.method, hyper::Method::POST);
        assert_eq!(plan.listen.as_deref(), Some(":9533"));
        assert_eq!(plan.metrics_path, "/metrics");
        assert!(plan.configmap_reload_metrics);
    }

    #[test]
    fn sidecar_env() {
        let env = |k: &str| match k {
            "CONFIG_DIR" => Some("/etc/a, /etc/b".to_owned()),
            "PROCESS_NAME" => Some("nginx".to_owned()),
            "RELOAD_SIGNAL" => Some("SIGUSR1".to_owned()),
            "VERBOSE" => Some("true".to_owned()),
            _ => None,
        };
        let (plan, log) = sidecar_plan(env).expect("plan");
        assert_eq!(
            plan.dirs,
            vec![PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]
        );
        let signal = plan.signal.expect("signal");
        assert_eq!(signal.signal, rustix::process::Signal::USR1);
        assert_eq!(signal.target, Target::Name("nginx".into()));
        assert_eq!(log.log_level, LogLevel::Debug);
    }

    #[test]
    fn sidecar_env_errors() {
        assert_eq!(
            sidecar_plan(|k| (k == "CONFIG_DIR").then(|| "/x".to_owned())).err(),
            Some(SidecarEnvError::NoProcess)
        );
        assert_eq!(
            sidecar_plan(|k| (k == "CONFIG_DIR").then(|| ",".to_owned())).err(),
            Some(SidecarEnvError::NoDirs)
        );
    }
}
