//! What one line of `send_lines` becomes: with `format = "jsonl"` it must be one JSON value; the key
//! field and the filter fields are extracted from it without building the rest of the object.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use super::{Format, Opts};

/// Extracts a few top-level fields of a JSON object without building the rest of it.
struct Fields<'a> {
    names: &'a [String],
    out: &'a mut Vec<Option<Json>>,
}

struct KeyIdx<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for KeyIdx<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIdx<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| n == v))
    }
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(idx) = map.next_key_seed(KeyIdx(self.names))? {
            match idx {
                Some(i) => self.out[i] = Some(map.next_value::<Json>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Checks one line; with field names, extracts them (the line must then be an object).
fn check_json(line: &[u8], names: &[String], out: &mut Vec<Option<Json>>) -> bool {
    let mut de = serde_json::Deserializer::from_slice(line);
    let ok = if names.is_empty() {
        IgnoredAny::deserialize_any_ok(&mut de)
    } else {
        out.clear();
        out.resize(names.len(), None);
        Fields { names, out }.deserialize(&mut de).is_ok()
    };
    ok && de.end().is_ok()
}

trait AnyOk {
    fn deserialize_any_ok(de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>)
    -> bool;
}

impl AnyOk for IgnoredAny {
    fn deserialize_any_ok(
        de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    ) -> bool {
        serde::Deserialize::deserialize(de)
            .map(|_: IgnoredAny| ())
            .is_ok()
    }
}

/// A JSON value as message-key or filter text: strings as they are, anything else as JSON.
fn as_text(v: &Json) -> std::borrow::Cow<'_, str> {
    match v {
        Json::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Decides what one line becomes: None = malformed; Some(None) = filtered out; Some(Some(key)) = send.
pub(super) fn route(
    line: &[u8],
    opts: &Opts,
    names: &[String],
    fields: &mut Vec<Option<Json>>,
) -> Option<Option<Option<Vec<u8>>>> {
    if opts.format == Format::Lines {
        return Some(Some(None));
    }
    if !check_json(line, names, fields) {
        return None;
    }
    for (k, want) in &opts.filter {
        let i = names.iter().position(|n| n == k).unwrap_or(0);
        match fields.get(i).and_then(|v| v.as_ref()) {
            Some(v) if as_text(v) == want.as_str() => {}
            _ => return Some(None),
        }
    }
    let key = opts
        .key_field
        .as_ref()
        .and_then(|_| fields.first().and_then(|v| v.as_ref()))
        .filter(|v| !v.is_null())
        .map(|v| as_text(v).as_bytes().to_vec());
    Some(Some(key))
}
