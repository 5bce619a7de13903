//! A canary secret given to every bundled procedure, as the value of its secret params and as the
//! environment variables that carry credentials (AWS_SECRET_ACCESS_KEY, TD_API_KEY, PGPASSWORD, a Slack
//! webhook URL, a `--secrets` file), must appear nowhere: not in a log line (at -vv, human and JSON), a
//! result, a manifest or any other object written, a daemon run record or run log, a metric, or an error.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::process::{files, free_port, rewind, text};

/// Shaped like a TD API key so that every service accepts it as a credential.
const CANARY: &str = "1/c4nary5ecret0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c";

/// Runs rewind with `args` twice: `-vv` human logs and `-vv --log-format json`; asserts the canary is in
/// neither and returns the human run's output.
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    run_in(&["human", "json"], args, env)
}

fn run_in(formats: &[&str], args: &[&str], env: &[(String, String)]) -> Output {
    let mut last = None;
    for format in formats {
        let mut c = rewind();
        c.args(["-vv", "--log-format", format]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run rewind");
        assert_clean(&format!("rewind {args:?} ({format} logs)"), &text(&out));
        last = Some(out);
    }
    last.unwrap()
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY) && !text.contains(&CANARY[2..]),
        "the canary leaked into {what}:\n{text}"
    );
}

/// No file under `dir` holds the canary.
fn assert_tree_clean(dir: &Path) {
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes
                .windows(CANARY.len() - 2)
                .any(|w| w == &CANARY.as_bytes()[2..]),
            "the canary leaked into {}",
            f.display()
        );
    }
}

fn owned(env: &[(&str, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `env` plus one variable.
fn with(env: &[(String, String)], k: &str, v: &str) -> Vec<(String, String)> {
    let mut e = env.to_vec();
    e.push((k.to_string(), v.to_string()));
    e
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(out));
}

#[test]
fn directory_procedures_on_s3_and_local_never_show_it() {
    let s3 = common::s3::S3Server::start();
    s3.create_bucket("canary");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "data").unwrap();
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, format!("AWS_SECRET_ACCESS_KEY={CANARY}\n")).unwrap();
    let mut env = owned(&s3.env());
    env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    let with_env = with(&env, "AWS_SECRET_ACCESS_KEY", CANARY);
    let sec = secrets.to_str().unwrap();
    let from = format!("from={}", src.display());
    let to = format!("to={}", dir.path().join("restored").display());
    for store in ["s3://canary/backups", "local"] {
        let st = if store == "local" {
            format!("store={}", dir.path().join("local").display())
        } else {
            format!("store={store}")
        };
        // The credential from the environment, and from a --secrets file.
        ok(&run(
            &["run", "backup-dir", &from, &st, "--json"],
            &with_env,
        ));
        ok(&run(
            &["run", "--secrets", sec, "backup-dir", &from, &st],
            &env,
        ));
        ok(&run(
            &["run", "snapshots", &st, "prefix=dirs/src", "--json"],
            &with_env,
        ));
        ok(&run(
            &["run", "verify", &st, "prefix=dirs/src", "snapshot=all"],
            &with_env,
        ));
        ok(&run(
            &[
                "run",
                "restore-dir",
                &st,
                "prefix=dirs/src",
                &to,
                "overwrite=true",
            ],
            &with_env,
        ));
        ok(&run(
            &[
                "run",
                "prune",
                &st,
                "prefix=dirs/src",
                "keep_last=1",
                "--json",
            ],
            &with_env,
        ));
        // Error paths: a snapshot that does not exist, and a store that cannot be reached.
        let out = run(
            &[
                "run",
                "restore-dir",
                &st,
                "prefix=dirs/src",
                "snapshot=19700101-000000",
                &to,
            ],
            &with_env,
        );
        assert!(!out.status.success());
    }
    let mut down = with_env.clone();
    down.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let down = with(
        &down,
        "AWS_ENDPOINT_URL",
        &format!("http://127.0.0.1:{}", free_port()),
    );
    let down = with(&down, "AWS_MAX_ATTEMPTS", "1");
    let out = run(&["run", "backup-dir", &from, "store=s3://canary/x"], &down);
    assert!(!out.status.success(), "{}", text(&out));
    // Nothing the procedures wrote holds it: every object in the bucket, every file of the local store.
    for key in s3.list_keys("canary", "") {
        let (status, body) = s3.owner_request("GET", &format!("/canary/{key}"), None);
        assert_eq!(status, 200, "GET {key}: {body}");
        assert_clean(&format!("s3 object {key}"), &body);
    }
    assert_tree_clean(&dir.path().join("local"));
}

