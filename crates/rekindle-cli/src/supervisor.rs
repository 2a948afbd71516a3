//! `rekindle run`: the program as our child, reloaded or restarted on change.
//!
//! Signals we receive (TERM, INT, HUP, USR1, USR2, QUIT) are forwarded to the
//! child; when it exits on its own, we exit with its status. As PID 1 we also
//! reap orphans (see [`crate::children`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::process::{Pid, Signal};
use tokio::signal::unix::{SignalKind, signal};

use crate::children::{Children, Exit, Running};
use crate::cli::{OnChange, RunArgs};
use crate::metrics::{ActionResult, Metrics};
use crate::pipeline::{Pending, Pipeline};
use crate::plan::CommandPlan;
use crate::server::Readiness;
use crate::{signals, source};

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

struct Supervisor {
    program: Vec<OsString>,
    children: Children,
    child: Running,
    incoming: Incoming,
    /// Set once a terminating signal was forwarded: no more restarts.
    stopping: bool,
}

impl Supervisor {
    fn spawn(children: &Children, program: &[OsString]) -> anyhow::Result<Running> {
        let (first, args) = program.split_first().context("no program given")?;
        let mut command = Command::new(first);
        command.args(args);
        let (running, _child) = children
            .spawn(&mut command)
            .with_context(|| format!("starting {}", first.to_string_lossy()))?;
        tracing::info!(pid = running.pid, program = %first.to_string_lossy(), "started");
        Ok(running)
    }

    fn send(&self, sig: Signal) {
        // Our own unreaped child: its PID cannot be reused, so kill() is safe.
        if let Some(pid) = Pid::from_raw(self.child.pid)
            && let Err(e) = rustix::process::kill_process(pid, sig)
        {
            tracing::warn!(pid = self.child.pid, signal = %signals::name(sig), error = %e, "could not signal the program");
        }
    }

    fn forward(&mut self, sig: Signal) {
        tracing::info!(pid = self.child.pid, signal = %signals::name(sig), "forwarding signal");
        if matches!(sig, Signal::TERM | Signal::INT | Signal::QUIT) {
            self.stopping = true;
        }
        self.send(sig);
    }

    /// Stops the child (stop signal, then SIGKILL after the timeout) and starts
    /// it again. Returns the child's exit if it should not be restarted.
    async fn restart(&mut self, stop: Signal, timeout: Duration) -> anyhow::Result<Option<Exit>> {
        tracing::info!(pid = self.child.pid, signal = %signals::name(stop), "stopping the program for a restart");
        self.send(stop);
        let deadline = tokio::time::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let mut killed = false;
        let exit = loop {
            tokio::select! {
                exit = self.child.wait() => break exit,
                () = &mut deadline, if !killed => {
                    tracing::warn!(pid = self.child.pid, ?timeout, "the program did not stop in time; sending SIGKILL");
                    self.send(Signal::KILL);
                    killed = true;
                }
                sig = self.incoming.recv() => self.forward(sig),
            }
        };
        if self.stopping {
            return Ok(Some(exit));
        }
        tracing::info!(status = %exit, "the program stopped; starting it again");
        self.child = Self::spawn(&self.children, &self.program)?;
        Ok(None)
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let dirs: Vec<_> = args
        .dirs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()
        .context("resolving --watch directories")?;
    // Signal handlers first: a signal arriving right after the child starts
    // must be forwarded, not kill us.
    let incoming = Incoming::install().context("installing signal handlers")?;
    let children = Children::start().context("installing the SIGCHLD handler")?;
    // As a subreaper, processes the program leaves behind are re-parented to us
    // and reaped even when we are not PID 1 (an entrypoint script, tini, a shell).
    if let Err(error) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(%error, "cannot become a child subreaper; orphans of the program go to PID 1");
    }
    let metrics = Arc::new(Metrics::new(false));
    let readiness = Arc::new(Readiness::new(&dirs));
    crate::watch::start_server(args.listen.as_deref(), "/metrics", &metrics, &readiness).await?;
    let mut sources = source::start(&dirs, args.rescan_interval)?;
    let validate = args.validate.validate.clone().map(|command| CommandPlan {
        command,
        timeout: args.validate.validate_timeout,
    });
    let mut pipeline = Pipeline::new(
        children.clone(),
        metrics.clone(),
        readiness,
        validate,
        false,
    );
    let child = Supervisor::spawn(&children, &args.command)?;
    let mut sup = Supervisor {
        program: args.command.clone(),
        children,
        child,
        incoming,
        stopping: false,
    };
    let mut queue: VecDeque<Pending> = VecDeque::new();
    loop {
        if let Some(pending) = queue.pop_front() {
            // Validation may take a while: keep forwarding signals meanwhile.
            let valid = {
                let mut validating = std::pin::pin!(pipeline.validate(&pending));
                loop {
                    tokio::select! {
                        valid = &mut validating => break valid,
                        sig = sup.incoming.recv() => sup.forward(sig),
                    }
                }
            };
            if !valid {
                continue;
            }
            pipeline.accept(&pending);
            let started = Instant::now();
            let (action, result) = match args.on_change {
                OnChange::Signal => {
                    sup.send(args.signal);
                    (
                        "signal",
                        Ok(format!(
                            "{} to PID {}",
                            signals::name(args.signal),
                            sup.child.pid
                        )),
                    )
                }
                OnChange::Restart => {
                    match sup.restart(args.stop_signal, args.stop_timeout).await? {
                        Some(exit) => return Ok(finish(exit)),
                        None => ("restart", Ok(format!("new PID {}", sup.child.pid))),
                    }
                }
            };
            metrics.action(action, ActionResult::Success, started.elapsed());
            pipeline.log_applied(&pending, &[(action, result)]);
            continue;
        }
        tokio::select! {
            exit = sup.child.wait() => return Ok(finish(exit)),
            sig = sup.incoming.recv() => sup.forward(sig),
            event = sources.events.recv() => {
                let event = event.context("all directory watchers stopped")?;
                pipeline.take(event, &mut queue);
                while let Ok(event) = sources.events.try_recv() {
                    pipeline.take(event, &mut queue);
                }
            }
        }
    }
}

fn finish(exit: Exit) -> ExitCode {
    tracing::info!(status = %exit, "the program exited");
    ExitCode::from(exit.shell_code())
}
