//! The command line and environment of `rekindle-operator`.
//!
//! A Reloader user changes the image and nothing else, so the arguments and
//! environment of a stakater/Reloader v1.4.21 Deployment must mean the same here:
//! all 29 of its flags, with their names, defaults and Go spellings ([`Args`]),
//! and the environment variables it reads ([`Env`]). [`Settings::from_args`] then
//! checks everything once, purely, and resolves it into typed settings; the edge
//! never looks at a raw flag again.
//!
//! How Go's pflag reads a command line, kept here:
//! - a boolean flag is `--flag` (true) or `--flag=VALUE` with a Go boolean word;
//!   `--flag false` does NOT set it to false: `false` is a stray argument, which
//!   Reloader (cobra) ignores, and so do we (with a warning);
//! - a string flag takes `--flag=VALUE` or `--flag VALUE`, where VALUE is the next
//!   argument whatever it is, even `--something`;
//! - a list flag is CSV (quotes group and are removed) and repeats append;
//! - any other flag given twice: the last one wins.
//!
//! `--is-Argo-Rollouts`, `--reload-on-create` and `--reload-on-delete` are strings
//! in Reloader, compared with the exact text `true`; `True` or `1` leave them off
//! (we warn).

pub mod goflag;
pub mod selector;

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::model::{SourceKind, WorkloadKind};

use self::goflag::CsvError;
use self::selector::SelectorError;
use crate::decide::duration::{DurationError, parse_go_duration};

const ABOUT: &str =
    "Rolling restarts when a ConfigMap or Secret changes: a drop-in for stakater/Reloader";

const LONG_ABOUT: &str = "\
Rolls Deployments, DaemonSets, StatefulSets, CronJobs, Jobs and Argo Rollouts when
a ConfigMap, Secret or SecretProviderClass they use changes.

It reads stakater/Reloader's annotations, flags and environment: replace Reloader's
image with this one and change nothing else. It differs where Reloader hurts its
users: no rollouts after a restart or leader change when no data changed, changes
that flap are coalesced (--cooldown), workloads that use only some keys roll only
when those keys change, and the value written on a workload does not let its
readers test guesses of a Secret's content (--hash keyed).

Flags follow Go's conventions, as Reloader's did: booleans are --flag or
--flag=false (not --flag false); lists are comma-separated and may be repeated.";

const ENV_HELP: &str = "\
Environment (as Reloader):
  KUBERNETES_NAMESPACE        watch only this namespace (when --namespaces is not given)
  POD_NAME, POD_NAMESPACE     this pod's name and namespace; required by --enable-ha
  RELOADER_NAMESPACE          the namespace the operator runs in
  RELOADER_DEPLOYMENT_NAME    the operator's Deployment name
  METRICS_COUNT_BY_NAMESPACE  `enabled` adds reloader_reload_executed_total_by_namespace
  ALERT_ON_RELOAD             `true` sends an alert after each rollout
  ALERT_SINK                  slack, teams, gchat, or anything else for plain text
  ALERT_WEBHOOK_URL           where alerts are posted
  ALERT_WEBHOOK_PROXY         HTTP proxy for alerts
  ALERT_ADDITIONAL_INFO       text put before every alert, e.g. the cluster name";

const SCOPE: &str = "Reloader-compatible: what to watch";
const RELOAD: &str = "Reloader-compatible: how to reload";
const NAMES: &str = "Reloader-compatible: annotation names";
const OPERATION: &str = "Reloader-compatible: operation";
const OWN: &str = "rekindle";

/// Reloader's default annotation names, for the ten flags that rename them.
pub mod defaults {
    pub const CONFIGMAP_ANNOTATION: &str = "configmap.reloader.stakater.com/reload";
    pub const SECRET_ANNOTATION: &str = "secret.reloader.stakater.com/reload";
    pub const AUTO_ANNOTATION: &str = "reloader.stakater.com/auto";
    pub const CONFIGMAP_AUTO_ANNOTATION: &str = "configmap.reloader.stakater.com/auto";
    pub const SECRET_AUTO_ANNOTATION: &str = "secret.reloader.stakater.com/auto";
    pub const AUTO_SEARCH_ANNOTATION: &str = "reloader.stakater.com/search";
    pub const SEARCH_MATCH_ANNOTATION: &str = "reloader.stakater.com/match";
    pub const IGNORE_ANNOTATION: &str = "reloader.stakater.com/ignore";
    pub const PAUSE_DEPLOYMENT_ANNOTATION: &str = "deployment.reloader.stakater.com/pause-period";
    pub const PAUSE_DEPLOYMENT_TIME_ANNOTATION: &str = "deployment.reloader.stakater.com/paused-at";
    /// Reloader's HA Lease name.
    pub const LEASE_NAME: &str = "stakater-reloader-lock";
    /// The Secret holding the marker key, in the operator's namespace.
    pub const HASH_KEY_SECRET: &str = "rekindle-operator-hash-key";
}

/// Go's boolean words, for clap.
fn go_bool(text: &str) -> Result<bool, String> {
    goflag::parse_bool(text)
}

/// The raw command line. Reloader's flags keep their Go types (strings stay
/// strings) so that [`Settings::from_args`] can reproduce how Reloader read them.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rekindle-operator",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = ENV_HELP,
    // pflag: a flag given twice keeps the last value.
    args_override_self = true
)]
pub struct Args {
    // ---- what to watch ----
    /// Watch only these namespaces (comma-separated). Without it, KUBERNETES_NAMESPACE,
    /// else all namespaces.
    #[arg(long, value_name = "NS,...", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub namespaces: Vec<String>,

    /// Namespaces never watched (comma-separated); only when watching all namespaces.
    #[arg(long, value_name = "NS,...", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub namespaces_to_ignore: Vec<String>,

    /// Watch only namespaces with these labels: a label selector, or Reloader's legacy
    /// `key:value` and `key:*` items (comma-separated). Only when watching all namespaces.
    #[arg(long, value_name = "SELECTOR", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub namespace_selector: Vec<String>,

    /// Watch only ConfigMaps and Secrets with these labels (same forms as
    /// --namespace-selector).
    #[arg(long, value_name = "SELECTOR", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub resource_label_selector: Vec<String>,

    /// Do not watch this kind of source: `configmaps` or `secrets` (not both).
    #[arg(long, value_name = "KIND", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub resources_to_ignore: Vec<String>,

    /// Never roll these workload kinds: `jobs`, `cronjobs`, or both (comma-separated).
    #[arg(long, value_name = "KIND,...", action = ArgAction::Append, allow_hyphen_values = true, help_heading = SCOPE)]
    pub ignored_workload_types: Vec<String>,

    /// Also roll Argo Rollouts: on only with the exact text `true` (a string, as in Reloader).
    #[arg(long = "is-Argo-Rollouts", value_name = "STRING", default_value = "false", allow_hyphen_values = true, help_heading = SCOPE)]
    pub is_argo_rollouts: String,

    /// Also watch Secrets Store CSI driver SecretProviderClasses.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = SCOPE)]
    pub enable_csi_integration: bool,

    // ---- how to reload ----
    /// Roll every workload that uses a changed source, annotated or not (an explicit
    /// `reloader.stakater.com/auto: "false"` still opts out).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = RELOAD)]
    pub auto_reload_all: bool,

    /// How a workload is rolled: `env-vars` (a `STAKATER_<NAME>_<KIND>` variable) or
    /// `annotations` (a pod template annotation).
    #[arg(long, value_name = "STRATEGY", default_value = "env-vars", allow_hyphen_values = true, help_heading = RELOAD)]
    pub reload_strategy: String,

    /// Also roll when a used source is created: on only with the exact text `true`.
    #[arg(long, value_name = "STRING", default_value = "false", allow_hyphen_values = true, help_heading = RELOAD)]
    pub reload_on_create: String,

    /// Also roll when a used source is deleted: on only with the exact text `true`.
    #[arg(long, value_name = "STRING", default_value = "false", allow_hyphen_values = true, help_heading = RELOAD)]
    pub reload_on_delete: String,

    /// Reloader: treat every existing source as created at start (with
    /// --reload-on-create).
    ///
    /// rekindle always catches up, once, the changes made while it was down, and
    /// rolls nothing whose marker is current.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = RELOAD)]
    pub sync_after_restart: bool,

    /// POST `{"webhook":"update successful"}` here on every change instead of rolling anything.
    #[arg(long, value_name = "URL", default_value = "", hide_default_value = true, allow_hyphen_values = true, help_heading = RELOAD)]
    pub webhook_url: String,

