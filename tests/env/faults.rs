//! What goes wrong around env-backup / env-restore: a second job while one runs (all four cases),
//! a part failing mid-backup and mid-restore, Ctrl-C, and secrets in failures.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::json;

use crate::common::process::{text, wait_for};
use crate::world::{World, assert_no_secrets, result};

/// Starts `script` with a maintenance switch that holds it until `release` exists (a shell command),
/// and waits until it is inside: it holds the prefix's lease then.
fn start_held(w: &World, script: &str, args: &[&str]) -> (Child, std::path::PathBuf) {
    let n = crate::common::process::unique();
    let started = w.path(&format!("started-{n}"));
    let release = w.path(&format!("release-{n}"));
    let extra = format!(
        "maintenance:\n  on: \"touch {} && while [ ! -e {} ]; do sleep 0.05; done\"\n  off: \"true\"\n",
        started.display(),
        release.display()
    );
    // The params file's own maintenance section is replaced: strip it and append the held one.
    let pf = w.params_file("");
    let yaml = std::fs::read_to_string(&pf).unwrap();
    let cut = yaml.find("maintenance:").unwrap();
    std::fs::write(&pf, format!("{}{extra}", &yaml[..cut])).unwrap();
    let child = w.spawn(script, &pf, args);
    wait_for(
        &format!("{script} to be under way"),
        Duration::from_secs(60),
        || started.exists(),
    );
    (child, release)
}

