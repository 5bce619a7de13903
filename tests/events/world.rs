//! The pieces every event test needs: moto's S3 server with a bucket, the fake dispatcher as the source
//! and a second one as the restore target, a cache directory, and views of what landed where that do not
//! go through rewind (moto's listing and request log, the fakes' own records).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sha2::Digest;

use crate::common::dispatcher::Fake;
use crate::common::process::{rewind, text};
use crate::common::s3::S3Server;

pub const BUCKET: &str = "events";

pub struct World {
    pub s3: S3Server,
    pub source: Fake,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn start() -> World {
        let s3 = S3Server::start();
        s3.create_bucket(BUCKET);
        World {
            s3,
            source: Fake::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn seed(&self, spec: Value) -> Value {
        let (status, out) = self.source.json("POST", "/_fake/seed", Some(spec));
        assert_eq!(status, 200, "{out}");
        out
    }

    pub fn store(&self) -> String {
        format!("s3://{BUCKET}")
    }

    pub fn cache(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `rewind run <script> <args>` reaching moto; stdin closed.
    pub fn command(&self, script: &str, args: &[String]) -> Command {
        let mut c = rewind();
        c.args(["run", "--json", script])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in self.s3.env() {
            c.env(k, v);
        }
        c.env("XDG_STATE_HOME", self.dir.path().join("state"));
        c
    }

    /// event-backup of `pairs` from the source, once, into `prefix`, with its caches in `cache`.
    pub fn backup_args(&self, prefix: &str, pairs: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            format!("url={}", self.source.url),
            format!("pairs={pairs}"),
            format!("store={}", self.store()),
            format!("prefix={prefix}"),
            format!("cache_dir={}", self.cache(&format!("backup-{prefix}"))),
            "once=true".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    pub fn backup(&self, prefix: &str, pairs: &str, extra: &[&str]) -> Output {
        self.command("event-backup", &self.backup_args(prefix, pairs, extra))
            .output()
            .unwrap()
    }

    pub fn restore_args(&self, target: &Fake, prefix: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            format!("url={}", target.url),
            format!("store={}", self.store()),
            format!("prefix={prefix}"),
            format!(
                "cache_dir={}",
                self.cache(&format!(
                    "restore-{prefix}-{}",
                    target.url.replace([':', '/'], "_")
                ))
            ),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    pub fn restore(&self, target: &Fake, prefix: &str, extra: &[&str]) -> Output {
        self.command("event-restore", &self.restore_args(target, prefix, extra))
            .output()
            .unwrap()
    }

    /// Every event of a pair at the source, in order.
    pub fn source_events(&self, pair: &str) -> Vec<Value> {
        self.source.read_all(pair, 1000, None).0
    }

    /// The event batches stored under `prefix`, per pair: (object key, events) in key order.
    pub fn stored_batches(&self, prefix: &str) -> BTreeMap<String, Vec<(String, Vec<Value>)>> {
        let mut out: BTreeMap<String, Vec<(String, Vec<Value>)>> = BTreeMap::new();
        for key in self.s3.list_keys(BUCKET, &format!("{prefix}/events/")) {
            let rest = &key[prefix.len() + "/events/".len()..];
            let parts: Vec<&str> = rest.split('/').collect();
            assert_eq!(parts.len(), 4, "unexpected key {key}");
            assert!(parts[3].ends_with(".jsonl.gz"), "unexpected key {key}");
            let mut text = String::new();
            flate2::read::GzDecoder::new(&self.s3.get_bytes(BUCKET, &key)[..])
                .read_to_string(&mut text)
                .unwrap();
            let events = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            out.entry(format!("{}/{}", parts[0], parts[1]))
                .or_default()
                .push((key.clone(), events));
        }
        out
    }

    /// The events stored under `prefix` per pair, batches concatenated in key order.
    pub fn stored_events(&self, prefix: &str) -> BTreeMap<String, Vec<Value>> {
        self.stored_batches(prefix)
            .into_iter()
            .map(|(pair, batches)| (pair, batches.into_iter().flat_map(|(_, e)| e).collect()))
            .collect()
    }

    /// The streams stored under `prefix`: "source/label/sha256" of each key.
    pub fn stored_streams(&self, prefix: &str) -> BTreeSet<String> {
        self.s3
            .list_keys(BUCKET, &format!("{prefix}/streams/"))
            .iter()
            .map(|k| {
                let rest = &k[prefix.len() + "/streams/".len()..];
                let p: Vec<&str> = rest.split('/').collect();
                assert_eq!(p.len(), 4, "unexpected key {k}");
                assert_eq!(
                    &p[3][..2],
                    p[2],
                    "the folder is the hash's first two digits: {k}"
                );
                format!("{}/{}/{}", p[0], p[1], p[3].trim_end_matches(".gz"))
            })
            .collect()
    }

    /// A stored stream's bytes, decompressed; its sha256 is checked against its name.
    pub fn stream_bytes(&self, prefix: &str, id: &str) -> Vec<u8> {
        let p: Vec<&str> = id.split('/').collect();
        let key = format!(
            "{prefix}/streams/{}/{}/{}/{}.gz",
            p[0],
            p[1],
            &p[2][..2],
            p[2]
        );
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&self.s3.get_bytes(BUCKET, &key)[..])
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), p[2], "{key}");
        bytes
    }

    /// How many PUT requests moto saw for each stream key under `prefix`.
    pub fn stream_puts(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let start = format!("PUT /{BUCKET}/{prefix}/streams/");
        for r in self.s3.requests() {
            if let Some(rest) = r.strip_prefix(&start) {
                let key = rest.split([' ', '?']).next().unwrap().to_string();
                *out.entry(key).or_insert(0) += 1;
            }
        }
        out
    }
}

/// The distinct streams events refer to, as "source/label/sha256", and how many references there are.
pub fn referenced_streams(pair: &str, events: &[Value]) -> (BTreeSet<String>, usize) {
    let source = pair.split('/').next().unwrap();
    let mut set = BTreeSet::new();
    let mut refs = 0;
    for e in events {
        for s in e["streams"].as_array().unwrap() {
            refs += 1;
            set.insert(format!(
                "{source}/{}/{}",
                s["label"].as_str().unwrap(),
                s["sha256"].as_str().unwrap()
            ));
        }
    }
    (set, refs)
}

pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// The JSON result a run printed (`rewind run --json`); panics with the output unless it succeeded.
pub fn result(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {}", text(out)))
}

/// Adds a fault rule to a fake (tests/fakes/fake_control.py).
pub fn fail(fake: &Fake, rule: Value) {
    let (status, out) = fake.json("POST", "/_fake/fail", Some(rule));
    assert_eq!(status, 200, "{out}");
}

pub fn no_faults(fake: &Fake) {
    fake.json("POST", "/_fake/reset_faults", Some(json!({})));
}

/// Panics unless each of `lines` appears in `log`, in that order.
pub fn assert_in_order(log: &str, lines: &[&str]) {
    let pos = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {log}"))
    };
    for w in lines.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{:?} before {:?}: {log}", w[0], w[1]);
    }
}
