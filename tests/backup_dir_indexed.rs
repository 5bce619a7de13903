//! backup-dir each=true fanned out over copies side by side, as the pods of a Kubernetes Indexed Job run
//! it (deploy/kubernetes/indexed-backup.yaml), against a real S3-protocol server (moto): each copy gets
//! a pod's environment (JOB_COMPLETION_INDEX, and JOB_COMPLETION_COUNT from the manifest) and backs up its
//! contiguous share of the directories, each to its own prefix. With batch=ID a copy killed with SIGKILL
//! and rerun finds the prefixes it had committed "already done" and does only the rest.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::archive::{make_tree, snapshot_tree};
use common::fault_proxy::{Fault, FaultProxy, Rule};
use common::process::{rewind, text, wait_for};
use common::s3::S3Server;
use serde_json::Value;

const BUCKET: &str = "fanout";
const DIRS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];
const COUNT: usize = 2;

struct World {
    server: S3Server,
    tmp: tempfile::TempDir,
}

impl World {
    /// moto with an empty bucket, and five directories under vol/ that differ in content and size.
    fn start() -> World {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let tmp = tempfile::tempdir().unwrap();
        for (i, name) in DIRS.iter().enumerate() {
            let dir = tmp.path().join("vol").join(name);
            make_tree(&dir);
            std::fs::write(dir.join("name.txt"), name.repeat(1000 * (i + 1))).unwrap();
        }
        World { server, tmp }
    }

    fn src(&self, name: &str) -> PathBuf {
        self.tmp.path().join("vol").join(name)
    }

    /// `rewind run --json backup-dir each=true` over the five directories, reaching S3 at `endpoint`.
    fn backup(&self, endpoint: &str, extra: &[&str]) -> Command {
        let from: Vec<String> = DIRS.iter().map(|d| format!("vol/{d}")).collect();
        self.backup_from(endpoint, &from.join(","), extra)
    }

    fn backup_from(&self, endpoint: &str, from: &str, extra: &[&str]) -> Command {
        let mut c = rewind();
        c.current_dir(self.tmp.path())
            .envs(self.server.env())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("JOB_COMPLETION_COUNT")
            .args(["run", "--json", "backup-dir", "each=true"])
            .arg(format!("from={from}"))
            .arg(format!("store=s3://{BUCKET}"))
            .args(extra);
        c
    }

    /// Copy `index` of `COUNT`, with the environment a pod of the Indexed Job gets.
    fn copy(&self, endpoint: &str, index: usize, extra: &[&str]) -> Command {
        let mut c = self.backup(endpoint, extra);
        c.env("JOB_COMPLETION_INDEX", index.to_string())
            .env("JOB_COMPLETION_COUNT", COUNT.to_string());
        c
    }

    fn run_copy(&self, index: usize, extra: &[&str]) -> Value {
        result(
            &self
                .copy(&self.server.endpoint, index, extra)
                .output()
                .unwrap(),
        )
    }

    /// The manifest keys under `dirs/<name>/`, read from moto directly.
    fn manifests(&self, name: &str) -> Vec<String> {
        self.server
            .list_keys(BUCKET, &format!("dirs/{name}/"))
            .into_iter()
            .filter(|k| k.contains("/manifest_"))
            .collect()
    }

    fn manifest(&self, key: &str) -> Value {
        serde_json::from_slice(&self.server.get_bytes(BUCKET, key)).unwrap()
    }

    fn has_lease(&self, name: &str) -> bool {
        self.server
            .list_keys(BUCKET, &format!("dirs/{name}/locks/"))
            .iter()
            .any(|k| k.ends_with("target.json"))
    }

    /// restore-dir of `dirs/<name>` into a fresh directory equals the source: bytes, modes, mtimes, links.
    fn assert_restores(&self, name: &str) {
        let to = self
            .tmp
            .path()
            .join(format!("restored-{}", common::process::unique()));
        std::fs::create_dir(&to).unwrap();
        let out = rewind()
            .current_dir(self.tmp.path())
            .envs(self.server.env())
            .args(["run", "--json", "restore-dir"])
            .arg(format!("store=s3://{BUCKET}"))
            .arg(format!("prefix=dirs/{name}"))
            .arg(format!("to={}", to.join(name).display()))
            .output()
            .unwrap();
        result(&out);
        assert_eq!(
            snapshot_tree(&self.src(name)),
            snapshot_tree(&to.join(name)),
            "dirs/{name} restores to its source"
        );
    }
}

