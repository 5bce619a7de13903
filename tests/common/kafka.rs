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
        Self::start_with(topics, None)
    }

    /// The same, with the broker's group.initial.rebalance.delay.ms (the mock's default is 3000).
    pub fn start_with(topics: &[(&str, i32)], rebalance_delay_ms: Option<u32>) -> MockKafka {
        Self::start_args(topics, rebalance_delay_ms, &[])
    }

    /// The same, with more flags (`--no-transactions`: brokers without producer ids, as before 0.11).
    pub fn start_args(
        topics: &[(&str, i32)],
        rebalance_delay_ms: Option<u32>,
        flags: &[&str],
    ) -> MockKafka {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rewind-mock-kafka"));
        cmd.args(flags);
        if let Some(ms) = rebalance_delay_ms {
            cmd.args(["--rebalance-delay-ms", &ms.to_string()]);
        }
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

impl MockKafka {
    /// Takes every broker away (connections cut, new ones refused) or lets them back; messages stay.
    pub fn set_brokers_up(&mut self, up: bool) {
        let stdin = self._child.0.stdin.as_mut().expect("the mock's stdin");
        writeln!(stdin, "{}", if up { "up" } else { "down" }).expect("steering the mock cluster");
        stdin.flush().unwrap();
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

/// librdkafka's mock coordinator waits out a departed member's session before the next join: keep it short.
pub const MOCK_GROUP_CONFIG: &str =
    r#"config={"session.timeout.ms":6000,"heartbeat.interval.ms":500}"#;

/// A copy of the bundled topic-archive with a test-only hook the shipped script does not carry: its one
/// `store:put(key, b.data)` becomes `hooked` (which names it as `PUT`).
pub fn hooked_topic_archive(dir: &Path, name: &str, hooked: &str) -> std::path::PathBuf {
    let src =
        std::fs::read_to_string(super::process::repo().join("scripts/topic-archive.lua")).unwrap();
    let put = "store:put(key, b.data)";
    assert_eq!(
        src.matches(put).count(),
        1,
        "topic-archive.lua writes with `{put}`"
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, src.replace(put, &hooked.replace("PUT", put))).unwrap();
    path
}

/// topic-archive that exits hard right after its first object is written, before that batch's offsets
/// are committed.
pub fn topic_archive_exiting_after_first_write(dir: &Path) -> std::path::PathBuf {
    hooked_topic_archive(
        dir,
        "topic-archive-exit-after-write",
        "PUT; os.exit(137, false)",
    )
}

/// A long-running topic-archive (not once) logging JSON lines at debug level into a file.
pub struct Archiver {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Archiver {
    pub fn start(k: &MockKafka, store: &Path, log: &Path, extra: &[&str]) -> Archiver {
        Self::start_script(k, store, log, "topic-archive", extra)
    }

    /// The same with another script (a hooked copy).
    pub fn start_script(
        k: &MockKafka,
        store: &Path,
        log: &Path,
        script: &str,
        extra: &[&str],
    ) -> Archiver {
        let child = rewind()
            .args(["-v", "--log-format", "json", "run", script])
            .arg(format!("brokers={}", k.brokers))
            .arg("topics=ev")
            .arg(format!("store={}", store.display()))
            .args((!extra.iter().any(|a| a.starts_with("config="))).then_some(MOCK_GROUP_CONFIG))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Archiver {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Its log, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log lines so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn wait_log(&self, message: &str) {
        super::process::wait_for(message, std::time::Duration::from_secs(60), || {
            self.lines().iter().any(|l| l["message"] == message)
        });
    }

    /// SIGTERM, then its exit code (None when it had not exited 60 s later: then it is killed).
    pub fn stop(&mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    /// The objects it wrote for partitions it did not own at the time, from its log: partitions are
    /// owned from "partitions assigned" to "partitions revoked"; an object's partition is in its name
    /// (`ev-<partition>-<offset>.jsonl.gz`).
    pub fn writes_outside_its_partitions(&self) -> (usize, Vec<String>) {
        let mut owned = std::collections::BTreeSet::new();
        let (mut writes, mut bad) = (0, Vec::new());
        let list = |l: &serde_json::Value| -> Vec<String> {
            let s = l["partitions"].as_str().unwrap_or("");
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        };
        for l in self.lines() {
            let msg = l["message"].as_str().unwrap_or("");
            match msg {
                "kafka: partitions assigned" => owned.extend(list(&l)),
                "kafka: partitions revoked" => list(&l).iter().for_each(|p| {
                    owned.remove(p);
                }),
                // a script's log line: "archived batch count=N key=K"
                _ if msg.starts_with("archived batch ") => {
                    writes += 1;
                    let key = msg
                        .split(' ')
                        .find_map(|w| w.strip_prefix("key="))
                        .unwrap_or("");
                    let file = key.rsplit('/').next().unwrap();
                    let tp = file.rsplit_once('-').map_or("", |x| x.0);
                    if !owned.contains(tp) {
                        bad.push(format!("{key} while owning {owned:?}"));
                    }
                }
                _ => {}
            }
        }
        (writes, bad)
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON result of a successful run (panics with its output otherwise).
pub fn json_result(out: &std::process::Output) -> serde_json::Value {
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

/// Writes `src` as a script in `dir`, runs it with `--json` and returns its result.
pub fn run_json(
    dir: &std::path::Path,
    name: &str,
    src: &str,
    params: &[String],
) -> serde_json::Value {
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

/// A script that sends a file's lines with `send_lines` (params: brokers, topic, file, ...).
pub const SEND_LINES: &str = r#"
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

/// Runs SEND_LINES for `file` (in `dir`) into topic `ev`.
pub fn send_lines_file(
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
