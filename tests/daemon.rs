//! `rewind daemon` and `rewind jobs`, driven as real processes: schedules, hot reload, no overlap,
//! SIGTERM cancellation, history across restarts, the HTTP API and Slack notifications.

#[path = "common/daemon.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn write(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    // Write then rename, as editors do, so the daemon never sees half a file.
    let tmp = p.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&jobs).unwrap();
    (dir, jobs, state)
}

fn greetings(r: &Value) -> String {
    r["result"]["greetings"][0]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = c.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.text().await.unwrap())
    })
}

#[test]
fn fires_every_second_and_reloads_edits() {
    let (_dir, jobs, state) = setup();
    let job = jobs.join("greet.yaml");
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: bob\n",
    );
    write(
        &jobs.join("bad.yaml"),
        "script: hello\nschedule: \"61 * * * *\"\n",
    );
    write(
        &jobs.join("nosuch.yaml"),
        "script: no-such-script\nschedule: every 1m\n",
    );
    write(
        &jobs.join("badparams.yaml"),
        "script: hello\nschedule: every 1m\nparams:\n  times: many\n",
    );
    let d = Daemon::start(&jobs, &state, &[], &[]);
    wait_for("two runs", Duration::from_secs(10), || {
        runs_of(&state, "greet", "done").len() >= 2
    });
    let r = runs_of(&state, "greet", "done");
    assert_eq!(greetings(&r[0]), "hello, bob");
    // Runs keep to the interval: consecutive scheduled times are at least 1 s apart (exactly, unless the
    // machine stalled), and each started within a second of its time.
    let t0 = chrono::DateTime::parse_from_rfc3339(r[0]["scheduled"].as_str().unwrap()).unwrap();
    let t1 = chrono::DateTime::parse_from_rfc3339(r[1]["scheduled"].as_str().unwrap()).unwrap();
    let gap = (t1 - t0).num_milliseconds();
    assert!(gap >= 1000, "{gap}");
    for run in &r {
        let s = chrono::DateTime::parse_from_rfc3339(run["started"].as_str().unwrap()).unwrap();
        let due = chrono::DateTime::parse_from_rfc3339(run["scheduled"].as_str().unwrap()).unwrap();
        assert!((s - due).num_milliseconds() < 1000, "{run}");
    }

    // Invalid jobs are not scheduled and `rewind jobs` shows why, with file:line.
    let out = text(&rewind(&["jobs", "--state", state.to_str().unwrap()]));
    assert!(out.contains("greet"), "{out}");
    assert!(
        out.contains("bad.yaml:2: bad cron schedule '61 * * * *'"),
        "{out}"
    );
    assert!(
        out.contains("nosuch.yaml:1: no script named 'no-such-script'"),
        "{out}"
    );
    assert!(
        out.contains("badparams.yaml:3: bad params for hello"),
        "{out}"
    );

    // An edit changes what the next run does.
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: carol\n",
    );
    wait_for(
        "a run with the edited params",
        Duration::from_secs(10),
        || {
            runs_of(&state, "greet", "done")
                .iter()
                .any(|r| greetings(r) == "hello, carol")
        },
    );

    // A broken edit keeps the last good version running and is reported with file:line.
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: [dave\n",
    );
    wait_for(
        "the load error in rewind jobs",
        Duration::from_secs(5),
        || text(&rewind(&["jobs", "--state", state.to_str().unwrap()])).contains("greet.yaml:5:"),
    );
    let before = runs_of(&state, "greet", "done").len();
    wait_for(
        "runs after the broken edit",
        Duration::from_secs(10),
        || runs_of(&state, "greet", "done").len() >= before + 2,
    );
    assert_eq!(
        greetings(runs_of(&state, "greet", "done").last().unwrap()),
        "hello, carol"
    );
    assert!(d.stderr().contains("greet.yaml:5:"), "{}", d.stderr());

    // Deleting the file unschedules the job; a new file schedules one.
    std::fs::remove_file(&job).unwrap();
    write(
        &jobs.join("other.yaml"),
        "script: hello\nschedule: \"* * * * * *\"\nparams: {name: eve}\n",
    );
    wait_for("the new job to run", Duration::from_secs(10), || {
        runs_of(&state, "other", "done")
            .iter()
            .any(|r| greetings(r) == "hello, eve")
    });
    // jobs.json is rewritten within 250 ms of a change.
    wait_for(
        "the job table to list only the new job",
        Duration::from_secs(5),
        || {
            let st = status(&state);
            let names: Vec<&str> = st["jobs"]
                .as_array()
                .map(|a| a.iter().filter_map(|j| j["name"].as_str()).collect())
                .unwrap_or_default();
            names == vec!["other"]
        },
    );
}

