//! Manifests that cannot be read or lie about themselves, and deletes that stay in their snapshot's own
//! directory: `snapshots`, `verify`, `restore-dir` and `prune` through the real binary and the local store.

mod common;
use common::archive::*;
use common::process::text;

use std::path::Path;

/// The ids of the snapshots `snapshots --json` lists, with whether each is valid.
fn listed(store: &Path, cwd: &Path, prefix: &str) -> Vec<(String, bool)> {
    let r = ok(&run_in(
        store,
        cwd,
        &["snapshots", &format!("prefix={prefix}")],
    ));
    r["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["invalid"] != serde_json::json!(true),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A user copies a snapshot's directory to another prefix: the copy is a snapshot of its own. Pruning
/// the copy deletes the copy's files, never the original's (its manifest still names the original's
/// keys), and restoring the copy reads the copy.
#[test]
fn a_copied_snapshot_directory_is_pruned_and_restored_as_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    // Full copies: this is about a copied directory, not about incremental chains.
    let first = ok(&run_in(
        &store,
        tmp.path(),
        &["backup-dir", "from=data", "full=true"],
    ));
    std::fs::write(src.join("second"), "2").unwrap();
    let second = ok(&run_in(
        &store,
        tmp.path(),
        &["backup-dir", "from=data", "full=true"],
    ));
    let (x, y) = (
        first["snapshot"].as_str().unwrap(),
        second["snapshot"].as_str().unwrap(),
    );
    for day in [&x[..8], &y[..8]] {
        copy_dir(
            &store.join("dirs/data").join(day),
            &store.join("dirs/copy").join(day),
        );
    }
    let original = hashed(&store.join("dirs/data"));
    assert_eq!(
        listed(&store, tmp.path(), "dirs/copy"),
        [(x.to_string(), true), (y.to_string(), true)]
    );
    let r = ok(&run_in(
        &store,
        tmp.path(),
        &["snapshots", "prefix=dirs/copy"],
    ));
    assert_eq!(r["snapshots"][0]["moved_from"], "dirs/data", "{r}");

    let out = run_in(
        &store,
        tmp.path(),
        &["prune", "prefix=dirs/copy", "keep_last=1"],
    );
    let r = ok(&out);
    assert_eq!(r["removed"], 1, "{}", text(&out));
    let mut now = hashed(&store.join("dirs/data"));
    now.remove(Path::new("locks"));
    let mut was = original.clone();
    was.remove(Path::new("locks"));
    assert_eq!(now, was, "the original lost nothing");
    ok(&run_in(
        &store,
        tmp.path(),
        &["verify", "prefix=dirs/data", "snapshot=all"],
    ));
    let copy_x = store
        .join("dirs/copy")
        .join(&x[..8])
        .join(format!("data_{}.tar.zst", &x[9..]));
    assert!(!copy_x.exists(), "the copy's own object was pruned");

    // With the original gone, the copy still restores: it is read where it lies.
    std::fs::remove_dir_all(store.join("dirs/data")).unwrap();
    ok(&run_in(
        &store,
        tmp.path(),
        &["verify", "prefix=dirs/copy", "snapshot=all"],
    ));
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/copy", "to=restored"],
    ));
    assert_eq!(
        snapshot_tree(&src),
        snapshot_tree(&tmp.path().join("restored"))
    );
}

