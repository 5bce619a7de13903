//! event-backup / event-restore (source document 004) against moto's S3 server and the fake event
//! dispatcher of api-notes.md: what is stored (every event once, every distinct stream uploaded once),
//! batches by size and by time, the failure cache and the ordered shutdown, restarts and kills.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod restore;
mod world;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use common::process::text;
use world::{World, assert_in_order, fail, ids, no_faults, referenced_streams, result};

const PAIRS: &str = "web/click,web/view,app/open";

#[test]
fn three_pairs_store_every_event_once_and_every_distinct_stream_once() {
    let w = World::start();
    w.seed(
        json!({"pairs": [["web", "click"], ["web", "view"], ["app", "open"]], "events": 600,
                  "streams": 200, "min_size": 100, "max_size": 70000, "seed": 7}),
    );
    let out = w.backup("b1", PAIRS, &["batch=250"]);
    let r = result(&out);

    let stored = w.stored_events("b1");
    let mut distinct = BTreeSet::new();
    let mut refs = 0;
    for pair in PAIRS.split(',') {
        let source = w.source_events(pair);
        assert_eq!(
            stored[pair], source,
            "{pair}: every event stored once, in order, as served"
        );
        assert_eq!(r["pairs"][pair]["events"], 600);
        let (set, n) = referenced_streams(pair, &source);
        distinct.extend(set);
        refs += n;
    }
    assert!(
        refs - distinct.len() >= refs * 2 / 3,
        "the data has 2/3 repeats: {refs} refs, {} distinct",
        distinct.len()
    );
    assert_eq!(
        w.stored_streams("b1"),
        distinct,
        "every distinct stream is stored, nothing else"
    );
    let puts = w.stream_puts("b1");
    assert_eq!(puts.len(), distinct.len(), "{puts:?}");
    assert!(
        puts.values().all(|n| *n == 1),
        "each stream uploaded exactly once: {puts:?}"
    );
    assert_eq!(r["streams"]["downloaded"], distinct.len());
    assert_eq!(r["streams"]["deduplicated"], refs - distinct.len());
    for id in distinct.iter().take(40) {
        w.stream_bytes("b1", id); // decompresses to bytes whose sha256 is the name
    }
    // 600 events in batches of 250: 250, 250, 100 per pair.
    for (pair, batches) in w.stored_batches("b1") {
        let sizes: Vec<usize> = batches.iter().map(|(_, e)| e.len()).collect();
        assert_eq!(sizes, vec![250, 250, 100], "{pair}");
    }

    // A second run: the cursors say everything is done; no stream is uploaded again.
    let again = result(&w.backup("b1", PAIRS, &["batch=250"]));
    assert_eq!(again["events"], 0, "{again}");
    assert_eq!(w.stream_puts("b1"), puts, "no stream PUT again");

    // New events arrive, and the source restarts and serves its last 5 again: only the new ones are added.
    w.source.json(
        "POST",
        "/_fake/append",
        Some(json!({"source": "web", "event_type": "click", "count": 30})),
    );
    w.source.json(
        "POST",
        "/_fake/restart",
        Some(json!({"source": "web", "event_type": "click", "replay": 5})),
    );
    let third = result(&w.backup("b1", PAIRS, &["batch=250"]));
    assert_eq!(third["pairs"]["web/click"]["events"], 30, "{third}");
    let stored = w.stored_events("b1");
    assert_eq!(
        ids(&stored["web/click"]),
        ids(&w.source_events("web/click")),
        "still exactly once"
    );
}

