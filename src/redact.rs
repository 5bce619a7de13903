//! Secret redaction: every value marked secret is registered here, and every byte that leaves the
//! process through logs, results or error messages passes through `redact`.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Registers a secret value. Very short values are ignored: masking "a" everywhere would garble output
/// without protecting anything.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 4 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Replaces every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
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
        assert_eq!(
            redact_url("https://user:pw@example.com/x?sig=abc&a=1"),
            "https://***@example.com/x?sig=***&a=1"
        );
    }
}
