//! What doctor reports: a problem, where, and the change that fixes it.

/// One problem found, with a concrete fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A stable identifier for scripts: `subpath`, `missing`, `unreadable`, `inotify`,
    /// `process-not-visible`, `process-not-signallable`, `env-from-config`.
    pub code: &'static str,
    /// What it is about (a path, a process, the environment).
    pub subject: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to change; often the pod-spec YAML.
    pub fix: String,
}

impl Problem {
    pub fn new(
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            code,
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}
