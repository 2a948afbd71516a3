//! Every decoder (raw, JSON, YAML, TOML) through the reload pipeline: a
//! snapshot of generated files is applied to a `Reloadable` of a typed config
//! and of an untyped one.
//!
//! Checks that nothing panics, that a rejected change keeps the config in
//! force and is what `last_error` reports, that applying the same snapshot
//! again changes nothing, and that no error ever quotes a value: string values
//! carry a marker, and the marker must not appear in any error unless a name
//! (a file name, or a map key inside free-form bytes) carries it too.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rekindle::{Applied, Reloadable, Snapshot};
use serde::Deserialize;

const MARK: &str = "s3cr3tMARK";

#[derive(Arbitrary, Debug)]
struct Input {
    files: Vec<File>,
}

#[derive(Arbitrary, Debug)]
struct File {
    name: FileName,
    body: Body,
    /// How a structured document is written.
    syntax: Syntax,
}

#[derive(Arbitrary, Debug)]
enum FileName {
    /// One of the keys the typed config reads.
    Known(u8),
    Free(String),
}

const KNOWN: &[&str] = &[
    "app.json",
    "app.yaml",
    "app.yml",
    "app.toml",
    "LOG_LEVEL",
    "MAX_CONNECTIONS",
    "ENABLED",
    "RATIO",
    "tags",
    "nested/app.json",
    "nested/LEVEL",
    "APP.JSON",
];

#[derive(Arbitrary, Debug)]
enum Body {
    /// Free bytes: syntax errors and whatever the decoders make of them.
    Bytes(Vec<u8>),
    /// A secret-like value followed by free bytes (a raw value).
    Secret(Vec<u8>),
    /// A generated document, written in the file's syntax.
    Doc(Doc),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Syntax {
    /// JSON text (also valid YAML).
    Json,
    /// YAML block style.
    Yaml,
    /// TOML key/value lines.
    Toml,
}

#[derive(Arbitrary, Debug)]
enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Text),
    List(Vec<Doc>),
    Map(Vec<(u8, Doc)>),
}

#[derive(Arbitrary, Debug)]
enum Text {
    Secret(String),
    Level(u8),
    Free(String),
}

/// Field names of [`App`], plus some it does not know.
const FIELDS: &[&str] = &[
    "name", "port", "ratio", "tags", "mode", "limits", "inner", "enabled", "extra", "1",
];
const LEVELS: &[&str] = &["debug", "info", "warn", "error", "Info", ""];

impl Doc {
    fn to_json(&self, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        if depth > 6 {
            return Value::Null;
        }
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Int(i) => Value::from(*i),
            Doc::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Doc::Text(t) => Value::String(t.render()),
            Doc::List(items) => {
                Value::Array(items.iter().take(8).map(|d| d.to_json(depth + 1)).collect())
            }
            Doc::Map(entries) => Value::Object(
                entries
                    .iter()
                    .take(8)
                    .map(|(k, d)| {
                        let key = FIELDS[usize::from(*k) % FIELDS.len()].to_owned();
                        (key, d.to_json(depth + 1))
                    })
                    .collect(),
            ),
        }
    }
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Secret(tail) => format!("{MARK}{tail}"),
            Text::Level(i) => LEVELS[usize::from(*i) % LEVELS.len()].to_owned(),
            Text::Free(s) => s.replace(MARK, ""),
        }
    }
}

/// A JSON value as YAML block text. Strings are written as JSON strings,
/// which YAML reads as double-quoted scalars.
fn yaml(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.push_str(&format!("{pad}{k}:"));
                block_child(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for v in items {
                out.push_str(&format!("{pad}-"));
                block_child(v, indent, out);
            }
        }
        scalar => out.push_str(&format!("{pad}{scalar}\n")),
    }
}

fn block_child(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(value, indent + 2, out);
        }
        scalar => out.push_str(&format!(" {scalar}\n")),
    }
}

