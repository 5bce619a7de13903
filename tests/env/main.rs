//! env-backup / env-restore (source document 003) against a real MariaDB server, a configuration
//! directory and a git checkout made here, and faithful fakes of Elasticsearch's snapshot API,
//! Firebase's REST API and a maintenance switch: the full round trip, the four refused concurrency
//! cases, failures mid-backup and mid-restore, Ctrl-C, bad params, and secrets.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod options;
mod world;

use serde_json::json;

use common::process::text;
use world::{World, assert_no_secrets, result};

fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn full_round_trip_restores_every_part_and_keeps_a_safety_snapshot() {
    let w = World::start();
    let dbs = w.databases();
    let config = w.config_tree();
    let es = w.es_docs();
    let fb = w.firebase();
    let commit = w.git_head();
    assert_eq!(
        es.len(),
        2,
        "the Elasticsearch fixture has two indices: {es:?}"
    );

    let out = w.run("env-backup", &["tags=nightly"]);
    let r = result(&out);
    let id = r["snapshot"].as_str().unwrap().to_string();
    assert_eq!(
        r["parts"],
        json!(["config", "deployment", "mysql", "elasticsearch", "firebase"])
    );
    assert!(r["maintenance_seconds"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!(w.maintenance_history(), ["on", "off"]);

    // The manifest records each part with what a restore checks.
    let m = &w.manifests()[&id];
    let env = &m["env"];
    assert_eq!(env["deployment"]["git"]["commit"], json!(commit));
    assert_eq!(env["deployment"]["git"]["branch"], json!("main"));
    assert_eq!(
        env["deployment"]["git"]["remote"],
        json!("https://github.com/clarius/deployment.git")
    );
    assert_eq!(env["deployment"]["git"]["dirty"], json!(false));
    assert_eq!(
        env["deployment"]["images"],
        json!([
            "123.dkr.ecr.eu-west-1.amazonaws.com/athena-web:1.4.2",
            "athena-api:2.0.1"
        ])
    );
    let counts = w.maria.row_counts("athena-server");
    let rec = env["mysql"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "athena-server")
        .unwrap();
    for (t, n) in &counts {
        assert_eq!(
            rec["tables"][t],
            json!(n),
            "row count of {t} in the manifest"
        );
    }
    assert_eq!(
        env["elasticsearch"]["documents"],
        json!({"audit-2026.12": 25, "patients": 40})
    );
    assert_eq!(env["firebase"]["export_sha256"].as_str().unwrap().len(), 64);
    for o in m["objects"].as_array().unwrap() {
        assert!(
            o["size"].as_u64().unwrap() > 0 && o["sha256"].as_str().unwrap().len() == 64,
            "{o}"
        );
    }

    // Damage every part.
    w.maria
        .sql(Some("athena-server"), "delete from orders where id % 2 = 0");
    w.maria.sql(None, "drop database `oauth2-users`");
    std::fs::write(w.config_dir().join("app.env"), "DB_HOST=elsewhere\n").unwrap();
    std::fs::remove_file(w.config_dir().join("nginx/default.conf")).unwrap();
    std::fs::write(w.config_dir().join("stray.conf"), "x").unwrap();
    w.es_delete_index("patients");
    w.es_put_doc("audit-2026.12", "new", &json!({"n": -1}));
    w.set_firebase(&json!({"users": null, "other": 1}));
    let later = w.git_commit("later");
    let damaged_dbs = w.databases();
    let damaged_config = w.config_tree();
    assert_ne!(damaged_dbs, dbs);

    let out = w.run("env-restore", &[&format!("snapshot={id}"), "checkout=true"]);
    let r = result(&out);
    assert_eq!(
        r["restored"],
        json!(["config", "deployment", "mysql", "elasticsearch", "firebase"])
    );
    assert_eq!(
        w.databases(),
        dbs,
        "every database row by row, routines, views, triggers and events"
    );
    assert_eq!(
        w.config_tree(),
        config,
        "config directory with modes and symlinks"
    );
    assert_eq!(w.es_docs(), es);
    assert_eq!(w.firebase(), fb);
    assert_eq!(w.git_head(), commit);
    assert!(
        all_output(&out).contains("athena-api:2.0.1"),
        "the images are printed: {}",
        text(&out)
    );
    assert_eq!(w.maintenance_history(), ["on", "off", "on", "off"]);

    // The safety snapshot holds the environment as it was just before the restore.
    let safety = r["safety_snapshot"].as_str().unwrap().to_string();
    let sm = &w.manifests()[&safety];
    assert_eq!(sm["tags"], json!(["safety"]));
    assert_eq!(sm["env"]["deployment"]["git"]["commit"], json!(later));
    let out = w.run(
        "env-restore",
        &[
            &format!("snapshot={safety}"),
            "parts=mysql,config",
            "safety_backup=false",
            "force=true",
        ],
    );
    result(&out);
    assert_eq!(w.config_tree(), damaged_config);
    for (name, state) in &damaged_dbs {
        if name != "oauth2-users" {
            assert_eq!(
                &w.maria.state(name),
                state,
                "{name} as it was before the restore"
            );
        }
    }
    assert!(
        !w.maria.databases().contains(&"oauth2-users".to_string()),
        "it did not exist then"
    );

    // A default restore takes the newest snapshot that is not a safety snapshot.
    let out = w.run("env-restore", &["dry_run=true"]);
    let plan = result(&out);
    assert_eq!(plan["snapshot"], json!(id));

    assert_no_secrets(
        &w.everything_written(),
        "the store or the working directory",
    );
}

#[test]
fn dry_run_prints_what_is_destroyed_and_changes_nothing() {
    let w = World::start();
    let id = w.backup();
    w.maria.sql(Some("athena-server"), "delete from orders");
    let before = w.databases();
    let history = w.maintenance_history();
    let out = w.run("env-restore", &["dry_run=true"]);
    let r = result(&out);
    let plan = r["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains(&format!("restore snapshot {id}")), "{plan}");
    assert!(
        plan.contains("drop database athena-server and recreate it"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("replace {}", w.config_dir().display())),
        "{plan}"
    );
    assert!(
        plan.contains("close and replace indices audit-2026.12, patients"),
        "{plan}"
    );
    assert!(plan.contains("safety snapshot"), "{plan}");
    assert_eq!(w.databases(), before);
    assert_eq!(
        w.maintenance_history(),
        history,
        "a dry run does not touch maintenance"
    );
    assert_eq!(w.manifests().len(), 1);
}

#[test]
fn bad_params_exit_2_and_write_nothing() {
    let w = World::start();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "env-backup",
            &["firebase.secret="],
            "firebase.url needs firebase.secret",
        ),
        (
            "env-backup",
            &["maintenance.off="],
            "maintenance.on and maintenance.off together",
        ),
        ("env-backup", &["mysql.databases=ok,ok"], "listed twice"),
        (
            "env-backup",
            &["images.list=a:1"],
            "one of images.list, images.compose_file",
        ),
        ("env-restore", &["safety_backup=false"], "needs force=true"),
        ("env-backup", &["level=fast"], "level"),
    ];
    for (script, args, want) in cases {
        let pf = w.params_file("");
        let mut c = w.command(script, &pf, args);
        if args.contains(&"firebase.secret=") {
            c.env_remove("FIREBASE_SECRET");
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{script} {args:?}: {}",
            text(&out)
        );
        assert!(
            all_output(&out).contains(want),
            "{script} {args:?} names the problem ({want}): {}",
            text(&out)
        );
    }
    let _ = result(&w.run("env-backup", &[]));
    let out = w.run("env-restore", &["parts=mysql,nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        all_output(&out).contains("unknown part nosuch"),
        "{}",
        text(&out)
    );
    assert_eq!(
        w.maintenance_history(),
        ["on", "off"],
        "only the one good backup touched maintenance"
    );
    assert_eq!(w.manifests().len(), 1);
}

#[test]
fn example_jobs_load_in_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    for name in ["env-nightly.yaml", "env-restore.yaml"] {
        let example = common::process::repo().join("examples/jobs").join(name);
        std::fs::copy(&example, jobs.join(name)).unwrap();
    }
    let state = dir.path().join("state");
    let mut d = common::daemon::Daemon::start(&jobs, &state, &[], &[]);
    common::process::wait_for("the job table", std::time::Duration::from_secs(20), || {
        common::daemon::status(&state)["jobs"]
            .as_array()
            .is_some_and(|j| j.len() == 2)
    });
    let status = common::daemon::status(&state);
    d.stop();
    let jobs = status["jobs"].as_array().unwrap();
    for job in jobs {
        assert!(
            job["error"].is_null(),
            "the example loads (schedule, script, params, overrides): {job}"
        );
    }
    assert_eq!(jobs[0]["name"], json!("env-nightly"), "{status}");
    assert!(jobs[0]["next_run"].is_string(), "it is scheduled: {status}");
    assert_eq!(jobs[1]["name"], json!("env-restore"), "{status}");
    assert!(
        jobs[1]["next_run"].is_null(),
        "a manual job is never due: {status}"
    );
    assert!(
        status["load_errors"].as_array().unwrap().is_empty(),
        "{status}"
    );
}