#[test]
fn treasure_data_procedures_never_show_it() {
    let fake = common::td::Fake::start(&["--seed", "roundtrip", "--apikey", CANARY]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ep = format!("endpoint={}", fake.url());
    let st = format!("store={}", store.display());
    let src = format!("src_ms_id={}", fake.seed["audience_id"].as_str().unwrap());
    let key = format!("apikey={CANARY}");
    let env = with(&[], "TD_API_KEY", CANARY);
    // As a param, and from the environment.
    ok(&run(
        &["run", "td-ps-backup", &src, &ep, &st, &key, "--json"],
        &[],
    ));
    ok(&run(
        &["run", "td-ps-backup", &src, &ep, &st, "--json"],
        &env,
    ));
    let ms = "ms_name=canary-copy";
    ok(&run(
        &[
            "run",
            "td-ps-restore",
            &src,
            &ep,
            &st,
            ms,
            "poll=0.05s",
            "--json",
        ],
        &env,
    ));
    // A key the server refuses is named as refused, never shown.
    let wrong = common::td::Fake::start(&["--seed", "roundtrip"]);
    let ep2 = format!("endpoint={}", wrong.url());
    let out = run(&["run", "td-ps-backup", &src, &ep2, &st, &key], &[]);
    assert!(!out.status.success());
    assert_tree_clean(&store);
}

#[test]
fn druid_procedures_never_show_it() {
    let pg = common::pg::Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep");
    common::pg::druid_fixture(&pg, "druid", &deep, "/opt/shared", 2);
    // From here on the database user's password is the canary.
    pg.psql(
        "postgres",
        &format!("ALTER USER {} PASSWORD '{CANARY}'", common::pg::USER),
    );
    let store = dir.path().join("store");
    let st = format!("store={}", store.display());
    let deep_arg = format!("deep_storage={}", deep.display());
    let env = with(&pg.env_no_password(), "PGDATABASE", "druid");
    let with_pw = with(&env, "PGPASSWORD", CANARY);
    ok(&run(
        &["run", "druid-backup", &st, &deep_arg, "--json"],
        &with_pw,
    ));
    let pw = format!("pg_password={CANARY}");
    ok(&run(&["run", "druid-backup", &st, &deep_arg, &pw], &env));
    for format in ["human", "json"] {
        let db = format!("pg_database=copy_{format}");
        let to = format!("deep_storage={}", dir.path().join(format).display());
        let map = format!("path_map=/opt/shared={}", dir.path().join(format).display());
        ok(&run_in(
            &[format],
            &["run", "druid-restore", &st, &to, &map, &db, &pw, "--json"],
            &env,
        ));
    }
    // A wrong password: the error names the failure, not the password.
    let out = run(
        &[
            "run",
            "druid-backup",
            &st,
            &deep_arg,
            "pg_password=not-the-canary-but-wrong",
        ],
        &env,
    );
    assert!(!out.status.success());
    assert_tree_clean(&store);
}

#[test]
fn daemon_records_logs_and_metrics_never_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&jobs).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "data").unwrap();
    let slack = common::daemon::SlackFake::start(dir.path());
    // One job that succeeds with the canary in its environment, one that fails and notifies Slack at a
    // webhook URL that holds the canary (the fake refuses that path: the refusal is recorded, the URL not).
    std::fs::write(
        jobs.join("ok.yaml"),
        format!(
            "script: backup-dir\nschedule: every 1s\nparams:\n  from: {}\n  store: {}\n",
            src.display(),
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    // The TD server refuses the canary (it expects another key): the run fails at once.
    let td = common::td::Fake::start(&["--seed", "roundtrip"]);
    std::fs::write(
        jobs.join("bad.yaml"),
        format!(
            "script: td-ps-backup\nschedule: every 1s\nparams:\n  src_ms_id: '{}'\n  endpoint: {}\n  store: {}\n\
             on_failure:\n  slack:\n    webhook_env: CANARY_WEBHOOK\n",
            td.seed["audience_id"].as_str().unwrap(),
            td.url(),
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let webhook = format!("{}/hooks/{CANARY}", slack.url);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "daemon-token-1234").unwrap();
    let d = common::daemon::Daemon::start(
        &jobs,
        &state,
        &[
            "-vv",
            "--listen",
            &listen,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &[
            ("TD_API_KEY", CANARY),
            ("CANARY_WEBHOOK", &webhook),
            ("AWS_SECRET_ACCESS_KEY", CANARY),
        ],
    );
    let seen = || {
        let runs = common::daemon::runs(&state);
        runs.iter()
            .any(|r| r["job"] == "ok" && r["status"] == "done")
            && runs.iter().any(|r| {
                r["job"] == "bad" && r["status"] == "failed" && !r["notify_error"].is_null()
            })
    };
    let t0 = std::time::Instant::now();
    while !seen() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no run of each job with a notification: runs {:?}, daemon log:\n{}",
            common::daemon::runs(&state).first(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = common::http::request(
        "GET",
        &format!("http://{listen}/metrics"),
        &[("Authorization", "Bearer daemon-token-1234")],
        None,
    );
    assert_eq!(metrics.status, 200);
    assert_clean("/metrics", &metrics.body);
    let jobs_json = common::http::request(
        "GET",
        &format!("http://{listen}/api/runs"),
        &[("Authorization", "Bearer daemon-token-1234")],
        None,
    );
    assert_clean("/api/runs", &jobs_json.body);
    drop(d);
    assert_tree_clean(&state);
    assert_tree_clean(&dir.path().join("store"));
    assert_clean(
        "the daemon's log",
        &std::fs::read_to_string(state.with_extension("log0")).unwrap_or_default(),
    );
    for f in files(dir.path()) {
        if f.extension()
            .is_some_and(|x| x.to_string_lossy().starts_with("log"))
        {
            assert_clean(
                &f.display().to_string(),
                &std::fs::read_to_string(&f).unwrap_or_default(),
            );
        }
    }
}

#[test]
fn topic_archive_never_shows_it() {
    let k = common::kafka::MockKafka::start(&[("events", 2)]);
    common::kafka::kcat_produce(&k.brokers, "events", &common::kafka::events(20, 50));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = format!(r#"config={{"sasl.password": "{CANARY}", "client.id": "canary-test"}}"#);
    for format in ["human", "json"] {
        let out = run_in(
            &[format],
            &[
                "run",
                "topic-archive",
                &format!("brokers={}", k.brokers),
                "topics=events",
                &format!("store={}", store.join(format).display()),
                &format!("group=canary-{format}"),
                "once=true",
                &config,
                "--json",
            ],
            &[],
        );
        // librdkafka ignores a SASL password on a plaintext connection: the archive still works.
        ok(&out);
        let lines: usize = files(&store.join(format))
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".jsonl.gz"))
            .map(|f| common::kafka::gunzip_lines(f).len())
            .sum();
        assert_eq!(lines, 20, "every event archived");
    }
    assert_tree_clean(&store);
}
