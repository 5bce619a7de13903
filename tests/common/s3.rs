//! A real S3-protocol server for tests: moto's server (`moto[server]` from PyPI, installed by
//! tests/run.sh into ~/.cache/rewind-tests/moto), started on a free port and stopped on drop.
//! moto supports what the S3 backend relies on: multipart upload (incl. AbortMultipartUpload and
//! ListMultipartUploads), `If-None-Match: *` and `If-Match` on PutObject, `If-Match` on DeleteObject
//! (leases), ranged GET and DeleteObjects.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub use super::process::free_port;
use super::process::{Killed, wait_for_port};

/// moto routes requests by the service in the credential scope and, unless auth is enforced, does
/// not check signatures: this header only tells it "s3".
const AUTH: (&str, &str) = (
    "Authorization",
    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
);

pub struct S3Server {
    _child: Killed,
    pub port: u16,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("REWIND_TEST_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let venv = PathBuf::from(home).join(".cache/rewind-tests/moto/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    panic!(
        "moto_server not found at {}: run tests/run.sh (it installs moto[server])",
        venv.display()
    );
}

impl S3Server {
    pub fn start() -> S3Server {
        Self::start_with(&[])
    }

    /// Starts moto with extra environment (e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0` to enforce auth).
    pub fn start_with(env: &[(&str, &str)]) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start moto_server");
        wait_for_port("moto_server", port);
        S3Server {
            _child: Killed(child),
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// An unsigned request (moto accepts them unless auth is enforced): (status, body).
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.endpoint);
        let r = super::http::request(method, &url, &[], Some(Vec::new()));
        (r.status, r.body)
    }

    /// A request that moto treats as the bucket owner's (objects are private: anonymous GETs are refused):
    /// (status, body).
    pub fn owner_request(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, String) {
        let url = format!("{}{path}", self.endpoint);
        let r = super::http::request(method, &url, &[AUTH], body);
        (r.status, r.body)
    }

    /// An object's bytes, read as the bucket owner (panics unless 200).
    pub fn get_bytes(&self, bucket: &str, key: &str) -> Vec<u8> {
        let url = format!(
            "{}/{bucket}/{}",
            self.endpoint,
            url_encode(key).replace("%2F", "/")
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .header(AUTH.0, AUTH.1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            assert_eq!(r.status().as_u16(), 200, "GET {url}");
            r.bytes().await.unwrap().to_vec()
        })
    }

    /// The response headers of an unsigned HEAD, lower-cased names.
    pub fn head_headers(&self, path: &str) -> Vec<(String, String)> {
        super::http::request("HEAD", &format!("{}{path}", self.endpoint), &[AUTH], None).headers
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// How many multipart uploads are in progress in `bucket` (ListMultipartUploads).
    pub fn multipart_uploads(&self, bucket: &str) -> usize {
        let (status, body) = self.request("GET", &format!("/{bucket}?uploads"));
        assert_eq!(status, 200, "list multipart uploads: {body}");
        body.matches("<Upload>").count()
    }

    /// Every key under `prefix` in `bucket`, in key order, read with unsigned ListObjectsV2 requests
    /// (following continuation tokens): a view of the bucket that does not go through rewind.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{bucket}?list-type=2&prefix={}", url_encode(prefix));
            if let Some(t) = &token {
                path.push_str(&format!("&continuation-token={}", url_encode(t)));
            }
            let (status, body) = self.request("GET", &path);
            assert_eq!(status, 200, "list {bucket}/{prefix}: {body}");
            keys.extend(xml_values(&body, "Key"));
            if xml_values(&body, "IsTruncated").first().map(String::as_str) != Some("true") {
                return keys;
            }
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            assert!(token.is_some(), "truncated listing without a token: {body}");
        }
    }

    /// The request lines moto logged so far (`METHOD /path HTTP/1.1" status -`, colours removed),
    /// oldest first.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self._dir.path().join("moto.log")).unwrap_or_default();
        let mut plain = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // an ANSI colour sequence: ESC [ ... m
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        plain
            .lines()
            .filter_map(|l| l.split_once(" - - [").and(l.split_once('"')))
            .map(|(_, r)| r.to_string())
            .collect()
    }

    /// The environment a rewind process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters, as S3 query values need.
fn url_encode(s: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The text of every `<tag>...</tag>` in an XML body, XML entities decoded.
fn xml_values(body: &str, tag: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == tag.as_bytes() => {
                let raw = reader.read_text(e.name()).expect("an unterminated element");
                let raw = raw.decode().expect("XML that is not UTF-8");
                let text = quick_xml::escape::unescape(&raw).expect("a bad XML entity");
                out.push(text.into_owned());
            }
            Ok(Event::Eof) => return out,
            Ok(_) => {}
            Err(e) => panic!("malformed XML from the S3 server ({e}): {body}"),
        }
    }
}