    // ---- annotation names ----
    /// Annotation listing the ConfigMaps (names or regexes) that roll the workload.
    #[arg(long, value_name = "NAME", default_value = defaults::CONFIGMAP_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub configmap_annotation: String,

    /// Annotation listing the Secrets (names or regexes) that roll the workload.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub secret_annotation: String,

    /// Annotation that rolls the workload on any ConfigMap or Secret it uses.
    #[arg(long, value_name = "NAME", default_value = defaults::AUTO_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub auto_annotation: String,

    /// Annotation that rolls the workload on any ConfigMap it uses.
    #[arg(long, value_name = "NAME", default_value = defaults::CONFIGMAP_AUTO_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub configmap_auto_annotation: String,

    /// Annotation that rolls the workload on any Secret it uses.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET_AUTO_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub secret_auto_annotation: String,

    /// Annotation that rolls the workload on used sources carrying the match annotation.
    #[arg(long, value_name = "NAME", default_value = defaults::AUTO_SEARCH_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub auto_search_annotation: String,

    /// Annotation marking a ConfigMap or Secret as found by the search annotation.
    #[arg(long, value_name = "NAME", default_value = defaults::SEARCH_MATCH_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub search_match_annotation: String,

    /// Annotation on a ConfigMap or Secret whose changes never roll anything.
    #[arg(long, value_name = "NAME", default_value = defaults::IGNORE_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub ignore_annotation: String,

    /// Deployment annotation giving how long to keep it paused while it is rolled.
    #[arg(long, value_name = "NAME", default_value = defaults::PAUSE_DEPLOYMENT_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub pause_deployment_annotation: String,

    /// Deployment annotation recording when it was paused.
    #[arg(long, value_name = "NAME", default_value = defaults::PAUSE_DEPLOYMENT_TIME_ANNOTATION, allow_hyphen_values = true, help_heading = NAMES)]
    pub pause_deployment_time_annotation: String,

    // ---- operation ----
    /// Log format: `json`, or text (empty, the default).
    #[arg(long, value_name = "FORMAT", default_value = "", hide_default_value = true, allow_hyphen_values = true, help_heading = OPERATION)]
    pub log_format: String,

    /// Log level: trace, debug, info, warning, error (fatal and panic log as error).
    #[arg(long, value_name = "LEVEL", default_value = "info", allow_hyphen_values = true, help_heading = OPERATION)]
    pub log_level: String,

    /// Run several replicas with a leader elected through a Lease (needs POD_NAME and
    /// POD_NAMESPACE).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = OPERATION)]
    pub enable_ha: bool,

    /// Accepted for compatibility and ignored: rekindle has no pprof server.
    ///
    /// A warning is logged when it is set.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = OPERATION)]
    pub enable_pprof: bool,

    /// Accepted for compatibility and ignored: rekindle has no pprof server.
    #[arg(long, value_name = "ADDR", default_value = ":6060", allow_hyphen_values = true, help_heading = OPERATION)]
    pub pprof_addr: String,

    // ---- rekindle's own ----
    /// Coalesce a workload's rollouts within this time (Go duration, 0s to 1h; 0s: off).
    ///
    /// Per workload: the first change rolls at once; further changes within this
    /// time are coalesced into one trailing rollout with the latest data.
    #[arg(long, value_name = "DURATION", default_value = "10s", help_heading = OWN)]
    pub cooldown: String,

    /// The value written on workloads: `keyed` or `reloader-sha1`.
    ///
    /// `keyed`: HMAC-SHA256 with a key kept in a Secret, over only the keys a
    /// workload uses; readers of workloads cannot test guesses of a Secret's
    /// content against it. `reloader-sha1`: Reloader's exact SHA-1 of all the
    /// data, so that a migration from Reloader rolls nothing.
    #[arg(long, value_enum, value_name = "MODE", default_value = "keyed", help_heading = OWN)]
    pub hash: HashMode,

    /// Secret, in the operator's namespace, that holds the key for `--hash keyed`
    /// (created when missing).
    #[arg(long, value_name = "NAME", default_value = defaults::HASH_KEY_SECRET, help_heading = OWN)]
    pub hash_key_secret: String,

    /// Lease used by --enable-ha (Reloader's name by default, so the two never lead
    /// at once during a migration).
    #[arg(long, value_name = "NAME", default_value = defaults::LEASE_NAME, help_heading = OWN)]
    pub lease_name: String,

    /// Where /metrics, /live and /ready are served: HOST:PORT, or :PORT for every
    /// interface, IPv6 and IPv4 (Reloader's fixed :9090 by default).
    #[arg(long, value_name = "ADDR", default_value = ":9090", help_heading = OWN)]
    pub metrics_addr: String,

    /// Stray arguments, as `false` in `--enable-ha false`: ignored, as Reloader did.
    #[arg(hide = true, value_name = "IGNORED")]
    pub stray: Vec<String>,
}

/// The environment variables Reloader reads, as found (unset is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub kubernetes_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub reloader_namespace: Option<String>,
    pub reloader_deployment_name: Option<String>,
    pub metrics_count_by_namespace: Option<String>,
    pub alert_on_reload: Option<String>,
    pub alert_sink: Option<String>,
    pub alert_webhook_url: Option<String>,
    pub alert_webhook_proxy: Option<String>,
    pub alert_additional_info: Option<String>,
}

impl Env {
    /// Reads the variables through `lookup` (`|name| std::env::var(name).ok()` in
    /// `main`; a map in tests, which then never touch the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Env {
        Env {
            kubernetes_namespace: lookup("KUBERNETES_NAMESPACE"),
            pod_name: lookup("POD_NAME"),
            pod_namespace: lookup("POD_NAMESPACE"),
            reloader_namespace: lookup("RELOADER_NAMESPACE"),
            reloader_deployment_name: lookup("RELOADER_DEPLOYMENT_NAME"),
            metrics_count_by_namespace: lookup("METRICS_COUNT_BY_NAMESPACE"),
            alert_on_reload: lookup("ALERT_ON_RELOAD"),
            alert_sink: lookup("ALERT_SINK"),
            alert_webhook_url: lookup("ALERT_WEBHOOK_URL"),
            alert_webhook_proxy: lookup("ALERT_WEBHOOK_PROXY"),
            alert_additional_info: lookup("ALERT_ADDITIONAL_INFO"),
        }
    }
}

/// A command line or environment that cannot run. Each message names the flag
/// (or variable) and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("{flag}: {source}")]
    List {
        flag: &'static str,
        source: CsvError,
    },
    #[error("--resources-to-ignore: {value:?} is not a resource kind; use configmaps or secrets")]
    ResourceToIgnore { value: String },
    #[error(
        "--resources-to-ignore: give one of configmaps or secrets, not both (got {values:?}); \
         to watch neither, there is nothing for the operator to do"
    )]
    ResourcesToIgnoreBoth { values: Vec<String> },
    #[error(
        "--ignored-workload-types: {value:?} is not a workload type; use jobs, cronjobs, or jobs,cronjobs"
    )]
    IgnoredWorkloadType { value: String },
    #[error("--reload-strategy: {value:?} is not a strategy; use env-vars or annotations")]
    ReloadStrategy { value: String },
    #[error("{flag}: namespace {name:?} {why}")]
    Namespace {
        flag: &'static str,
        name: String,
        why: String,
    },
    #[error("{flag}: {selector:?} is not a label selector: {source}")]
    Selector {
        flag: &'static str,
        selector: String,
        source: SelectorError,
    },
    #[error("{flag}: {value:?} is not an annotation name: {source}")]
    AnnotationName {
        flag: &'static str,
        value: String,
        source: SelectorError,
    },
    #[error("{flag}: {value:?} is not an object name: it {why}")]
    ObjectName {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("--cooldown: {source}")]
    Cooldown { source: DurationError },
    #[error("--cooldown: must be at most 1h (got {value:?})")]
    CooldownTooLong { value: String },
    #[error("--metrics-addr: {value:?} is not an address; use HOST:PORT or :PORT")]
    MetricsAddr { value: String },
    #[error("--webhook-url: {value:?} is not an http:// or https:// URL")]
    WebhookUrl { value: String },
    #[error("--enable-ha needs the {var} environment variable (from the downward API: {field})")]
    HaEnv {
        var: &'static str,
        field: &'static str,
    },
}

