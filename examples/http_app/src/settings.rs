//! The app's settings as they appear in its ConfigMap, and what makes them valid.

use std::collections::BTreeMap;

use rekindle::ValidationError;
use serde::{Deserialize, Serialize};

/// `LOG_LEVEL`: one of the four levels, lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

pub const MAX_CONNECTIONS_LIMIT: u32 = 10_000;

/// One key per field; a key left out of the ConfigMap takes its default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Settings {
    #[serde(rename(deserialize = "LOG_LEVEL"), default)]
    pub log_level: LogLevel,
    #[serde(
        rename(deserialize = "MAX_CONNECTIONS"),
        default = "default_max_connections"
    )]
    pub max_connections: u32,
    #[serde(rename(deserialize = "features.json"), default)]
    pub feature_flags: BTreeMap<String, bool>,
}

fn default_max_connections() -> u32 {
    100
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: LogLevel::default(),
            max_connections: default_max_connections(),
            feature_flags: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Rules the types cannot express.
    ///
    /// Reasons name the key and the rule, never the value: they reach logs and
    /// `GET /config`, and the same code may validate a Secret.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(ValidationError::for_key(
                "MAX_CONNECTIONS",
                format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
            ));
        }
        Ok(())
    }

    pub fn feature_enabled(&self, name: &str) -> bool {
        self.feature_flags.get(name).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rekindle::Snapshot;

    fn decode(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let snapshot = Snapshot::from_entries(pairs.iter().copied());
        let settings: Settings =
            rekindle::typed::from_snapshot(&snapshot).map_err(|e| e.to_string())?;
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }

    #[test]
    fn reads_all_three_keys() {
        let s = decode(&[
            ("LOG_LEVEL", "debug\n"),
            ("MAX_CONNECTIONS", "250\n"),
            ("features.json", r#"{"a": true, "b": false}"#),
        ])
        .expect("valid");
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!(s.max_connections, 250);
        assert!(s.feature_enabled("a"));
        assert!(!s.feature_enabled("b"));
        assert!(!s.feature_enabled("unknown"));
    }

    #[test]
    fn missing_keys_take_defaults() {
        assert_eq!(decode(&[]).expect("defaults"), Settings::default());
    }

    #[test]
    fn invalid_values_are_rejected_with_the_key_but_not_the_value() {
        let bad = [
            (
                ("LOG_LEVEL", "verbose"),
                Some("verbose"),
                "LOG_LEVEL: unknown variant",
            ),
            // "0" is in the rule's own text; the next case shows the value is left out.
            (
                ("MAX_CONNECTIONS", "0"),
                None,
                "MAX_CONNECTIONS: must be between 1 and 10000",
            ),
            (
                ("MAX_CONNECTIONS", "10001"),
                Some("10001"),
                "MAX_CONNECTIONS: must be between 1 and 10000",
            ),
            (
                ("MAX_CONNECTIONS", "many"),
                Some("many"),
                "MAX_CONNECTIONS: not a",
            ),
            (
                ("features.json", r#"{"a": "yes"}"#),
                Some("yes"),
                "features.json.a: invalid type: a string, expected a boolean",
            ),
            (
                ("features.json", "{"),
                Some("{"),
                "features.json: invalid JSON at line 1",
            ),
        ];
        for ((key, value), hidden, expected) in bad {
            let err = decode(&[(key, value)]).expect_err(value);
            assert!(err.starts_with(expected), "{key}={value:?}: {err}");
            let after_key = &err[key.len()..];
            if let Some(hidden) = hidden {
                assert!(!after_key.contains(hidden), "{key}={value:?}: {err}");
            }
        }
    }
}
