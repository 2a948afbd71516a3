//! Outbound notifications that are not Kubernetes API calls: Reloader's
//! `--webhook-url` mode and the `ALERT_*` alerts after a rollout.

pub mod alert;
pub mod http;
