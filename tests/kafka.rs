//! rewind.kafka and topic-archive against librdkafka's mock cluster, checked with kcat.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::*;
use common::process::files;

fn json_result(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "rewind failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("result is not JSON ({e}): {}", text(&out.stdout)))
}

fn run_json(dir: &std::path::Path, name: &str, src: &str, params: &[String]) -> serde_json::Value {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, src).unwrap();
    let out = rewind()
        .current_dir(dir)
        .args(["run", "--json"])
        .arg(&path)
        .args(params)
        .output()
        .unwrap();
    json_result(&out)
}

const SEND_LINES: &str = r#"
local kafka = require("rewind.kafka")
local fs = require("rewind.fs")
return {
  params = {
    brokers = { type = "string", doc = "b" }, topic = { type = "string", doc = "t" },
    file = { type = "string", doc = "f" }, max_errors = { type = "integer", doc = "m" },
    key_field = { type = "string", doc = "k" }, filter = { type = "string", doc = "f" },
  },
  run = function(p)
    local prod = kafka.producer{ brokers = p.brokers }
    return prod:send_lines(fs.reader(p.file), {
      topic = p.topic, key_field = p.key_field, max_errors = p.max_errors, filter = p.filter })
  end,
}
"#;

fn send_lines_file(
    k: &MockKafka,
    dir: &std::path::Path,
    file: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut params = vec![
        format!("brokers={}", k.brokers),
        "topic=ev".to_string(),
        format!("file={file}"),
    ];
    params.extend(extra.iter().map(|s| s.to_string()));
    run_json(dir, "send_lines", SEND_LINES, &params)
}

