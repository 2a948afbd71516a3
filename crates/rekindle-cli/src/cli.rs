//! The command line: `rekindle watch` and `rekindle run`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use rustix::process::Signal;

use crate::duration;
use crate::signal::names as signals;
use crate::size;
use crate::webhook::url::{WebhookUrl, WebhookUrlArg};

const ABOUT: &str = "Hot-reload for Kubernetes ConfigMap and Secret volumes";

const LONG_ABOUT: &str = "\
Hot-reload for Kubernetes ConfigMap and Secret volumes.

When the kubelet swaps new content into a mounted ConfigMap or Secret, nothing
tells the application. rekindle watches the directory, reads it as a whole,
compares a digest of its content with the last one, and on a real change runs
the actions you asked for: exactly one run per update, none when nothing changed.

  rekindle watch   sidecar: signal a process, run a command, call a webhook
  rekindle run     supervisor: start the program as a child, reload or restart it
  rekindle sync    a ConfigMap/Secret from the API into a directory, at once,
                   then the same actions as watch (no kubelet delay)
  rekindle doctor  why a change would not arrive: subPath, env vars, process
                   visibility, inotify limits; with the fix

Called without a subcommand, rekindle also accepts configmap-reload's flags
(--volume-dir, --webhook-url, ...), and with no arguments at all it reads
config-reloader-sidecar's environment (CONFIG_DIR, PROCESS_NAME, RELOAD_SIGNAL),
so that both can be replaced by changing only the image.";

const EXAMPLES: &str = "\
Examples:
  # Sidecar: SIGHUP nginx's master process when its ConfigMap changes
  # (the pod needs `shareProcessNamespace: true`)
  rekindle watch --dir /etc/nginx/conf.d --process-name nginx --signal HUP \\
      --validate 'nginx -t' --listen :9533

  # Sidecar: tell Prometheus to reload
  rekindle watch --dir /etc/prometheus --webhook-url http://127.0.0.1:9090/-/reload

  # Supervisor: nginx as a child, config checked before every reload
  rekindle run --watch /etc/nginx/conf.d --validate 'nginx -t' -- nginx -g 'daemon off;'

  # Supervisor: restart an app that reads its config only at start
  rekindle run --watch /etc/app --on-change restart --stop-timeout 20s -- /app/server";

const WATCH_ABOUT: &str =
    "Watch directories and signal a process, run a command or call a webhook on each change";

const WATCH_LONG_ABOUT: &str = "\
Watch one or more mounted ConfigMap/Secret directories (or plain directories)
and run actions on each real change of their content, in this order: signal,
exec, webhook. A change is a new digest of the whole directory, so a kubelet
update runs the actions once, and a rewrite with identical content not at all.
Nothing runs for the first read at start unless --reload-on-start is given.

With --validate, the command runs first; if it exits non-zero, no action runs
and the tail of its stderr is logged. After it passes, the directory is read
again; content that changed meanwhile is validated instead.

A failed validation or action is tried again without a new change: after 1s,
then twice as long each time, at most a minute apart, until it succeeds or newer
content replaces it (only the failed actions run again).";

const WATCH_EXAMPLES: &str = "\
Examples:
  # SIGHUP every process named `haproxy` that is not a child of another one
  rekindle watch --dir /etc/haproxy --process-name haproxy

  # SIGUSR1 to the PID written in a pid file (re-read at every change)
  rekindle watch --dir /etc/app --pid-file /run/app.pid --signal USR1

  # Run a command; REKINDLE_DIR and REKINDLE_DIGEST are in its environment
  rekindle watch --dir /etc/app --exec 'curl -fsS -X POST localhost:8080/reload'

  # Call a webhook with basic auth (the password is never logged), JSON logs, metrics
  rekindle watch --dir /etc/app --webhook-url http://admin:secret@127.0.0.1:8080/reload \\
      --webhook-retries 5 --webhook-timeout 3s --log-format json --listen :9533";

const RUN_ABOUT: &str = "Run a program as a child and reload (signal) or restart it on each change";

const RUN_LONG_ABOUT: &str = "\
Start PROGRAM as a child and watch directories. On each real change (after
--validate, if given), either send it --signal (default HUP) or, with
--on-change restart, stop it (--stop-signal, then SIGKILL after --stop-timeout)
and start it again.

