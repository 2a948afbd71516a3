//! `rekindle watch`: the sidecar loop.

use std::collections::VecDeque;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use rekindle::watch::WatchEvent;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::actions;
use crate::children::Children;
use crate::metrics::{ActionResult, Metrics};
use crate::pipeline::{Pending, Pipeline};
use crate::plan::WatchPlan;
use crate::server::{self, Endpoints, Readiness};
use crate::source;

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

pub async fn run(mut plan: WatchPlan) -> anyhow::Result<ExitCode> {
    plan.dirs = absolute(&plan.dirs)?;
    let children = Children::start().context("installing the SIGCHLD handler")?;
    let metrics = Arc::new(Metrics::new(plan.configmap_reload_metrics));
    let readiness = Arc::new(Readiness::new(&plan.dirs));
    start_server(
        plan.listen.as_deref(),
        &plan.metrics_path,
        &metrics,
        &readiness,
    )
    .await?;
    let mut sources = source::start(&plan.dirs, plan.rescan_interval)?;
    let mut pipeline = Pipeline::new(
        children,
        metrics,
        readiness,
        plan.validate.clone(),
        plan.reload_on_start,
    );
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut shutdown = pin!(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    });
    let mut queue = VecDeque::new();
    loop {
        if queue.is_empty() {
            tokio::select! {
                signal = &mut shutdown => {
                    tracing::info!(signal, "shutting down");
                    return Ok(ExitCode::SUCCESS);
                }
                event = sources.events.recv() => {
                    let event = event.context("all directory watchers stopped")?;
                    pipeline.take(event, &mut queue);
                }
            }
            continue;
        }
        // Take everything already waiting, so that a burst acts on its last state.
        while let Ok(event) = sources.events.try_recv() {
            pipeline.take(event, &mut queue);
        }
        let Some(pending) = queue.pop_front() else {
            continue;
        };
        tokio::select! {
            signal = &mut shutdown => {
                tracing::info!(signal, "shutting down");
                return Ok(ExitCode::SUCCESS);
            }
            () = handle(&plan, &mut pipeline, pending, &mut sources.events, &mut queue) => {}
        }
    }
}

fn absolute(dirs: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    dirs.iter()
        .map(|d| std::path::absolute(d).with_context(|| format!("resolving {}", d.display())))
        .collect()
}

async fn handle(
    plan: &WatchPlan,
    pipeline: &mut Pipeline,
    pending: Pending,
    events: &mut UnboundedReceiver<WatchEvent>,
    queue: &mut VecDeque<Pending>,
) {
    if !pipeline.validate(&pending).await {
        return;
    }
    pipeline.accept(&pending);
    let metrics = pipeline.metrics.clone();
    let mut outcome = Vec::new();
    let record = |name: &'static str, started: Instant, result: &Result<String, String>| {
        let r = if result.is_ok() {
            ActionResult::Success
        } else {
            ActionResult::Failure
        };
        metrics.action(name, r, started.elapsed());
    };
    if let Some(signal) = &plan.signal {
        let started = Instant::now();
        let result = actions::signal(signal);
        record("signal", started, &result);
        outcome.push(("signal", result));
    }
    if let Some(exec) = &plan.exec {
        let started = Instant::now();
        let result = actions::exec(&pipeline.children, exec, &pending).await;
        record("exec", started, &result);
        outcome.push(("exec", result));
    }
    if !plan.webhooks.is_empty() {
        let started = Instant::now();
        if plan.webhook.attempts == 0 {
            outcome.push(("webhook", Ok("--webhook-retries 0: no request".into())));
        } else {
            let mut calls = pin!(actions::webhooks(&plan.webhooks, &plan.webhook, &metrics));
            let result = loop {
                tokio::select! {
                    result = &mut calls => break Some(result),
                    event = events.recv() => match event {
                        Some(event) => {
                            if pipeline.take(event, queue) {
                                break None;
                            }
                        }
                        // Watchers gone: finish the calls, the main loop reports it.
                        None => break Some(calls.await),
                    },
                }
            };
            match result {
                Some(result) => {
                    record("webhook", started, &result);
                    outcome.push(("webhook", result));
                }
                None => {
                    metrics.action("webhook", ActionResult::Superseded, started.elapsed());
                    outcome.push(("webhook", Err("superseded by a newer change".into())));
                }
            }
        }
    }
    pipeline.log_applied(&pending, &outcome);
}
