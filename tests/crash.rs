//! Crash consistency: `kill -9` at seeded random points during backup-dir, prune and druid-backup (and
//! restore-dir, in tests/restore_dir.rs `an_overwrite_killed_at_any_point...`, which also aims its kills
//! around the swap). After every kill: each listed snapshot passes `verify`, the next run of the same job
//! succeeds with no manual step (the dead holder's lease is taken over), and a final prune (grace 0)
//! leaves no leftovers in the store. Between kills, a prune keeps the store to the newest few snapshots.
//!
//! `REWIND_TEST_KILLS=N` (default 10 per procedure, the CI quick mode; 200 for the long mode in BENCHMARKS.md)
//! and `REWIND_TEST_SEED=S` (default: from the clock; printed, so a failure can be replayed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::process::{files, rewind, text};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn kills() -> usize {
    common::process::test_kills(10)
}

fn rng(what: &str) -> StdRng {
    let seed = common::process::test_seed(what);
    eprintln!("{what}: REWIND_TEST_KILLS={}", kills());
    StdRng::seed_from_u64(seed)
}

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = rewind();
        c.current_dir(self.dir.path())
            .env("REWIND_STORE", self.root())
            .arg("-q")
            .arg("run")
            .args(args);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "rewind run {args:?}: {}", text(&out));
        out
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
    /// Every listed snapshot of `prefix` passes verify (checked object by object, sha256 and size).
    fn all_verify(&self, prefix: &str) {
        let p = format!("prefix={prefix}");
        self.ok(&["verify", &p, "snapshot=all"]);
    }
    /// Files the store holds that are not part of a listed snapshot's manifest, nor a lease.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut referenced = std::collections::BTreeSet::new();
        for f in files(&self.root()) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("manifest_") && name.ends_with(".json") {
                referenced.insert(f.clone());
                let m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                for o in m["objects"].as_array().into_iter().flatten() {
                    let key = o["key"].as_str().unwrap();
                    referenced.insert(self.root().join(key));
                }
            }
        }
        files(&self.root())
            .into_iter()
            .filter(|f| !referenced.contains(f) && !f.to_string_lossy().contains("/locks/"))
            .collect()
    }
}

/// Starts `args`, kills it with SIGKILL after `after`, and reaps it.
fn kill_after(store: &Store, args: &[&str], after: Duration) {
    let mut child = store.spawn(args);
    std::thread::sleep(after);
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
}

/// How long an undisturbed run takes (the range kills are drawn from).
fn timed(store: &Store, args: &[&str]) -> Duration {
    let t = Instant::now();
    store.ok(args);
    t.elapsed()
}

/// Snapshot ids have one-second resolution: a new run starts in a later second than the last one.
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - now.subsec_nanos() as u64 + 5_000_000,
    ));
}

/// A tree of `files` files of random bytes (incompressible, so a backup takes long enough to be hit).
fn make_data(root: &Path, files: usize, size: usize, seed: u64) {
    let mut r = StdRng::seed_from_u64(seed);
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = vec![0u8; size];
        r.fill(&mut data[..]);
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
}

fn draw(r: &mut StdRng, full: Duration) -> Duration {
    full.mul_f64(r.random_range(0.0..1.2))
}

#[test]
fn backup_dir_killed_anywhere_leaves_verifiable_snapshots_and_runs_again() {
    let mut r = rng("backup-dir");
    let s = Store::new();
    make_data(&s.path("src"), 400, 64 << 10, 1);
    let args = ["backup-dir", "from=src", "lock_ttl=1m"];
    let full = timed(&s, &args);
    for i in 0..kills() {
        next_second();
        kill_after(&s, &args, draw(&mut r, full));
        s.all_verify("dirs/src");
        next_second();
        // The killed run's lease names a dead pid on this host: taken over at once, not after 1m.
        let t = Instant::now();
        s.ok(&args);
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "kill {i}: the rerun waited {:?}",
            t.elapsed()
        );
        // Keep the store small (verify reads every listed snapshot after each kill).
        s.ok(&["prune", "prefix=dirs/src", "keep_last=2", "grace=0s"]);
    }
    s.all_verify("dirs/src");
    s.ok(&["prune", "prefix=dirs/src", "keep_last=1000", "grace=0s"]);
    assert_eq!(s.leftovers(), Vec::<PathBuf>::new(), "prune left leftovers");
    eprintln!("backup-dir: {} kills survived", kills());
}

#[test]
fn prune_killed_anywhere_keeps_every_listed_snapshot_whole() {
    let mut r = rng("prune");
    let s = Store::new();
    make_data(&s.path("src"), 40, 16 << 10, 4);
    // Full copies: prune here decides by retention alone (incremental chains keep what they reference).
    let backup = ["backup-dir", "from=src", "full=true"];
    for _ in 0..3 {
        next_second();
        s.ok(&backup);
    }
    let prune = ["prune", "prefix=dirs/src", "keep_last=2", "grace=0s"];
    let full = timed(&s, &prune);
    for i in 0..kills() {
        for _ in 0..2 {
            next_second();
            s.ok(&backup);
        }
        kill_after(&s, &prune, draw(&mut r, full));
        s.all_verify("dirs/src");
        s.ok(&prune);
        s.all_verify("dirs/src");
        let listed = snapshots(&s, "dirs/src");
        assert_eq!(listed, 2, "kill {i}: keep_last=2 kept {listed}");
        assert_eq!(
            s.leftovers(),
            Vec::<PathBuf>::new(),
            "kill {i}: leftovers after the rerun"
        );
    }
    eprintln!("prune: {} kills survived", kills());
}

fn snapshots(s: &Store, prefix: &str) -> usize {
    let out = s.ok(&["snapshots", &format!("prefix={prefix}"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["snapshots"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn druid_backup_killed_anywhere_leaves_verifiable_snapshots_and_runs_again() {
    let mut r = rng("druid-backup");
    let pg = common::pg::Pg::start();
    let s = Store::new();
    let deep = s.path("deep");
    common::pg::druid_fixture(&pg, "druid", &deep, "/opt/shared", 40);
    let deep_arg = format!("deep_storage={}", deep.display());
    let args = ["druid-backup", &deep_arg, "lock_ttl=1m"];
    let mut env = pg.env();
    env.push(("PGDATABASE".into(), "druid".into()));
    let run = |spawn: bool, args: &[&str]| {
        let mut c = s.cmd(args);
        c.envs(env.iter().cloned());
        if spawn {
            Err(c
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap())
        } else {
            Ok(c.output().unwrap())
        }
    };
    let t = Instant::now();
    let out = run(false, &args).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let full = t.elapsed();
    for i in 0..kills() {
        next_second();
        let mut child = run(true, &args).unwrap_err();
        std::thread::sleep(draw(&mut r, full));
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        child.wait().unwrap();
        s.all_verify("druid");
        next_second();
        let out = run(false, &args).unwrap();
        assert!(out.status.success(), "kill {i}: rerun: {}", text(&out));
        s.ok(&["prune", "prefix=druid", "keep_last=2", "grace=0s"]);
    }
    s.ok(&["prune", "prefix=druid", "keep_last=1000", "grace=0s"]);
    assert_eq!(s.leftovers(), Vec::<PathBuf>::new(), "prune left leftovers");
    eprintln!("druid-backup: {} kills survived", kills());
}
