//! The HTTP API (token, allowlist, metrics) and Slack notifications.

use super::*;
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
    let samples = common::metrics::parse(&metrics);
    let find = |name: &str, label: Option<(&str, &str)>| {
        samples.iter().find(|s| {
            s.name == name
                && label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v))
        })
    };
    let done = find("rewind_runs_total", Some(("status", "done"))).expect("runs_total");
    assert!(done.kind == "counter" && done.value >= 1.0, "{done:?}");
    assert!(
        find(
            "rewind_last_success_timestamp_seconds",
            Some(("job", "greet"))
        )
        .is_some()
    );
    let count = find("rewind_run_duration_seconds_count", Some(("job", "greet")));
    assert!(
        count.is_some_and(|c| c.kind == "histogram" && c.value >= 1.0),
        "{count:?}"
    );
    let load_errors = find("rewind_job_load_errors", None).unwrap();
    assert!(
        load_errors.kind == "gauge" && load_errors.value == 1.0,
        "{load_errors:?}"
    );

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
fn control_socket_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, jobs, state) = setup();
    let _d = Daemon::start(&jobs, &state, &[], &[]);
    let mode = std::fs::metadata(state.join("daemon.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
}
