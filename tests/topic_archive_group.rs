//! topic-archive across processes (issue 18): several `rewind run topic-archive` processes in one consumer
//! group share a 12-partition topic on librdkafka's mock cluster while events arrive in waves; one is
//! killed with SIGKILL half-way and a fourth joins. Every event must end up in the store exactly once,
//! in an object whose name matches its partition and first offset. Also: a member killed while it holds
//! two closed batches of one partition leaves no duplicate behind (a bug this file found).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::*;
use common::process::files;

const PARTITIONS: i64 = 12;
const WAVES: usize = 6;
/// Events per partition per wave: 12 x 6 x 400 = 28,800 events in all.
const PER_WAVE: usize = 400;
/// Small batches and a short max_wait: many objects and commits, so a kill lands among them.
const OPTS: &[&str] = &["batch=150", "max_wait=1s"];

/// A unique, small event: its partition, wave and number within that wave, padded to ~70 bytes.
fn event(p: i64, wave: usize, n: usize) -> String {
    format!(
        r#"{{"p":{p},"w":{wave},"n":{n},"pad":"{}"}}"#,
        "x".repeat(40)
    )
}

/// Produces one wave: PER_WAVE events into every partition (one kcat per partition, in parallel), so
/// that every partition, and so every member, has work.
fn produce_wave(brokers: &str, wave: usize) -> Vec<String> {
    let mut all = Vec::new();
    let children: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let lines: Vec<String> = (0..PER_WAVE).map(|n| event(p, wave, n)).collect();
            let mut child = Command::new("kcat")
                .args(["-b", brokers, "-P", "-t", "ev", "-p", &p.to_string()])
                .stdin(Stdio::piped())
                .spawn()
                .expect("running kcat");
            let mut stdin = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut stdin, (lines.join("\n") + "\n").as_bytes()).unwrap();
            all.extend(lines);
            child // stdin dropped: kcat sends and exits
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "kcat produce");
    }
    all
}

/// The finished objects under `store` (temporary files of a write in progress, or of a killed writer,
/// are left out) with their lines.
fn objects(store: &Path) -> Vec<(PathBuf, Vec<String>)> {
    files(store)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".rewind-tmp")
        })
        .map(|p| {
            let lines = gunzip_lines(&p);
            (p, lines)
        })
        .collect()
}

/// `.../ev-<partition>-<first offset>.jsonl.gz` -> (partition, first offset).
fn name_position(path: &Path) -> (i64, i64) {
    let name = path.file_name().unwrap().to_string_lossy();
    let stem = name.strip_suffix(".jsonl.gz").unwrap();
    let mut parts = stem.rsplitn(3, '-');
    let offset = parts.next().unwrap().parse().unwrap();
    let partition = parts.next().unwrap().parse().unwrap();
    assert_eq!(parts.next(), Some("ev"), "{name}");
    (partition, offset)
}

/// How many objects an archive's log says it wrote (none may be for a partition it did not own then).
fn writes(a: &Archiver, who: &str) -> usize {
    let (n, outside) = a.writes_outside_its_partitions();
    assert!(
        outside.is_empty(),
        "{who} wrote outside its partitions: {outside:?}"
    );
    n
}