#[test]
fn lua_job_reloads_when_a_required_module_changes() {
    let (dir, jobs, state) = setup();
    let lib = dir.path().join("lib");
    write(&lib.join("stdlib/greeting.lua"), "return { word = 'hi' }\n");
    write(
        &jobs.join("mod.lua"),
        "local g = require('greeting')\nreturn {\n  schedule = 'every 1s',\n  run = function() return { word = g.word } end,\n}\n",
    );
    let _d = Daemon::start(&jobs, &state, &["--path", lib.to_str().unwrap()], &[]);
    wait_for("a run", Duration::from_secs(10), || {
        runs_of(&state, "mod", "done")
            .iter()
            .any(|r| r["result"]["word"] == "hi")
    });
    write(
        &lib.join("stdlib/greeting.lua"),
        "return { word = 'howdy' }\n",
    );
    wait_for(
        "a run with the edited module",
        Duration::from_secs(10),
        || {
            runs_of(&state, "mod", "done")
                .iter()
                .any(|r| r["result"]["word"] == "howdy")
        },
    );
    // A Lua job with a bad schedule keeps the old version, error at the schedule's line.
    write(
        &jobs.join("mod.lua"),
        "local g = require('greeting')\nreturn {\n  schedule = 'every never',\n  run = function() return { word = g.word } end,\n}\n",
    );
    wait_for("the load error", Duration::from_secs(5), || {
        status(&state)["jobs"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("mod.lua:3: bad interval")
    });
}

#[test]
fn long_run_is_not_overlapped_and_sigterm_cancels() {
    let (dir, jobs, state) = setup();
    let marker = dir.path().join("on_exit_ran");
    write(
        &jobs.join("slow.lua"),
        &format!(
            "local task = require('rewind.task')\nlocal log = require('rewind.log')\nreturn {{\n  schedule = 'every 1s',\n  run = function()\n    task.on_exit(function() local f = io.open({marker:?}, 'a'); f:write('released\\n'); f:close() end)\n    task.spawn(function() log.info('from a spawned task') end)\n    log.info('sleeping')\n    task.sleep(60)\n  end,\n}}\n"
        ),
    );
    let mut d = Daemon::start(&jobs, &state, &["--grace", "1s"], &[]);
    wait_for("a skipped run", Duration::from_secs(10), || {
        !runs_of(&state, "slow", "skipped").is_empty()
    });
    let skipped = runs_of(&state, "slow", "skipped");
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("still going"),
        "{skipped:?}"
    );
    assert_eq!(runs_of(&state, "slow", "running").len(), 1);
    assert!(d.stderr().contains("is still going; this run is skipped"));

    let status = d.stop();
    assert!(status.success(), "{status:?}");
    let cancelled = runs_of(&state, "slow", "cancelled");
    assert_eq!(cancelled.len(), 1, "{:?}", runs(&state));
    assert!(runs_of(&state, "slow", "running").is_empty());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "released\n");
    // The run's log lines are kept by run id.
    let id = cancelled[0]["id"].as_str().unwrap();
    let log = text(&rewind(&[
        "jobs",
        "log",
        id,
        "--state",
        state.to_str().unwrap(),
    ]));
    assert!(log.contains("sleeping"), "{log}");
    assert!(log.contains("from a spawned task"), "{log}");
    assert!(log.contains("cancelled"), "{log}");
}

