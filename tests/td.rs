//! Treasure Data parent segments: td-ps-backup and td-ps-restore against the fake TD server.

mod common;

use common::process::{files, text};
use common::td::{Fake, KEY, backup, json_out, restore, rewind, root};

#[test]
fn round_trip_backup_restore_equal_tree_and_key_never_shown() {
    // injected 429/503 every 7th request exercise the retries
    let fake = Fake::start(&["--seed", "roundtrip", "--fail-every", "7"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let mut all_output = String::new();

    let o = backup(&fake, store, &["to_tables=true", "database=backups"]);
    all_output += &text(&o);
    assert!(o.status.success(), "{}", text(&o));
    let b = json_out(&o);
    assert_eq!(b["segments"], 8);
    assert_eq!(b["other_entities"], 1);
    let keys: Vec<String> = b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    for name in ["ms_config", "folder_config", "all_segments_config"] {
        let k = keys
            .iter()
            .find(|k| {
                k.rsplit('/')
                    .next()
                    .unwrap()
                    .starts_with(&format!("{name}_"))
            })
            .unwrap_or_else(|| panic!("no {name} in {keys:?}"));
        let re = format!("td/ps_{}/", fake.seed["audience_id"].as_str().unwrap());
        assert!(k.starts_with(&re), "{k}");
        let file = k.rsplit('/').next().unwrap();
        // <name>_HHMMSS.json under a YYYYMMDD directory
        assert!(
            file.ends_with(".json") && file.len() == name.len() + 12,
            "{k}"
        );
        let day = k.rsplit('/').nth(1).unwrap();
        assert!(
            day.len() == 8 && day.chars().all(|c| c.is_ascii_digit()),
            "{k}"
        );
        assert!(dir.path().join(k).exists());
    }
    let manifests: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("manifest_")
        })
        .collect();
    assert_eq!(manifests.len(), 1);

    let o = restore(&fake, store, "ps_restored", &[]);
    all_output += &text(&o);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    assert_eq!(r["created"], 8, "{r}");
    assert_eq!(r["folders_created"], 6);
    let skipped = r["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["type"], "funnel");
    let new_root = r["root_folder_id"].as_str().unwrap();
    let orig = fake.canon(&root(&fake), "funnel");
    assert_eq!(
        fake.canon(new_root, ""),
        orig,
        "restored tree equals the original up to ids"
    );
    // the new parent segment is the old one under a new name
    let ps = fake.get("/_fake/state");
    let new_ps = &ps["audiences"][r["parent_segment_id"].as_str().unwrap()];
    assert_eq!(new_ps["name"], "ps_restored");
    assert_eq!(new_ps["master"]["parentTableName"], "customers");
    assert_eq!(new_ps["attributes"][0]["parentColumn"], "age");

    // the same backup, read back from the TD tables
    let o = restore(
        &fake,
        store,
        "ps_from_tables",
        &["from_tables=true", "database=backups"],
    );
    all_output += &text(&o);
    assert!(o.status.success(), "{}", text(&o));
    let r2 = json_out(&o);
    assert_eq!(fake.canon(r2["root_folder_id"].as_str().unwrap(), ""), orig);

    // the key never appears: not in any output, not in any stored file, not in the fake's tables
    assert!(!all_output.contains(KEY), "key leaked in output");
    assert!(!all_output.contains("0123456789abcdef0123456789abcdef01234567"));
    for f in files(dir.path()) {
        let data = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&data).contains("0123456789abcdef0123456789abcdef01234567"),
            "key in {}",
            f.display()
        );
    }
}