/// A JSON value as TOML: the top level as `key = value` lines, nested values
/// inline. Null has no TOML form and is left out.
fn toml(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn inline(value: &Value) -> Option<String> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64()?;
                if f.is_finite() {
                    format!("{f:?}")
                } else {
                    return None;
                }
            }
            Value::Number(n) => n.to_string(),
            Value::String(s) => serde_json::to_string(s).ok()?,
            Value::Array(items) => {
                format!(
                    "[{}]",
                    items
                        .iter()
                        .filter_map(inline)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Value::Object(map) => format!(
                "{{ {} }}",
                map.iter()
                    .filter_map(|(k, v)| Some(format!("{k:?} = {}", inline(v)?)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
    match value {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some(format!("{k:?} = {}\n", inline(v)?)))
            .collect(),
        other => format!("value = {}\n", inline(other).unwrap_or_default()),
    }
}

#[derive(Debug, Deserialize, Default)]
#[allow(dead_code)]
enum Mode {
    #[default]
    Fast,
    Safe,
}

#[derive(Debug, Deserialize, Default)]
#[allow(dead_code)]
struct App {
    name: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    ratio: f64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    limits: BTreeMap<String, u64>,
    #[serde(default)]
    inner: Option<Box<App>>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Level {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Debug, Deserialize, Default)]
#[allow(dead_code)]
struct Nested {
    #[serde(rename = "app.json")]
    app: Option<App>,
    #[serde(rename = "LEVEL")]
    level: Option<Level>,
}

#[derive(Debug, Deserialize, Default)]
#[allow(dead_code)]
struct Typed {
    #[serde(rename = "app.json")]
    json: Option<App>,
    #[serde(rename = "app.yaml")]
    yaml: Option<App>,
    #[serde(rename = "app.yml")]
    yml: Option<App>,
    #[serde(rename = "app.toml")]
    toml: Option<App>,
    #[serde(rename = "LOG_LEVEL")]
    level: Option<Level>,
    #[serde(rename = "MAX_CONNECTIONS")]
    max: Option<u32>,
    #[serde(rename = "ENABLED")]
    enabled: Option<bool>,
    #[serde(rename = "RATIO")]
    ratio: Option<f32>,
    tags: Option<Vec<String>>,
    nested: Option<Nested>,
}

fn check<T>(config: &Reloadable<T>, snapshot: &Snapshot, names_carry_mark: bool)
where
    T: Send + Sync + 'static,
{
    let before = config.current().version();
    match config.apply(snapshot) {
        Ok(Applied::New(applied)) => {
            assert!(applied.version() > before);
            assert!(config.last_error().is_none());
            assert!(matches!(config.apply(snapshot), Ok(Applied::Unchanged)));
        }
        Ok(Applied::Unchanged) => {}
        Err(error) => {
            assert_eq!(
                config.current().version(),
                before,
                "a rejected change was applied"
            );
            let last = config.last_error().expect("the rejection is recorded");
            assert_eq!(last.to_string(), error.to_string());
            let text = format!("{error} {error:?}");
            if !names_carry_mark {
                assert!(!text.contains(MARK), "an error quotes a value: {text}");
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut names_carry_mark = false;
    let mut entries = Vec::new();
    for file in input.files.iter().take(8) {
        let name = match &file.name {
            FileName::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_owned(),
            FileName::Free(s) => s.clone(),
        };
        names_carry_mark |= name.contains(MARK);
        let bytes = match &file.body {
            Body::Bytes(b) => {
                // A map key inside free bytes is a name, and may be quoted.
                names_carry_mark |= b.windows(MARK.len()).any(|w| w == MARK.as_bytes());
                b.clone()
            }
            Body::Secret(tail) => {
                let mut b = MARK.as_bytes().to_vec();
                b.extend_from_slice(tail);
                b
            }
            Body::Doc(doc) => {
                let value = doc.to_json(0);
                match file.syntax {
                    Syntax::Json => value.to_string().into_bytes(),
                    Syntax::Yaml => {
                        let mut out = String::new();
                        yaml(&value, 0, &mut out);
                        out.into_bytes()
                    }
                    Syntax::Toml => toml(&value).into_bytes(),
                }
            }
        };
        entries.push((name, bytes));
    }
    let snapshot = Snapshot::from_entries(entries);

    let typed = Reloadable::<Typed>::builder().build(Typed::default());
    check(&typed, &snapshot, names_carry_mark);
    let untyped = Reloadable::<serde_json::Value>::builder().build(serde_json::Value::Null);
    check(&untyped, &snapshot, names_carry_mark);
    // Each key on its own, by its extension, as `Snapshot::decode` does.
    for key in snapshot.keys() {
        if let Err(error) = snapshot.decode::<App>(key) {
            if !names_carry_mark {
                assert!(
                    !error.to_string().contains(MARK),
                    "an error quotes a value: {error}"
                );
            }
        }
    }
});