rekindle forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT to the
program, reaps the processes it leaves behind (as PID 1, and elsewhere as a
child subreaper), and exits with the program's exit
status (128 + the signal number when the program was killed by a signal). No
shared process namespace is needed.";

const RUN_EXAMPLES: &str = "\
Examples:
  rekindle run --watch /etc/nginx/conf.d --validate 'nginx -t' -- nginx -g 'daemon off;'
  rekindle run --watch /etc/app --watch /etc/app-secret --on-change restart -- /app/server --port 8080";

#[cfg(feature = "kube")]
const SYNC_ABOUT: &str =
    "Write a ConfigMap or Secret from the API into a directory at once, then act like watch";

#[cfg(feature = "kube")]
const SYNC_LONG_ABOUT: &str = "\
Read a ConfigMap or Secret through the Kubernetes API and write it into DIR with
the kubelet's own layout (a timestamped directory, the ..data symlink swapped
atomically, one symlink per key, files with --mode), then keep it in sync: a
change is in DIR within milliseconds, not the kubelet's 60 to 120 seconds.

DIR is watched like a volume: the actions of `rekindle watch` (signal, exec,
webhook, --validate) run on each change, with the same REKINDLE_DIGEST. Without
actions, sync only keeps DIR up to date (for an application that watches DIR
itself, e.g. with the rekindle library).

--once writes DIR and exits: for an init container, so the application starts
with its config. It fails (exit 1) when the object does not exist or may not be
read. Without --once, a missing object is waited for; a deleted one leaves DIR
as it was until it is created again.

The namespace defaults to the pod's own (from the ServiceAccount mount), else to
the kubeconfig's. The ServiceAccount needs get, list and watch on the object:
  rules:
    - apiGroups: [\"\"]
      resources: [\"configmaps\"]      # or secrets
      resourceNames: [\"app-config\"]
      verbs: [\"get\", \"list\", \"watch\"]";

#[cfg(feature = "kube")]
const SYNC_EXAMPLES: &str = "\
Examples:
  # Init container: write the config before the application starts
  rekindle sync --configmap app-config --to /etc/app --once

  # Sidecar: keep /etc/nginx/conf.d in sync and reload nginx at once
  rekindle sync --configmap nginx-conf --to /etc/nginx/conf.d \\
      --process-name nginx --validate 'nginx -t'

  # A Secret from another namespace, files readable by the owner only
  rekindle sync --secret shared/tls --to /etc/tls --mode 0400 --exec 'kill -HUP 1'

  # The supervisor, with the config straight from the API
  rekindle run --sync-configmap app-config --to /etc/app -- /app/server";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "REKINDLE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Least severe level logged.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "info",
        env = "REKINDLE_LOG_LEVEL"
    )]
    pub log_level: LogLevel,
}

#[derive(Debug, Parser)]
#[command(
    name = "rekindle",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = EXAMPLES,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = WATCH_ABOUT, long_about = WATCH_LONG_ABOUT, after_long_help = WATCH_EXAMPLES)]
    Watch(WatchArgs),
    #[command(about = RUN_ABOUT, long_about = RUN_LONG_ABOUT, after_long_help = RUN_EXAMPLES)]
    Run(RunArgs),
    #[cfg(feature = "kube")]
    #[command(about = SYNC_ABOUT, long_about = SYNC_LONG_ABOUT, after_long_help = SYNC_EXAMPLES)]
    Sync(SyncArgs),
    #[command(
        about = crate::doctor::ABOUT,
        long_about = crate::doctor::LONG_ABOUT,
        after_long_help = crate::doctor::EXAMPLES
    )]
    Doctor(crate::doctor::DoctorArgs),
    #[cfg(feature = "kube")]
    #[command(
        about = crate::status::ABOUT,
        long_about = crate::status::LONG_ABOUT,
        after_long_help = crate::status::EXAMPLES
    )]
    Status(crate::status::StatusArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Command run through `sh -c` before any action, e.g. `nginx -t`; a non-zero exit
    /// keeps the current config in force (no action) and is logged with its stderr.
    /// REKINDLE_DIR and REKINDLE_DIGEST are in its environment.
    #[arg(long, value_name = "CMD")]
    pub validate: Option<String>,
    /// How long --validate may run before it is killed and counted as a failure.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::COMMAND_TIMEOUT)]
    pub validate_timeout: Duration,
}

