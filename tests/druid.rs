//! druid-backup / druid-restore / prune against a real PostgreSQL (Debian's server, a throwaway cluster
//! per test), a generated deep-storage tree, the local store, and a fake Druid coordinator.

mod common;

use common::pg::{self as pg, Pg};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rewind");
const DB: &str = "druid";

struct Env {
    pg: Pg,
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let pg = Pg::start();
        let tmp = tempfile::tempdir().unwrap();
        Env { pg, tmp }
    }
    fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }
    fn deep(&self) -> PathBuf {
        self.tmp.path().join("opt/shared")
    }
    fn run(&self, script: &str, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("run");
        c.args(args.iter().filter(|a| a.starts_with("--")));
        c.arg(script);
        c.arg(format!("store={}", self.store().display()));
        c.args(args.iter().filter(|a| !a.starts_with("--")));
        c.envs(self.pg.env());
        c.env("PGDATABASE", DB);
        c.env("REWIND_STORE", self.store());
        c.env("HOME", self.tmp.path());
        c.output().unwrap()
    }
    fn path_map(&self) -> String {
        format!("path_map=/opt/shared={}", self.deep().display())
    }
    fn deep_arg(&self) -> String {
        format!("deep_storage={}", self.deep().display())
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "expected success, got {:?}:\n{}",
        o.status.code(),
        text(o)
    );
    text(o)
}

/// Every file under `dir` (relative path → bytes), sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Every manifest in the store, parsed.
fn manifests(store: &Path) -> Vec<serde_json::Value> {
    tree(store)
        .into_iter()
        .filter(|(p, _)| p.contains("manifest_") && p.ends_with(".json"))
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

fn backup(e: &Env) -> String {
    ok(&e.run("druid-backup", &[&e.deep_arg()]))
}

#[test]
fn round_trip_restores_identical_database_and_files() {
    let e = Env::new();
    let segs = pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 12);
    let before_db = e.pg.data_dump(DB);
    let before_files = tree(&e.deep());
    assert!(before_files.len() > 24);

    let out = backup(&e);
    assert!(
        !out.contains(pg::PASSWORD),
        "password in backup output:\n{out}"
    );
    let ms = manifests(&e.store());
    assert_eq!(ms.len(), 1);
    let names: Vec<&str> = ms[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["druid_metadata_dump", "druid_shared", "druid_shared-index"]
    );

    // wipe
    e.pg.dropdb(DB);
    std::fs::remove_dir_all(e.deep()).unwrap();

    let out = ok(&e.run("druid-restore", &[&e.deep_arg(), &e.path_map()]));
    assert!(
        !out.contains(pg::PASSWORD),
        "password in restore output:\n{out}"
    );
    assert_eq!(
        e.pg.data_dump(DB),
        before_db,
        "database content differs after restore"
    );
    assert_eq!(tree(&e.deep()), before_files, "files differ after restore");
    let used = segs.iter().filter(|s| s.used).count();
    assert!(used > 0);

    // The password never reaches the store.
    for (p, bytes) in tree(&e.store()) {
        assert!(
            !bytes
                .windows(pg::PASSWORD.len())
                .any(|w| w == pg::PASSWORD.as_bytes()),
            "password found in store object {p}"
        );
    }
}

/// Deep storage is immutable segment files: the second backup stores only the segment added since the
/// first, and a restore of the second composes the whole tree.
#[test]
fn a_second_backup_stores_only_new_segment_files_and_restores_whole() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 6);
    backup(&e);
    let new_seg = e.deep().join("segments/new_source/2024-01-01/0/index.zip");
    std::fs::create_dir_all(new_seg.parent().unwrap()).unwrap();
    std::fs::write(&new_seg, b"a new segment".repeat(1000)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup(&e);
    let mut ms = manifests(&e.store());
    ms.sort_by_key(|m| m["id"].as_str().unwrap().to_string());
    assert_eq!(ms[1]["parent"], ms[0]["id"], "{}", ms[1]);
    assert_eq!(ms[1]["files_new"], 1, "{}", ms[1]);
    assert!(ms[1]["files_unchanged"].as_u64().unwrap() > 6, "{}", ms[1]);
    let before_files = tree(&e.deep());
    e.pg.dropdb(DB);
    std::fs::remove_dir_all(e.deep()).unwrap();
    ok(&e.run("druid-restore", &[&e.deep_arg(), &e.path_map()]));
    assert_eq!(
        tree(&e.deep()),
        before_files,
        "files differ after restoring the incremental snapshot"
    );
}

