//! `rekindle run`'s program: the child we supervise, and the action that reloads
//! (signals) or restarts it on each accepted change.
//!
//! Two parties need the child: the driver's action (signal it, or stop and start it)
//! and `rekindle run`'s main loop (forward our signals to it, exit when it exits). They
//! share a [`Program`]. A restart replaces the child; the main loop must not take the
//! old child's planned exit for the end of the program, so the handle knows when a
//! restart is under way and tells waiters when the replacement is in place.

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rustix::io::Errno;
use rustix::process::Signal;
use tokio::sync::watch;

use super::{Action, ActionFuture, ChangeCtx, Outcome};
use crate::process::{Children, Exit, Running};
use crate::signal;

#[derive(Debug)]
struct State {
    child: Running,
    /// A restart stopped (or is stopping) the child on purpose.
    restarting: bool,
    /// A terminating signal was forwarded: no more restarts.
    stopping: bool,
}

/// The supervised program. Cheap to clone; clones share the child.
#[derive(Debug, Clone)]
pub struct Program {
    argv: Arc<[OsString]>,
    children: Children,
    state: Arc<Mutex<State>>,
    /// Bumped each time a restart ends (with or without a new child).
    restarts: watch::Sender<u64>,
}

impl Program {
    pub fn start(children: &Children, argv: &[OsString]) -> anyhow::Result<Program> {
        let child = spawn(children, argv)?;
        Ok(Program {
            argv: argv.into(),
            children: children.clone(),
            state: Arc::new(Mutex::new(State {
                child,
                restarting: false,
                stopping: false,
            })),
            restarts: watch::Sender::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves when the program has exited for good: not the planned exit of a restart.
    pub async fn exited(&self) -> Exit {
        let mut restarts = self.restarts.subscribe();
        loop {
            let child = self.state().child.clone();
            let exit = child.wait().await;
            if !self.state().restarting {
                return exit;
            }
            // A restart is under way: wait for it to end, then look at the child again
            // (the new one, or the old one if no new one was started).
            restarts.borrow_and_update();
            if restarts.changed().await.is_err() {
                return exit;
            }
        }
    }

    /// Passes a signal we received on to the program.
    pub fn forward(&self, sig: Signal) {
        let child = {
            let mut state = self.state();
            if matches!(sig, Signal::TERM | Signal::INT | Signal::QUIT) {
                state.stopping = true;
            }
            state.child.clone()
        };
        tracing::info!(pid = child.pid, signal = %signal::name(sig), "forwarding signal");
        if let Err(error) = child.signal(sig) {
            tracing::warn!(pid = child.pid, signal = %signal::name(sig), %error, "could not signal the program");
        }
    }

    /// Sends `sig` to the program; an exited program is a failure, never a stray PID.
    fn reload(&self, sig: Signal) -> Outcome {
        let child = self.state().child.clone();
        let name = signal::name(sig);
        match child.signal(sig) {
            Ok(()) => Outcome::Done(format!("{name} to PID {}", child.pid)),
            Err(Errno::SRCH) => Outcome::Failed(format!(
                "{name} not sent: the program (PID {}) has exited",
                child.pid
            )),
            Err(e) => Outcome::Failed(format!("{name} to PID {}: {e}", child.pid)),
        }
    }

    /// Stops the program (`stop`, then SIGKILL after `timeout`) and starts it again.
    async fn restart(&self, stop: Signal, timeout: Duration) -> Outcome {
        let child = {
            let mut state = self.state();
            state.restarting = true;
            state.child.clone()
        };
        let outcome = self.replace(child, stop, timeout).await;
        self.state().restarting = false;
        self.restarts.send_modify(|n| *n += 1);
        outcome
    }

    async fn replace(&self, child: Running, stop: Signal, timeout: Duration) -> Outcome {
        tracing::info!(pid = child.pid, signal = %signal::name(stop), "stopping the program for a restart");
        // Already exited is fine: it is stopped.
        let _ = child.signal(stop);
        let exit = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::warn!(
                    pid = child.pid,
                    ?timeout,
                    "the program did not stop in time; sending SIGKILL"
                );
                let _ = child.signal(Signal::KILL);
                child.wait().await
            }
        };
        if self.state().stopping {
            return Outcome::Failed(format!(
                "not restarted: rekindle is stopping (the program ended with {exit})"
            ));
        }
        tracing::info!(status = %exit, "the program stopped; starting it again");
        match spawn(&self.children, &self.argv) {
            Ok(new) => {
                let pid = new.pid;
                self.state().child = new;
                Outcome::Done(format!("new PID {pid}"))
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }
}

fn spawn(children: &Children, argv: &[OsString]) -> anyhow::Result<Running> {
    let (first, args) = argv.split_first().context("no program given")?;
    let mut command = Command::new(first);
    command.args(args);
    let (running, _child) = children
        .spawn(&mut command)
        .with_context(|| format!("starting {}", first.to_string_lossy()))?;
    tracing::info!(pid = running.pid, program = %first.to_string_lossy(), "started");
    Ok(running)
}

/// What `rekindle run` does to its program on a change.
#[derive(Debug, Clone, Copy)]
pub enum OnChange {
    Signal(Signal),
    Restart { stop: Signal, timeout: Duration },
}

#[derive(Debug)]
pub struct SuperviseAction {
    program: Program,
    on_change: OnChange,
}

impl SuperviseAction {
    pub fn new(program: Program, on_change: OnChange) -> SuperviseAction {
        SuperviseAction { program, on_change }
    }
}

impl Action for SuperviseAction {
    fn name(&self) -> &'static str {
        match self.on_change {
            OnChange::Signal(_) => "signal",
            OnChange::Restart { .. } => "restart",
        }
    }

    fn run<'a>(&'a mut self, _change: &'a ChangeCtx) -> ActionFuture<'a> {
        match self.on_change {
            OnChange::Signal(sig) => Box::pin(std::future::ready(self.program.reload(sig))),
            OnChange::Restart { stop, timeout } => {
                Box::pin(async move { self.program.restart(stop, timeout).await })
            }
        }
    }
}
