//! topic-archive against librdkafka's mock cluster: batches, commits after writes, crashes, SIGTERM, and
//! several instances in one consumer group (rebalances).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::*;
use common::process::files;

fn archive(k: &MockKafka, store: &std::path::Path, extra: &[&str]) -> std::process::Output {
    archive_with(k, store, "topic-archive", extra)
}

fn archive_with(
    k: &MockKafka,
    store: &std::path::Path,
    script: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut c = rewind();
    c.args(["run", "--json", script])
        .arg(format!("brokers={}", k.brokers))
        .arg("topics=ev")
        .arg(format!("store={}", store.display()))
        .arg(MOCK_GROUP_CONFIG)
        .args(extra);
    c.output().unwrap()
}

/// Every line of every archived object, with the object it came from.
fn archived(store: &std::path::Path) -> (Vec<std::path::PathBuf>, Vec<String>) {
    let objs = files(store);
    let lines = objs.iter().flat_map(|p| gunzip_lines(p)).collect();
    (objs, lines)
}

fn assert_exactly_once(got: &[String], want: &[String]) {
    let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
    for l in got {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{} duplicated events", dups.len());
    assert_eq!(got.len(), want.len());
    for w in want {
        assert!(counts.contains_key(w.as_str()), "missing {w}");
    }
}

#[test]
fn topic_archive_writes_every_event_exactly_once() {
    let k = MockKafka::start(&[("ev", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(2500, 200);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    send_lines_file(&k, dir.path(), "ev.jsonl.gz", &["key_field=user"]);
    let store = dir.path().join("store");
    let out = archive(&k, &store, &["once=true", "batch=1000"]);
    let r = json_result(&out);
    assert_eq!(r["records"], 2500);
    assert!(
        !text(&out.stderr).contains("ERROR"),
        "a clean run logs no error: {}",
        text(&out.stderr)
    );
    let (objs, got) = archived(&store);
    assert_exactly_once(&got, &lines);
    // The documented layout.
    for o in &objs {
        let rel = o
            .strip_prefix(&store)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts[0], "kafka");
        assert_eq!(parts[1], "ev");
        assert_eq!(parts[2].len(), 10, "{rel}");
        assert_eq!(parts[3].len(), 2, "{rel}");
        assert!(
            parts[4].starts_with("ev-") && parts[4].ends_with(".jsonl.gz"),
            "{rel}"
        );
    }
    // Committed: a second run finds nothing new.
    let r2 = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(r2["records"], 0);
    assert_eq!(files(&store).len(), objs.len());
}

#[test]
fn topic_archive_crash_between_write_and_commit_repeats_never_loses() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let lines = events(2500, 150);
    gzip_lines(&dir.path().join("ev.jsonl.gz"), &lines);
    send_lines_file(&k, dir.path(), "ev.jsonl.gz", &[]);
    let store = dir.path().join("store");
    // A copy of the script that exits hard after its first write (the shipped one has no such hook).
    let hooked = topic_archive_exiting_after_first_write(dir.path());
    let out = archive_with(
        &k,
        &store,
        hooked.to_str().unwrap(),
        // One write at a time, so exactly one object exists when the hook exits.
        &["once=true", "batch=1000", "concurrency=1"],
    );
    assert!(!out.status.success(), "the hook exits hard");
    let (objs, _) = archived(&store);
    assert_eq!(objs.len(), 1, "one batch written before the crash");
    let crashed_key = objs[0].clone();
    let r = json_result(&archive(&k, &store, &["once=true", "batch=1000"]));
    assert_eq!(r["records"], 2500, "the uncommitted batch is read again");
    let (objs, got) = archived(&store);
    assert_eq!(objs.len(), 3);
    assert!(
        objs.contains(&crashed_key),
        "the repeated batch overwrote the same key"
    );
    assert_exactly_once(&got, &lines);
    assert!(files(&store).iter().all(|p| {
        !p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".rewind-tmp")
    }));
}

#[test]
fn topic_archive_closes_a_quiet_batch_after_max_wait_and_flushes_on_sigterm() {
    let k = MockKafka::start(&[("ev", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let lines = events(5, 60);
    kcat_produce(&k.brokers, "ev", &lines);
    let mut child = rewind()
        .args(["run", "topic-archive"])
        .arg(format!("brokers={}", k.brokers))
        .arg("topics=ev")
        .arg(format!("store={}", store.display()))
        .args(["batch=1000", "max_wait=2s", MOCK_GROUP_CONFIG])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while files(&store).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (objs, got) = archived(&store);
    assert_eq!(objs.len(), 1, "the quiet batch was archived after max_wait");
    assert_eq!(got, lines);

    // More events, then SIGTERM before max_wait: the open batch is written and committed on the way out.
    let more = events(8, 61);
    kcat_produce(&k.brokers, "ev", &more);
    std::thread::sleep(Duration::from_millis(800));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0), "SIGTERM: exit 0");
    let (objs, got) = archived(&store);
    let all: Vec<String> = lines.iter().chain(more.iter()).cloned().collect();
    assert_eq!(objs.len(), 2);
    assert_exactly_once(&got, &all);
    let r = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(
        r["records"], 0,
        "offsets of the flushed batch were committed"
    );
}

#[test]
fn the_shipped_topic_archive_has_no_test_hook() {
    let out = rewind().args(["help", "topic-archive"]).output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout) + &text(&out.stderr);
    assert!(help.contains("max_wait"), "{help}");
    assert!(!help.contains("crash") && !help.contains("hook"), "{help}");
}

#[test]
fn two_archives_in_one_group_write_each_event_once_and_only_for_their_partitions() {
    two_archives_in_one_group(&[]);
}

#[test]
fn two_archives_with_cooperative_rebalancing_write_each_event_once() {
    two_archives_in_one_group(&[
        r#"config={"session.timeout.ms":6000,"heartbeat.interval.ms":500,"partition.assignment.strategy":"cooperative-sticky"}"#,
    ]);
}

/// Two topic-archive processes in one group; events produced before and while the second one joins.
fn two_archives_in_one_group(extra: &[&str]) {
    let k = MockKafka::start_with(&[("ev", 4)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let all = events(4000, 100);
    let (before, during) = all.split_at(2000);
    kcat_produce(&k.brokers, "ev", before);
    // Batches stay open until max_wait: when the second instance joins, the first holds unwritten
    // records of every partition, half of which the rebalance gives to the second.
    let opts = [&["batch=100000", "max_wait=10s"], extra].concat();
    let mut a = Archiver::start(&k, &store, &dir.path().join("a.log"), &opts);
    a.wait_log("kafka: partitions assigned");
    std::thread::sleep(Duration::from_millis(1000));
    let mut b = Archiver::start(&k, &store, &dir.path().join("b.log"), &opts);
    for chunk in during.chunks(250) {
        kcat_produce(&k.brokers, "ev", chunk);
        std::thread::sleep(Duration::from_millis(150));
    }
    b.wait_log("kafka: partitions assigned");
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived(&store).1.len() < all.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more max_wait: batches written late (the bug) would show as extra lines.
    std::thread::sleep(Duration::from_secs(11));
    let (writes_a, bad_a) = a.writes_outside_its_partitions();
    let (writes_b, bad_b) = b.writes_outside_its_partitions();
    // The first instance held unwritten records of partitions it then lost, and dropped them.
    let dropped = a.lines().into_iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("kafka: dropped the unwritten records"))
            && l["records"].as_u64() > Some(0)
    });
    assert!(
        dropped,
        "the rebalance came while batches were open:\n{}",
        a.log_text()
    );
    let (code_a, code_b) = (a.stop(), b.stop());
    let (_, got) = archived(&store);
    assert_exactly_once(&got, &all);
    assert!(
        writes_a > 0 && writes_b > 0,
        "both wrote: {writes_a}, {writes_b}"
    );
    assert!(
        bad_a.is_empty(),
        "first instance wrote outside its partitions: {bad_a:?}"
    );
    assert!(
        bad_b.is_empty(),
        "second instance wrote outside its partitions: {bad_b:?}"
    );
    assert_eq!(
        (code_a, code_b),
        (Some(0), Some(0)),
        "SIGTERM ends an archive with exit 0:\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
}

#[test]
fn sigterm_after_everything_is_archived_exits_0_and_leaves_nothing_to_archive() {
    let k = MockKafka::start_with(&[("ev", 3)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = dir.path().join("archive.log");
    let mut a = Archiver::start(&k, &store, &log, &["batch=500", "max_wait=1s"]);
    a.wait_log("kafka: partitions assigned");
    let lines = events(3000, 80);
    kcat_produce(&k.brokers, "ev", &lines);
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived(&store).1.len() < lines.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(a.stop(), Some(0), "SIGTERM: exit 0\n{}", a.log_text());
    assert!(
        a.log_text()
            .contains("stopped by a signal after finishing its work"),
        "{}",
        a.log_text()
    );
    let (objs, got) = archived(&store);
    assert_exactly_once(&got, &lines);
    // Offsets committed: the group has nothing left to archive.
    let r = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(r["records"], 0);
    assert_eq!(files(&store).len(), objs.len());
}

#[test]
fn sigterm_while_a_batch_is_being_written_writes_it_again_and_loses_nothing() {
    let k = MockKafka::start_with(&[("ev", 1)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A copy whose uploads are slow: the signal comes while the first batches are being written.
    let slow = hooked_topic_archive(
        dir.path(),
        "slow-topic-archive",
        r#"log.info("writing " .. key); task.sleep(3); PUT"#,
    );
    let log = dir.path().join("archive.log");
    let mut a = Archiver::start_script(&k, &store, &log, slow.to_str().unwrap(), &["batch=100"]);
    a.wait_log("kafka: partitions assigned");
    let lines = events(250, 80);
    kcat_produce(&k.brokers, "ev", &lines);
    common::process::wait_for("a write", Duration::from_secs(30), || {
        a.log_text().contains("writing kafka/ev/")
    });
    // Closed batches of offsets 0-199 are being written, 200-249 are still open.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.stop(), Some(0), "SIGTERM: exit 0\n{}", a.log_text());
    let (_, got) = archived(&store);
    assert_exactly_once(&got, &lines);
    let r = json_result(&archive(&k, &store, &["once=true"]));
    assert_eq!(r["records"], 0, "everything committed");
}
