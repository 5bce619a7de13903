//! Progress people can plan with, through the real binary: JSON events on stderr with `run --json` and
//! `--log-format json` (totals from the scan for backups, from the manifest or index for restores, a last
//! event with `done`), periodic lines without a terminal (REWIND_PROGRESS_EVERY), nothing with -q.

mod common;
use common::archive::{ok, stderr};
use common::process::{rewind, text};

use std::path::Path;
use std::process::Output;

use serde_json::Value;

/// A tree of known size: 160 incompressible files (~24 MiB) in nested directories, plus what is not a
/// regular file (a symlink, an empty directory). Returns (files, bytes), and those under `sub/`.
fn make_tree(root: &Path) -> ((u64, u64), (u64, u64)) {
    let (mut all, mut sub) = ((0, 0), (0, 0));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..160u64 {
        let dir = match i % 4 {
            0 => root.to_path_buf(),
            1 => root.join("a/b"),
            2 => root.join("sub"),
            _ => root.join("sub/deep"),
        };
        std::fs::create_dir_all(&dir).unwrap();
        let size = 1000 + (i * 7919) % 300_000;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i:03}")), data).unwrap();
        all = (all.0 + 1, all.1 + size);
        if i % 4 >= 2 {
            sub = (sub.0 + 1, sub.1 + size);
        }
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("a/b/f001", root.join("link")).unwrap();
    (all, sub)
}

fn run(dir: &Path, global: &[&str], args: &[&str], every: Option<&str>) -> Output {
    let mut c = rewind();
    c.current_dir(dir)
        .env("REWIND_STORE", dir.join("store"))
        .env_remove("REWIND_PROGRESS_EVERY")
        .args(global)
        .arg("run")
        .args(args);
    if let Some(e) = every {
        c.env("REWIND_PROGRESS_EVERY", e);
    }
    c.output().unwrap()
}

/// The JSON progress events on stderr, in order (other stderr lines are logs).
fn events(out: &Output) -> Vec<Value> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("{\"event\":\"progress\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn figures(e: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{k} in {e}"));
    (
        n("files_done"),
        n("files_total"),
        n("bytes_done"),
        n("bytes_total"),
    )
}

/// The last event says done, with every total reached; only the last one does; counts never go back.
fn check_final(evs: &[Value], label: &str, files: u64, bytes: u64) {
    let last = evs.last().expect("no progress events");
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(figures(last), (files, files, bytes, bytes), "{last}");
    assert_eq!(last["percent"].as_f64(), Some(100.0), "{last}");
    assert_eq!(last["eta_seconds"], 0, "{last}");
    assert_eq!(last["scanning"], false, "{last}");
    assert!(last.get("failed").is_none(), "{last}");
    let mut before = (0, 0);
    for e in evs {
        assert_eq!(e["label"], label, "{e}");
        assert!(e["elapsed_seconds"].as_f64().is_some(), "{e}");
        let done = (
            e["files_done"].as_u64().unwrap(),
            e["bytes_done"].as_u64().unwrap(),
        );
        assert!(
            done.0 >= before.0 && done.1 >= before.1,
            "counts went back: {e}"
        );
        before = done;
    }
    assert!(evs[..evs.len() - 1].iter().all(|e| e["done"] == false));
}

