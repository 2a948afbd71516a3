//! `rekindle run`: the program as our child, reloaded or restarted on change.
//!
//! The driver is the same as `rekindle watch`'s; its one action is the program
//! (signal or restart, see [`crate::action::supervise`]). Signals we receive (TERM,
//! INT, HUP, USR1, USR2, QUIT) are forwarded to the child; when it exits on its own, we
//! exit with its status. As PID 1 we also reap orphans (see [`crate::process`]).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rekindle::watch::WatchOptions;
use rustix::process::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::action::supervise::{OnChange, Program, SuperviseAction};
use crate::cli::{self, RunArgs};
use crate::driver::{self, Driver, DriverParts, Host, Mailbox};
use crate::metrics::Metrics;
use crate::plan::CommandPlan;
use crate::process::Children;
use crate::server::Readiness;

/// The signals we pass on to the child.
const FORWARDED: [(SignalKind, Signal); 6] = [
    (SignalKind::terminate(), Signal::TERM),
    (SignalKind::interrupt(), Signal::INT),
    (SignalKind::hangup(), Signal::HUP),
    (SignalKind::user_defined1(), Signal::USR1),
    (SignalKind::user_defined2(), Signal::USR2),
    (SignalKind::quit(), Signal::QUIT),
];

/// Receives any of the forwarded signals.
#[derive(Debug)]
struct Incoming {
    streams: Vec<(tokio::signal::unix::Signal, Signal)>,
}

impl Incoming {
    fn install() -> std::io::Result<Incoming> {
        let streams = FORWARDED
            .iter()
            .map(|(kind, sig)| signal(*kind).map(|s| (s, *sig)))
            .collect::<Result<_, _>>()?;
        Ok(Incoming { streams })
    }

    async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (stream, sig) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*sig);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// `rekindle run`'s host: forwards our signals to the program and stops when the
/// program has exited for good, with its status.
struct Supervising {
    program: Program,
    incoming: Incoming,
}

impl Host for Supervising {
    async fn stopped(&mut self) -> ExitCode {
        loop {
            tokio::select! {
                sig = self.incoming.recv() => self.program.forward(sig),
                exit = self.program.exited() => {
                    tracing::info!(status = %exit, "the program exited");
                    return ExitCode::from(exit.shell_code());
                }
            }
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    #[cfg_attr(not(feature = "kube"), expect(unused_mut))]
    let mut dirs: Vec<_> = args
        .dirs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()
        .context("resolving --watch directories")?;
    #[cfg_attr(not(feature = "kube"), expect(unused_mut))]
    let mut metrics = Metrics::new(false);
    // The synced directory is written before the program starts, so that it finds its
    // config; a missing object is an error here, not something to wait for.
    #[cfg(feature = "kube")]
    let _sync = match (
        args.sync_configmap.clone().or(args.sync_secret.clone()),
        &args.to,
    ) {
        (Some(object), Some(to)) => {
            let dir = std::path::absolute(to).context("resolving --to")?;
            let plan = crate::sync::SyncPlan {
                object,
                dir: dir.clone(),
                mode: args.mode,
            };
            let task = crate::sync::start(&plan, metrics.register_sync(), false).await?;
            dirs.push(dir);
            Some(task)
        }
        _ => None,
    };
    // Signal handlers first: a signal arriving right after the child starts
    // must be forwarded, not kill us.
    let incoming = Incoming::install().context("installing signal handlers")?;
    let children = Children::start().context("installing the SIGCHLD handler")?;
    // As a subreaper, processes the program leaves behind are re-parented to us
    // and reaped even when we are not PID 1 (an entrypoint script, tini, a shell).
    if let Err(error) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(%error, "cannot become a child subreaper; orphans of the program go to PID 1");
    }
    #[cfg(feature = "kube")]
    let reporter = {
        let labels = match (
            args.sync_configmap.as_ref().or(args.sync_secret.as_ref()),
            &args.to,
        ) {
            (Some(object), Some(to)) => std::path::absolute(to)
                .map(|dir| std::iter::once((dir, object.source_label())).collect())
                .unwrap_or_default(),
            _ => std::collections::HashMap::new(),
        };
        crate::report::start(args.verify.report_pod, labels, &mut metrics).await?
    };
    #[cfg(not(feature = "kube"))]
    let reporter = None;
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::new(&dirs));
    crate::watch::start_server(args.listen.as_deref(), "/metrics", &metrics, &readiness).await?;
    let options = WatchOptions {
        rescan_interval: args.rescan_interval,
        limits: rekindle::ReadLimits {
            max_volume_bytes: args.max_volume_size,
            ..rekindle::ReadLimits::default()
        },
        ..WatchOptions::default()
    };
    let mailbox = Arc::new(Mailbox::default());
    let _watchers = driver::watch(&dirs, &options, &mailbox, &metrics)?;
    let validate = args.validate.validate.clone().map(|command| CommandPlan {
        command,
        timeout: args.validate.validate_timeout,
    });
    let program = Program::start(&children, &args.command)?;
    let on_change = match args.on_change {
        cli::OnChange::Signal => OnChange::Signal(args.signal),
        cli::OnChange::Restart => OnChange::Restart {
            stop: args.stop_signal,
            timeout: args.stop_timeout,
        },
    };
    let driver = Driver::new(DriverParts {
        mailbox,
        metrics,
        readiness,
        children,
        actions: vec![Box::new(SuperviseAction::new(program.clone(), on_change))],
        validate,
        reload_on_start: false,
        limits: options.limits.clone(),
        verify: args.verify.plan(),
        reporter,
    });
    let mut host = Supervising { program, incoming };
    Ok(driver.run(&mut host).await)
}
