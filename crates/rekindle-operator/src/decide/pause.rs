//! `deployment.reloader.stakater.com/pause-period`: a Deployment rolled by the
//! operator is paused for the period (changes made meanwhile join one
//! rollout) and resumed when it ends.
//!
//! Reloader keeps the resume timer in memory only, so an operator restart
//! during the pause leaves the Deployment paused until the next change
//! (Reloader issue #1016). Here the resume time is derived from the
//! `paused-at` annotation written with the pause, which every replica and
//! every restart reads back from the watch.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::decide::duration::{DurationError, parse_go_duration};

/// What a Deployment's annotations say about pausing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The `pause-period`, or why it does not parse.
    pub period: Result<Duration, DurationError>,
    /// The `paused-at` annotation: set when the operator paused it.
    pub paused_at: Option<String>,
}

/// Why a pause cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    #[error("invalid {annotation} annotation: {source}")]
    Period {
        annotation: String,
        #[source]
        source: DurationError,
    },
}

impl Pause {
    /// Reads the two annotations (by their configured names) from a
    /// Deployment's metadata. `None` when neither is present.
    pub fn from_annotations(
        annotations: &std::collections::BTreeMap<String, String>,
        period_name: &str,
        paused_at_name: &str,
    ) -> Option<Pause> {
        let period = annotations.get(period_name);
        let paused_at = annotations.get(paused_at_name).cloned();
        if period.is_none() && paused_at.is_none() {
            return None;
        }
        Some(Pause {
            // A paused-at without a period (annotation removed meanwhile):
            // resume at once.
            period: period.map_or(Ok(Duration::ZERO), |p| parse_go_duration(p)),
            paused_at,
        })
    }

    /// When to resume: `paused_at + period`. `None` when not paused by us. A
    /// `paused-at` that does not parse (edited by hand) resumes at once, so a
    /// Deployment is never left paused by a value the operator cannot read.
    pub fn resume_at(&self) -> Option<Timestamp> {
        let paused_at = self.paused_at.as_ref()?;
        let period = self.period.clone().unwrap_or(Duration::ZERO);
        let Ok(at) = paused_at.parse::<Timestamp>() else {
            return Some(Timestamp::UNIX_EPOCH);
        };
        let period = SignedDuration::try_from(period).unwrap_or(SignedDuration::MAX);
        Some(at.checked_add(period).unwrap_or(Timestamp::MAX))
    }

    /// Whether a rollout should pause the Deployment: a period is set and it
    /// is not already paused by us (a change during the pause just updates
    /// the template; the resume at the end rolls everything once).
    pub fn should_pause(&self, annotation: &str) -> Result<bool, PauseError> {
        match &self.period {
            Err(source) => Err(PauseError::Period {
                annotation: annotation.to_owned(),
                source: source.clone(),
            }),
            Ok(period) => Ok(!period.is_zero() && self.paused_at.is_none()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PERIOD: &str = "deployment.reloader.stakater.com/pause-period";
    const AT: &str = "deployment.reloader.stakater.com/paused-at";

    fn mk_pause(pairs: &[(&str, &str)]) -> Option<Pause> {
        let annotations: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Pause::from_annotations(&annotations, PERIOD, AT)
    }

    #[test]
    fn no_annotations_no_pause() {
        assert_eq!(mk_pause(&[("other", "x")]), None);
    }

    #[test]
    fn a_period_pauses_once() {
        let pause = mk_pause(&[(PERIOD, "5m")]).expect("annotated");
        assert_eq!(pause.should_pause(PERIOD), Ok(true));
        assert_eq!(pause.resume_at(), None);
        let paused = mk_pause(&[(PERIOD, "5m"), (AT, "2026-01-01T10:00:00Z")]).expect("annotated");
        assert_eq!(paused.should_pause(PERIOD), Ok(false));
    }

    #[test]
    fn the_resume_time_is_read_back_from_the_annotation() {
        let paused = mk_pause(&[(PERIOD, "5m"), (AT, "2026-01-01T10:00:00Z")]).expect("annotated");
        assert_eq!(
            paused.resume_at(),
            Some("2026-01-01T10:05:00Z".parse().expect("time"))
        );
    }

    #[test]
    fn a_paused_at_without_period_or_unreadable_resumes_at_once() {
        let orphan = mk_pause(&[(AT, "2026-01-01T10:00:00Z")]).expect("annotated");
        assert_eq!(
            orphan.resume_at(),
            Some("2026-01-01T10:00:00Z".parse().expect("time"))
        );
        let garbled = mk_pause(&[(PERIOD, "5m"), (AT, "yesterday")]).expect("annotated");
        assert_eq!(garbled.resume_at(), Some(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn an_invalid_period_fails_the_rollout_naming_the_annotation() {
        let pause = mk_pause(&[(PERIOD, "5 minutes")]).expect("annotated");
        let error = pause.should_pause(PERIOD).expect_err("invalid");
        assert!(error.to_string().contains(PERIOD), "{error}");
    }
}
