//! Incremental, indexed backup-dir snapshots end to end with the real binary: a second backup stores only
//! what changed, restores compose the tree from every archive it reads (each file's sha256 checked),
//! `path=` restores one part reading only the bytes that hold it (counted in front of moto), ls/diff/find
//! read the indexes, prune keeps what kept snapshots reference, verify checks every file.

mod common;
use common::archive::*;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn backup(store: &Path, cwd: &Path, extra: &[&str]) -> Value {
    let args: Vec<&str> = ["backup-dir", "from=data"]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    ok(&run_in(store, cwd, &args))
}

fn manifest(store: &Path, id: &str) -> Value {
    let p = store.join(format!("dirs/data/{}/manifest_{}.json", &id[..8], &id[9..]));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The regular files inside a stored tar.zst (as `zstd -d | tar -t` sees it).
fn files_in_archive(path: &Path) -> BTreeSet<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -tvf -", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect()
}

/// Changes the tree made by `make_tree`: one file rewritten, one added, one removed, one only touched.
fn change_tree(src: &Path) {
    std::fs::write(src.join("a/one.log"), "a new log\n".repeat(500)).unwrap();
    std::fs::write(src.join("new.txt"), "new file\n").unwrap();
    std::fs::remove_file(src.join("a/secret")).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(src.join("top.txt"))
        .unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
        .unwrap();
}

#[test]
fn a_second_backup_stores_only_what_changed_and_every_snapshot_restores_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let first_tree = snapshot_tree(&src);
    let r1 = backup(&store, tmp.path(), &[]);
    assert_eq!(r1["chain"], 0, "{r1}");
    assert_eq!(r1["files_new"], 6, "{r1}");
    let id1 = r1["snapshot"].as_str().unwrap().to_string();

    change_tree(&src);
    let r2 = backup(&store, tmp.path(), &[]);
    let id2 = r2["snapshot"].as_str().unwrap().to_string();
    assert_eq!(r2["parent"], id1.as_str(), "{r2}");
    assert_eq!(r2["chain"], 1);
    // Rewritten, added and touched files are stored again; the other three are referenced.
    assert_eq!(
        (r2["files_new"].as_u64(), r2["files_unchanged"].as_u64()),
        (Some(3), Some(3)),
        "{r2}"
    );
    let archived = files_in_archive(&store.join(r2["key"].as_str().unwrap()));
    assert_eq!(
        archived,
        BTreeSet::from(["a/one.log".into(), "new.txt".into(), "top.txt".into()]),
        "the second archive holds only what changed"
    );
    let m2 = manifest(&store, &id2);
    assert_eq!(m2["parent"], id1.as_str());
    let refs: Vec<&str> = m2["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        vec![r1["key"].as_str().unwrap().trim_start_matches("dirs/data/")]
    );

    // Both snapshots restore whole and byte-exact.
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=latest"],
    ));
    assert_eq!(
        snapshot_tree(&tmp.path().join("latest")),
        snapshot_tree(&src)
    );
    let first = format!("snapshot={id1}");
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=first", &first],
    ));
    assert_eq!(snapshot_tree(&tmp.path().join("first")), first_tree);

    // Browsing reads the indexes.
    let ls = ok(&run_in(
        &store,
        tmp.path(),
        &["ls", "prefix=dirs/data", "path=a"],
    ));
    assert_eq!(
        (ls["files"].as_u64(), ls["snapshot"].as_str()),
        (Some(3), Some(id2.as_str())),
        "{ls}"
    );
    let diff = ok(&run_in(
        &store,
        tmp.path(),
        &["diff", "prefix=dirs/data", &format!("a={id1}")],
    ));
    assert_eq!(diff["added"], serde_json::json!(["new.txt"]), "{diff}");
    assert_eq!(diff["removed"], serde_json::json!(["a/secret"]), "{diff}");
    assert_eq!(
        diff["changed"],
        serde_json::json!([{"path": "a/one.log", "what": "content"}]),
        "{diff}"
    );
    let found = ok(&run_in(
        &store,
        tmp.path(),
        &["find", "prefix=dirs/data", "name=*.log"],
    ));
    assert_eq!(found["matches"], 2, "{found}");
    // A glob with a / matches the whole path from the root: b/*.dat does not find a/b/bin.dat.
    let found = ok(&run_in(
        &store,
        tmp.path(),
        &["find", "prefix=dirs/data", "name=b/*.dat"],
    ));
    assert_eq!(found["matches"], 0, "{found}");
    let found = ok(&run_in(
        &store,
        tmp.path(),
        &["find", "prefix=dirs/data", "name=a/b/*.dat"],
    ));
    assert_eq!(found["matches"], 2, "{found}");

    let v = ok(&run_in(
        &store,
        tmp.path(),
        &["verify", "prefix=dirs/data", "snapshot=all"],
    ));
    assert_eq!(v["verified"], 2, "{v}");

    // Nothing changed: the third archive holds no file at all.
    let r3 = backup(&store, tmp.path(), &[]);
    assert_eq!(
        (r3["files_new"].as_u64(), r3["chain"].as_u64()),
        (Some(0), Some(2)),
        "{r3}"
    );
    // full=true stores everything again and starts a new chain.
    let r4 = backup(&store, tmp.path(), &["full=true"]);
    assert_eq!(
        (r4["files_new"].as_u64(), r4["chain"].as_u64()),
        (Some(6), Some(0)),
        "{r4}"
    );
    assert!(r4["parent"].is_null(), "{r4}");
}