#[test]
fn restore_checks_segments_with_path_map_and_lists_missing_files() {
    let e = Env::new();
    let segs = pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 6);
    // A used segment whose file is gone before the backup: the restore's check must catch it.
    let gone = segs
        .iter()
        .find(|s| s.used && s.datasource == "kafka_metrics")
        .unwrap()
        .clone();
    std::fs::remove_file(e.deep().join(&gone.rel_path)).unwrap();
    backup(&e);
    e.pg.dropdb(DB);
    std::fs::remove_dir_all(e.deep()).unwrap();

    let o = e.run("druid-restore", &[&e.deep_arg(), &e.path_map()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1:\n{t}");
    assert!(t.contains("1 of "), "{t}");
    assert!(
        t.contains(&format!("kafka_metrics {}", gone.interval)),
        "missing segment not listed:\n{t}"
    );
    assert!(
        !t.contains("wikipedia 2019"),
        "only the missing one is listed:\n{t}"
    );

    // Without path_map the /opt/shared paths do not exist here: every used segment is reported.
    let o = e.run(
        "druid-restore",
        &[&e.deep_arg(), "replace=true", "safety_backup=false"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let used = segs.iter().filter(|s| s.used).count();
    assert!(
        text(&o).contains(&format!("{used} of {used} used segments have no file")),
        "{}",
        text(&o)
    );
}

#[test]
fn corrupted_snapshot_is_refused_before_anything_is_overwritten() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 6);
    backup(&e);
    // Change the live state after the backup, so a restore would visibly change it.
    e.pg.psql(
        DB,
        "delete from druid_segments where dataSource = 'wikipedia'",
    );
    std::fs::write(e.deep().join("indexing-logs/new.log"), "after the backup\n").unwrap();
    let db_before = e.pg.data_dump(DB);
    let files_before = tree(&e.deep());

    // Flip one byte in the middle of the deep-storage archive.
    let (key, _) = tree(&e.store())
        .into_iter()
        .find(|(p, _)| p.contains("druid_shared_"))
        .expect("druid_shared object in the store");
    let path = e.store().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let o = e.run(
        "druid-restore",
        &[&e.deep_arg(), &e.path_map(), "replace=true"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "expected failure:\n{t}");
    assert!(t.contains("druid_shared"), "the bad object is named:\n{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    assert_eq!(e.pg.data_dump(DB), db_before, "database was changed");
    assert_eq!(tree(&e.deep()), files_before, "deep storage was changed");
    assert_eq!(
        manifests(&e.store()).len(),
        1,
        "no safety snapshot for a refused restore"
    );
}

#[test]
fn refuses_a_database_with_druid_tables_unless_replace_and_takes_a_safety_snapshot() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 4);
    let original_db = e.pg.data_dump(DB);
    let original_files = tree(&e.deep());
    backup(&e);
    e.pg.psql(
        DB,
        "update druid_config set payload = convert_to('{}', 'UTF8')",
    );
    let changed_db = e.pg.data_dump(DB);
    // Snapshot ids have one-second resolution: keep the safety snapshot in a later second than the backup.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let o = e.run("druid-restore", &[&e.deep_arg(), &e.path_map()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "expected a usage refusal:\n{t}");
    assert!(
        t.contains("already has") && t.contains("replace=true"),
        "{t}"
    );
    assert_eq!(e.pg.data_dump(DB), changed_db);

    // dry run: prints the plan, changes nothing
    let o = e.run(
        "druid-restore",
        &[&e.deep_arg(), &e.path_map(), "replace=true", "dry_run=true"],
    );
    let t = ok(&o);
    assert!(t.contains("safety snapshot") && t.contains("verify"), "{t}");
    assert_eq!(e.pg.data_dump(DB), changed_db);

    ok(&e.run(
        "druid-restore",
        &[&e.deep_arg(), &e.path_map(), "replace=true"],
    ));
    assert_eq!(e.pg.data_dump(DB), original_db);
    assert_eq!(tree(&e.deep()), original_files);
    let ms = manifests(&e.store());
    assert_eq!(ms.len(), 2, "a safety snapshot was added");
    let safety: Vec<_> = ms
        .iter()
        .filter(|m| {
            m["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "safety"))
        })
        .collect();
    assert_eq!(safety.len(), 1, "one snapshot tagged safety");
    // README: safety snapshots are full copies (they restore after their would-be parents are pruned).
    let s = safety[0];
    let full = s["chain"] == 0 && s["parent"].is_null() && s["files_unchanged"] == 0;
    assert!(
        full && s["files_new"].as_u64() > Some(0),
        "a full copy: {s}"
    );
}

struct Fake(std::process::Child, u16);
impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fake_coordinator(args: &[&str]) -> Fake {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fakes/druid_coordinator.py"
        ))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    Fake(child, port)
}

