//! Helpers for tests/kafka.rs: a librdkafka mock cluster in its own process (`rewind-mock-kafka`), kcat as
//! the independent client, and running scripts through the real `rewind` binary.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub use super::process::rewind;
use super::process::{Killed, must_succeed, spawn_announcing};

pub struct MockKafka {
    _child: Killed,
    pub brokers: String,
}

impl MockKafka {
    /// Starts a mock cluster with the given topics ("name", partitions). It stops when its stdin closes.
    pub fn start(topics: &[(&str, i32)]) -> MockKafka {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rewind-mock-kafka"));
        for (t, p) in topics {
            cmd.arg(format!("{t}:{p}"));
        }
        cmd.stdin(Stdio::piped()).stderr(Stdio::null());
        let (child, brokers) = spawn_announcing(&mut cmd, "rewind-mock-kafka");
        MockKafka {
            _child: Killed(child),
            brokers,
        }
    }
}

/// One message as kcat sees it.
#[derive(Debug, Clone)]
pub struct KMsg {
    pub partition: i64,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
}

/// Everything a topic holds, read with kcat (an independent client).
pub fn kcat_all(brokers: &str, topic: &str) -> Vec<KMsg> {
    let out = Command::new("kcat")
        .args(["-b", brokers, "-C", "-t", topic, "-e", "-q", "-J"])
        .output()
        .expect("running kcat (apt-get install kcat)");
    let out = must_succeed(out, "kcat");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            KMsg {
                partition: j["partition"].as_i64().unwrap(),
                offset: j["offset"].as_i64().unwrap(),
                key: j["key"].as_str().map(|s| s.to_string()),
                value: j["payload"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// Produces lines with kcat.
pub fn kcat_produce(brokers: &str, topic: &str, lines: &[String]) {
    let mut child = Command::new("kcat")
        .args(["-b", brokers, "-P", "-t", topic])
        .stdin(Stdio::piped())
        .spawn()
        .expect("running kcat");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

/// Writes `source` as a script in `dir` and runs it with params.
pub fn run_script(dir: &Path, name: &str, source: &str, params: &[String]) -> Output {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, source).unwrap();
    rewind()
        .current_dir(dir)
        .arg("run")
        .arg(&path)
        .args(params)
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `n` JSON events, about `size` bytes each.
pub fn events(n: usize, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let base = format!(
                r#"{{"id":{i},"user":"u{}","type":"click","pad":""}}"#,
                i % 7
            );
            let pad = "x".repeat(size.saturating_sub(base.len()));
            format!(
                r#"{{"id":{i},"user":"u{}","type":"click","pad":"{pad}"}}"#,
                i % 7
            )
        })
        .collect()
}

pub fn gzip_lines(path: &Path, lines: &[String]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    for l in lines {
        writeln!(e, "{l}").unwrap();
    }
    e.finish().unwrap();
}

pub fn zstd_lines(path: &Path, lines: &[String]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = zstd::stream::write::Encoder::new(f, 3).unwrap();
    for l in lines {
        writeln!(e, "{l}").unwrap();
    }
    e.finish().unwrap();
}

pub fn gunzip_lines(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap();
    let d = flate2::read::MultiGzDecoder::new(f);
    BufReader::new(d).lines().map(|l| l.unwrap()).collect()
}
