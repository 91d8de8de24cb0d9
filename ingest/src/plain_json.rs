//! JSON text → `serde_json::Value` without serde_json's private marker keys.
//!
//! With serde_json's `raw_value` feature on (the line pipeline needs `RawValue`), parsing a
//! `Value` treats an object whose first key is `$serde_json::private::RawValue` as a marker: its
//! string is parsed as JSON in the object's place. A client sending that key (the line fuzzer
//! found it) saw its data rewritten (`{"a": {"$serde_json::private::RawValue": "5"}}` was written
//! as `{"a":5}`), or its whole body refused as invalid JSON, depending on spacing. Here such a
//! key is an ordinary key, as the JSON text says. Every other result, including the recursion
//! limit and number handling, is serde_json's own: this type only visits what its parser reads.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

/// A JSON value as the text has it; converted into a `Value` with plain map inserts.
enum Plain {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Plain>),
    /// Sorted like `Value`'s map; of duplicate keys the last wins (as in serde_json).
    Object(BTreeMap<String, Plain>),
}

impl From<Plain> for Value {
    fn from(p: Plain) -> Self {
        match p {
            Plain::Null => Value::Null,
            Plain::Bool(b) => Value::Bool(b),
            Plain::Number(n) => Value::Number(n),
            Plain::String(s) => Value::String(s),
            Plain::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            Plain::Object(o) => {
                let mut map = Map::new();
                for (k, v) in o {
                    map.insert(k, Value::from(v));
                }
                Value::Object(map)
            }
        }
    }
}

/// Written exactly as `Value` writes the same data (keys sorted, serde_json's number and string
/// encoding), so canonical text needs no `Value` tree in between.
impl Serialize for Plain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Plain::Null => s.serialize_unit(),
            Plain::Bool(b) => s.serialize_bool(*b),
            Plain::Number(n) => n.serialize(s),
            Plain::String(v) => s.serialize_str(v),
            Plain::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Plain::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Plain, E> {
        Ok(Plain::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Plain, E> {
        Ok(Plain::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Plain, E> {
        Ok(Plain::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Plain, E> {
        Ok(Plain::Number(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Plain, E> {
        // As serde_json's own `Value` visitor: a non-finite float becomes null.
        Ok(Number::from_f64(f).map_or(Plain::Null, Plain::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Plain, E> {
        Ok(Plain::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Plain, E> {
        Ok(Plain::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Plain::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Plain>()? {
            out.insert(k, v);
        }
        Ok(Plain::Object(out))
    }
}

/// `serde_json::from_str::<Value>`, with every key an ordinary key.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str::<Plain>(text).map(Value::from)
}

/// The compact, key-sorted text serde_json writes for the `Value` of `text` (every key an
/// ordinary key), without building that `Value`.
pub fn canonical(text: &str) -> serde_json::Result<String> {
    serde_json::to_string(&serde_json::from_str::<Plain>(text)?)
}

/// `serde_json::from_slice::<Value>`, with every key an ordinary key.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Plain>(bytes).map(Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "$serde_json::private::RawValue";

    #[test]
    fn the_private_marker_is_an_ordinary_key() {
        for text in [
            format!(r#"{{"a": {{"{MARKER}": "5"}}}}"#),
            format!(r#"{{"a": {{"{MARKER}": "x y"}}}}"#),
            format!(r#"{{"{MARKER}": "9999-12-31T23"}}"#),
            r#"{"a":{"\u0024serde_json::private::RawValue":"[1]"}}"#.to_owned(),
        ] {
            let v = from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let inner = v.get("a").unwrap_or(&v);
            assert!(
                inner.get(MARKER).is_some_and(Value::is_string),
                "{text} → {v}"
            );
            assert_eq!(from_slice(text.as_bytes()).unwrap(), v);
            assert_eq!(
                canonical(&text).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    #[test]
    fn agrees_with_serde_json_elsewhere() {
        for text in [
            r#"{"b":1,"a":[true,null,-0,1.5e3,18446744073709551615,-9223372036854775808],"a":"dup"}"#,
            r#"[{"é":"\ud83d\ude00","x":{"y":{}}},[],"\/"]"#,
            "0.1",
            "1e999",
            "[1,]",
            r#""\ud800""#,
            "{\"a\":1} x",
        ] {
            let ours = from_str(text).map_err(|e| e.to_string());
            let theirs = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
            let text_of = |v: Value| serde_json::to_string(&v).unwrap();
            assert_eq!(
                canonical(text).map_err(|e| e.to_string()),
                theirs.map(text_of),
                "{text}"
            );
        }
        // The recursion limit is the parser's, whatever the target type.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(from_str(&deep).is_err());
        assert!(serde_json::from_str::<Value>(&deep).is_err());
    }
}