#[test]
fn waits_for_the_coordinator_and_runs_the_start_command() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 4);
    backup(&e);
    e.pg.dropdb(DB);
    std::fs::remove_dir_all(e.deep()).unwrap();
    let fake = fake_coordinator(&[
        "--datasources",
        "wikipedia,kafka_metrics",
        "--ready-after",
        "2",
    ]);
    let marker = e.tmp.path().join("started");
    let o = e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            &format!("coordinator_url=http://127.0.0.1:{}", fake.1),
            "load_timeout=30s",
            &format!("start_command=touch {}", marker.display()),
            "--json",
        ],
    );
    let t = ok(&o);
    assert!(marker.exists(), "start command ran");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v["loaded"], serde_json::json!(true), "{t}");

    // A datasource stuck at 50%: the restore fails after the timeout and names it.
    let stuck = fake_coordinator(&[
        "--datasources",
        "wikipedia,kafka_metrics",
        "--stuck",
        "kafka_metrics",
    ]);
    let o = e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            "replace=true",
            "safety_backup=false",
            &format!("coordinator_url=http://127.0.0.1:{}", stuck.1),
            "load_timeout=3s",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("kafka_metrics 50"), "{}", text(&o));
}

/// Writes a complete snapshot (objects + manifest) straight into the local store's layout.
fn fake_snapshot(store: &Path, prefix: &str, id: &str, tags: &[&str]) {
    let (day, hms) = id.split_once('-').unwrap();
    let dir = store.join(prefix).join(day);
    std::fs::create_dir_all(&dir).unwrap();
    let key = format!("{prefix}/{day}/druid_shared_{hms}.tar.zst");
    std::fs::write(store.join(&key), id.as_bytes()).unwrap();
    let started = chrono::NaiveDateTime::parse_from_str(id, "%Y%m%d-%H%M%S").unwrap();
    let started = started.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let m = serde_json::json!({
        "format": "rewind.snapshot/1", "id": id, "prefix": prefix, "procedure": "druid-backup",
        "target": "druid", "host": "h", "started_at": started, "finished_at": started, "params": {},
        "tags": tags, "rewind_version": "0", "objects": [{"name": "druid_shared", "key": key, "size": id.len(),
        "sha256": "", "ext": "tar.zst"}],
    });
    std::fs::write(dir.join(format!("manifest_{hms}.json")), m.to_string()).unwrap();
}

#[test]
fn prune_dry_run_explains_and_real_prune_deletes_manifest_and_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for d in 1..=20 {
        fake_snapshot(
            &store,
            "druid",
            &format!("202611{d:02}-030000"),
            if d == 2 { &["safety"] } else { &[] },
        );
    }
    // An incomplete snapshot (objects, no manifest) from long ago.
    std::fs::create_dir_all(store.join("druid/20261101")).unwrap();
    std::fs::write(
        store.join("druid/20261101/druid_shared_120000.tar.zst"),
        b"partial",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args([
                "run",
                "prune",
                &format!("store={}", store.display()),
                "prefix=druid",
            ])
            .args(args)
            .env("HOME", tmp.path())
            .output()
            .unwrap()
    };
    let o = run(&["keep_daily=5", "tags=safety", "dry_run=true"]);
    let t = ok(&o);
    assert!(t.contains("keep         20261120-030000"), "{t}");
    assert!(t.contains("keep-daily 2026-11-20"), "{t}");
    assert!(t.contains("keep-tag safety"), "{t}");
    assert!(t.contains("would remove 20261115-030000"), "{t}");
    assert!(
        t.contains("20261101-120000") && t.contains("incomplete"),
        "{t}"
    );
    assert_eq!(manifests(&store).len(), 20, "dry run deletes nothing");

    // No policy: refused.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no retention policy"), "{}", text(&o));

    ok(&run(&["keep_daily=5", "tags=safety"]));
    let mut ids: Vec<String> = manifests(&store)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "20261102-030000",
            "20261116-030000",
            "20261117-030000",
            "20261118-030000",
            "20261119-030000",
            "20261120-030000"
        ]
    );
    let objects: Vec<String> = tree(&store)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.contains("druid_shared_"))
        .collect();
    assert_eq!(
        objects.len(),
        6,
        "objects of removed and incomplete snapshots deleted: {objects:?}"
    );
}

