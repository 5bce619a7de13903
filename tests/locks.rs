//! Leases on the local store, with the real binary: two backups of one prefix started together (exactly
//! one runs), renewal, a lease taken over while its holder was paused (the holder stops before its
//! manifest), a dead holder on this host, `unlock`, and the leftovers of a killed backup. The same on an
//! S3 server is in tests/lease_s3.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::lease::*;
use common::process::text;

fn store_env(store: &Path) -> Vec<(&'static str, String)> {
    vec![("REWIND_STORE", store.display().to_string())]
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "rewind failed: {}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// Every file under `dir` (relative paths), temp files included.
fn files_under(dir: &Path) -> Vec<String> {
    common::process::files(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Text that zstd compresses slowly at level 19 (a backup of it takes a few seconds).
fn slow_data(dir: &Path) {
    let mut x: u64 = 0x9E37_79B9;
    let words = [
        "lease", "store", "backup", "prune", "rewind", "manifest", "object", "token",
    ];
    let mut s = String::with_capacity(6 << 20);
    while s.len() < 6 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(words[(x % 8) as usize]);
        s.push_str(&format!(" {} ", x % 100_000));
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("words.txt"), s).unwrap();
}

/// Waits until a backup's object is being written under `prefix` (a temp file in a day directory).
fn wait_for_upload(store: &Path, prefix: &str, child: &mut std::process::Child) -> PathBuf {
    wait_for_temp(store, prefix, child, 0)
}

/// Waits until a temp file of at least `min_len` bytes is under `prefix` (not a lease's).
fn wait_for_temp(
    store: &Path,
    prefix: &str,
    child: &mut std::process::Child,
    min_len: u64,
) -> PathBuf {
    let t = Instant::now();
    loop {
        let found = common::process::files(&store.join(prefix))
            .into_iter()
            .find(|p| {
                let s = p.display().to_string();
                !s.contains("/locks/")
                    && p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".rewind-tmp-")
                    && std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) >= min_len
            });
        if let Some(p) = found {
            return p;
        }
        if let Ok(Some(_)) = child.try_wait() {
            panic!("the backup ended before it started writing");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the backup never started writing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(pid: u32, sig: i32) {
    unsafe { libc::kill(pid as i32, sig) };
}

fn wait_timeout(child: std::process::Child, secs: u64) -> Output {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let t = Instant::now();
        while !d2.load(std::sync::atomic::Ordering::SeqCst) {
            if t.elapsed() > Duration::from_secs(secs) {
                signal(pid, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    out
}

/// 50 trials: two backups of one prefix started together. Exactly one runs; the other fails (exit 1)
/// naming the holder and leaves nothing (no object, no lease).
#[test]
fn contention_on_the_local_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    random_file(&tmp.path().join("data/blob.bin"), 16 << 20, 7);
    std::fs::write(tmp.path().join("data/small.txt"), "small\n").unwrap();
    let env = store_env(&store);
    let failures = contend("local store", 50, |i| {
        let prefix = format!("trial/{i}");
        let args = vec![
            "backup-dir".to_string(),
            "from=data".into(),
            format!("prefix={prefix}"),
            "compression=none".into(),
        ];
        let runs = start_two(tmp.path(), &env, &args);
        let left = files_under(&store.join(&prefix));
        let trial = judge(&runs, &prefix);
        // The winner's object and manifest, nothing else (no lease, no temp file, nothing of the loser).
        if matches!(trial, Trial::Won(_))
            && (left.len() != 2
                || !left.iter().any(|f| f.contains("/manifest_"))
                || !left.iter().any(|f| f.contains("/data_")))
        {
            return Trial::Failed(format!("the store holds {left:?}"));
        }
        trial
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A job longer than its lease keeps it: renewed, so a backup started after the first lease would have
/// expired is still refused, and the lease is gone once the job ends.
#[test]
fn a_long_job_keeps_its_lease_by_renewing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let env = store_env(&store);
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/a.txt"), "a").unwrap();
    let (holder, _) = spawn_holder(tmp.path(), &env, &[], "dirs/data", "3s", 8);
    let first = local_lease(&store, "dirs/data").expect("lease");
    std::thread::sleep(Duration::from_secs(5));
    let out = run(
        tmp.path(),
        &env,
        &["backup-dir", "from=data", "lock_ttl=3s"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let expect = format!(
        "dirs/data is locked by backup-dir on {} (pid {})",
        host(),
        holder.id()
    );
    assert!(err.contains(&expect), "expected '{expect}' in {err}");
    let lease = local_lease(&store, "dirs/data").expect("lease");
    assert_eq!(lease["token"], first["token"], "same holder");
    assert!(
        lease["expires"].as_f64().unwrap() > now(),
        "renewed: {lease}"
    );
    assert!(lease["expires"].as_f64().unwrap() > first["expires"].as_f64().unwrap());
    let out = wait_timeout(holder, 30);
    assert!(out.status.success(), "{}", text(&out));
    assert!(local_lease(&store, "dirs/data").is_none(), "released");
}

/// A backup whose lease expired while it was paused and was taken over by another job stops before it
/// commits its manifest, saying the lease was lost and to whom; the new holder's lease stays.
#[test]
fn a_lease_taken_over_aborts_the_holder_before_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let env = store_env(&store);
    slow_data(&tmp.path().join("data"));
    let mut backup = rewind_with(tmp.path(), &env)
        .args(["run", "backup-dir", "from=data", "level=19", "lock_ttl=3s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_upload(&store, "dirs/data", &mut backup);
    signal(backup.id(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4));
    // The lease expired: another job takes it over (the paused holder's pid is alive, so only expiry lets it).
    let (mut taker, _) = spawn_holder(tmp.path(), &env, &["owner=taker"], "dirs/data", "1m", 60);
    signal(backup.id(), libc::SIGCONT);
    let out = wait_timeout(backup, 60);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let expect = format!("taker on {} (pid {})", host(), taker.id());
    assert!(
        err.contains("lost the lease on dirs/data") && err.contains(&expect),
        "expected the lost lease and '{expect}' in: {err}"
    );
    let left = files_under(&store.join("dirs/data"));
    assert!(
        !left.iter().any(|f| f.contains("manifest_")),
        "no manifest was committed: {left:?}"
    );
    let lease = local_lease(&store, "dirs/data").expect("the taker's lease stays");
    assert_eq!(lease["owner"], "taker");
    assert_eq!(lease["pid"], taker.id());
    signal(taker.id(), libc::SIGINT);
    let _ = taker.wait();
}

/// A holder on this host whose process is gone (kill -9) is taken over at once, not after its lease.
#[test]
fn a_dead_holder_on_this_host_is_taken_over_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let env = store_env(&store);
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/a.txt"), "a").unwrap();
    let (mut holder, _) = spawn_holder(tmp.path(), &env, &[], "dirs/data", "2m", 120);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let dead = local_lease(&store, "dirs/data").expect("the dead holder's lease");
    assert_eq!(dead["pid"], holder.id());
    let t = Instant::now();
    let r = json(&run(tmp.path(), &env, &["backup-dir", "from=data"]));
    assert!(r["snapshot"].is_string(), "{r}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(local_lease(&store, "dirs/data").is_none(), "released");
}

/// `unlock` shows the holder and keeps the lease; with force=true it removes it, and the holder, having
/// lost its lease, stops.
#[test]
fn unlock_shows_the_holder_and_removes_only_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let env = store_env(&store);
    // Nothing held.
    let r = json(&run(tmp.path(), &env, &["unlock", "prefix=dirs/data"]));
    assert_eq!(r["held"], false, "{r}");
    // Bad input.
    let out = run(tmp.path(), &env, &["unlock"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prefix"),
        "{}",
        text(&out)
    );

    let (holder, _) = spawn_holder(tmp.path(), &env, &[], "dirs/data", "3s", 60);
    let out = run(tmp.path(), &env, &["unlock", "prefix=dirs/data"]);
    let r = json(&out);
    assert_eq!(r["held"], true, "{r}");
    assert_eq!(r["removed"], false, "{r}");
    assert_eq!(r["holder"]["owner"], "backup-dir", "{r}");
    assert_eq!(r["holder"]["pid"], holder.id(), "{r}");
    assert_eq!(r["holder"]["host"], host().as_str(), "{r}");
    assert!(
        text(&out).contains("force=true"),
        "says how to remove it: {}",
        text(&out)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        local_lease(&store, "dirs/data").is_some(),
        "kept without force"
    );

    let r = json(&run(
        tmp.path(),
        &env,
        &["unlock", "prefix=dirs/data", "force=true"],
    ));
    assert_eq!(r["removed"], true, "{r}");
    assert_eq!(r["holder"]["pid"], holder.id(), "{r}");
    let out = wait_timeout(holder, 30);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lost the lease on dirs/data") && err.contains("removed"),
        "{err}"
    );
    assert!(
        local_lease(&store, "dirs/data").is_none(),
        "the holder did not write it back"
    );
}

/// A backup killed while writing leaves a temp file (invisible to listings) and its lease: the next
/// backup takes the lease over at once, and prune removes the temp file once it is older than `grace`.
#[test]
fn prune_removes_the_temp_leftovers_of_a_killed_backup_after_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let env = store_env(&store);
    slow_data(&tmp.path().join("data"));
    common::lease::random_file(
        &tmp.path().join("data/noise.bin"),
        2 << 20,
        0x2545_f491_4f6c_dd1d,
    );
    let mut backup = rewind_with(tmp.path(), &env)
        .args(["run", "backup-dir", "from=data", "level=19"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a temporary file holds data (the archive's: the index is written at the end): the
    // local store writes a file in 1 MiB pieces, which the incompressible file archived first (2 MiB)
    // fills at once; the words behind it keep level 19 busy for seconds.
    let leftover = wait_for_temp(&store, "dirs/data", &mut backup, 1);
    backup.kill().unwrap();
    backup.wait().unwrap();
    assert!(leftover.exists());
    json(&run(
        tmp.path(),
        &env,
        &["backup-dir", "from=data", "compression=none"],
    ));

    let prune = |extra: &[&str]| {
        let mut args = vec!["prune", "prefix=dirs/data", "keep_last=5"];
        args.extend_from_slice(extra);
        let out = run(tmp.path(), &env, &args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{}", text(&out));
        // The result is the JSON after the plan's lines.
        let json = &stdout[stdout.find("\n{").map(|i| i + 1).unwrap_or(0)..];
        serde_json::from_str::<serde_json::Value>(json).unwrap_or_else(|_| panic!("{stdout}"))
    };
    let r = prune(&["grace=1h"]);
    assert_eq!(r["leftovers_removed"], 0, "younger than grace: {r}");
    assert!(leftover.exists());
    // Two hours old now: every temp file of the killed backup (its archive's and its index's).
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    let temps: Vec<_> = files_under(&store.join("dirs/data"))
        .into_iter()
        .filter(|f| f.contains(".rewind-tmp-"))
        .collect();
    assert!(!temps.is_empty() && temps.len() <= 2, "{temps:?}");
    for t in &temps {
        std::fs::File::options()
            .write(true)
            .open(store.join("dirs/data").join(t))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let r = prune(&["grace=1h", "dry_run=true"]);
    assert_eq!(
        r["leftovers_removed"],
        temps.len(),
        "dry run counts them: {r}"
    );
    assert!(leftover.exists(), "a dry run removes nothing");
    let r = prune(&["grace=1h"]);
    assert_eq!(r["leftovers_removed"], temps.len(), "{r}");
    assert!(r["leftover_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(!leftover.exists(), "removed");
    let left = files_under(&store.join("dirs/data"));
    assert_eq!(left.len(), 2, "the complete snapshot stays: {left:?}");
}

/// After every rename or link that commits a key, the local store syncs the key's directory (so a crash
/// cannot lose a committed manifest or lease). Checked with strace on a real backup.
#[test]
fn the_local_store_syncs_the_directory_after_each_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/a.txt"), "a").unwrap();
    let trace = tmp.path().join("trace.txt");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2,link,linkat",
            "-o",
        ])
        .arg(&trace)
        .arg(common::process::BIN)
        .args(["run", "backup-dir", "from=data"])
        .current_dir(tmp.path())
        .env("REWIND_STORE", &store)
        .output()
        .expect("strace (tests/run.sh installs it)");
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let store_s = store.display().to_string();
    let mut commits = 0;
    for (i, l) in lines.iter().enumerate() {
        let is_commit = (l.contains("rename") || l.contains("link"))
            && l.contains(&store_s)
            && l.contains("= 0");
        if !is_commit {
            continue;
        }
        // The destination is the last quoted path of the call.
        let dest = l.rsplit('"').nth(1).unwrap_or("");
        let dir = Path::new(dest).parent().unwrap().display().to_string();
        commits += 1;
        let synced = lines[i + 1..]
            .iter()
            .any(|m| m.contains("fsync(") && m.contains(&format!("<{dir}>")));
        assert!(synced, "no fsync of {dir} after: {l}\n{}", lines.join("\n"));
    }
    // The object, the manifest, the lease.
    assert!(commits >= 3, "{}", lines.join("\n"));
}

/// Every bundled procedure that takes a prefix's lock declares `lock_ttl` and passes it on (none
/// hard-codes its lease length).
#[test]
fn every_procedure_that_takes_a_lock_takes_lock_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::process::rewind()
        .args(["stdlib", "export"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut checked = 0;
    for entry in std::fs::read_dir(tmp.path().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        if !src.contains("lock.with_target(") && !src.contains("lock.target(") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        checked += 1;
        let help = common::process::rewind()
            .args(["help", &name])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("lock_ttl"),
            "{name} declares no lock_ttl:\n{help}"
        );
        assert!(
            src.contains("p.lock_ttl"),
            "{name} does not pass lock_ttl on"
        );
        assert!(
            !src.contains("ttl = \"2m\""),
            "{name} hard-codes its lease length"
        );
    }
    assert!(checked >= 7, "only {checked} procedures take a lock");
    // Too short a lease is bad input: exit 2, nothing written.
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let store = tmp.path().join("store");
    let out = run(
        tmp.path(),
        &store_env(&store),
        &["backup-dir", "from=data", "lock_ttl=1s"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("lock_ttl"), "{}", text(&out));
    assert!(files_under(&store).is_empty(), "{:?}", files_under(&store));
}