#[test]
fn send_and_consume_round_trip() {
    let k = MockKafka::start(&[("rt", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
local kafka = require("rewind.kafka")
return { params = { brokers = { type = "string", doc = "b" } }, run = function(p)
  local prod = kafka.producer{ brokers = p.brokers, config = { ["linger.ms"] = 1 } }
  local d = prod:send("rt", "first", { key = "k1", headers = { h1 = "v1" } })
  prod:send("rt", "second", { key = "k2" })
  prod:flush("5s")
  local c = kafka.consumer{ brokers = p.brokers, group = "rt-g", topics = { "rt" } }
  local got = {}
  local deadline = os.time() + 20
  while #got < 2 and os.time() < deadline do
    for _, m in ipairs(c:poll(10, 1)) do got[#got + 1] = m end
  end
  c:commit()
  c:close()
  return { first_offset = d.offset, n = #got, v1 = got[1].value, k1 = got[1].key,
           h1 = got[1].headers.h1, v2 = got[2].value, ts = got[1].timestamp > 1e9 }
end }
"#;
    let r = run_json(dir.path(), "rt", src, &[format!("brokers={}", k.brokers)]);
    assert_eq!(r["n"], 2);
    assert_eq!(r["v1"], "first");
    assert_eq!(r["k1"], "k1");
    assert_eq!(r["h1"], "v1");
    assert_eq!(r["v2"], "second");
    assert_eq!(r["ts"], true);
    let msgs = kcat_all(&k.brokers, "rt");
    let vals: Vec<_> = msgs.iter().map(|m| m.value.as_str()).collect();
    assert_eq!(vals, ["first", "second"]);
    assert_eq!(msgs[0].key.as_deref(), Some("k1"));
}

fn check_topic_holds(k: &MockKafka, lines: &[String]) {
    let msgs = kcat_all(&k.brokers, "ev");
    assert_eq!(msgs.len(), lines.len());
    let mut got: Vec<String> = msgs.iter().map(|m| m.value.clone()).collect();
    let mut want = lines.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // key_field=user: every message is keyed by its record's user.
    for m in &msgs {
        let j: serde_json::Value = serde_json::from_str(&m.value).unwrap();
        assert_eq!(m.key.as_deref(), j["user"].as_str());
    }
}

#[test]
fn send_lines_gzip_jsonl() {
    let k = MockKafka::start(&[("ev", 3)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(5000, 300);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    let r = send_lines_file(&k, dir.path(), "ev.jsonl.gz", &["key_field=user"]);
    assert_eq!(r["read"], 5000);
    assert_eq!(r["sent"], 5000);
    assert_eq!(r["failed"], 0);
    assert_eq!(r["malformed"], 0);
    check_topic_holds(&k, &lines);
}

#[test]
fn send_lines_zstd_jsonl() {
    let k = MockKafka::start(&[("ev", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(3000, 200);
    zstd_lines(&dir.path().join("ev.jsonl.zst"), &lines);
    let r = send_lines_file(&k, dir.path(), "ev.jsonl.zst", &["key_field=user"]);
    assert_eq!(r["sent"], 3000);
    check_topic_holds(&k, &lines);
}

#[test]
fn send_lines_filter_skips_in_rust() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(700, 100);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    let r = send_lines_file(&k, dir.path(), "ev.jsonl.gz", &["filter=user=u3"]);
    assert_eq!(r["sent"], 100);
    assert_eq!(r["skipped"], 600);
    let msgs = kcat_all(&k.brokers, "ev");
    assert_eq!(msgs.len(), 100);
    assert!(msgs.iter().all(|m| m.value.contains(r#""user":"u3""#)));
}

#[test]
fn send_lines_counts_malformed_lines_and_sends_the_rest() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut lines = events(20, 80);
    lines[2] = "{\"id\": 2, broken".into();
    lines[6] = "not json at all".into();
    lines[15] = "{\"a\":1} trailing".into();
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    let r = send_lines_file(&k, dir.path(), "ev.jsonl.gz", &[]);
    assert_eq!(r["read"], 20);
    assert_eq!(r["malformed"], 3);
    assert_eq!(r["sent"], 17);
    assert_eq!(r["first_malformed_lines"], serde_json::json!([3, 7, 16]));
    let valid: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| ![2, 6, 15].contains(i))
        .map(|(_, l)| l.clone())
        .collect();
    let got: Vec<String> = kcat_all(&k.brokers, "ev")
        .into_iter()
        .map(|m| m.value)
        .collect();
    assert_eq!(got, valid);

    // max_errors: more malformed lines than allowed stops the stream with a clear error.
    let path = dir.path().join("send_lines.lua");
    let out = rewind()
        .current_dir(dir.path())
        .arg("run")
        .arg(&path)
        .args([
            format!("brokers={}", k.brokers),
            "topic=ev2".into(),
            "file=ev.jsonl.gz".into(),
            "max_errors=1".into(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("max_errors = 1") && err.contains("lines 3, 7"),
        "{err}"
    );
}

#[test]
fn broker_down_is_a_clear_error_within_the_timeout() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
local kafka = require("rewind.kafka")
return { params = { brokers = { type = "string", doc = "b" } }, run = function(p)
  local prod = kafka.producer{ brokers = p.brokers, config = { ["message.timeout.ms"] = 3000 } }
  prod:send("ev", "x")
end }
"#;
    let started = Instant::now();
    let out = run_script(
        dir.path(),
        "down",
        src,
        &[format!("brokers=127.0.0.1:{port}")],
    );
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        err.contains("topic ev") && err.contains("timed out"),
        "{err}"
    );
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "names the broker: {err}"
    );

    // send_lines too: every message fails, the error says how many and why.
    std::fs::write(dir.path().join("in.jsonl"), "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let src2 = r#"
local kafka = require("rewind.kafka")
local fs = require("rewind.fs")
return { params = { brokers = { type = "string", doc = "b" } }, run = function(p)
  local prod = kafka.producer{ brokers = p.brokers, config = { ["message.timeout.ms"] = 3000 } }
  prod:send_lines(fs.reader("in.jsonl"), { topic = "ev" })
end }
"#;
    let started = Instant::now();
    let out = run_script(
        dir.path(),
        "down2",
        src2,
        &[format!("brokers=127.0.0.1:{port}")],
    );
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = text(&out.stderr);
    assert!(
        err.contains("2 of 2 messages failed") && err.contains("timed out"),
        "{err}"
    );
}

#[test]
fn empty_brokers_is_a_usage_error_not_a_wait() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let started = Instant::now();
    let out = rewind()
        .args(["run", "topic-archive", "brokers=", "topics=ev", "once=true"])
        .arg(format!("store={}", store.display()))
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("brokers is empty"),
        "{}",
        text(&out.stderr)
    );
    assert!(files(&store).is_empty(), "nothing written");
}

const POLL: &str = r#"
local kafka = require("rewind.kafka")
return { params = { brokers = { type = "string", doc = "b" }, commit = { type = "boolean", doc = "c" } },
run = function(p)
  local c = kafka.consumer{ brokers = p.brokers, group = "cg", topics = "cm",
    -- librdkafka's mock coordinator waits out a departed member's session before the next join.
    config = { ["session.timeout.ms"] = 6000, ["heartbeat.interval.ms"] = 500 } }
  local n = 0
  local deadline = os.time() + 12
  local quiet = 0
  while os.time() < deadline do
    local got = c:poll(100, 1)
    n = n + #got
    if n > 0 and #got == 0 then quiet = quiet + 1 end
    if quiet >= 2 then break end
  end
  if p.commit then c:commit() end
  c:close()
  return { n = n }
end }
"#;

#[test]
fn consumer_commits_only_when_told() {
    let k = MockKafka::start(&[("cm", 1)]);
    let dir = tempfile::tempdir().unwrap();
    kcat_produce(&k.brokers, "cm", &events(10, 50));
    let b = format!("brokers={}", k.brokers);
    let r1 = run_json(
        dir.path(),
        "poll",
        POLL,
        &[b.clone(), "commit=false".into()],
    );
    assert_eq!(r1["n"], 10, "first read");
    let r2 = run_json(dir.path(), "poll", POLL, &[b.clone(), "commit=true".into()]);
    assert_eq!(
        r2["n"], 10,
        "nothing was committed, so the group reads everything again"
    );
    let r3 = run_json(dir.path(), "poll", POLL, &[b.clone(), "commit=true".into()]);
    assert_eq!(r3["n"], 0, "committed: nothing left");
}

/// librdkafka's mock coordinator waits out a departed member's session before the next member joins.
const MOCK_GROUP_CONFIG: &str = r#"config={"session.timeout.ms":6000,"heartbeat.interval.ms":500}"#;

fn archive(k: &MockKafka, store: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut c = rewind();
    c.args(["run", "--json", "topic-archive"])
        .arg(format!("brokers={}", k.brokers))
        .arg("topics=ev")
        .arg(format!("store={}", store.display()))
        .arg(MOCK_GROUP_CONFIG)
        .args(extra);
    c.output().unwrap()
}

/// Every line of every archived object, with the object it came from.
fn archived(store: &std::path::Path) -> (Vec<std::path::PathBuf>, Vec<String>) {
    let objs = files(store);
    let lines = objs.iter().flat_map(|p| gunzip_lines(p)).collect();
    (objs, lines)
}

fn assert_exactly_once(got: &[String], want: &[String]) {
    let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
    for l in got {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{} duplicated events", dups.len());
    assert_eq!(got.len(), want.len());
    for w in want {
        assert!(counts.contains_key(w.as_str()), "missing {w}");
    }
}

#[test]
fn topic_archive_writes_every_event_exactly_once() {
    let k = MockKafka::start(&[("ev", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(2500, 200);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    send_lines_file(&k, dir.path(), "ev.jsonl.gz", &["key_field=user"]);
    let store = dir.path().join("store");
    let out = archive(&k, &store, &["once=true", "batch=1000"]);
    let r = json_result(&out);
    assert_eq!(r["records"], 2500);
    assert!(
        !text(&out.stderr).contains("ERROR"),
        "a clean run logs no error: {}",
        text(&out.stderr)
    );
    let (objs, got) = archived(&store);
    assert_exactly_once(&got, &lines);
    // The documented layout.
    for o in &objs {
        let rel = o
            .strip_prefix(&store)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts[0], "kafka");
        assert_eq!(parts[1], "ev");
        assert_eq!(parts[2].len(), 10, "{rel}");
        assert_eq!(parts[3].len(), 2, "{rel}");
        assert!(
            parts[4].starts_with("ev-") && parts[4].ends_with(".jsonl.gz"),
            "{rel}"
        );
    }
    // Committed: a second run finds nothing new.
    let r2 = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(r2["records"], 0);
    assert_eq!(files(&store).len(), objs.len());
}

#[test]
fn topic_archive_crash_between_write_and_commit_repeats_never_loses() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(2500, 150);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    send_lines_file(&k, dir.path(), "ev.jsonl.gz", &[]);
    let store = dir.path().join("store");
    let out = archive(
        &k,
        &store,
        // One write at a time, so exactly one object exists when the hook exits.
        &[
            "once=true",
            "batch=1000",
            "crash_after_write=true",
            "concurrency=1",
        ],
    );
    assert!(!out.status.success(), "the hook exits hard");
    let (objs, _) = archived(&store);
    assert_eq!(objs.len(), 1, "one batch written before the crash");
    let crashed_key = objs[0].clone();
    let r = json_result(&archive(&k, &store, &["once=true", "batch=1000"]));
    assert_eq!(r["records"], 2500, "the uncommitted batch is read again");
    let (objs, got) = archived(&store);
    assert_eq!(objs.len(), 3);
    assert!(
        objs.contains(&crashed_key),
        "the repeated batch overwrote the same key"
    );
    assert_exactly_once(&got, &lines);
    assert!(files(&store).iter().all(|p| {
        !p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".rewind-tmp")
    }));
}

#[test]
fn topic_archive_closes_a_quiet_batch_after_max_wait_and_flushes_on_sigterm() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let lines = events(5, 60);
    kcat_produce(&k.brokers, "ev", &lines);
    let mut child = rewind()
        .args(["run", "topic-archive"])
        .arg(format!("brokers={}", k.brokers))
        .arg("topics=ev")
        .arg(format!("store={}", store.display()))
        .args(["batch=1000", "max_wait=2s", MOCK_GROUP_CONFIG])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while files(&store).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (objs, got) = archived(&store);
    assert_eq!(objs.len(), 1, "the quiet batch was archived after max_wait");
    assert_eq!(got, lines);

    // More events, then SIGTERM before max_wait: the open batch is written and committed on the way out.
    let more = events(8, 61);
    kcat_produce(&k.brokers, "ev", &more);
    std::thread::sleep(Duration::from_millis(800));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let (objs, got) = archived(&store);
    let all: Vec<String> = lines.iter().chain(more.iter()).cloned().collect();
    assert_eq!(objs.len(), 2);
    assert_exactly_once(&got, &all);
    let r = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(
        r["records"], 0,
        "offsets of the flushed batch were committed"
    );
}