#[test]
fn metabase_is_restored_only_when_asked_as_a_directory_or_a_database() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 3);
    let mb = e.tmp.path().join("metabase-data");
    std::fs::create_dir_all(mb.join("plugins")).unwrap();
    std::fs::write(mb.join("metabase.db.mv.db"), vec![7u8; 100_000]).unwrap();
    std::fs::write(mb.join("plugins/x.jar"), b"jar").unwrap();
    let mb_files = tree(&mb);
    ok(&e.run(
        "druid-backup",
        &[&e.deep_arg(), &format!("metabase_dir={}", mb.display())],
    ));

    // restore_metabase=false (the default) leaves Metabase alone.
    std::fs::write(mb.join("metabase.db.mv.db"), b"changed").unwrap();
    let changed = tree(&mb);
    ok(&e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            "replace=true",
            "safety_backup=false",
        ],
    ));
    assert_eq!(
        tree(&mb),
        changed,
        "Metabase untouched without restore_metabase=true"
    );
    // restore_metabase=true brings the backed-up files back.
    ok(&e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            "replace=true",
            "safety_backup=false",
            "restore_metabase=true",
            &format!("metabase_dir={}", mb.display()),
        ],
    ));
    assert_eq!(tree(&mb), mb_files);

    // Metabase in PostgreSQL: dumped and restored as a database.
    e.pg.createdb("metabase");
    e.pg.psql("metabase", "create table report_card (id serial primary key, name text); insert into report_card (name) values ('a'), ('b');");
    let mb_db = e.pg.data_dump("metabase");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&e.run(
        "druid-backup",
        &[&e.deep_arg(), "metabase_pg_database=metabase"],
    ));
    e.pg.dropdb("metabase");
    ok(&e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            "replace=true",
            "safety_backup=false",
            "restore_metabase=true",
            "metabase_pg_database=metabase",
        ],
    ));
    assert_eq!(e.pg.data_dump("metabase"), mb_db);
}

#[test]
fn a_restore_that_fails_half_way_leaves_the_database_exactly_as_it_was() {
    let e = Env::new();
    pg::druid_fixture(&e.pg, DB, &e.deep(), "/opt/shared", 6);
    backup(&e);
    pg::truncate_dump(&e.store());
    let id = format!(
        "snapshot={}",
        manifests(&e.store())[0]["id"].as_str().unwrap()
    );
    // The live state differs from the backup, so a half-done restore would show.
    e.pg.psql(DB, "delete from druid_segments where dataSource = 'wikipedia'; insert into druid_config values ('after', '\\x03')");
    let objects = "select string_agg(indexname, ',' order by indexname) from pg_indexes where schemaname = 'public'";
    let (db_before, objects_before) = (e.pg.data_dump(DB), e.pg.psql(DB, objects));
    let files_before = tree(&e.deep());
    let o = e.run(
        "druid-restore",
        &[&e.deep_arg(), &e.path_map(), "replace=true"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "the restore fails:\n{t}");
    assert!(t.contains("pg_restore") && t.contains("end of file"), "{t}");
    assert!(
        t.contains("database druid failed, nothing of it was applied"),
        "{t}"
    );
    assert!(!t.contains(pg::PASSWORD), "{t}");
    // (assert! rather than assert_eq!: the dumps are long)
    assert!(e.pg.data_dump(DB) == db_before, "database content changed");
    assert!(e.pg.psql(DB, objects) == objects_before, "indexes changed");
    assert!(tree(&e.deep()) == files_before, "deep storage changed");
    let parent = e.deep().parent().unwrap().to_path_buf();
    let leftovers: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("shared")],
        "nothing left beside deep storage"
    );

    // A database that did not exist does not exist after a failed restore either.
    e.pg.dropdb(DB);
    let o = e.run(
        "druid-restore",
        &[
            &e.deep_arg(),
            &e.path_map(),
            "replace=true",
            "safety_backup=false",
            &id,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("dropped again"), "{}", text(&o));
    let exists = format!("select count(*) from pg_database where datname = '{DB}'");
    assert_eq!(
        e.pg.psql("postgres", &exists).trim(),
        "0",
        "the database created for the restore was dropped"
    );
}
