//! The `replay` procedure (source document 002) end to end: Azurite as the store, librdkafka's mock
//! cluster as Kafka (kcat reads the topic), the fake Druid cluster and the Slack fake (tests/common/
//! replay_env.rs). The dependents config is the document's JSON, unchanged.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process::text;
use common::replay_env::*;

fn ok_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "replay failed ({:?}):\n{}\n{}",
        out.status,
        text(out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

const RANGE: [&str; 4] = [
    "source=raw",
    "startDate=2019-12-01",
    "endDate=2019-12-03",
    "deleteBackups=true",
];

fn with_config<'a>(env: &'a ReplayEnv, extra: &[&'a str], cfg: &'a str) -> Vec<&'a str> {
    let _ = env;
    let mut v = vec![cfg];
    v.extend_from_slice(&RANGE);
    v.extend_from_slice(extra);
    v
}

/// The dependents of `day` (what the sinks wrote for it), by name.
fn dependents(env: &ReplayEnv, day: &str) -> std::collections::BTreeMap<String, (u64, String)> {
    let mut all = std::collections::BTreeMap::new();
    for sink in ["unique", "channel", "telemetry-denormalized"] {
        all.extend(env.blobs(&format!("{sink}/{day}/")));
    }
    all
}

fn segments_of(env: &ReplayEnv, day: &str) -> Vec<(String, bool)> {
    env.segments()
        .into_iter()
        .filter(|(id, _)| id.starts_with(&format!("{DATASOURCE}_{day}T")))
        .collect()
}

/// Lines of a spawned run's stderr, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = l.contains(needle);
            seen.push(l);
            if hit {
                return;
            }
        }
    }
    panic!("no log line with {needle:?}; saw:\n{}", seen.join("\n"));
}

#[test]
fn three_days_replayed_dependents_removed_segments_killed_slack_told() {
    let env = ReplayEnv::start(3);
    let before_untouched = (dependents(&env, BEFORE), segments_of(&env, BEFORE));
    let cfg = format!("config={}", env.config().display());
    let out = env.run(&with_config(&env, &[], &cfg));
    let r = ok_json(&out);
    assert_eq!(
        days_of(&r),
        DAYS.iter()
            .map(|d| (d.to_string(), "done".to_string()))
            .collect::<Vec<_>>()
    );
    for d in r["days"].as_array().unwrap() {
        assert_eq!(d["events"], 200, "{d}");
        assert_eq!(d["transaction"], "committed", "{d}");
        assert_eq!(d["deleted"]["unique"], 3, "{d}");
        assert_eq!(d["killed"]["telemetry-events"], 2, "{d}");
    }
    // Every archived event is in the topic exactly once.
    assert_eq!(env.topic_values(), expected_events(&DAYS));
    for day in DAYS {
        assert!(
            dependents(&env, day).is_empty(),
            "the dependents of {day} are deleted"
        );
        assert!(
            segments_of(&env, day).is_empty(),
            "the segments of {day} are killed"
        );
    }
    assert!(
        env.blobs("replay-state/raw/backup/").is_empty(),
        "deleteBackups=true drops the copies"
    );
    assert_eq!(
        (dependents(&env, BEFORE), segments_of(&env, BEFORE)),
        before_untouched
    );
    assert_eq!(
        env.blobs("raw/").len(),
        8,
        "the archive itself is never touched"
    );

    let msgs = env.slack.messages();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    for (m, day) in msgs.iter().zip(DAYS) {
        let t = m["message"]["text"].as_str().unwrap();
        for want in [
            day,
            "done",
            "200 events",
            "unique 3",
            "channel 2",
            "telemetry-events 2",
            "telemetry.valid",
        ] {
            assert!(
                t.contains(want),
                "Slack message for {day} lacks {want:?}: {t}"
            );
        }
    }
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("secret0"),
        "the webhook is a secret"
    );

    // Run again: every day is already done, nothing is replayed twice.
    let r2 = ok_json(&env.run(&with_config(&env, &[], &cfg)));
    assert!(
        days_of(&r2).iter().all(|(_, s)| s == "already done"),
        "{r2}"
    );
    assert_eq!(env.topic_values().len(), 600);
    assert_eq!(env.slack.messages().len(), 3);
}

