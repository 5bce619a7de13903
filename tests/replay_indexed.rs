//! replay split over copies side by side, as the pods of a Kubernetes Indexed Job run it
//! (deploy/kubernetes/indexed-replay.yaml): each copy gets the environment a pod gets
//! (JOB_COMPLETION_INDEX, and JOB_COMPLETION_COUNT from the manifest) and takes a contiguous slice of the
//! days; together they replay every day once, and the topic holds every event exactly once.

mod common;

use std::collections::BTreeSet;

use common::process::text;
use common::replay_env::*;

#[test]
fn copies_of_an_indexed_job_split_the_days_without_overlap_or_gap() {
    let env = ReplayEnv::start(3);
    let doc = env.config();
    let count = 2;
    let children: Vec<_> = (0..count)
        .map(|i| {
            env.command(&[
                "--params-file",
                doc.to_str().unwrap(),
                "source=raw",
                "startDate=2019-12-01",
                "endDate=2019-12-03",
            ])
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .env("JOB_COMPLETION_COUNT", count.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut all = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "copy {i}: {}", text(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["share"], format!("{} of {count}", i + 1), "{r}");
        let days: Vec<String> = r["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                assert_eq!(d["status"], "done", "{r}");
                d["day"].as_str().unwrap().to_string()
            })
            .collect();
        all.push(days);
    }
    // 3 days over 2 copies: a contiguous slice of 2, then 1.
    assert_eq!(
        all,
        vec![
            vec!["2019-12-01".to_string(), "2019-12-02".into()],
            vec!["2019-12-03".to_string()]
        ]
    );
    let values: Vec<String> = env.topic_values();
    let unique: BTreeSet<&String> = values.iter().collect();
    assert_eq!(unique.len(), values.len(), "no event twice");
    let mut want = expected_events(&DAYS);
    let mut got = values.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every day's events, exactly once");

    // A half-given position is refused before anything runs.
    let out = env
        .command(&[
            "--params-file",
            doc.to_str().unwrap(),
            "source=raw",
            "startDate=2019-12-01",
            "index=1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("index and count go together"),
        "{}",
        text(&out)
    );
}

/// A copy killed (SIGKILL, as a node loss does) after its first day is rerun, as Kubernetes retries a
/// failed index: it resumes its slice from the per-day state instead of redoing it.
#[test]
fn a_killed_copy_rerun_resumes_its_slice() {
    use std::io::{BufRead, BufReader};
    let env = ReplayEnv::start(3);
    let doc = env.config();
    let params = [
        "--params-file",
        doc.to_str().unwrap(),
        "source=raw",
        "startDate=2019-12-01",
        "endDate=2019-12-03",
        "index=0",
        "count=2",
    ];
    let mut child = env.spawn(&params);
    let mut seen = Vec::new();
    for l in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let done = l.contains("replay day 2019-12-01: done");
        seen.push(l);
        if done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("2019-12-01: done")),
        "{}",
        seen.join("\n")
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let mut out = env.run(&params);
    if out.status.code() == Some(1) && String::from_utf8_lossy(&out.stderr).contains("resolve=") {
        // Killed inside day 2's commit: the documented question, answered as an operator would, by
        // looking at the topic.
        let day2 = expected_events(&[DAYS[1]]);
        let values = env.topic_values();
        let answer = if day2.iter().all(|e| values.contains(e)) {
            "resolve=committed"
        } else {
            "resolve=replay"
        };
        out = env.run(&[&params[..], &[answer]].concat());
    }
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let days = days_of(&r);
    assert_eq!(
        days[0],
        ("2019-12-01".to_string(), "already done".to_string()),
        "{r}"
    );
    assert_eq!(days[1].0, "2019-12-02");
    assert_eq!(days.len(), 2, "only its own slice: {r}");
    let other = env.run(&[
        "--params-file",
        doc.to_str().unwrap(),
        "source=raw",
        "startDate=2019-12-01",
        "endDate=2019-12-03",
        "index=1",
        "count=2",
    ]);
    assert!(other.status.success(), "{}", text(&other));
    let mut got = env.topic_values();
    let mut want = expected_events(&DAYS);
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "every event exactly once after the kill and the rerun"
    );
}