/// `--hash`: what the value written on a workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashMode {
    /// HMAC-SHA256 over the used keys' digests, keyed by a secret key.
    Keyed,
    /// Reloader's SHA-1 of all the data, byte for byte.
    ReloaderSha1,
}

/// `--reload-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadStrategy {
    /// A `STAKATER_<NAME>_<KIND>` variable in the container that uses the source.
    EnvVars,
    /// The `reloader.stakater.com/last-reloaded-from` pod template annotation.
    Annotations,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--log-level`, mapped from logrus' levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every namespace (no --namespaces, no KUBERNETES_NAMESPACE), except `ignored`,
    /// and only those matching `selector` when one is given.
    All {
        ignored: BTreeSet<String>,
        selector: Option<String>,
    },
    /// Exactly these namespaces.
    Only(BTreeSet<String>),
}

/// Leader election (`--enable-ha`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSettings {
    pub lease_name: String,
    /// Where the Lease lives: `POD_NAMESPACE`.
    pub lease_namespace: String,
    /// This replica's identity in the Lease: `POD_NAME`.
    pub identity: String,
}

/// Where an alert is posted, and how it is shaped (`ALERT_SINK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSink {
    Slack,
    Teams,
    GoogleChat,
    /// Anything else: the text as plain text, without `*`.
    Raw,
}

/// Alerts after each rollout (`ALERT_ON_RELOAD=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub sink: AlertSink,
    pub webhook_url: String,
    pub proxy: Option<String>,
    /// Put before the text as `<info> : `; set (even empty) when the variable is set,
    /// as Reloader does.
    pub additional_info: Option<String>,
}

/// The ten annotation names the flags can rename; `None` keeps Reloader's default
/// (see [`defaults`]). Another module owns the full set of names and applies these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnotationOverrides {
    pub configmap_reload: Option<String>,
    pub secret_reload: Option<String>,
    pub auto: Option<String>,
    pub configmap_auto: Option<String>,
    pub secret_auto: Option<String>,
    pub auto_search: Option<String>,
    pub search_match: Option<String>,
    pub ignore: Option<String>,
    pub pause_period: Option<String>,
    pub paused_at: Option<String>,
}

