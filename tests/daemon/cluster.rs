//! `rewind daemon --cluster`: three real daemons share a folder in moto's S3 server. Each occurrence of
//! a job runs exactly once among them (counted from the run records in the store), a killed member's
//! share is taken by the others, and a paused member that wakes up after another took its lease over
//! commits nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use common::s3::S3Server;

const TOKEN: &str = "cluster-token";

struct Member {
    name: String,
    daemon: Daemon,
    base: String,
}

fn start_members(
    s3: &S3Server,
    jobs: &Path,
    root: &Path,
    names: &[&str],
    extra: &[(&str, &str)],
) -> Vec<Member> {
    let env = s3.env();
    names
        .iter()
        .map(|name| {
            let port = free_port();
            let mut e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.push(("REWIND_DAEMON_TOKEN", TOKEN));
            e.push(("MEMBER", name));
            e.extend_from_slice(extra);
            let listen = format!("127.0.0.1:{port}");
            let daemon = Daemon::start(
                jobs,
                &root.join(name),
                &[
                    "--cluster",
                    "s3://clu/cluster",
                    "--member",
                    name,
                    "--member-every",
                    "1s",
                    "--listen",
                    &listen,
                ],
                &e,
            );
            Member {
                name: name.to_string(),
                daemon,
                base: format!("http://{listen}"),
            }
        })
        .collect()
}

/// The store's run records, by scheduled time (RFC 3339 text).
fn store_runs(s3: &S3Server, job: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for key in s3.list_keys("clu", "cluster/runs/") {
        let r: Value = serde_json::from_slice(&s3.get_bytes("clu", &key)).unwrap();
        by_id.insert(r["id"].as_str().unwrap().to_string(), r);
    }
    for r in by_id.into_values().filter(|r| r["job"] == job) {
        let at = r["scheduled"].as_str().unwrap_or("manual").to_string();
        out.entry(at).or_default().push(r);
    }
    out
}

