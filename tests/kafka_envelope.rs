//! Envelope archives (`topic-archive format=envelope`) replayed with `send_lines{format="envelope"}`:
//! keys, headers, timestamps and partitions come back as they were, checked with kcat as the independent
//! reader. And the transaction API's misuse errors (the mock cluster cannot show read_committed; the
//! real-broker test in tests/replay_txn.rs does).

mod common;

use std::process::Command;

use common::kafka::{MockKafka, run_json, run_script, text};
use common::process::{must_succeed, rewind};

/// Every record of a topic as kcat -J prints it, sorted by partition and offset.
fn kcat_json(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let out = Command::new("kcat")
        .args(["-b", brokers, "-C", "-t", topic, "-e", "-q", "-J"])
        .output()
        .expect("kcat");
    let out = must_succeed(out, "kcat");
    let mut v: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|j| (j["partition"].as_i64(), j["offset"].as_i64()));
    v
}

fn kcat_produce(brokers: &str, topic: &str, partition: i32, headers: &[&str], lines: &[String]) {
    use std::io::Write;
    let mut cmd = Command::new("kcat");
    cmd.args([
        "-b",
        brokers,
        "-P",
        "-t",
        topic,
        "-K:",
        "-p",
        &partition.to_string(),
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

/// Produces `lines(p)` into each of src's 3 partitions with kcat (headers trace=t, part=pP, then `more`),
/// then archives src with `topic-archive format=envelope batch=BATCH` into a fresh local store.
fn archived_src(
    k: &MockKafka,
    lines: impl Fn(i32) -> Vec<String>,
    more: &[&str],
    batch: u32,
) -> (tempfile::TempDir, std::path::PathBuf) {
    for p in 0..3 {
        let part = format!("part=p{p}");
        let headers: Vec<&str> = ["trace=t", part.as_str()]
            .into_iter()
            .chain(more.iter().copied())
            .collect();
        kcat_produce(&k.brokers, "src", p, &headers, &lines(p));
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = rewind()
        .args([
            "run",
            "topic-archive",
            &format!("brokers={}", k.brokers),
            "topics=src",
        ])
        .arg(format!("store={}", store.display()))
        .args([
            "once=true",
            "format=envelope",
            "group=env",
            &format!("batch={batch}"),
        ])
        .output()
        .unwrap();
    must_succeed(out, "topic-archive format=envelope");
    (dir, store)
}

const REPLAY: &str = r#"
local kafka = require("rewind.kafka")
local store = require("rewind.store")
return {
  params = {
    brokers = { type = "string", doc = "b" }, dir = { type = "string", doc = "d" },
    partition = { type = "string", default = "preserve", doc = "p" },
  },
  run = function(p)
    local st = store.open(p.dir)
    local prod = kafka.producer{ brokers = p.brokers }
    local sent, files = 0, 0
    for o in st:list("kafka/src") do
      local r = prod:send_lines(st:reader(o.key), { topic = "dst", format = "envelope", partition = p.partition })
      sent, files = sent + r.sent, files + 1
    end
    return { sent = sent, files = files }
  end,
}
"#;

#[test]
fn envelope_archive_replays_keys_headers_timestamps_and_partitions() {
    let k = MockKafka::start_with(&[("src", 3), ("dst", 3)], Some(0));
    let lines = |p: i32| -> Vec<String> {
        (0..10)
            .map(|i| format!("k{p}-{i}:{{\"p\":{p},\"i\":{i},\"text\":\"a \\\"quoted\\\" ü\"}}"))
            .collect()
    };
    let (dir, store) = archived_src(&k, lines, &["trace=again"], 4);

    let r = run_json(
        dir.path(),
        "replay",
        REPLAY,
        &[
            format!("brokers={}", k.brokers),
            format!("dir={}", store.display()),
        ],
    );
    assert_eq!(r["sent"], 30, "{r}");
    assert!(
        r["files"].as_i64().unwrap() >= 9,
        "batches of 4 per partition: {r}"
    );

    let (src, dst) = (kcat_json(&k.brokers, "src"), kcat_json(&k.brokers, "dst"));
    assert_eq!(src.len(), 30);
    assert_eq!(dst.len(), 30, "every archived record replayed once");
    for (a, b) in src.iter().zip(&dst) {
        for field in ["partition", "offset", "key", "payload", "headers", "ts"] {
            assert_eq!(a[field], b[field], "{field} differs:\n{a}\n{b}");
        }
    }
    // Repeated header names keep their order.
    assert_eq!(
        dst[0]["headers"],
        serde_json::json!(["trace", "t", "part", "p0", "trace", "again"])
    );
}

#[test]
fn envelope_lines_any_partitioning_and_malformed_lines() {
    let k = MockKafka::start_with(&[("dst", 4)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"key":"a","value":"1","partition":0}"#,
        r#"{"key":"a","value":"2","partition":0}"#,
        "not json",
        r#"{"value":"x","value_b64":"eA=="}"#,
        r#"{"key":"a","value":"3","partition":0}"#,
        r#"{"key":"a","value":"4","partition":0,"timestamp":1575158400000}"#,
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let src = r#"
local kafka = require("rewind.kafka")
local fs = require("rewind.fs")
return { params = { brokers = { type = "string", doc = "b" } },
  run = function(p)
    return kafka.producer{ brokers = p.brokers }:send_lines(fs.reader("in.jsonl"),
      { topic = "dst", format = "envelope", partition = "any" })
  end }
"#;
    let r = run_json(dir.path(), "any", src, &[format!("brokers={}", k.brokers)]);
    assert_eq!(
        (r["sent"].as_i64(), r["malformed"].as_i64()),
        (Some(4), Some(2)),
        "{r}"
    );
    assert_eq!(r["first_malformed_lines"], serde_json::json!([3, 4]));
    let got = kcat_json(&k.brokers, "dst");
    let parts: std::collections::BTreeSet<i64> = got
        .iter()
        .map(|m| m["partition"].as_i64().unwrap())
        .collect();
    assert_eq!(
        parts.len(),
        4,
        "round robin over all 4 partitions, whatever the key: {got:?}"
    );
    assert!(
        got.iter().any(|m| m["ts"] == 1575158400000i64),
        "the envelope's timestamp is kept"
    );
}

#[test]
fn transaction_api_misuse_is_a_clear_error() {
    let k = MockKafka::start_with(&[("dst", 1)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"a\":1}\n").unwrap();
    let cases = [
        (
            "kafka.producer{ brokers = p.brokers }:begin_transaction()",
            "needs a transactional producer",
        ),
        (
            "kafka.producer{ brokers = p.brokers, transactional_id = 'x' }:send_lines(fs.reader('in.jsonl'), { topic = 'dst' })",
            "needs p:begin_transaction() first",
        ),
        (
            "kafka.producer{ brokers = p.brokers, transactional_id = 'x' }:commit_transaction()",
            "no transaction is open",
        ),
        (
            "local q = kafka.producer{ brokers = p.brokers, transactional_id = 'x' }; q:begin_transaction(); q:begin_transaction()",
            "already open",
        ),
        (
            "kafka.producer{ brokers = p.brokers, transactional_id = 'x' }:send('dst', 'v')",
            "p:send is not transactional",
        ),
        (
            "kafka.producer{ brokers = p.brokers }:send_lines(fs.reader('in.jsonl'), { topic = 'dst', partition = 'preserve' })",
            "needs format = \"envelope\"",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let src = format!(
            "local kafka = require('rewind.kafka')\nlocal fs = require('rewind.fs')\nreturn {{ params = {{ brokers = {{ type = 'string', doc = 'b' }} }},\n  run = function(p) {body} end }}\n"
        );
        let out = run_script(
            dir.path(),
            &format!("case{i}"),
            &src,
            &[format!("brokers={}", k.brokers)],
        );
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "case {i}: want {want:?}, got:\n{err}"
        );
    }
    // A committed transaction's messages are there (read with kcat).
    let src = r#"
local kafka = require("rewind.kafka")
local fs = require("rewind.fs")
return { params = { brokers = { type = "string", doc = "b" } },
  run = function(p)
    local q = kafka.producer{ brokers = p.brokers, transactional_id = "ok" }
    q:begin_transaction()
    local r = q:send_lines(fs.reader("in.jsonl"), { topic = "dst" })
    q:commit_transaction()
    q:begin_transaction()
    q:send_lines(fs.reader("in.jsonl"), { topic = "dst" })
    q:commit_transaction()
    return r
  end }
"#;
    let r = run_json(
        dir.path(),
        "commit",
        src,
        &[format!("brokers={}", k.brokers)],
    );
    assert_eq!(r["sent"], 1, "{r}");
    assert_eq!(kcat_json(&k.brokers, "dst").len(), 2);
}

#[test]
fn replay_procedure_restores_an_envelope_archive_faithfully() {
    let k = MockKafka::start_with(&[("src", 3), ("dst", 3)], Some(0));
    let lines = |p: i32| -> Vec<String> {
        (0..20)
            .map(|i| format!("k{p}-{i}:{{\"p\":{p},\"i\":{i}}}"))
            .collect()
    };
    let (_dir, store) = archived_src(&k, lines, &[], 7);
    // The archive's day is the UTC day of the records' timestamps.
    let src = kcat_json(&k.brokers, "src");
    let ts = src[0]["ts"].as_i64().unwrap();
    let day = chrono::DateTime::from_timestamp_millis(ts)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let out = rewind()
        .args([
            "run",
            "--json",
            "replay",
            &format!("store={}", store.display()),
            &format!("brokers={}", k.brokers),
        ])
        .args([
            "sources={\"src\": {\"outputKafkaTopic\": \"dst\", \"dependentSinkSources\": []}}",
            "prefix=kafka/src",
        ])
        .args([
            &format!("startDate={day}"),
            "format=envelope",
            "partition=preserve",
        ])
        .output()
        .unwrap();
    let out = must_succeed(out, "replay format=envelope");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["days"][0]["events"], 60, "{r}");
    let dst = kcat_json(&k.brokers, "dst");
    assert_eq!(dst.len(), 60);
    for (a, b) in src.iter().zip(&dst) {
        for field in ["partition", "offset", "key", "payload", "headers", "ts"] {
            assert_eq!(a[field], b[field], "{field} differs:\n{a}\n{b}");
        }
    }
}
