//! What `rekindle watch` is asked to do, resolved from our flags or from a
//! compatibility mode. Everything downstream works from a [`WatchPlan`].

use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;

use crate::cli::{ActionArgs, WatchArgs};
use crate::webhook::url::WebhookUrl;
use crate::webhook::{ExpectStatus, WebhookOptions};

/// Who gets the signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Pid(i32),
    PidFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SignalPlan {
    pub signal: Signal,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub struct CommandPlan {
    pub command: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WatchPlan {
    pub dirs: Vec<PathBuf>,
    pub signal: Option<SignalPlan>,
    pub exec: Option<CommandPlan>,
    pub webhooks: Vec<WebhookUrl>,
    pub webhook: WebhookOptions,
    pub validate: Option<CommandPlan>,
    pub listen: Option<String>,
    pub metrics_path: String,
    pub reload_on_start: bool,
    /// Serve configmap-reload's metric names too.
    pub configmap_reload_metrics: bool,
    pub rescan_interval: Duration,
    /// Bounds on one read of a watched directory.
    pub limits: rekindle::ReadLimits,
    /// `--verify-url` / `--verify-exec`.
    pub verify: Option<crate::verify::VerifyPlan>,
    /// `--report-pod`.
    #[cfg(feature = "kube")]
    pub report_pod: bool,
    /// `rekindle sync`: the object written into the (one) watched directory.
    #[cfg(feature = "kube")]
    pub sync: Option<crate::sync::SyncPlan>,
}

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl WatchPlan {
    pub fn from_args(args: WatchArgs) -> WatchPlan {
        WatchPlan::with_actions(args.dirs, args.act)
    }

    /// The plan for `dirs` with the actions and settings of `args`.
    pub fn with_actions(dirs: Vec<PathBuf>, args: ActionArgs) -> WatchPlan {
        let target = if let Some(name) = args.process_name {
            Some(Target::Name(name))
        } else if let Some(pid) = args.pid {
            Some(Target::Pid(pid))
        } else {
            args.pid_file.map(Target::PidFile)
        };
        WatchPlan {
            dirs,
            signal: target.map(|target| SignalPlan {
                signal: args.signal,
                target,
            }),
            exec: args.exec.map(|command| CommandPlan {
                command,
                timeout: args.exec_timeout,
            }),
            webhooks: args.webhook_url,
            webhook: WebhookOptions {
                method: args.webhook_method,
                expect_status: ExpectStatus::exact_or_2xx(args.webhook_status_code),
                attempts: args.webhook_retries.saturating_add(1),
                timeout: args.webhook_timeout,
                backoff: args.webhook_backoff,
                max_backoff: MAX_BACKOFF,
            },
            validate: args.validate.validate.map(|command| CommandPlan {
                command,
                timeout: args.validate.validate_timeout,
            }),
            listen: args.listen,
            metrics_path: "/metrics".into(),
            reload_on_start: args.reload_on_start,
            configmap_reload_metrics: false,
            rescan_interval: args.rescan_interval,
            limits: rekindle::ReadLimits {
                max_volume_bytes: args.max_volume_size,
                ..rekindle::ReadLimits::default()
            },
            verify: args.verify.plan(),
            #[cfg(feature = "kube")]
            report_pod: args.verify.report_pod,
            #[cfg(feature = "kube")]
            sync: None,
        }
    }
}
