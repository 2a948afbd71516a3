//! The actions of `rekindle watch`: signal, exec, webhook. Each returns a short
//! description of what it did, or of why it failed, for the change's log line.

use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::children::Children;
use crate::deliver;
use crate::discovery;
use crate::metrics::Metrics;
use crate::pipeline::Pending;
use crate::plan::{CommandPlan, SignalPlan, Target};
use crate::shell;
use crate::signals;
use crate::url::WebhookUrl;
use crate::webhook::{self, WebhookOptions};

pub fn signal(plan: &SignalPlan) -> Result<String, String> {
    let name = signals::name(plan.signal);
    let (pids, expect_name) = match &plan.target {
        Target::Name(process) => {
            let pids =
                discovery::find_targets(process).map_err(|e| format!("cannot read /proc: {e}"))?;
            if pids.is_empty() {
                return Err(format!(
                    "no process named {process:?} found (is `shareProcessNamespace: true` set on the pod?)"
                ));
            }
            (pids, Some(process.as_str()))
        }
        Target::Pid(pid) => (vec![*pid], None),
        Target::PidFile(file) => (vec![read_pid_file(file)?], None),
    };
    let mut sent = Vec::new();
    let mut errors = Vec::new();
    for pid in pids {
        match deliver::send(pid, plan.signal, expect_name) {
            Ok(()) => {
                tracing::info!(pid, signal = %name, "signal sent");
                sent.push(pid.to_string());
            }
            Err(e) => {
                tracing::error!(pid, signal = %name, error = %e, "signal not delivered");
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(format!("{name} to PID {}", sent.join(", ")))
    } else {
        Err(errors.join("; "))
    }
}

fn read_pid_file(file: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read pid file {}: {e}", file.display()))?;
    text.trim().parse().map_err(|_| {
        format!(
            "pid file {} does not hold a PID: {:?}",
            file.display(),
            text.trim()
        )
    })
}

pub async fn exec(
    children: &Children,
    plan: &CommandPlan,
    pending: &Pending,
) -> Result<String, String> {
    let env = pending.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match shell::run(children, &plan.command, &env, plan.timeout, false).await {
        Ok(outcome) if outcome.exit.success() => Ok(outcome.exit.to_string()),
        Ok(outcome) => Err(outcome.exit.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Calls every webhook concurrently. Dropping the returned future aborts the
/// calls (and their retries): that is how a newer change supersedes them.
pub async fn webhooks(
    urls: &[WebhookUrl],
    options: &WebhookOptions,
    metrics: &Arc<Metrics>,
) -> Result<String, String> {
    let mut calls = JoinSet::new();
    for url in urls {
        let (url, options, metrics) = (url.clone(), options.clone(), metrics.clone());
        calls.spawn(async move {
            let label = url.to_string();
            webhook::deliver(&url, &options, &metrics)
                .await
                .map(|()| label)
        });
    }
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok(Ok(label)) => ok.push(label),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(ok.join(", "))
    } else {
        Err(errors.join("; "))
    }
}