#[test]
fn brokers_gone_during_day_two_put_it_back_and_day_three_still_runs() {
    let mut env = ReplayEnv::start(3);
    let before: Vec<_> = DAYS
        .iter()
        .map(|d| (dependents(&env, d), segments_of(&env, d)))
        .collect();
    let cfg = format!("config={}", env.config().display());
    let mut child = env.spawn(&with_config(&env, &[], &cfg));
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    // Day 2's backup and removal need no broker; its replay then finds none.
    wait_line(&rx, "replay day 2019-12-02: backing_up", &mut seen);
    env.kafka.set_brokers_up(false);
    wait_line(&rx, "replay day 2019-12-02: failed", &mut seen);
    env.kafka.set_brokers_up(true);
    let status = child.wait().unwrap();
    for l in rx.try_iter() {
        seen.push(l);
    }
    let log = seen.join("\n");
    assert_eq!(status.code(), Some(1), "a failed day fails the run:\n{log}");
    assert!(
        log.contains("1 of 3 days failed") && log.contains("2019-12-02"),
        "{log}"
    );

    // Day 2's dependents and segments are exactly as before; days 1 and 3 are replayed.
    assert_eq!(
        (dependents(&env, DAYS[1]), segments_of(&env, DAYS[1])),
        before[1].clone()
    );
    assert_eq!(
        env.topic_values(),
        expected_events(&[DAYS[0], DAYS[2]]),
        "no event of day 2 reached the topic"
    );
    for d in [DAYS[0], DAYS[2]] {
        assert!(dependents(&env, d).is_empty() && segments_of(&env, d).is_empty());
    }
    let msgs: Vec<String> = env
        .slack
        .messages()
        .iter()
        .map(|m| m["message"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(msgs[0].contains("2019-12-01") && msgs[0].contains("done"));
    assert!(
        msgs[1].contains("2019-12-02")
            && msgs[1].contains("FAILED")
            && msgs[1].contains("put back"),
        "{}",
        msgs[1]
    );
    assert!(msgs[2].contains("2019-12-03") && msgs[2].contains("done"));

    let st: serde_json::Value =
        serde_json::from_str(&env.blob_text("replay-state/raw/days/2019-12-02.json")).unwrap();
    assert_eq!(st["step"], "failed", "{st}");
    assert!(
        st["metrics"]["transaction"]
            .as_str()
            .unwrap_or("")
            .contains("abort"),
        "day 2's transaction was not committed: {st}"
    );
    assert!(
        st["error"].as_str().unwrap_or("").contains("failed"),
        "{st}"
    );

    // The next run replays day 2 (the others are done) and nothing is doubled.
    let r = ok_json(&env.run(&with_config(&env, &[], &cfg)));
    assert_eq!(
        days_of(&r)[1],
        ("2019-12-02".to_string(), "done".to_string()),
        "{r}"
    );
    assert_eq!(env.topic_values(), expected_events(&DAYS));
}

#[test]
fn killed_during_day_two_resumes_there_without_loss_or_doubles() {
    // 300 objects in day 2's `unique` folder: its backup takes long enough to be killed in the middle.
    let env = ReplayEnv::start(300);
    let cfg = format!("config={}", env.config().display());
    let mut child = env.spawn(&with_config(&env, &["concurrency=2"], &cfg));
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    wait_line(&rx, "replay day 2019-12-02: backing_up", &mut seen);
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let copies = env.blobs("replay-state/raw/backup/2019-12-02/").len();
    assert!(
        copies < 306,
        "killed in the middle of day 2's backup ({copies} copies made)"
    );
    assert_eq!(
        dependents(&env, DAYS[1]).len(),
        303,
        "nothing of day 2 deleted before its backup was complete"
    );

    let r = ok_json(&env.run(&with_config(&env, &["lock_ttl=30s"], &cfg)));
    let days = r["days"].as_array().unwrap();
    assert_eq!(days[0]["status"], "already done");
    assert_eq!(days[1]["status"], "done");
    assert_eq!(days[1]["resumed_at"], "backing_up", "{r}");
    assert_eq!(days[1]["deleted"]["unique"], 300);
    assert_eq!(
        env.topic_values(),
        expected_events(&DAYS),
        "every event once"
    );
    assert!(dependents(&env, DAYS[1]).is_empty());
    assert!(env.blobs("replay-state/raw/backup/").is_empty());
}

#[test]
fn file_path_replays_one_object_and_touches_nothing_else() {
    let env = ReplayEnv::start(3);
    let before = (dependents(&env, DAYS[0]), env.segments());
    let key = "raw/2019-12-01/00/raw-1-2019-12-01.jsonl.gz";
    let cfg = format!("config={}", env.config().display());
    let r = ok_json(&env.run(&[
        &cfg,
        "source=raw",
        &format!("filePath={key}"),
        "deleteBackups=false",
    ]));
    assert_eq!(r["events"], 100, "{r}");
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..EVENTS_PER_FILE).map(|i| event(DAYS[0], 1, i)).collect();
        v.sort();
        v
    };
    assert_eq!(env.topic_values(), want);
    assert_eq!((dependents(&env, DAYS[0]), env.segments()), before);
    assert!(
        env.blobs("replay-state/").is_empty(),
        "a one-object replay keeps no day state"
    );
}

