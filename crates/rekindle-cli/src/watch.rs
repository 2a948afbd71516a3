//! `rekindle watch`: the sidecar. Watchers feed the driver, whose actions are the
//! signal, exec and webhook asked for; SIGTERM or SIGINT stops it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rekindle::watch::WatchOptions;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::action::Action;
use crate::action::exec::ExecAction;
use crate::action::signal::SignalAction;
use crate::action::webhook::WebhookAction;
use crate::driver::{self, Driver, DriverParts, Host, Mailbox};
use crate::metrics::Metrics;
use crate::plan::WatchPlan;
use crate::process::Children;
use crate::server::{self, Endpoints, Readiness};

/// Starts the metrics server when asked for; shared with `rekindle run`.
pub async fn start_server(
    listen: Option<&str>,
    metrics_path: &str,
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        let listener = server::bind(listen).await?;
        let addr = listener.local_addr().context("listening socket")?;
        tracing::info!(%addr, metrics = metrics_path, "serving metrics, /healthz and /readyz");
        tokio::spawn(server::serve(
            listener,
            Arc::new(Endpoints {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
                metrics_path: metrics_path.to_owned(),
            }),
        ));
    }
    Ok(())
}

/// Stops on SIGTERM or SIGINT, with exit code 0.
struct Shutdown {
    terminate: Signal,
    interrupt: Signal,
}

impl Host for Shutdown {
    async fn stopped(&mut self) -> ExitCode {
        let name = tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        ExitCode::SUCCESS
    }
}

pub async fn run(mut plan: WatchPlan) -> anyhow::Result<ExitCode> {
    plan.dirs = plan
        .dirs
        .iter()
        .map(|d| std::path::absolute(d).with_context(|| format!("resolving {}", d.display())))
        .collect::<anyhow::Result<_>>()?;
    let mut host = Shutdown {
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
    };
    let children = Children::start().context("installing the SIGCHLD handler")?;
    #[cfg_attr(not(feature = "kube"), expect(unused_mut))]
    let mut metrics = Metrics::new(plan.configmap_reload_metrics);
    // `rekindle sync`: the directory is written before it is first read, so that the
    // first read is the object's content and runs no action.
    #[cfg(feature = "kube")]
    let _sync = match &plan.sync {
        Some(sync) => Some(crate::sync::start(sync, metrics.register_sync(), true).await?),
        None => None,
    };
    #[cfg(feature = "kube")]
    let reporter = {
        let labels = plan
            .sync
            .iter()
            .map(|s| (s.dir.clone(), s.object.source_label()))
            .collect();
        crate::report::start(plan.report_pod, labels, &mut metrics).await?
    };
    #[cfg(not(feature = "kube"))]
    let reporter = None;
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::new(&plan.dirs));
    start_server(
        plan.listen.as_deref(),
        &plan.metrics_path,
        &metrics,
        &readiness,
    )
    .await?;

    // The order of the log line and of the work: signal, exec, webhook.
    let mut actions: Vec<Box<dyn Action>> = Vec::new();
    if let Some(signal) = &plan.signal {
        actions.push(Box::new(
            SignalAction::new(signal).context("opening /proc")?,
        ));
    }
    if let Some(exec) = &plan.exec {
        actions.push(Box::new(ExecAction::new(exec.clone(), children.clone())));
    }
    if !plan.webhooks.is_empty() {
        actions.push(Box::new(WebhookAction::new(
            plan.webhooks.clone(),
            plan.webhook.clone(),
            metrics.clone(),
        )));
    }

    let options = WatchOptions {
        rescan_interval: plan.rescan_interval,
        limits: plan.limits.clone(),
        ..WatchOptions::default()
    };
    let mailbox = Arc::new(Mailbox::default());
    let _watchers = driver::watch(&plan.dirs, &options, &mailbox, &metrics)?;
    let driver = Driver::new(DriverParts {
        mailbox,
        metrics,
        readiness,
        children,
        actions,
        validate: plan.validate.clone(),
        reload_on_start: plan.reload_on_start,
        limits: plan.limits.clone(),
        verify: plan.verify.clone(),
        reporter,
    });
    Ok(driver.run(&mut host).await)
}