#[test]
fn history_survives_a_restart_and_missed_runs_run_once() {
    let (_dir, jobs, state) = setup();
    write(
        &jobs.join("greet.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    write(
        &jobs.join("nightly.yaml"),
        "script: hello\nschedule: \"0 3 * * *\"\ntimezone: Europe/Paris\non_missed: run_once\nparams: {name: night}\n",
    );
    let mut d = Daemon::start(&jobs, &state, &[], &[]);
    wait_for("a run", Duration::from_secs(10), || {
        !runs_of(&state, "greet", "done").is_empty()
    });
    d.stop();
    let before: Vec<String> = runs(&state)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    // Pretend the nightly job last fired two days ago: it missed a run and must run once at start-up.
    let mut st = status(&state);
    for j in st["jobs"].as_array_mut().unwrap() {
        if j["name"] == "nightly" {
            j["last_fire"] =
                Value::String((chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339());
        }
    }
    std::fs::write(state.join("jobs.json"), serde_json::to_vec(&st).unwrap()).unwrap();

    let _d = Daemon::start(&jobs, &state, &[], &[]);
    let out = text(&rewind(&[
        "jobs",
        "runs",
        "--state",
        state.to_str().unwrap(),
        "--limit",
        "1000",
    ]));
    for id in &before {
        assert!(out.contains(id.as_str()), "{id} missing from {out}");
    }
    wait_for("the missed run", Duration::from_secs(10), || {
        runs_of(&state, "nightly", "done")
            .iter()
            .any(|r| r["trigger"] == "missed")
    });
    let out = text(&rewind(&["jobs", "--state", state.to_str().unwrap()]));
    assert!(out.contains("0 3 * * * Europe/Paris"), "{out}");
    // `rewind jobs run` goes through the daemon's socket, with params.
    let o = rewind(&[
        "jobs",
        "run",
        "greet",
        "name=zed",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("the manual run", Duration::from_secs(10), || {
        runs_of(&state, "greet", "done")
            .iter()
            .any(|r| r["trigger"] == "manual" && greetings(r) == "hello, zed")
    });
    let o = rewind(&["jobs", "run", "nope", "--state", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no job named 'nope'"));
}

#[test]
fn http_api_needs_token_and_allowlist_and_serves_metrics() {
    let (dir, jobs, state) = setup();
    write(
        &jobs.join("greet.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    write(
        &jobs.join("broken.yaml"),
        "script: hello\nschedule: sometimes\n",
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let _d = Daemon::start(
        &jobs,
        &state,
        &[
            "--listen",
            &listen,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &[],
    );
    wait_for("the listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&listen).is_ok()
    });
    assert_eq!(http("GET", &format!("{base}/healthz"), None, None).0, 200);
    assert_eq!(http("GET", &format!("{base}/api/jobs"), None, None).0, 401);
    assert_eq!(
        http("GET", &format!("{base}/metrics"), Some("wrong"), None).0,
        401
    );
    let (s, body) = http(
        "GET",
        &format!("{base}/api/jobs"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jobs"][0]["name"], "greet");
    assert!(
        v["load_errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("broken.yaml:2:")
    );

    let (s, body) = http(
        "POST",
        &format!("{base}/api/jobs/greet/run"),
        Some("s3cret-token"),
        Some(serde_json::json!({"params": {"name": "api", "times": 2}})),
    );
    assert_eq!(s, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the API run", Duration::from_secs(10), || {
        runs_of(&state, "greet", "done")
            .iter()
            .any(|r| r["id"] == id.as_str())
    });
    let (s, body) = http(
        "GET",
        &format!("{base}/api/runs/{id}"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["result"]["greetings"][1],
        "hello, api"
    );
    let (s, log) = http(
        "GET",
        &format!("{base}/api/runs/{id}/log"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(s, 200);
    assert!(log.contains("greeted name=api times=2"), "{log}");
    let (s, body) = http(
        "GET",
        &format!("{base}/api/runs?job=greet&limit=5"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(s, 200);
    assert!(
        !serde_json::from_str::<Value>(&body).unwrap()["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        http(
            "POST",
            &format!("{base}/api/jobs/nope/run"),
            Some("s3cret-token"),
            None
        )
        .0,
        404
    );

    let (s, metrics) = http(
        "GET",
        &format!("{base}/metrics"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(s, 200);
    let lines = metrics.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let find = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
    };
    let done = find("rewind_runs_total", Some(("status", "done"))).expect("runs_total");
    assert!(matches!(done.value, prometheus_parse::Value::Counter(n) if n >= 1.0));
    assert!(
        find(
            "rewind_last_success_timestamp_seconds",
            Some(("job", "greet"))
        )
        .is_some()
    );
    assert!(find("rewind_run_duration_seconds", Some(("job", "greet"))).is_some());
    assert!(matches!(
        find("rewind_job_load_errors", None).unwrap().value,
        prometheus_parse::Value::Gauge(n) if n == 1.0
    ));

    // A daemon that allows only 10.0.0.0/8 refuses 127.0.0.1 even with the right token.
    let state2 = dir.path().join("state2");
    let port2 = free_port();
    let listen2 = format!("127.0.0.1:{port2}");
    let _d2 = Daemon::start(
        &jobs,
        &state2,
        &["--listen", &listen2, "--allow", "10.0.0.0/8"],
        &[("REWIND_DAEMON_TOKEN", "s3cret-token")],
    );
    wait_for("the listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&listen2).is_ok()
    });
    assert_eq!(
        http(
            "GET",
            &format!("http://{listen2}/api/jobs"),
            Some("s3cret-token"),
            None
        )
        .0,
        403
    );
    assert_eq!(
        http("GET", &format!("http://{listen2}/healthz"), None, None).0,
        200
    );

    // --listen without a token is bad usage.
    let o = rewind(&[
        "daemon",
        "--jobs",
        jobs.to_str().unwrap(),
        "--state",
        dir.path().join("s3").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--listen needs an API token"));
}

#[test]
fn slack_on_failure_posts_and_reports_slack_errors() {
    let (dir, jobs, state) = setup();
    let slack = SlackFake::start(dir.path());
    let lib = dir.path().join("lib");
    write(
        &lib.join("scripts/flaky.lua"),
        "return {\n  description = 'fails',\n  params = {},\n  run = function()\n    error('disk on fire')\n  end,\n}\n",
    );
    write(
        &jobs.join("flaky.yaml"),
        "script: flaky\nschedule: every 1s\non_failure:\n  slack: {webhook_env: SLACK_OK}\n",
    );
    write(
        &jobs.join("stale.yaml"),
        "script: flaky\nschedule: every 1s\non_failure:\n  slack: {webhook_env: SLACK_GONE}\n",
    );
    write(
        &jobs.join("luajob.lua"),
        "local notify = require('rewind.notify')\nlocal env = require('rewind.env')\nreturn {\n  schedule = 'every 1s',\n  run = function() return 'fine' end,\n  on_success = function(info) notify.slack(env.get('SLACK_OK'), 'lua job ' .. info.job .. ' ' .. info.status) end,\n}\n",
    );
    let ok_hook = format!("{}/services/T1/B1/okhooksecret", slack.url);
    let gone_hook = format!("{}/services/T1/B_GONE/gonehooksecret", slack.url);
    let d = Daemon::start(
        &jobs,
        &state,
        &["--path", lib.to_str().unwrap()],
        &[("SLACK_OK", &ok_hook), ("SLACK_GONE", &gone_hook)],
    );
    wait_for("Slack messages", Duration::from_secs(15), || {
        let m = slack.messages();
        m.iter().any(|m| {
            m["message"]["text"]
                .as_str()
                .unwrap_or("")
                .contains("disk on fire")
        }) && m
            .iter()
            .any(|m| m["message"]["text"] == "lua job luajob done")
    });
    let m = slack.messages();
    let fail = m
        .iter()
        .find(|m| {
            m["message"]["text"]
                .as_str()
                .unwrap()
                .contains("disk on fire")
        })
        .unwrap();
    let t = fail["message"]["text"].as_str().unwrap();
    assert!(t.contains("job flaky failed"), "{t}");
    assert!(t.contains("flaky.lua:5:"), "{t}");

    wait_for("the stale webhook's error", Duration::from_secs(15), || {
        runs_of(&state, "stale", "failed")
            .iter()
            .any(|r| r["notify_error"].is_string())
    });
    let r = runs_of(&state, "stale", "failed")
        .into_iter()
        .find(|r| r["notify_error"].is_string())
        .unwrap();
    let e = r["notify_error"].as_str().unwrap();
    assert!(e.contains("404") && e.contains("channel_not_found"), "{e}");
    assert!(!e.contains("gonehooksecret"), "{e}");
    let log = std::fs::read_to_string(
        state
            .join("runs")
            .join(format!("{}.log", r["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        log.contains("channel_not_found") && !log.contains("gonehooksecret"),
        "{log}"
    );
    assert!(!d.stderr().contains("gonehooksecret"));
}

#[test]
fn backup_dir_job_snapshots_and_sigterm_releases_a_real_lock() {
    let (dir, jobs, state) = setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "alpha").unwrap();
    // A socket: tar skips it with a warning, logged from a blocking thread, which the run's log must keep.
    let _sock = std::os::unix::net::UnixListener::bind(data.join("app.sock")).unwrap();
    let store = dir.path().join("store");
    // A YAML job running the bundled backup-dir every second into a local store.
    write(
        &jobs.join("nightly.yaml"),
        &format!(
            "script: backup-dir\nschedule: every 1s\nparams:\n  from: {}\n  store: {}\n",
            data.display(),
            store.display()
        ),
    );
    // A Lua job that holds a real rewind.lock in the same store while it sleeps.
    write(
        &jobs.join("holder.lua"),
        &format!(
            "local store = require('rewind.store')\nlocal lock = require('rewind.lock')\nlocal task = require('rewind.task')\nreturn {{\n  schedule = 'every 1s',\n  run = function()\n    local l = lock.acquire(store.open({:?}), 'held', {{ ttl = '2m', prefix = 'jobs' }})\n    task.sleep(60)\n    l:release()\n  end,\n}}\n",
            store.display().to_string()
        ),
    );
    let mut d = Daemon::start(&jobs, &state, &["--grace", "1s"], &[]);
    let lock_file = store.join("jobs/locks/held.json");
    wait_for(
        "a backup-dir run and a held lock",
        Duration::from_secs(20),
        || !runs_of(&state, "nightly", "done").is_empty() && lock_file.exists(),
    );
    // The scheduled backup wrote a complete snapshot: a manifest beside its tar.zst.
    let done = &runs_of(&state, "nightly", "done")[0];
    let snap = done["result"]["snapshot"].as_str().unwrap().to_string();
    let day = &snap[..8];
    let manifests: Vec<_> = std::fs::read_dir(store.join("dirs/data").join(day))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("manifest_"))
        .collect();
    assert!(!manifests.is_empty(), "no manifest for {snap}");
    let log = std::fs::read_to_string(
        state
            .join("runs")
            .join(format!("{}.log", done["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        log.contains("app.sock: not a file, directory or symlink"),
        "the run log misses tar's warning: {log}"
    );

    let status = d.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        runs_of(&state, "holder", "cancelled").len(),
        1,
        "{:?}",
        runs(&state)
    );
    assert!(
        !lock_file.exists(),
        "SIGTERM left the lock {} behind",
        lock_file.display()
    );
}