/// Verified reloads: shared by `watch`, `sync` and `run`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// After the actions, GET this URL (http://) until a 2xx answer shows the new digest
    /// in its body or its X-Config-Digest header; a reload not shown within
    /// --verify-timeout counts as failed and is retried.
    #[arg(long, value_name = "URL", value_parser = WebhookUrlArg, help_heading = "Verification")]
    pub verify_url: Option<WebhookUrl>,
    /// After the actions, run this command (`sh -c`, with REKINDLE_DIR and
    /// REKINDLE_DIGEST); exit 0 within --verify-timeout means the reload took.
    #[arg(long, value_name = "CMD", help_heading = "Verification")]
    pub verify_exec: Option<String>,
    /// How long verification may take, retries included.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::WEBHOOK_TIMEOUT, help_heading = "Verification")]
    pub verify_timeout: Duration,
    /// After each outcome, write this pod's annotation rekindle.io/applied: per watched
    /// source, the digest applied, rejected or failed on (never a value), for `rekindle
    /// status`. Needs POD_NAME and POD_NAMESPACE (downward API) and `patch` on pods.
    /// Several rekindle processes may report on one pod: each keeps the others' sources.
    #[cfg(feature = "kube")]
    #[arg(long, help_heading = "Verification")]
    pub report_pod: bool,
}

impl VerifyArgs {
    pub fn plan(&self) -> Option<crate::verify::VerifyPlan> {
        (self.verify_url.is_some() || self.verify_exec.is_some()).then(|| {
            crate::verify::VerifyPlan {
                url: self.verify_url.clone(),
                exec: self.verify_exec.clone(),
                timeout: self.verify_timeout,
            }
        })
    }
}

#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("action")
        .args(["process_name", "pid", "pid_file", "exec", "webhook_url"])
        .required(true)
        .multiple(true)
))]
pub struct WatchArgs {
    /// Directory to watch (a mounted ConfigMap/Secret volume or a plain directory).
    /// Repeat for several; a change in any of them runs the actions.
    #[arg(long = "dir", value_name = "DIR", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,

    #[command(flatten)]
    pub act: ActionArgs,
}

/// The actions and their settings, shared by `watch` and `sync`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").args(["process_name", "pid", "pid_file"])))]
pub struct ActionArgs {
    /// Signal to send: a name (HUP, SIGHUP, USR1) or a number.
    #[arg(long, value_name = "SIG", default_value = "HUP", value_parser = signals::parse_arg, requires = "target", help_heading = "Signal action")]
    pub signal: Signal,
    /// Send the signal to every process with this exact name (compared with
    /// /proc/PID/comm and the basename of argv[0], so names longer than 15 bytes work)
    /// that is not a descendant of another process with that name.
    #[arg(long, value_name = "NAME", help_heading = "Signal action")]
    pub process_name: Option<String>,
    /// Send the signal to this PID: to the process that has it at start (or at the
    /// first change); a different process that gets the PID later is refused.
    #[arg(long, value_name = "PID", help_heading = "Signal action")]
    pub pid: Option<i32>,
    /// Send the signal to the PID written in this file (read at every change, and again
    /// after the process is pinned, so a restart in between is followed).
    #[arg(long, value_name = "FILE", help_heading = "Signal action")]
    pub pid_file: Option<PathBuf>,

    /// Command run through `sh -c`, with REKINDLE_DIR (the changed directory) and
    /// REKINDLE_DIGEST (its content digest) in the environment.
    #[arg(long, value_name = "CMD", help_heading = "Exec action")]
    pub exec: Option<String>,
    /// How long --exec may run before it is killed (with everything it started).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::COMMAND_TIMEOUT, help_heading = "Exec action")]
    pub exec_timeout: Duration,