/// Waits (at most `timeout`) until every produced event is in the store; returns how many are.
fn wait_archived(store: &Path, produced: &[String], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let got: HashSet<String> = objects(store).into_iter().flat_map(|o| o.1).collect();
        let seen = produced.iter().filter(|w| got.contains(*w)).count();
        if seen == produced.len() || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every produced event is in the store exactly once, each object holds consecutive records of the
/// partition and from the first offset its name gives (positions from kcat, an independent client).
/// Returns the number of objects.
fn assert_exactly_once_where_named(k: &MockKafka, store: &Path, produced: &[String]) -> usize {
    let topic = kcat_all(&k.brokers, "ev");
    let position: HashMap<&str, (i64, i64)> = topic
        .iter()
        .map(|m| (m.value.as_str(), (m.partition, m.offset)))
        .collect();
    assert_eq!(
        (topic.len(), position.len()),
        (produced.len(), produced.len()),
        "the topic holds each produced event once"
    );
    let objs = objects(store);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (path, lines) in &objs {
        let (partition, first) = name_position(path);
        for (i, l) in lines.iter().enumerate() {
            *count.entry(l.as_str()).or_default() += 1;
            assert_eq!(
                position.get(l.as_str()).copied(),
                Some((partition, first + i as i64)),
                "line {i} of {} is not where its name says: {l}",
                path.display()
            );
        }
    }
    let total: usize = count.values().sum();
    let dups: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    let missing = produced
        .iter()
        .filter(|w| !count.contains_key(w.as_str()))
        .count();
    assert!(
        dups.is_empty() && missing == 0 && count.len() == produced.len(),
        "{} produced, {total} archived lines in {} objects: {} distinct, {} duplicated (e.g. {:?}), \
         {missing} missing",
        produced.len(),
        objs.len(),
        count.len(),
        dups.len(),
        dups.first()
    );
    objs.len()
}

#[test]
fn archives_in_one_group_split_the_partitions_and_survive_a_kill_9_exactly_once() {
    let started = Instant::now();
    // No initial rebalance delay: members join as soon as they ask. Archiver passes a short session
    // timeout (MOCK_GROUP_CONFIG), so the killed member is expelled in seconds, not the default 45 s.
    let k = MockKafka::start_with(&[("ev", PARTITIONS as i32)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let mut a = Archiver::start(&k, &store, &log("a"), OPTS);
    let mut b = Archiver::start(&k, &store, &log("b"), OPTS);
    let mut c = Archiver::start(&k, &store, &log("c"), OPTS);
    for x in [&a, &b, &c] {
        x.wait_log("kafka: partitions assigned");
    }

    let mut produced = Vec::new();
    let mut d = None;
    for wave in 0..WAVES {
        produced.extend(produce_wave(&k.brokers, wave));
        if wave == WAVES / 2 - 1 {
            // Half-way, right after a wave (so it is busy reading and writing): once b has archived
            // something, kill it without warning, and add a fourth member.
            common::process::wait_for("b's first object", Duration::from_secs(30), || {
                b.writes_outside_its_partitions().0 > 0
            });
            b.child.kill().unwrap(); // SIGKILL
            b.child.wait().unwrap();
            d = Some(Archiver::start(&k, &store, &log("d"), OPTS));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut d = d.unwrap();
    d.wait_log("kafka: partitions assigned");

    // Wait until every produced event is in the store (the survivors take b's partitions over once the
    // group expels it), then stop them: SIGTERM writes what is still open, and commits it.
    let seen = wait_archived(&store, &produced, Duration::from_secs(45));
    let logs = [&a, &b, &c, &d].map(|x| x.log_text()).join("\n----\n");
    assert_eq!(
        seen,
        produced.len(),
        "archived {seen} of {} in time\n{logs}",
        produced.len()
    );
    // All at once, as in a rolling shutdown: each flushes while the others' leaving rebalances the group.
    std::thread::scope(|s| {
        for (name, x) in [("a", &mut a), ("c", &mut c), ("d", &mut d)] {
            s.spawn(move || {
                let code = x.stop();
                assert_eq!(
                    code,
                    Some(0),
                    "SIGTERM ends {name} with exit 0\n{}",
                    x.log_text()
                );
            });
        }
    });

    let objs = assert_exactly_once_where_named(&k, &store, &produced);

    // The work was shared: each member wrote objects, the killed one before its kill.
    let (wa, wb, wc, wd) = (
        writes(&a, "a"),
        writes(&b, "b"),
        writes(&c, "c"),
        writes(&d, "d"),
    );
    assert!(
        wa > 0 && wb > 0 && wc > 0 && wd > 0,
        "objects written: a {wa}, b (killed) {wb}, c {wc}, d {wd}"
    );
    // How often a commit met an eager rebalance (given up, not retried: see commit_through_rebalance).
    let refused = [&a, &c, &d]
        .map(|x| x.log_text().matches("kafka: commit refused").count())
        .iter()
        .sum::<usize>();
    eprintln!(
        "{} events in {} objects exactly once; objects written: a {wa}, b (killed) {wb}, c {wc}, \
         d {wd}; {refused} commits refused by a rebalance; {:.1}s",
        produced.len(),
        objs,
        started.elapsed().as_secs_f64()
    );
}

/// A member killed while it writes two closed batches of one partition, the first short (closed by
/// max_wait). It used to write both and then commit: killed before the commit, it left two uncommitted
/// objects; its successor reads again from the committed offset, cuts its batches elsewhere and
/// overwrites only the first, so the second stayed behind as a duplicate. topic-archive now writes and
/// commits one batch per partition at a time.
#[test]
fn a_member_killed_while_writing_two_batches_of_a_partition_leaves_no_duplicate() {
    let k = MockKafka::start_with(&[("ev", 1)], Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // The first write sleeps 3 s, so that meanwhile the open batch of offsets 100-129 outlives max_wait
    // and offsets 130-329 arrive: the next call hands out 100-129 and 130-229 together. The third
    // write exits hard.
    let hooked = hooked_topic_archive(
        dir.path(),
        "killed-topic-archive",
        r#"PUT; _G.puts = (_G.puts or 0) + 1; log.info("wrote " .. key .. " count=" .. b.count)
        if _G.puts == 1 then task.sleep(3) elseif _G.puts == 3 then os.exit(137, false) end"#,
    );
    let ev = |range: std::ops::Range<usize>| range.map(|n| event(0, 0, n)).collect::<Vec<_>>();
    kcat_produce(&k.brokers, "ev", &ev(0..130));
    let opts = ["batch=100", "max_wait=1s", "concurrency=1"];
    let mut a = Archiver::start_script(
        &k,
        &store,
        &dir.path().join("a.log"),
        hooked.to_str().unwrap(),
        &opts,
    );
    common::process::wait_for("the first write", Duration::from_secs(30), || {
        a.log_text().contains("wrote kafka/ev/")
    });
    kcat_produce(&k.brokers, "ev", &ev(130..330));
    common::process::wait_for("the hard exit", Duration::from_secs(30), || {
        a.child.try_wait().unwrap().is_some()
    });
    let wrote: Vec<String> = a
        .lines()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("wrote "))
        .map(String::from)
        .collect();
    assert!(
        wrote.len() == 3 && wrote[1].ends_with("count=30"),
        "the scenario: 100 records, then 30 closed by max_wait, then 100: {wrote:?}"
    );
    let mut b = Archiver::start(&k, &store, &dir.path().join("b.log"), &opts[..2]);
    let produced = ev(0..330);
    let seen = wait_archived(&store, &produced, Duration::from_secs(45));
    assert_eq!(seen, produced.len(), "archived in time\n{}", b.log_text());
    assert_eq!(b.stop(), Some(0));
    assert_exactly_once_where_named(&k, &store, &produced);
}
