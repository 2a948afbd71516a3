//! `--webhook-url URL...`: every URL called concurrently, each with its own retries.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::{Action, ActionFuture, ChangeCtx, Outcome};
use crate::metrics::Metrics;
use crate::webhook::url::WebhookUrl;
use crate::webhook::{self, WebhookOptions};

#[derive(Debug)]
pub struct WebhookAction {
    urls: Vec<WebhookUrl>,
    options: WebhookOptions,
    metrics: Arc<Metrics>,
}

impl WebhookAction {
    pub fn new(
        urls: Vec<WebhookUrl>,
        options: WebhookOptions,
        metrics: Arc<Metrics>,
    ) -> WebhookAction {
        WebhookAction {
            urls,
            options,
            metrics,
        }
    }
}

impl Action for WebhookAction {
    fn name(&self) -> &'static str {
        "webhook"
    }

    /// A newer change calls every URL again, so a call still retrying for an older one
    /// is only in the way.
    fn supersedable(&self) -> bool {
        true
    }

    fn run<'a>(&'a mut self, _change: &'a ChangeCtx) -> ActionFuture<'a> {
        Box::pin(async move {
            if self.options.attempts == 0 {
                return Outcome::Done("--webhook-retries 0: no request".into());
            }
            // Dropping the set (a newer change superseding this one) aborts every call,
            // which closes its connection and ends its retries.
            let mut calls = JoinSet::new();
            for url in &self.urls {
                let (url, options, metrics) =
                    (url.clone(), self.options.clone(), self.metrics.clone());
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
                Outcome::Done(ok.join(", "))
            } else {
                Outcome::Failed(errors.join("; "))
            }
        })
    }
}
