//! rewind.kafka against librdkafka's mock cluster, checked with kcat: producer, send_lines, consumer.
//! topic-archive has its own file (tests/topic_archive.rs).

mod common;

use std::time::{Duration, Instant};

use common::kafka::*;
use common::process::files;

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
