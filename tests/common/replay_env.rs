//! The world of a replay test (tests/replay.rs): Azurite holding the archived sink data and the dependent
//! sinks' output, librdkafka's mock cluster with the output topic (kcat reads it), the stateful fake Druid
//! cluster (tests/fakes/druid_cluster.py) and the Slack fake. Seeded with three days of archive
//! (2019-12-01..03) plus a day before the range whose data must never be touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

use super::azure::{Azurite, python};
use super::daemon::SlackFake;
use super::kafka::{MockKafka, kcat_all};
use super::process::{Killed, must_succeed, python_fake, rewind, spawn_announcing};

pub const CONTAINER: &str = "sinks";
pub const TOPIC: &str = "telemetry.valid";
pub const DAYS: [&str; 3] = ["2019-12-01", "2019-12-02", "2019-12-03"];
pub const BEFORE: &str = "2019-11-30";
pub const EVENTS_PER_FILE: usize = 100;
pub const FILES_PER_DAY: usize = 2;
pub const DATASOURCE: &str = "telemetry-events";

/// Source document 002's JSON config, exactly as the document writes it.
pub const DOCUMENT_CONFIG: &str = r#"{
    "ingest": {
        "outputKafkaTopic": "telemetry.raw",
        "dependentSinkSources": [
            { "type": "azure", "prefix": "raw" }, { "type": "azure", "prefix": "unique" },
            { "type": "azure", "prefix": "channel" }, { "type": "azure", "prefix": "telemetry-denormalized" },
            { "type": "druid", "prefix": "telemetry-events" }, { "type": "druid", "prefix": "telemetry-log-events" },
            { "type": "druid", "prefix": "telemetry-error-events" }, { "type": "druid", "prefix": "telemetry-feedback-events" }
        ]
    },
    "raw": {
        "outputKafkaTopic": "telemetry.valid",
        "dependentSinkSources": [
            { "type": "azure", "prefix": "unique" }, { "type": "azure", "prefix": "channel" },
            { "type": "azure", "prefix": "telemetry-denormalized" },
            { "type": "druid", "prefix": "telemetry-events" }, { "type": "druid", "prefix": "telemetry-log-events" },
            { "type": "druid", "prefix": "telemetry-error-events" }, { "type": "druid", "prefix": "telemetry-feedback-events" }
        ]
    },
    "unique": {
        "outputKafkaTopic": "telemetry.sink",
        "dependentSinkSources": [
            { "type": "azure", "prefix": "channel" }, { "type": "azure", "prefix": "telemetry-denormalized" },
            { "type": "druid", "prefix": "telemetry-events" }, { "type": "druid", "prefix": "telemetry-log-events" },
            { "type": "druid", "prefix": "telemetry-error-events" }, { "type": "druid", "prefix": "telemetry-feedback-events" }
        ]
    },
    "failed": {
        "outputKafkaTopic": "telemetry.raw",
        "dependentSinkSources": [

        ]
    },
    "wfs": {
        "outputKafkaTopic": "telemetry.sink",
        "dependentSinkSources": [
            { "type": "azure", "prefix": "channel" }, { "type": "azure", "prefix": "telemetry-denormalized" },
            { "type": "druid", "prefix": "summary-events" }
        ]
    }
}"#;

pub struct ReplayEnv {
    pub dir: tempfile::TempDir,
    pub azurite: Azurite,
    pub kafka: MockKafka,
    pub slack: SlackFake,
    _druid: Killed,
    pub druid_url: String,
}

/// One event line of the archive.
pub fn event(day: &str, file: usize, i: usize) -> String {
    format!(
        r#"{{"mid":"{day}-{file}-{i}","eid":"START","ets":"{day}T00:00:{:02}Z"}}"#,
        i % 60
    )
}

fn segment(day: &str, part: u32, used: bool) -> Value {
    let next = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .unwrap()
        .succ_opt()
        .unwrap();
    let iv = format!("{day}T00:00:00.000Z/{next}T00:00:00.000Z");
    let id = format!("{DATASOURCE}_{}_v1_{part}", iv.replace('/', "_"));
    json!({"id": id, "dataSource": DATASOURCE, "interval": iv, "version": "v1", "used": used,
      "payload": {"dataSource": DATASOURCE, "interval": iv, "version": "v1", "identifier": id,
        "loadSpec": {"type": "local", "path": format!("/opt/shared/segments/{id}/index.zip")},
        "shardSpec": {"type": "numbered", "partitionNum": part, "partitions": 2}, "size": 1000}})
}

impl ReplayEnv {
    /// `unique_per_day2`: how many objects the `unique` sink holds for 2019-12-02 (many make its backup
    /// take a while, for the kill test).
    pub fn start(unique_day2: usize) -> ReplayEnv {
        Self::start_with(unique_day2, &[])
    }