/// Everything the command line and environment decide, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub scope: NamespaceScope,
    /// Only ConfigMaps and Secrets matching this label selector are watched.
    pub resource_label_selector: Option<String>,
    /// The kinds of source watched. A SecretProviderClass is listed with
    /// `--enable-csi-integration` (watched through the CSI driver's
    /// SecretProviderClassPodStatuses).
    pub sources: BTreeSet<SourceKind>,
    /// `--ignored-workload-types`.
    pub ignored_workload_types: BTreeSet<WorkloadKind>,
    /// `--is-Argo-Rollouts=true` (exactly): Argo Rollouts are rolled too.
    pub argo_rollouts: bool,
    /// `--reload-strategy`.
    pub strategy: ReloadStrategy,
    /// `--auto-reload-all`.
    pub auto_reload_all: bool,
    /// `--reload-on-create=true` (exactly).
    pub reload_on_create: bool,
    /// `--reload-on-delete=true` (exactly).
    pub reload_on_delete: bool,
    /// `--sync-after-restart`, kept for the edge to decide what it still means.
    pub sync_after_restart: bool,
    /// With a URL, changes are POSTed there and nothing is rolled.
    pub webhook_url: Option<String>,
    /// Annotation names renamed by flags.
    pub annotation_overrides: AnnotationOverrides,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--log-level`.
    pub log_level: LogLevel,
    /// Leader election, with `--enable-ha`.
    pub ha: Option<HaSettings>,
    /// `--hash`.
    pub hash: HashMode,
    /// The marker key's Secret, in [`Settings::operator_namespace`].
    pub hash_key_secret: String,
    /// 0 disables coalescing.
    pub cooldown: Duration,
    /// `--metrics-addr`: `/metrics` and `/live`.
    pub metrics_addr: SocketAddr,
    /// `METRICS_COUNT_BY_NAMESPACE=enabled`.
    pub metrics_by_namespace: bool,
    /// Alerts after each rollout (`ALERT_ON_RELOAD=true` and a webhook URL).
    pub alerts: Option<AlertSettings>,
    /// `POD_NAMESPACE`, else `RELOADER_NAMESPACE`; `None` leaves it to the edge
    /// (the service account's namespace file).
    pub operator_namespace: Option<String>,
    /// `RELOADER_DEPLOYMENT_NAME`.
    pub deployment_name: Option<String>,
    /// Things accepted but worth a line in the log at start (ignored flags, values
    /// Reloader would have read differently from what they seem to say).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Checks `args` and `env` and resolves them. Pure: the environment comes in
    /// as [`Env`].
    pub fn from_args(args: &Args, env: &Env) -> Result<Settings, UsageError> {
        let mut warnings = Vec::new();

        let scope = resolve_scope(args, env, &mut warnings)?;

        let resource_label_selector =
            label_selector("--resource-label-selector", &args.resource_label_selector)?;

        let mut sources = BTreeSet::from([SourceKind::ConfigMap, SourceKind::Secret]);
        if let Some(ignored) = resource_to_ignore(&args.resources_to_ignore)? {
            sources.remove(&ignored);
        }
        if args.enable_csi_integration {
            sources.insert(SourceKind::SecretProviderClass);
        }

        let mut ignored_workload_types = BTreeSet::new();
        for value in list("--ignored-workload-types", &args.ignored_workload_types)? {
            // Exact, lower-case: Reloader compares these case-sensitively.
            let kind = match value.as_str() {
                "jobs" => WorkloadKind::Job,
                "cronjobs" => WorkloadKind::CronJob,
                _ => return Err(UsageError::IgnoredWorkloadType { value }),
            };
            ignored_workload_types.insert(kind);
        }

        let strategy = match args.reload_strategy.as_str() {
            "env-vars" => ReloadStrategy::EnvVars,
            "annotations" => ReloadStrategy::Annotations,
            _ => {
                return Err(UsageError::ReloadStrategy {
                    value: args.reload_strategy.clone(),
                });
            }
        };

        let argo_rollouts = exact_true("--is-Argo-Rollouts", &args.is_argo_rollouts, &mut warnings);
        let reload_on_create =
            exact_true("--reload-on-create", &args.reload_on_create, &mut warnings);
        let reload_on_delete =
            exact_true("--reload-on-delete", &args.reload_on_delete, &mut warnings);

        let webhook_url = match args.webhook_url.as_str() {
            "" => None,
            url => {
                let lower = url.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("http://")
                    .or_else(|| lower.strip_prefix("https://"));
                if rest.is_none_or(str::is_empty) {
                    return Err(UsageError::WebhookUrl {
                        value: url.to_owned(),
                    });
                }
                Some(url.to_owned())
            }
        };

        let annotation_overrides = annotation_overrides(args)?;
        let log_format = log_format(&args.log_format, &mut warnings);
        let log_level = log_level(&args.log_level, &mut warnings);

        if args.enable_pprof {
            warnings.push(format!(
                "--enable-pprof is ignored: rekindle has no pprof server (--pprof-addr {:?} is not opened)",
                args.pprof_addr
            ));
        }

        object_name("--lease-name", &args.lease_name)?;
        let ha = if args.enable_ha {
            let identity = non_empty(&env.pod_name).ok_or(UsageError::HaEnv {
                var: "POD_NAME",
                field: "metadata.name",
            })?;
            let lease_namespace = non_empty(&env.pod_namespace).ok_or(UsageError::HaEnv {
                var: "POD_NAMESPACE",
                field: "metadata.namespace",
            })?;
            Some(HaSettings {
                lease_name: args.lease_name.clone(),
                lease_namespace,
                identity,
            })
        } else {
            None
        };

        object_name("--hash-key-secret", &args.hash_key_secret)?;
        let cooldown = cooldown(&args.cooldown)?;
        let metrics_addr = metrics_addr(&args.metrics_addr)?;

        let alerts = alerts(env, &mut warnings);

        if !args.stray.is_empty() {
            warnings.push(format!(
                "ignored arguments {:?}: a boolean flag takes its value only as --flag=value \
                 (as in Reloader, `--enable-ha false` means --enable-ha=true)",
                args.stray
            ));
        }

        Ok(Settings {
            scope,
            resource_label_selector,
            sources,
            ignored_workload_types,
            argo_rollouts,
            strategy,
            auto_reload_all: args.auto_reload_all,
            reload_on_create,
            reload_on_delete,
            sync_after_restart: args.sync_after_restart,
            webhook_url,
            annotation_overrides,
            log_format,
            log_level,
            ha,
            hash: args.hash,
            hash_key_secret: args.hash_key_secret.clone(),
            cooldown,
            metrics_addr,
            metrics_by_namespace: env.metrics_count_by_namespace.as_deref() == Some("enabled"),
            alerts,
            operator_namespace: non_empty(&env.pod_namespace)
                .or_else(|| non_empty(&env.reloader_namespace)),
            deployment_name: non_empty(&env.reloader_deployment_name),
            warnings,
        })
    }

    /// The workload kinds rolled: all but the ignored ones, and Argo Rollouts only
    /// with `--is-Argo-Rollouts=true`.
    pub fn workload_kinds(&self) -> BTreeSet<WorkloadKind> {
        WorkloadKind::ALL
            .into_iter()
            .filter(|kind| !self.ignored_workload_types.contains(kind))
            .filter(|kind| *kind != WorkloadKind::Rollout || self.argo_rollouts)
            .collect()
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

/// All the items of a repeatable list flag, each occurrence read as CSV.
fn list(flag: &'static str, occurrences: &[String]) -> Result<Vec<String>, UsageError> {
    let mut items = Vec::new();
    for occurrence in occurrences {
        items.extend(
            goflag::split_list(occurrence).map_err(|source| UsageError::List { flag, source })?,
        );
    }
    Ok(items)
}

/// Reloader's precedence: `--namespaces`, else `KUBERNETES_NAMESPACE`, else all.
/// `--namespaces-to-ignore` and `--namespace-selector` apply only to "all" (Reloader
/// drops them silently otherwise; we say so).
fn resolve_scope(
    args: &Args,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<NamespaceScope, UsageError> {
    let mut only = BTreeSet::new();
    for name in list("--namespaces", &args.namespaces)? {
        // Reloader would watch "" as "all namespaces" (a trailing comma widens the
        // scope to the whole cluster); refuse instead.
        let why = if name.is_empty() {
            Err("is empty (a stray comma?)".to_owned())
        } else {
            selector::dns_label(&name)
        };
        if let Err(why) = why {
            return Err(UsageError::Namespace {
                flag: "--namespaces",
                name,
                why,
            });
        }
        only.insert(name);
    }
    if only.is_empty()
        && let Some(name) = non_empty(&env.kubernetes_namespace)
    {
        if let Err(why) = selector::dns_label(&name) {
            return Err(UsageError::Namespace {
                flag: "KUBERNETES_NAMESPACE",
                name,
                why,
            });
        }
        only.insert(name);
    }

    let ignored: BTreeSet<String> = list("--namespaces-to-ignore", &args.namespaces_to_ignore)?
        .into_iter()
        .filter(|name| !name.is_empty())
        .collect();
    if !only.is_empty() {
        if !ignored.is_empty() {
            warnings.push(
                "--namespaces-to-ignore is ignored: it applies only when watching all namespaces"
                    .to_owned(),
            );
        }
        if args.namespace_selector.iter().any(|s| !s.is_empty()) {
            warnings.push(
                "--namespace-selector is ignored: it applies only when watching all namespaces"
                    .to_owned(),
            );
        }
        return Ok(NamespaceScope::Only(only));
    }
    let selector = label_selector("--namespace-selector", &args.namespace_selector)?;
    Ok(NamespaceScope::All { ignored, selector })
}

/// A selector flag: CSV items, Reloader's legacy conversion, then apimachinery's
/// grammar. Empty means "no selector".
fn label_selector(
    flag: &'static str,
    occurrences: &[String],
) -> Result<Option<String>, UsageError> {
    let items = list(flag, occurrences)?;
    let selector = selector::from_legacy_items(&items);
    selector::validate(&selector).map_err(|source| UsageError::Selector {
        flag,
        selector: selector.clone(),
        source,
    })?;
    Ok((!selector.trim().is_empty()).then_some(selector))
}

/// `--resources-to-ignore`: one of `configmaps` or `secrets`, any case (Reloader
/// lower-cases them).
fn resource_to_ignore(occurrences: &[String]) -> Result<Option<SourceKind>, UsageError> {
    let values = list("--resources-to-ignore", occurrences)?;
    let mut kinds = Vec::new();
    for value in &values {
        kinds.push(match value.to_ascii_lowercase().as_str() {
            "configmaps" => SourceKind::ConfigMap,
            "secrets" => SourceKind::Secret,
            _ => {
                return Err(UsageError::ResourceToIgnore {
                    value: value.clone(),
                });
            }
        });
    }
    match kinds.as_slice() {
        [] => Ok(None),
        [kind] => Ok(Some(*kind)),
        _ => Err(UsageError::ResourcesToIgnoreBoth { values }),
    }
}

/// Reloader's string switches are on only for the exact text `true`. A value that
/// looks like it means true (`True`, `1`) is off there, so it is off here too, with
/// a warning; so is a value that is no boolean at all.
fn exact_true(flag: &str, value: &str, warnings: &mut Vec<String>) -> bool {
    if value == "true" {
        return true;
    }
    match goflag::parse_bool(value) {
        Ok(false) => {}
        Ok(true) => warnings.push(format!(
            "{flag}={value} leaves it off: Reloader reads only the exact text \"true\""
        )),
        Err(_) => warnings.push(format!(
            "{flag}={value:?} is not true or false; it stays off"
        )),
    }
    false
}

fn annotation_overrides(args: &Args) -> Result<AnnotationOverrides, UsageError> {
    let name = |flag: &'static str, value: &str, default: &str| {
        selector::label_key(value).map_err(|source| UsageError::AnnotationName {
            flag,
            value: value.to_owned(),
            source,
        })?;
        Ok((value != default).then(|| value.to_owned()))
    };
    Ok(AnnotationOverrides {
        configmap_reload: name(
            "--configmap-annotation",
            &args.configmap_annotation,
            defaults::CONFIGMAP_ANNOTATION,
        )?,
        secret_reload: name(
            "--secret-annotation",
            &args.secret_annotation,
            defaults::SECRET_ANNOTATION,
        )?,
        auto: name(
            "--auto-annotation",
            &args.auto_annotation,
            defaults::AUTO_ANNOTATION,
        )?,
        configmap_auto: name(
            "--configmap-auto-annotation",
            &args.configmap_auto_annotation,
            defaults::CONFIGMAP_AUTO_ANNOTATION,
        )?,
        secret_auto: name(
            "--secret-auto-annotation",
            &args.secret_auto_annotation,
            defaults::SECRET_AUTO_ANNOTATION,
        )?,
        auto_search: name(
            "--auto-search-annotation",
            &args.auto_search_annotation,
            defaults::AUTO_SEARCH_ANNOTATION,
        )?,
        search_match: name(
            "--search-match-annotation",
            &args.search_match_annotation,
            defaults::SEARCH_MATCH_ANNOTATION,
        )?,
        ignore: name(
            "--ignore-annotation",
            &args.ignore_annotation,
            defaults::IGNORE_ANNOTATION,
        )?,
        pause_period: name(
            "--pause-deployment-annotation",
            &args.pause_deployment_annotation,
            defaults::PAUSE_DEPLOYMENT_ANNOTATION,
        )?,
        paused_at: name(
            "--pause-deployment-time-annotation",
            &args.pause_deployment_time_annotation,
            defaults::PAUSE_DEPLOYMENT_TIME_ANNOTATION,
        )?,
    })
}

/// Reloader accepts `json` and the empty string; anything else it logs as
/// unsupported and keeps text. `text` is accepted here without a warning.
fn log_format(value: &str, warnings: &mut Vec<String>) -> LogFormat {
    match value {
        "json" => LogFormat::Json,
        "" | "text" => LogFormat::Text,
        other => {
            warnings.push(format!(
                "--log-format: {other:?} is not supported (json, or empty for text); logging text"
            ));
            LogFormat::Text
        }
    }
}

/// logrus' level names, any case; an unknown one keeps `info`, as in Reloader.
fn log_level(value: &str, warnings: &mut Vec<String>) -> LogLevel {
    match value.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => {
            warnings.push(format!(
                "--log-level: {value:?} is not a level (trace, debug, info, warning, error); logging at info"
            ));
            LogLevel::Info
        }
    }
}

fn object_name(flag: &'static str, value: &str) -> Result<(), UsageError> {
    selector::dns_subdomain(value).map_err(|why| UsageError::ObjectName {
        flag,
        value: value.to_owned(),
        why,
    })
}

const MAX_COOLDOWN: Duration = Duration::from_secs(3600);

fn cooldown(value: &str) -> Result<Duration, UsageError> {
    let cooldown = parse_go_duration(value).map_err(|source| UsageError::Cooldown { source })?;
    if cooldown > MAX_COOLDOWN {
        return Err(UsageError::CooldownTooLong {
            value: value.to_owned(),
        });
    }
    Ok(cooldown)
}

/// `HOST:PORT`, or Go's `:PORT` for every interface: `[::]:PORT`, which Linux binds
/// for IPv6 and IPv4 alike (the server falls back to IPv4 alone where IPv6 is off).
fn metrics_addr(value: &str) -> Result<SocketAddr, UsageError> {
    let bad = || UsageError::MetricsAddr {
        value: value.to_owned(),
    };
    if let Some(port) = value.strip_prefix(':') {
        let port = u16::from_str(port).map_err(|_| bad())?;
        return Ok(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    }
    SocketAddr::from_str(value).map_err(|_| bad())
}

/// Alerts are on only for `ALERT_ON_RELOAD=true` exactly; without a URL Reloader
/// logs an error at every rollout, we warn once and leave them off.
fn alerts(env: &Env, warnings: &mut Vec<String>) -> Option<AlertSettings> {
    if env.alert_on_reload.as_deref() != Some("true") {
        return None;
    }
    let webhook_url = env
        .alert_webhook_url
        .as_deref()
        .map(str::trim)
        .filter(|url| !url.is_empty());
    let Some(webhook_url) = webhook_url else {
        warnings
            .push("ALERT_ON_RELOAD=true but ALERT_WEBHOOK_URL is not set: no alerts".to_owned());
        return None;
    };
    let sink = match env
        .alert_sink
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_lowercase()
        .as_str()
    {
        "slack" => AlertSink::Slack,
        "teams" => AlertSink::Teams,
        "gchat" => AlertSink::GoogleChat,
        _ => AlertSink::Raw,
    };
    Some(AlertSettings {
        sink,
        webhook_url: webhook_url.to_owned(),
        proxy: env
            .alert_webhook_proxy
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        additional_info: env
            .alert_additional_info
            .as_deref()
            .map(|info| info.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::CommandFactory;

    use super::*;

    fn try_args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rekindle-operator").chain(list.iter().copied()))
    }

    fn mk_args(list: &[&str]) -> Args {
        try_args(list).unwrap_or_else(|e| panic!("{list:?} should parse: {e}"))
    }

    fn mk_env(vars: &[(&str, &str)]) -> Env {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(|name| map.get(name).cloned())
    }

    fn settings_with(list: &[&str], vars: &[(&str, &str)]) -> Result<Settings, UsageError> {
        Settings::from_args(&mk_args(list), &mk_env(vars))
    }

    fn settings(list: &[&str]) -> Settings {
        settings_with(list, &[]).unwrap_or_else(|e| panic!("{list:?}: {e}"))
    }

    fn error(list: &[&str]) -> UsageError {
        match settings_with(list, &[]) {
            Ok(s) => panic!("{list:?} should be refused, got {s:?}"),
            Err(e) => e,
        }
    }

    fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
        items.iter().cloned().collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const RELOADER_FLAGS: [&str; 29] = [
        "auto-reload-all",
        "configmap-annotation",
        "secret-annotation",
        "auto-annotation",
        "ignore-annotation",
        "configmap-auto-annotation",
        "secret-auto-annotation",
        "auto-search-annotation",
        "search-match-annotation",
        "pause-deployment-annotation",
        "pause-deployment-time-annotation",
        "log-format",
        "log-level",
        "webhook-url",
        "resources-to-ignore",
        "ignored-workload-types",
        "namespaces",
        "namespaces-to-ignore",
        "namespace-selector",
        "resource-label-selector",
        "is-Argo-Rollouts",
        "reload-strategy",
        "reload-on-create",
        "reload-on-delete",
        "enable-ha",
        "sync-after-restart",
        "enable-pprof",
        "pprof-addr",
        "enable-csi-integration",
    ];

    const OWN_FLAGS: [&str; 5] = [
        "cooldown",
        "hash",
        "hash-key-secret",
        "lease-name",
        "metrics-addr",
    ];

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn exactly_reloaders_flags_and_ours() {
        let mut cmd = Args::command();
        cmd.build();
        let longs: BTreeSet<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        let expected: BTreeSet<&str> = RELOADER_FLAGS
            .into_iter()
            .chain(OWN_FLAGS)
            .chain(["help", "version"])
            .collect();
        assert_eq!(longs, expected);
    }

    #[test]
    fn every_flag_has_help_and_a_group() {
        let cmd = Args::command();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{long} has no help");
            let heading = arg.get_help_heading().unwrap_or_default();
            let own = OWN_FLAGS.contains(&long);
            assert_eq!(heading == OWN, own, "--{long} is under {heading:?}");
            assert!(
                own || heading.starts_with("Reloader-compatible"),
                "--{long} is under {heading:?}"
            );
        }
        let help = Args::command().render_help().to_string();
        for text in [
            SCOPE,
            RELOAD,
            NAMES,
            OPERATION,
            OWN,
            "--is-Argo-Rollouts",
            "--enable-ha[=<BOOL>]",
        ] {
            assert!(help.contains(text), "help lacks {text:?}:\n{help}");
        }
    }

    #[test]
    fn defaults_are_reloaders() {
        let args = mk_args(&[]);
        assert_eq!(args.is_argo_rollouts, "false");
        assert_eq!(args.reload_on_create, "false");
        assert_eq!(args.reload_on_delete, "false");
        assert_eq!(args.reload_strategy, "env-vars");
        assert_eq!(args.log_level, "info");
        assert_eq!(args.log_format, "");
        assert_eq!(args.pprof_addr, ":6060");
        assert_eq!(args.webhook_url, "");
        assert_eq!(args.auto_annotation, "reloader.stakater.com/auto");
        assert_eq!(args.ignore_annotation, "reloader.stakater.com/ignore");
        assert_eq!(
            args.pause_deployment_time_annotation,
            "deployment.reloader.stakater.com/paused-at"
        );

        let s = settings(&[]);
        assert_eq!(
            s,
            Settings {
                scope: NamespaceScope::All {
                    ignored: BTreeSet::new(),
                    selector: None
                },
                resource_label_selector: None,
                sources: set(&[SourceKind::ConfigMap, SourceKind::Secret]),
                ignored_workload_types: BTreeSet::new(),
                argo_rollouts: false,
                strategy: ReloadStrategy::EnvVars,
                auto_reload_all: false,
                reload_on_create: false,
                reload_on_delete: false,
                sync_after_restart: false,
                webhook_url: None,
                annotation_overrides: AnnotationOverrides::default(),
                log_format: LogFormat::Text,
                log_level: LogLevel::Info,
                ha: None,
                hash: HashMode::Keyed,
                hash_key_secret: "rekindle-operator-hash-key".into(),
                cooldown: Duration::from_secs(10),
                metrics_addr: "[::]:9090".parse().expect("address"),
                metrics_by_namespace: false,
                alerts: None,
                operator_namespace: None,
                deployment_name: None,
                warnings: vec![],
            }
        );
        assert_eq!(
            s.workload_kinds(),
            set(&[
                WorkloadKind::Deployment,
                WorkloadKind::DaemonSet,
                WorkloadKind::StatefulSet,
                WorkloadKind::CronJob,
                WorkloadKind::Job
            ])
        );
    }

    /// What Reloader's chart (2.2.16) renders with most options set, in global
    /// mode, argument for argument (including the quotes it puts inside
    /// `--namespace-selector`).
    #[test]
    fn helm_chart_args_parse_unchanged() {
        let chart_args = [
            "--log-format=json",
            "--log-level=debug",
            "--resources-to-ignore=secrets",
            "--ignored-workload-types=jobs,cronjobs",
            "--namespaces-to-ignore=kube-system,flux-system",
            "--namespace-selector=\"reloader:enabled,team=*\"",
            "--resource-label-selector=reloader=watch",
            "--enable-pprof",
            "--pprof-addr=:6061",
            "--enable-csi-integration=true",
            "--configmap-annotation",
            "example.com/cm-reload",
            "--secret-annotation",
            "example.com/secret-reload",
            "--auto-annotation",
            "example.com/auto",
            "--secret-auto-annotation",
            "example.com/secret-auto",
            "--configmap-auto-annotation",
            "example.com/cm-auto",
            "--auto-search-annotation",
            "example.com/search",
            "--search-match-annotation",
            "example.com/match",
            "--ignore-annotation",
            "example.com/ignore",
            "--pause-deployment-annotation",
            "example.com/pause-period",
            "--pause-deployment-time-annotation",
            "example.com/paused-at",
            "--webhook-url",
            "https://hooks.example.com/reloader",
            "--is-Argo-Rollouts=true",
            "--reload-on-create=true",
            "--reload-on-delete=true",
            "--sync-after-restart=true",
            "--reload-strategy=annotations",
            "--enable-ha=true",
            "--auto-reload-all=true",
        ];
        let env = [
            ("RELOADER_NAMESPACE", "reloader"),
            ("RELOADER_DEPLOYMENT_NAME", "reloader-reloader"),
            ("POD_NAME", "reloader-reloader-7d9f-abcde"),
            ("POD_NAMESPACE", "reloader"),
            ("METRICS_COUNT_BY_NAMESPACE", "enabled"),
        ];
        let s = settings_with(&chart_args, &env).expect("chart args are valid");
        assert_eq!(
            s.scope,
            NamespaceScope::All {
                ignored: names(&["kube-system", "flux-system"]),
                selector: Some("reloader=enabled,team".into()),
            }
        );
        assert_eq!(s.resource_label_selector.as_deref(), Some("reloader=watch"));
        assert_eq!(
            s.sources,
            set(&[SourceKind::ConfigMap, SourceKind::SecretProviderClass])
        );
        assert_eq!(
            s.ignored_workload_types,
            set(&[WorkloadKind::Job, WorkloadKind::CronJob])
        );
        assert!(s.argo_rollouts && s.reload_on_create && s.reload_on_delete);
        assert!(s.sync_after_restart && s.auto_reload_all);
        assert_eq!(s.strategy, ReloadStrategy::Annotations);
        assert_eq!(
            s.webhook_url.as_deref(),
            Some("https://hooks.example.com/reloader")
        );
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!(
            s.ha,
            Some(HaSettings {
                lease_name: "stakater-reloader-lock".into(),
                lease_namespace: "reloader".into(),
                identity: "reloader-reloader-7d9f-abcde".into(),
            })
        );
        assert_eq!(
            s.annotation_overrides,
            AnnotationOverrides {
                configmap_reload: Some("example.com/cm-reload".into()),
                secret_reload: Some("example.com/secret-reload".into()),
                auto: Some("example.com/auto".into()),
                configmap_auto: Some("example.com/cm-auto".into()),
                secret_auto: Some("example.com/secret-auto".into()),
                auto_search: Some("example.com/search".into()),
                search_match: Some("example.com/match".into()),
                ignore: Some("example.com/ignore".into()),
                pause_period: Some("example.com/pause-period".into()),
                paused_at: Some("example.com/paused-at".into()),
            }
        );
        assert!(s.metrics_by_namespace);
        assert_eq!(s.operator_namespace.as_deref(), Some("reloader"));
        assert_eq!(s.deployment_name.as_deref(), Some("reloader-reloader"));
        assert_eq!(
            s.workload_kinds(),
            set(&[
                WorkloadKind::Deployment,
                WorkloadKind::DaemonSet,
                WorkloadKind::StatefulSet,
                WorkloadKind::Rollout
            ])
        );
        // The only thing worth saying: pprof does not exist here.
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("--enable-pprof"));
    }

    /// The chart's default render, and its scoped mode (`reloader.namespaces`):
    /// `--namespaces` with the release namespace added, no KUBERNETES_NAMESPACE.
    #[test]
    fn helm_chart_default_and_scoped_renders() {
        let s = settings_with(&["--log-level=info"], &[("RELOADER_NAMESPACE", "tools")])
            .expect("default render");
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.operator_namespace.as_deref(), Some("tools"));

        let s = settings(&["--log-level=info", "--namespaces=apps,tools,web"]);
        assert_eq!(
            s.scope,
            NamespaceScope::Only(names(&["apps", "tools", "web"]))
        );

        // watchGlobally=false: KUBERNETES_NAMESPACE from the downward API.
        let s = settings_with(&["--log-level=info"], &[("KUBERNETES_NAMESPACE", "tools")])
            .expect("single namespace");
        assert_eq!(s.scope, NamespaceScope::Only(names(&["tools"])));
    }

    #[test]
    fn boolean_flags_read_as_pflag_reads_them() {
        assert!(
            settings(&["--enable-csi-integration"])
                .sources
                .contains(&SourceKind::SecretProviderClass)
        );
        assert!(settings(&["--auto-reload-all"]).auto_reload_all);
        assert!(settings(&["--auto-reload-all=1"]).auto_reload_all);
        assert!(settings(&["--auto-reload-all=True"]).auto_reload_all);
        assert!(!settings(&["--auto-reload-all=false"]).auto_reload_all);
        assert!(!settings(&["--auto-reload-all=F"]).auto_reload_all);
        // Last one wins.
        assert!(!settings(&["--auto-reload-all", "--auto-reload-all=false"]).auto_reload_all);
        assert!(try_args(&["--auto-reload-all=yes"]).is_err());

        // `--flag false` sets it true and leaves a stray `false`, as pflag does.
        let s = settings(&["--auto-reload-all", "false"]);
        assert!(s.auto_reload_all);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("[\"false\"]"), "{:?}", s.warnings);
    }

    /// As pflag: flags after a stray argument still count, `--` ends the flags.
    #[test]
    fn stray_arguments_and_the_end_of_flags() {
        let s = settings(&["x", "--enable-ha=false", "--auto-reload-all"]);
        assert!(s.auto_reload_all);
        assert!(s.warnings[0].contains("[\"x\"]"), "{:?}", s.warnings);
        let s = settings(&["--reload-on-delete=true", "--", "--auto-reload-all"]);
        assert!(s.reload_on_delete && !s.auto_reload_all);
        assert!(
            s.warnings[0].contains("--auto-reload-all"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn string_switches_need_the_exact_text_true() {
        for form in [
            &["--is-Argo-Rollouts=true"][..],
            &["--is-Argo-Rollouts", "true"],
        ] {
            let s = settings(form);
            assert!(s.argo_rollouts, "{form:?}");
            assert!(s.workload_kinds().contains(&WorkloadKind::Rollout));
            assert!(s.warnings.is_empty());
        }
        for value in ["True", "1", "t", "TRUE"] {
            let s = settings(&[&format!("--reload-on-create={value}")]);
            assert!(!s.reload_on_create, "{value}");
            assert!(s.warnings[0].contains("exact text"), "{:?}", s.warnings);
        }
        let s = settings(&["--reload-on-delete=yes"]);
        assert!(!s.reload_on_delete);
        assert_eq!(s.warnings.len(), 1);
        assert!(!settings(&["--reload-on-delete=false"]).reload_on_delete);
        assert!(settings(&["--reload-on-delete=false"]).warnings.is_empty());
        // The flag name is case-sensitive.
        assert!(try_args(&["--is-argo-rollouts=true"]).is_err());
        // A string flag needs a value.
        assert!(try_args(&["--reload-on-create"]).is_err());
    }

    /// pflag gives a string flag the next argument whatever it is; so do we, and
    /// the value is then refused where it cannot be right.
    #[test]
    fn string_flags_take_the_next_argument_even_a_flag() {
        let args = mk_args(&["--webhook-url", "--enable-ha"]);
        assert_eq!(args.webhook_url, "--enable-ha");
        assert!(!args.enable_ha);
        assert_eq!(
            error(&["--webhook-url", "--enable-ha"]),
            UsageError::WebhookUrl {
                value: "--enable-ha".into()
            }
        );
        assert!(matches!(
            error(&["--auto-annotation", "--enable-ha"]),
            UsageError::AnnotationName {
                flag: "--auto-annotation",
                ..
            }
        ));
        let s = settings(&["--is-Argo-Rollouts", "--reload-on-create=true"]);
        assert!(!s.argo_rollouts && !s.reload_on_create);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn lists_are_csv_and_repeats_append() {
        let s = settings(&["--namespaces=a,b", "--namespaces", "c"]);
        assert_eq!(s.scope, NamespaceScope::Only(names(&["a", "b", "c"])));
        let s = settings(&["--namespaces=\"a\",b"]);
        assert_eq!(s.scope, NamespaceScope::Only(names(&["a", "b"])));
        assert_eq!(
            error(&["--namespaces=a\"b"]),
            UsageError::List {
                flag: "--namespaces",
                source: CsvError::BareQuote
            }
        );
        // The chart renders these two separately when both are set.
        assert!(matches!(
            error(&[
                "--resources-to-ignore=secrets",
                "--resources-to-ignore=configmaps"
            ]),
            UsageError::ResourcesToIgnoreBoth { .. }
        ));
        // Other flags: the last one wins.
        assert_eq!(
            settings(&["--log-level=debug", "--log-level=error"]).log_level,
            LogLevel::Error
        );
    }

    #[test]
    fn resources_to_ignore() {
        assert_eq!(
            settings(&["--resources-to-ignore=configmaps"]).sources,
            set(&[SourceKind::Secret])
        );
        assert_eq!(
            settings(&["--resources-to-ignore=Secrets"]).sources,
            set(&[SourceKind::ConfigMap])
        );
        assert_eq!(
            settings(&["--resources-to-ignore="]).sources,
            set(&[SourceKind::ConfigMap, SourceKind::Secret])
        );
        assert_eq!(
            error(&["--resources-to-ignore=deployments"]),
            UsageError::ResourceToIgnore {
                value: "deployments".into()
            }
        );
        assert_eq!(
            error(&["--resources-to-ignore=configmaps,secrets"]),
            UsageError::ResourcesToIgnoreBoth {
                values: vec!["configmaps".into(), "secrets".into()]
            }
        );
        assert!(matches!(
            error(&["--resources-to-ignore=secrets,secrets"]),
            UsageError::ResourcesToIgnoreBoth { .. }
        ));
        let message = error(&["--resources-to-ignore=configmaps,secrets"]).to_string();
        assert!(message.starts_with("--resources-to-ignore:"), "{message}");
    }

    #[test]
    fn ignored_workload_types() {
        assert_eq!(
            settings(&["--ignored-workload-types=jobs"]).ignored_workload_types,
            set(&[WorkloadKind::Job])
        );
        assert_eq!(
            settings(&["--ignored-workload-types=cronjobs"]).ignored_workload_types,
            set(&[WorkloadKind::CronJob])
        );
        let s = settings(&["--ignored-workload-types=cronjobs,jobs"]);
        assert_eq!(
            s.ignored_workload_types,
            set(&[WorkloadKind::Job, WorkloadKind::CronJob])
        );
        assert!(!s.workload_kinds().contains(&WorkloadKind::Job));
        assert!(!s.workload_kinds().contains(&WorkloadKind::CronJob));
        for bad in ["Jobs", "deployments", "jobs,", " cronjobs"] {
            let e = error(&[&format!("--ignored-workload-types={bad}")]);
            assert!(
                matches!(e, UsageError::IgnoredWorkloadType { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn reload_strategy() {
        assert_eq!(
            settings(&["--reload-strategy=env-vars"]).strategy,
            ReloadStrategy::EnvVars
        );
        assert_eq!(
            settings(&["--reload-strategy", "annotations"]).strategy,
            ReloadStrategy::Annotations
        );
        assert_eq!(
            error(&["--reload-strategy=default"]),
            UsageError::ReloadStrategy {
                value: "default".into()
            }
        );
        assert!(
            error(&["--reload-strategy=Annotations"])
                .to_string()
                .starts_with("--reload-strategy:")
        );
    }

    #[test]
    fn namespace_scope_precedence() {
        let env = [("KUBERNETES_NAMESPACE", "from-env")];
        let s = settings_with(&["--namespaces=a"], &env).expect("valid");
        assert_eq!(s.scope, NamespaceScope::Only(names(&["a"])));
        let s = settings_with(&[], &env).expect("valid");
        assert_eq!(s.scope, NamespaceScope::Only(names(&["from-env"])));
        // An empty flag or variable counts as absent.
        let s = settings_with(&["--namespaces="], &env).expect("valid");
        assert_eq!(s.scope, NamespaceScope::Only(names(&["from-env"])));
        let s = settings_with(&[], &[("KUBERNETES_NAMESPACE", "")]).expect("valid");
        assert!(matches!(s.scope, NamespaceScope::All { .. }));
    }

    #[test]
    fn namespace_names_are_checked() {
        assert_eq!(
            error(&["--namespaces=a,"]),
            UsageError::Namespace {
                flag: "--namespaces",
                name: String::new(),
                why: "is empty (a stray comma?)".into()
            }
        );
        assert!(matches!(
            error(&["--namespaces=a, b"]),
            UsageError::Namespace { name, .. } if name == " b"
        ));
        assert!(matches!(
            settings_with(&[], &[("KUBERNETES_NAMESPACE", "Bad_Name")]),
            Err(UsageError::Namespace {
                flag: "KUBERNETES_NAMESPACE",
                ..
            })
        ));
    }

    #[test]
    fn namespace_filters_apply_only_to_all_namespaces() {
        let s = settings(&[
            "--namespaces-to-ignore=kube-system,",
            "--namespace-selector=team:a",
        ]);
        assert_eq!(
            s.scope,
            NamespaceScope::All {
                ignored: names(&["kube-system"]),
                selector: Some("team=a".into())
            }
        );
        // Scoped: both dropped, with a warning each; the selector is not even
        // checked, as in Reloader.
        let s = settings(&[
            "--namespaces=a",
            "--namespaces-to-ignore=kube-system",
            "--namespace-selector=not a selector",
        ]);
        assert_eq!(s.scope, NamespaceScope::Only(names(&["a"])));
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    }

    #[test]
    fn selectors_are_converted_and_checked() {
        let scope_selector = |arg: &str| match settings(&[arg]).scope {
            NamespaceScope::All { selector, .. } => selector,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            scope_selector("--namespace-selector=team:a"),
            Some("team=a".into())
        );
        assert_eq!(
            scope_selector("--namespace-selector=team:*"),
            Some("team".into())
        );
        assert_eq!(
            scope_selector("--namespace-selector=team=*"),
            Some("team".into())
        );
        assert_eq!(
            scope_selector("--namespace-selector=team=a,env!=prod"),
            Some("team=a,env!=prod".into())
        );
        assert_eq!(
            scope_selector("--namespace-selector=\"env in (a,b)\""),
            Some("env in (a,b)".into())
        );
        assert_eq!(
            scope_selector("--namespace-selector=env in (a,b)"),
            Some("env in (a,b)".into())
        );
        assert_eq!(scope_selector("--namespace-selector="), None);
        assert_eq!(
            settings(&[
                "--resource-label-selector=app:*",
                "--resource-label-selector=tier=web"
            ])
            .resource_label_selector,
            Some("app,tier=web".into())
        );
        assert!(matches!(
            error(&["--namespace-selector=team in"]),
            UsageError::Selector {
                flag: "--namespace-selector",
                ..
            }
        ));
        let e = error(&["--resource-label-selector=a b"]);
        assert!(
            matches!(
                e,
                UsageError::Selector {
                    flag: "--resource-label-selector",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("--resource-label-selector: \"a b\""),
            "{e}"
        );
    }

    #[test]
    fn logging() {
        assert_eq!(settings(&["--log-format=json"]).log_format, LogFormat::Json);
        assert_eq!(settings(&["--log-format=text"]).log_format, LogFormat::Text);
        let s = settings(&["--log-format=JSON"]);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.warnings.len(), 1);
        for (value, level) in [
            ("trace", LogLevel::Trace),
            ("DEBUG", LogLevel::Debug),
            ("warning", LogLevel::Warn),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("fatal", LogLevel::Error),
            ("panic", LogLevel::Error),
        ] {
            let s = settings(&[&format!("--log-level={value}")]);
            assert_eq!(s.log_level, level, "{value}");
            assert!(s.warnings.is_empty());
        }
        let s = settings(&["--log-level="]);
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.warnings.len(), 1);
        let s = settings(&["--log-level=verbose"]);
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn pprof_is_accepted_and_ignored() {
        assert!(settings(&["--pprof-addr=:7070"]).warnings.is_empty());
        let s = settings(&["--enable-pprof", "--pprof-addr=:7070"]);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("ignored") && s.warnings[0].contains(":7070"));
    }

    #[test]
    fn ha_needs_the_pod_identity() {
        assert_eq!(
            settings_with(&["--enable-ha"], &[("POD_NAMESPACE", "ns")]),
            Err(UsageError::HaEnv {
                var: "POD_NAME",
                field: "metadata.name"
            })
        );
        assert_eq!(
            settings_with(
                &["--enable-ha"],
                &[("POD_NAME", "p"), ("POD_NAMESPACE", "")]
            ),
            Err(UsageError::HaEnv {
                var: "POD_NAMESPACE",
                field: "metadata.namespace"
            })
        );
        let s = settings_with(
            &["--enable-ha", "--lease-name=my-lock"],
            &[("POD_NAME", "p"), ("POD_NAMESPACE", "ns")],
        )
        .expect("valid");
        assert_eq!(
            s.ha,
            Some(HaSettings {
                lease_name: "my-lock".into(),
                lease_namespace: "ns".into(),
                identity: "p".into()
            })
        );
        // Without HA the pod identity is not needed.
        assert_eq!(settings(&["--enable-ha=false"]).ha, None);
    }

    #[test]
    fn cooldown() {
        assert_eq!(
            settings(&["--cooldown=500ms"]).cooldown,
            Duration::from_millis(500)
        );
        assert_eq!(
            settings(&["--cooldown", "1m"]).cooldown,
            Duration::from_secs(60)
        );
        assert_eq!(settings(&["--cooldown=0s"]).cooldown, Duration::ZERO);
        assert_eq!(
            settings(&["--cooldown=1h"]).cooldown,
            Duration::from_secs(3600)
        );
        assert_eq!(
            error(&["--cooldown=1h0m0.001s"]),
            UsageError::CooldownTooLong {
                value: "1h0m0.001s".into()
            }
        );
        assert!(matches!(
            error(&["--cooldown=-1s"]),
            UsageError::Cooldown {
                source: DurationError::Negative(_)
            }
        ));
        assert!(matches!(
            error(&["--cooldown=10"]),
            UsageError::Cooldown {
                source: DurationError::MissingUnit(_)
            }
        ));
        assert!(
            error(&["--cooldown=soon"])
                .to_string()
                .starts_with("--cooldown:")
        );
    }

    #[test]
    fn rekindle_flags() {
        assert_eq!(
            settings(&["--hash=reloader-sha1"]).hash,
            HashMode::ReloaderSha1
        );
        assert_eq!(settings(&["--hash", "keyed"]).hash, HashMode::Keyed);
        assert!(try_args(&["--hash=sha256"]).is_err());
        assert_eq!(
            settings(&["--hash-key-secret=my-key"]).hash_key_secret,
            "my-key"
        );
        assert!(matches!(
            error(&["--hash-key-secret=My_Key"]),
            UsageError::ObjectName {
                flag: "--hash-key-secret",
                ..
            }
        ));
        assert!(matches!(
            error(&["--lease-name="]),
            UsageError::ObjectName {
                flag: "--lease-name",
                ..
            }
        ));
        assert_eq!(
            settings(&["--metrics-addr=:9191"]).metrics_addr,
            "[::]:9191".parse().expect("address")
        );
        assert_eq!(
            settings(&["--metrics-addr=127.0.0.1:8080"]).metrics_addr,
            "127.0.0.1:8080".parse().expect("address")
        );
        assert_eq!(
            settings(&["--metrics-addr=[::]:9090"]).metrics_addr,
            "[::]:9090".parse().expect("address")
        );
        for bad in ["9090", "localhost:9090", ":http", ":99999", ""] {
            assert_eq!(
                error(&[&format!("--metrics-addr={bad}")]),
                UsageError::MetricsAddr { value: bad.into() }
            );
        }
    }

    #[test]
    fn webhook_url() {
        assert_eq!(settings(&["--webhook-url="]).webhook_url, None);
        assert_eq!(
            settings(&["--webhook-url=HTTP://h/x"])
                .webhook_url
                .as_deref(),
            Some("HTTP://h/x")
        );
        for bad in ["hooks.example.com", "ftp://x", "http://"] {
            assert!(matches!(
                error(&[&format!("--webhook-url={bad}")]),
                UsageError::WebhookUrl { .. }
            ));
        }
    }

    #[test]
    fn annotation_overrides_only_when_changed_and_valid() {
        let s = settings(&["--auto-annotation=reloader.stakater.com/auto"]);
        assert_eq!(s.annotation_overrides, AnnotationOverrides::default());
        let s = settings(&["--ignore-annotation=skip"]);
        assert_eq!(s.annotation_overrides.ignore.as_deref(), Some("skip"));
        assert_eq!(
            settings(&["--pause-deployment-time-annotation=x.io/at"])
                .annotation_overrides
                .paused_at
                .as_deref(),
            Some("x.io/at")
        );
        for (flag, bad) in [
            ("--secret-annotation", ""),
            ("--search-match-annotation", "a/b/c"),
        ] {
            let e = error(&[&format!("{flag}={bad}")]);
            assert!(
                matches!(&e, UsageError::AnnotationName { flag: f, .. } if *f == flag),
                "{e}"
            );
        }
    }

    #[test]
    fn environment() {
        let env = mk_env(&[("KUBERNETES_NAMESPACE", "x"), ("POD_NAME", "p")]);
        assert_eq!(env.kubernetes_namespace.as_deref(), Some("x"));
        assert_eq!(env.pod_name.as_deref(), Some("p"));
        assert_eq!(env.alert_sink, None);

        assert!(
            !settings_with(&[], &[("METRICS_COUNT_BY_NAMESPACE", "true")])
                .expect("ok")
                .metrics_by_namespace
        );
        assert!(
            settings_with(&[], &[("METRICS_COUNT_BY_NAMESPACE", "enabled")])
                .expect("ok")
                .metrics_by_namespace
        );

        // The operator's namespace: POD_NAMESPACE, else RELOADER_NAMESPACE.
        let s =
            settings_with(&[], &[("POD_NAMESPACE", "a"), ("RELOADER_NAMESPACE", "b")]).expect("ok");
        assert_eq!(s.operator_namespace.as_deref(), Some("a"));
        let s = settings_with(&[], &[("RELOADER_NAMESPACE", "b")]).expect("ok");
        assert_eq!(s.operator_namespace.as_deref(), Some("b"));
    }

    #[test]
    fn alerts() {
        let url = ("ALERT_WEBHOOK_URL", " https://hooks.slack.com/x ");
        for on in ["True", "1", "yes"] {
            let s = settings_with(&[], &[("ALERT_ON_RELOAD", on), url]).expect("ok");
            assert_eq!(s.alerts, None, "{on}");
        }
        let s = settings_with(
            &[],
            &[
                ("ALERT_ON_RELOAD", "true"),
                url,
                ("ALERT_SINK", " Slack "),
                ("ALERT_WEBHOOK_PROXY", " "),
                ("ALERT_ADDITIONAL_INFO", " prod-eu "),
            ],
        )
        .expect("ok");
        assert_eq!(
            s.alerts,
            Some(AlertSettings {
                sink: AlertSink::Slack,
                webhook_url: "https://hooks.slack.com/x".into(),
                proxy: None,
                additional_info: Some("prod-eu".into()),
            })
        );
        for (sink, expected) in [
            ("teams", AlertSink::Teams),
            ("GCHAT", AlertSink::GoogleChat),
            ("raw", AlertSink::Raw),
            ("discord", AlertSink::Raw),
        ] {
            let s = settings_with(
                &[],
                &[("ALERT_ON_RELOAD", "true"), url, ("ALERT_SINK", sink)],
            )
            .expect("ok");
            assert_eq!(s.alerts.map(|a| a.sink), Some(expected), "{sink}");
        }
        let s = settings_with(
            &[],
            &[
                ("ALERT_ON_RELOAD", "true"),
                url,
                ("ALERT_WEBHOOK_PROXY", "http://proxy:3128"),
            ],
        )
        .expect("ok");
        let alerts = s.alerts.expect("alerts on");
        assert_eq!(alerts.proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(alerts.sink, AlertSink::Raw);
        assert_eq!(alerts.additional_info, None);

        let s = settings_with(&[], &[("ALERT_ON_RELOAD", "true")]).expect("ok");
        assert_eq!(s.alerts, None);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn single_dash_and_unknown_flags_are_refused() {
        assert!(try_args(&["-enable-ha"]).is_err());
        assert!(try_args(&["--no-such-flag"]).is_err());
    }
}
