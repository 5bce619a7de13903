//! Helpers for tests/kafka.rs: a librdkafka mock cluster in its own process (`rewind-mock-kafka`), kcat as
//! the independent client, and running scripts through the real `rewind` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct MockKafka {
    child: Child,
    pub brokers: String,
}

impl MockKafka {
    /// Starts a mock cluster with the given topics ("name", partitions).
    pub fn start(topics: &[(&str, i32)]) -> MockKafka {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rewind-mock-kafka"));
        for (t, p) in topics {
            cmd.arg(format!("{t}:{p}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rewind-mock-kafka");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading bootstrap servers");
        assert!(
            !line.trim().is_empty(),
            "mock cluster printed no bootstrap servers"
        );
        MockKafka {
            child,
            brokers: line.trim().to_string(),
        }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

pub fn rewind() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rewind"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
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

/// Every file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

pub fn gunzip_lines(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap();
    let d = flate2::read::MultiGzDecoder::new(f);
    BufReader::new(d).lines().map(|l| l.unwrap()).collect()
}