#[test]
fn document_as_params_file_dry_run_and_a_day_without_archive() {
    let env = ReplayEnv::start(3);
    // The document's JSON itself as --params-file; the run's own params on the command line.
    let doc = env.config();
    let out = env.run(&[
        "--params-file",
        doc.to_str().unwrap(),
        "source=raw",
        "startDate=2019-12-03",
        "endDate=2019-12-04",
        "dry_run=true",
    ]);
    let r = ok_json(&out);
    let plans = r["days"].as_array().unwrap();
    assert_eq!(plans[0]["files"], 2);
    assert_eq!(plans[0]["dependents"]["unique"]["objects"], 3);
    assert_eq!(plans[0]["segments"]["telemetry-events"], 2);
    assert_eq!(plans[1]["files"], 0);
    assert!(
        env.topic_values().is_empty() && env.blobs("replay-state/").is_empty(),
        "a dry run changes nothing"
    );

    // 2019-12-04 has no archive: reported and skipped, its dependents untouched.
    let deps = env.blobs("unique/");
    let r = ok_json(&env.run(&[
        "--params-file",
        doc.to_str().unwrap(),
        "source=raw",
        "startDate=2019-12-04",
        "endDate=2019-12-04",
    ]));
    assert_eq!(
        days_of(&r),
        vec![("2019-12-04".to_string(), "skipped".to_string())]
    );
    assert!(
        r["days"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no archived data")
    );
    assert_eq!(env.blobs("unique/"), deps);
}

#[test]
fn malformed_config_is_a_usage_error_naming_the_entry_and_writes_nothing() {
    let env = ReplayEnv::start(3);
    let cases = [
        (
            r#"{"raw": {"outputKafkaTopic": "t", "dependentSinkSources": [{"type": "gcs", "prefix": "x"}]}}"#,
            r#"entry "raw""#,
            "type is \"gcs\"",
        ),
        (
            r#"{"raw": {"dependentSinkSources": []}}"#,
            r#"entry "raw""#,
            "outputKafkaTopic",
        ),
        (
            r#"{"raw": {"outputKafkaTopic": "t", "dependentSinkSources": [{"type": "azure", "prefix": "../x"}]}}"#,
            r#"entry "raw""#,
            "'..'",
        ),
        (
            r#"{"raw": {"outputKafkaTopic": "t", "dependentSinkSources": [{"type": "azure", "prefix": "raw"}]}}"#,
            "entry raw",
            "overlaps",
        ),
        ("{not json", "config", "not valid JSON"),
    ];
    for (i, (cfg, names, why)) in cases.iter().enumerate() {
        let path = env.dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, cfg).unwrap();
        let out = env.run(&[
            &format!("config={}", path.display()),
            "source=raw",
            "startDate=2019-12-01",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(names) && err.contains(why),
            "case {i}: want {names:?} and {why:?} in: {err}"
        );
    }
    assert!(env.blobs("replay-state/").is_empty(), "nothing written");
    assert_eq!(dependents(&env, DAYS[0]).len(), 6);
    assert!(env.topic_values().is_empty());
}

#[test]
fn a_day_left_committing_stops_the_run_until_resolved() {
    let env = ReplayEnv::start(3);
    // What a run killed during day 1's commit leaves: the dependents removed and recorded (none here).
    let state = r#"{"day": "2019-12-01", "step": "committing", "removal_started": true, "attempt": 1,
      "stores": [], "druid": [], "metrics": {"events": 200, "files": 2}}"#;
    env.put_blob("replay-state/raw/days/2019-12-01.json", state);
    let cfg = format!("config={}", env.config().display());
    let args = ["source=raw", "startDate=2019-12-01", "endDate=2019-12-02"];
    let out = env.run(&[&[cfg.as_str()][..], &args].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("2019-12-01")
            && err.contains("resolve=committed")
            && err.contains("resolve=replay"),
        "{err}"
    );
    assert!(
        env.topic_values().is_empty(),
        "nothing replayed while the question is open"
    );

    // resolve=committed: day 1 is finished without sending its events again; day 2 runs normally.
    let r = ok_json(&env.run(&[&[cfg.as_str(), "resolve=committed"][..], &args].concat()));
    assert_eq!(
        days_of(&r),
        vec![
            ("2019-12-01".into(), "done".into()),
            ("2019-12-02".into(), "done".into())
        ]
    );
    assert_eq!(env.topic_values(), expected_events(&[DAYS[1]]));
    let st: serde_json::Value =
        serde_json::from_str(&env.blob_text("replay-state/raw/days/2019-12-01.json")).unwrap();
    assert_eq!(st["step"], "done");
}