/// Lets a held job go on and waits for it.
fn finish(child: Child, release: &Path) -> std::process::Output {
    std::fs::write(release, "").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_backup_or_restore_is_refused_while_one_runs_and_changes_nothing() {
    let w = World::start();
    result(&w.run("env-backup", &[]));
    for (first, second) in [
        ("env-backup", "env-backup"),
        ("env-backup", "env-restore"),
        ("env-restore", "env-backup"),
        ("env-restore", "env-restore"),
    ] {
        let history = w.maintenance_history();
        let manifests = w.manifests().len();
        let quick: &[&str] = if first == "env-restore" {
            &["safety_backup=false", "force=true"]
        } else {
            &[]
        };
        let (child, release) = start_held(&w, first, quick);
        let dbs = w.databases();
        let out = w.run(second, &[]);
        assert!(
            !out.status.success(),
            "{second} while {first} runs must be refused: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            err.contains(first),
            "{second} names the running job {first}: {err}"
        );
        assert!(err.contains(&hostname()), "and its host: {err}");
        assert!(err.contains("since"), "and since when: {err}");
        assert_eq!(
            w.maintenance_history(),
            history,
            "{second} did not touch maintenance"
        );
        assert_eq!(w.databases(), dbs, "{second} changed no database");
        let out = finish(child, &release);
        assert!(
            out.status.success(),
            "{first} itself finishes: {}",
            text(&out)
        );
        let expected = manifests + usize::from(first == "env-backup");
        assert_eq!(w.manifests().len(), expected, "{second} wrote no snapshot");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_part_failing_mid_backup_leaves_no_manifest_and_maintenance_off() {
    let w = World::start();
    // Firebase is the last part: config, deployment, MySQL and Elasticsearch are written before it fails.
    w.fail(w.fb_port, "GET", ".json", 500, false, 10);
    let out = w.run("env-backup", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("backing up firebase failed, no snapshot was written"),
        "{err}"
    );
    assert!(
        err.contains("maintenance: on for") && err.contains("turned off again"),
        "{err}"
    );
    assert_eq!(w.maintenance_history(), ["on", "off"]);
    assert!(w.manifests().is_empty());
    let left: Vec<_> = crate::common::process::files(&w.store())
        .into_iter()
        .filter(|f| !f.to_string_lossy().contains("/locks/"))
        .collect();
    assert!(
        left.is_empty(),
        "the aborted snapshot's objects are removed: {left:?}"
    );
    assert_no_secrets(
        &format!("{}{err}", String::from_utf8_lossy(&out.stdout)),
        "the failure's output",
    );
}

#[test]
fn a_part_failing_mid_restore_names_what_was_restored_and_the_safety_snapshot_undoes_it() {
    let w = World::start();
    let id = w.backup();
    // Change the environment; this is the state the safety snapshot must bring back.
    w.maria
        .sql(Some("athena-server"), "delete from orders where id > 10");
    std::fs::write(w.config_dir().join("app.env"), "changed after the backup\n").unwrap();
    let changed_dbs = w.databases();
    let changed_config = w.config_tree();
    // Elasticsearch's restore is applied but its answer is lost: config, deployment and MySQL are restored.
    w.fail(w.es_port, "POST", "/_restore", 500, true, 1);
    let out = w.run("env-restore", &[&format!("snapshot={id}")]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("restoring elasticsearch failed"), "{err}");
    assert!(
        err.contains("restored before it: config, deployment, mysql"),
        "{err}"
    );
    assert!(err.contains("not restored: firebase"), "{err}");
    let safety = err
        .split("is safety snapshot ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("the error names the safety snapshot: {err}"))
        .trim()
        .to_string();
    assert_eq!(
        w.maintenance_history(),
        ["on", "off", "on", "off"],
        "maintenance is off again"
    );
    assert_ne!(
        w.databases(),
        changed_dbs,
        "MySQL was restored before the failure"
    );

    w.reset_faults();
    let out = w.run(
        "env-restore",
        &[
            &format!("snapshot={safety}"),
            "safety_backup=false",
            "force=true",
        ],
    );
    let r = result(&out);
    assert_eq!(r["snapshot"], json!(safety));
    assert_eq!(
        w.databases(),
        changed_dbs,
        "the safety snapshot brings the databases back"
    );
    assert_eq!(w.config_tree(), changed_config, "and the configuration");
}

#[test]
fn ctrl_c_or_sigterm_during_a_backup_turns_maintenance_off_and_stops_at_once() {
    let w = World::start();
    // The images command runs inside the maintenance window and takes its time.
    let pf = w.params_file("");
    let yaml = std::fs::read_to_string(&pf).unwrap().replace(
        &format!(
            "images:\n  compose_file: {}/docker-compose.yml\n",
            w.git_dir().display()
        ),
        "images:\n  command: \"sleep 60; echo app:1\"\n",
    );
    std::fs::write(&pf, yaml).unwrap();
    for (sig, name) in [(libc::SIGINT, "Ctrl-C"), (libc::SIGTERM, "SIGTERM")] {
        let before = w.maintenance_history().len();
        let child = w.spawn("env-backup", &pf, &[]);
        wait_for("maintenance on", Duration::from_secs(60), || {
            w.maintenance_history().len() == before + 1
        });
        std::thread::sleep(Duration::from_millis(300));
        let t = std::time::Instant::now();
        unsafe { libc::kill(child.id() as i32, sig) };
        // Waiting for the output also waits for the images command's `sleep`, unless it was stopped too.
        let out = child.wait_with_output().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{name}: the run and its programs stop at once"
        );
        assert!(!out.status.success(), "{}", text(&out));
        assert_eq!(
            w.maintenance_history()[before..],
            ["on", "off"],
            "{name} turned maintenance off: {}",
            text(&out)
        );
    }
    assert!(
        w.manifests().is_empty(),
        "no snapshot from an interrupted backup"
    );
}

#[test]
fn wrong_credentials_fail_clearly_without_showing_them() {
    let w = World::start();
    let pf = w.params_file("");
    let out = w
        .command("env-backup", &pf, &[])
        .env("FIREBASE_SECRET", "wrong-Fb-Secret-0000")
        .env("MYSQL_PWD", "wrong-Db-Pass-1111")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("Access denied"),
        "MySQL's refusal is shown: {all}"
    );
    assert!(
        !all.contains("wrong-Db-Pass-1111") && !all.contains("wrong-Fb-Secret-0000"),
        "{all}"
    );
    assert_eq!(w.maintenance_history(), ["on", "off"]);
    let out = w
        .command("env-backup", &pf, &["mysql.databases=athena-server"])
        .env("FIREBASE_SECRET", "wrong-Fb-Secret-0000")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("Firebase") && all.contains("401"),
        "Firebase's refusal is shown: {all}"
    );
    assert!(!all.contains("wrong-Fb-Secret-0000"), "{all}");
    assert_no_secrets(&w.everything_written(), "the store");
}

#[test]
fn verbose_logs_of_a_backup_and_a_restore_never_show_a_secret() {
    let w = World::start();
    let pf = w.params_file("");
    for format in ["human", "json"] {
        for (script, args) in [
            ("env-backup", &[][..]),
            ("env-restore", &["parts=mysql,firebase"][..]),
        ] {
            let out = w
                .command_with(&["-vv", "--log-format", format], script, &pf, args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {}", text(&out));
            assert_no_secrets(&text(&out), &format!("{script} at -vv ({format} logs)"));
        }
    }
    assert_no_secrets(&w.everything_written(), "the store");
}

#[test]
fn an_off_call_that_fails_is_said_loudly_and_the_environment_stays_marked() {
    let w = World::start();
    // The backup's work succeeds; turning maintenance off fails (every retry).
    w.fail(w.maint_port, "POST", "/maintenance/off", 500, false, 10);
    let out = w.run("env-backup", &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("maintenance could not be turned off (turn it off by hand)"),
        "{err}"
    );
    assert_eq!(
        w.maintenance_history(),
        ["on"],
        "the switch really is still on: the error is the operator's only warning"
    );
    // A part failing and the off call failing: the error names both.
    w.reset_faults();
    w.fail(w.fb_port, "GET", ".json", 500, false, 10);
    w.fail(w.maint_port, "POST", "/maintenance/off", 500, false, 10);
    let out = w.run("env-backup", &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("backing up firebase failed") && err.contains("NOT turned off"),
        "{err}"
    );
}