    /// URL to call (http:// only; `user:pass@` becomes basic auth and is never logged).
    /// Repeat for several.
    #[arg(long = "webhook-url", value_name = "URL", num_args = 1.., value_parser = WebhookUrlArg, help_heading = "Webhook action")]
    pub webhook_url: Vec<WebhookUrl>,
    /// HTTP method.
    #[arg(long, value_name = "METHOD", default_value = "POST", value_parser = parse_method, help_heading = "Webhook action")]
    pub webhook_method: hyper::Method,
    /// The one status code that counts as success. Without it, any 2xx does
    /// (200, 202, 204...). configmap-reload's mode keeps its own default: exactly 200.
    #[arg(
        long,
        value_name = "CODE",
        value_parser = clap::value_parser!(u16).range(100..=599),
        help_heading = "Webhook action"
    )]
    pub webhook_status_code: Option<u16>,
    /// Retries after a failed call (so at most N+1 attempts), with exponential backoff
    /// and jitter. A newer change cancels retries still pending for an older one.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        help_heading = "Webhook action"
    )]
    pub webhook_retries: u32,
    /// Deadline of one call: connect, send, and receive the response status.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::WEBHOOK_TIMEOUT, help_heading = "Webhook action")]
    pub webhook_timeout: Duration,
    /// Delay before the first retry; doubled for each further retry (at most 30s).
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration::WEBHOOK_BACKOFF, help_heading = "Webhook action")]
    pub webhook_backoff: Duration,

    #[command(flatten)]
    pub validate: ValidateArgs,

    #[command(flatten)]
    pub verify: VerifyArgs,

    /// Serve /metrics, /healthz and /readyz on this address (`:9533`, `127.0.0.1:9533`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Run the actions once for the first read at start, too.
    #[arg(long)]
    pub reload_on_start: bool,
    /// Largest total size of one read of a watched directory (all its files), such as
    /// 512Ki, 64Mi, 1Gi. A bigger volume is not applied and the file that crossed the
    /// limit is named in the log.
    #[arg(long, value_name = "SIZE", default_value = "64Mi", value_parser = size::parse_volume_size)]
    pub max_volume_size: u64,
    /// Safety-net interval: re-read the directories this often even without events.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::RESCAN_INTERVAL)]
    pub rescan_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnChange {
    /// Send --signal to the program.
    Signal,
    /// Stop the program and start it again.
    Restart,
}

#[derive(Debug, Clone, Args)]
#[cfg_attr(
    feature = "kube",
    command(group(ArgGroup::new("sync_source").args(["sync_configmap", "sync_secret"]).requires("to")))
)]
pub struct RunArgs {
    /// Directory to watch; repeat for several.
    #[cfg_attr(not(feature = "kube"), arg(required = true))]
    #[cfg_attr(
        feature = "kube",
        arg(required_unless_present_any = ["sync_configmap", "sync_secret"])
    )]
    #[arg(long = "watch", value_name = "DIR", num_args = 1)]
    pub dirs: Vec<PathBuf>,
    /// Read this ConfigMap ([NS/]NAME) through the API, write it into --to before the
    /// program starts, and keep it in sync (see `rekindle sync`); --to is watched too.
    #[cfg(feature = "kube")]
    #[arg(long, value_name = "[NS/]NAME", value_parser = parse_configmap, help_heading = "Sync from the API")]
    pub sync_configmap: Option<rekindle::api::ObjectRef>,
    /// Like --sync-configmap, for a Secret.
    #[cfg(feature = "kube")]
    #[arg(long, value_name = "[NS/]NAME", value_parser = parse_secret, conflicts_with = "sync_configmap", help_heading = "Sync from the API")]
    pub sync_secret: Option<rekindle::api::ObjectRef>,
    /// The directory --sync-configmap / --sync-secret write into.
    #[cfg(feature = "kube")]
    #[arg(
        long,
        value_name = "DIR",
        requires = "sync_source",
        help_heading = "Sync from the API"
    )]
    pub to: Option<PathBuf>,
    /// Mode of the files written (octal; the kubelet's default is 0644).
    #[cfg(feature = "kube")]
    #[arg(long, value_name = "MODE", default_value = "0644", value_parser = crate::sync::parse_mode, help_heading = "Sync from the API")]
    pub mode: u32,
    /// What to do on a change.
    #[arg(long, value_enum, default_value = "signal")]
    pub on_change: OnChange,
    /// Signal sent on a change with `--on-change signal`.
    #[arg(long, value_name = "SIG", default_value = "HUP", value_parser = signals::parse_arg)]
    pub signal: Signal,
    /// Signal that stops the program for a restart.
    #[arg(long, value_name = "SIG", default_value = "TERM", value_parser = signals::parse_arg)]
    pub stop_signal: Signal,
    /// How long to wait after --stop-signal before SIGKILL.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::STOP_TIMEOUT)]
    pub stop_timeout: Duration,
    #[command(flatten)]
    pub validate: ValidateArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Serve /metrics, /healthz and /readyz on this address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Largest total size of one read of a watched directory (all its files), such as
    /// 512Ki, 64Mi, 1Gi. A bigger volume is not applied and the file that crossed the
    /// limit is named in the log.
    #[arg(long, value_name = "SIZE", default_value = "64Mi", value_parser = size::parse_volume_size)]
    pub max_volume_size: u64,
    /// Safety-net interval: re-read the directories this often even without events.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::RESCAN_INTERVAL)]
    pub rescan_interval: Duration,
    /// The program to run, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<OsString>,
}