/// A manifest that names keys outside its own `<prefix>/<YYYYMMDD>/` (another prefix, `..`, another
/// snapshot of the same prefix) is reported as invalid by prune, and nothing of it is deleted; the
/// victims keep their objects. `prune --json` prints only the JSON result on stdout.
#[test]
fn prune_deletes_nothing_that_a_manifest_names_outside_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    write_snapshot(
        &store,
        "dirs/victim",
        "20240101-120000",
        &[("data", "tar", b"victim")],
        |_| {},
    );
    std::fs::write(tmp.path().join("outside"), "keep").unwrap();
    // The newest snapshot of dirs/h, valid: prune keeps it; its object is a victim too.
    write_snapshot(
        &store,
        "dirs/h",
        "20240301-120000",
        &[("data", "tar", b"newest")],
        |_| {},
    );
    let bad = [
        "dirs/victim/20240101/data_120000.tar",
        "dirs/h/20240301/data_120000.tar",
        "dirs/h/20240101/../../victim/20240101/data_120000.tar",
        "../../outside",
    ];
    for (i, key) in bad.iter().enumerate() {
        let id = format!("2024020{}-120000", i + 1);
        write_snapshot(&store, "dirs/h", &id, &[("data", "tar", b"old")], |m| {
            m["objects"][0]["key"] = serde_json::json!(key);
        });
    }
    let before = hashed(&store);
    let out = run_in(
        &store,
        tmp.path(),
        &["prune", "prefix=dirs/h", "keep_last=1", "grace=0s"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not only JSON ({e}): {}", text(&out)));
    assert_eq!(r["invalid"], bad.len(), "{r}");
    assert_eq!(r["removed"], 0, "{r}");
    assert_eq!(r["deleted_keys"], 0, "{r}");
    let why = r["invalid_snapshots"].to_string();
    assert!(why.contains("20240201-120000"), "{why}");
    assert!(
        why.contains("dirs/victim/20240101/data_120000.tar"),
        "{why}"
    );
    let mut after = hashed(&store);
    after.retain(|p, _| !p.to_string_lossy().contains("locks"));
    let mut was = before.clone();
    was.retain(|p, _| !p.to_string_lossy().contains("locks"));
    assert_eq!(after, was, "nothing was deleted");
    assert_eq!(std::fs::read(tmp.path().join("outside")).unwrap(), b"keep");

    // Without --json the plan names them too.
    let out = rewind()
        .current_dir(tmp.path())
        .env("REWIND_STORE", &store)
        .args([
            "run",
            "prune",
            "prefix=dirs/h",
            "keep_last=1",
            "dry_run=true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("invalid      20240201-120000"),
        "{}",
        text(&out)
    );
}

/// Writes, as the newest snapshot of dirs/data, a copy of snapshot `good`'s archive with a manifest that
/// `edit` spoils (`body` replaces the manifest's text when given).
fn spoil(store: &Path, good: &str, body: Option<&[u8]>, edit: impl FnOnce(&mut serde_json::Value)) {
    let archive = std::fs::read(
        store
            .join("dirs/data")
            .join(&good[..8])
            .join(format!("data_{}.tar.zst", &good[9..])),
    )
    .unwrap();
    let path = write_snapshot(
        store,
        "dirs/data",
        "20991231-235959",
        &[("data", "tar.zst", &archive)],
        edit,
    );
    if let Some(b) = body {
        std::fs::write(path, b).unwrap();
    }
}

/// The newest manifest is not JSON, not a rewind manifest, or names an id that is not its own (one that
/// would put restore-dir's temporary directory elsewhere): `snapshots` shows it as invalid, `verify`
/// fails naming it, a restore of the newest stops and names it (an explicit valid `snapshot=` works),
/// and prune keeps it and reports it.
#[test]
fn an_invalid_newest_manifest_is_shown_fails_verify_and_stops_a_restore() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Option<&[u8]>, Edit, &str)> = vec![
        (
            "not JSON",
            Some(b"{\"format\": \"rewind.snapshot/1\", "),
            Box::new(|_| {}),
            "not JSON",
        ),
        (
            "not a manifest",
            Some(b"[1, 2]"),
            Box::new(|_| {}),
            "not a rewind manifest",
        ),
        (
            "other format",
            None,
            Box::new(|m| m["format"] = "tarball/9".into()),
            "format 'tarball/9'",
        ),
        (
            "id with a path",
            None,
            Box::new(|m| m["id"] = "x/../../../outside/pwn".into()),
            "its id 'x/../../../outside/pwn' is not 20991231-235959",
        ),
        (
            "no objects",
            None,
            Box::new(|m| m["objects"] = "none".into()),
            "objects",
        ),
    ];
    for (name, body, edit, why) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let work = tmp.path().join("work");
        make_tree(&tmp.path().join("data"));
        let good = ok(&run_in(&store, tmp.path(), &["backup-dir", "from=data"]))["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::create_dir_all(&work).unwrap();
        spoil(&store, &good, body, edit);
        let key = "dirs/data/20991231/manifest_235959.json";

        let out = run_in(&store, tmp.path(), &["snapshots", "prefix=dirs/data"]);
        let r = ok(&out);
        let rows = r["snapshots"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{name}: {r}");
        assert_eq!(rows[1]["id"], "20991231-235959", "{name}: {r}");
        assert_eq!(rows[1]["invalid"], true, "{name}: {r}");
        assert!(
            rows[1]["error"].as_str().unwrap().contains(why),
            "{name}: {r}"
        );
        let human = rewind()
            .current_dir(tmp.path())
            .env("REWIND_STORE", &store)
            .args(["run", "snapshots", "prefix=dirs/data"])
            .output()
            .unwrap();
        assert!(
            text(&human).contains("invalid manifest"),
            "{name}: {}",
            text(&human)
        );

        for args in [
            &["verify", "prefix=dirs/data", "snapshot=all"][..],
            &["verify", "prefix=dirs/data"],
            &["restore-dir", "prefix=dirs/data", "to=work/restored"],
            &[
                "restore-dir",
                "prefix=dirs/data",
                "to=work/restored",
                "snapshot=20991231-235959",
            ],
        ] {
            let out = run_in(&store, tmp.path(), args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name}: {args:?}: {}",
                text(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains(key) && err.contains(why),
                "{name}: {args:?}: {err}"
            );
        }
        assert!(listing(&work).is_empty(), "{name}: nothing restored");
        assert!(!tmp.path().join("outside").exists(), "{name}");

        let good_arg = format!("snapshot={good}");
        ok(&run_in(
            &store,
            tmp.path(),
            &[
                "restore-dir",
                "prefix=dirs/data",
                "to=work/restored",
                &good_arg,
            ],
        ));
        ok(&run_in(
            &store,
            tmp.path(),
            &["verify", "prefix=dirs/data", &good_arg],
        ));

        let before = hashed(&store);
        let out = run_in(
            &store,
            tmp.path(),
            &["prune", "prefix=dirs/data", "keep_last=1"],
        );
        let r = ok(&out);
        assert_eq!(r["invalid"], 1, "{name}: {r}");
        assert_eq!(r["kept"], 1, "{name}: {r}");
        let mut after = hashed(&store);
        after.retain(|p, _| !p.to_string_lossy().contains("locks"));
        let mut was = before;
        was.retain(|p, _| !p.to_string_lossy().contains("locks"));
        assert_eq!(after, was, "{name}: prune deleted nothing");
    }
}
