//! The fleet view's report: what one pod did with each config source it watches.
//!
//! With `--report-pod`, rekindle writes its pod's annotation [`ANNOTATION`] after each
//! outcome: a JSON object mapping each source (a directory path, `configmap/NAME` or
//! `secret/NAME`) to a [`SourceReport`]: the public [`Digest`] of the content, when, and
//! whether it was applied, rejected by validation, or failed. `rekindle status` and the
//! operator compare those digests with the digests of the objects in the API.
//!
//! A report never holds a config value: the reason is the first line of an error
//! message, and rekindle's messages name keys, never values.
//!
//! ```
//! use rekindle::report::{Report, Result as Outcome};
//! let text = r#"{"configmap/app":{"digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","at":"2026-11-22T09:33:20Z","result":"applied"}}"#;
//! let report = Report::parse(text).unwrap();
//! assert_eq!(report.sources["configmap/app"].result, Outcome::Applied);
//! assert_eq!(report.to_json(), text);
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

#[cfg(feature = "kube")]
mod pod;
#[cfg(feature = "kube")]
pub use pod::{PodRef, PodReporter, ReportMetrics};

/// The pod annotation holding the report.
pub const ANNOTATION: &str = "rekindle.io/applied";

/// The longest reason kept; a longer one is cut (on a character boundary) and marked `…`.
pub const MAX_REASON: usize = 200;

/// What happened to a source's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Result {
    /// In force (and verified, when verification was asked for).
    Applied,
    /// Refused by validation; the previous content stays in force.
    Rejected,
    /// An action (signal, webhook, exec, verification) failed.
    Failed,
}

impl Result {
    /// `applied`, `rejected` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Result::Applied => "applied",
            Result::Rejected => "rejected",
            Result::Failed => "failed",
        }
    }
}

/// One source's latest outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The public digest of the content the outcome is about.
    #[serde(with = "digest_hex")]
    pub digest: Digest,
    /// When, as RFC 3339 UTC (`2026-11-22T09:33:20Z`).
    pub at: String,
    /// What happened.
    pub result: Result,
    /// Why, for `rejected` and `failed`: one line, never a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SourceReport {
    /// A report made now; `reason` is cut to its first line and [`MAX_REASON`] bytes.
    pub fn now(digest: Digest, result: Result, reason: Option<&str>) -> SourceReport {
        SourceReport {
            digest,
            at: rfc3339(SystemTime::now()),
            result,
            reason: reason.map(one_line),
        }
    }
}

/// A pod's report: every source it watches, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Report {
    /// Source name (a directory, `configmap/NAME`, `secret/NAME`) to its latest outcome.
    pub sources: BTreeMap<String, SourceReport>,
}

impl Report {
    /// Reads the annotation's value.
    pub fn parse(text: &str) -> std::result::Result<Report, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The annotation's value: compact JSON, sources in name order.
    pub fn to_json(&self) -> String {
        // A map of strings and plain structs always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The annotation to write when the pod carries `present` and this writer's own
    /// sources are `self`: several writers may report on one pod (a sidecar per object,
    /// the library in the application beside a sidecar), each owning the sources it
    /// names. Their entries are kept; ours replace the same names. An annotation that
    /// does not parse is replaced: nothing can be kept from it.
    pub fn over(&self, present: Option<&str>) -> Report {
        let mut merged = present
            .and_then(|text| Report::parse(text).ok())
            .unwrap_or_default();
        merged
            .sources
            .extend(self.sources.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }
}

/// The first line of `reason`, at most [`MAX_REASON`] bytes.
fn one_line(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("").trim();
    if line.len() <= MAX_REASON {
        return line.to_owned();
    }
    let mut end = MAX_REASON;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// `2026-11-22T09:33:20Z`: the instant in UTC, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let (date, (h, m, s), _) = utc(at);
    format!(
        "{}-{:02}-{:02}T{h:02}:{m:02}:{s:02}Z",
        date.0, date.1, date.2
    )
}

/// The calendar date, the time of day and the nanoseconds of `at` in UTC.
pub fn utc(at: SystemTime) -> ((i64, u32, u32), (u64, u64, u64), u32) {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let date = civil_from_days(days as i64);
    (
        date,
        (rest / 3600, rest % 3600 / 60, rest % 60),
        since.subsec_nanos(),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

mod digest_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::digest::Digest;

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom("a digest is 64 lowercase hex characters"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mk_digest(content: &str) -> Digest {
        *crate::Snapshot::from_entries([("k", content)]).digest()
    }

    #[test]
    fn times_are_utc_calendar_times() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_340_000);
        assert_eq!(rfc3339(at), "2026-11-22T09:33:20Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn reports_round_trip_and_omit_an_absent_reason() {
        let mut report = Report::default();
        report.sources.insert(
            "configmap/app".into(),
            SourceReport::now(mk_digest("a"), Result::Applied, None),
        );
        report.sources.insert(
            "/etc/app".into(),
            SourceReport::now(
                mk_digest("b"),
                Result::Rejected,
                Some("nginx: [emerg] unknown directive\nmore"),
            ),
        );
        let json = report.to_json();
        assert!(!json.contains("\"reason\":null"), "{json}");
        assert!(json.contains("\"result\":\"rejected\""), "{json}");
        assert_eq!(Report::parse(&json).expect("parse"), report);
        assert_eq!(
            report.sources["/etc/app"].reason.as_deref(),
            Some("nginx: [emerg] unknown directive")
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(150);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_REASON + "…".len(), "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn our_entries_replace_our_sources_and_keep_the_others() {
        let mut theirs = Report::default();
        theirs.sources.insert(
            "secret/db".into(),
            SourceReport::now(mk_digest("s"), Result::Applied, None),
        );
        theirs.sources.insert(
            "configmap/app".into(),
            SourceReport::now(mk_digest("old"), Result::Applied, None),
        );
        let mut ours = Report::default();
        ours.sources.insert(
            "configmap/app".into(),
            SourceReport::now(mk_digest("new"), Result::Rejected, Some("bad")),
        );
        let merged = ours.over(Some(&theirs.to_json()));
        assert_eq!(
            merged.sources.keys().collect::<Vec<_>>(),
            ["configmap/app", "secret/db"]
        );
        assert_eq!(
            merged.sources["configmap/app"],
            ours.sources["configmap/app"]
        );
        assert_eq!(merged.sources["secret/db"], theirs.sources["secret/db"]);
        // Nothing there, or nothing readable: ours alone.
        assert_eq!(ours.over(None), ours);
        assert_eq!(ours.over(Some("{not json")), ours);
    }

    #[test]
    fn a_bad_digest_is_refused() {
        let text = r#"{"x":{"digest":"nothex","at":"t","result":"applied"}}"#;
        let error = Report::parse(text).expect_err("bad digest").to_string();
        assert!(error.contains("64 lowercase hex"), "{error}");
        let text = r#"{"x":{"digest":"nothex","at":"t","result":"maybe"}}"#;
        assert!(Report::parse(text).is_err());
    }
}