#[test]
fn a_batch_closes_at_its_size_and_at_max_wait_with_fewer() {
    let w = World::start();
    w.seed(json!({"pairs": [["web", "click"]], "events": 2300, "streams": 20, "seed": 3}));
    let started = Instant::now();
    let mut args = w.backup_args(
        "b2",
        "web/click",
        &["batch=1000", "max_wait=4s", "poll=0.2s"],
    );
    args.retain(|a| a != "once=true");
    let child = common::process::Killed(
        w.command("event-backup", &args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let sizes = |w: &World| -> Vec<usize> {
        w.stored_batches("b2")
            .get("web/click")
            .map(|b| b.iter().map(|(_, e)| e.len()).collect())
            .unwrap_or_default()
    };
    common::process::wait_for("two full batches", Duration::from_secs(30), || {
        sizes(&w).len() >= 2
    });
    assert_eq!(
        sizes(&w),
        vec![1000, 1000],
        "full batches close at once, without waiting for max_wait"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The remaining 300 wait for max_wait (4 s after they were found), then close as a small batch.
    common::process::wait_for("the max_wait batch", Duration::from_secs(30), || {
        sizes(&w).len() >= 3
    });
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the short batch waited for max_wait"
    );
    assert_eq!(sizes(&w), vec![1000, 1000, 300]);
    // Later events form their own batch, again after max_wait.
    let appended = Instant::now();
    w.source.json(
        "POST",
        "/_fake/append",
        Some(json!({"source": "web", "event_type": "click", "count": 7})),
    );
    common::process::wait_for("the late batch", Duration::from_secs(30), || {
        sizes(&w).len() >= 4
    });
    assert!(
        appended.elapsed() >= Duration::from_millis(3800),
        "{:?}",
        appended.elapsed()
    );
    assert_eq!(sizes(&w), vec![1000, 1000, 300, 7]);
    // SIGTERM: the ordered shutdown, exit 0.
    let out = child.signal_and_wait(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_in_order(
        &err,
        &[
            "stopping:",
            "event workers stopped",
            "hit cache stopped",
            "stream workers stopped",
        ],
    );
    assert_eq!(
        ids(&w.stored_events("b2")["web/click"]),
        ids(&w.source_events("web/click"))
    );
}

#[test]
fn five_stream_failures_in_a_row_shut_down_in_order_and_the_next_run_backs_them_up() {
    let w = World::start();
    w.seed(
        json!({"pairs": [["web", "click"], ["app", "open"]], "events": 400, "streams": 150,
                  "max_size": 20000, "seed": 11}),
    );
    // Every stream download fails (404: not retried).
    fail(
        &w.source,
        json!({"method": "GET", "path_contains": "/api/v1/streams/", "status": 404, "count": 100000}),
    );
    let out = w.backup(
        "b3",
        "web/click,app/open",
        &["stream_workers=3", "batch=100"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5 stream failures in a row"), "{err}");
    // "... N stream requests are in the failure cache PATH": the failed ones and what was queued behind them.
    let cached: u64 = err
        .split(" stream requests are in the failure cache")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failure cache count in {err}"));
    assert!(cached >= 5, "{err}");
    // The documented order: event workers, then the hit cache, then the stream workers.
    assert_in_order(
        &err,
        &[
            "event workers stopped",
            "hit cache stopped",
            "stream workers stopped",
        ],
    );
    assert!(w.stored_streams("b3").is_empty());

    // The faults end; the next run retries the failure cache first, then goes on: nothing is lost.
    no_faults(&w.source);
    let r = result(&w.backup(
        "b3",
        "web/click,app/open",
        &["stream_workers=3", "batch=100"],
    ));
    assert_eq!(
        r["streams"]["retried"], cached,
        "every cached request is retried first: {r}"
    );
    assert_eq!(r["streams"]["retried"], r["streams"]["recovered"], "{r}");
    assert_eq!(r["failure_cache"]["count"], 0, "{r}");
    let mut distinct = BTreeSet::new();
    let stored = w.stored_events("b3");
    for pair in ["web/click", "app/open"] {
        let source = w.source_events(pair);
        assert_eq!(ids(&stored[pair]), ids(&source), "{pair}: every event once");
        distinct.extend(referenced_streams(pair, &source).0);
    }
    assert_eq!(
        w.stored_streams("b3"),
        distinct,
        "every stream, after the rerun"
    );
}

#[test]
fn bad_params_are_refused_with_exit_2_and_nothing_written() {
    let w = World::start();
    w.seed(json!({"pairs": [["web", "click"]], "events": 5, "streams": 2}));
    for (args, says) in [
        (vec!["pairs=webclick"], "is not source/event_type"),
        (vec!["pairs=web/click", "batch=0"], "at least 1"),
        (vec!["pairs=web/click", "max_wait=soon"], "max_wait"),
    ] {
        let mut a = vec![
            format!("url={}", w.source.url),
            format!("store={}", w.store()),
            "once=true".to_string(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        let out = w.command("event-backup", &a).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out)
        );
    }
    let out = w
        .command(
            "event-restore",
            &[
                format!("store={}", w.store()),
                "from=2024-02-01".into(),
                "to=2024-01-01".into(),
                "url=http://127.0.0.1:9".into(),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        w.s3.list_keys(world::BUCKET, "").is_empty(),
        "nothing written"
    );
}

#[test]
fn the_token_reaches_the_dispatcher_and_never_the_output() {
    let w = World::start();
    w.seed(json!({"pairs": [["web", "click"]], "events": 20, "streams": 5}));
    let token = "tok-3f9a1c77e2";
    let mut c = w.command(
        "event-backup",
        &w.backup_args("b5", "web/click", &["progress=0.05s"]),
    );
    c.env("REWIND_DISPATCHER_TOKEN", token)
        .env("REWIND_LOG", "debug");
    let out = c.output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(token), "the token leaked: {all}");
    let (_, log) = w.source.json("GET", "/_fake/log", None);
    let reqs = log.as_array().unwrap();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r["has_auth"] == true),
        "every request carries it"
    );
}

#[test]
fn a_second_backup_of_the_same_prefix_is_refused_while_the_first_runs() {
    let w = World::start();
    w.seed(json!({"pairs": [["web", "click"]], "events": 50, "streams": 5}));
    let mut args = w.backup_args("b6", "web/click", &["poll=0.2s", "max_wait=0.5s"]);
    args.retain(|a| a != "once=true");
    let first = common::process::Killed(w.command("event-backup", &args).spawn().unwrap());
    common::process::wait_for("the first batch", Duration::from_secs(30), || {
        !w.s3.list_keys(world::BUCKET, "b6/cursors/").is_empty()
    });
    let second = w.backup("b6", "web/click", &[]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is locked by event-backup"),
        "{}",
        text(&second)
    );
    let out = first.signal_and_wait(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out));
}

/// `drain_on_stop`: the first signal only asks the script to stop; a second one ends it at once.
#[test]
fn a_second_signal_stops_a_draining_script_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("slow-drain.lua");
    std::fs::write(
        &script,
        r#"local task = require("rewind.task")
return {
  description = "drains forever once asked to stop",
  drain_on_stop = true,
  params = {},
  run = function()
    while not task.stopping() do task.sleep(0.05) end
    print("draining")
    task.sleep(3600)
  end,
}"#,
    )
    .unwrap();
    let mut child = common::process::Killed(
        common::process::rewind()
            .args(["run", script.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.0.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the first signal must not end a draining script"
    );
    let started = Instant::now();
    let out = child.signal_and_wait(libc::SIGTERM);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("draining"),
        "{}",
        text(&out)
    );
}
