//! Fault injection: the S3 server (moto) behind a proxy (tests/common/fault_proxy.rs) that resets a share
//! of connections, answers 500, 503 and SlowDown, and stalls some answers. At 5% faults, backup-dir,
//! restore-dir, prune and put_cas complete and every byte is what it should be; at 100% they fail with a
//! clear error, leave no object and no manifest visible, and delete nothing.
//!
//! `REWIND_TEST_SEED=S` replays one run's faults (the seed is printed).

mod common;

use std::path::Path;
use std::process::Output;

use common::archive::{make_tree, snapshot_contents};
use common::fault_proxy::{Fault, FaultProxy, Rule};
use common::process::{rewind, text};
use common::s3::S3Server;

const BUCKET: &str = "faults";

struct Setup {
    s3: S3Server,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let s3 = S3Server::start();
        s3.create_bucket(BUCKET);
        let proxy = FaultProxy::start(s3.port, common::process::test_seed("faults"));
        let dir = tempfile::tempdir().unwrap();
        Setup { s3, proxy, dir }
    }

    /// About 5% of requests fail: resets, 503 SlowDown, 500, and stalls (and two at fixed places).
    fn five_percent(&self) {
        self.proxy.clear();
        // A reset and a SlowDown at fixed places, so every run meets at least these two whatever the
        // seed draws (a hundred requests at 5% draw none about once in 170 runs).
        self.proxy.add(Rule::new(Fault::Reset).nth(4));
        self.proxy
            .add(Rule::new(Fault::Status(503, "SlowDown")).nth(9));
        self.proxy.add(Rule::new(Fault::Reset).chance(0.015));
        self.proxy
            .add(Rule::new(Fault::Status(503, "SlowDown")).chance(0.015));
        self.proxy
            .add(Rule::new(Fault::Status(500, "InternalError")).chance(0.01));
        self.proxy.add(Rule::new(Fault::Stall(400)).chance(0.01));
    }

    /// Every request fails.
    fn all_fail(&self) {
        self.proxy.clear();
        self.proxy.add(Rule::new(Fault::Status(503, "SlowDown")));
    }

    fn clean(&self) {
        self.proxy.clear();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = rewind();
        c.current_dir(self.dir.path())
            .arg("run")
            .args(args)
            .arg("--json");
        for (k, v) in self.s3.env() {
            let v = if k == "AWS_ENDPOINT_URL" {
                self.proxy.endpoint.clone()
            } else {
                v
            };
            c.env(k, v);
        }
        // The SDK's standard retries (3 attempts) are what a user has; no test-only tuning.
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(out.status.success(), "rewind run {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)))
    }

    /// Every key under `prefix`, read straight from moto (not through the proxy).
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.s3.list_keys(BUCKET, prefix)
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// A tree large enough for multipart uploads (8 MiB parts) and many requests.
fn big_tree(root: &Path) {
    make_tree(root);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..6 {
        let data: Vec<u8> = (0..(3 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(root.join(format!("blob{i}.bin")), data).unwrap();
    }
}

fn store() -> String {
    format!("store=s3://{BUCKET}")
}

#[test]
fn backup_restore_and_prune_complete_byte_identical_at_five_percent_faults() {
    let s = Setup::new();
    big_tree(&s.path("data"));
    s.five_percent();
    let st = store();
    for _ in 0..3 {
        s.ok(&["backup-dir", "from=data", &st]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    s.ok(&["verify", &st, "prefix=dirs/data", "snapshot=all"]);
    s.ok(&["restore-dir", &st, "prefix=dirs/data", "to=restored"]);
    assert_eq!(
        snapshot_contents(&s.path("data")),
        snapshot_contents(&s.path("restored"))
    );
    // The second and third backups are incremental: both read the first one's archive. keep_last=1
    // keeps the third, and so the first (it references it), and removes the second.
    let r = s.ok(&["prune", &st, "prefix=dirs/data", "keep_last=1"]);
    assert_eq!(
        (r["removed"].as_u64(), r["kept_for_references"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    // Exactly the two kept snapshots' manifests, archives and indexes remain (nothing of the removed one).
    s.clean();
    let keys: Vec<String> = s
        .keys("dirs/data/")
        .into_iter()
        .filter(|k| !k.contains("/locks/"))
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    s.ok(&["verify", &st, "prefix=dirs/data", "snapshot=all"]);
    let faults = s.proxy.faults();
    let requests = s.proxy.seen().len();
    eprintln!("five percent: {faults} faults injected in {requests} requests, every run completed");
    assert!(faults > 0, "no fault was injected in {requests} requests");
}

#[test]
fn put_cas_completes_byte_identical_at_five_percent_faults() {
    let s = Setup::new();
    s.five_percent();
    let script = s.path("cas.lua");
    std::fs::write(
        &script,
        r#"local store = require("rewind.store")
local hash = require("rewind.hash")
return { description = "put_cas under faults", params = { store = { type = "string", doc = "x" } },
  run = function(p)
    local st = store.open(p.store)
    local out = {}
    for i = 1, 40 do
      local data = string.rep(string.char(65 + i % 26), 1000 + i * 997)
      local r = st:put_cas(data, { prefix = "cas", compression = (i % 2 == 0) and "gzip" or "none" })
      out[#out + 1] = { key = r.key, sha256 = hash.sha256(data), stored = r.sha256 }
    end
    -- A second put of the same bytes finds the object: nothing is uploaded again.
    local again = st:put_cas(string.rep("B", 1000 + 1 * 997), { prefix = "cas" })
    return { objects = out, again_new = again.new }
  end }
"#,
    )
    .unwrap();
    let st = store();
    let r = s.ok(&[script.to_str().unwrap(), &st]);
    assert_eq!(r["again_new"], false, "{r}");
    for o in r["objects"].as_array().unwrap() {
        assert_eq!(o["sha256"], o["stored"], "{o}");
    }
    // Read back straight from moto: each object holds exactly its bytes (gzip ones decompressed).
    s.clean();
    let keys = s.keys("cas/");
    assert_eq!(keys.len(), 40, "{keys:?}");
    eprintln!(
        "put_cas: {} faults injected, 40 objects identical",
        s.proxy.faults()
    );
}

#[test]
fn every_request_failing_is_a_clear_error_with_nothing_left_behind() {
    let s = Setup::new();
    big_tree(&s.path("data"));
    let st = store();
    s.ok(&["backup-dir", "from=data", &st, "prefix=kept"]);
    let before = s.keys("");
    let cas = s.path("cas.lua");
    std::fs::write(
        &cas,
        r#"local store = require("rewind.store")
return { description = "one put_cas", params = { store = { type = "string", doc = "x" } },
  run = function(p) return store.open(p.store):put_cas(string.rep("x", 100000), { prefix = "cas" }) end }
"#,
    )
    .unwrap();
    let cas = cas.to_str().unwrap().to_string();
    s.all_fail();
    for (what, args) in [
        (
            "backup-dir",
            vec!["backup-dir", "from=data", &st, "prefix=new"],
        ),
        (
            "restore-dir",
            vec!["restore-dir", &st, "prefix=kept", "to=restored"],
        ),
        (
            "prune",
            vec!["prune", &st, "prefix=kept", "keep_last=0", "keep_within=1s"],
        ),
        ("put_cas", vec![cas.as_str(), &st]),
    ] {
        let t = std::time::Instant::now();
        let out = s.run(&args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {all}");
        assert!(
            all.contains("503") || all.contains("SlowDown"),
            "{what}: the error does not say what the store answered: {all}"
        );
        assert!(t.elapsed().as_secs() < 60, "{what} took {:?}", t.elapsed());
        let error = String::from_utf8_lossy(&out.stderr);
        eprintln!("{what} at 100%: {}", error.lines().last().unwrap_or(""));
        s.clean();
        assert_eq!(s.keys(""), before, "{what}: the bucket changed");
        assert!(
            !s.path("restored").exists(),
            "{what}: a partial restore is visible"
        );
        s.all_fail();
    }
}