    /// `mock_flags` go to rewind-mock-kafka (e.g. `--no-transactions`).
    pub fn start_with(unique_day2: usize, mock_flags: &[&str]) -> ReplayEnv {
        let dir = tempfile::tempdir().unwrap();
        let azurite = Azurite::start();
        azurite.create_container(CONTAINER);
        let kafka = MockKafka::start_args(&[(TOPIC, 2)], Some(0), mock_flags);
        let slack = SlackFake::start(dir.path());

        // The tree to upload: archive (gzip JSONL, topic-archive layout) and dependents' output.
        let tree = dir.path().join("seed");
        for day in DAYS.iter().chain([BEFORE].iter()) {
            for f in 0..FILES_PER_DAY {
                let lines: Vec<String> = (0..EVENTS_PER_FILE).map(|i| event(day, f, i)).collect();
                let p = tree.join(format!("raw/{day}/00/raw-{f}-{day}.jsonl.gz"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                super::kafka::gzip_lines(&p, &lines);
            }
            let unique = if *day == "2019-12-02" { unique_day2 } else { 3 };
            for (sink, n) in [
                ("unique", unique),
                ("channel", 2),
                ("telemetry-denormalized", 1),
            ] {
                for j in 0..n {
                    let p = tree.join(format!("{sink}/{day}/part-{j:04}.json"));
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, format!("{sink} {day} {j}\n").repeat(20 + j)).unwrap();
                }
            }
        }
        upload_tree(&azurite, &tree);

        let mut segs = Vec::new();
        for day in DAYS.iter().chain([BEFORE].iter()) {
            segs.push(segment(day, 0, true));
            segs.push(segment(day, 1, true));
        }
        let seg_file = dir.path().join("segments.json");
        std::fs::write(&seg_file, serde_json::to_vec(&segs).unwrap()).unwrap();
        let (child, line) = spawn_announcing(
            python_fake("druid_cluster.py")
                .arg("--segments")
                .arg(&seg_file)
                .stderr(Stdio::null()),
            "the fake Druid cluster",
        );
        let port = line.trim_start_matches("PORT").trim().to_string();
        std::fs::write(dir.path().join("config.json"), DOCUMENT_CONFIG).unwrap();
        ReplayEnv {
            dir,
            azurite,
            kafka,
            slack,
            _druid: Killed(child),
            druid_url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// `rewind run --json replay` with the world's store, brokers, Druid and Slack, plus `extra`.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut c = rewind();
        c.current_dir(self.dir.path())
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                self.azurite.connection_string(),
            )
            .env(
                "SLACK_WEBHOOK",
                format!("{}/services/T0/B0/secret0", self.slack.url),
            )
            .args(["run", "--json", "replay"])
            .arg(format!("bucket=az://{CONTAINER}"))
            .arg(format!("brokerList={}", self.kafka.brokers))
            .arg(format!("druid_coordinator={}", self.druid_url))
            .args([
                "druid_overlord=",
                "kill_timeout=60s",
                "transaction_timeout=5s",
                "lock_ttl=30s",
            ])
            .arg("kafka_config={\"message.timeout.ms\": 4000, \"transaction.timeout.ms\": 20000}")
            .args(extra);
        c
    }

    pub fn run(&self, extra: &[&str]) -> Output {
        self.command(extra).output().unwrap()
    }

    /// Starts a run whose stderr (JSON log lines) the test reads.
    pub fn spawn(&self, extra: &[&str]) -> Child {
        self.command(&[&["--log-format=json"][..], extra].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every blob: name -> (size, sha256 of its bytes), read with Azure's own SDK.
    pub fn blobs(&self, prefix: &str) -> std::collections::BTreeMap<String, (u64, String)> {
        let script = r#"
import json, hashlib
out = {}
for b in c.list_blobs(name_starts_with=sys.argv[3]):
    data = c.download_blob(b.name).readall()
    out[b.name] = [b.size, hashlib.sha256(data).hexdigest()]
print(json.dumps(out))
"#;
        serde_json::from_slice(&sdk(&self.azurite, script, &[prefix], "listing blobs")).unwrap()
    }

    /// A blob's bytes as text (read with Azure's SDK).
    pub fn blob_text(&self, name: &str) -> String {
        let script = "sys.stdout.write(c.download_blob(sys.argv[3]).readall().decode())";
        String::from_utf8_lossy(&sdk(&self.azurite, script, &[name], "reading a blob")).into_owned()
    }

    /// Uploads one blob.
    pub fn put_blob(&self, name: &str, body: &str) {
        let script = "c.upload_blob(sys.argv[3], sys.argv[4].encode(), overwrite=True)";
        sdk(&self.azurite, script, &[name, body], "writing a blob");
    }

    /// The fake Druid's segments: id -> used.
    pub fn segments(&self) -> std::collections::BTreeMap<String, bool> {
        let r = super::http::request("GET", &format!("{}/_fake/state", self.druid_url), &[], None);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["used"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// The topic's message values, sorted.
    pub fn topic_values(&self) -> Vec<String> {
        let mut v: Vec<String> = kcat_all(&self.kafka.brokers, TOPIC)
            .into_iter()
            .map(|m| m.value)
            .collect();
        v.sort();
        v
    }
}

/// The events of `days`, sorted like `topic_values`.
pub fn expected_events(days: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = days
        .iter()
        .flat_map(|d| {
            (0..FILES_PER_DAY).flat_map(move |f| (0..EVENTS_PER_FILE).map(move |i| event(d, f, i)))
        })
        .collect();
    v.sort();
    v
}

fn upload_tree(az: &Azurite, tree: &Path) {
    let script = r#"
import os
root = sys.argv[3]
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        with open(p, 'rb') as fh:
            c.upload_blob(os.path.relpath(p, root), fh, overwrite=True)
"#;
    sdk(az, script, &[tree.to_str().unwrap()], "seeding Azurite");
}

/// Runs `body` with Azure's Python SDK: `c` is the test container's client, `sys.argv[3..]` are `args`.
/// Returns its stdout.
fn sdk(az: &Azurite, body: &str, args: &[&str], what: &str) -> Vec<u8> {
    let script = format!(
        "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
         c = BlobServiceClient.from_connection_string(sys.argv[1]).get_container_client(sys.argv[2])\n{body}"
    );
    let out = Command::new(python())
        .args(["-c", &script, &az.connection_string(), CONTAINER])
        .args(args)
        .output()
        .unwrap();
    must_succeed(out, what).stdout
}

/// (day, status) of each day in a replay's result.
pub fn days_of(result: &serde_json::Value) -> Vec<(String, String)> {
    result["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
