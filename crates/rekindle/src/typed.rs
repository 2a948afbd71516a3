//! Typed configuration: a user type deserialized from a whole snapshot with serde.
//!
//! The snapshot is presented to serde as a map from key to value, nested where keys
//! contain `/`. A key's value is decoded by its extension ([`Format`]): JSON, YAML and
//! TOML files become structured values, anything else is raw text parsed on demand, so
//! `MAX_CONNECTIONS` holding `"100\n"` fills a `u32` field. Fields are named after keys:
//! `#[serde(rename = "features.json")]`. A file is parsed only if the type asks for it,
//! so a broken file the type ignores does not block a reload.
//!
//! Values may be Secret material, so no error built here quotes one: errors name the
//! key, the field path inside a file, the type expected and the kind of value found
//! ("a string", "an integer"), never its content. Serde's own messages quote values
//! (`invalid type: string "hunter2"`), so this module's error type replaces every one of
//! them that would, and structured files are walked by a deserializer of our own rather
//! than `serde_json::Value`'s, whose errors quote. Messages a type builds itself with
//! `serde::de::Error::custom` are passed through as they are: keep values out of them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, Unexpected,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::Value;

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

/// Deserializes `T` from the parsed content of the structured file `key`.
pub(crate) fn from_structured<T: DeserializeOwned>(
    key: &str,
    value: Value,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(Structured(value))
        .map_err(|e| DecodeError::at_path(key, e.path().to_string(), e.inner()))
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
///
/// Its constructors describe an unexpected value by its kind only; see the module docs.
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

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Error(format!(
            "invalid type: {}, expected {expected}",
            kind_of(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Error(format!(
            "invalid value: {}, expected {expected}",
            kind_of(&unexpected)
        ))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Error(match expected {
            [] => "unknown variant: there are no variants".to_owned(),
            _ => format!("unknown variant, expected {}", one_of(expected)),
        })
    }
}

/// What kind of value serde found, without the value: `Unexpected`'s own `Display`
/// quotes it (`string "hunter2"`, `integer 1234`).
fn kind_of(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a floating-point number",
        Unexpected::Char(_) => "a character",
        Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "null",
        Unexpected::Option => "an optional value",
        Unexpected::NewtypeStruct => "a newtype struct",
        Unexpected::Seq => "a sequence",
        Unexpected::Map => "a map",
        Unexpected::Enum => "an enum",
        Unexpected::UnitVariant => "a unit variant",
        Unexpected::NewtypeVariant => "a newtype variant",
        Unexpected::TupleVariant => "a tuple variant",
        Unexpected::StructVariant => "a struct variant",
        // A free-form description chosen by whoever reported it: it could be anything.
        Unexpected::Other(_) => "another kind of value",
    }
}

/// `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``: names from the type, not the data.
fn one_of(names: &[&str]) -> String {
    match names {
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
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
    Structured(Structured),
}

impl<'a> Node<'a> {
    fn leaf(key: &str, bytes: &'a [u8]) -> Result<Leaf<'a>, Error> {
        match Format::from_key(key) {
            Format::Raw => Ok(Leaf::Raw(Raw { bytes })),
            format => format
                .parse(key, bytes)
                .map(|value| Leaf::Structured(Structured(value)))
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
                    Leaf::Structured(value) => value.$method(visitor),
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
                Leaf::Structured(value) => value.deserialize_enum(name, variants, visitor),
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
        // `Utf8Error` says where the text stops being UTF-8, never what it holds.
        let text = std::str::from_utf8(self.bytes).map_err(|e| Error(format!("not UTF-8: {e}")))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        Ok(text.strip_suffix('\r').unwrap_or(text))
    }

    fn parse<T>(&self, what: &str) -> Result<T, Error>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        // Only the standard library's scalar types come here; their parse errors describe
        // the problem ("invalid digit found in string") without the text.
        self.text()?
            .trim()
            .parse()
            .map_err(|e| Error(format!("not {what} ({e})")))
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

    /// A type asking for text gets the reason the value is not text, rather than "invalid
    /// type: bytes".
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

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
        i128 u128 unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The parsed content of a JSON, YAML or TOML file, deserialized with [`Error`] so that
/// type errors inside files are as value-free as everywhere else.
struct Structured(Value);

impl<'de> IntoDeserializer<'de, Error> for Structured {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl Structured {
    fn kind(&self) -> Unexpected<'static> {
        match &self.0 {
            Value::Null => Unexpected::Unit,
            Value::Bool(_) => Unexpected::Bool(false),
            Value::Number(n) if n.is_f64() => Unexpected::Float(0.0),
            Value::Number(_) => Unexpected::Signed(0),
            Value::String(_) => Unexpected::Str(""),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }
}

impl<'de> de::Deserializer<'de> for Structured {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(f) = n.as_f64() {
                    visitor.visit_f64(f)
                } else {
                    Err(de::Error::custom("a number that cannot be represented"))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Structured));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(entries) => {
                let mut map = MapDeserializer::new(
                    entries.into_iter().map(|(k, v)| (MapKey(k), Structured(v))),
                );
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// `"variant"` for a unit variant, `{"variant": value}` for the others: serde's
    /// external tagging, as JSON spells it.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            Value::Object(entries) if entries.len() == 1 => {
                let Some((variant, value)) = entries.into_iter().next() else {
                    return Err(de::Error::invalid_length(0, &"a map with a single key"));
                };
                visitor.visit_enum(Tagged { variant, value })
            }
            _ => Err(de::Error::invalid_type(
                self.kind(),
                &"a string or a map with a single key",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// An externally tagged enum value: `{"variant": value}`.
struct Tagged {
    variant: String,
    value: Value,
}

impl<'de> EnumAccess<'de> for Tagged {
    type Error = Error;
    type Variant = Structured;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Structured), Error> {
        let variant = seed.deserialize(MapKey(self.variant))?;
        Ok((variant, Structured(self.value)))
    }
}

impl<'de> VariantAccess<'de> for Structured {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            Value::Null => Ok(()),
            _ => Err(de::Error::invalid_type(self.kind(), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

/// A key of a map inside a structured file. JSON keys are always strings, so a map with
/// number or boolean keys (`{"1": true}` as a `HashMap<u32, bool>`) parses them from
/// the text, as `serde_json` does.
struct MapKey(String);

impl<'de> IntoDeserializer<'de, Error> for MapKey {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl MapKey {
    fn parse<T>(&self, what: &str) -> Result<T, Error>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        self.0
            .parse()
            .map_err(|e| Error(format!("a map key that is not {what} ({e})")))
    }
}

macro_rules! parse_key {
    ($($method:ident => $visit:ident($ty:ty, $what:literal)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for MapKey {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    parse_key!(
        deserialize_bool => visit_bool(bool, "a boolean"),
        deserialize_i8 => visit_i8(i8, "an integer in range for i8"),
        deserialize_i16 => visit_i16(i16, "an integer in range for i16"),
        deserialize_i32 => visit_i32(i32, "an integer in range for i32"),
        deserialize_i64 => visit_i64(i64, "an integer in range for i64"),
        deserialize_i128 => visit_i128(i128, "an integer in range for i128"),
        deserialize_u8 => visit_u8(u8, "a non-negative integer in range for u8"),
        deserialize_u16 => visit_u16(u16, "a non-negative integer in range for u16"),
        deserialize_u32 => visit_u32(u32, "a non-negative integer in range for u32"),
        deserialize_u64 => visit_u64(u64, "a non-negative integer in range for u64"),
        deserialize_u128 => visit_u128(u128, "a non-negative integer in range for u128"),
        deserialize_f32 => visit_f32(f32, "a number"),
        deserialize_f64 => visit_f64(f64, "a number"),
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
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
        assert!(err.reason.contains("not a non-negative integer"), "{err}");
        assert!(!format!("{err} {err:?}").contains("lots"), "{err:?}");
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
        assert!(
            err.reason.starts_with("invalid JSON at line 1, column 12"),
            "{err}"
        );
    }

    #[test]
    fn unknown_enum_value_and_missing_key_are_explained() {
        let mut entries = snapshot();
        entries[0] = ("LOG_LEVEL", "loud");
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("variant");
        assert_eq!(err.path, "LOG_LEVEL");
        assert_eq!(err.reason, "unknown variant, expected `debug` or `info`");

        let mut entries = snapshot();
        entries.remove(1);
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("missing");
        assert!(
            err.reason.contains("missing field `MAX_CONNECTIONS`"),
            "{err}"
        );
    }

    #[test]
    fn type_errors_in_files_name_the_kind_not_the_value() {
        let mut entries = snapshot();
        entries[2] = ("features.json", r#"{"beta": "yes"}"#);
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("type");
        assert_eq!(err.path, "features.json.beta");
        assert_eq!(err.reason, "invalid type: a string, expected a boolean");

        let mut entries = snapshot();
        entries[5] = ("db/pool.yaml", "size: 70000\n");
        let err = from_snapshot::<Settings>(&Snapshot::from_entries(entries)).expect_err("range");
        assert_eq!(err.path, "db.pool.yaml.size");
        assert_eq!(err.reason, "invalid value: an integer, expected u16");
    }

    #[test]
    fn structured_files_keep_serde_json_conventions() {
        #[derive(Debug, Deserialize, PartialEq)]
        enum Mode {
            Off,
            Fixed(u32),
            Range { low: u32, high: u32 },
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Tuning {
            // JSON keys are strings; numeric map keys are parsed from them.
            weights: BTreeMap<u32, f64>,
            modes: Vec<Mode>,
            note: Option<String>,
            pair: (bool, char),
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Top {
            #[serde(rename = "tuning.json")]
            tuning: Tuning,
        }
        let json = r#"{
            "weights": {"1": 0.5, "2": 2},
            "modes": ["Off", {"Fixed": 3}, {"Range": {"low": 1, "high": 2}}],
            "note": null,
            "pair": [true, "x"]
        }"#;
        let top: Top =
            from_snapshot(&Snapshot::from_entries([("tuning.json", json)])).expect("decode");
        assert_eq!(
            top.tuning,
            Tuning {
                weights: BTreeMap::from([(1, 0.5), (2, 2.0)]),
                modes: vec![Mode::Off, Mode::Fixed(3), Mode::Range { low: 1, high: 2 }],
                note: None,
                pair: (true, 'x'),
            }
        );
        let err = from_snapshot::<Top>(&Snapshot::from_entries([(
            "tuning.json",
            r#"{"weights": {"one": 1}, "modes": [], "note": null, "pair": [true, "x"]}"#,
        )]))
        .expect_err("a key that is not a number");
        assert!(err.reason.contains("a map key that is not"), "{err}");
        assert!(!err.reason.contains("one"), "{err}");
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