fn metric(m: &Member, name: &str, label: Option<(&str, &str)>) -> f64 {
    let (s, text) = http("GET", &format!("{}/metrics", m.base), Some(TOKEN), None);
    assert_eq!(s, 200, "{text}");
    common::metrics::parse(&text)
        .iter()
        .find(|s| {
            s.name == name
                && label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .unwrap_or(0.0)
}

fn second(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn three_daemons_run_each_occurrence_once_and_the_survivors_carry_on_after_a_kill() {
    let s3 = S3Server::start();
    s3.create_bucket("clu");
    let (dir, jobs, _) = setup();
    write(
        &jobs.join("tick.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    let mut members = start_members(&s3, &jobs, dir.path(), &["d1", "d2", "d3"], &[]);
    let all_live = now() + 2;

    wait_for("three live members", Duration::from_secs(15), || {
        metric(&members[0], "rewind_cluster_members", None) == 3.0
    });
    std::thread::sleep(Duration::from_secs(28));
    let killed_at = now();
    members[2].daemon.signal(libc::SIGKILL);
    let _ = members[2].daemon.child.wait();
    wait_for("d1 to count two members", Duration::from_secs(10), || {
        metric(&members[0], "rewind_cluster_members", None) == 2.0
    });
    std::thread::sleep(Duration::from_secs(25));
    let stopped_at = now();
    let won: f64 = members[..2]
        .iter()
        .map(|m| metric(m, "rewind_claims_total", Some(("result", "won"))))
        .sum();
    let lost = metric(&members[0], "rewind_claims_total", Some(("result", "lost")));
    for m in &mut members[..2] {
        assert!(m.daemon.stop().success(), "{}", m.daemon.stderr());
    }
    // Occurrences go on until the members have stopped (metrics reads and stops take a while on a busy
    // machine): the count below is bounded by this, the windows by stopped_at.
    let ended = now();

    let runs = store_runs(&s3, "tick");
    let mut by_member: BTreeMap<String, usize> = BTreeMap::new();
    for (at, recs) in &runs {
        assert_eq!(
            recs.len(),
            1,
            "occurrence {at} ran {} times: {recs:?}",
            recs.len()
        );
        *by_member
            .entry(recs[0]["member"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    // One occurrence per second in all: members agree on each occurrence's time (a member that ran its
    // own timeline would add a run per member per second here).
    let first = second(runs.keys().next().unwrap());
    assert!(
        runs.len() as i64 <= ended - first + 2,
        "{} occurrences in {} s",
        runs.len(),
        ended - first
    );
    let done: BTreeSet<i64> = runs
        .iter()
        .filter(|(_, r)| r[0]["status"] == "done")
        .map(|(at, _)| second(at))
        .collect();
    // No occurrence missing while all three lived, nor after the kill once the others noticed nothing
    // (a claim needs no failure detection: the dead member just stops claiming).
    let windows = [(all_live, killed_at - 1), (killed_at + 2, stopped_at - 2)];
    for (from, to) in windows {
        let missing: Vec<i64> = (from..=to).filter(|s| !done.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "occurrences with no done run: {missing:?} of {from}..={to}"
        );
    }
    let after_kill: BTreeSet<String> = runs
        .iter()
        .filter(|(at, _)| second(at) > killed_at + 1)
        .map(|(_, r)| r[0]["member"].as_str().unwrap().to_string())
        .collect();
    assert!(!after_kill.contains("d3"), "d3 ran after its kill");
    for name in ["d1", "d2", "d3"] {
        assert!(
            by_member.get(name).copied().unwrap_or(0) >= 3,
            "every member takes a share: {by_member:?}"
        );
    }
    // One claim per run record; every claim names the member whose record it is.
    let claims = s3.list_keys("clu", "cluster/claims/tick/");
    assert_eq!(claims.len(), runs.len(), "claims vs run records");
    assert!(
        won >= (stopped_at - killed_at - 4) as f64,
        "won by the survivors: {won}"
    );
    assert!(lost > 0.0, "d1 lost some claims");

    // Any member shows every run: d1's own history holds d2's and d3's runs.
    let d1_runs = runs_of(&members[0].daemon.state, "tick", "done");
    let shown: BTreeSet<&str> = d1_runs
        .iter()
        .filter_map(|r| r["member"].as_str())
        .collect();
    assert_eq!(
        shown,
        BTreeSet::from(["d1", "d2", "d3"]),
        "members in d1's history"
    );
    let d1_state = members[0].daemon.state.to_str().unwrap();
    let out = rewind(&[
        "jobs", "runs", "tick", "--limit", "200", "--state", d1_state,
    ]);
    let listing = text(&out);
    for name in ["d1", "d2", "d3"] {
        assert!(
            listing.contains(&format!(" {name} ")),
            "{name} in `rewind jobs runs`: {listing}"
        );
    }
    // How late runs start after their time, claims included (for the README's figures).
    let mut late: Vec<i64> = runs
        .values()
        .map(|r| {
            let started =
                chrono::DateTime::parse_from_rfc3339(r[0]["started"].as_str().unwrap()).unwrap();
            let at =
                chrono::DateTime::parse_from_rfc3339(r[0]["scheduled"].as_str().unwrap()).unwrap();
            (started - at).num_milliseconds()
        })
        .collect();
    late.sort();
    eprintln!(
        "cluster of 3: {} occurrences, start lateness median {} ms, p95 {} ms, max {} ms; by member {by_member:?}",
        late.len(),
        late[late.len() / 2],
        late[late.len() * 95 / 100],
        late[late.len() - 1]
    );
    let out = rewind(&["jobs", "--state", d1_state]);
    let listing = text(&out);
    assert!(
        listing.contains("cluster s3://clu/cluster as d1"),
        "{listing}"
    );
    assert!(
        listing.contains("d3 (renewed") && listing.contains("gone"),
        "{listing}"
    );
}

/// A job like a backup: it holds its target's lease (3 s) for about 2.5 s, then writes a commit marker
/// after checking the lease, as snapshot commits do.
const SLOW_JOB: &str = r#"
local store = require("rewind.store")
local lock = require("rewind.lock")
local env = require("rewind.env")
local task = require("rewind.task")
local time = require("rewind.time")
return {
  schedule = "every 4s",
  params = {},
  run = function()
    local s = store.open(env.get("DATA_STORE"))
    local me = env.get("MEMBER") .. "-" .. string.format("%.3f", time.now())
    local l = lock.target(s, "data", { owner = "slow", ttl = "3s" })
    s:put("started/" .. me, me)
    task.sleep(2.5)
    lock.check_target(s, "data")
    s:put("commits/" .. me, me)
    l:release()
    return { run = me }
  end,
}
"#;

#[test]
fn a_paused_member_commits_nothing_after_another_took_over_its_lease() {
    let s3 = S3Server::start();
    s3.create_bucket("clu");
    let (dir, jobs, _) = setup();
    write(&jobs.join("slow.lua"), SLOW_JOB);
    let data = [("DATA_STORE", "s3://clu/data")];
    let mut members = start_members(&s3, &jobs, dir.path(), &["p1", "p2", "p3"], &data);

    // Pause whichever member starts the next run, right after it took the lease.
    let first: String = {
        let mut found = None;
        wait_for("a run to start", Duration::from_secs(20), || {
            found = s3.list_keys("clu", "data/started/").into_iter().next();
            found.is_some()
        });
        found.unwrap().rsplit('/').next().unwrap().to_string()
    };
    let paused_name = first.split('-').next().unwrap().to_string();
    let paused = members.iter().position(|m| m.name == paused_name).unwrap();
    members[paused].daemon.signal(libc::SIGSTOP);
    let paused_at = now();
    std::thread::sleep(Duration::from_secs(10));
    members[paused].daemon.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(6));
    for m in &mut members {
        assert!(m.daemon.stop().success(), "{}", m.daemon.stderr());
    }

    let commits: Vec<String> = s3
        .list_keys("clu", "data/commits/")
        .into_iter()
        .map(|k| k.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(
        !commits.contains(&first),
        "the paused run {first} committed: {commits:?}"
    );
    let during: Vec<&String> = commits
        .iter()
        .filter(|c| {
            let (who, at) = c.split_once('-').unwrap();
            let at: f64 = at.parse().unwrap();
            who != paused_name && at > paused_at as f64 && at < (paused_at + 10) as f64
        })
        .collect();
    assert!(
        !during.is_empty(),
        "no other member ran while {paused_name} was paused: {commits:?}"
    );
    let failed = runs_of(&members[paused].daemon.state, "slow", "failed");
    assert!(
        failed.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("lost the lease on data"))),
        "the paused run failed for its lost lease: {failed:?}"
    );
    // Every commit belongs to a run that finished done in the store's records.
    let done: usize = store_runs(&s3, "slow")
        .values()
        .filter(|r| r[0]["status"] == "done")
        .count();
    assert_eq!(done, commits.len(), "done runs vs commits: {commits:?}");
}

#[test]
fn claims_and_run_records_older_than_keep_for_are_pruned() {
    let s3 = S3Server::start();
    s3.create_bucket("clu");
    let (dir, jobs, _) = setup();
    write(
        &jobs.join("tick.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let state = dir.path().join("solo");
    let args = [
        "--cluster",
        "s3://clu/cluster",
        "--member",
        "solo",
        "--member-every",
        "1s",
    ];
    let mut d = Daemon::start(
        &jobs,
        &state,
        &[&args[..], &["--keep-for", "4s"]].concat(),
        &env,
    );
    std::thread::sleep(Duration::from_secs(12));
    let claims = s3.list_keys("clu", "cluster/claims/tick/");
    let checked_at = now();
    assert!(d.stop().success(), "{}", d.stderr());
    let times: Vec<i64> = claims
        .iter()
        .map(|k| {
            let t = k.rsplit('/').next().unwrap();
            chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S%.3fZ")
                .unwrap()
                .and_utc()
                .timestamp()
        })
        .collect();
    assert!(!times.is_empty(), "the job ran");
    // Older than keep-for (4 s) plus a prune period (1 s) and a second of slack: gone.
    let old: Vec<&i64> = times.iter().filter(|t| **t < checked_at - 7).collect();
    assert!(
        old.is_empty(),
        "claims older than keep-for remain: {old:?} (now {checked_at})"
    );
    assert!(d.stderr().contains("pruned"), "{}", d.stderr());
    // The run records are filed by hour: the current hour's stay.
    assert!(!s3.list_keys("clu", "cluster/runs/").is_empty());
}

#[test]
fn a_claim_whose_answer_was_lost_still_runs_and_a_claim_that_fails_is_a_skip_not_a_run() {
    use common::fault_proxy::{Fault, FaultProxy, Rule};
    let s3 = S3Server::start();
    s3.create_bucket("clu");
    let proxy = FaultProxy::start(s3.port, 1);
    // The first claim is created in the store, but its answer never arrives: the SDK's retry then
    // finds the object there (412), and the member must recognise its own claim.
    proxy.add(
        Rule::new(Fault::DropAnswer)
            .method("PUT")
            .path("/claims/tick/")
            .nth(1),
    );
    let (dir, jobs, _) = setup();
    write(
        &jobs.join("tick.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    let mut env: Vec<(&str, String)> = s3.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let state = dir.path().join("solo");
    let args = [
        "--cluster",
        "s3://clu/cluster",
        "--member",
        "solo",
        "--member-every",
        "1s",
    ];
    let mut d = Daemon::start(&jobs, &state, &args, &env);
    wait_for("the dropped claim answer", Duration::from_secs(15), || {
        proxy.faults() == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    // Now every claim fails (503 on every attempt): those occurrences are recorded as skipped.
    proxy.add(
        Rule::new(Fault::Status(503, "SlowDown"))
            .method("PUT")
            .path("/claims/tick/"),
    );
    std::thread::sleep(Duration::from_secs(4));
    proxy.clear();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.stop().success(), "{}", d.stderr());

    let dropped = proxy
        .seen()
        .into_iter()
        .find(|s| s.fault.is_some())
        .map(|s| s.target)
        .unwrap();
    let at = dropped
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let runs = store_runs(&s3, "tick");
    let ran: Vec<String> = runs.keys().cloned().collect();
    let at_rfc = chrono::NaiveDateTime::parse_from_str(&at, "%Y%m%dT%H%M%S%.3fZ")
        .unwrap()
        .and_utc();
    let ran_dropped = runs
        .iter()
        .any(|(t, r)| second(t) == at_rfc.timestamp() && r[0]["status"] == "done");
    assert!(
        ran_dropped,
        "the occurrence at {at} whose claim answer was lost did not run: {ran:?}"
    );
    let skipped = runs_of(&state, "tick", "skipped");
    assert!(
        skipped.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not claim the run at"))),
        "claims that failed are recorded as skipped: {skipped:?}"
    );
    // A skipped occurrence did not run: none of their times has a run record.
    for r in &skipped {
        let t = r["scheduled"].as_str().unwrap();
        assert!(!runs.contains_key(t), "{t} was skipped and ran");
    }
    // After the faults end, the member runs again.
    let last = second(runs.keys().last().unwrap());
    assert!(
        last >= now() - 3,
        "runs resumed after the faults: last at {last}"
    );
}

/// Two daemons given the same --member name (a copied manifest) would each think the other's
/// announcement is its own: the README promises the clash is logged, naming the other's pid.
#[test]
fn a_second_daemon_with_the_same_member_name_is_logged() {
    let s3 = S3Server::start();
    s3.create_bucket("clu");
    let (dir, jobs, _) = setup();
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--cluster",
        "s3://clu/cluster",
        "--member",
        "twin",
        "--member-every",
        "1s",
    ];
    let mut a = Daemon::start(&jobs, &dir.path().join("a"), &args, &env);
    let mut b = Daemon::start(&jobs, &dir.path().join("b"), &args, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let clash = |d: &Daemon| d.stderr().contains("also calls itself twin");
    while !(clash(&a) && clash(&b)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ea, eb) = (a.stderr(), b.stderr());
    let (pa, pb) = (a.child.id(), b.child.id());
    assert!(a.stop().success() && b.stop().success());
    assert!(
        clash_names(&ea, pb),
        "the first daemon names the second:\n{ea}"
    );
    assert!(
        clash_names(&eb, pa),
        "the second daemon names the first:\n{eb}"
    );
}

fn clash_names(log: &str, other_pid: u32) -> bool {
    log.lines()
        .any(|l| l.contains("also calls itself twin") && l.contains(&format!("pid {other_pid} ")))
}
