//! The envelope line format: one Kafka record per JSON line, with what a faithful replay needs.
//!
//! ```text
//! {"topic":"t","partition":3,"offset":42,"timestamp":1575158400000,"key":"k",
//!  "headers":[["trace","abc"],["bin",{"b64":"AAE="}],["empty",null]],"value":"{\"id\":1}"}
//! ```
//!
//! `key` and `value` are strings when their bytes are UTF-8, otherwise `key_b64` / `value_b64`
//! (standard base64); a null key or value (a tombstone) is simply absent. Headers keep their order and
//! repeats: `[name, text]`, `[name, {"b64": ...}]` for binary values, `[name, null]`. `timestamp` is
//! milliseconds since the epoch (absent when the broker gave none). Written by `topic-archive
//! format=envelope` (`c:archive_batch{format="envelope"}`) and read by `send_lines{format="envelope"}`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Out<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(&'a str, Option<HeaderValue<'a>>)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_b64: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum HeaderValue<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Binary {
        b64: String,
    },
}

/// Text when the bytes are UTF-8, else base64: (text, b64).
fn split(bytes: Option<&[u8]>) -> (Option<&str>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Some(s), None),
            Err(_) => (None, Some(B64.encode(b))),
        },
    }
}

/// Appends one record as an envelope line (with its newline) to `out`.
pub fn encode<M: Message>(m: &M, out: &mut Vec<u8>) {
    let (key, key_b64) = split(m.key());
    let (value, value_b64) = split(m.payload());
    let mut headers = Vec::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let v = h.value.map(|v| match std::str::from_utf8(v) {
                Ok(s) => HeaderValue::Text(Cow::Borrowed(s)),
                Err(_) => HeaderValue::Binary { b64: B64.encode(v) },
            });
            headers.push((h.key, v));
        }
    }
    let rec = Out {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis(),
        key,
        key_b64,
        headers,
        value,
        value_b64,
    };
    // Writing a serializable struct of strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &rec);
    out.push(b'\n');
}

#[derive(Deserialize)]
struct In<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    key_b64: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Cow<'a, str>>,
    #[serde(default)]
    value_b64: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    headers: Option<Vec<(Cow<'a, str>, Option<HeaderValue<'a>>)>>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    partition: Option<i32>,
}

/// One decoded envelope, ready to send.
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
    pub timestamp: Option<i64>,
    pub partition: Option<i32>,
}

fn bytes(
    text: Option<Cow<'_, str>>,
    b64: Option<Cow<'_, str>>,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(format!("both {what} and {what}_b64")),
        (Some(t), None) => Ok(Some(t.into_owned().into_bytes())),
        (None, Some(b)) => B64
            .decode(b.as_bytes())
            .map(Some)
            .map_err(|e| format!("{what}_b64 is not base64: {e}")),
        (None, None) => Ok(None),
    }
}

/// Decodes one envelope line; the error says what is wrong with it.
pub fn decode(line: &[u8]) -> Result<Record, String> {
    let r: In<'_> = serde_json::from_slice(line).map_err(|e| format!("not an envelope: {e}"))?;
    let key = bytes(r.key, r.key_b64, "key")?;
    let value = bytes(r.value, r.value_b64, "value")?;
    let headers = match r.headers {
        None => None,
        Some(list) => {
            let mut h = OwnedHeaders::new_with_capacity(list.len());
            for (name, v) in list {
                let v: Option<Vec<u8>> = match v {
                    None => None,
                    Some(HeaderValue::Text(t)) => Some(t.into_owned().into_bytes()),
                    Some(HeaderValue::Binary { b64 }) => Some(
                        B64.decode(b64.as_bytes())
                            .map_err(|e| format!("header {name}: b64 is not base64: {e}"))?,
                    ),
                };
                h = h.insert(Header {
                    key: &name,
                    value: v.as_deref(),
                });
            }
            Some(h)
        }
    };
    if r.partition.is_some_and(|p| p < 0) {
        return Err("partition is negative".into());
    }
    Ok(Record {
        key,
        value,
        headers,
        timestamp: r.timestamp,
        partition: r.partition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_text_binary_and_absent_fields() {
        let r = decode(
            br#"{"topic":"t","partition":2,"offset":9,"timestamp":1575158400000,"key":"k","headers":[["a","x"],["b",{"b64":"AAE="}],["c",null]],"value_b64":"/wA="}"#,
        )
        .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&[0xff, 0][..]));
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.timestamp, Some(1575158400000));
        let h = r.headers.unwrap();
        assert_eq!(h.count(), 3);
        assert_eq!(h.get(1).value, Some(&[0u8, 1][..]));
        assert_eq!(h.get(2).value, None);
        let t = decode(br#"{"value":"v"}"#).unwrap();
        assert!(t.key.is_none() && t.headers.is_none() && t.partition.is_none());
        assert!(decode(br#"{"value":"v","value_b64":"dg=="}"#).is_err());
        assert!(
            decode(br#"{"value_b64":"***"}"#)
                .err()
                .unwrap()
                .contains("not base64")
        );
        assert!(decode(b"[1]").is_err());
    }
}