/// `rekindle sync`'s arguments.
#[cfg(feature = "kube")]
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("object").args(["configmap", "secret"]).required(true)))]
pub struct SyncArgs {
    /// The ConfigMap to sync: NAME (in the pod's namespace) or NAMESPACE/NAME.
    #[arg(long, value_name = "[NS/]NAME", value_parser = parse_configmap)]
    pub configmap: Option<rekindle::api::ObjectRef>,
    /// The Secret to sync: NAME (in the pod's namespace) or NAMESPACE/NAME.
    #[arg(long, value_name = "[NS/]NAME", value_parser = parse_secret)]
    pub secret: Option<rekindle::api::ObjectRef>,
    /// Directory to write into (created if missing; an emptyDir volume in a pod). It
    /// must hold nothing but what sync wrote.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Mode of the files written (octal; the kubelet's default is 0644).
    #[arg(long, value_name = "MODE", default_value = "0644", value_parser = crate::sync::parse_mode)]
    pub mode: u32,
    /// Write the directory once and exit (an init container); runs no action.
    #[arg(long, conflicts_with_all = ["process_name", "pid", "pid_file", "exec", "webhook_url", "validate", "listen", "reload_on_start"])]
    pub once: bool,
    #[command(flatten)]
    pub act: ActionArgs,
}

#[cfg(feature = "kube")]
fn parse_configmap(text: &str) -> Result<rekindle::api::ObjectRef, String> {
    rekindle::api::ObjectRef::parse(rekindle::api::ObjectKind::ConfigMap, text)
        .map_err(|e| e.to_string())
}

#[cfg(feature = "kube")]
fn parse_secret(text: &str) -> Result<rekindle::api::ObjectRef, String> {
    rekindle::api::ObjectRef::parse(rekindle::api::ObjectKind::Secret, text)
        .map_err(|e| e.to_string())
}

