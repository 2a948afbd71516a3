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
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(ValidationError::for_key(
                "MAX_CONNECTIONS",
                format!(
                    "must be between 1 and {MAX_CONNECTIONS_LIMIT}, got {}",
                    self.max_connections
                ),
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
    fn invalid_values_are_rejected_with_the_key() {
        let bad = [
            (("LOG_LEVEL", "verbose"), "LOG_LEVEL"),
            (
                ("MAX_CONNECTIONS", "0"),
                "MAX_CONNECTIONS: must be between 1 and 10000, got 0",
            ),
            (("MAX_CONNECTIONS", "10001"), "got 10001"),
            (("MAX_CONNECTIONS", "many"), "MAX_CONNECTIONS"),
            (("features.json", r#"{"a": "yes"}"#), "features.json"),
            (("features.json", "{"), "features.json: invalid Json"),
        ];
        for ((key, value), expected) in bad {
            let err = decode(&[(key, value)]).expect_err(value);
            assert!(err.contains(expected), "{key}={value:?}: {err}");
        }
    }
}
