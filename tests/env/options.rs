//! The options around env-backup / env-restore: retention after a backup, a shared Elasticsearch
//! repository, the deployment (dirty checkouts, checkout, deploy_command), a corrupted snapshot, and
//! credentials from an option file.

use serde_json::json;

use crate::common::mariadb;
use crate::common::process::text;
use crate::world::{FIREBASE_TOKEN, World, assert_no_secrets, result};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn keep_within_prunes_after_the_backup_and_keeps_safety_snapshots() {
    let w = World::start();
    // keep_within also keeps the newest snapshot older than the window (so the whole window is
    // covered): of two old backups, the older one goes.
    let first = w.backup();
    let second = w.backup();
    let r = result(&w.run("env-restore", &["parts=config"]));
    let safety = r["safety_snapshot"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = result(&w.run("env-backup", &["keep_within=1s"]));
    let last = r["snapshot"].as_str().unwrap().to_string();
    assert_eq!(r["pruned"]["removed"], json!(1), "{r}");
    let ids: Vec<String> = w.manifests().into_keys().collect();
    assert!(!ids.contains(&first), "the old snapshot is pruned: {ids:?}");
    assert!(
        ids.contains(&safety) && ids.contains(&last) && ids.contains(&second),
        "the safety snapshot, the window's boundary and the new one stay: {ids:?}"
    );
}

#[test]
fn a_shared_elasticsearch_repository_is_recorded_not_copied() {
    let w = World::start();
    let docs = w.es_docs();
    let r = result(&w.run("env-backup", &["elasticsearch.shared=true"]));
    let id = r["snapshot"].as_str().unwrap().to_string();
    let m = &w.manifests()[&id];
    assert!(
        !m["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "elasticsearch"),
        "no tar of a shared repository: {m}"
    );
    let es = &m["env"]["elasticsearch"];
    assert_eq!(es["shared"], json!(true));
    assert_eq!(es["indices"], json!(["audit-2026.12", "patients"]));
    w.es_delete_index("patients");
    let out = w.run(
        "env-restore",
        &[
            &format!("snapshot={id}"),
            "parts=elasticsearch",
            "elasticsearch.shared=true",
        ],
    );
    result(&out);
    assert_eq!(
        w.es_docs(),
        docs,
        "restored from the snapshot the shared repository kept"
    );
}

#[test]
fn a_dirty_checkout_is_recorded_and_checkout_and_deploy_command_follow_the_snapshot() {
    let w = World::start();
    let commit = w.git_head();
    std::fs::write(w.git_dir().join("notes.txt"), "not committed\n").unwrap();
    let out = w.run("env-backup", &[]);
    let r = result(&out);
    assert_eq!(r["dirty_checkout"], json!(true));
    assert!(
        stderr(&out).contains("uncommitted changes"),
        "a dirty tree is warned about: {}",
        text(&out)
    );
    let id = r["snapshot"].as_str().unwrap().to_string();
    let git = &w.manifests()[&id]["env"]["deployment"]["git"];
    assert_eq!(git["dirty"], json!(true));
    assert_eq!(git["status"], json!(["?? notes.txt"]));

    w.git_commit("next");
    std::fs::write(w.git_dir().join("CHANGES"), "local edit\n").unwrap();
    std::fs::remove_file(w.git_dir().join("notes.txt")).unwrap();
    let deployed = w.path("deployed.txt");
    let deploy = format!(
        "deploy_command=echo \"$REWIND_GIT_COMMIT $REWIND_IMAGES\" > {}",
        deployed.display()
    );
    let args = [
        format!("snapshot={id}"),
        "parts=deployment".into(),
        "checkout=true".into(),
        deploy,
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = w.run("env-restore", &args);
    assert!(
        !out.status.success(),
        "a checkout over uncommitted changes is refused: {}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("uncommitted changes") && stderr(&out).contains("force=true"),
        "{}",
        text(&out)
    );
    assert!(!deployed.exists());

    let mut forced = args.clone();
    forced.push("force=true");
    result(&w.run("env-restore", &forced));
    assert_eq!(w.git_head(), commit);
    let got = std::fs::read_to_string(&deployed).unwrap();
    assert_eq!(
        got.trim(),
        format!("{commit} 123.dkr.ecr.eu-west-1.amazonaws.com/athena-web:1.4.2\nathena-api:2.0.1")
    );
}

#[test]
fn a_corrupted_snapshot_is_refused_before_anything_changes() {
    let w = World::start();
    let id = w.backup();
    let dump = crate::common::process::files(&w.store())
        .into_iter()
        .find(|f| f.to_string_lossy().contains("mysql-oauth2-users"))
        .expect("the dump of oauth2-users");
    let mut bytes = std::fs::read(&dump).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&dump, bytes).unwrap();
    w.maria.sql(Some("athena-server"), "delete from orders");
    let before = w.databases();
    let out = w.run("env-restore", &[&format!("snapshot={id}")]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("failed verification, nothing was changed")
            && err.contains("mysql-oauth2-users"),
        "{err}"
    );
    assert_eq!(w.databases(), before);
    assert_eq!(
        w.maintenance_history(),
        ["on", "off"],
        "the refused restore never entered maintenance"
    );
    assert_eq!(w.manifests().len(), 1, "and took no safety snapshot");
}

#[test]
fn credentials_can_come_from_an_option_file() {
    let w = World::start();
    let cnf = w.path("client.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[client]\nuser={}\npassword={}\n",
            mariadb::USER,
            mariadb::PASSWORD
        ),
    )
    .unwrap();
    let pf = w.params_file("");
    let out = w
        .command(
            "env-backup",
            &pf,
            &[&format!("mysql.defaults_file={}", cnf.display())],
        )
        .env_remove("MYSQL_PWD")
        .output()
        .unwrap();
    let r = result(&out);
    assert!(r["parts"].as_array().unwrap().contains(&json!("mysql")));
}

#[test]
fn firebase_takes_an_access_token_instead_of_the_secret() {
    let w = World::start();
    let pf = w.params_file("");
    let fb = w.firebase();
    let out = w
        .command("env-backup", &pf, &[])
        .env_remove("FIREBASE_SECRET")
        .env("FIREBASE_TOKEN", FIREBASE_TOKEN)
        .output()
        .unwrap();
    let id = result(&out)["snapshot"].as_str().unwrap().to_string();
    w.set_firebase(&json!({"replaced": true}));
    let out = w
        .command(
            "env-restore",
            &pf,
            &[&format!("snapshot={id}"), "parts=firebase"],
        )
        .env_remove("FIREBASE_SECRET")
        .env("FIREBASE_TOKEN", FIREBASE_TOKEN)
        .output()
        .unwrap();
    result(&out);
    assert_eq!(w.firebase(), fb);
    assert_no_secrets(
        &format!("{}{}", text(&out), w.everything_written()),
        "the output and the store",
    );
}

#[test]
fn row_counts_can_be_left_out_and_the_restore_still_works() {
    let w = World::start();
    let dbs = w.databases();
    let r = result(&w.run("env-backup", &["mysql.count_rows=false"]));
    let id = r["snapshot"].as_str().unwrap().to_string();
    let rec = &w.manifests()[&id]["env"]["mysql"]["databases"][0];
    assert!(rec["tables"].is_null(), "no counts recorded: {rec}");
    let plan = result(&w.run("env-restore", &["dry_run=true", "parts=mysql"]));
    assert!(
        plan.to_string().contains("row counts not recorded"),
        "{plan}"
    );
    w.maria.sql(Some("athena-server"), "delete from orders");
    result(&w.run("env-restore", &[&format!("snapshot={id}"), "parts=mysql"]));
    assert_eq!(w.databases(), dbs);
}

#[test]
fn counts_taken_without_maintenance_only_warn_and_exact_ones_fail_the_restore() {
    let w = World::start();
    // A dump program that lets the row count go first, then writes a row the dump includes: the recorded
    // count is one short of the dump, as a write during a backup without maintenance makes it.
    let wrapper = w.path("dump-after-a-write.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsleep 1\nmariadb --host=127.0.0.1 --port={} --user={} athena-server -e \
             \"insert into audit_log (table_name, action, row_id, logged_at) values ('t', 'x', 1, now())\"\n\
             exec mariadb-dump \"$@\"\n",
            w.maria.port(),
            mariadb::USER
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dump = format!("mysql.dump_command={}", wrapper.display());

    // Without maintenance: the counts are marked approximate, and the restore warns.
    let with_maint = w.params_file("");
    let text = std::fs::read_to_string(&with_maint).unwrap();
    let without = w.path("env-no-maintenance.yaml");
    std::fs::write(&without, &text[..text.find("maintenance:").unwrap()]).unwrap();
    // Backs up with `params`, checks how the counts were marked, restores the MySQL part: (ok, stderr).
    let round = |params: &std::path::Path, exact: bool| {
        let out = w.command("env-backup", params, &[&dump]).output().unwrap();
        let id = result(&out)["snapshot"].as_str().unwrap().to_string();
        let rec = &w.manifests()[&id]["env"]["mysql"]["databases"][0];
        assert_eq!(rec["counts_exact"], json!(exact), "{rec}");
        let snapshot = format!("snapshot={id}");
        let out = w
            .command("env-restore", params, &[&snapshot, "parts=mysql"])
            .output()
            .unwrap();
        (out.status.success(), stderr(&out))
    };
    let (ok, err) = round(&without, false);
    assert!(ok, "a difference in approximate counts only warns: {err}");
    assert!(
        err.contains("row counts differ from the ones recorded") && err.contains("audit_log"),
        "{err}"
    );
    // Under maintenance the counts are exact, and the same difference fails the restore.
    let (ok, err) = round(&with_maint, true);
    assert!(!ok, "exact counts that differ fail: {err}");
    assert!(
        err.contains("athena-server differs from the backup"),
        "{err}"
    );
}