fn result(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// (prefix, status) of each entry of a result's `prefixes`.
fn statuses(r: &Value) -> Vec<(String, String)> {
    r["prefixes"]
        .as_array()
        .unwrap_or_else(|| panic!("no prefixes: {r}"))
        .iter()
        .map(|p| {
            (
                p["prefix"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, s)| (format!("dirs/{n}"), s.to_string()))
        .collect()
}

#[test]
fn copies_of_an_indexed_job_back_up_each_directory_once_to_its_own_prefix() {
    let w = World::start();
    let children: Vec<_> = (0..COUNT)
        .map(|i| {
            w.copy(&w.server.endpoint, i, &["batch=job-1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<Value> = children
        .into_iter()
        .map(|c| result(&c.wait_with_output().unwrap()))
        .collect();
    // 5 directories over 2 copies: a contiguous slice of 3, then 2.
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["share"], format!("{} of {COUNT}", i + 1), "{r}");
        assert_eq!(r["batch"], "job-1", "{r}");
    }
    assert_eq!(
        statuses(&results[0]),
        expect(&[("alpha", "done"), ("bravo", "done"), ("charlie", "done")])
    );
    assert_eq!(
        statuses(&results[1]),
        expect(&[("delta", "done"), ("echo", "done")])
    );
    for name in DIRS {
        let keys = w.manifests(name);
        assert_eq!(keys.len(), 1, "one snapshot under dirs/{name}: {keys:?}");
        let m = w.manifest(&keys[0]);
        assert_eq!(m["tags"]["batch"], "job-1", "{m}");
        assert_eq!(m["target"], format!("vol/{name}"), "{m}");
        assert!(!w.has_lease(name), "the lease of dirs/{name} was released");
        w.assert_restores(name);
    }

    // The same batch again (a retried pod): nothing is written twice.
    let again = w.run_copy(0, &["batch=job-1"]);
    assert_eq!(
        statuses(&again),
        expect(&[
            ("alpha", "already done"),
            ("bravo", "already done"),
            ("charlie", "already done")
        ])
    );
    assert_eq!(again["already_done"], 3, "{again}");
    assert!(DIRS.iter().all(|n| w.manifests(n).len() == 1));

    // The next run is another batch: its copy backs up its share again.
    let next = w.run_copy(1, &["batch=job-2"]);
    assert_eq!(
        statuses(&next),
        expect(&[("delta", "done"), ("echo", "done")])
    );
    assert_eq!(w.manifests("delta").len(), 2);
    assert_eq!(w.manifests("alpha").len(), 1);
}

/// A copy killed (SIGKILL, as a node loss does) while it backs up its second prefix is rerun with the
/// same batch, as Kubernetes retries a failed index: its first prefix is "already done", the second is
/// taken over from the dead holder's lease and done, and the third done; no prefix has two snapshots.
#[test]
fn a_killed_copy_rerun_with_the_same_batch_does_only_what_it_had_not_committed() {
    let w = World::start();
    // The killed copy goes through a proxy that holds up the listing of its second prefix, so the kill
    // lands while it holds that prefix's lease and before anything of it is committed.
    let proxy = FaultProxy::start(w.server.port, 1);
    proxy.add(Rule::new(Fault::Stall(60_000)).method("GET").path("bravo"));
    let mut child = w
        .copy(&proxy.endpoint, 0, &["batch=job-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for l in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let done = l.contains("backup-dir dirs/alpha: snapshot ");
        seen.push(l);
        if done {
            break;
        }
    }
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("dirs/alpha: snapshot")),
        "{}",
        seen.join("\n")
    );
    wait_for(
        "the copy to work on dirs/bravo",
        Duration::from_secs(20),
        || {
            proxy
                .seen()
                .iter()
                .any(|s| s.fault.is_some() && s.target.contains("bravo"))
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(w.manifests("alpha").len(), 1);
    assert!(w.manifests("bravo").is_empty() && w.manifests("charlie").is_empty());
    assert!(
        w.has_lease("bravo"),
        "the killed copy held the lease of dirs/bravo"
    );

    let out = w
        .copy(&w.server.endpoint, 0, &["batch=job-1"])
        .output()
        .unwrap();
    let r = result(&out);
    assert_eq!(
        statuses(&r),
        expect(&[
            ("alpha", "already done"),
            ("bravo", "done"),
            ("charlie", "done")
        ])
    );
    assert_eq!(
        (r["done"].clone(), r["already_done"].clone()),
        (2.into(), 1.into())
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("backup-dir dirs/alpha: already done") && log.contains("its process is gone"),
        "{log}"
    );
    let other = w.run_copy(1, &["batch=job-1"]);
    assert_eq!(
        statuses(&other),
        expect(&[("delta", "done"), ("echo", "done")])
    );
    for name in DIRS {
        assert_eq!(w.manifests(name).len(), 1, "dirs/{name} backed up once");
        assert!(!w.has_lease(name), "dirs/{name}: lease released");
        w.assert_restores(name);
    }
}

/// Bad input is refused with exit 2 naming the problem, by every copy alike, before anything is written.
#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let w = World::start();
    std::fs::create_dir_all(w.tmp.path().join("other/alpha")).unwrap();
    let endpoint = &w.server.endpoint;
    let cases: Vec<(Command, &str)> = vec![
        (
            w.backup_from(endpoint, "vol/alpha,other/alpha,vol/bravo", &[]),
            "vol/alpha and other/alpha would both be backed up to dirs/alpha",
        ),
        (
            w.backup(endpoint, &["index=1"]),
            "index and count go together",
        ),
        (
            w.backup(endpoint, &["index=2", "count=2"]),
            "need 0 <= index < count",
        ),
        (
            {
                let mut c = w.backup(endpoint, &[]);
                c.env("JOB_COMPLETION_INDEX", "0");
                c
            },
            "JOB_COMPLETION_INDEX and JOB_COMPLETION_COUNT go together",
        ),
        (
            w.backup(endpoint, &["each=false", "index=0", "count=2"]),
            "index/count split the directories of each=true",
        ),
        (
            w.backup(endpoint, &["batch=$(JOB_NAME)"]),
            "looks like an unexpanded variable",
        ),
        (
            w.backup(endpoint, &["batch=a", "tags=batch=b"]),
            "contradicts batch=a",
        ),
        (
            w.backup_from(endpoint, "vol/alpha,vol/nope", &[]),
            "from: vol/nope does not exist",
        ),
    ];
    for (mut cmd, want) in cases {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{want}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{want}: {}",
            text(&out)
        );
    }
    let keys = w.server.list_keys(BUCKET, "");
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}