#[test]
fn max_chain_starts_a_full_copy_and_prune_keeps_what_kept_snapshots_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let ids: Vec<Value> = (0..3)
        .map(|i| {
            std::fs::write(src.join(format!("n{i}.txt")), format!("{i}\n")).unwrap();
            backup(&store, tmp.path(), &["max_chain=2"])
        })
        .collect();
    let chains: Vec<u64> = ids.iter().map(|r| r["chain"].as_u64().unwrap()).collect();
    assert_eq!(
        chains,
        vec![0, 1, 0],
        "max_chain=2: the third is a full copy"
    );

    // keep_last=2 keeps #2 and #3; #2 references #1's archive, so #1 stays too.
    let pr = ok(&run_in(
        &store,
        tmp.path(),
        &["prune", "prefix=dirs/data", "keep_last=2"],
    ));
    assert_eq!(
        (pr["removed"].as_u64(), pr["kept_for_references"].as_u64()),
        (Some(0), Some(1)),
        "{pr}"
    );
    // keep_last=1 keeps only the full #3: #1 and #2 go, and #3 still restores whole.
    let pr = ok(&run_in(
        &store,
        tmp.path(),
        &["prune", "prefix=dirs/data", "keep_last=1"],
    ));
    assert_eq!(pr["removed"], 2, "{pr}");
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out"],
    ));
    assert_eq!(snapshot_tree(&tmp.path().join("out")), snapshot_tree(&src));
}

#[test]
fn a_damaged_referenced_archive_fails_verify_and_restore_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let r1 = backup(&store, tmp.path(), &["compression=zstd", "level=1"]);
    std::fs::write(src.join("new.txt"), "new\n").unwrap();
    backup(&store, tmp.path(), &[]);
    // Flip one byte in the middle of the first archive: bin.dat's frame, read by the second snapshot too.
    let key = store.join(r1["key"].as_str().unwrap());
    let mut bytes = std::fs::read(&key).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&key, &bytes).unwrap();
    let out = run_in(&store, tmp.path(), &["verify", "prefix=dirs/data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("was not changed"), "{}", stderr(&out));
    assert!(!tmp.path().join("out").exists(), "nothing restored");
}

#[test]
fn a_path_restore_reads_only_the_bytes_that_hold_it() {
    use common::fault_proxy::FaultProxy;
    use common::path_restore::{forty_mib_tree, proxy_env, restore_one_file};
    let s3 = common::s3::S3Server::start();
    s3.create_bucket("inc");
    let proxy = FaultProxy::start(s3.port, 1);
    let tmp = tempfile::tempdir().unwrap();
    // 40 MiB in 400 files of 100 KiB of incompressible bytes, and one 10 KiB file to restore alone.
    let small = forty_mib_tree(&tmp.path().join("data"));
    let env = proxy_env(&s3, &proxy);
    let (read, stored, secs) =
        restore_one_file(tmp.path(), &proxy, &env, "s3://inc/backups", &small);
    eprintln!(
        "path restore: {read} of {stored} stored bytes read ({:.3}%), {secs:.2}s",
        read as f64 * 100.0 / stored as f64
    );
    // One frame (frames close at 1 MiB past a file boundary), not the 40 MiB archive: on the 1 GiB tree
    // of benches/incremental.sh that is under 0.1 % of the stored bytes.
    assert!(
        read > 0 && read < 1_250_000,
        "read {read} of {stored} archive bytes"
    );
    assert!(
        (read as u64) * 20 < stored,
        "read {read} of {stored} archive bytes"
    );
}

#[test]
fn snapshots_without_an_index_restore_whole_and_refuse_path_and_ls_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let r = backup(&store, tmp.path(), &["compression=gzip"]);
    assert!(
        r["chain"].is_null() && r["files_new"].is_null(),
        "gzip: a full copy without an index: {r}"
    );
    let r2 = backup(&store, tmp.path(), &["compression=gzip"]);
    assert!(r2["parent"].is_null(), "{r2}");
    for args in [
        vec!["restore-dir", "prefix=dirs/data", "to=out", "path=a"],
        vec!["ls", "prefix=dirs/data"],
    ] {
        let out = run_in(&store, tmp.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("has no index"), "{}", stderr(&out));
    }
    assert!(!tmp.path().join("out").exists());
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out"],
    ));
    assert_eq!(snapshot_tree(&tmp.path().join("out")), snapshot_tree(&src));
}
