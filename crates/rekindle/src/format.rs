//! Per-file decoders, chosen by the key's extension.

use serde::de::DeserializeOwned;
use serde_json::Value;

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
    ///
    /// Errors never quote the value (it may be a Secret): they name the key, the field
    /// inside the file, what was expected, and for syntax errors the line and column.
    pub fn decode<T: DeserializeOwned>(self, key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Format::Raw => crate::typed::from_raw(key, bytes),
            _ => crate::typed::from_structured(key, self.parse(key, bytes)?),
        }
    }

    /// The format's name as people write it.
    fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        }
    }

    /// Parses a structured file into a generic value. Syntax errors carry the line and
    /// column and a description that never quotes the document: each parser's own
    /// rendering of an error shows the offending line, which may hold a Secret.
    pub(crate) fn parse(self, key: &str, bytes: &[u8]) -> Result<Value, DecodeError> {
        let parsed = match self {
            Format::Raw => return Err(DecodeError::new(key, "raw values have no structure")),
            Format::Json => parse_json(bytes),
            #[cfg(feature = "yaml")]
            Format::Yaml => parse_yaml(utf8(key, bytes)?),
            #[cfg(feature = "toml")]
            Format::Toml => parse_toml(utf8(key, bytes)?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(DecodeError::new(
                    key,
                    format!(
                        "{} support is not built in (enable rekindle's `{}` feature)",
                        other.name(),
                        other.name().to_ascii_lowercase()
                    ),
                ));
            }
        };
        parsed.map_err(|syntax| DecodeError::new(key, syntax.describe(self.name())))
    }
}

/// Where a structured file stopped making sense, and why, in words free of its content.
struct SyntaxError {
    /// 1-based line and column, when the parser knows them.
    position: Option<(u64, u64)>,
    description: String,
}

impl SyntaxError {
    fn describe(&self, format: &str) -> String {
        match self.position {
            Some((line, column)) => {
                format!(
                    "invalid {format} at line {line}, column {column}: {}",
                    self.description
                )
            }
            None => format!("invalid {format}: {}", self.description),
        }
    }
}

/// Used when a parser reports something whose own description could quote the document.
const UNREPRESENTABLE: &str = "a value that cannot be represented";

fn parse_json(bytes: &[u8]) -> Result<Value, SyntaxError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let position = (e.line() > 0).then(|| (e.line() as u64, e.column() as u64));
        let description = match e.classify() {
            // serde_json's syntax messages are fixed texts ("expected value", "EOF while
            // parsing a string"); only its data errors are built from the input, and
            // parsing into a generic value produces none. Its `Display` adds the position,
            // which we say our own way.
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                let text = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                UNREPRESENTABLE.to_owned()
            }
        };
        SyntaxError {
            position,
            description,
        }
    })
}

#[cfg(feature = "yaml")]
fn parse_yaml(text: &str) -> Result<Value, SyntaxError> {
    use serde_saphyr::Error as E;
    serde_saphyr::from_str(text).map_err(|e| {
        let position = e
            .location()
            .map(|at| (at.line(), at.column()))
            .filter(|&(line, _)| line > 0);
        // serde-saphyr's `Display` (and `Debug`) render a snippet of the document around
        // the error, and several of its variants carry scalars from it. Only a few kinds
        // are named here, in fixed words; the rest are a syntax error at a position.
        let description = match e.without_snippet() {
            E::Eof { .. } => "unexpected end of the document",
            E::MultipleDocuments { .. } => "more than one document",
            E::DuplicateMappingKey { .. } => "a key appears twice in one mapping",
            E::UnknownAnchor { .. } => "an alias names an anchor that is not defined",
            E::AliasReplayCounterOverflow { .. }
            | E::AliasReplayLimitExceeded { .. }
            | E::AliasExpansionLimitExceeded { .. }
            | E::AliasReplayStackDepthExceeded { .. }
            | E::Budget { .. } => "the document exceeds the parser's limits",
            E::NonFiniteFloat { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::SerdeInvalidLength { .. } => UNREPRESENTABLE,
            _ => "syntax error",
        };
        SyntaxError {
            position,
            description: description.to_owned(),
        }
    })
}

#[cfg(feature = "toml")]
fn parse_toml(text: &str) -> Result<Value, SyntaxError> {
    use serde::Deserialize as _;
    let position = |e: &toml::de::Error| e.span().map(|span| line_and_column(text, span.start));
    // Two steps, so that each error is known to come from one of them. Parsing reports
    // fixed descriptions ("string values must be quoted") and the span; toml's `Display`
    // would print the offending line, so it is never used.
    let document = toml::de::Deserializer::parse(text).map_err(|e| SyntaxError {
        position: position(&e),
        description: e.message().to_owned(),
    })?;
    // Turning the parsed document into a generic value can only fail on a value too big
    // for it; that message comes from serde and may quote the value.
    Value::deserialize(document).map_err(|e| SyntaxError {
        position: position(&e),
        description: UNREPRESENTABLE.to_owned(),
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
#[cfg(feature = "toml")]
fn line_and_column(text: &str, offset: usize) -> (u64, u64) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line as u64, column as u64)
}

#[cfg(any(feature = "yaml", feature = "toml"))]
fn utf8<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    // `Utf8Error` says where the text stops being UTF-8, never what it holds.
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

    /// An error at `inner_path` (serde_path_to_error's notation) inside the file `key`.
    pub(crate) fn at_path(
        key: &str,
        inner_path: String,
        reason: &impl std::fmt::Display,
    ) -> DecodeError {
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
            assert!(err.reason.contains(" at line 1, column "), "{err}");
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
        assert_eq!(err.reason, "invalid type: a string, expected a boolean");
    }

    #[test]
    fn raw_values_parse_from_trimmed_text() {
        let snap = Snapshot::from_entries([("N", "42\n"), ("S", "hello\n"), ("B", "true")]);
        assert_eq!(snap.decode::<u32>("N"), Ok(42));
        assert_eq!(snap.decode::<String>("S"), Ok("hello".to_owned()));
        assert_eq!(snap.decode::<bool>("B"), Ok(true));
        let err = snap.decode::<u32>("S").expect_err("not a number");
        assert_eq!(err.path, "S");
        assert!(err.reason.contains("not a non-negative integer"), "{err}");
        assert!(!format!("{err} {err:?}").contains("hello"), "{err:?}");
        assert!(
            snap.decode::<u32>("missing")
                .expect_err("absent")
                .reason
                .contains("no such key")
        );
    }
}
