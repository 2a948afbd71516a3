//! `--signal` to `--process-name`, `--pid` or `--pid-file`.

use std::io;

use super::{Action, ActionFuture, ChangeCtx, Outcome};
use crate::plan::SignalPlan;
use crate::signal::{self, Signaller};

#[derive(Debug)]
pub struct SignalAction {
    signaller: Signaller,
}

impl SignalAction {
    pub fn new(plan: &SignalPlan) -> io::Result<SignalAction> {
        Ok(SignalAction {
            signaller: Signaller::new(plan)?,
        })
    }
}

impl Action for SignalAction {
    fn name(&self) -> &'static str {
        "signal"
    }

    fn run<'a>(&'a mut self, _change: &'a ChangeCtx) -> ActionFuture<'a> {
        // Synchronous on purpose: a few syscalls, and the latency is what matters.
        let delivery = self.signaller.deliver();
        let name = signal::name(self.signaller.signal());
        for pid in &delivery.sent {
            tracing::info!(pid, signal = %name, "signal sent");
        }
        for error in &delivery.failed {
            tracing::error!(signal = %name, %error, "signal not delivered");
        }
        let outcome = if delivery.succeeded() {
            Outcome::Done(format!("{name} {delivery}"))
        } else {
            Outcome::Failed(format!("{name}: {delivery}"))
        };
        Box::pin(std::future::ready(outcome))
    }
}
