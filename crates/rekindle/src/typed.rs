//! Typed configuration: a user type deserialized from a whole snapshot with serde.
//!
//! The snapshot is presented to serde as a map from key to value, nested where keys
//! contain `/`. A key's value is decoded by its extension ([`Format`]): JSON, YAML and
//! TOML files become structured values, anything else is raw text parsed on demand, so
//! `MAX_CONNECTIONS` holding `"100\n"` fills a `u32` field. Fields are named after keys:
//! `#[serde(rename = "features.json")]`. A file is parsed only if the type asks for it,
//! so a broken file the type ignores does not block a reload.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::format::{DecodeError, Format};
use crate::snapshot::Snapshot;

/// Deserializes `T` from every key of `snapshot`; errors name the key and field.
pub fn from_snapshot<T: DeserializeOwned>(snapshot: &Snapshot) -> Result<T, DecodeError> {
    let mut root = BTreeMap::new();
    for (key, value) in snapshot.iter() {
        insert(&mut root, key, key, value);
    }
    serde_path_to_error::deserialize(Node::Dir(root))
        .map_err(|e| DecodeError::new(e.path().to_string(), e.inner().to_string()))
}

/// Deserializes `T` from one raw value (see the module docs for how text is parsed).
pub(crate) fn from_raw<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
    T::deserialize(Raw { bytes }).map_err(|e| DecodeError::new(key, e.0))
}

fn insert<'a>(dir: &mut BTreeMap<&'a str, Node<'a>>, rest: &'a str, key: &'a str, bytes: &'a [u8]) {
    match rest.split_once('/') {
        None => {
            dir.insert(rest, Node::File { key, bytes });
        }
        Some((head, tail)) => {
            let child = dir
                .entry(head)
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            if let Node::Dir(child) = child {
                insert(child, tail, key, bytes);
            }
        }
    }
}

/// The error serde builds while deserializing; turned into a [`DecodeError`] with its path.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

enum Node<'a> {
    Dir(BTreeMap<&'a str, Node<'a>>),
    File { key: &'a str, bytes: &'a [u8] },
}

impl<'de> IntoDeserializer<'de, Error> for Node<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// What a file node becomes once its format is known.
enum Leaf<'a> {
    Raw(Raw<'a>),
    Value(serde_json::Value),
}

impl<'a> Node<'a> {
    fn leaf(key: &str, bytes: &'a [u8]) -> Result<Leaf<'a>, Error> {
        match Format::from_key(key) {
            Format::Raw => Ok(Leaf::Raw(Raw { bytes })),
            format => format
                .parse(key, bytes)
                .map(Leaf::Value)
                .map_err(|e| Error(e.reason)),
        }
    }
}

fn visit_dir<'de, V: Visitor<'de>>(
    entries: BTreeMap<&'de str, Node<'de>>,
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = MapDeserializer::new(
        entries
            .into_iter()
            .map(|(k, v)| (BorrowedStrDeserializer::<Error>::new(k), v)),
    );
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

/// Sends a deserializer call to the directory, raw text or structured value behind a node.
macro_rules! dispatch {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self {
                Node::Dir(entries) => visit_dir(entries, visitor),
                Node::File { key, bytes } => match Node::leaf(key, bytes)? {
                    Leaf::Raw(raw) => raw.$method(visitor),
                    Leaf::Value(value) => value.$method(visitor).map_err(de::Error::custom),
                },
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = Error;

    dispatch!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
    );

    /// A key the type does not ask for is skipped unparsed: its syntax is not our business.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Node::Dir(_) => Err(de::Error::custom("a directory cannot be an enum")),
            Node::File { key, bytes } => match Node::leaf(key, bytes)? {
                Leaf::Raw(raw) => raw.deserialize_enum(name, variants, visitor),
                Leaf::Value(value) => value
                    .deserialize_enum(name, variants, visitor)
                    .map_err(de::Error::custom),
            },
        }
    }
}

/// One raw value: text parsed on demand, or bytes.
struct Raw<'a> {
    bytes: &'a [u8],
}

impl<'a> Raw<'a> {
    /// The text with one trailing line ending removed: values written with `echo` or
    /// `kubectl create configmap --from-file` usually end with one.
    fn text(&self) -> Result<&'a str, Error> {
        let text = std::str::from_utf8(self.bytes).map_err(|e| Error(format!("not UTF-8: {e}")))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        Ok(text.strip_suffix('\r').unwrap_or(text))
    }

    fn parse<T>(&self, what: &str) -> Result<T, Error>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        let text = self.text()?;
        text.trim()
            .parse()
            .map_err(|e| Error(format!("{text:?} is not {what}: {e}")))
    }
}

