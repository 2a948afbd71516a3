//! Alerts after a rollout (`ALERT_ON_RELOAD=true`): Reloader's text and its
//! payload per sink, so that existing Slack/Teams/Google Chat hooks and
//! receivers keep working.

use crate::model::{SourceId, WorkloadId};

/// `ALERT_SINK`, trimmed and lower-cased by the command line.
pub use crate::cli::AlertSink as Sink;

/// Reloader's alert text, with `info` (`ALERT_ADDITIONAL_INFO`) in front.
pub fn text(source: &SourceId, workload: &WorkloadId, info: Option<&str>) -> String {
    let text = format!(
        "Reloader detected changes in *{}* of type *{}* in namespace *{}*. Hence reloaded *{}* of type *{}* in namespace *{}*",
        source.name,
        source.kind.upper(),
        source.namespace,
        workload.name,
        workload.kind.kind(),
        workload.namespace
    );
    match info {
        Some(info) => format!("{} : {text}", info.trim()),
        None => text,
    }
}

/// The request body and its content type for `sink`.
pub fn payload(sink: Sink, text: &str) -> (&'static str, Vec<u8>) {
    let json = |value: serde_json::Value| ("application/json", value.to_string().into_bytes());
    match sink {
        Sink::Slack => json(serde_json::json!({
            "attachments": [{"color": "good", "author_name": "Reloader", "text": text}],
        })),
        Sink::Teams | Sink::GoogleChat => json(serde_json::json!({ "text": text })),
        // Plain text without Slack's bold markers.
        Sink::Raw => ("text/plain", text.replace('*', "").into_bytes()),
    }
}

/// Whether a response status means the alert was taken: Slack and raw accept
/// any 2xx, Teams and Google Chat only 200 (as Reloader checks). A
/// redirect is a failure: Reloader refuses to follow one (it would carry the
/// webhook's token elsewhere), and so does this client.
pub fn accepted(sink: Sink, status: u16) -> bool {
    match sink {
        Sink::Slack | Sink::Raw => (200..300).contains(&status),
        Sink::Teams | Sink::GoogleChat => status == 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SourceKind, WorkloadKind};

    fn mk_ids() -> (SourceId, WorkloadId) {
        (
            SourceId::new(SourceKind::ConfigMap, "team-a", "app-config"),
            WorkloadId::new(WorkloadKind::Deployment, "team-a", "web"),
        )
    }

    const TEXT: &str = "Reloader detected changes in *app-config* of type *CONFIGMAP* in namespace *team-a*. \
                        Hence reloaded *web* of type *Deployment* in namespace *team-a*";

    #[test]
    fn the_text_is_reloaders() {
        let (source, workload) = mk_ids();
        assert_eq!(text(&source, &workload, None), TEXT);
        assert_eq!(
            text(&source, &workload, Some(" prod ")),
            format!("prod : {TEXT}")
        );
    }

    #[test]
    fn payloads_per_sink() {
        let (ct, body) = payload(Sink::Slack, "hi *x*");
        assert_eq!(ct, "application/json");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"attachments":[{"color":"good","author_name":"Reloader","text":"hi *x*"}]})
        );
        for sink in [Sink::Teams, Sink::GoogleChat] {
            let (_, body) = payload(sink, "hi");
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
                serde_json::json!({"text":"hi"})
            );
        }
        assert_eq!(
            payload(Sink::Raw, "hi *x*"),
            ("text/plain", b"hi x".to_vec())
        );
    }

    #[test]
    fn acceptance_follows_reloader() {
        assert!(accepted(Sink::Slack, 204));
        assert!(!accepted(Sink::Slack, 404));
        assert!(!accepted(Sink::Raw, 302));
        assert!(!accepted(Sink::Teams, 202));
        assert!(accepted(Sink::GoogleChat, 200));
    }
}
