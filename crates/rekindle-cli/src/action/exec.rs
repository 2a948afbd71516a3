//! `--exec CMD`: a command through `sh -c`, with the change in its environment.

use super::{Action, ActionFuture, ChangeCtx, Outcome};
use crate::plan::CommandPlan;
use crate::process::{Children, shell};

#[derive(Debug)]
pub struct ExecAction {
    plan: CommandPlan,
    children: Children,
}

impl ExecAction {
    pub fn new(plan: CommandPlan, children: Children) -> ExecAction {
        ExecAction { plan, children }
    }
}

impl Action for ExecAction {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn run<'a>(&'a mut self, change: &'a ChangeCtx) -> ActionFuture<'a> {
        Box::pin(async move {
            let env = change.env();
            match shell::run(
                &self.children,
                &self.plan.command,
                &env,
                self.plan.timeout,
                false,
            )
            .await
            {
                Ok(outcome) if outcome.exit.success() => Outcome::Done(outcome.exit.to_string()),
                Ok(outcome) => Outcome::Failed(outcome.exit.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }
}