macro_rules! parse_scalar {
    ($($method:ident => $visit:ident($ty:ty, $what:literal)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Raw<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.text() {
            Ok(text) => visitor.visit_borrowed_str(text),
            Err(_) => visitor.visit_borrowed_bytes(self.bytes),
        }
    }

    parse_scalar!(
        deserialize_bool => visit_bool(bool, "a boolean (true or false)"),
        deserialize_i8 => visit_i8(i8, "an integer in range for i8"),
        deserialize_i16 => visit_i16(i16, "an integer in range for i16"),
        deserialize_i32 => visit_i32(i32, "an integer in range for i32"),
        deserialize_i64 => visit_i64(i64, "an integer in range for i64"),
        deserialize_u8 => visit_u8(u8, "a non-negative integer in range for u8"),
        deserialize_u16 => visit_u16(u16, "a non-negative integer in range for u16"),
        deserialize_u32 => visit_u32(u32, "a non-negative integer in range for u32"),
        deserialize_u64 => visit_u64(u64, "a non-negative integer in range for u64"),
        deserialize_f32 => visit_f32(f32, "a number"),
        deserialize_f64 => visit_f64(f64, "a number"),
        deserialize_char => visit_char(char, "a single character"),
    );

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.bytes)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.bytes)
    }

    /// An empty value is an absent one: `Option<u32>` from `""` is `None`, not an error.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(BorrowedStrDeserializer::new(self.text()?.trim()))
    }

    forward_to_deserialize_any! {
        i128 u128 str string unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Level {
        Debug,
        Info,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Settings {
        #[serde(rename = "LOG_LEVEL")]
        level: Level,
        #[serde(rename = "MAX_CONNECTIONS")]
        max_connections: u32,
        #[serde(rename = "features.json", default)]
        features: HashMap<String, bool>,
        #[serde(rename = "TIMEOUT")]
        timeout: Option<f64>,
        db: Db,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Db {
        #[serde(rename = "url")]
        url: String,
        #[serde(rename = "pool.yaml")]
        pool: Pool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Pool {
        size: u16,
    }

    fn snapshot() -> Vec<(&'static str, &'static str)> {
        vec![
            ("LOG_LEVEL", "debug\n"),
            ("MAX_CONNECTIONS", " 250\n"),
            ("features.json", r#"{"beta": true}"#),
            ("TIMEOUT", ""),
            ("db/url", "postgres://db\n"),
            ("db/pool.yaml", "size: 8\n"),
            ("unrelated.json", "{ broken"),
        ]
    }

    #[test]
    fn whole_snapshot_fills_a_typed_struct() {
        let snap = Snapshot::from_entries(snapshot());
        let settings: Settings = from_snapshot(&snap).expect("decode");
        assert_eq!(settings.level, Level::Debug);
        assert_eq!(settings.max_connections, 250);
        assert_eq!(settings.features.get("beta"), Some(&true));
        assert_eq!(settings.timeout, None);
        assert_eq!(settings.db.url, "postgres://db");
        assert_eq!(settings.db.pool, Pool { size: 8 });
    }

    #[test]
    fn errors_name_the_key() {
        let mut entries = snapshot();
        entries[1] = ("MAX_CONNECTIONS", "lots");
        let err =
            from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("bad number");
        assert_eq!(err.path, "MAX_CONNECTIONS");
        assert!(
            err.reason
                .contains("\"lots\" is not a non-negative integer"),
            "{err}"
        );
    }

    #[test]
    fn errors_inside_nested_files_name_key_and_field() {
        let mut entries = snapshot();
        entries[5] = ("db/pool.yaml", "size: -1\n");
        let err =
            from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("negative");
        assert_eq!(err.path, "db.pool.yaml.size");
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let mut entries = snapshot();
        entries[2] = ("features.json", "{\"beta\": tru");
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("syntax");
        assert_eq!(err.path, "features.json");
        assert!(err.reason.contains("invalid Json"), "{err}");
    }

    #[test]
    fn unknown_enum_value_and_missing_key_are_explained() {
        let mut entries = snapshot();
        entries[0] = ("LOG_LEVEL", "loud");
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("variant");
        assert_eq!(err.path, "LOG_LEVEL");
        assert!(err.reason.contains("unknown variant `loud`"), "{err}");

        let mut entries = snapshot();
        entries.remove(1);
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("missing");
        assert!(
            err.reason.contains("missing field `MAX_CONNECTIONS`"),
            "{err}"
        );
    }

    #[test]
    fn binary_values_reach_byte_fields() {
        #[derive(Deserialize)]
        struct Tls {
            #[serde(rename = "key.der", with = "serde_bytes_compat")]
            key: Vec<u8>,
        }
        mod serde_bytes_compat {
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<u8>, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Vec<u8>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                        Ok(v.to_vec())
                    }
                }
                d.deserialize_bytes(V)
            }
        }
        let bytes = [0u8, 255, 10];
        let snap = Snapshot::from_entries([("key.der", bytes.to_vec())]);
        let tls: Tls = from_snapshot(&snap).expect("bytes");
        assert_eq!(tls.key, bytes);
    }
}
