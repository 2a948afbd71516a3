//! Per-file decoders, chosen by the key's extension.

use serde::de::DeserializeOwned;

use crate::snapshot::Snapshot;

/// How a file's bytes are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text or bytes as they are (`LOG_LEVEL`, a certificate, a binary blob).
    Raw,
    /// `.json`
    Json,
    /// `.yaml` or `.yml` (feature `yaml`)
    Yaml,
    /// `.toml` (feature `toml`)
    Toml,
}

impl Format {
    /// The format a key's extension names (case-insensitive); anything else is [`Format::Raw`].
    pub fn from_key(key: &str) -> Format {
        let extension = key
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "json" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "toml" => Format::Toml,
            _ => Format::Raw,
        }
    }

    /// Decodes `bytes` (the value of `key`, named in errors) into `T`.
    ///
    /// For [`Format::Raw`], text is given to `T` as a string with one trailing newline
    /// removed; numbers and booleans are parsed from the trimmed text.
    pub fn decode<T: DeserializeOwned>(self, key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Format::Raw => crate::typed::from_raw(key, bytes),
            _ => {
                let value = self.parse(key, bytes)?;
                serde_path_to_error::deserialize(value)
                    .map_err(|e| DecodeError::at_path(key, e.path().to_string(), e.inner()))
            }
        }
    }

    /// Parses a structured file into a generic value; errors carry line and column.
    pub(crate) fn parse(self, key: &str, bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
        let parsed = match self {
            Format::Raw => return Err(DecodeError::new(key, "raw values have no structure")),
            Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            #[cfg(feature = "yaml")]
            Format::Yaml => serde_saphyr::from_str(utf8(key, bytes)?).map_err(|e| e.to_string()),
            #[cfg(feature = "toml")]
            Format::Toml => toml::from_str(utf8(key, bytes)?).map_err(|e| e.to_string()),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "{other:?} support is not built in (enable rekindle's `{}` feature)",
                format!("{other:?}").to_ascii_lowercase()
            )),
        };
        parsed.map_err(|reason| DecodeError::new(key, format!("invalid {self:?}: {reason}")))
    }
}

#[cfg(any(feature = "yaml", feature = "toml"))]
fn utf8<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| DecodeError::new(key, format!("not UTF-8: {e}")))
}

impl Snapshot {
    /// Decodes one key by its extension (see [`Format::from_key`]).
    pub fn decode<T: DeserializeOwned>(&self, key: &str) -> Result<T, DecodeError> {
        let bytes = self
            .get(key)
            .ok_or_else(|| DecodeError::new(key, "no such key"))?;
        Format::from_key(key).decode(key, bytes)
    }
}

/// A value that could not be decoded, with the key (and the path inside it) that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", self.location())]
pub struct DecodeError {
    /// The snapshot key, or the path of keys and fields, where decoding failed.
    pub path: String,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    /// An error concerning `path` as a whole.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn at_path(key: &str, inner_path: String, reason: &impl std::fmt::Display) -> DecodeError {
        let path = if inner_path == "." {
            key.to_owned()
        } else {
            format!("{key}: {inner_path}")
        };
        DecodeError::new(path, reason.to_string())
    }

    fn location(&self) -> &str {
        if self.path.is_empty() || self.path == "." {
            "config"
        } else {
            &self.path
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn extension_picks_the_format() {
        assert_eq!(Format::from_key("features.json"), Format::Json);
        assert_eq!(Format::from_key("dir/app.YML"), Format::Yaml);
        assert_eq!(Format::from_key("app.yaml"), Format::Yaml);
        assert_eq!(Format::from_key("Cargo.toml"), Format::Toml);
        assert_eq!(Format::from_key("LOG_LEVEL"), Format::Raw);
        assert_eq!(Format::from_key("tls.crt"), Format::Raw);
    }

    #[test]
    fn each_format_decodes_and_names_the_key_on_failure() {
        let snap = Snapshot::from_entries([
            ("a.json", "{\"x\": 1}"),
            ("b.yaml", "x: 1\n"),
            ("c.toml", "x = 1\n"),
            ("bad.json", "{\"x\": "),
            ("bad.yaml", "x: [1\n"),
            ("bad.toml", "x = = 1"),
        ]);
        for key in ["a.json", "b.yaml", "c.toml"] {
            let map: BTreeMap<String, u32> = snap.decode(key).expect(key);
            assert_eq!(map["x"], 1, "{key}");
        }
        for key in ["bad.json", "bad.yaml", "bad.toml"] {
            let err = snap.decode::<serde_json::Value>(key).expect_err(key);
            assert_eq!(err.path, key);
            assert!(
                err.to_string().starts_with(&format!("{key}: invalid")),
                "{err}"
            );
        }
    }

    #[test]
    fn type_errors_name_the_field_inside_the_file() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Flags {
            beta: bool,
        }
        let snap = Snapshot::from_entries([("flags.json", "{\"beta\": \"yes\"}")]);
        let err = snap
            .decode::<Flags>("flags.json")
            .expect_err("string is not bool");
        assert_eq!(err.path, "flags.json: beta");
        assert!(err.reason.contains("expected a boolean"), "{err}");
    }

    #[test]
    fn raw_values_parse_from_trimmed_text() {
        let snap = Snapshot::from_entries([("N", "42\n"), ("S", "hello\n"), ("B", "true")]);
        assert_eq!(snap.decode::<u32>("N"), Ok(42));
        assert_eq!(snap.decode::<String>("S"), Ok("hello".to_owned()));
        assert_eq!(snap.decode::<bool>("B"), Ok(true));
        let err = snap.decode::<u32>("S").expect_err("not a number");
        assert_eq!(err.path, "S");
        assert!(err.reason.contains("hello"), "{err}");
        assert!(
            snap.decode::<u32>("missing")
                .expect_err("absent")
                .reason
                .contains("no such key")
        );
    }
}
