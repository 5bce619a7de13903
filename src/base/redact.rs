//! Secret redaction: every value marked secret is registered here, and every byte that leaves the
//! process through logs, results or error messages passes through `redact`.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are masked only where they stand as a whole token (not inside a longer
/// word), so a two-character password does not garble every word that happens to contain it.
const SHORT: usize = 4;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Registers a secret value. Every value counts, however short (see `SHORT`).
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.is_empty() {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    // Also the forms the value takes once escaped in JSON output or Rust debug formatting
    // (`pa"ss` is printed as `pa\"ss`), so escaping cannot let a secret through.
    let json = serde_json::to_string(secret).unwrap_or_default();
    let debug = format!("{secret:?}");
    let forms = [
        secret.to_string(),
        json[1..json.len().saturating_sub(1).max(1)].to_string(),
        debug[1..debug.len().saturating_sub(1).max(1)].to_string(),
    ];
    for form in forms {
        if !form.is_empty() && !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Redacts every string inside a JSON value (results printed by the CLI).
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            let r = redact(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// Replaces every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if !out.contains(s.as_str()) {
            continue;
        }
        out = if s.chars().count() < SHORT {
            replace_whole(&out, s)
        } else {
            out.replace(s.as_str(), MASK)
        };
    }
    out
}

/// Replaces `secret` where it is not part of a longer word (no letter or digit right before or after).
fn replace_whole(text: &str, secret: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(secret) {
        let before = rest[..i].chars().last().or_else(|| out.chars().last());
        let after = rest[i + secret.len()..].chars().next();
        out.push_str(&rest[..i]);
        if word(before) || word(after) {
            out.push_str(secret);
        } else {
            out.push_str(MASK);
        }
        rest = &rest[i + secret.len()..];
    }
    out.push_str(rest);
    out
}

/// Redacts the user-info and any query parameter that looks like a credential from a URL.
pub fn redact_url(url: &str) -> String {
    let mut out = redact(url);
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            out = format!("{}://{}@{}", &out[..scheme_end], MASK, &rest[at + 1..]);
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let parts: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if looks_secret(k) => format!("{k}={MASK}"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", parts.join("&"));
    }
    out
}

/// Names of headers, params and query keys whose values are credentials.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "auth",
        "token",
        "apikey",
        "api_key",
        "password",
        "secret",
        "sig",
        "signature",
        "x-amz-security-token",
        "cookie",
    ]
    .iter()
    .any(|k| n == *k || n.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values_and_url_credentials() {
        register("hunter2-very-secret");
        assert_eq!(redact("pw=hunter2-very-secret!"), "pw=***!");
        register(r#"quo"te\slash-secret"#);
        let json = serde_json::to_string(r#"x quo"te\slash-secret y"#).unwrap();
        assert_eq!(redact(&json), r#""x *** y""#);
        let mut v = serde_json::json!({"a": [r#"quo"te\slash-secret"#]});
        redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["***"]}));
        // Short secrets are masked where they stand alone, not inside longer words.
        register("q7");
        assert_eq!(
            redact("password q7, url u:q7@h, json \"q7\", word aq7b q7x"),
            "password ***, url u:***@h, json \"***\", word aq7b q7x"
        );
        assert_eq!(
            redact_url("https://user:pw@example.com/x?sig=abc&a=1"),
            "https://***@example.com/x?sig=***&a=1"
        );
    }
}
