//! backup-dir / restore-dir / snapshots / verify end to end with the real binary and the local store.

mod common;
use common::archive::*;

use std::path::Path;
use std::process::Output;

fn run(store: &Path, cwd: &Path, args: &[&str]) -> Output {
    rewind()
        .current_dir(cwd)
        .env("REWIND_STORE", store)
        .arg("run")
        .arg("--json")
        .args(args)
        .output()
        .unwrap()
}

fn find_object(store: &Path, ext: &str) -> std::path::PathBuf {
    listing(store)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(ext))
        .expect("object in store")
}

#[test]
fn round_trip_and_incomplete_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let r = ok(&run(
        &store,
        tmp.path(),
        &["backup-dir", "from=data", "tags=env=test"],
    ));
    assert_eq!(r["files"], 6, "{r}");
    assert_eq!(r["prefix"], "dirs/data");
    let id = r["snapshot"].as_str().unwrap().to_string();
    let key = r["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("dirs/data/{}/data_{}.tar.zst", &id[..8], &id[9..])),
        "{key}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join(format!("dirs/data/{}/manifest_{}.json", &id[..8], &id[9..])))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["format"], "rewind.snapshot/1");
    assert_eq!(manifest["procedure"], "backup-dir");
    assert_eq!(manifest["tags"]["env"], "test");
    assert_eq!(
        manifest["objects"][0]["size"].as_u64().unwrap(),
        std::fs::metadata(store.join(key)).unwrap().len()
    );
    assert!(
        !store.join("dirs/data/locks/target.json").exists() && store.join("dirs/data").is_dir(),
        "lock released"
    );

    let dest = tmp.path().join("restored");
    let r = ok(&run(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=restored"],
    ));
    assert_eq!(r["snapshot"], id.as_str());
    assert_eq!(snapshot_tree(&src), snapshot_tree(&dest));

    // A non-empty target is refused (usage error) and left alone.
    let out = run(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=restored"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let r = ok(&run(
        &store,
        tmp.path(),
        &[
            "restore-dir",
            "prefix=dirs/data",
            "to=restored",
            "overwrite=true",
        ],
    ));
    assert_eq!(r["files"], 6);
    assert_eq!(snapshot_contents(&src), snapshot_contents(&dest));

    // A group of objects without a manifest: flagged by snapshots, refused by restore, not "newest".
    let inc = store.join("dirs/data/20991231/data_235959.tar.zst");
    std::fs::create_dir_all(inc.parent().unwrap()).unwrap();
    std::fs::write(&inc, b"partial").unwrap();
    let r = ok(&run(&store, tmp.path(), &["snapshots", "prefix=dirs/data"]));
    let snaps = r["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2, "{r}");
    assert_eq!(snaps[0]["complete"], true);
    assert_eq!(snaps[1]["id"], "20991231-235959");
    assert_eq!(snaps[1]["complete"], false);
    // snapshot=ID: that snapshot's manifest (what the admin page shows).
    let id = snaps[0]["id"].as_str().unwrap().to_string();
    let one = ok(&run(
        &store,
        tmp.path(),
        &["snapshots", "prefix=dirs/data", &format!("snapshot={id}")],
    ));
    assert_eq!(one["manifest"]["id"], id.as_str(), "{one}");
    assert_eq!(one["manifest"]["procedure"], "backup-dir", "{one}");
    assert_eq!(
        one["manifest"]["objects"].as_array().unwrap().len(),
        snaps[0]["objects"].as_u64().unwrap() as usize
    );
    let out = run(
        &store,
        tmp.path(),
        &["snapshots", "prefix=dirs/data", "snapshot=20991231-235959"],
    );
    assert!(
        !out.status.success(),
        "an incomplete snapshot has no manifest to show"
    );
    let out = run(
        &store,
        tmp.path(),
        &[
            "restore-dir",
            "prefix=dirs/data",
            "to=r2",
            "snapshot=20991231-235959",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("incomplete"), "{}", stderr(&out));
    assert!(!tmp.path().join("r2").exists());
    let r = ok(&run(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=r3"],
    ));
    assert_eq!(
        r["snapshot"],
        id.as_str(),
        "default is the newest complete snapshot"
    );
    let r = ok(&run(
        &store,
        tmp.path(),
        &["verify", "prefix=dirs/data", "snapshot=all"],
    ));
    assert_eq!(r["verified"], 1);
    // Bad params exit 2.
    let out = run(&store, tmp.path(), &["backup-dir", "from=nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(
        &store,
        tmp.path(),
        &[
            "restore-dir",
            "prefix=dirs/data",
            "to=r4",
            "snapshot=latest",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn flipped_byte_is_caught_by_verify_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    ok(&run(
        &store,
        tmp.path(),
        &["backup-dir", "from=data", "compression=none"],
    ));
    let obj = find_object(&store, ".tar");
    let mut bytes = std::fs::read(&obj).unwrap();
    // Inside bin.dat's content, so tar parsing still succeeds and only the hash can tell.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&obj, &bytes).unwrap();

    let out = run(&store, tmp.path(), &["verify", "prefix=dirs/data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is corrupt: sha256"),
        "{}",
        stderr(&out)
    );

    let out = run(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=restored"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
    assert!(stderr(&out).contains("was not changed"), "{}", stderr(&out));
    assert!(!tmp.path().join("restored").exists(), "no partial target");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rewind-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// One lock per snapshot prefix: while a job holds it, a backup, a restore and a prune of that prefix
/// are each refused with the holder's name, and none of them writes or deletes anything.
#[test]
fn concurrent_backup_is_refused_and_lock_released_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    make_tree(&tmp.path().join("data"));
    ok(&run(&store, tmp.path(), &["backup-dir", "from=data"]));
    // What the store holds, leaving out the lock's own key.
    let contents = || {
        let mut v = listing(&store);
        v.retain(|p| !p.to_string_lossy().contains("/locks"));
        v.sort();
        v
    };
    let before = contents();
    // A running job on the same prefix: holds the lock every bundled procedure takes.
    let holder = tmp.path().join("holder.lua");
    std::fs::write(
        &holder,
        "return { description = 'holds the lock', params = {}, run = function()
            local s = require('rewind.store').open()
            require('rewind.lock').target(s, 'dirs/data', {owner = 'backup-dir', ttl = '1m'})
            require('rewind.fs').write('held', 'yes')
            require('rewind.task').sleep(60)
          end }",
    )
    .unwrap();
    let mut child = rewind()
        .current_dir(tmp.path())
        .env("REWIND_STORE", &store)
        .arg("run")
        .arg(&holder)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !tmp.path().join("held").exists() {
        assert!(start.elapsed().as_secs() < 30, "holder never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let lock = store.join("dirs/data/locks/target.json");
    assert!(lock.exists());
    let expect = format!(
        "dirs/data is locked by backup-dir on {} (pid {}) since ",
        hostname::get().unwrap().to_string_lossy(),
        child.id()
    );
    for args in [
        &["backup-dir", "from=data"][..],
        &["restore-dir", "prefix=dirs/data", "to=restored"],
        &["prune", "prefix=dirs/data", "keep_last=1", "grace=0s"],
    ] {
        let out = run(&store, tmp.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&expect),
            "{args:?}: expected '{expect}' in: {err}"
        );
    }
    assert_eq!(
        contents(),
        before,
        "refused jobs wrote or deleted nothing in the store"
    );
    assert!(
        !tmp.path().join("restored").exists(),
        "refused restore created no target"
    );

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!lock.exists(), "lock released after Ctrl-C");
    ok(&run(&store, tmp.path(), &["backup-dir", "from=data"]));
}

/// The same procedures against a real S3-protocol server (moto): multipart upload of the archive,
/// conditional-create locks, verified streaming restore.
#[test]
fn round_trip_through_s3() {
    let server = common::s3::S3Server::start();
    server.create_bucket("backups");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    make_tree(&src);
    // A file bigger than one multipart part (8 MiB).
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let s3 = |args: &[&str]| {
        let mut c = rewind();
        c.current_dir(tmp.path())
            .arg("run")
            .arg("--json")
            .args(args);
        for (k, v) in server.env() {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let r = ok(&s3(&[
        "backup-dir",
        "from=data",
        "store=s3://backups/team",
        "compression=none",
    ]));
    assert_eq!(r["files"], 7, "{r}");
    let r = ok(&s3(&[
        "snapshots",
        "prefix=dirs/data",
        "store=s3://backups/team",
    ]));
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 1, "{r}");
    ok(&s3(&[
        "verify",
        "prefix=dirs/data",
        "store=s3://backups/team",
    ]));
    ok(&s3(&[
        "restore-dir",
        "prefix=dirs/data",
        "store=s3://backups/team",
        "to=restored",
    ]));
    assert_eq!(
        snapshot_tree(&src),
        snapshot_tree(&tmp.path().join("restored"))
    );
    assert_eq!(server.multipart_uploads("backups"), 0);
}