pub fn parse_method(text: &str) -> Result<hyper::Method, String> {
    hyper::Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid HTTP method {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn watch_needs_an_action() {
        let err = Cli::try_parse_from(["rekindle", "watch", "--dir", "/x"]).expect_err("no action");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn signal_needs_a_target() {
        let err = Cli::try_parse_from([
            "rekindle", "watch", "--dir", "/x", "--signal", "USR1", "--exec", "true",
        ])
        .expect_err("signal without target");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn watch_full() {
        let cli = Cli::try_parse_from([
            "rekindle",
            "watch",
            "--dir",
            "/a",
            "--dir",
            "/b",
            "--process-name",
            "nginx",
            "--signal",
            "SIGUSR1",
            "--webhook-url",
            "http://127.0.0.1:1/x",
            "--log-format",
            "json",
        ])
        .expect("parse");
        assert_eq!(cli.log.log_format, LogFormat::Json);
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(w.dirs.len(), 2);
        assert_eq!(w.act.signal, Signal::USR1);
        assert_eq!(w.act.webhook_url.len(), 1);
    }

    #[test]
    fn run_takes_the_program_after_dashes() {
        let cli = Cli::try_parse_from([
            "rekindle",
            "run",
            "--watch",
            "/a",
            "--on-change",
            "restart",
            "--",
            "sleep",
            "-x",
        ])
        .expect("parse");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.on_change, OnChange::Restart);
        assert_eq!(
            r.command,
            vec![OsString::from("sleep"), OsString::from("-x")]
        );
    }

    fn watch_with(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["rekindle", "watch", "--dir", "/x", "--exec", "true"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    fn run_with(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["rekindle", "run", "--watch", "/x"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        Cli::try_parse_from(args)
    }

    /// Asserts a usage error of kind ValueValidation whose text names `flag`
    /// and contains `needle`.
    fn assert_refused(result: Result<Cli, clap::Error>, flag: &str, needle: &str) {
        let err = result.expect_err(flag);
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
        let text = err.to_string();
        assert!(text.contains(flag), "{text}");
        assert!(text.contains(needle), "{text}");
    }

    #[test]
    fn duration_flags_are_bounded() {
        assert_refused(
            watch_with(&["--rescan-interval", "0"]),
            "--rescan-interval",
            "at least 1s",
        );
        assert_refused(
            watch_with(&["--rescan-interval", "25h"]),
            "--rescan-interval",
            "at most 24h",
        );
        assert_refused(
            watch_with(&["--webhook-timeout", "0"]),
            "--webhook-timeout",
            "at least 10ms",
        );
        assert_refused(
            watch_with(&["--webhook-timeout", "2h"]),
            "--webhook-timeout",
            "at most 1h",
        );
        assert_refused(
            watch_with(&["--webhook-backoff", "1ms"]),
            "--webhook-backoff",
            "at least 10ms",
        );
        assert_refused(
            watch_with(&["--exec-timeout", "0s"]),
            "--exec-timeout",
            "at least 10ms",
        );
        assert_refused(
            watch_with(&["--validate-timeout", "48h"]),
            "--validate-timeout",
            "at most 24h",
        );
        assert_refused(
            run_with(&["--stop-timeout", "2h"]),
            "--stop-timeout",
            "at most 1h",
        );
        assert_refused(
            run_with(&["--rescan-interval", "0"]),
            "--rescan-interval",
            "at least 1s",
        );
        for flag in [
            "--rescan-interval",
            "--webhook-timeout",
            "--webhook-backoff",
            "--exec-timeout",
            "--validate-timeout",
        ] {
            assert_refused(watch_with(&[flag, "99999999999h"]), flag, "at most");
        }
    }

    #[test]
    fn duration_bounds_are_inclusive() {
        let cli = watch_with(&[
            "--rescan-interval",
            "1s",
            "--webhook-timeout",
            "10ms",
            "--webhook-backoff",
            "1h",
            "--exec-timeout",
            "24h",
        ])
        .expect("parse");
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(w.act.rescan_interval, Duration::from_secs(1));
        assert_eq!(w.act.webhook_timeout, Duration::from_millis(10));
        // Zero is meaningful for --stop-timeout: kill at once.
        let cli = run_with(&["--stop-timeout", "0"]).expect("parse");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.stop_timeout, Duration::ZERO);
    }

    #[test]
    fn webhook_status_code_is_optional() {
        let cli = watch_with(&["--webhook-url", "http://a/"]).expect("parse");
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(w.act.webhook_status_code, None);
        let cli = watch_with(&["--webhook-url", "http://a/", "--webhook-status-code", "202"])
            .expect("parse");
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(w.act.webhook_status_code, Some(202));
        assert_refused(
            watch_with(&["--webhook-status-code", "2000"]),
            "--webhook-status-code",
            "2000",
        );
    }

    #[test]
    fn bad_webhook_url_is_a_usage_error_without_the_password() {
        let err = watch_with(&["--webhook-url", "http://admin:hunter2@app:port/reload"])
            .expect_err("bad port");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(text.contains("--webhook-url"), "{text}");
        assert!(text.contains("port"), "{text}");
        assert!(!text.contains("hunter2"), "the password is shown: {text}");
    }
}