#[test]
fn a_backup_with_json_emits_events_whose_totals_are_the_trees_and_stdout_stays_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let ((files, bytes), _) = make_tree(&tmp.path().join("data"));
    let out = run(
        tmp.path(),
        &[],
        &["--json", "backup-dir", "from=data"],
        Some("5ms"),
    );
    // stdout is exactly the result, one JSON document.
    let result = ok(&out);
    assert_eq!(result["files"], files, "{}", text(&out));
    assert_eq!(result["bytes_in"], bytes);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"event\""));
    let evs = events(&out);
    check_final(&evs, "backup-dir", files, bytes);
    // The scan gave the whole tree's totals before the archive was done: the event made when it ended.
    let scanned: Vec<&Value> = evs
        .iter()
        .filter(|e| e["done"] == false && e["scanning"] == false)
        .collect();
    assert!(!scanned.is_empty(), "no event after the scan: {evs:?}");
    for e in &scanned {
        assert_eq!(
            (e["files_total"].as_u64(), e["bytes_total"].as_u64()),
            (Some(files), Some(bytes)),
            "{e}"
        );
    }
    assert!(
        scanned
            .iter()
            .any(|e| e["bytes_done"].as_u64() < Some(bytes)),
        "the totals were known only at the end: {evs:?}"
    );
    // While scanning, totals only grow up to the tree's.
    for e in evs.iter().filter(|e| e["scanning"] == true) {
        let (_, ft, _, bt) = figures(e);
        assert!(ft <= files && bt <= bytes, "{e}");
    }

    // A second backup after one file changed: the unchanged files count as done, the totals are the
    // tree's again.
    std::fs::write(tmp.path().join("data/sub/f002"), b"changed").unwrap();
    let bytes2 = bytes - (1000 + 2 * 7919) + 7;
    let out = run(
        tmp.path(),
        &[],
        &["--json", "backup-dir", "from=data"],
        Some("5ms"),
    );
    let result = ok(&out);
    assert_eq!(
        (
            result["files_new"].as_u64(),
            result["files_unchanged"].as_u64()
        ),
        (Some(1), Some(files - 1)),
        "{result}"
    );
    check_final(&events(&out), "backup-dir", files, bytes2);
}

#[test]
fn without_a_terminal_lines_come_every_period_and_json_logs_get_events() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("data"));
    let out = run(tmp.path(), &[], &["backup-dir", "from=data"], Some("5ms"));
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("progress: backup-dir: "))
        .collect();
    assert!(!lines.is_empty(), "no progress lines: {err}");
    // "3,412/10,000 files, 341 MiB/1.00 GiB (33%), 120 MiB/s[, eta 6s]" ("+" and "scanning" while scanning).
    let shape = |l: &str| {
        let figs = l.split("progress: backup-dir: ").nth(1).unwrap();
        let parts: Vec<&str> = figs.split(", ").collect();
        parts.len() >= 3
            && parts[0].ends_with(" files")
            && parts[0].contains('/')
            && parts[1].contains('/')
            && parts[1].contains("%")
            && parts[2].ends_with("/s")
    };
    // While the scan runs, a line may have no byte figures yet; once it ended, every line has them all.
    let scanned: Vec<&&str> = lines.iter().filter(|l| !l.contains("scanning")).collect();
    assert!(!scanned.is_empty(), "no line after the scan: {err}");
    for l in scanned {
        assert!(shape(l), "{l}");
    }
    assert!(
        lines.iter().any(|l| l.contains("eta ")),
        "no line with an ETA: {err}"
    );
    assert!(!err.contains("\"event\""), "{err}");

    // The default period is 10 s: a run this short makes no line.
    let out = run(tmp.path(), &[], &["backup-dir", "from=data"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stderr(&out).contains("progress: "), "{}", stderr(&out));

    // --log-format json: events, as with run --json.
    let out = run(
        tmp.path(),
        &["--log-format", "json"],
        &["backup-dir", "from=data", "full=true"],
        Some("5ms"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        events(&out).last().is_some_and(|e| e["done"] == true),
        "{}",
        text(&out)
    );
}

#[test]
fn a_restore_emits_events_whose_totals_are_the_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let ((files, bytes), (sub_files, sub_bytes)) = make_tree(&tmp.path().join("data"));
    let r = ok(&run(
        tmp.path(),
        &[],
        &["--json", "backup-dir", "from=data"],
        None,
    ));
    assert_eq!(r["files"], files);
    let out = run(
        tmp.path(),
        &[],
        &["--json", "restore-dir", "prefix=dirs/data", "to=back"],
        Some("5ms"),
    );
    let result = ok(&out);
    assert_eq!(
        (result["files"].as_u64(), result["bytes"].as_u64()),
        (Some(files), Some(bytes))
    );
    let evs = events(&out);
    // The totals are known from the start (the manifest's): the first event already has them.
    let first = &evs[0];
    assert_eq!(first["label"], "restore-dir");
    assert_eq!(
        (first["files_total"].as_u64(), first["bytes_total"].as_u64()),
        (Some(files), Some(bytes)),
        "{first}"
    );
    assert!(first["bytes_done"].as_u64() < Some(bytes), "{first}");
    check_final(&evs, "restore-dir", files, bytes);

    // One part: the totals of that part, from the index.
    let out = run(
        tmp.path(),
        &[],
        &[
            "--json",
            "restore-dir",
            "prefix=dirs/data",
            "to=part",
            "path=sub",
        ],
        Some("5ms"),
    );
    ok(&out);
    let evs = events(&out);
    assert_eq!(
        (
            evs[0]["files_total"].as_u64(),
            evs[0]["bytes_total"].as_u64()
        ),
        (Some(sub_files), Some(sub_bytes)),
        "{}",
        evs[0]
    );
    check_final(&evs, "restore-dir", sub_files, sub_bytes);
}