#[test]
fn brokers_without_transactions_get_plain_sends_and_a_slack_error_fails_no_day() {
    let env = ReplayEnv::start_with(3, &["--no-transactions"]);
    let cfg = format!("config={}", env.config().display());
    // A webhook Slack answers with 500 rollup_error.
    let hook = format!(
        "slack_webhook={}/services/T0/B_ROLLUP/secret1",
        env.slack.url
    );
    let out = env.run(&[
        cfg.as_str(),
        "source=raw",
        "startDate=2019-12-01",
        "endDate=2019-12-01",
        hook.as_str(),
    ]);
    let r = ok_json(&out);
    assert_eq!(r["transactional"], false, "{r}");
    assert_eq!(days_of(&r), vec![("2019-12-01".into(), "done".into())]);
    assert_eq!(env.topic_values(), expected_events(&[DAYS[0]]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not support transactions"), "{err}");
    assert!(
        err.contains("rollup_error") && !err.contains("secret1"),
        "the Slack error is logged, its URL is not: {err}"
    );
    // transactional=true insists: the run fails before touching anything.
    let out = env.run(&[
        cfg.as_str(),
        "source=raw",
        "startDate=2019-12-02",
        "transactional=true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("transaction"));
    assert_eq!(dependents(&env, DAYS[1]).len(), 6, "day 2 untouched");
}

#[test]
fn druid_answers_lost_or_from_a_non_leader_still_make_a_clean_day() {
    let env = ReplayEnv::start(3);
    // The overlord path answers 503 once (not the leader); a markUnused and a kill submission are applied
    // but their answers lost; a markUsed is never needed (the day succeeds).
    let faults = r#"{"overlord_not_leader": 1, "markUnused": {"fail_after_apply": 1, "mode": "drop"},
      "kill": {"fail_after_apply": 1, "mode": "500", "polls_running": 2}}"#;
    let r = common::http::request(
        "POST",
        &format!("{}/_fake/faults", env.druid_url),
        &[("content-type", "application/json")],
        Some(faults.as_bytes().to_vec()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cfg = format!("config={}", env.config().display());
    let overlord = format!("druid_overlord={},{}", env.druid_url, env.druid_url);
    let r = ok_json(&env.run(&[
        cfg.as_str(),
        "source=raw",
        "startDate=2019-12-01",
        overlord.as_str(),
    ]));
    assert_eq!(days_of(&r), vec![("2019-12-01".into(), "done".into())]);
    assert!(
        segments_of(&env, DAYS[0]).is_empty(),
        "the day's segments are killed"
    );
    assert_eq!(
        segments_of(&env, DAYS[1]).len(),
        2,
        "other days' segments untouched"
    );
    let reqs = common::http::request(
        "GET",
        &format!("{}/_fake/requests", env.druid_url),
        &[],
        None,
    );
    let kills = reqs.body.matches("\"/druid/indexer/v1/task\"").count();
    assert_eq!(
        kills, 2,
        "one kill resubmitted after its lost answer, recognised, not run twice: {}",
        reqs.body
    );
}
