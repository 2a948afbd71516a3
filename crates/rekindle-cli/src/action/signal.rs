//! `--signal` to `--process-name`, `--pid` or `--pid-file`.

use std::io;

use super::{Action, ActionFuture, ChangeCtx, Outcome};
use crate::plan::SignalPlan;
use crate::signal::{self, Signaller};

/// How long after the fast-path signals the `/proc` scan for new matches runs.
const SCAN_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

fn log_sent(name: &str, pids: &[i32]) {
    for pid in pids {
        tracing::info!(pid, signal = %name, "signal sent");
    }
}

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
        Box::pin(async move {
            let name = signal::name(self.signaller.signal());
            let (mut delivery, scan_pending) = self.signaller.deliver();
            log_sent(&name, &delivery.sent);
            if scan_pending {
                // The processes held since the last change have their signal. The scan
                // for new ones comes a moment later, so that it does not compete for the
                // CPU with the processes handling that signal; a new match still gets it.
                tokio::time::sleep(SCAN_DELAY).await;
                let already = delivery.sent.len();
                self.signaller.finish(&mut delivery, true);
                log_sent(&name, &delivery.sent[already..]);
            }
            for error in &delivery.failed {
                tracing::error!(signal = %name, %error, "signal not delivered");
            }
            if delivery.succeeded() {
                Outcome::Done(format!("{name} {delivery}"))
            } else {
                Outcome::Failed(format!("{name}: {delivery}"))
            }
        })
    }
}