#[test]
fn quiet_runs_show_no_progress_and_a_failure_ends_with_a_failed_event() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("data"));
    for global in [&["-q"][..], &["-q", "--log-format", "json"][..]] {
        let out = run(
            tmp.path(),
            global,
            &["--json", "backup-dir", "from=data", "full=true"],
            Some("1ms"),
        );
        ok(&out);
        let err = stderr(&out);
        assert!(
            events(&out).is_empty() && !err.contains("progress"),
            "{err}"
        );
    }
    // The same run without -q does show them (so the check above can fail).
    let out = run(
        tmp.path(),
        &[],
        &["--json", "backup-dir", "from=data", "full=true"],
        Some("1ms"),
    );
    ok(&out);
    assert!(!events(&out).is_empty());

    // An extraction that fails: its last event is not done, and says it failed.
    std::fs::write(tmp.path().join("bad.tar"), vec![b'x'; 4096]).unwrap();
    let script = tmp.path().join("bad.lua");
    std::fs::write(
        &script,
        "return { description = 'x', params = {}, run = function()\n\
         return require('rewind.tar').extract({ from = 'bad.tar', to = 'out', progress = { label = 'bad', files = 3, bytes = 10 } })\n\
         end }\n",
    )
    .unwrap();
    let out = run(tmp.path(), &[], &["--json", script.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let evs = events(&out);
    let last = evs
        .last()
        .unwrap_or_else(|| panic!("no events: {}", text(&out)));
    assert_eq!(
        (
            &last["label"],
            &last["done"],
            &last["failed"],
            &last["files_total"]
        ),
        (
            &Value::from("bad"),
            &Value::from(false),
            &Value::from(true),
            &Value::from(3)
        ),
        "{last}"
    );

    // A script's own progress: items as files; finish(false) ends it as failed, finish() as done.
    std::fs::write(
        &script,
        "local progress = require('rewind.progress')\n\
         return { description = 'x', params = {}, run = function()\n\
         local a = progress.new({ label = 'items', total = 3 }); a:add(2); a:finish(false)\n\
         local b = progress.new({ label = 'bytes', total = 10, unit = 'bytes' }); b:add(10); b:finish()\n\
         end }\n",
    )
    .unwrap();
    let out = run(tmp.path(), &[], &["--json", script.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    let evs = events(&out);
    let last_of = |label: &str| evs.iter().rfind(|e| e["label"] == label).cloned().unwrap();
    let items = last_of("items");
    assert_eq!(
        (
            items["files_done"].as_u64(),
            items["files_total"].as_u64(),
            items["failed"].as_bool()
        ),
        (Some(2), Some(3), Some(true)),
        "{items}"
    );
    let bytes = last_of("bytes");
    assert_eq!(
        (
            bytes["bytes_done"].as_u64(),
            bytes["percent"].as_f64(),
            bytes["done"].as_bool()
        ),
        (Some(10), Some(100.0), Some(true)),
        "{bytes}"
    );
}