#[test]
fn restore_killed_halfway_resumes_without_duplicates() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let before = fake.counts()["creations"].as_u64().unwrap();
    // the service starts failing after 9 more creations (6 folders + 3 segments)
    fake.config(&format!("{{\"fail_creates_after\": {}}}", before + 9));
    let o = restore(&fake, store, "ps_resume", &["concurrency=2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("500"), "{}", text(&o));
    fake.config("{\"fail_creates_after\": -1}");
    let o = restore(&fake, store, "ps_resume", &["concurrency=2"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    let counts = fake.counts();
    // one new parent segment, 6 folders + 8 segments + its root, once each
    assert_eq!(counts["audiences"], 2, "{counts}");
    assert_eq!(
        counts["creations"].as_u64().unwrap(),
        before + 14,
        "{counts}"
    );
    assert_eq!(
        fake.canon(r["root_folder_id"].as_str().unwrap(), ""),
        fake.canon(&root(&fake), "funnel")
    );
    // and a third run changes nothing
    let o = restore(&fake, store, "ps_resume", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json_out(&o)["created"], 0);
    assert_eq!(fake.counts()["creations"].as_u64().unwrap(), before + 14);
}

#[test]
fn wrong_key_is_a_clear_401_and_writes_nothing() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let bad = "1/ffffffffffffffffffffffffffffffffffffffff";
    let o = rewind(
        &[
            "run",
            "td-ps-backup",
            "src_ms_id=1001",
            &format!("endpoint={}", fake.url()),
            &format!("store={}", dir.path().display()),
        ],
        Some(bad),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("401") && t.contains("Authentication failed"),
        "{t}"
    );
    assert!(
        !t.contains("ffffffffffffffffffffffffffffffffffffffff"),
        "{t}"
    );
    assert!(files(dir.path()).is_empty(), "nothing written");
}

#[test]
fn v5_not_enabled_stops_with_a_message_and_resumes() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    fake.config("{\"no_v5\": true}");
    let o = restore(&fake, store, "ps_nov5", &[]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("v5 is not enabled") && t.contains("resumes"),
        "{t}"
    );
    fake.config("{\"no_v5\": false}");
    let o = restore(&fake, store, "ps_nov5", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        fake.counts()["audiences"],
        2,
        "the parent segment was not created twice"
    );
}

#[test]
fn dry_run_creates_nothing_and_prints_the_plan() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let o = backup(&fake, store, &["dry_run=true"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        files(dir.path()).is_empty(),
        "backup dry run writes nothing"
    );
    assert!(backup(&fake, store, &[]).status.success());
    let before = fake.counts();
    let o = restore(&fake, store, "ps_dry", &["dry_run=true"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan = json_out(&o)["plan"].to_string();
    assert!(plan.contains("create parent segment 'ps_dry'"), "{plan}");
    assert!(plan.contains("create segment-batch 'deep'"), "{plan}");
    assert!(plan.contains("rewriting references"), "{plan}");
    assert!(plan.contains("skip funnel"), "{plan}");
    let after = fake.counts();
    assert_eq!(before["creations"], after["creations"]);
    assert_eq!(before["audiences"], after["audiences"]);
}

#[test]
fn source_yaml_settings_are_accepted() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let yml = dir.path().join("backup_parent_seg.yml");
    std::fs::write(
        &yml,
        format!(
            "src_ms_id: {}\nroot_folder_id: {}\nstg_ms_config_tbl: ms_cfg\nstg_folder_curr_config_tbl: f_curr\n\
             stg_folder_extract_tbl: f_ext\nstg_seg_curr_config_tbl: s_curr\nstg_seg_config_tbl: s_cfg\n\
             s3:\n  connection_name: my_s3\n  bucket: my-bucket\n",
            fake.seed["audience_id"].as_str().unwrap(),
            root(&fake)
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let o = rewind(
        &[
            "run",
            "td-ps-backup",
            "--json",
            "--params-file",
            yml.to_str().unwrap(),
            &format!("endpoint={}", fake.url()),
            &format!("store={}", store.display()),
            "to_tables=true",
            "database=db1",
            "depth=2",
        ],
        Some(KEY),
    );
    assert!(o.status.success(), "{}", text(&o));
    let b = json_out(&o);
    assert_eq!(b["tables"]["all_segments_config"], "s_cfg");
    // by-folder asked 2 levels at a time still finds the whole 5-level tree
    assert_eq!(b["folders"], 7);
    assert_eq!(b["segments"], 8);
    let state = fake.get("/_fake/state");
    assert_eq!(
        state["databases"]["db1"]["s_cfg"].as_array().unwrap().len(),
        1
    );

    // restore_parent_seg.yml for Part 1 leaves root_folder_id empty: not given
    let ryml = dir.path().join("restore_parent_seg.yml");
    std::fs::write(
        &ryml,
        format!(
            "ms_name: ps_from_yaml\nms_table_restore: ms_r\nfolder_stg_tbl: f_r\nroot_folder_id:\n\
             aws_bucket_name: my-bucket\naws_ms_config_path: x/\naws_folder_config_path: y/\n\
             restore_ps_config_v4: yes\nrestore_folders_and_segments_v5: no\nsrc_ms_id: {}\n",
            fake.seed["audience_id"].as_str().unwrap()
        ),
    )
    .unwrap();
    let o = rewind(
        &[
            "run",
            "td-ps-restore",
            "--json",
            "--params-file",
            ryml.to_str().unwrap(),
            &format!("endpoint={}", fake.url()),
            &format!("store={}", store.display()),
            "dry_run=true",
        ],
        Some(KEY),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        json_out(&o)["plan"][0]
            .as_str()
            .unwrap()
            .contains("ps_from_yaml")
    );
}

#[test]
fn restore_into_the_existing_root_reuses_folders_and_adds_nothing() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let before = fake.counts();
    let rf = format!("root_folder_id={}", root(&fake));
    let ep = format!("endpoint={}", fake.url());
    let st = format!("store={store}");
    let o = rewind(
        &[
            "run",
            "td-ps-restore",
            "--json",
            "src_ms_id=1001",
            &ep,
            &st,
            &rf,
        ],
        Some(KEY),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    assert_eq!(r["folders_reused"], 6, "{r}");
    assert_eq!(r["created"], 0, "{r}");
    assert_eq!(r["adopted"], 8, "{r}");
    assert_eq!(fake.counts()["creations"], before["creations"]);
}

#[test]
fn restore_killed_with_sigkill_then_rerun_has_no_duplicates() {
    let fake = Fake::start(&["--seed", "bench:20:200", "--latency-ms", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let base = fake.counts()["creations"].as_u64().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args([
            "run",
            "td-ps-restore",
            &format!("src_ms_id={}", fake.seed["audience_id"].as_str().unwrap()),
            &format!("endpoint={}", fake.url()),
            &format!("store={store}"),
            "ms_name=ps_killed",
            "poll=0.05s",
            "concurrency=2",
        ])
        .env("TD_API_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fake.counts()["creations"].as_u64().unwrap() < base + 80 {
        assert!(
            std::time::Instant::now() < deadline,
            "restore made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to save anything more
    child.wait().unwrap();
    let o = restore(&fake, store, "ps_killed", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    let counts = fake.counts();
    assert_eq!(counts["audiences"], 2, "{counts}");
    // 20 folders + 200 segments, each once (the run's root folder is not a creation)
    assert_eq!(
        counts["creations"].as_u64().unwrap(),
        base + 220,
        "{counts}"
    );
    assert_eq!(counts["entities"]["segment-batch"], 400, "{counts}");
    assert_eq!(
        fake.canon(r["root_folder_id"].as_str().unwrap(), ""),
        fake.canon(&root(&fake), "")
    );
}

#[test]
fn client_errors_carry_status_and_td_message() {
    let fake = Fake::start(&["--seed", "roundtrip", "--fail-every", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.lua");
    std::fs::write(
        &script,
        r#"
local td = require("rewind.td")
return {
  description = "exercise rewind.td against the fake",
  params = { endpoint = { type = "string", required = true, doc = "fake URL" } },
  run = function(p)
    local c = td.client{ endpoint = p.endpoint, apikey = os.getenv("TD_API_KEY") }
    local out = {}
    local root = c:root_folder_id("1001")
    local f = c:create_folder(root, { name = "tmp", audienceId = "1001" })
    c:create_segment(f.id, { name = "s", audienceId = "1001", rule = {} })
    local ok, err = pcall(c.delete_folder, c, f.id)
    out.delete_non_empty = td.status_of(err)
    ok, err = pcall(c.create_folder, c, root, { name = "tmp", audienceId = "1001" })
    out.duplicate = td.status_of(err)
    out.duplicate_message = tostring(err):find("Name has already been taken", 1, true) ~= nil
    ok, err = pcall(c.get_segment, c, "999999")
    out.missing = td.status_of(err)
    out.no_v5 = c:root_folder_id("999999") == nil
    local ex = c:run_parent_segment("1001")
    out.run = c:wait_for_run("1001", { session = ex.workflowSessionId, poll = 0.01 }).status
    local rows = c:query("db", "SELECT a FROM t") -- no such database
    return out
  end,
}
"#,
    )
    .unwrap();
    let o = rewind(
        &[
            "run",
            "--json",
            script.to_str().unwrap(),
            &format!("endpoint={}", fake.url()),
        ],
        Some(KEY),
    );
    // the last call fails: the error names the request, the status and TD's message
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("POST /v3/job/issue/presto/db answered 404: Database db not found"),
        "{t}"
    );
    std::fs::write(
        &script,
        std::fs::read_to_string(&script)
            .unwrap()
            .replace(
                "local rows = c:query(\"db\", \"SELECT a FROM t\") -- no such database\n",
                "",
            )
            .replace("name = \"tmp\"", "name = \"tmp2\""),
    )
    .unwrap();
    let o = rewind(
        &[
            "run",
            "--json",
            script.to_str().unwrap(),
            &format!("endpoint={}", fake.url()),
        ],
        Some(KEY),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    assert_eq!(r["delete_non_empty"], 409, "{r}");
    assert_eq!(r["duplicate"], 400);
    assert_eq!(r["duplicate_message"], true);
    assert_eq!(r["missing"], 404);
    assert_eq!(r["no_v5"], true);
    assert_eq!(r["run"], "success");
}

#[test]
fn only_segments_restores_a_subset_with_what_it_references() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let o = restore(&fake, store, "ps_subset", &["only_segments=deep"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    // deep → mid → base, and deep → pred_base → base
    assert_eq!(r["created"], 4, "{r}");
    let tree = fake
        .canon(r["root_folder_id"].as_str().unwrap(), "")
        .to_string();
    for name in ["\"deep\"", "\"mid\"", "\"base\"", "\"pred_base\""] {
        assert!(tree.contains(name), "{name} in {tree}");
    }
    assert!(!tree.contains("\"realtime\"") && !tree.contains("\"empty_rule\""));
}

/// The entities the fake holds, by type and name, with how many of each.
fn named(fake: &Fake, etype: &str, name: &str) -> usize {
    let state = fake.get("/_fake/state");
    let (coll, field) = if etype == "audience" {
        ("audiences", "name")
    } else {
        ("entities", "")
    };
    state[coll]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| {
            if field.is_empty() {
                e["type"] == etype && e["attributes"]["name"] == name
            } else {
                e[field] == name
            }
        })
        .count()
}

#[test]
fn creates_whose_answer_is_lost_after_they_were_applied_are_not_made_twice() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let before = fake.counts()["creations"].as_u64().unwrap();
    // Each kind of create is applied, then its answer fails: a 5xx, or the connection dropped. api-notes.md
    // leaves open whether a parent segment's name must be unique: here it need not be, so a blind repeat
    // of the POST would show as a second parent segment.
    fake.config(
        r#"{"unique_audience_names": false, "fail_after_apply": [
        {"method": "POST", "path": "/audiences", "mode": "500"},
        {"method": "POST", "path": "/audiences/\\w+/run", "mode": "drop"},
        {"method": "POST", "path": "/entities/folders", "mode": "drop", "times": 2},
        {"method": "POST", "path": "/entities/segments", "mode": "502", "times": 2},
        {"method": "POST", "path": "/entities/segments", "mode": "drop"},
        {"method": "POST", "path": "/entities/predictive_segments", "mode": "503"}]}"#,
    );
    let o = restore(&fake, store, "ps_lost", &["concurrency=2"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    let state = fake.get("/_fake/state");
    let rules = state["config"]["fail_after_apply"].as_array().unwrap();
    assert!(
        rules.iter().all(|x| x["times"] == 0),
        "every fault fired: {rules:?}"
    );
    assert_eq!(named(&fake, "audience", "ps_lost"), 1, "one parent segment");
    let id = r["parent_segment_id"].as_str().unwrap();
    assert_eq!(
        state["executions"][id].as_array().unwrap().len(),
        1,
        "one run"
    );
    // 6 folders and 8 segments, each created once, and the tree equals the source
    let counts = fake.counts();
    assert_eq!(
        counts["creations"].as_u64().unwrap(),
        before + 14,
        "{counts}"
    );
    assert_eq!(
        fake.canon(r["root_folder_id"].as_str().unwrap(), ""),
        fake.canon(&root(&fake), "funnel")
    );
    assert!(text(&o).contains("looking it up"), "{}", text(&o));
}

#[test]
fn a_crash_between_a_create_and_saving_its_id_resumes_by_name() {
    let fake = Fake::start(&["--seed", "roundtrip"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    assert!(backup(&fake, store, &[]).status.success());
    let before = fake.counts()["creations"].as_u64().unwrap();
    // The create is applied, its answer held back; the restore is killed meanwhile (nothing saved after it).
    let crash = |rule: &str, applied: &dyn Fn() -> bool| {
        fake.config(&format!(
            r#"{{"unique_audience_names": false, "fail_after_apply": [{rule}]}}"#
        ));
        let mut child = common::td::restore_cmd(&fake, store, "ps_crash", &["concurrency=1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::process::wait_for("the create", std::time::Duration::from_secs(60), applied);
        child.kill().unwrap();
        child.wait().unwrap();
    };
    let audiences = r#"{"method": "POST", "path": "/audiences", "mode": "hang"}"#;
    crash(audiences, &|| named(&fake, "audience", "ps_crash") == 1);
    let segments = r#"{"method": "POST", "path": "/entities/segments", "mode": "hang"}"#;
    crash(segments, &|| {
        fake.counts()["creations"].as_u64().unwrap() > before + 6
    });
    fake.config(r#"{"fail_after_apply": []}"#);
    let o = restore(&fake, store, "ps_crash", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json_out(&o);
    assert_eq!(
        named(&fake, "audience", "ps_crash"),
        1,
        "one parent segment"
    );
    let counts = fake.counts();
    assert_eq!(
        counts["creations"].as_u64().unwrap(),
        before + 14,
        "{counts}"
    );
    assert_eq!(
        fake.canon(r["root_folder_id"].as_str().unwrap(), ""),
        fake.canon(&root(&fake), "funnel")
    );
    // A name this restore did not create is refused before anything is made (names need not be unique here).
    let o = restore(&fake, store, "ps_orig", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("'ps_orig' already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(named(&fake, "audience", "ps_orig"), 1);
}
